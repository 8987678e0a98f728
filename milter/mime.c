/*
 * mime.c -- a streaming, bounded MIME walker (see mw_mime.h).
 *
 * A message is a tree of entities.  Each entity (struct ent) goes through
 * two phases: its header block, read line by line, and its body, which
 * runs through a pipeline chosen when the header block ends:
 *
 *   raw bytes -> transfer decoder (identity, quoted-printable, base64)
 *     -> text/plain:  charset -> UTF-8 -> text sink
 *     -> text/html:   charset -> UTF-8 -> HTML-to-text -> text sink
 *     -> multipart:   boundary splitter -> child entity (raw bytes)
 *     -> message:     the inner message, an entity of its own
 *     -> attachment:  nothing (only its headers are kept)
 *
 * Every stage is a state machine that can stop after any byte and resume
 * with the next chunk, so a chunk may end anywhere.  No stage assumes a
 * line length: what a stage must hold back (the start of a line that may
 * be a boundary, a header field, an HTML entity or attribute) is held in
 * a buffer of fixed or configured size, and what does not fit is either
 * passed on (it cannot be what was looked for) or dropped with the
 * truncated flag set.  Only one child per multipart is alive at a time,
 * so memory grows with the depth of the tree, not with its width.
 *
 * Bytes pass once through each level they are nested in, and the depth is
 * capped, so the cost is linear in the input.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_mime.h"

#define DEF_INPUT    (1024 * 1024)
#define DEF_TEXT     (1024 * 1024)
#define DEF_PARTS    100
#define DEF_DEPTH    10
#define DEF_URLS     200
#define DEF_ATTACH   50
#define DEPTH_CAP    32   /* recursion bound whatever the limits say */
#define MAX_FIELD    8192 /* bytes kept of one Content-* header field */
#define MAX_BOUNDARY 256  /* RFC 2046 allows 70 */
#define MAX_NAME     80   /* a header field name longer is no name */
#define MAX_ATTR     2048 /* bytes kept of an href/src value */
#define MAX_AUTH     300  /* bytes kept of a URL's authority */
#define MAX_SEGMENTS 64   /* RFC 2231 continuations */
#define OUTBUF       1024

/* A growable byte string; callers bound its growth. */
#define BUF_SLACK 64 /* zeroed bytes after a buffer (see buf_add) */

struct buf {
	char *p;
	size_t len, cap;
};

enum cs { CS_UTF8, CS_LATIN1 };

/* Incremental charset conversion to UTF-8; carry holds a split sequence. */
struct conv {
	enum cs cs;
	unsigned char carry[4];
	unsigned nc;
};

typedef void emit_fn(void *ctx, const char *p, size_t n);

enum kind { K_IGNORE, K_TEXT, K_HTML, K_MULTI, K_MESSAGE, K_ATTACH };
enum enc { ENC_IDENT, ENC_QP, ENC_B64 };
enum hstate { HS_BOL, HS_CR, HS_NAME, HS_VALUE };
enum field { F_NONE, F_CTYPE, F_CTE, F_CDISP };
enum sphase { SP_PRE, SP_PART, SP_EPI };
enum hold { H_MAYBE, H_NO, H_DELIM, H_CLOSE, H_LEARN };

struct html;

/* The boundary splitter of a multipart entity. */
struct split {
	char *b[2]; /* the declared boundary, one learned from the body */
	size_t bl[2];
	unsigned nb;
	enum sphase phase;
	bool bol;  /* at the beginning of a line */
	bool cr;   /* the last content byte was CR, perhaps of a CRLF */
	bool skip; /* in the rest of a boundary line */
	bool holding;
	unsigned eol;   /* pending line end: 0, 1 (LF) or 2 (CRLF) */
	unsigned alive; /* bit j: hold may still be boundary j; bit 2: learn */
	unsigned char hold[MAX_BOUNDARY + 8];
	size_t hlen;
	struct ent *child;
};

struct ent {
	struct mw_mime *m;
	unsigned depth;
	bool digest; /* parent is multipart/digest: default message/rfc822 */
	bool in_body;
	bool sep_done; /* the text part separator was written */
	/* Header phase. */
	enum hstate hstate;
	enum field hfield;
	bool name_ws;
	char hname[MAX_NAME + 1];
	size_t hnlen;
	struct buf hval;
	char *ctype, *cte, *cdisp;
	/* Body. */
	enum kind kind;
	enum enc enc;
	unsigned dst; /* decoder state */
	uint32_t acc;
	unsigned char qh;
	struct conv conv;
	struct html *html;
	struct split *sp;
	struct ent *child; /* of a message/rfc822 entity */
};

/* The URL scanner over the text stream. */
struct urlscan {
	unsigned char tail[8];
	unsigned ntail;
	bool on;
	char auth[MAX_AUTH];
	size_t len;
	bool over;
};

struct mw_mime {
	struct mw_mime_limits lim;
	size_t in_total;
	bool truncated, failed, ended;
	bool input_cut; /* max_input reached */
	unsigned nparts;
	struct ent *top;
	struct buf text;
	struct urlscan us;
	struct mw_mime_attachment *att;
	size_t natt, att_cap;
	char **hosts;
	size_t nhosts, hosts_cap;
	uint32_t *htab; /* open addressing: index + 1 into hosts, 0 empty */
	size_t htab_size;
};

static void ent_feed(struct ent *e, const unsigned char *p, size_t n);
static void ent_end(struct ent *e);
static void ent_free(struct ent *e);

/* ---------------------------------------------------------------- */
/* Small helpers. */

