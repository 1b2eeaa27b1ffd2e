// config.c -- leanauthd's configuration: reads one JSON file, checks every
// key against DESIGN.md's contract, fills in defaults and resolves secrets
// (inline, <key>_file, <key>_env). Owns the la_config it returns.
//
// Errors are "<key path>: <what is wrong>" in the caller's buffer. They never
// quote a value: a secret typed into the wrong key must not reach a log.
#include "config.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"

#define LA_CONFIG_MAX (1024 * 1024) // config file cap
#define LA_SECRET_MAX (64 * 1024)   // secret file/variable cap
#define LA_MAX_MS 3600000           // every timeout and interval: 1 hour
#define LA_MAX_BODY (256 * 1024 * 1024)
#define LA_MAX_LIFETIME_S (365 * 86400)
#define LA_MAX_RETRIES 100
#define LA_MAX_MULTIPLIER 100.0
#define LA_NAME_MAX 128
#define LA_KEYPATH_MAX 256
#define LA_LEAN_URL "https://www.quantconnect.com/api/v2/"

typedef struct la_ctx {
	char       *err;
	size_t      errlen;
	const char *base_dir; // relative file paths resolve here; NULL: cwd
} la_ctx;

// Flags for la_str.
enum {
	LA_REQUIRED    = 1 << 0,
	LA_ALLOW_EMPTY = 1 << 1,
};

static const char *const la_root_keys[]   = {"listen", "workers", "queue_size",
      "max_inflight", "default_timeout_ms", "log_level", "lean_api", "profiles",
      NULL};
static const char *const la_listen_keys[] = {"rpc", "events", "http", "tls",
    NULL};
static const char *const la_tls_keys[]  = {"cert_file", "key_file", "ca_file",
     "require_client_cert", NULL};
static const char *const la_lean_keys[] = {"url", "user_id", "api_token",
    "api_token_file", "api_token_env", "timeout_ms", NULL};
static const char *const la_profile_keys[] = {"name", "brokerage",
    "account_id", "refresh_token", "refresh_token_file", "refresh_token_env",
    "deploy_id", "token_lifetime_s", "offset_before_expiration_s",
    "max_retry_count", "retry_interval_ms", "retry_backoff", "refresh_ahead_s",
    "send", NULL};
static const char *const la_backoff_keys[] = {"multiplier", "max_interval_ms",
    "jitter", NULL};
static const char *const la_send_keys[]    = {"allowed_urls", "timeout_ms",
       "max_body_bytes", NULL};

// ---- errors and key paths ----

// la_join writes "parent.key", or "key" at the top level, or just "parent"
// when key is NULL (an array element names itself: "profiles[1]").
static void
la_join(char *buf, size_t len, const char *parent, const char *key)
{
	if (key == NULL) {
		snprintf(buf, len, "%s", parent);
	} else if (parent[0] == '\0') {
		snprintf(buf, len, "%s", key);
	} else {
		snprintf(buf, len, "%s.%s", parent, key);
	}
}

static int la_bad(la_ctx *c, const char *parent, const char *key,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

// la_bad writes "<parent.key>: <fmt…>" to the caller's buffer and returns
// LA_ERR_INVALID, so that callers can `return (la_bad(…))`.
static int
la_bad(la_ctx *c, const char *parent, const char *key, const char *fmt, ...)
{
	char    path[LA_KEYPATH_MAX];
	va_list ap;
	int     n;

	if (c->err == NULL || c->errlen == 0) {
		return (LA_ERR_INVALID);
	}
	la_join(path, sizeof(path), parent, key);
	n = snprintf(c->err, c->errlen, "%s: ", path);
	if (n >= 0 && (size_t) n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - (size_t) n, fmt, ap);
		va_end(ap);
	}
	return (LA_ERR_INVALID);
}

static int
la_nomem(la_ctx *c, const char *parent, const char *key)
{
	la_bad(c, parent, key, "out of memory");
	return (LA_ERR_NOMEM);
}

// ---- secrets in memory ----

static void
la_wipe_free(char *p, size_t len)
{
	if (p != NULL) {
		explicit_bzero(p, len);
		free(p);
	}
}

static void
la_secret_free(char *s)
{
	if (s != NULL) {
		la_wipe_free(s, strlen(s));
	}
}

// la_scrub_json wipes obj[key]'s string in place. jansson frees a document
// without wiping it, and an inline secret must not outlive the parse.
// (Copies freed inside jansson's lexer while parsing are beyond our reach.)
static void
la_scrub_json(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (json_is_string(v)) {
		explicit_bzero((char *) json_string_value(v),
		    json_string_length(v));
	}
}

static void
la_scrub_doc(json_t *root)
{
	json_t *profiles = json_object_get(root, "profiles");
	json_t *p;
	size_t  i;

	la_scrub_json(json_object_get(root, "lean_api"), "api_token");
	json_array_foreach (profiles, i, p) {
		la_scrub_json(p, "refresh_token");
	}
}

