/*
 * explain.c -- "milter-warden test": run the engine on a described SMTP
 * session and message, with no MTA, and show phase by phase what matched,
 * what each recipient would be told, what would change in the message and
 * the final outcome (as text or as one JSON document).
 *
 * It drives the same mw_eng_* functions as the milter glue, in the order
 * Postfix calls them, so what it shows is what the daemon would do.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_engine.h"
#include "mw_explain.h"
#include "mw_log.h"
#include "mw_text.h"
#include "mw_rules.h"
#include "mw_state.h"

#define MSG_FILE_MAX (64L * 1024 * 1024)
#define MAX_RCPTS    10000
#define MAX_MACROS   32

enum outcome {
	OUT_ACCEPTED = 0,
	OUT_ERROR = 1,
	OUT_REJECTED = 2,
	OUT_TEMPFAILED = 3,
	OUT_DISCARDED = 4,
	OUT_QUARANTINED = 5
};

struct hit {
	size_t step; /* the step (engine call) it happened in */
	enum mw_phase phase;
	char *id, *file, *actions;
	unsigned line;
	bool report_only;
	double score_delta;
};

struct step {
	const char *what; /* "connect", "rcpt" ... */
	char *arg;        /* the recipient, the header name */
	struct mw_reply r;
};

struct explain {
	struct hit *hits;
	size_t nhits;
	struct step *steps;
	size_t nsteps;
	enum mw_phase phase;
	bool failed_alloc;
};

static void
on_hit(void *arg, const struct mw_rule_hit *h)
{
	struct explain *x = arg;
	struct hit *v = realloc(x->hits, (x->nhits + 1) * sizeof(*v));

	if (v == NULL) {
		x->failed_alloc = true;
		return;
	}
	x->hits = v;
	v = &x->hits[x->nhits++];
	v->step = x->nsteps;
	v->phase = h->phase;
	v->id = strdup(h->id);
	v->file = strdup(h->file);
	v->actions = strdup(h->actions ? h->actions : "");
	v->line = h->line;
	v->report_only = h->report_only;
	v->score_delta = h->score_delta;
	if (v->id == NULL || v->file == NULL || v->actions == NULL)
		x->failed_alloc = true;
}

static void
add_step(struct explain *x, const char *what, const char *arg,
    const struct mw_reply *r)
{
	struct step *v = realloc(x->steps, (x->nsteps + 1) * sizeof(*v));

	if (v == NULL) {
		x->failed_alloc = true;
		return;
	}
	x->steps = v;
	v = &x->steps[x->nsteps++];
	v->what = what;
	v->arg = arg != NULL ? strdup(arg) : NULL;
	v->r = *r;
}

static void
explain_free(struct explain *x)
{
	size_t i;

	for (i = 0; i < x->nhits; i++) {
		free(x->hits[i].id);
		free(x->hits[i].file);
		free(x->hits[i].actions);
	}
	free(x->hits);
	for (i = 0; i < x->nsteps; i++)
		free(x->steps[i].arg);
	free(x->steps);
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: milter-warden test [-c CONF] [--client-ip IP] "
	    "[--client-name NAME]\n"
	    "           [--helo NAME] [--from ADDR] --rcpt ADDR [--rcpt "
	    "ADDR]...\n"
	    "           [--auth USER] [--auth-mech MECH] [--tls VERSION] "
	    "[--daemon NAME]\n"
	    "           [--macro NAME=VALUE]... [--json] [MESSAGE-FILE]\n"
	    "exit status: 0 accepted, 2 rejected, 3 temporarily failed, 4 "
	    "discarded,\n"
	    "             5 quarantined, 1 usage or configuration error\n");
}

/* utf8_len -- length of a valid UTF-8 sequence at s, 0 if invalid. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned long cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* No overlong forms, no surrogates, nothing past U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/*
 * json_str -- a JSON string: UTF-8 passes through, control characters
 * are escaped, and a byte that is not valid UTF-8 becomes U+FFFD (mail
 * text is not always UTF-8; the JSON must stay valid).
 */
