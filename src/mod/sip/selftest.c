/* The federation self-test (POST /api/v1/federation/test): what a partner
 * needs from us and what we need from the partner, step by step, each
 * failing step said in one sentence. Blocking and bounded (a few seconds
 * per network step); it runs on the HTTP layer's worker pool, apart from
 * the agent, with a TLS client of its own (GnuTLS), so that it tests the
 * path a partner takes rather than sofia's state. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "core/fileio.h"
#include "mod/sip/selftest.h"

#define STEP_TIMEOUT_MS 4000

static void step(json_t *steps, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void step(json_t *steps, const char *name, bool ok, const char *fmt, ...) {
  char buf[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  json_array_append_new(steps, json_pack("{s:s, s:b, s:s}", "step", name, "ok", ok, "sentence", buf));
}

static void skipped(json_t *steps, const char *name, const char *because) {
  json_array_append_new(steps, json_pack("{s:s, s:n, s:s}", "step", name, "ok", "sentence", because));
}

/* Our certificate's names against the FQDN, and its dates. */
static bool check_certificate(const fed_selftest_t *t, json_t *steps) {
  char *pem = NULL;
  size_t len = 0;
  if (fileio_read_all(t->cert_path, 1024 * 1024, &pem, &len) != 0) {
    step(steps, "certificate", false, "Our certificate %s cannot be read.", t->cert_path);
    return false;
  }
  gnutls_x509_crt_t crt;
  gnutls_datum_t d = {.data = (unsigned char *)pem, .size = (unsigned)len};
  bool ok = false;
  if (gnutls_x509_crt_init(&crt) < 0) {
    free(pem);
    return false;
  }
  if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0) {
    step(steps, "certificate", false, "Our certificate %s is not a PEM certificate.",
         t->cert_path);
  } else if (!gnutls_x509_crt_check_hostname(crt, t->fqdn)) {
    char names[300] = "";
    for (unsigned i = 0; i < 8; i++) {
      char n[128];
      size_t nl = sizeof n;
      unsigned crit;
      int type = gnutls_x509_crt_get_subject_alt_name(crt, i, n, &nl, &crit);
      if (type < 0) break;
      if (type == GNUTLS_SAN_DNSNAME) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", n);
      }
    }
    step(steps, "certificate", false,
         "Our certificate does not name the federation FQDN %s (its DNS names: %s); partners "
         "will refuse the connection.",
         t->fqdn, names[0] ? names : "none");
  } else if (gnutls_x509_crt_get_expiration_time(crt) < time(NULL)) {
    step(steps, "certificate", false, "Our certificate for %s has expired.", t->fqdn);
  } else {
    ok = true;
    step(steps, "certificate", true, "Our certificate names %s.", t->fqdn);
  }
  gnutls_x509_crt_deinit(crt);
  free(pem);
  return ok;
}

/* A TCP connection within STEP_TIMEOUT_MS, or -1 with errno. */
static int connect_bounded(const char *ip, int port) {
  struct sockaddr_storage ss = {0};
  socklen_t sl;
  if (strchr(ip, ':')) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) return -1;
    sl = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return -1;
    sl = sizeof *a;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  int soerr = 0;
  socklen_t el = sizeof soerr;
  if (poll(&p, 1, STEP_TIMEOUT_MS) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) != 0 ||
      soerr != 0) {
    close(fd);
    errno = soerr ? soerr : ETIMEDOUT;
    return -1;
  }
  /* Blocking from here, with time limits on every read and write. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  struct timeval tv = {.tv_sec = STEP_TIMEOUT_MS / 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

/* The handshake as a partner's server sees us (our certificate), the
 * partner's certificate checked against our CAs and its domain, then an
 * OPTIONS ping on the same connection. */
