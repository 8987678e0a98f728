/*
 * mw_rules -- rules files.
 *
 * This version reads every rules file named by the configuration, reports
 * unreadable files, and accepts only comments and blank lines: the rules
 * language itself is not implemented yet.  A rule statement is an error
 * at its FILE:LINE:COL rather than something silently ignored, so nobody
 * believes a policy is enforced when it is not.
 */
#ifndef MW_RULES_H
#define MW_RULES_H

#include <stddef.h>

#include "mw_diag.h"

struct mw_ruleset;

/* mw_rules_load -- read files[0..n); NULL with diagnostics on any error. */
struct mw_ruleset *mw_rules_load(char *const *files, size_t n,
    struct mw_diag *diag);

/* mw_rules_nfiles -- how many files the ruleset was read from. */
size_t mw_rules_nfiles(const struct mw_ruleset *rs);

void mw_rules_free(struct mw_ruleset *rs);

#endif
