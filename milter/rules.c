/*
 * rules.c -- loading the rules language: files and includes, the
 * predefined lists, and the statements (list, rule, include) with their
 * actions.  Tokens come from rules_lex.c, conditions from rules_cond.c,
 * lists from rules_list.c.
 *
 * The whole ruleset is compiled before it is handed out; nothing is
 * evaluated here (see eval.c).  Every error is reported at its
 * FILE:LINE:COL and parsing goes on at the next statement, so one pass
 * shows every problem.  There is no static state: several loads may run
 * at once.  Untrusted input: token sizes, include depth and condition
 * nesting are bounded.
 */
#include "config.h"

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_text.h"
#include "rules_ast.h"
#include "rules_lex.h"
#include "rules_parser.h"

#define RULES_FILE_MAX  (64L * 1024 * 1024)
#define INCLUDE_DEPTH   8
#define ACTIONS_MAX     64
#define HEADER_NAME_MAX 76

static const char *const phase_names[MW_PH_COUNT] = { "connect", "helo", "mail",
	"rcpt", "header", "eoh", "body", "eom" };

/* Names usable in %{...} of texts. */
static const char *const interp_names[] = { "client.ip", "client.name", "helo",
	"from", "rcpt", "auth.user", "score", "labels", "rule", "queue-id",
	"header.from", "retry", "tests", "spam", NULL };

const char *
mw_phase_name(enum mw_phase ph)
{
	return ph < MW_PH_COUNT ? phase_names[ph] : "?";
}

/* --------------------------------------------------------------- parser */

/*
 * already_read -- true if path names a file read before (whatever the
 * spelling: "./a.rules" and "a.rules" are one file); otherwise remembers
 * it.  A path that cannot be resolved is left to the open to report.
 */
static bool
already_read(struct parser *p, const char *path)
{
	char *real = realpath(path, NULL), **v;
	size_t i;

	/* A file that does not exist is remembered by the name given. */
	if (real == NULL && (real = strdup(path)) == NULL)
		return false;
	for (i = 0; i < p->nreal; i++) {
		if (strcmp(p->real[i], real) == 0) {
			free(real);
			return true;
		}
	}
	if ((v = realloc(p->real, (p->nreal + 1) * sizeof(*v))) == NULL) {
		free(real);
		return false;
	}
	p->real = v;
	p->real[p->nreal++] = real;
	return false;
}

static void
forget_read(struct parser *p)
{
	size_t i;

	for (i = 0; i < p->nreal; i++)
		free(p->real[i]);
	free(p->real);
}

void
mw_rp_next(struct parser *p)
{
	free(p->tok.text);
	mw_lx_next(&p->lx, &p->tok);
}

bool
mw_rp_is_word(const struct parser *p, const char *w)
{
	return p->tok.kind == T_WORD && strcmp(p->tok.text, w) == 0;
}

const char *
mw_rp_tok_desc(const struct token *t)
{
	switch (t->kind) {
	case T_EOF: return "end of file";
	case T_WORD: return t->text;
	case T_STRING: return "a string";
	case T_REGEX: return "a regular expression";
	case T_LPAREN: return "\"(\"";
	case T_RPAREN: return "\")\"";
	case T_LBRACE: return "\"{\"";
	case T_RBRACE: return "\"}\"";
	case T_COMMA: return "\",\"";
	case T_BAD: return "an invalid token";
	}
	return "?";
}

/* err -- report at the lookahead token (unless the lexer already did). */
bool
mw_rp_err(struct parser *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->tok.kind == T_BAD)
		return false;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mw_diag_error(p->diag, p->lx.file, p->tok.line, p->tok.col, "%s", msg);
	return false;
}

static bool
expect_word(struct parser *p, const char *w, const char *context)
{
	if (mw_rp_is_word(p, w)) {
		mw_rp_next(p);
		return true;
	}
	return mw_rp_err(p, "expected \"%s\" %s, found %s", w, context,
	    mw_rp_tok_desc(&p->tok));
}

/* is_statement -- the lookahead starts a statement. */
bool
mw_rp_is_statement(const struct parser *p)
{
	return mw_rp_is_word(p, "rule") || mw_rp_is_word(p, "list") ||
	    mw_rp_is_word(p, "include");
}

/*
 * name_here -- can the lookahead be a name (of a variable, a label)?  A
 * statement keyword is one only when what follows cannot continue a
 * statement that it would start: "set rule, ..." names a variable "rule",
 * while in "set\nrule x at ..." the variable name is missing.  Peeking
 * costs one token of lexing, with diagnostics silenced (the real pass
 * reports them).
 */
