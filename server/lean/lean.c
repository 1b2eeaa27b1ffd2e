// lean.c -- the Lean platform API client: one signed POST live/auth0/refresh
// per call, its reply classified into la_err. No secret reaches an error
// message or a log line, and every buffer of ours that held one is wiped.
#include "lean.h"

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"

#ifndef LEANAUTH_VERSION
#define LEANAUTH_VERSION "unknown"
#endif

#define LA_LEAN_PATH "live/auth0/refresh"
#define LA_LEAN_REDACTED "[redacted]"
#define LA_LEAN_HASH_HEX 64 // lowercase hex of a SHA-256
#define LA_LEAN_AUTH_NAME "Authorization: "
#define LA_LEAN_AUTH_BASIC "Basic "

// curl_easy_perform only looks at the abort flag about once a second while
// a connection is idle; our own multi loop wakes this often instead, so a
// shutdown never waits on a hung upstream for longer than this.
#define LA_LEAN_POLL_MS 50

// lean_api.timeout_ms of 0 would mean "no timeout" to libcurl; every call
// must have one (STYLE.md, "Bound every input").
#define LA_LEAN_DEFAULT_TIMEOUT_MS 10000

struct la_lean {
	const la_config *cfg; // borrowed
};

static void
la_wipe_free(void *p, size_t n)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, n);
		free(p);
	}
}

static void
la_wipe_free_str(char *s)
{
	if (s != NULL) {
		la_wipe_free(s, strlen(s));
	}
}

// la_strdup_printf is asprintf without _GNU_SOURCE; NULL on failure.
static char *
la_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char   *s;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = malloc((size_t) n + 1)) == NULL) {
		return (NULL);
	}
	va_start(ap, fmt);
	vsnprintf(s, (size_t) n + 1, fmt, ap);
	va_end(ap);
	return (s);
}

// la_json_wipe overwrites every string value in j. jansson frees without
// wiping, and a parsed reply holds the access token; its string buffers are
// plain heap memory, so writing through the const pointer is sound. (The
// parser's own scratch buffers are beyond our reach.)
static void
la_json_wipe(json_t *j)
{
	const char *k;
	json_t     *v;
	size_t      i;

	if (json_is_string(j)) {
		OPENSSL_cleanse((char *) json_string_value(j),
		    json_string_length(j));
	} else if (json_is_object(j)) {
		json_object_foreach (j, k, v) {
			la_json_wipe(v);
		}
	} else if (json_is_array(j)) {
		json_array_foreach (j, i, v) {
			la_json_wipe(v);
		}
	}
}

const char *
la_token_type_name(la_token_type t)
{
	switch (t) {
	case LA_TOKEN_BEARER:
		return ("Bearer");
	case LA_TOKEN_SESSION_TOKEN:
		return ("SessionToken");
	default:
		return ("");
	}
}

void
la_lean_reply_clear(la_lean_reply *r)
{
	if (r == NULL) {
		return;
	}
	la_wipe_free_str(r->access_token);
	r->access_token = NULL;
	r->type         = LA_TOKEN_UNSPECIFIED;
}

// ---- redaction ---------------------------------------------------------

// la_redact_match returns the length of the longest non-empty string of
// redact[] (or extra) found at s[0..len), 0 if none.
static size_t
la_redact_match(const char *s, size_t len, const char *const *redact,
    const char *extra)
{
	size_t best = 0;

	if (redact != NULL) {
		for (size_t i = 0; redact[i] != NULL; i++) {
			if (redact[i][0] != s[0]) {
				continue; // cheap test first: texts can be long
			}
			size_t n = strlen(redact[i]);
			if (n > best && n <= len &&
			    memcmp(s, redact[i], n) == 0) {
				best = n;
			}
		}
	}
	if (extra != NULL && extra[0] == s[0]) {
		size_t n = strlen(extra);
		if (n > best && n <= len && memcmp(s, extra, n) == 0) {
			best = n;
		}
	}
	return (best);
}

