/*
 * test_addr.c -- envelope addresses (RFC 5321 paths) and From: header
 * mailboxes (RFC 5322): normalisation, every form of sender-specified
 * routing, address literals, hostile input, and the display-name tricks a
 * submission check must see through.
 *
 * Tests named bug_* document parser behaviour that breaks the contract in
 * mw_addr.h or the RFCs in a way that matters for a relay or sender
 * decision.  They fail until the parser is fixed; do not "fix" them by
 * changing the expectation.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mw_addr.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *
str(const char *s)
{
	return s != NULL ? s : "(null)";
}

static bool
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ------------------------------------------------------ mw_addr_parse */

/*
 * One envelope address.  ok false means malformed; then only why is
 * checked (the contract says nothing about local and domain).  why NULL
 * means a->why must be NULL.
 */
struct addr_case {
	const char *raw;
	bool ok;
	const char *local;
	const char *domain;
	bool null;
	bool routed;
	bool literal;
	const char *why;
};

static void
check_addr(const struct addr_case *c)
{
	struct mw_addr a;
	bool ok;

	/* Garbage first: the parser must fill every field itself. */
	memset(&a, 0xa5, sizeof(a));
	ok = mw_addr_parse(c->raw, &a);
	if (ok != c->ok || a.malformed != !c->ok)
		fail_msg("\"%s\": returned %d malformed %d (why \"%s\"), "
			 "want ok %d",
		    c->raw, ok, a.malformed, str(a.why), c->ok);
	if (!same(a.why, c->why))
		fail_msg("\"%s\": why \"%s\", want \"%s\"", c->raw, str(a.why),
		    str(c->why));
	if (!c->ok)
		return;
	if (strcmp(a.local, c->local) != 0)
		fail_msg("\"%s\": local \"%s\", want \"%s\"", c->raw, a.local,
		    c->local);
	if (strcmp(a.domain, c->domain) != 0)
		fail_msg("\"%s\": domain \"%s\", want \"%s\"", c->raw, a.domain,
		    c->domain);
	if (a.null != c->null || a.routed != c->routed ||
	    a.literal != c->literal)
		fail_msg("\"%s\": null %d routed %d literal %d, want %d %d %d",
		    c->raw, a.null, a.routed, a.literal, c->null, c->routed,
		    c->literal);
}

static void
check_addr_table(const struct addr_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		check_addr(&cases[i]);
}

static const struct addr_case plain_cases[] = {
	{ .raw = "<user@example.org>",
	    .ok = true,
	    .local = "user",
	    .domain = "example.org" },
	{ .raw = "user@example.org",
	    .ok = true,
	    .local = "user",
	    .domain = "example.org" },
	/* Blanks around the path are not part of it. */
	{ .raw = " \t<user@example.org>\t ",
	    .ok = true,
	    .local = "user",
	    .domain = "example.org" },
	/* The null sender is not malformed. */
	{ .raw = "<>", .ok = true, .local = "", .domain = "", .null = true },
	/* RCPT TO:<postmaster> has no domain. */
	{ .raw = "<postmaster>",
	    .ok = true,
	    .local = "postmaster",
	    .domain = "" },
	/* Domain case and one trailing dot (the root) normalised away;
	 * the local part keeps its case (it may be case-sensitive). */
	{ .raw = "<u@EXAMPLE.Org.>",
	    .ok = true,
	    .local = "u",
	    .domain = "example.org" },
	{ .raw = "<John.Doe@Example.ORG>",
	    .ok = true,
	    .local = "John.Doe",
	    .domain = "example.org" },
	{ .raw = "first.last+tag@sub.example.org",
	    .ok = true,
	    .local = "first.last+tag",
	    .domain = "sub.example.org" },
	/* A quoted local part without routing characters is not routed;
	 * local is stored unquoted. */
	{ .raw = "\"john smith\"@example.org",
	    .ok = true,
	    .local = "john smith",
	    .domain = "example.org" },
	{ .raw = "<\"john smith\"@example.org>",
	    .ok = true,
	    .local = "john smith",
	    .domain = "example.org" },
	{ .raw = "\"a\\\"b\"@example.org",
	    .ok = true,
	    .local = "a\"b",
	    .domain = "example.org" },
};

static void
addr_parses_plain_forms_and_normalises_the_domain(void **state)
{
	(void)state;
	check_addr_table(plain_cases, NELEM(plain_cases));
}

/*
 * Sender-specified routing: routed is set and domain is the domain the
 * address names after any source route (the last "@"), so a caller can
 * refuse to call it local just because that domain is.
 */
