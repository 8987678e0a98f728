/*
 * test_dnsbl.c -- DNS blocklist lookups against real DNS servers on
 * loopback: listed, not listed and multi-code answers for IPv4, IPv6 and
 * domain subjects; queries sent in parallel (a silent server costs one
 * timeout, not one per query, and answers that each take 400 ms come back
 * together); the budget; the cache (answers kept with their TTL, served
 * with the server gone, expired, bounded); invalid names refused without a
 * query; unusable answers (SERVFAIL, REFUSED, addresses outside 127/8,
 * malformed packets) reported as no answer and never cached.
 *
 * The servers:
 *  - dnsmasq (Debian package dnsmasq-base), authoritative for bl.test with
 *    the records given on its command line, so that unlisted names get
 *    NXDOMAIN with the zone's SOA (negative TTL) and names outside the
 *    zone get REFUSED;
 *  - a tiny responder thread of this test that answers every query the
 *    way the test asks (after a delay, SERVFAIL, many records, ...) and
 *    counts them;
 *  - a UDP socket that never answers, whose queued packets the tests
 *    count to see what was sent.
 * No query ever leaves the machine.  Without /usr/sbin/dnsmasq the tests
 * that need it are skipped.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#include "mw_dns.h"
#include "mw_dnsbl.h"

#define DNSMASQ  "/usr/sbin/dnsmasq"
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Slack allowed beyond a timeout: sanitizers and valgrind are slow. */
#define MARGIN_MS 1500

/* "2001:db8::1" reversed in bl.test. */
#define V6_NAME \
	"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2." \
	"bl.test"

/* A dnsmasq instance. */
struct dm {
	pid_t pid; /* 0 when not running */
	char server[32];
};

/* What the responder thread answers. */
enum rmode {
	R_LISTED,    /* A 127.0.0.2 with the TTL asked */
	R_SERVFAIL,  /* rcode 2 */
	R_NXDOMAIN,  /* NXDOMAIN without an SOA */
	R_NXSOA,     /* NXDOMAIN, SOA with TTL 3600 and MINIMUM 1 */
	R_MANY,      /* ten A records 127.0.0.1 .. 127.0.0.10 */
	R_MALFORMED, /* claims an answer record it does not carry */
};

static struct {
	char dir[64];
	struct dm main;  /* TTL 300 */
	struct dm extra; /* started and stopped by a test */
	bool have_dnsmasq;
	int silent_fd;    /* UDP socket that never answers */
	char silent[32];  /* "127.0.0.1:PORT" of silent_fd */
	char refused[32]; /* "127.0.0.1:PORT" with nothing bound */
	/* The responder. */
	int resp_fd;
	char resp[32];
	pthread_t resp_thread;
	atomic_bool resp_stop;
	atomic_int resp_mode;
	atomic_uint resp_delay_ms;
	atomic_uint resp_ttl;
	atomic_uint resp_packets;
} env = { .silent_fd = -1, .resp_fd = -1 };

static long long
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/*
 * The query name of a DNS query packet, as text ("a.b.test"); false if
 * the packet is not one.  The question ends at *qend.
 */
static bool
query_name(const unsigned char *pkt, size_t len, char *out, size_t size,
    size_t *qend)
{
	size_t p = 12, o = 0;

	if (len < 12)
		return false;
	while (p < len && pkt[p] != 0) {
		size_t n = pkt[p];

		if (n > 63 || p + 1 + n >= len || o + n + 2 > size)
			return false;
		if (o > 0)
			out[o++] = '.';
		memcpy(out + o, pkt + p + 1, n);
		o += n;
		p += 1 + n;
	}
	if (p + 5 > len)
		return false;
	out[o] = '\0';
	*qend = p + 5;
	return true;
}

/* Queued packets on the silent socket: how many, how many names. */
static void
drain_silent(unsigned *packets, unsigned *names)
{
	static char seen[64][256];
	unsigned char pkt[512];
	char name[256];
	size_t qend;
	unsigned n = 0, k = 0, i;
	ssize_t len;

	while (
	    (len = recv(env.silent_fd, pkt, sizeof(pkt), MSG_DONTWAIT)) > 0) {
		n++;
		if (!query_name(pkt, (size_t)len, name, sizeof(name), &qend))
			continue;
		for (i = 0; i < k && strcmp(seen[i], name) != 0; i++)
			;
		if (i == k && k < NELEM(seen))
			snprintf(seen[k++], sizeof(seen[0]), "%s", name);
	}
	if (packets != NULL)
		*packets = n;
	if (names != NULL)
		*names = k;
}

/* The responder. */

