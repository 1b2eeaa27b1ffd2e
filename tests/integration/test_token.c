// test_token.c -- GetAccessToken end to end: real leanauthd, stand-in Lean
// API, protobuf over nng through libleanauth (and raw REQ for bad input).
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "leanauth/v1/token.pb-c.h"

static h_env E;

static void
setup(void)
{
	h_setup(&E);
}

static void
teardown(void)
{
	h_teardown(&E);
}

TestSuite(token, .init = setup, .fini = teardown, .timeout = 120);

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static int
get(leanauth_client *c, const char *profile, bool force, uint64_t ifgen,
    uint32_t timeout_ms, leanauth_token *t, leanauth_error *err)
{
	leanauth_call_options co = {.timeout_ms = timeout_ms};
	return (leanauth_get_token(c, profile, force, ifgen, &co, t, err));
}

Test(token, returned_and_cached)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   first, t;
	leanauth_error   err;

	cr_assert_eq(get(c, "", false, 0, 0, &first, &err), 0, "%s",
	    err.message);
	cr_assert_eq(strncmp(first.access_token, CANARY_ACCESS_PREFIX,
	                 strlen(CANARY_ACCESS_PREFIX)),
	    0);
	cr_assert_eq(first.token_type, LEANAUTH_TOKEN_BEARER);
	cr_assert_eq(first.generation, 1);
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(get(c, "schwab", false, 0, 0, &t, &err), 0);
		cr_assert_str_eq(t.access_token, first.access_token);
		cr_assert_eq(t.generation, 1);
		leanauth_token_clear(&t);
	}
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 1,
	    "51 calls, 1 upstream");
	cr_assert_eq(h_lean_stat(&E, "bad_signature"), 0);

	// The stand-in saw the body DESIGN.md specifies.
	json_t *st   = h_lean(&E, "_control/stats", NULL);
	json_t *body = json_object_get(st, "last_body");
	cr_assert_str_eq(json_string_value(json_object_get(body, "brokerage")),
	    "charlesschwab");
	cr_assert_str_eq(json_string_value(json_object_get(body, "accountId")),
	    "A1");
	cr_assert_str_eq(
	    json_string_value(json_object_get(body, "refreshToken")),
	    CANARY_REFRESH_TOKEN);
	cr_assert_null(json_object_get(body, "deployId"));
	json_decref(st);
	leanauth_token_clear(&first);
	leanauth_close(c);
}

Test(token, expiry_is_now_plus_lifetime_minus_offset)
{
	json_object_set_new(h_profile(&E, 0), "token_lifetime_s",
	    json_integer(600));
	json_object_set_new(h_profile(&E, 0), "offset_before_expiration_s",
	    json_integer(60));
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;

	int64_t before = wall_ms();
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err), 0, "%s", err.message);
	int64_t after = wall_ms();
	cr_assert_geq(t.expires_at_unix_ms, before + 540 * 1000);
	cr_assert_leq(t.expires_at_unix_ms, after + 540 * 1000);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(token, session_token_type_and_numeric_type)
{
	json_t *ok = h_lean(&E, "_control/plan",
	    "{\"account_id\":\"A1\",\"token_type\":1}");
	cr_assert_not_null(ok);
	json_decref(ok);
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err), 0, "%s", err.message);
	cr_assert_eq(t.token_type, LEANAUTH_TOKEN_SESSION_TOKEN);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(token, force_refresh_fetches_a_new_token)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   a, b;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, 0, &a, &err), 0);
	cr_assert_eq(get(c, "", true, 0, 0, &b, &err), 0, "%s", err.message);
	cr_assert_str_neq(a.access_token, b.access_token);
	cr_assert_eq(b.generation, 2);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 2);
	leanauth_token_clear(&a);
	leanauth_token_clear(&b);
	leanauth_close(c);
}

typedef struct worker_arg {
	leanauth_client *c;
	bool             force;
	uint64_t         ifgen;
	int              rv;
	leanauth_token   t;
	leanauth_error   err;
} worker_arg;

static void *
worker(void *p)
{
	worker_arg *w = p;
	w->rv = get(w->c, "", w->force, w->ifgen, 20000, &w->t, &w->err);
	return (NULL);
}

