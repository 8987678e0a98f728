/*
 * mw-load.c -- a load generator that speaks the milter protocol (version
 * 6) to a milter socket the way Postfix's MTA side does, with many
 * concurrent sessions, and reports throughput, latency percentiles, the
 * final replies and the modifications the milter asked for.
 *
 * Each thread owns one milter connection at a time: option negotiation
 * (honouring the steps the milter asks to skip, the steps it does not
 * answer and the macro lists it requests), connect and HELO, then up to
 * -m messages (MAIL, RCPT x k, DATA, headers, EOH, body chunks of at most
 * 64 KiB, end of message with its modification packets up to the final
 * reply, ABORT between messages), then QUIT.  Macros precede each stage
 * in an SMFIC_MACRO packet, written in the same write(2) as the command.
 *
 * An adversarial mode (-A) sends what a broken or hostile MTA peer might:
 * oversized packets, NUL bytes, thousands of recipients, a slow drip, a
 * connection closed mid-packet, bogus packet lengths; it reports what the
 * milter answered and then checks that it still serves a normal message.
 *
 * Every buffer is bounded and every read has a timeout.  Protocol errors
 * (an unexpected reply, a malformed packet, a timeout, a closed
 * connection) are counted, the first ones printed, and make the exit
 * status non-zero.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>

#define MAX_REPLY   (1024 * 1024 + 64) /* largest reply packet we accept */
#define CHUNK       65535              /* body chunk, as MILTER_CHUNK_SIZE */
#define MAX_MACROS  64
#define MAX_ERRSHOW 10

/* What we offer in option negotiation: everything Postfix 3.7 offers. */
#define OFFER_ACTIONS \
	(SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_DELRCPT | \
	    SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_CHGFROM | \
	    SMFIF_ADDRCPT_PAR | SMFIF_SETSYMLIST)
#define OFFER_STEPS \
	(SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | \
	    SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NR_HDR | \
	    SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | SMFIP_RCPT_REJ | \
	    SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | \
	    SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY | \
	    SMFIP_HDR_LEADSPC)

/* Stages, for macros (SMFIM_* order) and for timing. */
enum stage {
	ST_CONN,
	ST_HELO,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_EOM,
	ST_EOH,
	ST_HDRS,
	ST_BODY,
	NSTAGES
};
static const char *const stage_names[NSTAGES] = { "connect", "helo", "mail",
	"rcpt", "data", "eom", "eoh", "header", "body" };
/* The order the report lists them in. */
static const enum stage stage_order[NSTAGES] = { ST_CONN, ST_HELO, ST_MAIL,
	ST_RCPT, ST_DATA, ST_HDRS, ST_EOH, ST_BODY, ST_EOM };

enum final {
	F_ACCEPT,
	F_CONTINUE,
	F_REJECT,
	F_TEMPFAIL,
	F_DISCARD,
	F_NONE,
	NFINALS
};
static const char *const final_names[NFINALS] = { "accept", "continue",
	"reject", "tempfail", "discard", "none" };

enum mod {
	MOD_ADDHDR,
	MOD_INSHDR,
	MOD_CHGHDR,
	MOD_ADDRCPT,
	MOD_ADDRCPT_PAR,
	MOD_DELRCPT,
	MOD_REPLBODY,
	MOD_CHGFROM,
	MOD_QUARANTINE,
	MOD_PROGRESS,
	NMODS
};
static const char *const mod_names[NMODS] = { "addheader", "insheader",
	"chgheader", "addrcpt", "addrcpt_par", "delrcpt", "replbody", "chgfrom",
	"quarantine", "progress" };

struct macro {
	int stage; /* SMFIM_* index */
	char *name;
	char *value;
};

struct header {
	char *name;
	char *value; /* with its leading white space, as in the message */
};

static struct {
	const char *sock;
	int conc;
	long per_conn;
	long total;
	double duration;
	const char *file;
	size_t size;
	int rcpts;
	int timeout; /* seconds per command */
	int eom_timeout;
	const char *adv;
	double drip;
	const char *from;
	const char *rcpt_domain;
	const char *client_addr;
	const char *helo;
	bool summary;
	bool quiet;
	struct macro macros[MAX_MACROS];
	int nmacros;
} opt = {
	.conc = 1,
	.per_conn = 10,
	.size = 10240,
	.rcpts = 1,
	.timeout = 30,
	.eom_timeout = 300,
	.drip = 10,
	.from = "sender@example.org",
	.rcpt_domain = "example.com",
	.client_addr = "192.0.2.10",
	.helo = "client.example.net",
};

/* The message every session sends, built once, read-only afterwards. */
static struct header *msg_hdrs;
static size_t msg_nhdrs;
static char *msg_body; /* CRLF line ends */
static size_t msg_bodylen;
static size_t msg_size; /* headers and body as on the wire */

/* Work distribution. */
static atomic_long remaining;
static struct timespec deadline;
static bool by_duration;
static atomic_bool stop_all;

/* Errors, printed as they come (the first few) and counted. */
static atomic_long nerrors;

struct stats {
	long msgs;
	long conns;
	long finals[NFINALS];
	long mods[NMODS];
	long rcpt_rejected;
	long skips;
	uint32_t *lat; /* microseconds per message */
	uint32_t *st[NSTAGES];
	size_t n, cap;
};

/* One milter connection. */
struct conn {
	int fd;
	uint32_t version, actions, steps;
	char *symlist[7]; /* requested macro names per stage, or NULL */
	unsigned char *rbuf;
	uint32_t rlen; /* data length of the last reply (after the cmd) */
	unsigned char rcmd;
	unsigned char *wbuf;
	size_t wlen, wcap;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void __attribute__((format(printf, 1, 2)))
proto_error(const char *fmt, ...)
{
	va_list ap;
	long n = atomic_fetch_add(&nerrors, 1);

	if (n >= MAX_ERRSHOW) {
		if (n == MAX_ERRSHOW)
			fprintf(stderr, "mw-load: more errors not shown\n");
		return;
	}
	va_start(ap, fmt);
	fprintf(stderr, "mw-load: protocol error: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void __attribute__((format(printf, 1, 2), noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "mw-load: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		die("out of memory");
	return p;
}

/* ------------------------------------------------------------ sockets */

/* Connect to unix:PATH, local:PATH, inet:PORT@HOST or inet6:PORT@HOST. */
static int
sock_connect(const char *spec)
{
	const char *p;
	int fd;

	if ((p = strchr(spec, ':')) == NULL)
		p = spec - 1; /* a bare path */
	if (p < spec || strncmp(spec, "unix:", 5) == 0 ||
	    strncmp(spec, "local:", 6) == 0) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(p + 1) >= sizeof(sun.sun_path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		strcpy(sun.sun_path, p + 1);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		return fd;
	}
	if (strncmp(spec, "inet:", 5) == 0 || strncmp(spec, "inet6:", 6) == 0) {
		char port[16], host[256];
		const char *at = strchr(p + 1, '@');
		struct addrinfo hints, *res, *ai;
		int rc;

		if (at == NULL || (size_t)(at - (p + 1)) >= sizeof(port) ||
		    strlen(at + 1) >= sizeof(host)) {
			errno = EINVAL;
			return -1;
		}
		memcpy(port, p + 1, (size_t)(at - (p + 1)));
		port[at - (p + 1)] = '\0';
		strcpy(host, at + 1);
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV;
		hints.ai_family = spec[4] == '6' ? AF_INET6 : AF_INET;
		if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
			errno = EINVAL;
			return -1;
		}
		fd = -1;
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if ((fd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0)
				continue;
			/*
			 * No TCP_NODELAY: Postfix does not set it on milter
			 * connections, and the point is to see what a milter
			 * does to an MTA that behaves like Postfix.
			 */
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
				break;
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		return fd;
	}
	errno = EINVAL;
	return -1;
}

/* Wait until fd is readable; false on timeout (errno ETIMEDOUT). */
static bool
wait_readable(int fd, double until)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		double left = until - now();
		int rc;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return false;
		}
		rc = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (rc > 0)
			return true;
		if (rc < 0 && errno != EINTR)
			return false;
	}
}

