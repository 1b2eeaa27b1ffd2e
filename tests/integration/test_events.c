// test_events.c -- events end to end: the real leanauthd publishing on PUB,
// libleanauth's subscriber, the CLI's watch and supervise, and graceful
// shutdown. A raw SUB socket records every event of every test; the fixture
// checks its framing and that no canary secret is in any of them.
//
// PUB/SUB drops events for subscribers that are not connected yet, so every
// test waits until leanauthd's leanauth_events_subscribers gauge counts its
// subscribers before it makes anything happen.
#define _GNU_SOURCE // memmem
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static h_env E;

// ---- the raw recorder

typedef struct raw_rec {
	bool            on;
	nng_socket      sock;
	pthread_t       thr;
	atomic_bool     stop;
	pthread_mutex_t mtx;
	char           *buf; // every message, concatenated
	size_t          len;
	int             n;   // messages
	int             bad; // not "leanauth.v1.<Name>\0<protobuf>"
	int             by_type[5];
	char            first_bad[128];
} raw_rec;

static raw_rec R;

static int
raw_type(const char *topic)
{
	static const char *const t[] = {"", LEANAUTH_TOPIC_TOKEN_REFRESHED,
	    LEANAUTH_TOPIC_AUTHENTICATION_FAILED,
	    LEANAUTH_TOPIC_AUTHENTICATION_DEGRADED,
	    LEANAUTH_TOPIC_AUTHENTICATION_RECOVERED};
	for (int i = 1; i < 5; i++) {
		if (strcmp(topic, t[i]) == 0) {
			return (i);
		}
	}
	return (0);
}

static void *
raw_loop(void *arg)
{
	(void) arg;
	while (!atomic_load(&R.stop)) {
		char  *msg = NULL;
		size_t len = 0;
		int    rv  = nng_recv(R.sock, &msg, &len, NNG_FLAG_ALLOC);
		if (rv == NNG_ETIMEDOUT) {
			continue;
		}
		if (rv != 0) {
			break;
		}
		pthread_mutex_lock(&R.mtx);
		char *nb = realloc(R.buf, R.len + len + 1);
		if (nb != NULL) {
			R.buf = nb;
			memcpy(R.buf + R.len, msg, len);
			R.len += len;
			R.buf[R.len] = '\0';
		}
		R.n++;
		const char *nul  = memchr(msg, '\0', len);
		int         type = nul != NULL ? raw_type(msg) : 0;
		if (type == 0 || (size_t) (nul - msg) + 1 >= len) {
			if (R.bad++ == 0) {
				snprintf(R.first_bad, sizeof(R.first_bad),
				    "%.*s", (int) (len < 100 ? len : 100),
				    msg);
			}
		} else {
			R.by_type[type]++;
		}
		pthread_mutex_unlock(&R.mtx);
		nng_free(msg, len);
	}
	return (NULL);
}

static void
raw_start(void)
{
	cr_assert_eq(nng_sub0_open(&R.sock), 0);
	cr_assert_eq(nng_socket_set(R.sock, NNG_OPT_SUB_SUBSCRIBE, "", 0), 0);
	cr_assert_eq(nng_socket_set_ms(R.sock, NNG_OPT_RECVTIMEO, 50), 0);
	cr_assert_eq(nng_dial(R.sock, E.events_url, NULL, NNG_FLAG_NONBLOCK),
	    0);
	pthread_mutex_init(&R.mtx, NULL);
	atomic_store(&R.stop, false);
	cr_assert_eq(pthread_create(&R.thr, NULL, raw_loop, NULL), 0);
	R.on = true;
}

static int
raw_count(int type)
{
	pthread_mutex_lock(&R.mtx);
	int n = R.by_type[type];
	pthread_mutex_unlock(&R.mtx);
	return (n);
}

static void
setup(void)
{
	memset(&R, 0, sizeof(R));
	h_setup(&E);
}

static void
teardown(void)
{
	bool leak = false;
	int  bad  = 0;
	if (R.on) {
		atomic_store(&R.stop, true);
		pthread_join(R.thr, NULL);
		nng_close(R.sock);
		leak = R.buf != NULL &&
		    memmem(R.buf, R.len, CANARY_ANY, strlen(CANARY_ANY)) !=
		        NULL;
		bad = R.bad;
	}
	h_teardown(&E);
	free(R.buf);
	R.buf = NULL;
	// Criterion ignores failed assertions in .fini: h_fini_check does not.
	h_fini_check(!leak, "an event carried a canary secret");
	h_fini_check(bad == 0, "%d malformed event(s), first: %s", bad,
	    R.first_bad);
}

TestSuite(events, .init = setup, .fini = teardown, .timeout = 120);

// ---- helpers

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

typedef struct httpbuf {
	char  *p;
	size_t n;
} httpbuf;

static size_t
collect(char *d, size_t s, size_t n, void *arg)
{
	httpbuf *b  = arg;
	char    *np = realloc(b->p, b->n + s * n + 1);
	if (np == NULL) {
		return (0);
	}
	b->p = np;
	memcpy(b->p + b->n, d, s * n);
	b->n += s * n;
	b->p[b->n] = '\0';
	return (s * n);
}

// metric reads one unlabelled value from leanauthd's /metrics (-1: none).
static long
metric(const char *name)
{
	char url[256];
	snprintf(url, sizeof(url), "http://%s/metrics", E.http_addr);
	CURL   *h = curl_easy_init();
	httpbuf b = {0};
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	CURLcode cc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	long v = -1;
	if (cc == CURLE_OK && b.p != NULL) {
		char key[128];
		snprintf(key, sizeof(key), "\n%s ", name);
		char *at = strstr(b.p, key);
		if (at != NULL) {
			v = strtol(at + strlen(key), NULL, 10);
		}
	}
	free(b.p);
	return (v);
}

static long
subscribers(void)
{
	return (metric("leanauth_events_subscribers"));
}

