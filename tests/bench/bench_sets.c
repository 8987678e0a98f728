/*
 * bench_sets.c -- load and lookup cost of IP sets and domain sets.
 *
 * The target for "in LIST" conditions is that a 1,000,000-entry IP list
 * and a 1,000,000-entry domain list load in under 2 s and 300 MB together.
 * This program generates such lists as text (the loader's input after the
 * file is read), loads them while timing with CLOCK_MONOTONIC and reading
 * the peak RSS from getrusage, then times lookups.  It is a measurement,
 * not a test: it is built with the tree but never run by "make check".
 *
 * usage: bench_sets [entries]   (default 1000000)
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mw_ipset.h"
#include "mw_strset.h"

#define TARGET_MS 2000.0
#define TARGET_MB 300.0

static uint64_t rng_state = 0x62656e6368736574ULL;

/* splitmix64, fixed seed: every run measures the same lists. */
static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Peak resident set size so far, in MB (ru_maxrss is in KiB on Linux). */
static double
peak_mb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_maxrss / 1024.0;
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL) {
		fprintf(stderr, "bench_sets: out of memory\n");
		exit(1);
	}
	return p;
}

/* A list of NUL-terminated lines in one buffer, as if read from a file. */
struct textlist {
	char *buf;
	size_t len, cap;
	size_t *off;
	size_t n;
};

#define LINE(t, i) ((t)->buf + (t)->off[(i)])

static void
text_init(struct textlist *t, size_t n, size_t avg)
{
	t->cap = n * avg;
	t->buf = xmalloc(t->cap);
	t->len = 0;
	t->off = xmalloc(n * sizeof(*t->off));
	t->n = 0;
}

static void
text_add(struct textlist *t, const char *s)
{
	size_t l = strlen(s) + 1;

	if (t->len + l > t->cap) {
		t->cap = t->cap * 2 + l;
		if ((t->buf = realloc(t->buf, t->cap)) == NULL) {
			fprintf(stderr, "bench_sets: out of memory\n");
			exit(1);
		}
	}
	memcpy(t->buf + t->len, s, l);
	t->off[t->n++] = t->len;
	t->len += l;
}

static void
text_free(struct textlist *t)
{
	free(t->buf);
	free(t->off);
}

/*
 * A random CIDR entry shaped like real block lists: mostly hosts and
 * /24s (IPv4) or hosts and /64s (IPv6), some other prefixes.
 */
static void
random_cidr(char *out, size_t outsize, bool v6)
{
	unsigned char a[16];
	char addr[INET6_ADDRSTRLEN];
	unsigned r = (unsigned)(rng() % 10), prefix, i;
	uint64_t x = rng(), y = rng();

	for (i = 0; i < 8; i++) {
		a[i] = (unsigned char)(x >> (8 * i));
		a[8 + i] = (unsigned char)(y >> (8 * i));
	}
	if (!v6)
		prefix = r < 6 ? 32 : r < 9 ? 24 : 8 + (unsigned)(rng() % 24);
	else
		prefix = r < 5 ? 128 : r < 8 ? 64 : 48 + (unsigned)(rng() % 80);
	/* Clear the host bits. */
	for (i = 0; i < (v6 ? 16u : 4u); i++) {
		if (prefix <= 8 * i)
			a[i] = 0;
		else if (prefix < 8 * i + 8)
			a[i] &= (unsigned char)(0xff << (8 * i + 8 - prefix));
	}
	if (v6)
		a[0] = 0x20 | (a[0] & 0x1f); /* keep it out of ::ffff:0:0/96 */
	inet_ntop(v6 ? AF_INET6 : AF_INET, a, addr, sizeof(addr));
	snprintf(out, outsize, "%s/%u", addr, prefix);
}

static const char *const tlds[] = { "com", "net", "org", "de", "uk", "ru", "cn",
	"info", "biz", "xyz", "top", "io", "fr", "nl", "br", "jp" };

/* A random registered-looking domain with 0-2 more labels in front. */
static size_t
random_domain(char *out, size_t outsize)
{
	static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned labels = 1 + (unsigned)(rng() % 3), l, i, len;
	size_t o = 0;

	for (l = 0; l < labels; l++) {
		len = 3 + (unsigned)(rng() % 10);
		for (i = 0; i < len && o + 2 < outsize; i++)
			out[o++] = alpha[rng() % (sizeof(alpha) - 1)];
		out[o++] = '.';
	}
	o += (size_t)snprintf(out + o, outsize - o, "%s",
	    tlds[rng() % (sizeof(tlds) / sizeof(tlds[0]))]);
	return o;
}

