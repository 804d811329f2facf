/* The sender: one thread that owns a libcurl multi handle. It leases due
 * notifications from the outbox, sends each as one HTTP/2 stream (APNs, FCM
 * and the gateway each get one multiplexed connection per route), and
 * writes every outcome back in one transaction per round: sent, given up,
 * or due again later. A crash leaves leases that the next start gives back,
 * so every notification goes out at least once; the APNs id and the
 * collapse id, fixed at enqueue, make a repeat the same notification.
 *
 * Retries back off exponentially with jitter and honour Retry-After; a
 * stream that got no answer because the connection went away (a GOAWAY, a
 * refused stream) is sent again without counting an attempt. Each provider
 * has a circuit breaker: after BREAKER_FAILURES failures in a row nothing is
 * sent to it for a while, doubling up to BREAKER_OPEN_MAX_MS.
 *
 * libcurl is driven by its socket interface (curl_multi_socket_action over
 * an epoll set): curl_multi_poll would hand poll() one entry per transfer,
 * up to a thousand copies of the same connection, at every wait. Easy
 * handles are kept for the next notification instead of being made and
 * freed for each. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "mod/outbound/outbound.h"
#include "mod/push/internal.h"

#define INFLIGHT_MAX 1000 /* Apple's stream limit per connection */
#define WINDOW_MIN 64
#define WINDOW_MIN_RTT_SPAN_MS 10000
#define CLAIM_BATCH 500
#define LEASE_MS 120000
#define REQUEST_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 10000L
#define ATTEMPTS_MAX 10
#define BACKOFF_BASE_MS 1000
#define BACKOFF_MAX_MS 300000
#define RETRY_AFTER_MAX_S 3600
#define UNCONFIGURED_RETRY_MS 60000
#define IDLE_POLL_MS 1000
#define APNS_TOKEN_REFRESH_S (40 * 60) /* Apple: not older than 60 min, not newer than 20 */
#define APNS_TOKEN_MIN_S (20 * 60)
#define BREAKER_FAILURES 5
#define BREAKER_OPEN_MIN_MS 2000
#define BREAKER_OPEN_MAX_MS 300000
#define LOST_BEFORE_OPEN 50
#define NOT_FOR_TOPIC_BURST 3
#define NOT_FOR_TOPIC_WINDOW_MS 60000
#define PURGE_INTERVAL_MS 600000
#define PURGE_AGE_MS (24LL * 3600 * 1000)
#define RESPONSE_MAX 16384
#define REASONS_MAX 48
#define EASY_POOL_MAX INFLIGHT_MAX
#define EPOLL_BATCH 64

/* ---- clocks ------------------------------------------------------------------------------- */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a notification on its way ----------------------------------------------------------- */

typedef enum outcome_kind {
  OUT_NONE,
  OUT_SENT,
  OUT_FAILED,
  OUT_RETRY,      /* counts an attempt */
  OUT_RETRY_FREE, /* does not (no answer came, or we held it back) */
} outcome_kind_t;

typedef struct job {
  struct job *next;
  struct job *aprev, *anext; /* in S.active while its transfer runs */
  CURL *easy;
  struct curl_slist *headers;
  char *body;
  char *resp;
  size_t resp_len;
  long retry_after_s;
  push_provider_t provider;
  bool token_fetch; /* the FCM OAuth2 token request, not a notification */
  bool via_proxy;
  /* the row */
  int64_t id, user_id, ref_id, peer_id, created_ms, expires_ms, attempts;
  int priority;
  char device_id[129], platform[16], kind[16], apns_id[40], collapse_id[80], push_type[16];
  char *token, *payload;
  /* what became of it */
  outcome_kind_t outcome;
  int64_t next_ms;
  char reason[160];
  char reason_buf[64];
  bool prune;
  int64_t prune_before_ms;
} job_t;

static void easy_release(CURL *h);
static void window_reset(void);

static void job_free(job_t *j) {
  if (!j) return;
  easy_release(j->easy);
  curl_slist_free_all(j->headers);
  free(j->body);
  free(j->resp);
  free(j->token);
  free(j->payload);
  free(j);
}

/* ---- the sender's state ------------------------------------------------------------------- */

typedef struct breaker {
  int failures;  /* in a row */
  int lost;      /* answers lost in a row (connection gone) */
  int64_t open_until_ms;
  int64_t open_ms; /* the last opening's length */
} breaker_t;

typedef struct reason_count {
  char provider[8];
  char reason[48];
  uint64_t count;
} reason_count_t;

static struct {
  store_t *store;
  CURLM *multi;
  int epoll_fd, wake_fd;
  int64_t curl_timer_at; /* monotonic ms; -1: none */
  CURL *easy_pool[EASY_POOL_MAX];
  size_t easy_pooled;
  pthread_t thread;
  bool started;
  atomic_bool stop;
  atomic_bool woken;
  char owner[128];

  /* Configuration, rebuilt when the settings version changes. */
  uint64_t settings_version;
  bool configured;
  bool gateway;
  char apns_base[512], fcm_base[512], gateway_url[1024], gateway_app_id[256];
  char apns_topic[160], apns_key_id[16], apns_team_id[16];
  gnutls_privkey_t apns_key;
  char apns_config_error[512];
  push_fcm_account_t fcm;
  bool fcm_ok;
  char fcm_config_error[512];
  outbound_proxy_t proxy;
  bool proxy_ok;

  char *apns_jwt;
  int64_t apns_jwt_iat; /* unix seconds */
  char *fcm_token;
  int64_t fcm_token_until_ms, fcm_token_at_ms, fcm_retry_at_ms;
  bool fcm_fetching;

  breaker_t breaker[PUSH_PROVIDER_COUNT];
  int64_t not_for_topic_at[NOT_FOR_TOPIC_BURST];
  size_t not_for_topic_next;
  bool apns_stopped; /* a burst of DeviceTokenNotForTopic: until the settings change */
  int64_t next_purge_ms;

  size_t inflight;
  struct {
    size_t size;            /* streams the sender may have open now */
    int64_t second_at;      /* monotonic ms: the start of the second being counted */
    uint64_t answers;       /* in that second */
    int64_t min_us, min_prev_us, min_at; /* the shortest answer time, this span and the last */
  } window;
  job_t *active; /* transfers running */
  job_t *done;   /* outcomes to write */

