/* Unit tests of the real-time module's pure parts: the client frame parser
 * (one table of accepted frames, one of refused frames with the status and
 * a piece of the sentence), addresses, states, and the RFC 3339 times the
 * APIs speak. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/timefmt.h"
#include "mod/rt/frame.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
  const char *frame;
  rt_frame_type_t type;
} good_t;

static const good_t good[] = {
    {"{\"type\":\"ping\"}", RT_FRAME_PING},
    {"{\"type\":\"presence.set\",\"state\":\"dnd\",\"note\":\"\"}", RT_FRAME_PRESENCE_SET},
    {"{\"type\":\"presence.watch\",\"addresses\":[\"a@b.example\"]}", RT_FRAME_PRESENCE_WATCH},
    {"{\"type\":\"presence.unwatch\",\"addresses\":[\"a@b.example\"]}",
     RT_FRAME_PRESENCE_UNWATCH},
    {"{\"type\":\"chat.send\",\"to\":\"bob@x.example\",\"text\":\"\\u00e4\"}", RT_FRAME_CHAT_SEND},
    {"{\"type\":\"chat.received\",\"message_id\":\"18446744073709551\"}", RT_FRAME_CHAT_RECEIVED},
    {"{\"type\":\"chat.read\",\"message_id\":7}", RT_FRAME_CHAT_READ},
    {"{\"type\":\"typing\",\"to\":\"bob@x.example\"}", RT_FRAME_TYPING},
    {"{\"type\":\"ping\",\"extra\":\"fields are ignored\"}", RT_FRAME_PING},
};

static void test_good_frames(void **state) {
  (void)state;
  for (size_t i = 0; i < N(good); i++) {
    rt_frame_t f;
    int status = 0;
    char err[300] = "";
    int r = rt_frame_parse(good[i].frame, strlen(good[i].frame), &f, &status, err, sizeof err);
    if (r != 0) fail_msg("%s: refused: %s", good[i].frame, err);
    assert_int_equal(f.type, good[i].type);
    rt_frame_clear(&f);
  }
}

typedef struct {
  const char *frame;
  int status;
  const char *says;
  const char *id; /* the id the error carries, or NULL */
} bad_t;

static const bad_t bad[] = {
    {"", 400, "not JSON", NULL},
    {"nonsense", 400, "not JSON", NULL},
    {"[1]", 400, "one JSON object", NULL},
    {"{}", 400, "\"type\"", NULL},
    {"{\"type\":5}", 400, "\"type\"", NULL},
    {"{\"type\":\"ping\",\"type\":\"ping\"}", 400, "not JSON", NULL},
    {"{\"type\":\"fly\",\"id\":\"q\"}", 400, "not a frame type", "q"},
    {"{\"type\":\"ping\",\"id\":5}", 400, "\"id\"", NULL},
    {"{\"type\":\"ping\",\"id\":\"\"}", 400, "\"id\"", NULL},
    {"{\"type\":\"ping\",\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", 400,
     "1 to 64", NULL},
    {"{\"type\":\"presence.set\"}", 400, "\"state\"", NULL},
    {"{\"type\":\"presence.set\",\"state\":\"Available\"}", 400, "\"state\"", NULL},
    {"{\"type\":\"presence.set\",\"state\":\"busy\",\"note\":7}", 400, "\"note\"", NULL},
    /* jansson refuses NUL in strings as it parses. */
    {"{\"type\":\"presence.set\",\"state\":\"busy\",\"note\":\"a\\u0000b\"}", 400, "not JSON",
     NULL},
    {"{\"type\":\"presence.watch\"}", 400, "\"addresses\"", NULL},
    {"{\"type\":\"presence.watch\",\"addresses\":[]}", 400, "1 to 1,000", NULL},
    {"{\"type\":\"presence.watch\",\"addresses\":[\"nobody\"]}", 400, "address", NULL},
    {"{\"type\":\"presence.watch\",\"addresses\":[\"a@b@c\"]}", 400, "address", NULL},
    {"{\"type\":\"chat.send\",\"id\":\"m\",\"to\":\"bob\",\"text\":\"x\"}", 400, "\"to\"", "m"},
    {"{\"type\":\"chat.send\",\"to\":\"bob@x.example\"}", 400, "\"text\"", NULL},
    {"{\"type\":\"chat.send\",\"to\":\"bob@x.example\",\"text\":\"\"}", 400, "\"text\"", NULL},
    {"{\"type\":\"chat.send\",\"to\":\"bob@x.example\",\"text\":\"a\\u0000\"}", 400, "not JSON", NULL},
    {"{\"type\":\"chat.send\",\"to\":\"bob@-x.example\",\"text\":\"x\"}", 400, "\"to\"", NULL},
    {"{\"type\":\"chat.send\",\"to\":\"b b@x.example\",\"text\":\"x\"}", 400, "\"to\"", NULL},
    {"{\"type\":\"chat.read\"}", 400, "\"message_id\"", NULL},
    {"{\"type\":\"chat.read\",\"message_id\":\"0\"}", 400, "\"message_id\"", NULL},
    {"{\"type\":\"chat.read\",\"message_id\":\"12a\"}", 400, "\"message_id\"", NULL},
    {"{\"type\":\"chat.read\",\"message_id\":-3}", 400, "\"message_id\"", NULL},
    {"{\"type\":\"chat.read\",\"message_id\":\"123456789012345678901\"}", 400, "\"message_id\"",
     NULL},
    {"{\"type\":\"typing\"}", 400, "\"to\"", NULL},
};

