/*
 * engine_int.h -- what the engine's source files share: the connection and
 * message state and the helpers that build replies, log lines and MTA
 * operations.  Private to engine.c and engine_dkim.c.
 */
#ifndef MW_ENGINE_INT_H
#define MW_ENGINE_INT_H

#include "mw_addr.h"
#include "mw_dkim.h"
#include "mw_engine.h"
#include "mw_log.h"
#include "mw_rules.h"

#define BODY_PAD 64 /* zeroed bytes after the kept body */

struct macro {
	char name[32];
	char *value;
};

/* Message state: from MAIL FROM to end of message or abort. */
struct mw_msg {
	char *from;       /* without angle brackets, as given */
	char *from_canon; /* normalised (mw_addr), NULL if it did not parse */
	struct mw_addr from_addr;
	struct mw_from *hfrom;  /* From: mailboxes, from end of headers */
	unsigned hfrom_headers; /* From: fields */
	unsigned long esmtp_size;
	char **rcpts; /* recipients accepted so far */
	unsigned long nrcpt;
	struct mw_header *headers;
	size_t nheaders;
	unsigned long header_bytes;
	unsigned char *body; /* the first max_body_scan_bytes */
	unsigned long body_bytes;
	unsigned long body_scanned;
	bool body_skipped; /* the MTA was told to skip the rest */
	bool accepted;     /* a rule accepted: no more rules */
	struct mw_fx fx;   /* starts as a copy of the connection's */
	/* DKIM, from end of headers (dkim_start) to end of message. */
	struct mw_dkim_job *dkim; /* NULL: neither signing nor verifying */
	struct mw_mime *mime;     /* decoded body, when rules read it */
	bool dkim_signing;
	const char *dkim_why; /* outbound but not signed: why (static) */
	char dkim_domain[MW_ADDR_DOMAIN_MAX];
	size_t dkim_edits; /* header edits known when signing began */
	char *dkim_prefix; /* subject prefix known then */
	/* Greylisting passed for a recipient: auto-allow once delivered. */
	bool greylist_passed;
	char greylist_net[128];
	unsigned store_errors;     /* state store failures (fail-open) */
	unsigned long bl_spent_ms; /* blocklist waiting, of dnsbl_budget */
};

/* Connection state: from connect to close, across messages. */
struct mw_conn {
	struct mw_state *st; /* reference held until free */
	unsigned long id;    /* ties NOQUEUE lines of one session together */
	char *client_name;   /* as the MTA resolved it */
	char *client_addr;
	struct mw_ip client_ip;
	bool client_ip_valid;
	char *helo;
	struct macro macros[MW_MACROS];
	size_t nmacros;
	unsigned long nmsgs;     /* messages completed or aborted */
	bool accepted;           /* a rule accepted the connection */
	bool local_submission;   /* Postfix non_smtpd_milters: never refuse */
	struct mw_fx fx;         /* effects of connect and helo rules */
	struct mw_fx connect_fx; /* of connect rules: each HELO starts here */
	void *match_data;        /* PCRE2 match data of this session */
	struct mw_msg *msg;      /* NULL outside a message */
	struct mw_fx last_fx;    /* the last message's, for mw_conn_fx */
	bool last_valid;
	struct mw_op *ops; /* decided at the last end of message */
	size_t nops;
	struct mw_limit_env lim; /* stateful conditions: store, clock */
	struct bl_answer *bl;    /* blocklist answers of this session */
	size_t nbl;
	unsigned long bl_spent_ms; /* before the first message */
	unsigned bl_noanswer;      /* lookups without an answer */
	void (*trace)(void *, const struct mw_rule_hit *);
	void *trace_arg;
};

/* One blocklist answer, kept for the session (engine_bl.c). */
struct bl_answer {
	char zone[256];
	char subject[256];
	int state; /* 1 listed, 0 not listed, -1 no answer */
	uint32_t codes[8];
	size_t ncodes;
};

/* engine.c */
enum mw_action eng_cont(struct mw_reply *r);
enum mw_action eng_set_reply(struct mw_reply *r, enum mw_action action,
    const char *code, const char *dsn, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void eng_log_decision(const struct mw_conn *c, enum mw_log_level level,
    const struct mw_reply *r, const char *rcpt, const char *extra);
bool eng_op_add(struct mw_conn *c, enum mw_op_kind kind, const char *name,
    const char *value, unsigned index);
unsigned eng_header_count(const struct mw_msg *m, const char *name);

/* engine_bl.c */

/*
 * eng_bl_prefetch -- resolve, all at once, the blocklist lookups the rules
 * of phase ph will read, within what is left of dnsbl_budget.
 */
void eng_bl_prefetch(struct mw_conn *c, enum mw_phase ph,
    const struct mw_eval *ev);

/* eng_bl_result -- ev->bl_result: an answer prefetched for (zone, subject). */
int eng_bl_result(void *arg, const char *zone, const char *subject,
    const uint32_t **codes, size_t *ncodes);

/* engine_dkim.c */

/* eng_dkim_active -- may DKIM sign or verify mail of this state? */
bool eng_dkim_active(const struct mw_conn *c);

/*
 * eng_dkim_start -- at end of headers, after the rules: begin signing
 * outbound mail that has a key, or verifying the rest.
 */
enum mw_action eng_dkim_start(struct mw_conn *c, struct mw_msg *m,
    struct mw_eval *ev, struct mw_reply *r);

/*
 * eng_dkim_verified -- at end of message, before the rules: finish the
 * verification and give the rules its result (domains: room for
 * MW_DKIM_MAX_SIGS).
 */
void eng_dkim_verified(struct mw_conn *c, struct mw_msg *m, struct mw_eval *ev,
    const char **domains);

/*
 * eng_dkim_finish -- at end of message, after the rules: the signatures or
 * Authentication-Results as operations, and the log fields in log.
 */
enum mw_action eng_dkim_finish(struct mw_conn *c, struct mw_msg *m, char *log,
    size_t logsize, struct mw_reply *r);

/* eng_dkim_key_error -- signing failed: dkim_on_key_error decides. */
enum mw_action eng_dkim_key_error(struct mw_conn *c, const char *what,
    struct mw_reply *r);

#endif
