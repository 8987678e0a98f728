/*
 * glue.c -- libmilter callbacks.
 *
 * Each callback copies what the MTA handed over (arguments and macros)
 * into the session's mw_conn, calls the engine for that phase, and maps
 * the engine's reply to an SMFIS_* status in one place (reply_status).
 * No policy lives here.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <libmilter/mfapi.h>

#include "mw_engine.h"
#include "mw_glue.h"
#include "mw_log.h"

/* Per MTA connection, from negotiate (or connect) to close. */
struct session {
	struct mw_conn *conn; /* NULL until connect */
	bool can_skip;        /* the MTA accepts SMFIS_SKIP */
	bool leadspc;         /* header values carry their leading space */
};

static atomic_uint active_sessions;
static atomic_bool refusing; /* stopping: no new sessions */

/*
 * The macros the policy may use, per stage.  They are requested in
 * negotiate (Postfix and Sendmail honour the list) and copied into the
 * connection when the stage runs.
 */
static const char *const macros_connect[] = { "j", "_", "v", "{daemon_name}",
	"{daemon_addr}", "{client_addr}", "{client_name}", "{client_port}",
	NULL };
static const char *const macros_helo[] = { "{tls_version}", "{cipher}",
	"{cipher_bits}", "{cert_subject}", "{cert_issuer}", NULL };
static const char *const macros_mail[] = { "i", "{auth_authen}", "{auth_type}",
	"{auth_author}", "{mail_addr}", "{mail_host}", "{mail_mailer}", NULL };
static const char *const macros_rcpt[] = { "i", "{rcpt_addr}", "{rcpt_host}",
	"{rcpt_mailer}", NULL };
static const char *const macros_data[] = { "i", NULL };
static const char *const macros_eom[] = { "i", NULL };

unsigned
mw_glue_active(void)
{
	return atomic_load(&active_sessions);
}

void
mw_glue_refuse_new(void)
{
	atomic_store(&refusing, true);
}

static struct session *
session_get(SMFICTX *ctx)
{
	struct session *s = smfi_getpriv(ctx);

	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return NULL;
		if (smfi_setpriv(ctx, s) != MI_SUCCESS) {
			free(s);
			return NULL;
		}
		atomic_fetch_add(&active_sessions, 1);
	}
	return s;
}

/*
 * reply_status -- the one place an engine reply becomes a libmilter status.
 * Internal failures were already turned into a reply by the engine
 * (mw_engine_failure), following on_internal_error.
 */
static sfsistat
reply_status(SMFICTX *ctx, const struct session *s, const struct mw_reply *r)
{
	switch (r->action) {
	case MW_CONTINUE: return SMFIS_CONTINUE;
	case MW_ACCEPT: return SMFIS_ACCEPT;
	case MW_SKIP:
		return s != NULL && s->can_skip ? SMFIS_SKIP : SMFIS_CONTINUE;
	case MW_DISCARD: return SMFIS_DISCARD;
	case MW_REJECT:
	case MW_TEMPFAIL:
		if (r->code[0] != '\0' &&
		    smfi_setreply(ctx, (char *)r->code,
			r->dsn[0] != '\0' ? (char *)r->dsn : NULL,
			(char *)r->text) != MI_SUCCESS)
			mw_warn("smfi_setreply %s %s failed; the MTA uses its "
				"default reply",
			    r->code, r->dsn);
		return r->action == MW_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
	case MW_ERROR: break;
	}
	/* Not reached: the engine never returns MW_ERROR in a reply. */
	return SMFIS_TEMPFAIL;
}

/* A failure before there is a connection to evaluate under. */
static sfsistat
fail(SMFICTX *ctx, struct session *s, const char *what)
{
	struct mw_reply r;

	(void)mw_engine_failure(s != NULL ? s->conn : NULL, what, &r);
	return reply_status(ctx, s, &r);
}

/* Copy the listed macros the MTA defined into the connection. */
static bool
copy_macros(SMFICTX *ctx, struct mw_conn *conn, const char *const *names)
{
	for (; *names != NULL; names++) {
		const char *v = smfi_getsymval(ctx, (char *)*names);

		if (v != NULL && !mw_conn_set_macro(conn, *names, v))
			return false;
	}
	return true;
}

/*
 * Common start of every per-phase callback: the session, its connection
 * and the phase's macros.  On failure *status holds what to answer.
 */
static struct session *
enter(SMFICTX *ctx, const char *const *macros, sfsistat *status)
{
	struct session *s = smfi_getpriv(ctx);

	if (s == NULL || s->conn == NULL) {
		*status = fail(ctx, s, "callback without a connection");
		return NULL;
	}
	if (macros != NULL && !copy_macros(ctx, s->conn, macros)) {
		*status =
		    fail(ctx, s, "macro value too long or too many macros");
		return NULL;
	}
	return s;
}

static void
join_macros(char *buf, size_t size, const char *const *names)
{
	buf[0] = '\0';
	for (; *names != NULL; names++) {
		if (buf[0] != '\0')
			strncat(buf, " ", size - strlen(buf) - 1);
		strncat(buf, *names, size - strlen(buf) - 1);
	}
}

