/*
 * dkim.c -- DKIM keys, signing and verification (libopendkim).
 *
 * Keys are read once per configuration load, as root at start and as the
 * milter user on reload, and checked then: a key that cannot be used is a
 * configuration error naming its file, never a surprise at signing time.
 * The per-message work streams through libopendkim: headers at end of
 * headers, body chunks as they come, signature or verdict at end of
 * message.  One function (sig_result) maps what libopendkim says about a
 * signature to an RFC 8601 result, so the log, the rules and the
 * Authentication-Results header can never disagree.
 */
#include "config.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <resolv.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <opendkim/dkim.h>

#include "mw_dkim.h"
#include "mw_dns.h"
#include "mw_log.h"
#include "mw_text.h"

#define KEY_FILE_MAX   (64 * 1024)
#define TABLE_FILE_MAX (16 * 1024 * 1024)

struct key {
	char *name; /* KeyTable name, or "SELECTOR._domainkey.DOMAIN" */
	char *domain;
	char *selector;
	char *file;
	unsigned char *pem; /* as read, NUL-terminated: libopendkim's input */
	dkim_alg_t alg;
	unsigned bits;
	unsigned char *pub; /* DER SubjectPublicKeyInfo, or raw Ed25519 key */
	size_t publen;
	bool from_list; /* from dkim_keys: selected by domain */
	bool cached;    /* its parsed form is in parsed_keys */
};

/* One SigningTable line. */
struct sigentry {
	char *pattern; /* lower case */
	bool glob;     /* refile: pattern */
	size_t key;    /* index into keys */
};

struct mw_dkim {
	DKIM_LIB *lib;
	struct mw_dns *dns;
	struct key *keys;
	size_t nkeys;
	struct sigentry *table;
	size_t ntable;
	bool multiple, subdomains, verify;
	unsigned long expire;
	char authserv[256];
};

/* The oversigned header list: an added copy of any of them breaks it. */
static const char *const sign_headers[] = { "from", "to", "cc", "subject",
	"date", "message-id", "reply-to", "in-reply-to", "references",
	"mime-version", "content-type", "content-transfer-encoding", NULL };

/* A message's libopendkim allocations (see dk_malloc). */
struct blk {
	struct blk *prev, *next;
	max_align_t align[];
};

struct arena {
	struct blk *head;
};

struct mw_dkim_job {
	struct arena arena; /* libopendkim's allocations for this message */
	EVP_PKEY *held[MW_DKIM_MAX_SIGS]; /* keys handed out while signing */
	size_t nheld;
	const struct mw_dkim *d;
	bool sign;
	DKIM *h[MW_DKIM_MAX_SIGS]; /* signing: one per key; verify: [0] */
	size_t keys[MW_DKIM_MAX_SIGS];
	size_t nh;
	bool nosig; /* verification found no signature */
	bool done;
	struct mw_dkim_sig sigs[MW_DKIM_MAX_SIGS];
	size_t nsigs;
	char err[256];
	char *hdrbuf; /* "Name: value" with CRLF line ends, reused */
	size_t hdrsize;
};

/* ------------------------------------------------------- parsed keys */

/*
 * libopendkim takes a signing key as PEM text and parses it again for every
 * message (PEM_read_bio_PrivateKey): with OpenSSL 3 that costs more than the
 * RSA signature itself.  The keys are parsed once, when loaded, and kept
 * here; our definition of PEM_read_bio_PrivateKey, which the dynamic linker
 * binds libopendkim's call to, hands out a new reference to the parsed key
 * when the text is one of ours and calls OpenSSL's own otherwise.
 * libopendkim frees what it gets with EVP_PKEY_free, which drops that
 * reference.  Concurrent signing with one EVP_PKEY is safe in OpenSSL 3.
 */
struct parsed {
	unsigned char *pem;
	size_t len;
	EVP_PKEY *pk;
	unsigned refs; /* loaded keys sharing this text */
	struct parsed *next;
};

static pthread_mutex_t parsed_lock = PTHREAD_MUTEX_INITIALIZER;
static struct parsed *parsed_keys; /* guarded by parsed_lock */

/*
 * libopendkim 2.11 never frees the Ed25519 key it loads for signing, nor
 * the 64-byte structure that holds it.  The structure comes from the
 * allocator given to dkim_init with the message's closure: each job's
 * allocations are linked in its arena and whatever libopendkim leaves
 * behind is freed with the job.  The key references handed out while a job
 * signs are noted (handouts, per thread) and the Ed25519 ones released with
 * the job, on library versions known to leak them.
 */
#define ED25519_LEAKS (OPENDKIM_LIB_VERSION <= 0x020B0000)

static _Thread_local EVP_PKEY **handouts;
static _Thread_local size_t nhandouts, maxhandouts;

static void *
dk_malloc(void *closure, size_t n)
{
	struct arena *a = closure;
	struct blk *b;

	if (a == NULL)
		return malloc(n);
	if (n > SIZE_MAX - sizeof(*b) || (b = malloc(sizeof(*b) + n)) == NULL)
		return NULL;
	b->prev = NULL;
	b->next = a->head;
	if (a->head != NULL)
		a->head->prev = b;
	a->head = b;
	return b->align;
}

static void
dk_free(void *closure, void *p)
{
	struct arena *a = closure;
	struct blk *b;

	if (p == NULL)
		return;
	if (a == NULL) {
		free(p);
		return;
	}
	b = (struct blk *)((char *)p - offsetof(struct blk, align));
	if (b->prev != NULL)
		b->prev->next = b->next;
	else
		a->head = b->next;
	if (b->next != NULL)
		b->next->prev = b->prev;
	free(b);
}