static bool
name_here(struct parser *p)
{
	struct lexer saved = p->lx;
	struct mw_diag quiet;
	struct token t;
	bool name;

	if (p->tok.kind != T_WORD)
		return p->tok.kind == T_STRING;
	if (!mw_rp_is_statement(p))
		return true;
	mw_diag_init(&quiet);
	p->lx.diag = &quiet;
	mw_lx_next(&p->lx, &t);
	p->lx = saved;
	mw_diag_free(&quiet);
	name = t.kind == T_COMMA || t.kind == T_STRING || t.kind == T_EOF ||
	    (t.kind == T_WORD &&
		(strcmp(t.text, "rule") == 0 || strcmp(t.text, "list") == 0 ||
		    strcmp(t.text, "include") == 0));
	free(t.text);
	return name;
}

/* take_text -- the lookahead's text, taken over by the caller. */
char *
mw_rp_take_text(struct parser *p)
{
	char *s = p->tok.text;

	p->tok.text = NULL;
	mw_rp_next(p);
	return s;
}

/* Skip to the start of the next statement after an error. */
static void
recover(struct parser *p)
{
	while (p->tok.kind != T_EOF && !mw_rp_is_word(p, "rule") &&
	    !mw_rp_is_word(p, "list") && !mw_rp_is_word(p, "include"))
		mw_rp_next(p);
}

bool
mw_rp_parse_number(const char *s, double *out)
{
	char *end;
	double v;

	if (*s == '\0' || strlen(s) > 32)
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0' || errno != 0 || v != v || v > 1e12 || v < -1e12)
		return false;
	/* No hex, inf or exponent forms: only digits, sign and a dot. */
	if (strspn(s, "+-0123456789.") != strlen(s))
		return false;
	*out = v;
	return true;
}

static char *resolve_path(const char *base_file, const char *path);

/* list { items } -- items up to the closing brace, into l. */
bool
mw_rp_parse_items(struct parser *p, struct list *l)
{
	bool ok = true;

	if (p->tok.kind != T_LBRACE)
		return mw_rp_err(p, "expected \"{\", found %s",
		    mw_rp_tok_desc(&p->tok));
	mw_rp_next(p);
	while (p->tok.kind != T_RBRACE) {
		const char *why = NULL;

		if (p->tok.kind == T_COMMA) {
			mw_rp_next(p);
			continue;
		}
		if (p->tok.kind != T_WORD && p->tok.kind != T_STRING)
			return mw_rp_err(p,
			    "expected a list entry or \"}\", found %s",
			    mw_rp_tok_desc(&p->tok));
		if (!mw_list_add(l, p->tok.text, &why)) {
			mw_rp_err(p, "%s: %s", p->tok.text,
			    why ? why : "invalid entry");
			ok = false;
		}
		mw_rp_next(p);
	}
	mw_rp_next(p);
	return ok;
}

static void
parse_list(struct parser *p)
{
	static const char *const types[] = { "ip", "domain", "address",
		"string" };
	unsigned line = p->tok.line, col = p->tok.col;
	struct list *l;
	char *name;
	size_t t;

	mw_rp_next(p); /* list */
	if (p->tok.kind != T_WORD && p->tok.kind != T_STRING) {
		mw_rp_err(p, "expected a list name, found %s",
		    mw_rp_tok_desc(&p->tok));
		return recover(p);
	}
	if (mw_list_find(p->rs, p->tok.text) != NULL) {
		mw_rp_err(p, "list \"%s\" is already defined", p->tok.text);
		return recover(p);
	}
	name = mw_rp_take_text(p);
	for (t = 0; t < 4; t++)
		if (mw_rp_is_word(p, types[t]))
			break;
	if (t == 4) {
		mw_rp_err(p,
		    "expected a list type (ip, domain, address, string), "
		    "found %s",
		    mw_rp_tok_desc(&p->tok));
		free(name);
		return recover(p);
	}
	mw_rp_next(p);
	if ((l = mw_list_new(name, (enum list_type)t)) == NULL) {
		mw_diag_error(p->diag, p->lx.file, line, col, "out of memory");
		free(name);
		return recover(p);
	}
	free(name);
	if (mw_rp_is_word(p, "file")) {
		char *path;

		mw_rp_next(p);
		if (p->tok.kind != T_STRING) {
			mw_rp_err(p,
			    "expected the list file name as a string, "
			    "found %s",
			    mw_rp_tok_desc(&p->tok));
			mw_list_free(l);
			return recover(p);
		}
		path = resolve_path(p->lx.file, p->tok.text);
		if (path != NULL)
			mw_list_load_file(p->diag, l, path);
		free(path);
		mw_rp_next(p);
	} else if (!mw_rp_parse_items(p, l)) {
		mw_list_free(l);
		return recover(p);
	}
	if (!mw_list_finish(l)) {
		mw_diag_error(p->diag, p->lx.file, line, col, "out of memory");
		mw_list_free(l);
		return;
	}
	l->next = p->rs->lists;
	p->rs->lists = l;
}

