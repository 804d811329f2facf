/* The PIDF writer and reader of the SIP module: what we send reads back the
 * same, and what a partner may send that is not PIDF for the address
 * subscribed to is refused with a sentence. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mod/sip/pidf.h"

static void test_round_trip(void **state) {
  (void)state;
  static const pidf_availability_t all[] = {PIDF_AVAILABLE, PIDF_BUSY, PIDF_AWAY, PIDF_OFFLINE};
  for (size_t i = 0; i < 4; i++) {
    pidf_status_t in = {.availability = all[i]};
    snprintf(in.note, sizeof in.note, "%s", "a <note> & \"quotes\"");
    char *doc = pidf_write("alice@example.com", &in);
    assert_non_null(doc);
    assert_non_null(strstr(doc, "entity=\"pres:alice@example.com\""));
    pidf_status_t out;
    char err[256];
    assert_int_equal(pidf_read(doc, strlen(doc), "Alice@Example.com", &out, err, sizeof err), 0);
    assert_int_equal(out.availability, all[i]);
    /* the note is what someone online says */
    assert_string_equal(out.note, all[i] == PIDF_OFFLINE ? "" : in.note);
    free(doc);
  }
  /* Do not disturb has no RPID activity of its own: it reads as busy. */
  pidf_status_t dnd = {.availability = PIDF_DND}, out;
  char *doc = pidf_write("a@b.example", &dnd);
  assert_int_equal(pidf_read(doc, strlen(doc), "a@b.example", &out, NULL, 0), 0);
  assert_int_equal(out.availability, PIDF_BUSY);
  free(doc);
}

static void test_partner_documents(void **state) {
  (void)state;
  /* What other servers send: sip: entities, activities in a person
   * element, several tuples (one open is enough). */
  const char *doc =
      "<?xml version='1.0'?><presence xmlns='urn:ietf:params:xml:ns:pidf' "
      "xmlns:r='urn:ietf:params:xml:ns:pidf:rpid' "
      "xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' entity='sip:bob@partner.test'>"
      "<tuple id='1'><status><basic>closed</basic></status></tuple>"
      "<tuple id='2'><status><basic>open</basic></status><note>phone</note></tuple>"
      "<dm:person id='p'><r:activities><r:on-the-phone/></r:activities></dm:person></presence>";
  pidf_status_t out;
  char err[256];
  assert_int_equal(pidf_read(doc, strlen(doc), "bob@partner.test", &out, err, sizeof err), 0);
  assert_int_equal(out.availability, PIDF_BUSY);
  assert_string_equal(out.note, "phone");
}

static void test_refused(void **state) {
  (void)state;
  static const struct {
    const char *doc, *err_has;
  } bad[] = {
      {"", "empty"},
      {"<presence", "not well-formed"},
      {"<?xml version='1.0'?><!DOCTYPE presence [<!ENTITY e 'open'>]>"
       "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b.example'>"
       "<tuple id='t'><status><basic>&e;</basic></status></tuple></presence>",
       "DOCTYPE"},
      {"<?xml version='1.0'?><!DOCTYPE p SYSTEM 'http://127.0.0.1:1/x.dtd'><p/>", "DOCTYPE"},
      {"<presence entity='pres:a@b.example'/>", "not PIDF"},
      {"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:boss@b.example'>"
       "<tuple id='t'><status><basic>open</basic></status></tuple></presence>",
       "speaks for"},
      {"<presence xmlns='urn:ietf:params:xml:ns:pidf'><tuple id='t'><status><basic>open</basic>"
       "</status></tuple></presence>",
       "speaks for"},
      {"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b.example'>"
       "<tuple id='t'><status><basic>maybe</basic></status></tuple></presence>",
       "no tuple"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    pidf_status_t out = {.availability = PIDF_AWAY};
    char err[256] = "";
    int rc = pidf_read(bad[i].doc, strlen(bad[i].doc), "a@b.example", &out, err, sizeof err);
    if (rc != -EINVAL) fail_msg("%zu: rc %d", i, rc);
    if (!strstr(err, bad[i].err_has)) fail_msg("%zu: \"%s\"", i, err);
    assert_int_equal(out.availability, PIDF_AWAY); /* untouched */
  }
  size_t big = PIDF_MAX_BYTES + 1;
  char *huge = malloc(big);
  memset(huge, ' ', big);
  pidf_status_t out;
  char err[256];
  assert_int_equal(pidf_read(huge, big, "a@b.example", &out, err, sizeof err), -EFBIG);
  free(huge);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_partner_documents),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
