/*
 * test_strset.c -- string sets (exact and ASCII case-insensitive) and
 * domain sets: normalisation, syntax checks with their reasons, the
 * label-by-label suffix walk, and random sets against brute force.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "mw_strset.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rng_state;

/* A fixed seed keeps failures reproducible; MW_TEST_SEED overrides it. */
static void
rng_seed(void)
{
	const char *s = getenv("MW_TEST_SEED");

	rng_state = s != NULL ? strtoull(s, NULL, 0) : 0x6d696c7465723032ULL;
}

/* splitmix64 */
static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static bool
has(const struct mw_strset *set, const char *s)
{
	return mw_strset_contains(set, s, strlen(s));
}

static void
strset_exact_matching(void **state)
{
	struct mw_strset *set = mw_strset_new(false);

	(void)state;
	assert_non_null(set);
	assert_false(has(set, "foo"));
	assert_false(has(set, ""));
	assert_true(mw_strset_add(set, "foo", 3));
	assert_true(mw_strset_add(set, "Foo", 3));
	assert_true(mw_strset_add(set, "foo", 3));
	assert_int_equal(mw_strset_count(set), 2);
	assert_true(has(set, "foo"));
	assert_true(has(set, "Foo"));
	assert_false(has(set, "FOO"));
	assert_false(has(set, "fo"));
	assert_false(has(set, "fooo"));
	/* The length is what counts, not a terminating NUL. */
	assert_false(mw_strset_contains(set, "foo", 4));
	assert_true(mw_strset_contains(set, "food", 3));
	assert_true(mw_strset_add(set, "a\0b", 3));
	assert_true(mw_strset_contains(set, "a\0b", 3));
	assert_false(mw_strset_contains(set, "a\0c", 3));
	assert_false(has(set, "a"));
	/* The empty string is a member like any other. */
	assert_true(mw_strset_add(set, "", 0));
	assert_true(has(set, ""));
	assert_true(mw_strset_add(set, "", 0));
	assert_int_equal(mw_strset_count(set), 4);
	mw_strset_free(set);
	mw_strset_free(NULL);
}

static void
strset_nocase_folds_ascii_only(void **state)
{
	struct mw_strset *set = mw_strset_new(true);

	(void)state;
	assert_non_null(set);
	assert_true(mw_strset_add(set, "Example", 7));
	assert_true(mw_strset_add(set, "EXAMPLE", 7));
	assert_true(mw_strset_add(set, "example", 7));
	assert_int_equal(mw_strset_count(set), 1);
	assert_true(has(set, "eXaMpLe"));
	assert_false(has(set, "exampl"));
	/* Long keys fold in every 8-byte block, not just the tail. */
	assert_true(mw_strset_add(set, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26));
	assert_true(has(set, "abcdefghijklmnopqrstuvwxyz"));
	assert_true(has(set, "abcdefghIJKLMNOPqrstuvwxyZ"));
	assert_int_equal(mw_strset_count(set), 2);
	/* Neighbours of the letters are not letters. */
	assert_true(mw_strset_add(set, "@[", 2));
	assert_false(has(set, "`{"));
	assert_true(has(set, "@["));
	/* UTF-8 and Latin-1 letters are bytes, matched exactly. */
	assert_true(mw_strset_add(set, "\xc3\x89", 2)); /* E acute, UTF-8 */
	assert_false(has(set, "\xc3\xa9"));             /* e acute */
	assert_true(mw_strset_add(set, "\xc0", 1));
	assert_false(has(set, "\xe0"));
	assert_int_equal(mw_strset_count(set), 5);
	mw_strset_free(set);
}

static void
strset_grows_and_keeps_everything(void **state)
{
	struct mw_strset *set = mw_strset_new(false);
	char key[32];
	int i, n;

	(void)state;
	assert_non_null(set);
	for (i = 0; i < 200000; i++) {
		n = snprintf(key, sizeof(key), "key-%d", i);
		assert_true(mw_strset_add(set, key, (size_t)n));
	}
	assert_int_equal(mw_strset_count(set), 200000);
	for (i = 0; i < 200000; i++) {
		n = snprintf(key, sizeof(key), "key-%d", i);
		if (!mw_strset_contains(set, key, (size_t)n))
			fail_msg("%s lost", key);
	}
	for (i = 200000; i < 300000; i++) {
		n = snprintf(key, sizeof(key), "key-%d", i);
		if (mw_strset_contains(set, key, (size_t)n))
			fail_msg("%s found", key);
	}
	mw_strset_free(set);
}

