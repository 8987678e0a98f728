/*
 * mw_rules -- the rules language: loading (lexer, parser, lists, regexes)
 * and evaluation.
 *
 * A ruleset is compiled completely at load and immutable afterwards: many
 * libmilter threads evaluate it at once without locks (match data for
 * regexes belongs to the caller).  The language is described in
 * milter-warden.rules(5).  Loading reports every error of every file in
 * one pass as FILE:LINE:COL, and warnings (rules that can never fire,
 * macros the MTA does not send at a phase) the same way.
 */
#ifndef MW_RULES_H
#define MW_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mw_diag.h"
#include "mw_addr.h"
#include "mw_ipset.h"

enum mw_phase {
	MW_PH_CONNECT,
	MW_PH_HELO,
	MW_PH_MAIL,
	MW_PH_RCPT,
	MW_PH_HEADER,
	MW_PH_EOH,
	MW_PH_BODY,
	MW_PH_EOM,
	MW_PH_COUNT
};

/* mw_phase_name -- "connect" ... "eom". */
const char *mw_phase_name(enum mw_phase ph);

struct mw_ruleset;

/*
 * A list every ruleset has, made from the main configuration
 * (local_domains, trusted_networks, submission_listeners, sender_logins).
 */
struct mw_rules_predef {
	const char *name;
	const char *type;   /* "domain", "ip", "string" or "logins" */
	char *const *items; /* NULL-terminated; may be NULL */
	const char *file;   /* list file, "" or NULL for none */
	const char *origin; /* where the items come from, for diagnostics */
};

/*
 * mw_rules_load -- the predefined lists, then files[0..n) in order; NULL
 * with every error in diag (warnings are added too, and do not fail the
 * load).
 */
struct mw_ruleset *mw_rules_load(char *const *files, size_t n,
    const struct mw_rules_predef *pre, size_t npre, struct mw_diag *diag);

/* mw_rules_parse -- the same from a buffer (tests, fuzzing); name is used
 * in diagnostics and to resolve relative includes. */
struct mw_ruleset *mw_rules_parse(const char *name, const char *buf, size_t len,
    struct mw_diag *diag);

size_t mw_rules_count(const struct mw_ruleset *rs);
size_t mw_rules_nfiles(const struct mw_ruleset *rs);
void mw_rules_free(struct mw_ruleset *rs);

/* One header of the message, as received. */
struct mw_header {
	char *name;
	char *value; /* without the leading space */
};

/* A header edit, applied at end of message. */
enum mw_edit_kind {
	MW_EDIT_ADD,
	MW_EDIT_INSERT,
	MW_EDIT_CHANGE,
	MW_EDIT_DELETE,
	MW_EDIT_ADD_RCPT,
	MW_EDIT_DELETE_RCPT
};

struct mw_edit {
	enum mw_edit_kind kind;
	char *name;  /* header name, or the address for rcpt edits */
	char *value; /* NULL for deletes */
};

#define MW_FX_MAX_ITEMS 256 /* edits, variables or labels per message */

/*
 * What rules accumulate for a connection or a message.  Owned by the
 * engine; mw_fx_copy starts a message from its connection's effects.
 */
struct mw_fx {
	double score;
	char **labels; /* "LABEL=N" */
	size_t nlabels;
	char **var_names, **var_values;
	size_t nvars;
	struct mw_edit *edits;
	size_t nedits;
	char *subject_prefix;
	char *quarantine;
	char *redirect;
	char **hits; /* identities of the rules that matched */
	size_t nhits;
	int dkim_sign;  /* dkim-sign: 1, dkim-nosign: -1, neither: 0 */
	char *dkim_key; /* dkim-sign "NAME", NULL: by the signing table */
};

void mw_fx_init(struct mw_fx *fx);
void mw_fx_clear(struct mw_fx *fx);
bool mw_fx_copy(struct mw_fx *dst, const struct mw_fx *src);
const char *mw_fx_var(const struct mw_fx *fx, const char *name);

/*
 * What the stateful conditions (ratelimit, greylisted) need from the
 * engine for one evaluation, and what they tell it back.
 */
struct mw_store;
struct mw_eval;
struct mw_mime;
struct mw_limit_env {
	struct mw_store *store; /* NULL: offline, nothing is limited */
	uint64_t now_us;
	unsigned v4_prefix, v6_prefix; /* client.net aggregation */
	bool fail_closed;              /* state_store_on_error = tempfail */
	uint64_t greylist_delay_us, greylist_window_us, greylist_auto_allow_us;
	/* Out: */
	uint64_t retry_us;    /* when the limit that matched frees up */
	unsigned errors;      /* store failures seen */
	bool greylist_passed; /* a greylist check passed */
	char net_key[128];    /* its client network key */
	char err[300];        /* the failure, with fail_closed */
};

/* mw_limit_client_net -- the client's network as keys name it. */
bool mw_limit_client_net(const struct mw_eval *ev,
    const struct mw_limit_env *env, char *buf, size_t size);

/* One DNS blocklist lookup a phase's rules will make. */
struct mw_bl_query {
	const char *zone;
	const char *subject; /* an IP address or a domain */
	bool is_ip;
};

/*
 * mw_rules_bl_queries -- the lookups the dnsbl and rhsbl conditions of
 * phase ph will read, with what ev knows now; up to max into out.  The
 * strings belong to the ruleset and to ev.
 */
