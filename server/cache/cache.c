// cache.c -- per-profile token entries and their refresh state machine.
//
// Each entry is IDLE, ATTEMPTING (one upstream call in flight: single
// flight) or RETRY_WAIT (between attempts). A refresh "round" is up to
// max_retry_count + 1 attempts. A round is *foreground* when callers wait on
// it (the token is missing, expired or was dropped by force_refresh) and
// *background* when it runs ahead of expiry while the token is still served.
//
//   foreground round exhausted           -> waiters get the error; Failed
//   background round exhausted, token ok -> Degraded; keep retrying with
//                                           backoff until the token expires
//   degraded token expires               -> Failed
//   any success                          -> Refreshed (+ Recovered if degraded)
//
// All decisions happen under the entry's mutex; everything with side effects
// outside the entry (finishing aios, events, starting attempts, waking the
// timer) is collected into an la_actions and run after unlocking.
#include "cache.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

typedef enum { ST_IDLE, ST_ATTEMPTING, ST_RETRY_WAIT } la_state;

typedef struct la_entry {
	pthread_mutex_t       mtx;
	la_cache             *cache;
	size_t                idx;
	const la_profile_cfg *cfg;

	la_token *token; // current token, possibly expired; NULL: none
	uint64_t  generation;

	la_state state;
	bool     foreground;      // waiters depend on this round
	uint32_t round_attempts;  // attempts started in this round
	uint32_t outage_attempts; // failed calls since the last success
	int64_t  next_attempt_ms; // RETRY_WAIT: when the next attempt is due
	int64_t  refresh_at_ms;   // IDLE with token: background refresh due
	bool     degraded;
	bool     failed;
	la_err   last_err; // the latest failed attempt's code and text
	char     last_error[256];

	la_cache_waiter *head; // parked callers, FIFO
	la_cache_waiter *tail;

	uint64_t upstream_calls;
	uint64_t refreshes_ok;
	uint64_t refreshes_failed;
} la_entry;

struct la_cache {
	const la_config *cfg;
	la_cache_ops     ops;
	la_entry        *entries;
	size_t           n;
	atomic_bool      stopped;

	nng_aio    *timer;
	atomic_bool timer_kicked;
	atomic_bool timer_on;
};

// Side effects decided under the entry lock, performed after it.
typedef struct la_actions {
	bool             start;
	uint32_t         attempt;
	la_cache_waiter *done; // waiters to finish, linked through next
	la_cache_event   ev[2];
	int              nev;
	char             error[256]; // text for ev[], stable after unlock
	bool             kick;
} la_actions;

la_token *
la_token_hold(la_token *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return (t);
}

void
la_token_release(la_token *t)
{
	if (t == NULL) {
		return;
	}
	if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) ==
	    1) {
		explicit_bzero(t->access_token, t->len);
		free(t);
	}
}

static la_token *
la_token_new(la_token_type type, const char *access, int64_t expires_at_ms,
    uint64_t generation)
{
	size_t    len = strlen(access);
	la_token *t   = malloc(sizeof(*t) + len + 1);
	if (t == NULL) {
		return (NULL);
	}
	atomic_init(&t->refs, 1);
	t->type          = type;
	t->expires_at_ms = expires_at_ms;
	t->generation    = generation;
	t->len           = len;
	memcpy(t->access_token, access, len + 1);
	return (t);
}

static int64_t
la_now(la_cache *c)
{
	return (c->ops.now_ms(c->ops.arg));
}

static double
la_rand(la_cache *c)
{
	return (c->ops.rand01 != NULL ? c->ops.rand01(c->ops.arg) : 0.5);
}

