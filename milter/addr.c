/*
 * addr.c -- envelope addresses and From: header mailboxes.
 *
 * Written for the relay decision: an address counts as local only when
 * its real destination domain is local and nothing in it asks for more
 * routing.  Every buffer is bounded; anything that does not fit or does
 * not parse is "malformed", never cut.
 */
#include "config.h"

#include <sys/socket.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "mw_addr.h"
#include "mw_ipset.h"

static bool
bad(struct mw_addr *a, const char *why)
{
	a->malformed = true;
	a->why = why;
	return false;
}

static void
routed(struct mw_addr *a, const char *why)
{
	if (!a->routed)
		a->why = why;
	a->routed = true;
}

/* atext of RFC 5322, plus '.' for dot-atoms */
static bool
is_atext(unsigned char ch)
{
	return isalnum(ch) || (ch != 0 && strchr("!#$%&'*+-/=?^_`{|}~.", ch));
}

/* parse_domain -- [s, end) into a->domain, normalised. */
static bool
parse_domain(struct mw_addr *a, const char *s, const char *end)
{
	size_t len = (size_t)(end - s), i;
	char *d = a->domain;

	if (len == 0)
		return bad(a, "empty domain");
	if (*s == '[') {
		char inner[MW_ADDR_DOMAIN_MAX];
		const char *ip;
		struct mw_ip dummy;

		if (end[-1] != ']' || len < 3 || len >= sizeof(inner))
			return bad(a, "bad address literal");
		memcpy(inner, s + 1, len - 2);
		inner[len - 2] = '\0';
		/* RFC 5321: [192.0.2.1] or [IPv6:2001:db8::1], nothing else. */
		ip = inner;
		if (strncasecmp(ip, "IPv6:", 5) == 0) {
			ip += 5;
			if (!mw_ip_parse(ip, &dummy) ||
			    dummy.family != AF_INET6 || strchr(ip, '[') != NULL)
				return bad(a, "bad address literal");
		} else if (!mw_ip_parse(ip, &dummy) ||
		    dummy.family != AF_INET || strchr(ip, ':') != NULL) {
			return bad(a, "bad address literal");
		}
		a->literal = true;
		for (i = 0; i < len; i++)
			d[i] = (char)tolower((unsigned char)s[i]);
		d[len] = '\0';
		return true;
	}
	/* One trailing dot is the root; more are an error. */
	if (s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return bad(a, "bad domain length");
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.') {
			if (i == 0 || s[i - 1] == '.' || i == len - 1)
				return bad(a, "empty label in domain");
			if (s[i - 1] == '-' || s[i + 1] == '-')
				return bad(a, "hyphen at the edge of a label");
		} else if (!isalnum(ch) && ch != '-' && ch != '_') {
			return bad(a, "invalid character in domain");
		}
		d[i] = (char)tolower(ch);
	}
	if (s[0] == '-' || s[len - 1] == '-')
		return bad(a, "hyphen at the edge of a label");
	for (i = 0; i < len;) {
		size_t l = strcspn(s + i, ".");

		if (l > len - i)
			l = len - i;
		if (l > 63)
			return bad(a, "label longer than 63 bytes");
		i += l + 1;
	}
	d[len] = '\0';
	return true;
}

bool
mw_addr_parse(const char *raw, struct mw_addr *a)
{
	const char *s = raw, *end, *p, *at = NULL;
	size_t n = 0, nat = 0;

	memset(a, 0, sizeof(*a));
	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (s < end && *s == '<') {
		if (end[-1] != '>' || end - s < 2)
			return bad(a, "unbalanced angle brackets");
		s++;
		end--;
	} else if (s < end && end[-1] == '>') {
		return bad(a, "unbalanced angle brackets");
	}
	if (s == end) {
		/* Only "<>" is the null sender; nothing at all is an error. */
		if (raw[0] == '\0' || s == raw)
			return bad(a, "empty address");
		a->null = true;
		return true;
	}
	/* A source route, @hop1,@hop2:user@domain: routing by the sender. */
	if (*s == '@') {
		const char *colon = memchr(s, ':', (size_t)(end - s));

		if (colon == NULL)
			return bad(a, "source route without \":\"");
		routed(a, "source route");
		s = colon + 1;
	}
	/* The local part: a quoted string or a dot-atom. */
	p = s;
	if (*p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			if (n + 1 >= sizeof(a->local))
				return bad(a, "local part too long");
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return bad(a,
				    "control character in local part");
			if (*p == '@' || *p == '%' || *p == '!')
				routed(a, "quoted local part hides routing");
			a->local[n++] = *p;
		}
		if (p >= end)
			return bad(a, "unterminated quoted local part");
		p++;
		if (n == 0)
			return bad(a, "empty local part");
		if (p < end && *p != '@')
			return bad(a, "text after the quoted local part");
	} else {
		for (; p < end && *p != '@'; p++) {
			if (!is_atext((unsigned char)*p) &&
			    (unsigned char)*p < 0x80)
				return bad(a,
				    "invalid character in local part");
			if (n + 1 >= sizeof(a->local))
				return bad(a, "local part too long");
			if (*p == '%')
				routed(a, "percent hack");
			if (*p == '!')
				routed(a, "bang path");
			a->local[n++] = *p;
		}
		if (n == 0)
			return bad(a, "empty local part");
		if (a->local[0] == '.' || a->local[n - 1] == '.' ||
		    strstr(a->local, "..") != NULL)
			return bad(a, "misplaced dot in local part");
	}
	a->local[n] = '\0';
	if (p >= end)
		return true; /* no domain: "postmaster" */
	/* p is at the first '@' after the local part; more mean routing. */
	for (const char *q = p; q < end; q++)
		if (*q == '@') {
			nat++;
			at = q;
		}
	/*
	 * user@host@ours: not an address (RFC 5321 and 5322 allow one "@"
	 * outside quotes); MTAs disagree on where it goes, so it is never
	 * local, and never anyone's own.
	 */
	if (nat > 1)
		return bad(a, "several @");
	if ((size_t)(end - at - 1) >= sizeof(a->domain))
		return bad(a, "domain too long");
	return parse_domain(a, at + 1, end);
}

