/*
 * test_dkim.c -- DKIM through the engine, as the glue drives it: the
 * signatures an outbound message gets verify (checked with libopendkim's
 * verifier reading the public keys from a file), keys are refused for the
 * documented reasons, forged Authentication-Results are deleted, and rules
 * steer signing.  Independent verifiers (python3-dkim, OpenDKIM) check the
 * signatures end to end in tests/integration/dkim-*.sh.
 */
#include "config.h"

#include <sys/stat.h>

#include <opendkim/dkim.h>

#include "helpers.h"
#include "mw_engine.h"

struct keys {
	char *dir;
	char *rsa, *ed, *rsa1024; /* key files */
	char *txtfile;            /* "NAME DATA" lines for the verifier */
};

static char *
run_capture(const char *cmd)
{
	char buf[4096];
	size_t len;
	FILE *p = popen(cmd, "r");

	assert_non_null(p);
	len = fread(buf, 1, sizeof(buf) - 1, p);
	buf[len] = '\0';
	assert_int_equal(pclose(p), 0);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	return strdup(buf);
}

static char *
genkey(const char *dir, const char *name, const char *args)
{
	char *path, *cmd;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	assert_true(asprintf(&cmd,
			"openssl genpkey %s -out '%s' 2>/dev/null && chmod 600 "
			"'%s'",
			args, path, path) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return path;
}

static struct keys *
keys_make(void)
{
	struct keys *k = calloc(1, sizeof(*k));
	char *cmd, *rsa_pub, *ed_pub, *text;

	k->dir = tmpdir_make();
	k->rsa = genkey(k->dir, "rsa.key",
	    "-algorithm RSA -pkeyopt rsa_keygen_bits:2048");
	k->ed = genkey(k->dir, "ed.key", "-algorithm ed25519");
	k->rsa1024 = genkey(k->dir, "rsa1024.key",
	    "-algorithm RSA -pkeyopt rsa_keygen_bits:1024");
	assert_true(asprintf(&cmd,
			"openssl pkey -in '%s' -pubout -outform DER | base64 "
			"-w0",
			k->rsa) > 0);
	rsa_pub = run_capture(cmd);
	free(cmd);
	assert_true(asprintf(&cmd,
			"openssl pkey -in '%s' -pubout -outform DER | tail -c "
			"32 | base64 -w0",
			k->ed) > 0);
	ed_pub = run_capture(cmd);
	free(cmd);
	assert_true(asprintf(&text,
			"rsa._domainkey.example.org v=DKIM1; k=rsa; p=%s\n"
			"ed._domainkey.example.org v=DKIM1; k=ed25519; p=%s\n",
			rsa_pub, ed_pub) > 0);
	k->txtfile = write_file(k->dir, "keys.txt", text);
	free(text);
	free(rsa_pub);
	free(ed_pub);
	return k;
}

static void
keys_free(struct keys *k)
{
	free(k->rsa);
	free(k->ed);
	free(k->rsa1024);
	free(k->txtfile);
	tmpdir_remove(k->dir);
	free(k);
}

static struct keys *K;

static int
setup_keys(void **state)
{
	(void)state;
	K = keys_make();
	return 0;
}

static int
teardown_keys(void **state)
{
	(void)state;
	keys_free(K);
	return 0;
}

struct fx {
	char *dir;
	struct mw_state *st;
	struct mw_conn *c;
	struct mw_reply r;
};

static struct fx *
fx_new(const char *conf, const char *rules)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mw_diag d;

	f->dir = tmpdir_make();
	mw_diag_init(&d);
	f->st = state_with_rules(f->dir, conf, rules ? rules : "# none\n", &d);
	if (f->st == NULL) {
		mw_diag_print(&d, stderr);
		fail();
	}
	mw_diag_free(&d);
	f->c = mw_conn_new(f->st);
	assert_non_null(f->c);
	return f;
}

static void
fx_free(struct fx *f)
{
	mw_conn_free(f->c);
	mw_state_unref(f->st);
	tmpdir_remove(f->dir);
	free(f);
}

