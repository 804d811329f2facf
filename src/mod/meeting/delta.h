/* What changed between two screen pictures, without I/O: rows hashed in
 * column bands, a vertical scroll of each band found from the rows unique
 * in the base picture, and the rest that differs as rectangles. The plan
 * is what a delta frame says (docs/protocols/meeting.md); screen.c encodes
 * it. Pure functions over caller buffers. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define DELTA_BAND_MAX 256 /* a band is at most this wide, in pixels */
#define DELTA_ROW_STEP 16  /* changed rows go out in runs of this many */
#define DELTA_COPIES_MAX 64
#define DELTA_RECTS_MAX 128

/* The bands a screen w pixels wide is hashed in, and their width (a
 * multiple of 16; the last band may be narrower). */
unsigned delta_bands(unsigned w, unsigned *band_w);

/* out[y * bands + b]: a hash of row y's pixels in band b of an RGB picture
 * (3 bytes a pixel, w * 3 a row). out holds h * delta_bands(w) values. */
void delta_row_hashes(const uint8_t *rgb, unsigned w, unsigned h, uint64_t *out);

typedef struct delta_copy {
  uint16_t sx, sy, w, h, dx, dy;
} delta_copy_t;

typedef struct delta_rect {
  uint16_t x, y, w, h;
} delta_rect_t;

typedef struct delta_plan {
  unsigned ncopies, nrects;
  delta_copy_t copies[DELTA_COPIES_MAX];
  delta_rect_t rects[DELTA_RECTS_MAX];
  uint64_t changed_px; /* the rectangles' area */
} delta_plan_t;

/* The copies and rectangles that turn the picture `base` into `cur` (both
 * w x h, hashed by delta_row_hashes), in full-size pixels. grain 2 keeps
 * every copy's rows and offset even, so that the plan halved is exact for
 * a half-size picture; grain 1 allows any. Copies read the base as it was
 * before any copy; the rectangles are whole band widths and multiples of
 * DELTA_ROW_STEP rows (clipped to the screen). 0, or -ENOMEM. */
int delta_plan(const uint64_t *base_hash, const uint64_t *cur_hash, unsigned w, unsigned h,
               unsigned grain, delta_plan_t *out);
