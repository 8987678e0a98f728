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

#endif
