/*
 * main.c -- the milter-warden daemon: command line, start-up, privileges,
 * reload and graceful stop.
 *
 * Start-up order matters: configuration and rules are read and the socket
 * is opened as root; then privileges are dropped for good, and only then
 * does libmilter start serving.  In the background mode the parent waits
 * for the child to report "serving" or an error, so that its exit status
 * tells the truth about start-up.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include <netdb.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "mw_config.h"
#include "mw_explain.h"
#include "mw_sockopt.h"
#include "mw_store.h"
#include "mw_glue.h"
#include "mw_log.h"
#include "mw_signals.h"
#include "mw_state.h"
#include "mw_text.h"

static const char *conf_path;
static const char *overrides[3]; /* "socket", value, NULL */
static int ready_fd = -1;        /* background mode: tell the parent */
static atomic_bool drained;      /* drain() ran and removed the socket */

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: milter-warden [-fnDVh] [-c FILE] [-p SOCKET]\n"
	    "       milter-warden test [-c FILE] [options] --rcpt ADDR... "
	    "[MESSAGE-FILE]\n"
	    "  -c FILE    configuration file (default %s)\n"
	    "  -f         stay in the foreground, log to stderr\n"
	    "  -n         check the configuration and what it references, "
	    "then exit\n"
	    "  -p SOCKET  listen on SOCKET instead of the configured socket\n"
	    "  -D         print every parameter with its default, then exit\n"
	    "  -V         print the version, then exit\n"
	    "  -h         this help\n",
	    mw_config_default_path());
}

/*
 * startup_fail -- report a start-up error where the administrator sees it:
 * stderr before daemonizing, the waiting parent after, and the log.
 */
static void __attribute__((format(printf, 1, 2), noreturn))
startup_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mw_error("%s", msg);
	if (ready_fd != -1) {
		if (write(ready_fd, msg, strlen(msg)) < 0) {
			/* the parent reports a silent failure */
		}
	}
	exit(1);
}

static void
print_defaults(void)
{
	const struct mw_param *p;
	size_t n, i;

	p = mw_config_params(&n);
	printf("# milter-warden %s parameters and their defaults\n",
	    PACKAGE_VERSION);
	for (i = 0; i < n; i++)
		printf("\n# %s%s\n%s = %s\n", p[i].help,
		    p[i].reloadable ? "" : " (restart to change)", p[i].name,
		    p[i].def[0] != '\0' ? p[i].def : "\"\"");
}

static const char *
socket_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	if (spec[0] == '/')
		return spec;
	return NULL;
}

/*
 * check_socket_free -- refuse to start on a socket another process serves.
 * libmilter would silently remove a live unix socket (and log a bind error
 * only to syslog for a busy port), so look first.
 */
static void
check_socket_free(const char *spec)
{
	const char *path = socket_path(spec);

	if (path != NULL) {
		struct sockaddr_un sun;
		struct stat sb;
		int fd;

		if (strlen(path) >= sizeof(sun.sun_path))
			startup_fail("socket %s: path longer than %zu bytes",
			    spec, sizeof(sun.sun_path) - 1);
		if (lstat(path, &sb) == -1)
			return;
		if (!S_ISSOCK(sb.st_mode))
			startup_fail("socket %s: %s exists and is not a socket",
			    spec, path);
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, path, strlen(path) + 1);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
			return;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			startup_fail("socket %s is in use by another process "
				     "(another milter-warden running?)",
			    spec);
		}
		close(fd);
		return; /* stale: libmilter replaces it */
	} else {
		/* inet:PORT@HOST or inet6:PORT@HOST */
		struct addrinfo hints, *res = NULL, *ai;
		const char *rest = strchr(spec, ':') + 1;
		const char *at = strchr(rest, '@');
		char port[32], host[256];
		int rc, fd, on = 1;

		memset(&hints, 0, sizeof(hints));
		hints.ai_family =
		    strncmp(spec, "inet6:", 6) == 0 ? AF_INET6 : AF_INET;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		if (!mw_strlcpy(port, rest, sizeof(port)) ||
		    (at != NULL && !mw_strlcpy(host, at + 1, sizeof(host))))
			startup_fail("socket %s: malformed", spec);
		if (at != NULL)
			port[at - rest] = '\0';
		rc = getaddrinfo(at != NULL ? host : NULL, port, &hints, &res);
		if (rc != 0)
			startup_fail("socket %s: %s", spec, gai_strerror(rc));
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if ((fd = socket(ai->ai_family, ai->ai_socktype, 0)) ==
			    -1)
				continue;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
			    sizeof(on));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
				int e = errno;

				close(fd);
				freeaddrinfo(res);
				startup_fail("socket %s: cannot listen: %s",
				    spec, strerror(e));
			}
			close(fd);
		}
		freeaddrinfo(res);
	}
}