  /* Read by other threads. */
  pthread_mutex_t lock;
  push_counters_t counters;
  reason_count_t reasons[REASONS_MAX];
  size_t nreasons;
  char warning[512];
  char error[1024];
  int64_t error_at;
  int64_t apns_token_made_ms, fcm_token_made_ms;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER, .epoll_fd = -1, .wake_fd = -1, .curl_timer_at = -1};

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&S.lock);
  bool same = strcmp(S.error, msg) == 0;
  snprintf(S.error, sizeof S.error, "%s", msg);
  S.error_at = push_wall_ms() / 1000;
  pthread_mutex_unlock(&S.lock);
  /* Once per distinct sentence: a failing provider must not flood the log. */
  if (!same) log_warning("push: %s", msg);
}

static void set_warning(const char *msg) {
  pthread_mutex_lock(&S.lock);
  snprintf(S.warning, sizeof S.warning, "%s", msg);
  pthread_mutex_unlock(&S.lock);
}

static void count_failure(push_provider_t p, const char *reason) {
  pthread_mutex_lock(&S.lock);
  S.counters.failed[p]++;
  size_t i = 0;
  while (i < S.nreasons &&
         (strcmp(S.reasons[i].reason, reason) || strcmp(S.reasons[i].provider, push_provider_name(p))))
    i++;
  if (i == S.nreasons && S.nreasons < REASONS_MAX) {
    snprintf(S.reasons[i].provider, sizeof S.reasons[i].provider, "%s", push_provider_name(p));
    snprintf(S.reasons[i].reason, sizeof S.reasons[i].reason, "%s", reason);
    S.nreasons++;
  }
  if (i < S.nreasons) S.reasons[i].count++;
  pthread_mutex_unlock(&S.lock);
}

void push_counters(push_counters_t *out) {
  pthread_mutex_lock(&S.lock);
  *out = S.counters;
  int64_t now = push_wall_ms();
  out->apns_token_age_s = S.apns_token_made_ms ? (now - S.apns_token_made_ms) / 1000 : -1;
  out->fcm_token_age_s = S.fcm_token_made_ms ? (now - S.fcm_token_made_ms) / 1000 : -1;
  pthread_mutex_unlock(&S.lock);
}

static void note_token_made(int64_t *at) {
  pthread_mutex_lock(&S.lock);
  *at = push_wall_ms();
  pthread_mutex_unlock(&S.lock);
}

void push_write_reason_metrics(FILE *f) {
  fputs("# HELP atrium_push_failed_by_reason_total Notifications given up, by provider and "
        "reason.\n# TYPE atrium_push_failed_by_reason_total counter\n",
        f);
  pthread_mutex_lock(&S.lock);
  for (size_t i = 0; i < S.nreasons; i++)
    fprintf(f, "atrium_push_failed_by_reason_total{provider=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
            S.reasons[i].provider, S.reasons[i].reason, S.reasons[i].count);
  pthread_mutex_unlock(&S.lock);
}

void push_sender_status(char *warning, size_t wlen, char *error, size_t elen, int64_t *error_at) {
  pthread_mutex_lock(&S.lock);
  snprintf(warning, wlen, "%s", S.warning);
  snprintf(error, elen, "%s", S.error);
  *error_at = S.error_at;
  pthread_mutex_unlock(&S.lock);
}

static void wake_thread(void) {
  uint64_t one = 1;
  if (S.wake_fd >= 0 && write(S.wake_fd, &one, sizeof one) < 0) {
    /* The counter is full: the thread is due to wake anyway. */
  }
}

void push_sender_wake(void) {
  atomic_store(&S.woken, true);
  if (S.started) wake_thread();
}

