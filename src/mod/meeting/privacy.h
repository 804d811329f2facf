/* The privacy policy of web meetings: templates in German and English, the
 * operator's copies, and {RetentionTime}.
 *
 * Templates are HTML fragments (the operator's text, inserted into the page
 * as written) named DataPrivacyStatement_<LANG>.html. A copy in the
 * customisation directory wins over the one in the install directory, per
 * language. {RetentionTime} becomes the larger of IMDeleteAfterDays and
 * JournalDeleteAfterDays of atlas.xml, read again whenever the file changes;
 * other {Placeholders} stay as written. Nothing here logs: the caller learns
 * from privacy_retention_get when something is worth a warning. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define PRIVACY_TEMPLATE_MAX (256 * 1024)
#define PRIVACY_PLACEHOLDER "{RetentionTime}"

/* Where templates are looked for when atlas.xml has no <PrivacyDirectory>:
 * the install directory from the build (ATRIUM_PRIVACY_DIR), or, when that
 * holds no template (a build run from its checkout), the checkout's
 * share/privacy; the customisation directory "privacy" beside atlas.xml. */
#define PRIVACY_CUSTOM_SUBDIR "privacy"

typedef enum privacy_lang {
  PRIVACY_LANG_EN,
  PRIVACY_LANG_DE,
  PRIVACY_LANG_COUNT,
} privacy_lang_t;

const char *privacy_lang_code(privacy_lang_t lang);     /* "en", "de" */
const char *privacy_template_name(privacy_lang_t lang); /* "DataPrivacyStatement_EN.html" */
/* The sentence shown instead of the number when it cannot be determined. */
const char *privacy_unknown_sentence(privacy_lang_t lang);

/* ?lang= when it names a language we have ("de", "DE", "de-AT"); else the
 * Accept-Language entry with the highest q-value that we have (ties: the
 * first; q=0 means "not this one"); else English. Either may be NULL. */
privacy_lang_t privacy_pick_language(const char *lang_param, const char *accept_language);

/* The effective directories: configured values win; empty ones get the
 * defaults described above. atlas_path is the absolute path of atlas.xml. */
void privacy_dirs(const char *configured_install, const char *configured_custom,
                  const char *atlas_path, char *install, size_t install_len, char *custom,
                  size_t custom_len);

typedef struct privacy_template {
  char *text; /* NUL-terminated; malloc'd */
  size_t len;
  char path[4200]; /* the file read */
  bool custom;     /* from the customisation directory */
} privacy_template_t;

/* Reads the template of `lang`: custom_dir's copy when it exists, else
 * install_dir's. -ENOENT when neither has it, -EFBIG above
 * PRIVACY_TEMPLATE_MAX, -errno for other read errors of the file that
 * exists (a broken copy is not silently replaced by the original). */
int privacy_template_load(const char *install_dir, const char *custom_dir, privacy_lang_t lang,
                          privacy_template_t *out);
void privacy_template_clear(privacy_template_t *t); /* accepts NULL */

/* Replaces every {RetentionTime} with `days` in decimal, or with
 * privacy_unknown_sentence(lang) when days < 0. *out is malloc'd and
 * NUL-terminated. 0 or -ENOMEM / -EFBIG. */
int privacy_render(const char *tmpl, size_t len, int days, privacy_lang_t lang, char **out,
                   size_t *outlen);

/* ---- the retention time, read from atlas.xml when it changes ------------------ */

typedef struct privacy_retention privacy_retention_t;

/* atlas_path is copied. NULL on out of memory. */
privacy_retention_t *privacy_retention_new(const char *atlas_path);
void privacy_retention_free(privacy_retention_t *r); /* accepts NULL */

/* *days: the larger of the two values, or -1 when it cannot be determined
 * (file missing or broken, or neither value given; err says why). The file
 * is parsed again only when its inode, size, mtime or ctime changed.
 * *changed is true when this call read the file anew (the first call, or the
 * file changed since): the moment to log, once per change. Thread-safe. */
void privacy_retention_get(privacy_retention_t *r, int *days, bool *changed, char *err,
                           size_t errlen);
