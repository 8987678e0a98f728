/*
 * rules_ast.h -- the compiled form of a ruleset, shared by the parser
 * (rules.c) and the evaluator (eval.c) only.
 */
#ifndef MW_RULES_AST_H
#define MW_RULES_AST_H

#include <stdatomic.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "mw_ipset.h"
#include "mw_rules.h"
#include "mw_strset.h"

enum field {
	F_CLIENT_IP,
	F_CLIENT_NAME,
	F_LISTENER,
	F_HELO,
	F_HELO_ADDRLIT,
	F_HELO_FQDN,
	F_TLS,
	F_TLS_VERSION,
	F_AUTHENTICATED,
	F_AUTH_USER,
	F_AUTH_MECH,
	F_FROM,
	F_FROM_LOCAL,
	F_FROM_DOMAIN,
	F_RCPT,
	F_RCPT_LOCAL,
	F_RCPT_DOMAIN,
	F_RCPT_COUNT,
	F_SIZE,
	F_HEADER_NAME,
	F_HEADER_VALUE,
	F_SCORE,
	F_ROLE,
	F_TRUSTED,
	F_FROM_ROUTED,
	F_FROM_MALFORMED,
	F_FROM_OWNED,
	F_RCPT_ROUTED,
	F_RCPT_MALFORMED,
	F_HFROM,
	F_HFROM_DOMAIN,
	F_HFROM_COUNT,
	F_HFROM_BOXES,
	F_HFROM_MALFORMED,
	F_HFROM_OWNED,
	F_HFROM_DOMAINS,  /* any mailbox's domain */
	F_DKIM,           /* verification summary */
	F_BODY_TEXT,      /* decoded text of the text parts */
	F_BODY_TRUNCATED, /* part of the body was not inspected */
	F_ATT_NAME,       /* any attachment's file name */
	F_ATT_TYPE,       /* any attachment's declared type */
	F_ATT_COUNT,
	F_URL_HOSTS, /* any host name of a URL in the text */
	F_HELO_BARE_IP,
	F_HELO_BAD_CHARS,
	F_HELO_OURS,
	F_HELO_MATCHES,
	F_CLIENT_UNKNOWN,
	F_DATE_AGE,
	F_DATE_MALFORMED,
	F_DKIM_DOMAINS /* any domain with a passing signature */
};

enum ftype { FT_STRING, FT_DOMAIN, FT_ADDRESS, FT_IP, FT_NUMBER, FT_BOOL };

/* L_LOGINS: the sender login map, only as the predefined sender_logins. */
enum list_type { L_IP, L_DOMAIN, L_ADDRESS, L_STRING, L_LOGINS };

struct list {
	char *name;
	enum list_type type;
	struct mw_ipset *ips;
	struct mw_domset *domains;
	struct mw_strset *strings; /* address lists: domain part lower-cased;
				      logins: "LOGIN\x01address" and
				      "LOGIN\x01@domain" */
	struct mw_strset *exact;   /* domain lists: "=example.org" entries */
	struct list *next;
};

enum cond_kind {
	C_TRUE,
	C_AND,
	C_OR,
	C_NOT,
	C_FIELD_BOOL,  /* field */
	C_FIELD_EQ,    /* field == str (neg: !=) */
	C_FIELD_RE,    /* field =~ re (neg: !~) */
	C_FIELD_IN,    /* field in list */
	C_FIELD_NUM,   /* field OP num */
	C_HDR_PRESENT, /* header "X" present (neg: absent) */
	C_HDR_COUNT,   /* header "X" count OP n */
	C_HDR_RE,      /* header "X" =~ re (neg: !~) */
	C_BODY_RE,     /* body =~ re (neg: !~) */
	C_MACRO_PRESENT,
	C_MACRO_EQ,
	C_MACRO_RE,
	C_VAR_SET,
	C_VAR_EQ,
	C_RATELIMIT, /* limit (rules_limit.c) */
	C_GREYLISTED,
	C_BL /* bl (rules_bl.c) */
};

