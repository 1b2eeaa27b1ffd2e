// lean.h -- the Lean platform API client: signs, sends and parses one
// `POST {url}live/auth0/refresh` call (DESIGN.md, "Upstream"). Retrying is
// the token cache's business; this module makes exactly one attempt.
//
// Threading: la_lean_fetch blocks (libcurl) and runs only on worker threads.
// The pure helpers (sign, body, parse) are reentrant.
#ifndef LA_LEAN_H
#define LA_LEAN_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "config/config.h"

// Token types, numbered as the wire's TokenType enum.
typedef enum la_token_type {
	LA_TOKEN_UNSPECIFIED   = 0,
	LA_TOKEN_BEARER        = 1,
	LA_TOKEN_SESSION_TOKEN = 2,
} la_token_type;

// la_token_type_name returns "Bearer" or "SessionToken" (the HTTP
// Authorization scheme), "" for UNSPECIFIED.
const char *la_token_type_name(la_token_type t);

// Largest reply body accepted from the Lean API; more is UNAVAILABLE.
#define LA_LEAN_MAX_REPLY (1024 * 1024)

// Longest access token accepted (bytes); longer is UNAVAILABLE, so that
// whoever builds an Authorization header from it can size a buffer.
#define LA_LEAN_MAX_TOKEN (16 * 1024)

typedef struct la_lean_reply {
	la_token_type type;
	char         *access_token; // heap; release with la_lean_reply_clear
} la_lean_reply;

// la_lean_reply_clear wipes and frees the token in r. NULL-safe.
void la_lean_reply_clear(la_lean_reply *r);

// la_lean_sign writes the Authorization header value
//   "Basic " base64(user_id ":" lowercase_hex(sha256(api_token ":" unix_s)))
// into out. LA_ERR_TOO_BIG if outlen is too small.
la_err la_lean_sign(const char *user_id, const char *api_token, int64_t unix_s,
    char *out, size_t outlen);

// la_lean_body returns the compact JSON body for p (camelCase, brokerage
// lowercased, absent fields omitted), heap-allocated; NULL on ENOMEM (or
// when a field is not valid UTF-8). The body contains the refresh token:
// wipe it before freeing.
char *la_lean_body(const la_profile_cfg *p);

// la_lean_parse classifies one HTTP reply. 2xx with
// {"success":true,"tokenType":…,"accessToken":"…"} is LA_OK (tokenType the
// string Bearer/SessionToken or the number 0/1; absent means Bearer).
// success:false, 401 and 403 are LA_ERR_UNAUTHENTICATED; any other status,
// garbage, or success without a token is LA_ERR_UNAVAILABLE. On failure err
// gets the upstream's message (its "errors", joined), never a secret: any
// occurrence of a string in redact[] (NULL-terminated, may be NULL) is
// replaced with "[redacted]".
// out must be empty (zeroed or cleared); it is filled only on LA_OK. Tokens
// over LA_LEAN_MAX_TOKEN or holding control characters are UNAVAILABLE.
la_err la_lean_parse(long http_status, const char *body, size_t len,
    const char *const *redact, la_lean_reply *out, char *err, size_t errlen);

// la_lean_redact replaces, in place, every occurrence in buf of every string
// in redact[] (NULL-terminated) with "[redacted]", truncating to buflen.
// Empty strings in redact[] are ignored. Redact before truncating a message:
// a secret already cut in half by a truncation cannot be recognised.
void la_lean_redact(char *buf, size_t buflen, const char *const *redact);

typedef struct la_lean la_lean;

// la_lean_create borrows cfg (url, user_id, api_token, timeout_ms) for its
// lifetime.
la_err la_lean_create(la_lean **out, const la_config *cfg);
void   la_lean_destroy(la_lean *l);

// la_lean_fetch makes one refresh call for profile p using easy (a handle
// the caller has reset; any share handle already attached is kept). It blocks
// for at most the configured lean_api.timeout_ms, and returns early with
// LA_ERR_SHUTDOWN once *abort becomes true. Errors as la_lean_parse; transport
// failures (refused, DNS, TLS, timeout) are LA_ERR_UNAVAILABLE with curl's
// message. The Timestamp and signature are computed for this call.
// abort may be NULL (never aborted). out must be empty; filled only on LA_OK.
// On return easy holds no pointer into this call's buffers (header list,
// body, error buffer, callbacks are unset); reset it before other use.
la_err la_lean_fetch(la_lean *l, CURL *easy, const la_profile_cfg *p,
    const atomic_bool *abort, la_lean_reply *out, char *err, size_t errlen);

#endif // LA_LEAN_H
