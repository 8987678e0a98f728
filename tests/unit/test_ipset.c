/*
 * test_ipset.c -- address parsing, CIDR entries, range merging and lookups
 * of IP sets, checked by tables and against a brute-force reference.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mw_ipset.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A fixed seed keeps failures reproducible; MW_TEST_SEED overrides it. */
static uint64_t rng_state;

static void
rng_seed(void)
{
	const char *s = getenv("MW_TEST_SEED");

	rng_state = s != NULL ? strtoull(s, NULL, 0) : 0x6d696c7465723031ULL;
}

/* splitmix64: small, fast and good enough to spread test inputs. */
static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Parse or fail the test, naming the text. */
static struct mw_ip
ip(const char *text)
{
	struct mw_ip a;

	if (!mw_ip_parse(text, &a))
		fail_msg("mw_ip_parse(\"%s\") failed", text);
	return a;
}

static const struct parse_case {
	const char *text;
	int family; /* 0: must be refused */
	const char *canon;
} parse_cases[] = {
	{ "192.0.2.1", AF_INET, "192.0.2.1" },
	{ "0.0.0.0", AF_INET, "0.0.0.0" },
	{ "255.255.255.255", AF_INET, "255.255.255.255" },
	{ "[192.0.2.1]", AF_INET, "192.0.2.1" },
	{ "::1", AF_INET6, "::1" },
	{ "::", AF_INET6, "::" },
	{ "2001:DB8::A", AF_INET6, "2001:db8::a" },
	{ "2001:db8:0:0:0:0:0:1", AF_INET6, "2001:db8::1" },
	{ "[::1]", AF_INET6, "::1" },
	{ "IPv6:2001:db8::1", AF_INET6, "2001:db8::1" },
	{ "ipv6:2001:db8::1", AF_INET6, "2001:db8::1" },
	{ "[IPv6:2001:db8::1]", AF_INET6, "2001:db8::1" },
	/* IPv4-mapped: the IPv4 address, however it is written. */
	{ "::ffff:192.0.2.1", AF_INET, "192.0.2.1" },
	{ "::FFFF:c000:0201", AF_INET, "192.0.2.1" },
	{ "[::ffff:192.0.2.1]", AF_INET, "192.0.2.1" },
	{ "IPv6:::ffff:192.0.2.1", AF_INET, "192.0.2.1" },
	{ "[IPv6:::ffff:192.0.2.1]", AF_INET, "192.0.2.1" },
	{ "0000:0000:0000:0000:0000:ffff:255.255.255.255", AF_INET,
	    "255.255.255.255" },
	/* Near-mapped addresses stay IPv6. */
	{ "::fffe:192.0.2.1", AF_INET6, "::fffe:c000:201" },
	{ "::192.0.2.1", AF_INET6, "::192.0.2.1" },
	{ "1::ffff:192.0.2.1", AF_INET6, "1::ffff:c000:201" },
	/* Refused. */
	{ "", 0, NULL },
	{ "[]", 0, NULL },
	{ "[", 0, NULL },
	{ "[::1", 0, NULL },
	{ "::1]", 0, NULL },
	{ "[[::1]]", 0, NULL },
	{ "IPv6:", 0, NULL },
	{ "[IPv6:]", 0, NULL },
	{ "IPv6:192.0.2.1", 0, NULL },
	{ "IPv4:192.0.2.1", 0, NULL },
	{ "192.0.2", 0, NULL },
	{ "192.0.2.1.5", 0, NULL },
	{ "256.0.0.1", 0, NULL },
	{ "192.0.2.01", 0, NULL },
	{ "0x7f.0.0.1", 0, NULL },
	{ " 192.0.2.1", 0, NULL },
	{ "192.0.2.1 ", 0, NULL },
	{ "192.0.2.1/32", 0, NULL },
	{ "fe80::1%eth0", 0, NULL },
	{ "2001:db8::1::2", 0, NULL },
	{ "2001:db8:0:0:0:0:0:0:1", 0, NULL },
	{ "example.com", 0, NULL },
	{ "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001", 0,
	    NULL },
};

