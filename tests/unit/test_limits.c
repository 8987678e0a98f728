/*
 * test_limits.c -- rate limits and greylisting through the engine, with
 * the engine's clock under the test's control and a real LMDB store in a
 * temporary directory: the N+1st message is refused with the retry time,
 * GCRA frees one slot per period/N, greylisting refuses, then passes after
 * the delay, then auto-allows the network; a store that fails is the
 * configured choice; parse errors point at the condition.
 */
#include "config.h"

#include "helpers.h"
#include "mw_engine.h"

static uint64_t now_us = 1800000000ULL * 1000000ULL;

static uint64_t
test_clock(void)
{
	return now_us;
}

struct fx {
	char *dir;
	struct mw_state *st;
	struct mw_reply r;
};

static struct fx *
fx_new(const char *conf_extra, const char *rules)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mw_diag d;
	char *conf;

	f->dir = tmpdir_make();
	assert_true(asprintf(&conf, "state_store = lmdb:%s/state.mdb\n%s",
			f->dir, conf_extra) > 0);
	mw_diag_init(&d);
	f->st = state_with_rules(f->dir, conf, rules, &d);
	if (f->st == NULL) {
		mw_diag_print(&d, stderr);
		fail();
	}
	mw_diag_free(&d);
	free(conf);
	return f;
}

static void
fx_free(struct fx *f)
{
	mw_state_unref(f->st);
	tmpdir_remove(f->dir);
	free(f);
}

/*
 * One SMTP session with one message from client to rcpt; returns the
 * first action that was not continue (and the reply in f->r), or the end
 * of message's.
 */
static enum mw_action
session(struct fx *f, const char *client, const char *auth, const char *from,
    const char *rcpt)
{
	struct mw_conn *c = mw_conn_new(f->st);
	enum mw_action a;

	assert_non_null(c);
	if ((a = mw_eng_connect(c, "client.example", client, &f->r)) !=
		MW_CONTINUE ||
	    (a = mw_eng_helo(c, "client.example", &f->r)) != MW_CONTINUE)
		goto out;
	if (auth != NULL)
		assert_true(mw_conn_set_macro(c, "{auth_authen}", auth));
	if ((a = mw_eng_mail(c, from, NULL, &f->r)) != MW_CONTINUE ||
	    (a = mw_eng_rcpt(c, rcpt, &f->r)) != MW_CONTINUE ||
	    (a = mw_eng_data(c, &f->r)) != MW_CONTINUE ||
	    (a = mw_eng_header(c, "Subject", " hi", &f->r)) != MW_CONTINUE ||
	    (a = mw_eng_eoh(c, &f->r)) != MW_CONTINUE)
		goto out;
	a = mw_eng_eom(c, &f->r);
out:
	mw_conn_free(c);
	return a;
}

static void
nth_plus_one_message_is_refused_until_the_rate_frees_a_slot(void **state)
{
	struct fx *f = fx_new("",
	    "rule rate at mail when ratelimit messages by auth.user max 3 per "
	    "1h then tempfail 451 4.7.1 \"Too many, try again in "
	    "%{retry}\"\n");
	int i;

	(void)state;
	mw_engine_set_clock(test_clock);
	for (i = 0; i < 3; i++)
		assert_int_equal(session(f, "192.0.2.1", "alice", "<a@x.org>",
				     "<b@y.org>"),
		    MW_ACCEPT);
	assert_int_equal(session(f, "192.0.2.1", "alice", "<a@x.org>",
			     "<b@y.org>"),
	    MW_TEMPFAIL);
	assert_string_equal(f->r.code, "451");
	assert_string_equal(f->r.dsn, "4.7.1");
	/* GCRA: one slot every 20 minutes; the first frees at 20:00. */
	assert_string_equal(f->r.text,
	    "Too many, try again in 20 minutes 0 "
	    "seconds");
	/* Another login has its own count; no login: the rule does not apply.
	 */
	assert_int_equal(session(f, "192.0.2.1", "bob", "<a@x.org>",
			     "<b@y.org>"),
	    MW_ACCEPT);
	assert_int_equal(session(f, "192.0.2.1", NULL, "<a@x.org>",
			     "<b@y.org>"),
	    MW_ACCEPT);
	now_us += 19 * 60 * 1000000ULL;
	assert_int_equal(session(f, "192.0.2.1", "alice", "<a@x.org>",
			     "<b@y.org>"),
	    MW_TEMPFAIL);
	now_us += 61 * 1000000ULL;
	assert_int_equal(session(f, "192.0.2.1", "alice", "<a@x.org>",
			     "<b@y.org>"),
	    MW_ACCEPT);
	/* One slot, not a new window of three. */
	assert_int_equal(session(f, "192.0.2.1", "alice", "<a@x.org>",
			     "<b@y.org>"),
	    MW_TEMPFAIL);
	mw_engine_set_clock(NULL);
	fx_free(f);
}

