/*
 * engine_dkim.c -- the engine's DKIM steps: which messages are signed or
 * verified, the header section a signature must cover once the rules'
 * edits are applied, and the operations and log fields at end of message.
 * The cryptography and libopendkim are dkim.c's.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_int.h"
#include "mw_log.h"
#include "mw_text.h"

/* dkim_active -- may DKIM sign or verify mail of this state? */
bool
eng_dkim_active(const struct mw_conn *c)
{
	return mw_dkim_nkeys(c->st->dkim) > 0 || mw_dkim_verifies(c->st->dkim);
}

/* ------------------------------------------------------------------ dkim */

/* Verification reads the header section as it arrived. */
static bool
dkim_feed_headers_received(struct mw_msg *m)
{
	size_t i;

	for (i = 0; i < m->nheaders; i++)
		if (!mw_dkim_header(m->dkim, m->headers[i].name,
			m->headers[i].value))
			return false;
	return true;
}

/*
 * dkim_key_error -- a message that should be signed cannot be: tempfail
 * (dkim_on_key_error = tempfail, the default: the MTA keeps the mail) or
 * pass it unsigned with the reason in its log line.
 */
enum mw_action
eng_dkim_key_error(struct mw_conn *c, const char *what, struct mw_reply *r)
{
	struct mw_msg *m = c->msg;
	char extra[400], pw[300];

	(void)mw_printable(pw, sizeof(pw), what, strlen(what));
	mw_dkim_job_free(m->dkim);
	m->dkim = NULL;
	m->dkim_signing = false;
	/* Local submission cannot be refused either (see run_rules). */
	if (c->st->cfg->dkim_on_key_error == MW_ON_ERROR_ACCEPT ||
	    c->local_submission) {
		mw_warn("%s: dkim=error reason=\"%s\": passing it unsigned "
			"(dkim_on_key_error = accept)",
		    mw_conn_macro(c, "i") ? mw_conn_macro(c, "i") : "NOQUEUE",
		    pw);
		m->dkim_why = "key-error";
		return eng_cont(r);
	}
	snprintf(extra, sizeof(extra), "dkim=error error=\"%s\"", pw);
	eng_set_reply(r, MW_TEMPFAIL, "451", "4.7.0", "dkim_on_key_error",
	    "DKIM signing failed, please try again later");
	eng_log_decision(c, MW_LOG_ERROR, r, NULL, extra);
	return MW_TEMPFAIL;
}

/* The last value a rule's change-header gave name, or NULL. */
static const char *
edit_changed(const struct mw_fx *fx, const char *name)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; i < fx->nedits; i++)
		if (fx->edits[i].kind == MW_EDIT_CHANGE &&
		    strcasecmp(fx->edits[i].name, name) == 0)
			v = fx->edits[i].value;
	return v;
}

static bool
edit_deleted(const struct mw_fx *fx, const char *name)
{
	size_t i;

	for (i = 0; i < fx->nedits; i++)
		if (fx->edits[i].kind == MW_EDIT_DELETE &&
		    strcasecmp(fx->edits[i].name, name) == 0)
			return true;
	return false;
}

static bool
feed_subject(struct mw_dkim_job *j, const char *prefix, const char *value)
{
	char *s;
	bool ok;

	if (prefix == NULL)
		return mw_dkim_header(j, "Subject", value);
	if (asprintf(&s, "%s%s", prefix, value) < 0)
		return false;
	ok = mw_dkim_header(j, "Subject", s);
	free(s);
	return ok;
}

/*
 * dkim_feed_headers -- the header section as the MTA will deliver it once
 * the edits decided so far are applied (the same edits plan_ops turns into
 * operations), so that the signature covers what the recipient gets.
 */
