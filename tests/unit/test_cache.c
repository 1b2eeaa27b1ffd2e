// test_cache.c -- the token cache state machine under an injected clock.
// Upstream attempts are recorded instead of made; each test reports their
// outcomes by hand with la_cache_attempt_done, and drives time with
// la_cache_poll. Callers are real nng aios, as in leanauthd.
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"

#define T0 1700000000000LL

typedef struct fake {
	pthread_mutex_t mtx;
	int64_t         now;
	int             attempts;     // start_attempt calls
	uint32_t        last_attempt; // its `attempt` argument
	la_err          start_result; // what start_attempt returns
	double          rand_value;   // what rand01 returns when enabled
	la_cache_event  events[64];
	char            event_errors[64][256];
	int             nevents;
} fake;

static fake           F;
static la_config      cfg;
static la_profile_cfg prof[2];
static la_cache      *cache;

static la_err
fake_start(void *arg, size_t profile, uint32_t attempt)
{
	fake *f = arg;
	(void) profile;
	pthread_mutex_lock(&f->mtx);
	f->attempts++;
	f->last_attempt = attempt;
	pthread_mutex_unlock(&f->mtx);
	return (f->start_result);
}

static int64_t
fake_now(void *arg)
{
	fake *f = arg;
	pthread_mutex_lock(&f->mtx);
	int64_t n = f->now;
	pthread_mutex_unlock(&f->mtx);
	return (n);
}

static void
fake_event(void *arg, const la_cache_event *ev)
{
	fake *f = arg;
	pthread_mutex_lock(&f->mtx);
	if (f->nevents < 64) {
		f->events[f->nevents] = *ev;
		snprintf(f->event_errors[f->nevents], 256, "%s",
		    ev->error != NULL ? ev->error : "");
		f->nevents++;
	}
	pthread_mutex_unlock(&f->mtx);
}

static double
fake_rand(void *arg)
{
	return (((fake *) arg)->rand_value);
}

static int
attempts(void)
{
	pthread_mutex_lock(&F.mtx);
	int n = F.attempts;
	pthread_mutex_unlock(&F.mtx);
	return (n);
}

static void
advance(int64_t ms)
{
	pthread_mutex_lock(&F.mtx);
	F.now += ms;
	pthread_mutex_unlock(&F.mtx);
}

static int
count_events(la_cache_event_type t)
{
	int n = 0;
	for (int i = 0; i < F.nevents; i++) {
		n += F.events[i].type == t;
	}
	return (n);
}

static void
profile_defaults(la_profile_cfg *p, char *name)
{
	memset(p, 0, sizeof(*p));
	p->name                          = name;
	p->brokerage                     = "CharlesSchwab";
	p->account_id                    = "A1";
	p->token_lifetime_s              = 1800;
	p->offset_before_expiration_s    = 120;
	p->max_retry_count               = 3;
	p->retry_interval_ms             = 5000;
	p->retry_backoff.multiplier      = 1.0;
	p->retry_backoff.max_interval_ms = 5000;
	p->refresh_ahead_s               = 420;
}

static void
setup(void)
{
	memset(&F, 0, sizeof(F));
	pthread_mutex_init(&F.mtx, NULL);
	F.now = T0;
	profile_defaults(&prof[0], "p0");
	profile_defaults(&prof[1], "p1");
	memset(&cfg, 0, sizeof(cfg));
	cfg.profiles   = prof;
	cfg.n_profiles = 2;
}

static void
make_cache_rand(bool with_rand)
{
	la_cache_ops ops = {
	    .start_attempt = fake_start,
	    .now_ms        = fake_now,
	    .rand01        = with_rand ? fake_rand : NULL,
	    .event         = fake_event,
	    .arg           = &F,
	};
	cr_assert_eq(la_cache_create(&cache, &cfg, &ops), LA_OK);
}

// Without a random source there is no jitter: times are exact.
static void
make_cache(void)
{
	make_cache_rand(false);
}

static void
teardown(void)
{
	la_cache_stop(cache);
	la_cache_destroy(cache);
	cache = NULL;
}

