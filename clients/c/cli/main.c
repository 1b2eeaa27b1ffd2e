// main.c -- the leanauth CLI: get a token, Send an HTTP call through
// leanauthd, watch events, or supervise a process that must stop when
// authentication fails for good.
//
// Exit codes: 0 success; 1 the call failed (the message says why, with its
// status code); 2 bad usage; `send` exits 22 on HTTP >= 400, as `curl -f`;
// `supervise` exits with the child's status (128+N if killed by signal N),
// 127 if the command is not found, 126 if it cannot be executed, 1 if
// leanauthd's events cannot be reached (the command is then not started).
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "leanauth.h"

#define DEFAULT_URL "tcp://127.0.0.1:7450"
#define DEFAULT_EVENTS_URL "tcp://127.0.0.1:7451"

static const char *prog = "leanauth";

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: leanauth token [--url URL] [--profile P] [--force]\n"
	    "                      [--if-generation N] [--timeout MS] "
	    "[--json]\n"
	    "       leanauth send [--url URL] [--profile P] [-X METHOD]\n"
	    "                     [-H 'Name: value']... [-d DATA | -d @FILE] "
	    "[-i]\n"
	    "                     [--timeout MS] URL\n"
	    "       leanauth health [--url URL] [--profile P] [--timeout MS]\n"
	    "       leanauth watch [--events URL] [--topic NAME]... [--json]\n"
	    "                      [--count N] [--timeout MS]\n"
	    "       leanauth supervise [--events URL] [--profile P]\n"
	    "                          [--grace SECONDS] [--connect-timeout "
	    "SECONDS]\n"
	    "                          -- COMMAND [ARGS...]\n"
	    "\n"
	    "URL defaults to $LEANAUTH_URL or " DEFAULT_URL ";\n"
	    "the events URL to $LEANAUTH_EVENTS_URL or " DEFAULT_EVENTS_URL
	    ".\n"
	    "For tls+tcp:// URLs: $LEANAUTH_TLS_CA (CA file), "
	    "$LEANAUTH_TLS_CERT\n"
	    "(client certificate and key in one PEM), "
	    "$LEANAUTH_TLS_SERVER_NAME.\n");
}

static int
bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	usage(stderr);
	return (2);
}

static int
fail(const leanauth_error *e)
{
	fprintf(stderr, "%s: %s: %s\n", prog, leanauth_code_name(e->code),
	    e->message);
	return (1);
}

static const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return (v != NULL && v[0] != '\0' ? v : dflt);
}

// with_tls adds the TLS settings from the environment to o, for tls+tcp://
// URLs: LEANAUTH_TLS_CA (CA bundle to verify leanauthd), LEANAUTH_TLS_CERT
// (client certificate and key, one PEM file), LEANAUTH_TLS_SERVER_NAME.
static leanauth_options
with_tls(leanauth_options o)
{
	o.tls_ca_file     = getenv("LEANAUTH_TLS_CA");
	o.tls_cert_file   = getenv("LEANAUTH_TLS_CERT");
	o.tls_server_name = getenv("LEANAUTH_TLS_SERVER_NAME");
	return (o);
}

// connect_wait is how long a command waits for leanauthd to accept the
// connection: not the whole call's deadline, so that a wrong URL or a server
// that is down is reported in seconds.
static uint32_t
connect_wait(uint32_t timeout)
{
	return (timeout < 5000 ? timeout : 5000);
}

// parse_u64 accepts a whole decimal number and nothing else.
static bool
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (s == NULL || s[0] == '\0' || s[0] == '-') {
		return (false);
	}
	errno                = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0') {
		return (false);
	}
	*out = v;
	return (true);
}

static bool
parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v > UINT32_MAX) {
		return (false);
	}
	*out = (uint32_t) v;
	return (true);
}

// ---- token

