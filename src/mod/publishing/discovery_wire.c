/* The discovery datagrams and the rate limiter: no I/O, no globals, so that
 * the responder, atriumctl, the unit test and the fuzzer share them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mod/publishing/discovery_wire.h"

static const char *const drop_names[DISCOVERY_DROP_COUNT] = {
    [DISCOVERY_DROP_TRUNCATED] = "truncated", [DISCOVERY_DROP_OVERSIZED] = "oversized",
    [DISCOVERY_DROP_GARBAGE] = "garbage",     [DISCOVERY_DROP_VERSION] = "version",
    [DISCOVERY_DROP_TYPE] = "type",           [DISCOVERY_DROP_PADDING] = "padding",
    [DISCOVERY_DROP_RATE] = "rate_limited",   [DISCOVERY_DROP_TOO_LARGE] = "answer_too_large",
};

const char *discovery_drop_name(discovery_drop_t reason) {
  return (unsigned)reason < DISCOVERY_DROP_COUNT ? drop_names[reason] : "unknown";
}

static int drop(discovery_drop_t *why, discovery_drop_t reason) {
  if (why) *why = reason;
  return -EBADMSG;
}

int discovery_parse_query(const uint8_t *buf, size_t len, discovery_query_t *out,
                          discovery_drop_t *why) {
  /* Size first: it is the amplification guard, and it is cheap. */
  if (len > DISCOVERY_QUERY_MAX) return drop(why, DISCOVERY_DROP_OVERSIZED);
  if (len >= 4 && memcmp(buf, DISCOVERY_MAGIC, 4) != 0) return drop(why, DISCOVERY_DROP_GARBAGE);
  if (len < DISCOVERY_QUERY_MIN) return drop(why, DISCOVERY_DROP_TRUNCATED);
  if (buf[4] != DISCOVERY_VERSION) return drop(why, DISCOVERY_DROP_VERSION);
  if (buf[5] != DISCOVERY_TYPE_QUERY) return drop(why, DISCOVERY_DROP_TYPE);
  if (buf[6] || buf[7]) return drop(why, DISCOVERY_DROP_PADDING);
  /* Zero padding leaves room for version 2 to put fields there and makes
   * random bytes that happen to start with the magic stand out. */
  for (size_t i = DISCOVERY_HEADER_LEN; i < len; i++)
    if (buf[i]) return drop(why, DISCOVERY_DROP_PADDING);
  memcpy(out->nonce, buf + 8, DISCOVERY_NONCE_LEN);
  out->len = len;
  return 0;
}

size_t discovery_build_query(const uint8_t nonce[DISCOVERY_NONCE_LEN], uint8_t *buf, size_t len) {
  if (len < DISCOVERY_QUERY_MIN) len = DISCOVERY_QUERY_MIN;
  if (len > DISCOVERY_QUERY_MAX) len = DISCOVERY_QUERY_MAX;
  memset(buf, 0, len);
  memcpy(buf, DISCOVERY_MAGIC, 4);
  buf[4] = DISCOVERY_VERSION;
  buf[5] = DISCOVERY_TYPE_QUERY;
  memcpy(buf + 8, nonce, DISCOVERY_NONCE_LEN);
  return len;
}

static int put_field(uint8_t *buf, size_t cap, size_t *pos, uint8_t type, const char *value) {
  size_t n = strlen(value);
  if (n > 0xffff || *pos + 3 + n > cap) return -EMSGSIZE;
  buf[(*pos)++] = type;
  buf[(*pos)++] = (uint8_t)(n >> 8);
  buf[(*pos)++] = (uint8_t)(n & 0xff);
  memcpy(buf + *pos, value, n);
  *pos += n;
  return 0;
}

int discovery_build_answer(const discovery_query_t *q, const char *domain, const char *url,
                           const char *version, uint8_t *buf, size_t buflen) {
  size_t cap = q->len < buflen ? q->len : buflen;
  if (cap < DISCOVERY_HEADER_LEN) return -EMSGSIZE;
  memcpy(buf, DISCOVERY_MAGIC, 4);
  buf[4] = DISCOVERY_VERSION;
  buf[5] = DISCOVERY_TYPE_ANSWER;
  buf[6] = buf[7] = 0;
  memcpy(buf + 8, q->nonce, DISCOVERY_NONCE_LEN);
  size_t pos = DISCOVERY_HEADER_LEN;
  /* All or nothing: a truncated URL would send clients to the wrong place. */
  if (put_field(buf, cap, &pos, DISCOVERY_FIELD_DOMAIN, domain) < 0 ||
      put_field(buf, cap, &pos, DISCOVERY_FIELD_URL, url) < 0 ||
      put_field(buf, cap, &pos, DISCOVERY_FIELD_VERSION, version) < 0)
    return -EMSGSIZE;
  return (int)pos;
}

static int copy_field(char *dst, size_t dstlen, const uint8_t *src, size_t n) {
  if (n >= dstlen || memchr(src, 0, n)) return -EBADMSG;
  memcpy(dst, src, n);
  dst[n] = '\0';
  return 0;
}

