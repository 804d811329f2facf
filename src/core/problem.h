/* What came of an operation that can fail in a way a person must read: the
 * HTTP status it maps to, a problem slug, a title, a sentence, and the
 * failing fields. Settings changes, the directory, the domain change and the
 * HTTP replies all speak it, so an error reads the same wherever it comes
 * from (RFC 9457 problem documents once it reaches HTTP).
 *
 * A problem_t starts zeroed (PROBLEM_INIT or problem_init) and is released
 * with problem_clear. Nothing here logs. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define PROBLEM_TYPE_BASE "https://atrium.invalid/problems/"

typedef struct problem {
  unsigned status;  /* HTTP status; 0 while nothing went wrong */
  const char *slug; /* "validation", "store", ...: the end of the type URI */
  char title[128];
  char detail[512];
  json_t *errors; /* [{"key", "message", ...}]; NULL until the first error is added */
} problem_t;

#define PROBLEM_INIT                                                                               \
  { 0 }

void problem_init(problem_t *p);
void problem_clear(problem_t *p); /* accepts NULL; leaves *p as after problem_init */

/* Sets status, slug, title and the sentence (printf format). Returns -1 so
 * that a failing path can end with `return problem_set(...)`. */
int problem_set(problem_t *p, unsigned status, const char *slug, const char *title, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

/* Adds {"key", "message"} to the failing fields and returns the object (for
 * extra members such as "row", "line" or "field"), or NULL on OOM. */
json_t *problem_add_error(problem_t *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends copies of every entry of `errors` (an array; NULL is none). */
void problem_add_errors(problem_t *p, const json_t *errors);

size_t problem_error_count(const problem_t *p);
bool problem_failed(const problem_t *p); /* status is set */

/* The problem as an RFC 9457 document: {"type", "title", "status",
 * "detail", "errors"}. New reference, NULL on OOM. */
json_t *problem_to_json(const problem_t *p);

/* The same from loose parts (a NULL title is the status' reason phrase as
 * given in `reason`). errors is copied; NULL gives []. */
json_t *problem_json(unsigned status, const char *slug, const char *title, const char *detail,
                     const json_t *errors);