static void
arena_release(struct arena *a)
{
	struct blk *b, *next;

	for (b = a->head; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	a->head = NULL;
}

typedef EVP_PKEY *(*pem_read_fn)(BIO *, EVP_PKEY **, pem_password_cb *, void *);

static void
parsed_add(const unsigned char *pem, EVP_PKEY *pk)
{
	size_t len = strlen((const char *)pem);
	struct parsed *p;

	pthread_mutex_lock(&parsed_lock);
	for (p = parsed_keys; p != NULL; p = p->next)
		if (p->len == len && memcmp(p->pem, pem, len) == 0)
			break;
	if (p != NULL) {
		p->refs++;
	} else if ((p = calloc(1, sizeof(*p))) != NULL &&
	    (p->pem = malloc(len)) != NULL && EVP_PKEY_up_ref(pk) == 1) {
		memcpy(p->pem, pem, len);
		p->len = len;
		p->pk = pk;
		p->refs = 1;
		p->next = parsed_keys;
		parsed_keys = p;
	} else if (p != NULL) {
		free(p->pem);
		free(p); /* not cached: libopendkim parses it itself */
	}
	pthread_mutex_unlock(&parsed_lock);
}

static void
parsed_drop(const unsigned char *pem)
{
	size_t len = strlen((const char *)pem);
	struct parsed **pp, *p;

	pthread_mutex_lock(&parsed_lock);
	for (pp = &parsed_keys; (p = *pp) != NULL; pp = &p->next)
		if (p->len == len && memcmp(p->pem, pem, len) == 0)
			break;
	if (p != NULL && --p->refs == 0) {
		*pp = p->next;
		OPENSSL_cleanse(p->pem, p->len);
		free(p->pem);
		EVP_PKEY_free(p->pk);
		free(p);
	}
	pthread_mutex_unlock(&parsed_lock);
}

EVP_PKEY *
PEM_read_bio_PrivateKey(BIO *bp, EVP_PKEY **x, pem_password_cb *cb, void *u)
{
	static _Atomic(pem_read_fn) real;
	pem_read_fn fn;
	char *data = NULL;
	long n = -1;

	if (bp != NULL && x == NULL && BIO_method_type(bp) == BIO_TYPE_MEM)
		n = BIO_get_mem_data(bp, &data);
	if (n > 0) {
		EVP_PKEY *hit = NULL;
		struct parsed *p;

		pthread_mutex_lock(&parsed_lock);
		for (p = parsed_keys; p != NULL; p = p->next)
			if (p->len <= (size_t)n &&
			    memcmp(p->pem, data, p->len) == 0 &&
			    EVP_PKEY_up_ref(p->pk) == 1) {
				hit = p->pk;
				break;
			}
		pthread_mutex_unlock(&parsed_lock);
		if (hit != NULL && handouts != NULL && nhandouts < maxhandouts)
			handouts[nhandouts++] = hit;
		if (hit != NULL) {
			/* As if read: the BIO is consumed. */
			(void)BIO_reset(bp);
			(void)BIO_seek(bp, n);
			return hit;
		}
	}
	if ((fn = real) == NULL) {
		*(void **)&fn = dlsym(RTLD_NEXT, "PEM_read_bio_PrivateKey");
		if (fn == NULL)
			return NULL;
		real = fn;
	}
	return fn(bp, x, cb, u);
}

/* ----------------------------------------------------------------- keys */

static char *
lower_dup(const char *s)
{
	char *d = strdup(s), *p;

	if (d != NULL)
		for (p = d; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	return d;
}

/*
 * read_key_file -- the key file's text, after the checks an administrator
 * relies on: a regular file, not readable by group or others when
 * require_safe, of sane size.  NULL with *why set (static or in whybuf).
 */
static unsigned char *
read_key_file(const char *path, bool require_safe, char *whybuf, size_t whylen,
    const char **why)
{
	struct stat sb;
	unsigned char *buf;
	ssize_t n;
	size_t got = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0) {
		snprintf(whybuf, whylen, "cannot open key file %s: %s", path,
		    strerror(errno));
		*why = whybuf;
		return NULL;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(whybuf, whylen, "key file %s is not a regular file",
		    path);
		*why = whybuf;
		close(fd);
		return NULL;
	}
	if (require_safe && (sb.st_mode & 077) != 0) {
		snprintf(whybuf, whylen,
		    "key file %s is readable or writable by group or others "
		    "(mode %04o); make it 0600 or 0400 and owned by the milter "
		    "user, or set dkim_require_safe_keys = no",
		    path, (unsigned)(sb.st_mode & 07777));
		*why = whybuf;
		close(fd);
		return NULL;
	}
	if (sb.st_size <= 0 || sb.st_size > KEY_FILE_MAX) {
		snprintf(whybuf, whylen,
		    "key file %s: size %lld is not that "
		    "of a private key",
		    path, (long long)sb.st_size);
		*why = whybuf;
		close(fd);
		return NULL;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		close(fd);
		*why = "out of memory";
		return NULL;
	}
	while (got < (size_t)sb.st_size &&
	    (n = read(fd, buf + got, (size_t)sb.st_size - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(whybuf, whylen, "reading key file %s: %s",
			    path, strerror(errno));
			*why = whybuf;
			free(buf);
			close(fd);
			return NULL;
		}
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return buf;
}

/*
 * parse_key -- algorithm, size and public half of k->pem.  libopendkim
 * parses the same text again per message; doing it here first turns a
 * broken key into a load error.
 */
static bool
parse_key(struct key *k, unsigned long min_bits, char *whybuf, size_t whylen)
{
	BIO *bio = BIO_new_mem_buf(k->pem, (int)strlen((char *)k->pem));
	EVP_PKEY *pk = NULL;
	bool ok = false;

	if (bio != NULL)
		pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (pk == NULL) {
		snprintf(whybuf, whylen,
		    "key file %s: not a PEM private key (RSA or Ed25519)",
		    k->file);
		goto out;
	}
	switch (EVP_PKEY_base_id(pk)) {
	case EVP_PKEY_RSA: {
		unsigned char *der = NULL;
		int len;

		k->alg = DKIM_SIGN_RSASHA256;
		k->bits = (unsigned)EVP_PKEY_bits(pk);
		if (k->bits < min_bits) {
			snprintf(whybuf, whylen,
			    "key file %s: RSA key of %u bits is below "
			    "dkim_min_rsa_bits (%lu)",
			    k->file, k->bits, min_bits);
			goto out;
		}
		if ((len = i2d_PUBKEY(pk, &der)) <= 0) {
			snprintf(whybuf, whylen, "key file %s: no public key",
			    k->file);
			goto out;
		}
		k->pub = der;
		k->publen = (size_t)len;
		break;
	}
	case EVP_PKEY_ED25519: {
		size_t len = 32;

		k->alg = DKIM_SIGN_ED25519SHA256;
		k->bits = 256;
		if ((k->pub = OPENSSL_malloc(len)) == NULL ||
		    EVP_PKEY_get_raw_public_key(pk, k->pub, &len) != 1) {
			snprintf(whybuf, whylen, "key file %s: no public key",
			    k->file);
			goto out;
		}
		k->publen = len;
		break;
	}
	default:
		snprintf(whybuf, whylen,
		    "key file %s: key type %s cannot sign DKIM (RSA or "
		    "Ed25519)",
		    k->file, OBJ_nid2sn(EVP_PKEY_base_id(pk)));
		goto out;
	}
	ok = true;
	parsed_add(k->pem, pk);
	k->cached = true;
out:
	EVP_PKEY_free(pk);
	BIO_free(bio);
	return ok;
}

static void
key_free(struct key *k)
{
	free(k->name);
	free(k->domain);
	free(k->selector);
	free(k->file);
	if (k->cached)
		parsed_drop(k->pem);
	if (k->pem != NULL) {
		OPENSSL_cleanse(k->pem, strlen((char *)k->pem));
		free(k->pem);
	}
	OPENSSL_free(k->pub);
}

static bool
valid_label_text(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' &&
		    *s != '_')
			return false;
	return true;
}

/*
 * add_key -- one DOMAIN:SELECTOR:KEYFILE; origin/line for diagnostics.
 * name NULL means "SELECTOR._domainkey.DOMAIN".
 */
static void
add_key(struct mw_dkim *d, const char *name, const char *spec,
    const struct mw_config *cfg, const char *origin, unsigned line,
    bool from_list, struct mw_diag *diag)
{
	char whybuf[512];
	const char *why = NULL;
	const char *c1 = strchr(spec, ':'), *c2;
	struct key k, *v;

	memset(&k, 0, sizeof(k));
	if (c1 == NULL || (c2 = strchr(c1 + 1, ':')) == NULL || c2[1] == '\0') {
		mw_diag_error(diag, origin, line, 0,
		    "DKIM key \"%s\": expected DOMAIN:SELECTOR:KEYFILE", spec);
		return;
	}
	k.domain = strndup(spec, (size_t)(c1 - spec));
	k.selector = strndup(c1 + 1, (size_t)(c2 - c1 - 1));
	k.file = strdup(c2 + 1);
	if (k.domain == NULL || k.selector == NULL || k.file == NULL) {
		mw_diag_error(diag, origin, line, 0, "out of memory");
		goto fail;
	}
	for (char *p = k.domain; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!valid_label_text(k.domain) || !valid_label_text(k.selector)) {
		mw_diag_error(diag, origin, line, 0,
		    "DKIM key \"%s\": domain and selector must be DNS names",
		    spec);
		goto fail;
	}
	if (name != NULL)
		k.name = strdup(name);
	else if (asprintf(&k.name, "%s._domainkey.%s", k.selector, k.domain) <
	    0)
		k.name = NULL;
	if (k.name == NULL) {
		mw_diag_error(diag, origin, line, 0, "out of memory");
		goto fail;
	}
	k.from_list = from_list;
	k.pem = read_key_file(k.file, cfg->dkim_require_safe_keys != 0, whybuf,
	    sizeof(whybuf), &why);
	if (k.pem == NULL) {
		mw_diag_error(diag, origin, line, 0, "%s", why);
		goto fail;
	}
	if (!parse_key(&k, cfg->dkim_min_rsa_bits, whybuf, sizeof(whybuf))) {
		mw_diag_error(diag, origin, line, 0, "%s", whybuf);
		goto fail;
	}
	if ((v = realloc(d->keys, (d->nkeys + 1) * sizeof(*v))) == NULL) {
		mw_diag_error(diag, origin, line, 0, "out of memory");
		goto fail;
	}
	d->keys = v;
	d->keys[d->nkeys++] = k;
	return;
fail:
	key_free(&k);
}

static bool
find_key(const struct mw_dkim *d, const char *name, size_t *idx)
{
	size_t i;

	for (i = 0; i < d->nkeys; i++)
		if (!d->keys[i].from_list &&
		    strcmp(d->keys[i].name, name) == 0) {
			*idx = i;
			return true;
		}
	return false;
}

/*
 * next_line -- split buf in place into lines; comments ('#') and
 * surrounding blanks removed.  Returns the line or NULL at the end.
 */
static char *
next_line(char **cursor, unsigned *lineno)
{
	char *s = *cursor, *e, *h;

	if (s == NULL || *s == '\0')
		return NULL;
	e = strchr(s, '\n');
	if (e != NULL) {
		*e = '\0';
		*cursor = e + 1;
	} else {
		*cursor = s + strlen(s);
	}
	(*lineno)++;
	if ((h = strchr(s, '#')) != NULL)
		*h = '\0';
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* split2 -- "FIRST  REST": first word and the rest, in place. */
static bool
split2(char *s, char **a, char **b)
{
	char *p = s + strcspn(s, " \t");

	if (*p == '\0')
		return false;
	*p++ = '\0';
	p += strspn(p, " \t");
	*a = s;
	*b = p;
	return *p != '\0' && p[strcspn(p, " \t")] == '\0';
}

static char *
read_table(const char *path, struct mw_diag *diag, const char *origin)
{
	const char *why = NULL;
	bool opening = false;
	size_t len;
	char *buf = mw_read_regular(path, TABLE_FILE_MAX, &len, &opening, &why);

	if (buf == NULL) {
		mw_diag_error(diag, origin, 0, 0, "%s: %s", path, why);
		return NULL;
	}
	if (memchr(buf, '\0', len) != NULL) {
		mw_diag_error(diag, path, 0, 0, "NUL byte in the file");
		free(buf);
		return NULL;
	}
	return buf;
}

static void
load_key_table(struct mw_dkim *d, const struct mw_config *cfg,
    struct mw_diag *diag)
{
	const char *path = cfg->dkim_key_table;
	char *buf, *cur, *line, *name, *spec;
	unsigned lineno = 0;
	size_t idx;

	if ((buf = read_table(path, diag, cfg->path)) == NULL)
		return;
	cur = buf;
	while ((line = next_line(&cur, &lineno)) != NULL) {
		if (*line == '\0')
			continue;
		if (!split2(line, &name, &spec)) {
			mw_diag_error(diag, path, lineno, 1,
			    "expected NAME DOMAIN:SELECTOR:KEYFILE");
			continue;
		}
		if (find_key(d, name, &idx)) {
			mw_diag_error(diag, path, lineno, 1,
			    "key name \"%s\" defined twice", name);
			continue;
		}
		add_key(d, name, spec, cfg, path, lineno, false, diag);
	}
	free(buf);
}

static void
load_signing_table(struct mw_dkim *d, const struct mw_config *cfg,
    struct mw_diag *diag)
{
	const char *spec = cfg->dkim_signing_table;
	bool glob = strncmp(spec, "refile:", 7) == 0;
	const char *path = glob ? spec + 7 : spec;
	char *buf, *cur, *line, *pat, *name;
	unsigned lineno = 0;

	if ((buf = read_table(path, diag, cfg->path)) == NULL)
		return;
	cur = buf;
	while ((line = next_line(&cur, &lineno)) != NULL) {
		struct sigentry e, *v;

		if (*line == '\0')
			continue;
		if (!split2(line, &pat, &name)) {
			mw_diag_error(diag, path, lineno, 1,
			    "expected PATTERN KEYNAME");
			continue;
		}
		if (!find_key(d, name, &e.key)) {
			mw_diag_error(diag, path, lineno,
			    (unsigned)(name - line) + 1,
			    "key \"%s\" is not in the key table%s%s", name,
			    cfg->dkim_key_table[0] != '\0' ? " " : "",
			    cfg->dkim_key_table);
			continue;
		}
		e.glob = glob;
		if ((e.pattern = lower_dup(pat)) == NULL ||
		    (v = realloc(d->table, (d->ntable + 1) * sizeof(*v))) ==
			NULL) {
			free(e.pattern);
			mw_diag_error(diag, path, lineno, 1, "out of memory");
			break;
		}
		d->table = v;
		d->table[d->ntable++] = e;
	}
	free(buf);
}

/* ------------------------------------------------------------- library */

static bool
lib_setup(struct mw_dkim *d, const struct mw_config *cfg, struct mw_diag *diag)
{
	unsigned int flags =
	    DKIM_LIBFLAGS_FIXCRLF | DKIM_LIBFLAGS_BADSIGHANDLES;
	uint64_t ttl = cfg->dkim_expire;
	unsigned timeout = (unsigned)cfg->dns_timeout;
	char err[256];

	if ((d->lib = dkim_init(dk_malloc, dk_free)) == NULL) {
		mw_diag_error(diag, cfg->path, 0, 0,
		    "libopendkim could not be initialised");
		return false;
	}
	/*
	 * dkim_init also (re)initialises this thread's libc resolver state,
	 * which nothing here uses (lookups go through mw_dns): release it, or
	 * every reload leaks what res_ninit allocated.
	 */
	res_nclose(&_res);
	if (dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
		sizeof(flags)) != DKIM_STAT_OK ||
	    dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
		(void *)sign_headers, sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
		(void *)sign_headers, sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_TIMEOUT, &timeout,
		sizeof(timeout)) != DKIM_STAT_OK ||
	    (ttl > 0 &&
		dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNATURETTL,
		    &ttl, sizeof(ttl)) != DKIM_STAT_OK)) {
		mw_diag_error(diag, cfg->path, 0, 0,
		    "libopendkim refused an option");
		return false;
	}
	{
		char servers[1024] = "";
		size_t i, len = 0;

		for (i = 0; cfg->dns_servers != NULL &&
		     cfg->dns_servers[i] != NULL && len + 2 < sizeof(servers);
		     i++) {
			int w = snprintf(servers + len, sizeof(servers) - len,
			    "%s ", cfg->dns_servers[i]);

			if (w > 0)
				len += (size_t)w;
		}
		d->dns = mw_dns_new(servers, (unsigned)cfg->dns_timeout * 1000,
		    err, sizeof(err));
	}
	if (d->dns == NULL) {
		mw_diag_error(diag, cfg->path, 0, 0, "%s", err);
		return false;
	}
	if (mw_dns_attach(d->lib, d->dns, err, sizeof(err)) != 0) {
		mw_diag_error(diag, cfg->path, 0, 0, "DKIM resolver: %s", err);
		return false;
	}
	return true;
}

