/* Reading a small file whole: configuration, TLS material, templates. */
#pragma once

#include <stddef.h>

/* Reads the regular file at `path` into a malloc'd, NUL-terminated *buf of
 * *len bytes (len may be NULL). 0; -errno from open, fstat or read; -EINVAL
 * when it is not a regular file; -EFBIG when it is larger than `max` bytes;
 * -EIO when it shrank while being read; -ENOMEM. *buf is NULL on failure.
 * Does not log: each caller words its own message. */
int fileio_read_all(const char *path, size_t max, char **buf, size_t *len);
