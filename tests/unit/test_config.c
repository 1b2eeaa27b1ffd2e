// test_config.c -- unit tests for server/config: defaults, every key's
// checks and exact error text, the three secret forms, and that no error
// message ever quotes a secret.
#define _GNU_SOURCE // nftw
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

// Test JSON is written with single quotes (turned into double quotes before
// parsing) so that it stays readable. LEAN and PROF are the smallest valid
// lean_api and profile.
#define LEAN "'lean_api': {'user_id': '1', 'api_token': 't'}"
#define PROF "'name': 'p', 'brokerage': 'B', 'account_id': 'A'"
#define MIN "{" LEAN ", 'profiles': [{" PROF "}]}"
#define TOP(x) "{" LEAN ", 'profiles': [{" PROF "}], " x "}"
#define IN_PROFILE(x) "{" LEAN ", 'profiles': [{" PROF ", " x "}]}"
#define IN_LEAN(x)                                                            \
	"{'lean_api': {'user_id': '1', " x "}, 'profiles': [{" PROF "}]}"
#define IN_LISTEN(x) TOP("'listen': {" x "}")
#define IN_SEND(x) IN_PROFILE("'send': {" x "}")
#define IN_BACKOFF(x) IN_PROFILE("'retry_backoff': {" x "}")

#define CANARY "CANARY-SECRET-123"

static char tmpdir[64];
static char err[1024];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return (remove(path));
}

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/la_test_config_XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	err[0] = '\0';
}

static void
teardown(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = setup, .fini = teardown);

// tmp_path returns tmpdir/name in one of a few rotating static buffers.
static const char *
tmp_path(const char *name)
{
	static char bufs[4][512];
	static int  next;
	char       *p = bufs[next++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s/%s", tmpdir, name);
	return (p);
}

static const char *
write_file(const char *name, const char *data, size_t len)
{
	const char *path = tmp_path(name);
	FILE       *f    = fopen(path, "wb");

	cr_assert_not_null(f, "fopen %s", path);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
	return (path);
}

static const char *
write_str(const char *name, const char *s)
{
	return (write_file(name, s, strlen(s)));
}

static void
sq_to_dq(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\'') {
			*s = '"';
		}
	}
}

static la_config *
parse(const char *squoted)
{
	char      *json = strdup(squoted);
	la_config *cfg;

	cr_assert_not_null(json);
	sq_to_dq(json);
	cfg = la_config_parse(json, err, sizeof(err));
	free(json);
	return (cfg);
}

static la_config *parsef(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static la_config *
parsef(const char *fmt, ...)
{
	char       buf[4096];
	va_list    ap;
	la_config *cfg;

	va_start(ap, fmt);
	cr_assert_lt(vsnprintf(buf, sizeof(buf), fmt, ap), (int) sizeof(buf));
	va_end(ap);
	cfg = parse(buf);
	return (cfg);
}

static la_config *
expect_ok(const char *squoted)
{
	la_config *cfg = parse(squoted);
	cr_assert_not_null(cfg, "rejected %s: %s", squoted, err);
	return (cfg);
}

static void
expect_ok_free(const char *squoted)
{
	la_config_destroy(expect_ok(squoted));
}

static void
expect_err(const char *squoted, const char *want)
{
	la_config *cfg = parse(squoted);
	if (cfg != NULL) {
		la_config_destroy(cfg);
		cr_assert_fail("accepted %s", squoted);
	}
	cr_assert_str_eq(err, want, "for %s", squoted);
}

// ---- defaults and the design example ----

Test(config, minimal_config_gets_every_default)
{
	la_config            *cfg = expect_ok(MIN);
	const la_profile_cfg *p   = &cfg->profiles[0];

	cr_assert_str_eq(err, "");
	cr_assert_str_eq(cfg->listen_rpc, "tcp://127.0.0.1:7450");
	cr_assert_str_eq(cfg->listen_events, "tcp://127.0.0.1:7451");
	cr_assert_str_eq(cfg->listen_http, "127.0.0.1:7452");
	cr_assert_not(cfg->has_tls);
	cr_assert_null(cfg->tls.cert_file);
	cr_assert_null(cfg->tls.key_file);
	cr_assert_null(cfg->tls.ca_file);
	cr_assert_not(cfg->tls.require_client_cert);
	cr_assert_eq(cfg->workers, 8);
	cr_assert_eq(cfg->queue_size, 1024);
	cr_assert_eq(cfg->max_inflight, 1024);
	cr_assert_eq(cfg->default_timeout_ms, 30000);
	cr_assert_eq(cfg->log_level, LA_LOG_INFO);
	cr_assert_str_eq(cfg->lean_url,
	    "https://www.quantconnect.com/api/v2/");
	cr_assert_str_eq(cfg->lean_user_id, "1");
	cr_assert_str_eq(cfg->lean_api_token, "t");
	cr_assert_eq(cfg->lean_timeout_ms, 10000);

	cr_assert_eq(cfg->n_profiles, 1);
	cr_assert_str_eq(p->name, "p");
	cr_assert_str_eq(p->brokerage, "B");
	cr_assert_str_eq(p->account_id, "A");
	cr_assert_null(p->refresh_token);
	cr_assert_null(p->deploy_id);
	cr_assert_eq(p->token_lifetime_s, 1800);
	cr_assert_eq(p->offset_before_expiration_s, 120);
	cr_assert_eq(p->max_retry_count, 3);
	cr_assert_eq(p->retry_interval_ms, 5000);
	cr_assert_eq(p->retry_backoff.multiplier, 1.0);
	cr_assert_eq(p->retry_backoff.max_interval_ms, 5000);
	cr_assert_eq(p->retry_backoff.jitter, 0.0);
	cr_assert_eq(p->refresh_ahead_s, 420); // (1800 - 120) / 4
	cr_assert_eq(p->send.n_allowed_urls, 0);
	cr_assert_null(p->send.allowed_urls);
	cr_assert_eq(p->send.timeout_ms, 30000);
	cr_assert_eq(p->send.max_body_bytes, 8 * 1024 * 1024);
	la_config_destroy(cfg);
}

Test(config, design_example_parses_in_full)
{
	const char           *api = write_str("api-token", "api-key\n");
	const char           *rt  = write_str("refresh-token", "refresh\n");
	const la_profile_cfg *p;
	la_config            *cfg;

	cfg = parsef(
	    "{"
	    "'listen': { 'rpc': 'tcp://127.0.0.1:7450', "
	    "'events': 'tcp://127.0.0.1:7451', 'http': '127.0.0.1:7452' },"
	    "'workers': 8,"
	    "'lean_api': { 'url': 'https://www.quantconnect.com/api/v2/', "
	    "'user_id': '123', 'api_token_file': '%s', 'timeout_ms': 10000 },"
	    "'profiles': [ {"
	    "'name': 'schwab', 'brokerage': 'CharlesSchwab', 'account_id': "
	    "'A1', 'refresh_token_file': '%s', 'deploy_id': null,"
	    "'token_lifetime_s': 1800, 'offset_before_expiration_s': 120,"
	    "'max_retry_count': 3, 'retry_interval_ms': 5000,"
	    "'retry_backoff': { 'multiplier': 2.0, 'max_interval_ms': 60000, "
	    "'jitter': 0.1 },"
	    "'refresh_ahead_s': 420,"
	    "'send': { 'allowed_urls': ['https://api.schwabapi.com/'], "
	    "'timeout_ms': 30000, 'max_body_bytes': 8388608 }"
	    "} ]"
	    "}",
	    api, rt);
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg->listen_rpc, "tcp://127.0.0.1:7450");
	cr_assert_str_eq(cfg->listen_events, "tcp://127.0.0.1:7451");
	cr_assert_str_eq(cfg->listen_http, "127.0.0.1:7452");
	cr_assert_eq(cfg->workers, 8);
	cr_assert_str_eq(cfg->lean_url,
	    "https://www.quantconnect.com/api/v2/");
	cr_assert_str_eq(cfg->lean_user_id, "123");
	cr_assert_str_eq(cfg->lean_api_token, "api-key");
	cr_assert_eq(cfg->lean_timeout_ms, 10000);
	cr_assert_eq(cfg->n_profiles, 1);
	p = &cfg->profiles[0];
	cr_assert_str_eq(p->name, "schwab");
	cr_assert_str_eq(p->brokerage, "CharlesSchwab");
	cr_assert_str_eq(p->account_id, "A1");
	cr_assert_str_eq(p->refresh_token, "refresh");
	cr_assert_null(p->deploy_id);
	cr_assert_eq(p->token_lifetime_s, 1800);
	cr_assert_eq(p->offset_before_expiration_s, 120);
	cr_assert_eq(p->max_retry_count, 3);
	cr_assert_eq(p->retry_interval_ms, 5000);
	cr_assert_eq(p->retry_backoff.multiplier, 2.0);
	cr_assert_eq(p->retry_backoff.max_interval_ms, 60000);
	cr_assert_eq(p->retry_backoff.jitter, 0.1);
	cr_assert_eq(p->refresh_ahead_s, 420);
	cr_assert_eq(p->send.n_allowed_urls, 1);
	cr_assert_str_eq(p->send.allowed_urls[0],
	    "https://api.schwabapi.com/");
	cr_assert_eq(p->send.timeout_ms, 30000);
	cr_assert_eq(p->send.max_body_bytes, 8388608);
	la_config_destroy(cfg);
}