/* ---- libcurl's sockets and timer ---------------------------------------------------------- */

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  (void)userp;
  (void)socketp;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(S.epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    return 0;
  }
  struct epoll_event ev = {.data.fd = fd};
  if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
  if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
  if (epoll_ctl(S.epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
    epoll_ctl(S.epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  (void)userp;
  S.curl_timer_at = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
  return 0;
}

/* Waits at most wait_ms for libcurl's sockets, its timer or a wake-up, and
 * lets libcurl act on what happened. */
static void drive_curl(int wait_ms) {
  int64_t now = mono_ms();
  if (S.curl_timer_at >= 0) {
    int64_t until = S.curl_timer_at - now;
    if (until < wait_ms) wait_ms = until < 0 ? 0 : (int)until;
  }
  struct epoll_event ev[EPOLL_BATCH];
  int n = epoll_wait(S.epoll_fd, ev, EPOLL_BATCH, wait_ms);
  int running = 0;
  for (int i = 0; i < n; i++) {
    int fd = ev[i].data.fd;
    if (fd == S.wake_fd) {
      uint64_t count;
      if (read(S.wake_fd, &count, sizeof count) < 0) {
        /* EAGAIN: another read took it */
      }
      continue;
    }
    int flags = 0;
    if (ev[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (ev[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (ev[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(S.multi, fd, flags, &running);
  }
  if (S.curl_timer_at >= 0 && mono_ms() >= S.curl_timer_at) {
    S.curl_timer_at = -1;
    curl_multi_socket_action(S.multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
}

/* ---- the stream window ------------------------------------------------------------------ *
 * How many streams to keep open: enough to cover the provider's round trip
 * at the rate it answers (twice rate x the shortest answer time of the last
 * 10-20 s, plus WINDOW_MIN), at most Apple's 1,000. A distant provider gets
 * the 1,000 streams its round trip needs; a near one, where more streams
 * would only queue, gets fewer, and libcurl 7.88, which visits every open
 * transfer of a connection whenever that connection has something to read,
 * does far less work for the same rate. */

static void window_reset(void) {
  memset(&S.window, 0, sizeof S.window);
  S.window.size = WINDOW_MIN;
  S.window.min_us = S.window.min_prev_us = -1;
  pthread_mutex_lock(&S.lock);
  S.counters.stream_window = S.window.size;
  pthread_mutex_unlock(&S.lock);
}

static void window_note_answer(int64_t answer_us) {
  int64_t now = mono_ms();
  if (answer_us > 0) {
    if (S.window.min_us < 0 || answer_us < S.window.min_us) S.window.min_us = answer_us;
    if (now - S.window.min_at >= WINDOW_MIN_RTT_SPAN_MS) {
      S.window.min_prev_us = S.window.min_us;
      S.window.min_us = -1;
      S.window.min_at = now;
    }
  }
  S.window.answers++;
  int64_t span = now - S.window.second_at;
  if (span < 1000) return;
  double rate = (double)S.window.answers * 1000.0 / (double)span;
  S.window.answers = 0;
  S.window.second_at = now;
  int64_t rtt = S.window.min_us;
  if (rtt < 0 || (S.window.min_prev_us >= 0 && S.window.min_prev_us < rtt))
    rtt = S.window.min_prev_us;
  if (rtt < 0) return;
  double want = 2.0 * rate * (double)rtt / 1e6 + WINDOW_MIN;
  S.window.size = want > INFLIGHT_MAX ? INFLIGHT_MAX : (size_t)want;
  pthread_mutex_lock(&S.lock);
  S.counters.stream_window = S.window.size;
  pthread_mutex_unlock(&S.lock);
}

/* ---- easy handles, kept for the next notification ------------------------------------------ */

static CURL *easy_take(void) {
  if (S.easy_pooled) return S.easy_pool[--S.easy_pooled];
  return curl_easy_init();
}

/* Only for a handle that is in no multi handle. */
static void easy_release(CURL *h) {
  if (!h) return;
  if (S.easy_pooled < EASY_POOL_MAX) {
    curl_easy_reset(h);
    S.easy_pool[S.easy_pooled++] = h;
  } else {
    curl_easy_cleanup(h);
  }
}

static void easy_pool_clear(void) {
  while (S.easy_pooled) curl_easy_cleanup(S.easy_pool[--S.easy_pooled]);
}

/* ---- configuration ------------------------------------------------------------------------ */

void push_endpoints(const settings_snapshot_t *snap, char *apns, size_t alen, char *fcm,
                    size_t flen) {
  const char *a = getenv("ATRIUM_PUSH_APNS_URL"), *f = getenv("ATRIUM_PUSH_FCM_URL");
  if (a && *a)
    snprintf(apns, alen, "%s", a);
  else
    snprintf(apns, alen, "%s",
             strcmp(settings_string(snap, "mobile.apns_environment"), "sandbox") == 0
                 ? "https://api.sandbox.push.apple.com"
                 : "https://api.push.apple.com");
  snprintf(fcm, flen, "%s", f && *f ? f : "https://fcm.googleapis.com");
}

static void forget_config(void) {
  if (S.apns_key) gnutls_privkey_deinit(S.apns_key);
  S.apns_key = NULL;
  push_fcm_account_clear(&S.fcm);
  S.fcm_ok = false;
  outbound_proxy_clear(&S.proxy);
  S.proxy_ok = false;
  free(S.apns_jwt);
  S.apns_jwt = NULL;
  free(S.fcm_token);
  S.fcm_token = NULL;
  S.fcm_token_until_ms = S.fcm_retry_at_ms = 0;
}

static void refresh_config(const settings_snapshot_t *snap) {
  uint64_t v = settings_version(snap);
  if (S.configured && v == S.settings_version) return;
  forget_config();
  S.configured = true;
  S.settings_version = v;
  S.gateway = strcmp(settings_string(snap, "mobile.push_mode"), "gateway") == 0;
  push_endpoints(snap, S.apns_base, sizeof S.apns_base, S.fcm_base, sizeof S.fcm_base);
  push_gateway_url(snap, S.gateway_url, sizeof S.gateway_url);
  snprintf(S.gateway_app_id, sizeof S.gateway_app_id, "%s",
           settings_string(snap, "mobile.push_gateway_app_id"));
  snprintf(S.apns_topic, sizeof S.apns_topic, "%s", settings_string(snap, "mobile.apns_topic"));
  snprintf(S.apns_key_id, sizeof S.apns_key_id, "%s", settings_string(snap, "mobile.apns_key_id"));
  snprintf(S.apns_team_id, sizeof S.apns_team_id, "%s",
           settings_string(snap, "mobile.apns_team_id"));
  S.apns_config_error[0] = S.fcm_config_error[0] = '\0';
  const json_t *key = settings_value(snap, "mobile.apns_key");
  char err[400];
  if (!S.apns_key_id[0] || !S.apns_team_id[0] || !S.apns_topic[0] || !json_is_string(key) ||
      !*json_string_value(key))
    snprintf(S.apns_config_error, sizeof S.apns_config_error,
             "APNs is not configured: set mobile.apns_key_id, mobile.apns_team_id, "
             "mobile.apns_topic and mobile.apns_key.");
  else if (push_es256_key_load(json_string_value(key), &S.apns_key, err, sizeof err) < 0)
    snprintf(S.apns_config_error, sizeof S.apns_config_error, "mobile.apns_key: %s", err);
  const json_t *fcm = settings_value(snap, "mobile.fcm_service_account");
  if (!json_is_string(fcm) || !*json_string_value(fcm))
    snprintf(S.fcm_config_error, sizeof S.fcm_config_error,
             "FCM is not configured: set mobile.fcm_service_account.");
  else if (push_fcm_account_parse(json_string_value(fcm), &S.fcm, err, sizeof err) < 0)
    snprintf(S.fcm_config_error, sizeof S.fcm_config_error, "mobile.fcm_service_account: %s", err);
  else
    S.fcm_ok = true;
  S.proxy_ok = outbound_proxy_from_settings(snap, OUTBOUND_PUSH, &S.proxy) == 0;
  /* A changed topic or key is the admin's answer to the warning. */
  S.apns_stopped = false;
  memset(S.not_for_topic_at, 0, sizeof S.not_for_topic_at);
  memset(S.breaker, 0, sizeof S.breaker);
  /* The route may have changed (a proxy, another endpoint): its round trip
   * is measured again. */
  window_reset();
  set_warning("");
}

/* The provider token, made again when it is APNS_TOKEN_REFRESH_S old. */
static const char *apns_jwt(bool force) {
  int64_t now = push_wall_ms() / 1000;
  bool old = !S.apns_jwt || now - S.apns_jwt_iat >= APNS_TOKEN_REFRESH_S ||
             (force && now - S.apns_jwt_iat >= APNS_TOKEN_MIN_S);
  if (old || (force && !S.apns_jwt)) {
    char *jwt = NULL;
    if (push_jwt_es256(S.apns_key, S.apns_key_id, S.apns_team_id, now, &jwt) < 0) {
      set_error("The APNs provider token cannot be signed with mobile.apns_key.");
      return NULL;
    }
    free(S.apns_jwt);
    S.apns_jwt = jwt;
    S.apns_jwt_iat = now;
    note_token_made(&S.apns_token_made_ms);
  }
  return S.apns_jwt;
}

/* ---- transfers ---------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
  job_t *j = userdata;
  size_t len = size * nmemb;
  size_t room = RESPONSE_MAX - j->resp_len;
  size_t take = len < room ? len : room;
  char *p = realloc(j->resp, j->resp_len + take + 1);
  if (!p) return 0;
  j->resp = p;
  memcpy(j->resp + j->resp_len, data, take);
  j->resp_len += take;
  j->resp[j->resp_len] = '\0';
  return len;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
  job_t *j = userdata;
  size_t len = size * nmemb;
  if (len > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
    char v[64];
    size_t n = len - 12 < sizeof v - 1 ? len - 12 : sizeof v - 1;
    memcpy(v, data + 12, n);
    v[n] = '\0';
    char *s = v;
    while (*s == ' ') s++;
    char *end = NULL;
    long secs = strtol(s, &end, 10);
    if (end != s && (*end == '\r' || *end == '\n' || *end == '\0')) {
      j->retry_after_s = secs;
    } else {
      time_t at = curl_getdate(s, NULL);
      if (at > 0) j->retry_after_s = (long)(at - time(NULL));
    }
    if (j->retry_after_s < 0) j->retry_after_s = 0;
    if (j->retry_after_s > RETRY_AFTER_MAX_S) j->retry_after_s = RETRY_AFTER_MAX_S;
  }
  return len;
}

static int64_t backoff_ms(int64_t attempts, long retry_after_s) {
  int64_t d = BACKOFF_BASE_MS;
  for (int64_t i = 0; i < attempts && d < BACKOFF_MAX_MS; i++) d *= 2;
  if (d > BACKOFF_MAX_MS) d = BACKOFF_MAX_MS;
  /* Half fixed, half random: retries of a burst spread out instead of
   * coming back together. */
  int64_t wait = d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2 + 1));
  if (retry_after_s * 1000 > wait) wait = retry_after_s * 1000;
  return wait;
}

static void finish(job_t *j, outcome_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(job_t *j, outcome_kind_t kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->reason, sizeof j->reason, fmt, ap);
  va_end(ap);
  int64_t now = push_wall_ms();
  if (kind == OUT_RETRY && j->attempts + 1 >= ATTEMPTS_MAX) kind = OUT_FAILED;
  if (kind == OUT_RETRY) j->next_ms = now + backoff_ms(j->attempts, j->retry_after_s);
  if ((kind == OUT_RETRY || kind == OUT_RETRY_FREE) && j->expires_ms <= now) {
    kind = OUT_FAILED;
    snprintf(j->reason, sizeof j->reason, "expired");
  }
  j->outcome = kind;
  j->next = S.done;
  S.done = j;
}

static void retry_free_at(job_t *j, int64_t at, const char *reason) {
  j->next_ms = at;
  finish(j, OUT_RETRY_FREE, "%s", reason);
}

/* The first word of a reason: what the metrics and the outbox keep. */
static void reason_key(const char *reason, char *out, size_t len) {
  size_t n = strcspn(reason, " :");
  if (n >= len) n = len - 1;
  memcpy(out, reason, n);
  out[n] = '\0';
}

/* Writes the round's outcomes in one transaction. */
typedef struct apply_ctx {
  job_t *list;
  int64_t now;
} apply_ctx_t;

static int apply_txn(store_txn_t *t, void *vctx) {
  apply_ctx_t *a = vctx;
  for (job_t *j = a->list; j; j = j->next) {
    int r = 0;
    switch (j->outcome) {
    case OUT_SENT: r = store_push_finish(t, j->id, "sent", NULL, a->now); break;
    case OUT_FAILED: r = store_push_finish(t, j->id, "failed", j->reason, a->now); break;
    case OUT_RETRY: r = store_push_retry(t, j->id, j->next_ms, true, j->reason); break;
    case OUT_RETRY_FREE: r = store_push_retry(t, j->id, j->next_ms, false, j->reason); break;
    case OUT_NONE: break;
    }
    /* Gone meanwhile (a read cancelled it): nothing to write. */
    if (r == -ENOENT) r = 0;
    if (r == 0 && j->prune) {
      bool pruned = false;
      r = store_push_token_prune(t, j->user_id, j->device_id, j->token, j->prune_before_ms,
                                 &pruned);
      j->prune = pruned;
    }
    if (r < 0) return r;
  }
  return 0;
}

/* After the outcomes' transaction: the counters, and the jobs freed. */
static void count_outcomes(job_t *list, bool written) {
  while (list) {
    job_t *j = list;
    list = j->next;
    if (written) {
      pthread_mutex_lock(&S.lock);
      if (j->outcome == OUT_SENT) S.counters.sent[j->provider]++;
      if (j->outcome == OUT_RETRY) S.counters.retried++;
      if (j->prune) S.counters.pruned++;
      if (j->outcome == OUT_FAILED && strcmp(j->reason, "expired") == 0) S.counters.expired++;
      pthread_mutex_unlock(&S.lock);
      if (j->outcome == OUT_FAILED) {
        char key[48];
        reason_key(j->reason, key, sizeof key);
        count_failure(j->provider, key);
      }
    }
    job_free(j);
  }
}

/* ---- sending ------------------------------------------------------------------------------ */

static int add_header(job_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_header(job_t *j, const char *fmt, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  struct curl_slist *n = curl_slist_append(j->headers, line);
  if (!n) return -ENOMEM;
  j->headers = n;
  return 0;
}

static int start_transfer(job_t *j, const char *url) {
  j->easy = easy_take();
  if (!j->easy) return -ENOMEM;
  int r = outbound_easy_setup(j->easy, url, S.proxy_ok ? &S.proxy : NULL, &j->via_proxy);
  if (r < 0) return r;
  CURL *h = j->easy;
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  /* Wait for the connection in use to say whether it multiplexes rather
   * than open another: one connection carries every stream. */
  curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, j);
  curl_easy_setopt(h, CURLOPT_PRIVATE, j);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, j->headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body));
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body);
  if (curl_multi_add_handle(S.multi, h) != CURLM_OK) return -ENOMEM;
  S.inflight++;
  j->aprev = NULL;
  j->anext = S.active;
  if (S.active) S.active->aprev = j;
  S.active = j;
  return 0;
}

static void start_fcm_token_fetch(void) {
  if (S.fcm_fetching || push_wall_ms() < S.fcm_retry_at_ms) return;
  job_t *j = calloc(1, sizeof *j);
  if (!j) return;
  j->token_fetch = true;
  j->provider = PUSH_FCM;
  char *assertion = NULL;
  if (push_jwt_rs256(S.fcm.key, &S.fcm, push_wall_ms() / 1000, &assertion) < 0) {
    set_error("The FCM token request cannot be signed with the service account's private key.");
    free(j);
    return;
  }
  char *enc = curl_easy_escape(NULL, assertion, 0);
  free(assertion);
  if (!enc || asprintf(&j->body, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3A"
                                 "jwt-bearer&assertion=%s",
                       enc) < 0) {
    j->body = NULL;
    curl_free(enc);
    free(j);
    return;
  }
  curl_free(enc);
  if (add_header(j, "Content-Type: application/x-www-form-urlencoded") < 0 ||
      start_transfer(j, S.fcm.token_uri) < 0) {
    job_free(j);
    return;
  }
  S.fcm_fetching = true;
}

static push_provider_t provider_of(const job_t *j) {
  if (S.gateway) return PUSH_GATEWAY;
  return strcmp(j->platform, "android") == 0 ? PUSH_FCM : PUSH_APNS;
}

/* Sends one leased notification, or decides now what becomes of it. */
static void dispatch(job_t *j) {
  int64_t now = push_wall_ms();
  j->provider = provider_of(j);
  if (j->expires_ms <= now) return finish(j, OUT_FAILED, "expired");
  breaker_t *b = &S.breaker[j->provider];
  if (b->open_until_ms > now) return retry_free_at(j, b->open_until_ms, "circuit open");
  char url[8192];
  switch (j->provider) {
  case PUSH_APNS:
    if (S.apns_config_error[0]) {
      set_error("%s", S.apns_config_error);
      return retry_free_at(j, now + UNCONFIGURED_RETRY_MS, "not configured");
    }
    if (S.apns_stopped) return retry_free_at(j, now + UNCONFIGURED_RETRY_MS, "stopped");
    snprintf(url, sizeof url, "%s/3/device/%s", S.apns_base, j->token);
    const char *jwt = apns_jwt(false);
    if (!jwt) return retry_free_at(j, now + UNCONFIGURED_RETRY_MS, "token");
    int64_t exp_s = j->expires_ms / 1000;
    if (add_header(j, "authorization: bearer %s", jwt) < 0 ||
        add_header(j, "apns-push-type: %s", j->push_type) < 0 ||
        add_header(j, "apns-priority: %d", j->priority) < 0 ||
        add_header(j, "apns-topic: %s", S.apns_topic) < 0 ||
        add_header(j, "apns-id: %s", j->apns_id) < 0 ||
        add_header(j, "apns-collapse-id: %s", j->collapse_id) < 0 ||
        add_header(j, "apns-expiration: %lld", (long long)exp_s) < 0)
      return finish(j, OUT_RETRY_FREE, "out of memory");
    break;
  case PUSH_FCM:
    if (S.fcm_config_error[0]) {
      set_error("%s", S.fcm_config_error);
      return retry_free_at(j, now + UNCONFIGURED_RETRY_MS, "not configured");
    }
    if (!S.fcm_token || now >= S.fcm_token_until_ms) {
      start_fcm_token_fetch();
      return retry_free_at(j, now + 500, "waiting for the FCM token");
    }
    snprintf(url, sizeof url, "%s/v1/projects/%s/messages:send", S.fcm_base, S.fcm.project_id);
    if (add_header(j, "Authorization: Bearer %s", S.fcm_token) < 0)
      return finish(j, OUT_RETRY_FREE, "out of memory");
    break;
  case PUSH_GATEWAY:
  default:
    if (!S.gateway_url[0]) {
      set_error("Push mode is gateway, but mobile.push_gateway_url is not set.");
      return retry_free_at(j, now + UNCONFIGURED_RETRY_MS, "not configured");
    }
    snprintf(url, sizeof url, "%s", S.gateway_url);
    break;
  }
  size_t len = 0;
  store_push_t row = {.id = j->id, .user_id = j->user_id, .device_id = j->device_id,
                      .platform = j->platform, .push_token = j->token, .kind = j->kind,
                      .ref_id = j->ref_id, .peer_id = j->peer_id, .payload = j->payload,
                      .apns_id = j->apns_id, .collapse_id = j->collapse_id,
                      .push_type = j->push_type, .priority = j->priority,
                      .created_ms = j->created_ms, .expires_ms = j->expires_ms};
  if (push_body(j->provider, &row, S.gateway_app_id, now, &j->body, &len) < 0)
    return finish(j, OUT_FAILED, "payload: the notification cannot be put in %u bytes",
                  PUSH_APNS_PAYLOAD_MAX);
  if (add_header(j, "Content-Type: application/json") < 0)
    return finish(j, OUT_RETRY_FREE, "out of memory");
  if (start_transfer(j, url) < 0) {
    if (j->easy) {
      easy_release(j->easy);
      j->easy = NULL;
    }
    return finish(j, OUT_RETRY, "the request could not be set up");
  }
}

/* ---- answers ------------------------------------------------------------------------------ */

static void breaker_ok(push_provider_t p) {
  S.breaker[p].failures = S.breaker[p].lost = 0;
  S.breaker[p].open_ms = 0;
}

static void breaker_fail(push_provider_t p) {
  breaker_t *b = &S.breaker[p];
  if (++b->failures < BREAKER_FAILURES && b->lost < LOST_BEFORE_OPEN) return;
  b->open_ms = b->open_ms ? b->open_ms * 2 : BREAKER_OPEN_MIN_MS;
  if (b->open_ms > BREAKER_OPEN_MAX_MS) b->open_ms = BREAKER_OPEN_MAX_MS;
  b->open_until_ms = push_wall_ms() + b->open_ms;
  b->failures = b->lost = 0;
}

/* The reason of an answer, in the job's own buffer; NULL for a body that is
 * not JSON. */
static const char *reason_of(job_t *j, int64_t *timestamp) {
  return push_answer_reason(j->resp, j->resp_len, j->reason_buf, sizeof j->reason_buf, timestamp);
}

static void note_not_for_topic(void) {
  int64_t now = push_wall_ms();
  S.not_for_topic_at[S.not_for_topic_next++ % NOT_FOR_TOPIC_BURST] = now;
  for (size_t i = 0; i < NOT_FOR_TOPIC_BURST; i++)
    if (!S.not_for_topic_at[i] || now - S.not_for_topic_at[i] > NOT_FOR_TOPIC_WINDOW_MS) return;
  if (S.apns_stopped) return;
  S.apns_stopped = true;
  char msg[512];
  snprintf(msg, sizeof msg,
           "APNs answered DeviceTokenNotForTopic %d times within a minute: the device tokens "
           "are not for the topic %s. Sending to APNs is stopped (no token is removed) until "
           "mobile.apns_topic or the APNs key is changed; check that the topic is the iOS app's "
           "bundle id and the key belongs to its team.",
           NOT_FOR_TOPIC_BURST, S.apns_topic);
  set_warning(msg);
  log_warning("push: %s", msg);
}

static void on_apns_answer(job_t *j, long status, long version) {
  int64_t ts = 0;
  const char *reason = reason_of(j, &ts);
  if (status == 200) {
    breaker_ok(PUSH_APNS);
    return finish(j, OUT_SENT, "sent");
  }
  if (version != CURL_HTTP_VERSION_2_0) {
    breaker_fail(PUSH_APNS);
    set_error("APNs answered over HTTP/1.1, not HTTP/2 (status %ld): something between us and "
              "APNs (a TLS-inspecting proxy) removed ALPN h2, and APNs speaks HTTP/2 only.",
              status);
    return finish(j, OUT_RETRY, "http1: APNs answered over HTTP/1.1");
  }
  if (!reason) {
    if (status >= 500) breaker_fail(PUSH_APNS);
    set_error("APNs answered %ld with a body that is not JSON.", status);
    return finish(j, status >= 500 || status == 429 ? OUT_RETRY : OUT_FAILED,
                  "not_json: APNs answered %ld without a JSON reason", status);
  }
  if (status == 410 || (status == 400 && strcmp(reason, "BadDeviceToken") == 0)) {
    breaker_ok(PUSH_APNS);
    j->prune = true;
    if (status != 410) ts = 0;
    /* 410's timestamp says since when the token is invalid: a token
     * registered again after that is the app's new one and stays. */
    j->prune_before_ms = ts > 0 ? ts : push_wall_ms();
    return finish(j, OUT_FAILED, "%s", reason);
  }
  if (status == 400 && strcmp(reason, "DeviceTokenNotForTopic") == 0) {
    note_not_for_topic();
    return finish(j, OUT_FAILED, "%s", reason);
  }
  if (status == 403 && strcmp(reason, "ExpiredProviderToken") == 0) {
    apns_jwt(true);
    return retry_free_at(j, push_wall_ms(), reason);
  }
  if (status == 403 || (status == 400 && (strcmp(reason, "BadTopic") == 0 ||
                                          strcmp(reason, "TopicDisallowed") == 0 ||
                                          strcmp(reason, "MissingTopic") == 0))) {
    /* The configuration, not the notification: keep it until fixed. */
    set_error("APNs refuses our credentials: %ld %s. Check mobile.apns_key_id, "
              "mobile.apns_team_id, mobile.apns_topic and mobile.apns_key.",
              status, reason);
    breaker_fail(PUSH_APNS);
    return retry_free_at(j, push_wall_ms() + UNCONFIGURED_RETRY_MS, reason);
  }
  if (status == 429 || status >= 500) {
    if (status >= 500) breaker_fail(PUSH_APNS);
    return finish(j, OUT_RETRY, "%s", reason);
  }
  breaker_ok(PUSH_APNS);
  return finish(j, OUT_FAILED, "%s", reason);
}

static void on_fcm_answer(job_t *j, long status) {
  const char *reason = reason_of(j, NULL);
  if (status == 200) {
    breaker_ok(PUSH_FCM);
    return finish(j, OUT_SENT, "sent");
  }
  if (!reason) {
    if (status >= 500) breaker_fail(PUSH_FCM);
    set_error("FCM answered %ld with a body that is not JSON.", status);
    return finish(j, status >= 500 || status == 429 ? OUT_RETRY : OUT_FAILED,
                  "not_json: FCM answered %ld without a JSON error", status);
  }
  if (strcmp(reason, "UNREGISTERED") == 0 || strcmp(reason, "SENDER_ID_MISMATCH") == 0 ||
      (status == 404 && strcmp(reason, "NOT_FOUND") == 0)) {
    breaker_ok(PUSH_FCM);
    j->prune = true;
    j->prune_before_ms = push_wall_ms();
    return finish(j, OUT_FAILED, "%s", reason);
  }
  if (status == 401 || strcmp(reason, "THIRD_PARTY_AUTH_ERROR") == 0) {
    free(S.fcm_token);
    S.fcm_token = NULL;
    return retry_free_at(j, push_wall_ms() + 1000, reason);
  }
  if (status == 403) {
    set_error("FCM refuses the service account: %ld %s. Check mobile.fcm_service_account and "
              "that the Firebase Cloud Messaging API is enabled for the project.",
              status, reason);
    breaker_fail(PUSH_FCM);
    return retry_free_at(j, push_wall_ms() + UNCONFIGURED_RETRY_MS, reason);
  }
  if (status == 429 || status >= 500) {
    if (status >= 500) breaker_fail(PUSH_FCM);
    return finish(j, OUT_RETRY, "%s", reason);
  }
  breaker_ok(PUSH_FCM);
  return finish(j, OUT_FAILED, "%s", reason);
}

static void on_gateway_answer(job_t *j, long status) {
  json_t *doc = j->resp ? json_loads(j->resp, 0, NULL) : NULL;
  if (status == 200) {
    breaker_ok(PUSH_GATEWAY);
    if (!json_is_object(doc)) {
      json_decref(doc);
      set_error("The push gateway answered 200 with a body that is not JSON.");
      return finish(j, OUT_SENT, "sent");
    }
    bool rejected = false;
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(doc, "rejected"), i, k) {
      if (json_is_string(k) && strcmp(json_string_value(k), j->token) == 0) rejected = true;
    }
    json_decref(doc);
    if (rejected) {
      j->prune = true;
      j->prune_before_ms = push_wall_ms();
      return finish(j, OUT_FAILED, "rejected");
    }
    return finish(j, OUT_SENT, "sent");
  }
  json_decref(doc);
  if (status == 404 || status == 401 || status == 403) {
    set_error("The push gateway %s answered %ld: check mobile.push_gateway_url.", S.gateway_url,
              status);
    breaker_fail(PUSH_GATEWAY);
    return retry_free_at(j, push_wall_ms() + UNCONFIGURED_RETRY_MS, "gateway refused");
  }
  if (status == 429 || status >= 500) {
    if (status >= 500) breaker_fail(PUSH_GATEWAY);
    return finish(j, OUT_RETRY, "gateway %ld", status);
  }
  return finish(j, OUT_FAILED, "gateway %ld", status);
}

static void on_token_answer(job_t *j, long status, CURLcode rc) {
  S.fcm_fetching = false;
  json_t *doc = rc == CURLE_OK && j->resp ? json_loads(j->resp, 0, NULL) : NULL;
  const char *tok = json_string_value(json_object_get(doc, "access_token"));
  json_int_t expires = json_integer_value(json_object_get(doc, "expires_in"));
  if (rc == CURLE_OK && status == 200 && tok && expires > 0) {
    free(S.fcm_token);
    S.fcm_token = strdup(tok);
    int64_t now = push_wall_ms();
    /* A minute early, so no request goes out with a token about to end. */
    S.fcm_token_until_ms = now + (expires > 120 ? expires - 60 : expires) * 1000;
    S.fcm_token_at_ms = now;
    note_token_made(&S.fcm_token_made_ms);
    breaker_ok(PUSH_FCM);
  } else {
    if (rc != CURLE_OK)
      set_error("The FCM token endpoint %s cannot be reached: %s.", S.fcm.token_uri,
                curl_easy_strerror(rc));
    else
    {
      const char *reason = reason_of(j, NULL);
      set_error("The FCM token endpoint %s answered %ld%s%s.", S.fcm.token_uri, status,
                reason ? ": " : " (not JSON)", reason ? reason : "");
    }
    breaker_fail(PUSH_FCM);
    S.fcm_retry_at_ms = push_wall_ms() + backoff_ms(S.breaker[PUSH_FCM].failures, 0);
  }
  json_decref(doc);
  job_free(j);
}

static const char *stage_sentence(outbound_stage_t st) {
  switch (st) {
  case OUTBOUND_STAGE_PROXY_RESOLVE: return "the proxy's host name does not resolve";
  case OUTBOUND_STAGE_PROXY_CONNECT: return "the proxy cannot be reached";
  case OUTBOUND_STAGE_PROXY_TIMEOUT: return "the proxy does not answer";
  case OUTBOUND_STAGE_PROXY_AUTH: return "the proxy refuses our credentials (407)";
  case OUTBOUND_STAGE_PROXY_TUNNEL: return "the proxy refuses to open a tunnel (CONNECT)";
  case OUTBOUND_STAGE_SERVER_RESOLVE: return "the provider's host name does not resolve";
  case OUTBOUND_STAGE_SERVER_CONNECT: return "the provider cannot be reached";
  case OUTBOUND_STAGE_SERVER_TIMEOUT: return "the provider does not answer in time";
  case OUTBOUND_STAGE_TLS: return "TLS with the provider failed (certificate or handshake)";
  default: return "the connection failed";
  }
}

static void on_done(CURL *h, CURLcode rc) {
  job_t *j = NULL;
  curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&j);
  curl_multi_remove_handle(S.multi, h);
  S.inflight--;
  if (j->aprev) j->aprev->anext = j->anext;
  else S.active = j->anext;
  if (j->anext) j->anext->aprev = j->aprev;
  j->aprev = j->anext = NULL;
  long status = 0, connect = 0, version = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &connect);
  curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &version);
  if (status > 0 && !j->token_fetch) {
    /* From the handle's start to the answer: the provider's round trip and
     * its work, plus any wait for the connection or a free stream. Only the
     * shortest of a span counts, and that one did not wait. (libcurl 7.88's
     * pretransfer and starttransfer times of a multiplexed stream are no
     * use here: they come microseconds apart.) */
    curl_off_t total = 0;
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &total);
    window_note_answer((int64_t)total);
  }
  if (j->token_fetch) return on_token_answer(j, status, rc);
  if (rc != CURLE_OK) {
    breaker_t *b = &S.breaker[j->provider];
    /* Through a proxy, only once the tunnel stood (CONNECT 200): before
     * that, the failure is the proxy's and counts. */
    bool lost = status == 0 && (!j->via_proxy || connect == 200) &&
                (rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM || rc == CURLE_SEND_ERROR ||
                 rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING);
    if (lost) {
      /* No answer: the connection went away under the stream (a GOAWAY
       * past its id, a reset). Not the notification's fault. */
      pthread_mutex_lock(&S.lock);
      S.counters.refused_streams++;
      pthread_mutex_unlock(&S.lock);
      b->lost++;
      if (b->lost >= LOST_BEFORE_OPEN) breaker_fail(j->provider);
      int64_t delay = 50 + (int64_t)randombytes_uniform(200);
      return retry_free_at(j, push_wall_ms() + delay, "connection lost before the answer");
    }
    outbound_stage_t st = outbound_classify((int)rc, connect, status, j->via_proxy, NULL);
    breaker_fail(j->provider);
    set_error("%s notifications cannot be sent: %s (%s%s%ld).", push_provider_name(j->provider),
              stage_sentence(st), curl_easy_strerror(rc), connect ? ", CONNECT answered " : "",
              connect ? connect : 0L);
    return finish(j, OUT_RETRY, "%s: %s", outbound_stage_name(st), curl_easy_strerror(rc));
  }
  switch (j->provider) {
  case PUSH_APNS: return on_apns_answer(j, status, version);
  case PUSH_FCM: return on_fcm_answer(j, status);
  default: return on_gateway_answer(j, status);
  }
}

