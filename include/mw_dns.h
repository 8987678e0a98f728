/*
 * mw_dns -- a small, bounded DNS resolver over c-ares.
 *
 * Two kinds of callers use it.  libopendkim looks up DKIM keys through
 * the hooks installed by mw_dns_attach, so key queries go to the
 * configured servers and can never hang a libmilter thread longer than the
 * configured timeout.  The rest of milter-warden (the -n key check, later
 * the DNS blocklists) calls mw_dns_txt and mw_dns_a directly.
 *
 * A resolver (struct mw_dns) holds only the parsed server list and the
 * timeout: it is immutable once made, reference counted, and any number of
 * threads may query through it at once without locking.  Every query gets
 * its own c-ares channel, created when the query starts and destroyed when
 * it ends, so queries share no mutable state and one slow query never
 * delays another.  The number of queries in flight per resolver is capped
 * (MW_DNS_MAX_INFLIGHT); a query over the cap fails as a temporary error
 * instead of opening yet more sockets.
 *
 * Nothing here logs; errors are returned as English text in the caller's
 * err buffer (which may be NULL), without a trailing newline.
 */
#ifndef MW_DNS_H
#define MW_DNS_H

#include <netinet/in.h>
#include <stddef.h>

struct dkim_lib; /* libopendkim's DKIM_LIB */
struct mw_dns;

/*
 * Results of mw_dns_txt and mw_dns_a.
 *
 * MW_DNS_FOUND     records found and returned.
 * MW_DNS_NOTFOUND  NXDOMAIN, or the name has no record of that type.
 * MW_DNS_TEMPFAIL  try again later: timeout, SERVFAIL or REFUSED, network
 *                  error, malformed answer, out of memory, too many
 *                  queries in flight.
 * MW_DNS_ERROR     permanent: the answer does not fit the caller's buffer,
 *                  several TXT records where one was expected, a TXT
 *                  record with a NUL byte, an invalid query name.
 */
#define MW_DNS_FOUND    0
#define MW_DNS_NOTFOUND 1
#define MW_DNS_TEMPFAIL 2
#define MW_DNS_ERROR    3

/* Limits. */
#define MW_DNS_MAX_SERVERS  16     /* entries in a server list */
#define MW_DNS_MAX_INFLIGHT 512    /* queries at once per resolver */
#define MW_DNS_MAX_TIMEOUT  600000 /* ms */

/*
 * mw_dns_new -- make a resolver.
 *
 * servers is a list of name servers separated by blanks and/or commas,
 * each "IPV4", "IPV4:PORT", "IPV6", "[IPV6]" or "[IPV6]:PORT" (port 1 to
 * 65535, default 53).  NULL or a blank string means the servers of
 * /etc/resolv.conf, read now (a new resolver re-reads it, e.g. on reload);
 * its other settings (search, ndots, timeout, attempts) are ignored because
 * only fully qualified names are looked up, with our own timeout.
 *
 * timeout_ms (1 to MW_DNS_MAX_TIMEOUT) bounds each query from start to
 * answer, whatever the number of servers and retransmissions: c-ares
 * retries within that time (each server about twice), and the query
 * fails as a timeout when it is over.
 *
 * Returns the resolver with one reference owned by the caller, or NULL
 * with the reason in err, e.g. "dns_servers: '1.2.3.x': not an IP
 * address".  Thread-safe.
 */
struct mw_dns *mw_dns_new(const char *servers, unsigned timeout_ms, char *err,
    size_t errlen);

/*
 * mw_dns_free -- drop the caller's reference.  The resolver is freed when
 * the last reference goes (the caller's and those held by DKIM library
 * handles it is attached to).  NULL is accepted.  Must not be called while
 * the same reference is still used for a query.
 */
void mw_dns_free(struct mw_dns *r);

/*
 * mw_dns_servers -- the server list in canonical form, for logs and -n,
 * e.g. "127.0.0.1:5353 [::1]:53".  Valid as long as the resolver.
 */
const char *mw_dns_servers(const struct mw_dns *r);

/* mw_dns_timeout -- the per-query timeout in milliseconds. */
unsigned mw_dns_timeout(const struct mw_dns *r);