static unsigned char
lc(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool
is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

static bool
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lc(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool
eq_nocase(const char *a, size_t alen, const char *b)
{
	size_t i;

	for (i = 0; i < alen; i++)
		if (b[i] == '\0' ||
		    lc((unsigned char)a[i]) != (unsigned char)b[i])
			return false;
	return b[alen] == '\0';
}

static void *
m_alloc(struct mw_mime *m, size_t n)
{
	void *p = calloc(1, n);

	if (p == NULL)
		m->failed = true;
	return p;
}

static char *
m_strndup(struct mw_mime *m, const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL) {
		m->failed = true;
		return NULL;
	}
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Append to b, growing it up to max bytes; false when it did not all fit. */
static bool
buf_add(struct mw_mime *m, struct buf *b, const void *p, size_t n, size_t max)
{
	bool all = true;

	if (n > max - b->len) {
		n = max - b->len;
		all = false;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > max + 1)
			cap = max + 1;
		/*
		 * PCRE2's JIT reads a little past the subject with wide loads:
		 * the slack after cap is zeroed so those reads are defined.
		 */
		np = realloc(b->p, cap + BUF_SLACK);
		if (np == NULL) {
			m->failed = true;
			return false;
		}
		memset(np + (b->cap ? b->cap + BUF_SLACK : 0), 0,
		    cap + BUF_SLACK - (b->cap ? b->cap + BUF_SLACK : 0));
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return all;
}

struct bufctx {
	struct mw_mime *m;
	struct buf *b;
};

static void
emit_to_buf(void *ctx, const char *p, size_t n)
{
	struct bufctx *bc = ctx;

	buf_add(bc->m, bc->b, p, n, SIZE_MAX / 2);
}

/* ---------------------------------------------------------------- */
/* Charsets: UTF-8 (validated), ISO-8859-1 read as windows-1252. */

/* windows-1252 0x80-0x9f; the five holes stay C1 code points. */
static const uint16_t cp1252[32] = { 0x20ac, 0x0081, 0x201a, 0x0192, 0x201e,
	0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008d,
	0x017d, 0x008f, 0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013,
	0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e,
	0x0178 };

static const char repl[] = "\xef\xbf\xbd"; /* U+FFFD */

static enum cs
cs_lookup(const char *name, size_t len)
{
	static const char *const latin[] = { "iso-8859-1", "iso8859-1",
		"iso_8859-1", "iso_8859-1:1987", "latin1", "latin-1", "l1",
		"cp819", "ibm819", "iso-ir-100", "windows-1252", "cp1252",
		"x-cp1252", "csisolatin1", NULL };
	size_t i;

	for (i = 0; latin[i] != NULL; i++)
		if (eq_nocase(name, len, latin[i]))
			return CS_LATIN1;
	/* UTF-8, US-ASCII and every charset we do not convert. */
	return CS_UTF8;
}

static size_t
put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * The UTF-8 sequence at p: its length when valid, 0 when it is a valid
 * but incomplete prefix, -k when its first k bytes are to be replaced by
 * one U+FFFD (overlong forms, surrogates and NUL are invalid).
 */
static int
u8len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	int need, k;

	if (c < 0x80)
		return c == 0 ? -1 : 1;
	if (c < 0xc2)
		return -1;
	if (c < 0xe0) {
		need = 1;
	} else if (c < 0xf0) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c < 0xf5) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return -1;
	}
	for (k = 1; k <= need; k++) {
		if ((size_t)k >= n)
			return 0;
		if (p[k] < lo || p[k] > hi)
			return -k;
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

static void
conv_utf8(struct conv *cv, const unsigned char *p, size_t n, emit_fn *emit,
    void *ctx)
{
	size_t i = 0, start;
	int r;

	if (cv->nc > 0) {
		/* Complete the sequence split by the previous chunk. */
		unsigned char tmp[8];
		size_t take = n < 4 ? n : 4, used;

		memcpy(tmp, cv->carry, cv->nc);
		memcpy(tmp + cv->nc, p, take);
		r = u8len(tmp, cv->nc + take);
		if (r == 0) {
			memcpy(cv->carry, tmp, cv->nc + take);
			cv->nc += (unsigned)take;
			return;
		}
		if (r > 0)
			emit(ctx, (const char *)tmp, (size_t)r);
		else
			emit(ctx, repl, 3);
		used = (size_t)(r > 0 ? r : -r) - cv->nc;
		cv->nc = 0;
		i = used;
	}
	start = i;
	while (i < n) {
		/* Eight ASCII bytes without NUL at a time. */
		while (n - i >= 8) {
			uint64_t w;

			memcpy(&w, p + i, 8);
			if (((w | ((w - 0x0101010101010101ULL) & ~w)) &
				0x8080808080808080ULL) != 0)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		if (p[i] >= 0x80 || p[i] == 0) {
			r = u8len(p + i, n - i);
			if (r > 0) {
				i += (size_t)r;
				continue;
			}
			if (i > start)
				emit(ctx, (const char *)p + start, i - start);
			if (r == 0) {
				cv->nc = (unsigned)(n - i);
				memcpy(cv->carry, p + i, cv->nc);
				return;
			}
			emit(ctx, repl, 3);
			i += (size_t)-r;
			start = i;
		} else {
			i++;
		}
	}
	if (n > start)
		emit(ctx, (const char *)p + start, n - start);
}

static void
conv_latin1(const unsigned char *p, size_t n, emit_fn *emit, void *ctx)
{
	char out[OUTBUF + 4];
	size_t o = 0, i;

	for (i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (c == 0)
			o += put_utf8(out + o, 0xfffd);
		else if (c < 0x80)
			out[o++] = (char)c;
		else if (c < 0xa0)
			o += put_utf8(out + o, cp1252[c - 0x80]);
		else
			o += put_utf8(out + o, c);
		if (o >= OUTBUF) {
			emit(ctx, out, o);
			o = 0;
		}
	}
	if (o > 0)
		emit(ctx, out, o);
}

static void
conv_feed(struct conv *cv, const unsigned char *p, size_t n, emit_fn *emit,
    void *ctx)
{
	if (cv->cs == CS_LATIN1)
		conv_latin1(p, n, emit, ctx);
	else
		conv_utf8(cv, p, n, emit, ctx);
}

static void
conv_flush(struct conv *cv, emit_fn *emit, void *ctx)
{
	if (cv->nc > 0)
		emit(ctx, repl, 3);
	cv->nc = 0;
}

/* One-shot conversion of a whole string, appended to b. */
static void
conv_all(struct mw_mime *m, enum cs cs, const char *s, size_t n, struct buf *b)
{
	struct conv cv = { cs, { 0 }, 0 };
	struct bufctx bc = { m, b };

	conv_feed(&cv, (const unsigned char *)s, n, emit_to_buf, &bc);
	conv_flush(&cv, emit_to_buf, &bc);
}

/* ---------------------------------------------------------------- */
/* URL host names. */

static uint32_t
host_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static void
url_add(struct mw_mime *m, const char *host, size_t n)
{
	size_t mask, i;
	uint32_t h = host_hash(host, n);

	if (m->htab != NULL) {
		mask = m->htab_size - 1;
		for (i = h & mask; m->htab[i] != 0; i = (i + 1) & mask) {
			const char *o = m->hosts[m->htab[i] - 1];

			if (strncmp(o, host, n) == 0 && o[n] == '\0')
				return;
		}
	}
	if (m->nhosts >= m->lim.max_urls) {
		m->truncated = true;
		return;
	}
	if (m->htab == NULL || (m->nhosts + 1) * 2 > m->htab_size) {
		size_t ns = m->htab_size ? m->htab_size * 2 : 16, k;
		uint32_t *nt = calloc(ns, sizeof(*nt));

		if (nt == NULL) {
			m->failed = true;
			return;
		}
		for (k = 0; k < m->nhosts; k++) {
			const char *o = m->hosts[k];

			for (i = host_hash(o, strlen(o)) & (ns - 1); nt[i] != 0;
			     i = (i + 1) & (ns - 1))
				;
			nt[i] = (uint32_t)(k + 1);
		}
		free(m->htab);
		m->htab = nt;
		m->htab_size = ns;
	}
	if (m->nhosts == m->hosts_cap) {
		size_t nc = m->hosts_cap ? m->hosts_cap * 2 : 16;
		char **nh = realloc(m->hosts, nc * sizeof(*nh));

		if (nh == NULL) {
			m->failed = true;
			return;
		}
		m->hosts = nh;
		m->hosts_cap = nc;
	}
	if ((m->hosts[m->nhosts] = m_strndup(m, host, n)) == NULL)
		return;
	m->nhosts++;
	mask = m->htab_size - 1;
	for (i = h & mask; m->htab[i] != 0; i = (i + 1) & mask)
		;
	m->htab[i] = (uint32_t)m->nhosts;
}

/*
 * The host of a URL authority ("user:pw@Host.Example.:8080"): after the
 * last '@', before the port, percent escapes decoded, lower-cased, trailing
 * dots removed.  Kept when it looks like a domain name (or an IPv4
 * address) with at least one dot, or is a bracketed IPv6 literal.
 */
static void
url_authority(struct mw_mime *m, const char *a, size_t n)
{
	char host[MAX_AUTH];
	size_t i, o = 0, end;
	const char *at;

	while ((at = memchr(a, '@', n)) != NULL) {
		n -= (size_t)(at - a) + 1;
		a = at + 1;
	}
	if (n > 0 && a[0] == '[') {
		const char *rb = memchr(a, ']', n);

		if (rb == NULL || (size_t)(rb - a) + 1 > sizeof(host))
			return;
		for (i = 0; i <= (size_t)(rb - a); i++)
			host[o++] = (char)lc((unsigned char)a[i]);
		url_add(m, host, o);
		return;
	}
	for (end = 0; end < n && a[end] != ':'; end++)
		;
	for (i = 0; i < end; i++) {
		unsigned char c = (unsigned char)a[i];

		if (c == '%' && i + 2 < end &&
		    hexval((unsigned char)a[i + 1]) >= 0 &&
		    hexval((unsigned char)a[i + 2]) >= 0) {
			c = (unsigned char)(hexval((unsigned char)a[i + 1]) *
				16 +
			    hexval((unsigned char)a[i + 2]));
			i += 2;
		}
		c = lc(c);
		if (!(is_alnum(c) || c == '-' || c == '_' || c == '.' ||
			c >= 0x80) ||
		    o == sizeof(host))
			return;
		host[o++] = (char)c;
	}
	/* "www.example.com." or "...": punctuation, not the name. */
	while (o > 0 && host[o - 1] == '.')
		o--;
	if (o == 0 || o > 253 || host[0] == '.' || memchr(host, '.', o) == NULL)
		return;
	for (i = 1; i < o; i++)
		if (host[i] == '.' && host[i - 1] == '.')
			return; /* an empty label */
	url_add(m, host, o);
}

/* An href/src/action/background value: absolute http(s)/ftp, // or www. */
static void
url_attr(struct mw_mime *m, const char *v, size_t n)
{
	char u[MAX_ATTR];
	size_t i, o = 0, a;
	bool slashes = false;

	/* Browsers drop tabs and line ends anywhere in a URL. */
	for (i = 0; i < n && o < sizeof(u); i++)
		if (v[i] != '\t' && v[i] != '\n' && v[i] != '\r')
			u[o++] = v[i];
	for (i = 0; i < o && (unsigned char)u[i] <= ' '; i++)
		;
	if (o - i >= 5 && eq_nocase(u + i, 5, "http:")) {
		i += 5;
		slashes = true;
	} else if (o - i >= 6 && eq_nocase(u + i, 6, "https:")) {
		i += 6;
		slashes = true;
	} else if (o - i >= 4 && eq_nocase(u + i, 4, "ftp:")) {
		i += 4;
		slashes = true;
	} else if (o - i >= 2 && u[i] == '/' && u[i + 1] == '/') {
		slashes = true;
	} else if (!(o - i >= 4 && eq_nocase(u + i, 4, "www."))) {
		return;
	}
	/* Browsers read "http:\\host" and "http:/host" as "http://host". */
	while (slashes && i < o && (u[i] == '/' || u[i] == '\\'))
		i++;
	for (a = i; a < o; a++)
		if (u[a] == '/' || u[a] == '\\' || u[a] == '?' || u[a] == '#' ||
		    (unsigned char)u[a] <= ' ')
			break;
	url_authority(m, u + i, a - i);
}

static bool
is_auth_char(unsigned char c)
{
	return is_alnum(c) || c >= 0x80 || c == '-' || c == '.' || c == '_' ||
	    c == '~' || c == '%' || c == '@' || c == ':' || c == '[' ||
	    c == ']';
}

static void
url_finish(struct mw_mime *m)
{
	struct urlscan *us = &m->us;

	if (us->on && !us->over)
		url_authority(m, us->auth, us->len);
	us->on = false;
}

/* A new text part: a URL never spans two. */
static void
url_reset(struct mw_mime *m)
{
	url_finish(m);
	m->us.ntail = 0;
}

/* The k-th byte before p[i] (k >= 1), lower-cased, from p or the tail. */
static unsigned char
url_prev(const struct urlscan *us, const unsigned char *p, size_t i, size_t k)
{
	if (k <= i)
		return lc(p[i - k]);
	k -= i;
	return k <= us->ntail ? lc(us->tail[us->ntail - k]) : 0;
}

static bool
url_ends_with(const struct urlscan *us, const unsigned char *p, size_t i,
    const char *pat, size_t l)
{
	size_t k;

	/* p[i] is the last character of pat. */
	for (k = 1; k < l; k++)
		if (url_prev(us, p, i, k) != (unsigned char)pat[l - 1 - k])
			return false;
	return true;
}

static void
url_scan(struct mw_mime *m, const unsigned char *p, size_t n)
{
	struct urlscan *us = &m->us;
	size_t i, k;

	for (i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (us->on) {
			if (is_auth_char(c)) {
				if (us->len < sizeof(us->auth))
					us->auth[us->len++] = (char)c;
				else
					us->over = true;
				continue;
			}
			url_finish(m);
		}
		if (c != '/' && c != '.') {
			while (i + 1 < n && p[i + 1] != '/' && p[i + 1] != '.')
				i++;
			continue;
		}
		if (c == '/') {
			/* Most slashes are not the second of "://". */
			if (url_prev(us, p, i, 1) != '/' ||
			    url_prev(us, p, i, 2) != ':')
				continue;
			if (url_ends_with(us, p, i, "http://", 7) ||
			    url_ends_with(us, p, i, "https://", 8) ||
			    url_ends_with(us, p, i, "ftp://", 6)) {
				us->on = true;
				us->over = false;
				us->len = 0;
			}
		} else if (c == '.') {
			if (url_ends_with(us, p, i, "www.", 4) &&
			    !is_auth_char(url_prev(us, p, i, 4))) {
				us->on = true;
				us->over = false;
				memcpy(us->auth, "www.", 4);
				us->len = 4;
			}
		}
	}
	/* Keep the last bytes for a pattern split by the chunk. */
	if (n >= sizeof(us->tail)) {
		memcpy(us->tail, p + n - sizeof(us->tail), sizeof(us->tail));
		us->ntail = sizeof(us->tail);
	} else {
		size_t keep = us->ntail + n > sizeof(us->tail)
		    ? sizeof(us->tail) - n
		    : us->ntail;

		memmove(us->tail, us->tail + us->ntail - keep, keep);
		for (k = 0; k < n; k++)
			us->tail[keep + k] = p[k];
		us->ntail = (unsigned)(keep + n);
	}
}

/* ---------------------------------------------------------------- */
/* The text sink: every text part ends here. */

static void
text_keep(struct mw_mime *m, const char *p, size_t n)
{
	size_t room;

	if (m->text.len + n > m->lim.max_text) {
		room = m->lim.max_text - m->text.len;
		/* Cut before a UTF-8 sequence, never inside one. */
		while (room > 0 && ((unsigned char)p[room] & 0xc0) == 0x80)
			room--;
		n = room;
		m->truncated = true;
	}
	if (n > 0)
		buf_add(m, &m->text, p, n, m->lim.max_text);
}

static void
text_out(void *ctx, const char *p, size_t n)
{
	struct ent *e = ctx;
	struct mw_mime *m = e->m;
	const char *cr;

	if (n == 0)
		return;
	if (!e->sep_done) {
		e->sep_done = true;
		url_reset(m);
		if (m->text.len > 0 && m->text.p[m->text.len - 1] != '\n')
			text_keep(m, "\n", 1);
	}
	url_scan(m, (const unsigned char *)p, n);
	while (n > 0) {
		cr = memchr(p, '\r', n);
		if (cr == NULL) {
			text_keep(m, p, n);
			return;
		}
		text_keep(m, p, (size_t)(cr - p));
		n -= (size_t)(cr - p) + 1;
		p = cr + 1;
	}
}

/* ---------------------------------------------------------------- */
/* HTML to text. */

enum hst {
	T_TEXT,
	T_LT,
	T_TAGNAME,
	T_INTAG,
	T_ATTRNAME,
	T_AFTERATTR,
	T_BEFOREVAL,
	T_VALDQ,
	T_VALSQ,
	T_VALUQ,
	T_BANG,
	T_BANGDASH,
	T_COMMENT,
	T_DECL,
	T_RAW,
	T_ENTITY
};

struct html {
	enum hst st, ret; /* ret: the state an entity returns to */
	char tag[16];
	size_t tlen;
	bool endtag;
	char an[16];
	size_t alen;
	bool want; /* this attribute's value may be a URL */
	char val[MAX_ATTR];
	size_t vlen;
	char ent[34];
	size_t elen;
	const char *raw; /* "</script" or "</style" while in their content */
	size_t rawi;
	unsigned dashes;
	bool space;         /* collapsed whitespace pending */
	unsigned char last; /* last byte written, '\n' at the start */
	char out[OUTBUF];
	size_t olen;
};

/* Named character references: HTML 4's Latin-1 set and common others. */
static const char *const latin1_names[96] = { "nbsp", "iexcl", "cent", "pound",
	"curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo",
	"not", "shy", "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute",
	"micro", "para", "middot", "cedil", "sup1", "ordm", "raquo", "frac14",
	"frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde",
	"Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml",
	"Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve",
	"Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave",
	"Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig", "agrave",
	"aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil",
	"egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc",
	"iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml",
	"divide", "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute",
	"thorn", "yuml" };

static const struct {
	const char *name;
	uint32_t cp;
} other_names[] = { { "amp", '&' }, { "lt", '<' }, { "gt", '>' },
	{ "quot", '"' }, { "apos", '\'' }, { "AMP", '&' }, { "LT", '<' },
	{ "GT", '>' }, { "QUOT", '"' }, { "euro", 0x20ac }, { "trade", 0x2122 },
	{ "hellip", 0x2026 }, { "mdash", 0x2014 }, { "ndash", 0x2013 },
	{ "lsquo", 0x2018 }, { "rsquo", 0x2019 }, { "sbquo", 0x201a },
	{ "ldquo", 0x201c }, { "rdquo", 0x201d }, { "bdquo", 0x201e },
	{ "bull", 0x2022 }, { "dagger", 0x2020 }, { "Dagger", 0x2021 },
	{ "permil", 0x2030 }, { "lsaquo", 0x2039 }, { "rsaquo", 0x203a },
	{ "OElig", 0x152 }, { "oelig", 0x153 }, { "Scaron", 0x160 },
	{ "scaron", 0x161 }, { "Yuml", 0x178 }, { "fnof", 0x192 },
	{ "circ", 0x2c6 }, { "tilde", 0x2dc }, { "ensp", ' ' }, { "emsp", ' ' },
	{ "thinsp", ' ' }, { "zwnj", 0x200c }, { "zwj", 0x200d },
	{ "lrm", 0x200e }, { "rlm", 0x200f }, { "larr", 0x2190 },
	{ "rarr", 0x2192 }, { "uarr", 0x2191 }, { "darr", 0x2193 },
	{ "hearts", 0x2665 }, { "check", 0x2713 } };

/*
 * The code point of entity name (without '&' and ';'), or -1.  semi: it
 * was terminated by ';' (required for all but the Latin-1 names and the
 * four basic ones, as browsers do).
 */
static long
entity_value(const char *name, size_t len, bool semi)
{
	size_t i;

	if (len >= 2 && name[0] == '#') {
		bool hex = name[1] == 'x' || name[1] == 'X';
		unsigned long v = 0;

		i = hex ? 2 : 1;
		if (i >= len)
			return -1;
		for (; i < len; i++) {
			int d = hex
			    ? hexval((unsigned char)name[i])
			    : (name[i] >= '0' && name[i] <= '9' ? name[i] - '0'
								: -1);

			if (d < 0)
				return -1;
			if (v <= 0x10ffff)
				v = v * (hex ? 16 : 10) + (unsigned long)d;
		}
		if (v == 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			return 0xfffd;
		if (v >= 0x80 && v < 0xa0)
			return cp1252[v - 0x80];
		return (long)v;
	}
	if (len > 6)
		return -1; /* no name below is longer */
	for (i = 0; i < 96; i++)
		if (latin1_names[i][0] == name[0] &&
		    strncmp(latin1_names[i], name, len) == 0 &&
		    latin1_names[i][len] == '\0')
			return (long)(0xa0 + i);
	for (i = 0; i < sizeof(other_names) / sizeof(other_names[0]); i++)
		if (other_names[i].name[0] == name[0] &&
		    strncmp(other_names[i].name, name, len) == 0 &&
		    other_names[i].name[len] == '\0')
			return semi || other_names[i].cp < 0x80
			    ? (long)other_names[i].cp
			    : -1;
	return -1;
}

/* Characters that render as nothing: spammers put them inside words. */
static bool
invisible(uint32_t cp)
{
	return cp == 0xad || (cp >= 0x200b && cp <= 0x200f) || cp == 0x2060 ||
	    cp == 0xfeff;
}

static void
html_flush(struct ent *e)
{
	struct html *h = e->html;

	if (h->olen > 0)
		text_out(e, h->out, h->olen);
	h->olen = 0;
}

static void
html_put(struct ent *e, const char *p, size_t n)
{
	struct html *h = e->html;

	if (h->olen + n > sizeof(h->out))
		html_flush(e);
	memcpy(h->out + h->olen, p, n);
	h->olen += n;
	h->last = (unsigned char)p[n - 1];
}

/* One byte of text: whitespace runs collapse to one space. */
static void
html_char(struct ent *e, unsigned char c)
{
	struct html *h = e->html;

	if (is_ws(c)) {
		if (h->last != '\n' && h->last != ' ')
			h->space = true;
		return;
	}
	if (h->space) {
		h->space = false;
		html_put(e, " ", 1);
	}
	html_put(e, (const char *)&c, 1);
}

/* Bytes that are neither blanks nor markup. */
static void
html_run(struct ent *e, const unsigned char *p, size_t n)
{
	struct html *h = e->html;

	if (h->space) {
		h->space = false;
		html_put(e, " ", 1);
	}
	while (n > 0) {
		size_t k = sizeof(h->out) - h->olen;

		if (k == 0) {
			html_flush(e);
			continue;
		}
		if (k > n)
			k = n;
		memcpy(h->out + h->olen, p, k);
		h->olen += k;
		p += k;
		n -= k;
	}
	h->last = p[-1];
}

static void
html_newline(struct ent *e)
{
	struct html *h = e->html;

	h->space = false;
	if (h->last != '\n')
		html_put(e, "\n", 1);
}

static void
attr_add(struct html *h, const char *p, size_t n)
{
	if (h->want && h->vlen + n <= sizeof(h->val)) {
		memcpy(h->val + h->vlen, p, n);
		h->vlen += n;
	}
}

/* A decoded character reference, to the text or the attribute value. */
static void
entity_put(struct ent *e, long cp)
{
	struct html *h = e->html;
	char u[8];
	size_t n;

	if (invisible((uint32_t)cp))
		return;
	if (cp == 0xa0)
		cp = ' '; /* &nbsp; is a space to the rules */
	n = put_utf8(u, (uint32_t)cp);
	if (h->ret != T_TEXT) {
		attr_add(h, u, n);
	} else if (cp == ' ') {
		/* Written as is: &nbsp; does not collapse. */
		if (h->space)
			html_put(e, " ", 1);
		h->space = false;
		html_put(e, " ", 1);
	} else if (n == 1) {
		html_char(e, (unsigned char)u[0]);
	} else {
		if (h->space) {
			h->space = false;
			html_put(e, " ", 1);
		}
		html_put(e, u, n);
	}
}

/* Text that was not a reference after all, as it was. */
static void
entity_literal(struct ent *e, const char *p, size_t n, bool semi)
{
	struct html *h = e->html;
	size_t i;

	if (h->ret == T_TEXT) {
		for (i = 0; i < n; i++)
			html_char(e, (unsigned char)p[i]);
		if (semi)
			html_char(e, ';');
	} else {
		attr_add(h, p, n);
		if (semi)
			attr_add(h, ";", 1);
	}
}

/* The entity in h->ent is complete (semi: ended by ';'). */
static void
entity_done(struct ent *e, bool semi)
{
	struct html *h = e->html;
	long cp = entity_value(h->ent, h->elen, semi);
	size_t k;

	h->st = h->ret;
	if (cp >= 0) {
		entity_put(e, cp);
		return;
	}
	/* "&copy2019": browsers take the longest Latin-1 name. */
	for (k = h->elen < 7 ? h->elen : 7; h->ent[0] != '#' && k-- > 2;)
		if ((cp = entity_value(h->ent, k, false)) >= 0) {
			entity_put(e, cp);
			entity_literal(e, h->ent + k, h->elen - k, semi);
			return;
		}
	entity_literal(e, "&", 1, false);
	entity_literal(e, h->ent, h->elen, semi);
}

enum tagclass { TC_NONE, TC_BLOCK, TC_CELL, TC_SCRIPT, TC_STYLE };

/* What a tag does to the text: a line break, a space, raw content. */
static enum tagclass
tag_class(const char *t, size_t n)
{
	static const struct {
		const char *name;
		unsigned char len, cls;
	} tags[] = { { "br", 2, TC_BLOCK }, { "p", 1, TC_BLOCK },
		{ "div", 3, TC_BLOCK }, { "tr", 2, TC_BLOCK },
		{ "li", 2, TC_BLOCK }, { "ul", 2, TC_BLOCK },
		{ "ol", 2, TC_BLOCK }, { "table", 5, TC_BLOCK },
		{ "h1", 2, TC_BLOCK }, { "h2", 2, TC_BLOCK },
		{ "h3", 2, TC_BLOCK }, { "h4", 2, TC_BLOCK },
		{ "h5", 2, TC_BLOCK }, { "h6", 2, TC_BLOCK },
		{ "title", 5, TC_BLOCK }, { "blockquote", 10, TC_BLOCK },
		{ "pre", 3, TC_BLOCK }, { "hr", 2, TC_BLOCK },
		{ "dt", 2, TC_BLOCK }, { "dd", 2, TC_BLOCK },
		{ "center", 6, TC_BLOCK }, { "form", 4, TC_BLOCK },
		{ "section", 7, TC_BLOCK }, { "article", 7, TC_BLOCK },
		{ "header", 6, TC_BLOCK }, { "footer", 6, TC_BLOCK },
		{ "address", 7, TC_BLOCK }, { "tbody", 5, TC_BLOCK },
		{ "thead", 5, TC_BLOCK }, { "body", 4, TC_BLOCK },
		{ "head", 4, TC_BLOCK }, { "html", 4, TC_BLOCK },
		{ "td", 2, TC_CELL }, { "th", 2, TC_CELL },
		{ "script", 6, TC_SCRIPT }, { "style", 5, TC_STYLE } };
	size_t i;

	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (tags[i].len == n && tags[i].name[0] == t[0] &&
		    memcmp(tags[i].name, t, n) == 0)
			return (enum tagclass)tags[i].cls;
	return TC_NONE;
}

static void
tag_end(struct ent *e)
{
	struct html *h = e->html;
	enum tagclass tc = tag_class(h->tag, h->tlen);

	h->st = T_TEXT;
	if (tc == TC_BLOCK)
		html_newline(e);
	else if (tc == TC_CELL && h->last != '\n')
		h->space = true;
	else if (!h->endtag && (tc == TC_SCRIPT || tc == TC_STYLE)) {
		/* Their content is not text: skip to the end tag. */
		h->raw = tc == TC_SCRIPT ? "</script" : "</style";
		h->rawi = 0;
		h->st = T_RAW;
	}
}

static void
attr_start(struct html *h, unsigned char c)
{
	h->an[0] = (char)lc(c);
	h->alen = 1;
	h->st = T_ATTRNAME;
}

static void
attr_value_start(struct html *h)
{
	static const char *const urlattr[] = { "href", "src", "action",
		"background", NULL };
	size_t i;

	h->want = false;
	for (i = 0; urlattr[i] != NULL; i++)
		if (urlattr[i][0] == h->an[0] &&
		    strlen(urlattr[i]) == h->alen &&
		    memcmp(urlattr[i], h->an, h->alen) == 0)
			h->want = true;
	h->vlen = 0;
}

static void
attr_done(struct ent *e)
{
	struct html *h = e->html;

	if (h->want)
		url_attr(e->m, h->val, h->vlen);
	h->want = false;
	h->st = T_INTAG;
}

static void
html_feed(void *ctx, const char *s, size_t n)
{
	struct ent *e = ctx;
	struct html *h = e->html;
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];

		switch (h->st) {
		case T_TEXT:
			if (c != '<' && c != '&' && c > ' ') {
				/* A run of plain text at once, single spaces
				 * between words included: they stay as they
				 * are. */
				size_t j = i + 1;

				while (j < n && p[j] != '<' && p[j] != '&' &&
				    (p[j] > ' ' ||
					(p[j] == ' ' && j + 1 < n &&
					    p[j + 1] > ' ' && p[j + 1] != '<')))
					j++;
				html_run(e, p + i, j - i);
				i = j;
				continue;
			}
			if (c == '<')
				h->st = T_LT;
			else if (c == '&') {
				h->st = T_ENTITY;
				h->ret = T_TEXT;
				h->elen = 0;
			} else
				html_char(e, c);
			break;
		case T_LT:
			h->endtag = false;
			h->tlen = 0;
			if (c == '/') {
				h->endtag = true;
				h->st = T_TAGNAME;
			} else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
				h->st = T_TAGNAME;
				continue;
			} else if (c == '!') {
				h->st = T_BANG;
			} else if (c == '?') {
				h->st = T_DECL;
			} else {
				/* "a < b": a literal '<'. */
				html_char(e, '<');
				h->st = T_TEXT;
				continue;
			}
			break;
		case T_TAGNAME:
			if (is_ws(c) || c == '/')
				h->st = T_INTAG;
			else if (c == '>')
				tag_end(e);
			else if (h->tlen < sizeof(h->tag))
				h->tag[h->tlen++] = (char)lc(c);
			break;
		case T_INTAG:
			if (c == '>')
				tag_end(e);
			else if (!is_ws(c) && c != '/')
				attr_start(h, c);
			break;
		case T_ATTRNAME:
			if (c == '=') {
				attr_value_start(h);
				h->st = T_BEFOREVAL;
			} else if (c == '>') {
				tag_end(e);
			} else if (is_ws(c)) {
				h->st = T_AFTERATTR;
			} else if (c == '/') {
				h->st = T_INTAG;
			} else if (h->alen < sizeof(h->an)) {
				h->an[h->alen++] = (char)lc(c);
			}
			break;
		case T_AFTERATTR:
			if (c == '=') {
				attr_value_start(h);
				h->st = T_BEFOREVAL;
			} else if (c == '>') {
				tag_end(e);
			} else if (!is_ws(c) && c != '/') {
				attr_start(h, c);
			}
			break;
		case T_BEFOREVAL:
			if (c == '"')
				h->st = T_VALDQ;
			else if (c == '\'')
				h->st = T_VALSQ;
			else if (c == '>') {
				attr_done(e);
				tag_end(e);
			} else if (!is_ws(c)) {
				h->st = T_VALUQ;
				continue;
			}
			break;
		case T_VALDQ:
		case T_VALSQ:
		case T_VALUQ:
			if (!h->want && h->st != T_VALUQ) {
				/* A value nobody reads (style=...): skip it. */
				const unsigned char *q = memchr(p + i,
				    h->st == T_VALDQ ? '"' : '\'', n - i);

				if (q == NULL) {
					html_flush(e);
					return;
				}
				i = (size_t)(q - p);
				c = *q;
			}
			if ((h->st == T_VALDQ && c == '"') ||
			    (h->st == T_VALSQ && c == '\'') ||
			    (h->st == T_VALUQ && is_ws(c))) {
				attr_done(e);
			} else if (h->st == T_VALUQ && c == '>') {
				attr_done(e);
				tag_end(e);
			} else if (c == '&') {
				h->ret = h->st;
				h->st = T_ENTITY;
				h->elen = 0;
			} else {
				attr_add(h, (const char *)&c, 1);
			}
			break;
		case T_BANG:
			h->st = c == '-' ? T_BANGDASH
			    : c == '>'   ? T_TEXT
					 : T_DECL;
			break;
		case T_BANGDASH:
			if (c == '-') {
				h->st = T_COMMENT;
				h->dashes = 0;
			} else {
				h->st = c == '>' ? T_TEXT : T_DECL;
			}
			break;
		case T_COMMENT:
			if (c != '-' && c != '>') {
				const unsigned char *q =
				    memchr(p + i, '-', n - i);

				h->dashes = 0;
				if (q == NULL) {
					html_flush(e);
					return;
				}
				i = (size_t)(q - p);
				continue;
			}
			if (c == '-')
				h->dashes++;
			else if (c == '>' && h->dashes >= 2)
				h->st = T_TEXT;
			else
				h->dashes = 0;
			break;
		case T_DECL:
			if (c == '>')
				h->st = T_TEXT;
			break;
		case T_RAW:
			if (h->rawi == 0 && c != '<') {
				const unsigned char *q =
				    memchr(p + i, '<', n - i);

				if (q == NULL) {
					html_flush(e);
					return;
				}
				i = (size_t)(q - p);
				continue;
			}
			if (lc(c) == (unsigned char)h->raw[h->rawi]) {
				if (h->raw[++h->rawi] == '\0') {
					/* The end tag: skip to its '>'. */
					h->endtag = true;
					h->tlen = 0;
					h->st = T_INTAG;
				}
			} else {
				h->rawi = c == '<' ? 1 : 0;
			}
			break;
		case T_ENTITY:
			if (c == ';') {
				entity_done(e, true);
			} else if ((is_alnum(c) ||
				       (c == '#' && h->elen == 0)) &&
			    h->elen < sizeof(h->ent)) {
				h->ent[h->elen++] = (char)c;
			} else {
				entity_done(e, false);
				continue;
			}
			break;
		}
		i++;
	}
	html_flush(e);
}

