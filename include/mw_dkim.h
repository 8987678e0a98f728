/*
 * mw_dkim -- DKIM signing and verification over libopendkim's streaming API.
 *
 * A struct mw_dkim belongs to one running state: the keys, the signing
 * table and the libopendkim library handle, all loaded and checked when the
 * configuration is (start and reload), immutable afterwards and shared by
 * every thread.  A job is one message's signing or verification: created at
 * end of headers, fed the headers and then the body as they arrive, finished
 * at end of message.  Nothing here knows libmilter.
 */
#ifndef MW_DKIM_H
#define MW_DKIM_H

#include <stdbool.h>
#include <stddef.h>

#include "mw_config.h"
#include "mw_diag.h"

#define MW_DKIM_MAX_SIGS 8 /* signatures made, or verified, per message */

struct mw_dkim;
struct mw_dkim_job;

/*
 * mw_dkim_load -- keys (dkim_keys, dkim_key_table + dkim_signing_table) and
 * the library handle for cfg.  Every problem goes to diag as an error naming
 * the file (and line, for the tables): a key that cannot be read or parsed,
 * a key readable by group or others (dkim_require_safe_keys), an RSA key
 * below dkim_min_rsa_bits, a signing table naming an unknown key.  Returns
 * NULL on error; a configuration without DKIM still gets a handle (it
 * verifies when dkim_verify is on).
 */
struct mw_dkim *mw_dkim_load(const struct mw_config *cfg, struct mw_diag *diag);
void mw_dkim_free(struct mw_dkim *d);

/* mw_dkim_resolver -- the resolver of dns_servers (shared: blocklists). */
struct mw_dns;
const struct mw_dns *mw_dkim_resolver(const struct mw_dkim *d);

/* mw_dkim_authserv -- authserv_id, or the host name. */
const char *mw_dkim_authserv(const struct mw_dkim *d);

/* mw_dkim_nkeys -- number of signing keys loaded. */
size_t mw_dkim_nkeys(const struct mw_dkim *d);

/* mw_dkim_verifies -- verification of inbound mail is on. */
bool mw_dkim_verifies(const struct mw_dkim *d);

/*
 * mw_dkim_key_exists -- does a rule's `dkim-sign "NAME"` name a key?  NAME
 * is a KeyTable key name, a signing domain, or "SELECTOR._domainkey.DOMAIN".
 */
bool mw_dkim_key_exists(const struct mw_dkim *d, const char *name);

/*
 * mw_dkim_select -- the keys to sign a message with: those named by forced
 * (a rule's choice) when not NULL, else those the signing table or
 * dkim_keys give for the author address addr (local@domain, may be NULL)
 * and its domain.  Up to max indexes into idx; returns how many.
 */
size_t mw_dkim_select(const struct mw_dkim *d, const char *addr,
    const char *domain, const char *forced, size_t *idx, size_t max);

/*
 * mw_dkim_check_dns -- for `milter-warden -n`: look up each key's public
 * key in DNS and compare it with the private key.  A mismatch or a missing
 * record is an error in diag, an unreachable DNS a warning.
 */
void mw_dkim_check_dns(const struct mw_dkim *d, struct mw_diag *diag);

/*
 * Jobs.  id identifies the message in libopendkim's messages (the queue
 * id).  On failure a function returns NULL or false and err holds the
 * reason; the caller then applies dkim_on_key_error (signing) or treats it
 * as an internal failure.
 */
struct mw_dkim_job *mw_dkim_sign_begin(const struct mw_dkim *d,
    const size_t *keys, size_t nkeys, const char *id, char *err, size_t errlen);
struct mw_dkim_job *mw_dkim_verify_begin(const struct mw_dkim *d,
    const char *id, char *err, size_t errlen);
bool mw_dkim_header(struct mw_dkim_job *j, const char *name, const char *value);
bool mw_dkim_eoh(struct mw_dkim_job *j);
/* mw_dkim_wants_body -- false once the body cannot matter (no signature). */
bool mw_dkim_wants_body(const struct mw_dkim_job *j);
bool mw_dkim_body(struct mw_dkim_job *j, const unsigned char *buf, size_t len);
bool mw_dkim_eom(struct mw_dkim_job *j);
const char *mw_dkim_error(const struct mw_dkim_job *j);
void mw_dkim_job_free(struct mw_dkim_job *j);

/* One signature made (signing) or found (verification). */
struct mw_dkim_sig {
	char result[16]; /* signing: "signed"; verification: RFC 8601 */
	char domain[256];
	char selector[64];
	char alg[24];    /* "rsa-sha256", "ed25519-sha256" */
	char reason[96]; /* why not pass, "" when none */
	char *header;    /* signing: DKIM-Signature value, folded with LF */
};

/* mw_dkim_sigs -- after mw_dkim_eom: the signatures, *n of them. */
const struct mw_dkim_sig *mw_dkim_sigs(const struct mw_dkim_job *j, size_t *n);

/*
 * mw_dkim_summary -- verification's overall result for rules and logs:
 * "pass" if any signature passed, else the first of fail, policy,
 * permerror, temperror, neutral found, else "none".
 */
const char *mw_dkim_summary(const struct mw_dkim_job *j);

/*
 * mw_dkim_auth_results -- the Authentication-Results value for a verified
 * message: "AUTHSERV-ID; dkim=pass header.d=... header.s=... header.a=..."
 * (one clause per signature, or "dkim=none").  false if it does not fit.
 */
bool mw_dkim_auth_results(const struct mw_dkim_job *j, const char *authserv,
    char *buf, size_t size);

#endif
