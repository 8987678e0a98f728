/*
 * eval.c -- evaluating a compiled ruleset for one phase of one session.
 *
 * Read-only on the ruleset; everything a rule changes goes to the
 * caller's mw_fx.  Every predicate yields match, no match or error, and an
 * error (a regex limit, no memory) stops the phase with MW_V_ERROR so the
 * engine applies on_internal_error: it is never taken as "no match".
 */
#include "config.h"

#include <sys/socket.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mw_checks.h"
#include "mw_log.h"
#include "mw_mime.h"
#include "mw_text.h"
#include "rules_ast.h"

enum match { M_NO = 0, M_YES = 1, M_ERROR = -1 };

/* ------------------------------------------------------------- effects */

void
mw_fx_init(struct mw_fx *fx)
{
	memset(fx, 0, sizeof(*fx));
}

static void
strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
mw_fx_clear(struct mw_fx *fx)
{
	size_t i;

	strv_free(fx->labels, fx->nlabels);
	strv_free(fx->var_names, fx->nvars);
	strv_free(fx->var_values, fx->nvars);
	for (i = 0; i < fx->nedits; i++) {
		free(fx->edits[i].name);
		free(fx->edits[i].value);
	}
	free(fx->edits);
	free(fx->subject_prefix);
	free(fx->quarantine);
	free(fx->redirect);
	strv_free(fx->hits, fx->nhits);
	free(fx->dkim_key);
	mw_fx_init(fx);
}

/* strv_push -- append a copy of s; false on OOM or when full. */
static bool
strv_push(char ***v, size_t *n, const char *s)
{
	char **nv, *copy;

	if (*n >= MW_FX_MAX_ITEMS)
		return false;
	if ((copy = strdup(s)) == NULL)
		return false;
	if ((nv = realloc(*v, (*n + 1) * sizeof(*nv))) == NULL) {
		free(copy);
		return false;
	}
	nv[(*n)++] = copy;
	*v = nv;
	return true;
}

static bool
strv_has(char *const *v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static bool
dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	return src == NULL || (*dst = strdup(src)) != NULL;
}

bool
mw_fx_copy(struct mw_fx *dst, const struct mw_fx *src)
{
	size_t i;

	mw_fx_init(dst);
	dst->score = src->score;
	for (i = 0; i < src->nlabels; i++)
		if (!strv_push(&dst->labels, &dst->nlabels, src->labels[i]))
			goto fail;
	for (i = 0; i < src->nvars; i++) {
		size_t n = dst->nvars;

		if (!strv_push(&dst->var_names, &n, src->var_names[i]))
			goto fail;
		n = dst->nvars;
		if (!strv_push(&dst->var_values, &n, src->var_values[i])) {
			free(dst->var_names[dst->nvars]);
			goto fail;
		}
		dst->nvars = n;
	}
	for (i = 0; i < src->nhits; i++)
		if (!strv_push(&dst->hits, &dst->nhits, src->hits[i]))
			goto fail;
	if (src->nedits > 0) {
		dst->edits = calloc(src->nedits, sizeof(*dst->edits));
		if (dst->edits == NULL)
			goto fail;
		for (i = 0; i < src->nedits; i++) {
			dst->edits[i].kind = src->edits[i].kind;
			dst->nedits++;
			if (!dup_opt(&dst->edits[i].name, src->edits[i].name) ||
			    !dup_opt(&dst->edits[i].value, src->edits[i].value))
				goto fail;
		}
	}
	if (!dup_opt(&dst->subject_prefix, src->subject_prefix) ||
	    !dup_opt(&dst->quarantine, src->quarantine) ||
	    !dup_opt(&dst->redirect, src->redirect) ||
	    !dup_opt(&dst->dkim_key, src->dkim_key))
		goto fail;
	dst->dkim_sign = src->dkim_sign;
	return true;
fail:
	mw_fx_clear(dst);
	return false;
}

const char *
mw_fx_var(const struct mw_fx *fx, const char *name)
{
	size_t i;

	for (i = 0; i < fx->nvars; i++)
		if (strcmp(fx->var_names[i], name) == 0)
			return fx->var_values[i];
	return NULL;
}

static bool
fx_set_var(struct mw_fx *fx, const char *name, const char *value)
{
	size_t i, n;
	char *copy;

	for (i = 0; i < fx->nvars; i++) {
		if (strcmp(fx->var_names[i], name) == 0) {
			if ((copy = strdup(value)) == NULL)
				return false;
			free(fx->var_values[i]);
			fx->var_values[i] = copy;
			return true;
		}
	}
	n = fx->nvars;
	if (!strv_push(&fx->var_names, &n, name))
		return false;
	n = fx->nvars;
	if (!strv_push(&fx->var_values, &n, value)) {
		free(fx->var_names[fx->nvars]);
		return false;
	}
	fx->nvars = n;
	return true;
}

static bool
fx_edit(struct mw_fx *fx, enum mw_edit_kind kind, const char *name,
    const char *value)
{
	struct mw_edit *v;

	if (fx->nedits >= MW_FX_MAX_ITEMS)
		return false;
	if ((v = realloc(fx->edits, (fx->nedits + 1) * sizeof(*v))) == NULL)
		return false;
	fx->edits = v;
	v = &fx->edits[fx->nedits];
	v->kind = kind;
	if (!dup_opt(&v->name, name))
		return false;
	if (!dup_opt(&v->value, value)) {
		free(v->name);
		return false;
	}
	fx->nedits++;
	return true;
}

