/* The UDP discovery responder: its thread, its sockets, and the "login" apply
 * hook that starts, stops and rebinds it. The datagrams are discovery_wire.c's. */
#include "mod/publishing/discovery.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "conf/settings.h"

/* A desktop client asks once or twice at start: 5 at once, then 2 a second
 * per address is plenty; the global bucket caps what a spoofed flood from
 * many addresses can make us send. */
#define PER_SOURCE_BURST 5
#define PER_SOURCE_RATE 2
#define GLOBAL_BURST 200
#define GLOBAL_RATE 100
#define LIMITER_SLOTS 4096
#define BATCH_MAX 64         /* datagrams read per socket per wake-up */
#define POLL_MS 1000

static struct {
  pthread_mutex_t lock; /* guards everything below but the counters */
  bool running;
  bool enabled;
  int port;
  int fd4, fd6, stop_fd;
  pthread_t thread;
  char message[256];
  int64_t last_failure;
} D = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd4 = -1, .fd6 = -1, .stop_fd = -1};

static atomic_uint_fast64_t n_queries, n_answers, n_dropped[DISCOVERY_DROP_COUNT];

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void count_drop(discovery_drop_t why) {
  atomic_fetch_add_explicit(&n_dropped[why], 1, memory_order_relaxed);
}

void discovery_write_metrics(FILE *f) {
  fprintf(f,
          "# HELP atrium_discovery_datagrams_total UDP discovery datagrams received.\n"
          "# TYPE atrium_discovery_datagrams_total counter\n"
          "atrium_discovery_datagrams_total %llu\n"
          "# HELP atrium_discovery_answers_total UDP discovery answers sent.\n"
          "# TYPE atrium_discovery_answers_total counter\n"
          "atrium_discovery_answers_total %llu\n"
          "# HELP atrium_discovery_dropped_total UDP discovery datagrams dropped, by reason.\n"
          "# TYPE atrium_discovery_dropped_total counter\n",
          (unsigned long long)atomic_load(&n_queries), (unsigned long long)atomic_load(&n_answers));
  for (int i = 0; i < DISCOVERY_DROP_COUNT; i++)
    fprintf(f, "atrium_discovery_dropped_total{reason=\"%s\"} %llu\n",
            discovery_drop_name((discovery_drop_t)i), (unsigned long long)atomic_load(&n_dropped[i]));
}

/* ---- the thread ------------------------------------------------------------------------------- */

typedef struct responder {
  int fd4, fd6, stop_fd;
  discovery_limiter_t *per_source;
  discovery_limiter_t *global;
} responder_t;

static void answer_one(responder_t *r, int fd, const uint8_t *buf, ssize_t got,
                       const struct sockaddr_storage *from, socklen_t fromlen) {
  atomic_fetch_add_explicit(&n_queries, 1, memory_order_relaxed);
  discovery_query_t q;
  discovery_drop_t why = DISCOVERY_DROP_GARBAGE;
  if (discovery_parse_query(buf, (size_t)got, &q, &why) < 0) {
    count_drop(why);
    return;
  }
  const void *key;
  size_t keylen;
  if (from->ss_family == AF_INET) {
    key = &((const struct sockaddr_in *)from)->sin_addr;
    keylen = 4;
  } else {
    key = &((const struct sockaddr_in6 *)from)->sin6_addr;
    keylen = 16;
  }
  uint64_t t = now_ms();
  if (!discovery_limiter_allow(r->per_source, key, keylen, t) ||
      !discovery_limiter_allow(r->global, "*", 1, t)) {
    count_drop(DISCOVERY_DROP_RATE);
    return;
  }
  settings_snapshot_t *snap = settings_acquire();
  if (!snap) return;
  uint8_t out[DISCOVERY_QUERY_MAX];
  int n = discovery_build_answer(&q, settings_string(snap, "domain.name"),
                                 settings_string(snap, "server.public_url"), ATRIUM_VERSION, out,
                                 sizeof out);
  settings_release(snap);
  if (n < 0) {
    count_drop(DISCOVERY_DROP_TOO_LARGE);
    return;
  }
  if (sendto(fd, out, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)from, fromlen) == n)
    atomic_fetch_add_explicit(&n_answers, 1, memory_order_relaxed);
}

