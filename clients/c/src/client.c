// client.c -- libleanauth: the protobuf envelope over nng REQ (one context per
// call, so one client serves many threads), and SUB for events.
#include "leanauth.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanauth/v1/events.pb-c.h"
#include "leanauth/v1/health.pb-c.h"
#include "leanauth/v1/rpc.pb-c.h"
#include "leanauth/v1/token.pb-c.h"

// How long past its own deadline a call waits for leanauthd's answer (which
// for a timed-out call is DEADLINE_EXCEEDED, sent at the deadline).
#define LEANAUTH_REPLY_GRACE_MS 1000

#define LEANAUTH_DEFAULT_MAX_REPLY ((size_t) 64 * 1024 * 1024)

struct leanauth_client {
	nng_socket sock;
	nng_dialer dialer;
	uint32_t   timeout_ms;
	atomic_int pipes; // connections up now
	char       url[256];
};

struct leanauth_subscriber {
	nng_socket sock;
	nng_aio   *aio;
	atomic_int pipes;
	char       url[256];
	// An interrupt is a flag as well as an aio cancel: a cancel that lands
	// while no receive is running would otherwise be lost, and the
	// receive started next would block for good.
	nng_mtx *mtx;
	bool     interrupted; // consumed by the CANCELLED it causes
	bool     receiving;   // s->aio has a receive in progress
};

static int la_fail(leanauth_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
la_fail(leanauth_error *err, int code, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return (code);
}

static void
la_ok(leanauth_error *err)
{
	if (err != NULL) {
		err->code       = LEANAUTH_OK;
		err->message[0] = '\0';
	}
}

const char *
leanauth_code_name(int code)
{
	static const char *const names[] = {"OK", "CANCELLED", "UNKNOWN",
	    "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
	if (code < 0 || code > 16) {
		return ("UNKNOWN");
	}
	return (names[code]);
}

const char *
leanauth_token_type_name(int t)
{
	return (t == LEANAUTH_TOKEN_BEARER          ? "Bearer"
	        : t == LEANAUTH_TOKEN_SESSION_TOKEN ? "SessionToken"
	                                            : "");
}

void
leanauth_token_clear(leanauth_token *t)
{
	if (t == NULL) {
		return;
	}
	if (t->access_token != NULL) {
		explicit_bzero(t->access_token, strlen(t->access_token));
		free(t->access_token);
	}
	memset(t, 0, sizeof(*t));
}

static void
la_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void) p;
	atomic_int *pipes = arg;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_fetch_add(pipes, 1);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_sub(pipes, 1);
	}
}

