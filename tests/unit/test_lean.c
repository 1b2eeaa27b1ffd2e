// test_lean.c -- unit tests for server/lean: signing, request body, reply
// classification and redaction.
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lean/lean.h"

// Canaries: if any of these shows up in an error or a log line, a secret
// leaked.
#define API_CANARY "CANARY-api-token-5f3c9e"
#define RT_CANARY  "CANARY-refresh-token-8d21"
#define USER_ID    "user-42"

static void
suite_init(void)
{
	// The calls go to 127.0.0.1; a proxy from the environment would
	// intercept them.
	static const char *const vars[] = { "http_proxy", "HTTP_PROXY",
		"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", NULL };
	for (int i = 0; vars[i] != NULL; i++) {
		unsetenv(vars[i]);
	}
}

TestSuite(lean, .init = suite_init, .timeout = 30);

// ---- signing -----------------------------------------------------------

Test(lean, sign_matches_known_vector)
{
	// Computed independently:
	//   printf '%s' 'api-token-xyz:1700000000' | openssl dgst -sha256
	//     -> 7222dbc777babf71ecac015ba1a8477c08727f7d03176d326a55d4c9bb9002e8
	//   printf '%s' 'user-42:7222dbc7…9002e8' | base64 -w0
	//     -> dXNlci00Mjo3MjIy…OTAwMmU4 (below)
	char out[256];
	cr_assert_eq(la_lean_sign("user-42", "api-token-xyz", 1700000000, out,
	                 sizeof(out)),
	    LA_OK);
	cr_assert_str_eq(out,
	    "Basic dXNlci00Mjo3MjIyZGJjNzc3YmFiZjcxZWNhYzAxNWJhMWE4NDc3YzA4Nz"
	    "I3ZjdkMDMxNzZkMzI2YTU1ZDRjOWJiOTAwMmU4");
}

Test(lean, sign_differs_for_another_timestamp)
{
	char a[256], b[256];
	cr_assert_eq(la_lean_sign("user-42", "api-token-xyz", 1700000000, a,
	                 sizeof(a)),
	    LA_OK);
	cr_assert_eq(la_lean_sign("user-42", "api-token-xyz", 1700000001, b,
	                 sizeof(b)),
	    LA_OK);
	cr_assert_str_neq(a, b);
}

Test(lean, sign_buffer_too_small_is_too_big)
{
	// "Basic " + 96 base64 characters + NUL = 103 bytes.
	char out[102];
	memset(out, 'z', sizeof(out));
	cr_assert_eq(la_lean_sign("user-42", "api-token-xyz", 1700000000, out,
	                 sizeof(out)),
	    LA_ERR_TOO_BIG);
	cr_assert_eq(out[0], '\0');
}

Test(lean, sign_exact_buffer_fits)
{
	char out[103];
	cr_assert_eq(la_lean_sign("user-42", "api-token-xyz", 1700000000, out,
	                 sizeof(out)),
	    LA_OK);
	cr_assert_eq(strlen(out), 102);
}

Test(lean, sign_null_argument_is_invalid)
{
	char out[256];
	cr_assert_eq(la_lean_sign(NULL, "t", 1, out, sizeof(out)),
	    LA_ERR_INVALID);
	cr_assert_eq(la_lean_sign("u", NULL, 1, out, sizeof(out)),
	    LA_ERR_INVALID);
	cr_assert_eq(la_lean_sign("u", "t", 1, NULL, 0), LA_ERR_INVALID);
}

// ---- request body ------------------------------------------------------

Test(lean, body_lowercases_brokerage_in_key_order)
{
	la_profile_cfg p = { .brokerage = "CharlesSchwab",
		.account_id = "A1", .refresh_token = "rt", .deploy_id = "d1" };
	char          *b = la_lean_body(&p);
	cr_assert_str_eq(b,
	    "{\"brokerage\":\"charlesschwab\",\"accountId\":\"A1\","
	    "\"refreshToken\":\"rt\",\"deployId\":\"d1\"}");
	free(b);
}

Test(lean, body_omits_null_fields)
{
	la_profile_cfg p = { .brokerage = "TDAmeritrade", .account_id = "A1" };
	char          *b = la_lean_body(&p);
	cr_assert_str_eq(b, "{\"brokerage\":\"tdameritrade\",\"accountId\":\"A1\"}");
	free(b);
}

Test(lean, body_escapes_quotes_in_account_id)
{
	la_profile_cfg p = { .brokerage = "X", .account_id = "A\"1\\" };
	char          *b = la_lean_body(&p);
	cr_assert_str_eq(b, "{\"brokerage\":\"x\",\"accountId\":\"A\\\"1\\\\\"}");
	free(b);
}

