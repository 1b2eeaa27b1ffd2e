// bench_token.c -- leanauthd's numbers beside their floor, measured in the
// same run (bench/README.md):
//
//   token  GetAccessToken on the cached fast path vs. a trivial nng REP
//          server that answers the same bytes (same client code, transport,
//          message sizes, REP context count), at 1, 8 and 64 client threads
//   send   Send through leanauthd vs. a direct libcurl GET to the stand-in
//          brokerage from the same client threads
//   cold   N callers waiting on one upstream refresh (single flight): time
//          from the first request to the last answer vs. the stand-in's delay
//
// Output is Markdown (tables) on stdout, progress on stderr. Nothing here
// asserts a time: the ratios are the result.
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch.h"
#include "leanauth.h"
#include "leanauth/v1/rpc.pb-c.h"
#include "leanauth/v1/token.pb-c.h"

#define B_PROFILE "bench"
#define B_ACCOUNT "A1"
#define B_NCTX 1024 // REP contexts, leanauthd (max_inflight) and echo alike
#define B_MAX_THREADS 256
#define B_MAX_SAMPLES (4u << 20) // per thread; beyond this ops still count

typedef struct b_opts {
	double run_s;
	double warm_s;
	int    threads[8];
	int    n_threads;
	int    cold_callers[8];
	int    n_cold;
	int    cold_delay_ms;
	int    cold_trials;
	bool   echo_inproc;
	int    workers;
	int    reps; // interleaved rounds per target and concurrency
} b_opts;

// ---- the load loop: N threads, warm-up, measured window, percentiles

typedef struct b_load b_load;

typedef struct b_worker {
	pthread_t t;
	b_load   *load;
	int       idx;
	void     *state; // per-thread client (set up by load->setup)
	int64_t  *lat;   // ns, measured ops only
	size_t    n_lat, cap_lat;
	uint64_t  ops, errs;
	char      err[512];
} b_worker;

struct b_load {
	const char *name;
	int         nthreads;
	void       *arg;
	// setup runs once per thread before the clock starts (connect, first
	// untimed call); op runs one call and returns 0 on success.
	void (*setup)(b_worker *w);
	int (*op)(b_worker *w);
	void (*teardown)(b_worker *w);
	pthread_barrier_t ready;
	pthread_mutex_t   setup_mtx; // setups one at a time: small backlogs
	atomic_int        phase;     // 0 warm, 1 measure, 2 stop
	b_worker          w[B_MAX_THREADS];
};

static void *
b_worker_main(void *arg)
{
	b_worker *w = arg;
	b_load   *L = w->load;
	pthread_mutex_lock(&L->setup_mtx);
	L->setup(w);
	pthread_mutex_unlock(&L->setup_mtx);
	pthread_barrier_wait(&L->ready);
	for (;;) {
		int ph = atomic_load_explicit(&L->phase, memory_order_relaxed);
		if (ph == 2) {
			break;
		}
		int64_t t0 = b_now_ns();
		int     rv = L->op(w);
		int64_t t1 = b_now_ns();
		if (ph != 1) {
			continue;
		}
		if (rv != 0) {
			w->errs++;
			continue;
		}
		w->ops++;
		if (w->n_lat == w->cap_lat && w->cap_lat < B_MAX_SAMPLES) {
			size_t   cap = w->cap_lat ? w->cap_lat * 2 : 4096;
			int64_t *p   = realloc(w->lat, cap * sizeof(*p));
			if (p != NULL) {
				w->lat     = p;
				w->cap_lat = cap;
			}
		}
		if (w->n_lat < w->cap_lat) {
			w->lat[w->n_lat++] = t1 - t0;
		}
	}
	if (L->teardown != NULL) {
		L->teardown(w);
	}
	return (NULL);
}

static int
b_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
	return ((x > y) - (x < y));
}

// b_acc pools the repetitions of one target at one concurrency: targets are
// run interleaved (A B A B ...) so that drift on a shared 2-core machine
// hits both sides of a ratio alike.
typedef struct b_acc {
	int64_t *lat; // ns, every measured call of every repetition
	size_t   n, cap;
	uint64_t ops, errs;
	double   secs;
	int64_t  cpu_ns; // server process CPU during the windows
	bool     has_cpu;
	double   rep_ops_s[16];
	int      nrep;
	char     err[512];
} b_acc;

