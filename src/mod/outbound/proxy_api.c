/* POST /api/v1/proxy/test: "Test connection" with the proxy values of the
 * form, saved or not. The test ran → 200 with {"ok", "message", "stage",
 * "http_status"?, "elapsed_ms"}, whatever its outcome; values that would not
 * pass a PATCH → 422 and no traffic at all. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mod/outbound/internal.h"
#include "core/log.h"
#include "mod/outbound/proxy_test.h"
#include "conf/settings.h"

#define TIMEOUT_ENV "ATRIUM_PROXY_TEST_TIMEOUT_MS"
#define TIMEOUT_MIN_MS 500L
#define TIMEOUT_MAX_MS 120000L

/* One test at a time: a few impatient clicks must not start a crowd of
 * outbound connections. (The test runs on a thread of its own through
 * http_defer, so it never holds one of the server's threads.) */
static atomic_bool running;

typedef struct test_job {
  json_t *values;
  char *license_url;
  long timeout_ms;
  int rc;
  proxy_test_result_t res;
} test_job_t;

static void test_job_free(void *ctx) {
  test_job_t *job = ctx;
  json_decref(job->values);
  free(job->license_url);
  free(job);
}

/* On the job's own thread. */
static void test_job_run(void *ctx) {
  test_job_t *job = ctx;
  job->rc = proxy_test_run(job->values, job->license_url, job->timeout_ms, &job->res);
  atomic_store(&running, false);
}

/* Back on a server thread, once the test has finished. */
static enum MHD_Result test_job_reply(http_request_t *req, void *ctx) {
  test_job_t *job = ctx;
  if (job->rc < 0) return http_reply_oom(req);
  const proxy_test_result_t *res = &job->res;
  log_info("proxy test: stage=%s, elapsed=%ld ms, via_proxy=%s, http_status=%ld", res->stage,
           res->elapsed_ms, res->via_proxy ? "yes" : "no", res->http_status);
  json_t *body = json_pack("{s:b, s:s, s:s, s:I}", "ok", res->ok, "message", res->message,
                           "stage", res->stage, "elapsed_ms", (json_int_t)res->elapsed_ms);
  if (body && res->http_status > 0)
    json_object_set_new(body, "http_status", json_integer(res->http_status));
  return http_reply_json(req, MHD_HTTP_OK, body);
}

static pthread_once_t timeout_once = PTHREAD_ONCE_INIT;
static long timeout_ms = PROXY_TEST_TIMEOUT_MS;

/* ATRIUM_PROXY_TEST_TIMEOUT_MS shortens (or lengthens) the test's budget;
 * the integration tests use it so that a silent proxy costs seconds. */
static void read_timeout(void) {
  const char *text = getenv(TIMEOUT_ENV);
  if (!text || !*text) return;
  char *end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (text[0] < '0' || text[0] > '9' || errno != 0 || *end != '\0' || v < TIMEOUT_MIN_MS ||
      v > TIMEOUT_MAX_MS) {
    log_warning("%s=%s is not a number of milliseconds from %ld to %ld; the proxy test uses "
                "%ld ms",
                TIMEOUT_ENV, text, TIMEOUT_MIN_MS, TIMEOUT_MAX_MS, timeout_ms);
    return;
  }
  timeout_ms = v;
}

enum MHD_Result outbound_proxy_test_api(http_request_t *req) {
  pthread_once(&timeout_once, read_timeout);
  settings_snapshot_t *snap = settings_acquire();
  if (!snap) {
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return http_reply_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "not-ready",
                              "Settings not loaded",
                              "The settings are not loaded yet; try again in a moment.", NULL);
  }
  json_t *values = NULL, *errors = NULL;
  int r = proxy_test_values(snap, http_body_json(req), &values, &errors);
  /* The saved URL, never one from the request: the test must not become a
   * way to make this server fetch arbitrary addresses. */
  char *license_url = strdup(settings_string(snap, "license.server_url"));
  settings_release(snap);
  enum MHD_Result ret;
  if (r == -EBADMSG) {
    ret = http_reply_problem(req, MHD_HTTP_BAD_REQUEST, "malformed", "Malformed request",
                             "The request body must be a JSON object of proxy settings to try, "
                             "such as {\"proxy.host\": \"proxy.example.com\"}, or {} for the "
                             "saved ones.",
                             NULL);
    goto out;
  }
  if (r == -EINVAL) {
    ret = http_reply_problem(req, 422, "validation", "Invalid settings",
                             "Some values cannot be tested because they are invalid; nothing "
                             "was contacted.",
                             errors);
    goto out;
  }
  if (r < 0 || !license_url) {
    ret = http_reply_oom(req);
    goto out;
  }
  bool idle = false;
  if (!atomic_compare_exchange_strong(&running, &idle, true)) {
    http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    ret = http_reply_problem(req, MHD_HTTP_CONFLICT, "test-running", "A test is running",
                             "Another connection test is running; try again when it has "
                             "finished.",
                             NULL);
    goto out;
  }
  test_job_t *job = calloc(1, sizeof *job);
  if (!job) {
    atomic_store(&running, false);
    ret = http_reply_oom(req);
    goto out;
  }
  *job = (test_job_t){.values = values, .license_url = license_url, .timeout_ms = timeout_ms};
  values = NULL;
  license_url = NULL;
  ret = http_defer(req, test_job_run, test_job_reply, job, test_job_free);
  /* If the thread could not start, nothing runs: allow the next test. */
  if (http_reply_status(req) != 0) atomic_store(&running, false);
out:
  free(license_url);
  json_decref(values);
  json_decref(errors);
  return ret;
}