/* Read exactly n bytes before the deadline; 0 = ok, -1 error, 1 EOF. */
static int
read_full(int fd, void *buf, size_t n, double until)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t r;

		if (!wait_readable(fd, until))
			return -1;
		r = read(fd, p, n);
		if (r == 0)
			return 1;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static bool
write_full(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;

	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* ------------------------------------------------------------ packets */

static void
wb_reserve(struct conn *c, size_t more)
{
	if (c->wlen + more <= c->wcap)
		return;
	while (c->wlen + more > c->wcap)
		c->wcap = c->wcap != 0 ? c->wcap * 2 : 4096;
	if ((c->wbuf = realloc(c->wbuf, c->wcap)) == NULL)
		die("out of memory");
}

/* Start a packet with command cmd in the write buffer; returns its offset. */
static size_t
pk_begin(struct conn *c, char cmd)
{
	size_t off = c->wlen;

	wb_reserve(c, 5);
	c->wlen += 4;
	c->wbuf[c->wlen++] = (unsigned char)cmd;
	return off;
}

static void
pk_add(struct conn *c, const void *data, size_t n)
{
	wb_reserve(c, n);
	memcpy(c->wbuf + c->wlen, data, n);
	c->wlen += n;
}

static void
pk_str(struct conn *c, const char *s)
{
	pk_add(c, s, strlen(s) + 1);
}

static void
pk_u32(struct conn *c, uint32_t v)
{
	v = htonl(v);
	pk_add(c, &v, 4);
}

static void
pk_end(struct conn *c, size_t off)
{
	uint32_t len = htonl((uint32_t)(c->wlen - off - 4));

	memcpy(c->wbuf + off, &len, 4);
}

static bool
flush(struct conn *c)
{
	bool ok = write_full(c->fd, c->wbuf, c->wlen);

	c->wlen = 0;
	return ok;
}

/* Is name in the space-separated list? */
static bool
in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (*p != '\0') {
		size_t k;

		while (*p == ' ')
			p++;
		k = strcspn(p, " ");
		if (k == n && strncmp(p, name, n) == 0)
			return true;
		/* Postfix also matches "{x}" against "x" and back. */
		if (k == n + 2 && p[0] == '{' && strncmp(p + 1, name, n) == 0)
			return true;
		if (n == k + 2 && name[0] == '{' &&
		    strncmp(name + 1, p, k) == 0)
			return true;
		p += k;
	}
	return false;
}

/*
 * Queue the SMFIC_MACRO packet for a stage: the -M macros of the stage
 * (and the per-message queue id), restricted to what the milter asked
 * for when it sent a list for the stage.
 */
static void
pk_macros(struct conn *c, int stage, char cmd, const char *qid)
{
	size_t off = pk_begin(c, SMFIC_MACRO), start;
	bool have_i = false;
	int i;

	wb_reserve(c, 1);
	c->wbuf[c->wlen++] = (unsigned char)cmd;
	start = c->wlen;
	for (i = 0; i < opt.nmacros; i++) {
		const struct macro *m = &opt.macros[i];

		if (m->stage != stage)
			continue;
		if (c->symlist[stage] != NULL &&
		    !in_list(c->symlist[stage], m->name))
			continue;
		if (strcmp(m->name, "i") == 0)
			have_i = true;
		pk_str(c, m->name);
		pk_str(c, m->value);
	}
	/* Postfix sends the queue id from DATA on. */
	if (qid != NULL && !have_i &&
	    (stage == SMFIM_DATA || stage == SMFIM_EOH || stage == SMFIM_EOM) &&
	    (c->symlist[stage] == NULL || in_list(c->symlist[stage], "i"))) {
		pk_str(c, "i");
		pk_str(c, qid);
	}
	if (c->wlen == start) {
		/* Nothing to send: no packet. */
		c->wlen = off;
		return;
	}
	pk_end(c, off);
}

/*
 * Read one reply packet into c->rbuf (data after the command byte in
 * c->rbuf[0..rlen)).  Returns 0, or -1 after reporting the problem.
 */
static int
read_reply(struct conn *c, double timeout, const char *what)
{
	unsigned char hdr[5];
	uint32_t len;
	int rc;

	rc = read_full(c->fd, hdr, 5, now() + timeout);
	if (rc != 0) {
		proto_error("%s: %s", what,
		    rc == 1                  ? "milter closed the connection"
			: errno == ETIMEDOUT ? "timeout waiting for the reply"
					     : strerror(errno));
		return -1;
	}
	memcpy(&len, hdr, 4);
	len = ntohl(len);
	if (len < 1 || len > MAX_REPLY) {
		proto_error("%s: reply length %" PRIu32 " out of range", what,
		    len);
		return -1;
	}
	c->rcmd = hdr[4];
	c->rlen = len - 1;
	if (c->rlen > 0 &&
	    read_full(c->fd, c->rbuf, c->rlen, now() + timeout) != 0) {
		proto_error("%s: short reply packet '%c'", what, c->rcmd);
		return -1;
	}
	c->rbuf[c->rlen] = '\0'; /* rbuf has room for one more */
	return 0;
}

static void
conn_close(struct conn *c)
{
	int i;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	for (i = 0; i < 7; i++) {
		free(c->symlist[i]);
		c->symlist[i] = NULL;
	}
	c->wlen = 0;
}

/* Connect and negotiate; false after reporting why. */
static bool
conn_open(struct conn *c)
{
	uint32_t v;
	size_t off, p;

	if ((c->fd = sock_connect(opt.sock)) < 0) {
		proto_error("connect to %s: %s", opt.sock, strerror(errno));
		return false;
	}
	off = pk_begin(c, SMFIC_OPTNEG);
	pk_u32(c, SMFI_PROT_VERSION);
	pk_u32(c, OFFER_ACTIONS);
	pk_u32(c, OFFER_STEPS);
	pk_end(c, off);
	if (!flush(c)) {
		proto_error("option negotiation: write: %s", strerror(errno));
		conn_close(c);
		return false;
	}
	if (read_reply(c, opt.timeout, "option negotiation") < 0) {
		conn_close(c);
		return false;
	}
	if (c->rcmd != SMFIC_OPTNEG || c->rlen < 12) {
		proto_error("option negotiation: reply '%c' (%" PRIu32
			    " bytes) instead of 'O'",
		    c->rcmd, c->rlen);
		conn_close(c);
		return false;
	}
	memcpy(&v, c->rbuf, 4);
	c->version = ntohl(v);
	memcpy(&v, c->rbuf + 4, 4);
	c->actions = ntohl(v);
	memcpy(&v, c->rbuf + 8, 4);
	c->steps = ntohl(v);
	if (c->version > SMFI_PROT_VERSION || c->version < 2 ||
	    (c->actions & ~(uint32_t)OFFER_ACTIONS) != 0) {
		proto_error("option negotiation: version %" PRIu32
			    " actions 0x%" PRIx32 " not acceptable",
		    c->version, c->actions);
		conn_close(c);
		return false;
	}
	/* Macro lists: (stage, "names...\0") pairs. */
	for (p = 12; p + 4 < c->rlen;) {
		size_t n;

		memcpy(&v, c->rbuf + p, 4);
		v = ntohl(v);
		p += 4;
		n = strnlen((char *)c->rbuf + p, c->rlen - p);
		if (p + n >= c->rlen || v > SMFIM_LAST) {
			proto_error("option negotiation: bad macro list");
			conn_close(c);
			return false;
		}
		free(c->symlist[v]);
		c->symlist[v] = xstrdup((char *)c->rbuf + p);
		p += n + 1;
	}
	return true;
}