// la_dial starts a background dialer on sock (with TLS for tls+tcp://) and,
// if asked, waits for the first connection.
static int
la_dial(nng_socket sock, nng_dialer *d, const char *url, atomic_int *pipes,
    const leanauth_options *o, leanauth_error *err)
{
	int rv;

	nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, la_pipe_cb, pipes);
	nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, la_pipe_cb, pipes);
	if ((rv = nng_dialer_create(d, sock, url)) != 0) {
		return (la_fail(err, LEANAUTH_INVALID_ARGUMENT,
		    "bad url \"%s\": %s", url, nng_strerror(rv)));
	}
	if (strncmp(url, "tls+", 4) == 0) {
		nng_tls_config *tc;
		if ((rv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_CLIENT)) !=
		    0) {
			return (la_fail(err, LEANAUTH_INTERNAL, "tls: %s",
			    nng_strerror(rv)));
		}
		// Always verify: a TLS connection to an unverified peer would
		// hand tokens to whoever answers.
		if (o == NULL || o->tls_ca_file == NULL) {
			nng_tls_config_free(tc);
			return (la_fail(err, LEANAUTH_INVALID_ARGUMENT,
			    "%s: a tls+tcp:// URL needs a CA file to verify "
			    "leanauthd "
			    "(tls_ca_file; LEANAUTH_TLS_CA for the CLI)",
			    url));
		}
		rv = nng_tls_config_ca_file(tc, o->tls_ca_file);
		nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_REQUIRED);
		if (rv == 0 && o != NULL && o->tls_cert_file != NULL) {
			rv = nng_tls_config_cert_key_file(tc, o->tls_cert_file,
			    NULL);
			if (rv == 0 && o->tls_key_file != NULL &&
			    strcmp(o->tls_key_file, o->tls_cert_file) != 0) {
				rv =
				    NNG_EINVAL; // nng wants cert and key in one file
			}
		}
		if (rv == 0 && o != NULL && o->tls_server_name != NULL) {
			rv =
			    nng_tls_config_server_name(tc, o->tls_server_name);
		}
		if (rv == 0) {
			rv = nng_dialer_set_ptr(*d, NNG_OPT_TLS_CONFIG, tc);
		}
		nng_tls_config_free(tc);
		if (rv != 0) {
			return (la_fail(err, LEANAUTH_INVALID_ARGUMENT,
			    "tls options: %s", nng_strerror(rv)));
		}
	}
	if ((rv = nng_dialer_start(*d, NNG_FLAG_NONBLOCK)) != 0) {
		return (la_fail(err, LEANAUTH_UNAVAILABLE, "dial %s: %s", url,
		    nng_strerror(rv)));
	}
	if (o != NULL && o->connect_timeout_ms > 0) {
		nng_time until = nng_clock() + o->connect_timeout_ms;
		while (atomic_load(pipes) == 0 && nng_clock() < until) {
			nng_msleep(5);
		}
		if (atomic_load(pipes) == 0) {
			return (la_fail(err, LEANAUTH_UNAVAILABLE,
			    "cannot connect to leanauthd at %s within %u ms",
			    url, o->connect_timeout_ms));
		}
	}
	return (LEANAUTH_OK);
}

int
leanauth_open(leanauth_client **out, const char *url,
    const leanauth_options *opts, leanauth_error *err)
{
	leanauth_client *c;
	int              rv;

	*out = NULL;
	if (url == NULL || url[0] == '\0') {
		return (la_fail(err, LEANAUTH_INVALID_ARGUMENT, "empty url"));
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return (la_fail(err, LEANAUTH_INTERNAL, "out of memory"));
	}
	atomic_init(&c->pipes, 0);
	snprintf(c->url, sizeof(c->url), "%s", url);
	c->timeout_ms =
	    (opts != NULL && opts->timeout_ms > 0) ? opts->timeout_ms : 10000;
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		free(c);
		return (la_fail(err, LEANAUTH_INTERNAL, "nng_req0_open: %s",
		    nng_strerror(rv)));
	}
	// nng's default receive cap (1 MiB) is below what a Send may return.
	size_t max_reply = (opts != NULL && opts->max_reply_bytes > 0)
	    ? opts->max_reply_bytes
	    : LEANAUTH_DEFAULT_MAX_REPLY;
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, max_reply);
	if ((rv = la_dial(c->sock, &c->dialer, url, &c->pipes, opts, err)) !=
	    0) {
		nng_close(c->sock);
		free(c);
		return (rv);
	}
	la_ok(err);
	*out = c;
	return (LEANAUTH_OK);
}

void
leanauth_close(leanauth_client *c)
{
	if (c != NULL) {
		nng_close(c->sock);
		free(c);
	}
}