static void
setup_unix_socket(const struct mw_config *cfg, uid_t uid)
{
	const char *path = socket_path(cfg->socket);
	gid_t gid = (gid_t)-1;

	if (path == NULL)
		return;
	if (cfg->socket_group[0] != '\0') {
		struct group *gr = getgrnam(cfg->socket_group);

		if (gr == NULL)
			startup_fail("socket_group: no such group \"%s\"",
			    cfg->socket_group);
		gid = gr->gr_gid;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    chown(path, uid, gid) == -1)
		startup_fail("socket %s: chown: %s", cfg->socket,
		    strerror(errno));
	if (chmod(path, (mode_t)cfg->socket_mode) == -1)
		startup_fail("socket %s: chmod: %s", cfg->socket,
		    strerror(errno));
}

static void
write_pidfile(const char *path)
{
	char buf[32];
	int fd, n;

	if (path[0] == '\0')
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	if (fd == -1)
		startup_fail("pidfile %s: %s", path, strerror(errno));
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		startup_fail("pidfile %s: write failed", path);
	}
	close(fd);
}

/*
 * drop_privileges -- become cfg->user for good, or refuse to start.
 * Running as a non-root user is allowed when that user is the configured
 * one (or none is configured).
 */
static void
drop_privileges(const struct mw_config *cfg, struct passwd *pw)
{
	gid_t gid;

	if (cfg->user[0] == '\0') {
		if (geteuid() == 0)
			mw_warn("user is empty: running as root");
		return;
	}
	if (geteuid() != 0) {
		if (pw->pw_uid != geteuid())
			startup_fail("cannot switch to user %s: not running as "
				     "root",
			    cfg->user);
		return;
	}
	gid = pw->pw_gid;
	if (cfg->group[0] != '\0') {
		struct group *gr = getgrnam(cfg->group);

		if (gr == NULL)
			startup_fail("group: no such group \"%s\"", cfg->group);
		gid = gr->gr_gid;
	}
	if (setgroups(1, &gid) == -1 || setgid(gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		startup_fail("cannot switch to user %s: %s", cfg->user,
		    strerror(errno));
	if (pw->pw_uid != 0 && (setuid(0) != -1 || geteuid() == 0))
		startup_fail("could regain root after switching to %s; "
			     "refusing to run",
		    cfg->user);
}

/* Background mode: fork, and let the parent wait for the verdict. */
static void
daemonize(void)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds) == -1)
		startup_fail("pipe: %s", strerror(errno));
	if ((pid = fork()) == -1)
		startup_fail("fork: %s", strerror(errno));
	if (pid > 0) {
		char msg[1025];
		ssize_t n;

		close(fds[1]);
		while ((n = read(fds[0], msg, sizeof(msg) - 1)) == -1 &&
		    errno == EINTR)
			;
		if (n == 1 && msg[0] == '\0')
			_exit(0);
		if (n > 0) {
			msg[n] = '\0';
			fprintf(stderr, "milter-warden: %s\n", msg);
		} else {
			fprintf(stderr,
			    "milter-warden: start-up failed; "
			    "see the mail log\n");
		}
		_exit(1);
	}
	close(fds[0]);
	ready_fd = fds[1];
	if (setsid() == -1)
		startup_fail("setsid: %s", strerror(errno));
	if (chdir("/") == -1)
		startup_fail("chdir /: %s", strerror(errno));
}

