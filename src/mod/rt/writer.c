/* The writer: one thread that does the real-time core's store work.
 *
 * Group commit: whatever the hub asked while the previous transaction was
 * committing goes into the next one, so a burst of messages costs one fsync
 * per batch rather than one per message, and a message is acknowledged only
 * once its batch is committed. Results go back to the hub on the loop, one
 * loop_post per batch.
 *
 * The retention sweep runs here too, in batches of RETENTION_BATCH rows with
 * the queue served between them, so that a large deletion never holds up
 * the messages being sent. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/log.h"
#include "core/map.h"
#include "core/timefmt.h"
#include "mod/rt/internal.h"

#define WRITER_QUEUE_MAX 50000
#define WRITER_BATCH_MAX 1000
#define RETENTION_BATCH 500
#define RETENTION_BATCHES_MAX 100000 /* 50 million rows in one sweep: a bound, not a goal */
#define RETENTION_INTERVAL_MS (3600 * 1000)
#define RETENTION_WAIT_MS 60000
#define DELIVERED_MARKS_MAX 1000 /* per chat.received */

typedef enum job_kind {
  JOB_SEND,          /* name -> to, or -> remote when remote[0] */
  JOB_FROM_REMOTE,   /* remote -> to, from the federation */
  JOB_RECEIVED,
  JOB_READ,
  JOB_SYNC,
  JOB_FORGET,
  JOB_PRESENCE, /* this node's view of name's presence, for the other nodes */
} job_kind_t;

typedef struct job {
  struct job *next;
  job_kind_t kind;
  uint64_t session;
  bool has_id;
  char id[RT_ID_MAX + 1];
  char name[65]; /* the sender, the receiver, the reader, the syncing user */
  char to[65];   /* send: the recipient */
  char remote[RT_ADDRESS_MAX + 1]; /* the federated side of a send or a receipt, or "" */
  int64_t number; /* received: upto; read: the message; sync: after; presence: state */
  char since[32]; /* presence */
  char *text;
  void (*done)(void *ctx, int status, int64_t message_id); /* JOB_FROM_REMOTE */
  void *done_ctx;
} job_t;

static struct {
  store_t *store;
  loop_t *loop;
  atlas_watch_t *atlas;
  pthread_t thread;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t wake, swept;
  job_t *head, *tail;
  size_t queued;
  bool stopping;
  bool sweep_asked;
  bool sweeping;
  uint64_t sweeps; /* completed sweeps */
  rt_retention_state_t retention;
  map_t *users; /* writer thread only: name -> cached_user_t, enabled users */
  atomic_uint_fast64_t commits, messages, failed_commits;
} W = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .wake = PTHREAD_COND_INITIALIZER,
       .swept = PTHREAD_COND_INITIALIZER};

typedef struct cached_user {
  int64_t id;
} cached_user_t;

/* ---- the queue ---------------------------------------------------------------------------- */

static int enqueue(job_t *j) {
  pthread_mutex_lock(&W.lock);
  if (W.stopping || !W.started || W.queued >= WRITER_QUEUE_MAX) {
    pthread_mutex_unlock(&W.lock);
    free(j->text);
    free(j);
    return -EAGAIN;
  }
  if (W.tail)
    W.tail->next = j;
  else
    W.head = j;
  W.tail = j;
  W.queued++;
  pthread_cond_signal(&W.wake);
  pthread_mutex_unlock(&W.lock);
  return 0;
}

static job_t *job_new(job_kind_t kind, const char *name) {
  job_t *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = kind;
  snprintf(j->name, sizeof j->name, "%s", name);
  return j;
}

int rt_writer_send(uint64_t session, const char *id, bool has_id, const char *from,
                   const char *to, const char *text, size_t len) {
  job_t *j = job_new(JOB_SEND, from);
  if (!j) return -EAGAIN;
  j->session = session;
  j->has_id = has_id;
  if (has_id) snprintf(j->id, sizeof j->id, "%s", id);
  snprintf(j->to, sizeof j->to, "%s", to);
  if (!(j->text = malloc(len + 1))) {
    free(j);
    return -EAGAIN;
  }
  memcpy(j->text, text, len);
  j->text[len] = '\0';
  return enqueue(j);
}

