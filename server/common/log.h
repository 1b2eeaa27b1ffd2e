// log.h -- structured logs: one JSON object per line on stderr,
// {"ts":"…","level":"…","msg":"…", <fields>}. Thread-safe; each line is one
// write(2) so lines from different threads never interleave.
//
// Secrets (API token, refresh token, access token, Authorization header) must
// never be passed to these functions; tests grep the log for canary values.
#ifndef LA_LOG_H
#define LA_LOG_H

#include <jansson.h> // fields are json_pack formats: json_int_t etc.
#include <stdbool.h>

typedef enum la_log_level {
	LA_LOG_DEBUG = 0,
	LA_LOG_INFO,
	LA_LOG_WARN,
	LA_LOG_ERROR,
} la_log_level;

// la_log_parse_level maps "debug", "info", "warn", "error"; false otherwise.
bool la_log_parse_level(const char *name, la_log_level *out);

// la_log_set_level drops lines below level (default LA_LOG_INFO).
void la_log_set_level(la_log_level level);

// la_log_set_fd redirects output (default 2); for tests.
void la_log_set_fd(int fd);

// la_log writes one line. fields, if not NULL, is a jansson json_pack format
// for an object whose members are merged into the line, e.g.
//   la_log(LA_LOG_INFO, "token refreshed", "{s:s, s:I}",
//          "profile", name, "generation", (json_int_t) gen);
// A bad format is reported in the line rather than dropped.
void la_log(la_log_level level, const char *msg, const char *fields, ...);

#endif // LA_LOG_H
