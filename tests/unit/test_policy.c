/*
 * test_policy.c -- rules through the engine, phase by phase as the milter
 * glue drives it: per-recipient decisions, the changes handed to the MTA
 * at end of message (and their order), scores that start every message of
 * a connection, accept and report-only semantics, evaluation errors.
 */
#include "config.h"

#include "helpers.h"
#include "mw_engine.h"
#include "mw_log.h"
#include "mw_rules.h"

struct pfix {
	char *dir;
	struct mw_state *st;
	struct mw_conn *c;
	struct mw_reply r;
};

static struct pfix *
pfix_new(const char *conf, const char *rules)
{
	struct pfix *f = calloc(1, sizeof(*f));
	struct mw_diag d;

	assert_non_null(f);
	f->dir = tmpdir_make();
	mw_diag_init(&d);
	f->st = state_with_rules(f->dir, conf, rules, &d);
	if (f->st == NULL) {
		mw_diag_print(&d, stderr);
		fail();
	}
	mw_diag_free(&d);
	f->c = mw_conn_new(f->st);
	assert_non_null(f->c);
	return f;
}

static void
pfix_free(struct pfix *f)
{
	mw_conn_free(f->c);
	mw_state_unref(f->st);
	tmpdir_remove(f->dir);
	free(f);
}