/* ---- the loop ----------------------------------------------------------------------------- */

typedef struct claim_ctx {
  job_t *list;
  size_t n;
} claim_ctx_t;

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static void on_claimed(const store_push_t *p, void *vctx) {
  claim_ctx_t *c = vctx;
  job_t *j = calloc(1, sizeof *j);
  if (!j) return; /* its lease ends and it comes back */
  j->id = p->id;
  j->user_id = p->user_id;
  j->ref_id = p->ref_id;
  j->peer_id = p->peer_id;
  j->created_ms = p->created_ms;
  j->expires_ms = p->expires_ms;
  j->attempts = p->attempts;
  j->priority = p->priority;
  snprintf(j->device_id, sizeof j->device_id, "%s", p->device_id);
  snprintf(j->platform, sizeof j->platform, "%s", p->platform);
  snprintf(j->kind, sizeof j->kind, "%s", p->kind);
  snprintf(j->apns_id, sizeof j->apns_id, "%s", p->apns_id);
  snprintf(j->collapse_id, sizeof j->collapse_id, "%s", p->collapse_id);
  snprintf(j->push_type, sizeof j->push_type, "%s", p->push_type);
  j->token = dup_or_empty(p->push_token);
  j->payload = dup_or_empty(p->payload);
  if (!j->token || !j->payload) {
    job_free(j);
    return;
  }
  j->next = c->list;
  c->list = j;
  c->n++;
}