static void
put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void
put32(unsigned char *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

/* One answer record (A, owner the query name) at p; returns its size. */
static size_t
put_a(unsigned char *p, uint32_t ttl, uint32_t addr)
{
	put16(p, 0xc00c);
	put16(p + 2, 1);
	put16(p + 4, 1);
	put32(p + 6, ttl);
	put16(p + 10, 4);
	put32(p + 12, addr);
	return 16;
}

/* The reply to query q (qlen bytes) in out; returns its length or 0. */
static size_t
make_reply(const unsigned char *q, size_t qlen, unsigned char *out)
{
	char name[256];
	size_t qend, len;
	unsigned rcode = 0, an = 0, ns = 0, i;
	uint32_t ttl = atomic_load(&env.resp_ttl);

	if (!query_name(q, qlen, name, sizeof(name), &qend))
		return 0;
	memcpy(out, q, qend);
	len = qend;
	switch ((enum rmode)atomic_load(&env.resp_mode)) {
	case R_LISTED:
		len += put_a(out + len, ttl, 0x7f000002);
		an = 1;
		break;
	case R_SERVFAIL: rcode = 2; break;
	case R_NXDOMAIN: rcode = 3; break;
	case R_NXSOA:
		rcode = 3;
		ns = 1;
		put16(out + len, 0xc00c);
		put16(out + len + 2, 6);
		put16(out + len + 4, 1);
		put32(out + len + 6, 3600);
		put16(out + len + 10, 22);
		len += 12;
		out[len++] = 0;              /* MNAME: the root */
		out[len++] = 0;              /* RNAME */
		put32(out + len, 1);         /* serial */
		put32(out + len + 4, 3600);  /* refresh */
		put32(out + len + 8, 600);   /* retry */
		put32(out + len + 12, 7200); /* expire */
		put32(out + len + 16, 1);    /* minimum */
		len += 20;
		break;
	case R_MANY:
		for (i = 1; i <= 10; i++)
			len += put_a(out + len, ttl, 0x7f000000 + i);
		an = 10;
		break;
	case R_MALFORMED: an = 1; break;
	}
	out[2] = (unsigned char)(0x80 | (q[2] & 0x01)); /* QR, RD */
	out[3] = (unsigned char)(0x80 | rcode);         /* RA */
	put16(out + 4, 1);
	put16(out + 6, an);
	put16(out + 8, ns);
	put16(out + 10, 0);
	return len;
}

struct delayed {
	long long due;
	struct sockaddr_storage to;
	socklen_t tolen;
	size_t len;
	unsigned char pkt[512];
};

/* Answer every query after resp_delay_ms, until resp_stop. */
static void *
responder(void *arg)
{
	static struct delayed q[64];
	size_t nq = 0, i;

	(void)arg;
	while (!atomic_load(&env.resp_stop)) {
		struct pollfd pfd = { env.resp_fd, POLLIN, 0 };
		unsigned char in[512];
		long long t = ms_now(), wait = 20;
		ssize_t len;

		for (i = 0; i < nq; i++)
			if (q[i].due - t < wait)
				wait = q[i].due - t > 0 ? q[i].due - t : 0;
		if (poll(&pfd, 1, (int)wait) > 0 && nq < NELEM(q)) {
			struct delayed *d = &q[nq];

			d->tolen = sizeof(d->to);
			len = recvfrom(env.resp_fd, in, sizeof(in), 0,
			    (struct sockaddr *)&d->to, &d->tolen);
			if (len > 0) {
				atomic_fetch_add(&env.resp_packets, 1);
				d->len = make_reply(in, (size_t)len, d->pkt);
				d->due =
				    ms_now() + atomic_load(&env.resp_delay_ms);
				if (d->len > 0)
					nq++;
			}
		}
		t = ms_now();
		for (i = 0; i < nq;) {
			if (q[i].due > t) {
				i++;
				continue;
			}
			(void)sendto(env.resp_fd, q[i].pkt, q[i].len, 0,
			    (struct sockaddr *)&q[i].to, q[i].tolen);
			q[i] = q[--nq];
		}
	}
	return NULL;
}

static void
respond(enum rmode mode, unsigned delay_ms, unsigned ttl)
{
	atomic_store(&env.resp_mode, (int)mode);
	atomic_store(&env.resp_delay_ms, delay_ms);
	atomic_store(&env.resp_ttl, ttl);
}

/* dnsmasq. */

static void
dm_stop(struct dm *d)
{
	int status;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, &status, 0);
		d->pid = 0;
	}
}