/* ------------------------------------------------------------ messages */

/* The outcome of one command. */
enum res {
	R_CONTINUE, /* go on */
	R_SKIP,     /* SMFIR_SKIP: no more of this kind */
	R_FINAL,    /* the milter decided: *fin holds what */
	R_ERROR     /* protocol error (already reported); drop the conn */
};

static enum final
code_final(const char *text)
{
	return text[0] == '4' ? F_TEMPFAIL : F_REJECT;
}

/*
 * Send what is queued in the write buffer (macros and one command) and,
 * unless the step is a no-reply step, read the reply.  At end of message
 * modification packets are counted until the final reply.
 */
static enum res
transact(struct conn *c, struct stats *s, bool noreply, bool eom,
    const char *what, enum final *fin)
{
	double timeout = eom ? opt.eom_timeout : opt.timeout;

	/*
	 * Like Postfix's double-buffered VSTREAM, write only when a reply
	 * is due (or the buffer is full): ABORT, macros and no-reply steps
	 * go out in one write with the next command that wants an answer.
	 */
	if (noreply && c->wlen < 65536)
		return R_CONTINUE;
	if (!flush(c)) {
		proto_error("%s: write: %s", what, strerror(errno));
		return R_ERROR;
	}
	if (noreply)
		return R_CONTINUE;
	for (;;) {
		if (read_reply(c, timeout, what) < 0)
			return R_ERROR;
		switch (c->rcmd) {
		case SMFIR_CONTINUE:
			if (eom) {
				*fin = F_CONTINUE;
				return R_FINAL;
			}
			return R_CONTINUE;
		case SMFIR_ACCEPT: *fin = F_ACCEPT; return R_FINAL;
		case SMFIR_REJECT: *fin = F_REJECT; return R_FINAL;
		case SMFIR_TEMPFAIL: *fin = F_TEMPFAIL; return R_FINAL;
		case SMFIR_DISCARD: *fin = F_DISCARD; return R_FINAL;
		case SMFIR_REPLYCODE:
			if (c->rlen < 4 ||
			    (c->rbuf[0] != '4' && c->rbuf[0] != '5')) {
				proto_error("%s: bad reply code \"%.40s\"",
				    what, (char *)c->rbuf);
				return R_ERROR;
			}
			*fin = code_final((char *)c->rbuf);
			return R_FINAL;
		case SMFIR_SKIP:
			if (eom) {
				proto_error("%s: SKIP at end of message", what);
				return R_ERROR;
			}
			s->skips++;
			return R_SKIP;
		case SMFIR_SHUTDOWN:
		case SMFIR_CONN_FAIL: *fin = F_TEMPFAIL; return R_FINAL;
		case SMFIR_PROGRESS: s->mods[MOD_PROGRESS]++; continue;
		case SMFIR_QUARANTINE:
			s->mods[MOD_QUARANTINE]++;
			if (eom)
				continue;
			break;
		case SMFIR_ADDHEADER:
		case SMFIR_INSHEADER:
		case SMFIR_CHGHEADER:
		case SMFIR_ADDRCPT:
		case SMFIR_ADDRCPT_PAR:
		case SMFIR_DELRCPT:
		case SMFIR_REPLBODY:
		case SMFIR_CHGFROM:
			if (!eom)
				break;
			s->mods[c->rcmd == SMFIR_ADDHEADER     ? MOD_ADDHDR
				: c->rcmd == SMFIR_INSHEADER   ? MOD_INSHDR
				: c->rcmd == SMFIR_CHGHEADER   ? MOD_CHGHDR
				: c->rcmd == SMFIR_ADDRCPT     ? MOD_ADDRCPT
				: c->rcmd == SMFIR_ADDRCPT_PAR ? MOD_ADDRCPT_PAR
				: c->rcmd == SMFIR_DELRCPT     ? MOD_DELRCPT
				: c->rcmd == SMFIR_REPLBODY    ? MOD_REPLBODY
							       : MOD_CHGFROM]++;
			continue;
		default: break;
		}
		proto_error("%s: unexpected reply '%c' (0x%02x, %" PRIu32
			    " bytes)",
		    what, isprint(c->rcmd) ? c->rcmd : '?', c->rcmd, c->rlen);
		return R_ERROR;
	}
}

static void
stats_add(struct stats *s, double total, const double *st)
{
	int i;

	if (s->n == s->cap) {
		s->cap = s->cap != 0 ? s->cap * 2 : 4096;
		if ((s->lat = realloc(s->lat, s->cap * sizeof(*s->lat))) ==
		    NULL)
			die("out of memory");
		for (i = 0; i < NSTAGES; i++)
			if ((s->st[i] = realloc(s->st[i],
				 s->cap * sizeof(*s->st[i]))) == NULL)
				die("out of memory");
	}
	s->lat[s->n] = (uint32_t)(total * 1e6 + 0.5);
	for (i = 0; i < NSTAGES; i++)
		s->st[i][s->n] =
		    st[i] < 0 ? UINT32_MAX : (uint32_t)(st[i] * 1e6 + 0.5);
	s->n++;
}

static bool
take_message(void)
{
	if (atomic_load(&stop_all))
		return false;
	if (by_duration) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		return ts.tv_sec < deadline.tv_sec ||
		    (ts.tv_sec == deadline.tv_sec &&
			ts.tv_nsec < deadline.tv_nsec);
	}
	return atomic_fetch_sub(&remaining, 1) > 0;
}

/* Send one header, honouring SMFIP_HDR_LEADSPC. */
static void
pk_header(struct conn *c, const char *name, const char *value, size_t vlen)
{
	size_t off = pk_begin(c, SMFIC_HEADER);

	pk_str(c, name);
	if (!(c->steps & SMFIP_HDR_LEADSPC))
		while (vlen > 0 && (*value == ' ' || *value == '\t'))
			value++, vlen--;
	pk_add(c, value, vlen);
	pk_add(c, "", 1);
	pk_end(c, off);
}

/*
 * connect + HELO at the start of a connection.  Returns R_CONTINUE, or
 * R_FINAL with *fin (the milter decided for the whole connection), or
 * R_ERROR.
 */
static enum res
session_start(struct conn *c, struct stats *s, double *st, enum final *fin)
{
	enum res r = R_CONTINUE;
	double t0 = now();
	size_t off;

	/* Postfix sends a stage's macros even when the milter skips it. */
	pk_macros(c, SMFIM_CONNECT, SMFIC_CONNECT, NULL);
	if (!(c->steps & SMFIP_NOCONNECT)) {
		struct in6_addr a6;
		struct in_addr a4;
		char fam = 'U';

		if (inet_pton(AF_INET, opt.client_addr, &a4) == 1)
			fam = '4';
		else if (inet_pton(AF_INET6, opt.client_addr, &a6) == 1)
			fam = '6';
		off = pk_begin(c, SMFIC_CONNECT);
		pk_str(c, "client.example.net");
		pk_add(c, &fam, 1);
		if (fam != 'U') {
			uint16_t port = htons(40000);

			pk_add(c, &port, 2);
			pk_str(c, opt.client_addr);
		}
		pk_end(c, off);
		r = transact(c, s, c->steps & SMFIP_NR_CONN, false, "connect",
		    fin);
	}
	st[ST_CONN] = now() - t0;
	if (r != R_CONTINUE)
		return r == R_SKIP ? R_CONTINUE : r;
	t0 = now();
	pk_macros(c, SMFIM_HELO, SMFIC_HELO, NULL);
	if (!(c->steps & SMFIP_NOHELO)) {
		off = pk_begin(c, SMFIC_HELO);
		pk_str(c, opt.helo);
		pk_end(c, off);
		r = transact(c, s, c->steps & SMFIP_NR_HELO, false, "helo",
		    fin);
	}
	st[ST_HELO] = now() - t0;
	return r == R_SKIP ? R_CONTINUE : r;
}

