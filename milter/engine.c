/*
 * engine.c -- the policy engine: per-connection and per-message state, the
 * limits of the configuration, the rules of each phase, and one log line
 * per decision.
 *
 * Nothing here knows about libmilter.  The glue (glue.c) calls one mw_eng_*
 * function per SMTP phase and maps the returned action to SMFIS_*; the
 * changes decided at end of message are handed over as a list of
 * operations (mw_conn_ops) for the glue to perform.
 *
 * Memory per message is bounded by the configuration: headers are kept up
 * to max_header_bytes, the body up to max_body_scan_bytes, recipients up to
 * max_recipients.
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mw_addr.h"
#include "mw_dkim.h"
#include "mw_engine.h"
#include "mw_ipset.h"
#include "mw_log.h"
#include "mw_rules.h"
#include "mw_text.h"

#include "engine_int.h"
#include "mw_mime.h"
#include "mw_store.h"

static void
ops_free(struct mw_conn *c)
{
	size_t i;

	for (i = 0; i < c->nops; i++) {
		free(c->ops[i].name);
		free(c->ops[i].value);
	}
	free(c->ops);
	c->ops = NULL;
	c->nops = 0;
}

/* Both end of message and abort come here, as may a repeated MAIL. */
static void
msg_end(struct mw_conn *c)
{
	struct mw_msg *m = c->msg;
	size_t i;

	if (m == NULL)
		return;
	free(m->from);
	free(m->from_canon);
	free(m->hfrom);
	for (i = 0; i < m->nrcpt; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	for (i = 0; i < m->nheaders; i++) {
		free(m->headers[i].name);
		free(m->headers[i].value);
	}
	free(m->headers);
	free(m->body);
	mw_dkim_job_free(m->dkim);
	mw_mime_free(m->mime);
	free(m->dkim_prefix);
	/* Kept for mw_conn_fx until the next message starts. */
	mw_fx_clear(&c->last_fx);
	c->last_fx = m->fx;
	c->last_valid = true;
	free(m);
	c->msg = NULL;
}

struct mw_conn *
mw_conn_new(struct mw_state *st)
{
	static atomic_ulong next_id;
	struct mw_conn *c;

	assert(st != NULL);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->match_data = mw_rules_match_new()) == NULL) {
		free(c);
		return NULL;
	}
	c->st = mw_state_ref(st);
	c->id = atomic_fetch_add(&next_id, 1) + 1;
	mw_fx_init(&c->fx);
	return c;
}

void
mw_conn_free(struct mw_conn *c)
{
	size_t i;

	if (c == NULL)
		return;
	msg_end(c);
	ops_free(c);
	for (i = 0; i < c->nmacros; i++)
		free(c->macros[i].value);
	free(c->client_name);
	free(c->client_addr);
	free(c->helo);
	free(c->bl);
	mw_fx_clear(&c->fx);
	mw_fx_clear(&c->connect_fx);
	mw_fx_clear(&c->last_fx);
	mw_rules_match_free(c->match_data);
	mw_state_unref(c->st);
	free(c);
}

const struct mw_state *
mw_conn_state(const struct mw_conn *c)
{
	return c->st;
}

unsigned long
mw_conn_nrcpt(const struct mw_conn *c)
{
	return c->msg != NULL ? c->msg->nrcpt : 0;
}

unsigned long
mw_conn_nmsgs(const struct mw_conn *c)
{
	return c->nmsgs;
}

unsigned long
mw_conn_body_scanned(const struct mw_conn *c)
{
	return c->msg != NULL ? c->msg->body_scanned : 0;
}

const struct mw_op *
mw_conn_ops(const struct mw_conn *c, size_t *n)
{
	*n = c->nops;
	return c->ops;
}

void
mw_conn_set_trace(struct mw_conn *c,
    void (*fn)(void *arg, const struct mw_rule_hit *hit), void *arg)
{
	c->trace = fn;
	c->trace_arg = arg;
}

const struct mw_fx *
mw_conn_fx(const struct mw_conn *c)
{
	if (c->msg != NULL)
		return &c->msg->fx;
	return c->last_valid ? &c->last_fx : &c->fx;
}

/* "{auth_authen}" and "auth_authen" name the same macro. */
static bool
macro_key(const char *name, char *key, size_t size)
{
	size_t len = strlen(name);

	if (len >= 2 && name[0] == '{' && name[len - 1] == '}') {
		name++;
		len -= 2;
	}
	if (len == 0 || len >= size)
		return false;
	memcpy(key, name, len);
	key[len] = '\0';
	return true;
}

/*
 * forget_macros -- drop the macros named in names: a name ending in '_'
 * stands for every macro that starts with it.
 */
static void
forget_macros(struct mw_conn *c, const char *const *names)
{
	size_t i, k;

	for (i = 0; i < c->nmacros;) {
		bool drop = false;

		for (k = 0; names[k] != NULL && !drop; k++) {
			size_t n = strlen(names[k]);

			drop = names[k][n - 1] == '_'
			    ? strncmp(c->macros[i].name, names[k], n) == 0
			    : strcmp(c->macros[i].name, names[k]) == 0;
		}
		if (!drop) {
			i++;
			continue;
		}
		free(c->macros[i].value);
		c->macros[i] = c->macros[--c->nmacros];
	}
}

/* What describes one message, or one recipient, and must not outlive it. */
static const char *const message_macros[] = { "i", "mail_", "rcpt_", NULL };
static const char *const rcpt_macros[] = { "rcpt_", NULL };

