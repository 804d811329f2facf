/* Screen sharing's pure image code: copy regions from the presenter, the
 * plan of what moved and changed between two pictures, and delta frames
 * applied the way a viewer applies them (docs/protocols/meeting.md),
 * compared with the picture they are meant to give. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include <cmocka.h>

#include "mod/meeting/delta.h"
#include "mod/meeting/screen.h"

#define W 640
#define H 360

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A tall page of text-like lines: glyph cells of random strokes, blank
 * gaps between lines, so most rows are unique and some are all white. */
static uint8_t *text_page(unsigned w, unsigned h, unsigned seed) {
  uint8_t *p = malloc((size_t)w * h * 3);
  memset(p, 255, (size_t)w * h * 3);
  srand(seed);
  for (unsigned y = 4; y + 16 <= h; y += 20)
    for (unsigned x = 8; x + 8 <= w - 8; x += 8)
      for (unsigned k = 0; k < 14; k++) {
        unsigned gx = x + (unsigned)rand() % 7, gy = y + 2 + (unsigned)rand() % 12;
        uint8_t *o = p + ((size_t)gy * w + gx) * 3;
        o[0] = o[1] = o[2] = (uint8_t)(rand() % 80);
      }
  return p;
}

/* The rows [top, top + h) of a page w wide. */
static uint8_t *view_of(const uint8_t *page, unsigned w, unsigned top, unsigned h) {
  uint8_t *v = malloc((size_t)w * h * 3);
  memcpy(v, page + (size_t)top * w * 3, (size_t)w * h * 3);
  return v;
}

static uint64_t *hashes(const uint8_t *rgb, unsigned w, unsigned h) {
  uint64_t *hs = malloc((size_t)h * delta_bands(w, NULL) * sizeof *hs);
  delta_row_hashes(rgb, w, h, hs);
  return hs;
}

/* The picture a viewer holds after a whole frame (its JPEG decoded). */
static uint8_t *picture_of(const uint8_t *frame, size_t len, unsigned *pw, unsigned *ph) {
  tjhandle d = tjInitDecompress();
  int w, h, sub, cs;
  assert_int_equal(tjDecompressHeader3(d, frame + SCREEN_FRAME_HEADER,
                                       (unsigned long)(len - SCREEN_FRAME_HEADER), &w, &h, &sub,
                                       &cs),
                   0);
  uint8_t *pic = malloc((size_t)w * h * 3);
  assert_int_equal(tjDecompress2(d, frame + SCREEN_FRAME_HEADER,
                                 (unsigned long)(len - SCREEN_FRAME_HEADER), pic, w, w * 3, h,
                                 TJPF_RGB, 0),
                   0);
  tjDestroy(d);
  *pw = (unsigned)w;
  *ph = (unsigned)h;
  return pic;
}

/* Applies a delta frame to pic (pw x ph) as the protocol says: every copy
 * reads the picture as it was before any copy, then the patches. */
static void apply_delta(uint8_t *pic, unsigned pw, unsigned ph, const uint8_t *f, size_t len,
                        uint32_t base) {
  assert_true(len >= SCREEN_FRAME_HEADER + SCREEN_DELTA_HEADER);
  assert_int_equal(f[2], SCREEN_DELTA);
  assert_int_equal(rd32(f + 16), base);
  unsigned nc = rd16(f + 20), np = rd16(f + 22);
  const uint8_t *p = f + SCREEN_FRAME_HEADER + SCREEN_DELTA_HEADER;
  uint8_t *before = malloc((size_t)pw * ph * 3);
  memcpy(before, pic, (size_t)pw * ph * 3);
  for (unsigned i = 0; i < nc; i++, p += 12) {
    unsigned sx = rd16(p), sy = rd16(p + 2), w = rd16(p + 4), h = rd16(p + 6), dx = rd16(p + 8),
             dy = rd16(p + 10);
    assert_true(sx + w <= pw && sy + h <= ph && dx + w <= pw && dy + h <= ph);
    for (unsigned r = 0; r < h; r++)
      memcpy(pic + ((size_t)(dy + r) * pw + dx) * 3, before + ((size_t)(sy + r) * pw + sx) * 3,
             (size_t)w * 3);
  }
  free(before);
  tjhandle d = tjInitDecompress();
  for (unsigned i = 0; i < np; i++) {
    unsigned x = rd16(p), y = rd16(p + 2), w = rd16(p + 4), h = rd16(p + 6);
    uint32_t n = rd32(p + 8);
    p += 12;
    assert_true(p + n <= f + len);
    assert_true(x + w <= pw && y + h <= ph);
    assert_int_equal(tjDecompress2(d, p, n, pic + ((size_t)y * pw + x) * 3, (int)w, (int)(pw * 3),
                                   (int)h, TJPF_RGB, 0),
                     0);
    p += n;
  }
  tjDestroy(d);
  assert_ptr_equal(p, f + len);
}

