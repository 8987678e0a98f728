/*
 * mw_signals -- SIGHUP means reload, not stop.
 *
 * libmilter's signal thread sigwait()s for SIGHUP, SIGTERM and SIGINT and
 * stops the milter on any of them.  milter-warden provides its own
 * sigwait(), which the dynamic linker binds libmilter to: it hands SIGHUP
 * to a reload thread and returns SIGTERM to libmilter for both SIGTERM and
 * SIGINT, so that both stop gracefully (libmilter would abort sessions in
 * flight on SIGINT).  Only libmilter calls sigwait() in this
 * program, so nothing else is affected.
 */
#ifndef MW_SIGNALS_H
#define MW_SIGNALS_H

#include <stdbool.h>

/*
 * mw_signals_start -- block SIGHUP, SIGTERM and SIGINT in the calling thread
 * (so threads created later inherit the mask) and start the reload thread,
 * which calls reload() once per SIGHUP received (several SIGHUPs arriving
 * during one reload cause one more reload).  Call before smfi_main().
 */
bool mw_signals_start(void (*reload)(void));

/* mw_signals_intercepting -- true if libmilter will use our sigwait(). */
bool mw_signals_intercepting(void);

#endif