/*
 * One message on an open, greeted connection.  Returns R_FINAL with the
 * message's final reply, or R_ERROR.  *st gets the time per stage
 * (negative = the stage did not run).
 */
static enum res
one_message(struct conn *c, struct stats *s, long seq, int nrcpt, double *st,
    enum final *fin)
{
	char qid[32], addr[320];
	enum res r = R_CONTINUE;
	double t0;
	size_t off, i;
	int k, accepted = 0;
	enum final rf = F_REJECT;

	snprintf(qid, sizeof(qid), "%lX%04lX",
	    (unsigned long)pthread_self() & 0xffffff,
	    (unsigned long)seq & 0xffff);

	/* MAIL */
	t0 = now();
	pk_macros(c, SMFIM_ENVFROM, SMFIC_MAIL, NULL);
	if (!(c->steps & SMFIP_NOMAIL)) {
		snprintf(addr, sizeof(addr), "<%s>", opt.from);
		off = pk_begin(c, SMFIC_MAIL);
		pk_str(c, addr);
		pk_str(c, "BODY=8BITMIME");
		pk_end(c, off);
		r = transact(c, s, c->steps & SMFIP_NR_MAIL, false, "mail",
		    fin);
		if (r == R_ERROR || r == R_FINAL)
			return r;
	}
	st[ST_MAIL] = now() - t0;

	/* RCPT x k */
	t0 = now();
	for (k = 0; k < nrcpt; k++) {
		enum final f = F_CONTINUE;

		pk_macros(c, SMFIM_ENVRCPT, SMFIC_RCPT, NULL);
		if (c->steps & SMFIP_NORCPT) {
			accepted++;
			continue;
		}
		snprintf(addr, sizeof(addr), "<rcpt%d@%s>", k + 1,
		    opt.rcpt_domain);
		off = pk_begin(c, SMFIC_RCPT);
		pk_str(c, addr);
		pk_end(c, off);
		r = transact(c, s, c->steps & SMFIP_NR_RCPT, false, "rcpt", &f);
		if (r == R_ERROR)
			return r;
		if (r == R_FINAL && f == F_ACCEPT) {
			/* The milter is done with this message. */
			st[ST_RCPT] = now() - t0;
			*fin = F_ACCEPT;
			return R_FINAL;
		}
		if (r == R_FINAL && f != F_DISCARD) {
			s->rcpt_rejected++;
			rf = f;
			continue;
		}
		if (r == R_FINAL) {
			*fin = f;
			return R_FINAL;
		}
		accepted++;
	}
	st[ST_RCPT] = now() - t0;
	if (accepted == 0) {
		/* Postfix would not go on to DATA. */
		*fin = rf;
		return R_FINAL;
	}

	/* DATA */
	t0 = now();
	pk_macros(c, SMFIM_DATA, SMFIC_DATA, qid);
	if (!(c->steps & SMFIP_NODATA)) {
		off = pk_begin(c, SMFIC_DATA);
		pk_end(c, off);
		r = transact(c, s, c->steps & SMFIP_NR_DATA, false, "data",
		    fin);
		if (r == R_ERROR || r == R_FINAL)
			return r;
	}
	st[ST_DATA] = now() - t0;

	/* headers */
	t0 = now();
	if (!(c->steps & SMFIP_NOHDRS)) {
		for (i = 0; i < msg_nhdrs; i++) {
			/* Postfix: the EOH macros precede every header. */
			pk_macros(c, SMFIM_EOH, SMFIC_HEADER, qid);
			pk_header(c, msg_hdrs[i].name, msg_hdrs[i].value,
			    strlen(msg_hdrs[i].value));
			r = transact(c, s, c->steps & SMFIP_NR_HDR, false,
			    "header", fin);
			if (r == R_ERROR || r == R_FINAL)
				return r;
			if (r == R_SKIP)
				break;
		}
	}
	st[ST_HDRS] = now() - t0;

	/* EOH */
	t0 = now();
	if (!(c->steps & SMFIP_NOEOH)) {
		pk_macros(c, SMFIM_EOH, SMFIC_EOH, qid);
		off = pk_begin(c, SMFIC_EOH);
		pk_end(c, off);
		r = transact(c, s, c->steps & SMFIP_NR_EOH, false, "eoh", fin);
		if (r == R_ERROR || r == R_FINAL)
			return r;
	}
	st[ST_EOH] = now() - t0;

	/* body chunks */
	t0 = now();
	if (!(c->steps & SMFIP_NOBODY)) {
		for (i = 0; i < msg_bodylen; i += CHUNK) {
			size_t n =
			    msg_bodylen - i < CHUNK ? msg_bodylen - i : CHUNK;

			pk_macros(c, SMFIM_EOM, SMFIC_BODY, qid);
			off = pk_begin(c, SMFIC_BODY);
			pk_add(c, msg_body + i, n);
			pk_end(c, off);
			r = transact(c, s, c->steps & SMFIP_NR_BODY, false,
			    "body", fin);
			if (r == R_ERROR || r == R_FINAL)
				return r;
			if (r == R_SKIP)
				break;
		}
	}
	st[ST_BODY] = now() - t0;

	/* end of message */
	t0 = now();
	pk_macros(c, SMFIM_EOM, SMFIC_BODYEOB, qid);
	off = pk_begin(c, SMFIC_BODYEOB);
	pk_end(c, off);
	r = transact(c, s, false, true, "end of message", fin);
	st[ST_EOM] = now() - t0;
	return r;
}

/*
 * ABORT (between messages) or QUIT: no reply.  ABORT waits in the buffer
 * for the next command, as in Postfix; QUIT is written at once.
 */
static bool
send_simple(struct conn *c, char cmd)
{
	size_t off = pk_begin(c, cmd);

	pk_end(c, off);
	return cmd == SMFIC_ABORT ? true : flush(c);
}

static void *
worker(void *arg)
{
	struct stats *s = arg;
	struct conn c = { .fd = -1 };
	int fails = 0;

	c.rbuf = xmalloc(MAX_REPLY + 1);
	while (take_message()) {
		double st[NSTAGES], t0 = now(), setup;
		enum final fin = F_NONE;
		enum res r;
		long m;
		int i;

		for (i = 0; i < NSTAGES; i++)
			st[i] = -1;
		if (!conn_open(&c)) {
			if (++fails >= 3) {
				atomic_store(&stop_all, true);
				break;
			}
			usleep(100000);
			continue;
		}
		s->conns++;
		r = session_start(&c, s, st, &fin);
		setup = now() - t0;
		if (r != R_CONTINUE) {
			if (r == R_FINAL) {
				s->msgs++;
				s->finals[fin]++;
				stats_add(s, setup, st);
				(void)send_simple(&c, SMFIC_QUIT);
			} else if (++fails >= 3) {
				atomic_store(&stop_all, true);
			}
			conn_close(&c);
			continue;
		}
		for (m = 0;; m++) {
			double t1 = now();

			fin = F_NONE;
			r = one_message(&c, s, s->msgs, opt.rcpts, st, &fin);
			if (r == R_ERROR)
				break;
			s->msgs++;
			s->finals[fin]++;
			/* The first message also waits for connect and HELO. */
			stats_add(s, now() - t1 + (m == 0 ? setup : 0), st);
			for (i = 0; i < NSTAGES; i++)
				st[i] = -1;
			if (!send_simple(&c, SMFIC_ABORT)) {
				proto_error("abort: write: %s",
				    strerror(errno));
				r = R_ERROR;
				break;
			}
			if (m + 1 >= opt.per_conn || !take_message())
				break;
		}
		if (r == R_ERROR) {
			if (++fails >= 3 && s->msgs == 0)
				atomic_store(&stop_all, true);
		} else {
			fails = 0;
			(void)send_simple(&c, SMFIC_QUIT);
		}
		conn_close(&c);
	}
	conn_close(&c);
	free(c.rbuf);
	free(c.wbuf);
	return NULL;
}

