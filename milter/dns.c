/*
 * dns.c -- a bounded DNS resolver over c-ares, for libopendkim's key
 * lookups and for direct TXT and A lookups.
 *
 * libopendkim's own resolver is the libc one (res_query): it uses the
 * servers and timeouts of /etc/resolv.conf and blocks for as long as they
 * say, which in a milter means a libmilter thread stuck while the MTA
 * waits.  libopendkim lets an application replace it by five hooks: start
 * a query writing the raw DNS reply into the library's buffer, wait for
 * the reply with a timeout, cancel (free) the query, and init/close the
 * "service" handle.  Here the service handle is our resolver, and a query
 * handle is a c-ares channel of its own.
 *
 * Why one channel per query: a c-ares channel is not thread-safe, and
 * libopendkim calls the hooks from every libmilter thread at once with one
 * library handle.  A shared channel would need a lock held across the
 * wait, or a dispatcher thread; a channel per query needs neither, costs
 * one socket and an open of /dev/urandom (c-ares seeds its query ids), and
 * makes the end of a query (ares_destroy) the end of everything it owns.
 * The channel is given every option that c-ares would otherwise read from
 * /etc/resolv.conf, so creating it does not re-read that file.
 *
 * Waiting uses poll, not select: a busy milter may hold descriptors above
 * FD_SETSIZE.  Every wait is bounded by an absolute deadline fixed when the
 * query starts (the resolver's timeout), so neither retransmissions nor
 * repeated waits can stretch a query beyond it.
 *
 * Answers are walked by a small bounds-checked parser rather than c-ares's
 * ares_parse_*_reply, because those do not return the TTL of TXT records
 * nor the negative-caching TTL, which the DNS blocklist cache will need.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ares.h>
#include <opendkim/dkim.h>

#include "mw_dns.h"

/* Longest server entry we accept: "[" + IPv6 text + "]:65535". */
#define SERVER_TEXT_MAX 64

/* Longest query name: 253 characters, plus an optional final dot. */
#define NAME_MAX_LEN 254

struct mw_dns {
	atomic_uint refs;
	atomic_uint inflight;
	unsigned timeout_ms;
	unsigned try_ms; /* c-ares's first-try timeout, see mw_dns_new */
	size_t nservers;
	struct ares_addr_port_node servers[MW_DNS_MAX_SERVERS];
	char desc[MW_DNS_MAX_SERVERS * (SERVER_TEXT_MAX + 1)];
};

/*
 * One query.  The answer goes to buf when the caller supplied one
 * (libopendkim's buffer), else to a copy owned by the query.
 */
struct query {
	struct mw_dns *r;
	ares_channel ch;
	bool have_ch;
	struct timespec deadline; /* CLOCK_MONOTONIC */
	unsigned char *buf;       /* caller's buffer, or NULL */
	size_t buflen;
	unsigned char *own; /* answer copy when buf is NULL */
	size_t anslen;      /* bytes of answer, 0 if none */
	bool done;          /* c-ares called back */
	bool toobig;        /* answer larger than buf */
	int status;         /* ARES_* from the callback */
};

/* Outcome of waiting for a query. */
enum wait_result {
	WAIT_DONE,    /* c-ares called back (with or without an answer) */
	WAIT_EXPIRED, /* the query's own deadline passed */
	WAIT_LIMIT,   /* the caller's shorter wait limit passed */
	WAIT_FAILED,  /* poll failed */
};

/*
 * c-ares's ares_library_init and ares_library_cleanup are not
 * thread-safe; they are counted here under a lock so resolvers can be made
 * and freed from any thread (dkim_close frees one from whichever thread
 * closes the library).
 */
static pthread_mutex_t lib_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned lib_users;

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool
lib_ref(char *err, size_t errlen)
{
	int rc = ARES_SUCCESS;

	pthread_mutex_lock(&lib_lock);
	if (lib_users == 0)
		rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc == ARES_SUCCESS)
		lib_users++;
	pthread_mutex_unlock(&lib_lock);
	if (rc != ARES_SUCCESS) {
		seterr(err, errlen, "c-ares: %s", ares_strerror(rc));
		return false;
	}
	return true;
}

static void
lib_unref(void)
{
	pthread_mutex_lock(&lib_lock);
	assert(lib_users > 0);
	if (--lib_users == 0)
		ares_library_cleanup();
	pthread_mutex_unlock(&lib_lock);
}

/* Server lists. */