static void
detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd == -1)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/* Called by the reload thread, once per SIGHUP. */
static void
reload(void)
{
	struct mw_state *old = mw_state_current(), *st;
	struct mw_diag diag;
	size_t i;

	mw_diag_init(&diag);
	st = mw_state_build(conf_path, overrides, &diag);
	if (st == NULL) {
		mw_error("reload: failed, keeping the running configuration "
			 "(generation %lu)",
		    old != NULL ? old->generation : 0UL);
		for (i = 0; i < diag.n; i++)
			mw_error("reload: %s", diag.v[i].text);
	} else {
		for (i = 0; i < diag.n; i++)
			mw_warn("reload: %s", diag.v[i].text);
		if (old != NULL)
			(void)mw_config_keep_static(st->cfg, old->cfg);
		mw_state_publish(st);
		mw_notice("reload: configuration reloaded (generation %lu, "
			  "sessions in flight, which finish under the previous "
			  "one: %u)",
		    old != NULL ? old->generation + 1 : 1UL, mw_glue_active());
	}
	mw_state_unref(old);
	mw_diag_free(&diag);
}

/*
 * drain -- on SIGTERM or SIGINT, before libmilter is told to stop: new MTA
 * connections are declined (and a unix socket is removed, so that they
 * fail at once), and sessions in flight get up to shutdown_timeout
 * seconds to finish.  A second SIGTERM or SIGINT stops at once.  Runs in
 * libmilter's signal thread (see signals.c).
 */
static void
drain(const sigset_t *set)
{
	struct mw_state *st = mw_state_current();
	unsigned long timeout = st != NULL ? st->cfg->shutdown_timeout : 0;
	const char *path = st != NULL ? socket_path(st->cfg->socket) : NULL;
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	time_t deadline = time(NULL) + (time_t)timeout;
	unsigned n;

	mw_glue_refuse_new();
	if (path != NULL)
		(void)unlink(path);
	atomic_store(&drained, true);
	if ((n = mw_glue_active()) > 0)
		mw_notice("stopping: new connections refused; waiting up to "
			  "%lus for %u sessions in flight",
		    timeout, n);
	while ((n = mw_glue_active()) > 0 && time(NULL) < deadline) {
		int s = sigtimedwait(set, NULL, &tick);

		if (s == SIGTERM || s == SIGINT) {
			mw_warn("stopping: second signal, not waiting for %u "
				"sessions in flight",
			    n);
			break;
		}
		if (s == SIGHUP)
			mw_notice("stopping: SIGHUP ignored");
	}
	if (n > 0 && time(NULL) >= deadline)
		mw_warn("stopping: %u sessions still open after %lus; the MTA "
			"applies its milter_default_action to them",
		    n, timeout);
	mw_state_unref(st);
}