// run_concurrently calls GetAccessToken from n threads at once through one
// client (one nng context per call).
static void
run_concurrently(leanauth_client *c, worker_arg *args, int n, bool force,
    uint64_t ifgen)
{
	pthread_t *th = calloc((size_t) n, sizeof(pthread_t));
	for (int i = 0; i < n; i++) {
		args[i] =
		    (worker_arg) {.c = c, .force = force, .ifgen = ifgen};
		cr_assert_eq(pthread_create(&th[i], NULL, worker, &args[i]),
		    0);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
	}
	free(th);
}

Test(token, if_generation_deduplicates_forced_refreshes)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err), 0);
	cr_assert_eq(t.generation, 1);
	leanauth_token_clear(&t);

	// Twenty callers all saw generation 1 fail: one refresh. The slow
	// upstream makes sure they overlap.
	h_lean_plan(&E, "A1", "[\"slow:300\"]", "ok");
	enum { N = 20 };
	worker_arg args[N];
	run_concurrently(c, args, N, true, 1);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(args[i].rv, 0, "%s", args[i].err.message);
		cr_assert_eq(args[i].t.generation, 2);
		leanauth_token_clear(&args[i].t);
	}
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 2);

	// A late caller with the stale generation gets the current token.
	cr_assert_eq(get(c, "", true, 1, 0, &t, &err), 0);
	cr_assert_eq(t.generation, 2);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 2);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(token, concurrent_cold_callers_share_one_refresh)
{
	h_lean_plan(&E, "A1", "[\"slow:500\"]", "ok");
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	enum { N = 96 };
	worker_arg *args = calloc(N, sizeof(worker_arg));
	run_concurrently(c, args, N, false, 0);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(args[i].rv, 0, "caller %d: %s", i,
		    args[i].err.message);
		cr_assert_str_eq(args[i].t.access_token,
		    args[N - 1].t.access_token);
	}
	for (int i = 0; i < N; i++) {
		leanauth_token_clear(&args[i].t);
	}
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 1);
	free(args);
	leanauth_close(c);
}

Test(token, two_failures_then_success_takes_three_attempts)
{
	h_lean_plan(&E, "A1", "[\"500\", \"garbage\"]", "ok");
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err), 0, "%s", err.message);
	cr_assert_eq(t.generation, 1);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 3);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(token, persistent_5xx_is_unavailable_after_all_attempts)
{
	json_object_set_new(h_profile(&E, 0), "max_retry_count",
	    json_integer(2));
	h_lean_plan(&E, "A1", "[]", "500");
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err), LEANAUTH_UNAVAILABLE);
	cr_assert(strstr(err.message, "HTTP 500") != NULL, "message: %s",
	    err.message);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 3,
	    "max_retry_count + 1");
	leanauth_close(c);
}

Test(token, refused_refresh_is_unauthenticated)
{
	json_object_set_new(h_profile(&E, 0), "max_retry_count",
	    json_integer(1));
	h_lean_plan(&E, "A1", "[]", "unauthorized");
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err),
	    LEANAUTH_UNAUTHENTICATED);
	cr_assert_str_eq(err.message, "Invalid refresh token");
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 2);
	leanauth_close(c);
}

Test(token, wrong_api_token_is_unauthenticated)
{
	json_object_set_new(json_object_get(E.cfg, "lean_api"), "api_token",
	    json_string("CANARY-WRONG-API-TOKEN"));
	json_object_set_new(h_profile(&E, 0), "max_retry_count",
	    json_integer(0));
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err),
	    LEANAUTH_UNAUTHENTICATED);
	cr_assert_eq(h_lean_stat(&E, "bad_signature"), 1);
	leanauth_close(c);
}

Test(token, upstream_error_echoing_a_secret_is_redacted)
{
	json_object_set_new(h_profile(&E, 0), "max_retry_count",
	    json_integer(0));
	h_lean_plan(&E, "A1", "[]", "echo_secret");
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err),
	    LEANAUTH_UNAUTHENTICATED);
	cr_assert_null(strstr(err.message, CANARY_ANY), "message: %s",
	    err.message);
	cr_assert(strstr(err.message, "[redacted]") != NULL, "message: %s",
	    err.message);
	leanauth_close(c);
}