/*
 * mw_dns_ref -- take one more reference to r, for a module that keeps
 * using the resolver (the DNS blocklists do); released by mw_dns_free.
 * Thread-safe.
 */
struct mw_dns *mw_dns_ref(const struct mw_dns *r);

/*
 * mw_dns_ares_servers -- the server list as c-ares takes it (for
 * ares_set_servers_ports, which copies it): *n entries, linked by their
 * next pointers.  Valid as long as the resolver; never to be modified.
 * For modules that drive c-ares themselves (the DNS blocklists).
 */
struct ares_addr_port_node;
const struct ares_addr_port_node *mw_dns_ares_servers(const struct mw_dns *r,
    size_t *n);

/*
 * mw_dns_attach -- make libopendkim do its DNS queries (DKIM keys, ATPS)
 * through r.
 *
 * Call it once, right after dkim_init and before the library handle is
 * used by any thread.  Any resolver libopendkim already started on the
 * handle (its default libc resolver) is shut down first, so nothing leaks.
 * The handle takes its own reference to r, released by dkim_close; the
 * caller may mw_dns_free its reference at once.  After this call
 * dkim_dns_init, dkim_dns_nslist, dkim_dns_config and dkim_dns_trustanchor
 * on the handle fail: the servers are fixed by r (make a new library handle
 * with a new resolver to change them).  dkim_close must not run while
 * another thread still uses the handle (true of dkim_close anyway).
 *
 * libopendkim waits at most its own DKIM_OPTS_TIMEOUT (10 s by default)
 * and we at most r's timeout, whichever is shorter; a timed-out or failed
 * key query makes libopendkim report DKIM_SIGERROR_KEYFAIL (a temperror),
 * NXDOMAIN or no TXT record DKIM_SIGERROR_NOKEY (a permerror).
 *
 * Returns 0, or -1 with the reason in err (arguments NULL).
 */
int mw_dns_attach(struct dkim_lib *lib, struct mw_dns *r, char *err,
    size_t errlen);

/*
 * mw_dns_txt -- look up the TXT record of a fully qualified name.
 *
 * The strings of the record are concatenated (a DKIM RSA-2048 key comes as
 * two or more strings of at most 255 bytes) and written to out as a C
 * string.  Exactly one TXT record is expected, as for a DKIM key: several
 * records are MW_DNS_ERROR.  A record of n bytes needs outlen > n; a
 * longer record is MW_DNS_ERROR, never cut short.  A CNAME in the answer
 * is followed (the resolver's answer carries the target's records).
 *
 * *ttl (when ttl is not NULL) receives the lowest TTL of the records used
 * for MW_DNS_FOUND, the negative-caching TTL of the zone (from the SOA in
 * the answer, else 0) for MW_DNS_NOTFOUND, and 0 otherwise.
 *
 * Returns MW_DNS_FOUND, MW_DNS_NOTFOUND, MW_DNS_TEMPFAIL or MW_DNS_ERROR;
 * for all but MW_DNS_FOUND, err says why and out is "" (when outlen > 0).
 * Blocks the calling thread for at most the resolver's timeout (plus the
 * time to process the answer).  Thread-safe.
 */
int mw_dns_txt(const struct mw_dns *r, const char *name, char *out,
    size_t outlen, unsigned *ttl, char *err, size_t errlen);

/*
 * mw_dns_a -- look up the IPv4 addresses of a fully qualified name, as
 * for a DNS blocklist ("2.0.0.127.zen.example" -> 127.0.0.2).
 *
 * All A records of the answer are stored in out[0 .. *n - 1], in answer
 * order, whatever their value: filtering 127.0.0.0/8 codes is the caller's
 * business.  More than max records is MW_DNS_ERROR (never a silently
 * shortened list).  *ttl as for mw_dns_txt.  Same return values, blocking
 * and thread-safety as mw_dns_txt; *n is 0 unless MW_DNS_FOUND.
 */
int mw_dns_a(const struct mw_dns *r, const char *name, struct in_addr *out,
    size_t max, size_t *n, unsigned *ttl, char *err, size_t errlen);

#endif
