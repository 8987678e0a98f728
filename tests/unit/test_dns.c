/*
 * test_dns.c -- the c-ares resolver against a real DNS server on loopback:
 * TXT and A lookups, NXDOMAIN and no-data, timeouts of a server that never
 * answers, server-list parsing, and libopendkim verifying a signature with
 * its key fetched through mw_dns_attach (and failing as a temporary error,
 * on time, when the server does not answer).
 *
 * The DNS server is dnsmasq (Debian package dnsmasq-base), started by the
 * test on 127.0.0.1 with records given on its command line; it answers
 * NXDOMAIN for other names under .test.  No query ever leaves the machine.
 * Without /usr/sbin/dnsmasq or openssl the tests that need them are
 * skipped.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <opendkim/dkim.h>

#include "mw_dns.h"

#define DNSMASQ  "/usr/sbin/dnsmasq"
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Slack allowed beyond a timeout: sanitizers and valgrind are slow. */
#define MARGIN_MS 1500

static struct {
	char dir[64];       /* temporary directory */
	char *key_pem;      /* RSA-2048 private key (PEM) */
	char *key_txt;      /* "v=DKIM1; k=rsa; p=..." */
	char long_txt[700]; /* a TXT record of 600 bytes, 3 strings */
	pid_t dnsmasq;      /* 0 when not running */
	char server[32];    /* "127.0.0.1:PORT" of dnsmasq */
	int silent_fd;      /* UDP socket that never answers */
	char silent[32];    /* "127.0.0.1:PORT" of silent_fd */
	char refused[32];   /* "127.0.0.1:PORT" with nothing bound */
	bool have_dnsmasq;
	bool have_key;
} env = { .silent_fd = -1 };

static long long
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *
read_all(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf != NULL)
		buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* A UDP socket bound to 127.0.0.1 on a free port; *port receives it. */