static void check_partner(const fed_selftest_t *t, const char *domain, const fed_target_t *target,
                          json_t *steps) {
  int fd = connect_bounded(target->ip, target->port);
  if (fd < 0) {
    step(steps, "tls", false, "No TCP connection to %s port %d (%s): %s; is TCP %d open both ways?",
         target->host, target->port, target->ip, strerror(errno), target->port);
    skipped(steps, "options", "Not tried: there is no connection.");
    return;
  }
  gnutls_certificate_credentials_t cred = NULL;
  gnutls_session_t s = NULL;
  bool shaken = false;
  int r = gnutls_certificate_allocate_credentials(&cred);
  if (r >= 0) r = gnutls_certificate_set_x509_trust_file(cred, t->ca_path, GNUTLS_X509_FMT_PEM);
  if (r >= 0)
    r = gnutls_certificate_set_x509_key_file(cred, t->cert_path, t->key_path, GNUTLS_X509_FMT_PEM);
  if (r >= 0) r = gnutls_init(&s, GNUTLS_CLIENT);
  if (r >= 0)
    r = gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", NULL);
  if (r >= 0) r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
  if (r >= 0) {
    /* RFC 5922: the certificate must name the domain we federate with. */
    gnutls_session_set_verify_cert(s, domain, 0);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, STEP_TIMEOUT_MS);
    do {
      r = gnutls_handshake(s);
    } while (r < 0 && !gnutls_error_is_fatal(r));
  }
  if (r < 0) {
    unsigned status = s ? gnutls_session_get_verify_cert_status(s) : 0;
    if (status) {
      gnutls_datum_t why = {0};
      gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
      step(steps, "tls", false, "The TLS handshake with %s:%d failed: its certificate is not "
           "accepted for %s (%s).", target->host, target->port, domain,
           why.data ? (const char *)why.data : "not trusted");
      gnutls_free(why.data);
    } else {
      step(steps, "tls", false, "The TLS handshake with %s:%d failed: %s (TLS 1.2 or later, "
           "and each side's certificate from a CA the other trusts).", target->host,
           target->port, gnutls_strerror(r));
    }
    skipped(steps, "options", "Not tried: there is no TLS connection.");
  } else {
    shaken = true;
    char *ver = (char *)gnutls_protocol_get_name(gnutls_protocol_get_version(s));
    step(steps, "tls", true, "TLS (%s) with %s:%d; its certificate names %s.", ver ? ver : "?",
         target->host, target->port, domain);
  }
  if (shaken) {
    char req[1024];
    unsigned rnd = (unsigned)random();
    int n = snprintf(req, sizeof req,
                     "OPTIONS sip:%s SIP/2.0\r\n"
                     "Via: SIP/2.0/TLS %s:%d;branch=z9hG4bKselftest%08x\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:presence@%s>;tag=st%08x\r\n"
                     "To: <sip:%s>\r\n"
                     "Call-ID: selftest%08x@%s\r\n"
                     "CSeq: 1 OPTIONS\r\n"
                     "Content-Length: 0\r\n\r\n",
                     domain, t->fqdn, t->port, rnd, t->domain, rnd, domain, rnd, t->fqdn);
    char resp[4096];
    size_t got = 0;
    bool sent = n > 0 && gnutls_record_send(s, req, (size_t)n) == n;
    /* Bounded: the socket's read limit, and a few non-fatal returns (a
     * TLS 1.3 session ticket arrives before the answer). */
    for (int tries = 0; sent && got < sizeof resp - 1 && tries < 16; tries++) {
      ssize_t k = gnutls_record_recv(s, resp + got, sizeof resp - 1 - got);
      if (k < 0 && !gnutls_error_is_fatal((int)k)) continue;
      if (k <= 0) break;
      got += (size_t)k;
      resp[got] = '\0';
      if (strstr(resp, "\r\n\r\n")) break;
    }
    resp[got] = '\0';
    int status = 0;
    char phrase[80] = "";
    if (got && sscanf(resp, "SIP/2.0 %d %79[^\r\n]", &status, phrase) >= 1 && status >= 200 &&
        status < 300) {
      step(steps, "options", true, "%s answered OPTIONS with %d %s.", domain, status, phrase);
    } else if (status) {
      step(steps, "options", false, "%s answered OPTIONS with %d %s; it does not take requests "
           "from us (is %s on its list of partners?).", domain, status, phrase, t->domain);
    } else {
      step(steps, "options", false, "%s did not answer OPTIONS within %d seconds.", domain,
           STEP_TIMEOUT_MS / 1000);
    }
    gnutls_bye(s, GNUTLS_SHUT_WR);
  }
  if (s) gnutls_deinit(s);
  if (cred) gnutls_certificate_free_credentials(cred);
  close(fd);
}

json_t *fed_selftest_run(const fed_selftest_t *t, const char *domain) {
  json_t *steps = json_array();
  if (!steps) return NULL;
  fed_target_t ours, theirs;
  char err[512];
  /* What partners look up to reach us. */
  if (fed_resolve(t->resolver, t->domain, &ours, err, sizeof err) != 0) {
    step(steps, "our_dns", false, "Partners cannot find us: %s Publish _sipfederationtls._tcp.%s "
         "pointing at %s port %d.", err, t->domain, t->fqdn, t->port);
  } else if (strcasecmp(ours.host, t->fqdn) != 0 && strcmp(ours.how, "A/AAAA") != 0) {
    step(steps, "our_dns", false, "%s.%s points at %s, not at the federation FQDN %s.", ours.how,
         t->domain, ours.host, t->fqdn);
  } else {
    step(steps, "our_dns", true, "%s.%s points at %s port %d (%s).", ours.how, t->domain,
         ours.host, ours.port, ours.ip);
  }
  check_certificate(t, steps);
  if (fed_resolve(t->resolver, domain, &theirs, err, sizeof err) != 0) {
    step(steps, "partner_dns", false, "%s", err);
    skipped(steps, "tls", "Not tried: the partner's server is not known.");
    skipped(steps, "options", "Not tried: the partner's server is not known.");
  } else {
    step(steps, "partner_dns", true, "%s.%s points at %s port %d (%s).", theirs.how, domain,
         theirs.host, theirs.port, theirs.ip);
    check_partner(t, domain, &theirs, steps);
  }
  bool ok = true;
  size_t i;
  json_t *s;
  json_array_foreach(steps, i, s) ok = ok && json_is_true(json_object_get(s, "ok"));
  return json_pack("{s:s, s:b, s:o}", "domain", domain, "ok", ok, "steps", steps);
}
