/*
 * mw_sockopt -- socket options libmilter does not set itself.
 */
#ifndef MW_SOCKOPT_H
#define MW_SOCKOPT_H

/*
 * mw_sockopt_nodelay_listeners -- set TCP_NODELAY on every listening TCP
 * socket of the process (libmilter's, opened by smfi_opensocket, whose
 * descriptor libmilter does not export).  On Linux and the BSDs a socket
 * returned by accept() inherits TCP_NODELAY from its listener, so every
 * MTA connection then sends each reply packet at once: a reply made of
 * several packets (header edits, then the verdict) no longer waits for
 * the MTA's delayed ACK (about 40 ms per message).
 *
 * Call it once after smfi_opensocket() and before smfi_main(), from the
 * main thread.  Unix-domain sockets are left alone (no Nagle there).
 * Returns the number of sockets changed (0 for a unix: socket), or -1
 * with errno set if setsockopt failed on one of them.
 */
int mw_sockopt_nodelay_listeners(void);

#endif
