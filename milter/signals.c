/*
 * signals.c -- turning SIGHUP into a reload under libmilter.
 *
 * libmilter (signal.c, mi_signal_thread) blocks SIGHUP, SIGTERM and SIGINT
 * and waits for them with sigwait(); on SIGHUP it stops the milter, which
 * is the opposite of what an administrator (and systemd's ExecReload)
 * expects.  Racing it with a second thread waiting for SIGHUP is not
 * reliable: POSIX leaves unspecified which waiting thread gets a signal.
 * So this file defines sigwait() itself.  The executable's definition
 * takes precedence over libc's for every caller, libmilter included, and
 * libmilter is the only caller in this program.  Our sigwait() waits with
 * sigwaitinfo(), wakes the reload thread on SIGHUP and keeps waiting, and
 * returns every other signal to its caller unchanged.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "mw_log.h"
#include "mw_signals.h"

int sigwait(const sigset_t *set, int *sig);

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reload_cond = PTHREAD_COND_INITIALIZER;
static bool reload_pending; /* guarded by reload_lock */
static bool reload_ready;   /* guarded by reload_lock */
static void (*reload_fn)(void);
static void (*drain_fn)(const sigset_t *set);

static void
request_reload(void)
{
	pthread_mutex_lock(&reload_lock);
	reload_pending = true;
	pthread_cond_signal(&reload_cond);
	pthread_mutex_unlock(&reload_lock);
}

int
sigwait(const sigset_t *set, int *sig)
{
	for (;;) {
		int s = sigwaitinfo(set, NULL);
		bool ready;

		if (s == -1) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		pthread_mutex_lock(&reload_lock);
		ready = reload_ready;
		pthread_mutex_unlock(&reload_lock);
		if (s == SIGHUP && ready) {
			mw_info("SIGHUP received: reloading");
			request_reload();
			continue;
		}
		/*
		 * libmilter ends every session at its next command once it
		 * is told to stop (and aborts them on SIGINT), so it is told
		 * only after the drain.  Ctrl-C stops as gently as SIGTERM.
		 */
		if ((s == SIGTERM || s == SIGINT) && ready && drain_fn != NULL)
			drain_fn(set);
		*sig = s == SIGINT ? SIGTERM : s;
		return 0;
	}
}

static void *
reload_thread(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&reload_lock);
		while (!reload_pending)
			pthread_cond_wait(&reload_cond, &reload_lock);
		reload_pending = false;
		pthread_mutex_unlock(&reload_lock);
		reload_fn();
	}
	return NULL;
}

bool
mw_signals_start(void (*reload)(void), void (*drain)(const sigset_t *set))
{
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t set;
	int rc;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if ((rc = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0) {
		mw_error("pthread_sigmask: %s", strerror(rc));
		return false;
	}
	reload_fn = reload;
	drain_fn = drain;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, reload_thread, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		mw_error("cannot start the reload thread: %s", strerror(rc));
		return false;
	}
	pthread_mutex_lock(&reload_lock);
	reload_ready = true;
	pthread_mutex_unlock(&reload_lock);
	return true;
}

bool
mw_signals_intercepting(void)
{
	void *p = dlsym(RTLD_DEFAULT, "sigwait");

	return p == (void *)sigwait;
}