// A parked caller: an aio (no callback; the test waits on it).
typedef struct caller {
	nng_aio        *aio;
	la_cache_waiter w;
} caller;

static la_err
get(caller *cl, size_t profile, bool force, uint64_t if_gen,
    nng_duration timeout)
{
	if (cl->aio == NULL) {
		cr_assert_eq(nng_aio_alloc(&cl->aio, NULL, NULL), 0);
	}
	nng_aio_set_timeout(cl->aio, timeout);
	cl->w.aio           = cl->aio;
	la_cache_get_opts o = {.force_refresh = force,
	    .if_generation                    = if_gen};
	return (la_cache_get(cache, profile, &o, &cl->w));
}

static void
caller_done(caller *cl)
{
	if (cl->w.token != NULL) {
		la_token_release(cl->w.token);
		cl->w.token = NULL;
	}
	nng_aio_free(cl->aio);
	cl->aio = NULL;
}

static void
reply_ok(size_t profile, const char *token)
{
	la_lean_reply r = {.type = LA_TOKEN_BEARER,
	    .access_token        = strdup(token)};
	la_cache_attempt_done(cache, profile, LA_OK, &r, NULL);
}

static void
reply_fail(size_t profile, la_err err, const char *msg)
{
	la_lean_reply r = {0};
	la_cache_attempt_done(cache, profile, err, &r, msg);
}

// Gets a first token (generation 1) for profile 0.
static void
prime(const char *token)
{
	caller cl = {0};
	cr_assert_eq(get(&cl, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	reply_ok(0, token);
	nng_aio_wait(cl.aio);
	cr_assert_eq(cl.w.result, LA_OK);
	caller_done(&cl);
}

TestSuite(cache, .init = setup, .fini = teardown);

Test(cache, cold_get_waits_for_one_refresh_then_serves_from_cache)
{
	make_cache();
	caller a = {0}, b = {0};

	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(attempts(), 1);
	cr_assert_eq(F.last_attempt, 1);
	reply_ok(0, "tok-1");
	nng_aio_wait(a.aio);
	cr_assert_eq(a.w.result, LA_OK);
	cr_assert_str_eq(a.w.token->access_token, "tok-1");
	cr_assert_eq(a.w.token->type, LA_TOKEN_BEARER);
	cr_assert_eq(a.w.token->generation, 1);

	for (int i = 0; i < 100; i++) {
		cr_assert_eq(get(&b, 0, false, 0, NNG_DURATION_INFINITE),
		    LA_OK);
		cr_assert_str_eq(b.w.token->access_token, "tok-1");
		la_token_release(b.w.token);
		b.w.token = NULL;
	}
	cr_assert_eq(attempts(), 1);
	caller_done(&a);
	caller_done(&b);
}

Test(cache, expiry_is_now_plus_lifetime_minus_offset)
{
	make_cache();
	prime("tok-1");
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE), LA_OK);
	cr_assert_eq(a.w.token->expires_at_ms, T0 + (1800 - 120) * 1000);
	caller_done(&a);
}

Test(cache, expired_token_is_never_served)
{
	prof[0].refresh_ahead_s = 0; // no background refresh: pure expiry
	make_cache();
	prime("tok-1");
	advance((1800 - 120) * 1000 - 1);
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE), LA_OK);
	la_token_release(a.w.token);
	a.w.token = NULL;
	advance(1);
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(attempts(), 2);
	reply_ok(0, "tok-2");
	nng_aio_wait(a.aio);
	cr_assert_str_eq(a.w.token->access_token, "tok-2");
	cr_assert_eq(a.w.token->generation, 2);
	caller_done(&a);
}

Test(cache, single_flight_under_contention)
{
	make_cache();
	enum { N = 200 };
	caller *cl = calloc(N, sizeof(caller));
	for (int i = 0; i < N; i++) {
		cr_assert_eq(get(&cl[i], 0, false, 0, NNG_DURATION_INFINITE),
		    LA_ERR_PENDING);
	}
	cr_assert_eq(attempts(), 1);
	reply_ok(0, "tok-1");
	for (int i = 0; i < N; i++) {
		nng_aio_wait(cl[i].aio);
		cr_assert_eq(cl[i].w.result, LA_OK);
		cr_assert_str_eq(cl[i].w.token->access_token, "tok-1");
		caller_done(&cl[i]);
	}
	cr_assert_eq(attempts(), 1);
	free(cl);
}

