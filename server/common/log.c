// log.c -- JSON-lines logger on stderr.
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int la_log_min = LA_LOG_INFO;
static atomic_int la_log_fd  = 2;

static const char *const la_level_names[] = {"debug", "info", "warn", "error"};

bool
la_log_parse_level(const char *name, la_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, la_level_names[i]) == 0) {
			*out = (la_log_level) i;
			return (true);
		}
	}
	return (false);
}

void
la_log_set_level(la_log_level level)
{
	atomic_store(&la_log_min, (int) level);
}

void
la_log_set_fd(int fd)
{
	atomic_store(&la_log_fd, fd);
}

static void
la_log_ts(char *buf, size_t len)
{
	struct timespec ts;
	struct tm       tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void
la_log(la_log_level level, const char *msg, const char *fields, ...)
{
	if ((int) level < atomic_load(&la_log_min)) {
		return;
	}
	char ts[40];
	la_log_ts(ts, sizeof(ts));

	json_t *line = json_object();
	if (line == NULL) {
		return;
	}
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "level", json_string(la_level_names[level]));
	json_object_set_new(line, "msg", json_string(msg != NULL ? msg : ""));
	if (fields != NULL) {
		va_list      ap;
		json_error_t jerr;
		va_start(ap, fields);
		json_t *extra = json_vpack_ex(&jerr, 0, fields, ap);
		va_end(ap);
		if (extra != NULL) {
			// Fields never overwrite ts/level/msg.
			const char *k;
			json_t     *v;
			json_object_foreach (extra, k, v) {
				if (json_object_get(line, k) == NULL) {
					json_object_set(line, k, v);
				}
			}
			json_decref(extra);
		} else {
			json_object_set_new(line, "log_error",
			    json_string(jerr.text));
		}
	}
	char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(line);
	if (text == NULL) {
		return;
	}
	size_t n        = strlen(text);
	text[n]         = '\n'; // json_dumps' terminator becomes the newline
	const char *p   = text;
	size_t      rem = n + 1;
	int         fd  = atomic_load(&la_log_fd);
	while (rem > 0) {
		ssize_t w = write(fd, p, rem);
		if (w <= 0) {
			break;
		}
		p += w;
		rem -= (size_t) w;
	}
	free(text);
}
