#include "ctl/config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAVED_DIR "atrium"
#define SAVED_FILE "atriumctl.json"

/* The XDG base directory ($XDG_CONFIG_HOME, else ~/.config). The spec says a
 * relative XDG_CONFIG_HOME is invalid and must be ignored. */
static int config_home(char **out) {
  const char *xdg = getenv("XDG_CONFIG_HOME");
  if (xdg && xdg[0] == '/')
    return (*out = strdup(xdg)) ? 0 : -ENOMEM;
  const char *home = getenv("HOME");
  if (!home || !home[0])
    return -ENOENT;
  return asprintf(out, "%s/.config", home) < 0 ? -ENOMEM : 0;
}

int ctl_saved_path(char **path) {
  char *base = NULL;
  int r = config_home(&base);
  if (r < 0)
    return r;
  r = asprintf(path, "%s/" SAVED_DIR "/" SAVED_FILE, base) < 0 ? -ENOMEM : 0;
  free(base);
  return r;
}

static int dup_field(json_t *doc, const char *name, char **out) {
  json_t *v = json_object_get(doc, name);
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return -EBADMSG;
  return (*out = strdup(json_string_value(v))) ? 0 : -ENOMEM;
}

int ctl_saved_load(ctl_saved_t *saved) {
  saved->url = saved->token = NULL;
  char *path = NULL;
  int r = ctl_saved_path(&path);
  if (r == -ENOENT)
    return 0; /* nowhere to have saved anything */
  if (r < 0)
    return r;
  FILE *f = fopen(path, "re");
  free(path);
  if (!f)
    return errno == ENOENT ? 0 : -errno;
  json_t *doc = json_loadf(f, 0, NULL);
  fclose(f);
  if (!json_is_object(doc)) {
    json_decref(doc);
    return -EBADMSG;
  }
  r = dup_field(doc, "url", &saved->url);
  if (r == 0)
    r = dup_field(doc, "token", &saved->token);
  json_decref(doc);
  if (r < 0)
    ctl_saved_clear(saved);
  return r;
}

void ctl_saved_clear(ctl_saved_t *saved) {
  if (saved->token) {
    explicit_bzero(saved->token, strlen(saved->token));
    free(saved->token);
  }
  free(saved->url);
  saved->url = saved->token = NULL;
}

/* mkdir -p, new directories 0700: ~/.config may not exist yet either. */
static int make_dirs(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    int r = mkdir(path, 0700);
    *p = '/';
    if (r < 0 && errno != EEXIST)
      return -errno;
  }
  if (mkdir(path, 0700) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

int ctl_saved_store(const char *url, const char *token) {
  char *base = NULL, *dir = NULL, *path = NULL, *tmp = NULL, *text = NULL;
  int fd = -1;
  int r = config_home(&base);
  if (r < 0)
    return r;
  if (asprintf(&dir, "%s/" SAVED_DIR, base) < 0 || asprintf(&path, "%s/" SAVED_FILE, dir) < 0 ||
      asprintf(&tmp, "%s/." SAVED_FILE ".XXXXXX", dir) < 0) {
    r = -ENOMEM;
    goto out;
  }
  r = make_dirs(dir);
  /* The directory may predate us with a looser mode; it holds a credential. */
  if (r == 0 && chmod(dir, 0700) < 0)
    r = -errno;
  if (r < 0)
    goto out;

  json_t *doc = json_pack("{s:s, s:s*}", "url", url, "token", token);
  if (!doc) {
    r = -ENOMEM;
    goto out;
  }
  text = json_dumps(doc, JSON_INDENT(2));
  json_decref(doc);
  if (!text) {
    r = -ENOMEM;
    goto out;
  }
  /* mkstemp creates the file 0600, so the token is never readable by others,
   * and rename() replaces the old file in one step. */
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    r = -errno;
    goto out;
  }
  r = write_all(fd, text, strlen(text));
  if (r == 0)
    r = write_all(fd, "\n", 1);
  if (r == 0 && fsync(fd) < 0)
    r = -errno;
  if (close(fd) < 0 && r == 0)
    r = -errno;
  fd = -1;
  if (r == 0 && rename(tmp, path) < 0)
    r = -errno;
  if (r < 0)
    unlink(tmp);

out:
  if (fd >= 0)
    close(fd);
  if (text) {
    explicit_bzero(text, strlen(text));
    free(text);
  }
  free(base);
  free(dir);
  free(path);
  free(tmp);
  return r;
}
