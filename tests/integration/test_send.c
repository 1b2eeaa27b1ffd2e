// test_send.c -- Send end to end: real leanauthd, stand-in Lean API and
// brokerage API, protobuf over nng through libleanauth and the CLI. Every
// refusal is also checked on the brokerage side: nothing may reach it.
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "leanauth/v1/rpc.pb-c.h"
#include "leanauth/v1/token.pb-c.h"

static h_env E;

static void
setup(void)
{
	h_setup(&E);
}

// h_teardown also requires leanauthd to exit 0 on SIGTERM.
static void
teardown(void)
{
	h_teardown(&E);
}

TestSuite(send, .init = setup, .fini = teardown, .timeout = 120);

// ---- helpers

// U formats a URL into one of a few rotating buffers (enough for the
// arguments of one call).
static const char *U(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static const char *
U(const char *fmt, ...)
{
	static char ring[8][512];
	static int  next;
	char       *b = ring[next++ % 8];
	va_list     ap;
	va_start(ap, fmt);
	vsnprintf(b, sizeof(ring[0]), fmt, ap);
	va_end(ap);
	return (b);
}

// B is the brokerage stand-in's URL with path appended (path has no
// leading slash).
static const char *
B(const char *path)
{
	return (U("%s%s", E.brokerage_url, path));
}

// broker_port is the brokerage stand-in's port.
static int
broker_port(void)
{
	int port = 0;
	cr_assert_eq(sscanf(E.brokerage_url, "http://127.0.0.1:%d/", &port), 1,
	    "brokerage url %s", E.brokerage_url);
	return (port);
}

// closed_port returns a loopback port nothing listens on.
static int
closed_port(void)
{
	int                fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a  = {.sin_family = AF_INET};
	socklen_t          n  = sizeof(a);
	a.sin_addr.s_addr     = htonl(INADDR_LOOPBACK);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *) &a, &n), 0);
	close(fd);
	return (ntohs(a.sin_port));
}

static void
set_allowed(size_t profile, const char *const *urls, size_t n)
{
	json_t *send = json_object_get(h_profile(&E, profile), "send");
	json_t *a    = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(a, json_string(urls[i]));
	}
	json_object_set_new(send, "allowed_urls", a);
}

typedef struct req {
	const char            *profile;
	const char            *method;
	const char            *url;
	const leanauth_header *headers;
	size_t                 n_headers;
	const void            *body;
	size_t                 body_len;
	uint32_t               timeout_ms;
} req;

static int
do_send(leanauth_client *c, const req *q, leanauth_response *r,
    leanauth_error *err)
{
	leanauth_request      rq = {.profile = q->profile,
	         .method    = q->method != NULL ? q->method : "GET",
	         .url       = q->url,
	         .headers   = q->headers,
	         .n_headers = q->n_headers,
	         .body      = q->body,
	         .body_len  = q->body_len};
	leanauth_call_options co = {.timeout_ms = q->timeout_ms};
	memset(err, 0, sizeof(*err));
	return (leanauth_send(c, &rq, &co, r, err));
}

// get_ok sends GET url and asserts the brokerage answered.
static void
get_ok(leanauth_client *c, const char *url, int status, leanauth_response *r)
{
	leanauth_error err;
	int            rv = do_send(c, &(req) {.url = url}, r, &err);
	cr_assert_eq(rv, 0, "GET %s: %s: %s", url, leanauth_code_name(rv),
	    err.message);
	cr_assert_eq(r->status_code, status, "GET %s: HTTP %d: %s", url,
	    r->status_code, (char *) r->body);
}

// expect_code sends q, asserts the call failed with code and that nothing
// reached the brokerage, and that the message holds no secret.
static void
expect_code(leanauth_client *c, const req *q, int code, leanauth_error *err)
{
	leanauth_response r;
	long              before = h_broker_stat(&E, "requests");
	int               rv     = do_send(c, q, &r, err);
	cr_assert_eq(rv, code, "%s %s: want %s, got %s (HTTP %d): %s",
	    q->method ? q->method : "GET", q->url, leanauth_code_name(code),
	    leanauth_code_name(rv), r.status_code, err->message);
	cr_assert_null(strstr(err->message, CANARY_ANY), "secret in: %s",
	    err->message);
	cr_assert_eq(h_broker_stat(&E, "requests"), before,
	    "%s reached the brokerage", q->url);
	leanauth_response_clear(&r);
}

static void
expect_denied(leanauth_client *c, const char *profile, const char *url)
{
	leanauth_error err;
	expect_code(c, &(req) {.profile = profile, .url = url},
	    LEANAUTH_PERMISSION_DENIED, &err);
}

// echo parses the brokerage stand-in's echo (the response body).
static json_t *
echo(const leanauth_response *r)
{
	json_error_t je;
	json_t      *j = json_loadb((const char *) r->body, r->body_len,
	         JSON_ALLOW_NUL, &je);
	cr_assert_not_null(j, "not an echo: %.*s", (int) r->body_len,
	    (char *) r->body);
	return (j);
}

// echo_headers collects the values of header name (case-insensitive) that
// the brokerage received, in order; returns how many.
static size_t
echo_headers(json_t *j, const char *name, const char **vals, size_t max)
{
	json_t *hs = json_object_get(j, "headers");
	size_t  n  = 0, i;
	json_t *h;
	json_array_foreach (hs, i, h) {
		if (strcasecmp(json_string_value(json_array_get(h, 0)),
		        name) == 0) {
			if (n < max) {
				vals[n] =
				    json_string_value(json_array_get(h, 1));
			}
			n++;
		}
	}
	return (n);
}

static const char *
echo_header(json_t *j, const char *name)
{
	const char *v = NULL;
	return (echo_headers(j, name, &v, 1) > 0 ? v : NULL);
}

static const char *
resp_header(const leanauth_response *r, const char *name, size_t nth)
{
	for (size_t i = 0; i < r->n_headers; i++) {
		if (strcasecmp(r->headers[i].name, name) == 0 && nth-- == 0) {
			return (r->headers[i].value);
		}
	}
	return (NULL);
}

// token fetches the current token, as a client would.
static void
token(leanauth_client *c, leanauth_token *t)
{
	leanauth_error err;
	cr_assert_eq(leanauth_get_token(c, "", false, 0, NULL, t, &err), 0,
	    "%s", err.message);
}

static void
revoke_token(const char *tok)
{
	json_t *j =
	    h_broker(&E, "_control/revoke", U("{\"tokens\":[\"%s\"]}", tok));
	cr_assert_not_null(j, "revoke refused");
	json_decref(j);
}

static long
broker_by_status(const char *code)
{
	json_t *st = h_broker(&E, "_control/stats", NULL);
	cr_assert_not_null(st);
	long n = (long) json_integer_value(
	    json_object_get(json_object_get(st, "by_status"), code));
	json_decref(st);
	return (n);
}

