/* Administrator authentication. State is one process-wide table guarded by
 * one mutex; the store is only called with that mutex released, so the two
 * locks never nest. Nothing here logs: tokens and passwords must not reach a
 * log line, and the caller decides what to say about failures. */
#include "http/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/secret.h"
#include "core/throttle.h"

#define AUTH_MAX_SESSIONS 4096
/* Open addressing at a load factor of at most one half keeps probes short. */
#define AUTH_SESSION_SLOTS (2 * AUTH_MAX_SESSIONS)
/* Each Argon2id verification takes 64 MiB: a burst of logins must not take
 * the machine's memory with it. */
#define AUTH_MAX_CONCURRENT_VERIFY 4
#define AUTH_THROTTLE_REALM "admin"
#define AUTH_MIN_PASSWORD_LENGTH 8
#define AUTH_TOKEN_BYTES 32
#define AUTH_CSRF_BYTES 18
#define AUTH_GENERATED_PASSWORD_BYTES 18
#define AUTH_PASSWORD_ENV "ATRIUM_ADMIN_PASSWORD"

typedef struct session_slot {
  bool used;
  char token_hash[65];
  char admin[128];
  char csrf[64];
  int64_t created;
  int64_t expires;
} session_slot_t;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t verify_done;
  int verifying;
  bool ready;
  store_t *store;
  char *dummy_hash;
  session_slot_t *slots;
  size_t n_sessions;
} auth = {.lock = PTHREAD_MUTEX_INITIALIZER, .verify_done = PTHREAD_COND_INITIALIZER};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int64_t wall_now(void) { return (int64_t)time(NULL); }

static void copy_str(char *out, size_t outlen, const char *s) {
  size_t n = strnlen(s, outlen - 1);
  memcpy(out, s, n);
  out[n] = '\0';
}

/* ---- session table (caller holds auth.lock) ------------------------------------ */

static size_t slot_home(const char *token_hash) {
  uint64_t h = 0;
  for (int i = 0; i < 16; i++) {
    char c = token_hash[i];
    unsigned v = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                 : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                        : 0;
    h = (h << 4) | v;
  }
  return (size_t)(h & (AUTH_SESSION_SLOTS - 1));
}

static ssize_t slot_find(const char *token_hash) {
  size_t i = slot_home(token_hash);
  for (size_t n = 0; n < AUTH_SESSION_SLOTS && auth.slots[i].used; n++) {
    if (sodium_memcmp(auth.slots[i].token_hash, token_hash, 64) == 0) return (ssize_t)i;
    i = (i + 1) & (AUTH_SESSION_SLOTS - 1);
  }
  return -1;
}

/* Backward-shift deletion: later entries of the probe run move into the hole,
 * so lookups never need tombstones. */
static void slot_remove(size_t i) {
  const size_t mask = AUTH_SESSION_SLOTS - 1;
  sodium_memzero(&auth.slots[i], sizeof auth.slots[i]);
  auth.n_sessions--;
  for (size_t j = (i + 1) & mask; auth.slots[j].used; j = (j + 1) & mask) {
    size_t k = slot_home(auth.slots[j].token_hash);
    bool stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
    if (stays) continue;
    auth.slots[i] = auth.slots[j];
    sodium_memzero(&auth.slots[j], sizeof auth.slots[j]);
    i = j;
  }
}

/* Makes room for one more session: expired ones go first, then the oldest.
 * An evicted live session's hash goes to evicted[] (empty when none) so that
 * the caller can delete it from the store too. */
static void slot_make_room(int64_t now, char evicted[65]) {
  evicted[0] = '\0';
  if (auth.n_sessions < AUTH_MAX_SESSIONS) return;
  for (size_t i = 0; i < AUTH_SESSION_SLOTS;) {
    /* After a removal slot i holds a shifted entry: look at it again. */
    if (auth.slots[i].used && auth.slots[i].expires <= now)
      slot_remove(i);
    else
      i++;
  }
  if (auth.n_sessions < AUTH_MAX_SESSIONS) return;
  size_t oldest = 0;
  bool found = false;
  for (size_t i = 0; i < AUTH_SESSION_SLOTS; i++) {
    if (!auth.slots[i].used) continue;
    if (!found || auth.slots[i].created < auth.slots[oldest].created) oldest = i;
    found = true;
  }
  if (!found) return;
  memcpy(evicted, auth.slots[oldest].token_hash, 65);
  slot_remove(oldest);
}