static const char *const msg_headers[][2] = {
	{ "Received", " from client by mx (Postfix) with ESMTPSA id 4Q" },
	{ "From", " Alice <alice@example.org>" },
	{ "To", " bob@example.net" },
	{ "Subject", " a long subject\n\tfolded after a tab" },
	{ "Date", " Tue, 8 Dec 2026 10:00:00 +0000" },
	{ "Message-ID", " <1@example.org>" },
};
static const char msg_body[] = "Hello Bob,  \r\n\r\nline with trailing "
			       "blanks\t \r\n.dot line\r\n\r\n\r\n";

/* One message through every phase; returns the end-of-message action. */
static enum mw_action
send_message(struct fx *f, const char *client, const char *auth,
    const char *const (*extra)[2], size_t nextra)
{
	size_t i;

	assert_int_equal(mw_eng_connect(f->c, "client.example", client, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_helo(f->c, "client.example", &f->r),
	    MW_CONTINUE);
	if (auth != NULL)
		assert_true(mw_conn_set_macro(f->c, "{auth_authen}", auth));
	assert_int_equal(mw_eng_mail(f->c, "<alice@example.org>", NULL, &f->r),
	    MW_CONTINUE);
	assert_int_equal(mw_eng_rcpt(f->c, "<bob@example.net>", &f->r),
	    MW_CONTINUE);
	assert_true(mw_conn_set_macro(f->c, "i", "4QTEST"));
	assert_int_equal(mw_eng_data(f->c, &f->r), MW_CONTINUE);
	for (i = 0; i < nextra; i++)
		(void)mw_eng_header(f->c, extra[i][0], extra[i][1], &f->r);
	for (i = 0; i < sizeof(msg_headers) / sizeof(msg_headers[0]); i++)
		assert_int_equal(mw_eng_header(f->c, msg_headers[i][0],
				     msg_headers[i][1], &f->r),
		    MW_CONTINUE);
	if (mw_eng_eoh(f->c, &f->r) != MW_CONTINUE)
		return f->r.action;
	if (mw_eng_body(f->c, (const unsigned char *)msg_body,
		sizeof(msg_body) - 1, &f->r) != MW_CONTINUE)
		return f->r.action;
	return mw_eng_eom(f->c, &f->r);
}

/* The DKIM-Signature values among the changes, in order. */
static size_t
signatures(const struct fx *f, const char **out, size_t max)
{
	const struct mw_op *ops;
	size_t n, i, k = 0;

	ops = mw_conn_ops(f->c, &n);
	for (i = 0; i < n; i++)
		if (ops[i].kind == MW_OP_INSERT_HEADER &&
		    strcmp(ops[i].name, "DKIM-Signature") == 0 && k < max)
			out[k++] = ops[i].value;
	return k;
}

/*
 * verify -- the message as the MTA delivers it (signatures on top, LF
 * turned into CRLF) through libopendkim's verifier; the number of
 * signatures that pass.
 */
static int
verify(const char *const *sigs, size_t nsigs, const char *body)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM_STAT st;
	DKIM *h;
	DKIM_SIGINFO **si;
	int nsi = 0, pass = 0, i;
	unsigned method = DKIM_QUERY_FILE;
	size_t k;

	assert_non_null(lib);
	assert_int_equal(dkim_options(lib, DKIM_OP_SETOPT,
			     DKIM_OPTS_QUERYMETHOD, &method, sizeof(method)),
	    DKIM_STAT_OK);
	assert_int_equal(dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO,
			     K->txtfile, strlen(K->txtfile)),
	    DKIM_STAT_OK);
	h = dkim_verify(lib, (const unsigned char *)"t", NULL, &st);
	assert_non_null(h);
	for (k = 0; k < nsigs + sizeof(msg_headers) / sizeof(msg_headers[0]);
	     k++) {
		char hdr[4096], *o = hdr;
		const char *name, *v;

		if (k < nsigs) {
			name = "DKIM-Signature";
			v = sigs[k];
		} else {
			name = msg_headers[k - nsigs][0];
			v = msg_headers[k - nsigs][1];
		}
		o += sprintf(o, "%s: ", name);
		for (; *v != '\0'; v++) {
			if (*v == '\n')
				*o++ = '\r';
			*o++ = *v;
		}
		st = dkim_header(h, (u_char *)hdr, (size_t)(o - hdr));
		assert_int_equal(st, DKIM_STAT_OK);
	}
	assert_int_equal(dkim_eoh(h), DKIM_STAT_OK);
	(void)dkim_body(h, (u_char *)body, strlen(body));
	(void)dkim_eom(h, NULL);
	assert_int_equal(dkim_getsiglist(h, &si, &nsi), DKIM_STAT_OK);
	for (i = 0; i < nsi; i++)
		pass += DKIM_SIG_CHECK(si[i]);
	dkim_free(h);
	dkim_close(lib);
	return pass;
}