static double mean_diff(const uint8_t *a, const uint8_t *b, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += (uint64_t)abs((int)a[i] - (int)b[i]);
  return (double)sum / (double)n;
}

static uint8_t *half_of(const uint8_t *rgb, unsigned w, unsigned h) {
  uint8_t *o = malloc((size_t)(w / 2) * (h / 2) * 3);
  for (unsigned y = 0; y < h / 2; y++)
    for (unsigned x = 0; x < w / 2; x++)
      for (int c = 0; c < 3; c++) {
        const uint8_t *a = rgb + ((size_t)(2 * y) * w + 2 * x) * 3 + c;
        o[((size_t)y * (w / 2) + x) * 3 + c] = (uint8_t)((a[0] + a[3] + a[w * 3] + a[w * 3 + 3] + 2) / 4);
      }
  return o;
}

/* A scroll of 8 rows: one copy across the screen, patches only for the
 * exposed strip, a delta a small part of the whole picture, and the
 * picture it gives is the new frame (as close as JPEG gets), not one a row
 * off. */
static void scroll_is_a_copy_and_a_strip(void **state) {
  (void)state;
  uint8_t *page = text_page(W, H * 2, 1);
  uint8_t *base = view_of(page, W, 0, H), *cur = view_of(page, W, 8, H);
  uint64_t *hb = hashes(base, W, H), *hc = hashes(cur, W, H);
  delta_plan_t plan;
  assert_int_equal(delta_plan(hb, hc, W, H, 1, &plan), 0);
  assert_int_equal(plan.ncopies, 1);
  assert_int_equal(plan.copies[0].w, W);
  assert_int_equal(plan.copies[0].sy - plan.copies[0].dy, 8);
  assert_true(plan.changed_px <= (uint64_t)W * 32);
  for (unsigned i = 0; i < plan.nrects; i++) assert_true(plan.rects[i].y >= H - 32);

  uint8_t *key, *delta;
  size_t key_len, delta_len;
  assert_int_equal(screen_encode(base, W, H, SCREEN_TIER_HIGH, &key, &key_len), 0);
  assert_int_equal(screen_encode_delta(cur, W, H, SCREEN_TIER_HIGH, 41, &plan, &delta, &delta_len), 0);
  screen_frame_header(delta, SCREEN_TIER_HIGH, 42, 0, W, H, true);
  assert_true(delta_len * 8 < key_len);
  unsigned pw, ph;
  uint8_t *pic = picture_of(key, key_len, &pw, &ph);
  apply_delta(pic, pw, ph, delta, delta_len, 41);
  uint8_t *off = view_of(page, W, 9, H);
  double good = mean_diff(pic, cur, (size_t)W * H * 3), bad = mean_diff(pic, off, (size_t)W * H * 3);
  assert_true(good < 3.0);
  assert_true(bad > 4 * good);
  free(pic);
  free(off);
  free(key);
  free(delta);
  free(hb);
  free(hc);
  free(base);
  free(cur);
  free(page);
}

