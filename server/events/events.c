// events.c -- encode cache events as leanauth.v1 messages and publish them,
// and keep count of the subscribers connected right now.
#include "events.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <nng/protocol/pubsub0/pub.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "leanauth/v1/events.pb-c.h"
#include "ops/tls.h"

// PUB's per-subscriber queue (nng's default is 16 messages). A burst of
// events -- every profile failing at once -- must not overflow it for a
// subscriber that is merely a little behind.
#define LA_EVENTS_SENDBUF 1024

struct la_events {
	const la_config     *cfg;
	nng_socket           sock;
	bool                 open;
	nng_listener         listener;
	char                 url[256];
	atomic_uint_fast64_t published[4];

	// Pipes that reached NNG_PIPE_EV_ADD_POST: PUB sends to each of them
	// from then on. A set, not a counter, because nng also reports
	// REM_POST for pipes that never got that far (a REQ socket dialing
	// the events port, say).
	nng_mtx  *mtx;
	uint32_t *pipes;
	size_t    npipes;
	size_t    cap;
};

la_err
la_events_create(la_events **out, const la_config *cfg)
{
	la_events *ev = calloc(1, sizeof(*ev));
	if (ev == NULL) {
		return (LA_ERR_NOMEM);
	}
	if (nng_mtx_alloc(&ev->mtx) != 0) {
		free(ev);
		return (LA_ERR_NOMEM);
	}
	ev->cfg = cfg;
	*out    = ev;
	return (LA_OK);
}

// la_pipe_cb tracks subscribers. It runs on nng's threads and only takes
// ev->mtx, which nothing holds while calling into nng.
static void
la_pipe_cb(nng_pipe p, nng_pipe_ev what, void *arg)
{
	la_events *ev = arg;
	uint32_t   id = (uint32_t) nng_pipe_id(p);
	size_t     n;

	nng_mtx_lock(ev->mtx);
	if (what == NNG_PIPE_EV_ADD_POST) {
		if (ev->npipes == ev->cap) {
			size_t    cap = ev->cap == 0 ? 8 : ev->cap * 2;
			uint32_t *np  = realloc(ev->pipes, cap * sizeof(*np));
			if (np == NULL) {
				// Served all the same; only the gauge misses it.
				nng_mtx_unlock(ev->mtx);
				return;
			}
			ev->pipes = np;
			ev->cap   = cap;
		}
		ev->pipes[ev->npipes++] = id;
	} else {
		for (size_t i = 0; i < ev->npipes; i++) {
			if (ev->pipes[i] == id) {
				ev->pipes[i] = ev->pipes[--ev->npipes];
				break;
			}
		}
	}
	n = ev->npipes;
	nng_mtx_unlock(ev->mtx);
	la_log(LA_LOG_DEBUG,
	    what == NNG_PIPE_EV_ADD_POST ? "events subscriber connected"
	                                 : "events subscriber gone",
	    "{s:i}", "subscribers", (int) n);
}

la_err
la_events_start(la_events *ev, char *err, size_t errlen)
{
	int rv;

	if ((rv = nng_pub0_open(&ev->sock)) != 0) {
		snprintf(err, errlen, "nng_pub0_open: %s", nng_strerror(rv));
		return (la_err_from_nng(rv));
	}
	ev->open = true;
	if ((rv = nng_socket_set_int(ev->sock, NNG_OPT_SENDBUF,
	         LA_EVENTS_SENDBUF)) != 0) {
		// Still usable with nng's default queue.
		la_log(LA_LOG_WARN, "events: cannot enlarge the send queue",
		    "{s:s}", "error", nng_strerror(rv));
	}
	if ((rv = nng_pipe_notify(ev->sock, NNG_PIPE_EV_ADD_POST, la_pipe_cb,
	         ev)) != 0 ||
	    (rv = nng_pipe_notify(ev->sock, NNG_PIPE_EV_REM_POST, la_pipe_cb,
	         ev)) != 0) {
		snprintf(err, errlen, "events: %s", nng_strerror(rv));
		return (la_err_from_nng(rv));
	}
	if ((rv = nng_listener_create(&ev->listener, ev->sock,
	         ev->cfg->listen_events)) != 0) {
		snprintf(err, errlen, "listen.events: %s (%s)",
		    nng_strerror(rv), ev->cfg->listen_events);
		return (la_err_from_nng(rv));
	}
	la_err lrv = la_tls_setup_listener(ev->listener, ev->cfg,
	    ev->cfg->listen_events, err, errlen);
	if (lrv != LA_OK) {
		return (lrv);
	}
	if ((rv = nng_listener_start(ev->listener, 0)) != 0) {
		snprintf(err, errlen, "listen.events: %s (%s)",
		    nng_strerror(rv), ev->cfg->listen_events);
		return (la_err_from_nng(rv));
	}
	char *url = NULL;
	if (nng_listener_get_string(ev->listener, NNG_OPT_URL, &url) == 0) {
		snprintf(ev->url, sizeof(ev->url), "%s", url);
		nng_strfree(url);
	} else {
		snprintf(ev->url, sizeof(ev->url), "%s",
		    ev->cfg->listen_events);
	}
	return (LA_OK);
}

