/*
 * config.c -- the main configuration file and its parameter table.
 *
 * Every parameter is declared once, in params[] below: name, type,
 * default, bounds, whether a reload may change it, and a line of help.
 * Defaults are written in file syntax and go through the same parser as
 * the file, so a bad default cannot hide.  The parser reports every error
 * of a file in one pass as FILE:LINE:COL and keeps no static state.
 */
#include "config.h"

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "mw_config.h"
#include "mw_log.h"
#include "mw_text.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define CONF_FILE_MAX (1024 * 1024) /* a config file is small */
#define CONF_LINE_MAX 4096
#define CONF_LIST_MAX 64 /* entries in one list value */

#define OFF(f) offsetof(struct mw_config, f)

static const char *const level_names[] = { "error", "warning", "notice", "info",
	"debug", NULL };
static const int level_values[] = { MW_LOG_ERROR, MW_LOG_WARNING, MW_LOG_NOTICE,
	MW_LOG_INFO, MW_LOG_DEBUG };
static const char *const facility_names[] = { "mail", "daemon", "user",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6",
	"local7", NULL };
static const int facility_values[] = { LOG_MAIL, LOG_DAEMON, LOG_USER,
	LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5,
	LOG_LOCAL6, LOG_LOCAL7 };
static const char *const yes_no_names[] = { "no", "yes", NULL };
static const int yes_no_values[] = { 0, 1 };
static const char *const dkim_from_names[] = { "header", "envelope", NULL };
static const int dkim_from_values[] = { MW_DKIM_FROM_HEADER,
	MW_DKIM_FROM_ENVELOPE };
static const char *const on_error_names[] = { "tempfail", "accept", NULL };
static const int on_error_values[] = { MW_ON_ERROR_TEMPFAIL,
	MW_ON_ERROR_ACCEPT };

#define KiB 1024UL
#define MiB (1024UL * 1024)
#define GiB (1024UL * 1024 * 1024)

/*
 * For MW_PT_STRING, min is 1 when the value may not be empty; for
 * MW_PT_LIST, min is the least number of entries.
 */
