/*
 * dnsbl.c -- DNS blocklist lookups (RFC 5782): one message's lookups at
 * once, bounded by a time budget, cached with their TTL.
 *
 * mw_dns (dns.c) answers one query at a time, which is right for a DKIM
 * key but not for blocklists: a message may need a dozen lookups (the
 * client address in three zones, the sender and HELO domains, URL hosts),
 * and asked one after another a silent server would cost a dozen
 * timeouts.  Here every lookup of a call goes out on one c-ares channel
 * before any answer is awaited, and one poll loop waits for all of them
 * until the earlier of the resolver's per-query timeout and the caller's
 * budget.  The channel lives for one call only, so calls from different
 * threads share nothing but the cache; it gets the servers and timeout of
 * the mw_dns it was made from, and every option c-ares would otherwise
 * read from /etc/resolv.conf.
 *
 * Sockets are tracked through c-ares's socket-state callback rather than
 * ares_getsock: no limit of 16 sockets and no bit masks (whose
 * ARES_GETSOCK_WRITABLE macro shifts into the sign bit).  Waiting is
 * poll, not select, because a busy milter may hold descriptors above
 * FD_SETSIZE.
 *
 * Answers are read by a small bounds-checked walker: c-ares's
 * ares_parse_a_reply gives no negative-caching TTL.  Only answers a
 * blocklist can mean are taken: A records in 127.0.0.0/8 are a listing,
 * NXDOMAIN or no A record is "not listed".  Anything else (SERVFAIL,
 * REFUSED, a timeout, an address outside 127/8 as a resolver that
 * rewrites NXDOMAIN would give) is "no answer", which the policy treats as
 * not listed but records, and which is never cached.
 *
 * The cache is a hash table of query names with an LRU list, bounded in
 * entries, under one mutex that is never held while waiting for the
 * network.  The hash is seeded at random: the names come from mail.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/random.h>
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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>

#include "mw_dns.h"
#include "mw_dnsbl.h"

/*
 * Sockets of one channel: c-ares 1.x opens at most one UDP and one TCP
 * socket per server (MW_DNS_MAX_SERVERS), closing one before it replaces
 * it.
 */
#define MAX_SOCKS (2 * MW_DNS_MAX_SERVERS + 8)

/* A cached answer. */
struct entry {
	struct entry *hnext;       /* hash chain */
	struct entry *prev, *next; /* LRU list, most recently used first */
	uint64_t expires;          /* CLOCK_MONOTONIC, ms */
	uint32_t hash;
	bool listed;
	size_t ncodes;
	uint32_t codes[MW_DNSBL_MAX_CODES];
	char key[]; /* the query name */
};

struct mw_dnsbl {
	struct mw_dns *dns; /* our reference */
	const struct ares_addr_port_node *servers;
	size_t nservers;
	unsigned timeout_ms; /* per query */
	unsigned try_ms;     /* c-ares's first-try timeout */
	uint32_t seed;

	pthread_mutex_t lock; /* protects everything below */
	unsigned min_ttl, max_ttl;
	size_t max_entries, nentries;
	size_t nbuckets; /* a power of two; 0 without a cache */
	struct entry **buckets;
	struct entry *head, *tail;
	struct mw_dnsbl_stats st;
};

/* One distinct query name of a call, and what became of it. */
struct pend {
	char qname[MW_DNSBL_NAME_MAX];
	struct run *run;
	bool cached; /* answered from the cache */
	bool sent;   /* handed to c-ares */
	bool done;   /* c-ares called back */
	enum mw_dnsbl_state state;
	uint32_t codes[MW_DNSBL_MAX_CODES];
	size_t ncodes;
	unsigned ttl; /* seconds, for the cache */
	bool ttl_soa; /* a negative answer's TTL came from an SOA */
	const char *why;
};

/* The sockets c-ares wants watched, from its socket-state callback. */
struct sock {
	ares_socket_t fd;
	bool rd, wr;
};

struct run {
	struct sock socks[MAX_SOCKS];
	size_t nsocks;
	size_t outstanding; /* sent, not yet called back */
};