static void
json_str(FILE *fp, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', fp);
	while (p != NULL && *p != '\0') {
		size_t n = utf8_len(p);

		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(fp, "\\u%04x", *p);
		else if (n == 0)
			fputs("\\ufffd", fp);
		else
			fwrite(p, 1, n, fp);
		p += n == 0 ? 1 : n;
	}
	fputc('"', fp);
}

static const char *const action_words[] = { "continue", "accept", "reject",
	"tempfail", "discard", "skip", "error" };

/*
 * The reply text as the SMTP client would read it: the engine doubled
 * '%' for libmilter.
 */
static void
smtp_text(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (; *in != '\0' && o + 1 < size; in++) {
		out[o++] = *in;
		if (in[0] == '%' && in[1] == '%')
			in++;
	}
	out[o] = '\0';
}

/*
 * read_message -- headers (unfolded into name/value, continuation lines
 * kept with their line break as the MTA passes them) and the body with
 * CRLF line ends, as the MTA hands them to a milter.
 */
struct message {
	char **names, **values;
	size_t nheaders;
	char *body;
	size_t body_len;
};

static void
message_free(struct message *m)
{
	size_t i;

	for (i = 0; i < m->nheaders; i++) {
		free(m->names[i]);
		free(m->values[i]);
	}
	free(m->names);
	free(m->values);
	free(m->body);
}

static bool
read_message(const char *path, struct message *m)
{
	char *buf = NULL, *p, *end;
	size_t len = 0, cap = 0, n;
	FILE *fp;

	memset(m, 0, sizeof(*m));
	if ((fp = mw_fopen_regular(path)) == NULL) {
		fprintf(stderr, "milter-warden test: %s: %s\n", path,
		    mw_open_error(errno));
		return false;
	}
	for (;;) {
		if (len + 65536 > cap) {
			char *nb;

			if (cap > (size_t)MSG_FILE_MAX) {
				fprintf(stderr,
				    "milter-warden test: %s: "
				    "larger than %ld bytes\n",
				    path, MSG_FILE_MAX);
				free(buf);
				fclose(fp);
				return false;
			}
			cap = cap ? cap * 2 : 131072;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				free(buf);
				fclose(fp);
				return false;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0)
			break;
	}
	fclose(fp);
	buf[len] = '\0';
	p = buf;
	end = buf + len;
	/* Headers up to the first empty line. */
	while (p < end && *p != '\n' && !(p[0] == '\r' && p[1] == '\n')) {
		char *line_end = memchr(p, '\n', (size_t)(end - p));
		char *colon, *name, *value, **nv;
		size_t vlen;

		if (line_end == NULL)
			line_end = end;
		/* Continuation lines belong to the header. */
		while (line_end + 1 < end &&
		    (line_end[1] == ' ' || line_end[1] == '\t')) {
			char *next = memchr(line_end + 1, '\n',
			    (size_t)(end - line_end - 1));

			line_end = next != NULL ? next : end;
		}
		colon = memchr(p, ':', (size_t)(line_end - p));
		if (colon == NULL) {
			fprintf(stderr,
			    "milter-warden test: %s: header line "
			    "without a colon: the message must "
			    "start with headers\n",
			    path);
			free(buf);
			message_free(m);
			return false;
		}
		name = strndup(p, (size_t)(colon - p));
		value = colon + 1;
		if (*value == ' ')
			value++;
		vlen = (size_t)(line_end - value);
		if (vlen > 0 && value[vlen - 1] == '\r')
			vlen--;
		value = strndup(value, vlen);
		nv = realloc(m->names, (m->nheaders + 1) * sizeof(*nv));
		if (nv != NULL)
			m->names = nv;
		nv = realloc(m->values, (m->nheaders + 1) * sizeof(*nv));
		if (nv != NULL)
			m->values = nv;
		if (name == NULL || value == NULL || m->names == NULL ||
		    m->values == NULL) {
			free(name);
			free(value);
			free(buf);
			message_free(m);
			return false;
		}
		m->names[m->nheaders] = name;
		m->values[m->nheaders] = value;
		m->nheaders++;
		p = line_end < end ? line_end + 1 : end;
	}
	if (p < end)
		p += *p == '\r' ? 2 : 1;
	/* The body with CRLF line ends. */
	if ((m->body = malloc((size_t)(end - p) * 2 + 1)) == NULL) {
		free(buf);
		message_free(m);
		return false;
	}
	for (; p < end; p++) {
		if (*p == '\n' &&
		    (m->body_len == 0 || m->body[m->body_len - 1] != '\r'))
			m->body[m->body_len++] = '\r';
		m->body[m->body_len++] = *p;
	}
	free(buf);
	return true;
}