static void
session_start(struct pfix *f, const char *ip)
{
	assert_int_equal(mw_eng_connect(f->c, "client.example.net", ip, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_helo(f->c, "client.example.net", &f->r),
	    MW_CONTINUE);
}

static void
relay_is_decided_per_recipient(void **state)
{
	struct pfix *f = pfix_new("",
	    "list local domain { example.org }\n"
	    "rule relay at rcpt when not rcpt.domain in local then "
	    "reject 554 5.7.1 \"<%{rcpt}>: Relay access denied\"\n");

	(void)state;
	session_start(f, "198.51.100.7");
	assert_int_equal(mw_eng_mail(f->c, "<a@remote.net>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<bob@example.org>", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<eve@elsewhere.net>", &f->r),
	    MW_REJECT);
	assert_string_equal(f->r.code, "554");
	assert_string_equal(f->r.dsn, "5.7.1");
	assert_string_equal(f->r.text,
	    "<eve@elsewhere.net>: Relay access denied");
	assert_string_equal(f->r.rule, "relay");
	assert_int_equal(mw_eng_rcpt(f->c, "<carol@mail.example.org>", &f->r),
	    MW_CONTINUE);
	/* Refused recipients are not counted. */
	assert_int_equal(mw_conn_nrcpt(f->c), 2);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	pfix_free(f);
}

static void
end_of_message_changes_come_in_order(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule spam at eoh when header \"Subject\" =~ /cheap/i then "
	    "score +6 cheap, prefix-subject \"[SPAM] \"\n"
	    "rule tag at eom when score >= 5 then add-header \"X-Spam-Flag\" "
	    "\"YES\", insert-header \"X-Top\" \"score=%{score}\", "
	    "delete-header \"X-Old\", change-header \"X-New\" \"v\", "
	    "add-rcpt \"archive@example.org\", quarantine \"spam %{score}\"\n");
	const struct mw_op *ops;
	size_t n;

	(void)state;
	session_start(f, "198.51.100.7");
	assert_int_equal(mw_eng_mail(f->c, "<a@remote.net>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<bob@example.org>", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_data(f->c, &f->r), MW_CONTINUE);
	assert_int_equal(mw_eng_header(f->c, "X-Old", " 1", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_header(f->c, "Subject", " Cheap pills", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_header(f->c, "x-old", " 2", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_header(f->c, "X-Old", " 3", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_eoh(f->c, &f->r), MW_CONTINUE);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	ops = mw_conn_ops(f->c, &n);
	/* The rules' nine, then Authentication-Results (dkim=none). */
	assert_int_equal(n, 10);
	assert_int_equal(ops[9].kind, MW_OP_INSERT_HEADER);
	assert_string_equal(ops[9].name, "Authentication-Results");
	assert_non_null(strstr(ops[9].value, "; dkim=none"));
	assert_int_equal(ops[0].kind, MW_OP_ADD_HEADER);
	assert_string_equal(ops[0].name, "X-Spam-Flag");
	assert_int_equal(ops[1].kind, MW_OP_INSERT_HEADER);
	assert_string_equal(ops[1].value, "score=6");
	/* Three X-Old headers deleted from the highest index down. */
	assert_int_equal(ops[2].kind, MW_OP_CHANGE_HEADER);
	assert_null(ops[2].value);
	assert_int_equal(ops[2].index, 3);
	assert_int_equal(ops[3].index, 2);
	assert_int_equal(ops[4].index, 1);
	/* change-header of an absent header adds it. */
	assert_int_equal(ops[5].kind, MW_OP_ADD_HEADER);
	assert_string_equal(ops[5].name, "X-New");
	assert_int_equal(ops[6].kind, MW_OP_ADD_RCPT);
	assert_string_equal(ops[6].name, "archive@example.org");
	assert_int_equal(ops[7].kind, MW_OP_CHANGE_HEADER);
	assert_string_equal(ops[7].name, "Subject");
	assert_int_equal(ops[7].index, 1);
	assert_string_equal(ops[7].value, "[SPAM] Cheap pills");
	assert_int_equal(ops[8].kind, MW_OP_QUARANTINE);
	assert_string_equal(ops[8].value, "spam 6");
	pfix_free(f);
}

static void
rejected_message_gets_no_changes(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule tag at eoh then add-header \"X-A\" \"1\"\n"
	    "rule no at eom then reject 550 5.7.1 \"no\"\n");
	size_t n;

	(void)state;
	session_start(f, "198.51.100.7");
	mw_eng_mail(f->c, "<a@remote.net>", NULL, &f->r);
	mw_eng_rcpt(f->c, "<bob@example.org>", &f->r);
	mw_eng_data(f->c, &f->r);
	mw_eng_eoh(f->c, &f->r);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_REJECT);
	(void)mw_conn_ops(f->c, &n);
	assert_int_equal(n, 0);
	pfix_free(f);
}

static void
redirect_replaces_every_recipient(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule r at rcpt when rcpt == trap@example.org then "
	    "redirect \"abuse@example.org\"\n");
	const struct mw_op *ops;
	size_t n;

	(void)state;
	session_start(f, "198.51.100.7");
	mw_eng_mail(f->c, "<a@remote.net>", NULL, &f->r);
	assert_int_equal(mw_eng_rcpt(f->c, "<x@example.org>", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<trap@example.org>", &f->r),
	    MW_CONTINUE);
	mw_eng_data(f->c, &f->r);
	mw_eng_eoh(f->c, &f->r);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	ops = mw_conn_ops(f->c, &n);
	assert_int_equal(n, 4); /* and Authentication-Results, last */
	assert_int_equal(ops[3].kind, MW_OP_INSERT_HEADER);
	assert_int_equal(ops[0].kind, MW_OP_DELETE_RCPT);
	assert_string_equal(ops[0].name, "x@example.org");
	assert_int_equal(ops[1].kind, MW_OP_DELETE_RCPT);
	assert_string_equal(ops[1].name, "trap@example.org");
	assert_int_equal(ops[2].kind, MW_OP_ADD_RCPT);
	assert_string_equal(ops[2].name, "abuse@example.org");
	pfix_free(f);
}

static void
connection_score_starts_every_message(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule nohelo at helo when not helo.fqdn then score +3 bad_helo\n"
	    "rule msg at mail then score +1 per_message\n"
	    "rule over at rcpt when score >= 4 then tempfail 451 4.7.1 "
	    "\"score %{score}\"\n");
	int i;

	(void)state;
	assert_int_equal(mw_eng_connect(f->c, "x", "198.51.100.7", &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_helo(f->c, "localhost", &f->r), MW_CONTINUE);
	for (i = 0; i < 2; i++) {
		assert_int_equal(mw_eng_mail(f->c, "<a@b.example>", NULL,
				     &f->r),
		    MW_CONTINUE);
		/* 3 (connection) + 1 (this message), not 3 + 2. */
		assert_int_equal(mw_eng_rcpt(f->c, "<c@d.example>", &f->r),
		    MW_TEMPFAIL);
		assert_string_equal(f->r.text, "score 4");
		mw_eng_abort(f->c);
	}
	pfix_free(f);
}

static void
accept_at_connect_skips_every_later_rule(void **state)
{
	struct pfix *f = pfix_new("",
	    "list trusted ip { 192.0.2.0/24 }\n"
	    "rule ok at connect when client.ip in trusted then accept\n"
	    "rule no at rcpt then reject\n");

	(void)state;
	assert_int_equal(mw_eng_connect(f->c, "x", "192.0.2.9", &f->r),
	    MW_ACCEPT);
	assert_string_equal(f->r.rule, "ok");
	assert_int_equal(mw_eng_mail(f->c, "<a@b.example>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<c@d.example>", &f->r),
	    MW_CONTINUE);
	pfix_free(f);
}

static void
report_only_rule_is_logged_not_enforced(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule new at rcpt report-only when rcpt.local == postmaster then "
	    "reject\n");

	(void)state;
	session_start(f, "198.51.100.7");
	mw_eng_mail(f->c, "<a@b.example>", NULL, &f->r);
	assert_int_equal(mw_eng_rcpt(f->c, "<postmaster@example.org>", &f->r),
	    MW_CONTINUE);
	pfix_free(f);
}

static void
regex_limit_tempfails_by_default(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule slow at header when header.value =~ /^(a+)+$/ then reject\n");
	char value[4096];

	(void)state;
	memset(value, 'a', sizeof(value) - 2);
	value[sizeof(value) - 2] = '!';
	value[sizeof(value) - 1] = '\0';
	session_start(f, "198.51.100.7");
	mw_eng_mail(f->c, "<a@b.example>", NULL, &f->r);
	mw_eng_rcpt(f->c, "<c@d.example>", &f->r);
	mw_eng_data(f->c, &f->r);
	assert_int_equal(mw_eng_header(f->c, "Subject", value, &f->r),
	    MW_TEMPFAIL);
	assert_string_equal(f->r.code, "451");
	assert_string_equal(f->r.dsn, "4.3.0");
	pfix_free(f);
}

static void
body_match_spans_chunk_boundaries(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule gtube at body when body =~ "
	    "/XJS\\*C4JDBQADN1\\.NSBN3\\*2IDNEN\\*GTUBE-STANDARD-ANTI-UBE-TEST-"
	    "EMAIL\\*C\\.34X/ then reject 550 5.7.1 \"GTUBE\"\n");
	const char *g = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-"
			"TEST-EMAIL*C.34X";

	(void)state;
	session_start(f, "198.51.100.7");
	mw_eng_mail(f->c, "<a@b.example>", NULL, &f->r);
	mw_eng_rcpt(f->c, "<c@d.example>", &f->r);
	mw_eng_data(f->c, &f->r);
	mw_eng_eoh(f->c, &f->r);
	/* The test string split across two body chunks. */
	assert_int_equal(mw_eng_body(f->c, (const unsigned char *)g, 20, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_body(f->c, (const unsigned char *)g + 20,
			     strlen(g) - 20, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_REJECT);
	assert_string_equal(f->r.text, "GTUBE");
	pfix_free(f);
}

static void
body_beyond_the_scan_limit_is_not_matched(void **state)
{
	struct pfix *f = pfix_new("max_body_scan_bytes = 16\n",
	    "rule late at body when body =~ /LATE/ then reject\n");

	(void)state;
	session_start(f, "198.51.100.7");
	mw_eng_mail(f->c, "<a@b.example>", NULL, &f->r);
	mw_eng_rcpt(f->c, "<c@d.example>", &f->r);
	mw_eng_data(f->c, &f->r);
	mw_eng_eoh(f->c, &f->r);
	assert_int_equal(mw_eng_body(f->c,
			     (const unsigned char *)"0123456789abcdefLATE", 20,
			     &f->r),
	    MW_SKIP);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	pfix_free(f);
}

static void
esmtp_size_is_a_condition(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule big at mail when size > 1000000 then reject 552 5.3.4 "
	    "\"Message too big\"\n");
	const char *small[] = { "SIZE=1000", NULL };
	const char *big[] = { "BODY=8BITMIME", "SIZE=2000000", NULL };

	(void)state;
	session_start(f, "198.51.100.7");
	assert_int_equal(mw_eng_mail(f->c, "<a@b.example>", small, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_mail(f->c, "<a@b.example>", big, &f->r),
	    MW_REJECT);
	assert_string_equal(f->r.code, "552");
	pfix_free(f);
}

static void
second_helo_replaces_the_first(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule nohelo at helo when not helo.fqdn then score +3 bad_helo\n"
	    "rule over at rcpt when score > 3 then reject\n");

	(void)state;
	assert_int_equal(mw_eng_connect(f->c, "x", "198.51.100.7", &f->r),
	    MW_CONTINUE);
	/* EHLO, STARTTLS, EHLO again: scored once, not twice. */
	assert_int_equal(mw_eng_helo(f->c, "localhost", &f->r), MW_CONTINUE);
	assert_int_equal(mw_eng_helo(f->c, "localhost", &f->r), MW_CONTINUE);
	mw_eng_mail(f->c, "<a@b.example>", NULL, &f->r);
	assert_int_equal(mw_eng_rcpt(f->c, "<c@d.example>", &f->r),
	    MW_CONTINUE);
	pfix_free(f);
}

static void
message_macros_do_not_outlive_the_message(void **state)
{
	struct pfix *f = pfix_new("", "");

	(void)state;
	session_start(f, "198.51.100.7");
	assert_true(mw_conn_set_macro(f->c, "{daemon_name}", "smtpd"));
	assert_true(mw_conn_set_macro(f->c, "{mail_addr}", "a@b.example"));
	mw_eng_mail(f->c, "<a@b.example>", NULL, &f->r);
	assert_true(mw_conn_set_macro(f->c, "{rcpt_addr}", "c@d.example"));
	mw_eng_rcpt(f->c, "<c@d.example>", &f->r);
	/* Recipient macros describe one recipient. */
	assert_null(mw_conn_macro(f->c, "rcpt_addr"));
	assert_true(mw_conn_set_macro(f->c, "i", "4ABCDEF"));
	mw_eng_data(f->c, &f->r);
	mw_eng_eoh(f->c, &f->r);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	/* The next message must not log the last one's queue id. */
	assert_null(mw_conn_macro(f->c, "i"));
	assert_null(mw_conn_macro(f->c, "mail_addr"));
	assert_string_equal(mw_conn_macro(f->c, "daemon_name"), "smtpd");
	pfix_free(f);
}

static void
accept_after_an_evaluation_error_changes_nothing(void **state)
{
	struct pfix *f = pfix_new("on_internal_error = accept\n",
	    "rule tag at eoh then add-header \"X-Tag\" \"1\"\n"
	    "rule slow at eom when header \"Subject\" =~ /^(a+)+$/ then "
	    "reject\n");
	char value[4096];
	size_t n;

	(void)state;
	memset(value, 'a', sizeof(value) - 2);
	value[sizeof(value) - 2] = '!';
	value[sizeof(value) - 1] = '\0';
	session_start(f, "198.51.100.7");
	mw_eng_mail(f->c, "<a@b.example>", NULL, &f->r);
	mw_eng_rcpt(f->c, "<c@d.example>", &f->r);
	mw_eng_data(f->c, &f->r);
	mw_eng_header(f->c, "Subject", value, &f->r);
	mw_eng_eoh(f->c, &f->r);
	assert_int_equal(mw_eng_eom(f->c, &f->r), MW_ACCEPT);
	(void)mw_conn_ops(f->c, &n);
	assert_int_equal(n, 0);
	pfix_free(f);
}

static void
null_sender_is_not_malformed(void **state)
{
	struct pfix *f = pfix_new("",
	    "rule bad at mail when from.malformed then reject 553 5.1.7 \"bad\"\n");

	(void)state;
	session_start(f, "198.51.100.7");
	/* A bounce: MAIL FROM:<> as libmilter hands it over. */
	assert_int_equal(mw_eng_mail(f->c, "<>", NULL, &f->r), MW_CONTINUE);
	assert_int_equal(mw_eng_mail(f->c, "<a@@b.example>", NULL, &f->r),
	    MW_REJECT);
	pfix_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(relay_is_decided_per_recipient),
		cmocka_unit_test(end_of_message_changes_come_in_order),
		cmocka_unit_test(rejected_message_gets_no_changes),
		cmocka_unit_test(redirect_replaces_every_recipient),
		cmocka_unit_test(connection_score_starts_every_message),
		cmocka_unit_test(accept_at_connect_skips_every_later_rule),
		cmocka_unit_test(report_only_rule_is_logged_not_enforced),
		cmocka_unit_test(regex_limit_tempfails_by_default),
		cmocka_unit_test(body_match_spans_chunk_boundaries),
		cmocka_unit_test(body_beyond_the_scan_limit_is_not_matched),
		cmocka_unit_test(esmtp_size_is_a_condition),
		cmocka_unit_test(second_helo_replaces_the_first),
		cmocka_unit_test(message_macros_do_not_outlive_the_message),
		cmocka_unit_test(
		    accept_after_an_evaluation_error_changes_nothing),
		cmocka_unit_test(null_sender_is_not_malformed),
	};

	mw_log_set_level(MW_LOG_ERROR);
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
