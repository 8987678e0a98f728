/*
 * ipset.c -- address parsing and IP sets as sorted, merged ranges.
 *
 * An IP list in the rules language may hold a million entries, and it is
 * consulted for every connection, so the set is built once and then only
 * read.  Each CIDR entry becomes a [lo, hi] range of integers: uint32 for
 * IPv4, a pair of uint64 for IPv6 (portable, unlike unsigned __int128).
 * mw_ipset_finish sorts the ranges and merges the ones that overlap or
 * touch, which leaves a strictly increasing, disjoint sequence: a binary
 * search for the last range starting at or below the address then answers
 * a lookup in O(log n) with no allocation and no locking.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mw_ipset.h"

/*
 * The longest address text inet_pton can accept is
 * "0000:0000:0000:0000:0000:ffff:255.255.255.255" (45 bytes); anything
 * longer is not an address, so a small stack buffer is enough.
 */
#define IP_TEXT_MAX 64

struct v4range {
	uint32_t lo, hi;
};

struct u128 {
	uint64_t hi, lo;
};

struct v6range {
	struct u128 lo, hi;
};

struct mw_ipset {
	struct v4range *v4;
	size_t n4, cap4;
	struct v6range *v6;
	size_t n6, cap6;
	bool finished;
};

/* The IPv4-mapped prefix ::ffff:0:0/96. */
static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	0xff };

/*
 * Parse as mw_ip_parse does; *v6text tells whether the text was written as
 * IPv6 (so that a prefix length that follows counts from 128, not 32).
 */
static bool
ip_parse(const char *text, struct mw_ip *out, bool *v6text)
{
	char buf[IP_TEXT_MAX];
	unsigned char a6[16];
	const char *p = text;
	size_t len = strnlen(text, IP_TEXT_MAX + 8);
	bool tagged = false;

	memset(out, 0, sizeof(*out));
	*v6text = false;
	if (len >= 2 && p[0] == '[') {
		if (p[len - 1] != ']')
			return false;
		p++;
		len -= 2;
	}
	if (len >= 5 && strncasecmp(p, "IPv6:", 5) == 0) {
		p += 5;
		len -= 5;
		tagged = true;
	}
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, p, len);
	buf[len] = '\0';

	if (!tagged && inet_pton(AF_INET, buf, out->a) == 1) {
		out->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, a6) != 1)
		return false;
	*v6text = true;
	if (memcmp(a6, v4mapped, sizeof(v4mapped)) == 0) {
		out->family = AF_INET;
		memcpy(out->a, a6 + 12, 4);
	} else {
		out->family = AF_INET6;
		memcpy(out->a, a6, 16);
	}
	return true;
}

bool
mw_ip_parse(const char *text, struct mw_ip *out)
{
	bool v6text;

	return ip_parse(text, out, &v6text);
}

static uint32_t
ip_v4(const struct mw_ip *ip)
{
	return (uint32_t)ip->a[0] << 24 | (uint32_t)ip->a[1] << 16 |
	    (uint32_t)ip->a[2] << 8 | (uint32_t)ip->a[3];
}

static struct u128
ip_v6(const struct mw_ip *ip)
{
	struct u128 v = { 0, 0 };
	int i;

	for (i = 0; i < 8; i++) {
		v.hi = v.hi << 8 | ip->a[i];
		v.lo = v.lo << 8 | ip->a[i + 8];
	}
	return v;
}

static int
u128_cmp(struct u128 x, struct u128 y)
{
	if (x.hi != y.hi)
		return x.hi < y.hi ? -1 : 1;
	if (x.lo != y.lo)
		return x.lo < y.lo ? -1 : 1;
	return 0;
}

static bool
u128_is_max(struct u128 x)
{
	return x.hi == UINT64_MAX && x.lo == UINT64_MAX;
}

/*
 * The prefix length: 1 to 3 decimal digits and nothing else.  Returns -1
 * on anything else; the caller checks the upper bound for the family.
 */
