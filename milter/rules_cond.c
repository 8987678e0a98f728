/*
 * rules_cond.c -- the condition language of the rules: "when" clauses,
 * parsed into the tree eval.c evaluates.  Fields are checked against the
 * phase a rule runs at (data a phase cannot have is a load-time error),
 * regular expressions are compiled here, and conditions on macros the MTA
 * does not send at a phase are warned about.  Nesting is bounded.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rules_parser.h"

#define COND_DEPTH      64
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
	{ "dkim", F_DKIM, FT_STRING, MW_PH_BODY, false },
	{ "body.text", F_BODY_TEXT, FT_STRING, MW_PH_BODY, false },
	{ "body.truncated", F_BODY_TRUNCATED, FT_BOOL, MW_PH_BODY, false },
	{ "attachment.name", F_ATT_NAME, FT_STRING, MW_PH_BODY, false },
	{ "attachment.type", F_ATT_TYPE, FT_STRING, MW_PH_BODY, false },
	{ "attachment.count", F_ATT_COUNT, FT_NUMBER, MW_PH_BODY, false },
	{ "url.hosts", F_URL_HOSTS, FT_DOMAIN, MW_PH_BODY, false },
	{ "helo.bare-ip", F_HELO_BARE_IP, FT_BOOL, MW_PH_HELO, false },
	{ "helo.bad-chars", F_HELO_BAD_CHARS, FT_BOOL, MW_PH_HELO, false },
	{ "helo.ours", F_HELO_OURS, FT_BOOL, MW_PH_HELO, false },
	{ "helo.matches-client", F_HELO_MATCHES, FT_BOOL, MW_PH_HELO, false },
	{ "client.unknown", F_CLIENT_UNKNOWN, FT_BOOL, MW_PH_CONNECT, false },
	{ "header.date.age", F_DATE_AGE, FT_NUMBER, MW_PH_EOH, false },
	{ "header.date.malformed", F_DATE_MALFORMED, FT_BOOL, MW_PH_EOH,
	    false },
	{ "dkim.domains", F_DKIM_DOMAINS, FT_DOMAIN, MW_PH_BODY, false },
};

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

static struct cond *
cond_new(enum cond_kind kind)
{
	struct cond *c = calloc(1, sizeof(*c));

	if (c != NULL)
		c->kind = kind;
	return c;
}

void
mw_rp_cond_free(struct cond *c)
{
	if (c == NULL)
		return;
	mw_rp_cond_free(c->a);
	mw_rp_cond_free(c->b);
	free(c->str);
	free(c->str2);
	if (c->re != NULL)
		pcre2_code_free(c->re);
	mw_list_free(c->inline_list);
	mw_rp_limit_free(c->limit);
	mw_rp_bl_free(c->bl);
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
		mw_rp_err(p, "expected a regular expression /.../, found %s",
		    mw_rp_tok_desc(&p->tok));
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
		mw_rp_next(p);
		return NULL;
	}
	/* JIT where available; the interpreter otherwise. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	mw_rp_next(p);
	return re;
}

static bool
parse_numop(struct parser *p, enum numop *op)
{
	static const char *const ops[] = { "==", "!=", "<", "<=", ">", ">=" };
	size_t i;

	for (i = 0; i < 6; i++) {
		if (mw_rp_is_word(p, ops[i])) {
			*op = (enum numop)i;
			mw_rp_next(p);
			return true;
		}
	}
	return mw_rp_err(p, "expected a comparison (== != < <= > >=), found %s",
	    mw_rp_tok_desc(&p->tok));
}

static bool
parse_num(struct parser *p, double *v)
{
	if (p->tok.kind != T_WORD || !mw_rp_parse_number(p->tok.text, v))
		return mw_rp_err(p, "expected a number, found %s",
		    mw_rp_tok_desc(&p->tok));
	mw_rp_next(p);
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
	c->neg = mw_rp_is_word(p, "!~");
	mw_rp_next(p);
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
	c->neg = mw_rp_is_word(p, "!=");
	mw_rp_next(p);
	if (p->tok.kind != T_STRING && p->tok.kind != T_WORD)
		return mw_rp_err(p, "expected a value, found %s",
		    mw_rp_tok_desc(&p->tok));
	if (line != NULL) {
		*line = p->tok.line;
		*col = p->tok.col;
	}
	*value = mw_rp_take_text(p);
	return true;
}

/* Phase checks: data a phase cannot have yet is a load-time error. */
static bool
phase_has(struct parser *p, enum mw_phase ph, enum mw_phase from, bool only,
    const char *what)
{
	if (only && ph != from)
		return mw_rp_err(p, "%s is only known at the %s phase", what,
		    mw_phase_name(from));
	if (ph < from)
		return mw_rp_err(p,
		    "%s is not known yet at the %s phase (from %s on)", what,
		    mw_phase_name(ph), mw_phase_name(from));
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

static struct cond *
parse_field(struct parser *p, enum mw_phase ph, const struct field_def *f)
{
	struct cond *c = NULL;

	if (!phase_has(p, ph, f->from, f->only, f->name))
		return NULL;
	if (f->id == F_BODY_TEXT || f->id == F_BODY_TRUNCATED ||
	    f->id == F_ATT_NAME || f->id == F_ATT_TYPE ||
	    f->id == F_ATT_COUNT || f->id == F_URL_HOSTS)
		p->rs->uses_mime = true;
	mw_rp_next(p);
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
			mw_rp_cond_free(c);
			return NULL;
		}
		return c;
	}
	if (mw_rp_is_word(p, "in")) {
		mw_rp_next(p);
		if ((c = cond_new(C_FIELD_IN)) == NULL)
			return NULL;
		c->field = f->id;
		if (p->tok.kind == T_LBRACE) {
			c->inline_list =
			    mw_list_new(NULL, list_type_for(f->type));
			if (c->inline_list == NULL ||
			    !mw_rp_parse_items(p, c->inline_list) ||
			    !mw_list_finish(c->inline_list)) {
				mw_rp_cond_free(c);
				return NULL;
			}
			c->list = c->inline_list;
			return c;
		}
		if (p->tok.kind != T_WORD && p->tok.kind != T_STRING) {
			mw_rp_err(p, "expected a list name or \"{\", found %s",
			    mw_rp_tok_desc(&p->tok));
			mw_rp_cond_free(c);
			return NULL;
		}
		if ((c->list = mw_list_find(p->rs, p->tok.text)) == NULL) {
			mw_rp_err(p,
			    "no list named \"%s\" (lists must be defined "
			    "before use)",
			    p->tok.text);
			mw_rp_cond_free(c);
			return NULL;
		}
		if (c->list->type != list_type_for(f->type) &&
		    !(f->type == FT_ADDRESS && c->list->type == L_STRING)) {
			mw_rp_err(p,
			    "%s needs a list of type %s; \"%s\" is %s %s list",
			    f->name, mw_list_type_name(list_type_for(f->type)),
			    c->list->name,
			    c->list->type == L_IP || c->list->type == L_ADDRESS
				? "an"
				: "a",
			    mw_list_type_name(c->list->type));
			mw_rp_cond_free(c);
			return NULL;
		}
		mw_rp_next(p);
		return c;
	}
	if (mw_rp_is_word(p, "=~") || mw_rp_is_word(p, "!~")) {
		if (f->type == FT_IP) {
			mw_rp_err(p,
			    "%s cannot be matched with a regular "
			    "expression; use \"in\"",
			    f->name);
			return NULL;
		}
		if ((c = cond_new(C_FIELD_RE)) == NULL)
			return NULL;
		c->field = f->id;
		if (!parse_re_op(p, c, C_FIELD_RE)) {
			mw_rp_cond_free(c);
			return NULL;
		}
		return c;
	}
	if (mw_rp_is_word(p, "==") || mw_rp_is_word(p, "!=")) {
		unsigned line = 0, col = 0;

		if ((c = cond_new(C_FIELD_EQ)) == NULL)
			return NULL;
		c->field = f->id;
		if (!parse_eq_op(p, c, C_FIELD_EQ, &c->str, &line, &col)) {
			mw_rp_cond_free(c);
			return NULL;
		}
		if (f->type == FT_IP) {
			if (!mw_ip_parse(c->str, &c->ip)) {
				mw_diag_error(p->diag, p->lx.file, line, col,
				    "\"%s\" is not an IP address", c->str);
				mw_rp_cond_free(c);
				return NULL;
			}
			c->ip_valid = true;
		}
		return c;
	}
	mw_rp_err(p, "expected ==, !=, =~, !~ or \"in\" after %s, found %s",
	    f->name, mw_rp_tok_desc(&p->tok));
	return NULL;
}

