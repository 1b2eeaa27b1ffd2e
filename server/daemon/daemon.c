// daemon.c -- module wiring and the shutdown order.
//
// Shutdown order (each step relies on the ones before it):
//   1. /readyz turns 503 so Kubernetes stops routing to us. The RPC listener
//      stays open: closing an nng listener also closes the connections it
//      accepted, and replies still in flight would be lost with them.
//   2. stop the cache: parked callers get UNAVAILABLE, retry waits end, and
//      every later request is refused at once with UNAVAILABLE
//   3. stop the workers: abort flag ends transfers, queued jobs run (and
//      answer) quickly, threads join -- so every Send has its reply
//   4. drain RPC: wait (bounded) until every reply has been handed to nng
//   5. events: linger briefly so Failed/… reach subscribers, close PUB
//   6. close the REP socket and the HTTP server, free in reverse order
#include "daemon.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "common/log.h"
#include "events/events.h"
#include "lean/lean.h"
#include "ops/http.h"
#include "proxy/proxy.h"
#include "rpc/rpc.h"
#include "workers/workers.h"

// One refresh job per profile: single flight means at most one is queued or
// running at a time, so it can live here rather than be allocated.
typedef struct la_refresh_job {
	la_job     job;
	la_daemon *d;
	size_t     profile;
} la_refresh_job;

struct la_daemon {
	la_config      *cfg;
	la_workers     *workers;
	la_lean        *lean;
	la_cache       *cache;
	la_proxy       *proxy;
	la_events      *events;
	la_rpc         *rpc;
	la_http        *http;
	la_refresh_job *jobs;
	atomic_bool     ready;
	bool            started;
	bool            down;
};

