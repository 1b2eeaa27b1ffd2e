// rpc.c -- REP contexts as aio state machines.
//
// Per context: RECV -> (handle) -> [WAIT_TOKEN | SEND_* ...] -> REPLY -> RECV.
// A context stops re-arming on NNG_ECLOSED/NNG_ECANCELED (socket closing),
// otherwise it would spin during shutdown. Every decoded or undecodable
// request gets exactly one RpcResponse.
#include "rpc.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <nng/protocol/reqrep0/rep.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "leanauth/v1/health.pb-c.h"
#include "leanauth/v1/rpc.pb-c.h"
#include "leanauth/v1/token.pb-c.h"
#include "ops/tls.h"
#include "proxy/proxy.h"

typedef enum {
	CTX_IDLE,
	CTX_RECV,
	CTX_WAIT_TOKEN,       // GetAccessToken parked in the cache
	CTX_SEND_TOKEN,       // Send waiting for its token
	CTX_SEND_HTTP,        // Send running on the worker pool
	CTX_SEND_RETRY_TOKEN, // Send saw 401: waiting for the refreshed token
	CTX_SEND_RETRY_HTTP,  // ... and the one retry
	CTX_REPLY,
} la_ctx_state;

typedef enum { M_NONE, M_TOKEN, M_SEND, M_HEALTH } la_method;

typedef struct la_rpc_ctx {
	la_rpc         *rpc;
	la_ctx_state    state;
	nng_aio        *aio;
	nng_ctx         ctx;
	la_method       method;
	size_t          profile;
	bool            has_profile; // profile resolved (for logging)
	nng_time        started;     // nng_clock(), monotonic ms
	nng_time        deadline;    // monotonic ms
	char            request_id[65];
	la_cache_waiter waiter;
	la_proxy_call  *call; // Send in progress (owned)
} la_rpc_ctx;

struct la_rpc {
	const la_config *cfg;
	la_cache        *cache;
	la_proxy        *proxy;
	nng_socket       sock;
	bool             sock_open;
	nng_listener     listener;
	la_rpc_ctx      *ctxs;
	size_t           nctx;
	size_t           max_request; // bigger requests: RESOURCE_EXHAUSTED
	char             url[256];

	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t by_status[17];
	atomic_int           busy; // contexts between receive and reply sent
};

static void la_rpc_cb(void *arg);