// la_call makes one exchange. On LEANAUTH_OK *payload (malloc) holds the
// method's response message.
static int
la_call(leanauth_client *c, const char *method, const uint8_t *req,
    size_t reqlen, bool idempotent, const leanauth_call_options *co,
    uint8_t **payload, size_t *paylen, leanauth_error *err)
{
	Leanauth__V1__RpcRequest env = LEANAUTH__V1__RPC_REQUEST__INIT;
	Leanauth__V1__RpcRequest__MetadataEntry md =
	    LEANAUTH__V1__RPC_REQUEST__METADATA_ENTRY__INIT;
	Leanauth__V1__RpcRequest__MetadataEntry *mdp[1] = {&md};
	Leanauth__V1__RpcResponse               *resp   = NULL;
	nng_ctx                                  ctx;
	nng_aio                                 *aio = NULL;
	nng_msg                                 *msg = NULL;
	uint32_t timeout = (co != NULL && co->timeout_ms > 0) ? co->timeout_ms
	                                                      : c->timeout_ms;
	int      rv, code;

	*payload         = NULL;
	*paylen          = 0;
	env.method       = (char *) method;
	env.payload.data = (uint8_t *) req;
	env.payload.len  = reqlen;
	env.timeout_ms   = timeout;
	if (co != NULL && co->request_id != NULL) {
		md.key         = "request-id";
		md.value       = (char *) co->request_id;
		env.n_metadata = 1;
		env.metadata   = mdp;
	}
	size_t size = leanauth__v1__rpc_request__get_packed_size(&env);
	if ((rv = nng_msg_alloc(&msg, size)) != 0) {
		return (la_fail(err, LEANAUTH_INTERNAL, "out of memory"));
	}
	leanauth__v1__rpc_request__pack(&env, nng_msg_body(msg));

	if ((rv = nng_ctx_open(&ctx, c->sock)) != 0) {
		nng_msg_free(msg);
		return (la_fail(err, LEANAUTH_INTERNAL, "nng_ctx_open: %s",
		    nng_strerror(rv)));
	}
	// REQ resends an unanswered request when its resend time passes, and
	// at once on a new connection when the one it went out on breaks. A
	// token or health request may be repeated; a Send must never be: for
	// it resending is off altogether, and a broken connection is reported
	// as UNAVAILABLE ("may or may not have been carried out").
	nng_duration wait = (nng_duration) timeout + LEANAUTH_REPLY_GRACE_MS;
	nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME,
	    idempotent ? wait + 60000 : NNG_DURATION_INFINITE);
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		nng_msg_free(msg);
		nng_ctx_close(ctx);
		return (la_fail(err, LEANAUTH_INTERNAL, "out of memory"));
	}
	nng_time until = nng_clock() + (nng_time) wait;
	nng_aio_set_msg(aio, msg);
	nng_aio_set_timeout(aio, wait);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		nng_msg_free(nng_aio_get_msg(aio));
		goto transport;
	}
	nng_time now = nng_clock();
	nng_aio_set_timeout(aio,
	    now < until ? (nng_duration) (until - now) : 1);
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		goto transport;
	}
	msg  = nng_aio_get_msg(aio);
	resp = leanauth__v1__rpc_response__unpack(NULL, nng_msg_len(msg),
	    nng_msg_body(msg));
	nng_msg_free(msg);
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	if (resp == NULL) {
		return (la_fail(err, LEANAUTH_INTERNAL,
		    "malformed reply from leanauthd"));
	}
	code = resp->status != NULL ? resp->status->code : LEANAUTH_OK;
	if (code != LEANAUTH_OK) {
		la_fail(err, code, "%s", resp->status->message);
		leanauth__v1__rpc_response__free_unpacked(resp, NULL);
		return (code);
	}
	*paylen  = resp->payload.len;
	*payload = malloc(resp->payload.len > 0 ? resp->payload.len : 1);
	if (*payload == NULL) {
		leanauth__v1__rpc_response__free_unpacked(resp, NULL);
		return (la_fail(err, LEANAUTH_INTERNAL, "out of memory"));
	}
	if (resp->payload.len > 0) {
		memcpy(*payload, resp->payload.data, resp->payload.len);
		explicit_bzero(resp->payload.data, resp->payload.len);
	}
	leanauth__v1__rpc_response__free_unpacked(resp, NULL);
	la_ok(err);
	return (LEANAUTH_OK);

transport:
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	if (rv == NNG_ECONNRESET) {
		return (la_fail(err, LEANAUTH_UNAVAILABLE,
		    "connection to leanauthd at %s lost before the reply; the "
		    "request was not resent and may or may not have been "
		    "carried out",
		    c->url));
	}
	if (atomic_load(&c->pipes) == 0) {
		return (la_fail(err, LEANAUTH_UNAVAILABLE,
		    "not connected to leanauthd at %s", c->url));
	}
	if (rv == NNG_ETIMEDOUT) {
		return (la_fail(err, LEANAUTH_DEADLINE_EXCEEDED,
		    "no reply from leanauthd within %u ms", timeout));
	}
	return (la_fail(err, LEANAUTH_UNAVAILABLE, "leanauthd at %s: %s",
	    c->url, nng_strerror(rv)));
}

