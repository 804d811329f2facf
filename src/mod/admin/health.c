/* /healthz (liveness, no authentication) and /metrics (Prometheus). */
#include <stdlib.h>

#include "mod/admin/internal.h"
#include "core/log.h"
#include "core/metrics.h"
#include "conf/settings.h"
#include "mod/cluster/cluster.h"

#include <stdio.h>

enum MHD_Result admin_health(http_request_t *req) {
  /* Kept cheap on purpose: no store access, a load balancer may poll often. */
  if (http_stopping()) {
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping", "Shutting down",
                              "The server is shutting down.", NULL);
  }
  json_int_t version = 0;
  char hash[65] = "";
  settings_snapshot_t *snap = settings_acquire();
  if (snap) {
    version = (json_int_t)settings_version(snap);
    snprintf(hash, sizeof hash, "%s", settings_hash(snap));
  }
  settings_release(snap);
  /* Which node answered, the settings it has in force (nodes that agree
   * show the same hash) and whether it hosts the web meetings: what a load
   * balancer's health check or a person comparing nodes needs. */
  return http_reply_json(req, MHD_HTTP_OK,
                         json_pack("{s:s, s:s, s:I, s:s, s:s, s:b, s:I}", "status", "ok",
                                   "version", ATRIUM_VERSION, "settings_version", version,
                                   "settings_hash", hash, "node", cluster_node_name(),
                                   "meeting_host", cluster_meeting_hosting(), "meeting_epoch",
                                   (json_int_t)cluster_meeting_epoch()));
}

enum MHD_Result admin_metrics(http_request_t *req) {
  char *text;
  size_t len;
  if (metrics_render(&text, &len) != 0) return http_reply_oom(req);
  return http_reply_buffer(req, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                           free, text);
}