// wait_subscribers waits until leanauthd sends events to n subscribers.
static void
wait_subscribers(long n)
{
	int64_t until = h_now_ms() + 10000;
	long    have;
	while ((have = subscribers()) < n) {
		cr_assert_lt(h_now_ms(), until,
		    "leanauthd has %ld event subscribers, expected %ld", have,
		    n);
		sleep_ms(10);
	}
}

// start starts leanauthd and the raw recorder (subscriber number 1).
static void
start(void)
{
	h_daemon_start(&E);
	raw_start();
	wait_subscribers(1);
}

// sub subscribes to topics (NULL: all) and waits until leanauthd counts
// `expect` subscribers in all.
static leanauth_subscriber *
sub(const char *topic, long expect)
{
	leanauth_subscriber *s;
	leanauth_error       err;
	leanauth_options     o         = {.connect_timeout_ms = 5000};
	const char          *topics[1] = {topic};
	int                  rv        = leanauth_subscribe(&s, E.events_url,
            topic != NULL ? topics : NULL, topic != NULL ? 1 : 0, &o, &err);
	cr_assert_eq(rv, 0, "leanauth_subscribe: %s", err.message);
	wait_subscribers(expect);
	return (s);
}

static void
next(leanauth_subscriber *s, int timeout_ms, leanauth_event *ev)
{
	leanauth_error err;
	int            rv = leanauth_next_event(s, timeout_ms, ev, &err);
	cr_assert_eq(rv, 0, "no event: %s (%s)", leanauth_code_name(rv),
	    err.message);
}

static void
no_event(leanauth_subscriber *s, int timeout_ms)
{
	leanauth_event ev = {0};
	leanauth_error err;
	int            rv = leanauth_next_event(s, timeout_ms, &ev, &err);
	cr_assert_eq(rv, LEANAUTH_DEADLINE_EXCEEDED,
	    "unexpected %s (%s) for %s", leanauth_code_name(rv), ev.topic,
	    ev.profile);
}

static int
get(leanauth_client *c, const char *profile, bool force, uint32_t timeout_ms,
    leanauth_token *t, leanauth_error *err)
{
	leanauth_call_options co = {.timeout_ms = timeout_ms};
	return (leanauth_get_token(c, profile, force, 0, &co, t, err));
}

static bool
serving(leanauth_client *c, const char *profile)
{
	leanauth_error err;
	bool           s = false;
	cr_assert_eq(leanauth_health(c, profile, NULL, &s, &err), 0, "%s",
	    err.message);
	return (s);
}

static void
set_retries(size_t profile, int max_retry_count)
{
	json_object_set_new(h_profile(&E, profile), "max_retry_count",
	    json_integer(max_retry_count));
}

// short_lived makes schwab's token usable for 5 s, refreshed in the
// background from about 3 s before expiry, retried every 100 ms.
static void
short_lived(void)
{
	json_t *p = h_profile(&E, 0);
	json_object_set_new(p, "token_lifetime_s", json_integer(6));
	json_object_set_new(p, "offset_before_expiration_s", json_integer(1));
	json_object_set_new(p, "refresh_ahead_s", json_integer(3));
	json_object_set_new(p, "retry_interval_ms", json_integer(100));
	json_object_set_new(p, "max_retry_count", json_integer(1));
}

static long
lean_account_stat(const char *account, const char *key)
{
	json_t *st = h_lean(&E, "_control/stats", NULL);
	cr_assert_not_null(st);
	json_t *v = json_object_get(
	    json_object_get(json_object_get(st, "by_account"), account), key);
	cr_assert(json_is_integer(v), "no by_account.%s.%s", account, key);
	long n = (long) json_integer_value(v);
	json_decref(st);
	return (n);
}

static void
assert_failed(const leanauth_event *ev, const char *profile,
    const char *account, const char *error, uint32_t attempts, int64_t from,
    int64_t to)
{
	cr_assert_eq(ev->type, LEANAUTH_EVENT_AUTHENTICATION_FAILED, "got %s",
	    ev->topic);
	cr_assert_str_eq(ev->topic, "leanauth.v1.AuthenticationFailed");
	cr_assert_str_eq(ev->profile, profile);
	cr_assert_str_eq(ev->brokerage, "CharlesSchwab");
	cr_assert_str_eq(ev->account_id, account);
	cr_assert_str_eq(ev->error, error);
	cr_assert_eq(ev->attempts, attempts);
	cr_assert_geq(ev->at_unix_ms, from);
	cr_assert_leq(ev->at_unix_ms, to);
	// Fields Failed does not have stay zero.
	cr_assert_eq(ev->generation, 0);
	cr_assert_eq(ev->expires_at_unix_ms, 0);
}

// ---- TokenRefreshed