// la_redact_dup returns s[0..len) with every secret replaced, at full
// length (heap, NUL-terminated), so that truncating it afterwards can never
// leave half a secret behind. One left-to-right pass: a replacement is never
// searched again, so a secret that occurs inside "[redacted]" cannot loop.
static char *
la_redact_dup(const char *s, size_t len, const char *const *redact,
    const char *extra)
{
	const size_t rl = sizeof(LA_LEAN_REDACTED) - 1;
	size_t       n  = 0;
	char        *out;

	for (size_t i = 0; i < len;) {
		size_t m = la_redact_match(s + i, len - i, redact, extra);
		n += m > 0 ? rl : 1;
		i += m > 0 ? m : 1;
	}
	if ((out = malloc(n + 1)) == NULL) {
		return (NULL);
	}
	n = 0;
	for (size_t i = 0; i < len;) {
		size_t m = la_redact_match(s + i, len - i, redact, extra);
		if (m > 0) {
			memcpy(out + n, LA_LEAN_REDACTED, rl);
			n += rl;
			i += m;
		} else {
			out[n++] = s[i++];
		}
	}
	out[n] = '\0';
	return (out);
}

// la_copy_trunc copies the string src into dst[dstlen], truncating.
static void
la_copy_trunc(char *dst, size_t dstlen, const char *src)
{
	size_t n;

	if (dst == NULL || dstlen == 0) {
		return;
	}
	n = strlen(src);
	if (n > dstlen - 1) {
		n = dstlen - 1;
	}
	memmove(dst, src, n);
	dst[n] = '\0';
}

void
la_lean_redact(char *buf, size_t buflen, const char *const *redact)
{
	char  *r;
	size_t len;
	size_t n;

	if (buf == NULL || buflen == 0) {
		return;
	}
	len = strnlen(buf, buflen);
	if (len == buflen) {
		len--; // not terminated within buflen: the last byte gives way
	}
	if ((r = la_redact_dup(buf, len, redact, NULL)) == NULL) {
		// Cannot tell where the secrets are: drop the whole text.
		OPENSSL_cleanse(buf, buflen);
		la_copy_trunc(buf, buflen, LA_LEAN_REDACTED);
		return;
	}
	la_copy_trunc(buf, buflen, r);
	free(r);
	// A shorter result leaves the old text's tail past the new NUL.
	if ((n = strlen(buf)) < len) {
		OPENSSL_cleanse(buf + n + 1, len - n);
	}
}

// la_set_err writes ours (our own text, never a secret) followed by
// theirs (text from the upstream or libcurl, may be NULL) into err. Only
// theirs is redacted: a short secret must not garble our own words. When
// memory runs out the error's generic text is used instead.
static void
la_set_err(char *err, size_t errlen, la_err rv, const char *ours,
    const char *theirs, const char *const *redact, const char *extra)
{
	char  *r = NULL;
	size_t n;

	if (err == NULL || errlen == 0) {
		return;
	}
	if (theirs != NULL &&
	    (r = la_redact_dup(theirs, strlen(theirs), redact, extra)) ==
	        NULL) {
		la_copy_trunc(err, errlen, la_strerror(rv));
		return;
	}
	la_copy_trunc(err, errlen, ours != NULL ? ours : "");
	if (r != NULL) {
		n = strlen(err);
		la_copy_trunc(err + n, errlen - n, r);
		free(r);
	}
}

// ---- signing -----------------------------------------------------------