int
leanauth_get_token(leanauth_client *c, const char *profile, bool force_refresh,
    uint64_t if_generation, const leanauth_call_options *co,
    leanauth_token *out, leanauth_error *err)
{
	Leanauth__V1__GetAccessTokenRequest req =
	    LEANAUTH__V1__GET_ACCESS_TOKEN_REQUEST__INIT;
	uint8_t  buf[512];
	uint8_t *p;
	size_t   n;
	int      rv;

	memset(out, 0, sizeof(*out));
	req.profile       = (char *) (profile != NULL ? profile : "");
	req.force_refresh = force_refresh;
	req.if_generation = if_generation;
	if (leanauth__v1__get_access_token_request__get_packed_size(&req) >
	    sizeof(buf)) {
		return (la_fail(err, LEANAUTH_INVALID_ARGUMENT,
		    "profile name too long"));
	}
	n = leanauth__v1__get_access_token_request__pack(&req, buf);
	if ((rv = la_call(c, "leanauth.v1.TokenService/GetAccessToken", buf, n,
	         true, co, &p, &n, err)) != 0) {
		return (rv);
	}
	Leanauth__V1__GetAccessTokenResponse *r =
	    leanauth__v1__get_access_token_response__unpack(NULL, n, p);
	explicit_bzero(p, n);
	free(p);
	if (r == NULL) {
		return (la_fail(err, LEANAUTH_INTERNAL,
		    "malformed GetAccessTokenResponse"));
	}
	out->token_type         = r->token_type;
	out->expires_at_unix_ms = r->expires_at_unix_ms;
	out->generation         = r->generation;
	out->access_token       = strdup(r->access_token);
	explicit_bzero(r->access_token, strlen(r->access_token));
	leanauth__v1__get_access_token_response__free_unpacked(r, NULL);
	if (out->access_token == NULL) {
		return (la_fail(err, LEANAUTH_INTERNAL, "out of memory"));
	}
	return (LEANAUTH_OK);
}