bool
mw_rp_check_header_name(struct parser *p, const char *name)
{
	size_t i, len = strlen(name);

	if (len == 0 || len > HEADER_NAME_MAX)
		return mw_rp_err(p, "a header name has 1 to %d characters",
		    HEADER_NAME_MAX);
	for (i = 0; i < len; i++)
		if ((unsigned char)name[i] <= ' ' ||
		    (unsigned char)name[i] >= 0x7f || name[i] == ':')
			return mw_rp_err(p,
			    "invalid character in header name \"%s\"", name);
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
			    key, mw_phase_name(macro_phases[i].from),
			    mw_phase_name(ph));
		else if (macro_phases[i].only && ph != macro_phases[i].from)
			mw_diag_warning(p->diag, p->lx.file, line, col,
			    "macro \"%s\" is only sent at the %s phase", key,
			    mw_phase_name(macro_phases[i].from));
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
			mw_rp_err(p, "conditions nested deeper than %d",
			    COND_DEPTH);
			return NULL;
		}
		mw_rp_next(p);
		c = mw_rp_parse_or(p, ph);
		if (c == NULL)
			return NULL;
		if (p->tok.kind != T_RPAREN) {
			mw_rp_err(p, "expected \")\", found %s",
			    mw_rp_tok_desc(&p->tok));
			mw_rp_cond_free(c);
			return NULL;
		}
		mw_rp_next(p);
		return c;
	}
	if (p->tok.kind != T_WORD) {
		mw_rp_err(p, "expected a condition, found %s",
		    mw_rp_tok_desc(&p->tok));
		return NULL;
	}
	if (mw_rp_is_word(p, "not")) {
		if (++p->cond_depth > COND_DEPTH) {
			mw_rp_err(p, "conditions nested deeper than %d",
			    COND_DEPTH);
			return NULL;
		}
		mw_rp_next(p);
		if ((c = cond_new(C_NOT)) == NULL ||
		    (c->a = parse_predicate(p, ph)) == NULL) {
			mw_rp_cond_free(c);
			return NULL;
		}
		p->cond_depth--;
		return c;
	}
	if (mw_rp_is_word(p, "ratelimit"))
		return mw_rp_parse_ratelimit(p, ph);
	if (mw_rp_is_word(p, "greylisted"))
		return mw_rp_parse_greylisted(p, ph);
	if (mw_rp_is_word(p, "dnsbl") || mw_rp_is_word(p, "rhsbl"))
		return mw_rp_parse_bl(p, ph);
	if (mw_rp_is_word(p, "true")) {
		mw_rp_next(p);
		return cond_new(C_TRUE);
	}
	if (mw_rp_is_word(p, "header")) {
		if (!phase_has(p, ph, MW_PH_HEADER, false, "header"))
			return NULL;
		mw_rp_next(p);
		if (p->tok.kind != T_STRING) {
			mw_rp_err(p,
			    "expected the header name as a string, found %s",
			    mw_rp_tok_desc(&p->tok));
			return NULL;
		}
		if (!mw_rp_check_header_name(p, p->tok.text))
			return NULL;
		if ((c = cond_new(C_HDR_PRESENT)) == NULL)
			return NULL;
		c->str = mw_rp_take_text(p);
		if (mw_rp_is_word(p, "present") || mw_rp_is_word(p, "absent")) {
			c->neg = mw_rp_is_word(p, "absent");
			mw_rp_next(p);
		} else if (mw_rp_is_word(p, "count")) {
			c->kind = C_HDR_COUNT;
			mw_rp_next(p);
			if (!parse_numop(p, &c->op) || !parse_num(p, &c->num)) {
				mw_rp_cond_free(c);
				return NULL;
			}
		} else if (mw_rp_is_word(p, "=~") || mw_rp_is_word(p, "!~")) {
			if (!parse_re_op(p, c, C_HDR_RE)) {
				mw_rp_cond_free(c);
				return NULL;
			}
		} else {
			mw_rp_err(p,
			    "expected present, absent, count, =~ or !~ "
			    "after the header name, found %s",
			    mw_rp_tok_desc(&p->tok));
			mw_rp_cond_free(c);
			return NULL;
		}
		return c;
	}
	if (mw_rp_is_word(p, "body")) {
		if (!phase_has(p, ph, MW_PH_BODY, false, "body"))
			return NULL;
		mw_rp_next(p);
		if (!mw_rp_is_word(p, "=~") && !mw_rp_is_word(p, "!~")) {
			mw_rp_err(p, "expected =~ or !~ after body, found %s",
			    mw_rp_tok_desc(&p->tok));
			return NULL;
		}
		if ((c = cond_new(C_BODY_RE)) == NULL)
			return NULL;
		if (!parse_re_op(p, c, C_BODY_RE)) {
			mw_rp_cond_free(c);
			return NULL;
		}
		return c;
	}
	if (mw_rp_is_word(p, "macro")) {
		unsigned line, col;

		mw_rp_next(p);
		if (p->tok.kind != T_STRING) {
			mw_rp_err(p,
			    "expected the macro name as a string, found %s",
			    mw_rp_tok_desc(&p->tok));
			return NULL;
		}
		line = p->tok.line;
		col = p->tok.col;
		if ((c = cond_new(C_MACRO_PRESENT)) == NULL)
			return NULL;
		c->str = mw_rp_take_text(p);
		macro_warning(p, ph, c->str, line, col);
		if (mw_rp_is_word(p, "present") || mw_rp_is_word(p, "absent")) {
			c->neg = mw_rp_is_word(p, "absent");
			mw_rp_next(p);
		} else if (mw_rp_is_word(p, "==") || mw_rp_is_word(p, "!=")) {
			if (!parse_eq_op(p, c, C_MACRO_EQ, &c->str2, NULL,
				NULL)) {
				mw_rp_cond_free(c);
				return NULL;
			}
		} else if (mw_rp_is_word(p, "=~") || mw_rp_is_word(p, "!~")) {
			if (!parse_re_op(p, c, C_MACRO_RE)) {
				mw_rp_cond_free(c);
				return NULL;
			}
		} else {
			mw_rp_err(p,
			    "expected present, absent, ==, !=, =~ or !~ "
			    "after the macro name, found %s",
			    mw_rp_tok_desc(&p->tok));
			mw_rp_cond_free(c);
			return NULL;
		}
		return c;
	}
	if (mw_rp_is_word(p, "var")) {
		mw_rp_next(p);
		if (p->tok.kind != T_WORD) {
			mw_rp_err(p, "expected a variable name, found %s",
			    mw_rp_tok_desc(&p->tok));
			return NULL;
		}
		if ((c = cond_new(C_VAR_SET)) == NULL)
			return NULL;
		c->str = mw_rp_take_text(p);
		if (mw_rp_is_word(p, "==") || mw_rp_is_word(p, "!=")) {
			if (!parse_eq_op(p, c, C_VAR_EQ, &c->str2, NULL,
				NULL)) {
				mw_rp_cond_free(c);
				return NULL;
			}
		}
		return c;
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcmp(fields[i].name, p->tok.text) == 0)
			return parse_field(p, ph, &fields[i]);
	mw_rp_err(p, "unknown condition \"%s\"", p->tok.text);
	return NULL;
}