enum numop { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct cond {
	enum cond_kind kind;
	struct cond *a, *b; /* AND, OR, NOT */
	enum field field;
	bool neg;
	enum numop op;
	double num;
	char *str;       /* compared value, header/macro/var name */
	char *str2;      /* macro/var value */
	struct mw_ip ip; /* client.ip == */
	bool ip_valid;
	pcre2_code *re;
	const struct list *list;
	struct list *inline_list; /* owned, for `in { ... }` */
	struct limit *limit;      /* owned, C_RATELIMIT */
	struct bl *bl;            /* owned, C_BL */
};

enum act_kind {
	A_ACCEPT,
	A_REJECT,
	A_TEMPFAIL,
	A_DISCARD,
	A_STOP,
	A_CONTINUE,
	A_QUARANTINE,
	A_ADD_HEADER,
	A_INSERT_HEADER,
	A_CHANGE_HEADER,
	A_DELETE_HEADER,
	A_PREFIX_SUBJECT,
	A_ADD_RCPT,
	A_DELETE_RCPT,
	A_REDIRECT,
	A_SCORE,
	A_SET,
	A_LOG,
	A_DKIM_SIGN, /* arg1: key name or domain, NULL = by table */
	A_DKIM_NOSIGN
};

struct action {
	enum act_kind kind;
	char code[4], dsn[16];
	char *arg1; /* text, header name, address, variable name, label */
	char *arg2; /* header value, variable value */
	double num;
};

struct rule {
	atomic_ulong hits;        /* enforced matches, for the counters */
	atomic_ulong report_hits; /* report-only matches */
	char *id;                 /* name, or FILE:LINE */
	const char *file;
	unsigned line;
	enum mw_phase phase;
	bool report_only;
	struct cond *when; /* NULL: always */
	struct action *actions;
	size_t nactions;
	char *actions_text; /* for traces */
	double score_delta;
};

struct mw_ruleset {
	struct rule **rules; /* file order */
	size_t nrules;
	struct rule **by_phase[MW_PH_COUNT];
	size_t nby_phase[MW_PH_COUNT];
	struct list *lists;
	char **files; /* every file read, for diagnostics lifetime */
	size_t nfiles;
	pcre2_match_context *mctx;
	/* The predefined lists the role fields use (NULL when absent). */
	const struct list *trusted, *submission, *logins;
	bool uses_store;              /* ratelimit or greylisted somewhere */
	bool uses_greylist;           /* greylisted somewhere */
	bool uses_mime;               /* a field of the decoded body */
	const struct cond **bl_conds; /* every dnsbl/rhsbl condition */
	size_t nbl_conds;
};

/* Lists (rules_list.c). */
struct list *mw_list_new(const char *name, enum list_type type);
void mw_list_free(struct list *l);
/* mw_list_add -- one entry; *why explains a refusal. */
bool mw_list_add(struct list *l, const char *item, const char **why);
/* mw_list_finish -- after the last entry; the list is read-only then. */
bool mw_list_finish(struct list *l);
/* mw_list_load_file -- entries of a list file, errors at its own lines. */
void mw_list_load_file(struct mw_diag *diag, struct list *l, const char *path);
const struct list *mw_list_find(const struct mw_ruleset *rs, const char *name);
/* mw_list_has_domain -- domain (any case, one trailing dot) in list l. */
bool mw_list_has_domain(const struct list *l, const char *domain);
/* mw_list_load_logins -- the sender login map file into an L_LOGINS list. */
void mw_list_load_logins(struct mw_diag *diag, struct list *l,
    const char *path);
/* mw_list_owns -- may login use addr (canonical local@domain)? */
bool mw_list_owns(const struct list *l, const char *login, const char *addr);
const char *mw_list_type_name(enum list_type t);

/*
 * mw_norm_address -- local part as is, domain lower-cased, one trailing
 * dot of the domain dropped, into out (size bytes); false if it does not
 * fit.
 */
bool mw_norm_address(const char *addr, char *out, size_t size);

/* Stateful conditions (rules_limit.c): 1 limited, 0 not, -1 error. */
struct limit;
int mw_limit_eval(const struct cond *c, const struct mw_eval *ev);

/* Blocklist conditions (rules_bl.c): 1 listed, 0 not (or no answer). */
struct bl;
int mw_bl_eval(const struct cond *c, const struct mw_eval *ev);

#define RE_MATCH_LIMIT 1000000
#define RE_DEPTH_LIMIT 10000

#endif