void
leanauth_response_clear(leanauth_response *r)
{
	if (r == NULL) {
		return;
	}
	for (size_t i = 0; i < r->n_headers; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int
leanauth_send(leanauth_client *c, const leanauth_request *rq,
    const leanauth_call_options *co, leanauth_response *out,
    leanauth_error *err)
{
	Leanauth__V1__SendRequest req = LEANAUTH__V1__SEND_REQUEST__INIT;
	Leanauth__V1__Header     *hv  = NULL;
	Leanauth__V1__Header    **hp  = NULL;
	uint8_t                  *buf = NULL, *p = NULL;
	size_t                    n;
	int                       rv;

	memset(out, 0, sizeof(*out));
	if (rq->method == NULL || rq->url == NULL) {
		return (la_fail(err, LEANAUTH_INVALID_ARGUMENT,
		    "method and url are required"));
	}
	if (rq->n_headers > 0) {
		hv = calloc(rq->n_headers, sizeof(*hv));
		hp = calloc(rq->n_headers, sizeof(*hp));
		if (hv == NULL || hp == NULL) {
			rv = la_fail(err, LEANAUTH_INTERNAL, "out of memory");
			goto done;
		}
	}
	for (size_t i = 0; i < rq->n_headers; i++) {
		leanauth__v1__header__init(&hv[i]);
		hv[i].name  = rq->headers[i].name;
		hv[i].value = rq->headers[i].value;
		hp[i]       = &hv[i];
	}
	req.profile    = (char *) (rq->profile != NULL ? rq->profile : "");
	req.method     = (char *) rq->method;
	req.url        = (char *) rq->url;
	req.n_headers  = rq->n_headers;
	req.headers    = hp;
	req.body.data  = (uint8_t *) rq->body;
	req.body.len   = rq->body_len;
	req.timeout_ms = co != NULL ? co->timeout_ms : 0;
	n              = leanauth__v1__send_request__get_packed_size(&req);
	if ((buf = malloc(n > 0 ? n : 1)) == NULL) {
		rv = la_fail(err, LEANAUTH_INTERNAL, "out of memory");
		goto done;
	}
	leanauth__v1__send_request__pack(&req, buf);
	if ((rv = la_call(c, "leanauth.v1.TokenService/Send", buf, n, false,
	         co, &p, &n, err)) != 0) {
		goto done;
	}
	Leanauth__V1__SendResponse *r =
	    leanauth__v1__send_response__unpack(NULL, n, p);
	if (r == NULL) {
		rv = la_fail(err, LEANAUTH_INTERNAL, "malformed SendResponse");
		goto done;
	}
	out->status_code = r->status_code;
	out->body_len    = r->body.len;
	out->body = malloc(r->body.len + 1); // NUL-terminated for convenience
	out->headers = r->n_headers > 0
	    ? calloc(r->n_headers, sizeof(leanauth_header))
	    : NULL;
	if (out->body == NULL || (r->n_headers > 0 && out->headers == NULL)) {
		leanauth__v1__send_response__free_unpacked(r, NULL);
		leanauth_response_clear(out);
		rv = la_fail(err, LEANAUTH_INTERNAL, "out of memory");
		goto done;
	}
	if (r->body.len > 0) {
		memcpy(out->body, r->body.data, r->body.len);
	}
	out->body[r->body.len] = '\0';
	for (size_t i = 0; i < r->n_headers; i++) {
		out->headers[i].name  = strdup(r->headers[i]->name);
		out->headers[i].value = strdup(r->headers[i]->value);
		out->n_headers++;
	}
	leanauth__v1__send_response__free_unpacked(r, NULL);
	la_ok(err);
	rv = LEANAUTH_OK;
done:
	free(hv);
	free(hp);
	free(buf);
	free(p);
	return (rv);
}

int
leanauth_health(leanauth_client *c, const char *profile,
    const leanauth_call_options *co, bool *serving, leanauth_error *err)
{
	Leanauth__V1__HealthCheckRequest req =
	    LEANAUTH__V1__HEALTH_CHECK_REQUEST__INIT;
	uint8_t  buf[512];
	uint8_t *p;
	size_t   n;
	int      rv;

	req.profile = (char *) (profile != NULL ? profile : "");
	if (leanauth__v1__health_check_request__get_packed_size(&req) >
	    sizeof(buf)) {
		return (la_fail(err, LEANAUTH_INVALID_ARGUMENT,
		    "profile name too long"));
	}
	n = leanauth__v1__health_check_request__pack(&req, buf);
	if ((rv = la_call(c, "leanauth.v1.Health/Check", buf, n, true, co, &p,
	         &n, err)) != 0) {
		return (rv);
	}
	Leanauth__V1__HealthCheckResponse *r =
	    leanauth__v1__health_check_response__unpack(NULL, n, p);
	free(p);
	if (r == NULL) {
		return (la_fail(err, LEANAUTH_INTERNAL,
		    "malformed HealthCheckResponse"));
	}
	*serving = r->status == LEANAUTH__V1__SERVING_STATUS__SERVING;
	leanauth__v1__health_check_response__free_unpacked(r, NULL);
	return (LEANAUTH_OK);
}

// ---- events

int
leanauth_subscribe(leanauth_subscriber **out, const char *url,
    const char *const *topics, size_t n_topics, const leanauth_options *opts,
    leanauth_error *err)
{
	leanauth_subscriber *s;
	nng_dialer           d;
	int                  rv;

	*out = NULL;
	if (url == NULL || url[0] == '\0') {
		return (la_fail(err, LEANAUTH_INVALID_ARGUMENT, "empty url"));
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return (la_fail(err, LEANAUTH_INTERNAL, "out of memory"));
	}
	atomic_init(&s->pipes, 0);
	snprintf(s->url, sizeof(s->url), "%s", url);
	if ((rv = nng_sub0_open(&s->sock)) != 0) {
		free(s);
		return (la_fail(err, LEANAUTH_INTERNAL, "nng_sub0_open: %s",
		    nng_strerror(rv)));
	}
	if ((rv = nng_aio_alloc(&s->aio, NULL, NULL)) != 0 ||
	    (rv = nng_mtx_alloc(&s->mtx)) != 0) {
		leanauth_subscriber_close(s);
		return (la_fail(err, LEANAUTH_INTERNAL, "out of memory"));
	}
	// Subscribing with the NUL that ends the topic makes the prefix match
	// exact: a topic never matches a longer name.
	if (topics == NULL || n_topics == 0) {
		rv = nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	} else {
		rv = 0;
		for (size_t i = 0; i < n_topics && rv == 0; i++) {
			rv = nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE,
			    topics[i], strlen(topics[i]) + 1);
		}
	}
	if (rv == 0) {
		rv = la_dial(s->sock, &d, url, &s->pipes, opts, err);
		if (rv != 0) {
			leanauth_subscriber_close(s);
			return (rv);
		}
	} else {
		leanauth_subscriber_close(s);
		return (la_fail(err, LEANAUTH_INTERNAL, "subscribe: %s",
		    nng_strerror(rv)));
	}
	la_ok(err);
	*out = s;
	return (LEANAUTH_OK);
}

static void
la_copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src != NULL ? src : "");
}

