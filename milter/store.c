/*
 * store.c -- rate-limit and greylisting state in LMDB or in Redis.
 *
 * Rate limits and greylisting need state that outlives one SMTP session,
 * survives a restart (a greylist that forgets its allow-list delays real
 * mail again) and, on sites with several MTAs, is shared between hosts (or
 * every limit is multiplied by the number of hosts).  This module keeps
 * that state behind three operations -- a GCRA rate check, a greylist
 * check and "delivered" -- and two back ends:
 *
 * LMDB, the default.  One memory-mapped file, bounded by its map size.
 * Every operation is one write transaction (check and update are never
 * separated), serialised by a mutex so libmilter's threads can share the
 * environment; LMDB's own writer lock also makes two processes on one
 * file safe.  Commits do not fsync (MDB_NOSYNC): a crashed milter-warden
 * loses nothing, since the pages are in the kernel's cache, and the file
 * is synced every SYNC_INTERVAL on the next write and on close, so an OS
 * crash loses at most a few seconds of counters.  Each write also examines
 * a few entries after where the previous write stopped and deletes the
 * expired ones, so the file does not fill with dead keys.  A reserve of
 * pages is kept for purging (LMDB needs free pages even to delete); when
 * only the reserve is left, a full sweep runs before a new entry is added,
 * and without room after it, new entries fail with "store full" while
 * existing ones go on being checked and updated.
 *
 * Redis.  Each operation is one Lua script, so the check and the update
 * are atomic on the server however many milter-warden instances share it,
 * and every key is written with a PX expiry.  Connections come from a
 * per-store pool.  Every call has one deadline (the store's timeout)
 * covering connect, SELECT and the script; when a pooled connection fails
 * with an I/O error (the server restarted), the idle pool is dropped and
 * the call is retried once on a new connection within the same deadline.
 * The retry can count a message twice if the server ran the script and the
 * reply was lost; that is the price of recovering without a restart.
 *
 * Both back ends run the same decision logic: gcra_step() and the greylist
 * steps below, mirrored in the Lua scripts.  The unit tests run one set of
 * behavioural tests against both.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <lmdb.h>
#include <openssl/evp.h>

#include "mw_store.h"

#define SYNC_INTERVAL_NS  (5ULL * 1000000000ULL)
#define PURGE_STEP        16   /* entries examined by each write */
#define SWEEP_DELETES     32   /* deletions per sweep transaction */
#define SWEEP_EXAMINE     4096 /* entries examined per sweep transaction */
#define MIN_MAP_BYTES     (256U * 1024U)
#define RESERVE_MIN_PAGES 16 /* pages kept for purging (see lmdb_tight) */
#define POOL_IDLE_MAX     64 /* idle Redis connections kept per store */
#define SPAN_MAX          (1ULL << 50) /* ~35 years, for spans */
#define TIME_MAX          (1ULL << 53) /* times stay exact in Lua doubles */
#define LKEY_MAX          511          /* LMDB's default MDB_MAXKEYSIZE */
#define SHA256_LEN        32

/* Record kinds (the first byte of an LMDB key). */
#define K_RATE    'r'
#define K_TRIPLET 'g'
#define K_NET     'a'

/* Triplet states. */
#define TRIPLET_PENDING 1
#define TRIPLET_PASSED  2

enum backend { BE_LMDB, BE_REDIS };

struct rconn {
	struct rconn *next;
	redisContext *c;
	unsigned tmo_ms; /* the socket timeout currently set */
};

struct mw_store {
	struct mw_store *next; /* registry; guarded by reg_lock */
	unsigned refs;         /* guarded by reg_lock */
	char *spec;
	enum backend be;

	/* LMDB */
	char *path;
	dev_t dev;
	ino_t ino;
	MDB_env *env;
	MDB_dbi dbi;
	unsigned maxkey;
	pthread_mutex_t lock; /* LMDB: every transaction; Redis: the pool */
	size_t mapsize;       /* guarded by lock */
	size_t psize;         /* LMDB page size */
	uint64_t last_sweep;  /* guarded by lock: caller's clock, µs */
	unsigned char purge_key[LKEY_MAX]; /* guarded by lock: resume point */
	size_t purge_len;                  /* 0: start from the first entry */
	atomic_uint_fast64_t last_sync_ns;

	/* Redis */
	char *host; /* NULL for a unix socket */
	char *sock;
	int port;
	int db;
	char where[300]; /* "host:port" or the socket path, for messages */
	atomic_uint timeout_ms;
	struct rconn *idle; /* guarded by lock */
	unsigned nidle;     /* guarded by lock */
	char sha[3][41];    /* guarded by lock; "" until SCRIPT LOAD */
};

/* An LMDB value: fixed size, host byte order (LMDB files are not portable
 * between architectures anyway). */
struct rec {
	uint64_t expires; /* µs since the epoch; the entry is dead after it */
	uint64_t val;     /* rate: TAT; triplet: first seen or passed-until */
	uint64_t kind;    /* triplet: TRIPLET_*; otherwise 0 */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mw_store *reg_head; /* guarded by reg_lock */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *
be_name(const struct mw_store *st)
{
	return st->be == BE_LMDB ? "lmdb" : "redis";
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* sat_add -- a time plus a span (or two spans), capped at TIME_MAX. */
static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	if (a >= TIME_MAX || b >= TIME_MAX - a)
		return TIME_MAX;
	return a + b;
}

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	if (a == 0 || b == 0)
		return 0;
	return a > SPAN_MAX / b ? SPAN_MAX : a * b;
}

/* sha256 -- only to shorten keys over LMDB's key limit: a collision-
 * resistant digest keeps two long keys from sharing a counter. */
static int
sha256(const void *data, size_t len, unsigned char out[SHA256_LEN])
{
	return EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL) == 1 ? 0
									 : -1;
}

/*
 * The shared decision logic.  Every time is in µs, every span is capped at
 * SPAN_MAX so the Lua side (doubles) computes exactly the same values.
 */
struct gcra {
	uint64_t now;
	uint64_t inc;  /* cost * T */
	uint64_t span; /* max(burst, cost) * T: the bucket depth */
	uint64_t hcap; /* count_refused: TAT is capped at now + hcap; else 0 */
};

/*
 * gcra_step -- decide one rate check on *tat (0 when the key is unknown)
 * and update it.  Returns true when allowed; *retry is set when refused;
 * *write says whether *tat must be stored.
 */
