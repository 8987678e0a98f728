/*
 * test_text.c -- printable copies of untrusted text, bounded copies.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mw_text.h"

static void
printable_keeps_plain_ascii(void **state)
{
	char out[64];

	(void)state;
	assert_true(mw_printable(out, sizeof(out), "mx.example.org", 14));
	assert_string_equal(out, "mx.example.org");
}

static void
printable_escapes_controls_quotes_and_8bit(void **state)
{
	char out[64];
	const char in[] = "a\r\nb\"c\\d\x01\xff";

	(void)state;
	assert_true(mw_printable(out, sizeof(out), in, sizeof(in) - 1));
	assert_string_equal(out, "a\\x0d\\x0ab\\\"c\\\\d\\x01\\xff");
}

static void
printable_shows_embedded_nul(void **state)
{
	char out[64];

	(void)state;
	assert_true(mw_printable(out, sizeof(out), "a\0b", 3));
	assert_string_equal(out, "a\\x00b");
}

static void
printable_marks_truncation(void **state)
{
	char out[8];

	(void)state;
	assert_false(mw_printable(out, sizeof(out), "abcdefghijkl", 12));
	assert_string_equal(out, "abcd...");
	assert_true(strlen(out) < sizeof(out));
	/* An escape never gets cut in half. */
	assert_false(mw_printable(out, sizeof(out), "abcde\x01zz", 8));
	assert_null(strstr(out, "\\x0"));
	/* Exactly fitting text is not truncated. */
	assert_true(mw_printable(out, sizeof(out), "abcdefg", 7));
	assert_string_equal(out, "abcdefg");
}

static void
strlcpy_reports_truncation(void **state)
{
	char out[4];

	(void)state;
	assert_true(mw_strlcpy(out, "abc", sizeof(out)));
	assert_string_equal(out, "abc");
	assert_false(mw_strlcpy(out, "abcd", sizeof(out)));
	assert_string_equal(out, "abc");
}

static void
strdup_bounded_refuses_long_input(void **state)
{
	char *p;

	(void)state;
	p = mw_strdup_bounded("hello", 5);
	assert_non_null(p);
	assert_string_equal(p, "hello");
	free(p);
	assert_null(mw_strdup_bounded("hello!", 5));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(printable_keeps_plain_ascii),
		cmocka_unit_test(printable_escapes_controls_quotes_and_8bit),
		cmocka_unit_test(printable_shows_embedded_nul),
		cmocka_unit_test(printable_marks_truncation),
		cmocka_unit_test(strlcpy_reports_truncation),
		cmocka_unit_test(strdup_bounded_refuses_long_input),
	};

	return cmocka_run_group_tests_name("text", tests, NULL, NULL);
}