Test(events, token_refreshed_after_the_first_token)
{
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	leanauth_client     *c = h_client(&E);
	leanauth_token       t;
	leanauth_error       err;
	leanauth_event       ev;

	int64_t before = wall_ms();
	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	int64_t after = wall_ms();
	next(s, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_TOKEN_REFRESHED);
	cr_assert_str_eq(ev.topic, "leanauth.v1.TokenRefreshed");
	cr_assert_str_eq(ev.profile, "schwab");
	cr_assert_eq(ev.token_type, LEANAUTH_TOKEN_BEARER);
	cr_assert_eq(ev.generation, 1);
	cr_assert_eq(ev.expires_at_unix_ms, t.expires_at_unix_ms);
	cr_assert_geq(ev.at_unix_ms, before);
	cr_assert_leq(ev.at_unix_ms, after);
	cr_assert_str_empty(ev.error);
	cr_assert_eq(ev.attempts, 0);

	// Served from the cache: no refresh, no event.
	leanauth_token t2;
	cr_assert_eq(get(c, "", false, 0, &t2, &err), 0);
	no_event(s, 300);
	cr_assert_eq(raw_count(LEANAUTH_EVENT_TOKEN_REFRESHED), 1);
	cr_assert_eq(
	    metric(
	        "leanauth_events_published_total{event=\"TokenRefreshed\"}"),
	    1);
	leanauth_token_clear(&t);
	leanauth_token_clear(&t2);
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

Test(events, token_refreshed_carries_the_session_token_type_and_generation)
{
	json_t *planned = h_lean(&E, "_control/plan",
	    "{\"account_id\":\"A1\",\"token_type\":\"SessionToken\"}");
	cr_assert_not_null(planned);
	json_decref(planned);
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	leanauth_client     *c = h_client(&E);
	leanauth_token       t;
	leanauth_error       err;
	leanauth_event       ev;

	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	leanauth_token_clear(&t);
	cr_assert_eq(get(c, "", true, 0, &t, &err), 0, "%s", err.message);
	next(s, 5000, &ev);
	cr_assert_eq(ev.generation, 1);
	next(s, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_TOKEN_REFRESHED);
	cr_assert_eq(ev.token_type, LEANAUTH_TOKEN_SESSION_TOKEN);
	cr_assert_eq(ev.generation, 2);
	cr_assert_eq(ev.expires_at_unix_ms, t.expires_at_unix_ms);
	leanauth_token_clear(&t);
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

// ---- AuthenticationFailed

Test(events, failed_when_5xx_retries_are_exhausted)
{
	set_retries(0, 2);
	h_lean_plan(&E, "A1", "[]", "500");
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	leanauth_client     *c = h_client(&E);
	leanauth_token       t;
	leanauth_error       err;
	leanauth_event       ev;

	int64_t before = wall_ms();
	cr_assert_eq(get(c, "", false, 0, &t, &err), LEANAUTH_UNAVAILABLE);
	int64_t after = wall_ms();
	cr_assert(strstr(err.message, "HTTP 500") != NULL, "%s", err.message);
	next(s, 5000, &ev);
	assert_failed(&ev, "schwab", "A1", err.message, 3, before, after);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 3);
	no_event(s, 200);
	// The current state, for whoever missed the event.
	cr_assert_not(serving(c, "schwab"));
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

Test(events, failed_when_the_refresh_token_is_refused)
{
	set_retries(0, 2);
	h_lean_plan(&E, "A1", "[]", "unauthorized");
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	leanauth_client     *c = h_client(&E);
	leanauth_token       t;
	leanauth_error       err;
	leanauth_event       ev;

	int64_t before = wall_ms();
	cr_assert_eq(get(c, "", false, 0, &t, &err), LEANAUTH_UNAUTHENTICATED);
	int64_t after = wall_ms();
	next(s, 5000, &ev);
	assert_failed(&ev, "schwab", "A1", "Invalid refresh token", 3, before,
	    after);
	cr_assert_str_eq(err.message, "Invalid refresh token");
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

Test(events, failed_after_a_failed_force_refresh)
{
	set_retries(0, 2);
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	leanauth_client     *c = h_client(&E);
	leanauth_token       t;
	leanauth_error       err;
	leanauth_event       ev;

	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	leanauth_token_clear(&t);
	next(s, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_TOKEN_REFRESHED);
	cr_assert(serving(c, "schwab"));

	h_lean_plan(&E, "A1", "[]", "unauthorized");
	int64_t before = wall_ms();
	cr_assert_eq(get(c, "", true, 0, &t, &err), LEANAUTH_UNAUTHENTICATED);
	int64_t after = wall_ms();
	next(s, 5000, &ev);
	assert_failed(&ev, "schwab", "A1", "Invalid refresh token", 3, before,
	    after);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 4);
	cr_assert_not(serving(c, "schwab"));

	// The next caller starts a new round: a new Failed, counted afresh.
	cr_assert_eq(get(c, "", false, 0, &t, &err), LEANAUTH_UNAUTHENTICATED);
	next(s, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_AUTHENTICATION_FAILED);
	cr_assert_eq(ev.attempts, 3);
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

Test(events, failed_error_never_quotes_a_secret)
{
	set_retries(0, 0);
	h_lean_plan(&E, "A1", "[]", "echo_secret");
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	leanauth_client     *c = h_client(&E);
	leanauth_token       t;
	leanauth_error       err;
	leanauth_event       ev;

	cr_assert_eq(get(c, "", false, 0, &t, &err), LEANAUTH_UNAUTHENTICATED);
	next(s, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_AUTHENTICATION_FAILED);
	cr_assert_null(strstr(ev.error, CANARY_ANY), "error: %s", ev.error);
	cr_assert(strstr(ev.error, "[redacted]") != NULL, "error: %s",
	    ev.error);
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

Test(events, topic_filter_delivers_only_the_subscribed_event)
{
	set_retries(0, 0);
	start();
	leanauth_subscriber *failed =
	    sub(LEANAUTH_TOPIC_AUTHENTICATION_FAILED, 2);
	leanauth_subscriber *all = sub(NULL, 3);
	leanauth_client     *c   = h_client(&E);
	leanauth_token       t;
	leanauth_error       err;
	leanauth_event       ev;

	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	leanauth_token_clear(&t);
	// It was published: the other subscriber has it.
	next(all, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_TOKEN_REFRESHED);

	h_lean_plan(&E, "A1", "[]", "unauthorized");
	cr_assert_eq(get(c, "", true, 0, &t, &err), LEANAUTH_UNAUTHENTICATED);
	next(all, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_AUTHENTICATION_FAILED);
	// The filtered subscriber's first event is the Failed one.
	next(failed, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_AUTHENTICATION_FAILED, "got %s",
	    ev.topic);
	cr_assert_str_eq(ev.profile, "schwab");
	no_event(failed, 200);
	leanauth_close(c);
	leanauth_subscriber_close(failed);
	leanauth_subscriber_close(all);
}

// ---- Degraded, Recovered

Test(events, background_failure_degrades_then_fails_when_the_token_expires)
{
	short_lived();
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	leanauth_client     *c = h_client(&E);
	leanauth_token       t, t2;
	leanauth_error       err;
	leanauth_event       ev, deg;

	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	next(s, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_TOKEN_REFRESHED);
	h_lean_plan(&E, "A1", "[]", "500");

	// The background refresh (from about 3 s before expiry) fails twice.
	next(s, 6000, &deg);
	cr_assert_eq(deg.type, LEANAUTH_EVENT_AUTHENTICATION_DEGRADED,
	    "got %s", deg.topic);
	cr_assert_str_eq(deg.topic, "leanauth.v1.AuthenticationDegraded");
	cr_assert_str_eq(deg.profile, "schwab");
	cr_assert(strstr(deg.error, "HTTP 500") != NULL, "error: %s",
	    deg.error);
	cr_assert_eq(deg.attempts, 2, "max_retry_count + 1");
	cr_assert_eq(deg.expires_at_unix_ms, t.expires_at_unix_ms);
	cr_assert_lt(deg.at_unix_ms, t.expires_at_unix_ms);
	cr_assert_geq(deg.at_unix_ms, t.expires_at_unix_ms - 3300);
	cr_assert_str_empty(deg.brokerage);

	// Meanwhile callers keep getting the same token, and it is healthy.
	cr_assert_lt(wall_ms(), t.expires_at_unix_ms - 500, "test too slow");
	cr_assert_eq(get(c, "", false, 0, &t2, &err), 0, "%s", err.message);
	cr_assert_str_eq(t2.access_token, t.access_token);
	cr_assert_eq(t2.generation, 1);
	leanauth_token_clear(&t2);
	cr_assert(serving(c, "schwab"));

	// Retries go on; once the token expires with the upstream still down,
	// nobody can be given a token: Failed.
	next(s, 6000, &ev);
	long failed_calls = lean_account_stat("A1", "failed");
	assert_failed(&ev, "schwab", "A1", deg.error, (uint32_t) failed_calls,
	    t.expires_at_unix_ms, t.expires_at_unix_ms + 1000);
	cr_assert_gt(ev.attempts, 2);
	cr_assert_not(serving(c, "schwab"));
	no_event(s, 200);
	cr_assert_eq(lean_account_stat("A1", "failed"), failed_calls,
	    "no upstream call after Failed");
	leanauth_token_clear(&t);
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

Test(events, degraded_then_recovered_then_refreshed)
{
	short_lived();
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	leanauth_client     *c = h_client(&E);
	leanauth_token       t, t2;
	leanauth_error       err;
	leanauth_event       ev, deg;

	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	next(s, 5000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_TOKEN_REFRESHED);
	h_lean_plan(&E, "A1", "[]", "500");
	next(s, 6000, &deg);
	cr_assert_eq(deg.type, LEANAUTH_EVENT_AUTHENTICATION_DEGRADED,
	    "got %s", deg.topic);

	h_lean_plan(&E, "A1", "[]", "ok");
	int64_t before = wall_ms();
	next(s, 3000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_AUTHENTICATION_RECOVERED,
	    "got %s", ev.topic);
	cr_assert_str_eq(ev.topic, "leanauth.v1.AuthenticationRecovered");
	cr_assert_str_eq(ev.profile, "schwab");
	cr_assert_geq(ev.at_unix_ms, before);
	cr_assert_lt(ev.at_unix_ms, t.expires_at_unix_ms);
	int64_t recovered_at = ev.at_unix_ms;
	next(s, 3000, &ev);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_TOKEN_REFRESHED, "got %s",
	    ev.topic);
	cr_assert_eq(ev.generation, 2);
	cr_assert_eq(ev.at_unix_ms, recovered_at);
	cr_assert_gt(ev.expires_at_unix_ms, t.expires_at_unix_ms);

	cr_assert_eq(get(c, "", false, 0, &t2, &err), 0, "%s", err.message);
	cr_assert_eq(t2.generation, 2);
	cr_assert_eq(t2.expires_at_unix_ms, ev.expires_at_unix_ms);
	cr_assert_str_neq(t2.access_token, t.access_token);
	cr_assert(serving(c, "schwab"));
	cr_assert_eq(raw_count(LEANAUTH_EVENT_AUTHENTICATION_FAILED), 0);
	leanauth_token_clear(&t);
	leanauth_token_clear(&t2);
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

// ---- the subscriber API

static void *
interrupt_later(void *arg)
{
	sleep_ms(100);
	leanauth_subscriber_interrupt(arg);
	return (NULL);
}

static bool
stop_after_one(const leanauth_event *ev, void *arg)
{
	*(int *) arg += ev->type;
	return (false);
}

Test(events, subscriber_interrupt_is_never_lost)
{
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	leanauth_event       ev;
	leanauth_error       err;

	// An interrupt that comes while nobody waits is kept for the next wait
	// (supervise's watcher thread can be between two waits when its
	// child exits).
	leanauth_subscriber_interrupt(s);
	int64_t t0 = h_now_ms();
	cr_assert_eq(leanauth_next_event(s, 5000, &ev, &err),
	    LEANAUTH_CANCELLED);
	cr_assert_lt(h_now_ms() - t0, 1000);
	// ... and used up by it.
	cr_assert_eq(leanauth_next_event(s, 100, &ev, &err),
	    LEANAUTH_DEADLINE_EXCEEDED);

	// From another thread, while blocked.
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, interrupt_later, s), 0);
	t0 = h_now_ms();
	cr_assert_eq(leanauth_next_event(s, -1, &ev, &err),
	    LEANAUTH_CANCELLED);
	cr_assert_lt(h_now_ms() - t0, 5000);
	pthread_join(th, NULL);

	// leanauth_watch: an interrupt ends it with OK; so does the callback.
	cr_assert_eq(pthread_create(&th, NULL, interrupt_later, s), 0);
	int seen = 0;
	cr_assert_eq(leanauth_watch(s, stop_after_one, &seen, &err), 0);
	pthread_join(th, NULL);
	cr_assert_eq(seen, 0);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	leanauth_token_clear(&t);
	cr_assert_eq(leanauth_watch(s, stop_after_one, &seen, &err), 0);
	cr_assert_eq(seen, LEANAUTH_EVENT_TOKEN_REFRESHED);
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

Test(events, subscribe_with_connect_timeout_reports_an_unreachable_server)
{
	leanauth_subscriber *s = NULL;
	leanauth_error       err;
	leanauth_options     o  = {.connect_timeout_ms = 300};
	int64_t              t0 = h_now_ms();
	cr_assert_eq(
	    leanauth_subscribe(&s, "tcp://127.0.0.1:1", NULL, 0, &o, &err),
	    LEANAUTH_UNAVAILABLE);
	cr_assert_null(s);
	cr_assert_geq(h_now_ms() - t0, 290);
	cr_assert(strstr(err.message, "within 300 ms") != NULL, "%s",
	    err.message);
	cr_assert_eq(leanauth_subscribe(&s, "", NULL, 0, &o, &err),
	    LEANAUTH_INVALID_ARGUMENT);
	cr_assert_eq(leanauth_subscribe(&s, "nonsense://x", NULL, 0, &o, &err),
	    LEANAUTH_INVALID_ARGUMENT);
}

// ---- graceful shutdown

typedef struct caller {
	leanauth_client *c;
	int              rv;
	leanauth_error   err;
	int64_t          done_at;
} caller;

static void *
call_thread(void *p)
{
	caller        *w = p;
	leanauth_token t;
	w->rv      = get(w->c, "", false, 30000, &t, &w->err);
	w->done_at = h_now_ms();
	if (w->rv == 0) {
		leanauth_token_clear(&t);
	}
	return (NULL);
}

// sigterm_with_a_waiting_caller stops leanauthd while w waits and checks the
// exit and the caller's answer; returns the shutdown time in ms.
static int64_t
sigterm_with_a_waiting_caller(caller *w, pthread_t th)
{
	int64_t took;
	int64_t t0 = h_now_ms();
	int     rv = h_daemon_stop(&E, SIGTERM, 5000, &took);
	cr_assert_eq(rv, 0, "leanauthd exit %d (-1: still running after 5 s)",
	    rv);
	pthread_join(th, NULL);
	cr_assert_eq(w->rv, LEANAUTH_UNAVAILABLE, "got %s: %s",
	    leanauth_code_name(w->rv), w->err.message);
	cr_assert(strstr(w->err.message, "shutting down") != NULL, "%s",
	    w->err.message);
	cr_assert_lt(w->done_at - t0, 5000);
	cr_assert(h_log_contains(&E, "\"msg\":\"stopped\""));
	return (took);
}

Test(events, sigterm_answers_a_caller_waiting_out_a_long_retry_interval)
{
	json_object_set_new(h_profile(&E, 0), "retry_interval_ms",
	    json_integer(60000));
	h_lean_plan(&E, "A1", "[]", "500");
	start();
	leanauth_subscriber *s = sub(NULL, 2);
	caller               w = {.c = h_client(&E)};
	pthread_t            th;
	cr_assert_eq(pthread_create(&th, NULL, call_thread, &w), 0);
	// The first attempt failed; the next one is a minute away.
	cr_assert(h_wait_log(&E, "token refresh attempt failed", 5000));
	int64_t took = sigterm_with_a_waiting_caller(&w, th);
	fprintf(stderr, "shutdown during a 60 s retry wait took %lld ms\n",
	    (long long) took);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 1);
	// Shutting down is not an authentication failure.
	no_event(s, 200);
	leanauth_close(w.c);
	leanauth_subscriber_close(s);
}

Test(events, sigterm_ends_a_hanging_refresh)
{
	h_lean_plan(&E, "A1", "[]", "hang");
	start();
	caller    w = {.c = h_client(&E)};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, call_thread, &w), 0);
	cr_assert(h_lean_wait(&E, "hanging=1", 5000),
	    "the refresh never started");
	int64_t took = sigterm_with_a_waiting_caller(&w, th);
	fprintf(stderr, "shutdown during a hanging refresh took %lld ms\n",
	    (long long) took);
	leanauth_close(w.c);
}

Test(events, an_event_published_just_before_sigterm_reaches_the_subscriber)
{
	set_retries(0, 0);
	h_lean_plan(&E, "A1", "[]", "unauthorized");
	// Three daemons in a row: the reply reaches the caller about when the
	// event is published, so SIGTERM lands before or during publishing.
	for (int i = 0; i < 3; i++) {
		if (i > 0) {
			atomic_store(&R.stop, true);
			pthread_join(R.thr, NULL);
			nng_close(R.sock);
			R.on = false;
		}
		start();
		leanauth_subscriber *s = sub(NULL, 2);
		leanauth_client     *c = h_client(&E);
		leanauth_token       t;
		leanauth_error       err;
		leanauth_event       ev;
		cr_assert_eq(get(c, "", false, 0, &t, &err),
		    LEANAUTH_UNAUTHENTICATED);
		kill(E.daemon, SIGTERM);
		next(s, 3000, &ev);
		cr_assert_eq(ev.type, LEANAUTH_EVENT_AUTHENTICATION_FAILED);
		int64_t took;
		cr_assert_eq(h_daemon_stop(&E, SIGTERM, 5000, &took), 0);
		leanauth_close(c);
		leanauth_subscriber_close(s);
	}
}

typedef struct burst_arg {
	leanauth_client *c;
	char             profile[32];
	int              rv;
} burst_arg;

static void *
burst_call(void *p)
{
	burst_arg     *b = p;
	leanauth_token t;
	leanauth_error err;
	b->rv = get(b->c, b->profile, false, 10000, &t, &err);
	return (NULL);
}

Test(events, a_burst_of_failures_right_before_sigterm_reaches_the_subscriber)
{
	enum { N = 24 };
	set_retries(0, 0);
	for (int i = 1; i < N; i++) {
		char name[32], account[32];
		snprintf(name, sizeof(name), "p%d", i);
		snprintf(account, sizeof(account), "B%d", i);
		h_add_profile(&E, name, account);
	}
	h_lean_plan(&E, "*", "[]", "unauthorized");
	h_lean_plan(&E, "A1", "[]", "unauthorized");
	start();
	leanauth_subscriber *s = sub(LEANAUTH_TOPIC_AUTHENTICATION_FAILED, 2);
	leanauth_client     *c = h_client(&E);
	burst_arg            args[N];
	pthread_t            th[N];
	for (int i = 0; i < N; i++) {
		args[i].c = c;
		snprintf(args[i].profile, sizeof(args[i].profile),
		    i == 0 ? "schwab" : "p%d", i);
		cr_assert_eq(
		    pthread_create(&th[i], NULL, burst_call, &args[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(args[i].rv, LEANAUTH_UNAUTHENTICATED);
	}
	kill(E.daemon, SIGTERM);
	bool seen[N] = {false};
	for (int i = 0; i < N; i++) {
		leanauth_event ev;
		next(s, 3000, &ev);
		int k = strcmp(ev.profile, "schwab") == 0
		    ? 0
		    : atoi(ev.profile + 1);
		cr_assert(k >= 0 && k < N && !seen[k], "%s", ev.profile);
		seen[k] = true;
	}
	int64_t took;
	cr_assert_eq(h_daemon_stop(&E, SIGTERM, 5000, &took), 0);
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

// ---- leanauth watch

static char *
spawned_output(const char *name, const char *ext)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s.%s", E.dir, name, ext);
	char *s = h_read_file(path);
	cr_assert_not_null(s, "%s", path);
	return (s);
}

static void
fail_schwab(leanauth_client *c, bool force)
{
	leanauth_token t;
	leanauth_error err;
	h_lean_plan(&E, "A1", "[]", "unauthorized");
	cr_assert_eq(get(c, "schwab", force, 0, &t, &err),
	    LEANAUTH_UNAUTHENTICATED);
}

Test(events, watch_json_prints_one_object_per_line)
{
	set_retries(0, 2);
	start();
	const char *argv[] = {LEANAUTH_CLI, "watch", "--events", E.events_url,
	    "--json", "--count", "2", NULL};
	pid_t       pid    = h_spawn(&E, "watch", argv);
	wait_subscribers(2);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	fail_schwab(c, true);
	cr_assert_eq(h_wait_pid(pid, 5000), 0);

	char *out = spawned_output("watch", "out");
	char *nl  = strchr(out, '\n');
	cr_assert_not_null(nl, "%s", out);
	*nl       = '\0';
	json_t *a = json_loads(out, 0, NULL);
	json_t *b = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, NULL);
	cr_assert_not_null(a, "line 1: %s", out);
	cr_assert_not_null(b, "line 2: %s", nl + 1);
	cr_assert_eq(strchr(nl + 1, '\n'), nl + 1 + strlen(nl + 1) - 1,
	    "two lines: %s", nl + 1);

	cr_assert_eq(json_object_size(a), 6, "%s", out);
	cr_assert_str_eq(json_string_value(json_object_get(a, "event")),
	    "TokenRefreshed");
	cr_assert_str_eq(json_string_value(json_object_get(a, "profile")),
	    "schwab");
	cr_assert_str_eq(json_string_value(json_object_get(a, "token_type")),
	    "Bearer");
	cr_assert_eq(json_integer_value(json_object_get(a, "generation")), 1);
	cr_assert_eq(
	    json_integer_value(json_object_get(a, "expires_at_unix_ms")),
	    t.expires_at_unix_ms);
	cr_assert_gt(json_integer_value(json_object_get(a, "at_unix_ms")), 0);

	cr_assert_eq(json_object_size(b), 7);
	cr_assert_str_eq(json_string_value(json_object_get(b, "event")),
	    "AuthenticationFailed");
	cr_assert_str_eq(json_string_value(json_object_get(b, "profile")),
	    "schwab");
	cr_assert_str_eq(json_string_value(json_object_get(b, "brokerage")),
	    "CharlesSchwab");
	cr_assert_str_eq(json_string_value(json_object_get(b, "account_id")),
	    "A1");
	cr_assert_str_eq(json_string_value(json_object_get(b, "error")),
	    "Invalid refresh token");
	cr_assert_eq(json_integer_value(json_object_get(b, "attempts")), 3);
	cr_assert_geq(json_integer_value(json_object_get(b, "at_unix_ms")),
	    json_integer_value(json_object_get(a, "at_unix_ms")));
	json_decref(a);
	json_decref(b);
	free(out);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(events, watch_topic_filters)
{
	set_retries(0, 0);
	start();
	const char *argv[] = {LEANAUTH_CLI, "watch", "--events", E.events_url,
	    "--topic", "AuthenticationFailed", "--json", "--count", "1", NULL};
	const char *full[] = {LEANAUTH_CLI, "watch", "--events", E.events_url,
	    "--topic", "leanauth.v1.AuthenticationFailed", "--count", "1",
	    NULL};
	pid_t       pid    = h_spawn(&E, "watch", argv);
	pid_t       pid2   = h_spawn(&E, "watch2", full);
	wait_subscribers(3);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	leanauth_token_clear(&t);
	fail_schwab(c, true);
	cr_assert_eq(h_wait_pid(pid, 5000), 0);
	cr_assert_eq(h_wait_pid(pid2, 5000), 0);
	cr_assert_eq(raw_count(LEANAUTH_EVENT_TOKEN_REFRESHED), 1,
	    "it was published");

	char   *out = spawned_output("watch", "out");
	json_t *j   = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "one JSON line: %s", out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "event")),
	    "AuthenticationFailed");
	json_decref(j);
	free(out);
	out = spawned_output("watch2", "out");
	cr_assert(strstr(out, " AuthenticationFailed profile=schwab ") != NULL,
	    "%s", out);
	cr_assert_null(strstr(out, "TokenRefreshed"), "%s", out);
	free(out);
	leanauth_close(c);
}

Test(events, watch_prints_readable_lines)
{
	set_retries(0, 0);
	start();
	const char *argv[] = {LEANAUTH_CLI, "watch", "--events", E.events_url,
	    "--count", "2", NULL};
	pid_t       pid    = h_spawn(&E, "watch", argv);
	wait_subscribers(2);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, &t, &err), 0, "%s", err.message);
	fail_schwab(c, true);
	cr_assert_eq(h_wait_pid(pid, 5000), 0);

	char *out = spawned_output("watch", "out");
	char  want[512];
	snprintf(want, sizeof(want),
	    " TokenRefreshed profile=schwab token_type=Bearer generation=1 "
	    "expires_at_unix_ms=%lld\n",
	    (long long) t.expires_at_unix_ms);
	// "2026-01-02T03:04:05Z" then the event.
	int y, mo, d, h, mi, s;
	cr_assert_eq(
	    sscanf(out, "%4d-%2d-%2dT%2d:%2d:%2dZ", &y, &mo, &d, &h, &mi, &s),
	    6, "%s", out);
	cr_assert_eq(strncmp(out + 20, want, strlen(want)), 0, "%s", out);
	const char *l2 = out + 20 + strlen(want);
	cr_assert_str_eq(l2 + 20,
	    " AuthenticationFailed profile=schwab brokerage=CharlesSchwab "
	    "account_id=A1 attempts=1 error=\"Invalid refresh token\"\n");
	free(out);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