static char *
conf_keys(const char *keys, const char *more)
{
	char *c;

	assert_true(
	    asprintf(&c, "dns_servers = 127.0.0.1:1\ndkim_keys = %s\n%s", keys,
		more ? more : "") > 0);
	return c;
}

static void
authenticated_mail_gets_rsa_signature_that_verifies(void **state)
{
	char *keys, *conf;
	struct fx *f;
	const char *sigs[4];

	(void)state;
	assert_true(asprintf(&keys, "example.org:rsa:%s", K->rsa) > 0);
	conf = conf_keys(keys, NULL);
	f = fx_new(conf, NULL);
	assert_int_equal(send_message(f, "192.0.2.7", "alice", NULL, 0),
	    MW_ACCEPT);
	assert_int_equal(signatures(f, sigs, 4), 1);
	assert_non_null(strstr(sigs[0], "a=rsa-sha256"));
	assert_non_null(strstr(sigs[0], "c=relaxed/relaxed"));
	assert_non_null(strstr(sigs[0], "d=example.org"));
	assert_null(strstr(sigs[0], " l="));
	assert_null(strchr(sigs[0], '\r'));
	assert_int_equal(verify(sigs, 1, msg_body), 1);
	/* A changed body no longer verifies. */
	assert_int_equal(verify(sigs, 1, "Hello Bob, changed\r\n"), 0);
	fx_free(f);
	free(conf);
	free(keys);
}

static void
rsa_and_ed25519_give_two_signatures(void **state)
{
	char *keys, *conf;
	struct fx *f;
	const char *sigs[4];

	(void)state;
	assert_true(asprintf(&keys, "example.org:rsa:%s, example.org:ed:%s",
			K->rsa, K->ed) > 0);
	conf = conf_keys(keys, NULL);
	f = fx_new(conf, NULL);
	assert_int_equal(send_message(f, "192.0.2.7", "alice", NULL, 0),
	    MW_ACCEPT);
	assert_int_equal(signatures(f, sigs, 4), 2);
	assert_true(strstr(sigs[0], "a=ed25519-sha256") != NULL ||
	    strstr(sigs[1], "a=ed25519-sha256") != NULL);
	assert_int_equal(verify(sigs, 2, msg_body), 2);
	fx_free(f);
	free(conf);
	free(keys);
}

static void
inbound_mail_is_not_signed_and_gets_dkim_none(void **state)
{
	static const char *const forged[][2] = {
		{ "Authentication-Results", " mx.example.test; dkim=pass" },
		{ "Authentication-Results", " other.example; dkim=fail" },
		{ "Authentication-Results", " MX.example.test ; spf=pass" },
	};
	char *keys, *conf, *more;
	const struct mw_op *ops;
	const char *sigs[4];
	struct fx *f;
	size_t n, i, deleted = 0;

	(void)state;
	assert_true(asprintf(&keys, "example.org:rsa:%s", K->rsa) > 0);
	assert_true(asprintf(&more, "authserv_id = mx.example.test\n") > 0);
	conf = conf_keys(keys, more);
	f = fx_new(conf, NULL);
	assert_int_equal(send_message(f, "198.51.100.9", NULL, forged, 3),
	    MW_ACCEPT);
	assert_int_equal(signatures(f, sigs, 4), 0);
	ops = mw_conn_ops(f->c, &n);
	/* Ours (the 3rd, then the 1st) deleted first, highest index down. */
	for (i = 0; i < n; i++) {
		if (ops[i].kind != MW_OP_CHANGE_HEADER)
			continue;
		assert_null(ops[i].value);
		assert_int_equal(ops[i].index, deleted == 0 ? 3 : 1);
		deleted++;
	}
	assert_int_equal(deleted, 2);
	assert_int_equal(ops[n - 1].kind, MW_OP_INSERT_HEADER);
	assert_string_equal(ops[n - 1].name, "Authentication-Results");
	assert_string_equal(ops[n - 1].value, "mx.example.test; dkim=none");
	fx_free(f);
	free(conf);
	free(more);
	free(keys);
}