// b_run runs L once (warm-up, then the measured window) and adds it to acc;
// server_pid (0: none) is charged with the CPU time it uses in the window.
static void
b_run(b_load *L, const b_opts *o, pid_t server_pid, b_acc *acc)
{
	atomic_store(&L->phase, 0);
	pthread_barrier_init(&L->ready, NULL, (unsigned) L->nthreads + 1);
	pthread_mutex_init(&L->setup_mtx, NULL);
	for (int i = 0; i < L->nthreads; i++) {
		b_worker *w = &L->w[i];
		memset(w, 0, sizeof(*w));
		w->load = L;
		w->idx  = i;
		if (pthread_create(&w->t, NULL, b_worker_main, w) != 0) {
			b_die("pthread_create: %s", strerror(errno));
		}
	}
	pthread_barrier_wait(&L->ready);
	b_sleep_ms((int) (o->warm_s * 1000));
	int64_t cpu0 = server_pid > 0 ? b_proc_cpu_ns(server_pid) : 0;
	int64_t t0   = b_now_ns();
	atomic_store(&L->phase, 1);
	b_sleep_ms((int) (o->run_s * 1000));
	atomic_store(&L->phase, 2);
	int64_t t1   = b_now_ns();
	int64_t cpu1 = server_pid > 0 ? b_proc_cpu_ns(server_pid) : 0;

	uint64_t ops = 0;
	for (int i = 0; i < L->nthreads; i++) {
		b_worker *w = &L->w[i];
		pthread_join(w->t, NULL);
		ops += w->ops;
		acc->errs += w->errs;
		if (w->err[0] != '\0' && acc->err[0] == '\0') {
			snprintf(acc->err, sizeof(acc->err), "%s", w->err);
		}
		if (acc->n + w->n_lat > acc->cap) {
			size_t   cap = (acc->n + w->n_lat) * 2;
			int64_t *p   = realloc(acc->lat, cap * sizeof(*p));
			if (p == NULL) {
				b_die("out of memory");
			}
			acc->lat = p;
			acc->cap = cap;
		}
		if (w->n_lat > 0) {
			memcpy(acc->lat + acc->n, w->lat,
			    w->n_lat * sizeof(*w->lat));
		}
		acc->n += w->n_lat;
		free(w->lat);
	}
	double secs = (double) (t1 - t0) / 1e9;
	acc->ops += ops;
	acc->secs += secs;
	acc->cpu_ns += cpu1 - cpu0;
	acc->has_cpu = server_pid > 0;
	if (acc->nrep < 16) {
		acc->rep_ops_s[acc->nrep++] = (double) ops / secs;
	}
	pthread_barrier_destroy(&L->ready);
	pthread_mutex_destroy(&L->setup_mtx);
	fprintf(stderr,
	    "  %-28s %2d thr  %9.0f ops/s  server CPU %6.1f us/call\n",
	    L->name, L->nthreads, (double) ops / secs,
	    server_pid > 0 && ops > 0
	        ? (double) (cpu1 - cpu0) / 1e3 / (double) ops
	        : 0.0);
}

typedef struct b_result {
	double   ops_s;
	double   p50_us, p99_us;
	uint64_t ops, errs;
	double   server_cpu_us_op; // < 0: not measured
} b_result;

// b_finish turns acc into a result and frees its samples.
static b_result
b_finish(b_acc *acc)
{
	b_result r = {0};
	size_t   n = acc->n;
	if (n > 0) {
		qsort(acc->lat, n, sizeof(*acc->lat), b_cmp_i64);
	}
	r.ops    = acc->ops;
	r.errs   = acc->errs;
	r.ops_s  = acc->secs > 0 ? (double) acc->ops / acc->secs : 0;
	r.p50_us = n ? (double) acc->lat[n / 2] / 1e3 : 0;
	r.p99_us =
	    n ? (double) acc->lat[(size_t) ((double) n * 0.99)] / 1e3 : 0;
	r.server_cpu_us_op = acc->has_cpu && acc->ops > 0
	    ? (double) acc->cpu_ns / 1e3 / (double) acc->ops
	    : -1;
	free(acc->lat);
	acc->lat = NULL;
	return (r);
}

// b_ratio_range writes "lo-hi" of the per-repetition ratios a[i] / b[i]
// (ops/s), to show how much of a pooled ratio is noise.
static void
b_ratio_range(const b_acc *a, const b_acc *b, char *buf, size_t len)
{
	double lo = 1e300, hi = 0;
	int    n = a->nrep < b->nrep ? a->nrep : b->nrep;
	for (int i = 0; i < n; i++) {
		double r = b->rep_ops_s[i] > 0
		    ? a->rep_ops_s[i] / b->rep_ops_s[i]
		    : 0;
		lo       = r < lo ? r : lo;
		hi       = r > hi ? r : hi;
	}
	if (n > 0) {
		snprintf(buf, len, "%.2f–%.2f", lo, hi);
	} else {
		snprintf(buf, len, "-");
	}
}

// ---- GetAccessToken through libleanauth (against leanauthd or the echo)

static void
b_token_setup(b_worker *w)
{
	leanauth_client *c;
	leanauth_error   err;
	leanauth_options o = {.timeout_ms = 10000, .connect_timeout_ms = 5000};
	if (leanauth_open(&c, (const char *) w->load->arg, &o, &err) != 0) {
		b_die("leanauth_open %s: %s", (const char *) w->load->arg,
		    err.message);
	}
	w->state = c;
}

static int
b_token_op(b_worker *w)
{
	leanauth_token tok;
	leanauth_error err;
	int rv = leanauth_get_token(w->state, B_PROFILE, false, 0, NULL, &tok,
	    &err);
	if (rv == 0 &&
	    (tok.access_token == NULL ||
	        strncmp(tok.access_token, "bench-tok-", 10) != 0)) {
		rv = -1;
		snprintf(err.message, sizeof(err.message), "unexpected token");
	}
	if (rv != 0) {
		snprintf(w->err, sizeof(w->err), "%s", err.message);
	}
	leanauth_token_clear(&tok);
	return (rv);
}

static void
b_client_teardown(b_worker *w)
{
	leanauth_close(w->state);
}

// ---- the floor: an nng REP server that answers canned bytes

typedef struct b_echo b_echo;

typedef struct b_echo_ctx {
	b_echo  *e;
	nng_aio *aio;
	nng_ctx  ctx;
	bool     sending;
} b_echo_ctx;

struct b_echo {
	nng_socket  sock;
	b_echo_ctx *cs;
	size_t      n;
	uint8_t    *reply;
	size_t      len;
	int  send_timeout_ms; // BENCH_ECHO_SEND_TIMEOUT_MS (experiments)
	char url[160];
};

