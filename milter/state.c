/*
 * state.c -- building, publishing and reference counting the running state.
 *
 * Reload builds a whole new state off to the side; only when it is complete
 * is it published with one pointer swap under current_lock.  Sessions hold
 * references, so the previous state stays valid until the last session that
 * started under it closes.
 */
#include "config.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "mw_log.h"
#include "mw_state.h"
#include "mw_store.h"

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mw_state *current; /* guarded by current_lock */
static bool offline;             /* set once, before any build */

void
mw_state_set_offline(bool off)
{
	offline = off;
}

static bool
key_exists(const void *arg, const char *name)
{
	return mw_dkim_key_exists(arg, name);
}

struct mw_state *
mw_state_build(const char *path, const char *const *overrides,
    struct mw_diag *diag)
{
	struct mw_state *st;
	struct mw_config *cfg;
	struct mw_ruleset *rules;
	struct mw_dkim *dkim;
	size_t errors = diag->nerrors;

	if ((cfg = mw_config_load(path, diag)) == NULL)
		return NULL;
	for (; overrides != NULL && overrides[0] != NULL; overrides += 2)
		(void)mw_config_set(cfg, overrides[0], overrides[1], diag);
	(void)mw_config_check_refs(cfg, diag);
	{
		const struct mw_rules_predef pre[] = {
			{ "local_domains", "domain", cfg->local_domains,
			    cfg->local_domains_file, cfg->path },
			{ "trusted_networks", "ip", cfg->trusted_networks,
			    cfg->trusted_networks_file, cfg->path },
			{ "known_forwarders", "ip", cfg->known_forwarders, NULL,
			    cfg->path },
			{ "submission_listeners", "string",
			    cfg->submission_listeners, NULL, cfg->path },
			{ "sender_logins", "logins", NULL,
			    cfg->sender_login_map, cfg->path },
		};

		rules = mw_rules_load(cfg->rules, cfg->nrules, pre,
		    sizeof(pre) / sizeof(pre[0]), diag);
	}
	dkim = mw_dkim_load(cfg, diag);
	if (rules != NULL && dkim != NULL)
		mw_rules_check_dkim_keys(rules, key_exists, dkim, diag);
	if (diag->nerrors > errors || rules == NULL || dkim == NULL) {
		mw_dkim_free(dkim);
		mw_rules_free(rules);
		mw_config_free(cfg);
		return NULL;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		mw_diag_error(diag, path, 0, 0, "out of memory");
		mw_dkim_free(dkim);
		mw_rules_free(rules);
		mw_config_free(cfg);
		return NULL;
	}
	st->dkim = dkim;
	/* Blocklists: queried through the resolver DKIM uses. */
	if (mw_rules_uses_bl(rules) && !offline) {
		char err[300];

		st->dnsbl = mw_dnsbl_new(mw_dkim_resolver(dkim), 10000, err,
		    sizeof(err));
		if (st->dnsbl == NULL) {
			mw_diag_error(diag, cfg->path, 0, 0, "blocklists: %s",
			    err);
			mw_state_unref(st);
			return NULL;
		}
	}
	/* Opened only when a rule counts or greylists, and not offline. */
	if (mw_rules_uses_store(rules) && !offline) {
		char err[300];

		st->store = mw_store_get(cfg->state_store,
		    (size_t)cfg->state_store_max_bytes,
		    (unsigned)cfg->state_store_timeout, err, sizeof(err));
		if (st->store == NULL) {
			mw_diag_error(diag, cfg->path, 0, 0,
			    "state_store %s: %s", cfg->state_store, err);
			mw_state_unref(st);
			return NULL;
		}
	}
	atomic_init(&st->refs, 1);
	st->generation = 1;
	st->cfg = cfg;
	st->rules = rules;
	return st;
}

void
mw_state_publish(struct mw_state *st)
{
	struct mw_state *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	if (old != NULL)
		st->generation = old->generation + 1;
	st->published = true;
	current = st;
	pthread_mutex_unlock(&current_lock);
	mw_log_set_level((enum mw_log_level)st->cfg->log_level);
	mw_state_unref(old);
}

struct mw_state *
mw_state_current(void)
{
	struct mw_state *st;

	pthread_mutex_lock(&current_lock);
	st = current;
	/* Taken under the lock: the swap cannot free it in between. */
	if (st != NULL)
		atomic_fetch_add(&st->refs, 1);
	pthread_mutex_unlock(&current_lock);
	return st;
}

struct mw_state *
mw_state_ref(struct mw_state *st)
{
	assert(atomic_load(&st->refs) > 0);
	atomic_fetch_add(&st->refs, 1);
	return st;
}

void
mw_state_unref(struct mw_state *st)
{
	if (st == NULL)
		return;
	assert(atomic_load(&st->refs) > 0);
	if (atomic_fetch_sub(&st->refs, 1) != 1)
		return;
	if (st->published)
		mw_rules_log_counters(st->rules, st->generation);
	mw_rules_free(st->rules);
	mw_dkim_free(st->dkim);
	mw_store_put(st->store);
	mw_dnsbl_free(st->dnsbl);
	mw_config_free(st->cfg);
	free(st);
}

void
mw_state_shutdown(void)
{
	struct mw_state *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = NULL;
	pthread_mutex_unlock(&current_lock);
	mw_state_unref(old);
}