static void
keys_are_refused_for_the_documented_reasons(void **state)
{
	char *dir = tmpdir_make(), *conf;
	struct mw_diag d;
	struct mw_state *st;

	(void)state;
	/* Group-readable: the file and its mode are named. */
	assert_int_equal(chmod(K->rsa, 0640), 0);
	assert_true(
	    asprintf(&conf, "dkim_keys = example.org:rsa:%s\n", K->rsa) > 0);
	mw_diag_init(&d);
	st = state_from(dir, conf, &d);
	assert_null(st);
	assert_true(d.n >= 1);
	assert_non_null(strstr(d.v[0].text, K->rsa));
	assert_non_null(strstr(d.v[0].text, "mode 0640"));
	mw_diag_free(&d);
	free(conf);
	assert_int_equal(chmod(K->rsa, 0600), 0);

	/* 1024 bits: refused, unless allowed. */
	assert_true(asprintf(&conf, "dkim_keys = example.org:old:%s\n",
			K->rsa1024) > 0);
	mw_diag_init(&d);
	assert_null(state_from(dir, conf, &d));
	assert_non_null(strstr(d.v[0].text, "1024 bits"));
	mw_diag_free(&d);
	free(conf);
	assert_true(asprintf(&conf,
			"dkim_keys = example.org:old:%s\ndkim_min_rsa_bits = "
			"1024\n",
			K->rsa1024) > 0);
	mw_diag_init(&d);
	st = state_from(dir, conf, &d);
	assert_non_null(st);
	mw_state_unref(st);
	mw_diag_free(&d);
	free(conf);

	/* Missing file; and a file that is not a key. */
	mw_diag_init(&d);
	assert_null(state_from(dir,
	    "dkim_keys = example.org:x:/nonexistent/key.pem\n", &d));
	assert_non_null(strstr(d.v[0].text, "/nonexistent/key.pem"));
	mw_diag_free(&d);
	tmpdir_remove(dir);
}

static void
signing_table_and_rules_choose_keys(void **state)
{
	char *kt, *st_text, *conf, *dir = tmpdir_make();
	char *ktpath, *stpath;
	const char *sigs[4];
	struct mw_diag d;
	struct fx *f;

	(void)state;
	assert_true(asprintf(&kt,
			"# name  domain:selector:file\n"
			"k-rsa example.org:rsa:%s\nk-ed example.org:ed:%s\n",
			K->rsa, K->ed) > 0);
	ktpath = write_file(dir, "KeyTable", kt);
	assert_true(asprintf(&st_text, "*@example.org k-ed\n") > 0);
	stpath = write_file(dir, "SigningTable", st_text);
	assert_true(asprintf(&conf,
			"dns_servers = 127.0.0.1:1\ndkim_key_table = "
			"%s\ndkim_signing_table = refile:%s\n",
			ktpath, stpath) > 0);
	f = fx_new(conf, NULL);
	assert_int_equal(send_message(f, "192.0.2.7", "alice", NULL, 0),
	    MW_ACCEPT);
	assert_int_equal(signatures(f, sigs, 4), 1);
	assert_non_null(strstr(sigs[0], "s=ed;"));
	assert_int_equal(verify(sigs, 1, msg_body), 1);
	fx_free(f);

	/* A rule forces another key; a rule names a key that is not there. */
	f = fx_new(conf,
	    "rule pick at eoh when authenticated then dkim-sign \"k-rsa\"\n");
	assert_int_equal(send_message(f, "192.0.2.7", "alice", NULL, 0),
	    MW_ACCEPT);
	assert_int_equal(signatures(f, sigs, 4), 1);
	assert_non_null(strstr(sigs[0], "s=rsa;"));
	fx_free(f);
	f = fx_new(conf,
	    "rule never at mail when authenticated then "
	    "dkim-nosign\n");
	assert_int_equal(send_message(f, "192.0.2.7", "alice", NULL, 0),
	    MW_ACCEPT);
	assert_int_equal(signatures(f, sigs, 4), 0);
	fx_free(f);
	{
		char *rules = write_file(dir, "bad.rules",
		    "\n\nrule r at eoh when authenticated then dkim-sign "
		    "\"nope\"\n");
		char *text, *path;

		assert_true(
		    asprintf(&text, "user =\nrules = %s\n%s", rules, conf) > 0);
		path = write_file(dir, "bad.conf", text);
		mw_diag_init(&d);
		assert_null(mw_state_build(path, NULL, &d));
		char where[600];

		snprintf(where, sizeof(where), "%s:3:", rules);
		assert_int_equal(d.n, 1);
		assert_true(strncmp(d.v[0].text, where, strlen(where)) == 0);
		assert_non_null(strstr(d.v[0].text, "\"nope\""));
		mw_diag_free(&d);
		free(text);
		free(path);
		free(rules);
	}
	free(kt);
	free(st_text);
	free(conf);
	free(ktpath);
	free(stpath);
	tmpdir_remove(dir);
}

