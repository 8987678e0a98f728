/*
 * test_engine.c -- the policy engine driven phase by phase, as the milter
 * glue drives it: limits, several messages per connection, abort, macros,
 * internal failures and the decision log line.
 */
#include "config.h"

#include <fcntl.h>

#include "helpers.h"
#include "mw_engine.h"
#include "mw_log.h"

struct fixture {
	char *dir;
	struct mw_state *st;
	struct mw_conn *c;
	struct mw_reply r;
};

static struct fixture *
fixture_new(const char *conf)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct mw_diag d;

	assert_non_null(f);
	f->dir = tmpdir_make();
	mw_diag_init(&d);
	f->st = state_from(f->dir, conf, &d);
	if (f->st == NULL) {
		mw_diag_print(&d, stderr);
		fail();
	}
	mw_diag_free(&d);
	f->c = mw_conn_new(f->st);
	assert_non_null(f->c);
	assert_int_equal(mw_eng_connect(f->c, "mx.example.net", "192.0.2.7",
			     &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_helo(f->c, "mx.example.net", &f->r),
	    MW_CONTINUE);
	return f;
}

static void
fixture_free(struct fixture *f)
{
	mw_conn_free(f->c);
	mw_state_unref(f->st);
	tmpdir_remove(f->dir);
	free(f);
}

static void
send_headers(struct fixture *f)
{
	assert_int_equal(mw_eng_data(f->c, &f->r), MW_CONTINUE);
	assert_int_equal(mw_eng_header(f->c, "From", " <a@example.org>", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_header(f->c, "Subject", " hello", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_eoh(f->c, &f->r), MW_CONTINUE);
}

static void
plain_message_is_accepted(void **state)
{
	struct fixture *f = fixture_new("");
	const unsigned char body[] = "Hello.\r\n";

	(void)state;
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<b@example.com>", &f->r),
	    MW_CONTINUE);
	send_headers(f);
	assert_int_equal(mw_eng_body(f->c, body, sizeof(body) - 1, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	assert_string_equal(f->r.code, "");
	assert_int_equal(mw_conn_nmsgs(f->c), 1);
	fixture_free(f);
}

static void
recipients_beyond_the_limit_get_452_each(void **state)
{
	struct fixture *f = fixture_new("max_recipients = 2\n");

	(void)state;
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<r1@example.com>", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<r2@example.com>", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<r3@example.com>", &f->r),
	    MW_TEMPFAIL);
	assert_string_equal(f->r.code, "452");
	assert_string_equal(f->r.dsn, "4.5.3");
	assert_string_equal(f->r.text, "Too many recipients");
	assert_string_equal(f->r.rule, "limit:max_recipients");
	assert_int_equal(mw_eng_rcpt(f->c, "<r4@example.com>", &f->r),
	    MW_TEMPFAIL);
	/* Refused recipients do not count; the message goes on. */
	assert_int_equal(mw_conn_nrcpt(f->c), 2);
	send_headers(f);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	fixture_free(f);
}

static void
limits_start_afresh_for_each_message_on_a_connection(void **state)
{
	struct fixture *f = fixture_new("max_recipients = 1\n");
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL,
				     &f->r),
		    MW_CONTINUE);
		assert_int_equal(mw_eng_rcpt(f->c, "<b@example.com>", &f->r),
		    MW_CONTINUE);
		send_headers(f);
		assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	}
	assert_int_equal(mw_conn_nmsgs(f->c), 3);
	fixture_free(f);
}

static void
abort_discards_the_message_state(void **state)
{
	struct fixture *f = fixture_new("max_recipients = 1\n");

	(void)state;
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<b@example.com>", &f->r),
	    MW_CONTINUE);
	mw_eng_abort(f->c); /* RSET */
	assert_int_equal(mw_conn_nrcpt(f->c), 0);
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<c@example.com>", &f->r),
	    MW_CONTINUE);
	/* A MAIL with no end of message before it also starts afresh. */
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<d@example.com>", &f->r),
	    MW_CONTINUE);
	/* Abort with no message open is harmless. */
	mw_eng_abort(f->c);
	mw_eng_abort(f->c);
	fixture_free(f);
}

