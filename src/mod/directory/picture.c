/* See picture.h. Memory is bounded before decoding: a JPEG is decoded at
 * the smallest of libjpeg-turbo's scales that keeps its shorter side at
 * least PICTURE_SIDE (so a 4096 x 4096 photo decodes as 512 x 512), and a
 * PNG's size is checked against PICTURE_PNG_PIXELS_MAX by libspng before
 * it allocates. The scale-down is a box filter over the centre square:
 * every source pixel falls into exactly one output pixel. */
#include "mod/directory/picture.h"

#include <errno.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#define JPEG_QUALITY 85

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* An RGB(A) image decoded into memory. */
typedef struct image {
  uint8_t *px;
  unsigned w, h, channels; /* 3: RGB, 4: RGBA (composited over white) */
} image_t;

static int check_size(unsigned w, unsigned h, char *err, size_t errlen) {
  if (w > PICTURE_MAX_SIDE || h > PICTURE_MAX_SIDE) {
    snprintf(err, errlen, "The picture is %u x %u pixels; at most %d x %d are accepted.", w, h,
             PICTURE_MAX_SIDE, PICTURE_MAX_SIDE);
    return -EINVAL;
  }
  if (w < PICTURE_MIN_SIDE || h < PICTURE_MIN_SIDE) {
    snprintf(err, errlen, "The picture is %u x %u pixels; it must be at least %d x %d.", w, h,
             PICTURE_MIN_SIDE, PICTURE_MIN_SIDE);
    return -EINVAL;
  }
  return 0;
}

static int decode_jpeg(const uint8_t *data, size_t len, image_t *img, char *err, size_t errlen) {
  tjhandle tj = tjInitDecompress();
  if (!tj) return -ENOMEM;
  int rc = -EINVAL, w = 0, h = 0, sub = 0, cs = 0;
  if (tjDecompressHeader3(tj, data, (unsigned long)len, &w, &h, &sub, &cs) != 0 || w <= 0 ||
      h <= 0) {
    snprintf(err, errlen, "The JPEG image is corrupt: %s.", tjGetErrorStr2(tj));
    goto out;
  }
  if ((rc = check_size((unsigned)w, (unsigned)h, err, errlen)) < 0) goto out;
  rc = -EINVAL;
  /* The smallest scale whose shorter side still covers PICTURE_SIDE (or
   * the whole image when it is smaller than that). */
  int n = 0;
  tjscalingfactor *f = tjGetScalingFactors(&n);
  int short_side = w < h ? w : h, want = short_side < PICTURE_SIDE ? short_side : PICTURE_SIDE;
  int sw = w, sh = h;
  for (int i = 0; f && i < n; i++) {
    if (f[i].num > f[i].denom) continue; /* never enlarge */
    int cw = TJSCALED(w, f[i]), ch = TJSCALED(h, f[i]);
    if ((cw < ch ? cw : ch) >= want && (size_t)cw * ch < (size_t)sw * sh) {
      sw = cw;
      sh = ch;
    }
  }
  img->px = malloc((size_t)sw * sh * 3);
  if (!img->px) {
    rc = -ENOMEM;
    goto out;
  }
  if (tjDecompress2(tj, data, (unsigned long)len, img->px, sw, sw * 3, sh, TJPF_RGB,
                    TJFLAG_STOPONWARNING) != 0) {
    /* Also a CMYK JPEG, which has no conversion to RGB here. */
    snprintf(err, errlen, "The JPEG image is corrupt or cannot be decoded: %s.",
             tjGetErrorStr2(tj));
    free(img->px);
    img->px = NULL;
    goto out;
  }
  img->w = (unsigned)sw;
  img->h = (unsigned)sh;
  img->channels = 3;
  rc = 0;
out:
  tjDestroy(tj);
  return rc;
}

static int decode_png(const uint8_t *data, size_t len, image_t *img, char *err, size_t errlen) {
  spng_ctx *ctx = spng_ctx_new(0);
  if (!ctx) return -ENOMEM;
  int rc = -EINVAL, e;
  struct spng_ihdr ihdr;
  size_t size = 0;
  /* The limits go first: libspng checks them before it allocates. Its
   * cache limit also bounds what inflating the image data holds, so it
   * must allow more than the ancillary chunks need. */
  if ((e = spng_set_image_limits(ctx, PICTURE_MAX_SIDE * 4, PICTURE_MAX_SIDE * 4)) ||
      (e = spng_set_chunk_limits(ctx, len, 4 * 1024 * 1024)) ||
      (e = spng_set_png_buffer(ctx, data, len)) || (e = spng_get_ihdr(ctx, &ihdr))) {
    snprintf(err, errlen, "The PNG image is corrupt: %s.", spng_strerror(e));
    goto out;
  }
  if ((rc = check_size(ihdr.width, ihdr.height, err, errlen)) < 0) goto out;
  rc = -EINVAL;
  if ((size_t)ihdr.width * ihdr.height > PICTURE_PNG_PIXELS_MAX) {
    snprintf(err, errlen,
             "The PNG image is %u x %u pixels; a PNG may have at most %d pixels (%d x %d): "
             "send a smaller one or a JPEG.",
             ihdr.width, ihdr.height, PICTURE_PNG_PIXELS_MAX, 2048, 2048);
    goto out;
  }
  if ((e = spng_decoded_image_size(ctx, SPNG_FMT_RGBA8, &size)) ||
      size != (size_t)ihdr.width * ihdr.height * 4) {
    snprintf(err, errlen, "The PNG image cannot be decoded: %s.", spng_strerror(e));
    goto out;
  }
  if (!(img->px = malloc(size))) {
    rc = -ENOMEM;
    goto out;
  }
  if ((e = spng_decode_image(ctx, img->px, size, SPNG_FMT_RGBA8, SPNG_DECODE_TRNS))) {
    snprintf(err, errlen, "The PNG image is corrupt: %s.", spng_strerror(e));
    free(img->px);
    img->px = NULL;
    goto out;
  }
  img->w = ihdr.width;
  img->h = ihdr.height;
  img->channels = 4;
  rc = 0;
out:
  spng_ctx_free(ctx);
  return rc;
}

