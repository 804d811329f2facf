/* The SIP agent: sofia-sip's nta (transactions, dialogs as legs, the TLS
 * transport) on a su_root that runs on the module's own thread. Every
 * sofia object is touched on that thread only; other threads post jobs
 * (internal.h).
 *
 * Why nta and not nua: the From domain of every request must be bound to
 * the names in the peer's certificate (RFC 5922), and sofia tells those
 * names only while it delivers the message (tport_delivered_from_subjects).
 * nta's callbacks run inside that delivery; nua's events arrive later. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include "core/fileio.h"
#include "core/map.h"
#include "core/workpool.h"
#include "mod/runtime/runtime.h"
#include "core/log.h"
#include "mod/sip/internal.h"
#include "mod/sip/pidf.h"

#define SUB_EXPIRES_DEFAULT 3600
#define SUB_EXPIRES_MAX 3600
#define SUB_EXPIRES_MIN 60
#define OUT_RETRY_MAX 5       /* attempts of one outgoing request before it is given up */
#define MESSAGE_TRIES 3       /* a MESSAGE is sent at most this often */
#define RATE_PER_SECOND 50    /* new requests per partner domain and second */
#define SEND_QUEUE 1000       /* messages waiting for one connection's socket (sofia's most) */
/* NOTIFYs awaiting their answer at once, all watchers together. A presence
 * change makes one NOTIFY per watcher; handed to sofia all at once, what the
 * socket did not take would wait in the connection's queue (at most
 * SEND_QUEUE) and the rest fail. The others wait here, in order, and are
 * sent as answers come: a watcher whose turn comes late gets the presence
 * of that moment. */
#define NOTIFY_WINDOW 500
#define ADDRESS_MAX RT_ADDRESS_MAX

/* ---- jobs from other threads ------------------------------------------------------------- */

typedef enum job_kind {
  JOB_SETTINGS,
  JOB_PRESENCE,
  JOB_WATCH,
  JOB_UNWATCH,
  JOB_SEND,
  JOB_RECEIVED,
  JOB_CONSENT,
  JOB_RESOLVED,
} job_kind_t;

typedef struct job {
  struct job *next;
  job_kind_t kind;
  char a[ADDRESS_MAX + 1], b[ADDRESS_MAX + 1];
  int64_t id;
  int status;
  bool flag;
  char *text;
  fed_settings_t settings;
  fed_target_t target; /* JOB_RESOLVED: a = the domain, status 0 or -ENOENT, text the sentence */
} job_t;

/* An inbound subscription: a watcher of another domain to a local user. */
typedef struct in_sub {
  struct in_sub *next;
  nta_leg_t *leg;
  char user[65];
  char watcher[ADDRESS_MAX + 1];
  char peer[SIP_DOMAIN_MAX + 1];
  time_t expires;
  bool allowed;
  nta_outgoing_t *orq; /* the NOTIFY in flight (one at a time: CSeq order) */
  bool again;          /* the presence changed while one was in flight */
  bool ending;         /* the final NOTIFY is (or is to be) sent */
  bool queued;         /* waiting for a place in the NOTIFY window */
  struct in_sub *nq_prev, *nq_next;
  char reason[24];
} in_sub_t;

/* An outgoing subscription: our watch of an address of another domain. */
typedef struct out_sub {
  struct out_sub *next;
  char address[ADDRESS_MAX + 1];
  char from[ADDRESS_MAX + 1]; /* the local identity it was sent from */
  nta_leg_t *leg;
  nta_outgoing_t *orq;
  bool active, wanted;
  bool recreated; /* from a local user to a watcher of the user's old address */
  bool dns_wait;  /* sent once DNS has answered for the domain */
  time_t next_at; /* refresh or retry */
  int failures;
  fed_target_t target;
} out_sub_t;

/* An outgoing MESSAGE not yet answered with 2xx. */
typedef struct out_msg {
  struct out_msg *next;
  int64_t id;
  char from[65];
  char to[ADDRESS_MAX + 1];
  char *text;
  nta_leg_t *leg;
  nta_outgoing_t *orq;
  fed_target_t target;
  int tries;
  bool dns_wait;
  time_t next_at;
} out_msg_t;

/* An incoming MESSAGE waiting for the writer's commit. */
typedef struct in_msg {
  struct in_msg *next;
  int64_t key;
  nta_incoming_t *irq;
} in_msg_t;

/* A watcher of a user's address before the domain change: the user's new
 * address subscribes to it (the partner learns the new address). */
typedef struct recreate {
  struct recreate *next;
  char user[65];
  char remote[ADDRESS_MAX + 1];
  char state[16]; /* the consent, kept */
} recreate_t;

/* What DNS said about a partner domain: looked up on the runtime's I/O
 * pool (never on this thread: a dead DNS server must not stall the other
 * partners), kept DNS_TTL seconds, a failure DNS_NEGATIVE_TTL. */
#define DNS_TTL 300
#define DNS_NEGATIVE_TTL 30
typedef struct dns_entry {
  struct dns_entry *next;
  char domain[SIP_DOMAIN_MAX + 1];
  bool pending;
  int status;
  char err[256];
  fed_target_t target;
  time_t expires;
} dns_entry_t;

typedef struct rate {
  struct rate *next;
  char domain[SIP_DOMAIN_MAX + 1];
  time_t second;
  int count;
} rate_t;

static struct {
  /* set before the thread starts, read-only afterwards */
  store_t *store;
  char listen_url[160];
  char contact_host[SIP_DOMAIN_MAX + 8];
  int port;
  char tls_dir[4200];
  char resolver[128];
  bool configured;

  pthread_t thread;
  bool thread_started;
  int efd;
  pthread_mutex_t lock; /* jobs, status, settings copy */
  job_t *head, *tail;
  bool stopping;
  fed_status_t status;

  /* the agent thread's own */
  su_root_t *root;
  nta_agent_t *agent;
  nta_leg_t *default_leg;
  su_timer_t *tick;
  fed_settings_t cur;
  in_sub_t *ins;
  in_sub_t *nq_head, *nq_tail; /* waiting for the NOTIFY window */
  int notifies_in_flight;
  out_sub_t *outs;
  out_msg_t *omsgs;
  in_msg_t *imsgs;
  int64_t next_key;
  rate_t *rates;
  recreate_t *recreate;
  dns_entry_t *dns;
} A = {.lock = PTHREAD_MUTEX_INITIALIZER, .efd = -1};

static void post(job_t *j) {
  pthread_mutex_lock(&A.lock);
  bool ok = A.thread_started && !A.stopping;
  if (ok) {
    if (A.tail)
      A.tail->next = j;
    else
      A.head = j;
    A.tail = j;
  }
  pthread_mutex_unlock(&A.lock);
  if (!ok) {
    free(j->text);
    free(j);
    return;
  }
  uint64_t one = 1;
  ssize_t w = write(A.efd, &one, sizeof one);
  (void)w;
}

static job_t *job_new(job_kind_t kind) {
  job_t *j = calloc(1, sizeof *j);
  if (j) j->kind = kind;
  return j;
}

static void fail_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_status(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&A.lock);
  snprintf(A.status.error, sizeof A.status.error, "%s", buf);
  A.status.error_at = time(NULL);
  pthread_mutex_unlock(&A.lock);
  log_warning("federation: %s", buf);
}

#define COUNT(field)                                                                               \
  do {                                                                                             \
    pthread_mutex_lock(&A.lock);                                                                   \
    A.status.field++;                                                                              \
    pthread_mutex_unlock(&A.lock);                                                                 \
  } while (0)

static void note_peer(const char *domain) {
  pthread_mutex_lock(&A.lock);
  char *p = A.status.peers;
  size_t n = strlen(domain);
  bool seen = false;
  for (const char *s = p; (s = strcasestr(s, domain)) != NULL; s += n)
    if ((s == p || s[-1] == ' ') && (s[n] == ' ' || s[n] == '\0')) {
      seen = true;
      break;
    }
  size_t used = strlen(p);
  if (!seen && used + n + 2 < sizeof A.status.peers)
    snprintf(p + used, sizeof A.status.peers - used, "%s%s", used ? " " : "", domain);
  pthread_mutex_unlock(&A.lock);
}

/* ---- addresses and policy ------------------------------------------------------------------- */

static const char *domain_of(const char *address) {
  const char *at = strrchr(address, '@');
  return at ? at + 1 : "";
}

/* "user@host" of a SIP URI, lower-cased host; false when it has no user. */
static bool address_of_url(const url_t *u, char *out, size_t len) {
  if (!u || !u->url_user || !u->url_host || !u->url_user[0]) return false;
  int n = snprintf(out, len, "%s@%s", u->url_user, u->url_host);
  if (n < 0 || (size_t)n >= len) return false;
  for (char *c = strrchr(out, '@'); *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
  return rt_address_ok(out);
}

/* A word of a space-separated list, case-insensitively. */
static bool in_list(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *s = list; *s;) {
    while (*s == ' ') s++;
    const char *e = s;
    while (*e && *e != ' ') e++;
    if ((size_t)(e - s) == n && strncasecmp(s, word, n) == 0) return true;
    s = e;
  }
  return false;
}