static int64_t
la_wall_ms(void *arg)
{
	(void) arg;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static double
la_random01(void *arg)
{
	(void) arg;
	return ((double) arc4random() / 4294967296.0);
}

static void
la_refresh_run(la_worker *w, void *arg)
{
	la_refresh_job *j        = arg;
	la_daemon      *d        = j->d;
	la_lean_reply   reply    = {0};
	char            err[256] = "";

	la_err rv = la_lean_fetch(d->lean, la_worker_curl(w),
	    &d->cfg->profiles[j->profile], la_worker_abort(w), &reply, err,
	    sizeof(err));
	la_cache_attempt_done(d->cache, j->profile, rv, &reply, err);
}

static la_err
la_start_attempt(void *arg, size_t profile, uint32_t attempt)
{
	(void) attempt;
	la_daemon      *d = arg;
	la_refresh_job *j = &d->jobs[profile];
	j->job.fn         = la_refresh_run;
	j->job.arg        = j;
	return (la_workers_submit(d->workers, &j->job, true));
}

static void
la_daemon_event(void *arg, const la_cache_event *e)
{
	la_events_publish(((la_daemon *) arg)->events, e);
}

static bool
la_ready(void *arg)
{
	return (atomic_load(&((la_daemon *) arg)->ready));
}

// la_metrics renders Prometheus text. Profile names are the only labels;
// nothing secret is a label or a value.
static char *
la_metrics(void *arg)
{
	la_daemon *d   = arg;
	char      *buf = NULL;
	size_t     len = 0;
	FILE      *f   = open_memstream(&buf, &len);
	if (f == NULL) {
		return (NULL);
	}
	la_rpc_stats rs;
	la_rpc_stats_get(d->rpc, &rs);
	fprintf(f,
	    "# TYPE leanauth_rpc_requests_total counter\n"
	    "leanauth_rpc_requests_total %llu\n",
	    (unsigned long long) rs.requests);
	fprintf(f, "# TYPE leanauth_rpc_responses_total counter\n");
	for (int i = 0; i < 17; i++) {
		if (rs.by_status[i] != 0) {
			fprintf(f,
			    "leanauth_rpc_responses_total{code=\"%d\"} %llu\n",
			    i, (unsigned long long) rs.by_status[i]);
		}
	}
	fprintf(f,
	    "# TYPE leanauth_rpc_inflight gauge\nleanauth_rpc_inflight %llu\n",
	    (unsigned long long) rs.inflight);
	fprintf(f,
	    "# TYPE leanauth_worker_queue_depth gauge\n"
	    "leanauth_worker_queue_depth %zu\n",
	    la_workers_queued(d->workers));
	fprintf(f,
	    "# TYPE leanauth_token_valid gauge\n"
	    "# TYPE leanauth_token_degraded gauge\n"
	    "# TYPE leanauth_token_generation gauge\n"
	    "# TYPE leanauth_token_expires_at_seconds gauge\n"
	    "# TYPE leanauth_upstream_calls_total counter\n"
	    "# TYPE leanauth_refresh_failures_total counter\n");
	for (size_t i = 0; i < d->cfg->n_profiles; i++) {
		la_cache_status st;
		const char     *p = d->cfg->profiles[i].name;
		la_cache_status_get(d->cache, i, &st);
		fprintf(f,
		    "leanauth_token_valid{profile=\"%s\"} %d\n"
		    "leanauth_token_degraded{profile=\"%s\"} %d\n"
		    "leanauth_token_generation{profile=\"%s\"} %llu\n"
		    "leanauth_token_expires_at_seconds{profile=\"%s\"} %.3f\n"
		    "leanauth_upstream_calls_total{profile=\"%s\"} %llu\n"
		    "leanauth_refresh_failures_total{profile=\"%s\"} %llu\n",
		    p, st.has_token, p, st.degraded, p,
		    (unsigned long long) st.generation, p,
		    (double) st.expires_at_ms / 1000.0, p,
		    (unsigned long long) st.upstream_calls, p,
		    (unsigned long long) st.refreshes_failed);
	}
	la_proxy_stats ps;
	la_proxy_stats_get(d->proxy, &ps);
	fprintf(f,
	    "# TYPE leanauth_send_calls_total counter\n"
	    "leanauth_send_calls_total %llu\n"
	    "# TYPE leanauth_send_connections_total counter\n"
	    "leanauth_send_connections_total %llu\n"
	    "# TYPE leanauth_send_denied_total counter\n"
	    "leanauth_send_denied_total %llu\n",
	    (unsigned long long) ps.calls, (unsigned long long) ps.connections,
	    (unsigned long long) ps.denied);
	la_events_stats es;
	la_events_stats_get(d->events, &es);
	static const char *const names[] = {"TokenRefreshed",
	    "AuthenticationFailed", "AuthenticationDegraded",
	    "AuthenticationRecovered"};
	fprintf(f, "# TYPE leanauth_events_published_total counter\n");
	for (int i = 0; i < 4; i++) {
		fprintf(f,
		    "leanauth_events_published_total{event=\"%s\"} %llu\n",
		    names[i], (unsigned long long) es.published[i]);
	}
	fprintf(f,
	    "# TYPE leanauth_events_subscribers gauge\n"
	    "leanauth_events_subscribers %zu\n",
	    la_events_subscribers(d->events));
	fclose(f);
	return (buf);
}

la_err
la_daemon_create(la_daemon **out, la_config *cfg, char *err, size_t errlen)
{
	la_daemon *d;
	la_err     rv;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		la_config_destroy(cfg);
		snprintf(err, errlen, "out of memory");
		return (LA_ERR_NOMEM);
	}
	d->cfg = cfg;
	atomic_init(&d->ready, false);
	if ((d->jobs = calloc(cfg->n_profiles, sizeof(la_refresh_job))) ==
	    NULL) {
		rv = LA_ERR_NOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		d->jobs[i].d       = d;
		d->jobs[i].profile = i;
	}
	if ((rv = la_workers_create(&d->workers, cfg->workers,
	         cfg->queue_size)) != LA_OK ||
	    (rv = la_lean_create(&d->lean, cfg)) != LA_OK ||
	    (rv = la_events_create(&d->events, cfg)) != LA_OK) {
		goto fail;
	}
	la_cache_ops ops = {
	    .start_attempt = la_start_attempt,
	    .now_ms        = la_wall_ms,
	    .rand01        = la_random01,
	    .event         = la_daemon_event,
	    .arg           = d,
	};
	if ((rv = la_cache_create(&d->cache, cfg, &ops)) != LA_OK ||
	    (rv = la_proxy_create(&d->proxy, cfg, d->workers, err, errlen)) !=
	        LA_OK ||
	    (rv = la_rpc_create(&d->rpc, cfg, d->cache, d->proxy)) != LA_OK) {
		goto fail;
	}
	*out = d;
	return (LA_OK);

fail:
	if (err[0] == '\0') {
		snprintf(err, errlen, "%s", la_strerror(rv));
	}
	la_daemon_destroy(d);
	return (rv);
}

