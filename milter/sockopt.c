/*
 * sockopt.c -- TCP_NODELAY for libmilter's listening socket.
 *
 * libmilter writes every reply packet with its own write: at end of
 * message a milter that adds a header sends SMFIR_ADDHEADER, then
 * SMFIR_ACCEPT.  Over TCP, Nagle's algorithm holds the second small
 * packet until the first is acknowledged, and the MTA (Postfix, which
 * reads the first packet and then waits for the rest) delays that ACK by
 * up to 40 ms: every message on an inet: milter socket pays it.  Turning
 * Nagle off on the milter's side removes the stall; one reply packet is
 * still one segment, so nothing else changes on the wire.
 *
 * libmilter keeps its listening descriptor to itself, so we find it: the
 * only listening stream socket of the internet families the process has
 * right after smfi_opensocket().  Accepted sockets inherit TCP_NODELAY
 * from the listener (Linux copies the listener's TCP state into the
 * child; the BSDs inherit the flag too), so no change to libmilter's
 * accept loop is needed.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "mw_sockopt.h"

/* 1 = set, 0 = not a listening TCP socket, -1 = setsockopt failed. */
static int
nodelay_if_tcp_listener(int fd)
{
	int v = 0, on = 1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || v == 0)
		return 0;
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) != 0 ||
	    v != SOCK_STREAM)
		return 0;
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0 ||
	    (v != AF_INET && v != AF_INET6))
		return 0;
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0
	    ? 1
	    : -1;
}

int
mw_sockopt_nodelay_listeners(void)
{
	DIR *d;
	struct dirent *e;
	int n = 0, rc, fd, saved = 0;
	long max;

	/* The open descriptors, where the system lists them ... */
	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((e = readdir(d)) != NULL) {
			char *end;
			long l = strtol(e->d_name, &end, 10);

			if (*end != '\0' || end == e->d_name || l < 0 ||
			    l == dirfd(d))
				continue;
			if ((rc = nodelay_if_tcp_listener((int)l)) < 0)
				saved = errno;
			else
				n += rc;
		}
		closedir(d);
	} else {
		/* ... or the low ones: libmilter's is opened early. */
		max = sysconf(_SC_OPEN_MAX);
		if (max < 0 || max > 4096)
			max = 4096;
		for (fd = 0; fd < max; fd++) {
			if ((rc = nodelay_if_tcp_listener(fd)) < 0)
				saved = errno;
			else
				n += rc;
		}
	}
	if (saved != 0) {
		errno = saved;
		return -1;
	}
	return n;
}
