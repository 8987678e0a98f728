/*
 * noop-milter.c -- the floor for the benchmarks: a libmilter milter that
 * registers the same callbacks, flags and macro lists as milter-warden
 * (milter/glue.c) and does nothing with them: continue at every stage,
 * accept at end of message.  What it costs is what libmilter and the
 * protocol cost; no milter built on libmilter can be faster.
 *
 * -H adds one header at end of message, so that the reply is two packets
 * (the header edit, then the verdict), the case where TCP's Nagle
 * algorithm meets the MTA's delayed ACK.  -N sets TCP_NODELAY on the
 * listening socket (mw_sockopt_nodelay_listeners, milter/sockopt.c), to
 * show the floor with and without that fix.
 *
 * usage: noop-milter -p SOCKET [-H] [-N] [-b BACKLOG]
 */
#include "config.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "mw_sockopt.h"

static bool add_header;

static const char *const macro_lists[][2] = {
	{ "j _ v {daemon_name} {daemon_addr} {client_addr} {client_name} "
	  "{client_port}",
	    NULL },
	{ "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
	    NULL },
	{ "i {auth_authen} {auth_type} {auth_author} {mail_addr} {mail_host} "
	  "{mail_mailer}",
	    NULL },
	{ "i {rcpt_addr} {rcpt_host} {rcpt_mailer}", NULL },
	{ "i", NULL },
	{ "i", NULL },
};
static const int macro_stages[] = { SMFIM_CONNECT, SMFIM_HELO, SMFIM_ENVFROM,
	SMFIM_ENVRCPT, SMFIM_DATA, SMFIM_EOM };

/* Negotiate as milter-warden does: skip and leading-space, macro lists. */
static sfsistat
nm_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1,
    unsigned long *pf2, unsigned long *pf3)
{
	const unsigned long want = SMFIF_ADDHDRS | SMFIF_CHGHDRS |
	    SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_DELRCPT | SMFIF_QUARANTINE |
	    SMFIF_CHGFROM | SMFIF_SETSYMLIST;
	size_t i;

	(void)f2;
	(void)f3;
	*pf0 = f0 & want;
	*pf1 = f1 & (SMFIP_SKIP | SMFIP_HDR_LEADSPC);
	*pf2 = 0;
	*pf3 = 0;
	if (f0 & SMFIF_SETSYMLIST)
		for (i = 0; i < sizeof(macro_stages) / sizeof(macro_stages[0]);
		     i++)
			(void)smfi_setsymlist(ctx, macro_stages[i],
			    (char *)macro_lists[i][0]);
	return SMFIS_CONTINUE;
}

static sfsistat
nm_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	(void)ctx;
	(void)host;
	(void)sa;
	return SMFIS_CONTINUE;
}

static sfsistat
nm_helo(SMFICTX *ctx, char *helo)
{
	(void)ctx;
	(void)helo;
	return SMFIS_CONTINUE;
}

static sfsistat
nm_argv(SMFICTX *ctx, char **argv)
{
	(void)ctx;
	(void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat
nm_header(SMFICTX *ctx, char *name, char *value)
{
	(void)ctx;
	(void)name;
	(void)value;
	return SMFIS_CONTINUE;
}

static sfsistat
nm_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	(void)ctx;
	(void)chunk;
	(void)len;
	return SMFIS_CONTINUE;
}

static sfsistat
nm_ctx(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat
nm_eom(SMFICTX *ctx)
{
	if (add_header &&
	    smfi_addheader(ctx, (char *)"X-Noop", (char *)" yes") != MI_SUCCESS)
		return SMFIS_TEMPFAIL;
	return SMFIS_ACCEPT;
}

static sfsistat
nm_unknown(SMFICTX *ctx, const char *cmd)
{
	(void)ctx;
	(void)cmd;
	return SMFIS_CONTINUE;
}

int
main(int argc, char **argv)
{
	struct smfiDesc desc = {
		.xxfi_name = (char *)"noop-milter",
		.xxfi_version = SMFI_VERSION,
		.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY |
		    SMFIF_ADDRCPT | SMFIF_DELRCPT | SMFIF_QUARANTINE |
		    SMFIF_CHGFROM | SMFIF_SETSYMLIST,
		.xxfi_connect = nm_connect,
		.xxfi_helo = nm_helo,
		.xxfi_envfrom = nm_argv,
		.xxfi_envrcpt = nm_argv,
		.xxfi_header = nm_header,
		.xxfi_eoh = nm_ctx,
		.xxfi_body = nm_body,
		.xxfi_eom = nm_eom,
		.xxfi_abort = nm_ctx,
		.xxfi_close = nm_ctx,
		.xxfi_unknown = nm_unknown,
		.xxfi_data = nm_ctx,
		.xxfi_negotiate = nm_negotiate,
	};
	const char *sock = NULL;
	bool nodelay = false;
	int backlog = 128, ch;

	while ((ch = getopt(argc, argv, "b:HNp:")) != -1) {
		switch (ch) {
		case 'b': backlog = atoi(optarg); break;
		case 'H': add_header = true; break;
		case 'N': nodelay = true; break;
		case 'p': sock = optarg; break;
		default:
			fprintf(stderr,
			    "usage: noop-milter -p SOCKET [-H] "
			    "[-N] [-b BACKLOG]\n");
			return 2;
		}
	}
	if (sock == NULL) {
		fprintf(stderr, "noop-milter: -p SOCKET is required\n");
		return 2;
	}
	if (strncmp(sock, "unix:", 5) == 0)
		(void)unlink(sock + 5);
	if (smfi_register(desc) != MI_SUCCESS ||
	    smfi_setconn((char *)sock) != MI_SUCCESS ||
	    smfi_setbacklog(backlog) != MI_SUCCESS ||
	    smfi_opensocket(true) != MI_SUCCESS) {
		fprintf(stderr, "noop-milter: cannot listen on %s\n", sock);
		return 1;
	}
	if (nodelay && mw_sockopt_nodelay_listeners() < 0) {
		fprintf(stderr, "noop-milter: TCP_NODELAY failed\n");
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
