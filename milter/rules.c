/*
 * rules.c -- loading the rules language: lexer, parser, lists, regexes.
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

#define RULES_FILE_MAX  (64L * 1024 * 1024)
#define INCLUDE_DEPTH   8
#define COND_DEPTH      64
#define ACTIONS_MAX     64
#define HEADER_NAME_MAX 76

/* Fields of the condition language, and the first phase that has them. */
static const struct field_def {
	const char *name;
	enum field id;
	enum ftype type;
	enum mw_phase from;
	bool only; /* available at that phase only */
} fields[] = {
	{ "client.ip", F_CLIENT_IP, FT_IP, MW_PH_CONNECT, false },
	{ "client.name", F_CLIENT_NAME, FT_DOMAIN, MW_PH_CONNECT, false },
	{ "listener", F_LISTENER, FT_STRING, MW_PH_CONNECT, false },
	{ "helo", F_HELO, FT_DOMAIN, MW_PH_HELO, false },
	{ "helo.address-literal", F_HELO_ADDRLIT, FT_BOOL, MW_PH_HELO, false },
	{ "helo.fqdn", F_HELO_FQDN, FT_BOOL, MW_PH_HELO, false },
	{ "tls", F_TLS, FT_BOOL, MW_PH_HELO, false },
	{ "tls.version", F_TLS_VERSION, FT_STRING, MW_PH_HELO, false },
	{ "authenticated", F_AUTHENTICATED, FT_BOOL, MW_PH_MAIL, false },
	{ "auth.user", F_AUTH_USER, FT_STRING, MW_PH_MAIL, false },
	{ "auth.mech", F_AUTH_MECH, FT_STRING, MW_PH_MAIL, false },
	{ "from", F_FROM, FT_ADDRESS, MW_PH_MAIL, false },
	{ "from.local", F_FROM_LOCAL, FT_STRING, MW_PH_MAIL, false },
	{ "from.domain", F_FROM_DOMAIN, FT_DOMAIN, MW_PH_MAIL, false },
	{ "rcpt", F_RCPT, FT_ADDRESS, MW_PH_RCPT, true },
	{ "rcpt.local", F_RCPT_LOCAL, FT_STRING, MW_PH_RCPT, true },
	{ "rcpt.domain", F_RCPT_DOMAIN, FT_DOMAIN, MW_PH_RCPT, true },
	{ "rcpt.count", F_RCPT_COUNT, FT_NUMBER, MW_PH_RCPT, false },
	{ "size", F_SIZE, FT_NUMBER, MW_PH_MAIL, false },
	{ "header.name", F_HEADER_NAME, FT_STRING, MW_PH_HEADER, true },
	{ "header.value", F_HEADER_VALUE, FT_STRING, MW_PH_HEADER, true },
	{ "score", F_SCORE, FT_NUMBER, MW_PH_CONNECT, false },
	{ "role", F_ROLE, FT_STRING, MW_PH_CONNECT, false },
	{ "trusted", F_TRUSTED, FT_BOOL, MW_PH_CONNECT, false },
	{ "from.routed", F_FROM_ROUTED, FT_BOOL, MW_PH_MAIL, false },
	{ "from.malformed", F_FROM_MALFORMED, FT_BOOL, MW_PH_MAIL, false },
	{ "from.owned", F_FROM_OWNED, FT_BOOL, MW_PH_MAIL, false },
	{ "rcpt.routed", F_RCPT_ROUTED, FT_BOOL, MW_PH_RCPT, true },
	{ "rcpt.malformed", F_RCPT_MALFORMED, FT_BOOL, MW_PH_RCPT, true },
	{ "header.from", F_HFROM, FT_ADDRESS, MW_PH_EOH, false },
	{ "header.from.domain", F_HFROM_DOMAIN, FT_DOMAIN, MW_PH_EOH, false },
	{ "header.from.count", F_HFROM_COUNT, FT_NUMBER, MW_PH_EOH, false },
	{ "header.from.mailboxes", F_HFROM_BOXES, FT_NUMBER, MW_PH_EOH, false },
	{ "header.from.malformed", F_HFROM_MALFORMED, FT_BOOL, MW_PH_EOH,
	    false },
	{ "header.from.owned", F_HFROM_OWNED, FT_BOOL, MW_PH_EOH, false },
	{ "header.from.domains", F_HFROM_DOMAINS, FT_DOMAIN, MW_PH_EOH, false },
};

static const char *const phase_names[MW_PH_COUNT] = { "connect", "helo", "mail",
	"rcpt", "header", "eoh", "body", "eom" };