/* Whether we federate with `domain` at all: the block list wins, then an
 * allow list that is not empty must name it. */
static bool partner_allowed(const char *domain) {
  if (in_list(A.cur.blocked, domain)) return false;
  return !A.cur.allowed[0] || in_list(A.cur.allowed, domain);
}

/* A certificate name covers a domain: the same, or "*.x" for one label. */
static bool name_covers(const char *name, const char *domain) {
  if (strcasecmp(name, domain) == 0) return true;
  if (name[0] == '*' && name[1] == '.') {
    const char *dot = strchr(domain, '.');
    return dot && dot != domain && strcasecmp(dot + 1, name + 2) == 0;
  }
  return false;
}

static bool subjects_cover(su_strlst_t const *subjects, const char *domain) {
  usize_t n = subjects ? su_strlst_len(subjects) : 0;
  for (usize_t i = 0; i < n; i++)
    if (name_covers(su_strlst_item(subjects, i), domain)) return true;
  return false;
}

/* ---- replies ---------------------------------------------------------------------------------- */

static void warning_reply(nta_incoming_t *irq, int status, const char *phrase, const char *why) {
  char warning[600];
  /* RFC 3261 20.43: warn-code 399 (miscellaneous), our host, the text. */
  char text[300];
  snprintf(text, sizeof text, "%s", why);
  for (char *c = text; *c; c++)
    if (*c == '"' || *c == '\\') *c = '\'';
  snprintf(warning, sizeof warning, "399 %s \"%s\"", A.cur.fqdn[0] ? A.cur.fqdn : "atrium", text);
  nta_incoming_treply(irq, status, phrase, SIPTAG_WARNING_STR(warning), TAG_END());
}

static void contact_of(const char *user, char *out, size_t len) {
  snprintf(out, len, "<sip:%s@%s:%d;transport=tls>", user, A.contact_host, A.port);
}

static bool rate_ok(const char *domain) {
  time_t now = time(NULL);
  rate_t *r = A.rates;
  for (; r; r = r->next)
    if (strcasecmp(r->domain, domain) == 0) break;
  if (!r) {
    if (!(r = calloc(1, sizeof *r))) return false;
    snprintf(r->domain, sizeof r->domain, "%s", domain);
    r->next = A.rates;
    A.rates = r;
  }
  if (r->second != now) {
    r->second = now;
    r->count = 0;
  }
  return ++r->count <= RATE_PER_SECOND;
}

/* The checks every request from another domain passes before its method is
 * looked at. 0, or the reply was sent and the status is returned. */
static int check_request(nta_incoming_t *irq, sip_t const *sip, char *from, size_t fromlen) {
  if (!sip->sip_from || !address_of_url(sip->sip_from->a_url, from, fromlen)) {
    nta_incoming_treply(irq, 400, "Bad From", TAG_END());
    return 400;
  }
  const char *domain = domain_of(from);
  msg_t *msg = nta_incoming_getrequest(irq);
  tport_t *tp = nta_incoming_transport(A.agent, irq, msg);
  su_strlst_t const *subjects = tp ? tport_delivered_from_subjects(tp, msg) : NULL;
  bool verified = tp && tport_is_verified(tp);
  bool covered = verified && subjects_cover(subjects, domain);
  tport_unref(tp);
  msg_destroy(msg);
  if (!covered) {
    COUNT(refused_cert);
    warning_reply(irq, 403, "Forbidden",
                  "The From domain is not a name of the certificate this connection presented");
    return 403;
  }
  if (!partner_allowed(domain)) {
    COUNT(refused_policy);
    warning_reply(irq, 403, "Forbidden", "This server does not federate with your domain");
    return 403;
  }
  if (!rate_ok(domain)) {
    COUNT(refused_rate);
    nta_incoming_treply(irq, 503, "Rate limited", SIPTAG_RETRY_AFTER_STR("1"), TAG_END());
    return 503;
  }
  note_peer(domain);
  return 0;
}

/* Whether `host` was our domain before and the grace period of its
 * addresses (federation.redirect_days from the change) still runs. */
static bool redirect_ok(const char *host) {
  if (A.cur.redirect_days <= 0) return false;
  store_txn_t *t;
  if (store_read_begin(A.store, "federation: old domain", &t) != 0) return false;
  int64_t gen = 0;
  char dom[256];
  bool was = false;
  char *since = NULL;
  if (store_domain_current(t, &gen, dom, sizeof dom) == 0) store_domain_was(t, host, gen, &was);
  if (was) store_meta_get(t, FED_META_DOMAIN_CHANGED, &since);
  store_read_end(t);
  bool ok = was && since && time(NULL) - strtoll(since, NULL, 10) < (time_t)A.cur.redirect_days * 86400;
  free(since);
  return ok;
}

/* The local user a request is for: its Request-URI names user@<our domain>.
 * 0 and the name, or the reply was sent. */