/*
 * Parse one server entry into *node.  Returns NULL or a static reason.
 * IPv6 with a port needs brackets: "::1:53" would be ambiguous.
 */
static const char *
parse_server(const char *text, struct ares_addr_port_node *node)
{
	char addr[SERVER_TEXT_MAX];
	const char *port = NULL, *close;
	size_t len = strlen(text);
	unsigned long p = 53;
	char *end;

	memset(node, 0, sizeof(*node));
	if (len >= sizeof(addr))
		return "not an IP address";
	if (text[0] == '[') {
		close = strchr(text, ']');
		if (close == NULL)
			return "missing ']'";
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return "junk after ']'";
		memcpy(addr, text + 1, (size_t)(close - text - 1));
		addr[close - text - 1] = '\0';
		if (inet_pton(AF_INET6, addr, &node->addr.addr6) != 1)
			return "not an IPv6 address";
		node->family = AF_INET6;
	} else {
		const char *colon = strchr(text, ':');

		if (colon != NULL && strchr(colon + 1, ':') == NULL) {
			/* One colon: IPV4:PORT. */
			memcpy(addr, text, (size_t)(colon - text));
			addr[colon - text] = '\0';
			port = colon + 1;
			if (inet_pton(AF_INET, addr, &node->addr.addr4) != 1)
				return "not an IP address";
			node->family = AF_INET;
		} else if (colon != NULL) {
			if (inet_pton(AF_INET6, text, &node->addr.addr6) != 1)
				return "not an IP address";
			node->family = AF_INET6;
		} else {
			if (inet_pton(AF_INET, text, &node->addr.addr4) != 1)
				return "not an IP address";
			node->family = AF_INET;
		}
	}
	if (port != NULL) {
		if (*port < '0' || *port > '9')
			return "bad port (expected 1 to 65535)";
		errno = 0;
		p = strtoul(port, &end, 10);
		if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
			return "bad port (expected 1 to 65535)";
	}
	node->udp_port = (int)p;
	node->tcp_port = (int)p;
	return NULL;
}

/* Append the canonical text of node to r->desc. */
static void
describe_server(struct mw_dns *r, const struct ares_addr_port_node *node)
{
	char ip[INET6_ADDRSTRLEN];
	size_t used = strlen(r->desc);
	int n;

	/* The port is 0 when c-ares reports the default from resolv.conf. */
	inet_ntop(node->family, &node->addr, ip, sizeof(ip));
	n = snprintf(r->desc + used, sizeof(r->desc) - used,
	    node->family == AF_INET6 ? "%s[%s]:%d" : "%s%s:%d",
	    used > 0 ? " " : "", ip, node->udp_port ? node->udp_port : 53);
	/* desc is sized for MW_DNS_MAX_SERVERS entries of maximal length. */
	assert(n > 0 && (size_t)n < sizeof(r->desc) - used);
}

static bool
parse_servers(struct mw_dns *r, const char *list, char *err, size_t errlen)
{
	const char *p = list, *why;
	char entry[SERVER_TEXT_MAX + 1];
	size_t len;

	for (;;) {
		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		len = strcspn(p, " \t,");
		if (len >= sizeof(entry)) {
			seterr(err, errlen,
			    "dns_servers: '%.*s...': not an IP address",
			    (int)SERVER_TEXT_MAX, p);
			return false;
		}
		memcpy(entry, p, len);
		entry[len] = '\0';
		p += len;
		if (r->nservers == MW_DNS_MAX_SERVERS) {
			seterr(err, errlen, "dns_servers: more than %d servers",
			    MW_DNS_MAX_SERVERS);
			return false;
		}
		why = parse_server(entry, &r->servers[r->nservers]);
		if (why != NULL) {
			seterr(err, errlen, "dns_servers: '%s': %s", entry,
			    why);
			return false;
		}
		r->nservers++;
	}
	return true;
}

/* The servers of /etc/resolv.conf, as c-ares reads them. */
static bool
system_servers(struct mw_dns *r, char *err, size_t errlen)
{
	struct ares_addr_port_node *list = NULL, *s;
	ares_channel ch;
	int rc;

	rc = ares_init(&ch);
	if (rc != ARES_SUCCESS) {
		seterr(err, errlen,
		    "dns_servers: cannot read the system "
		    "resolver configuration: %s",
		    ares_strerror(rc));
		return false;
	}
	rc = ares_get_servers_ports(ch, &list);
	ares_destroy(ch);
	if (rc != ARES_SUCCESS) {
		seterr(err, errlen, "dns_servers: %s", ares_strerror(rc));
		return false;
	}
	for (s = list; s != NULL; s = s->next) {
		if (r->nservers == MW_DNS_MAX_SERVERS)
			break; /* c-ares itself uses only the first few */
		r->servers[r->nservers] = *s;
		r->servers[r->nservers].next = NULL;
		r->nservers++;
	}
	ares_free_data(list);
	if (r->nservers == 0) {
		seterr(err, errlen,
		    "dns_servers: no name server in the system "
		    "resolver configuration");
		return false;
	}
	return true;
}

