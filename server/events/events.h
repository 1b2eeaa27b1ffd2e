// events.h -- the PUB socket on listen.events. Each message is the event's
// full protobuf name (the topic), one NUL byte, then the encoded event, so
// subscribers filter with nng's own subscribe option. No event carries a
// secret.
#ifndef LA_EVENTS_H
#define LA_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "common/err.h"
#include "config/config.h"

typedef struct la_events la_events;

la_err la_events_create(la_events **out, const la_config *cfg);
la_err la_events_start(la_events *ev, char *err, size_t errlen);

// la_events_url is the listening URL with an ephemeral port resolved.
const char *la_events_url(const la_events *ev);

// la_events_publish encodes e and hands it to nng without blocking (a slow
// subscriber loses messages; the others do not wait for it). Any thread.
void la_events_publish(la_events *ev, const la_cache_event *e);

// la_events_stop lingers linger_ms for queued events to leave (only when a
// subscriber is connected), then closes the socket. Call it after the last
// la_events_publish can run: leanauthd stops the cache and joins the
// workers first.
void la_events_stop(la_events *ev, int linger_ms);

// la_events_subscribers is the number of subscribers connected now: each
// receives every event published from the moment it was counted. Any
// thread; 0 for NULL.
size_t la_events_subscribers(la_events *ev);

void la_events_destroy(la_events *ev); // NULL-safe

typedef struct la_events_stats {
	uint64_t published[4]; // by la_cache_event_type
} la_events_stats;
void la_events_stats_get(la_events *ev, la_events_stats *st);

#endif // LA_EVENTS_H