typedef struct h_buf {
	char  *p;
	size_t n;
} h_buf;

static size_t
collect(char *d, size_t s, size_t n, void *arg)
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

// metric reads one unlabelled value from leanauthd's /metrics.
static long
metric(const char *name)
{
	CURL *h = curl_easy_init();
	h_buf b = {0};
	curl_easy_setopt(h, CURLOPT_URL, U("http://%s/metrics", E.http_addr));
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	CURLcode cc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	cr_assert_eq(cc, CURLE_OK, "/metrics: %s", curl_easy_strerror(cc));
	char key[128];
	snprintf(key, sizeof(key), "\n%s ", name);
	char *at = strstr(b.p, key);
	cr_assert_not_null(at, "no %s in /metrics", name);
	long v = strtol(at + strlen(key), NULL, 10);
	free(b.p);
	return (v);
}

// ---- round trip

Test(send, round_trip_attaches_the_bearer_token)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	token(c, &t);
	cr_assert_eq(strncmp(t.access_token, CANARY_ACCESS_PREFIX,
	                 strlen(CANARY_ACCESS_PREFIX)),
	    0);

	const leanauth_header hs[] = {
	    {"X-Custom", "custom value"},
	    {"X-Repeated", "one"},
	    {"Authorization", "Bearer caller-supplied"},
	    {"X-Repeated", "two"},
	    {"Content-Type", "application/octet-stream"},
	    {"X-Empty", ""},
	    // Hop-by-hop: none of these may be forwarded.
	    {"Connection", "keep-alive, X-Hop-Named"},
	    {"X-Hop-Named", "named in Connection"},
	    {"Keep-Alive", "timeout=5"},
	    {"Transfer-Encoding", "chunked"},
	    {"Upgrade", "websocket"},
	    {"TE", "trailers"},
	    {"Proxy-Authorization", "Basic c2VjcmV0"},
	    {"Proxy-Connection", "keep-alive"},
	    {"Proxy-Foo", "bar"},
	};
	const char        body[] = "binary\0body\r\n{\"qty\":5}";
	leanauth_response r;
	leanauth_error    err;
	req               q = {.method = "POST",
	                  .url         = B("api/orders/42?side=buy&qty=5"),
	                  .headers     = hs,
	                  .n_headers   = sizeof(hs) / sizeof(hs[0]),
	                  .body        = body,
	                  .body_len    = sizeof(body) - 1};
	cr_assert_eq(do_send(c, &q, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.status_code, 200);

	json_t *j = echo(&r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "method")),
	    "POST");
	cr_assert_str_eq(json_string_value(json_object_get(j, "path")),
	    "/api/orders/42");
	cr_assert_str_eq(json_string_value(json_object_get(j, "query")),
	    "side=buy&qty=5");
	json_t *jb = json_object_get(j, "body");
	cr_assert_eq(json_string_length(jb), sizeof(body) - 1);
	cr_assert_eq(memcmp(json_string_value(jb), body, sizeof(body) - 1), 0);

	// The token the stand-in issued, and only it, as the Authorization.
	const char *auth[4];
	cr_assert_eq(echo_headers(j, "Authorization", auth, 4), 1);
	cr_assert_str_eq(auth[0], U("Bearer %s", t.access_token));
	cr_assert_str_eq(echo_header(j, "X-Custom"), "custom value");
	const char *rep[4];
	cr_assert_eq(echo_headers(j, "X-Repeated", rep, 4), 2);
	cr_assert_str_eq(rep[0], "one");
	cr_assert_str_eq(rep[1], "two");
	cr_assert_str_eq(echo_header(j, "Content-Type"),
	    "application/octet-stream");
	cr_assert_str_eq(echo_header(j, "X-Empty"), "");
	cr_assert_str_eq(echo_header(j, "Content-Length"),
	    U("%zu", sizeof(body) - 1));
	static const char *const hop[] = {"Connection", "X-Hop-Named",
	    "Keep-Alive", "Transfer-Encoding", "Upgrade", "TE",
	    "Proxy-Authorization", "Proxy-Connection", "Proxy-Foo", "Expect"};
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
		cr_assert_null(echo_header(j, hop[i]), "%s was forwarded",
		    hop[i]);
	}
	json_decref(j);

	// The response as the brokerage sent it.
	cr_assert_str_eq(resp_header(&r, "X-Standin", 0), "brokerage");
	cr_assert_str_eq(resp_header(&r, "Set-Cookie", 0), "a=1");
	cr_assert_str_eq(resp_header(&r, "Set-Cookie", 1), "b=2");
	cr_assert_null(resp_header(&r, "Set-Cookie", 2));
	cr_assert_str_eq(resp_header(&r, "Content-Type", 0),
	    "application/json");
	cr_assert_str_eq(resp_header(&r, "Content-Length", 0),
	    U("%zu", r.body_len));
	cr_assert_eq(h_broker_stat(&E, "requests"), 1);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 1);

	leanauth_response_clear(&r);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(send, session_token_scheme)
{
	json_decref(h_lean(&E, "_control/plan",
	    "{\"account_id\":\"A1\",\"token_type\":\"SessionToken\"}"));
	h_daemon_start(&E);
	leanauth_client  *c = h_client(&E);
	leanauth_response r;
	get_ok(c, B("api/x"), 200, &r);
	json_t *j = echo(&r);
	cr_assert_str_eq(echo_header(j, "Authorization"),
	    U("SessionToken %s1", CANARY_ACCESS_PREFIX));
	json_decref(j);
	leanauth_response_clear(&r);
	leanauth_close(c);
}

