// test_lean.c -- unit tests for server/lean: signing, request body, reply
// classification, redaction, and whole calls against a one-shot HTTP server
// running on a thread of the test.
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lean/lean.h"

// Canaries: if any of these shows up in an error or a log line, a secret
// leaked.
#define API_CANARY "CANARY-api-token-5f3c9e"
#define RT_CANARY "CANARY-refresh-token-8d21"
#define USER_ID "user-42"

// Every wait in the helper server ends by this deadline, whatever happens.
#define SRV_DEADLINE_MS 10000

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void
suite_init(void)
{
	// The calls go to 127.0.0.1; a proxy from the environment would
	// intercept them.
	static const char *const vars[] = {"http_proxy", "HTTP_PROXY",
	    "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", NULL};
	for (int i = 0; vars[i] != NULL; i++) {
		unsetenv(vars[i]);
	}
}

TestSuite(lean, .init = suite_init, .timeout = 30);

// ---- a one-shot HTTP server --------------------------------------------

typedef enum srv_mode {
	SRV_REPLY, // send the canned reply
	SRV_ECHO,  // reply success:false, echoing every secret it can see
	SRV_HANG,  // read the request, never answer
	SRV_BIG,   // a 200 whose body is one byte over LA_LEAN_MAX_REPLY
} srv_mode;

typedef struct srv {
	int             lfd;
	int             stop[2]; // written by srv_stop: every wait ends
	int             port;
	pthread_t       thr;
	srv_mode        mode;
	int             status; // SRV_REPLY and SRV_ECHO
	char            reply[8192];
	char            req[65536]; // the request as received, NUL-terminated
	size_t          req_len;
	size_t          head_len; // request line and headers, with CRLFCRLF
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	bool            accepted;
	bool            got_request;
} srv;

// hdr_value copies the value of header name from an HTTP head into out;
// false if it is absent.
static bool
hdr_value(const char *head, const char *name, char *out, size_t outlen)
{
	size_t      nl = strlen(name);
	const char *p  = strstr(head, "\r\n");

	while (p != NULL && strncmp(p, "\r\n\r\n", 4) != 0) {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			const char *e = strstr(v, "\r\n");
			while (*v == ' ') {
				v++;
			}
			size_t n = e != NULL ? (size_t) (e - v) : strlen(v);
			if (n >= outlen) {
				n = outlen - 1;
			}
			memcpy(out, v, n);
			out[n] = '\0';
			return (true);
		}
		p = strstr(p, "\r\n");
	}
	return (false);
}

// srv_wait waits until fd is readable (true), or until stop is written or
// the deadline passes (false).
static bool
srv_wait(srv *s, int fd, int64_t deadline)
{
	for (;;) {
		struct pollfd pf[2] = {{.fd = fd, .events = POLLIN},
		    {.fd = s->stop[0], .events = POLLIN}};
		int64_t       left  = deadline - now_ms();
		if (left <= 0) {
			return (false);
		}
		int n = poll(pf, 2, (int) left);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0 || pf[1].revents != 0) {
			return (false);
		}
		return (true);
	}
}

static void
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0) {
			return; // the client gave up: fine, it is what we test
		}
		p += w;
		n -= (size_t) w;
	}
}

static void
set_reply(srv *s, int status, const char *body)
{
	snprintf(s->reply, sizeof(s->reply),
	    "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    status, strlen(body), body);
}

static void
hex_sha256(const char *in, char hex[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *) in, strlen(in), md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	}
}

// echo_reply answers with every secret the request lets us rebuild, as an
// upstream that quotes its input in an error would.
static void
echo_reply(srv *s)
{
	char ts[64] = "", auth[512] = "", in[256], hash[65], body[2048];
	hdr_value(s->req, "Timestamp", ts, sizeof(ts));
	hdr_value(s->req, "Authorization", auth, sizeof(auth));
	snprintf(in, sizeof(in), "%s:%s", API_CANARY, ts);
	hex_sha256(in, hash);
	snprintf(body, sizeof(body),
	    "{\"success\":false,\"errors\":[\"api token " API_CANARY
	    " rejected\",\"refresh token " RT_CANARY " expired\","
	    "\"hash %s does not match\",\"header %s\",\"body %s\"]}",
	    hash, auth, RT_CANARY);
	set_reply(s, s->status, body);
}