/* Time. */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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

/* Query names. */

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/*
 * Is s a host name (see mw_dnsbl_qname)?  *len receives its length
 * without the final dot.
 */
static bool
host_name(const char *s, size_t *len)
{
	size_t n = strlen(s), i, label = 0;

	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return false;
	for (i = 0; i <= n; i++) {
		char c = i < n ? s[i] : '.';

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	*len = n;
	return true;
}

/*
 * The reversed form of an IP literal with a final dot, e.g.
 * "2.0.0.127."; false if subject is not one.  out has room for 65 bytes.
 */
static bool
reverse_ip(const char *subject, char *out)
{
	static const char hex[] = "0123456789abcdef";
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} a;
	const unsigned char *v4 = NULL, *v6 = a.v6.s6_addr;
	int i;

	if (inet_pton(AF_INET, subject, &a.v4) == 1) {
		v4 = (const unsigned char *)&a.v4.s_addr;
	} else if (inet_pton(AF_INET6, subject, &a.v6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a.v6))
			v4 = v6 + 12;
	} else {
		return false;
	}
	if (v4 != NULL) {
		(void)sprintf(out, "%u.%u.%u.%u.", v4[3], v4[2], v4[1], v4[0]);
		return true;
	}
	for (i = 15; i >= 0; i--) {
		*out++ = hex[v6[i] & 0x0f];
		*out++ = '.';
		*out++ = hex[v6[i] >> 4];
		*out++ = '.';
	}
	*out = '\0';
	return true;
}

bool
mw_dnsbl_qname(const char *subject, bool is_ip, const char *zone, char *out,
    size_t size)
{
	char rev[72];
	size_t slen, zlen, total, i, k = 0;

	if (out != NULL && size > 0)
		out[0] = '\0';
	if (subject == NULL || zone == NULL || out == NULL)
		return false;
	if (!host_name(zone, &zlen))
		return false;
	if (is_ip) {
		/* "2.0.0.127." : the reversed form ends in its dot. */
		if (!reverse_ip(subject, rev))
			return false;
		subject = rev;
		slen = strlen(rev);
		total = slen + zlen;
	} else {
		if (!host_name(subject, &slen))
			return false;
		total = slen + 1 + zlen;
	}
	if (total > 253 || total >= size)
		return false;
	for (i = 0; i < slen; i++)
		out[k++] = lower(subject[i]);
	if (!is_ip)
		out[k++] = '.';
	for (i = 0; i < zlen; i++)
		out[k++] = lower(zone[i]);
	out[k] = '\0';
	assert(k == total);
	return true;
}

/* The cache.  All of these need b->lock held. */