struct mw_dns *
mw_dns_new(const char *servers, unsigned timeout_ms, char *err, size_t errlen)
{
	struct mw_dns *r;
	size_t i;
	unsigned rounds;

	seterr(err, errlen, "%s", "");
	if (timeout_ms < 1 || timeout_ms > MW_DNS_MAX_TIMEOUT) {
		seterr(err, errlen,
		    "dns_timeout: %u ms is out of range (1 to %u)", timeout_ms,
		    MW_DNS_MAX_TIMEOUT);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (!lib_ref(err, errlen)) {
		free(r);
		return NULL;
	}
	if (servers != NULL && servers[strspn(servers, " \t,")] != '\0') {
		if (!parse_servers(r, servers, err, errlen))
			goto fail;
	} else if (!system_servers(r, err, errlen)) {
		goto fail;
	}
	for (i = 0; i < r->nservers; i++) {
		r->servers[i].next =
		    i + 1 < r->nservers ? &r->servers[i + 1] : NULL;
		describe_server(r, &r->servers[i]);
	}
	/*
	 * c-ares sends to each server in turn, twice (ARES_OPT_TRIES 2),
	 * doubling the per-try timeout in the second round: the whole
	 * schedule takes 3 * nservers * try_ms, which this makes equal to
	 * the timeout.  The floor keeps retransmissions from flooding a
	 * slow server; the query deadline still ends the query on time.
	 */
	rounds = 3 * (unsigned)r->nservers;
	r->try_ms = timeout_ms / rounds;
	if (r->try_ms < 50)
		r->try_ms = 50;
	r->timeout_ms = timeout_ms;
	atomic_init(&r->refs, 1);
	atomic_init(&r->inflight, 0);
	return r;
fail:
	lib_unref();
	free(r);
	return NULL;
}

void
mw_dns_free(struct mw_dns *r)
{
	if (r == NULL)
		return;
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	assert(atomic_load(&r->inflight) == 0);
	free(r);
	lib_unref();
}

const char *
mw_dns_servers(const struct mw_dns *r)
{
	return r->desc;
}

unsigned
mw_dns_timeout(const struct mw_dns *r)
{
	return r->timeout_ms;
}

struct mw_dns *
mw_dns_ref(const struct mw_dns *cr)
{
	/* Only the atomic count changes; the rest stays immutable. */
	struct mw_dns *r = (struct mw_dns *)cr;

	assert(atomic_load(&r->refs) > 0);
	atomic_fetch_add(&r->refs, 1);
	return r;
}

const struct ares_addr_port_node *
mw_dns_ares_servers(const struct mw_dns *r, size_t *n)
{
	*n = r->nservers;
	return r->servers;
}

/* Queries. */

static void
now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

/* Milliseconds from a to b, rounded up; 0 if b is not after a. */
static long long
ms_until(const struct timespec *a, const struct timespec *b)
{
	long long ns = (long long)(b->tv_sec - a->tv_sec) * 1000000000LL +
	    (b->tv_nsec - a->tv_nsec);

	if (ns <= 0)
		return 0;
	return (ns + 999999) / 1000000;
}

static bool
before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	    (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void
add_ms(struct timespec *ts, long long ms)
{
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/*
 * c-ares's answer callback: keep the answer.  Called from ares_query (for
 * errors found at once), from ares_process_fd, or from ares_destroy with
 * ARES_EDESTRUCTION, always in the thread that owns the query.
 */
static void
query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *q = arg;

	(void)timeouts;
	if (q->done)
		return;
	q->done = true;
	q->status = status;
	if (abuf == NULL || alen <= 0 || status == ARES_EDESTRUCTION)
		return;
	if (q->buf != NULL) {
		if ((size_t)alen > q->buflen) {
			q->toobig = true;
			return;
		}
		memcpy(q->buf, abuf, (size_t)alen);
	} else {
		q->own = malloc((size_t)alen);
		if (q->own == NULL) {
			q->status = ARES_ENOMEM;
			return;
		}
		memcpy(q->own, abuf, (size_t)alen);
	}
	q->anslen = (size_t)alen;
}

/*
 * Start a query for name/type.  On false, err says why, the query owns
 * nothing and needs no query_end.  On true, query_end must follow.
 */
static bool
query_start(struct query *q, struct mw_dns *r, const char *name, int type,
    unsigned char *buf, size_t buflen, char *err, size_t errlen)
{
	struct ares_options opt;
	int rc, mask;

	memset(q, 0, sizeof(*q));
	q->r = r;
	q->buf = buf;
	q->buflen = buflen;
	now(&q->deadline);
	add_ms(&q->deadline, r->timeout_ms);

	if (atomic_fetch_add(&r->inflight, 1) >= MW_DNS_MAX_INFLIGHT) {
		atomic_fetch_sub(&r->inflight, 1);
		seterr(err, errlen, "more than %d DNS queries in flight",
		    MW_DNS_MAX_INFLIGHT);
		return false;
	}

	/*
	 * Every setting c-ares would take from /etc/resolv.conf is given
	 * here (servers set just below), so ares_init_options reads no
	 * file but /dev/urandom.  Names are always absolute: no search list.
	 */
	memset(&opt, 0, sizeof(opt));
	opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opt.timeout = (int)r->try_ms;
	opt.tries = 2;
	opt.ndots = 1;
	opt.servers = NULL;
	opt.nservers = 0;
	opt.domains = NULL;
	opt.ndomains = 0;
	opt.lookups = (char *)"b";
	opt.sortlist = NULL;
	opt.nsort = 0;
	mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_NDOTS | ARES_OPT_SERVERS | ARES_OPT_DOMAINS |
	    ARES_OPT_LOOKUPS | ARES_OPT_SORTLIST;
	rc = ares_init_options(&q->ch, &opt, mask);
	if (rc != ARES_SUCCESS) {
		atomic_fetch_sub(&r->inflight, 1);
		seterr(err, errlen, "c-ares: %s", ares_strerror(rc));
		return false;
	}
	q->have_ch = true;
	rc = ares_set_servers_ports(q->ch, r->servers);
	if (rc != ARES_SUCCESS) {
		ares_destroy(q->ch);
		q->have_ch = false;
		atomic_fetch_sub(&r->inflight, 1);
		seterr(err, errlen, "c-ares: %s", ares_strerror(rc));
		return false;
	}
	ares_query(q->ch, name, ns_c_in, type, query_cb, q);
	return true;
}

/* End a started query: close its sockets, free what it owns. */
static void
query_end(struct query *q)
{
	if (q->have_ch) {
		/* Calls query_cb with ARES_EDESTRUCTION if still pending. */
		ares_destroy(q->ch);
		q->have_ch = false;
		atomic_fetch_sub(&q->r->inflight, 1);
	}
	free(q->own);
	q->own = NULL;
}

/*
 * Drive the query until c-ares calls back, its deadline passes, or limit
 * (when not NULL, an absolute CLOCK_MONOTONIC time) passes.
 */
static enum wait_result
query_wait(struct query *q, const struct timespec *limit)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd pfd[ARES_GETSOCK_MAXNUM];
	struct timeval tv, *tvp, maxtv;
	struct timespec t, end;
	unsigned bits;
	long long wait_ms;
	int i, n, rc;

	while (!q->done) {
		now(&t);
		if (!before(&t, &q->deadline))
			return WAIT_EXPIRED;
		end = q->deadline;
		if (limit != NULL && before(limit, &end)) {
			if (!before(&t, limit))
				return WAIT_LIMIT;
			end = *limit;
		}
		wait_ms = ms_until(&t, &end);
		/* Wake for c-ares's own retransmission timer too. */
		maxtv.tv_sec = (time_t)(wait_ms / 1000);
		maxtv.tv_usec = (suseconds_t)(wait_ms % 1000) * 1000;
		tvp = ares_timeout(q->ch, &maxtv, &tv);
		if (tvp != NULL) {
			long long c = (long long)tvp->tv_sec * 1000 +
			    (tvp->tv_usec + 999) / 1000;
			if (c < wait_ms)
				wait_ms = c;
		}

		/*
		 * The socket bits are tested as unsigned: c-ares's
		 * ARES_GETSOCK_WRITABLE shifts a signed 1 into the sign bit
		 * for the last socket, which is undefined behaviour.
		 */
		bits =
		    (unsigned)ares_getsock(q->ch, socks, ARES_GETSOCK_MAXNUM);
		n = 0;
		for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			if (bits & (1u << i))
				ev |= POLLIN;
			if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev == 0)
				continue;
			pfd[n].fd = socks[i];
			pfd[n].events = ev;
			pfd[n].revents = 0;
			n++;
		}
		rc = poll(pfd, (nfds_t)n, (int)wait_ms);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return WAIT_FAILED;
		}
		for (i = 0; i < n && !q->done; i++) {
			ares_socket_t rd = ARES_SOCKET_BAD,
				      wr = ARES_SOCKET_BAD;

			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				rd = pfd[i].fd;
			if (pfd[i].revents & POLLOUT)
				wr = pfd[i].fd;
			if (rd != ARES_SOCKET_BAD || wr != ARES_SOCKET_BAD)
				ares_process_fd(q->ch, rd, wr);
		}
		/* Retransmissions and c-ares's own timeouts. */
		if (!q->done)
			ares_process_fd(q->ch, ARES_SOCKET_BAD,
			    ARES_SOCKET_BAD);
	}
	return WAIT_DONE;
}

