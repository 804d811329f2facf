/* Active Directory publishing through libldap, on a worker thread. */
#include "mod/publishing/ad_publish.h"

#include <errno.h>
#include <ldap.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uriparser/Uri.h>

#include "core/log.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define NETWORK_TIMEOUT_S 5 /* connect */
#define OP_TIMEOUT_S 10     /* each LDAP operation */

typedef struct target {
  bool publish;    /* publishing on and the AD connection configured */
  bool configured; /* ad.uri and ad.container_dn set */
  char uri[512];
  char bind_dn[1024];
  char password[512];
  char dn[1100];
  char domain[256];
  char url[2048];
  char dns_name[256];
} target_t;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* CLOCK_MONOTONIC */
  bool started, stop, enabled;
  uint64_t generation; /* bumped on every change of `desired` */
  target_t desired;
  pthread_t thread;
  /* status */
  char state[32];
  char message[768];
  unsigned failures;
  int64_t last_success;
  int64_t last_failure;
  uint64_t retry_at_ms; /* 0: none */
} A = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wipe(target_t *t) {
  explicit_bzero(t->password, sizeof t->password);
}

/* The host of the public URL: what serviceDNSName names. */
static void url_host(const char *url, char *out, size_t len) {
  out[0] = '\0';
  UriUriA uri;
  const char *end = NULL;
  if (uriParseSingleUriA(&uri, url, &end) != URI_SUCCESS) return;
  if (uri.hostText.first && uri.hostText.afterLast > uri.hostText.first) {
    size_t n = (size_t)(uri.hostText.afterLast - uri.hostText.first);
    if (n < len) {
      memcpy(out, uri.hostText.first, n);
      out[n] = '\0';
    }
  }
  uriFreeUriMembersA(&uri);
}

static void target_from(const settings_snapshot_t *snap, target_t *t) {
  memset(t, 0, sizeof *t);
  const char *container = settings_string(snap, "ad.container_dn");
  snprintf(t->uri, sizeof t->uri, "%s", settings_string(snap, "ad.uri"));
  snprintf(t->bind_dn, sizeof t->bind_dn, "%s", settings_string(snap, "ad.bind_dn"));
  const char *pw = settings_string(snap, "ad.bind_password"); /* "" when unset */
  snprintf(t->password, sizeof t->password, "%s", pw ? pw : "");
  t->configured = t->uri[0] && container[0];
  if (container[0]) snprintf(t->dn, sizeof t->dn, "%s,%s", AD_SCP_RDN, container);
  snprintf(t->domain, sizeof t->domain, "%s", settings_string(snap, "domain.name"));
  snprintf(t->url, sizeof t->url, "%s", settings_string(snap, "server.public_url"));
  url_host(t->url, t->dns_name, sizeof t->dns_name);
  t->publish = t->configured && settings_bool(snap, "login.publish_address");
}

/* ---- LDAP -------------------------------------------------------------------------------------- */

/* "<what>: <server's error> (<server's diagnostic>)": the admin needs the DC's own words. */
static void ldap_reason(LDAP *ld, int rc, const char *what, char *msg, size_t len) {
  char *diag = NULL;
  if (ld) ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
  snprintf(msg, len, "%s: %s%s%s%s", what, ldap_err2string(rc), diag && *diag ? " (" : "",
           diag && *diag ? diag : "", diag && *diag ? ")" : "");
  ldap_memfree(diag);
}

static int ldap_open(const target_t *t, LDAP **out, char *msg, size_t len) {
  *out = NULL;
  LDAP *ld = NULL;
  int rc = ldap_initialize(&ld, t->uri);
  if (rc != LDAP_SUCCESS) {
    snprintf(msg, len, "ad.uri %s cannot be used: %s", t->uri, ldap_err2string(rc));
    return -EINVAL;
  }
  int v3 = LDAP_VERSION3;
  struct timeval net = {.tv_sec = NETWORK_TIMEOUT_S}, op = {.tv_sec = OP_TIMEOUT_S};
  ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
  ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
  ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &net);
  ldap_set_option(ld, LDAP_OPT_TIMEOUT, &op);
  struct berval cred = {.bv_val = (char *)t->password, .bv_len = strlen(t->password)};
  rc = ldap_sasl_bind_s(ld, t->bind_dn[0] ? t->bind_dn : NULL, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
                        NULL);
  if (rc != LDAP_SUCCESS) {
    char what[4096];
    if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT)
      snprintf(what, sizeof what, "Cannot reach %s", t->uri);
    else
      snprintf(what, sizeof what, "Binding to %s as \"%s\" failed (check ad.bind_dn and "
               "ad.bind_password)", t->uri, t->bind_dn[0] ? t->bind_dn : "anonymous");
    ldap_reason(ld, rc, what, msg, len);
    ldap_unbind_ext_s(ld, NULL, NULL);
    return -EIO;
  }
  *out = ld;
  return 0;
}

