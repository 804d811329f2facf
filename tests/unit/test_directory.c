/* The directory and the domain change against a real store in a temporary
 * directory: name, Windows account, remote address and domain validation,
 * users, imports (JSON and CSV, all or nothing, row and line numbers), client
 * logins, and a domain change with everything it must and must not touch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mod/directory/directory.h"
#include "mod/directory/domain_change.h"
#include "store/sqlite/sqlite.h"
#include "fixture.h"
#include "conf/settings.h"

static int setup(void **state) {
  fixture_t *f = fixture_new("directory", "old.example");
  if (!f) return -1;
  char err[512];
  bool changed;
  if (domain_change_init(f->store, &changed, err, sizeof err) < 0) {
    fprintf(stderr, "setup: %s\n", err);
    fixture_remove(f);
    return -1;
  }
  *state = f;
  return 0;
}

static json_t *parse(const char *text) {
  json_error_t jerr;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
  if (!j) fail_msg("bad test JSON %s: %s", text, jerr.text);
  return j;
}

/* One number from the SQLite file, on a connection of the test's own. */
static int64_t sql_int(fixture_t *f, const char *sql) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", f->dir, STORE_SQLITE_FILE_NAME);
  sqlite3 *db;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

/* ---- pure validation ------------------------------------------------------------------ */

