// workers.h -- the worker pool: a fixed set of threads that run every piece
// of blocking I/O (libcurl calls to the Lean API and to brokerages), fed by
// one bounded FIFO. Nothing here runs on nng's callback threads.
//
// Each worker owns one libcurl easy handle; all of them share connections,
// DNS and TLS sessions through one CURLSH, so repeated calls to one host
// reuse keep-alive connections.
#ifndef LA_WORKERS_H
#define LA_WORKERS_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

typedef struct la_workers la_workers;
typedef struct la_worker  la_worker;

typedef void (*la_job_fn)(la_worker *w, void *arg);

// A job is embedded in the submitter's own struct (no allocation on submit).
// The memory must stay valid until fn has been called.
typedef struct la_job {
	la_job_fn      fn;
	void          *arg;
	struct la_job *next;     // private
	bool           priority; // private
} la_job;

// la_workers_create makes a pool of nthreads threads (not yet running) with a
// queue of at most queue_cap ordinary jobs.
la_err la_workers_create(la_workers **out, unsigned nthreads,
    unsigned queue_cap);

// la_workers_start starts the threads.
la_err la_workers_start(la_workers *p);

// la_workers_submit queues job. Ordinary jobs beyond queue_cap are refused
// with LA_ERR_BUSY (never a stall). Priority jobs (token refreshes: at most
// one per profile) go to the front and ignore the cap. After stop begins,
// LA_ERR_SHUTDOWN. On any error fn will not be called.
la_err la_workers_submit(la_workers *p, la_job *job, bool priority);

// la_workers_stop raises every worker's abort flag (so in-flight transfers
// end promptly), runs the jobs still queued (they see the flag and finish
// fast: every submitted job is called exactly once), and joins the threads.
void la_workers_stop(la_workers *p);

// la_workers_destroy frees the pool; call la_workers_stop first. NULL-safe.
void la_workers_destroy(la_workers *p);

// la_workers_queued returns the number of jobs waiting (for metrics).
size_t la_workers_queued(la_workers *p);

// la_worker_curl returns the worker's easy handle, reset to defaults with
// the shared handle attached and proxies from the environment ignored. Valid only inside the job on that worker.
CURL *la_worker_curl(la_worker *w);

// la_worker_abort returns the flag raised by la_workers_stop, for libcurl
// progress callbacks and for waits.
const atomic_bool *la_worker_abort(la_worker *w);

#endif // LA_WORKERS_H
