/* Latency samples with percentiles, and the CPU and memory figures of this
 * process (getrusage) and of the server (/proc/<pid>). */
#ifndef RTLOAD_STATS_H
#define RTLOAD_STATS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct stats_samples {
  uint32_t *v; /* microseconds */
  size_t n, cap, max;
  size_t dropped; /* samples beyond max, counted but not kept */
  int sorted;
} stats_samples_t;

/* max bounds memory: beyond it samples are counted in dropped only. */
void stats_init(stats_samples_t *s, size_t max);
void stats_add_ns(stats_samples_t *s, uint64_t ns);
void stats_free(stats_samples_t *s);
/* q in [0,1], nearest-rank; milliseconds; -1 when empty. */
double stats_quantile_ms(stats_samples_t *s, double q);
/* {"n", "p50_ms", "p90_ms", "p99_ms", "max_ms"} or JSON null when empty. */
json_t *stats_json(stats_samples_t *s);

/* This process's user+system CPU seconds. */
double stats_self_cpu_s(void);
/* utime+stime of pid in seconds from /proc/<pid>/stat; -1 if unreadable. */
double stats_proc_cpu_s(pid_t pid);
/* VmRSS of pid in KiB from /proc/<pid>/status; -1 if unreadable. */
long stats_proc_rss_kib(pid_t pid);
/* Busy CPU seconds of the whole machine (all CPUs: user, nice, system,
 * irq, softirq, steal of /proc/stat); -1 if unreadable. */
double stats_machine_busy_s(void);
/* This process's peak RSS in KiB. */
long stats_self_maxrss_kib(void);

#endif