/* ------------------------------------------------------------- fields */

static const char *
domain_of(const char *addr)
{
	const char *at;

	if (addr == NULL)
		return NULL;
	at = strrchr(addr, '@');
	return at != NULL ? at + 1 : "";
}

/* local_of -- the local part, copied into buf (size bytes). */
static const char *
local_of(const char *addr, char *buf, size_t size)
{
	const char *at;
	size_t n;

	if (addr == NULL)
		return NULL;
	at = strrchr(addr, '@');
	n = at != NULL ? (size_t)(at - addr) : strlen(addr);
	if (n >= size)
		n = size - 1;
	memcpy(buf, addr, n);
	buf[n] = '\0';
	return buf;
}

/* role -- "submission" on a submission listener, "mx" elsewhere. */
static const char *
role_of(const struct mw_ruleset *rs, const struct mw_eval *ev)
{
	if (ev->local_submission)
		return "local";
	if (rs->submission != NULL && ev->listener != NULL &&
	    mw_strset_contains(rs->submission->strings, ev->listener,
		strlen(ev->listener)))
		return "submission";
	return "mx";
}

/* The first mailbox of the From: header, NULL if there is none. */
static const struct mw_addr *
hfrom_first(const struct mw_eval *ev)
{
	if (ev->hfrom == NULL || ev->hfrom->malformed || ev->hfrom->n == 0)
		return NULL;
	return &ev->hfrom->box[0];
}

/* The text of a string-like field, NULL when not known. */
static const char *
field_text(const struct mw_ruleset *rs, const struct mw_eval *ev, enum field f,
    char *buf, size_t size)
{
	switch (f) {
	case F_ROLE: return role_of(rs, ev);
	case F_HFROM:
		return hfrom_first(ev) != NULL &&
			mw_addr_format(hfrom_first(ev), buf, size)
		    ? buf
		    : NULL;
	case F_HFROM_DOMAIN:
		return hfrom_first(ev) != NULL ? hfrom_first(ev)->domain : NULL;
	case F_HFROM_DOMAINS: return NULL; /* only "in LIST" (any mailbox) */
	case F_DKIM_DOMAINS: return NULL;  /* likewise, any passing domain */
	case F_DKIM: return ev->dkim;
	case F_CLIENT_IP: return ev->client_ip_text;
	case F_CLIENT_NAME: return ev->client_name;
	case F_LISTENER: return ev->listener;
	case F_HELO: return ev->helo;
	case F_TLS_VERSION: return ev->tls_version;
	case F_AUTH_USER: return ev->auth_user;
	case F_AUTH_MECH: return ev->auth_mech;
	case F_FROM: return ev->from;
	case F_FROM_LOCAL: return local_of(ev->from, buf, size);
	case F_FROM_DOMAIN: return domain_of(ev->from);
	case F_RCPT: return ev->rcpt;
	case F_RCPT_LOCAL: return local_of(ev->rcpt, buf, size);
	case F_RCPT_DOMAIN: return domain_of(ev->rcpt);
	case F_HEADER_NAME: return ev->header_name;
	case F_HEADER_VALUE: return ev->header_value;
	default: return NULL;
	}
}

static enum ftype
field_type(enum field f)
{
	switch (f) {
	case F_CLIENT_IP: return FT_IP;
	case F_CLIENT_NAME:
	case F_HELO:
	case F_FROM_DOMAIN:
	case F_RCPT_DOMAIN: return FT_DOMAIN;
	case F_FROM:
	case F_RCPT: return FT_ADDRESS;
	case F_HELO_ADDRLIT:
	case F_HELO_FQDN:
	case F_TLS:
	case F_AUTHENTICATED: return FT_BOOL;
	case F_RCPT_COUNT:
	case F_SIZE:
	case F_SCORE:
	case F_HFROM_COUNT:
	case F_DATE_AGE:
	case F_ATT_COUNT:
	case F_HFROM_BOXES: return FT_NUMBER;
	case F_HFROM: return FT_ADDRESS;
	case F_HFROM_DOMAIN:
	case F_DKIM_DOMAINS:
	case F_URL_HOSTS:
	case F_HFROM_DOMAINS: return FT_DOMAIN;
	case F_TRUSTED:
	case F_FROM_ROUTED:
	case F_FROM_MALFORMED:
	case F_FROM_OWNED:
	case F_RCPT_ROUTED:
	case F_RCPT_MALFORMED:
	case F_HFROM_MALFORMED:
	case F_BODY_TRUNCATED:
	case F_HELO_BARE_IP:
	case F_HELO_BAD_CHARS:
	case F_HELO_OURS:
	case F_HELO_MATCHES:
	case F_CLIENT_UNKNOWN:
	case F_DATE_MALFORMED:
	case F_HFROM_OWNED: return FT_BOOL;
	default: return FT_STRING;
	}
}

/* is_fqdn -- at least two labels of letters, digits and inner hyphens,
 * a TLD that is not all digits, at most 253 bytes. */
static bool
is_fqdn(const char *s)
{
	size_t len = strlen(s), labels = 0, i = 0;
	bool tld_alpha = false;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	while (i < len) {
		size_t start = i;

		tld_alpha = false;
		while (i < len && s[i] != '.') {
			unsigned char ch = (unsigned char)s[i];

			if (!isalnum(ch) && ch != '-')
				return false;
			if (isalpha(ch))
				tld_alpha = true;
			i++;
		}
		if (i == start || i - start > 63 || s[start] == '-' ||
		    s[i - 1] == '-')
			return false;
		labels++;
		if (i < len)
			i++;
		else
			break;
	}
	return labels >= 2 && tld_alpha && s[len - 1] != '.';
}