/* -------------------------------------------------------------- actions */

/* check_text -- printable, and %{name} references known. */
static bool
check_text(struct parser *p, const char *s, size_t max, const char *what)
{
	const char *q;

	if (strlen(s) > max)
		return mw_rp_err(p, "%s longer than %zu bytes", what, max);
	for (q = s; *q != '\0'; q++) {
		if ((unsigned char)*q < 0x20 && *q != '\t')
			return mw_rp_err(p, "control character in %s", what);
		if (*q != '%')
			continue;
		if (q[1] == '%') {
			q++;
			continue;
		}
		if (q[1] == '{') {
			const char *end = strchr(q, '}');
			size_t i, n;

			if (end == NULL)
				return mw_rp_err(p, "unterminated %%{ in %s",
				    what);
			n = (size_t)(end - q - 2);
			for (i = 0; interp_names[i] != NULL; i++)
				if (strlen(interp_names[i]) == n &&
				    strncmp(interp_names[i], q + 2, n) == 0)
					break;
			if (interp_names[i] == NULL)
				return mw_rp_err(p,
				    "unknown name %%{%.*s} in %s "
				    "(known: client.ip, client.name, "
				    "helo, from, rcpt, auth.user, "
				    "score, labels, rule, queue-id, header.from)",
				    (int)n, q + 2, what);
			q = end;
			continue;
		}
		return mw_rp_err(p,
		    "a lone %% in %s: write %%%% for a percent sign", what);
	}
	return true;
}

static bool
valid_code(const char *code, const char *dsn, char cls)
{
	const char *q;
	int parts = 0;

	if (strlen(code) != 3 || code[0] != cls ||
	    !isdigit((unsigned char)code[1]) ||
	    !isdigit((unsigned char)code[2]))
		return false;
	if (dsn[0] != cls || dsn[1] != '.')
		return false;
	for (q = dsn + 2; *q != '\0'; parts++) {
		size_t n = strspn(q, "0123456789");

		if (n < 1 || n > 3)
			return false;
		q += n;
		if (*q == '.')
			q++;
		else if (*q != '\0')
			return false;
	}
	return parts == 2 && dsn[strlen(dsn) - 1] != '.';
}

static bool
take_string_arg(struct parser *p, char **out, const char *what, size_t max)
{
	if (p->tok.kind != T_STRING)
		return mw_rp_err(p, "expected %s as a string, found %s", what,
		    mw_rp_tok_desc(&p->tok));
	if (!check_text(p, p->tok.text, max, what))
		return false;
	*out = mw_rp_take_text(p);
	return true;
}