Test(send, every_method_reaches_the_brokerage)
{
	h_daemon_start(&E);
	leanauth_client         *c         = h_client(&E);
	static const char *const methods[] = {"GET", "HEAD", "POST", "PUT",
	    "PATCH", "DELETE"};
	for (size_t i = 0; i < 6; i++) {
		const char       *m    = methods[i];
		bool              head = strcmp(m, "HEAD") == 0;
		leanauth_response r;
		leanauth_error    err;
		req               q = {.method = m,
		                  .url         = B(U("api/m/%s", m)),
		                  .body        = head ? NULL : m,
		                  .body_len    = head ? 0 : strlen(m)};
		cr_assert_eq(do_send(c, &q, &r, &err), 0, "%s: %s", m,
		    err.message);
		cr_assert_eq(r.status_code, 200, "%s", m);
		json_t *st = h_broker(&E, "_control/stats", NULL);
		json_t *lr = json_object_get(st, "last_request");
		cr_assert_str_eq(
		    json_string_value(json_object_get(lr, "method")), m);
		cr_assert_str_eq(
		    json_string_value(json_object_get(lr, "path")),
		    U("/api/m/%s", m));
		if (head) {
			cr_assert_eq(r.body_len, 0, "HEAD has no body");
			cr_assert_not_null(
			    resp_header(&r, "Content-Length", 0));
		} else {
			cr_assert_str_eq(
			    json_string_value(json_object_get(lr, "body")), m);
			json_t *j = echo(&r);
			cr_assert_str_eq(
			    json_string_value(json_object_get(j, "method")),
			    m);
			json_decref(j);
		}
		json_decref(st);
		leanauth_response_clear(&r);
	}
	// A body-less DELETE and GET carry no body either.
	leanauth_response r;
	leanauth_error    err;
	req               del = {.method = "DELETE", .url = B("api/d")};
	cr_assert_eq(do_send(c, &del, &r, &err), 0, "%s", err.message);
	json_t *j = echo(&r);
	cr_assert_eq(json_integer_value(json_object_get(j, "body_len")), 0);
	json_decref(j);
	leanauth_response_clear(&r);
	cr_assert_eq(h_broker_stat(&E, "requests"), 7);
	leanauth_close(c);
}

Test(send, other_methods_are_invalid)
{
	h_daemon_start(&E);
	leanauth_client         *c = h_client(&E);
	leanauth_error           err;
	static const char *const bad[] = {"TRACE", "get", "OPTIONS", "CONNECT",
	    "", "GET ", "POST\r\nX: y"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_code(c, &(req) {.method = bad[i], .url = B("api/x")},
		    LEANAUTH_INVALID_ARGUMENT, &err);
	}
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 0,
	    "refused before any token");
	leanauth_close(c);
}

Test(send, header_injection_is_invalid)
{
	h_daemon_start(&E);
	leanauth_client       *c = h_client(&E);
	leanauth_error         err;
	const leanauth_header  cr[]    = {{"X-A", "a\r\nX-Injected: 1"}};
	const leanauth_header  lf[]    = {{"X-A", "a\nX-Injected: 1"}};
	const leanauth_header  bare[]  = {{"X-A", "a\rb"}};
	const leanauth_header  name[]  = {{"X-A\r\nX-Injected", "1"}};
	const leanauth_header  colon[] = {{"X-A: b", "1"}};
	const leanauth_header  empty[] = {{"", "1"}};
	const leanauth_header *all[]   = {cr, lf, bare, name, colon, empty};
	for (size_t i = 0; i < 6; i++) {
		req q = {.url = B("api/x"), .headers = all[i], .n_headers = 1};
		expect_code(c, &q, LEANAUTH_INVALID_ARGUMENT, &err);
	}
	leanauth_close(c);
}

// ---- the allowlist

Test(send, userinfo_is_denied)
{
	h_daemon_start(&E);
	leanauth_client *c    = h_client(&E);
	int              port = broker_port();
	// The allowed host:port as userinfo in front of another (loopback)
	// host: were it honoured, the request would land on the stand-in.
	expect_denied(c, NULL,
	    U("http://127.0.0.1:%d@localhost:%d/api/x", port, port));
	expect_denied(c, NULL, U("http://user:pw@127.0.0.1:%d/api/x", port));
	expect_denied(c, NULL, U("http://user@127.0.0.1:%d/api/x", port));
	expect_denied(c, NULL, U("http://:@127.0.0.1:%d/api/x", port));
	expect_denied(c, NULL, U("http://@127.0.0.1:%d/api/x", port));
	cr_assert_eq(metric("leanauth_send_denied_total"), 5);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 0,
	    "a refused URL costs no token");
	leanauth_close(c);
}

Test(send, host_must_match_exactly)
{
	h_daemon_start(&E);
	leanauth_client *c    = h_client(&E);
	int              port = broker_port();
	expect_denied(c, NULL, U("http://localhost:%d/api/x", port));
	expect_denied(c, NULL, U("http://127.0.0.10:%d/api/", port));
	expect_denied(c, NULL, U("http://127.0.0.1.localhost:%d/api/x", port));
	expect_denied(c, NULL, U("http://127.0.0.1.:%d/api/x", port));
	expect_denied(c, NULL, U("http://[::1]:%d/api/x", port));
	expect_denied(c, NULL, U("http://127.0.0.2:%d/api/x", port));
	leanauth_close(c);
}

Test(send, host_matches_case_insensitively)
{
	const char *allowed[] = {U("http://localhost:%d/api/", broker_port())};
	set_allowed(0, allowed, 1);
	h_daemon_start(&E);
	leanauth_client  *c    = h_client(&E);
	int               port = broker_port();
	leanauth_response r;
	get_ok(c, U("http://LOCALHOST:%d/api/x", port), 200, &r);
	leanauth_response_clear(&r);
	get_ok(c, U("HTTP://LocalHost:%d/api/y", port), 200, &r);
	leanauth_response_clear(&r);
	cr_assert_eq(h_broker_stat(&E, "requests"), 2);
	// ... and exactly: the address behind the name is another host here.
	expect_denied(c, NULL, U("http://127.0.0.1:%d/api/x", port));
	leanauth_close(c);
}

Test(send, scheme_and_port_must_match)
{
	h_daemon_start(&E);
	leanauth_client *c    = h_client(&E);
	int              port = broker_port();
	expect_denied(c, NULL, U("https://127.0.0.1:%d/api/x", port));
	expect_denied(c, NULL, U("ftp://127.0.0.1:%d/api/x", port));
	expect_denied(c, NULL, U("http://127.0.0.1:%d/api/x", closed_port()));
	expect_denied(c, NULL, U("http://127.0.0.1/api/x"));
	leanauth_close(c);
}

Test(send, path_prefix_ends_on_a_slash)
{
	const char *allowed[] = {B("api/"), B("v1")};
	set_allowed(0, allowed, 2);
	h_daemon_start(&E);
	leanauth_client  *c = h_client(&E);
	leanauth_response r;

	expect_denied(c, NULL, B("apix"));
	expect_denied(c, NULL, B("api"));
	expect_denied(c, NULL, B("api?x=/api/"));
	expect_denied(c, NULL, B("x/api/"));
	expect_denied(c, NULL, B(""));
	// "{brokerage}v1" admits /v1 and what is under /v1/, not /v1x.
	get_ok(c, B("v1"), 200, &r);
	leanauth_response_clear(&r);
	get_ok(c, B("v1/x"), 200, &r);
	leanauth_response_clear(&r);
	get_ok(c, B("v1?q=1"), 200, &r);
	leanauth_response_clear(&r);
	expect_denied(c, NULL, B("v1x"));
	expect_denied(c, NULL, B("v1.json"));
	cr_assert_eq(h_broker_stat(&E, "requests"), 3);
	leanauth_close(c);
}

