#include "stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void stats_init(stats_samples_t *s, size_t max) {
  memset(s, 0, sizeof *s);
  s->max = max;
}

void stats_add_ns(stats_samples_t *s, uint64_t ns) {
  if (s->n >= s->max) {
    s->dropped++;
    return;
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    if (cap > s->max)
      cap = s->max;
    uint32_t *v = realloc(s->v, cap * sizeof *v);
    if (!v) {
      s->dropped++;
      return;
    }
    s->v = v;
    s->cap = cap;
  }
  uint64_t us = ns / 1000;
  s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  s->sorted = 0;
}

void stats_free(stats_samples_t *s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

double stats_quantile_ms(stats_samples_t *s, double q) {
  if (s->n == 0)
    return -1;
  if (!s->sorted) {
    qsort(s->v, s->n, sizeof *s->v, cmp_u32);
    s->sorted = 1;
  }
  size_t rank = (size_t)ceil(q * (double)s->n);
  if (rank < 1)
    rank = 1;
  if (rank > s->n)
    rank = s->n;
  return s->v[rank - 1] / 1000.0;
}

json_t *stats_json(stats_samples_t *s) {
  if (s->n == 0)
    return json_null();
  json_t *o = json_pack("{s:I, s:f, s:f, s:f, s:f}", "n", (json_int_t)(s->n + s->dropped), "p50_ms",
                        stats_quantile_ms(s, 0.50), "p90_ms", stats_quantile_ms(s, 0.90), "p99_ms",
                        stats_quantile_ms(s, 0.99), "max_ms", stats_quantile_ms(s, 1.0));
  if (o && s->dropped)
    json_object_set_new(o, "kept", json_integer((json_int_t)s->n));
  return o;
}

double stats_self_cpu_s(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

long stats_self_maxrss_kib(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return ru.ru_maxrss;
}

double stats_proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name may hold spaces and parentheses: fields start after
   * the last ')'. utime and stime are fields 14 and 15 of proc(5). */
  char *p = strrchr(buf, ')');
  if (!p)
    return -1;
  p++;
  unsigned long long ut = 0, stt = 0;
  int field = 2;
  char *save = NULL;
  for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    field++;
    if (field == 14)
      ut = strtoull(tok, NULL, 10);
    else if (field == 15) {
      stt = strtoull(tok, NULL, 10);
      break;
    }
  }
  if (field != 15)
    return -1;
  long tck = sysconf(_SC_CLK_TCK);
  return (double)(ut + stt) / (double)(tck > 0 ? tck : 100);
}

double stats_machine_busy_s(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f)
    return -1;
  unsigned long long v[8] = {0};
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                 &v[7]);
  fclose(f);
  if (n < 8)
    return -1;
  /* user nice system idle iowait irq softirq steal: everything but idle
   * and iowait is busy */
  unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  long tck = sysconf(_SC_CLK_TCK);
  return (double)busy / (double)(tck > 0 ? tck : 100);
}

long stats_proc_rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kib = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kib;
}