// la_retry_delay is the wait before the next attempt after `failures`
// consecutive failures: retry_interval * multiplier^(failures-1), capped,
// then scaled by 1 ± jitter.
static int64_t
la_retry_delay(la_cache *c, const la_profile_cfg *p, uint32_t failures)
{
	const la_backoff_cfg *b = &p->retry_backoff;
	double                d = (double) p->retry_interval_ms;
	for (uint32_t i = 1; i < failures && d < (double) b->max_interval_ms;
	     i++) {
		d *= b->multiplier;
	}
	if (b->multiplier > 1.0 && d > (double) b->max_interval_ms) {
		d = (double) b->max_interval_ms;
	}
	if (b->jitter > 0) {
		d *= 1.0 + b->jitter * (2.0 * la_rand(c) - 1.0);
	}
	return (d < 0 ? 0 : (int64_t) d);
}

// la_refresh_at picks when a token expiring at `expires` is refreshed in the
// background: refresh_ahead before expiry, ±10 % so replicas spread out.
static int64_t
la_refresh_at(la_cache *c, const la_profile_cfg *p, int64_t expires)
{
	double ahead = (double) la_config_refresh_ahead_ms(p);
	ahead *= 1.0 + 0.1 * (2.0 * la_rand(c) - 1.0);
	return (expires - (int64_t) ahead);
}

static void
la_waiter_unlink(la_entry *e, la_cache_waiter *w)
{
	if (w->prev != NULL) {
		w->prev->next = w->next;
	} else {
		e->head = w->next;
	}
	if (w->next != NULL) {
		w->next->prev = w->prev;
	} else {
		e->tail = w->prev;
	}
	w->next = w->prev = NULL;
	w->linked         = false;
}

// la_take_waiters moves every parked waiter into a's done list with result
// r (and a token reference on success).
static void
la_take_waiters(la_entry *e, la_actions *a, la_err r, la_token *tok,
    const char *error)
{
	la_cache_waiter *w;
	while ((w = e->head) != NULL) {
		la_waiter_unlink(e, w);
		w->result = r;
		w->token  = (r == LA_OK) ? la_token_hold(tok) : NULL;
		snprintf(w->error, sizeof(w->error), "%s",
		    r == LA_OK ? "" : error);
		w->next = a->done;
		a->done = w;
	}
}

static la_cache_event *
la_add_event(la_entry *e, la_actions *a, la_cache_event_type type, int64_t now)
{
	la_cache_event *ev = &a->ev[a->nev++];
	memset(ev, 0, sizeof(*ev));
	ev->type    = type;
	ev->profile = e->cfg;
	ev->at_ms   = now;
	ev->error   = a->error;
	return (ev);
}

// la_begin_attempt moves e to ATTEMPTING and asks for the attempt to start.
static void
la_begin_attempt(la_entry *e, la_actions *a)
{
	e->state = ST_ATTEMPTING;
	e->round_attempts++;
	e->upstream_calls++;
	a->start   = true;
	a->attempt = e->round_attempts;
}

static void
la_begin_round(la_entry *e, la_actions *a, bool foreground)
{
	e->foreground     = foreground;
	e->round_attempts = 0;
	e->refresh_at_ms  = 0;
	la_begin_attempt(e, a);
}

static bool
la_token_valid(const la_entry *e, int64_t now)
{
	return (e->token != NULL && now < e->token->expires_at_ms);
}

static void
la_drop_token(la_entry *e)
{
	la_token_release(e->token);
	e->token         = NULL;
	e->refresh_at_ms = 0;
}

// la_fail_round ends a round that left no valid token: waiters get the
// error and subscribers learn that authentication failed.
static void
la_fail_round(la_entry *e, la_actions *a, la_err err, const char *error,
    int64_t now)
{
	snprintf(a->error, sizeof(a->error), "%s", error);
	la_take_waiters(e, a, err, NULL, a->error);
	la_cache_event *ev = la_add_event(e, a, LA_EV_AUTH_FAILED, now);
	ev->attempts       = e->outage_attempts;
	ev->err            = err;
	la_drop_token(e);
	e->state           = ST_IDLE;
	e->foreground      = false;
	e->round_attempts  = 0;
	e->outage_attempts = 0;
	e->degraded        = false;
	e->failed          = true;
	e->refreshes_failed++;
	la_log(LA_LOG_ERROR, "authentication failed", "{s:s, s:s, s:s, s:i}",
	    "profile", e->cfg->name, "code", la_strerror(err), "error", error,
	    "attempts", (int) ev->attempts);
}