/* Wait until d answers, or dies; true if it answers. */
static bool
dm_ready(struct dm *d)
{
	char err[256];
	struct mw_dns *r = mw_dns_new(d->server, 200, err, sizeof(err));
	struct in_addr a[4];
	size_t n;
	int i, status;
	bool ok = false;

	assert_non_null(r);
	for (i = 0; i < 50; i++) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
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

/*
 * Start dnsmasq authoritative for bl.test, every record with TTL ttl
 * (NXDOMAIN answers carry an SOA whose TTL and MINIMUM are ttl too).
 */
static bool
dm_start(struct dm *d, unsigned ttl)
{
	char port_opt[32], log_opt[96], ttl_opt[32];
	int attempt, port, fd;
	bool ok = false;

	if (access(DNSMASQ, X_OK) != 0)
		return false;
	snprintf(ttl_opt, sizeof(ttl_opt), "--auth-ttl=%u", ttl);
	for (attempt = 0; attempt < 5 && !ok; attempt++) {
		/* A port that was free a moment ago; retried if taken. */
		fd = udp_socket(&port);
		assert_true(fd >= 0);
		close(fd);
		snprintf(port_opt, sizeof(port_opt), "--port=%d", port);
		snprintf(d->server, sizeof(d->server), "127.0.0.1:%d", port);
		snprintf(log_opt, sizeof(log_opt),
		    "--log-facility=%s/dnsmasq-%d.log", env.dir, port);
		d->pid = fork();
		assert_true(d->pid >= 0);
		if (d->pid == 0) {
			char *argv[] = { DNSMASQ, "--keep-in-foreground",
				"--conf-file=/dev/null", "--no-resolv",
				"--no-hosts", "--bind-interfaces",
				"--listen-address=127.0.0.1", port_opt,
				"--pid-file=", "--user=root", log_opt,
				"--auth-server=ns.bl.test,127.0.0.1",
				"--auth-zone=bl.test", ttl_opt,
				"--host-record=2.0.0.127.bl.test,127.0.0.2",
				"--host-record=4.0.0.127.bl.test,127.0.0.4",
				"--host-record=10.0.0.127.bl.test,127.0.0.2",
				"--host-record=10.0.0.127.bl.test,127.0.0.4",
				"--host-record=" V6_NAME ",127.0.0.2",
				"--host-record=spammer.example.bl.test,"
				"127.0.0.2",
				/* A resolver rewriting NXDOMAIN would say: */
				"--host-record=9.0.0.127.bl.test,192.0.2.9",
				NULL };

			execv(DNSMASQ, argv);
			_exit(127);
		}
		ok = dm_ready(d);
		if (!ok)
			dm_stop(d);
	}
	return ok;
}

static int
group_setup(void **state)
{
	char tmpl[] = "/tmp/mw-dnsbl-XXXXXX";
	int port;

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	assert_non_null(mkdtemp(tmpl));
	snprintf(env.dir, sizeof(env.dir), "%s", tmpl);
	env.have_dnsmasq = dm_start(&env.main, 300);

	env.silent_fd = udp_socket(&port);
	assert_true(env.silent_fd >= 0);
	snprintf(env.silent, sizeof(env.silent), "127.0.0.1:%d", port);
	/* Bound, then closed: queries there are refused (ICMP). */
	close(udp_socket(&port));
	snprintf(env.refused, sizeof(env.refused), "127.0.0.1:%d", port);

	env.resp_fd = udp_socket(&port);
	assert_true(env.resp_fd >= 0);
	snprintf(env.resp, sizeof(env.resp), "127.0.0.1:%d", port);
	respond(R_LISTED, 0, 300);
	assert_int_equal(pthread_create(&env.resp_thread, NULL, responder,
			     NULL),
	    0);
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	atomic_store(&env.resp_stop, true);
	pthread_join(env.resp_thread, NULL);
	close(env.resp_fd);
	dm_stop(&env.main);
	dm_stop(&env.extra); /* left running by a failed test */
	close(env.silent_fd);
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

/*
 * A blocklist handle over servers.  The resolver is freed at once: the
 * handle must hold its own reference.
 */
static struct mw_dnsbl *
bl_make(const char *servers, unsigned timeout_ms, size_t cache)
{
	char err[256];
	struct mw_dns *r = mw_dns_new(servers, timeout_ms, err, sizeof(err));
	struct mw_dnsbl *b;

	if (r == NULL)
		fail_msg("mw_dns_new(\"%s\"): %s", servers, err);
	b = mw_dnsbl_new(r, cache, err, sizeof(err));
	if (b == NULL)
		fail_msg("mw_dnsbl_new: %s", err);
	mw_dns_free(r);
	return b;
}

static struct mw_dnsbl_q
q_ip(const char *ip)
{
	struct mw_dnsbl_q q;

	memset(&q, 0, sizeof(q));
	q.zone = "bl.test";
	q.subject = ip;
	q.is_ip = true;
	return q;
}

static struct mw_dnsbl_q
q_name(const char *name)
{
	struct mw_dnsbl_q q = q_ip(name);

	q.is_ip = false;
	return q;
}

/* Run one lookup; returns it. */
static struct mw_dnsbl_q
run1(struct mw_dnsbl *b, struct mw_dnsbl_q q, unsigned budget_ms)
{
	assert_true(mw_dnsbl_run(b, &q, 1, budget_ms));
	return q;
}

static void
assert_listed(const struct mw_dnsbl_q *q, uint32_t code)
{
	if (q->state != MW_DNSBL_LISTED)
		fail_msg("%s in %s: state %d (%s), want listed", q->subject,
		    q->zone, (int)q->state, q->why ? q->why : "-");
	assert_int_equal(q->ncodes, 1);
	assert_int_equal(q->codes[0], code);
	assert_null(q->why);
	assert_false(q->bad_name);
}

static void
assert_not_listed(const struct mw_dnsbl_q *q)
{
	if (q->state != MW_DNSBL_NOT_LISTED)
		fail_msg("%s in %s: state %d (%s), want not listed", q->subject,
		    q->zone, (int)q->state, q->why ? q->why : "-");
	assert_int_equal(q->ncodes, 0);
	assert_null(q->why);
}

static void
assert_no_answer(const struct mw_dnsbl_q *q, const char *why)
{
	if (q->state != MW_DNSBL_NO_ANSWER)
		fail_msg("%s in %s: state %d, want no answer (%s)", q->subject,
		    q->zone, (int)q->state, why);
	assert_int_equal(q->ncodes, 0);
	assert_non_null(q->why);
	/* A prefix: c-ares 1.18 says "server failure or refusal" where
	 * later versions say "server failure". */
	if (why != NULL && strncmp(q->why, why, strlen(why)) != 0)
		fail_msg("%s in %s: why \"%s\", want \"%s\"", q->subject,
		    q->zone, q->why, why);
}

/* Query names. */

static const struct {
	const char *subject;
	bool is_ip;
	const char *zone, *want;
} good_names[] = {
	{ "127.0.0.2", true, "bl.test", "2.0.0.127.bl.test" },
	{ "192.0.2.200", true, "Zen.Example.TEST.",
	    "200.2.0.192.zen.example.test" },
	{ "0.0.0.0", true, "a.b", "0.0.0.0.a.b" },
	{ "2001:db8::1", true, "bl.test", V6_NAME },
	{ "2001:DB8:0:0:0:0:0:1", true, "bl.test", V6_NAME },
	{ "::1", true, "x",
	    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "x" },
	{ "fe80::abcd:ef01", true, "bl.test",
	    "1.0.f.e.d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f."
	    "bl.test" },
	/* IPv4-mapped: looked up as IPv4. */
	{ "::ffff:127.0.0.2", true, "bl.test", "2.0.0.127.bl.test" },
	{ "spammer.example", false, "bl.test", "spammer.example.bl.test" },
	{ "Spammer.EXAMPLE.", false, "bl.test", "spammer.example.bl.test" },
	{ "_dmarc.x-y.example", false, "dbl.test",
	    "_dmarc.x-y.example.dbl.test" },
	{ "localhost", false, "bl.test", "localhost.bl.test" },
	{ "192.0.2.1", false, "rhs.test", "192.0.2.1.rhs.test" },
	{ "xn--bcher-kva.example", false, "bl.test",
	    "xn--bcher-kva.example.bl.test" },
};

static void
test_qname_good(void **state)
{
	char out[MW_DNSBL_NAME_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(good_names); i++) {
		if (!mw_dnsbl_qname(good_names[i].subject, good_names[i].is_ip,
			good_names[i].zone, out, sizeof(out)))
			fail_msg("'%s' in '%s' refused", good_names[i].subject,
			    good_names[i].zone);
		if (strcmp(out, good_names[i].want) != 0)
			fail_msg("'%s' in '%s': got '%s', want '%s'",
			    good_names[i].subject, good_names[i].zone, out,
			    good_names[i].want);
	}
}

static const struct {
	const char *subject;
	bool is_ip;
	const char *zone;
} bad_names[] = {
	/* Not IP literals. */
	{ "", true, "bl.test" },
	{ "1.2.3", true, "bl.test" },
	{ "1.2.3.4.5", true, "bl.test" },
	{ "256.1.1.1", true, "bl.test" },
	{ "01.2.3.4", true, "bl.test" },
	{ "1.2.3.4 ", true, "bl.test" },
	{ "0x7f.0.0.1", true, "bl.test" },
	{ "[::1]", true, "bl.test" },
	{ "IPv6:::1", true, "bl.test" },
	{ "fe80::1%eth0", true, "bl.test" },
	{ "2001:db8::1::2", true, "bl.test" },
	{ "example.com", true, "bl.test" },
	{ "unknown", true, "bl.test" },
	/* Not host names. */
	{ "", false, "bl.test" },
	{ ".", false, "bl.test" },
	{ "a..b", false, "bl.test" },
	{ ".a.b", false, "bl.test" },
	{ "a.b..", false, "bl.test" },
	{ "-a.b", false, "bl.test" },
	{ "a-.b", false, "bl.test" },
	{ "a b.example", false, "bl.test" },
	{ "a\tb.example", false, "bl.test" },
	{ "a/b.example", false, "bl.test" },
	{ "a\\.b.example", false, "bl.test" },
	{ "[192.0.2.1]", false, "bl.test" },
	{ "b\xc3\xbc"
	  "cher.example",
	    false, "bl.test" },
	{ "a.b\n", false, "bl.test" },
	{ "a@b.example", false, "bl.test" },
	/* Bad zones. */
	{ "127.0.0.2", true, "" },
	{ "127.0.0.2", true, "." },
	{ "127.0.0.2", true, "bl..test" },
	{ "127.0.0.2", true, "bl test" },
	{ "127.0.0.2", true, ".bl.test" },
	{ "spammer.example", false, "-bl.test" },
};

static void
test_qname_bad(void **state)
{
	char out[MW_DNSBL_NAME_MAX], label64[70], big[300], zone200[210];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad_names); i++) {
		strcpy(out, "junk");
		if (mw_dnsbl_qname(bad_names[i].subject, bad_names[i].is_ip,
			bad_names[i].zone, out, sizeof(out)))
			fail_msg("'%s' (%s) in '%s' accepted as '%s'",
			    bad_names[i].subject,
			    bad_names[i].is_ip ? "ip" : "name",
			    bad_names[i].zone, out);
		assert_string_equal(out, "");
	}
	assert_false(mw_dnsbl_qname(NULL, true, "bl.test", out, sizeof(out)));
	assert_false(mw_dnsbl_qname("127.0.0.2", true, NULL, out, sizeof(out)));
	assert_false(mw_dnsbl_qname("127.0.0.2", true, "bl.test", NULL, 0));

	/* Labels: 63 characters fit, 64 do not. */
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".ex");
	assert_false(
	    mw_dnsbl_qname(label64, false, "bl.test", out, sizeof(out)));
	assert_true(
	    mw_dnsbl_qname(label64 + 1, false, "bl.test", out, sizeof(out)));

	/* Names: 253 characters in all fit, 254 do not. */
	memset(zone200, 'z', sizeof(zone200));
	for (i = 50; i < 200; i += 50)
		zone200[i] = '.';
	zone200[200] = '\0'; /* 200 characters */
	/* "2.0.0.127." is 10: 210 */
	assert_true(
	    mw_dnsbl_qname("127.0.0.2", true, zone200, out, sizeof(out)));
	assert_int_equal(strlen(out), 210);
	/* 52 + "." + 200 = 253 */
	memset(big, 'b', 52);
	big[52] = '\0';
	assert_true(mw_dnsbl_qname(big, false, zone200, out, sizeof(out)));
	assert_int_equal(strlen(out), 253);
	big[52] = 'b';
	big[53] = '\0';
	assert_false(mw_dnsbl_qname(big, false, zone200, out, sizeof(out)));
	/* An IPv6 name (64) and a long zone. */
	assert_false(
	    mw_dnsbl_qname("2001:db8::1", true, zone200, out, sizeof(out)));

	/* The output buffer: exactly enough, then one byte short. */
	assert_true(mw_dnsbl_qname("127.0.0.2", true, "bl.test", out, 18));
	assert_string_equal(out, "2.0.0.127.bl.test");
	strcpy(out, "junk");
	assert_false(mw_dnsbl_qname("127.0.0.2", true, "bl.test", out, 17));
	assert_string_equal(out, "");
}

