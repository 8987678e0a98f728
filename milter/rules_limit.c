/*
 * rules_limit.c -- the stateful conditions of the rules language:
 *
 *   ratelimit messages|recipients|bytes by KEY[+KEY...] max N per DURATION
 *       [burst B] [counting refused] [overrides "FILE"]
 *   greylisted
 *
 * Parsing builds a struct limit per condition; evaluation builds the store
 * key from what the session says (client network, login, sender...) and
 * asks the state store (store.c), which does the arithmetic atomically --
 * in LMDB or on a Redis server shared by several MTAs.  The clock and the
 * store come from the engine in struct mw_limit_env, so tests control time.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mw_log.h"
#include "mw_store.h"
#include "mw_text.h"
#include "rules_ast.h"
#include "rules_parser.h"

#define LIMIT_KEYS_MAX 4

enum limit_what { LIM_MESSAGES, LIM_RECIPIENTS, LIM_BYTES };
enum limit_key {
	K_CLIENT_NET,
	K_CLIENT_IP,
	K_AUTH_USER,
	K_FROM,
	K_FROM_DOMAIN,
	K_RCPT,
	K_LISTENER
};

static const struct {
	const char *name;
	enum limit_key key;
	enum mw_phase from;
} key_names[] = {
	{ "client.net", K_CLIENT_NET, MW_PH_CONNECT },
	{ "client.ip", K_CLIENT_IP, MW_PH_CONNECT },
	{ "auth.user", K_AUTH_USER, MW_PH_MAIL },
	{ "from", K_FROM, MW_PH_MAIL },
	{ "from.domain", K_FROM_DOMAIN, MW_PH_MAIL },
	{ "rcpt", K_RCPT, MW_PH_RCPT },
	{ "listener", K_LISTENER, MW_PH_CONNECT },
};

static const char *const what_names[] = { "messages", "recipients", "bytes" };

struct override {
	char *value; /* the first key's value, e.g. a login */
	uint64_t max, burst;
};

struct limit {
	enum limit_what what;
	enum limit_key keys[LIMIT_KEYS_MAX];
	size_t nkeys;
	uint64_t max, burst, period_us;
	bool count_refused;
	struct override *ov;
	size_t nov;
	char *spec; /* canonical text: the start of every store key */
};

void
mw_rp_limit_free(struct limit *l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->nov; i++)
		free(l->ov[i].value);
	free(l->ov);
	free(l->spec);
	free(l);
}

/* parse_duration -- "90", "90s", "15m", "1h", "1d", "1w" into seconds. */
static bool
parse_duration(const char *s, uint64_t *secs)
{
	unsigned long long n = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > 1000000000ULL)
			return false;
		n = n * 10 + (unsigned)(*p - '0');
	}
	switch (*p) {
	case '\0':
	case 's': break;
	case 'm': n *= 60; break;
	case 'h': n *= 3600; break;
	case 'd': n *= 86400; break;
	case 'w': n *= 7 * 86400; break;
	default: return false;
	}
	if (*p != '\0' && p[1] != '\0')
		return false;
	*secs = n;
	return n > 0 && n <= 366ULL * 86400;
}

static bool
parse_count(struct parser *p, const char *what, uint64_t *v)
{
	double d;

	if (p->tok.kind != T_WORD || !mw_rp_parse_number(p->tok.text, &d) ||
	    d < 1 || d > 1e12 || d != (double)(uint64_t)d)
		return mw_rp_err(p,
		    "expected %s (a whole number from 1), "
		    "found %s",
		    what, mw_rp_tok_desc(&p->tok));
	*v = (uint64_t)d;
	mw_rp_next(p);
	return true;
}