static int ldap_upsert(const target_t *t, char *msg, size_t len) {
  LDAP *ld;
  int r = ldap_open(t, &ld, msg, len);
  if (r < 0) return r;
  char domain_kw[300];
  snprintf(domain_kw, sizeof domain_kw, "Domain=%s", t->domain);
  char *oc[] = {"serviceConnectionPoint", NULL};
  char *cn[] = {AD_SCP_RDN + 3, NULL};
  char *kw[] = {AD_PRODUCT_GUID, "Atrium", domain_kw, NULL};
  char *binding[] = {(char *)t->url, NULL};
  char *dns[] = {(char *)t->dns_name, NULL};
  char *cls[] = {AD_SERVICE_CLASS, NULL};
  LDAPMod m_oc = {.mod_op = LDAP_MOD_ADD, .mod_type = "objectClass", .mod_values = oc};
  LDAPMod m_cn = {.mod_op = LDAP_MOD_ADD, .mod_type = "cn", .mod_values = cn};
  LDAPMod m_kw = {.mod_op = LDAP_MOD_ADD, .mod_type = "keywords", .mod_values = kw};
  LDAPMod m_bind = {.mod_op = LDAP_MOD_ADD, .mod_type = "serviceBindingInformation",
                    .mod_values = binding};
  LDAPMod m_dns = {.mod_op = LDAP_MOD_ADD, .mod_type = "serviceDNSName", .mod_values = dns};
  LDAPMod m_cls = {.mod_op = LDAP_MOD_ADD, .mod_type = "serviceClassName", .mod_values = cls};
  LDAPMod *add[] = {&m_oc, &m_cn, &m_kw, &m_bind, &m_cls, t->dns_name[0] ? &m_dns : NULL, NULL};
  int rc = ldap_add_ext_s(ld, t->dn, add, NULL, NULL);
  if (rc == LDAP_ALREADY_EXISTS) {
    /* Replace what we own; anything an admin added beside it stays. */
    m_kw.mod_op = m_bind.mod_op = m_dns.mod_op = m_cls.mod_op = LDAP_MOD_REPLACE;
    if (!t->dns_name[0]) m_dns.mod_values = NULL; /* REPLACE with no values removes it */
    LDAPMod *mod[] = {&m_kw, &m_bind, &m_cls, &m_dns, NULL};
    rc = ldap_modify_ext_s(ld, t->dn, mod, NULL, NULL);
  }
  if (rc != LDAP_SUCCESS) {
    char what[4096];
    if (rc == LDAP_NO_SUCH_OBJECT)
      snprintf(what, sizeof what,
               "The container of %s does not exist on %s; create it or correct ad.container_dn",
               t->dn, t->uri);
    else if (rc == LDAP_INSUFFICIENT_ACCESS)
      snprintf(what, sizeof what, "\"%s\" may not write %s on %s; grant it the right",
               t->bind_dn, t->dn, t->uri);
    else
      snprintf(what, sizeof what, "Writing %s on %s failed", t->dn, t->uri);
    ldap_reason(ld, rc, what, msg, len);
    r = -EIO;
  }
  ldap_unbind_ext_s(ld, NULL, NULL);
  return r;
}

static int ldap_remove(const target_t *t, char *msg, size_t len) {
  LDAP *ld;
  int r = ldap_open(t, &ld, msg, len);
  if (r < 0) return r;
  int rc = ldap_delete_ext_s(ld, t->dn, NULL, NULL);
  if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT) {
    char what[4096];
    snprintf(what, sizeof what, "Removing %s from %s failed", t->dn, t->uri);
    ldap_reason(ld, rc, what, msg, len);
    r = -EIO;
  }
  ldap_unbind_ext_s(ld, NULL, NULL);
  return r;
}

/* ---- the worker -------------------------------------------------------------------------------- */

static bool same_object(const target_t *a, const target_t *b) {
  return strcmp(a->uri, b->uri) == 0 && strcasecmp(a->dn, b->dn) == 0;
}

/* One step towards `want`. *placed is the object we may have left somewhere
 * (*have_placed false: none). 0 when the directory is as wanted. */
static int reconcile(const target_t *want, target_t *placed, bool *have_placed, char *msg,
                     size_t len) {
  if (*have_placed && (!want->publish || !same_object(placed, want))) {
    int r = ldap_remove(placed, msg, len);
    if (r < 0 && !want->publish) return r; /* switched off: keep trying to remove it */
    if (r < 0)
      log_warning("AD publishing: the object moved to %s on %s; the old one could not be "
                  "removed and stays: %s",
                  want->dn, want->uri, msg);
    else
      log_info("AD publishing: removed %s from %s", placed->dn, placed->uri);
    wipe(placed);
    *have_placed = false;
  }
  if (!want->publish) return 0;
  int r = ldap_upsert(want, msg, len);
  if (r < 0) return r;
  wipe(placed);
  *placed = *want;
  *have_placed = true;
  return 0;
}

static void set_state_locked(const target_t *want, bool have_placed) {
  if (want->publish)
    snprintf(A.state, sizeof A.state, "published");
  else if (A.enabled && !want->configured)
    snprintf(A.state, sizeof A.state, "not_configured");
  else
    snprintf(A.state, sizeof A.state, "%s", have_placed ? "pending" : "off");
}