static void test_names(void **state) {
  (void)state;
  validate_error_t e;
  static const char *const good[] = {"alice", "a", "bob.smith", "x_y-z", "a1", "0day",
                                     "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz012345678901"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    assert_int_equal(directory_validate_name(good[i], &e), 0);
  static const char *const bad[] = {"", "Alice", ".a", "a.", "-a", "a-", "a..b", "a b", "a@b",
                                    "ä", "a/b", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789012"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    e.message[0] = '\0';
    assert_int_equal(directory_validate_name(bad[i], &e), -EINVAL);
    assert_true(strlen(e.message) > 10);
  }
  assert_non_null(strstr((directory_validate_name("Alice", &e), e.message), "lower case"));
}

static void test_windows_accounts(void **state) {
  (void)state;
  validate_error_t e;
  char *out = NULL;
  assert_int_equal(directory_validate_windows_account("CORP\\alice", &out, &e), 0);
  assert_string_equal(out, "CORP\\alice");
  free(out);
  assert_int_equal(directory_validate_windows_account("alice@Corp.Example.COM", &out, &e), 0);
  assert_string_equal(out, "alice@corp.example.com");
  free(out);
  assert_int_equal(directory_validate_windows_account("alice@bücher.example", &out, &e), 0);
  assert_string_equal(out, "alice@xn--bcher-kva.example");
  free(out);
  static const char *const bad[] = {"", "alice", "\\alice", "CORP\\", "TOOLONGNETBIOSNAME\\a",
                                    "CORP\\a:b", "a@b", "a@b@c.com", "CORP\\a@b.com",
                                    "CORP\\abcdefghijklmnopqrstu"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(directory_validate_windows_account(bad[i], &out, &e), -EINVAL);
  assert_null(out);
}

static void test_remote_addresses(void **state) {
  (void)state;
  validate_error_t e;
  char *out = NULL;
  assert_int_equal(directory_validate_remote("Bob@Partner.Example", &out, &e), 0);
  assert_string_equal(out, "bob@partner.example");
  free(out);
  static const char *const bad[] = {"", "bob", "@partner.example", "bob@", "bob@localhost",
                                    "b ob@partner.example", "bob@-x.example"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(directory_validate_remote(bad[i], &out, &e), -EINVAL);
}

static void test_fqdn_carry(void **state) {
  (void)state;
  char *out = NULL;
  assert_int_equal(domain_change_carry_fqdn("", "old.com", "new.com", &out), 0);
  assert_null(out); /* blank follows by itself */
  assert_int_equal(domain_change_carry_fqdn("old.com", "old.com", "new.org", &out), 0);
  assert_string_equal(out, "new.org");
  free(out);
  assert_int_equal(domain_change_carry_fqdn("sip.old.com", "old.com", "new.org", &out), 0);
  assert_string_equal(out, "sip.new.org");
  free(out);
  assert_int_equal(domain_change_carry_fqdn("a.b.old.com", "old.com", "new.org", &out), 0);
  assert_null(out);
  assert_int_equal(domain_change_carry_fqdn("xold.com", "old.com", "new.org", &out), 0);
  assert_null(out);
}

/* ---- users and imports --------------------------------------------------------------- */

static void test_user_crud(void **state) {
  fixture_t *f = *state;
  problem_t err = {0};
  json_t *in = parse("{\"name\": \"alice\", \"display_name\": \"Alice Liddell\", "
                     "\"windows_account\": \"CORP\\\\alice\"}");
  json_t *user = NULL;
  assert_int_equal(directory_user_create(f->store, NULL, in, &user, &err), 0);
  assert_string_equal(json_string_value(json_object_get(user, "login")), "alice@old.example");
  assert_string_equal(json_string_value(json_object_get(user, "im_address")), "alice@old.example");
  assert_true(json_is_true(json_object_get(user, "enabled")));
  assert_true(json_is_false(json_object_get(user, "has_password")));
  json_decref(user);
  /* same name, or same Windows account in another case: taken */
  assert_int_equal(directory_user_create(f->store, NULL, in, &user, &err), -EEXIST);
  problem_clear(&err);
  json_decref(in);
  in = parse("{\"name\": \"alice2\", \"windows_account\": \"corp\\\\ALICE\"}");
  assert_int_equal(directory_user_create(f->store, NULL, in, &user, &err), -EEXIST);
  assert_string_equal(json_string_value(json_object_get(json_array_get(err.errors, 0), "key")),
                      "windows_account");
  problem_clear(&err);
  json_decref(in);
  /* invalid fields are all named */
  in = parse("{\"name\": \"Bad Name\", \"windows_account\": \"nope\", \"colour\": 1}");
  assert_int_equal(directory_user_create(f->store, NULL, in, &user, &err), -EINVAL);
  assert_int_equal(json_array_size(err.errors), 3);
  problem_clear(&err);
  json_decref(in);

  assert_int_equal(directory_user_get(f->store, "alice@old.example", &user), 0);
  json_decref(user);
  assert_int_equal(directory_user_get(f->store, "alice@elsewhere.example", &user), -ENOENT);
  assert_int_equal(directory_find_by_windows_account(f->store, "CORP\\ALICE", &user), 0);
  assert_string_equal(json_string_value(json_object_get(user, "name")), "alice");
  json_decref(user);

  json_t *patch = parse("{\"display_name\": null, \"enabled\": false, \"name\": \"alicia\"}");
  assert_int_equal(directory_user_update(f->store, NULL, "alice", patch, &user, &err), 0);
  assert_true(json_is_null(json_object_get(user, "display_name")));
  assert_true(json_is_false(json_object_get(user, "enabled")));
  assert_string_equal(json_string_value(json_object_get(user, "name")), "alicia");
  json_decref(user);
  json_decref(patch);

  json_t *page = NULL;
  assert_int_equal(directory_user_list(f->store, "LICI", 0, 10, &page), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 1);
  json_decref(page);
  assert_int_equal(directory_user_list(f->store, "%", 0, 10, &page), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 0); /* % is literal */
  json_decref(page);
  assert_int_equal(directory_user_delete(f->store, NULL, "alicia"), 0);
  assert_int_equal(directory_user_delete(f->store, NULL, "alicia"), -ENOENT);
}

static int import_text(fixture_t *f, directory_import_kind_t kind, const char *text, bool csv,
                       problem_t *err) {
  directory_batch_t *b = NULL;
  int r = directory_import_parse(kind, text, strlen(text), csv, &b, err);
  int64_t n = 0;
  if (r == 0) r = directory_import_apply(f->store, NULL, b, &n, err);
  if (getenv("TEST_DEBUG") && err->errors) {
    char *t = json_dumps(err->errors, 0);
    fprintf(stderr, "import: %s / %s\n", err->detail, t);
    free(t);
  }
  directory_batch_free(b);
  return r < 0 ? r : (int)n;
}

static json_t *first_error(problem_t *err) { return json_array_get(err->errors, 0); }

static void test_imports(void **state) {
  fixture_t *f = *state;
  problem_t err = {0};
  const char *csv = "\xEF\xBB\xBFName, Display_Name ,windows_account,enabled\r\n"
                    "carol,\"Carol, the \"\"second\"\"\",CORP\\carol,yes\r\n"
                    "\r\n"
                    "dave,\"Dave, Davies\",,false\n"
                    "erin,Erin,,\n";
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_USERS, csv, true, &err), 3);
  json_t *user = NULL;
  assert_int_equal(directory_user_get(f->store, "carol", &user), 0);
  assert_string_equal(json_string_value(json_object_get(user, "display_name")),
                      "Carol, the \"second\"");
  json_decref(user);
  assert_int_equal(directory_user_get(f->store, "dave", &user), 0);
  assert_true(json_is_false(json_object_get(user, "enabled")));
  json_decref(user);

  /* a bad row names its row, line and field; nothing of the batch is written */
  const char *bad = "name,display_name\nfrank,Frank\ngina,Gina\n\"Bad\nName\",x\n";
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_USERS, bad, true, &err), -EINVAL);
  json_t *e = first_error(&err);
  assert_int_equal(json_integer_value(json_object_get(e, "row")), 3);
  assert_int_equal(json_integer_value(json_object_get(e, "line")), 4);
  assert_string_equal(json_string_value(json_object_get(e, "key")), "name");
  problem_clear(&err);
  assert_int_equal(directory_user_get(f->store, "frank", &user), -ENOENT);

  /* a duplicate with the store: refused at that row, the rows before rolled back */
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_USERS,
                               "[{\"name\": \"frank\"}, {\"name\": \"carol\"}]", false, &err),
                   -EINVAL);
  assert_int_equal(json_integer_value(json_object_get(first_error(&err), "row")), 2);
  problem_clear(&err);
  assert_int_equal(directory_user_get(f->store, "frank", &user), -ENOENT);

  /* malformed CSV: an unknown column, an unclosed quote, a field count */
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_USERS, "name,shoe\nx,1\n", true, &err), -EINVAL);
  assert_string_equal(json_string_value(json_object_get(first_error(&err), "key")), "shoe");
  problem_clear(&err);
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_USERS, "name\n\"open\n", true, &err), -EINVAL);
  problem_clear(&err);
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_USERS, "name,display_name\nx\n", true, &err),
                   -EINVAL);
  assert_int_equal(json_integer_value(json_object_get(first_error(&err), "line")), 2);
  problem_clear(&err);
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_USERS, "{\"csv\": \"name\\nhugo\\n\"}", false,
                               &err), 1);

  /* subscriptions: by name or login name; unknown users and duplicates refused */
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_SUBSCRIPTIONS,
                               "user,remote,state\ncarol,bob@partner.example,active\n"
                               "dave@old.example,Eve@Partner.Example,pending\n",
                               true, &err),
                   2);
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_SUBSCRIPTIONS,
                               "[{\"user\": \"nobody\", \"remote\": \"a@b.example\"}]", false, &err),
                   -EINVAL);
  assert_non_null(strstr(json_string_value(json_object_get(first_error(&err), "message")),
                         "no user"));
  problem_clear(&err);
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_SUBSCRIPTIONS,
                               "[{\"user\": \"carol\", \"remote\": \"bob@partner.example\"}]",
                               false, &err),
                   -EINVAL);
  problem_clear(&err);
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_SUBSCRIPTIONS,
                               "[{\"user\": \"carol\", \"remote\": \"x@y.example\", "
                               "\"state\": \"weird\"}]", false, &err),
                   -EINVAL);
  problem_clear(&err);
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_CONTACTS,
                               "[{\"user\": \"carol\", \"remote\": \"x@y.example\", "
                               "\"display_name\": \"X\"}]", false, &err),
                   1);
  json_t *page = NULL;
  assert_int_equal(directory_subscription_list(f->store, "carol", NULL, 0, 10, &page), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 1);
  json_decref(page);
  assert_int_equal(directory_contact_list(f->store, NULL, 0, 10, &page), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 1);
  json_decref(page);
}