Test(cache, profiles_refresh_independently)
{
	make_cache();
	caller a = {0}, b = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(get(&b, 1, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(attempts(), 2);
	reply_ok(1, "tok-p1");
	nng_aio_wait(b.aio);
	cr_assert_str_eq(b.w.token->access_token, "tok-p1");
	reply_ok(0, "tok-p0");
	nng_aio_wait(a.aio);
	cr_assert_str_eq(a.w.token->access_token, "tok-p0");
	caller_done(&a);
	caller_done(&b);
}

Test(cache, refresh_ahead_runs_in_background_and_callers_never_wait)
{
	make_cache();
	prime("tok-1");
	int64_t expires    = T0 + 1680 * 1000;
	int64_t refresh_at = expires - 420 * 1000; // no jitter (rand01 NULL)

	cr_assert_eq(la_cache_poll(cache), refresh_at - T0);
	advance(refresh_at - T0 - 1);
	cr_assert_eq(la_cache_poll(cache), 1);
	cr_assert_eq(attempts(), 1);
	advance(1);
	la_cache_poll(cache);
	cr_assert_eq(attempts(), 2, "background refresh starts at refresh_at");

	// While it runs, callers get the current token at once.
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE), LA_OK);
	cr_assert_str_eq(a.w.token->access_token, "tok-1");
	la_token_release(a.w.token);
	a.w.token = NULL;

	reply_ok(0, "tok-2");
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE), LA_OK);
	cr_assert_str_eq(a.w.token->access_token, "tok-2");
	cr_assert_eq(a.w.token->generation, 2);
	cr_assert_eq(count_events(LA_EV_TOKEN_REFRESHED), 2);
	caller_done(&a);
}

Test(cache, refresh_ahead_is_jittered_within_ten_percent)
{
	int64_t usable = 1680 * 1000, ahead = 420 * 1000;

	F.rand_value = 0.0; // jitter factor 0.9
	make_cache_rand(true);
	prime("tok");
	cr_assert_eq(la_cache_poll(cache), usable - ahead * 9 / 10);
	la_cache_stop(cache);
	la_cache_destroy(cache);

	F.rand_value = 0.75; // jitter factor 1.05
	make_cache_rand(true);
	prime("tok");
	cr_assert_eq(la_cache_poll(cache), usable - ahead * 105 / 100);
}

Test(cache, failed_attempts_are_retried_after_the_interval)
{
	prof[0].max_retry_count   = 3;
	prof[0].retry_interval_ms = 5000;
	make_cache();
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	reply_fail(0, LA_ERR_UNAVAILABLE, "lean api: HTTP 500");
	cr_assert_eq(la_cache_poll(cache), 5000);
	advance(4999);
	la_cache_poll(cache);
	cr_assert_eq(attempts(), 1, "no attempt before the interval");
	advance(1);
	la_cache_poll(cache);
	cr_assert_eq(attempts(), 2);
	cr_assert_eq(F.last_attempt, 2);
	reply_fail(0, LA_ERR_UNAVAILABLE, "lean api: HTTP 500");
	advance(5000);
	la_cache_poll(cache);
	cr_assert_eq(attempts(), 3);
	reply_ok(0, "tok-1");
	nng_aio_wait(a.aio);
	cr_assert_eq(a.w.result, LA_OK, "token after 3 attempts");
	cr_assert_str_eq(a.w.token->access_token, "tok-1");
	cr_assert_eq(count_events(LA_EV_AUTH_FAILED), 0);
	caller_done(&a);
}