static int
udp_socket(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Generate the DKIM key pair with openssl into env.dir. */
static void
make_key(void)
{
	char cmd[512], path[128];
	char *b64;
	size_t n;

	snprintf(cmd, sizeof(cmd),
	    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
	    "-out %s/key.pem 2>/dev/null && "
	    "openssl pkey -in %s/key.pem -pubout -outform DER 2>/dev/null | "
	    "base64 -w0 > %s/pub.b64",
	    env.dir, env.dir, env.dir);
	if (system(cmd) != 0)
		return;
	snprintf(path, sizeof(path), "%s/key.pem", env.dir);
	env.key_pem = read_all(path);
	snprintf(path, sizeof(path), "%s/pub.b64", env.dir);
	b64 = read_all(path);
	if (env.key_pem == NULL || b64 == NULL || b64[0] == '\0') {
		free(b64);
		return;
	}
	n = strcspn(b64, "\r\n");
	b64[n] = '\0';
	if (asprintf(&env.key_txt, "v=DKIM1; k=rsa; p=%s", b64) < 0)
		env.key_txt = NULL;
	free(b64);
	env.have_key = env.key_txt != NULL;
}

/*
 * "--txt-record=NAME,S1,S2..." with text cut into strings of at most 255
 * bytes (dnsmasq takes the commas as string separators), as a DKIM key is
 * published.
 */
static char *
txt_option(const char *name, const char *text)
{
	size_t len = strlen(text), i;
	char *opt, *p;

	opt = malloc(
	    strlen("--txt-record=") + strlen(name) + len + len / 255 + 2);
	assert_non_null(opt);
	p = opt + sprintf(opt, "--txt-record=%s", name);
	for (i = 0; i < len; i += 255) {
		size_t n = len - i < 255 ? len - i : 255;

		*p++ = ',';
		memcpy(p, text + i, n);
		p += n;
	}
	*p = '\0';
	return opt;
}

/* Wait until dnsmasq answers, or it dies; true if it answers. */
static bool
dnsmasq_ready(void)
{
	char err[256];
	struct mw_dns *r = mw_dns_new(env.server, 200, err, sizeof(err));
	struct in_addr a[4];
	size_t n;
	int i, status;
	bool ok = false;

	assert_non_null(r);
	for (i = 0; i < 50; i++) {
		if (waitpid(env.dnsmasq, &status, WNOHANG) == env.dnsmasq) {
			env.dnsmasq = 0;
			break;
		}
		if (mw_dns_a(r, "2.0.0.127.bl.test", a, NELEM(a), &n, NULL, err,
			sizeof(err)) == MW_DNS_FOUND) {
			ok = true;
			break;
		}
		usleep(100000);
	}
	mw_dns_free(r);
	return ok;
}

static void
dnsmasq_stop(void)
{
	int status;

	if (env.dnsmasq > 0) {
		kill(env.dnsmasq, SIGTERM);
		waitpid(env.dnsmasq, &status, 0);
		env.dnsmasq = 0;
	}
}

static bool
dnsmasq_start(void)
{
	char port_opt[32], log_opt[96], *key_opt, *long_opt;
	int attempt, port, fd;
	bool ok = false;

	if (access(DNSMASQ, X_OK) != 0)
		return false;
	key_opt = txt_option("sel._domainkey.example.test",
	    env.have_key ? env.key_txt : "v=DKIM1; p=");
	long_opt = txt_option("long.example.test", env.long_txt);
	for (attempt = 0; attempt < 5 && !ok; attempt++) {
		/* A port that was free a moment ago; retried if taken. */
		fd = udp_socket(&port);
		assert_true(fd >= 0);
		close(fd);
		snprintf(port_opt, sizeof(port_opt), "--port=%d", port);
		snprintf(env.server, sizeof(env.server), "127.0.0.1:%d", port);
		snprintf(log_opt, sizeof(log_opt),
		    "--log-facility=%s/dnsmasq.log", env.dir);
		env.dnsmasq = fork();
		assert_true(env.dnsmasq >= 0);
		if (env.dnsmasq == 0) {
			char *argv[] = { DNSMASQ, "--keep-in-foreground",
				"--conf-file=/dev/null", "--no-resolv",
				"--no-hosts", "--bind-interfaces",
				"--listen-address=127.0.0.1", port_opt,
				"--pid-file=", "--user=root", "--local=/test/",
				"--local-ttl=300", log_opt,
				"--host-record=2.0.0.127.bl.test,127.0.0.2",
				"--host-record=multi.bl.test,127.0.0.2",
				"--host-record=multi.bl.test,127.0.0.4",
				"--txt-record=short.example.test,hello",
				"--txt-record=two.example.test,one",
				"--txt-record=two.example.test,two",
				/* Raw records: "a\0b"; a string longer than
				 * its record; an A record of 3 bytes. */
				"--dns-rr=nul.example.test,16,03610062",
				"--dns-rr=bad.example.test,16,056162",
				"--dns-rr=bad.bl.test,1,7f0000", key_opt,
				long_opt, NULL };

			execv(DNSMASQ, argv);
			_exit(127);
		}
		ok = dnsmasq_ready();
		if (!ok)
			dnsmasq_stop();
	}
	free(key_opt);
	free(long_opt);
	return ok;
}

static int
group_setup(void **state)
{
	char tmpl[] = "/tmp/mw-dns-XXXXXX";
	int port;
	size_t i;

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	snprintf(env.dir, sizeof(env.dir), "%s", tmpl);
	for (i = 0; i < 600; i++)
		env.long_txt[i] = (char)('a' + i % 26);
	env.long_txt[600] = '\0';
	make_key();
	env.have_dnsmasq = dnsmasq_start();

	env.silent_fd = udp_socket(&port);
	assert_true(env.silent_fd >= 0);
	snprintf(env.silent, sizeof(env.silent), "127.0.0.1:%d", port);
	/* Bound, then closed: queries there are refused (ICMP). */
	close(udp_socket(&port));
	snprintf(env.refused, sizeof(env.refused), "127.0.0.1:%d", port);
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	dnsmasq_stop();
	if (env.silent_fd >= 0)
		close(env.silent_fd);
	free(env.key_pem);
	free(env.key_txt);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env.dir);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

#define NEED_DNSMASQ() \
	do { \
		if (!env.have_dnsmasq) { \
			print_message("dnsmasq not available: skipped\n"); \
			skip(); \
		} \
	} while (0)

#define NEED_KEY() \
	do { \
		NEED_DNSMASQ(); \
		if (!env.have_key) { \
			print_message("openssl failed: skipped\n"); \
			skip(); \
		} \
	} while (0)

static struct mw_dns *
resolver(const char *servers, unsigned timeout_ms)
{
	char err[256];
	struct mw_dns *r = mw_dns_new(servers, timeout_ms, err, sizeof(err));

	if (r == NULL)
		fail_msg("mw_dns_new(\"%s\"): %s", servers, err);
	return r;
}

/* Server lists. */

static const struct {
	const char *text, *canon;
} good_servers[] = {
	{ "127.0.0.1", "127.0.0.1:53" },
	{ "127.0.0.1:5353", "127.0.0.1:5353" },
	{ "::1", "[::1]:53" },
	{ "[::1]", "[::1]:53" },
	{ "[2001:DB8::1]:5353", "[2001:db8::1]:5353" },
	{ "::ffff:192.0.2.1", "[::ffff:192.0.2.1]:53" },
	{ "192.0.2.1, 192.0.2.2:54", "192.0.2.1:53 192.0.2.2:54" },
	{ "  192.0.2.1\t192.0.2.2 ,,", "192.0.2.1:53 192.0.2.2:53" },
	{ "127.0.0.1:65535", "127.0.0.1:65535" },
};

static void
test_servers_good(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(good_servers); i++) {
		struct mw_dns *r = resolver(good_servers[i].text, 1000);

		if (strcmp(mw_dns_servers(r), good_servers[i].canon) != 0)
			fail_msg("'%s': got '%s', want '%s'",
			    good_servers[i].text, mw_dns_servers(r),
			    good_servers[i].canon);
		assert_int_equal(mw_dns_timeout(r), 1000);
		mw_dns_free(r);
	}
}