// ---- files ----

// la_read_file reads path into a new NUL-terminated buffer of cap + 1
// bytes. Returns 0, an errno value, or EFBIG when the file holds more than
// cap bytes. The buffer is sized up front so that a secret is never left
// behind in a block freed by realloc.
static int
la_read_file(const char *path, size_t cap, char **out, size_t *lenp)
{
	char   *buf;
	size_t  n = 0;
	ssize_t r;
	int     fd;
	int     rv;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		return (errno);
	}
	if ((buf = malloc(cap + 1)) == NULL) {
		close(fd);
		return (ENOMEM);
	}
	// Read up to one byte past the cap: exactly cap is fine, more is not.
	while (n <= cap) {
		if ((r = read(fd, buf + n, cap + 1 - n)) < 0) {
			if (errno == EINTR) {
				continue;
			}
			rv = errno;
			goto fail;
		}
		if (r == 0) {
			break;
		}
		n += (size_t) r;
	}
	if (n > cap) {
		rv = EFBIG;
		goto fail;
	}
	close(fd);
	buf[n] = '\0';
	*out   = buf;
	*lenp  = n;
	return (0);

fail:
	la_wipe_free(buf, n);
	close(fd);
	return (rv);
}

// la_resolve makes a file path named in the config absolute against the
// config file's directory, so that a config and its secrets can move
// together. Without a base directory (la_config_parse) paths stay as given.
static int
la_resolve(la_ctx *c, const char *parent, const char *key, const char *file,
    char **out)
{
	size_t len;

	if (c->base_dir == NULL || file[0] == '/') {
		*out = strdup(file);
	} else {
		len = strlen(c->base_dir) + 1 + strlen(file) + 1;
		if ((*out = malloc(len)) != NULL) {
			// base_dir is "/" or has no trailing slash.
			snprintf(*out, len, "%s%s%s",
			    strcmp(c->base_dir, "/") == 0 ? "" : c->base_dir,
			    "/", file);
		}
	}
	return (*out == NULL ? la_nomem(c, parent, key) : 0);
}

// ---- typed getters: absent or null → default ----

// la_get returns obj[key], treating JSON null as absent.
static json_t *
la_get(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return (json_is_null(v) ? NULL : v);
}

// la_check_keys rejects the first key of obj (in file order) not in known.
static int
la_check_keys(la_ctx *c, json_t *obj, const char *path,
    const char *const *known)
{
	const char *key;
	json_t     *v = NULL;
	size_t      i;

	if (obj == NULL) {
		return (0);
	}
	json_object_foreach (obj, key, v) {
		for (i = 0; known[i] != NULL; i++) {
			if (strcmp(known[i], key) == 0) {
				break;
			}
		}
		if (known[i] == NULL) {
			return (la_bad(c, path, key, "unknown key"));
		}
	}
	return (0);
}

static int
la_obj(la_ctx *c, json_t *obj, const char *path, const char *key, json_t **out)
{
	json_t *v = la_get(obj, key);

	if (v != NULL && !json_is_object(v)) {
		return (la_bad(c, path, key, "must be an object"));
	}
	*out = v;
	return (0);
}

// la_str copies obj[key] (or def) into *out; *out is NULL when both are
// absent. Empty strings are refused unless LA_ALLOW_EMPTY.
static int
la_str(la_ctx *c, json_t *obj, const char *path, const char *key, int flags,
    const char *def, char **out)
{
	json_t     *v = la_get(obj, key);
	const char *s = def;

	*out = NULL;
	if (v == NULL) {
		if ((flags & LA_REQUIRED) != 0) {
			return (la_bad(c, path, key, "required"));
		}
	} else if (!json_is_string(v)) {
		return (la_bad(c, path, key, "must be a string"));
	} else {
		s = json_string_value(v);
		if (s[0] == '\0' && (flags & LA_ALLOW_EMPTY) == 0) {
			return (la_bad(c, path, key, "must not be empty"));
		}
	}
	if (s != NULL && (*out = strdup(s)) == NULL) {
		return (la_nomem(c, path, key));
	}
	return (0);
}

static int
la_int(la_ctx *c, json_t *obj, const char *path, const char *key, int64_t min,
    int64_t max, int64_t def, int64_t *out)
{
	json_t *v = la_get(obj, key);

	if (v == NULL) {
		*out = def;
		return (0);
	}
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		return (la_bad(c, path, key,
		    "must be an integer between %" PRId64 " and %" PRId64, min,
		    max));
	}
	*out = json_integer_value(v);
	return (0);
}

static int
la_u32(la_ctx *c, json_t *obj, const char *path, const char *key, uint32_t min,
    uint32_t max, uint32_t def, uint32_t *out)
{
	int64_t v = 0;
	int     rv;

	if ((rv = la_int(c, obj, path, key, min, max, def, &v)) == 0) {
		*out = (uint32_t) v;
	}
	return (rv);
}

