/*
 * mw_config -- the main configuration file.
 *
 * Syntax: one "name = value" per line; '#' starts a comment where a name or
 * value could start; blank lines are ignored.  Every parameter is declared
 * once in a table (config.c) with its type, default, bounds and whether a
 * reload may change it: the parser, "-n", "-D" and the unit tests all read
 * that table.  A configuration is immutable once loaded.
 */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "mw_diag.h"

enum mw_on_error { MW_ON_ERROR_TEMPFAIL, MW_ON_ERROR_ACCEPT };

struct mw_config {
	char *path; /* file it was read from */

	char *socket;              /* libmilter connection spec */
	unsigned long socket_mode; /* unix socket permissions */
	char *socket_group;        /* "" = leave as is */
	char *user;                /* user to drop to */
	char *group;               /* "" = user's primary group */
	char *pidfile;             /* "" = none */
	char **rules;              /* rules files, NULL-terminated */
	size_t nrules;
	/* Roles: the predefined lists of the rules (mw_rules_load). */
	char **local_domains;     /* NULL-terminated */
	char *local_domains_file; /* "" = none */
	char **trusted_networks;  /* NULL-terminated */
	char *trusted_networks_file;
	char **submission_listeners;     /* {daemon_name} values */
	char **known_forwarders;         /* networks, NULL-terminated */
	char *sender_login_map;          /* "" = none */
	unsigned long log_level;         /* enum mw_log_level */
	unsigned long syslog_facility;   /* LOG_* value */
	unsigned long on_internal_error; /* enum mw_on_error */
	unsigned long max_header_bytes;
	unsigned long max_recipients;
	unsigned long max_body_scan_bytes;
	unsigned long milter_timeout;
	unsigned long shutdown_timeout;
	unsigned long listen_backlog;
	/* DKIM (dkim.c) */
	char **dkim_keys;         /* DOMAIN:SELECTOR:KEYFILE entries */
	char *dkim_key_table;     /* OpenDKIM KeyTable, "" = none */
	char *dkim_signing_table; /* OpenDKIM SigningTable, "refile:" ok */
	unsigned long dkim_multiple_signatures; /* bool */
	unsigned long dkim_signing_domain;      /* enum mw_dkim_domain_from */
	unsigned long dkim_subdomains;          /* bool */
	unsigned long dkim_require_safe_keys;   /* bool */
	unsigned long dkim_min_rsa_bits;
	unsigned long dkim_expire;       /* seconds, 0 = no x= */
	unsigned long dkim_on_key_error; /* enum mw_on_error */
	unsigned long dkim_verify;       /* bool */
	char *authserv_id;               /* "" = the host name */
	char **dns_servers;              /* IP[:PORT], empty = resolv.conf */
	unsigned long dns_timeout;       /* seconds */
	/* State for rate limits and greylisting (store.c, rules_limit.c) */
	char *state_store; /* lmdb:PATH or redis:HOST:PORT[/DB] */
	unsigned long state_store_max_bytes;
	unsigned long state_store_timeout;  /* ms */
	unsigned long state_store_on_error; /* enum mw_on_error */
	unsigned long greylist_delay;       /* seconds */
	unsigned long greylist_retry_window;
	unsigned long greylist_auto_allow;
	unsigned long client_net_ipv4_prefix;
	unsigned long client_net_ipv6_prefix;
	unsigned long dnsbl_budget; /* ms of blocklist lookups per message */
};

enum mw_dkim_domain_from { MW_DKIM_FROM_HEADER, MW_DKIM_FROM_ENVELOPE };

enum mw_param_type {
	MW_PT_STRING, /* free text, no control characters */
	MW_PT_LIST,   /* comma and/or space separated words */
	MW_PT_ENUM,   /* one of a fixed set of names */
	MW_PT_OCTAL,  /* file mode, 0000..0777 */
	MW_PT_UINT,   /* decimal integer within bounds */
	MW_PT_SIZE    /* bytes, optional k/m/g suffix (powers of 1024) */
};

struct mw_param {
	const char *name;
	enum mw_param_type type;
	size_t offset;            /* into struct mw_config */
	const char *def;          /* default, in file syntax */
	unsigned long min, max;   /* OCTAL, UINT, SIZE */
	const char *const *names; /* ENUM: NULL-terminated */
	const int *values;        /* ENUM: value for each name */
	bool reloadable;
	const char *help;
};

/* mw_config_params -- the table; *count receives its length. */
const struct mw_param *mw_config_params(size_t *count);

/* mw_config_default_path -- $(sysconfdir)/milter-warden/milter-warden.conf */
const char *mw_config_default_path(void);

/*
 * mw_config_load -- read and validate a configuration file.  Every problem
 * is added to diag as FILE:LINE:COL; returns NULL if there was any error
 * (including an unreadable file, reported with the reason).  The caller
 * owns the result (mw_config_free).
 */
struct mw_config *mw_config_load(const char *path, struct mw_diag *diag);

/* mw_config_parse -- same, from a buffer; name is used in diagnostics. */
struct mw_config *mw_config_parse(const char *name, const char *buf, size_t len,
    struct mw_diag *diag);

/* mw_config_set -- override one parameter (e.g. -p SOCKET), validated. */
bool mw_config_set(struct mw_config *cfg, const char *name, const char *value,
    struct mw_diag *diag);

/*
 * mw_config_check_refs -- check what the configuration names on this
 * machine: users and groups exist, the socket has a known form, the
 * pidfile's directory exists.  (Rules files are read by mw_rules_load.)
 * Problems go to diag (errors); returns true if none.
 */
bool mw_config_check_refs(const struct mw_config *cfg, struct mw_diag *diag);

/*
 * mw_config_keep_static -- copy every non-reloadable parameter of old into
 * cfg, logging a warning for each one that differs ("restart needed").
 */
bool mw_config_keep_static(struct mw_config *cfg, const struct mw_config *old);

/* mw_config_format -- the value of param p in cfg, in file syntax. */
void mw_config_format(const struct mw_config *cfg, const struct mw_param *p,
    char *buf, size_t size);

void mw_config_free(struct mw_config *cfg);

#endif
