/*
 * test_config.c -- the configuration table, parser and its diagnostics.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "mw_config.h"
#include "mw_log.h"

static struct mw_config *
parse(const char *text, struct mw_diag *d)
{
	mw_diag_init(d);
	return mw_config_parse("t.conf", text, strlen(text), d);
}

/* Parse text expecting exactly the given diagnostics, in order. */
static void
expect_errors(const char *text, const char *const *want)
{
	struct mw_diag d;
	size_t n = 0;

	assert_null(parse(text, &d));
	for (; want[n] != NULL; n++) {
		assert_true(n < d.n);
		assert_string_equal(d.v[n].text, want[n]);
	}
	assert_int_equal(d.n, n);
	assert_int_equal(d.nerrors, n);
	mw_diag_free(&d);
}

static void
empty_file_gives_every_default(void **state)
{
	struct mw_config *c;
	struct mw_diag d;

	(void)state;
	c = parse("", &d);
	assert_non_null(c);
	assert_int_equal(d.n, 0);
	assert_string_equal(c->socket,
	    "unix:/run/milter-warden/milter-warden.sock");
	assert_int_equal(c->socket_mode, 0660);
	assert_string_equal(c->socket_group, "");
	assert_string_equal(c->user, "milter-warden");
	assert_string_equal(c->pidfile, "");
	assert_int_equal(c->nrules, 2);
	assert_string_equal(c->rules[0], SYSCONFDIR "/milter-warden/mx.rules");
	assert_string_equal(c->rules[1],
	    SYSCONFDIR "/milter-warden/submission.rules");
	assert_int_equal(c->log_level, MW_LOG_INFO);
	assert_int_equal(c->syslog_facility, LOG_MAIL);
	assert_int_equal(c->on_internal_error, MW_ON_ERROR_TEMPFAIL);
	assert_int_equal(c->max_header_bytes, 1024 * 1024);
	assert_int_equal(c->max_recipients, 1000);
	assert_int_equal(c->max_body_scan_bytes, 1024 * 1024);
	assert_int_equal(c->milter_timeout, 7210);
	assert_int_equal(c->shutdown_timeout, 30);
	assert_int_equal(c->listen_backlog, 128);
	mw_config_free(c);
	mw_diag_free(&d);
}

static void
every_parameter_has_help_and_a_valid_default(void **state)
{
	const struct mw_param *p;
	struct mw_config *c;
	struct mw_diag d;
	char line[512];
	size_t n, i;

	(void)state;
	p = mw_config_params(&n);
	assert_true(n >= 16);
	for (i = 0; i < n; i++) {
		assert_non_null(p[i].help);
		assert_true(strlen(p[i].help) > 10);
		/* Writing the default explicitly gives the same value. */
		snprintf(line, sizeof(line), "%s = %s\n", p[i].name,
		    p[i].def[0] != '\0' ? p[i].def : "\"\"");
		c = parse(line, &d);
		assert_non_null(c);
		assert_int_equal(d.n, 0);
		mw_config_free(c);
		mw_diag_free(&d);
	}
}

/* The manual page and the README document every parameter in the table. */
static void
every_parameter_is_documented(void **state)
{
	static const char *const docs[] = { "doc/milter-warden.conf.5",
		"README.md", "packaging/milter-warden.conf" };
	const char *top = getenv("top_srcdir");
	const struct mw_param *p;
	size_t n, i, k;

	(void)state;
	p = mw_config_params(&n);
	for (k = 0; k < sizeof(docs) / sizeof(docs[0]); k++) {
		char path[1024], *buf;
		size_t len;
		FILE *fp;

		snprintf(path, sizeof(path), "%s/%s", top ? top : ".", docs[k]);
		fp = fopen(path, "r");
		if (fp == NULL)
			fail_msg("cannot open %s", path);
		buf = calloc(1, 1 << 20);
		assert_non_null(buf);
		len = fread(buf, 1, (1 << 20) - 1, fp);
		buf[len] = '\0';
		fclose(fp);
		for (i = 0; i < n; i++) {
			char needle[128];

			/* roff escapes '_' nowhere, but may break with \- etc.
			 */
			snprintf(needle, sizeof(needle), "%s", p[i].name);
			if (strstr(buf, needle) == NULL)
				fail_msg("%s does not document %s", path,
				    p[i].name);
		}
		free(buf);
	}
}

