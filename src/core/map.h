/* A hash map from byte-string keys to pointers (open addressing, linear
 * probing, tombstone-free deletion by backward shift). Keys are copied; the
 * values belong to the caller. Not thread-safe: one owner (a loop) uses it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct map map_t;

map_t *map_new(void);
void map_free(map_t *m); /* accepts NULL; the values are not freed */
/* Sets key -> value (replacing). 0 or -ENOMEM. */
int map_put(map_t *m, const void *key, size_t len, void *value);
void *map_get(const map_t *m, const void *key, size_t len);
/* Removes key; returns its value, or NULL when absent. */
void *map_del(map_t *m, const void *key, size_t len);
size_t map_count(const map_t *m);
/* Calls fn for every entry (fn must not change the map). */
void map_each(const map_t *m, void (*fn)(const void *key, size_t len, void *value, void *ctx),
              void *ctx);

/* For NUL-terminated strings and 64-bit integers. */
static inline int map_put_str(map_t *m, const char *k, void *v) {
  size_t n = 0;
  while (k[n]) n++;
  return map_put(m, k, n, v);
}
static inline void *map_get_str(const map_t *m, const char *k) {
  size_t n = 0;
  while (k[n]) n++;
  return map_get(m, k, n);
}
static inline void *map_del_str(map_t *m, const char *k) {
  size_t n = 0;
  while (k[n]) n++;
  return map_del(m, k, n);
}
static inline int map_put_u64(map_t *m, uint64_t k, void *v) { return map_put(m, &k, sizeof k, v); }
static inline void *map_get_u64(const map_t *m, uint64_t k) { return map_get(m, &k, sizeof k); }
static inline void *map_del_u64(map_t *m, uint64_t k) { return map_del(m, &k, sizeof k); }