static void drain(responder_t *r, int fd) {
  uint8_t buf[DISCOVERY_QUERY_MAX + 1];
  for (int i = 0; i < BATCH_MAX; i++) {
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    /* MSG_TRUNC: the datagram's real length, so an oversized one is seen as such. */
    ssize_t got = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC,
                           (struct sockaddr *)&from, &fromlen);
    if (got < 0) return; /* EAGAIN, or an ICMP error of an earlier send: nothing to do */
    if ((size_t)got > sizeof buf) {
      atomic_fetch_add_explicit(&n_queries, 1, memory_order_relaxed);
      count_drop(DISCOVERY_DROP_OVERSIZED);
      continue;
    }
    answer_one(r, fd, buf, got, &from, fromlen);
  }
}

static void *responder_main(void *arg) {
  responder_t *r = arg;
  for (;;) { /* ends when stop_fd is signalled; each turn waits at most POLL_MS */
    struct pollfd p[3] = {{.fd = r->stop_fd, .events = POLLIN},
                          {.fd = r->fd4, .events = POLLIN},
                          {.fd = r->fd6, .events = POLLIN}};
    int n = poll(p, 3, POLL_MS);
    if (n < 0 && errno != EINTR) break;
    if (p[0].revents) break;
    if (p[1].revents & POLLIN) drain(r, r->fd4);
    if (p[2].revents & POLLIN) drain(r, r->fd6);
  }
  discovery_limiter_free(r->per_source);
  discovery_limiter_free(r->global);
  free(r);
  return NULL;
}

/* ---- start and stop (D.lock held) ---------------------------------------------------------- */

static int open_v4(int port, char *err, size_t errlen) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "Cannot open the UDP discovery socket: %s.", strerror(errno));
    return -errno;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(fd);
    if (e == EADDRINUSE)
      snprintf(err, errlen,
               "UDP port %d is already in use by another program; choose another "
               "login.discovery_port or stop that program.",
               port);
    else if (e == EACCES)
      snprintf(err, errlen,
               "UDP port %d needs privileges atriumd does not have; choose a port above 1023 "
               "for login.discovery_port.",
               port);
    else
      snprintf(err, errlen, "Cannot listen on UDP port %d: %s.", port, strerror(e));
    return -e;
  }
  return fd;
}

/* The IPv6 socket is a bonus: a host without IPv6 still answers on IPv4. */
static int open_v6(int port) {
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                           .sin6_addr = IN6ADDR_ANY_INIT};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  /* All nodes are in ff02::1 already; joining it per interface makes the
   * membership ours, so that it does not depend on the interface's state. */
  struct if_nameindex *ifs = if_nameindex();
  for (struct if_nameindex *i = ifs; i && i->if_index; i++) {
    struct ipv6_mreq m = {.ipv6mr_interface = i->if_index};
    inet_pton(AF_INET6, "ff02::1", &m.ipv6mr_multiaddr);
    setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m); /* EADDRINUSE etc. are fine */
  }
  if (ifs) if_freenameindex(ifs);
  return fd;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void stop_locked(void) {
  if (!D.running) return;
  uint64_t one = 1;
  if (write(D.stop_fd, &one, sizeof one) != sizeof one) { /* an eventfd write cannot fail here */ }
  pthread_join(D.thread, NULL);
  close_fd(&D.fd4);
  close_fd(&D.fd6);
  close_fd(&D.stop_fd);
  D.running = false;
}

