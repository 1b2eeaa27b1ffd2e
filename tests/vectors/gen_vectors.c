// gen_vectors.c -- writes the shared wire test vectors (tests/vectors/*.bin
// and manifest.json) from the C (protobuf-c) side. The Python and Go client
// suites decode each vector and re-encode it byte for byte; ctest runs this
// program into a temp dir and compares with the committed files (drift).
//
// usage: gen_vectors OUTDIR
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanauth/v1/events.pb-c.h"
#include "leanauth/v1/health.pb-c.h"
#include "leanauth/v1/rpc.pb-c.h"
#include "leanauth/v1/token.pb-c.h"

static const char *outdir;
static json_t     *manifest;

static uint8_t *
pack(const ProtobufCMessage *m, size_t *len)
{
	*len         = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(*len + 1);
	if (buf == NULL) {
		exit(1);
	}
	protobuf_c_message_pack(m, buf);
	return (buf);
}

// emit writes bytes to OUTDIR/name.bin and records it in the manifest with
// kind (the message type, or "event") and the fields a decoder must see.
static void
emit(const char *name, const char *kind, const uint8_t *buf, size_t len,
    json_t *fields, const char *about)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s.bin", outdir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "gen_vectors: cannot write %s\n", path);
		exit(1);
	}
	json_array_append_new(manifest,
	    json_pack("{s:s, s:s, s:s, s:o}", "file", strrchr(path, '/') + 1,
	        "kind", kind, "about", about, "fields", fields));
}

// envelope wraps an inner message in an RpcRequest.
static void
emit_request(const char *name, const char *method,
    const ProtobufCMessage *inner, uint32_t timeout_ms, const char *request_id,
    json_t *inner_fields, const char *about)
{
	Leanauth__V1__RpcRequest r = LEANAUTH__V1__RPC_REQUEST__INIT;
	Leanauth__V1__RpcRequest__MetadataEntry md =
	    LEANAUTH__V1__RPC_REQUEST__METADATA_ENTRY__INIT;
	Leanauth__V1__RpcRequest__MetadataEntry *mdp[1] = {&md};
	size_t                                   plen;
	uint8_t                                 *payload = pack(inner, &plen);
	r.method                                         = (char *) method;
	r.payload.data                                   = payload;
	r.payload.len                                    = plen;
	r.timeout_ms                                     = timeout_ms;
	if (request_id != NULL) {
		md.key       = "request-id";
		md.value     = (char *) request_id;
		r.metadata   = mdp;
		r.n_metadata = 1;
	}
	size_t   len;
	uint8_t *buf    = pack(&r.base, &len);
	json_t  *fields = json_pack("{s:s, s:i, s:o, s:s, s:o}", "method",
	     method, "timeout_ms", (int) timeout_ms, "metadata",
            request_id != NULL ? json_pack("{s:s}", "request-id", request_id)
	                        : json_object(),
	     "payload_kind", inner->descriptor->name, "payload", inner_fields);
	emit(name, "leanauth.v1.RpcRequest", buf, len, fields, about);
	free(buf);
	free(payload);
}

static void
emit_response(const char *name, int code, const char *message,
    const ProtobufCMessage *inner, json_t *inner_fields, const char *about)
{
	Leanauth__V1__RpcResponse r       = LEANAUTH__V1__RPC_RESPONSE__INIT;
	Leanauth__V1__Status      st      = LEANAUTH__V1__STATUS__INIT;
	uint8_t                  *payload = NULL;
	size_t                    plen    = 0;
	st.code                           = code;
	st.message                        = (char *) message;
	r.status                          = &st;
	if (inner != NULL) {
		payload        = pack(inner, &plen);
		r.payload.data = payload;
		r.payload.len  = plen;
	}
	size_t   len;
	uint8_t *buf    = pack(&r.base, &len);
	json_t  *fields = json_pack("{s:{s:i, s:s}, s:s?, s:o}", "status",
	     "code", code, "message", message, "payload_kind",
            inner != NULL ? inner->descriptor->name : NULL, "payload",
            inner_fields != NULL ? inner_fields : json_null());
	emit(name, "leanauth.v1.RpcResponse", buf, len, fields, about);
	free(buf);
	free(payload);
}