static bool
parse_action(struct parser *p, struct rule *r, struct action *a)
{
	static const struct {
		const char *name;
		enum act_kind kind;
	} names[] = {
		{ "accept", A_ACCEPT },
		{ "reject", A_REJECT },
		{ "tempfail", A_TEMPFAIL },
		{ "discard", A_DISCARD },
		{ "stop", A_STOP },
		{ "continue", A_CONTINUE },
		{ "quarantine", A_QUARANTINE },
		{ "add-header", A_ADD_HEADER },
		{ "insert-header", A_INSERT_HEADER },
		{ "change-header", A_CHANGE_HEADER },
		{ "delete-header", A_DELETE_HEADER },
		{ "prefix-subject", A_PREFIX_SUBJECT },
		{ "add-rcpt", A_ADD_RCPT },
		{ "delete-rcpt", A_DELETE_RCPT },
		{ "redirect", A_REDIRECT },
		{ "score", A_SCORE },
		{ "set", A_SET },
		{ "log", A_LOG },
		{ "dkim-sign", A_DKIM_SIGN },
		{ "dkim-nosign", A_DKIM_NOSIGN },
	};
	size_t i;

	memset(a, 0, sizeof(*a));
	if (p->tok.kind != T_WORD || mw_rp_is_statement(p))
		return mw_rp_err(p, "expected an action, found %s",
		    mw_rp_tok_desc(&p->tok));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i].name, p->tok.text) == 0)
			break;
	if (i == sizeof(names) / sizeof(names[0]))
		return mw_rp_err(p, "unknown action \"%s\"", p->tok.text);
	a->kind = names[i].kind;
	if ((a->kind == A_DISCARD || a->kind == A_QUARANTINE) &&
	    r->phase < MW_PH_MAIL)
		return mw_rp_err(p, "%s needs a message: not at the %s phase",
		    names[i].name, phase_names[r->phase]);
	/* Signing starts at end of headers: later is too late. */
	if ((a->kind == A_DKIM_SIGN || a->kind == A_DKIM_NOSIGN) &&
	    r->phase > MW_PH_EOH)
		return mw_rp_err(p,
		    "%s must be decided by the end of headers, not at the %s "
		    "phase",
		    names[i].name, phase_names[r->phase]);
	mw_rp_next(p);

	switch (a->kind) {
	case A_REJECT:
	case A_TEMPFAIL: {
		char cls = a->kind == A_REJECT ? '5' : '4';

		strcpy(a->code, cls == '5' ? "550" : "451");
		strcpy(a->dsn, cls == '5' ? "5.7.1" : "4.7.1");
		if (p->tok.kind == T_WORD &&
		    isdigit((unsigned char)p->tok.text[0])) {
			unsigned line = p->tok.line, col = p->tok.col;
			char code[8] = "", dsn[16] = "";

			snprintf(code, sizeof(code), "%s", p->tok.text);
			mw_rp_next(p);
			if (p->tok.kind == T_WORD)
				snprintf(dsn, sizeof(dsn), "%s", p->tok.text);
			if (!valid_code(code, dsn, cls)) {
				mw_diag_error(p->diag, p->lx.file, line, col,
				    "%s needs a %cxx code and a %c.x.x enhanced "
				    "status code (e.g. %s %s), found \"%s %s\"",
				    a->kind == A_REJECT ? "reject" : "tempfail",
				    cls, cls, a->code, a->dsn, code, dsn);
				return false;
			}
			strcpy(a->code, code);
			strcpy(a->dsn, dsn);
			mw_rp_next(p);
		}
		if (p->tok.kind == T_STRING)
			return take_string_arg(p, &a->arg1, "the reply text",
			    255);
		a->arg1 = strdup(a->kind == A_REJECT ? "Rejected by policy"
						     : "Try again later");
		return a->arg1 != NULL;
	}
	case A_QUARANTINE:
	case A_PREFIX_SUBJECT:
	case A_LOG: return take_string_arg(p, &a->arg1, "a text", 998);
	case A_DKIM_SIGN:
		if (p->tok.kind == T_STRING)
			return take_string_arg(p, &a->arg1, "a key name", 255);
		return true;
	case A_ADD_HEADER:
	case A_INSERT_HEADER:
	case A_CHANGE_HEADER:
		if (p->tok.kind == T_STRING &&
		    !mw_rp_check_header_name(p, p->tok.text))
			return false;
		return take_string_arg(p, &a->arg1, "the header name",
			   HEADER_NAME_MAX) &&
		    take_string_arg(p, &a->arg2, "the header value", 998);
	case A_DELETE_HEADER:
		if (p->tok.kind == T_STRING &&
		    !mw_rp_check_header_name(p, p->tok.text))
			return false;
		return take_string_arg(p, &a->arg1, "the header name",
		    HEADER_NAME_MAX);
	case A_ADD_RCPT:
	case A_DELETE_RCPT:
	case A_REDIRECT:
		if (p->tok.kind == T_STRING &&
		    (p->tok.text[0] == '\0' || strpbrk(p->tok.text, " \t<>")))
			return mw_rp_err(p, "\"%s\" is not a mail address",
			    p->tok.text);
		return take_string_arg(p, &a->arg1, "the address", 1024);
	case A_SCORE:
		if (p->tok.kind != T_WORD ||
		    (p->tok.text[0] != '+' && p->tok.text[0] != '-') ||
		    !mw_rp_parse_number(p->tok.text, &a->num))
			return mw_rp_err(p,
			    "expected a signed number such as +2 or "
			    "-1.5, found %s",
			    mw_rp_tok_desc(&p->tok));
		mw_rp_next(p);
		if (!name_here(p))
			return mw_rp_err(p,
			    "expected a label after the score, found "
			    "%s",
			    mw_rp_tok_desc(&p->tok));
		if (p->tok.text[0] == '\0')
			return mw_rp_err(p, "a score label cannot be empty");
		if (strpbrk(p->tok.text, " \t,=") != NULL)
			return mw_rp_err(p,
			    "a score label has no spaces, commas or "
			    "\"=\"");
		r->score_delta += a->num;
		a->arg1 = mw_rp_take_text(p);
		return true;
	case A_SET:
		if (p->tok.kind != T_WORD || !name_here(p))
			return mw_rp_err(p,
			    "expected a variable name, found %s",
			    mw_rp_tok_desc(&p->tok));
		a->arg1 = mw_rp_take_text(p);
		if (p->tok.kind == T_STRING)
			return take_string_arg(p, &a->arg2, "the value", 998);
		a->arg2 = strdup("1");
		return a->arg2 != NULL;
	default: return true;
	}
}