static const char *
op_name(enum mw_op_kind k)
{
	static const char *const n[] = { "add-header", "insert-header",
		"change-header", "add-rcpt", "delete-rcpt", "quarantine" };

	return n[k];
}

static void
print_text(struct explain *x, const struct mw_conn *c, enum outcome out,
    unsigned accepted, unsigned nrcpt)
{
	static const char *const outcome_words[] = { "accepted", "error",
		"rejected", "temporarily failed", "discarded", "quarantined" };
	const struct mw_fx *fx = mw_conn_fx(c);
	const struct mw_op *ops;
	size_t i, j, n;

	for (i = 0; i < x->nsteps; i++) {
		const struct step *s = &x->steps[i];
		char text[600];

		printf("%-8s %s", s->what, s->arg ? s->arg : "");
		if (s->r.action != MW_CONTINUE) {
			smtp_text(s->r.text, text, sizeof(text));
			printf("  -> %s", action_words[s->r.action]);
			if (s->r.code[0])
				printf(" %s %s %s", s->r.code, s->r.dsn, text);
			if (s->r.rule)
				printf("  [rule %s]", s->r.rule);
		}
		printf("\n");
		for (j = 0; j < x->nhits; j++) {
			const struct hit *h = &x->hits[j];

			if (h->step == i)
				printf("         matched %s (%s:%u)%s: %s\n",
				    h->id, h->file, h->line,
				    h->report_only ? " report-only" : "",
				    h->actions);
		}
	}
	ops = mw_conn_ops(c, &n);
	if (n > 0)
		printf("changes:\n");
	for (i = 0; i < n; i++) {
		printf("  %s", op_name(ops[i].kind));
		if (ops[i].kind == MW_OP_CHANGE_HEADER)
			printf(" %s[%u]: %s", ops[i].name, ops[i].index,
			    ops[i].value ? ops[i].value : "(deleted)");
		else if (ops[i].name != NULL && ops[i].value != NULL)
			printf(" %s: %s", ops[i].name, ops[i].value);
		else
			printf(" %s", ops[i].name ? ops[i].name : ops[i].value);
		printf("\n");
	}
	printf("score %g", fx->score);
	for (i = 0; i < fx->nlabels; i++)
		printf("%s%s", i ? "," : " (", fx->labels[i]);
	printf("%s\n", fx->nlabels ? ")" : "");
	printf("outcome: %s (%u of %u recipients accepted), exit %d\n",
	    outcome_words[out], accepted, nrcpt, (int)out);
}