static const struct {
	const char *text, *err;
} bad_servers[] = {
	{ "1.2.3.x", "dns_servers: '1.2.3.x': not an IP address" },
	{ "ns.example.com",
	    "dns_servers: 'ns.example.com': not an IP address" },
	{ "1.2.3", "dns_servers: '1.2.3': not an IP address" },
	{ "1.2.3.4.5", "dns_servers: '1.2.3.4.5': not an IP address" },
	{ "1.2.3.4:0",
	    "dns_servers: '1.2.3.4:0': bad port (expected 1 to 65535)" },
	{ "1.2.3.4:65536",
	    "dns_servers: '1.2.3.4:65536': bad port (expected 1 to 65535)" },
	{ "1.2.3.4:",
	    "dns_servers: '1.2.3.4:': bad port (expected 1 to 65535)" },
	{ "1.2.3.4:+53",
	    "dns_servers: '1.2.3.4:+53': bad port (expected 1 to 65535)" },
	{ "1.2.3.4:53x",
	    "dns_servers: '1.2.3.4:53x': bad port (expected 1 to 65535)" },
	{ "127.0.0.1 1.2.3.x", "dns_servers: '1.2.3.x': not an IP address" },
	{ "[::1", "dns_servers: '[::1': missing ']'" },
	{ "[::1]x", "dns_servers: '[::1]x': junk after ']'" },
	{ "[1.2.3.4]", "dns_servers: '[1.2.3.4]': not an IPv6 address" },
	{ "[::1]:99999",
	    "dns_servers: '[::1]:99999': bad port (expected 1 to 65535)" },
	{ "fe80::1%eth0", "dns_servers: 'fe80::1%eth0': not an IP address" },
	{ "1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 "
	  "1.1.1.9 1.1.1.10 1.1.1.11 1.1.1.12 1.1.1.13 1.1.1.14 1.1.1.15 "
	  "1.1.1.16 1.1.1.17",
	    "dns_servers: more than 16 servers" },
};

static void
test_servers_bad(void **state)
{
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad_servers); i++) {
		struct mw_dns *r =
		    mw_dns_new(bad_servers[i].text, 1000, err, sizeof(err));

		if (r != NULL)
			fail_msg("'%s' accepted", bad_servers[i].text);
		if (strcmp(err, bad_servers[i].err) != 0)
			fail_msg("'%s': got \"%s\", want \"%s\"",
			    bad_servers[i].text, err, bad_servers[i].err);
	}
	/* A long entry is reported shortened, not overflowing anything. */
	{
		char big[300];

		memset(big, '1', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_null(mw_dns_new(big, 1000, err, sizeof(err)));
		assert_non_null(strstr(err, "not an IP address"));
		/* A short err buffer is truncated safely. */
		assert_null(mw_dns_new("1.2.3.x", 1000, err, 8));
		assert_int_equal(strlen(err), 7);
		assert_null(mw_dns_new("1.2.3.x", 1000, NULL, 0));
	}
}