static void *
srv_main(void *arg)
{
	srv    *s        = arg;
	int64_t deadline = now_ms() + SRV_DEADLINE_MS;
	size_t  need     = 0;
	int     c;

	if (!srv_wait(s, s->lfd, deadline) ||
	    (c = accept(s->lfd, NULL, NULL)) < 0) {
		return (NULL);
	}
	struct timeval tv = {.tv_sec = SRV_DEADLINE_MS / 1000};
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	pthread_mutex_lock(&s->mtx);
	s->accepted = true;
	pthread_mutex_unlock(&s->mtx);

	// Read the head, then Content-Length bytes of body.
	for (;;) {
		if (!srv_wait(s, c, deadline)) {
			goto done;
		}
		ssize_t n = recv(c, s->req + s->req_len,
		    sizeof(s->req) - 1 - s->req_len, 0);
		if (n <= 0) {
			goto done;
		}
		s->req_len += (size_t) n;
		s->req[s->req_len] = '\0';
		char *e;
		if (need == 0 && (e = strstr(s->req, "\r\n\r\n")) != NULL) {
			char cl[32] = "0";
			s->head_len = (size_t) (e + 4 - s->req);
			hdr_value(s->req, "Content-Length", cl, sizeof(cl));
			need = s->head_len + strtoul(cl, NULL, 10);
		}
		if (need > 0 && s->req_len >= need) {
			break;
		}
	}
	pthread_mutex_lock(&s->mtx);
	s->got_request = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mtx);

	switch (s->mode) {
	case SRV_ECHO:
		echo_reply(s);
		// FALLTHROUGH
	case SRV_REPLY:
		send_all(c, s->reply, strlen(s->reply));
		break;
	case SRV_HANG: {
		// Until srv_stop, the deadline, or the client hangs up.
		char b[256];
		while (srv_wait(s, c, deadline) &&
		    recv(c, b, sizeof(b), 0) > 0) { }
		break;
	}
	case SRV_BIG: {
		static char chunk[65536];
		size_t      left = (size_t) LA_LEAN_MAX_REPLY + 1;
		char        head[256];
		memset(chunk, 'x', sizeof(chunk));
		snprintf(head, sizeof(head),
		    "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", left);
		send_all(c, head, strlen(head));
		while (left > 0) {
			size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
			ssize_t w = send(c, chunk, n, MSG_NOSIGNAL);
			if (w <= 0) {
				break;
			}
			left -= (size_t) w;
		}
		break;
	}
	}
done:
	close(c);
	return (NULL);
}

// srv_start_with listens on an ephemeral port of 127.0.0.1 and starts the
// thread; s->mode and s->reply are set before, so the thread only reads them.
static srv *
srv_start_with(srv *s)
{
	struct sockaddr_in a  = {.sin_family = AF_INET};
	socklen_t          al = sizeof(a);

	pthread_mutex_init(&s->mtx, NULL);
	pthread_cond_init(&s->cv, NULL);
	cr_assert_eq(pipe(s->stop), 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd            = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(s->lfd, 0);
	cr_assert_eq(bind(s->lfd, (struct sockaddr *) &a, sizeof(a)), 0);
	cr_assert_eq(listen(s->lfd, 4), 0);
	cr_assert_eq(getsockname(s->lfd, (struct sockaddr *) &a, &al), 0);
	s->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&s->thr, NULL, srv_main, s), 0);
	return (s);
}

static srv *
srv_alloc(srv_mode mode, int status)
{
	srv *s = calloc(1, sizeof(*s));
	cr_assert_not_null(s);
	s->mode   = mode;
	s->status = status;
	return (s);
}

// srv_start: mode, and for SRV_REPLY a JSON body sent with status.
static srv *
srv_start(srv_mode mode, int status, const char *body)
{
	srv *s = srv_alloc(mode, status);
	if (body != NULL) {
		set_reply(s, status, body);
	}
	return (srv_start_with(s));
}

// srv_start_raw replies with raw, a whole HTTP response.
static srv *
srv_start_raw(const char *raw)
{
	srv *s = srv_alloc(SRV_REPLY, 0);
	snprintf(s->reply, sizeof(s->reply), "%s", raw);
	return (srv_start_with(s));
}

// srv_stop ends every wait of the server thread and joins it; the request
// stays readable until srv_free.
static void
srv_stop(srv *s)
{
	cr_assert_eq(write(s->stop[1], "x", 1), 1);
	pthread_join(s->thr, NULL);
	close(s->lfd);
	close(s->stop[0]);
	close(s->stop[1]);
}

static void
srv_free(srv *s)
{
	pthread_mutex_destroy(&s->mtx);
	pthread_cond_destroy(&s->cv);
	free(s);
}

// srv_wait_request waits, at most ms, until the whole request has arrived.
static bool
srv_wait_request(srv *s, int ms)
{
	struct timespec dl;
	bool            got;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long) (ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->mtx);
	while (!s->got_request) {
		if (pthread_cond_timedwait(&s->cv, &s->mtx, &dl) != 0) {
			break;
		}
	}
	got = s->got_request;
	pthread_mutex_unlock(&s->mtx);
	return (got);
}

// dead_port returns a port on 127.0.0.1 that nothing listens on: bound,
// then closed.
static int
dead_port(void)
{
	struct sockaddr_in a  = {.sin_family = AF_INET};
	socklen_t          al = sizeof(a);
	int                fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *) &a, &al), 0);
	close(fd);
	return (ntohs(a.sin_port));
}

// ---- fixture -----------------------------------------------------------

typedef struct fx {
	char           url[128];
	la_config      cfg;
	la_profile_cfg prof;
	la_lean       *lean;
	CURL          *easy;
	char           err[512];
	la_lean_reply  reply;
	atomic_bool    abort;
} fx;

static void
fx_init(fx *f, int port, const char *prefix)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d%s", port,
	    prefix);
	f->cfg.lean_url        = f->url;
	f->cfg.lean_user_id    = USER_ID;
	f->cfg.lean_api_token  = API_CANARY;
	f->cfg.lean_timeout_ms = 5000;
	f->prof.name           = "schwab";
	f->prof.brokerage      = "CharlesSchwab";
	f->prof.account_id     = "A1";
	f->prof.refresh_token  = RT_CANARY;
	f->cfg.profiles        = &f->prof;
	f->cfg.n_profiles      = 1;
	atomic_init(&f->abort, false);
	cr_assert_eq(la_lean_create(&f->lean, &f->cfg), LA_OK);
	cr_assert_not_null(f->easy = curl_easy_init());
}

