/*
 * mw_glue -- the libmilter side: callback registration and session count.
 */
#ifndef MW_GLUE_H
#define MW_GLUE_H

#include <stdbool.h>

/* mw_glue_register -- smfi_register with every callback; false on failure. */
bool mw_glue_register(void);

/* mw_glue_active -- MTA connections currently open (for draining). */
unsigned mw_glue_active(void);

/*
 * mw_glue_refuse_new -- from now on decline new MTA connections at
 * negotiation (the MTA applies its milter_default_action to them), while
 * those already open go on.
 */
void mw_glue_refuse_new(void);

#endif
