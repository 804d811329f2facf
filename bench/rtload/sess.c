#include "sess.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atrium_frames.h"
#include "xmpp_frames.h"

#define XMPP_RESOURCE "rtload"
#define XMPP_BIND_ID "bind1"

enum { A_HELLO = 1, A_INIT_OK };
enum { X_OPEN1 = 1, X_FEAT1, X_AUTH, X_OPEN2, X_FEAT2, X_BIND, X_PRES };

/* One loop thread: frames are encoded here and copied by wslay. The
 * largest is a chat.send of 16 KiB text with every byte escaped. */
static char sess_buf[6 * 16 * 1024 + 1024];

__attribute__((format(printf, 2, 3))) static void fail(sess_t *s, const char *fmt, ...) {
  char why[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  sess_close(s, why);
}

static int send_str(sess_t *s, const char *p, int n) {
  if (n < 0)
    return n;
  return conn_send_text(&s->conn, p, (size_t)n);
}

static void set_ready(sess_t *s) {
  s->phase = SESS_OPEN;
  s->ready = 1;
  s->ctx->ev->ready(s);
}

/* ---- atrium ---------------------------------------------------------- */

static void atrium_text(sess_t *s, const char *p, size_t n) {
  const sess_events_t *ev = s->ctx->ev;
  atf_frame_t f;
  char err[200];
  if (atf_decode(p, n, &f, err, sizeof err) < 0) {
    if (s->phase == SESS_HANDSHAKE)
      fail(s, "%s", err);
    else
      ev->error(s, NULL, err);
    return;
  }
  if (f.type == ATF_BYE) {
    fail(s, "the server said bye: %s", f.reason);
  } else if (s->step == A_HELLO) {
    if (f.type != ATF_HELLO) {
      fail(s, "the first frame must be hello, got \"%s\"", json_string_value(json_object_get(f.root, "type")));
    } else if (strcmp(f.address, s->address) != 0) {
      fail(s, "hello address \"%s\" differs from the credentials' \"%s\"", f.address, s->address);
    } else {
      char *m = atf_presence_set("available", NULL, SESS_INIT_ID, err, sizeof err);
      int r = m ? conn_send_text(&s->conn, m, strlen(m)) : -EINVAL;
      if (r < 0)
        fail(s, "could not send presence.set: %s", m ? strerror(-r) : err);
      else
        s->step = A_INIT_OK;
      free(m);
    }
  } else if (s->step == A_INIT_OK) {
    if (f.id && strcmp(f.id, SESS_INIT_ID) == 0) {
      if (f.type == ATF_OK) {
        s->step = 0;
        set_ready(s);
      } else if (f.type == ATF_ERROR) {
        fail(s, "presence.set was answered with error: %s", f.detail);
      }
    }
  } else {
    switch (f.type) {
    case ATF_CHAT: ev->chat(s, f.from, f.text, f.text_len); break;
    case ATF_OK: ev->ok(s, f.id, f.message_id, f.time); break;
    case ATF_PRESENCE: ev->presence(s, f.address, f.state, f.note); break;
    case ATF_ERROR: {
      char what[240];
      snprintf(what, sizeof what, "error %lld to id %s: %s", f.status, f.id ? f.id : "(none)", f.detail);
      ev->error(s, f.id, what);
      break;
    }
    default: break;
    }
  }
  atf_frame_clear(&f);
}

/* ---- xmpp ------------------------------------------------------------ */

static int xmpp_user(const sess_t *s, char *user, size_t ul, const char **domain) {
  const char *at = strchr(s->address, '@');
  if (!at || (size_t)(at - s->address) >= ul)
    return -EINVAL;
  memcpy(user, s->address, (size_t)(at - s->address));
  user[at - s->address] = '\0';
  *domain = at + 1;
  return 0;
}

static int xmpp_send_open(sess_t *s) {
  char user[256];
  const char *domain;
  if (xmpp_user(s, user, sizeof user, &domain) < 0)
    return -EINVAL;
  return send_str(s, sess_buf, xmf_open(sess_buf, sizeof sess_buf, domain));
}

static const char *show_to_state(const char *show) {
  if (!show)
    return "available";
  if (strcmp(show, "away") == 0 || strcmp(show, "xa") == 0)
    return "away";
  if (strcmp(show, "dnd") == 0)
    return "dnd";
  return "available";
}

static void xmpp_event(sess_t *s, const xmf_elem_t *e) {
  const sess_events_t *ev = s->ctx->ev;
  char from[512], type[32];
  if (xmf_attr(e, "from", from, sizeof from) != 1)
    from[0] = '\0';
  if (xmf_attr(e, "type", type, sizeof type) != 1)
    type[0] = '\0';
  if (strcmp(e->name, "message") == 0) {
    if (strcmp(type, "error") == 0) {
      ev->error(s, NULL, "a message bounced with type=error");
      return;
    }
    static char body[3 * 16 * 1024];
    if (xmf_child_text(e, "body", body, sizeof body) != 1)
      return;
    char *slash = strchr(from, '/');
    if (slash)
      *slash = '\0';
    ev->chat(s, from, body, strlen(body));
  } else if (strcmp(e->name, "presence") == 0) {
    if (type[0] && strcmp(type, "unavailable") != 0)
      return; /* subscription traffic and probes */
    char show[32], status[256];
    int has_show = xmf_child_text(e, "show", show, sizeof show) == 1;
    int has_status = xmf_child_text(e, "status", status, sizeof status) == 1;
    char *slash = strchr(from, '/');
    if (slash)
      *slash = '\0';
    ev->presence(s, from, type[0] ? "offline" : show_to_state(has_show ? show : NULL), has_status ? status : NULL);
  } else if (strcmp(e->name, "iq") == 0) {
    if (strcmp(type, "get") == 0 || strcmp(type, "set") == 0) {
      char id[128];
      if (xmf_attr(e, "id", id, sizeof id) != 1)
        return;
      int n = xmf_iq_unsupported(sess_buf, sizeof sess_buf, id, from[0] ? from : NULL);
      (void)send_str(s, sess_buf, n);
    }
  } else if (strcmp(e->name, "stream:error") == 0 || strcmp(e->name, "close") == 0) {
    sess_close(s, strcmp(e->name, "close") == 0 ? "the server closed the XMPP stream" : "XMPP stream error");
  }
}

static int is_features(const xmf_elem_t *e) {
  return strcmp(e->name, "stream:features") == 0 || strcmp(e->name, "features") == 0;
}

static void xmpp_text(sess_t *s, const char *p, size_t n) {
  xmf_elem_t e;
  char err[160];
  if (xmf_parse(p, n, &e, err, sizeof err) < 0) {
    if (s->phase == SESS_HANDSHAKE)
      fail(s, "%s", err);
    else
      s->ctx->ev->error(s, NULL, err);
    return;
  }
  if (strcmp(e.name, "stream:error") == 0) {
    char cond[64] = "";
    const char *conds[] = {"not-authorized", "policy-violation", "resource-constraint", "conflict",
                           "host-unknown", "system-shutdown", "connection-timeout", "invalid-namespace"};
    for (size_t i = 0; i < sizeof conds / sizeof conds[0]; i++)
      if (xmf_has_child(&e, conds[i]))
        snprintf(cond, sizeof cond, "%s", conds[i]);
    fail(s, "XMPP stream error %s", cond[0] ? cond : "(unnamed)");
    return;
  }
  char user[256];
  const char *domain;
  switch (s->step) {
  case X_OPEN1:
  case X_OPEN2:
    if (strcmp(e.name, "open") != 0) {
      fail(s, "expected <open/>, got <%s>", e.name);
      return;
    }
    s->step = s->step == X_OPEN1 ? X_FEAT1 : X_FEAT2;
    return;
  case X_FEAT1:
    if (!is_features(&e)) {
      fail(s, "expected stream features, got <%s>", e.name);
      return;
    }
    if (!xmf_has_child_text(&e, "mechanism", "PLAIN")) {
      fail(s, "the server offers no SASL PLAIN (allow it and consider the WebSocket secure)");
      return;
    }
    if (xmpp_user(s, user, sizeof user, &domain) < 0 ||
        send_str(s, sess_buf, xmf_auth_plain(sess_buf, sizeof sess_buf, user, s->secret)) < 0) {
      fail(s, "could not send SASL PLAIN for %s", s->address);
      return;
    }
    s->step = X_AUTH;
    return;
  case X_AUTH:
    if (strcmp(e.name, "success") == 0) {
      if (xmpp_send_open(s) < 0) {
        fail(s, "could not reopen the stream");
        return;
      }
      s->step = X_OPEN2;
    } else if (strcmp(e.name, "failure") == 0) {
      fail(s, "SASL PLAIN failed for %s%s", s->address,
           xmf_has_child(&e, "not-authorized") ? " (not-authorized)" : "");
    } else {
      fail(s, "expected SASL success, got <%s>", e.name);
    }
    return;
  case X_FEAT2:
    if (!is_features(&e) || !xmf_has_child(&e, "bind")) {
      fail(s, "expected stream features with bind, got <%s>", e.name);
      return;
    }
    if (send_str(s, sess_buf, xmf_bind(sess_buf, sizeof sess_buf, XMPP_BIND_ID, XMPP_RESOURCE)) < 0) {
      fail(s, "could not send the bind request");
      return;
    }
    s->step = X_BIND;
    return;
  case X_BIND: {
    char id[32], type[16], jid[512];
    if (strcmp(e.name, "iq") != 0 || xmf_attr(&e, "id", id, sizeof id) != 1 || strcmp(id, XMPP_BIND_ID) != 0)
      return;
    if (xmf_attr(&e, "type", type, sizeof type) != 1 || strcmp(type, "result") != 0 ||
        xmf_child_text(&e, "jid", jid, sizeof jid) != 1) {
      fail(s, "resource binding failed for %s", s->address);
      return;
    }
    if (!xmf_bare_equal(jid, s->address)) {
      fail(s, "bound JID %s is not the account %s", jid, s->address);
      return;
    }
    if (send_str(s, sess_buf, xmf_presence(sess_buf, sizeof sess_buf, NULL, NULL)) < 0) {
      fail(s, "could not send initial presence");
      return;
    }
    s->step = X_PRES;
    return;
  }
  case X_PRES: {
    /* The server reflects initial presence to its sender (RFC 6121
     * 4.2.2): once it is back, the server has processed it. */
    char from[512], type[16];
    if (strcmp(e.name, "presence") != 0)
      return;
    if (xmf_attr(&e, "type", type, sizeof type) == 1)
      return;
    if (xmf_attr(&e, "from", from, sizeof from) == 1 && !xmf_bare_equal(from, s->address))
      return;
    s->step = 0;
    set_ready(s);
    return;
  }
  default:
    xmpp_event(s, &e);
  }
}

/* ---- common ------------------------------------------------------------ */

static void sess_on_open(conn_t *c) {
  sess_t *s = c->data;
  if (s->ctx->proto == SESS_ATRIUM) {
    s->step = A_HELLO;
    return;
  }
  s->step = X_OPEN1;
  if (xmpp_send_open(s) < 0)
    sess_close(s, "could not send the stream <open/>");
}

static void sess_on_text(conn_t *c, const char *p, size_t n) {
  sess_t *s = c->data;
  if (s->phase == SESS_CLOSED)
    return;
  if (s->ctx->proto == SESS_ATRIUM)
    atrium_text(s, p, n);
  else
    xmpp_text(s, p, n);
}

static void sess_on_closed(conn_t *c, const char *why) {
  sess_t *s = c->data;
  s->phase = SESS_CLOSED;
  s->ctx->ev->closed(s, why ? why : "closed by the generator");
}

static const conn_cbs_t sess_conn_cbs = {
    .on_open = sess_on_open,
    .on_text = sess_on_text,
    .on_closed = sess_on_closed,
};

int sess_start(sess_t *s, sess_ctx_t *ctx, const struct sockaddr_in *src) {
  s->ctx = ctx;
  s->phase = SESS_HANDSHAKE;
  s->step = 0;
  s->ready = 0;
  char hdr[1200];
  const char *extra = NULL;
  if (ctx->proto == SESS_ATRIUM) {
    int n = snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", s->secret);
    if (n < 0 || (size_t)n >= sizeof hdr)
      return -EINVAL;
    extra = hdr;
  }
  int r = conn_start(&s->conn, ctx->loop, &ctx->target, src, extra, &sess_conn_cbs, s);
  if (r < 0)
    s->phase = SESS_CLOSED;
  return r;
}

int sess_chat(sess_t *s, const char *to, const char *text, size_t n, const char *id) {
  if (s->phase != SESS_OPEN)
    return -ENOTCONN;
  if (s->ctx->proto == SESS_XMPP)
    return send_str(s, sess_buf, xmf_message(sess_buf, sizeof sess_buf, to, id, text, n));
  char err[160];
  char *m = atf_chat_send(to, text, n, id, err, sizeof err);
  if (!m)
    return -EINVAL;
  int r = conn_send_text(&s->conn, m, strlen(m));
  free(m);
  return r;
}

int sess_presence(sess_t *s, const char *state, const char *note, const char *id) {
  if (s->phase != SESS_OPEN)
    return -ENOTCONN;
  if (s->ctx->proto == SESS_XMPP) {
    const char *show = NULL;
    if (strcmp(state, "away") == 0)
      show = "away";
    else if (strcmp(state, "dnd") == 0 || strcmp(state, "busy") == 0)
      show = "dnd";
    else if (strcmp(state, "available") != 0)
      return -EINVAL;
    return send_str(s, sess_buf, xmf_presence(sess_buf, sizeof sess_buf, show, note));
  }
  char err[160];
  char *m = atf_presence_set(state, note, id, err, sizeof err);
  if (!m)
    return -EINVAL;
  int r = conn_send_text(&s->conn, m, strlen(m));
  free(m);
  return r;
}

int sess_watch(sess_t *s, const char *const *addresses, size_t n, const char *id) {
  if (s->phase != SESS_OPEN)
    return -ENOTCONN;
  if (s->ctx->proto == SESS_XMPP)
    return -ENOTSUP; /* XMPP watches through roster subscriptions */
  char err[160];
  char *m = atf_presence_watch(addresses, n, id, err, sizeof err);
  if (!m)
    return -EINVAL;
  int r = conn_send_text(&s->conn, m, strlen(m));
  free(m);
  return r;
}

void sess_close(sess_t *s, const char *why) {
  if (s->phase == SESS_CLOSED || s->phase == SESS_NEW)
    return;
  conn_close(&s->conn, why);
}