static bool
dkim_feed_headers(struct mw_msg *m)
{
	const struct mw_fx *fx = &m->fx;
	struct mw_dkim_job *j = m->dkim;
	bool subject_seen = false;
	size_t i, k;

	/* Each insert goes to the top: the last one ends up first. */
	for (k = fx->nedits; k-- > 0;)
		if (fx->edits[k].kind == MW_EDIT_INSERT &&
		    !mw_dkim_header(j, fx->edits[k].name, fx->edits[k].value))
			return false;
	for (i = 0; i < m->nheaders; i++) {
		const char *name = m->headers[i].name;
		const char *value = m->headers[i].value, *nv;
		bool first = true;

		if (edit_deleted(fx, name))
			continue;
		for (k = 0; k < i && first; k++)
			first = strcasecmp(m->headers[k].name, name) != 0;
		if (first && (nv = edit_changed(fx, name)) != NULL)
			value = nv;
		if (first && strcasecmp(name, "Subject") == 0) {
			subject_seen = true;
			if (!feed_subject(j, fx->subject_prefix, value))
				return false;
			continue;
		}
		if (!mw_dkim_header(j, name, value))
			return false;
	}
	for (k = 0; k < fx->nedits; k++) {
		const struct mw_edit *e = &fx->edits[k];

		if (e->kind == MW_EDIT_ADD ||
		    (e->kind == MW_EDIT_CHANGE &&
			eng_header_count(m, e->name) == 0 &&
			edit_changed(fx, e->name) == e->value &&
			(strcasecmp(e->name, "Subject") != 0 ||
			    fx->subject_prefix == NULL))) {
			if (!mw_dkim_header(j, e->name, e->value))
				return false;
		}
	}
	if (!subject_seen && fx->subject_prefix != NULL) {
		const char *base = edit_changed(fx, "Subject");

		if (!feed_subject(j, fx->subject_prefix, base ? base : ""))
			return false;
	}
	return true;
}

/* The signing domain: From: (one mailbox) or the envelope sender. */
static const char *
dkim_author(const struct mw_conn *c, const struct mw_msg *m, char *addr,
    size_t size, const char **why)
{
	const struct mw_addr *a;

	if (c->st->cfg->dkim_signing_domain == MW_DKIM_FROM_ENVELOPE) {
		a = &m->from_addr;
		if (m->from == NULL || a->null || a->malformed ||
		    a->domain[0] == '\0') {
			*why = "no-envelope-domain";
			return NULL;
		}
	} else {
		if (m->hfrom == NULL || m->hfrom->n != 1 ||
		    m->hfrom->malformed || m->hfrom->box[0].domain[0] == '\0') {
			*why = m->hfrom == NULL || m->hfrom->n == 0
			    ? "no-from-domain"
			    : "from-not-one-mailbox";
			return NULL;
		}
		a = &m->hfrom->box[0];
	}
	if (!mw_addr_format(a, addr, size))
		addr[0] = '\0';
	return a->domain;
}

/*
 * dkim_start -- at end of headers: sign outbound mail that has a key,
 * verify the rest.  A key that fails here is dkim_on_key_error's case.
 */
enum mw_action
eng_dkim_start(struct mw_conn *c, struct mw_msg *m, struct mw_eval *ev,
    struct mw_reply *r)
{
	const struct mw_dkim *d = c->st->dkim;
	const char *outbound = mw_rules_outbound(c->st->rules, ev);
	const char *qid = mw_conn_macro(c, "i");
	char err[300], addr[MW_ADDR_MAX + 2];
	size_t keys[MW_DKIM_MAX_SIGS], n;
	const char *domain, *why = NULL;