static const struct mw_param params[] = {
	{ "socket", MW_PT_STRING, OFF(socket),
	    "unix:/run/milter-warden/milter-warden.sock", 1, 0, NULL, NULL,
	    false,
	    "where the MTA connects: unix:/path, inet:PORT@HOST or inet6:PORT@HOST" },
	{ "socket_mode", MW_PT_OCTAL, OFF(socket_mode), "0660", 0, 0777, NULL,
	    NULL, false,
	    "permissions of a unix socket (the MTA must be able to write it)" },
	{ "socket_group", MW_PT_STRING, OFF(socket_group), "", 0, 0, NULL, NULL,
	    false,
	    "group given to a unix socket, e.g. postfix (empty: unchanged)" },
	{ "user", MW_PT_STRING, OFF(user), "milter-warden", 0, 0, NULL, NULL,
	    false,
	    "user to run as after opening the socket (empty: do not change)" },
	{ "group", MW_PT_STRING, OFF(group), "", 0, 0, NULL, NULL, false,
	    "group to run as (empty: the user's primary group)" },
	{ "pidfile", MW_PT_STRING, OFF(pidfile), "", 0, 0, NULL, NULL, false,
	    "file to write the process id to (empty: none)" },
	{ "rules", MW_PT_LIST, OFF(rules),
	    SYSCONFDIR "/milter-warden/mx.rules, " SYSCONFDIR
		       "/milter-warden/submission.rules",
	    0, CONF_LIST_MAX, NULL, NULL, true,
	    "rules files, read in order (comma or space separated)" },
	{ "local_domains", MW_PT_LIST, OFF(local_domains), "", 0, CONF_LIST_MAX,
	    NULL, NULL, true,
	    "domains this server receives mail for (the rules' list "
	    "local_domains): \"example.org\" is that domain and its "
	    "subdomains, \"=example.org\" that domain only, \"[192.0.2.1]\" an "
	    "address literal" },
	{ "local_domains_file", MW_PT_STRING, OFF(local_domains_file), "", 0, 0,
	    NULL, NULL, true,
	    "file with more local domains, one per line (empty: none)" },
	{ "trusted_networks", MW_PT_LIST, OFF(trusted_networks),
	    "127.0.0.0/8, ::1", 0, CONF_LIST_MAX, NULL, NULL, true,
	    "client networks that may relay without authentication (the "
	    "rules' list trusted_networks)" },
	{ "trusted_networks_file", MW_PT_STRING, OFF(trusted_networks_file), "",
	    0, 0, NULL, NULL, true,
	    "file with more trusted networks, one per line (empty: none)" },
	{ "known_forwarders", MW_PT_LIST, OFF(known_forwarders), "", 0,
	    CONF_LIST_MAX, NULL, NULL, true,
	    "networks of forwarders that may send mail with a local sender "
	    "from outside (the rules' list known_forwarders)" },
	{ "submission_listeners", MW_PT_LIST, OFF(submission_listeners),
	    "ORIGINATING", 0, CONF_LIST_MAX, NULL, NULL, true,
	    "{daemon_name} values of the MTA listeners that take submissions "
	    "(role submission); every other listener has role mx" },
	{ "sender_login_map", MW_PT_STRING, OFF(sender_login_map), "", 0, 0,
	    NULL, NULL, true,
	    "file mapping each SASL login to the sender addresses it may use "
	    "(empty: logins own no address)" },
	{ "log_level", MW_PT_ENUM, OFF(log_level), "info", 0, 0, level_names,
	    level_values, true,
	    "least important messages logged: error, warning, notice, info, debug" },
	{ "syslog_facility", MW_PT_ENUM, OFF(syslog_facility), "mail", 0, 0,
	    facility_names, facility_values, false,
	    "syslog facility when not in the foreground" },
	{ "on_internal_error", MW_PT_ENUM, OFF(on_internal_error), "tempfail",
	    0, 0, on_error_names, on_error_values, true,
	    "answer when milter-warden itself fails: tempfail (the MTA keeps the "
	    "mail) or accept (logged)" },
	{ "max_header_bytes", MW_PT_SIZE, OFF(max_header_bytes), "1m", KiB,
	    64 * MiB, NULL, NULL, true,
	    "largest header section accepted; beyond it: 552 5.3.4" },
	{ "max_recipients", MW_PT_UINT, OFF(max_recipients), "1000", 1, 100000,
	    NULL, NULL, true,
	    "recipients per message; each one beyond it gets 452 4.5.3" },
	{ "max_body_scan_bytes", MW_PT_SIZE, OFF(max_body_scan_bytes), "1m", 0,
	    GiB, NULL, NULL, true,
	    "body bytes inspected per message; the rest passes uninspected" },
	{ "milter_timeout", MW_PT_UINT, OFF(milter_timeout), "7210", 1, 86400,
	    NULL, NULL, false,
	    "seconds to wait for the MTA before dropping a milter connection" },
	{ "shutdown_timeout", MW_PT_UINT, OFF(shutdown_timeout), "30", 0, 3600,
	    NULL, NULL, true,
	    "seconds sessions in flight may take to finish after SIGTERM" },
	{ "listen_backlog", MW_PT_UINT, OFF(listen_backlog), "128", 1, 65535,
	    NULL, NULL, false, "listen(2) backlog of the milter socket" },
	{ "dkim_keys", MW_PT_LIST, OFF(dkim_keys), "", 0, CONF_LIST_MAX, NULL,
	    NULL, true,
	    "signing keys as DOMAIN:SELECTOR:KEYFILE (PEM; RSA signs "
	    "rsa-sha256, Ed25519 ed25519-sha256; two keys for one domain "
	    "give two signatures)" },
	{ "dkim_key_table", MW_PT_STRING, OFF(dkim_key_table), "", 0, 0, NULL,
	    NULL, true,
	    "OpenDKIM KeyTable file: NAME DOMAIN:SELECTOR:KEYFILE per line "
	    "(empty: none)" },
	{ "dkim_signing_table", MW_PT_STRING, OFF(dkim_signing_table), "", 0, 0,
	    NULL, NULL, true,
	    "OpenDKIM SigningTable file: PATTERN NAME per line; refile:FILE "
	    "for wildcard patterns (empty: none)" },
	{ "dkim_multiple_signatures", MW_PT_ENUM, OFF(dkim_multiple_signatures),
	    "yes", 0, 0, yes_no_names, yes_no_values, true,
	    "sign with every signing table line that matches (no: the first)" },
	{ "dkim_signing_domain", MW_PT_ENUM, OFF(dkim_signing_domain), "header",
	    0, 0, dkim_from_names, dkim_from_values, true,
	    "where the signing domain comes from: header (From:, what DMARC "
	    "aligns on) or envelope (MAIL FROM)" },
	{ "dkim_subdomains", MW_PT_ENUM, OFF(dkim_subdomains), "no", 0, 0,
	    yes_no_names, yes_no_values, true,
	    "sign mail from a subdomain with its parent domain's key" },
	{ "dkim_require_safe_keys", MW_PT_ENUM, OFF(dkim_require_safe_keys),
	    "yes", 0, 0, yes_no_names, yes_no_values, true,
	    "refuse private key files readable by group or others" },
	{ "dkim_min_rsa_bits", MW_PT_UINT, OFF(dkim_min_rsa_bits), "2048", 512,
	    16384, NULL, NULL, true,
	    "smallest RSA signing key accepted (1024-bit keys are breakable)" },
	{ "dkim_expire", MW_PT_UINT, OFF(dkim_expire), "0", 0, 315360000, NULL,
	    NULL, true,
	    "seconds a signature stays valid (x= tag); 0: no expiry" },
	{ "dkim_on_key_error", MW_PT_ENUM, OFF(dkim_on_key_error), "tempfail",
	    0, 0, on_error_names, on_error_values, true,
	    "when a message should be signed but its key fails: tempfail "
	    "(451 4.7.0, the MTA keeps the mail) or accept (unsigned, logged)" },
	{ "dkim_verify", MW_PT_ENUM, OFF(dkim_verify), "yes", 0, 0,
	    yes_no_names, yes_no_values, true,
	    "verify the signatures of inbound mail and add "
	    "Authentication-Results" },
	{ "authserv_id", MW_PT_STRING, OFF(authserv_id), "", 0, 0, NULL, NULL,
	    true,
	    "authentication service id of Authentication-Results (empty: the "
	    "host name)" },
	{ "dns_servers", MW_PT_LIST, OFF(dns_servers), "", 0, 8, NULL, NULL,
	    true,
	    "resolvers for DKIM keys as IP or IP:PORT (empty: those of "
	    "/etc/resolv.conf)" },
	{ "dns_timeout", MW_PT_UINT, OFF(dns_timeout), "5", 1, 60, NULL, NULL,
	    true, "seconds to wait for one DNS answer" },
	{ "state_store", MW_PT_STRING, OFF(state_store),
	    "lmdb:" LOCALSTATEDIR "/lib/milter-warden/state.mdb", 1, 0, NULL,
	    NULL, false,
	    "where rate limits and greylisting keep their state: "
	    "lmdb:/path/file.mdb (embedded, this host only) or "
	    "redis:HOST:PORT[/DB] or redis:unix:/path[/DB] (shared by several "
	    "milter-warden instances); opened only when rules use it" },
	{ "state_store_max_bytes", MW_PT_SIZE, OFF(state_store_max_bytes),
	    "64m", MiB, 64 * GiB, NULL, NULL, false,
	    "largest size of the embedded store; when full, expired entries are "
	    "purged first" },
	{ "state_store_timeout", MW_PT_UINT, OFF(state_store_timeout), "250",
	    10, 10000, NULL, NULL, false,
	    "milliseconds one store operation (a Redis call, a connect) may "
	    "take" },
	{ "state_store_on_error", MW_PT_ENUM, OFF(state_store_on_error),
	    "accept", 0, 0, on_error_names, on_error_values, true,
	    "when the store fails or is too slow: accept (the limit is not "
	    "applied; logged and counted) or tempfail (451 4.3.0)" },
	{ "greylist_delay", MW_PT_UINT, OFF(greylist_delay), "300", 1, 86400,
	    NULL, NULL, true,
	    "seconds a new client/sender/recipient triplet must wait before "
	    "its retry is accepted" },
	{ "greylist_retry_window", MW_PT_UINT, OFF(greylist_retry_window),
	    "86400", 60, 31 * 86400, NULL, NULL, true,
	    "seconds after the first attempt within which a retry is accepted "
	    "(later, greylisting starts over)" },
	{ "greylist_auto_allow", MW_PT_UINT, OFF(greylist_auto_allow),
	    "3024000", 60, 366 * 86400, NULL, NULL, true,
	    "seconds a client network that delivered after greylisting skips "
	    "it (default 35 days)" },
	{ "client_net_ipv4_prefix", MW_PT_UINT, OFF(client_net_ipv4_prefix),
	    "24", 8, 32, NULL, NULL, true,
	    "prefix length of client.net for IPv4 clients" },
	{ "client_net_ipv6_prefix", MW_PT_UINT, OFF(client_net_ipv6_prefix),
	    "64", 16, 128, NULL, NULL, true,
	    "prefix length of client.net for IPv6 clients" },
	{ "dnsbl_budget", MW_PT_UINT, OFF(dnsbl_budget), "3000", 10, 60000,
	    NULL, NULL, true,
	    "milliseconds a message (and the connection before it) may wait "
	    "for DNS blocklist answers in all; each query also stops at "
	    "dns_timeout" },
};