static bool
is_terminal(enum act_kind k)
{
	return k == A_ACCEPT || k == A_REJECT || k == A_TEMPFAIL ||
	    k == A_DISCARD || k == A_STOP;
}

static void
rule_free(struct rule *r)
{
	size_t i;

	if (r == NULL)
		return;
	mw_rp_cond_free(r->when);
	for (i = 0; i < r->nactions; i++) {
		free(r->actions[i].arg1);
		free(r->actions[i].arg2);
	}
	free(r->actions);
	free(r->actions_text);
	free(r->id);
	free(r);
}

static bool
add_rule(struct mw_ruleset *rs, struct rule *r)
{
	struct rule **v = realloc(rs->rules, (rs->nrules + 1) * sizeof(*v));

	if (v == NULL)
		return false;
	rs->rules = v;
	rs->rules[rs->nrules++] = r;
	return true;
}

/*
 * display_text -- source text [start, end) for display: comments dropped,
 * white space folded to one space, at most 300 bytes.
 */
static char *
display_text(const char *start, const char *end)
{
	char *out = malloc(302);
	bool in_string = false, space = false;
	size_t o = 0;
	const char *q;

	if (out == NULL)
		return NULL;
	for (q = start; q < end && o < 300; q++) {
		if (!in_string && *q == '#') {
			while (q < end && *q != '\n')
				q++;
			space = o > 0;
			continue;
		}
		if (!in_string && isspace((unsigned char)*q)) {
			space = o > 0;
			continue;
		}
		if (space) {
			out[o++] = ' ';
			space = false;
		}
		if (*q == '"' && (q == start || q[-1] != '\\'))
			in_string = !in_string;
		out[o++] = *q;
	}
	out[o] = '\0';
	return out;
}