static sfsistat
cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1,
    unsigned long *pf2, unsigned long *pf3)
{
	static const struct {
		int stage;
		const char *const *names;
	} lists[] = {
		{ SMFIM_CONNECT, macros_connect },
		{ SMFIM_HELO, macros_helo },
		{ SMFIM_ENVFROM, macros_mail },
		{ SMFIM_ENVRCPT, macros_rcpt },
		{ SMFIM_DATA, macros_data },
		{ SMFIM_EOM, macros_eom },
	};
	const unsigned long want_actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS |
	    SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_DELRCPT | SMFIF_QUARANTINE |
	    SMFIF_CHGFROM | SMFIF_SETSYMLIST;
	struct session *s;
	char buf[512];
	size_t i;

	(void)f2;
	(void)f3;
	if (atomic_load(&refusing))
		return SMFIS_REJECT; /* stopping: the MTA's default applies */
	if ((s = session_get(ctx)) == NULL)
		return SMFIS_REJECT; /* libmilter: refuse this connection */
	*pf0 = f0 & want_actions;
	/* Header values with their leading space: needed to sign exactly. */
	*pf1 = f1 & (SMFIP_SKIP | SMFIP_HDR_LEADSPC);
	*pf2 = 0;
	*pf3 = 0;
	s->can_skip = (*pf1 & SMFIP_SKIP) != 0;
	s->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
	if (f0 & SMFIF_SETSYMLIST) {
		for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
			join_macros(buf, sizeof(buf), lists[i].names);
			if (smfi_setsymlist(ctx, lists[i].stage, buf) !=
			    MI_SUCCESS)
				mw_warn("smfi_setsymlist(%d, \"%s\") failed",
				    lists[i].stage, buf);
		}
	}
	return SMFIS_CONTINUE;
}

static sfsistat
cb_connect(SMFICTX *ctx, char *hostname, struct sockaddr *sa)
{
	char addr[INET6_ADDRSTRLEN + 8] = "";
	struct mw_state *st;
	struct session *s;
	struct mw_reply r;

	if ((s = session_get(ctx)) == NULL)
		return fail(ctx, NULL, "out of memory at connect");
	if (s->conn != NULL) {
		/* A second connect on one session: start over. */
		mw_conn_free(s->conn);
		s->conn = NULL;
	}
	if ((st = mw_state_current()) == NULL)
		return fail(ctx, s, "no configuration loaded");
	s->conn = mw_conn_new(st);
	mw_state_unref(st);
	if (s->conn == NULL)
		return fail(ctx, s, "out of memory at connect");

	if (sa != NULL && sa->sa_family == AF_INET)
		inet_ntop(AF_INET,
		    &((struct sockaddr_in *)(void *)sa)->sin_addr, addr,
		    sizeof(addr));
	else if (sa != NULL && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((struct sockaddr_in6 *)(void *)sa)->sin6_addr, addr,
		    sizeof(addr));
	else
		strcpy(addr, "local");
	if (!copy_macros(ctx, s->conn, macros_connect))
		return fail(ctx, s, "macro value too long or too many macros");
	(void)mw_eng_connect(s->conn, hostname, addr, &r);
	return reply_status(ctx, s, &r);
}

static sfsistat
cb_helo(SMFICTX *ctx, char *helo)
{
	struct mw_reply r;
	struct session *s;
	sfsistat st;

	if ((s = enter(ctx, macros_helo, &st)) == NULL)
		return st;
	(void)mw_eng_helo(s->conn, helo, &r);
	return reply_status(ctx, s, &r);
}

static sfsistat
cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct mw_reply r;
	struct session *s;
	sfsistat st;

	if ((s = enter(ctx, macros_mail, &st)) == NULL)
		return st;
	(void)mw_eng_mail(s->conn, argv[0] != NULL ? argv[0] : "",
	    argv[0] != NULL ? (const char *const *)argv + 1 : NULL, &r);
	return reply_status(ctx, s, &r);
}

static sfsistat
cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct mw_reply r;
	struct session *s;
	sfsistat st;

	if ((s = enter(ctx, macros_rcpt, &st)) == NULL)
		return st;
	(void)mw_eng_rcpt(s->conn, argv[0] != NULL ? argv[0] : "", &r);
	return reply_status(ctx, s, &r);
}

static sfsistat
cb_data(SMFICTX *ctx)
{
	struct mw_reply r;
	struct session *s;
	sfsistat st;

	if ((s = enter(ctx, macros_data, &st)) == NULL)
		return st;
	(void)mw_eng_data(s->conn, &r);
	return reply_status(ctx, s, &r);
}

static sfsistat
cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct mw_reply r;
	struct session *s;
	sfsistat st;

	if ((s = enter(ctx, NULL, &st)) == NULL)
		return st;
	(void)mw_eng_header(s->conn, name, value, &r);
	return reply_status(ctx, s, &r);
}