static void slot_insert(const store_session_t *s, int64_t now, char evicted[65]) {
  evicted[0] = '\0';
  ssize_t existing = slot_find(s->token_hash);
  if (existing >= 0) slot_remove((size_t)existing);
  slot_make_room(now, evicted);
  size_t i = slot_home(s->token_hash);
  while (auth.slots[i].used) i = (i + 1) & (AUTH_SESSION_SLOTS - 1);
  session_slot_t *slot = &auth.slots[i];
  slot->used = true;
  memcpy(slot->token_hash, s->token_hash, sizeof slot->token_hash);
  slot->token_hash[64] = '\0';
  copy_str(slot->admin, sizeof slot->admin, s->admin);
  copy_str(slot->csrf, sizeof slot->csrf, s->csrf);
  slot->created = s->created;
  slot->expires = s->expires;
  auth.n_sessions++;
}

/* ---- bootstrap ----------------------------------------------------------------- */

static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* 0600 whatever the umask and whatever an older file had; flushed to disk
 * before the account exists, so a crash cannot leave an account whose
 * password nobody knows. */
static int write_password_file(const char *data_dir, const char *path, const char *password) {
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -errno;
  int r = 0;
  if (fchmod(fd, 0600) != 0) r = -errno;
  if (r == 0) r = write_all(fd, password, strlen(password));
  if (r == 0) r = write_all(fd, "\n", 1);
  if (r == 0 && fsync(fd) != 0) r = -errno;
  if (close(fd) != 0 && r == 0) r = -errno;
  if (r != 0) {
    unlink(path);
    return r;
  }
  /* The directory entry too; failure here is not worth refusing to start. */
  int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return 0;
}

/* ---- the store's part ------------------------------------------------------------------ */

static int txn_admin_create(store_txn_t *t, void *hash) {
  return store_admin_create(t, AUTH_ADMIN_NAME, hash);
}

static int txn_session_put(store_txn_t *t, void *session) { return store_session_put(t, session); }

/* The other nodes drop the session from their memory when they hear it. */
#define AUTH_REVOKED_CHANNEL "admin_session_revoked"

static void on_session_revoked(const char *channel, const char *payload, void *ctx);

static int txn_session_delete(store_txn_t *t, void *hash) {
  int r = store_session_delete(t, hash);
  if (r == 0) r = store_notify(t, AUTH_REVOKED_CHANNEL, hash);
  return r;
}

static int session_delete(store_t *store, const char *hash) {
  return store_run_txn(store, "end an admin session", txn_session_delete, (void *)hash);
}

static int admin_count(store_t *store, int64_t *count) {
  store_txn_t *t;
  int r = store_read_begin(store, "count admin accounts", &t);
  if (r < 0) return r;
  r = store_admin_count(t, count);
  store_read_end(t);
  return r;
}

static int admin_hash(store_t *store, const char *user, char **hash) {
  store_txn_t *t;
  int r = store_read_begin(store, "admin login", &t);
  if (r < 0) return r;
  r = store_admin_get_hash(t, user, hash);
  store_read_end(t);
  return r;
}

static int create_admin(store_t *store, const char *hash, char *err, size_t errlen) {
  int r = store_run_txn(store, "create the admin account", txn_admin_create, (void *)hash);
  if (r != 0)
    set_err(err, errlen, "cannot create the administrator account \"%s\" in the store: %s",
            AUTH_ADMIN_NAME, store_last_error(store));
  return r;
}

