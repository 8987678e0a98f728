/*
 * bench_store.c -- the cost of one rate-limit check per message, with the
 * embedded LMDB store and with Redis on loopback, at 1 and 16 threads.
 *
 * Each check is what the engine does once per message and limit: one
 * mw_store_rate call of cost 1 on a key drawn from 10,000 client keys,
 * with a limit high enough that most checks pass and so write (the
 * expensive case).  Every thread gets its own share of the checks; the
 * program prints the mean latency of one call as a thread sees it and the
 * throughput of all threads together.
 *
 * Redis: the program starts its own redis-server on a free loopback port
 * (no persistence) unless MW_BENCH_REDIS names a store spec to use
 * ("redis:127.0.0.1:6379/15"); without redis-server it measures LMDB
 * only.  A measurement, not a test: built with the tree, never run by
 * "make check".
 *
 * usage: bench_store [checks]   (default 40000 per configuration)
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "mw_store.h"

#define KEYS 10000

struct worker {
	struct mw_store *st;
	unsigned id, checks;
	uint64_t seed;
	double busy_s;
	unsigned ok, limited, errors;
	char err[256];
};

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* splitmix64: every run draws the same keys. */
static uint64_t
rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void *
work(void *arg)
{
	struct worker *w = arg;
	char key[64];
	double t0 = mono_s();
	unsigned i;

	for (i = 0; i < w->checks; i++) {
		snprintf(key, sizeof(key), "ip:192.0.%u.0/24",
		    (unsigned)(rng(&w->seed) % KEYS));
		/* 1000 messages an hour per key. */
		switch (mw_store_rate(w->st, key, now_us(), 3600ULL * 1000000,
		    1000, 0, 1, false, NULL, w->err, sizeof(w->err))) {
		case MW_STORE_OK: w->ok++; break;
		case MW_STORE_LIMITED: w->limited++; break;
		case MW_STORE_ERROR: w->errors++; break;
		}
	}
	w->busy_s = mono_s() - t0;
	return NULL;
}

static int
run(const char *name, struct mw_store *st, unsigned threads, unsigned checks)
{
	struct worker w[16];
	pthread_t tid[16];
	double t0, wall, busy = 0;
	unsigned i, ok = 0, errors = 0;

	for (i = 0; i < threads; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].st = st;
		w[i].id = i;
		w[i].checks = checks / threads;
		w[i].seed = 0x62656e6368ULL + i;
	}
	t0 = mono_s();
	for (i = 0; i < threads; i++)
		if (pthread_create(&tid[i], NULL, work, &w[i]) != 0) {
			perror("pthread_create");
			return -1;
		}
	for (i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		busy += w[i].busy_s;
		ok += w[i].ok;
		if (w[i].errors > 0) {
			errors += w[i].errors;
			fprintf(stderr, "%s: %s\n", name, w[i].err);
		}
	}
	wall = mono_s() - t0;
	checks = checks / threads * threads;
	printf("%-6s %7u %8u %12.2f %12.0f %8u\n", name, threads, checks,
	    busy / checks * 1e6, checks / wall, errors);
	(void)ok;
	return errors > 0 ? -1 : 0;
}

static pid_t redis_pid;

static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Start a private redis-server; its spec in buf, or false. */
static bool
redis_start(const char *dir, char *buf, size_t len)
{
	struct timeval tv = { 1, 0 };
	redisContext *c;
	char port[16];
	int p = free_port(), i;

	if (p < 0 || system("command -v redis-server >/dev/null 2>&1") != 0)
		return false;
	snprintf(port, sizeof(port), "%d", p);
	if ((redis_pid = fork()) == 0) {
		execlp("redis-server", "redis-server", "--port", port, "--bind",
		    "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
		    dir, "--logfile", "redis.log", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 250; i++, usleep(20000)) {
		c = redisConnectWithTimeout("127.0.0.1", p, tv);
		if (c != NULL && !c->err) {
			redisFree(c);
			snprintf(buf, len, "redis:127.0.0.1:%d", p);
			return true;
		}
		if (c != NULL)
			redisFree(c);
	}
	return false;
}

int
main(int argc, char **argv)
{
	static const unsigned nthreads[] = { 1, 16 };
	unsigned checks =
	    argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 40000;
	char dir[] = "/tmp/mw-bench-store-XXXXXX", spec[600], err[512];
	const char *env = getenv("MW_BENCH_REDIS");
	struct mw_store *st;
	int rc = 0;
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	if (checks < 16 || mkdtemp(dir) == NULL) {
		fprintf(stderr, "usage: bench_store [checks >= 16]\n");
		return 2;
	}
	printf("rate-limit check, cost 1, %d keys, 1000/hour each\n", KEYS);
	printf("%-6s %7s %8s %12s %12s %8s\n", "store", "threads", "checks",
	    "us/check", "checks/s", "errors");

	snprintf(spec, sizeof(spec), "lmdb:%s/state.mdb", dir);
	if ((st = mw_store_get(spec, 64 << 20, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (i = 0; i < sizeof(nthreads) / sizeof(nthreads[0]); i++)
		rc |= run("lmdb", st, nthreads[i], checks);
	mw_store_put(st);

	if (env != NULL)
		snprintf(spec, sizeof(spec), "%s", env);
	else if (!redis_start(dir, spec, sizeof(spec))) {
		printf("redis: no redis-server, skipped\n");
		spec[0] = '\0';
	}
	if (spec[0] != '\0') {
		st = mw_store_get(spec, 0, 1000, err, sizeof(err));
		if (st == NULL) {
			fprintf(stderr, "%s\n", err);
			rc = -1;
		} else {
			for (i = 0; i < sizeof(nthreads) / sizeof(nthreads[0]);
			     i++)
				rc |= run("redis", st, nthreads[i], checks);
			mw_store_put(st);
		}
	}
	if (redis_pid > 0) {
		kill(redis_pid, SIGTERM);
		waitpid(redis_pid, NULL, 0);
	}
	snprintf(spec, sizeof(spec), "rm -rf '%s'", dir);
	if (system(spec) != 0)
		rc = -1;
	return rc != 0;
}
