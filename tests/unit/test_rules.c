/*
 * test_rules.c -- the rules language: every construct parses, every error
 * is reported at its FILE:LINE:COL in one pass, warnings for rules that
 * can never fire and for macros the MTA does not send, and the conditions
 * evaluated on their own.
 */
#include "config.h"

#include <arpa/inet.h>

#include "helpers.h"
#include "mw_log.h"
#include "mw_rules.h"

static struct mw_ruleset *
parse(const char *text, struct mw_diag *d)
{
	mw_diag_init(d);
	return mw_rules_parse("t.rules", text, strlen(text), d);
}

/* Expect exactly these diagnostics (errors and warnings), in order. */
static void
expect_diags(const char *text, const char *const *want, bool loads)
{
	struct mw_ruleset *rs;
	struct mw_diag d;
	size_t n;

	rs = parse(text, &d);
	for (n = 0; want[n] != NULL; n++) {
		if (n >= d.n)
			fail_msg("missing diagnostic: %s", want[n]);
		assert_string_equal(d.v[n].text, want[n]);
	}
	if (d.n != n)
		fail_msg("unexpected diagnostic: %s", d.v[n].text);
	if (loads)
		assert_non_null(rs);
	else
		assert_null(rs);
	mw_rules_free(rs);
	mw_diag_free(&d);
}

static void
every_construct_parses(void **state)
{
	struct mw_ruleset *rs;
	struct mw_diag d;

	(void)state;
	rs = parse(
	    "# a comment\n"
	    "list trusted ip { 127.0.0.0/8, ::1 192.0.2.0/24 }\n"
	    "list local domain { example.org \"example.net\" }\n"
	    "list vip address { boss@example.org @partner.example }\n"
	    "list words string { a b }\n"
	    "rule trusted at connect when client.ip in trusted then accept\n"
	    "rule \"bad helo\" at helo report-only\n"
	    "  when not helo.fqdn and not helo.address-literal\n"
	    "  then score +2.5 bad_helo, set helo_bad\n"
	    "rule at mail when from.domain in local and not authenticated\n"
	    "  then reject 550 5.7.1 \"<%{from}> is ours\"\n"
	    "rule relay at rcpt when not (rcpt.domain in local or\n"
	    "  client.ip in { 10.0.0.0/8 }) then reject 554 5.7.1 "
	    "\"<%{rcpt}>: Relay access denied\"\n"
	    "rule many at rcpt when rcpt.count >= 50 then tempfail\n"
	    "rule hdr at header when header.name == \"X-Bad\" then "
	    "reject\n"
	    "rule subj at eoh when header \"Subject\" =~ /viagra/i and "
	    "header \"Date\" absent and header \"Received\" count > 30 "
	    "then prefix-subject \"[SPAM] \", add-header \"X-Spam\" "
	    "\"yes\"\n"
	    "rule gtube at body when body =~ /XJS\\*C4JDBQADN1/ then "
	    "reject 550 5.7.1 \"GTUBE\"\n"
	    "rule total at eom when score >= 5 or var helo_bad == \"1\" "
	    "then quarantine \"score %{score}\", insert-header "
	    "\"X-Score\" \"%{score} %{labels}\", change-header "
	    "\"Subject\" \"x\", delete-header \"X-Old\", add-rcpt "
	    "\"archive@example.org\", delete-rcpt \"x@example.org\", "
	    "log \"%%{not} %{rule}\"\n"
	    "rule r2 at eom when macro \"{auth_authen}\" present and "
	    "macro \"i\" =~ /^[A-F0-9]+$/ and size > 1000 and tls and "
	    "tls.version == TLSv1.3 and listener != ORIGINATING "
	    "then redirect \"quarantine@example.org\", stop\n"
	    "rule r3 at eom when auth.user == \"bob\" and "
	    "auth.mech =~ /PLAIN/ and client.name == mx.example.com. "
	    "and from == \"a@EXAMPLE.org\" and from.local != x and "
	    "true then discard\n",
	    &d);
	if (rs == NULL)
		mw_diag_print(&d, stderr);
	assert_non_null(rs);
	assert_int_equal(d.n, 0);
	assert_int_equal(mw_rules_count(rs), 11);
	assert_true(mw_rules_has_phase(rs, MW_PH_CONNECT));
	mw_rules_free(rs);
	mw_diag_free(&d);
}

