/*
 * mw_text -- small string helpers for untrusted text.
 *
 * Everything the MTA or the SMTP client says is untrusted: these helpers
 * never write past the buffer they are given and report truncation instead
 * of hiding it.
 */
#ifndef MW_TEXT_H
#define MW_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/*
 * mw_printable -- copy src (srclen bytes, may contain NUL) into dst as
 * log-safe text: printable ASCII is kept, backslash and double quote are
 * escaped, every other byte becomes \xHH.  dst is always NUL-terminated
 * (dstsize must be > 0).  When the result does not fit it ends in "..."
 * and the function returns false.
 */
bool mw_printable(char *dst, size_t dstsize, const char *src, size_t srclen);

/*
 * mw_strlcpy -- copy a NUL-terminated string with truncation detection.
 * Returns false (dst still terminated) when src did not fit.
 */
bool mw_strlcpy(char *dst, const char *src, size_t dstsize);

/* mw_strndup_bounded -- strdup of at most max bytes; NULL on OOM or if longer.
 */
char *mw_strdup_bounded(const char *src, size_t max);

/*
 * mw_fopen_regular -- fopen(path, "r") for a regular file only.  The open
 * does not block (a FIFO named as a rules or list file would otherwise
 * hang a reload).  NULL with errno set on failure; EINVAL means "not a
 * regular file".
 */
FILE *mw_fopen_regular(const char *path);

/* mw_open_error -- the reason mw_fopen_regular failed, for a diagnostic. */
const char *mw_open_error(int err);

/*
 * mw_read_regular -- the whole of a regular file of at most max bytes,
 * NUL-terminated (*lenp does not count the NUL); the caller frees it.
 * NULL on failure: *opening is true when the open itself failed (errno
 * set, see mw_open_error), and *why says what went wrong either way.
 */
char *mw_read_regular(const char *path, size_t max, size_t *lenp, bool *opening,
    const char **why);

#endif
