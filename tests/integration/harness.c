// harness.c -- processes, stand-in control and raw nng calls for the
// integration tests.
#include "harness.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "leanauth/v1/rpc.pb-c.h"

int64_t
h_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void
h_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

// h_fork_exec starts argv; the child dies with the test process.
static pid_t
h_fork_exec(const char *const argv[], int out_fd, int err_fd)
{
	pid_t pid = fork();
	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		if (out_fd >= 0) {
			dup2(out_fd, 1);
		}
		if (err_fd >= 0) {
			dup2(err_fd, 2);
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(argv[0], (char *const *) argv);
		_exit(127);
	}
	return (pid);
}

int
h_wait_pid(pid_t pid, int timeout_ms)
{
	int64_t until = h_now_ms() + timeout_ms;
	int     status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			return (WIFEXITED(status) ? WEXITSTATUS(status)
			                          : 128 + WTERMSIG(status));
		}
		if (r < 0 || h_now_ms() >= until) {
			return (-1);
		}
		h_sleep_ms(5);
	}
}

char *
h_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return (NULL);
	}
	size_t cap = 65536, n = 0;
	char  *buf = malloc(cap + 1);
	size_t r;
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
h_start_standin(h_env *e)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	char errpath[300];
	snprintf(errpath, sizeof(errpath), "%s/standin.log", e->dir);
	int         errfd  = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	const char *argv[] = {PYTHON3, STANDIN_PY, "--user-id", "4242",
	    "--api-token", CANARY_API_TOKEN, "--token-prefix",
	    CANARY_ACCESS_PREFIX, NULL};
	e->standin         = h_fork_exec(argv, fds[1], errfd);
	close(fds[1]);
	close(errfd);

	char    line[1024];
	size_t  n     = 0;
	int64_t until = h_now_ms() + 15000;
	while (n < sizeof(line) - 1 && memchr(line, '\n', n) == NULL) {
		struct pollfd p    = {fds[0], POLLIN, 0};
		int64_t       left = until - h_now_ms();
		cr_assert_gt(left, 0, "stand-in did not report ready");
		if (poll(&p, 1, (int) left) <= 0) {
			continue;
		}
		ssize_t r = read(fds[0], line + n, sizeof(line) - 1 - n);
		cr_assert_gt(r, 0, "stand-in exited before ready");
		n += (size_t) r;
	}
	close(fds[0]);
	line[n] = '\0';
	json_error_t je;
	json_t      *j = json_loads(line, 0, &je);
	cr_assert_not_null(j, "stand-in ready line: %s", line);
	snprintf(e->lean_url, sizeof(e->lean_url), "%s",
	    json_string_value(json_object_get(j, "lean_url")));
	snprintf(e->brokerage_url, sizeof(e->brokerage_url), "%s",
	    json_string_value(json_object_get(j, "brokerage_url")));
	json_decref(j);
}

void
h_setup(h_env *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/leanauth-it-XXXXXX");
	cr_assert_not_null(mkdtemp(e->dir));
	snprintf(e->cfg_path, sizeof(e->cfg_path), "%s/leanauthd.json",
	    e->dir);
	snprintf(e->log_path, sizeof(e->log_path), "%s/leanauthd.log", e->dir);
	h_start_standin(e);

	char allowed[200];
	snprintf(allowed, sizeof(allowed), "%sapi/", e->brokerage_url);
	e->cfg = json_pack("{s:{s:s, s:s, s:s}, s:i, s:s,"
	                   " s:{s:s, s:s, s:s, s:i},"
	                   " s:[{s:s, s:s, s:s, s:s, s:i, s:i,"
	                   "     s:{s:[s], s:i, s:i}}]}",
	    "listen", "rpc", "tcp://127.0.0.1:0", "events",
	    "tcp://127.0.0.1:0", "http", "127.0.0.1:0", "workers", 4,
	    "log_level", "debug", "lean_api", "url", e->lean_url, "user_id",
	    "4242", "api_token", CANARY_API_TOKEN, "timeout_ms", 5000,
	    "profiles", "name", "schwab", "brokerage", "CharlesSchwab",
	    "account_id", "A1", "refresh_token", CANARY_REFRESH_TOKEN,
	    "max_retry_count", 3, "retry_interval_ms", 50, "send",
	    "allowed_urls", allowed, "timeout_ms", 5000, "max_body_bytes",
	    65536);
	cr_assert_not_null(e->cfg);
}

json_t *
h_profile(h_env *e, size_t i)
{
	return (json_array_get(json_object_get(e->cfg, "profiles"), i));
}

json_t *
h_add_profile(h_env *e, const char *name, const char *account_id)
{
	json_t *p = json_deep_copy(h_profile(e, 0));
	json_object_set_new(p, "name", json_string(name));
	json_object_set_new(p, "account_id", json_string(account_id));
	json_array_append_new(json_object_get(e->cfg, "profiles"), p);
	return (p);
}

