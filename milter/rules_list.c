/*
 * rules_list.c -- the lists of the rules language: ip, domain, address
 * and string lists, inline or read from list files (one entry per line,
 * "#" comments), each backed by a set whose lookups do not grow with its
 * size (mw_ipset, mw_domset, mw_strset).
 */
#include "config.h"

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_text.h"
#include "rules_ast.h"

#define LIST_FILE_MAX  (256L * 1024 * 1024)
#define LOGIN_LINE_MAX 8190 /* bytes in one line of the login map */

struct list *
mw_list_new(const char *name, enum list_type type)
{
	struct list *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	if (name != NULL && (l->name = strdup(name)) == NULL) {
		free(l);
		return NULL;
	}
	l->type = type;
	switch (type) {
	case L_IP: l->ips = mw_ipset_new(); break;
	case L_DOMAIN:
		l->domains = mw_domset_new();
		l->exact = mw_strset_new(true);
		if (l->exact == NULL) {
			mw_domset_free(l->domains);
			l->domains = NULL;
		}
		break;
	case L_LOGINS: l->strings = mw_strset_new(false); break;
	case L_ADDRESS: l->strings = mw_strset_new(false); break;
	case L_STRING: l->strings = mw_strset_new(false); break;
	}
	if (l->ips == NULL && l->domains == NULL && l->strings == NULL) {
		free(l->name);
		free(l);
		return NULL;
	}
	return l;
}

void
mw_list_free(struct list *l)
{
	if (l == NULL)
		return;
	mw_ipset_free(l->ips);
	mw_domset_free(l->domains);
	mw_strset_free(l->strings);
	mw_strset_free(l->exact);
	free(l->name);
	free(l);
}

/*
 * mw_norm_address -- local part as is, domain lower-cased, one trailing
 * dot of the domain dropped.  Writes into out (size bytes); false if it
 * does not fit.  Shared with eval.c.
 */
