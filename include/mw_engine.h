/*
 * mw_engine -- the policy engine, independent of libmilter.
 *
 * The milter glue copies what the MTA says into a connection (mw_conn) and
 * calls one function per SMTP phase; each returns an action and fills a
 * reply.  Tests drive the same functions directly.  Connection state lives
 * from connect to close; message state from MAIL FROM to end of message or
 * abort, and several messages may follow on one connection.
 *
 * Threading: a connection is used by one thread at a time (libmilter
 * guarantees that per SMTP session); connections share only their
 * immutable, reference-counted state.
 */
#ifndef MW_ENGINE_H
#define MW_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mw_state.h"

enum mw_action {
	MW_CONTINUE, /* go on to the next phase */
	MW_ACCEPT,   /* accept the message, no further checks */
	MW_REJECT,   /* 5xx */
	MW_TEMPFAIL, /* 4xx */
	MW_DISCARD,  /* accept and drop */
	MW_SKIP,     /* no more body chunks needed */
	MW_ERROR     /* internal failure: see mw_engine_failure() */
};

#define MW_REPLY_TEXT_MAX 512 /* 255 bytes of text with every % doubled */

struct mw_reply {
	enum mw_action action;
	char code[4];                 /* "550", "" for none */
	char dsn[16];                 /* "5.7.1", "" for none */
	char text[MW_REPLY_TEXT_MAX]; /* without code; libmilter-safe */
	const char *rule;             /* what decided, static string */
};

/* Longest envelope address or macro value kept (RFC 5321 path is 256). */
#define MW_ADDR_MAX  1024
#define MW_MACRO_MAX 4096
#define MW_MACROS    64

struct mw_conn;

/*
 * mw_conn_new -- connection state for one MTA session, holding a reference
 * on st (released by mw_conn_free).  NULL on OOM.
 */
struct mw_conn *mw_conn_new(struct mw_state *st);
void mw_conn_free(struct mw_conn *c);

/* mw_conn_state -- the state this connection evaluates under. */
const struct mw_state *mw_conn_state(const struct mw_conn *c);

/*
 * mw_conn_set_macro -- remember a macro value ("i", "{auth_authen}" ...).
 * Braces are stripped from the name.  Returns false if the value is longer
 * than MW_MACRO_MAX or the table is full (the value is then not stored and
 * the caller treats this as an internal failure).
 */
bool mw_conn_set_macro(struct mw_conn *c, const char *name, const char *value);

/* mw_conn_macro -- value of a macro (name with or without braces) or NULL. */
const char *mw_conn_macro(const struct mw_conn *c, const char *name);

/* Phase entry points.  Each fills *r and returns r->action. */
enum mw_action mw_eng_connect(struct mw_conn *c, const char *hostname,
    const char *addr, struct mw_reply *r);
enum mw_action mw_eng_helo(struct mw_conn *c, const char *helo,
    struct mw_reply *r);
enum mw_action mw_eng_mail(struct mw_conn *c, const char *sender,
    const char *const *esmtp_args, struct mw_reply *r);
enum mw_action mw_eng_rcpt(struct mw_conn *c, const char *rcpt,
    struct mw_reply *r);
enum mw_action mw_eng_data(struct mw_conn *c, struct mw_reply *r);
enum mw_action mw_eng_header(struct mw_conn *c, const char *name,
    const char *value, struct mw_reply *r);
enum mw_action mw_eng_eoh(struct mw_conn *c, struct mw_reply *r);
enum mw_action mw_eng_body(struct mw_conn *c, const unsigned char *chunk,
    size_t len, struct mw_reply *r);
enum mw_action mw_eng_eom(struct mw_conn *c, struct mw_reply *r);
enum mw_action mw_eng_unknown(struct mw_conn *c, const char *cmd,
    struct mw_reply *r);

/* mw_eng_abort -- the MTA dropped the current message (RSET, error). */
void mw_eng_abort(struct mw_conn *c);

/*
 * mw_engine_failure -- turn an internal failure into the configured reply:
 * tempfail 451 4.3.0 (default) or, when on_internal_error = accept, a
 * logged MW_CONTINUE.  The one place where an error becomes a verdict.
 */
enum mw_action mw_engine_failure(struct mw_conn *c, const char *what,
    struct mw_reply *r);

/*
 * What the MTA is asked to change at end of message, in order.  The glue
 * performs each with the matching smfi_* call; header deletions come
 * from the highest index down.
 */
enum mw_op_kind {
	MW_OP_ADD_HEADER,    /* name, value */
	MW_OP_INSERT_HEADER, /* name, value, at index 0 */
	MW_OP_CHANGE_HEADER, /* name, index (1-based), value; NULL deletes */
	MW_OP_ADD_RCPT,      /* name = address */
	MW_OP_DELETE_RCPT,   /* name = address */
	MW_OP_QUARANTINE     /* value = reason */
};

struct mw_op {
	enum mw_op_kind kind;
	char *name;
	char *value;
	unsigned index;
};

/*
 * mw_conn_ops -- the changes decided at the last end of message; valid
 * until the next message starts on c.
 */
const struct mw_op *mw_conn_ops(const struct mw_conn *c, size_t *n);

/*
 * mw_conn_set_trace -- call fn for every matching rule (milter-warden
 * test); NULL to stop.
 */
struct mw_rule_hit;
void mw_conn_set_trace(struct mw_conn *c,
    void (*fn)(void *arg, const struct mw_rule_hit *hit), void *arg);

/* mw_conn_fx -- score, labels and variables so far (message, or the
 * connection's outside a message). */
struct mw_fx;
const struct mw_fx *mw_conn_fx(const struct mw_conn *c);

/*
 * mw_engine_set_clock -- the clock rate limits and greylisting read, in
 * microseconds since the epoch (tests control time); NULL: the real one.
 * Set before any session starts.
 */
void mw_engine_set_clock(uint64_t (*fn)(void));

/* Message counters for tests and the log. */
unsigned long mw_conn_nrcpt(const struct mw_conn *c);
unsigned long mw_conn_nmsgs(const struct mw_conn *c);
unsigned long mw_conn_body_scanned(const struct mw_conn *c);

#endif