// la_num reads a real; integers are accepted too ("multiplier": 2).
static int
la_num(la_ctx *c, json_t *obj, const char *path, const char *key, double min,
    double max, double def, double *out)
{
	json_t *v = la_get(obj, key);

	if (v == NULL) {
		*out = def;
		return (0);
	}
	if (!json_is_number(v) || json_number_value(v) < min ||
	    json_number_value(v) > max) {
		return (la_bad(c, path, key,
		    "must be a number between %g and %g", min, max));
	}
	*out = json_number_value(v);
	return (0);
}

static int
la_bool(la_ctx *c, json_t *obj, const char *path, const char *key, bool def,
    bool *out)
{
	json_t *v = la_get(obj, key);

	if (v == NULL) {
		*out = def;
		return (0);
	}
	if (!json_is_boolean(v)) {
		return (la_bad(c, path, key, "must be true or false"));
	}
	*out = json_is_true(v);
	return (0);
}

// ---- secrets: exactly one of <key>, <key>_file, <key>_env ----

static int
la_secret_inline(la_ctx *c, const char *path, const char *key, json_t *v,
    char **out)
{
	if (!json_is_string(v)) {
		return (la_bad(c, path, key, "must be a string"));
	}
	if (json_string_length(v) == 0) {
		return (la_bad(c, path, key, "must not be empty"));
	}
	if ((*out = strdup(json_string_value(v))) == NULL) {
		return (la_nomem(c, path, key));
	}
	return (0);
}

static int
la_secret_file(la_ctx *c, const char *path, const char *key, json_t *v,
    char **out)
{
	char  *file = NULL;
	char  *buf  = NULL;
	size_t got  = 0;
	size_t n;
	int    rv;
	int    e;

	if (!json_is_string(v) || json_string_length(v) == 0) {
		return (la_bad(c, path, key, "must be a non-empty string"));
	}
	rv = la_resolve(c, path, key, json_string_value(v), &file);
	if (rv != 0) {
		return (rv);
	}
	if ((e = la_read_file(file, LA_SECRET_MAX, &buf, &got)) != 0) {
		if (e == EFBIG) {
			rv = la_bad(c, path, key, "%s is larger than %d bytes",
			    file, LA_SECRET_MAX);
		} else {
			rv = la_bad(c, path, key, "cannot read %s: %s", file,
			    strerror(e));
		}
		goto done;
	}
	// A mounted Kubernetes Secret or `echo x > file` ends in a newline
	// that is not part of the token.
	for (n = got; n > 0 && isspace((unsigned char) buf[n - 1]); n--) { }
	if (n == 0) {
		rv = la_bad(c, path, key, "%s is empty", file);
	} else if (memchr(buf, '\0', n) != NULL) {
		rv = la_bad(c, path, key, "%s contains a NUL byte", file);
	} else if ((*out = strndup(buf, n)) == NULL) {
		rv = la_nomem(c, path, key);
	}

done:
	la_wipe_free(buf, got);
	free(file);
	return (rv);
}

static int
la_secret_env(la_ctx *c, const char *path, const char *key, json_t *v,
    char **out)
{
	const char *name;
	const char *val;

	if (!json_is_string(v) || json_string_length(v) == 0) {
		return (la_bad(c, path, key, "must be a non-empty string"));
	}
	name = json_string_value(v);
	if ((val = getenv(name)) == NULL) {
		return (la_bad(c, path, key,
		    "environment variable %s is not set", name));
	}
	if (val[0] == '\0') {
		return (la_bad(c, path, key,
		    "environment variable %s is empty", name));
	}
	if (strlen(val) > LA_SECRET_MAX) {
		return (la_bad(c, path, key,
		    "environment variable %s is larger than %d bytes", name,
		    LA_SECRET_MAX));
	}
	if ((*out = strdup(val)) == NULL) {
		return (la_nomem(c, path, key));
	}
	return (0);
}

// la_secret resolves secret `key` of obj. *out stays NULL when no form is
// given and the secret is optional.
static int
la_secret(la_ctx *c, json_t *obj, const char *path, const char *key,
    bool required, char **out)
{
	char        kfile[64];
	char        kenv[64];
	char        other[LA_KEYPATH_MAX];
	const char *names[3];
	json_t     *v    = NULL;
	int         form = -1;

	snprintf(kfile, sizeof(kfile), "%s_file", key);
	snprintf(kenv, sizeof(kenv), "%s_env", key);
	names[0] = key;
	names[1] = kfile;
	names[2] = kenv;
	*out     = NULL;
	for (int i = 0; i < 3; i++) {
		json_t *x = la_get(obj, names[i]);
		if (x == NULL) {
			continue;
		}
		if (form >= 0) {
			la_join(other, sizeof(other), path, names[i]);
			return (la_bad(c, path, names[form],
			    "conflicts with %s "
			    "(give exactly one of %s, %s, %s)",
			    other, key, kfile, kenv));
		}
		form = i;
		v    = x;
	}
	switch (form) {
	case 0:
		return (la_secret_inline(c, path, key, v, out));
	case 1:
		return (la_secret_file(c, path, kfile, v, out));
	case 2:
		return (la_secret_env(c, path, kenv, v, out));
	default:
		if (required) {
			return (la_bad(c, path, key, "required (or %s or %s)",
			    kfile, kenv));
		}
		return (0);
	}
}

