/* /healthz (liveness, no authentication) and /metrics (Prometheus). */
#include <stdlib.h>

#include "mod/admin/internal.h"
#include "core/log.h"
#include "core/metrics.h"
#include "conf/settings.h"

enum MHD_Result admin_health(http_request_t *req) {
  /* Kept cheap on purpose: no store access, a load balancer may poll often. */
  if (http_stopping()) {
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping", "Shutting down",
                              "The server is shutting down.", NULL);
  }
  json_int_t version = 0;
  settings_snapshot_t *snap = settings_acquire();
  if (snap) version = (json_int_t)settings_version(snap);
  settings_release(snap);
  return http_reply_json(req, MHD_HTTP_OK,
                         json_pack("{s:s, s:s, s:I}", "status", "ok", "version", ATRIUM_VERSION,
                                   "settings_version", version));
}

enum MHD_Result admin_metrics(http_request_t *req) {
  char *text;
  size_t len;
  if (metrics_render(&text, &len) != 0) return http_reply_oom(req);
  return http_reply_buffer(req, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                           free, text);
}
