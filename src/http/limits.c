/* Connection limits (limits.h): one mutex over a list of the counted
 * connections and a map of counts per client key, and a timer thread that
 * enforces the head deadline.
 *
 * A connection is closed from outside libmicrohttpd by shutdown(2) on its
 * socket: MHD then reads end-of-file and cleans up as for any client that
 * went away. That is only safe while the descriptor is still the
 * connection's, which holds under the mutex: MHD reports a connection
 * closed (limits_closed, which takes the mutex) before it closes the
 * descriptor. */
#include "http/limits.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/map.h"

enum { CONN_HEAD, CONN_BUSY, CONN_CLOSING };

/* How often the head deadline is checked, and how long a connection must
 * have waited for its head before it may be closed to make room. */
#define LIMITS_TICK_MS 250
#define LIMITS_EVICT_MIN_MS 1000
#define LIMITS_GLOBAL_LOG_EVERY_MS (60 * 1000)

typedef struct addr_count {
  unsigned count;
  bool logged; /* the "reached its limit" line was written */
} addr_count_t;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  bool running, stop;
  pthread_t thread;
  http_limits_t l;
  limits_trusted_fn trusted;
  conn_track_t *head; /* counted connections, newest first */
  map_t *per_addr;    /* client key -> addr_count_t (connections) */
  map_t *forwarded;   /* forwarded client key -> addr_count_t (requests) */
  size_t total;
  int64_t global_logged_ms;
} L = {.lock = PTHREAD_MUTEX_INITIALIZER};

static atomic_uint_fast64_t refused_address, refused_global, refused_forwarded, head_timeouts,
    evicted;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The family and bytes of a peer, IPv4-mapped addresses as IPv4. */
static int peer_of(const struct sockaddr *sa, int *family, unsigned char addr[16]) {
  if (!sa) return -EINVAL;
  if (sa->sa_family == AF_INET) {
    memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    *family = AF_INET;
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
      memcpy(addr, &a->s6_addr[12], 4);
      *family = AF_INET;
    } else {
      memcpy(addr, a, 16);
      *family = AF_INET6;
    }
    return 0;
  }
  return -EAFNOSUPPORT;
}

static bool is_loopback(int family, const unsigned char *addr) {
  if (family == AF_INET) return addr[0] == 127;
  return family == AF_INET6 && IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)(const void *)addr);
}

/* ---- the head deadline --------------------------------------------------------------- */

/* (L.lock) Ends a connection that is waiting for its head. */
static void close_waiting(conn_track_t *c) {
  c->state = CONN_CLOSING;
  (void)shutdown(c->fd, SHUT_RDWR);
}

static void *deadline_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&L.lock);
  while (!L.stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += LIMITS_TICK_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(&L.wake, &L.lock, &until);
    if (L.stop || !L.l.header_timeout_s) continue;
    int64_t now = now_ms(), limit = (int64_t)L.l.header_timeout_s * 1000;
    for (conn_track_t *c = L.head; c; c = c->next)
      if (c->state == CONN_HEAD && now - c->since_ms > limit) {
        close_waiting(c);
        atomic_fetch_add(&head_timeouts, 1);
      }
  }
  pthread_mutex_unlock(&L.lock);
  return NULL;
}

int limits_start(const http_limits_t *l, limits_trusted_fn trusted, char *err, size_t errlen) {
  pthread_mutex_lock(&L.lock);
  L.l = *l;
  L.trusted = trusted;
  L.stop = false;
  L.total = 0;
  L.head = NULL;
  L.global_logged_ms = INT64_MIN / 2;
  if (!L.per_addr) L.per_addr = map_new();
  if (!L.forwarded) L.forwarded = map_new();
  pthread_mutex_unlock(&L.lock);
  if (!L.per_addr || !L.forwarded) {
    snprintf(err, errlen, "Out of memory for the connection limits.");
    return -ENOMEM;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&L.wake, &ca);
  pthread_condattr_destroy(&ca);
  int r = pthread_create(&L.thread, NULL, deadline_main, NULL);
  if (r != 0) {
    snprintf(err, errlen, "Cannot start the HTTP header deadline thread: %s.", strerror(r));
    pthread_cond_destroy(&L.wake);
    return -r;
  }
  L.running = true;
  return 0;
}