static int bootstrap(store_t *store, const char *data_dir, auth_bootstrap_t *boot, char *err,
                     size_t errlen) {
  int64_t count = 0;
  int r = admin_count(store, &count);
  if (r != 0) {
    set_err(err, errlen, "cannot count administrator accounts in the store: %s",
            store_last_error(store));
    return r;
  }
  if (count > 0) return 0;

  const char *env = getenv(AUTH_PASSWORD_ENV);
  char *generated = NULL;
  const char *password = env;
  if (env) {
    if (strlen(env) < AUTH_MIN_PASSWORD_LENGTH) {
      set_err(err, errlen,
              "%s is shorter than %d characters; set a longer password for the first "
              "administrator, or unset it to have one generated",
              AUTH_PASSWORD_ENV, AUTH_MIN_PASSWORD_LENGTH);
      return -EINVAL;
    }
  } else {
    r = secret_random_token(AUTH_GENERATED_PASSWORD_BYTES, &generated);
    if (r != 0) {
      set_err(err, errlen, "cannot generate a password for the first administrator");
      return r;
    }
    password = generated;
  }

  char *hash = NULL;
  r = secret_password_hash(password, &hash);
  if (r != 0) {
    set_err(err, errlen, "cannot hash the first administrator's password (out of memory?)");
    goto out;
  }

  char path[sizeof boot->password_file];
  if (generated) {
    int n = snprintf(path, sizeof path, "%s/%s", data_dir, AUTH_INITIAL_PASSWORD_FILE);
    if (n < 0 || (size_t)n >= sizeof path) {
      set_err(err, errlen, "the data directory path is too long");
      r = -ENAMETOOLONG;
      goto out;
    }
    r = write_password_file(data_dir, path, generated);
    if (r != 0) {
      set_err(err, errlen,
              "cannot write the first administrator's password to %s: %s; check that the data "
              "directory exists and is writable by this user", path, strerror(-r));
      goto out;
    }
  }

  r = create_admin(store, hash, err, errlen);
  if (r != 0) {
    if (generated) unlink(path);
    goto out;
  }
  if (boot) {
    boot->created = true;
    boot->password_from_env = generated == NULL;
    if (generated) {
      copy_str(boot->password_file, sizeof boot->password_file, path);
      boot->password = generated;
      generated = NULL;
    }
  }
out:
  if (hash) {
    sodium_memzero(hash, strlen(hash));
    free(hash);
  }
  if (generated) {
    sodium_memzero(generated, strlen(generated));
    free(generated);
  }
  return r;
}

/* ---- init and shutdown ------------------------------------------------------------ */

typedef struct load_ctx {
  int64_t now;
  char (*evicted)[65];
  size_t n_evicted, cap_evicted;
  int error;
} load_ctx_t;

/* Runs inside the store's transaction, so it must not call the store: hashes
 * pushed out of a full table are deleted afterwards. */
static void load_session(const store_session_t *s, void *ctxp) {
  load_ctx_t *ctx = ctxp;
  char evicted[65];
  pthread_mutex_lock(&auth.lock);
  slot_insert(s, ctx->now, evicted);
  pthread_mutex_unlock(&auth.lock);
  if (!evicted[0]) return;
  if (ctx->n_evicted == ctx->cap_evicted) {
    size_t cap = ctx->cap_evicted ? 2 * ctx->cap_evicted : 64;
    void *p = realloc(ctx->evicted, cap * sizeof *ctx->evicted);
    if (!p) {
      ctx->error = -ENOMEM;
      return;
    }
    ctx->evicted = p;
    ctx->cap_evicted = cap;
  }
  memcpy(ctx->evicted[ctx->n_evicted++], evicted, 65);
}

/* Forgets expired sessions, then loads the live ones. */
static int txn_load_sessions(store_txn_t *t, void *vctx) {
  load_ctx_t *ctx = vctx;
  /* A retried transaction must not insert a session twice: start over. */
  pthread_mutex_lock(&auth.lock);
  memset(auth.slots, 0, AUTH_SESSION_SLOTS * sizeof *auth.slots);
  auth.n_sessions = 0;
  pthread_mutex_unlock(&auth.lock);
  ctx->n_evicted = 0;
  int r = store_session_purge(t, ctx->now);
  return r < 0 ? r : store_session_each(t, load_session, ctx);
}

static void free_tables(void) {
  if (auth.slots) {
    sodium_memzero(auth.slots, AUTH_SESSION_SLOTS * sizeof *auth.slots);
    free(auth.slots);
  }
  if (auth.dummy_hash) free(auth.dummy_hash);
  auth.slots = NULL;
  auth.dummy_hash = NULL;
  auth.n_sessions = 0;
  auth.store = NULL;
}

