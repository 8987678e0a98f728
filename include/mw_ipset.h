/*
 * mw_ipset -- IP addresses as the MTA writes them, and sets of networks.
 *
 * The rules language's "in LIST" conditions on the client address use an
 * IP set: a list of addresses and CIDR networks, loaded once, then
 * consulted on every connection.  Entries are kept as sorted, merged
 * ranges (IPv4 and IPv6 in separate arrays), so a lookup is a binary search
 * whose cost grows with log2 of the number of ranges, never with a scan.
 *
 * Life cycle: mw_ipset_new, any number of mw_ipset_add, one mw_ipset_finish;
 * after that the set is immutable and any number of threads may call
 * mw_ipset_contains on it at once without locking.  Adding and finishing
 * are not thread-safe: the loader owns the set until it is finished.
 */
#ifndef MW_IPSET_H
#define MW_IPSET_H

#include <stdbool.h>
#include <stddef.h>

/*
 * An address in network byte order.  For AF_INET only a[0..3] is used and
 * a[4..15] is zero, so two parsed addresses compare equal with memcmp.
 */
struct mw_ip {
	int family; /* AF_INET or AF_INET6 */
	unsigned char a[16];
};

/*
 * mw_ip_parse -- parse an address as Postfix or Sendmail hand it over.
 *
 * text is NUL-terminated and is one of: a dotted-quad IPv4 address
 * ("192.0.2.1"); an IPv6 address in any inet_pton form ("2001:db8::1",
 * "::ffff:192.0.2.1"); either of those in brackets ("[::1]"); an IPv6
 * address with Sendmail's "IPv6:" tag (any case), bare or in brackets
 * ("IPv6:2001:db8::1", "[IPv6:2001:db8::1]").  An IPv4-mapped IPv6 address
 * (::ffff:0:0/96) is returned as the IPv4 address it carries, because a
 * dual-stack listener reports IPv4 clients that way and policy is written
 * for the IPv4 address.  Nothing else is accepted: no surrounding blanks,
 * no zone index ("%eth0"), no prefix length, no abbreviated IPv4 forms.
 *
 * Returns true and fills *out, or false (with *out zeroed) when text is
 * not an address.  Reentrant; text and out belong to the caller.
 */
bool mw_ip_parse(const char *text, struct mw_ip *out);

struct mw_ipset;

/*
 * mw_ipset_new -- an empty set, ready for mw_ipset_add.  Returns NULL when
 * out of memory.  The caller owns the set and frees it with mw_ipset_free.
 */
struct mw_ipset *mw_ipset_new(void);

/*
 * mw_ipset_add -- add one entry, "ADDR" or "ADDR/PREFIX", to an unfinished
 * set.  ADDR is anything mw_ip_parse accepts; PREFIX is 1 to 3 decimal
 * digits, at most 32 for IPv4 and 128 for IPv6.  A bare ADDR means /32 or
 * /128.  An IPv4-mapped network is taken as the IPv4 network it denotes
 * ("::ffff:192.0.2.0/120" is 192.0.2.0/24), so it must have a prefix of at
 * least 96.
 *
 * Host bits set after the prefix ("192.0.2.1/24") are an error, not masked
 * away as Postfix does: in a hand-written list they are nearly always a
 * typo in the address or in the prefix, and guessing which would silently
 * widen or narrow the policy.  The entry must be exactly the text of the
 * address: the caller strips blanks and comments.
 *
 * Returns true when the entry was added.  On false, *why (when why is not
 * NULL) points to a static English sentence fragment saying what is wrong,
 * suitable for a "file:line:col: message" diagnostic; the set is unchanged
 * and still usable.  Overlapping and duplicate entries are fine.
 */
bool mw_ipset_add(struct mw_ipset *set, const char *entry, const char **why);

/*
 * mw_ipset_finish -- sort the entries and merge overlapping and adjacent
 * ranges.  After this the set is immutable: mw_ipset_add must not be
 * called again, and mw_ipset_contains may be called from many threads.
 * Calling it twice is harmless.  Returns true; the result exists so that a
 * loader checks it like every other load step, and a false return (an
 * implementation that needs scratch memory) must fail the load.
 */
bool mw_ipset_finish(struct mw_ipset *set);

/*
 * mw_ipset_contains -- whether ip lies in one of the set's networks.  The
 * set must be finished.  An IPv4 address never matches an IPv6 network and
 * the other way round (mapped addresses are IPv4 after mw_ip_parse).
 * Never allocates, never fails; O(log ranges).
 */
bool mw_ipset_contains(const struct mw_ipset *set, const struct mw_ip *ip);

/*
 * mw_ipset_ranges -- the number of ranges held: after mw_ipset_finish the
 * merged IPv4 plus IPv6 ranges (so two adjacent /25s count as one), before
 * it the entries added so far.
 */
size_t mw_ipset_ranges(const struct mw_ipset *set);

/* mw_ipset_free -- release the set and everything in it.  NULL is fine. */
void mw_ipset_free(struct mw_ipset *set);

#endif