/*
 * Random string sets against a sorted, de-duplicated array searched with
 * bsearch.  Short keys over a small alphabet give many duplicates and, in
 * a case-insensitive set, many case variants of the same key.
 */
#define RKEY_MAX 12
#define NENTRIES 10000
#define NLOOKUPS 100000

struct rkey {
	size_t len;
	char b[RKEY_MAX];
};

static void
random_key(struct rkey *k)
{
	static const char alpha[] = "aAbBzZ09.-@`\x80\xff";
	size_t i;

	k->len = rng() % (RKEY_MAX + 1);
	/* Make short keys (and so hits) common. */
	if (rng() % 2)
		k->len %= 4;
	for (i = 0; i < k->len; i++)
		k->b[i] = alpha[rng() % (sizeof(alpha) - 1)];
}

static bool ref_nocase;

static int
rkey_cmp(const void *a, const void *b)
{
	const struct rkey *x = a, *y = b;
	size_t i, n = x->len < y->len ? x->len : y->len;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)x->b[i];
		unsigned char d = (unsigned char)y->b[i];

		if (ref_nocase) {
			c = c >= 'A' && c <= 'Z' ? c + 32 : c;
			d = d >= 'A' && d <= 'Z' ? d + 32 : d;
		}
		if (c != d)
			return c < d ? -1 : 1;
	}
	return x->len < y->len ? -1 : x->len > y->len;
}

static void
random_strset(bool nocase)
{
	struct rkey *ref = calloc(NENTRIES, sizeof(*ref));
	struct mw_strset *set = mw_strset_new(nocase);
	size_t i, nref = 0, hits = 0;

	assert_non_null(ref);
	assert_non_null(set);
	rng_seed();
	ref_nocase = nocase;
	for (i = 0; i < NENTRIES; i++) {
		random_key(&ref[i]);
		assert_true(mw_strset_add(set, ref[i].b, ref[i].len));
	}
	qsort(ref, NENTRIES, sizeof(*ref), rkey_cmp);
	for (i = 0; i < NENTRIES; i++)
		if (nref == 0 || rkey_cmp(&ref[nref - 1], &ref[i]) != 0)
			ref[nref++] = ref[i];
	assert_int_equal(mw_strset_count(set), nref);

	for (i = 0; i < NLOOKUPS; i++) {
		struct rkey k;
		bool want, got;

		random_key(&k);
		want = bsearch(&k, ref, nref, sizeof(*ref), rkey_cmp) != NULL;
		got = mw_strset_contains(set, k.b, k.len);
		if (got != want)
			fail_msg("nocase=%d lookup of %zu bytes \"%.*s\": %d, "
				 "want %d",
			    nocase, k.len, (int)k.len, k.b, got, want);
		hits += got;
	}
	assert_true(hits > NLOOKUPS / 10);
	assert_true(hits < NLOOKUPS * 9 / 10);
	mw_strset_free(set);
	free(ref);
}

static void
strset_random_exact_against_reference(void **state)
{
	(void)state;
	random_strset(false);
}

static void
strset_random_nocase_against_reference(void **state)
{
	(void)state;
	random_strset(true);
}