// ---- addresses ----

// la_url_has reports whether part is present in u.
static bool
la_url_has(CURLU *u, CURLUPart part)
{
	char *s = NULL;
	bool  has;

	has = curl_url_get(u, part, &s, 0) == CURLUE_OK;
	curl_free(s);
	return (has);
}

// la_check_url accepts an absolute http(s) URL without userinfo, query or
// fragment: the shape of a prefix that paths are appended to (lean_api.url)
// or matched against (send.allowed_urls). It never quotes the URL, which
// might carry a password.
static int
la_check_url(la_ctx *c, const char *path, const char *key, const char *url)
{
	CURLU    *u;
	CURLUcode uc;
	char     *scheme = NULL;
	int       rv     = 0;

	if ((u = curl_url()) == NULL) {
		return (la_nomem(c, path, key));
	}
	// Accept any scheme here so that ftp:// and foo:// get the same
	// message below rather than curl's "unsupported scheme".
	uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (uc != CURLUE_OK) {
		rv = la_bad(c, path, key, "not a valid URL (%s)",
		    curl_url_strerror(uc));
		goto done;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		rv =
		    la_bad(c, path, key, "must be an http:// or https:// URL");
	} else if (la_url_has(u, CURLUPART_USER) ||
	    la_url_has(u, CURLUPART_PASSWORD)) {
		rv = la_bad(c, path, key,
		    "must not contain a user or password");
	} else if (la_url_has(u, CURLUPART_QUERY) ||
	    la_url_has(u, CURLUPART_FRAGMENT)) {
		rv = la_bad(c, path, key,
		    "must not contain a query or fragment");
	}

done:
	curl_free(scheme);
	curl_url_cleanup(u);
	return (rv);
}

// la_check_nng_url checks listen.rpc / listen.events; nng itself parses the
// rest when the server listens.
static int
la_check_nng_url(la_ctx *c, const char *key, const char *url, bool *tls)
{
	static const char *const schemes[] = {"tcp://", "tls+tcp://", "ipc://",
	    "inproc://", NULL};

	for (int i = 0; schemes[i] != NULL; i++) {
		size_t n = strlen(schemes[i]);
		if (strncmp(url, schemes[i], n) == 0) {
			if (url[n] == '\0') {
				return (la_bad(c, "listen", key,
				    "needs an address after %s", schemes[i]));
			}
			*tls = i == 1;
			return (0);
		}
	}
	return (la_bad(c, "listen", key,
	    "must start with tcp://, tls+tcp://, ipc:// or inproc://"));
}

// la_valid_hostport accepts "host:port" and "[v6addr]:port", port 0..65535.
static bool
la_valid_hostport(const char *s)
{
	const char *colon;
	const char *end;
	size_t      n;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL || end == s + 1 ||
		    end[1] != ':') {
			return (false);
		}
		colon = end + 1;
	} else {
		// A ':' in an unbracketed host is an IPv6 address without
		// its brackets: "::1:7452" has no single reading.
		colon = strchr(s, ':');
		if (colon == NULL || colon == s ||
		    strcspn(s, "[]/ \t") < (size_t) (colon - s)) {
			return (false);
		}
	}
	n = strlen(colon + 1);
	if (n == 0 || n > 5 || strspn(colon + 1, "0123456789") != n) {
		return (false);
	}
	return (atol(colon + 1) <= 65535);
}

// ---- sections ----

static int
la_parse_tls(la_ctx *c, json_t *listen, la_config *cfg)
{
	const char *p       = "listen.tls";
	char      **files[] = {&cfg->tls.cert_file, &cfg->tls.key_file,
	         &cfg->tls.ca_file};
	char       *abs;
	json_t     *o = NULL;
	int         rv;

	if ((rv = la_obj(c, listen, "listen", "tls", &o)) != 0 || o == NULL) {
		return (rv);
	}
	cfg->has_tls = true;
	if ((rv = la_check_keys(c, o, p, la_tls_keys)) != 0 ||
	    (rv = la_str(c, o, p, "cert_file", 0, NULL,
	         &cfg->tls.cert_file)) != 0 ||
	    (rv = la_str(c, o, p, "key_file", 0, NULL, &cfg->tls.key_file)) !=
	        0 ||
	    (rv = la_str(c, o, p, "ca_file", 0, NULL, &cfg->tls.ca_file)) !=
	        0 ||
	    (rv = la_bool(c, o, p, "require_client_cert", false,
	         &cfg->tls.require_client_cert)) != 0) {
		return (rv);
	}
	// Relative paths follow the config file, like the secret files do.
	// files[] is in la_tls_keys order.
	for (size_t i = 0; i < 3; i++) {
		if (*files[i] == NULL) {
			continue;
		}
		if ((rv = la_resolve(c, p, la_tls_keys[i], *files[i], &abs)) !=
		    0) {
			return (rv);
		}
		free(*files[i]);
		*files[i] = abs;
	}
	// Without a CA nothing could ever verify a client: every handshake
	// would fail at run time instead of here.
	if (cfg->tls.require_client_cert && cfg->tls.ca_file == NULL) {
		return (la_bad(c, p, "ca_file",
		    "required when require_client_cert is true"));
	}
	return (0);
}

