#include "selftest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "atrium_frames.h"
#include "sess.h"
#include "stats.h"
#include "wsutil.h"
#include "xmpp_frames.h"

static int checks, failures;

static void check(int ok, const char *what) {
  checks++;
  if (!ok) {
    failures++;
    printf("FAIL %s\n", what);
  }
}

/* The object's keys are exactly the comma-separated list. */
static int has_exact_keys(json_t *o, const char *keys) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", keys);
  size_t want = 0;
  char *save = NULL;
  for (char *k = strtok_r(buf, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
    if (!json_object_get(o, k))
      return 0;
    want++;
  }
  return json_object_size(o) == want;
}

static json_t *load(const char *s) { return json_loads(s, 0, NULL); }

static void show(const char *label, const char *frame) { printf("  %-22s %s\n", label, frame); }

static void test_atrium_encoders(void) {
  char err[200];
  puts("atrium client frames:");
  char *m = atf_chat_send("bob@example.com", "hi \"there\"", 10, "m1-42", err, sizeof err);
  check(m != NULL, "chat.send encodes");
  if (m) {
    show("chat.send", m);
    json_t *o = load(m);
    check(o && has_exact_keys(o, "type,to,text,id"), "chat.send has exactly type,to,text,id");
    check(o && strcmp(json_string_value(json_object_get(o, "type")), "chat.send") == 0, "chat.send type");
    check(o && strcmp(json_string_value(json_object_get(o, "text")), "hi \"there\"") == 0, "chat.send text");
    check(o && strcmp(json_string_value(json_object_get(o, "to")), "bob@example.com") == 0, "chat.send to");
    check(o && strcmp(json_string_value(json_object_get(o, "id")), "m1-42") == 0, "chat.send id");
    json_decref(o);
    free(m);
  }
  static char big[ATF_TEXT_MAX + 2];
  memset(big, 'a', sizeof big - 1);
  m = atf_chat_send("bob@example.com", big, ATF_TEXT_MAX + 1, "x", err, sizeof err);
  check(m == NULL && strstr(err, "\"text\"") && strstr(err, "16384"), "chat.send rejects text over 16 KiB");
  free(m);
  m = atf_chat_send("bob@example.com", big, ATF_TEXT_MAX, "x", err, sizeof err);
  check(m != NULL, "chat.send accepts exactly 16 KiB");
  free(m);
  m = atf_chat_send("bob", "x", 1, "x", err, sizeof err);
  check(m == NULL && strstr(err, "\"to\""), "chat.send rejects a to without @, naming \"to\"");
  free(m);
  m = atf_chat_send("bob@example.com", "\xff", 1, "x", err, sizeof err);
  check(m == NULL && strstr(err, "UTF-8"), "chat.send rejects text that is not UTF-8");
  free(m);

  m = atf_presence_set("away", "rtload-fan-3", "f3", err, sizeof err);
  check(m != NULL, "presence.set encodes");
  if (m) {
    show("presence.set", m);
    json_t *o = load(m);
    check(o && has_exact_keys(o, "type,state,note,id"), "presence.set has exactly type,state,note,id");
    check(o && strcmp(json_string_value(json_object_get(o, "state")), "away") == 0, "presence.set state");
    json_decref(o);
    free(m);
  }
  m = atf_presence_set("available", NULL, NULL, err, sizeof err);
  check(m != NULL, "presence.set without note and id encodes");
  if (m) {
    show("presence.set (bare)", m);
    json_t *o = load(m);
    check(o && has_exact_keys(o, "type,state"), "presence.set without note has exactly type,state");
    json_decref(o);
    free(m);
  }
  const char *states[] = {"available", "away", "busy", "dnd", "offline"};
  for (size_t i = 0; i < 5; i++) {
    m = atf_presence_set(states[i], NULL, NULL, err, sizeof err);
    check(m != NULL, "presence.set accepts each contract state");
    free(m);
  }
  m = atf_presence_set("online", NULL, NULL, err, sizeof err);
  check(m == NULL && strstr(err, "\"state\""), "presence.set rejects a state outside the contract, naming it");
  free(m);

  const char *addrs[] = {"alice@example.com", "carol@other.example"};
  m = atf_presence_watch(addrs, 2, "rtload-watch", err, sizeof err);
  check(m != NULL, "presence.watch encodes");
  if (m) {
    show("presence.watch", m);
    json_t *o = load(m);
    check(o && has_exact_keys(o, "type,addresses,id"), "presence.watch has exactly type,addresses,id");
    json_t *a = json_object_get(o, "addresses");
    check(json_is_array(a) && json_array_size(a) == 2 &&
              strcmp(json_string_value(json_array_get(a, 1)), "carol@other.example") == 0,
          "presence.watch addresses is the list in order");
    json_decref(o);
    free(m);
  }
  const char *bad[] = {"alice@example.com", "nobody"};
  m = atf_presence_watch(bad, 2, NULL, err, sizeof err);
  check(m == NULL && strstr(err, "\"addresses\"[1]"), "presence.watch names the bad address's index");
  free(m);
}

