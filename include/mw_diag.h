/*
 * mw_diag -- collected diagnostics with source positions.
 *
 * Parsers report every problem they find in one pass as
 * "FILE:LINE:COL: message" instead of stopping at the first one.  A
 * mw_diag owns its messages; it carries no global state, so several parsers
 * may run at once (reload while serving).
 */
#ifndef MW_DIAG_H
#define MW_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum mw_diag_severity { MW_DIAG_ERROR, MW_DIAG_WARNING };

struct mw_diag_entry {
	enum mw_diag_severity severity;
	char *text; /* "file:line:col: message", owned */
};

struct mw_diag {
	struct mw_diag_entry *v;
	size_t n, cap;
	size_t nerrors;
	bool oom; /* an entry could not be stored */
};

void mw_diag_init(struct mw_diag *d);
void mw_diag_free(struct mw_diag *d);

/*
 * mw_diag_add -- record one diagnostic.  file may be NULL (then only the
 * message is stored); line and col are 1-based, 0 means "not known" and is
 * left out.  Never fails visibly: on OOM the diag remembers that it lost an
 * entry, and nerrors still counts errors.
 */
void mw_diag_add(struct mw_diag *d, enum mw_diag_severity sev, const char *file,
    unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#define mw_diag_error(d, f, l, c, ...) \
	mw_diag_add((d), MW_DIAG_ERROR, (f), (l), (c), __VA_ARGS__)
#define mw_diag_warning(d, f, l, c, ...) \
	mw_diag_add((d), MW_DIAG_WARNING, (f), (l), (c), __VA_ARGS__)

/* mw_diag_print -- one line per entry ("warning: " prefixed for warnings). */
void mw_diag_print(const struct mw_diag *d, FILE *fp);

#endif