static int start_locked(int port, char *err, size_t errlen) {
  int fd4 = open_v4(port, err, errlen);
  if (fd4 < 0) return fd4;
  int fd6 = open_v6(port);
  int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  responder_t *r = calloc(1, sizeof *r);
  if (r) {
    r->per_source = discovery_limiter_new(LIMITER_SLOTS, PER_SOURCE_RATE, PER_SOURCE_BURST);
    r->global = discovery_limiter_new(8, GLOBAL_RATE, GLOBAL_BURST);
  }
  if (stop_fd < 0 || !r || !r->per_source || !r->global) {
    snprintf(err, errlen, "Cannot start the UDP discovery responder: out of resources.");
    goto fail;
  }
  r->fd4 = fd4;
  r->fd6 = fd6;
  r->stop_fd = stop_fd;
  int e = pthread_create(&D.thread, NULL, responder_main, r);
  if (e != 0) {
    snprintf(err, errlen, "Cannot start the UDP discovery responder: %s.", strerror(e));
    goto fail;
  }
  D.fd4 = fd4;
  D.fd6 = fd6;
  D.stop_fd = stop_fd;
  D.port = port;
  D.running = true;
  D.message[0] = '\0';
  if (fd6 < 0)
    snprintf(D.message, sizeof D.message,
             "Answering on IPv4 only: the IPv6 socket could not be opened (%s).", strerror(-fd6));
  return 0;
fail:
  if (r) {
    discovery_limiter_free(r->per_source);
    discovery_limiter_free(r->global);
    free(r);
  }
  if (stop_fd >= 0) close(stop_fd);
  if (fd6 >= 0) close(fd6);
  close(fd4);
  return -ENOMEM;
}

/* Makes the responder match the snapshot. */
static int follow(const settings_snapshot_t *snap, char *err, size_t errlen) {
  bool want = settings_bool(snap, "login.publish_address");
  int port = (int)settings_int(snap, "login.discovery_port");
  pthread_mutex_lock(&D.lock);
  D.enabled = want;
  int r = 0;
  bool was_running = D.running;
  int was_port = D.port;
  if (D.running && (!want || port != D.port)) stop_locked();
  if (want && !D.running) {
    r = start_locked(port, err, errlen);
    if (r < 0 && was_running) {
      /* The change is rolled back without calling this hook again (it is
       * the one that failed): go back to the old port ourselves. */
      char ignored[256];
      if (start_locked(was_port, ignored, sizeof ignored) == 0) port = was_port;
    } else if (r < 0) {
      snprintf(D.message, sizeof D.message, "%s", err);
    }
    if (r < 0) D.last_failure = time(NULL);
  }
  if (!want) D.message[0] = '\0';
  D.port = port;
  pthread_mutex_unlock(&D.lock);
  return r;
}

int discovery_apply(const settings_snapshot_t *old_snap, const settings_snapshot_t *new_snap,
                    char *err, size_t errlen) {
  if (settings_bool(old_snap, "login.publish_address") ==
          settings_bool(new_snap, "login.publish_address") &&
      settings_int(old_snap, "login.discovery_port") ==
          settings_int(new_snap, "login.discovery_port"))
    return 0;
  int r = follow(new_snap, err, errlen);
  if (r == 0) {
    if (settings_bool(new_snap, "login.publish_address"))
      log_info("UDP discovery: answering on port %lld",
               (long long)settings_int(new_snap, "login.discovery_port"));
    else
      log_info("UDP discovery: stopped (login.publish_address is off)");
  }
  return r;
}

int discovery_start(const settings_snapshot_t *snap, char *err, size_t errlen) {
  int r = follow(snap, err, errlen);
  if (r == 0 && settings_bool(snap, "login.publish_address"))
    log_info("UDP discovery: answering on port %lld",
             (long long)settings_int(snap, "login.discovery_port"));
  return r;
}

void discovery_shutdown(void) {
  pthread_mutex_lock(&D.lock);
  stop_locked();
  pthread_mutex_unlock(&D.lock);
}

void discovery_get_status(discovery_status_t *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&D.lock);
  out->enabled = D.enabled;
  out->running = D.running;
  out->port = D.port;
  snprintf(out->message, sizeof out->message, "%s", D.message);
  out->last_failure = D.last_failure;
  pthread_mutex_unlock(&D.lock);
  out->queries = atomic_load(&n_queries);
  out->answers = atomic_load(&n_answers);
  for (int i = 0; i < DISCOVERY_DROP_COUNT; i++) out->dropped[i] = atomic_load(&n_dropped[i]);
}