static void
html_end(struct ent *e)
{
	struct html *h = e->html;

	if (h->st == T_ENTITY)
		entity_done(e, false);
	if (h->st == T_LT)
		html_char(e, '<');
	html_flush(e);
}

/* ---------------------------------------------------------------- */
/* Transfer decoders, then the content of text and message entities. */

static void
text_stage(void *ctx, const char *p, size_t n)
{
	struct ent *e = ctx;

	if (e->kind == K_HTML)
		html_feed(e, p, n);
	else
		text_out(e, p, n);
}

static void
content(struct ent *e, const unsigned char *p, size_t n)
{
	if (n == 0)
		return;
	if (e->kind == K_TEXT || e->kind == K_HTML)
		conv_feed(&e->conv, p, n, text_stage, e);
	else if (e->kind == K_MESSAGE && e->child != NULL)
		ent_feed(e->child, p, n);
}

/*
 * Quoted-printable.  dst: 0 plain, 1 after '=', 2 after '=' and a hex
 * digit (in qh), 3 after '=' and blanks, 4 after '=' CR.  A bad escape is
 * kept as it was; '=' before the line end (blanks allowed) is a soft break.
 */
static void
qp_feed(struct ent *e, const unsigned char *p, size_t n)
{
	unsigned char out[OUTBUF + 4];
	size_t o = 0, i = 0;

	while (i < n) {
		unsigned char c = p[i];

		if (o >= OUTBUF) {
			content(e, out, o);
			o = 0;
		}
		switch (e->dst) {
		case 0: {
			const unsigned char *eq = memchr(p + i, '=', n - i);
			size_t run = (eq ? (size_t)(eq - p) : n) - i;

			if (run > OUTBUF - o)
				run = OUTBUF - o;
			memcpy(out + o, p + i, run);
			o += run;
			i += run;
			if (i < n && p[i] == '=' && o < OUTBUF) {
				e->dst = 1;
				i++;
			}
			continue;
		}
		case 1:
			if (hexval(c) >= 0) {
				e->qh = c;
				e->dst = 2;
			} else if (c == '\n') {
				e->dst = 0;
			} else if (c == '\r') {
				e->dst = 4;
			} else if (c == ' ' || c == '\t') {
				e->dst = 3;
			} else {
				out[o++] = '=';
				e->dst = 0;
				continue;
			}
			break;
		case 2:
			if (hexval(c) >= 0) {
				out[o++] = (unsigned char)(hexval(e->qh) * 16 +
				    hexval(c));
			} else {
				out[o++] = '=';
				out[o++] = e->qh;
				e->dst = 0;
				continue;
			}
			e->dst = 0;
			break;
		case 3:
			if (c == '\n') {
				e->dst = 0;
			} else if (c == '\r') {
				e->dst = 4;
			} else if (c != ' ' && c != '\t') {
				out[o++] = '=';
				e->dst = 0;
				continue;
			}
			break;
		case 4:
			e->dst = 0;
			if (c != '\n')
				continue;
			break;
		}
		i++;
	}
	content(e, out, o);
}

