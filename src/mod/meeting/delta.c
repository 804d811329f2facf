/* See delta.h. A scroll moves rows; columns beside the scrolled part (a
 * side bar, a window's frame) do not move, which is why rows are hashed in
 * bands: each band finds its own offset, and a band that did not scroll is
 * unchanged or sent as it is. Rows are compared by their 64-bit hashes
 * alone; a collision (2^-64 a pair) would leave a band row stale until the
 * lossless refresh. */
#include "mod/meeting/delta.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define MIN_VOTES 3 /* rows that agree on an offset before it counts as a scroll */
#define MIN_RUN 4   /* rows a copy must move to be worth its 12 bytes */

unsigned delta_bands(unsigned w, unsigned *band_w) {
  unsigned n = (w + DELTA_BAND_MAX - 1) / DELTA_BAND_MAX;
  if (n == 0) n = 1;
  unsigned bw = (w + n - 1) / n;
  bw = (bw + 15) / 16 * 16;
  if (band_w) *band_w = bw;
  return (w + bw - 1) / bw;
}

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v;
  h *= 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
  uint64_t h = 0x243f6a8885a308d3ull ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    h = mix(h, v);
  }
  uint64_t tail = 0;
  memcpy(&tail, p + i, n - i);
  return mix(h, tail);
}

void delta_row_hashes(const uint8_t *rgb, unsigned w, unsigned h, uint64_t *out) {
  unsigned bw, nb = delta_bands(w, &bw);
  for (unsigned y = 0; y < h; y++) {
    const uint8_t *row = rgb + (size_t)y * w * 3;
    for (unsigned b = 0; b < nb; b++) {
      unsigned x0 = b * bw, x1 = x0 + bw < w ? x0 + bw : w;
      out[(size_t)y * nb + b] = hash_bytes(row + (size_t)x0 * 3, (size_t)(x1 - x0) * 3);
    }
  }
}

typedef struct keyed {
  uint64_t hash;
  unsigned row;
} keyed_t;

static int by_hash(const void *a, const void *b) {
  const keyed_t *x = a, *y = b;
  if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
  return x->row < y->row ? -1 : x->row > y->row;
}

/* The row of the base whose hash is h, when exactly one has it; -1. */
static long unique_row(const keyed_t *sorted, unsigned n, uint64_t h) {
  unsigned lo = 0, hi = n;
  while (lo < hi) {
    unsigned mid = lo + (hi - lo) / 2;
    if (sorted[mid].hash < h)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo >= n || sorted[lo].hash != h) return -1;
  if (lo + 1 < n && sorted[lo + 1].hash == h) return -1;
  return sorted[lo].row;
}

static void add_copy(delta_plan_t *p, unsigned x, unsigned w, unsigned sy, unsigned dy,
                     unsigned h) {
  /* The band beside it moved the same rows by the same offset: one copy. */
  for (unsigned i = 0; i < p->ncopies; i++) {
    delta_copy_t *c = &p->copies[i];
    if (c->dx + c->w == x && c->sy == sy && c->dy == dy && c->h == h) {
      c->w = (uint16_t)(c->w + w);
      return;
    }
  }
  p->copies[p->ncopies++] =
      (delta_copy_t){.sx = (uint16_t)x, .sy = (uint16_t)sy, .w = (uint16_t)w, .h = (uint16_t)h,
                     .dx = (uint16_t)x, .dy = (uint16_t)dy};
}

static int add_rect(delta_plan_t *p, unsigned x, unsigned w, unsigned y, unsigned h) {
  p->changed_px += (uint64_t)w * h;
  for (unsigned i = 0; i < p->nrects; i++) {
    delta_rect_t *r = &p->rects[i];
    if (r->x + r->w == x && r->y == y && r->h == h) {
      r->w = (uint16_t)(r->w + w);
      return 0;
    }
  }
  if (p->nrects == DELTA_RECTS_MAX) return -1;
  p->rects[p->nrects++] =
      (delta_rect_t){.x = (uint16_t)x, .y = (uint16_t)y, .w = (uint16_t)w, .h = (uint16_t)h};
  return 0;
}