/* libopendkim hooks.  srv is our resolver; qh a struct query. */

static int
hook_start(void *srv, int type, unsigned char *name, unsigned char *buf,
    size_t buflen, void **qh)
{
	struct query *q;

	if (srv == NULL || name == NULL || buf == NULL || qh == NULL)
		return DKIM_DNS_INVALID;
	q = malloc(sizeof(*q));
	if (q == NULL)
		return DKIM_DNS_ERROR;
	if (!query_start(q, srv, (const char *)name, type, buf, buflen, NULL,
		0)) {
		free(q);
		return DKIM_DNS_ERROR;
	}
	*qh = q;
	return DKIM_DNS_SUCCESS;
}

/* libopendkim calls this after every started query, answered or not. */
static int
hook_cancel(void *srv, void *qh)
{
	struct query *q = qh;

	(void)srv;
	if (q != NULL) {
		query_end(q);
		free(q);
	}
	return 0;
}

/*
 * Wait for the answer.  libopendkim treats anything but DKIM_DNS_SUCCESS,
 * DKIM_DNS_EXPIRED and DKIM_DNS_ERROR as "an answer is in the buffer" when
 * it has no DNS callback set, so an unanswered query is reported as
 * DKIM_DNS_EXPIRED, never DKIM_DNS_NOREPLY, also when only libopendkim's
 * shorter wait (to) ran out; with a DNS callback set it then calls the
 * callback and waits again on the same query, which stays alive.
 */