bool
mw_norm_address(const char *addr, char *out, size_t size)
{
	const char *at = strrchr(addr, '@');
	size_t len = strlen(addr), i;

	if (len >= size)
		return false;
	memcpy(out, addr, len + 1);
	if (at == NULL)
		return true;
	for (i = (size_t)(at - addr) + 1; i < len; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
	if (len > 0 && out[len - 1] == '.' && (size_t)(at - addr) + 1 < len - 1)
		out[len - 1] = '\0';
	return true;
}

/* list_add -- one entry; why explains a refusal. */
bool
mw_list_add(struct list *l, const char *item, const char **why)
{
	char norm[1100];

	switch (l->type) {
	case L_IP: return mw_ipset_add(l->ips, item, why);
	case L_DOMAIN:
		if (item[0] == '=') {
			/* "=example.org": that domain, not its subdomains. */
			if (item[1] == '.' || item[1] == '*') {
				*why = "an exact entry names one domain, as in "
				       "=example.org";
				return false;
			}
			struct mw_domset *check = mw_domset_new();
			size_t len = strlen(item + 1);
			bool ok;

			if (check == NULL) {
				*why = "out of memory";
				return false;
			}
			ok = mw_domset_add(check, item + 1, why);
			mw_domset_free(check);
			if (!ok)
				return false;
			if (len > 0 && item[len] == '.')
				len--;
			if (!mw_strset_add(l->exact, item + 1, len)) {
				*why = "out of memory";
				return false;
			}
			return true;
		}
		return mw_domset_add(l->domains, item, why);
	case L_LOGINS:
		*why = "login map entries come from sender_login_map";
		return false;
	case L_ADDRESS:
		if (strchr(item, '@') == NULL) {
			*why = "an address needs an \"@\" (\"@domain\" for a "
			       "whole domain)";
			return false;
		}
		if (!mw_norm_address(item, norm, sizeof(norm))) {
			*why = "address too long";
			return false;
		}
		if (!mw_strset_add(l->strings, norm, strlen(norm))) {
			*why = "out of memory";
			return false;
		}
		return true;
	case L_STRING:
		if (!mw_strset_add(l->strings, item, strlen(item))) {
			*why = "out of memory";
			return false;
		}
		return true;
	}
	return false;
}

bool
mw_list_finish(struct list *l)
{
	return l->type != L_IP || mw_ipset_finish(l->ips);
}

/*
 * read_list -- a list file or the login map (what names it in messages),
 * whole; NULL after reporting why not.
 */
static char *
read_list(struct mw_diag *diag, const char *path, const char *what, size_t *len)
{
	const char *why;
	bool opening;
	char *buf;

	if ((buf = mw_read_regular(path, LIST_FILE_MAX, len, &opening, &why)) !=
	    NULL)
		return buf;
	if (opening)
		mw_diag_error(diag, path, 0, 0, "cannot open %s: %s", what,
		    why);
	else
		mw_diag_error(diag, path, 0, 0, "%s: %s (at most %ld bytes)",
		    what, why, LIST_FILE_MAX);
	return NULL;
}

/* list_load_file -- entries of a list file, errors at its own lines. */
void
mw_list_load_file(struct mw_diag *diag, struct list *l, const char *path)
{
	unsigned lineno = 0;
	size_t len, pos = 0;
	char *buf;

	if ((buf = read_list(diag, path, "list file", &len)) == NULL)
		return;
	while (pos < len) {
		char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos, s = 0, e;
		const char *bad = NULL;
		char *hash;

		pos += llen + (nl ? 1 : 0);
		lineno++;
		line[llen] = '\0';
		if ((hash = memchr(line, '\0', llen)) != NULL) {
			mw_diag_error(diag, path, lineno,
			    (unsigned)(hash - line) + 1, "NUL byte in line");
			continue;
		}
		if ((hash = strchr(line, '#')) != NULL) {
			*hash = '\0';
			llen = (size_t)(hash - line);
		}
		while (s < llen && isspace((unsigned char)line[s]))
			s++;
		e = llen;
		while (e > s && isspace((unsigned char)line[e - 1]))
			e--;
		if (s == e)
			continue;
		line[e] = '\0';
		if (!mw_list_add(l, line + s, &bad))
			mw_diag_error(diag, path, lineno, (unsigned)s + 1,
			    "%s: %s", line + s, bad ? bad : "invalid entry");
	}
	free(buf);
}

const struct list *
mw_list_find(const struct mw_ruleset *rs, const char *name)
{
	const struct list *l;

	for (l = rs->lists; l != NULL; l = l->next)
		if (strcmp(l->name, name) == 0)
			return l;
	return NULL;
}

const char *
mw_list_type_name(enum list_type t)
{
	static const char *const n[] = { "ip", "domain", "address", "string",
		"login map" };

	return n[t];
}

bool
mw_list_has_domain(const struct list *l, const char *domain)
{
	size_t len = strlen(domain);

	if (mw_domset_contains(l->domains, domain))
		return true;
	if (len > 0 && domain[len - 1] == '.')
		len--;
	return mw_strset_contains(l->exact, domain, len);
}

/* login_key -- "LOGIN\x01entry" into buf; false if it does not fit. */
static bool
login_key(char *buf, size_t size, const char *login, const char *entry)
{
	int n = snprintf(buf, size, "%s\x01%s", login, entry);

	return n >= 0 && (size_t)n < size;
}

/*
 * mw_list_load_logins -- one login per line: the login, then ":" or
 * white space, then the addresses it may use as sender, separated by
 * commas or white space ("@example.org" for a whole domain).  "#" starts
 * a comment.  Errors at PATH:LINE:COL.
 */
void
mw_list_load_logins(struct mw_diag *diag, struct list *l, const char *path)
{
	unsigned lineno = 0;
	size_t len, pos = 0;
	char *buf;

	if ((buf = read_list(diag, path, "sender login map", &len)) == NULL)
		return;
	while (pos < len) {
		char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos, i = 0;
		size_t start, n = 0;
		char login[1100], *cut;

		pos += llen + (nl ? 1 : 0);
		lineno++;
		if ((cut = memchr(line, '\0', llen)) != NULL) {
			mw_diag_error(diag, path, lineno,
			    (unsigned)(cut - line) + 1, "NUL byte in line");
			continue;
		}
		if (llen > LOGIN_LINE_MAX) {
			mw_diag_error(diag, path, lineno, LOGIN_LINE_MAX + 1,
			    "line longer than %d bytes", LOGIN_LINE_MAX);
			continue;
		}
		line[llen] = '\0';
		if ((cut = strchr(line, '#')) != NULL)
			*cut = '\0';
		while (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')
			i++;
		if (line[i] == '\0')
			continue;
		start = i;
		while (line[i] != '\0' && !isspace((unsigned char)line[i]) &&
		    line[i] != ':')
			i++;
		if (i == start) {
			mw_diag_error(diag, path, lineno, (unsigned)start + 1,
			    "no login before \":\"");
			continue;
		}
		if (i - start >= sizeof(login)) {
			mw_diag_error(diag, path, lineno, (unsigned)start + 1,
			    "login too long");
			continue;
		}
		memcpy(login, line + start, i - start);
		login[i - start] = '\0';
		if (line[i] == ':')
			i++;
		for (;;) {
			char entry[1100], norm[1100], key[2300];
			size_t e;

			while (line[i] == ' ' || line[i] == '\t' ||
			    line[i] == ',' || line[i] == '\r')
				i++;
			if (line[i] == '\0')
				break;
			for (e = i; line[e] != '\0' && line[e] != ',' &&
			     !isspace((unsigned char)line[e]);
			     e++)
				;
			if (e - i >= sizeof(entry) ||
			    memchr(line + i, '@', e - i) == NULL) {
				mw_diag_error(diag, path, lineno,
				    (unsigned)i + 1,
				    "%.*s: not an address or @domain",
				    (int)(e - i > 200 ? 200 : e - i), line + i);
				i = e;
				continue;
			}
			memcpy(entry, line + i, e - i);
			entry[e - i] = '\0';
			if (!mw_norm_address(entry, norm, sizeof(norm)) ||
			    !login_key(key, sizeof(key), login, norm) ||
			    !mw_strset_add(l->strings, key, strlen(key))) {
				mw_diag_error(diag, path, lineno,
				    (unsigned)i + 1,
				    "entry too long or out of memory");
				break;
			}
			n++;
			i = e;
		}
		if (n == 0)
			mw_diag_error(diag, path, lineno, (unsigned)start + 1,
			    "login %s owns no address", login);
	}
	free(buf);
}

bool
mw_list_owns(const struct list *l, const char *login, const char *addr)
{
	char key[2300];
	const char *at = strrchr(addr, '@');

	if (l == NULL || login == NULL || addr == NULL || at == NULL)
		return false;
	if (login_key(key, sizeof(key), login, addr) &&
	    mw_strset_contains(l->strings, key, strlen(key)))
		return true;
	return login_key(key, sizeof(key), login, at) &&
	    mw_strset_contains(l->strings, key, strlen(key));
}
