// test_tls.c -- leanauthd on tls+tcp:// (listen.tls), with the C client, the
// CLI and a subscriber verifying it; and client certificates when
// require_client_cert is set. Certificates are made per test with openssl.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static h_env E;
static char  cert[320], key[320], other[320], ccert[320], cbundle[320];

// make_cert writes a self-signed certificate for localhost/127.0.0.1 (and
// its key) with openssl, and returns nothing: failures are fatal.
static void
make_cert(const char *certpath, const char *keypath, const char *cn)
{
	char subj[64];
	snprintf(subj, sizeof(subj), "/CN=%s", cn);
	const char *argv[] = {"/usr/bin/openssl", "req", "-x509", "-newkey",
	    "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
	    "-days", "1", "-subj", subj, "-addext",
	    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", keypath,
	    "-out", certpath, NULL};
	char        err[2048];
	cr_assert_eq(h_run(argv, 30000, NULL, 0, err, sizeof(err)), 0,
	    "openssl: %s", err);
}

static void
concat(const char *out, const char *a, const char *b)
{
	char *x = h_read_file(a), *y = h_read_file(b);
	FILE *f = fopen(out, "w");
	cr_assert(x != NULL && y != NULL && f != NULL);
	fputs(x, f);
	fputs(y, f);
	fclose(f);
	free(x);
	free(y);
}

static void
setup(void)
{
	h_setup(&E);
	char okey[320], ckey[320];
	snprintf(cert, sizeof(cert), "%s/server.pem", E.dir);
	snprintf(key, sizeof(key), "%s/server.key", E.dir);
	snprintf(other, sizeof(other), "%s/other.pem", E.dir);
	snprintf(okey, sizeof(okey), "%s/other.key", E.dir);
	snprintf(ccert, sizeof(ccert), "%s/client.pem", E.dir);
	snprintf(ckey, sizeof(ckey), "%s/client.key", E.dir);
	snprintf(cbundle, sizeof(cbundle), "%s/client-bundle.pem", E.dir);
	make_cert(cert, key, "localhost");
	make_cert(other, okey, "localhost");
	make_cert(ccert, ckey, "client");
	concat(cbundle, ccert, ckey);

	json_t *listen = json_object_get(E.cfg, "listen");
	json_object_set_new(listen, "rpc",
	    json_string("tls+tcp://127.0.0.1:0"));
	json_object_set_new(listen, "events",
	    json_string("tls+tcp://127.0.0.1:0"));
	json_object_set_new(listen, "tls",
	    json_pack("{s:s, s:s}", "cert_file", cert, "key_file", key));
}

static void
teardown(void)
{
	h_teardown(&E);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 120);

static int
open_client(const char *ca, const char *client_cert, leanauth_client **c,
    leanauth_error *err)
{
	leanauth_options o = {.timeout_ms = 5000,
	    .connect_timeout_ms           = 3000,
	    .tls_ca_file                  = ca,
	    .tls_cert_file                = client_cert};
	return (leanauth_open(c, E.rpc_url, &o, err));
}

Test(tls, a_verified_client_gets_a_token)
{
	h_daemon_start(&E);
	cr_assert_eq(strncmp(E.rpc_url, "tls+tcp://127.0.0.1:", 20), 0, "%s",
	    E.rpc_url);
	leanauth_client *c;
	leanauth_error   err;
	leanauth_token   t;
	cr_assert_eq(open_client(cert, NULL, &c, &err), 0, "%s", err.message);
	cr_assert_eq(leanauth_get_token(c, "", false, 0, NULL, &t, &err), 0,
	    "%s", err.message);
	cr_assert_eq(t.generation, 1);
	leanauth_token_clear(&t);
	leanauth_close(c);
}

Test(tls, a_client_without_a_ca_is_refused_up_front)
{
	h_daemon_start(&E);
	leanauth_client *c;
	leanauth_error   err;
	cr_assert_eq(open_client(NULL, NULL, &c, &err),
	    LEANAUTH_INVALID_ARGUMENT);
	cr_assert(strstr(err.message, "CA") != NULL, "%s", err.message);
}

Test(tls, a_server_the_ca_does_not_vouch_for_is_not_trusted)
{
	h_daemon_start(&E);
	leanauth_client *c;
	leanauth_error   err;
	cr_assert_eq(open_client(other, NULL, &c, &err), LEANAUTH_UNAVAILABLE,
	    "%s", err.message);
	cr_assert_eq(h_lean_stat(&E, "refresh_calls"), 0);
}

Test(tls, the_cli_and_a_subscriber_work_over_tls)
{
	h_daemon_start(&E);
	leanauth_subscriber *s;
	leanauth_error       err;
	leanauth_options o = {.connect_timeout_ms = 3000, .tls_ca_file = cert};
	cr_assert_eq(leanauth_subscribe(&s, E.events_url, NULL, 0, &o, &err),
	    0, "%s", err.message);

	setenv("LEANAUTH_TLS_CA", cert, 1);
	char        out[4096], errbuf[4096];
	const char *argv[] = {LEANAUTH_CLI, "token", "--url", E.rpc_url, NULL};
	int rv = h_run(argv, 10000, out, sizeof(out), errbuf, sizeof(errbuf));
	unsetenv("LEANAUTH_TLS_CA");
	cr_assert_eq(rv, 0, "%s", errbuf);
	cr_assert_eq(
	    strncmp(out, CANARY_ACCESS_PREFIX, strlen(CANARY_ACCESS_PREFIX)),
	    0);

	leanauth_event ev;
	cr_assert_eq(leanauth_next_event(s, 5000, &ev, &err), 0, "%s",
	    err.message);
	cr_assert_eq(ev.type, LEANAUTH_EVENT_TOKEN_REFRESHED);
	cr_assert_str_eq(ev.profile, "schwab");
	leanauth_subscriber_close(s);

	// Without the CA the CLI says what is missing.
	const char *bad[] = {LEANAUTH_CLI, "token", "--url", E.rpc_url, NULL};
	cr_assert_eq(
	    h_run(bad, 10000, out, sizeof(out), errbuf, sizeof(errbuf)), 1);
	cr_assert(strstr(errbuf, "LEANAUTH_TLS_CA") != NULL, "%s", errbuf);
}

Test(tls, require_client_cert_admits_only_known_clients)
{
	json_t *tls = json_object_get(json_object_get(E.cfg, "listen"), "tls");
	json_object_set_new(tls, "ca_file", json_string(ccert));
	json_object_set_new(tls, "require_client_cert", json_true());
	h_daemon_start(&E);
	leanauth_client *c;
	leanauth_error   err;
	leanauth_token   t;

	// No client certificate: the handshake fails, nothing is served.
	cr_assert_eq(open_client(cert, NULL, &c, &err), LEANAUTH_UNAVAILABLE,
	    "%s", err.message);
	// The known client certificate (certificate and key in one file).
	cr_assert_eq(open_client(cert, cbundle, &c, &err), 0, "%s",
	    err.message);
	cr_assert_eq(leanauth_get_token(c, "", false, 0, NULL, &t, &err), 0,
	    "%s", err.message);
	leanauth_token_clear(&t);
	leanauth_close(c);
}
