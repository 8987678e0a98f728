/*
 * mw_signals -- SIGHUP means reload, not stop.
 *
 * libmilter's signal thread sigwait()s for SIGHUP, SIGTERM and SIGINT and
 * stops the milter on any of them.  milter-warden provides its own
 * sigwait(), which the dynamic linker binds libmilter to: it hands SIGHUP
 * to a reload thread.  On SIGTERM or SIGINT it first runs the drain (new
 * connections refused, sessions in flight finishing) and only then returns
 * SIGTERM to libmilter, which stops listening: libmilter itself would end
 * every session at its next command, and abort them on SIGINT.  Only libmilter
 * calls sigwait() in this program, so nothing else is affected.
 */
#ifndef MW_SIGNALS_H
#define MW_SIGNALS_H

#include <stdbool.h>

/*
 * mw_signals_start -- block SIGHUP, SIGTERM and SIGINT in the calling thread
 * (so threads created later inherit the mask) and start the reload thread,
 * which calls reload() once per SIGHUP received (several SIGHUPs arriving
 * during one reload cause one more reload).  drain(set) runs in
 * libmilter's signal thread on the first SIGTERM or SIGINT and returns
 * when libmilter may stop; it may wait for more signals of set with
 * sigtimedwait().  Call before smfi_main().
 */
bool mw_signals_start(void (*reload)(void), void (*drain)(const sigset_t *set));

/* mw_signals_intercepting -- true if libmilter will use our sigwait(). */
bool mw_signals_intercepting(void);

#endif
