#include "xmpp_frames.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wsutil.h"

#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"

static int put(char *out, size_t outlen, size_t *at, const char *s, size_t n) {
  if (*at + n >= outlen)
    return -ENOSPC;
  memcpy(out + *at, s, n);
  *at += n;
  out[*at] = '\0';
  return 0;
}

static int put_s(char *out, size_t outlen, size_t *at, const char *s) { return put(out, outlen, at, s, strlen(s)); }

static int put_esc(char *out, size_t outlen, size_t *at, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *r = NULL;
    switch (s[i]) {
    case '&': r = "&amp;"; break;
    case '<': r = "&lt;"; break;
    case '>': r = "&gt;"; break;
    case '"': r = "&quot;"; break;
    case '\'': r = "&apos;"; break;
    default: break;
    }
    int e = r ? put_s(out, outlen, at, r) : put(out, outlen, at, s + i, 1);
    if (e < 0)
      return e;
  }
  return 0;
}

int xmf_open(char *out, size_t outlen, const char *domain) {
  size_t at = 0;
  if (put_s(out, outlen, &at, "<open xmlns=\"" NS_FRAMING "\" to=\"") < 0 ||
      put_esc(out, outlen, &at, domain, strlen(domain)) < 0 || put_s(out, outlen, &at, "\" version=\"1.0\"/>") < 0)
    return -ENOSPC;
  return (int)at;
}

int xmf_auth_plain(char *out, size_t outlen, const char *user, const char *password) {
  /* RFC 4616: authzid (empty) NUL authcid NUL passwd */
  char raw[600];
  size_t ul = strlen(user), pl = strlen(password);
  if (ul + pl + 2 > sizeof raw)
    return -EINVAL;
  raw[0] = '\0';
  memcpy(raw + 1, user, ul);
  raw[1 + ul] = '\0';
  memcpy(raw + 2 + ul, password, pl);
  char b64[820];
  wsu_base64((const uint8_t *)raw, ul + pl + 2, b64);
  size_t at = 0;
  if (put_s(out, outlen, &at, "<auth xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\" mechanism=\"PLAIN\">") < 0 ||
      put_s(out, outlen, &at, b64) < 0 || put_s(out, outlen, &at, "</auth>") < 0)
    return -ENOSPC;
  return (int)at;
}

int xmf_bind(char *out, size_t outlen, const char *id, const char *resource) {
  size_t at = 0;
  if (put_s(out, outlen, &at, "<iq xmlns=\"jabber:client\" type=\"set\" id=\"") < 0 ||
      put_esc(out, outlen, &at, id, strlen(id)) < 0 ||
      put_s(out, outlen, &at, "\"><bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\"><resource>") < 0 ||
      put_esc(out, outlen, &at, resource, strlen(resource)) < 0 ||
      put_s(out, outlen, &at, "</resource></bind></iq>") < 0)
    return -ENOSPC;
  return (int)at;
}

int xmf_presence(char *out, size_t outlen, const char *show, const char *status) {
  size_t at = 0;
  if (!show && !status) {
    if (put_s(out, outlen, &at, "<presence xmlns=\"jabber:client\"/>") < 0)
      return -ENOSPC;
    return (int)at;
  }
  if (put_s(out, outlen, &at, "<presence xmlns=\"jabber:client\">") < 0)
    return -ENOSPC;
  if (show && (put_s(out, outlen, &at, "<show>") < 0 || put_esc(out, outlen, &at, show, strlen(show)) < 0 ||
               put_s(out, outlen, &at, "</show>") < 0))
    return -ENOSPC;
  if (status && (put_s(out, outlen, &at, "<status>") < 0 || put_esc(out, outlen, &at, status, strlen(status)) < 0 ||
                 put_s(out, outlen, &at, "</status>") < 0))
    return -ENOSPC;
  if (put_s(out, outlen, &at, "</presence>") < 0)
    return -ENOSPC;
  return (int)at;
}