static int
la_need_tls(la_ctx *c, const char *key, const la_config *cfg)
{
	if (!cfg->has_tls) {
		return (la_bad(c, "listen", key,
		    "tls+tcp:// needs a listen.tls block with cert_file and "
		    "key_file"));
	}
	if (cfg->tls.cert_file == NULL) {
		return (la_bad(c, "listen.tls", "cert_file",
		    "required for tls+tcp:// (listen.%s)", key));
	}
	if (cfg->tls.key_file == NULL) {
		return (la_bad(c, "listen.tls", "key_file",
		    "required for tls+tcp:// (listen.%s)", key));
	}
	return (0);
}

static int
la_parse_listen(la_ctx *c, json_t *root, la_config *cfg)
{
	json_t *l       = NULL;
	bool    rpc_tls = false;
	bool    ev_tls  = false;
	int     rv;

	if ((rv = la_obj(c, root, "", "listen", &l)) != 0 ||
	    (rv = la_check_keys(c, l, "listen", la_listen_keys)) != 0 ||
	    (rv = la_str(c, l, "listen", "rpc", 0, "tcp://127.0.0.1:7450",
	         &cfg->listen_rpc)) != 0 ||
	    (rv = la_check_nng_url(c, "rpc", cfg->listen_rpc, &rpc_tls)) !=
	        0 ||
	    (rv = la_str(c, l, "listen", "events", 0, "tcp://127.0.0.1:7451",
	         &cfg->listen_events)) != 0 ||
	    (rv = la_check_nng_url(c, "events", cfg->listen_events,
	         &ev_tls)) != 0 ||
	    (rv = la_str(c, l, "listen", "http", LA_ALLOW_EMPTY,
	         "127.0.0.1:7452", &cfg->listen_http)) != 0) {
		return (rv);
	}
	if (cfg->listen_http[0] != '\0' &&
	    !la_valid_hostport(cfg->listen_http)) {
		return (la_bad(c, "listen", "http",
		    "must be \"host:port\" with a port from 0 to 65535 "
		    "(IPv6 as \"[::1]:7452\"), or \"\" to disable"));
	}
	if ((rv = la_parse_tls(c, l, cfg)) != 0 ||
	    (rpc_tls && (rv = la_need_tls(c, "rpc", cfg)) != 0) ||
	    (ev_tls && (rv = la_need_tls(c, "events", cfg)) != 0)) {
		return (rv);
	}
	return (0);
}

static int
la_parse_log_level(la_ctx *c, json_t *root, la_log_level *out)
{
	json_t *v = la_get(root, "log_level");

	*out = LA_LOG_INFO;
	if (v != NULL &&
	    (!json_is_string(v) ||
	        !la_log_parse_level(json_string_value(v), out))) {
		return (la_bad(c, "", "log_level",
		    "must be one of debug, info, warn, error"));
	}
	return (0);
}

// la_parse_user_id accepts a string or, since Lean user ids are numbers, a
// JSON integer, which becomes its decimal string.
static int
la_parse_user_id(la_ctx *c, json_t *lean, char **out)
{
	json_t     *v = la_get(lean, "user_id");
	char        num[32];
	const char *s;

	if (v == NULL) {
		return (la_bad(c, "lean_api", "user_id", "required"));
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		s = num;
	} else if (json_is_string(v) && json_string_length(v) > 0) {
		s = json_string_value(v);
	} else {
		return (la_bad(c, "lean_api", "user_id",
		    "must be a non-empty string or a non-negative integer"));
	}
	if ((*out = strdup(s)) == NULL) {
		return (la_nomem(c, "lean_api", "user_id"));
	}
	return (0);
}

