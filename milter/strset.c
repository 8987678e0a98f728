/*
 * strset.c -- open-addressing string sets and domain sets on top of them.
 *
 * A list in the rules language may hold a million names.  Two things keep
 * that cheap.  The member bytes live in one growing arena, so a million
 * members cost a handful of reallocations instead of a million mallocs and
 * their headers.  The table is an array of 8-byte slots (part of the hash
 * and an arena offset) probed linearly at a load factor of at most 3/4, so
 * a lookup is one hash, one or two cache lines of table and, on a hash
 * match, one read of the arena, whatever the set size.
 *
 * The hash is SipHash-1-3 (the variant Rust and CPython use for their hash
 * tables) under a 128-bit key drawn from getrandom(2) for each set: a list
 * is data that someone else may have written, and with an unkeyed hash
 * such as FNV-1a a crafted list could make every member collide.  For a
 * case-insensitive set the bytes are folded to lower case as they are
 * hashed and compared, so lookups never copy the key.
 *
 * A domain set is a case-insensitive string set of normalised names; a
 * lookup tries the name and then each parent domain in turn.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_ipset.h"
#include "mw_strset.h"

#define STRSET_INITIAL_CAP 16
#define STRSET_MAX_COUNT   ((size_t)1 << 30)
#define STRSET_MAX_ARENA   ((size_t)UINT32_MAX)
/* A member's length is one byte below this, else this byte and 4 bytes. */
#define LEN_LONG 0xff

/*
 * One table slot: 8 bytes, so a million members take 16 MB of table.  The
 * member itself is in the arena at off, as its length (see arena_put)
 * followed by its bytes.  hash is the low half of the SipHash value; a
 * probe only reads the arena when it matches.  off == 0 marks an empty
 * slot: arena byte 0 is never used.
 */
struct slot {
	uint32_t hash;
	uint32_t off;
};

struct mw_strset {
	struct slot *slots;
	size_t cap; /* a power of two */
	size_t count;
	char *arena;
	size_t alen, acap;
	uint64_t k0, k1; /* the SipHash key */
	bool nocase;
};

struct mw_domset {
	struct mw_strset *names;
};