// la_lean_hash writes lowercase hex(sha256(api_token ":" unix_s)) into hex.
static la_err
la_lean_hash(const char *api_token, int64_t unix_s,
    char hex[LA_LEAN_HASH_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char     md[EVP_MAX_MD_SIZE];
	unsigned int      mdlen = 0;
	char             *in    = NULL;
	int               n;
	la_err            rv;

	n = snprintf(NULL, 0, "%s:%" PRId64, api_token, unix_s);
	if (n < 0) {
		rv = LA_ERR_INVALID;
		goto fail;
	}
	if ((in = malloc((size_t) n + 1)) == NULL) {
		rv = LA_ERR_NOMEM;
		goto fail;
	}
	snprintf(in, (size_t) n + 1, "%s:%" PRId64, api_token, unix_s);
	if (EVP_Digest(in, (size_t) n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen * 2 != LA_LEAN_HASH_HEX) {
		rv = LA_ERR_INTERNAL;
		goto fail;
	}
	for (unsigned int i = 0; i < mdlen; i++) {
		hex[2 * i]     = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[LA_LEAN_HASH_HEX] = '\0';
	rv                    = LA_OK;
fail:
	OPENSSL_cleanse(md, sizeof(md));
	if (in != NULL) {
		la_wipe_free(in, (size_t) n + 1);
	}
	return (rv);
}

// la_lean_sign_len is the size (with NUL) of the header value for a user id
// of ulen bytes: "Basic " + base64(user ":" 64 hex digits).
static size_t
la_lean_sign_len(size_t ulen)
{
	size_t clen = ulen + 1 + LA_LEAN_HASH_HEX;
	return (sizeof(LA_LEAN_AUTH_BASIC) - 1 + 4 * ((clen + 2) / 3) + 1);
}

// la_lean_sign_hex writes "Basic " base64(user_id ":" hex) into out.
static la_err
la_lean_sign_hex(const char *user_id, const char *hex, char *out,
    size_t outlen)
{
	const size_t pre  = sizeof(LA_LEAN_AUTH_BASIC) - 1;
	size_t       ulen = strlen(user_id);
	size_t       clen;
	char        *cred = NULL;
	la_err       rv;

	// EVP_EncodeBlock takes an int; no sane user id comes near this.
	if (ulen > INT_MAX / 2) {
		rv = LA_ERR_TOO_BIG;
		goto fail;
	}
	clen = ulen + 1 + strlen(hex);
	if (outlen < la_lean_sign_len(ulen)) {
		rv = LA_ERR_TOO_BIG;
		goto fail;
	}
	if ((cred = malloc(clen + 1)) == NULL) {
		rv = LA_ERR_NOMEM;
		goto fail;
	}
	memcpy(cred, user_id, ulen);
	cred[ulen] = ':';
	memcpy(cred + ulen + 1, hex, clen - ulen - 1);
	cred[clen] = '\0';
	memcpy(out, LA_LEAN_AUTH_BASIC, pre);
	// Writes 4*ceil(clen/3) characters and a NUL: fits, checked above.
	EVP_EncodeBlock((unsigned char *) out + pre, (unsigned char *) cred,
	    (int) clen);
	rv = LA_OK;
fail:
	if (rv != LA_OK && out != NULL && outlen > 0) {
		out[0] = '\0';
	}
	if (cred != NULL) {
		la_wipe_free(cred, clen + 1);
	}
	return (rv);
}

la_err
la_lean_sign(const char *user_id, const char *api_token, int64_t unix_s,
    char *out, size_t outlen)
{
	char   hex[LA_LEAN_HASH_HEX + 1];
	la_err rv;

	if (user_id == NULL || api_token == NULL || out == NULL) {
		return (LA_ERR_INVALID);
	}
	if ((rv = la_lean_hash(api_token, unix_s, hex)) == LA_OK) {
		rv = la_lean_sign_hex(user_id, hex, out, outlen);
	} else if (outlen > 0) {
		out[0] = '\0';
	}
	OPENSSL_cleanse(hex, sizeof(hex));
	return (rv);
}

// ---- request body ------------------------------------------------------

// la_body_add appends key:val unless val is NULL. The _nocheck constructor
// is used so that allocation failure is the only NULL; invalid UTF-8 is
// caught when the object is dumped.
static la_err
la_body_add(json_t *o, const char *key, const char *val)
{
	json_t *s;

	if (val == NULL) {
		return (LA_OK);
	}
	if ((s = json_string_nocheck(val)) == NULL) {
		return (LA_ERR_NOMEM);
	}
	if (json_object_set_new(o, key, s) != 0) {
		return (LA_ERR_NOMEM);
	}
	return (LA_OK);
}

// la_lean_body_build is la_lean_body with an error code: LA_ERR_INVALID
// when a field is not valid UTF-8, LA_ERR_NOMEM otherwise.
static la_err
la_lean_body_build(const la_profile_cfg *p, char **out)
{
	const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
	json_t      *o     = NULL;
	char        *brok  = NULL;
	char        *text  = NULL;
	size_t       n     = 0;
	la_err       rv;

	*out = NULL;
	if ((o = json_object()) == NULL) {
		rv = LA_ERR_NOMEM;
		goto fail;
	}
	if (p->brokerage != NULL) {
		if ((brok = strdup(p->brokerage)) == NULL) {
			rv = LA_ERR_NOMEM;
			goto fail;
		}
		// ASCII only: brokerage names are identifiers, and a
		// locale-dependent tolower would change with the environment.
		for (char *c = brok; *c != '\0'; c++) {
			if (*c >= 'A' && *c <= 'Z') {
				*c = (char) (*c - 'A' + 'a');
			}
		}
	}
	// Insertion order is the wire order (JSON_PRESERVE_ORDER).
	if ((rv = la_body_add(o, "brokerage", brok)) != LA_OK ||
	    (rv = la_body_add(o, "accountId", p->account_id)) != LA_OK ||
	    (rv = la_body_add(o, "refreshToken", p->refresh_token)) != LA_OK ||
	    (rv = la_body_add(o, "deployId", p->deploy_id)) != LA_OK) {
		goto fail;
	}
	// Dump straight into a buffer of ours: json_dumps grows its own with
	// realloc, leaving unwiped copies of the refresh token behind.
	if ((n = json_dumpb(o, NULL, 0, flags)) == 0) {
		rv = LA_ERR_INVALID; // only invalid UTF-8 makes this fail
		goto fail;
	}
	if ((text = malloc(n + 1)) == NULL) {
		rv = LA_ERR_NOMEM;
		goto fail;
	}
	if (json_dumpb(o, text, n, flags) != n) {
		rv = LA_ERR_INTERNAL;
		goto fail;
	}
	text[n] = '\0';
	*out    = text;
	text    = NULL;
	rv      = LA_OK;
fail:
	if (text != NULL) {
		la_wipe_free(text, n + 1);
	}
	free(brok);
	if (o != NULL) {
		la_json_wipe(o);
		json_decref(o);
	}
	return (rv);
}

char *
la_lean_body(const la_profile_cfg *p)
{
	char *body;

	if (p == NULL || la_lean_body_build(p, &body) != LA_OK) {
		return (NULL);
	}
	return (body);
}

// ---- reply -------------------------------------------------------------

// la_join_errors returns the reply's "errors" (an array of strings, or one
// string) joined by "; ", heap; NULL when there are none.
static char *
la_join_errors(json_t *root)
{
	json_t *errs = json_object_get(root, "errors");
	json_t *v;
	size_t  i;
	size_t  n = 0;
	char   *s;

	if (json_is_string(errs)) {
		if (json_string_length(errs) == 0) {
			return (NULL);
		}
		return (strdup(json_string_value(errs)));
	}
	if (!json_is_array(errs)) {
		return (NULL);
	}
	json_array_foreach (errs, i, v) {
		if (json_is_string(v) && json_string_length(v) > 0) {
			n += strlen(json_string_value(v)) + 2;
		}
	}
	if (n == 0 || (s = malloc(n + 1)) == NULL) {
		return (NULL);
	}
	n = 0;
	json_array_foreach (errs, i, v) {
		const char *e;
		size_t      len;
		if (!json_is_string(v) || json_string_length(v) == 0) {
			continue;
		}
		if (n > 0) {
			memcpy(s + n, "; ", 2);
			n += 2;
		}
		e   = json_string_value(v);
		len = strlen(e);
		memcpy(s + n, e, len);
		n += len;
	}
	s[n] = '\0';
	return (s);
}

// la_parse_type maps tokenType; false when it is neither a known name nor
// 0/1. Names compare case-insensitively and by full length (no "Bearer\0x").
static bool
la_parse_type(json_t *tt, la_token_type *out)
{
	if (tt == NULL) {
		*out = LA_TOKEN_BEARER;
		return (true);
	}
	if (json_is_string(tt)) {
		const char *s = json_string_value(tt);
		size_t      n = json_string_length(tt);
		if (n == 6 && strncasecmp(s, "Bearer", n) == 0) {
			*out = LA_TOKEN_BEARER;
			return (true);
		}
		if (n == 12 && strncasecmp(s, "SessionToken", n) == 0) {
			*out = LA_TOKEN_SESSION_TOKEN;
			return (true);
		}
		return (false);
	}
	if (json_is_integer(tt)) {
		switch (json_integer_value(tt)) {
		case 0:
			*out = LA_TOKEN_BEARER;
			return (true);
		case 1:
			*out = LA_TOKEN_SESSION_TOKEN;
			return (true);
		}
	}
	return (false);
}

// la_token_ok says whether the token can go into an HTTP header as is: no
// NUL (jansson allows \u0000), CR, LF or other control characters.
static bool
la_token_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char) s[i];
		if (c < 0x20 || c == 0x7f) {
			return (false);
		}
	}
	return (true);
}