size_t mw_rules_bl_queries(const struct mw_ruleset *rs, enum mw_phase ph,
    const struct mw_eval *ev, struct mw_bl_query *out, size_t max);
bool mw_rules_has_bl(const struct mw_ruleset *rs, enum mw_phase ph);
bool mw_rules_uses_bl(const struct mw_ruleset *rs);

/* mw_rules_uses_mime -- does a rule read the decoded body (MIME)? */
bool mw_rules_uses_mime(const struct mw_ruleset *rs);

/* Does the ruleset use the state store (at all / for greylisting)? */
bool mw_rules_uses_store(const struct mw_ruleset *rs);
bool mw_rules_uses_greylist(const struct mw_ruleset *rs);

/* What a trace (milter-warden test) is told about each matching rule. */
struct mw_rule_hit {
	const char *id;   /* name or FILE:LINE */
	const char *file; /* where it is written */
	unsigned line;
	enum mw_phase phase;
	bool report_only;
	const char *actions; /* the actions, as written, for display */
	double score_delta;  /* what its score actions add */
};

/*
 * The data one evaluation sees, filled by the engine.  Strings may be NULL
 * when not known; the parser already refused conditions on data a phase
 * cannot have.
 */
struct mw_eval {
	const char *client_ip_text;
	const struct mw_ip *client_ip; /* NULL if not an IP (local) */
	const char *client_name;
	const char *listener;
	const char *helo;
	const char *tls_version;
	const char *auth_user;
	const char *auth_mech;
	const char *from; /* canonical when it parsed, else as given */
	const char *rcpt;
	const char *from_raw, *rcpt_raw; /* as given: for %{from}, %{rcpt} */
	const struct mw_addr *from_addr; /* NULL outside a message */
	const struct mw_addr *rcpt_addr; /* at rcpt only */
	const struct mw_from *hfrom;     /* From: mailboxes, from eoh on */
	unsigned hfrom_headers;          /* number of From: fields */
	const char *queue_id;
	unsigned long rcpt_count;
	unsigned long size;
	const char *header_name, *header_value;
	const struct mw_header *headers;
	size_t nheaders;
	const unsigned char *body;
	size_t body_len;
	const char *dkim;                /* verification summary, body on */
	const char *const *dkim_domains; /* with a passing signature */
	size_t ndkim_domains;
	struct mw_limit_env *limits; /* NULL: stateful conditions are false */
	int64_t now;                 /* seconds since the epoch */
	const struct mw_mime *mime;  /* the decoded body, body/eom; or NULL */
	bool body_truncated;         /* the raw body went past the scan limit */
	/*
	 * Blocklist answers, looked up before the phase ran: 1 listed (codes
	 * set), 0 not listed, -1 no answer.  NULL: nothing is listed.
	 */
	int (*bl_result)(void *arg, const char *zone, const char *subject,
	    const uint32_t **codes, size_t *ncodes);
	void *bl_arg;
	bool local_submission; /* role "local": sendmail(1) via Postfix */
	const char *(*macro)(const void *arg, const char *name);
	const void *macro_arg;
	struct mw_fx *fx;      /* where this phase's effects go */
	void *match_data;      /* pcre2_match_data * of the caller's thread */
	unsigned long session; /* for log lines (session=) */
	void (*trace)(void *arg, const struct mw_rule_hit *hit);
	void *trace_arg;
};

/* The decision of one phase. */
enum mw_verdict {
	MW_V_CONTINUE,
	MW_V_ACCEPT,
	MW_V_REJECT,
	MW_V_TEMPFAIL,
	MW_V_DISCARD,
	MW_V_ERROR /* evaluation failed: see text */
};

struct mw_decision {
	enum mw_verdict verdict;
	char code[4];
	char dsn[16];
	char text[512];
	const char *rule;     /* identity of the deciding rule */
	bool report_only_hit; /* some report-only rule matched */
};

/*
 * mw_rules_run -- run the rules of one phase.  Effects go to ev->fx;
 * the first terminal action fills *d.  Never blocks; thread-safe for
 * distinct ev.
 */
enum mw_verdict mw_rules_run(const struct mw_ruleset *rs, enum mw_phase ph,
    struct mw_eval *ev, struct mw_decision *d);

/* mw_rules_has_phase -- true if any rule runs at ph (lets the glue skip). */
bool mw_rules_has_phase(const struct mw_ruleset *rs, enum mw_phase ph);

/*
 * mw_rules_log_counters -- log how often each rule matched while the
 * ruleset ran (called when a state is retired: reload or stop).
 */
void mw_rules_log_counters(const struct mw_ruleset *rs,
    unsigned long generation);

/*
 * mw_rules_check_dkim_keys -- every `dkim-sign "NAME"` must name a key:
 * exists(arg, NAME) decides; each one that does not is an error at its
 * rule's FILE:LINE.
 */
void mw_rules_check_dkim_keys(const struct mw_ruleset *rs,
    bool (*exists)(const void *arg, const char *name), const void *arg,
    struct mw_diag *diag);

/*
 * mw_rules_outbound -- why mail of this session is outbound (and signed):
 * "authenticated", "trusted" (client in trusted_networks) or "submission"
 * (a submission listener); NULL for inbound mail.
 */
const char *mw_rules_outbound(const struct mw_ruleset *rs,
    const struct mw_eval *ev);

/* Match data for one thread or session: free with mw_rules_match_free. */
void *mw_rules_match_new(void);
void mw_rules_match_free(void *md);

#endif