const char *
la_events_url(const la_events *ev)
{
	return (ev->url);
}

// la_send_event frames msg as topic NUL payload and sends it.
static void
la_send_event(la_events *ev, const ProtobufCMessage *m, la_cache_event_type t)
{
	const char *topic = m->descriptor->name;
	size_t      tlen  = strlen(topic) + 1;
	size_t      plen  = protobuf_c_message_get_packed_size(m);
	nng_msg    *msg;

	if (nng_msg_alloc(&msg, tlen + plen) != 0) {
		la_log(LA_LOG_ERROR, "event dropped: out of memory", "{s:s}",
		    "topic", topic);
		return;
	}
	uint8_t *body = nng_msg_body(msg);
	memcpy(body, topic, tlen);
	protobuf_c_message_pack(m, body + tlen);
	if (nng_sendmsg(ev->sock, msg, NNG_FLAG_NONBLOCK) != 0) {
		nng_msg_free(msg);
		return;
	}
	atomic_fetch_add(&ev->published[t], 1);
}

void
la_events_publish(la_events *ev, const la_cache_event *e)
{
	if (ev == NULL || !ev->open) {
		return;
	}
	char *profile = e->profile->name;
	char *error   = (char *) (e->error != NULL ? e->error : "");

	switch (e->type) {
	case LA_EV_TOKEN_REFRESHED: {
		Leanauth__V1__TokenRefreshed m =
		    LEANAUTH__V1__TOKEN_REFRESHED__INIT;
		m.profile            = profile;
		m.token_type         = (Leanauth__V1__TokenType) e->token_type;
		m.expires_at_unix_ms = e->expires_at_ms;
		m.at_unix_ms         = e->at_ms;
		m.generation         = e->generation;
		la_send_event(ev, &m.base, e->type);
		break;
	}
	case LA_EV_AUTH_FAILED: {
		Leanauth__V1__AuthenticationFailed m =
		    LEANAUTH__V1__AUTHENTICATION_FAILED__INIT;
		m.profile    = profile;
		m.brokerage  = e->profile->brokerage;
		m.account_id = e->profile->account_id;
		m.error      = error;
		m.attempts   = e->attempts;
		m.at_unix_ms = e->at_ms;
		la_send_event(ev, &m.base, e->type);
		break;
	}
	case LA_EV_AUTH_DEGRADED: {
		Leanauth__V1__AuthenticationDegraded m =
		    LEANAUTH__V1__AUTHENTICATION_DEGRADED__INIT;
		m.profile                   = profile;
		m.error                     = error;
		m.attempts                  = e->attempts;
		m.token_valid_until_unix_ms = e->expires_at_ms;
		m.at_unix_ms                = e->at_ms;
		la_send_event(ev, &m.base, e->type);
		break;
	}
	case LA_EV_AUTH_RECOVERED: {
		Leanauth__V1__AuthenticationRecovered m =
		    LEANAUTH__V1__AUTHENTICATION_RECOVERED__INIT;
		m.profile    = profile;
		m.at_unix_ms = e->at_ms;
		la_send_event(ev, &m.base, e->type);
		break;
	}
	}
}

void
la_events_stop(la_events *ev, int linger_ms)
{
	if (ev == NULL || !ev->open) {
		return;
	}
	// PUB has no flush: give queued messages a moment to reach the wire
	// (nobody to wait for without subscribers).
	if (linger_ms > 0 && la_events_subscribers(ev) > 0) {
		nng_msleep((nng_duration) linger_ms);
	}
	nng_close(ev->sock);
	ev->open = false;
}

size_t
la_events_subscribers(la_events *ev)
{
	if (ev == NULL) {
		return (0);
	}
	nng_mtx_lock(ev->mtx);
	size_t n = ev->npipes;
	nng_mtx_unlock(ev->mtx);
	return (n);
}

void
la_events_destroy(la_events *ev)
{
	if (ev == NULL) {
		return;
	}
	la_events_stop(ev, 0);
	free(ev->pipes);
	nng_mtx_free(ev->mtx);
	free(ev);
}

void
la_events_stats_get(la_events *ev, la_events_stats *st)
{
	for (int i = 0; i < 4; i++) {
		st->published[i] = atomic_load(&ev->published[i]);
	}
}