static void
qp_end(struct ent *e)
{
	unsigned char out[2];
	size_t o = 0;

	/* A '=' ending the part is a soft line break. */
	if (e->dst == 2) {
		out[o++] = '=';
		out[o++] = e->qh;
	}
	e->dst = 0;
	content(e, out, o);
}

/* Base64 alphabet values; 64 = not in the alphabet (ignored), 65 = '='. */
/* One row per 16 byte values. */
/* clang-format off */
static const unsigned char b64[256] = {
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64, 64, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 65, 64, 64,
	64, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 64,
	64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
};
/* clang-format on */

/* A quantum cut short (by '=' or by the end): its whole bytes. */
static size_t
b64_partial(struct ent *e, unsigned char *out)
{
	size_t o = 0;

	if (e->dst == 2) {
		out[o++] = (unsigned char)(e->acc >> 4);
	} else if (e->dst == 3) {
		out[o++] = (unsigned char)(e->acc >> 10);
		out[o++] = (unsigned char)(e->acc >> 2);
	}
	e->dst = 0;
	e->acc = 0;
	return o;
}

/* dst counts the sextets of the current quantum in acc. */
static void
b64_feed(struct ent *e, const unsigned char *p, size_t n)
{
	unsigned char out[OUTBUF + 4];
	size_t o = 0, i;

	for (i = 0; i < n; i++) {
		unsigned v;

		if (e->dst == 0 && n - i >= 4) {
			/* A whole quantum of alphabet characters at once. */
			unsigned a = b64[p[i]], b = b64[p[i + 1]],
				 c = b64[p[i + 2]], d = b64[p[i + 3]];

			if ((a | b | c | d) < 64) {
				out[o++] = (unsigned char)(a << 2 | b >> 4);
				out[o++] = (unsigned char)(b << 4 | c >> 2);
				out[o++] = (unsigned char)(c << 6 | d);
				i += 3;
				if (o >= OUTBUF) {
					content(e, out, o);
					o = 0;
				}
				continue;
			}
		}
		v = b64[p[i]];
		if (v < 64) {
			e->acc = (e->acc << 6) | v;
			if (++e->dst == 4) {
				out[o++] = (unsigned char)(e->acc >> 16);
				out[o++] = (unsigned char)(e->acc >> 8);
				out[o++] = (unsigned char)e->acc;
				e->dst = 0;
				e->acc = 0;
			}
		} else if (v == 65) {
			o += b64_partial(e, out + o);
		}
		if (o >= OUTBUF) {
			content(e, out, o);
			o = 0;
		}
	}
	content(e, out, o);
}