static void
greylisting_refuses_then_passes_then_allows_the_network(void **state)
{
	struct fx *f = fx_new("greylist_delay = 300\n",
	    "rule grey at rcpt when greylisted then tempfail 451 4.7.1 "
	    "\"Greylisted, try again in %{retry}\"\n");

	(void)state;
	mw_engine_set_clock(test_clock);
	assert_int_equal(session(f, "198.51.100.7", NULL, "<s@remote.net>",
			     "<u@example.org>"),
	    MW_TEMPFAIL);
	assert_string_equal(f->r.text,
	    "Greylisted, try again in 5 minutes 0 "
	    "seconds");
	now_us += 100 * 1000000ULL;
	assert_int_equal(session(f, "198.51.100.7", NULL, "<s@remote.net>",
			     "<u@example.org>"),
	    MW_TEMPFAIL);
	assert_string_equal(f->r.text,
	    "Greylisted, try again in 3 minutes 20 "
	    "seconds");
	now_us += 201 * 1000000ULL;
	/* Retried from another address of the same /24: passes. */
	assert_int_equal(session(f, "198.51.100.8", NULL, "<s@remote.net>",
			     "<u@example.org>"),
	    MW_ACCEPT);
	/* Delivered: the network is allowed for other triplets too. */
	assert_int_equal(session(f, "198.51.100.9", NULL, "<t@remote.net>",
			     "<v@example.org>"),
	    MW_ACCEPT);
	/* Another network is not. */
	assert_int_equal(session(f, "203.0.113.5", NULL, "<t@remote.net>",
			     "<v@example.org>"),
	    MW_TEMPFAIL);
	mw_engine_set_clock(NULL);
	fx_free(f);
}

static void
state_survives_a_new_state_on_the_same_file(void **state)
{
	struct fx *f = fx_new("",
	    "rule rate at mail when ratelimit messages by client.net max 1 "
	    "per 1d then tempfail\n");
	struct mw_state *again;
	struct mw_diag d;
	char *path;

	(void)state;
	mw_engine_set_clock(test_clock);
	assert_int_equal(session(f, "192.0.2.1", NULL, "<a@x.org>",
			     "<b@y.org>"),
	    MW_ACCEPT);
	/* A reload builds a new state: the counter is still there. */
	assert_true(asprintf(&path, "%s/test.conf", f->dir) > 0);
	mw_diag_init(&d);
	again = mw_state_build(path, NULL, &d);
	assert_non_null(again);
	mw_state_unref(f->st);
	f->st = again;
	assert_int_equal(session(f, "192.0.2.200", NULL, "<a@x.org>",
			     "<b@y.org>"),
	    MW_TEMPFAIL);
	mw_diag_free(&d);
	free(path);
	mw_engine_set_clock(NULL);
	fx_free(f);
}

static void
store_failure_is_the_configured_choice(void **state)
{
	static const char rules[] = "rule rate at mail when ratelimit "
				    "messages by client.ip max 1 per 1h then "
				    "tempfail\n";
	struct fx *f;
	struct mw_diag d;
	struct mw_state *st;
	char *dir = tmpdir_make();

	(void)state;
	/* Nothing listens on port 1: every call fails at once. */
	mw_diag_init(&d);
	st = state_with_rules(dir,
	    "state_store = redis:127.0.0.1:1\nstate_store_timeout = 100\n",
	    rules, &d);
	assert_non_null(st);
	mw_diag_free(&d);
	f = calloc(1, sizeof(*f));
	f->dir = dir;
	f->st = st;
	assert_int_equal(session(f, "192.0.2.1", NULL, "<a@x.org>",
			     "<b@y.org>"),
	    MW_ACCEPT);
	assert_int_equal(session(f, "192.0.2.1", NULL, "<a@x.org>",
			     "<b@y.org>"),
	    MW_ACCEPT);
	mw_state_unref(f->st);
	mw_diag_init(&d);
	f->st = state_with_rules(dir,
	    "state_store = redis:127.0.0.1:1\nstate_store_timeout = 100\n"
	    "state_store_on_error = tempfail\n",
	    rules, &d);
	assert_non_null(f->st);
	mw_diag_free(&d);
	assert_int_equal(session(f, "192.0.2.1", NULL, "<a@x.org>",
			     "<b@y.org>"),
	    MW_TEMPFAIL);
	assert_string_equal(f->r.code, "451");
	assert_string_equal(f->r.dsn, "4.3.0");
	fx_free(f);
}

static void
bad_limits_are_errors_at_their_place(void **state)
{
	static const struct {
		const char *rules, *where, *what;
	} cases[] = {
		{ "rule r at mail when ratelimit recipients by client.ip max "
		  "5 per 1h then tempfail\n",
		    ":1:", "cannot be counted at the mail phase" },
		{ "rule r at rcpt when ratelimit messages by client.ip max 5 "
		  "per 1y then tempfail\n",
		    ":1:", "expected a duration" },
		{ "rule r at rcpt when ratelimit messages by client.ip+sender "
		  "max 5 per 1h then tempfail\n",
		    ":1:", "unknown key \"sender\"" },
		{ "rule r at mail when greylisted then tempfail\n",
		    ":1:", "only at the rcpt phase" },
		{ "rule r at rcpt when ratelimit messages by client.ip max 0 "
		  "per 1h then tempfail\n",
		    ":1:", "expected the limit" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *dir = tmpdir_make();
		struct mw_diag d;

		mw_diag_init(&d);
		assert_null(state_with_rules(dir, "", cases[i].rules, &d));
		assert_true(d.n >= 1);
		if (strstr(d.v[0].text, cases[i].where) == NULL ||
		    strstr(d.v[0].text, cases[i].what) == NULL)
			fail_msg("case %zu: %s", i, d.v[0].text);
		mw_diag_free(&d);
		tmpdir_remove(dir);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    nth_plus_one_message_is_refused_until_the_rate_frees_a_slot),
		cmocka_unit_test(
		    greylisting_refuses_then_passes_then_allows_the_network),
		cmocka_unit_test(state_survives_a_new_state_on_the_same_file),
		cmocka_unit_test(store_failure_is_the_configured_choice),
		cmocka_unit_test(bad_limits_are_errors_at_their_place),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