// la_decode_event fills ev from one PUB message; false for unknown topics or
// malformed payloads (which subscribers skip).
static bool
la_decode_event(const uint8_t *body, size_t len, leanauth_event *ev)
{
	const uint8_t *nul = memchr(body, '\0', len);
	if (nul == NULL) {
		return (false);
	}
	const char    *topic = (const char *) body;
	const uint8_t *p     = nul + 1;
	size_t         n     = len - (size_t) (p - body);

	memset(ev, 0, sizeof(*ev));
	if (strcmp(topic, LEANAUTH_TOPIC_TOKEN_REFRESHED) == 0) {
		Leanauth__V1__TokenRefreshed *m =
		    leanauth__v1__token_refreshed__unpack(NULL, n, p);
		if (m == NULL) {
			return (false);
		}
		ev->type  = LEANAUTH_EVENT_TOKEN_REFRESHED;
		ev->topic = LEANAUTH_TOPIC_TOKEN_REFRESHED;
		la_copy(ev->profile, sizeof(ev->profile), m->profile);
		ev->token_type         = m->token_type;
		ev->expires_at_unix_ms = m->expires_at_unix_ms;
		ev->at_unix_ms         = m->at_unix_ms;
		ev->generation         = m->generation;
		leanauth__v1__token_refreshed__free_unpacked(m, NULL);
	} else if (strcmp(topic, LEANAUTH_TOPIC_AUTHENTICATION_FAILED) == 0) {
		Leanauth__V1__AuthenticationFailed *m =
		    leanauth__v1__authentication_failed__unpack(NULL, n, p);
		if (m == NULL) {
			return (false);
		}
		ev->type  = LEANAUTH_EVENT_AUTHENTICATION_FAILED;
		ev->topic = LEANAUTH_TOPIC_AUTHENTICATION_FAILED;
		la_copy(ev->profile, sizeof(ev->profile), m->profile);
		la_copy(ev->brokerage, sizeof(ev->brokerage), m->brokerage);
		la_copy(ev->account_id, sizeof(ev->account_id), m->account_id);
		la_copy(ev->error, sizeof(ev->error), m->error);
		ev->attempts   = m->attempts;
		ev->at_unix_ms = m->at_unix_ms;
		leanauth__v1__authentication_failed__free_unpacked(m, NULL);
	} else if (strcmp(topic, LEANAUTH_TOPIC_AUTHENTICATION_DEGRADED) ==
	    0) {
		Leanauth__V1__AuthenticationDegraded *m =
		    leanauth__v1__authentication_degraded__unpack(NULL, n, p);
		if (m == NULL) {
			return (false);
		}
		ev->type  = LEANAUTH_EVENT_AUTHENTICATION_DEGRADED;
		ev->topic = LEANAUTH_TOPIC_AUTHENTICATION_DEGRADED;
		la_copy(ev->profile, sizeof(ev->profile), m->profile);
		la_copy(ev->error, sizeof(ev->error), m->error);
		ev->attempts           = m->attempts;
		ev->expires_at_unix_ms = m->token_valid_until_unix_ms;
		ev->at_unix_ms         = m->at_unix_ms;
		leanauth__v1__authentication_degraded__free_unpacked(m, NULL);
	} else if (strcmp(topic, LEANAUTH_TOPIC_AUTHENTICATION_RECOVERED) ==
	    0) {
		Leanauth__V1__AuthenticationRecovered *m =
		    leanauth__v1__authentication_recovered__unpack(NULL, n, p);
		if (m == NULL) {
			return (false);
		}
		ev->type  = LEANAUTH_EVENT_AUTHENTICATION_RECOVERED;
		ev->topic = LEANAUTH_TOPIC_AUTHENTICATION_RECOVERED;
		la_copy(ev->profile, sizeof(ev->profile), m->profile);
		ev->at_unix_ms = m->at_unix_ms;
		leanauth__v1__authentication_recovered__free_unpacked(m, NULL);
	} else {
		return (false); // a newer server's event: not ours to decode
	}
	return (true);
}