const struct mw_param *
mw_config_params(size_t *count)
{
	*count = sizeof(params) / sizeof(params[0]);
	return params;
}

const char *
mw_config_default_path(void)
{
	return SYSCONFDIR "/milter-warden/milter-warden.conf";
}

static const struct mw_param *
param_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		if (strlen(params[i].name) == len &&
		    memcmp(params[i].name, name, len) == 0)
			return &params[i];
	return NULL;
}

static void
list_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* Where diagnostics about one value point. */
struct where {
	const char *file;
	unsigned line, col;
};

/* parse_ulong -- decimal digits at s: 1 ok, 0 not a number, -1 overflow. */
static int
parse_ulong(const char *s, unsigned long *out, const char **end)
{
	unsigned long v = 0;
	int rc = 1;

	if (!isdigit((unsigned char)*s))
		return 0;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (ULONG_MAX - d) / 10)
			rc = -1;
		else
			v = v * 10 + d;
	}
	*out = v;
	*end = s;
	return rc;
}

/*
 * set_value -- parse value for p and store it in cfg, replacing what was
 * there.  Problems go to diag at w.
 */
static bool
set_value(struct mw_config *cfg, const struct mw_param *p, const char *value,
    const struct where *w, struct mw_diag *diag)
{
	void *field = (char *)cfg + p->offset;
	unsigned long v = 0;
	const char *s, *end;
	size_t i;

	for (s = value; *s != '\0'; s++) {
		/* A tab is a blank like a space (lists use both). */
		if (iscntrl((unsigned char)*s) && *s != '\t') {
			mw_diag_error(diag, w->file, w->line,
			    w->col + (unsigned)(s - value),
			    "%s: control character 0x%02x in value", p->name,
			    (unsigned char)*s);
			return false;
		}
	}

	switch (p->type) {
	case MW_PT_STRING: {
		char *copy;

		if (p->min > 0 && *value == '\0') {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: a value is required", p->name);
			return false;
		}
		if ((copy = strdup(value)) == NULL) {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: out of memory", p->name);
			return false;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return true;
	}
	case MW_PT_LIST: {
		char **l;
		size_t n = 0;

		if ((l = calloc(p->max + 1, sizeof(*l))) == NULL) {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: out of memory", p->name);
			return false;
		}
		for (s = value; *s != '\0';) {
			size_t len;

			while (*s == ',' || *s == ' ' || *s == '\t')
				s++;
			if (*s == '\0')
				break;
			len = strcspn(s, ", \t");
			if (n == p->max) {
				mw_diag_error(diag, w->file, w->line,
				    w->col + (unsigned)(s - value),
				    "%s: more than %lu entries", p->name,
				    p->max);
				list_free(l);
				return false;
			}
			if ((l[n] = strndup(s, len)) == NULL) {
				mw_diag_error(diag, w->file, w->line, w->col,
				    "%s: out of memory", p->name);
				list_free(l);
				return false;
			}
			n++;
			s += len;
		}
		if (n < p->min) {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: at least %lu entries are required", p->name,
			    p->min);
			list_free(l);
			return false;
		}
		list_free(*(char ***)field);
		*(char ***)field = l;
		return true;
	}
	case MW_PT_ENUM: {
		char expected[256] = "";

		for (i = 0; p->names[i] != NULL; i++) {
			if (strcmp(p->names[i], value) == 0) {
				*(unsigned long *)field =
				    (unsigned long)p->values[i];
				return true;
			}
			if (i > 0)
				strncat(expected, ", ",
				    sizeof(expected) - strlen(expected) - 1);
			strncat(expected, p->names[i],
			    sizeof(expected) - strlen(expected) - 1);
		}
		mw_diag_error(diag, w->file, w->line, w->col,
		    "%s: \"%s\" is not one of: %s", p->name, value, expected);
		return false;
	}
	case MW_PT_OCTAL:
		if (*value == '\0' || strlen(value) > 4 ||
		    strspn(value, "01234567") != strlen(value)) {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: \"%s\" is not an octal mode such as 0660",
			    p->name, value);
			return false;
		}
		v = strtoul(value, NULL, 8);
		if (v > p->max) {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: %s is above the maximum %04lo", p->name, value,
			    p->max);
			return false;
		}
		*(unsigned long *)field = v;
		return true;
	case MW_PT_UINT:
	case MW_PT_SIZE: {
		unsigned long mult = 1;
		int rc = parse_ulong(value, &v, &end);

		if (rc == -1) {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: %s is too large", p->name, value);
			return false;
		}
		if (rc == 0) {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: \"%s\" is not a %s", p->name, value,
			    p->type == MW_PT_SIZE ? "size (a number with an "
						    "optional k, m or g suffix)"
						  : "whole number");
			return false;
		}
		if (p->type == MW_PT_SIZE && *end != '\0' && end[1] == '\0') {
			switch (tolower((unsigned char)*end)) {
			case 'k':
				mult = KiB;
				end++;
				break;
			case 'm':
				mult = MiB;
				end++;
				break;
			case 'g':
				mult = GiB;
				end++;
				break;
			default: break;
			}
		}
		if (*end != '\0') {
			mw_diag_error(diag, w->file, w->line,
			    w->col + (unsigned)(end - value),
			    "%s: unexpected \"%s\" after the number", p->name,
			    end);
			return false;
		}
		if (v > ULONG_MAX / mult) {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: %s is too large", p->name, value);
			return false;
		}
		v *= mult;
		if (v < p->min || v > p->max) {
			mw_diag_error(diag, w->file, w->line, w->col,
			    "%s: %s is out of range (%lu to %lu)", p->name,
			    value, p->min, p->max);
			return false;
		}
		*(unsigned long *)field = v;
		return true;
	}
	}
	return false;
}

