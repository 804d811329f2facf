#include "core/problem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void problem_init(problem_t *p) { memset(p, 0, sizeof *p); }

void problem_clear(problem_t *p) {
  if (!p) return;
  json_decref(p->errors);
  problem_init(p);
}

int problem_set(problem_t *p, unsigned status, const char *slug, const char *title, const char *fmt,
                ...) {
  p->status = status;
  p->slug = slug;
  snprintf(p->title, sizeof p->title, "%s", title ? title : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->detail, sizeof p->detail, fmt, ap);
  va_end(ap);
  return -1;
}

static json_t *errors_array(problem_t *p) {
  if (!p->errors) p->errors = json_array();
  return p->errors;
}

json_t *problem_add_error(problem_t *p, const char *key, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *list = errors_array(p);
  json_t *e = json_pack("{s:s, s:s}", "key", key ? key : "", "message", msg);
  if (!list || !e || json_array_append_new(list, e) < 0) return NULL;
  return e;
}

void problem_add_errors(problem_t *p, const json_t *errors) {
  if (!json_is_array(errors) || !json_array_size(errors)) return;
  json_t *list = errors_array(p);
  size_t i;
  const json_t *e;
  json_array_foreach(errors, i, e) json_array_append_new(list, json_deep_copy(e));
}

size_t problem_error_count(const problem_t *p) {
  return p->errors ? json_array_size(p->errors) : 0;
}

bool problem_failed(const problem_t *p) { return p->status != 0; }

json_t *problem_json(unsigned status, const char *slug, const char *title, const char *detail,
                     const json_t *errors) {
  char type[160];
  snprintf(type, sizeof type, "%s%s", PROBLEM_TYPE_BASE, slug ? slug : "internal");
  json_t *errs = errors ? json_deep_copy(errors) : json_array();
  if (!errs) return NULL;
  return json_pack("{s:s, s:s, s:i, s:s, s:o}", "type", type, "title", title ? title : "", "status",
                   (json_int_t)status, "detail", detail ? detail : "", "errors", errs);
}

json_t *problem_to_json(const problem_t *p) {
  return problem_json(p->status, p->slug, p->title, p->detail, p->errors);
}