int delta_plan(const uint64_t *base_hash, const uint64_t *cur_hash, unsigned w, unsigned h,
               unsigned grain, delta_plan_t *out) {
  out->ncopies = out->nrects = 0;
  out->changed_px = 0;
  if (grain < 1) grain = 1;
  unsigned bw, nb = delta_bands(w, &bw);
  keyed_t *sorted = malloc((size_t)h * sizeof *sorted);
  unsigned *votes = calloc(2 * (size_t)h + 1, sizeof *votes);
  unsigned *src = malloc((size_t)h * sizeof *src); /* the base row each row shows after the copies */
  if (!sorted || !votes || !src) {
    free(sorted);
    free(votes);
    free(src);
    return -ENOMEM;
  }
  bool overflow = false;
  for (unsigned b = 0; b < nb && !overflow; b++) {
    unsigned x0 = b * bw, bandw = x0 + bw < w ? bw : w - x0;
#define BASE(y) base_hash[(size_t)(y) * nb + b]
#define CUR(y) cur_hash[(size_t)(y) * nb + b]
    bool changed = false;
    for (unsigned y = 0; y < h && !changed; y++) changed = CUR(y) != BASE(y);
    if (!changed) continue;
    for (unsigned y = 0; y < h; y++) {
      sorted[y] = (keyed_t){.hash = BASE(y), .row = y};
      src[y] = y;
    }
    qsort(sorted, h, sizeof *sorted, by_hash);
    memset(votes, 0, (2 * (size_t)h + 1) * sizeof *votes);
    long best = 0;
    unsigned best_votes = 0;
    for (unsigned y = 0; y < h; y++) {
      if (CUR(y) == BASE(y)) continue;
      long from = unique_row(sorted, h, CUR(y));
      if (from < 0) continue;
      long off = from - (long)y;
      if (off == 0 || off % (long)grain) continue;
      unsigned v = ++votes[off + h];
      if (v > best_votes) {
        best_votes = v;
        best = off;
      }
    }
    if (best_votes >= MIN_VOTES) {
      /* Runs of rows that equal the base's rows `best` away. */
      unsigned y = 0;
      while (y < h) {
        long s = (long)y + best;
        if (s < 0 || s >= (long)h || CUR(y) != BASE(s)) {
          y++;
          continue;
        }
        unsigned a = y;
        bool moved = false;
        while (y < h && (long)y + best >= 0 && (long)y + best < (long)h && CUR(y) == BASE(y + best)) {
          moved |= CUR(y) != BASE(y);
          y++;
        }
        unsigned a2 = (a + grain - 1) / grain * grain, b2 = y / grain * grain;
        if (!moved || b2 < a2 + MIN_RUN || out->ncopies == DELTA_COPIES_MAX) continue;
        add_copy(out, x0, bandw, (unsigned)((long)a2 + best), a2, b2 - a2);
        for (unsigned k = a2; k < b2; k++) src[k] = (unsigned)((long)k + best);
      }
    }
    /* What still differs, in steps of DELTA_ROW_STEP rows. */
    unsigned run = 0;
    bool in_run = false;
    for (unsigned step = 0; step < h; step += DELTA_ROW_STEP) {
      unsigned end = step + DELTA_ROW_STEP < h ? step + DELTA_ROW_STEP : h;
      bool dirty = false;
      for (unsigned k = step; k < end && !dirty; k++) dirty = CUR(k) != BASE(src[k]);
      if (dirty && !in_run) {
        run = step;
        in_run = true;
      } else if (!dirty && in_run) {
        in_run = false;
        if (add_rect(out, x0, bandw, run, step - run) < 0) overflow = true;
      }
    }
    if (in_run && add_rect(out, x0, bandw, run, h - run) < 0) overflow = true;
#undef BASE
#undef CUR
  }
  if (overflow) {
    /* Changes too scattered to list: the caller sends the whole picture. */
    out->ncopies = out->nrects = 0;
    out->changed_px = (uint64_t)w * h;
  }
  free(sorted);
  free(votes);
  free(src);
  return 0;
}
