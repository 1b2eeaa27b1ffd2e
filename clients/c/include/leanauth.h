// leanauth.h -- C client for leanauthd: get brokerage OAuth tokens, send HTTP
// calls through leanauthd with the token attached, and subscribe to its
// events. Link with `pkg-config --libs leanauth` or CMake's
// `find_package(leanauth)` + `leanauth::leanauth`.
//
// Threading: one leanauth_client may be used from many threads at once;
// every call runs on its own nng context. A leanauth_subscriber belongs to
// one thread at a time.
//
// Errors: calls return 0 (LEANAUTH_OK) or a status code (gRPC's canonical
// numbers, as on the wire) and fill the optional leanauth_error. Messages
// never contain a secret.
#ifndef LEANAUTH_H
#define LEANAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LEANAUTH_VERSION_STRING "0.1.0"

enum leanauth_code {
	LEANAUTH_OK                 = 0,
	LEANAUTH_CANCELLED          = 1,
	LEANAUTH_UNKNOWN            = 2,
	LEANAUTH_INVALID_ARGUMENT   = 3,
	LEANAUTH_DEADLINE_EXCEEDED  = 4,
	LEANAUTH_NOT_FOUND          = 5,
	LEANAUTH_PERMISSION_DENIED  = 7,
	LEANAUTH_RESOURCE_EXHAUSTED = 8,
	LEANAUTH_UNIMPLEMENTED      = 12,
	LEANAUTH_INTERNAL           = 13,
	LEANAUTH_UNAVAILABLE        = 14,
	LEANAUTH_UNAUTHENTICATED    = 16,
};

// leanauth_code_name returns "OK", "NOT_FOUND", ... ("UNKNOWN" otherwise).
const char *leanauth_code_name(int code);

typedef struct leanauth_error {
	int  code;
	char message[512];
} leanauth_error;

enum leanauth_token_type {
	LEANAUTH_TOKEN_UNSPECIFIED   = 0,
	LEANAUTH_TOKEN_BEARER        = 1,
	LEANAUTH_TOKEN_SESSION_TOKEN = 2,
};

// leanauth_token_type_name returns "Bearer", "SessionToken" or "".
const char *leanauth_token_type_name(int token_type);

typedef struct leanauth_token {
	int      token_type;   // enum leanauth_token_type
	char    *access_token; // secret: release with leanauth_token_clear
	int64_t  expires_at_unix_ms;
	uint64_t generation;
} leanauth_token;

// leanauth_token_clear wipes and frees the token's memory. NULL-safe.
void leanauth_token_clear(leanauth_token *t);

typedef struct leanauth_client leanauth_client;

typedef struct leanauth_options {
	// Deadline for calls that give none (ms). 0: 10000.
	uint32_t timeout_ms;
	// leanauth_open waits up to this long for a first connection and fails
	// with UNAVAILABLE if none comes. 0: connect in the background (calls
	// then wait for the connection within their own deadline).
	uint32_t connect_timeout_ms;
	// For tls+tcp:// URLs: the CA bundle that verifies leanauthd (required:
	// the client never talks TLS to an unverified server), optionally a
	// client certificate with its key (one PEM file: tls_cert_file; set
	// tls_key_file to the same path or leave it NULL), and the server name
	// to check (default: the URL's host).
	const char *tls_ca_file;
	const char *tls_cert_file;
	const char *tls_key_file;
	const char *tls_server_name;
	// Largest reply accepted (a Send's response body plus headers). nng
	// drops the connection on a larger one, and the call then fails with
	// UNAVAILABLE. 0: 64 MiB.
	size_t max_reply_bytes;
} leanauth_options;

// leanauth_open connects to leanauthd's RPC URL (e.g. tcp://127.0.0.1:7450).
// opts may be NULL.
int leanauth_open(leanauth_client **out, const char *url,
    const leanauth_options *opts, leanauth_error *err);

// leanauth_close closes c. NULL-safe. No call may be in progress.
void leanauth_close(leanauth_client *c);

typedef struct leanauth_call_options {
	uint32_t timeout_ms; // 0: the client's default
	const char
	    *request_id; // logged by leanauthd with the call; may be NULL
} leanauth_call_options;

// leanauth_get_token gets profile's token (NULL or "": the first profile).
// force_refresh drops the cached token; with if_generation != 0 only if the
// cached one is still that generation. call may be NULL.
int leanauth_get_token(leanauth_client *c, const char *profile,
    bool force_refresh, uint64_t if_generation,
    const leanauth_call_options *call, leanauth_token *out,
    leanauth_error *err);

typedef struct leanauth_header {
	char *name;
	char *value;
} leanauth_header;

typedef struct leanauth_request {
	const char            *profile; // NULL or "": the first profile
	const char            *method;  // GET, HEAD, POST, PUT, PATCH, DELETE
	const char            *url; // under one of the profile's allowed_urls
	const leanauth_header *headers;
	size_t                 n_headers;
	const void            *body;
	size_t                 body_len;
} leanauth_request;