int
main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000, i, hits;
	struct textlist ips, ipq, doms, queries;
	struct mw_ipset *ipset;
	struct mw_domset *domset;
	struct mw_ip *probes;
	double t0, t_ip, t_dom, t_lk_ip, t_lk_dom, t_parse;
	double mb_base, mb_text, mb_ip, mb_all;
	char line[300];
	const char *why;

	if (n == 0) {
		fprintf(stderr, "usage: bench_sets [entries]\n");
		return 2;
	}
	mb_base = peak_mb();

	/* The lists as text, and the lookups to make, prepared untimed. */
	text_init(&ips, n, 24);
	for (i = 0; i < n; i++) {
		random_cidr(line, sizeof(line), rng() % 2);
		text_add(&ips, line);
	}
	text_init(&doms, n, 24);
	for (i = 0; i < n; i++) {
		size_t len = random_domain(line + 2, sizeof(line) - 2);

		/* Now and then a spelling the loader normalises. */
		switch (rng() % 20) {
		case 0: text_add(&doms, memcpy(line, "*.", 2)); break;
		case 1:
			line[1] = '.';
			line[len + 2] = '.';
			line[len + 3] = '\0';
			text_add(&doms, line + 1);
			break;
		default: text_add(&doms, line + 2); break;
		}
	}
	/* Domain lookups: half under a listed domain, half random. */
	text_init(&queries, n, 32);
	for (i = 0; i < n; i++) {
		if (rng() % 2) {
			const char *d = LINE(&doms, rng() % n);

			snprintf(line, sizeof(line), "mail.%s",
			    d[0] == '*'       ? d + 2
				: d[0] == '.' ? d + 1
					      : d);
		} else {
			random_domain(line, sizeof(line));
		}
		text_add(&queries, line);
	}
	/* IP lookups: half inside a listed network, half random. */
	text_init(&ipq, n, 24);
	probes = xmalloc(n * sizeof(*probes));
	for (i = 0; i < n; i++) {
		if (rng() % 2)
			snprintf(line, sizeof(line), "%s",
			    LINE(&ips, rng() % n));
		else
			random_cidr(line, sizeof(line), rng() % 2);
		*strchr(line, '/') = '\0';
		text_add(&ipq, line);
	}
	/* Parsing the client address is part of every IP lookup. */
	t0 = now_ms();
	for (i = 0; i < n; i++) {
		if (!mw_ip_parse(LINE(&ipq, i), &probes[i])) {
			fprintf(stderr, "bench_sets: cannot parse %s\n",
			    LINE(&ipq, i));
			return 1;
		}
	}
	t_parse = now_ms() - t0;
	mb_text = peak_mb();

	t0 = now_ms();
	if ((ipset = mw_ipset_new()) == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		if (!mw_ipset_add(ipset, LINE(&ips, i), &why)) {
			fprintf(stderr, "bench_sets: %s: %s\n", LINE(&ips, i),
			    why);
			return 1;
		}
	}
	if (!mw_ipset_finish(ipset))
		return 1;
	t_ip = now_ms() - t0;
	mb_ip = peak_mb();

	t0 = now_ms();
	if ((domset = mw_domset_new()) == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		if (!mw_domset_add(domset, LINE(&doms, i), &why)) {
			fprintf(stderr, "bench_sets: %s: %s\n", LINE(&doms, i),
			    why);
			return 1;
		}
	}
	t_dom = now_ms() - t0;
	mb_all = peak_mb();

	t0 = now_ms();
	for (i = 0, hits = 0; i < n; i++)
		hits += mw_ipset_contains(ipset, &probes[i]);
	t_lk_ip = now_ms() - t0;
	printf("ip lookups:     %zu of %zu matched\n", hits, n);

	t0 = now_ms();
	for (i = 0, hits = 0; i < n; i++)
		hits += mw_domset_contains(domset, LINE(&queries, i));
	t_lk_dom = now_ms() - t0;
	printf("domain lookups: %zu of %zu matched\n", hits, n);

	printf("ip set:     %zu entries -> %zu ranges, load %.0f ms, "
	       "peak RSS +%.1f MB\n",
	    n, mw_ipset_ranges(ipset), t_ip, mb_ip - mb_text);
	printf("domain set: %zu entries -> %zu distinct, load %.0f ms, "
	       "peak RSS +%.1f MB\n",
	    n, mw_domset_count(domset), t_dom, mb_all - mb_ip);
	printf("both sets:  load %.0f ms, peak RSS +%.1f MB "
	       "(process peak %.1f MB, of which %.1f MB test text and "
	       "probes, %.1f MB at start)\n",
	    t_ip + t_dom, mb_all - mb_text, mb_all, mb_text - mb_base, mb_base);
	printf("lookup:     ip %.1f ns, domain %.1f ns, ip parse %.1f ns\n",
	    t_lk_ip * 1e6 / (double)n, t_lk_dom * 1e6 / (double)n,
	    t_parse * 1e6 / (double)n);
	printf("target (%.0f ms, %.0f MB for the sets): %s\n", TARGET_MS,
	    TARGET_MB,
	    t_ip + t_dom < TARGET_MS && mb_all - mb_text < TARGET_MB
		? "met"
		: "MISSED");

	mw_ipset_free(ipset);
	mw_domset_free(domset);
	free(probes);
	text_free(&ips);
	text_free(&ipq);
	text_free(&doms);
	text_free(&queries);
	return 0;
}