static void
finish(struct mw_config *cfg)
{
	cfg->nrules = 0;
	if (cfg->rules != NULL)
		while (cfg->rules[cfg->nrules] != NULL)
			cfg->nrules++;
}

static struct mw_config *
config_new(const char *name, struct mw_diag *diag)
{
	struct mw_config *cfg;
	struct where w = { "(built-in default)", 0, 0 };
	size_t i;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL ||
	    (cfg->path = strdup(name)) == NULL) {
		free(cfg);
		mw_diag_error(diag, name, 0, 0, "out of memory");
		return NULL;
	}
	for (i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		if (!set_value(cfg, &params[i], params[i].def, &w, diag)) {
			mw_config_free(cfg);
			return NULL;
		}
	}
	finish(cfg);
	return cfg;
}

/*
 * parse_line -- one line (without its newline) of a configuration file.
 * seen[] remembers the line each parameter was set on.
 */
static void
parse_line(struct mw_config *cfg, const char *file, unsigned lineno,
    const char *line, size_t len, unsigned *seen, struct mw_diag *diag)
{
	const struct mw_param *p;
	char value[CONF_LINE_MAX + 1];
	size_t i = 0, name_start, name_len, vstart, vend;
	struct where w = { file, lineno, 0 };

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] == '#')
		return;

	name_start = i;
	/* The whole word the administrator wrote, for the message. */
	while (i < len && line[i] != '=' && line[i] != ' ' && line[i] != '\t')
		i++;
	name_len = i - name_start;
	if (name_len == 0) {
		mw_diag_error(diag, file, lineno, (unsigned)i + 1,
		    "expected a parameter name (lower-case letters, digits, _)");
		return;
	}
	p = param_find(line + name_start, name_len);
	if (p == NULL) {
		char alt[64];
		size_t k;

		/* log-level for log_level is the likeliest slip. */
		for (k = 0; k < name_len && k < sizeof(alt) - 1; k++)
			alt[k] = line[name_start + k] == '-'
			    ? '_'
			    : (char)tolower(
				  (unsigned char)line[name_start + k]);
		alt[k] = '\0';
		if (name_len < sizeof(alt) && param_find(alt, k) != NULL)
			mw_diag_error(diag, file, lineno,
			    (unsigned)name_start + 1,
			    "unknown parameter \"%.*s\" (did you mean %s?)",
			    (int)name_len, line + name_start, alt);
		else
			mw_diag_error(diag, file, lineno,
			    (unsigned)name_start + 1,
			    "unknown parameter \"%.*s\"", (int)name_len,
			    line + name_start);
		return;
	}
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] != '=') {
		mw_diag_error(diag, file, lineno, (unsigned)i + 1,
		    "expected \"=\" after \"%s\"", p->name);
		return;
	}
	i++;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	vstart = i;
	/* A '#' after white space starts a comment. */
	for (vend = vstart; vend < len; vend++)
		if (line[vend] == '#' && vend > vstart &&
		    (line[vend - 1] == ' ' || line[vend - 1] == '\t'))
			break;
	while (
	    vend > vstart && (line[vend - 1] == ' ' || line[vend - 1] == '\t'))
		vend--;
	/* An explicitly empty value may be written "". */
	if (vend - vstart == 2 && line[vstart] == '"' &&
	    line[vstart + 1] == '"')
		vend = vstart;

	if (seen[p - params] != 0) {
		mw_diag_error(diag, file, lineno, (unsigned)name_start + 1,
		    "\"%s\" is already set at line %u", p->name,
		    seen[p - params]);
		return;
	}
	seen[p - params] = lineno;

	memcpy(value, line + vstart, vend - vstart);
	value[vend - vstart] = '\0';
	w.col = (unsigned)vstart + 1;
	(void)set_value(cfg, p, value, &w, diag);
}