static void
parse_rule(struct parser *p)
{
	unsigned line = p->tok.line, col = p->tok.col;
	struct rule *r = calloc(1, sizeof(*r));
	const char *actions_start;
	bool terminal = false;
	size_t i;

	if (r == NULL) {
		mw_diag_error(p->diag, p->lx.file, line, col, "out of memory");
		return recover(p);
	}
	r->file = p->lx.file;
	r->line = line;
	mw_rp_next(p); /* rule */
	if (!mw_rp_is_word(p, "at")) {
		if (p->tok.kind != T_WORD && p->tok.kind != T_STRING) {
			mw_rp_err(p, "expected a rule name or \"at\", found %s",
			    mw_rp_tok_desc(&p->tok));
			goto fail;
		}
		for (i = 0; i < p->rs->nrules; i++) {
			if (strcmp(p->rs->rules[i]->id, p->tok.text) == 0) {
				mw_rp_err(p,
				    "rule \"%s\" is already defined at %s:%u",
				    p->tok.text, p->rs->rules[i]->file,
				    p->rs->rules[i]->line);
				goto fail;
			}
		}
		r->id = mw_rp_take_text(p);
	} else {
		char id[1200];

		snprintf(id, sizeof(id), "%s:%u", p->lx.file, line);
		if ((r->id = strdup(id)) == NULL)
			goto fail;
	}
	if (!expect_word(p, "at", "after the rule name"))
		goto fail;
	for (i = 0; i < MW_PH_COUNT; i++)
		if (mw_rp_is_word(p, phase_names[i]))
			break;
	if (i == MW_PH_COUNT) {
		mw_rp_err(p,
		    "expected a phase (connect, helo, mail, rcpt, header, "
		    "eoh, body, eom), found %s",
		    mw_rp_tok_desc(&p->tok));
		goto fail;
	}
	r->phase = (enum mw_phase)i;
	mw_rp_next(p);
	if (mw_rp_is_word(p, "report-only")) {
		r->report_only = true;
		mw_rp_next(p);
	}
	if (mw_rp_is_word(p, "when")) {
		mw_rp_next(p);
		/* The top level is depth 0: 64 nested levels are allowed. */
		p->cond_depth = -1;
		if ((r->when = mw_rp_parse_or(p, r->phase)) == NULL)
			goto fail;
	}
	if (!expect_word(p, "then", "before the actions"))
		goto fail;
	actions_start = p->lx.buf + p->lx.pos - p->tok.len -
	    (p->tok.kind == T_STRING ? 2 : 0);
	for (;;) {
		struct action *v;

		if (r->nactions == ACTIONS_MAX) {
			mw_rp_err(p, "more than %d actions in one rule",
			    ACTIONS_MAX);
			goto fail;
		}
		v = realloc(r->actions, (r->nactions + 1) * sizeof(*v));
		if (v == NULL)
			goto fail;
		r->actions = v;
		if (!parse_action(p, r, &r->actions[r->nactions])) {
			r->nactions++;
			goto fail;
		}
		terminal |= is_terminal(r->actions[r->nactions].kind);
		r->nactions++;
		if (p->tok.kind != T_COMMA)
			break;
		mw_rp_next(p);
	}
	/* The actions as written, for traces: up to the next token. */
	{
		const char *end = p->lx.buf + p->lx.pos;

		if (p->tok.kind != T_EOF)
			end -= p->tok.len + (p->tok.kind == T_STRING ? 2 : 0);
		r->actions_text = display_text(actions_start, end);
	}
	if (p->tok.kind != T_EOF && !mw_rp_is_word(p, "rule") &&
	    !mw_rp_is_word(p, "list") && !mw_rp_is_word(p, "include")) {
		mw_rp_err(p,
		    "expected \",\" or the next statement after the "
		    "actions, found %s",
		    mw_rp_tok_desc(&p->tok));
		goto fail;
	}
	if (p->decided[r->phase] != NULL)
		mw_diag_warning(p->diag, p->lx.file, line, col,
		    "rule %s can never fire: rule %s (%s:%u) always decides "
		    "the %s phase before it",
		    r->id, p->decided[r->phase]->id, p->decided[r->phase]->file,
		    p->decided[r->phase]->line, phase_names[r->phase]);
	else if (terminal && !r->report_only &&
	    (r->when == NULL || r->when->kind == C_TRUE))
		p->decided[r->phase] = r;
	if (!add_rule(p->rs, r))
		goto fail;
	return;
fail:
	rule_free(r);
	recover(p);
}

/* ---------------------------------------------------------------- files */

static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	return strndup(path, (size_t)(slash - path) + (slash == path));
}

/* resolve_path -- path relative to the directory of base_file. */
static char *
resolve_path(const char *base_file, const char *path)
{
	char *dir, *out;

	if (path[0] == '/')
		return strdup(path);
	if ((dir = dir_of(base_file)) == NULL)
		return NULL;
	if (asprintf(&out, "%s/%s", dir, path) < 0)
		out = NULL;
	free(dir);
	return out;
}

static const char *
intern_file(struct mw_ruleset *rs, const char *name)
{
	char **v;
	size_t i;

	for (i = 0; i < rs->nfiles; i++)
		if (strcmp(rs->files[i], name) == 0)
			return rs->files[i];
	if ((v = realloc(rs->files, (rs->nfiles + 1) * sizeof(*v))) == NULL)
		return NULL;
	rs->files = v;
	if ((rs->files[rs->nfiles] = strdup(name)) == NULL)
		return NULL;
	return rs->files[rs->nfiles++];
}

static void parse_buffer(struct parser *p, const char *name, const char *buf,
    size_t len);

/* read_file -- a whole rules file, bounded; NULL with a diagnostic. */
static char *
read_file(struct mw_diag *diag, const char *path, size_t *lenp,
    const char *errfile, unsigned line, unsigned col)
{
	const char *why;
	bool opening;
	char *buf;

	if ((buf = mw_read_regular(path, RULES_FILE_MAX, lenp, &opening,
		 &why)) != NULL)
		return buf;
	if (opening && errfile != NULL)
		mw_diag_error(diag, errfile, line, col,
		    "cannot open included file %s: %s", path, why);
	else if (opening)
		mw_diag_error(diag, path, 0, 0, "cannot open rules file: %s",
		    why);
	else
		mw_diag_error(diag, errfile ? errfile : path, line, col,
		    "rules file %s: %s (at most %ld bytes)", path, why,
		    RULES_FILE_MAX);
	return NULL;
}