static int
cmd_token(int argc, char **argv)
{
	const char *url     = env_or("LEANAUTH_URL", DEFAULT_URL);
	const char *profile = "";
	bool        force = false, json = false;
	uint64_t    ifgen   = 0;
	uint32_t    timeout = 30000; // the server's default_timeout_ms

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--url") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(a, "--profile") == 0 && i + 1 < argc) {
			profile = argv[++i];
		} else if (strcmp(a, "--force") == 0) {
			force = true;
		} else if (strcmp(a, "--if-generation") == 0 && i + 1 < argc) {
			if (!parse_u64(argv[++i], &ifgen)) {
				return (bad_usage(
				    "--if-generation: not a number: %s",
				    argv[i]));
			}
		} else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
			if (!parse_u32(argv[++i], &timeout) || timeout == 0) {
				return (bad_usage(
				    "--timeout: not a positive number: %s",
				    argv[i]));
			}
		} else if (strcmp(a, "--json") == 0) {
			json = true;
		} else {
			return (bad_usage("token: unexpected argument %s", a));
		}
	}

	leanauth_client *c;
	leanauth_error   e;
	leanauth_token   t;
	leanauth_options o =
	    with_tls((leanauth_options) {.timeout_ms = timeout,
	        .connect_timeout_ms                  = connect_wait(timeout)});
	leanauth_call_options co = {.timeout_ms = timeout};
	if (leanauth_open(&c, url, &o, &e) != 0) {
		return (fail(&e));
	}
	int rv = leanauth_get_token(c, profile, force, ifgen, &co, &t, &e);
	leanauth_close(c);
	if (rv != 0) {
		return (fail(&e));
	}
	if (json) {
		json_t *j = json_pack("{s:s, s:s, s:I, s:I}", "token_type",
		    leanauth_token_type_name(t.token_type), "access_token",
		    t.access_token, "expires_at_unix_ms",
		    (json_int_t) t.expires_at_unix_ms, "generation",
		    (json_int_t) t.generation);
		char   *s = j != NULL
		      ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER)
		      : NULL;
		if (s != NULL) {
			printf("%s\n", s);
			explicit_bzero(s, strlen(s));
			free(s);
		}
		json_decref(j);
	} else {
		printf("%s\n", t.access_token);
	}
	leanauth_token_clear(&t);
	return (fflush(stdout) == 0 ? 0 : 1);
}

// ---- health

static int
cmd_health(int argc, char **argv)
{
	const char *url     = env_or("LEANAUTH_URL", DEFAULT_URL);
	const char *profile = "";
	uint32_t    timeout = 5000;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc) {
			profile = argv[++i];
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			if (!parse_u32(argv[++i], &timeout) || timeout == 0) {
				return (bad_usage(
				    "--timeout: not a positive number: %s",
				    argv[i]));
			}
		} else {
			return (bad_usage("health: unexpected argument %s",
			    argv[i]));
		}
	}
	leanauth_client *c;
	leanauth_error   e;
	bool             serving = false;
	leanauth_options o =
	    with_tls((leanauth_options) {.timeout_ms = timeout,
	        .connect_timeout_ms                  = connect_wait(timeout)});
	if (leanauth_open(&c, url, &o, &e) != 0) {
		return (fail(&e));
	}
	int rv = leanauth_health(c, profile, NULL, &serving, &e);
	leanauth_close(c);
	if (rv != 0) {
		return (fail(&e));
	}
	printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
	return (serving ? 0 : 1);
}

// ---- send

