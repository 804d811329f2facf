/* The domain change: see domain_change.h. */
#include "mod/directory/domain_change.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mod/directory/directory.h"
#include "conf/settings.h"
#include "core/validate.h"

int domain_change_init(store_t *store, bool *changed, char *err, size_t errlen) {
  settings_snapshot_t *snap = settings_acquire();
  int r = directory_sync_domain(store, settings_string(snap, "domain.name"), "atriumd", changed);
  if (r < 0)
    snprintf(err, errlen, "Cannot record the domain %s in the directory: %s; check the store "
             "(free space, permissions).", settings_string(snap, "domain.name"),
             store_last_error(store));
  settings_release(snap);
  return r;
}

int domain_change_carry_fqdn(const char *fqdn_value, const char *old_domain,
                             const char *new_domain, char **out) {
  *out = NULL;
  if (!fqdn_value || !*fqdn_value) return 0; /* blank follows the domain by itself */
  if (strcmp(fqdn_value, old_domain) == 0) return (*out = strdup(new_domain)) ? 0 : -ENOMEM;
  size_t vl = strlen(fqdn_value), ol = strlen(old_domain);
  if (vl <= ol + 1 || fqdn_value[vl - ol - 1] != '.' || strcmp(fqdn_value + vl - ol, old_domain))
    return 0;
  size_t label = vl - ol - 1;
  if (memchr(fqdn_value, '.', label)) return 0; /* not a direct sub-domain: left to the rules */
  size_t len = label + 1 + strlen(new_domain) + 1;
  if (!(*out = malloc(len))) return -ENOMEM;
  snprintf(*out, len, "%.*s.%s", (int)label, fqdn_value, new_domain);
  return 0;
}

void domain_change_result_clear(domain_change_result_t *r) {
  if (!r) return;
  problem_clear(&r->problem);
  json_decref(r->document);
  r->document = NULL;
}

static const char federation_on[] =
    "Federation is enabled. Deactivate federation globally first (set federation.enabled to "
    "false: atriumctl set federation.enabled=false, or on the System settings page), then change "
    "the domain, and switch federation on again afterwards.";

typedef struct txn_ctx {
  const char *old_domain, *new_domain, *actor;
  const char *fqdn_old, *fqdn_new;
  directory_domain_counts_t counts;
} txn_ctx_t;

/* Runs inside the settings transaction, after domain.name/federation.fqdn
 * and their audit entries: counts what changes, advances the directory's
 * domain generation and writes the operation's own audit entry. */
static int in_txn(store_txn_t *t, void *vctx, problem_t *p) {
  txn_ctx_t *c = vctx;
  /* The change lock is held: this is the snapshot the change replaces, and
   * nobody can switch federation on until the commit. */
  settings_snapshot_t *snap = settings_acquire();
  bool federation = settings_bool(snap, "federation.enabled");
  settings_release(snap);
  if (federation) {
    problem_add_error(p, "federation.enabled", "Must be false while the domain changes.");
    return problem_set(p, 409, "federation-enabled", "Deactivate federation first", "%s",
                       federation_on);
  }
  directory_domain_counts_clear(&c->counts);
  int r = directory_domain_count(t, c->new_domain, DOMAIN_CHANGE_SAMPLES, &c->counts);
  if (r == 0) r = directory_domain_advance(t, c->counts.generation, c->new_domain, c->actor);
  if (r == 0) {
    char summary[700];
    snprintf(summary, sizeof summary,
             "%s (%" PRId64 " users renamed, %" PRId64 " mobile devices to set up again, %" PRId64
             " federation subscriptions to create again; federation.fqdn %s -> %s)",
             c->new_domain, c->counts.users, c->counts.mobile_devices, c->counts.subscriptions,
             c->fqdn_old, c->fqdn_new);
    store_audit_entry_t e = {.action = "domain.change", .actor = c->actor, .key = "domain.change",
                             .old_text = c->old_domain, .new_text = summary};
    r = store_audit_record(t, &e);
  }
  if (r < 0 && r != -EAGAIN)
    problem_set(p, 500, "store", "The domain could not be changed",
                "The directory could not be moved to the new domain (%s), so nothing was "
                "changed. Check the server log.",
                r == -ESTALE ? "the domain changed meanwhile" : store_last_error(store_of(t)));
  return r;
}

static json_t *preview_document(bool dry_run, const char *old_domain, const char *new_domain,
                                const directory_domain_counts_t *c, const char *fqdn_old,
                                const char *fqdn_new) {
  return json_pack("{s:b, s:s, s:s, s:I, s:O, s:I, s:I, s:{s:s, s:s}}", "dry_run", dry_run,
                   "old_domain", old_domain, "new_domain", new_domain, "users",
                   (json_int_t)c->users, "samples", c->samples, "mobile_devices",
                   (json_int_t)c->mobile_devices, "subscriptions", (json_int_t)c->subscriptions,
                   "federation_fqdn", "old", fqdn_old, "new", fqdn_new);
}