static void free_count(const void *key, size_t len, void *value, void *ctx) {
  (void)key, (void)len, (void)ctx;
  free(value);
}

void limits_stop(void) {
  if (L.running) {
    pthread_mutex_lock(&L.lock);
    L.stop = true;
    pthread_cond_broadcast(&L.wake);
    pthread_mutex_unlock(&L.lock);
    pthread_join(L.thread, NULL);
    pthread_cond_destroy(&L.wake);
    L.running = false;
  }
  pthread_mutex_lock(&L.lock);
  map_t *maps[2] = {L.per_addr, L.forwarded};
  for (int i = 0; i < 2; i++) {
    if (maps[i]) map_each(maps[i], free_count, NULL);
    map_free(maps[i]);
  }
  L.per_addr = L.forwarded = NULL;
  L.head = NULL;
  L.total = 0;
  pthread_mutex_unlock(&L.lock);
}

/* ---- accept, open, close -------------------------------------------------------------- */

/* (L.lock) Closes the connection that has waited longest for its head, if
 * it has waited long enough; true when one was closed. */
static bool evict_oldest_waiting(int64_t now) {
  conn_track_t *oldest = NULL;
  for (conn_track_t *c = L.head; c; c = c->next)
    if (c->state == CONN_HEAD && now - c->since_ms >= LIMITS_EVICT_MIN_MS &&
        (!oldest || c->since_ms < oldest->since_ms))
      oldest = c;
  if (!oldest) return false;
  close_waiting(oldest);
  atomic_fetch_add(&evicted, 1);
  return true;
}

bool limits_accept(const struct sockaddr *sa) {
  int family;
  unsigned char addr[16];
  if (peer_of(sa, &family, addr) != 0) return true;
  bool loopback = is_loopback(family, addr);
  bool proxy = L.trusted && L.trusted(family, addr);
  char key[NETADDR_KEY_MAX];
  netaddr_client_key(family, addr, key);
  bool ok = true;
  pthread_mutex_lock(&L.lock);
  addr_count_t *a = L.per_addr ? map_get_str(L.per_addr, key) : NULL;
  if (!proxy && L.l.per_address && a && a->count >= L.l.per_address) {
    ok = false;
    atomic_fetch_add(&refused_address, 1);
    if (!a->logged) {
      a->logged = true;
      log_warning("http: %s has %u connections open, the most one client may have (<Limits "
                  "perAddress>); refusing more from it until some close",
                  key, a->count);
    }
  } else if (L.l.connections) {
    size_t cap = L.l.connections - (loopback ? 0 : L.l.loopback_reserve);
    int64_t now = now_ms();
    if (L.total >= cap && !evict_oldest_waiting(now)) {
      ok = false;
      atomic_fetch_add(&refused_global, 1);
      if (now - L.global_logged_ms >= LIMITS_GLOBAL_LOG_EVERY_MS) {
        L.global_logged_ms = now;
        log_warning("http: %zu connections in progress (<Limits connections=\"%u\"> with %u "
                    "kept for loopback); refusing new ones from %s and others",
                    L.total, L.l.connections, L.l.loopback_reserve, key);
      }
    }
  }
  pthread_mutex_unlock(&L.lock);
  return ok;
}

static void count_add(map_t *m, const char *key) {
  addr_count_t *a = map_get_str(m, key);
  if (!a) {
    a = calloc(1, sizeof *a);
    if (!a || map_put_str(m, key, a) != 0) {
      free(a);
      return;
    }
  }
  a->count++;
}

static void count_remove(map_t *m, const char *key) {
  addr_count_t *a = map_get_str(m, key);
  if (!a) return;
  if (a->count > 1) {
    a->count--;
    return;
  }
  free(map_del_str(m, key));
}

void limits_opened(conn_track_t *c, int fd, const struct sockaddr *sa) {
  memset(c, 0, sizeof *c);
  c->fd = fd;
  int family;
  unsigned char addr[16];
  if (peer_of(sa, &family, addr) != 0) return;
  netaddr_client_key(family, addr, c->key);
  c->loopback = is_loopback(family, addr);
  c->proxy = L.trusted && L.trusted(family, addr);
  pthread_mutex_lock(&L.lock);
  if (L.per_addr) {
    count_add(L.per_addr, c->key);
    L.total++;
    c->counted = true;
    c->state = CONN_HEAD;
    c->since_ms = now_ms();
    c->next = L.head;
    if (L.head) L.head->prev = c;
    L.head = c;
  }
  pthread_mutex_unlock(&L.lock);
}