static void free_jobs(job_t **list) {
  while (*list) {
    job_t *j = *list;
    *list = j->next;
    job_free(j);
  }
}

/* One transaction a round: the outcomes of what finished, then the next
 * batch leased. Every commit waits for an fsync, and the sender drives no
 * transfer meanwhile: one commit a round instead of two. */
typedef struct round_txn {
  apply_ctx_t apply;
  bool claim;
  int64_t limit;
  claim_ctx_t c;
} round_txn_t;

static int round_txn(store_txn_t *t, void *vctx) {
  round_txn_t *rt = vctx;
  /* A retried attempt leases again from the start. */
  free_jobs(&rt->c.list);
  rt->c.n = 0;
  int r = apply_txn(t, &rt->apply);
  if (r < 0 || !rt->claim) return r;
  return store_push_claim(t, rt->apply.now, rt->apply.now + LEASE_MS, S.owner, rt->limit,
                          on_claimed, &rt->c);
}

/* Writes the outcomes waiting in S.done and, with claim, leases what is due
 * and sends it; true when the lease took a full batch (more may be due). */
static bool run_round(bool claim) {
  size_t room = S.inflight < S.window.size ? S.window.size - S.inflight : 0;
  if (room > CLAIM_BATCH) room = CLAIM_BATCH;
  if (room == 0) claim = false;
  if (!claim && !S.done) return false;
  round_txn_t rt = {.apply = {.list = S.done, .now = push_wall_ms()}, .claim = claim,
                    .limit = (int64_t)room};
  S.done = NULL;
  int r = store_run_txn(S.store, claim ? "push round" : "push outcomes", round_txn, &rt);
  count_outcomes(rt.apply.list, r >= 0);
  if (r < 0) {
    /* Rolled back: nothing was leased, and the outcomes' leases run out, so
     * those rows are sent again: at least once. */
    free_jobs(&rt.c.list);
    set_error("The push outbox cannot be written: %s; notifications sent meanwhile are sent "
              "again when their lease ends.",
              store_last_error(S.store));
    return false;
  }
  /* Oldest first: the list was built newest first. */
  job_t *rev = NULL;
  while (rt.c.list) {
    job_t *j = rt.c.list;
    rt.c.list = j->next;
    j->next = rev;
    rev = j;
  }
  while (rev) {
    job_t *j = rev;
    rev = j->next;
    j->next = NULL;
    dispatch(j);
  }
  return claim && rt.c.n == room;
}