Test(config, every_top_level_key_is_read)
{
	la_config *cfg = expect_ok(TOP("'listen': {'rpc': 'ipc:///tmp/r', "
	                               "'events': 'inproc://ev', 'http': ''},"
	                               "'workers': 3, 'queue_size': 17, "
	                               "'max_inflight': 9, "
	                               "'default_timeout_ms': 1234, "
	                               "'log_level': 'debug'"));

	cr_assert_str_eq(cfg->listen_rpc, "ipc:///tmp/r");
	cr_assert_str_eq(cfg->listen_events, "inproc://ev");
	cr_assert_str_eq(cfg->listen_http, "");
	cr_assert_eq(cfg->workers, 3);
	cr_assert_eq(cfg->queue_size, 17);
	cr_assert_eq(cfg->max_inflight, 9);
	cr_assert_eq(cfg->default_timeout_ms, 1234);
	cr_assert_eq(cfg->log_level, LA_LOG_DEBUG);
	la_config_destroy(cfg);
}

Test(config, several_profiles_keep_their_order)
{
	la_config *cfg = expect_ok("{" LEAN ", 'profiles': ["
	                           "{'name': 'a', 'brokerage': 'B1', "
	                           "'account_id': 'X', 'deploy_id': 'd-1'},"
	                           "{'name': 'b', 'brokerage': 'B2', "
	                           "'account_id': 'Y'}]}");

	cr_assert_eq(cfg->n_profiles, 2);
	cr_assert_str_eq(cfg->profiles[0].name, "a");
	cr_assert_str_eq(cfg->profiles[0].deploy_id, "d-1");
	cr_assert_str_eq(cfg->profiles[1].name, "b");
	cr_assert_str_eq(cfg->profiles[1].brokerage, "B2");
	la_config_destroy(cfg);
}

// ---- lean_api ----

Test(config, lean_url_without_trailing_slash_gets_one)
{
	la_config *cfg = expect_ok(
	    IN_LEAN("'api_token': 't', 'url': 'http://127.0.0.1:9/api'"));
	cr_assert_str_eq(cfg->lean_url, "http://127.0.0.1:9/api/");
	la_config_destroy(cfg);
}

Test(config, lean_url_with_trailing_slash_is_kept)
{
	la_config *cfg =
	    expect_ok(IN_LEAN("'api_token': 't', 'url': 'https://h/api/v2/'"));
	cr_assert_str_eq(cfg->lean_url, "https://h/api/v2/");
	la_config_destroy(cfg);
}

Test(config, lean_url_bare_host_gets_slash)
{
	la_config *cfg =
	    expect_ok(IN_LEAN("'api_token': 't', 'url': 'https://h:8443'"));
	cr_assert_str_eq(cfg->lean_url, "https://h:8443/");
	la_config_destroy(cfg);
}

Test(config, lean_url_must_be_http_without_userinfo)
{
	expect_err(IN_LEAN("'api_token': 't', 'url': 'ftp://h/api/'"),
	    "lean_api.url: must be an http:// or https:// URL");
	expect_err(IN_LEAN("'api_token': 't', 'url': 'https://u:pw@h/api/'"),
	    "lean_api.url: must not contain a user or password");
	expect_err(IN_LEAN("'api_token': 't', 'url': 'https://h/api/?x=1'"),
	    "lean_api.url: must not contain a query or fragment");
	expect_err(IN_LEAN("'api_token': 't', 'url': 'not a url'"),
	    "lean_api.url: not a valid URL (Bad scheme)");
}

Test(config, numeric_user_id_becomes_decimal_string)
{
	la_config *cfg =
	    expect_ok("{'lean_api': {'user_id': 123456, 'api_token': 't'}, "
	              "'profiles': [{" PROF "}]}");
	cr_assert_str_eq(cfg->lean_user_id, "123456");
	la_config_destroy(cfg);
}

Test(config, user_id_of_wrong_type_is_refused)
{
	const char *want = "lean_api.user_id: must be a non-empty string or a "
	                   "non-negative integer";
	expect_err("{'lean_api': {'user_id': -1, 'api_token': 't'}, "
	           "'profiles': [{" PROF "}]}",
	    want);
	expect_err("{'lean_api': {'user_id': 1.5, 'api_token': 't'}, "
	           "'profiles': [{" PROF "}]}",
	    want);
	expect_err("{'lean_api': {'user_id': '', 'api_token': 't'}, "
	           "'profiles': [{" PROF "}]}",
	    want);
	expect_err("{'lean_api': {'user_id': true, 'api_token': 't'}, "
	           "'profiles': [{" PROF "}]}",
	    want);
}