bool
mw_conn_set_macro(struct mw_conn *c, const char *name, const char *value)
{
	char key[sizeof(c->macros[0].name)];
	char *copy;
	size_t i;

	if (!macro_key(name, key, sizeof(key)))
		return false;
	if ((copy = mw_strdup_bounded(value, MW_MACRO_MAX)) == NULL)
		return false;
	for (i = 0; i < c->nmacros; i++) {
		if (strcmp(c->macros[i].name, key) == 0) {
			free(c->macros[i].value);
			c->macros[i].value = copy;
			return true;
		}
	}
	if (c->nmacros == MW_MACROS) {
		free(copy);
		return false;
	}
	memcpy(c->macros[c->nmacros].name, key, strlen(key) + 1);
	c->macros[c->nmacros].value = copy;
	c->nmacros++;
	return true;
}

const char *
mw_conn_macro(const struct mw_conn *c, const char *name)
{
	char key[sizeof(c->macros[0].name)];
	size_t i;

	if (!macro_key(name, key, sizeof(key)))
		return NULL;
	for (i = 0; i < c->nmacros; i++)
		if (strcmp(c->macros[i].name, key) == 0)
			return c->macros[i].value;
	return NULL;
}

/*
 * Log lines: "QUEUEID: key=value ...".  Values are made printable and
 * quoted when they contain a space or are empty.
 */
struct logline {
	char buf[2048];
	size_t len;
};

static void
ll_raw(struct logline *ll, const char *s)
{
	size_t n = strlen(s);

	if (n > sizeof(ll->buf) - 1 - ll->len)
		n = sizeof(ll->buf) - 1 - ll->len;
	memcpy(ll->buf + ll->len, s, n);
	ll->len += n;
	ll->buf[ll->len] = '\0';
}

static void
ll_field(struct logline *ll, const char *key, const char *value,
    const char *open, const char *close)
{
	char pv[MW_ADDR_MAX + 64];

	if (value == NULL)
		return;
	(void)mw_printable(pv, sizeof(pv), value, strlen(value));
	if (ll->len > 0)
		ll_raw(ll, " ");
	ll_raw(ll, key);
	ll_raw(ll, "=");
	if (*open == '\0' && (pv[0] == '\0' || strchr(pv, ' ') != NULL)) {
		open = "\"";
		close = "\"";
	}
	ll_raw(ll, open);
	ll_raw(ll, pv);
	ll_raw(ll, close);
}

static void
ll_client(struct logline *ll, const struct mw_conn *c)
{
	char name[300], addr[100], both[440];

	(void)mw_printable(name, sizeof(name),
	    c->client_name ? c->client_name : "unknown",
	    strlen(c->client_name ? c->client_name : "unknown"));
	(void)mw_printable(addr, sizeof(addr),
	    c->client_addr ? c->client_addr : "",
	    strlen(c->client_addr ? c->client_addr : ""));
	snprintf(both, sizeof(both), "client=%s[%s] session=%lx", name, addr,
	    c->id);
	ll_raw(ll, " ");
	ll_raw(ll, both);
}

static const char *const action_names[] = { "continue", "accept", "reject",
	"tempfail", "discard", "skip", "error" };

/* The score, labels and rules that matched, for the final line. */
static void
ll_effects(struct logline *ll, const struct mw_fx *fx)
{
	char buf[1024];
	size_t i, o = 0;

	if (fx->nhits == 0 && fx->nlabels == 0)
		return;
	/* A score only when a score action ran. */
	if (fx->nlabels > 0) {
		snprintf(buf, sizeof(buf), "%g", fx->score);
		ll_field(ll, "score", buf, "", "");
	}
	buf[0] = '\0';
	for (i = 0; i < fx->nlabels && o < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s",
		    i ? "," : "", fx->labels[i]);
	if (fx->nlabels > 0)
		ll_field(ll, "labels", buf, "", "");
	buf[0] = '\0';
	for (i = 0, o = 0; i < fx->nhits && o < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s",
		    i ? "," : "", fx->hits[i]);
	if (fx->nhits > 0)
		ll_field(ll, "rules", buf, "", "");
}

/*
 * log_decision -- the one line a decision gets.  rcpt is the recipient the
 * decision is about, or NULL for the whole message.
 */
void
eng_log_decision(const struct mw_conn *c, enum mw_log_level level,
    const struct mw_reply *r, const char *rcpt, const char *extra)
{
	const char *qid = mw_conn_macro(c, "i");
	struct logline ll = { .len = 0 };
	char n[32];

	/* Not built at all when it would not be written. */
	if (level > mw_log_get_level())
		return;

	if (qid != NULL && *qid != '\0') {
		char pq[64];

		(void)mw_printable(pq, sizeof(pq), qid, strlen(qid));
		ll_raw(&ll, pq);
	} else {
		ll_raw(&ll, "NOQUEUE");
	}
	ll_raw(&ll, ":");
	ll_client(&ll, c);
	ll_field(&ll, "helo", c->helo, "", "");
	if (c->msg != NULL)
		ll_field(&ll, "from", c->msg->from, "<", ">");
	if (rcpt != NULL)
		ll_field(&ll, "rcpt", rcpt, "<", ">");
	else if (c->msg != NULL) {
		snprintf(n, sizeof(n), "%lu", c->msg->nrcpt);
		ll_field(&ll, "nrcpt", n, "", "");
	}
	if (extra != NULL) {
		ll_raw(&ll, " ");
		ll_raw(&ll, extra);
	}
	if (r->rule == NULL || strncmp(r->rule, "limit:", 6) != 0)
		ll_effects(&ll, mw_conn_fx(c));
	if (c->bl_noanswer > 0) {
		snprintf(n, sizeof(n), "%u", c->bl_noanswer);
		ll_field(&ll, "dnsbl_noanswer", n, "", "");
	}
	if (c->msg != NULL && c->msg->store_errors > 0) {
		snprintf(n, sizeof(n), "%u", c->msg->store_errors);
		ll_field(&ll, "state_store_errors", n, "", "");
	}
	ll_field(&ll, "action", action_names[r->action], "", "");
	if (r->code[0] != '\0') {
		ll_field(&ll, "code", r->code, "", "");
		ll_field(&ll, "dsn", r->dsn, "", "");
	}
	ll_field(&ll, "rule", r->rule, "", "");
	if (r->text[0] != '\0') {
		/* The text as the client reads it: "%%" was for libmilter. */
		char plain[MW_REPLY_TEXT_MAX];
		size_t i, o = 0;

		for (i = 0; r->text[i] != '\0' && o + 1 < sizeof(plain); i++) {
			plain[o++] = r->text[i];
			if (r->text[i] == '%' && r->text[i + 1] == '%')
				i++;
		}
		plain[o] = '\0';
		ll_field(&ll, "reason", plain, "\"", "\"");
	}
	mw_log(level, "%s", ll.buf);
}

