/*
 * mw_dnsbl -- DNS blocklist lookups: all of one message's at once,
 * bounded in time, cached with their TTL.
 *
 * A blocklist handle (struct mw_dnsbl) is made once per configuration and
 * shared by every thread: it holds a reference to the resolver of
 * dns_servers (struct mw_dns: servers and per-query timeout) and a cache
 * of answers.  mw_dnsbl_run takes the lookups a message needs -- IP
 * addresses in DNSBL zones, domain names in RHSBL zones (RFC 5782) --
 * answers what it can from the cache, sends every other query at once and
 * waits for the answers together, never longer than the resolver's
 * per-query timeout nor the caller's budget.  A lookup that gets no usable
 * answer in time (timeout, SERVFAIL, REFUSED, an answer outside
 * 127.0.0.0/8, an invalid name) is MW_DNSBL_NO_ANSWER: it is reported,
 * never waited for longer, and never cached.
 *
 * Nothing here logs.
 */
#ifndef MW_DNSBL_H
#define MW_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mw_dns;
struct mw_dnsbl;

#define MW_DNSBL_MAX_CODES 8       /* return codes kept per lookup */
#define MW_DNSBL_MAX_CACHE 1000000 /* cache entries */
#define MW_DNSBL_NAME_MAX  254     /* query name buffer: 253 + NUL */
#define MW_DNSBL_MIN_TTL   30      /* default cache lifetime bounds, s */
#define MW_DNSBL_MAX_TTL   3600

enum mw_dnsbl_state {
	MW_DNSBL_LISTED,     /* A records in 127.0.0.0/8: codes[] */
	MW_DNSBL_NOT_LISTED, /* NXDOMAIN, or no A record */
	MW_DNSBL_NO_ANSWER,  /* no usable answer: see why */
};

/*
 * One lookup.  The caller fills in zone, subject and is_ip (the other
 * fields may hold anything); mw_dnsbl_run fills in the rest.
 */
struct mw_dnsbl_q {
	const char *zone;    /* "zen.example.test" */
	const char *subject; /* "192.0.2.1", "2001:db8::1", "example.com" */
	bool is_ip;          /* subject is an IP address (DNSBL), not a
				domain name (RHSBL) */
	/* Results. */
	enum mw_dnsbl_state state;
	uint32_t codes[MW_DNSBL_MAX_CODES]; /* MW_DNSBL_LISTED: the distinct
					       A records, host order, in
					       answer order (0x7f000002) */
	size_t ncodes;   /* 0 unless listed; more than MW_DNSBL_MAX_CODES
			    distinct records keep the first ones */
	bool from_cache; /* answered from the cache, no query sent */
	bool bad_name;   /* subject or zone is not a valid name: no query
			    was sent (state is MW_DNSBL_NO_ANSWER) */
	const char *why; /* MW_DNSBL_NO_ANSWER: a static English reason,
			    e.g. "timeout", "budget exhausted", "server
			    failure"; NULL otherwise */
};

/* Counters since mw_dnsbl_new, for logs and tests. */
struct mw_dnsbl_stats {
	unsigned long long lookups;  /* mw_dnsbl_q handled */
	unsigned long long hits;     /* answered from the cache */
	unsigned long long sent;     /* queries sent (duplicates once) */
	unsigned long long answered; /* of those, with a usable answer */
	unsigned long long bad;      /* refused as invalid names */
	size_t entries;              /* in the cache now */
};

/*
 * mw_dnsbl_new -- make a blocklist handle that queries the servers of dns
 * with its per-query timeout, and caches up to cache_entries answers (0:
 * no cache; at most MW_DNSBL_MAX_CACHE; the least recently used answer
 * goes first when full).
 *
 * The handle takes its own reference to dns (mw_dns_ref): the caller may
 * free its own at any time.  Returns the handle, or NULL with the reason
 * in err (which may be NULL).  Thread-safe.
 */
struct mw_dnsbl *mw_dnsbl_new(const struct mw_dns *dns, size_t cache_entries,
    char *err, size_t errlen);

/*
 * mw_dnsbl_free -- free the handle, its cache and its reference to the
 * resolver.  NULL is accepted.  No mw_dnsbl_run may be running on it.
 */
void mw_dnsbl_free(struct mw_dnsbl *b);

/*
 * mw_dnsbl_set_ttl -- bound how long an answer stays cached: its TTL
 * (for a negative answer the lower of the SOA's TTL and MINIMUM, RFC
 * 2308; min_s when the answer carries no SOA) raised to at least min_s
 * and cut to at most max_s seconds (max_s below min_s counts as min_s).
 * A result of 0 means "not cached".  Defaults MW_DNSBL_MIN_TTL and
 * MW_DNSBL_MAX_TTL.  Applies to answers cached from now on.  Thread-safe.
 */
void mw_dnsbl_set_ttl(struct mw_dnsbl *b, unsigned min_s, unsigned max_s);

/*
 * mw_dnsbl_run -- resolve the lookups qs[0 .. n-1] together.
 *
 * Every lookup not in the cache is sent before any answer is awaited;
 * lookups with the same query name are sent once.  The call returns
 * when every query has its answer, or after the resolver's per-query
 * timeout, or after budget_ms, whichever comes first: lookups still
 * unanswered then are MW_DNSBL_NO_ANSWER ("timeout" or "budget
 * exhausted").  budget_ms 0 answers from the cache only.  Positive and
 * negative answers are cached (mw_dnsbl_set_ttl); no-answers are not.
 *
 * The caller bounds n (every query is sent).  Returns true when every
 * lookup has its result; false only on internal failure (out of memory),
 * with every lookup MW_DNSBL_NO_ANSWER.  Blocks the calling thread for at
 * most min(budget_ms, timeout) plus the time to process the answers.
 * Thread-safe: the cache is shared under a mutex never held while
 * waiting for the network.
 */
bool mw_dnsbl_run(struct mw_dnsbl *b, struct mw_dnsbl_q *qs, size_t n,
    unsigned budget_ms);

/*
 * mw_dnsbl_qname -- the query name of a lookup, in lower case without a
 * final dot, written to out (size bytes, MW_DNSBL_NAME_MAX is enough):
 *
 *   "127.0.0.2", true,  "bl.test"  ->  "2.0.0.127.bl.test"
 *   "2001:db8::1", true, "bl.test" ->  "1.0.0.0.[...].8.b.d.0.1.0.0.2.bl.test"
 *   "Spammer.Example", false, "bl.test" -> "spammer.example.bl.test"
 *
 * An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is looked up as the IPv4
 * address.  IP subjects must be plain literals (no brackets, no "IPv6:"
 * prefix, no scope); names and the zone must be host names (labels of 1
 * to 63 letters, digits, '-' or '_', not starting or ending with '-', one
 * final dot allowed, at most 253 characters in all).  Returns false for
 * anything else, or when the name does not fit out: never a partial name.
 */
bool mw_dnsbl_qname(const char *subject, bool is_ip, const char *zone,
    char *out, size_t size);

/* mw_dnsbl_stats -- the counters, consistent with one another. */
void mw_dnsbl_stats(struct mw_dnsbl *b, struct mw_dnsbl_stats *out);

#endif