static void
every_error_is_reported_in_one_pass(void **state)
{
	static const char *const want[] = {
		"t.rules:1:1: expected \"rule\", \"list\" or \"include\", found "
		"bogus",
		"t.rules:2:11: expected a phase (connect, helo, mail, rcpt, "
		"header, eoh, body, eom), found nowhere",
		"t.rules:3:24: from is not known yet at the connect phase (from "
		"mail on)",
		"t.rules:4:20: rcpt is only known at the rcpt phase",
		"t.rules:5:20: unknown condition \"nosuch\"",
		"t.rules:6:38: unknown action \"explode\"",
		"t.rules:7:27: reject needs a 5xx code and a 5.x.x enhanced "
		"status code (e.g. 550 5.7.1), found \"450 4.7.1\"",
		"t.rules:8:29: tempfail needs a 4xx code and a 4.x.x enhanced "
		"status code (e.g. 451 4.7.1), found \"451 5.7.1\"",
		"t.rules:9:29: no list named \"nolist\" (lists must be defined "
		"before use)",
		"t.rules:10:32: regular expression: missing closing parenthesis "
		"(at offset 3)",
		"t.rules:11:27: unknown name %{nope} in the reply text (known: "
		"client.ip, client.name, helo, from, rcpt, auth.user, score, "
		"labels, rule, queue-id, header.from)",
		"t.rules:12:13: 300.1.2.3: not an IP address",
		"t.rules:13:26: discard needs a message: not at the connect "
		"phase",
		"t.rules:14:34: rule \"dup\" is already defined at t.rules:14",
		"t.rules:15:24: unterminated string",
		"t.rules:17:1: expected \"then\" before the actions, found end "
		"of file",
		NULL
	};

	(void)state;
	expect_diags("bogus\n"
		     "rule a at nowhere then accept\n"
		     "rule b at connect when from == x then accept\n"
		     "rule c at eom when rcpt == x then accept\n"
		     "rule d at eom when nosuch then accept\n"
		     "rule e at eom when true then accept, explode\n"
		     "rule f at eom then reject 450 4.7.1 \"x\"\n"
		     "rule g at eom then tempfail 451 5.7.1\n"
		     "rule h at rcpt when rcpt in nolist then accept\n"
		     "rule i at eom when body =~ /(ab/ then accept\n"
		     "rule j at eom then reject \"hello %{nope}\"\n"
		     "list l ip { 300.1.2.3 }\n"
		     "rule dup at connect then discard\n"
		     "rule dup at eom then accept rule dup at eom then accept\n"
		     "rule k at eom then log \"oops\n"
		     "rule m at eom when true\n",
	    want, false);
}

static void
unreachable_rules_and_unsent_macros_are_warned(void **state)
{
	static const char *const want[] = {
		"t.rules:2:1: warning: rule late can never fire: rule all "
		"(t.rules:1) always decides the rcpt phase before it",
		"t.rules:3:1: warning: rule shadow can never fire: rule all "
		"(t.rules:1) always decides the rcpt phase before it",
		"t.rules:4:29: warning: macro \"i\" is not sent by Postfix "
		"before the header phase; at rcpt it is never present",
		"t.rules:4:1: warning: rule qid can never fire: rule all "
		"(t.rules:1) always decides the rcpt phase before it",
		"t.rules:5:28: warning: milter-warden does not ask the MTA for "
		"macro \"nosuch\"; it is present only if the MTA sends it "
		"unasked",
		NULL
	};

	(void)state;
	expect_diags("rule all at rcpt then accept\n"
		     "rule late at rcpt when rcpt == a@b then reject\n"
		     "rule shadow at rcpt report-only then reject\n"
		     "rule qid at rcpt when macro \"i\" present then accept\n"
		     "rule odd at eom when macro \"{nosuch}\" present then "
		     "accept\n",
	    want, true);
}