/* The centre square of img, box-filtered to side x side RGB. */
static uint8_t *square(const image_t *img, unsigned side) {
  unsigned s = img->w < img->h ? img->w : img->h;
  unsigned x0 = (img->w - s) / 2, y0 = (img->h - s) / 2;
  uint32_t *sum = calloc((size_t)side * side * 4, sizeof *sum); /* r, g, b, count */
  uint32_t *col = malloc((size_t)s * sizeof *col);             /* source column -> cell */
  uint8_t *out = malloc((size_t)side * side * 3);
  if (!sum || !col || !out) {
    free(sum);
    free(col);
    free(out);
    return NULL;
  }
  for (unsigned x = 0; x < s; x++) col[x] = (uint32_t)((uint64_t)x * side / s) * 4;
  for (unsigned y = 0; y < s; y++) {
    const uint8_t *row = img->px + ((size_t)(y0 + y) * img->w + x0) * img->channels;
    uint32_t *cells = sum + (size_t)((uint64_t)y * side / s) * side * 4;
    for (unsigned x = 0; x < s; x++, row += img->channels) {
      uint32_t *c = cells + col[x];
      unsigned a = img->channels == 4 ? row[3] : 255;
      if (a == 255) {
        c[0] += row[0];
        c[1] += row[1];
        c[2] += row[2];
      } else {
        /* Transparent parts turn white, as a page behind them would be. */
        for (int k = 0; k < 3; k++) c[k] += (row[k] * a + 255 * (255 - a) + 127) / 255;
      }
      c[3]++;
    }
  }
  for (size_t i = 0; i < (size_t)side * side; i++)
    for (int k = 0; k < 3; k++)
      out[i * 3 + k] = (uint8_t)((sum[i * 4 + k] + sum[i * 4 + 3] / 2) / sum[i * 4 + 3]);
  free(sum);
  free(col);
  return out;
}

int picture_normalize(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len, char *err,
                      size_t errlen) {
  *out = NULL;
  *out_len = 0;
  if (err && errlen) err[0] = '\0';
  if (len == 0) {
    snprintf(err, errlen, "The picture is empty; send a JPEG or PNG image.");
    return -EINVAL;
  }
  if (len > PICTURE_BODY_MAX) {
    snprintf(err, errlen, "The picture is %zu bytes; at most %d KiB are accepted.", len,
             PICTURE_BODY_MAX / 1024);
    return -EINVAL;
  }
  image_t img = {0};
  int rc;
  if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
    rc = decode_jpeg(data, len, &img, err, errlen);
  else if (len >= sizeof png_magic && memcmp(data, png_magic, sizeof png_magic) == 0)
    rc = decode_png(data, len, &img, err, errlen);
  else {
    snprintf(err, errlen, "The picture is neither a JPEG nor a PNG image.");
    return -EINVAL;
  }
  if (rc < 0) return rc;
  unsigned s = img.w < img.h ? img.w : img.h;
  unsigned side = s < PICTURE_SIDE ? s : PICTURE_SIDE;
  uint8_t *rgb = square(&img, side);
  free(img.px);
  if (!rgb) return -ENOMEM;
  tjhandle tj = tjInitCompress();
  if (!tj) {
    free(rgb);
    return -ENOMEM;
  }
  unsigned char *jpeg = NULL;
  unsigned long jlen = 0;
  rc = tjCompress2(tj, rgb, (int)side, (int)side * 3, (int)side, TJPF_RGB, &jpeg, &jlen,
                   TJSAMP_420, JPEG_QUALITY, 0) == 0
           ? 0
           : -EIO;
  tjDestroy(tj);
  free(rgb);
  if (rc == 0 && !(*out = malloc(jlen))) rc = -ENOMEM;
  if (rc == 0) {
    memcpy(*out, jpeg, jlen);
    *out_len = jlen;
  } else if (rc == -EIO) {
    snprintf(err, errlen, "The picture could not be encoded again.");
  }
  tjFree(jpeg);
  return rc;
}