la_err
la_lean_parse(long http_status, const char *body, size_t len,
    const char *const *redact, la_lean_reply *out, char *err, size_t errlen)
{
	json_t       *root   = NULL;
	json_t       *tok    = NULL;
	json_t       *ok     = NULL;
	char         *errors = NULL; // the upstream's, joined
	const char   *fixed  = NULL; // our text for err
	const char   *theirs = NULL; // the upstream's text for err, redacted
	char          pfx[64];
	const char   *at   = NULL; // the reply's token, redacted as well
	la_token_type type = LA_TOKEN_UNSPECIFIED;
	json_error_t  jerr;
	la_err        rv;

	la_copy_trunc(err, errlen, "");
	if (out != NULL) {
		out->type         = LA_TOKEN_UNSPECIFIED;
		out->access_token = NULL;
	}
	if (out == NULL || (body == NULL && len > 0)) {
		rv    = LA_ERR_INVALID;
		fixed = "lean api: invalid argument";
		goto fail;
	}
	if (len > 0) {
		// Duplicate keys would make "success" ambiguous: garbage.
		root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	}
	if (json_is_object(root)) {
		errors = la_join_errors(root);
		tok    = json_object_get(root, "accessToken");
		ok     = json_object_get(root, "success");
		if (json_is_string(tok)) {
			at = json_string_value(tok);
		}
	}

	if (http_status == 401 || http_status == 403 || http_status < 200 ||
	    http_status > 299) {
		rv = (http_status == 401 || http_status == 403)
		    ? LA_ERR_UNAUTHENTICATED
		    : LA_ERR_UNAVAILABLE;
		snprintf(pfx, sizeof(pfx), "lean api: HTTP %ld%s", http_status,
		    errors != NULL ? ": " : "");
		fixed  = pfx;
		theirs = errors;
		goto fail;
	}
	if (!json_is_object(root) || !json_is_boolean(ok)) {
		rv    = LA_ERR_UNAVAILABLE;
		fixed = "lean api: unparseable reply";
		goto fail;
	}
	if (json_is_false(ok)) {
		rv = LA_ERR_UNAUTHENTICATED;
		if (errors != NULL) {
			theirs = errors;
		} else {
			fixed = "lean api refused the request";
		}
		goto fail;
	}
	if (!json_is_string(tok) || json_string_length(tok) == 0) {
		rv    = LA_ERR_UNAVAILABLE;
		fixed = "lean api: reply has no accessToken";
		goto fail;
	}
	if (json_string_length(tok) > LA_LEAN_MAX_TOKEN) {
		rv    = LA_ERR_UNAVAILABLE;
		fixed = "lean api: accessToken too long";
		goto fail;
	}
	if (!la_token_ok(at, json_string_length(tok))) {
		rv    = LA_ERR_UNAVAILABLE;
		fixed = "lean api: accessToken has invalid characters";
		goto fail;
	}
	if (!la_parse_type(json_object_get(root, "tokenType"), &type)) {
		rv    = LA_ERR_UNAVAILABLE;
		fixed = "lean api: unknown tokenType";
		goto fail;
	}
	if ((out->access_token = strdup(at)) == NULL) {
		rv    = LA_ERR_NOMEM;
		fixed = "lean api: out of memory";
		goto fail;
	}
	out->type = type;
	rv        = LA_OK;
fail:
	if (rv != LA_OK) {
		la_set_err(err, errlen, rv, fixed, theirs, redact, at);
	}
	// Upstream errors may echo secrets back: wipe them like the rest.
	la_wipe_free_str(errors);
	if (root != NULL) {
		la_json_wipe(root);
		json_decref(root);
	}
	return (rv);
}