static void
test_timeout_bounds(void **state)
{
	char err[256];
	struct mw_dns *r;

	(void)state;
	assert_null(mw_dns_new("127.0.0.1", 0, err, sizeof(err)));
	assert_string_equal(err,
	    "dns_timeout: 0 ms is out of range (1 to 600000)");
	assert_null(mw_dns_new("127.0.0.1", 600001, err, sizeof(err)));
	r = resolver("127.0.0.1", 600000);
	mw_dns_free(r);
	r = resolver("127.0.0.1", 1);
	mw_dns_free(r);
}

/* The system resolver: read /etc/resolv.conf (no query is sent). */
static void
test_servers_system(void **state)
{
	char err[256];
	struct mw_dns *r;

	(void)state;
	r = mw_dns_new(NULL, 5000, err, sizeof(err));
	if (r == NULL)
		fail_msg("mw_dns_new(NULL): %s", err);
	assert_true(strlen(mw_dns_servers(r)) > 0);
	mw_dns_free(r);
	r = mw_dns_new("  ", 5000, err, sizeof(err));
	assert_non_null(r);
	mw_dns_free(r);
}

/* TXT lookups. */

static void
test_txt_found(void **state)
{
	struct mw_dns *r;
	char out[1024], err[256];
	unsigned ttl = 0;

	(void)state;
	NEED_DNSMASQ();
	r = resolver(env.server, 2000);
	assert_int_equal(mw_dns_txt(r, "short.example.test", out, sizeof(out),
			     &ttl, err, sizeof(err)),
	    MW_DNS_FOUND);
	assert_string_equal(out, "hello");
	assert_int_equal(ttl, 300);
	assert_string_equal(err, "");

	/*
	 * 600 bytes in three strings, concatenated.  The answer is over 512
	 * bytes, so it comes truncated over UDP and c-ares asks again over
	 * TCP.  A trailing dot is accepted.
	 */
	assert_int_equal(mw_dns_txt(r, "long.example.test.", out, sizeof(out),
			     NULL, err, sizeof(err)),
	    MW_DNS_FOUND);
	assert_string_equal(out, env.long_txt);
	mw_dns_free(r);
}

static void
test_txt_buffer_bounds(void **state)
{
	struct mw_dns *r;
	char out[1024], err[256];
	unsigned ttl = 7;

	(void)state;
	NEED_DNSMASQ();
	r = resolver(env.server, 2000);
	/* Exactly enough room: 600 bytes and the NUL. */
	assert_int_equal(mw_dns_txt(r, "long.example.test", out, 601, &ttl, err,
			     sizeof(err)),
	    MW_DNS_FOUND);
	assert_int_equal(strlen(out), 600);
	/* One byte short: an error, and nothing half-written. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(mw_dns_txt(r, "long.example.test", out, 600, &ttl, err,
			     sizeof(err)),
	    MW_DNS_ERROR);
	assert_string_equal(out, "");
	assert_int_equal(ttl, 0);
	assert_string_equal(err,
	    "long.example.test: TXT record of 600 bytes does not fit in 600 "
	    "bytes");
	assert_int_equal(mw_dns_txt(r, "short.example.test", out, 5, NULL, err,
			     sizeof(err)),
	    MW_DNS_ERROR);
	assert_int_equal(mw_dns_txt(r, "short.example.test", out, 0, NULL, err,
			     sizeof(err)),
	    MW_DNS_ERROR);
	mw_dns_free(r);
}

static void
test_txt_not_found(void **state)
{
	struct mw_dns *r;
	char out[64], err[256];

	(void)state;
	NEED_DNSMASQ();
	r = resolver(env.server, 2000);
	assert_int_equal(mw_dns_txt(r, "nothing.example.test", out, sizeof(out),
			     NULL, err, sizeof(err)),
	    MW_DNS_NOTFOUND);
	assert_string_equal(err,
	    "nothing.example.test: no such domain (NXDOMAIN)");
	assert_string_equal(out, "");
	/* The name exists with an A record only: no data. */
	assert_int_equal(mw_dns_txt(r, "2.0.0.127.bl.test", out, sizeof(out),
			     NULL, err, sizeof(err)),
	    MW_DNS_NOTFOUND);
	assert_string_equal(err, "2.0.0.127.bl.test: no record of that type");
	mw_dns_free(r);
}