/* ---------------------------------------------------------------- */
/* Multipart: find the boundary lines, hand each part to a child. */

static bool
is_bchar(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("'()+_,-./:=?", c) != NULL);
}

static struct ent *ent_new(struct mw_mime *m, unsigned depth, bool digest);

static void
sp_emit(struct ent *e, const unsigned char *p, size_t n)
{
	struct split *sp = e->sp;

	if (sp->phase == SP_PART && sp->child != NULL && n > 0)
		ent_feed(sp->child, p, n);
}

static void
sp_flush_eol(struct ent *e)
{
	struct split *sp = e->sp;

	if (sp->eol == 2)
		sp_emit(e, (const unsigned char *)"\r\n", 2);
	else if (sp->eol == 1)
		sp_emit(e, (const unsigned char *)"\n", 1);
	sp->eol = 0;
}

/*
 * Whether the held line start plus c may still be, or now is, a boundary
 * line: "--" boundary, then blanks or the line end (a delimiter) or "--"
 * (the close delimiter).  Before the first boundary, a line "--X" of
 * boundary characters is learned as the boundary when the declared one is
 * missing or is not the one the body uses.
 */
static enum hold
hold_check(struct split *sp, unsigned char c, unsigned *which)
{
	size_t k = sp->hlen, j;
	unsigned alive = 0;

	if (k < 2)
		return c == '-' ? H_MAYBE : H_NO;
	for (j = 0; j < sp->nb; j++) {
		size_t bl = sp->bl[j];

		if (!(sp->alive & (1u << j)))
			continue;
		if (k < 2 + bl) {
			if (c == (unsigned char)sp->b[j][k - 2])
				alive |= 1u << j;
		} else if (k == 2 + bl) {
			if (c == '-')
				alive |= 1u << j;
			else if (c == ' ' || c == '\t' || c == '\r' ||
			    c == '\n') {
				*which = (unsigned)j;
				return H_DELIM;
			}
		} else if (c == '-') { /* k == 3 + bl */
			*which = (unsigned)j;
			return H_CLOSE;
		}
	}
	if (sp->alive & 4u) {
		if (is_bchar(c) && k < 2 + MAX_BOUNDARY)
			alive |= 4u;
		else if ((c == '\r' || c == '\n' || c == ' ' || c == '\t') &&
		    k > 2 &&
		    !(k >= 4 && sp->hold[k - 1] == '-' &&
			sp->hold[k - 2] == '-'))
			return H_LEARN;
	}
	sp->alive = alive;
	return alive ? H_MAYBE : H_NO;
}