static uint32_t
hash_key(const struct mw_dnsbl *b, const char *key)
{
	uint32_t h = 2166136261u ^ b->seed;

	/* FNV-1a over the name, then a finalizer to spread the bits. */
	for (; *key != '\0'; key++) {
		h ^= (unsigned char)*key;
		h *= 16777619u;
	}
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static void
lru_unlink(struct mw_dnsbl *b, struct entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		b->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		b->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
lru_front(struct mw_dnsbl *b, struct entry *e)
{
	e->prev = NULL;
	e->next = b->head;
	if (b->head != NULL)
		b->head->prev = e;
	b->head = e;
	if (b->tail == NULL)
		b->tail = e;
}

static void
cache_remove(struct mw_dnsbl *b, struct entry *e)
{
	struct entry **pp = &b->buckets[e->hash & (b->nbuckets - 1)];

	while (*pp != e) {
		assert(*pp != NULL);
		pp = &(*pp)->hnext;
	}
	*pp = e->hnext;
	lru_unlink(b, e);
	free(e);
	assert(b->nentries > 0);
	b->nentries--;
}

static struct entry *
cache_find(struct mw_dnsbl *b, const char *key, uint32_t h)
{
	struct entry *e;

	for (e = b->buckets[h & (b->nbuckets - 1)]; e != NULL; e = e->hnext)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* Fill p from the cache if its name is there and fresh. */
static bool
cache_get(struct mw_dnsbl *b, struct pend *p, uint64_t now)
{
	struct entry *e;
	uint32_t h;

	if (b->nbuckets == 0)
		return false;
	h = hash_key(b, p->qname);
	e = cache_find(b, p->qname, h);
	if (e == NULL)
		return false;
	if (e->expires <= now) {
		cache_remove(b, e);
		return false;
	}
	lru_unlink(b, e);
	lru_front(b, e);
	p->cached = true;
	p->state = e->listed ? MW_DNSBL_LISTED : MW_DNSBL_NOT_LISTED;
	p->ncodes = e->ncodes;
	memcpy(p->codes, e->codes, sizeof(p->codes));
	return true;
}

/* Cache p's answer for ttl seconds (bounded).  Failure to cache is
 * harmless: the next lookup asks again. */
static void
cache_put(struct mw_dnsbl *b, const struct pend *p, uint64_t now)
{
	struct entry *e;
	size_t len;
	unsigned ttl;
	uint32_t h;

	assert(p->state != MW_DNSBL_NO_ANSWER);
	if (b->nbuckets == 0)
		return;
	if (p->state == MW_DNSBL_NOT_LISTED && !p->ttl_soa)
		ttl = b->min_ttl; /* RFC 2308 would not cache it at all */
	else
		ttl = p->ttl;
	if (ttl < b->min_ttl)
		ttl = b->min_ttl;
	if (ttl > b->max_ttl)
		ttl = b->max_ttl;
	if (ttl == 0)
		return;
	h = hash_key(b, p->qname);
	e = cache_find(b, p->qname, h);
	if (e != NULL) {
		lru_unlink(b, e);
	} else {
		if (b->nentries >= b->max_entries)
			cache_remove(b, b->tail);
		len = strlen(p->qname);
		e = malloc(sizeof(*e) + len + 1);
		if (e == NULL)
			return;
		memcpy(e->key, p->qname, len + 1);
		e->hash = h;
		e->hnext = b->buckets[h & (b->nbuckets - 1)];
		b->buckets[h & (b->nbuckets - 1)] = e;
		b->nentries++;
	}
	lru_front(b, e);
	e->expires = now + (uint64_t)ttl * 1000u;
	e->listed = p->state == MW_DNSBL_LISTED;
	e->ncodes = p->ncodes;
	memcpy(e->codes, p->codes, sizeof(e->codes));
}

/* Handles. */

struct mw_dnsbl *
mw_dnsbl_new(const struct mw_dns *dns, size_t cache_entries, char *err,
    size_t errlen)
{
	struct mw_dnsbl *b;
	size_t nb;

	seterr(err, errlen, "%s", "");
	if (dns == NULL) {
		seterr(err, errlen, "no resolver");
		return NULL;
	}
	if (cache_entries > MW_DNSBL_MAX_CACHE) {
		seterr(err, errlen,
		    "blocklist cache of %zu entries: more than %d",
		    cache_entries, MW_DNSBL_MAX_CACHE);
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (cache_entries > 0) {
		/* About one entry per bucket when full. */
		for (nb = 16; nb < cache_entries; nb *= 2)
			;
		b->buckets = calloc(nb, sizeof(*b->buckets));
		if (b->buckets == NULL) {
			free(b);
			seterr(err, errlen, "out of memory");
			return NULL;
		}
		b->nbuckets = nb;
	}
	if (pthread_mutex_init(&b->lock, NULL) != 0) {
		free(b->buckets);
		free(b);
		seterr(err, errlen, "cannot create a mutex");
		return NULL;
	}
	b->max_entries = cache_entries;
	b->min_ttl = MW_DNSBL_MIN_TTL;
	b->max_ttl = MW_DNSBL_MAX_TTL;
	if (getrandom(&b->seed, sizeof(b->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(b->seed))
		b->seed = (uint32_t)now_ms() ^ (uint32_t)getpid();

	b->dns = mw_dns_ref(dns);
	b->servers = mw_dns_ares_servers(dns, &b->nservers);
	assert(b->nservers > 0);
	b->timeout_ms = mw_dns_timeout(dns);
	/*
	 * The schedule of dns.c: c-ares tries each server in turn, twice,
	 * doubling the per-try timeout the second time, so the whole
	 * schedule takes 3 * nservers * try_ms, which is the timeout.  The
	 * call's deadline ends it anyway.
	 */
	b->try_ms = b->timeout_ms / (3 * (unsigned)b->nservers);
	if (b->try_ms < 50)
		b->try_ms = 50;
	return b;
}

void
mw_dnsbl_free(struct mw_dnsbl *b)
{
	struct entry *e, *next;

	if (b == NULL)
		return;
	for (e = b->head; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	free(b->buckets);
	pthread_mutex_destroy(&b->lock);
	mw_dns_free(b->dns);
	free(b);
}

void
mw_dnsbl_set_ttl(struct mw_dnsbl *b, unsigned min_s, unsigned max_s)
{
	pthread_mutex_lock(&b->lock);
	b->min_ttl = min_s;
	b->max_ttl = max_s < min_s ? min_s : max_s;
	pthread_mutex_unlock(&b->lock);
}

void
mw_dnsbl_stats(struct mw_dnsbl *b, struct mw_dnsbl_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->st;
	out->entries = b->nentries;
	pthread_mutex_unlock(&b->lock);
}

/* Answers. */

static unsigned
get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Step over a domain name at *p (labels ending in a root label or a
 * compression pointer) without passing end. */
static bool
skip_name(const unsigned char **p, const unsigned char *end)
{
	while (*p < end) {
		unsigned c = **p;

		if (c == 0) {
			(*p)++;
			return true;
		}
		if ((c & 0xc0) == 0xc0) {
			if (end - *p < 2)
				return false;
			*p += 2;
			return true;
		}
		if ((c & 0xc0) != 0 || (size_t)(end - *p) < 1 + (size_t)c)
			return false;
		*p += 1 + c;
	}
	return false;
}

struct rr {
	unsigned type, class, rdlen;
	uint32_t ttl;
	const unsigned char *rdata;
};

static bool
next_rr(const unsigned char **p, const unsigned char *end, struct rr *rr)
{
	if (!skip_name(p, end) || end - *p < 10)
		return false;
	rr->type = get16(*p);
	rr->class = get16(*p + 2);
	rr->ttl = get32(*p + 4);
	if (rr->ttl > INT32_MAX) /* RFC 2181 section 8: means zero */
		rr->ttl = 0;
	rr->rdlen = get16(*p + 8);
	*p += 10;
	if ((size_t)(end - *p) < rr->rdlen)
		return false;
	rr->rdata = *p;
	*p += rr->rdlen;
	return true;
}

static void
no_answer(struct pend *p, const char *why)
{
	p->state = MW_DNSBL_NO_ANSWER;
	p->ncodes = 0;
	p->why = why;
}

/*
 * Read an answer packet into p.  Returns NULL, or why the answer is no
 * usable answer.
 */
static const char *
parse_answer(struct pend *p, const unsigned char *pkt, size_t len)
{
	const unsigned char *q = pkt + 12, *end = pkt + len;
	unsigned flags, rcode, qd, an, ns, i;
	uint32_t minttl = UINT32_MAX;
	bool outside = false;
	struct rr rr;

	if (len < 12)
		return "malformed answer";
	flags = get16(pkt + 2);
	rcode = flags & 0x0f;
	qd = get16(pkt + 4);
	an = get16(pkt + 6);
	ns = get16(pkt + 8);
	if (flags & 0x0200)
		return "truncated answer";
	if (rcode == ns_r_servfail)
		return "server failure";
	if (rcode == ns_r_refused)
		return "query refused";
	if (rcode != ns_r_noerror && rcode != ns_r_nxdomain)
		return "unexpected answer code";
	for (i = 0; i < qd; i++) {
		if (!skip_name(&q, end) || end - q < 4)
			return "malformed answer";
		q += 4;
	}
	for (i = 0; i < an; i++) {
		size_t k;
		uint32_t code;

		if (!next_rr(&q, end, &rr))
			return "malformed answer";
		if (rcode != ns_r_noerror || rr.class != ns_c_in)
			continue;
		if (rr.type == ns_t_cname && rr.ttl < minttl)
			minttl = rr.ttl;
		if (rr.type != ns_t_a)
			continue;
		if (rr.rdlen != 4)
			return "malformed answer";
		if (rr.ttl < minttl)
			minttl = rr.ttl;
		code = get32(rr.rdata);
		if ((code >> 24) != 127)
			outside = true;
		for (k = 0; k < p->ncodes && p->codes[k] != code; k++)
			;
		if (k == p->ncodes && p->ncodes < MW_DNSBL_MAX_CODES)
			p->codes[p->ncodes++] = code;
	}
	if (outside)
		return "answer outside 127.0.0.0/8";
	if (p->ncodes > 0) {
		p->state = MW_DNSBL_LISTED;
		p->ttl = minttl;
		return NULL;
	}
	/* Not listed; the SOA gives the negative TTL (RFC 2308 section 5:
	 * the lower of its own TTL and its MINIMUM field). */
	p->state = MW_DNSBL_NOT_LISTED;
	p->ttl = 0;
	for (i = 0; i < ns; i++) {
		if (!next_rr(&q, end, &rr))
			break; /* the answer stands without a TTL */
		if (rr.type == ns_t_soa && rr.class == ns_c_in &&
		    rr.rdlen >= 22) {
			uint32_t minimum = get32(rr.rdata + rr.rdlen - 4);

			p->ttl = minimum < rr.ttl ? minimum : rr.ttl;
			p->ttl_soa = true;
			break;
		}
	}
	return NULL;
}

static const char *
status_text(int status)
{
	switch (status) {
	case ARES_ETIMEOUT: return "timeout";
	case ARES_ESERVFAIL: return "server failure";
	case ARES_EREFUSED: return "query refused";
	case ARES_ENOTIMP: return "query not implemented by the server";
	/*
	 * c-ares 1.18 ends a query that every server answered with
	 * SERVFAIL or REFUSED, or refused by ICMP, with this status.
	 */
	case ARES_ECONNREFUSED: return "server failure or refusal";
	case ARES_EBADRESP: return "malformed answer";
	case ARES_ENOMEM: return "out of memory";
	default: return ares_strerror(status);
	}
}

/*
 * c-ares's answer callback, called from ares_query (errors found at once),
 * ares_process_fd, or ares_destroy (ARES_EDESTRUCTION), always in the
 * calling thread.  An answer packet, even NXDOMAIN, comes with abuf; a
 * server failure after all tries does not.
 */
static void
answer_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct pend *p = arg;
	const char *why;

	(void)timeouts;
	if (p->done || status == ARES_EDESTRUCTION)
		return; /* the caller decides why there is no answer */
	p->done = true;
	assert(p->run->outstanding > 0);
	p->run->outstanding--;
	if (abuf != NULL && alen > 0 &&
	    (status == ARES_SUCCESS || status == ARES_ENODATA ||
		status == ARES_ENOTFOUND))
		why = parse_answer(p, abuf, (size_t)alen);
	else
		why = status_text(status);
	if (why != NULL)
		no_answer(p, why);
}

/* c-ares tells which sockets to watch, and for what. */
static void
sock_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct run *r = data;
	size_t i;

	for (i = 0; i < r->nsocks && r->socks[i].fd != fd; i++)
		;
	if (!readable && !writable) {
		if (i < r->nsocks)
			r->socks[i] = r->socks[--r->nsocks];
		return;
	}
	if (i == r->nsocks) {
		/* Cannot happen (MAX_SOCKS); the query would time out. */
		if (r->nsocks == MAX_SOCKS)
			return;
		r->nsocks++;
	}
	r->socks[i].fd = fd;
	r->socks[i].rd = readable != 0;
	r->socks[i].wr = writable != 0;
}

/* A channel for one call, with every setting given (no resolv.conf). */
static int
channel_open(const struct mw_dnsbl *b, struct run *r, ares_channel *ch)
{
	struct ares_options opt;
	int rc, mask;

	memset(&opt, 0, sizeof(opt));
	opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opt.timeout = (int)b->try_ms;
	opt.tries = 2;
	opt.ndots = 1;
	opt.lookups = (char *)"b";
	opt.sock_state_cb = sock_cb;
	opt.sock_state_cb_data = r;
	mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_NDOTS | ARES_OPT_SERVERS | ARES_OPT_DOMAINS |
	    ARES_OPT_LOOKUPS | ARES_OPT_SORTLIST | ARES_OPT_SOCK_STATE_CB;
	rc = ares_init_options(ch, &opt, mask);
	if (rc != ARES_SUCCESS)
		return rc;
	/* c-ares copies the list and does not change it. */
	rc = ares_set_servers_ports(*ch,
	    (struct ares_addr_port_node *)(uintptr_t)b->servers);
	if (rc != ARES_SUCCESS)
		ares_destroy(*ch);
	return rc;
}

/* Drive the channel until every query is answered or deadline passes. */
static void
wait_answers(ares_channel ch, struct run *r, uint64_t deadline)
{
	struct pollfd pfd[MAX_SOCKS];
	struct timeval maxtv, tv, *tvp;
	uint64_t t, wait;
	size_t i, n;
	int rc;

	while (r->outstanding > 0) {
		t = now_ms();
		if (t >= deadline)
			return;
		wait = deadline - t;
		/* Wake for c-ares's retransmissions too. */
		maxtv.tv_sec = (time_t)(wait / 1000);
		maxtv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
		tvp = ares_timeout(ch, &maxtv, &tv);
		if (tvp != NULL) {
			uint64_t c = (uint64_t)tvp->tv_sec * 1000u +
			    ((uint64_t)tvp->tv_usec + 999u) / 1000u;

			if (c < wait)
				wait = c;
		}
		n = r->nsocks;
		for (i = 0; i < n; i++) {
			pfd[i].fd = r->socks[i].fd;
			pfd[i].events = (short)((r->socks[i].rd ? POLLIN : 0) |
			    (r->socks[i].wr ? POLLOUT : 0));
			pfd[i].revents = 0;
		}
		rc = poll(pfd, (nfds_t)n, (int)wait);
		if (rc < 0 && errno != EINTR)
			return;
		for (i = 0; rc > 0 && i < n && r->outstanding > 0; i++) {
			ares_socket_t rd = ARES_SOCKET_BAD,
				      wr = ARES_SOCKET_BAD;

			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				rd = pfd[i].fd;
			if (pfd[i].revents & POLLOUT)
				wr = pfd[i].fd;
			if (rd != ARES_SOCKET_BAD || wr != ARES_SOCKET_BAD)
				ares_process_fd(ch, rd, wr);
		}
		/* Retransmissions and c-ares's own timeouts. */
		if (r->outstanding > 0)
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	}
}

/*
 * Send the queries of pend[0 .. np-1] not answered from the cache and
 * wait for them.  Returns false when out of memory.
 */
static bool
resolve(struct mw_dnsbl *b, struct pend *pend, size_t np, unsigned budget_ms,
    uint64_t t0)
{
	struct run r;
	ares_channel ch;
	uint64_t deadline;
	bool by_budget = budget_ms < b->timeout_ms;
	const char *late = by_budget ? "budget exhausted" : "timeout";
	size_t i;
	int rc;

	for (i = 0; i < np; i++)
		pend[i].run = &r;
	memset(&r, 0, sizeof(r));
	if (budget_ms == 0) {
		for (i = 0; i < np; i++)
			if (!pend[i].cached)
				no_answer(&pend[i], "budget exhausted");
		return true;
	}
	for (i = 0; i < np && pend[i].cached; i++)
		;
	if (i == np)
		return true;
	rc = channel_open(b, &r, &ch);
	if (rc != ARES_SUCCESS) {
		for (i = 0; i < np; i++)
			if (!pend[i].cached)
				no_answer(&pend[i], status_text(rc));
		return rc != ARES_ENOMEM;
	}
	for (i = 0; i < np; i++) {
		if (pend[i].cached)
			continue;
		pend[i].sent = true;
		r.outstanding++;
		/* May call back at once (e.g. out of memory). */
		ares_query(ch, pend[i].qname, ns_c_in, ns_t_a, answer_cb,
		    &pend[i]);
	}
	deadline = t0 + (by_budget ? budget_ms : b->timeout_ms);
	wait_answers(ch, &r, deadline);
	ares_destroy(ch); /* closes the sockets, abandons the rest */
	for (i = 0; i < np; i++)
		if (pend[i].sent && !pend[i].done)
			no_answer(&pend[i], late);
	return true;
}

bool
mw_dnsbl_run(struct mw_dnsbl *b, struct mw_dnsbl_q *qs, size_t n,
    unsigned budget_ms)
{
	uint64_t t0 = now_ms();
	struct pend *pend = NULL;
	size_t *slot = NULL, np = 0, i, j, bad = 0, hits = 0, sent = 0,
	       answered = 0;
	bool ok;

	assert(b != NULL && (qs != NULL || n == 0));
	for (i = 0; i < n; i++) {
		qs[i].state = MW_DNSBL_NO_ANSWER;
		qs[i].ncodes = 0;
		qs[i].from_cache = false;
		qs[i].bad_name = false;
		qs[i].why = "out of memory";
	}
	if (n == 0)
		return true;
	pend = calloc(n, sizeof(*pend));
	slot = calloc(n, sizeof(*slot));
	if (pend == NULL || slot == NULL) {
		free(pend);
		free(slot);
		return false;
	}

	/* Names, each distinct one once. */
	for (i = 0; i < n; i++) {
		if (!mw_dnsbl_qname(qs[i].subject, qs[i].is_ip, qs[i].zone,
			pend[np].qname, sizeof(pend[np].qname))) {
			slot[i] = SIZE_MAX;
			bad++;
			continue;
		}
		for (j = 0; j < np; j++)
			if (strcmp(pend[j].qname, pend[np].qname) == 0)
				break;
		slot[i] = j;
		if (j == np)
			np++;
	}

	pthread_mutex_lock(&b->lock);
	for (j = 0; j < np; j++)
		(void)cache_get(b, &pend[j], t0);
	pthread_mutex_unlock(&b->lock);

	ok = resolve(b, pend, np, budget_ms, t0);

	pthread_mutex_lock(&b->lock);
	if (ok) {
		uint64_t t = now_ms();

		for (j = 0; j < np; j++) {
			if (!pend[j].sent)
				continue;
			sent++;
			if (pend[j].state != MW_DNSBL_NO_ANSWER) {
				answered++;
				cache_put(b, &pend[j], t);
			}
		}
	}
	for (i = 0; i < n; i++) {
		struct mw_dnsbl_q *q = &qs[i];
		const struct pend *p;

		if (slot[i] == SIZE_MAX) {
			q->bad_name = true;
			q->why = "invalid name";
			continue;
		}
		if (!ok)
			continue;
		p = &pend[slot[i]];
		q->state = p->state;
		q->ncodes = p->state == MW_DNSBL_LISTED ? p->ncodes : 0;
		memcpy(q->codes, p->codes, q->ncodes * sizeof(q->codes[0]));
		q->from_cache = p->cached;
		q->why = p->state == MW_DNSBL_NO_ANSWER ? p->why : NULL;
		if (p->cached)
			hits++;
	}
	b->st.lookups += n;
	b->st.hits += hits;
	b->st.sent += sent;
	b->st.answered += answered;
	b->st.bad += bad;
	pthread_mutex_unlock(&b->lock);
	free(pend);
	free(slot);
	return ok;
}
