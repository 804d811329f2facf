/* atriumctl discover: one query, every answer within the timeout. */
#include "ctl/cmd_discover.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctl/client.h"
#include "mod/publishing/discovery_wire.h"

#define MAX_ADDRESSES 8
#define MAX_ANSWERS 256
#define TIMEOUT_MAX_MS 60000

typedef struct found {
  char from[INET6_ADDRSTRLEN + 8];
  discovery_answer_t a;
} found_t;

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int open_socket(int family) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  if (family == AF_INET) setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  return fd;
}

/* ff02::1 is link-local: one copy per interface, named by its scope id. */
static int send_all_nodes(int fd, int port, const uint8_t *q, size_t qlen) {
  int sent = 0;
  struct if_nameindex *ifs = if_nameindex();
  for (struct if_nameindex *i = ifs; i && i->if_index; i++) {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                             .sin6_scope_id = i->if_index};
    inet_pton(AF_INET6, "ff02::1", &a.sin6_addr);
    unsigned idx = i->if_index;
    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx);
    if (sendto(fd, q, qlen, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)qlen) sent++;
  }
  if (ifs) if_freenameindex(ifs);
  return sent;
}

static void address_text(const struct sockaddr_storage *ss, char *buf, size_t len) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof host);
    snprintf(buf, len, "%s", host);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    char ifname[IF_NAMESIZE] = "";
    if (a->sin6_scope_id && if_indextoname(a->sin6_scope_id, ifname))
      snprintf(buf, len, "%s%%%s", host, ifname);
    else
      snprintf(buf, len, "%s", host);
  }
}

static void collect(int fd, const uint8_t *nonce, found_t *found, size_t *n) {
  uint8_t buf[DISCOVERY_QUERY_MAX];
  for (int i = 0; i < 64; i++) { /* bounded per wake-up */
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t got = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (got < 0) return;
    discovery_answer_t a;
    if (discovery_parse_answer(buf, (size_t)got, nonce, &a) != 0) continue;
    char text[INET6_ADDRSTRLEN + 8];
    address_text(&from, text, sizeof text);
    bool dup = false; /* one server reached through several interfaces or families */
    for (size_t k = 0; k < *n && !dup; k++)
      dup = strcmp(found[k].from, text) == 0 && strcmp(found[k].a.url, a.url) == 0;
    if (dup || *n >= MAX_ANSWERS) continue;
    snprintf(found[*n].from, sizeof found[*n].from, "%s", text);
    found[*n].a = a;
    (*n)++;
  }
}

int ctl_cmd_discover(ctl_ctx_t *ctx, const ctl_command_t *cmd, int argc, char **argv) {
  static const struct option own[] = {
      {"address", required_argument, NULL, 'a'},
      {"port", required_argument, NULL, 'p'},
      {"timeout", required_argument, NULL, 't'},
      {NULL, 0, NULL, 0},
  };

  const char *addresses[MAX_ADDRESSES];
  size_t naddr = 0;
  long long port = DISCOVERY_DEFAULT_PORT, timeout = 2000;
  int c;
  while ((c = ctl_next_option(ctx, cmd, argc, argv, "a:p:t:", own)) != CTL_OPTIONS_DONE) {
    switch (c) {
    case 'a':
      if (naddr == MAX_ADDRESSES) return ctl_usage(cmd, "at most %d addresses", MAX_ADDRESSES);
      addresses[naddr++] = optarg;
      break;
    case 'p':
      if (ctl_parse_count(optarg, 65535, &port) < 0 || port < 1)
        return ctl_usage(cmd, "--port needs a port number 1-65535, not '%s'", optarg);
      break;
    case 't':
      if (ctl_parse_count(optarg, TIMEOUT_MAX_MS, &timeout) < 0 || timeout < 1)
        return ctl_usage(cmd, "--timeout needs milliseconds 1-60000, not '%s'", optarg);
      break;
    default: return ctl_option_exit(c);
    }
  }
  if (optind < argc) return ctl_usage(cmd, "unexpected argument '%s'", argv[optind]);

  uint8_t nonce[DISCOVERY_NONCE_LEN];
  if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) {
    fprintf(stderr, "error: no random numbers for the query's nonce: %s\n", strerror(errno));
    return CTL_EXIT_SERVER;
  }
  uint8_t q[DISCOVERY_QUERY_MIN];
  size_t qlen = discovery_build_query(nonce, q, sizeof q);
  int fd4 = open_socket(AF_INET), fd6 = open_socket(AF_INET6);
  int sent = 0;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%lld", port);

  if (naddr == 0) {
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_BROADCAST)};
    if (fd4 >= 0 && sendto(fd4, q, qlen, 0, (struct sockaddr *)&b, sizeof b) == (ssize_t)qlen)
      sent++;
    if (fd6 >= 0) sent += send_all_nodes(fd6, (int)port, q, qlen);
  }
  for (size_t i = 0; i < naddr; i++) {
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
    int e = getaddrinfo(addresses[i], portstr, &hints, &res);
    if (e != 0) {
      fprintf(stderr, "error: cannot resolve %s: %s\n", addresses[i], gai_strerror(e));
      if (fd4 >= 0) close(fd4);
      if (fd6 >= 0) close(fd6);
      return CTL_EXIT_USAGE;
    }
    int fd = res->ai_family == AF_INET6 ? fd6 : fd4;
    if (fd >= 0 && sendto(fd, q, qlen, 0, res->ai_addr, res->ai_addrlen) == (ssize_t)qlen)
      sent++;
    else
      fprintf(stderr, "warning: cannot send to %s: %s\n", addresses[i], strerror(errno));
    freeaddrinfo(res);
  }
  if (ctx->verbose)
    fprintf(stderr, "sent %d quer%s of %zu bytes\n", sent, sent == 1 ? "y" : "ies", qlen);

  found_t *found = calloc(MAX_ANSWERS, sizeof *found);
  size_t n = 0;
  uint64_t deadline = mono_ms() + (uint64_t)timeout;
  while (found && sent > 0) { /* until the deadline */
    uint64_t now = mono_ms();
    if (now >= deadline) break;
    struct pollfd p[2] = {{.fd = fd4, .events = POLLIN}, {.fd = fd6, .events = POLLIN}};
    if (poll(p, 2, (int)(deadline - now)) < 0 && errno != EINTR) break;
    if (p[0].revents & POLLIN) collect(fd4, nonce, found, &n);
    if (p[1].revents & POLLIN) collect(fd6, nonce, found, &n);
  }
  if (fd4 >= 0) close(fd4);
  if (fd6 >= 0) close(fd6);
  if (!found) return CTL_EXIT_SERVER;

  int code = CTL_EXIT_OK;
  if (ctx->json) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
      json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "domain", found[i].a.domain,
                                           "url", found[i].a.url, "version", found[i].a.version,
                                           "from", found[i].from));
    char *text = arr ? json_dumps(arr, JSON_INDENT(2)) : NULL;
    if (text) puts(text);
    free(text);
    json_decref(arr);
  } else {
    for (size_t i = 0; i < n; i++)
      printf("%s  %s  (version %s, from %s)\n", found[i].a.domain[0] ? found[i].a.domain : "-",
             found[i].a.url, found[i].a.version[0] ? found[i].a.version : "?", found[i].from);
  }
  if (n == 0) {
    if (sent == 0)
      fprintf(stderr, "error: the query could not be sent anywhere (no network?)\n");
    else
      fprintf(stderr, "no server answered within %lld ms\n", timeout);
    code = CTL_EXIT_UNREACHABLE;
  }
  free(found);
  return code;
}
