// cache.h -- the token cache: one entry per profile holding the current
// access token, and the refresh state machine around it (single flight,
// retries with backoff, refresh ahead of expiry, stale-while-refreshing).
//
// Callers that find a fresh token get it at once (one short critical
// section, no allocation). Callers that must wait are parked nng aios: no
// thread is held while they wait, and each honours its own deadline through
// the aio's timeout. Upstream attempts are started through ops->start_attempt
// (in leanauthd: a job on the worker pool calling the Lean API) and reported
// back with la_cache_attempt_done. Time comes from ops->now_ms so the whole
// state machine runs under an injected clock in tests.
#ifndef LA_CACHE_H
#define LA_CACHE_H

#include <nng/nng.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "config/config.h"
#include "lean/lean.h"

// An issued token: immutable and reference counted, so handing it to a
// caller is a reference, not a copy. The last release wipes it.
typedef struct la_token {
	atomic_uint   refs;
	la_token_type type;
	int64_t       expires_at_ms; // unix ms
	uint64_t      generation;
	size_t        len;
	char          access_token[]; // NUL-terminated, secret
} la_token;

la_token *la_token_hold(la_token *t);
void      la_token_release(la_token *t); // NULL-safe

// Events the cache reports (DESIGN.md, events). Passed to ops->event with no
// cache lock held; every pointer is borrowed for the call only. No secret.
typedef enum la_cache_event_type {
	LA_EV_TOKEN_REFRESHED,
	LA_EV_AUTH_FAILED,
	LA_EV_AUTH_DEGRADED,
	LA_EV_AUTH_RECOVERED,
} la_cache_event_type;

typedef struct la_cache_event {
	la_cache_event_type   type;
	const la_profile_cfg *profile;
	int64_t               at_ms;
	la_token_type         token_type; // REFRESHED
	int64_t     expires_at_ms;        // REFRESHED; DEGRADED: valid until
	uint64_t    generation;           // REFRESHED
	uint32_t    attempts;             // FAILED, DEGRADED: upstream calls
	la_err      err;                  // FAILED, DEGRADED
	const char *error;                // FAILED, DEGRADED: upstream text
} la_cache_event;

typedef struct la_cache_ops {
	// Start upstream attempt number `attempt` (1-based within a refresh
	// round) for profile index `profile`. Must not block. On LA_OK the
	// callee calls la_cache_attempt_done exactly once, later, from any
	// thread; on an error it never does and the cache counts the attempt
	// as failed with that error.
	la_err (*start_attempt)(void *arg, size_t profile, uint32_t attempt);
	// Wall-clock time, unix ms.
	int64_t (*now_ms)(void *arg);
	// A uniform random number in [0, 1), for jitter. NULL: no jitter.
	double (*rand01)(void *arg);
	// Event hook (NULL: none). Called without cache locks held.
	void (*event)(void *arg, const la_cache_event *ev);
	void *arg;
} la_cache_ops;

typedef struct la_cache la_cache;

// A caller's wait: embedded in the caller's own per-request state. Set aio
// (with its timeout already set to the caller's remaining deadline, at least
// 1 ms) before la_cache_get. When the aio completes (always with result 0),
// result/token/error say what happened.
typedef struct la_cache_waiter {
	nng_aio  *aio;
	la_err    result;
	la_token *token;      // on LA_OK: a reference the caller releases
	char      error[256]; // on failure: detail, never a secret
	// private
	struct la_cache_waiter *next;
	struct la_cache_waiter *prev;
	void                   *entry;
	bool                    linked;
} la_cache_waiter;

typedef struct la_cache_get_opts {
	bool     force_refresh;
	uint64_t if_generation; // 0: unconditional
} la_cache_get_opts;

// la_cache_create borrows cfg and copies ops.
la_err la_cache_create(la_cache **out, const la_config *cfg,
    const la_cache_ops *ops);

// la_cache_start arms the cache's own timer (refresh ahead, retry waits,
// expiry while degraded). Tests that drive time by hand skip it and call
// la_cache_poll instead.
la_err la_cache_start(la_cache *c);

// la_cache_stop answers every waiter with LA_ERR_SHUTDOWN, cancels retry
// waits and the timer, and makes later calls fail with LA_ERR_SHUTDOWN.
// Attempts still running may report afterwards; they are discarded.
void la_cache_stop(la_cache *c);

// la_cache_destroy frees c after la_cache_stop. NULL-safe.
void la_cache_destroy(la_cache *c);

// la_cache_get asks for profile's token. Returns
//   LA_OK          w->token holds a fresh token (no wait, no aio use);
//   LA_ERR_PENDING the aio is parked and completes when a refresh ends, the
//                  aio's timeout fires (w->result LA_ERR_TIMEOUT), or the
//                  cache stops (LA_ERR_SHUTDOWN);
//   other          failure, with w->error filled.
// Never blocks. Safe from nng callbacks and any thread.
la_err la_cache_get(la_cache *c, size_t profile, const la_cache_get_opts *o,
    la_cache_waiter *w);

// la_cache_attempt_done reports attempt's outcome for profile. On LA_OK it
// takes ownership of reply->access_token. error is upstream's text (never a
// secret). Safe from any thread; never blocks on I/O.
void la_cache_attempt_done(la_cache *c, size_t profile, la_err result,
    la_lean_reply *reply, const char *error);

// la_cache_poll starts whatever is due at ops->now_ms(): background refreshes,
// retries after their wait, Failed once a degraded token expires. Returns the
// ms until the next thing is due, or -1 if nothing is scheduled.
int64_t la_cache_poll(la_cache *c);

// Per-profile state, for health checks and metrics.
typedef struct la_cache_status {
	bool     has_token;  // a token valid now
	bool     refreshing; // a refresh round is running or waiting to retry
	bool     degraded;   // background refresh failing, token still valid
	bool     failed;     // the last round exhausted its retries
	uint64_t generation;
	int64_t  expires_at_ms;
	uint64_t upstream_calls; // attempts started since creation
	uint64_t refreshes_ok;
	uint64_t refreshes_failed; // rounds that ended without a token
} la_cache_status;

void la_cache_status_get(la_cache *c, size_t profile, la_cache_status *st);

#endif // LA_CACHE_H