static void
test_txt_unusable(void **state)
{
	struct mw_dns *r;
	char out[64], err[256], name[300];

	(void)state;
	NEED_DNSMASQ();
	r = resolver(env.server, 2000);
	assert_int_equal(mw_dns_txt(r, "two.example.test", out, sizeof(out),
			     NULL, err, sizeof(err)),
	    MW_DNS_ERROR);
	assert_string_equal(err, "two.example.test: more than one TXT record");
	assert_int_equal(mw_dns_txt(r, "nul.example.test", out, sizeof(out),
			     NULL, err, sizeof(err)),
	    MW_DNS_ERROR);
	assert_string_equal(err,
	    "nul.example.test: TXT record contains a NUL byte");
	/* A broken answer is the server's problem: temporary. */
	assert_int_equal(mw_dns_txt(r, "bad.example.test", out, sizeof(out),
			     NULL, err, sizeof(err)),
	    MW_DNS_TEMPFAIL);
	assert_string_equal(err, "bad.example.test: malformed TXT record");
	/* Invalid names are refused before any query. */
	assert_int_equal(mw_dns_txt(r, "", out, sizeof(out), NULL, err,
			     sizeof(err)),
	    MW_DNS_ERROR);
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(mw_dns_txt(r, name, out, sizeof(out), NULL, err,
			     sizeof(err)),
	    MW_DNS_ERROR);
	/* A label over 63 bytes: c-ares refuses to encode it. */
	name[100] = '\0';
	assert_int_equal(mw_dns_txt(r, name, out, sizeof(out), NULL, err,
			     sizeof(err)),
	    MW_DNS_ERROR);
	mw_dns_free(r);
}

/* A lookups, as for a DNS blocklist. */

static void
test_a_found(void **state)
{
	struct mw_dns *r;
	struct in_addr a[4];
	char err[256], ip[INET_ADDRSTRLEN];
	size_t n = 99;
	unsigned ttl = 0;

	(void)state;
	NEED_DNSMASQ();
	r = resolver(env.server, 2000);
	assert_int_equal(mw_dns_a(r, "2.0.0.127.bl.test", a, NELEM(a), &n, &ttl,
			     err, sizeof(err)),
	    MW_DNS_FOUND);
	assert_int_equal(n, 1);
	assert_int_equal(ttl, 300);
	inet_ntop(AF_INET, &a[0], ip, sizeof(ip));
	assert_string_equal(ip, "127.0.0.2");

	assert_int_equal(mw_dns_a(r, "multi.bl.test", a, NELEM(a), &n, &ttl,
			     err, sizeof(err)),
	    MW_DNS_FOUND);
	assert_int_equal(n, 2);
	assert_true(a[0].s_addr != a[1].s_addr);
	assert_true(a[0].s_addr == htonl(0x7f000002) ||
	    a[0].s_addr == htonl(0x7f000004));
	assert_true(a[1].s_addr == htonl(0x7f000002) ||
	    a[1].s_addr == htonl(0x7f000004));
	/* More records than room: an error, not a shortened list. */
	assert_int_equal(mw_dns_a(r, "multi.bl.test", a, 1, &n, &ttl, err,
			     sizeof(err)),
	    MW_DNS_ERROR);
	assert_int_equal(n, 0);
	assert_string_equal(err, "multi.bl.test: more than 1 A records");
	mw_dns_free(r);
}

static void
test_a_not_found(void **state)
{
	struct mw_dns *r;
	struct in_addr a[4];
	char err[256];
	size_t n = 99;

	(void)state;
	NEED_DNSMASQ();
	r = resolver(env.server, 2000);
	assert_int_equal(mw_dns_a(r, "3.0.0.127.bl.test", a, NELEM(a), &n, NULL,
			     err, sizeof(err)),
	    MW_DNS_NOTFOUND);
	assert_int_equal(n, 0);
	assert_int_equal(mw_dns_a(r, "short.example.test", a, NELEM(a), &n,
			     NULL, err, sizeof(err)),
	    MW_DNS_NOTFOUND);
	assert_int_equal(mw_dns_a(r, "bad.bl.test", a, NELEM(a), &n, NULL, err,
			     sizeof(err)),
	    MW_DNS_TEMPFAIL);
	assert_string_equal(err, "bad.bl.test: malformed A record");
	mw_dns_free(r);
}

/* The second server answers when the first does not. */
static void
test_fallback_server(void **state)
{
	struct mw_dns *r;
	struct in_addr a[4];
	char list[80], err[256];
	size_t n;
	long long t0;

	(void)state;
	NEED_DNSMASQ();
	snprintf(list, sizeof(list), "%s %s", env.silent, env.server);
	r = resolver(list, 3000);
	t0 = ms_now();
	assert_int_equal(mw_dns_a(r, "2.0.0.127.bl.test", a, NELEM(a), &n, NULL,
			     err, sizeof(err)),
	    MW_DNS_FOUND);
	assert_true(ms_now() - t0 < 3000 + MARGIN_MS);
	mw_dns_free(r);
}