static bool
gcra_step(const struct gcra *g, uint64_t *tat, uint64_t *retry, bool *write)
{
	uint64_t t = *tat > g->now ? *tat : g->now;
	uint64_t next = t + g->inc;

	if (next - g->now <= g->span) {
		*tat = next;
		*write = true;
		*retry = 0;
		return true;
	}
	*write = false;
	if (g->hcap > 0) {
		if (next > g->now + g->hcap)
			next = g->now + g->hcap;
		if (next > t) {
			t = next;
			*tat = next;
			*write = true;
		}
	}
	*retry = t + g->inc - g->span - g->now;
	if (*retry == 0)
		*retry = 1;
	return false;
}

static int
gcra_setup(struct gcra *g, uint64_t now, uint64_t period, uint64_t max,
    uint64_t burst, uint64_t cost, bool count_refused)
{
	uint64_t t;

	if (period == 0 || max == 0)
		return -1;
	if (period > SPAN_MAX)
		period = SPAN_MAX;
	if (burst == 0)
		burst = max;
	t = period / max + (period % max != 0);
	g->now = now;
	g->inc = sat_mul(cost, t);
	g->span = sat_mul(cost > burst ? cost : burst, t);
	g->hcap = count_refused ? sat_add(sat_mul(burst, t), period) : 0;
	return 0;
}

/* ---------------------------------------------------------------- LMDB */

static const unsigned char meta_key[] = "\0mw-store-format";
#define META_VERSION 1

/*
 * lkey -- the LMDB key for (kind, key) in out (LKEY_MAX bytes), and its
 * length (0 when the digest failed).  Keys over the limit become an
 * upper-case kind, a prefix and the SHA-256 of the whole key, so they can
 * collide neither with each other nor with a short key.
 */
static size_t
lkey(const struct mw_store *st, char kind, const char *key, unsigned char *out)
{
	size_t len = strlen(key), keep;

	if (len + 2 <= st->maxkey) {
		out[0] = (unsigned char)kind;
		out[1] = ':';
		memcpy(out + 2, key, len);
		return len + 2;
	}
	keep = st->maxkey - 2 - SHA256_LEN;
	out[0] = (unsigned char)(kind - 'a' + 'A');
	out[1] = ':';
	memcpy(out + 2, key, keep);
	if (sha256(key, len, out + 2 + keep) != 0)
		return 0;
	return st->maxkey;
}

/* An entry is expired when it carries our record format and its expiry has
 * passed; anything else (the format marker) is kept. */
static bool
expired(const MDB_val *k, const MDB_val *v, uint64_t now)
{
	struct rec r;

	if (k->mv_size == 0 || ((const unsigned char *)k->mv_data)[0] == 0 ||
	    v->mv_size != sizeof(r))
		return false;
	memcpy(&r, v->mv_data, sizeof(r));
	return r.expires <= now;
}

/*
 * purge_step -- examine up to limit entries from the resume point, delete
 * the expired ones, stop after dlimit deletions (a transaction that
 * deletes much needs many free pages).  Sets *done when the end of the database
 * was reached (the next step starts over from the first entry).  Lock held.
 */
