/*
 * test_store.c -- the rate-limit and greylisting store, on both back ends.
 *
 * One set of behavioural tests (GCRA windows, bursts, costs, refused
 * attempts, greylist states, threads) runs twice: against a fresh LMDB file
 * per test and against a redis-server this program starts on a free
 * loopback port (flushed before each test).  The clock is the caller's, so
 * the tests step through hours and days instantly.  LMDB-only tests cover
 * persistence across close and reopen, purging and a full map; Redis-only
 * tests cover a server restart, a server that never answers, unix sockets,
 * database numbers and lost scripts.
 *
 * Without redis-server in PATH (or with MW_TEST_REDIS=0) the Redis tests
 * are skipped.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "mw_store.h"

#define SEC  1000000ULL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
#define T0   1700000000000000ULL /* µs since the epoch, November 2023 */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The fixture handed to each test. */
struct fx {
	bool redis;
	char *dir; /* LMDB: this test's directory */
	char spec[512];
	struct mw_store *st;
	char err[512];
};

/* The redis-server of this run. */
static struct {
	bool tried, up;
	pid_t pid;
	int port;
	char dir[64];
	char sock[128];
} srv;

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------- redis-server */

static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static redisContext *
admin(void)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);

	if (c != NULL && c->err) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* admin_cmd -- run a command on a fresh admin connection; the integer
 * reply, or 0. */