static void la_attempt_failed_locked(la_entry *e, la_actions *a, la_err err,
    const char *error, int64_t now);

// la_run performs what was decided under the lock. Starting an attempt can
// fail at once (queue closed); that failure is fed back into the state
// machine, which may decide to start the next attempt: hence the loop.
static void
la_run(la_entry *e, la_actions *a)
{
	la_cache *c = e->cache;

	for (;;) {
		la_cache_waiter *w;
		while ((w = a->done) != NULL) {
			a->done = w->next;
			w->next = NULL;
			nng_aio_finish(w->aio, 0);
		}
		for (int i = 0; i < a->nev; i++) {
			if (c->ops.event != NULL) {
				c->ops.event(c->ops.arg, &a->ev[i]);
			}
		}
		a->nev = 0;
		if (a->kick && atomic_load(&c->timer_on)) {
			atomic_store(&c->timer_kicked, true);
			nng_aio_cancel(c->timer);
		}
		a->kick = false;
		if (!a->start) {
			return;
		}
		a->start = false;
		la_err rv =
		    c->ops.start_attempt(c->ops.arg, e->idx, a->attempt);
		if (rv == LA_OK) {
			return;
		}
		pthread_mutex_lock(&e->mtx);
		if (e->state == ST_ATTEMPTING) {
			la_attempt_failed_locked(e, a, rv, la_strerror(rv),
			    la_now(c));
		}
		pthread_mutex_unlock(&e->mtx);
	}
}

static void
la_cancel_waiter(nng_aio *aio, void *arg, int rv)
{
	la_cache_waiter *w = arg;
	la_entry        *e = w->entry;

	pthread_mutex_lock(&e->mtx);
	if (!w->linked || w->aio != aio) {
		// Already taken by a refresh result; it finishes the aio.
		pthread_mutex_unlock(&e->mtx);
		return;
	}
	la_waiter_unlink(e, w);
	pthread_mutex_unlock(&e->mtx);
	w->result = (rv == NNG_ETIMEDOUT) ? LA_ERR_TIMEOUT : LA_ERR_SHUTDOWN;
	w->token  = NULL;
	snprintf(w->error, sizeof(w->error), "%s",
	    rv == NNG_ETIMEDOUT
	        ? "deadline exceeded waiting for a token refresh"
	        : "request cancelled");
	nng_aio_finish(aio, 0);
}