static void
parse_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		char buf[INET6_ADDRSTRLEN];
		struct mw_ip a;
		bool ok = mw_ip_parse(c->text, &a);

		if (c->family == 0) {
			if (ok)
				fail_msg("\"%s\" parsed, want refusal",
				    c->text);
			continue;
		}
		if (!ok)
			fail_msg("\"%s\" refused", c->text);
		if (a.family != c->family)
			fail_msg("\"%s\": family %d, want %d", c->text,
			    a.family, c->family);
		assert_non_null(inet_ntop(a.family, a.a, buf, sizeof(buf)));
		if (strcmp(buf, c->canon) != 0)
			fail_msg("\"%s\" parsed as %s, want %s", c->text, buf,
			    c->canon);
	}
}

static void
parse_zeroes_unused_bytes(void **state)
{
	struct mw_ip a, b;

	(void)state;
	memset(&a, 0xa5, sizeof(a));
	assert_true(mw_ip_parse("192.0.2.1", &a));
	memset(&b, 0x5a, sizeof(b));
	assert_true(mw_ip_parse("::ffff:192.0.2.1", &b));
	assert_memory_equal(&a, &b, sizeof(a));
	assert_false(mw_ip_parse("nonsense", &a));
	assert_int_equal(a.family, 0);
}