static char *
read_data(const char *arg, size_t *len)
{
	if (arg[0] != '@') {
		*len = strlen(arg);
		return (strdup(arg));
	}
	FILE *f = strcmp(arg + 1, "-") == 0 ? stdin : fopen(arg + 1, "rb");
	if (f == NULL) {
		return (NULL);
	}
	size_t cap = 65536, n = 0;
	char  *buf = malloc(cap);
	while (buf != NULL) {
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			break;
		}
		if (n == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	bool err = ferror(f);
	if (f != stdin) {
		fclose(f);
	}
	if (err) {
		free(buf);
		return (NULL);
	}
	*len = n;
	return (buf);
}

static int
cmd_send(int argc, char **argv)
{
	const char      *url     = env_or("LEANAUTH_URL", DEFAULT_URL);
	const char      *profile = "";
	const char      *method  = NULL;
	const char      *target  = NULL;
	char            *data    = NULL;
	size_t           dlen    = 0;
	bool             include = false;
	uint32_t         timeout = 30000;
	leanauth_header *hdrs    = calloc((size_t) argc, sizeof(*hdrs));
	size_t           nh      = 0;
	int              rv      = 2;

	if (hdrs == NULL) {
		return (1);
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--url") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(a, "--profile") == 0 && i + 1 < argc) {
			profile = argv[++i];
		} else if ((strcmp(a, "-X") == 0 ||
		               strcmp(a, "--request") == 0) &&
		    i + 1 < argc) {
			method = argv[++i];
		} else if ((strcmp(a, "-H") == 0 ||
		               strcmp(a, "--header") == 0) &&
		    i + 1 < argc) {
			char *h     = argv[++i];
			char *colon = strchr(h, ':');
			if (colon == NULL || colon == h) {
				rv = bad_usage(
				    "-H: expected 'Name: value', got %s", h);
				goto done;
			}
			*colon         = '\0';
			hdrs[nh].name  = h;
			hdrs[nh].value = colon + 1 + strspn(colon + 1, " \t");
			nh++;
		} else if ((strcmp(a, "-d") == 0 ||
		               strcmp(a, "--data") == 0) &&
		    i + 1 < argc) {
			free(data);
			if ((data = read_data(argv[++i], &dlen)) == NULL) {
				fprintf(stderr, "%s: -d %s: %s\n", prog,
				    argv[i], strerror(errno));
				rv = 2;
				goto done;
			}
		} else if (strcmp(a, "-i") == 0 ||
		    strcmp(a, "--include") == 0) {
			include = true;
		} else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
			if (!parse_u32(argv[++i], &timeout) || timeout == 0) {
				rv = bad_usage(
				    "--timeout: not a positive number: %s",
				    argv[i]);
				goto done;
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			rv = bad_usage("send: unknown option %s", a);
			goto done;
		} else if (target == NULL) {
			target = a;
		} else {
			rv = bad_usage("send: more than one URL: %s", a);
			goto done;
		}
	}
	if (target == NULL) {
		rv = bad_usage("send: %s", "a URL is required");
		goto done;
	}
	if (method == NULL) {
		method = data != NULL ? "POST" : "GET"; // as curl does
	}

	leanauth_client  *c;
	leanauth_error    e;
	leanauth_response r;
	leanauth_options  o =
	    with_tls((leanauth_options) {.timeout_ms = timeout,
	        .connect_timeout_ms                  = connect_wait(timeout)});
	leanauth_call_options co = {.timeout_ms = timeout};
	leanauth_request      rq = {.profile = profile,
	         .method                     = method,
	         .url                        = target,
	         .headers                    = hdrs,
	         .n_headers                  = nh,
	         .body                       = data,
	         .body_len                   = dlen};
	if (leanauth_open(&c, url, &o, &e) != 0) {
		rv = fail(&e);
		goto done;
	}
	int code = leanauth_send(c, &rq, &co, &r, &e);
	leanauth_close(c);
	if (code != 0) {
		rv = fail(&e);
		goto done;
	}
	if (include) {
		printf("HTTP %d\r\n", r.status_code);
		for (size_t i = 0; i < r.n_headers; i++) {
			printf("%s: %s\r\n", r.headers[i].name,
			    r.headers[i].value);
		}
		printf("\r\n");
	}
	fwrite(r.body, 1, r.body_len, stdout);
	fflush(stdout);
	if (r.status_code >= 400) {
		fprintf(stderr, "%s: the server returned HTTP %d\n", prog,
		    r.status_code);
		rv = 22;
	} else {
		rv = 0;
	}
	leanauth_response_clear(&r);
done:
	free(data);
	free(hdrs);
	return (rv);
}

// ---- watch

static const char *
event_name(int type)
{
	switch (type) {
	case LEANAUTH_EVENT_TOKEN_REFRESHED:
		return ("TokenRefreshed");
	case LEANAUTH_EVENT_AUTHENTICATION_FAILED:
		return ("AuthenticationFailed");
	case LEANAUTH_EVENT_AUTHENTICATION_DEGRADED:
		return ("AuthenticationDegraded");
	case LEANAUTH_EVENT_AUTHENTICATION_RECOVERED:
		return ("AuthenticationRecovered");
	}
	return ("Unknown");
}

// topic_of accepts a full topic or its short name ("AuthenticationFailed").
static const char *
topic_of(const char *name)
{
	static const char *const topics[] = {LEANAUTH_TOPIC_TOKEN_REFRESHED,
	    LEANAUTH_TOPIC_AUTHENTICATION_FAILED,
	    LEANAUTH_TOPIC_AUTHENTICATION_DEGRADED,
	    LEANAUTH_TOPIC_AUTHENTICATION_RECOVERED};
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(name, topics[i]) == 0 ||
		    strcmp(name, topics[i] + strlen("leanauth.v1.")) == 0) {
			return (topics[i]);
		}
	}
	return (NULL);
}

