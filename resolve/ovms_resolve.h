/*
 * ovms_resolve.h: server names to addresses, for the clients (ovms-car,
 * ovms-app, and load tools).
 *
 * A cluster is reached through one DNS name that resolves round robin to
 * every node. Clients connect to the addresses in the order the DNS server
 * gave them, so that the server's rotation spreads them over the nodes.
 * Normally the system resolver answers (getaddrinfo). For a local test
 * cluster whose DNS server listens on a loopback address and a port other
 * than 53 (deploy/cluster.sh), which resolv.conf cannot name, the caller
 * gives that server as "HOST:PORT" and the name is asked of it directly
 * through glibc's libresolv, keeping the server's order.
 */
#ifndef OVMS_RESOLVE_H
#define OVMS_RESOLVE_H

#include <stddef.h>

#define OVMS_RESOLVE_HOSTLEN 64     /* a numeric IPv4 or IPv6 address */

/* Fills OUT with at most MAX distinct numeric addresses of NAME, in the
 * order the resolver gave them. DNS is "HOST:PORT" (or HOST alone, port 53)
 * of a DNS server to ask directly, or NULL (or "") for the system resolver.
 * A numeric NAME is returned as it is. Returns the number of addresses, or
 * -1 with a one-line reason in ERR. */
int ovms_resolve(const char *name, const char *dns, char out[][OVMS_RESOLVE_HOSTLEN], int max,
                 char *err, size_t errlen);

#endif