static void
print_json(struct explain *x, const struct mw_conn *c, enum outcome out,
    unsigned accepted, unsigned nrcpt)
{
	static const char *const outcome_words[] = { "accepted", "error",
		"rejected", "tempfailed", "discarded", "quarantined" };
	const struct mw_fx *fx = mw_conn_fx(c);
	const struct mw_op *ops;
	size_t i, n;

	printf("{\n  \"steps\": [");
	for (i = 0; i < x->nsteps; i++) {
		const struct step *s = &x->steps[i];
		char text[600];

		smtp_text(s->r.text, text, sizeof(text));
		printf("%s\n    {\"phase\": ", i ? "," : "");
		json_str(stdout, s->what);
		if (s->arg != NULL) {
			printf(", \"arg\": ");
			json_str(stdout, s->arg);
		}
		printf(", \"action\": ");
		json_str(stdout, action_words[s->r.action]);
		if (s->r.code[0]) {
			printf(", \"code\": ");
			json_str(stdout, s->r.code);
			printf(", \"dsn\": ");
			json_str(stdout, s->r.dsn);
			printf(", \"text\": ");
			json_str(stdout, text);
		}
		if (s->r.rule != NULL) {
			printf(", \"rule\": ");
			json_str(stdout, s->r.rule);
		}
		printf("}");
	}
	printf("\n  ],\n  \"matched\": [");
	for (i = 0; i < x->nhits; i++) {
		const struct hit *h = &x->hits[i];

		printf("%s\n    {\"phase\": ", i ? "," : "");
		json_str(stdout, mw_phase_name(h->phase));
		printf(", \"rule\": ");
		json_str(stdout, h->id);
		printf(", \"file\": ");
		json_str(stdout, h->file);
		printf(", \"line\": %u, \"report_only\": %s, \"actions\": ",
		    h->line, h->report_only ? "true" : "false");
		json_str(stdout, h->actions);
		printf(", \"score\": %g}", h->score_delta);
	}
	printf("\n  ],\n  \"changes\": [");
	ops = mw_conn_ops(c, &n);
	for (i = 0; i < n; i++) {
		printf("%s\n    {\"op\": ", i ? "," : "");
		json_str(stdout, op_name(ops[i].kind));
		if (ops[i].name != NULL) {
			printf(", \"name\": ");
			json_str(stdout, ops[i].name);
		}
		if (ops[i].kind == MW_OP_CHANGE_HEADER)
			printf(", \"index\": %u", ops[i].index);
		if (ops[i].value != NULL ||
		    ops[i].kind == MW_OP_CHANGE_HEADER) {
			printf(", \"value\": ");
			if (ops[i].value != NULL)
				json_str(stdout, ops[i].value);
			else
				printf("null");
		}
		printf("}");
	}
	printf("\n  ],\n  \"score\": %g,\n  \"labels\": [", fx->score);
	for (i = 0; i < fx->nlabels; i++) {
		printf("%s", i ? ", " : "");
		json_str(stdout, fx->labels[i]);
	}
	printf("],\n  \"recipients_accepted\": %u,\n  \"recipients\": %u,\n",
	    accepted, nrcpt);
	printf("  \"outcome\": ");
	json_str(stdout, outcome_words[out]);
	printf(",\n  \"exit\": %d\n}\n", (int)out);
}

static enum outcome
outcome_of(enum mw_action a)
{
	switch (a) {
	case MW_REJECT: return OUT_REJECTED;
	case MW_TEMPFAIL: return OUT_TEMPFAILED;
	case MW_DISCARD: return OUT_DISCARDED;
	default: return OUT_ACCEPTED;
	}
}