static void
la_rpc_recv(la_rpc_ctx *c)
{
	c->state = CTX_RECV;
	nng_aio_set_timeout(c->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(c->ctx, c->aio);
}

static int64_t
la_remaining(const la_rpc_ctx *c)
{
	nng_time now = nng_clock();
	return (c->deadline > now ? (int64_t) (c->deadline - now) : 0);
}

// la_reply sends status (and payload when OK) back to the caller. Takes
// nothing; payload is copied into the message.
static void
la_reply(la_rpc_ctx *c, la_err err, const char *message,
    const uint8_t *payload, size_t len)
{
	la_rpc                   *r      = c->rpc;
	Leanauth__V1__Status      status = LEANAUTH__V1__STATUS__INIT;
	Leanauth__V1__RpcResponse resp   = LEANAUTH__V1__RPC_RESPONSE__INIT;
	nng_msg                  *msg;
	int                       code = la_err_status(err);

	status.code    = code;
	status.message = (char *) (message != NULL ? message : "");
	resp.status    = &status;
	if (err == LA_OK && payload != NULL) {
		resp.payload.data = (uint8_t *) payload;
		resp.payload.len  = len;
	}
	atomic_fetch_add(&r->by_status[code < 17 ? code : 13], 1);

	la_log_level lvl    = err == LA_OK                       ? LA_LOG_DEBUG
	       : (err == LA_ERR_INTERNAL || err == LA_ERR_NOMEM) ? LA_LOG_ERROR
	                                                         : LA_LOG_INFO;
	const char  *method = c->method == M_TOKEN ? "GetAccessToken"
	     : c->method == M_SEND                 ? "Send"
	     : c->method == M_HEALTH               ? "Health/Check"
	                                           : "-";
	la_log(lvl, "rpc", "{s:s, s:s, s:i, s:s, s:I, s:s}", "method", method,
	    "profile", c->has_profile ? r->cfg->profiles[c->profile].name : "",
	    "code", code, "message", status.message, "elapsed_ms",
	    (json_int_t) (nng_clock() - c->started), "request_id",
	    c->request_id);

	size_t size = leanauth__v1__rpc_response__get_packed_size(&resp);
	if (nng_msg_alloc(&msg, size) != 0) {
		// Nothing to send with; drop this request and keep serving.
		atomic_fetch_sub(&r->busy, 1);
		la_rpc_recv(c);
		return;
	}
	leanauth__v1__rpc_response__pack(&resp, nng_msg_body(msg));
	c->state = CTX_REPLY;
	// A peer that stops reading must not hold this context forever.
	nng_aio_set_timeout(c->aio, 10000);
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
}

static void la_reply_err(la_rpc_ctx *c, la_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
la_reply_err(la_rpc_ctx *c, la_err err, const char *fmt, ...)
{
	char    buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	la_reply(c, err, buf, NULL, 0);
}

static void
la_reply_token(la_rpc_ctx *c, la_token *t)
{
	Leanauth__V1__GetAccessTokenResponse m =
	    LEANAUTH__V1__GET_ACCESS_TOKEN_RESPONSE__INIT;
	m.token_type         = (Leanauth__V1__TokenType) t->type;
	m.access_token       = t->access_token;
	m.expires_at_unix_ms = t->expires_at_ms;
	m.generation         = t->generation;

	uint8_t buf[1024];
	size_t  size =
	    leanauth__v1__get_access_token_response__get_packed_size(&m);
	uint8_t *p = size <= sizeof(buf) ? buf : malloc(size);
	if (p == NULL) {
		la_reply_err(c, LA_ERR_NOMEM, "out of memory");
		return;
	}
	leanauth__v1__get_access_token_response__pack(&m, p);
	la_reply(c, LA_OK, "", p, size);
	explicit_bzero(p, size); // it held the token
	if (p != buf) {
		free(p);
	}
}

// la_printable copies at most 64 bytes of untrusted s, replacing anything
// that is not printable ASCII, so it can be quoted in a message.
static void
la_printable(char *dst, size_t dstlen, const char *s)
{
	size_t i = 0;
	for (; s != NULL && s[i] != '\0' && i + 1 < dstlen && i < 64; i++) {
		unsigned char ch = (unsigned char) s[i];
		dst[i]           = (ch >= 0x20 && ch < 0x7f) ? (char) ch : '?';
	}
	dst[i] = '\0';
}

// la_resolve_profile maps a request's profile name to an index.
static bool
la_resolve_profile(la_rpc_ctx *c, const char *name)
{
	int idx = la_config_profile_index(c->rpc->cfg, name);
	if (idx < 0) {
		char shown[80];
		la_printable(shown, sizeof(shown), name);
		la_reply_err(c, LA_ERR_NOT_FOUND, "unknown profile \"%s\"",
		    shown);
		return (false);
	}
	c->profile     = (size_t) idx;
	c->has_profile = true;
	return (true);
}

// la_wait_token asks the cache; a fresh token means no wait at all.
static la_err
la_wait_token(la_rpc_ctx *c, bool force, uint64_t if_generation)
{
	int64_t rem = la_remaining(c);
	if (rem <= 0) {
		snprintf(c->waiter.error, sizeof(c->waiter.error),
		    "deadline exceeded");
		return (c->waiter.result = LA_ERR_TIMEOUT);
	}
	la_cache_get_opts o = {.force_refresh = force,
	    .if_generation                    = if_generation};
	c->waiter.aio       = c->aio;
	nng_aio_set_timeout(c->aio, (nng_duration) rem);
	return (la_cache_get(c->rpc->cache, c->profile, &o, &c->waiter));
}

static void
la_handle_token(la_rpc_ctx *c, const ProtobufCBinaryData *payload)
{
	Leanauth__V1__GetAccessTokenRequest *req;

	req = leanauth__v1__get_access_token_request__unpack(NULL,
	    payload->len, payload->data);
	if (req == NULL) {
		la_reply_err(c, LA_ERR_INVALID,
		    "malformed GetAccessTokenRequest");
		return;
	}
	if (!la_resolve_profile(c, req->profile)) {
		goto done;
	}
	// if_generation qualifies force_refresh only; alone it is a plain get.
	c->state  = CTX_WAIT_TOKEN;
	la_err rv = la_wait_token(c, req->force_refresh, req->if_generation);
	if (rv == LA_OK) {
		la_reply_token(c, c->waiter.token);
		la_token_release(c->waiter.token);
		c->waiter.token = NULL;
	} else if (rv != LA_ERR_PENDING) {
		la_reply_err(c, rv, "%s", c->waiter.error);
	}
done:
	leanauth__v1__get_access_token_request__free_unpacked(req, NULL);
}

static void
la_handle_health(la_rpc_ctx *c, const ProtobufCBinaryData *payload)
{
	Leanauth__V1__HealthCheckRequest *req;
	Leanauth__V1__HealthCheckResponse resp =
	    LEANAUTH__V1__HEALTH_CHECK_RESPONSE__INIT;

	req = leanauth__v1__health_check_request__unpack(NULL, payload->len,
	    payload->data);
	if (req == NULL) {
		la_reply_err(c, LA_ERR_INVALID,
		    "malformed HealthCheckRequest");
		return;
	}
	resp.status = LEANAUTH__V1__SERVING_STATUS__SERVING;
	if (req->profile[0] != '\0') {
		if (!la_resolve_profile(c, req->profile)) {
			goto done;
		}
		la_cache_status st;
		la_cache_status_get(c->rpc->cache, c->profile, &st);
		if (!st.has_token && st.failed) {
			resp.status =
			    LEANAUTH__V1__SERVING_STATUS__NOT_SERVING;
		}
	}
	uint8_t buf[16];
	size_t  n = leanauth__v1__health_check_response__pack(&resp, buf);
	la_reply(c, LA_OK, "", buf, n);
done:
	leanauth__v1__health_check_request__free_unpacked(req, NULL);
}

// ---- Send: token -> HTTP on a worker -> (401: refresh -> HTTP once more)

static void
la_send_http(la_rpc_ctx *c, la_token *tok, bool retry)
{
	c->state = retry ? CTX_SEND_RETRY_HTTP : CTX_SEND_HTTP;
	la_err rv =
	    la_proxy_start(c->rpc->proxy, c->call, tok, c->deadline, c->aio);
	la_token_release(tok);
	if (rv != LA_ERR_PENDING) {
		la_reply_err(c, rv, "%s", la_proxy_call_error(c->call));
		la_proxy_call_free(c->call);
		c->call = NULL;
	}
}

static void
la_send_token_ready(la_rpc_ctx *c, la_err rv, bool retry)
{
	if (rv == LA_OK) {
		la_token *tok   = c->waiter.token;
		c->waiter.token = NULL;
		la_send_http(c, tok, retry);
		return;
	}
	la_reply_err(c, rv, "%s", c->waiter.error);
	la_proxy_call_free(c->call);
	c->call = NULL;
}

static void
la_send_http_done(la_rpc_ctx *c)
{
	la_proxy_call *call = c->call;
	la_err         rv   = la_proxy_call_result(call);

	if (rv == LA_OK && c->state == CTX_SEND_HTTP &&
	    la_proxy_call_status(call) == 401) {
		// The brokerage refused the token: refresh once (shared with
		// every other caller that saw the same generation) and retry.
		uint64_t gen = la_proxy_call_generation(call);
		la_proxy_call_reset(call);
		c->state = CTX_SEND_RETRY_TOKEN;
		rv       = la_wait_token(c, true, gen);
		if (rv != LA_ERR_PENDING) {
			la_send_token_ready(c, rv, true);
		}
		return;
	}
	if (rv != LA_OK) {
		la_reply_err(c, rv, "%s", la_proxy_call_error(call));
	} else {
		uint8_t *buf;
		size_t   len;
		if (la_proxy_call_pack(call, &buf, &len) != LA_OK) {
			la_reply_err(c, LA_ERR_NOMEM, "out of memory");
		} else {
			la_reply(c, LA_OK, "", buf, len);
			free(buf);
		}
	}
	la_proxy_call_free(call);
	c->call = NULL;
}

static void
la_handle_send(la_rpc_ctx *c, const ProtobufCBinaryData *payload)
{
	Leanauth__V1__SendRequest *req;
	char                       err[256];

	if (c->rpc->proxy == NULL) {
		la_reply_err(c, LA_ERR_UNIMPLEMENTED, "Send is not enabled");
		return;
	}
	req = leanauth__v1__send_request__unpack(NULL, payload->len,
	    payload->data);
	if (req == NULL) {
		la_reply_err(c, LA_ERR_INVALID, "malformed SendRequest");
		return;
	}
	if (!la_resolve_profile(c, req->profile)) {
		leanauth__v1__send_request__free_unpacked(req, NULL);
		return;
	}
	if (req->timeout_ms != 0) {
		// The smaller of the envelope's and the Send's own deadline.
		nng_time d = c->started + req->timeout_ms;
		if (d < c->deadline) {
			c->deadline = d;
		}
	}
	// Validation (method, allowlist, sizes) happens here, before any
	// token is fetched: a refused URL never even costs a refresh.
	la_err rv = la_proxy_call_new(c->rpc->proxy, c->profile, req, &c->call,
	    err, sizeof(err));
	if (rv != LA_OK) {
		la_reply_err(c, rv, "%s", err);
		return; // call_new consumed req
	}
	c->state = CTX_SEND_TOKEN;
	rv       = la_wait_token(c, false, 0);
	if (rv != LA_ERR_PENDING) {
		la_send_token_ready(c, rv, false);
	}
}

static void
la_handle(la_rpc_ctx *c, nng_msg *msg)
{
	la_rpc                   *r = c->rpc;
	Leanauth__V1__RpcRequest *req;
	const la_config          *cfg = r->cfg;

	atomic_fetch_add(&r->requests, 1);
	atomic_fetch_add(&r->busy, 1);
	c->started       = nng_clock();
	c->method        = M_NONE;
	c->profile       = 0;
	c->has_profile   = false;
	c->request_id[0] = '\0';
	c->deadline      = c->started + cfg->default_timeout_ms;

	if (nng_msg_len(msg) > r->max_request) {
		nng_msg_free(msg);
		la_reply_err(c, LA_ERR_TOO_BIG, "request exceeds %zu bytes",
		    r->max_request);
		return;
	}
	req = leanauth__v1__rpc_request__unpack(NULL, nng_msg_len(msg),
	    nng_msg_body(msg));
	nng_msg_free(msg);
	if (req == NULL) {
		la_reply_err(c, LA_ERR_INVALID,
		    "malformed RpcRequest envelope");
		return;
	}
	for (size_t i = 0; i < req->n_metadata; i++) {
		if (strcmp(req->metadata[i]->key, "request-id") == 0) {
			la_printable(c->request_id, sizeof(c->request_id),
			    req->metadata[i]->value);
		}
	}
	if (req->timeout_ms != 0) {
		c->deadline = c->started + req->timeout_ms;
	}
	if (strcmp(req->method, LA_METHOD_GET_ACCESS_TOKEN) == 0) {
		c->method = M_TOKEN;
		la_handle_token(c, &req->payload);
	} else if (strcmp(req->method, LA_METHOD_SEND) == 0) {
		c->method = M_SEND;
		la_handle_send(c, &req->payload);
	} else if (strcmp(req->method, LA_METHOD_HEALTH_CHECK) == 0) {
		c->method = M_HEALTH;
		la_handle_health(c, &req->payload);
	} else {
		char shown[80];
		la_printable(shown, sizeof(shown), req->method);
		la_reply_err(c, LA_ERR_UNIMPLEMENTED, "unknown method \"%s\"",
		    shown);
	}
	leanauth__v1__rpc_request__free_unpacked(req, NULL);
}

static void
la_rpc_cb(void *arg)
{
	la_rpc_ctx *c = arg;
	int         rv;
	nng_msg    *msg;

	switch (c->state) {
	case CTX_IDLE:
		return;
	case CTX_RECV:
		if ((rv = nng_aio_result(c->aio)) != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				c->state = CTX_IDLE; // socket closing
				return;
			}
			la_rpc_recv(c);
			return;
		}
		la_handle(c, nng_aio_get_msg(c->aio));
		return;
	case CTX_WAIT_TOKEN:
		if (c->waiter.result == LA_OK) {
			la_reply_token(c, c->waiter.token);
			la_token_release(c->waiter.token);
			c->waiter.token = NULL;
		} else {
			la_reply_err(c, c->waiter.result, "%s",
			    c->waiter.error);
		}
		return;
	case CTX_SEND_TOKEN:
		la_send_token_ready(c, c->waiter.result, false);
		return;
	case CTX_SEND_RETRY_TOKEN:
		la_send_token_ready(c, c->waiter.result, true);
		return;
	case CTX_SEND_HTTP:
	case CTX_SEND_RETRY_HTTP:
		la_send_http_done(c);
		return;
	case CTX_REPLY:
		atomic_fetch_sub(&c->rpc->busy, 1);
		if ((rv = nng_aio_result(c->aio)) != 0) {
			msg = nng_aio_get_msg(c->aio);
			nng_msg_free(msg); // ours again when the send failed
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				c->state = CTX_IDLE;
				return;
			}
		}
		la_rpc_recv(c);
		return;
	}
}

