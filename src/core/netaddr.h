/* IP networks: "address" or "address/prefix", and whether an address lies in
 * one. Used by the proxy bypass list (outbound.c) and the trusted reverse
 * proxies (http.c). Pure functions; validate.c checks the same texts when an
 * admin enters them, this only matches them. */
#pragma once

#include <stdbool.h>

typedef struct netaddr_net {
  int family; /* AF_INET or AF_INET6 */
  unsigned char addr[16];
  unsigned prefix; /* bits; a bare address is the full length */
} netaddr_net_t;

/* An IPv4 or IPv6 literal (IPv6 without brackets) into addr; 0, or -EINVAL. */
int netaddr_parse(const char *text, int *family, unsigned char addr[16]);

/* "10.0.0.0/8", "fd00::/8" or a bare address; the prefix digits only, within
 * the family's length. 0, or -EINVAL. */
int netaddr_net_parse(const char *text, netaddr_net_t *net);

/* True when the address (of the given family) is inside the network. */
bool netaddr_net_contains(const netaddr_net_t *net, int family, const unsigned char *addr);