	if (qid == NULL || *qid == '\0')
		qid = "NOQUEUE";
	if (m->fx.dkim_sign < 0 || (outbound == NULL && m->fx.dkim_sign == 0)) {
		if (outbound != NULL)
			m->dkim_why = "rule";
		if (outbound != NULL || !mw_dkim_verifies(d))
			return eng_cont(r);
		if ((m->dkim = mw_dkim_verify_begin(d, qid, err,
			 sizeof(err))) == NULL)
			return mw_engine_failure(c, err, r);
		if (!dkim_feed_headers_received(m) || !mw_dkim_eoh(m->dkim))
			return mw_engine_failure(c, mw_dkim_error(m->dkim), r);
		return eng_cont(r);
	}
	if (mw_dkim_nkeys(d) == 0) {
		m->dkim_why = "no-keys-configured";
		return eng_cont(r);
	}
	domain = dkim_author(c, m, addr, sizeof(addr), &why);
	if (domain == NULL && m->fx.dkim_key == NULL) {
		m->dkim_why = why;
		return eng_cont(r);
	}
	(void)mw_strlcpy(m->dkim_domain, domain != NULL ? domain : "",
	    sizeof(m->dkim_domain));
	n = mw_dkim_select(d, addr[0] != '\0' ? addr : NULL, domain,
	    m->fx.dkim_key, keys, MW_DKIM_MAX_SIGS);
	if (n == 0) {
		m->dkim_why = "no-key-for-domain";
		return eng_cont(r);
	}
	m->dkim = mw_dkim_sign_begin(d, keys, n, qid, err, sizeof(err));
	m->dkim_signing = true;
	if (m->dkim == NULL)
		return eng_dkim_key_error(c, err, r);
	m->dkim_edits = m->fx.nedits;
	if (m->fx.subject_prefix != NULL &&
	    (m->dkim_prefix = strdup(m->fx.subject_prefix)) == NULL)
		return mw_engine_failure(c, "out of memory at end of headers",
		    r);
	if (!dkim_feed_headers(m) || !mw_dkim_eoh(m->dkim))
		return eng_dkim_key_error(c, mw_dkim_error(m->dkim), r);
	return eng_cont(r);
}