static bool
is_address_literal(const char *s)
{
	size_t len = strlen(s);
	char inner[64];
	struct mw_ip ip;

	if (len < 3 || s[0] != '[' || s[len - 1] != ']' ||
	    len - 2 >= sizeof(inner))
		return false;
	memcpy(inner, s + 1, len - 2);
	inner[len - 2] = '\0';
	/* RFC 5321: IPv6 literals are tagged, "[IPv6:2001:db8::1]". */
	if (strncasecmp(inner, "IPv6:", 5) == 0)
		return mw_ip_parse(inner + 5, &ip) && ip.family == AF_INET6;
	return mw_ip_parse(inner, &ip) && ip.family == AF_INET &&
	    strchr(inner, ':') == NULL;
}

/* owned -- may the authenticated login use this address as sender? */
static bool
owned(const struct mw_ruleset *rs, const struct mw_eval *ev,
    const struct mw_addr *a)
{
	char buf[MW_ADDR_LOCAL_MAX + MW_ADDR_DOMAIN_MAX + 2];

	/* An address with routing of its own is nobody's. */
	if (ev->auth_user == NULL || ev->auth_user[0] == '\0' || a == NULL ||
	    a->malformed || a->null || a->routed || a->domain[0] == '\0' ||
	    !mw_addr_format(a, buf, sizeof(buf)))
		return false;
	return mw_list_owns(rs->logins, ev->auth_user, buf);
}

/*
 * header_from_owned -- exactly one From: field, every mailbox in it owned
 * by the login.
 */
static bool
header_from_owned(const struct mw_ruleset *rs, const struct mw_eval *ev)
{
	size_t i;

	if (ev->hfrom == NULL || ev->hfrom_headers != 1 ||
	    ev->hfrom->malformed || ev->hfrom->n == 0 ||
	    ev->hfrom->n > MW_FROM_MAX)
		return false;
	for (i = 0; i < ev->hfrom->n; i++)
		if (!owned(rs, ev, &ev->hfrom->box[i]))
			return false;
	return true;
}

/* The value of the first header called name, NULL if none. */
static const char *
header_value(const struct mw_eval *ev, const char *name)
{
	size_t i;

	for (i = 0; i < ev->nheaders; i++)
		if (strcasecmp(ev->headers[i].name, name) == 0)
			return ev->headers[i].value;
	return NULL;
}

/*
 * helo_ours -- the client says it is us: the MTA's own name (macro j),
 * one of our domains, or the address it connected to.
 */
static bool
helo_ours(const struct mw_ruleset *rs, const struct mw_eval *ev)
{
	const char *j =
	    ev->macro != NULL ? ev->macro(ev->macro_arg, "j") : NULL;
	const char *addr =
	    ev->macro != NULL ? ev->macro(ev->macro_arg, "daemon_addr") : NULL;
	const struct list *local = mw_list_find(rs, "local_domains");
	char lit[80];

	if (ev->helo == NULL || *ev->helo == '\0')
		return false;
	if (j != NULL && *j != '\0' && strcasecmp(ev->helo, j) == 0)
		return true;
	if (addr != NULL && *addr != '\0') {
		snprintf(lit, sizeof(lit), "[%s]", addr);
		if (strcmp(ev->helo, addr) == 0 || strcmp(ev->helo, lit) == 0)
			return true;
	}
	return local != NULL && !is_address_literal(ev->helo) &&
	    mw_list_has_domain(local, ev->helo);
}

static bool
field_bool(const struct mw_ruleset *rs, const struct mw_eval *ev, enum field f)
{
	switch (f) {
	case F_TRUSTED:
		return rs->trusted != NULL && ev->client_ip != NULL &&
		    mw_ipset_contains(rs->trusted->ips, ev->client_ip);
	case F_FROM_ROUTED:
		return ev->from_addr != NULL && ev->from_addr->routed;
	case F_FROM_MALFORMED:
		return ev->from_addr != NULL && ev->from_addr->malformed;
	case F_FROM_OWNED: return owned(rs, ev, ev->from_addr);
	case F_RCPT_ROUTED:
		return ev->rcpt_addr != NULL && ev->rcpt_addr->routed;
	case F_RCPT_MALFORMED:
		return ev->rcpt_addr != NULL &&
		    (ev->rcpt_addr->malformed || ev->rcpt_addr->null);
	case F_HFROM_MALFORMED:
		return ev->hfrom != NULL &&
		    (ev->hfrom->malformed || ev->hfrom->n == 0);
	case F_HFROM_OWNED: return header_from_owned(rs, ev);
	case F_HELO_ADDRLIT:
		return ev->helo != NULL && is_address_literal(ev->helo);
	case F_HELO_FQDN: return ev->helo != NULL && is_fqdn(ev->helo);
	case F_HELO_BARE_IP:
		return ev->helo != NULL && mw_helo_bare_ip(ev->helo);
	case F_HELO_BAD_CHARS:
		return ev->helo != NULL && mw_helo_bad_chars(ev->helo);
	case F_HELO_OURS: return helo_ours(rs, ev);
	case F_HELO_MATCHES:
		return ev->helo != NULL &&
		    mw_helo_matches(ev->helo, ev->client_name);
	case F_CLIENT_UNKNOWN: return mw_client_unknown(ev->client_name);
	case F_BODY_TRUNCATED:
		return ev->body_truncated ||
		    (ev->mime != NULL && mw_mime_truncated(ev->mime));
	case F_DATE_MALFORMED: {
		const char *d = header_value(ev, "Date");
		int64_t when;

		return d != NULL && !mw_date_parse(d, &when);
	}
	case F_TLS:
		return ev->tls_version != NULL && ev->tls_version[0] != '\0';
	case F_AUTHENTICATED:
		return ev->auth_user != NULL && ev->auth_user[0] != '\0';
	default: return false;
	}
}

