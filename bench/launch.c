// launch.c -- processes and stand-in control for the benches.
#include "launch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define B_API_TOKEN "bench-api-token"
#define B_REFRESH_TOKEN "bench-refresh-token"

static b_env *b_current; // what b_die stops

int64_t
b_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec);
}

void
b_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

void
b_die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (b_current != NULL) {
		if (b_current->log_path[0] != '\0') {
			fprintf(stderr, "bench: leanauthd log kept in %s\n",
			    b_current->log_path);
		}
		if (b_current->daemon > 0) {
			kill(b_current->daemon, SIGKILL);
		}
		if (b_current->standin > 0) {
			kill(b_current->standin, SIGKILL);
		}
	}
	exit(1);
}

pid_t
b_spawn_wrapped(const char *wrap_env, const char *const argv[], int *out_fd,
    const char *err_path)
{
	const char *wrap = wrap_env != NULL ? getenv(wrap_env) : NULL;
	if (wrap == NULL || wrap[0] == '\0') {
		return (b_spawn(argv, out_fd, err_path));
	}
	// "valgrind --tool=callgrind ..." split on spaces, then argv.
	char       *copy = strdup(wrap);
	const char *full[64];
	size_t      n = 0;
	for (char *save = NULL, *t = strtok_r(copy, " ", &save);
	     t != NULL && n < 40; t = strtok_r(NULL, " ", &save)) {
		full[n++] = t;
	}
	for (size_t i = 0; argv[i] != NULL && n < 63; i++) {
		full[n++] = argv[i];
	}
	full[n] = NULL;
	if (full[0][0] != '/') {
		b_die("%s: give the wrapper's absolute path", wrap_env);
	}
	pid_t pid = b_spawn(full, out_fd, err_path);
	free(copy);
	return (pid);
}

pid_t
b_spawn(const char *const argv[], int *out_fd, const char *err_path)
{
	int fds[2] = {-1, -1};
	if (out_fd != NULL && pipe(fds) != 0) {
		b_die("pipe: %s", strerror(errno));
	}
	pid_t pid = fork();
	if (pid < 0) {
		b_die("fork: %s", strerror(errno));
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		if (out_fd != NULL) {
			dup2(fds[1], 1);
			close(fds[0]);
			close(fds[1]);
		}
		if (err_path != NULL) {
			int efd =
			    open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (efd >= 0) {
				dup2(efd, 2);
				close(efd);
			}
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(argv[0], (char *const *) argv);
		_exit(127);
	}
	if (out_fd != NULL) {
		close(fds[1]);
		*out_fd = fds[0];
	}
	return (pid);
}

void
b_read_line(int fd, char *buf, size_t len, int timeout_ms, const char *what)
{
	size_t  n     = 0;
	int64_t until = b_now_ns() + (int64_t) timeout_ms * 1000000;
	buf[0]        = '\0';
	while (n < len - 1 && memchr(buf, '\n', n) == NULL) {
		int64_t left = (until - b_now_ns()) / 1000000;
		if (left <= 0) {
			b_die("%s did not report ready within %d ms", what,
			    timeout_ms);
		}
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, (int) left) <= 0) {
			continue;
		}
		ssize_t r = read(fd, buf + n, len - 1 - n);
		if (r <= 0) {
			b_die("%s exited before it was ready", what);
		}
		n += (size_t) r;
		buf[n] = '\0';
	}
	char *nl = strchr(buf, '\n');
	if (nl != NULL) {
		*nl = '\0';
	}
}

void
b_reap(pid_t pid, int sig, int timeout_ms)
{
	if (pid <= 0) {
		return;
	}
	kill(pid, sig);
	int64_t until = b_now_ns() + (int64_t) timeout_ms * 1000000;
	int     status;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (b_now_ns() >= until) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return;
		}
		b_sleep_ms(5);
	}
}

static char *
b_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return (NULL);
	}
	size_t cap = 65536, n = 0, r;
	char  *buf = malloc(cap + 1);
	while (buf != NULL && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			buf = realloc(buf, (cap *= 2) + 1);
		}
	}
	fclose(f);
	if (buf != NULL) {
		buf[n] = '\0';
	}
	return (buf);
}