static int
la_parse_lean(la_ctx *c, json_t *root, la_config *cfg)
{
	const char *p = "lean_api";
	json_t     *o = NULL;
	char       *url;
	size_t      n;
	int         rv;

	if ((rv = la_obj(c, root, "", "lean_api", &o)) != 0 ||
	    (rv = la_check_keys(c, o, p, la_lean_keys)) != 0 ||
	    (rv = la_str(c, o, p, "url", 0, LA_LEAN_URL, &cfg->lean_url)) !=
	        0 ||
	    (rv = la_check_url(c, p, "url", cfg->lean_url)) != 0 ||
	    (rv = la_parse_user_id(c, o, &cfg->lean_user_id)) != 0 ||
	    (rv = la_secret(c, o, p, "api_token", true,
	         &cfg->lean_api_token)) != 0 ||
	    (rv = la_u32(c, o, p, "timeout_ms", 1, LA_MAX_MS, 10000,
	         &cfg->lean_timeout_ms)) != 0) {
		return (rv);
	}
	// The lean module appends "live/auth0/refresh" to it.
	n = strlen(cfg->lean_url);
	if (cfg->lean_url[n - 1] != '/') {
		if ((url = realloc(cfg->lean_url, n + 2)) == NULL) {
			return (la_nomem(c, p, "url"));
		}
		url[n]        = '/';
		url[n + 1]    = '\0';
		cfg->lean_url = url;
	}
	return (0);
}

static int
la_parse_backoff(la_ctx *c, json_t *prof, const char *ppath, la_profile_cfg *p)
{
	char            path[LA_KEYPATH_MAX];
	la_backoff_cfg *b = &p->retry_backoff;
	json_t         *o = NULL;
	int             rv;

	if ((rv = la_obj(c, prof, ppath, "retry_backoff", &o)) != 0) {
		return (rv);
	}
	if (o == NULL) {
		// The C# class: the same interval every time, no jitter.
		b->multiplier      = 1.0;
		b->max_interval_ms = p->retry_interval_ms;
		b->jitter          = 0.0;
		return (0);
	}
	la_join(path, sizeof(path), ppath, "retry_backoff");
	if ((rv = la_check_keys(c, o, path, la_backoff_keys)) != 0 ||
	    (rv = la_num(c, o, path, "multiplier", 1.0, LA_MAX_MULTIPLIER, 2.0,
	         &b->multiplier)) != 0 ||
	    (rv = la_u32(c, o, path, "max_interval_ms", 0, LA_MAX_MS, 60000,
	         &b->max_interval_ms)) != 0 ||
	    (rv = la_num(c, o, path, "jitter", 0.0, 1.0, 0.1, &b->jitter)) !=
	        0) {
		return (rv);
	}
	if (b->max_interval_ms < p->retry_interval_ms) {
		return (la_bad(c, path, "max_interval_ms",
		    "must be at least retry_interval_ms (%" PRIu32 ")",
		    p->retry_interval_ms));
	}
	return (0);
}

static int
la_parse_send(la_ctx *c, json_t *prof, const char *ppath, la_send_cfg *s)
{
	char    path[LA_KEYPATH_MAX];
	char    upath[LA_KEYPATH_MAX + 48]; // path + ".allowed_urls[N]"
	json_t *o = NULL;
	json_t *urls;
	json_t *u;
	int64_t body = 0;
	size_t  i;
	int     rv;

	la_join(path, sizeof(path), ppath, "send");
	if ((rv = la_obj(c, prof, ppath, "send", &o)) != 0 ||
	    (rv = la_check_keys(c, o, path, la_send_keys)) != 0) {
		return (rv);
	}
	urls = la_get(o, "allowed_urls");
	if (urls != NULL && !json_is_array(urls)) {
		return (la_bad(c, path, "allowed_urls",
		    "must be an array of strings"));
	}
	if (json_array_size(urls) > 0) {
		s->n_allowed_urls = json_array_size(urls);
		s->allowed_urls   = calloc(s->n_allowed_urls, sizeof(char *));
		if (s->allowed_urls == NULL) {
			s->n_allowed_urls = 0;
			return (la_nomem(c, path, "allowed_urls"));
		}
	}
	json_array_foreach (urls, i, u) {
		snprintf(upath, sizeof(upath), "%s.allowed_urls[%zu]", path,
		    i);
		if (!json_is_string(u)) {
			return (la_bad(c, upath, NULL, "must be a string"));
		}
		rv = la_check_url(c, upath, NULL, json_string_value(u));
		if (rv != 0) {
			return (rv);
		}
		// Stored as written; the proxy parses both sides to match.
		s->allowed_urls[i] = strdup(json_string_value(u));
		if (s->allowed_urls[i] == NULL) {
			return (la_nomem(c, upath, NULL));
		}
	}
	if ((rv = la_u32(c, o, path, "timeout_ms", 1, LA_MAX_MS, 30000,
	         &s->timeout_ms)) != 0 ||
	    (rv = la_int(c, o, path, "max_body_bytes", 1, LA_MAX_BODY,
	         8 * 1024 * 1024, &body)) != 0) {
		return (rv);
	}
	s->max_body_bytes = (size_t) body;
	return (0);
}

// la_valid_name: profile names appear in logs, metrics and event topics.
static bool
la_valid_name(const char *s)
{
	return (strspn(s,
	            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	            "0123456789._-") == strlen(s));
}