static int
hook_waitreply(void *srv, void *qh, struct timeval *to, size_t *bytes,
    int *error, int *dnssec)
{
	struct query *q = qh;
	struct timespec limit;
	enum wait_result w;

	(void)srv;
	if (dnssec != NULL)
		*dnssec = DKIM_DNSSEC_UNKNOWN;
	if (bytes != NULL)
		*bytes = 0;
	if (error != NULL)
		*error = 0;
	if (q == NULL)
		return DKIM_DNS_INVALID;
	if (to != NULL) {
		now(&limit);
		add_ms(&limit,
		    (long long)to->tv_sec * 1000 + to->tv_usec / 1000);
	}
	w = query_wait(q, to != NULL ? &limit : NULL);
	switch (w) {
	case WAIT_DONE: break;
	case WAIT_EXPIRED:
	case WAIT_LIMIT:
		if (error != NULL)
			*error = ETIMEDOUT;
		return DKIM_DNS_EXPIRED;
	case WAIT_FAILED:
	default:
		if (error != NULL)
			*error = EIO;
		return DKIM_DNS_ERROR;
	}
	/*
	 * An answer packet, even NXDOMAIN or SERVFAIL, goes to libopendkim,
	 * which reads the rcode itself.  No packet: c-ares gave up.
	 */
	if (q->anslen > 0 && !q->toobig) {
		if (bytes != NULL)
			*bytes = q->anslen;
		return DKIM_DNS_SUCCESS;
	}
	if (error != NULL)
		*error = q->status == ARES_ETIMEOUT ? ETIMEDOUT : EIO;
	return q->status == ARES_ETIMEOUT ? DKIM_DNS_EXPIRED : DKIM_DNS_ERROR;
}

/* dkim_close: drop the library handle's reference. */
static void
hook_close(void *srv)
{
	mw_dns_free(srv);
}

/*
 * The init hook has no way to find our resolver, and libopendkim calls it
 * only when the service handle is NULL (after dkim_dns_close): fail, so
 * the library reports a key failure instead of silently using another
 * resolver.
 */