int xmf_message(char *out, size_t outlen, const char *to, const char *id, const char *text, size_t text_len) {
  size_t at = 0;
  if (put_s(out, outlen, &at, "<message xmlns=\"jabber:client\" type=\"chat\" to=\"") < 0 ||
      put_esc(out, outlen, &at, to, strlen(to)) < 0 || put_s(out, outlen, &at, "\" id=\"") < 0 ||
      put_esc(out, outlen, &at, id, strlen(id)) < 0 || put_s(out, outlen, &at, "\"><body>") < 0 ||
      put_esc(out, outlen, &at, text, text_len) < 0 || put_s(out, outlen, &at, "</body></message>") < 0)
    return -ENOSPC;
  return (int)at;
}

int xmf_close(char *out, size_t outlen) {
  size_t at = 0;
  if (put_s(out, outlen, &at, "<close xmlns=\"" NS_FRAMING "\"/>") < 0)
    return -ENOSPC;
  return (int)at;
}

int xmf_iq_unsupported(char *out, size_t outlen, const char *id, const char *to) {
  size_t at = 0;
  if (put_s(out, outlen, &at, "<iq xmlns=\"jabber:client\" type=\"error\" id=\"") < 0 ||
      put_esc(out, outlen, &at, id, strlen(id)) < 0)
    return -ENOSPC;
  if (to && (put_s(out, outlen, &at, "\" to=\"") < 0 || put_esc(out, outlen, &at, to, strlen(to)) < 0))
    return -ENOSPC;
  if (put_s(out, outlen, &at,
            "\"><error type=\"cancel\"><service-unavailable xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/>"
            "</error></iq>") < 0)
    return -ENOSPC;
  return (int)at;
}

static int is_name_end(char c) { return c == ' ' || c == '>' || c == '/' || c == '\t' || c == '\r' || c == '\n'; }

int xmf_parse(const char *s, size_t n, xmf_elem_t *e, char *err, size_t errlen) {
  memset(e, 0, sizeof *e);
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
    i++;
  if (i >= n || s[i] != '<') {
    snprintf(err, errlen, "XMPP frame must start with an element (RFC 7395 3.3.3)");
    return -EINVAL;
  }
  size_t start = i++;
  size_t ns = i;
  while (i < n && !is_name_end(s[i]))
    i++;
  if (i == ns || i - ns >= sizeof e->name || i >= n) {
    snprintf(err, errlen, "XMPP frame's element name is empty, too long or unterminated");
    return -EINVAL;
  }
  memcpy(e->name, s + ns, i - ns);
  char q = 0;
  for (; i < n; i++) {
    if (q) {
      if (s[i] == q)
        q = 0;
    } else if (s[i] == '"' || s[i] == '\'') {
      q = s[i];
    } else if (s[i] == '>') {
      break;
    }
  }
  if (i >= n) {
    snprintf(err, errlen, "XMPP frame's start tag <%s> is unterminated", e->name);
    return -EINVAL;
  }
  e->tag = s + start;
  e->taglen = i - start + 1;
  e->empty = s[i - 1] == '/';
  e->s = s + start;
  e->n = n - start;
  return 0;
}

/* Decodes the five predefined entities and numeric references below 128;
 * anything else is copied as it stands. */
static int unescape(const char *s, size_t n, char *out, size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    char c = s[i];
    size_t adv = 1;
    if (c == '&') {
      static const struct {
        const char *e;
        char c;
      } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
      for (size_t k = 0; k < sizeof ents / sizeof ents[0]; k++) {
        size_t el = strlen(ents[k].e);
        if (i + el <= n && memcmp(s + i, ents[k].e, el) == 0) {
          c = ents[k].c;
          adv = el;
          break;
        }
      }
      if (adv == 1 && i + 3 < n && s[i + 1] == '#') {
        size_t j = i + 2;
        unsigned v = 0;
        while (j < n && j < i + 6 && s[j] >= '0' && s[j] <= '9')
          v = v * 10 + (unsigned)(s[j++] - '0');
        if (j < n && s[j] == ';' && j > i + 2 && v > 0 && v < 128) {
          c = (char)v;
          adv = j + 1 - i;
        }
      }
    }
    if (o + 1 >= outlen)
      return -ENOSPC;
    out[o++] = c;
    i += adv;
  }
  out[o] = '\0';
  return 0;
}

