// tls.h -- TLS for nng listeners (listen.rpc / listen.events given as
// tls+tcp://), configured from the config's listen.tls block.
#ifndef LA_TLS_H
#define LA_TLS_H

#include <nng/nng.h>
#include <stddef.h>

#include "common/err.h"
#include "config/config.h"

// la_tls_setup_listener configures l for TLS when url is tls+tcp://; does
// nothing for other schemes. err names the key at fault.
la_err la_tls_setup_listener(nng_listener l, const la_config *cfg,
    const char *url, char *err, size_t errlen);

#endif // LA_TLS_H
