// daemon.h -- leanauthd assembled: builds every module from one config, wires
// the data flow (rpc -> cache -> workers -> lean api / proxy -> events), and
// tears it down in the one order that answers everybody.
#ifndef LA_DAEMON_H
#define LA_DAEMON_H

#include <stddef.h>

#include "common/err.h"
#include "config/config.h"

typedef struct la_daemon la_daemon;

// la_daemon_create takes ownership of cfg (also on failure).
la_err la_daemon_create(la_daemon **out, la_config *cfg, char *err,
    size_t errlen);

// la_daemon_start starts workers, cache timer, then the listeners, and logs
// one "ready" line with the bound addresses.
la_err la_daemon_start(la_daemon *d, char *err, size_t errlen);

const char *la_daemon_rpc_url(const la_daemon *d);
const char *la_daemon_events_url(const la_daemon *d);

// la_daemon_shutdown stops accepting, answers every waiting caller
// (UNAVAILABLE "shutting down"), ends retry waits and transfers at once,
// lets replies and events drain (bounded), and closes everything.
void la_daemon_shutdown(la_daemon *d);

void la_daemon_destroy(la_daemon *d); // NULL-safe; shuts down first

#endif // LA_DAEMON_H