Test(send, encoded_and_dot_segment_tricks_are_denied)
{
	h_daemon_start(&E);
	leanauth_client         *c        = h_client(&E);
	static const char *const tricks[] = {
	    "api/../secret", // normalised to /secret
	    "api/x/../../secret",
	    "api/%2e%2e/secret", // a server may decode and resolve these
	    "api/%2E%2E/secret",
	    "api/.%2e/secret",
	    "api/..%2fsecret",
	    "api/x%2f..%2f..%2fsecret",
	    "api%2f../x",
	    "api%2fx",
	    "api/..\\secret", // backslash as a separator
	    "api\\..\\secret",
	    "api/x%5c..%5c..%5csecret",
	    "api/%00", // control bytes after decoding
	    "api/x%0d%0aX-Injected:%201",
	};
	for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
		expect_denied(c, NULL, B(tricks[i]));
	}

	// Dot segments that stay under the prefix are resolved, and the
	// resolved path is what is sent.
	leanauth_response r;
	get_ok(c, B("api/./x"), 200, &r);
	json_t *j = echo(&r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "path")),
	    "/api/x");
	json_decref(j);
	leanauth_response_clear(&r);
	get_ok(c, B("api/x/../y?q=../z"), 200, &r);
	j = echo(&r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "path")),
	    "/api/y");
	cr_assert_str_eq(json_string_value(json_object_get(j, "query")),
	    "q=../z");
	json_decref(j);
	leanauth_response_clear(&r);
	// Percent-encoding that is not a separator passes as it is.
	get_ok(c, B("api/a%20b"), 200, &r);
	j = echo(&r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "path")),
	    "/api/a%20b");
	json_decref(j);
	leanauth_response_clear(&r);
	leanauth_close(c);
}

Test(send, unparseable_url_is_invalid)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_error   err;
	const char *bad[] = {"not a url", "", "http://", "/api/x", "api/x",
	    U("http://127.0.0.1:99999/api/"), B("api/a b"),
	    U("http://127.0.0.1\\api/x")};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_code(c, &(req) {.url = bad[i]},
		    LEANAUTH_INVALID_ARGUMENT, &err);
	}
	leanauth_close(c);
}

Test(send, profile_without_allowed_urls_refuses_everything)
{
	json_t *p = h_add_profile(&E, "tokens-only", "B2");
	json_object_del(json_object_get(p, "send"), "allowed_urls");
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	expect_denied(c, "tokens-only", B("api/x"));
	expect_denied(c, "tokens-only", B(""));
	expect_denied(c, "tokens-only", "http://127.0.0.1/");
	// The other profile is unaffected.
	leanauth_response r;
	get_ok(c, B("api/x"), 200, &r);
	leanauth_response_clear(&r);
	leanauth_close(c);
}

Test(send, unknown_profile_and_malformed_request)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_error   err;
	expect_code(c, &(req) {.profile = "nope", .url = B("api/x")},
	    LEANAUTH_NOT_FOUND, &err);
	cr_assert(strstr(err.message, "nope") != NULL, "%s", err.message);

	char     msg[512];
	size_t   len;
	uint8_t *env = h_envelope("leanauth.v1.TokenService/Send", "\x12\xff",
	    2, 0, &len);
	cr_assert_eq(h_raw_call(&E, env, len, 5000, msg, sizeof(msg)),
	    LEANAUTH_INVALID_ARGUMENT, "%s", msg);
	free(env);
	cr_assert_eq(h_broker_stat(&E, "requests"), 0);
	leanauth_close(c);
}

// ---- 401: refresh once, retry once

Test(send, unauthorized_refreshes_and_retries_once)
{
	h_daemon_start(&E);
	leanauth_client  *c = h_client(&E);
	leanauth_response r;
	get_ok(c, B("api/x"), 200, &r);
	leanauth_response_clear(&r);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 1);

	revoke_token(CANARY_ACCESS_PREFIX "1");
	get_ok(c, B("api/x"), 200, &r);
	json_t *j = echo(&r);
	cr_assert_str_eq(echo_header(j, "Authorization"),
	    "Bearer " CANARY_ACCESS_PREFIX "2");
	json_decref(j);
	leanauth_response_clear(&r);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 2,
	    "exactly one more refresh");
	cr_assert_eq(broker_by_status("401"), 1);
	cr_assert_eq(h_broker_stat(&E, "requests"), 3);

	// The refreshed token is what GetAccessToken hands out now.
	leanauth_token t;
	token(c, &t);
	cr_assert_str_eq(t.access_token, CANARY_ACCESS_PREFIX "2");
	cr_assert_eq(t.generation, 2);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

typedef struct sender {
	leanauth_client  *c;
	const char       *url;
	int               rv;
	leanauth_response r;
	leanauth_error    err;
} sender;

static void *
sender_main(void *p)
{
	sender *s = p;
	s->rv     = do_send(s->c, &(req) {.url = s->url, .timeout_ms = 30000},
	        &s->r, &s->err);
	return (NULL);
}

// wait_metric polls /metrics until name reaches at least want.
static bool
wait_metric(const char *name, long want, int timeout_ms)
{
	int64_t until = h_now_ms() + timeout_ms;
	while (metric(name) < want) {
		if (h_now_ms() >= until) {
			return (false);
		}
		usleep(5000);
	}
	return (true);
}

