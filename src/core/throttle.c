/* Login throttling (throttle.h): two bounded tables of exact keys, each a
 * chained hash (SipHash with a key drawn at start, so nobody can aim many
 * keys at one bucket) plus a least-recently-used list for eviction. */
#include "core/throttle.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/netaddr.h"

/* The failing sources an account remembers; account_sources is capped to it. */
#define THROTTLE_ACCOUNT_SOURCES_MAX 16
/* How far from the cold end of the LRU list a free entry is looked for. */
#define THROTTLE_EVICT_SCAN 256
#define THROTTLE_KEY_MAX 512

typedef struct entry {
  struct entry *chain, *older, *newer;
  uint64_t hash;
  char *key;
  unsigned failures, pending;
  int64_t last_failure_ms, blocked_until_ms;
  /* Successful logins: a token bucket, in thousandths of a login. */
  int64_t ok_milli, ok_at_ms;
  /* Accounts only: sources that failed for it, by keyed hash, and when. */
  uint64_t src[THROTTLE_ACCOUNT_SOURCES_MAX];
  int64_t src_at[THROTTLE_ACCOUNT_SOURCES_MAX];
} entry_t;

typedef struct table {
  entry_t **buckets;
  size_t nbuckets, count, capacity;
  entry_t *oldest, *newest;
  entry_t overflow; /* never in the chains or the list */
  unsigned ok_burst;
  int64_t ok_refill_ms;
} table_t;

struct throttle {
  pthread_mutex_t lock;
  throttle_policy_t p;
  unsigned char hash_key[crypto_shorthash_KEYBYTES];
  table_t sources, accounts;
  uint64_t refused[4], evicted, overflowed;
};

void throttle_default_policy(throttle_policy_t *p) {
  *p = (throttle_policy_t){
      .capacity = 16384,
      .free_failures = 5,
      .window_ms = 15 * 60 * 1000,
      .max_delay_ms = 300 * 1000,
      .account_sources = 8,
      .slowed_wait_ms = 60 * 1000,
      .ok_burst_source = 30,
      .ok_refill_source_ms = 2000,
      .ok_burst_account = 10,
      .ok_refill_account_ms = 6000,
  };
}

static int table_init(table_t *tb, size_t capacity, unsigned ok_burst, int64_t ok_refill_ms) {
  size_t n = 64;
  while (n < capacity) n <<= 1;
  tb->buckets = calloc(n, sizeof *tb->buckets);
  if (!tb->buckets) return -ENOMEM;
  tb->nbuckets = n;
  tb->capacity = capacity;
  tb->ok_burst = ok_burst;
  tb->ok_refill_ms = ok_refill_ms > 0 ? ok_refill_ms : 1;
  tb->overflow.ok_milli = (int64_t)ok_burst * 1000;
  return 0;
}

static void table_free(table_t *tb) {
  for (entry_t *e = tb->oldest, *next; e; e = next) {
    next = e->newer;
    free(e->key);
    free(e);
  }
  free(tb->buckets);
  memset(tb, 0, sizeof *tb);
}

throttle_t *throttle_new(const throttle_policy_t *policy) {
  if (sodium_init() < 0) return NULL;
  throttle_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->p = *policy;
  if (t->p.capacity < 1) t->p.capacity = 1;
  if (t->p.account_sources > THROTTLE_ACCOUNT_SOURCES_MAX)
    t->p.account_sources = THROTTLE_ACCOUNT_SOURCES_MAX;
  if (t->p.account_sources < 1) t->p.account_sources = 1;
  crypto_shorthash_keygen(t->hash_key);
  pthread_mutex_init(&t->lock, NULL);
  if (table_init(&t->sources, t->p.capacity, t->p.ok_burst_source, t->p.ok_refill_source_ms) ||
      table_init(&t->accounts, t->p.capacity, t->p.ok_burst_account, t->p.ok_refill_account_ms)) {
    throttle_free(t);
    return NULL;
  }
  return t;
}

void throttle_free(throttle_t *t) {
  if (!t) return;
  table_free(&t->sources);
  table_free(&t->accounts);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

/* ---- the tables (caller holds t->lock) ------------------------------------------- */

static uint64_t key_hash(const throttle_t *t, const char *key, size_t len) {
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, (const unsigned char *)key, len, t->hash_key);
  uint64_t h;
  memcpy(&h, out, sizeof h);
  return h;
}

static void lru_unlink(table_t *tb, entry_t *e) {
  if (e->older) e->older->newer = e->newer; else tb->oldest = e->newer;
  if (e->newer) e->newer->older = e->older; else tb->newest = e->older;
  e->older = e->newer = NULL;
}