static void *worker_main(void *arg) {
  target_t want, placed;
  bool have_placed = false;
  uint64_t seen = 0;
  unsigned backoff = 0;
  /* What was published before a restart is unknown: if publishing is off
   * now, remove the object once, so that "off" means absent. */
  pthread_mutex_lock(&A.lock);
  if (A.desired.configured && !A.desired.publish) {
    placed = A.desired;
    have_placed = true;
  }
  pthread_mutex_unlock(&A.lock);

  for (;;) { /* ends on A.stop; every wait is bounded by the retry time or a minute */
    pthread_mutex_lock(&A.lock);
    while (!A.stop && seen == A.generation &&
           !(A.retry_at_ms && mono_ms() >= A.retry_at_ms)) {
      uint64_t until = A.retry_at_ms ? A.retry_at_ms : mono_ms() + 60000;
      struct timespec ts = {.tv_sec = (time_t)(until / 1000),
                            .tv_nsec = (long)(until % 1000) * 1000000};
      pthread_cond_timedwait(&A.cond, &A.lock, &ts);
    }
    if (A.stop) {
      pthread_mutex_unlock(&A.lock);
      break;
    }
    if (seen != A.generation) backoff = 0; /* new values: try at once */
    seen = A.generation;
    want = A.desired;
    if (want.publish || have_placed) snprintf(A.state, sizeof A.state, "pending");
    A.retry_at_ms = 0;
    pthread_mutex_unlock(&A.lock);

    char msg[768] = "";
    int r = 0;
    bool work = want.publish || have_placed;
    if (work) r = reconcile(&want, &placed, &have_placed, msg, sizeof msg);

    pthread_mutex_lock(&A.lock);
    if (r < 0) {
      backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
      if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
      A.failures++;
      A.last_failure = time(NULL);
      /* Once per distinct reason: a DC that stays down does not flood the log. */
      if (strcmp(A.message, msg) != 0)
        log_warning("AD publishing: %s; retrying with backoff", msg);
      snprintf(A.message, sizeof A.message, "%s", msg);
      snprintf(A.state, sizeof A.state, "error");
      A.retry_at_ms = mono_ms() + backoff;
    } else {
      if (want.publish && (A.failures || strcmp(A.state, "published") != 0 || A.message[0]))
        log_info("AD publishing: %s on %s points to %s", want.dn, want.uri, want.url);
      if (work) A.last_success = time(NULL);
      A.failures = 0;
      A.message[0] = '\0';
      backoff = 0;
      set_state_locked(&want, have_placed);
    }
    pthread_mutex_unlock(&A.lock);
    wipe(&want);
  }
  wipe(&want);
  wipe(&placed);
  return NULL;
}

/* ---- hooks ------------------------------------------------------------------------------------- */

void ad_publish_follow(const settings_snapshot_t *snap) {
  target_t t;
  target_from(snap, &t);
  pthread_mutex_lock(&A.lock);
  wipe(&A.desired);
  A.desired = t;
  A.enabled = settings_bool(snap, "login.publish_address");
  A.generation++;
  if (!t.publish && !A.failures && strcmp(A.state, "pending") != 0)
    set_state_locked(&t, false);
  pthread_cond_signal(&A.cond);
  pthread_mutex_unlock(&A.lock);
  wipe(&t);
}

int ad_publish_start(const settings_snapshot_t *snap, char *err, size_t errlen) {
  if (A.started) return 0;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&A.cond, &ca);
  pthread_condattr_destroy(&ca);
  A.stop = false;
  snprintf(A.state, sizeof A.state, "off");
  ad_publish_follow(snap);
  int e = pthread_create(&A.thread, NULL, worker_main, NULL);
  if (e != 0) {
    pthread_cond_destroy(&A.cond);
    snprintf(err, errlen, "Cannot start the AD publisher: %s.", strerror(e));
    return -e;
  }
  A.started = true;
  return 0;
}

void ad_publish_shutdown(void) {
  if (A.started) {
    pthread_mutex_lock(&A.lock);
    A.stop = true;
    pthread_cond_signal(&A.cond);
    pthread_mutex_unlock(&A.lock);
    pthread_join(A.thread, NULL);
    pthread_cond_destroy(&A.cond);
    A.started = false;
  }
  wipe(&A.desired);
}

void ad_publish_get_status(ad_publish_status_t *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&A.lock);
  snprintf(out->state, sizeof out->state, "%s", A.state[0] ? A.state : "off");
  out->enabled = A.enabled;
  snprintf(out->uri, sizeof out->uri, "%s", A.desired.uri);
  snprintf(out->dn, sizeof out->dn, "%s", A.desired.dn);
  snprintf(out->message, sizeof out->message, "%s", A.message);
  out->failures = A.failures;
  out->last_success = A.last_success;
  out->last_failure = A.last_failure;
  uint64_t now = mono_ms();
  out->next_retry_ms = A.retry_at_ms ? (A.retry_at_ms > now ? (int64_t)(A.retry_at_ms - now) : 0)
                                     : -1;
  pthread_mutex_unlock(&A.lock);
}