// b_echo_cb: the whole server. The request message is reused for the reply
// (the least work a REP server can do); nothing is parsed.
static void
b_echo_cb(void *arg)
{
	b_echo_ctx *c = arg;
	int         rv;
	if (c->sending) {
		c->sending = false;
		if ((rv = nng_aio_result(c->aio)) != 0) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				return;
			}
		}
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	if ((rv = nng_aio_result(c->aio)) != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED) {
			nng_ctx_recv(c->ctx, c->aio);
		}
		return;
	}
	nng_msg *m = nng_aio_get_msg(c->aio);
	if (nng_msg_realloc(m, c->e->len) != 0) {
		nng_msg_free(m);
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	memcpy(nng_msg_body(m), c->e->reply, c->e->len);
	c->sending = true;
	if (c->e->send_timeout_ms > 0) {
		nng_aio_set_timeout(c->aio, c->e->send_timeout_ms);
	}
	nng_aio_set_msg(c->aio, m);
	nng_ctx_send(c->ctx, c->aio);
}

static b_echo *
b_echo_start(const uint8_t *reply, size_t len, size_t nctx)
{
	b_echo *e = calloc(1, sizeof(*e));
	int     rv;
	if (e == NULL || (e->reply = malloc(len)) == NULL ||
	    (e->cs = calloc(nctx, sizeof(*e->cs))) == NULL) {
		b_die("out of memory");
	}
	memcpy(e->reply, reply, len);
	e->len             = len;
	const char *st     = getenv("BENCH_ECHO_SEND_TIMEOUT_MS");
	e->send_timeout_ms = st != NULL ? atoi(st) : 0;
	e->n               = nctx;
	nng_listener l;
	if ((rv = nng_rep0_open(&e->sock)) != 0 ||
	    (rv = nng_listener_create(&l, e->sock, "tcp://127.0.0.1:0")) !=
	        0) {
		b_die("echo: %s", nng_strerror(rv));
	}
	for (size_t i = 0; i < nctx; i++) {
		e->cs[i].e = e;
		if ((rv = nng_aio_alloc(&e->cs[i].aio, b_echo_cb,
		         &e->cs[i])) != 0 ||
		    (rv = nng_ctx_open(&e->cs[i].ctx, e->sock)) != 0) {
			b_die("echo context: %s", nng_strerror(rv));
		}
	}
	char *url;
	if ((rv = nng_listener_start(l, 0)) != 0 ||
	    (rv = nng_listener_get_string(l, NNG_OPT_URL, &url)) != 0) {
		b_die("echo listen: %s", nng_strerror(rv));
	}
	snprintf(e->url, sizeof(e->url), "%s", url);
	nng_strfree(url);
	for (size_t i = 0; i < nctx; i++) {
		nng_ctx_recv(e->cs[i].ctx, e->cs[i].aio);
	}
	return (e);
}

static void
b_echo_stop(b_echo *e)
{
	nng_close(e->sock);
	for (size_t i = 0; i < e->n; i++) {
		nng_aio_free(e->cs[i].aio);
	}
	free(e->cs);
	free(e->reply);
	free(e);
}

// b_serve_echo is the child process: `bench_token --serve-echo NCTX FILE`.
// Prints its URL on stdout, serves until SIGTERM.
static int
b_serve_echo(int nctx, const char *path)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	FILE   *f = fopen(path, "rb");
	uint8_t buf[4096];
	size_t  len = f != NULL ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f != NULL) {
		fclose(f);
	}
	if (len == 0) {
		fprintf(stderr, "echo: cannot read %s\n", path);
		return (1);
	}
	b_echo *e = b_echo_start(buf, len, (size_t) nctx);
	printf("%s\n", e->url);
	fflush(stdout);
	int sig;
	sigwait(&set, &sig);
	b_echo_stop(e);
	return (0);
}

// b_capture_reply makes one raw GetAccessToken call to leanauthd and returns
// its exact reply bytes, for the echo server to answer with.
static uint8_t *
b_capture_reply(const char *url, size_t *len)
{
	Leanauth__V1__GetAccessTokenRequest g =
	    LEANAUTH__V1__GET_ACCESS_TOKEN_REQUEST__INIT;
	Leanauth__V1__RpcRequest r = LEANAUTH__V1__RPC_REQUEST__INIT;
	uint8_t                  payload[64], env[256];
	g.profile      = B_PROFILE;
	r.method       = "leanauth.v1.TokenService/GetAccessToken";
	r.payload.data = payload;
	r.payload.len =
	    leanauth__v1__get_access_token_request__pack(&g, payload);
	r.timeout_ms      = 10000;
	size_t     envlen = leanauth__v1__rpc_request__pack(&r, env);
	nng_socket s;
	void      *rbuf = NULL;
	int        rv;
	if ((rv = nng_req0_open(&s)) != 0 ||
	    (rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000)) != 0 ||
	    (rv = nng_dial(s, url, NULL, 0)) != 0 ||
	    (rv = nng_send(s, env, envlen, 0)) != 0 ||
	    (rv = nng_recv(s, &rbuf, len, NNG_FLAG_ALLOC)) != 0) {
		b_die("capturing a reply from %s: %s", url, nng_strerror(rv));
	}
	nng_close(s);
	Leanauth__V1__RpcResponse *resp =
	    leanauth__v1__rpc_response__unpack(NULL, *len, rbuf);
	if (resp == NULL ||
	    (resp->status != NULL && resp->status->code != 0)) {
		b_die("leanauthd's GetAccessToken reply is not OK");
	}
	leanauth__v1__rpc_response__free_unpacked(resp, NULL);
	uint8_t *copy = malloc(*len);
	memcpy(copy, rbuf, *len);
	nng_free(rbuf, *len);
	return (copy);
}

