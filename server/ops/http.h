// http.h -- the operations endpoint on listen.http: /healthz (liveness),
// /readyz (serving RPCs, not shutting down) and /metrics (Prometheus text).
// Handlers run on nng's HTTP threads and only read counters: never blocking.
#ifndef LA_HTTP_H
#define LA_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

typedef struct la_http_hooks {
	bool (*ready)(void *arg);
	// Returns heap text (free()d by the caller), or NULL on ENOMEM.
	char *(*metrics)(void *arg);
	void *arg;
} la_http_hooks;

typedef struct la_http la_http;

// la_http_start serves addr ("host:port", IPv6 as "[::1]:port"; port 0
// picks one). err names the key on failure.
la_err la_http_start(la_http **out, const char *addr,
    const la_http_hooks *hooks, char *err, size_t errlen);

// la_http_addr is "host:port" with the bound port.
const char *la_http_addr(const la_http *h);

void la_http_stop(la_http *h); // NULL-safe; frees h

#endif // LA_HTTP_H
