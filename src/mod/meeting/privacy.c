/* The privacy policy: language choice, templates with override precedence,
 * the {RetentionTime} renderer, and the retention time from atlas.xml. */
#include "mod/meeting/privacy.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/atlas.h"
#include "core/fileio.h"

#ifndef ATRIUM_PRIVACY_DIR
#define ATRIUM_PRIVACY_DIR "/usr/local/share/atrium/privacy"
#endif

static const struct {
  const char *code;
  const char *file;
  const char *unknown;
} langs[PRIVACY_LANG_COUNT] = {
    [PRIVACY_LANG_EN] = {"en", "DataPrivacyStatement_EN.html",
                         "The retention time could not be determined; the operator has been "
                         "notified."},
    [PRIVACY_LANG_DE] = {"de", "DataPrivacyStatement_DE.html",
                         "Die Aufbewahrungsdauer konnte nicht ermittelt werden; der Betreiber "
                         "wurde benachrichtigt."},
};

const char *privacy_lang_code(privacy_lang_t lang) {
  return langs[(unsigned)lang < PRIVACY_LANG_COUNT ? lang : PRIVACY_LANG_EN].code;
}

const char *privacy_template_name(privacy_lang_t lang) {
  return langs[(unsigned)lang < PRIVACY_LANG_COUNT ? lang : PRIVACY_LANG_EN].file;
}

const char *privacy_unknown_sentence(privacy_lang_t lang) {
  return langs[(unsigned)lang < PRIVACY_LANG_COUNT ? lang : PRIVACY_LANG_EN].unknown;
}

/* A language tag's primary subtag ("de" of "de-AT"), matched against ours. */
static int lang_of_tag(const char *tag, size_t len) {
  size_t primary = 0;
  while (primary < len && tag[primary] != '-' && tag[primary] != '_') primary++;
  for (int i = 0; i < PRIVACY_LANG_COUNT; i++)
    if (primary == strlen(langs[i].code) && strncasecmp(tag, langs[i].code, primary) == 0)
      return i;
  return -1;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* "q=0.8" → 800; -1 for anything that is not a valid qvalue (RFC 9110 12.4.2). */
static int parse_q(const char *s, size_t len) {
  if (len < 3 || (s[0] != 'q' && s[0] != 'Q') || s[1] != '=') return -1;
  s += 2;
  len -= 2;
  if (s[0] != '0' && s[0] != '1') return -1;
  int v = (s[0] - '0') * 1000, scale = 100;
  if (len == 1) return v;
  if (s[1] != '.' || len > 5) return -1;
  for (size_t i = 2; i < len; i++, scale /= 10) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v += (s[i] - '0') * scale;
  }
  return v > 1000 ? -1 : v;
}

privacy_lang_t privacy_pick_language(const char *lang_param, const char *accept_language) {
  if (lang_param && *lang_param) {
    int l = lang_of_tag(lang_param, strlen(lang_param));
    if (l >= 0) return (privacy_lang_t)l;
  }
  if (!accept_language) return PRIVACY_LANG_EN;
  int best = -1, best_q = 0;
  const char *p = accept_language;
  /* Bounded by the header's length: each round consumes one element. */
  while (*p) {
    const char *end = strchrnul(p, ',');
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *tag_end = semi ? semi : end;
    while (p < tag_end && is_ows(*p)) p++;
    const char *te = tag_end;
    while (te > p && is_ows(te[-1])) te--;
    int q = 1000;
    if (semi) {
      const char *qs = semi + 1;
      while (qs < end && is_ows(*qs)) qs++;
      const char *qe = end;
      while (qe > qs && is_ows(qe[-1])) qe--;
      q = parse_q(qs, (size_t)(qe - qs));
    }
    int l = lang_of_tag(p, (size_t)(te - p));
    if (te - p == 1 && *p == '*') l = PRIVACY_LANG_EN;
    if (l >= 0 && q > best_q) {
      best = l;
      best_q = q;
    }
    p = *end ? end + 1 : end;
  }
  return best >= 0 ? (privacy_lang_t)best : PRIVACY_LANG_EN;
}

static bool has_templates(const char *dir) {
  char path[PATH_MAX];
  for (int i = 0; i < PRIVACY_LANG_COUNT; i++) {
    if (snprintf(path, sizeof path, "%s/%s", dir, langs[i].file) >= (int)sizeof path) return false;
    if (access(path, R_OK) == 0) return true;
  }
  return false;
}

