/*
 * diag.c -- collected "FILE:LINE:COL: message" diagnostics.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_diag.h"

void
mw_diag_init(struct mw_diag *d)
{
	memset(d, 0, sizeof(*d));
}

void
mw_diag_free(struct mw_diag *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->v[i].text);
	free(d->v);
	mw_diag_init(d);
}

void
mw_diag_add(struct mw_diag *d, enum mw_diag_severity sev, const char *file,
    unsigned line, unsigned col, const char *fmt, ...)
{
	char pos[1024] = "", msg[1024];
	const char *kind;
	char *text;
	size_t len;
	va_list ap;

	if (sev == MW_DIAG_ERROR)
		d->nerrors++;

	if (file != NULL && line > 0 && col > 0)
		snprintf(pos, sizeof(pos), "%s:%u:%u: ", file, line, col);
	else if (file != NULL && line > 0)
		snprintf(pos, sizeof(pos), "%s:%u: ", file, line);
	else if (file != NULL)
		snprintf(pos, sizeof(pos), "%s: ", file);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 8;
		struct mw_diag_entry *nv = realloc(d->v, ncap * sizeof(*nv));

		if (nv == NULL) {
			d->oom = true;
			return;
		}
		d->v = nv;
		d->cap = ncap;
	}
	/* The compilers' convention: "file:line:col: warning: text". */
	kind = sev == MW_DIAG_WARNING ? "warning: " : "";
	len = strlen(pos) + strlen(kind) + strlen(msg) + 1;
	if ((text = malloc(len)) == NULL) {
		d->oom = true;
		return;
	}
	snprintf(text, len, "%s%s%s", pos, kind, msg);
	d->v[d->n].severity = sev;
	d->v[d->n].text = text;
	d->n++;
}

void
mw_diag_print(const struct mw_diag *d, FILE *fp)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		fprintf(fp, "%s\n", d->v[i].text);
	if (d->oom)
		fprintf(fp, "(some diagnostics were lost: out of memory)\n");
}
