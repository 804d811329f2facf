/* Writes rows into a data directory's store through the store's own
 * operations, for tests and benchmarks that need what no API makes:
 * messages and journal entries of a chosen age (the retention tests move
 * time this way instead of sleeping), and many users with client tokens at
 * once (the benchmarks' 20,000 logins would otherwise each cost an Argon2
 * hash). The store must exist already (atriumd started on it once); atriumd
 * may be running (SQLite in WAL mode lets both write). DIR may also be
 * "postgresql:CONNINFO", a cluster's database (bench/cluster.sh).
 *
 *   store-tool DIR message FROM TO AGE_SECONDS DELIVERED TEXT [COUNT]
 *       prints the id; with COUNT, COUNT rows "TEXT <i>", the i-th one i
 *       seconds older, in one transaction. DELIVERED 1 marks the row and
 *       every earlier one to TO delivered, as a client's chat.received does
 *   store-tool DIR journal USER PEER AGE_SECONDS                a call entry
 *   store-tool DIR users PREFIX COUNT                            prints
 *       "<name>@<domain> <client token>" per user PREFIX1..PREFIXCOUNT
 *   store-tool DIR push USER DEVICE PLATFORM TOKEN COUNT          prints the
 *       enqueue time (Unix ms): COUNT notifications for USER's DEVICE in
 *       the push outbox in one transaction, as a burst of chats would
 *       leave them (the push benchmark's backlog) */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/secret.h"
#include "core/timefmt.h"
#include "store/pg/pg.h"
#include "store/sqlite/sqlite.h"
#include "store/store.h"

#define RT_TEXT_BYTES STORE_MESSAGE_TEXT_MAX

static int usage(void) {
  fprintf(stderr, "usage: store-tool DIR message FROM TO AGE_SECONDS DELIVERED TEXT [COUNT]\n"
                  "       store-tool DIR journal USER PEER AGE_SECONDS\n"
                  "       store-tool DIR users PREFIX COUNT\n"
                  "       store-tool DIR push USER DEVICE PLATFORM TOKEN COUNT\n");
  return 2;
}

static int64_t number(const char *s) {
  char *end;
  errno = 0;
  long long n = strtoll(s, &end, 10);
  if (errno || *end || n < 0) {
    fprintf(stderr, "store-tool: %s is not a non-negative whole number\n", s);
    exit(2);
  }
  return n;
}

static void ignore_message(const store_message_t *m, void *ctx) { (void)m, (void)ctx; }

typedef struct message_ctx {
  const char *from, *to, *text;
  int64_t created_ms;
  bool delivered;
  int64_t count; /* 0: one row of exactly text */
  int64_t id;
} message_ctx_t;

static int message_txn(store_txn_t *t, void *vctx) {
  message_ctx_t *c = vctx;
  store_user_t from, to;
  int r = store_user_get(t, c->from, &from);
  if (r == 0) r = store_user_get(t, c->to, &to);
  if (r < 0) return r;
  int64_t n = c->count ? c->count : 1;
  for (int64_t i = 0; i < n; i++) {
    char text[RT_TEXT_BYTES + 32];
    if (c->count)
      snprintf(text, sizeof text, "%s %" PRId64, c->text, i);
    else
      snprintf(text, sizeof text, "%s", c->text);
    store_message_t m = {.sender = from.id, .recipient = to.id, .text = text,
                         .created_ms = c->created_ms - i * 1000};
    time_rfc3339_ms(m.created_ms, m.time);
    if ((r = store_message_add(t, &m)) < 0) return r;
    c->id = m.id;
    if (c->delivered &&
        (r = store_messages_delivered(t, to.id, m.id, m.time, 1000000, ignore_message, NULL)) < 0)
      return r;
  }
  return 0;
}

typedef struct journal_ctx {
  const char *user, *peer;
  int64_t created_ms;
  int64_t id;
} journal_ctx_t;

static int journal_txn(store_txn_t *t, void *vctx) {
  journal_ctx_t *c = vctx;
  store_user_t u;
  int r = store_user_get(t, c->user, &u);
  if (r < 0) return r;
  store_journal_t e = {.user = u.id, .kind = "call", .direction = "out", .peer = c->peer,
                       .duration_s = 60, .answered = 1, .created_ms = c->created_ms};
  time_rfc3339_ms(c->created_ms, e.started);
  if ((r = store_journal_add(t, &e)) < 0) return r;
  c->id = e.id;
  return 0;
}

typedef struct users_ctx {
  const char *prefix;
  int64_t from, to; /* this transaction's slice */
  char domain[256];
  char (*tokens)[80];
} users_ctx_t;