static void
b_start_standin(b_env *e)
{
	char errpath[300];
	snprintf(errpath, sizeof(errpath), "%s/standin.log", e->dir);
	// Two stand-in settings that would swamp everything a bench measures,
	// changed without touching its code: it writes a reply's headers and
	// body in two send()s, so with Nagle on the body waits for the
	// client's delayed ACK (~40 ms per call) -- run it with TCP_NODELAY
	// (socketserver's own switch); and its listen backlog is 5, so a burst
	// of new connections loses SYNs and waits 1 s for the retransmit --
	// give it 128, as a real server would have.
	// BENCH_STANDIN_AS_IS=1 keeps both as they are.
	const char *tune = getenv("BENCH_STANDIN_AS_IS") != NULL
	    ? "pass"
	    : "socketserver.StreamRequestHandler.disable_nagle_algorithm = "
	      "True\n"
	      "socketserver.TCPServer.request_queue_size = 128";
	char        shim[512];
	snprintf(shim, sizeof(shim),
	    "import runpy, socketserver, sys\n%s\n"
	    "sys.argv[0] = sys.argv[1]; del sys.argv[1]\n"
	    "runpy.run_path(sys.argv[0], run_name='__main__')\n",
	    tune);
	const char *argv[] = {PYTHON3, "-c", shim, STANDIN_PY, "--user-id",
	    "4242", "--api-token", B_API_TOKEN, "--token-prefix", "bench-tok-",
	    NULL};
	int         fd;
	e->standin = b_spawn(argv, &fd, errpath);
	char line[1024];
	b_read_line(fd, line, sizeof(line), 15000, "stand-in");
	close(fd);
	json_t *j = json_loads(line, 0, NULL);
	if (j == NULL) {
		b_die("stand-in ready line is not JSON: %s", line);
	}
	snprintf(e->lean_url, sizeof(e->lean_url), "%s",
	    json_string_value(json_object_get(j, "lean_url")));
	snprintf(e->brokerage_url, sizeof(e->brokerage_url), "%s",
	    json_string_value(json_object_get(j, "brokerage_url")));
	json_decref(j);
}

static void
b_start_daemon(b_env *e, json_t *cfg)
{
	char cfg_path[300];
	snprintf(cfg_path, sizeof(cfg_path), "%s/leanauthd.json", e->dir);
	snprintf(e->log_path, sizeof(e->log_path), "%s/leanauthd.log", e->dir);
	if (json_dump_file(cfg, cfg_path, JSON_INDENT(2)) != 0) {
		b_die("cannot write %s", cfg_path);
	}
	const char *argv[] = {LEANAUTHD_BIN, "--config", cfg_path, NULL};
	e->daemon =
	    b_spawn_wrapped("BENCH_WRAP_LEANAUTHD", argv, NULL, e->log_path);

	int64_t until = b_now_ns() + 60000LL * 1000000;
	for (;;) {
		char *log = b_read_file(e->log_path);
		char *line =
		    log != NULL ? strstr(log, "\"msg\":\"ready\"") : NULL;
		char *end = line != NULL ? strchr(line, '\n') : NULL;
		if (end != NULL) {
			while (line > log && line[-1] != '\n') {
				line--;
			}
			*end      = '\0';
			json_t *j = json_loads(line, 0, NULL);
			if (j == NULL) {
				b_die("leanauthd ready line: %s", line);
			}
			snprintf(e->rpc_url, sizeof(e->rpc_url), "%s",
			    json_string_value(json_object_get(j, "rpc")));
			snprintf(e->events_url, sizeof(e->events_url), "%s",
			    json_string_value(json_object_get(j, "events")));
			snprintf(e->http_addr, sizeof(e->http_addr), "%s",
			    json_string_value(json_object_get(j, "http")));
			json_decref(j);
			free(log);
			return;
		}
		int status;
		if (waitpid(e->daemon, &status, WNOHANG) == e->daemon) {
			e->daemon = 0;
			b_die("leanauthd exited during startup:\n%s",
			    log != NULL ? log : "");
		}
		free(log);
		if (b_now_ns() >= until) {
			b_die("leanauthd did not become ready");
		}
		b_sleep_ms(10);
	}
}

void
b_start(b_env *e, json_t *cfg)
{
	memset(e, 0, sizeof(*e));
	b_current = e;
	snprintf(e->dir, sizeof(e->dir), "/tmp/leanauth-bench-XXXXXX");
	if (mkdtemp(e->dir) == NULL) {
		b_die("mkdtemp: %s", strerror(errno));
	}
	b_start_standin(e);
	json_t *lean = json_object_get(cfg, "lean_api");
	if (lean == NULL) {
		json_object_set_new(cfg, "lean_api", lean = json_object());
	}
	json_object_set_new(lean, "url", json_string(e->lean_url));
	json_object_set_new(lean, "user_id", json_string("4242"));
	json_object_set_new(lean, "api_token", json_string(B_API_TOKEN));
	size_t  i;
	json_t *p;
	char    allowed[200];
	snprintf(allowed, sizeof(allowed), "%sapi/", e->brokerage_url);
	json_array_foreach (json_object_get(cfg, "profiles"), i, p) {
		json_object_set_new(p, "refresh_token",
		    json_string(B_REFRESH_TOKEN));
		json_t *send = json_object_get(p, "send");
		if (send == NULL) {
			json_object_set_new(p, "send", send = json_object());
		}
		json_object_set_new(send, "allowed_urls",
		    json_pack("[s]", allowed));
	}
	b_start_daemon(e, cfg);
}

