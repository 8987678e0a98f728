/*
 * fuzz_config.c -- libFuzzer harness for the configuration file parser
 * (mw_config_parse).
 *
 * Each input is one milter-warden.conf.  It is handed to the parser as
 * libFuzzer gives it (not NUL-terminated: a read past len is caught by
 * ASan) and everything is freed, so a leak is a finding.  The parser opens
 * no file: the paths a configuration names (rules, pidfile) are only
 * checked by mw_config_check_refs and read by mw_rules_load, neither of
 * which is called here.  A configuration that loads is also formatted back
 * parameter by parameter (mw_config_format, used by -D and on reload).
 *
 * Build: ./configure CC=clang --enable-fuzzing && make (see tests/fuzz/run).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mw_config.h"
#include "mw_diag.h"
#include "mw_log.h"

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
	struct mw_config *cfg;
	struct mw_diag d;
	size_t i, total = 0;

	mw_diag_init(&d);
	cfg = mw_config_parse("/nonexistent/fuzz.conf", (const char *)data,
	    size, &d);

	/* The documented contract: NULL exactly when an error was reported. */
	if ((cfg == NULL) != (d.nerrors > 0))
		abort();
	for (i = 0; i < d.n; i++)
		total += strlen(d.v[i].text);
	(void)total;

	if (cfg != NULL) {
		const struct mw_param *params;
		size_t n;
		char buf[8192];

		params = mw_config_params(&n);
		for (i = 0; i < n; i++)
			mw_config_format(cfg, &params[i], buf, sizeof(buf));
		mw_config_free(cfg);
	}
	mw_diag_free(&d);
	return 0;
}
