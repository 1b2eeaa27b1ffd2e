// tls.c -- server-side nng TLS configuration (mbedTLS in Debian's nng).
#include "tls.h"

#include <nng/supplemental/tls/tls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// la_read_pem reads a PEM file (at most 1 MiB) into a NUL-terminated buffer.
static char *
la_read_pem(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return (NULL);
	}
	char  *buf = malloc(1024 * 1024 + 1);
	size_t n   = buf != NULL ? fread(buf, 1, 1024 * 1024, f) : 0;
	fclose(f);
	if (buf == NULL || n == 0 || n == 1024 * 1024) {
		free(buf);
		return (NULL);
	}
	buf[n] = '\0';
	return (buf);
}

la_err
la_tls_setup_listener(nng_listener l, const la_config *cfg, const char *url,
    char *err, size_t errlen)
{
	nng_tls_config *tc   = NULL;
	char           *cert = NULL, *key = NULL;
	la_err          rv = LA_ERR_INVALID;
	int             nrv;

	if (strncmp(url, "tls+", 4) != 0) {
		return (LA_OK);
	}
	if (!cfg->has_tls) {
		snprintf(err, errlen, "listen.tls: required for %s", url);
		return (LA_ERR_INVALID);
	}
	if ((nrv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_SERVER)) != 0) {
		snprintf(err, errlen, "listen.tls: %s", nng_strerror(nrv));
		return (la_err_from_nng(nrv));
	}
	if ((cert = la_read_pem(cfg->tls.cert_file)) == NULL) {
		snprintf(err, errlen, "listen.tls.cert_file: cannot read %s",
		    cfg->tls.cert_file);
		goto done;
	}
	if ((key = la_read_pem(cfg->tls.key_file)) == NULL) {
		snprintf(err, errlen, "listen.tls.key_file: cannot read %s",
		    cfg->tls.key_file);
		goto done;
	}
	if ((nrv = nng_tls_config_own_cert(tc, cert, key, NULL)) != 0) {
		snprintf(err, errlen, "listen.tls.cert_file/key_file: %s",
		    nng_strerror(nrv));
		goto done;
	}
	if (cfg->tls.ca_file != NULL &&
	    (nrv = nng_tls_config_ca_file(tc, cfg->tls.ca_file)) != 0) {
		snprintf(err, errlen, "listen.tls.ca_file: %s (%s)",
		    nng_strerror(nrv), cfg->tls.ca_file);
		goto done;
	}
	nng_tls_config_auth_mode(tc,
	    cfg->tls.require_client_cert ? NNG_TLS_AUTH_MODE_REQUIRED
	                                 : NNG_TLS_AUTH_MODE_NONE);
	if ((nrv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tc)) != 0) {
		snprintf(err, errlen, "listen.tls: %s", nng_strerror(nrv));
		goto done;
	}
	rv = LA_OK;
done:
	if (key != NULL) {
		explicit_bzero(key, strlen(key));
	}
	free(key);
	free(cert);
	nng_tls_config_free(tc); // the listener keeps its own hold
	return (rv);
}