/* ------------------------------------------------------------ message */

static void
add_header(const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct header *h;

	if ((msg_hdrs = realloc(msg_hdrs, (msg_nhdrs + 1) * sizeof(*h))) ==
	    NULL)
		die("out of memory");
	h = &msg_hdrs[msg_nhdrs++];
	h->name = xmalloc(nlen + 1);
	memcpy(h->name, name, nlen);
	h->name[nlen] = '\0';
	h->value = xmalloc(vlen + 1);
	memcpy(h->value, value, vlen);
	h->value[vlen] = '\0';
}

/* Body with CRLF line ends, as Postfix sends it. */
static void
set_body(const char *b, size_t n)
{
	size_t i, o = 0;

	msg_body = xmalloc(2 * n + 2);
	for (i = 0; i < n; i++) {
		if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
			msg_body[o++] = '\r';
		msg_body[o++] = b[i];
	}
	msg_bodylen = o;
}

/* Parse an RFC 5322 message: folded headers (continuations keep "\n"). */
static void
parse_message(const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n;

	while (p < end && *p != '\n' &&
	    !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
		const char *colon, *eol, *vend;

		colon = memchr(p, ':', (size_t)(end - p));
		eol = memchr(p, '\n', (size_t)(end - p));
		if (colon == NULL || (eol != NULL && colon > eol))
			die("message file: header line without a colon");
		/* The field ends at a line that does not start with WSP. */
		vend = eol != NULL ? eol : end;
		while (vend < end && vend + 1 < end &&
		    (vend[1] == ' ' || vend[1] == '\t')) {
			const char *nx =
			    memchr(vend + 1, '\n', (size_t)(end - vend - 1));

			vend = nx != NULL ? nx : end;
		}
		{
			/* Strip CR before each LF in the value. */
			char *v = xmalloc((size_t)(vend - colon));
			size_t vl = 0;
			const char *q;

			for (q = colon + 1; q < vend; q++)
				if (!(*q == '\r' && q + 1 <= vend &&
					(q + 1 == vend || q[1] == '\n')))
					v[vl++] = *q;
			add_header(p, (size_t)(colon - p), v, vl);
			free(v);
		}
		p = vend < end ? vend + 1 : end;
	}
	if (p < end && *p == '\r')
		p++;
	if (p < end)
		p++;
	set_body(p, (size_t)(end - p));
}

static void
load_message(void)
{
	if (opt.file != NULL) {
		FILE *f = fopen(opt.file, "rb");
		char *buf;
		size_t n;

		if (f == NULL)
			die("%s: %s", opt.file, strerror(errno));
		buf = xmalloc(64 * 1024 * 1024);
		n = fread(buf, 1, 64 * 1024 * 1024, f);
		if (!feof(f))
			die("%s: larger than 64 MiB", opt.file);
		fclose(f);
		parse_message(buf, n);
		free(buf);
		return;
	}
	{
		static const char words[] =
		    "The quick brown fox jumps over the lazy dog while the "
		    "milter counts every byte of this benchmark message. ";
		char hb[512], *body;
		size_t hsize = 0, i, o = 0;
		int k;

		snprintf(hb, sizeof(hb), " <%s>", opt.from);
		add_header("From", 4, hb, strlen(hb));
		snprintf(hb, sizeof(hb), " <rcpt1@%s>", opt.rcpt_domain);
		add_header("To", 2, hb, strlen(hb));
		add_header("Subject", 7, " mw-load benchmark message", 26);
		add_header("Date", 4, " Tue, 08 Dec 2026 01:00:00 +0000", 32);
		add_header("Message-ID", 10, " <mw-load.1@example.org>", 24);
		add_header("MIME-Version", 12, " 1.0", 4);
		add_header("Content-Type", 12, " text/plain; charset=us-ascii",
		    29);
		for (i = 0; i < msg_nhdrs; i++)
			hsize += strlen(msg_hdrs[i].name) +
			    strlen(msg_hdrs[i].value) + 3;
		hsize += 2;
		body = xmalloc(opt.size + 80);
		/* Lines of 72 characters plus CRLF up to the size. */
		while (hsize + o + 2 < opt.size) {
			size_t len = opt.size - hsize - o - 2;

			if (len > 72)
				len = 72;
			for (k = 0; k < (int)len; k++)
				body[o + (size_t)k] = words[(o + (size_t)k) %
				    (sizeof(words) - 1)];
			o += len;
			body[o++] = '\r';
			body[o++] = '\n';
		}
		msg_body = body;
		msg_bodylen = o;
	}
}

/* ------------------------------------------------------------ report */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sort v (dropping UINT32_MAX = "did not run"); returns the count kept. */
static size_t
sort_samples(uint32_t *v, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (v[i] != UINT32_MAX)
			v[k++] = v[i];
	qsort(v, k, sizeof(*v), cmp_u32);
	return k;
}

static double
pct(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)n);
	if (i >= n)
		i = n - 1;
	return v[i] / 1000.0;
}

