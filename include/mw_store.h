/*
 * mw_store -- shared state for rate limits and greylisting.
 *
 * Two back ends behind one interface:
 *
 *   lmdb:/var/lib/milter-warden/state.mdb
 *	An embedded LMDB file (one data file plus PATH-lock).  The default: no
 *	server, survives restarts and reloads, bounded by max_bytes, expired
 *	entries purged as the store is written.  When it is full of live
 *	entries, calls that would add an entry fail ("lmdb: ...: store
 *	full"); calls on existing keys go on working.
 *
 *   redis:HOST:PORT[/DB]    redis:[V6ADDR]:PORT[/DB]
 *   redis:unix:/PATH/TO/SOCKET[/DB]
 *	A redis-server shared by several milter-warden instances.  Every
 *	check-and-update is one Lua script run atomically on the server, and
 *	every key carries its own expiry.  A trailing "/DIGITS" is taken as
 *	the database number, so a socket path cannot end that way.  HOST
 *	should be an address (or a name in /etc/hosts): name resolution is
 *	not bounded by the timeout.
 *
 * Time.  Every operation takes the current time from its caller as
 * microseconds since the epoch (now_us), so tests control the clock.
 * Instances sharing one Redis compare times from their own clocks: keep
 * them in sync (NTP); a skew of s shifts every limit by at most s.
 *
 * Results.  Operations return MW_STORE_OK (allowed), MW_STORE_LIMITED
 * (refused; *retry_after_us says when to try again) or MW_STORE_ERROR
 * (err holds a message starting "lmdb: " or "redis: ").  The store never
 * decides what an error means for mail: the engine maps it to the
 * configured fail-open or fail-closed choice.  No Redis call blocks longer
 * than the timeout given to mw_store_get; an LMDB call costs one write
 * transaction (about 10 µs), plus a full purge at most once a second when
 * the file is nearly full.
 *
 * Threads.  A store may be used by any number of threads at once.  LMDB
 * writes are serialised by a mutex; Redis calls take a connection from a
 * per-store pool (libmilter runs one short-lived thread per MTA
 * connection, so per-thread connections would mean one new TCP connection
 * per SMTP session).  The process must ignore SIGPIPE (libmilter's
 * smfi_main does): hiredis writes with write(2).
 *
 * Processes.  Get stores after any fork(): an LMDB environment must not
 * cross a fork, and a Redis connection would be shared by two processes.
 */
#ifndef MW_STORE_H
#define MW_STORE_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mw_store_res {
	MW_STORE_ERROR = -1, /* err says why; nothing was decided */
	MW_STORE_OK = 0,     /* allowed (and, for a rate, counted) */
	MW_STORE_LIMITED = 1 /* refused; *retry_after_us is set */
};

struct mw_store;

/*
 * mw_store_get -- the store named by spec, opened on first use.
 *
 * Stores are shared by spec in a process-wide registry and refcounted: a
 * reload that gets the same spec again receives the same store (LMDB
 * forbids opening one environment twice in a process), and only the last
 * mw_store_put closes it.  An LMDB path is also matched by device and
 * inode, so two spellings of one file share a store.
 *
 * max_bytes bounds an LMDB file (the map size, at least 256 KiB; 1/16 of
 * it is kept in reserve so expired entries can always be purged); a later
 * get with a larger value grows it.  timeout_ms bounds every Redis call,
 * connection included (at least 1).  Each argument is ignored by the
 * other back end.
 *
 * Returns the store, or NULL with a message in err (bad spec, LMDB file
 * not openable).  A Redis store is returned even when the server is down:
 * calls fail until it comes back, with no need to get the store again.
 * Thread-safe.
 */
struct mw_store *mw_store_get(const char *spec, size_t max_bytes,
    unsigned timeout_ms, char *err, size_t errlen);

/*
 * mw_store_put -- release a reference; the last one syncs and closes the
 * store (LMDB) or its connections (Redis).  NULL is fine.  No call on the
 * store may be in progress or follow.  Thread-safe.
 */
void mw_store_put(struct mw_store *st);

/* mw_store_spec -- the spec the store was opened with (for logs). */
const char *mw_store_spec(const struct mw_store *st);

/*
 * mw_store_chown -- give the LMDB data and lock files to uid:gid, for a
 * daemon that opens its store as root and then drops privileges.  A no-op
 * for Redis.  Returns 0, or -1 with a message in err.
 */
int mw_store_chown(struct mw_store *st, uid_t uid, gid_t gid, char *err,
    size_t errlen);

