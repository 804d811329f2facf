/* The listener of the PostgreSQL backend: one thread and one connection per
 * store, LISTENing on the channels store_listen asked for and calling their
 * functions on that thread. It waits in poll() with a bounded timeout, never
 * in a blocking libpq call, so that store_close can stop it at once. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/pg/internal.h"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pg_listener_init(pgb_t *b) {
  pg_listener_t *l = &b->listener;
  pthread_mutex_init(&l->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&l->cond, &ca);
  pthread_condattr_destroy(&ca);
  l->wake[0] = l->wake[1] = -1;
  return 0;
}

static bool stopping(pg_listener_t *l) {
  pthread_mutex_lock(&l->lock);
  bool stop = l->stop;
  pthread_mutex_unlock(&l->lock);
  return stop;
}

static void wake(pg_listener_t *l) {
  if (l->wake[1] < 0) return;
  /* A full pipe already holds a wake-up: nothing is lost when this fails. */
  ssize_t n = write(l->wake[1], "w", 1);
  (void)n;
}

/* Waits at most ms for `events` on sock (-1: none) or for a wake-up: 1 when
 * the socket is ready, 0 on timeout or wake-up, -1 when poll failed. */
static int wait_for(pg_listener_t *l, int sock, short events, int ms) {
  struct pollfd fds[2] = {{.fd = l->wake[0], .events = POLLIN}, {.fd = sock, .events = events}};
  int n = poll(fds, sock >= 0 ? 2 : 1, ms);
  if (n < 0) return errno == EINTR ? 0 : -1;
  if (fds[0].revents & POLLIN) {
    char buf[64];
    for (int i = 0; i < 16 && read(l->wake[0], buf, sizeof buf) > 0; i++) continue;
  }
  return sock >= 0 && (fds[1].revents & (events | POLLERR | POLLHUP)) ? 1 : 0;
}

/* A connection, made without blocking for longer than PG_LISTEN_POLL_MS at
 * a time and given up after PG_CONNECT_TIMEOUT_S or when the store closes. */
static PGconn *connect_async(pgb_t *b) {
  pg_listener_t *l = &b->listener;
  PGconn *pc = pg_connect(b, "atriumd listener", true);
  if (!pc || PQstatus(pc) == CONNECTION_BAD) {
    PQfinish(pc);
    return NULL;
  }
  int64_t until = now_ms() + PG_CONNECT_TIMEOUT_S * 1000;
  /* As libpq asks: start as if PQconnectPoll had said "writing". */
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED || stopping(l) || now_ms() > until) {
      PQfinish(pc);
      return NULL;
    }
    int w = wait_for(l, PQsocket(pc), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                     PG_LISTEN_POLL_MS);
    if (w < 0) {
      PQfinish(pc);
      return NULL;
    }
    if (w == 1) st = PQconnectPoll(pc);
  }
  return pc;
}

/* Sends sql and waits, bounded, for all its results: 0 when each succeeded.
 * Notifications arriving meanwhile stay queued for PQnotifies. */
static int exec_async(pg_listener_t *l, PGconn *pc, const char *sql) {
  if (!PQsendQuery(pc, sql)) return -1;
  int64_t until = now_ms() + PG_LISTEN_CMD_MS;
  while (PQisBusy(pc)) {
    if (stopping(l) || now_ms() > until) return -1;
    int w = wait_for(l, PQsocket(pc), POLLIN, PG_LISTEN_POLL_MS);
    if (w < 0 || (w == 1 && !PQconsumeInput(pc))) return -1;
  }
  /* Not busy: PQgetResult returns what has arrived, then NULL, without
   * waiting. One query has one result; a few more would be a surprise. */
  int r = 0;
  for (int i = 0; i < 8; i++) {
    PGresult *res = PQgetResult(pc);
    if (!res) return r;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) r = -1;
    PQclear(res);
  }
  return -1;
}

/* LISTENs on every subscription not yet listened to on this connection. */
static int listen_pending(pgb_t *b, PGconn *pc) {
  pg_listener_t *l = &b->listener;
  for (int round = 0; round < PG_LISTEN_MAX; round++) {
    pthread_mutex_lock(&l->lock);
    size_t i = l->listened, n = l->nsubs;
    pthread_mutex_unlock(&l->lock);
    if (i >= n) return 0;
    const char *channel = l->subs[i].channel;
    /* Quoted: the channel is the exact string pg_notify is given. */
    char *id = PQescapeIdentifier(pc, channel, strlen(channel));
    if (!id) return -1;
    char sql[2 * PG_CHANNEL_MAX + 16];
    snprintf(sql, sizeof sql, "LISTEN %s", id);
    PQfreemem(id);
    if (exec_async(l, pc, sql) < 0) return -1;
    pthread_mutex_lock(&l->lock);
    l->listened = i + 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
  }
  return 0;
}

static size_t listened(pg_listener_t *l) {
  pthread_mutex_lock(&l->lock);
  size_t n = l->listened;
  pthread_mutex_unlock(&l->lock);
  return n;
}

/* Hands the queued notifications to their subscriptions; a burst larger than
 * one round's share waits for the next round (a few ms). */
