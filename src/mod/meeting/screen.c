/* See screen.h. The decoders run with limits set before anything is
 * allocated for the image: the header's size must be the region's, which
 * is inside a framebuffer of at most SCREEN_MAX_WIDTH x SCREEN_MAX_HEIGHT. */
#include "mod/meeting/screen.h"

#include <errno.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

static const char *const tier_names[SCREEN_TIERS] = {"high", "medium", "low", "lossless"};

const char *screen_tier_name(screen_tier_t t) {
  return (unsigned)t < SCREEN_TIERS ? tier_names[t] : "?";
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

int screen_region_parse(const uint8_t *msg, size_t len, screen_region_t *out, char *err,
                        size_t errlen) {
  if (len < SCREEN_REGION_HEADER || msg[0] != SCREEN_REGION_MAGIC) {
    snprintf(err, errlen, "A region starts with a %d-byte header beginning with 'R'.",
             SCREEN_REGION_HEADER);
    return -EINVAL;
  }
  screen_region_t r = {.format = msg[1], .flags = msg[2], .seq = be32(msg + 4),
                       .capture_ms = be32(msg + 8), .fb_width = be16(msg + 12),
                       .fb_height = be16(msg + 14), .x = be16(msg + 16), .y = be16(msg + 18),
                       .w = be16(msg + 20), .h = be16(msg + 22), .data = msg + SCREEN_REGION_HEADER,
                       .len = len - SCREEN_REGION_HEADER};
  if (r.format != SCREEN_JPEG && r.format != SCREEN_PNG) {
    snprintf(err, errlen, "format must be 1 (JPEG) or 2 (PNG), not %u.", r.format);
    return -EINVAL;
  }
  if (r.flags & ~SCREEN_LAST) {
    snprintf(err, errlen, "flags may only have bit 0 (the last region of a frame).");
    return -EINVAL;
  }
  if (r.fb_width < SCREEN_MIN_SIDE || r.fb_width > SCREEN_MAX_WIDTH ||
      r.fb_height < SCREEN_MIN_SIDE || r.fb_height > SCREEN_MAX_HEIGHT) {
    snprintf(err, errlen, "The screen must be %d x %d to %d x %d pixels, not %u x %u.",
             SCREEN_MIN_SIDE, SCREEN_MIN_SIDE, SCREEN_MAX_WIDTH, SCREEN_MAX_HEIGHT, r.fb_width,
             r.fb_height);
    return -EINVAL;
  }
  if (r.w == 0 || r.h == 0 || (unsigned)r.x + r.w > r.fb_width ||
      (unsigned)r.y + r.h > r.fb_height) {
    snprintf(err, errlen,
             "The region %u x %u at (%u, %u) is outside the screen of %u x %u pixels.", r.w, r.h,
             r.x, r.y, r.fb_width, r.fb_height);
    return -EINVAL;
  }
  if (r.len == 0 || r.len > SCREEN_REGION_BYTES_MAX) {
    snprintf(err, errlen, "A region's image must be 1 byte to %d MiB.",
             SCREEN_REGION_BYTES_MAX / (1024 * 1024));
    return -EINVAL;
  }
  *out = r;
  return 0;
}

/* One handle per thread: making one costs more than a small region's decode. */
static __thread tjhandle tj_dec, tj_enc;

static int decode_jpeg(const screen_region_t *r, uint8_t *fb, unsigned fb_w, char *err,
                       size_t errlen) {
  if (!tj_dec && !(tj_dec = tjInitDecompress())) return -ENOMEM;
  int w = 0, h = 0, sub = 0, cs = 0;
  if (tjDecompressHeader3(tj_dec, r->data, (unsigned long)r->len, &w, &h, &sub, &cs) != 0 ||
      w <= 0 || h <= 0) {
    snprintf(err, errlen, "The JPEG image is corrupt: %s.", tjGetErrorStr2(tj_dec));
    return -EINVAL;
  }
  if (w != r->w || h != r->h) {
    /* A truncated header can read as any size: say both possibilities. */
    snprintf(err, errlen, "The JPEG image is corrupt or not the region's size (%u x %u).", r->w,
             r->h);
    return -EINVAL;
  }
  uint8_t *dst = fb + ((size_t)r->y * fb_w + r->x) * 3;
  if (tjDecompress2(tj_dec, r->data, (unsigned long)r->len, dst, w, (int)(fb_w * 3), h, TJPF_RGB,
                    TJFLAG_NOREALLOC | TJFLAG_STOPONWARNING) != 0) {
    snprintf(err, errlen, "The JPEG image is corrupt: %s.", tjGetErrorStr2(tj_dec));
    return -EINVAL;
  }
  return 0;
}

static int decode_png(const screen_region_t *r, uint8_t *fb, unsigned fb_w, char *err,
                      size_t errlen) {
  spng_ctx *ctx = spng_ctx_new(0);
  if (!ctx) return -ENOMEM;
  uint8_t *img = NULL;
  int rc = -EINVAL;
  struct spng_ihdr ihdr;
  size_t size = 0;
  int e;
  /* The limits go first: libspng checks them before it allocates. No chunk
   * can be longer than the region's data; libspng refuses a chunk limit
   * above the cache limit, so that one is at least as large. */
  size_t cache_max = r->len > 64 * 1024 ? r->len : 64 * 1024;
  if ((e = spng_set_image_limits(ctx, r->w, r->h)) ||
      (e = spng_set_chunk_limits(ctx, r->len, cache_max)) ||
      (e = spng_set_png_buffer(ctx, r->data, r->len)) || (e = spng_get_ihdr(ctx, &ihdr))) {
    snprintf(err, errlen, "The PNG image is corrupt or too large: %s.", spng_strerror(e));
    goto out;
  }
  if (ihdr.width != r->w || ihdr.height != r->h) {
    snprintf(err, errlen, "The PNG image is %u x %u; the region says %u x %u.", ihdr.width,
             ihdr.height, r->w, r->h);
    goto out;
  }
  if ((e = spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &size)) ||
      size != (size_t)r->w * r->h * 3) {
    snprintf(err, errlen, "The PNG image cannot be decoded: %s.", spng_strerror(e));
    goto out;
  }
  if (!(img = malloc(size))) {
    rc = -ENOMEM;
    goto out;
  }
  if ((e = spng_decode_image(ctx, img, size, SPNG_FMT_RGB8, 0))) {
    snprintf(err, errlen, "The PNG image is corrupt: %s.", spng_strerror(e));
    goto out;
  }
  for (unsigned row = 0; row < r->h; row++)
    memcpy(fb + ((size_t)(r->y + row) * fb_w + r->x) * 3, img + (size_t)row * r->w * 3,
           (size_t)r->w * 3);
  rc = 0;
out:
  free(img);
  spng_ctx_free(ctx);
  return rc;
}