static void
test_new_errors(void **state)
{
	char err[256];
	struct mw_dns *r;
	struct mw_dnsbl *b;

	(void)state;
	assert_null(mw_dnsbl_new(NULL, 10, err, sizeof(err)));
	assert_string_equal(err, "no resolver");
	r = mw_dns_new("127.0.0.1", 1000, err, sizeof(err));
	assert_non_null(r);
	assert_null(mw_dnsbl_new(r, MW_DNSBL_MAX_CACHE + 1, err, sizeof(err)));
	assert_string_equal(err,
	    "blocklist cache of 1000001 entries: more than 1000000");
	assert_null(mw_dnsbl_new(r, MW_DNSBL_MAX_CACHE + 1, NULL, 0));
	b = mw_dnsbl_new(r, MW_DNSBL_MAX_CACHE, err, sizeof(err));
	assert_non_null(b);
	mw_dnsbl_free(b);
	mw_dns_free(r);
	mw_dnsbl_free(NULL);
}

/* Answers. */

static void
test_listed(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q q;

	(void)state;
	NEED_DNSMASQ();
	b = bl_make(env.main.server, 2000, 100);
	q = run1(b, q_ip("127.0.0.2"), 2000);
	assert_listed(&q, 0x7f000002);
	assert_false(q.from_cache);
	q = run1(b, q_ip("127.0.0.4"), 2000);
	assert_listed(&q, 0x7f000004);
	q = run1(b, q_ip("2001:db8::1"), 2000);
	assert_listed(&q, 0x7f000002);
	q = run1(b, q_name("spammer.example"), 2000);
	assert_listed(&q, 0x7f000002);
	/* The same name, spelt otherwise: the cached answer. */
	q = run1(b, q_name("SPAMMER.Example."), 2000);
	assert_listed(&q, 0x7f000002);
	assert_true(q.from_cache);
	q = run1(b, q_ip("::ffff:127.0.0.2"), 2000);
	assert_listed(&q, 0x7f000002);
	assert_true(q.from_cache);
	mw_dnsbl_free(b);
}

