#include "core/map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
  uint64_t hash; /* 0: empty */
  void *key;
  size_t len;
  void *value;
} slot_t;

struct map {
  slot_t *slots;
  size_t cap, count; /* cap a power of two */
};

/* FNV-1a, never 0 (0 marks an empty slot). */
static uint64_t hash_of(const void *key, size_t len) {
  const unsigned char *p = key;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h ? h : 1;
}

map_t *map_new(void) {
  map_t *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->cap = 16;
  if (!(m->slots = calloc(m->cap, sizeof *m->slots))) {
    free(m);
    return NULL;
  }
  return m;
}

void map_free(map_t *m) {
  if (!m) return;
  for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
  free(m->slots);
  free(m);
}

static slot_t *find(const map_t *m, uint64_t h, const void *key, size_t len) {
  for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    slot_t *s = &m->slots[i];
    if (!s->hash) return s;
    if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s;
  }
}

static int grow(map_t *m) {
  size_t cap = m->cap * 2;
  slot_t *old = m->slots, *slots = calloc(cap, sizeof *slots);
  if (!slots) return -ENOMEM;
  size_t oldcap = m->cap;
  m->slots = slots;
  m->cap = cap;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].hash) *find(m, old[i].hash, old[i].key, old[i].len) = old[i];
  free(old);
  return 0;
}

int map_put(map_t *m, const void *key, size_t len, void *value) {
  if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0) return -ENOMEM;
  uint64_t h = hash_of(key, len);
  slot_t *s = find(m, h, key, len);
  if (s->hash) {
    s->value = value;
    return 0;
  }
  void *copy = malloc(len ? len : 1);
  if (!copy) return -ENOMEM;
  memcpy(copy, key, len);
  *s = (slot_t){.hash = h, .key = copy, .len = len, .value = value};
  m->count++;
  return 0;
}

void *map_get(const map_t *m, const void *key, size_t len) {
  slot_t *s = find(m, hash_of(key, len), key, len);
  return s->hash ? s->value : NULL;
}

void *map_del(map_t *m, const void *key, size_t len) {
  slot_t *s = find(m, hash_of(key, len), key, len);
  if (!s->hash) return NULL;
  void *value = s->value;
  free(s->key);
  size_t i = (size_t)(s - m->slots), mask = m->cap - 1;
  /* Backward shift: move later entries of the run into the hole when their
   * home slot allows, so lookups never need tombstones. */
  for (size_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
    size_t home = m->slots[j].hash & mask;
    bool between = i <= j ? (home <= i || home > j) : (home <= i && home > j);
    if (between) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i] = (slot_t){0};
  m->count--;
  return value;
}

size_t map_count(const map_t *m) { return m->count; }

void map_each(const map_t *m, void (*fn)(const void *key, size_t len, void *value, void *ctx),
              void *ctx) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].hash) fn(m->slots[i].key, m->slots[i].len, m->slots[i].value, ctx);
}
