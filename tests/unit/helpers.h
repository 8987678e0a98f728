/*
 * helpers.h -- shared by the unit tests: temporary files and states.
 */
#ifndef MW_TEST_HELPERS_H
#define MW_TEST_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mw_state.h"

/* A fresh directory for one test; removed by tmpdir_remove. */
static inline char *
tmpdir_make(void)
{
	char tmpl[] = "/tmp/mw-unit-XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return strdup(d);
}

static inline void
tmpdir_remove(char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(dir);
}

/* Write text to DIR/name; returns the path (caller frees). */
static inline char *
write_file(const char *dir, const char *name, const char *text)
{
	char *path;
	FILE *fp;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	return path;
}

/*
 * state_from -- a state from configuration lines (an empty rules file and
 * "user =" are added so tests need no system user).  NULL on errors, which
 * are left in diag.
 */
static inline struct mw_state *
state_from(const char *dir, const char *conf, struct mw_diag *diag)
{
	char *rules = write_file(dir, "test.rules", "# empty\n");
	char *text, *path;
	struct mw_state *st;

	assert_true(asprintf(&text, "user =\nrules = %s\n%s", rules, conf) > 0);
	path = write_file(dir, "test.conf", text);
	st = mw_state_build(path, NULL, diag);
	free(text);
	free(path);
	free(rules);
	return st;
}

/* state_with_rules -- like state_from, with the given rules text. */
static inline struct mw_state *
state_with_rules(const char *dir, const char *conf, const char *rules_text,
    struct mw_diag *diag)
{
	char *rules = write_file(dir, "test.rules", rules_text);
	char *text, *path;
	struct mw_state *st;

	assert_true(asprintf(&text, "user =\nrules = %s\n%s", rules, conf) > 0);
	path = write_file(dir, "test.conf", text);
	st = mw_state_build(path, NULL, diag);
	free(text);
	free(path);
	free(rules);
	return st;
}

#endif
