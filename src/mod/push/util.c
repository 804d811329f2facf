/* Small things every part of the push module needs. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mod/push/internal.h"

int64_t push_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void push_gateway_url(const settings_snapshot_t *snap, char *out, size_t len) {
  const char *gw = settings_string(snap, "mobile.push_gateway_url");
  const char *slash = strstr(gw, "://");
  slash = slash ? strchr(slash + 3, '/') : NULL;
  /* A bare gateway URL gets the path of the Matrix push gateway API. */
  if (*gw && (!slash || strcmp(slash, "/") == 0))
    snprintf(out, len, "%.*s/_matrix/push/v1/notify",
             (int)(slash ? (size_t)(slash - gw) : strlen(gw)), gw);
  else
    snprintf(out, len, "%s", gw);
}

enum MHD_Result push_reply_field(http_request_t *req, const char *title, const char *key,
                                 const char *message) {
  json_t *errors = json_pack("[{s:s, s:s}]", "key", key, "message", message);
  enum MHD_Result r = http_reply_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation", title,
                                         message, errors);
  json_decref(errors);
  return r;
}