/* Names usable in %{...} of texts. */
static const char *const interp_names[] = { "client.ip", "client.name", "helo",
	"from", "rcpt", "auth.user", "score", "labels", "rule", "queue-id",
	"header.from", NULL };

/*
 * Macros and the first phase Postfix sends them at, given the lists
 * milter-warden requests (glue.c).  Used for -n warnings only.
 */
static const struct {
	const char *name;
	enum mw_phase from;
	bool only;
} macro_phases[] = {
	{ "j", MW_PH_CONNECT, false },
	{ "_", MW_PH_CONNECT, false },
	{ "v", MW_PH_CONNECT, false },
	{ "daemon_name", MW_PH_CONNECT, false },
	{ "daemon_addr", MW_PH_CONNECT, false },
	{ "client_addr", MW_PH_CONNECT, false },
	{ "client_name", MW_PH_CONNECT, false },
	{ "client_port", MW_PH_CONNECT, false },
	{ "tls_version", MW_PH_HELO, false },
	{ "cipher", MW_PH_HELO, false },
	{ "cipher_bits", MW_PH_HELO, false },
	{ "cert_subject", MW_PH_HELO, false },
	{ "cert_issuer", MW_PH_HELO, false },
	{ "auth_authen", MW_PH_MAIL, false },
	{ "auth_type", MW_PH_MAIL, false },
	{ "auth_author", MW_PH_MAIL, false },
	{ "mail_addr", MW_PH_MAIL, false },
	{ "mail_host", MW_PH_MAIL, false },
	{ "mail_mailer", MW_PH_MAIL, false },
	{ "rcpt_addr", MW_PH_RCPT, true },
	{ "rcpt_host", MW_PH_RCPT, true },
	{ "rcpt_mailer", MW_PH_RCPT, true },
	/* Postfix assigns the queue id only from DATA on. */
	{ "i", MW_PH_HEADER, false },
};

const char *
mw_phase_name(enum mw_phase ph)
{
	return ph < MW_PH_COUNT ? phase_names[ph] : "?";
}

/* --------------------------------------------------------------- parser */

struct parser {
	struct mw_ruleset *rs;
	struct mw_diag *diag;
	struct lexer lx;
	struct token tok; /* lookahead */
	int depth;        /* include depth */
	int cond_depth;
	/* Per phase: the first unconditional terminal rule, for warnings. */
	const struct rule *decided[MW_PH_COUNT];
	char **real; /* canonical paths of the files read so far */
	size_t nreal;
};

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

static void
next(struct parser *p)
{
	free(p->tok.text);
	mw_lx_next(&p->lx, &p->tok);
}

static bool
is_word(const struct parser *p, const char *w)
{
	return p->tok.kind == T_WORD && strcmp(p->tok.text, w) == 0;
}

static const char *
tok_desc(const struct token *t)
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
static bool err(struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool
err(struct parser *p, const char *fmt, ...)
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
	if (is_word(p, w)) {
		next(p);
		return true;
	}
	return err(p, "expected \"%s\" %s, found %s", w, context,
	    tok_desc(&p->tok));
}