static void
fx_fini(fx *f)
{
	la_lean_reply_clear(&f->reply);
	curl_easy_cleanup(f->easy);
	la_lean_destroy(f->lean);
}

static la_err
fx_fetch(fx *f)
{
	return (la_lean_fetch(f->lean, f->easy, &f->prof, &f->abort, &f->reply,
	    f->err, sizeof(f->err)));
}

#define OK_BODY                                                               \
	"{\"success\":true,\"tokenType\":\"SessionToken\",\"accessToken\":"   \
	"\"at-1\"}"

// fetch_ok runs one successful call against a fresh server under prefix
// and returns the stopped server, request kept; *t0/*t1 bracket the call
// in unix seconds.
static srv *
fetch_ok(fx *f, const char *prefix, int64_t *t0, int64_t *t1)
{
	srv *s = srv_start(SRV_REPLY, 200, OK_BODY);
	fx_init(f, s->port, prefix);
	*t0 = (int64_t) time(NULL);
	cr_assert_eq(fx_fetch(f), LA_OK, "err: %s", f->err);
	*t1 = (int64_t) time(NULL);
	srv_stop(s);
	cr_assert(s->got_request);
	return (s);
}

// ---- signing -----------------------------------------------------------

Test(lean, sign_matches_known_vector)
{
	// Computed independently:
	//   printf '%s' 'api-token-xyz:1700000000' | openssl dgst -sha256
	//     -> 7222dbc777babf71ecac015ba1a8477c08727f7d03176d326a55d4c9bb9002e8
	//   printf '%s' 'user-42:7222dbc7…9002e8' | base64 -w0
	//     -> dXNlci00Mjo3MjIy…OTAwMmU4 (below)
	char out[256];
	cr_assert_eq(la_lean_sign("user-42", "api-token-xyz", 1700000000, out,
	                 sizeof(out)),
	    LA_OK);
	cr_assert_str_eq(out,
	    "Basic dXNlci00Mjo3MjIyZGJjNzc3YmFiZjcxZWNhYzAxNWJhMWE4NDc3YzA4Nz"
	    "I3ZjdkMDMxNzZkMzI2YTU1ZDRjOWJiOTAwMmU4");
}

Test(lean, sign_differs_for_another_timestamp)
{
	char a[256], b[256];
	cr_assert_eq(
	    la_lean_sign("user-42", "api-token-xyz", 1700000000, a, sizeof(a)),
	    LA_OK);
	cr_assert_eq(
	    la_lean_sign("user-42", "api-token-xyz", 1700000001, b, sizeof(b)),
	    LA_OK);
	cr_assert_str_neq(a, b);
}

Test(lean, sign_buffer_too_small_is_too_big)
{
	// "Basic " + 96 base64 characters + NUL = 103 bytes.
	char out[102];
	memset(out, 'z', sizeof(out));
	cr_assert_eq(la_lean_sign("user-42", "api-token-xyz", 1700000000, out,
	                 sizeof(out)),
	    LA_ERR_TOO_BIG);
	cr_assert_eq(out[0], '\0');
}

Test(lean, sign_exact_buffer_fits)
{
	char out[103];
	cr_assert_eq(la_lean_sign("user-42", "api-token-xyz", 1700000000, out,
	                 sizeof(out)),
	    LA_OK);
	cr_assert_eq(strlen(out), 102);
}

Test(lean, sign_null_argument_is_invalid)
{
	char out[256];
	cr_assert_eq(la_lean_sign(NULL, "t", 1, out, sizeof(out)),
	    LA_ERR_INVALID);
	cr_assert_eq(la_lean_sign("u", NULL, 1, out, sizeof(out)),
	    LA_ERR_INVALID);
	cr_assert_eq(la_lean_sign("u", "t", 1, NULL, 0), LA_ERR_INVALID);
}

// ---- request body ------------------------------------------------------

Test(lean, body_lowercases_brokerage_in_key_order)
{
	la_profile_cfg p = {.brokerage = "CharlesSchwab",
	    .account_id                = "A1",
	    .refresh_token             = "rt",
	    .deploy_id                 = "d1"};
	char          *b = la_lean_body(&p);
	cr_assert_str_eq(b,
	    "{\"brokerage\":\"charlesschwab\",\"accountId\":\"A1\","
	    "\"refreshToken\":\"rt\",\"deployId\":\"d1\"}");
	free(b);
}

Test(lean, body_omits_null_fields)
{
	la_profile_cfg p = {.brokerage = "TDAmeritrade", .account_id = "A1"};
	char          *b = la_lean_body(&p);
	cr_assert_str_eq(b,
	    "{\"brokerage\":\"tdameritrade\",\"accountId\":\"A1\"}");
	free(b);
}

Test(lean, body_escapes_quotes_in_account_id)
{
	la_profile_cfg p = {.brokerage = "X", .account_id = "A\"1\\"};
	char          *b = la_lean_body(&p);
	cr_assert_str_eq(b,
	    "{\"brokerage\":\"x\",\"accountId\":\"A\\\"1\\\\\"}");
	free(b);
}

Test(lean, body_rejects_invalid_utf8)
{
	la_profile_cfg p = {.brokerage = "X", .account_id = "A\xff"};
	cr_assert_null(la_lean_body(&p));
}

// ---- reply classification ----------------------------------------------

typedef struct parsed {
	la_err        rv;
	la_lean_reply r;
	char          err[256];
} parsed;