/* needs_quotes -- can the local part not be written as a dot-atom? */
static bool
needs_quotes(const char *local)
{
	size_t i, len = strlen(local);

	if (len == 0 || local[0] == '.' || local[len - 1] == '.' ||
	    strstr(local, "..") != NULL)
		return true;
	for (i = 0; i < len; i++)
		if (!is_atext((unsigned char)local[i]) &&
		    (unsigned char)local[i] < 0x80)
			return true;
	return false;
}

bool
mw_addr_format(const struct mw_addr *a, char *buf, size_t size)
{
	size_t o = 0, i;
	int n;

	if (a->null) {
		if (size == 0)
			return false;
		buf[0] = '\0';
		return true;
	}
	if (needs_quotes(a->local)) {
		/* "john smith"@example.org stays one address when written. */
		if (o + 1 >= size)
			return false;
		buf[o++] = '"';
		for (i = 0; a->local[i] != '\0'; i++) {
			if (a->local[i] == '"' || a->local[i] == '\\') {
				if (o + 1 >= size)
					return false;
				buf[o++] = '\\';
			}
			if (o + 1 >= size)
				return false;
			buf[o++] = a->local[i];
		}
		if (o + 1 >= size)
			return false;
		buf[o++] = '"';
		buf[o] = '\0';
	} else {
		n = snprintf(buf, size, "%s", a->local);
		if (n < 0 || (size_t)n >= size)
			return false;
		o = (size_t)n;
	}
	if (a->domain[0] == '\0')
		return true;
	n = snprintf(buf + o, size - o, "@%s", a->domain);
	return n >= 0 && (size_t)n < size - o;
}

/* ------------------------------------------------------------ From: */

enum ftok { FT_END, FT_ATOM, FT_QSTRING, FT_DOMLIT, FT_SPECIAL, FT_ERROR };

struct from_lex {
	const char *p;
	char text[1024];
	char special;
	const char *why;
};

/* skip_cfws -- white space, folding and (nested (comments)). */
static bool
skip_cfws(struct from_lex *lx)
{
	for (;;) {
		while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r' ||
		    *lx->p == '\n')
			lx->p++;
		if (*lx->p != '(')
			return true;
		{
			int depth = 0;

			do {
				if (*lx->p == '\0') {
					lx->why = "unterminated comment";
					return false;
				}
				if (*lx->p == '\\' && lx->p[1] != '\0')
					lx->p++;
				else if (*lx->p == '(')
					depth++;
				else if (*lx->p == ')')
					depth--;
				lx->p++;
			} while (depth > 0);
		}
	}
}

static enum ftok
from_next(struct from_lex *lx)
{
	size_t n = 0;

	if (!skip_cfws(lx))
		return FT_ERROR;
	if (*lx->p == '\0')
		return FT_END;
	if (*lx->p == '"') {
		for (lx->p++; *lx->p != '"'; lx->p++) {
			if (*lx->p == '\0') {
				lx->why = "unterminated quoted string";
				return FT_ERROR;
			}
			if (*lx->p == '\\' && lx->p[1] != '\0')
				lx->p++;
			if (n + 1 >= sizeof(lx->text)) {
				lx->why = "quoted string too long";
				return FT_ERROR;
			}
			lx->text[n++] = *lx->p;
		}
		lx->p++;
		lx->text[n] = '\0';
		return FT_QSTRING;
	}
	if (*lx->p == '[') {
		while (*lx->p != ']') {
			if (*lx->p == '\0' || n + 2 >= sizeof(lx->text)) {
				lx->why = "unterminated domain literal";
				return FT_ERROR;
			}
			lx->text[n++] = *lx->p++;
		}
		lx->text[n++] = *lx->p++;
		lx->text[n] = '\0';
		return FT_DOMLIT;
	}
	if (strchr("<>:;@,", *lx->p) != NULL) {
		lx->special = *lx->p++;
		return FT_SPECIAL;
	}
	/* An atom (dots included; encoded words are atoms too). */
	while (*lx->p != '\0' && !strchr(" \t\r\n()<>:;@,\"[]", *lx->p)) {
		if (n + 1 >= sizeof(lx->text)) {
			lx->why = "word too long";
			return FT_ERROR;
		}
		lx->text[n++] = *lx->p++;
	}
	if (n == 0) {
		lx->why = "unexpected character";
		return FT_ERROR;
	}
	lx->text[n] = '\0';
	return FT_ATOM;
}