// print_quoted prints s in double quotes, escaping quotes, backslashes and
// control characters, so an upstream's error text stays on one line.
static void
print_quoted(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *) s; *p != '\0';
	     p++) {
		if (*p == '"' || *p == '\\') {
			printf("\\%c", *p);
		} else if (*p == '\n') {
			printf("\\n");
		} else if (*p < 0x20 || *p == 0x7f) {
			printf("\\x%02x", *p);
		} else {
			putchar(*p);
		}
	}
	putchar('"');
}

static void
print_event(const leanauth_event *ev, bool json)
{
	if (json) {
		json_t *j = json_pack("{s:s, s:s, s:I}", "event",
		    event_name(ev->type), "profile", ev->profile, "at_unix_ms",
		    (json_int_t) ev->at_unix_ms);
		if (j == NULL) {
			return;
		}
		switch (ev->type) {
		case LEANAUTH_EVENT_TOKEN_REFRESHED:
			json_object_set_new(j, "token_type",
			    json_string(
			        leanauth_token_type_name(ev->token_type)));
			json_object_set_new(j, "expires_at_unix_ms",
			    json_integer(ev->expires_at_unix_ms));
			json_object_set_new(j, "generation",
			    json_integer((json_int_t) ev->generation));
			break;
		case LEANAUTH_EVENT_AUTHENTICATION_FAILED:
			json_object_set_new(j, "brokerage",
			    json_string(ev->brokerage));
			json_object_set_new(j, "account_id",
			    json_string(ev->account_id));
			json_object_set_new(j, "error",
			    json_string(ev->error));
			json_object_set_new(j, "attempts",
			    json_integer(ev->attempts));
			break;
		case LEANAUTH_EVENT_AUTHENTICATION_DEGRADED:
			json_object_set_new(j, "error",
			    json_string(ev->error));
			json_object_set_new(j, "attempts",
			    json_integer(ev->attempts));
			json_object_set_new(j, "token_valid_until_unix_ms",
			    json_integer(ev->expires_at_unix_ms));
			break;
		}
		char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s != NULL) {
			printf("%s\n", s);
			free(s);
		}
		json_decref(j);
	} else {
		time_t    t = (time_t) (ev->at_unix_ms / 1000);
		struct tm tm;
		char      ts[32];
		gmtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%s %s profile=%s", ts, event_name(ev->type),
		    ev->profile);
		switch (ev->type) {
		case LEANAUTH_EVENT_TOKEN_REFRESHED:
			printf(" token_type=%s generation=%llu "
			       "expires_at_unix_ms=%lld",
			    leanauth_token_type_name(ev->token_type),
			    (unsigned long long) ev->generation,
			    (long long) ev->expires_at_unix_ms);
			break;
		case LEANAUTH_EVENT_AUTHENTICATION_FAILED:
			printf(
			    " brokerage=%s account_id=%s attempts=%u error=",
			    ev->brokerage, ev->account_id, ev->attempts);
			print_quoted(ev->error);
			break;
		case LEANAUTH_EVENT_AUTHENTICATION_DEGRADED:
			printf(" attempts=%u valid_until_unix_ms=%lld error=",
			    ev->attempts, (long long) ev->expires_at_unix_ms);
			print_quoted(ev->error);
			break;
		}
		printf("\n");
	}
	fflush(stdout);
}