static const struct addr_case routed_cases[] = {
	{ .raw = "user%remote.example@local.example",
	    .ok = true,
	    .local = "user%remote.example",
	    .domain = "local.example",
	    .routed = true,
	    .why = "percent hack" },
	{ .raw = "<user%remote.example@Local.Example.>",
	    .ok = true,
	    .local = "user%remote.example",
	    .domain = "local.example",
	    .routed = true,
	    .why = "percent hack" },
	{ .raw = "remote.example!user@local.example",
	    .ok = true,
	    .local = "remote.example!user",
	    .domain = "local.example",
	    .routed = true,
	    .why = "bang path" },
	/* Source route: the final destination is after the ":". */
	{ .raw = "<@hop1.example,@hop2.example:user@remote.example>",
	    .ok = true,
	    .local = "user",
	    .domain = "remote.example",
	    .routed = true,
	    .why = "source route" },
	{ .raw = "<@hop1.example:user@Remote.Example>",
	    .ok = true,
	    .local = "user",
	    .domain = "remote.example",
	    .routed = true,
	    .why = "source route" },
	/* The first form found names the reason. */
	{ .raw = "<@hop1.example:user%remote.example@local.example>",
	    .ok = true,
	    .local = "user%remote.example",
	    .domain = "local.example",
	    .routed = true,
	    .why = "source route" },
	/* Quoting hides nothing. */
	{ .raw = "\"user@remote.example\"@local.example",
	    .ok = true,
	    .local = "user@remote.example",
	    .domain = "local.example",
	    .routed = true,
	    .why = "quoted local part hides routing" },
	{ .raw = "\"user%remote.example\"@local.example",
	    .ok = true,
	    .local = "user%remote.example",
	    .domain = "local.example",
	    .routed = true,
	    .why = "quoted local part hides routing" },
	{ .raw = "\"remote.example!user\"@local.example",
	    .ok = true,
	    .local = "remote.example!user",
	    .domain = "local.example",
	    .routed = true,
	    .why = "quoted local part hides routing" },
	/* ... nor does a backslash inside the quotes. */
	{ .raw = "\"user\\@remote.example\"@local.example",
	    .ok = true,
	    .local = "user@remote.example",
	    .domain = "local.example",
	    .routed = true,
	    .why = "quoted local part hides routing" },
	/* Several "@": addr_several_at_is_routed_to_the_last_domain and
	 * bug_addr_several_at_drops_part_of_the_address. */
};

static void
addr_flags_every_form_of_sender_routing(void **state)
{
	(void)state;
	check_addr_table(routed_cases, NELEM(routed_cases));
}

static void expect_malformed(const char *raw, const char *why);

#define LABEL63 \
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/*
 * Several unquoted "@" are not an address: MTAs disagree on where such a
 * thing goes, so it is malformed -- never local, never anyone's own.
 */
static void
addr_several_at_is_malformed(void **state)
{
	(void)state;
	expect_malformed("user@remote.example@local.example", "several @");
	expect_malformed("<a@b.example@c.example@Local.Example>", "several @");
	expect_malformed("user@@example.org", "several @");
}

static const struct addr_case literal_cases[] = {
	{ .raw = "user@[192.0.2.1]",
	    .ok = true,
	    .local = "user",
	    .domain = "[192.0.2.1]",
	    .literal = true },
	{ .raw = "<user@[192.0.2.1]>",
	    .ok = true,
	    .local = "user",
	    .domain = "[192.0.2.1]",
	    .literal = true },
	/* The literal is kept as written, in lower case. */
	{ .raw = "user@[IPv6:2001:db8::1]",
	    .ok = true,
	    .local = "user",
	    .domain = "[ipv6:2001:db8::1]",
	    .literal = true },
	{ .raw = "user@[IPv6:2001:DB8::A]",
	    .ok = true,
	    .local = "user",
	    .domain = "[ipv6:2001:db8::a]",
	    .literal = true },
	{ .raw = "user@[300.1.1.1]", .why = "bad address literal" },
	{ .raw = "user@[example]", .why = "bad address literal" },
	{ .raw = "user@[]", .why = "bad address literal" },
	{ .raw = "user@[192.0.2.1", .why = "bad address literal" },
	{ .raw = "user@[192.0.2.1]x", .why = "bad address literal" },
	{ .raw = "user@[192.0.2]", .why = "bad address literal" },
	{ .raw = "user@[IPv6:2001:db8::g]", .why = "bad address literal" },
	{ .raw = "user@[IPv6:]", .why = "bad address literal" },
	{ .raw = "user@192.0.2.1]", .why = "invalid character in domain" },
};

static void
addr_accepts_address_literals_and_refuses_bad_ones(void **state)
{
	(void)state;
	check_addr_table(literal_cases, NELEM(literal_cases));
}

