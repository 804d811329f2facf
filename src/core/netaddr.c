#include "core/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int netaddr_parse(const char *text, int *family, unsigned char addr[16]) {
  if (inet_pton(AF_INET, text, addr) == 1) {
    *family = AF_INET;
    return 0;
  }
  if (inet_pton(AF_INET6, text, addr) == 1) {
    *family = AF_INET6;
    return 0;
  }
  return -EINVAL;
}

int netaddr_net_parse(const char *text, netaddr_net_t *net) {
  char buf[64];
  const char *slash = strchr(text, '/');
  size_t n = slash ? (size_t)(slash - text) : strlen(text);
  if (n == 0 || n >= sizeof buf) return -EINVAL;
  memcpy(buf, text, n);
  buf[n] = '\0';
  if (netaddr_parse(buf, &net->family, net->addr) < 0) return -EINVAL;
  unsigned max = net->family == AF_INET ? 32 : 128;
  net->prefix = max;
  if (!slash) return 0;
  /* Digits only: no sign, no spaces, nothing after them. */
  const char *p = slash + 1;
  if (!*p || strlen(p) > 3) return -EINVAL;
  unsigned bits = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return -EINVAL;
    bits = bits * 10 + (unsigned)(*p - '0');
  }
  if (bits > max) return -EINVAL;
  net->prefix = bits;
  return 0;
}

bool netaddr_net_contains(const netaddr_net_t *net, int family, const unsigned char *addr) {
  if (net->family != family) return false;
  unsigned whole = net->prefix / 8, rest = net->prefix % 8;
  if (memcmp(net->addr, addr, whole) != 0) return false;
  if (rest == 0) return true;
  unsigned char mask = (unsigned char)(0xffu << (8 - rest));
  return (net->addr[whole] & mask) == (addr[whole] & mask);
}

void netaddr_client_key(int family, const unsigned char *addr, char out[NETADDR_KEY_MAX]) {
  if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)addr)) {
    family = AF_INET;
    addr += 12;
  }
  if (family == AF_INET) {
    inet_ntop(AF_INET, addr, out, NETADDR_KEY_MAX);
    return;
  }
  if (family != AF_INET6) {
    snprintf(out, NETADDR_KEY_MAX, "unknown");
    return;
  }
  unsigned char net[16] = {0};
  memcpy(net, addr, 8);
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, net, text, sizeof text);
  snprintf(out, NETADDR_KEY_MAX, "%s/64", text);
}

void netaddr_client_key_text(const char *text, char out[NETADDR_KEY_MAX]) {
  int family;
  unsigned char addr[16];
  if (text && netaddr_parse(text, &family, addr) == 0)
    netaddr_client_key(family, addr, out);
  else
    snprintf(out, NETADDR_KEY_MAX, "%s", text && *text ? text : "unknown");
}