static sfsistat
cb_eoh(SMFICTX *ctx)
{
	struct mw_reply r;
	struct session *s;
	sfsistat st;

	if ((s = enter(ctx, macros_data, &st)) == NULL)
		return st;
	(void)mw_eng_eoh(s->conn, &r);
	return reply_status(ctx, s, &r);
}

static sfsistat
cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct mw_reply r;
	struct session *s;
	sfsistat st;

	if ((s = enter(ctx, NULL, &st)) == NULL)
		return st;
	(void)mw_eng_body(s->conn, chunk, len, &r);
	return reply_status(ctx, s, &r);
}

/*
 * apply_ops -- perform the changes the engine decided, in its order.  A
 * failing call is an internal failure: the message must not go through
 * half-modified, or unmodified when a rule said otherwise.
 */
static bool
apply_ops(SMFICTX *ctx, const struct session *s, const struct mw_op *ops,
    size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct mw_op *o = &ops[i];
		char *value = o->value;
		int rc = MI_FAILURE;

		/*
		 * With SMFIP_HDR_LEADSPC negotiated the MTA writes values as
		 * given, so the space after the colon is ours to send.
		 */
		if (s->leadspc && o->value != NULL &&
		    o->kind != MW_OP_QUARANTINE &&
		    asprintf(&value, " %s", o->value) < 0) {
			mw_error("end of message: out of memory");
			return false;
		}
		switch (o->kind) {
		case MW_OP_ADD_HEADER:
			rc = smfi_addheader(ctx, o->name, value);
			break;
		case MW_OP_INSERT_HEADER:
			rc = smfi_insheader(ctx, 0, o->name, value);
			break;
		case MW_OP_CHANGE_HEADER:
			rc = smfi_chgheader(ctx, o->name, (int)o->index, value);
			break;
		case MW_OP_ADD_RCPT: rc = smfi_addrcpt(ctx, o->name); break;
		case MW_OP_DELETE_RCPT: rc = smfi_delrcpt(ctx, o->name); break;
		case MW_OP_QUARANTINE:
			rc = smfi_quarantine(ctx, o->value);
			break;
		}
		if (value != o->value)
			free(value);
		if (rc != MI_SUCCESS) {
			mw_error("end of message: the MTA refused change %zu "
				 "(%d on %s); was the action negotiated?",
			    i + 1, (int)o->kind, o->name ? o->name : "-");
			return false;
		}
	}
	return true;
}

static sfsistat
cb_eom(SMFICTX *ctx)
{
	const struct mw_op *ops;
	struct mw_reply r;
	struct session *s;
	sfsistat st;
	size_t n;

	if ((s = enter(ctx, macros_eom, &st)) == NULL)
		return st;
	(void)mw_eng_eom(s->conn, &r);
	ops = mw_conn_ops(s->conn, &n);
	if ((r.action == MW_ACCEPT || r.action == MW_CONTINUE) &&
	    !apply_ops(ctx, s, ops, n))
		return fail(ctx, s,
		    "the MTA refused a header or recipient "
		    "change");
	return reply_status(ctx, s, &r);
}

static sfsistat
cb_abort(SMFICTX *ctx)
{
	struct session *s = smfi_getpriv(ctx);

	if (s != NULL && s->conn != NULL)
		mw_eng_abort(s->conn);
	return SMFIS_CONTINUE;
}

static sfsistat
cb_unknown(SMFICTX *ctx, const char *cmd)
{
	struct mw_reply r;
	struct session *s;
	sfsistat st;

	if ((s = enter(ctx, NULL, &st)) == NULL)
		return st;
	(void)mw_eng_unknown(s->conn, cmd, &r);
	return reply_status(ctx, s, &r);
}

/* close may come without connect (libmilter docs): tolerate both. */
static sfsistat
cb_close(SMFICTX *ctx)
{
	struct session *s = smfi_getpriv(ctx);

	if (s != NULL) {
		mw_conn_free(s->conn);
		free(s);
		smfi_setpriv(ctx, NULL);
		atomic_fetch_sub(&active_sessions, 1);
	}
	return SMFIS_CONTINUE;
}

bool
mw_glue_register(void)
{
	struct smfiDesc desc = {
		.xxfi_name = (char *)PACKAGE_NAME,
		.xxfi_version = SMFI_VERSION,
		.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY |
		    SMFIF_ADDRCPT | SMFIF_DELRCPT | SMFIF_QUARANTINE |
		    SMFIF_CHGFROM | SMFIF_SETSYMLIST,
		.xxfi_connect = cb_connect,
		.xxfi_helo = cb_helo,
		.xxfi_envfrom = cb_envfrom,
		.xxfi_envrcpt = cb_envrcpt,
		.xxfi_header = cb_header,
		.xxfi_eoh = cb_eoh,
		.xxfi_body = cb_body,
		.xxfi_eom = cb_eom,
		.xxfi_abort = cb_abort,
		.xxfi_close = cb_close,
		.xxfi_unknown = cb_unknown,
		.xxfi_data = cb_data,
		.xxfi_negotiate = cb_negotiate,
	};

	return smfi_register(desc) == MI_SUCCESS;
}