int screen_region_decode(const screen_region_t *r, uint8_t *fb, unsigned fb_w, unsigned fb_h,
                         char *err, size_t errlen) {
  if (fb_w != r->fb_width || fb_h != r->fb_height) {
    snprintf(err, errlen, "The region belongs to a screen of another size.");
    return -EINVAL;
  }
  return r->format == SCREEN_JPEG ? decode_jpeg(r, fb, fb_w, err, errlen)
                                  : decode_png(r, fb, fb_w, err, errlen);
}

/* Half size by averaging 2 x 2 pixels (the last odd row or column dropped). */
static uint8_t *half_size(const uint8_t *rgb, unsigned w, unsigned h, unsigned *hw, unsigned *hh) {
  *hw = w / 2;
  *hh = h / 2;
  uint8_t *out = malloc((size_t)*hw * *hh * 3);
  if (!out) return NULL;
  for (unsigned y = 0; y < *hh; y++) {
    const uint8_t *a = rgb + (size_t)(2 * y) * w * 3, *b = a + (size_t)w * 3;
    uint8_t *o = out + (size_t)y * *hw * 3;
    for (unsigned x = 0; x < *hw; x++, a += 6, b += 6, o += 3)
      for (int c = 0; c < 3; c++) o[c] = (uint8_t)((a[c] + a[c + 3] + b[c] + b[c + 3] + 2) / 4);
  }
  return out;
}

