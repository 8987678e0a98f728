/*
 * test_checks.c -- the HELO, client-name and Date: checks behind the spam
 * rules' fields, table-driven.
 */
#include "config.h"

#include "helpers.h"
#include "mw_checks.h"

static void
helo_checks(void **state)
{
	static const struct {
		const char *helo;
		bool bare_ip, bad_chars;
	} cases[] = {
		{ "mail.example.org", false, false },
		{ "192.0.2.1", true, false },
		{ "192.0.2.1.", true, false },
		{ "2001:db8::1", true, true },
		{ "[192.0.2.1]", false, false },
		{ "[IPv6:2001:db8::1]", false, false },
		{ "mail_server.example.org", false, true },
		{ "bad name", false, true },
		{ "-lead.example.org", false, true },
		{ "a..b.example", false, true },
		{ "", false, true },
		{ "localhost", false, false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (mw_helo_bare_ip(cases[i].helo) != cases[i].bare_ip)
			fail_msg("bare_ip(%s)", cases[i].helo);
		if (mw_helo_bad_chars(cases[i].helo) != cases[i].bad_chars)
			fail_msg("bad_chars(%s)", cases[i].helo);
	}
}

static void
helo_matches_client_name(void **state)
{
	(void)state;
	assert_true(mw_helo_matches("mx1.example.org", "MX1.example.org."));
	assert_true(mw_helo_matches("mx1.example.org", "mx2.example.org"));
	assert_false(mw_helo_matches("mx1.example.org", "host.example.net"));
	/* A shared top-level domain is no match. */
	assert_false(mw_helo_matches("example.org", "other.org"));
	assert_false(mw_helo_matches("mx1.example.org", "unknown"));
	assert_false(mw_helo_matches("mx1.example.org", "[192.0.2.1]"));
	assert_true(mw_client_unknown("unknown"));
	assert_true(mw_client_unknown("[192.0.2.1]"));
	assert_true(mw_client_unknown(""));
	assert_false(mw_client_unknown("mx.example.org"));
}

static void
dates_parse_as_rfc_5322_says(void **state)
{
	static const struct {
		const char *value;
		bool ok;
		int64_t when;
	} cases[] = {
		{ "Tue, 8 Dec 2026 10:00:00 +0000", true, 1796724000 },
		{ "8 Dec 2026 10:00:00 +0000", true, 1796724000 },
		{ "Tue, 08 Dec 2026 11:00:00 +0100", true, 1796724000 },
		{ "Tue, 8 Dec 2026 05:00:00 EST", true, 1796724000 },
		{ "Tue, 8 Dec 2026 10:00 GMT", true, 1796724000 },
		{ "Tue, 8 Dec 26 10:00:00 +0000 (UTC)", true, 1796724000 },
		{ "Thu, 1 Jan 1970 00:00:00 +0000", true, 0 },
		{ "Mon, 29 Feb 2016 12:00:00 -0130", true, 1456752600 },
		{ "yesterday", false, 0 },
		{ "Tue, 8 Foo 2026 10:00:00 +0000", false, 0 },
		{ "Tue, 8 Dec 2026 25:00:00 +0000", false, 0 },
		{ "Tue 8 Dec 2026 10:00:00 +0000", false, 0 },
		{ "", false, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t when = -1;
		bool ok = mw_date_parse(cases[i].value, &when);

		if (ok != cases[i].ok || (ok && when != cases[i].when))
			fail_msg("\"%s\": ok=%d when=%lld", cases[i].value, ok,
			    (long long)when);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(helo_checks),
		cmocka_unit_test(helo_matches_client_name),
		cmocka_unit_test(dates_parse_as_rfc_5322_says),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