static const struct addr_case malformed_cases[] = {
	/* Domains. */
	{ .raw = "u@example.org..", .why = "empty label in domain" },
	{ .raw = "u@example..org", .why = "empty label in domain" },
	{ .raw = "u@.example.org", .why = "empty label in domain" },
	{ .raw = "u@.", .why = "bad domain length" },
	{ .raw = "u@", .why = "empty domain" },
	{ .raw = "<u@>", .why = "empty domain" },
	{ .raw = "u@exa$mple.org", .why = "invalid character in domain" },
	{ .raw = "u@exa mple.org", .why = "invalid character in domain" },
	{ .raw = "u@example.org%remote.example",
	    .why = "invalid character in domain" },
	{ .raw = "u@b\xc3\xbc"
		 "cher.example",
	    .why = "invalid character in domain" },
	{ .raw = "u@example.org\r\n", .why = "invalid character in domain" },
	/* Local parts. */
	{ .raw = "@example.org", .why = "source route without \":\"" },
	{ .raw = "<@hop1.example>", .why = "source route without \":\"" },
	{ .raw = ".user@example.org", .why = "misplaced dot in local part" },
	{ .raw = "user.@example.org", .why = "misplaced dot in local part" },
	{ .raw = "us..er@example.org", .why = "misplaced dot in local part" },
	{ .raw = "us er@example.org",
	    .why = "invalid character in local part" },
	{ .raw = "us\\er@example.org",
	    .why = "invalid character in local part" },
	{ .raw = "user(c)@example.org",
	    .why = "invalid character in local part" },
	{ .raw = "us\ter@example.org",
	    .why = "invalid character in local part" },
	{ .raw = "\"user\"x@example.org",
	    .why = "text after the quoted local part" },
	/* Hostile: unbalanced brackets. */
	{ .raw = "<user@example.org", .why = "unbalanced angle brackets" },
	{ .raw = "user@example.org>", .why = "unbalanced angle brackets" },
	{ .raw = "<", .why = "unbalanced angle brackets" },
	{ .raw = ">", .why = "unbalanced angle brackets" },
	{ .raw = "<<user@example.org>",
	    .why = "invalid character in local part" },
	{ .raw = "<user@example.org>>", .why = "invalid character in domain" },
	{ .raw = "<<user@example.org>>",
	    .why = "invalid character in local part" },
	{ .raw = "<user@example.org> x", .why = "unbalanced angle brackets" },
	{ .raw = "< user@example.org>",
	    .why = "invalid character in local part" },
	/* Hostile: control characters, even quoted or escaped. */
	{ .raw = "\"a\x01"
		 "b\"@example.org",
	    .why = "control character in local part" },
	{ .raw = "\"a\r\nb\"@example.org",
	    .why = "control character in local part" },
	{ .raw = "\"a\\\x7f"
		 "b\"@example.org",
	    .why = "control character in local part" },
	{ .raw = "a\x01"
		 "b@example.org",
	    .why = "invalid character in local part" },
	/* Hostile: unterminated quotes. */
	{ .raw = "\"user@example.org",
	    .why = "unterminated quoted local part" },
	{ .raw = "<\"user@example.org>",
	    .why = "unterminated quoted local part" },
	{ .raw = "\"user\\\"@example.org",
	    .why = "unterminated quoted local part" },
	{ .raw = "\"", .why = "unterminated quoted local part" },
};

static void
addr_refuses_malformed_and_hostile_input(void **state)
{
	(void)state;
	check_addr_table(malformed_cases, NELEM(malformed_cases));
}

/* A string of n copies of ch between prefix and suffix (caller frees). */
static char *
make_long(const char *prefix, int ch, size_t n, const char *suffix)
{
	size_t lp = strlen(prefix), ls = strlen(suffix);
	char *s = malloc(lp + n + ls + 1);

	assert_non_null(s);
	memcpy(s, prefix, lp);
	memset(s + lp, ch, n);
	memcpy(s + lp + n, suffix, ls + 1);
	return s;
}

static void
expect_malformed(const char *raw, const char *why)
{
	struct mw_addr a;

	if (mw_addr_parse(raw, &a) || !a.malformed)
		fail_msg("%zu-byte address accepted", strlen(raw));
	if (!same(a.why, why))
		fail_msg("%zu-byte address: why \"%s\", want \"%s\"",
		    strlen(raw), str(a.why), why);
	/* Whatever was copied stayed inside the fields. */
	assert_true(strlen(a.local) < sizeof(a.local));
	assert_true(strlen(a.domain) < sizeof(a.domain));
}

static void
addr_refuses_long_parts_without_overflow(void **state)
{
	struct mw_addr a;
	char *s;

	(void)state;
	s = make_long("", 'a', 600, "@example.org");
	expect_malformed(s, "local part too long");
	free(s);
	s = make_long("<\"", 'a', 600, "\"@example.org>");
	expect_malformed(s, "local part too long");
	free(s);
	s = make_long("u@", 'b', 296, ".org");
	expect_malformed(s, "domain too long");
	free(s);
	s = make_long("u@[", '1', 300, "]");
	expect_malformed(s, "domain too long");
	free(s);
	/* 254 bytes: longer than a domain may be. */
	s = make_long("u@", 'b', 250, ".org");
	expect_malformed(s, "bad domain length");
	free(s);
	/* Limits: 511 bytes of local part, 253 of domain (+ the root). */
	s = make_long("", 'a', MW_ADDR_LOCAL_MAX - 1, "@example.org");
	assert_true(mw_addr_parse(s, &a));
	assert_int_equal(strlen(a.local), MW_ADDR_LOCAL_MAX - 1);
	free(s);
	s = make_long("", 'a', MW_ADDR_LOCAL_MAX, "@example.org");
	expect_malformed(s, "local part too long");
	free(s);
	/* 253 bytes in labels of at most 63, plus the root's dot. */
	s = malloc(300);
	assert_non_null(s);
	snprintf(s, 300, "u@%.63s.%.63s.%.63s.%.61s.", LABEL63, LABEL63,
	    LABEL63, LABEL63);
	assert_true(mw_addr_parse(s, &a));
	assert_int_equal(strlen(a.domain), 253);
	assert_false(a.routed);
	free(s);
	/* A 64-byte label is too long (RFC 1035). */
	s = malloc(300);
	assert_non_null(s);
	snprintf(s, 300, "u@%.63sb.org", LABEL63);
	expect_malformed(s, "label longer than 63 bytes");
	free(s);
}

