/* Users' profile pictures without I/O: an upload (JPEG or PNG) is decoded
 * with limits set before anything is allocated for the image, cropped to
 * its centre square, scaled down and encoded again as a JPEG of at most
 * PICTURE_SIDE pixels a side. What is stored and served is always this
 * re-encoded image, never the uploaded bytes: nothing the uploader put in
 * the file (metadata, a second image, a polyglot) survives. Pure and
 * thread-safe; fuzzed (tests/fuzz/fuzz_picture.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define PICTURE_BODY_MAX (512 * 1024)  /* an upload, bytes */
#define PICTURE_SIDE 256               /* the stored picture's side, at most */
#define PICTURE_MIN_SIDE 32            /* an upload's shorter side, at least */
#define PICTURE_MAX_SIDE 4096          /* an upload's width and height, at most */
#define PICTURE_PNG_PIXELS_MAX (2048 * 2048) /* PNGs are decoded whole */

/* Decodes `data` (JPEG or PNG, by its magic bytes), then encodes the
 * centre square scaled to min(shorter side, PICTURE_SIDE) as a JPEG:
 * *out (malloc'd) and *out_len. -EINVAL with a sentence in err for
 * anything that is not such an image within the limits; -ENOMEM; -EIO
 * when the encoder fails. */
int picture_normalize(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len, char *err,
                      size_t errlen);

