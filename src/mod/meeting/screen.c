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
  if (r.format != SCREEN_JPEG && r.format != SCREEN_PNG && r.format != SCREEN_COPY) {
    snprintf(err, errlen, "format must be 1 (JPEG), 2 (PNG) or 3 (copy), not %u.", r.format);
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
  if (r.format == SCREEN_COPY) {
    if (r.len != SCREEN_COPY_BODY) {
      snprintf(err, errlen, "A copy region's body is %d bytes (the source's x and y), not %zu.",
               SCREEN_COPY_BODY, r.len);
      return -EINVAL;
    }
    r.src_x = be16(r.data);
    r.src_y = be16(r.data + 2);
    if ((unsigned)r.src_x + r.w > r.fb_width || (unsigned)r.src_y + r.h > r.fb_height) {
      snprintf(err, errlen,
               "The copy's source %u x %u at (%u, %u) is outside the screen of %u x %u pixels.",
               r.w, r.h, r.src_x, r.src_y, r.fb_width, r.fb_height);
      return -EINVAL;
    }
    *out = r;
    return 0;
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

/* Overlap-safe: rows in the order that reads each before it is written. */
static void copy_rect(uint8_t *fb, unsigned fb_w, unsigned sx, unsigned sy, unsigned w, unsigned h,
                      unsigned dx, unsigned dy) {
  size_t pitch = (size_t)fb_w * 3, bytes = (size_t)w * 3;
  if (dy > sy)
    for (unsigned row = h; row-- > 0;)
      memmove(fb + (dy + row) * pitch + dx * 3, fb + (sy + row) * pitch + sx * 3, bytes);
  else
    for (unsigned row = 0; row < h; row++)
      memmove(fb + (dy + row) * pitch + dx * 3, fb + (sy + row) * pitch + sx * 3, bytes);
}

int screen_region_decode(const screen_region_t *r, uint8_t *fb, unsigned fb_w, unsigned fb_h,
                         char *err, size_t errlen) {
  if (fb_w != r->fb_width || fb_h != r->fb_height) {
    snprintf(err, errlen, "The region belongs to a screen of another size.");
    return -EINVAL;
  }
  if (r->format == SCREEN_COPY) {
    copy_rect(fb, fb_w, r->src_x, r->src_y, r->w, r->h, r->x, r->y);
    return 0;
  }
  return r->format == SCREEN_JPEG ? decode_jpeg(r, fb, fb_w, err, errlen)
                                  : decode_png(r, fb, fb_w, err, errlen);
}

/* Half size by averaging 2 x 2 pixels (the last odd row or column dropped);
 * rgb's rows are pitch bytes apart. */
static uint8_t *half_size(const uint8_t *rgb, size_t pitch, unsigned w, unsigned h, unsigned *hw,
                          unsigned *hh) {
  *hw = w / 2;
  *hh = h / 2;
  uint8_t *out = malloc((size_t)*hw * *hh * 3 + 1);
  if (!out) return NULL;
  for (unsigned y = 0; y < *hh; y++) {
    const uint8_t *a = rgb + (size_t)(2 * y) * pitch, *b = a + pitch;
    uint8_t *o = out + (size_t)y * *hw * 3;
    for (unsigned x = 0; x < *hw; x++, a += 6, b += 6, o += 3)
      for (int c = 0; c < 3; c++) o[c] = (uint8_t)((a[c] + a[c + 3] + b[c] + b[c + 3] + 2) / 4);
  }
  return out;
}

/* The JPEG of w x h pixels whose rows are pitch bytes apart, in a buffer
 * of libjpeg-turbo's (tjFree). */
static int jpeg_of(const uint8_t *rgb, size_t pitch, unsigned w, unsigned h, int quality,
                   unsigned char **jpeg, unsigned long *jlen) {
  if (!tj_enc && !(tj_enc = tjInitCompress())) return -ENOMEM;
  *jpeg = NULL;
  *jlen = 0;
  /* Text on a screen loses its edges to chroma subsampling: the high tier keeps it. */
  int sub = quality >= 80 ? TJSAMP_444 : TJSAMP_420;
  if (tjCompress2(tj_enc, rgb, (int)w, (int)pitch, (int)h, TJPF_RGB, jpeg, jlen, sub, quality,
                  TJFLAG_FASTDCT) != 0) {
    tjFree(*jpeg);
    *jpeg = NULL;
    return -EIO;
  }
  return 0;
}

static int encode_jpeg(const uint8_t *rgb, unsigned w, unsigned h, int quality, uint8_t **out,
                       size_t *len) {
  unsigned char *jpeg;
  unsigned long jlen;
  int rc = jpeg_of(rgb, (size_t)w * 3, w, h, quality, &jpeg, &jlen);
  if (rc < 0) return rc;
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

static const int tier_quality[SCREEN_TIERS] = {85, 60, 45, 0};

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
  case SCREEN_TIER_HIGH:
  case SCREEN_TIER_MEDIUM: return encode_jpeg(rgb, w, h, tier_quality[tier], out, len);
  case SCREEN_TIER_LOW: {
    unsigned hw, hh;
    uint8_t *half = half_size(rgb, (size_t)w * 3, w, h, &hw, &hh);
    if (!half) return -ENOMEM;
    int r = encode_jpeg(half, hw, hh, tier_quality[tier], out, len);
    free(half);
    return r;
  }
  case SCREEN_TIER_LOSSLESS: return encode_png(rgb, w, h, out, len);
  default: return -EINVAL;
  }
}

typedef struct growing {
  uint8_t *p;
  size_t len, cap;
} growing_t;

static int grow(growing_t *g, size_t more) {
  if (g->len + more <= g->cap) return 0;
  size_t cap = g->cap ? g->cap : 4096;
  while (cap < g->len + more) cap *= 2;
  uint8_t *p = realloc(g->p, cap);
  if (!p) return -ENOMEM;
  g->p = p;
  g->cap = cap;
  return 0;
}

int screen_encode_delta(const uint8_t *rgb, unsigned w, unsigned h, screen_tier_t tier,
                        uint32_t base_seq, const delta_plan_t *plan, uint8_t **out,
                        size_t *len) {
  if (tier != SCREEN_TIER_HIGH && tier != SCREEN_TIER_MEDIUM && tier != SCREEN_TIER_LOW)
    return -EINVAL;
  unsigned k = tier == SCREEN_TIER_LOW ? 2 : 1; /* full-size pixels a tier pixel */
  growing_t g = {0};
  size_t fixed = SCREEN_FRAME_HEADER + SCREEN_DELTA_HEADER + (size_t)plan->ncopies * 12;
  if (grow(&g, fixed + 4096) < 0) return -ENOMEM;
  memset(g.p, 0, fixed);
  put32(g.p + SCREEN_FRAME_HEADER, base_seq);
  put16(g.p + SCREEN_FRAME_HEADER + 4, plan->ncopies);
  uint8_t *c = g.p + SCREEN_FRAME_HEADER + SCREEN_DELTA_HEADER;
  for (unsigned i = 0; i < plan->ncopies; i++, c += 12) {
    const delta_copy_t *d = &plan->copies[i];
    put16(c, d->sx / k);
    put16(c + 2, d->sy / k);
    put16(c + 4, d->w / k);
    put16(c + 6, d->h / k);
    put16(c + 8, d->dx / k);
    put16(c + 10, d->dy / k);
  }
  g.len = fixed;
  unsigned patches = 0;
  int rc = 0;
  for (unsigned i = 0; i < plan->nrects && rc == 0; i++) {
    const delta_rect_t *r = &plan->rects[i];
    const uint8_t *at = rgb + ((size_t)r->y * w + r->x) * 3;
    unsigned pw = r->w, ph = r->h;
    uint8_t *half = NULL;
    if (k == 2) {
      if (!(half = half_size(at, (size_t)w * 3, r->w, r->h, &pw, &ph))) {
        rc = -ENOMEM;
        break;
      }
      at = half;
    }
    if (pw && ph) {
      unsigned char *jpeg;
      unsigned long jlen;
      size_t pitch = k == 2 ? (size_t)pw * 3 : (size_t)w * 3;
      rc = jpeg_of(at, pitch, pw, ph, tier_quality[tier], &jpeg, &jlen);
      if (rc == 0 && (rc = grow(&g, 12 + jlen)) == 0) {
        uint8_t *p = g.p + g.len;
        put16(p, r->x / k);
        put16(p + 2, r->y / k);
        put16(p + 4, pw);
        put16(p + 6, ph);
        put32(p + 8, (uint32_t)jlen);
        memcpy(p + 12, jpeg, jlen);
        g.len += 12 + jlen;
        patches++;
      }
      tjFree(jpeg);
    }
    free(half);
  }
  if (rc < 0) {
    free(g.p);
    return rc;
  }
  put16(g.p + SCREEN_FRAME_HEADER + 6, patches);
  *out = g.p;
  *len = g.len;
  return 0;
}

void screen_frame_header(uint8_t *buf, screen_tier_t tier, uint32_t seq, uint32_t capture_ms,
                         unsigned w, unsigned h, bool delta) {
  buf[0] = SCREEN_FRAME_MAGIC;
  buf[1] = (uint8_t)tier;
  buf[2] = delta ? SCREEN_DELTA : tier == SCREEN_TIER_LOSSLESS ? SCREEN_PNG : SCREEN_JPEG;
  buf[3] = 0;
  put32(buf + 4, seq);
  put32(buf + 8, capture_ms);
  put16(buf + 12, w);
  put16(buf + 14, h);
}