static double
field_number(const struct mw_eval *ev, enum field f)
{
	switch (f) {
	case F_RCPT_COUNT: return (double)ev->rcpt_count;
	case F_SIZE: return (double)ev->size;
	case F_SCORE: return ev->fx != NULL ? ev->fx->score : 0;
	case F_HFROM_COUNT: return (double)ev->hfrom_headers;
	case F_HFROM_BOXES: return ev->hfrom != NULL ? (double)ev->hfrom->n : 0;
	case F_ATT_COUNT:
		return ev->mime != NULL ? (double)mw_mime_nattachments(ev->mime)
					: 0;
	case F_DATE_AGE: {
		const char *d = header_value(ev, "Date");
		int64_t when;

		/* No Date, or one that cannot be read: see the other fields. */
		if (d == NULL || !mw_date_parse(d, &when))
			return 0;
		return (double)(ev->now - when) / 3600.0;
	}
	default: return 0;
	}
}

static bool
numcmp(double a, enum numop op, double b)
{
	switch (op) {
	case OP_EQ: return a == b;
	case OP_NE: return a != b;
	case OP_LT: return a < b;
	case OP_LE: return a <= b;
	case OP_GT: return a > b;
	case OP_GE: return a >= b;
	}
	return false;
}

/* Domains compare without case and without one trailing dot. */
static bool
domain_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static bool
address_eq(const char *a, const char *b)
{
	char na[1100], nb[1100];

	if (!mw_norm_address(a, na, sizeof(na)) ||
	    !mw_norm_address(b, nb, sizeof(nb)))
		return false;
	return strcmp(na, nb) == 0;
}

static enum match
regex_match(const struct mw_ruleset *rs, const pcre2_code *re,
    const struct mw_eval *ev, const char *s, size_t len)
{
	int rc =
	    pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, ev->match_data, rs->mctx);

	if (rc >= 0)
		return M_YES;
	if (rc == PCRE2_ERROR_NOMATCH)
		return M_NO;
	/* A limit or any other failure: never a silent "no match". */
	return M_ERROR;
}

static enum match
in_list(const struct list *l, const struct mw_eval *ev, enum field f,
    const char *text)
{
	char norm[1100];
	const char *at;

	switch (l->type) {
	case L_IP:
		return ev->client_ip != NULL &&
		    mw_ipset_contains(l->ips, ev->client_ip);
	case L_DOMAIN: return text != NULL && mw_list_has_domain(l, text);
	case L_LOGINS: return M_NO; /* the parser refuses "in" on it */
	case L_ADDRESS:
		if (text == NULL || !mw_norm_address(text, norm, sizeof(norm)))
			return M_NO;
		if (mw_strset_contains(l->strings, norm, strlen(norm)))
			return M_YES;
		/* "@domain" entries stand for the whole domain. */
		if ((at = strrchr(norm, '@')) != NULL &&
		    mw_strset_contains(l->strings, at, strlen(at)))
			return M_YES;
		return M_NO;
	case L_STRING:
		(void)f;
		return text != NULL &&
		    mw_strset_contains(l->strings, text, strlen(text));
	}
	return M_NO;
}

/*
 * any_from_domain_in -- is the domain of any From: mailbox in l?  More
 * mailboxes than were kept count as a match: this is a check for forgery,
 * so it fails towards "yes".
 */
/* Header names compare without case; most differ in the first letter. */
static bool
same_name(const char *a, const char *b)
{
	return tolower((unsigned char)a[0]) == tolower((unsigned char)b[0]) &&
	    strcasecmp(a, b) == 0;
}

static enum match
any_from_domain_in(const struct list *l, const struct mw_eval *ev)
{
	size_t i;

	if (ev->hfrom == NULL)
		return M_NO;
	if (ev->hfrom->n > MW_FROM_MAX)
		return M_YES;
	for (i = 0; i < ev->hfrom->n; i++)
		if (in_list(l, ev, F_HFROM_DOMAIN, ev->hfrom->box[i].domain) ==
		    M_YES)
			return M_YES;
	return M_NO;
}

/* Fields with several values: attachments, URL hosts, the text as one. */
static bool
is_multi(enum field f)
{
	return f == F_BODY_TEXT || f == F_ATT_NAME || f == F_ATT_TYPE ||
	    f == F_URL_HOSTS;
}

static size_t
multi_count(const struct mw_eval *ev, enum field f)
{
	if (ev->mime == NULL)
		return 0;
	switch (f) {
	case F_BODY_TEXT: return 1;
	case F_ATT_NAME:
	case F_ATT_TYPE: return mw_mime_nattachments(ev->mime);
	case F_URL_HOSTS: return mw_mime_nurls(ev->mime);
	default: return 0;
	}
}

