/*
 * test_state.c -- building, publishing and swapping the running state:
 * what reload relies on.
 */
#include "config.h"

#include <pthread.h>

#include "helpers.h"
#include "mw_engine.h"
#include "mw_log.h"

static void
published_state_is_shared_by_reference(void **state)
{
	char *dir = tmpdir_make();
	struct mw_state *st, *cur;
	struct mw_diag d;

	(void)state;
	mw_diag_init(&d);
	st = state_from(dir, "max_recipients = 7\n", &d);
	assert_non_null(st);
	mw_state_publish(st);
	cur = mw_state_current();
	assert_ptr_equal(cur, st);
	assert_int_equal(cur->cfg->max_recipients, 7);
	assert_int_equal(atomic_load(&cur->refs), 2);
	mw_state_unref(cur);
	mw_state_shutdown();
	assert_null(mw_state_current());
	mw_diag_free(&d);
	tmpdir_remove(dir);
}

/*
 * A session that started under one state finishes under it after a
 * reload; new sessions get the new state.
 */
static void
sessions_in_flight_keep_their_state_across_a_swap(void **state)
{
	char *dir = tmpdir_make();
	struct mw_state *a, *b, *cur;
	struct mw_conn *old_session, *new_session;
	struct mw_reply r;
	struct mw_diag d;

	(void)state;
	mw_diag_init(&d);
	a = state_from(dir, "max_recipients = 2\n", &d);
	assert_non_null(a);
	mw_state_publish(a);
	cur = mw_state_current();
	old_session = mw_conn_new(cur);
	mw_state_unref(cur);
	assert_int_equal(mw_eng_mail(old_session, "<a@x.org>", NULL, &r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(old_session, "<b@x.org>", &r),
	    MW_CONTINUE);

	b = state_from(dir, "max_recipients = 1\n", &d);
	assert_non_null(b);
	mw_state_publish(b);
	assert_int_equal(b->generation, a->generation + 1);

	/* The old session still allows its second recipient. */
	assert_int_equal(mw_eng_rcpt(old_session, "<c@x.org>", &r),
	    MW_CONTINUE);
	assert_int_equal(mw_conn_state(old_session)->cfg->max_recipients, 2);

	cur = mw_state_current();
	new_session = mw_conn_new(cur);
	mw_state_unref(cur);
	assert_int_equal(mw_eng_mail(new_session, "<a@x.org>", NULL, &r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(new_session, "<b@x.org>", &r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(new_session, "<c@x.org>", &r),
	    MW_TEMPFAIL);

	/* The old state goes with its last session (ASan checks the free). */
	mw_conn_free(old_session);
	mw_conn_free(new_session);
	mw_state_shutdown();
	mw_diag_free(&d);
	tmpdir_remove(dir);
}

static void
failed_build_reports_every_error_and_publishes_nothing(void **state)
{
	char *dir = tmpdir_make();
	struct mw_state *st;
	struct mw_diag d;
	char *rules, *conf, *text, want[512];

	(void)state;
	rules = write_file(dir, "bad.rules", "# ok\n\n  reject all\n");
	assert_true(asprintf(&text,
			"user =\nrules = %s, %s/missing.rules\n"
			"max_recipients = x\n",
			rules, dir) > 0);
	conf = write_file(dir, "bad.conf", text);
	mw_diag_init(&d);
	st = mw_state_build(conf, NULL, &d);
	assert_null(st);
	/* The configuration error stops before the rules are read. */
	assert_int_equal(d.nerrors, 1);
	snprintf(want, sizeof(want),
	    "%s:3:18: max_recipients: \"x\" is not a "
	    "whole number",
	    conf);
	assert_string_equal(d.v[0].text, want);
	mw_diag_free(&d);
	free(text);
	free(conf);

	/* With the configuration fixed, both rules problems are reported. */
	assert_true(asprintf(&text, "user =\nrules = %s, %s/missing.rules\n",
			rules, dir) > 0);
	conf = write_file(dir, "bad.conf", text);
	mw_diag_init(&d);
	assert_null(mw_state_build(conf, NULL, &d));
	assert_int_equal(d.nerrors, 2);
	snprintf(want, sizeof(want),
	    "%s:3:3: expected \"rule\", \"list\" or \"include\", found reject",
	    rules);
	assert_string_equal(d.v[0].text, want);
	snprintf(want, sizeof(want),
	    "%s/missing.rules: cannot open rules file: "
	    "No such file or directory",
	    dir);
	assert_string_equal(d.v[1].text, want);
	assert_null(mw_state_current());
	mw_diag_free(&d);
	free(text);
	free(conf);
	free(rules);
	tmpdir_remove(dir);
}

static void
command_line_override_wins(void **state)
{
	char *dir = tmpdir_make();
	const char *ov[] = { "socket", "inet:9999@127.0.0.1", NULL };
	char *conf;
	struct mw_state *st;
	struct mw_diag d;

	(void)state;
	conf = write_file(dir, "c.conf",
	    "user =\nrules =\n"
	    "socket = unix:/x.sock\n");
	mw_diag_init(&d);
	st = mw_state_build(conf, ov, &d);
	assert_non_null(st);
	assert_string_equal(st->cfg->socket, "inet:9999@127.0.0.1");
	assert_int_equal(st->cfg->nrules, 0);
	mw_state_unref(st);
	mw_diag_free(&d);
	free(conf);
	tmpdir_remove(dir);
}

/* Readers take and drop references while a writer keeps swapping. */
static atomic_bool stop_readers;

static void *
reader(void *arg)
{
	unsigned long seen = 0;

	(void)arg;
	while (!atomic_load(&stop_readers)) {
		struct mw_state *st = mw_state_current();
		struct mw_conn *c;

		if (st == NULL)
			continue;
		assert_true(st->generation >= seen);
		seen = st->generation;
		c = mw_conn_new(st);
		mw_state_unref(st);
		assert_non_null(c);
		assert_true(mw_conn_state(c)->cfg->max_recipients >= 1);
		mw_conn_free(c);
	}
	return NULL;
}

static void
concurrent_swaps_and_sessions_are_safe(void **state)
{
	char *dir = tmpdir_make();
	pthread_t t[4];
	struct mw_diag d;
	int i;

	(void)state;
	mw_diag_init(&d);
	atomic_store(&stop_readers, false);
	mw_state_publish(state_from(dir, "", &d));
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, NULL), 0);
	for (i = 0; i < 200; i++) {
		char conf[64];
		struct mw_state *st;

		snprintf(conf, sizeof(conf), "max_recipients = %d\n", i + 1);
		st = state_from(dir, conf, &d);
		assert_non_null(st);
		mw_state_publish(st);
	}
	atomic_store(&stop_readers, true);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	mw_state_shutdown();
	mw_diag_free(&d);
	tmpdir_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(published_state_is_shared_by_reference),
		cmocka_unit_test(
		    sessions_in_flight_keep_their_state_across_a_swap),
		cmocka_unit_test(
		    failed_build_reports_every_error_and_publishes_nothing),
		cmocka_unit_test(command_line_override_wins),
		cmocka_unit_test(concurrent_swaps_and_sessions_are_safe),
	};

	mw_log_set_level(MW_LOG_ERROR);
	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
