// config.h -- leanauthd's configuration: one JSON file (DESIGN.md,
// "Configuration"), parsed and validated in full before anything starts.
//
// Every secret may be given inline ("api_token"), from a file
// ("api_token_file", trailing newlines stripped) or from the environment
// ("api_token_env"): exactly one of the three. Unknown keys are errors.
// Error text names the key ("profiles[0].token_lifetime_s: …") and never
// contains a secret value.
#ifndef LA_CONFIG_H
#define LA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

typedef struct la_backoff_cfg {
	double   multiplier;      // 1.0: constant interval (the C# class)
	uint32_t max_interval_ms; // cap on a grown interval
	double   jitter;          // 0..1: each wait is scaled by 1 ± jitter
} la_backoff_cfg;

typedef struct la_send_cfg {
	char **allowed_urls; // URL prefixes Send may call; none: Send refused
	size_t n_allowed_urls;
	uint32_t timeout_ms;   // default 30000
	size_t max_body_bytes; // request and response body cap, default 8 MiB
} la_send_cfg;

typedef struct la_profile_cfg {
	char    *name;          // required, unique
	char    *brokerage;     // required; sent lowercased
	char    *account_id;    // required
	char    *refresh_token; // secret; NULL: omitted from the refresh body
	char    *deploy_id;     // NULL: omitted
	int64_t  token_lifetime_s;           // default 1800
	int64_t  offset_before_expiration_s; // default 120
	uint32_t max_retry_count;            // default 3 (4 attempts)
	uint32_t retry_interval_ms;          // default 5000
	la_backoff_cfg retry_backoff; // absent: constant interval, no jitter
	// Seconds before expiry that a background refresh starts. Default: a
	// quarter of the usable lifetime (token_lifetime_s -
	// offset_before_expiration_s). Jittered ±10 % at run time.
	int64_t     refresh_ahead_s;
	la_send_cfg send;
} la_profile_cfg;

typedef struct la_tls_cfg {
	char *cert_file;
	char *key_file;
	char *ca_file;
	bool  require_client_cert;
} la_tls_cfg;

typedef struct la_config {
	char *listen_rpc;    // default "tcp://127.0.0.1:7450"
	char *listen_events; // default "tcp://127.0.0.1:7451"
	char *listen_http;   // "host:port", default "127.0.0.1:7452"; "" off
	bool  has_tls;       // listen.tls given (needed for tls+tcp://)
	la_tls_cfg tls;

	uint32_t workers;      // default 8, 1..256
	uint32_t queue_size;   // worker queue bound, default 1024
	uint32_t max_inflight; // concurrent RPCs (REP contexts), default 1024
	uint32_t
	    default_timeout_ms; // when a request's timeout_ms is 0, default 30000
	la_log_level log_level; // "log_level", default "info"

	char *lean_url; // default "https://www.quantconnect.com/api/v2/",
	                // always ends with '/'
	char    *lean_user_id;    // required
	char    *lean_api_token;  // secret, required
	uint32_t lean_timeout_ms; // default 10000

	la_profile_cfg *profiles; // at least one
	size_t          n_profiles;
} la_config;

// la_config_load reads and validates path (at most 1 MiB). Relative file
// paths in it ("_file" secrets, listen.tls files) are resolved against the
// directory of path. On failure returns NULL and writes a message naming the
// offending key into err ("" on success); file-level errors name the file
// instead ("path: cannot read: …", "path:line:col: invalid JSON: …").
la_config *la_config_load(const char *path, char *err, size_t errlen);

// la_config_parse is la_config_load on a string already in memory; relative
// "_file" paths are resolved against the current directory.
la_config *la_config_parse(const char *json, char *err, size_t errlen);

// la_config_destroy wipes secrets and frees cfg. NULL-safe.
void la_config_destroy(la_config *cfg);

// la_config_profile returns the profile called name; NULL or "" means the
// first one. NULL when there is none.
const la_profile_cfg *la_config_profile(const la_config *cfg,
    const char                                          *name);

// la_config_profile_index is la_config_profile returning an index, or -1.
int la_config_profile_index(const la_config *cfg, const char *name);

// la_config_refresh_ahead_ms returns the profile's refresh-ahead window in ms,
// before jitter.
int64_t la_config_refresh_ahead_ms(const la_profile_cfg *p);

// la_config_usable_lifetime_ms is token_lifetime - offset_before_expiration.
int64_t la_config_usable_lifetime_ms(const la_profile_cfg *p);

#endif // LA_CONFIG_H
