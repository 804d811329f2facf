/* PIDF (RFC 3863) with the RPID basics (RFC 4480): what a NOTIFY of the
 * presence event package carries. The writer makes the documents we send to
 * other organisations' watchers; the reader takes what their servers send
 * for the addresses our users watch. Network input: the reader uses libxml2
 * with no network, refuses a DOCTYPE (so no entity is ever declared, let
 * alone expanded), bounds the size and checks the document speaks for the
 * address that was subscribed to. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define PIDF_MAX_BYTES (64 * 1024)
#define PIDF_NOTE_MAX 256

typedef enum pidf_availability {
  PIDF_AVAILABLE,
  PIDF_BUSY,
  PIDF_DND,
  PIDF_AWAY,
  PIDF_OFFLINE,
} pidf_availability_t;

typedef struct pidf_status {
  pidf_availability_t availability;
  char note[PIDF_NOTE_MAX + 1]; /* "" when none; UTF-8 as sent, cut at a character */
} pidf_status_t;

/* The document for `address` (user@host, already checked) saying `status`.
 * malloc'd, NULL on out of memory. */
char *pidf_write(const char *address, const pidf_status_t *status);

/* Reads a PIDF document that must speak for `address` (its entity "pres:" or
 * "sip:" followed by the address, case-insensitive). 0, or -EINVAL with a
 * sentence in err (not well-formed, a DOCTYPE, not PIDF, another entity, no
 * status), -EFBIG above PIDF_MAX_BYTES. *out is written only on success. */
int pidf_read(const char *buf, size_t len, const char *address, pidf_status_t *out, char *err,
              size_t errlen);