static int
purge_step(struct mw_store *st, MDB_txn *txn, uint64_t now, unsigned limit,
    unsigned dlimit, size_t *purged, bool *done)
{
	MDB_cursor *cur;
	MDB_val k, v;
	unsigned n, d = 0;
	int rc;

	*done = false;
	if ((rc = mdb_cursor_open(txn, st->dbi, &cur)) != 0)
		return rc;
	if (st->purge_len > 0) {
		k.mv_size = st->purge_len;
		k.mv_data = st->purge_key;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (n = 0; rc == 0 && n < limit && d < dlimit; n++) {
		if (expired(&k, &v, now)) {
			if ((rc = mdb_cursor_del(cur, 0)) != 0)
				break;
			d++;
			if (purged != NULL)
				(*purged)++;
		}
		/* After a delete, MDB_NEXT yields the entry that followed. */
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND) {
		st->purge_len = 0;
		*done = true;
		rc = 0;
	} else if (rc == 0) {
		/* k is the next entry to examine; copy it before the txn ends.
		 */
		assert(k.mv_size <= sizeof(st->purge_key));
		memcpy(st->purge_key, k.mv_data, k.mv_size);
		st->purge_len = k.mv_size;
	}
	mdb_cursor_close(cur);
	return rc;
}

/* sweep -- purge the whole database in short transactions, so the pages
 * freed by one are reusable by the next.  Lock held. */
static int
sweep(struct mw_store *st, uint64_t now, size_t *purged)
{
	MDB_txn *txn;
	bool done = false;
	int rc;

	st->purge_len = 0;
	while (!done) {
		if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
			return rc;
		if ((rc = purge_step(st, txn, now, SWEEP_EXAMINE, SWEEP_DELETES,
			 purged, &done)) != 0) {
			mdb_txn_abort(txn);
			return rc;
		}
		if ((rc = mdb_txn_commit(txn)) != 0)
			return rc;
	}
	return 0;
}

/* sync_maybe -- flush to disk when the last flush is SYNC_INTERVAL old.
 * Called without the lock: only one thread wins the exchange, and
 * mdb_env_sync may run beside a writer. */
static void
sync_maybe(struct mw_store *st)
{
	uint64_t now = mono_ns();
	uint_fast64_t last = atomic_load(&st->last_sync_ns);

	if (now - last < SYNC_INTERVAL_NS)
		return;
	if (atomic_compare_exchange_strong(&st->last_sync_ns, &last, now))
		(void)mdb_env_sync(st->env, 1);
}

struct lop {
	int (*fn)(struct mw_store *st, MDB_txn *txn, struct lop *op);
	uint64_t now;
	const char *key;  /* rate, triplet */
	const char *key2; /* net */
	struct gcra g;
	uint64_t delay, window, allow;
	enum mw_store_res res;
	uint64_t retry;
};

static int
lget(struct mw_store *st, MDB_txn *txn, char kind, const char *key,
    uint64_t now, struct rec *r, bool *found)
{
	unsigned char kb[LKEY_MAX];
	MDB_val k, v;
	int rc;

	*found = false;
	if ((k.mv_size = lkey(st, kind, key, kb)) == 0)
		return ENOMEM;
	k.mv_data = kb;
	rc = mdb_get(txn, st->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size != sizeof(*r))
		return MDB_CORRUPTED;
	memcpy(r, v.mv_data, sizeof(*r));
	*found = r->expires > now;
	return 0;
}

static int
lput(struct mw_store *st, MDB_txn *txn, char kind, const char *key,
    const struct rec *r)
{
	unsigned char kb[LKEY_MAX];
	MDB_val k, v;

	if ((k.mv_size = lkey(st, kind, key, kb)) == 0)
		return ENOMEM;
	k.mv_data = kb;
	v.mv_size = sizeof(*r);
	v.mv_data = (void *)(uintptr_t)r;
	return mdb_put(txn, st->dbi, &k, &v, 0);
}

static int
lop_rate(struct mw_store *st, MDB_txn *txn, struct lop *op)
{
	struct rec r;
	bool found, write;
	uint64_t tat;
	int rc;

	if ((rc = lget(st, txn, K_RATE, op->key, op->now, &r, &found)) != 0)
		return rc;
	tat = found ? r.val : 0;
	op->res = gcra_step(&op->g, &tat, &op->retry, &write)
	    ? MW_STORE_OK
	    : MW_STORE_LIMITED;
	if (!write)
		return 0;
	r.expires = tat;
	r.val = tat;
	r.kind = 0;
	return lput(st, txn, K_RATE, op->key, &r);
}

static int
lop_greylist(struct mw_store *st, MDB_txn *txn, struct lop *op)
{
	struct rec r;
	bool found;
	uint64_t now = op->now;
	int rc;

	op->retry = 0;
	op->res = MW_STORE_OK;
	if (op->key2 != NULL) {
		if ((rc = lget(st, txn, K_NET, op->key2, now, &r, &found)) != 0)
			return rc;
		if (found)
			return 0;
	}
	if ((rc = lget(st, txn, K_TRIPLET, op->key, now, &r, &found)) != 0)
		return rc;
	if (found && r.kind == TRIPLET_PENDING && now < r.val + op->delay) {
		op->res = MW_STORE_LIMITED;
		op->retry = r.val + op->delay - now;
		return 0;
	}
	if (!found && op->delay > 0) {
		/* Unknown, or its window (or its passed status) ran out. */
		r.kind = TRIPLET_PENDING;
		r.val = now;
		r.expires = sat_add(now, sat_add(op->delay, op->window));
		op->res = MW_STORE_LIMITED;
		op->retry = op->delay;
		return lput(st, txn, K_TRIPLET, op->key, &r);
	}
	/* Passed before, retried within its window, or no delay at all. */
	r.kind = TRIPLET_PASSED;
	r.val = r.expires = sat_add(now, op->allow);
	return lput(st, txn, K_TRIPLET, op->key, &r);
}

static int
lop_delivered(struct mw_store *st, MDB_txn *txn, struct lop *op)
{
	struct rec r;
	bool found;
	uint64_t until = sat_add(op->now, op->allow);
	int rc;

	op->res = MW_STORE_OK;
	if ((rc = lget(st, txn, K_NET, op->key2, op->now, &r, &found)) != 0)
		return rc;
	if (found && r.val >= until)
		return 0;
	r.kind = 0;
	r.val = r.expires = until;
	return lput(st, txn, K_NET, op->key2, &r);
}

/*
 * Headroom.  LMDB copies pages on write, so even a delete needs free pages:
 * a map filled to the last page can no longer be purged.  So the store
 * keeps a reserve of pages (1/16 of the map, at least RESERVE_MIN_PAGES)
 * that only purging and updates may use: an operation that would add an
 * entry while less than the reserve is free runs a full sweep first (at
 * most once a second of the caller's clock) and fails with "store full"
 * when that did not make room.
 *
 * Pages in use are the high-water mark less the pages on LMDB's free list.
 * Counting the free list means reading its records (as mdb_stat -f does:
 * each value starts with its page count); that is done only once the
 * high-water mark has reached the reserve, which a store far from full
 * never does.
 */
static int
lmdb_tight(struct mw_store *st, bool *tight)
{
	MDB_envinfo info;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t total = st->mapsize / st->psize, reserve = total / 16, used, n,
	       freep = 0;
	int rc;

	if (reserve < RESERVE_MIN_PAGES)
		reserve = RESERVE_MIN_PAGES;
	*tight = false;
	if ((rc = mdb_env_info(st->env, &info)) != 0)
		return rc;
	used = info.me_last_pgno + 1;
	if (used + reserve <= total)
		return 0;
	/* LMDB opens the free list (dbi 0) only in a read-only transaction;
	 * with MDB_NOTLS one may be used beside our writes. */
	if ((rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, 0, &cur)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
		if (v.mv_size >= sizeof(n)) {
			memcpy(&n, v.mv_data, sizeof(n));
			freep += n;
		}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND)
		return rc;
	used = freep < used ? used - freep : 0;
	*tight = used + reserve > total;
	return 0;
}

/* sweep_allowed -- at most one full sweep a second when short of room. */
static bool
sweep_allowed(struct mw_store *st, uint64_t now)
{
	if (st->last_sweep != 0 && now < st->last_sweep + 1000000 &&
	    now >= st->last_sweep)
		return false;
	st->last_sweep = now;
	return true;
}

/*
 * lmdb_run -- run op in one write transaction, with an incremental purge
 * step first.  Short of room (see lmdb_tight) or on MDB_MAP_FULL, sweep
 * every expired entry and try once more.
 */
static enum mw_store_res
lmdb_run(struct mw_store *st, struct lop *op, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_stat before, after;
	bool done, tight;
	int rc = 0, attempt;

	pthread_mutex_lock(&st->lock);
	for (attempt = 0; attempt < 2; attempt++) {
		if ((rc = lmdb_tight(st, &tight)) != 0)
			break;
		if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
			break;
		rc = purge_step(st, txn, op->now, PURGE_STEP, PURGE_STEP, NULL,
		    &done);
		if (rc == 0 && tight)
			rc = mdb_stat(txn, st->dbi, &before);
		if (rc == 0)
			rc = op->fn(st, txn, op);
		/* Short of room, updates of existing entries go on (they free
		 * as many pages as they take) but new entries are refused. */
		if (rc == 0 && tight &&
		    (rc = mdb_stat(txn, st->dbi, &after)) == 0 &&
		    after.ms_entries > before.ms_entries)
			rc = MDB_MAP_FULL;
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc != MDB_MAP_FULL || attempt > 0 ||
		    !sweep_allowed(st, op->now))
			break;
		if ((rc = sweep(st, op->now, NULL)) != 0)
			break;
	}
	pthread_mutex_unlock(&st->lock);
	if (rc == MDB_MAP_FULL) {
		seterr(err, errlen,
		    "lmdb: %s: store full (%zu bytes) and nothing expired to "
		    "purge; raise its size",
		    st->path, st->mapsize);
		return MW_STORE_ERROR;
	}
	if (rc != 0) {
		seterr(err, errlen, "lmdb: %s: %s", st->path, mdb_strerror(rc));
		return MW_STORE_ERROR;
	}
	sync_maybe(st);
	return op->res;
}