typedef struct purge_txn {
  int64_t before;
} purge_txn_t;

static int purge_txn(store_txn_t *t, void *vctx) {
  int64_t deleted = 0;
  return store_push_purge(t, ((purge_txn_t *)vctx)->before, 5000, &deleted);
}

static void *run(void *arg) {
  (void)arg;
  int64_t next_claim = 0;
  /* The last lease took a full batch: more is due, and every slot that
   * frees is filled in the next round instead of at the next poll. */
  bool backlog = false;
  while (!atomic_load(&S.stop)) {
    int64_t now = push_wall_ms();
    settings_snapshot_t *snap = settings_acquire();
    bool enabled = snap && settings_bool(snap, "mobile.push_enabled");
    if (snap) refresh_config(snap);
    settings_release(snap);
    bool woken = atomic_exchange(&S.woken, false);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(S.multi, &left)))
      if (msg->msg == CURLMSG_DONE) on_done(msg->easy_handle, msg->data.result);
    bool room = S.inflight < S.window.size;
    bool claim = enabled && room && (woken || now >= next_claim || backlog);
    /* Woken with every slot taken: what is due goes out as slots free. */
    if (enabled && woken && !room) backlog = true;
    bool full = run_round(claim);
    if (claim) {
      backlog = full;
      next_claim = now + IDLE_POLL_MS;
    }
    if (!enabled) backlog = false;
    /* What dispatch decided at once (expired, circuit open) is written now. */
    run_round(false);
    if (now >= S.next_purge_ms) {
      purge_txn_t pt = {.before = now - PURGE_AGE_MS};
      store_run_txn(S.store, "push purge", purge_txn, &pt);
      S.next_purge_ms = now + PURGE_INTERVAL_MS;
    }
    int wait = (int)(next_claim - push_wall_ms());
    if (wait < 1) wait = 1;
    if (wait > IDLE_POLL_MS) wait = IDLE_POLL_MS;
    if (full && S.inflight < S.window.size) wait = 0;
    drive_curl(wait);
  }
  /* Whatever is in flight keeps its lease; the next start sends it. */
  return NULL;
}

