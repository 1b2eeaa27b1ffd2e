// launch.h -- starts the stand-in Lean/brokerage APIs and leanauthd for the
// benches (a standalone cousin of tests/integration/harness.c, without
// Criterion): ephemeral loopback ports, every wait bounded, and any failure
// ends the bench with a message (b_die).
#ifndef LA_BENCH_LAUNCH_H
#define LA_BENCH_LAUNCH_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct b_env {
	char  dir[128]; // temp dir: config, logs
	pid_t standin;
	char  lean_url[128];
	char  brokerage_url[128];
	pid_t daemon;
	char  rpc_url[160];
	char  events_url[160];
	char  http_addr[160];
	char  log_path[256];
} b_env;

// b_die prints "bench: <msg>" on stderr, stops what b_env started (the
// children also die with this process) and exits 1.
void b_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

int64_t b_now_ns(void);
void    b_sleep_ms(int ms);

// b_start starts the stand-in (user 4242, fixed bench API token) and then
// leanauthd with cfg (borrowed) completed by the stand-in's URL: the caller
// gives "listen", "workers", "profiles" etc.; b_start fills in
// lean_api.url, user_id and api_token, and each profile's refresh_token
// and send.allowed_urls ({brokerage_url}api/).
void b_start(b_env *e, json_t *cfg);

// b_stop sends SIGTERM to leanauthd and the stand-in, waits (bounded), and
// removes the temp dir.
void b_stop(b_env *e);

// b_lean / b_broker: JSON request to the stand-in's control API (POST when
// body is not NULL). Returns a new reference; dies on failure.
json_t *b_lean(b_env *e, const char *path, const char *body);
json_t *b_broker(b_env *e, const char *path, const char *body);
long    b_json_int(json_t *j, const char *key);
// b_metric returns an unlabelled sample from leanauthd's /metrics.
double b_metric(b_env *e, const char *name);

// b_proc_cpu_ns returns the user+system CPU time pid has used so far.
int64_t b_proc_cpu_ns(pid_t pid);
// b_proc_hwm_kib returns pid's peak resident set size (VmHWM), in KiB.
long b_proc_hwm_kib(pid_t pid);

// b_spawn starts argv (argv[0] a path) with stdout to a pipe whose read end
// goes to *out_fd (if not NULL) and stderr to err_path (or inherited); the
// child dies with this process.
pid_t b_spawn(const char *const argv[], int *out_fd, const char *err_path);
// b_spawn_wrapped is b_spawn with the command in environment variable
// wrap_env (if set; absolute path first, split on spaces) put before argv,
// e.g. BENCH_WRAP_LEANAUTHD="/usr/bin/valgrind --tool=callgrind".
pid_t b_spawn_wrapped(const char *wrap_env, const char *const argv[],
    int *out_fd, const char *err_path);
// b_read_line reads one line (without '\n') from fd within timeout_ms.
void b_read_line(int fd, char *buf, size_t len, int timeout_ms,
    const char *what);
// b_reap sends sig to pid and waits up to timeout_ms (then SIGKILL).
void b_reap(pid_t pid, int sig, int timeout_ms);

#endif // LA_BENCH_LAUNCH_H