int
leanauth_next_event(leanauth_subscriber *s, int timeout_ms, leanauth_event *ev,
    leanauth_error *err)
{
	nng_time until =
	    timeout_ms >= 0 ? nng_clock() + (nng_time) timeout_ms : 0;

	for (;;) {
		nng_duration left = NNG_DURATION_INFINITE;
		if (timeout_ms >= 0) {
			nng_time now = nng_clock();
			left = now < until ? (nng_duration) (until - now)
			                   : NNG_DURATION_ZERO;
		}
		nng_mtx_lock(s->mtx);
		if (s->interrupted) {
			s->interrupted = false;
			nng_mtx_unlock(s->mtx);
			return (
			    la_fail(err, LEANAUTH_CANCELLED, "interrupted"));
		}
		s->receiving = true;
		nng_aio_set_timeout(s->aio, left);
		nng_recv_aio(s->sock, s->aio);
		nng_mtx_unlock(s->mtx);
		nng_aio_wait(s->aio);
		int rv = nng_aio_result(s->aio);
		nng_mtx_lock(s->mtx);
		s->receiving = false;
		if (rv == NNG_ECANCELED) {
			s->interrupted = false;
		}
		nng_mtx_unlock(s->mtx);
		if (rv == NNG_ETIMEDOUT) {
			return (la_fail(err, LEANAUTH_DEADLINE_EXCEEDED,
			    "no event within %d ms", timeout_ms));
		}
		if (rv == NNG_ECANCELED || rv == NNG_ECLOSED) {
			return (
			    la_fail(err, LEANAUTH_CANCELLED, "interrupted"));
		}
		if (rv != 0) {
			return (la_fail(err, LEANAUTH_UNAVAILABLE,
			    "events: %s", nng_strerror(rv)));
		}
		nng_msg *msg = nng_aio_get_msg(s->aio);
		bool     ok =
		    la_decode_event(nng_msg_body(msg), nng_msg_len(msg), ev);
		nng_msg_free(msg);
		if (ok) {
			la_ok(err);
			return (LEANAUTH_OK);
		}
	}
}

void
leanauth_subscriber_interrupt(leanauth_subscriber *s)
{
	nng_mtx_lock(s->mtx);
	s->interrupted = true;
	if (s->receiving) {
		nng_aio_cancel(s->aio);
	}
	nng_mtx_unlock(s->mtx);
}

void
leanauth_subscriber_close(leanauth_subscriber *s)
{
	if (s == NULL) {
		return;
	}
	nng_close(s->sock);
	if (s->aio != NULL) {
		nng_aio_free(s->aio);
	}
	if (s->mtx != NULL) {
		nng_mtx_free(s->mtx);
	}
	free(s);
}

int
leanauth_watch(leanauth_subscriber *s, leanauth_event_fn fn, void *arg,
    leanauth_error *err)
{
	leanauth_event ev;
	for (;;) {
		int rv = leanauth_next_event(s, -1, &ev, err);
		if (rv == LEANAUTH_CANCELLED) {
			la_ok(err);
			return (LEANAUTH_OK);
		}
		if (rv != LEANAUTH_OK) {
			return (rv);
		}
		if (!fn(&ev, arg)) {
			la_ok(err);
			return (LEANAUTH_OK);
		}
	}
}