Test(config, lean_timeout_ms_range)
{
	expect_err(IN_LEAN("'api_token': 't', 'timeout_ms': 0"),
	    "lean_api.timeout_ms: must be an integer between 1 and 3600000");
	expect_err(IN_LEAN("'api_token': 't', 'timeout_ms': 3600001"),
	    "lean_api.timeout_ms: must be an integer between 1 and 3600000");
	expect_ok_free(IN_LEAN("'api_token': 't', 'timeout_ms': 3600000"));
	expect_ok_free(IN_LEAN("'api_token': 't', 'timeout_ms': 1"));
}

// ---- secrets ----

Test(config, api_token_inline)
{
	la_config *cfg = expect_ok(IN_LEAN("'api_token': 'tok 42'"));
	cr_assert_str_eq(cfg->lean_api_token, "tok 42");
	la_config_destroy(cfg);
}

Test(config, api_token_file_strips_trailing_whitespace)
{
	const char *f   = write_str("tok", "  tok-42 x\r\n\n \t");
	la_config  *cfg = parsef(IN_LEAN("'api_token_file': '%s'"), f);

	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg->lean_api_token, "  tok-42 x");
	la_config_destroy(cfg);
}

Test(config, api_token_env)
{
	la_config *cfg;

	cr_assert_eq(setenv("LA_TEST_API_TOKEN", "from-env\n", 1), 0);
	cfg = expect_ok(IN_LEAN("'api_token_env': 'LA_TEST_API_TOKEN'"));
	cr_assert_str_eq(cfg->lean_api_token, "from-env\n"); // verbatim
	la_config_destroy(cfg);
	unsetenv("LA_TEST_API_TOKEN");
}

Test(config, refresh_token_each_form)
{
	const char *f = write_str("rt", "rt-file\n");
	la_config  *cfg;

	cr_assert_eq(setenv("LA_TEST_RT", "rt-env", 1), 0);
	cfg = parsef("{" LEAN ", 'profiles': ["
	             "{'name': 'a', 'brokerage': 'B', 'account_id': 'A', "
	             "'refresh_token': 'rt-inline'},"
	             "{'name': 'b', 'brokerage': 'B', 'account_id': 'A', "
	             "'refresh_token_file': '%s'},"
	             "{'name': 'c', 'brokerage': 'B', 'account_id': 'A', "
	             "'refresh_token_env': 'LA_TEST_RT'},"
	             "{'name': 'd', 'brokerage': 'B', 'account_id': 'A', "
	             "'refresh_token': null}]}",
	    f);
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg->profiles[0].refresh_token, "rt-inline");
	cr_assert_str_eq(cfg->profiles[1].refresh_token, "rt-file");
	cr_assert_str_eq(cfg->profiles[2].refresh_token, "rt-env");
	cr_assert_null(cfg->profiles[3].refresh_token);
	la_config_destroy(cfg);
	unsetenv("LA_TEST_RT");
}

Test(config, two_api_token_forms_are_refused)
{
	expect_err(IN_LEAN("'api_token': 't', 'api_token_file': '/x'"),
	    "lean_api.api_token: conflicts with lean_api.api_token_file (give "
	    "exactly one of api_token, api_token_file, api_token_env)");
	expect_err(IN_LEAN("'api_token_env': 'X', 'api_token_file': '/x'"),
	    "lean_api.api_token_file: conflicts with lean_api.api_token_env "
	    "(give exactly one of api_token, api_token_file, api_token_env)");
}

Test(config, two_refresh_token_forms_are_refused)
{
	expect_err(
	    IN_PROFILE("'refresh_token': 'r', 'refresh_token_env': 'E'"),
	    "profiles[0].refresh_token: conflicts with "
	    "profiles[0].refresh_token_env (give exactly one of "
	    "refresh_token, refresh_token_file, refresh_token_env)");
}

Test(config, null_secret_form_does_not_count)
{
	la_config *cfg =
	    expect_ok(IN_LEAN("'api_token': 't', 'api_token_file': null"));
	cr_assert_str_eq(cfg->lean_api_token, "t");
	la_config_destroy(cfg);
}

Test(config, secret_file_unreadable_names_key_and_path)
{
	const char *f   = tmp_path("missing");
	la_config  *cfg = parsef(IN_LEAN("'api_token_file': '%s'"), f);
	char        want[1024];

	cr_assert_null(cfg);
	snprintf(want, sizeof(want),
	    "lean_api.api_token_file: cannot read %s: No such file or "
	    "directory",
	    f);
	cr_assert_str_eq(err, want);
}

Test(config, secret_file_empty_is_refused)
{
	const char *f   = write_str("empty", " \n\n");
	la_config  *cfg = parsef(IN_PROFILE("'refresh_token_file': '%s'"), f);
	char        want[1024];

	cr_assert_null(cfg);
	snprintf(want, sizeof(want),
	    "profiles[0].refresh_token_file: %s is empty", f);
	cr_assert_str_eq(err, want);
}

Test(config, secret_file_cap_is_64k)
{
	static char big[64 * 1024 + 1];
	const char *f;
	la_config  *cfg;
	char        want[1024];

	memset(big, 'k', sizeof(big));
	f   = write_file("exact", big, 64 * 1024);
	cfg = parsef(IN_LEAN("'api_token_file': '%s'"), f);
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_eq(strlen(cfg->lean_api_token), 64 * 1024);
	la_config_destroy(cfg);

	f   = write_file("big", big, sizeof(big));
	cfg = parsef(IN_LEAN("'api_token_file': '%s'"), f);
	cr_assert_null(cfg);
	snprintf(want, sizeof(want),
	    "lean_api.api_token_file: %s is larger than 65536 bytes", f);
	cr_assert_str_eq(err, want);
}

Test(config, secret_file_with_nul_byte_is_refused)
{
	const char *f   = write_file("nul", "ab\0cd", 5);
	la_config  *cfg = parsef(IN_LEAN("'api_token_file': '%s'"), f);
	char        want[1024];

	cr_assert_null(cfg);
	snprintf(want, sizeof(want),
	    "lean_api.api_token_file: %s contains a NUL byte", f);
	cr_assert_str_eq(err, want);
}

Test(config, secret_env_must_be_set_and_non_empty)
{
	unsetenv("LA_TEST_UNSET");
	expect_err(IN_LEAN("'api_token_env': 'LA_TEST_UNSET'"),
	    "lean_api.api_token_env: environment variable LA_TEST_UNSET "
	    "is not set");
	cr_assert_eq(setenv("LA_TEST_EMPTY", "", 1), 0);
	expect_err(IN_PROFILE("'refresh_token_env': 'LA_TEST_EMPTY'"),
	    "profiles[0].refresh_token_env: environment variable "
	    "LA_TEST_EMPTY is empty");
	unsetenv("LA_TEST_EMPTY");
}

Test(config, secret_forms_of_wrong_type_are_refused)
{
	expect_err(IN_LEAN("'api_token': 42"),
	    "lean_api.api_token: must be a string");
	expect_err(IN_LEAN("'api_token': ''"),
	    "lean_api.api_token: must not be empty");
	expect_err(IN_LEAN("'api_token_file': ''"),
	    "lean_api.api_token_file: must be a non-empty string");
	expect_err(IN_LEAN("'api_token_env': ['X']"),
	    "lean_api.api_token_env: must be a non-empty string");
}

// ---- required keys ----

Test(config, missing_lean_api_names_user_id)
{
	expect_err("{'profiles': [{" PROF "}]}", "lean_api.user_id: required");
}

