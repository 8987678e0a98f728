/*
 * fuzz_rules.c -- libFuzzer harness for the rules parser (mw_rules_parse).
 *
 * Each input is one rules file.  It is handed to the parser exactly as
 * libFuzzer gives it: not NUL-terminated, so a read past len is caught by
 * ASan.  Everything the parser returns is freed, so a leak is a finding.
 *
 * Includes and list files: the input is parsed as "/nonexistent/fuzz.rules",
 * so a relative `include "x"` or `list n ip file "x"` resolves below a
 * directory that does not exist and fails with a diagnostic.  An ABSOLUTE
 * path in the input is opened as written (the parser does that for any
 * rules file): the fuzzer may read real files of this machine, e.g.
 * /etc/passwd, as rules or list files.  That is harmless (read-only, and
 * only regular files are read, at most 64 MiB for rules and 256 MiB for
 * lists) but it can make an input slow or memory-hungry, and opening a
 * FIFO would block until -timeout fires.  Do not run the fuzzer as a user
 * that can reach files it should not parse.
 *
 * Build: ./configure CC=clang --enable-fuzzing && make (see tests/fuzz/run).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mw_diag.h"
#include "mw_log.h"
#include "mw_rules.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mw_log_set_level(MW_LOG_ERROR);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mw_ruleset *rs;
	struct mw_diag d;
	size_t i, total = 0;

	mw_diag_init(&d);
	rs = mw_rules_parse("/nonexistent/fuzz.rules", (const char *)data, size,
	    &d);

	/* The documented contract: NULL exactly when an error was reported. */
	if ((rs == NULL) != (d.nerrors > 0))
		abort();
	/* Every diagnostic is a NUL-terminated string (ASan checks reads). */
	for (i = 0; i < d.n; i++)
		total += strlen(d.v[i].text);
	(void)total;

	if (rs != NULL) {
		int ph;

		(void)mw_rules_count(rs);
		(void)mw_rules_nfiles(rs);
		for (ph = 0; ph < MW_PH_COUNT; ph++)
			(void)mw_rules_has_phase(rs, (enum mw_phase)ph);
		mw_rules_free(rs);
	}
	mw_diag_free(&d);
	return 0;
}