static void
includes_and_list_files_report_their_own_positions(void **state)
{
	char *dir = tmpdir_make(), *inc, *lst, *main_rules, want[600];
	struct mw_ruleset *rs;
	struct mw_diag d;
	char *text;

	(void)state;
	lst = write_file(dir, "nets.list",
	    "# trusted\n192.0.2.0/24\n\n  "
	    "not-an-ip # bad\n2001:db8::/32\n");
	inc = write_file(dir, "site.rules",
	    "list nets ip file \"nets.list\"\nrule x at bogus then accept\n");
	assert_true(asprintf(&text,
			"include \"site.rules\"\n"
			"include \"missing.rules\"\n") > 0);
	main_rules = write_file(dir, "main.rules", text);
	mw_diag_init(&d);
	rs = mw_rules_load(&main_rules, 1, NULL, 0, &d);
	assert_null(rs);
	assert_int_equal(d.n, 3);
	snprintf(want, sizeof(want), "%s: not-an-ip: ", lst);
	assert_true(strncmp(d.v[0].text, lst, strlen(lst)) == 0);
	snprintf(want, sizeof(want), "%s:4:3: not-an-ip: ", lst);
	assert_true(strncmp(d.v[0].text, want, strlen(want)) == 0);
	snprintf(want, sizeof(want), "%s:2:11: expected a phase", inc);
	assert_true(strncmp(d.v[1].text, want, strlen(want)) == 0);
	snprintf(want, sizeof(want),
	    "%s:2:9: cannot open included file %s/missing.rules: No such "
	    "file or directory",
	    main_rules, dir);
	assert_string_equal(d.v[2].text, want);
	mw_diag_free(&d);
	free(text);
	free(inc);
	free(lst);
	free(main_rules);
	tmpdir_remove(dir);
}

static void
include_cycles_are_refused(void **state)
{
	char *dir = tmpdir_make(), *a, *want;
	struct mw_diag d;

	(void)state;
	a = write_file(dir, "a.rules", "include \"a.rules\"\n");
	mw_diag_init(&d);
	assert_null(mw_rules_load(&a, 1, NULL, 0, &d));
	assert_int_equal(d.nerrors, 1);
	assert_true(asprintf(&want,
			"%s:1:9: %s is already read (included "
			"twice or in a cycle)",
			a, a) > 0);
	assert_string_equal(d.v[0].text, want);
	free(want);
	free(a);
	mw_diag_free(&d);
	tmpdir_remove(dir);
}

static void
hostile_input_never_crashes(void **state)
{
	struct mw_ruleset *rs;
	struct mw_diag d;
	char *deep;
	size_t i;

	(void)state;
	/* Nesting beyond the bound is an error, not a stack overflow. */
	deep = malloc(200000);
	assert_non_null(deep);
	strcpy(deep, "rule a at eom when ");
	memset(deep + strlen(deep), '(', 50000);
	strcpy(deep + 19 + 50000, "true then accept");
	rs = parse(deep, &d);
	assert_null(rs);
	assert_true(d.nerrors >= 1);
	mw_diag_free(&d);
	memset(deep, 0, 200000);
	strcpy(deep, "rule a at eom when ");
	for (i = 0; i < 10000; i++)
		memcpy(deep + 19 + 4 * i, "not ", 4);
	strcpy(deep + 19 + 40000, "true then accept");
	assert_null(parse(deep, &d));
	mw_diag_free(&d);
	free(deep);
	/* NUL bytes, control characters, unterminated things. */
	{
		const char bad[] = "rule \0 at eom then \x01 /abc\n\"x";

		mw_diag_init(&d);
		assert_null(
		    mw_rules_parse("t.rules", bad, sizeof(bad) - 1, &d));
		assert_true(d.nerrors >= 2);
		mw_diag_free(&d);
	}
}

/* ---------------------------------------------------------- evaluation */

struct evfix {
	struct mw_ruleset *rs;
	struct mw_eval ev;
	struct mw_fx fx;
	struct mw_ip ip;
	struct mw_decision d;
};

static const char *
no_macro(const void *arg, const char *name)
{
	(void)arg;
	return strcmp(name, "{daemon_name}") == 0 ? "ORIGINATING" : NULL;
}