Test(send, concurrent_unauthorized_calls_share_one_refresh)
{
	enum { N = 20, WORKERS = 4 };
	h_daemon_start(&E);
	leanauth_client  *c = h_client(&E);
	leanauth_response r;
	get_ok(c, B("api/x"), 200, &r);
	leanauth_response_clear(&r);

	// Make all twenty start with token 1: first every worker is taken by
	// a slow call (already past the brokerage's token check), then the
	// twenty queue up behind them holding token 1, and only then does the
	// brokerage start refusing it.
	sender    s[N + WORKERS];
	pthread_t th[N + WORKERS];
	char      slow[256], url[256];
	snprintf(slow, sizeof(slow), "%sapi/slow?ms=3000", E.brokerage_url);
	snprintf(url, sizeof(url), "%sapi/concurrent", E.brokerage_url);
	for (int i = 0; i < WORKERS; i++) {
		s[N + i] = (sender) {.c = c, .url = slow};
		cr_assert_eq(
		    pthread_create(&th[N + i], NULL, sender_main, &s[N + i]),
		    0);
	}
	json_t *w = h_broker(&E,
	    U("_control/wait?in_flight=%d&timeout_ms=10000", WORKERS), NULL);
	cr_assert(json_is_true(json_object_get(w, "reached")),
	    "workers not busy");
	json_decref(w);
	revoke_token(CANARY_ACCESS_PREFIX "1");
	// The refresh the 401s cause hangs until all of them have been seen.
	h_lean_plan(&E, "A1", "[\"hang\"]", "ok");
	for (int i = 0; i < N; i++) {
		s[i] = (sender) {.c = c, .url = url};
		cr_assert_eq(pthread_create(&th[i], NULL, sender_main, &s[i]),
		    0);
	}
	cr_assert(wait_metric("leanauth_worker_queue_depth", N, 2500),
	    "the twenty Sends did not queue up behind the slow calls");

	w = h_broker(&E,
	    U("_control/wait?requests=%d&timeout_ms=20000", 1 + WORKERS + N),
	    NULL);
	cr_assert(json_is_true(json_object_get(w, "reached")),
	    "the 401s never arrived");
	json_decref(w);
	cr_assert_eq(broker_by_status("401"), N);
	cr_assert(h_lean_wait(&E, "hanging=1", 10000), "no refresh started");
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 2);
	json_decref(h_lean(&E, "_control/release", "{}"));
	for (int i = 0; i < N + WORKERS; i++) {
		pthread_join(th[i], NULL);
	}
	for (int i = 0; i < N + WORKERS; i++) {
		cr_assert_eq(s[i].rv, 0, "caller %d: %s", i, s[i].err.message);
		cr_assert_eq(s[i].r.status_code, 200, "caller %d", i);
		json_t     *j    = echo(&s[i].r);
		const char *want = i < N ? "Bearer " CANARY_ACCESS_PREFIX "2"
		                         : "Bearer " CANARY_ACCESS_PREFIX "1";
		cr_assert_str_eq(echo_header(j, "Authorization"), want,
		    "caller %d", i);
		json_decref(j);
		leanauth_response_clear(&s[i].r);
	}
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 2,
	    "one refresh for twenty 401s");
	cr_assert_eq(broker_by_status("401"), N);
	cr_assert_eq(broker_by_status("200"), 1 + WORKERS + N);
	leanauth_close(c);
}

Test(send, second_unauthorized_goes_back_to_the_caller)
{
	// The stand-in issues CANARY-ACCESS-1, -2, ... in order: revoke the
	// first two before they exist.
	revoke_token(CANARY_ACCESS_PREFIX "1");
	revoke_token(CANARY_ACCESS_PREFIX "2");
	h_daemon_start(&E);
	leanauth_client  *c = h_client(&E);
	leanauth_response r;
	get_ok(c, B("api/x"), 401, &r);
	json_t *j = echo(&r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "error")),
	    "token revoked");
	json_decref(j);
	cr_assert_str_eq(resp_header(&r, "WWW-Authenticate", 0), "Bearer");
	leanauth_response_clear(&r);
	cr_assert_eq(h_broker_stat(&E, "requests"), 2, "one call, one retry");
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 2);

	// The next call refreshes past the revoked token and succeeds.
	get_ok(c, B("api/x"), 200, &r);
	leanauth_response_clear(&r);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 3);
	leanauth_close(c);
}

Test(send, failed_refresh_is_the_callers_error_and_nothing_is_sent)
{
	json_object_set_new(h_profile(&E, 0), "max_retry_count",
	    json_integer(0));
	h_lean_plan(&E, "A1", "[]", "unauthorized");
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_error   err;
	expect_code(c, &(req) {.url = B("api/x")}, LEANAUTH_UNAUTHENTICATED,
	    &err);
	leanauth_close(c);
}

// ---- upstream statuses

Test(send, upstream_errors_and_redirects_come_back_as_they_are)
{
	h_daemon_start(&E);
	leanauth_client  *c = h_client(&E);
	leanauth_response r;
	get_ok(c, B("api/status/500"), 500, &r);
	json_t *j = echo(&r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "path")),
	    "/api/status/500");
	json_decref(j);
	leanauth_response_clear(&r);

	get_ok(c, B("api/status/503"), 503, &r);
	leanauth_response_clear(&r);
	get_ok(c, B("api/status/204"), 204, &r);
	cr_assert_eq(r.body_len, 0);
	leanauth_response_clear(&r);

	// Not followed: the Location points outside the allowlist anyway.
	get_ok(c, B("api/redirect"), 302, &r);
	cr_assert_str_eq(resp_header(&r, "Location", 0), B("echo/redirected"));
	leanauth_response_clear(&r);
	cr_assert_eq(h_broker_stat(&E, "requests"), 4);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 1,
	    "no 401, no refresh");
	leanauth_close(c);
}

// ---- deadlines

static void
expect_healthy(leanauth_client *c)
{
	bool           serving = false;
	leanauth_error err;
	cr_assert_eq(leanauth_health(c, NULL, NULL, &serving, &err), 0, "%s",
	    err.message);
	cr_assert(serving);
	leanauth_response r;
	int64_t           t0 = h_now_ms();
	get_ok(c, B("api/after"), 200, &r);
	cr_assert_lt(h_now_ms() - t0, 1000);
	leanauth_response_clear(&r);
}

Test(send, request_deadline_is_deadline_exceeded)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	token(c, &t); // the token is cached: only the brokerage is slow
	leanauth_token_clear(&t);

	leanauth_error    err;
	leanauth_response r;
	req     q    = {.url = B("api/slow?ms=3000"), .timeout_ms = 300};
	int64_t t0   = h_now_ms();
	int     rv   = do_send(c, &q, &r, &err);
	int64_t took = h_now_ms() - t0;
	cr_assert_eq(rv, LEANAUTH_DEADLINE_EXCEEDED, "%s: %s",
	    leanauth_code_name(rv), err.message);
	cr_assert_null(strstr(err.message, CANARY_ANY));
	cr_assert_geq(took, 290);
	cr_assert_lt(took, 1500, "took %lld ms", (long long) took);
	expect_healthy(c);
	leanauth_close(c);
}

Test(send, profile_send_timeout_applies)
{
	json_object_set_new(json_object_get(h_profile(&E, 0), "send"),
	    "timeout_ms", json_integer(300));
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	token(c, &t);
	leanauth_token_clear(&t);

	leanauth_error    err;
	leanauth_response r;
	req     q    = {.url = B("api/slow?ms=3000"), .timeout_ms = 10000};
	int64_t t0   = h_now_ms();
	int     rv   = do_send(c, &q, &r, &err);
	int64_t took = h_now_ms() - t0;
	cr_assert_eq(rv, LEANAUTH_DEADLINE_EXCEEDED, "%s: %s",
	    leanauth_code_name(rv), err.message);
	cr_assert_null(strstr(err.message, CANARY_ANY));
	cr_assert_geq(took, 290);
	cr_assert_lt(took, 1500, "took %lld ms", (long long) took);
	expect_healthy(c);
	leanauth_close(c);
}