/* The low tier is half size: an even scroll halves exactly; an odd one
 * cannot be a copy there, and the plan says so by changing everything. */
static void low_tier_halves_even_scrolls_only(void **state) {
  (void)state;
  uint8_t *page = text_page(W, H * 2, 2);
  uint8_t *base = view_of(page, W, 0, H), *cur = view_of(page, W, 6, H);
  uint64_t *hb = hashes(base, W, H), *hc = hashes(cur, W, H);
  delta_plan_t plan;
  assert_int_equal(delta_plan(hb, hc, W, H, 2, &plan), 0);
  assert_int_equal(plan.ncopies, 1);
  uint8_t *key, *delta;
  size_t key_len, delta_len;
  assert_int_equal(screen_encode(base, W, H, SCREEN_TIER_LOW, &key, &key_len), 0);
  assert_int_equal(screen_encode_delta(cur, W, H, SCREEN_TIER_LOW, 7, &plan, &delta, &delta_len), 0);
  screen_frame_header(delta, SCREEN_TIER_LOW, 8, 0, W, H, true);
  unsigned pw, ph;
  uint8_t *pic = picture_of(key, key_len, &pw, &ph);
  assert_int_equal(pw, W / 2);
  assert_int_equal(ph, H / 2);
  apply_delta(pic, pw, ph, delta, delta_len, 7);
  /* As close as the low tier's own picture of the frame, and far from
   * the picture two half rows off. */
  uint8_t *want = half_of(cur, W, H), *direct, *off_rgb = view_of(page, W, 10, H);
  uint8_t *off = half_of(off_rgb, W, H);
  size_t direct_len;
  assert_int_equal(screen_encode(cur, W, H, SCREEN_TIER_LOW, &direct, &direct_len), 0);
  uint8_t *direct_pic = picture_of(direct, direct_len, &pw, &ph);
  size_t n = (size_t)pw * ph * 3;
  double got = mean_diff(pic, want, n), own = mean_diff(direct_pic, want, n);
  assert_true(got <= own * 1.25);
  assert_true(mean_diff(pic, off, n) > got * 1.5);
  free(direct_pic);
  free(direct);
  free(off);
  free(off_rgb);
  free(want);
  free(pic);
  free(key);
  free(delta);
  free(hc);
  free(cur);

  cur = view_of(page, W, 7, H);
  hc = hashes(cur, W, H);
  assert_int_equal(delta_plan(hb, hc, W, H, 2, &plan), 0);
  assert_int_equal(plan.ncopies, 0);
  assert_true(plan.changed_px * 2 > (uint64_t)W * H);
  assert_int_equal(delta_plan(hb, hc, W, H, 1, &plan), 0);
  assert_int_equal(plan.ncopies, 1);
  free(hb);
  free(hc);
  free(base);
  free(cur);
  free(page);
}

/* A side bar that stands still beside a scrolling page: the bar's band is
 * neither copied nor sent; a picture where nothing changed needs nothing. */
static void still_parts_cost_nothing(void **state) {
  (void)state;
  unsigned bw;
  delta_bands(W, &bw);
  uint8_t *page = text_page(W, H * 2, 3), *bar = text_page(W, H, 4);
  uint8_t *base = view_of(page, W, 0, H), *cur = view_of(page, W, 20, H);
  for (unsigned y = 0; y < H; y++) {
    memcpy(base + (size_t)y * W * 3, bar + (size_t)y * W * 3, (size_t)bw * 3);
    memcpy(cur + (size_t)y * W * 3, bar + (size_t)y * W * 3, (size_t)bw * 3);
  }
  uint64_t *hb = hashes(base, W, H), *hc = hashes(cur, W, H);
  delta_plan_t plan;
  assert_int_equal(delta_plan(hb, hb, W, H, 1, &plan), 0);
  assert_int_equal(plan.ncopies + plan.nrects, 0);
  assert_int_equal(plan.changed_px, 0);
  assert_int_equal(delta_plan(hb, hc, W, H, 1, &plan), 0);
  assert_int_equal(plan.ncopies, 1);
  assert_int_equal(plan.copies[0].sx, bw);
  assert_int_equal(plan.copies[0].w, W - bw);
  for (unsigned i = 0; i < plan.nrects; i++) assert_true(plan.rects[i].x >= bw);
  free(hb);
  free(hc);
  free(base);
  free(cur);
  free(bar);
  free(page);
}