static const struct dom_case {
	const char *name;
	const char *entries[4];
	const char *in[8];
	const char *out[12];
} dom_cases[] = {
	{ "a domain matches itself and what is below it", { "example.com" },
	    { "example.com", "EXAMPLE.com.", "mail.example.com",
		"a.b.c.example.com", "Mail.Example.COM.", ".example.com",
		"_dmarc.example.com" },
	    { "badexample.com", "example.com.evil.org", "com", "example",
		"xample.com", "example.co", "example.comm", "example.com..", "",
		".", "example.com-x", "mail.example.co" } },
	{ "leading dot, wildcard and trailing dot are normalised away",
	    { "*.example.org", ".example.net", "Example.EDU." },
	    { "example.org", "x.example.org", "example.net", "y.example.net",
		"example.edu", "z.EXAMPLE.edu." },
	    { "org", "xexample.org", "example.org.uk", "net", "edu",
		"example.ed" } },
	{ "a single label matches the whole tree under it", { "com" },
	    { "com", "com.", "example.com", "a.b.c.COM" },
	    { "example.org", "co", "comm", "com.org", "" } },
	{ "underscores, hyphens and A-labels are names",
	    { "_dmarc.example.com", "xn--bcher-kva.example", "a-b_c.test" },
	    { "_DMARC.example.com", "x._dmarc.example.com",
		"xn--bcher-kva.example", "A-B_C.test" },
	    { "example.com", "dmarc.example.com", "bcher-kva.example",
		"a-b-c.test" } },
	{ "address literals match only equivalent literals",
	    { "[192.0.2.1]", "[IPv6:2001:DB8::1]", "[::ffff:198.51.100.1]" },
	    { "[192.0.2.1]", "[192.0.2.1].", "[IPv6:2001:db8::1]",
		"[ipv6:2001:db8:0:0:0:0:0:1]", "[2001:db8::1]",
		"[198.51.100.1]", "[IPv6:::ffff:192.0.2.1]" },
	    { "192.0.2.1", "x.[192.0.2.1]", "[192.0.2.2]", "[192.0.2.1", "1]",
		"[ipv6:2001:db8::2]", "[]", "[::1]", "2001:db8::1",
		"[example.com]", "198.51.100.1" } },
	{ "an empty set matches nothing", { NULL }, { NULL },
	    { "example.com", "", ".", "[192.0.2.1]" } },
};

static void
domset_table(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < NELEM(dom_cases); i++) {
		const struct dom_case *c = &dom_cases[i];
		struct mw_domset *set = mw_domset_new();

		assert_non_null(set);
		for (j = 0; j < NELEM(c->entries) && c->entries[j]; j++) {
			const char *why = NULL;

			if (!mw_domset_add(set, c->entries[j], &why))
				fail_msg("%s: add %s: %s", c->name,
				    c->entries[j], why);
		}
		for (j = 0; j < NELEM(c->in) && c->in[j]; j++)
			if (!mw_domset_contains(set, c->in[j]))
				fail_msg("%s: \"%s\" not matched", c->name,
				    c->in[j]);
		for (j = 0; j < NELEM(c->out) && c->out[j]; j++)
			if (mw_domset_contains(set, c->out[j]))
				fail_msg("%s: \"%s\" matched", c->name,
				    c->out[j]);
		mw_domset_free(set);
	}
	mw_domset_free(NULL);
}

static void
domset_spellings_are_one_entry(void **state)
{
	static const char *const same[] = { "example.com", "EXAMPLE.COM.",
		"*.example.com", ".Example.Com", "*.example.com." };
	struct mw_domset *set = mw_domset_new();
	size_t i;

	(void)state;
	assert_non_null(set);
	for (i = 0; i < NELEM(same); i++)
		assert_true(mw_domset_add(set, same[i], NULL));
	assert_int_equal(mw_domset_count(set), 1);
	assert_true(mw_domset_add(set, "[192.0.2.1]", NULL));
	assert_true(mw_domset_add(set, "[::ffff:192.0.2.1]", NULL));
	assert_true(mw_domset_add(set, "[IPv6:::FFFF:c000:201]", NULL));
	assert_int_equal(mw_domset_count(set), 2);
	mw_domset_free(set);
}

#define L63 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"
#define L61 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1"