Test(config, missing_user_id)
{
	expect_err("{'lean_api': {'api_token': 't'}, 'profiles': [{" PROF
	           "}]}",
	    "lean_api.user_id: required");
}

Test(config, missing_api_token)
{
	expect_err("{'lean_api': {'user_id': '1'}, 'profiles': [{" PROF "}]}",
	    "lean_api.api_token: required (or api_token_file or "
	    "api_token_env)");
}

Test(config, missing_profiles)
{
	expect_err("{" LEAN "}", "profiles: required");
	expect_err("{" LEAN ", 'profiles': null}", "profiles: required");
}

Test(config, empty_profiles)
{
	expect_err("{" LEAN ", 'profiles': []}",
	    "profiles: must be a non-empty array of objects");
}

Test(config, missing_profile_name)
{
	expect_err("{" LEAN ", 'profiles': [{'brokerage': 'B', "
	           "'account_id': 'A'}]}",
	    "profiles[0].name: required");
}

Test(config, missing_profile_brokerage)
{
	expect_err("{" LEAN ", 'profiles': [{" PROF "}, {'name': 'q', "
	           "'account_id': 'A'}]}",
	    "profiles[1].brokerage: required");
}

Test(config, missing_profile_account_id)
{
	expect_err("{" LEAN ", 'profiles': [{'name': 'p', 'brokerage': 'B', "
	           "'account_id': null}]}",
	    "profiles[0].account_id: required");
}

// ---- unknown keys ----

Test(config, unknown_top_level_key)
{
	expect_err(TOP("'worker': 4"), "worker: unknown key");
}

Test(config, unknown_listen_key)
{
	expect_err(IN_LISTEN("'rcp': 'tcp://127.0.0.1:1'"),
	    "listen.rcp: unknown key");
}

Test(config, unknown_tls_key)
{
	expect_err(IN_LISTEN("'tls': {'cert': 'c.pem'}"),
	    "listen.tls.cert: unknown key");
}

Test(config, unknown_lean_api_key)
{
	expect_err(IN_LEAN("'api_token': 't', 'api_url': 'https://h/'"),
	    "lean_api.api_url: unknown key");
}

Test(config, unknown_profile_key)
{
	expect_err("{" LEAN ", 'profiles': [{" PROF "}, {'name': 'q', "
	           "'brokerage': 'B', 'account_id': 'A', 'acount': 'x'}]}",
	    "profiles[1].acount: unknown key");
}

Test(config, unknown_send_key)
{
	expect_err("{" LEAN ", 'profiles': [{" PROF "}, {'name': 'q', "
	           "'brokerage': 'B', 'account_id': 'A', "
	           "'send': {'alowed_urls': []}}]}",
	    "profiles[1].send.alowed_urls: unknown key");
}

Test(config, unknown_retry_backoff_key)
{
	expect_err(IN_BACKOFF("'factor': 2"),
	    "profiles[0].retry_backoff.factor: unknown key");
}

// ---- wrong types ----

Test(config, integer_keys_refuse_other_types)
{
	expect_err(TOP("'workers': '8'"),
	    "workers: must be an integer between 1 and 256");
	expect_err(TOP("'workers': 8.0"),
	    "workers: must be an integer between 1 and 256");
	expect_err(TOP("'workers': true"),
	    "workers: must be an integer between 1 and 256");
	expect_err(IN_PROFILE("'token_lifetime_s': '1800'"),
	    "profiles[0].token_lifetime_s: must be an integer between 1 and "
	    "31536000");
}

Test(config, string_keys_refuse_other_types)
{
	expect_err(IN_PROFILE("'deploy_id': 5"),
	    "profiles[0].deploy_id: must be a string");
	expect_err("{" LEAN ", 'profiles': [{'name': 1, 'brokerage': 'B', "
	           "'account_id': 'A'}]}",
	    "profiles[0].name: must be a string");
	expect_err(IN_LISTEN("'rpc': 7450"), "listen.rpc: must be a string");
	expect_err(TOP("'log_level': 1"),
	    "log_level: must be one of debug, info, warn, error");
}

Test(config, object_keys_refuse_other_types)
{
	expect_err(TOP("'listen': 'tcp://x:1'"), "listen: must be an object");
	expect_err("{'lean_api': [], 'profiles': [{" PROF "}]}",
	    "lean_api: must be an object");
	expect_err(IN_PROFILE("'send': []"),
	    "profiles[0].send: must be an object");
	expect_err(IN_PROFILE("'retry_backoff': 2"),
	    "profiles[0].retry_backoff: must be an object");
	expect_err(IN_LISTEN("'tls': true"), "listen.tls: must be an object");
	expect_err("{" LEAN ", 'profiles': [{" PROF "}, 'q']}",
	    "profiles[1]: must be an object");
	expect_err("{" LEAN ", 'profiles': {'name': 'p'}}",
	    "profiles: must be a non-empty array of objects");
}

Test(config, array_and_bool_keys_refuse_other_types)
{
	expect_err(IN_SEND("'allowed_urls': 'https://h/'"),
	    "profiles[0].send.allowed_urls: must be an array of strings");
	expect_err(IN_SEND("'allowed_urls': [1]"),
	    "profiles[0].send.allowed_urls[0]: must be a string");
	expect_err(IN_LISTEN("'tls': {'require_client_cert': 'yes'}"),
	    "listen.tls.require_client_cert: must be true or false");
	expect_err(IN_BACKOFF("'multiplier': '2'"),
	    "profiles[0].retry_backoff.multiplier: must be a number between 1 "
	    "and 100");
}

Test(config, root_must_be_an_object)
{
	la_config *cfg = la_config_parse("[1, 2]", err, sizeof(err));
	cr_assert_null(cfg);
	cr_assert_str_eq(err, "config: must be a JSON object");
}

Test(config, nulls_mean_absent)
{
	la_config *cfg = expect_ok(TOP("'listen': null, 'workers': null, "
	                               "'log_level': null"));
	cr_assert_str_eq(cfg->listen_rpc, "tcp://127.0.0.1:7450");
	cr_assert_eq(cfg->workers, 8);
	cr_assert_eq(cfg->log_level, LA_LOG_INFO);
	la_config_destroy(cfg);
}

Test(config, null_deploy_id_is_absent)
{
	la_config *cfg = expect_ok(IN_PROFILE("'deploy_id': null, "
	                                      "'retry_backoff': null, "
	                                      "'send': null"));
	cr_assert_null(cfg->profiles[0].deploy_id);
	cr_assert_eq(cfg->profiles[0].retry_backoff.multiplier, 1.0);
	cr_assert_eq(cfg->profiles[0].send.timeout_ms, 30000);
	la_config_destroy(cfg);
}

Test(config, empty_deploy_id_is_refused)
{
	expect_err(IN_PROFILE("'deploy_id': ''"),
	    "profiles[0].deploy_id: must not be empty");
}

// ---- ranges: top level ----