/*
 * set_reply -- fill r.  The text is made safe for an SMTP reply and for
 * smfi_setreply: control characters become '?', and '%' is doubled because
 * libmilter treats the text as a format.
 */
enum mw_action
eng_set_reply(struct mw_reply *r, enum mw_action action, const char *code,
    const char *dsn, const char *rule, const char *fmt, ...)
{
	char raw[MW_REPLY_TEXT_MAX];
	size_t i, o = 0;
	va_list ap;

	memset(r, 0, sizeof(*r));
	r->action = action;
	r->rule = rule;
	(void)mw_strlcpy(r->code, code, sizeof(r->code));
	(void)mw_strlcpy(r->dsn, dsn, sizeof(r->dsn));
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	for (i = 0; raw[i] != '\0' && o + 2 < sizeof(r->text); i++) {
		unsigned char ch = (unsigned char)raw[i];

		if (ch == '%') {
			r->text[o++] = '%';
			r->text[o++] = '%';
		} else {
			r->text[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
		}
	}
	r->text[o] = '\0';
	return action;
}

enum mw_action
eng_cont(struct mw_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->action = MW_CONTINUE;
	return MW_CONTINUE;
}

enum mw_action
mw_engine_failure(struct mw_conn *c, const char *what, struct mw_reply *r)
{
	char extra[400], pw[300];

	(void)mw_printable(pw, sizeof(pw), what, strlen(what));
	snprintf(extra, sizeof(extra), "error=\"%s\"", pw);
	if (c != NULL && c->st->cfg->on_internal_error == MW_ON_ERROR_ACCEPT) {
		eng_set_reply(r, MW_ACCEPT, "", "", "on_internal_error", "%s",
		    "");
		eng_log_decision(c, MW_LOG_WARNING, r, NULL, extra);
		return MW_ACCEPT;
	}
	eng_set_reply(r, MW_TEMPFAIL, "451", "4.3.0", "on_internal_error",
	    "Internal error in the mail filter, please try again later");
	if (c != NULL)
		eng_log_decision(c, MW_LOG_ERROR, r, NULL, extra);
	else
		mw_error("NOQUEUE: action=tempfail code=451 dsn=4.3.0 "
			 "rule=on_internal_error %s",
		    extra);
	return MW_TEMPFAIL;
}

/* ---------------------------------------------------------------- rules */

static const char *
eval_macro(const void *arg, const char *name)
{
	return mw_conn_macro(arg, name);
}

/* The engine's clock for rate limits and greylisting (tests set it). */
static uint64_t
real_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t (*engine_clock)(void) = real_clock;

void
mw_engine_set_clock(uint64_t (*fn)(void))
{
	engine_clock = fn != NULL ? fn : real_clock;
}

/*
 * is_local_submission -- Postfix's non_smtpd_milters path (sendmail(1),
 * pickup, cleanup): a simulated session from localhost that already has a
 * queue id at MAIL FROM, which an SMTP session never has that early.
 */
static bool
is_local_submission(const struct mw_conn *c)
{
	const char *qid = mw_conn_macro(c, "i");

	return qid != NULL && *qid != '\0' && c->client_name != NULL &&
	    strcasecmp(c->client_name, "localhost") == 0 &&
	    c->client_addr != NULL &&
	    (strcmp(c->client_addr, "127.0.0.1") == 0 ||
		strcmp(c->client_addr, "::1") == 0);
}

/* After the rules ran: what the stateful conditions saw. */
static void
limits_done(struct mw_conn *c)
{
	if (c->st->store == NULL || c->msg == NULL)
		return;
	c->msg->store_errors += c->lim.errors;
	c->lim.errors = 0;
	if (c->lim.greylist_passed) {
		c->msg->greylist_passed = true;
		(void)mw_strlcpy(c->msg->greylist_net, c->lim.net_key,
		    sizeof(c->msg->greylist_net));
		c->lim.greylist_passed = false;
	}
}

/* eval_setup -- what the rules of a phase see. */
static void
eval_setup(struct mw_conn *c, struct mw_eval *ev, const char *rcpt)
{
	struct mw_msg *m = c->msg;

	memset(ev, 0, sizeof(*ev));
	ev->client_ip_text = c->client_addr;
	ev->client_ip = c->client_ip_valid ? &c->client_ip : NULL;
	ev->client_name = c->client_name;
	ev->listener = mw_conn_macro(c, "daemon_name");
	ev->helo = c->helo;
	ev->tls_version = mw_conn_macro(c, "tls_version");
	ev->auth_user = mw_conn_macro(c, "auth_authen");
	ev->auth_mech = mw_conn_macro(c, "auth_type");
	ev->queue_id = mw_conn_macro(c, "i");
	ev->macro = eval_macro;
	ev->macro_arg = c;
	ev->match_data = c->match_data;
	ev->session = c->id;
	ev->trace = c->trace;
	ev->trace_arg = c->trace_arg;
	ev->now = (int64_t)(engine_clock() / 1000000);
	ev->local_submission = c->local_submission;
	if (c->st->dnsbl != NULL) {
		ev->bl_result = eng_bl_result;
		ev->bl_arg = c;
	}
	if (c->st->store != NULL) {
		const struct mw_config *cfg = c->st->cfg;
		struct mw_limit_env *l = &c->lim;

		l->store = c->st->store;
		l->now_us = engine_clock();
		l->v4_prefix = (unsigned)cfg->client_net_ipv4_prefix;
		l->v6_prefix = (unsigned)cfg->client_net_ipv6_prefix;
		l->fail_closed =
		    cfg->state_store_on_error == MW_ON_ERROR_TEMPFAIL;
		l->greylist_delay_us = cfg->greylist_delay * 1000000ULL;
		l->greylist_window_us = cfg->greylist_retry_window * 1000000ULL;
		l->greylist_auto_allow_us =
		    cfg->greylist_auto_allow * 1000000ULL;
		l->retry_us = 0;
		l->errors = 0;
		l->greylist_passed = false;
		l->err[0] = '\0';
		ev->limits = l;
	}
	ev->rcpt = rcpt;
	ev->rcpt_raw = rcpt;
	ev->fx = m != NULL ? &m->fx : &c->fx;
	if (m != NULL) {
		ev->from = m->from_canon != NULL ? m->from_canon : m->from;
		ev->from_raw = m->from;
		ev->from_addr = &m->from_addr;
		ev->hfrom = m->hfrom;
		ev->hfrom_headers = m->hfrom_headers;
		ev->rcpt_count = m->nrcpt;
		ev->size = m->esmtp_size;
		ev->headers = m->headers;
		ev->nheaders = m->nheaders;
		ev->body = m->body;
		ev->body_len = m->body_scanned;
	}
}

/*
 * run_rules -- the rules of phase ph; fills r and logs the decision.
 * Returns the action for the MTA (MW_CONTINUE when nothing decided).
 */
static enum mw_action
run_rules(struct mw_conn *c, enum mw_phase ph, struct mw_eval *ev,
    struct mw_reply *r)
{
	const struct mw_ruleset *rs = c->st->rules;
	enum mw_verdict verdict;
	struct mw_decision d;

	if (c->accepted || (c->msg != NULL && c->msg->accepted))
		return eng_cont(r);
	if (!mw_rules_has_phase(rs, ph))
		return eng_cont(r);
	if (c->st->dnsbl != NULL && mw_rules_has_bl(rs, ph))
		eng_bl_prefetch(c, ph, ev);
	verdict = mw_rules_run(rs, ph, ev, &d);
	limits_done(c);
	/*
	 * Local submission cannot be refused: Postfix would bounce what a
	 * local program handed it.  The rule is logged, the mail goes on.
	 */
	if (c->local_submission &&
	    (verdict == MW_V_REJECT || verdict == MW_V_TEMPFAIL ||
		verdict == MW_V_DISCARD)) {
		mw_notice("%s: rule=%s would refuse local submission (Postfix "
			  "non_smtpd_milters): not applied",
		    mw_conn_macro(c, "i") ? mw_conn_macro(c, "i") : "NOQUEUE",
		    d.rule != NULL ? d.rule : "?");
		verdict = MW_V_CONTINUE;
	}
	switch (verdict) {
	case MW_V_CONTINUE: return eng_cont(r);
	case MW_V_ERROR: return mw_engine_failure(c, d.text, r);
	case MW_V_ACCEPT:
		eng_set_reply(r, MW_ACCEPT, "", "", d.rule, "%s", "");
		if (c->msg != NULL)
			c->msg->accepted = true;
		else
			c->accepted = true;
		/*
		 * Accepting means "no more rules", but signing still needs
		 * the message: the MTA is told to go on, and no rule runs
		 * again.  (An accepted message is not verified.)
		 */
		if (mw_dkim_nkeys(c->st->dkim) > 0 && ph < MW_PH_EOM) {
			if (ph < MW_PH_BODY)
				eng_log_decision(c, MW_LOG_INFO, r,
				    ev->rcpt_raw, NULL);
			r->action = MW_CONTINUE;
			return MW_CONTINUE;
		}
		break;
	case MW_V_DISCARD:
		eng_set_reply(r, MW_DISCARD, "", "", d.rule, "%s", "");
		break;
	case MW_V_REJECT:
		eng_set_reply(r, MW_REJECT, d.code, d.dsn, d.rule, "%s",
		    d.text);
		break;
	case MW_V_TEMPFAIL:
		eng_set_reply(r, MW_TEMPFAIL, d.code, d.dsn, d.rule, "%s",
		    d.text);
		break;
	}
	/*
	 * The decision's line.  Accepting at body or end of message leads to
	 * the end-of-message line, which says it all.
	 */
	if (!(r->action == MW_ACCEPT && ph >= MW_PH_BODY))
		eng_log_decision(c, MW_LOG_INFO, r, ev->rcpt_raw, NULL);
	return r->action;
}

/* ---------------------------------------------------------------- phases */

/*
 * replace_string -- store a copy of src (NULL allowed) in *dst.  Returns 1
 * when stored, 0 when src is longer than MW_ADDR_MAX (nothing stored: too
 * long is refused, never cut), -1 when out of memory.
 */
static int
replace_string(char **dst, const char *src)
{
	char *copy = NULL;

	if (src != NULL) {
		if (strnlen(src, MW_ADDR_MAX + 1) > MW_ADDR_MAX)
			return 0;
		if ((copy = strdup(src)) == NULL)
			return -1;
	}
	free(*dst);
	*dst = copy;
	return 1;
}

enum mw_action
mw_eng_connect(struct mw_conn *c, const char *hostname, const char *addr,
    struct mw_reply *r)
{
	struct mw_eval ev;

	/* The MTA's own data: too long is as much a failure as no memory. */
	if (replace_string(&c->client_name, hostname) != 1 ||
	    replace_string(&c->client_addr, addr) != 1)
		return mw_engine_failure(c,
		    "client name or address too long, or out of memory", r);
	c->client_ip_valid = addr != NULL && mw_ip_parse(addr, &c->client_ip);
	mw_debug("NOQUEUE: connect from %s[%s] session=%lx",
	    hostname ? hostname : "unknown", addr ? addr : "", c->id);
	eval_setup(c, &ev, NULL);
	if (run_rules(c, MW_PH_CONNECT, &ev, r) == MW_CONTINUE &&
	    !mw_fx_copy(&c->connect_fx, &c->fx))
		return mw_engine_failure(c, "out of memory at connect", r);
	return r->action;
}

enum mw_action
mw_eng_helo(struct mw_conn *c, const char *helo, struct mw_reply *r)
{
	struct mw_eval ev;

	switch (replace_string(&c->helo, helo)) {
	case 1: break;
	case 0:
		eng_set_reply(r, MW_REJECT, "501", "5.5.2", "limit:helo",
		    "HELO name too long");
		eng_log_decision(c, MW_LOG_INFO, r, NULL, "helo=(too long)");
		return MW_REJECT;
	default: return mw_engine_failure(c, "out of memory at HELO", r);
	}
	/*
	 * EHLO again after STARTTLS: the helo rules judge the new name, not
	 * the old one plus the new one.
	 */
	mw_fx_clear(&c->fx);
	if (!mw_fx_copy(&c->fx, &c->connect_fx))
		return mw_engine_failure(c, "out of memory at HELO", r);
	eval_setup(c, &ev, NULL);
	return run_rules(c, MW_PH_HELO, &ev, r);
}

/*
 * unbracket -- the address inside one pair of angle brackets (as the MTA
 * hands it over: "<a@example.org>", "<>"), or the text as it is.  False
 * when it does not fit MW_ADDR_MAX: addresses are refused, not cut.
 */
static bool
unbracket(const char *in, char *out, size_t size)
{
	size_t len = strnlen(in, MW_ADDR_MAX + 3);

	if (len >= 2 && in[0] == '<' && in[len - 1] == '>') {
		in++;
		len -= 2;
	}
	if (len > MW_ADDR_MAX || len >= size)
		return false;
	memcpy(out, in, len);
	out[len] = '\0';
	return true;
}

/* esmtp_size -- the SIZE= parameter of MAIL FROM, 0 if absent or bad. */
static unsigned long
esmtp_size(const char *const *args)
{
	for (; args != NULL && *args != NULL; args++) {
		if (strncasecmp(*args, "SIZE=", 5) == 0) {
			const char *s = *args + 5;
			char *end;
			unsigned long v;

			if (!isdigit((unsigned char)*s))
				return 0;
			v = strtoul(s, &end, 10);
			return *end == '\0' ? v : 0;
		}
	}
	return 0;
}

enum mw_action
mw_eng_mail(struct mw_conn *c, const char *sender,
    const char *const *esmtp_args, struct mw_reply *r)
{
	char addr[MW_ADDR_MAX + 1];
	struct mw_eval ev;

	/* A MAIL without end of message or abort before it: start afresh. */
	msg_end(c);
	ops_free(c);
	mw_fx_clear(&c->last_fx);
	c->last_valid = false;
	if ((c->msg = calloc(1, sizeof(*c->msg))) == NULL)
		return mw_engine_failure(c, "out of memory at MAIL FROM", r);
	if (!mw_fx_copy(&c->msg->fx, &c->fx))
		return mw_engine_failure(c, "out of memory at MAIL FROM", r);
	if (!unbracket(sender, addr, sizeof(addr))) {
		eng_set_reply(r, MW_REJECT, "553", "5.1.7", "limit:address",
		    "Sender address too long");
		eng_log_decision(c, MW_LOG_INFO, r, NULL, NULL);
		msg_end(c);
		return MW_REJECT;
	}
	if ((c->msg->from = strdup(addr)) == NULL)
		return mw_engine_failure(c, "out of memory at MAIL FROM", r);
	/* Rules compare the normalised form: domain case, trailing dot. */
	/* Parsed as given, brackets included: "<>" is the null sender. */
	if (mw_addr_parse(sender, &c->msg->from_addr) &&
	    !c->msg->from_addr.null) {
		char canon[MW_ADDR_MAX + 2];

		if (mw_addr_format(&c->msg->from_addr, canon, sizeof(canon)) &&
		    (c->msg->from_canon = strdup(canon)) == NULL)
			return mw_engine_failure(c,
			    "out of memory at MAIL FROM", r);
	}
	c->msg->esmtp_size = esmtp_size(esmtp_args);
	c->local_submission = is_local_submission(c);
	eval_setup(c, &ev, NULL);
	return run_rules(c, MW_PH_MAIL, &ev, r);
}

/*
 * in_message -- the message state for a phase that needs one.  The MTA
 * never sends RCPT or content outside a message; if one arrives anyway it
 * is an internal failure, not a crash.
 */
static struct mw_msg *
in_message(struct mw_conn *c, const char *phase, struct mw_reply *r)
{
	char what[64];

	if (c->msg != NULL)
		return c->msg;
	snprintf(what, sizeof(what), "%s outside a message", phase);
	(void)mw_engine_failure(c, what, r);
	return NULL;
}

enum mw_action
mw_eng_rcpt(struct mw_conn *c, const char *rcpt, struct mw_reply *r)
{
	const struct mw_config *cfg = c->st->cfg;
	char addr[MW_ADDR_MAX + 1], canon[MW_ADDR_MAX + 2];
	struct mw_addr ra;
	struct mw_eval ev;
	struct mw_msg *m;
	char **v;

	if ((m = in_message(c, "RCPT", r)) == NULL)
		return r->action;
	if (!unbracket(rcpt, addr, sizeof(addr))) {
		eng_set_reply(r, MW_REJECT, "553", "5.1.3", "limit:address",
		    "Recipient address too long");
		eng_log_decision(c, MW_LOG_INFO, r, NULL, "rcpt=(too long)");
		return MW_REJECT;
	}
	if (m->nrcpt >= cfg->max_recipients) {
		eng_set_reply(r, MW_TEMPFAIL, "452", "4.5.3",
		    "limit:max_recipients", "Too many recipients");
		eng_log_decision(c, MW_LOG_INFO, r, addr, NULL);
		return MW_TEMPFAIL;
	}
	eval_setup(c, &ev, addr);
	/* The relay decision is made on where it would really go. */
	if (mw_addr_parse(addr, &ra) && !ra.null &&
	    mw_addr_format(&ra, canon, sizeof(canon)))
		ev.rcpt = canon;
	ev.rcpt_addr = &ra;
	if (run_rules(c, MW_PH_RCPT, &ev, r) != MW_CONTINUE &&
	    r->action != MW_ACCEPT) {
		forget_macros(c, rcpt_macros);
		return r->action;
	}
	if ((v = realloc(m->rcpts, (m->nrcpt + 1) * sizeof(*v))) == NULL)
		return mw_engine_failure(c, "out of memory at RCPT", r);
	m->rcpts = v;
	if ((m->rcpts[m->nrcpt] = strdup(addr)) == NULL)
		return mw_engine_failure(c, "out of memory at RCPT", r);
	m->nrcpt++;
	/* Recipient macros describe this recipient only. */
	forget_macros(c, rcpt_macros);
	return r->action;
}

enum mw_action
mw_eng_data(struct mw_conn *c, struct mw_reply *r)
{
	(void)c;
	return eng_cont(r);
}

enum mw_action
mw_eng_header(struct mw_conn *c, const char *name, const char *value,
    struct mw_reply *r)
{
	const struct mw_config *cfg = c->st->cfg;
	/*
	 * "Name:value\r\n" as it stands in the message; the MTA sends the
	 * space after the colon as part of the value only when asked to
	 * (SMFIP_HDR_LEADSPC), so count it when it is not there.
	 */
	unsigned long n = (unsigned long)strlen(name) + strlen(value) + 3 +
	    (value[0] != ' ' && value[0] != '\t');
	struct mw_header *v;
	struct mw_eval ev;
	struct mw_msg *m;

	if ((m = in_message(c, "header", r)) == NULL)
		return r->action;
	m->header_bytes += n;
	if (m->header_bytes > cfg->max_header_bytes) {
		char extra[64];

		snprintf(extra, sizeof(extra), "header_bytes=%lu",
		    m->header_bytes);
		eng_set_reply(r, MW_REJECT, "552", "5.3.4",
		    "limit:max_header_bytes",
		    "Message header size exceeds limit");
		eng_log_decision(c, MW_LOG_INFO, r, NULL, extra);
		return MW_REJECT;
	}
	/* Kept for header conditions and Subject edits (bounded above). */
	if (value[0] == ' ')
		value++;
	v = realloc(m->headers, (m->nheaders + 1) * sizeof(*v));
	if (v == NULL)
		return mw_engine_failure(c, "out of memory at header", r);
	m->headers = v;
	v = &m->headers[m->nheaders];
	if ((v->name = strdup(name)) == NULL ||
	    (v->value = strdup(value)) == NULL) {
		free(v->name);
		return mw_engine_failure(c, "out of memory at header", r);
	}
	m->nheaders++;
	/* Once per header: skip the setup when no rule runs here. */
	if (!mw_rules_has_phase(c->st->rules, MW_PH_HEADER))
		return eng_cont(r);
	eval_setup(c, &ev, NULL);
	ev.header_name = name;
	ev.header_value = value;
	return run_rules(c, MW_PH_HEADER, &ev, r);
}

/*
 * mime_start -- the decoded view of the body for the body and end of
 * message rules: the MIME walker gets the header section now and the body
 * as it comes, up to max_body_scan_bytes.
 */
static bool
mime_start(struct mw_conn *c, struct mw_msg *m)
{
	const struct mw_config *cfg = c->st->cfg;
	struct mw_mime_limits lim = {
		.max_input = cfg->max_body_scan_bytes,
		.max_text = cfg->max_body_scan_bytes,
		.max_parts = 100,
		.max_depth = 10,
		.max_urls = 200,
		.max_attachments = 50,
	};
	size_t i;

	if ((m->mime = mw_mime_new(&lim)) == NULL)
		return false;
	for (i = 0; i < m->nheaders; i++)
		if (!mw_mime_header(m->mime, m->headers[i].name,
			m->headers[i].value))
			return false;
	return true;
}

enum mw_action
mw_eng_eoh(struct mw_conn *c, struct mw_reply *r)
{
	struct mw_eval ev;
	struct mw_msg *m;
	size_t i;

	if ((m = in_message(c, "end of headers", r)) == NULL)
		return r->action;
	/*
	 * The From: header fields, for the sender checks: every mailbox of
	 * every field, so that a second field or a second mailbox cannot hide
	 * behind the first.
	 */
	for (i = 0; i < m->nheaders; i++) {
		struct mw_from one;
		size_t k;

		if (strcasecmp(m->headers[i].name, "From") != 0)
			continue;
		if (m->hfrom == NULL &&
		    (m->hfrom = calloc(1, sizeof(*m->hfrom))) == NULL)
			return mw_engine_failure(c,
			    "out of memory at end of headers", r);
		m->hfrom_headers++;
		(void)mw_from_parse(m->headers[i].value, &one);
		/* RFC 5322: From: is a mailbox list; a group is no author. */
		if (one.malformed || one.group) {
			m->hfrom->malformed = true;
			m->hfrom->why =
			    one.malformed ? one.why : "group in From:";
		}
		for (k = 0; k < one.n; k++) {
			if (m->hfrom->n < MW_FROM_MAX && k < MW_FROM_MAX)
				m->hfrom->box[m->hfrom->n] = one.box[k];
			m->hfrom->n++;
		}
	}
	eval_setup(c, &ev, NULL);
	if (run_rules(c, MW_PH_EOH, &ev, r) != MW_CONTINUE)
		return r->action;
	if (mw_rules_uses_mime(c->st->rules) && !m->accepted && !c->accepted &&
	    !mime_start(c, m))
		return mw_engine_failure(c, "out of memory at end of headers",
		    r);
	if (!eng_dkim_active(c) ||
	    (m->accepted && mw_dkim_nkeys(c->st->dkim) == 0))
		return r->action;
	return eng_dkim_start(c, m, &ev, r);
}

enum mw_action
mw_eng_body(struct mw_conn *c, const unsigned char *chunk, size_t len,
    struct mw_reply *r)
{
	unsigned long limit = c->st->cfg->max_body_scan_bytes;
	unsigned long take;
	struct mw_msg *m;

	if ((m = in_message(c, "body", r)) == NULL)
		return r->action;
	if (m->dkim != NULL && !mw_dkim_body(m->dkim, chunk, len))
		return eng_dkim_key_error(c, mw_dkim_error(m->dkim), r);
	m->body_bytes += len;
	take = limit - m->body_scanned;
	if (take > len)
		take = len;
	/*
	 * The inspected part is kept whole (bounded by the limit) so that
	 * body rules see a match across the MTA's chunk boundaries.
	 */
	if (take > 0 &&
	    (mw_rules_has_phase(c->st->rules, MW_PH_BODY) ||
		mw_rules_has_phase(c->st->rules, MW_PH_EOM))) {
		/*
		 * PCRE2's JIT reads ahead with wide loads; zeroed padding keeps
		 * those reads inside the allocation.
		 */
		unsigned char *nb =
		    realloc(m->body, m->body_scanned + take + BODY_PAD);

		if (nb == NULL)
			return mw_engine_failure(c, "out of memory at body", r);
		m->body = nb;
		memcpy(m->body + m->body_scanned, chunk, take);
		memset(m->body + m->body_scanned + take, 0, BODY_PAD);
	}
	if (take > 0 && m->mime != NULL && !mw_mime_body(m->mime, chunk, take))
		return mw_engine_failure(c, "out of memory at body", r);
	m->body_scanned += take;
	/* Nothing more to inspect: tell the MTA it may skip the rest. */
	if (m->body_scanned >= limit &&
	    (m->dkim == NULL || !mw_dkim_wants_body(m->dkim))) {
		m->body_skipped = true;
		memset(r, 0, sizeof(*r));
		r->action = MW_SKIP;
		return MW_SKIP;
	}
	return eng_cont(r);
}

bool
eng_op_add(struct mw_conn *c, enum mw_op_kind kind, const char *name,
    const char *value, unsigned index)
{
	struct mw_op *v = realloc(c->ops, (c->nops + 1) * sizeof(*v));

	if (v == NULL)
		return false;
	c->ops = v;
	v = &c->ops[c->nops];
	memset(v, 0, sizeof(*v));
	v->kind = kind;
	v->index = index;
	if ((name != NULL && (v->name = strdup(name)) == NULL) ||
	    (value != NULL && (v->value = strdup(value)) == NULL)) {
		free(v->name);
		return false;
	}
	c->nops++;
	return true;
}

/* header_count -- instances of name in the message as received. */
unsigned
eng_header_count(const struct mw_msg *m, const char *name)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < m->nheaders; i++)
		n += strcasecmp(m->headers[i].name, name) == 0;
	return n;
}

