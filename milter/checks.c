/*
 * checks.c -- HELO, client-name and Date: checks for the spam rules.
 *
 * Each answers one question a mail administrator asks of a session
 * ("is this HELO a bare IP?", "how old is this Date:?") from the strings
 * the MTA handed over; the rules decide what an answer is worth.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mw_checks.h"

bool
mw_helo_bare_ip(const char *helo)
{
	unsigned char buf[16];
	char tmp[64];
	size_t n = strlen(helo);

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, helo, n + 1);
	if (tmp[n - 1] == '.')
		tmp[n - 1] = '\0';
	return inet_pton(AF_INET, tmp, buf) == 1 ||
	    inet_pton(AF_INET6, tmp, buf) == 1;
}

bool
mw_helo_bad_chars(const char *helo)
{
	size_t n = strlen(helo), i;

	if (n == 0)
		return true;
	if (helo[0] == '[' && helo[n - 1] == ']')
		return false; /* an address literal: judged elsewhere */
	if (helo[0] == '-' || helo[0] == '.' || helo[n - 1] == '-' ||
	    strstr(helo, "..") != NULL)
		return true;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)helo[i]) && helo[i] != '-' &&
		    helo[i] != '.')
			return true;
	return false;
}

bool
mw_client_unknown(const char *name)
{
	return name == NULL || *name == '\0' || *name == '[' ||
	    strcasecmp(name, "unknown") == 0;
}

/* name_eq -- equal without case, a trailing dot on either ignored. */
static bool
name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen > 0 && a[alen - 1] == '.')
		alen--;
	if (blen > 0 && b[blen - 1] == '.')
		blen--;
	return alen == blen && alen > 0 && strncasecmp(a, b, alen) == 0;
}

bool
mw_helo_matches(const char *helo, const char *client)
{
	const char *hp, *cp;

	if (mw_client_unknown(client) || helo == NULL || *helo == '\0')
		return false;
	if (name_eq(helo, strlen(helo), client, strlen(client)))
		return true;
	hp = strchr(helo, '.');
	cp = strchr(client, '.');
	/* Same parent, and the parent is more than a top-level domain. */
	return hp != NULL && cp != NULL && strchr(hp + 1, '.') != NULL &&
	    name_eq(hp + 1, strlen(hp + 1), cp + 1, strlen(cp + 1));
}

/* ---------------------------------------------------------------- dates */

static const char *
skip_cfws(const char *p)
{
	int depth = 0;

	for (; *p != '\0'; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (depth == 0 && !isspace((unsigned char)*p))
			break;
	}
	return p;
}

static bool
read_num(const char **pp, int min_digits, int max_digits, int *out)
{
	const char *p = *pp;
	int n = 0, v = 0;

	while (isdigit((unsigned char)*p) && n < max_digits) {
		v = v * 10 + (*p - '0');
		p++;
		n++;
	}
	if (n < min_digits || isdigit((unsigned char)*p))
		return false;
	*out = v;
	*pp = p;
	return true;
}

/* days_from_civil -- days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

bool
mw_date_parse(const char *value, int64_t *when)
{
	static const char *const months[] = { "jan", "feb", "mar", "apr", "may",
		"jun", "jul", "aug", "sep", "oct", "nov", "dec" };
	static const struct {
		const char *name;
		int minutes;
	} zones[] = { { "UT", 0 }, { "GMT", 0 }, { "Z", 0 }, { "EST", -300 },
		{ "EDT", -240 }, { "CST", -360 }, { "CDT", -300 },
		{ "MST", -420 }, { "MDT", -360 }, { "PST", -480 },
		{ "PDT", -420 } };
	const char *p = skip_cfws(value);
	int day, year, hh, mm, ss = 0, zone = 0;
	unsigned mon;
	size_t i;

	/* Optional day of week. */
	if (isalpha((unsigned char)*p)) {
		while (isalpha((unsigned char)*p))
			p++;
		p = skip_cfws(p);
		if (*p != ',')
			return false;
		p = skip_cfws(p + 1);
	}
	if (!read_num(&p, 1, 2, &day) || day < 1 || day > 31)
		return false;
	p = skip_cfws(p);
	for (mon = 0; mon < 12; mon++)
		if (strncasecmp(p, months[mon], 3) == 0)
			break;
	if (mon == 12)
		return false;
	p = skip_cfws(p + 3);
	if (!read_num(&p, 2, 4, &year))
		return false;
	/* RFC 5322 4.3: obsolete two- and three-digit years. */
	if (year < 50)
		year += 2000;
	else if (year < 1000)
		year += 1900;
	p = skip_cfws(p);
	if (!read_num(&p, 1, 2, &hh) || *p != ':')
		return false;
	p++;
	if (!read_num(&p, 2, 2, &mm))
		return false;
	if (*p == ':') {
		p++;
		if (!read_num(&p, 2, 2, &ss))
			return false;
	}
	if (hh > 23 || mm > 59 || ss > 60)
		return false;
	p = skip_cfws(p);
	if (*p == '+' || *p == '-') {
		int z;
		bool neg = *p == '-';

		p++;
		if (!read_num(&p, 4, 4, &z) || z % 100 > 59)
			return false;
		zone = (z / 100) * 60 + z % 100;
		if (neg)
			zone = -zone;
	} else if (isalpha((unsigned char)*p)) {
		/* Obsolete names; military and unknown zones count as +0000. */
		for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
			size_t n = strlen(zones[i].name);

			if (strncasecmp(p, zones[i].name, n) == 0 &&
			    !isalpha((unsigned char)p[n])) {
				zone = zones[i].minutes;
				break;
			}
		}
	} else if (*p != '\0') {
		return false;
	}
	*when = days_from_civil(year, mon + 1, (unsigned)day) * 86400 +
	    hh * 3600 + mm * 60 + ss - (int64_t)zone * 60;
	return true;
}