// Deadlines that fall when the transfer ends too: curl's timeout and the
// aio's expiry fire together, so the reply races the cancel. Under
// -DLEANAUTH_SANITIZE=ON a use after free there makes leanauthd exit 1.
typedef struct racer {
	leanauth_client *c;
	char             url[256];
	int              ok, timeouts, other;
	char             other_msg[600];
} racer;

static void *
racer_main(void *p)
{
	racer *a = p;
	for (int i = 0; i < 60; i++) {
		leanauth_response r;
		leanauth_error    err;
		req q = {.url = a->url, .timeout_ms = 60 + (uint32_t) (i % 7)};
		int rv = do_send(a->c, &q, &r, &err);
		if (rv == LEANAUTH_OK) {
			a->ok++;
		} else if (rv == LEANAUTH_DEADLINE_EXCEEDED) {
			a->timeouts++;
		} else {
			a->other++;
			snprintf(a->other_msg, sizeof(a->other_msg), "%s: %s",
			    leanauth_code_name(rv), err.message);
		}
		leanauth_response_clear(&r);
	}
	return (NULL);
}

Test(send, deadlines_racing_completions_are_safe)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	token(c, &t);
	leanauth_token_clear(&t);
	enum { T = 8 };
	racer     a[T];
	pthread_t th[T];
	for (int i = 0; i < T; i++) {
		a[i] = (racer) {.c = c};
		snprintf(a[i].url, sizeof(a[i].url), "%sapi/slow?ms=%d",
		    E.brokerage_url, 55 + i);
		cr_assert_eq(pthread_create(&th[i], NULL, racer_main, &a[i]),
		    0);
	}
	int timeouts = 0;
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
	}
	for (int i = 0; i < T; i++) {
		cr_assert_eq(a[i].other, 0, "%s", a[i].other_msg);
		timeouts += a[i].timeouts;
	}
	cr_assert_gt(timeouts, 0);
	expect_healthy(c);
	leanauth_close(c);
	cr_assert_eq(h_daemon_stop(&E, SIGTERM, 10000, NULL), 0,
	    "leanauthd failed");
}

// ---- sizes

Test(send, request_body_over_the_limit_is_refused_before_sending)
{
	h_daemon_start(&E);
	leanauth_client *c   = h_client(&E);
	size_t           max = 65536;
	char            *big = malloc(max + 1);
	memset(big, 'b', max + 1);
	leanauth_error err;
	expect_code(c,
	    &(req) {.method = "POST",
	        .url        = B("api/big?bytes=1"),
	        .body       = big,
	        .body_len   = max + 1},
	    LEANAUTH_RESOURCE_EXHAUSTED, &err);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 0);

	// Exactly the limit is fine (the reply is kept small).
	leanauth_response r;
	cr_assert_eq(do_send(c,
	                 &(req) {.method = "POST",
	                     .url        = B("api/big?bytes=1"),
	                     .body       = big,
	                     .body_len   = max},
	                 &r, &err),
	    0, "%s", err.message);
	cr_assert_eq(r.status_code, 200);
	leanauth_response_clear(&r);
	json_t *st = h_broker(&E, "_control/stats", NULL);
	cr_assert_eq(json_integer_value(json_object_get(
	                 json_object_get(st, "last_request"), "body_len")),
	    (json_int_t) max);
	json_decref(st);
	free(big);
	leanauth_close(c);
}

Test(send, response_over_the_limit_is_resource_exhausted)
{
	h_daemon_start(&E);
	leanauth_client  *c = h_client(&E);
	leanauth_response r;
	leanauth_error    err;
	int               rv =
	    do_send(c, &(req) {.url = B("api/big?bytes=70000")}, &r, &err);
	cr_assert_eq(rv, LEANAUTH_RESOURCE_EXHAUSTED, "%s: %s",
	    leanauth_code_name(rv), err.message);
	cr_assert_null(strstr(err.message, CANARY_ANY));
	get_ok(c, B("api/big?bytes=65536"), 200, &r);
	cr_assert_eq(r.body_len, 65536);
	cr_assert_eq(r.body[0], 'x');
	cr_assert_eq(r.body[65535], 'x');
	leanauth_response_clear(&r);
	expect_healthy(c);
	leanauth_close(c);
}

// ---- unreachable

Test(send, unreachable_brokerage_is_unavailable)
{
	int         port      = closed_port();
	const char *allowed[] = {B("api/"),
	    U("http://127.0.0.1:%d/api/", port)};
	set_allowed(0, allowed, 2);
	h_daemon_start(&E);
	leanauth_client  *c = h_client(&E);
	leanauth_response r;
	leanauth_error    err;
	req               q  = {.url = U("http://127.0.0.1:%d/api/x", port)};
	int               rv = do_send(c, &q, &r, &err);
	cr_assert_eq(rv, LEANAUTH_UNAVAILABLE, "%s: %s",
	    leanauth_code_name(rv), err.message);
	const char *want = U("Failed to connect to 127.0.0.1 port %d", port);
	cr_assert(strstr(err.message, want) != NULL, "curl's message: %s",
	    err.message);
	cr_assert_null(strstr(err.message, CANARY_ANY));
	leanauth_close(c);
}

// ---- connections

Test(send, sequential_calls_reuse_connections)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	for (int i = 0; i < 30; i++) {
		leanauth_response r;
		get_ok(c, B(U("api/seq/%d", i)), 200, &r);
		leanauth_response_clear(&r);
	}
	long seen    = h_broker_stat(&E, "connections");
	long opened  = metric("leanauth_send_connections_total");
	long calls   = metric("leanauth_send_calls_total");
	long workers = 4; // the harness's default
	cr_log_info("30 sequential Sends: brokerage saw %ld connection(s); "
	            "leanauth_send_connections_total %ld; "
	            "leanauth_send_calls_total %ld",
	    seen, opened, calls);
	fprintf(stderr,
	    "send.sequential_calls_reuse_connections: brokerage "
	    "connections=%ld "
	    "leanauth_send_connections_total=%ld calls=%ld\n",
	    seen, opened, calls);
	cr_assert_eq(h_broker_stat(&E, "requests"), 30);
	cr_assert_eq(calls, 30);
	cr_assert_geq(seen, 1);
	cr_assert_leq(seen, workers);
	cr_assert_leq(opened, workers);
	cr_assert_eq(opened, seen,
	    "what leanauthd counts is what the brokerage saw");
	leanauth_close(c);
}

// ---- never executed twice