/* load_overrides -- "VALUE MAX [burst B]" lines, errors at their lines. */
static void
load_overrides(struct parser *p, struct limit *l, const char *path)
{
	const char *why = NULL;
	bool opening = false;
	size_t len;
	char *buf =
	    mw_read_regular(path, 16 * 1024 * 1024, &len, &opening, &why);
	char *cur, *line;
	unsigned lineno = 0;

	if (buf == NULL) {
		mw_rp_err(p, "overrides file %s: %s", path, why);
		return;
	}
	for (cur = buf; cur != NULL && *cur != '\0'; cur = line) {
		char *nl = strchr(cur, '\n'), *h, *words[4];
		size_t nw = 0;
		struct override o, *v;

		line = nl != NULL ? nl + 1 : NULL;
		if (nl != NULL)
			*nl = '\0';
		lineno++;
		if ((h = strchr(cur, '#')) != NULL)
			*h = '\0';
		for (h = strtok(cur, " \t\r"); h != NULL && nw < 4;
		     h = strtok(NULL, " \t\r"))
			words[nw++] = h;
		if (nw == 0)
			continue;
		memset(&o, 0, sizeof(o));
		o.burst = l->burst;
		if ((nw != 2 && nw != 4) ||
		    (nw == 4 && strcmp(words[2], "burst") != 0) ||
		    sscanf(words[1], "%llu", (unsigned long long *)&o.max) !=
			1 ||
		    o.max == 0 ||
		    (nw == 4 &&
			(sscanf(words[3], "%llu",
			     (unsigned long long *)&o.burst) != 1 ||
			    o.burst == 0))) {
			mw_diag_error(p->diag, path, lineno, 1,
			    "expected VALUE MAX [burst B], e.g. "
			    "\"alice@example.org 500\"");
			continue;
		}
		if ((o.value = strdup(words[0])) == NULL ||
		    (v = realloc(l->ov, (l->nov + 1) * sizeof(*v))) == NULL) {
			free(o.value);
			mw_diag_error(p->diag, path, lineno, 1,
			    "out of memory");
			break;
		}
		l->ov = v;
		l->ov[l->nov++] = o;
	}
	free(buf);
}

