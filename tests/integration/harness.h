// harness.h -- integration-test harness: starts the stand-in Lean and
// brokerage APIs and the real leanauthd on ephemeral loopback ports, talks to
// them as clients do, and checks afterwards that no canary secret reached
// leanauthd's log. Every wait has a deadline.
#ifndef LA_HARNESS_H
#define LA_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "leanauth.h"

// Secrets given to leanauthd. The stand-in issues access tokens that start
// with CANARY_ACCESS_PREFIX. None of these may ever appear in the log.
#define CANARY_API_TOKEN "CANARY-APITOKEN-5d1e"
#define CANARY_REFRESH_TOKEN "CANARY-REFRESH-77b0"
#define CANARY_ACCESS_PREFIX "CANARY-ACCESS-"
#define CANARY_ANY "CANARY-"

typedef struct h_env {
	char    dir[256];
	pid_t   standin;
	char    lean_url[128];
	char    brokerage_url[128];
	pid_t   daemon;
	char    rpc_url[160];
	char    events_url[160];
	char    http_addr[160];
	char    cfg_path[300];
	char    log_path[300];
	json_t *cfg; // what h_daemon_start writes; tests edit it first
} h_env;

// h_setup makes a temp dir, starts the stand-in, and builds the default
// config: one profile "schwab" (CharlesSchwab, account A1), 3 retries 50 ms
// apart, Send allowed under {brokerage_url}api/.
void h_setup(h_env *e);

// h_teardown stops leanauthd with SIGTERM and requires exit 0, stops the
// stand-in, requires that the log holds no canary, and removes the temp dir.
void h_teardown(h_env *e);

// h_fini_check fails the test from a TestSuite's .fini when ok is false.
// Criterion 2.4 ignores cr_assert failures in .fini, so this logs the
// message and exits the test's worker: Criterion then reports the test as
// having exited during teardown and the runner exits non-zero.
void h_fini_check(bool ok, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// h_profile returns profiles[i] of e->cfg (borrowed), to edit.
json_t *h_profile(h_env *e, size_t i);

// h_add_profile appends a profile named name for account account_id.
json_t *h_add_profile(h_env *e, const char *name, const char *account_id);

// h_daemon_start writes e->cfg and starts leanauthd; returns once its
// "ready" log line names the bound addresses.
void h_daemon_start(h_env *e);

// h_daemon_stop sends sig and waits up to timeout_ms. Returns the exit
// status (or 128+signal), -1 if it did not exit in time. *elapsed_ms may be
// NULL.
int h_daemon_stop(h_env *e, int sig, int timeout_ms, int64_t *elapsed_ms);

// h_client opens a client on the daemon's RPC URL (connected on return).
leanauth_client *h_client(h_env *e);

// Stand-in control: JSON request/response on its control API. body may be
// NULL (GET). The caller json_decref()s the result; NULL on failure.
json_t *h_lean(h_env *e, const char *path, const char *body);
json_t *h_broker(h_env *e, const char *path, const char *body);

// h_lean_stat returns one integer from the Lean stand-in's stats.
long h_lean_stat(h_env *e, const char *key);
long h_broker_stat(h_env *e, const char *key);

// h_lean_plan sets account's plan (a JSON array of modes) and default mode.
void h_lean_plan(h_env *e, const char *account, const char *plan,
    const char *dflt);

// h_lean_wait blocks (stand-in side) until query holds, e.g. "calls=3".
bool h_lean_wait(h_env *e, const char *query, int timeout_ms);

// h_log_contains reports whether leanauthd's log contains needle.
bool h_log_contains(h_env *e, const char *needle);

// h_wait_log waits up to timeout_ms for needle to appear in the log.
bool h_wait_log(h_env *e, const char *needle, int timeout_ms);

// h_run runs argv (argv[0] a path) with a timeout, capturing stdout and
// stderr (NUL-terminated, truncated to their sizes). Returns the exit status,
// 128+signal if killed, -1 on timeout (the process is then killed).
int h_run(const char *const argv[], int timeout_ms, char *out, size_t outlen,
    char *err, size_t errlen);

// h_spawn starts argv with stdout/stderr to files in e->dir (name.out,
// name.err); h_wait_pid waits for it (as h_run's return).
pid_t h_spawn(h_env *e, const char *name, const char *const argv[]);
int   h_wait_pid(pid_t pid, int timeout_ms);
// h_read_file returns a file's contents (free()), or NULL.
char *h_read_file(const char *path);

// h_raw_call sends raw bytes as one REQ message to the RPC URL and decodes
// the reply's status. Returns the status code (or -1 if no reply came within
// timeout_ms); message copied into msg.
int h_raw_call(h_env *e, const void *buf, size_t len, int timeout_ms,
    char *msg, size_t msglen);

// h_envelope packs an RpcRequest for method with payload into a heap buffer.
uint8_t *h_envelope(const char *method, const void *payload, size_t plen,
    uint32_t timeout_ms, size_t *len);

int64_t h_now_ms(void);

#endif // LA_HARNESS_H
