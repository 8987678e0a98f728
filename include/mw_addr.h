/*
 * mw_addr -- mail addresses as the relay and sender policies need them.
 *
 * mw_addr_parse reads an envelope address (RFC 5321 path, with or without
 * angle brackets) and says where it would really be delivered: the domain
 * after any source route, normalised (lower case, no trailing dot), and
 * whether the sender put routing of their own in it -- a percent hack
 * (user%remote@local), a bang path (remote!user@local), a source route
 * (@hop1,@hop2:user@remote), a quoted local part hiding "@", "%" or "!",
 * several "@".  Such an address must never count as local just because
 * its last domain is.
 *
 * mw_from_parse reads an RFC 5322 From: header value (display names,
 * comments, quoted strings, encoded words, group syntax) into the list of
 * mailbox addresses it names.
 */
#ifndef MW_ADDR_H
#define MW_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define MW_ADDR_LOCAL_MAX  512
#define MW_ADDR_DOMAIN_MAX 256

struct mw_addr {
	char local[MW_ADDR_LOCAL_MAX];   /* unquoted local part */
	char domain[MW_ADDR_DOMAIN_MAX]; /* normalised; "" if none */
	bool null;                       /* "<>": the null sender */
	bool routed;     /* sender-specified routing (see above) */
	bool literal;    /* domain is an address literal [..] */
	bool malformed;  /* not a usable address; why says what */
	const char *why; /* static text for malformed or routed */
};

/*
 * mw_addr_parse -- parse raw (NUL-terminated).  Always fills *a; returns
 * false when the address is malformed (a->why tells why).  A null sender
 * "<>" is not malformed.
 */
bool mw_addr_parse(const char *raw, struct mw_addr *a);

/* mw_addr_format -- "local@domain" into buf; false if it does not fit. */
bool mw_addr_format(const struct mw_addr *a, char *buf, size_t size);

#define MW_FROM_MAX 16 /* mailboxes kept from one From: header */

struct mw_from {
	size_t n;   /* mailboxes found (may exceed MW_FROM_MAX) */
	bool group; /* group syntax was used */
	bool malformed;
	const char *why;
	struct mw_addr box[MW_FROM_MAX];
};

/*
 * mw_from_parse -- the mailboxes of a From: header value.  Returns false
 * (f->malformed, f->why) when the value cannot be read as a mailbox list.
 */
bool mw_from_parse(const char *value, struct mw_from *f);

#endif