static void
addr_survives_a_100000_byte_string(void **state)
{
	static const struct {
		const char *prefix;
		int fill;
		const char *why;
	} cases[] = {
		{ "", 'a', "local part too long" },
		{ "", '.', "local part too long" },
		{ "", '%', "local part too long" },
		{ "", '[', "invalid character in local part" },
		{ "", '@', "source route without \":\"" },
		{ "", '"', "empty local part" },
		{ "", '<', "unbalanced angle brackets" },
		{ "\"", 'a', "local part too long" },
		{ "a@", 'b', "domain too long" },
		{ "a@[", '1', "domain too long" },
	};
	const size_t len = 100000;
	size_t i;
	char *s;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		s = make_long(cases[i].prefix, cases[i].fill,
		    len - strlen(cases[i].prefix), "");
		expect_malformed(s, cases[i].why);
		free(s);
	}
	/* 50,000 "a@": several "@" are not an address. */
	s = malloc(len + 1);
	assert_non_null(s);
	for (i = 0; i < len; i += 2)
		memcpy(s + i, "a@", 2);
	s[len] = '\0';
	expect_malformed(s, "several @");
	free(s);
}

static void
addr_clears_the_previous_result(void **state)
{
	struct mw_addr a;

	(void)state;
	assert_true(mw_addr_parse("\"x@y.example\"@[192.0.2.1]", &a));
	assert_true(a.routed);
	assert_true(a.literal);
	assert_true(mw_addr_parse("<>", &a));
	assert_true(a.null);
	assert_false(a.routed);
	assert_false(a.literal);
	assert_null(a.why);
	assert_false(mw_addr_parse("<x", &a));
	assert_true(mw_addr_parse("u@example.org", &a));
	assert_false(a.null);
	assert_false(a.malformed);
	assert_null(a.why);
	assert_string_equal(a.local, "u");
}

/* ----------------------------------------------------- mw_addr_format */

static void
addr_format_round_trips_canonical_forms(void **state)
{
	static const struct {
		const char *raw, *canon;
	} cases[] = {
		{ "<user@example.org>", "user@example.org" },
		{ "user@example.org", "user@example.org" },
		{ "<u@EXAMPLE.Org.>", "u@example.org" },
		{ "<postmaster>", "postmaster" },
		{ "<>", "" },
		{ "user@[192.0.2.1]", "user@[192.0.2.1]" },
		{ "user@[IPv6:2001:db8::1]", "user@[ipv6:2001:db8::1]" },
		{ "user%remote.example@local.example",
		    "user%remote.example@local.example" },
		{ "<@hop1.example,@hop2.example:user@remote.example>",
		    "user@remote.example" },
	};
	char buf[MW_ADDR_LOCAL_MAX + MW_ADDR_DOMAIN_MAX + 2];
	struct mw_addr a, b;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		if (!mw_addr_parse(cases[i].raw, &a))
			fail_msg("\"%s\" refused", cases[i].raw);
		assert_true(mw_addr_format(&a, buf, sizeof(buf)));
		if (strcmp(buf, cases[i].canon) != 0)
			fail_msg("\"%s\" formats as \"%s\", want \"%s\"",
			    cases[i].raw, buf, cases[i].canon);
		/* The canonical form reads back as itself. */
		if (a.null)
			continue;
		assert_true(mw_addr_parse(buf, &b));
		assert_string_equal(b.local, a.local);
		assert_string_equal(b.domain, a.domain);
		assert_int_equal(b.literal, a.literal);
	}
}

static void
addr_format_refuses_a_small_buffer(void **state)
{
	struct mw_addr a;
	char buf[32];

	(void)state;
	assert_true(mw_addr_parse("user@example.org", &a)); /* 16 bytes */
	assert_true(mw_addr_format(&a, buf, 17));
	assert_string_equal(buf, "user@example.org");
	memset(buf, 'x', sizeof(buf));
	assert_false(mw_addr_format(&a, buf, 16));
	assert_int_equal(buf[16], 'x'); /* nothing written past size */
	assert_false(mw_addr_format(&a, buf, 1));
	assert_false(mw_addr_format(&a, buf, 0));
	assert_true(mw_addr_parse("<postmaster>", &a));
	assert_false(mw_addr_format(&a, buf, 10));
	assert_true(mw_addr_format(&a, buf, 11));
	assert_true(mw_addr_parse("<>", &a));
	assert_true(mw_addr_format(&a, buf, 1));
	assert_string_equal(buf, "");
	assert_false(mw_addr_format(&a, buf, 0));
}

/* ------------------------------------------------------ mw_from_parse */

struct box {
	const char *local, *domain;
};

/* One From: value.  ok false: malformed, why checked (n is not). */
struct from_case {
	const char *value;
	bool ok;
	size_t n;
	bool group;
	struct box box[4];
	const char *why;
};