Test(send, a_slow_send_is_executed_once)
{
	// nng's REQ resends an unanswered request after NNG_OPT_REQ_RESENDTIME
	// (default 60 s), and leanauthd then performs the Send once more: REP
	// has no duplicate detection. libleanauth sets the resend time beyond
	// the call's whole wait. Only a call longer than 60 s could tell that
	// setting from the default, which is impractical in a test; so this
	// checks the two halves with a 1.5 s call instead: leanauth_send gets
	// it executed exactly once, and a raw REQ socket with a 300 ms resend
	// time gets it executed several times -- so the count below would see
	// a resend if one happened.
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	token(c, &t);
	leanauth_token_clear(&t);

	leanauth_response r;
	leanauth_error    err;
	int64_t           t0 = h_now_ms();
	req q  = {.url = B("api/slow?ms=1500"), .timeout_ms = 5000};
	int rv = do_send(c, &q, &r, &err);
	cr_assert_eq(rv, 0, "%s", err.message);
	cr_assert_eq(r.status_code, 200);
	cr_assert_geq(h_now_ms() - t0, 1500);
	leanauth_response_clear(&r);
	cr_assert_eq(h_broker_stat(&E, "requests"), 1,
	    "executed exactly once");

	// The hazard the option guards against.
	Leanauth__V1__SendRequest sr = LEANAUTH__V1__SEND_REQUEST__INIT;
	sr.method                    = "GET";
	sr.url                       = (char *) B("api/slow?ms=1500");
	size_t   plen = leanauth__v1__send_request__get_packed_size(&sr);
	uint8_t *pl   = malloc(plen);
	leanauth__v1__send_request__pack(&sr, pl);
	size_t   len;
	uint8_t *env =
	    h_envelope("leanauth.v1.TokenService/Send", pl, plen, 5000, &len);
	nng_socket s;
	cr_assert_eq(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, 300), 0);
	cr_assert_eq(nng_dial(s, E.rpc_url, NULL, 0), 0);
	cr_assert_eq(nng_send(s, env, len, 0), 0);
	void  *rbuf;
	size_t rlen;
	cr_assert_eq(nng_recv(s, &rbuf, &rlen, NNG_FLAG_ALLOC), 0);
	nng_free(rbuf, rlen);
	nng_close(s);
	free(env);
	free(pl);
	// The copies finish later than the first; the stand-in counts a
	// request once it has answered it.
	json_t *w =
	    h_broker(&E, "_control/wait?requests=3&timeout_ms=5000", NULL);
	cr_assert(json_is_true(json_object_get(w, "reached")),
	    "a short resend time does execute the Send again");
	json_decref(w);
	leanauth_close(c);
}

typedef struct bg_send {
	leanauth_client *c;
	const char      *url;
	int              rv;
	leanauth_error   err;
	int64_t          done_at;
} bg_send;

static void *
bg_send_run(void *p)
{
	bg_send          *b = p;
	leanauth_response r;
	req               q = {.url = b->url, .timeout_ms = 20000};
	b->rv               = do_send(b->c, &q, &r, &b->err);
	b->done_at          = h_now_ms();
	if (b->rv == 0) {
		leanauth_response_clear(&r);
	}
	return (NULL);
}

Test(send, a_send_whose_connection_breaks_is_not_resent)
{
	// nng's REQ resends at once on a new connection when the one a request
	// went out on breaks. For a Send, libleanauth turns that off: the call
	// fails at once with UNAVAILABLE instead of waiting (until its deadline)
	// for a connection to send it again on.
	h_daemon_start(&E);
	bg_send   b = {.c = h_client(&E), .url = B("api/slow?ms=4000")};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, bg_send_run, &b), 0);
	json_t *w =
	    h_broker(&E, "_control/wait?in_flight=1&timeout_ms=10000", NULL);
	cr_assert(json_is_true(json_object_get(w, "reached")),
	    "the Send never arrived");
	json_decref(w);
	int64_t killed_at = h_now_ms();
	cr_assert_eq(h_daemon_stop(&E, SIGKILL, 5000, NULL), 128 + SIGKILL);
	pthread_join(th, NULL);
	cr_assert_eq(b.rv, LEANAUTH_UNAVAILABLE, "got %d: %s", b.rv,
	    b.err.message);
	cr_assert(strstr(b.err.message, "may or may not") != NULL, "%s",
	    b.err.message);
	cr_assert_lt(b.done_at - killed_at, 2000,
	    "failed at once, not at the deadline");
	leanauth_close(b.c);
}

Test(send, proxy_variables_in_the_environment_are_ignored)
{
	// A proxy that does not exist: if leanauthd used it, both the refresh
	// and the Send would fail.
	char proxy[64];
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", closed_port());
	setenv("http_proxy", proxy, 1);
	setenv("HTTP_PROXY", proxy, 1);
	setenv("https_proxy", proxy, 1);
	setenv("ALL_PROXY", proxy, 1);
	h_daemon_start(&E);
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("https_proxy");
	unsetenv("ALL_PROXY");
	leanauth_client  *c = h_client(&E);
	leanauth_response r;
	leanauth_error    err;
	req               q = {.url = B("api/echo")};
	cr_assert_eq(do_send(c, &q, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.status_code, 200);
	leanauth_response_clear(&r);
	leanauth_close(c);
}

Test(send, a_response_larger_than_nngs_default_receive_cap_comes_back)
{
	// nng caps received messages at 1 MiB by default; libleanauth raises
	// the cap so that a Send can return up to max_body_bytes.
	json_object_set_new(json_object_get(h_profile(&E, 0), "send"),
	    "max_body_bytes", json_integer(4 * 1024 * 1024));
	h_daemon_start(&E);
	leanauth_client  *c = h_client(&E);
	leanauth_response r;
	leanauth_error    err;
	req               q = {.url = B("api/big?bytes=3000000")};
	cr_assert_eq(do_send(c, &q, &r, &err), 0, "%s", err.message);
	cr_assert_eq(r.status_code, 200);
	cr_assert_eq(r.body_len, 3000000);
	cr_assert_eq(r.body[0], 'x');
	cr_assert_eq(r.body[2999999], 'x');
	leanauth_response_clear(&r);
	cr_assert_eq(h_broker_stat(&E, "requests"), 1);
	leanauth_close(c);
}

// ---- shutdown

typedef struct slow_arg {
	leanauth_client *c;
	char             url[256];
	int              rv;
	leanauth_error   err;
} slow_arg;

static void *
slow_sender(void *p)
{
	slow_arg         *a = p;
	leanauth_response r;
	a->rv = do_send(a->c, &(req) {.url = a->url, .timeout_ms = 30000}, &r,
	    &a->err);
	leanauth_response_clear(&r);
	return (NULL);
}

Test(send, sigterm_ends_a_send_in_flight_promptly)
{
	json_object_set_new(json_object_get(h_profile(&E, 0), "send"),
	    "timeout_ms", json_integer(30000));
	h_daemon_start(&E);
	slow_arg  a = {.c = h_client(&E)};
	pthread_t th;
	snprintf(a.url, sizeof(a.url), "%sapi/slow?ms=20000", E.brokerage_url);
	cr_assert_eq(pthread_create(&th, NULL, slow_sender, &a), 0);
	json_t *w =
	    h_broker(&E, "_control/wait?in_flight=1&timeout_ms=10000", NULL);
	cr_assert(json_is_true(json_object_get(w, "reached")),
	    "the Send never arrived");
	json_decref(w);
	int64_t took;
	cr_assert_eq(h_daemon_stop(&E, SIGTERM, 5000, &took), 0,
	    "leanauthd did not exit in time");
	pthread_join(th, NULL);
	cr_assert_lt(took, 3000, "shutdown took %lld ms", (long long) took);
	cr_assert_eq(a.rv, LEANAUTH_UNAVAILABLE, "got %s: %s",
	    leanauth_code_name(a.rv), a.err.message);
	cr_assert(strstr(a.err.message, "shutting down") != NULL, "%s",
	    a.err.message);
	leanauth_close(a.c);
}

// ---- the CLI

static int
cli(const char *const *args, char *out, size_t outlen, char *err,
    size_t errlen)
{
	const char *argv[32] = {LEANAUTH_CLI, "send", "--url", E.rpc_url};
	size_t      n        = 4;
	for (; *args != NULL && n < 31; args++) {
		argv[n++] = *args;
	}
	argv[n] = NULL;
	return (h_run(argv, 20000, out, outlen, err, errlen));
}

Test(send, cli_prints_the_body)
{
	h_daemon_start(&E);
	char out[8192], err[4096];
	cr_assert_eq(cli((const char *[]) {B("api/cli?x=1"), NULL}, out,
	                 sizeof(out), err, sizeof(err)),
	    0, "%s", err);
	json_t *j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "not the echo: %s", out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "method")),
	    "GET");
	cr_assert_str_eq(json_string_value(json_object_get(j, "path")),
	    "/api/cli");
	cr_assert_str_eq(json_string_value(json_object_get(j, "query")),
	    "x=1");
	cr_assert_eq(strncmp(echo_header(j, "Authorization"),
	                 "Bearer " CANARY_ACCESS_PREFIX,
	                 strlen("Bearer " CANARY_ACCESS_PREFIX)),
	    0);
	json_decref(j);
}