static size_t
round_map(size_t bytes)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;

	if (bytes < MIN_MAP_BYTES)
		bytes = MIN_MAP_BYTES;
	if (bytes > SIZE_MAX - page)
		bytes = SIZE_MAX - page;
	return (bytes + page - 1) / page * page;
}

/* lmdb_check_format -- stamp a new file, refuse one of another format. */
static int
lmdb_check_format(struct mw_store *st, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val k, v;
	uint64_t ver = META_VERSION;
	int rc;

	if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &st->dbi)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	k.mv_size = sizeof(meta_key) - 1;
	k.mv_data = (void *)(uintptr_t)meta_key;
	rc = mdb_get(txn, st->dbi, &k, &v);
	if (rc == 0) {
		if (v.mv_size != sizeof(ver) ||
		    memcmp(v.mv_data, &ver, sizeof(ver)) != 0) {
			mdb_txn_abort(txn);
			seterr(err, errlen,
			    "lmdb: %s: not a milter-warden store of format %d",
			    st->path, META_VERSION);
			return -1;
		}
	} else if (rc == MDB_NOTFOUND) {
		v.mv_size = sizeof(ver);
		v.mv_data = &ver;
		if ((rc = mdb_put(txn, st->dbi, &k, &v, 0)) != 0) {
			mdb_txn_abort(txn);
			goto fail;
		}
	} else {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return 0;
fail:
	seterr(err, errlen, "lmdb: %s: %s", st->path, mdb_strerror(rc));
	return -1;
}

static int
lmdb_open(struct mw_store *st, const char *path, size_t max_bytes, char *err,
    size_t errlen)
{
	struct stat sb;
	MDB_stat ms;
	int rc, fd;

	if (path[0] != '/') {
		seterr(err, errlen, "lmdb: %s: the path must be absolute",
		    path);
		return -1;
	}
	if ((st->path = strdup(path)) == NULL) {
		seterr(err, errlen, "lmdb: out of memory");
		return -1;
	}
	st->mapsize = round_map(max_bytes);
	if ((rc = mdb_env_create(&st->env)) != 0) {
		seterr(err, errlen, "lmdb: %s: %s", path, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_env_set_mapsize(st->env, st->mapsize)) != 0 ||
	    (rc = mdb_env_open(st->env, path,
		 MDB_NOSUBDIR | MDB_NOTLS | MDB_NOSYNC, 0600)) != 0) {
		seterr(err, errlen, "lmdb: %s: %s%s", path, mdb_strerror(rc),
		    rc == MDB_INVALID || rc == MDB_CORRUPTED
			? " (the state file can be removed: it holds only "
			  "counters and greylist entries)"
			: "");
		mdb_env_close(st->env);
		st->env = NULL;
		return -1;
	}
	st->maxkey = (unsigned)mdb_env_get_maxkeysize(st->env);
	st->psize = mdb_env_stat(st->env, &ms) == 0 && ms.ms_psize > 0
	    ? ms.ms_psize
	    : 4096;
	if (st->maxkey > LKEY_MAX)
		st->maxkey = LKEY_MAX;
	if (mdb_env_get_fd(st->env, &fd) == 0 && fstat(fd, &sb) == 0) {
		st->dev = sb.st_dev;
		st->ino = sb.st_ino;
	}
	if (lmdb_check_format(st, err, errlen) != 0) {
		mdb_env_close(st->env);
		st->env = NULL;
		return -1;
	}
	atomic_store(&st->last_sync_ns, mono_ns());
	return 0;
}

/* --------------------------------------------------------------- Redis */

/*
 * The scripts mirror gcra_step and lop_greylist/lop_delivered.  Times are
 * decimal strings of µs; the C side passes spans already capped at
 * SPAN_MAX so every value stays exact in Lua's doubles.  Values are
 * written with %.0f (tostring would switch to exponent notation).  A key
 * holding something unexpected counts as unknown.
 */
static const char *const lua_src[3] = {
	/* 0: rate.  KEYS: key.  ARGV: now inc span hcap */
	"local now = tonumber(ARGV[1])\n"
	"local inc = tonumber(ARGV[2])\n"
	"local span = tonumber(ARGV[3])\n"
	"local hcap = tonumber(ARGV[4])\n"
	"local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0\n"
	"if tat < now then tat = now end\n"
	"local nxt = tat + inc\n"
	"if nxt - now <= span then\n"
	"  redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX',\n"
	"    math.floor((nxt - now) / 1000) + 1)\n"
	"  return {1, 0}\n"
	"end\n"
	"if hcap > 0 then\n"
	"  if nxt > now + hcap then nxt = now + hcap end\n"
	"  if nxt > tat then\n"
	"    tat = nxt\n"
	"    redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',\n"
	"      math.floor((tat - now) / 1000) + 1)\n"
	"  end\n"
	"end\n"
	"local r = tat + inc - span - now\n"
	"if r < 1 then r = 1 end\n"
	"return {0, r}\n",

	/* 1: greylist.  KEYS: net triplet.  ARGV: now delay window allow
	 * use_net.  Triplet values: "P <first seen>" or "A <passed until>". */
	"local now = tonumber(ARGV[1])\n"
	"local delay = tonumber(ARGV[2])\n"
	"local window = tonumber(ARGV[3])\n"
	"local allow = tonumber(ARGV[4])\n"
	"if ARGV[5] == '1' then\n"
	"  local u = tonumber(redis.call('GET', KEYS[1]) or 0) or 0\n"
	"  if u > now then return {1, 0} end\n"
	"end\n"
	"local v = redis.call('GET', KEYS[2])\n"
	"local kind, t = nil, 0\n"
	"if v then\n"
	"  kind = string.sub(v, 1, 1)\n"
	"  t = tonumber(string.sub(v, 3)) or 0\n"
	"  if kind == 'P' and now >= t + delay + window then kind = nil end\n"
	"  if kind == 'A' and now >= t then kind = nil end\n"
	"  if kind ~= 'P' and kind ~= 'A' then kind = nil end\n"
	"end\n"
	"if kind == 'P' and now < t + delay then return {0, t + delay - now} "
	"end\n"
	"if kind == nil and delay > 0 then\n"
	"  redis.call('SET', KEYS[2], 'P ' .. string.format('%.0f', now), 'PX',\n"
	"    math.floor((delay + window) / 1000) + 1)\n"
	"  return {0, delay}\n"
	"end\n"
	"redis.call('SET', KEYS[2], 'A ' .. string.format('%.0f', now + allow),\n"
	"  'PX', math.floor(allow / 1000) + 1)\n"
	"return {1, 0}\n",

	/* 2: delivered.  KEYS: net.  ARGV: now allow */
	"local now = tonumber(ARGV[1])\n"
	"local u = tonumber(redis.call('GET', KEYS[1]) or 0) or 0\n"
	"local n = now + tonumber(ARGV[2])\n"
	"if n > u then\n"
	"  redis.call('SET', KEYS[1], string.format('%.0f', n), 'PX',\n"
	"    math.floor((n - now) / 1000) + 1)\n"
	"end\n"
	"return {1, 0}\n",
};