static int
la_parse_profile(la_ctx *c, json_t *o, const char *path, la_profile_cfg *p)
{
	int64_t usable;
	int     rv;

	if ((rv = la_check_keys(c, o, path, la_profile_keys)) != 0 ||
	    (rv = la_str(c, o, path, "name", LA_REQUIRED, NULL, &p->name)) !=
	        0) {
		return (rv);
	}
	if (!la_valid_name(p->name)) {
		return (la_bad(c, path, "name",
		    "must contain only letters, digits, '.', '_' and '-'"));
	}
	if (strlen(p->name) > LA_NAME_MAX) {
		return (la_bad(c, path, "name",
		    "must be at most %d characters", LA_NAME_MAX));
	}
	if ((rv = la_str(c, o, path, "brokerage", LA_REQUIRED, NULL,
	         &p->brokerage)) != 0 ||
	    (rv = la_str(c, o, path, "account_id", LA_REQUIRED, NULL,
	         &p->account_id)) != 0 ||
	    (rv = la_secret(c, o, path, "refresh_token", false,
	         &p->refresh_token)) != 0 ||
	    (rv = la_str(c, o, path, "deploy_id", 0, NULL, &p->deploy_id)) !=
	        0 ||
	    (rv = la_int(c, o, path, "token_lifetime_s", 1, LA_MAX_LIFETIME_S,
	         1800, &p->token_lifetime_s)) != 0 ||
	    (rv = la_int(c, o, path, "offset_before_expiration_s", 0,
	         LA_MAX_LIFETIME_S, 120, &p->offset_before_expiration_s)) !=
	        0) {
		return (rv);
	}
	if (p->offset_before_expiration_s >= p->token_lifetime_s) {
		return (la_bad(c, path, "offset_before_expiration_s",
		    "must be less than token_lifetime_s (%" PRId64 ")",
		    p->token_lifetime_s));
	}
	usable = p->token_lifetime_s - p->offset_before_expiration_s;
	if ((rv = la_u32(c, o, path, "max_retry_count", 0, LA_MAX_RETRIES, 3,
	         &p->max_retry_count)) != 0 ||
	    (rv = la_u32(c, o, path, "retry_interval_ms", 0, LA_MAX_MS, 5000,
	         &p->retry_interval_ms)) != 0 ||
	    (rv = la_parse_backoff(c, o, path, p)) != 0 ||
	    (rv = la_int(c, o, path, "refresh_ahead_s", 0, usable - 1,
	         usable / 4, &p->refresh_ahead_s)) != 0 ||
	    (rv = la_parse_send(c, o, path, &p->send)) != 0) {
		return (rv);
	}
	return (0);
}

static int
la_parse_profiles(la_ctx *c, json_t *root, la_config *cfg)
{
	char            path[32];
	json_t         *a = la_get(root, "profiles");
	json_t         *o = NULL;
	la_profile_cfg *p;
	size_t          i;
	int             rv;

	if (a == NULL) {
		return (la_bad(c, "", "profiles", "required"));
	}
	if (!json_is_array(a) || json_array_size(a) == 0) {
		return (la_bad(c, "", "profiles",
		    "must be a non-empty array of objects"));
	}
	if ((cfg->profiles = calloc(json_array_size(a),
	         sizeof(la_profile_cfg))) == NULL) {
		return (la_nomem(c, "", "profiles"));
	}
	cfg->n_profiles = json_array_size(a);
	json_array_foreach (a, i, o) {
		snprintf(path, sizeof(path), "profiles[%zu]", i);
		if (!json_is_object(o)) {
			return (la_bad(c, path, NULL, "must be an object"));
		}
		p = &cfg->profiles[i];
		if ((rv = la_parse_profile(c, o, path, p)) != 0) {
			return (rv);
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->profiles[j].name, p->name) == 0) {
				return (la_bad(c, path, "name",
				    "\"%s\" is already used by profiles[%zu]",
				    p->name, j));
			}
		}
	}
	return (0);
}

static int
la_parse_root(la_ctx *c, json_t *root, la_config *cfg)
{
	int rv;

	if ((rv = la_check_keys(c, root, "", la_root_keys)) != 0 ||
	    (rv = la_parse_listen(c, root, cfg)) != 0 ||
	    (rv = la_u32(c, root, "", "workers", 1, 256, 8, &cfg->workers)) !=
	        0 ||
	    (rv = la_u32(c, root, "", "queue_size", 1, 65536, 1024,
	         &cfg->queue_size)) != 0 ||
	    (rv = la_u32(c, root, "", "max_inflight", 1, 65536, 1024,
	         &cfg->max_inflight)) != 0 ||
	    (rv = la_u32(c, root, "", "default_timeout_ms", 1, LA_MAX_MS,
	         30000, &cfg->default_timeout_ms)) != 0 ||
	    (rv = la_parse_log_level(c, root, &cfg->log_level)) != 0 ||
	    (rv = la_parse_lean(c, root, cfg)) != 0 ||
	    (rv = la_parse_profiles(c, root, cfg)) != 0) {
		return (rv);
	}
	return (0);
}