static void
test_not_listed(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q q;

	(void)state;
	NEED_DNSMASQ();
	b = bl_make(env.main.server, 2000, 100);
	q = run1(b, q_ip("127.0.0.3"), 2000);
	assert_not_listed(&q);
	q = run1(b, q_ip("2001:db8::2"), 2000);
	assert_not_listed(&q);
	q = run1(b, q_name("innocent.example"), 2000);
	assert_not_listed(&q);
	/* The zone apex exists but has no A record: not listed either. */
	q = q_name("bl");
	q.zone = "test";
	q = run1(b, q, 2000);
	assert_not_listed(&q);
	mw_dnsbl_free(b);
}

static void
test_multiple_codes(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q q;

	(void)state;
	NEED_DNSMASQ();
	b = bl_make(env.main.server, 2000, 100);
	q = run1(b, q_ip("127.0.0.10"), 2000);
	assert_int_equal(q.state, MW_DNSBL_LISTED);
	assert_int_equal(q.ncodes, 2);
	/* In answer order, which is the server's business. */
	assert_true((q.codes[0] == 0x7f000002 && q.codes[1] == 0x7f000004) ||
	    (q.codes[0] == 0x7f000004 && q.codes[1] == 0x7f000002));
	/* The same from the cache. */
	q = run1(b, q_ip("127.0.0.10"), 2000);
	assert_true(q.from_cache);
	assert_int_equal(q.ncodes, 2);
	mw_dnsbl_free(b);
}

/* More distinct codes than MW_DNSBL_MAX_CODES: the first ones. */
static void
test_many_codes(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q q;
	size_t i;

	(void)state;
	respond(R_MANY, 0, 300);
	b = bl_make(env.resp, 2000, 100);
	q = run1(b, q_ip("192.0.2.1"), 2000);
	assert_int_equal(q.state, MW_DNSBL_LISTED);
	assert_int_equal(q.ncodes, MW_DNSBL_MAX_CODES);
	for (i = 0; i < MW_DNSBL_MAX_CODES; i++)
		assert_int_equal(q.codes[i], 0x7f000001 + i);
	mw_dnsbl_free(b);
	respond(R_LISTED, 0, 300);
}

/* Everything in one call, with a duplicate and an invalid subject. */
static void
test_batch(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q qs[9];
	struct mw_dnsbl_stats st;

	(void)state;
	NEED_DNSMASQ();
	b = bl_make(env.main.server, 2000, 100);
	qs[0] = q_ip("127.0.0.2");
	qs[1] = q_ip("127.0.0.3");
	qs[2] = q_ip("2001:db8::1");
	qs[3] = q_name("spammer.example");
	qs[4] = q_name("innocent.example");
	qs[5] = q_ip("not-an-address");
	qs[6] = q_ip("127.0.0.2");
	qs[7] = q_ip("127.0.0.2");
	qs[7].zone = "other.test"; /* not dnsmasq's zone: REFUSED */
	qs[8] = q_ip("127.0.0.9");
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 3000));
	assert_listed(&qs[0], 0x7f000002);
	assert_not_listed(&qs[1]);
	assert_listed(&qs[2], 0x7f000002);
	assert_listed(&qs[3], 0x7f000002);
	assert_not_listed(&qs[4]);
	assert_no_answer(&qs[5], "invalid name");
	assert_true(qs[5].bad_name);
	assert_listed(&qs[6], 0x7f000002);
	/* "query refused"; c-ares 1.18: "server failure or refusal" */
	assert_no_answer(&qs[7], NULL);
	assert_false(qs[7].bad_name);
	/* A resolver that rewrites NXDOMAIN to its own address. */
	assert_no_answer(&qs[8], "answer outside 127.0.0.0/8");

	mw_dnsbl_stats(b, &st);
	assert_int_equal(st.lookups, 9);
	assert_int_equal(st.bad, 1);
	assert_int_equal(st.sent, 7);
	assert_int_equal(st.answered, 5);
	assert_int_equal(st.hits, 0);
	assert_int_equal(st.entries, 5);

	/* Again: the answers from the cache, the failures asked again. */
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 3000));
	assert_true(qs[0].from_cache && qs[1].from_cache && qs[2].from_cache &&
	    qs[3].from_cache && qs[4].from_cache && qs[6].from_cache);
	assert_false(qs[5].from_cache || qs[7].from_cache || qs[8].from_cache);
	assert_listed(&qs[6], 0x7f000002);
	assert_no_answer(&qs[7], NULL);
	mw_dnsbl_stats(b, &st);
	assert_int_equal(st.sent, 9);
	assert_int_equal(st.hits, 6);
	mw_dnsbl_free(b);

	/* Nothing to do. */
	b = bl_make(env.main.server, 2000, 100);
	assert_true(mw_dnsbl_run(b, qs, 0, 1000));
	mw_dnsbl_free(b);
}