/* A page that changed everywhere (no row of it in the base): no copy, and
 * the changed area is the screen, so the server sends the whole picture. */
static void new_page_changes_everything(void **state) {
  (void)state;
  uint8_t *a = text_page(W, H, 5), *b = text_page(W, H, 6);
  uint64_t *ha = hashes(a, W, H), *hb = hashes(b, W, H);
  delta_plan_t plan;
  assert_int_equal(delta_plan(ha, hb, W, H, 1, &plan), 0);
  assert_int_equal(plan.ncopies, 0);
  assert_true(plan.changed_px * 10 >= (uint64_t)W * H * 9);
  free(ha);
  free(hb);
  free(a);
  free(b);
}

static size_t copy_msg(uint8_t *m, unsigned fw, unsigned fh, unsigned x, unsigned y, unsigned w,
                       unsigned h, unsigned sx, unsigned sy) {
  memset(m, 0, 28);
  m[0] = SCREEN_REGION_MAGIC;
  m[1] = SCREEN_COPY;
  m[2] = SCREEN_LAST;
  const unsigned v[] = {fw, fh, x, y, w, h, sx, sy};
  for (int i = 0; i < 8; i++) {
    m[12 + 2 * i] = (uint8_t)(v[i] >> 8);
    m[13 + 2 * i] = (uint8_t)v[i];
  }
  return 28;
}

/* The presenter's copy region: overlapping source and destination move
 * the pixels as if copied out first; a source outside the screen or a body
 * of another size is refused with a sentence. */
static void copy_region(void **state) {
  (void)state;
  uint8_t fb[32 * 32 * 3], want[32 * 32 * 3];
  for (size_t i = 0; i < sizeof fb; i++) fb[i] = (uint8_t)(i / 3 / 32); /* each row its number */
  memcpy(want, fb, sizeof fb);
  for (unsigned y = 0; y < 24; y++) memcpy(want + (size_t)y * 96, fb + (size_t)(y + 8) * 96, 96);
  uint8_t m[32];
  char err[256];
  screen_region_t r;
  size_t n = copy_msg(m, 32, 32, 0, 0, 32, 24, 0, 8);
  assert_int_equal(screen_region_parse(m, n, &r, err, sizeof err), 0);
  assert_int_equal(screen_region_decode(&r, fb, 32, 32, err, sizeof err), 0);
  assert_memory_equal(fb, want, sizeof fb);
  /* and downwards, where a naive top-down copy would smear one row */
  memcpy(want, fb, sizeof fb);
  for (unsigned y = 0; y < 24; y++) memcpy(want + (size_t)(y + 8) * 96, fb + (size_t)y * 96, 96);
  n = copy_msg(m, 32, 32, 0, 8, 32, 24, 0, 0);
  assert_int_equal(screen_region_parse(m, n, &r, err, sizeof err), 0);
  assert_int_equal(screen_region_decode(&r, fb, 32, 32, err, sizeof err), 0);
  assert_memory_equal(fb, want, sizeof fb);

  n = copy_msg(m, 32, 32, 0, 0, 32, 24, 0, 9);
  assert_int_equal(screen_region_parse(m, n, &r, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "source"));
  n = copy_msg(m, 32, 32, 0, 0, 32, 24, 0, 8);
  assert_int_equal(screen_region_parse(m, n - 1, &r, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "4 bytes"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scroll_is_a_copy_and_a_strip),
      cmocka_unit_test(low_tier_halves_even_scrolls_only),
      cmocka_unit_test(still_parts_cost_nothing),
      cmocka_unit_test(new_page_changes_everything),
      cmocka_unit_test(copy_region),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