static struct evfix *
evfix_new(const char *rules)
{
	struct evfix *f = calloc(1, sizeof(*f));
	struct mw_diag d;

	assert_non_null(f);
	f->rs = parse(rules, &d);
	if (f->rs == NULL) {
		mw_diag_print(&d, stderr);
		fail();
	}
	mw_diag_free(&d);
	mw_fx_init(&f->fx);
	assert_true(mw_ip_parse("192.0.2.7", &f->ip));
	f->ev.client_ip = &f->ip;
	f->ev.client_ip_text = "192.0.2.7";
	f->ev.client_name = "Mail.Example.NET";
	f->ev.helo = "mail.example.net";
	f->ev.from = "alice@Example.ORG";
	f->ev.rcpt = "bob@example.com";
	f->ev.fx = &f->fx;
	f->ev.macro = no_macro;
	f->ev.listener = "ORIGINATING";
	f->ev.match_data = mw_rules_match_new();
	return f;
}

static void
evfix_free(struct evfix *f)
{
	mw_rules_match_free(f->ev.match_data);
	mw_fx_clear(&f->fx);
	mw_rules_free(f->rs);
	free(f);
}

/* verdict of the rcpt phase for a one-rule ruleset "when COND". */
static enum mw_verdict
verdict_of(const char *cond)
{
	char rules[1024];
	struct evfix *f;
	enum mw_verdict v;

	snprintf(rules, sizeof(rules),
	    "list loc domain { example.com }\n"
	    "list nets ip { 192.0.2.0/28 2001:db8::/32 }\n"
	    "list people address { alice@example.org @partner.example }\n"
	    "rule r at rcpt when %s then reject",
	    cond);
	f = evfix_new(rules);
	v = mw_rules_run(f->rs, MW_PH_RCPT, &f->ev, &f->d);
	evfix_free(f);
	return v;
}

static void
conditions_match_as_documented(void **state)
{
	static const struct {
		const char *cond;
		enum mw_verdict want;
	} cases[] = {
		{ "client.ip in nets", MW_V_REJECT },
		{ "client.ip in { 192.0.2.16/28 }", MW_V_CONTINUE },
		{ "client.ip == 192.0.2.7", MW_V_REJECT },
		{ "client.ip != 192.0.2.7", MW_V_CONTINUE },
		/* domains: case-insensitive, trailing dot ignored */
		{ "client.name == mail.example.net.", MW_V_REJECT },
		{ "helo =~ /^mail\\./", MW_V_REJECT },
		{ "helo !~ /^mail\\./", MW_V_CONTINUE },
		{ "helo.fqdn", MW_V_REJECT },
		{ "helo.address-literal", MW_V_CONTINUE },
		/* addresses: local part exact, domain without case */
		{ "from == alice@example.org", MW_V_REJECT },
		{ "from == Alice@example.org", MW_V_CONTINUE },
		{ "from in people", MW_V_REJECT },
		{ "from.domain == EXAMPLE.org", MW_V_REJECT },
		{ "from.local == alice", MW_V_REJECT },
		{ "from.local == Alice", MW_V_CONTINUE },
		{ "rcpt.domain in loc", MW_V_REJECT },
		{ "rcpt.domain in { sub.example.com }", MW_V_CONTINUE },
		{ "rcpt == bob@EXAMPLE.COM", MW_V_REJECT },
		{ "authenticated", MW_V_CONTINUE },
		{ "not authenticated", MW_V_REJECT },
		{ "tls", MW_V_CONTINUE },
		{ "listener == ORIGINATING", MW_V_REJECT },
		{ "macro \"{daemon_name}\" == ORIGINATING", MW_V_REJECT },
		{ "macro \"i\" absent", MW_V_REJECT },
		{ "rcpt.count == 0", MW_V_REJECT },
		{ "(helo.fqdn and not tls) or authenticated", MW_V_REJECT },
		{ "var x", MW_V_CONTINUE },
		{ "not var x", MW_V_REJECT },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum mw_verdict v;

		v = verdict_of(cases[i].cond);
		if (v != cases[i].want)
			fail_msg("\"%s\": verdict %d, want %d", cases[i].cond,
			    v, cases[i].want);
	}
}