// la_config_from_text parses len bytes of text; source names the text in
// errors that have no key (a file path, or "config").
static la_config *
la_config_from_text(const char *text, size_t len, const char *source,
    const char *base_dir, char *err, size_t errlen)
{
	la_ctx       c    = {err, errlen, base_dir};
	la_config   *cfg  = NULL;
	json_t      *root = NULL;
	json_error_t jerr;
	char        *near;

	if (err != NULL && errlen > 0) {
		err[0] = '\0';
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		// jansson appends "near '<token>'", and the token may be a
		// secret string with a typo after it: keep line and column.
		if ((near = strstr(jerr.text, " near ")) != NULL) {
			*near = '\0';
		}
		if (err != NULL && errlen > 0) {
			snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s",
			    source, jerr.line, jerr.column, jerr.text);
		}
		goto fail;
	}
	if (!json_is_object(root)) {
		la_bad(&c, source, NULL, "must be a JSON object");
		goto fail;
	}
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		la_nomem(&c, source, NULL);
		goto fail;
	}
	if (la_parse_root(&c, root, cfg) != 0) {
		goto fail;
	}
	la_scrub_doc(root);
	json_decref(root);
	return (cfg);

fail:
	la_config_destroy(cfg);
	if (root != NULL) {
		la_scrub_doc(root);
		json_decref(root);
	}
	return (NULL);
}

// ---- public ----

la_config *
la_config_parse(const char *json, char *err, size_t errlen)
{
	if (json == NULL) {
		if (err != NULL && errlen > 0) {
			snprintf(err, errlen, "config: no text");
		}
		return (NULL);
	}
	return (la_config_from_text(json, strlen(json), "config", NULL, err,
	    errlen));
}

la_config *
la_config_load(const char *path, char *err, size_t errlen)
{
	la_ctx     c    = {err, errlen, NULL};
	la_config *cfg  = NULL;
	char      *text = NULL;
	char      *dir  = NULL;
	char      *slash;
	size_t     len = 0;
	int        e;

	if ((e = la_read_file(path, LA_CONFIG_MAX, &text, &len)) != 0) {
		if (e == EFBIG) {
			la_bad(&c, path, NULL, "larger than %d bytes",
			    LA_CONFIG_MAX);
		} else {
			la_bad(&c, path, NULL, "cannot read: %s", strerror(e));
		}
		goto done;
	}
	if ((dir = strdup(path)) == NULL) {
		la_nomem(&c, path, NULL);
		goto done;
	}
	// Cut dir down to the file's directory: "a/b.json" -> "a",
	// "/b.json" -> "/". "b.json" has none: relative to the cwd, as is.
	if ((slash = strrchr(dir, '/')) == NULL) {
		free(dir);
		dir = NULL;
	} else if (slash == dir) {
		slash[1] = '\0';
	} else {
		slash[0] = '\0';
	}
	cfg = la_config_from_text(text, len, path, dir, err, errlen);

done:
	// The file may hold inline secrets.
	la_wipe_free(text, len);
	free(dir);
	return (cfg);
}

static void
la_profile_fini(la_profile_cfg *p)
{
	free(p->name);
	free(p->brokerage);
	free(p->account_id);
	la_secret_free(p->refresh_token);
	free(p->deploy_id);
	for (size_t i = 0; i < p->send.n_allowed_urls; i++) {
		free(p->send.allowed_urls[i]);
	}
	free(p->send.allowed_urls);
}

void
la_config_destroy(la_config *cfg)
{
	if (cfg == NULL) {
		return;
	}
	free(cfg->listen_rpc);
	free(cfg->listen_events);
	free(cfg->listen_http);
	free(cfg->tls.cert_file);
	free(cfg->tls.key_file);
	free(cfg->tls.ca_file);
	free(cfg->lean_url);
	free(cfg->lean_user_id);
	la_secret_free(cfg->lean_api_token);
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		la_profile_fini(&cfg->profiles[i]);
	}
	free(cfg->profiles);
	free(cfg);
}

int
la_config_profile_index(const la_config *cfg, const char *name)
{
	if (cfg == NULL || cfg->n_profiles == 0) {
		return (-1);
	}
	if (name == NULL || name[0] == '\0') {
		return (0);
	}
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		if (strcmp(cfg->profiles[i].name, name) == 0) {
			return ((int) i);
		}
	}
	return (-1);
}

const la_profile_cfg *
la_config_profile(const la_config *cfg, const char *name)
{
	int i = la_config_profile_index(cfg, name);
	return (i < 0 ? NULL : &cfg->profiles[i]);
}

int64_t
la_config_usable_lifetime_ms(const la_profile_cfg *p)
{
	return ((p->token_lifetime_s - p->offset_before_expiration_s) * 1000);
}

int64_t
la_config_refresh_ahead_ms(const la_profile_cfg *p)
{
	return (p->refresh_ahead_s * 1000);
}