static void
report(struct stats *all, int nthreads, double secs)
{
	struct stats t = { 0 };
	size_t n = 0, i, k;
	int j, w;
	uint32_t *lat, *st[NSTAGES];

	for (j = 0; j < nthreads; j++) {
		t.msgs += all[j].msgs;
		t.conns += all[j].conns;
		t.rcpt_rejected += all[j].rcpt_rejected;
		t.skips += all[j].skips;
		for (k = 0; k < NFINALS; k++)
			t.finals[k] += all[j].finals[k];
		for (k = 0; k < NMODS; k++)
			t.mods[k] += all[j].mods[k];
		n += all[j].n;
	}
	lat = xmalloc(n * sizeof(*lat));
	for (w = 0; w < NSTAGES; w++)
		st[w] = xmalloc(n * sizeof(*st[w]));
	for (i = 0, j = 0; j < nthreads; j++) {
		memcpy(lat + i, all[j].lat, all[j].n * sizeof(*lat));
		for (w = 0; w < NSTAGES; w++)
			memcpy(st[w] + i, all[j].st[w],
			    all[j].n * sizeof(*lat));
		i += all[j].n;
	}
	n = sort_samples(lat, n);

	if (!opt.quiet) {
		printf("mw-load: %s, concurrency %d, %ld message(s) per "
		       "connection, %zu-byte messages, %d recipient(s)\n",
		    opt.sock, opt.conc, opt.per_conn, msg_size, opt.rcpts);
		printf("messages    %ld in %.3f s = %.1f msg/s (%ld "
		       "connections)\n",
		    t.msgs, secs, secs > 0 ? t.msgs / secs : 0.0, t.conns);
		printf("latency ms  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  "
		       "(per message, MAIL to final reply; the first on a "
		       "connection includes connect)\n",
		    pct(lat, n, 50), pct(lat, n, 90), pct(lat, n, 99),
		    n ? lat[n - 1] / 1000.0 : 0.0);
		printf("stage ms       p50      p90      p99      max\n");
		for (w = 0; w < NSTAGES; w++) {
			enum stage sg = stage_order[w];
			size_t m = sort_samples(st[sg], i);

			if (m == 0)
				continue;
			printf("  %-8s %8.3f %8.3f %8.3f %8.3f\n",
			    stage_names[sg], pct(st[sg], m, 50),
			    pct(st[sg], m, 90), pct(st[sg], m, 99),
			    st[sg][m - 1] / 1000.0);
		}
		printf("final       ");
		for (k = 0; k < NFINALS; k++)
			if (k != F_NONE || t.finals[k] != 0)
				printf("%s %ld  ", final_names[k], t.finals[k]);
		printf("\nrecipients  rejected %ld; skip replies %ld\n",
		    t.rcpt_rejected, t.skips);
		printf("changes     ");
		for (k = 0; k < NMODS; k++)
			printf("%s %ld  ", mod_names[k], t.mods[k]);
		printf("\nerrors      %ld protocol error(s)\n",
		    atomic_load(&nerrors));
	}
	if (opt.summary) {
		printf("MWLOAD sock=%s conc=%d msgs=%ld secs=%.3f mps=%.1f "
		       "p50=%.3f p90=%.3f p99=%.3f max=%.3f",
		    opt.sock, opt.conc, t.msgs, secs,
		    secs > 0 ? t.msgs / secs : 0.0, pct(lat, n, 50),
		    pct(lat, n, 90), pct(lat, n, 99),
		    n ? lat[n - 1] / 1000.0 : 0.0);
		for (k = 0; k < NFINALS; k++)
			printf(" %s=%ld", final_names[k], t.finals[k]);
		for (k = 0; k < NMODS; k++)
			printf(" %s=%ld", mod_names[k], t.mods[k]);
		printf(" rcpt_rejected=%ld errors=%ld\n", t.rcpt_rejected,
		    atomic_load(&nerrors));
	}
	free(lat);
	for (w = 0; w < NSTAGES; w++)
		free(st[w]);
}

/* ------------------------------------------------------------ adversarial */

/* Describe what the milter sent back (or did not) after an abusive send. */
static const char *
describe_answer(struct conn *c, double timeout, char *buf, size_t size)
{
	unsigned char hdr[5];
	uint32_t len;
	int rc = read_full(c->fd, hdr, 5, now() + timeout);

	if (rc == 1)
		return "connection closed by the milter";
	if (rc < 0)
		return errno == ETIMEDOUT ? "no answer (timeout)"
		    : errno == ECONNRESET ? "connection reset by the milter"
					  : strerror(errno);
	memcpy(&len, hdr, 4);
	len = ntohl(len);
	c->rcmd = hdr[4];
	snprintf(buf, size, "reply '%c' (%" PRIu32 " bytes)",
	    isprint(hdr[4]) ? hdr[4] : '?', len);
	if (len > 1 && len <= MAX_REPLY &&
	    read_full(c->fd, c->rbuf, len - 1, now() + timeout) == 0 &&
	    (hdr[4] == SMFIR_REPLYCODE)) {
		c->rbuf[len - 1] = '\0';
		snprintf(buf, size, "reply \"%.100s\"", (char *)c->rbuf);
	}
	return buf;
}

/*
 * Describe the answer to an end of message: the modification packets,
 * then the final reply.
 */
static const char *
describe_eom(struct conn *c, char *buf, size_t size)
{
	char one[160];
	size_t used = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < 100; i++) {
		const char *a =
		    describe_answer(c, opt.eom_timeout, one, sizeof(one));

		used += (size_t)snprintf(buf + used, size - used, "%s%s",
		    i > 0 ? ", then " : "", a);
		if (used >= size)
			break;
		if (a != one || strchr("hime+-2bqp", c->rcmd) == NULL)
			break;
	}
	return buf;
}

/* Open, negotiate, connect, HELO, MAIL and one RCPT: ready for data. */
static bool
adv_prepare(struct conn *c, struct stats *s, bool upto_data)
{
	double st[NSTAGES];
	enum final fin;
	size_t off;

	if (!conn_open(c))
		return false;
	if (session_start(c, s, st, &fin) != R_CONTINUE)
		return false;
	if (!upto_data)
		return true;
	pk_macros(c, SMFIM_ENVFROM, SMFIC_MAIL, NULL);
	off = pk_begin(c, SMFIC_MAIL);
	pk_str(c, "<sender@example.org>");
	pk_end(c, off);
	if (transact(c, s, c->steps & SMFIP_NR_MAIL, false, "mail", &fin) !=
	    R_CONTINUE)
		return false;
	off = pk_begin(c, SMFIC_RCPT);
	pk_str(c, "<rcpt1@example.com>");
	pk_end(c, off);
	if (transact(c, s, c->steps & SMFIP_NR_RCPT, false, "rcpt", &fin) !=
	    R_CONTINUE)
		return false;
	off = pk_begin(c, SMFIC_DATA);
	pk_end(c, off);
	return transact(c, s, c->steps & SMFIP_NR_DATA, false, "data", &fin) ==
	    R_CONTINUE;
}

/* A normal message on a new connection: does the milter still serve? */
static bool
adv_followup(void)
{
	struct stats s = { 0 };
	struct conn c = { .fd = -1 };
	double st[NSTAGES];
	enum final fin = F_NONE;
	enum res r;
	bool ok = false;

	c.rbuf = xmalloc(MAX_REPLY + 1);
	if (conn_open(&c)) {
		r = session_start(&c, &s, st, &fin);
		if (r == R_CONTINUE)
			r = one_message(&c, &s, 1, 1, st, &fin);
		ok = r == R_FINAL;
		if (ok) {
			(void)send_simple(&c, SMFIC_ABORT);
			(void)send_simple(&c, SMFIC_QUIT);
		}
	}
	printf("  then a normal message: %s\n",
	    ok ? final_names[fin] : "FAILED (the milter no longer serves)");
	conn_close(&c);
	free(c.rbuf);
	free(c.wbuf);
	return ok;
}