static void
first_terminal_action_decides_and_effects_accumulate(void **state)
{
	struct evfix *f = evfix_new(
	    "rule s1 at rcpt then score +2 a, set seen\n"
	    "rule s2 at rcpt when var seen then score +1.5 b\n"
	    "rule hi at rcpt when score >= 3.5 then tempfail 452 4.2.2 "
	    "\"%{rcpt} over %{score}: %{labels}\"\n"
	    "rule never at rcpt then reject\n");

	(void)state;
	assert_int_equal(mw_rules_run(f->rs, MW_PH_RCPT, &f->ev, &f->d),
	    MW_V_TEMPFAIL);
	assert_string_equal(f->d.code, "452");
	assert_string_equal(f->d.dsn, "4.2.2");
	assert_string_equal(f->d.text, "bob@example.com over 3.5: a=+2,b=+1.5");
	assert_string_equal(f->d.rule, "hi");
	assert_true(f->fx.score == 3.5);
	assert_int_equal(f->fx.nhits, 3);
	evfix_free(f);
}

static void
report_only_rules_change_nothing(void **state)
{
	struct evfix *f = evfix_new(
	    "rule shadow at rcpt report-only then score +10 x, reject\n"
	    "rule real at rcpt when score > 5 then reject\n");

	(void)state;
	assert_int_equal(mw_rules_run(f->rs, MW_PH_RCPT, &f->ev, &f->d),
	    MW_V_CONTINUE);
	assert_true(f->d.report_only_hit);
	assert_true(f->fx.score == 0);
	assert_int_equal(f->fx.nlabels, 0);
	evfix_free(f);
}

static void
stop_ends_the_phase_only(void **state)
{
	struct evfix *f = evfix_new("rule a at rcpt then set x, stop\n"
				    "rule b at rcpt then reject\n");

	(void)state;
	assert_int_equal(mw_rules_run(f->rs, MW_PH_RCPT, &f->ev, &f->d),
	    MW_V_CONTINUE);
	assert_non_null(mw_fx_var(&f->fx, "x"));
	evfix_free(f);
}

static void
regex_limit_is_an_error_not_a_miss(void **state)
{
	/* Catastrophic backtracking on a long subject. */
	struct evfix *f =
	    evfix_new("rule slow at eom when header \"Subject\" =~ /^(a+)+$/ "
		      "then reject\n");
	struct mw_header h;
	char value[4096];

	(void)state;
	memset(value, 'a', sizeof(value) - 2);
	value[sizeof(value) - 2] = '!';
	value[sizeof(value) - 1] = '\0';
	h.name = "Subject";
	h.value = value;
	f->ev.headers = &h;
	f->ev.nheaders = 1;
	assert_int_equal(mw_rules_run(f->rs, MW_PH_EOM, &f->ev, &f->d),
	    MW_V_ERROR);
	assert_string_equal(f->d.rule, "slow");
	evfix_free(f);
}

static void
header_and_body_conditions(void **state)
{
	struct evfix *f = evfix_new(
	    "rule two at eom when header \"received\" count == 2 and "
	    "header \"Subject\" =~ /hello/i and header \"Date\" absent and "
	    "body =~ /line\\r\\nbreak/ then reject 550 5.7.0 \"matched\"\n");
	struct mw_header h[3] = { { "Received", "a" }, { "Subject", "HeLLo" },
		{ "RECEIVED", "b" } };
	const char body[] = "some line\r\nbreak here";

	(void)state;
	f->ev.headers = h;
	f->ev.nheaders = 3;
	f->ev.body = (const unsigned char *)body;
	f->ev.body_len = sizeof(body) - 1;
	assert_int_equal(mw_rules_run(f->rs, MW_PH_EOM, &f->ev, &f->d),
	    MW_V_REJECT);
	assert_string_equal(f->d.text, "matched");
	f->ev.nheaders = 2;
	assert_int_equal(mw_rules_run(f->rs, MW_PH_EOM, &f->ev, &f->d),
	    MW_V_CONTINUE);
	evfix_free(f);
}

static void
counters_say_how_often_each_rule_matched(void **state)
{
	struct evfix *f = evfix_new("rule a at rcpt then set x\n"
				    "rule b at rcpt when var y then reject\n"
				    "rule c at rcpt report-only then reject\n");
	char path[] = "/tmp/mw-unit-log-XXXXXX", buf[512] = "";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);

	(void)state;
	assert_int_equal(mw_rules_run(f->rs, MW_PH_RCPT, &f->ev, &f->d),
	    MW_V_CONTINUE);
	assert_int_equal(mw_rules_run(f->rs, MW_PH_RCPT, &f->ev, &f->d),
	    MW_V_CONTINUE);
	mw_log_set_level(MW_LOG_INFO);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	mw_rules_log_counters(f->rs, 7);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	mw_log_set_level(MW_LOG_ERROR);
	assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
	close(fd);
	close(saved);
	unlink(path);
	assert_non_null(strstr(buf,
	    "rule counters (generation 7): a=2 "
	    "c=2(report-only)\n"));
	evfix_free(f);
}