static const char *
header_first(const struct mw_msg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nheaders; i++)
		if (strcasecmp(m->headers[i].name, name) == 0)
			return m->headers[i].value;
	return NULL;
}

static bool
is_subject_change(const struct mw_edit *e)
{
	return e->kind == MW_EDIT_CHANGE && strcasecmp(e->name, "Subject") == 0;
}

/*
 * plan_ops -- turn the message's effects into MTA operations.  Header
 * deletions go from the highest index down, so that each index still
 * names the header it was computed for (OpenDKIM's CVE-2022-48521 got
 * this wrong).
 */
static bool
plan_ops(struct mw_conn *c)
{
	const struct mw_msg *m = c->msg;
	const struct mw_fx *fx = &m->fx;
	size_t i;

	for (i = 0; i < fx->nedits; i++) {
		const struct mw_edit *e = &fx->edits[i];
		unsigned k;
		bool ok = true;

		switch (e->kind) {
		case MW_EDIT_ADD:
			ok = eng_op_add(c, MW_OP_ADD_HEADER, e->name, e->value,
			    0);
			break;
		case MW_EDIT_INSERT:
			ok = eng_op_add(c, MW_OP_INSERT_HEADER, e->name,
			    e->value, 0);
			break;
		case MW_EDIT_CHANGE:
			/* With a prefix, the Subject op below carries it. */
			if (fx->subject_prefix != NULL && is_subject_change(e))
				break;
			ok = eng_header_count(m, e->name) > 0
			    ? eng_op_add(c, MW_OP_CHANGE_HEADER, e->name,
				  e->value, 1)
			    : eng_op_add(c, MW_OP_ADD_HEADER, e->name, e->value,
				  0);
			break;
		case MW_EDIT_DELETE:
			for (k = eng_header_count(m, e->name); ok && k > 0; k--)
				ok = eng_op_add(c, MW_OP_CHANGE_HEADER, e->name,
				    NULL, k);
			break;
		/* A redirect replaces every recipient, added ones too. */
		case MW_EDIT_ADD_RCPT:
			if (fx->redirect == NULL)
				ok = eng_op_add(c, MW_OP_ADD_RCPT, e->name,
				    NULL, 0);
			break;
		case MW_EDIT_DELETE_RCPT:
			if (fx->redirect == NULL)
				ok = eng_op_add(c, MW_OP_DELETE_RCPT, e->name,
				    NULL, 0);
			break;
		}
		if (!ok)
			return false;
	}
	if (fx->subject_prefix != NULL) {
		const char *orig = header_first(m, "Subject"), *base = orig;
		char *subj;
		bool ok;

		/* The prefix goes on the Subject as rules left it. */
		for (i = 0; i < fx->nedits; i++)
			if (is_subject_change(&fx->edits[i]))
				base = fx->edits[i].value;
		if (asprintf(&subj, "%s%s", fx->subject_prefix,
			base != NULL ? base : "") < 0)
			return false;
		ok = orig != NULL
		    ? eng_op_add(c, MW_OP_CHANGE_HEADER, "Subject", subj, 1)
		    : eng_op_add(c, MW_OP_ADD_HEADER, "Subject", subj, 0);
		free(subj);
		if (!ok)
			return false;
	}
	if (fx->redirect != NULL) {
		for (i = 0; i < m->nrcpt; i++)
			if (!eng_op_add(c, MW_OP_DELETE_RCPT, m->rcpts[i], NULL,
				0))
				return false;
		if (!eng_op_add(c, MW_OP_ADD_RCPT, fx->redirect, NULL, 0))
			return false;
	}
	if (fx->quarantine != NULL &&
	    !eng_op_add(c, MW_OP_QUARANTINE, NULL, fx->quarantine, 0))
		return false;
	return true;
}