static void
sp_boundary(struct ent *e, enum hold r)
{
	struct split *sp = e->sp;

	if (r == H_LEARN) {
		char *b =
		    m_strndup(e->m, (const char *)sp->hold + 2, sp->hlen - 2);

		if (b == NULL)
			return;
		sp->b[sp->nb] = b;
		sp->bl[sp->nb] = sp->hlen - 2;
		sp->nb++;
	}
	if (sp->child != NULL) {
		ent_end(sp->child);
		ent_free(sp->child);
		sp->child = NULL;
	}
	sp->eol = 0; /* the line end before a boundary belongs to it */
	if (r == H_CLOSE) {
		sp->phase = SP_EPI;
		return;
	}
	sp->phase = SP_PART;
	sp->child = ent_new(e->m, e->depth + 1, e->digest);
}

static void
sp_feed(struct ent *e, const unsigned char *p, size_t n)
{
	struct split *sp = e->sp;
	const unsigned char *q;
	size_t len;
	unsigned which;
	enum hold r;

	while (n > 0) {
		if (sp->skip) {
			q = memchr(p, '\n', n);
			if (q == NULL)
				return;
			n -= (size_t)(q - p) + 1;
			p = q + 1;
			sp->skip = false;
			sp->bol = true;
			continue;
		}
		if (sp->cr) {
			sp->cr = false;
			if (*p == '\n') {
				p++;
				n--;
				sp->eol = 2;
				sp->bol = true;
				continue;
			}
			sp_emit(e, (const unsigned char *)"\r", 1);
		}
		if (sp->holding) {
			r = hold_check(sp, *p, &which);
			if (r == H_MAYBE) {
				sp->hold[sp->hlen++] = *p++;
				n--;
				continue;
			}
			sp->holding = false;
			if (r == H_NO) {
				/* Not a boundary: the line is content. */
				sp_flush_eol(e);
				sp_emit(e, sp->hold, sp->hlen);
				sp->bol = false;
				continue;
			}
			sp->skip = *p != '\n';
			sp->bol = *p == '\n';
			p++;
			n--;
			sp_boundary(e, r);
			continue;
		}
		if (sp->bol) {
			if (*p == '-' && sp->phase != SP_EPI) {
				sp->holding = true;
				sp->hlen = 0;
				sp->alive = (1u << sp->nb) - 1;
				if (sp->phase == SP_PRE && sp->nb < 2)
					sp->alive |= 4u;
				continue;
			}
			sp_flush_eol(e);
			sp->bol = false;
		}
		if (sp->phase == SP_EPI)
			return; /* nothing more at this level */
		/*
		 * Content up to the end of a line after which a line starts
		 * with '-' (perhaps a boundary) or the chunk ends: the lines
		 * between go on in one piece.
		 */
		for (q = p;; q++) {
			q = memchr(q, '\n', n - (size_t)(q - p));
			if (q == NULL || q + 1 == p + n || q[1] == '-')
				break;
		}
		if (q == NULL) {
			len = n;
			if (p[n - 1] == '\r') {
				len--;
				sp->cr = true;
			}
			sp_emit(e, p, len);
			return;
		}
		len = (size_t)(q - p);
		sp->eol = 1;
		if (len > 0 && p[len - 1] == '\r') {
			len--;
			sp->eol = 2;
		}
		sp_emit(e, p, len);
		sp->bol = true;
		n -= (size_t)(q - p) + 1;
		p = q + 1;
	}
}

static void
sp_end(struct ent *e)
{
	struct split *sp = e->sp;
	unsigned which;

	if (sp->holding) {
		/* A boundary on the last line needs no line end. */
		enum hold r = hold_check(sp, '\n', &which);

		sp->holding = false;
		if (r == H_DELIM || r == H_CLOSE || r == H_LEARN) {
			sp_boundary(e, r == H_DELIM ? H_CLOSE : r);
		} else {
			sp_flush_eol(e);
			sp_emit(e, sp->hold, sp->hlen);
		}
	}
	if (sp->cr)
		sp_emit(e, (const unsigned char *)"\r", 1);
	if (sp->child != NULL) {
		ent_end(sp->child);
		ent_free(sp->child);
		sp->child = NULL;
	}
}

/* ---------------------------------------------------------------- */
/* Header values: type, parameters, RFC 2231 and RFC 2047. */

#define MAX_PARAMS 48

struct param {
	const char *name, *val; /* NUL-terminated, in the store */
};

struct params {
	char *store;
	struct param p[MAX_PARAMS];
	size_t n;
	char type[128]; /* lower case, blanks removed */
};

/*
 * Parse "type/sub; a=b; c=\"q\\\"s\"" leniently: names lower-cased,
 * quoted strings unquoted, unquoted values up to ';' with blanks trimmed.
 * False when out of memory.
 */
static bool
params_parse(struct mw_mime *m, const char *s, struct params *ps)
{
	size_t t = 0;
	char *o;

	ps->n = 0;
	ps->store = malloc(strlen(s) * 2 + 2);
	if (ps->store == NULL) {
		m->failed = true;
		return false;
	}
	o = ps->store;
	for (; *s != '\0' && *s != ';'; s++)
		if (!is_ws((unsigned char)*s) && t + 1 < sizeof(ps->type))
			ps->type[t++] = (char)lc((unsigned char)*s);
	ps->type[t] = '\0';
	while (*s == ';') {
		const char *name, *ne;

		s++;
		while (is_ws((unsigned char)*s) || *s == ';')
			s++;
		name = s;
		while (*s != '\0' && *s != '=' && *s != ';')
			s++;
		ne = s;
		while (ne > name && is_ws((unsigned char)ne[-1]))
			ne--;
		if (*s != '=' || ne == name)
			continue;
		s++;
		if (ps->n < MAX_PARAMS) {
			ps->p[ps->n].name = o;
			while (name < ne)
				*o++ = (char)lc((unsigned char)*name++);
			*o++ = '\0';
			ps->p[ps->n].val = o;
		}
		while (is_ws((unsigned char)*s))
			s++;
		if (*s == '"') {
			for (s++; *s != '\0' && *s != '"'; s++) {
				if (*s == '\\' && s[1] != '\0')
					s++;
				if (ps->n < MAX_PARAMS)
					*o++ = *s;
			}
			if (*s == '"')
				s++;
			while (*s != '\0' && *s != ';')
				s++;
		} else {
			const char *v = s, *ve;

			while (*s != '\0' && *s != ';')
				s++;
			ve = s;
			while (ve > v && is_ws((unsigned char)ve[-1]))
				ve--;
			if (ps->n < MAX_PARAMS)
				while (v < ve)
					*o++ = *v++;
		}
		if (ps->n < MAX_PARAMS) {
			*o++ = '\0';
			ps->n++;
		}
	}
	return true;
}

static const char *
param_get(const struct params *ps, const char *name)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->p[i].name, name) == 0)
			return ps->p[i].val;
	return NULL;
}

/* Append the %XX-decoded s to b. */
static void
pct_decode(struct mw_mime *m, const char *s, struct buf *b)
{
	for (; *s != '\0'; s++) {
		char c = *s;

		if (c == '%' && hexval((unsigned char)s[1]) >= 0 &&
		    hexval((unsigned char)s[2]) >= 0) {
			c = (char)(hexval((unsigned char)s[1]) * 16 +
			    hexval((unsigned char)s[2]));
			s += 2;
		}
		buf_add(m, b, &c, 1, SIZE_MAX / 2);
	}
}

/* "charset'lang'rest": the charset, and rest in *rest. */
static enum cs
rfc2231_charset(const char *v, const char **rest)
{
	const char *q1 = strchr(v, '\''), *q2;

	if (q1 == NULL || (q2 = strchr(q1 + 1, '\'')) == NULL) {
		*rest = v;
		return CS_UTF8;
	}
	*rest = q2 + 1;
	return cs_lookup(v, (size_t)(q1 - v));
}

static char *rfc2047_decode(struct mw_mime *m, const char *s);

/*
 * The value of parameter base in UTF-8 (malloc'd), or NULL: base*=,
 * else base*0= / base*0*= ... continuations, else base= with RFC 2047
 * encoded words decoded.
 */
static char *
param_text(struct mw_mime *m, const struct params *ps, const char *base)
{
	char key[64];
	const char *v;
	struct buf raw = { NULL, 0, 0 }, out = { NULL, 0, 0 };
	enum cs cs = CS_UTF8;
	unsigned k;

	snprintf(key, sizeof(key), "%s*", base);
	if ((v = param_get(ps, key)) != NULL) {
		cs = rfc2231_charset(v, &v);
		pct_decode(m, v, &raw);
	} else {
		for (k = 0; k < MAX_SEGMENTS; k++) {
			snprintf(key, sizeof(key), "%s*%u*", base, k);
			if ((v = param_get(ps, key)) != NULL) {
				if (k == 0)
					cs = rfc2231_charset(v, &v);
				pct_decode(m, v, &raw);
				continue;
			}
			snprintf(key, sizeof(key), "%s*%u", base, k);
			if ((v = param_get(ps, key)) == NULL)
				break;
			buf_add(m, &raw, v, strlen(v), SIZE_MAX / 2);
		}
		if (k == 0) {
			char *d;

			v = param_get(ps, base);
			if (v == NULL || (d = rfc2047_decode(m, v)) == NULL)
				return NULL;
			if (*d == '\0') {
				free(d);
				return NULL;
			}
			return d;
		}
	}
	if (raw.len > 0)
		conv_all(m, cs, raw.p, raw.len, &out);
	free(raw.p);
	if (out.len == 0) {
		free(out.p);
		return NULL;
	}
	return out.p;
}