Test(lean, body_rejects_invalid_utf8)
{
	la_profile_cfg p = { .brokerage = "X", .account_id = "A\xff" };
	cr_assert_null(la_lean_body(&p));
}

// ---- reply classification ----------------------------------------------

typedef struct parsed {
	la_err        rv;
	la_lean_reply r;
	char          err[256];
} parsed;

static parsed
parse(long status, const char *body)
{
	parsed p;
	memset(&p, 0, sizeof(p));
	p.rv = la_lean_parse(status, body, body != NULL ? strlen(body) : 0,
	    NULL, &p.r, p.err, sizeof(p.err));
	return (p);
}

static void
assert_token(parsed p, la_token_type type, const char *token)
{
	cr_assert_eq(p.rv, LA_OK, "err: %s", p.err);
	cr_assert_eq(p.r.type, type);
	cr_assert_str_eq(p.r.access_token, token);
	la_lean_reply_clear(&p.r);
}

static void
assert_fails(parsed p, la_err rv, const char *msg)
{
	cr_assert_eq(p.rv, rv, "rv %d err: %s", p.rv, p.err);
	cr_assert_str_eq(p.err, msg);
	cr_assert_null(p.r.access_token);
	cr_assert_eq(p.r.type, LA_TOKEN_UNSPECIFIED);
}

Test(lean, parse_string_bearer)
{
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":\"Bearer\","
	                 "\"accessToken\":\"abc\"}"),
	    LA_TOKEN_BEARER, "abc");
}

Test(lean, parse_string_session_token)
{
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":\"SessionToken\","
	                 "\"accessToken\":\"abc\"}"),
	    LA_TOKEN_SESSION_TOKEN, "abc");
}

Test(lean, parse_token_type_is_case_insensitive)
{
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":\"bEARER\","
	                 "\"accessToken\":\"a\"}"),
	    LA_TOKEN_BEARER, "a");
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":\"SESSIONTOKEN\","
	                 "\"accessToken\":\"a\"}"),
	    LA_TOKEN_SESSION_TOKEN, "a");
}

Test(lean, parse_number_0_is_bearer)
{
	assert_token(parse(200,
	                 "{\"success\":true,\"tokenType\":0,"
	                 "\"accessToken\":\"abc\"}"),
	    LA_TOKEN_BEARER, "abc");
}

Test(lean, parse_number_1_is_session_token)
{
	assert_token(parse(201,
	                 "{\"success\":true,\"tokenType\":1,"
	                 "\"accessToken\":\"abc\"}"),
	    LA_TOKEN_SESSION_TOKEN, "abc");
}

Test(lean, parse_absent_token_type_is_bearer)
{
	assert_token(parse(200, "{\"success\":true,\"accessToken\":\"abc\"}"),
	    LA_TOKEN_BEARER, "abc");
}

