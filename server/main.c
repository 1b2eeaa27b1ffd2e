// main.c -- leanauthd: command line, signals, and the daemon's lifetime.
//
// Exit codes (DESIGN.md): 0 after a clean shutdown, 2 on bad usage or
// config (the message names the key), 1 on a runtime failure.
#include <curl/curl.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "config/config.h"
#include "daemon/daemon.h"

// jansson holds copies of secrets while it parses the config and the Lean
// API's replies; every block it frees is wiped first.
static void
la_wiping_free(void *p)
{
	if (p != NULL) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

// Shutdown is bounded by design (DESIGN.md); this is the guarantee when a
// library is not: libnng 1.5.2 can hang in nng_close when a reply arrives on
// a connection that is closing (fixed in nng 1.6.0).
#define LA_SHUTDOWN_WATCHDOG_S 15

static void *
la_watchdog(void *arg)
{
	(void) arg;
	struct timespec ts = {LA_SHUTDOWN_WATCHDOG_S, 0};
	while (nanosleep(&ts, &ts) != 0) { }
	la_log(LA_LOG_ERROR, "shutdown did not finish in time; exiting",
	    "{s:i}", "after_s", LA_SHUTDOWN_WATCHDOG_S);
	_exit(1);
	return (NULL);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: leanauthd --config FILE      run the token broker\n"
	    "       leanauthd --check-config FILE validate FILE and exit\n"
	    "       leanauthd --version | --help\n"
	    "\n"
	    "Serves brokerage OAuth tokens from the Lean platform API over "
	    "nng\n"
	    "(REQ/REP, protobuf leanauth.v1) and publishes events on PUB.\n"
	    "Logs are JSON lines on stderr. SIGTERM/SIGINT shut down "
	    "cleanly.\n");
}

int
main(int argc, char **argv)
{
	const char *path     = NULL;
	bool        check    = false;
	char        err[512] = "";

	json_set_alloc_funcs(malloc, la_wiping_free);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return (0);
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("leanauthd %s\n", LEANAUTH_VERSION);
			return (0);
		} else if ((strcmp(argv[i], "--config") == 0 ||
		               strcmp(argv[i], "--check-config") == 0) &&
		    i + 1 < argc && path == NULL) {
			check = strcmp(argv[i], "--check-config") == 0;
			path  = argv[++i];
		} else {
			fprintf(stderr,
			    "leanauthd: unexpected argument \"%s\"\n",
			    argv[i]);
			usage(stderr);
			return (2);
		}
	}
	if (path == NULL) {
		usage(stderr);
		return (2);
	}

	la_config *cfg = la_config_load(path, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "leanauthd: config %s: %s\n", path, err);
		return (2);
	}
	if (check) {
		printf("%s: ok (%zu profile%s)\n", path, cfg->n_profiles,
		    cfg->n_profiles == 1 ? "" : "s");
		la_config_destroy(cfg);
		return (0);
	}
	la_log_set_level(cfg->log_level);

	// Every thread created from here on inherits this mask; the signals are
	// taken synchronously by sigwait below, never by a handler.
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "leanauthd: libcurl initialisation failed\n");
		la_config_destroy(cfg);
		return (1);
	}
	la_daemon *d = NULL;
	la_err     rv;
	if ((rv = la_daemon_create(&d, cfg, err, sizeof(err))) != LA_OK ||
	    (rv = la_daemon_start(d, err, sizeof(err))) != LA_OK) {
		la_log(LA_LOG_ERROR, "startup failed", "{s:s}", "error", err);
		fprintf(stderr, "leanauthd: %s\n", err);
		la_daemon_destroy(d);
		curl_global_cleanup();
		// A listener the config names but cannot be used is a config
		// error; anything else is a runtime failure.
		return (rv == LA_ERR_INVALID ? 2 : 1);
	}

	int sig = 0;
	sigwait(&set, &sig);
	la_log(LA_LOG_INFO, "shutting down", "{s:s}", "signal",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT");
	pthread_t wd;
	if (pthread_create(&wd, NULL, la_watchdog, NULL) == 0) {
		pthread_detach(wd);
	}
	la_daemon_destroy(d);
	curl_global_cleanup();
	return (0);
}
