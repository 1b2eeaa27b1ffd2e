// http.c -- /healthz, /readyz and /metrics on nng's HTTP server.
#include "http.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct la_http {
	nng_http_server *server;
	la_http_hooks    hooks;
	char             addr[128];
};

static void
la_http_reply(nng_aio *aio, uint16_t status, const char *ctype,
    const char *body)
{
	nng_http_res *res;
	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_http_res_set_status(res, status);
	nng_http_res_set_header(res, "Content-Type", ctype);
	nng_http_res_set_header(res, "Cache-Control", "no-store");
	if (nng_http_res_copy_data(res, body, strlen(body)) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static la_http *
la_http_of(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	return (nng_http_handler_get_data(h));
}

static void
la_healthz(nng_aio *aio)
{
	la_http_reply(aio, 200, "text/plain", "ok\n");
}

static void
la_readyz(nng_aio *aio)
{
	la_http *h = la_http_of(aio);
	bool ready = h->hooks.ready == NULL || h->hooks.ready(h->hooks.arg);
	la_http_reply(aio, ready ? 200 : 503, "text/plain",
	    ready ? "ready\n" : "not ready\n");
}

static void
la_metrics(nng_aio *aio)
{
	la_http *h = la_http_of(aio);
	char    *text =
            h->hooks.metrics != NULL ? h->hooks.metrics(h->hooks.arg) : NULL;
	if (text == NULL) {
		la_http_reply(aio, 500, "text/plain", "metrics unavailable\n");
		return;
	}
	la_http_reply(aio, 200, "text/plain; version=0.0.4", text);
	free(text);
}

la_err
la_http_start(la_http **out, const char *addr, const la_http_hooks *hooks,
    char *err, size_t errlen)
{
	la_http *h;
	nng_url *url = NULL;
	char     ustr[160];
	int      rv;
	static const struct {
		const char *path;
		void (*fn)(nng_aio *);
	} routes[] = {{"/healthz", la_healthz}, {"/readyz", la_readyz},
	    {"/metrics", la_metrics}};

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		return (LA_ERR_NOMEM);
	}
	h->hooks = *hooks;
	snprintf(ustr, sizeof(ustr), "http://%s", addr);
	if ((rv = nng_url_parse(&url, ustr)) != 0 ||
	    (rv = nng_http_server_hold(&h->server, url)) != 0) {
		goto fail;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		nng_http_handler *hd;
		if ((rv = nng_http_handler_alloc(&hd, routes[i].path,
		         routes[i].fn)) != 0) {
			goto fail;
		}
		nng_http_handler_set_method(hd, "GET");
		nng_http_handler_set_data(hd, h, NULL);
		if ((rv = nng_http_server_add_handler(h->server, hd)) != 0) {
			nng_http_handler_free(hd);
			goto fail;
		}
	}
	if ((rv = nng_http_server_start(h->server)) != 0) {
		goto fail;
	}
	nng_sockaddr sa;
	char         host[INET6_ADDRSTRLEN] = "";
	if (nng_http_server_get_addr(h->server, &sa) == 0 &&
	    sa.s_family == NNG_AF_INET) {
		inet_ntop(AF_INET, &sa.s_in.sa_addr, host, sizeof(host));
		snprintf(h->addr, sizeof(h->addr), "%s:%u", host,
		    ntohs(sa.s_in.sa_port));
	} else if (sa.s_family == NNG_AF_INET6) {
		inet_ntop(AF_INET6, sa.s_in6.sa_addr, host, sizeof(host));
		snprintf(h->addr, sizeof(h->addr), "[%s]:%u", host,
		    ntohs(sa.s_in6.sa_port));
	} else {
		snprintf(h->addr, sizeof(h->addr), "%s", addr);
	}
	nng_url_free(url);
	*out = h;
	return (LA_OK);

fail:
	snprintf(err, errlen, "listen.http: %s (%s)", nng_strerror(rv), addr);
	nng_url_free(url);
	if (h->server != NULL) {
		nng_http_server_release(h->server);
	}
	free(h);
	return (la_err_from_nng(rv));
}

const char *
la_http_addr(const la_http *h)
{
	return (h->addr);
}

void
la_http_stop(la_http *h)
{
	if (h == NULL) {
		return;
	}
	nng_http_server_stop(h->server);
	nng_http_server_release(h->server);
	free(h);
}