/* multi_at -- value i (NULL: this attachment names no file). */
static const char *
multi_at(const struct mw_eval *ev, enum field f, size_t i, size_t *len)
{
	const struct mw_mime_attachment *a;
	const char *v = NULL;

	switch (f) {
	case F_BODY_TEXT: return mw_mime_text(ev->mime, len);
	case F_ATT_NAME:
	case F_ATT_TYPE:
		a = mw_mime_attachment(ev->mime, i);
		v = a == NULL         ? NULL
		    : f == F_ATT_NAME ? a->filename
				      : a->content_type;
		break;
	case F_URL_HOSTS: v = mw_mime_url_host(ev->mime, i); break;
	default: break;
	}
	if (v != NULL)
		*len = strlen(v);
	return v;
}

/* eval_multi -- ==, =~, in: true when any value is; != and !~: none is. */
static enum match
eval_multi(const struct mw_ruleset *rs, const struct cond *c,
    const struct mw_eval *ev)
{
	size_t i, n = multi_count(ev, c->field), len = 0;
	enum match m = M_NO;

	for (i = 0; i < n && m == M_NO; i++) {
		const char *v = multi_at(ev, c->field, i, &len);

		if (v == NULL)
			continue;
		switch (c->kind) {
		case C_FIELD_EQ:
			m = (field_type(c->field) == FT_DOMAIN
				    ? domain_eq(v, c->str)
				    : strcmp(v, c->str) == 0)
			    ? M_YES
			    : M_NO;
			break;
		case C_FIELD_RE: m = regex_match(rs, c->re, ev, v, len); break;
		case C_FIELD_IN:
			m = in_list(c->list, ev,
			    field_type(c->field) == FT_DOMAIN ? F_HFROM_DOMAIN
							      : c->field,
			    v);
			break;
		default: return M_ERROR;
		}
	}
	if (m == M_ERROR)
		return M_ERROR;
	return (m == M_YES) != c->neg ? M_YES : M_NO;
}

static enum match
eval_cond(const struct mw_ruleset *rs, const struct cond *c,
    const struct mw_eval *ev)
{
	char buf[1100];
	const char *t;
	enum match m;
	size_t i, n;

	if ((c->kind == C_FIELD_EQ || c->kind == C_FIELD_RE ||
		c->kind == C_FIELD_IN) &&
	    is_multi(c->field))
		return eval_multi(rs, c, ev);
	switch (c->kind) {
	case C_TRUE: return M_YES;
	case C_AND:
		if ((m = eval_cond(rs, c->a, ev)) != M_YES)
			return m;
		return eval_cond(rs, c->b, ev);
	case C_OR:
		if ((m = eval_cond(rs, c->a, ev)) != M_NO)
			return m;
		return eval_cond(rs, c->b, ev);
	case C_NOT:
		m = eval_cond(rs, c->a, ev);
		return m == M_ERROR ? M_ERROR : (m == M_YES ? M_NO : M_YES);
	case C_FIELD_BOOL: return field_bool(rs, ev, c->field) ? M_YES : M_NO;
	case C_FIELD_NUM:
		return numcmp(field_number(ev, c->field), c->op, c->num) ? M_YES
									 : M_NO;
	case C_FIELD_EQ: {
		bool eq;

		t = field_text(rs, ev, c->field, buf, sizeof(buf));
		if (c->ip_valid) {
			eq = ev->client_ip != NULL &&
			    ev->client_ip->family == c->ip.family &&
			    memcmp(ev->client_ip->a, c->ip.a, 16) == 0;
		} else if (t == NULL) {
			eq = false;
		} else {
			switch (field_type(c->field)) {
			case FT_DOMAIN: eq = domain_eq(t, c->str); break;
			case FT_ADDRESS: eq = address_eq(t, c->str); break;
			default: eq = strcmp(t, c->str) == 0; break;
			}
		}
		return eq != c->neg ? M_YES : M_NO;
	}
	case C_FIELD_RE:
		t = field_text(rs, ev, c->field, buf, sizeof(buf));
		if (t == NULL)
			return c->neg ? M_YES : M_NO;
		if ((m = regex_match(rs, c->re, ev, t, strlen(t))) == M_ERROR)
			return M_ERROR;
		return (m == M_YES) != c->neg ? M_YES : M_NO;
	case C_FIELD_IN:
		if (c->field == F_HFROM_DOMAINS)
			return any_from_domain_in(c->list, ev);
		if (c->field == F_DKIM_DOMAINS) {
			for (i = 0; i < ev->ndkim_domains; i++)
				if (in_list(c->list, ev, F_HFROM_DOMAIN,
					ev->dkim_domains[i]) == M_YES)
					return M_YES;
			return M_NO;
		}
		t = field_text(rs, ev, c->field, buf, sizeof(buf));
		return in_list(c->list, ev, c->field, t);
	case C_HDR_PRESENT:
		for (i = 0; i < ev->nheaders; i++)
			if (same_name(ev->headers[i].name, c->str))
				break;
		return (i < ev->nheaders) != c->neg ? M_YES : M_NO;
	case C_HDR_COUNT:
		for (i = 0, n = 0; i < ev->nheaders; i++)
			n += same_name(ev->headers[i].name, c->str);
		return numcmp((double)n, c->op, c->num) ? M_YES : M_NO;
	case C_HDR_RE: {
		bool any = false;

		for (i = 0; i < ev->nheaders && !any; i++) {
			const char *v = ev->headers[i].value;

			if (!same_name(ev->headers[i].name, c->str))
				continue;
			m = regex_match(rs, c->re, ev, v, strlen(v));
			if (m == M_ERROR)
				return M_ERROR;
			any = m == M_YES;
		}
		return any != c->neg ? M_YES : M_NO;
	}
	case C_BODY_RE:
		m = regex_match(rs, c->re, ev,
		    ev->body != NULL ? (const char *)ev->body : "",
		    ev->body != NULL ? ev->body_len : 0);
		if (m == M_ERROR)
			return M_ERROR;
		return (m == M_YES) != c->neg ? M_YES : M_NO;
	case C_MACRO_PRESENT:
	case C_MACRO_EQ:
	case C_MACRO_RE:
		t = ev->macro != NULL ? ev->macro(ev->macro_arg, c->str) : NULL;
		if (c->kind == C_MACRO_PRESENT)
			return (t != NULL) != c->neg ? M_YES : M_NO;
		if (t == NULL)
			return c->neg ? M_YES : M_NO;
		if (c->kind == C_MACRO_EQ)
			return (strcmp(t, c->str2) == 0) != c->neg ? M_YES
								   : M_NO;
		if ((m = regex_match(rs, c->re, ev, t, strlen(t))) == M_ERROR)
			return M_ERROR;
		return (m == M_YES) != c->neg ? M_YES : M_NO;
	case C_VAR_SET:
		return ev->fx != NULL && mw_fx_var(ev->fx, c->str) != NULL
		    ? M_YES
		    : M_NO;
	case C_VAR_EQ:
		t = ev->fx != NULL ? mw_fx_var(ev->fx, c->str) : NULL;
		if (t == NULL)
			return c->neg ? M_YES : M_NO;
		return (strcmp(t, c->str2) == 0) != c->neg ? M_YES : M_NO;
	case C_BL: return mw_bl_eval(c, ev) > 0 ? M_YES : M_NO;
	case C_RATELIMIT:
	case C_GREYLISTED: {
		int rc = mw_limit_eval(c, ev);

		return rc < 0 ? M_ERROR : rc > 0 ? M_YES : M_NO;
	}
	}
	return M_ERROR;
}

