/*
 * log.c -- one line per event, to syslog or to stderr.
 *
 * Lines are formatted into a bounded stack buffer and written with one
 * write(2) so that concurrent libmilter threads never interleave.  A line
 * longer than the buffer is cut and marked with "..." (the text in log lines
 * is made printable by the callers, so cutting cannot split an escape in a
 * way that matters to a reader).
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "mw_log.h"

#define LOG_LINE_MAX 4096

static const char *log_ident = "milter-warden";
static enum mw_log_dest log_dest = MW_LOG_STDERR;
static atomic_int log_level = MW_LOG_INFO;

static const char *const level_names[] = { "error", "warning", "notice", "info",
	"debug" };
static const int level_syslog[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO,
	LOG_DEBUG };

void
mw_log_open(const char *ident, enum mw_log_dest dest, int facility)
{
	log_ident = ident;
	log_dest = dest;
	if (dest == MW_LOG_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, facility);
}

void
mw_log_set_level(enum mw_log_level level)
{
	atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum mw_log_level
mw_log_get_level(void)
{
	return (enum mw_log_level)atomic_load_explicit(&log_level,
	    memory_order_relaxed);
}

void
mw_vlog(enum mw_log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t off = 0;
	int n;
	int saved_errno = errno;

	if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;

	if (log_dest == MW_LOG_STDERR) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line + off, sizeof(line) - off,
		    ".%03ld %s[%ld]: %s: ", ts.tv_nsec / 1000000, log_ident,
		    (long)getpid(), level_names[level]);
		if (n > 0)
			off += (size_t)n;
	}
	n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line) - off) {
		off = sizeof(line) - 5;
		memcpy(line + off, "...", 3);
		off += 3;
	} else {
		off += (size_t)n;
	}

	if (log_dest == MW_LOG_SYSLOG) {
		line[off] = '\0';
		syslog(level_syslog[level], "%s", line);
	} else {
		line[off++] = '\n';
		/* One write: lines from other threads stay whole. */
		if (write(STDERR_FILENO, line, off) < 0) {
			/* Nowhere left to report a failing log write. */
		}
	}
	errno = saved_errno;
}

void
mw_log(enum mw_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mw_vlog(level, fmt, ap);
	va_end(ap);
}