int auth_init(store_t *store, const char *data_dir, auth_bootstrap_t *boot, char *err,
              size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (boot) memset(boot, 0, sizeof *boot);
  if (!store || !data_dir || !data_dir[0]) {
    set_err(err, errlen, "authentication needs a store and a data directory");
    return -EINVAL;
  }
  pthread_mutex_lock(&auth.lock);
  if (auth.ready || auth.slots) {
    pthread_mutex_unlock(&auth.lock);
    set_err(err, errlen, "authentication is already initialised");
    return -EALREADY;
  }
  auth.slots = calloc(AUTH_SESSION_SLOTS, sizeof *auth.slots);
  pthread_mutex_unlock(&auth.lock);

  int r = 0;
  char *dummy_password = NULL;
  if (!auth.slots) {
    set_err(err, errlen, "out of memory for the session table");
    r = -ENOMEM;
    goto fail;
  }
  /* A real Argon2id hash of a password nobody knows: an unknown user name is
   * verified against it, so it costs what a wrong password costs. */
  r = secret_random_token(AUTH_TOKEN_BYTES, &dummy_password);
  if (r == 0) r = secret_password_hash(dummy_password, &auth.dummy_hash);
  if (dummy_password) {
    sodium_memzero(dummy_password, strlen(dummy_password));
    free(dummy_password);
  }
  if (r != 0) {
    set_err(err, errlen, "cannot prepare password checking (out of memory?)");
    goto fail;
  }

  r = bootstrap(store, data_dir, boot, err, errlen);
  if (r != 0) goto fail;

  load_ctx_t ctx = {.now = wall_now()};
  r = store_run_txn(store, "load admin sessions", txn_load_sessions, &ctx);
  if (r == 0) r = ctx.error;
  for (size_t i = 0; r == 0 && i < ctx.n_evicted; i++) (void)session_delete(store, ctx.evicted[i]);
  free(ctx.evicted);
  if (r != 0) {
    set_err(err, errlen, "cannot load sessions from the store: %s", store_last_error(store));
    goto fail;
  }

  pthread_mutex_lock(&auth.lock);
  auth.store = store;
  auth.ready = true;
  pthread_mutex_unlock(&auth.lock);
  /* Subscriptions last as long as the store (one per store). */
  static store_t *listening;
  if (listening != store && store_listen(store, AUTH_REVOKED_CHANNEL, on_session_revoked, NULL) == 0)
    listening = store;
  return 0;

fail:
  pthread_mutex_lock(&auth.lock);
  free_tables();
  pthread_mutex_unlock(&auth.lock);
  if (boot) auth_bootstrap_clear(boot);
  return r;
}

void auth_bootstrap_clear(auth_bootstrap_t *boot) {
  if (!boot) return;
  if (boot->password) {
    sodium_memzero(boot->password, strlen(boot->password));
    free(boot->password);
  }
  memset(boot, 0, sizeof *boot);
}

void auth_shutdown(void) {
  pthread_mutex_lock(&auth.lock);
  auth.ready = false;
  /* A login in the middle of its password check still uses the dummy hash. */
  while (auth.verifying > 0) pthread_cond_wait(&auth.verify_done, &auth.lock);
  free_tables();
  pthread_mutex_unlock(&auth.lock);
}

/* Failed or refused admin logins, for /metrics. */
static atomic_uint_fast64_t login_failures;

void auth_write_metrics(FILE *f, void *ctx) {
  fprintf(f,
          "# HELP atrium_login_failures_total Failed or refused admin logins.\n"
          "# TYPE atrium_login_failures_total counter\n"
          "atrium_login_failures_total %llu\n",
          (unsigned long long)atomic_load(&login_failures));
}

/* ---- login, check, logout ------------------------------------------------------------ */

static int create_session(store_t *store, const char *user, auth_session_t *out) {
  char *token = NULL, *csrf = NULL;
  int r = secret_random_token(AUTH_TOKEN_BYTES, &token);
  if (r == 0) r = secret_random_token(AUTH_CSRF_BYTES, &csrf);
  store_session_t s;
  memset(&s, 0, sizeof s);
  if (r == 0 && strlen(csrf) >= sizeof s.csrf) r = -EOVERFLOW;
  if (r == 0) {
    secret_sha256_hex(token, s.token_hash);
    copy_str(s.admin, sizeof s.admin, user);
    copy_str(s.csrf, sizeof s.csrf, csrf);
    s.created = wall_now();
    s.expires = s.created + AUTH_SESSION_SECONDS;
    r = store_run_txn(store, "start an admin session", txn_session_put, &s);
  }
  char evicted[65] = "";
  if (r == 0) {
    pthread_mutex_lock(&auth.lock);
    if (auth.ready)
      slot_insert(&s, s.created, evicted);
    else
      r = -ECANCELED;
    pthread_mutex_unlock(&auth.lock);
    if (r != 0) (void)session_delete(store, s.token_hash);
  }
  if (evicted[0]) (void)session_delete(store, evicted);
  if (r == 0) {
    out->token = token;
    token = NULL;
    copy_str(out->csrf, sizeof out->csrf, s.csrf);
    copy_str(out->admin, sizeof out->admin, s.admin);
    out->expires = s.expires;
  }
  if (token) {
    sodium_memzero(token, strlen(token));
    free(token);
  }
  if (csrf) {
    sodium_memzero(csrf, strlen(csrf));
    free(csrf);
  }
  sodium_memzero(&s, sizeof s);
  return r;
}