static int
hook_init(void **srv)
{
	(void)srv;
	return -1;
}

/* Servers, configuration and trust anchors are fixed by mw_dns_new. */
static int
hook_refuse(void *srv, const char *arg)
{
	(void)srv;
	(void)arg;
	return -1;
}

int
mw_dns_attach(struct dkim_lib *lib, struct mw_dns *r, char *err, size_t errlen)
{
	void *prev;

	if (lib == NULL || r == NULL) {
		seterr(err, errlen, "mw_dns_attach: no library or resolver");
		return -1;
	}
	/*
	 * Shut down whatever libopendkim started: after dkim_dns_init the
	 * flagged service is closed by dkim_dns_close; a service it made
	 * lazily for a first query (dkim_res_init: a malloc'd res_state
	 * from res_ninit) is closed by dkim_dns_init, which closes the
	 * current service with the current (default) close hook before
	 * calling the init hook -- ours, which refuses, so nothing new is
	 * made.  Both leave the service handle NULL.
	 */
	(void)dkim_dns_close(lib);
	dkim_dns_set_init(lib, hook_init);
	(void)dkim_dns_init(lib);
	prev = dkim_dns_set_query_service(lib, NULL);
	if (prev != NULL) {
		/* Cannot happen with libopendkim 2.10/2.11; refuse to leak. */
		(void)dkim_dns_set_query_service(lib, prev);
		seterr(err, errlen,
		    "mw_dns_attach: libopendkim's resolver "
		    "could not be shut down");
		return -1;
	}

	dkim_dns_set_close(lib, hook_close);
	dkim_dns_set_query_start(lib, hook_start);
	dkim_dns_set_query_cancel(lib, hook_cancel);
	dkim_dns_set_query_waitreply(lib, hook_waitreply);
	dkim_dns_set_nslist(lib, hook_refuse);
	dkim_dns_set_config(lib, hook_refuse);
	dkim_dns_set_trustanchor(lib, hook_refuse);
	atomic_fetch_add(&r->refs, 1);
	(void)dkim_dns_set_query_service(lib, r);
	return 0;
}

/* Direct lookups. */

struct rr {
	unsigned type, class, ttl, rdlen;
	const unsigned char *rdata;
};

/* A packet being walked: p moves forward, never past end. */
struct walk {
	const unsigned char *pkt, *p, *end;
};

static unsigned
get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static unsigned
get32(const unsigned char *p)
{
	return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 |
	    (unsigned)p[2] << 8 | p[3];
}

/* Skip a domain name (labels, ending in a root label or a pointer). */
static bool
skip_name(struct walk *w)
{
	while (w->p < w->end) {
		unsigned c = *w->p;

		if (c == 0) {
			w->p++;
			return true;
		}
		if ((c & 0xc0) == 0xc0) {
			if (w->end - w->p < 2)
				return false;
			w->p += 2;
			return true;
		}
		if ((c & 0xc0) != 0)
			return false; /* reserved label types */
		if ((size_t)(w->end - w->p) < 1 + (size_t)c)
			return false;
		w->p += 1 + c;
	}
	return false;
}

static bool
next_rr(struct walk *w, struct rr *rr)
{
	if (!skip_name(w) || w->end - w->p < 10)
		return false;
	rr->type = get16(w->p);
	rr->class = get16(w->p + 2);
	rr->ttl = get32(w->p + 4);
	/* RFC 2181 section 8: a TTL with the top bit set means zero. */
	if (rr->ttl > INT32_MAX)
		rr->ttl = 0;
	rr->rdlen = get16(w->p + 8);
	w->p += 10;
	if ((size_t)(w->end - w->p) < rr->rdlen)
		return false;
	rr->rdata = w->p;
	w->p += rr->rdlen;
	return true;
}

/*
 * What a lookup collects from the answer section: the callback is given
 * each record of the wanted type and returns MW_DNS_FOUND to go on, or a
 * result code (with err set) to stop.
 */
typedef int (*rr_fn)(void *ctx, const struct rr *rr, char *err, size_t errlen);

/*
 * Walk an answer packet: check the header, pass every IN record of the
 * wanted type to fn, compute the TTL.  Returns a MW_DNS_* code.
 */