static void dispatch(pg_listener_t *l, PGconn *pc) {
  PGnotify *n;
  for (int i = 0; i < 1024 && (n = PQnotifies(pc)); i++) {
    size_t count = listened(l);
    for (size_t k = 0; k < count; k++)
      if (strcmp(l->subs[k].channel, n->relname) == 0)
        l->subs[k].fn(n->relname, n->extra ? n->extra : "", l->subs[k].ctx);
    PQfreemem(n);
  }
}

static void *listener_main(void *arg) {
  pgb_t *b = arg;
  pg_listener_t *l = &b->listener;
  PGconn *pc = NULL;
  bool missed = false; /* notifications may have gone by unheard */
  int backoff = PG_LISTEN_BACKOFF_MIN_MS;
  int64_t last_heard = 0;
  /* Each round waits at most PG_LISTEN_POLL_MS (or one bounded connect or
   * command); the loop ends when the store closes. */
  while (!stopping(l)) {
    if (!pc) {
      if (!(pc = connect_async(b))) {
        missed = true;
        wait_for(l, -1, 0, backoff);
        backoff = backoff * 2 > PG_LISTEN_BACKOFF_MAX_MS ? PG_LISTEN_BACKOFF_MAX_MS : backoff * 2;
        continue;
      }
      pthread_mutex_lock(&l->lock);
      l->listened = 0;
      pthread_mutex_unlock(&l->lock);
      last_heard = now_ms();
    }
    bool ok = listen_pending(b, pc) == 0;
    if (ok) {
      pthread_mutex_lock(&l->lock);
      if (l->late && l->listened == l->nsubs) {
        missed = true;
        l->late = false;
      }
      pthread_mutex_unlock(&l->lock);
    }
    if (ok && missed) {
      /* LISTEN first, then "read again": whatever changes after the
       * subscriber reads is notified on the new connection. */
      missed = false;
      backoff = PG_LISTEN_BACKOFF_MIN_MS;
      size_t count = listened(l);
      for (size_t k = 0; k < count; k++) l->subs[k].fn(l->subs[k].channel, NULL, l->subs[k].ctx);
    }
    if (ok) {
      int w = wait_for(l, PQsocket(pc), POLLIN, PG_LISTEN_POLL_MS);
      if (w < 0 || (w == 1 && !PQconsumeInput(pc))) ok = false;
      if (w == 1) last_heard = now_ms();
    }
    if (ok) dispatch(l, pc);
    if (ok && PQstatus(pc) != CONNECTION_OK) ok = false;
    /* A connection that died without a word (a peer gone from the network)
     * is found by asking now and then. */
    if (ok && now_ms() - last_heard > PG_LISTEN_PROBE_MS) {
      ok = exec_async(l, pc, "SELECT 1") == 0;
      last_heard = now_ms();
      if (ok) dispatch(l, pc);
    }
    if (!ok) {
      PQfinish(pc);
      pc = NULL;
      missed = true;
    }
  }
  PQfinish(pc);
  return NULL;
}

int pg_listen(void *db, const char *channel, store_listen_fn fn, void *ctx) {
  pgb_t *b = db;
  pg_listener_t *l = &b->listener;
  size_t len = channel ? strlen(channel) : 0;
  if (!fn || len == 0 || len > PG_CHANNEL_MAX) return -EINVAL;
  pthread_mutex_lock(&l->lock);
  int r = 0;
  if (l->stop) {
    r = -EINVAL;
  } else if (l->nsubs == PG_LISTEN_MAX) {
    r = -ENOMEM;
  } else if (!l->started) {
    if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
      r = -errno;
      l->wake[0] = l->wake[1] = -1;
    } else if ((r = -pthread_create(&l->thread, NULL, listener_main, b)) < 0) {
      close(l->wake[0]);
      close(l->wake[1]);
      l->wake[0] = l->wake[1] = -1;
    } else {
      l->started = true;
    }
  }
  if (r < 0) {
    pthread_mutex_unlock(&l->lock);
    return r;
  }
  size_t me = l->nsubs;
  memcpy(l->subs[me].channel, channel, len + 1);
  l->subs[me].fn = fn;
  l->subs[me].ctx = ctx;
  l->nsubs++;
  wake(l);
  /* Until the LISTEN is in place, so that whatever the caller reads next
   * is followed by every later change. When the server cannot be reached
   * the thread keeps trying and reports NULL once it listens. */
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += PG_LISTEN_WAIT_MS / 1000;
  while (l->listened <= me && !l->stop)
    if (pthread_cond_timedwait(&l->cond, &l->lock, &until) == ETIMEDOUT) {
      l->late = true;
      break;
    }
  pthread_mutex_unlock(&l->lock);
  return 0;
}

void pg_listener_stop(pgb_t *b) {
  pg_listener_t *l = &b->listener;
  pthread_mutex_lock(&l->lock);
  l->stop = true;
  bool started = l->started;
  pthread_cond_broadcast(&l->cond);
  pthread_mutex_unlock(&l->lock);
  if (started) {
    wake(l);
    pthread_join(l->thread, NULL);
    close(l->wake[0]);
    close(l->wake[1]);
  }
  pthread_cond_destroy(&l->cond);
  pthread_mutex_destroy(&l->lock);
}