/* Invalid subjects: no packet, no waiting. */
static void
test_bad_subjects_not_sent(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q qs[4];
	struct mw_dnsbl_stats st;
	unsigned packets;
	long long t0;
	size_t i;

	(void)state;
	drain_silent(NULL, NULL);
	b = bl_make(env.silent, 5000, 100);
	qs[0] = q_ip("1.2.3.x");
	qs[1] = q_name("bad name.example");
	qs[2] = q_ip("127.0.0.2");
	qs[2].zone = "bad..zone";
	qs[3] = q_name("a..b");
	t0 = ms_now();
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 5000));
	assert_true(ms_now() - t0 < 200);
	for (i = 0; i < NELEM(qs); i++) {
		assert_no_answer(&qs[i], "invalid name");
		assert_true(qs[i].bad_name);
	}
	usleep(50000);
	drain_silent(&packets, NULL);
	assert_int_equal(packets, 0);
	mw_dnsbl_stats(b, &st);
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.bad, 4);
	mw_dnsbl_free(b);
}

/* Parallelism and time bounds. */

/*
 * Ten lookups to a server that never answers take one timeout, not ten:
 * all ten queries were sent.
 */
static void
test_parallel_silent(void **state)
{
	static const char *ips[10] = { "192.0.2.1", "192.0.2.2", "192.0.2.3",
		"192.0.2.4", "192.0.2.5", "192.0.2.6", "192.0.2.7", "192.0.2.8",
		"192.0.2.9", "192.0.2.10" };
	struct mw_dnsbl *b;
	struct mw_dnsbl_q qs[10];
	unsigned names;
	long long t0, el;
	size_t i;

	(void)state;
	drain_silent(NULL, NULL);
	b = bl_make(env.silent, 1000, 100);
	for (i = 0; i < NELEM(qs); i++)
		qs[i] = q_ip(ips[i]);
	t0 = ms_now();
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 10000));
	el = ms_now() - t0;
	print_message("10 queries, silent server, timeout 1000 ms: %lld ms\n",
	    el);
	assert_true(el >= 990);
	assert_true(el < 1000 + MARGIN_MS);
	for (i = 0; i < NELEM(qs); i++) {
		assert_no_answer(&qs[i], "timeout");
		assert_false(qs[i].from_cache);
	}
	drain_silent(NULL, &names);
	assert_int_equal(names, 10);
	mw_dnsbl_free(b);
}

/*
 * Ten lookups to a server that answers each after 400 ms: all answered,
 * in about 400 ms rather than 4 s.
 */
static void
test_parallel_slow_answers(void **state)
{
	static const char *ips[10] = { "198.51.100.1", "198.51.100.2",
		"198.51.100.3", "198.51.100.4", "198.51.100.5", "198.51.100.6",
		"198.51.100.7", "198.51.100.8", "198.51.100.9",
		"198.51.100.10" };
	struct mw_dnsbl *b;
	struct mw_dnsbl_q qs[10];
	long long t0, el;
	unsigned before;
	size_t i;

	(void)state;
	respond(R_LISTED, 400, 300);
	before = atomic_load(&env.resp_packets);
	/* try_ms 1000: no retransmission within the 400 ms. */
	b = bl_make(env.resp, 3000, 100);
	for (i = 0; i < NELEM(qs); i++)
		qs[i] = q_ip(ips[i]);
	t0 = ms_now();
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 3000));
	el = ms_now() - t0;
	print_message("10 queries answered after 400 ms each: %lld ms\n", el);
	assert_true(el >= 390);
	assert_true(el < 400 + MARGIN_MS);
	for (i = 0; i < NELEM(qs); i++)
		assert_listed(&qs[i], 0x7f000002);
	assert_int_equal(atomic_load(&env.resp_packets) - before, 10);
	mw_dnsbl_free(b);
	respond(R_LISTED, 0, 300);
}

/* The budget ends the call before the per-query timeout. */
static void
test_budget(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q qs[3];
	unsigned packets;
	long long t0, el;
	size_t i;

	(void)state;
	drain_silent(NULL, NULL);
	b = bl_make(env.silent, 5000, 100);
	qs[0] = q_ip("192.0.2.1");
	qs[1] = q_ip("192.0.2.2");
	qs[2] = q_name("example.org");
	t0 = ms_now();
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 300));
	el = ms_now() - t0;
	print_message("silent server, timeout 5000 ms, budget 300 ms: %lld "
		      "ms\n",
	    el);
	assert_true(el >= 295);
	assert_true(el < 300 + MARGIN_MS);
	for (i = 0; i < NELEM(qs); i++)
		assert_no_answer(&qs[i], "budget exhausted");

	/* No budget: nothing sent, at once. */
	drain_silent(NULL, NULL);
	t0 = ms_now();
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 0));
	assert_true(ms_now() - t0 < 100);
	for (i = 0; i < NELEM(qs); i++)
		assert_no_answer(&qs[i], "budget exhausted");
	usleep(50000);
	drain_silent(&packets, NULL);
	assert_int_equal(packets, 0);
	mw_dnsbl_free(b);
}

/* Duplicates (also spelt otherwise) are asked once. */
static void
test_duplicates_asked_once(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q qs[6];
	struct mw_dnsbl_stats st;
	unsigned packets, names;
	size_t i;

	(void)state;
	drain_silent(NULL, NULL);
	/* try_ms 1000: no retransmission within the budget. */
	b = bl_make(env.silent, 3000, 100);
	qs[0] = q_name("spammer.example");
	qs[1] = q_name("SPAMMER.example.");
	qs[2] = q_name("spammer.example");
	qs[2].zone = "BL.test.";
	qs[3] = q_ip("127.0.0.2");
	qs[4] = q_ip("::ffff:127.0.0.2");
	qs[5] = q_ip("127.0.0.2");
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 300));
	for (i = 0; i < NELEM(qs); i++)
		assert_no_answer(&qs[i], "budget exhausted");
	usleep(50000);
	drain_silent(&packets, &names);
	assert_int_equal(packets, 2);
	assert_int_equal(names, 2);
	mw_dnsbl_stats(b, &st);
	assert_int_equal(st.lookups, 6);
	assert_int_equal(st.sent, 2);
	assert_int_equal(st.answered, 0);
	mw_dnsbl_free(b);
}

