/* Temporary directories for the unit tests: made below $ATRIUM_TEST_TMPDIR
 * (the build directory, which meson sets) or /tmp, and removed with all they
 * hold. Needs nothing but libc, so that every test can link it. */
#pragma once

#include <stddef.h>

/* Makes a new directory "<base>/<prefix>-XXXXXX" and writes its path to dir.
 * Returns 0, or -1 (errno set) when it does not fit in len or mkdtemp fails. */
int fixture_mkdtemp(char *dir, size_t len, const char *prefix);

/* Removes dir and everything below it, without following links. Returns 0,
 * or -1 when something could not be removed. */
int fixture_rmtree(const char *dir);