static int decodes(const char *s, atf_type_t want, atf_frame_t *f) {
  char err[200];
  if (atf_decode(s, strlen(s), f, err, sizeof err) < 0) {
    printf("  unexpected decode error: %s\n", err);
    return 0;
  }
  return f->type == want;
}

static int rejects(const char *s, const char *needle) {
  atf_frame_t f;
  char err[200];
  if (atf_decode(s, strlen(s), &f, err, sizeof err) == 0) {
    atf_frame_clear(&f);
    return 0;
  }
  printf("  rejected: %s\n", err);
  return strstr(err, needle) != NULL;
}

static void test_atrium_decoder(void) {
  puts("atrium server frames:");
  atf_frame_t f;
  const char *hello = "{\"type\":\"hello\",\"user\":\"u1\",\"address\":\"alice@example.com\",\"session\":\"s-9\","
                      "\"server_time\":\"2025-01-02T03:04:05.123Z\"}";
  show("hello", hello);
  check(decodes(hello, ATF_HELLO, &f) && strcmp(f.address, "alice@example.com") == 0 && strcmp(f.session, "s-9") == 0,
        "hello decodes with user, address, session, server_time");
  atf_frame_clear(&f);
  check(rejects("{\"type\":\"hello\",\"user\":\"u1\",\"address\":\"alice@example.com\",\"server_time\":"
                "\"2025-01-02T03:04:05Z\"}",
                "\"session\""),
        "hello without session is rejected naming session");
  check(rejects("{\"type\":\"hello\",\"user\":\"u1\",\"address\":\"alice\",\"session\":\"s\",\"server_time\":"
                "\"2025-01-02T03:04:05Z\"}",
                "\"address\""),
        "hello with an address lacking @ is rejected");
  check(rejects("{\"type\":\"hello\",\"user\":\"u1\",\"address\":\"a@b\",\"session\":\"s\",\"server_time\":"
                "\"yesterday\"}",
                "RFC 3339"),
        "hello with a server_time that is not RFC 3339 is rejected");

  const char *ok = "{\"type\":\"ok\",\"id\":\"m7-123\",\"message_id\":\"msg-1\",\"time\":\"2025-01-02T03:04:05+01:00\"}";
  show("ok (chat.send)", ok);
  check(decodes(ok, ATF_OK, &f) && strcmp(f.id, "m7-123") == 0 && strcmp(f.message_id, "msg-1") == 0 && f.time,
        "ok decodes id, message_id, time");
  atf_frame_clear(&f);
  check(decodes("{\"type\":\"ok\",\"id\":\"rtload-init\"}", ATF_OK, &f) && !f.message_id,
        "ok to presence.set needs no message_id");
  atf_frame_clear(&f);
  check(rejects("{\"type\":\"ok\",\"message_id\":\"x\"}", "\"id\""), "ok without id is rejected");

  const char *er = "{\"type\":\"error\",\"id\":\"m1\",\"status\":404,\"detail\":\"No user bob@example.com.\"}";
  show("error", er);
  check(decodes(er, ATF_ERROR, &f) && f.status == 404 && strcmp(f.detail, "No user bob@example.com.") == 0,
        "error decodes status and detail");
  atf_frame_clear(&f);
  check(rejects("{\"type\":\"error\",\"id\":\"m1\",\"status\":\"404\",\"detail\":\"x\"}", "\"status\""),
        "error with a string status is rejected");

  const char *chat = "{\"type\":\"chat\",\"message_id\":\"msg-1\",\"from\":\"alice@example.com\",\"to\":"
                     "\"bob@example.com\",\"text\":\"h\\u00e9llo\",\"time\":\"2025-01-02T03:04:05Z\"}";
  show("chat", chat);
  check(decodes(chat, ATF_CHAT, &f) && strcmp(f.from, "alice@example.com") == 0 && f.text_len == 6 &&
            strcmp(f.text, "h\xc3\xa9llo") == 0,
        "chat decodes message_id, from, to, text (UTF-8), time");
  atf_frame_clear(&f);
  check(rejects("{\"type\":\"chat\",\"message_id\":\"m\",\"from\":\"a@b\",\"to\":\"c@d\",\"text\":\"x\"}", "\"time\""),
        "chat without time is rejected naming time");

  const char *pres = "{\"type\":\"presence\",\"address\":\"alice@example.com\",\"state\":\"busy\",\"note\":\"n\","
                     "\"since\":\"2025-01-02T03:04:05Z\"}";
  show("presence", pres);
  check(decodes(pres, ATF_PRESENCE, &f) && strcmp(f.state, "busy") == 0 && strcmp(f.note, "n") == 0,
        "presence decodes address, state, note, since");
  atf_frame_clear(&f);
  check(decodes("{\"type\":\"presence\",\"address\":\"a@b\",\"state\":\"offline\",\"since\":\"2025-01-02T03:04:05Z\"}",
                ATF_PRESENCE, &f) &&
            f.note == NULL,
        "presence without note decodes");
  atf_frame_clear(&f);
  check(rejects("{\"type\":\"presence\",\"address\":\"a@b\",\"state\":\"online\",\"since\":\"2025-01-02T03:04:05Z\"}",
                "\"state\""),
        "presence with a state outside the contract is rejected");
  check(rejects("{\"type\":\"presence\",\"address\":\"a@b\",\"state\":\"away\",\"note\":5,\"since\":"
                "\"2025-01-02T03:04:05Z\"}",
                "\"note\""),
        "presence with a note that is not a string is rejected");

  check(decodes("{\"type\":\"bye\",\"reason\":\"domain_changed\"}", ATF_BYE, &f) &&
            strcmp(f.reason, "domain_changed") == 0,
        "bye decodes reason");
  atf_frame_clear(&f);
  check(decodes("{\"type\":\"typing\",\"from\":\"a@b\"}", ATF_OTHER, &f), "a type the generator ignores decodes");
  atf_frame_clear(&f);
  check(rejects("{\"type\":\"ok\",\"id\":\"a\",\"id\":\"b\"}", "JSON"), "duplicate keys are rejected");
  check(rejects("[1,2]", "object"), "a frame that is not an object is rejected");
  check(rejects("{\"id\":\"x\"}", "\"type\""), "a frame without type is rejected");
  check(rejects("{\"type\":", "JSON"), "truncated JSON is rejected");
}