static void
parse_include(struct parser *p)
{
	unsigned line, col;
	char *path, *buf;
	size_t len;

	mw_rp_next(p); /* include */
	if (p->tok.kind != T_STRING) {
		mw_rp_err(p, "expected the file name as a string, found %s",
		    mw_rp_tok_desc(&p->tok));
		return recover(p);
	}
	line = p->tok.line;
	col = p->tok.col;
	if ((path = resolve_path(p->lx.file, p->tok.text)) == NULL) {
		mw_rp_err(p, "out of memory");
		return recover(p);
	}
	mw_rp_next(p);
	if (p->depth >= INCLUDE_DEPTH) {
		mw_diag_error(p->diag, p->lx.file, line, col,
		    "includes nested deeper than %d", INCLUDE_DEPTH);
		free(path);
		return;
	}
	if (already_read(p, path)) {
		mw_diag_error(p->diag, p->lx.file, line, col,
		    "%s is already read (included twice or in a cycle)", path);
		free(path);
		return;
	}
	if ((buf = read_file(p->diag, path, &len, p->lx.file, line, col)) !=
	    NULL) {
		struct lexer saved = p->lx;
		struct token tok = p->tok;

		memset(&p->tok, 0, sizeof(p->tok));
		p->depth++;
		parse_buffer(p, path, buf, len);
		p->depth--;
		free(p->tok.text);
		p->lx = saved;
		p->tok = tok;
		free(buf);
	}
	free(path);
}

static void
parse_buffer(struct parser *p, const char *name, const char *buf, size_t len)
{
	const char *file = intern_file(p->rs, name);

	if (file == NULL) {
		mw_diag_error(p->diag, name, 0, 0, "out of memory");
		return;
	}
	memset(&p->lx, 0, sizeof(p->lx));
	p->lx.file = file;
	p->lx.buf = buf;
	p->lx.len = len;
	p->lx.line = 1;
	p->lx.col = 1;
	p->lx.diag = p->diag;
	mw_lx_next(&p->lx, &p->tok);
	while (p->tok.kind != T_EOF) {
		if (mw_rp_is_word(p, "rule"))
			parse_rule(p);
		else if (mw_rp_is_word(p, "list"))
			parse_list(p);
		else if (mw_rp_is_word(p, "include"))
			parse_include(p);
		else {
			mw_rp_err(p,
			    "expected \"rule\", \"list\" or \"include\", "
			    "found %s",
			    mw_rp_tok_desc(&p->tok));
			mw_rp_next(p);
			recover(p);
		}
	}
	free(p->tok.text);
	p->tok.text = NULL;
}

static bool
index_phases(struct mw_ruleset *rs)
{
	size_t i, ph;

	for (ph = 0; ph < MW_PH_COUNT; ph++) {
		size_t n = 0;

		for (i = 0; i < rs->nrules; i++)
			n += rs->rules[i]->phase == ph;
		if (n == 0)
			continue;
		if ((rs->by_phase[ph] = calloc(n, sizeof(struct rule *))) ==
		    NULL)
			return false;
		for (i = 0; i < rs->nrules; i++)
			if (rs->rules[i]->phase == ph)
				rs->by_phase[ph][rs->nby_phase[ph]++] =
				    rs->rules[i];
	}
	return true;
}

static struct mw_ruleset *
ruleset_new(void)
{
	struct mw_ruleset *rs = calloc(1, sizeof(*rs));

	if (rs == NULL)
		return NULL;
	if ((rs->mctx = pcre2_match_context_create(NULL)) == NULL) {
		free(rs);
		return NULL;
	}
	pcre2_set_match_limit(rs->mctx, RE_MATCH_LIMIT);
	pcre2_set_depth_limit(rs->mctx, RE_DEPTH_LIMIT);
	return rs;
}

static struct mw_ruleset *
finish(struct mw_ruleset *rs, struct mw_diag *diag, size_t errors)
{
	if (diag->nerrors == errors && !index_phases(rs))
		mw_diag_error(diag, NULL, 0, 0, "out of memory");
	if (diag->nerrors > errors) {
		mw_rules_free(rs);
		return NULL;
	}
	return rs;
}