static int users_txn(store_txn_t *t, void *vctx) {
  users_ctx_t *c = vctx;
  int64_t generation;
  int r = store_domain_current(t, &generation, c->domain, sizeof c->domain);
  if (r < 0) return r;
  int64_t now = (int64_t)time(NULL);
  for (int64_t i = c->from; i <= c->to; i++) {
    char name[65];
    snprintf(name, sizeof name, "%s%" PRId64, c->prefix, i);
    store_user_write_t w = {.set_name = true, .name = name, .set_enabled = true, .enabled = true};
    if ((r = store_user_insert(t, &w, NULL)) < 0) return r;
    store_user_t u;
    if ((r = store_user_get(t, name, &u)) < 0) return r;
    char *token = NULL, hash[65];
    if ((r = secret_random_token(32, &token)) < 0) return r;
    secret_sha256_hex(token, hash);
    snprintf(c->tokens[i - c->from], sizeof c->tokens[0], "%s", token);
    free(token);
    if ((r = store_token_put(t, hash, u.id, NULL, generation, now, now + 30 * 86400)) < 0)
      return r;
  }
  return 0;
}

typedef struct push_ctx {
  const char *user, *device, *platform, *token;
  int64_t count, now_ms;
} push_ctx_t;

static int push_txn(store_txn_t *t, void *vctx) {
  push_ctx_t *c = vctx;
  store_user_t u;
  int r = store_user_get(t, c->user, &u);
  if (r < 0) return r;
  for (int64_t i = 0; i < c->count; i++) {
    /* What the chat hook writes at the id_only level; the ids are unique,
     * as each row's APNs id must be. */
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char apns_id[37], collapse[32];
    snprintf(apns_id, sizeof apns_id,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    snprintf(collapse, sizeof collapse, "b%" PRId64, i);
    store_push_t p = {.user_id = u.id, .device_id = c->device, .platform = c->platform,
                      .push_token = c->token, .kind = "message", .ref_id = i + 1,
                      .peer_id = 0, .payload = "{\"kind\":\"message\"}", .apns_id = apns_id,
                      .collapse_id = collapse, .push_type = "alert", .priority = 10,
                      .created_ms = c->now_ms, .expires_ms = c->now_ms + 24LL * 3600 * 1000};
    if ((r = store_push_enqueue(t, &p)) < 0) return r;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  store_t *store;
  char err[512];
  store_options_t so = {.data_dir = argv[1]};
  const store_backend_t *backend = store_sqlite_backend();
  static const char pg_prefix[] = "postgresql:";
  if (!strncmp(argv[1], pg_prefix, sizeof pg_prefix - 1)) {
    so = (store_options_t){.conninfo = argv[1] + sizeof pg_prefix - 1};
    backend = store_pg_backend();
  }
  if (store_open(backend, &so, &store, err, sizeof err) != 0) {
    fprintf(stderr, "store-tool: %s\n", err);
    return 1;
  }
  int r = -EINVAL;
  const char *cmd = argv[2];
  if (!strcmp(cmd, "message") && (argc == 8 || argc == 9)) {
    message_ctx_t c = {.from = argv[3], .to = argv[4], .text = argv[7],
                       .created_ms = time_now_ms() - number(argv[5]) * 1000,
                       .delivered = number(argv[6]) != 0,
                       .count = argc == 9 ? number(argv[8]) : 0};
    r = store_run_txn(store, "store-tool: message", message_txn, &c);
    if (r == 0) printf("%" PRId64 "\n", c.id);
  } else if (!strcmp(cmd, "journal") && argc == 6) {
    journal_ctx_t c = {.user = argv[3], .peer = argv[4],
                       .created_ms = time_now_ms() - number(argv[5]) * 1000};
    r = store_run_txn(store, "store-tool: journal", journal_txn, &c);
    if (r == 0) printf("%" PRId64 "\n", c.id);
  } else if (!strcmp(cmd, "users") && argc == 5) {
    int64_t count = number(argv[4]);
    enum { SLICE = 1000 };
    char(*tokens)[80] = calloc(SLICE, sizeof *tokens);
    r = tokens ? 0 : -ENOMEM;
    for (int64_t from = 1; r == 0 && from <= count; from += SLICE) {
      users_ctx_t c = {.prefix = argv[3], .from = from,
                       .to = from + SLICE - 1 < count ? from + SLICE - 1 : count,
                       .tokens = tokens};
      r = store_run_txn(store, "store-tool: users", users_txn, &c);
      for (int64_t i = c.from; r == 0 && i <= c.to; i++)
        printf("%s%" PRId64 "@%s %s\n", c.prefix, i, c.domain, tokens[i - c.from]);
    }
    free(tokens);
  } else if (!strcmp(cmd, "push") && argc == 8) {
    push_ctx_t c = {.user = argv[3], .device = argv[4], .platform = argv[5], .token = argv[6],
                    .count = number(argv[7]), .now_ms = time_now_ms()};
    r = store_run_txn(store, "store-tool: push", push_txn, &c);
    if (r == 0) printf("%" PRId64 "\n", c.now_ms);
  } else {
    store_close(store);
    return usage();
  }
  if (r < 0)
    fprintf(stderr, "store-tool: %s failed: %s (%s)\n", cmd, strerror(-r),
            r == -ENOENT ? "no such user" : store_last_error(store));
  store_close(store);
  return r < 0 ? 1 : 0;
}