Test(token, deadline_exceeded_while_the_refresh_goes_on)
{
	h_lean_plan(&E, "A1", "[\"hang\"]", "ok");
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	int64_t          t0 = h_now_ms();
	cr_assert_eq(get(c, "", false, 0, 300, &t, &err),
	    LEANAUTH_DEADLINE_EXCEEDED);
	int64_t took = h_now_ms() - t0;
	cr_assert_geq(took, 290);
	cr_assert_lt(took, 1300, "took %lld ms", (long long) took);
	cr_assert(h_lean_wait(&E, "hanging=1", 5000));
	// The refresh is still running; once the upstream answers, the next
	// caller is served from it without another upstream call.
	json_decref(h_lean(&E, "_control/release", "{}"));
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err), 0, "%s", err.message);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 1);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(token, unknown_profile_is_not_found)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "nope", false, 0, 0, &t, &err),
	    LEANAUTH_NOT_FOUND);
	cr_assert(strstr(err.message, "nope") != NULL);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 0);
	leanauth_close(c);
}

Test(token, profiles_are_independent)
{
	h_add_profile(&E, "ibkr", "B2");
	h_lean_plan(&E, "B2", "[]", "unauthorized");
	json_object_set_new(h_profile(&E, 1), "max_retry_count",
	    json_integer(0));
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "ibkr", false, 0, 0, &t, &err),
	    LEANAUTH_UNAUTHENTICATED);
	cr_assert_eq(get(c, "schwab", false, 0, 0, &t, &err), 0, "%s",
	    err.message);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(token, bad_input_gets_an_error_reply_and_the_server_lives_on)
{
	h_daemon_start(&E);
	char   msg[512];
	size_t len;

	// Not protobuf at all.
	const char garbage[] = "\xff\xff\xff\xff this is not an envelope";
	cr_assert_eq(
	    h_raw_call(&E, garbage, sizeof(garbage), 5000, msg, sizeof(msg)),
	    LEANAUTH_INVALID_ARGUMENT);
	// Empty message.
	cr_assert_eq(h_raw_call(&E, "", 0, 5000, msg, sizeof(msg)),
	    LEANAUTH_UNIMPLEMENTED, "an empty envelope names no method: %s",
	    msg);
	// Unknown method.
	uint8_t *env =
	    h_envelope("leanauth.v1.TokenService/Nope", NULL, 0, 0, &len);
	cr_assert_eq(h_raw_call(&E, env, len, 5000, msg, sizeof(msg)),
	    LEANAUTH_UNIMPLEMENTED);
	cr_assert(strstr(msg, "Nope") != NULL);
	free(env);
	// A valid envelope with a garbage payload.
	env = h_envelope("leanauth.v1.TokenService/GetAccessToken", "\x0a\xff",
	    2, 0, &len);
	cr_assert_eq(h_raw_call(&E, env, len, 5000, msg, sizeof(msg)),
	    LEANAUTH_INVALID_ARGUMENT);
	free(env);
	// Larger than any request may be (max_body_bytes 64 KiB + 64 KiB), but
	// under nng's own receive cap: RESOURCE_EXHAUSTED.
	size_t   big = 256 * 1024;
	uint8_t *pad = calloc(1, big);
	env = h_envelope("leanauth.v1.TokenService/Send", pad, big, 0, &len);
	cr_assert_eq(h_raw_call(&E, env, len, 5000, msg, sizeof(msg)),
	    LEANAUTH_RESOURCE_EXHAUSTED);
	free(env);
	free(pad);

	// Alive and well afterwards.
	leanauth_client *c = h_client(&E);
	leanauth_token   t;
	leanauth_error   err;
	cr_assert_eq(get(c, "", false, 0, 0, &t, &err), 0, "%s", err.message);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(token, health_reports_serving)
{
	h_daemon_start(&E);
	leanauth_client *c = h_client(&E);
	leanauth_error   err;
	bool             serving = false;
	cr_assert_eq(leanauth_health(c, NULL, NULL, &serving, &err), 0);
	cr_assert(serving);
	cr_assert_eq(leanauth_health(c, "nope", NULL, &serving, &err),
	    LEANAUTH_NOT_FOUND);
	leanauth_close(c);
}

Test(token, sigterm_exits_zero)
{
	h_daemon_start(&E);
	int64_t took;
	cr_assert_eq(h_daemon_stop(&E, SIGTERM, 5000, &took), 0);
	cr_assert(h_log_contains(&E, "\"msg\":\"stopped\""));
}

typedef struct waiter_arg {
	leanauth_client *c;
	int              rv;
	leanauth_error   err;
} waiter_arg;

static void *
waiting_caller(void *p)
{
	waiter_arg    *w = p;
	leanauth_token t;
	w->rv = get(w->c, "", false, 0, 30000, &t, &w->err);
	if (w->rv == 0) {
		leanauth_token_clear(&t);
	}
	return (NULL);
}

Test(token, sigterm_answers_a_waiting_caller_and_exits_zero)
{
	h_lean_plan(&E, "A1", "[]", "hang");
	h_daemon_start(&E);
	waiter_arg w = {.c = h_client(&E)};
	pthread_t  th;
	cr_assert_eq(pthread_create(&th, NULL, waiting_caller, &w), 0);
	cr_assert(h_lean_wait(&E, "hanging=1", 5000),
	    "the refresh never started");
	int64_t took;
	cr_assert_eq(h_daemon_stop(&E, SIGTERM, 5000, &took), 0);
	pthread_join(th, NULL);
	cr_assert_eq(w.rv, LEANAUTH_UNAVAILABLE, "got %d: %s", w.rv,
	    w.err.message);
	cr_assert(strstr(w.err.message, "shutting down") != NULL, "%s",
	    w.err.message);
	leanauth_close(w.c);
}

Test(token, cli_prints_the_token_and_json)
{
	h_daemon_start(&E);
	char        out[4096], err[4096];
	const char *argv[] = {LEANAUTH_CLI, "token", "--url", E.rpc_url, NULL};
	cr_assert_eq(h_run(argv, 10000, out, sizeof(out), err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(
	    strncmp(out, CANARY_ACCESS_PREFIX, strlen(CANARY_ACCESS_PREFIX)),
	    0);

	const char *jargv[] = {LEANAUTH_CLI, "token", "--url", E.rpc_url,
	    "--json", NULL};
	cr_assert_eq(h_run(jargv, 10000, out, sizeof(out), err, sizeof(err)),
	    0, "%s", err);
	json_t *j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "token_type")),
	    "Bearer");
	cr_assert_eq(json_integer_value(json_object_get(j, "generation")), 1);
	cr_assert_gt(
	    json_integer_value(json_object_get(j, "expires_at_unix_ms")),
	    wall_ms());
	json_decref(j);

	const char *bad[] = {LEANAUTH_CLI, "token", "--url", E.rpc_url,
	    "--profile", "nope", NULL};
	cr_assert_eq(h_run(bad, 10000, out, sizeof(out), err, sizeof(err)), 1);
	cr_assert(strstr(err, "NOT_FOUND") != NULL, "stderr: %s", err);
}