typedef struct release_txn {
  int64_t released;
} release_txn_t;

static int release_txn(store_txn_t *t, void *vctx) {
  return store_push_release(t, S.owner, &((release_txn_t *)vctx)->released);
}

static void close_wait_fds(void) {
  if (S.epoll_fd >= 0) close(S.epoll_fd);
  if (S.wake_fd >= 0) close(S.wake_fd);
  S.epoll_fd = S.wake_fd = -1;
}

int push_sender_start(store_t *store, char *err, size_t errlen) {
  S.store = store;
  char host[64] = "atrium";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  snprintf(S.owner, sizeof S.owner, "%s", host);
  /* What this node had leased when it stopped (or crashed) is due again. */
  release_txn_t rt = {0};
  if (store_run_txn(store, "push release", release_txn, &rt) < 0) {
    snprintf(err, errlen, "The push outbox cannot be read: %s.", store_last_error(store));
    return -EIO;
  }
  if (rt.released) log_info("push: %lld notifications in flight at the last stop are sent again",
                            (long long)rt.released);
  S.multi = curl_multi_init();
  if (!S.multi) {
    snprintf(err, errlen, "libcurl cannot make a multi handle for push notifications.");
    return -ENOMEM;
  }
  curl_multi_setopt(S.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(S.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
  curl_multi_setopt(S.multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000L);
  curl_multi_setopt(S.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(S.multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  S.curl_timer_at = -1;
  window_reset();
  S.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  S.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event wev = {.events = EPOLLIN};
  if (S.wake_fd >= 0) wev.data.fd = S.wake_fd;
  if (S.epoll_fd < 0 || S.wake_fd < 0 || epoll_ctl(S.epoll_fd, EPOLL_CTL_ADD, S.wake_fd, &wev) < 0) {
    int e = errno;
    close_wait_fds();
    curl_multi_cleanup(S.multi);
    S.multi = NULL;
    snprintf(err, errlen, "Cannot make the push sender's event set: %s.", strerror(e));
    return -e;
  }
  atomic_store(&S.stop, false);
  atomic_store(&S.woken, true);
  int r = pthread_create(&S.thread, NULL, run, NULL);
  if (r != 0) {
    close_wait_fds();
    curl_multi_cleanup(S.multi);
    S.multi = NULL;
    snprintf(err, errlen, "Cannot start the push sender thread: %s.", strerror(r));
    return -r;
  }
  S.started = true;
  return 0;
}

void push_sender_stop(void) {
  if (!S.started) return;
  atomic_store(&S.stop, true);
  wake_thread();
  pthread_join(S.thread, NULL);
  S.started = false;
  /* The transfers still open are given up, and their leases with them:
   * those notifications go out at the next start. */
  while (S.active) {
    job_t *j = S.active;
    S.active = j->anext;
    curl_multi_remove_handle(S.multi, j->easy);
    job_free(j);
  }
  S.inflight = 0;
  run_round(false);
  release_txn_t rt = {0};
  store_run_txn(S.store, "push release", release_txn, &rt);
  curl_multi_cleanup(S.multi);
  S.multi = NULL;
  easy_pool_clear();
  close_wait_fds();
  forget_config();
  S.configured = false;
}