struct mw_dkim *
mw_dkim_load(const struct mw_config *cfg, struct mw_diag *diag)
{
	size_t errors = diag->nerrors, i;
	struct mw_dkim *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		mw_diag_error(diag, cfg->path, 0, 0, "out of memory");
		return NULL;
	}
	d->multiple = cfg->dkim_multiple_signatures != 0;
	d->subdomains = cfg->dkim_subdomains != 0;
	d->verify = cfg->dkim_verify != 0;
	d->expire = cfg->dkim_expire;
	if (cfg->authserv_id[0] != '\0')
		(void)mw_strlcpy(d->authserv, cfg->authserv_id,
		    sizeof(d->authserv));
	else if (gethostname(d->authserv, sizeof(d->authserv) - 1) != 0 ||
	    d->authserv[0] == '\0')
		(void)mw_strlcpy(d->authserv, "localhost", sizeof(d->authserv));
	if (strpbrk(d->authserv, " \t;()\"") != NULL)
		mw_diag_error(diag, cfg->path, 0, 0,
		    "authserv_id \"%s\": no spaces, ';', '(', ')' or '\"'",
		    d->authserv);
	for (i = 0; cfg->dkim_keys != NULL && cfg->dkim_keys[i] != NULL; i++)
		add_key(d, NULL, cfg->dkim_keys[i], cfg, cfg->path, 0, true,
		    diag);
	if (cfg->dkim_key_table[0] != '\0')
		load_key_table(d, cfg, diag);
	if (cfg->dkim_signing_table[0] != '\0') {
		if (cfg->dkim_key_table[0] == '\0')
			mw_diag_error(diag, cfg->path, 0, 0,
			    "dkim_signing_table needs dkim_key_table");
		else
			load_signing_table(d, cfg, diag);
	} else if (cfg->dkim_key_table[0] != '\0') {
		mw_diag_warning(diag, cfg->path, 0, 0,
		    "dkim_key_table without dkim_signing_table: its keys "
		    "sign only when a rule names them");
	}
	if (diag->nerrors == errors)
		(void)lib_setup(d, cfg, diag);
	if (diag->nerrors > errors) {
		mw_dkim_free(d);
		return NULL;
	}
	return d;
}

