// rpc.h -- the REQ/REP front door: one nng REP socket served by many
// contexts, each an aio state machine (nng's demo/async/server.c is the
// model). Decodes the RpcRequest envelope, dispatches on method, and always
// replies with an RpcResponse -- garbage included.
//
// Callbacks never block: a fresh token is answered inline; anything else is
// a parked aio (a cache wait, a Send on the worker pool) that completes later.
#ifndef LA_RPC_H
#define LA_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "common/err.h"
#include "config/config.h"

typedef struct la_proxy la_proxy;
typedef struct la_rpc   la_rpc;

// Method names on the wire.
#define LA_METHOD_GET_ACCESS_TOKEN "leanauth.v1.TokenService/GetAccessToken"
#define LA_METHOD_SEND "leanauth.v1.TokenService/Send"
#define LA_METHOD_HEALTH_CHECK "leanauth.v1.Health/Check"

// Room for everything in a request besides a Send body.
#define LA_RPC_ENVELOPE_SLACK (64 * 1024)

// la_rpc_create borrows cfg, cache and proxy (proxy may be NULL: Send is then
// UNIMPLEMENTED).
la_err la_rpc_create(la_rpc **out, const la_config *cfg, la_cache *cache,
    la_proxy *proxy);

// la_rpc_start opens the socket, listens on cfg->listen_rpc and arms
// max_inflight contexts. err gets a message on failure.
la_err la_rpc_start(la_rpc *r, char *err, size_t errlen);

// la_rpc_url is the listening URL with an ephemeral port resolved.
const char *la_rpc_url(const la_rpc *r);

// Shutdown, in this order (see daemon.c). There is deliberately no "close
// the listener" step: nng closes a listener's accepted connections with it.
// la_rpc_drain waits, at most max_ms, until no request is between receive
// and reply. Returns the number still busy.
int la_rpc_drain(la_rpc *r, int max_ms);
// la_rpc_stop closes the socket and stops every context.
void la_rpc_stop(la_rpc *r);
void la_rpc_destroy(la_rpc *r); // NULL-safe

// Counters for /metrics.
typedef struct la_rpc_stats {
	uint64_t requests;
	uint64_t by_status[17]; // indexed by wire status code
	uint64_t inflight;
} la_rpc_stats;
void la_rpc_stats_get(la_rpc *r, la_rpc_stats *st);

#endif // LA_RPC_H
