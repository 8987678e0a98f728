/*
 * mw_state -- the running state: configuration and policy, swapped whole.
 *
 * A state is built completely (configuration parsed, every referenced file
 * read and validated) before it is published, and is immutable afterwards.
 * Connections take a reference at connect and keep it until close, so a
 * reload never changes the policy under a session in flight: the old state
 * is freed when its last session ends.
 *
 * Locking: one mutex guards the "current" pointer only; the reference count
 * is atomic, so evaluation never takes a lock.
 */
#ifndef MW_STATE_H
#define MW_STATE_H

#include <stdatomic.h>

#include "mw_config.h"
#include "mw_diag.h"
#include "mw_dkim.h"
#include "mw_dnsbl.h"
#include "mw_rules.h"

struct mw_state {
	atomic_uint refs;
	unsigned long generation; /* 1 for the first load, +1 per reload */
	bool published;           /* was current once: log its counters */
	struct mw_config *cfg;    /* owned */
	struct mw_ruleset *rules; /* owned */
	struct mw_dkim *dkim;     /* owned: keys and libopendkim handle */
	struct mw_store *store;   /* a reference; NULL if no rule needs it */
	struct mw_dnsbl *dnsbl;   /* owned; NULL if no rule looks one up */
};

/*
 * mw_state_build -- load the configuration at path and everything it
 * references.  overrides is a NULL-terminated list of "name", "value"
 * pairs applied after the file (command-line -p), may be NULL.  Returns a
 * new state with one reference, or NULL with every problem in diag.
 */
struct mw_state *mw_state_build(const char *path, const char *const *overrides,
    struct mw_diag *diag);

/*
 * mw_state_publish -- make st the current state (taking over the caller's
 * reference) and drop the reference held on the previous one.  The new
 * state's generation is the old one's plus one.
 */
void mw_state_publish(struct mw_state *st);

/* mw_state_current -- a new reference on the current state, or NULL. */
struct mw_state *mw_state_current(void);

/* mw_state_ref -- another reference on st (st != NULL). */
struct mw_state *mw_state_ref(struct mw_state *st);

/* mw_state_unref -- drop a reference; frees st on the last one.  NULL ok. */
void mw_state_unref(struct mw_state *st);

/*
 * mw_state_set_offline -- states built from now on do not open the state
 * store (milter-warden test and -n: nothing is counted, nothing limited).
 */
void mw_state_set_offline(bool offline);

/* mw_state_shutdown -- drop the current state (at exit). */
void mw_state_shutdown(void);

#endif