static struct cond *
parse_and(struct parser *p, enum mw_phase ph)
{
	struct cond *c = parse_predicate(p, ph), *n;

	while (c != NULL && mw_rp_is_word(p, "and")) {
		mw_rp_next(p);
		if ((n = cond_new(C_AND)) == NULL) {
			mw_rp_cond_free(c);
			return NULL;
		}
		n->a = c;
		c = n;
		if ((n->b = parse_predicate(p, ph)) == NULL) {
			mw_rp_cond_free(c);
			return NULL;
		}
	}
	return c;
}

struct cond *
mw_rp_parse_or(struct parser *p, enum mw_phase ph)
{
	struct cond *c, *n;

	if (++p->cond_depth > COND_DEPTH) {
		mw_rp_err(p, "conditions nested deeper than %d", COND_DEPTH);
		return NULL;
	}
	c = parse_and(p, ph);
	while (c != NULL && mw_rp_is_word(p, "or")) {
		mw_rp_next(p);
		if ((n = cond_new(C_OR)) == NULL) {
			mw_rp_cond_free(c);
			return NULL;
		}
		n->a = c;
		c = n;
		if ((n->b = parse_and(p, ph)) == NULL) {
			mw_rp_cond_free(c);
			return NULL;
		}
	}
	p->cond_depth--;
	return c;
}
