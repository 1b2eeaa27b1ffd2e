// proxy.c -- allowlisted HTTP calls with the profile's token attached.
//
// A call is reference counted: the rpc context holds one reference, a queued
// or running worker job another. A caller whose deadline passes is answered
// at once (DEADLINE_EXCEEDED) and drops its reference; the job notices the
// call was abandoned, aborts its transfer and frees what is left.
//
// nng runs an expiring aio's cancel function outside its own lock, with the
// arg saved at nng_aio_defer, and nng_aio_finish does not wait for it: the
// cancel may run after the job has completed the aio and the call is gone.
// So the cancel's arg is the proxy, and it only touches calls it finds on
// the proxy's list of outstanding calls, under the proxy's lock.
#include "proxy.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "leanauth/v1/token.pb-c.h"

#define LA_MAX_HEADERS 100
#define LA_MAX_HEADER_BYTES (64 * 1024)       // caller's headers, total
#define LA_MAX_RESP_HEADER_BYTES (256 * 1024) // upstream's headers, total

typedef struct la_allowed {
	char *scheme;
	char *host;
	char *port;
	char *path; // raw, as configured; "/" at least
} la_allowed;

typedef struct la_allowlist {
	la_allowed *v;
	size_t      n;
} la_allowlist;

struct la_proxy {
	const la_config     *cfg;
	la_workers          *pool;
	la_allowlist        *allow; // one per profile
	atomic_uint_fast64_t calls;
	atomic_uint_fast64_t connections;
	atomic_uint_fast64_t denied;
	pthread_mutex_t      mtx;    // guards active and each call's finished
	la_proxy_call       *active; // calls whose aio is outstanding
};

typedef struct la_hdr {
	char *name;
	char *value;
} la_hdr;

struct la_proxy_call {
	atomic_uint                refs;
	la_proxy                  *proxy;
	size_t                     profile;
	Leanauth__V1__SendRequest *req;
	char                      *url; // normalized by libcurl: what is sent
	struct curl_slist         *headers; // caller's, filtered

	la_job         job;
	nng_aio       *aio;
	bool           finished; // aio finished, by the job or by the deadline
	la_proxy_call *act_prev; // on proxy->active while !finished
	la_proxy_call *act_next;
	atomic_bool    abandoned;
	const atomic_bool *stopping; // the running worker's abort flag
	la_token          *token;
	nng_time           deadline;

	la_err   result;
	char     error[256];
	long     status;
	la_hdr  *resp_hdrs;
	size_t   n_resp_hdrs;
	size_t   resp_hdr_bytes;
	uint8_t *body;
	size_t   body_len;
	size_t   body_cap;
	bool     too_big;
};

// ---- allowlist

static char *
la_url_part(CURLU *u, CURLUPart part, unsigned flags)
{
	char *s = NULL;
	if (curl_url_get(u, part, &s, flags) != CURLUE_OK) {
		return (NULL);
	}
	return (s);
}

static void
la_allowed_free(la_allowed *a)
{
	curl_free(a->scheme);
	curl_free(a->host);
	curl_free(a->port);
	curl_free(a->path);
}

la_err
la_proxy_create(la_proxy **out, const la_config *cfg, la_workers *pool,
    char *err, size_t errlen)
{
	la_proxy *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		return (LA_ERR_NOMEM);
	}
	p->cfg  = cfg;
	p->pool = pool;
	pthread_mutex_init(&p->mtx, NULL);
	if ((p->allow = calloc(cfg->n_profiles, sizeof(la_allowlist))) ==
	    NULL) {
		goto nomem;
	}
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		const la_send_cfg *s = &cfg->profiles[i].send;
		la_allowlist      *l = &p->allow[i];
		if (s->n_allowed_urls == 0) {
			continue;
		}
		if ((l->v = calloc(s->n_allowed_urls, sizeof(la_allowed))) ==
		    NULL) {
			goto nomem;
		}
		for (size_t j = 0; j < s->n_allowed_urls; j++) {
			CURLU      *u = curl_url();
			la_allowed *a = &l->v[l->n];
			if (u == NULL) {
				goto nomem;
			}
			if (curl_url_set(u, CURLUPART_URL, s->allowed_urls[j],
			        0) != CURLUE_OK ||
			    (a->scheme = la_url_part(u, CURLUPART_SCHEME,
			         0)) == NULL ||
			    (a->host = la_url_part(u, CURLUPART_HOST, 0)) ==
			        NULL ||
			    (a->port = la_url_part(u, CURLUPART_PORT,
			         CURLU_DEFAULT_PORT)) == NULL ||
			    (a->path = la_url_part(u, CURLUPART_PATH, 0)) ==
			        NULL) {
				curl_url_cleanup(u);
				la_allowed_free(a);
				snprintf(err, errlen,
				    "profiles[%zu].send.allowed_urls[%zu]: "
				    "does not parse",
				    i, j);
				la_proxy_destroy(p);
				return (LA_ERR_INVALID);
			}
			curl_url_cleanup(u);
			l->n++;
		}
	}
	*out = p;
	return (LA_OK);