Test(token, cli_reports_an_unreachable_server)
{
	char        out[256], err[1024];
	const char *argv[] = {LEANAUTH_CLI, "token", "--url",
	    "tcp://127.0.0.1:1", "--timeout", "300", NULL};
	cr_assert_eq(h_run(argv, 10000, out, sizeof(out), err, sizeof(err)),
	    1);
	cr_assert(strstr(err, "UNAVAILABLE") != NULL, "stderr: %s", err);
}

Test(token, check_config_names_the_bad_key)
{
	char out[1024], err[1024];
	json_object_set_new(h_profile(&E, 0), "token_lifetim_s",
	    json_integer(5));
	cr_assert_eq(json_dump_file(E.cfg, E.cfg_path, 0), 0);
	const char *argv[] = {LEANAUTHD_BIN, "--check-config", E.cfg_path,
	    NULL};
	cr_assert_eq(h_run(argv, 10000, out, sizeof(out), err, sizeof(err)),
	    2);
	cr_assert(strstr(err, "profiles[0].token_lifetim_s") != NULL,
	    "stderr: %s", err);
	cr_assert_null(strstr(err, CANARY_ANY));

	json_object_del(h_profile(&E, 0), "token_lifetim_s");
	cr_assert_eq(json_dump_file(E.cfg, E.cfg_path, 0), 0);
	cr_assert_eq(h_run(argv, 10000, out, sizeof(out), err, sizeof(err)), 0,
	    "%s", err);
	// Running with the bad key fails the same way.
	json_object_set_new(E.cfg, "wokers", json_integer(2));
	cr_assert_eq(json_dump_file(E.cfg, E.cfg_path, 0), 0);
	const char *run[] = {LEANAUTHD_BIN, "--config", E.cfg_path, NULL};
	cr_assert_eq(h_run(run, 10000, out, sizeof(out), err, sizeof(err)), 2);
	cr_assert(strstr(err, "wokers") != NULL, "stderr: %s", err);
}
