/* PIDF documents: one writer, one strict reader (see pidf.h). */
#include "mod/sip/pidf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#define NS_PIDF "urn:ietf:params:xml:ns:pidf"
#define NS_RPID "urn:ietf:params:xml:ns:pidf:rpid"
#define NS_DM "urn:ietf:params:xml:ns:pidf:data-model"

/* ---- writing ------------------------------------------------------------------------------ */

/* XML-escaped copy of s appended to the buffer. */
static bool put_escaped(char **buf, size_t *len, size_t *cap, const char *s) {
  for (; *s; s++) {
    const char *rep = NULL;
    char one[2] = {*s, 0};
    switch (*s) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '"': rep = "&quot;"; break;
    case '\'': rep = "&apos;"; break;
    default: rep = one; break;
    }
    /* Control characters other than tab and line breaks are not XML. */
    if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r') continue;
    size_t n = strlen(rep);
    if (*len + n + 1 > *cap) {
      size_t ncap = (*cap + n + 1) * 2;
      char *nb = realloc(*buf, ncap);
      if (!nb) return false;
      *buf = nb;
      *cap = ncap;
    }
    memcpy(*buf + *len, rep, n);
    *len += n;
    (*buf)[*len] = '\0';
  }
  return true;
}

/* Fixed text, no markup characters to escape; after a failure it does
 * nothing, so that a sequence of calls needs one check at the end. */
static void put_raw(bool *ok, char **buf, size_t *len, size_t *cap, const char *text) {
  if (!*ok) return;
  size_t n = strlen(text);
  if (*len + n + 1 > *cap) {
    size_t ncap = (*cap + n + 1) * 2;
    char *nb = realloc(*buf, ncap);
    if (!nb) {
      *ok = false;
      return;
    }
    *buf = nb;
    *cap = ncap;
  }
  memcpy(*buf + *len, text, n + 1);
  *len += n;
}

static const char *activity_of(pidf_availability_t a) {
  switch (a) {
  case PIDF_BUSY: return "busy";
  case PIDF_DND: return "busy"; /* RPID has no do-not-disturb; a note tells the rest */
  case PIDF_AWAY: return "away";
  default: return NULL;
  }
}

char *pidf_write(const char *address, const pidf_status_t *st) {
  size_t len = 0, cap = 512;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  buf[0] = '\0';
  bool open = st->availability != PIDF_OFFLINE;
  const char *activity = activity_of(st->availability);
  bool ok = true;
  put_raw(&ok, &buf, &len, &cap, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"" NS_PIDF
      "\" xmlns:rpid=\"" NS_RPID "\" xmlns:dm=\"" NS_DM "\" entity=\"pres:");
  if (ok) ok = put_escaped(&buf, &len, &cap, address);
  put_raw(&ok, &buf, &len, &cap, "\">\n <tuple id=\"t1\"><status><basic>");
  put_raw(&ok, &buf, &len, &cap, open ? "open" : "closed");
  put_raw(&ok, &buf, &len, &cap, "</basic></status><contact>sip:");
  if (ok) ok = put_escaped(&buf, &len, &cap, address);
  put_raw(&ok, &buf, &len, &cap, "</contact></tuple>\n");
  if (ok && activity) {
    put_raw(&ok, &buf, &len, &cap, " <dm:person id=\"p1\"><rpid:activities><rpid:");
    put_raw(&ok, &buf, &len, &cap, activity);
    put_raw(&ok, &buf, &len, &cap, "/></rpid:activities></dm:person>\n");
  }
  if (ok && open && st->note[0]) {
    put_raw(&ok, &buf, &len, &cap, " <note>");
    if (ok) ok = put_escaped(&buf, &len, &cap, st->note);
    put_raw(&ok, &buf, &len, &cap, "</note>\n");
  }
  put_raw(&ok, &buf, &len, &cap, "</presence>\n");
  if (!ok) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* ---- reading ------------------------------------------------------------------------------ */

typedef struct read_errors {
  bool have, doctype;
  char msg[160];
} read_errors_t;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void on_error(void *ctx, xmlErrorPtr e) {
  read_errors_t *c = ctx;
  if (!c || !e || c->have || e->level < XML_ERR_ERROR) return;
  c->have = true;
  snprintf(c->msg, sizeof c->msg, "%s", e->message ? e->message : "malformed XML");
  for (char *s = c->msg; *s; s++)
    if (*s == '\n' || *s == '\r') *s = ' ';
  size_t n = strlen(c->msg);
  while (n && c->msg[n - 1] == ' ') c->msg[--n] = '\0';
}

static void on_generic(void *ctx, const char *fmt, ...) {
  (void)ctx;
  (void)fmt;
}

static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys) {
  (void)name;
  (void)ext;
  (void)sys;
  xmlParserCtxtPtr ctxt = ctx;
  read_errors_t *c = ctxt->_private;
  if (c) c->doctype = true;
  xmlStopParser(ctxt);
}

static bool is(const xmlNode *n, const char *ns, const char *name) {
  return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
         strcmp((const char *)n->ns->href, ns) == 0 && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *n, const char *ns, const char *name) {
  for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
    if (is(c, ns, name)) return c;
  return NULL;
}

