/*
 * mw_strset -- hash sets of strings, and domain sets built on them.
 *
 * The rules language's "in LIST" conditions on names (HELO, sender and
 * recipient domains, header values) use these sets.  A lookup costs one
 * hash of the key and a short probe, whatever the size of the list; a
 * domain lookup costs one such lookup per label of the name.  The hash is
 * SipHash-1-3 keyed per set from getrandom(2), so a hostile list cannot be
 * crafted to collide and turn lookups into scans.
 *
 * Life cycle: build with _new and _add (one thread), then share: once no
 * more entries are added, any number of threads may call _contains at
 * once without locking.  Adding while another thread looks up is a bug.
 */
#ifndef MW_STRSET_H
#define MW_STRSET_H

#include <stdbool.h>
#include <stddef.h>

/* The longest domain name in text form, without the trailing dot. */
#define MW_DOMAIN_MAX 253

struct mw_strset;

/*
 * mw_strset_new -- an empty set.  With nocase, ASCII letters match
 * regardless of case (bytes >= 0x80 always match exactly) and the set
 * stores its members lower-cased.  Returns NULL when out of memory or when
 * no random hash key can be had.  The caller owns the set.
 */
struct mw_strset *mw_strset_new(bool nocase);

/*
 * mw_strset_add -- add the len bytes at s (any bytes, NUL included; the
 * set keeps its own copy in one arena, not one allocation per member).
 * Adding a member already present is fine and stores nothing.  Returns
 * false when out of memory or when the set would pass its limits (4 GiB of
 * member bytes, 2^30 members); the set is then unchanged.
 */
bool mw_strset_add(struct mw_strset *set, const char *s, size_t len);

/*
 * mw_strset_contains -- whether the len bytes at s are a member.  Never
 * allocates, never fails; thread-safe once adding has stopped.
 */
bool mw_strset_contains(const struct mw_strset *set, const char *s, size_t len);

/* mw_strset_count -- the number of distinct members. */
size_t mw_strset_count(const struct mw_strset *set);

/* mw_strset_free -- release the set and its members.  NULL is fine. */
void mw_strset_free(struct mw_strset *set);

struct mw_domset;

/*
 * mw_domset_new -- an empty domain set.  Returns NULL as mw_strset_new
 * does.  The caller owns the set.
 */
struct mw_domset *mw_domset_new(void);

/*
 * mw_domset_add -- add the NUL-terminated domain, which then matches
 * itself and every name below it.
 *
 * The entry is normalised: ASCII lower case, one trailing dot dropped, and
 * a leading "." or "*." means the same as the bare domain (lists written
 * for Postfix or for wildcard matching both work).  The rest must be a
 * syntactically valid name: labels of 1 to 63 letters, digits, hyphens or
 * underscores (underscores occur in real SRV and DKIM names), at most 253
 * bytes in all.  Internationalised names must be written as xn-- A-labels.
 * A bare dotted-quad is refused: it would only ever match itself as a
 * name, so it is nearly always an address put in the wrong list.  An
 * address literal, "[192.0.2.1]" or "[IPv6:2001:db8::1]" (any form
 * mw_ip_parse accepts in brackets), is allowed and matches only the same
 * address written as a literal, in any equivalent form.
 *
 * Returns true when added (or already present).  On false, *why (when why
 * is not NULL) points to a static sentence fragment for a
 * "file:line:col: message" diagnostic and the set is unchanged.
 */
bool mw_domset_add(struct mw_domset *set, const char *domain, const char **why);

/*
 * mw_domset_contains -- whether the NUL-terminated domain is an entry or
 * lies below one: "a.b.example.com" is tried as itself, then
 * "b.example.com", "example.com" and "com".  ASCII case is ignored, as is
 * one trailing dot; "badexample.com" is not below "example.com".  A name
 * in brackets is looked up as an address literal only.  The name is
 * untrusted and may be of any length: suffixes longer than MW_DOMAIN_MAX
 * are skipped without hashing, so the work stays bounded.  Never
 * allocates, never fails; thread-safe once adding has stopped.
 */
bool mw_domset_contains(const struct mw_domset *set, const char *domain);

/* mw_domset_count -- the number of distinct (normalised) entries. */
size_t mw_domset_count(const struct mw_domset *set);

/* mw_domset_free -- release the set.  NULL is fine. */
void mw_domset_free(struct mw_domset *set);

#endif