/* Microseconds left before deadline (CLOCK_MONOTONIC ns), as a timeval of
 * at least 1 ms (a zero timeval would mean "no timeout" to hiredis).
 * Returns false when the deadline has passed. */
static bool
remaining(uint64_t deadline, struct timeval *tv, unsigned *ms)
{
	uint64_t now = mono_ns(), left;

	if (now >= deadline)
		return false;
	left = (deadline - now + 999999) / 1000000;
	if (left == 0)
		left = 1;
	*ms = left > UINT_MAX ? UINT_MAX : (unsigned)left;
	tv->tv_sec = (time_t)(left / 1000);
	tv->tv_usec = (suseconds_t)(left % 1000) * 1000;
	return true;
}

static void
rconn_free(struct rconn *rc)
{
	if (rc == NULL)
		return;
	if (rc->c != NULL)
		redisFree(rc->c);
	free(rc);
}

/* The context's error, worded for the log. */
static void
rerr(const struct mw_store *st, const redisContext *c, unsigned tmo_ms,
    char *err, size_t errlen)
{
	if (c->err == REDIS_ERR_IO &&
	    (strstr(c->errstr, "temporarily unavailable") != NULL ||
		strstr(c->errstr, "timed out") != NULL))
		seterr(err, errlen, "redis: %s: timed out after %u ms",
		    st->where, tmo_ms);
	else if (c->err == REDIS_ERR_EOF)
		seterr(err, errlen,
		    "redis: %s: connection closed by the server", st->where);
	else
		seterr(err, errlen, "redis: %s: %s", st->where, c->errstr);
}

/* Send one command, read its reply; NULL on a connection error. */
static redisReply *
rcmd(redisContext *c, int argc, const char *const *argv, const size_t *lens)
{
	/* hiredis 0.14 takes const char **; it does not write to it. */
	return redisCommandArgv(c, argc, (const char **)(uintptr_t)argv, lens);
}

/*
 * rconn_open -- a new connection, SELECTed and with the scripts loaded
 * once per store.  NULL with err set on failure.
 */
static struct rconn *
rconn_open(struct mw_store *st, uint64_t deadline, char *err, size_t errlen)
{
	struct rconn *rc;
	struct timeval tv;
	redisReply *rep;
	unsigned ms, tmo = atomic_load(&st->timeout_ms);
	char dbs[16];
	bool need_sha;
	int i;

	if (!remaining(deadline, &tv, &ms)) {
		seterr(err, errlen, "redis: %s: timed out after %u ms",
		    st->where, tmo);
		return NULL;
	}
	if ((rc = calloc(1, sizeof(*rc))) == NULL) {
		seterr(err, errlen, "redis: out of memory");
		return NULL;
	}
	rc->c = st->host != NULL
	    ? redisConnectWithTimeout(st->host, st->port, tv)
	    : redisConnectUnixWithTimeout(st->sock, tv);
	if (rc->c == NULL) {
		seterr(err, errlen, "redis: %s: out of memory", st->where);
		goto fail;
	}
	if (rc->c->err) {
		rerr(st, rc->c, tmo, err, errlen);
		goto fail;
	}
	if (!remaining(deadline, &tv, &ms) ||
	    redisSetTimeout(rc->c, tv) != REDIS_OK) {
		seterr(err, errlen, "redis: %s: timed out after %u ms",
		    st->where, tmo);
		goto fail;
	}
	rc->tmo_ms = ms;
	if (st->db != 0) {
		const char *argv[2] = { "SELECT", dbs };
		size_t lens[2];

		snprintf(dbs, sizeof(dbs), "%d", st->db);
		lens[0] = 6;
		lens[1] = strlen(dbs);
		if ((rep = rcmd(rc->c, 2, argv, lens)) == NULL) {
			rerr(st, rc->c, tmo, err, errlen);
			goto fail;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			seterr(err, errlen, "redis: %s: SELECT %d: %s",
			    st->where, st->db, rep->str);
			freeReplyObject(rep);
			goto fail;
		}
		freeReplyObject(rep);
	}
	pthread_mutex_lock(&st->lock);
	need_sha = st->sha[0][0] == '\0';
	pthread_mutex_unlock(&st->lock);
	for (i = 0; need_sha && i < 3; i++) {
		const char *argv[3] = { "SCRIPT", "LOAD", lua_src[i] };
		size_t lens[3] = { 6, 4, strlen(lua_src[i]) };

		if ((rep = rcmd(rc->c, 3, argv, lens)) == NULL) {
			rerr(st, rc->c, tmo, err, errlen);
			goto fail;
		}
		if (rep->type == REDIS_REPLY_STRING && rep->len == 40) {
			pthread_mutex_lock(&st->lock);
			memcpy(st->sha[i], rep->str, 40);
			st->sha[i][40] = '\0';
			pthread_mutex_unlock(&st->lock);
		}
		/* Otherwise EVAL will do; the reply is not worth failing on. */
		freeReplyObject(rep);
	}
	return rc;
fail:
	rconn_free(rc);
	return NULL;
}