/*
 * mw_store_rate -- check a rate limit for key and, when allowed, count
 * cost units against it, atomically.
 *
 * Semantics: GCRA (the generic cell rate algorithm, a leaky bucket kept
 * as one timestamp per key).  The emission interval T = period_us / max
 * (rounded up to a whole microsecond) is the time one unit takes to drain;
 * the tolerance burst * T is the depth of the bucket.  The key keeps a
 * theoretical arrival time TAT (initially: now).  A call of cost n is
 * allowed when
 *	max(TAT, now) + n * T <= now + burst * T
 * and then sets TAT to max(TAT, now) + n * T.  So an idle key accepts
 * burst units at once and then one more every T; over any interval of
 * length L at most burst + L / T units pass.  Unlike fixed windows there is
 * no boundary at which a second full burst becomes available: a sender
 * who used the burst waits for it to drain, whenever the clock says a new
 * "hour" starts.  burst 0 means burst = max (max units in one go, then the
 * steady rate).  A cost larger than the burst can never fit; it is allowed
 * only when the bucket is empty (TAT <= now), and then fills it for cost*T.
 *
 * count_refused: when set, a refused call advances TAT as well (capped at
 * now + burst * T + period_us), so a client that keeps hammering stays
 * limited until about one period after its last attempt.  When clear, a
 * refused call changes nothing.
 *
 * Messages use cost 1, recipients cost n, bytes cost = size.  On
 * MW_STORE_LIMITED, *retry_after_us (may be NULL) is the time from now
 * after which the same call would be allowed (at least 1).  On
 * MW_STORE_OK it is 0.  Keys expire by themselves at their TAT.  key is
 * any NUL-terminated string (long keys are fine; LMDB stores those over
 * its key limit as a prefix plus a SHA-256 of the whole key).
 *
 * MW_STORE_ERROR for max or period_us of 0, and when the store fails.
 */
enum mw_store_res mw_store_rate(struct mw_store *st, const char *key,
    uint64_t now_us, uint64_t period_us, uint64_t max, uint64_t burst,
    uint64_t cost, bool count_refused, uint64_t *retry_after_us, char *err,
    size_t errlen);

/*
 * mw_store_greylist -- greylisting of one delivery attempt.
 *
 * triplet_key names the (client network, sender, recipient) triplet and
 * net_key the client network (NULL: no auto-allow check).  In order:
 *  - the network is auto-allowed (see mw_store_greylist_delivered) until
 *    after now: MW_STORE_OK;
 *  - the triplet has passed before and that was less than auto_allow_us
 *    ago: MW_STORE_OK, and it stays passed for auto_allow_us from now;
 *  - the triplet is unknown, or was first seen more than
 *    delay_us + window_us ago without a retry in its window: it is
 *    recorded as first seen now; MW_STORE_LIMITED, retry after delay_us;
 *  - first seen less than delay_us ago: MW_STORE_LIMITED, retry after the
 *    rest of the delay (the first-seen time is not moved);
 *  - first seen between delay_us and delay_us + window_us ago (the retry
 *    window opens when the delay ends): MW_STORE_OK, and the triplet is
 *    remembered as passed for auto_allow_us.
 * *retry_after_us (may be NULL) is 0 on MW_STORE_OK.  delay_us of 0 lets
 * every first attempt pass.
 */
enum mw_store_res mw_store_greylist(struct mw_store *st,
    const char *triplet_key, const char *net_key, uint64_t now_us,
    uint64_t delay_us, uint64_t window_us, uint64_t auto_allow_us,
    uint64_t *retry_after_us, char *err, size_t errlen);

/*
 * mw_store_greylist_delivered -- a message from net_key was delivered:
 * auto-allow that client network until now + auto_allow_us (an existing
 * later allowance is kept).  MW_STORE_OK or MW_STORE_ERROR.
 */
enum mw_store_res mw_store_greylist_delivered(struct mw_store *st,
    const char *net_key, uint64_t now_us, uint64_t auto_allow_us, char *err,
    size_t errlen);

/*
 * mw_store_purge -- delete every entry expired at now_us (LMDB; writes
 * also purge a few entries each, so calling this is optional).  Sets
 * *purged (may be NULL) to the number deleted.  A no-op for Redis, whose
 * keys expire by themselves.  Returns 0, or -1 with a message in err.
 */
int mw_store_purge(struct mw_store *st, uint64_t now_us, size_t *purged,
    char *err, size_t errlen);

/*
 * mw_store_entries -- the number of entries (LMDB: records, expired ones
 * not yet purged included; Redis: DBSIZE of the database, keys of other
 * users included).  Returns 0, or -1 with a message in err.
 */
int mw_store_entries(struct mw_store *st, size_t *entries, char *err,
    size_t errlen);

#endif /* MW_STORE_H */
