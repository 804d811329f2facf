/* XMPP over WebSocket (RFC 7395): each WebSocket text message is one
 * complete top-level element. The encoders build the few stanzas the
 * generator sends; the reader looks at one element's start tag and at
 * named children, which is all a load generator needs from the server's
 * answers. It is not a general XML parser: it assumes well-formed input
 * (the server's own serialiser) and reads text of leaf children only. */
#ifndef RTLOAD_XMPP_FRAMES_H
#define RTLOAD_XMPP_FRAMES_H

#include <stddef.h>

typedef struct xmf_elem {
  char name[40];   /* e.g. "open", "stream:features", "message" */
  const char *tag; /* the start tag, from '<' to its '>' */
  size_t taglen;
  const char *s; /* the whole element */
  size_t n;
  int empty; /* <name .../> */
} xmf_elem_t;

/* Each encoder writes into out (size outlen) and returns the length, or
 * -ENOSPC / -EINVAL. */
int xmf_open(char *out, size_t outlen, const char *domain);
int xmf_auth_plain(char *out, size_t outlen, const char *user, const char *password);
int xmf_bind(char *out, size_t outlen, const char *id, const char *resource);
/* show NULL means available; status may be NULL. */
int xmf_presence(char *out, size_t outlen, const char *show, const char *status);
int xmf_message(char *out, size_t outlen, const char *to, const char *id, const char *text, size_t text_len);
int xmf_close(char *out, size_t outlen);
/* The service-unavailable answer to a request iq the generator does not
 * serve (RFC 6120 8.2.3); to may be NULL. */
int xmf_iq_unsupported(char *out, size_t outlen, const char *id, const char *to);

/* Returns 0, or -EINVAL with a sentence in err. */
int xmf_parse(const char *s, size_t n, xmf_elem_t *e, char *err, size_t errlen);
/* Copies the unescaped value of attribute name; 1 found, 0 absent,
 * -ENOSPC when out is too small. */
int xmf_attr(const xmf_elem_t *e, const char *name, char *out, size_t outlen);
/* Copies the unescaped text of the first descendant <child>; same
 * returns as xmf_attr. An empty <child/> gives 1 and "". */
int xmf_child_text(const xmf_elem_t *e, const char *child, char *out, size_t outlen);
/* 1 if some descendant <child> has exactly the text value. */
int xmf_has_child_text(const xmf_elem_t *e, const char *child, const char *value);
/* 1 if some descendant element is named child. */
int xmf_has_child(const xmf_elem_t *e, const char *child);
/* The bare part of a JID (up to '/') compared with bare; 1 if equal. */
int xmf_bare_equal(const char *jid, const char *bare);

#endif