static int local_target(nta_incoming_t *irq, sip_t const *sip, char *name, size_t len) {
  url_t const *u = sip->sip_request ? sip->sip_request->rq_url : NULL;
  if (!u || !u->url_user || !u->url_host || strlen(u->url_user) >= len) {
    nta_incoming_treply(irq, 404, "Not Found", TAG_END());
    return 404;
  }
  snprintf(name, len, "%s", u->url_user);
  for (char *c = name; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
  if (strcasecmp(u->url_host, A.cur.domain) != 0) {
    if (redirect_ok(u->url_host)) {
      /* The user's address changed with the domain: tell the partner the
       * new one (RFC 3261 21.3.2), during the grace period. */
      char contact[ADDRESS_MAX + 16];
      snprintf(contact, sizeof contact, "<sip:%s@%s>", name, A.cur.domain);
      nta_incoming_treply(irq, 301, "Moved Permanently", SIPTAG_CONTACT_STR(contact), TAG_END());
      COUNT(redirected);
      return 301;
    }
    nta_incoming_treply(irq, 404, "Not Found", TAG_END());
    return 404;
  }
  for (char *c = name; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
  store_txn_t *t;
  store_user_t user;
  int r = store_read_begin(A.store, "federation: user", &t);
  if (r == 0) {
    r = store_user_get(t, name, &user);
    store_read_end(t);
  }
  if (r != 0 || !user.enabled) {
    nta_incoming_treply(irq, 404, "Not Found", TAG_END());
    return 404;
  }
  return 0;
}

/* ---- presence to other domains (inbound subscriptions) -------------------------------------- */

static pidf_availability_t availability_of(rt_state_t s) {
  switch (s) {
  case RT_AVAILABLE: return PIDF_AVAILABLE;
  case RT_BUSY: return PIDF_BUSY;
  case RT_DND: return PIDF_DND;
  case RT_AWAY: return PIDF_AWAY;
  default: return PIDF_OFFLINE;
  }
}

static rt_state_t state_of(pidf_availability_t a) {
  switch (a) {
  case PIDF_AVAILABLE: return RT_AVAILABLE;
  case PIDF_BUSY: return RT_BUSY;
  case PIDF_DND: return RT_DND;
  case PIDF_AWAY: return RT_AWAY;
  default: return RT_OFFLINE;
  }
}

static void send_notify(in_sub_t *s);
static void notify_pump(void);

static void nq_remove(in_sub_t *s) {
  if (!s->queued) return;
  if (s->nq_prev)
    s->nq_prev->nq_next = s->nq_next;
  else
    A.nq_head = s->nq_next;
  if (s->nq_next)
    s->nq_next->nq_prev = s->nq_prev;
  else
    A.nq_tail = s->nq_prev;
  s->nq_prev = s->nq_next = NULL;
  s->queued = false;
}

static void in_sub_free(in_sub_t *s) {
  nq_remove(s);
  if (s->orq) {
    nta_outgoing_destroy(s->orq);
    A.notifies_in_flight--;
  }
  if (s->leg) nta_leg_destroy(s->leg);
  free(s);
}

static void in_sub_unlink(in_sub_t *s) {
  for (in_sub_t **p = &A.ins; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      return;
    }
}

static int on_notify_answer(nta_outgoing_magic_t *magic, nta_outgoing_t *orq, sip_t const *sip) {
  in_sub_t *s = (in_sub_t *)magic;
  int status = nta_outgoing_status(orq);
  if (status < 200) return 0;
  nta_outgoing_destroy(orq);
  s->orq = NULL;
  A.notifies_in_flight--;
  notify_pump();
  if (status >= 300) COUNT(notify_failed);
  /* 481: the watcher forgot the subscription; a final answer of another
   * kind after a final NOTIFY is the end as well. */
  if (s->ending || status == 481 || status == 408 || status >= 500) {
    if (!s->ending && status >= 500 && status != 503) {
      /* keep it: a server error once is no reason to forget the watcher */
    } else {
      in_sub_unlink(s);
      in_sub_free(s);
      return 0;
    }
  }
  if (s->again) {
    s->again = false;
    send_notify(s);
  }
  return 0;
}

/* Sends what waits for the window while there is room. */
static void notify_pump(void) {
  while (A.nq_head && A.notifies_in_flight < NOTIFY_WINDOW) {
    in_sub_t *s = A.nq_head;
    nq_remove(s);
    send_notify(s);
  }
}

static void send_notify(in_sub_t *s) {
  if (s->orq) {
    s->again = true;
    return;
  }
  if (s->queued) return; /* its turn comes; it sends the state of then */
  if (A.notifies_in_flight >= NOTIFY_WINDOW) {
    s->queued = true;
    s->nq_prev = A.nq_tail;
    if (A.nq_tail)
      A.nq_tail->nq_next = s;
    else
      A.nq_head = s;
    A.nq_tail = s;
    return;
  }
  char state[96];
  time_t now = time(NULL);
  long left = s->expires > now ? (long)(s->expires - now) : 0;
  char *body = NULL;
  if (s->ending || left == 0) {
    s->ending = true;
    snprintf(state, sizeof state, "terminated;reason=%s", s->reason[0] ? s->reason : "timeout");
  } else if (!s->allowed) {
    snprintf(state, sizeof state, "pending;expires=%ld", left);
  } else {
    snprintf(state, sizeof state, "active;expires=%ld", left);
    rt_state_t st = RT_OFFLINE;
    char note[RT_NOTE_MAX + 1] = "", since[32];
    rt_presence_of(s->user, &st, note, sizeof note, since);
    pidf_status_t ps = {.availability = availability_of(st)};
    snprintf(ps.note, sizeof ps.note, "%s", note);
    char address[ADDRESS_MAX + 1];
    snprintf(address, sizeof address, "%s@%s", s->user, A.cur.domain);
    body = pidf_write(address, &ps);
  }
  char contact[ADDRESS_MAX + 64];
  contact_of(s->user, contact, sizeof contact);
  s->orq = nta_outgoing_tcreate(
      s->leg, on_notify_answer, (nta_outgoing_magic_t *)s, NULL, SIP_METHOD_NOTIFY, NULL,
      SIPTAG_EVENT_STR("presence"), SIPTAG_SUBSCRIPTION_STATE_STR(state),
      SIPTAG_CONTACT_STR(contact),
      TAG_IF(body, SIPTAG_CONTENT_TYPE_STR("application/pidf+xml")),
      TAG_IF(body, SIPTAG_PAYLOAD_STR(body)), TAG_END());
  free(body);
  if (s->orq) {
    A.notifies_in_flight++;
    COUNT(notify_sent);
  } else {
    COUNT(notify_failed);
    if (s->ending) {
      in_sub_unlink(s);
      in_sub_free(s);
    }
  }
}

static void in_sub_end(in_sub_t *s, const char *reason) {
  if (s->ending) return;
  s->ending = true;
  snprintf(s->reason, sizeof s->reason, "%s", reason);
  send_notify(s);
}

static int expires_of(sip_t const *sip, int *out) {
  long e = sip->sip_expires ? (long)sip->sip_expires->ex_delta : SUB_EXPIRES_DEFAULT;
  if (e != 0 && e < SUB_EXPIRES_MIN) return -1;
  *out = (int)(e > SUB_EXPIRES_MAX ? SUB_EXPIRES_MAX : e);
  return 0;
}

static bool event_is_presence(sip_t const *sip) {
  return sip->sip_event && sip->sip_event->o_type &&
         strcasecmp(sip->sip_event->o_type, "presence") == 0;
}

/* The stored consents of one user, read at once: watchers (lower case) ->
 * CONSENT_ALLOWED or CONSENT_PENDING. Looking each SUBSCRIBE's watcher up
 * in the store listed all the user's subscriptions every time: a user
 * watched from 10,000 addresses cost 10,000 rows per SUBSCRIBE, and the
 * subscriptions of a partner's server came in at a few per second. Kept
 * CONSENT_TTL seconds (an import through the admin API is seen after that),
 * dropped at once when the user decides (JOB_CONSENT). */
#define CONSENT_TTL 2
#define CONSENT_ALLOWED ((void *)(uintptr_t)1)
#define CONSENT_PENDING ((void *)(uintptr_t)2)
static struct {
  char user[65];
  map_t *watchers;
  time_t loaded;
} consents;

static void consent_forget(void) {
  map_free(consents.watchers);
  consents.watchers = NULL;
  consents.user[0] = '\0';
}

static void lower_copy(const char *in, char *out, size_t len) {
  snprintf(out, len, "%s", in);
  for (char *c = out; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
}

static void consent_row(const store_federation_row_t *row, void *ctx) {
  (void)ctx;
  if (!row->remote || !row->state) return;
  char key[ADDRESS_MAX + 1];
  lower_copy(row->remote, key, sizeof key);
  map_put_str(consents.watchers, key,
              strcmp(row->state, "pending") == 0 ? CONSENT_PENDING : CONSENT_ALLOWED);
}

static bool consent_of(const char *user, const char *watcher) {
  store_txn_t *t;
  int64_t gen = 0;
  char dom[256];
  time_t now = time(NULL);
  if (!consents.watchers || strcmp(consents.user, user) != 0 || now - consents.loaded >= CONSENT_TTL) {
    consent_forget();
    if (!(consents.watchers = map_new())) return false;
    if (store_read_begin(A.store, "federation: consent", &t) != 0) {
      consent_forget();
      return false;
    }
    store_domain_current(t, &gen, dom, sizeof dom);
    int64_t total;
    store_subscription_list(t, user, NULL, gen, 0, 100000, &total, consent_row, NULL);
    store_read_end(t);
    snprintf(consents.user, sizeof consents.user, "%s", user);
    consents.loaded = now;
  }
  char key[ADDRESS_MAX + 1];
  lower_copy(watcher, key, sizeof key);
  void *v = map_get_str(consents.watchers, key);
  if (v) return v == CONSENT_ALLOWED;
  /* First time: remembered as pending until the user decides. */
  if (store_begin(A.store, "federation: watcher", &t) == 0) {
    store_domain_current(t, &gen, dom, sizeof dom);
    int r = store_subscription_insert(t, user, watcher, "pending", gen);
    if (r == 0 || r == -EEXIST)
      store_commit(t);
    else
      store_rollback(t);
  }
  map_put_str(consents.watchers, key, CONSENT_PENDING);
  return false;
}

static int on_in_sub_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
                             sip_t const *sip) {
  in_sub_t *s = (in_sub_t *)magic;
  char from[ADDRESS_MAX + 1];
  int r = check_request(irq, sip, from, sizeof from);
  if (r) return r;
  if (strcasecmp(from, s->watcher) != 0) {
    warning_reply(irq, 403, "Forbidden", "The From of the dialog changed");
    return 403;
  }
  if (sip->sip_request->rq_method != sip_method_subscribe) return 405;
  if (!event_is_presence(sip)) return 489;
  int expires;
  if (expires_of(sip, &expires) != 0) {
    nta_incoming_treply(irq, 423, "Interval Too Brief", SIPTAG_MIN_EXPIRES_STR("60"), TAG_END());
    return 423;
  }
  char ex[16];
  snprintf(ex, sizeof ex, "%d", expires);
  nta_incoming_treply(irq, SIP_200_OK, SIPTAG_EXPIRES_STR(ex), TAG_END());
  if (!A.cur.enabled) {
    in_sub_end(s, "deactivated");
  } else if (expires == 0) {
    in_sub_end(s, "timeout");
  } else {
    s->expires = time(NULL) + expires;
    send_notify(s);
  }
  return 200;
}

static int handle_subscribe(nta_incoming_t *irq, sip_t const *sip, const char *from) {
  if (!event_is_presence(sip)) {
    nta_incoming_treply(irq, 489, "Bad Event", SIPTAG_ALLOW_EVENTS_STR("presence"), TAG_END());
    return 489;
  }
  char user[65];
  int r = local_target(irq, sip, user, sizeof user);
  if (r) return r;
  int expires;
  if (expires_of(sip, &expires) != 0) {
    nta_incoming_treply(irq, 423, "Interval Too Brief", SIPTAG_MIN_EXPIRES_STR("60"), TAG_END());
    return 423;
  }
  in_sub_t *s = calloc(1, sizeof *s);
  if (!s) return 500;
  snprintf(s->user, sizeof s->user, "%s", user);
  snprintf(s->watcher, sizeof s->watcher, "%s", from);
  snprintf(s->peer, sizeof s->peer, "%s", domain_of(from));
  s->expires = time(NULL) + expires;
  s->leg = nta_leg_tcreate(A.agent, on_in_sub_request, (nta_leg_magic_t *)s,
                           SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to),
                           SIPTAG_TO(sip->sip_from), NTATAG_REMOTE_CSEQ(sip->sip_cseq->cs_seq),
                           TAG_END());
  if (!s->leg || !nta_leg_tag(s->leg, NULL)) {
    in_sub_free(s);
    return 500;
  }
  nta_leg_server_route(s->leg, sip->sip_record_route, sip->sip_contact);
  nta_incoming_tag(irq, nta_leg_get_tag(s->leg));
  s->allowed = consent_of(user, from);
  char ex[16], contact[ADDRESS_MAX + 64];
  snprintf(ex, sizeof ex, "%d", expires);
  contact_of(user, contact, sizeof contact);
  nta_incoming_treply(irq, 202, "Accepted", SIPTAG_EXPIRES_STR(ex), SIPTAG_CONTACT_STR(contact),
                      TAG_END());
  s->next = A.ins;
  A.ins = s;
  if (expires == 0) {
    in_sub_end(s, "timeout");
  } else {
    send_notify(s);
  }
  return 202;
}

/* ---- presence from other domains (outgoing subscriptions) ----------------------------------- */

static void identity(char *out, size_t len);

/* The subscription to `address` from `from` (NULL: the server's identity). */
static out_sub_t *out_find(const char *address, const char *from) {
  char me[ADDRESS_MAX + 1];
  if (!from) {
    identity(me, sizeof me);
    from = me;
  }
  for (out_sub_t *o = A.outs; o; o = o->next)
    if (strcasecmp(o->address, address) == 0 && strcasecmp(o->from, from) == 0) return o;
  return NULL;
}

static void out_sub_reset(out_sub_t *o) {
  if (o->orq) nta_outgoing_destroy(o->orq);
  if (o->leg) nta_leg_destroy(o->leg);
  o->orq = NULL;
  o->leg = NULL;
  o->active = false;
}

static void out_sub_free(out_sub_t *o) {
  out_sub_reset(o);
  free(o);
}

static int on_out_sub_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
                              sip_t const *sip) {
  out_sub_t *o = (out_sub_t *)magic;
  char from[ADDRESS_MAX + 1];
  int r = check_request(irq, sip, from, sizeof from);
  if (r) return r;
  if (sip->sip_request->rq_method != sip_method_notify) return 405;
  if (!event_is_presence(sip)) return 489;
  if (strcasecmp(from, o->address) != 0) {
    warning_reply(irq, 403, "Forbidden", "The NOTIFY is not from the address subscribed to");
    return 403;
  }
  /* The first NOTIFY may come before the 2xx of the SUBSCRIBE. */
  if (sip->sip_from->a_tag) nta_leg_rtag(leg, sip->sip_from->a_tag);
  if (!o->active) nta_leg_client_route(leg, sip->sip_record_route, sip->sip_contact);
  const char *ss = sip->sip_subscription_state ? sip->sip_subscription_state->ss_substate : "";
  if (sip->sip_payload && sip->sip_payload->pl_len) {
    pidf_status_t ps;
    char why[256];
    if (pidf_read(sip->sip_payload->pl_data, sip->sip_payload->pl_len, o->address, &ps, why,
                  sizeof why) != 0) {
      warning_reply(irq, 400, "Bad PIDF", why);
      return 400;
    }
    COUNT(notify_received);
    rt_federation_presence(o->address, state_of(ps.availability), ps.note);
  }
  nta_incoming_treply(irq, SIP_200_OK, TAG_END());
  if (ss && strcasecmp(ss, "terminated") == 0) {
    rt_federation_presence(o->address, RT_OFFLINE, "");
    const char *reason = sip->sip_subscription_state->ss_reason;
    out_sub_reset(o);
    /* deactivated, timeout, probation: try again later; rejected or
     * noresource: the answer stands until the watch is made again. */
    bool retry = !reason || !strcasecmp(reason, "deactivated") ||
                 !strcasecmp(reason, "timeout") || !strcasecmp(reason, "probation");
    o->next_at = retry && o->wanted ? time(NULL) + 5 : 0;
  }
  return 200;
}