la_err
la_cache_get(la_cache *c, size_t profile, const la_cache_get_opts *o,
    la_cache_waiter *w)
{
	la_entry  *e = &c->entries[profile];
	la_actions a = {0};

	w->token    = NULL;
	w->result   = LA_OK;
	w->error[0] = '\0';

	pthread_mutex_lock(&e->mtx);
	if (atomic_load(&c->stopped)) {
		pthread_mutex_unlock(&e->mtx);
		snprintf(w->error, sizeof(w->error),
		    "server is shutting down");
		return (w->result = LA_ERR_SHUTDOWN);
	}
	int64_t now = la_now(c);
	if (o->force_refresh && e->token != NULL &&
	    (o->if_generation == 0 ||
	        o->if_generation == e->token->generation)) {
		// "The token I have is bad": nobody gets it again.
		la_drop_token(e);
	}
	if (la_token_valid(e, now)) {
		// The fast path.
		w->token = la_token_hold(e->token);
		pthread_mutex_unlock(&e->mtx);
		return (LA_OK);
	}
	if (e->token != NULL) {
		la_drop_token(e); // expired
	}
	if (!nng_aio_begin(w->aio)) {
		pthread_mutex_unlock(&e->mtx);
		snprintf(w->error, sizeof(w->error),
		    "server is shutting down");
		return (w->result = LA_ERR_SHUTDOWN);
	}
	// Park before deciding on a refresh, so an attempt that fails
	// synchronously in la_run still finds this waiter.
	w->entry  = e;
	w->linked = true;
	w->next   = NULL;
	w->prev   = e->tail;
	if (e->tail != NULL) {
		e->tail->next = w;
	} else {
		e->head = w;
	}
	e->tail = w;
	nng_aio_defer(w->aio, la_cancel_waiter, w);

	switch (e->state) {
	case ST_IDLE:
		la_begin_round(e, &a, true);
		break;
	case ST_RETRY_WAIT:
		if (!e->foreground) {
			// A background round between attempts (perhaps on a
			// long backoff): a caller now needs a token, so give
			// it a fresh round at once.
			la_begin_round(e, &a, true);
		}
		break;
	case ST_ATTEMPTING:
		if (!e->foreground) {
			// Join the background attempt in flight, counted as
			// the first of a full round: a caller is owed
			// max_retry_count retries, whatever the background
			// had already spent.
			e->foreground     = true;
			e->round_attempts = 1;
		}
		break;
	}
	pthread_mutex_unlock(&e->mtx);
	la_run(e, &a);
	return (LA_ERR_PENDING);
}

static void
la_attempt_failed_locked(la_entry *e, la_actions *a, la_err err,
    const char *error, int64_t now)
{
	la_cache             *c = e->cache;
	const la_profile_cfg *p = e->cfg;

	e->outage_attempts++;
	e->last_err = err;
	snprintf(e->last_error, sizeof(e->last_error), "%s", error);
	la_log(LA_LOG_WARN, "token refresh attempt failed",
	    "{s:s, s:i, s:i, s:s, s:s}", "profile", p->name, "attempt",
	    (int) e->round_attempts, "of", (int) p->max_retry_count + 1,
	    "code", la_strerror(err), "error", error);

	if (err == LA_ERR_SHUTDOWN || atomic_load(&c->stopped)) {
		// Stopping: answer now rather than retry.
		snprintf(a->error, sizeof(a->error),
		    "server is shutting down");
		la_take_waiters(e, a, LA_ERR_SHUTDOWN, NULL, a->error);
		e->state = ST_IDLE;
		return;
	}
	if (e->round_attempts < p->max_retry_count + 1) {
		// Foreground waits follow this round; background ones keep
		// growing across the whole outage.
		uint32_t n =
		    e->foreground ? e->round_attempts : e->outage_attempts;
		e->state           = ST_RETRY_WAIT;
		e->next_attempt_ms = now + la_retry_delay(c, p, n);
		a->kick            = true;
		return;
	}
	if (la_token_valid(e, now)) {
		// Background round exhausted while the token still works:
		// keep serving it, keep trying.
		if (!e->degraded) {
			e->degraded = true;
			snprintf(a->error, sizeof(a->error), "%s", error);
			la_cache_event *ev =
			    la_add_event(e, a, LA_EV_AUTH_DEGRADED, now);
			ev->attempts      = e->outage_attempts;
			ev->err           = err;
			ev->expires_at_ms = e->token->expires_at_ms;
			la_log(LA_LOG_WARN, "authentication degraded",
			    "{s:s, s:s, s:i, s:I}", "profile", p->name,
			    "error", error, "attempts",
			    (int) e->outage_attempts,
			    "token_valid_until_unix_ms",
			    (json_int_t) e->token->expires_at_ms);
		}
		e->round_attempts = 0;
		e->state          = ST_RETRY_WAIT;
		e->next_attempt_ms =
		    now + la_retry_delay(c, p, e->outage_attempts);
		a->kick = true;
		return;
	}
	la_fail_round(e, a, err, error, now);
	a->kick = true;
}