/* One set: its entries, the merged range count, addresses in and out. */
static const struct set_case {
	const char *name;
	const char *entries[6];
	size_t ranges;
	const char *in[8];
	const char *out[8];
} set_cases[] = {
	{ "ipv4 /0 is every IPv4 address and no IPv6 one", { "0.0.0.0/0" }, 1,
	    { "0.0.0.0", "255.255.255.255", "192.0.2.1", "::ffff:10.0.0.1" },
	    { "::1", "::", "2001:db8::1", "::192.0.2.1" } },
	{ "ipv6 ::/0 is every IPv6 address and no IPv4 one", { "::/0" }, 1,
	    { "::", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"::fffe:192.0.2.1" },
	    { "192.0.2.1", "::ffff:192.0.2.1", "0.0.0.0" } },
	{ "ipv4 /32 and bare address are one host",
	    { "192.0.2.1/32", "198.51.100.7" }, 2,
	    { "192.0.2.1", "[192.0.2.1]", "198.51.100.7" },
	    { "192.0.2.0", "192.0.2.2", "198.51.100.6", "198.51.100.8",
		"::192.0.2.1" } },
	{ "ipv6 /128 and bare address are one host",
	    { "2001:db8::1/128", "[IPv6:2001:db8::ff]" }, 2,
	    { "2001:db8::1", "IPv6:2001:db8::1", "2001:db8::ff" },
	    { "2001:db8::", "2001:db8::2", "2001:db8::fe", "2001:db8::100" } },
	{ "ipv4 /24 edges and just outside", { "192.0.2.0/24" }, 1,
	    { "192.0.2.0", "192.0.2.255", "192.0.2.128" },
	    { "192.0.1.255", "192.0.3.0", "0.0.0.0", "255.255.255.255" } },
	{ "adjacent ipv4 halves merge", { "192.0.2.128/25", "192.0.2.0/25" }, 1,
	    { "192.0.2.127", "192.0.2.128", "192.0.2.0", "192.0.2.255" },
	    { "192.0.1.255", "192.0.3.0" } },
	{ "adjacent ipv4 /24s merge, a gap does not",
	    { "192.0.2.0/24", "192.0.3.0/24", "192.0.5.0/24" }, 2,
	    { "192.0.3.255", "192.0.5.0" },
	    { "192.0.4.0", "192.0.4.255", "192.0.6.0", "192.0.1.255" } },
	{ "overlapping and nested ipv4 merge",
	    { "10.1.0.0/16", "10.0.0.0/8", "10.1.2.3", "10.0.0.0/8" }, 1,
	    { "10.0.0.0", "10.255.255.255", "10.1.2.3" },
	    { "9.255.255.255", "11.0.0.0" } },
	{ "partial overlap extends the range",
	    { "10.0.0.0/9", "10.64.0.0/10", "10.128.0.0/9", "11.0.0.0/32" }, 1,
	    { "10.0.0.0", "10.127.255.255", "10.128.0.0", "11.0.0.0" },
	    { "11.0.0.1", "9.255.255.255" } },
	{ "ranges at the top of ipv4 merge without wrapping",
	    { "255.255.255.255", "255.255.255.0/24", "0.0.0.0" }, 2,
	    { "255.255.255.255", "255.255.255.0", "0.0.0.0" },
	    { "255.255.254.255", "0.0.0.1" } },
	{ "ipv6 /32 edges and just outside", { "2001:db8::/32" }, 1,
	    { "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
		"2001:db8:1234::1" },
	    { "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::", "::" } },
	{ "adjacent ipv6 /64s merge across the 64-bit boundary",
	    { "2001:db8:0:1::/64", "2001:db8::/64" }, 1,
	    { "2001:db8::ffff:ffff:ffff:ffff",
		"2001:db8:0:1::", "2001:db8:0:1:ffff:ffff:ffff:ffff" },
	    { "2001:db8:0:2::", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff" } },
	{ "adjacent ipv6 hosts merge, carry into the high word",
	    { "2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::" }, 1,
	    { "2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::" },
	    { "2001:db8::ffff:ffff:ffff:fffe", "2001:db8:0:1::1" } },
	{ "ipv6 gap of one address does not merge",
	    { "2001:db8::/127", "2001:db8::3" }, 2,
	    { "2001:db8::", "2001:db8::1", "2001:db8::3" },
	    { "2001:db8::2", "2001:db8::4" } },
	{ "ranges at the top of ipv6 merge without wrapping",
	    { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120",
		"ffff:ffff:ffff:ffff::/64", "::" },
	    2,
	    { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"ffff:ffff:ffff:ffff::", "::" },
	    { "ffff:ffff:ffff:fffe:ffff:ffff:ffff:ffff", "::1" } },
	{ "mapped network entry is the ipv4 network",
	    { "::ffff:192.0.2.0/120", "[IPv6:::ffff:198.51.100.1]" }, 2,
	    { "192.0.2.0", "192.0.2.255", "::ffff:192.0.2.9", "198.51.100.1" },
	    { "192.0.3.0", "::192.0.2.9", "198.51.100.2" } },
	{ "mapped /96 is all of ipv4", { "::ffff:0.0.0.0/96" }, 1,
	    { "0.0.0.0", "255.255.255.255" }, { "::", "::1" } },
	{ "ipv4 and ipv6 ranges live side by side",
	    { "192.0.2.0/24", "2001:db8::/32", "::ffff:192.0.2.0/121" }, 2,
	    { "192.0.2.1", "2001:db8::1" },
	    { "::c000:201", "2001:db9::", "192.0.3.1" } },
	{ "empty set matches nothing", { NULL }, 0, { NULL },
	    { "0.0.0.0", "::", "192.0.2.1" } },
};

static void
set_table(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < NELEM(set_cases); i++) {
		const struct set_case *c = &set_cases[i];
		struct mw_ipset *set = mw_ipset_new();
		struct mw_ip a;

		assert_non_null(set);
		for (j = 0; j < NELEM(c->entries) && c->entries[j]; j++) {
			const char *why = NULL;

			if (!mw_ipset_add(set, c->entries[j], &why))
				fail_msg("%s: add %s: %s", c->name,
				    c->entries[j], why);
		}
		assert_true(mw_ipset_finish(set));
		if (mw_ipset_ranges(set) != c->ranges)
			fail_msg("%s: %zu ranges, want %zu", c->name,
			    mw_ipset_ranges(set), c->ranges);
		for (j = 0; j < NELEM(c->in) && c->in[j]; j++) {
			a = ip(c->in[j]);
			if (!mw_ipset_contains(set, &a))
				fail_msg("%s: %s not found", c->name, c->in[j]);
		}
		for (j = 0; j < NELEM(c->out) && c->out[j]; j++) {
			a = ip(c->out[j]);
			if (mw_ipset_contains(set, &a))
				fail_msg("%s: %s found", c->name, c->out[j]);
		}
		/* A second finish changes nothing. */
		assert_true(mw_ipset_finish(set));
		assert_int_equal(mw_ipset_ranges(set), c->ranges);
		mw_ipset_free(set);
	}
}

static const struct bad_case {
	const char *entry;
	const char *why;
} bad_cases[] = {
	{ "", "empty entry" },
	{ "192.0.2.1/24", "host bits set after the prefix length" },
	{ "192.0.3.0/23", "host bits set after the prefix length" },
	{ "0.0.0.1/0", "host bits set after the prefix length" },
	{ "2001:db8::1/64", "host bits set after the prefix length" },
	{ "2001:db9::/31", "host bits set after the prefix length" },
	{ "::1/0", "host bits set after the prefix length" },
	{ "::ffff:192.0.2.0/95", "host bits set after the prefix length" },
	{ "::ffff:192.0.2.0/64", "host bits set after the prefix length" },
	{ "::ffff:192.0.2.1/120", "host bits set after the prefix length" },
	{ "192.0.2.0/33", "prefix length exceeds 32 for IPv4" },
	{ "192.0.2.0/999", "prefix length exceeds 32 for IPv4" },
	{ "2001:db8::/129", "prefix length exceeds 128 for IPv6" },
	{ "::ffff:192.0.2.0/129", "prefix length exceeds 128 for IPv6" },
	{ "192.0.2.0/",
	    "bad prefix length (want 0-32 for IPv4, 0-128 for "
	    "IPv6)" },
	{ "192.0.2.0/024a",
	    "bad prefix length (want 0-32 for IPv4, 0-128 for IPv6)" },
	{ "192.0.2.0/0024",
	    "bad prefix length (want 0-32 for IPv4, 0-128 for IPv6)" },
	{ "192.0.2.0/-1",
	    "bad prefix length (want 0-32 for IPv4, 0-128 for IPv6)" },
	{ "192.0.2.0/+8",
	    "bad prefix length (want 0-32 for IPv4, 0-128 for IPv6)" },
	{ "192.0.2.0/ 24",
	    "bad prefix length (want 0-32 for IPv4, 0-128 for IPv6)" },
	{ "192.0.2.0/24/24",
	    "bad prefix length (want 0-32 for IPv4, 0-128 for IPv6)" },
	{ "/24", "not an IP address" },
	{ "/", "not an IP address" },
	{ "192.0.2", "not an IP address" },
	{ "192.0.2.0 /24", "not an IP address" },
	{ "example.com", "not an IP address" },
	{ "192.0.2.*", "not an IP address" },
	{ "fe80::1%eth0/128", "not an IP address" },
	{ "IPv6:192.0.2.0/24", "not an IP address" },
	{ "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:"
	  "0000/0",
	    "not an IP address" },
};

static void
bad_entries_say_why(void **state)
{
	struct mw_ipset *set = mw_ipset_new();
	size_t i;

	(void)state;
	assert_non_null(set);
	for (i = 0; i < NELEM(bad_cases); i++) {
		const char *why = NULL;

		if (mw_ipset_add(set, bad_cases[i].entry, &why))
			fail_msg("\"%s\" accepted", bad_cases[i].entry);
		if (why == NULL || strcmp(why, bad_cases[i].why) != 0)
			fail_msg("\"%s\": why \"%s\", want \"%s\"",
			    bad_cases[i].entry, why ? why : "(null)",
			    bad_cases[i].why);
		/* why may be NULL when the caller does not care. */
		assert_false(mw_ipset_add(set, bad_cases[i].entry, NULL));
	}
	/* Refused entries leave nothing behind. */
	assert_int_equal(mw_ipset_ranges(set), 0);
	assert_true(mw_ipset_add(set, "192.0.2.0/24", NULL));
	assert_true(mw_ipset_finish(set));
	assert_int_equal(mw_ipset_ranges(set), 1);
	mw_ipset_free(set);
	mw_ipset_free(NULL);
}

/*
 * The random tests map a 24-bit "universe" point u onto addresses, paint
 * every entry into a bitmap of the universe by brute force, and compare
 * each lookup with the bitmap.  The number of runs of set bits is the
 * number of ranges a correct merge must leave.
 */
#define UBITS     24
#define USIZE     ((uint32_t)1 << UBITS)
#define NENTRIES  10000
#define NLOOKUPS  100000
#define BIT(m, u) ((m)[(u) >> 3] >> ((u)&7) & 1)

/* Host bits of a random entry: mostly small networks, a few large. */
static unsigned
random_hostbits(void)
{
	return rng() % 100 == 0 ? 13 + rng() % 4 : rng() % 13;
}

static void
paint(unsigned char *map, uint32_t u, unsigned h)
{
	uint32_t v;

	for (v = u; v < u + ((uint32_t)1 << h); v++)
		map[v >> 3] |= (unsigned char)(1u << (v & 7));
}

static size_t
count_runs(const unsigned char *map)
{
	size_t runs = 0;
	uint32_t u;

	for (u = 0; u < USIZE; u++)
		if (BIT(map, u) && (u == 0 || !BIT(map, u - 1)))
			runs++;
	return runs;
}

/* IPv4: the universe is 10.0.0.0/8, u is the low 24 bits. */
static void
v4_from(struct mw_ip *a, uint32_t x)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET;
	a->a[0] = (unsigned char)(x >> 24);
	a->a[1] = (unsigned char)(x >> 16);
	a->a[2] = (unsigned char)(x >> 8);
	a->a[3] = (unsigned char)x;
}