static int
cmd_watch(int argc, char **argv)
{
	const char  *url = env_or("LEANAUTH_EVENTS_URL", DEFAULT_EVENTS_URL);
	const char **topics  = calloc((size_t) argc, sizeof(char *));
	size_t       nt      = 0;
	bool         json    = false;
	uint64_t     count   = 0; // 0: forever
	uint32_t     timeout = 0; // 0: forever
	int          rv      = 2;

	if (topics == NULL) {
		return (1);
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
			if ((topics[nt] = topic_of(argv[++i])) == NULL) {
				rv = bad_usage("--topic: unknown event %s",
				    argv[i]);
				goto done;
			}
			nt++;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
			if (!parse_u64(argv[++i], &count) || count == 0) {
				rv = bad_usage(
				    "--count: not a positive number: %s",
				    argv[i]);
				goto done;
			}
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			if (!parse_u32(argv[++i], &timeout) || timeout == 0) {
				rv = bad_usage(
				    "--timeout: not a positive number: %s",
				    argv[i]);
				goto done;
			}
		} else {
			rv = bad_usage("watch: unexpected argument %s",
			    argv[i]);
			goto done;
		}
	}
	leanauth_subscriber *s;
	leanauth_error       e;
	leanauth_options     o = with_tls((leanauth_options) {0});
	if (leanauth_subscribe(&s, url, topics, nt, &o, &e) != 0) {
		rv = fail(&e);
		goto done;
	}
	// With --timeout the whole watch ends at that deadline (exit 0 if
	// --count was not given, since nothing went wrong).
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rv = 0;
	for (uint64_t seen = 0; count == 0 || seen < count; seen++) {
		leanauth_event ev;
		int            left = -1;
		if (timeout > 0) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			long el = (now.tv_sec - t0.tv_sec) * 1000 +
			    (now.tv_nsec - t0.tv_nsec) / 1000000;
			left = el >= (long) timeout ? 0 : (int) (timeout - el);
		}
		int code = leanauth_next_event(s, left, &ev, &e);
		if (code == LEANAUTH_DEADLINE_EXCEEDED) {
			rv = count > 0 ? fail(&e) : 0;
			break;
		}
		if (code != 0) {
			rv = fail(&e);
			break;
		}
		print_event(&ev, json);
	}
	leanauth_subscriber_close(s);
done:
	free(topics);
	return (rv);
}

// ---- supervise

typedef struct watcher {
	leanauth_subscriber *sub;
	const char          *profile; // NULL: any
} watcher;

// The watcher thread turns a matching AuthenticationFailed into SIGUSR1 for
// the main thread, which owns every signal through sigwait.
static void *
watch_failures(void *arg)
{
	watcher       *w = arg;
	leanauth_event ev;
	leanauth_error e;

	for (;;) {
		int rv = leanauth_next_event(w->sub, -1, &ev, &e);
		if (rv == LEANAUTH_CANCELLED) {
			return (NULL);
		}
		if (rv != 0) {
			// Not expected from a SUB socket; do not spin on it.
			struct timespec ts = {0, 100 * 1000000L};
			nanosleep(&ts, NULL);
			continue;
		}
		if (w->profile != NULL &&
		    strcmp(ev.profile, w->profile) != 0) {
			continue;
		}
		fprintf(stderr,
		    "%s supervise: AuthenticationFailed for profile %s "
		    "(%u attempts: %s)\n",
		    prog, ev.profile, ev.attempts, ev.error);
		kill(getpid(), SIGUSR1);
		return (NULL);
	}
}

static int
exit_status_of(int status)
{
	if (WIFEXITED(status)) {
		return (WEXITSTATUS(status));
	}
	if (WIFSIGNALED(status)) {
		return (128 + WTERMSIG(status));
	}
	return (1);
}