nomem:
	la_proxy_destroy(p);
	snprintf(err, errlen, "out of memory");
	return (LA_ERR_NOMEM);
}

void
la_proxy_destroy(la_proxy *p)
{
	if (p == NULL) {
		return;
	}
	if (p->allow != NULL) {
		for (size_t i = 0; i < p->cfg->n_profiles; i++) {
			for (size_t j = 0; j < p->allow[i].n; j++) {
				la_allowed_free(&p->allow[i].v[j]);
			}
			free(p->allow[i].v);
		}
		free(p->allow);
	}
	pthread_mutex_destroy(&p->mtx);
	free(p);
}

// la_path_under: path lies under prefix on a '/' boundary ("/api" admits
// "/api" and "/api/x", never "/apix").
static bool
la_path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	if (strncmp(path, prefix, n) != 0) {
		return (false);
	}
	return (n > 0 &&
	    (prefix[n - 1] == '/' || path[n] == '\0' || path[n] == '/'));
}

// la_path_suspicious: a decoded path a server might resolve somewhere other
// than where its raw form points (dot segments, backslashes, control bytes).
static bool
la_path_suspicious(const char *p)
{
	for (const char *s = p; *s != '\0'; s++) {
		if (*s == '\\' || (unsigned char) *s < 0x20 || *s == 0x7f) {
			return (true);
		}
	}
	for (const char *s = p; (s = strstr(s, "/.")) != NULL; s++) {
		const char *t = s + 2;
		if (*t == '.') {
			t++;
		}
		if (*t == '\0' || *t == '/') {
			return (true);
		}
	}
	return (false);
}

