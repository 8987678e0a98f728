/*
 * bench_engine.c -- cost of evaluating a realistic ruleset per message,
 * through the engine exactly as the milter glue drives it (no MTA, no
 * DNS).  Prints microseconds per message; the target is under 20 us.
 *
 * Ruleset: 200 rules spread over every phase -- 50 regex rules on headers
 * and body, list lookups against a 100,000-entry IP list and a 10,000-entry
 * domain list, scores, and an end-of-message tagging rule.  Message: 20
 * headers and a 10 KB body, 2 recipients.
 *
 * usage: bench_engine [MESSAGES]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mw_engine.h"
#include "mw_log.h"
#include "mw_state.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
write_lists(const char *dir)
{
	char path[512];
	FILE *fp;
	unsigned i;

	snprintf(path, sizeof(path), "%s/ips.list", dir);
	fp = fopen(path, "w");
	srandom(42);
	for (i = 0; i < 100000; i++)
		fprintf(fp, "%ld.%ld.%ld.0/24\n", 11 + random() % 200,
		    random() % 256, random() % 256);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/domains.list", dir);
	fp = fopen(path, "w");
	for (i = 0; i < 10000; i++)
		fprintf(fp, "d%u-%ld.example\n", i, random() % 100000);
	fclose(fp);
}

static void
write_rules(const char *dir)
{
	char path[512];
	FILE *fp;
	int i;

	snprintf(path, sizeof(path), "%s/bench.rules", dir);
	fp = fopen(path, "w");
	fprintf(fp,
	    "list bigips ip file \"ips.list\"\n"
	    "list bigdomains domain file \"domains.list\"\n"
	    "list local domain { example.org example.net }\n");
	/* 150 cheap rules over the envelope phases. */
	for (i = 0; i < 40; i++)
		fprintf(fp,
		    "rule c%d at connect when client.ip in bigips and "
		    "client.name == host%d.example then score +1 c%d\n",
		    i, i, i);
	for (i = 0; i < 30; i++)
		fprintf(fp,
		    "rule h%d at helo when helo == helo%d.example or "
		    "helo.address-literal then score +1 h%d\n",
		    i, i, i);
	for (i = 0; i < 40; i++)
		fprintf(fp,
		    "rule m%d at mail when from.domain in bigdomains "
		    "and from.local == user%d then score +2 m%d\n",
		    i, i, i);
	for (i = 0; i < 40; i++)
		fprintf(fp,
		    "rule r%d at rcpt when not rcpt.domain in local and "
		    "rcpt.local == r%d then reject 554 5.7.1 "
		    "\"relay\"\n",
		    i, i);
	/* 50 regex rules: 35 on headers, 15 on the body. */
	for (i = 0; i < 35; i++)
		fprintf(fp,
		    "rule x%d at eoh when header \"Subject\" =~ "
		    "/(?i)cheap-%d-(pills|watches)/ then score +3 x%d\n",
		    i, i, i);
	for (i = 0; i < 15; i++)
		fprintf(fp,
		    "rule b%d at body when body =~ "
		    "/unsubscribe-now-%d|winner-%d-claim/ then "
		    "score +4 b%d\n",
		    i, i, i, i);
	fprintf(fp,
	    "rule tag at eom when score >= 5 then add-header "
	    "\"X-Spam-Flag\" \"YES\"\n");
	fclose(fp);
	snprintf(path, sizeof(path), "%s/bench.conf", dir);
	fp = fopen(path, "w");
	fprintf(fp, "user =\nrules = %s/bench.rules\n", dir);
	fclose(fp);
}

int
main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000, i;
	char tmpl[] = "/tmp/mw-bench-XXXXXX", path[512], *body;
	const char *dir = mkdtemp(tmpl);
	struct mw_state *st;
	struct mw_conn *c;
	struct mw_diag d;
	struct mw_reply r;
	double t0, t1, load;
	int h;

	mw_log_set_level(MW_LOG_ERROR);
	write_lists(dir);
	write_rules(dir);
	snprintf(path, sizeof(path), "%s/bench.conf", dir);
	mw_diag_init(&d);
	t0 = now();
	st = mw_state_build(path, NULL, &d);
	load = now() - t0;
	if (st == NULL) {
		mw_diag_print(&d, stderr);
		return 1;
	}
	mw_diag_free(&d);
	body = malloc(10241);
	for (i = 0; i < 10240; i++)
		body[i] = (i % 72 == 71) ? '\n' : "abcdefgh ijklmnop "[i % 18];
	body[10240] = '\0';

	c = mw_conn_new(st);
	mw_eng_connect(c, "mail.sender.example", "203.0.113.9", &r);
	mw_eng_helo(c, "mail.sender.example", &r);
	t0 = now();
	for (i = 0; i < n; i++) {
		mw_eng_mail(c, "<someone@sender.example>", NULL, &r);
		mw_eng_rcpt(c, "<alice@example.org>", &r);
		mw_eng_rcpt(c, "<bob@example.net>", &r);
		mw_eng_data(c, &r);
		for (h = 0; h < 20; h++) {
			char name[32], value[96];

			snprintf(name, sizeof(name),
			    h == 3 ? "Subject" : "X-Header-%d", h);
			snprintf(value, sizeof(value),
			    " value of header %d with some text in it", h);
			mw_eng_header(c, name, value, &r);
		}
		mw_eng_eoh(c, &r);
		mw_eng_body(c, (unsigned char *)body, 10240, &r);
		mw_eng_eom(c, &r);
	}
	t1 = now();
	printf("ruleset: 200 rules (50 regex), 100000-entry IP list, "
	       "10000-entry domain list; loaded in %.0f ms\n",
	    load * 1000);
	printf("message: 20 headers, 10 KB body, 2 recipients\n");
	printf("engine evaluation: %.2f us per message over %ld messages "
	       "(target < 20 us)\n",
	    (t1 - t0) / (double)n * 1e6, n);
	mw_conn_free(c);
	mw_state_unref(st);
	free(body);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (system(path) != 0)
		return 1;
	return 0;
}