/* ---- logins and the domain change ----------------------------------------------------- */

static int change(fixture_t *f, const char *domain, bool dry, domain_change_result_t *res) {
  (void)f;
  domain_change(f->store, domain, dry, "tester", res);
  return res->problem.status ? (int)res->problem.status : 200;
}

static void test_domain_change_refusals(void **state) {
  fixture_t *f = *state;
  domain_change_result_t res;
  assert_int_equal(change(f, "not a domain", true, &res), 422);
  assert_string_equal(json_string_value(json_object_get(json_array_get(res.problem.errors, 0), "key")),
                      "domain");
  domain_change_result_clear(&res);
  assert_int_equal(change(f, "intranet", true, &res), 422);
  domain_change_result_clear(&res);
  assert_int_equal(change(f, "OLD.example.", true, &res), 422); /* the same, normalised */
  assert_non_null(strstr(res.problem.detail, "already"));
  domain_change_result_clear(&res);

  settings_outcome_t so;
  json_t *on = parse("{\"federation.enabled\": true}");
  settings_change(on, SETTINGS_OP_PATCH, "tester", -1, &so);
  assert_int_equal(outcome_status(&so), 200);
  settings_outcome_clear(&so);
  json_decref(on);
  assert_int_equal(change(f, "new.example", false, &res), 409);
  assert_non_null(strstr(res.problem.detail, "Deactivate federation"));
  domain_change_result_clear(&res);
  assert_int_equal(change(f, "new.example", true, &res), 409);
  domain_change_result_clear(&res);
  settings_snapshot_t *snap = settings_acquire();
  assert_string_equal(settings_string(snap, "domain.name"), "old.example");
  settings_release(snap);

  /* IDN: stored as A-labels */
  on = parse("{\"federation.enabled\": false}");
  settings_change(on, SETTINGS_OP_PATCH, "tester", -1, &so);
  settings_outcome_clear(&so);
  json_decref(on);
  assert_int_equal(change(f, "Bücher.Example", false, &res), 200);
  assert_string_equal(json_string_value(json_object_get(res.document, "new_domain")),
                      "xn--bcher-kva.example");
  domain_change_result_clear(&res);
  snap = settings_acquire();
  assert_string_equal(settings_string(snap, "domain.name"), "xn--bcher-kva.example");
  settings_release(snap);
}