int rt_writer_presence(const char *name, rt_state_t state, const char *note, const char *since) {
  job_t *j = job_new(JOB_PRESENCE, name);
  if (!j) return -EAGAIN;
  j->number = state;
  snprintf(j->since, sizeof j->since, "%s", since);
  if (note && !(j->text = strdup(note))) {
    free(j);
    return -EAGAIN;
  }
  return enqueue(j);
}

int rt_writer_send_remote(uint64_t session, const char *id, bool has_id, const char *from,
                          const char *to_remote, const char *text, size_t len) {
  job_t *j = job_new(JOB_SEND, from);
  if (!j) return -EAGAIN;
  j->session = session;
  j->has_id = has_id;
  if (has_id) snprintf(j->id, sizeof j->id, "%s", id);
  snprintf(j->remote, sizeof j->remote, "%s", to_remote);
  if (!(j->text = strndup(text, len))) {
    free(j);
    return -EAGAIN;
  }
  return enqueue(j);
}

int rt_send(const char *from, const char *to, const char *text) {
  size_t len = text ? strlen(text) : 0;
  if (len == 0 || len > RT_TEXT_MAX) return -EINVAL;
  return rt_writer_send(0, "", false, from, to, text, len);
}

int rt_federation_receive(const char *from_remote, const char *to, const char *text,
                          void (*done)(void *ctx, int status, int64_t message_id), void *ctx) {
  size_t len = text ? strlen(text) : 0;
  if (len == 0 || len > RT_TEXT_MAX || !rt_address_ok(from_remote)) return -EINVAL;
  job_t *j = job_new(JOB_FROM_REMOTE, to);
  if (!j) return -EAGAIN;
  snprintf(j->to, sizeof j->to, "%s", to);
  snprintf(j->remote, sizeof j->remote, "%s", from_remote);
  for (char *c = j->remote; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
  j->done = done;
  j->done_ctx = ctx;
  if (!(j->text = strdup(text))) {
    free(j);
    return -EAGAIN;
  }
  return enqueue(j);
}

int rt_writer_received(const char *by, int64_t upto) {
  job_t *j = job_new(JOB_RECEIVED, by);
  if (!j) return -EAGAIN;
  j->number = upto;
  return enqueue(j);
}

int rt_writer_read(const char *by, int64_t message_id) {
  job_t *j = job_new(JOB_READ, by);
  if (!j) return -EAGAIN;
  j->number = message_id;
  return enqueue(j);
}

int rt_writer_sync(uint64_t session, const char *name, int64_t after) {
  job_t *j = job_new(JOB_SYNC, name);
  if (!j) return -EAGAIN;
  j->session = session;
  j->number = after;
  return enqueue(j);
}

void rt_writer_forget(const char *name) {
  job_t *j = job_new(JOB_FORGET, name);
  if (j) enqueue(j);
}

size_t rt_writer_queued(void) {
  pthread_mutex_lock(&W.lock);
  size_t n = W.queued;
  pthread_mutex_unlock(&W.lock);
  return n;
}

void rt_writer_stats(rt_writer_stats_t *out) {
  out->commits = atomic_load(&W.commits);
  out->messages = atomic_load(&W.messages);
  out->failed_commits = atomic_load(&W.failed_commits);
}

/* ---- users, as the writer knows them --------------------------------------------------------- */

/* The id of an enabled user: > 0; -ENOENT unknown, -EPERM disabled, other
 * negatives a store failure. Only enabled users are cached, so that enabling
 * one takes effect at once; disabling, renaming and deleting reach the cache
 * through rt_writer_forget. */
static int64_t user_id(const char *name) {
  cached_user_t *c = map_get_str(W.users, name);
  if (c) return c->id;
  store_txn_t *t;
  int r = store_read_begin(W.store, "real-time: find user", &t);
  if (r < 0) return r;
  store_user_t u;
  r = store_user_get(t, name, &u);
  store_read_end(t);
  if (r < 0) return r;
  if (!u.enabled) return -EPERM;
  if ((c = malloc(sizeof *c))) {
    c->id = u.id;
    if (map_put_str(W.users, name, c) < 0) free(c);
  }
  return u.id;
}

static void forget(const char *name) { free(map_del_str(W.users, name)); }

static void free_cached(const void *key, size_t len, void *value, void *ctx) {
  (void)key, (void)len, (void)ctx;
  free(value);
}

/* ---- one batch ---------------------------------------------------------------------------- */

typedef struct send_slot {
  job_t *job;
  int64_t from_id, to_id; /* 0 for the federated side */
  bool to_connected;
  int status;
  char detail[200];
  int64_t message_id;
} send_slot_t;

typedef struct mark_slot {
  job_t *job;
  int64_t by_id;
} mark_slot_t;

/* What the batch sends back to the hub. */
typedef struct batch_result {
  rt_sent_t *sent;
  size_t nsent;
  rt_marked_t *marked;
  size_t nmarked, capmarked;
} batch_result_t;

typedef struct batch {
  send_slot_t *sends;
  size_t nsends;
  job_t **presence; /* announced to the other nodes at the commit */
  size_t npresence;
  mark_slot_t *marks; /* received and read */
  size_t nmarks;
  char time[32];
  int64_t created_ms;
  batch_result_t *result; /* marks are collected here inside the transaction */
  char domain[256];
} batch_t;

static void add_marked(batch_result_t *res, char kind, const char *by, const char *sender,
                       int64_t id, const char *time) {
  if (res->nmarked == res->capmarked) {
    size_t cap = res->capmarked ? res->capmarked * 2 : 16;
    rt_marked_t *m = realloc(res->marked, cap * sizeof *m);
    if (!m) return; /* the mark is stored; only its live notice is lost */
    res->marked = m;
    res->capmarked = cap;
  }
  rt_marked_t *m = &res->marked[res->nmarked++];
  m->kind = kind;
  snprintf(m->by, sizeof m->by, "%s", by);
  snprintf(m->sender, sizeof m->sender, "%s", sender);
  m->message_id = id;
  snprintf(m->time, sizeof m->time, "%s", time);
}

typedef struct delivered_ctx {
  batch_t *b;
  const char *by;
} delivered_ctx_t;

static void on_delivered(const store_message_t *m, void *vctx) {
  delivered_ctx_t *d = vctx;
  if (m->sender_name) add_marked(d->b->result, 'd', d->by, m->sender_name, m->id, d->b->time);
}

/* Runs again in full on a serialisation retry: it only writes to the store
 * and to the result, which it resets first. */
/* The hooks' view of a message of the batch. */
static rt_message_event_t event_of(const batch_t *b, const send_slot_t *s) {
  const job_t *j = s->job;
  bool in = j->kind == JOB_FROM_REMOTE, out = j->kind == JOB_SEND && j->remote[0];
  return (rt_message_event_t){
      .id = s->message_id, .from_id = s->from_id, .to_id = s->to_id,
      .from = in ? NULL : j->name, .to = out ? NULL : j->to,
      .from_remote = in ? j->remote : NULL, .to_remote = out ? j->remote : NULL,
      .text = j->text, .time = b->time, .created_ms = b->created_ms,
      .to_connected = s->to_connected};
}

static int batch_txn(store_txn_t *t, void *vctx) {
  batch_t *b = vctx;
  b->result->nmarked = 0;
  for (size_t i = 0; i < b->nsends; i++) {
    send_slot_t *s = &b->sends[i];
    if (s->status) continue;
    const job_t *j = s->job;
    bool in = j->kind == JOB_FROM_REMOTE, out = j->remote[0] && !in;
    store_message_t m = {.sender = s->from_id, .recipient = s->to_id, .text = j->text,
                         .sender_remote = in ? j->remote : NULL,
                         .recipient_remote = out ? j->remote : NULL, .created_ms = b->created_ms};
    snprintf(m.time, sizeof m.time, "%s", b->time);
    int r = store_message_add(t, &m);
    if (r < 0) return r;
    s->message_id = m.id;
    /* One journal entry per side and day; a federated side has none here. */
    char peer[RT_ADDRESS_MAX + 1];
    if (s->from_id) {
      if (out)
        snprintf(peer, sizeof peer, "%s", j->remote);
      else
        snprintf(peer, sizeof peer, "%s@%s", j->to, b->domain);
      if ((r = store_journal_chat(t, s->from_id, peer, "out", b->time, b->created_ms, 1)) < 0)
        return r;
    }
    if (s->to_id && s->to_id != s->from_id) {
      if (in)
        snprintf(peer, sizeof peer, "%s", j->remote);
      else
        snprintf(peer, sizeof peer, "%s@%s", j->name, b->domain);
      if ((r = store_journal_chat(t, s->to_id, peer, "in", b->time, b->created_ms, 1)) < 0)
        return r;
    }
    rt_message_event_t ev = event_of(b, s);
    if ((r = rt_hooks_message(t, &ev)) < 0) return r;
    /* Several nodes: every node delivers it to the connections it holds. */
    if (!out && (r = rt_relay_notify_chat(t, j->session, m.id, in ? "" : j->name, j->to)) < 0)
      return r;
  }
  for (size_t i = 0; i < b->nmarks; i++) {
    mark_slot_t *k = &b->marks[i];
    int r;
    if (k->job->kind == JOB_RECEIVED) {
      delivered_ctx_t d = {.b = b, .by = k->job->name};
      r = store_messages_delivered(t, k->by_id, k->job->number, b->time, DELIVERED_MARKS_MAX,
                                   on_delivered, &d);
    } else {
      store_message_t m;
      r = store_message_get(t, k->job->number, &m);
      if (r == -ENOENT || (r == 0 && (m.recipient != k->by_id || !m.sender))) continue;
      if (r < 0) return r;
      int64_t marked, newest;
      r = store_messages_read(t, k->by_id, m.sender, k->job->number, b->time, &marked, &newest);
      if (r == 0 && marked) r = rt_hooks_read(t, k->by_id, m.sender, newest);
      if (r == 0 && marked) {
        store_user_t sender;
        if ((r = store_user_by_id(t, m.sender, &sender)) == 0)
          add_marked(b->result, 'r', k->job->name, sender.name, newest, b->time);
        else if (r == -ENOENT)
          r = 0;
      }
    }
    if (r < 0) return r;
  }
  for (size_t i = 0; i < b->result->nmarked; i++) {
    int r = rt_relay_notify_mark(t, &b->result->marked[i]);
    if (r < 0) return r;
  }
  for (size_t i = 0; i < b->npresence; i++) {
    const job_t *j = b->presence[i];
    int r = rt_relay_notify_presence(t, j->name, (rt_state_t)j->number, j->text, j->since);
    if (r < 0) return r;
  }
  return 0;
}

static void post_result(void *arg) {
  batch_result_t *res = arg;
  for (size_t i = 0; i < res->nsent; i++) {
    rt_hub_sent(&res->sent[i]);
    free(res->sent[i].text);
  }
  /* Several nodes: the marks come back from the store, to every node. */
  for (size_t i = 0; !rt_relay_active() && i < res->nmarked; i++) rt_hub_marked(&res->marked[i]);
  free(res->sent);
  free(res->marked);
  free(res);
}

static void fail_send(send_slot_t *s, int status, const char *detail) {
  s->status = status;
  snprintf(s->detail, sizeof s->detail, "%s", detail);
}

static void run_batch(job_t **jobs, size_t n) {
  batch_t b = {0};
  batch_result_t *res = calloc(1, sizeof *res);
  b.sends = calloc(n, sizeof *b.sends);
  b.marks = calloc(n, sizeof *b.marks);
  b.presence = calloc(n, sizeof *b.presence);
  if (res) res->sent = calloc(n, sizeof *res->sent);
  if (!res || !b.sends || !b.marks || !b.presence || !res->sent) {
    log_err("real-time: out of memory committing %zu request(s)", n);
    /* The senders get no answer and time out: nothing was acknowledged. */
    if (res) free(res->sent);
    free(res), free(b.sends), free(b.marks), free(b.presence);
    return;
  }
  b.result = res;
  b.created_ms = time_now_ms();
  time_rfc3339_ms(b.created_ms, b.time);
  rt_domain(b.domain, sizeof b.domain);
  for (size_t i = 0; i < n; i++) {
    job_t *j = jobs[i];
    if (j->kind == JOB_SEND || j->kind == JOB_FROM_REMOTE) {
      send_slot_t *s = &b.sends[b.nsends++];
      s->job = j;
      bool in = j->kind == JOB_FROM_REMOTE;
      s->from_id = in ? 0 : user_id(j->name);
      s->to_id = j->remote[0] && !in ? 0 : user_id(j->to);
      s->to_connected = s->to_id > 0 && rt_user_connected(j->to);
      if (s->from_id < 0)
        fail_send(s, 403, "Your user is disabled or no longer exists.");
      else if (s->to_id == -ENOENT)
        fail_send(s, 404, "There is no user of that address on this server; check the name.");
      else if (s->to_id == -EPERM)
        fail_send(s, 409, "That user is disabled and cannot receive messages.");
      else if (s->to_id < 0)
        fail_send(s, 503, "The message could not be stored; send it again.");
    } else if (j->kind == JOB_PRESENCE) {
      b.presence[b.npresence++] = j;
    } else {
      int64_t id = user_id(j->name);
      if (id > 0) b.marks[b.nmarks++] = (mark_slot_t){.job = j, .by_id = id};
    }
  }
  int r = store_run_txn(W.store, "real-time: commit", batch_txn, &b);
  if (r < 0) {
    atomic_fetch_add(&W.failed_commits, 1);
    log_err("real-time: %zu message(s) could not be stored: %s", b.nsends,
              store_last_error(W.store));
    res->nmarked = 0;
    for (size_t i = 0; i < b.nsends; i++)
      if (!b.sends[i].status)
        fail_send(&b.sends[i], 503, "The message could not be stored; send it again.");
  } else {
    atomic_fetch_add(&W.commits, 1);
    rt_hooks_committed();
  }
  for (size_t i = 0; i < b.nsends; i++) {
    send_slot_t *s = &b.sends[i];
    rt_sent_t *o = &res->sent[res->nsent++];
    o->session = s->job->session;
    o->has_id = s->job->has_id;
    memcpy(o->id, s->job->id, sizeof o->id);
    o->status = s->status;
    memcpy(o->detail, s->detail, sizeof o->detail);
    if (!s->status) {
      atomic_fetch_add(&W.messages, 1);
      o->message_id = s->message_id;
      memcpy(o->time, b.time, sizeof o->time);
      bool in = s->job->kind == JOB_FROM_REMOTE, out = s->job->remote[0] && !in;
      snprintf(o->from, sizeof o->from, "%s", in ? "" : s->job->name);
      snprintf(o->to, sizeof o->to, "%s", out ? "" : s->job->to);
      snprintf(o->from_remote, sizeof o->from_remote, "%s", in ? s->job->remote : "");
      snprintf(o->to_remote, sizeof o->to_remote, "%s", out ? s->job->remote : "");
      o->text = strdup(s->job->text); /* the job's copy stays for the federation */
    }
  }
  if (loop_post(W.loop, post_result, res) != 0) {
    /* The loop stopped: there is no one left to answer. */
    for (size_t i = 0; i < res->nsent; i++) free(res->sent[i].text);
    free(res->sent);
    free(res->marked);
    free(res);
  }
  /* After the hub has the results: its pending entry exists before the
   * federation's answer can arrive on the loop. */
  const rt_federation_t *fed = rt_federation();
  for (size_t i = 0; i < b.nsends; i++) {
    send_slot_t *s = &b.sends[i];
    if (s->job->kind == JOB_FROM_REMOTE && s->job->done)
      s->job->done(s->job->done_ctx,
                   !s->status ? 0 : s->to_id == -ENOENT ? -ENOENT : s->to_id == -EPERM ? -EPERM
                                                                                      : -EIO,
                   s->message_id);
    else if (!s->status && s->job->remote[0] && fed && fed->send) {
      rt_message_event_t ev = event_of(&b, s);
      fed->send(&ev, fed->ctx);
    }
  }
  free(b.sends);
  free(b.marks);
  free(b.presence);
}

/* ---- offline messages ---------------------------------------------------------------------- */

typedef struct sync_result {
  uint64_t session;
  store_message_t *m;
  size_t n;
  bool more;
  int failed;
} sync_result_t;

static void copy_message(const store_message_t *m, void *ctx) {
  sync_result_t *s = ctx;
  store_message_t *o = &s->m[s->n];
  *o = *m;
  o->text = strdup(m->text ? m->text : "");
  o->sender_name = m->sender_name ? strdup(m->sender_name) : NULL;
  o->sender_remote = m->sender_remote ? strdup(m->sender_remote) : NULL;
  o->recipient_name = o->recipient_remote = NULL;
  if (!o->text || (m->sender_name && !o->sender_name) || (m->sender_remote && !o->sender_remote)) {
    free((char *)o->text), free((char *)o->sender_name), free((char *)o->sender_remote);
    s->failed = -ENOMEM;
    return;
  }
  s->n++;
}

static void sync_result_free(sync_result_t *s) {
  for (size_t i = 0; i < s->n; i++) {
    free((char *)s->m[i].text);
    free((char *)s->m[i].sender_name);
    free((char *)s->m[i].sender_remote);
  }
  free(s->m);
  free(s);
}

static void post_sync(void *arg) {
  sync_result_t *s = arg;
  rt_hub_synced(s->session, s->m, s->n, s->more, s->failed);
  sync_result_free(s);
}

static void run_sync(const job_t *j) {
  sync_result_t *s = calloc(1, sizeof *s);
  if (!s) return; /* the hub's connection stays unsynced; it closes as idle at worst */
  s->session = j->session;
  s->m = calloc(RT_SYNC_PAGE, sizeof *s->m);
  int64_t id = s->m ? user_id(j->name) : -ENOMEM;
  store_txn_t *t = NULL;
  int r = id < 0 ? (int)id : store_read_begin(W.store, "real-time: offline messages", &t);
  if (r == 0) {
    r = store_messages_pending(t, id, j->number, RT_SYNC_PAGE, copy_message, s);
    store_read_end(t);
  }
  s->failed = r < 0 ? r : s->failed;
  s->more = !s->failed && s->n == RT_SYNC_PAGE;
  if (loop_post(W.loop, post_sync, s) != 0) sync_result_free(s);
}

/* ---- retention ------------------------------------------------------------------------------ */

typedef struct sweep {
  bool active;
  int im_days, journal_days;
  int64_t im_cutoff, journal_cutoff;
  bool im_done, journal_done;
  int64_t messages, journal;
  size_t batches;
} sweep_t;

static void sweep_begin(sweep_t *s) {
  atlas_live_t live = {.ok = false, .im_delete_after_days = -1, .journal_delete_after_days = -1};
  char err[sizeof W.retention.atlas_error] = "";
  bool changed = false;
  if (W.atlas) atlas_watch_get(W.atlas, &live, &changed, err, sizeof err);
  if (changed && !live.ok)
    log_warning("retention: %s; nothing is deleted until atlas.xml is valid again", err);
  else if (changed)
    log_info("retention: IMDeleteAfterDays %d, JournalDeleteAfterDays %d (-1: not set)",
             live.im_delete_after_days, live.journal_delete_after_days);
  *s = (sweep_t){.active = true, .im_days = -1, .journal_days = -1};
  pthread_mutex_lock(&W.lock);
  snprintf(W.retention.atlas_error, sizeof W.retention.atlas_error, "%s", live.ok ? "" : err);
  pthread_mutex_unlock(&W.lock);
  int64_t now = time_now_ms();
  if (live.ok) {
    s->im_days = live.im_delete_after_days;
    s->journal_days = live.journal_delete_after_days;
  }
  s->im_done = s->im_days < 0;
  s->journal_done = s->journal_days < 0;
  s->im_cutoff = now - (int64_t)(s->im_days > 0 ? s->im_days : 0) * 86400000;
  s->journal_cutoff = now - (int64_t)(s->journal_days > 0 ? s->journal_days : 0) * 86400000;
}

typedef struct sweep_step {
  sweep_t *s;
  int64_t deleted;
  bool im;
} sweep_step_t;

static int sweep_txn(store_txn_t *t, void *ctx) {
  sweep_step_t *st = ctx;
  st->deleted = 0;
  if (st->im)
    return store_retention_messages(t, st->s->im_cutoff, st->s->im_days == 0, RETENTION_BATCH,
                                    &st->deleted);
  return store_retention_journal(t, st->s->journal_cutoff, RETENTION_BATCH, &st->deleted);
}

static void sweep_finish(sweep_t *s, bool failed) {
  char now[32];
  time_rfc3339_ms(time_now_ms(), now);
  char next[32];
  time_rfc3339_ms(time_now_ms() + RETENTION_INTERVAL_MS, next);
  pthread_mutex_lock(&W.lock);
  W.retention.im_days = s->im_days;
  W.retention.journal_days = s->journal_days;
  memcpy(W.retention.last_run, now, sizeof now);
  memcpy(W.retention.next_run, next, sizeof next);
  W.retention.last_messages = s->messages;
  W.retention.last_journal = s->journal;
  W.retention.total_messages += (uint64_t)s->messages;
  W.retention.total_journal += (uint64_t)s->journal;
  W.retention.last_failed = failed;
  W.sweeps++;
  pthread_cond_broadcast(&W.swept);
  pthread_mutex_unlock(&W.lock);
  if (s->messages || s->journal || failed)
    log_info("retention: deleted %" PRId64 " chat message(s) and %" PRId64
             " journal entr%s%s",
             s->messages, s->journal, s->journal == 1 ? "y" : "ies",
             failed ? "; the sweep stopped at a store failure and runs again next hour" : "");
  s->active = false;
}

/* One bounded batch of the sweep; the queue is served between them. */
static void sweep_step(sweep_t *s) {
  if (s->im_done && s->journal_done) {
    sweep_finish(s, false);
    return;
  }
  sweep_step_t st = {.s = s, .im = !s->im_done};
  int r = store_run_txn(W.store, "retention", sweep_txn, &st);
  if (r < 0) {
    log_warning("retention: %s", store_last_error(W.store));
    sweep_finish(s, true);
    return;
  }
  if (st.im) {
    s->messages += st.deleted;
    s->im_done = st.deleted < RETENTION_BATCH;
  } else {
    s->journal += st.deleted;
    s->journal_done = st.deleted < RETENTION_BATCH;
  }
  if (++s->batches >= RETENTION_BATCHES_MAX) s->im_done = s->journal_done = true;
}

void rt_writer_retention(rt_retention_state_t *out) {
  pthread_mutex_lock(&W.lock);
  *out = W.retention;
  pthread_mutex_unlock(&W.lock);
  /* The days as atlas.xml says now, even before the next sweep reads them. */
  if (W.atlas) {
    atlas_live_t live;
    char err[sizeof out->atlas_error];
    atlas_watch_get(W.atlas, &live, NULL, err, sizeof err);
    out->im_days = live.ok ? live.im_delete_after_days : -1;
    out->journal_days = live.ok ? live.journal_delete_after_days : -1;
    snprintf(out->atlas_error, sizeof out->atlas_error, "%s", live.ok ? "" : err);
  }
}

int rt_writer_retention_run(rt_retention_state_t *out) {
  pthread_mutex_lock(&W.lock);
  if (!W.started || W.stopping) {
    pthread_mutex_unlock(&W.lock);
    return -ESHUTDOWN;
  }
  /* A sweep that is already under way may have read the days before they
   * changed: wait for the one after it. */
  uint64_t target = W.sweeps + (W.sweeping ? 2 : 1);
  W.sweep_asked = true;
  pthread_cond_signal(&W.wake);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += RETENTION_WAIT_MS / 1000;
  int r = 0;
  while (W.sweeps < target && r == 0) r = pthread_cond_timedwait(&W.swept, &W.lock, &until);
  bool done = W.sweeps >= target;
  pthread_mutex_unlock(&W.lock);
  rt_writer_retention(out);
  return done ? 0 : -ETIMEDOUT;
}

/* ---- the thread ------------------------------------------------------------------------------ */

static void *writer_main(void *arg) {
  (void)arg;
  sweep_t sweep = {0};
  int64_t next_sweep = 0; /* at start */
  job_t **jobs = malloc(WRITER_BATCH_MAX * sizeof *jobs);
  if (!jobs) {
    log_err("real-time: out of memory starting the writer");
    return NULL;
  }
  for (;;) {
    pthread_mutex_lock(&W.lock);
    for (;;) {
      if (W.head || W.stopping) break;
      if (sweep.active) break;
      if (W.sweep_asked || time_now_ms() >= next_sweep) break;
      struct timespec until;
      int64_t wake_ms = next_sweep;
      until.tv_sec = (time_t)(wake_ms / 1000);
      until.tv_nsec = (long)(wake_ms % 1000) * 1000000;
      pthread_cond_timedwait(&W.wake, &W.lock, &until);
    }
    if (W.stopping && !W.head) {
      pthread_mutex_unlock(&W.lock);
      break;
    }
    if (!sweep.active && (W.sweep_asked || time_now_ms() >= next_sweep)) {
      W.sweep_asked = false;
      W.sweeping = true;
      pthread_mutex_unlock(&W.lock);
      sweep_begin(&sweep);
      next_sweep = time_now_ms() + RETENTION_INTERVAL_MS;
      pthread_mutex_lock(&W.lock);
    }
    size_t n = 0;
    while (W.head && n < WRITER_BATCH_MAX) {
      job_t *j = W.head;
      W.head = j->next;
      if (!W.head) W.tail = NULL;
      W.queued--;
      jobs[n++] = j;
    }
    pthread_mutex_unlock(&W.lock);

    /* Forgetting first: a rename or disable in this batch takes effect for it. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
      if (jobs[i]->kind == JOB_FORGET) {
        forget(jobs[i]->name);
        free(jobs[i]);
      } else {
        jobs[m++] = jobs[i];
      }
    }
    n = m;
    size_t nb = 0;
    for (size_t i = 0; i < n; i++)
      if (jobs[i]->kind != JOB_SYNC) jobs[nb++] = jobs[i];
      else {
        /* Syncs read what the batches before them committed. */
        if (nb) run_batch(jobs, nb);
        for (size_t k = 0; k < nb; k++) free(jobs[k]->text), free(jobs[k]);
        nb = 0;
        run_sync(jobs[i]);
        free(jobs[i]);
      }
    if (nb) run_batch(jobs, nb);
    for (size_t k = 0; k < nb; k++) free(jobs[k]->text), free(jobs[k]);

    if (sweep.active) {
      sweep_step(&sweep);
      if (!sweep.active) {
        pthread_mutex_lock(&W.lock);
        W.sweeping = false;
        pthread_mutex_unlock(&W.lock);
      }
    }
  }
  free(jobs);
  return NULL;
}