int
main(int argc, char **argv)
{
	bool foreground = false, check_only = false;
	const struct mw_config *cfg;
	struct passwd *pw = NULL;
	struct mw_state *st;
	struct mw_diag diag;
	int ch, rc;

	/*
	 * Block the signals libmilter's thread will wait for before anything
	 * else, so that one arriving during start-up is queued for it (and
	 * SIGHUP for the reload thread) instead of killing the process.
	 */
	{
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGHUP);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	}
	conf_path = mw_config_default_path();
	if (argc > 1 && strcmp(argv[1], "test") == 0) {
		mw_state_set_offline(true); /* trying a policy counts nothing */
		return mw_explain_main(argc - 1, argv + 1, conf_path);
	}
	while ((ch = getopt(argc, argv, "c:fnp:DVh")) != -1) {
		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'f': foreground = true; break;
		case 'n': check_only = true; break;
		case 'p':
			overrides[0] = "socket";
			overrides[1] = optarg;
			break;
		case 'D': print_defaults(); return 0;
		case 'V':
			printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}

	mw_log_open("milter-warden", MW_LOG_STDERR, LOG_MAIL);
	mw_diag_init(&diag);
	/*
	 * The daemon changes to / and reloads later: remember the
	 * configuration file by its absolute name.
	 */
	if (!check_only && conf_path[0] != '/') {
		char *abs = realpath(conf_path, NULL);

		if (abs != NULL)
			conf_path = abs; /* kept for the process's life */
	}
	mw_state_set_offline(check_only);
	st = mw_state_build(conf_path, overrides[0] ? overrides : NULL, &diag);
	/* -n also compares the DKIM keys with what DNS publishes. */
	if (check_only && st != NULL) {
		mw_dkim_check_dns(st->dkim, &diag);
		if (diag.nerrors > 0) {
			mw_state_unref(st);
			st = NULL;
		}
	}
	if (check_only || st == NULL) {
		mw_diag_print(&diag, st == NULL ? stderr : stdout);
		if (st != NULL)
			printf("configuration OK\n");
		mw_diag_free(&diag);
		mw_state_unref(st);
		return st == NULL ? 1 : 0;
	}
	mw_diag_print(&diag, stderr); /* warnings */
	mw_diag_free(&diag);
	cfg = st->cfg;
	mw_log_set_level((enum mw_log_level)cfg->log_level);

	if (cfg->user[0] != '\0' && (pw = getpwnam(cfg->user)) == NULL)
		startup_fail("user: no such user \"%s\"", cfg->user);
	if (cfg->user[0] != '\0' && geteuid() != 0 && pw->pw_uid != geteuid())
		startup_fail("cannot switch to user %s: not running as root",
		    cfg->user);
	if (!mw_signals_intercepting())
		startup_fail(
		    "internal: libmilter would not use milter-warden's "
		    "sigwait(); SIGHUP would stop instead of reload");
	check_socket_free(cfg->socket);

	if (!foreground) {
		daemonize();
		mw_log_open("milter-warden", MW_LOG_SYSLOG,
		    (int)cfg->syslog_facility);
	}
	mw_info("milter-warden %s starting on %s", PACKAGE_VERSION,
	    cfg->socket);

	if (!mw_glue_register())
		startup_fail("smfi_register failed");
	if (smfi_setconn(cfg->socket) != MI_SUCCESS)
		startup_fail("socket %s: not a valid libmilter socket",
		    cfg->socket);
	if (smfi_settimeout((int)cfg->milter_timeout) != MI_SUCCESS ||
	    smfi_setbacklog((int)cfg->listen_backlog) != MI_SUCCESS)
		startup_fail("cannot set the milter timeout or backlog");
	umask(0177);
	if (smfi_opensocket(true) != MI_SUCCESS)
		startup_fail("socket %s: cannot open (in use, bad address or "
			     "permission denied)",
		    cfg->socket);
	umask(0022);
	/*
	 * A reply of several packets (a header change, then the verdict)
	 * must not wait for the MTA's delayed ACK: about 40 ms per message
	 * over inet: sockets otherwise.  Accepted sockets inherit it.
	 */
	if (mw_sockopt_nodelay_listeners() < 0)
		mw_warn("socket %s: cannot set TCP_NODELAY: %s; replies of "
			"several packets may wait for the MTA's delayed ACK",
		    cfg->socket, strerror(errno));
	setup_unix_socket(cfg,
	    pw != NULL && geteuid() == 0 ? pw->pw_uid : (uid_t)-1);
	write_pidfile(cfg->pidfile);
	/* The embedded store was created as root: the user must own it. */
	if (st->store != NULL && pw != NULL && geteuid() == 0) {
		char err[300];

		if (mw_store_chown(st->store, pw->pw_uid, pw->pw_gid, err,
			sizeof(err)) != 0)
			startup_fail("state_store %s: %s", cfg->state_store,
			    err);
	}
	drop_privileges(cfg, pw);

	/*
	 * The running state: published before the first connection.  main
	 * keeps its own reference for cfg, which a reload may replace.
	 */
	mw_state_publish(mw_state_ref(st));
	if (!mw_signals_start(reload, drain))
		startup_fail("cannot set up signal handling");

	mw_info("ready: serving on %s as %s (generation 1)", cfg->socket,
	    cfg->user[0] != '\0' ? cfg->user : "the invoking user");
	if (ready_fd != -1) {
		if (write(ready_fd, "", 1) < 0) {
			/* parent gone: nothing to tell */
		}
		close(ready_fd);
		ready_fd = -1;
		detach_stdio();
	}

	/* Returns once drain() let libmilter stop (or on a listener error). */
	rc = smfi_main();
	if (cfg->pidfile[0] != '\0')
		(void)unlink(cfg->pidfile);
	/*
	 * Once drained, the path may already belong to a new instance
	 * started meanwhile: leave it alone.
	 */
	if (!atomic_load(&drained) && socket_path(cfg->socket) != NULL)
		(void)unlink(socket_path(cfg->socket));
	mw_info("stopped%s",
	    rc == MI_SUCCESS ? ""
			     : " after an error in "
			       "libmilter's listener");
	mw_state_unref(st);
	mw_state_shutdown();
	return rc == MI_SUCCESS ? 0 : 1;
}