void
mw_dkim_free(struct mw_dkim *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nkeys; i++)
		key_free(&d->keys[i]);
	free(d->keys);
	for (i = 0; i < d->ntable; i++)
		free(d->table[i].pattern);
	free(d->table);
	if (d->lib != NULL)
		dkim_close(d->lib);
	mw_dns_free(d->dns);
	free(d);
}

const struct mw_dns *
mw_dkim_resolver(const struct mw_dkim *d)
{
	return d->dns;
}

const char *
mw_dkim_authserv(const struct mw_dkim *d)
{
	return d->authserv;
}

size_t
mw_dkim_nkeys(const struct mw_dkim *d)
{
	return d != NULL ? d->nkeys : 0;
}

bool
mw_dkim_verifies(const struct mw_dkim *d)
{
	return d != NULL && d->verify;
}

/* -------------------------------------------------------- key selection */

static size_t
add_idx(size_t *idx, size_t n, size_t max, size_t k)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (idx[i] == k)
			return n;
	if (n < max)
		idx[n++] = k;
	return n;
}

static size_t
select_forced(const struct mw_dkim *d, const char *forced, size_t *idx,
    size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < d->nkeys; i++)
		if (strcmp(d->keys[i].name, forced) == 0 ||
		    strcasecmp(d->keys[i].domain, forced) == 0)
			n = add_idx(idx, n, max, i);
	return n;
}

