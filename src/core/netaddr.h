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

/* The key by which one client is counted when limiting connections or
 * penalising failed logins: an IPv4 address as itself (also when written
 * IPv4-mapped), an IPv6 address by its /64, since one end site is routinely
 * given a whole /64 and could otherwise take a fresh address per attempt.
 * "2001:db8:1:2::/64". From binary (family AF_INET or AF_INET6) or text;
 * text that is no address is kept as it is (truncated), so that an odd peer
 * is still counted as one. out needs NETADDR_KEY_MAX bytes. */
#define NETADDR_KEY_MAX 64
void netaddr_client_key(int family, const unsigned char *addr, char out[NETADDR_KEY_MAX]);
void netaddr_client_key_text(const char *text, char out[NETADDR_KEY_MAX]);
