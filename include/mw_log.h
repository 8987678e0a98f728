/*
 * mw_log -- logging for milter-warden.
 *
 * One line per event, to syslog (daemon mode) or to stderr (foreground,
 * tests).  Every line is built in a bounded buffer and written with a single
 * write(2), so lines from concurrent libmilter threads never interleave.
 * The level threshold may be changed at run time (reload) and is read with
 * relaxed atomics.
 */
#ifndef MW_LOG_H
#define MW_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum mw_log_level {
	MW_LOG_ERROR = 0,
	MW_LOG_WARNING,
	MW_LOG_NOTICE,
	MW_LOG_INFO,
	MW_LOG_DEBUG
};

/* Where lines go. */
enum mw_log_dest { MW_LOG_STDERR, MW_LOG_SYSLOG };

/*
 * mw_log_open -- choose the destination.  ident is kept by reference (it
 * must outlive logging); facility is a LOG_* facility for syslog.
 */
void mw_log_open(const char *ident, enum mw_log_dest dest, int facility);

/* mw_log_set_level -- lines above this level are dropped.  Thread-safe. */
void mw_log_set_level(enum mw_log_level level);
enum mw_log_level mw_log_get_level(void);

void mw_log(enum mw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mw_vlog(enum mw_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define mw_error(...)  mw_log(MW_LOG_ERROR, __VA_ARGS__)
#define mw_warn(...)   mw_log(MW_LOG_WARNING, __VA_ARGS__)
#define mw_notice(...) mw_log(MW_LOG_NOTICE, __VA_ARGS__)
#define mw_info(...)   mw_log(MW_LOG_INFO, __VA_ARGS__)
#define mw_debug(...)  mw_log(MW_LOG_DEBUG, __VA_ARGS__)

#endif