static void test_login_and_domain_change(void **state) {
  fixture_t *f = *state;
  problem_t err = {0};
  json_t *in = parse("{\"name\": \"alice\", \"password\": \"wonderland-1\", "
                     "\"windows_account\": \"CORP\\\\alice\"}");
  json_t *user = NULL;
  assert_int_equal(directory_user_create(f->store, NULL, in, &user, &err), 0);
  json_decref(user);
  json_decref(in);
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_USERS,
                               "[{\"name\": \"bob\"}, {\"name\": \"carl\"}]", false, &err), 2);
  assert_int_equal(import_text(f, DIRECTORY_IMPORT_SUBSCRIPTIONS,
                               "[{\"user\": \"alice\", \"remote\": \"x@partner.example\"},"
                               " {\"user\": \"bob\", \"remote\": \"y@partner.example\", "
                               "\"state\": \"pending\"}]", false, &err), 2);
  settings_outcome_t so;
  json_t *fq = parse("{\"federation.fqdn\": \"sip.old.example\"}");
  settings_change(fq, SETTINGS_OP_PATCH, "tester", -1, &so);
  assert_int_equal(outcome_status(&so), 200);
  settings_outcome_clear(&so);
  json_decref(fq);

  directory_login_t desk, mob;
  assert_int_equal(directory_login(f->store, "alice@old.example", "wrong-password", NULL, &desk,
                                   &err), -EACCES);
  assert_int_equal(directory_login(f->store, "ALICE@old.example", "wonderland-1", NULL, &desk,
                                   &err), 0);
  assert_string_equal(desk.login, "alice@old.example");
  json_t *dev = parse("{\"id\": \"phone-1\", \"platform\": \"ios\", \"push_token\": \"pt\"}");
  assert_int_equal(directory_login(f->store, "alice@old.example", "wonderland-1", dev, &mob, &err),
                   0);
  json_decref(dev);
  dev = parse("{\"id\": \"phone-1\", \"platform\": \"blackberry\"}");
  directory_login_t bad;
  assert_int_equal(directory_login(f->store, "alice", "wonderland-1", dev, &bad, &err), -EINVAL);
  problem_clear(&err);
  json_decref(dev);
  assert_int_equal(directory_token_user(f->store, mob.token, &user, &err), 0);
  assert_string_equal(json_string_value(json_object_get(json_object_get(user, "device"), "id")),
                      "phone-1");
  json_decref(user);

  domain_change_result_t res;
  assert_int_equal(change(f, "new.example", true, &res), 200);
  json_t *d = res.document;
  assert_true(json_is_true(json_object_get(d, "dry_run")));
  assert_int_equal(json_integer_value(json_object_get(d, "users")), 3);
  assert_int_equal(json_integer_value(json_object_get(d, "mobile_devices")), 1);
  assert_int_equal(json_integer_value(json_object_get(d, "subscriptions")), 2);
  json_t *s0 = json_array_get(json_object_get(d, "samples"), 0);
  assert_string_equal(json_string_value(json_object_get(s0, "old")), "alice@old.example");
  assert_string_equal(json_string_value(json_object_get(s0, "new")), "alice@new.example");
  json_t *fd = json_object_get(d, "federation_fqdn");
  assert_string_equal(json_string_value(json_object_get(fd, "old")), "sip.old.example");
  assert_string_equal(json_string_value(json_object_get(fd, "new")), "sip.new.example");
  json_t *preview = json_deep_copy(d);
  domain_change_result_clear(&res);
  /* the dry run changed nothing */
  assert_int_equal(sql_int(f, "SELECT count(*) FROM domains"), 1);

  assert_int_equal(change(f, "new.example", false, &res), 200);
  json_object_set_new(preview, "dry_run", json_false());
  assert_true(json_equal(preview, res.document)); /* the preview is what happened */
  json_decref(preview);
  domain_change_result_clear(&res);
  settings_snapshot_t *snap = settings_acquire();
  assert_string_equal(settings_string(snap, "domain.name"), "new.example");
  assert_string_equal(settings_string(snap, "federation.fqdn"), "sip.new.example");
  settings_release(snap);
  assert_int_equal(sql_int(f, "SELECT count(*) FROM audit WHERE key = 'domain.change' AND "
                              "old = 'old.example' AND new LIKE 'new.example (3 users%'"), 1);

  /* old login name: refused, naming the new one */
  directory_login_t again;
  assert_int_equal(directory_login(f->store, "alice@old.example", "wonderland-1", NULL, &again,
                                   &err), -ESTALE);
  assert_string_equal(again.login, "alice@new.example");
  assert_null(again.token);
  /* ... but not to someone without the password */
  assert_int_equal(directory_login(f->store, "alice@old.example", "guess-guess", NULL, &again,
                                   &err), -EACCES);
  assert_int_equal(directory_login(f->store, "alice@new.example", "wonderland-1", NULL, &again,
                                   &err), 0);
  directory_login_clear(&again);
  /* the mobile token is refused with "set up the login again"; the desktop one works */
  assert_int_equal(directory_token_user(f->store, mob.token, &user, &err), -ESTALE);
  assert_non_null(strstr(err.detail, "set up the login again"));
  assert_non_null(strstr(err.detail, "alice@new.example"));
  problem_clear(&err);
  assert_int_equal(directory_token_user(f->store, desk.token, &user, &err), 0);
  assert_string_equal(json_string_value(json_object_get(user, "login")), "alice@new.example");
  json_decref(user);
  /* Windows login maps by account, whatever the domain */
  assert_int_equal(directory_find_by_windows_account(f->store, "CORP\\alice", &user), 0);
  json_decref(user);
  assert_int_equal(directory_login_windows(f->store, "alice", &again, &err), 0);
  assert_string_equal(again.login, "alice@new.example");
  directory_login_clear(&again);
  /* every subscription is to be created again */
  json_t *page = NULL;
  assert_int_equal(directory_subscription_list(f->store, NULL, "to-be-recreated", 0, 10, &page), 0);
  assert_int_equal(json_integer_value(json_object_get(page, "total")), 2);
  assert_string_equal(json_string_value(json_object_get(
                          json_array_get(json_object_get(page, "subscriptions"), 0), "im_address")),
                      "alice@new.example");
  json_decref(page);
  /* a second preview counts no mobile device: the one there is already outdated */
  assert_int_equal(change(f, "third.example", true, &res), 200);
  assert_int_equal(json_integer_value(json_object_get(res.document, "mobile_devices")), 0);
  domain_change_result_clear(&res);
  directory_login_clear(&desk);
  directory_login_clear(&mob);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, fixture_teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_windows_accounts),
      cmocka_unit_test(test_remote_addresses),
      cmocka_unit_test(test_fqdn_carry),
      T(test_user_crud),
      T(test_imports),
      T(test_domain_change_refusals),
      T(test_login_and_domain_change),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