/*
 * An encoded word "=?charset?B|Q?text?=" at s: true with its parts.
 */
static bool
parse_ew(const char *s, const char **cs, size_t *cslen, char *enc,
    const char **txt, size_t *txtlen, size_t *total)
{
	const char *p = s + 2, *q;

	if (s[0] != '=' || s[1] != '?')
		return false;
	*cs = p;
	while (*p != '\0' && *p != '?' && !is_ws((unsigned char)*p))
		p++;
	if (*p != '?' || p == *cs || p - *cs > 64)
		return false;
	*cslen = (size_t)(p - *cs);
	q = memchr(*cs, '*', *cslen); /* RFC 2231 language suffix */
	if (q != NULL)
		*cslen = (size_t)(q - *cs);
	p++;
	*enc = (char)lc((unsigned char)*p);
	if ((*enc != 'b' && *enc != 'q') || p[1] != '?')
		return false;
	p += 2;
	*txt = p;
	while (*p != '\0' && *p != '?' && !is_ws((unsigned char)*p))
		p++;
	if (p[0] != '?' || p[1] != '=')
		return false;
	*txtlen = (size_t)(p - *txt);
	*total = (size_t)(p + 2 - s);
	return true;
}

/*
 * RFC 2047 encoded words in s decoded to UTF-8 (malloc'd; NULL when out
 * of memory).  Blanks between adjacent encoded words go; adjacent words in
 * one charset are joined before conversion, so a character split between
 * two words survives.  The rest is taken as UTF-8.
 */
static char *
rfc2047_decode(struct mw_mime *m, const char *s)
{
	struct buf out = { NULL, 0, 0 }, pend = { NULL, 0, 0 };
	enum cs pcs = CS_UTF8;
	const char *cs, *txt;
	size_t cslen, txtlen, total, i;
	char enc;

	while (*s != '\0') {
		if (parse_ew(s, &cs, &cslen, &enc, &txt, &txtlen, &total)) {
			enum cs ncs = cs_lookup(cs, cslen);
			struct ent tmp;

			if (pend.len > 0 && ncs != pcs) {
				conv_all(m, pcs, pend.p, pend.len, &out);
				pend.len = 0;
			}
			pcs = ncs;
			if (enc == 'q') {
				for (i = 0; i < txtlen; i++) {
					char c = txt[i] == '_' ? ' ' : txt[i];

					if (c == '=' && i + 2 < txtlen &&
					    hexval((unsigned char)txt[i + 1]) >=
						0 &&
					    hexval((unsigned char)txt[i + 2]) >=
						0) {
						c = (char)(hexval(
							       (unsigned char)
								   txt[i + 1]) *
							16 +
						    hexval((unsigned char)
							    txt[i + 2]));
						i += 2;
					}
					buf_add(m, &pend, &c, 1, SIZE_MAX / 2);
				}
			} else {
				unsigned char o[4];

				memset(&tmp, 0, sizeof(tmp));
				for (i = 0; i < txtlen; i++) {
					unsigned v = b64[(unsigned char)txt[i]];

					if (v >= 64)
						continue;
					tmp.acc = (tmp.acc << 6) | v;
					if (++tmp.dst == 4) {
						o[0] =
						    (unsigned char)(tmp.acc >>
							16);
						o[1] =
						    (unsigned char)(tmp.acc >>
							8);
						o[2] = (unsigned char)tmp.acc;
						buf_add(m, &pend, o, 3,
						    SIZE_MAX / 2);
						tmp.dst = 0;
						tmp.acc = 0;
					}
				}
				i = b64_partial(&tmp, o);
				buf_add(m, &pend, o, i, SIZE_MAX / 2);
			}
			s += total;
			/* Blanks before another encoded word are dropped. */
			for (i = 0; is_ws((unsigned char)s[i]); i++)
				;
			if (i > 0 &&
			    parse_ew(s + i, &cs, &cslen, &enc, &txt, &txtlen,
				&total))
				s += i;
			continue;
		}
		if (pend.len > 0) {
			conv_all(m, pcs, pend.p, pend.len, &out);
			pend.len = 0;
		}
		txt = strstr(s + 1, "=?");
		i = txt != NULL ? (size_t)(txt - s) : strlen(s);
		conv_all(m, CS_UTF8, s, i, &out);
		s += i;
	}
	if (pend.len > 0)
		conv_all(m, pcs, pend.p, pend.len, &out);
	free(pend.p);
	if (out.p == NULL)
		out.p = m_strndup(m, "", 0);
	return out.p;
}

/* ---------------------------------------------------------------- */
/* Entities. */

static struct ent *
ent_new(struct mw_mime *m, unsigned depth, bool digest)
{
	struct ent *e;

	if (depth > 0) {
		if (m->nparts >= m->lim.max_parts || depth > m->lim.max_depth) {
			m->truncated = true;
			return NULL;
		}
		m->nparts++;
	}
	if ((e = m_alloc(m, sizeof(*e))) == NULL)
		return NULL;
	e->m = m;
	e->depth = depth;
	e->digest = digest;
	return e;
}

static void
ent_free(struct ent *e)
{
	if (e == NULL)
		return;
	free(e->hval.p);
	free(e->ctype);
	free(e->cte);
	free(e->cdisp);
	free(e->html);
	if (e->sp != NULL) {
		ent_free(e->sp->child);
		free(e->sp->b[0]);
		free(e->sp->b[1]);
		free(e->sp);
	}
	ent_free(e->child);
	free(e);
}

static void
attach_add(struct mw_mime *m, const char *type, char *filename)
{
	char *t;

	if (m->natt >= m->lim.max_attachments) {
		m->truncated = true;
		free(filename);
		return;
	}
	if (m->natt == m->att_cap) {
		size_t nc = m->att_cap ? m->att_cap * 2 : 8;
		struct mw_mime_attachment *a = realloc(m->att, nc * sizeof(*a));

		if (a == NULL) {
			m->failed = true;
			free(filename);
			return;
		}
		m->att = a;
		m->att_cap = nc;
	}
	if ((t = m_strndup(m, type, strlen(type))) == NULL) {
		free(filename);
		return;
	}
	m->att[m->natt].filename = filename;
	m->att[m->natt].content_type = t;
	m->natt++;
}

/* The header block is over: choose the body's pipeline. */
static void
begin_body(struct ent *e)
{
	struct mw_mime *m = e->m;
	struct params ct, cd;
	const char *type, *v;
	char *filename = NULL;
	bool attachment = false;

	e->in_body = true;
	memset(&ct, 0, sizeof(ct));
	memset(&cd, 0, sizeof(cd));
	if (e->ctype != NULL && !params_parse(m, e->ctype, &ct))
		goto out;
	if (e->cdisp != NULL && !params_parse(m, e->cdisp, &cd))
		goto out;
	type = ct.type[0] != '\0' ? ct.type
	    : e->digest           ? "message/rfc822"
				  : "text/plain";
	attachment = strcmp(cd.type, "attachment") == 0;
	if (e->cte != NULL) {
		char t[32];
		size_t i, o = 0;

		for (i = 0; e->cte[i] != '\0' && o + 1 < sizeof(t); i++)
			if (!is_ws((unsigned char)e->cte[i]))
				t[o++] = (char)lc((unsigned char)e->cte[i]);
		t[o] = '\0';
		if (strcmp(t, "quoted-printable") == 0)
			e->enc = ENC_QP;
		else if (strcmp(t, "base64") == 0)
			e->enc = ENC_B64;
	}
	filename = param_text(m, &cd, "filename");
	if (filename == NULL)
		filename = param_text(m, &ct, "name");

	if (strncmp(type, "multipart/", 10) == 0) {
		/* RFC 2046: no transfer encoding on a multipart. */
		e->enc = ENC_IDENT;
		e->kind = K_MULTI;
		if ((e->sp = m_alloc(m, sizeof(*e->sp))) == NULL)
			goto out;
		e->sp->bol = true;
		v = param_get(&ct, "boundary");
		if (v != NULL && *v != '\0') {
			size_t i, l = strlen(v);
			bool ok = l <= MAX_BOUNDARY;

			for (i = 0; i < l; i++)
				if ((unsigned char)v[i] < ' ')
					ok = false;
			if (!ok) {
				m->truncated = true;
			} else if ((e->sp->b[0] = m_strndup(m, v, l)) != NULL) {
				e->sp->bl[0] = l;
				e->sp->nb = 1;
			}
		}
		/* Children of a digest default to message/rfc822. */
		e->digest = strcmp(type, "multipart/digest") == 0;
	} else if (strcmp(type, "message/rfc822") == 0 ||
	    strcmp(type, "message/global") == 0) {
		e->kind = K_MESSAGE;
		e->child = ent_new(m, e->depth + 1, false);
		attach_add(m, type, filename);
		filename = NULL;
	} else if ((strcmp(type, "text/plain") == 0 ||
		       strcmp(type, "text/html") == 0 ||
		       strchr(type, '/') == NULL) &&
	    !attachment) {
		/* A type without a subtype is invalid: RFC 2045 says
		 * text/plain. */
		e->kind = strcmp(type, "text/html") == 0 ? K_HTML : K_TEXT;
		v = param_get(&ct, "charset");
		e->conv.cs = v != NULL ? cs_lookup(v, strlen(v)) : CS_UTF8;
		if (e->kind == K_HTML) {
			if ((e->html = m_alloc(m, sizeof(*e->html))) == NULL)
				goto out;
			e->html->last = '\n';
		}
		if (filename != NULL) {
			attach_add(m, type, filename);
			filename = NULL;
		}
	} else {
		e->kind = K_ATTACH;
		attach_add(m, type, filename);
		filename = NULL;
	}
out:
	free(filename);
	free(ct.store);
	free(cd.store);
	if (m->failed)
		e->kind = K_IGNORE;
}