static void lru_push_newest(table_t *tb, entry_t *e) {
  e->older = tb->newest;
  e->newer = NULL;
  if (tb->newest) tb->newest->newer = e; else tb->oldest = e;
  tb->newest = e;
}

static int64_t bucket_level(const table_t *tb, const entry_t *e, int64_t now) {
  int64_t full = (int64_t)tb->ok_burst * 1000;
  int64_t level = e->ok_milli + (now - e->ok_at_ms) * 1000 / tb->ok_refill_ms;
  return level > full ? full : level;
}

/* Whether forgetting the entry would lose anything that still matters. */
static bool entry_live(const throttle_t *t, const table_t *tb, const entry_t *e, int64_t now) {
  if (e->pending || e->blocked_until_ms > now) return true;
  if (e->failures && now - e->last_failure_ms <= t->p.window_ms) return true;
  if (bucket_level(tb, e, now) < (int64_t)tb->ok_burst * 1000) return true;
  for (unsigned i = 0; i < THROTTLE_ACCOUNT_SOURCES_MAX; i++)
    if (e->src[i] && now - e->src_at[i] <= t->p.window_ms) return true;
  return false;
}

static void chain_remove(table_t *tb, entry_t *e) {
  entry_t **pp = &tb->buckets[e->hash & (tb->nbuckets - 1)];
  while (*pp && *pp != e) pp = &(*pp)->chain;
  if (*pp) *pp = e->chain;
}

static entry_t *find(throttle_t *t, table_t *tb, const char *key, bool create, int64_t now) {
  size_t len = strnlen(key, THROTTLE_KEY_MAX);
  uint64_t h = key_hash(t, key, len);
  for (entry_t *e = tb->buckets[h & (tb->nbuckets - 1)]; e; e = e->chain)
    if (e->hash == h && strncmp(e->key, key, THROTTLE_KEY_MAX) == 0) {
      lru_unlink(tb, e);
      lru_push_newest(tb, e);
      return e;
    }
  if (!create) return NULL;
  if (tb->count >= tb->capacity) {
    entry_t *victim = tb->oldest;
    for (unsigned n = 0; victim && n < THROTTLE_EVICT_SCAN && entry_live(t, tb, victim, now); n++)
      victim = victim->newer;
    if (!victim || entry_live(t, tb, victim, now)) {
      t->overflowed++;
      return &tb->overflow;
    }
    lru_unlink(tb, victim);
    chain_remove(tb, victim);
    free(victim->key);
    free(victim);
    tb->count--;
    t->evicted++;
  }
  entry_t *e = calloc(1, sizeof *e);
  if (e) e->key = strndup(key, len);
  if (!e || !e->key) {
    free(e);
    return &tb->overflow; /* out of memory: still counted, with the others */
  }
  e->hash = h;
  e->ok_milli = (int64_t)tb->ok_burst * 1000;
  e->ok_at_ms = now;
  e->chain = tb->buckets[h & (tb->nbuckets - 1)];
  tb->buckets[h & (tb->nbuckets - 1)] = e;
  lru_push_newest(tb, e);
  tb->count++;
  return e;
}

/* An untracked key reads as the overflow entry only while the table is full
 * of live entries: a key that lost its place is still held back with them. */
static entry_t *lookup(throttle_t *t, table_t *tb, const char *key, int64_t now) {
  entry_t *e = find(t, tb, key, false, now);
  if (e || tb->count < tb->capacity) return e;
  return &tb->overflow;
}

/* People type passwords into the name field: the table keeps a digest of
 * the account, never the text (SHA-256: as exact as the name itself). */
static void account_key(const char *realm, const char *account, char *out, size_t len) {
  unsigned char d[crypto_hash_sha256_BYTES];
  const char *a = account ? account : "";
  crypto_hash_sha256(d, (const unsigned char *)a, strlen(a));
  char hex[2 * sizeof d + 1];
  sodium_bin2hex(hex, sizeof hex, d, sizeof d);
  snprintf(out, len, "%s:%s", realm ? realm : "", hex);
}

static uint64_t source_id(const throttle_t *t, const char *skey) {
  uint64_t h = key_hash(t, skey, strlen(skey));
  return h ? h : 1; /* 0 marks a free slot */
}

static bool forget_stale(const throttle_t *t, entry_t *e, int64_t now) {
  if (e->failures && now - e->last_failure_ms > t->p.window_ms && e->blocked_until_ms <= now) {
    e->failures = 0;
    e->blocked_until_ms = 0;
    return true;
  }
  return false;
}