int xmf_attr(const xmf_elem_t *e, const char *name, char *out, size_t outlen) {
  const char *p = e->tag + 1 + strlen(e->name);
  const char *end = e->tag + e->taglen - 1;
  size_t nl = strlen(name);
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '/'))
      p++;
    const char *an = p;
    while (p < end && *p != '=' && *p != ' ')
      p++;
    size_t al = (size_t)(p - an);
    while (p < end && *p == ' ')
      p++;
    if (p >= end || *p != '=')
      return 0;
    p++;
    while (p < end && *p == ' ')
      p++;
    if (p >= end || (*p != '"' && *p != '\''))
      return 0;
    char q = *p++;
    const char *v = p;
    while (p < end && *p != q)
      p++;
    if (p >= end)
      return 0;
    if (al == nl && memcmp(an, name, nl) == 0)
      return unescape(v, (size_t)(p - v), out, outlen) < 0 ? -ENOSPC : 1;
    p++;
  }
  return 0;
}

/* Finds the next start tag <child ...> at or after p within the element;
 * sets *body to the first byte after its '>' and *empty. */
static const char *find_child(const xmf_elem_t *e, const char *p, const char *child, const char **body, int *empty) {
  size_t cl = strlen(child);
  const char *end = e->s + e->n;
  while (p < end) {
    const char *lt = memchr(p, '<', (size_t)(end - p));
    if (!lt)
      return NULL;
    if (lt + 1 + cl < end && memcmp(lt + 1, child, cl) == 0 && is_name_end(lt[1 + cl])) {
      const char *gt = lt + 1 + cl;
      char q = 0;
      for (; gt < end; gt++) {
        if (q) {
          if (*gt == q)
            q = 0;
        } else if (*gt == '"' || *gt == '\'') {
          q = *gt;
        } else if (*gt == '>') {
          break;
        }
      }
      if (gt >= end)
        return NULL;
      *empty = gt[-1] == '/';
      *body = gt + 1;
      return lt;
    }
    p = lt + 1;
  }
  return NULL;
}

static int child_text_from(const xmf_elem_t *e, const char **from, const char *child, char *out, size_t outlen) {
  const char *body;
  int empty;
  const char *at = find_child(e, *from, child, &body, &empty);
  if (!at)
    return 0;
  *from = body;
  if (empty) {
    if (outlen == 0)
      return -ENOSPC;
    out[0] = '\0';
    return 1;
  }
  const char *end = e->s + e->n;
  const char *lt = memchr(body, '<', (size_t)(end - body));
  if (!lt)
    return 0;
  return unescape(body, (size_t)(lt - body), out, outlen) < 0 ? -ENOSPC : 1;
}

int xmf_child_text(const xmf_elem_t *e, const char *child, char *out, size_t outlen) {
  const char *from = e->tag + e->taglen;
  return child_text_from(e, &from, child, out, outlen);
}

int xmf_has_child_text(const xmf_elem_t *e, const char *child, const char *value) {
  const char *from = e->tag + e->taglen;
  char buf[256];
  int r;
  while ((r = child_text_from(e, &from, child, buf, sizeof buf)) != 0)
    if (r == 1 && strcmp(buf, value) == 0)
      return 1;
  return 0;
}

int xmf_has_child(const xmf_elem_t *e, const char *child) {
  const char *body;
  int empty;
  return find_child(e, e->tag + e->taglen, child, &body, &empty) != NULL;
}

int xmf_bare_equal(const char *jid, const char *bare) {
  size_t bl = strlen(bare);
  return strncmp(jid, bare, bl) == 0 && (jid[bl] == '\0' || jid[bl] == '/');
}