static void
oversized_header_section_is_rejected_552(void **state)
{
	struct fixture *f = fixture_new("max_header_bytes = 1k\n");
	char value[300];
	int i;

	(void)state;
	memset(value, 'x', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<b@example.com>", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_data(f->c, &f->r), MW_CONTINUE);
	/* 3 x (7 + 299 + 4) = 930 bytes: still within 1024. */
	for (i = 0; i < 3; i++)
		assert_int_equal(mw_eng_header(f->c, "X-Long", value, &f->r),
		    MW_CONTINUE);
	assert_int_equal(mw_eng_header(f->c, "X-Long", value, &f->r),
	    MW_REJECT);
	assert_string_equal(f->r.code, "552");
	assert_string_equal(f->r.dsn, "5.3.4");
	assert_string_equal(f->r.rule, "limit:max_header_bytes");
	fixture_free(f);
}

static void
body_beyond_the_scan_limit_is_skipped(void **state)
{
	struct fixture *f = fixture_new("max_body_scan_bytes = 10\n");
	const unsigned char chunk[] = "0123456";

	(void)state;
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<b@example.com>", &f->r),
	    MW_CONTINUE);
	send_headers(f);
	assert_int_equal(mw_eng_body(f->c, chunk, 7, &f->r), MW_CONTINUE);
	assert_int_equal(mw_eng_body(f->c, chunk, 7, &f->r), MW_SKIP);
	assert_int_equal(mw_conn_body_scanned(f->c), 10);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	fixture_free(f);
}

static void
zero_scan_limit_skips_the_first_chunk(void **state)
{
	struct fixture *f = fixture_new("max_body_scan_bytes = 0\n");
	const unsigned char chunk[] = "x";

	(void)state;
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	send_headers(f);
	assert_int_equal(mw_eng_body(f->c, chunk, 1, &f->r), MW_SKIP);
	assert_int_equal(mw_conn_body_scanned(f->c), 0);
	fixture_free(f);
}

static void
overlong_addresses_are_refused_not_truncated(void **state)
{
	struct fixture *f = fixture_new("");
	char addr[MW_ADDR_MAX + 10];

	(void)state;
	memset(addr, 'a', sizeof(addr) - 1);
	addr[sizeof(addr) - 1] = '\0';
	assert_int_equal(mw_eng_mail(f->c, addr, NULL, &f->r), MW_REJECT);
	assert_string_equal(f->r.code, "553");
	assert_string_equal(f->r.dsn, "5.1.7");
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, addr, &f->r), MW_REJECT);
	assert_string_equal(f->r.code, "553");
	assert_string_equal(f->r.dsn, "5.1.3");
	assert_int_equal(mw_conn_nrcpt(f->c), 0);
	fixture_free(f);
}

static void
macros_are_stored_bounded_and_by_either_name(void **state)
{
	struct fixture *f = fixture_new("");
	char big[MW_MACRO_MAX + 2];
	char name[16];
	int i;

	(void)state;
	assert_true(mw_conn_set_macro(f->c, "{auth_authen}", "alice@EXAMPLE"));
	assert_string_equal(mw_conn_macro(f->c, "auth_authen"),
	    "alice@EXAMPLE");
	assert_string_equal(mw_conn_macro(f->c, "{auth_authen}"),
	    "alice@EXAMPLE");
	assert_true(mw_conn_set_macro(f->c, "i", "4XyZ1"));
	assert_true(mw_conn_set_macro(f->c, "i", "4XyZ2"));
	assert_string_equal(mw_conn_macro(f->c, "i"), "4XyZ2");
	assert_null(mw_conn_macro(f->c, "{tls_version}"));
	assert_false(mw_conn_set_macro(f->c, "{}", "x"));
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(mw_conn_set_macro(f->c, "j", big));
	assert_null(mw_conn_macro(f->c, "j"));
	for (i = 0; i < MW_MACROS; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		if (!mw_conn_set_macro(f->c, name, "v"))
			break;
	}
	/* Two slots were taken above: the table fills, and says so. */
	assert_int_equal(i, MW_MACROS - 2);
	fixture_free(f);
}

static void
internal_failure_tempfails_by_default(void **state)
{
	struct fixture *f = fixture_new("");

	(void)state;
	assert_int_equal(mw_engine_failure(f->c, "test failure", &f->r),
	    MW_TEMPFAIL);
	assert_string_equal(f->r.code, "451");
	assert_string_equal(f->r.dsn, "4.3.0");
	assert_int_equal(mw_engine_failure(NULL, "no connection", &f->r),
	    MW_TEMPFAIL);
	fixture_free(f);
}

static void
internal_failure_accepts_only_when_configured(void **state)
{
	struct fixture *f = fixture_new("on_internal_error = accept\n");

	(void)state;
	assert_int_equal(mw_engine_failure(f->c, "test failure", &f->r),
	    MW_ACCEPT);
	assert_string_equal(f->r.code, "");
	fixture_free(f);
}

