/* Screen-sharing images without I/O: the header of a region the presenter
 * sends, decoding it into the framebuffer (libjpeg-turbo, libspng, both with
 * size limits), and encoding a tier of a frame. Pure functions over caller
 * buffers, fuzzed (tests/fuzz/fuzz_meeting_region.c). See
 * docs/protocols/meeting.md for the wire format. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mod/meeting/delta.h"

#define SCREEN_REGION_MAGIC 0x52 /* 'R' */
#define SCREEN_FRAME_MAGIC 0x46  /* 'F' */
#define SCREEN_REGION_HEADER 24
#define SCREEN_FRAME_HEADER 16
#define SCREEN_MIN_SIDE 16
#define SCREEN_MAX_WIDTH 3840
#define SCREEN_MAX_HEIGHT 2160
#define SCREEN_REGION_BYTES_MAX (8 * 1024 * 1024)

enum { SCREEN_JPEG = 1, SCREEN_PNG = 2, SCREEN_COPY = 3, SCREEN_DELTA = 3 };
#define SCREEN_COPY_BODY 4 /* a copy region's body: the source's x, y */
#define SCREEN_DELTA_HEADER 8 /* base frame, copies, patches */
enum { SCREEN_LAST = 1 }; /* flags: the last region of a frame */

typedef enum screen_tier {
  SCREEN_TIER_HIGH,     /* full size, quality 85 */
  SCREEN_TIER_MEDIUM,   /* full size, quality 60 */
  SCREEN_TIER_LOW,      /* half size, quality 45 */
  SCREEN_TIER_LOSSLESS, /* full size, PNG: once the picture stands still */
  SCREEN_TIERS,
} screen_tier_t;

const char *screen_tier_name(screen_tier_t t); /* "high", ... */

typedef struct screen_region {
  uint8_t format, flags;
  uint32_t seq, capture_ms;
  uint16_t fb_width, fb_height; /* the framebuffer the region belongs to */
  uint16_t x, y, w, h;
  const uint8_t *data; /* the image, borrowed from the message */
  size_t len;
  uint16_t src_x, src_y; /* a copy's source */
} screen_region_t;

/* Checks a region message: magic, format, the framebuffer's size within
 * SCREEN_MIN_SIDE..SCREEN_MAX_*, the region inside it, a non-empty image of
 * at most SCREEN_REGION_BYTES_MAX. 0 and *out, or -EINVAL with a sentence
 * naming the field. */
int screen_region_parse(const uint8_t *msg, size_t len, screen_region_t *out, char *err,
                        size_t errlen);

/* Decodes the region's image into fb (RGB, 3 bytes a pixel, fb_w * 3 a
 * row) at (x, y). The image must be exactly w x h: anything else, corrupt
 * data or a PNG over the limits is -EINVAL with a sentence; -ENOMEM. fb is
 * unchanged on failure only for failures found before decoding starts. */
int screen_region_decode(const screen_region_t *r, uint8_t *fb, unsigned fb_w, unsigned fb_h,
                         char *err, size_t errlen);

/* Encodes the RGB frame (w x h) as `tier` into a malloc'd buffer that
 * starts with SCREEN_FRAME_HEADER bytes left for the caller: *out, *len (the
 * whole length). 0, -ENOMEM or -EIO. */
int screen_encode(const uint8_t *rgb, unsigned w, unsigned h, screen_tier_t tier, uint8_t **out,
                  size_t *len);

/* A delta frame of `tier` (high, medium or low) that turns the viewer's
 * picture of frame base_seq into this one (rgb, w x h), as `plan` says;
 * the same buffer convention as screen_encode. For the low tier the plan
 * must have been made with grain 2. 0, -ENOMEM, -EIO, -EINVAL. */
int screen_encode_delta(const uint8_t *rgb, unsigned w, unsigned h, screen_tier_t tier,
                        uint32_t base_seq, const delta_plan_t *plan, uint8_t **out, size_t *len);

/* Writes the viewer frame header into buf: a whole picture, or a delta. */
void screen_frame_header(uint8_t *buf, screen_tier_t tier, uint32_t seq, uint32_t capture_ms,
                         unsigned w, unsigned h, bool delta);