/* Failures are temporary, and bounded by the timeout. */

static void
test_silent_server_times_out(void **state)
{
	struct mw_dns *r;
	struct in_addr a[4];
	char out[64], err[256];
	size_t n;
	unsigned ttl = 9;
	long long t0, dt;

	(void)state;
	r = resolver(env.silent, 300);
	t0 = ms_now();
	assert_int_equal(mw_dns_txt(r, "sel._domainkey.example.test", out,
			     sizeof(out), &ttl, err, sizeof(err)),
	    MW_DNS_TEMPFAIL);
	dt = ms_now() - t0;
	assert_true(dt < 300 + MARGIN_MS);
	assert_int_equal(ttl, 0);
	assert_string_equal(err,
	    "sel._domainkey.example.test: no answer within 300 ms");
	t0 = ms_now();
	assert_int_equal(mw_dns_a(r, "2.0.0.127.bl.test", a, NELEM(a), &n, NULL,
			     err, sizeof(err)),
	    MW_DNS_TEMPFAIL);
	assert_true(ms_now() - t0 < 300 + MARGIN_MS);
	mw_dns_free(r);
}

static void
test_refused_server(void **state)
{
	struct mw_dns *r;
	char out[64], err[256];
	long long t0;

	(void)state;
	r = resolver(env.refused, 2000);
	t0 = ms_now();
	assert_int_equal(mw_dns_txt(r, "short.example.test", out, sizeof(out),
			     NULL, err, sizeof(err)),
	    MW_DNS_TEMPFAIL);
	assert_true(ms_now() - t0 < 2000 + MARGIN_MS);
	mw_dns_free(r);
}

/* dnsmasq refuses names outside its --local domain: a server error. */
static void
test_refused_answer(void **state)
{
	struct mw_dns *r;
	char out[64], err[256];

	(void)state;
	NEED_DNSMASQ();
	r = resolver(env.server, 2000);
	assert_int_equal(mw_dns_txt(r, "example.invalid", out, sizeof(out),
			     NULL, err, sizeof(err)),
	    MW_DNS_TEMPFAIL);
	mw_dns_free(r);
}

/* Many threads on one resolver. */

struct worker {
	struct mw_dns *r;
	int ok;
};

static void *
txt_worker(void *arg)
{
	struct worker *w = arg;
	char out[1024], err[256];
	int i;

	for (i = 0; i < 25; i++) {
		if (mw_dns_txt(w->r, "long.example.test", out, sizeof(out),
			NULL, err, sizeof(err)) == MW_DNS_FOUND &&
		    strcmp(out, env.long_txt) == 0)
			w->ok++;
	}
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t t[8];
	struct worker w[8];
	struct mw_dns *r;
	size_t i;

	(void)state;
	NEED_DNSMASQ();
	r = resolver(env.server, 5000);
	for (i = 0; i < NELEM(t); i++) {
		w[i].r = r;
		w[i].ok = 0;
		assert_int_equal(pthread_create(&t[i], NULL, txt_worker, &w[i]),
		    0);
	}
	for (i = 0; i < NELEM(t); i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ok, 25);
	}
	mw_dns_free(r);
}

/* libopendkim through mw_dns_attach. */

static const char *const msg_headers[] = {
	"From: Alice <alice@example.test>",
	"To: bob@example.org",
	"Subject: resolver test",
	"Date: Mon, 01 Jan 2024 00:00:00 +0000",
	"Message-ID: <dns-test-1@example.test>",
};
static const char msg_body[] = "Hello Bob,\r\n\r\nthe key is in DNS.\r\n";

