/* Where `atriumctl login` keeps the server URL and the session token:
 * $XDG_CONFIG_HOME/atrium/atriumctl.json (default ~/.config/atrium/...),
 * {"url": "...", "token": "..."}, the file 0600 in a 0700 directory, since
 * the token is as good as the admin password until the session expires. */
#pragma once

typedef struct ctl_saved {
  char *url;   /* NULL when none was saved */
  char *token; /* NULL when none was saved (or after logout) */
} ctl_saved_t;

/* The file's path into a malloc'd *path. -ENOENT when neither
 * XDG_CONFIG_HOME nor HOME is set. */
int ctl_saved_path(char **path);

/* Reads the saved file. A missing file is not an error (both fields NULL);
 * -EBADMSG for a file that is not ours to understand. */
int ctl_saved_load(ctl_saved_t *saved);

/* Writes url and token (token may be NULL: drops it), creating the
 * directories. Replaces the file atomically. */
int ctl_saved_store(const char *url, const char *token);

void ctl_saved_clear(ctl_saved_t *saved);