static int encode_jpeg(const uint8_t *rgb, unsigned w, unsigned h, int quality, uint8_t **out,
                       size_t *len) {
  if (!tj_enc && !(tj_enc = tjInitCompress())) return -ENOMEM;
  unsigned char *jpeg = NULL;
  unsigned long jlen = 0;
  /* Text on a screen loses its edges to chroma subsampling: the high tier keeps it. */
  int sub = quality >= 80 ? TJSAMP_444 : TJSAMP_420;
  if (tjCompress2(tj_enc, rgb, (int)w, (int)(w * 3), (int)h, TJPF_RGB, &jpeg, &jlen, sub, quality,
                  TJFLAG_FASTDCT) != 0) {
    tjFree(jpeg);
    return -EIO;
  }
  uint8_t *buf = malloc(SCREEN_FRAME_HEADER + jlen);
  if (!buf) {
    tjFree(jpeg);
    return -ENOMEM;
  }
  memcpy(buf + SCREEN_FRAME_HEADER, jpeg, jlen);
  tjFree(jpeg);
  *out = buf;
  *len = SCREEN_FRAME_HEADER + jlen;
  return 0;
}

static int encode_png(const uint8_t *rgb, unsigned w, unsigned h, uint8_t **out, size_t *len) {
  spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
  if (!ctx) return -ENOMEM;
  struct spng_ihdr ihdr = {.width = w, .height = h, .bit_depth = 8,
                           .color_type = SPNG_COLOR_TYPE_TRUECOLOR};
  int rc = -EIO, e = 0;
  size_t plen = 0;
  void *png = NULL;
  if (spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1) || spng_set_ihdr(ctx, &ihdr) ||
      spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, 3) ||
      spng_encode_image(ctx, rgb, (size_t)w * h * 3, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE) ||
      !(png = spng_get_png_buffer(ctx, &plen, &e)) || e)
    goto done;
  uint8_t *buf = malloc(SCREEN_FRAME_HEADER + plen);
  if (!buf) {
    rc = -ENOMEM;
    goto done;
  }
  memcpy(buf + SCREEN_FRAME_HEADER, png, plen);
  *out = buf;
  *len = SCREEN_FRAME_HEADER + plen;
  rc = 0;
done:
  free(png);
  spng_ctx_free(ctx);
  return rc;
}

int screen_encode(const uint8_t *rgb, unsigned w, unsigned h, screen_tier_t tier, uint8_t **out,
                  size_t *len) {
  switch (tier) {
  case SCREEN_TIER_HIGH: return encode_jpeg(rgb, w, h, 85, out, len);
  case SCREEN_TIER_MEDIUM: return encode_jpeg(rgb, w, h, 60, out, len);
  case SCREEN_TIER_LOW: {
    unsigned hw, hh;
    uint8_t *half = half_size(rgb, w, h, &hw, &hh);
    if (!half) return -ENOMEM;
    int r = encode_jpeg(half, hw, hh, 45, out, len);
    free(half);
    return r;
  }
  case SCREEN_TIER_LOSSLESS: return encode_png(rgb, w, h, out, len);
  default: return -EINVAL;
  }
}

void screen_frame_header(uint8_t *buf, screen_tier_t tier, uint32_t seq, uint32_t capture_ms,
                         unsigned w, unsigned h) {
  buf[0] = SCREEN_FRAME_MAGIC;
  buf[1] = (uint8_t)tier;
  buf[2] = tier == SCREEN_TIER_LOSSLESS ? SCREEN_PNG : SCREEN_JPEG;
  buf[3] = 0;
  put32(buf + 4, seq);
  put32(buf + 8, capture_ms);
  put16(buf + 12, w);
  put16(buf + 14, h);
}
