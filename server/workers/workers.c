// workers.c -- fixed thread pool with a bounded job queue (after Redis'
// bio.c: a mutex + condvar FIFO), plus the libcurl handles the jobs use.
#include "workers.h"

#include <pthread.h>
#include <stdlib.h>

struct la_worker {
	la_workers *pool;
	pthread_t   thread;
	bool        started;
	CURL       *easy;
};

struct la_workers {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	la_job         *head;
	la_job         *tail;
	size_t          queued;   // all jobs in the queue
	size_t          ordinary; // jobs counted against cap
	size_t          cap;
	bool            stopping;
	atomic_bool     abort;
	unsigned        nthreads;
	la_worker      *workers;
	CURLSH         *share;
	pthread_mutex_t share_mtx[CURL_LOCK_DATA_LAST];
};

// libcurl calls these around access to the shared connection pool, DNS
// cache and TLS session cache, from whichever worker is using them.
static void
la_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	(void) h;
	(void) access;
	la_workers *p = arg;
	pthread_mutex_lock(&p->share_mtx[data]);
}

static void
la_share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	(void) h;
	la_workers *p = arg;
	pthread_mutex_unlock(&p->share_mtx[data]);
}

la_err
la_workers_create(la_workers **out, unsigned nthreads, unsigned queue_cap)
{
	la_workers *p;

	if (nthreads == 0 || queue_cap == 0) {
		return (LA_ERR_INVALID);
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		return (LA_ERR_NOMEM);
	}
	pthread_mutex_init(&p->mtx, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
		pthread_mutex_init(&p->share_mtx[i], NULL);
	}
	atomic_init(&p->abort, false);
	p->cap      = queue_cap;
	p->nthreads = nthreads;
	if ((p->workers = calloc(nthreads, sizeof(la_worker))) == NULL) {
		goto fail;
	}
	if ((p->share = curl_share_init()) == NULL) {
		goto fail;
	}
	curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, la_share_lock);
	curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, la_share_unlock);
	curl_share_setopt(p->share, CURLSHOPT_USERDATA, p);
	curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(p->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION);
	for (unsigned i = 0; i < nthreads; i++) {
		p->workers[i].pool = p;
		if ((p->workers[i].easy = curl_easy_init()) == NULL) {
			goto fail;
		}
	}
	*out = p;
	return (LA_OK);

fail:
	la_workers_destroy(p);
	return (LA_ERR_NOMEM);
}

static void *
la_worker_main(void *arg)
{
	la_worker  *w = arg;
	la_workers *p = w->pool;

	pthread_mutex_lock(&p->mtx);
	for (;;) {
		while (p->head == NULL && !p->stopping) {
			pthread_cond_wait(&p->cv, &p->mtx);
		}
		la_job *job = p->head;
		if (job == NULL) {
			break; // stopping, and the queue is drained
		}
		p->head = job->next;
		if (p->head == NULL) {
			p->tail = NULL;
		}
		p->queued--;
		if (!job->priority) {
			p->ordinary--;
		}
		pthread_mutex_unlock(&p->mtx);
		job->next = NULL;
		job->fn(w, job->arg);
		pthread_mutex_lock(&p->mtx);
	}
	pthread_mutex_unlock(&p->mtx);
	return (NULL);
}

la_err
la_workers_start(la_workers *p)
{
	for (unsigned i = 0; i < p->nthreads; i++) {
		if (pthread_create(&p->workers[i].thread, NULL, la_worker_main,
		        &p->workers[i]) != 0) {
			return (LA_ERR_NOMEM);
		}
		p->workers[i].started = true;
	}
	return (LA_OK);
}

la_err
la_workers_submit(la_workers *p, la_job *job, bool priority)
{
	pthread_mutex_lock(&p->mtx);
	if (p->stopping) {
		pthread_mutex_unlock(&p->mtx);
		return (LA_ERR_SHUTDOWN);
	}
	if (!priority && p->ordinary >= p->cap) {
		pthread_mutex_unlock(&p->mtx);
		return (LA_ERR_BUSY);
	}
	job->next     = NULL;
	job->priority = priority;
	if (priority) {
		job->next = p->head;
		p->head   = job;
		if (p->tail == NULL) {
			p->tail = job;
		}
	} else {
		if (p->tail != NULL) {
			p->tail->next = job;
		} else {
			p->head = job;
		}
		p->tail = job;
		p->ordinary++;
	}
	p->queued++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mtx);
	return (LA_OK);
}

void
la_workers_stop(la_workers *p)
{
	if (p == NULL) {
		return;
	}
	atomic_store(&p->abort, true);
	pthread_mutex_lock(&p->mtx);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mtx);
	for (unsigned i = 0; i < p->nthreads; i++) {
		if (p->workers[i].started) {
			pthread_join(p->workers[i].thread, NULL);
			p->workers[i].started = false;
		}
	}
}

void
la_workers_destroy(la_workers *p)
{
	if (p == NULL) {
		return;
	}
	if (p->workers != NULL) {
		for (unsigned i = 0; i < p->nthreads; i++) {
			if (p->workers[i].easy != NULL) {
				curl_easy_cleanup(p->workers[i].easy);
			}
		}
		free(p->workers);
	}
	// Easy handles first: they hold references into the share.
	if (p->share != NULL) {
		curl_share_cleanup(p->share);
	}
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
		pthread_mutex_destroy(&p->share_mtx[i]);
	}
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mtx);
	free(p);
}

size_t
la_workers_queued(la_workers *p)
{
	pthread_mutex_lock(&p->mtx);
	size_t n = p->queued;
	pthread_mutex_unlock(&p->mtx);
	return (n);
}

CURL *
la_worker_curl(la_worker *w)
{
	curl_easy_reset(w->easy);
	curl_easy_setopt(w->easy, CURLOPT_SHARE, w->pool->share);
	// The reset put the connection cache's bound back to libcurl's 5;
	// the cache is shared by every worker, so with more workers busy than
	// that, idle connections would be closed as they come back and most
	// calls would open (and TLS-handshake) a new one.
	curl_easy_setopt(w->easy, CURLOPT_MAXCONNECTS,
	    (long) (w->pool->nthreads * 4));
	// No proxy from the environment (http_proxy, HTTPS_PROXY, ...): a
	// variable set for some other program must not route tokens and the
	// Lean API secret through a host nobody configured here.
	curl_easy_setopt(w->easy, CURLOPT_PROXY, "");
	return (w->easy);
}

const atomic_bool *
la_worker_abort(la_worker *w)
{
	return (&w->pool->abort);
}