static parsed
parse(long status, const char *body)
{
	parsed p;
	memset(&p, 0, sizeof(p));
	p.rv = la_lean_parse(status, body, body != NULL ? strlen(body) : 0,
	    NULL, &p.r, p.err, sizeof(p.err));
	return (p);
}

static void
assert_token(parsed p, la_token_type type, const char *token)
{
	cr_assert_eq(p.rv, LA_OK, "err: %s", p.err);
	cr_assert_eq(p.r.type, type);
	cr_assert_str_eq(p.r.access_token, token);
	la_lean_reply_clear(&p.r);
}

static void
assert_fails(parsed p, la_err rv, const char *msg)
{
	cr_assert_eq(p.rv, rv, "rv %d err: %s", p.rv, p.err);
	cr_assert_str_eq(p.err, msg);
	cr_assert_null(p.r.access_token);
	cr_assert_eq(p.r.type, LA_TOKEN_UNSPECIFIED);
}

Test(lean, parse_string_bearer)
{
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":\"Bearer\","
	                 "\"accessToken\":\"abc\"}"),
	    LA_TOKEN_BEARER, "abc");
}

Test(lean, parse_string_session_token)
{
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":\"SessionToken\","
	                 "\"accessToken\":\"abc\"}"),
	    LA_TOKEN_SESSION_TOKEN, "abc");
}

Test(lean, parse_token_type_is_case_insensitive)
{
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":\"bEARER\","
	                 "\"accessToken\":\"a\"}"),
	    LA_TOKEN_BEARER, "a");
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":\"SESSIONTOKEN\","
	                 "\"accessToken\":\"a\"}"),
	    LA_TOKEN_SESSION_TOKEN, "a");
}

Test(lean, parse_number_0_is_bearer)
{
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":0,"
	                 "\"accessToken\":\"abc\"}"),
	    LA_TOKEN_BEARER, "abc");
}

Test(lean, parse_number_1_is_session_token)
{
	assert_token(parse(201,
	                 "{\"success\":true,\"tokenType\":1,"
	                 "\"accessToken\":\"abc\"}"),
	    LA_TOKEN_SESSION_TOKEN, "abc");
}

Test(lean, parse_absent_token_type_is_bearer)
{
	assert_token(parse(200, "{\"success\":true,\"accessToken\":\"abc\"}"),
	    LA_TOKEN_BEARER, "abc");
}