void privacy_dirs(const char *configured_install, const char *configured_custom,
                  const char *atlas_path, char *install, size_t install_len, char *custom,
                  size_t custom_len) {
  if (configured_install && *configured_install) {
    snprintf(install, install_len, "%s", configured_install);
  } else {
    snprintf(install, install_len, "%s", ATRIUM_PRIVACY_DIR);
#ifdef ATRIUM_SOURCE_PRIVACY_DIR
    /* Not installed: `make run` and the tests use the checkout's copies. */
    if (!has_templates(install) && has_templates(ATRIUM_SOURCE_PRIVACY_DIR))
      snprintf(install, install_len, "%s", ATRIUM_SOURCE_PRIVACY_DIR);
#endif
  }
  if (configured_custom && *configured_custom) {
    snprintf(custom, custom_len, "%s", configured_custom);
    return;
  }
  const char *slash = atlas_path ? strrchr(atlas_path, '/') : NULL;
  if (slash)
    snprintf(custom, custom_len, "%.*s/%s", (int)(slash - atlas_path), atlas_path,
             PRIVACY_CUSTOM_SUBDIR);
  else
    snprintf(custom, custom_len, "%s", PRIVACY_CUSTOM_SUBDIR);
}

int privacy_template_load(const char *install_dir, const char *custom_dir, privacy_lang_t lang,
                          privacy_template_t *out) {
  memset(out, 0, sizeof *out);
  const char *dirs[2] = {custom_dir, install_dir};
  for (int i = 0; i < 2; i++) {
    if (!dirs[i] || !*dirs[i]) continue;
    int n = snprintf(out->path, sizeof out->path, "%s/%s", dirs[i], privacy_template_name(lang));
    if (n < 0 || (size_t)n >= sizeof out->path) return -ENAMETOOLONG;
    int r = fileio_read_all(out->path, PRIVACY_TEMPLATE_MAX, &out->text, &out->len);
    if (r == -ENOENT) continue;
    if (r == 0) out->custom = i == 0;
    return r;
  }
  out->path[0] = '\0';
  return -ENOENT;
}

void privacy_template_clear(privacy_template_t *t) {
  if (!t) return;
  free(t->text);
  t->text = NULL;
  t->len = 0;
}

int privacy_render(const char *tmpl, size_t len, int days, privacy_lang_t lang, char **out,
                   size_t *outlen) {
  *out = NULL;
  if (len > PRIVACY_TEMPLATE_MAX) return -EFBIG;
  char number[16];
  const char *value = number;
  if (days >= 0)
    snprintf(number, sizeof number, "%d", days);
  else
    value = privacy_unknown_sentence(lang);
  const size_t plen = sizeof PRIVACY_PLACEHOLDER - 1, vlen = strlen(value);
  size_t count = 0;
  for (const char *p = tmpl; (p = memmem(p, len - (size_t)(p - tmpl), PRIVACY_PLACEHOLDER, plen));
       p += plen)
    count++;
  /* The value is at most ~100 bytes and the template at most 256 KiB: no overflow. */
  size_t total = len + count * vlen - count * plen;
  char *buf = malloc(total + 1);
  if (!buf) return -ENOMEM;
  char *w = buf;
  const char *r = tmpl, *end = tmpl + len;
  for (;;) {
    const char *hit = memmem(r, (size_t)(end - r), PRIVACY_PLACEHOLDER, plen);
    size_t chunk = hit ? (size_t)(hit - r) : (size_t)(end - r);
    memcpy(w, r, chunk);
    w += chunk;
    if (!hit) break;
    memcpy(w, value, vlen);
    w += vlen;
    r = hit + plen;
  }
  *w = '\0';
  *out = buf;
  if (outlen) *outlen = (size_t)(w - buf);
  return 0;
}

/* ---- retention time ------------------------------------------------------------ */

struct privacy_retention {
  atlas_watch_t *watch;
};

privacy_retention_t *privacy_retention_new(const char *atlas_path) {
  privacy_retention_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  if (!(r->watch = atlas_watch_new(atlas_path))) {
    free(r);
    return NULL;
  }
  return r;
}

void privacy_retention_free(privacy_retention_t *r) {
  if (!r) return;
  atlas_watch_free(r->watch);
  free(r);
}

void privacy_retention_get(privacy_retention_t *r, int *days, bool *changed, char *err,
                           size_t errlen) {
  atlas_live_t live;
  char why[512];
  atlas_watch_get(r->watch, &live, changed, why, sizeof why);
  *days = -1;
  if (live.ok) {
    *days = live.im_delete_after_days > live.journal_delete_after_days
                ? live.im_delete_after_days
                : live.journal_delete_after_days;
    if (*days < 0)
      snprintf(why, sizeof why,
               "%s gives neither <IMDeleteAfterDays> nor <JournalDeleteAfterDays>; the privacy "
               "policy cannot state the retention time",
               atlas_watch_path(r->watch));
  }
  if (err && errlen) snprintf(err, errlen, "%s", *days >= 0 ? "" : why);
}