static const struct bad_dom {
	const char *domain;
	const char *why;
} bad_doms[] = {
	{ "", "empty domain name" },
	{ ".", "empty domain name" },
	{ "*.", "empty domain name" },
	{ "..", "empty domain name" },
	{ "*", "invalid character in domain name" },
	{ "*.*.example.com", "invalid character in domain name" },
	{ "**.example.com", "invalid character in domain name" },
	{ "a.*.com", "invalid character in domain name" },
	{ "exa mple.com", "invalid character in domain name" },
	{ "example.com ", "invalid character in domain name" },
	{ "exa\tmple.com", "invalid character in domain name" },
	{ "user@example.com", "invalid character in domain name" },
	{ "example.com/24", "invalid character in domain name" },
	{ "example.com:25", "invalid character in domain name" },
	{ "a..b", "empty label in domain name" },
	{ "..example.com", "empty label in domain name" },
	{ "example.com..", "empty label in domain name" },
	{ "*..example.com", "empty label in domain name" },
	{ "ex\xc3\xa4mple.com",
	    "non-ASCII character in domain name (write "
	    "internationalised names as xn-- A-labels)" },
	{ L63 "x.example", "label longer than 63 characters in domain name" },
	{ L63 "." L63 "." L63 "." L61 "x",
	    "domain name longer than 253 characters" },
	{ "*." L63 "." L63 "." L63 "." L61 "x.",
	    "domain name longer than 253 characters" },
	{ "192.0.2.1",
	    "IPv4 address in a domain list (write an address "
	    "literal such as [192.0.2.1], or use an IP list)" },
	{ "*.192.0.2.1.",
	    "IPv4 address in a domain list (write an address "
	    "literal such as [192.0.2.1], or use an IP list)" },
	{ "[192.0.2.256]", "bad address literal" },
	{ "[192.0.2.1", "bad address literal" },
	{ "[192.0.2.1].", "bad address literal" },
	{ "[]", "bad address literal" },
	{ "[example.com]", "bad address literal" },
	{ "[192.0.2.0/24]", "bad address literal" },
};

static void
domset_bad_entries_say_why(void **state)
{
	struct mw_domset *set = mw_domset_new();
	size_t i;

	(void)state;
	assert_non_null(set);
	for (i = 0; i < NELEM(bad_doms); i++) {
		const char *why = NULL;

		if (mw_domset_add(set, bad_doms[i].domain, &why))
			fail_msg("\"%s\" accepted", bad_doms[i].domain);
		if (why == NULL || strcmp(why, bad_doms[i].why) != 0)
			fail_msg("\"%s\": why \"%s\", want \"%s\"",
			    bad_doms[i].domain, why ? why : "(null)",
			    bad_doms[i].why);
		assert_false(mw_domset_add(set, bad_doms[i].domain, NULL));
	}
	assert_int_equal(mw_domset_count(set), 0);
	mw_domset_free(set);
}

static void
domset_length_limits_are_inclusive(void **state)
{
	static const char *const good[] = {
		L63 ".example",
		L63 "." L63 "." L63 "." L61,
		"*." L63 "." L63 "." L63 "." L61,
		"." L63 "." L63 "." L63 "." L61 ".",
		"a",
		"1.2.3.4.5",
		"-",
	};
	struct mw_domset *set = mw_domset_new();
	size_t i;

	(void)state;
	assert_non_null(set);
	assert_int_equal(strlen(good[1]), MW_DOMAIN_MAX);
	for (i = 0; i < NELEM(good); i++) {
		const char *why = NULL;

		if (!mw_domset_add(set, good[i], &why))
			fail_msg("\"%s\" refused: %s", good[i], why);
	}
	assert_true(mw_domset_contains(set, L63 "." L63 "." L63 "." L61));
	assert_true(mw_domset_contains(set, "x." L63 ".EXAMPLE."));
	mw_domset_free(set);
}

/*
 * A hostile name of many thousands of labels must still match by its
 * suffix, and must not cost a hash per label (that would be quadratic):
 * if it did, this test would take minutes rather than milliseconds.
 */