Test(lean, parse_number_2_is_unknown_token_type)
{
	assert_fails(parse(200,
	                 "{\"success\":true,\"tokenType\":2,"
	                 "\"accessToken\":\"abc\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unknown tokenType");
}

Test(lean, parse_string_foo_is_unknown_token_type)
{
	assert_fails(parse(200,
	                 "{\"success\":true,\"tokenType\":\"Foo\","
	                 "\"accessToken\":\"abc\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unknown tokenType");
}

Test(lean, parse_success_false_joins_errors)
{
	assert_fails(parse(200,
	                 "{\"success\":false,\"errors\":[\"bad refresh "
	                 "token\",\"account locked\"]}"),
	    LA_ERR_UNAUTHENTICATED, "bad refresh token; account locked");
}

Test(lean, parse_success_false_without_errors)
{
	assert_fails(parse(200, "{\"success\":false}"), LA_ERR_UNAUTHENTICATED,
	    "lean api refused the request");
}

Test(lean, parse_http_401_is_unauthenticated_with_errors)
{
	assert_fails(parse(401,
	                 "{\"success\":false,\"errors\":[\"Hash doesn't "
	                 "match.\"]}"),
	    LA_ERR_UNAUTHENTICATED, "lean api: HTTP 401: Hash doesn't match.");
}

Test(lean, parse_http_403_is_unauthenticated)
{
	assert_fails(parse(403, "Forbidden"), LA_ERR_UNAUTHENTICATED,
	    "lean api: HTTP 403");
}

Test(lean, parse_http_500_is_unavailable)
{
	assert_fails(parse(500, "<html>oops</html>"), LA_ERR_UNAVAILABLE,
	    "lean api: HTTP 500");
}

Test(lean, parse_http_503_is_unavailable_with_errors)
{
	assert_fails(parse(503, "{\"errors\":[\"maintenance\"]}"),
	    LA_ERR_UNAVAILABLE, "lean api: HTTP 503: maintenance");
}

Test(lean, parse_non_2xx_ignores_a_token_in_the_body)
{
	assert_fails(parse(502, "{\"success\":true,\"accessToken\":\"abc\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: HTTP 502");
}

Test(lean, parse_garbage_is_unparseable)
{
	assert_fails(parse(200, "not json {"), LA_ERR_UNAVAILABLE,
	    "lean api: unparseable reply");
}

Test(lean, parse_empty_body_is_unparseable)
{
	assert_fails(parse(200, ""), LA_ERR_UNAVAILABLE,
	    "lean api: unparseable reply");
}

Test(lean, parse_json_array_is_unparseable)
{
	assert_fails(parse(200, "[{\"success\":true,\"accessToken\":\"a\"}]"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_missing_success_is_unparseable)
{
	assert_fails(parse(200, "{\"accessToken\":\"abc\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_string_success_is_unparseable)
{
	assert_fails(
	    parse(200, "{\"success\":\"true\",\"accessToken\":\"a\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_duplicate_success_is_unparseable)
{
	assert_fails(parse(200,
	                 "{\"success\":false,\"success\":true,"
	                 "\"accessToken\":\"a\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_success_without_token)
{
	assert_fails(parse(200, "{\"success\":true,\"tokenType\":\"Bearer\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: reply has no accessToken");
}

Test(lean, parse_success_with_empty_token)
{
	assert_fails(parse(200, "{\"success\":true,\"accessToken\":\"\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: reply has no accessToken");
}

Test(lean, parse_success_with_numeric_token)
{
	assert_fails(parse(200, "{\"success\":true,\"accessToken\":12}"),
	    LA_ERR_UNAVAILABLE, "lean api: reply has no accessToken");
}

static char *
reply_with_token_of(size_t n)
{
	const char *pre  = "{\"success\":true,\"accessToken\":\"";
	char       *body = malloc(strlen(pre) + n + 3);
	cr_assert_not_null(body);
	strcpy(body, pre);
	memset(body + strlen(pre), 't', n);
	strcpy(body + strlen(pre) + n, "\"}");
	return (body);
}

Test(lean, parse_token_of_16_kib_is_accepted)
{
	char  *body = reply_with_token_of(LA_LEAN_MAX_TOKEN);
	parsed p    = parse(200, body);
	cr_assert_eq(p.rv, LA_OK);
	cr_assert_eq(strlen(p.r.access_token), LA_LEAN_MAX_TOKEN);
	la_lean_reply_clear(&p.r);
	free(body);
}

Test(lean, parse_token_over_16_kib_is_unavailable)
{
	char *body = reply_with_token_of(LA_LEAN_MAX_TOKEN + 1);
	assert_fails(parse(200, body), LA_ERR_UNAVAILABLE,
	    "lean api: accessToken too long");
	free(body);
}

Test(lean, parse_token_with_crlf_is_unavailable)
{
	assert_fails(parse(200,
	                 "{\"success\":true,\"accessToken\":\"a\\r\\nX-Evil: "
	                 "1\"}"),
	    LA_ERR_UNAVAILABLE,
	    "lean api: accessToken has invalid characters");
}

Test(lean, parse_token_with_nul_is_unparseable)
{
	// jansson refuses \u0000 unless asked to allow it.
	assert_fails(
	    parse(200, "{\"success\":true,\"accessToken\":\"a\\u0000b\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_redacts_echoed_refresh_token)
{
	const char *const redact[] = {API_CANARY, RT_CANARY, NULL};
	const char   *body = "{\"success\":false,\"errors\":[\"refresh token "
	                     "'" RT_CANARY "' is invalid\"]}";
	la_lean_reply r    = {0};
	char          err[256];
	cr_assert_eq(la_lean_parse(200, body, strlen(body), redact, &r, err,
	                 sizeof(err)),
	    LA_ERR_UNAUTHENTICATED);
	cr_assert_str_eq(err, "refresh token '[redacted]' is invalid");
	cr_assert_null(strstr(err, "CANARY"));
}

Test(lean, parse_redacts_before_truncating)
{
	// Truncating first would leave "CANARY-" at the end of err.
	const char *const redact[] = {RT_CANARY, NULL};
	const char       *body = "{\"success\":false,\"errors\":[\"invalid "
	                         "refresh token " RT_CANARY "\"]}";
	la_lean_reply     r    = {0};
	char              err[30];
	cr_assert_eq(la_lean_parse(200, body, strlen(body), redact, &r, err,
	                 sizeof(err)),
	    LA_ERR_UNAUTHENTICATED);
	cr_assert_str_eq(err, "invalid refresh token [redact");
}

Test(lean, parse_failure_redacts_the_replys_own_token)
{
	assert_fails(
	    parse(500,
	        "{\"accessToken\":\"AT-CANARY-77\",\"errors\":[\"issued "
	        "AT-CANARY-77 too late\"]}"),
	    LA_ERR_UNAVAILABLE,
	    "lean api: HTTP 500: issued [redacted] too late");
}

Test(lean, parse_redacts_only_the_upstreams_text)
{
	// A one-letter secret must not garble "lean api: HTTP 500".
	const char *const redact[] = {"a", NULL};
	const char       *body     = "{\"errors\":[\"a bad\"]}";
	la_lean_reply     r        = {0};
	char              err[128];
	cr_assert_eq(la_lean_parse(500, body, strlen(body), redact, &r, err,
	                 sizeof(err)),
	    LA_ERR_UNAVAILABLE);
	cr_assert_str_eq(err, "lean api: HTTP 500: [redacted] b[redacted]d");
}

// ---- redaction ---------------------------------------------------------

Test(lean, redact_replaces_every_occurrence)
{
	const char *const redact[] = {"s3cret", NULL};
	char              buf[64]  = "a s3cret b s3crets3cret";
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "a [redacted] b [redacted][redacted]");
}

Test(lean, redact_ignores_empty_strings)
{
	const char *const redact[] = {"", "k", NULL};
	char              buf[64]  = "okay";
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "o[redacted]ay");
}

Test(lean, redact_growth_is_truncated_to_buflen)
{
	const char *const redact[] = {"ab", NULL};
	char              buf[16]  = "xab ab ab";
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "x[redacted] [re");
}

Test(lean, redact_prefers_the_longest_match)
{
	const char *const redact[] = {"tok", "tok-long", NULL};
	char              buf[64]  = "<tok-long>";
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "<[redacted]>");
}

Test(lean, redact_wipes_the_old_tail)
{
	// The result is shorter than the text; what lay past its end was the
	// secret's tail and must not stay in the buffer.
	const char *const redact[] = {"SECRET-0123456789", NULL};
	char              buf[32]  = "x SECRET-0123456789";
	size_t            old      = strlen(buf);
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "x [redacted]");
	for (size_t i = strlen(buf); i <= old; i++) {
		cr_assert_eq(buf[i], '\0', "byte %zu", i);
	}
}

Test(lean, redact_with_null_list_changes_nothing)
{
	char buf[16] = "nothing";
	la_lean_redact(buf, sizeof(buf), NULL);
	cr_assert_str_eq(buf, "nothing");
}

Test(lean, redact_unterminated_buffer_is_terminated)
{
	const char *const redact[] = {"zz", NULL};
	char              buf[4]   = {'a', 'b', 'c', 'd'};
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "abc");
}

// ---- small things ------------------------------------------------------

Test(lean, token_type_names)
{
	cr_assert_str_eq(la_token_type_name(LA_TOKEN_BEARER), "Bearer");
	cr_assert_str_eq(la_token_type_name(LA_TOKEN_SESSION_TOKEN),
	    "SessionToken");
	cr_assert_str_eq(la_token_type_name(LA_TOKEN_UNSPECIFIED), "");
}

Test(lean, reply_clear_frees_and_resets)
{
	la_lean_reply r = {LA_TOKEN_BEARER, strdup("tok")};
	la_lean_reply_clear(&r);
	cr_assert_null(r.access_token);
	cr_assert_eq(r.type, LA_TOKEN_UNSPECIFIED);
	la_lean_reply_clear(&r); // twice is fine
	la_lean_reply_clear(NULL);
}

Test(lean, create_rejects_missing_config)
{
	la_lean  *l   = (la_lean *) 1;
	la_config cfg = {0};
	cr_assert_eq(la_lean_create(&l, NULL), LA_ERR_INVALID);
	cr_assert_null(l);
	cr_assert_eq(la_lean_create(&l, &cfg), LA_ERR_INVALID);
	cr_assert_eq(la_lean_create(NULL, &cfg), LA_ERR_INVALID);
	la_lean_destroy(NULL);
}

Test(lean, fetch_rejects_null_arguments)
{
	fx f;
	fx_init(&f, dead_port(), "/");
	cr_assert_eq(la_lean_fetch(f.lean, NULL, &f.prof, NULL, &f.reply,
	                 f.err, sizeof(f.err)),
	    LA_ERR_INVALID);
	cr_assert_eq(la_lean_fetch(f.lean, f.easy, NULL, NULL, &f.reply, f.err,
	                 sizeof(f.err)),
	    LA_ERR_INVALID);
	fx_fini(&f);
}

// ---- whole calls -------------------------------------------------------

Test(lean, fetch_posts_to_refresh_under_the_url_path)
{
	fx      f;
	int64_t t0, t1;
	srv    *s = fetch_ok(&f, "/api/v2/", &t0, &t1);
	cr_assert_eq(strncmp(s->req,
	                 "POST /api/v2/live/auth0/refresh HTTP/1.1\r\n", 42),
	    0, "request: %.60s", s->req);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_posts_to_refresh_at_the_root)
{
	fx      f;
	int64_t t0, t1;
	srv    *s = fetch_ok(&f, "/", &t0, &t1);
	cr_assert_eq(
	    strncmp(s->req, "POST /live/auth0/refresh HTTP/1.1\r\n", 35), 0,
	    "request: %.60s", s->req);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_timestamp_is_now)
{
	fx      f;
	int64_t t0, t1;
	char    ts[64];
	srv    *s = fetch_ok(&f, "/api/v2/", &t0, &t1);
	cr_assert(hdr_value(s->req, "Timestamp", ts, sizeof(ts)));
	int64_t v = strtoll(ts, NULL, 10);
	cr_assert_geq(v, t0 - 2);
	cr_assert_leq(v, t1 + 2);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_authorization_signs_the_timestamp)
{
	fx            f;
	int64_t       t0, t1;
	char          ts[64], auth[512], want[512], in[256], hash[65];
	unsigned char dec[512];
	srv          *s = fetch_ok(&f, "/api/v2/", &t0, &t1);
	cr_assert(hdr_value(s->req, "Timestamp", ts, sizeof(ts)));
	cr_assert(hdr_value(s->req, "Authorization", auth, sizeof(auth)));

	// Same as la_lean_sign for that timestamp…
	cr_assert_eq(la_lean_sign(USER_ID, API_CANARY, strtoll(ts, NULL, 10),
	                 want, sizeof(want)),
	    LA_OK);
	cr_assert_str_eq(auth, want);

	// …and, decoded, user ":" sha256(token ":" ts) computed here.
	cr_assert_eq(strncmp(auth, "Basic ", 6), 0);
	const char *b64 = auth + 6;
	int         n   = EVP_DecodeBlock(dec, (const unsigned char *) b64,
	              (int) strlen(b64));
	cr_assert_gt(n, 0);
	for (const char *e = b64 + strlen(b64); e > b64 && e[-1] == '='; e--) {
		n--; // EVP_DecodeBlock counts the padding
	}
	snprintf(in, sizeof(in), "%s:%s", API_CANARY, ts);
	hex_sha256(in, hash);
	snprintf(want, sizeof(want), "%s:%s", USER_ID, hash);
	cr_assert_eq((size_t) n, strlen(want));
	cr_assert_eq(memcmp(dec, want, (size_t) n), 0);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_sends_json_headers_and_user_agent)
{
	fx      f;
	int64_t t0, t1;
	char    v[128];
	srv    *s = fetch_ok(&f, "/", &t0, &t1);
	cr_assert(hdr_value(s->req, "Content-Type", v, sizeof(v)));
	cr_assert_str_eq(v, "application/json");
	cr_assert(hdr_value(s->req, "Accept", v, sizeof(v)));
	cr_assert_str_eq(v, "application/json");
	cr_assert(hdr_value(s->req, "User-Agent", v, sizeof(v)));
	cr_assert_str_eq(v, "leanauthd/" LEANAUTH_VERSION);
	cr_assert_not(hdr_value(s->req, "Expect", v, sizeof(v)));
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_sends_the_body)
{
	fx      f;
	int64_t t0, t1;
	srv    *s = fetch_ok(&f, "/", &t0, &t1);
	cr_assert_str_eq(s->req + s->head_len,
	    "{\"brokerage\":\"charlesschwab\",\"accountId\":\"A1\","
	    "\"refreshToken\":\"" RT_CANARY "\"}");
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_returns_the_token)
{
	fx      f;
	int64_t t0, t1;
	srv    *s = fetch_ok(&f, "/", &t0, &t1);
	cr_assert_eq(f.reply.type, LA_TOKEN_SESSION_TOKEN);
	cr_assert_str_eq(f.reply.access_token, "at-1");
	cr_assert_str_eq(f.err, "");
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_http_500_is_unavailable)
{
	fx   f;
	srv *s = srv_start(SRV_REPLY, 500, "{\"errors\":[\"boom\"]}");
	fx_init(&f, s->port, "/");
	cr_assert_eq(fx_fetch(&f), LA_ERR_UNAVAILABLE);
	cr_assert_str_eq(f.err, "lean api: HTTP 500: boom");
	cr_assert_null(f.reply.access_token);
	srv_stop(s);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_http_401_is_unauthenticated)
{
	fx   f;
	srv *s = srv_start(SRV_REPLY, 401, "{\"success\":false}");
	fx_init(&f, s->port, "/");
	cr_assert_eq(fx_fetch(&f), LA_ERR_UNAUTHENTICATED);
	cr_assert_str_eq(f.err, "lean api: HTTP 401");
	srv_stop(s);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_does_not_follow_redirects)
{
	fx   f;
	char raw[256];
	// Were the redirect followed, the call would fail to connect instead.
	snprintf(raw, sizeof(raw),
	    "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/\r\n"
	    "Content-Length: 0\r\n\r\n",
	    dead_port());
	srv *s = srv_start_raw(raw);
	fx_init(&f, s->port, "/");
	cr_assert_eq(fx_fetch(&f), LA_ERR_UNAVAILABLE);
	cr_assert_str_eq(f.err, "lean api: HTTP 302");
	srv_stop(s);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_connection_refused_is_unavailable)
{
	fx f;
	fx_init(&f, dead_port(), "/");
	cr_assert_eq(fx_fetch(&f), LA_ERR_UNAVAILABLE);
	cr_assert_eq(strncmp(f.err, "lean api: ", 10), 0, "err: %s", f.err);
	cr_assert_gt(strlen(f.err), 10);
	fx_fini(&f);
}

Test(lean, fetch_times_out_on_a_silent_server)
{
	fx   f;
	srv *s = srv_start(SRV_HANG, 0, NULL);
	fx_init(&f, s->port, "/");
	f.cfg.lean_timeout_ms = 300;
	int64_t t0            = now_ms();
	cr_assert_eq(fx_fetch(&f), LA_ERR_UNAVAILABLE);
	int64_t took = now_ms() - t0;
	cr_assert_geq(took, 250);
	cr_assert_lt(took, 3000, "took %lld ms", (long long) took);
	cr_assert_not_null(strstr(f.err, "timed out"), "err: %s", f.err);
	srv_stop(s);
	cr_assert(s->got_request);
	srv_free(s);
	fx_fini(&f);
}

typedef struct aborter {
	srv         *s;
	atomic_bool *flag;
	int64_t      at_ms;
} aborter;

static void *
aborter_main(void *arg)
{
	aborter *a = arg;
	// Abort only once the request is in flight (bounded wait).
	srv_wait_request(a->s, 5000);
	a->at_ms = now_ms();
	atomic_store(a->flag, true);
	return (NULL);
}

Test(lean, fetch_abort_from_another_thread_is_shutdown)
{
	fx        f;
	pthread_t t;
	srv      *s = srv_start(SRV_HANG, 0, NULL);
	fx_init(&f, s->port, "/");
	f.cfg.lean_timeout_ms = 20000;
	aborter a             = {s, &f.abort, 0};
	cr_assert_eq(pthread_create(&t, NULL, aborter_main, &a), 0);
	cr_assert_eq(fx_fetch(&f), LA_ERR_SHUTDOWN, "err: %s", f.err);
	int64_t done = now_ms();
	pthread_join(t, NULL);
	cr_assert(s->got_request);
	cr_assert_lt(done - a.at_ms, 1000, "took %lld ms after the abort",
	    (long long) (done - a.at_ms));
	cr_assert_str_eq(f.err, "lean api: call aborted: shutting down");
	srv_stop(s);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_already_aborted_sends_nothing)
{
	fx   f;
	srv *s = srv_start(SRV_REPLY, 200, OK_BODY);
	fx_init(&f, s->port, "/");
	atomic_store(&f.abort, true);
	cr_assert_eq(fx_fetch(&f), LA_ERR_SHUTDOWN);
	srv_stop(s);
	cr_assert_not(s->accepted);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_oversized_reply_is_unavailable)
{
	fx   f;
	srv *s = srv_start(SRV_BIG, 200, NULL);
	fx_init(&f, s->port, "/");
	cr_assert_eq(fx_fetch(&f), LA_ERR_UNAVAILABLE);
	cr_assert_str_eq(f.err, "lean api: reply too large");
	srv_stop(s);
	srv_free(s);
	fx_fini(&f);
}

static void
assert_no_secret(const char *text, const srv *s)
{
	char ts[64] = "", auth[512] = "", in[256], hash[65];
	hdr_value(s->req, "Timestamp", ts, sizeof(ts));
	hdr_value(s->req, "Authorization", auth, sizeof(auth));
	snprintf(in, sizeof(in), "%s:%s", API_CANARY, ts);
	hex_sha256(in, hash);
	cr_assert_gt(strlen(auth), 6);
	cr_assert_null(strstr(text, API_CANARY), "%s", text);
	cr_assert_null(strstr(text, RT_CANARY), "%s", text);
	cr_assert_null(strstr(text, hash), "%s", text);
	cr_assert_null(strstr(text, auth + 6), "%s", text);
}

Test(lean, fetch_error_never_holds_a_secret)
{
	fx   f;
	srv *s = srv_start(SRV_ECHO, 200, NULL);
	fx_init(&f, s->port, "/");
	cr_assert_eq(fx_fetch(&f), LA_ERR_UNAUTHENTICATED);
	srv_stop(s);
	assert_no_secret(f.err, s);
	cr_assert_str_eq(f.err,
	    "api token [redacted] rejected; refresh token [redacted] expired; "
	    "hash [redacted] does not match; header Basic [redacted]; body "
	    "[redacted]");
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_http_error_never_holds_a_secret)
{
	fx   f;
	srv *s = srv_start(SRV_ECHO, 400, NULL);
	fx_init(&f, s->port, "/");
	cr_assert_eq(fx_fetch(&f), LA_ERR_UNAVAILABLE);
	srv_stop(s);
	assert_no_secret(f.err, s);
	cr_assert_eq(
	    strncmp(f.err, "lean api: HTTP 400: api token [redacted]", 40), 0,
	    "%s", f.err);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_logs_one_debug_line_without_secrets)
{
	fx    f;
	FILE *log = tmpfile();
	char  text[4096];
	cr_assert_not_null(log);
	la_log_set_fd(fileno(log));
	la_log_set_level(LA_LOG_DEBUG);
	srv *s = srv_start(SRV_ECHO, 200, NULL);
	fx_init(&f, s->port, "/");
	cr_assert_eq(fx_fetch(&f), LA_ERR_UNAUTHENTICATED);
	srv_stop(s);
	la_log_set_fd(2);

	cr_assert_eq(fseek(log, 0, SEEK_SET), 0);
	size_t n = fread(text, 1, sizeof(text) - 1, log);
	text[n]  = '\0';
	fclose(log);
	cr_assert_not_null(strstr(text, "\"msg\":\"lean refresh attempt\""));
	cr_assert_not_null(strstr(text, "\"profile\":\"schwab\""), "%s", text);
	cr_assert_not_null(strstr(text, "\"http_status\":200"), "%s", text);
	cr_assert_not_null(strstr(text, "\"elapsed_ms\":"), "%s", text);
	cr_assert_not_null(strstr(text, "\"result\":\"unauthenticated\""),
	    "%s", text);
	cr_assert_eq(strchr(text, '\n'), text + n - 1, "one line: %s", text);
	assert_no_secret(text, s);
	srv_free(s);
	fx_fini(&f);
}

Test(lean, fetch_handle_is_reusable_after_reset)
{
	fx   f;
	srv *s1 = srv_start(SRV_REPLY, 200, OK_BODY);
	srv *s2 = srv_start(SRV_REPLY, 200,
	    "{\"success\":true,\"tokenType\":0,\"accessToken\":\"at-2\"}");
	fx_init(&f, s1->port, "/");
	cr_assert_eq(fx_fetch(&f), LA_OK, "err: %s", f.err);
	la_lean_reply_clear(&f.reply);
	curl_easy_reset(f.easy);
	snprintf(f.url, sizeof(f.url), "http://127.0.0.1:%d/", s2->port);
	cr_assert_eq(fx_fetch(&f), LA_OK, "err: %s", f.err);
	cr_assert_str_eq(f.reply.access_token, "at-2");
	cr_assert_eq(f.reply.type, LA_TOKEN_BEARER);
	srv_stop(s1);
	srv_stop(s2);
	srv_free(s1);
	srv_free(s2);
	fx_fini(&f);
}

Test(lean, fetch_works_with_a_share_handle_attached)
{
	fx      f;
	CURLSH *sh = curl_share_init();
	srv    *s  = srv_start(SRV_REPLY, 200, OK_BODY);
	cr_assert_not_null(sh);
	cr_assert_eq(
	    curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS),
	    CURLSHE_OK);
	fx_init(&f, s->port, "/");
	cr_assert_eq(curl_easy_setopt(f.easy, CURLOPT_SHARE, sh), CURLE_OK);
	cr_assert_eq(fx_fetch(&f), LA_OK, "err: %s", f.err);
	cr_assert_str_eq(f.reply.access_token, "at-1");
	srv_stop(s);
	srv_free(s);
	fx_fini(&f); // the easy handle goes before its share
	curl_share_cleanup(sh);
}
