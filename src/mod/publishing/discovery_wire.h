/* The UDP discovery wire format (docs/protocols/discovery.md) and the
 * per-source rate limiter: pure functions without I/O, shared by the
 * responder, atriumctl and the fuzzer. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DISCOVERY_MAGIC "ATRD"
#define DISCOVERY_VERSION 1
#define DISCOVERY_TYPE_QUERY 1
#define DISCOVERY_TYPE_ANSWER 2
#define DISCOVERY_NONCE_LEN 16
#define DISCOVERY_HEADER_LEN 24 /* magic 4, version 1, type 1, reserved 2, nonce 16 */
#define DISCOVERY_QUERY_MIN 512
#define DISCOVERY_QUERY_MAX 1024
#define DISCOVERY_DEFAULT_PORT 21730

/* Answer fields: type (1 byte), length (2 bytes, big-endian), value (UTF-8). */
enum discovery_field {
  DISCOVERY_FIELD_DOMAIN = 1,
  DISCOVERY_FIELD_URL = 2,
  DISCOVERY_FIELD_VERSION = 3,
};

/* Why a datagram was dropped; the label of atrium_discovery_dropped_total. */
typedef enum discovery_drop {
  DISCOVERY_DROP_TRUNCATED, /* shorter than DISCOVERY_QUERY_MIN */
  DISCOVERY_DROP_OVERSIZED, /* longer than DISCOVERY_QUERY_MAX */
  DISCOVERY_DROP_GARBAGE,   /* wrong magic */
  DISCOVERY_DROP_VERSION,   /* a version this server does not speak */
  DISCOVERY_DROP_TYPE,      /* not a query (an answer, or an unknown type) */
  DISCOVERY_DROP_PADDING,   /* reserved bytes or padding not zero */
  DISCOVERY_DROP_RATE,      /* over the per-source or global rate */
  DISCOVERY_DROP_TOO_LARGE, /* the answer would be larger than the query */
  DISCOVERY_DROP_COUNT,
} discovery_drop_t;

const char *discovery_drop_name(discovery_drop_t reason);

typedef struct discovery_query {
  uint8_t nonce[DISCOVERY_NONCE_LEN];
  size_t len; /* the datagram's size: the answer's upper bound */
} discovery_query_t;

/* Checks a received datagram. 0 and *out filled, or -EBADMSG with *why set. */
int discovery_parse_query(const uint8_t *buf, size_t len, discovery_query_t *out,
                          discovery_drop_t *why);

/* A query of `len` bytes (clamped to [QUERY_MIN, QUERY_MAX]) into buf (at
 * least that large). Returns the length written. */
size_t discovery_build_query(const uint8_t nonce[DISCOVERY_NONCE_LEN], uint8_t *buf, size_t len);

/* The answer to `q` into buf (room for q->len bytes). Returns its length, or
 * -EMSGSIZE when it would not fit in q->len bytes (then nothing is sent). */
int discovery_build_answer(const discovery_query_t *q, const char *domain, const char *url,
                           const char *version, uint8_t *buf, size_t buflen);

typedef struct discovery_answer {
  char domain[256];
  char url[1024];
  char version[64];
} discovery_answer_t;

/* Checks an answer against the nonce sent. 0, or -EBADMSG (malformed, or a
 * field too long for discovery_answer_t), -ESTALE (another nonce). Unknown
 * field types are skipped, so that later versions may add fields. */
int discovery_parse_answer(const uint8_t *buf, size_t len,
                           const uint8_t nonce[DISCOVERY_NONCE_LEN], discovery_answer_t *out);

/* ---- rate limiting -------------------------------------------------------------------------- */

/* Token buckets keyed by source address, in a fixed table: when it is full,
 * the least recently seen entry of the probed window is reused, so memory
 * stays bounded whatever the number of (possibly spoofed) sources. */
typedef struct discovery_limiter discovery_limiter_t;

/* slots: table size (rounded up to a power of two, at most 65536);
 * per_second: refill rate; burst: bucket size. NULL on bad arguments or OOM. */
discovery_limiter_t *discovery_limiter_new(size_t slots, unsigned per_second, unsigned burst);
void discovery_limiter_free(discovery_limiter_t *l); /* accepts NULL */
/* Takes one token from the bucket of `key` (addrlen ≤ 16 bytes) at time
 * now_ms (monotonic). true when there was one. */
bool discovery_limiter_allow(discovery_limiter_t *l, const void *key, size_t keylen,
                             uint64_t now_ms);
size_t discovery_limiter_used(const discovery_limiter_t *l);

