// test_log.c -- log lines are single JSON objects with ts, level, msg and
// the caller's fields, filtered by level.
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static int  fds[2];
static char buf[65536];

static void
setup(void)
{
	cr_assert_eq(pipe(fds), 0);
	la_log_set_fd(fds[1]);
	la_log_set_level(LA_LOG_INFO);
}

static void
teardown(void)
{
	la_log_set_fd(2);
	close(fds[0]);
	if (fds[1] >= 0) {
		close(fds[1]);
	}
}

// drain reads what was logged so far (the pipe holds it all); the write end
// is closed first so that the read sees end of file, and logging goes back
// to stderr.
static const char *
drain(void)
{
	la_log_set_fd(2);
	close(fds[1]);
	fds[1]    = -1;
	size_t  n = 0;
	ssize_t r;
	while ((r = read(fds[0], buf + n, sizeof(buf) - 1 - n)) > 0) {
		n += (size_t) r;
	}
	buf[n] = '\0';
	return (buf);
}

TestSuite(log, .init = setup, .fini = teardown);

Test(log, a_line_is_one_json_object_with_fields)
{
	la_log(LA_LOG_WARN, "token refresh attempt failed", "{s:s, s:i}",
	    "profile", "schwab", "attempt", 2);
	const char *out = drain();
	cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s",
	    out);
	json_t *j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "level")),
	    "warn");
	cr_assert_str_eq(json_string_value(json_object_get(j, "msg")),
	    "token refresh attempt failed");
	cr_assert_str_eq(json_string_value(json_object_get(j, "profile")),
	    "schwab");
	cr_assert_eq(json_integer_value(json_object_get(j, "attempt")), 2);
	const char *ts = json_string_value(json_object_get(j, "ts"));
	cr_assert_not_null(ts);
	cr_assert_eq(strlen(ts), strlen("2026-12-04T16:00:15.669Z"), "ts: %s",
	    ts);
	json_decref(j);
}

Test(log, fields_never_overwrite_ts_level_msg)
{
	la_log(LA_LOG_INFO, "real", "{s:s, s:s}", "msg", "forged", "level",
	    "debug");
	json_t *j = json_loads(drain(), 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(j, "msg")), "real");
	cr_assert_str_eq(json_string_value(json_object_get(j, "level")),
	    "info");
	json_decref(j);
}

Test(log, lines_below_the_level_are_dropped)
{
	la_log(LA_LOG_DEBUG, "hidden", NULL);
	la_log_set_level(LA_LOG_DEBUG);
	la_log(LA_LOG_DEBUG, "shown", NULL);
	const char *out = drain();
	cr_assert_null(strstr(out, "hidden"));
	cr_assert_not_null(strstr(out, "shown"));
}

Test(log, control_characters_and_quotes_are_escaped)
{
	la_log(LA_LOG_INFO, "x", "{s:s}", "value", "a\"b\nc");
	const char *out = drain();
	json_t     *j   = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "value")),
	    "a\"b\nc");
	json_decref(j);
}

Test(log, a_bad_format_is_reported_not_dropped)
{
	la_log(LA_LOG_INFO, "x", "{s:", "oops");
	json_t *j = json_loads(drain(), 0, NULL);
	cr_assert_not_null(j);
	cr_assert_not_null(json_object_get(j, "log_error"));
	json_decref(j);
}

Test(log, level_names_parse)
{
	la_log_level l;
	cr_assert(la_log_parse_level("debug", &l));
	cr_assert_eq(l, LA_LOG_DEBUG);
	cr_assert(la_log_parse_level("error", &l));
	cr_assert_eq(l, LA_LOG_ERROR);
	cr_assert_not(la_log_parse_level("verbose", &l));
}