void
b_stop(b_env *e)
{
	b_reap(e->daemon, SIGTERM, 10000);
	e->daemon = 0;
	b_reap(e->standin, SIGTERM, 5000);
	e->standin = 0;
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd) != 0) {
		// best effort
	}
	b_current = NULL;
}

// ---- stand-in control over HTTP

typedef struct b_buf {
	char  *p;
	size_t n;
} b_buf;

static size_t
b_collect(char *d, size_t s, size_t n, void *arg)
{
	b_buf *b  = arg;
	char  *np = realloc(b->p, b->n + s * n + 1);
	if (np == NULL) {
		return (0);
	}
	b->p = np;
	memcpy(b->p + b->n, d, s * n);
	b->n += s * n;
	b->p[b->n] = '\0';
	return (s * n);
}

static char *
b_http_text(const char *url, const char *body, CURLcode *ccp)
{
	CURL *h = curl_easy_init();
	b_buf b = {0};
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, b_collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	struct curl_slist *hd = NULL;
	if (body != NULL) {
		hd = curl_slist_append(hd, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	*ccp = curl_easy_perform(h);
	curl_easy_cleanup(h);
	curl_slist_free_all(hd);
	return (b.p);
}

double
b_metric(b_env *e, const char *name)
{
	char     url[256];
	CURLcode cc;
	snprintf(url, sizeof(url), "http://%s/metrics", e->http_addr);
	char *text = b_http_text(url, NULL, &cc);
	if (cc != CURLE_OK || text == NULL) {
		b_die("%s: %s", url, curl_easy_strerror(cc));
	}
	size_t n = strlen(name);
	double v = -1;
	for (char *l = text; l != NULL && *l != '\0';) {
		if (strncmp(l, name, n) == 0 && l[n] == ' ') {
			v = strtod(l + n + 1, NULL);
			break;
		}
		l = strchr(l, '\n');
		l = l != NULL ? l + 1 : NULL;
	}
	free(text);
	if (v < 0) {
		b_die("leanauthd's /metrics has no %s", name);
	}
	return (v);
}

static json_t *
b_http_json(const char *base, const char *path, const char *body)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", base, path);
	CURLcode cc;
	b_buf    b = {0};
	b.p        = b_http_text(url, body, &cc);
	json_t *j =
	    (cc == CURLE_OK && b.p != NULL) ? json_loads(b.p, 0, NULL) : NULL;
	if (j == NULL) {
		b_die("stand-in %s: %s", url,
		    cc != CURLE_OK ? curl_easy_strerror(cc)
		                   : (b.p != NULL ? b.p : "no body"));
	}
	free(b.p);
	return (j);
}

json_t *
b_lean(b_env *e, const char *path, const char *body)
{
	return (b_http_json(e->lean_url, path, body));
}

json_t *
b_broker(b_env *e, const char *path, const char *body)
{
	return (b_http_json(e->brokerage_url, path, body));
}

long
b_json_int(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);
	if (!json_is_integer(v)) {
		b_die("stand-in stats have no integer \"%s\"", key);
	}
	return ((long) json_integer_value(v));
}

// ---- /proc

int64_t
b_proc_cpu_ns(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	char *s = b_read_file(path);
	if (s == NULL) {
		return (0);
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 (1-based), i.e. the 12th and 13th after ')'.
	char              *p  = strrchr(s, ')');
	unsigned long long ut = 0, st = 0;
	if (p != NULL) {
		p += 2;
		for (int f = 3; f < 14 && p != NULL; f++) {
			p = strchr(p, ' ');
			p = p != NULL ? p + 1 : NULL;
		}
		if (p == NULL || sscanf(p, "%llu %llu", &ut, &st) != 2) {
			ut = st = 0;
		}
	}
	free(s);
	long hz = sysconf(_SC_CLK_TCK);
	return ((int64_t) ((ut + st) * (1000000000ULL / (unsigned long) hz)));
}

long
b_proc_hwm_kib(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	char *s = b_read_file(path);
	long  v = -1;
	char *p = s != NULL ? strstr(s, "VmHWM:") : NULL;
	if (p != NULL) {
		v = strtol(p + 6, NULL, 10);
	}
	free(s);
	return (v);
}
