// test_workers.c -- the worker pool: every job runs exactly once, the queue
// is bounded (full means LA_ERR_BUSY, never a stall), refresh jobs jump the
// queue, and stop drains the queue with the abort flag raised.
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "workers/workers.h"

typedef struct gate {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	bool            open;
	int             entered;
} gate;

static gate G;

static void
gate_init(void)
{
	memset(&G, 0, sizeof(G));
	pthread_mutex_init(&G.mtx, NULL);
	pthread_cond_init(&G.cv, NULL);
}

// A job that blocks its worker until the gate opens.
static void
blocking_job(la_worker *w, void *arg)
{
	(void) w;
	(void) arg;
	pthread_mutex_lock(&G.mtx);
	G.entered++;
	pthread_cond_broadcast(&G.cv);
	while (!G.open) {
		pthread_cond_wait(&G.cv, &G.mtx);
	}
	pthread_mutex_unlock(&G.mtx);
}

static void
wait_entered(int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&G.mtx);
	while (G.entered < n) {
		cr_assert_eq(pthread_cond_timedwait(&G.cv, &G.mtx, &until), 0,
		    "workers never picked up the blocking jobs");
	}
	pthread_mutex_unlock(&G.mtx);
}

static void
open_gate(void)
{
	pthread_mutex_lock(&G.mtx);
	G.open = true;
	pthread_cond_broadcast(&G.cv);
	pthread_mutex_unlock(&G.mtx);
}

typedef struct counted {
	la_job      job;
	atomic_int *calls;
	int        *order; // where to record the sequence number
	atomic_int *seq;
	bool        saw_abort;
	bool        has_curl;
} counted;

static void
counting_job(la_worker *w, void *arg)
{
	counted *c = arg;
	atomic_fetch_add(c->calls, 1);
	if (c->order != NULL) {
		*c->order = atomic_fetch_add(c->seq, 1);
	}
	c->saw_abort = atomic_load(la_worker_abort(w));
	c->has_curl  = la_worker_curl(w) != NULL;
}

Test(workers, every_job_runs_exactly_once)
{
	la_workers *p;
	enum { N = 500 };
	static counted jobs[N];
	atomic_int     calls = 0;

	cr_assert_eq(la_workers_create(&p, 4, N), LA_OK);
	cr_assert_eq(la_workers_start(p), LA_OK);
	for (int i = 0; i < N; i++) {
		jobs[i] =
		    (counted) {.job = {.fn = counting_job, .arg = &jobs[i]},
		        .calls      = &calls};
		cr_assert_eq(la_workers_submit(p, &jobs[i].job, false), LA_OK);
	}
	la_workers_stop(p); // drains the queue
	cr_assert_eq(atomic_load(&calls), N);
	for (int i = 0; i < N; i++) {
		cr_assert(jobs[i].has_curl);
	}
	la_workers_destroy(p);
}

Test(workers, a_full_queue_refuses_instead_of_stalling)
{
	la_workers *p;
	la_job      blocker = {.fn = blocking_job};
	counted     q[3];
	atomic_int  calls = 0;

	gate_init();
	cr_assert_eq(la_workers_create(&p, 1, 2), LA_OK);
	cr_assert_eq(la_workers_start(p), LA_OK);
	cr_assert_eq(la_workers_submit(p, &blocker, false), LA_OK);
	wait_entered(1); // the only worker is busy; the queue is empty
	for (int i = 0; i < 3; i++) {
		q[i] = (counted) {.job = {.fn = counting_job, .arg = &q[i]},
		    .calls             = &calls};
	}
	cr_assert_eq(la_workers_submit(p, &q[0].job, false), LA_OK);
	cr_assert_eq(la_workers_submit(p, &q[1].job, false), LA_OK);
	cr_assert_eq(la_workers_queued(p), 2);
	cr_assert_eq(la_workers_submit(p, &q[2].job, false), LA_ERR_BUSY);
	// A refresh is never refused for lack of room.
	cr_assert_eq(la_workers_submit(p, &q[2].job, true), LA_OK);
	open_gate();
	la_workers_stop(p);
	cr_assert_eq(atomic_load(&calls), 3);
	la_workers_destroy(p);
}

Test(workers, priority_jobs_run_before_queued_ones)
{
	la_workers *p;
	la_job      blocker = {.fn = blocking_job};
	counted     plain, prio;
	atomic_int  calls = 0, seq = 0;
	int         plain_at = -1, prio_at = -1;

	gate_init();
	cr_assert_eq(la_workers_create(&p, 1, 8), LA_OK);
	cr_assert_eq(la_workers_start(p), LA_OK);
	cr_assert_eq(la_workers_submit(p, &blocker, false), LA_OK);
	wait_entered(1);
	plain = (counted) {.job = {.fn = counting_job, .arg = &plain},
	    .calls              = &calls,
	    .order              = &plain_at,
	    .seq                = &seq};
	prio  = (counted) {.job = {.fn = counting_job, .arg = &prio},
	     .calls             = &calls,
	     .order             = &prio_at,
	     .seq               = &seq};
	cr_assert_eq(la_workers_submit(p, &plain.job, false), LA_OK);
	cr_assert_eq(la_workers_submit(p, &prio.job, true), LA_OK);
	open_gate();
	la_workers_stop(p);
	cr_assert_eq(prio_at, 0);
	cr_assert_eq(plain_at, 1);
	la_workers_destroy(p);
}

// Holds its worker until la_workers_stop raises the abort flag (bounded).
static void
until_abort_job(la_worker *w, void *arg)
{
	(void) arg;
	pthread_mutex_lock(&G.mtx);
	G.entered++;
	pthread_cond_broadcast(&G.cv);
	pthread_mutex_unlock(&G.mtx);
	for (int i = 0; i < 10000 && !atomic_load(la_worker_abort(w)); i++) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
}

Test(workers, stop_runs_queued_jobs_with_the_abort_flag_raised)
{
	la_workers *p;
	la_job      holder = {.fn = until_abort_job};
	counted     queued;
	atomic_int  calls = 0;

	gate_init();
	cr_assert_eq(la_workers_create(&p, 1, 8), LA_OK);
	cr_assert_eq(la_workers_start(p), LA_OK);
	cr_assert_eq(la_workers_submit(p, &holder, false), LA_OK);
	wait_entered(1);
	queued = (counted) {.job = {.fn = counting_job, .arg = &queued},
	    .calls               = &calls};
	cr_assert_eq(la_workers_submit(p, &queued.job, false), LA_OK);
	la_workers_stop(p);
	cr_assert_eq(atomic_load(&calls), 1, "the queued job still ran");
	cr_assert(queued.saw_abort);
	cr_assert_eq(la_workers_submit(p, &queued.job, false),
	    LA_ERR_SHUTDOWN);
	la_workers_destroy(p);
}

Test(workers, bad_sizes_are_refused)
{
	la_workers *p;
	cr_assert_eq(la_workers_create(&p, 0, 8), LA_ERR_INVALID);
	cr_assert_eq(la_workers_create(&p, 2, 0), LA_ERR_INVALID);
	la_workers_destroy(NULL);
}
