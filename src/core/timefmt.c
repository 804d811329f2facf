#include "core/timefmt.h"

#include <stdio.h>
#include <time.h>

int64_t time_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void time_rfc3339_ms(int64_t ms, char out[TIMEFMT_LEN]) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(out, TIMEFMT_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, TIMEFMT_LEN - n, ".%03dZ", (int)(ms % 1000));
}

void time_rfc3339_s(int64_t secs, char out[TIMEFMT_LEN]) {
  time_t t = (time_t)secs;
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(out, TIMEFMT_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(out, TIMEFMT_LEN, "1970-01-01T00:00:00Z");
}

bool time_parse_rfc3339(const char *s, int64_t *ms) {
  int y, mo, d, h, mi, sec, n = 0;
  if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
      n != 19)
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
    return false;
  const char *p = s + n;
  int frac = 0, digits = 0;
  if (*p == '.') {
    for (p++; *p >= '0' && *p <= '9'; p++, digits++)
      if (digits < 3) frac = frac * 10 + (*p - '0');
    if (!digits || digits > 9) return false;
    for (int i = digits; i < 3; i++) frac *= 10;
  }
  int offset = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om, m = 0;
    if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5 || oh > 23 || om > 59)
      return false;
    offset = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return false;
  }
  if (*p) return false;
  /* A leap second reads as the second before it. */
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                  .tm_min = mi, .tm_sec = sec > 59 ? 59 : sec};
  time_t t = timegm(&tm);
  struct tm back;
  gmtime_r(&t, &back);
  if (back.tm_mday != d || back.tm_mon != mo - 1) return false;
  *ms = ((int64_t)t - (int64_t)offset * 60) * 1000 + frac;
  return true;
}

void time_rfc3339_local_ms(int64_t ms, char out[TIMEFMT_LEN]) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  localtime_r(&secs, &tm);
  size_t n = strftime(out, TIMEFMT_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
  long off = tm.tm_gmtoff / 60;
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  snprintf(out + n, TIMEFMT_LEN - n, ".%03d%c%02ld:%02ld", (int)(ms % 1000), sign, off / 60,
           off % 60);
}