/* is_statement -- the lookahead starts a statement. */
static bool
is_statement(const struct parser *p)
{
	return is_word(p, "rule") || is_word(p, "list") ||
	    is_word(p, "include");
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
	if (!is_statement(p))
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
static char *
take_text(struct parser *p)
{
	char *s = p->tok.text;

	p->tok.text = NULL;
	next(p);
	return s;
}

/* Skip to the start of the next statement after an error. */
static void
recover(struct parser *p)
{
	while (p->tok.kind != T_EOF && !is_word(p, "rule") &&
	    !is_word(p, "list") && !is_word(p, "include"))
		next(p);
}

static bool
parse_number(const char *s, double *out)
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
static bool
parse_items(struct parser *p, struct list *l)
{
	bool ok = true;

	if (p->tok.kind != T_LBRACE)
		return err(p, "expected \"{\", found %s", tok_desc(&p->tok));
	next(p);
	while (p->tok.kind != T_RBRACE) {
		const char *why = NULL;

		if (p->tok.kind == T_COMMA) {
			next(p);
			continue;
		}
		if (p->tok.kind != T_WORD && p->tok.kind != T_STRING)
			return err(p,
			    "expected a list entry or \"}\", found %s",
			    tok_desc(&p->tok));
		if (!mw_list_add(l, p->tok.text, &why)) {
			err(p, "%s: %s", p->tok.text,
			    why ? why : "invalid entry");
			ok = false;
		}
		next(p);
	}
	next(p);
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

	next(p); /* list */
	if (p->tok.kind != T_WORD && p->tok.kind != T_STRING) {
		err(p, "expected a list name, found %s", tok_desc(&p->tok));
		return recover(p);
	}
	if (mw_list_find(p->rs, p->tok.text) != NULL) {
		err(p, "list \"%s\" is already defined", p->tok.text);
		return recover(p);
	}
	name = take_text(p);
	for (t = 0; t < 4; t++)
		if (is_word(p, types[t]))
			break;
	if (t == 4) {
		err(p,
		    "expected a list type (ip, domain, address, string), "
		    "found %s",
		    tok_desc(&p->tok));
		free(name);
		return recover(p);
	}
	next(p);
	if ((l = mw_list_new(name, (enum list_type)t)) == NULL) {
		mw_diag_error(p->diag, p->lx.file, line, col, "out of memory");
		free(name);
		return recover(p);
	}
	free(name);
	if (is_word(p, "file")) {
		char *path;

		next(p);
		if (p->tok.kind != T_STRING) {
			err(p,
			    "expected the list file name as a string, "
			    "found %s",
			    tok_desc(&p->tok));
			mw_list_free(l);
			return recover(p);
		}
		path = resolve_path(p->lx.file, p->tok.text);
		if (path != NULL)
			mw_list_load_file(p->diag, l, path);
		free(path);
		next(p);
	} else if (!parse_items(p, l)) {
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

/* ----------------------------------------------------------- conditions */

static void cond_free(struct cond *c);

static struct cond *
cond_new(enum cond_kind kind)
{
	struct cond *c = calloc(1, sizeof(*c));

	if (c != NULL)
		c->kind = kind;
	return c;
}

static void
cond_free(struct cond *c)
{
	if (c == NULL)
		return;
	cond_free(c->a);
	cond_free(c->b);
	free(c->str);
	free(c->str2);
	if (c->re != NULL)
		pcre2_code_free(c->re);
	mw_list_free(c->inline_list);
	free(c);
}

/* compile_regex -- the lookahead REGEX token, errors at its position. */
static pcre2_code *
compile_regex(struct parser *p)
{
	uint32_t opts = 0;
	int errcode;
	PCRE2_SIZE off;
	pcre2_code *re;

	if (p->tok.kind != T_REGEX) {
		err(p, "expected a regular expression /.../, found %s",
		    tok_desc(&p->tok));
		return NULL;
	}
	if (strchr(p->tok.flags, 'i'))
		opts |= PCRE2_CASELESS;
	if (strchr(p->tok.flags, 'm'))
		opts |= PCRE2_MULTILINE;
	if (strchr(p->tok.flags, 's'))
		opts |= PCRE2_DOTALL;
	if (strchr(p->tok.flags, 'x'))
		opts |= PCRE2_EXTENDED;
	re = pcre2_compile((PCRE2_SPTR)p->tok.text, p->tok.len, opts, &errcode,
	    &off, NULL);
	if (re == NULL) {
		PCRE2_UCHAR msg[256];
		unsigned col = p->tok.col + 1 + (unsigned)off;
		size_t k;

		/* Each "/" before the error was written "\/": one more column.
		 */
		for (k = 0; k < off && k < p->tok.len; k++)
			col += p->tok.text[k] == '/';
		pcre2_get_error_message(errcode, msg, sizeof(msg));
		mw_diag_error(p->diag, p->lx.file, p->tok.line, col,
		    "regular expression: %s (at offset %zu)", (char *)msg,
		    (size_t)off);
		next(p);
		return NULL;
	}
	/* JIT where available; the interpreter otherwise. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	next(p);
	return re;
}

static bool
parse_numop(struct parser *p, enum numop *op)
{
	static const char *const ops[] = { "==", "!=", "<", "<=", ">", ">=" };
	size_t i;

	for (i = 0; i < 6; i++) {
		if (is_word(p, ops[i])) {
			*op = (enum numop)i;
			next(p);
			return true;
		}
	}
	return err(p, "expected a comparison (== != < <= > >=), found %s",
	    tok_desc(&p->tok));
}

static bool
parse_num(struct parser *p, double *v)
{
	if (p->tok.kind != T_WORD || !parse_number(p->tok.text, v))
		return err(p, "expected a number, found %s", tok_desc(&p->tok));
	next(p);
	return true;
}

/*
 * parse_re_op -- "=~ /re/" or "!~ /re/" at the lookahead, into c as kind.
 * On false the caller frees c.
 */
static bool
parse_re_op(struct parser *p, struct cond *c, enum cond_kind kind)
{
	c->kind = kind;
	c->neg = is_word(p, "!~");
	next(p);
	return (c->re = compile_regex(p)) != NULL;
}

/*
 * parse_eq_op -- "== VALUE" or "!= VALUE" at the lookahead: c becomes
 * kind, the value goes to *value.  On false the caller frees c.
 */
static bool
parse_eq_op(struct parser *p, struct cond *c, enum cond_kind kind, char **value,
    unsigned *line, unsigned *col)
{
	c->kind = kind;
	c->neg = is_word(p, "!=");
	next(p);
	if (p->tok.kind != T_STRING && p->tok.kind != T_WORD)
		return err(p, "expected a value, found %s", tok_desc(&p->tok));
	if (line != NULL) {
		*line = p->tok.line;
		*col = p->tok.col;
	}
	*value = take_text(p);
	return true;
}

/* Phase checks: data a phase cannot have yet is a load-time error. */
static bool
phase_has(struct parser *p, enum mw_phase ph, enum mw_phase from, bool only,
    const char *what)
{
	if (only && ph != from)
		return err(p, "%s is only known at the %s phase", what,
		    phase_names[from]);
	if (ph < from)
		return err(p,
		    "%s is not known yet at the %s phase (from %s on)", what,
		    phase_names[ph], phase_names[from]);
	return true;
}

static enum list_type
list_type_for(enum ftype t)
{
	switch (t) {
	case FT_IP: return L_IP;
	case FT_DOMAIN: return L_DOMAIN;
	case FT_ADDRESS: return L_ADDRESS;
	default: return L_STRING;
	}
}

static struct cond *parse_or(struct parser *p, enum mw_phase ph);

static struct cond *
parse_field(struct parser *p, enum mw_phase ph, const struct field_def *f)
{
	struct cond *c = NULL;

	if (!phase_has(p, ph, f->from, f->only, f->name))
		return NULL;
	next(p);
	if (f->type == FT_BOOL) {
		if ((c = cond_new(C_FIELD_BOOL)) != NULL)
			c->field = f->id;
		return c;
	}
	if (f->type == FT_NUMBER) {
		if ((c = cond_new(C_FIELD_NUM)) == NULL)
			return NULL;
		c->field = f->id;
		if (!parse_numop(p, &c->op) || !parse_num(p, &c->num)) {
			cond_free(c);
			return NULL;
		}
		return c;
	}
	if (is_word(p, "in")) {
		next(p);
		if ((c = cond_new(C_FIELD_IN)) == NULL)
			return NULL;
		c->field = f->id;
		if (p->tok.kind == T_LBRACE) {
			c->inline_list =
			    mw_list_new(NULL, list_type_for(f->type));
			if (c->inline_list == NULL ||
			    !parse_items(p, c->inline_list) ||
			    !mw_list_finish(c->inline_list)) {
				cond_free(c);
				return NULL;
			}
			c->list = c->inline_list;
			return c;
		}
		if (p->tok.kind != T_WORD && p->tok.kind != T_STRING) {
			err(p, "expected a list name or \"{\", found %s",
			    tok_desc(&p->tok));
			cond_free(c);
			return NULL;
		}
		if ((c->list = mw_list_find(p->rs, p->tok.text)) == NULL) {
			err(p,
			    "no list named \"%s\" (lists must be defined "
			    "before use)",
			    p->tok.text);
			cond_free(c);
			return NULL;
		}
		if (c->list->type != list_type_for(f->type) &&
		    !(f->type == FT_ADDRESS && c->list->type == L_STRING)) {
			err(p,
			    "%s needs a list of type %s; \"%s\" is %s %s list",
			    f->name, mw_list_type_name(list_type_for(f->type)),
			    c->list->name,
			    c->list->type == L_IP || c->list->type == L_ADDRESS
				? "an"
				: "a",
			    mw_list_type_name(c->list->type));
			cond_free(c);
			return NULL;
		}
		next(p);
		return c;
	}
	if (is_word(p, "=~") || is_word(p, "!~")) {
		if (f->type == FT_IP) {
			err(p,
			    "%s cannot be matched with a regular "
			    "expression; use \"in\"",
			    f->name);
			return NULL;
		}
		if ((c = cond_new(C_FIELD_RE)) == NULL)
			return NULL;
		c->field = f->id;
		if (!parse_re_op(p, c, C_FIELD_RE)) {
			cond_free(c);
			return NULL;
		}
		return c;
	}
	if (is_word(p, "==") || is_word(p, "!=")) {
		unsigned line = 0, col = 0;

		if ((c = cond_new(C_FIELD_EQ)) == NULL)
			return NULL;
		c->field = f->id;
		if (!parse_eq_op(p, c, C_FIELD_EQ, &c->str, &line, &col)) {
			cond_free(c);
			return NULL;
		}
		if (f->type == FT_IP) {
			if (!mw_ip_parse(c->str, &c->ip)) {
				mw_diag_error(p->diag, p->lx.file, line, col,
				    "\"%s\" is not an IP address", c->str);
				cond_free(c);
				return NULL;
			}
			c->ip_valid = true;
		}
		return c;
	}
	err(p, "expected ==, !=, =~, !~ or \"in\" after %s, found %s", f->name,
	    tok_desc(&p->tok));
	return NULL;
}

static bool
check_header_name(struct parser *p, const char *name)
{
	size_t i, len = strlen(name);

	if (len == 0 || len > HEADER_NAME_MAX)
		return err(p, "a header name has 1 to %d characters",
		    HEADER_NAME_MAX);
	for (i = 0; i < len; i++)
		if ((unsigned char)name[i] <= ' ' ||
		    (unsigned char)name[i] >= 0x7f || name[i] == ':')
			return err(p, "invalid character in header name \"%s\"",
			    name);
	return true;
}

static void
macro_warning(struct parser *p, enum mw_phase ph, const char *name,
    unsigned line, unsigned col)
{
	char key[64];
	size_t len = strlen(name), i;

	if (len >= 2 && name[0] == '{' && name[len - 1] == '}') {
		name++;
		len -= 2;
	}
	if (len >= sizeof(key))
		len = sizeof(key) - 1;
	memcpy(key, name, len);
	key[len] = '\0';
	for (i = 0; i < sizeof(macro_phases) / sizeof(macro_phases[0]); i++) {
		if (strcmp(macro_phases[i].name, key) != 0)
			continue;
		if (ph < macro_phases[i].from)
			mw_diag_warning(p->diag, p->lx.file, line, col,
			    "macro \"%s\" is not sent by Postfix before the %s "
			    "phase; at %s it is never present",
			    key, phase_names[macro_phases[i].from],
			    phase_names[ph]);
		else if (macro_phases[i].only && ph != macro_phases[i].from)
			mw_diag_warning(p->diag, p->lx.file, line, col,
			    "macro \"%s\" is only sent at the %s phase", key,
			    phase_names[macro_phases[i].from]);
		return;
	}
	mw_diag_warning(p->diag, p->lx.file, line, col,
	    "milter-warden does not ask the MTA for macro \"%s\"; it is "
	    "present only if the MTA sends it unasked",
	    key);
}

static struct cond *
parse_predicate(struct parser *p, enum mw_phase ph)
{
	struct cond *c;
	size_t i;

	if (p->tok.kind == T_LPAREN) {
		/* Reported at the "(" that goes one level too deep. */
		if (p->cond_depth + 1 > COND_DEPTH) {
			err(p, "conditions nested deeper than %d", COND_DEPTH);
			return NULL;
		}
		next(p);
		c = parse_or(p, ph);
		if (c == NULL)
			return NULL;
		if (p->tok.kind != T_RPAREN) {
			err(p, "expected \")\", found %s", tok_desc(&p->tok));
			cond_free(c);
			return NULL;
		}
		next(p);
		return c;
	}
	if (p->tok.kind != T_WORD) {
		err(p, "expected a condition, found %s", tok_desc(&p->tok));
		return NULL;
	}
	if (is_word(p, "not")) {
		if (++p->cond_depth > COND_DEPTH) {
			err(p, "conditions nested deeper than %d", COND_DEPTH);
			return NULL;
		}
		next(p);
		if ((c = cond_new(C_NOT)) == NULL ||
		    (c->a = parse_predicate(p, ph)) == NULL) {
			cond_free(c);
			return NULL;
		}
		p->cond_depth--;
		return c;
	}
	if (is_word(p, "true")) {
		next(p);
		return cond_new(C_TRUE);
	}
	if (is_word(p, "header")) {
		if (!phase_has(p, ph, MW_PH_HEADER, false, "header"))
			return NULL;
		next(p);
		if (p->tok.kind != T_STRING) {
			err(p, "expected the header name as a string, found %s",
			    tok_desc(&p->tok));
			return NULL;
		}
		if (!check_header_name(p, p->tok.text))
			return NULL;
		if ((c = cond_new(C_HDR_PRESENT)) == NULL)
			return NULL;
		c->str = take_text(p);
		if (is_word(p, "present") || is_word(p, "absent")) {
			c->neg = is_word(p, "absent");
			next(p);
		} else if (is_word(p, "count")) {
			c->kind = C_HDR_COUNT;
			next(p);
			if (!parse_numop(p, &c->op) || !parse_num(p, &c->num)) {
				cond_free(c);
				return NULL;
			}
		} else if (is_word(p, "=~") || is_word(p, "!~")) {
			if (!parse_re_op(p, c, C_HDR_RE)) {
				cond_free(c);
				return NULL;
			}
		} else {
			err(p,
			    "expected present, absent, count, =~ or !~ "
			    "after the header name, found %s",
			    tok_desc(&p->tok));
			cond_free(c);
			return NULL;
		}
		return c;
	}
	if (is_word(p, "body")) {
		if (!phase_has(p, ph, MW_PH_BODY, false, "body"))
			return NULL;
		next(p);
		if (!is_word(p, "=~") && !is_word(p, "!~")) {
			err(p, "expected =~ or !~ after body, found %s",
			    tok_desc(&p->tok));
			return NULL;
		}
		if ((c = cond_new(C_BODY_RE)) == NULL)
			return NULL;
		if (!parse_re_op(p, c, C_BODY_RE)) {
			cond_free(c);
			return NULL;
		}
		return c;
	}
	if (is_word(p, "macro")) {
		unsigned line, col;

		next(p);
		if (p->tok.kind != T_STRING) {
			err(p, "expected the macro name as a string, found %s",
			    tok_desc(&p->tok));
			return NULL;
		}
		line = p->tok.line;
		col = p->tok.col;
		if ((c = cond_new(C_MACRO_PRESENT)) == NULL)
			return NULL;
		c->str = take_text(p);
		macro_warning(p, ph, c->str, line, col);
		if (is_word(p, "present") || is_word(p, "absent")) {
			c->neg = is_word(p, "absent");
			next(p);
		} else if (is_word(p, "==") || is_word(p, "!=")) {
			if (!parse_eq_op(p, c, C_MACRO_EQ, &c->str2, NULL,
				NULL)) {
				cond_free(c);
				return NULL;
			}
		} else if (is_word(p, "=~") || is_word(p, "!~")) {
			if (!parse_re_op(p, c, C_MACRO_RE)) {
				cond_free(c);
				return NULL;
			}
		} else {
			err(p,
			    "expected present, absent, ==, !=, =~ or !~ "
			    "after the macro name, found %s",
			    tok_desc(&p->tok));
			cond_free(c);
			return NULL;
		}
		return c;
	}
	if (is_word(p, "var")) {
		next(p);
		if (p->tok.kind != T_WORD) {
			err(p, "expected a variable name, found %s",
			    tok_desc(&p->tok));
			return NULL;
		}
		if ((c = cond_new(C_VAR_SET)) == NULL)
			return NULL;
		c->str = take_text(p);
		if (is_word(p, "==") || is_word(p, "!=")) {
			if (!parse_eq_op(p, c, C_VAR_EQ, &c->str2, NULL,
				NULL)) {
				cond_free(c);
				return NULL;
			}
		}
		return c;
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcmp(fields[i].name, p->tok.text) == 0)
			return parse_field(p, ph, &fields[i]);
	err(p, "unknown condition \"%s\"", p->tok.text);
	return NULL;
}

static struct cond *
parse_and(struct parser *p, enum mw_phase ph)
{
	struct cond *c = parse_predicate(p, ph), *n;

	while (c != NULL && is_word(p, "and")) {
		next(p);
		if ((n = cond_new(C_AND)) == NULL) {
			cond_free(c);
			return NULL;
		}
		n->a = c;
		c = n;
		if ((n->b = parse_predicate(p, ph)) == NULL) {
			cond_free(c);
			return NULL;
		}
	}
	return c;
}

static struct cond *
parse_or(struct parser *p, enum mw_phase ph)
{
	struct cond *c, *n;

	if (++p->cond_depth > COND_DEPTH) {
		err(p, "conditions nested deeper than %d", COND_DEPTH);
		return NULL;
	}
	c = parse_and(p, ph);
	while (c != NULL && is_word(p, "or")) {
		next(p);
		if ((n = cond_new(C_OR)) == NULL) {
			cond_free(c);
			return NULL;
		}
		n->a = c;
		c = n;
		if ((n->b = parse_and(p, ph)) == NULL) {
			cond_free(c);
			return NULL;
		}
	}
	p->cond_depth--;
	return c;
}

/* -------------------------------------------------------------- actions */

/* check_text -- printable, and %{name} references known. */
static bool
check_text(struct parser *p, const char *s, size_t max, const char *what)
{
	const char *q;

	if (strlen(s) > max)
		return err(p, "%s longer than %zu bytes", what, max);
	for (q = s; *q != '\0'; q++) {
		if ((unsigned char)*q < 0x20 && *q != '\t')
			return err(p, "control character in %s", what);
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
				return err(p, "unterminated %%{ in %s", what);
			n = (size_t)(end - q - 2);
			for (i = 0; interp_names[i] != NULL; i++)
				if (strlen(interp_names[i]) == n &&
				    strncmp(interp_names[i], q + 2, n) == 0)
					break;
			if (interp_names[i] == NULL)
				return err(p,
				    "unknown name %%{%.*s} in %s "
				    "(known: client.ip, client.name, "
				    "helo, from, rcpt, auth.user, "
				    "score, labels, rule, queue-id, header.from)",
				    (int)n, q + 2, what);
			q = end;
			continue;
		}
		return err(p, "a lone %% in %s: write %%%% for a percent sign",
		    what);
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
		return err(p, "expected %s as a string, found %s", what,
		    tok_desc(&p->tok));
	if (!check_text(p, p->tok.text, max, what))
		return false;
	*out = take_text(p);
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
	};
	size_t i;

	memset(a, 0, sizeof(*a));
	if (p->tok.kind != T_WORD || is_statement(p))
		return err(p, "expected an action, found %s",
		    tok_desc(&p->tok));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i].name, p->tok.text) == 0)
			break;
	if (i == sizeof(names) / sizeof(names[0]))
		return err(p, "unknown action \"%s\"", p->tok.text);
	a->kind = names[i].kind;
	if ((a->kind == A_DISCARD || a->kind == A_QUARANTINE) &&
	    r->phase < MW_PH_MAIL)
		return err(p, "%s needs a message: not at the %s phase",
		    names[i].name, phase_names[r->phase]);
	next(p);

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
			next(p);
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
			next(p);
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
	case A_ADD_HEADER:
	case A_INSERT_HEADER:
	case A_CHANGE_HEADER:
		if (p->tok.kind == T_STRING &&
		    !check_header_name(p, p->tok.text))
			return false;
		return take_string_arg(p, &a->arg1, "the header name",
			   HEADER_NAME_MAX) &&
		    take_string_arg(p, &a->arg2, "the header value", 998);
	case A_DELETE_HEADER:
		if (p->tok.kind == T_STRING &&
		    !check_header_name(p, p->tok.text))
			return false;
		return take_string_arg(p, &a->arg1, "the header name",
		    HEADER_NAME_MAX);
	case A_ADD_RCPT:
	case A_DELETE_RCPT:
	case A_REDIRECT:
		if (p->tok.kind == T_STRING &&
		    (p->tok.text[0] == '\0' || strpbrk(p->tok.text, " \t<>")))
			return err(p, "\"%s\" is not a mail address",
			    p->tok.text);
		return take_string_arg(p, &a->arg1, "the address", 1024);
	case A_SCORE:
		if (p->tok.kind != T_WORD ||
		    (p->tok.text[0] != '+' && p->tok.text[0] != '-') ||
		    !parse_number(p->tok.text, &a->num))
			return err(p,
			    "expected a signed number such as +2 or "
			    "-1.5, found %s",
			    tok_desc(&p->tok));
		next(p);
		if (!name_here(p))
			return err(p,
			    "expected a label after the score, found "
			    "%s",
			    tok_desc(&p->tok));
		if (p->tok.text[0] == '\0')
			return err(p, "a score label cannot be empty");
		if (strpbrk(p->tok.text, " \t,=") != NULL)
			return err(p,
			    "a score label has no spaces, commas or "
			    "\"=\"");
		r->score_delta += a->num;
		a->arg1 = take_text(p);
		return true;
	case A_SET:
		if (p->tok.kind != T_WORD || !name_here(p))
			return err(p, "expected a variable name, found %s",
			    tok_desc(&p->tok));
		a->arg1 = take_text(p);
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
	cond_free(r->when);
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
	next(p); /* rule */
	if (!is_word(p, "at")) {
		if (p->tok.kind != T_WORD && p->tok.kind != T_STRING) {
			err(p, "expected a rule name or \"at\", found %s",
			    tok_desc(&p->tok));
			goto fail;
		}
		for (i = 0; i < p->rs->nrules; i++) {
			if (strcmp(p->rs->rules[i]->id, p->tok.text) == 0) {
				err(p,
				    "rule \"%s\" is already defined at %s:%u",
				    p->tok.text, p->rs->rules[i]->file,
				    p->rs->rules[i]->line);
				goto fail;
			}
		}
		r->id = take_text(p);
	} else {
		char id[1200];

		snprintf(id, sizeof(id), "%s:%u", p->lx.file, line);
		if ((r->id = strdup(id)) == NULL)
			goto fail;
	}
	if (!expect_word(p, "at", "after the rule name"))
		goto fail;
	for (i = 0; i < MW_PH_COUNT; i++)
		if (is_word(p, phase_names[i]))
			break;
	if (i == MW_PH_COUNT) {
		err(p,
		    "expected a phase (connect, helo, mail, rcpt, header, "
		    "eoh, body, eom), found %s",
		    tok_desc(&p->tok));
		goto fail;
	}
	r->phase = (enum mw_phase)i;
	next(p);
	if (is_word(p, "report-only")) {
		r->report_only = true;
		next(p);
	}
	if (is_word(p, "when")) {
		next(p);
		/* The top level is depth 0: 64 nested levels are allowed. */
		p->cond_depth = -1;
		if ((r->when = parse_or(p, r->phase)) == NULL)
			goto fail;
	}
	if (!expect_word(p, "then", "before the actions"))
		goto fail;
	actions_start = p->lx.buf + p->lx.pos - p->tok.len -
	    (p->tok.kind == T_STRING ? 2 : 0);
	for (;;) {
		struct action *v;

		if (r->nactions == ACTIONS_MAX) {
			err(p, "more than %d actions in one rule", ACTIONS_MAX);
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
		next(p);
	}
	/* The actions as written, for traces: up to the next token. */
	{
		const char *end = p->lx.buf + p->lx.pos;

		if (p->tok.kind != T_EOF)
			end -= p->tok.len + (p->tok.kind == T_STRING ? 2 : 0);
		r->actions_text = display_text(actions_start, end);
	}
	if (p->tok.kind != T_EOF && !is_word(p, "rule") &&
	    !is_word(p, "list") && !is_word(p, "include")) {
		err(p,
		    "expected \",\" or the next statement after the "
		    "actions, found %s",
		    tok_desc(&p->tok));
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
	struct stat sb;
	char *buf;
	size_t len;
	FILE *fp;

	if ((fp = mw_fopen_regular(path)) == NULL) {
		if (errfile != NULL)
			mw_diag_error(diag, errfile, line, col,
			    "cannot open included file %s: %s", path,
			    mw_open_error(errno));
		else
			mw_diag_error(diag, path, 0, 0,
			    "cannot open rules file: %s", mw_open_error(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    sb.st_size > RULES_FILE_MAX) {
		mw_diag_error(diag, errfile ? errfile : path, line, col,
		    "rules file %s is not a regular file of at most %ld bytes",
		    path, RULES_FILE_MAX);
		fclose(fp);
		return NULL;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		mw_diag_error(diag, path, 0, 0, "out of memory");
		fclose(fp);
		return NULL;
	}
	len = fread(buf, 1, (size_t)sb.st_size + 1, fp);
	fclose(fp);
	if (len > (size_t)sb.st_size) {
		mw_diag_error(diag, path, 0, 0, "file changed while reading");
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

static void
parse_include(struct parser *p)
{
	unsigned line, col;
	char *path, *buf;
	size_t len;

	next(p); /* include */
	if (p->tok.kind != T_STRING) {
		err(p, "expected the file name as a string, found %s",
		    tok_desc(&p->tok));
		return recover(p);
	}
	line = p->tok.line;
	col = p->tok.col;
	if ((path = resolve_path(p->lx.file, p->tok.text)) == NULL) {
		err(p, "out of memory");
		return recover(p);
	}
	next(p);
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
		if (is_word(p, "rule"))
			parse_rule(p);
		else if (is_word(p, "list"))
			parse_list(p);
		else if (is_word(p, "include"))
			parse_include(p);
		else {
			err(p,
			    "expected \"rule\", \"list\" or \"include\", "
			    "found %s",
			    tok_desc(&p->tok));
			next(p);
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
	pcre2_match_context_free(rs->mctx);
	free(rs);
}