static bool
adversarial(const char *kind)
{
	static const char *const all[] = { "bighdr", "nul", "rcpts", "drip",
		"midclose", "badlen", NULL };
	struct stats s = { 0 };
	struct conn c = { .fd = -1 };
	char buf[200];
	const char *ans;
	bool ok = true;
	enum final fin;
	size_t off, i;
	double t0;

	if (strcmp(kind, "all") == 0) {
		for (i = 0; all[i] != NULL; i++)
			ok = adversarial(all[i]) && ok;
		return ok;
	}
	c.rbuf = xmalloc(MAX_REPLY + 1);
	printf("adversarial %s:\n", kind);
	if (strcmp(kind, "bighdr") == 0) {
		/* 100 KiB, Postfix's header_size_limit, in one packet. */
		size_t n = 100 * 1024;
		char *v = xmalloc(n + 1);

		memset(v, 'x', n);
		v[0] = ' ';
		v[n] = '\0';
		if (adv_prepare(&c, &s, true)) {
			pk_header(&c, "X-Big", v, n);
			flush(&c);
			ans =
			    describe_answer(&c, opt.timeout, buf, sizeof(buf));
			printf("  header of %zu bytes in one packet: %s\n", n,
			    ans);
		} else
			ok = false;
		free(v);
	} else if (strcmp(kind, "nul") == 0) {
		static const char hv[] = " before\0after";
		static const char bd[] = "line\0with NUL\r\n\0\0\r\n";

		if (adv_prepare(&c, &s, true)) {
			pk_header(&c, "X-Nul", hv, sizeof(hv) - 1);
			flush(&c);
			ans =
			    describe_answer(&c, opt.timeout, buf, sizeof(buf));
			printf("  header value with a NUL byte: %s\n", ans);
			off = pk_begin(&c, SMFIC_EOH);
			pk_end(&c, off);
			flush(&c);
			(void)describe_answer(&c, opt.timeout, buf,
			    sizeof(buf));
			off = pk_begin(&c, SMFIC_BODY);
			pk_add(&c, bd, sizeof(bd) - 1);
			pk_end(&c, off);
			flush(&c);
			ans =
			    describe_answer(&c, opt.timeout, buf, sizeof(buf));
			printf("  body chunk with NUL bytes: %s\n", ans);
			off = pk_begin(&c, SMFIC_BODYEOB);
			pk_end(&c, off);
			flush(&c);
			ans = describe_eom(&c, buf, sizeof(buf));
			printf("  end of message: %s\n", ans);
		} else
			ok = false;
		conn_close(&c);
		if (conn_open(&c) &&
		    session_start(&c, &s, (double[NSTAGES]){ 0 }, &fin) ==
			R_CONTINUE) {
			static const char mail[] = "<a\0b@example.org>";

			off = pk_begin(&c, SMFIC_MAIL);
			pk_add(&c, mail, sizeof(mail));
			pk_end(&c, off);
			flush(&c);
			ans =
			    describe_answer(&c, opt.timeout, buf, sizeof(buf));
			printf("  MAIL address with a NUL byte: %s\n", ans);
		}
	} else if (strcmp(kind, "rcpts") == 0) {
		long acc = 0, rej = 0, other = 0;
		int k;

		if (adv_prepare(&c, &s, false)) {
			pk_macros(&c, SMFIM_ENVFROM, SMFIC_MAIL, NULL);
			off = pk_begin(&c, SMFIC_MAIL);
			pk_str(&c, "<sender@example.org>");
			pk_end(&c, off);
			(void)transact(&c, &s, c.steps & SMFIP_NR_MAIL, false,
			    "mail", &fin);
			t0 = now();
			for (k = 0; k < 5000; k++) {
				enum res r;

				snprintf(buf, sizeof(buf), "<r%d@%s>", k,
				    opt.rcpt_domain);
				off = pk_begin(&c, SMFIC_RCPT);
				pk_str(&c, buf);
				pk_end(&c, off);
				fin = F_CONTINUE;
				r = transact(&c, &s, c.steps & SMFIP_NR_RCPT,
				    false, "rcpt", &fin);
				if (r == R_ERROR) {
					other++;
					break;
				}
				if (r == R_CONTINUE)
					acc++;
				else if (fin == F_REJECT || fin == F_TEMPFAIL)
					rej++;
				else
					other++;
			}
			printf(
			    "  5000 recipients in %.3f s: %ld continued, %ld "
			    "refused, %ld other\n",
			    now() - t0, acc, rej, other);
		} else
			ok = false;
	} else if (strcmp(kind, "drip") == 0) {
		/* A MAIL packet one byte at a time over opt.drip seconds. */
		if (adv_prepare(&c, &s, false)) {
			size_t n, sent = 0;
			bool broke = false;

			pk_macros(&c, SMFIM_ENVFROM, SMFIC_MAIL, NULL);
			c.wlen = 0; /* no macros: just the one packet */
			off = pk_begin(&c, SMFIC_MAIL);
			pk_str(&c, "<sender@example.org>");
			pk_end(&c, off);
			n = c.wlen;
			t0 = now();
			for (sent = 0; sent < n; sent++) {
				if (!write_full(c.fd, c.wbuf + sent, 1)) {
					broke = true;
					break;
				}
				usleep(
				    (useconds_t)(opt.drip * 1e6 / (double)n));
			}
			c.wlen = 0;
			if (broke)
				printf("  drip: milter closed the connection "
				       "after %zu of %zu bytes, %.1f s\n",
				    sent, n, now() - t0);
			else {
				ans = describe_answer(&c, opt.timeout, buf,
				    sizeof(buf));
				printf("  %zu bytes over %.1f s: %s\n", n,
				    now() - t0, ans);
			}
			/*
			 * Then half a packet and silence for as long: past
			 * the milter's own timeout when -D exceeds it.
			 */
			if (!broke) {
				static const unsigned char half[] = { 0, 0, 0,
					30, SMFIC_RCPT, '<', 'a' };
				struct pollfd pfd = { .fd = c.fd,
					.events = POLLIN };

				write_full(c.fd, half, sizeof(half));
				t0 = now();
				if (poll(&pfd, 1, (int)(opt.drip * 1000)) > 0)
					ans = describe_answer(&c, 1, buf,
					    sizeof(buf));
				else
					ans = "still open (no timeout seen)";
				printf("  half a packet, then silence for up "
				       "to %.1f s: %s after %.1f s\n",
				    opt.drip, ans, now() - t0);
			}
		} else
			ok = false;
	} else if (strcmp(kind, "midclose") == 0) {
		if (adv_prepare(&c, &s, true)) {
			static const unsigned char part[] = { 0, 0, 0, 100,
				SMFIC_HEADER, 'X', '-', 'A', 0, 'b' };

			write_full(c.fd, part, sizeof(part));
			printf("  closed after 10 bytes of a 104-byte header "
			       "packet\n");
		} else
			ok = false;
		conn_close(&c);
		if (adv_prepare(&c, &s, true)) {
			pk_header(&c, "Subject", " half a message", 15);
			flush(&c);
			(void)describe_answer(&c, opt.timeout, buf,
			    sizeof(buf));
			printf("  closed in the middle of a message, without "
			       "ABORT or QUIT\n");
		}
	} else if (strcmp(kind, "badlen") == 0) {
		static const struct {
			uint32_t len;
			const char *what;
		} cases[] = {
			{ 0, "length 0" },
			{ 0xffffffffu, "length 4294967295" },
			{ 0x7fffffffu, "length 2147483647" },
			{ 65536 + 1 + 1, "length 65538 (just over 64 KiB)" },
		};
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			uint32_t l = htonl(cases[i].len);
			unsigned char pkt[5];

			if (!adv_prepare(&c, &s, false)) {
				ok = false;
				break;
			}
			memcpy(pkt, &l, 4);
			pkt[4] = SMFIC_MAIL;
			write_full(c.fd, pkt, 5);
			ans = describe_answer(&c, 5, buf, sizeof(buf));
			printf("  MAIL packet with %s: %s\n", cases[i].what,
			    ans);
			conn_close(&c);
		}
		if (adv_prepare(&c, &s, false)) {
			unsigned char pkt[] = { 0, 0, 0, 3, 'Z', 'x', 0 };

			write_full(c.fd, pkt, sizeof(pkt));
			ans = describe_answer(&c, 5, buf, sizeof(buf));
			printf("  unknown command 'Z': %s\n", ans);
		}
	} else {
		die("unknown adversarial kind \"%s\" (bighdr, nul, rcpts, "
		    "drip, midclose, badlen, all)",
		    kind);
	}
	conn_close(&c);
	free(c.rbuf);
	free(c.wbuf);
	/* Let the milter notice the closed connections first. */
	usleep(200000);
	return adv_followup() && ok;
}

/* ------------------------------------------------------------ main */

static int
stage_by_name(const char *s, size_t n)
{
	static const struct {
		const char *name;
		int stage;
	} t[] = {
		{ "connect", SMFIM_CONNECT },
		{ "helo", SMFIM_HELO },
		{ "mail", SMFIM_ENVFROM },
		{ "rcpt", SMFIM_ENVRCPT },
		{ "data", SMFIM_DATA },
		{ "eoh", SMFIM_EOH },
		{ "eom", SMFIM_EOM },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strlen(t[i].name) == n && strncmp(t[i].name, s, n) == 0)
			return t[i].stage;
	return -1;
}