la_err
la_rpc_create(la_rpc **out, const la_config *cfg, la_cache *cache,
    la_proxy *proxy)
{
	la_rpc *r;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		return (LA_ERR_NOMEM);
	}
	r->cfg          = cfg;
	r->cache        = cache;
	r->proxy        = proxy;
	size_t max_body = 0;
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		if (cfg->profiles[i].send.max_body_bytes > max_body) {
			max_body = cfg->profiles[i].send.max_body_bytes;
		}
	}
	r->max_request = max_body + LA_RPC_ENVELOPE_SLACK;
	*out           = r;
	return (LA_OK);
}

la_err
la_rpc_start(la_rpc *r, char *err, size_t errlen)
{
	int         rv;
	const char *what = "";

	if ((rv = nng_rep0_open(&r->sock)) != 0) {
		what = "nng_rep0_open";
		goto fail;
	}
	r->sock_open = true;
	// nng drops connections that send more than this; between
	// max_request and this we still answer RESOURCE_EXHAUSTED.
	size_t cap = r->max_request + 1024 * 1024;
	if ((rv = nng_socket_set_size(r->sock, NNG_OPT_RECVMAXSZ, cap)) != 0) {
		what = "recv-size-max";
		goto fail;
	}
	r->nctx = r->cfg->max_inflight;
	if ((r->ctxs = calloc(r->nctx, sizeof(la_rpc_ctx))) == NULL) {
		rv   = NNG_ENOMEM;
		what = "contexts";
		goto fail;
	}
	for (size_t i = 0; i < r->nctx; i++) {
		la_rpc_ctx *c = &r->ctxs[i];
		c->rpc        = r;
		c->state      = CTX_IDLE;
		if ((rv = nng_aio_alloc(&c->aio, la_rpc_cb, c)) != 0 ||
		    (rv = nng_ctx_open(&c->ctx, r->sock)) != 0) {
			what = "context";
			goto fail;
		}
	}
	if ((rv = nng_listener_create(&r->listener, r->sock,
	         r->cfg->listen_rpc)) != 0) {
		what = "listen.rpc";
		goto fail;
	}
	if (la_tls_setup_listener(r->listener, r->cfg, r->cfg->listen_rpc, err,
	        errlen) != LA_OK) {
		return (LA_ERR_INVALID);
	}
	if ((rv = nng_listener_start(r->listener, 0)) != 0) {
		what = "listen.rpc";
		goto fail;
	}
	char *url = NULL;
	if (nng_listener_get_string(r->listener, NNG_OPT_URL, &url) == 0) {
		snprintf(r->url, sizeof(r->url), "%s", url);
		nng_strfree(url);
	} else {
		snprintf(r->url, sizeof(r->url), "%s", r->cfg->listen_rpc);
	}
	for (size_t i = 0; i < r->nctx; i++) {
		la_rpc_recv(&r->ctxs[i]);
	}
	return (LA_OK);

fail:
	snprintf(err, errlen, "%s: %s (%s)", what, nng_strerror(rv),
	    r->cfg->listen_rpc);
	return (la_err_from_nng(rv));
}