Test(config, workers_range)
{
	expect_err(TOP("'workers': 0"),
	    "workers: must be an integer between 1 and 256");
	expect_err(TOP("'workers': 257"),
	    "workers: must be an integer between 1 and 256");
	expect_err(TOP("'workers': -1"),
	    "workers: must be an integer between 1 and 256");
	expect_ok_free(TOP("'workers': 1"));
	expect_ok_free(TOP("'workers': 256"));
}

Test(config, queue_size_range)
{
	expect_err(TOP("'queue_size': 0"),
	    "queue_size: must be an integer between 1 and 65536");
	expect_err(TOP("'queue_size': 65537"),
	    "queue_size: must be an integer between 1 and 65536");
	expect_ok_free(TOP("'queue_size': 65536"));
}

Test(config, max_inflight_range)
{
	expect_err(TOP("'max_inflight': 0"),
	    "max_inflight: must be an integer between 1 and 65536");
	expect_err(TOP("'max_inflight': 65537"),
	    "max_inflight: must be an integer between 1 and 65536");
	expect_ok_free(TOP("'max_inflight': 65536"));
}

Test(config, default_timeout_ms_range)
{
	expect_err(TOP("'default_timeout_ms': 0"),
	    "default_timeout_ms: must be an integer between 1 and 3600000");
	expect_err(TOP("'default_timeout_ms': 3600001"),
	    "default_timeout_ms: must be an integer between 1 and 3600000");
	expect_ok_free(TOP("'default_timeout_ms': 3600000"));
}

Test(config, log_level_values)
{
	static const struct {
		const char  *name;
		la_log_level level;
	} levels[] = {{"debug", LA_LOG_DEBUG}, {"info", LA_LOG_INFO},
	    {"warn", LA_LOG_WARN}, {"error", LA_LOG_ERROR}};

	for (size_t i = 0; i < 4; i++) {
		la_config *cfg =
		    parsef(TOP("'log_level': '%s'"), levels[i].name);
		cr_assert_not_null(cfg, "%s", err);
		cr_assert_eq(cfg->log_level, levels[i].level);
		la_config_destroy(cfg);
	}
	expect_err(TOP("'log_level': 'trace'"),
	    "log_level: must be one of debug, info, warn, error");
	expect_err(TOP("'log_level': 'INFO'"),
	    "log_level: must be one of debug, info, warn, error");
}

// ---- ranges: profiles ----

Test(config, token_lifetime_s_range)
{
	expect_err(IN_PROFILE("'token_lifetime_s': 0"),
	    "profiles[0].token_lifetime_s: must be an integer between 1 and "
	    "31536000");
	expect_err(IN_PROFILE("'token_lifetime_s': 31536001"),
	    "profiles[0].token_lifetime_s: must be an integer between 1 and "
	    "31536000");
}

Test(config, offset_must_be_below_token_lifetime)
{
	expect_err(IN_PROFILE("'token_lifetime_s': 100, "
	                      "'offset_before_expiration_s': 100"),
	    "profiles[0].offset_before_expiration_s: must be less than "
	    "token_lifetime_s (100)");
	expect_err(IN_PROFILE("'offset_before_expiration_s': 1800"),
	    "profiles[0].offset_before_expiration_s: must be less than "
	    "token_lifetime_s (1800)");
	expect_err(IN_PROFILE("'offset_before_expiration_s': -1"),
	    "profiles[0].offset_before_expiration_s: must be an integer "
	    "between 0 and 31536000");
	expect_ok_free(IN_PROFILE("'token_lifetime_s': 100, "
	                          "'offset_before_expiration_s': 99"));
	expect_ok_free(IN_PROFILE("'offset_before_expiration_s': 0"));
}

Test(config, refresh_ahead_s_below_usable_lifetime)
{
	// usable = 1000 - 200 = 800
	expect_err(IN_PROFILE("'token_lifetime_s': 1000, "
	                      "'offset_before_expiration_s': 200, "
	                      "'refresh_ahead_s': 800"),
	    "profiles[0].refresh_ahead_s: must be an integer between 0 and "
	    "799");
	expect_err(IN_PROFILE("'refresh_ahead_s': -1"),
	    "profiles[0].refresh_ahead_s: must be an integer between 0 and "
	    "1679");
	expect_ok_free(IN_PROFILE("'token_lifetime_s': 1000, "
	                          "'offset_before_expiration_s': 200, "
	                          "'refresh_ahead_s': 799"));
	expect_ok_free(IN_PROFILE("'refresh_ahead_s': 0"));
}

Test(config, refresh_ahead_s_defaults_to_quarter_of_usable_lifetime)
{
	la_config *cfg = expect_ok(IN_PROFILE(
	    "'token_lifetime_s': 1000, 'offset_before_expiration_s': 200"));
	cr_assert_eq(cfg->profiles[0].refresh_ahead_s, 200);
	la_config_destroy(cfg);
}

Test(config, max_retry_count_range)
{
	expect_err(IN_PROFILE("'max_retry_count': 101"),
	    "profiles[0].max_retry_count: must be an integer between 0 and "
	    "100");
	expect_err(IN_PROFILE("'max_retry_count': -1"),
	    "profiles[0].max_retry_count: must be an integer between 0 and "
	    "100");
	expect_ok_free(IN_PROFILE("'max_retry_count': 0"));
	expect_ok_free(IN_PROFILE("'max_retry_count': 100"));
}

Test(config, retry_interval_ms_range)
{
	expect_err(IN_PROFILE("'retry_interval_ms': 3600001"),
	    "profiles[0].retry_interval_ms: must be an integer between 0 and "
	    "3600000");
	expect_err(IN_PROFILE("'retry_interval_ms': -5"),
	    "profiles[0].retry_interval_ms: must be an integer between 0 and "
	    "3600000");
	expect_ok_free(IN_PROFILE("'retry_interval_ms': 0"));
	expect_ok_free(IN_PROFILE("'retry_interval_ms': 3600000"));
}

Test(config, send_timeout_ms_range)
{
	expect_err(IN_SEND("'timeout_ms': 0"),
	    "profiles[0].send.timeout_ms: must be an integer between 1 and "
	    "3600000");
	expect_err(IN_SEND("'timeout_ms': 3600001"),
	    "profiles[0].send.timeout_ms: must be an integer between 1 and "
	    "3600000");
	expect_ok_free(IN_SEND("'timeout_ms': 3600000"));
}

Test(config, max_body_bytes_range)
{
	la_config *cfg;

	expect_err(IN_SEND("'max_body_bytes': 0"),
	    "profiles[0].send.max_body_bytes: must be an integer between 1 "
	    "and 268435456");
	expect_err(IN_SEND("'max_body_bytes': 268435457"),
	    "profiles[0].send.max_body_bytes: must be an integer between 1 "
	    "and 268435456");
	cfg = expect_ok(IN_SEND("'max_body_bytes': 268435456"));
	cr_assert_eq(cfg->profiles[0].send.max_body_bytes, 268435456);
	la_config_destroy(cfg);
	expect_ok_free(IN_SEND("'max_body_bytes': 1"));
}

// ---- retry_backoff ----