static void test_bad_frames(void **state) {
  (void)state;
  for (size_t i = 0; i < N(bad); i++) {
    rt_frame_t f;
    int status = 0;
    char err[300] = "";
    int r = rt_frame_parse(bad[i].frame, strlen(bad[i].frame), &f, &status, err, sizeof err);
    if (r != -EINVAL) fail_msg("%s: accepted", bad[i].frame);
    if (status != bad[i].status) fail_msg("%s: status %d", bad[i].frame, status);
    if (!strstr(err, bad[i].says)) fail_msg("%s: said \"%s\"", bad[i].frame, err);
    if (bad[i].id) {
      assert_true(f.has_id);
      assert_string_equal(f.id, bad[i].id);
    }
    rt_frame_clear(&f);
  }
}

static void test_text_limit(void **state) {
  (void)state;
  const char *head = "{\"type\":\"chat.send\",\"to\":\"bob@x.example\",\"text\":\"";
  size_t hl = strlen(head);
  char *buf = malloc(hl + RT_TEXT_MAX + 10);
  assert_non_null(buf);
  for (size_t len = RT_TEXT_MAX; len <= RT_TEXT_MAX + 1; len++) {
    memcpy(buf, head, hl);
    memset(buf + hl, 'x', len);
    memcpy(buf + hl + len, "\"}", 3);
    rt_frame_t f;
    int status = 0;
    char err[300];
    int r = rt_frame_parse(buf, strlen(buf), &f, &status, err, sizeof err);
    if (len == RT_TEXT_MAX) {
      assert_int_equal(r, 0);
      assert_int_equal(f.text_len, RT_TEXT_MAX);
    } else {
      assert_int_equal(r, -EINVAL);
      assert_int_equal(status, 413);
      assert_non_null(strstr(err, "16 KiB"));
    }
    rt_frame_clear(&f);
  }
  free(buf);
}

static void test_fields(void **state) {
  (void)state;
  const char *s = "{\"type\":\"presence.set\",\"id\":\"42\",\"state\":\"away\",\"note\":\"lunch\"}";
  rt_frame_t f;
  int status;
  char err[300];
  assert_int_equal(rt_frame_parse(s, strlen(s), &f, &status, err, sizeof err), 0);
  assert_true(f.has_id);
  assert_string_equal(f.id, "42");
  assert_int_equal(f.state, RT_AWAY);
  assert_true(f.has_note);
  assert_string_equal(f.note, "lunch");
  rt_frame_clear(&f);
  rt_frame_clear(NULL);
  s = "{\"type\":\"chat.read\",\"message_id\":\"9007199254740993\"}";
  assert_int_equal(rt_frame_parse(s, strlen(s), &f, &status, err, sizeof err), 0);
  assert_true(f.message_id == 9007199254740993ull); /* beyond a double's integers */
  rt_frame_clear(&f);
}

static void test_states_and_addresses(void **state) {
  (void)state;
  /* The order is the aggregation: the most available wins. */
  assert_true(RT_AVAILABLE < RT_BUSY && RT_BUSY < RT_DND && RT_DND < RT_AWAY &&
              RT_AWAY < RT_OFFLINE);
  for (int s = 0; s < RT_STATE_COUNT; s++)
    assert_int_equal(rt_state_parse(rt_state_name((rt_state_t)s)), s);
  assert_int_equal(rt_state_parse("asleep"), RT_STATE_COUNT);
  assert_int_equal(rt_state_parse(NULL), RT_STATE_COUNT);
  const char *ok[] = {"a@b.c", "alice.smith@example.com", "x+y@sub.example.org", "1@2.example"};
  const char *no[] = {NULL, "", "alice", "@example.com", "alice@", "a@b@c.example",
                      "a b@c.example", "a\"b@c.example", "a<b@c.example", "a@.example",
                      "a@example.", "a@exa mple.com"};
  for (size_t i = 0; i < N(ok); i++)
    if (!rt_address_ok(ok[i])) fail_msg("%s refused", ok[i]);
  for (size_t i = 0; i < N(no); i++)
    if (rt_address_ok(no[i])) fail_msg("%s accepted", no[i] ? no[i] : "NULL");
}

static void test_rfc3339(void **state) {
  (void)state;
  int64_t ms;
  assert_true(time_parse_rfc3339("2026-12-01T10:00:00Z", &ms));
  assert_true(ms == 1796119200000ll);
  assert_true(time_parse_rfc3339("2026-12-01T11:00:00.5+01:00", &ms));
  assert_true(ms == 1796119200500ll);
  assert_true(time_parse_rfc3339("2026-12-01t09:30:00.123456-00:30", &ms));
  assert_true(ms == 1796119200123ll);
  char out[TIMEFMT_LEN];
  time_rfc3339_ms(1796119200123ll, out);
  assert_string_equal(out, "2026-12-01T10:00:00.123Z");
  const char *no[] = {"", "2026-12-01", "2026-12-01T10:00:00", "2026-02-30T10:00:00Z",
                      "2026-13-01T10:00:00Z", "2026-12-01T24:00:00Z", "2026-12-01T10:00:00.Z",
                      "2026-12-01T10:00:00+1:00", "2026-12-01T10:00:00Zjunk", "1969-12-31T23:59:59Z",
                      "26-12-01T10:00:00Z"};
  for (size_t i = 0; i < N(no); i++)
    if (time_parse_rfc3339(no[i], &ms)) fail_msg("%s accepted", no[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_frames),  cmocka_unit_test(test_bad_frames),
      cmocka_unit_test(test_text_limit),   cmocka_unit_test(test_fields),
      cmocka_unit_test(test_states_and_addresses), cmocka_unit_test(test_rfc3339),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
