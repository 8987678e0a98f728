/*
 * rules_bl.c -- DNS blocklist conditions:
 *
 *   dnsbl "ZONE" [returns ADDR[, ADDR...]]
 *   rhsbl "ZONE" on from.domain|helo|header.from.domain|url.hosts
 *         [returns ADDR[, ADDR...]]
 *
 * The rules never wait on DNS themselves: before a phase runs, the engine
 * asks mw_rules_bl_queries for every lookup that phase's rules will make,
 * resolves them all at once (dnsbl.c: in parallel, within the message's
 * budget, cached), and evaluation only reads the answers through
 * ev->bl_result.  A lookup without an answer is "not listed" here and is
 * counted on the decision line.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_mime.h"
#include "rules_ast.h"
#include "rules_parser.h"

#define BL_CODES_MAX 8
#define BL_URLS_MAX  20 /* URL hosts looked up per zone and message */

enum bl_subject {
	BL_CLIENT_IP,
	BL_FROM_DOMAIN,
	BL_HELO,
	BL_HFROM_DOMAIN,
	BL_URL_HOSTS
};

static const struct {
	const char *name;
	enum bl_subject subj;
	enum mw_phase from;
} subjects[] = {
	{ "from.domain", BL_FROM_DOMAIN, MW_PH_MAIL },
	{ "helo", BL_HELO, MW_PH_HELO },
	{ "header.from.domain", BL_HFROM_DOMAIN, MW_PH_EOH },
	{ "url.hosts", BL_URL_HOSTS, MW_PH_BODY },
};

struct bl {
	char *zone;
	enum bl_subject subj;
	uint32_t codes[BL_CODES_MAX]; /* host order; none: any answer */
	size_t ncodes;
	enum mw_phase phase; /* of its rule */
};

void
mw_rp_bl_free(struct bl *b)
{
	if (b != NULL) {
		free(b->zone);
		free(b);
	}
}

static bool
valid_zone(const char *z)
{
	size_t n = strlen(z), i;

	if (n == 0 || n > 200 || z[0] == '.' || z[n - 1] == '.' ||
	    strchr(z, '.') == NULL || strstr(z, "..") != NULL)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)z[i]) && z[i] != '-' &&
		    z[i] != '.' && z[i] != '_')
			return false;
	return true;
}

static bool
parse_codes(struct parser *p, struct bl *b)
{
	do {
		struct in_addr a;

		if (p->tok.kind == T_COMMA)
			mw_rp_next(p);
		if (p->tok.kind != T_WORD ||
		    inet_pton(AF_INET, p->tok.text, &a) != 1)
			return mw_rp_err(p,
			    "expected an IPv4 answer such as 127.0.0.2, found "
			    "%s",
			    mw_rp_tok_desc(&p->tok));
		if (b->ncodes == BL_CODES_MAX)
			return mw_rp_err(p, "at most %d answers", BL_CODES_MAX);
		b->codes[b->ncodes++] = ntohl(a.s_addr);
		mw_rp_next(p);
	} while (p->tok.kind == T_COMMA);
	return true;
}

/* Register c with the ruleset, for mw_rules_bl_queries. */
static bool
remember(struct parser *p, const struct cond *c)
{
	struct mw_ruleset *rs = p->rs;
	const struct cond **v =
	    realloc(rs->bl_conds, (rs->nbl_conds + 1) * sizeof(*v));

	if (v == NULL)
		return false;
	rs->bl_conds = v;
	rs->bl_conds[rs->nbl_conds++] = c;
	return true;
}