// emit_event frames an event as published: topic, NUL, message.
static void
emit_event(const char *name, const ProtobufCMessage *m, json_t *fields,
    const char *about)
{
	size_t   plen;
	uint8_t *payload = pack(m, &plen);
	size_t   tlen    = strlen(m->descriptor->name) + 1;
	uint8_t *buf     = malloc(tlen + plen);
	memcpy(buf, m->descriptor->name, tlen);
	memcpy(buf + tlen, payload, plen);
	json_object_set_new(fields, "topic", json_string(m->descriptor->name));
	emit(name, "event", buf, tlen + plen, fields, about);
	free(buf);
	free(payload);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_vectors OUTDIR\n");
		return (2);
	}
	outdir   = argv[1];
	manifest = json_array();

	{
		Leanauth__V1__GetAccessTokenRequest m =
		    LEANAUTH__V1__GET_ACCESS_TOKEN_REQUEST__INIT;
		m.profile       = "schwab";
		m.force_refresh = 1;
		m.if_generation = 7;
		emit_request("request_get_access_token",
		    "leanauth.v1.TokenService/GetAccessToken", &m.base, 2500,
		    "req-123",
		    json_pack("{s:s, s:b, s:i}", "profile", "schwab",
		        "force_refresh", 1, "if_generation", 7),
		    "GetAccessToken with force_refresh and if_generation, a "
		    "deadline and a request id");
	}
	{
		Leanauth__V1__GetAccessTokenRequest m =
		    LEANAUTH__V1__GET_ACCESS_TOKEN_REQUEST__INIT;
		emit_request("request_get_access_token_defaults",
		    "leanauth.v1.TokenService/GetAccessToken", &m.base, 0,
		    NULL,
		    json_pack("{s:s, s:b, s:i}", "profile", "",
		        "force_refresh", 0, "if_generation", 0),
		    "GetAccessToken for the first profile: every field at its "
		    "default");
	}
	{
		Leanauth__V1__Header  h1     = LEANAUTH__V1__HEADER__INIT;
		Leanauth__V1__Header  h2     = LEANAUTH__V1__HEADER__INIT;
		Leanauth__V1__Header  h3     = LEANAUTH__V1__HEADER__INIT;
		Leanauth__V1__Header *hs[3]  = {&h1, &h2, &h3};
		static const uint8_t  body[] = {0x7b, 0x22, 0x71, 0x22, 0x3a,
		     0x31, 0x7d, 0x00, 0xff, 0x80};
		h1.name                      = "Content-Type";
		h1.value                     = "application/json";
		h2.name                      = "X-Trace";
		h2.value                     = "a";
		h3.name                      = "X-Trace";
		h3.value                     = "b";
		Leanauth__V1__SendRequest m = LEANAUTH__V1__SEND_REQUEST__INIT;
		m.profile                   = "schwab";
		m.method                    = "POST";
		m.url = "https://api.schwabapi.com/trader/v1/orders?x=1&y=%20";
		m.n_headers  = 3;
		m.headers    = hs;
		m.body.data  = (uint8_t *) body;
		m.body.len   = sizeof(body);
		m.timeout_ms = 15000;
		emit_request("request_send", "leanauth.v1.TokenService/Send",
		    &m.base, 20000, "req-456",
		    json_pack(
		        "{s:s, s:s, s:s, s:[[s,s],[s,s],[s,s]], s:s, s:i}",
		        "profile", "schwab", "method", "POST", "url", m.url,
		        "headers", "Content-Type", "application/json",
		        "X-Trace", "a", "X-Trace", "b", "body_hex",
		        "7b2271223a317d00ff80", "timeout_ms", 15000),
		    "Send with repeated headers and a binary body");
	}
	{
		Leanauth__V1__HealthCheckRequest m =
		    LEANAUTH__V1__HEALTH_CHECK_REQUEST__INIT;
		m.profile = "schwab";
		emit_request("request_health", "leanauth.v1.Health/Check",
		    &m.base, 1000, NULL,
		    json_pack("{s:s}", "profile", "schwab"),
		    "Health/Check for one profile");
	}
	{
		Leanauth__V1__GetAccessTokenResponse m =
		    LEANAUTH__V1__GET_ACCESS_TOKEN_RESPONSE__INIT;
		m.token_type =
		    LEANAUTH__V1__TOKEN_TYPE__TOKEN_TYPE_SESSION_TOKEN;
		m.access_token       = "vector-access-token";
		m.expires_at_unix_ms = 1796400000123LL;
		m.generation         = 42;
		emit_response("response_get_access_token", 0, "", &m.base,
		    json_pack("{s:s, s:s, s:I, s:i}", "token_type",
		        "TOKEN_TYPE_SESSION_TOKEN", "access_token",
		        "vector-access-token", "expires_at_unix_ms",
		        (json_int_t) 1796400000123LL, "generation", 42),
		    "a token (SessionToken), OK status");
	}
	{
		emit_response("response_not_found", 5,
		    "unknown profile \"nope\"", NULL, NULL,
		    "an error: NOT_FOUND with its message, no payload");
	}
	{
		Leanauth__V1__Header  h1    = LEANAUTH__V1__HEADER__INIT;
		Leanauth__V1__Header  h2    = LEANAUTH__V1__HEADER__INIT;
		Leanauth__V1__Header *hs[2] = {&h1, &h2};
		h1.name                     = "Set-Cookie";
		h1.value                    = "a=1";
		h2.name                     = "Set-Cookie";
		h2.value                    = "b=2";
		Leanauth__V1__SendResponse m =
		    LEANAUTH__V1__SEND_RESPONSE__INIT;
		m.status_code = 404;
		m.n_headers   = 2;
		m.headers     = hs;
		m.body.data   = (uint8_t *) "not found";
		m.body.len    = 9;
		emit_response("response_send", 0, "", &m.base,
		    json_pack("{s:i, s:[[s,s],[s,s]], s:s}", "status_code",
		        404, "headers", "Set-Cookie", "a=1", "Set-Cookie",
		        "b=2", "body_hex", "6e6f7420666f756e64"),
		    "a Send whose brokerage answered 404: still status OK");
	}
	{
		Leanauth__V1__HealthCheckResponse m =
		    LEANAUTH__V1__HEALTH_CHECK_RESPONSE__INIT;
		m.status = LEANAUTH__V1__SERVING_STATUS__NOT_SERVING;
		emit_response("response_health", 0, "", &m.base,
		    json_pack("{s:s}", "status", "NOT_SERVING"),
		    "Health: NOT_SERVING");
	}
	{
		Leanauth__V1__AuthenticationFailed m =
		    LEANAUTH__V1__AUTHENTICATION_FAILED__INIT;
		m.profile    = "schwab";
		m.brokerage  = "CharlesSchwab";
		m.account_id = "A1";
		m.error      = "Invalid refresh token";
		m.attempts   = 4;
		m.at_unix_ms = 1796400001000LL;
		emit_event("event_authentication_failed", &m.base,
		    json_pack("{s:s, s:s, s:s, s:s, s:i, s:I}", "profile",
		        "schwab", "brokerage", "CharlesSchwab", "account_id",
		        "A1", "error", "Invalid refresh token", "attempts", 4,
		        "at_unix_ms", (json_int_t) 1796400001000LL),
		    "AuthenticationFailed as published");
	}
	{
		Leanauth__V1__TokenRefreshed m =
		    LEANAUTH__V1__TOKEN_REFRESHED__INIT;
		m.profile    = "schwab";
		m.token_type = LEANAUTH__V1__TOKEN_TYPE__TOKEN_TYPE_BEARER;
		m.expires_at_unix_ms = 1796401680000LL;
		m.at_unix_ms         = 1796400000000LL;
		m.generation         = 3;
		emit_event("event_token_refreshed", &m.base,
		    json_pack("{s:s, s:s, s:I, s:I, s:i}", "profile", "schwab",
		        "token_type", "TOKEN_TYPE_BEARER",
		        "expires_at_unix_ms", (json_int_t) 1796401680000LL,
		        "at_unix_ms", (json_int_t) 1796400000000LL,
		        "generation", 3),
		    "TokenRefreshed as published");
	}
	{
		Leanauth__V1__AuthenticationDegraded m =
		    LEANAUTH__V1__AUTHENTICATION_DEGRADED__INIT;
		m.profile                   = "schwab";
		m.error                     = "lean api: HTTP 503";
		m.attempts                  = 4;
		m.token_valid_until_unix_ms = 1796401680000LL;
		m.at_unix_ms                = 1796401300000LL;
		emit_event("event_authentication_degraded", &m.base,
		    json_pack("{s:s, s:s, s:i, s:I, s:I}", "profile", "schwab",
		        "error", "lean api: HTTP 503", "attempts", 4,
		        "token_valid_until_unix_ms",
		        (json_int_t) 1796401680000LL, "at_unix_ms",
		        (json_int_t) 1796401300000LL),
		    "AuthenticationDegraded as published");
	}
	{
		Leanauth__V1__AuthenticationRecovered m =
		    LEANAUTH__V1__AUTHENTICATION_RECOVERED__INIT;
		m.profile    = "schwab";
		m.at_unix_ms = 1796401400000LL;
		emit_event("event_authentication_recovered", &m.base,
		    json_pack("{s:s, s:I}", "profile", "schwab", "at_unix_ms",
		        (json_int_t) 1796401400000LL),
		    "AuthenticationRecovered as published");
	}

	char path[1024];
	snprintf(path, sizeof(path), "%s/manifest.json", outdir);
	if (json_dump_file(manifest, path,
	        JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
		fprintf(stderr, "gen_vectors: cannot write %s\n", path);
		return (1);
	}
	json_decref(manifest);
	return (0);
}
