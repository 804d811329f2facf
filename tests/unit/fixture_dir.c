/* Temporary directories for the unit tests; see fixture_dir.h. */
#include "fixture_dir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int fixture_mkdtemp(char *dir, size_t len, const char *prefix) {
  const char *base = getenv("ATRIUM_TEST_TMPDIR");
  if (!base || !*base) base = "/tmp";
  int n = snprintf(dir, len, "%s/%s-XXXXXX", base, prefix);
  if (n < 0 || (size_t)n >= len) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return mkdtemp(dir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(path);
}

int fixture_rmtree(const char *dir) {
  return nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}