/* -M stage:name=value; a later one for the same stage and name wins. */
static void
set_macro(int stage, const char *name, const char *value)
{
	int i;

	for (i = 0; i < opt.nmacros; i++)
		if (opt.macros[i].stage == stage &&
		    strcmp(opt.macros[i].name, name) == 0) {
			free(opt.macros[i].value);
			opt.macros[i].value = xstrdup(value);
			return;
		}
	if (opt.nmacros == MAX_MACROS)
		die("too many macros (at most %d)", MAX_MACROS);
	opt.macros[opt.nmacros].stage = stage;
	opt.macros[opt.nmacros].name = xstrdup(name);
	opt.macros[opt.nmacros].value = xstrdup(value);
	opt.nmacros++;
}

static void
parse_macro(const char *arg)
{
	const char *colon = strchr(arg, ':'), *eq;
	char name[128];
	int stage;

	if (colon == NULL || (eq = strchr(colon, '=')) == NULL ||
	    (stage = stage_by_name(arg, (size_t)(colon - arg))) < 0 ||
	    eq == colon + 1 || (size_t)(eq - colon - 1) >= sizeof(name))
		die("-M wants STAGE:NAME=VALUE with STAGE one of connect, "
		    "helo, mail, rcpt, data, eoh, eom; got \"%s\"",
		    arg);
	memcpy(name, colon + 1, (size_t)(eq - colon - 1));
	name[eq - colon - 1] = '\0';
	set_macro(stage, name, eq + 1);
}

/* What Postfix sends by default (milter_*_macros), unless -M says else. */
static void
default_macros(void)
{
	char buf[320];

	set_macro(SMFIM_CONNECT, "j", "mx.example.com");
	set_macro(SMFIM_CONNECT, "{daemon_name}", "smtpd");
	set_macro(SMFIM_CONNECT, "{daemon_addr}", "127.0.0.1");
	set_macro(SMFIM_CONNECT, "v", "Postfix 3.7.11");
	snprintf(buf, sizeof(buf), "client.example.net [%s]", opt.client_addr);
	set_macro(SMFIM_CONNECT, "_", buf);
	set_macro(SMFIM_CONNECT, "{client_addr}", opt.client_addr);
	set_macro(SMFIM_CONNECT, "{client_name}", "client.example.net");
	snprintf(buf, sizeof(buf), "<%s>", opt.from);
	set_macro(SMFIM_ENVFROM, "{mail_addr}", opt.from);
	set_macro(SMFIM_ENVFROM, "{mail_mailer}", "smtp");
	set_macro(SMFIM_ENVRCPT, "{rcpt_mailer}", "smtp");
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mw-load [options] SOCKET\n"
	    "  SOCKET            unix:PATH, inet:PORT@HOST or inet6:PORT@HOST\n"
	    "  -c N              concurrent sessions (threads), default 1\n"
	    "  -m N              messages per connection, default 10\n"
	    "  -n N              total messages (default 1000)\n"
	    "  -d SECONDS        run for a duration instead of -n\n"
	    "  -f FILE           send this message (LF or CRLF)\n"
	    "  -s BYTES          generated message size, default 10240\n"
	    "  -r N              recipients per message, default 1\n"
	    "  -F ADDR           envelope and From: sender (sender@example.org)\n"
	    "  -T DOMAIN         recipient domain (example.com)\n"
	    "  -a ADDR           client IP address at connect (192.0.2.10)\n"
	    "  -M STAGE:NAME=VALUE  macro, e.g. mail:{auth_authen}=alice,\n"
	    "                    connect:{daemon_name}=submission, eoh:i=QID\n"
	    "  -t SECONDS        timeout per command (30); end of message: -e (300)\n"
	    "  -A KIND           adversarial: bighdr nul rcpts drip midclose badlen all\n"
	    "  -D SECONDS        drip duration for -A drip (10)\n"
	    "  -j                one-line machine-readable summary (MWLOAD ...)\n"
	    "  -q                summary line only\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct stats *stats;
	pthread_t *tids;
	double t0, secs;
	int ch, i;
	char **margs;
	int nmargs = 0;

	margs = xmalloc((size_t)argc * sizeof(*margs));
	while ((ch = getopt(argc, argv, "A:a:c:D:d:e:F:f:jM:m:n:qr:s:T:t:h")) !=
	    -1) {
		switch (ch) {
		case 'A': opt.adv = optarg; break;
		case 'a': opt.client_addr = optarg; break;
		case 'c': opt.conc = atoi(optarg); break;
		case 'D': opt.drip = atof(optarg); break;
		case 'd': opt.duration = atof(optarg); break;
		case 'e': opt.eom_timeout = atoi(optarg); break;
		case 'F': opt.from = optarg; break;
		case 'f': opt.file = optarg; break;
		case 'j': opt.summary = true; break;
		case 'M': margs[nmargs++] = optarg; break;
		case 'm': opt.per_conn = atol(optarg); break;
		case 'n': opt.total = atol(optarg); break;
		case 'q':
			opt.quiet = true;
			opt.summary = true;
			break;
		case 'r': opt.rcpts = atoi(optarg); break;
		case 's': opt.size = (size_t)atol(optarg); break;
		case 'T': opt.rcpt_domain = optarg; break;
		case 't': opt.timeout = atoi(optarg); break;
		default: usage();
		}
	}
	if (optind + 1 != argc)
		usage();
	opt.sock = argv[optind];
	if (opt.conc < 1 || opt.conc > 4096 || opt.per_conn < 1 ||
	    opt.rcpts < 1 || opt.rcpts > 100000 || opt.timeout < 1 ||
	    opt.eom_timeout < 1 || opt.size > 64 * 1024 * 1024 ||
	    opt.duration < 0 || opt.total < 0 || opt.drip < 0)
		usage();
	default_macros();
	for (i = 0; i < nmargs; i++)
		parse_macro(margs[i]);
	free(margs);
	signal(SIGPIPE, SIG_IGN);
	load_message();
	msg_size = msg_bodylen + 2;
	for (size_t h = 0; h < msg_nhdrs; h++)
		msg_size +=
		    strlen(msg_hdrs[h].name) + strlen(msg_hdrs[h].value) + 3;

	if (opt.adv != NULL)
		return adversarial(opt.adv) ? 0 : 1;

	if (opt.duration > 0) {
		by_duration = true;
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += (time_t)opt.duration;
		deadline.tv_nsec +=
		    (long)((opt.duration - (double)(time_t)opt.duration) * 1e9);
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	} else
		atomic_store(&remaining, opt.total > 0 ? opt.total : 1000);

	stats = calloc((size_t)opt.conc, sizeof(*stats));
	tids = xmalloc((size_t)opt.conc * sizeof(*tids));
	if (stats == NULL)
		die("out of memory");
	t0 = now();
	for (i = 0; i < opt.conc; i++) {
		pthread_attr_t a;

		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 256 * 1024);
		if (pthread_create(&tids[i], &a, worker, &stats[i]) != 0)
			die("pthread_create: %s", strerror(errno));
		pthread_attr_destroy(&a);
	}
	for (i = 0; i < opt.conc; i++)
		pthread_join(tids[i], NULL);
	secs = now() - t0;
	report(stats, opt.conc, secs);
	for (i = 0; i < opt.conc; i++) {
		int w;

		free(stats[i].lat);
		for (w = 0; w < NSTAGES; w++)
			free(stats[i].st[w]);
	}
	free(stats);
	free(tids);
	return atomic_load(&nerrors) > 0 ? 1 : 0;
}