static void
random_v4_against_reference(void **state)
{
	unsigned char *map = calloc(USIZE / 8, 1);
	struct mw_ipset *set = mw_ipset_new();
	uint32_t *los = calloc(NENTRIES, sizeof(*los));
	uint32_t *his = calloc(NENTRIES, sizeof(*his));
	size_t i, hits = 0;

	(void)state;
	assert_non_null(map);
	assert_non_null(set);
	assert_non_null(los);
	assert_non_null(his);
	rng_seed();
	for (i = 0; i < NENTRIES; i++) {
		unsigned h = random_hostbits();
		uint32_t u = (uint32_t)rng() & (USIZE - 1) & ~((1u << h) - 1);
		char text[80], addr[INET_ADDRSTRLEN];
		struct mw_ip a;
		const char *why = NULL;

		v4_from(&a, 0x0a000000 | u);
		assert_non_null(inet_ntop(AF_INET, a.a, addr, sizeof(addr)));
		/* Exercise every way of writing an entry. */
		if (h == 0 && rng() % 2)
			snprintf(text, sizeof(text), "%s", addr);
		else if (rng() % 8 == 0)
			snprintf(text, sizeof(text), "::ffff:%s/%u", addr,
			    128 - h);
		else
			snprintf(text, sizeof(text), "%s/%u", addr, 32 - h);
		if (!mw_ipset_add(set, text, &why))
			fail_msg("add %s: %s", text, why);
		paint(map, u, h);
		los[i] = u;
		his[i] = u + ((uint32_t)1 << h) - 1;
	}
	assert_true(mw_ipset_finish(set));
	assert_int_equal(mw_ipset_ranges(set), count_runs(map));

	for (i = 0; i < NLOOKUPS; i++) {
		uint32_t x, pick = (uint32_t)(rng() % 4), e = rng() % NENTRIES;
		bool want, got;
		struct mw_ip a;

		switch (pick) {
		case 0: x = 0x0a000000 | ((uint32_t)rng() & (USIZE - 1)); break;
		case 1: x = 0x0a000000 + los[e] - (rng() % 2); break;
		case 2: x = 0x0a000000 + his[e] + (rng() % 2); break;
		default: x = (uint32_t)rng(); break;
		}
		want = (x >> UBITS) == 0x0a && BIT(map, x & (USIZE - 1));
		v4_from(&a, x);
		got = mw_ipset_contains(set, &a);
		if (got != want)
			fail_msg("lookup %u.%u.%u.%u: %d, want %d", x >> 24,
			    (x >> 16) & 255, (x >> 8) & 255, x & 255, got,
			    want);
		hits += got;
	}
	/* The test means something only if both answers occur often. */
	assert_true(hits > NLOOKUPS / 10);
	assert_true(hits < NLOOKUPS * 9 / 10);
	mw_ipset_free(set);
	free(map);
	free(los);
	free(his);
}