/* A port with nothing bound: refused at once, not a timeout. */
static void
test_refused_port(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q q;
	long long t0;

	(void)state;
	b = bl_make(env.refused, 3000, 100);
	t0 = ms_now();
	q = run1(b, q_ip("127.0.0.2"), 3000);
	assert_true(ms_now() - t0 < 2000);
	assert_no_answer(&q, NULL);
	mw_dnsbl_free(b);
}

/* SERVFAIL and malformed answers: no answer, and not cached. */
static void
test_unusable_answers(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q q;
	unsigned before;

	(void)state;
	b = bl_make(env.resp, 2000, 100);
	respond(R_SERVFAIL, 0, 300);
	q = run1(b, q_ip("192.0.2.1"), 2000);
	assert_no_answer(&q, "server failure");
	before = atomic_load(&env.resp_packets);
	q = run1(b, q_ip("192.0.2.1"), 2000);
	assert_no_answer(&q, "server failure");
	assert_false(q.from_cache);
	assert_true(atomic_load(&env.resp_packets) > before);

	respond(R_MALFORMED, 0, 300);
	q = run1(b, q_ip("192.0.2.2"), 2000);
	assert_no_answer(&q, NULL);
	q = run1(b, q_ip("192.0.2.2"), 2000);
	assert_no_answer(&q, NULL);
	assert_false(q.from_cache);
	mw_dnsbl_free(b);
	respond(R_LISTED, 0, 300);
}

/* The cache. */

/* Cached answers are served with the server gone: no query at all. */
static void
test_cache_server_stopped(void **state)
{
	struct dm *d = &env.extra;
	struct mw_dnsbl *b;
	struct mw_dnsbl_q qs[3];
	struct mw_dnsbl_stats st;
	long long t0;

	(void)state;
	NEED_DNSMASQ();
	assert_true(dm_start(d, 300));
	b = bl_make(d->server, 1000, 100);
	qs[0] = q_ip("127.0.0.2");
	qs[1] = q_ip("127.0.0.3");
	qs[2] = q_name("spammer.example");
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 1000));
	assert_listed(&qs[0], 0x7f000002);
	assert_not_listed(&qs[1]);
	assert_listed(&qs[2], 0x7f000002);
	assert_false(qs[0].from_cache || qs[1].from_cache || qs[2].from_cache);

	dm_stop(d);
	t0 = ms_now();
	assert_true(mw_dnsbl_run(b, qs, NELEM(qs), 1000));
	assert_true(ms_now() - t0 < 100);
	assert_listed(&qs[0], 0x7f000002);
	assert_not_listed(&qs[1]);
	assert_listed(&qs[2], 0x7f000002);
	assert_true(qs[0].from_cache && qs[1].from_cache && qs[2].from_cache);
	mw_dnsbl_stats(b, &st);
	assert_int_equal(st.sent, 3);
	assert_int_equal(st.hits, 3);
	assert_int_equal(st.entries, 3);

	/* A name not cached: now no answer, and within the timeout. */
	qs[0] = q_ip("127.0.0.4");
	t0 = ms_now();
	assert_true(mw_dnsbl_run(b, qs, 1, 5000));
	assert_true(ms_now() - t0 < 1000 + MARGIN_MS);
	assert_no_answer(&qs[0], NULL);
	mw_dnsbl_free(b);
}

/* Answers expire with their TTL (here 1 s, positive and negative). */
static void
test_cache_ttl_expiry(void **state)
{
	struct dm *d = &env.extra;
	struct mw_dnsbl *b, *b30;
	struct mw_dnsbl_q qs[2];

	(void)state;
	NEED_DNSMASQ();
	assert_true(dm_start(d, 1));
	b = bl_make(d->server, 1000, 100);
	mw_dnsbl_set_ttl(b, 0, 3600);
	/* Default bounds: at least MW_DNSBL_MIN_TTL (30 s). */
	b30 = bl_make(d->server, 1000, 100);
	qs[0] = q_ip("127.0.0.2");
	qs[1] = q_ip("127.0.0.3");
	assert_true(mw_dnsbl_run(b, qs, 2, 1000));
	assert_true(mw_dnsbl_run(b30, qs, 2, 1000));
	assert_listed(&qs[0], 0x7f000002);
	assert_not_listed(&qs[1]);
	/* At once: cached (the negative TTL came from the SOA). */
	assert_true(mw_dnsbl_run(b, qs, 2, 1000));
	assert_true(qs[0].from_cache && qs[1].from_cache);
	usleep(1100000);
	assert_true(mw_dnsbl_run(b, qs, 2, 1000));
	assert_false(qs[0].from_cache || qs[1].from_cache);
	assert_listed(&qs[0], 0x7f000002);
	assert_not_listed(&qs[1]);
	assert_true(mw_dnsbl_run(b30, qs, 2, 1000));
	assert_true(qs[0].from_cache && qs[1].from_cache);
	mw_dnsbl_free(b);
	mw_dnsbl_free(b30);
	dm_stop(d);
}

/*
 * TTL bounds: a day cut to 1 s; a negative answer without an SOA cached
 * for the minimum only (0: not at all); a negative TTL that is the SOA's
 * MINIMUM (1 s) rather than its TTL (3600 s).
 */