bool
mw_dkim_key_exists(const struct mw_dkim *d, const char *name)
{
	size_t idx;

	return select_forced(d, name, &idx, 1) > 0;
}

/* table_match -- does SigningTable entry e match this author? */
static bool
table_match(const struct sigentry *e, const char *addr, const char *domain)
{
	if (e->glob)
		return (addr != NULL &&
			   fnmatch(e->pattern, addr, FNM_CASEFOLD) == 0) ||
		    fnmatch(e->pattern, domain, FNM_CASEFOLD) == 0;
	return (addr != NULL && strcasecmp(e->pattern, addr) == 0) ||
	    strcasecmp(e->pattern, domain) == 0;
}

size_t
mw_dkim_select(const struct mw_dkim *d, const char *addr, const char *domain,
    const char *forced, size_t *idx, size_t max)
{
	const char *dom;
	size_t i, n = 0;

	if (d == NULL)
		return 0;
	if (forced != NULL)
		return select_forced(d, forced, idx, max);
	if (domain == NULL || *domain == '\0')
		return 0;
	for (i = 0; i < d->ntable; i++) {
		if (!table_match(&d->table[i], addr, domain))
			continue;
		n = add_idx(idx, n, max, d->table[i].key);
		if (!d->multiple)
			return n;
	}
	/* dkim_keys: by domain, then each parent when allowed. */
	for (dom = domain; dom != NULL && n == 0;) {
		for (i = 0; i < d->nkeys; i++)
			if (d->keys[i].from_list &&
			    strcasecmp(d->keys[i].domain, dom) == 0)
				n = add_idx(idx, n, max, i);
		if (!d->subdomains)
			break;
		dom = strchr(dom, '.');
		if (dom != NULL && strchr(++dom, '.') == NULL)
			break; /* never a top-level domain's key */
	}
	return n;
}