/* Sign the test message; returns the DKIM-Signature header (malloc'd). */
static char *
sign_message(const char *selector)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM_STAT st;
	DKIM *d;
	unsigned char *sig = NULL;
	size_t len = 0, i;
	char *hdr;

	assert_non_null(lib);
	d = dkim_sign(lib, (const unsigned char *)"sign", NULL,
	    (dkim_sigkey_t)env.key_pem, (const unsigned char *)selector,
	    (const unsigned char *)"example.test", DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
	assert_non_null(d);
	for (i = 0; i < NELEM(msg_headers); i++)
		assert_int_equal(dkim_header(d, (unsigned char *)msg_headers[i],
				     strlen(msg_headers[i])),
		    DKIM_STAT_OK);
	assert_int_equal(dkim_eoh(d), DKIM_STAT_OK);
	assert_int_equal(dkim_body(d, (unsigned char *)msg_body,
			     strlen(msg_body)),
	    DKIM_STAT_OK);
	assert_int_equal(dkim_eom(d, NULL), DKIM_STAT_OK);
	assert_int_equal(dkim_getsighdr_d(d, strlen("DKIM-Signature: "), &sig,
			     &len),
	    DKIM_STAT_OK);
	assert_true(asprintf(&hdr, "DKIM-Signature: %s", sig) > 0);
	dkim_free(d);
	dkim_close(lib);
	return hdr;
}

struct verdict {
	DKIM_STAT eom;
	int sigerror;
	bool passed;
	long long ms;
};

/* Verify the signed test message with lib; the verdict of its signature. */
static struct verdict
verify_message(DKIM_LIB *lib, const char *sighdr)
{
	struct verdict v = { 0, 0, false, 0 };
	DKIM_SIGINFO *sig;
	DKIM_STAT st;
	DKIM *d;
	size_t i;
	long long t0;

	d = dkim_verify(lib, (const unsigned char *)"verify", NULL, &st);
	assert_non_null(d);
	assert_int_equal(dkim_header(d, (unsigned char *)sighdr,
			     strlen(sighdr)),
	    DKIM_STAT_OK);
	for (i = 0; i < NELEM(msg_headers); i++)
		assert_int_equal(dkim_header(d, (unsigned char *)msg_headers[i],
				     strlen(msg_headers[i])),
		    DKIM_STAT_OK);
	t0 = ms_now();
	assert_int_equal(dkim_eoh(d), DKIM_STAT_OK);
	assert_int_equal(dkim_body(d, (unsigned char *)msg_body,
			     strlen(msg_body)),
	    DKIM_STAT_OK);
	v.eom = dkim_eom(d, NULL);
	v.ms = ms_now() - t0;
	sig = dkim_getsignature(d);
	assert_non_null(sig);
	v.sigerror = dkim_sig_geterror(sig);
	v.passed = (dkim_sig_getflags(sig) & DKIM_SIGFLAG_PASSED) != 0 &&
	    dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH;
	dkim_free(d);
	return v;
}

/* A library handle whose resolver is servers, timeout_ms. */
static DKIM_LIB *
dkim_lib_with(const char *servers, unsigned timeout_ms)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	struct mw_dns *r = resolver(servers, timeout_ms);
	char err[256];

	assert_non_null(lib);
	if (mw_dns_attach(lib, r, err, sizeof(err)) != 0)
		fail_msg("mw_dns_attach: %s", err);
	/* The library holds its own reference now. */
	mw_dns_free(r);
	return lib;
}

static void
test_dkim_pass(void **state)
{
	DKIM_LIB *lib;
	struct verdict v;
	char *sighdr;

	(void)state;
	NEED_KEY();
	/* The published key is longer than one TXT string. */
	assert_true(strlen(env.key_txt) > 255);
	sighdr = sign_message("sel");
	lib = dkim_lib_with(env.server, 2000);
	v = verify_message(lib, sighdr);
	assert_int_equal(v.eom, DKIM_STAT_OK);
	assert_int_equal(v.sigerror, DKIM_SIGERROR_OK);
	assert_true(v.passed);
	dkim_close(lib);
	free(sighdr);
}

static void
test_dkim_nokey(void **state)
{
	DKIM_LIB *lib;
	struct verdict v;
	char *sighdr;

	(void)state;
	NEED_KEY();
	sighdr = sign_message("missing");
	lib = dkim_lib_with(env.server, 2000);
	v = verify_message(lib, sighdr);
	assert_int_equal(v.eom, DKIM_STAT_NOKEY);
	assert_int_equal(v.sigerror, DKIM_SIGERROR_NOKEY);
	assert_false(v.passed);
	dkim_close(lib);
	free(sighdr);
}

static void
test_dkim_timeout(void **state)
{
	DKIM_LIB *lib;
	struct verdict v;
	char *sighdr;

	(void)state;
	NEED_KEY();
	sighdr = sign_message("sel");
	lib = dkim_lib_with(env.silent, 400);
	v = verify_message(lib, sighdr);
	assert_int_equal(v.eom, DKIM_STAT_KEYFAIL);
	/* KEYFAIL: a DNS failure, reported as temperror. */
	assert_int_equal(v.sigerror, DKIM_SIGERROR_KEYFAIL);
	assert_false(v.passed);
	assert_true(v.ms < 400 + MARGIN_MS);
	dkim_close(lib);
	free(sighdr);
}

