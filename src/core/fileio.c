/* Reading a small file whole: see fileio.h. */
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fileio_read_all(const char *path, size_t max, char **buf, size_t *len) {
  *buf = NULL;
  if (len) *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return -EINVAL;
  }
  if ((uintmax_t)st.st_size > max) {
    close(fd);
    return -EFBIG;
  }
  size_t size = (size_t)st.st_size;
  char *b = malloc(size + 1);
  if (!b) {
    close(fd);
    return -ENOMEM;
  }
  /* Bounded by the size fstat saw: a file that grows meanwhile is cut there,
   * one that shrinks is a torn read and refused. */
  size_t got = 0;
  int r = 0;
  while (got < size) {
    ssize_t n = read(fd, b + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r = -errno;
      break;
    }
    if (n == 0) {
      r = -EIO;
      break;
    }
    got += (size_t)n;
  }
  close(fd);
  if (r != 0) {
    /* Some callers read keys: what was read does not outlive the failure. */
    explicit_bzero(b, got);
    free(b);
    return r;
  }
  b[got] = '\0';
  *buf = b;
  if (len) *len = got;
  return 0;
}