int auth_login(const char *user, const char *password, const char *client_addr,
               auth_session_t *out, int *retry_after) {
  if (retry_after) *retry_after = 0;
  if (out) memset(out, 0, sizeof *out);
  if (!user || !password || !out) return -EINVAL;

  pthread_mutex_lock(&auth.lock);
  if (!auth.ready) {
    pthread_mutex_unlock(&auth.lock);
    return -EINVAL;
  }
  pthread_mutex_unlock(&auth.lock);
  /* Refused before the password is looked at, and counted on the monotonic
   * clock: setting the system time must not lift a delay or stretch one. */
  int wait = 0;
  throttle_t *thr = throttle_logins();
  if (throttle_begin(thr, AUTH_THROTTLE_REALM, user, client_addr, throttle_now_ms(), &wait) !=
      THROTTLE_GO) {
    if (retry_after) *retry_after = wait;
    atomic_fetch_add(&login_failures, 1);
    return -EAGAIN;
  }
  pthread_mutex_lock(&auth.lock);
  while (auth.ready && auth.verifying >= AUTH_MAX_CONCURRENT_VERIFY)
    pthread_cond_wait(&auth.verify_done, &auth.lock);
  if (!auth.ready) {
    pthread_mutex_unlock(&auth.lock);
    throttle_end(thr, AUTH_THROTTLE_REALM, user, client_addr, THROTTLE_ERROR, throttle_now_ms());
    return -EINVAL;
  }
  auth.verifying++;
  store_t *store = auth.store;
  const char *dummy = auth.dummy_hash;
  pthread_mutex_unlock(&auth.lock);

  /* Every path below does exactly one Argon2id verification, so the time
   * taken does not tell whether the user name exists. */
  char *hash = NULL;
  int r = strlen(user) < sizeof out->admin ? admin_hash(store, user, &hash) : -ENOENT;
  int verdict;
  if (r == 0) {
    verdict = secret_password_verify(hash, password);
  } else {
    (void)secret_password_verify(dummy, password);
    verdict = r == -ENOENT ? -EACCES : r;
  }
  free(hash);

  pthread_mutex_lock(&auth.lock);
  auth.verifying--;
  pthread_cond_broadcast(&auth.verify_done);
  pthread_mutex_unlock(&auth.lock);
  throttle_end(thr, AUTH_THROTTLE_REALM, user, client_addr,
               verdict == 0 ? THROTTLE_OK : verdict == -EACCES ? THROTTLE_FAILED : THROTTLE_ERROR,
               throttle_now_ms());
  if (verdict == -EACCES) atomic_fetch_add(&login_failures, 1);
  if (verdict != 0) return verdict == -EACCES ? -EACCES : -EIO;

  return create_session(store, user, out);
}

void auth_session_clear(auth_session_t *s) {
  if (!s) return;
  if (s->token) {
    sodium_memzero(s->token, strlen(s->token));
    free(s->token);
  }
  sodium_memzero(s, sizeof *s);
}

/* A session this node has not seen: started on another node of the
 * cluster (or before a lost notification emptied the table). Found in the
 * store, it joins the table; the table is a cache of the store, so a
 * session pushed out of it to make room stays in the store. Called without
 * the lock; returns with it held, and the slot or -1. */
static ssize_t session_from_store(const char *hash, int64_t now) {
  store_t *store;
  pthread_mutex_lock(&auth.lock);
  store = auth.ready ? auth.store : NULL;
  pthread_mutex_unlock(&auth.lock);
  store_session_t s;
  int r = -ENOENT;
  store_txn_t *t;
  if (store && store_read_begin(store, "find an admin session", &t) == 0) {
    r = store_session_get(t, hash, &s);
    store_read_end(t);
  }
  pthread_mutex_lock(&auth.lock);
  if (r != 0 || !auth.ready || s.expires <= now) return -1;
  char evicted[65];
  slot_insert(&s, now, evicted);
  sodium_memzero(&s, sizeof s);
  return slot_find(hash);
}

/* The store's listener thread: a session ended on another node, or NULL
 * after a lost connection (any may have ended: forget them all; the live
 * ones come back from the store at their next request). */