static int
parse_prefix(const char *s)
{
	int v = 0, n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n == 3 || s[n] < '0' || s[n] > '9')
			return -1;
		v = v * 10 + (s[n] - '0');
	}
	return n == 0 ? -1 : v;
}

/* Grow the array at *arr (elements of size sz) so one more fits. */
static bool
grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return true;
	ncap = *cap == 0 ? 64 : *cap * 2;
	if (ncap > SIZE_MAX / sz)
		return false;
	if ((p = realloc(*arr, ncap * sz)) == NULL)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

struct mw_ipset *
mw_ipset_new(void)
{
	return calloc(1, sizeof(struct mw_ipset));
}

static bool
add_v4(struct mw_ipset *set, uint32_t addr, int prefix, const char **why)
{
	/* Shifting a uint32_t by 32 is undefined: /32 has no host bits. */
	uint32_t host = prefix == 32 ? 0 : UINT32_MAX >> prefix;

	if (addr & host) {
		*why = "host bits set after the prefix length";
		return false;
	}
	if (!grow((void **)&set->v4, &set->cap4, set->n4, sizeof(*set->v4))) {
		*why = "out of memory";
		return false;
	}
	set->v4[set->n4].lo = addr;
	set->v4[set->n4].hi = addr | host;
	set->n4++;
	return true;
}

static bool
add_v6(struct mw_ipset *set, struct u128 addr, int prefix, const char **why)
{
	struct u128 host;

	if (prefix == 0) {
		host.hi = host.lo = UINT64_MAX;
	} else if (prefix < 64) {
		host.hi = UINT64_MAX >> prefix;
		host.lo = UINT64_MAX;
	} else {
		host.hi = 0;
		host.lo = prefix == 128 ? 0 : UINT64_MAX >> (prefix - 64);
	}
	if ((addr.hi & host.hi) || (addr.lo & host.lo)) {
		*why = "host bits set after the prefix length";
		return false;
	}
	if (!grow((void **)&set->v6, &set->cap6, set->n6, sizeof(*set->v6))) {
		*why = "out of memory";
		return false;
	}
	set->v6[set->n6].lo = addr;
	set->v6[set->n6].hi.hi = addr.hi | host.hi;
	set->v6[set->n6].hi.lo = addr.lo | host.lo;
	set->n6++;
	return true;
}

bool
mw_ipset_add(struct mw_ipset *set, const char *entry, const char **why)
{
	char buf[IP_TEXT_MAX];
	const char *slash, *dummy;
	struct mw_ip ip;
	size_t alen;
	int prefix;
	bool v6text;

	if (why == NULL)
		why = &dummy;
	assert(!set->finished);
	if (set->finished) {
		*why = "set is already finished";
		return false;
	}
	if (entry[0] == '\0') {
		*why = "empty entry";
		return false;
	}
	slash = strchr(entry, '/');
	alen = slash != NULL ? (size_t)(slash - entry) : strlen(entry);
	if (alen == 0 || alen >= sizeof(buf)) {
		*why = "not an IP address";
		return false;
	}
	memcpy(buf, entry, alen);
	buf[alen] = '\0';
	if (!ip_parse(buf, &ip, &v6text)) {
		*why = "not an IP address";
		return false;
	}

	if (slash == NULL) {
		prefix = v6text ? 128 : 32;
	} else if ((prefix = parse_prefix(slash + 1)) < 0) {
		*why = "bad prefix length (want 0-32 for IPv4, 0-128 for IPv6)";
		return false;
	}
	if (!v6text && prefix > 32) {
		*why = "prefix length exceeds 32 for IPv4";
		return false;
	}
	if (v6text && prefix > 128) {
		*why = "prefix length exceeds 128 for IPv6";
		return false;
	}

	if (ip.family == AF_INET && v6text) {
		/*
		 * An IPv4-mapped network: below /96 the ffff of the mapping
		 * prefix itself would be host bits.
		 */
		if (prefix < 96) {
			*why = "host bits set after the prefix length";
			return false;
		}
		prefix -= 96;
	}
	if (ip.family == AF_INET)
		return add_v4(set, ip_v4(&ip), prefix, why);
	return add_v6(set, ip_v6(&ip), prefix, why);
}