struct cond *
mw_rp_parse_bl(struct parser *p, enum mw_phase ph)
{
	bool rhs = mw_rp_is_word(p, "rhsbl");
	struct bl *b = calloc(1, sizeof(*b));
	struct cond *c = NULL;
	size_t i;

	if (b == NULL)
		return NULL;
	b->phase = ph;
	mw_rp_next(p);
	if (p->tok.kind != T_STRING || !valid_zone(p->tok.text)) {
		mw_rp_err(p,
		    "expected the blocklist zone as a string such as "
		    "\"bl.example.org\", found %s",
		    mw_rp_tok_desc(&p->tok));
		goto fail;
	}
	b->zone = mw_rp_take_text(p);
	b->subj = BL_CLIENT_IP;
	if (rhs) {
		if (!mw_rp_is_word(p, "on")) {
			mw_rp_err(p,
			    "expected \"on\" and what to look up (from.domain, "
			    "helo, header.from.domain, url.hosts), found %s",
			    mw_rp_tok_desc(&p->tok));
			goto fail;
		}
		mw_rp_next(p);
		for (i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++)
			if (mw_rp_is_word(p, subjects[i].name))
				break;
		if (i == sizeof(subjects) / sizeof(subjects[0])) {
			mw_rp_err(p,
			    "rhsbl looks up from.domain, helo, "
			    "header.from.domain or url.hosts, not %s",
			    mw_rp_tok_desc(&p->tok));
			goto fail;
		}
		if (subjects[i].from > ph) {
			mw_rp_err(p, "%s is not known at the %s phase",
			    subjects[i].name, mw_phase_name(ph));
			goto fail;
		}
		b->subj = subjects[i].subj;
		if (b->subj == BL_URL_HOSTS)
			p->rs->uses_mime = true;
		mw_rp_next(p);
	}
	if (mw_rp_is_word(p, "returns")) {
		mw_rp_next(p);
		if (!parse_codes(p, b))
			goto fail;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->kind = C_BL;
	c->bl = b;
	if (!remember(p, c)) {
		free(c);
		c = NULL;
		goto fail;
	}
	return c;
fail:
	mw_rp_bl_free(b);
	return NULL;
}

/* ------------------------------------------------------------ evaluation */

static const char *
domain_of_addr(const char *a)
{
	const char *at = a != NULL ? strrchr(a, '@') : NULL;

	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

/*
 * subject_at -- the i-th name a condition looks up now (several for URL
 * hosts), NULL past the last or when unknown.
 */
static const char *
subject_at(const struct bl *b, const struct mw_eval *ev, size_t i)
{
	switch (b->subj) {
	case BL_CLIENT_IP:
		return i == 0 && ev->client_ip != NULL ? ev->client_ip_text
						       : NULL;
	case BL_FROM_DOMAIN: return i == 0 ? domain_of_addr(ev->from) : NULL;
	case BL_HELO:
		return i == 0 && ev->helo != NULL && ev->helo[0] != '['
		    ? ev->helo
		    : NULL;
	case BL_HFROM_DOMAIN:
		return i == 0 && ev->hfrom != NULL && ev->hfrom->n > 0 &&
			ev->hfrom->box[0].domain[0] != '\0'
		    ? ev->hfrom->box[0].domain
		    : NULL;
	case BL_URL_HOSTS:
		return ev->mime != NULL && i < BL_URLS_MAX &&
			i < mw_mime_nurls(ev->mime)
		    ? mw_mime_url_host(ev->mime, i)
		    : NULL;
	}
	return NULL;
}

size_t
mw_rules_bl_queries(const struct mw_ruleset *rs, enum mw_phase ph,
    const struct mw_eval *ev, struct mw_bl_query *out, size_t max)
{
	size_t i, k, n = 0;

	for (i = 0; rs != NULL && i < rs->nbl_conds; i++) {
		const struct bl *b = rs->bl_conds[i]->bl;
		const char *s;

		if (b->phase != ph)
			continue;
		for (k = 0; (s = subject_at(b, ev, k)) != NULL && n < max;
		     k++) {
			out[n].zone = b->zone;
			out[n].subject = s;
			out[n].is_ip = b->subj == BL_CLIENT_IP;
			n++;
		}
	}
	return n;
}

bool
mw_rules_has_bl(const struct mw_ruleset *rs, enum mw_phase ph)
{
	size_t i;

	for (i = 0; rs != NULL && i < rs->nbl_conds; i++)
		if (rs->bl_conds[i]->bl->phase == ph)
			return true;
	return false;
}

int
mw_bl_eval(const struct cond *c, const struct mw_eval *ev)
{
	const struct bl *b = c->bl;
	const char *s;
	size_t k, i, j;

	if (ev->bl_result == NULL)
		return 0;
	for (k = 0; (s = subject_at(b, ev, k)) != NULL; k++) {
		const uint32_t *codes = NULL;
		size_t ncodes = 0;

		if (ev->bl_result(ev->bl_arg, b->zone, s, &codes, &ncodes) <= 0)
			continue;
		if (b->ncodes == 0)
			return 1;
		for (i = 0; i < ncodes; i++)
			for (j = 0; j < b->ncodes; j++)
				if (codes[i] == b->codes[j])
					return 1;
	}
	return 0;
}

bool
mw_rules_uses_bl(const struct mw_ruleset *rs)
{
	return rs != NULL && rs->nbl_conds > 0;
}