/* (L.lock) */
static void uncount(conn_track_t *c) {
  if (!c->counted) return;
  if (c->prev) c->prev->next = c->next; else L.head = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  if (L.per_addr) count_remove(L.per_addr, c->key);
  L.total--;
  c->counted = false;
}

void limits_closed(conn_track_t *c) {
  pthread_mutex_lock(&L.lock);
  uncount(c);
  pthread_mutex_unlock(&L.lock);
}

void limits_upgraded(conn_track_t *c) { limits_closed(c); }

static void set_state(conn_track_t *c, int state) {
  pthread_mutex_lock(&L.lock);
  if (c->counted && c->state != CONN_CLOSING) {
    c->state = state;
    c->since_ms = now_ms();
  }
  pthread_mutex_unlock(&L.lock);
}

void limits_head_done(conn_track_t *c) { set_state(c, CONN_BUSY); }
void limits_request_done(conn_track_t *c) { set_state(c, CONN_HEAD); }

/* ---- behind a trusted proxy -------------------------------------------------------------- */

int limits_forwarded_enter(const char *client, char key[NETADDR_KEY_MAX]) {
  netaddr_client_key_text(client, key);
  int r = 0;
  pthread_mutex_lock(&L.lock);
  addr_count_t *a = L.forwarded ? map_get_str(L.forwarded, key) : NULL;
  if (L.l.per_address && a && a->count >= L.l.per_address) {
    r = -EBUSY;
    atomic_fetch_add(&refused_forwarded, 1);
    if (!a->logged) {
      a->logged = true;
      log_warning("http: %s (forwarded by a trusted proxy) has %u requests in progress, the "
                  "most one client may have (<Limits perAddress>); answering 503 to more",
                  key, a->count);
    }
  } else if (L.forwarded) {
    count_add(L.forwarded, key);
  }
  pthread_mutex_unlock(&L.lock);
  if (r) key[0] = '\0';
  return r;
}

void limits_forwarded_leave(const char key[NETADDR_KEY_MAX]) {
  if (!key[0]) return;
  pthread_mutex_lock(&L.lock);
  if (L.forwarded) count_remove(L.forwarded, key);
  pthread_mutex_unlock(&L.lock);
}

void limits_write_metrics(FILE *f, void *ctx) {
  (void)ctx;
  pthread_mutex_lock(&L.lock);
  size_t total = L.total, addrs = L.per_addr ? map_count(L.per_addr) : 0;
  pthread_mutex_unlock(&L.lock);
  fprintf(f,
          "# HELP atrium_http_connections HTTP connections open (WebSockets not counted).\n"
          "# TYPE atrium_http_connections gauge\n"
          "atrium_http_connections %zu\n"
          "# HELP atrium_http_connection_addresses Client addresses with connections open.\n"
          "# TYPE atrium_http_connection_addresses gauge\n"
          "atrium_http_connection_addresses %zu\n"
          "# HELP atrium_http_connections_refused_total Connections or requests refused by "
          "<Limits>.\n"
          "# TYPE atrium_http_connections_refused_total counter\n"
          "atrium_http_connections_refused_total{reason=\"per_address\"} %llu\n"
          "atrium_http_connections_refused_total{reason=\"global\"} %llu\n"
          "atrium_http_connections_refused_total{reason=\"forwarded\"} %llu\n"
          "# HELP atrium_http_header_timeouts_total Connections closed for not sending a request "
          "head within <Limits headerTimeout>.\n"
          "# TYPE atrium_http_header_timeouts_total counter\n"
          "atrium_http_header_timeouts_total %llu\n"
          "# HELP atrium_http_connections_evicted_total Connections waiting for a head closed to "
          "make room.\n"
          "# TYPE atrium_http_connections_evicted_total counter\n"
          "atrium_http_connections_evicted_total %llu\n",
          total, addrs, (unsigned long long)atomic_load(&refused_address),
          (unsigned long long)atomic_load(&refused_global),
          (unsigned long long)atomic_load(&refused_forwarded),
          (unsigned long long)atomic_load(&head_timeouts),
          (unsigned long long)atomic_load(&evicted));
}