// ---- the call ----------------------------------------------------------

la_err
la_lean_create(la_lean **out, const la_config *cfg)
{
	la_lean *l;

	if (out == NULL) {
		return (LA_ERR_INVALID);
	}
	*out = NULL;
	if (cfg == NULL || cfg->lean_url == NULL ||
	    cfg->lean_user_id == NULL || cfg->lean_api_token == NULL) {
		return (LA_ERR_INVALID);
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		return (LA_ERR_NOMEM);
	}
	l->cfg = cfg;
	*out   = l;
	return (LA_OK);
}

void
la_lean_destroy(la_lean *l)
{
	free(l);
}

// la_sink collects the reply body up to LA_LEAN_MAX_REPLY. It grows by
// copying, never realloc, so that no unwiped copy of the token is freed.
typedef struct la_sink {
	char  *buf;
	size_t len;
	size_t cap;
	bool   too_big;
	bool   nomem;
} la_sink;

static size_t
la_sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
	la_sink *s = arg;
	size_t   n = size * nmemb; // size is always 1 (CURLOPT_WRITEFUNCTION)
	size_t   cap;
	char    *nb;

	if (n > LA_LEAN_MAX_REPLY - s->len) {
		s->too_big = true;
		return (0); // != n: curl stops with CURLE_WRITE_ERROR
	}
	if (s->len + n > s->cap) {
		cap = s->cap > 0 ? s->cap : 4096;
		while (cap < s->len + n) {
			cap *= 2;
		}
		if (cap > LA_LEAN_MAX_REPLY) {
			cap = LA_LEAN_MAX_REPLY;
		}
		if ((nb = malloc(cap)) == NULL) {
			s->nomem = true;
			return (0);
		}
		if (s->len > 0) {
			memcpy(nb, s->buf, s->len);
		}
		la_wipe_free(s->buf, s->cap);
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return (n);
}