static enum field
field_of(const char *name, size_t n)
{
	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	if (eq_nocase(name, n, "content-type"))
		return F_CTYPE;
	if (eq_nocase(name, n, "content-transfer-encoding"))
		return F_CTE;
	if (eq_nocase(name, n, "content-disposition"))
		return F_CDISP;
	return F_NONE;
}

/* The field in hval is complete: keep the first of each kind. */
static void
field_done(struct ent *e)
{
	char **slot = e->hfield == F_CTYPE ? &e->ctype
	    : e->hfield == F_CTE           ? &e->cte
	    : e->hfield == F_CDISP         ? &e->cdisp
					   : NULL;

	if (slot != NULL && *slot == NULL)
		*slot =
		    m_strndup(e->m, e->hval.len ? e->hval.p : "", e->hval.len);
	e->hfield = F_NONE;
	e->hval.len = 0;
}

static void
hval_add(struct ent *e, const char *p, size_t n)
{
	if (e->hfield != F_NONE && n > 0 &&
	    !buf_add(e->m, &e->hval, p, n, MAX_FIELD))
		e->m->truncated = true;
}

/* Not a header line after all: the body starts with what was held. */
static void
hdr_replay(struct ent *e)
{
	size_t n = e->hnlen;

	e->hnlen = 0;
	field_done(e);
	begin_body(e);
	ent_feed(e, (const unsigned char *)e->hname, n);
}

/*
 * Read header lines from p; returns the bytes used.  When the header
 * block ends, in_body is set and the rest is the body.
 */
static size_t
hdr_feed(struct ent *e, const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];

		switch (e->hstate) {
		case HS_BOL:
			if (c == '\r') {
				e->hstate = HS_CR;
				break;
			}
			if (c == '\n') {
				field_done(e);
				begin_body(e);
				return i + 1;
			}
			if (c == ' ' || c == '\t') {
				/* A continuation line. */
				e->hstate = HS_VALUE;
				continue;
			}
			field_done(e);
			e->hstate = HS_NAME;
			e->hnlen = 0;
			e->name_ws = false;
			continue;
		case HS_CR:
			if (c == '\n') {
				field_done(e);
				begin_body(e);
				return i + 1;
			}
			e->hname[0] = '\r';
			e->hnlen = 1;
			hdr_replay(e);
			return i;
		case HS_NAME:
			if (c == ':' && e->hnlen > 0) {
				e->hfield = field_of(e->hname, e->hnlen);
				e->hval.len = 0;
				e->hstate = HS_VALUE;
				e->hnlen = 0;
				break;
			}
			if (c > ' ' && c < 127 && c != ':' && !e->name_ws &&
			    e->hnlen < MAX_NAME) {
				e->hname[e->hnlen++] = (char)c;
				break;
			}
			if ((c == ' ' || c == '\t') && e->hnlen > 0 &&
			    e->hnlen < MAX_NAME) {
				e->name_ws = true;
				e->hname[e->hnlen++] = (char)c;
				break;
			}
			hdr_replay(e);
			return i;
		case HS_VALUE: {
			const unsigned char *nl = memchr(p + i, '\n', n - i);
			size_t end = nl ? (size_t)(nl - p) : n, j = i;

			while (j < end) {
				const unsigned char *cr =
				    memchr(p + j, '\r', end - j);
				size_t stop = cr ? (size_t)(cr - p) : end;

				hval_add(e, (const char *)p + j, stop - j);
				j = stop + (cr ? 1 : 0);
			}
			i = end;
			if (nl != NULL) {
				e->hstate = HS_BOL;
				i++;
			}
			continue;
		}
		}
		i++;
	}
	return i;
}

static void
body_feed(struct ent *e, const unsigned char *p, size_t n)
{
	switch (e->kind) {
	case K_MULTI: sp_feed(e, p, n); break;
	case K_TEXT:
	case K_HTML:
	case K_MESSAGE:
		if (e->enc == ENC_QP)
			qp_feed(e, p, n);
		else if (e->enc == ENC_B64)
			b64_feed(e, p, n);
		else
			content(e, p, n);
		break;
	default: break;
	}
}

static void
ent_feed(struct ent *e, const unsigned char *p, size_t n)
{
	if (e->m->failed)
		return;
	if (!e->in_body) {
		size_t used = hdr_feed(e, p, n);

		p += used;
		n -= used;
		if (!e->in_body || n == 0)
			return;
	}
	body_feed(e, p, n);
}

static void
ent_end(struct ent *e)
{
	struct mw_mime *m = e->m;

	if (!e->in_body) {
		/* A field cut by the input limit is not trusted. */
		if (m->input_cut && e->hstate == HS_VALUE)
			e->hfield = F_NONE;
		if (e->hstate == HS_NAME && e->hnlen > 0 && !m->input_cut)
			hdr_replay(e); /* a last line that is no header */
		else {
			field_done(e);
			begin_body(e);
		}
	}
	if (e->kind == K_TEXT || e->kind == K_HTML || e->kind == K_MESSAGE) {
		if (e->enc == ENC_QP) {
			qp_end(e);
		} else if (e->enc == ENC_B64) {
			unsigned char out[4];

			content(e, out, b64_partial(e, out));
		}
	}
	switch (e->kind) {
	case K_TEXT:
	case K_HTML:
		conv_flush(&e->conv, text_stage, e);
		if (e->kind == K_HTML)
			html_end(e);
		url_finish(m);
		break;
	case K_MULTI: sp_end(e); break;
	case K_MESSAGE:
		if (e->child != NULL) {
			ent_end(e->child);
			ent_free(e->child);
			e->child = NULL;
		}
		break;
	default: break;
	}
}

/* ---------------------------------------------------------------- */
/* The interface. */

struct mw_mime *
mw_mime_new(const struct mw_mime_limits *lim)
{
	struct mw_mime *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	if (lim != NULL)
		m->lim = *lim;
	if (m->lim.max_input == 0)
		m->lim.max_input = DEF_INPUT;
	if (m->lim.max_text == 0)
		m->lim.max_text = DEF_TEXT;
	if (m->lim.max_parts == 0)
		m->lim.max_parts = DEF_PARTS;
	if (m->lim.max_depth == 0)
		m->lim.max_depth = DEF_DEPTH;
	if (m->lim.max_depth > DEPTH_CAP)
		m->lim.max_depth = DEPTH_CAP;
	if (m->lim.max_urls == 0)
		m->lim.max_urls = DEF_URLS;
	if (m->lim.max_attachments == 0)
		m->lim.max_attachments = DEF_ATTACH;
	if (m->lim.max_text > SIZE_MAX / 4)
		m->lim.max_text = SIZE_MAX / 4;
	if ((m->top = ent_new(m, 0, false)) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void
mw_mime_free(struct mw_mime *m)
{
	size_t i;

	if (m == NULL)
		return;
	ent_free(m->top);
	free(m->text.p);
	for (i = 0; i < m->natt; i++) {
		free((char *)m->att[i].filename);
		free((char *)m->att[i].content_type);
	}
	free(m->att);
	for (i = 0; i < m->nhosts; i++)
		free(m->hosts[i]);
	free(m->hosts);
	free(m->htab);
	free(m);
}

bool
mw_mime_header(struct mw_mime *m, const char *name, const char *value)
{
	struct ent *e = m->top;
	size_t i, n;

	if (m->failed)
		return false;
	if (e->in_body)
		return true;
	e->hfield = field_of(name, strlen(name));
	if (e->hfield == F_NONE)
		return true;
	e->hval.len = 0;
	/* Unfold: the line ends go, the blanks after them stay. */
	for (i = 0; value[i] != '\0'; i += n) {
		n = strcspn(value + i, "\r\n");
		hval_add(e, value + i, n);
		if (value[i + n] != '\0')
			n++;
	}
	field_done(e);
	return !m->failed;
}

bool
mw_mime_body(struct mw_mime *m, const unsigned char *buf, size_t len)
{
	if (m->failed)
		return false;
	if (m->ended || len == 0)
		return true;
	if (!m->top->in_body)
		begin_body(m->top);
	if (len > m->lim.max_input - m->in_total) {
		len = m->lim.max_input - m->in_total;
		m->truncated = true;
		m->input_cut = true;
	}
	m->in_total += len;
	if (len > 0)
		body_feed(m->top, buf, len);
	return !m->failed;
}

void
mw_mime_end(struct mw_mime *m)
{
	if (m->ended)
		return;
	m->ended = true;
	if (!m->failed)
		ent_end(m->top);
}

const char *
mw_mime_text(const struct mw_mime *m, size_t *len)
{
	if (len != NULL)
		*len = m->text.len;
	return m->text.p != NULL ? m->text.p : "";
}

size_t
mw_mime_nattachments(const struct mw_mime *m)
{
	return m->natt;
}

const struct mw_mime_attachment *
mw_mime_attachment(const struct mw_mime *m, size_t i)
{
	return i < m->natt ? &m->att[i] : NULL;
}

size_t
mw_mime_nurls(const struct mw_mime *m)
{
	return m->nhosts;
}

const char *
mw_mime_url_host(const struct mw_mime *m, size_t i)
{
	return i < m->nhosts ? m->hosts[i] : NULL;
}

bool
mw_mime_truncated(const struct mw_mime *m)
{
	return m->truncated;
}