enum mw_action
mw_eng_eom(struct mw_conn *c, struct mw_reply *r)
{
	char extra[1024], dkimlog[400];
	const char *domains[MW_DKIM_MAX_SIGS];
	struct mw_eval ev;
	struct mw_msg *m;

	if ((m = in_message(c, "end of message", r)) == NULL)
		return r->action;
	ops_free(c);
	eval_setup(c, &ev, NULL);
	if (m->mime != NULL) {
		mw_mime_end(m->mime);
		ev.mime = m->mime;
	}
	ev.body_truncated = m->body_scanned < m->body_bytes || m->body_skipped;
	/* Verification first: body and end-of-message rules see it. */
	eng_dkim_verified(c, m, &ev, domains);
	/* Body rules run once, on the whole inspected body. */
	if (run_rules(c, MW_PH_BODY, &ev, r) == MW_CONTINUE) {
		ev.size = m->header_bytes + m->body_bytes;
		(void)run_rules(c, MW_PH_EOM, &ev, r);
	}
	if (r->action != MW_CONTINUE && r->action != MW_ACCEPT) {
		/* Already logged by run_rules; edits are dropped. */
		c->nmsgs++;
		msg_end(c);
		forget_macros(c, message_macros);
		return r->action;
	}
	/*
	 * Accepted because evaluation failed (on_internal_error = accept):
	 * the message passes as it came, not half-judged.
	 */
	if (r->rule != NULL && strcmp(r->rule, "on_internal_error") == 0) {
		c->nmsgs++;
		msg_end(c);
		forget_macros(c, message_macros);
		return MW_ACCEPT;
	}
	if (!plan_ops(c)) {
		ops_free(c);
		return mw_engine_failure(c, "out of memory at end of message",
		    r);
	}
	{
		const char *rule = r->rule;

		if (eng_dkim_finish(c, m, dkimlog, sizeof(dkimlog), r) !=
		    MW_CONTINUE) {
			ops_free(c);
			c->nmsgs++;
			msg_end(c);
			forget_macros(c, message_macros);
			return r->action;
		}
		r->rule = rule;
	}
	/*
	 * Once the MTA skips the rest of the body the full size is unknown
	 * here: say what was inspected, and whether that was all of it.
	 */
	snprintf(extra, sizeof(extra),
	    "header_bytes=%lu body_inspected=%lu%s%s%s", m->header_bytes,
	    m->body_scanned,
	    m->body_scanned < m->body_bytes || m->body_skipped
		? " body=limit-reached"
		: "",
	    dkimlog, c->nops > 0 ? " modified=yes" : "");
	if (m->fx.quarantine != NULL) {
		/* Postfix logs only "milter triggers HOLD action": say why. */
		char q[300];
		size_t len = strlen(extra);

		(void)mw_printable(q, sizeof(q), m->fx.quarantine,
		    strlen(m->fx.quarantine));
		snprintf(extra + len, sizeof(extra) - len, " quarantine=\"%s\"",
		    q);
	}
	eng_set_reply(r, MW_ACCEPT, "", "", r->rule, "%s", "");
	eng_log_decision(c, MW_LOG_INFO, r, NULL, extra);
	/* Delivered after greylisting: its network skips it for a while. */
	if (m->greylist_passed && c->st->store != NULL) {
		char err[300];

		if (mw_store_greylist_delivered(c->st->store, m->greylist_net,
			engine_clock(),
			c->st->cfg->greylist_auto_allow * 1000000ULL, err,
			sizeof(err)) == MW_STORE_ERROR)
			mw_warn("%s: state store failed: %s (greylist "
				"auto-allow not recorded)",
			    mw_conn_macro(c, "i") ? mw_conn_macro(c, "i")
						  : "NOQUEUE",
			    err);
	}
	c->nmsgs++;
	msg_end(c);
	forget_macros(c, message_macros);
	return MW_ACCEPT;
}

enum mw_action
mw_eng_unknown(struct mw_conn *c, const char *cmd, struct mw_reply *r)
{
	char p[64];

	(void)mw_printable(p, sizeof(p), cmd, strlen(cmd));
	mw_debug("NOQUEUE: unknown command \"%s\" from %s session=%lx", p,
	    c->client_addr ? c->client_addr : "", c->id);
	return eng_cont(r);
}

void
mw_eng_abort(struct mw_conn *c)
{
	if (c->msg != NULL)
		c->nmsgs++;
	msg_end(c);
	forget_macros(c, message_macros);
}
