/*
 * engine.c -- the policy engine: per-connection and per-message state, the
 * limits of the configuration, and one log line per decision.
 *
 * Nothing here knows about libmilter.  The glue (glue.c) calls one mw_eng_*
 * function per SMTP phase and maps the returned action to SMFIS_*.
 */
#include "config.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_engine.h"
#include "mw_log.h"
#include "mw_text.h"

struct macro {
	char name[32];
	char *value;
};

/* Message state: from MAIL FROM to end of message or abort. */
struct mw_msg {
	char *from;          /* without angle brackets */
	unsigned long nrcpt; /* recipients accepted */
	unsigned long header_bytes;
	unsigned long body_bytes;
	unsigned long body_scanned;
	bool body_skipped; /* the MTA was told to skip the rest */
};

/* Connection state: from connect to close, across messages. */
struct mw_conn {
	struct mw_state *st; /* reference held until free */
	unsigned long id;    /* ties NOQUEUE lines of one session together */
	char *client_name;   /* as the MTA resolved it */
	char *client_addr;
	char *helo;
	struct macro macros[MW_MACROS];
	size_t nmacros;
	unsigned long nmsgs; /* messages completed or aborted */
	struct mw_msg *msg;  /* NULL outside a message */
};

/* Both end of message and abort come here, as may a repeated MAIL. */
static void
msg_end(struct mw_conn *c)
{
	if (c->msg == NULL)
		return;
	free(c->msg->from);
	free(c->msg);
	c->msg = NULL;
}

struct mw_conn *
mw_conn_new(struct mw_state *st)
{
	struct mw_conn *c;

	assert(st != NULL);
	static atomic_ulong next_id;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->st = mw_state_ref(st);
	c->id = atomic_fetch_add(&next_id, 1) + 1;
	return c;
}