static void test_xmpp(void) {
  puts("xmpp frames:");
  char b[1024];
  int n = xmf_open(b, sizeof b, "bench.local");
  show("open", b);
  check(n > 0 && strcmp(b, "<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" to=\"bench.local\" version=\"1.0\"/>") == 0,
        "open is RFC 7395's framing element");
  n = xmf_auth_plain(b, sizeof b, "u1", "pw");
  show("auth", b);
  /* base64("\0u1\0pw") */
  check(n > 0 && strcmp(b, "<auth xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\" mechanism=\"PLAIN\">AHUxAHB3</auth>") == 0,
        "SASL PLAIN carries base64(NUL user NUL password)");
  n = xmf_bind(b, sizeof b, "bind1", "rtload");
  show("bind", b);
  check(n > 0 && strstr(b, "<resource>rtload</resource>") && strstr(b, "type=\"set\""), "bind request");
  n = xmf_message(b, sizeof b, "bob@bench.local", "m1-2", "a<b&c", 5);
  show("message", b);
  check(n > 0 && strcmp(b, "<message xmlns=\"jabber:client\" type=\"chat\" to=\"bob@bench.local\" id=\"m1-2\">"
                           "<body>a&lt;b&amp;c</body></message>") == 0,
        "message escapes its body");
  n = xmf_presence(b, sizeof b, "away", "rtload-fan-1");
  show("presence", b);
  check(n > 0 && strcmp(b, "<presence xmlns=\"jabber:client\"><show>away</show><status>rtload-fan-1</status></presence>") == 0,
        "presence with show and status");
  n = xmf_presence(b, sizeof b, NULL, NULL);
  check(n > 0 && strcmp(b, "<presence xmlns=\"jabber:client\"/>") == 0, "initial presence is empty");
  check(xmf_message(b, 40, "bob@bench.local", "x", "long enough to overflow", 23) < 0, "encoders refuse to overflow");

  /* As Prosody serialises them: single quotes, namespaces on the element. */
  xmf_elem_t e;
  char err[128], v[256];
  const char *feat = "<stream:features xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>"
                     "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>"
                     "<mechanism>PLAIN</mechanism></mechanisms></stream:features>";
  check(xmf_parse(feat, strlen(feat), &e, err, sizeof err) == 0 && strcmp(e.name, "stream:features") == 0,
        "features parse");
  check(xmf_has_child_text(&e, "mechanism", "PLAIN") && !xmf_has_child_text(&e, "mechanism", "PLAINX"),
        "PLAIN is found among the mechanisms");
  check(!xmf_has_child(&e, "bind"), "no bind among the first features");
  const char *bind = "<iq type='result' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                     "<jid>u1@bench.local/rtload</jid></bind></iq>";
  check(xmf_parse(bind, strlen(bind), &e, err, sizeof err) == 0 && xmf_attr(&e, "id", v, sizeof v) == 1 &&
            strcmp(v, "bind1") == 0,
        "bind result id");
  check(xmf_child_text(&e, "jid", v, sizeof v) == 1 && strcmp(v, "u1@bench.local/rtload") == 0 &&
            xmf_bare_equal(v, "u1@bench.local") && !xmf_bare_equal(v, "u1@bench.loc"),
        "bound jid and its bare part");
  const char *msg = "<message type='chat' to='b@bench.local/rtload' from='a@bench.local/rtload' id='m1-2' "
                    "xmlns='jabber:client'><body>x &lt;y&gt; &amp; &#39;z&apos;</body></message>";
  check(xmf_parse(msg, strlen(msg), &e, err, sizeof err) == 0 && strcmp(e.name, "message") == 0 &&
            xmf_attr(&e, "from", v, sizeof v) == 1 && strcmp(v, "a@bench.local/rtload") == 0,
        "message from");
  check(xmf_child_text(&e, "body", v, sizeof v) == 1 && strcmp(v, "x <y> & 'z'") == 0, "message body unescaped");
  check(xmf_attr(&e, "xmlns", v, sizeof v) == 1 && strcmp(v, "jabber:client") == 0 &&
            xmf_attr(&e, "lang", v, sizeof v) == 0,
        "attribute lookup is exact");
  const char *pres = "<presence from='a@bench.local/rtload' to='w@bench.local' xmlns='jabber:client'><show>away</show>"
                     "<status>rtload-fan-3</status><delay xmlns='urn:xmpp:delay' stamp='2025-01-02T03:04:05Z'/>"
                     "</presence>";
  check(xmf_parse(pres, strlen(pres), &e, err, sizeof err) == 0 && xmf_child_text(&e, "show", v, sizeof v) == 1 &&
            strcmp(v, "away") == 0,
        "presence show");
  check(xmf_child_text(&e, "status", v, sizeof v) == 1 && strcmp(v, "rtload-fan-3") == 0, "presence status");
  check(xmf_child_text(&e, "priority", v, sizeof v) == 0, "absent child is absent");
  check(xmf_child_text(&e, "delay", v, sizeof v) == 1 && v[0] == '\0', "empty child gives empty text");
  const char *open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' version='1.0' from='bench.local' id='x'/>";
  check(xmf_parse(open, strlen(open), &e, err, sizeof err) == 0 && e.empty && strcmp(e.name, "open") == 0,
        "open parses as an empty element");
  check(xmf_parse("hello", 5, &e, err, sizeof err) < 0, "text that is not an element is rejected");
  check(xmf_parse("<message to='x", 14, &e, err, sizeof err) < 0, "an unterminated start tag is rejected");
}