/* -------------------------------------------------------- interpolation */

/*
 * interpolate -- expand %{name} and %% of text into out (size bytes),
 * values made SMTP-safe (control characters become '?').  Cut values
 * end the text rather than overflow.
 */
static void
interpolate(const char *text, const struct mw_eval *ev, const char *rule_id,
    char *out, size_t size)
{
	size_t o = 0;
	const char *q;

	for (q = text; *q != '\0' && o + 1 < size; q++) {
		char val[1200];
		const char *v = NULL, *end;
		size_t n;

		if (*q != '%') {
			out[o++] = *q;
			continue;
		}
		if (q[1] == '%') {
			out[o++] = '%';
			q++;
			continue;
		}
		end = strchr(q, '}');
		if (q[1] != '{' || end == NULL) {
			out[o++] = '%';
			continue;
		}
		n = (size_t)(end - q - 2);
#define IS(name) (n == strlen(name) && strncmp(q + 2, name, n) == 0)
		if (IS("client.ip"))
			v = ev->client_ip_text;
		else if (IS("client.name"))
			v = ev->client_name;
		else if (IS("helo"))
			v = ev->helo;
		else if (IS("from"))
			v = ev->from_raw != NULL ? ev->from_raw : ev->from;
		else if (IS("rcpt"))
			v = ev->rcpt_raw != NULL ? ev->rcpt_raw : ev->rcpt;
		else if (IS("auth.user"))
			v = ev->auth_user;
		else if (IS("queue-id"))
			v = ev->queue_id;
		else if (IS("header.from"))
			v = hfrom_first(ev) != NULL &&
				mw_addr_format(hfrom_first(ev), val,
				    sizeof(val))
			    ? val
			    : NULL;
		else if (IS("rule"))
			v = rule_id;
		else if (IS("retry")) {
			uint64_t s = ev->limits != NULL
			    ? (ev->limits->retry_us + 999999) / 1000000
			    : 0;

			if (s >= 3600)
				snprintf(val, sizeof(val),
				    "%llu hours %llu "
				    "minutes",
				    (unsigned long long)(s / 3600),
				    (unsigned long long)(s % 3600 / 60));
			else if (s >= 60)
				snprintf(val, sizeof(val),
				    "%llu minutes %llu "
				    "seconds",
				    (unsigned long long)(s / 60),
				    (unsigned long long)(s % 60));
			else
				snprintf(val, sizeof(val), "%llu seconds",
				    (unsigned long long)s);
			v = val;
		} else if (IS("score")) {
			snprintf(val, sizeof(val), "%g",
			    ev->fx != NULL ? ev->fx->score : 0.0);
			v = val;
		} else if (IS("tests")) {
			/* SpamAssassin's tests=: the labels, without points. */
			size_t i, vo = 0;

			val[0] = '\0';
			for (i = 0; ev->fx != NULL && i < ev->fx->nlabels;
			     i++) {
				const char *l = ev->fx->labels[i];
				size_t ln = strcspn(l, "=");

				if (vo + ln + 2 >= sizeof(val))
					break;
				if (vo > 0)
					val[vo++] = ',';
				memcpy(val + vo, l, ln);
				vo += ln;
				val[vo] = '\0';
			}
			if (vo == 0)
				snprintf(val, sizeof(val), "none");
			v = val;
		} else if (IS("spam")) {
			/* "Yes" once the score reaches the variable
			 * spam_threshold. */
			const char *t = ev->fx != NULL
			    ? mw_fx_var(ev->fx, "spam_threshold")
			    : NULL;
			double th = t != NULL ? strtod(t, NULL) : 5.0;

			v = ev->fx != NULL && ev->fx->score >= th ? "Yes"
								  : "No";
		} else if (IS("labels")) {
			size_t i, vo = 0;

			val[0] = '\0';
			for (i = 0; ev->fx != NULL && i < ev->fx->nlabels; i++)
				vo += (size_t)snprintf(val + vo,
				    vo < sizeof(val) ? sizeof(val) - vo : 0,
				    "%s%s", i ? "," : "", ev->fx->labels[i]);
			v = val;
		}
#undef IS
		for (; v != NULL && *v != '\0' && o + 1 < size; v++)
			out[o++] =
			    (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
		q = end;
	}
	out[o] = '\0';
}

/* -------------------------------------------------------------- running */

static void
set_decision(struct mw_decision *d, enum mw_verdict v, const char *code,
    const char *dsn, const char *text, const char *rule)
{
	d->verdict = v;
	snprintf(d->code, sizeof(d->code), "%s", code);
	snprintf(d->dsn, sizeof(d->dsn), "%s", dsn);
	/* Reply texts were interpolated into at most 255 bytes. */
	(void)mw_strlcpy(d->text, text, sizeof(d->text));
	d->rule = rule;
}

/*
 * apply -- the actions of a matching rule.  Returns true when a terminal
 * action decided the phase (or stopped it).
 */
static bool
apply(const struct rule *r, struct mw_eval *ev, struct mw_decision *d,
    bool *stopped)
{
	struct mw_fx *fx = ev->fx;
	char text[1024], label[300];
	size_t i;

	for (i = 0; i < r->nactions; i++) {
		const struct action *a = &r->actions[i];
		bool ok = true;

		switch (a->kind) {
		case A_ACCEPT:
			set_decision(d, MW_V_ACCEPT, "", "", "", r->id);
			return true;
		case A_DISCARD:
			set_decision(d, MW_V_DISCARD, "", "", "", r->id);
			return true;
		case A_REJECT:
		case A_TEMPFAIL:
			interpolate(a->arg1, ev, r->id, text, 256);
			set_decision(d,
			    a->kind == A_REJECT ? MW_V_REJECT : MW_V_TEMPFAIL,
			    a->code, a->dsn, text, r->id);
			return true;
		case A_STOP: *stopped = true; return true;
		case A_CONTINUE: break;
		case A_QUARANTINE:
			interpolate(a->arg1, ev, r->id, text, sizeof(text));
			free(fx->quarantine);
			ok = (fx->quarantine = strdup(text)) != NULL;
			break;
		case A_ADD_HEADER:
		case A_INSERT_HEADER:
		case A_CHANGE_HEADER:
			interpolate(a->arg2, ev, r->id, text, 999);
			ok = fx_edit(fx,
			    a->kind == A_ADD_HEADER          ? MW_EDIT_ADD
				: a->kind == A_INSERT_HEADER ? MW_EDIT_INSERT
							     : MW_EDIT_CHANGE,
			    a->arg1, text);
			break;
		case A_DELETE_HEADER:
			ok = fx_edit(fx, MW_EDIT_DELETE, a->arg1, NULL);
			break;
		case A_PREFIX_SUBJECT: {
			/* A later prefix goes in front of an earlier one. */
			char *stacked;

			interpolate(a->arg1, ev, r->id, text, 999);
			if (asprintf(&stacked, "%s%s", text,
				fx->subject_prefix ? fx->subject_prefix : "") <
			    0) {
				ok = false;
				break;
			}
			free(fx->subject_prefix);
			fx->subject_prefix = stacked;
			break;
		}
		case A_ADD_RCPT:
			ok = fx_edit(fx, MW_EDIT_ADD_RCPT, a->arg1, NULL);
			break;
		case A_DELETE_RCPT:
			ok = fx_edit(fx, MW_EDIT_DELETE_RCPT, a->arg1, NULL);
			break;
		case A_REDIRECT:
			free(fx->redirect);
			ok = (fx->redirect = strdup(a->arg1)) != NULL;
			break;
		case A_SCORE:
			fx->score += a->num;
			snprintf(label, sizeof(label), "%s=%+g", a->arg1,
			    a->num);
			ok = strv_push(&fx->labels, &fx->nlabels, label);
			break;
		case A_SET:
			interpolate(a->arg2, ev, r->id, text, 999);
			ok = fx_set_var(fx, a->arg1, text);
			break;
		case A_LOG:
			interpolate(a->arg1, ev, r->id, text, sizeof(text));
			mw_info("%s: rule=%s log: %s",
			    ev->queue_id != NULL ? ev->queue_id : "NOQUEUE",
			    r->id, text);
			break;
		case A_DKIM_SIGN:
			fx->dkim_sign = 1;
			free(fx->dkim_key);
			fx->dkim_key = NULL;
			ok = dup_opt(&fx->dkim_key, a->arg1);
			break;
		case A_DKIM_NOSIGN:
			fx->dkim_sign = -1;
			free(fx->dkim_key);
			fx->dkim_key = NULL;
			break;
		}
		if (!ok) {
			set_decision(d, MW_V_ERROR, "", "", "", r->id);
			snprintf(d->text, sizeof(d->text),
			    "rule %s: out of memory or more than %d items",
			    r->id, MW_FX_MAX_ITEMS);
			return true;
		}
	}
	return false;
}

enum mw_verdict
mw_rules_run(const struct mw_ruleset *rs, enum mw_phase ph, struct mw_eval *ev,
    struct mw_decision *d)
{
	size_t i;

	memset(d, 0, sizeof(*d));
	d->verdict = MW_V_CONTINUE;
	if (rs == NULL || ph >= MW_PH_COUNT)
		return MW_V_CONTINUE;
	for (i = 0; i < rs->nby_phase[ph]; i++) {
		const struct rule *r = rs->by_phase[ph][i];
		enum match m = M_YES;
		bool stopped = false;

		if (r->when != NULL)
			m = eval_cond(rs, r->when, ev);
		if (m == M_ERROR) {
			set_decision(d, MW_V_ERROR, "", "", "", r->id);
			if (ev->limits != NULL && ev->limits->err[0] != '\0')
				snprintf(d->text, sizeof(d->text),
				    "rule %s: %s", r->id, ev->limits->err);
			else
				snprintf(d->text, sizeof(d->text),
				    "rule %s: evaluation failed (regular "
				    "expression limit or error)",
				    r->id);
			return MW_V_ERROR;
		}
		if (m == M_NO)
			continue;
		if (ev->trace != NULL) {
			struct mw_rule_hit hit = { r->id, r->file, r->line, ph,
				r->report_only, r->actions_text,
				r->score_delta };

			ev->trace(ev->trace_arg, &hit);
		}
		if (r->report_only) {
			atomic_fetch_add_explicit(&((struct rule *)r)
						       ->report_hits,
			    1, memory_order_relaxed);
			d->report_only_hit = true;
			mw_info("%s: session=%lx%s%s%s rule=%s report-only: "
				"would %s",
			    ev->queue_id != NULL ? ev->queue_id : "NOQUEUE",
			    ev->session, ev->rcpt_raw != NULL ? " rcpt=<" : "",
			    ev->rcpt_raw != NULL ? ev->rcpt_raw : "",
			    ev->rcpt_raw != NULL ? ">" : "", r->id,
			    r->actions_text ? r->actions_text : "");
			continue;
		}
		/* The counters are the only thing evaluation writes. */
		atomic_fetch_add_explicit(&((struct rule *)r)->hits, 1,
		    memory_order_relaxed);
		if (ev->fx != NULL &&
		    !strv_has(ev->fx->hits, ev->fx->nhits, r->id))
			(void)strv_push(&ev->fx->hits, &ev->fx->nhits, r->id);
		if (apply(r, ev, d, &stopped)) {
			if (stopped)
				return MW_V_CONTINUE;
			return d->verdict;
		}
	}
	return MW_V_CONTINUE;
}

void *
mw_rules_match_new(void)
{
	return pcre2_match_data_create(1, NULL);
}

void
mw_rules_match_free(void *md)
{
	if (md != NULL)
		pcre2_match_data_free(md);
}

void
mw_rules_log_counters(const struct mw_ruleset *rs, unsigned long generation)
{
	char line[2048], item[1300];
	size_t i, o = 0;
	bool any = false;

	line[0] = '\0';
	for (i = 0; i < rs->nrules; i++) {
		const struct rule *r = rs->rules[i];
		unsigned long h = atomic_load(&r->hits);
		unsigned long ro = atomic_load(&r->report_hits);
		size_t n;

		if (h == 0 && ro == 0)
			continue;
		if (ro > 0)
			snprintf(item, sizeof(item),
			    " %.1200s=%lu(report-only)", r->id, ro);
		else
			snprintf(item, sizeof(item), " %.1200s=%lu", r->id, h);
		n = strlen(item);
		/* A full line goes out; counting goes on in the next. */
		if (o + n >= sizeof(line)) {
			mw_info("rule counters (generation %lu):%s", generation,
			    line);
			o = 0;
		}
		memcpy(line + o, item, n + 1);
		o += n;
		any = true;
	}
	mw_info("rule counters (generation %lu):%s", generation,
	    any ? line : " no rule matched");
}

void
mw_rules_check_dkim_keys(const struct mw_ruleset *rs,
    bool (*exists)(const void *arg, const char *name), const void *arg,
    struct mw_diag *diag)
{
	size_t i, k;

	for (i = 0; rs != NULL && i < rs->nrules; i++) {
		const struct rule *r = rs->rules[i];

		for (k = 0; k < r->nactions; k++)
			if (r->actions[k].kind == A_DKIM_SIGN &&
			    r->actions[k].arg1 != NULL &&
			    !exists(arg, r->actions[k].arg1))
				mw_diag_error(diag, r->file, r->line, 0,
				    "dkim-sign \"%s\": no such DKIM key (a "
				    "key table name, a signing domain or "
				    "SELECTOR._domainkey.DOMAIN)",
				    r->actions[k].arg1);
	}
}

const char *
mw_rules_outbound(const struct mw_ruleset *rs, const struct mw_eval *ev)
{
	if (ev->auth_user != NULL && ev->auth_user[0] != '\0')
		return "authenticated";
	if (ev->local_submission)
		return "local-submission";
	if (field_bool(rs, ev, F_TRUSTED))
		return "trusted";
	if (strcmp(role_of(rs, ev), "submission") == 0)
		return "submission";
	return NULL;
}

bool
mw_rules_uses_mime(const struct mw_ruleset *rs)
{
	return rs != NULL && rs->uses_mime;
}
