#include "core/metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

static struct {
  metrics_write_fn fn;
  void *ctx;
} writers[METRICS_WRITERS_MAX];
static atomic_size_t writer_count; /* published after the slot is written */

int metrics_register(metrics_write_fn fn, void *ctx) {
  size_t n = atomic_load(&writer_count);
  if (n >= METRICS_WRITERS_MAX) return -ENOSPC;
  writers[n].fn = fn;
  writers[n].ctx = ctx;
  atomic_store(&writer_count, n + 1);
  return 0;
}

void metrics_clear(void) { atomic_store(&writer_count, 0); }

int metrics_render(char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  if (!f) return -ENOMEM;
  fputs("# HELP atrium_build_info Atrium version; always 1.\n"
        "# TYPE atrium_build_info gauge\n"
        "atrium_build_info{version=\"" ATRIUM_VERSION "\"} 1\n",
        f);
  for (size_t i = 0, n = atomic_load(&writer_count); i < n; i++) writers[i].fn(f, writers[i].ctx);
  if (ferror(f)) {
    fclose(f);
    free(buf);
    return -ENOMEM;
  }
  if (fclose(f) != 0) {
    free(buf);
    return -ENOMEM;
  }
  *text = buf;
  *len = size;
  return 0;
}
