/*
 * test_mime.c -- the streaming MIME walker: transfer decodings, nested and
 * broken multiparts, HTML to text, URL host names, attachment names,
 * charsets, limits, and the same results whatever the chunk boundaries.
 *
 * Messages are written here with LF line ends and fed with CRLF, as the
 * MTA sends them (feed_lf keeps LF for the tests of bare LF).  Most tests
 * compare one summary string: "text|attachments|hosts|flag".
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mw_mime.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A growable string for the tests. */
struct str {
	char *p;
	size_t len, cap;
};

static void
str_add(struct str *s, const void *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->p = realloc(s->p, s->cap);
		assert_non_null(s->p);
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void
str_adds(struct str *s, const char *p)
{
	str_add(s, p, strlen(p));
}

/* LF to CRLF. */
static struct str
crlf(const char *msg, size_t len)
{
	struct str s = { NULL, 0, 0 };
	size_t i;

	str_add(&s, "", 0);
	for (i = 0; i < len; i++) {
		if (msg[i] == '\n')
			str_add(&s, "\r", 1);
		str_add(&s, msg + i, 1);
	}
	return s;
}

/*
 * Feed msg (headers, blank line, body; line ends as given) to a new
 * walker: the header fields one by one, then the body cut at the offsets
 * in cuts[] (ascending, relative to the body), or in chunks of step bytes
 * when step > 0.
 */
static struct mw_mime *
feed_raw(const char *msg, size_t len, const struct mw_mime_limits *lim,
    const size_t *cuts, size_t ncuts, size_t step)
{
	struct mw_mime *m = mw_mime_new(lim);
	size_t i = 0, b, k, at;

	assert_non_null(m);
	/* Header fields until the empty line. */
	while (i < len && msg[i] != '\r' && msg[i] != '\n') {
		size_t start = i, colon;
		char *name, *value;

		do {
			const char *nl = memchr(msg + i, '\n', len - i);

			i = nl ? (size_t)(nl - msg) + 1 : len;
		} while (i < len && (msg[i] == ' ' || msg[i] == '\t'));
		colon =
		    (size_t)((const char *)memchr(msg + start, ':', i - start) -
			msg);
		name = strndup(msg + start, colon - start);
		value = strndup(msg + colon + 1, i - colon - 1);
		/* The MTA hands over the value without its last line end. */
		while (value[0] != '\0' &&
		    (value[strlen(value) - 1] == '\n' ||
			value[strlen(value) - 1] == '\r'))
			value[strlen(value) - 1] = '\0';
		assert_true(mw_mime_header(m, name,
		    value[0] == ' ' ? value + 1 : value));
		free(name);
		free(value);
	}
	if (i < len && msg[i] == '\r')
		i++;
	if (i < len && msg[i] == '\n')
		i++;
	b = i;
	at = b;
	if (step > 0) {
		for (; at < len; at += step)
			assert_true(
			    mw_mime_body(m, (const unsigned char *)msg + at,
				len - at < step ? len - at : step));
	} else {
		for (k = 0; k < ncuts; k++) {
			assert_true(mw_mime_body(m,
			    (const unsigned char *)msg + at, b + cuts[k] - at));
			at = b + cuts[k];
		}
		assert_true(
		    mw_mime_body(m, (const unsigned char *)msg + at, len - at));
	}
	mw_mime_end(m);
	return m;
}

static struct mw_mime *
feed(const char *msg, const struct mw_mime_limits *lim)
{
	struct str s = crlf(msg, strlen(msg));
	struct mw_mime *m = feed_raw(s.p, s.len, lim, NULL, 0, 0);

	free(s.p);
	return m;
}

static struct mw_mime *
feed_lf(const char *msg)
{
	return feed_raw(msg, strlen(msg), NULL, NULL, 0, 0);
}

/* "text|type=name;...|host,...|T" (T when truncated). */
static char *
summary(const struct mw_mime *m)
{
	struct str s = { NULL, 0, 0 };
	size_t i, n;
	const char *t = mw_mime_text(m, &n);

	str_add(&s, t, n);
	str_adds(&s, "|");
	for (i = 0; i < mw_mime_nattachments(m); i++) {
		const struct mw_mime_attachment *a = mw_mime_attachment(m, i);

		str_adds(&s, i ? ";" : "");
		str_adds(&s, a->content_type);
		if (a->filename != NULL) {
			str_adds(&s, "=");
			str_adds(&s, a->filename);
		}
	}
	str_adds(&s, "|");
	for (i = 0; i < mw_mime_nurls(m); i++) {
		str_adds(&s, i ? "," : "");
		str_adds(&s, mw_mime_url_host(m, i));
	}
	str_adds(&s, mw_mime_truncated(m) ? "|T" : "|");
	return s.p;
}

static void
expect(const char *msg, const char *want)
{
	struct mw_mime *m = feed(msg, NULL);
	char *got = summary(m);

	if (strcmp(got, want) != 0) {
		print_error("message:\n%s\nwant: \"%s\"\ngot:  \"%s\"\n", msg,
		    want, got);
		fail();
	}
	free(got);
	mw_mime_free(m);
}

/* A one-part message of the given type and encoding around body. */
static void
expect_part(const char *ctype, const char *cte, const char *body,
    const char *want_text)
{
	struct str msg = { NULL, 0, 0 };
	struct mw_mime *m;
	size_t n;
	const char *t;

	str_adds(&msg, "Subject: x\nContent-Type: ");
	str_adds(&msg, ctype);
	str_adds(&msg, "\n");
	if (cte != NULL) {
		str_adds(&msg, "Content-Transfer-Encoding: ");
		str_adds(&msg, cte);
		str_adds(&msg, "\n");
	}
	str_adds(&msg, "\n");
	str_adds(&msg, body);
	m = feed(msg.p, NULL);
	t = mw_mime_text(m, &n);
	if (n != strlen(want_text) || memcmp(t, want_text, n) != 0) {
		print_error("body: \"%s\"\nwant: \"%s\"\ngot:  \"%.*s\"\n",
		    body, want_text, (int)n, t);
		fail();
	}
	assert_false(mw_mime_truncated(m));
	mw_mime_free(m);
	free(msg.p);
}

struct case2 {
	const char *in, *want;
};

/* ------------------------------------------------------------------ */

static void
quoted_printable_decoding(void **state)
{
	static const struct case2 cases[] = {
		{ "plain text", "plain text" },
		{ "caf=C3=A9 =3D ok", "caf\xc3\xa9 = ok" },
		{ "lower =c3=a9 hex", "lower \xc3\xa9 hex" },
		{ "soft=\nbreak", "softbreak" },
		{ "soft with blanks=  \t\nbreak", "soft with blanksbreak" },
		{ "two\nlines", "two\nlines" },
		{ "bad =ZZ escape", "bad =ZZ escape" },
		{ "half =4G escape", "half =4G escape" },
		{ "equals at the end=", "equals at the end" },
		{ "dangling =4", "dangling =4" },
		{ "dangling =", "dangling " },
		{ "=\n=\n=\nx", "x" },
		{ "V=\ni=\na=\ng=\nr=\na", "Viagra" },
		{ "==41", "=A" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++)
		expect_part("text/plain; charset=utf-8", "quoted-printable",
		    cases[i].in, cases[i].want);
	/* Bare LF line ends, and an escape before "=\r" without LF. */
	{
		struct mw_mime *m = feed_lf("Content-Transfer-Encoding: "
					    "quoted-printable\n\nsoft=\nbreak "
					    "=41=\rB");
		assert_string_equal(mw_mime_text(m, NULL), "softbreak AB");
		mw_mime_free(m);
	}
}

static void
base64_decoding(void **state)
{
	static const struct case2 cases[] = {
		{ "SGVsbG8gd29ybGQ=", "Hello world" },
		{ "SGVs\nbG8g\nd29y\nbGQ=\n", "Hello world" },
		{ "SGVsbG8gd29ybGQ", "Hello world" }, /* padding missing */
		{ "SGVsbG8gd29ybA", "Hello worl" },   /* two sextets short */
		{ "S G\tV s b G 8 =", "Hello" },      /* blanks */
		{ "SGV*sb!G8g~d29y.bGQ=", "Hello world" }, /* garbage */
		{ "SGk=SGk=", "HiHi" }, /* padded blocks end to end */
		{ "SGk===", "Hi" }, { "=", "" }, { "w6k=", "\xc3\xa9" },
		{ "AGE=",
		    "\xef\xbf\xbd"
		    "a" }, /* NUL decoded, replaced */
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++)
		expect_part("text/plain; charset=utf-8", "base64", cases[i].in,
		    cases[i].want);
	/* The encoding name is case-insensitive and may carry blanks. */
	expect_part("text/plain", " BASE64 ", "SGk=", "Hi");
	expect_part("text/plain", "x-unknown", "SGk=", "SGk=");
}

static void
nested_multipart(void **state)
{
	(void)state;
	expect("Content-Type: multipart/mixed; boundary=\"outer\"\n"
	       "\n"
	       "This is the preamble.\n"
	       "--outer\n"
	       "Content-Type: multipart/alternative; boundary=inner\n"
	       "\n"
	       "--inner\n"
	       "Content-Type: text/plain; charset=us-ascii\n"
	       "\n"
	       "Plain version\n"
	       "--inner\n"
	       "Content-Type: text/html\n"
	       "Content-Transfer-Encoding: base64\n"
	       "\n"
	       "PHA+SFRNTDwvcD4=\n"
	       "--inner--\n"
	       "inner epilogue\n"
	       "--outer\n"
	       "Content-Type: application/pdf; name=\"doc.pdf\"\n"
	       "Content-Disposition: attachment; filename=\"doc.pdf\"\n"
	       "Content-Transfer-Encoding: base64\n"
	       "\n"
	       "JVBERi0xLjQK\n"
	       "--outer\n"
	       "Content-Type: message/rfc822\n"
	       "\n"
	       "Subject: inner message\n"
	       "Content-Type: multipart/related; boundary=\"rel\"\n"
	       "\n"
	       "--rel\n"
	       "Content-Type: text/html; charset=iso-8859-1\n"
	       "Content-Transfer-Encoding: quoted-printable\n"
	       "\n"
	       "<b>Caf=E9</b> <img src=3D\"http://img.example.net/x.gif\">\n"
	       "--rel\n"
	       "Content-Type: image/gif\n"
	       "Content-ID: <x>\n"
	       "\n"
	       "R0lGODlh\n"
	       "--rel--\n"
	       "--outer--\n"
	       "Epilogue, ignored.\n",
	    "Plain version\nHTML\nCaf\xc3\xa9|application/pdf=doc.pdf;"
	    "message/rfc822;image/gif|img.example.net|");
}

static void
multipart_digest_defaults_to_messages(void **state)
{
	(void)state;
	expect("Content-Type: multipart/digest; boundary=d\n\n"
	       "--d\n\nSubject: one\n\nfirst\n"
	       "--d\n\nSubject: two\n\nsecond\n--d--\n",
	    "first\nsecond|message/rfc822;message/rfc822||");
}

static void
broken_mime(void **state)
{
	static const struct case2 cases[] = {
		/* The final boundary is missing. */
		{ "Content-Type: multipart/mixed; boundary=b\n\n"
		  "--b\n\nfirst\n--b\n\nsecond\n",
		    "first\nsecond|||" },
		/* The inner multipart is never closed: the outer boundary
		 * ends it. */
		{ "Content-Type: multipart/mixed; boundary=o\n\n"
		  "--o\nContent-Type: multipart/alternative; boundary=i\n\n"
		  "--i\n\ninner\n--o\n\nouter\n--o--\n",
		    "inner\nouter|||" },
		/* The last boundary line has no line end. */
		{ "Content-Type: multipart/mixed; boundary=b\n\n"
		  "--b\n\nbody\n--b--",
		    "body|||" },
		{ "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nbody\n--b",
		    "body|||" },
		/* No boundary parameter: learned from the body. */
		{ "Content-Type: multipart/mixed\n\npreamble\n"
		  "--learned\n\nfound\n--learned--\n",
		    "found|||" },
		/* The declared boundary is not the one used. */
		{ "Content-Type: multipart/mixed; boundary=\"declared\"\n\n"
		  "--used\nContent-Type: text/plain\n\nfound\n--used--\n",
		    "found|||" },
		/* A part without a blank line after the boundary. */
		{ "Content-Type: multipart/mixed; boundary=b\n\n"
		  "--b\nno headers here\n--b--\n",
		    "no headers here|||" },
		/* Headers end at a line that is not a header. */
		{ "Content-Type: multipart/mixed; boundary=b\n\n"
		  "--b\nContent-Type: text/plain\nnot a header: line\n--b--\n",
		    "not a header: line|||" },
		/* A header line whose name has a blank inside. */
		{ "Content-Type: multipart/mixed; boundary=b\n\n"
		  "--b\nHello world: x\n--b--\n",
		    "Hello world: x|||" },
		/* Lines that look like boundaries but are not. */
		{ "Content-Type: multipart/mixed; boundary=abc\n\n"
		  "--abc\n\n--abcd\n-- abc\n---abc\n--ab\n-\n--\n--abc--\n",
		    "--abcd\n-- abc\n---abc\n--ab\n-\n--|||" },
		/* Blanks after a boundary are allowed. */
		{ "Content-Type: multipart/mixed; boundary=b\n\n"
		  "--b \t\n\nx\n--b-- trailing\nepilogue\n",
		    "x|||" },
		/* Content after the close delimiter is epilogue. */
		{ "Content-Type: multipart/mixed; boundary=b\n\n"
		  "--b\n\nx\n--b--\n--b\n\nhidden\n",
		    "x|||" },
		/* Headers cut off by the end of the message. */
		{ "Content-Type: multipart/mixed; boundary=b\n\n"
		  "--b\nContent-Type: text/pl",
		    "|text/pl||" },
		/* A multipart that never shows a boundary: nothing. */
		{ "Content-Type: multipart/mixed; boundary=b\n\njust text\n",
		    "|||" },
		/* A Content-Type without a subtype is text/plain. */
		{ "Content-Type: text\n\nbody\n", "body\n|||" },
		/* Garbage parameters. */
		{ "Content-Type: multipart/mixed;;; =x; boundary = \"b\" ;\n\n"
		  "--b\n\nok\n--b--\n",
		    "ok|||" },
		/* The first Content-Type counts. */
		{ "Content-Type: text/plain\nContent-Type: text/html\n\n<b>x</b>",
		    "<b>x</b>|||" },
		/* An empty message. */
		{ "Subject: empty\n\n", "|||" },
		/* A lone CR in a part is content; a part made of one CR. */
		{ "Content-Type: multipart/mixed; boundary=b\n\n"
		  "--b\n\na\rb\n--b--\n",
		    "ab|||" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++)
		expect(cases[i].in, cases[i].want);
}

static void
broken_mime_bare_lf(void **state)
{
	struct mw_mime *m;

	(void)state;
	m = feed_lf("Content-Type: multipart/alternative; boundary=\"b\"\n\n"
		    "--b\nContent-Type: text/plain\n\nlf only\n--b\n"
		    "Content-Type: text/html\n\n<p>x</p>\n--b--\n");
	assert_string_equal(mw_mime_text(m, NULL), "lf only\nx\n");
	mw_mime_free(m);
}

/* Deterministic filler. */
static void
fill(char *p, size_t n, const char *pattern)
{
	size_t i, l = strlen(pattern);

	for (i = 0; i < n; i++)
		p[i] = pattern[i % l];
}

static void
huge_lines(void **state)
{
	struct mw_mime_limits lim = { 16 << 20, 16 << 20, 0, 0, 0, 0 };
	size_t big = 3 << 20, n;
	struct str msg = { NULL, 0, 0 };
	char *line = malloc(big);
	struct mw_mime *m;
	const char *t;

	(void)state;
	assert_non_null(line);
	/* One 3 MB text line in a multipart, a 3 MB dash line, a 3 MB
	 * header line and a 3 MB base64 line. */
	str_adds(&msg,
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	    "X-Long: ");
	fill(line, big, "abcdefgh");
	str_add(&msg, line, big);
	str_adds(&msg, "\r\nContent-Type: text/plain\r\n\r\n");
	str_add(&msg, line, big);
	str_adds(&msg, "\r\n");
	memset(line, '-', big);
	str_add(&msg, line, big);
	str_adds(&msg, "\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	fill(line, big, "QUJD");
	str_add(&msg, line, big);
	str_adds(&msg, "\r\n--b--\r\n");
	m = feed_raw(msg.p, msg.len, &lim, NULL, 0, 65536);
	t = mw_mime_text(m, &n);
	assert_false(mw_mime_truncated(m));
	assert_int_equal(n, big + 1 + big + 1 + big / 4 * 3);
	assert_memory_equal(t, "abcdefghabcdefgh", 16);
	assert_int_equal(t[big], '\n');
	assert_int_equal(t[big + 1], '-');
	assert_int_equal(t[2 * big], '-');
	assert_int_equal(t[2 * big + 1], '\n');
	assert_int_equal(t[2 * big + 2], 'A');
	assert_memory_equal(t + n - 3, "ABC", 3);
	mw_mime_free(m);
	/* A 3 MB Content-Type field is cut and says so. */
	msg.len = 0;
	str_adds(&msg,
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	    "Content-Type: text/plain; x=\"");
	fill(line, big, "y");
	str_add(&msg, line, big);
	str_adds(&msg, "\"\r\n\r\nafter\r\n--b--\r\n");
	m = feed_raw(msg.p, msg.len, &lim, NULL, 0, 4096);
	assert_string_equal(mw_mime_text(m, NULL), "after");
	assert_true(mw_mime_truncated(m));
	mw_mime_free(m);
	free(line);
	free(msg.p);
}

static void
nul_bytes(void **state)
{
	static const char msg[] =
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: text/plain\r\n\r\na\0b\r\n"
	    "--b\r\nContent-\0Type: text/html\r\n\r\n<p\0>c\0d\r\n"
	    "--b\r\nContent-Type: text/html\r\n\r\n<b>e\0f</b>&#0;g\r\n"
	    "--b--\r\n";
	struct mw_mime *m;
	size_t n;
	const char *t;

	(void)state;
	m = feed_raw(msg, sizeof(msg) - 1, NULL, NULL, 0, 0);
	t = mw_mime_text(m, &n);
	assert_int_equal(strlen(t), n);
	assert_string_equal(t,
	    "a\xef\xbf\xbd"
	    "b\n"
	    "Content-\xef\xbf\xbdType: text/html\n\n<p\xef\xbf\xbd>c\xef\xbf\xbd"
	    "d\n"
	    "e\xef\xbf\xbd"
	    "f\xef\xbf\xbdg");
	mw_mime_free(m);
}

/* The message of the chunking tests: every stage has state to carry. */
static const char chunk_msg[] =
    "From: a@example.org\n"
    "Content-Type: multipart/mixed;\n boundary=\"==outer==\"\n"
    "\n"
    "preamble\n"
    "--==outer==\n"
    "Content-Type: multipart/alternative; boundary=alt\n"
    "\n"
    "--alt\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Gr=C3=BC=C3=9Fe from https://www.Example.COM/path and=\n"
    " www.second.example.\n"
    "--alt\n"
    "Content-Type: text/html; charset=\"windows-1252\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "PHN0eWxlPnAge308L3N0eWxlPjxwPkJ1eSZuYnNwO25vdyA8YSBocmVmPSJodHRw\n"
    "Oi8vY2xpY2suZXhhbXBsZS5uZXQvP2E9MSZhbXA7Yj0yIj5oZXJlPC9hPiGAPC9w\n"
    "PjwhLS0gY29tbWVudCAtLT4mZWFjdXRlOyYjeDQxOyYjNjY7\n"
    "--alt--\n"
    "--==outer==\n"
    "Content-Type: application/octet-stream;\n"
    " name*0*=utf-8''%E2%82%AC;\n"
    " name*1=\"uro.exe\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "TVqQAAMAAAAEAAAA\n"
    "--==outer==--\n"
    "epilogue\n";

static const char chunk_want[] =
    "Gr\xc3\xbc\xc3\x9f"
    "e from https://www.Example.COM/path and www.second.example.\n"
    "Buy now here!\xe2\x82\xac\n\xc3\xa9"
    "AB|application/octet-stream=\xe2\x82\xacuro.exe|"
    "www.example.com,www.second.example,click.example.net|";

static void
chunks_whole_message(void **state)
{
	(void)state;
	expect(chunk_msg, chunk_want);
}

static void
chunks_split_at_every_offset(void **state)
{
	struct str s = crlf(chunk_msg, sizeof(chunk_msg) - 1);
	const char *body = strstr(s.p, "\r\n\r\n") + 4;
	size_t blen = s.len - (size_t)(body - s.p), cut, cut2;

	(void)state;
	/* One cut anywhere. */
	for (cut = 0; cut <= blen; cut++) {
		struct mw_mime *m = feed_raw(s.p, s.len, NULL, &cut, 1, 0);
		char *got = summary(m);

		if (strcmp(got, chunk_want) != 0) {
			print_error("cut at %zu: got \"%s\"\n", cut, got);
			fail();
		}
		free(got);
		mw_mime_free(m);
	}
	/* Two cuts, close together, anywhere. */
	for (cut = 0; cut + 4 <= blen; cut++) {
		for (cut2 = cut + 1; cut2 <= cut + 4; cut2++) {
			size_t cuts[2] = { cut, cut2 };
			struct mw_mime *m =
			    feed_raw(s.p, s.len, NULL, cuts, 2, 0);
			char *got = summary(m);

			if (strcmp(got, chunk_want) != 0) {
				print_error("cuts at %zu,%zu: got \"%s\"\n",
				    cut, cut2, got);
				fail();
			}
			free(got);
			mw_mime_free(m);
		}
	}
	free(s.p);
}

static void
chunks_byte_by_byte(void **state)
{
	struct str s = crlf(chunk_msg, sizeof(chunk_msg) - 1);
	size_t step;

	(void)state;
	for (step = 1; step <= 7; step++) {
		struct mw_mime *m = feed_raw(s.p, s.len, NULL, NULL, 0, step);
		char *got = summary(m);

		assert_string_equal(got, chunk_want);
		free(got);
		mw_mime_free(m);
	}
	free(s.p);
}

static void
html_to_text(void **state)
{
	static const struct case2 cases[] = {
		{ "<html><body><p>Hello <b>World</b></p></body></html>",
		    "Hello World\n" },
		{ "Vi<b></b>ag<!-- x -->ra", "Viagra" },
		{ "a<!-- <p>hidden</p> -- still -->b", "ab" },
		{ "a<!---->b<!-- unterminated", "ab" },
		{ "<script>var x = '<p>no</p>';</script>yes", "yes" },
		{ "<SCRIPT type=x>if (a</b) {}</SCRIPT >ok", "ok" },
		{ "<style>p { color: red }</style>styled", "styled" },
		{ "<style>a</styl</style>b", "b" },
		{ "&amp; &lt;&gt; &quot;&apos; &eacute;&Eacute;",
		    "& <> \"' \xc3\xa9\xc3\x89" },
		{ "&#65;&#x42;&#X43;&#0067; &#128; &#x110000; &#0;",
		    "ABCC \xe2\x82\xac \xef\xbf\xbd \xef\xbf\xbd" },
		{ "&unknown; &amp &copy2019 &euro x",
		    "&unknown; & \xc2\xa9"
		    "2019 &euro x" },
		{ "fr&shy;ee &#8203;mo&#x200B;ney", "free money" },
		{ "a&nbsp;&nbsp;b", "a  b" },
		{ "a   \n\t  b", "a b" },
		{ "line<br>break<br/>twice<br><br>x", "line\nbreak\ntwice\nx" },
		{ "<table><tr><td>a</td><td>b</td></tr></table>", "a b\n" },
		{ "<a title=\"x > y\" href='z'>link</a>", "link" },
		{ "<a title=x>y</a>", "y" },
		{ "a < b and c > d", "a < b and c > d" },
		{ "<!DOCTYPE html><?xml x?>text", "text" },
		{ "<p>unclosed <b", "unclosed" },
		{ "x &", "x &" },
		{ "<img alt=\"&quot;>\">z", "z" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++)
		expect_part("text/html; charset=utf-8", NULL, cases[i].in,
		    cases[i].want);
}

static void
url_extraction(void **state)
{
	static const struct case2 cases[] = {
		/* Text. */
		{ "see http://Example.COM/x, https://b.example.org?q "
		  "ftp://files.example.net:21/ and www.c.example.",
		    "example.com,b.example.org,files.example.net,www.c.example" },
		{ "(http://paren.example) \"http://quote.example\" "
		  "<http://angle.example>",
		    "paren.example,quote.example,angle.example" },
		{ "dup http://x.example http://X.EXAMPLE/ www.x.example "
		  "http://x.example.",
		    "x.example,www.x.example" },
		{ "HTTP://UPPER.EXAMPLE WWW.UPPER2.EXAMPLE",
		    "upper.example,www.upper2.example" },
		{ "http://user:pass@host.example:8080/ http://a@b@c.example",
		    "host.example,c.example" },
		{ "http://%65vil.example/ http://[2001:db8::1]/x",
		    "evil.example,[2001:db8::1]" },
		{ "http://b\xc3\xbc"
		  "cher.example/ http://192.0.2.1/",
		    "b\xc3\xbc"
		    "cher.example,192.0.2.1" },
		{ "awww.not.example www. http:// http://nodot/ "
		  "http://a..b.example mailto:x@y.example",
		    "" },
		{ "trailing http://dots.example... and www.end.example",
		    "dots.example,www.end.example" },
	};
	static const struct case2 html[] = {
		{ "<a href=\"http://one.example/a\">x</a>"
		  "<img SRC='https://two.example'>"
		  "<form action=//three.example/f></form>"
		  "<td background=\"http://four.example/bg.gif\">",
		    "one.example,two.example,three.example,four.example" },
		{ "<a href=\"ht&#116;p://ent.example\">x</a>"
		  "<a href=\"http:\\\\back.example\\\">y</a>"
		  "<a href=\" http://\n\tspace.example \">z</a>",
		    "ent.example,back.example,space.example" },
		{ "<a href=\"/relative\">r</a><a href=\"mailto:a@b.example\">m</a>"
		  "<a href=\"javascript:go('http')\">j</a><a name=http://no.example>",
		    "" },
		{ "<a href=\"http://attr.example\">visit http://text.example "
		  "or www.t&#101;xt2.example</a>",
		    "attr.example,text.example,www.text2.example" },
		{ "<p>http://split<b></b>.example/</p><!-- http://c.example -->",
		    "split.example" },
		{ "<a href=www.www.example>w</a>", "www.www.example" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		struct str msg = { NULL, 0, 0 }, want = { NULL, 0, 0 };

		str_adds(&msg, "Content-Type: text/plain\n\n");
		str_adds(&msg, cases[i].in);
		str_adds(&want, cases[i].in);
		str_adds(&want, "|||");
		/* The text is the input; only the hosts are checked. */
		{
			struct mw_mime *m = feed(msg.p, NULL);
			char *got = summary(m), *hosts = strrchr(got, '|');

			*hosts = '\0';
			hosts = strrchr(got, '|') + 1;
			if (strcmp(hosts, cases[i].want) != 0) {
				print_error(
				    "text \"%s\"\nwant \"%s\"\ngot  \"%s\"\n",
				    cases[i].in, cases[i].want, hosts);
				fail();
			}
			free(got);
			mw_mime_free(m);
		}
		free(msg.p);
		free(want.p);
	}
	for (i = 0; i < NELEM(html); i++) {
		struct str msg = { NULL, 0, 0 };
		struct mw_mime *m;
		char *got, *hosts;

		str_adds(&msg, "Content-Type: text/html\n\n");
		str_adds(&msg, html[i].in);
		m = feed(msg.p, NULL);
		got = summary(m);
		*strrchr(got, '|') = '\0';
		hosts = strrchr(got, '|') + 1;
		if (strcmp(hosts, html[i].want) != 0) {
			print_error("html \"%s\"\nwant \"%s\"\ngot  \"%s\"\n",
			    html[i].in, html[i].want, hosts);
			fail();
		}
		free(got);
		mw_mime_free(m);
		free(msg.p);
	}
}

static void
urls_not_in_attachments_and_parts_separate(void **state)
{
	(void)state;
	/* A URL in an attachment is not looked at; one cut by a part
	 * boundary is two strings. */
	expect("Content-Type: multipart/mixed; boundary=b\n\n"
	       "--b\n\nhttp://first\n"
	       "--b\nContent-Type: text/plain\n\n.example/ www.x.example\n"
	       "--b\nContent-Type: text/csv\n\nhttp://att.example\n--b--\n",
	    "http://first\n.example/ www.x.example|text/csv|www.x.example|");
}

static void
attachment_names(void **state)
{
	static const struct case2 cases[] = {
		{ "Content-Disposition: attachment; filename=\"plain.pdf\"",
		    "plain.pdf" },
		{ "Content-Disposition: attachment; filename=unquoted.zip ",
		    "unquoted.zip" },
		{ "Content-Disposition: attachment; filename=\"a \\\"q\\\" b.txt\"",
		    "a \"q\" b.txt" },
		{ "Content-Disposition: attachment;\n"
		  " filename*=UTF-8''%E2%82%AC%20rates.pdf",
		    "\xe2\x82\xac rates.pdf" },
		{ "Content-Disposition: attachment;\n"
		  " filename*=iso-8859-1'fr'caf%E9.doc",
		    "caf\xc3\xa9.doc" },
		{ "Content-Disposition: attachment;\n"
		  " filename*0*=utf-8''%C3%A9t;\n"
		  " filename*1=\"\xc3\xa9.part\";\n"
		  " filename*2*=%2Eexe",
		    "\xc3\xa9t\xc3\xa9.part.exe" },
		{ "Content-Disposition: attachment; filename*1=\"b\";"
		  " filename*0=\"a\"; filename=\"ignored\"",
		    "ab" },
		{ "Content-Disposition: attachment; filename=\"fallback\";"
		  " filename*=utf-8''preferred",
		    "preferred" },
		{ "Content-Disposition: attachment;\n"
		  " filename=\"=?UTF-8?B?w6l0w6kuZXhl?=\"",
		    "\xc3\xa9t\xc3\xa9.exe" },
		{ "Content-Disposition: attachment;\n"
		  " filename=\"=?iso-8859-1?Q?caf=E9_au_lait?= .txt\"",
		    "caf\xc3\xa9 au lait .txt" },
		/* A character split over two encoded words; blanks between
		 * encoded words go. */
		{ "Content-Disposition: attachment;\n"
		  " filename=\"=?utf-8?B?ww==?= =?utf-8?B?qQ==?=x =?utf-8?q?y?=\"",
		    "\xc3\xa9x y" },
		{ "Content-Disposition: attachment;\n"
		  " filename=\"=?UTF-8*en?Q?lang?= =?bad?x?y?=\"",
		    "lang =?bad?x?y?=" },
		{ "Content-Disposition: attachment; filename=\"bad\xff.txt\"",
		    "bad\xef\xbf\xbd.txt" },
		{ "Content-Disposition: attachment", "" },
		{ "Content-Disposition: attachment; filename=\"\"", "" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		struct str msg = { NULL, 0, 0 };
		struct mw_mime *m;
		const struct mw_mime_attachment *a;

		str_adds(&msg,
		    "Content-Type: multipart/mixed; boundary=b\n\n"
		    "--b\nContent-Type: application/octet-stream\n");
		str_adds(&msg, cases[i].in);
		str_adds(&msg, "\n\nAAAA\n--b--\n");
		m = feed(msg.p, NULL);
		assert_int_equal(mw_mime_nattachments(m), 1);
		a = mw_mime_attachment(m, 0);
		assert_string_equal(a->content_type,
		    "application/octet-stream");
		if (strcmp(a->filename ? a->filename : "", cases[i].want) !=
		    0) {
			print_error("%s\nwant \"%s\" got \"%s\"\n", cases[i].in,
			    cases[i].want,
			    a->filename ? a->filename : "(null)");
			fail();
		}
		mw_mime_free(m);
		free(msg.p);
	}
	/* Content-Type name= when there is no filename=; types in lower
	 * case; a text part with a file name is text and listed. */
	expect(
	    "Content-Type: multipart/mixed; boundary=b\n\n"
	    "--b\nContent-Type: Application/X-MSDownload; Name=\"a.exe\"\n\nx\n"
	    "--b\nContent-Type: text/plain; name=\"readme.txt\"\n\nread me\n"
	    "--b\nContent-Type: text/html\nContent-Disposition: attachment\n\n"
	    "<p>not text</p>\n"
	    "--b\nContent-Type: image/png\n\nx\n"
	    "--b\nContent-Disposition: attachment; filename=x.txt\n\ny\n"
	    "--b--\n",
	    "read me|application/x-msdownload=a.exe;text/plain=readme.txt;"
	    "text/html;image/png;text/plain=x.txt||");
	/* A single-part message that is an attachment. */
	expect("Content-Type: application/pdf\nContent-Transfer-Encoding: "
	       "base64\nContent-Disposition: inline; filename=x.pdf\n\nJVBE\n",
	    "|application/pdf=x.pdf||");
}

static void
charsets(void **state)
{
	static const struct {
		const char *charset, *in, *want;
	} cases[] = {
		{ "utf-8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
		{ "UTF8", "ok", "ok" },
		{ "utf-8", "bad \xff \xc3 x \xe2\x82 y",
		    "bad \xef\xbf\xbd \xef\xbf\xbd x \xef\xbf\xbd y" },
		{ "utf-8",
		    "overlong \xc0\xaf surrogate \xed\xa0\x80 big \xf4\x90\x80\x80",
		    "overlong \xef\xbf\xbd\xef\xbf\xbd surrogate "
		    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd big "
		    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "utf-8", "truncated at the end \xe2\x82",
		    "truncated at the end \xef\xbf\xbd" },
		{ "us-ascii", "plain \xe9", "plain \xef\xbf\xbd" },
		{ "iso-8859-1", "caf\xe9 \xa0\xff",
		    "caf\xc3\xa9 \xc2\xa0\xc3\xbf" },
		{ "\"ISO-8859-1\"", "\xe9", "\xc3\xa9" },
		{ "latin1", "\xe9", "\xc3\xa9" },
		{ "windows-1252", "\x80 \x93q\x94 \x81",
		    "\xe2\x82\xac \xe2\x80\x9cq\xe2\x80\x9d \xc2\x81" },
		{ "koi8-r", "\xc1\xc2", "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "shift_jis", "\x82\xa0", "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "x-unknown", "caf\xc3\xa9", "caf\xc3\xa9" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		char ct[128];

		snprintf(ct, sizeof(ct), "text/plain; charset=%s",
		    cases[i].charset);
		expect_part(ct, NULL, cases[i].in, cases[i].want);
	}
	/* A UTF-8 sequence split between chunks at every position. */
	{
		static const char msg[] =
		    "Content-Type: text/plain; "
		    "charset=utf-8\r\n\r\n"
		    "\xf0\x9f\x98\x80\xe2\x82\xac\xc3\xa9";
		size_t cut;

		for (cut = 0; cut <= 9; cut++) {
			struct mw_mime *m =
			    feed_raw(msg, sizeof(msg) - 1, NULL, &cut, 1, 0);

			assert_string_equal(mw_mime_text(m, NULL),
			    "\xf0\x9f\x98\x80\xe2\x82\xac\xc3\xa9");
			mw_mime_free(m);
		}
	}
}

static void
top_level_headers(void **state)
{
	struct mw_mime *m;

	(void)state;
	/* Folded with CRLF and LF; other fields ignored; case ignored. */
	m = mw_mime_new(NULL);
	assert_true(mw_mime_header(m, "Subject", "x"));
	assert_true(mw_mime_header(m, "CONTENT-TYPE",
	    "multipart/mixed;\r\n\tboundary=\"b\"; x=y"));
	assert_true(mw_mime_header(m, "content-transfer-encoding", "7bit"));
	assert_true(
	    mw_mime_body(m, (const unsigned char *)"--b\r\n\r\nok\r\n", 11));
	/* Too late: the body has started. */
	assert_true(mw_mime_header(m, "Content-Type", "text/html"));
	assert_true(mw_mime_body(m, (const unsigned char *)"--b--\r\n", 7));
	mw_mime_end(m);
	mw_mime_end(m);
	assert_true(mw_mime_body(m, (const unsigned char *)"more", 4));
	assert_string_equal(mw_mime_text(m, NULL), "ok");
	mw_mime_free(m);
	/* No header at all: text/plain; no body at all: nothing. */
	m = mw_mime_new(NULL);
	assert_true(mw_mime_body(m, (const unsigned char *)"just text", 9));
	mw_mime_end(m);
	assert_string_equal(mw_mime_text(m, NULL), "just text");
	assert_null(mw_mime_attachment(m, 0));
	assert_null(mw_mime_url_host(m, 0));
	mw_mime_free(m);
	m = mw_mime_new(NULL);
	mw_mime_end(m);
	assert_string_equal(mw_mime_text(m, NULL), "");
	mw_mime_free(m);
	mw_mime_free(NULL);
}

static void
limit_max_input(void **state)
{
	struct mw_mime_limits lim = { 10, 0, 0, 0, 0, 0 };
	struct mw_mime *m;

	(void)state;
	m = feed("Subject: x\n\n0123456789", &lim);
	assert_string_equal(mw_mime_text(m, NULL), "0123456789");
	assert_false(mw_mime_truncated(m));
	mw_mime_free(m);
	m = feed("Subject: x\n\n0123456789abc", &lim);
	assert_string_equal(mw_mime_text(m, NULL), "0123456789");
	assert_true(mw_mime_truncated(m));
	mw_mime_free(m);
	/* Beyond the limit, a part's headers are not seen either. */
	lim.max_input = 60;
	m = feed("Content-Type: multipart/mixed; boundary=b\n\n"
		 "--b\n\nvisible\n--b\nContent-Type: application/zip; "
		 "name=hidden.zip\n\nx\n--b--\n",
	    &lim);
	assert_string_equal(mw_mime_text(m, NULL), "visible");
	assert_int_equal(mw_mime_nattachments(m), 0);
	assert_true(mw_mime_truncated(m));
	mw_mime_free(m);
}

static void
limit_max_text(void **state)
{
	struct mw_mime_limits lim = { 0, 6, 0, 0, 0, 0 };
	struct mw_mime *m;
	size_t n;

	(void)state;
	m = feed("Content-Type: text/plain; charset=utf-8\n\nabcdef", &lim);
	assert_string_equal(mw_mime_text(m, NULL), "abcdef");
	assert_false(mw_mime_truncated(m));
	mw_mime_free(m);
	/* Cut before a multibyte character, not inside it. */
	m = feed("Content-Type: text/plain; charset=utf-8\n\nabcd\xe2\x82\xac"
		 " http://after.example",
	    &lim);
	assert_string_equal(mw_mime_text(m, &n), "abcd");
	assert_int_equal(n, 4);
	assert_true(mw_mime_truncated(m));
	/* URLs are still found past the text limit (the input limit is
	 * what bounds them). */
	assert_int_equal(mw_mime_nurls(m), 1);
	mw_mime_free(m);
}

static void
limit_parts_and_depth(void **state)
{
	struct mw_mime_limits lim = { 0, 0, 2, 0, 0, 0 };
	struct mw_mime *m;
	struct str msg = { NULL, 0, 0 };
	int i;

	(void)state;
	m = feed("Content-Type: multipart/mixed; boundary=b\n\n"
		 "--b\n\none\n--b\n\ntwo\n--b\n\nthree\n--b--\n",
	    &lim);
	assert_string_equal(mw_mime_text(m, NULL), "one\ntwo");
	assert_true(mw_mime_truncated(m));
	mw_mime_free(m);
	/* 40 levels of nesting: the default depth (10) stops the walk,
	 * the text at the bottom is not seen, nothing breaks. */
	for (i = 0; i < 40; i++) {
		char line[128];

		snprintf(line, sizeof(line),
		    "Content-Type: multipart/mixed; boundary=\"l%d\"\n\n--l%d\n",
		    i, i);
		str_adds(&msg, line);
	}
	str_adds(&msg, "Content-Type: text/plain\n\ndeep\n");
	for (i = 39; i >= 0; i--) {
		char line[64];

		snprintf(line, sizeof(line), "--l%d--\n", i);
		str_adds(&msg, line);
	}
	m = feed(msg.p, NULL);
	assert_string_equal(mw_mime_text(m, NULL), "");
	assert_true(mw_mime_truncated(m));
	mw_mime_free(m);
	/* Allowed deep enough, the text is found. */
	lim.max_parts = 0;
	lim.max_depth = 32;
	msg.len = 0;
	for (i = 0; i < 31; i++) {
		char line[128];

		snprintf(line, sizeof(line),
		    "Content-Type: multipart/mixed; boundary=\"l%d\"\n\n--l%d\n",
		    i, i);
		str_adds(&msg, line);
	}
	str_adds(&msg, "Content-Type: text/plain\n\ndeep\n");
	m = feed(msg.p, &lim);
	assert_string_equal(mw_mime_text(m, NULL), "deep");
	assert_false(mw_mime_truncated(m));
	mw_mime_free(m);
	/* Nested message/rfc822 counts as depth too. */
	lim.max_depth = 1;
	m = feed("Content-Type: message/rfc822\n\n"
		 "Content-Type: message/rfc822\n\nSubject: x\n\ninner\n",
	    &lim);
	assert_string_equal(mw_mime_text(m, NULL), "");
	assert_true(mw_mime_truncated(m));
	mw_mime_free(m);
	free(msg.p);
}

static void
limit_urls_and_attachments(void **state)
{
	struct mw_mime_limits lim = { 0, 0, 0, 0, 2, 1 };
	struct mw_mime *m;

	(void)state;
	m = feed(
	    "Content-Type: text/plain\n\nhttp://a.example http://a.example "
	    "http://b.example",
	    &lim);
	assert_int_equal(mw_mime_nurls(m), 2);
	assert_false(mw_mime_truncated(m));
	mw_mime_free(m);
	m = feed(
	    "Content-Type: text/plain\n\nhttp://a.example http://b.example "
	    "http://c.example",
	    &lim);
	assert_int_equal(mw_mime_nurls(m), 2);
	assert_true(mw_mime_truncated(m));
	mw_mime_free(m);
	m = feed(
	    "Content-Type: multipart/mixed; boundary=b\n\n"
	    "--b\nContent-Type: image/png\n\n--b\nContent-Type: image/gif\n\n"
	    "--b--\n",
	    &lim);
	assert_int_equal(mw_mime_nattachments(m), 1);
	assert_string_equal(mw_mime_attachment(m, 0)->content_type,
	    "image/png");
	assert_true(mw_mime_truncated(m));
	mw_mime_free(m);
}

static void
many_urls_dedup(void **state)
{
	struct mw_mime_limits lim = { 0, 0, 0, 0, 5000, 0 };
	struct str msg = { NULL, 0, 0 };
	struct mw_mime *m;
	int i, round;

	(void)state;
	str_adds(&msg, "Content-Type: text/html\n\n");
	for (round = 0; round < 2; round++)
		for (i = 0; i < 3000; i++) {
			char a[96];

			snprintf(a, sizeof(a),
			    "<a href=\"http://h%d.example/\">http://H%d.EXAMPLE</a>\n",
			    i, i);
			str_adds(&msg, a);
		}
	m = feed(msg.p, &lim);
	assert_int_equal(mw_mime_nurls(m), 3000);
	assert_string_equal(mw_mime_url_host(m, 0), "h0.example");
	assert_string_equal(mw_mime_url_host(m, 2999), "h2999.example");
	assert_false(mw_mime_truncated(m));
	mw_mime_free(m);
	free(msg.p);
}

/* Random bytes and random cuts never crash, hang or break the text's
 * promises (valid UTF-8, no NUL, within max_text). */
static void
random_garbage(void **state)
{
	static const char *const pieces[] = { "--b\r\n", "--b--\r\n", "\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n",
		"Content-Type: text/html; charset=latin1\r\n",
		"Content-Transfer-Encoding: base64\r\n",
		"Content-Transfer-Encoding: quoted-printable\r\n",
		"Content-Type: message/rfc822\r\n",
		"<a href=\"http://x.example", "&#x", "=C3=", "<!--", "<script>",
		"\0", "\xc3", "\xff", "=\r\n", "http://", "www.",
		"filename*0*=utf-8''%", "=?utf-8?B?", "?=", "-", "<", ">", "\"",
		" " };
	struct mw_mime_limits lim = { 0, 4096, 20, 8, 20, 20 };
	uint64_t x = 0x6d696d6574657374ULL;
	int iter;

	(void)state;
	for (iter = 0; iter < 300; iter++) {
		struct str msg = { NULL, 0, 0 };
		struct mw_mime *m;
		size_t k, n, cuts[8];
		const char *t;

		str_adds(&msg,
		    "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
		for (k = 0; k < 400; k++) {
			const char *p;

			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			p = pieces[(x >> 33) % NELEM(pieces)];
			str_add(&msg, p, p[0] == '\0' ? 1 : strlen(p));
		}
		n = msg.len - 45;
		for (k = 0; k < NELEM(cuts); k++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			cuts[k] = (x >> 33) % (n + 1);
		}
		/* ascending */
		for (k = 1; k < NELEM(cuts); k++) {
			size_t j = k, v = cuts[k];

			while (j > 0 && cuts[j - 1] > v) {
				cuts[j] = cuts[j - 1];
				j--;
			}
			cuts[j] = v;
		}
		m = feed_raw(msg.p, msg.len, &lim, cuts, NELEM(cuts), 0);
		t = mw_mime_text(m, &n);
		assert_true(n <= 4096);
		assert_int_equal(strlen(t), n);
		for (k = 0; k < n;) {
			const unsigned char *u = (const unsigned char *)t + k;
			size_t l = u[0] < 0x80 ? 1
			    : u[0] < 0xe0      ? 2
			    : u[0] < 0xf0      ? 3
					       : 4;

			assert_true(
			    u[0] < 0x80 || (u[0] >= 0xc2 && u[0] <= 0xf4));
			assert_true(k + l <= n);
			for (size_t j = 1; j < l; j++)
				assert_int_equal(u[j] & 0xc0, 0x80);
			k += l;
		}
		mw_mime_free(m);
		free(msg.p);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(quoted_printable_decoding),
		cmocka_unit_test(base64_decoding),
		cmocka_unit_test(nested_multipart),
		cmocka_unit_test(multipart_digest_defaults_to_messages),
		cmocka_unit_test(broken_mime),
		cmocka_unit_test(broken_mime_bare_lf),
		cmocka_unit_test(huge_lines),
		cmocka_unit_test(nul_bytes),
		cmocka_unit_test(chunks_whole_message),
		cmocka_unit_test(chunks_split_at_every_offset),
		cmocka_unit_test(chunks_byte_by_byte),
		cmocka_unit_test(html_to_text),
		cmocka_unit_test(url_extraction),
		cmocka_unit_test(urls_not_in_attachments_and_parts_separate),
		cmocka_unit_test(attachment_names),
		cmocka_unit_test(charsets),
		cmocka_unit_test(top_level_headers),
		cmocka_unit_test(limit_max_input),
		cmocka_unit_test(limit_max_text),
		cmocka_unit_test(limit_parts_and_depth),
		cmocka_unit_test(limit_urls_and_attachments),
		cmocka_unit_test(many_urls_dedup),
		cmocka_unit_test(random_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