static int
run_cli(const char *const argv[], char *out, size_t outlen, char *err,
    size_t errlen)
{
	return (h_run(argv, 10000, out, outlen, err, errlen));
}

Test(events, watch_exit_codes)
{
	start();
	char out[1024], err[2048];

	const char *quiet[] = {LEANAUTH_CLI, "watch", "--events", E.events_url,
	    "--count", "1", "--timeout", "300", NULL};
	cr_assert_eq(run_cli(quiet, out, sizeof(out), err, sizeof(err)), 1);
	cr_assert(strstr(err, "DEADLINE_EXCEEDED") != NULL, "%s", err);
	cr_assert_str_empty(out);

	const char *until[] = {LEANAUTH_CLI, "watch", "--events", E.events_url,
	    "--timeout", "300", NULL};
	cr_assert_eq(run_cli(until, out, sizeof(out), err, sizeof(err)), 0,
	    "%s", err);

	const char *badurl[] = {LEANAUTH_CLI, "watch", "--events",
	    "nonsense://x", "--timeout", "300", NULL};
	cr_assert_eq(run_cli(badurl, out, sizeof(out), err, sizeof(err)), 1);
	cr_assert(strstr(err, "INVALID_ARGUMENT") != NULL, "%s", err);

	const char *const bad[][8] = {
	    {LEANAUTH_CLI, "watch", "--topic", "Nope", NULL},
	    {LEANAUTH_CLI, "watch", "--count", "0", NULL},
	    {LEANAUTH_CLI, "watch", "--count", "x", NULL},
	    {LEANAUTH_CLI, "watch", "--timeout", "0", NULL},
	    {LEANAUTH_CLI, "watch", "--bogus", NULL},
	    {LEANAUTH_CLI, "watch", "--events", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(
		    run_cli(bad[i], out, sizeof(out), err, sizeof(err)), 2,
		    "%s %s", bad[i][2], bad[i][3] != NULL ? bad[i][3] : "");
		cr_assert(strstr(err, "usage:") != NULL, "%s", err);
	}
}

// ---- leanauth supervise

// A child that exits 42 on SIGTERM, or (ignore_term) cannot be stopped with
// it; it touches `ready` once its trap is set.
static void
child_script(char *buf, size_t n, const char *ready, bool ignore_term)
{
	snprintf(buf, n,
	    "trap %s TERM; touch '%s'; while :; do sleep 0.05; done",
	    ignore_term ? "''" : "'exit 42'", ready);
}

static bool
wait_file(const char *path, int timeout_ms)
{
	int64_t     until = h_now_ms() + timeout_ms;
	struct stat st;
	while (stat(path, &st) != 0) {
		if (h_now_ms() >= until) {
			return (false);
		}
		sleep_ms(5);
	}
	return (true);
}

// supervise starts `leanauth supervise` with extra options; returns once
// its child runs. Supervise connects before starting the child, so
// leanauthd counts it as a subscriber by then.
static pid_t
supervise(const char *name, const char *grace, bool ignore_term,
    const char *profile)
{
	char ready[400], script[600];
	snprintf(ready, sizeof(ready), "%s/%s.ready", E.dir, name);
	child_script(script, sizeof(script), ready, ignore_term);
	const char *argv[16] = {LEANAUTH_CLI, "supervise", "--events",
	    E.events_url, "--grace", grace};
	int         n        = 6;
	if (profile != NULL) {
		argv[n++] = "--profile";
		argv[n++] = profile;
	}
	argv[n++]    = "--";
	argv[n++]    = "/bin/sh";
	argv[n++]    = "-c";
	argv[n++]    = script;
	long  before = subscribers();
	pid_t pid    = h_spawn(&E, name, argv);
	if (!wait_file(ready, 10000)) {
		char *err = spawned_output(name, "err");
		cr_assert_fail(
		    "supervise's child never started; exit %d, stderr: %s",
		    h_wait_pid(pid, 0), err);
	}
	cr_assert_eq(subscribers(), before + 1,
	    "supervise started its child before connecting");
	return (pid);
}

Test(events, supervise_stops_the_child_on_authentication_failed)
{
	set_retries(0, 0);
	start();
	pid_t            pid = supervise("sup", "5", false, "schwab");
	leanauth_client *c   = h_client(&E);
	cr_assert_eq(h_wait_pid(pid, 0), -1, "supervise ended early");
	int64_t t0 = h_now_ms();
	fail_schwab(c, false);
	cr_assert_eq(h_wait_pid(pid, 5000), 42);
	fprintf(stderr, "supervise: failure to exit %lld ms\n",
	    (long long) (h_now_ms() - t0));
	char *err = spawned_output("sup", "err");
	cr_assert(strstr(err,
	              "AuthenticationFailed for profile schwab (1 attempts: "
	              "Invalid refresh token)") != NULL,
	    "%s", err);
	cr_assert(strstr(err, "sending SIGTERM") != NULL, "%s", err);
	cr_assert_null(strstr(err, "SIGKILL"), "%s", err);
	free(err);
	leanauth_close(c);
}

Test(events, supervise_kills_a_child_that_ignores_sigterm_after_the_grace)
{
	set_retries(0, 0);
	start();
	pid_t            pid = supervise("sup", "0.5", true, "schwab");
	leanauth_client *c   = h_client(&E);
	int64_t          t0  = h_now_ms();
	fail_schwab(c, false);
	cr_assert_eq(h_wait_pid(pid, 5000), 137);
	int64_t took = h_now_ms() - t0;
	cr_assert_geq(took, 500, "killed before the grace was over: %lld ms",
	    (long long) took);
	cr_assert_lt(took, 3000, "%lld ms", (long long) took);
	char *err = spawned_output("sup", "err");
	cr_assert(strstr(err, "sending SIGTERM") != NULL, "%s", err);
	cr_assert(strstr(err, "grace period over, sending SIGKILL") != NULL,
	    "%s", err);
	free(err);
	leanauth_close(c);
}

Test(events, supervise_ignores_failures_of_other_profiles)
{
	set_retries(0, 0);
	h_add_profile(&E, "ibkr", "B2");
	h_lean_plan(&E, "B2", "[]", "unauthorized");
	start();
	leanauth_subscriber *s   = sub(NULL, 2);
	pid_t                pid = supervise("sup", "5", false, "schwab");
	leanauth_client     *c   = h_client(&E);
	leanauth_token       t;
	leanauth_error       err;
	leanauth_event       ev;

	cr_assert_eq(get(c, "ibkr", false, 0, &t, &err),
	    LEANAUTH_UNAUTHENTICATED);
	next(s, 5000, &ev);
	assert_failed(&ev, "ibkr", "B2", "Invalid refresh token", 1, 0,
	    INT64_MAX);
	cr_assert_eq(h_wait_pid(pid, 0), -1,
	    "supervise reacted to ibkr's failure");

	fail_schwab(c, false);
	cr_assert_eq(h_wait_pid(pid, 5000), 42);
	char *out = spawned_output("sup", "err");
	cr_assert(strstr(out, "AuthenticationFailed for profile schwab") !=
	        NULL,
	    "%s", out);
	cr_assert_null(strstr(out, "ibkr"), "%s", out);
	free(out);
	leanauth_close(c);
	leanauth_subscriber_close(s);
}

Test(events, supervise_without_profile_reacts_to_any_profile)
{
	set_retries(0, 0);
	h_add_profile(&E, "ibkr", "B2");
	h_lean_plan(&E, "B2", "[]", "unauthorized");
	start();
	pid_t            pid = supervise("sup", "5", false, NULL);
	leanauth_client *c   = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "ibkr", false, 0, &t, &err),
	    LEANAUTH_UNAUTHENTICATED);
	cr_assert_eq(h_wait_pid(pid, 5000), 42);
	char *out = spawned_output("sup", "err");
	cr_assert(strstr(out, "AuthenticationFailed for profile ibkr") != NULL,
	    "%s", out);
	free(out);
	leanauth_close(c);
}

