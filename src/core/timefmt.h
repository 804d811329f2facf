/* Times as the APIs write them: RFC 3339 in UTC with milliseconds
 * ("2026-12-01T10:00:03.417Z"), and back. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define TIMEFMT_LEN 32

/* Unix milliseconds, wall clock. */
int64_t time_now_ms(void);
void time_rfc3339_ms(int64_t ms, char out[TIMEFMT_LEN]);
/* Whole seconds, UTC ("2026-12-01T10:00:00Z"): expiry times. */
void time_rfc3339_s(int64_t secs, char out[TIMEFMT_LEN]);
/* The same in the server's time zone (TZ), with its offset
 * ("2026-12-01T11:00:03.417+01:00"): what a person reads. */
void time_rfc3339_local_ms(int64_t ms, char out[TIMEFMT_LEN]);
/* "2026-12-01T10:00:00Z", with or without a fraction, 'Z' or an offset
 * "+01:00"; a day that does not exist (31 February) is refused. true and
 * *ms, or false. */
bool time_parse_rfc3339(const char *s, int64_t *ms);