static void
check_from(const struct from_case *c)
{
	struct mw_from f;
	bool ok;
	size_t i;

	memset(&f, 0xa5, sizeof(f));
	ok = mw_from_parse(c->value, &f);
	if (ok != c->ok || f.malformed != !c->ok)
		fail_msg("From: %s -- returned %d malformed %d (why \"%s\"), "
			 "want ok %d",
		    c->value, ok, f.malformed, str(f.why), c->ok);
	if (!c->ok) {
		if (!same(f.why, c->why))
			fail_msg("From: %s -- why \"%s\", want \"%s\"",
			    c->value, str(f.why), str(c->why));
		return;
	}
	if (f.why != NULL)
		fail_msg("From: %s -- why \"%s\" on success", c->value, f.why);
	if (f.n != c->n || f.group != c->group)
		fail_msg("From: %s -- n %zu group %d, want n %zu group %d",
		    c->value, f.n, f.group, c->n, c->group);
	for (i = 0; i < c->n && i < NELEM(c->box); i++) {
		const struct mw_addr *a = &f.box[i];

		if (strcmp(a->local, c->box[i].local) != 0 ||
		    strcmp(a->domain, c->box[i].domain) != 0 || a->malformed ||
		    a->null)
			fail_msg("From: %s -- box[%zu] \"%s\"@\"%s\", want "
				 "\"%s\"@\"%s\"",
			    c->value, i, a->local, a->domain, c->box[i].local,
			    c->box[i].domain);
	}
}

static void
check_from_table(const struct from_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		check_from(&cases[i]);
}