struct mw_config *
mw_config_parse(const char *name, const char *buf, size_t len,
    struct mw_diag *diag)
{
	unsigned seen[sizeof(params) / sizeof(params[0])] = { 0 };
	struct mw_config *cfg;
	size_t errors = diag->nerrors, pos = 0;
	unsigned lineno = 0;

	if ((cfg = config_new(name, diag)) == NULL)
		return NULL;

	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos;
		const char *nul;

		pos += llen + (nl ? 1 : 0);
		lineno++;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if ((nul = memchr(line, '\0', llen)) != NULL) {
			mw_diag_error(diag, name, lineno,
			    (unsigned)(nul - line) + 1, "NUL byte in line");
			continue;
		}
		if (llen > CONF_LINE_MAX) {
			mw_diag_error(diag, name, lineno, CONF_LINE_MAX + 1,
			    "line longer than %d bytes", CONF_LINE_MAX);
			continue;
		}
		parse_line(cfg, name, lineno, line, llen, seen, diag);
	}
	finish(cfg);
	if (diag->nerrors > errors) {
		mw_config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* anchor -- *p made relative to dir when it is a relative path. */
static bool
anchor(char **p, const char *dir)
{
	char *abs;

	if (*p == NULL || (*p)[0] == '\0' || (*p)[0] == '/')
		return true;
	if (asprintf(&abs, "%s/%s", dir, *p) < 0)
		return false;
	free(*p);
	*p = abs;
	return true;
}

/*
 * resolve_relative -- files named with a relative path are relative to
 * the configuration file's directory, not to wherever the daemon runs
 * (it changes to / when it goes into the background, and reloads later).
 */
static bool
resolve_relative(struct mw_config *cfg, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	bool ok = true;
	size_t i;

	if (slash == NULL)
		return true; /* the current directory: nothing to anchor */
	if ((dir = strndup(path, (size_t)(slash - path) + (slash == path))) ==
	    NULL)
		return false;
	for (i = 0; ok && i < cfg->nrules; i++)
		ok = anchor(&cfg->rules[i], dir);
	ok = ok && anchor(&cfg->local_domains_file, dir) &&
	    anchor(&cfg->trusted_networks_file, dir) &&
	    anchor(&cfg->sender_login_map, dir);
	free(dir);
	return ok;
}

struct mw_config *
mw_config_load(const char *path, struct mw_diag *diag)
{
	struct mw_config *cfg;
	const char *why;
	bool opening;
	char *buf;
	size_t len = 0;

	if ((buf = mw_read_regular(path, CONF_FILE_MAX, &len, &opening,
		 &why)) == NULL) {
		if (opening)
			mw_diag_error(diag, path, 0, 0, "cannot open: %s", why);
		else
			mw_diag_error(diag, path, 0, 0, "%s (at most %d bytes)",
			    why, CONF_FILE_MAX);
		return NULL;
	}
	cfg = mw_config_parse(path, buf, len, diag);
	if (cfg != NULL && !resolve_relative(cfg, path)) {
		mw_diag_error(diag, path, 0, 0, "out of memory");
		mw_config_free(cfg);
		cfg = NULL;
	}
	free(buf);
	return cfg;
}

bool
mw_config_set(struct mw_config *cfg, const char *name, const char *value,
    struct mw_diag *diag)
{
	const struct mw_param *p = param_find(name, strlen(name));
	struct where w = { "command line", 0, 0 };
	bool ok;

	if (p == NULL) {
		mw_diag_error(diag, w.file, 0, 0, "unknown parameter \"%s\"",
		    name);
		return false;
	}
	ok = set_value(cfg, p, value, &w, diag);
	finish(cfg);
	return ok;
}

bool
mw_config_check_refs(const struct mw_config *cfg, struct mw_diag *diag)
{
	size_t errors = diag->nerrors;

	if (cfg->user[0] != '\0' && getpwnam(cfg->user) == NULL)
		mw_diag_error(diag, cfg->path, 0, 0,
		    "user: no such user \"%s\"", cfg->user);
	if (cfg->group[0] != '\0' && getgrnam(cfg->group) == NULL)
		mw_diag_error(diag, cfg->path, 0, 0,
		    "group: no such group \"%s\"", cfg->group);
	if (cfg->socket_group[0] != '\0' && getgrnam(cfg->socket_group) == NULL)
		mw_diag_error(diag, cfg->path, 0, 0,
		    "socket_group: no such group \"%s\"", cfg->socket_group);
	if (strncmp(cfg->socket, "unix:", 5) != 0 &&
	    strncmp(cfg->socket, "local:", 6) != 0 &&
	    strncmp(cfg->socket, "inet:", 5) != 0 &&
	    strncmp(cfg->socket, "inet6:", 6) != 0 && cfg->socket[0] != '/')
		mw_diag_error(diag, cfg->path, 0, 0,
		    "socket: \"%s\" is not unix:/path, inet:PORT@HOST or "
		    "inet6:PORT@HOST",
		    cfg->socket);
	if (cfg->pidfile[0] != '\0') {
		char *dir = strdup(cfg->pidfile), *slash;
		struct stat sb;

		if (dir != NULL && (slash = strrchr(dir, '/')) != NULL) {
			*slash = '\0';
			if (dir[0] != '\0' &&
			    (stat(dir, &sb) == -1 || !S_ISDIR(sb.st_mode)))
				mw_diag_error(diag, cfg->path, 0, 0,
				    "pidfile: directory \"%s\" does not exist",
				    dir);
		}
		free(dir);
	}
	return diag->nerrors == errors;
}

void
mw_config_format(const struct mw_config *cfg, const struct mw_param *p,
    char *buf, size_t size)
{
	const void *field = (const char *)cfg + p->offset;
	unsigned long v;
	size_t i;

	buf[0] = '\0';
	switch (p->type) {
	case MW_PT_STRING:
		snprintf(buf, size, "%s", *(char *const *)field);
		break;
	case MW_PT_LIST: {
		char *const *l = *(char **const *)field;

		for (i = 0; l != NULL && l[i] != NULL; i++) {
			if (i > 0)
				strncat(buf, ", ", size - strlen(buf) - 1);
			strncat(buf, l[i], size - strlen(buf) - 1);
		}
		break;
	}
	case MW_PT_ENUM:
		v = *(const unsigned long *)field;
		for (i = 0; p->names[i] != NULL; i++)
			if ((unsigned long)p->values[i] == v)
				snprintf(buf, size, "%s", p->names[i]);
		break;
	case MW_PT_OCTAL:
		snprintf(buf, size, "%04lo", *(const unsigned long *)field);
		break;
	case MW_PT_UINT:
		snprintf(buf, size, "%lu", *(const unsigned long *)field);
		break;
	case MW_PT_SIZE:
		v = *(const unsigned long *)field;
		if (v != 0 && v % GiB == 0)
			snprintf(buf, size, "%lug", v / GiB);
		else if (v != 0 && v % MiB == 0)
			snprintf(buf, size, "%lum", v / MiB);
		else if (v != 0 && v % KiB == 0)
			snprintf(buf, size, "%luk", v / KiB);
		else
			snprintf(buf, size, "%lu", v);
		break;
	}
}

bool
mw_config_keep_static(struct mw_config *cfg, const struct mw_config *old)
{
	char was[CONF_LINE_MAX], now[CONF_LINE_MAX];
	struct mw_diag diag;
	bool ok = true;
	size_t i;

	mw_diag_init(&diag);
	for (i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const struct mw_param *p = &params[i];

		if (p->reloadable)
			continue;
		mw_config_format(old, p, was, sizeof(was));
		mw_config_format(cfg, p, now, sizeof(now));
		if (strcmp(was, now) == 0)
			continue;
		mw_warn("reload: %s changed from \"%s\" to \"%s\"; it takes "
			"effect only after a restart",
		    p->name, was, now);
		if (!mw_config_set(cfg, p->name, was, &diag))
			ok = false;
	}
	mw_diag_free(&diag);
	return ok;
}

void
mw_config_free(struct mw_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		void *field = (char *)cfg + params[i].offset;

		if (params[i].type == MW_PT_STRING)
			free(*(char **)field);
		else if (params[i].type == MW_PT_LIST)
			list_free(*(char ***)field);
	}
	free(cfg->path);
	free(cfg);
}