/* The trimmed text of an element into out (cut at a UTF-8 character). */
static void text_of(const xmlNode *n, char *out, size_t len) {
  out[0] = '\0';
  xmlChar *t = xmlNodeGetContent(n);
  if (!t) return;
  const char *s = (const char *)t;
  while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
  size_t k = strlen(s);
  while (k && (s[k - 1] == ' ' || s[k - 1] == '\t' || s[k - 1] == '\r' || s[k - 1] == '\n')) k--;
  if (k >= len) {
    k = len - 1;
    while (k && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
  }
  memcpy(out, s, k);
  out[k] = '\0';
  xmlFree(t);
}

/* RPID activities anywhere below n: the most telling one wins. */
static void find_activity(const xmlNode *n, bool *busy, bool *away, int depth) {
  if (depth > 16) return;
  for (const xmlNode *c = n->children; c; c = c->next) {
    if (c->type != XML_ELEMENT_NODE) continue;
    if (is(c, NS_RPID, "activities")) {
      for (const xmlNode *a = c->children; a; a = a->next) {
        if (a->type != XML_ELEMENT_NODE) continue;
        const char *k = (const char *)a->name;
        if (!strcmp(k, "busy") || !strcmp(k, "on-the-phone") || !strcmp(k, "meeting") ||
            !strcmp(k, "performance") || !strcmp(k, "presentation") || !strcmp(k, "meal"))
          *busy = true;
        else if (!strcmp(k, "away") || !strcmp(k, "vacation") || !strcmp(k, "sleeping") ||
                 !strcmp(k, "travel") || !strcmp(k, "permanent-absence") ||
                 !strcmp(k, "appointment"))
          *away = true;
      }
    } else {
      find_activity(c, busy, away, depth + 1);
    }
  }
}

/* "pres:a@b", "sip:a@b" or "sips:a@b" naming address. */
static bool entity_matches(const char *entity, const char *address) {
  const char *rest = NULL;
  if (!strncasecmp(entity, "pres:", 5))
    rest = entity + 5;
  else if (!strncasecmp(entity, "sip:", 4))
    rest = entity + 4;
  else if (!strncasecmp(entity, "sips:", 5))
    rest = entity + 5;
  return rest && strcasecmp(rest, address) == 0;
}

int pidf_read(const char *buf, size_t len, const char *address, pidf_status_t *out, char *err,
              size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (len > PIDF_MAX_BYTES) {
    set_err(err, errlen, "The presence document is larger than %d bytes.", PIDF_MAX_BYTES);
    return -EFBIG;
  }
  if (!buf || !len) {
    set_err(err, errlen, "The presence document is empty.");
    return -EINVAL;
  }
  xmlInitParser();
  read_errors_t errors = {0};
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  if (!ctxt) {
    set_err(err, errlen, "Out of memory reading the presence document.");
    return -ENOMEM;
  }
  ctxt->_private = &errors;
  ctxt->sax->internalSubset = on_doctype;
  xmlStructuredErrorFunc old_s = xmlStructuredError;
  void *old_s_ctx = xmlStructuredErrorContext;
  xmlGenericErrorFunc old_g = xmlGenericError;
  void *old_g_ctx = xmlGenericErrorContext;
  xmlSetStructuredErrorFunc(&errors, on_error);
  xmlSetGenericErrorFunc(NULL, on_generic);
  /* No NOENT, no DTDLOAD: nothing is substituted or fetched; NONET too. */
  xmlDocPtr doc = xmlCtxtReadMemory(ctxt, buf, (int)len, "pidf.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOBLANKS);
  xmlSetStructuredErrorFunc(old_s_ctx, old_s);
  xmlSetGenericErrorFunc(old_g_ctx, old_g);
  xmlFreeParserCtxt(ctxt);

  int r = -EINVAL;
  const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
  if (errors.doctype) {
    set_err(err, errlen, "The presence document has a DOCTYPE, which is not allowed.");
  } else if (!doc || errors.have) {
    set_err(err, errlen, "The presence document is not well-formed XML: %s.",
            errors.have ? errors.msg : "it could not be read");
  } else if (!is(root, NS_PIDF, "presence")) {
    set_err(err, errlen, "The document is not PIDF: its root is not <presence> in %s.", NS_PIDF);
  } else {
    xmlChar *entity = xmlGetNoNsProp(root, (const xmlChar *)"entity");
    if (!entity || !entity_matches((const char *)entity, address)) {
      set_err(err, errlen, "The presence document speaks for \"%.100s\", not for %.100s.",
              entity ? (const char *)entity : "", address);
    } else {
      bool any_status = false, open = false;
      char note[PIDF_NOTE_MAX + 1] = "";
      for (const xmlNode *t = root->children; t; t = t->next) {
        if (!is(t, NS_PIDF, "tuple")) continue;
        const xmlNode *basic = child(child(t, NS_PIDF, "status"), NS_PIDF, "basic");
        if (!basic) continue;
        char b[16];
        text_of(basic, b, sizeof b);
        if (!strcmp(b, "open")) {
          any_status = open = true;
        } else if (!strcmp(b, "closed")) {
          any_status = true;
        }
        const xmlNode *tn = child(t, NS_PIDF, "note");
        if (tn && !note[0]) text_of(tn, note, sizeof note);
      }
      const xmlNode *pn = child(root, NS_PIDF, "note");
      if (pn) text_of(pn, note, sizeof note);
      if (!any_status) {
        set_err(err, errlen, "The presence document has no tuple with a basic status of open "
                "or closed.");
      } else {
        bool busy = false, away = false;
        find_activity(root, &busy, &away, 0);
        out->availability = !open ? PIDF_OFFLINE : busy ? PIDF_BUSY : away ? PIDF_AWAY
                                                                           : PIDF_AVAILABLE;
        snprintf(out->note, sizeof out->note, "%s", open ? note : "");
        r = 0;
      }
    }
    xmlFree(entity);
  }
  xmlFreeDoc(doc);
  return r;
}