static void
late_change_of_a_signed_header_is_a_signing_failure(void **state)
{
	static const char rules[] = "rule tag at eom when authenticated then "
				    "prefix-subject \"[ext] \"\n";
	char *keys, *conf, *conf2;
	const char *sigs[4];
	struct fx *f;

	(void)state;
	assert_true(asprintf(&keys, "example.org:rsa:%s", K->rsa) > 0);
	conf = conf_keys(keys, NULL);
	f = fx_new(conf, rules);
	assert_int_equal(send_message(f, "192.0.2.7", "alice", NULL, 0),
	    MW_TEMPFAIL);
	assert_string_equal(f->r.code, "451");
	assert_string_equal(f->r.dsn, "4.7.0");
	fx_free(f);
	conf2 = conf_keys(keys, "dkim_on_key_error = accept\n");
	f = fx_new(conf2, rules);
	assert_int_equal(send_message(f, "192.0.2.7", "alice", NULL, 0),
	    MW_ACCEPT);
	assert_int_equal(signatures(f, sigs, 4), 0);
	fx_free(f);
	/* The same change at end of headers is signed as changed. */
	f = fx_new(conf,
	    "rule tag at eoh when authenticated then "
	    "prefix-subject \"[ext] \"\n");
	assert_int_equal(send_message(f, "192.0.2.7", "alice", NULL, 0),
	    MW_ACCEPT);
	assert_int_equal(signatures(f, sigs, 4), 1);
	fx_free(f);
	free(conf);
	free(conf2);
	free(keys);
}

static void
no_key_for_the_domain_leaves_mail_unsigned(void **state)
{
	char *keys, *conf;
	const char *sigs[4];
	struct fx *f;

	(void)state;
	assert_true(asprintf(&keys, "example.com:rsa:%s", K->rsa) > 0);
	conf = conf_keys(keys, NULL);
	f = fx_new(conf, NULL);
	assert_int_equal(send_message(f, "192.0.2.7", "alice", NULL, 0),
	    MW_ACCEPT);
	assert_int_equal(signatures(f, sigs, 4), 0);
	fx_free(f);
	free(conf);
	free(keys);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    authenticated_mail_gets_rsa_signature_that_verifies),
		cmocka_unit_test(rsa_and_ed25519_give_two_signatures),
		cmocka_unit_test(inbound_mail_is_not_signed_and_gets_dkim_none),
		cmocka_unit_test(keys_are_refused_for_the_documented_reasons),
		cmocka_unit_test(signing_table_and_rules_choose_keys),
		cmocka_unit_test(
		    late_change_of_a_signed_header_is_a_signing_failure),
		cmocka_unit_test(no_key_for_the_domain_leaves_mail_unsigned),
	};

	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