// la_check_url parses url and matches it against profile's allowlist. On
// LA_OK *normalized (curl_free) is the URL to send.
static la_err
la_check_url(la_proxy *p, size_t profile, const char *url, char **normalized,
    char *err, size_t errlen)
{
	const la_allowlist *l  = &p->allow[profile];
	la_err              rv = LA_ERR_DENIED;
	char  *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	char  *dpath = NULL, *user = NULL, *pass = NULL, *zone = NULL;
	CURLU *u;

	if ((u = curl_url()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (LA_ERR_NOMEM);
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(err, errlen,
		    "url does not parse as an absolute http(s) URL");
		rv = LA_ERR_INVALID;
		goto done;
	}
	user = la_url_part(u, CURLUPART_USER, 0);
	pass = la_url_part(u, CURLUPART_PASSWORD, 0);
	zone = la_url_part(u, CURLUPART_ZONEID, 0);
	if (user != NULL || pass != NULL) {
		snprintf(err, errlen, "url must not carry userinfo");
		goto done;
	}
	if (zone != NULL) {
		snprintf(err, errlen, "url must not carry an IPv6 zone id");
		goto done;
	}
	scheme = la_url_part(u, CURLUPART_SCHEME, 0);
	host   = la_url_part(u, CURLUPART_HOST, 0);
	port   = la_url_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
	path   = la_url_part(u, CURLUPART_PATH, 0);
	dpath  = la_url_part(u, CURLUPART_PATH, CURLU_URLDECODE);
	if (scheme == NULL || host == NULL || port == NULL || path == NULL) {
		snprintf(err, errlen,
		    "url does not parse as an absolute http(s) URL");
		rv = LA_ERR_INVALID;
		goto done;
	}
	if (dpath == NULL || la_path_suspicious(dpath)) {
		snprintf(err, errlen,
		    "url path has encoded dot segments or control bytes");
		goto done;
	}
	for (size_t i = 0; i < l->n; i++) {
		const la_allowed *a = &l->v[i];
		if (strcasecmp(scheme, a->scheme) == 0 &&
		    strcasecmp(host, a->host) == 0 &&
		    strcmp(port, a->port) == 0 &&
		    la_path_under(path, a->path) &&
		    la_path_under(dpath, a->path)) {
			if ((*normalized = la_url_part(u, CURLUPART_URL, 0)) ==
			    NULL) {
				snprintf(err, errlen, "out of memory");
				rv = LA_ERR_NOMEM;
			} else {
				rv = LA_OK;
			}
			goto done;
		}
	}
	snprintf(err, errlen,
	    "url is not under any of the profile's send.allowed_urls");
done:
	if (rv == LA_ERR_DENIED) {
		atomic_fetch_add(&p->denied, 1);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(dpath);
	curl_free(user);
	curl_free(pass);
	curl_free(zone);
	curl_url_cleanup(u);
	return (rv);
}

// ---- request validation

static const char *const la_methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH",
    "DELETE"};

// Hop-by-hop headers (and every Proxy-*), and those leanauthd itself
// controls.
static const char *const la_dropped[] = {"connection", "keep-alive", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "host",
    "content-length", "authorization", "expect"};

static bool
la_is_tchar(unsigned char ch)
{
	return (isalnum(ch) ||
	    (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL));
}

static bool
la_dropped_header(const char *name, const Leanauth__V1__SendRequest *req)
{
	for (size_t i = 0; i < sizeof(la_dropped) / sizeof(la_dropped[0]);
	     i++) {
		if (strcasecmp(name, la_dropped[i]) == 0) {
			return (true);
		}
	}
	if (strncasecmp(name, "proxy-", 6) == 0) {
		return (true);
	}
	// Headers the caller's own Connection header names are hop-by-hop too.
	size_t n = strlen(name);
	for (size_t i = 0; i < req->n_headers; i++) {
		if (strcasecmp(req->headers[i]->name, "connection") != 0) {
			continue;
		}
		const char *v = req->headers[i]->value;
		while (*v != '\0') {
			while (*v == ' ' || *v == ',' || *v == '\t') {
				v++;
			}
			size_t k = strcspn(v, ", \t");
			if (k == n && strncasecmp(v, name, n) == 0) {
				return (true);
			}
			v += k;
		}
	}
	return (false);
}

static la_err
la_build_headers(const Leanauth__V1__SendRequest *req, struct curl_slist **out,
    char *err, size_t errlen)
{
	struct curl_slist *l      = NULL, *t;
	size_t             total  = 0;
	bool               has_ct = false, has_accept = false;

	if (req->n_headers > LA_MAX_HEADERS) {
		snprintf(err, errlen, "more than %d headers", LA_MAX_HEADERS);
		return (LA_ERR_INVALID);
	}
	for (size_t i = 0; i < req->n_headers; i++) {
		const char *name = req->headers[i]->name;
		const char *val  = req->headers[i]->value;
		if (name[0] == '\0') {
			snprintf(err, errlen, "header %zu has an empty name",
			    i);
			goto invalid;
		}
		for (const char *s = name; *s != '\0'; s++) {
			if (!la_is_tchar((unsigned char) *s)) {
				snprintf(err, errlen,
				    "header %zu: invalid character in name",
				    i);
				goto invalid;
			}
		}
		for (const char *s = val; *s != '\0'; s++) {
			if (*s == '\r' || *s == '\n') {
				snprintf(err, errlen,
				    "header %zu: line break in value", i);
				goto invalid;
			}
		}
		total += strlen(name) + strlen(val) + 4;
		if (total > LA_MAX_HEADER_BYTES) {
			snprintf(err, errlen, "headers exceed %d bytes",
			    LA_MAX_HEADER_BYTES);
			curl_slist_free_all(l);
			return (LA_ERR_TOO_BIG);
		}
		if (la_dropped_header(name, req)) {
			continue;
		}
		has_ct |= strcasecmp(name, "content-type") == 0;
		has_accept |= strcasecmp(name, "accept") == 0;
		// "Name;" is libcurl's spelling of a header with an empty value.
		size_t len  = strlen(name) + strlen(val) + 3;
		char  *line = malloc(len);
		if (line == NULL) {
			goto nomem;
		}
		if (val[0] == '\0') {
			snprintf(line, len, "%s;", name);
		} else {
			snprintf(line, len, "%s: %s", name, val);
		}
		t = curl_slist_append(l, line);
		free(line);
		if (t == NULL) {
			goto nomem;
		}
		l = t;
	}
	// Pass the request through as given: no libcurl defaults.
	if (!has_ct && (t = curl_slist_append(l, "Content-Type:")) != NULL) {
		l = t;
	}
	if (!has_accept && (t = curl_slist_append(l, "Accept:")) != NULL) {
		l = t;
	}
	if ((t = curl_slist_append(l, "Expect:")) == NULL) {
		goto nomem;
	}
	*out = t;
	return (LA_OK);
nomem:
	curl_slist_free_all(l);
	snprintf(err, errlen, "out of memory");
	return (LA_ERR_NOMEM);
invalid:
	curl_slist_free_all(l);
	return (LA_ERR_INVALID);
}

la_err
la_proxy_call_new(la_proxy *p, size_t profile, Leanauth__V1__SendRequest *req,
    la_proxy_call **out, char *err, size_t errlen)
{
	const la_send_cfg *s    = &p->cfg->profiles[profile].send;
	la_proxy_call     *call = NULL;
	char              *url  = NULL;
	la_err             rv;
	bool               ok_method = false;

	for (size_t i = 0; i < sizeof(la_methods) / sizeof(la_methods[0]);
	     i++) {
		ok_method |= strcmp(req->method, la_methods[i]) == 0;
	}
	if (!ok_method) {
		snprintf(err, errlen,
		    "method must be one of GET, HEAD, POST, PUT, PATCH, "
		    "DELETE");
		rv = LA_ERR_INVALID;
		goto fail;
	}
	if (req->body.len > s->max_body_bytes) {
		snprintf(err, errlen,
		    "request body exceeds send.max_body_bytes (%zu)",
		    s->max_body_bytes);
		rv = LA_ERR_TOO_BIG;
		goto fail;
	}
	if ((rv = la_check_url(p, profile, req->url, &url, err, errlen)) !=
	    LA_OK) {
		goto fail;
	}
	if ((call = calloc(1, sizeof(*call))) == NULL) {
		snprintf(err, errlen, "out of memory");
		rv = LA_ERR_NOMEM;
		goto fail;
	}
	if ((rv = la_build_headers(req, &call->headers, err, errlen)) !=
	    LA_OK) {
		goto fail;
	}
	atomic_init(&call->refs, 1);
	atomic_init(&call->abandoned, false);
	call->proxy   = p;
	call->profile = profile;
	call->req     = req;
	call->url     = url;
	*out          = call;
	return (LA_OK);

fail:
	curl_free(url);
	free(call);
	leanauth__v1__send_request__free_unpacked(req, NULL);
	return (rv);
}

// ---- the transfer, on a worker

static void
la_resp_clear(la_proxy_call *call)
{
	for (size_t i = 0; i < call->n_resp_hdrs; i++) {
		free(call->resp_hdrs[i].name);
		free(call->resp_hdrs[i].value);
	}
	free(call->resp_hdrs);
	free(call->body);
	call->resp_hdrs      = NULL;
	call->n_resp_hdrs    = 0;
	call->resp_hdr_bytes = 0;
	call->body           = NULL;
	call->body_len       = 0;
	call->body_cap       = 0;
	call->too_big        = false;
	call->status         = 0;
	call->result         = LA_OK;
	call->error[0]       = '\0';
}

static size_t
la_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	la_proxy_call *call = arg;
	size_t         n    = size * nmemb;
	size_t         max =
	    call->proxy->cfg->profiles[call->profile].send.max_body_bytes;

	if (call->body_len + n > max) {
		call->too_big = true;
		return (0); // CURLE_WRITE_ERROR
	}
	if (call->body_len + n > call->body_cap) {
		size_t cap = call->body_cap ? call->body_cap : 16384;
		while (cap < call->body_len + n) {
			cap *= 2;
		}
		if (cap > max) {
			cap = max;
		}
		uint8_t *b = realloc(call->body, cap);
		if (b == NULL) {
			return (0);
		}
		call->body     = b;
		call->body_cap = cap;
	}
	memcpy(call->body + call->body_len, data, n);
	call->body_len += n;
	return (n);
}

