/*
 * rules_lex.c -- the lexer of the rules language.
 *
 * Free-form text: white space and "#" comments separate words, "..."
 * strings, /.../flags regular expressions and the punctuation ( ) { } ,.
 * Positions are 1-based lines and byte columns.  Every token is bounded
 * (TOKEN_MAX); NUL and control characters are errors, not terminators.
 */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rules_lex.h"

static bool
is_word_char(unsigned char ch)
{
	return ch > ' ' && ch != 0x7f && strchr("(){},\"#", ch) == NULL;
}

static void
lx_advance(struct lexer *lx)
{
	if (lx->buf[lx->pos] == '\n') {
		lx->line++;
		lx->col = 1;
	} else {
		lx->col++;
	}
	lx->pos++;
}

/*
 * lx_quoted -- a string or regex body up to the closing delimiter.  Only
 * "\<delim>" and (for strings) "\\" are escapes; other backslashes stay.
 */
static bool
lx_quoted(struct lexer *lx, struct token *t, char delim, const char *what)
{
	char *out = malloc(TOKEN_MAX + 1);
	size_t n = 0;

	if (out == NULL) {
		mw_diag_error(lx->diag, lx->file, t->line, t->col,
		    "out of memory");
		return false;
	}
	lx_advance(lx); /* opening delimiter */
	for (;;) {
		char ch;

		/* CRLF files: the CR ends the line too. */
		if (lx->pos >= lx->len || lx->buf[lx->pos] == '\n' ||
		    (lx->buf[lx->pos] == '\r' && lx->pos + 1 < lx->len &&
			lx->buf[lx->pos + 1] == '\n')) {
			mw_diag_error(lx->diag, lx->file, t->line, t->col,
			    "unterminated %s", what);
			free(out);
			return false;
		}
		ch = lx->buf[lx->pos];
		if (ch == delim)
			break;
		if (ch == '\\' && lx->pos + 1 < lx->len &&
		    (lx->buf[lx->pos + 1] == delim ||
			(delim == '"' && lx->buf[lx->pos + 1] == '\\'))) {
			lx_advance(lx);
			ch = lx->buf[lx->pos];
		} else if (ch == '\0' || ch == 0x7f ||
		    ((unsigned char)ch < 0x20 && ch != '\t')) {
			mw_diag_error(lx->diag, lx->file, lx->line, lx->col,
			    "control character 0x%02x in %s", (unsigned char)ch,
			    what);
			free(out);
			return false;
		}
		if (n == TOKEN_MAX) {
			mw_diag_error(lx->diag, lx->file, t->line, t->col,
			    "%s longer than %d bytes", what, TOKEN_MAX);
			free(out);
			return false;
		}
		out[n++] = ch;
		lx_advance(lx);
	}
	lx_advance(lx); /* closing delimiter */
	out[n] = '\0';
	t->text = out;
	t->len = n;
	return true;
}

/* lx_next -- the next token; errors are reported and give T_BAD. */
void
mw_lx_next(struct lexer *lx, struct token *t)
{
	memset(t, 0, sizeof(*t));
	for (;;) {
		while (lx->pos < lx->len &&
		    isspace((unsigned char)lx->buf[lx->pos]))
			lx_advance(lx);
		if (lx->pos < lx->len && lx->buf[lx->pos] == '#') {
			while (lx->pos < lx->len && lx->buf[lx->pos] != '\n')
				lx_advance(lx);
			continue;
		}
		break;
	}
	t->line = lx->line;
	t->col = lx->col;
	if (lx->pos >= lx->len) {
		t->kind = T_EOF;
		return;
	}
	switch (lx->buf[lx->pos]) {
	case '(':
		t->kind = T_LPAREN;
		lx_advance(lx);
		return;
	case ')':
		t->kind = T_RPAREN;
		lx_advance(lx);
		return;
	case '{':
		t->kind = T_LBRACE;
		lx_advance(lx);
		return;
	case '}':
		t->kind = T_RBRACE;
		lx_advance(lx);
		return;
	case ',':
		t->kind = T_COMMA;
		lx_advance(lx);
		return;
	case '"':
		t->kind = lx_quoted(lx, t, '"', "string") ? T_STRING : T_BAD;
		if (t->kind == T_BAD)
			while (lx->pos < lx->len && lx->buf[lx->pos] != '\n')
				lx_advance(lx);
		return;
	case '/': {
		size_t nf = 0;

		t->kind = lx_quoted(lx, t, '/', "regular expression") ? T_REGEX
								      : T_BAD;
		if (t->kind == T_BAD) {
			while (lx->pos < lx->len && lx->buf[lx->pos] != '\n')
				lx_advance(lx);
			return;
		}
		while (lx->pos < lx->len &&
		    isalpha((unsigned char)lx->buf[lx->pos])) {
			char f = lx->buf[lx->pos];

			if (strchr("imsx", f) == NULL) {
				mw_diag_error(lx->diag, lx->file, lx->line,
				    lx->col,
				    "unknown regular expression flag '%c' "
				    "(known: i, m, s, x)",
				    f);
				t->kind = T_BAD;
			} else if (nf < sizeof(t->flags) - 1 &&
			    strchr(t->flags, f) == NULL) {
				t->flags[nf++] = f;
			}
			lx_advance(lx);
		}
		return;
	}
	default: break;
	}
	if (!is_word_char((unsigned char)lx->buf[lx->pos])) {
		mw_diag_error(lx->diag, lx->file, lx->line, lx->col,
		    "unexpected character 0x%02x",
		    (unsigned char)lx->buf[lx->pos]);
		lx_advance(lx);
		t->kind = T_BAD;
		return;
	} else {
		size_t start = lx->pos;

		while (lx->pos < lx->len &&
		    is_word_char((unsigned char)lx->buf[lx->pos]))
			lx_advance(lx);
		if (lx->pos - start > TOKEN_MAX) {
			mw_diag_error(lx->diag, lx->file, t->line, t->col,
			    "word longer than %d bytes", TOKEN_MAX);
			t->kind = T_BAD;
			return;
		}
		if ((t->text = strndup(lx->buf + start, lx->pos - start)) ==
		    NULL) {
			mw_diag_error(lx->diag, lx->file, t->line, t->col,
			    "out of memory");
			t->kind = T_BAD;
			return;
		}
		t->len = lx->pos - start;
		t->kind = T_WORD;
	}
}