const char *
la_rpc_url(const la_rpc *r)
{
	return (r->url);
}

int
la_rpc_drain(la_rpc *r, int max_ms)
{
	nng_time until = nng_clock() + (nng_time) max_ms;
	int      busy;
	while ((busy = atomic_load(&r->busy)) > 0 && nng_clock() < until) {
		nng_msleep(5);
	}
	return (busy);
}

void
la_rpc_stop(la_rpc *r)
{
	if (r == NULL || !r->sock_open) {
		return;
	}
	nng_close(r->sock); // every context's pending operation ends
	r->sock_open = false;
	for (size_t i = 0; i < r->nctx; i++) {
		if (r->ctxs[i].aio != NULL) {
			nng_aio_stop(r->ctxs[i].aio);
		}
	}
}

void
la_rpc_destroy(la_rpc *r)
{
	if (r == NULL) {
		return;
	}
	la_rpc_stop(r);
	for (size_t i = 0; i < r->nctx; i++) {
		la_rpc_ctx *c = &r->ctxs[i];
		if (c->aio != NULL) {
			nng_aio_free(c->aio);
		}
		la_token_release(c->waiter.token);
		if (c->call != NULL) {
			la_proxy_call_free(c->call);
		}
	}
	free(r->ctxs);
	free(r);
}

void
la_rpc_stats_get(la_rpc *r, la_rpc_stats *st)
{
	st->requests = atomic_load(&r->requests);
	for (int i = 0; i < 17; i++) {
		st->by_status[i] = atomic_load(&r->by_status[i]);
	}
	st->inflight = (uint64_t) atomic_load(&r->busy);
}