static size_t
la_on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	la_proxy_call *call = arg;
	size_t         n    = size * nmemb;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		// A new response (after 100 Continue, say): start over.
		for (size_t i = 0; i < call->n_resp_hdrs; i++) {
			free(call->resp_hdrs[i].name);
			free(call->resp_hdrs[i].value);
		}
		call->n_resp_hdrs    = 0;
		call->resp_hdr_bytes = 0;
		return (n);
	}
	call->resp_hdr_bytes += n;
	if (call->resp_hdr_bytes > LA_MAX_RESP_HEADER_BYTES) {
		call->too_big = true;
		return (0);
	}
	const char *colon = memchr(data, ':', n);
	if (colon == NULL) {
		return (n); // the blank line, or junk
	}
	size_t      nlen = (size_t) (colon - data);
	const char *v    = colon + 1;
	const char *end  = data + n;
	while (v < end && (*v == ' ' || *v == '\t')) {
		v++;
	}
	while (end > v &&
	    (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
		end--;
	}
	char name[256];
	if (nlen == 0 || nlen >= sizeof(name)) {
		return (n);
	}
	memcpy(name, data, nlen);
	name[nlen] = '\0';
	// The body comes back de-chunked and the connection is ours: drop
	// the framing headers that no longer describe what the caller gets.
	if (strcasecmp(name, "transfer-encoding") == 0 ||
	    strcasecmp(name, "connection") == 0 ||
	    strcasecmp(name, "keep-alive") == 0) {
		return (n);
	}
	la_hdr *h =
	    realloc(call->resp_hdrs, (call->n_resp_hdrs + 1) * sizeof(la_hdr));
	if (h == NULL) {
		return (0);
	}
	call->resp_hdrs = h;
	h               = &call->resp_hdrs[call->n_resp_hdrs];
	h->name         = strdup(name);
	h->value        = strndup(v, (size_t) (end - v));
	if (h->name == NULL || h->value == NULL) {
		free(h->name);
		free(h->value);
		return (0);
	}
	call->n_resp_hdrs++;
	return (n);
}