static int on_out_sub_answer(nta_outgoing_magic_t *magic, nta_outgoing_t *orq, sip_t const *sip) {
  out_sub_t *o = (out_sub_t *)magic;
  int status = nta_outgoing_status(orq);
  if (status < 200) return 0;
  bool ok = status < 300;
  if (ok) {
    msg_t *msg = nta_outgoing_getresponse(orq);
    tport_t *tp = nta_outgoing_transport(orq);
    su_strlst_t const *subjects = tp ? tport_delivered_from_subjects(tp, msg) : NULL;
    bool covered = tp && tport_is_verified(tp) && subjects_cover(subjects, domain_of(o->address));
    tport_unref(tp);
    msg_destroy(msg);
    if (!covered) {
      COUNT(refused_cert);
      fail_status("The server of %s answered with a certificate that does not name the domain.",
                  domain_of(o->address));
      ok = false;
    }
  }
  /* sip lives as long as orq: everything is taken from it first. */
  o->orq = NULL;
  char phrase[64];
  snprintf(phrase, sizeof phrase, "%s",
           sip && sip->sip_status && sip->sip_status->st_phrase ? sip->sip_status->st_phrase : "");
  if (ok && sip && o->wanted) {
    if (sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(o->leg, sip->sip_to->a_tag);
    nta_leg_client_route(o->leg, sip->sip_record_route, sip->sip_contact);
    long e = sip->sip_expires ? (long)sip->sip_expires->ex_delta : SUB_EXPIRES_DEFAULT;
    if (e < SUB_EXPIRES_MIN) e = SUB_EXPIRES_MIN;
    o->next_at = time(NULL) + e * 4 / 5;
  }
  nta_outgoing_destroy(orq);
  if (!o->wanted) {
    out_sub_reset(o);
    return 0;
  }
  if (ok && sip) {
    o->active = true;
    o->failures = 0;
    note_peer(domain_of(o->address));
  } else {
    out_sub_reset(o);
    o->failures++;
    if (status == 403 || status == 404 || status == 489) {
      /* the partner said no: ask again only when the watch is made again */
      o->next_at = 0;
    } else {
      o->next_at = o->failures < OUT_RETRY_MAX ? time(NULL) + (1 << o->failures) : 0;
    }
    if (status != 200) fail_status("SUBSCRIBE to %s: %d %s", o->address, status, phrase);
  }
  return 0;
}

typedef struct dns_job {
  char resolver[128];
  char domain[SIP_DOMAIN_MAX + 1];
} dns_job_t;

/* On the I/O pool. */
static void dns_run(void *arg) {
  dns_job_t *d = arg;
  job_t *j = job_new(JOB_RESOLVED);
  if (j) {
    char err[256] = "";
    snprintf(j->a, sizeof j->a, "%s", d->domain);
    j->status = fed_resolve(d->resolver, d->domain, &j->target, err, sizeof err);
    j->text = strdup(err);
    post(j);
  }
  free(d);
}

/* The partner's server: 0 and *out, -EAGAIN while DNS is asked (the caller
 * waits for JOB_RESOLVED), -ENOENT with err. */
static int dns_target(const char *domain, fed_target_t *out, char *err, size_t errlen) {
  time_t now = time(NULL);
  dns_entry_t *e = A.dns;
  for (; e; e = e->next)
    if (strcasecmp(e->domain, domain) == 0) break;
  if (e && !e->pending && e->expires > now) {
    if (e->status == 0) {
      *out = e->target;
      return 0;
    }
    snprintf(err, errlen, "%s", e->err);
    return -ENOENT;
  }
  if (e && e->pending) return -EAGAIN;
  if (!e) {
    if (!(e = calloc(1, sizeof *e))) {
      snprintf(err, errlen, "Out of memory.");
      return -ENOENT;
    }
    snprintf(e->domain, sizeof e->domain, "%s", domain);
    e->next = A.dns;
    A.dns = e;
  }
  dns_job_t *d = calloc(1, sizeof *d);
  workpool_t *pool = runtime_io_pool();
  if (d) {
    snprintf(d->resolver, sizeof d->resolver, "%s", A.resolver);
    snprintf(d->domain, sizeof d->domain, "%s", domain);
  }
  if (!d || !pool || workpool_submit(pool, dns_run, d) != 0) {
    free(d);
    snprintf(err, errlen, "The DNS lookup of %s could not be started (the server is busy).",
             domain);
    return -ENOENT;
  }
  e->pending = true;
  return -EAGAIN;
}

/* Whether DNS is being asked about `domain`. */
static bool dns_pending(const char *domain) {
  for (dns_entry_t *e = A.dns; e; e = e->next)
    if (strcasecmp(e->domain, domain) == 0) return e->pending;
  return false;
}

static void out_sub_send(out_sub_t *o, int expires);
static void out_msg_send(out_msg_t *m);

/* DNS answered for a domain: what waited for it goes out. */
static void dns_answered(job_t *j) {
  dns_entry_t *e = A.dns;
  for (; e; e = e->next)
    if (strcasecmp(e->domain, j->a) == 0) break;
  if (!e) return;
  e->pending = false;
  e->status = j->status;
  e->target = j->target;
  snprintf(e->err, sizeof e->err, "%s", j->text ? j->text : "");
  e->expires = time(NULL) + (j->status == 0 ? DNS_TTL : DNS_NEGATIVE_TTL);
  for (out_sub_t *o = A.outs; o; o = o->next)
    if (o->dns_wait && strcasecmp(domain_of(o->address), e->domain) == 0) {
      o->dns_wait = false;
      if (o->wanted && A.cur.enabled) out_sub_send(o, SUB_EXPIRES_DEFAULT);
    }
  for (out_msg_t *m = A.omsgs, *next; m; m = next) {
    next = m->next;
    if (m->dns_wait && strcasecmp(domain_of(m->to), e->domain) == 0) {
      m->dns_wait = false;
      m->tries--; /* the wait was no try */
      out_msg_send(m);
    }
  }
}

/* A new leg toward `to` from the local `from`: Call-ID, tags, the route to
 * the partner's server. NULL when the partner cannot be reached (err says)
 * or DNS is being asked (*wait). */
static nta_leg_t *leg_to(const char *from, const char *to, nta_leg_magic_t *magic,
                         nta_request_f *cb, fed_target_t *target, bool *wait, char *err,
                         size_t errlen) {
  int r = dns_target(domain_of(to), target, err, errlen);
  *wait = r == -EAGAIN;
  if (r != 0) return NULL;
  char from_s[ADDRESS_MAX + 16], to_s[ADDRESS_MAX + 16], callid[320];
  snprintf(from_s, sizeof from_s, "<sip:%s>", from);
  snprintf(to_s, sizeof to_s, "<sip:%s>", to);
  bool v6 = strchr(target->ip, ':') != NULL;
  snprintf(target->route, sizeof target->route, "sips:%s%s%s:%d", v6 ? "[" : "",
           target->ip, v6 ? "]" : "", target->port);
  uint64_t rnd[2] = {(uint64_t)random() << 32 ^ (uint64_t)random(), (uint64_t)time(NULL)};
  snprintf(callid, sizeof callid, "%016" PRIx64 "%08" PRIx64 "@%s", rnd[0], rnd[1] & 0xffffffff,
           A.contact_host);
  nta_leg_t *leg = nta_leg_tcreate(A.agent, cb, magic, SIPTAG_FROM_STR(from_s),
                                   SIPTAG_TO_STR(to_s), SIPTAG_CALL_ID_STR(callid), TAG_END());
  if (leg && !nta_leg_tag(leg, NULL)) {
    nta_leg_destroy(leg);
    leg = NULL;
  }
  if (!leg) snprintf(err, errlen, "Out of memory.");
  return leg;
}

static void identity(char *out, size_t len) {
  /* Watches are the server's on behalf of its users (the real-time core
   * tells which addresses are watched, not by whom): one subscription per
   * address, from the server's presence identity. */
  snprintf(out, len, "presence@%s", A.cur.domain);
}

static void out_sub_send(out_sub_t *o, int expires) {
  char err[256];
  if (!o->leg) {
    /* After a domain change the identity is the new one. */
    if (!o->recreated) identity(o->from, sizeof o->from);
    bool wait = false;
    o->leg = leg_to(o->from, o->address, (nta_leg_magic_t *)o, on_out_sub_request, &o->target,
                    &wait, err, sizeof err);
    if (!o->leg && wait) {
      o->dns_wait = true;
      return;
    }
    if (!o->leg) {
      o->failures++;
      o->next_at = o->failures < OUT_RETRY_MAX ? time(NULL) + (1 << o->failures) : 0;
      fail_status("SUBSCRIBE to %s: %s", o->address, err);
      return;
    }
  }
  char ex[16], contact[ADDRESS_MAX + 64];
  snprintf(ex, sizeof ex, "%d", expires);
  char user[65];
  snprintf(user, sizeof user, "%.*s", (int)(strchr(o->from, '@') - o->from), o->from);
  contact_of(user, contact, sizeof contact);
  char ruri[ADDRESS_MAX + 8];
  snprintf(ruri, sizeof ruri, "sip:%s", o->address);
  /* Until the dialog has the partner's Contact, requests go to the server
   * DNS named. */
  o->orq = nta_outgoing_tcreate(o->leg, on_out_sub_answer, (nta_outgoing_magic_t *)o,
                                o->active ? NULL : (url_string_t const *)(o->target.route),
                                SIP_METHOD_SUBSCRIBE, o->active ? NULL : (url_string_t const *)(ruri),
                                SIPTAG_EVENT_STR("presence"), SIPTAG_EXPIRES_STR(ex),
                                SIPTAG_ACCEPT_STR("application/pidf+xml"),
                                SIPTAG_CONTACT_STR(contact), TAG_END());
  o->next_at = 0;
  if (!o->orq) {
    out_sub_reset(o);
    o->failures++;
    o->next_at = o->failures < OUT_RETRY_MAX ? time(NULL) + (1 << o->failures) : 0;
  }
}

static void watch(const char *address, bool on) {
  out_sub_t *o = out_find(address, NULL);
  if (on) {
    if (!o) {
      if (!(o = calloc(1, sizeof *o))) return;
      snprintf(o->address, sizeof o->address, "%s", address);
      identity(o->from, sizeof o->from);
      o->next = A.outs;
      A.outs = o;
    }
    o->wanted = true;
    o->failures = 0;
    if (A.cur.enabled && partner_allowed(domain_of(address)) && !o->orq && !o->active)
      out_sub_send(o, SUB_EXPIRES_DEFAULT);
    return;
  }
  if (!o) return;
  o->wanted = false;
  if (o->active && !o->orq) {
    out_sub_send(o, 0);
  } else if (!o->orq) {
    for (out_sub_t **p = &A.outs; *p; p = &(*p)->next)
      if (*p == o) {
        *p = o->next;
        break;
      }
    out_sub_free(o);
  }
}

/* ---- chat ------------------------------------------------------------------------------------ */

static void in_msg_done(void *ctx, int status, int64_t message_id) {
  (void)message_id;
  job_t *j = job_new(JOB_RECEIVED);
  if (!j) return;
  j->id = (int64_t)(intptr_t)ctx;
  j->status = status;
  post(j);
}

static int handle_message(nta_incoming_t *irq, sip_t const *sip, const char *from) {
  char user[65];
  int r = local_target(irq, sip, user, sizeof user);
  if (r) return r;
  if (!sip->sip_content_type || !sip->sip_content_type->c_type ||
      strcasecmp(sip->sip_content_type->c_type, "text/plain") != 0) {
    nta_incoming_treply(irq, 415, "Unsupported Media Type", SIPTAG_ACCEPT_STR("text/plain"),
                        TAG_END());
    return 415;
  }
  size_t len = sip->sip_payload ? sip->sip_payload->pl_len : 0;
  if (len == 0) return 400;
  if (len > RT_TEXT_MAX) {
    warning_reply(irq, 413, "Request Entity Too Large", "A message holds at most 16 KiB of text");
    return 413;
  }
  char *text = malloc(len + 1);
  in_msg_t *m = calloc(1, sizeof *m);
  if (!text || !m) {
    free(text);
    free(m);
    return 500;
  }
  memcpy(text, sip->sip_payload->pl_data, len);
  text[len] = '\0';
  m->key = ++A.next_key;
  m->irq = irq;
  r = rt_federation_receive(from, user, text, in_msg_done, (void *)(intptr_t)m->key);
  free(text);
  if (r != 0) {
    free(m);
    if (r == -EAGAIN) {
      nta_incoming_treply(irq, 503, "Busy", SIPTAG_RETRY_AFTER_STR("1"), TAG_END());
      return 503;
    }
    return r == -EINVAL ? 400 : 500;
  }
  m->next = A.imsgs;
  A.imsgs = m;
  COUNT(messages_in);
  return 0; /* answered when the writer has committed it */
}

static void received(int64_t key, int status) {
  for (in_msg_t **p = &A.imsgs; *p; p = &(*p)->next) {
    in_msg_t *m = *p;
    if (m->key != key) continue;
    *p = m->next;
    if (status == 0)
      nta_incoming_treply(m->irq, SIP_200_OK, TAG_END());
    else if (status == -ENOENT)
      nta_incoming_treply(m->irq, 404, "Not Found", TAG_END());
    else if (status == -EPERM)
      nta_incoming_treply(m->irq, 403, "Forbidden", TAG_END());
    else
      nta_incoming_treply(m->irq, 500, "Not Stored", TAG_END());
    nta_incoming_destroy(m->irq);
    free(m);
    return;
  }
}

static void out_msg_finish(out_msg_t *m, int status, const char *detail) {
  for (out_msg_t **p = &A.omsgs; *p; p = &(*p)->next)
    if (*p == m) {
      *p = m->next;
      break;
    }
  rt_federation_sent(m->id, status, detail);
  if (status) COUNT(messages_failed);
  if (m->orq) nta_outgoing_destroy(m->orq);
  if (m->leg) nta_leg_destroy(m->leg);
  free(m->text);
  free(m);
}

static int on_msg_answer(nta_outgoing_magic_t *magic, nta_outgoing_t *orq, sip_t const *sip) {
  out_msg_t *m = (out_msg_t *)magic;
  int status = nta_outgoing_status(orq);
  if (status < 200) return 0;
  bool covered = true;
  if (status < 300) {
    msg_t *msg = nta_outgoing_getresponse(orq);
    tport_t *tp = nta_outgoing_transport(orq);
    su_strlst_t const *subjects = tp ? tport_delivered_from_subjects(tp, msg) : NULL;
    covered = tp && tport_is_verified(tp) && subjects_cover(subjects, domain_of(m->to));
    tport_unref(tp);
    msg_destroy(msg);
  }
  char detail[256];
  snprintf(detail, sizeof detail, "The other organisation's server answered %d %s.", status,
           sip && sip->sip_status && sip->sip_status->st_phrase ? sip->sip_status->st_phrase : "");
  /* sip is freed with orq. */
  nta_outgoing_destroy(orq);
  m->orq = NULL;
  if (status < 300 && covered) {
    COUNT(messages_out);
    out_msg_finish(m, 0, NULL);
  } else if (!covered) {
    COUNT(refused_cert);
    out_msg_finish(m, 502, "The other organisation's server presented a certificate that does "
                           "not name its domain; the message was not sent.");
  } else if ((status == 408 || status == 503 || status >= 500) && m->tries < MESSAGE_TRIES) {
    m->next_at = time(NULL) + m->tries; /* 1 s, then 2 s */
  } else {
    out_msg_finish(m, status == 404 ? 404 : status == 403 ? 403 : 502, detail);
  }
  return 0;
}

static void out_msg_send(out_msg_t *m) {
  char err[256];
  m->tries++;
  m->next_at = 0;
  if (!A.cur.enabled) {
    out_msg_finish(m, 503, "Federation is switched off; the message was not sent.");
    return;
  }
  if (!partner_allowed(domain_of(m->to))) {
    out_msg_finish(m, 403, "This server does not federate with that domain.");
    return;
  }
  if (!m->leg) {
    char from[ADDRESS_MAX + 1];
    snprintf(from, sizeof from, "%s@%s", m->from, A.cur.domain);
    bool wait = false;
    m->leg = leg_to(from, m->to, NULL, NULL, &m->target, &wait, err, sizeof err);
    if (!m->leg && wait) {
      m->dns_wait = true;
      return;
    }
    if (!m->leg) {
      if (m->tries < MESSAGE_TRIES) {
        m->next_at = time(NULL) + m->tries;
      } else {
        char detail[320];
        snprintf(detail, sizeof detail, "The other organisation's server was not found: %s",
                 err);
        out_msg_finish(m, 502, detail);
      }
      return;
    }
  }
  char ruri[ADDRESS_MAX + 8];
  snprintf(ruri, sizeof ruri, "sip:%s", m->to);
  m->orq = nta_outgoing_tcreate(m->leg, on_msg_answer, (nta_outgoing_magic_t *)m,
                                (url_string_t const *)(m->target.route), SIP_METHOD_MESSAGE, (url_string_t const *)(ruri),
                                SIPTAG_CONTENT_TYPE_STR("text/plain;charset=UTF-8"),
                                SIPTAG_PAYLOAD_STR(m->text), TAG_END());
  if (!m->orq) out_msg_finish(m, 500, "The message could not be sent (out of memory).");
}

/* ---- the default leg: requests outside a dialog ---------------------------------------------- */

static int on_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
                      sip_t const *sip) {
  (void)magic;
  (void)leg;
  sip_method_t method = sip->sip_request->rq_method;
  if (method == sip_method_ack) return 0;
  if (method == sip_method_options) {
    nta_incoming_treply(irq, SIP_200_OK, SIPTAG_ALLOW_STR("SUBSCRIBE, NOTIFY, MESSAGE, OPTIONS"),
                        SIPTAG_ALLOW_EVENTS_STR("presence"), TAG_END());
    return 200;
  }
  if (!A.cur.enabled) {
    COUNT(refused_off);
    warning_reply(irq, 403, "Forbidden", "Federation is switched off on this server");
    return 403;
  }
  char from[ADDRESS_MAX + 1];
  int r = check_request(irq, sip, from, sizeof from);
  if (r) return r;
  if (method == sip_method_subscribe) return handle_subscribe(irq, sip, from);
  if (method == sip_method_message) return handle_message(irq, sip, from);
  if (method == sip_method_notify) return 481; /* no subscription of ours */
  nta_incoming_treply(irq, 405, "Method Not Allowed",
                      SIPTAG_ALLOW_STR("SUBSCRIBE, NOTIFY, MESSAGE, OPTIONS"), TAG_END());
  return 405;
}