/* Append a token to an address being rebuilt, quoting quoted strings. */
static bool
spec_add(char *spec, size_t size, enum ftok t, const struct from_lex *lx)
{
	size_t o = strlen(spec);
	const char *q;

	if (t == FT_QSTRING) {
		if (o + 2 >= size)
			return false;
		spec[o++] = '"';
		for (q = lx->text; *q != '\0'; q++) {
			if (*q == '"' || *q == '\\') {
				if (o + 1 >= size)
					return false;
				spec[o++] = '\\';
			}
			if (o + 2 >= size)
				return false;
			spec[o++] = *q;
		}
		spec[o++] = '"';
		spec[o] = '\0';
		return true;
	}
	if (t == FT_SPECIAL) {
		if (o + 1 >= size)
			return false;
		spec[o++] = lx->special;
		spec[o] = '\0';
		return true;
	}
	if (o + strlen(lx->text) >= size)
		return false;
	memcpy(spec + o, lx->text, strlen(lx->text) + 1);
	return true;
}

static bool
from_bad(struct mw_from *f, const char *why)
{
	f->malformed = true;
	f->why = why;
	return false;
}

/* add_box -- one mailbox from its rebuilt addr-spec. */
static bool
add_box(struct mw_from *f, const char *spec)
{
	struct mw_addr tmp, *a = f->n < MW_FROM_MAX ? &f->box[f->n] : &tmp;

	if (!mw_addr_parse(spec, a) || a->null || a->domain[0] == '\0')
		return from_bad(f,
		    a->why ? a->why : "a mailbox needs local@domain");
	f->n++;
	return true;
}

bool
mw_from_parse(const char *value, struct mw_from *f)
{
	struct from_lex lx = { .p = value };
	char spec[1100] = "";
	bool in_angle = false, in_group = false, saw_angle = false;
	bool words_before = false; /* display name words (no angle yet) */

	memset(f, 0, sizeof(*f));
	for (;;) {
		enum ftok t = from_next(&lx);

		if (t == FT_ERROR)
			return from_bad(f, lx.why);
		if (t == FT_END ||
		    (t == FT_SPECIAL &&
			(lx.special == ',' || lx.special == ';'))) {
			if (in_angle)
				return from_bad(f, "unterminated <");
			if (saw_angle || spec[0] != '\0') {
				if (!saw_angle && words_before)
					return from_bad(f,
					    "words without an "
					    "address in <>");
				if (!add_box(f, spec))
					return false;
			}
			if (t == FT_SPECIAL && lx.special == ';') {
				if (!in_group)
					return from_bad(f,
					    "\";\" outside a group");
				in_group = false;
			}
			spec[0] = '\0';
			saw_angle = words_before = false;
			if (t == FT_END) {
				if (in_group)
					return from_bad(f,
					    "group without \";\"");
				break;
			}
			continue;
		}
		if (t == FT_SPECIAL && lx.special == '<') {
			if (in_angle || saw_angle)
				return from_bad(f, "more than one <address>");
			/* What came before was the display name. */
			words_before = false;
			spec[0] = '\0';
			in_angle = true;
			continue;
		}
		if (t == FT_SPECIAL && lx.special == '>') {
			if (!in_angle)
				return from_bad(f, "\">\" without \"<\"");
			in_angle = false;
			saw_angle = true;
			continue;
		}
		if (t == FT_SPECIAL && lx.special == ':' && !in_angle) {
			if (in_group || saw_angle)
				return from_bad(f, "misplaced \":\"");
			/* The group's name was what came before. */
			in_group = f->group = true;
			spec[0] = '\0';
			words_before = false;
			continue;
		}
		if (saw_angle)
			return from_bad(f, "text after <address>");
		/*
		 * Outside <>, two words in a row (with no "@" or "." between)
		 * are a display name, not an addr-spec.
		 */
		if (!in_angle && (t == FT_ATOM || t == FT_QSTRING) &&
		    spec[0] != '\0') {
			char last = spec[strlen(spec) - 1];

			if (last != '@' && last != '.' &&
			    !(t == FT_ATOM && lx.text[0] == '.'))
				words_before = true;
		}
		if (!spec_add(spec, sizeof(spec), t, &lx))
			return from_bad(f, "address too long");
	}
	if (f->n == 0)
		return from_bad(f, "no mailbox");
	return true;
}