/* One read transaction: the numbers belong together. */
static int preview_counts(store_t *store, const char *new_domain, directory_domain_counts_t *c) {
  store_txn_t *t;
  int r = store_read_begin(store, "preview the domain change", &t);
  if (r < 0) return r;
  r = directory_domain_count(t, new_domain, DOMAIN_CHANGE_SAMPLES, c);
  store_read_end(t);
  return r;
}

int domain_change(store_t *store, const char *domain, bool dry_run, const char *actor,
                  domain_change_result_t *out) {
  memset(out, 0, sizeof *out);
  problem_t *p = &out->problem;
  char *new_domain = NULL, *carried = NULL;
  validate_error_t verr;
  if (!domain || validate_host(domain, HOST_TWO_LABELS, &new_domain, &verr) != 0) {
    problem_add_error(p, "domain", "%s", domain ? verr.message : "Is required: the new domain.");
    return problem_set(p, 422, "validation", "Invalid domain",
                       "The new domain is not valid; nothing was changed.");
  }

  settings_snapshot_t *snap = settings_acquire();
  char old_domain[256], fqdn_old[256], fqdn_raw[256];
  snprintf(old_domain, sizeof old_domain, "%s", settings_string(snap, "domain.name"));
  snprintf(fqdn_old, sizeof fqdn_old, "%s", settings_string(snap, "federation.fqdn"));
  /* The stored value, not the effective one: blank means "follow the domain". */
  json_t *exported = settings_export(snap);
  const char *raw = json_string_value(
      json_object_get(json_object_get(exported, "settings"), "federation.fqdn"));
  snprintf(fqdn_raw, sizeof fqdn_raw, "%s", raw ? raw : "");
  json_decref(exported);
  bool federation = settings_bool(snap, "federation.enabled");
  settings_release(snap);

  int rc = -1;
  if (federation) {
    problem_add_error(p, "federation.enabled", "Must be false while the domain changes.");
    problem_set(p, 409, "federation-enabled", "Deactivate federation first", "%s", federation_on);
    goto done;
  }
  if (strcmp(new_domain, old_domain) == 0) {
    problem_add_error(p, "domain", "Is already the domain of this server (%s); nothing to change.",
                      old_domain);
    problem_set(p, 422, "validation", "Same domain",
                "%s is already the domain of this server; give a different domain.", old_domain);
    goto done;
  }
  if (domain_change_carry_fqdn(fqdn_raw, old_domain, new_domain, &carried) < 0) goto oom;
  const char *fqdn_new = carried ? carried : fqdn_raw[0] ? fqdn_raw : new_domain;

  if (dry_run) {
    directory_domain_counts_t c = {0};
    int r = preview_counts(store, new_domain, &c);
    if (r < 0) {
      directory_domain_counts_clear(&c);
      problem_set(p, 500, "store", "The preview could not be made",
                  "Reading the directory failed: %s. Check the server log.",
                  store_last_error(store));
      goto done;
    }
    out->document = preview_document(true, old_domain, new_domain, &c, fqdn_old, fqdn_new);
    directory_domain_counts_clear(&c);
    if (!out->document) goto oom;
    rc = 0;
    goto done;
  }

  json_t *changes = json_pack("{s:s}", "domain.name", new_domain);
  if (!changes) goto oom;
  if (carried) json_object_set_new(changes, "federation.fqdn", json_string(carried));
  txn_ctx_t ctx = {.old_domain = old_domain, .new_domain = new_domain, .actor = actor,
                   .fqdn_old = fqdn_old, .fqdn_new = fqdn_new};
  settings_outcome_t so;
  settings_change_operation(changes, actor, in_txn, &ctx, &so);
  json_decref(changes);
  if (problem_failed(&so.problem)) {
    *p = so.problem;
    problem_init(&so.problem);
  } else {
    out->document = preview_document(false, old_domain, new_domain, &ctx.counts, fqdn_old,
                                     fqdn_new);
    if (out->document) rc = 0;
  }
  settings_outcome_clear(&so);
  directory_domain_counts_clear(&ctx.counts);
  if (rc == 0 || problem_failed(p)) goto done;

oom:
  problem_set(p, 500, "internal", "Out of memory",
              "The server ran out of memory; nothing was changed.");
done:
  free(new_domain);
  free(carried);
  return rc;
}
