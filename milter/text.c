/*
 * text.c -- bounded string helpers for untrusted text.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "mw_text.h"

bool
mw_printable(char *dst, size_t dstsize, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	if (dstsize == 0)
		return false;
	for (i = 0; i < srclen; i++) {
		unsigned char ch = (unsigned char)src[i];
		char esc[4];
		size_t elen;

		if (ch == '\\' || ch == '"') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			elen = 2;
		} else if (ch >= 0x20 && ch < 0x7f) {
			esc[0] = (char)ch;
			elen = 1;
		} else {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[ch >> 4];
			esc[3] = hex[ch & 15];
			elen = 4;
		}
		if (o + elen + 1 > dstsize) {
			/* Mark the cut so nobody mistakes it for the whole. */
			if (dstsize >= 4) {
				o = o + 4 <= dstsize ? o : dstsize - 4;
				memcpy(dst + o, "...", 3);
				o += 3;
			} else {
				o = 0;
			}
			dst[o] = '\0';
			return false;
		}
		memcpy(dst + o, esc, elen);
		o += elen;
	}
	dst[o] = '\0';
	return true;
}

bool
mw_strlcpy(char *dst, const char *src, size_t dstsize)
{
	size_t len = strlen(src);

	if (dstsize == 0)
		return false;
	if (len >= dstsize) {
		memcpy(dst, src, dstsize - 1);
		dst[dstsize - 1] = '\0';
		return false;
	}
	memcpy(dst, src, len + 1);
	return true;
}

char *
mw_strdup_bounded(const char *src, size_t max)
{
	size_t len = strnlen(src, max + 1);
	char *p;

	if (len > max)
		return NULL;
	if ((p = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(p, src, len);
	p[len] = '\0';
	return p;
}

FILE *
mw_fopen_regular(const char *path)
{
	struct stat sb;
	FILE *fp;
	int fd, flags;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1 ||
	    (fp = fdopen(fd, "r")) == NULL) {
		int e = errno;

		close(fd);
		errno = e;
		return NULL;
	}
	return fp;
}

const char *
mw_open_error(int err)
{
	return err == EINVAL ? "not a regular file" : strerror(err);
}

char *
mw_read_regular(const char *path, size_t max, size_t *lenp, bool *opening,
    const char **why)
{
	struct stat sb;
	char *buf;
	size_t len;
	FILE *fp;

	*opening = false;
	if ((fp = mw_fopen_regular(path)) == NULL) {
		*opening = true;
		*why = mw_open_error(errno);
		return NULL;
	}
	if (fstat(fileno(fp), &sb) == -1 || (size_t)sb.st_size > max) {
		*why = "file too large";
		fclose(fp);
		return NULL;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		*why = "out of memory";
		fclose(fp);
		return NULL;
	}
	/* One byte more than the size: a file that grew is noticed. */
	len = fread(buf, 1, (size_t)sb.st_size + 1, fp);
	if (ferror(fp) || len > (size_t)sb.st_size) {
		*why = "read error or file changed while reading";
		free(buf);
		fclose(fp);
		return NULL;
	}
	fclose(fp);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}