/* libopendkim's shorter DKIM_OPTS_TIMEOUT also ends the wait. */
static void
test_dkim_library_timeout(void **state)
{
	DKIM_LIB *lib;
	struct verdict v;
	char *sighdr;
	unsigned int secs = 1;

	(void)state;
	NEED_KEY();
	sighdr = sign_message("sel");
	lib = dkim_lib_with(env.silent, 60000);
	assert_int_equal(dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_TIMEOUT,
			     &secs, sizeof(secs)),
	    DKIM_STAT_OK);
	v = verify_message(lib, sighdr);
	assert_int_equal(v.sigerror, DKIM_SIGERROR_KEYFAIL);
	assert_true(v.ms < 1000 + MARGIN_MS);
	dkim_close(lib);
	free(sighdr);
}

/*
 * Attaching after libopendkim started its own resolver shuts that one
 * down (valgrind and LeakSanitizer see the difference), and the library's
 * resolver controls are refused afterwards.
 */
static void
test_dkim_attach_after_init(void **state)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	struct mw_dns *r = resolver("127.0.0.1", 1000);
	char err[256];

	(void)state;
	assert_non_null(lib);
	assert_int_equal(dkim_dns_init(lib), DKIM_DNS_SUCCESS);
	assert_int_equal(mw_dns_attach(lib, r, err, sizeof(err)), 0);
	assert_int_not_equal(dkim_dns_nslist(lib, "127.0.0.2"),
	    DKIM_DNS_SUCCESS);
	assert_int_not_equal(dkim_dns_config(lib, "x"), DKIM_DNS_SUCCESS);
	assert_int_equal(mw_dns_attach(NULL, r, err, sizeof(err)), -1);
	assert_int_equal(mw_dns_attach(lib, NULL, err, sizeof(err)), -1);
	/* The caller's reference outlives the library's. */
	dkim_close(lib);
	assert_string_equal(mw_dns_servers(r), "127.0.0.1:53");
	mw_dns_free(r);
}

/* Verification from several threads at once on one library handle. */

struct dkim_worker {
	DKIM_LIB *lib;
	const char *sighdr;
	int ok;
};

static void *
dkim_worker(void *arg)
{
	struct dkim_worker *w = arg;
	int i;

	for (i = 0; i < 5; i++) {
		struct verdict v = verify_message(w->lib, w->sighdr);

		if (v.eom == DKIM_STAT_OK && v.passed)
			w->ok++;
	}
	return NULL;
}

static void
test_dkim_threads(void **state)
{
	pthread_t t[4];
	struct dkim_worker w[4];
	DKIM_LIB *lib;
	char *sighdr;
	size_t i;

	(void)state;
	NEED_KEY();
	sighdr = sign_message("sel");
	lib = dkim_lib_with(env.server, 5000);
	for (i = 0; i < NELEM(t); i++) {
		w[i].lib = lib;
		w[i].sighdr = sighdr;
		w[i].ok = 0;
		assert_int_equal(pthread_create(&t[i], NULL, dkim_worker,
				     &w[i]),
		    0);
	}
	for (i = 0; i < NELEM(t); i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ok, 5);
	}
	dkim_close(lib);
	free(sighdr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_servers_good),
		cmocka_unit_test(test_servers_bad),
		cmocka_unit_test(test_timeout_bounds),
		cmocka_unit_test(test_servers_system),
		cmocka_unit_test(test_txt_found),
		cmocka_unit_test(test_txt_buffer_bounds),
		cmocka_unit_test(test_txt_not_found),
		cmocka_unit_test(test_txt_unusable),
		cmocka_unit_test(test_a_found),
		cmocka_unit_test(test_a_not_found),
		cmocka_unit_test(test_fallback_server),
		cmocka_unit_test(test_silent_server_times_out),
		cmocka_unit_test(test_refused_server),
		cmocka_unit_test(test_refused_answer),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_dkim_pass),
		cmocka_unit_test(test_dkim_nokey),
		cmocka_unit_test(test_dkim_timeout),
		cmocka_unit_test(test_dkim_library_timeout),
		cmocka_unit_test(test_dkim_attach_after_init),
		cmocka_unit_test(test_dkim_threads),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
