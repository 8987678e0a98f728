/*
 * mw_checks -- the cheap, decisive spam checks behind the rules' HELO,
 * client and header fields: pure functions of strings, no state.
 */
#ifndef MW_CHECKS_H
#define MW_CHECKS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* mw_helo_bare_ip -- an IPv4 or IPv6 address without the [ ] of an
 * address literal (RFC 5321 says a literal must be bracketed). */
bool mw_helo_bare_ip(const char *helo);

/* mw_helo_bad_chars -- characters no host name has: anything but letters,
 * digits, '-' and '.', outside an address literal; also "" and names that
 * start or end with '-' or contain "..". */
bool mw_helo_bad_chars(const char *helo);

/*
 * mw_helo_matches -- does the HELO name go with the client's resolved name?
 * Equal (without case and a trailing dot), or in the same parent domain
 * (the names minus their first label agree and have two labels or more).
 * False when the client has no name ("unknown", "[addr]", empty).
 */
bool mw_helo_matches(const char *helo, const char *client_name);

/* mw_client_unknown -- the MTA found no name for the client. */
bool mw_client_unknown(const char *client_name);

/*
 * mw_date_parse -- an RFC 5322 Date: value (day of week optional, obsolete
 * zone names and two-digit years accepted, comments ignored) as seconds
 * since the epoch.  false when it cannot be read.
 */
bool mw_date_parse(const char *value, int64_t *when);

#endif