// ---- config

static json_t *
b_config(int workers)
{
	return (json_pack("{s:{s:s, s:s, s:s}, s:i, s:i, s:s,"
	                  " s:{s:i},"
	                  " s:[{s:s, s:s, s:s, s:i, s:i, s:{s:[], s:i}}]}",
	    "listen", "rpc", "tcp://127.0.0.1:0", "events",
	    "tcp://127.0.0.1:0", "http", "127.0.0.1:0", "workers", workers,
	    "max_inflight", B_NCTX, "log_level", "info", "lean_api",
	    "timeout_ms", 10000, "profiles", "name", B_PROFILE, "brokerage",
	    "CharlesSchwab", "account_id", B_ACCOUNT, "max_retry_count", 3,
	    "retry_interval_ms", 50, "send", "allowed_urls", "timeout_ms",
	    10000));
}

// b_start_env starts the stand-in and leanauthd (Send allowed under the
// stand-in brokerage's api/) and waits for the first token.
static void
b_start_env(b_env *e, const b_opts *o)
{
	json_t *cfg = b_config(o->workers);
	b_start(e, cfg);
	json_decref(cfg);
	leanauth_client *c;
	leanauth_error   err;
	leanauth_token   tok;
	leanauth_options lo = {.timeout_ms = 10000,
	    .connect_timeout_ms            = 5000};
	if (leanauth_open(&c, e->rpc_url, &lo, &err) != 0 ||
	    leanauth_get_token(c, B_PROFILE, false, 0, NULL, &tok, &err) !=
	        0) {
		b_die("first token: %s", err.message);
	}
	leanauth_token_clear(&tok);
	leanauth_close(c);
}

static void
b_print_env(const b_env *e, const b_opts *o, int64_t upstream_during)
{
	printf("leanauthd: %d workers, max_inflight %d, log_level info; peak "
	       "RSS %ld KiB",
	    o->workers, B_NCTX, b_proc_hwm_kib(e->daemon));
	if (upstream_during >= 0) {
		printf("; upstream refresh calls during the runs: %lld",
		    (long long) upstream_during);
	}
	printf(".\n\n");
}

static double
b_ratio(double a, double b)
{
	return (b > 0 ? a / b : 0);
}

// ---- mode: token

static void
b_mode_token(const b_opts *o, const char *self)
{
	b_env e;
	fprintf(stderr, "token: GetAccessToken (cached) vs. nng echo floor\n");
	b_start_env(&e, o);
	size_t   len;
	uint8_t *reply = b_capture_reply(e.rpc_url, &len);
	char     path[300];
	snprintf(path, sizeof(path), "%s/reply.bin", e.dir);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(reply, 1, len, f) != len || fclose(f) != 0) {
		b_die("cannot write %s", path);
	}
	char nctx[16];
	int  fd;
	char echo_url[200];
	snprintf(nctx, sizeof(nctx), "%d", B_NCTX);
	const char *argv[] = {self, "--serve-echo", nctx, path, NULL};
	pid_t       echo = b_spawn_wrapped("BENCH_WRAP_ECHO", argv, &fd, NULL);
	b_read_line(fd, echo_url, sizeof(echo_url), 60000, "echo server");
	close(fd);
	b_echo *inproc =
	    o->echo_inproc ? b_echo_start(reply, len, B_NCTX) : NULL;

	json_t *st0    = b_lean(&e, "_control/stats", NULL);
	long    calls0 = b_json_int(st0, "refresh_calls");
	json_decref(st0);

	b_result la[8], ec[8], ip[8];
	char     range[8][32];
	for (int i = 0; i < o->n_threads; i++) {
		b_load *L    = calloc(1, sizeof(*L));
		b_acc   a_la = {0}, a_ec = {0}, a_ip = {0};
		L->nthreads = o->threads[i];
		L->setup    = b_token_setup;
		L->op       = b_token_op;
		L->teardown = b_client_teardown;
		for (int r = 0; r < o->reps; r++) {
			L->name = "leanauthd GetAccessToken";
			L->arg  = e.rpc_url;
			b_run(L, o, e.daemon, &a_la);
			L->name = "echo floor (own process)";
			L->arg  = echo_url;
			b_run(L, o, echo, &a_ec);
			if (inproc != NULL) {
				L->name = "echo floor (in-process)";
				L->arg  = inproc->url;
				b_run(L, o, 0, &a_ip);
			}
		}
		b_ratio_range(&a_la, &a_ec, range[i], sizeof(range[i]));
		if (a_la.err[0] != '\0' || a_ec.err[0] != '\0') {
			fprintf(stderr, "  first error: %s\n",
			    a_la.err[0] ? a_la.err : a_ec.err);
		}
		la[i] = b_finish(&a_la);
		ec[i] = b_finish(&a_ec);
		ip[i] = b_finish(&a_ip);
		free(L);
	}
	json_t *st1    = b_lean(&e, "_control/stats", NULL);
	long    calls1 = b_json_int(st1, "refresh_calls");
	json_decref(st1);

	printf("## GetAccessToken, cached (fast path), vs. the nng echo "
	       "floor\n\n");
	printf(
	    "Each client thread has its own libleanauth client (one TCP "
	    "connection) and calls `leanauth_get_token` in a loop. leanauthd "
	    "and the floor take turns, %d rounds of %.2f s each (after %.2f s "
	    "warm-up per round), pooled. The floor is an nng REP server with "
	    "the same %d contexts in its own process that answers every "
	    "request with the %zu bytes leanauthd answered (captured at "
	    "start), so client code, transport and message sizes are the "
	    "same. "
	    "Server CPU is the server process's user+system time during the "
	    "window divided by the calls answered. The ops/s ratio range is "
	    "the lowest and highest of the per-round ratios.\n\n",
	    o->reps, o->run_s, o->warm_s, B_NCTX, len);
	printf(
	    "| client threads | leanauthd ops/s | p50 µs | p99 µs | echo "
	    "ops/s "
	    "| p50 µs | p99 µs | ops/s ratio (range) | p50 ratio | p99 ratio "
	    "| server CPU µs/call leanauthd | echo | CPU ratio | errors |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|-"
	       "--:|---:|\n");
	for (int i = 0; i < o->n_threads; i++) {
		printf("| %d | %.0f | %.1f | %.1f | %.0f | %.1f | %.1f | %.2f "
		       "(%s) | "
		       "%.2f | %.2f | %.1f | %.1f | %.2f | %llu |\n",
		    o->threads[i], la[i].ops_s, la[i].p50_us, la[i].p99_us,
		    ec[i].ops_s, ec[i].p50_us, ec[i].p99_us,
		    b_ratio(la[i].ops_s, ec[i].ops_s), range[i],
		    b_ratio(la[i].p50_us, ec[i].p50_us),
		    b_ratio(la[i].p99_us, ec[i].p99_us),
		    la[i].server_cpu_us_op, ec[i].server_cpu_us_op,
		    b_ratio(la[i].server_cpu_us_op, ec[i].server_cpu_us_op),
		    (unsigned long long) (la[i].errs + ec[i].errs));
	}
	printf(
	    "\nRatios are leanauthd / echo: ops/s below 1 and latency or CPU "
	    "above 1 are leanauthd's own cost.\n\n");
	if (inproc != NULL) {
		printf("Echo server in the client's process (shares nng's "
		       "threads "
		       "with the client), for comparison:\n\n");
		printf("| client threads | ops/s | p50 µs | p99 µs "
		       "|\n|---:|---:|---:|---:|\n");
		for (int i = 0; i < o->n_threads; i++) {
			printf("| %d | %.0f | %.1f | %.1f |\n", o->threads[i],
			    ip[i].ops_s, ip[i].p50_us, ip[i].p99_us);
		}
		printf("\n");
		b_echo_stop(inproc);
	}
	b_print_env(&e, o, calls1 - calls0);
	b_reap(echo, SIGTERM, 5000);
	free(reply);
	b_stop(&e);
}