static void
content_outside_a_message_tempfails_not_crashes(void **state)
{
	struct fixture *f = fixture_new("");
	const unsigned char b[] = "x";

	(void)state;
	assert_int_equal(mw_eng_rcpt(f->c, "<b@example.com>", &f->r),
	    MW_TEMPFAIL);
	assert_string_equal(f->r.code, "451");
	assert_int_equal(mw_eng_header(f->c, "Subject", " x", &f->r),
	    MW_TEMPFAIL);
	assert_int_equal(mw_eng_body(f->c, b, 1, &f->r), MW_TEMPFAIL);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_TEMPFAIL);
	assert_int_equal(mw_conn_nmsgs(f->c), 0);
	fixture_free(f);
}

/* Run fn with stderr captured; returns what was logged (caller frees). */
static char *
capture_log(void (*fn)(struct fixture *), struct fixture *f)
{
	char path[] = "/tmp/mw-unit-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	char *buf = calloc(1, 8192);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0 && buf != NULL);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	fn(f);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, 8191, 0);
	assert_true(n > 0);
	close(fd);
	unlink(path);
	return buf;
}

static void
hostile_session(struct fixture *f)
{
	assert_int_equal(mw_eng_helo(f->c, "evil\r\nhelo \"x\"", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_mail(f->c, "<a@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<r1@example.com>", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<r2\x01@example.com>", &f->r),
	    MW_TEMPFAIL);
	assert_true(mw_conn_set_macro(f->c, "i", "4ABC123"));
	send_headers(f);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
}

/* line contains before, a hexadecimal session id, then after. */
static void
assert_log_line(const char *line, const char *before, const char *after)
{
	const char *p = strstr(line, before);

	if (p == NULL)
		fail_msg("\"%s\" not in \"%s\"", before, line);
	p += strlen(before);
	assert_true(strspn(p, "0123456789abcdef") > 0);
	p += strspn(p, "0123456789abcdef");
	if (strncmp(p, after, strlen(after)) != 0)
		fail_msg("\"%s\" does not start with \"%s\"", p, after);
}

static void
each_decision_is_one_printable_log_line(void **state)
{
	struct fixture *f = fixture_new("max_recipients = 1\n");
	char *log, *nl, *second;

	(void)state;
	mw_log_set_level(MW_LOG_INFO);
	log = capture_log(hostile_session, f);
	/* Exactly two decisions: the refused recipient, the accepted message.
	 */
	nl = strchr(log, '\n');
	assert_non_null(nl);
	second = nl + 1;
	assert_non_null(strchr(second, '\n'));
	assert_string_equal(strchr(second, '\n') + 1, "");
	*nl = '\0';
	assert_log_line(log,
	    ": info: NOQUEUE: client=mx.example.net[192.0.2.7] "
	    "session=",
	    " helo=\"evil\\x0d\\x0ahelo \\\"x\\\"\" "
	    "from=<a@example.org> rcpt=<r2\\x01@example.com> "
	    "action=tempfail code=452 dsn=4.5.3 rule=limit:max_recipients "
	    "reason=\"Too many recipients\"");
	assert_log_line(second,
	    ": info: 4ABC123: client=mx.example.net"
	    "[192.0.2.7] session=",
	    " helo=\"evil\\x0d\\x0ahelo \\\"x\\\"\" "
	    "from=<a@example.org> nrcpt=1 header_bytes=");
	assert_non_null(strstr(second, " action=accept"));
	free(log);
	fixture_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_message_is_accepted),
		cmocka_unit_test(recipients_beyond_the_limit_get_452_each),
		cmocka_unit_test(
		    limits_start_afresh_for_each_message_on_a_connection),
		cmocka_unit_test(abort_discards_the_message_state),
		cmocka_unit_test(oversized_header_section_is_rejected_552),
		cmocka_unit_test(body_beyond_the_scan_limit_is_skipped),
		cmocka_unit_test(zero_scan_limit_skips_the_first_chunk),
		cmocka_unit_test(overlong_addresses_are_refused_not_truncated),
		cmocka_unit_test(macros_are_stored_bounded_and_by_either_name),
		cmocka_unit_test(internal_failure_tempfails_by_default),
		cmocka_unit_test(
		    content_outside_a_message_tempfails_not_crashes),
		cmocka_unit_test(internal_failure_accepts_only_when_configured),
		cmocka_unit_test(each_decision_is_one_printable_log_line),
	};

	mw_log_set_level(MW_LOG_ERROR);
	return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