static int
la_on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
    curl_off_t un)
{
	(void) dt;
	(void) dn;
	(void) ut;
	(void) un;
	la_proxy_call *call = arg;
	return (atomic_load(&call->abandoned) || atomic_load(call->stopping)
	        ? 1
	        : 0);
}

static void
la_call_release(la_proxy_call *call)
{
	if (atomic_fetch_sub(&call->refs, 1) != 1) {
		return;
	}
	la_resp_clear(call);
	la_token_release(call->token);
	curl_slist_free_all(call->headers);
	curl_free(call->url);
	leanauth__v1__send_request__free_unpacked(call->req, NULL);
	free(call);
}

// la_perform runs the transfer; returns the outcome and writes detail into
// err. The response lands in call.
static la_err
la_perform(la_worker *w, la_proxy_call *call, char *err, size_t errlen)
{
	const la_send_cfg *s = &call->proxy->cfg->profiles[call->profile].send;
	Leanauth__V1__SendRequest *req = call->req;
	CURL                      *h;
	char                       cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist         *auth                  = NULL;
	la_err                     rv                    = LA_OK;

	call->stopping = la_worker_abort(w);
	if (atomic_load(call->stopping)) {
		snprintf(err, errlen, "server is shutting down");
		return (LA_ERR_SHUTDOWN);
	}
	nng_time now = nng_clock();
	if (now >= call->deadline) {
		snprintf(err, errlen,
		    "deadline exceeded before the call started");
		return (LA_ERR_TIMEOUT);
	}
	int64_t timeout = (int64_t) (call->deadline - now);
	if (timeout > (int64_t) s->timeout_ms) {
		timeout = s->timeout_ms;
	}

	// The Authorization line is copied into its own slist node so that it
	// can be wiped before it is freed.
	const char *scheme = la_token_type_name(call->token->type);
	size_t      alen   = strlen(scheme) + call->token->len + 32;
	char       *aline  = malloc(alen);
	if (aline == NULL) {
		snprintf(err, errlen, "out of memory");
		return (LA_ERR_NOMEM);
	}
	snprintf(aline, alen, "Authorization: %s %s",
	    scheme[0] != '\0' ? scheme : "Bearer", call->token->access_token);
	auth = curl_slist_append(NULL, aline);
	explicit_bzero(aline, alen);
	free(aline);
	if (auth == NULL) {
		snprintf(err, errlen, "out of memory");
		return (LA_ERR_NOMEM);
	}
	auth->next = call->headers; // borrowed tail: unlinked before freeing

	h = la_worker_curl(w);
	curl_easy_setopt(h, CURLOPT_URL, call->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, auth);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long) timeout);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, la_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, call);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, la_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, call);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, la_on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, call);
	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(req->method, "GET") != 0 || req->body.len > 0) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS,
			    req->body.len > 0 ? (char *) req->body.data : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
			    (curl_off_t) req->body.len);
		}
		if (strcmp(req->method, "POST") != 0) {
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
			    req->method);
		}
	}

	CURLcode cc    = curl_easy_perform(h);
	long     conns = 0;
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &call->status);
	atomic_fetch_add(&call->proxy->calls, 1);
	atomic_fetch_add(&call->proxy->connections, (uint64_t) conns);
	// No pointer into this frame may outlive it.
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	auth->next = NULL;
	explicit_bzero(auth->data, strlen(auth->data));
	curl_slist_free_all(auth);

	switch (cc) {
	case CURLE_OK:
		break;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(err, errlen, "send: timed out after %lld ms",
		    (long long) timeout);
		rv = LA_ERR_TIMEOUT;
		break;
	case CURLE_WRITE_ERROR:
		if (call->too_big) {
			snprintf(err, errlen,
			    "response exceeds send.max_body_bytes (%zu) or "
			    "header limits",
			    s->max_body_bytes);
			rv = LA_ERR_TOO_BIG;
			break;
		}
		snprintf(err, errlen, "send: out of memory");
		rv = LA_ERR_NOMEM;
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		if (atomic_load(call->stopping)) {
			snprintf(err, errlen, "send: server is shutting down");
			rv = LA_ERR_SHUTDOWN;
			break;
		}
		snprintf(err, errlen, "send: abandoned");
		rv = LA_ERR_TIMEOUT;
		break;
	default:
		snprintf(err, errlen, "send: %.200s",
		    cerr[0] != '\0' ? cerr : curl_easy_strerror(cc));
		rv = LA_ERR_UNAVAILABLE;
		break;
	}
	return (rv);
}