static int
cmp_v4(const void *a, const void *b)
{
	const struct v4range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return 0;
}

static int
cmp_v6(const void *a, const void *b)
{
	const struct v6range *x = a, *y = b;
	int c;

	if ((c = u128_cmp(x->lo, y->lo)) != 0)
		return c;
	return u128_cmp(x->hi, y->hi);
}

/*
 * Merge a sorted, non-empty array in place; returns the new length.  The
 * result is disjoint and strictly increasing, with a gap of at least one
 * address between ranges, which is what the binary search relies on.
 */
static size_t
merge_v4(struct v4range *r, size_t n)
{
	size_t i, out = 1;

	assert(n > 0);
	for (i = 1; i < n; i++) {
		struct v4range *cur = &r[out - 1];

		/* Overlapping or adjacent; hi + 1 cannot wrap below the max. */
		if (cur->hi == UINT32_MAX || r[i].lo <= cur->hi + 1) {
			if (r[i].hi > cur->hi)
				cur->hi = r[i].hi;
		} else {
			r[out++] = r[i];
		}
	}
	return out;
}

static size_t
merge_v6(struct v6range *r, size_t n)
{
	size_t i, out = 1;

	assert(n > 0);
	for (i = 1; i < n; i++) {
		struct v6range *cur = &r[out - 1];
		struct u128 next;

		if (u128_is_max(cur->hi))
			continue;
		/* next = cur->hi + 1, the first address after cur. */
		next.lo = cur->hi.lo + 1;
		next.hi = cur->hi.hi + (next.lo == 0);
		if (u128_cmp(r[i].lo, next) <= 0) {
			if (u128_cmp(r[i].hi, cur->hi) > 0)
				cur->hi = r[i].hi;
		} else {
			r[out++] = r[i];
		}
	}
	return out;
}

bool
mw_ipset_finish(struct mw_ipset *set)
{
	void *p;

	if (set->finished)
		return true;
	if (set->n4 > 1) {
		qsort(set->v4, set->n4, sizeof(*set->v4), cmp_v4);
		set->n4 = merge_v4(set->v4, set->n4);
	}
	if (set->n6 > 1) {
		qsort(set->v6, set->n6, sizeof(*set->v6), cmp_v6);
		set->n6 = merge_v6(set->v6, set->n6);
	}
	/* Give back what merging and doubling left unused; failure is fine. */
	if (set->n4 > 0 && set->n4 < set->cap4 &&
	    (p = realloc(set->v4, set->n4 * sizeof(*set->v4))) != NULL) {
		set->v4 = p;
		set->cap4 = set->n4;
	}
	if (set->n6 > 0 && set->n6 < set->cap6 &&
	    (p = realloc(set->v6, set->n6 * sizeof(*set->v6))) != NULL) {
		set->v6 = p;
		set->cap6 = set->n6;
	}
	set->finished = true;
	return true;
}

bool
mw_ipset_contains(const struct mw_ipset *set, const struct mw_ip *ip)
{
	size_t lo = 0, hi, mid;

	assert(set->finished);
	if (ip->family == AF_INET) {
		uint32_t x = ip_v4(ip);

		/* lo ends as the number of ranges starting at or below x. */
		hi = set->n4;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (set->v4[mid].lo <= x)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo > 0 && x <= set->v4[lo - 1].hi;
	}
	if (ip->family == AF_INET6) {
		struct u128 x = ip_v6(ip);

		hi = set->n6;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (u128_cmp(set->v6[mid].lo, x) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo > 0 && u128_cmp(x, set->v6[lo - 1].hi) <= 0;
	}
	return false;
}

size_t
mw_ipset_ranges(const struct mw_ipset *set)
{
	return set->n4 + set->n6;
}

void
mw_ipset_free(struct mw_ipset *set)
{
	if (set == NULL)
		return;
	free(set->v4);
	free(set->v6);
	free(set);
}