void
mw_conn_free(struct mw_conn *c)
{
	size_t i;

	if (c == NULL)
		return;
	msg_end(c);
	for (i = 0; i < c->nmacros; i++)
		free(c->macros[i].value);
	free(c->client_name);
	free(c->client_addr);
	free(c->helo);
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
	char name[300], addr[100], both[420];

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

/*
 * log_decision -- the one line a decision gets.  rcpt is the recipient the
 * decision is about, or NULL for the whole message.
 */
static void
log_decision(const struct mw_conn *c, enum mw_log_level level,
    const struct mw_reply *r, const char *rcpt, const char *extra)
{
	const char *qid = mw_conn_macro(c, "i");
	struct logline ll = { .len = 0 };
	char n[32];

	ll_raw(&ll, qid != NULL && *qid != '\0' ? "" : "NOQUEUE");
	if (qid != NULL && *qid != '\0') {
		char pq[64];

		(void)mw_printable(pq, sizeof(pq), qid, strlen(qid));
		ll_raw(&ll, pq);
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
	ll_field(&ll, "action", action_names[r->action], "", "");
	if (r->code[0] != '\0') {
		ll_field(&ll, "code", r->code, "", "");
		ll_field(&ll, "dsn", r->dsn, "", "");
	}
	ll_field(&ll, "rule", r->rule, "", "");
	if (r->text[0] != '\0')
		ll_field(&ll, "reason", r->text, "\"", "\"");
	mw_log(level, "%s", ll.buf);
}

/*
 * set_reply -- fill r.  The text is made safe for an SMTP reply and for
 * smfi_setreply: control characters become '?', and '%' is doubled because
 * libmilter treats the text as a format.
 */
static enum mw_action set_reply(struct mw_reply *r, enum mw_action action,
    const char *code, const char *dsn, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static enum mw_action
set_reply(struct mw_reply *r, enum mw_action action, const char *code,
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

static enum mw_action
cont(struct mw_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->action = MW_CONTINUE;
	return MW_CONTINUE;
}

enum mw_action
mw_engine_failure(struct mw_conn *c, const char *what, struct mw_reply *r)
{
	char extra[300], pw[200];

	(void)mw_printable(pw, sizeof(pw), what, strlen(what));
	snprintf(extra, sizeof(extra), "error=\"%s\"", pw);
	if (c != NULL && c->st->cfg->on_internal_error == MW_ON_ERROR_ACCEPT) {
		set_reply(r, MW_ACCEPT, "", "", "on_internal_error", "%s", "");
		log_decision(c, MW_LOG_WARNING, r, NULL, extra);
		return MW_ACCEPT;
	}
	set_reply(r, MW_TEMPFAIL, "451", "4.3.0", "on_internal_error",
	    "Internal error in the mail filter, please try again later");
	if (c != NULL)
		log_decision(c, MW_LOG_ERROR, r, NULL, extra);
	else
		mw_error("NOQUEUE: action=tempfail code=451 dsn=4.3.0 "
			 "rule=on_internal_error %s",
		    extra);
	return MW_TEMPFAIL;
}

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
	/* The MTA's own data: too long is as much a failure as no memory. */
	if (replace_string(&c->client_name, hostname) != 1 ||
	    replace_string(&c->client_addr, addr) != 1)
		return mw_engine_failure(c,
		    "client name or address too long, or out of memory", r);
	mw_debug("NOQUEUE: connect from %s[%s]",
	    hostname ? hostname : "unknown", addr ? addr : "");
	return cont(r);
}

enum mw_action
mw_eng_helo(struct mw_conn *c, const char *helo, struct mw_reply *r)
{
	switch (replace_string(&c->helo, helo)) {
	case 1:
		return cont(r);
	case 0:
		set_reply(r, MW_REJECT, "501", "5.5.2", "limit:helo",
		    "HELO name too long");
		log_decision(c, MW_LOG_INFO, r, NULL, "helo=(too long)");
		return MW_REJECT;
	default:
		return mw_engine_failure(c, "out of memory at HELO", r);
	}
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

enum mw_action
mw_eng_mail(struct mw_conn *c, const char *sender, struct mw_reply *r)
{
	char addr[MW_ADDR_MAX + 1];

	/* A MAIL without end of message or abort before it: start afresh. */
	msg_end(c);
	if ((c->msg = calloc(1, sizeof(*c->msg))) == NULL)
		return mw_engine_failure(c, "out of memory at MAIL FROM", r);
	if (!unbracket(sender, addr, sizeof(addr))) {
		set_reply(r, MW_REJECT, "553", "5.1.7", "limit:address",
		    "Sender address too long");
		log_decision(c, MW_LOG_INFO, r, NULL, NULL);
		msg_end(c);
		return MW_REJECT;
	}
	if ((c->msg->from = strdup(addr)) == NULL)
		return mw_engine_failure(c, "out of memory at MAIL FROM", r);
	return cont(r);
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
	char addr[MW_ADDR_MAX + 1];
	struct mw_msg *m;

	if ((m = in_message(c, "RCPT", r)) == NULL)
		return r->action;
	if (!unbracket(rcpt, addr, sizeof(addr))) {
		set_reply(r, MW_REJECT, "553", "5.1.3", "limit:address",
		    "Recipient address too long");
		log_decision(c, MW_LOG_INFO, r, NULL, "rcpt=(too long)");
		return MW_REJECT;
	}
	if (m->nrcpt >= cfg->max_recipients) {
		set_reply(r, MW_TEMPFAIL, "452", "4.5.3",
		    "limit:max_recipients", "Too many recipients");
		log_decision(c, MW_LOG_INFO, r, addr, NULL);
		return MW_TEMPFAIL;
	}
	m->nrcpt++;
	return cont(r);
}

enum mw_action
mw_eng_data(struct mw_conn *c, struct mw_reply *r)
{
	(void)c;
	return cont(r);
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
	struct mw_msg *m;

	if ((m = in_message(c, "header", r)) == NULL)
		return r->action;
	m->header_bytes += n;
	if (m->header_bytes > cfg->max_header_bytes) {
		char extra[64];

		snprintf(extra, sizeof(extra), "header_bytes=%lu",
		    m->header_bytes);
		set_reply(r, MW_REJECT, "552", "5.3.4",
		    "limit:max_header_bytes",
		    "Message header size exceeds limit");
		log_decision(c, MW_LOG_INFO, r, NULL, extra);
		return MW_REJECT;
	}
	return cont(r);
}

enum mw_action
mw_eng_eoh(struct mw_conn *c, struct mw_reply *r)
{
	(void)c;
	return cont(r);
}

enum mw_action
mw_eng_body(struct mw_conn *c, const unsigned char *chunk, size_t len,
    struct mw_reply *r)
{
	unsigned long limit = c->st->cfg->max_body_scan_bytes;
	unsigned long take;
	struct mw_msg *m;

	(void)chunk;
	if ((m = in_message(c, "body", r)) == NULL)
		return r->action;
	m->body_bytes += len;
	take = limit - m->body_scanned;
	if (take > len)
		take = len;
	m->body_scanned += take;
	/* Nothing more to inspect: tell the MTA it may skip the rest. */
	if (m->body_scanned >= limit) {
		m->body_skipped = true;
		memset(r, 0, sizeof(*r));
		r->action = MW_SKIP;
		return MW_SKIP;
	}
	return cont(r);
}

enum mw_action
mw_eng_eom(struct mw_conn *c, struct mw_reply *r)
{
	char extra[96];
	struct mw_msg *m;

	if ((m = in_message(c, "end of message", r)) == NULL)
		return r->action;
	/*
	 * Once the MTA skips the rest of the body the full size is unknown
	 * here: say what was inspected, and whether that was all of it.
	 */
	snprintf(extra, sizeof(extra), "header_bytes=%lu body_inspected=%lu%s",
	    m->header_bytes, m->body_scanned,
	    m->body_scanned < m->body_bytes || m->body_skipped ?
		" body=limit-reached" :
		"");
	set_reply(r, MW_ACCEPT, "", "", NULL, "%s", "");
	log_decision(c, MW_LOG_INFO, r, NULL, extra);
	c->nmsgs++;
	msg_end(c);
	return MW_ACCEPT;
}

enum mw_action
mw_eng_unknown(struct mw_conn *c, const char *cmd, struct mw_reply *r)
{
	char p[64];

	(void)mw_printable(p, sizeof(p), cmd, strlen(cmd));
	mw_debug("NOQUEUE: unknown command \"%s\" from %s", p,
	    c->client_addr ? c->client_addr : "");
	return cont(r);
}

void
mw_eng_abort(struct mw_conn *c)
{
	if (c->msg != NULL)
		c->nmsgs++;
	msg_end(c);
}