// ---- mode: send

typedef struct b_send_arg {
	const char *rpc_url;
	char        url[256]; // brokerage URL under allowed_urls
	char auth[600]; // "Authorization: Bearer <token>" for direct curl
} b_send_arg;

static void
b_send_setup(b_worker *w)
{
	b_send_arg      *a = w->load->arg;
	leanauth_client *c;
	leanauth_error   err;
	leanauth_options o = {.timeout_ms = 10000, .connect_timeout_ms = 5000};
	if (leanauth_open(&c, a->rpc_url, &o, &err) != 0) {
		b_die("leanauth_open: %s", err.message);
	}
	w->state = c;
	if (w->load->op(w) != 0) { // first, untimed call: connections up
		b_die("first Send: %s", w->err);
	}
}

static int
b_send_op(b_worker *w)
{
	b_send_arg       *a   = w->load->arg;
	leanauth_request  req = {.profile = B_PROFILE,
	     .method                      = "GET",
	     .url                         = a->url};
	leanauth_response resp;
	leanauth_error    err;
	int rv = leanauth_send(w->state, &req, NULL, &resp, &err);
	if (rv == 0 && resp.status_code != 200) {
		snprintf(err.message, sizeof(err.message), "HTTP %d",
		    resp.status_code);
		rv = -1;
	}
	if (rv != 0) {
		snprintf(w->err, sizeof(w->err), "%s", err.message);
	}
	if (rv == 0 || rv == -1) {
		leanauth_response_clear(&resp);
	}
	return (rv);
}

static size_t
b_discard(char *d, size_t s, size_t n, void *arg)
{
	(void) d;
	*(size_t *) arg += s * n;
	return (s * n);
}

// Direct GETs: every call and every new connection libcurl made for them.
static atomic_ulong b_curl_calls, b_curl_conns;

typedef struct b_curl_state {
	CURL              *h;
	struct curl_slist *hd;
	size_t             bytes;
} b_curl_state;

