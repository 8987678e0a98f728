/*
 * rules_lex.h -- the tokens of the rules language (rules_lex.c), for the
 * parser (rules.c) only.
 */
#ifndef MW_RULES_LEX_H
#define MW_RULES_LEX_H

#include <stddef.h>

#include "mw_diag.h"

#define TOKEN_MAX 65535 /* bytes in one word, string or regex */

enum tok_kind {
	T_EOF,
	T_WORD,
	T_STRING,
	T_REGEX,
	T_LPAREN,
	T_RPAREN,
	T_LBRACE,
	T_RBRACE,
	T_COMMA,
	T_BAD /* already reported */
};

struct token {
	enum tok_kind kind;
	char *text; /* WORD, STRING, REGEX: NUL-terminated, owned */
	size_t len;
	unsigned line, col;
	char flags[8]; /* REGEX */
};

struct lexer {
	const char *file;
	const char *buf;
	size_t len, pos;
	unsigned line, col;
	struct mw_diag *diag;
};

/*
 * mw_lx_next -- the next token of lx into t (t->text is malloc'ed for
 * WORD, STRING and REGEX).  A lexical error is reported to lx->diag and
 * gives T_BAD; the lexer then goes on after it.
 */
void mw_lx_next(struct lexer *lx, struct token *t);

#endif