// la_active_add/remove keep p->active; called with p->mtx held. Removal
// marks the call finished: its aio has been (or is about to be) answered.
static void
la_active_add(la_proxy *p, la_proxy_call *call)
{
	call->finished = false;
	call->act_prev = NULL;
	call->act_next = p->active;
	if (p->active != NULL) {
		p->active->act_prev = call;
	}
	p->active = call;
}

static void
la_active_remove(la_proxy *p, la_proxy_call *call)
{
	if (call->act_prev != NULL) {
		call->act_prev->act_next = call->act_next;
	} else {
		p->active = call->act_next;
	}
	if (call->act_next != NULL) {
		call->act_next->act_prev = call->act_prev;
	}
	call->act_prev = NULL;
	call->act_next = NULL;
	call->finished = true;
}

static void
la_proxy_job(la_worker *w, void *arg)
{
	la_proxy_call *call     = arg;
	char           err[256] = "";
	la_err         rv;

	if (atomic_load(&call->abandoned)) {
		la_call_release(call);
		return;
	}
	rv = la_perform(w, call, err, sizeof(err));
	la_log(LA_LOG_DEBUG, "send", "{s:s, s:s, s:i, s:s}", "profile",
	    call->proxy->cfg->profiles[call->profile].name, "method",
	    call->req->method, "http_status", (int) call->status, "result",
	    la_strerror(rv));

	la_proxy *p = call->proxy;
	pthread_mutex_lock(&p->mtx);
	if (call->finished) {
		pthread_mutex_unlock(&p->mtx); // the deadline answered already
		la_call_release(call);
		return;
	}
	la_active_remove(p, call);
	call->result = rv;
	snprintf(call->error, sizeof(call->error), "%s", err);
	nng_aio *aio = call->aio;
	pthread_mutex_unlock(&p->mtx);
	la_call_release(call); // the caller still holds its reference
	nng_aio_finish(aio, 0);
}

// la_proxy_cancel: arg is the proxy (see the top of this file). A call no
// longer on the active list has been answered already.
static void
la_proxy_cancel(nng_aio *aio, void *arg, int rv)
{
	la_proxy      *p = arg;
	la_proxy_call *call;

	pthread_mutex_lock(&p->mtx);
	for (call = p->active; call != NULL && call->aio != aio;
	     call = call->act_next) { }
	if (call == NULL) {
		pthread_mutex_unlock(&p->mtx);
		return;
	}
	la_active_remove(p, call);
	atomic_store(&call->abandoned, true);
	call->result = rv == NNG_ETIMEDOUT ? LA_ERR_TIMEOUT : LA_ERR_SHUTDOWN;
	snprintf(call->error, sizeof(call->error), "%s",
	    rv == NNG_ETIMEDOUT ? "deadline exceeded" : "cancelled");
	pthread_mutex_unlock(&p->mtx);
	nng_aio_finish(aio, 0);
}

