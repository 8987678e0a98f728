/*
 * rules.c -- reading rules files (the language itself is still to come).
 *
 * Files are read whole with a size bound; each line is checked so that
 * anything but a comment or a blank line is reported at its position.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_rules.h"

#define RULES_FILE_MAX (64 * 1024 * 1024)

struct mw_ruleset {
	size_t nfiles;
};

static void
check_file(const char *path, struct mw_diag *diag)
{
	struct stat sb;
	unsigned lineno = 0;
	char *buf = NULL;
	size_t len, pos = 0;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		mw_diag_error(diag, path, 0, 0, "cannot open rules file: %s",
		    strerror(errno));
		return;
	}
	if (fstat(fileno(fp), &sb) == -1 || !S_ISREG(sb.st_mode)) {
		mw_diag_error(diag, path, 0, 0,
		    "rules file is not a regular file");
		goto out;
	}
	if (sb.st_size > RULES_FILE_MAX) {
		mw_diag_error(diag, path, 0, 0,
		    "rules file larger than %d bytes", RULES_FILE_MAX);
		goto out;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		mw_diag_error(diag, path, 0, 0, "out of memory");
		goto out;
	}
	len = fread(buf, 1, (size_t)sb.st_size + 1, fp);
	if (ferror(fp) || len > (size_t)sb.st_size) {
		mw_diag_error(diag, path, 0, 0,
		    "read error or file changed "
		    "while reading");
		goto out;
	}
	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos, i = 0;

		pos += llen + (nl ? 1 : 0);
		lineno++;
		while (i < llen &&
		    (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
			i++;
		if (i < llen && line[i] != '#')
			mw_diag_error(diag, path, lineno, (unsigned)i + 1,
			    "rule statements are not supported by this version "
			    "of milter-warden (only comments and blank lines)");
	}
out:
	free(buf);
	fclose(fp);
}

struct mw_ruleset *
mw_rules_load(char *const *files, size_t n, struct mw_diag *diag)
{
	struct mw_ruleset *rs;
	size_t errors = diag->nerrors, i;

	for (i = 0; i < n; i++)
		check_file(files[i], diag);
	if (diag->nerrors > errors)
		return NULL;
	if ((rs = calloc(1, sizeof(*rs))) == NULL) {
		mw_diag_error(diag, NULL, 0, 0, "out of memory");
		return NULL;
	}
	rs->nfiles = n;
	return rs;
}

size_t
mw_rules_nfiles(const struct mw_ruleset *rs)
{
	return rs->nfiles;
}

void
mw_rules_free(struct mw_ruleset *rs)
{
	free(rs);
}
