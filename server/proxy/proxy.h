// proxy.h -- Send: HTTP calls made for clients with the profile's token
// attached (DESIGN.md, "Send semantics").
//
// la_proxy_call_new validates a SendRequest on the caller's thread (method,
// allowlist, sizes, headers) so that a refused call never reaches a worker
// or costs a token. la_proxy_start then runs the call on the worker pool and
// completes the caller's aio. The 401 -> refresh -> retry loop belongs to the
// caller (rpc), which owns the cache wait in between.
#ifndef LA_PROXY_H
#define LA_PROXY_H

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "common/err.h"
#include "config/config.h"
#include "workers/workers.h"

struct Leanauth__V1__SendRequest;

typedef struct la_proxy      la_proxy;
typedef struct la_proxy_call la_proxy_call;

// la_proxy_create parses every profile's allowed_urls (borrowing cfg) and
// runs calls on pool.
la_err la_proxy_create(la_proxy **out, const la_config *cfg, la_workers *pool,
    char *err, size_t errlen);
void   la_proxy_destroy(la_proxy *p); // NULL-safe

// la_proxy_call_new validates req for profile and, on LA_OK, makes a call
// that owns req. On failure req is freed and err says why
// (PERMISSION_DENIED, INVALID_ARGUMENT or RESOURCE_EXHAUSTED).
la_err la_proxy_call_new(la_proxy *p, size_t profile,
    struct Leanauth__V1__SendRequest *req, la_proxy_call **out, char *err,
    size_t errlen);

// la_proxy_start performs call with tok (borrowed; the call keeps its own
// reference) on a worker. Returns LA_ERR_PENDING when aio will complete
// (result 0; then read la_proxy_call_result). The aio completes early with
// LA_ERR_TIMEOUT at deadline (nng_clock ms); the transfer is then abandoned.
// When the workers stop, a transfer in progress ends with LA_ERR_SHUTDOWN.
// Any other return: nothing started, the error is in la_proxy_call_error.
la_err la_proxy_start(la_proxy *p, la_proxy_call *call, la_token *tok,
    nng_time deadline, nng_aio *aio);

la_err      la_proxy_call_result(const la_proxy_call *call);
const char *la_proxy_call_error(const la_proxy_call *call);
int         la_proxy_call_status(const la_proxy_call *call);     // HTTP status
uint64_t    la_proxy_call_generation(const la_proxy_call *call); // token used

// la_proxy_call_reset clears the response so the call can be started again.
void la_proxy_call_reset(la_proxy_call *call);

// la_proxy_call_pack encodes the SendResponse into a heap buffer.
la_err la_proxy_call_pack(const la_proxy_call *call, uint8_t **buf,
    size_t *len);

// la_proxy_call_free drops the caller's reference. NULL-safe.
void la_proxy_call_free(la_proxy_call *call);

typedef struct la_proxy_stats {
	uint64_t calls;       // transfers performed
	uint64_t connections; // new connections those transfers opened
	uint64_t denied;      // refused by the allowlist
} la_proxy_stats;
void la_proxy_stats_get(la_proxy *p, la_proxy_stats *st);

#endif // LA_PROXY_H
