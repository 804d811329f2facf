/* What atriumctl reads from the user besides options: files, stdin, secrets
 * typed on the terminal, and KEY=VALUE arguments turned into the JSON the
 * settings API expects. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* Reads all of path ("-" for stdin) into a malloc'd NUL-terminated *data.
 * Negative errno on failure. */
int ctl_read_file(const char *path, char **data, size_t *len);

/* Reads a password file (path "-": stdin) into a malloc'd *out: its first
 * line, the rest wiped. Returns CTL_EXIT_OK, or CTL_EXIT_USAGE after saying
 * why on stderr. Release *out with ctl_secret_free. */
int ctl_read_password_file(const char *path, char **out);

/* Prompts on the controlling terminal with echo off and reads one line into
 * a malloc'd *out (without the newline). -ENXIO when there is no terminal,
 * -EINTR when interrupted (the terminal is restored either way). */
int ctl_read_secret_tty(const char *prompt, char **out);

/* Frees a secret after overwriting it. Accepts NULL. */
void ctl_secret_free(char *secret);

/* Builds the body of PATCH /settings and POST /settings/validate from
 * "KEY=VALUE" arguments: each VALUE is converted by the key's type in
 * `schema` (GET /settings/schema; unknown keys are sent as strings so that the
 * server names them). "KEY=-" reads a secret from stdin (or the terminal),
 * "KEY=@FILE" reads a list as JSON from a file. Returns 0, or -EINVAL (usage:
 * err holds a sentence), -EDOM for a bool value atriumctl cannot read
 * (err: "key: sentence"), or another negative errno (err filled too). */
int ctl_build_settings_body(const json_t *schema, char *const *pairs, int count, json_t **body,
                            char *err, size_t errlen);