void
la_cache_attempt_done(la_cache *c, size_t profile, la_err result,
    la_lean_reply *reply, const char *error)
{
	la_entry  *e   = &c->entries[profile];
	la_actions a   = {0};
	la_token  *tok = NULL;

	pthread_mutex_lock(&e->mtx);
	int64_t now = la_now(c);
	if (e->state != ST_ATTEMPTING) {
		pthread_mutex_unlock(&e->mtx); // stopped meanwhile
		la_lean_reply_clear(reply);
		return;
	}
	if (result == LA_OK) {
		int64_t exp = now + la_config_usable_lifetime_ms(e->cfg);
		tok = la_token_new(reply->type, reply->access_token, exp,
		    e->generation + 1);
		if (tok == NULL) {
			result = LA_ERR_NOMEM;
			error  = "out of memory";
		}
	}
	la_lean_reply_clear(reply);
	if (result != LA_OK) {
		la_attempt_failed_locked(e, &a, result,
		    error != NULL ? error : la_strerror(result), now);
		pthread_mutex_unlock(&e->mtx);
		la_run(e, &a);
		return;
	}

	bool was_degraded = e->degraded;
	la_drop_token(e);
	e->token           = tok;
	e->generation      = tok->generation;
	e->state           = ST_IDLE;
	e->foreground      = false;
	e->round_attempts  = 0;
	e->outage_attempts = 0;
	e->degraded        = false;
	e->failed          = false;
	e->refresh_at_ms   = la_refresh_at(c, e->cfg, tok->expires_at_ms);
	e->refreshes_ok++;
	la_take_waiters(e, &a, LA_OK, tok, "");
	if (was_degraded) {
		la_add_event(e, &a, LA_EV_AUTH_RECOVERED, now);
	}
	la_cache_event *ev = la_add_event(e, &a, LA_EV_TOKEN_REFRESHED, now);
	ev->token_type     = tok->type;
	ev->expires_at_ms  = tok->expires_at_ms;
	ev->generation     = tok->generation;
	a.kick             = true;
	la_log(LA_LOG_INFO, "token refreshed", "{s:s, s:I, s:I, s:I}",
	    "profile", e->cfg->name, "generation",
	    (json_int_t) tok->generation, "expires_at_unix_ms",
	    (json_int_t) tok->expires_at_ms, "refresh_at_unix_ms",
	    (json_int_t) e->refresh_at_ms);
	pthread_mutex_unlock(&e->mtx);
	la_run(e, &a);
}

static int64_t
la_min_due(int64_t cur, int64_t due, int64_t now)
{
	int64_t in = due > now ? due - now : 0;
	return (cur < 0 || in < cur ? in : cur);
}

int64_t
la_cache_poll(la_cache *c)
{
	int64_t next = -1;

	for (size_t i = 0; i < c->n; i++) {
		la_entry  *e = &c->entries[i];
		la_actions a = {0};

		pthread_mutex_lock(&e->mtx);
		if (atomic_load(&c->stopped)) {
			pthread_mutex_unlock(&e->mtx);
			return (-1);
		}
		int64_t now = la_now(c);
		if (e->degraded && !e->foreground &&
		    e->state != ST_ATTEMPTING && !la_token_valid(e, now)) {
			// Retries were exhausted long ago and now the token
			// is gone too: a caller can no longer be given one.
			la_fail_round(e, &a, e->last_err, e->last_error, now);
		}
		switch (e->state) {
		case ST_IDLE:
			if (e->token != NULL && e->refresh_at_ms != 0) {
				if (now >= e->refresh_at_ms) {
					la_begin_round(e, &a, false);
				} else {
					next = la_min_due(next,
					    e->refresh_at_ms, now);
				}
			}
			break;
		case ST_RETRY_WAIT:
			if (now >= e->next_attempt_ms) {
				la_begin_attempt(e, &a);
			} else {
				next =
				    la_min_due(next, e->next_attempt_ms, now);
			}
			break;
		case ST_ATTEMPTING:
			break;
		}
		if (e->degraded && e->token != NULL) {
			next = la_min_due(next, e->token->expires_at_ms, now);
		}
		pthread_mutex_unlock(&e->mtx);
		la_run(e, &a);
	}
	return (next);
}