Test(events, supervise_forwards_sigterm_to_the_child)
{
	start();
	pid_t pid = supervise("sup", "5", false, "schwab");
	kill(pid, SIGTERM);
	cr_assert_eq(h_wait_pid(pid, 5000), 42);
	char *err = spawned_output("sup", "err");
	cr_assert_null(strstr(err, "AuthenticationFailed"), "%s", err);
	free(err);
}

Test(events, supervise_exit_codes)
{
	start();
	char out[1024], err[2048];

	// The child's own status, or 128 + the signal that killed it.
	const char *three[] = {LEANAUTH_CLI, "supervise", "--events",
	    E.events_url, "--", "/bin/sh", "-c", "exit 3", NULL};
	cr_assert_eq(run_cli(three, out, sizeof(out), err, sizeof(err)), 3,
	    "%s", err);
	const char *killed[] = {LEANAUTH_CLI, "supervise", "--events",
	    E.events_url, "--", "/bin/sh", "-c", "kill -KILL $$", NULL};
	cr_assert_eq(run_cli(killed, out, sizeof(out), err, sizeof(err)), 137,
	    "%s", err);

	const char *missing[] = {LEANAUTH_CLI, "supervise", "--events",
	    E.events_url, "--", "/nonexistent/command", NULL};
	cr_assert_eq(run_cli(missing, out, sizeof(out), err, sizeof(err)),
	    127);
	cr_assert(strstr(err, "/nonexistent/command: command not found") !=
	        NULL,
	    "%s", err);
	const char *notexec[] = {LEANAUTH_CLI, "supervise", "--events",
	    E.events_url, "--", "/etc/passwd", NULL};
	cr_assert_eq(run_cli(notexec, out, sizeof(out), err, sizeof(err)), 126,
	    "%s", err);

	// No leanauthd to watch: the command does not start.
	char marker[400], script[500];
	snprintf(marker, sizeof(marker), "%s/started", E.dir);
	snprintf(script, sizeof(script), "touch '%s'", marker);
	const char *nobody[] = {LEANAUTH_CLI, "supervise", "--events",
	    "tcp://127.0.0.1:1", "--connect-timeout", "0.3", "--", "/bin/sh",
	    "-c", script, NULL};
	cr_assert_eq(run_cli(nobody, out, sizeof(out), err, sizeof(err)), 1);
	cr_assert(strstr(err, "UNAVAILABLE") != NULL, "%s", err);
	struct stat st;
	cr_assert_neq(stat(marker, &st), 0, "the command ran unsupervised");

	const char *const bad[][8] = {
	    {LEANAUTH_CLI, "supervise", NULL},
	    {LEANAUTH_CLI, "supervise", "--", NULL},
	    {LEANAUTH_CLI, "supervise", "sleep", "1", NULL},
	    {LEANAUTH_CLI, "supervise", "--grace", "x", "--", "true", NULL},
	    {LEANAUTH_CLI, "supervise", "--grace", "-1", "--", "true", NULL},
	    {LEANAUTH_CLI, "supervise", "--connect-timeout", "0", "--", "true",
	        NULL},
	    {LEANAUTH_CLI, "supervise", "--bogus", "--", "true", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(
		    run_cli(bad[i], out, sizeof(out), err, sizeof(err)), 2,
		    "case %zu", i);
		cr_assert(strstr(err, "usage:") != NULL, "%s", err);
	}
}