Test(cache, exhausted_retries_fail_every_waiter_with_the_last_error)
{
	prof[0].max_retry_count   = 2;
	prof[0].retry_interval_ms = 100;
	make_cache();
	caller a = {0}, b = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(get(&b, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(attempts(), i + 1);
		reply_fail(0, LA_ERR_UNAUTHENTICATED, "Invalid refresh token");
		advance(100);
		la_cache_poll(cache);
	}
	cr_assert_eq(attempts(), 3, "max_retry_count + 1 attempts");
	nng_aio_wait(a.aio);
	nng_aio_wait(b.aio);
	cr_assert_eq(a.w.result, LA_ERR_UNAUTHENTICATED);
	cr_assert_eq(b.w.result, LA_ERR_UNAUTHENTICATED);
	cr_assert_str_eq(a.w.error, "Invalid refresh token");
	cr_assert_null(a.w.token);
	cr_assert_eq(count_events(LA_EV_AUTH_FAILED), 1);
	cr_assert_eq(F.events[0].type, LA_EV_AUTH_FAILED);
	cr_assert_eq(F.events[0].attempts, 3);
	cr_assert_str_eq(F.event_errors[0], "Invalid refresh token");

	la_cache_status st;
	la_cache_status_get(cache, 0, &st);
	cr_assert(st.failed);
	cr_assert_not(st.refreshing);

	// The next caller starts a fresh round.
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(attempts(), 4);
	cr_assert_eq(F.last_attempt, 1);
	reply_ok(0, "tok-1");
	nng_aio_wait(a.aio);
	cr_assert_eq(a.w.result, LA_OK);
	caller_done(&a);
	caller_done(&b);
}

Test(cache, backoff_grows_and_is_capped)
{
	prof[0].max_retry_count               = 5;
	prof[0].retry_interval_ms             = 100;
	prof[0].retry_backoff.multiplier      = 2.0;
	prof[0].retry_backoff.max_interval_ms = 500;
	make_cache();
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	int64_t want[] = {100, 200, 400, 500, 500};
	for (int i = 0; i < 5; i++) {
		reply_fail(0, LA_ERR_UNAVAILABLE, "down");
		cr_assert_eq(la_cache_poll(cache), want[i], "wait %d", i);
		advance(want[i]);
		la_cache_poll(cache);
	}
	reply_ok(0, "tok");
	nng_aio_wait(a.aio);
	cr_assert_eq(a.w.result, LA_OK);
	caller_done(&a);
}

Test(cache, retry_wait_is_jittered)
{
	prof[0].retry_interval_ms        = 1000;
	prof[0].retry_backoff.multiplier = 1.0;
	prof[0].retry_backoff.jitter     = 0.2;
	prof[0].refresh_ahead_s          = 0;
	F.rand_value                     = 0.0; // factor 0.8
	make_cache_rand(true);
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	reply_fail(0, LA_ERR_UNAVAILABLE, "down");
	cr_assert_eq(la_cache_poll(cache), 800);
	caller_done(&a);
}

// Runs profile 0's background refresh to exhaustion with the token still
// valid.
static void
degrade(void)
{
	prof[0].max_retry_count   = 1;
	prof[0].retry_interval_ms = 1000;
	make_cache();
	prime("tok-1");
	advance((1680 - 420) * 1000);
	la_cache_poll(cache);
	cr_assert_eq(attempts(), 2);
	reply_fail(0, LA_ERR_UNAVAILABLE, "lean api: HTTP 503");
	advance(1000);
	la_cache_poll(cache);
	cr_assert_eq(attempts(), 3);
	reply_fail(0, LA_ERR_UNAVAILABLE, "lean api: HTTP 503");
}

Test(cache, background_failure_degrades_and_keeps_serving_the_token)
{
	degrade();
	cr_assert_eq(count_events(LA_EV_AUTH_DEGRADED), 1);
	cr_assert_eq(count_events(LA_EV_AUTH_FAILED), 0);
	int d = F.nevents - 1;
	cr_assert_eq(F.events[d].type, LA_EV_AUTH_DEGRADED);
	cr_assert_eq(F.events[d].attempts, 2);
	cr_assert_eq(F.events[d].expires_at_ms, T0 + 1680 * 1000);
	cr_assert_str_eq(F.event_errors[d], "lean api: HTTP 503");

	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE), LA_OK);
	cr_assert_str_eq(a.w.token->access_token, "tok-1");
	caller_done(&a);

	// Refreshing goes on.
	advance(1000);
	la_cache_poll(cache);
	cr_assert_eq(attempts(), 4);
	reply_fail(0, LA_ERR_UNAVAILABLE, "lean api: HTTP 503");
	cr_assert_eq(count_events(LA_EV_AUTH_DEGRADED), 1, "published once");
}