static void on_session_revoked(const char *channel, const char *payload, void *ctx) {
  (void)channel;
  (void)ctx;
  pthread_mutex_lock(&auth.lock);
  if (auth.ready && !payload) {
    sodium_memzero(auth.slots, AUTH_SESSION_SLOTS * sizeof *auth.slots);
    auth.n_sessions = 0;
  } else if (auth.ready && strlen(payload) == 64) {
    ssize_t i = slot_find(payload);
    if (i >= 0) slot_remove((size_t)i);
  }
  pthread_mutex_unlock(&auth.lock);
}

int auth_check_token(const char *token, auth_identity_t *who) {
  if (who) memset(who, 0, sizeof *who);
  if (!token || !token[0]) return -EACCES;
  char hash[65];
  secret_sha256_hex(token, hash);
  int64_t now = wall_now();

  pthread_mutex_lock(&auth.lock);
  ssize_t i = auth.ready ? slot_find(hash) : -1;
  if (i < 0) {
    pthread_mutex_unlock(&auth.lock);
    i = session_from_store(hash, now);
  }
  if (i < 0) {
    pthread_mutex_unlock(&auth.lock);
    return -EACCES;
  }
  const session_slot_t *slot = &auth.slots[i];
  if (slot->expires <= now) {
    slot_remove((size_t)i);
    store_t *store = auth.store;
    pthread_mutex_unlock(&auth.lock);
    (void)session_delete(store, hash);
    return -EACCES;
  }
  if (who) {
    copy_str(who->admin, sizeof who->admin, slot->admin);
    copy_str(who->csrf, sizeof who->csrf, slot->csrf);
    who->expires = slot->expires;
  }
  pthread_mutex_unlock(&auth.lock);
  return 0;
}

int auth_logout(const char *token) {
  if (!token || !token[0]) return -EACCES;
  char hash[65];
  secret_sha256_hex(token, hash);

  pthread_mutex_lock(&auth.lock);
  ssize_t i = auth.ready ? slot_find(hash) : -1;
  if (i < 0) {
    pthread_mutex_unlock(&auth.lock);
    i = session_from_store(hash, wall_now());
  }
  if (i < 0) {
    pthread_mutex_unlock(&auth.lock);
    return -EACCES;
  }
  slot_remove((size_t)i);
  store_t *store = auth.store;
  pthread_mutex_unlock(&auth.lock);
  /* The session is gone for this run either way; the store must forget it
   * too, or it would come back at the next start. */
  int r = session_delete(store, hash);
  return r == -ENOENT ? 0 : r;
}

/* ---- several admin accounts ---------------------------------------------------------- */

typedef struct end_ctx {
  const char *admin;
  const char *keep_hash;
  int64_t ended;
} end_ctx_t;

static int txn_end_sessions(store_txn_t *t, void *vctx) {
  end_ctx_t *c = vctx;
  return store_session_delete_admin(t, c->admin, c->keep_hash, &c->ended);
}

int auth_end_sessions(const char *admin, const char *keep_token, int64_t *ended) {
  if (ended) *ended = 0;
  if (!admin) return -EINVAL;
  char keep[65] = "";
  if (keep_token && keep_token[0]) secret_sha256_hex(keep_token, keep);
  int64_t in_memory = 0;
  pthread_mutex_lock(&auth.lock);
  store_t *store = auth.ready ? auth.store : NULL;
  for (size_t i = 0; store && i < AUTH_SESSION_SLOTS;) {
    session_slot_t *s = &auth.slots[i];
    /* After a removal slot i holds a shifted entry: look at it again. */
    if (s->used && strcmp(s->admin, admin) == 0 && (!keep[0] || strcmp(s->token_hash, keep) != 0)) {
      slot_remove(i);
      in_memory++;
    } else {
      i++;
    }
  }
  pthread_mutex_unlock(&auth.lock);
  if (!store) return -EINVAL;
  end_ctx_t c = {.admin = admin, .keep_hash = keep[0] ? keep : NULL};
  int r = store_run_txn(store, "end an admin's sessions", txn_end_sessions, &c);
  if (ended) *ended = c.ended > in_memory ? c.ended : in_memory;
  return r;
}

int64_t auth_session_count(const char *admin) {
  int64_t n = 0, now = wall_now();
  pthread_mutex_lock(&auth.lock);
  for (size_t i = 0; auth.ready && i < AUTH_SESSION_SLOTS; i++)
    if (auth.slots[i].used && auth.slots[i].expires > now && strcmp(auth.slots[i].admin, admin) == 0)
      n++;
  pthread_mutex_unlock(&auth.lock);
  return n;
}