/*
 * IPv6: the universe sits at bits 54..77 of 2001:db8::/32, straddling the
 * boundary between the two 64-bit words; bits below 54 are noise that
 * never changes the answer.
 */
static void
v6_from(struct mw_ip *a, uint64_t hi, uint64_t lo)
{
	int i;

	memset(a, 0, sizeof(*a));
	a->family = AF_INET6;
	for (i = 0; i < 8; i++) {
		a->a[i] = (unsigned char)(hi >> (56 - 8 * i));
		a->a[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
	}
}

#define V6BASE 0x20010db800000000ULL

static void
point_words(uint32_t u, uint64_t noise, uint64_t *hi, uint64_t *lo)
{
	*hi = V6BASE | (u >> 10);
	*lo = (uint64_t)(u & 0x3ff) << 54 | (noise & ((1ULL << 54) - 1));
}

/* The reference answer for any address: its universe point's bit. */
static bool
v6_want(const unsigned char *map, uint64_t hi, uint64_t lo)
{
	uint32_t u;

	if ((hi & ~0x3fffULL) != V6BASE)
		return false;
	u = (uint32_t)(hi & 0x3fff) << 10 | (uint32_t)(lo >> 54);
	return BIT(map, u);
}

static void
random_v6_against_reference(void **state)
{
	unsigned char *map = calloc(USIZE / 8, 1);
	struct mw_ipset *set = mw_ipset_new();
	uint32_t *los = calloc(NENTRIES, sizeof(*los));
	uint32_t *his = calloc(NENTRIES, sizeof(*his));
	size_t i, hits = 0;

	(void)state;
	assert_non_null(map);
	assert_non_null(set);
	assert_non_null(los);
	assert_non_null(his);
	rng_seed();
	for (i = 0; i < NENTRIES; i++) {
		unsigned h = random_hostbits();
		uint32_t u = (uint32_t)rng() & (USIZE - 1) & ~((1u << h) - 1);
		char text[80], addr[INET6_ADDRSTRLEN];
		struct mw_ip a;
		const char *why = NULL;
		uint64_t hi, lo;

		point_words(u, 0, &hi, &lo);
		v6_from(&a, hi, lo);
		assert_non_null(inet_ntop(AF_INET6, a.a, addr, sizeof(addr)));
		snprintf(text, sizeof(text), "%s/%u", addr, 74 - h);
		if (!mw_ipset_add(set, text, &why))
			fail_msg("add %s: %s", text, why);
		paint(map, u, h);
		los[i] = u;
		his[i] = u + ((uint32_t)1 << h) - 1;
	}
	assert_true(mw_ipset_finish(set));
	assert_int_equal(mw_ipset_ranges(set), count_runs(map));

	for (i = 0; i < NLOOKUPS; i++) {
		uint32_t e = rng() % NENTRIES;
		uint64_t hi, lo;
		bool got;
		char buf[INET6_ADDRSTRLEN];
		struct mw_ip a;

		switch (rng() % 5) {
		case 0:
			point_words((uint32_t)rng() & (USIZE - 1), rng(), &hi,
			    &lo);
			break;
		case 1:
			/* The first address of an entry and the one before. */
			point_words(los[e], 0, &hi, &lo);
			if (rng() % 2)
				hi -= (lo-- == 0);
			break;
		case 2:
			/* The last address of an entry and the one after. */
			point_words(his[e], UINT64_MAX, &hi, &lo);
			if (rng() % 2)
				hi += (++lo == 0);
			break;
		case 3:
			/* Anywhere in 2001:db8::/32, mostly outside. */
			hi = V6BASE | (rng() & 0xffffffffULL);
			lo = rng();
			break;
		default:
			hi = rng();
			lo = rng();
			break;
		}
		v6_from(&a, hi, lo);
		got = mw_ipset_contains(set, &a);
		if (got != v6_want(map, hi, lo))
			fail_msg("lookup %s: %d, want %d",
			    inet_ntop(AF_INET6, a.a, buf, sizeof(buf)), got,
			    !got);
		hits += got;
	}
	assert_true(hits > NLOOKUPS / 10);
	assert_true(hits < NLOOKUPS * 9 / 10);
	mw_ipset_free(set);
	free(map);
	free(los);
	free(his);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_table),
		cmocka_unit_test(parse_zeroes_unused_bytes),
		cmocka_unit_test(set_table),
		cmocka_unit_test(bad_entries_say_why),
		cmocka_unit_test(random_v4_against_reference),
		cmocka_unit_test(random_v6_against_reference),
	};

	return cmocka_run_group_tests_name("ipset", tests, NULL, NULL);
}