la_err
la_proxy_start(la_proxy *p, la_proxy_call *call, la_token *tok,
    nng_time deadline, nng_aio *aio)
{
	nng_time now = nng_clock();

	la_resp_clear(call);
	la_token_release(call->token);
	call->token    = la_token_hold(tok);
	call->deadline = deadline;
	call->aio      = aio;
	if (now >= deadline) {
		snprintf(call->error, sizeof(call->error),
		    "deadline exceeded");
		return (call->result = LA_ERR_TIMEOUT);
	}
	if (!nng_aio_begin(aio)) {
		snprintf(call->error, sizeof(call->error),
		    "server is shutting down");
		return (call->result = LA_ERR_SHUTDOWN);
	}
	atomic_fetch_add(&call->refs, 1); // the job's
	call->job.fn  = la_proxy_job;
	call->job.arg = call;
	nng_aio_set_timeout(aio, (nng_duration) (deadline - now));
	pthread_mutex_lock(&p->mtx);
	la_active_add(p, call);
	nng_aio_defer(aio, la_proxy_cancel, p);
	la_err rv = la_workers_submit(p->pool, &call->job, false);
	if (rv != LA_OK) {
		// Not queued: answer through the aio like any other outcome.
		la_active_remove(p, call);
		call->result = rv;
		snprintf(call->error, sizeof(call->error), "%s",
		    rv == LA_ERR_BUSY ? "server busy: worker queue full"
		                      : la_strerror(rv));
		pthread_mutex_unlock(&p->mtx);
		atomic_fetch_sub(&call->refs, 1);
		nng_aio_finish(aio, 0);
		return (LA_ERR_PENDING);
	}
	pthread_mutex_unlock(&p->mtx);
	return (LA_ERR_PENDING);
}

la_err
la_proxy_call_result(const la_proxy_call *call)
{
	return (call->result);
}

const char *
la_proxy_call_error(const la_proxy_call *call)
{
	return (call->error);
}

int
la_proxy_call_status(const la_proxy_call *call)
{
	return ((int) call->status);
}

uint64_t
la_proxy_call_generation(const la_proxy_call *call)
{
	return (call->token != NULL ? call->token->generation : 0);
}

void
la_proxy_call_reset(la_proxy_call *call)
{
	la_resp_clear(call);
}

la_err
la_proxy_call_pack(const la_proxy_call *call, uint8_t **buf, size_t *len)
{
	Leanauth__V1__SendResponse m  = LEANAUTH__V1__SEND_RESPONSE__INIT;
	Leanauth__V1__Header      *hv = NULL;
	Leanauth__V1__Header     **hp = NULL;

	if (call->n_resp_hdrs > 0) {
		hv = calloc(call->n_resp_hdrs, sizeof(*hv));
		hp = calloc(call->n_resp_hdrs, sizeof(*hp));
		if (hv == NULL || hp == NULL) {
			free(hv);
			free(hp);
			return (LA_ERR_NOMEM);
		}
	}
	for (size_t i = 0; i < call->n_resp_hdrs; i++) {
		leanauth__v1__header__init(&hv[i]);
		hv[i].name  = call->resp_hdrs[i].name;
		hv[i].value = call->resp_hdrs[i].value;
		hp[i]       = &hv[i];
	}
	m.status_code = (int32_t) call->status;
	m.n_headers   = call->n_resp_hdrs;
	m.headers     = hp;
	m.body.data   = call->body;
	m.body.len    = call->body_len;
	*len          = leanauth__v1__send_response__get_packed_size(&m);
	*buf          = malloc(*len > 0 ? *len : 1);
	if (*buf != NULL) {
		leanauth__v1__send_response__pack(&m, *buf);
	}
	free(hv);
	free(hp);
	return (*buf != NULL ? LA_OK : LA_ERR_NOMEM);
}

void
la_proxy_call_free(la_proxy_call *call)
{
	if (call != NULL) {
		la_call_release(call);
	}
}

void
la_proxy_stats_get(la_proxy *p, la_proxy_stats *st)
{
	st->calls       = atomic_load(&p->calls);
	st->connections = atomic_load(&p->connections);
	st->denied      = atomic_load(&p->denied);
}