Test(lean, parse_number_2_is_unknown_token_type)
{
	assert_fails(parse(200,
	                 "{\"success\":true,\"tokenType\":2,"
	                 "\"accessToken\":\"abc\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unknown tokenType");
}

Test(lean, parse_string_foo_is_unknown_token_type)
{
	assert_fails(parse(200,
	                 "{\"success\":true,\"tokenType\":\"Foo\","
	                 "\"accessToken\":\"abc\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unknown tokenType");
}

Test(lean, parse_success_false_joins_errors)
{
	assert_fails(parse(200,
	                 "{\"success\":false,\"errors\":[\"bad refresh "
	                 "token\",\"account locked\"]}"),
	    LA_ERR_UNAUTHENTICATED, "bad refresh token; account locked");
}

Test(lean, parse_success_false_without_errors)
{
	assert_fails(parse(200, "{\"success\":false}"), LA_ERR_UNAUTHENTICATED,
	    "lean api refused the request");
}

Test(lean, parse_http_401_is_unauthenticated_with_errors)
{
	assert_fails(parse(401,
	                 "{\"success\":false,\"errors\":[\"Hash doesn't "
	                 "match.\"]}"),
	    LA_ERR_UNAUTHENTICATED, "lean api: HTTP 401: Hash doesn't match.");
}

Test(lean, parse_http_403_is_unauthenticated)
{
	assert_fails(
	    parse(403, "Forbidden"), LA_ERR_UNAUTHENTICATED, "lean api: HTTP 403");
}

Test(lean, parse_http_500_is_unavailable)
{
	assert_fails(parse(500, "<html>oops</html>"), LA_ERR_UNAVAILABLE,
	    "lean api: HTTP 500");
}

Test(lean, parse_http_503_is_unavailable_with_errors)
{
	assert_fails(parse(503, "{\"errors\":[\"maintenance\"]}"),
	    LA_ERR_UNAVAILABLE, "lean api: HTTP 503: maintenance");
}

Test(lean, parse_non_2xx_ignores_a_token_in_the_body)
{
	assert_fails(parse(502, "{\"success\":true,\"accessToken\":\"abc\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: HTTP 502");
}

Test(lean, parse_garbage_is_unparseable)
{
	assert_fails(parse(200, "not json {"), LA_ERR_UNAVAILABLE,
	    "lean api: unparseable reply");
}

Test(lean, parse_empty_body_is_unparseable)
{
	assert_fails(
	    parse(200, ""), LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_json_array_is_unparseable)
{
	assert_fails(parse(200, "[{\"success\":true,\"accessToken\":\"a\"}]"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_missing_success_is_unparseable)
{
	assert_fails(parse(200, "{\"accessToken\":\"abc\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_string_success_is_unparseable)
{
	assert_fails(parse(200, "{\"success\":\"true\",\"accessToken\":\"a\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_duplicate_success_is_unparseable)
{
	assert_fails(parse(200,
	                 "{\"success\":false,\"success\":true,"
	                 "\"accessToken\":\"a\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_success_without_token)
{
	assert_fails(parse(200, "{\"success\":true,\"tokenType\":\"Bearer\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: reply has no accessToken");
}

Test(lean, parse_success_with_empty_token)
{
	assert_fails(parse(200, "{\"success\":true,\"accessToken\":\"\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: reply has no accessToken");
}

Test(lean, parse_success_with_numeric_token)
{
	assert_fails(parse(200, "{\"success\":true,\"accessToken\":12}"),
	    LA_ERR_UNAVAILABLE, "lean api: reply has no accessToken");
}

static char *
reply_with_token_of(size_t n)
{
	const char *pre  = "{\"success\":true,\"accessToken\":\"";
	char       *body = malloc(strlen(pre) + n + 3);
	cr_assert_not_null(body);
	strcpy(body, pre);
	memset(body + strlen(pre), 't', n);
	strcpy(body + strlen(pre) + n, "\"}");
	return (body);
}

Test(lean, parse_token_of_16_kib_is_accepted)
{
	char  *body = reply_with_token_of(LA_LEAN_MAX_TOKEN);
	parsed p    = parse(200, body);
	cr_assert_eq(p.rv, LA_OK);
	cr_assert_eq(strlen(p.r.access_token), LA_LEAN_MAX_TOKEN);
	la_lean_reply_clear(&p.r);
	free(body);
}

Test(lean, parse_token_over_16_kib_is_unavailable)
{
	char *body = reply_with_token_of(LA_LEAN_MAX_TOKEN + 1);
	assert_fails(parse(200, body), LA_ERR_UNAVAILABLE,
	    "lean api: accessToken too long");
	free(body);
}

Test(lean, parse_token_with_crlf_is_unavailable)
{
	assert_fails(parse(200,
	                 "{\"success\":true,\"accessToken\":\"a\\r\\nX-Evil: "
	                 "1\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: accessToken has invalid characters");
}

Test(lean, parse_token_with_nul_is_unparseable)
{
	// jansson refuses \u0000 unless asked to allow it.
	assert_fails(parse(200, "{\"success\":true,\"accessToken\":\"a\\u0000b\"}"),
	    LA_ERR_UNAVAILABLE, "lean api: unparseable reply");
}

Test(lean, parse_redacts_echoed_refresh_token)
{
	const char *const redact[] = { API_CANARY, RT_CANARY, NULL };
	const char *body = "{\"success\":false,\"errors\":[\"refresh token "
	                   "'" RT_CANARY "' is invalid\"]}";
	la_lean_reply r  = { 0 };
	char          err[256];
	cr_assert_eq(la_lean_parse(200, body, strlen(body), redact, &r, err,
	                 sizeof(err)),
	    LA_ERR_UNAUTHENTICATED);
	cr_assert_str_eq(err, "refresh token '[redacted]' is invalid");
	cr_assert_null(strstr(err, "CANARY"));
}

Test(lean, parse_redacts_before_truncating)
{
	// Truncating first would leave "CANARY-" at the end of err.
	const char *const redact[] = { RT_CANARY, NULL };
	const char       *body     = "{\"success\":false,\"errors\":[\"invalid "
	                             "refresh token " RT_CANARY "\"]}";
	la_lean_reply     r        = { 0 };
	char              err[30];
	cr_assert_eq(la_lean_parse(200, body, strlen(body), redact, &r, err,
	                 sizeof(err)),
	    LA_ERR_UNAUTHENTICATED);
	cr_assert_str_eq(err, "invalid refresh token [redact");
}

Test(lean, parse_failure_redacts_the_replys_own_token)
{
	assert_fails(parse(500,
	                 "{\"accessToken\":\"AT-CANARY-77\",\"errors\":[\"issued "
	                 "AT-CANARY-77 too late\"]}"),
	    LA_ERR_UNAVAILABLE, "lean api: HTTP 500: issued [redacted] too late");
}

Test(lean, parse_redacts_only_the_upstreams_text)
{
	// A one-letter secret must not garble "lean api: HTTP 500".
	const char *const redact[] = { "a", NULL };
	const char       *body     = "{\"errors\":[\"a bad\"]}";
	la_lean_reply     r        = { 0 };
	char              err[128];
	cr_assert_eq(la_lean_parse(500, body, strlen(body), redact, &r, err,
	                 sizeof(err)),
	    LA_ERR_UNAVAILABLE);
	cr_assert_str_eq(err, "lean api: HTTP 500: [redacted] b[redacted]d");
}

// ---- redaction ---------------------------------------------------------

Test(lean, redact_replaces_every_occurrence)
{
	const char *const redact[] = { "s3cret", NULL };
	char              buf[64]  = "a s3cret b s3crets3cret";
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "a [redacted] b [redacted][redacted]");
}

Test(lean, redact_ignores_empty_strings)
{
	const char *const redact[] = { "", "k", NULL };
	char              buf[64]  = "okay";
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "o[redacted]ay");
}

Test(lean, redact_growth_is_truncated_to_buflen)
{
	const char *const redact[] = { "ab", NULL };
	char              buf[16]  = "xab ab ab";
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "x[redacted] [re");
}

Test(lean, redact_prefers_the_longest_match)
{
	const char *const redact[] = { "tok", "tok-long", NULL };
	char              buf[64]  = "<tok-long>";
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "<[redacted]>");
}

Test(lean, redact_wipes_the_old_tail)
{
	// The result is shorter than the text; what lay past its end was the
	// secret's tail and must not stay in the buffer.
	const char *const redact[] = { "SECRET-0123456789", NULL };
	char              buf[32]  = "x SECRET-0123456789";
	size_t            old      = strlen(buf);
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "x [redacted]");
	for (size_t i = strlen(buf); i <= old; i++) {
		cr_assert_eq(buf[i], '\0', "byte %zu", i);
	}
}

Test(lean, redact_with_null_list_changes_nothing)
{
	char buf[16] = "nothing";
	la_lean_redact(buf, sizeof(buf), NULL);
	cr_assert_str_eq(buf, "nothing");
}

Test(lean, redact_unterminated_buffer_is_terminated)
{
	const char *const redact[] = { "zz", NULL };
	char              buf[4]   = { 'a', 'b', 'c', 'd' };
	la_lean_redact(buf, sizeof(buf), redact);
	cr_assert_str_eq(buf, "abc");
}

// ---- small things ------------------------------------------------------

Test(lean, token_type_names)
{
	cr_assert_str_eq(la_token_type_name(LA_TOKEN_BEARER), "Bearer");
	cr_assert_str_eq(
	    la_token_type_name(LA_TOKEN_SESSION_TOKEN), "SessionToken");
	cr_assert_str_eq(la_token_type_name(LA_TOKEN_UNSPECIFIED), "");
}

Test(lean, reply_clear_frees_and_resets)
{
	la_lean_reply r = { LA_TOKEN_BEARER, strdup("tok") };
	la_lean_reply_clear(&r);
	cr_assert_null(r.access_token);
	cr_assert_eq(r.type, LA_TOKEN_UNSPECIFIED);
	la_lean_reply_clear(&r); // twice is fine
	la_lean_reply_clear(NULL);
}

Test(lean, create_rejects_missing_config)
{
	la_lean  *l   = (la_lean *) 1;
	la_config cfg = { 0 };
	cr_assert_eq(la_lean_create(&l, NULL), LA_ERR_INVALID);
	cr_assert_null(l);
	cr_assert_eq(la_lean_create(&l, &cfg), LA_ERR_INVALID);
	cr_assert_eq(la_lean_create(NULL, &cfg), LA_ERR_INVALID);
	la_lean_destroy(NULL);
}