int rt_writer_start(store_t *store, loop_t *loop, atlas_watch_t *atlas, char *err,
                    size_t errlen) {
  W.store = store;
  W.loop = loop;
  W.atlas = atlas;
  W.stopping = false;
  W.retention = (rt_retention_state_t){.im_days = -1, .journal_days = -1};
  if (!(W.users = map_new())) {
    snprintf(err, errlen, "Out of memory starting the real-time writer.");
    return -ENOMEM;
  }
  int r = pthread_create(&W.thread, NULL, writer_main, NULL);
  if (r) {
    map_free(W.users);
    W.users = NULL;
    snprintf(err, errlen, "Cannot start the real-time writer thread: %s.", strerror(r));
    return -r;
  }
  pthread_mutex_lock(&W.lock);
  W.started = true;
  pthread_mutex_unlock(&W.lock);
  return 0;
}

/* What is queued is committed before the thread ends: an acknowledged
 * receipt or read mark is not lost at shutdown. */
void rt_writer_stop(void) {
  pthread_mutex_lock(&W.lock);
  bool started = W.started;
  W.stopping = true;
  pthread_cond_broadcast(&W.wake);
  pthread_cond_broadcast(&W.swept);
  pthread_mutex_unlock(&W.lock);
  if (!started) return;
  pthread_join(W.thread, NULL);
  pthread_mutex_lock(&W.lock);
  W.started = false;
  pthread_mutex_unlock(&W.lock);
  map_each(W.users, free_cached, NULL);
  map_free(W.users);
  W.users = NULL;
}