static int
walk_answer(const unsigned char *pkt, size_t len, const char *name,
    unsigned type, rr_fn fn, void *ctx, unsigned *ttl, char *err, size_t errlen)
{
	struct walk w = { pkt, pkt + 12, pkt + len };
	unsigned flags, rcode, qd, an, ns, i, found = 0, minttl = UINT_MAX;
	struct rr rr;
	char why[128];
	int rc;

	if (len < 12) {
		seterr(err, errlen, "%s: malformed answer", name);
		return MW_DNS_TEMPFAIL;
	}
	flags = get16(pkt + 2);
	rcode = flags & 0x0f;
	qd = get16(pkt + 4);
	an = get16(pkt + 6);
	ns = get16(pkt + 8);
	if (flags & 0x0200) {
		/* c-ares retries over TCP, so this means TCP failed too. */
		seterr(err, errlen, "%s: truncated answer", name);
		return MW_DNS_TEMPFAIL;
	}
	if (rcode != ns_r_noerror && rcode != ns_r_nxdomain) {
		seterr(err, errlen, "%s: server answered rcode %u", name,
		    rcode);
		return MW_DNS_TEMPFAIL;
	}
	for (i = 0; i < qd; i++) {
		if (!skip_name(&w) || w.end - w.p < 4) {
			seterr(err, errlen, "%s: malformed answer", name);
			return MW_DNS_TEMPFAIL;
		}
		w.p += 4;
	}
	if (rcode == ns_r_noerror) {
		for (i = 0; i < an; i++) {
			if (!next_rr(&w, &rr)) {
				seterr(err, errlen, "%s: malformed answer",
				    name);
				return MW_DNS_TEMPFAIL;
			}
			if (rr.class != ns_c_in)
				continue;
			if (rr.type != type && rr.type != ns_t_cname)
				continue;
			if (rr.ttl < minttl)
				minttl = rr.ttl;
			if (rr.type != type)
				continue;
			found++;
			rc = fn(ctx, &rr, why, sizeof(why));
			if (rc != MW_DNS_FOUND) {
				seterr(err, errlen, "%s: %s", name, why);
				return rc;
			}
		}
		if (found > 0) {
			if (ttl != NULL)
				*ttl = minttl;
			return MW_DNS_FOUND;
		}
	} else {
		/* Skip the answer section (a CNAME chain may be there). */
		for (i = 0; i < an; i++) {
			if (!next_rr(&w, &rr)) {
				seterr(err, errlen, "%s: malformed answer",
				    name);
				return MW_DNS_TEMPFAIL;
			}
		}
	}
	/* Negative answer: the SOA in the authority section gives the TTL
	 * (RFC 2308: the lower of its own TTL and its MINIMUM field). */
	for (i = 0; i < ns; i++) {
		if (!next_rr(&w, &rr))
			break; /* the negative answer stands without a TTL */
		if (rr.type == ns_t_soa && rr.class == ns_c_in &&
		    rr.rdlen >= 20) {
			unsigned minimum = get32(rr.rdata + rr.rdlen - 4);

			if (ttl != NULL)
				*ttl = minimum < rr.ttl ? minimum : rr.ttl;
			break;
		}
	}
	seterr(err, errlen, "%s: %s", name,
	    rcode == ns_r_nxdomain ? "no such domain (NXDOMAIN)"
				   : "no record of that type");
	return MW_DNS_NOTFOUND;
}

/*
 * Look name up and walk the answer with fn.  Returns a MW_DNS_* code.
 */
static int
lookup(const struct mw_dns *cr, const char *name, unsigned type, rr_fn fn,
    void *ctx, unsigned *ttl, char *err, size_t errlen)
{
	/* Queries change only the atomic in-flight count. */
	struct mw_dns *r = (struct mw_dns *)cr;
	struct query q;
	size_t len;
	int rc;

	if (ttl != NULL)
		*ttl = 0;
	seterr(err, errlen, "%s", "");
	if (r == NULL || name == NULL) {
		seterr(err, errlen, "no resolver or no name");
		return MW_DNS_ERROR;
	}
	len = strlen(name);
	if (len == 0 || len > NAME_MAX_LEN ||
	    (len == NAME_MAX_LEN && name[len - 1] != '.')) {
		seterr(err, errlen, "'%.64s%s': not a valid domain name", name,
		    len > 64 ? "..." : "");
		return MW_DNS_ERROR;
	}
	if (!query_start(&q, r, name, (int)type, NULL, 0, err, errlen))
		return MW_DNS_TEMPFAIL;
	switch (query_wait(&q, NULL)) {
	case WAIT_DONE: break;
	case WAIT_EXPIRED:
	case WAIT_LIMIT:
		seterr(err, errlen, "%s: no answer within %u ms", name,
		    r->timeout_ms);
		query_end(&q);
		return MW_DNS_TEMPFAIL;
	case WAIT_FAILED:
	default:
		seterr(err, errlen, "%s: poll: %s", name, strerror(errno));
		query_end(&q);
		return MW_DNS_TEMPFAIL;
	}
	if (q.anslen == 0) {
		/* c-ares gave up without an answer. */
		rc = q.status == ARES_EBADNAME ? MW_DNS_ERROR : MW_DNS_TEMPFAIL;
		if (q.status == ARES_ETIMEOUT)
			seterr(err, errlen, "%s: no answer within %u ms", name,
			    r->timeout_ms);
		else
			seterr(err, errlen, "%s: %s", name,
			    ares_strerror(q.status));
		query_end(&q);
		return rc;
	}
	rc =
	    walk_answer(q.own, q.anslen, name, type, fn, ctx, ttl, err, errlen);
	query_end(&q);
	return rc;
}