int discovery_parse_answer(const uint8_t *buf, size_t len,
                           const uint8_t nonce[DISCOVERY_NONCE_LEN], discovery_answer_t *out) {
  memset(out, 0, sizeof *out);
  if (len < DISCOVERY_HEADER_LEN || len > DISCOVERY_QUERY_MAX || memcmp(buf, DISCOVERY_MAGIC, 4) ||
      buf[4] != DISCOVERY_VERSION || buf[5] != DISCOVERY_TYPE_ANSWER)
    return -EBADMSG;
  if (memcmp(buf + 8, nonce, DISCOVERY_NONCE_LEN) != 0) return -ESTALE;
  size_t pos = DISCOVERY_HEADER_LEN;
  bool have_url = false;
  while (pos < len) { /* each turn consumes at least 3 bytes */
    if (len - pos < 3) return -EBADMSG;
    uint8_t type = buf[pos];
    size_t n = (size_t)buf[pos + 1] << 8 | buf[pos + 2];
    pos += 3;
    if (n > len - pos) return -EBADMSG;
    int r = 0;
    switch (type) {
    case DISCOVERY_FIELD_DOMAIN: r = copy_field(out->domain, sizeof out->domain, buf + pos, n); break;
    case DISCOVERY_FIELD_URL:
      r = copy_field(out->url, sizeof out->url, buf + pos, n);
      have_url = true;
      break;
    case DISCOVERY_FIELD_VERSION:
      r = copy_field(out->version, sizeof out->version, buf + pos, n);
      break;
    default: break;
    }
    if (r < 0) return r;
    pos += n;
  }
  return have_url ? 0 : -EBADMSG;
}

/* ---- rate limiter ------------------------------------------------------------------------------ */

#define LIMITER_PROBE 8       /* entries looked at per lookup: the cost bound */
#define MILLI 1000            /* tokens are counted in thousandths */
#define KEY_MAX 16

typedef struct bucket {
  uint8_t key[KEY_MAX];
  uint8_t keylen; /* 0: free */
  uint32_t tokens; /* thousandths */
  uint64_t last_ms;
} bucket_t;

struct discovery_limiter {
  size_t mask;
  size_t used;
  unsigned per_second, burst;
  bucket_t *b;
};

discovery_limiter_t *discovery_limiter_new(size_t slots, unsigned per_second, unsigned burst) {
  if (slots == 0 || slots > 65536 || per_second == 0 || burst == 0 || burst > 1000000)
    return NULL;
  size_t n = LIMITER_PROBE;
  while (n < slots) n <<= 1;
  discovery_limiter_t *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->b = calloc(n, sizeof *l->b);
  if (!l->b) {
    free(l);
    return NULL;
  }
  l->mask = n - 1;
  l->per_second = per_second;
  l->burst = burst;
  return l;
}

void discovery_limiter_free(discovery_limiter_t *l) {
  if (!l) return;
  free(l->b);
  free(l);
}

size_t discovery_limiter_used(const discovery_limiter_t *l) {
  return l ? l->used : 0;
}

/* FNV-1a: the key is an address, and a collision only shares a bucket. */
static size_t hash_key(const uint8_t *k, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 1099511628211ull;
  return (size_t)(h ^ (h >> 29));
}

bool discovery_limiter_allow(discovery_limiter_t *l, const void *key, size_t keylen,
                             uint64_t now_ms) {
  if (!l || keylen == 0 || keylen > KEY_MAX) return false;
  const uint8_t *k = key;
  size_t start = hash_key(k, keylen);
  bucket_t *hit = NULL, *victim = NULL;
  for (size_t i = 0; i < LIMITER_PROBE; i++) {
    bucket_t *b = &l->b[(start + i) & l->mask];
    if (b->keylen == keylen && memcmp(b->key, k, keylen) == 0) {
      hit = b;
      break;
    }
    if (!victim || (victim->keylen && (!b->keylen || b->last_ms < victim->last_ms))) victim = b;
  }
  if (!hit) {
    hit = victim;
    if (!hit->keylen) l->used++;
    memcpy(hit->key, k, keylen);
    hit->keylen = (uint8_t)keylen;
    hit->tokens = l->burst * MILLI;
    hit->last_ms = now_ms;
  }
  if (now_ms > hit->last_ms) {
    uint64_t add = (now_ms - hit->last_ms) * l->per_second; /* ms × per second = thousandths */
    uint64_t t = hit->tokens + add;
    hit->tokens = t > (uint64_t)l->burst * MILLI ? l->burst * MILLI : (uint32_t)t;
  }
  /* A clock that went backwards (it should not: monotonic) refills nothing. */
  hit->last_ms = now_ms > hit->last_ms ? now_ms : hit->last_ms;
  if (hit->tokens < MILLI) return false;
  hit->tokens -= MILLI;
  return true;
}
