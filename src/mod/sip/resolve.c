/* Finding a partner's SIP server (RFC 3263 as federation does it): SRV
 * _sipfederationtls._tcp.<domain> (what Microsoft federation publishes),
 * then _sips._tcp.<domain>, then the domain's own A/AAAA on 5061. The DNS
 * server can be named in atlas.xml so that a test points it at its own
 * dnsmasq; its answers go through glibc's resolver (res_nquery) with short
 * timeouts, so that a dead server costs seconds, not minutes. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mod/sip/internal.h"

static int state_open(struct __res_state *st, const char *resolver) {
  memset(st, 0, sizeof *st);
  if (res_ninit(st) != 0) return -EIO;
  /* One try of one second per server, twice: bounded. */
  st->retrans = 1;
  st->retry = 2;
  if (resolver && resolver[0]) {
    char host[64];
    const char *colon = strrchr(resolver, ':');
    if (!colon || (size_t)(colon - resolver) >= sizeof host) return -EINVAL;
    memcpy(host, resolver, (size_t)(colon - resolver));
    host[colon - resolver] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
      res_nclose(st);
      return -EINVAL;
    }
    st->nsaddr_list[0] = sa;
    st->nscount = 1;
  }
  return 0;
}

/* The first address of host (A, then AAAA). */
static int host_address(struct __res_state *st, const char *host, char *ip, size_t iplen) {
  unsigned char ans[2048];
  static const int types[] = {ns_t_a, ns_t_aaaa};
  for (size_t k = 0; k < 2; k++) {
    int n = res_nquery(st, host, ns_c_in, types[k], ans, sizeof ans);
    if (n <= 0) continue;
    ns_msg h;
    if (ns_initparse(ans, n, &h) < 0) continue;
    for (int i = 0; i < ns_msg_count(h, ns_s_an); i++) {
      ns_rr rr;
      if (ns_parserr(&h, ns_s_an, i, &rr) < 0) break;
      if (ns_rr_type(rr) == ns_t_a && ns_rr_rdlen(rr) == 4) {
        inet_ntop(AF_INET, ns_rr_rdata(rr), ip, (socklen_t)iplen);
        return 0;
      }
      if (ns_rr_type(rr) == ns_t_aaaa && ns_rr_rdlen(rr) == 16) {
        inet_ntop(AF_INET6, ns_rr_rdata(rr), ip, (socklen_t)iplen);
        return 0;
      }
    }
  }
  return -ENOENT;
}

/* The SRV record of `name` with the lowest priority (the highest weight
 * among equals). */
static int srv_best(struct __res_state *st, const char *name, char *target, size_t tlen,
                    int *port) {
  unsigned char ans[4096];
  int n = res_nquery(st, name, ns_c_in, ns_t_srv, ans, sizeof ans);
  if (n <= 0) return -ENOENT;
  ns_msg h;
  if (ns_initparse(ans, n, &h) < 0) return -ENOENT;
  int best_prio = 70000, best_weight = -1;
  for (int i = 0; i < ns_msg_count(h, ns_s_an); i++) {
    ns_rr rr;
    if (ns_parserr(&h, ns_s_an, i, &rr) < 0) break;
    if (ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7) continue;
    const unsigned char *d = ns_rr_rdata(rr);
    int prio = ns_get16(d), weight = ns_get16(d + 2), p = ns_get16(d + 4);
    char t[NS_MAXDNAME];
    if (dn_expand(ns_msg_base(h), ns_msg_end(h), d + 6, t, sizeof t) < 0) continue;
    /* "." says the service is not offered here. */
    if (!t[0] || strcmp(t, ".") == 0 || p == 0) continue;
    if (prio < best_prio || (prio == best_prio && weight > best_weight)) {
      best_prio = prio;
      best_weight = weight;
      if (strlen(t) >= tlen) continue;
      memcpy(target, t, strlen(t) + 1);
      *port = p;
    }
  }
  return best_weight >= 0 ? 0 : -ENOENT;
}

int fed_resolve(const char *resolver, const char *domain, fed_target_t *out, char *err,
                size_t errlen) {
  struct __res_state st;
  if (state_open(&st, resolver) != 0) {
    snprintf(err, errlen, "The DNS resolver could not be set up.");
    return -EIO;
  }
  static const char *const services[] = {"_sipfederationtls._tcp", "_sips._tcp"};
  int r = -ENOENT;
  for (size_t i = 0; i < 2 && r != 0; i++) {
    char name[SIP_DOMAIN_MAX + 32];
    snprintf(name, sizeof name, "%s.%s", services[i], domain);
    char target[SIP_DOMAIN_MAX + 1];
    int port = 0;
    if (srv_best(&st, name, target, sizeof target, &port) != 0) continue;
    if (host_address(&st, target, out->ip, sizeof out->ip) != 0) {
      snprintf(err, errlen, "%s points at %s, which has no A or AAAA record.", name, target);
      res_nclose(&st);
      return -ENOENT;
    }
    snprintf(out->host, sizeof out->host, "%s", target);
    out->port = port;
    snprintf(out->how, sizeof out->how, "%s", services[i]);
    r = 0;
  }
  if (r != 0 && host_address(&st, domain, out->ip, sizeof out->ip) == 0) {
    snprintf(out->host, sizeof out->host, "%s", domain);
    out->port = 5061;
    snprintf(out->how, sizeof out->how, "A/AAAA");
    r = 0;
  }
  if (r != 0)
    snprintf(err, errlen, "%s has no _sipfederationtls._tcp or _sips._tcp SRV record and no "
             "A or AAAA record.", domain);
  res_nclose(&st);
  return r;
}

int fed_resolve_host(const char *resolver, const char *host, char *ip, size_t iplen) {
  struct __res_state st;
  if (state_open(&st, resolver) != 0) return -EIO;
  int r = host_address(&st, host, ip, iplen);
  res_nclose(&st);
  return r;
}