static int
b_curl_op(b_worker *w)
{
	b_curl_state *cs    = w->state;
	long          code  = 0;
	long          conns = 0;
	CURLcode      cc    = curl_easy_perform(cs->h);
	curl_easy_getinfo(cs->h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(cs->h, CURLINFO_NUM_CONNECTS, &conns);
	atomic_fetch_add(&b_curl_calls, 1);
	atomic_fetch_add(&b_curl_conns, (unsigned long) conns);
	if (cc != CURLE_OK || code != 200) {
		snprintf(w->err, sizeof(w->err), "curl: %s, HTTP %ld",
		    curl_easy_strerror(cc), code);
		return (-1);
	}
	return (0);
}

static void
b_curl_setup(b_worker *w)
{
	b_send_arg   *a  = w->load->arg;
	b_curl_state *cs = calloc(1, sizeof(*cs));
	cs->h            = curl_easy_init();
	cs->hd           = curl_slist_append(NULL, a->auth);
	curl_easy_setopt(cs->h, CURLOPT_URL, a->url);
	curl_easy_setopt(cs->h, CURLOPT_HTTPHEADER, cs->hd);
	curl_easy_setopt(cs->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cs->h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(cs->h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(cs->h, CURLOPT_WRITEFUNCTION, b_discard);
	curl_easy_setopt(cs->h, CURLOPT_WRITEDATA, &cs->bytes);
	w->state = cs;
	if (b_curl_op(w) != 0) {
		b_die("first direct GET: %s", w->err);
	}
}

static void
b_curl_teardown(b_worker *w)
{
	b_curl_state *cs = w->state;
	curl_easy_cleanup(cs->h);
	curl_slist_free_all(cs->hd);
	free(cs);
}

static void
b_mode_send(const b_opts *o)
{
	b_env e;
	fprintf(stderr,
	    "send: Send through leanauthd vs. direct libcurl GET\n");
	b_start_env(&e, o);
	b_send_arg a = {.rpc_url = e.rpc_url};
	snprintf(a.url, sizeof(a.url), "%sapi/echo", e.brokerage_url);
	leanauth_client *c;
	leanauth_error   err;
	leanauth_token   tok;
	leanauth_options lo = {.timeout_ms = 10000,
	    .connect_timeout_ms            = 5000};
	if (leanauth_open(&c, e.rpc_url, &lo, &err) != 0 ||
	    leanauth_get_token(c, B_PROFILE, false, 0, NULL, &tok, &err) !=
	        0) {
		b_die("token for direct GETs: %s", err.message);
	}
	snprintf(a.auth, sizeof(a.auth), "Authorization: Bearer %s",
	    tok.access_token);
	leanauth_token_clear(&tok);
	leanauth_close(c);

	b_result la[8], cu[8];
	char     range[8][32];
	double   la_conn[8], cu_conn[8]; // new connections per 100 calls
	for (int i = 0; i < o->n_threads; i++) {
		b_load *L    = calloc(1, sizeof(*L));
		b_acc   a_la = {0}, a_cu = {0};
		double  calls0 = b_metric(&e, "leanauth_send_calls_total");
		double  conns0 =
		    b_metric(&e, "leanauth_send_connections_total");
		atomic_store(&b_curl_calls, 0);
		atomic_store(&b_curl_conns, 0);
		L->nthreads = o->threads[i];
		L->arg      = &a;
		for (int r = 0; r < o->reps; r++) {
			L->name     = "leanauthd Send";
			L->setup    = b_send_setup;
			L->op       = b_send_op;
			L->teardown = b_client_teardown;
			b_run(L, o, e.daemon, &a_la);
			L->name     = "direct libcurl GET";
			L->setup    = b_curl_setup;
			L->op       = b_curl_op;
			L->teardown = b_curl_teardown;
			b_run(L, o, 0, &a_cu);
		}
		double calls =
		    b_metric(&e, "leanauth_send_calls_total") - calls0;
		double conns =
		    b_metric(&e, "leanauth_send_connections_total") - conns0;
		la_conn[i] = calls > 0 ? 100.0 * conns / calls : 0;
		cu_conn[i] = atomic_load(&b_curl_calls) > 0
		    ? 100.0 * (double) atomic_load(&b_curl_conns) /
		        (double) atomic_load(&b_curl_calls)
		    : 0;
		b_ratio_range(&a_la, &a_cu, range[i], sizeof(range[i]));
		if (a_la.err[0] != '\0' || a_cu.err[0] != '\0') {
			fprintf(stderr, "  first error: %s\n",
			    a_la.err[0] ? a_la.err : a_cu.err);
		}
		la[i] = b_finish(&a_la);
		cu[i] = b_finish(&a_cu);
		free(L);
	}
	explicit_bzero(a.auth, sizeof(a.auth));

	printf("## Send through leanauthd (%d workers) vs. a direct libcurl "
	       "GET\n\n",
	    o->workers);
	printf(
	    "`leanauth_send` GET `{brokerage}api/echo` (leanauthd attaches "
	    "the "
	    "token and performs the call on a worker with libcurl) vs. the "
	    "same GET made directly with libcurl (keep-alive, token in the "
	    "header) from the same client threads; the two take turns, %d "
	    "rounds of %.2f s each (after %.2f s warm-up per round), pooled. "
	    "Both end at the Python stand-in brokerage, which is the "
	    "bottleneck here: read the ratio as leanauthd's added cost on top "
	    "of an HTTP call to a slow upstream. *New conns / 100 calls* "
	    "counts TCP connections opened to the brokerage per 100 calls "
	    "(leanauthd's `leanauth_send_connections_total`; libcurl's "
	    "`CURLINFO_NUM_CONNECTS` for the direct GETs), warm-up "
	    "included.\n\n",
	    o->reps, o->run_s, o->warm_s);
	printf(
	    "| client threads | Send ops/s | p50 µs | p99 µs | direct ops/s | "
	    "p50 µs | p99 µs | ops/s ratio (range) | p50 ratio | p99 ratio | "
	    "leanauthd CPU µs/call | new conns / 100 calls: Send | direct "
	    "| errors |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|-"
	       "--:|---:|\n");
	for (int i = 0; i < o->n_threads; i++) {
		printf("| %d | %.0f | %.1f | %.1f | %.0f | %.1f | %.1f | %.2f "
		       "(%s) | "
		       "%.2f | %.2f | %.1f | %.1f | %.1f | %llu |\n",
		    o->threads[i], la[i].ops_s, la[i].p50_us, la[i].p99_us,
		    cu[i].ops_s, cu[i].p50_us, cu[i].p99_us,
		    b_ratio(la[i].ops_s, cu[i].ops_s), range[i],
		    b_ratio(la[i].p50_us, cu[i].p50_us),
		    b_ratio(la[i].p99_us, cu[i].p99_us),
		    la[i].server_cpu_us_op, la_conn[i], cu_conn[i],
		    (unsigned long long) (la[i].errs + cu[i].errs));
	}
	printf("\nRatios are leanauthd Send / direct GET.\n\n");
	b_print_env(&e, o, -1);
	b_stop(&e);
}

// ---- mode: cold (single flight)

typedef struct b_cold_caller {
	pthread_t          t;
	leanauth_client   *c;
	pthread_barrier_t *go;
	uint64_t           if_gen;
	int64_t            start, end;
	uint64_t           gen;
	int                rv;
	char               err[512];
} b_cold_caller;

static void *
b_cold_main(void *arg)
{
	b_cold_caller *k = arg;
	leanauth_token tok;
	leanauth_error err;
	pthread_barrier_wait(k->go);
	k->start = b_now_ns();
	k->rv    = leanauth_get_token(k->c, B_PROFILE, true, k->if_gen, NULL,
	       &tok, &err);
	k->end   = b_now_ns();
	k->gen   = k->rv == 0 ? tok.generation : 0;
	if (k->rv != 0) {
		snprintf(k->err, sizeof(k->err), "%s", err.message);
	}
	leanauth_token_clear(&tok);
	return (NULL);
}

static int
b_cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;
	return ((x > y) - (x < y));
}

static void
b_mode_cold(const b_opts *o)
{
	b_env e;
	fprintf(stderr, "cold: N callers, one upstream refresh\n");
	b_start_env(&e, o);
	printf("## Cold token: N callers waiting on one refresh (single "
	       "flight)\n\n");
	printf(
	    "The stand-in Lean API is told to answer the next refresh after "
	    "%d ms (`slow:%d`). N client threads (one connection each) call "
	    "GetAccessToken with `force_refresh` and the current "
	    "`if_generation` at once: the first drops the token, all wait "
	    "for the same single refresh. *Span* is from the first request "
	    "leaving to the last answer arriving; *overhead* is span minus "
	    "the stand-in's delay. %d trials per N; median (max).\n\n",
	    o->cold_delay_ms, o->cold_delay_ms, o->cold_trials);
	printf("| callers N | stand-in delay ms | span ms, median (max) | "
	       "overhead ms, median | span / delay | median caller ms | "
	       "upstream calls per trial | same new generation | errors |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|:---:|---:|\n");

	char plan[200];
	snprintf(plan, sizeof(plan),
	    "{\"account_id\":\"%s\",\"plan\":[\"slow:%d\"],\"default\":"
	    "\"ok\"}",
	    B_ACCOUNT, o->cold_delay_ms);
	for (int ni = 0; ni < o->n_cold; ni++) {
		int            n  = o->cold_callers[ni];
		b_cold_caller *ks = calloc((size_t) n, sizeof(*ks));
		for (int i = 0; i < n; i++) {
			leanauth_error   err;
			leanauth_options lo = {.timeout_ms = 10000,
			    .connect_timeout_ms            = 5000};
			if (leanauth_open(&ks[i].c, e.rpc_url, &lo, &err) !=
			    0) {
				b_die("leanauth_open: %s", err.message);
			}
		}
		double   spans[16], callers_med[16];
		long     upstream_min = 1L << 30, upstream_max = 0;
		bool     same_gen       = true;
		unsigned errors         = 0;
		char     first_err[512] = "";
		int      trials = o->cold_trials > 16 ? 16 : o->cold_trials;
		for (int t = 0; t < trials; t++) {
			leanauth_token tok;
			leanauth_error err;
			if (leanauth_get_token(ks[0].c, B_PROFILE, false, 0,
			        NULL, &tok, &err) != 0) {
				b_die("current token: %s", err.message);
			}
			uint64_t gen = tok.generation;
			leanauth_token_clear(&tok);
			json_decref(b_lean(&e, "_control/plan", plan));
			json_t *s0     = b_lean(&e, "_control/stats", NULL);
			long    calls0 = b_json_int(s0, "refresh_calls");
			json_decref(s0);

			pthread_barrier_t go;
			pthread_barrier_init(&go, NULL, (unsigned) n);
			for (int i = 0; i < n; i++) {
				ks[i].go     = &go;
				ks[i].if_gen = gen;
				pthread_create(&ks[i].t, NULL, b_cold_main,
				    &ks[i]);
			}
			int64_t first = INT64_MAX, last = 0;
			double *lat = calloc((size_t) n, sizeof(double));
			for (int i = 0; i < n; i++) {
				pthread_join(ks[i].t, NULL);
				first =
				    ks[i].start < first ? ks[i].start : first;
				last = ks[i].end > last ? ks[i].end : last;
				lat[i] =
				    (double) (ks[i].end - ks[i].start) / 1e6;
				if (ks[i].rv != 0) {
					errors++;
					if (first_err[0] == '\0') {
						snprintf(first_err,
						    sizeof(first_err), "%s",
						    ks[i].err);
					}
				} else if (ks[i].gen != ks[0].gen ||
				    ks[i].gen <= gen) {
					same_gen = false;
				}
			}
			pthread_barrier_destroy(&go);
			qsort(lat, (size_t) n, sizeof(double), b_cmp_dbl);
			callers_med[t] = lat[n / 2];
			free(lat);
			spans[t]   = (double) (last - first) / 1e6;
			json_t *s1 = b_lean(&e, "_control/stats", NULL);
			long calls = b_json_int(s1, "refresh_calls") - calls0;
			json_decref(s1);
			upstream_min =
			    calls < upstream_min ? calls : upstream_min;
			upstream_max =
			    calls > upstream_max ? calls : upstream_max;
			fprintf(stderr,
			    "  N=%-3d trial %d: span %.1f ms, upstream calls "
			    "%ld\n",
			    n, t + 1, spans[t], calls);
		}
		double sorted[16];
		memcpy(sorted, spans, sizeof(double) * (size_t) trials);
		qsort(sorted, (size_t) trials, sizeof(double), b_cmp_dbl);
		qsort(callers_med, (size_t) trials, sizeof(double), b_cmp_dbl);
		double med = sorted[trials / 2];
		char   up[64];
		if (upstream_min == upstream_max) {
			snprintf(up, sizeof(up), "%ld", upstream_min);
		} else {
			snprintf(up, sizeof(up), "%ld-%ld", upstream_min,
			    upstream_max);
		}
		printf("| %d | %d | %.1f (%.1f) | %.1f | %.3f | %.1f | %s | "
		       "%s | %u |\n",
		    n, o->cold_delay_ms, med, sorted[trials - 1],
		    med - o->cold_delay_ms, med / o->cold_delay_ms,
		    callers_med[trials / 2], up, same_gen ? "yes" : "no",
		    errors);
		if (first_err[0] != '\0') {
			fprintf(stderr, "  first error: %s\n", first_err);
		}
		for (int i = 0; i < n; i++) {
			leanauth_close(ks[i].c);
		}
		free(ks);
	}
	printf("\n");
	b_print_env(&e, o, -1);
	b_stop(&e);
}

// ---- command line

static int
b_parse_list(const char *s, int *out, int max)
{
	int n = 0;
	while (*s != '\0' && n < max) {
		char *end;
		long  v = strtol(s, &end, 10);
		if (end == s || v < 1 || v > B_MAX_THREADS) {
			return (-1);
		}
		out[n++] = (int) v;
		s        = *end == ',' ? end + 1 : end;
		if (*end != ',' && *end != '\0') {
			return (-1);
		}
	}
	return (n);
}

static void
b_usage(FILE *f)
{
	fprintf(f,
	    "usage: bench_token [--mode token|send|cold|all] [--seconds S]\n"
	    "                   [--warmup S] [--reps N] [--threads 1,8,64]\n"
	    "                   [--workers N]\n"
	    "                   [--cold-callers 1,8,64] [--cold-delay-ms MS]\n"
	    "                   [--cold-trials N] [--echo-inproc]\n"
	    "Markdown tables on stdout; progress on stderr.\n");
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--serve-echo") == 0) {
		return (b_serve_echo(atoi(argv[2]), argv[3]));
	}
	b_opts      o    = {.run_s = 0.3,
	            .warm_s        = 0.1,
	            .cold_delay_ms = 200,
	            .cold_trials   = 3,
	            .workers       = 8,
	            .reps          = 3};
	const char *mode = "all";
	o.n_threads      = b_parse_list("1,8,64", o.threads, 8);
	o.n_cold         = b_parse_list("1,8,64", o.cold_callers, 8);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i],
		           *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--echo-inproc") == 0) {
			o.echo_inproc = true;
			continue;
		}
		if (strcmp(a, "--help") == 0) {
			b_usage(stdout);
			return (0);
		}
		if (v == NULL) {
			b_usage(stderr);
			return (2);
		}
		i++;
		if (strcmp(a, "--mode") == 0) {
			mode = v;
		} else if (strcmp(a, "--seconds") == 0) {
			o.run_s = atof(v);
		} else if (strcmp(a, "--warmup") == 0) {
			o.warm_s = atof(v);
		} else if (strcmp(a, "--workers") == 0) {
			o.workers = atoi(v);
		} else if (strcmp(a, "--threads") == 0) {
			o.n_threads = b_parse_list(v, o.threads, 8);
		} else if (strcmp(a, "--cold-callers") == 0) {
			o.n_cold = b_parse_list(v, o.cold_callers, 8);
		} else if (strcmp(a, "--cold-delay-ms") == 0) {
			o.cold_delay_ms = atoi(v);
		} else if (strcmp(a, "--reps") == 0) {
			o.reps = atoi(v);
		} else if (strcmp(a, "--cold-trials") == 0) {
			o.cold_trials = atoi(v);
		} else {
			b_usage(stderr);
			return (2);
		}
	}
	if (o.n_threads <= 0 || o.n_cold <= 0 || o.run_s <= 0 ||
	    o.run_s > 30 || o.warm_s < 0 || o.cold_delay_ms < 1 ||
	    o.cold_trials < 1 || o.workers < 1 || o.reps < 1 || o.reps > 16) {
		b_usage(stderr);
		return (2);
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	bool all = strcmp(mode, "all") == 0;
	if (!all && strcmp(mode, "token") != 0 && strcmp(mode, "send") != 0 &&
	    strcmp(mode, "cold") != 0) {
		b_usage(stderr);
		return (2);
	}
	char    self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0) {
		b_die("readlink /proc/self/exe: %s", strerror(errno));
	}
	self[sl] = '\0';
	if (all || strcmp(mode, "token") == 0) {
		b_mode_token(&o, self);
	}
	if (all || strcmp(mode, "send") == 0) {
		b_mode_send(&o);
	}
	if (all || strcmp(mode, "cold") == 0) {
		b_mode_cold(&o);
	}
	curl_global_cleanup();
	return (0);
}
