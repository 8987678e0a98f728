/*
 * engine_bl.c -- the engine's side of DNS blocklists: before a phase's
 * rules run, every lookup they will read is resolved at once (dnsbl.c:
 * in parallel, cached, each query bounded by dns_timeout and all of a
 * message's by dnsbl_budget), and the answers are kept for the session.
 * A lookup without an answer is recorded (dnsbl_noanswer= on the decision
 * line) and reads as "not listed": DNS trouble never holds mail longer
 * than the budget, and never refuses it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine_int.h"
#include "mw_dnsbl.h"
#include "mw_state.h"
#include "mw_text.h"

#define BL_SESSION_MAX 256 /* answers kept per session */
#define BL_BATCH_MAX   64  /* lookups resolved together */

static unsigned long
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long)ts.tv_sec * 1000UL +
	    (unsigned long)ts.tv_nsec / 1000000UL;
}

static const struct bl_answer *
find(const struct mw_conn *c, const char *zone, const char *subject)
{
	size_t i;

	for (i = 0; i < c->nbl; i++)
		if (strcasecmp(c->bl[i].subject, subject) == 0 &&
		    strcasecmp(c->bl[i].zone, zone) == 0)
			return &c->bl[i];
	return NULL;
}

void
eng_bl_prefetch(struct mw_conn *c, enum mw_phase ph, const struct mw_eval *ev)
{
	struct mw_bl_query want[BL_BATCH_MAX];
	struct mw_dnsbl_q qs[BL_BATCH_MAX];
	unsigned long budget = c->st->cfg->dnsbl_budget, *spent, t0;
	size_t n, k = 0, i;

	n = mw_rules_bl_queries(c->st->rules, ph, ev, want, BL_BATCH_MAX);
	for (i = 0; i < n; i++) {
		size_t j;

		if (find(c, want[i].zone, want[i].subject) != NULL ||
		    strlen(want[i].zone) >= sizeof(c->bl[0].zone) ||
		    strlen(want[i].subject) >= sizeof(c->bl[0].subject))
			continue;
		for (j = 0; j < k; j++)
			if (strcasecmp(qs[j].zone, want[i].zone) == 0 &&
			    strcasecmp(qs[j].subject, want[i].subject) == 0)
				break;
		if (j < k)
			continue;
		memset(&qs[k], 0, sizeof(qs[k]));
		qs[k].zone = want[i].zone;
		qs[k].subject = want[i].subject;
		qs[k].is_ip = want[i].is_ip;
		k++;
	}
	if (k == 0)
		return;
	spent = c->msg != NULL ? &c->msg->bl_spent_ms : &c->bl_spent_ms;
	t0 = ms_now();
	if (*spent >= budget ||
	    !mw_dnsbl_run(c->st->dnsbl, qs, k, (unsigned)(budget - *spent))) {
		/* Out of budget (or memory): every lookup goes unanswered. */
		for (i = 0; i < k; i++)
			qs[i].state = MW_DNSBL_NO_ANSWER;
	}
	*spent += ms_now() - t0;
	for (i = 0; i < k; i++) {
		struct bl_answer *a;

		/* A name that cannot be looked up is no DNS trouble. */
		if (qs[i].state == MW_DNSBL_NO_ANSWER && !qs[i].bad_name)
			c->bl_noanswer++;
		if (c->nbl == BL_SESSION_MAX)
			continue;
		if (c->bl == NULL &&
		    (c->bl = calloc(BL_SESSION_MAX, sizeof(*c->bl))) == NULL)
			return;
		a = &c->bl[c->nbl++];
		(void)mw_strlcpy(a->zone, qs[i].zone, sizeof(a->zone));
		(void)mw_strlcpy(a->subject, qs[i].subject, sizeof(a->subject));
		a->state = qs[i].state == MW_DNSBL_LISTED ? 1
		    : qs[i].state == MW_DNSBL_NOT_LISTED  ? 0
							  : -1;
		a->ncodes = qs[i].ncodes < 8 ? qs[i].ncodes : 8;
		memcpy(a->codes, qs[i].codes, a->ncodes * sizeof(a->codes[0]));
	}
}

int
eng_bl_result(void *arg, const char *zone, const char *subject,
    const uint32_t **codes, size_t *ncodes)
{
	const struct bl_answer *a = find(arg, zone, subject);

	if (a == NULL)
		return -1;
	*codes = a->codes;
	*ncodes = a->ncodes;
	return a->state;
}