static unsigned distinct_sources(const throttle_t *t, const entry_t *acc, int64_t now) {
  unsigned n = 0;
  for (unsigned i = 0; i < THROTTLE_ACCOUNT_SOURCES_MAX; i++)
    if (acc->src[i] && now - acc->src_at[i] <= t->p.window_ms) n++;
  return n;
}

static int64_t source_failed_at(const entry_t *acc, uint64_t sid) {
  for (unsigned i = 0; i < THROTTLE_ACCOUNT_SOURCES_MAX; i++)
    if (acc->src[i] == sid) return acc->src_at[i];
  return INT64_MIN;
}

static void account_note_source(entry_t *acc, uint64_t sid, int64_t now) {
  /* The source's own slot, else a free one, else the one that failed longest ago. */
  unsigned slot = 0;
  bool found = false;
  for (unsigned i = 0; i < THROTTLE_ACCOUNT_SOURCES_MAX && !found; i++)
    if (acc->src[i] == sid) {
      slot = i;
      found = true;
    }
  for (unsigned i = 0; i < THROTTLE_ACCOUNT_SOURCES_MAX && !found; i++)
    if (!acc->src[i] || acc->src_at[i] < acc->src_at[slot]) slot = i;
  acc->src[slot] = sid;
  acc->src_at[slot] = now;
}

static int seconds_up(int64_t ms) {
  int64_t s = (ms + 999) / 1000;
  return s < 1 ? 1 : s > 86400 ? 86400 : (int)s;
}

/* ---- the verdict -------------------------------------------------------------------- */

throttle_verdict_t throttle_begin(throttle_t *t, const char *realm, const char *account,
                                  const char *source, int64_t now, int *retry_after_s) {
  int dummy;
  if (!retry_after_s) retry_after_s = &dummy;
  *retry_after_s = 0;
  if (!t) return THROTTLE_GO;
  char skey[NETADDR_KEY_MAX], akey[THROTTLE_KEY_MAX];
  netaddr_client_key_text(source, skey);
  account_key(realm, account, akey, sizeof akey);

  pthread_mutex_lock(&t->lock);
  throttle_verdict_t v = THROTTLE_GO;
  int64_t wait = 0;
  entry_t *src = lookup(t, &t->sources, skey, now);
  entry_t *acc = lookup(t, &t->accounts, akey, now);
  if (src) forget_stale(t, src, now);
  if (src && src->blocked_until_ms > now) {
    v = THROTTLE_SOURCE;
    wait = src->blocked_until_ms - now;
  } else if (src && src->pending && src->failures + src->pending >= t->p.free_failures) {
    /* Attempts in flight count as failures until they are known: no burst
     * of parallel guesses slips under the limit. */
    v = THROTTLE_SOURCE;
    wait = 1000;
  }
  if (v == THROTTLE_GO && acc && distinct_sources(t, acc, now) >= t->p.account_sources) {
    int64_t at = source_failed_at(acc, source_id(t, skey));
    if (at != INT64_MIN && now - at < t->p.slowed_wait_ms) {
      v = THROTTLE_ACCOUNT;
      wait = at + t->p.slowed_wait_ms - now;
    }
  }
  if (v == THROTTLE_GO) {
    table_t *tbs[2] = {&t->sources, &t->accounts};
    entry_t *es[2] = {src, acc};
    for (int i = 0; i < 2 && v == THROTTLE_GO; i++) {
      if (!es[i]) continue;
      int64_t level = bucket_level(tbs[i], es[i], now);
      if (level < 1000) {
        v = THROTTLE_RATE;
        wait = (1000 - level) * tbs[i]->ok_refill_ms / 1000;
      }
    }
  }
  if (v == THROTTLE_GO) {
    src = find(t, &t->sources, skey, true, now);
    src->pending++;
  } else {
    t->refused[v]++;
    *retry_after_s = seconds_up(wait);
  }
  pthread_mutex_unlock(&t->lock);
  return v;
}

static void take_token(const table_t *tb, entry_t *e, int64_t now) {
  int64_t level = bucket_level(tb, e, now) - 1000;
  e->ok_milli = level < 0 ? 0 : level;
  e->ok_at_ms = now;
}

