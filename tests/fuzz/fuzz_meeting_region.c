/* libFuzzer target for the presenter's regions (src/mod/meeting/screen.c):
 * the header check, then the JPEG or PNG decode into a framebuffer with the
 * limits the server uses. Besides crashes it checks the contract: a refusal
 * has a sentence, an accepted region lies inside its screen, and a decode
 * writes nothing outside the region (the guard bytes around the
 * framebuffer stay as they were). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mod/meeting/screen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GUARD 64
#define FUZZ_FB_MAX (512 * 512) /* larger screens are checked, not decoded: speed */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  screen_region_t r;
  char err[300];
  err[0] = '\0';
  if (screen_region_parse(data, size, &r, err, sizeof err) != 0) {
    if (!err[0]) abort();
    return 0;
  }
  if ((unsigned)r.x + r.w > r.fb_width || (unsigned)r.y + r.h > r.fb_height || !r.len ||
      r.fb_width > SCREEN_MAX_WIDTH || r.fb_height > SCREEN_MAX_HEIGHT)
    abort();
  if ((size_t)r.fb_width * r.fb_height > FUZZ_FB_MAX) return 0;
  size_t bytes = (size_t)r.fb_width * r.fb_height * 3;
  uint8_t *mem = malloc(bytes + 2 * GUARD);
  if (!mem) return 0;
  memset(mem, 0xa5, bytes + 2 * GUARD);
  err[0] = '\0';
  if (screen_region_decode(&r, mem + GUARD, r.fb_width, r.fb_height, err, sizeof err) != 0 &&
      !err[0])
    abort();
  for (size_t i = 0; i < GUARD; i++)
    if (mem[i] != 0xa5 || mem[GUARD + bytes + i] != 0xa5) abort();
  free(mem);
  return 0;
}