static void
domset_huge_names_are_walked_cheaply(void **state)
{
	struct mw_domset *set = mw_domset_new();
	size_t n = 1 << 20, i;
	char *q = malloc(n + 32);

	(void)state;
	assert_non_null(set);
	assert_non_null(q);
	assert_true(mw_domset_add(set, "example.com", NULL));
	for (i = 0; i < n; i += 2) {
		q[i] = 'a';
		q[i + 1] = '.';
	}
	strcpy(q + n, "example.com.");
	assert_true(mw_domset_contains(set, q));
	strcpy(q + n, "example.org");
	assert_false(mw_domset_contains(set, q));
	/* One enormous label. */
	memset(q, 'a', n);
	strcpy(q + n, ".example.com");
	assert_true(mw_domset_contains(set, q));
	q[n] = 'x';
	assert_false(mw_domset_contains(set, q));
	free(q);
	mw_domset_free(set);
}

/*
 * Random domain sets against brute force: a name matches when it equals
 * an entry or ends in "." followed by one, compared without case.
 */
#define DENTRIES 10000
#define DLOOKUPS 20000
#define DNAME    64

static size_t
random_domain(char *out, unsigned minlabels, unsigned maxlabels)
{
	static const char alpha[] = "abcdeABCDE";
	unsigned labels =
	    minlabels + (unsigned)(rng() % (maxlabels - minlabels + 1));
	size_t o = 0, i, len;

	while (labels-- > 0) {
		len = 1 + rng() % 3;
		for (i = 0; i < len; i++)
			out[o++] = alpha[rng() % (sizeof(alpha) - 1)];
		out[o++] = '.';
	}
	out[--o] = '\0';
	return o;
}

static bool
brute_match(char (*ents)[DNAME], size_t nents, const char *q)
{
	size_t qlen = strlen(q), elen, i;

	if (qlen > 0 && q[qlen - 1] == '.')
		qlen--;
	for (i = 0; i < nents; i++) {
		elen = strlen(ents[i]);
		if (elen > qlen)
			continue;
		if (strncasecmp(q + qlen - elen, ents[i], elen) != 0)
			continue;
		if (elen == qlen || q[qlen - elen - 1] == '.')
			return true;
	}
	return false;
}

static void
domset_random_against_reference(void **state)
{
	static const char *const prefix[] = { "", "", "*.", "." };
	char(*ents)[DNAME] = calloc(DENTRIES, DNAME);
	struct mw_domset *set = mw_domset_new();
	size_t i, hits = 0;

	(void)state;
	assert_non_null(ents);
	assert_non_null(set);
	rng_seed();
	for (i = 0; i < DENTRIES; i++) {
		char text[DNAME + 8];
		const char *why = NULL;

		/* Few one-label entries: each covers a large share. */
		random_domain(ents[i], rng() % 200 == 0 ? 1 : 2, 3);
		snprintf(text, sizeof(text), "%s%s%s", prefix[rng() % 4],
		    ents[i], rng() % 4 == 0 ? "." : "");
		if (!mw_domset_add(set, text, &why))
			fail_msg("add %s: %s", text, why);
	}
	for (i = 0; i < DLOOKUPS; i++) {
		char q[DNAME + 2];
		size_t len = random_domain(q, 1, 5);
		bool want, got;

		if (rng() % 4 == 0) {
			q[len] = '.';
			q[len + 1] = '\0';
		}
		want = brute_match(ents, DENTRIES, q);
		got = mw_domset_contains(set, q);
		if (got != want)
			fail_msg("lookup %s: %d, want %d", q, got, want);
		hits += got;
	}
	assert_true(hits > DLOOKUPS / 10);
	assert_true(hits < DLOOKUPS * 9 / 10);
	mw_domset_free(set);
	free(ents);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(strset_exact_matching),
		cmocka_unit_test(strset_nocase_folds_ascii_only),
		cmocka_unit_test(strset_grows_and_keeps_everything),
		cmocka_unit_test(strset_random_exact_against_reference),
		cmocka_unit_test(strset_random_nocase_against_reference),
		cmocka_unit_test(domset_table),
		cmocka_unit_test(domset_spellings_are_one_entry),
		cmocka_unit_test(domset_bad_entries_say_why),
		cmocka_unit_test(domset_length_limits_are_inclusive),
		cmocka_unit_test(domset_huge_names_are_walked_cheaply),
		cmocka_unit_test(domset_random_against_reference),
	};

	return cmocka_run_group_tests_name("strset", tests, NULL, NULL);
}