/* ---- settings and the switch --------------------------------------------------------------- */

static void switch_off(void) {
  for (in_sub_t *s = A.ins, *next; s; s = next) {
    next = s->next;
    in_sub_end(s, "deactivated");
  }
  for (out_sub_t *o = A.outs; o; o = o->next) {
    if (o->active && !o->orq) {
      bool wanted = o->wanted;
      o->wanted = false; /* the answer to the unsubscribe frees the dialog only */
      out_sub_send(o, 0);
      o->wanted = wanted;
    } else if (!o->orq) {
      out_sub_reset(o);
    }
    o->next_at = 0;
    rt_federation_presence(o->address, RT_OFFLINE, "");
  }
}

typedef struct recreate_read {
  recreate_t **tail;
  map_t *raw; /* user "\n" remote -> "active" marker for rows whose raw state is active */
  bool raw_pass;
} recreate_read_t;

static void recreate_row(const store_federation_row_t *row, void *ctx) {
  recreate_read_t *c = ctx;
  char key[ADDRESS_MAX + 80];
  snprintf(key, sizeof key, "%s\n%s", row->user, row->remote);
  if (c->raw_pass) {
    if (!strcmp(row->state, "active")) map_put_str(c->raw, key, (void *)1);
    return;
  }
  recreate_t *r = calloc(1, sizeof *r);
  if (!r) return;
  snprintf(r->user, sizeof r->user, "%s", row->user);
  snprintf(r->remote, sizeof r->remote, "%s", row->remote);
  snprintf(r->state, sizeof r->state, "%s", map_get_str(c->raw, key) ? "active" : "pending");
  *c->tail = r;
  c->tail = &r->next;
}

