/* libFuzzer target for the privacy policy renderer (src/privacy.c): the
 * operator's template goes through privacy_render, and the same bytes as a
 * header through privacy_pick_language. Besides crashes and leaks it checks
 * the contract: no {RetentionTime} survives, the length is exactly what the
 * replacements give, and everything else is copied unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mod/meeting/privacy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count(const char *s, size_t len, const char *needle) {
  size_t n = 0, nl = strlen(needle);
  for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), needle, nl)); p += nl) n++;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  /* First byte: the retention value (or "unknown") and the language. */
  int days = data[0] & 0x80 ? -1 : (data[0] & 0x7f) * 301;
  privacy_lang_t lang = (data[0] & 1) ? PRIVACY_LANG_DE : PRIVACY_LANG_EN;
  const char *tmpl = (const char *)data + 1;
  size_t len = size - 1;

  char *out = NULL;
  size_t outlen = 0;
  if (privacy_render(tmpl, len, days, lang, &out, &outlen) != 0) return 0;
  char number[16];
  snprintf(number, sizeof number, "%d", days);
  const char *value = days >= 0 ? number : privacy_unknown_sentence(lang);
  size_t hits = count(tmpl, len, PRIVACY_PLACEHOLDER);
  size_t want = len - hits * strlen(PRIVACY_PLACEHOLDER) + hits * strlen(value);
  if (outlen != want || out[outlen] != '\0') abort();
  /* A placeholder may only reappear where the input spelt it across a
   * replaced one, and the value itself holds no braces: none may survive. */
  if (count(out, outlen, PRIVACY_PLACEHOLDER) != 0) abort();
  if (hits == 0 && memcmp(out, tmpl, len) != 0) abort();
  free(out);

  char *header = malloc(len + 1);
  if (!header) return 0;
  memcpy(header, tmpl, len);
  header[len] = '\0';
  privacy_lang_t l = privacy_pick_language(header, header);
  if ((unsigned)l >= PRIVACY_LANG_COUNT) abort();
  l = privacy_pick_language(NULL, header);
  if ((unsigned)l >= PRIVACY_LANG_COUNT) abort();
  free(header);
  return 0;
}