struct txt_ctx {
	char *out;
	size_t outlen;
	size_t used;
	unsigned records;
};

static int
txt_rr(void *arg, const struct rr *rr, char *err, size_t errlen)
{
	struct txt_ctx *t = arg;
	const unsigned char *p = rr->rdata, *end = rr->rdata + rr->rdlen;
	size_t total = 0;

	if (++t->records > 1) {
		seterr(err, errlen, "more than one TXT record");
		return MW_DNS_ERROR;
	}
	/* Measure first so a too-long record is refused whole. */
	while (p < end) {
		size_t n = *p;

		if ((size_t)(end - p) < 1 + n) {
			seterr(err, errlen, "malformed TXT record");
			return MW_DNS_TEMPFAIL;
		}
		if (memchr(p + 1, '\0', n) != NULL) {
			seterr(err, errlen, "TXT record contains a NUL byte");
			return MW_DNS_ERROR;
		}
		total += n;
		p += 1 + n;
	}
	if (total >= t->outlen) {
		seterr(err, errlen,
		    "TXT record of %zu bytes does not fit in %zu bytes", total,
		    t->outlen);
		return MW_DNS_ERROR;
	}
	for (p = rr->rdata; p < end; p += 1 + *p) {
		memcpy(t->out + t->used, p + 1, *p);
		t->used += *p;
	}
	t->out[t->used] = '\0';
	return MW_DNS_FOUND;
}

int
mw_dns_txt(const struct mw_dns *r, const char *name, char *out, size_t outlen,
    unsigned *ttl, char *err, size_t errlen)
{
	struct txt_ctx t = { out, outlen, 0, 0 };
	int rc;

	if (out == NULL || outlen == 0) {
		seterr(err, errlen, "mw_dns_txt: no output buffer");
		return MW_DNS_ERROR;
	}
	out[0] = '\0';
	rc = lookup(r, name, ns_t_txt, txt_rr, &t, ttl, err, errlen);
	if (rc != MW_DNS_FOUND) {
		out[0] = '\0';
		if (rc != MW_DNS_NOTFOUND && ttl != NULL)
			*ttl = 0;
	}
	return rc;
}

struct a_ctx {
	struct in_addr *out;
	size_t max, n;
};

static int
a_rr(void *arg, const struct rr *rr, char *err, size_t errlen)
{
	struct a_ctx *a = arg;

	if (rr->rdlen != 4) {
		seterr(err, errlen, "malformed A record");
		return MW_DNS_TEMPFAIL;
	}
	if (a->n == a->max) {
		seterr(err, errlen, "more than %zu A records", a->max);
		return MW_DNS_ERROR;
	}
	memcpy(&a->out[a->n].s_addr, rr->rdata, 4);
	a->n++;
	return MW_DNS_FOUND;
}

int
mw_dns_a(const struct mw_dns *r, const char *name, struct in_addr *out,
    size_t max, size_t *n, unsigned *ttl, char *err, size_t errlen)
{
	struct a_ctx a = { out, max, 0 };
	int rc;

	if (n != NULL)
		*n = 0;
	if (n == NULL || (out == NULL && max > 0)) {
		seterr(err, errlen, "mw_dns_a: no output buffer");
		return MW_DNS_ERROR;
	}
	rc = lookup(r, name, ns_t_a, a_rr, &a, ttl, err, errlen);
	if (rc == MW_DNS_FOUND)
		*n = a.n;
	else if (rc != MW_DNS_NOTFOUND && ttl != NULL)
		*ttl = 0;
	return rc;
}
