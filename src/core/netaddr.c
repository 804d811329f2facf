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