// The timer re-polls when the earliest due time arrives. A kick (something
// became due sooner) cancels the sleep; the flag covers a kick that lands
// while the callback itself is running, when there is no sleep to cancel.
static void
la_timer_cb(void *arg)
{
	la_cache *c = arg;

	if (atomic_load(&c->stopped)) {
		return;
	}
	atomic_store(&c->timer_kicked, false);
	int64_t next = la_cache_poll(c);
	if (next < 0 || next > 60000) {
		next = 60000;
	}
	nng_sleep_aio((nng_duration) next, c->timer);
	if (atomic_load(&c->timer_kicked)) {
		nng_aio_cancel(c->timer);
	}
}

la_err
la_cache_create(la_cache **out, const la_config *cfg, const la_cache_ops *ops)
{
	la_cache *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return (LA_ERR_NOMEM);
	}
	c->cfg = cfg;
	c->ops = *ops;
	c->n   = cfg->n_profiles;
	atomic_init(&c->stopped, false);
	atomic_init(&c->timer_kicked, false);
	atomic_init(&c->timer_on, false);
	if ((c->entries = calloc(c->n, sizeof(la_entry))) == NULL) {
		free(c);
		return (LA_ERR_NOMEM);
	}
	for (size_t i = 0; i < c->n; i++) {
		la_entry *e = &c->entries[i];
		pthread_mutex_init(&e->mtx, NULL);
		e->cache = c;
		e->idx   = i;
		e->cfg   = &cfg->profiles[i];
	}
	*out = c;
	return (LA_OK);
}

la_err
la_cache_start(la_cache *c)
{
	int rv;
	if ((rv = nng_aio_alloc(&c->timer, la_timer_cb, c)) != 0) {
		return (la_err_from_nng(rv));
	}
	atomic_store(&c->timer_on, true);
	nng_sleep_aio(0, c->timer);
	return (LA_OK);
}

void
la_cache_stop(la_cache *c)
{
	if (c == NULL) {
		return;
	}
	atomic_store(&c->stopped, true);
	if (c->timer != NULL) {
		nng_aio_stop(c->timer); // waits for a running callback
	}
	for (size_t i = 0; i < c->n; i++) {
		la_entry  *e = &c->entries[i];
		la_actions a = {0};
		pthread_mutex_lock(&e->mtx);
		la_take_waiters(e, &a, LA_ERR_SHUTDOWN, NULL,
		    "server is shutting down");
		e->state = ST_IDLE; // late attempt results are discarded
		pthread_mutex_unlock(&e->mtx);
		la_run(e, &a);
	}
}

void
la_cache_destroy(la_cache *c)
{
	if (c == NULL) {
		return;
	}
	if (c->timer != NULL) {
		nng_aio_free(c->timer);
	}
	for (size_t i = 0; i < c->n; i++) {
		la_drop_token(&c->entries[i]);
		pthread_mutex_destroy(&c->entries[i].mtx);
	}
	free(c->entries);
	free(c);
}

void
la_cache_status_get(la_cache *c, size_t profile, la_cache_status *st)
{
	la_entry *e = &c->entries[profile];

	pthread_mutex_lock(&e->mtx);
	int64_t now          = la_now(c);
	st->has_token        = la_token_valid(e, now);
	st->refreshing       = e->state != ST_IDLE;
	st->degraded         = e->degraded;
	st->failed           = e->failed;
	st->generation       = e->generation;
	st->expires_at_ms    = e->token != NULL ? e->token->expires_at_ms : 0;
	st->upstream_calls   = e->upstream_calls;
	st->refreshes_ok     = e->refreshes_ok;
	st->refreshes_failed = e->refreshes_failed;
	pthread_mutex_unlock(&e->mtx);
}