/* The rows made under an earlier domain, queued; on_tick sends them paced. */
static void recreate_load(void) {
  store_txn_t *t;
  if (store_read_begin(A.store, "federation: re-create", &t) != 0) return;
  int64_t gen = 0, total = 0;
  char dom[256];
  recreate_t **tail = &A.recreate;
  while (*tail) tail = &(*tail)->next;
  recreate_read_t c = {.tail = tail, .raw = map_new(), .raw_pass = true};
  if (c.raw && store_domain_current(t, &gen, dom, sizeof dom) == 0) {
    /* generation 0: the stored states as they are (none is "earlier") */
    store_subscription_list(t, NULL, "active", 0, 0, INT64_MAX, &total, recreate_row, &c);
    c.raw_pass = false;
    store_subscription_list(t, NULL, "to-be-recreated", gen, 0, INT64_MAX, &total, recreate_row,
                            &c);
  }
  store_read_end(t);
  map_free(c.raw);
}

/* The key of an outgoing subscription in recreate_some's index:
 * "address from", both lower case (they are compared case-insensitively). */
static void out_key(const char *address, const char *from, char *out, size_t len) {
  snprintf(out, len, "%s %s", address, from);
  for (char *c = out; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
}

/* Up to RATE_PER_SECOND per partner domain and second, so that a large
 * directory does not flood one partner. The pass ends with its second (the
 * rates count per second: a pass running into the next one would start
 * counting again and send a partner more). The subscriptions there are
 * indexed once per pass: looking each up in the list made 100,000
 * re-created subscriptions cost minutes of this thread. */
static void recreate_some(void) {
  if (!A.recreate || !A.cur.enabled) return;
  store_txn_t *t = NULL;
  int64_t gen = 0;
  char dom[256];
  map_t *index = map_new();
  if (!index) return;
  char key[2 * ADDRESS_MAX + 2];
  for (out_sub_t *o = A.outs; o; o = o->next) {
    out_key(o->address, o->from, key, sizeof key);
    map_put_str(index, key, o);
  }
  if (store_begin(A.store, "federation: re-created", &t) != 0) {
    map_free(index);
    return;
  }
  store_domain_current(t, &gen, dom, sizeof dom);
  time_t second = time(NULL);
  for (recreate_t **p = &A.recreate; *p && time(NULL) == second;) {
    recreate_t *r = *p;
    const char *d = domain_of(r->remote);
    if (!partner_allowed(d)) { /* not to be sent at all */
      *p = r->next;
      free(r);
      continue;
    }
    /* While DNS is asked, the ones made wait and all go when it answers:
     * no more for that partner until then. */
    if (dns_pending(d) || !rate_ok(d)) { /* the next second */
      p = &r->next;
      continue;
    }
    *p = r->next;
    char from[ADDRESS_MAX + 1];
    snprintf(from, sizeof from, "%s@%s", r->user, A.cur.domain);
    out_key(r->remote, from, key, sizeof key);
    out_sub_t *o = map_get_str(index, key);
    if (!o && (o = calloc(1, sizeof *o))) {
      snprintf(o->address, sizeof o->address, "%s", r->remote);
      snprintf(o->from, sizeof o->from, "%s", from);
      o->recreated = true;
      o->wanted = true;
      o->next = A.outs;
      A.outs = o;
      map_put_str(index, key, o);
      out_sub_send(o, SUB_EXPIRES_DEFAULT);
      COUNT(recreated);
    }
    store_subscription_set(t, r->user, r->remote, r->state, gen);
    free(r);
  }
  store_commit(t);
  map_free(index);
}

static void switch_on(void) {
  recreate_load();
  for (out_sub_t *o = A.outs; o; o = o->next) {
    out_sub_reset(o);
    o->failures = 0;
    if (o->wanted && partner_allowed(domain_of(o->address))) out_sub_send(o, SUB_EXPIRES_DEFAULT);
  }
}

static void apply_settings(const fed_settings_t *s) {
  bool was = A.cur.enabled;
  bool domain_changed = strcasecmp(A.cur.domain, s->domain) != 0;
  A.cur = *s;
  pthread_mutex_lock(&A.lock);
  A.status.enabled = s->enabled;
  pthread_mutex_unlock(&A.lock);
  if (was && !s->enabled) switch_off();
  if (!was && s->enabled) switch_on();
  if (domain_changed && was && s->enabled) {
    switch_off();
    switch_on();
  }
}

/* ---- the timer ----------------------------------------------------------------------------- */

static void on_tick(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg) {
  (void)magic;
  (void)arg;
  /* Set again each time: this sofia's su_timer_set_interval fires once. */
  su_timer_set(t, on_tick, NULL);
  time_t now = time(NULL);
  for (in_sub_t *s = A.ins, *next; s; s = next) {
    next = s->next;
    if (!s->ending && s->expires <= now) in_sub_end(s, "timeout");
  }
  for (out_sub_t *o = A.outs; o; o = o->next)
    if (o->next_at && o->next_at <= now && !o->orq && !o->dns_wait && o->wanted && A.cur.enabled)
      out_sub_send(o, SUB_EXPIRES_DEFAULT);
  for (out_msg_t *m = A.omsgs, *next; m; m = next) {
    next = m->next;
    if (m->next_at && m->next_at <= now && !m->orq && !m->dns_wait) out_msg_send(m);
  }
  recreate_some();
  uint64_t ia = 0, ip = 0, oa = 0, op = 0;
  for (in_sub_t *s = A.ins; s; s = s->next) {
    if (s->allowed)
      ia++;
    else
      ip++;
  }
  for (out_sub_t *o = A.outs; o; o = o->next) {
    if (o->active)
      oa++;
    else if (o->wanted)
      op++;
  }
  pthread_mutex_lock(&A.lock);
  A.status.in_subs_active = ia;
  A.status.in_subs_pending = ip;
  A.status.out_subs_active = oa;
  A.status.out_subs_pending = op;
  pthread_mutex_unlock(&A.lock);
}

/* ---- jobs on the agent thread ---------------------------------------------------------------- */

static void run_job(job_t *j) {
  switch (j->kind) {
  case JOB_SETTINGS: apply_settings(&j->settings); break;
  case JOB_PRESENCE:
    for (in_sub_t *s = A.ins; s; s = s->next)
      if (!s->ending && s->allowed && strcmp(s->user, j->a) == 0) send_notify(s);
    break;
  case JOB_WATCH: watch(j->a, true); break;
  case JOB_UNWATCH: watch(j->a, false); break;
  case JOB_SEND: {
    out_msg_t *m = calloc(1, sizeof *m);
    if (!m) {
      rt_federation_sent(j->id, 500, "The server ran out of memory; send again.");
      break;
    }
    m->id = j->id;
    snprintf(m->from, sizeof m->from, "%.*s", (int)sizeof m->from - 1, j->a);
    snprintf(m->to, sizeof m->to, "%s", j->b);
    m->text = j->text;
    j->text = NULL;
    m->next = A.omsgs;
    A.omsgs = m;
    out_msg_send(m);
    break;
  }
  case JOB_RECEIVED: received(j->id, j->status); break;
  case JOB_RESOLVED: dns_answered(j); break;
  case JOB_CONSENT:
    consent_forget();
    for (in_sub_t *s = A.ins; s; s = s->next)
      if (!s->ending && strcmp(s->user, j->a) == 0 && strcasecmp(s->watcher, j->b) == 0) {
        if (j->flag) {
          s->allowed = true;
          send_notify(s);
        } else {
          in_sub_end(s, "rejected");
        }
      }
    break;
  }
  free(j->text);
  free(j);
}

static int on_wake(su_root_magic_t *magic, su_wait_t *w, su_wakeup_arg_t *arg) {
  (void)magic;
  (void)w;
  (void)arg;
  uint64_t n;
  ssize_t rd = read(A.efd, &n, sizeof n);
  (void)rd;
  for (;;) {
    pthread_mutex_lock(&A.lock);
    job_t *j = A.head;
    if (j) {
      A.head = j->next;
      if (!A.head) A.tail = NULL;
    }
    bool stop = A.stopping;
    pthread_mutex_unlock(&A.lock);
    if (!j) {
      if (stop) su_root_break(A.root);
      return 0;
    }
    run_job(j);
  }
}

/* ---- the thread ------------------------------------------------------------------------------ */

typedef struct ready {
  pthread_mutex_t m;
  pthread_cond_t c;
  bool done;
} ready_t;

static void *agent_main(void *arg) {
  ready_t *ready = arg;
  su_home_t home[1] = {SU_HOME_INIT(home)};
  su_wait_t wait[1];
  A.root = su_root_create(NULL);
  if (A.root) {
    su_wait_create(wait, A.efd, SU_WAIT_IN);
    su_root_register(A.root, wait, on_wake, NULL, 0);
    /* TLS version 0: sofia's default (1) is TLSv1.0 only; 0 lets OpenSSL
     * negotiate, and its security level refuses what is older than 1.2.
     * VERIFY_ALL: a peer without a certificate from our CAs is refused in
     * both directions (the names are checked per request, RFC 5922).
     * QUEUESIZE: a presence change sends one NOTIFY per watcher at once,
     * most of them over the one connection to the partner's server; what
     * the socket does not take waits in that connection's queue, and with
     * sofia's default of 64 places the rest failed (and a NOTIFY failing
     * with 503 ends the watcher's subscription). The queue is allocated
     * only once a connection has to queue. */
    A.agent = nta_agent_create(A.root, URL_STRING_MAKE(A.listen_url), NULL, NULL,
                               NTATAG_UA(1), NTATAG_SERVER_RPORT(1),
                               NTATAG_MAX_PROCEEDING(1000), TPTAG_QUEUESIZE(SEND_QUEUE),
                               TPTAG_CERTIFICATE(A.tls_dir), TPTAG_TLS_VERSION(0),
                               TPTAG_TLS_VERIFY_POLICY(TPTLS_VERIFY_ALL),
                               TPTAG_TLS_VERIFY_DEPTH(4), TPTAG_TLS_VERIFY_DATE(1), TAG_END());
  }
  if (A.agent)
    A.default_leg = nta_leg_tcreate(A.agent, on_request, NULL, NTATAG_NO_DIALOG(1), TAG_END());
  if (A.default_leg) {
    A.tick = su_timer_create(su_root_task(A.root), 1000);
    if (A.tick) su_timer_set(A.tick, on_tick, NULL);
  }
  bool ok = A.tick != NULL;
  pthread_mutex_lock(&A.lock);
  A.status.running = ok;
  pthread_mutex_unlock(&A.lock);
  if (!ok)
    fail_status("SIP over TLS cannot listen on %s (the port is taken, or the certificate, key "
                "or CA file cannot be used).", A.listen_url);
  else
    log_notice("federation: SIP over TLS listening on %s", A.listen_url);

  pthread_mutex_lock(&ready->m);
  ready->done = true;
  pthread_cond_signal(&ready->c);
  pthread_mutex_unlock(&ready->m);

  if (ok) su_root_run(A.root);

  /* Shutting down: the dialogs go with the agent (a partner's refresh then
   * gets 481 and it subscribes again, RFC 6665). */
  consent_forget();
  A.nq_head = A.nq_tail = NULL; /* the whole queue goes: no unlinking one by one */
  while (A.ins) {
    in_sub_t *s = A.ins;
    A.ins = s->next;
    s->queued = false;
    in_sub_free(s);
  }
  while (A.outs) {
    out_sub_t *o = A.outs;
    A.outs = o->next;
    out_sub_free(o);
  }
  while (A.omsgs) out_msg_finish(A.omsgs, 503, "The server is shutting down; send again.");
  while (A.imsgs) {
    in_msg_t *m = A.imsgs;
    A.imsgs = m->next;
    nta_incoming_treply(m->irq, 503, "Shutting down", TAG_END());
    nta_incoming_destroy(m->irq);
    free(m);
  }
  while (A.recreate) {
    recreate_t *r = A.recreate;
    A.recreate = r->next;
    free(r);
  }
  while (A.dns) {
    dns_entry_t *e = A.dns;
    A.dns = e->next;
    free(e);
  }
  while (A.rates) {
    rate_t *r = A.rates;
    A.rates = r->next;
    free(r);
  }
  if (A.tick) su_timer_destroy(A.tick);
  if (A.default_leg) nta_leg_destroy(A.default_leg);
  if (A.agent) nta_agent_destroy(A.agent);
  if (A.root) {
    su_root_deregister(A.root, 0);
    su_root_destroy(A.root);
  }
  A.tick = NULL;
  A.default_leg = NULL;
  A.agent = NULL;
  A.root = NULL;
  su_home_deinit(home);
  return NULL;
}

/* sofia reads the TLS files from one directory as agent.pem (certificate
 * and key) and cafile.pem: made from atlas.xml's paths in the data
 * directory, readable by the server's user only. */
static int tls_dir_make(const atlas_config_t *atlas, char *err, size_t errlen) {
  snprintf(A.tls_dir, sizeof A.tls_dir, "%s/sip-tls", atlas->data_dir);
  if (mkdir(A.tls_dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "Cannot create %s: %s", A.tls_dir, strerror(errno));
    return -errno;
  }
  chmod(A.tls_dir, 0700);
  const char *in[3] = {atlas->sip_cert, atlas->sip_key, atlas->sip_ca};
  char *data[3] = {0};
  size_t len[3] = {0};
  int r = 0;
  for (int i = 0; i < 3 && r == 0; i++) {
    r = fileio_read_all(in[i], 1024 * 1024, &data[i], &len[i]);
    if (r != 0) snprintf(err, errlen, "Cannot read %s: %s", in[i], strerror(-r));
  }
  if (r == 0) {
    char path[4300];
    snprintf(path, sizeof path, "%s/agent.pem", A.tls_dir);
    FILE *f = fopen(path, "w");
    if (f) {
      fchmod(fileno(f), 0600);
      fwrite(data[0], 1, len[0], f);
      if (len[0] && data[0][len[0] - 1] != '\n') fputc('\n', f);
      fwrite(data[1], 1, len[1], f);
      r = fclose(f) == 0 ? 0 : -EIO;
    } else {
      r = -errno;
    }
    snprintf(path, sizeof path, "%s/cafile.pem", A.tls_dir);
    f = r == 0 ? fopen(path, "w") : NULL;
    if (f) {
      fwrite(data[2], 1, len[2], f);
      r = fclose(f) == 0 ? 0 : -EIO;
    } else if (r == 0) {
      r = -errno;
    }
    if (r != 0) snprintf(err, errlen, "Cannot write the TLS files in %s.", A.tls_dir);
  }
  for (int i = 0; i < 3; i++) {
    if (data[i]) memset(data[i], 0, len[i]);
    free(data[i]);
  }
  return r;
}

int fed_agent_start(const atlas_config_t *atlas, store_t *store, const fed_settings_t *s,
                    char *err, size_t errlen) {
  A.store = store;
  A.configured = atlas->sip_configured;
  A.cur = *s;
  pthread_mutex_lock(&A.lock);
  memset(&A.status, 0, sizeof A.status);
  A.status.configured = A.configured;
  A.status.enabled = s->enabled;
  pthread_mutex_unlock(&A.lock);
  if (!A.configured) return 0;
  bool v6 = strchr(atlas->sip_address, ':') != NULL;
  /* "sips:": sofia binds TLS for that scheme ("sip:...;transport=tls" is
   * refused with EPROTONOSUPPORT by this version). */
  snprintf(A.listen_url, sizeof A.listen_url, "sips:%s%s%s:%d", v6 ? "[" : "",
           atlas->sip_address, v6 ? "]" : "", atlas->sip_port);
  pthread_mutex_lock(&A.lock);
  snprintf(A.status.listen, sizeof A.status.listen, "%s%s%s:%d", v6 ? "[" : "",
           atlas->sip_address, v6 ? "]" : "", atlas->sip_port);
  pthread_mutex_unlock(&A.lock);
  /* What partners send to: our address when it is one, else the FQDN. */
  bool any = !strcmp(atlas->sip_address, "0.0.0.0") || !strcmp(atlas->sip_address, "::");
  snprintf(A.contact_host, sizeof A.contact_host, "%s%s%s", v6 && !any ? "[" : "",
           any ? (s->fqdn[0] ? s->fqdn : s->domain) : atlas->sip_address, v6 && !any ? "]" : "");
  A.port = atlas->sip_port;
  snprintf(A.resolver, sizeof A.resolver, "%s", atlas->sip_resolver);
  int r = tls_dir_make(atlas, err, errlen);
  if (r != 0) {
    fail_status("%s", err);
    return 0; /* not fatal: the status says why */
  }
  A.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (A.efd < 0) {
    snprintf(err, errlen, "eventfd: %s", strerror(errno));
    return -errno;
  }
  su_init();
  /* sofia logs to stderr by default; our log says what matters. */
  su_log_set_level(NULL, 0);
  ready_t ready = {.m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER};
  pthread_mutex_lock(&A.lock);
  A.stopping = false;
  A.thread_started = true;
  pthread_mutex_unlock(&A.lock);
  if ((r = pthread_create(&A.thread, NULL, agent_main, &ready)) != 0) {
    A.thread_started = false;
    close(A.efd);
    A.efd = -1;
    su_deinit();
    snprintf(err, errlen, "Cannot start the SIP thread: %s", strerror(r));
    return -r;
  }
  pthread_mutex_lock(&ready.m);
  while (!ready.done) pthread_cond_wait(&ready.c, &ready.m);
  pthread_mutex_unlock(&ready.m);
  return 0;
}

void fed_agent_stop(void) {
  pthread_mutex_lock(&A.lock);
  bool started = A.thread_started;
  A.stopping = true;
  pthread_mutex_unlock(&A.lock);
  if (!started) return;
  uint64_t one = 1;
  ssize_t w = write(A.efd, &one, sizeof one);
  (void)w;
  pthread_join(A.thread, NULL);
  pthread_mutex_lock(&A.lock);
  A.thread_started = false;
  while (A.head) {
    job_t *j = A.head;
    A.head = j->next;
    free(j->text);
    free(j);
  }
  A.tail = NULL;
  pthread_mutex_unlock(&A.lock);
  close(A.efd);
  A.efd = -1;
  su_deinit();
}

/* ---- the public side ------------------------------------------------------------------------- */

void fed_agent_settings(const fed_settings_t *s) {
  job_t *j = job_new(JOB_SETTINGS);
  if (!j) return;
  j->settings = *s;
  post(j);
}

void fed_agent_presence(const char *name) {
  job_t *j = job_new(JOB_PRESENCE);
  if (!j) return;
  snprintf(j->a, sizeof j->a, "%s", name);
  post(j);
}

void fed_agent_watch(const char *address, bool on) {
  job_t *j = job_new(on ? JOB_WATCH : JOB_UNWATCH);
  if (!j) return;
  snprintf(j->a, sizeof j->a, "%s", address);
  post(j);
}

void fed_agent_send(int64_t message_id, const char *from, const char *to_remote,
                    const char *text) {
  job_t *j = job_new(JOB_SEND);
  char *copy = strdup(text);
  if (!j || !copy) {
    free(j);
    free(copy);
    rt_federation_sent(message_id, 500, "The server ran out of memory; send again.");
    return;
  }
  pthread_mutex_lock(&A.lock);
  bool up = A.thread_started && A.status.running;
  pthread_mutex_unlock(&A.lock);
  if (!up) {
    free(j);
    free(copy);
    rt_federation_sent(message_id, 503,
                       "Federation is not running on this server (see the Status page).");
    return;
  }
  j->id = message_id;
  snprintf(j->a, sizeof j->a, "%s", from);
  snprintf(j->b, sizeof j->b, "%s", to_remote);
  j->text = copy;
  post(j);
}

void fed_agent_consent(const char *user, const char *watcher, bool allow) {
  job_t *j = job_new(JOB_CONSENT);
  if (!j) return;
  snprintf(j->a, sizeof j->a, "%s", user);
  snprintf(j->b, sizeof j->b, "%s", watcher);
  j->flag = allow;
  post(j);
}

void fed_agent_status(fed_status_t *out) {
  pthread_mutex_lock(&A.lock);
  *out = A.status;
  pthread_mutex_unlock(&A.lock);
}