static void
values_of_every_type_are_parsed(void **state)
{
	struct mw_config *c;
	struct mw_diag d;

	(void)state;
	c = parse("# comment\n"
		  "\n"
		  "   socket = inet:8891@127.0.0.1   # trailing comment\n"
		  "socket_mode=0600\n"
		  "socket_group = postfix\n"
		  "rules = /a.rules, /b.rules /c#d.rules\n"
		  "log_level = debug\r\n"
		  "syslog_facility = local3\n"
		  "on_internal_error = accept\n"
		  "max_header_bytes = 64k\n"
		  "max_recipients = 5\n"
		  "max_body_scan_bytes = 2M\n"
		  "pidfile = \"\"\n"
		  "user =\n",
	    &d);
	assert_non_null(c);
	assert_int_equal(d.n, 0);
	assert_string_equal(c->socket, "inet:8891@127.0.0.1");
	assert_int_equal(c->socket_mode, 0600);
	assert_string_equal(c->socket_group, "postfix");
	assert_int_equal(c->nrules, 3);
	assert_string_equal(c->rules[0], "/a.rules");
	assert_string_equal(c->rules[1], "/b.rules");
	assert_string_equal(c->rules[2], "/c#d.rules");
	assert_null(c->rules[3]);
	assert_int_equal(c->log_level, MW_LOG_DEBUG);
	assert_int_equal(c->syslog_facility, LOG_LOCAL3);
	assert_int_equal(c->on_internal_error, MW_ON_ERROR_ACCEPT);
	assert_int_equal(c->max_header_bytes, 64 * 1024);
	assert_int_equal(c->max_recipients, 5);
	assert_int_equal(c->max_body_scan_bytes, 2 * 1024 * 1024);
	assert_string_equal(c->pidfile, "");
	assert_string_equal(c->user, "");
	mw_config_free(c);
	mw_diag_free(&d);
}

static void
every_error_is_reported_with_file_line_column(void **state)
{
	static const char *const want[] = {
		"t.conf:2:1: unknown parameter \"bogus\"",
		"t.conf:3:18: max_recipients: \"lots\" is not a whole number",
		"t.conf:4:13: socket_mode: \"0999\" is not an octal mode such as 0660",
		"t.conf:5:3: expected a parameter name (lower-case letters, digits, _)",
		"t.conf:6:11: expected \"=\" after \"log_level\"",
		"t.conf:7:13: log_level: \"loud\" is not one of: error, warning, notice, info, debug",
		"t.conf:8:18: listen_backlog: 0 is out of range (1 to 65535)",
		"t.conf:9:1: \"socket_mode\" is already set at line 4",
		"t.conf:10:22: max_header_bytes: unexpected \"q\" after the number",
		"t.conf:11:10: socket: a value is required",
		"t.conf:12:19: milter_timeout: unexpected \"x10\" after the number",
		"t.conf:13:23: max_body_scan_bytes: 99999999999999999999 is too large",
		"t.conf:14:20: shutdown_timeout: \"-1\" is not a whole number",
		NULL
	};

	(void)state;
	expect_errors("user = x\n"
		      "bogus = 1\n"
		      "max_recipients = lots\n"
		      "socket_mode=0999\n"
		      "  = x\n"
		      "log_level debug\n"
		      "log_level = loud\n"
		      "listen_backlog = 0\n"
		      "socket_mode = 0600\n"
		      "max_header_bytes = 10q\n"
		      "socket = \n"
		      "milter_timeout = 0x10\n"
		      "max_body_scan_bytes = 99999999999999999999\n"
		      "shutdown_timeout = -1\n",
	    want);
}