static int
cmd_supervise(int argc, char **argv)
{
	const char *url = env_or("LEANAUTH_EVENTS_URL", DEFAULT_EVENTS_URL);
	const char *profile = NULL;
	double      grace   = 10.0;
	double      connect = 10.0;
	int         i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc) {
			profile = argv[++i];
		} else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc) {
			char *end;
			grace = strtod(argv[++i], &end);
			if (*end != '\0' || !(grace >= 0) || grace > 86400) {
				return (bad_usage(
				    "--grace: not a number of seconds: %s",
				    argv[i]));
			}
		} else if (strcmp(argv[i], "--connect-timeout") == 0 &&
		    i + 1 < argc) {
			char *end;
			connect = strtod(argv[++i], &end);
			if (*end != '\0' || !(connect > 0) ||
			    connect > 86400) {
				return (bad_usage("--connect-timeout: not a "
				                  "number of seconds: %s",
				    argv[i]));
			}
		} else {
			return (bad_usage("supervise: unexpected argument %s "
			                  "(put the command after --)",
			    argv[i]));
		}
	}
	if (i >= argc) {
		return (bad_usage("supervise: %s",
		    "a command is required after --"));
	}
	char **cmd = &argv[i];

	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, &old);

	// Subscribe, and wait until connected, before starting the child:
	// PUB/SUB drops events for a subscriber that is not connected yet, so
	// a failure right after the child starts would otherwise be missed. A
	// command that cannot be supervised is not started at all.
	watcher          w = {.profile = profile};
	leanauth_error   e;
	leanauth_options o = with_tls((leanauth_options) {
	    .connect_timeout_ms = (uint32_t) (connect * 1000.0)});
	if (o.connect_timeout_ms == 0) {
		o.connect_timeout_ms = 1;
	}
	if (leanauth_subscribe(&w.sub, url,
	        (const char *[]) {LEANAUTH_TOPIC_AUTHENTICATION_FAILED}, 1, &o,
	        &e) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		fprintf(stderr, "%s supervise: not starting %s\n", prog,
		    cmd[0]);
		return (fail(&e));
	}
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
		leanauth_subscriber_close(w.sub);
		return (1);
	}
	if (child == 0) {
		// Only async-signal-safe calls between fork and exec: the
		// parent has nng's threads. Exit codes as the shell's.
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		execvp(cmd[0], cmd);
		int         code = errno == ENOENT ? 127 : 126;
		const char *why  = code == 127 ? ": command not found\n"
		                               : ": cannot execute\n";
		if (write(2, prog, strlen(prog)) < 0 ||
		    write(2, ": ", 2) < 0 ||
		    write(2, cmd[0], strlen(cmd[0])) < 0 ||
		    write(2, why, strlen(why)) < 0) {
			// nothing more to do
		}
		_exit(code);
	}
	pthread_t thr;
	if (pthread_create(&thr, NULL, watch_failures, &w) != 0) {
		fprintf(stderr, "%s: cannot start the event watcher\n", prog);
		kill(child, SIGTERM);
	}

	bool terminating = false;
	int  status      = 0;
	for (;;) {
		int sig = 0;
		sigwait(&set, &sig);
		if (sig == SIGCHLD) {
			pid_t p = waitpid(child, &status, WNOHANG);
			if (p == child) {
				break;
			}
			continue;
		}
		if (sig == SIGALRM) {
			if (terminating) {
				fprintf(stderr,
				    "%s supervise: grace period over, sending "
				    "SIGKILL to %d\n",
				    prog, (int) child);
				kill(child, SIGKILL);
			}
			continue;
		}
		// SIGTERM/SIGINT to us, or SIGUSR1 from the watcher: pass a
		// termination signal on and start the grace period once.
		int fwd = sig == SIGUSR1 ? SIGTERM : sig;
		if (sig == SIGUSR1) {
			fprintf(stderr,
			    "%s supervise: sending SIGTERM to %d\n", prog,
			    (int) child);
		}
		kill(child, fwd);
		if (!terminating) {
			terminating          = true;
			struct itimerval itv = {0};
			itv.it_value.tv_sec  = (time_t) grace;
			itv.it_value.tv_usec =
			    (suseconds_t) ((grace - (double) (time_t) grace) *
			        1e6);
			if (itv.it_value.tv_sec == 0 &&
			    itv.it_value.tv_usec == 0) {
				itv.it_value.tv_usec = 1;
			}
			setitimer(ITIMER_REAL, &itv, NULL);
		}
	}
	leanauth_subscriber_interrupt(w.sub);
	pthread_join(thr, NULL);
	leanauth_subscriber_close(w.sub);
	return (exit_status_of(status));
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return (2);
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "token") == 0) {
		return (cmd_token(argc - 1, argv + 1));
	} else if (strcmp(cmd, "send") == 0) {
		return (cmd_send(argc - 1, argv + 1));
	} else if (strcmp(cmd, "health") == 0) {
		return (cmd_health(argc - 1, argv + 1));
	} else if (strcmp(cmd, "watch") == 0) {
		return (cmd_watch(argc - 1, argv + 1));
	} else if (strcmp(cmd, "supervise") == 0) {
		return (cmd_supervise(argc - 1, argv + 1));
	} else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage(stdout);
		return (0);
	} else if (strcmp(cmd, "--version") == 0) {
		printf("leanauth %s\n", LEANAUTH_VERSION_STRING);
		return (0);
	}
	return (bad_usage("unknown command %s", cmd));
}