// la_abort_cb stops a transfer that is moving data; la_perform's loop
// covers the idle waits between callbacks.
static int
la_abort_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	const atomic_bool *abort_flag = arg;

	return (abort_flag != NULL && atomic_load(abort_flag) ? 1 : 0);
}

// la_slist_free wipes the copies of our header lines (one is the
// Authorization header) that curl_slist_append made, then frees them.
static void
la_slist_free(struct curl_slist *h)
{
	for (struct curl_slist *n = h; n != NULL; n = n->next) {
		if (n->data != NULL) {
			OPENSSL_cleanse(n->data, strlen(n->data));
		}
	}
	curl_slist_free_all(h);
}

// la_headers appends lines (NULL-terminated) to *hdrs.
static la_err
la_headers(struct curl_slist **hdrs, const char *const *lines)
{
	struct curl_slist *h;

	for (size_t i = 0; lines[i] != NULL; i++) {
		if ((h = curl_slist_append(*hdrs, lines[i])) == NULL) {
			return (LA_ERR_NOMEM);
		}
		*hdrs = h;
	}
	return (LA_OK);
}

static int64_t
la_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

// la_perform runs easy to completion on a private multi handle, checking
// abort_flag every LA_LEAN_POLL_MS. *aborted tells an abort from a failure.
static CURLcode
la_perform(CURL *easy, const atomic_bool *abort_flag, bool *aborted)
{
	CURLM    *multi;
	CURLMsg  *m;
	CURLMcode mc;
	CURLcode  cc      = CURLE_FAILED_INIT;
	int       left    = 0;
	int       running = 1;

	*aborted = false;
	if ((multi = curl_multi_init()) == NULL) {
		return (CURLE_OUT_OF_MEMORY);
	}
	if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
		curl_multi_cleanup(multi);
		return (CURLE_FAILED_INIT);
	}
	for (;;) {
		if ((mc = curl_multi_perform(multi, &running)) != CURLM_OK) {
			cc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
			                               : CURLE_FAILED_INIT;
			break;
		}
		if (running == 0) {
			while (
			    (m = curl_multi_info_read(multi, &left)) != NULL) {
				if (m->msg == CURLMSG_DONE &&
				    m->easy_handle == easy) {
					cc = m->data.result;
				}
			}
			break;
		}
		if (abort_flag != NULL && atomic_load(abort_flag)) {
			*aborted = true;
			cc       = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if ((mc = curl_multi_poll(multi, NULL, 0, LA_LEAN_POLL_MS,
		         NULL)) != CURLM_OK) {
			cc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
			                               : CURLE_FAILED_INIT;
			break;
		}
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK && abort_flag != NULL &&
	    atomic_load(abort_flag)) {
		*aborted = true; // la_abort_cb fired
	}
	// Leaves easy as curl_easy_perform would: usable again, options kept.
	curl_multi_remove_handle(multi, easy);
	curl_multi_cleanup(multi);
	return (cc);
}