Test(cache, recovery_after_degraded_publishes_recovered_and_refreshed)
{
	degrade();
	advance(1000);
	la_cache_poll(cache);
	reply_ok(0, "tok-2");
	cr_assert_eq(count_events(LA_EV_AUTH_RECOVERED), 1);
	cr_assert_eq(F.events[F.nevents - 1].type, LA_EV_TOKEN_REFRESHED);
	cr_assert_eq(F.events[F.nevents - 1].generation, 2);
	cr_assert_eq(F.events[F.nevents - 2].type, LA_EV_AUTH_RECOVERED);
}

Test(cache, degraded_token_expiring_publishes_failed)
{
	degrade();
	int64_t expires = T0 + 1680 * 1000;
	// The upstream stays down: answer every attempt with a failure and
	// move the clock to whatever is due next, until Failed.
	for (int guard = 0; count_events(LA_EV_AUTH_FAILED) == 0; guard++) {
		cr_assert_lt(guard, 2000, "Failed never came");
		int     before = attempts();
		int64_t due    = la_cache_poll(cache);
		if (attempts() > before) {
			reply_fail(0, LA_ERR_UNAVAILABLE,
			    "lean api: HTTP 503");
			continue;
		}
		if (count_events(LA_EV_AUTH_FAILED) > 0) {
			break; // published by this poll
		}
		cr_assert_geq(due, 0);
		advance(due);
	}
	cr_assert_geq(F.now, expires);
	cr_assert_lt(F.now, expires + 1000);
	cr_assert_eq(count_events(LA_EV_AUTH_FAILED), 1);
	cr_assert_str_eq(F.event_errors[F.nevents - 1], "lean api: HTTP 503");
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING, "no valid token is left");
	caller_done(&a);
}