struct cond *
mw_rp_parse_ratelimit(struct parser *p, enum mw_phase ph)
{
	struct limit *l = calloc(1, sizeof(*l));
	struct cond *c = NULL;
	uint64_t secs = 0;
	char spec[512];
	size_t i, n;

	if (l == NULL)
		return NULL;
	l->burst = 0;
	mw_rp_next(p); /* "ratelimit" */
	for (i = 0; i < 3; i++)
		if (mw_rp_is_word(p, what_names[i]))
			break;
	if (i == 3) {
		mw_rp_err(p,
		    "expected messages, recipients or bytes after ratelimit, "
		    "found %s",
		    mw_rp_tok_desc(&p->tok));
		goto fail;
	}
	l->what = (enum limit_what)i;
	if ((l->what == LIM_RECIPIENTS && ph != MW_PH_RCPT &&
		ph != MW_PH_EOM) ||
	    (l->what == LIM_BYTES && ph != MW_PH_MAIL && ph != MW_PH_EOM) ||
	    (l->what == LIM_MESSAGES && ph < MW_PH_MAIL)) {
		mw_rp_err(p,
		    "ratelimit %s cannot be counted at the %s phase (messages: "
		    "mail and later; recipients: rcpt or eom; bytes: mail, "
		    "with the SIZE the client announced, or eom)",
		    what_names[i], mw_phase_name(ph));
		goto fail;
	}
	mw_rp_next(p);
	if (!mw_rp_is_word(p, "by")) {
		mw_rp_err(p, "expected \"by\" and the key, found %s",
		    mw_rp_tok_desc(&p->tok));
		goto fail;
	}
	mw_rp_next(p);
	if (p->tok.kind != T_WORD) {
		mw_rp_err(p,
		    "expected a key such as client.net or auth.user, "
		    "found %s",
		    mw_rp_tok_desc(&p->tok));
		goto fail;
	}
	{
		char *text = p->tok.text, *k, *save = NULL;

		for (k = strtok_r(text, "+", &save); k != NULL;
		     k = strtok_r(NULL, "+", &save)) {
			for (n = 0;
			     n < sizeof(key_names) / sizeof(key_names[0]); n++)
				if (strcmp(key_names[n].name, k) == 0)
					break;
			if (n == sizeof(key_names) / sizeof(key_names[0])) {
				mw_rp_err(p,
				    "unknown key \"%s\" (client.net, "
				    "client.ip, auth.user, from, "
				    "from.domain, rcpt, listener)",
				    k);
				goto fail;
			}
			if (key_names[n].from > ph ||
			    (key_names[n].key == K_RCPT && ph != MW_PH_RCPT)) {
				mw_rp_err(p,
				    "key %s is not known at the %s "
				    "phase",
				    k, mw_phase_name(ph));
				goto fail;
			}
			if (l->nkeys == LIMIT_KEYS_MAX) {
				mw_rp_err(p, "at most %d keys", LIMIT_KEYS_MAX);
				goto fail;
			}
			l->keys[l->nkeys++] = key_names[n].key;
		}
		if (l->nkeys == 0) {
			mw_rp_err(p, "expected a key");
			goto fail;
		}
	}
	mw_rp_next(p);
	if (!mw_rp_is_word(p, "max")) {
		mw_rp_err(p, "expected \"max N per DURATION\", found %s",
		    mw_rp_tok_desc(&p->tok));
		goto fail;
	}
	mw_rp_next(p);
	if (!parse_count(p, "the limit", &l->max))
		goto fail;
	if (!mw_rp_is_word(p, "per")) {
		mw_rp_err(p, "expected \"per DURATION\", found %s",
		    mw_rp_tok_desc(&p->tok));
		goto fail;
	}
	mw_rp_next(p);
	if (p->tok.kind != T_WORD || !parse_duration(p->tok.text, &secs)) {
		mw_rp_err(p,
		    "expected a duration such as 90s, 15m, 1h, 1d or 1w (at "
		    "most a year), found %s",
		    mw_rp_tok_desc(&p->tok));
		goto fail;
	}
	l->period_us = secs * 1000000ULL;
	mw_rp_next(p);
	for (;;) {
		if (mw_rp_is_word(p, "burst")) {
			mw_rp_next(p);
			if (!parse_count(p, "the burst", &l->burst))
				goto fail;
		} else if (mw_rp_is_word(p, "counting")) {
			mw_rp_next(p);
			if (!mw_rp_is_word(p, "refused")) {
				mw_rp_err(p, "expected \"counting refused\"");
				goto fail;
			}
			l->count_refused = true;
			mw_rp_next(p);
		} else if (mw_rp_is_word(p, "overrides")) {
			mw_rp_next(p);
			if (p->tok.kind != T_STRING) {
				mw_rp_err(p,
				    "expected the overrides file as a "
				    "string");
				goto fail;
			}
			load_overrides(p, l, p->tok.text);
			mw_rp_next(p);
		} else {
			break;
		}
	}
	/* The store key names the limit, so equal limits share counters. */
	n = (size_t)snprintf(spec, sizeof(spec), "rl|%s|", what_names[l->what]);
	for (i = 0; i < l->nkeys && n < sizeof(spec); i++)
		n += (size_t)snprintf(spec + n, sizeof(spec) - n, "%s%s",
		    i ? "+" : "", key_names[l->keys[i]].name);
	if (n < sizeof(spec))
		snprintf(spec + n, sizeof(spec) - n, "|%llu",
		    (unsigned long long)secs);
	if ((l->spec = strdup(spec)) == NULL ||
	    (c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->kind = C_RATELIMIT;
	c->limit = l;
	p->rs->uses_store = true;
	return c;
fail:
	mw_rp_limit_free(l);
	return NULL;
}

struct cond *
mw_rp_parse_greylisted(struct parser *p, enum mw_phase ph)
{
	struct cond *c;

	if (ph != MW_PH_RCPT) {
		mw_rp_err(p,
		    "greylisted is decided per recipient: only at the "
		    "rcpt phase");
		return NULL;
	}
	mw_rp_next(p);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->kind = C_GREYLISTED;
	p->rs->uses_store = true;
	p->rs->uses_greylist = true;
	return c;
}

/* ------------------------------------------------------------ evaluation */

/* mw_limit_client_net -- "a.b.c.0/24" or "x:y::/64" of the client. */
bool
mw_limit_client_net(const struct mw_eval *ev, const struct mw_limit_env *env,
    char *buf, size_t size)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	unsigned bits, len, i;

	if (ev->client_ip == NULL) {
		snprintf(buf, size, "%s",
		    ev->client_ip_text ? ev->client_ip_text : "local");
		return true;
	}
	memcpy(a, ev->client_ip->a, sizeof(a));
	len = ev->client_ip->family == AF_INET ? 4 : 16;
	bits = len == 4 ? env->v4_prefix : env->v6_prefix;
	for (i = 0; i < len; i++) {
		unsigned keep = bits >= (i + 1) * 8 ? 8
		    : bits > i * 8                  ? bits - i * 8
						    : 0;

		a[i] &= (unsigned char)(0xff00u >> keep);
	}
	if (inet_ntop(ev->client_ip->family, a, text, sizeof(text)) == NULL)
		return false;
	return snprintf(buf, size, "%s/%u", text, bits) < (int)size;
}

static const char *
key_value(enum limit_key k, const struct mw_eval *ev,
    const struct mw_limit_env *env, char *buf, size_t size)
{
	switch (k) {
	case K_CLIENT_NET:
		return mw_limit_client_net(ev, env, buf, size) ? buf : NULL;
	case K_CLIENT_IP: return ev->client_ip_text;
	case K_AUTH_USER: return ev->auth_user;
	case K_FROM: return ev->from;
	case K_FROM_DOMAIN: {
		const char *at =
		    ev->from != NULL ? strrchr(ev->from, '@') : NULL;

		return at != NULL ? at + 1 : ev->from;
	}
	case K_RCPT: return ev->rcpt;
	case K_LISTENER: return ev->listener;
	}
	return NULL;
}

/* fail_open -- a store failure: counted, logged, and by configuration
 * either "not limited" (0) or an evaluation error (-1). */
static int
store_failed(const struct mw_eval *ev, struct mw_limit_env *env,
    const char *err)
{
	env->errors++;
	mw_warn("%s: state store failed: %s (state_store_on_error = %s)",
	    ev->queue_id != NULL ? ev->queue_id : "NOQUEUE", err,
	    env->fail_closed ? "tempfail" : "accept");
	if (env->fail_closed) {
		snprintf(env->err, sizeof(env->err), "state store: %s", err);
		return -1;
	}
	return 0;
}

static int
eval_rate(const struct limit *l, const struct mw_eval *ev,
    struct mw_limit_env *env)
{
	char key[2048], part[600], err[256];
	uint64_t cost = 1, max = l->max, burst = l->burst, retry = 0;
	const char *first = NULL;
	enum mw_store_res res;
	size_t i, n;

	n = (size_t)snprintf(key, sizeof(key), "%s", l->spec);
	for (i = 0; i < l->nkeys; i++) {
		const char *v =
		    key_value(l->keys[i], ev, env, part, sizeof(part));

		/* No login, no sender...: this limit does not apply. */
		if (v == NULL || *v == '\0')
			return 0;
		if (i == 0)
			first = v;
		n += (size_t)snprintf(key + n,
		    n < sizeof(key) ? sizeof(key) - n : 0, "|%s", v);
	}
	if (n >= sizeof(key))
		return 0; /* cannot happen with bounded values */
	for (i = 0; first != NULL && i < l->nov; i++)
		if (strcasecmp(l->ov[i].value, first) == 0) {
			max = l->ov[i].max;
			burst = l->ov[i].burst;
			break;
		}
	switch (l->what) {
	case LIM_MESSAGES:
		/* Per message, not per recipient: the first one counts. */
		cost = ev->rcpt != NULL && ev->rcpt_count > 0 ? 0 : 1;
		break;
	case LIM_RECIPIENTS:
		cost = ev->rcpt != NULL ? 1 : ev->rcpt_count;
		break;
	case LIM_BYTES: cost = ev->size; break;
	}
	if (env->store == NULL)
		return 0; /* offline (milter-warden test, -n) */
	res = mw_store_rate(env->store, key, env->now_us, l->period_us, max,
	    burst, cost, l->count_refused, &retry, err, sizeof(err));
	if (res == MW_STORE_ERROR)
		return store_failed(ev, env, err);
	if (res == MW_STORE_LIMITED) {
		env->retry_us = retry;
		return 1;
	}
	return 0;
}

static int
eval_grey(const struct mw_eval *ev, struct mw_limit_env *env)
{
	char net[96], key[2400], err[256];
	uint64_t retry = 0;
	enum mw_store_res res;

	if (env->store == NULL || ev->rcpt == NULL)
		return 0;
	if (!mw_limit_client_net(ev, env, net, sizeof(net)))
		return 0;
	snprintf(key, sizeof(key), "gl|%s|%s|%s", net,
	    ev->from != NULL ? ev->from : "", ev->rcpt);
	snprintf(env->net_key, sizeof(env->net_key), "ga|%s", net);
	res = mw_store_greylist(env->store, key, env->net_key, env->now_us,
	    env->greylist_delay_us, env->greylist_window_us,
	    env->greylist_auto_allow_us, &retry, err, sizeof(err));
	if (res == MW_STORE_ERROR)
		return store_failed(ev, env, err);
	if (res == MW_STORE_LIMITED) {
		env->retry_us = retry;
		return 1;
	}
	env->greylist_passed = true;
	return 0;
}

int
mw_limit_eval(const struct cond *c, const struct mw_eval *ev)
{
	struct mw_limit_env *env = ev->limits;

	if (env == NULL)
		return 0;
	return c->kind == C_GREYLISTED ? eval_grey(ev, env)
				       : eval_rate(c->limit, ev, env);
}

bool
mw_rules_uses_store(const struct mw_ruleset *rs)
{
	return rs != NULL && rs->uses_store;
}

bool
mw_rules_uses_greylist(const struct mw_ruleset *rs)
{
	return rs != NULL && rs->uses_greylist;
}