static void
octal_mode_above_0777_is_refused(void **state)
{
	static const char *const want[] = {
		"t.conf:1:13: socket_mode: 1000 is above the maximum 0777", NULL
	};

	(void)state;
	expect_errors("socket_mode=1000\n", want);
}

static void
duplicate_is_an_error_even_with_the_same_value(void **state)
{
	static const char *const want[] = {
		"t.conf:2:1: \"max_recipients\" is already set at line 1", NULL
	};

	(void)state;
	expect_errors("max_recipients = 5\nmax_recipients = 5\n", want);
}

static void
control_characters_and_nul_are_refused(void **state)
{
	static const char *const want[] = {
		"t.conf:1:13: socket: control character 0x01 in value",
		"t.conf:2:2: NUL byte in line", NULL
	};
	const char text[] = "socket = abc\x01\nx\0y = 1\n";
	struct mw_diag d;
	size_t n;

	(void)state;
	mw_diag_init(&d);
	assert_null(mw_config_parse("t.conf", text, sizeof(text) - 1, &d));
	for (n = 0; want[n] != NULL; n++)
		assert_string_equal(d.v[n].text, want[n]);
	assert_int_equal(d.n, n);
	mw_diag_free(&d);
}

static void
overlong_line_is_refused(void **state)
{
	static const char *const want[] = {
		"t.conf:1:4097: line longer than 4096 bytes", NULL
	};
	char *text = malloc(5000);

	(void)state;
	memset(text, 'a', 4999);
	text[4999] = '\0';
	expect_errors(text, want);
	free(text);
}

static void
missing_file_names_the_file_and_reason(void **state)
{
	struct mw_diag d;

	(void)state;
	mw_diag_init(&d);
	assert_null(mw_config_load("/nonexistent/mw.conf", &d));
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].text,
	    "/nonexistent/mw.conf: cannot open: No such file or directory");
	mw_diag_free(&d);
}

static void
override_is_validated(void **state)
{
	struct mw_config *c;
	struct mw_diag d;

	(void)state;
	c = parse("", &d);
	assert_non_null(c);
	assert_true(mw_config_set(c, "socket", "inet:1234@127.0.0.1", &d));
	assert_string_equal(c->socket, "inet:1234@127.0.0.1");
	assert_false(mw_config_set(c, "max_recipients", "-1", &d));
	assert_false(mw_config_set(c, "nosuch", "1", &d));
	assert_int_equal(d.nerrors, 2);
	assert_string_equal(d.v[1].text,
	    "command line: unknown parameter \"nosuch\"");
	mw_config_free(c);
	mw_diag_free(&d);
}

static void
format_round_trips_through_the_parser(void **state)
{
	const struct mw_param *p;
	struct mw_config *a, *b;
	struct mw_diag d;
	char va[4096], vb[4096], line[4200];
	size_t n, i;

	(void)state;
	a = parse("max_header_bytes = 3000\nmax_body_scan_bytes = 1g\n"
		  "rules = /x, /y\nsocket_mode = 0640\nlog_level = warning\n",
	    &d);
	assert_non_null(a);
	p = mw_config_params(&n);
	for (i = 0; i < n; i++) {
		struct mw_diag d2;

		mw_config_format(a, &p[i], va, sizeof(va));
		snprintf(line, sizeof(line), "%s = %s\n", p[i].name,
		    va[0] ? va : "\"\"");
		b = parse(line, &d2);
		assert_non_null(b);
		mw_config_format(b, &p[i], vb, sizeof(vb));
		assert_string_equal(va, vb);
		mw_config_free(b);
		mw_diag_free(&d2);
	}
	mw_config_format(a, &p[0], va, sizeof(va));
	mw_config_free(a);
	mw_diag_free(&d);
}