Test(config, retry_backoff_absent_is_constant_interval)
{
	la_config *cfg = expect_ok(IN_PROFILE("'retry_interval_ms': 700"));
	cr_assert_eq(cfg->profiles[0].retry_backoff.multiplier, 1.0);
	cr_assert_eq(cfg->profiles[0].retry_backoff.max_interval_ms, 700);
	cr_assert_eq(cfg->profiles[0].retry_backoff.jitter, 0.0);
	la_config_destroy(cfg);
}

Test(config, retry_backoff_present_has_its_own_defaults)
{
	la_config *cfg = expect_ok(IN_BACKOFF(""));
	cr_assert_eq(cfg->profiles[0].retry_backoff.multiplier, 2.0);
	cr_assert_eq(cfg->profiles[0].retry_backoff.max_interval_ms, 60000);
	cr_assert_eq(cfg->profiles[0].retry_backoff.jitter, 0.1);
	la_config_destroy(cfg);
}

Test(config, retry_backoff_values_are_read)
{
	la_config *cfg = expect_ok(IN_BACKOFF(
	    "'multiplier': 3, 'max_interval_ms': 9000, 'jitter': 0.5"));
	cr_assert_eq(cfg->profiles[0].retry_backoff.multiplier, 3.0);
	cr_assert_eq(cfg->profiles[0].retry_backoff.max_interval_ms, 9000);
	cr_assert_eq(cfg->profiles[0].retry_backoff.jitter, 0.5);
	la_config_destroy(cfg);
}

Test(config, retry_backoff_multiplier_range)
{
	expect_err(IN_BACKOFF("'multiplier': 0.5"),
	    "profiles[0].retry_backoff.multiplier: must be a number between 1 "
	    "and 100");
	expect_err(IN_BACKOFF("'multiplier': 100.5"),
	    "profiles[0].retry_backoff.multiplier: must be a number between 1 "
	    "and 100");
	expect_ok_free(IN_BACKOFF("'multiplier': 1.0"));
}

Test(config, retry_backoff_jitter_range)
{
	expect_err(IN_BACKOFF("'jitter': 1.5"),
	    "profiles[0].retry_backoff.jitter: must be a number between 0 and "
	    "1");
	expect_err(IN_BACKOFF("'jitter': -0.1"),
	    "profiles[0].retry_backoff.jitter: must be a number between 0 and "
	    "1");
	expect_ok_free(IN_BACKOFF("'jitter': 0"));
	expect_ok_free(IN_BACKOFF("'jitter': 1"));
}

Test(config, retry_backoff_max_interval_not_below_retry_interval)
{
	expect_err(IN_PROFILE("'retry_interval_ms': 5000, "
	                      "'retry_backoff': {'max_interval_ms': 4999}"),
	    "profiles[0].retry_backoff.max_interval_ms: must be at least "
	    "retry_interval_ms (5000)");
	expect_err(IN_PROFILE("'retry_interval_ms': 70000, "
	                      "'retry_backoff': {}"),
	    "profiles[0].retry_backoff.max_interval_ms: must be at least "
	    "retry_interval_ms (70000)");
	expect_ok_free(IN_PROFILE("'retry_interval_ms': 5000, "
	                          "'retry_backoff': "
	                          "{'max_interval_ms': 5000}"));
}

// ---- profile names ----

Test(config, duplicate_profile_names_are_refused)
{
	expect_err("{" LEAN ", 'profiles': [{" PROF "}, {'name': 'q', "
	           "'brokerage': 'B', 'account_id': 'A'}, {" PROF "}]}",
	    "profiles[2].name: \"p\" is already used by profiles[0]");
}

Test(config, profile_name_charset)
{
	const char *want = "profiles[0].name: must contain only letters, "
	                   "digits, '.', '_' and '-'";
	expect_err("{" LEAN ", 'profiles': [{'name': 'a b', 'brokerage': 'B', "
	           "'account_id': 'A'}]}",
	    want);
	expect_err("{" LEAN ", 'profiles': [{'name': 'a/b', 'brokerage': 'B', "
	           "'account_id': 'A'}]}",
	    want);
	expect_err("{" LEAN ", 'profiles': [{'name': 'caf\\u00e9', "
	           "'brokerage': 'B', 'account_id': 'A'}]}",
	    want);
	expect_ok_free("{" LEAN ", 'profiles': [{'name': 'Az-09_x.y', "
	               "'brokerage': 'B', 'account_id': 'A'}]}");
}

Test(config, profile_name_empty_or_too_long_is_refused)
{
	char       long_name[130];
	la_config *cfg;

	expect_err("{" LEAN ", 'profiles': [{'name': '', 'brokerage': 'B', "
	           "'account_id': 'A'}]}",
	    "profiles[0].name: must not be empty");
	memset(long_name, 'n', 129);
	long_name[129] = '\0';
	cfg            = parsef("{" LEAN ", 'profiles': [{'name': '%s', "
	                                   "'brokerage': 'B', 'account_id': 'A'}]}",
	               long_name);
	cr_assert_null(cfg);
	cr_assert_str_eq(err,
	    "profiles[0].name: must be at most 128 characters");
	long_name[128] = '\0';
	cfg            = parsef("{" LEAN ", 'profiles': [{'name': '%s', "
	                                   "'brokerage': 'B', 'account_id': 'A'}]}",
	               long_name);
	cr_assert_not_null(cfg, "%s", err);
	la_config_destroy(cfg);
}

Test(config, empty_brokerage_is_refused)
{
	expect_err("{" LEAN ", 'profiles': [{'name': 'p', 'brokerage': '', "
	           "'account_id': 'A'}]}",
	    "profiles[0].brokerage: must not be empty");
}

// ---- send.allowed_urls ----

Test(config, allowed_urls_are_stored_as_written)
{
	la_config *cfg = expect_ok(
	    IN_SEND("'allowed_urls': ['HTTPS://API.Example.com/v1/', "
	            "'http://127.0.0.1:8080', 'https://[::1]:9/x']"));
	const la_send_cfg *s = &cfg->profiles[0].send;

	cr_assert_eq(s->n_allowed_urls, 3);
	cr_assert_str_eq(s->allowed_urls[0], "HTTPS://API.Example.com/v1/");
	cr_assert_str_eq(s->allowed_urls[1], "http://127.0.0.1:8080");
	cr_assert_str_eq(s->allowed_urls[2], "https://[::1]:9/x");
	la_config_destroy(cfg);
}

Test(config, allowed_url_with_userinfo_is_refused)
{
	expect_err(IN_SEND("'allowed_urls': ['https://ok/', "
	                   "'https://user:pw@api.example.com/']"),
	    "profiles[0].send.allowed_urls[1]: must not contain a user or "
	    "password");
	expect_err(
	    IN_SEND("'allowed_urls': ['https://user@api.example.com/']"),
	    "profiles[0].send.allowed_urls[0]: must not contain a user or "
	    "password");
}

Test(config, allowed_url_ftp_scheme_is_refused)
{
	expect_err(IN_SEND("'allowed_urls': ['ftp://files.example.com/']"),
	    "profiles[0].send.allowed_urls[0]: must be an http:// or https:// "
	    "URL");
	expect_err(IN_SEND("'allowed_urls': ['wss://example.com/']"),
	    "profiles[0].send.allowed_urls[0]: must be an http:// or https:// "
	    "URL");
}