static struct rconn *
pool_take(struct mw_store *st)
{
	struct rconn *rc;

	pthread_mutex_lock(&st->lock);
	if ((rc = st->idle) != NULL) {
		st->idle = rc->next;
		st->nidle--;
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static void
pool_give(struct mw_store *st, struct rconn *rc)
{
	pthread_mutex_lock(&st->lock);
	if (st->nidle < POOL_IDLE_MAX) {
		rc->next = st->idle;
		st->idle = rc;
		st->nidle++;
		rc = NULL;
	}
	pthread_mutex_unlock(&st->lock);
	rconn_free(rc);
}

/* pool_flush -- drop every idle connection: after one failed with an I/O
 * error, the others were most likely cut by the same server restart. */
static void
pool_flush(struct mw_store *st)
{
	struct rconn *list, *rc;

	pthread_mutex_lock(&st->lock);
	list = st->idle;
	st->idle = NULL;
	st->nidle = 0;
	pthread_mutex_unlock(&st->lock);
	while ((rc = list) != NULL) {
		list = rc->next;
		rconn_free(rc);
	}
}

#define RARGS_MAX 9

struct rcall {
	int script; /* index into lua_src, or -1 for a plain command */
	int argc;   /* EVAL: keys then arguments; plain: the whole command */
	int nkeys;
	const char *argv[RARGS_MAX];
	size_t lens[RARGS_MAX];
};

/*
 * rexec -- run call on rc: EVALSHA, falling back to EVAL on NOSCRIPT.
 * Returns the reply (error replies included), or NULL on a connection
 * error (rc->c->err says which).
 */
static redisReply *
rexec(struct mw_store *st, struct rconn *rc, const struct rcall *call)
{
	const char *argv[RARGS_MAX + 3];
	size_t lens[RARGS_MAX + 3];
	char nk[8], sha[41];
	redisReply *rep;
	int i;

	if (call->script < 0)
		return rcmd(rc->c, call->argc, call->argv, call->lens);
	pthread_mutex_lock(&st->lock);
	memcpy(sha, st->sha[call->script], sizeof(sha));
	pthread_mutex_unlock(&st->lock);
	snprintf(nk, sizeof(nk), "%d", call->nkeys);
	argv[1] = sha;
	lens[1] = 40;
	argv[2] = nk;
	lens[2] = strlen(nk);
	for (i = 0; i < call->argc; i++) {
		argv[i + 3] = call->argv[i];
		lens[i + 3] = call->lens[i];
	}
	if (sha[0] != '\0') {
		argv[0] = "EVALSHA";
		lens[0] = 7;
		rep = rcmd(rc->c, call->argc + 3, argv, lens);
		if (rep == NULL || rep->type != REDIS_REPLY_ERROR ||
		    strncmp(rep->str, "NOSCRIPT", 8) != 0)
			return rep;
		freeReplyObject(rep);
	}
	argv[0] = "EVAL";
	lens[0] = 4;
	argv[1] = lua_src[call->script];
	lens[1] = strlen(lua_src[call->script]);
	return rcmd(rc->c, call->argc + 3, argv, lens);
}

/*
 * redis_run -- run call within the store's timeout.  A pooled connection
 * that fails with an I/O error is replaced and the call retried once.
 * Returns the reply (the caller frees it) or NULL with err set; error
 * replies are turned into NULL here.
 */
static redisReply *
redis_run(struct mw_store *st, const struct rcall *call, char *err,
    size_t errlen)
{
	unsigned tmo = atomic_load(&st->timeout_ms), ms;
	uint64_t deadline = mono_ns() + (uint64_t)tmo * 1000000ULL;
	struct rconn *rc = pool_take(st);
	struct timeval tv;
	redisReply *rep;
	bool fresh = false, io;
	int attempt;

	for (attempt = 0;; attempt++) {
		if (rc == NULL) {
			if ((rc = rconn_open(st, deadline, err, errlen)) ==
			    NULL)
				return NULL;
			fresh = true;
		} else if (rc->tmo_ms != tmo) {
			if (!remaining(deadline, &tv, &ms) ||
			    redisSetTimeout(rc->c, tv) != REDIS_OK) {
				seterr(err, errlen,
				    "redis: %s: timed out after %u ms",
				    st->where, tmo);
				rconn_free(rc);
				return NULL;
			}
			rc->tmo_ms = ms;
		}
		if ((rep = rexec(st, rc, call)) != NULL)
			break;
		io = rc->c->err == REDIS_ERR_IO || rc->c->err == REDIS_ERR_EOF;
		rerr(st, rc->c, tmo, err, errlen);
		rconn_free(rc);
		rc = NULL;
		if (!io || fresh || attempt > 0)
			return NULL;
		pool_flush(st);
	}
	pool_give(st, rc);
	if (rep->type == REDIS_REPLY_ERROR) {
		seterr(err, errlen, "redis: %s: %s", st->where, rep->str);
		freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

/* redis_decide -- run a script replying {allowed, retry_after}. */
static enum mw_store_res
redis_decide(struct mw_store *st, const struct rcall *call,
    uint64_t *retry_after_us, char *err, size_t errlen)
{
	redisReply *rep = redis_run(st, call, err, errlen);
	enum mw_store_res res;

	if (rep == NULL)
		return MW_STORE_ERROR;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->integer < 0) {
		seterr(err, errlen, "redis: %s: unexpected script reply",
		    st->where);
		freeReplyObject(rep);
		return MW_STORE_ERROR;
	}
	res = rep->element[0]->integer == 1 ? MW_STORE_OK : MW_STORE_LIMITED;
	if (retry_after_us != NULL)
		*retry_after_us = (uint64_t)rep->element[1]->integer;
	freeReplyObject(rep);
	return res;
}

/* A Redis key: "mw:" kind ":" key, in buf (the caller frees it). */
static char *
rkey(char kind, const char *key, size_t *len)
{
	size_t n = strlen(key);
	char *k = malloc(n + 6);

	if (k == NULL)
		return NULL;
	memcpy(k, "mw:", 3);
	k[3] = kind;
	k[4] = ':';
	memcpy(k + 5, key, n + 1);
	*len = n + 5;
	return k;
}

static void
rarg(struct rcall *call, const char *s, size_t len)
{
	assert(call->argc < RARGS_MAX);
	call->argv[call->argc] = s;
	call->lens[call->argc] = len;
	call->argc++;
}

/* Parse "/DIGITS" at the end of s[0..*len) into *db, shortening *len. */
static int
parse_db(const char *s, size_t *len, int *db)
{
	size_t i = *len;
	long v = 0;

	while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
		i--;
	if (i == *len || i == 0 || s[i - 1] != '/')
		return 0;
	if (*len - i > 6)
		return -1;
	for (size_t j = i; j < *len; j++)
		v = v * 10 + (s[j] - '0');
	*db = (int)v;
	*len = i - 1;
	return 0;
}

static int
redis_open(struct mw_store *st, const char *rest, unsigned timeout_ms,
    char *err, size_t errlen)
{
	size_t len = strlen(rest);
	const char *colon, *hs, *he;
	char *end;
	long port;

	st->db = 0;
	atomic_store(&st->timeout_ms, timeout_ms > 0 ? timeout_ms : 1);
	if (parse_db(rest, &len, &st->db) != 0)
		goto bad;
	if (strncmp(rest, "unix:", 5) == 0) {
		if (len <= 5 || rest[5] != '/')
			goto bad;
		if ((st->sock = strndup(rest + 5, len - 5)) == NULL)
			goto oom;
		snprintf(st->where, sizeof(st->where), "%s", st->sock);
		return 0;
	}
	if (rest[0] == '[') {
		hs = rest + 1;
		if ((he = memchr(rest, ']', len)) == NULL || he[1] != ':')
			goto bad;
		colon = he + 1;
	} else {
		hs = rest;
		if ((colon = memchr(rest, ':', len)) == NULL)
			goto bad;
		he = colon;
	}
	if (he == hs || colon + 1 >= rest + len)
		goto bad;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end != rest + len || port < 1 || port > 65535 ||
	    colon[1] == '+' || colon[1] == '-')
		goto bad;
	if ((st->host = strndup(hs, (size_t)(he - hs))) == NULL)
		goto oom;
	if (strchr(st->host, ':') != NULL && rest[0] != '[')
		goto bad;
	st->port = (int)port;
	snprintf(st->where, sizeof(st->where), "%s%s%s:%d",
	    rest[0] == '[' ? "[" : "", st->host, rest[0] == '[' ? "]" : "",
	    st->port);
	return 0;
bad:
	seterr(err, errlen,
	    "redis: bad store \"redis:%s\" (expected redis:HOST:PORT[/DB], "
	    "redis:[ADDR]:PORT[/DB] or redis:unix:/PATH[/DB])",
	    rest);
	return -1;
oom:
	seterr(err, errlen, "redis: out of memory");
	return -1;
}

/* ------------------------------------------------------------ registry */

static void
store_free(struct mw_store *st)
{
	struct rconn *rc;

	if (st == NULL)
		return;
	if (st->env != NULL) {
		(void)mdb_env_sync(st->env, 1);
		mdb_env_close(st->env);
	}
	while ((rc = st->idle) != NULL) {
		st->idle = rc->next;
		rconn_free(rc);
	}
	pthread_mutex_destroy(&st->lock);
	free(st->spec);
	free(st->path);
	free(st->host);
	free(st->sock);
	free(st);
}

/* Under reg_lock: a store already open for spec, or for the same file. */
static struct mw_store *
reg_find(const char *spec)
{
	struct mw_store *st;
	struct stat sb;
	bool have_sb =
	    strncmp(spec, "lmdb:", 5) == 0 && stat(spec + 5, &sb) == 0;

	for (st = reg_head; st != NULL; st = st->next) {
		if (strcmp(st->spec, spec) == 0)
			return st;
		if (have_sb && st->be == BE_LMDB && st->dev == sb.st_dev &&
		    st->ino == sb.st_ino)
			return st;
	}
	return NULL;
}

struct mw_store *
mw_store_get(const char *spec, size_t max_bytes, unsigned timeout_ms, char *err,
    size_t errlen)
{
	struct mw_store *st;
	size_t want;

	pthread_mutex_lock(&reg_lock);
	if ((st = reg_find(spec)) != NULL) {
		st->refs++;
		pthread_mutex_unlock(&reg_lock);
		if (st->be == BE_REDIS) {
			atomic_store(&st->timeout_ms,
			    timeout_ms > 0 ? timeout_ms : 1);
			return st;
		}
		/* Growing the map is allowed with no transaction active in
		 * this process, which the lock guarantees. */
		want = round_map(max_bytes);
		pthread_mutex_lock(&st->lock);
		if (want > st->mapsize &&
		    mdb_env_set_mapsize(st->env, want) == 0)
			st->mapsize = want;
		pthread_mutex_unlock(&st->lock);
		return st;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->spec = strdup(spec)) == NULL) {
		free(st);
		pthread_mutex_unlock(&reg_lock);
		seterr(err, errlen, "store: out of memory");
		return NULL;
	}
	pthread_mutex_init(&st->lock, NULL);
	if (strncmp(spec, "lmdb:", 5) == 0) {
		st->be = BE_LMDB;
		if (lmdb_open(st, spec + 5, max_bytes, err, errlen) != 0)
			goto fail;
	} else if (strncmp(spec, "redis:", 6) == 0) {
		st->be = BE_REDIS;
		if (redis_open(st, spec + 6, timeout_ms, err, errlen) != 0)
			goto fail;
	} else {
		seterr(err, errlen,
		    "store: unknown store \"%s\" (expected lmdb:/PATH or "
		    "redis:HOST:PORT)",
		    spec);
		goto fail;
	}
	st->refs = 1;
	st->next = reg_head;
	reg_head = st;
	pthread_mutex_unlock(&reg_lock);
	return st;
fail:
	pthread_mutex_unlock(&reg_lock);
	store_free(st);
	return NULL;
}

void
mw_store_put(struct mw_store *st)
{
	struct mw_store **pp;
	bool last;

	if (st == NULL)
		return;
	pthread_mutex_lock(&reg_lock);
	assert(st->refs > 0);
	last = --st->refs == 0;
	if (last) {
		for (pp = &reg_head; *pp != st; pp = &(*pp)->next)
			assert(*pp != NULL);
		*pp = st->next;
	}
	pthread_mutex_unlock(&reg_lock);
	if (last)
		store_free(st);
}

const char *
mw_store_spec(const struct mw_store *st)
{
	return st->spec;
}

int
mw_store_chown(struct mw_store *st, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	char *lock;
	int rc = 0;

	if (st->be != BE_LMDB)
		return 0;
	if (asprintf(&lock, "%s-lock", st->path) < 0) {
		seterr(err, errlen, "lmdb: out of memory");
		return -1;
	}
	if (chown(st->path, uid, gid) != 0) {
		seterr(err, errlen, "lmdb: chown %s: %s", st->path,
		    strerror(errno));
		rc = -1;
	} else if (chown(lock, uid, gid) != 0) {
		seterr(err, errlen, "lmdb: chown %s: %s", lock,
		    strerror(errno));
		rc = -1;
	}
	free(lock);
	return rc;
}

/* ---------------------------------------------------------- operations */

/* rnum -- format v into buf and add it to call. */
static void
rnum(struct rcall *call, char *buf, size_t len, uint64_t v)
{
	int n = snprintf(buf, len, "%" PRIu64, v);

	assert(n > 0 && (size_t)n < len);
	rarg(call, buf, (size_t)n);
}

enum mw_store_res
mw_store_rate(struct mw_store *st, const char *key, uint64_t now_us,
    uint64_t period_us, uint64_t max, uint64_t burst, uint64_t cost,
    bool count_refused, uint64_t *retry_after_us, char *err, size_t errlen)
{
	struct lop op;
	struct rcall call;
	char nb[4][24], *k;
	size_t klen;
	enum mw_store_res res;

	if (retry_after_us != NULL)
		*retry_after_us = 0;
	memset(&op, 0, sizeof(op));
	if (gcra_setup(&op.g, now_us, period_us, max, burst, cost,
		count_refused) != 0) {
		seterr(err, errlen,
		    "%s: rate limit with a period or a "
		    "maximum of 0",
		    be_name(st));
		return MW_STORE_ERROR;
	}
	if (st->be == BE_LMDB) {
		op.fn = lop_rate;
		op.now = now_us;
		op.key = key;
		res = lmdb_run(st, &op, err, errlen);
		if (res == MW_STORE_LIMITED && retry_after_us != NULL)
			*retry_after_us = op.retry;
		return res;
	}
	if ((k = rkey(K_RATE, key, &klen)) == NULL) {
		seterr(err, errlen, "redis: out of memory");
		return MW_STORE_ERROR;
	}
	memset(&call, 0, sizeof(call));
	call.script = 0;
	call.nkeys = 1;
	rarg(&call, k, klen);
	rnum(&call, nb[0], sizeof(nb[0]), now_us);
	rnum(&call, nb[1], sizeof(nb[1]), op.g.inc);
	rnum(&call, nb[2], sizeof(nb[2]), op.g.span);
	rnum(&call, nb[3], sizeof(nb[3]), op.g.hcap);
	res = redis_decide(st, &call, retry_after_us, err, errlen);
	free(k);
	return res;
}

enum mw_store_res
mw_store_greylist(struct mw_store *st, const char *triplet_key,
    const char *net_key, uint64_t now_us, uint64_t delay_us, uint64_t window_us,
    uint64_t auto_allow_us, uint64_t *retry_after_us, char *err, size_t errlen)
{
	struct lop op;
	struct rcall call;
	char nb[4][24], *k1 = NULL, *k2;
	size_t l1 = 0, l2;
	enum mw_store_res res;

	if (retry_after_us != NULL)
		*retry_after_us = 0;
	delay_us = delay_us > SPAN_MAX ? SPAN_MAX : delay_us;
	window_us = window_us > SPAN_MAX ? SPAN_MAX : window_us;
	auto_allow_us = auto_allow_us > SPAN_MAX ? SPAN_MAX : auto_allow_us;
	if (st->be == BE_LMDB) {
		memset(&op, 0, sizeof(op));
		op.fn = lop_greylist;
		op.now = now_us;
		op.key = triplet_key;
		op.key2 = net_key;
		op.delay = delay_us;
		op.window = window_us;
		op.allow = auto_allow_us;
		res = lmdb_run(st, &op, err, errlen);
		if (res == MW_STORE_LIMITED && retry_after_us != NULL)
			*retry_after_us = op.retry;
		return res;
	}
	if ((k2 = rkey(K_TRIPLET, triplet_key, &l2)) == NULL ||
	    (k1 = rkey(K_NET, net_key != NULL ? net_key : "", &l1)) == NULL) {
		free(k2);
		seterr(err, errlen, "redis: out of memory");
		return MW_STORE_ERROR;
	}
	memset(&call, 0, sizeof(call));
	call.script = 1;
	call.nkeys = 2;
	rarg(&call, k1, l1);
	rarg(&call, k2, l2);
	rnum(&call, nb[0], sizeof(nb[0]), now_us);
	rnum(&call, nb[1], sizeof(nb[1]), delay_us);
	rnum(&call, nb[2], sizeof(nb[2]), window_us);
	rnum(&call, nb[3], sizeof(nb[3]), auto_allow_us);
	rarg(&call, net_key != NULL ? "1" : "0", 1);
	res = redis_decide(st, &call, retry_after_us, err, errlen);
	free(k1);
	free(k2);
	return res;
}

enum mw_store_res
mw_store_greylist_delivered(struct mw_store *st, const char *net_key,
    uint64_t now_us, uint64_t auto_allow_us, char *err, size_t errlen)
{
	struct lop op;
	struct rcall call;
	char nb[2][24], *k;
	size_t klen;
	enum mw_store_res res;

	auto_allow_us = auto_allow_us > SPAN_MAX ? SPAN_MAX : auto_allow_us;
	if (st->be == BE_LMDB) {
		memset(&op, 0, sizeof(op));
		op.fn = lop_delivered;
		op.now = now_us;
		op.key2 = net_key;
		op.allow = auto_allow_us;
		return lmdb_run(st, &op, err, errlen);
	}
	if ((k = rkey(K_NET, net_key, &klen)) == NULL) {
		seterr(err, errlen, "redis: out of memory");
		return MW_STORE_ERROR;
	}
	memset(&call, 0, sizeof(call));
	call.script = 2;
	call.nkeys = 1;
	rarg(&call, k, klen);
	rnum(&call, nb[0], sizeof(nb[0]), now_us);
	rnum(&call, nb[1], sizeof(nb[1]), auto_allow_us);
	res = redis_decide(st, &call, NULL, err, errlen);
	free(k);
	return res;
}

int
mw_store_purge(struct mw_store *st, uint64_t now_us, size_t *purged, char *err,
    size_t errlen)
{
	size_t n = 0;
	int rc;

	if (purged != NULL)
		*purged = 0;
	if (st->be != BE_LMDB)
		return 0;
	pthread_mutex_lock(&st->lock);
	rc = sweep(st, now_us, &n);
	pthread_mutex_unlock(&st->lock);
	if (purged != NULL)
		*purged = n;
	if (rc != 0) {
		seterr(err, errlen, "lmdb: %s: purge: %s", st->path,
		    mdb_strerror(rc));
		return -1;
	}
	sync_maybe(st);
	return 0;
}

int
mw_store_entries(struct mw_store *st, size_t *entries, char *err, size_t errlen)
{
	struct rcall call;
	redisReply *rep;
	MDB_stat ms;
	int rc;

	*entries = 0;
	if (st->be == BE_LMDB) {
		pthread_mutex_lock(&st->lock);
		rc = mdb_env_stat(st->env, &ms);
		pthread_mutex_unlock(&st->lock);
		if (rc != 0) {
			seterr(err, errlen, "lmdb: %s: %s", st->path,
			    mdb_strerror(rc));
			return -1;
		}
		/* Less the format marker. */
		*entries = ms.ms_entries > 0 ? ms.ms_entries - 1 : 0;
		return 0;
	}
	memset(&call, 0, sizeof(call));
	call.script = -1;
	rarg(&call, "DBSIZE", 6);
	if ((rep = redis_run(st, &call, err, errlen)) == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER || rep->integer < 0) {
		seterr(err, errlen, "redis: %s: unexpected DBSIZE reply",
		    st->where);
		freeReplyObject(rep);
		return -1;
	}
	*entries = (size_t)rep->integer;
	freeReplyObject(rep);
	return 0;
}
