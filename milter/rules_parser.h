/*
 * rules_parser.h -- the parser's state and helpers, shared by the
 * statement parser (rules.c) and the condition parser (rules_cond.c)
 * only.
 */
#ifndef MW_RULES_PARSER_H
#define MW_RULES_PARSER_H

#include <stdbool.h>

#include "rules_ast.h"
#include "rules_lex.h"

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

/* The lookahead: move on, test, describe, take over its text. */
void mw_rp_next(struct parser *p);
bool mw_rp_is_word(const struct parser *p, const char *w);
bool mw_rp_is_statement(const struct parser *p);
const char *mw_rp_tok_desc(const struct token *t);
char *mw_rp_take_text(struct parser *p);

/* mw_rp_err -- an error at the lookahead (unless the lexer reported it). */
bool mw_rp_err(struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* mw_rp_parse_number -- a decimal number, no exponents or hexadecimal. */
bool mw_rp_parse_number(const char *s, double *out);

/* mw_rp_parse_items -- "{ item item, ... }" into l. */
bool mw_rp_parse_items(struct parser *p, struct list *l);

/* Conditions (rules_cond.c). */
struct cond *mw_rp_parse_or(struct parser *p, enum mw_phase ph);
void mw_rp_cond_free(struct cond *c);

/* rules_limit.c: "ratelimit ..." and "greylisted" at the lookahead. */
struct cond *mw_rp_parse_ratelimit(struct parser *p, enum mw_phase ph);
struct cond *mw_rp_parse_greylisted(struct parser *p, enum mw_phase ph);
void mw_rp_limit_free(struct limit *l);

/* rules_bl.c: "dnsbl ..." or "rhsbl ..." at the lookahead. */
struct cond *mw_rp_parse_bl(struct parser *p, enum mw_phase ph);
void mw_rp_bl_free(struct bl *b);
bool mw_rp_check_header_name(struct parser *p, const char *name);

#endif