Test(config, allowed_url_garbage_is_refused)
{
	expect_err(IN_SEND("'allowed_urls': ['garbage']"),
	    "profiles[0].send.allowed_urls[0]: not a valid URL (Bad scheme)");
	expect_err(IN_SEND("'allowed_urls': ['https://exa mple.com/']"),
	    "profiles[0].send.allowed_urls[0]: not a valid URL (Bad "
	    "hostname)");
	expect_err(IN_SEND("'allowed_urls': ['https://h:99999/']"),
	    "profiles[0].send.allowed_urls[0]: not a valid URL (Port number "
	    "was not a decimal number between 0 and 65535)");
}

Test(config, allowed_url_query_or_fragment_is_refused)
{
	expect_err(IN_SEND("'allowed_urls': ['https://h/x?a=1']"),
	    "profiles[0].send.allowed_urls[0]: must not contain a query or "
	    "fragment");
	expect_err(IN_SEND("'allowed_urls': ['https://h/x#top']"),
	    "profiles[0].send.allowed_urls[0]: must not contain a query or "
	    "fragment");
}

// ---- listen ----

Test(config, listen_schemes)
{
	expect_ok_free(IN_LISTEN("'rpc': 'ipc:///tmp/la.sock', "
	                         "'events': 'inproc://events'"));
	expect_err(IN_LISTEN("'rpc': 'http://127.0.0.1:1'"),
	    "listen.rpc: must start with tcp://, tls+tcp://, ipc:// or "
	    "inproc://");
	expect_err(IN_LISTEN("'events': 'tcp://'"),
	    "listen.events: needs an address after tcp://");
}

Test(config, tls_tcp_without_tls_block_is_refused)
{
	expect_err(IN_LISTEN("'rpc': 'tls+tcp://0.0.0.0:7450'"),
	    "listen.rpc: tls+tcp:// needs a listen.tls block with cert_file "
	    "and key_file");
	expect_err(IN_LISTEN("'events': 'tls+tcp://0.0.0.0:7451'"),
	    "listen.events: tls+tcp:// needs a listen.tls block with "
	    "cert_file and key_file");
}

Test(config, tls_tcp_needs_cert_and_key)
{
	expect_err(IN_LISTEN("'rpc': 'tls+tcp://0.0.0.0:7450', "
	                     "'tls': {'key_file': '/k.pem'}"),
	    "listen.tls.cert_file: required for tls+tcp:// (listen.rpc)");
	expect_err(IN_LISTEN("'events': 'tls+tcp://0.0.0.0:7451', "
	                     "'tls': {'cert_file': '/c.pem'}"),
	    "listen.tls.key_file: required for tls+tcp:// (listen.events)");
}

Test(config, tls_block_is_read)
{
	la_config *cfg = expect_ok(
	    IN_LISTEN("'rpc': 'tls+tcp://0.0.0.0:7450', "
	              "'tls': {'cert_file': '/c.pem', 'key_file': '/k.pem', "
	              "'ca_file': '/ca.pem', 'require_client_cert': true}"));
	cr_assert(cfg->has_tls);
	cr_assert_str_eq(cfg->tls.cert_file, "/c.pem");
	cr_assert_str_eq(cfg->tls.key_file, "/k.pem");
	cr_assert_str_eq(cfg->tls.ca_file, "/ca.pem");
	cr_assert(cfg->tls.require_client_cert);
	la_config_destroy(cfg);
}

Test(config, require_client_cert_needs_ca_file)
{
	expect_err(IN_LISTEN("'tls': {'cert_file': '/c.pem', 'key_file': "
	                     "'/k.pem', 'require_client_cert': true}"),
	    "listen.tls.ca_file: required when require_client_cert is true");
}

Test(config, listen_http_forms)
{
	static const char *const good[] = {"", "127.0.0.1:7452", "[::1]:7452",
	    "localhost:0", "0.0.0.0:65535", NULL};
	static const char *const bad[]  = {"::1:7452", "localhost", ":80",
	     "h:65536", "h:", "[::1]7452", "[]:80", "h:8x", "[::1]", "a b:1",
	     "h:123456", NULL};

	for (int i = 0; good[i] != NULL; i++) {
		la_config *cfg = parsef(IN_LISTEN("'http': '%s'"), good[i]);
		cr_assert_not_null(cfg, "%s: %s", good[i], err);
		cr_assert_str_eq(cfg->listen_http, good[i]);
		la_config_destroy(cfg);
	}
	for (int i = 0; bad[i] != NULL; i++) {
		la_config *cfg = parsef(IN_LISTEN("'http': '%s'"), bad[i]);
		cr_assert_null(cfg, "accepted %s", bad[i]);
		cr_assert_str_eq(err,
		    "listen.http: must be \"host:port\" with a port from 0 to "
		    "65535 (IPv6 as \"[::1]:7452\"), or \"\" to disable");
	}
}

// ---- la_config_load ----

Test(config, load_reads_a_file)
{
	const char *f   = write_str("c.json",
	      "{\"lean_api\": {\"user_id\": \"7\", \"api_token\": \"t\"}, "
	        "\"profiles\": [{\"name\": \"p\", \"brokerage\": \"B\", "
	        "\"account_id\": \"A\"}]}\n");
	la_config  *cfg = la_config_load(f, err, sizeof(err));

	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg->lean_user_id, "7");
	la_config_destroy(cfg);
}

Test(config, load_missing_file_says_so)
{
	const char *f = tmp_path("nope.json");
	char        want[1024];

	cr_assert_null(la_config_load(f, err, sizeof(err)));
	snprintf(want, sizeof(want),
	    "%s: cannot read: No such file or directory", f);
	cr_assert_str_eq(err, want);
}

Test(config, load_invalid_json_gives_line_and_column)
{
	const char *f =
	    write_str("bad.json", "{\n  \"workers\": 8,\n  oops\n}");
	char want[1024];

	cr_assert_null(la_config_load(f, err, sizeof(err)));
	// jansson's column is where the offending token ends.
	snprintf(want, sizeof(want),
	    "%s:3:6: invalid JSON: string or '}' expected", f);
	cr_assert_str_eq(err, want);
}