void
h_daemon_start(h_env *e)
{
	cr_assert_eq(json_dump_file(e->cfg, e->cfg_path, JSON_INDENT(2)), 0);
	int logfd = open(e->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(logfd, 0);
	const char *argv[] = {LEANAUTHD_BIN, "--config", e->cfg_path, NULL};
	e->daemon          = h_fork_exec(argv, -1, logfd);
	close(logfd);

	int64_t until = h_now_ms() + 15000;
	for (;;) {
		char *log = h_read_file(e->log_path);
		char *line =
		    log != NULL ? strstr(log, "\"msg\":\"ready\"") : NULL;
		if (line != NULL) {
			while (line > log && line[-1] != '\n') {
				line--;
			}
			char *end = strchr(line, '\n');
			if (end != NULL) {
				*end      = '\0';
				json_t *j = json_loads(line, 0, NULL);
				cr_assert_not_null(j, "ready line: %s", line);
				snprintf(e->rpc_url, sizeof(e->rpc_url), "%s",
				    json_string_value(
				        json_object_get(j, "rpc")));
				snprintf(e->events_url, sizeof(e->events_url),
				    "%s",
				    json_string_value(
				        json_object_get(j, "events")));
				snprintf(e->http_addr, sizeof(e->http_addr),
				    "%s",
				    json_string_value(
				        json_object_get(j, "http")));
				json_decref(j);
				free(log);
				return;
			}
		}
		int status;
		if (waitpid(e->daemon, &status, WNOHANG) == e->daemon) {
			e->daemon = 0;
			cr_assert_fail("leanauthd exited during startup:\n%s",
			    log ? log : "");
		}
		free(log);
		cr_assert_lt(h_now_ms(), until,
		    "leanauthd did not become ready");
		h_sleep_ms(10);
	}
}

int
h_daemon_stop(h_env *e, int sig, int timeout_ms, int64_t *elapsed_ms)
{
	if (e->daemon <= 0) {
		return (-1);
	}
	int64_t t0 = h_now_ms();
	kill(e->daemon, sig);
	int rv = h_wait_pid(e->daemon, timeout_ms);
	if (elapsed_ms != NULL) {
		*elapsed_ms = h_now_ms() - t0;
	}
	if (rv >= 0) {
		e->daemon = 0;
	}
	return (rv);
}

void
h_teardown(h_env *e)
{
	// Every test ends with a clean shutdown: exit 0, which under
	// -DLEANAUTH_SANITIZE=ON also means no leak and no sanitizer report.
	int status = 0;
	if (e->daemon > 0 &&
	    (status = h_daemon_stop(e, SIGTERM, 10000, NULL)) < 0) {
		kill(e->daemon, SIGKILL);
		h_wait_pid(e->daemon, 5000);
	}
	if (e->standin > 0) {
		kill(e->standin, SIGTERM);
		if (h_wait_pid(e->standin, 5000) < 0) {
			kill(e->standin, SIGKILL);
			h_wait_pid(e->standin, 5000);
		}
	}
	json_decref(e->cfg);
	char *log  = h_read_file(e->log_path);
	bool  leak = log != NULL && strstr(log, CANARY_ANY) != NULL;
	free(log);
	if (!leak) {
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
		if (system(cmd) != 0) {
			// best effort
		}
	}
	h_fini_check(!leak,
	    "a canary secret reached leanauthd's log (kept in %s)",
	    e->log_path);
	h_fini_check(status == 0,
	    "leanauthd exited with %d at the end of the test", status);
}

void
h_fini_check(bool ok, const char *fmt, ...)
{
	if (ok) {
		return;
	}
	char    msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cr_log_error("%s", msg);
	_exit(1);
}

leanauth_client *
h_client(h_env *e)
{
	leanauth_client *c;
	leanauth_error   err;
	leanauth_options o = {.timeout_ms = 10000, .connect_timeout_ms = 5000};
	int              rv = leanauth_open(&c, e->rpc_url, &o, &err);
	cr_assert_eq(rv, 0, "leanauth_open: %s", err.message);
	return (c);
}

// ---- HTTP to the stand-in's control API

typedef struct h_buf {
	char  *p;
	size_t n;
} h_buf;

static size_t
h_collect(char *d, size_t s, size_t n, void *arg)
{
	h_buf *b  = arg;
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

static json_t *
h_http_json(const char *base, const char *path, const char *body)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", base,
	    path[0] == '/' ? path + 1 : path);
	CURL *h = curl_easy_init();
	h_buf b = {0};
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 130000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, h_collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	struct curl_slist *hd = NULL;
	if (body != NULL) {
		hd = curl_slist_append(hd, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	CURLcode cc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	curl_slist_free_all(hd);
	json_t *j = (cc == CURLE_OK && b.p != NULL)
	    ? json_loads(b.p, JSON_ALLOW_NUL, NULL)
	    : NULL;
	free(b.p);
	return (j);
}

json_t *
h_lean(h_env *e, const char *path, const char *body)
{
	return (h_http_json(e->lean_url, path, body));
}

json_t *
h_broker(h_env *e, const char *path, const char *body)
{
	return (h_http_json(e->brokerage_url, path, body));
}

static long
h_stat(json_t *j, const char *key)
{
	cr_assert_not_null(j, "stand-in stats unavailable");
	json_t *v = json_object_get(j, key);
	cr_assert(json_is_integer(v), "stats have no integer %s", key);
	long n = (long) json_integer_value(v);
	json_decref(j);
	return (n);
}

long
h_lean_stat(h_env *e, const char *key)
{
	return (h_stat(h_lean(e, "_control/stats", NULL), key));
}

long
h_broker_stat(h_env *e, const char *key)
{
	return (h_stat(h_broker(e, "_control/stats", NULL), key));
}

void
h_lean_plan(h_env *e, const char *account, const char *plan, const char *dflt)
{
	char body[1024];
	snprintf(body, sizeof(body),
	    "{\"account_id\":\"%s\",\"plan\":%s,\"default\":\"%s\"}", account,
	    plan != NULL ? plan : "[]", dflt != NULL ? dflt : "ok");
	json_t *j = h_lean(e, "_control/plan", body);
	cr_assert_not_null(j, "stand-in plan refused: %s", body);
	json_decref(j);
}

bool
h_lean_wait(h_env *e, const char *query, int timeout_ms)
{
	char path[256];
	snprintf(path, sizeof(path), "_control/wait?%s&timeout_ms=%d", query,
	    timeout_ms);
	json_t *j = h_lean(e, path, NULL);
	bool    r = j != NULL && json_is_true(json_object_get(j, "reached"));
	json_decref(j);
	return (r);
}

bool
h_log_contains(h_env *e, const char *needle)
{
	char *log = h_read_file(e->log_path);
	bool  r   = log != NULL && strstr(log, needle) != NULL;
	free(log);
	return (r);
}

bool
h_wait_log(h_env *e, const char *needle, int timeout_ms)
{
	int64_t until = h_now_ms() + timeout_ms;
	while (!h_log_contains(e, needle)) {
		if (h_now_ms() >= until) {
			return (false);
		}
		h_sleep_ms(10);
	}
	return (true);
}

// ---- processes

pid_t
h_spawn(h_env *e, const char *name, const char *const argv[])
{
	char out[300], err[300];
	snprintf(out, sizeof(out), "%s/%s.out", e->dir, name);
	snprintf(err, sizeof(err), "%s/%s.err", e->dir, name);
	int   ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int   efd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t pid = h_fork_exec(argv, ofd, efd);
	close(ofd);
	close(efd);
	return (pid);
}

int
h_run(const char *const argv[], int timeout_ms, char *out, size_t outlen,
    char *err, size_t errlen)
{
	char dir[] = "/tmp/leanauth-run-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char op[64], ep[64];
	snprintf(op, sizeof(op), "%s/out", dir);
	snprintf(ep, sizeof(ep), "%s/err", dir);
	int   ofd = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int   efd = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t pid = h_fork_exec(argv, ofd, efd);
	close(ofd);
	close(efd);
	int rv = h_wait_pid(pid, timeout_ms);
	if (rv < 0) {
		kill(pid, SIGKILL);
		h_wait_pid(pid, 5000);
	}
	char *o = h_read_file(op), *er = h_read_file(ep);
	if (out != NULL) {
		snprintf(out, outlen, "%s", o != NULL ? o : "");
	}
	if (err != NULL) {
		snprintf(err, errlen, "%s", er != NULL ? er : "");
	}
	free(o);
	free(er);
	unlink(op);
	unlink(ep);
	rmdir(dir);
	return (rv);
}

// ---- raw nng

uint8_t *
h_envelope(const char *method, const void *payload, size_t plen,
    uint32_t timeout_ms, size_t *len)
{
	Leanauth__V1__RpcRequest r = LEANAUTH__V1__RPC_REQUEST__INIT;
	r.method                   = (char *) method;
	r.payload.data             = (uint8_t *) payload;
	r.payload.len              = plen;
	r.timeout_ms               = timeout_ms;
	*len         = leanauth__v1__rpc_request__get_packed_size(&r);
	uint8_t *buf = malloc(*len + 1);
	cr_assert_not_null(buf);
	leanauth__v1__rpc_request__pack(&r, buf);
	return (buf);
}

int
h_raw_call(h_env *e, const void *buf, size_t len, int timeout_ms, char *msg,
    size_t msglen)
{
	nng_socket s;
	cr_assert_eq(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, timeout_ms + 60000);
	cr_assert_eq(nng_dial(s, e->rpc_url, NULL, 0), 0);
	int    code = -1;
	void  *rbuf = NULL;
	size_t rlen = 0;
	if (nng_send(s, (void *) buf, len, 0) == 0 &&
	    nng_recv(s, &rbuf, &rlen, NNG_FLAG_ALLOC) == 0) {
		Leanauth__V1__RpcResponse *r =
		    leanauth__v1__rpc_response__unpack(NULL, rlen, rbuf);
		cr_assert_not_null(r,
		    "leanauthd's reply is not an RpcResponse");
		code = r->status != NULL ? r->status->code : 0;
		if (msg != NULL) {
			snprintf(msg, msglen, "%s",
			    r->status != NULL ? r->status->message : "");
		}
		leanauth__v1__rpc_response__free_unpacked(r, NULL);
		nng_free(rbuf, rlen);
	}
	nng_close(s);
	return (code);
}