void throttle_end(throttle_t *t, const char *realm, const char *account, const char *source,
                  throttle_outcome_t outcome, int64_t now) {
  if (!t) return;
  char skey[NETADDR_KEY_MAX], akey[THROTTLE_KEY_MAX];
  netaddr_client_key_text(source, skey);
  account_key(realm, account, akey, sizeof akey);

  pthread_mutex_lock(&t->lock);
  entry_t *src = find(t, &t->sources, skey, true, now);
  if (src->pending)
    src->pending--;
  else if (t->sources.overflow.pending)
    t->sources.overflow.pending--; /* began in the overflow entry, and room was made since */
  if (outcome == THROTTLE_FAILED) {
    forget_stale(t, src, now);
    if (src->failures < 1000) src->failures++;
    src->last_failure_ms = now;
    if (src->failures >= t->p.free_failures) {
      unsigned shift = src->failures - t->p.free_failures;
      int64_t delay = shift >= 30 ? t->p.max_delay_ms : (int64_t)1000 << shift;
      if (delay > t->p.max_delay_ms) delay = t->p.max_delay_ms;
      src->blocked_until_ms = now + delay;
    }
    entry_t *acc = find(t, &t->accounts, akey, true, now);
    account_note_source(acc, source_id(t, skey), now);
  } else if (outcome == THROTTLE_OK) {
    take_token(&t->sources, src, now);
    take_token(&t->accounts, find(t, &t->accounts, akey, true, now), now);
  }
  pthread_mutex_unlock(&t->lock);
}

void throttle_get_stats(throttle_t *t, throttle_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (!t) return;
  pthread_mutex_lock(&t->lock);
  out->sources = t->sources.count;
  out->accounts = t->accounts.count;
  memcpy(out->refused, t->refused, sizeof out->refused);
  out->evicted = t->evicted;
  out->overflowed = t->overflowed;
  pthread_mutex_unlock(&t->lock);
}

/* ---- the server's instance ---------------------------------------------------------- */

static pthread_once_t logins_once = PTHREAD_ONCE_INIT;
static throttle_t *logins;
static unsigned logins_burst_source, logins_burst_account, logins_free_failures; /* 0: default */

static void make_logins(void) {
  throttle_policy_t p;
  throttle_default_policy(&p);
  if (logins_burst_source) p.ok_burst_source = logins_burst_source;
  if (logins_burst_account) p.ok_burst_account = logins_burst_account;
  if (logins_free_failures) p.free_failures = logins_free_failures;
  logins = throttle_new(&p);
}

void throttle_logins_configure(unsigned ok_per_source, unsigned ok_per_account,
                               unsigned free_failures) {
  logins_burst_source = ok_per_source;
  logins_burst_account = ok_per_account;
  logins_free_failures = free_failures;
}

throttle_t *throttle_logins(void) {
  pthread_once(&logins_once, make_logins);
  return logins;
}

void throttle_logins_reset(void) {
  throttle_t *t = throttle_logins();
  if (!t) return;
  pthread_mutex_lock(&t->lock);
  table_t *tbs[2] = {&t->sources, &t->accounts};
  for (int i = 0; i < 2; i++) {
    size_t capacity = tbs[i]->capacity;
    unsigned burst = tbs[i]->ok_burst;
    int64_t refill = tbs[i]->ok_refill_ms;
    table_free(tbs[i]);
    (void)table_init(tbs[i], capacity, burst, refill);
  }
  pthread_mutex_unlock(&t->lock);
}

int64_t throttle_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void throttle_write_metrics(FILE *f, void *ctx) {
  (void)ctx;
  throttle_stats_t s;
  throttle_get_stats(throttle_logins(), &s);
  fprintf(f,
          "# HELP atrium_login_throttled_total Logins refused before the password was checked.\n"
          "# TYPE atrium_login_throttled_total counter\n"
          "atrium_login_throttled_total{reason=\"source\"} %llu\n"
          "atrium_login_throttled_total{reason=\"account\"} %llu\n"
          "atrium_login_throttled_total{reason=\"rate\"} %llu\n"
          "# HELP atrium_login_throttle_entries Sources and accounts the login throttle tracks.\n"
          "# TYPE atrium_login_throttle_entries gauge\n"
          "atrium_login_throttle_entries{table=\"sources\"} %zu\n"
          "atrium_login_throttle_entries{table=\"accounts\"} %zu\n"
          "# HELP atrium_login_throttle_evicted_total Quiet entries dropped to make room.\n"
          "# TYPE atrium_login_throttle_evicted_total counter\n"
          "atrium_login_throttle_evicted_total %llu\n"
          "# HELP atrium_login_throttle_overflow_total Newcomers counted in the shared entry of "
          "a table full of live ones.\n"
          "# TYPE atrium_login_throttle_overflow_total counter\n"
          "atrium_login_throttle_overflow_total %llu\n",
          (unsigned long long)s.refused[THROTTLE_SOURCE],
          (unsigned long long)s.refused[THROTTLE_ACCOUNT],
          (unsigned long long)s.refused[THROTTLE_RATE], s.sources, s.accounts,
          (unsigned long long)s.evicted, (unsigned long long)s.overflowed);
}