int
mw_explain_main(int argc, char **argv, const char *default_conf)
{
	static const struct option longopts[] = {
		{ "client-ip", required_argument, NULL, 'i' },
		{ "client-name", required_argument, NULL, 'n' },
		{ "helo", required_argument, NULL, 'H' },
		{ "from", required_argument, NULL, 'f' },
		{ "rcpt", required_argument, NULL, 'r' },
		{ "auth", required_argument, NULL, 'a' },
		{ "auth-mech", required_argument, NULL, 'm' },
		{ "tls", required_argument, NULL, 't' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "macro", required_argument, NULL, 'M' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* Only the policy matters offline: not who would run it. */
	const char *overrides[] = { "user", "", "group", "", "socket_group", "",
		"pidfile", "", NULL };
	const char *conf = default_conf, *client_ip = "127.0.0.1";
	const char *client_name = "localhost", *helo = "localhost";
	const char *from = "", *auth = NULL, *mech = "PLAIN", *tls = NULL;
	const char *daemon = NULL, *rcpts[MAX_RCPTS], *macros[MAX_MACROS];
	size_t nrcpts = 0, nmacros = 0, i;
	bool json = false, stop = false;
	struct message msg = { 0 };
	struct explain x = { 0 };
	struct mw_state *st;
	struct mw_conn *c;
	struct mw_diag diag;
	struct mw_reply r;
	enum outcome out = OUT_ACCEPTED;
	unsigned accepted = 0, tempfailed = 0;
	char from_b[1100];
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': conf = optarg; break;
		case 'i': client_ip = optarg; break;
		case 'n': client_name = optarg; break;
		case 'H': helo = optarg; break;
		case 'f': from = optarg; break;
		case 'a': auth = optarg; break;
		case 'm': mech = optarg; break;
		case 't': tls = optarg; break;
		case 'd': daemon = optarg; break;
		case 'j': json = true; break;
		case 'r':
			if (nrcpts == MAX_RCPTS) {
				fprintf(stderr,
				    "milter-warden test: more than "
				    "%d recipients\n",
				    MAX_RCPTS);
				return OUT_ERROR;
			}
			rcpts[nrcpts++] = optarg;
			break;
		case 'M':
			if (nmacros == MAX_MACROS ||
			    strchr(optarg, '=') == NULL) {
				fprintf(stderr,
				    "milter-warden test: --macro "
				    "NAME=VALUE, at most %d\n",
				    MAX_MACROS);
				return OUT_ERROR;
			}
			macros[nmacros++] = optarg;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return OUT_ERROR;
		}
	}
	if (nrcpts == 0 || argc - optind > 1) {
		usage(stderr);
		return OUT_ERROR;
	}
	mw_log_set_level(MW_LOG_ERROR);
	mw_diag_init(&diag);
	st = mw_state_build(conf, overrides, &diag);
	mw_diag_print(&diag, stderr);
	mw_diag_free(&diag);
	if (st == NULL)
		return OUT_ERROR;
	if (optind < argc && !read_message(argv[optind], &msg)) {
		mw_state_unref(st);
		return OUT_ERROR;
	}
	if ((c = mw_conn_new(st)) == NULL) {
		mw_state_unref(st);
		message_free(&msg);
		return OUT_ERROR;
	}
	mw_conn_set_trace(c, on_hit, &x);
	(void)mw_conn_set_macro(c, "j", "localhost");
	(void)mw_conn_set_macro(c, "client_addr", client_ip);
	(void)mw_conn_set_macro(c, "client_name", client_name);
	if (daemon != NULL)
		(void)mw_conn_set_macro(c, "daemon_name", daemon);
	if (tls != NULL)
		(void)mw_conn_set_macro(c, "tls_version", tls);
	if (auth != NULL) {
		(void)mw_conn_set_macro(c, "auth_authen", auth);
		(void)mw_conn_set_macro(c, "auth_type", mech);
	}
	for (i = 0; i < nmacros; i++) {
		char name[64];
		const char *eq = strchr(macros[i], '=');
		size_t n = (size_t)(eq - macros[i]);

		if (n == 0 || n >= sizeof(name) ||
		    !(memcpy(name, macros[i], n), name[n] = '\0',
			mw_conn_set_macro(c, name, eq + 1))) {
			fprintf(stderr, "milter-warden test: bad --macro %s\n",
			    macros[i]);
			mw_conn_free(c);
			mw_state_unref(st);
			message_free(&msg);
			return OUT_ERROR;
		}
	}

	/* The phases in Postfix's order; a decision ends the session. */
	if (mw_eng_connect(c, client_name, client_ip, &r) != MW_CONTINUE)
		stop = r.action != MW_ACCEPT;
	add_step(&x, "connect", client_name, &r);
	if (!stop) {
		if (mw_eng_helo(c, helo, &r) != MW_CONTINUE)
			stop = r.action != MW_ACCEPT;
		add_step(&x, "helo", helo, &r);
	}
	if (stop) {
		out = outcome_of(r.action);
		goto report;
	}
	snprintf(from_b, sizeof(from_b), "<%s>", from);
	(void)mw_eng_mail(c, from_b, NULL, &r);
	add_step(&x, "mail", from, &r);
	/* After a decision at MAIL the MTA asks the milter nothing more. */
	if (r.action != MW_CONTINUE) {
		out = outcome_of(r.action);
		accepted = r.action == MW_ACCEPT ? (unsigned)nrcpts : 0;
		goto report;
	}
	for (i = 0; i < nrcpts; i++) {
		char b[1100];

		snprintf(b, sizeof(b), "<%s>", rcpts[i]);
		(void)mw_eng_rcpt(c, b, &r);
		add_step(&x, "rcpt", rcpts[i], &r);
		if (r.action == MW_ACCEPT) {
			/* The whole message: no more milter calls for it. */
			accepted += (unsigned)(nrcpts - i);
			goto report;
		}
		if (r.action == MW_CONTINUE)
			accepted++;
		else if (r.action == MW_TEMPFAIL)
			tempfailed++;
		else if (r.action == MW_DISCARD) {
			out = OUT_DISCARDED;
			goto report;
		}
	}
	if (accepted == 0) {
		out = tempfailed > 0 ? OUT_TEMPFAILED : OUT_REJECTED;
		goto report;
	}
	(void)mw_eng_data(c, &r);
	for (i = 0; i < msg.nheaders && r.action == MW_CONTINUE; i++) {
		char *v;

		/* As negotiated with SMFIP_HDR_LEADSPC: with the space. */
		if (asprintf(&v, " %s", msg.values[i]) < 0) {
			x.failed_alloc = true;
			break;
		}
		(void)mw_eng_header(c, msg.names[i], v, &r);
		free(v);
	}
	{
		char n[32];

		snprintf(n, sizeof(n), "%zu headers", i);
		add_step(&x, "header",
		    r.action != MW_CONTINUE ? msg.names[i - 1] : n, &r);
	}
	if (r.action == MW_CONTINUE) {
		(void)mw_eng_eoh(c, &r);
		add_step(&x, "eoh", NULL, &r);
	}
	if (r.action == MW_CONTINUE) {
		size_t off = 0;

		while (off < msg.body_len) {
			size_t n = msg.body_len - off > 65535
			    ? 65535
			    : msg.body_len - off;

			off += n;
			if (mw_eng_body(c, (unsigned char *)msg.body + off - n,
				n, &r) != MW_CONTINUE)
				break;
		}
		if (r.action == MW_SKIP || r.action == MW_CONTINUE) {
			(void)mw_eng_eom(c, &r);
			add_step(&x, "eom", NULL, &r);
		}
	}
	out = outcome_of(r.action);
	if (out == OUT_ACCEPTED) {
		const struct mw_op *ops;
		size_t n;

		ops = mw_conn_ops(c, &n);
		for (i = 0; i < n; i++)
			if (ops[i].kind == MW_OP_QUARANTINE)
				out = OUT_QUARANTINED;
	}
report:
	if (json)
		print_json(&x, c, out, accepted, (unsigned)nrcpts);
	else
		print_text(&x, c, out, accepted, (unsigned)nrcpts);
	if (x.failed_alloc)
		fprintf(stderr,
		    "milter-warden test: out of memory; the trace "
		    "is incomplete\n");
	explain_free(&x);
	mw_conn_free(c);
	mw_state_unref(st);
	message_free(&msg);
	return (int)out;
}