static inline unsigned char
fold(unsigned char c, bool nocase)
{
	return nocase && c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/*
 * ASCII lower case for 8 bytes at once: a byte gets 0x20 added exactly
 * when it is 'A'..'Z'.  Each test works on the low 7 bits of every byte,
 * where the additions cannot carry into the next byte.
 */
static inline uint64_t
fold8(uint64_t x)
{
	uint64_t low7 = x & 0x7f7f7f7f7f7f7f7fULL;
	uint64_t ge_a = low7 + 0x3f3f3f3f3f3f3f3fULL; /* >= 'A' */
	uint64_t gt_z = low7 + 0x2525252525252525ULL; /* >  'Z' */
	uint64_t upper = ~x & (ge_a ^ gt_z) & 0x8080808080808080ULL;

	return x | upper >> 2;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND \
	do { \
		v0 += v1; \
		v1 = ROTL(v1, 13); \
		v1 ^= v0; \
		v0 = ROTL(v0, 32); \
		v2 += v3; \
		v3 = ROTL(v3, 16); \
		v3 ^= v2; \
		v0 += v3; \
		v3 = ROTL(v3, 21); \
		v3 ^= v0; \
		v2 += v1; \
		v1 = ROTL(v1, 17); \
		v1 ^= v2; \
		v2 = ROTL(v2, 32); \
	} while (0)

/*
 * SipHash-1-3 of the len bytes at s under the set's key, the bytes folded
 * to lower case first in a case-insensitive set.  Whole words are loaded
 * in host byte order: the value only has to agree with itself within one
 * process, whose key is random anyway.
 */
static uint64_t
strset_hash(const struct mw_strset *set, const char *s, size_t len)
{
	uint64_t v0 = set->k0 ^ 0x736f6d6570736575ULL;
	uint64_t v1 = set->k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = set->k0 ^ 0x6c7967656e657261ULL;
	uint64_t v3 = set->k1 ^ 0x7465646279746573ULL;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, full = len & ~(size_t)7;

	for (i = 0; i < full; i += 8) {
		memcpy(&m, s + i, 8);
		if (set->nocase)
			m = fold8(m);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	/* The last 0-7 bytes go under the length, little-endian. */
	for (m = 0; i < len; i++)
		m |= (uint64_t)(unsigned char)s[i] << (8 * (i - full));
	b |= set->nocase ? fold8(m) : m;
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The member at arena offset off: its bytes, and its length in *len. */
static const unsigned char *
arena_get(const struct mw_strset *set, uint32_t off, size_t *len)
{
	const unsigned char *m = (const unsigned char *)set->arena + off;
	uint32_t l;

	if (m[0] != LEN_LONG) {
		*len = m[0];
		return m + 1;
	}
	memcpy(&l, m + 1, sizeof(l));
	*len = l;
	return m + 1 + sizeof(l);
}

/* Whether the member in sl is the len bytes at s. */
static bool
slot_equal(const struct mw_strset *set, const struct slot *sl, const char *s,
    size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *m;
	size_t mlen, i;

	m = arena_get(set, sl->off, &mlen);
	if (mlen != len)
		return false;
	if (!set->nocase)
		return memcmp(m, p, len) == 0;
	/* Members of a case-insensitive set are stored folded. */
	for (i = 0; i < len; i++)
		if (m[i] != fold(p[i], true))
			return false;
	return true;
}

/*
 * The slot holding s, or the empty slot where it would go.  The table is
 * never full (load factor <= 3/4), so the probe ends.
 */
static struct slot *
strset_find(const struct mw_strset *set, uint32_t h, const char *s, size_t len)
{
	size_t mask = set->cap - 1, i = h & mask;

	for (;; i = (i + 1) & mask) {
		struct slot *sl = &set->slots[i];

		if (sl->off == 0)
			return sl;
		if (sl->hash == h && slot_equal(set, sl, s, len))
			return sl;
	}
}

/*
 * Double the table, placing every slot again by its stored hash.  Old
 * slot i goes to i or i + cap (or just after, by probing), so both tables
 * are walked nearly in order.
 */
static bool
strset_grow(struct mw_strset *set)
{
	size_t ncap = set->cap * 2, nmask = ncap - 1, i, j;
	struct slot *ns;

	if ((ns = calloc(ncap, sizeof(*ns))) == NULL)
		return false;
	for (i = 0; i < set->cap; i++) {
		if (set->slots[i].off == 0)
			continue;
		for (j = set->slots[i].hash & nmask; ns[j].off != 0;
		     j = (j + 1) & nmask)
			;
		ns[j] = set->slots[i];
	}
	free(set->slots);
	set->slots = ns;
	set->cap = ncap;
	return true;
}

/*
 * Make room for need more arena bytes, doubling.  Returns false when out
 * of memory or past STRSET_MAX_ARENA (offsets are 32 bits).
 */
static bool
arena_reserve(struct mw_strset *set, size_t need)
{
	size_t ncap = set->acap;
	char *na;

	if (need > STRSET_MAX_ARENA - set->alen)
		return false;
	need += set->alen;
	if (need <= set->acap)
		return true;
	while (ncap < need)
		ncap =
		    ncap > STRSET_MAX_ARENA / 2 ? STRSET_MAX_ARENA : ncap * 2;
	if ((na = realloc(set->arena, ncap)) == NULL)
		return false;
	set->arena = na;
	set->acap = ncap;
	return true;
}

static bool
random_key(uint64_t key[2])
{
	unsigned char *p = (unsigned char *)key;
	size_t got = 0;
	ssize_t n;

	while (got < 2 * sizeof(uint64_t)) {
		n = getrandom(p + got, 2 * sizeof(uint64_t) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		got += (size_t)n;
	}
	return true;
}

struct mw_strset *
mw_strset_new(bool nocase)
{
	struct mw_strset *set;
	uint64_t key[2];

	if (!random_key(key))
		return NULL;
	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	set->k0 = key[0];
	set->k1 = key[1];
	set->nocase = nocase;
	set->cap = STRSET_INITIAL_CAP;
	set->acap = 256;
	set->alen = 1; /* offset 0 means "empty slot" */
	set->slots = calloc(set->cap, sizeof(*set->slots));
	set->arena = malloc(set->acap);
	if (set->slots == NULL || set->arena == NULL) {
		mw_strset_free(set);
		return NULL;
	}
	return set;
}

bool
mw_strset_add(struct mw_strset *set, const char *s, size_t len)
{
	uint32_t h = (uint32_t)strset_hash(set, s, len), l32;
	size_t hdr = len < LEN_LONG ? 1 : 1 + sizeof(l32), i;
	unsigned char *m;
	struct slot *sl;

	if ((sl = strset_find(set, h, s, len))->off != 0)
		return true;
	if (set->count >= STRSET_MAX_COUNT || len > STRSET_MAX_ARENA - 8 ||
	    !arena_reserve(set, hdr + len))
		return false;
	/* Keep the load factor at or below 3/4. */
	if ((set->count + 1) * 4 > set->cap * 3) {
		if (!strset_grow(set))
			return false;
		sl = strset_find(set, h, s, len);
	}
	assert(sl->off == 0);

	m = (unsigned char *)set->arena + set->alen;
	if (hdr == 1) {
		m[0] = (unsigned char)len;
	} else {
		m[0] = LEN_LONG;
		l32 = (uint32_t)len;
		memcpy(m + 1, &l32, sizeof(l32));
	}
	for (i = 0; i < len; i++)
		m[hdr + i] = fold((unsigned char)s[i], set->nocase);
	sl->hash = h;
	sl->off = (uint32_t)set->alen;
	set->alen += hdr + len;
	set->count++;
	return true;
}

bool
mw_strset_contains(const struct mw_strset *set, const char *s, size_t len)
{
	uint32_t h = (uint32_t)strset_hash(set, s, len);

	return strset_find(set, h, s, len)->off != 0;
}

size_t
mw_strset_count(const struct mw_strset *set)
{
	return set->count;
}

void
mw_strset_free(struct mw_strset *set)
{
	if (set == NULL)
		return;
	free(set->slots);
	free(set->arena);
	free(set);
}

/*
 * The canonical text of an address literal: "[192.0.2.1]" or
 * "[ipv6:2001:db8::1]", so that equivalent spellings meet in the set.
 * Returns the length, or 0 when text is not a bracketed address.
 */
static size_t
literal_canon(const char *text, char *buf, size_t bufsize)
{
	char addr[INET6_ADDRSTRLEN];
	struct mw_ip ip;
	int n;

	if (text[0] != '[' || !mw_ip_parse(text, &ip))
		return 0;
	if (inet_ntop(ip.family, ip.a, addr, sizeof(addr)) == NULL)
		return 0;
	n = snprintf(buf, bufsize, "[%s%s]",
	    ip.family == AF_INET6 ? "ipv6:" : "", addr);
	if (n < 0 || (size_t)n >= bufsize)
		return 0;
	return (size_t)n;
}

struct mw_domset *
mw_domset_new(void)
{
	struct mw_domset *set;

	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	if ((set->names = mw_strset_new(true)) == NULL) {
		free(set);
		return NULL;
	}
	return set;
}

/*
 * Check the syntax of the len bytes of a name (no leading or trailing dot
 * handling here).  Returns NULL when valid, else what is wrong.
 */
static const char *
domain_check(const char *p, size_t len)
{
	size_t i, label = 0;

	if (len > MW_DOMAIN_MAX)
		return "domain name longer than 253 characters";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '.') {
			if (label == 0)
				return "empty label in domain name";
			label = 0;
			continue;
		}
		if (c >= 0x80)
			return "non-ASCII character in domain name (write "
			       "internationalised names as xn-- A-labels)";
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_'))
			return "invalid character in domain name";
		if (++label > 63)
			return "label longer than 63 characters in domain name";
	}
	if (label == 0)
		return "empty label in domain name";
	return NULL;
}

bool
mw_domset_add(struct mw_domset *set, const char *domain, const char **why)
{
	char buf[MW_DOMAIN_MAX + 1];
	unsigned char a4[4];
	const char *p = domain, *dummy, *err;
	/* "*." + 253 + "." is the longest valid entry: stop counting there. */
	size_t len = strnlen(domain, MW_DOMAIN_MAX + 4), i;

	if (why == NULL)
		why = &dummy;
	if (p[0] == '[') {
		if ((len = literal_canon(p, buf, sizeof(buf))) == 0) {
			*why = "bad address literal";
			return false;
		}
		goto add;
	}
	if (len >= 2 && p[0] == '*' && p[1] == '.') {
		p += 2;
		len -= 2;
	} else if (len >= 1 && p[0] == '.') {
		p++;
		len--;
	}
	if (len > 0 && p[len - 1] == '.')
		len--;
	if (len == 0) {
		*why = "empty domain name";
		return false;
	}
	if ((err = domain_check(p, len)) != NULL) {
		*why = err;
		return false;
	}
	for (i = 0; i < len; i++)
		buf[i] = (char)fold((unsigned char)p[i], true);
	buf[len] = '\0';
	/* A dotted quad ends in a digit; most names need no inet_pton. */
	if (buf[len - 1] >= '0' && buf[len - 1] <= '9' &&
	    inet_pton(AF_INET, buf, a4) == 1) {
		*why = "IPv4 address in a domain list (write an address "
		       "literal such as [192.0.2.1], or use an IP list)";
		return false;
	}
add:
	if (!mw_strset_add(set->names, buf, len)) {
		*why = "out of memory";
		return false;
	}
	return true;
}

bool
mw_domset_contains(const struct mw_domset *set, const char *domain)
{
	char buf[MW_DOMAIN_MAX + 1];
	size_t len = strlen(domain);
	const char *p = domain, *dot;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0)
		return false;
	if (domain[0] == '[') {
		char lit[MW_DOMAIN_MAX + 1];

		if (len >= sizeof(lit))
			return false;
		memcpy(lit, domain, len);
		lit[len] = '\0';
		if ((len = literal_canon(lit, buf, sizeof(buf))) == 0)
			return false;
		return mw_strset_contains(set->names, buf, len);
	}
	/*
	 * Walk the suffixes label by label.  No entry is longer than
	 * MW_DOMAIN_MAX, so longer suffixes are skipped unhashed: that keeps
	 * a hostile name of thousands of labels to at most ~127 lookups.
	 */
	for (;;) {
		/* Only literals begin with '[', and they match whole. */
		if (*p == '[')
			return false;
		if (len <= MW_DOMAIN_MAX &&
		    mw_strset_contains(set->names, p, len))
			return true;
		if ((dot = memchr(p, '.', len)) == NULL)
			return false;
		len -= (size_t)(dot - p) + 1;
		p = dot + 1;
	}
}

size_t
mw_domset_count(const struct mw_domset *set)
{
	return mw_strset_count(set->names);
}

void
mw_domset_free(struct mw_domset *set)
{
	if (set == NULL)
		return;
	mw_strset_free(set->names);
	free(set);
}