// la_unset_options removes every pointer into la_lean_fetch's frame or
// buffers from easy before they go away.
static void
la_unset_options(CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, NULL);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 1L);
	curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, NULL);
	curl_easy_setopt(easy, CURLOPT_XFERINFODATA, NULL);
}

#define LA_SETOPT(opt, val)                                                   \
	do {                                                                  \
		if ((cc = curl_easy_setopt(easy, opt, val)) != CURLE_OK) {    \
			rv     = LA_ERR_INTERNAL;                             \
			fixed  = "lean api: setting " #opt ": ";              \
			theirs = curl_easy_strerror(cc);                      \
			goto fail;                                            \
		}                                                             \
	} while (0)

la_err
la_lean_fetch(la_lean *l, CURL *easy, const la_profile_cfg *p,
    const atomic_bool *abort_flag, la_lean_reply *out, char *err,
    size_t errlen)
{
	const la_config   *cfg;
	la_sink            sink = {0};
	struct curl_slist *hdrs = NULL;
	// Timestamp and Authorization go first. "Expect:" stops curl from
	// waiting for a 100-continue should a body ever grow large.
	const char *lines[] = {NULL, NULL, "Content-Type: application/json",
	    "Accept: application/json", "Expect:", NULL};
	char        errbuf[CURL_ERROR_SIZE];
	char        hash[LA_LEAN_HASH_HEX + 1] = "";
	char        tshdr[48];
	char       *auth    = NULL; // "Authorization: Basic …"
	size_t      authlen = 0;
	char       *url     = NULL;
	char       *body    = NULL;
	const char *fixed   = NULL; // our text for err
	const char *theirs  = NULL; // libcurl's text for err, redacted
	const char *redact[5];
	size_t      nr      = 0;
	bool        touched = false; // options were set on easy
	bool        aborted = false;
	bool        err_set = false; // la_lean_parse wrote err
	CURLcode    cc      = CURLE_OK;
	long        status  = 0;
	long        tmo;
	int64_t     t0 = la_mono_ms();
	int64_t     ts;
	la_err      rv;

	errbuf[0] = '\0';
	redact[0] = NULL;
	la_copy_trunc(err, errlen, "");
	if (out != NULL) {
		out->type         = LA_TOKEN_UNSPECIFIED;
		out->access_token = NULL;
	}
	if (l == NULL || easy == NULL || p == NULL || out == NULL) {
		rv    = LA_ERR_INVALID;
		fixed = "lean api: invalid argument";
		goto fail;
	}
	cfg = l->cfg;
	if (abort_flag != NULL && atomic_load(abort_flag)) {
		rv    = LA_ERR_SHUTDOWN;
		fixed = "lean api: call aborted: shutting down";
		goto fail;
	}

	// Sign. The redact list is complete before anything can fail with a
	// message: the API token, refresh token, hash and the credential.
	ts           = (int64_t) time(NULL);
	redact[nr++] = cfg->lean_api_token;
	if (p->refresh_token != NULL) {
		redact[nr++] = p->refresh_token;
	}
	redact[nr] = NULL;
	if ((rv = la_lean_hash(cfg->lean_api_token, ts, hash)) != LA_OK) {
		fixed = "lean api: cannot compute the signature";
		goto fail;
	}
	redact[nr++] = hash;
	redact[nr]   = NULL;
	authlen      = sizeof(LA_LEAN_AUTH_NAME) - 1 +
	    la_lean_sign_len(strlen(cfg->lean_user_id));
	if ((auth = malloc(authlen)) == NULL) {
		rv    = LA_ERR_NOMEM;
		fixed = "lean api: out of memory";
		goto fail;
	}
	memcpy(auth, LA_LEAN_AUTH_NAME, sizeof(LA_LEAN_AUTH_NAME) - 1);
	if ((rv = la_lean_sign_hex(cfg->lean_user_id, hash,
	         auth + sizeof(LA_LEAN_AUTH_NAME) - 1,
	         authlen - (sizeof(LA_LEAN_AUTH_NAME) - 1))) != LA_OK) {
		fixed = "lean api: cannot build the Authorization header";
		goto fail;
	}
	// The base64 credential, in case an upstream echoes our header.
	redact[nr++] = auth + sizeof(LA_LEAN_AUTH_NAME) - 1 +
	    sizeof(LA_LEAN_AUTH_BASIC) - 1;
	redact[nr] = NULL;

	if ((rv = la_lean_body_build(p, &body)) != LA_OK) {
		fixed = rv == LA_ERR_INVALID
		    ? "lean api: profile fields are not valid UTF-8"
		    : "lean api: out of memory";
		goto fail;
	}
	snprintf(tshdr, sizeof(tshdr), "Timestamp: %" PRId64, ts);
	lines[0] = tshdr;
	lines[1] = auth;
	if ((url = la_strdup_printf("%s%s", cfg->lean_url, LA_LEAN_PATH)) ==
	        NULL ||
	    (rv = la_headers(&hdrs, lines)) != LA_OK) {
		rv    = LA_ERR_NOMEM;
		fixed = "lean api: out of memory";
		goto fail;
	}

	tmo     = cfg->lean_timeout_ms > 0 ? (long) cfg->lean_timeout_ms
	                                   : LA_LEAN_DEFAULT_TIMEOUT_MS;
	touched = true;
	LA_SETOPT(CURLOPT_ERRORBUFFER, errbuf);
	LA_SETOPT(CURLOPT_URL, url);
	LA_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	LA_SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	LA_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	LA_SETOPT(CURLOPT_NOSIGNAL, 1L);
	LA_SETOPT(CURLOPT_TIMEOUT_MS, tmo);
	LA_SETOPT(CURLOPT_CONNECTTIMEOUT_MS, tmo);
	LA_SETOPT(CURLOPT_POST, 1L);
	LA_SETOPT(CURLOPT_POSTFIELDS, body);
	LA_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body));
	LA_SETOPT(CURLOPT_HTTPHEADER, hdrs);
	LA_SETOPT(CURLOPT_USERAGENT, "leanauthd/" LEANAUTH_VERSION);
	LA_SETOPT(CURLOPT_WRITEFUNCTION, la_sink_write);
	LA_SETOPT(CURLOPT_WRITEDATA, &sink);
	LA_SETOPT(CURLOPT_NOPROGRESS, 0L);
	LA_SETOPT(CURLOPT_XFERINFOFUNCTION, la_abort_cb);
	LA_SETOPT(CURLOPT_XFERINFODATA, (void *) abort_flag);

	cc = la_perform(easy, abort_flag, &aborted);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (aborted) {
		rv    = LA_ERR_SHUTDOWN;
		fixed = "lean api: call aborted: shutting down";
	} else if (sink.too_big) {
		rv    = LA_ERR_UNAVAILABLE;
		fixed = "lean api: reply too large";
	} else if (sink.nomem) {
		rv    = LA_ERR_NOMEM;
		fixed = "lean api: out of memory";
	} else if (cc != CURLE_OK) {
		rv     = cc == CURLE_OUT_OF_MEMORY ? LA_ERR_NOMEM
		                                   : LA_ERR_UNAVAILABLE;
		fixed  = "lean api: ";
		theirs = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc);
	} else {
		rv = la_lean_parse(status, sink.buf, sink.len, redact, out,
		    err, errlen);
		err_set = true;
	}
fail:
	if (rv != LA_OK && !err_set) {
		la_set_err(err, errlen, rv, fixed, theirs, redact, NULL);
	}
	la_log(LA_LOG_DEBUG, "lean refresh attempt", "{s:s?, s:I, s:I, s:s}",
	    "profile", p != NULL ? p->name : NULL, "http_status",
	    (json_int_t) status, "elapsed_ms",
	    (json_int_t) (la_mono_ms() - t0), "result", la_strerror(rv));
	if (touched) {
		la_unset_options(easy);
	}
	la_slist_free(hdrs);
	la_wipe_free(sink.buf, sink.cap);
	la_wipe_free_str(body);
	free(url);
	if (auth != NULL) {
		la_wipe_free(auth, authlen);
	}
	OPENSSL_cleanse(hash, sizeof(hash));
	OPENSSL_cleanse(errbuf, sizeof(errbuf));
	return (rv);
}
