/*
 * mw_mime -- a streaming, bounded MIME walker for content rules.
 *
 * The engine feeds it a message as the MTA hands it over: the message's
 * own header fields one by one, then the body in chunks split anywhere
 * (inside a line, a boundary, a quoted-printable escape or a base64
 * quantum), then the end.  The walker keeps only what content rules need:
 *
 *   - the decoded text of the text/plain and text/html parts, converted to
 *     UTF-8, HTML reduced to its text (tags, comments, script and style
 *     removed, entities decoded), parts separated by "\n";
 *   - the attachments: declared content type and file name;
 *   - the host names of the URLs in the text and in HTML links.
 *
 * Nothing here knows about libmilter or about the rules.  Every buffer is
 * bounded by struct mw_mime_limits, the cost is linear in the input, and
 * a limit that was reached is visible through mw_mime_truncated(): what
 * lies beyond it was not inspected.
 *
 * One walker per message; the object is not shared between threads.  The
 * results may be read at any time (they grow as the body arrives) and are
 * complete after mw_mime_end().  Pointers returned by the accessors stay
 * valid until mw_mime_free(), except that of mw_mime_text(), which moves
 * when more body is fed.
 */
#ifndef MW_MIME_H
#define MW_MIME_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Limits.  A zero field takes the default named beside it.
 */
struct mw_mime_limits {
	size_t max_input;         /* raw body bytes inspected (1 MiB) */
	size_t max_text;          /* decoded text bytes kept (1 MiB) */
	unsigned max_parts;       /* MIME parts walked, the message
				     itself not counted (100) */
	unsigned max_depth;       /* nesting: the message is depth 0,
				     its parts depth 1 ... (10; never
				     more than 32) */
	unsigned max_urls;        /* distinct URL host names kept (200) */
	unsigned max_attachments; /* attachments listed (50) */
};

/* What is known about one attachment. */
struct mw_mime_attachment {
	/*
	 * The file name in UTF-8: Content-Disposition filename= (RFC 2231
	 * filename*= with continuations and charset'lang'%XX preferred) or
	 * else Content-Type name=; RFC 2047 encoded words decoded.  NULL
	 * when the part names no file.
	 */
	const char *filename;
	/* The declared type/subtype in lower case ("text/plain" if none). */
	const char *content_type;
};

struct mw_mime;

/*
 * mw_mime_new -- a walker for one message.  lim may be NULL (all
 * defaults).  Returns NULL when out of memory.  The caller owns it.
 */
struct mw_mime *mw_mime_new(const struct mw_mime_limits *lim);

/* mw_mime_free -- release the walker and everything it returned.  NULL ok. */
void mw_mime_free(struct mw_mime *m);

/*
 * mw_mime_header -- one header field of the message itself, in order.
 * Only Content-Type, Content-Transfer-Encoding and Content-Disposition
 * matter (the first of each counts); others are ignored.  value may be
 * folded with LF or CRLF.  Fields given after the body has started are
 * ignored.  Returns false when out of memory (the walker is then failed:
 * every later call returns false and the results are incomplete).
 */
bool mw_mime_header(struct mw_mime *m, const char *name, const char *value);

/*
 * mw_mime_body -- the next len bytes of the body as the MTA sends them
 * (CRLF line ends; LF alone is accepted too).  Bytes past max_input are
 * not inspected and set the truncated flag.  Returns false when out of
 * memory, as mw_mime_header does; a limit reached is not a failure.
 */
bool mw_mime_body(struct mw_mime *m, const unsigned char *buf, size_t len);

/*
 * mw_mime_end -- the body is complete: flush what is pending (a part
 * without its final boundary, a base64 quantum without padding, ...).
 * Later body bytes are ignored.  Calling it twice is harmless.
 */
void mw_mime_end(struct mw_mime *m);

/*
 * mw_mime_text -- the decoded text, valid UTF-8 without NUL bytes (NUL
 * and invalid sequences become U+FFFD), NUL-terminated; *len (if not
 * NULL) gets its length.  Never NULL.
 */
const char *mw_mime_text(const struct mw_mime *m, size_t *len);

/* mw_mime_nattachments -- how many attachments are listed. */
size_t mw_mime_nattachments(const struct mw_mime *m);

/* mw_mime_attachment -- attachment i (< mw_mime_nattachments), or NULL. */
const struct mw_mime_attachment *mw_mime_attachment(const struct mw_mime *m,
    size_t i);

/* mw_mime_nurls -- how many distinct URL host names were found. */
size_t mw_mime_nurls(const struct mw_mime *m);

/*
 * mw_mime_url_host -- host name i (< mw_mime_nurls), or NULL: from the
 * http://, https://, ftp:// and www. URLs of the text parts and from the
 * href, src, action and background attributes of HTML; ASCII lower case,
 * without user, port or trailing dot, percent escapes decoded, IDN left as
 * is (UTF-8), in order of first appearance, each once.
 */
const char *mw_mime_url_host(const struct mw_mime *m, size_t i);

/*
 * mw_mime_truncated -- a limit was reached (input, text, parts, depth,
 * URLs, attachments, or a header field or boundary beyond what is kept):
 * some of the message was not inspected.
 */
bool mw_mime_truncated(const struct mw_mime *m);

#endif