static void
test_cache_ttl_bounds(void **state)
{
	struct mw_dnsbl *b;
	struct mw_dnsbl_q q;

	(void)state;
	b = bl_make(env.resp, 2000, 100);
	mw_dnsbl_set_ttl(b, 0, 1);
	respond(R_LISTED, 0, 86400);
	q = run1(b, q_ip("192.0.2.1"), 2000);
	assert_listed(&q, 0x7f000002);
	q = run1(b, q_ip("192.0.2.1"), 2000);
	assert_true(q.from_cache);
	usleep(1100000);
	q = run1(b, q_ip("192.0.2.1"), 2000);
	assert_false(q.from_cache);

	mw_dnsbl_set_ttl(b, 0, 3600);
	respond(R_NXDOMAIN, 0, 300);
	q = run1(b, q_ip("192.0.2.2"), 2000);
	assert_not_listed(&q);
	q = run1(b, q_ip("192.0.2.2"), 2000);
	assert_not_listed(&q);
	assert_false(q.from_cache);
	mw_dnsbl_set_ttl(b, 30, 3600);
	q = run1(b, q_ip("192.0.2.2"), 2000);
	q = run1(b, q_ip("192.0.2.2"), 2000);
	assert_true(q.from_cache);

	mw_dnsbl_set_ttl(b, 0, 3600);
	respond(R_NXSOA, 0, 300);
	q = run1(b, q_ip("192.0.2.3"), 2000);
	assert_not_listed(&q);
	q = run1(b, q_ip("192.0.2.3"), 2000);
	assert_true(q.from_cache);
	usleep(1100000);
	q = run1(b, q_ip("192.0.2.3"), 2000);
	assert_false(q.from_cache);
	assert_not_listed(&q);

	/* min above max: min wins. */
	mw_dnsbl_set_ttl(b, 30, 1);
	respond(R_LISTED, 0, 0);
	q = run1(b, q_ip("192.0.2.4"), 2000);
	q = run1(b, q_ip("192.0.2.4"), 2000);
	assert_true(q.from_cache);
	mw_dnsbl_free(b);
	respond(R_LISTED, 0, 300);
}

/* The cache keeps at most its size, dropping the least recently used. */
static void
test_cache_bounded(void **state)
{
	static const char *names[] = { "n1.example", "n2.example", "n3.example",
		"n4.example" };
	struct mw_dnsbl *b;
	struct mw_dnsbl_q q;
	struct mw_dnsbl_stats st;
	size_t i;

	(void)state;
	NEED_DNSMASQ();
	b = bl_make(env.main.server, 2000, 3);
	for (i = 0; i < 3; i++)
		q = run1(b, q_name(names[i]), 2000);
	q = run1(b, q_name(names[0]), 2000); /* n1 now the most recent */
	assert_true(q.from_cache);
	q = run1(b, q_name(names[3]), 2000); /* evicts n2 */
	assert_false(q.from_cache);
	mw_dnsbl_stats(b, &st);
	assert_int_equal(st.entries, 3);
	q = run1(b, q_name(names[0]), 2000);
	assert_true(q.from_cache);
	q = run1(b, q_name(names[2]), 2000);
	assert_true(q.from_cache);
	q = run1(b, q_name(names[3]), 2000);
	assert_true(q.from_cache);
	q = run1(b, q_name(names[1]), 2000);
	assert_false(q.from_cache);
	assert_not_listed(&q);
	mw_dnsbl_free(b);

	/* No cache at all. */
	b = bl_make(env.main.server, 2000, 0);
	q = run1(b, q_ip("127.0.0.2"), 2000);
	q = run1(b, q_ip("127.0.0.2"), 2000);
	assert_listed(&q, 0x7f000002);
	assert_false(q.from_cache);
	mw_dnsbl_stats(b, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.sent, 2);
	mw_dnsbl_free(b);
}

/* Threads. */

struct worker {
	struct mw_dnsbl *b;
	int ok;
};

static void *
worker(void *arg)
{
	struct worker *w = arg;
	struct mw_dnsbl_q qs[5];
	int i;

	for (i = 0; i < 10; i++) {
		qs[0] = q_ip("127.0.0.2");
		qs[1] = q_ip("127.0.0.3");
		qs[2] = q_ip("127.0.0.4");
		qs[3] = q_name("spammer.example");
		qs[4] = q_ip("2001:db8::1");
		if (!mw_dnsbl_run(w->b, qs, NELEM(qs), 3000))
			return NULL;
		if (qs[0].state != MW_DNSBL_LISTED ||
		    qs[0].codes[0] != 0x7f000002 ||
		    qs[1].state != MW_DNSBL_NOT_LISTED ||
		    qs[2].state != MW_DNSBL_LISTED ||
		    qs[2].codes[0] != 0x7f000004 ||
		    qs[3].state != MW_DNSBL_LISTED ||
		    qs[4].state != MW_DNSBL_LISTED)
			return NULL;
		w->ok++;
	}
	return NULL;
}

/* Threads share a handle and a cache too small for their names. */
static void
test_threads(void **state)
{
	pthread_t t[4];
	struct worker w[4];
	struct mw_dnsbl *b;
	struct mw_dnsbl_stats st;
	size_t i;

	(void)state;
	NEED_DNSMASQ();
	b = bl_make(env.main.server, 3000, 3);
	for (i = 0; i < NELEM(t); i++) {
		w[i].b = b;
		w[i].ok = 0;
		assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (i = 0; i < NELEM(t); i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ok, 10);
	}
	mw_dnsbl_stats(b, &st);
	assert_int_equal(st.lookups, 4 * 10 * 5);
	assert_true(st.entries <= 3);
	assert_int_equal(st.hits + st.sent, st.lookups);
	mw_dnsbl_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qname_good),
		cmocka_unit_test(test_qname_bad),
		cmocka_unit_test(test_new_errors),
		cmocka_unit_test(test_listed),
		cmocka_unit_test(test_not_listed),
		cmocka_unit_test(test_multiple_codes),
		cmocka_unit_test(test_many_codes),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_bad_subjects_not_sent),
		cmocka_unit_test(test_parallel_silent),
		cmocka_unit_test(test_parallel_slow_answers),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_duplicates_asked_once),
		cmocka_unit_test(test_refused_port),
		cmocka_unit_test(test_unusable_answers),
		cmocka_unit_test(test_cache_server_stopped),
		cmocka_unit_test(test_cache_ttl_expiry),
		cmocka_unit_test(test_cache_ttl_bounds),
		cmocka_unit_test(test_cache_bounded),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