/* --------------------------------------------------------------- jobs */

static void
set_err(struct mw_dkim_job *j, const char *what, DKIM *h, DKIM_STAT st)
{
	const char *detail = h != NULL ? dkim_geterror(h) : NULL;

	snprintf(j->err, sizeof(j->err), "%s: %s%s%s", what,
	    dkim_getresultstr(st), detail != NULL && *detail ? ": " : "",
	    detail != NULL ? detail : "");
}

static const char *
alg_name(dkim_alg_t a)
{
	switch (a) {
	case DKIM_SIGN_RSASHA256: return "rsa-sha256";
	case DKIM_SIGN_ED25519SHA256: return "ed25519-sha256";
	case DKIM_SIGN_RSASHA1: return "rsa-sha1";
	default: return "unknown";
	}
}

struct mw_dkim_job *
mw_dkim_sign_begin(const struct mw_dkim *d, const size_t *keys, size_t nkeys,
    const char *id, char *err, size_t errlen)
{
	struct mw_dkim_job *j = calloc(1, sizeof(*j));
	size_t i;

	if (j == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	j->d = d;
	j->sign = true;
	for (i = 0; i < nkeys && i < MW_DKIM_MAX_SIGS; i++) {
		const struct key *k = &d->keys[keys[i]];
		DKIM_STAT st = DKIM_STAT_OK;
		DKIM *h;

		h = dkim_sign(d->lib, (const unsigned char *)id, &j->arena,
		    (dkim_sigkey_t)k->pem, (const unsigned char *)k->selector,
		    (const unsigned char *)k->domain, DKIM_CANON_RELAXED,
		    DKIM_CANON_RELAXED, k->alg, -1, &st);
		if (h == NULL) {
			snprintf(err, errlen, "key %s (%s): %s", k->name,
			    k->file, dkim_getresultstr(st));
			mw_dkim_job_free(j);
			return NULL;
		}
		j->h[j->nh] = h;
		j->keys[j->nh++] = keys[i];
	}
	return j;
}

struct mw_dkim_job *
mw_dkim_verify_begin(const struct mw_dkim *d, const char *id, char *err,
    size_t errlen)
{
	struct mw_dkim_job *j = calloc(1, sizeof(*j));
	DKIM_STAT st = DKIM_STAT_OK;

	if (j == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	j->d = d;
	j->h[0] =
	    dkim_verify(d->lib, (const unsigned char *)id, &j->arena, &st);
	if (j->h[0] == NULL) {
		snprintf(err, errlen, "cannot start verification: %s",
		    dkim_getresultstr(st));
		free(j);
		return NULL;
	}
	j->nh = 1;
	return j;
}

bool
mw_dkim_header(struct mw_dkim_job *j, const char *name, const char *value)
{
	size_t nlen = strlen(name), vlen = strlen(value), need, i;

	if (j->nosig || j->done)
		return true;
	/* "Name:" + value with every bare LF made CRLF; + NUL. */
	need = nlen + 2 + 2 * vlen + 1;
	if (need > j->hdrsize) {
		char *nb = realloc(j->hdrbuf, need);

		if (nb == NULL) {
			snprintf(j->err, sizeof(j->err), "out of memory");
			return false;
		}
		j->hdrbuf = nb;
		j->hdrsize = need;
	}
	memcpy(j->hdrbuf, name, nlen);
	need = nlen;
	j->hdrbuf[need++] = ':';
	/* Values come without the space after the colon unless asked. */
	if (value[0] != ' ' && value[0] != '\t')
		j->hdrbuf[need++] = ' ';
	for (i = 0; i < vlen; i++) {
		if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r'))
			j->hdrbuf[need++] = '\r';
		j->hdrbuf[need++] = value[i];
	}
	for (i = 0; i < j->nh; i++) {
		DKIM_STAT st = dkim_header(j->h[i], (u_char *)j->hdrbuf, need);

		if (st != DKIM_STAT_OK) {
			set_err(j, "header", j->h[i], st);
			return false;
		}
	}
	return true;
}

bool
mw_dkim_eoh(struct mw_dkim_job *j)
{
	size_t i;

	if (j->nosig || j->done)
		return true;
	for (i = 0; i < j->nh; i++) {
		DKIM_STAT st = dkim_eoh(j->h[i]);

		if (!j->sign && st == DKIM_STAT_NOSIG) {
			j->nosig = true;
			return true;
		}
		/* Verification goes on: the verdict is per signature. */
		if (st != DKIM_STAT_OK && j->sign) {
			set_err(j, "end of headers", j->h[i], st);
			return false;
		}
	}
	return true;
}

bool
mw_dkim_wants_body(const struct mw_dkim_job *j)
{
	return !j->nosig && !j->done;
}

bool
mw_dkim_body(struct mw_dkim_job *j, const unsigned char *buf, size_t len)
{
	size_t i;

	if (j->nosig || j->done || len == 0)
		return true;
	for (i = 0; i < j->nh; i++) {
		DKIM_STAT st = dkim_body(j->h[i], (u_char *)buf, len);

		if (st != DKIM_STAT_OK && j->sign) {
			set_err(j, "body", j->h[i], st);
			return false;
		}
	}
	return true;
}

/* strip_cr -- the signature as the MTA wants it: folded with LF only. */
static char *
strip_cr(const unsigned char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t i, o = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++)
		if (s[i] != '\r')
			out[o++] = (char)s[i];
	out[o] = '\0';
	return out;
}

static bool
sign_eom(struct mw_dkim_job *j)
{
	size_t i;

	for (i = 0; i < j->nh; i++) {
		const struct key *k = &j->d->keys[j->keys[i]];
		struct mw_dkim_sig *s = &j->sigs[j->nsigs];
		u_char *hdr = NULL;
		size_t len = 0;
		DKIM_STAT st;

		/* Note the parsed key libopendkim takes (see handouts). */
		handouts = j->held;
		nhandouts = j->nheld;
		maxhandouts = MW_DKIM_MAX_SIGS;
		st = dkim_eom(j->h[i], NULL);
		j->nheld = nhandouts;
		handouts = NULL;

		if (st == DKIM_STAT_OK)
			st = dkim_getsighdr_d(j->h[i],
			    sizeof("DKIM-Signature: ") - 1, &hdr, &len);
		if (st != DKIM_STAT_OK) {
			char what[300];

			snprintf(what, sizeof(what), "signing with key %s",
			    k->name);
			set_err(j, what, j->h[i], st);
			return false;
		}
		memset(s, 0, sizeof(*s));
		(void)mw_strlcpy(s->result, "signed", sizeof(s->result));
		(void)mw_strlcpy(s->domain, k->domain, sizeof(s->domain));
		(void)mw_strlcpy(s->selector, k->selector, sizeof(s->selector));
		(void)mw_strlcpy(s->alg, alg_name(k->alg), sizeof(s->alg));
		if ((s->header = strip_cr(hdr, len)) == NULL) {
			snprintf(j->err, sizeof(j->err), "out of memory");
			return false;
		}
		j->nsigs++;
	}
	return true;
}

/*
 * sig_result -- RFC 8601 result of one verified signature, and why it is
 * not a pass.  A signature whose l= leaves part of the body unsigned is
 * "policy": the unsigned rest could be anything.
 */
static const char *
sig_result(DKIM *h, DKIM_SIGINFO *sig, char *why, size_t whylen)
{
	unsigned flags = dkim_sig_getflags(sig);
	int err = dkim_sig_geterror(sig);
	const char *es;

	*why = '\0';
	if (flags & DKIM_SIGFLAG_IGNORE) {
		snprintf(why, whylen, "not evaluated");
		return "neutral";
	}
	if ((flags & DKIM_SIGFLAG_PASSED) &&
	    dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH) {
		ssize_t msglen = -1, canonlen = -1, signlen = -1;

		if (dkim_sig_getcanonlen(h, sig, &msglen, &canonlen,
			&signlen) == DKIM_STAT_OK &&
		    signlen >= 0 && msglen > signlen) {
			snprintf(why, whylen,
			    "l=%zd covers only part of the body", signlen);
			return "policy";
		}
		return "pass";
	}
	es = dkim_sig_geterrorstr(err);
	snprintf(why, whylen, "%s", es != NULL ? es : "signature not verified");
	switch (err) {
	case DKIM_SIGERROR_KEYFAIL: return "temperror";
	case DKIM_SIGERROR_BADSIG:
	case DKIM_SIGERROR_OK:
	case DKIM_SIGERROR_EXPIRED:
	case DKIM_SIGERROR_FUTURE:
	case DKIM_SIGERROR_KEYREVOKED:
	case DKIM_SIGERROR_KEYHASHMISMATCH:
	case DKIM_SIGERROR_SUBDOMAIN:
	case DKIM_SIGERROR_KEYTOOSMALL: return "fail";
	default: break;
	}
	if ((flags & DKIM_SIGFLAG_PROCESSED) &&
	    dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
		snprintf(why, whylen, "body hash mismatch");
		return "fail";
	}
	return "permerror";
}

static bool
verify_eom(struct mw_dkim_job *j)
{
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0, i;
	DKIM_STAT st = dkim_eom(j->h[0], NULL);

	(void)st; /* the verdict is read per signature below */
	if (dkim_getsiglist(j->h[0], &sigs, &nsigs) != DKIM_STAT_OK)
		return true; /* no signature after all: "none" */
	for (i = 0; i < nsigs && j->nsigs < MW_DKIM_MAX_SIGS; i++) {
		struct mw_dkim_sig *s = &j->sigs[j->nsigs];
		const unsigned char *dom = dkim_sig_getdomain(sigs[i]);
		const unsigned char *sel = dkim_sig_getselector(sigs[i]);
		dkim_alg_t alg = DKIM_SIGN_UNKNOWN;

		memset(s, 0, sizeof(*s));
		(void)mw_strlcpy(s->result,
		    sig_result(j->h[0], sigs[i], s->reason, sizeof(s->reason)),
		    sizeof(s->result));
		(void)mw_printable(s->domain, sizeof(s->domain),
		    dom != NULL ? (const char *)dom : "",
		    dom != NULL ? strlen((const char *)dom) : 0);
		(void)mw_printable(s->selector, sizeof(s->selector),
		    sel != NULL ? (const char *)sel : "",
		    sel != NULL ? strlen((const char *)sel) : 0);
		(void)dkim_sig_getsignalg(sigs[i], &alg);
		(void)mw_strlcpy(s->alg, alg_name(alg), sizeof(s->alg));
		j->nsigs++;
	}
	return true;
}

bool
mw_dkim_eom(struct mw_dkim_job *j)
{
	if (j->done)
		return true;
	j->done = true;
	if (j->nosig)
		return true;
	return j->sign ? sign_eom(j) : verify_eom(j);
}

const char *
mw_dkim_error(const struct mw_dkim_job *j)
{
	return j->err[0] != '\0' ? j->err : "unknown DKIM error";
}

void
mw_dkim_job_free(struct mw_dkim_job *j)
{
	size_t i;

	if (j == NULL)
		return;
	for (i = 0; i < j->nh; i++)
		dkim_free(j->h[i]);
	for (i = 0; i < j->nheld; i++)
		if (ED25519_LEAKS &&
		    EVP_PKEY_base_id(j->held[i]) == EVP_PKEY_ED25519)
			EVP_PKEY_free(j->held[i]);
	arena_release(&j->arena);
	for (i = 0; i < j->nsigs; i++)
		free(j->sigs[i].header);
	free(j->hdrbuf);
	free(j);
}

const struct mw_dkim_sig *
mw_dkim_sigs(const struct mw_dkim_job *j, size_t *n)
{
	*n = j->nsigs;
	return j->sigs;
}

const char *
mw_dkim_summary(const struct mw_dkim_job *j)
{
	static const char *const order[] = { "pass", "fail", "policy",
		"permerror", "temperror", "neutral" };
	size_t o, i;

	for (o = 0; o < sizeof(order) / sizeof(order[0]); o++)
		for (i = 0; i < j->nsigs; i++)
			if (strcmp(j->sigs[i].result, order[o]) == 0)
				return order[o];
	return "none";
}

bool
mw_dkim_auth_results(const struct mw_dkim_job *j, const char *authserv,
    char *buf, size_t size)
{
	size_t i, len;
	int n;

	n = snprintf(buf, size, "%s;", authserv);
	if (n < 0 || (size_t)n >= size)
		return false;
	len = (size_t)n;
	if (j->nsigs == 0) {
		n = snprintf(buf + len, size - len, " dkim=none");
		return n >= 0 && (size_t)n < size - len;
	}
	for (i = 0; i < j->nsigs; i++) {
		const struct mw_dkim_sig *s = &j->sigs[i];

		n = snprintf(buf + len, size - len,
		    "%s\n\tdkim=%s%s%s%s header.d=%s header.s=%s header.a=%s",
		    i > 0 ? ";" : "", s->result,
		    s->reason[0] ? " reason=\"" : "", s->reason,
		    s->reason[0] ? "\"" : "",
		    s->domain[0] ? s->domain : "unknown",
		    s->selector[0] ? s->selector : "unknown", s->alg);
		if (n < 0 || (size_t)n >= size - len)
			return false;
		len += (size_t)n;
	}
	return true;
}

/* ------------------------------------------------------------ -n check */

void
mw_dkim_check_dns(const struct mw_dkim *d, struct mw_diag *diag)
{
	size_t i;

	for (i = 0; d != NULL && i < d->nkeys; i++) {
		const struct key *k = &d->keys[i];
		char name[600], txt[4096], err[256], *p, *e;
		unsigned char *want = NULL;
		int rc, wantlen;
		unsigned ttl = 0;

		snprintf(name, sizeof(name), "%s._domainkey.%s", k->selector,
		    k->domain);
		rc = mw_dns_txt(d->dns, name, txt, sizeof(txt), &ttl, err,
		    sizeof(err));
		if (rc == MW_DNS_TEMPFAIL) {
			mw_diag_warning(diag, k->file, 0, 0,
			    "%s: DNS did not answer (%s); public key not "
			    "checked",
			    name, err);
			continue;
		}
		if (rc != MW_DNS_FOUND) {
			mw_diag_error(diag, k->file, 0, 0,
			    "%s: no DKIM key record in DNS", name);
			continue;
		}
		/* p= value, whitespace removed. */
		if ((p = strstr(txt, "p=")) == NULL ||
		    (p != txt && p[-1] != ';' && p[-1] != ' ' &&
			p[-1] != '\t')) {
			mw_diag_error(diag, k->file, 0, 0,
			    "%s: DNS record has no p= tag", name);
			continue;
		}
		p += 2;
		for (e = p; *e != '\0' && *e != ';'; e++)
			;
		*e = '\0';
		{
			char b64[4096];
			size_t o = 0;

			for (; *p != '\0' && o + 1 < sizeof(b64); p++)
				if (!isspace((unsigned char)*p))
					b64[o++] = *p;
			b64[o] = '\0';
			want = malloc(o + 4);
			wantlen = want != NULL
			    ? EVP_DecodeBlock(want, (unsigned char *)b64,
				  (int)o)
			    : -1;
			/* EVP_DecodeBlock counts the '=' padding as zeros. */
			while (wantlen > 0 && o > 0 && b64[o - 1] == '=') {
				wantlen--;
				o--;
			}
		}
		if (want == NULL || wantlen < 0 ||
		    (size_t)wantlen != k->publen ||
		    memcmp(want, k->pub, k->publen) != 0)
			mw_diag_error(diag, k->file, 0, 0,
			    "%s: the public key in DNS does not match this "
			    "private key",
			    name);
		free(want);
	}
}