Test(cache, force_refresh_drops_the_token)
{
	make_cache();
	prime("tok-1");
	caller a = {0};
	cr_assert_eq(get(&a, 0, true, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(attempts(), 2);
	// Meanwhile nobody gets the dropped token.
	caller b = {0};
	cr_assert_eq(get(&b, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(attempts(), 2, "joins the refresh in flight");
	reply_ok(0, "tok-2");
	nng_aio_wait(a.aio);
	nng_aio_wait(b.aio);
	cr_assert_str_eq(a.w.token->access_token, "tok-2");
	cr_assert_str_eq(b.w.token->access_token, "tok-2");
	caller_done(&a);
	caller_done(&b);
}

Test(cache, if_generation_deduplicates_forced_refreshes)
{
	make_cache();
	prime("tok-1"); // generation 1
	enum { N = 50 };
	caller cl[N];
	memset(cl, 0, sizeof(cl));
	for (int i = 0; i < N; i++) {
		cr_assert_eq(get(&cl[i], 0, true, 1, NNG_DURATION_INFINITE),
		    LA_ERR_PENDING);
	}
	cr_assert_eq(attempts(), 2, "one refresh for fifty callers");
	reply_ok(0, "tok-2");
	for (int i = 0; i < N; i++) {
		nng_aio_wait(cl[i].aio);
		cr_assert_eq(cl[i].w.token->generation, 2);
	}
	// A late caller that also saw generation 1 gets generation 2 at once.
	caller late = {0};
	cr_assert_eq(get(&late, 0, true, 1, NNG_DURATION_INFINITE), LA_OK);
	cr_assert_eq(late.w.token->generation, 2);
	cr_assert_eq(attempts(), 2);
	// Generation 2 being bad does force a refresh.
	la_token_release(late.w.token);
	late.w.token = NULL;
	cr_assert_eq(get(&late, 0, true, 2, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(attempts(), 3);
	for (int i = 0; i < N; i++) {
		caller_done(&cl[i]);
	}
	caller_done(&late);
}

Test(cache, failed_force_refresh_publishes_failed)
{
	prof[0].max_retry_count = 0;
	make_cache();
	prime("tok-1");
	caller a = {0};
	cr_assert_eq(get(&a, 0, true, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	reply_fail(0, LA_ERR_UNAUTHENTICATED, "Invalid refresh token");
	nng_aio_wait(a.aio);
	cr_assert_eq(a.w.result, LA_ERR_UNAUTHENTICATED);
	cr_assert_eq(count_events(LA_EV_AUTH_FAILED), 1);
	caller_done(&a);
}

Test(cache, deadline_fails_one_caller_while_the_refresh_goes_on)
{
	make_cache();
	caller slow = {0}, patient = {0};
	cr_assert_eq(get(&slow, 0, false, 0, 30), LA_ERR_PENDING);
	cr_assert_eq(get(&patient, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	nng_aio_wait(slow.aio); // nng's expiry thread fires the timeout
	cr_assert_eq(slow.w.result, LA_ERR_TIMEOUT);
	cr_assert_null(slow.w.token);
	reply_ok(0, "tok-1");
	nng_aio_wait(patient.aio);
	cr_assert_eq(patient.w.result, LA_OK);
	cr_assert_eq(attempts(), 1);
	caller_done(&slow);
	caller_done(&patient);
}

Test(cache, stop_answers_waiters_and_refuses_new_callers)
{
	make_cache();
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	la_cache_stop(cache);
	nng_aio_wait(a.aio);
	cr_assert_eq(a.w.result, LA_ERR_SHUTDOWN);
	caller b = {0};
	cr_assert_eq(get(&b, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_SHUTDOWN);
	// A late attempt result is discarded without harm.
	reply_ok(0, "late");
	caller_done(&a);
	caller_done(&b);
}

Test(cache, an_attempt_that_cannot_start_counts_as_failed)
{
	prof[0].max_retry_count   = 1;
	prof[0].retry_interval_ms = 0;
	F.start_result            = LA_ERR_BUSY;
	make_cache();
	caller a  = {0};
	la_err rv = get(&a, 0, false, 0, NNG_DURATION_INFINITE);
	cr_assert_eq(rv, LA_ERR_PENDING);
	la_cache_poll(cache); // the zero-length retry wait
	nng_aio_wait(a.aio);
	cr_assert_eq(a.w.result, LA_ERR_BUSY);
	cr_assert_eq(attempts(), 2);
	caller_done(&a);
}

Test(cache, caller_during_long_background_backoff_gets_a_fresh_round)
{
	degrade(); // background retries now wait 1000 ms between attempts
	// Let the token expire without polling, as if the timer were late.
	advance(1680 * 1000);
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(attempts(), 4, "starts at once, not after the backoff");
	cr_assert_eq(F.last_attempt, 1);
	reply_ok(0, "tok-2");
	nng_aio_wait(a.aio);
	cr_assert_eq(a.w.result, LA_OK);
	cr_assert_eq(count_events(LA_EV_AUTH_RECOVERED), 1);
	caller_done(&a);
}

Test(cache, caller_joining_the_last_background_attempt_gets_a_full_round)
{
	degrade(); // max_retry_count 1: rounds of two attempts
	advance(1000);
	la_cache_poll(cache); // first attempt of the next background round
	reply_fail(0, LA_ERR_UNAVAILABLE, "lean api: HTTP 503");
	advance(1000);
	la_cache_poll(cache); // its last attempt is in flight
	int before = attempts();
	// The token expires; a caller arrives and joins the attempt in flight.
	advance(1680 * 1000);
	caller a = {0};
	cr_assert_eq(get(&a, 0, false, 0, NNG_DURATION_INFINITE),
	    LA_ERR_PENDING);
	cr_assert_eq(attempts(), before, "joins, does not start another");
	reply_fail(0, LA_ERR_UNAVAILABLE, "lean api: HTTP 503");
	cr_assert_eq(count_events(LA_EV_AUTH_FAILED), 0,
	    "one retry is still owed");
	advance(1000);
	la_cache_poll(cache);
	cr_assert_eq(attempts(), before + 1);
	reply_ok(0, "tok-2");
	nng_aio_wait(a.aio);
	cr_assert_eq(a.w.result, LA_OK);
	caller_done(&a);
}