/*
 * add_predef -- a list made from the main configuration, defined before
 * any rules file so that rules can name it (and cannot redefine it).
 */
static void
add_predef(struct parser *p, const struct mw_rules_predef *d)
{
	static const char *const types[] = { "ip", "domain", "address",
		"string", "logins" };
	struct list *l;
	size_t t, i;

	for (t = 0; t < 5; t++)
		if (strcmp(types[t], d->type) == 0)
			break;
	if (t == 5 || (l = mw_list_new(d->name, (enum list_type)t)) == NULL) {
		mw_diag_error(p->diag, d->origin, 0, 0,
		    "%s: cannot make the list (type %s)", d->name, d->type);
		return;
	}
	for (i = 0; d->items != NULL && d->items[i] != NULL; i++) {
		const char *why = NULL;

		if (!mw_list_add(l, d->items[i], &why))
			mw_diag_error(p->diag, d->origin, 0, 0, "%s: %s: %s",
			    d->name, d->items[i], why ? why : "invalid entry");
	}
	if (d->file != NULL && d->file[0] != '\0') {
		if (l->type == L_LOGINS)
			mw_list_load_logins(p->diag, l, d->file);
		else
			mw_list_load_file(p->diag, l, d->file);
	}
	if (!mw_list_finish(l)) {
		mw_diag_error(p->diag, d->origin, 0, 0, "out of memory");
		mw_list_free(l);
		return;
	}
	l->next = p->rs->lists;
	p->rs->lists = l;
}

struct mw_ruleset *
mw_rules_parse(const char *name, const char *buf, size_t len,
    struct mw_diag *diag)
{
	struct parser p;
	size_t errors = diag->nerrors;

	memset(&p, 0, sizeof(p));
	p.diag = diag;
	if ((p.rs = ruleset_new()) == NULL) {
		mw_diag_error(diag, name, 0, 0, "out of memory");
		return NULL;
	}
	parse_buffer(&p, name, buf, len);
	forget_read(&p);
	return finish(p.rs, diag, errors);
}

struct mw_ruleset *
mw_rules_load(char *const *files, size_t n, const struct mw_rules_predef *pre,
    size_t npre, struct mw_diag *diag)
{
	struct parser p;
	size_t errors = diag->nerrors, i;

	memset(&p, 0, sizeof(p));
	p.diag = diag;
	if ((p.rs = ruleset_new()) == NULL) {
		mw_diag_error(diag, NULL, 0, 0, "out of memory");
		return NULL;
	}
	for (i = 0; i < npre; i++)
		add_predef(&p, &pre[i]);
	p.rs->trusted = mw_list_find(p.rs, "trusted_networks");
	p.rs->submission = mw_list_find(p.rs, "submission_listeners");
	p.rs->logins = mw_list_find(p.rs, "sender_logins");
	for (i = 0; i < n; i++) {
		size_t len;
		char *buf;

		if (already_read(&p, files[i])) {
			mw_diag_error(diag, files[i], 0, 0,
			    "rules file named twice (or included by an earlier "
			    "one)");
			continue;
		}
		if ((buf = read_file(diag, files[i], &len, NULL, 0, 0)) == NULL)
			continue;
		parse_buffer(&p, files[i], buf, len);
		free(buf);
	}
	forget_read(&p);
	return finish(p.rs, diag, errors);
}

size_t
mw_rules_count(const struct mw_ruleset *rs)
{
	return rs->nrules;
}

size_t
mw_rules_nfiles(const struct mw_ruleset *rs)
{
	return rs->nfiles;
}

bool
mw_rules_has_phase(const struct mw_ruleset *rs, enum mw_phase ph)
{
	return rs != NULL && ph < MW_PH_COUNT && rs->nby_phase[ph] > 0;
}

void
mw_rules_free(struct mw_ruleset *rs)
{
	struct list *l, *n;
	size_t i;

	if (rs == NULL)
		return;
	for (i = 0; i < rs->nrules; i++)
		rule_free(rs->rules[i]);
	free(rs->rules);
	for (i = 0; i < MW_PH_COUNT; i++)
		free(rs->by_phase[i]);
	for (l = rs->lists; l != NULL; l = n) {
		n = l->next;
		mw_list_free(l);
	}
	for (i = 0; i < rs->nfiles; i++)
		free(rs->files[i]);
	free(rs->files);
	free(rs->bl_conds);
	pcre2_match_context_free(rs->mctx);
	free(rs);
}