static long long
admin_cmd(const char *fmt, ...)
{
	redisContext *c = admin();
	redisReply *r;
	long long v = 0;
	va_list ap;

	assert_non_null(c);
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	if (r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	freeReplyObject(r);
	redisFree(c);
	return v;
}

static bool
server_start(void)
{
	char port[16], *argv[24];
	double until;
	redisContext *c;
	int i = 0;

	snprintf(port, sizeof(port), "%d", srv.port);
	argv[i++] = "redis-server";
	argv[i++] = "--port";
	argv[i++] = port;
	argv[i++] = "--bind";
	argv[i++] = "127.0.0.1";
	argv[i++] = "--save";
	argv[i++] = "";
	argv[i++] = "--appendonly";
	argv[i++] = "no";
	argv[i++] = "--dir";
	argv[i++] = srv.dir;
	argv[i++] = "--unixsocket";
	argv[i++] = srv.sock;
	argv[i++] = "--unixsocketperm";
	argv[i++] = "700";
	argv[i++] = "--logfile";
	argv[i++] = "redis.log";
	argv[i++] = "--daemonize";
	argv[i++] = "no";
	argv[i] = NULL;
	if ((srv.pid = fork()) < 0)
		return false;
	if (srv.pid == 0) {
		execvp("redis-server", argv);
		_exit(127);
	}
	for (until = mono_ms() + 5000; mono_ms() < until; usleep(20000)) {
		if ((c = admin()) != NULL) {
			redisFree(c);
			return true;
		}
		if (waitpid(srv.pid, NULL, WNOHANG) == srv.pid) {
			srv.pid = 0;
			return false;
		}
	}
	return false;
}

static void
server_stop(void)
{
	if (srv.pid <= 0)
		return;
	kill(srv.pid, SIGTERM);
	waitpid(srv.pid, NULL, 0);
	srv.pid = 0;
}

/* redis_wanted -- start the server once for the whole run. */
static bool
redis_wanted(void)
{
	const char *e = getenv("MW_TEST_REDIS");
	char tmpl[] = "/tmp/mw-redis-XXXXXX";

	if (srv.tried)
		return srv.up;
	srv.tried = true;
	if ((e != NULL && strcmp(e, "0") == 0) ||
	    system("command -v redis-server >/dev/null 2>&1") != 0)
		return false;
	if (mkdtemp(tmpl) == NULL)
		return false;
	snprintf(srv.dir, sizeof(srv.dir), "%s", tmpl);
	snprintf(srv.sock, sizeof(srv.sock), "%s/redis.sock", srv.dir);
	srv.port = free_port();
	srv.up = server_start();
	return srv.up;
}

/* ------------------------------------------------------------ fixtures */

static int
setup_lmdb(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char tmpl[] = "/tmp/mw-store-XXXXXX";

	assert_non_null(f);
	assert_non_null(mkdtemp(tmpl));
	f->dir = strdup(tmpl);
	snprintf(f->spec, sizeof(f->spec), "lmdb:%s/state.mdb", f->dir);
	f->st = mw_store_get(f->spec, 4 << 20, 0, f->err, sizeof(f->err));
	assert_non_null(f->st);
	*state = f;
	return 0;
}

static int
setup_redis(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->redis = true;
	*state = f;
	if (!redis_wanted())
		return 0;
	admin_cmd("FLUSHALL");
	snprintf(f->spec, sizeof(f->spec), "redis:127.0.0.1:%d", srv.port);
	f->st = mw_store_get(f->spec, 0, 1000, f->err, sizeof(f->err));
	assert_non_null(f->st);
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	mw_store_put(f->st);
	if (f->dir != NULL) {
		rm_rf(f->dir);
		free(f->dir);
	}
	free(f);
	return 0;
}

/* The fixture, or skip when it has no store (no redis-server). */
static struct fx *
fx(void **state)
{
	struct fx *f = *state;

	if (f->st == NULL)
		skip();
	return f;
}

static const char *
prefix(const struct fx *f)
{
	return f->redis ? "redis: " : "lmdb: ";
}

/* Shorthands with the fixture's error buffer; errors fail the test. */
static enum mw_store_res
rate(struct fx *f, const char *key, uint64_t now, uint64_t period, uint64_t max,
    uint64_t burst, uint64_t cost, bool count_refused, uint64_t *retry)
{
	enum mw_store_res r = mw_store_rate(f->st, key, now, period, max, burst,
	    cost, count_refused, retry, f->err, sizeof(f->err));

	if (r == MW_STORE_ERROR)
		fail_msg("%s", f->err);
	return r;
}

static enum mw_store_res
grey(struct fx *f, const char *triplet, const char *net, uint64_t now,
    uint64_t *retry)
{
	enum mw_store_res r = mw_store_greylist(f->st, triplet, net, now,
	    5 * MIN, 4 * HOUR, 30 * DAY, retry, f->err, sizeof(f->err));

	if (r == MW_STORE_ERROR)
		fail_msg("%s", f->err);
	return r;
}

static void
delivered(struct fx *f, const char *net, uint64_t now)
{
	if (mw_store_greylist_delivered(f->st, net, now, 30 * DAY, f->err,
		sizeof(f->err)) != MW_STORE_OK)
		fail_msg("%s", f->err);
}

/* ------------------------------------------------- behaviour, both ends */

/* 5 a minute: five pass at once, the sixth waits T = 12 s exactly. */
static void
rate_allows_max_then_refuses(void **state)
{
	struct fx *f = fx(state);
	uint64_t retry = 99;
	int i;

	for (i = 0; i < 5; i++) {
		assert_int_equal(rate(f, "k", T0, MIN, 5, 0, 1, false, &retry),
		    MW_STORE_OK);
		assert_int_equal(retry, 0);
	}
	assert_int_equal(rate(f, "k", T0, MIN, 5, 0, 1, false, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 12 * SEC);
	assert_int_equal(rate(f, "k", T0 + 12 * SEC - 1, MIN, 5, 0, 1, false,
			     &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 1);
	assert_int_equal(rate(f, "k", T0 + 12 * SEC, MIN, 5, 0, 1, false,
			     &retry),
	    MW_STORE_OK);
	assert_int_equal(rate(f, "k", T0 + 12 * SEC, MIN, 5, 0, 1, false,
			     &retry),
	    MW_STORE_LIMITED);
	/* Other keys are untouched; a NULL retry pointer is fine. */
	assert_int_equal(rate(f, "other", T0, MIN, 5, 0, 1, false, NULL),
	    MW_STORE_OK);
	/* Idle for a whole period: the full burst is back. */
	for (i = 0; i < 5; i++)
		assert_int_equal(rate(f, "k", T0 + 2 * MIN, MIN, 5, 0, 1, false,
				     NULL),
		    MW_STORE_OK);
	assert_int_equal(rate(f, "k", T0 + 2 * MIN, MIN, 5, 0, 1, false, NULL),
	    MW_STORE_LIMITED);
}

/*
 * 10 an hour, used up one second before the hour: a fixed window would
 * allow ten more two seconds later; GCRA waits for the bucket to drain.
 */
static void
rate_has_no_double_burst_at_a_boundary(void **state)
{
	struct fx *f = fx(state);
	uint64_t retry, t = T0 + HOUR - SEC;
	int i;

	for (i = 0; i < 10; i++)
		assert_int_equal(rate(f, "b", t, HOUR, 10, 0, 1, false, NULL),
		    MW_STORE_OK);
	assert_int_equal(rate(f, "b", t + 2 * SEC, HOUR, 10, 0, 1, false,
			     &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 358 * SEC);
}

/*
 * A client trying every 7 s for 3 hours: in every interval of length L the
 * allowed count stays within burst + L / T, and the steady rate holds.
 */
static void
rate_sliding_bound_holds(void **state)
{
	struct fx *f = fx(state);
	uint64_t ok[200], t, T = 360 * SEC, L;
	size_t n = 0, i, j, c;

	for (t = T0; t < T0 + 3 * HOUR; t += 7 * SEC)
		if (rate(f, "s", t, HOUR, 10, 0, 1, false, NULL) ==
		    MW_STORE_OK) {
			assert_true(n < NELEM(ok));
			ok[n++] = t;
		}
	/* 10 at once, then one per 360 s (rounded up to the 7 s grid). */
	assert_true(n >= 10 + 3 * 10 - 2 && n <= 10 + 3 * 10);
	for (L = 7 * SEC; L <= 2 * HOUR; L += 301 * SEC)
		for (i = 0; i < n; i++) {
			for (c = 0, j = i; j < n && ok[j] < ok[i] + L; j++)
				c++;
			assert_true(c <= 10 + L / T);
		}
}

/* 60 an hour with a burst of 5. */
static void
rate_burst_is_the_bucket_depth(void **state)
{
	struct fx *f = fx(state);
	uint64_t retry;
	int i;

	for (i = 0; i < 5; i++)
		assert_int_equal(rate(f, "u", T0, HOUR, 60, 5, 1, false, NULL),
		    MW_STORE_OK);
	assert_int_equal(rate(f, "u", T0, HOUR, 60, 5, 1, false, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, MIN);
	assert_int_equal(rate(f, "u", T0 + MIN, HOUR, 60, 5, 1, false, NULL),
	    MW_STORE_OK);
	assert_int_equal(rate(f, "u", T0 + MIN, HOUR, 60, 5, 1, false, NULL),
	    MW_STORE_LIMITED);
	/* Burst 1: strictly one per T. */
	assert_int_equal(rate(f, "one", T0, HOUR, 60, 1, 1, false, NULL),
	    MW_STORE_OK);
	assert_int_equal(rate(f, "one", T0 + MIN - 1, HOUR, 60, 1, 1, false,
			     &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 1);
}

/* Bytes: 1000 a second (T = 1 ms a byte). */
static void
rate_cost_counts_units(void **state)
{
	struct fx *f = fx(state);
	uint64_t retry;

	assert_int_equal(rate(f, "c", T0, SEC, 1000, 0, 400, false, NULL),
	    MW_STORE_OK);
	assert_int_equal(rate(f, "c", T0, SEC, 1000, 0, 400, false, NULL),
	    MW_STORE_OK);
	assert_int_equal(rate(f, "c", T0, SEC, 1000, 0, 400, false, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 200 * 1000);
	/* A smaller message still fits. */
	assert_int_equal(rate(f, "c", T0, SEC, 1000, 0, 200, false, NULL),
	    MW_STORE_OK);
	/* Larger than the whole burst: passes only on an empty bucket, and
	 * then fills it for cost * T. */
	assert_int_equal(rate(f, "c", T0, SEC, 1000, 0, 5000, false, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, SEC);
	assert_int_equal(rate(f, "c", T0 + SEC, SEC, 1000, 0, 5000, false,
			     NULL),
	    MW_STORE_OK);
	assert_int_equal(rate(f, "c", T0 + SEC, SEC, 1000, 0, 1, false, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 4001 * 1000);
	/* Recipients: a message to 3 of a limit of 4 leaves room for 1. */
	assert_int_equal(rate(f, "r", T0, MIN, 4, 0, 3, false, NULL),
	    MW_STORE_OK);
	assert_int_equal(rate(f, "r", T0, MIN, 4, 0, 2, false, NULL),
	    MW_STORE_LIMITED);
	assert_int_equal(rate(f, "r", T0, MIN, 4, 0, 1, false, NULL),
	    MW_STORE_OK);
}

/* 3 a minute (T = 20 s); hammering with and without counting refusals. */
static void
rate_count_refused(void **state)
{
	struct fx *f = fx(state);
	uint64_t retry, want[] = { 40, 60, 80, 80, 80 };
	size_t i;

	for (i = 0; i < 3; i++) {
		assert_int_equal(rate(f, "n", T0, MIN, 3, 0, 1, false, NULL),
		    MW_STORE_OK);
		assert_int_equal(rate(f, "y", T0, MIN, 3, 0, 1, true, NULL),
		    MW_STORE_OK);
	}
	for (i = 0; i < 5; i++) {
		assert_int_equal(rate(f, "n", T0, MIN, 3, 0, 1, false, &retry),
		    MW_STORE_LIMITED);
		assert_int_equal(retry, 20 * SEC);
	}
	assert_int_equal(rate(f, "n", T0 + 20 * SEC, MIN, 3, 0, 1, false, NULL),
	    MW_STORE_OK);
	/* Each refusal pushes the TAT on by T, up to now + burst*T + period. */
	for (i = 0; i < NELEM(want); i++) {
		assert_int_equal(rate(f, "y", T0, MIN, 3, 0, 1, true, &retry),
		    MW_STORE_LIMITED);
		assert_int_equal(retry, want[i] * SEC);
	}
	assert_int_equal(rate(f, "y", T0 + 79 * SEC, MIN, 3, 0, 1, false,
			     &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, SEC);
	assert_int_equal(rate(f, "y", T0 + 80 * SEC, MIN, 3, 0, 1, true, NULL),
	    MW_STORE_OK);
}

/* Long keys (over LMDB's 511-byte limit) keep separate counters. */
static void
rate_long_keys_are_distinct(void **state)
{
	struct fx *f = fx(state);
	char a[1200], b[1200];

	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[sizeof(b) - 2] = 'y';
	assert_int_equal(rate(f, a, T0, MIN, 1, 0, 1, false, NULL),
	    MW_STORE_OK);
	assert_int_equal(rate(f, a, T0, MIN, 1, 0, 1, false, NULL),
	    MW_STORE_LIMITED);
	assert_int_equal(rate(f, b, T0, MIN, 1, 0, 1, false, NULL),
	    MW_STORE_OK);
	a[509] = '\0'; /* exactly at the limit with the prefix */
	assert_int_equal(rate(f, a, T0, MIN, 1, 0, 1, false, NULL),
	    MW_STORE_OK);
	a[509] = 'x'; /* one over: hashed */
	a[510] = '\0';
	assert_int_equal(rate(f, a, T0, MIN, 1, 0, 1, false, NULL),
	    MW_STORE_OK);
	assert_int_equal(rate(f, "", T0, MIN, 1, 0, 1, false, NULL),
	    MW_STORE_OK);
}

static void
rate_rejects_zero_parameters(void **state)
{
	struct fx *f = fx(state);
	uint64_t retry = 5;

	assert_int_equal(mw_store_rate(f->st, "z", T0, MIN, 0, 0, 1, false,
			     &retry, f->err, sizeof(f->err)),
	    MW_STORE_ERROR);
	assert_int_equal(strncmp(f->err, prefix(f), strlen(prefix(f))), 0);
	assert_int_equal(mw_store_rate(f->st, "z", T0, 0, 5, 0, 1, false,
			     &retry, f->err, sizeof(f->err)),
	    MW_STORE_ERROR);
	assert_int_equal(retry, 0);
}

/* First attempt, early retry, retry after the delay, a later message. */
static void
greylist_states(void **state)
{
	struct fx *f = fx(state);
	uint64_t retry;

	assert_int_equal(grey(f, "n1|a|b", "n1", T0, &retry), MW_STORE_LIMITED);
	assert_int_equal(retry, 5 * MIN);
	assert_int_equal(grey(f, "n1|a|b", "n1", T0 + 100 * SEC, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 200 * SEC);
	/* A different triplet from the same network starts its own delay. */
	assert_int_equal(grey(f, "n1|a|c", "n1", T0 + 100 * SEC, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 5 * MIN);
	assert_int_equal(grey(f, "n1|a|b", "n1", T0 + 5 * MIN, &retry),
	    MW_STORE_OK);
	assert_int_equal(retry, 0);
	/* Passed: remembered, and each sighting extends it. */
	assert_int_equal(grey(f, "n1|a|b", "n1", T0 + 20 * DAY, NULL),
	    MW_STORE_OK);
	assert_int_equal(grey(f, "n1|a|b", "n1", T0 + 45 * DAY, NULL),
	    MW_STORE_OK);
	/* Not seen for longer than the auto-allow time: greylisted again. */
	assert_int_equal(grey(f, "n1|a|b", "n1", T0 + 76 * DAY, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 5 * MIN);
	/* No delay: every first attempt passes. */
	assert_int_equal(mw_store_greylist(f->st, "n9|x|y", NULL, T0, 0, HOUR,
			     DAY, &retry, f->err, sizeof(f->err)),
	    MW_STORE_OK);
}

/* A retry after the window closed starts over. */
static void
greylist_window_expiry_starts_over(void **state)
{
	struct fx *f = fx(state);
	uint64_t retry, late = T0 + 5 * MIN + 4 * HOUR;

	assert_int_equal(grey(f, "n2|a|b", "n2", T0, NULL), MW_STORE_LIMITED);
	assert_int_equal(grey(f, "n2|a|b", "n2", late, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 5 * MIN);
	assert_int_equal(grey(f, "n2|a|b", "n2", late + MIN, &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 4 * MIN);
	assert_int_equal(grey(f, "n2|a|b", "n2", late + 5 * MIN, NULL),
	    MW_STORE_OK);
	/* Just inside the window passes. */
	assert_int_equal(grey(f, "n2|c|d", "n2", T0, NULL), MW_STORE_LIMITED);
	assert_int_equal(grey(f, "n2|c|d", "n2", late - 1, NULL), MW_STORE_OK);
}

/* After a delivery the whole client network passes, until it expires. */
static void
greylist_auto_allow(void **state)
{
	struct fx *f = fx(state);
	uint64_t retry;

	assert_int_equal(grey(f, "n3|a|b", "n3", T0, NULL), MW_STORE_LIMITED);
	assert_int_equal(grey(f, "n3|a|b", "n3", T0 + 5 * MIN, NULL),
	    MW_STORE_OK);
	delivered(f, "n3", T0 + 5 * MIN);
	assert_int_equal(grey(f, "n3|new|one", "n3", T0 + 6 * MIN, &retry),
	    MW_STORE_OK);
	assert_int_equal(retry, 0);
	/* Without a net key there is no auto-allow check. */
	assert_int_equal(grey(f, "n3|new|two", NULL, T0 + 6 * MIN, NULL),
	    MW_STORE_LIMITED);
	/* Other networks are not affected. */
	assert_int_equal(grey(f, "n4|a|b", "n4", T0 + 6 * MIN, NULL),
	    MW_STORE_LIMITED);
	/* A later delivery extends the allowance; an earlier one does not
	 * shorten it. */
	delivered(f, "n3", T0 + 10 * DAY);
	delivered(f, "n3", T0 + 6 * MIN);
	assert_int_equal(grey(f, "n3|x|y", "n3", T0 + 39 * DAY, NULL),
	    MW_STORE_OK);
	assert_int_equal(grey(f, "n3|x|z", "n3", T0 + 40 * DAY + 5 * MIN,
			     &retry),
	    MW_STORE_LIMITED);
	assert_int_equal(retry, 5 * MIN);
}

struct hammer {
	struct mw_store *st;
	int calls, ok, errors;
	char err[256];
};

static void *
hammer_run(void *arg)
{
	struct hammer *h = arg;
	enum mw_store_res r;
	int i;

	for (i = 0; i < h->calls; i++) {
		r = mw_store_rate(h->st, "shared", T0, HOUR, 1000, 0, 1, false,
		    NULL, h->err, sizeof(h->err));
		if (r == MW_STORE_OK)
			h->ok++;
		else if (r == MW_STORE_ERROR)
			h->errors++;
	}
	return NULL;
}

/* 8 threads, 250 calls each, on one key with a limit of 1000: exactly
 * 1000 pass. */
static void
threads_count_exactly(void **state)
{
	struct fx *f = fx(state);
	struct hammer h[8];
	pthread_t tid[8];
	int i, ok = 0;

	for (i = 0; i < 8; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		h[i].st = f->st;
		h[i].calls = 250;
		assert_int_equal(pthread_create(&tid[i], NULL, hammer_run,
				     &h[i]),
		    0);
	}
	for (i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		if (h[i].errors > 0)
			fail_msg("thread %d: %s", i, h[i].err);
		ok += h[i].ok;
	}
	assert_int_equal(ok, 1000);
}

/* One store per spec: a second get shares it. */
static void
stores_are_shared_by_spec(void **state)
{
	struct fx *f = fx(state);
	struct mw_store *again;

	again = mw_store_get(f->spec, 4 << 20, 1000, f->err, sizeof(f->err));
	assert_ptr_equal(again, f->st);
	assert_string_equal(mw_store_spec(again), f->spec);
	assert_int_equal(rate(f, "sh", T0, MIN, 1, 0, 1, false, NULL),
	    MW_STORE_OK);
	mw_store_put(again);
	/* Still open after one put. */
	assert_int_equal(rate(f, "sh", T0, MIN, 1, 0, 1, false, NULL),
	    MW_STORE_LIMITED);
	assert_int_equal(mw_store_chown(f->st, getuid(), getgid(), f->err,
			     sizeof(f->err)),
	    0);
}

/* --------------------------------------------------------- LMDB only */

/* Counters, passed triplets and allowed networks survive close/reopen. */
static void
lmdb_state_survives_reopen(void **state)
{
	struct fx *f = fx(state);
	struct mw_store *again;
	char path[600];
	int i;

	for (i = 0; i < 3; i++)
		assert_int_equal(rate(f, "p", T0, HOUR, 3, 0, 1, false, NULL),
		    MW_STORE_OK);
	assert_int_equal(grey(f, "n5|a|b", "n5", T0, NULL), MW_STORE_LIMITED);
	assert_int_equal(grey(f, "n6|a|b", "n6", T0, NULL), MW_STORE_LIMITED);
	assert_int_equal(grey(f, "n6|a|b", "n6", T0 + 5 * MIN, NULL),
	    MW_STORE_OK);
	delivered(f, "n6", T0 + 5 * MIN);
	mw_store_put(f->st);
	/* Another spelling of the same file. */
	snprintf(path, sizeof(path), "lmdb:%s//./state.mdb", f->dir);
	f->st = mw_store_get(path, 4 << 20, 0, f->err, sizeof(f->err));
	assert_non_null(f->st);
	again = mw_store_get(f->spec, 4 << 20, 0, f->err, sizeof(f->err));
	assert_ptr_equal(again, f->st);
	mw_store_put(again);
	assert_int_equal(rate(f, "p", T0 + MIN, HOUR, 3, 0, 1, false, NULL),
	    MW_STORE_LIMITED);
	assert_int_equal(grey(f, "n5|a|b", "n5", T0 + 5 * MIN, NULL),
	    MW_STORE_OK);
	assert_int_equal(grey(f, "n6|other|c", "n6", T0 + 6 * MIN, NULL),
	    MW_STORE_OK);
}

/* A milter-warden that dies without closing its store (no sync, no
 * close) loses nothing: the next process finds the counters. */
static void
lmdb_state_survives_a_crash(void **state)
{
	struct fx *f = fx(state);
	struct mw_store *st;
	char spec[600];
	pid_t pid;
	int status, i;

	snprintf(spec, sizeof(spec), "lmdb:%s/crash.mdb", f->dir);
	if ((pid = fork()) == 0) {
		st = mw_store_get(spec, 1 << 20, 0, NULL, 0);
		for (i = 0; st != NULL && i < 2; i++)
			if (mw_store_rate(st, "c", T0, HOUR, 2, 0, 1, false,
				NULL, NULL, 0) != MW_STORE_OK)
				_exit(2);
		_exit(st != NULL ? 0 : 1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	st = mw_store_get(spec, 1 << 20, 0, f->err, sizeof(f->err));
	assert_non_null(st);
	assert_int_equal(mw_store_rate(st, "c", T0, HOUR, 2, 0, 1, false, NULL,
			     f->err, sizeof(f->err)),
	    MW_STORE_LIMITED);
	mw_store_put(st);
}

/* Expired entries go: all at once with mw_store_purge, and a few with
 * every write otherwise. */
static void
lmdb_purges_expired_entries(void **state)
{
	struct fx *f = fx(state);
	char key[32];
	size_t n, purged;
	int i;

	for (i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "short%d", i);
		assert_int_equal(rate(f, key, T0, MIN, 60, 1, 1, false, NULL),
		    MW_STORE_OK); /* expires at T0 + 1 s */
		snprintf(key, sizeof(key), "long%d", i);
		assert_int_equal(rate(f, key, T0, DAY, 1, 0, 1, false, NULL),
		    MW_STORE_OK); /* expires at T0 + 1 day */
	}
	assert_int_equal(mw_store_entries(f->st, &n, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(n, 600);
	/* Incremental: 50 writes an hour later examine 800 entries. */
	for (i = 0; i < 50; i++)
		assert_int_equal(rate(f, "w", T0 + HOUR, MIN, 60, 0, 1, false,
				     NULL),
		    MW_STORE_OK);
	assert_int_equal(mw_store_entries(f->st, &n, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(n, 301);
	/* A full sweep two days later takes the rest. */
	assert_int_equal(mw_store_purge(f->st, T0 + 2 * DAY, &purged, f->err,
			     sizeof(f->err)),
	    0);
	assert_int_equal(purged, 301);
	assert_int_equal(mw_store_entries(f->st, &n, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(n, 0);
	/* Greylist entries expire too. */
	assert_int_equal(grey(f, "n7|a|b", "n7", T0, NULL), MW_STORE_LIMITED);
	delivered(f, "n7", T0);
	assert_int_equal(mw_store_purge(f->st, T0 + 5 * MIN + 4 * HOUR, &purged,
			     f->err, sizeof(f->err)),
	    0);
	assert_int_equal(purged, 1);
	assert_int_equal(mw_store_purge(f->st, T0 + 31 * DAY, &purged, f->err,
			     sizeof(f->err)),
	    0);
	assert_int_equal(purged, 1);
}

/* A full map: writes fail with a clear error while nothing can be
 * purged, and succeed again once entries have expired. */
static void
lmdb_map_full(void **state)
{
	struct fx *f = fx(state);
	struct mw_store *small;
	char spec[600], key[32];
	enum mw_store_res r = MW_STORE_OK;
	size_t n;
	int i;

	snprintf(spec, sizeof(spec), "lmdb:%s/small.mdb", f->dir);
	small = mw_store_get(spec, 256 * 1024, 0, f->err, sizeof(f->err));
	assert_non_null(small);
	for (i = 0; i < 100000 && r == MW_STORE_OK; i++) {
		snprintf(key, sizeof(key), "fill-%06d", i);
		r = mw_store_rate(small, key, T0, HOUR, 1, 0, 1, false, NULL,
		    f->err, sizeof(f->err));
	}
	assert_int_equal(r, MW_STORE_ERROR);
	assert_non_null(strstr(f->err, "lmdb: "));
	if (strstr(f->err, "full") == NULL)
		fail_msg("%s", f->err);
	assert_true(i > 100);
	/* Existing state still reads as before (refusals write nothing). */
	assert_int_equal(mw_store_rate(small, "fill-000000", T0, HOUR, 1, 0, 1,
			     false, NULL, f->err, sizeof(f->err)),
	    MW_STORE_LIMITED);
	/* Two hours later every entry has expired: the sweep makes room. */
	assert_int_equal(mw_store_rate(small, "fresh", T0 + 2 * HOUR, HOUR, 1,
			     0, 1, false, NULL, f->err, sizeof(f->err)),
	    MW_STORE_OK);
	assert_int_equal(mw_store_entries(small, &n, f->err, sizeof(f->err)),
	    0);
	assert_true(n < (size_t)i);
	assert_int_equal(mw_store_purge(small, T0 + 2 * HOUR, NULL, f->err,
			     sizeof(f->err)),
	    0);
	assert_int_equal(mw_store_entries(small, &n, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(n, 1);
	/* A larger max_bytes on a later get grows the map. */
	assert_ptr_equal(mw_store_get(spec, 1 << 20, 0, f->err, sizeof(f->err)),
	    small);
	mw_store_put(small);
	mw_store_put(small);
}

static void
bad_specs_are_refused(void **state)
{
	struct fx *f = fx(state);
	char spec[600];
	static const struct {
		const char *spec, *want;
	} cases[] = {
		{ "lmdb:relative/state.mdb",
		    "lmdb: relative/state.mdb: the "
		    "path must be absolute" },
		{ "lmdb:/nonexistent/dir/state.mdb",
		    "lmdb: /nonexistent/dir/state.mdb: No such file" },
		{ "redis:localhost", "redis: bad store" },
		{ "redis:127.0.0.1:0", "redis: bad store" },
		{ "redis:127.0.0.1:65536", "redis: bad store" },
		{ "redis:127.0.0.1:x", "redis: bad store" },
		{ "redis::6379", "redis: bad store" },
		{ "redis:::1:6379", "redis: bad store" },
		{ "redis:unix:relative.sock", "redis: bad store" },
		{ "redis:127.0.0.1:6379/1234567", "redis: bad store" },
		{ "memcached:127.0.0.1:11211", "store: unknown store" },
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		f->err[0] = '\0';
		assert_null(mw_store_get(cases[i].spec, 1 << 20, 100, f->err,
		    sizeof(f->err)));
		if (strncmp(f->err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("%s: got \"%s\"", cases[i].spec, f->err);
	}
	/* Not an LMDB file. */
	snprintf(spec, sizeof(spec), "%s/junk.mdb", f->dir);
	{
		FILE *fp = fopen(spec, "w");

		assert_non_null(fp);
		for (i = 0; i < 2000; i++)
			fputs("this is not a database\n", fp);
		fclose(fp);
	}
	snprintf(spec, sizeof(spec), "lmdb:%s/junk.mdb", f->dir);
	assert_null(mw_store_get(spec, 1 << 20, 0, f->err, sizeof(f->err)));
	assert_int_equal(strncmp(f->err, "lmdb: ", 6), 0);
	/* Valid Redis specs open without a server. */
	{
		static const char *ok[] = { "redis:127.0.0.1:1/2",
			"redis:[::1]:1", "redis:unix:/nonexistent/sock/15" };
		struct mw_store *st;

		for (i = 0; i < NELEM(ok); i++) {
			st =
			    mw_store_get(ok[i], 0, 100, f->err, sizeof(f->err));
			if (st == NULL)
				fail_msg("%s: %s", ok[i], f->err);
			assert_int_equal(mw_store_rate(st, "k", T0, MIN, 1, 0,
					     1, false, NULL, f->err,
					     sizeof(f->err)),
			    MW_STORE_ERROR);
			assert_int_equal(strncmp(f->err, "redis: ", 7), 0);
			mw_store_put(st);
		}
	}
}

/* --------------------------------------------------------- Redis only */

/* The server goes away: calls fail fast with an error; it comes back on
 * the same port: the same store works again. */
static void
redis_restart_recovers(void **state)
{
	struct fx *f = fx(state);
	double t;
	int i;

	assert_int_equal(rate(f, "rs", T0, MIN, 100, 0, 1, false, NULL),
	    MW_STORE_OK);
	server_stop();
	for (i = 0; i < 3; i++) {
		t = mono_ms();
		assert_int_equal(mw_store_rate(f->st, "rs", T0, MIN, 100, 0, 1,
				     false, NULL, f->err, sizeof(f->err)),
		    MW_STORE_ERROR);
		assert_true(mono_ms() - t < 1000);
		assert_int_equal(strncmp(f->err, "redis: 127.0.0.1:", 17), 0);
	}
	assert_int_equal(mw_store_greylist(f->st, "t", "n", T0, MIN, HOUR, DAY,
			     NULL, f->err, sizeof(f->err)),
	    MW_STORE_ERROR);
	assert_true(server_start());
	assert_int_equal(rate(f, "rs", T0, MIN, 100, 0, 1, false, NULL),
	    MW_STORE_OK);
	assert_int_equal(grey(f, "t|a|b", "t", T0, NULL), MW_STORE_LIMITED);
}

/* Pooled connections cut by the server: one retry hides it. */
static void
redis_killed_connections_are_replaced(void **state)
{
	struct fx *f = fx(state);
	struct hammer h[4];
	pthread_t tid[4];
	int i;

	/* Fill the pool with a few connections. */
	for (i = 0; i < 4; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		h[i].st = f->st;
		h[i].calls = 20;
		assert_int_equal(pthread_create(&tid[i], NULL, hammer_run,
				     &h[i]),
		    0);
	}
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);
	admin_cmd("CLIENT KILL TYPE normal SKIPME yes");
	for (i = 0; i < 5; i++)
		assert_int_equal(rate(f, "ck", T0, MIN, 100, 0, 1, false, NULL),
		    MW_STORE_OK);
	/* Scripts flushed: EVAL takes over from EVALSHA. */
	admin_cmd("SCRIPT FLUSH");
	assert_int_equal(rate(f, "ck", T0, MIN, 100, 0, 1, false, NULL),
	    MW_STORE_OK);
	assert_int_equal(grey(f, "x|y|z", "x", T0, NULL), MW_STORE_LIMITED);
	delivered(f, "x", T0);
}

/* A server that accepts and never answers: the call gives up at the
 * timeout. */
static void
redis_timeout_is_bounded(void **state)
{
	struct fx *f = fx(state);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct mw_store *st;
	char spec[64];
	double t, took;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(spec, sizeof(spec), "redis:127.0.0.1:%d", ntohs(sin.sin_port));
	st = mw_store_get(spec, 0, 200, f->err, sizeof(f->err));
	assert_non_null(st);
	t = mono_ms();
	assert_int_equal(mw_store_rate(st, "k", T0, MIN, 1, 0, 1, false, NULL,
			     f->err, sizeof(f->err)),
	    MW_STORE_ERROR);
	took = mono_ms() - t;
	assert_non_null(strstr(f->err, "timed out after 200 ms"));
	assert_true(took >= 150 && took < 2000); /* loaded CI machines */
	mw_store_put(st);
	close(fd);
}

/* redis:unix:PATH/DB reaches the socket and the database. */
static void
redis_unix_socket_and_db(void **state)
{
	struct fx *f = fx(state);
	struct mw_store *st;
	char spec[200];
	size_t n;

	snprintf(spec, sizeof(spec), "redis:unix:%s/3", srv.sock);
	st = mw_store_get(spec, 0, 1000, f->err, sizeof(f->err));
	assert_non_null(st);
	assert_int_equal(mw_store_rate(st, "u", T0, MIN, 1, 0, 1, false, NULL,
			     f->err, sizeof(f->err)),
	    MW_STORE_OK);
	assert_int_equal(mw_store_entries(st, &n, f->err, sizeof(f->err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(admin_cmd("DBSIZE"), 0);
	assert_int_equal(mw_store_rate(st, "u", T0, MIN, 1, 0, 1, false, NULL,
			     f->err, sizeof(f->err)),
	    MW_STORE_LIMITED);
	mw_store_put(st);
	/* Keys carry an expiry. */
	{
		redisContext *c = admin();
		redisReply *r;

		assert_non_null(c);
		freeReplyObject(redisCommand(c, "SELECT 3"));
		r = redisCommand(c, "PTTL mw:r:u");
		assert_non_null(r);
		assert_int_equal(r->type, REDIS_REPLY_INTEGER);
		assert_true(r->integer > 0 && r->integer <= 60001);
		freeReplyObject(r);
		redisFree(c);
	}
}

#define BOTH(fn)  cmocka_unit_test_setup_teardown(fn, setup_lmdb, teardown)
#define BOTHR(fn) cmocka_unit_test_setup_teardown(fn, setup_redis, teardown)

int
main(void)
{
	const struct CMUnitTest lmdb_tests[] = {
		BOTH(rate_allows_max_then_refuses),
		BOTH(rate_has_no_double_burst_at_a_boundary),
		BOTH(rate_sliding_bound_holds),
		BOTH(rate_burst_is_the_bucket_depth),
		BOTH(rate_cost_counts_units),
		BOTH(rate_count_refused),
		BOTH(rate_long_keys_are_distinct),
		BOTH(rate_rejects_zero_parameters),
		BOTH(greylist_states),
		BOTH(greylist_window_expiry_starts_over),
		BOTH(greylist_auto_allow),
		BOTH(threads_count_exactly),
		BOTH(stores_are_shared_by_spec),
		BOTH(lmdb_state_survives_reopen),
		BOTH(lmdb_state_survives_a_crash),
		BOTH(lmdb_purges_expired_entries),
		BOTH(lmdb_map_full),
		BOTH(bad_specs_are_refused),
	};
	const struct CMUnitTest redis_tests[] = {
		BOTHR(rate_allows_max_then_refuses),
		BOTHR(rate_has_no_double_burst_at_a_boundary),
		BOTHR(rate_sliding_bound_holds),
		BOTHR(rate_burst_is_the_bucket_depth),
		BOTHR(rate_cost_counts_units),
		BOTHR(rate_count_refused),
		BOTHR(rate_long_keys_are_distinct),
		BOTHR(rate_rejects_zero_parameters),
		BOTHR(greylist_states),
		BOTHR(greylist_window_expiry_starts_over),
		BOTHR(greylist_auto_allow),
		BOTHR(threads_count_exactly),
		BOTHR(stores_are_shared_by_spec),
		BOTHR(redis_killed_connections_are_replaced),
		BOTHR(redis_unix_socket_and_db),
		BOTHR(redis_timeout_is_bounded),
		BOTHR(redis_restart_recovers),
	};
	int rc;

	/* hiredis writes with write(2); libmilter ignores SIGPIPE too. */
	signal(SIGPIPE, SIG_IGN);
	rc = cmocka_run_group_tests_name("store-lmdb", lmdb_tests, NULL, NULL);
	rc +=
	    cmocka_run_group_tests_name("store-redis", redis_tests, NULL, NULL);
	server_stop();
	if (srv.dir[0] != '\0')
		rm_rf(srv.dir);
	return rc;
}