typedef struct leanauth_response {
	int              status_code; // the brokerage's HTTP status
	leanauth_header *headers;
	size_t           n_headers;
	uint8_t         *body;
	size_t           body_len;
} leanauth_response;

// leanauth_response_clear frees the response's memory. NULL-safe.
void leanauth_response_clear(leanauth_response *r);

// leanauth_send performs req through leanauthd, which attaches the token.
// Returns LEANAUTH_OK whenever the brokerage answered, whatever its HTTP
// status; a non-OK code means the call itself failed (denied, timed out,
// unreachable, too large). The request is never executed twice: the REQ
// resend time is set beyond the deadline.
int leanauth_send(leanauth_client *c, const leanauth_request *req,
    const leanauth_call_options *call, leanauth_response *out,
    leanauth_error *err);

// leanauth_health asks whether leanauthd (profile NULL/"") or one profile is
// serving: *serving is set on LEANAUTH_OK.
int leanauth_health(leanauth_client *c, const char *profile,
    const leanauth_call_options *call, bool *serving, leanauth_error *err);

// ---- events

enum leanauth_event_type {
	LEANAUTH_EVENT_TOKEN_REFRESHED = 1,
	LEANAUTH_EVENT_AUTHENTICATION_FAILED,
	LEANAUTH_EVENT_AUTHENTICATION_DEGRADED,
	LEANAUTH_EVENT_AUTHENTICATION_RECOVERED,
};

// Topics, i.e. the events' full protobuf names.
#define LEANAUTH_TOPIC_TOKEN_REFRESHED "leanauth.v1.TokenRefreshed"
#define LEANAUTH_TOPIC_AUTHENTICATION_FAILED "leanauth.v1.AuthenticationFailed"
#define LEANAUTH_TOPIC_AUTHENTICATION_DEGRADED                                \
	"leanauth.v1.AuthenticationDegraded"
#define LEANAUTH_TOPIC_AUTHENTICATION_RECOVERED                               \
	"leanauth.v1.AuthenticationRecovered"

// One decoded event; fields that its type lacks are zero / "".
typedef struct leanauth_event {
	int         type; // enum leanauth_event_type
	const char *topic;
	char        profile[128];
	char        brokerage[128];  // FAILED
	char        account_id[128]; // FAILED
	char        error[512];      // FAILED, DEGRADED
	uint32_t    attempts;        // FAILED, DEGRADED
	int         token_type;      // REFRESHED
	int64_t  expires_at_unix_ms; // REFRESHED; DEGRADED: token valid until
	uint64_t generation;         // REFRESHED
	int64_t  at_unix_ms;
} leanauth_event;

typedef struct leanauth_subscriber leanauth_subscriber;

// leanauth_subscribe connects to leanauthd's events URL and subscribes to
// topics (NULL or n_topics 0: every event). With opts->connect_timeout_ms it
// waits that long for the connection (UNAVAILABLE if none comes); otherwise
// connecting happens in the background. Either way the dialer reconnects by
// itself if leanauthd restarts. Events published while no connection is up
// are missed (PUB/SUB), so ask GetAccessToken or Health for the current
// state. leanauthd's /metrics gauge leanauth_events_subscribers counts the
// connections that it sends events to.
int leanauth_subscribe(leanauth_subscriber **out, const char *url,
    const char *const *topics, size_t n_topics, const leanauth_options *opts,
    leanauth_error *err);

// leanauth_next_event waits up to timeout_ms (negative: forever) for the next
// event. DEADLINE_EXCEEDED when none came; CANCELLED after
// leanauth_subscriber_interrupt.
int leanauth_next_event(leanauth_subscriber *s, int timeout_ms,
    leanauth_event *ev, leanauth_error *err);

// leanauth_subscriber_interrupt makes a blocked leanauth_next_event return
// CANCELLED -- or, if none is blocked right now, the next call (so an
// interrupt is never lost to a race with the waiting thread). Safe from
// another thread; not from a signal handler.
void leanauth_subscriber_interrupt(leanauth_subscriber *s);

// leanauth_subscriber_close closes s. NULL-safe.
void leanauth_subscriber_close(leanauth_subscriber *s);

// leanauth_event_fn is called for each event by leanauth_watch.
// Return false to stop watching.
typedef bool (*leanauth_event_fn)(const leanauth_event *ev, void *arg);

// leanauth_watch calls fn for every event until fn returns false or
// leanauth_subscriber_interrupt is called (then returns LEANAUTH_OK).
int leanauth_watch(leanauth_subscriber *s, leanauth_event_fn fn, void *arg,
    leanauth_error *err);

#ifdef __cplusplus
}
#endif

#endif // LEANAUTH_H