Test(config, load_refuses_files_over_1mib)
{
	static char big[1024 * 1024 + 1];
	const char *f;
	char        want[1024];

	memset(big, ' ', sizeof(big));
	big[0] = '{'; // a valid document padded with spaces past the cap
	big[1] = '}';
	f      = write_file("big.json", big, sizeof(big));
	cr_assert_null(la_config_load(f, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: larger than 1048576 bytes", f);
	cr_assert_str_eq(err, want);
}

Test(config, duplicate_keys_are_refused)
{
	cr_assert_null(la_config_parse("{\"workers\": 1,\n \"workers\": 2}",
	    err, sizeof(err)));
	cr_assert_str_eq(err,
	    "config:2:10: invalid JSON: duplicate object key");
}

Test(config, load_resolves_relative_files_against_its_directory)
{
	const char *f;
	la_config  *cfg;
	char        dir[600];

	snprintf(dir, sizeof(dir), "%s/sub", tmpdir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	write_str("sub/api-token", "from-sub\n");
	f   = write_str("sub/c.json",
	      "{\"lean_api\": {\"user_id\": \"7\", \"api_token_file\": "
	        "\"api-token\"}, "
	        "\"listen\": {\"tls\": {\"cert_file\": \"c.pem\"}}, "
	        "\"profiles\": [{\"name\": \"p\", \"brokerage\": \"B\", "
	        "\"account_id\": \"A\"}]}");
	cfg = la_config_load(f, err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg->lean_api_token, "from-sub");
	snprintf(dir, sizeof(dir), "%s/sub/c.pem", tmpdir);
	cr_assert_str_eq(cfg->tls.cert_file, dir);
	la_config_destroy(cfg);
}

Test(config, parse_leaves_relative_files_relative)
{
	la_config *cfg = expect_ok(IN_LISTEN("'tls': {'cert_file': 'c.pem'}"));
	cr_assert_str_eq(cfg->tls.cert_file, "c.pem");
	la_config_destroy(cfg);
}

// ---- lookups and derived values ----

Test(config, profile_lookup)
{
	la_config *cfg = expect_ok("{" LEAN ", 'profiles': [{" PROF "}, "
	                           "{'name': 'q', 'brokerage': 'B', "
	                           "'account_id': 'A'}]}");

	cr_assert_eq(la_config_profile(cfg, NULL), &cfg->profiles[0]);
	cr_assert_eq(la_config_profile(cfg, ""), &cfg->profiles[0]);
	cr_assert_eq(la_config_profile(cfg, "q"), &cfg->profiles[1]);
	cr_assert_null(la_config_profile(cfg, "nope"));
	cr_assert_eq(la_config_profile_index(cfg, NULL), 0);
	cr_assert_eq(la_config_profile_index(cfg, "p"), 0);
	cr_assert_eq(la_config_profile_index(cfg, "q"), 1);
	cr_assert_eq(la_config_profile_index(cfg, "Q"), -1);
	cr_assert_eq(la_config_profile_index(NULL, "q"), -1);
	la_config_destroy(cfg);
}

Test(config, lifetime_helpers_in_ms)
{
	la_config *cfg = expect_ok(IN_PROFILE(
	    "'token_lifetime_s': 3600, 'offset_before_expiration_s': 60, "
	    "'refresh_ahead_s': 300"));

	cr_assert_eq(la_config_usable_lifetime_ms(&cfg->profiles[0]), 3540000);
	cr_assert_eq(la_config_refresh_ahead_ms(&cfg->profiles[0]), 300000);
	la_config_destroy(cfg);
}

Test(config, destroy_is_null_safe)
{
	la_config_destroy(NULL);
}

Test(config, tiny_error_buffer_is_terminated)
{
	char small[8];

	memset(small, 'x', sizeof(small));
	cr_assert_null(
	    la_config_parse("{\"workers\": 0}", small, sizeof(small)));
	cr_assert_str_eq(small, "workers");
	cr_assert_null(la_config_parse("{\"workers\": 0}", NULL, 0));
}

// ---- secrets never reach an error message ----

Test(config, canary_secret_never_appears_in_errors)
{
	const char       *canary_file = write_str("canary", CANARY "\n");
	char              json[2048];
	const char *const bad[] = {
	    // a sibling of the secret has the wrong type
	    "{'lean_api': {'user_id': '1', 'api_token': '" CANARY "', "
	    "'timeout_ms': 'x'}, 'profiles': [{" PROF "}]}",
	    // the secret itself has the wrong type
	    IN_LEAN("'api_token': ['" CANARY "']"),
	    IN_LEAN("'api_token': {'v': '" CANARY "'}"),
	    IN_PROFILE("'refresh_token': [1, '" CANARY "']"),
	    // two forms given
	    IN_LEAN("'api_token': '" CANARY "', 'api_token_env': 'X'"),
	    // the secret under a misspelt key
	    IN_LEAN("'api_token': 't', 'api_tokn': '" CANARY "'"),
	    IN_PROFILE("'refresh_tokn': '" CANARY "'"),
	    // a bad profile next to the secret
	    "{'lean_api': {'user_id': '1', 'api_token': '" CANARY "'}, "
	    "'profiles': [{'name': 'a b', 'brokerage': 'B', "
	    "'account_id': 'A', 'refresh_token': '" CANARY "'}]}",
	    IN_PROFILE("'refresh_token': '" CANARY "', "
	               "'refresh_ahead_s': 99999"),
	    // a secret pasted into a non-secret key
	    IN_PROFILE("'deploy_id': ['" CANARY "']"),
	    TOP("'log_level': '" CANARY "'"),
	    IN_LISTEN("'rpc': '" CANARY "'"),
	    IN_LISTEN("'http': '" CANARY "'"),
	    IN_PROFILE("'name': '" CANARY "/x'"),
	    // credentials inside URLs
	    IN_SEND("'allowed_urls': ['https://u:" CANARY "@h/']"),
	    IN_LEAN("'api_token': 't', 'url': 'https://u:" CANARY "@h/'"),
	    IN_SEND("'allowed_urls': ['https://h/?key=" CANARY "']"),
	    IN_SEND("'allowed_urls': ['" CANARY "']"),
	    // JSON syntax errors right at the secret (jansson quotes the
	    // token "near" the error)
	    "{'lean_api': {'user_id': '1', 'api_token': '" CANARY "' "
	    "'timeout_ms': 1}}",
	    "{'lean_api': {'api_token': " CANARY "}}",
	    "{'lean_api': {'api_token': '" CANARY,
	    // duplicate secret key
	    "{'lean_api': {'user_id': '1', 'api_token': '" CANARY "', "
	    "'api_token': '" CANARY "'}}",
	    NULL,
	};

	for (int i = 0; bad[i] != NULL; i++) {
		la_config *cfg = parse(bad[i]);
		cr_assert_null(cfg, "accepted %s", bad[i]);
		cr_assert_neq(err[0], '\0', "no error for %s", bad[i]);
		cr_assert_null(strstr(err, CANARY), "leaked: %s", err);
	}

	// The secret from a file or the environment, with a later error.
	cr_assert_eq(setenv("LA_TEST_CANARY", CANARY, 1), 0);
	snprintf(json, sizeof(json),
	    "{\"lean_api\": {\"user_id\": \"1\", \"api_token_file\": \"%s\"}, "
	    "\"profiles\": [{\"name\": \"p\", \"brokerage\": \"B\", "
	    "\"account_id\": \"A\", \"refresh_token_env\": "
	    "\"LA_TEST_CANARY\", \"max_retry_count\": \"" CANARY "\"}]}",
	    canary_file);
	cr_assert_null(la_config_parse(json, err, sizeof(err)));
	cr_assert_null(strstr(err, CANARY), "leaked: %s", err);
	unsetenv("LA_TEST_CANARY");

	// la_config_load on a file whose JSON breaks right after the secret.
	snprintf(json, sizeof(json),
	    "{\"lean_api\": {\"api_token\": \"" CANARY "\n\"}}");
	cr_assert_null(
	    la_config_load(write_str("c.json", json), err, sizeof(err)));
	cr_assert_neq(err[0], '\0');
	cr_assert_null(strstr(err, CANARY), "leaked: %s", err);
}