/* A name in the signed-header list (dkim.c's), without case. */
static bool
dkim_signed_name(const char *name)
{
	static const char *const names[] = { "from", "to", "cc", "subject",
		"date", "message-id", "reply-to", "in-reply-to", "references",
		"mime-version", "content-type", "content-transfer-encoding" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/*
 * dkim_late_edit -- did a body or end-of-message rule change a signed
 * header after signing began?  The signature would not survive it.
 */
static const char *
dkim_late_edit(const struct mw_msg *m)
{
	const struct mw_fx *fx = &m->fx;
	size_t i;

	for (i = m->dkim_edits; i < fx->nedits; i++)
		if (fx->edits[i].kind <= MW_EDIT_DELETE &&
		    dkim_signed_name(fx->edits[i].name))
			return fx->edits[i].name;
	if ((fx->subject_prefix == NULL) != (m->dkim_prefix == NULL) ||
	    (fx->subject_prefix != NULL &&
		strcmp(fx->subject_prefix, m->dkim_prefix) != 0))
		return "Subject";
	return NULL;
}

/* The authserv-id of an Authentication-Results value, compared. */
static bool
ar_is_ours(const char *value, const char *authserv)
{
	size_t n = strlen(authserv);

	while (
	    *value == ' ' || *value == '\t' || *value == '\r' || *value == '\n')
		value++;
	return strncasecmp(value, authserv, n) == 0 &&
	    (value[n] == ';' || value[n] == ' ' || value[n] == '\t' ||
		value[n] == '\r' || value[n] == '\n' || value[n] == '\0');
}

static enum mw_action
dkim_eom_error(struct mw_conn *c, const char *what, char *log, size_t logsize,
    struct mw_reply *r)
{
	if (eng_dkim_key_error(c, what, r) != MW_CONTINUE)
		return r->action;
	snprintf(log, logsize, " dkim=unsigned reason=key-error");
	return MW_CONTINUE;
}

/*
 * dkim_finish -- at end of message, after the rules: the signatures to
 * insert, or the Authentication-Results (with forged ones of our
 * authserv-id deleted, highest index first), and the log fields.
 */
enum mw_action
eng_dkim_finish(struct mw_conn *c, struct mw_msg *m, char *log, size_t logsize,
    struct mw_reply *r)
{
	const struct mw_dkim_sig *sigs;
	const char *late;
	size_t n, i, len = 0;
	int w;

	log[0] = '\0';
	if (m->dkim == NULL) {
		if (m->dkim_why != NULL)
			snprintf(log, logsize, " dkim=unsigned reason=%s",
			    m->dkim_why);
		return eng_cont(r);
	}
	if (m->dkim_signing) {
		if ((late = dkim_late_edit(m)) != NULL) {
			char what[200];

			snprintf(what, sizeof(what),
			    "a body or end-of-message rule changed the signed "
			    "header %s after signing began",
			    late);
			return dkim_eom_error(c, what, log, logsize, r);
		}
		if (!mw_dkim_eom(m->dkim))
			return dkim_eom_error(c, mw_dkim_error(m->dkim), log,
			    logsize, r);
		sigs = mw_dkim_sigs(m->dkim, &n);
		for (i = 0; i < n; i++) {
			if (!eng_op_add(c, MW_OP_INSERT_HEADER,
				"DKIM-Signature", sigs[i].header, 0))
				return mw_engine_failure(c,
				    "out of memory at end of message", r);
			w = snprintf(log + len, logsize - len,
			    "%s d=%s s=%s a=%s", i == 0 ? " dkim=signed" : "",
			    sigs[i].domain, sigs[i].selector, sigs[i].alg);
			if (w > 0 && (size_t)w < logsize - len)
				len += (size_t)w;
		}
		return eng_cont(r);
	}
	{
		const char *authserv = mw_dkim_authserv(c->st->dkim);
		char ar[2048];
		unsigned k = 0,
			 total = eng_header_count(m, "Authentication-Results");

		/* Forged results of ours: from the highest index down. */
		for (i = m->nheaders; i-- > 0;) {
			if (strcasecmp(m->headers[i].name,
				"Authentication-Results") != 0)
				continue;
			k++;
			if (ar_is_ours(m->headers[i].value, authserv) &&
			    !eng_op_add(c, MW_OP_CHANGE_HEADER,
				"Authentication-Results", NULL, total - k + 1))
				return mw_engine_failure(c,
				    "out of memory at end of message", r);
		}
		if (!mw_dkim_auth_results(m->dkim, authserv, ar, sizeof(ar)) ||
		    !eng_op_add(c, MW_OP_INSERT_HEADER,
			"Authentication-Results", ar, 0))
			return mw_engine_failure(c,
			    "Authentication-Results too long or out of memory",
			    r);
		sigs = mw_dkim_sigs(m->dkim, &n);
		if (n == 0)
			snprintf(log, logsize, " dkim=none");
		for (i = 0; i < n; i++) {
			w = snprintf(log + len, logsize - len,
			    " dkim=%s d=%s s=%s a=%s", sigs[i].result,
			    sigs[i].domain, sigs[i].selector, sigs[i].alg);
			if (w > 0 && (size_t)w < logsize - len)
				len += (size_t)w;
		}
	}
	return eng_cont(r);
}

void
eng_dkim_verified(struct mw_conn *c, struct mw_msg *m, struct mw_eval *ev,
    const char **domains)
{
	const struct mw_dkim_sig *sigs;
	size_t n, i;

	if (m->dkim == NULL || m->dkim_signing) {
		if (m->dkim == NULL && eng_dkim_active(c))
			ev->dkim = "none";
		return;
	}
	(void)mw_dkim_eom(m->dkim);
	ev->dkim = mw_dkim_summary(m->dkim);
	sigs = mw_dkim_sigs(m->dkim, &n);
	for (i = 0; i < n && i < MW_DKIM_MAX_SIGS; i++)
		if (strcmp(sigs[i].result, "pass") == 0)
			domains[ev->ndkim_domains++] = sigs[i].domain;
	ev->dkim_domains = domains;
}