Test(send, cli_include_method_headers_and_data)
{
	h_daemon_start(&E);
	char out[8192], err[4096];
	cr_assert_eq(cli((const char *[]) {"-i", "-X", "PUT", "-H", "X-One: 1",
	                     "-H", "X-Two:  two words", "-H", "X-One: again",
	                     "-d", "hello=world", B("api/cli"), NULL},
	                 out, sizeof(out), err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(strncmp(out, "HTTP 200\r\n", 10), 0, "out: %s", out);
	cr_assert(strstr(out, "\r\nX-Standin: brokerage\r\n") != NULL,
	    "out: %s", out);
	cr_assert(strstr(out, "\r\nSet-Cookie: a=1\r\n") != NULL, "out: %s",
	    out);
	cr_assert(strstr(out, "\r\nSet-Cookie: b=2\r\n") != NULL, "out: %s",
	    out);
	char *body = strstr(out, "\r\n\r\n");
	cr_assert_not_null(body);
	json_t *j = json_loads(body + 4, 0, NULL);
	cr_assert_not_null(j, "body: %s", body + 4);
	cr_assert_str_eq(json_string_value(json_object_get(j, "method")),
	    "PUT");
	cr_assert_str_eq(json_string_value(json_object_get(j, "body")),
	    "hello=world");
	const char *one[4];
	cr_assert_eq(echo_headers(j, "X-One", one, 4), 2);
	cr_assert_str_eq(one[0], "1");
	cr_assert_str_eq(one[1], "again");
	cr_assert_str_eq(echo_header(j, "X-Two"), "two words");
	json_decref(j);

	// -d alone means POST, as with curl; -d @FILE sends the file.
	char path[400];
	snprintf(path, sizeof(path), "%s/body.bin", E.dir);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	fputs("from a file\n", f);
	fclose(f);
	cr_assert_eq(
	    cli((const char *[]) {"-d", U("@%s", path), B("api/cli"), NULL},
	        out, sizeof(out), err, sizeof(err)),
	    0, "%s", err);
	j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "out: %s", out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "method")),
	    "POST");
	cr_assert_str_eq(json_string_value(json_object_get(j, "body")),
	    "from a file\n");
	json_decref(j);
}

Test(send, cli_exit_codes)
{
	h_daemon_start(&E);
	char out[8192], err[4096];
	// HTTP >= 400: the body is printed, exit 22 as curl -f.
	cr_assert_eq(cli((const char *[]) {B("api/status/404"), NULL}, out,
	                 sizeof(out), err, sizeof(err)),
	    22, "%s", err);
	cr_assert(strstr(out, "/api/status/404") != NULL, "out: %s", out);
	cr_assert(strstr(err, "404") != NULL, "err: %s", err);
	// 3xx is not a failure.
	cr_assert_eq(cli((const char *[]) {B("api/redirect"), NULL}, out,
	                 sizeof(out), err, sizeof(err)),
	    0, "%s", err);
	// The Send itself fails: 1, with the status name.
	cr_assert_eq(cli((const char *[]) {B("apix"), NULL}, out, sizeof(out),
	                 err, sizeof(err)),
	    1);
	cr_assert(strstr(err, "PERMISSION_DENIED") != NULL, "err: %s", err);
	cr_assert_eq(cli((const char *[]) {"-X", "TRACE", B("api/x"), NULL},
	                 out, sizeof(out), err, sizeof(err)),
	    1);
	cr_assert(strstr(err, "INVALID_ARGUMENT") != NULL, "err: %s", err);
	cr_assert_null(strstr(err, CANARY_ANY));
	// Bad usage: 2.
	const char *const *const usage[] = {
	    (const char *[]) {NULL},
	    (const char *[]) {"-H", "no-colon", B("api/x"), NULL},
	    (const char *[]) {"-H", ": empty name", B("api/x"), NULL},
	    (const char *[]) {"--frobnicate", B("api/x"), NULL},
	    (const char *[]) {B("api/x"), B("api/y"), NULL},
	    (const char *[]) {"--timeout", "soon", B("api/x"), NULL},
	    (const char *[]) {"-d", "@/nonexistent/leanauth-test", B("api/x"),
	        NULL},
	    (const char *[]) {B("api/x"), "-X", NULL},
	};
	for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
		cr_assert_eq(cli(usage[i], out, sizeof(out), err, sizeof(err)),
		    2, "case %zu: %s", i, err);
	}
	cr_assert_eq(h_broker_stat(&E, "requests"), 2);
}