la_err
la_daemon_start(la_daemon *d, char *err, size_t errlen)
{
	la_err rv;

	d->started = true;
	if ((rv = la_workers_start(d->workers)) != LA_OK) {
		snprintf(err, errlen, "cannot start %u worker threads",
		    d->cfg->workers);
		return (rv);
	}
	if ((rv = la_events_start(d->events, err, errlen)) != LA_OK ||
	    (rv = la_cache_start(d->cache)) != LA_OK ||
	    (rv = la_rpc_start(d->rpc, err, errlen)) != LA_OK) {
		return (rv);
	}
	if (d->cfg->listen_http[0] != '\0') {
		la_http_hooks hooks = {.ready = la_ready,
		    .metrics                  = la_metrics,
		    .arg                      = d};
		if ((rv = la_http_start(&d->http, d->cfg->listen_http, &hooks,
		         err, errlen)) != LA_OK) {
			return (rv);
		}
	}
	atomic_store(&d->ready, true);
	la_log(LA_LOG_INFO, "ready", "{s:s, s:s, s:s, s:s, s:i, s:i}",
	    "version", LEANAUTH_VERSION, "rpc", la_rpc_url(d->rpc), "events",
	    la_events_url(d->events), "http",
	    d->http != NULL ? la_http_addr(d->http) : "", "profiles",
	    (int) d->cfg->n_profiles, "workers", (int) d->cfg->workers);
	return (LA_OK);
}

const char *
la_daemon_rpc_url(const la_daemon *d)
{
	return (la_rpc_url(d->rpc));
}

const char *
la_daemon_events_url(const la_daemon *d)
{
	return (la_events_url(d->events));
}

void
la_daemon_shutdown(la_daemon *d)
{
	if (d == NULL || d->down) {
		return;
	}
	d->down = true;
	if (!d->started) {
		return;
	}
	nng_time t0 = nng_clock();
	atomic_store(&d->ready, false);
	la_cache_stop(d->cache);
	la_workers_stop(d->workers);
	int busy = la_rpc_drain(d->rpc, 2000);
	// Replies and events are queued in nng, not yet on the wire; nng has
	// no flush, so give them a short, bounded moment.
	la_events_stop(d->events, 100);
	la_rpc_stop(d->rpc);
	la_http_stop(d->http);
	d->http = NULL;
	la_log(LA_LOG_INFO, "stopped", "{s:I, s:i}", "elapsed_ms",
	    (json_int_t) (nng_clock() - t0), "unanswered", busy);
}

void
la_daemon_destroy(la_daemon *d)
{
	if (d == NULL) {
		return;
	}
	la_daemon_shutdown(d);
	la_rpc_destroy(d->rpc);
	la_proxy_destroy(d->proxy);
	la_cache_destroy(d->cache);
	la_events_destroy(d->events);
	la_lean_destroy(d->lean);
	la_workers_destroy(d->workers);
	free(d->jobs);
	la_config_destroy(d->cfg);
	free(d);
}