static void
keywords_are_not_taken_as_names(void **state)
{
	static const char *const want[] = {
		"t.rules:2:1: expected a variable name, found rule",
		"t.rules:4:1: expected a label after the score, found rule",
		"t.rules:6:39: client.name needs a list of type domain; \"x\" is "
		"an ip list",
		NULL
	};

	(void)state;
	expect_diags("rule a at eom then set\n"
		     "rule b at helo then accept\n"
		     "rule c at eom then score +1\n"
		     "rule d at mail then accept\n"
		     "list x ip { 1.2.3.4 }\n"
		     "rule e at connect when client.name in x then accept\n",
	    want, false);
}

static void
overlong_word_is_an_error_not_two_words(void **state)
{
	static const char *const want[] = {
		"t.rules:1:1: word longer than 65535 bytes", NULL
	};
	char *text = malloc(70001);

	(void)state;
	memset(text, 'w', 70000);
	text[70000] = '\0';
	expect_diags(text, want, false);
	free(text);
}

static void
include_cycle_through_another_spelling_is_found(void **state)
{
	char *dir = tmpdir_make(), *a, *want;
	struct mw_diag d;

	(void)state;
	a = write_file(dir, "a.rules", "include \"./b.rules\"\n");
	free(write_file(dir, "b.rules", "include \"./a.rules\"\n"));
	mw_diag_init(&d);
	assert_null(mw_rules_load(&a, 1, NULL, 0, &d));
	assert_int_equal(d.nerrors, 1);
	assert_true(asprintf(&want,
			"%s/./b.rules:1:9: %s/././a.rules is already "
			"read (included twice or in a cycle)",
			dir, dir) > 0);
	assert_string_equal(d.v[0].text, want);
	free(want);
	free(a);
	mw_diag_free(&d);
	tmpdir_remove(dir);
}

static const char *traced_actions;

static void
remember_actions(void *arg, const struct mw_rule_hit *hit)
{
	(void)arg;
	traced_actions = hit->actions;
}

static void
traced_actions_leave_comments_out(void **state)
{
	struct evfix *f = evfix_new("rule a at rcpt then set x # why x\n"
				    "  , score +1 \"l\" # and a label\n"
				    "# a comment between rules\n"
				    "rule b at eom then accept\n");

	(void)state;
	f->ev.trace = remember_actions;
	assert_int_equal(mw_rules_run(f->rs, MW_PH_RCPT, &f->ev, &f->d),
	    MW_V_CONTINUE);
	assert_string_equal(traced_actions, "set x , score +1 \"l\"");
	evfix_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_construct_parses),
		cmocka_unit_test(every_error_is_reported_in_one_pass),
		cmocka_unit_test(
		    unreachable_rules_and_unsent_macros_are_warned),
		cmocka_unit_test(
		    includes_and_list_files_report_their_own_positions),
		cmocka_unit_test(include_cycles_are_refused),
		cmocka_unit_test(hostile_input_never_crashes),
		cmocka_unit_test(conditions_match_as_documented),
		cmocka_unit_test(
		    first_terminal_action_decides_and_effects_accumulate),
		cmocka_unit_test(report_only_rules_change_nothing),
		cmocka_unit_test(stop_ends_the_phase_only),
		cmocka_unit_test(regex_limit_is_an_error_not_a_miss),
		cmocka_unit_test(header_and_body_conditions),
		cmocka_unit_test(counters_say_how_often_each_rule_matched),
		cmocka_unit_test(keywords_are_not_taken_as_names),
		cmocka_unit_test(overlong_word_is_an_error_not_two_words),
		cmocka_unit_test(
		    include_cycle_through_another_spelling_is_found),
		cmocka_unit_test(traced_actions_leave_comments_out),
	};

	mw_log_set_level(MW_LOG_ERROR);
	return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