static const struct from_case from_mailbox_cases[] = {
	{ .value = "alice@example.org",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "Alice <alice@example.org>",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "<alice@example.org>",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "Alice<alice@example.org>",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "Alice <Alice@Example.ORG.>",
	    .ok = true,
	    .n = 1,
	    .box = { { "Alice", "example.org" } } },
	/* A comma inside quotes does not end the mailbox. */
	{ .value = "\"Smith, Alice\" <alice@example.org>",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "\"Smith \\\"Al\\\" Alice\" <alice@example.org>",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	/* Comments, nested ones too, wherever CFWS may be. */
	{ .value = "alice@example.org (Alice Smith)",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "alice@example.org (a (b) c)",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "(a (b) c) Alice (x) <alice(y)@(z)example.org> (w)",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "alice@example.org (not \\) the end)",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	/* A comment naming another address changes nothing. */
	{ .value = "mallory@evil.example (alice@example.org)",
	    .ok = true,
	    .n = 1,
	    .box = { { "mallory", "evil.example" } } },
	/* Encoded-word display names (RFC 2047). */
	{ .value = "=?UTF-8?B?QWxpY2U=?= <alice@example.org>",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "=?utf-8?q?J=C3=B6rg?= <j@example.org>",
	    .ok = true,
	    .n = 1,
	    .box = { { "j", "example.org" } } },
	/* Raw UTF-8 (RFC 6532) in the display name and the local part. */
	{ .value = "J\xc3\xb6rg <j\xc3\xb6rg@example.org>",
	    .ok = true,
	    .n = 1,
	    .box = { { "j\xc3\xb6rg", "example.org" } } },
	/* A quoted local part is one mailbox at the domain after it. */
	{ .value = "\"john smith\"@example.org",
	    .ok = true,
	    .n = 1,
	    .box = { { "john smith", "example.org" } } },
	{ .value = "alice@[192.0.2.1]",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "[192.0.2.1]" } } },
	/* Obsolete syntax: CFWS around "@" and ".". */
	{ .value = "alice @ example.org",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	/* Folding: CRLF + WSP inside the value. */
	{ .value = "Alice\r\n\t<alice@example.org>",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "\"Smith,\r\n Alice\"\r\n <alice@example.org>\r\n (c)",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org" } } },
	{ .value = "a@example.org,\r\n\tb@example.org",
	    .ok = true,
	    .n = 2,
	    .box = { { "a", "example.org" }, { "b", "example.org" } } },
};

static void
from_reads_single_mailboxes_in_every_form(void **state)
{
	(void)state;
	check_from_table(from_mailbox_cases, NELEM(from_mailbox_cases));
}

static const struct from_case from_list_cases[] = {
	{ .value = "a@example.org, b@example.org",
	    .ok = true,
	    .n = 2,
	    .box = { { "a", "example.org" }, { "b", "example.org" } } },
	{ .value = "A <a@example.org>, \"B, b\" <b@example.org>, c@x.example",
	    .ok = true,
	    .n = 3,
	    .box = { { "a", "example.org" }, { "b", "example.org" },
		{ "c", "x.example" } } },
	/* Empty list elements (obs-mbox-list) are skipped. */
	{ .value = "a@example.org,, b@example.org,",
	    .ok = true,
	    .n = 2,
	    .box = { { "a", "example.org" }, { "b", "example.org" } } },
	{ .value = "Team: a@example.org, b@example.org;",
	    .ok = true,
	    .n = 2,
	    .group = true,
	    .box = { { "a", "example.org" }, { "b", "example.org" } } },
	{ .value = "\"The Team\": A <a@example.org>;",
	    .ok = true,
	    .n = 1,
	    .group = true,
	    .box = { { "a", "example.org" } } },
	{ .value = "x@example.org, Team: a@example.org;",
	    .ok = true,
	    .n = 2,
	    .group = true,
	    .box = { { "x", "example.org" }, { "a", "example.org" } } },
};

static void
from_reads_mailbox_lists_and_groups(void **state)
{
	(void)state;
	check_from_table(from_list_cases, NELEM(from_list_cases));
}

/*
 * What a submission check compares with the login is the mailbox, never
 * text a reader would take for it.
 */
static const struct from_case from_spoof_cases[] = {
	{ .value = "\"alice@example.org\" <mallory@evil.example>",
	    .ok = true,
	    .n = 1,
	    .box = { { "mallory", "evil.example" } } },
	{ .value = "\"Alice <alice@example.org>\" <mallory@evil.example>",
	    .ok = true,
	    .n = 1,
	    .box = { { "mallory", "evil.example" } } },
	{ .value = "=?UTF-8?B?YWxpY2VAZXhhbXBsZS5vcmc=?= "
		   "<mallory@evil.example>",
	    .ok = true,
	    .n = 1,
	    .box = { { "mallory", "evil.example" } } },
	/* Every mailbox is listed, not just the first or the last. */
	{ .value = "Alice <mallory@evil.example>, alice@example.org",
	    .ok = true,
	    .n = 2,
	    .box = { { "mallory", "evil.example" },
		{ "alice", "example.org" } } },
	{ .value = "alice@example.org, Alice <mallory@evil.example>",
	    .ok = true,
	    .n = 2,
	    .box = { { "alice", "example.org" },
		{ "mallory", "evil.example" } } },
	/* A quoted local part that looks like an address: the domain is
	 * the one after the quotes (and the box is routed). */
	{ .value = "\"alice@example.org\"@evil.example",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice@example.org", "evil.example" } } },
	/* Spaced-out dots are one domain (obs-domain), not example.org. */
	{ .value = "alice@example.org .evil.example",
	    .ok = true,
	    .n = 1,
	    .box = { { "alice", "example.org.evil.example" } } },
	/* An obsolete route is not the mailbox. */
	{ .value = "<@example.org:mallory@evil.example>",
	    .ok = true,
	    .n = 1,
	    .box = { { "mallory", "evil.example" } } },
	/* Two angle addresses, or words around an address: no mailbox. */
	{ .value = "Alice <alice@example.org> <mallory@evil.example>",
	    .why = "more than one <address>" },
	{ .value = "<alice@example.org><mallory@evil.example>",
	    .why = "more than one <address>" },
	{ .value = "<mallory@evil.example> alice@example.org",
	    .why = "text after <address>" },
	{ .value = "<mallory@evil.example>@example.org",
	    .why = "text after <address>" },
	{ .value = "\"alice@example.org\" mallory@evil.example",
	    .why = "words without an address in <>" },
	{ .value = "alice@example.org mallory@evil.example",
	    .why = "words without an address in <>" },
	{ .value = "alice@example org",
	    .why = "words without an address in <>" },
	{ .value = "Alice <alice@example.org, mallory@evil.example>",
	    .why = "unterminated <" },
};

static void
from_takes_the_mailbox_not_what_the_reader_sees(void **state)
{
	(void)state;
	check_from_table(from_spoof_cases, NELEM(from_spoof_cases));
}

/*
 * RFC 5322 does not allow "@" in an unquoted display name (or group
 * name).  The parser takes the angle address; refusing the value would be
 * right too.  What it must never do is name alice.
 */
static void
from_unquoted_address_as_display_name_never_names_it(void **state)
{
	static const char *const values[] = {
		"alice@example.org <mallory@evil.example>",
		"alice@example.org (x) <mallory@evil.example>",
		"alice@example.org: mallory@evil.example;",
	};
	struct mw_from f;
	size_t i, j;

	(void)state;
	for (i = 0; i < NELEM(values); i++) {
		if (!mw_from_parse(values[i], &f)) {
			assert_true(f.malformed);
			continue;
		}
		if (f.n != 1)
			fail_msg("From: %s -- %zu mailboxes", values[i], f.n);
		for (j = 0; j < f.n; j++)
			if (strcmp(f.box[j].local, "alice") == 0)
				fail_msg("From: %s -- names alice", values[i]);
		assert_string_equal(f.box[0].local, "mallory");
		assert_string_equal(f.box[0].domain, "evil.example");
	}
}

static const struct from_case from_malformed_cases[] = {
	{ .value = "", .why = "no mailbox" },
	{ .value = " \r\n\t", .why = "no mailbox" },
	{ .value = "(only a comment)", .why = "no mailbox" },
	{ .value = "undisclosed-recipients:;", .why = "no mailbox" },
	{ .value = "John Smith", .why = "words without an address in <>" },
	{ .value = "Smith, Alice <alice@example.org>",
	    .why = "a mailbox needs local@domain" },
	{ .value = "alice", .why = "a mailbox needs local@domain" },
	{ .value = "<>", .why = "empty address" },
	{ .value = "Alice <>", .why = "empty address" },
	{ .value = "<postmaster>", .why = "a mailbox needs local@domain" },
	{ .value = "alice@", .why = "empty domain" },
	{ .value = "alice@example..org", .why = "empty label in domain" },
	{ .value = "ali ce@example.org",
	    .why = "words without an address in <>" },
	{ .value = "\"a\x01"
		   "b\"@example.org",
	    .why = "control character in local part" },
	/* Unterminated things. */
	{ .value = "\"Alice <alice@example.org>",
	    .why = "unterminated quoted string" },
	{ .value = "\"Alice\\\" <alice@example.org>",
	    .why = "unterminated quoted string" },
	{ .value = "alice@example.org (Alice", .why = "unterminated comment" },
	{ .value = "alice@example.org (a (b) c",
	    .why = "unterminated comment" },
	{ .value = "alice@example.org (a \\)", .why = "unterminated comment" },
	{ .value = "Alice <alice@example.org", .why = "unterminated <" },
	{ .value = "alice@[192.0.2.1", .why = "unterminated domain literal" },
	{ .value = "Alice alice@example.org>", .why = "\">\" without \"<\"" },
	{ .value = "Alice <<alice@example.org>>",
	    .why = "more than one <address>" },
	/* Groups. */
	{ .value = "Team: a@example.org", .why = "group without \";\"" },
	{ .value = "a@example.org;", .why = "\";\" outside a group" },
	{ .value = "A: B: a@example.org;;", .why = "misplaced \":\"" },
	{ .value = "<a@example.org>: b@example.org;",
	    .why = "misplaced \":\"" },
	/* Characters no token takes. */
	{ .value = "alice]@example.org", .why = "unexpected character" },
};

static void
from_refuses_values_that_are_not_a_mailbox_list(void **state)
{
	(void)state;
	check_from_table(from_malformed_cases, NELEM(from_malformed_cases));
}

static void
from_counts_every_mailbox_and_keeps_the_first_max(void **state)
{
	const size_t total = MW_FROM_MAX + 9;
	char *value = malloc(total * 32), *p = value;
	struct mw_from f;
	char want[16];
	size_t i;

	(void)state;
	assert_non_null(value);
	for (i = 0; i < total; i++)
		p += sprintf(p, "%sU%zu <u%zu@example.org>", i ? ", " : "", i,
		    i);
	assert_true(mw_from_parse(value, &f));
	assert_int_equal(f.n, total);
	for (i = 0; i < MW_FROM_MAX; i++) {
		snprintf(want, sizeof(want), "u%zu", i);
		assert_string_equal(f.box[i].local, want);
		assert_string_equal(f.box[i].domain, "example.org");
	}
	/* A bad mailbox past the kept ones still makes the value bad. */
	strcpy(p, ", John Smith");
	assert_false(mw_from_parse(value, &f));
	assert_true(f.malformed);
	strcpy(p, ", x@");
	assert_false(mw_from_parse(value, &f));
	assert_string_equal(f.why, "empty domain");
	free(value);
}

static void
from_refuses_huge_values_without_overflow(void **state)
{
	struct mw_from f;
	char *s, *deep;
	size_t i;

	(void)state;
	s = make_long("", 'a', 100000, "@example.org");
	assert_false(mw_from_parse(s, &f));
	assert_string_equal(f.why, "word too long");
	free(s);
	s = make_long("\"", 'a', 100000, "\" <a@example.org>");
	assert_false(mw_from_parse(s, &f));
	assert_string_equal(f.why, "quoted string too long");
	free(s);
	s = make_long("a@[", '1', 100000, "]");
	assert_false(mw_from_parse(s, &f));
	assert_string_equal(f.why, "unterminated domain literal");
	free(s);
	/* Words that each fit but make too long an address together. */
	s = make_long("", 'a', 1000, "");
	deep = malloc(4 * 1100);
	assert_non_null(deep);
	sprintf(deep, "%s . %s@example.org", s, s);
	assert_false(mw_from_parse(deep, &f));
	assert_string_equal(f.why, "address too long");
	/* ... and a 600-byte local part fits the lexer, not the address. */
	sprintf(deep, "%.600s@example.org", s);
	assert_false(mw_from_parse(deep, &f));
	assert_string_equal(f.why, "local part too long");
	sprintf(deep, "\"%.600s\" <a@example.org>", s);
	assert_true(mw_from_parse(deep, &f));
	free(deep);
	free(s);
	/* 100,000 bytes of nothing but specials or an open comment. */
	s = make_long("", ',', 100000, "");
	assert_false(mw_from_parse(s, &f));
	assert_string_equal(f.why, "no mailbox");
	free(s);
	s = make_long("", '(', 100000, "");
	assert_false(mw_from_parse(s, &f));
	assert_string_equal(f.why, "unterminated comment");
	free(s);
	s = make_long("", '<', 100000, "");
	assert_false(mw_from_parse(s, &f));
	assert_true(f.malformed);
	free(s);
	/* 50,000 nested comments, closed: no recursion to run out of. */
	s = malloc(100000 + 32);
	assert_non_null(s);
	for (i = 0; i < 50000; i++) {
		s[i] = '(';
		s[100000 - 1 - i] = ')';
	}
	strcpy(s + 100000, "a@example.org");
	assert_true(mw_from_parse(s, &f));
	assert_int_equal(f.n, 1);
	free(s);
}

static void
from_clears_the_previous_result(void **state)
{
	struct mw_from f;

	(void)state;
	assert_true(mw_from_parse("T: a@example.org, b@example.org;", &f));
	assert_true(f.group);
	assert_false(mw_from_parse("John Smith", &f));
	assert_int_equal(f.n, 0);
	assert_false(f.group);
	assert_true(mw_from_parse("c@example.org", &f));
	assert_int_equal(f.n, 1);
	assert_false(f.malformed);
	assert_null(f.why);
	assert_false(f.group);
}

/* ------------------------------------------------------------ bugs */

/*
 * BUG (sender spoofing).  An addr-spec has exactly one unquoted "@"
 * (RFC 5322 3.4.1), so "alice@example.org@evil.example" is not a mailbox
 * and the header is not a mailbox list: mw_from_parse must return false.
 * It returns true, n 1, box[0] alice@evil.example (routed).  Parsers
 * disagree on such a value -- some take the first "@" -- so what the
 * submission check compares (header.from, header.from.domain, the owned
 * test, none of which look at box[].routed) need not be what the reader
 * or a DMARC verifier sees.  The reverse order gives
 * mallory@example.org to the check.
 */
static void
bug_from_accepts_several_at_in_one_mailbox(void **state)
{
	static const char *const values[] = {
		"alice@example.org@evil.example",
		"<alice@example.org@evil.example>",
		"Alice <alice@example.org@evil.example>",
		"mallory@evil.example@example.org",
		"alice@@example.org",
	};
	struct mw_from f;
	size_t i, bad = 0;

	(void)state;
	for (i = 0; i < NELEM(values); i++)
		if (mw_from_parse(values[i], &f) || !f.malformed) {
			print_error("From: %s -- accepted as %zu mailbox(es), "
				    "box[0] %s@%s; want malformed\n",
			    values[i], f.n, f.box[0].local, f.box[0].domain);
			bad++;
		}
	assert_int_equal(bad, 0);
}

/*
 * BUG (routing hidden from the canonical form).  For
 * "user@remote.example@local.example" local is "user": the part between
 * the first and the last "@" is dropped, so mw_addr_format gives
 * "user@local.example" -- a different, unrouted-looking address -- while
 * the quoted spelling of the same routing keeps local
 * "user@remote.example".  eval.c's owned() formats the address and does
 * not look at routed, so a login owning alice@example.org "owns" MAIL
 * FROM:<alice@evil.example@example.org>.  The file's own rule is "never
 * cut": local must be "user@remote.example" (everything before the last
 * "@"), or the address refused.
 */
static void
bug_addr_several_at_drops_part_of_the_address(void **state)
{
	static const char *const raws[] = {
		"user@remote.example@local.example",
		"<alice@evil.example@example.org>",
	};
	char buf[MW_ADDR_LOCAL_MAX + MW_ADDR_DOMAIN_MAX + 2];
	struct mw_addr a;
	size_t i, bad = 0;

	(void)state;
	for (i = 0; i < NELEM(raws); i++) {
		if (!mw_addr_parse(raws[i], &a))
			continue; /* refusing it is fine */
		assert_true(a.routed);
		assert_true(mw_addr_format(&a, buf, sizeof(buf)));
		if (strstr(raws[i], buf) == NULL ||
		    strchr(a.local, '@') == NULL) {
			print_error("\"%s\": local \"%s\", formats as "
				    "\"%s\"; want local to keep everything "
				    "before the last @\n",
			    raws[i], a.local, buf);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    addr_parses_plain_forms_and_normalises_the_domain),
		cmocka_unit_test(addr_flags_every_form_of_sender_routing),
		cmocka_unit_test(addr_several_at_is_malformed),
		cmocka_unit_test(
		    addr_accepts_address_literals_and_refuses_bad_ones),
		cmocka_unit_test(addr_refuses_malformed_and_hostile_input),
		cmocka_unit_test(addr_refuses_long_parts_without_overflow),
		cmocka_unit_test(addr_survives_a_100000_byte_string),
		cmocka_unit_test(addr_clears_the_previous_result),
		cmocka_unit_test(addr_format_round_trips_canonical_forms),
		cmocka_unit_test(addr_format_refuses_a_small_buffer),
		cmocka_unit_test(from_reads_single_mailboxes_in_every_form),
		cmocka_unit_test(from_reads_mailbox_lists_and_groups),
		cmocka_unit_test(
		    from_takes_the_mailbox_not_what_the_reader_sees),
		cmocka_unit_test(
		    from_unquoted_address_as_display_name_never_names_it),
		cmocka_unit_test(
		    from_refuses_values_that_are_not_a_mailbox_list),
		cmocka_unit_test(
		    from_counts_every_mailbox_and_keeps_the_first_max),
		cmocka_unit_test(from_refuses_huge_values_without_overflow),
		cmocka_unit_test(from_clears_the_previous_result),
		cmocka_unit_test(bug_from_accepts_several_at_in_one_mailbox),
		cmocka_unit_test(bug_addr_several_at_drops_part_of_the_address),
	};

	return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