static void test_wsutil(void) {
  puts("websocket helpers:");
  uint8_t d[20];
  wsu_sha1((const uint8_t *)"abc", 3, d);
  char hex[41];
  for (int i = 0; i < 20; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  check(strcmp(hex, "a9993e364706816aba3e25717850c26c9cd0d89d") == 0, "SHA-1(abc) (FIPS 180 example)");
  static uint8_t million[1000000];
  memset(million, 'a', sizeof million);
  wsu_sha1(million, sizeof million, d);
  for (int i = 0; i < 20; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  check(strcmp(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0, "SHA-1 of a million 'a'");
  char acc[WSU_ACCEPT_LEN + 1];
  wsu_accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", acc);
  printf("  %-22s %s\n", "accept (RFC 6455 1.3)", acc);
  check(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "Sec-WebSocket-Accept of the RFC 6455 example key");
  char b64[16];
  wsu_base64((const uint8_t *)"ab", 2, b64);
  check(strcmp(b64, "YWI=") == 0, "base64 pads");
  wsu_url_t u;
  char err[160];
  check(wsu_parse_url("ws://127.0.0.1:5280/xmpp-websocket", &u, err, sizeof err) == 0 &&
            strcmp(u.host, "127.0.0.1") == 0 && strcmp(u.port, "5280") == 0 && strcmp(u.path, "/xmpp-websocket") == 0,
        "ws URL parts");
  check(wsu_parse_url("ws://h", &u, err, sizeof err) == 0 && strcmp(u.port, "80") == 0 && strcmp(u.path, "/") == 0,
        "ws URL defaults");
  check(wsu_parse_url("wss://h/", &u, err, sizeof err) < 0 && strstr(err, "ws://"), "wss is refused");
  check(wsu_parse_url("ws://h:99x/", &u, err, sizeof err) < 0, "a bad port is refused");
  stats_samples_t s;
  stats_init(&s, 1000);
  for (int i = 1; i <= 100; i++)
    stats_add_ns(&s, (uint64_t)i * 1000000);
  check(stats_quantile_ms(&s, 0.5) == 50.0 && stats_quantile_ms(&s, 0.99) == 99.0 && stats_quantile_ms(&s, 1) == 100.0,
        "nearest-rank percentiles");
  stats_free(&s);
}

int selftest_run(void) {
  test_wsutil();
  test_atrium_encoders();
  test_atrium_decoder();
  test_xmpp();
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