static void
reload_keeps_parameters_that_need_a_restart(void **state)
{
	struct mw_config *old, *new;
	struct mw_diag d1, d2;

	(void)state;
	old = parse("socket = unix:/a.sock\nmax_recipients = 5\n", &d1);
	new = parse("socket = unix:/b.sock\nmax_recipients = 1\n"
		    "listen_backlog = 7\n",
	    &d2);
	assert_non_null(old);
	assert_non_null(new);
	mw_log_set_level(MW_LOG_ERROR); /* the warnings are expected */
	assert_true(mw_config_keep_static(new, old));
	assert_string_equal(new->socket, "unix:/a.sock");
	assert_int_equal(new->listen_backlog, 128);
	assert_int_equal(new->max_recipients, 1); /* reloadable */
	mw_config_free(old);
	mw_config_free(new);
	mw_diag_free(&d1);
	mw_diag_free(&d2);
}

static void
references_are_checked(void **state)
{
	struct mw_config *c;
	struct mw_diag d;

	(void)state;
	c = parse("user = no-such-user-mw\nsocket_group = no-such-group-mw\n"
		  "socket = tcp:25\npidfile = /nonexistent-dir/mw.pid\n",
	    &d);
	assert_non_null(c);
	assert_false(mw_config_check_refs(c, &d));
	assert_int_equal(d.nerrors, 4);
	assert_string_equal(d.v[0].text,
	    "t.conf: user: no such user \"no-such-user-mw\"");
	assert_string_equal(d.v[1].text,
	    "t.conf: socket_group: no such group \"no-such-group-mw\"");
	assert_string_equal(d.v[2].text,
	    "t.conf: socket: \"tcp:25\" is not "
	    "unix:/path, inet:PORT@HOST or inet6:PORT@HOST");
	assert_string_equal(d.v[3].text,
	    "t.conf: pidfile: directory \"/nonexistent-dir\" does not exist");
	mw_config_free(c);
	mw_diag_free(&d);
}

static void
relative_files_are_relative_to_the_configuration(void **state)
{
	char dir[] = "/tmp/mw-unit-XXXXXX", path[128], want[160];
	struct mw_config *c;
	struct mw_diag d;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/mw.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("rules = site.rules, /abs/other.rules\n"
	      "sender_login_map = logins\nlocal_domains_file =\n",
	    fp);
	fclose(fp);
	mw_diag_init(&d);
	c = mw_config_load(path, &d);
	assert_non_null(c);
	snprintf(want, sizeof(want), "%s/site.rules", dir);
	assert_string_equal(c->rules[0], want);
	assert_string_equal(c->rules[1], "/abs/other.rules");
	snprintf(want, sizeof(want), "%s/logins", dir);
	assert_string_equal(c->sender_login_map, want);
	assert_string_equal(c->local_domains_file, "");
	mw_config_free(c);
	mw_diag_free(&d);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_file_gives_every_default),
		cmocka_unit_test(every_parameter_has_help_and_a_valid_default),
		cmocka_unit_test(every_parameter_is_documented),
		cmocka_unit_test(values_of_every_type_are_parsed),
		cmocka_unit_test(every_error_is_reported_with_file_line_column),
		cmocka_unit_test(octal_mode_above_0777_is_refused),
		cmocka_unit_test(
		    duplicate_is_an_error_even_with_the_same_value),
		cmocka_unit_test(control_characters_and_nul_are_refused),
		cmocka_unit_test(overlong_line_is_refused),
		cmocka_unit_test(missing_file_names_the_file_and_reason),
		cmocka_unit_test(override_is_validated),
		cmocka_unit_test(format_round_trips_through_the_parser),
		cmocka_unit_test(reload_keeps_parameters_that_need_a_restart),
		cmocka_unit_test(references_are_checked),
		cmocka_unit_test(
		    relative_files_are_relative_to_the_configuration),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
