/* The GSSAPI acceptor and the principal → windows_account rule. */
#include "mod/publishing/kerberos.h"

#include <errno.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <krb5.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* GSSAPI's own words for a failure: "major: minor", each a chain of messages. */
static void gss_reason(OM_uint32 major, OM_uint32 minor, char *buf, size_t len) {
  size_t pos = 0;
  buf[0] = '\0';
  for (int pass = 0; pass < 2; pass++) {
    OM_uint32 code = pass ? minor : major, ctx = 0;
    int type = pass ? GSS_C_MECH_CODE : GSS_C_GSS_CODE;
    if (pass && !minor) break;
    for (int i = 0; i < 8; i++) { /* a chain has a handful of messages at most */
      OM_uint32 min2;
      gss_buffer_desc msg = GSS_C_EMPTY_BUFFER;
      if (GSS_ERROR(gss_display_status(&min2, code, type, GSS_C_NO_OID, &ctx, &msg))) break;
      int n = snprintf(buf + pos, len - pos, "%s%.*s", pos ? "; " : "", (int)msg.length,
                       (const char *)msg.value);
      gss_release_buffer(&min2, &msg);
      if (n < 0 || (size_t)n >= len - pos) return;
      pos += (size_t)n;
      if (!ctx) break;
    }
  }
}

int kerberos_accept(const char *keytab, const char *token_b64, kerberos_result_t *out, char *err,
                    size_t errlen) {
  memset(out, 0, sizeof *out);
  err[0] = '\0';
  if (!keytab || !keytab[0]) {
    snprintf(err, errlen, "No Kerberos keytab is configured; set login.kerberos_keytab.");
    return -ENOENT;
  }
  if (access(keytab, R_OK) != 0) {
    snprintf(err, errlen,
             "The Kerberos keytab %s cannot be read (%s); check login.kerberos_keytab and the "
             "file's permissions for the user atriumd runs as.",
             keytab, strerror(errno));
    return -ENOENT;
  }
  size_t b64len = token_b64 ? strlen(token_b64) : 0;
  if (b64len == 0 || b64len > KERBEROS_TOKEN_MAX / 3 * 4 + 4) {
    snprintf(err, errlen, "The Negotiate token is empty or too large.");
    return -EINVAL;
  }
  unsigned char *raw = malloc(KERBEROS_TOKEN_MAX);
  if (!raw) return -ENOMEM;
  size_t rawlen = 0;
  if (sodium_base642bin(raw, KERBEROS_TOKEN_MAX, token_b64, b64len, NULL, &rawlen, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      rawlen == 0) {
    free(raw);
    snprintf(err, errlen, "The Negotiate token is not valid base64.");
    return -EINVAL;
  }

  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  gss_ctx_id_t gctx = GSS_C_NO_CONTEXT;
  gss_name_t src = GSS_C_NO_NAME;
  gss_buffer_desc in = {.length = rawlen, .value = raw}, reply = GSS_C_EMPTY_BUFFER;
  gss_buffer_desc name = GSS_C_EMPTY_BUFFER;
  OM_uint32 major, minor = 0;
  int r = 0;

  /* The keytab travels with this credential only (a credential store,
   * RFC 7546-style MIT extension): no process-wide KRB5_KTNAME to race on. */
  gss_key_value_element_desc kv = {.key = "keytab", .value = keytab};
  gss_key_value_set_desc cstore = {.count = 1, .elements = &kv};
  major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                GSS_C_ACCEPT, &cstore, &cred, NULL, NULL);
  if (GSS_ERROR(major)) {
    char why[512];
    gss_reason(major, minor, why, sizeof why);
    snprintf(err, errlen, "The Kerberos keytab %s cannot be used: %s.", keytab, why);
    r = -ENOENT;
    goto done;
  }
  major = gss_accept_sec_context(&minor, &gctx, cred, &in, GSS_C_NO_CHANNEL_BINDINGS, &src, NULL,
                                 &reply, NULL, NULL, NULL);
  if (major == GSS_S_CONTINUE_NEEDED) {
    snprintf(err, errlen,
             "The client offered a mechanism that needs more than one round trip (NTLM?); only "
             "Kerberos is supported.");
    r = -EPROTO;
    goto done;
  }
  if (GSS_ERROR(major)) {
    char why[512];
    gss_reason(major, minor, why, sizeof why);
    snprintf(err, errlen, "%s", why);
    r = -EACCES;
    goto done;
  }
  major = gss_display_name(&minor, src, &name, NULL);
  if (GSS_ERROR(major) || name.length == 0 || name.length >= sizeof out->principal ||
      memchr(name.value, 0, name.length)) {
    snprintf(err, errlen, "The client's Kerberos name cannot be read.");
    r = -EACCES;
    goto done;
  }
  memcpy(out->principal, name.value, name.length);
  out->principal[name.length] = '\0';
  if (reply.length > 0 && reply.length < KERBEROS_TOKEN_MAX) {
    size_t n = sodium_base64_ENCODED_LEN(reply.length, sodium_base64_VARIANT_ORIGINAL);
    out->reply_b64 = malloc(n);
    if (out->reply_b64)
      sodium_bin2base64(out->reply_b64, n, reply.value, reply.length,
                        sodium_base64_VARIANT_ORIGINAL);
  }

done:
  gss_release_buffer(&minor, &name);
  gss_release_buffer(&minor, &reply);
  gss_release_name(&minor, &src);
  if (gctx != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &gctx, GSS_C_NO_BUFFER);
  if (cred != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &cred);
  free(raw);
  return r;
}

void kerberos_result_clear(kerberos_result_t *out) {
  if (!out) return;
  free(out->reply_b64);
  out->reply_b64 = NULL;
}

size_t kerberos_account_candidates(const char *principal, char out[][KERBEROS_NAME_MAX],
                                   size_t max) {
  if (!principal || max == 0) return 0;
  const char *at = strrchr(principal, '@');
  if (!at || at == principal || !at[1]) return 0;
  size_t namelen = (size_t)(at - principal);
  /* An escaped '@' or '/' in the name, or an instance: not a user principal. */
  if (memchr(principal, '/', namelen) || memchr(principal, '\\', namelen)) return 0;
  const char *realm = at + 1;
  size_t n = 0;
  if (strlen(principal) < KERBEROS_NAME_MAX) snprintf(out[n++], KERBEROS_NAME_MAX, "%s", principal);
  size_t label = strcspn(realm, ".");
  if (n < max && label + 1 + namelen < KERBEROS_NAME_MAX)
    snprintf(out[n++], KERBEROS_NAME_MAX, "%.*s\\%.*s", (int)label, realm, (int)namelen,
             principal);
  return n;
}

bool kerberos_account_matches(const char *windows_account, const char *principal) {
  char cands[2][KERBEROS_NAME_MAX];
  size_t n = kerberos_account_candidates(principal, cands, 2);
  for (size_t i = 0; i < n; i++)
    if (windows_account && strcasecmp(windows_account, cands[i]) == 0) return true;
  return false;
}

int kerberos_keytab_check(const char *keytab, char *principal, size_t plen, char *err,
                          size_t errlen) {
  principal[0] = '\0';
  if (!keytab || !keytab[0]) {
    snprintf(err, errlen,
             "No Kerberos keytab is set (login.kerberos_keytab): automatic login cannot work. "
             "Export the service key of HTTP/<host> to a keytab and enter its path.");
    return -ENOENT;
  }
  if (access(keytab, R_OK) != 0) {
    int e = errno;
    snprintf(err, errlen,
             "The Kerberos keytab %s cannot be read (%s): automatic login cannot work. %s", keytab,
             strerror(e),
             e == ENOENT ? "Check the path." : "Let the user atriumd runs as read it (mode 0640, "
                                               "group atrium).");
    return -ENOENT;
  }
  krb5_context ctx;
  if (krb5_init_context(&ctx) != 0) {
    snprintf(err, errlen, "Kerberos cannot start (krb5_init_context failed).");
    return -ENOMEM;
  }
  char name[4200];
  snprintf(name, sizeof name, "FILE:%s", keytab);
  krb5_keytab kt;
  krb5_kt_cursor cur;
  krb5_keytab_entry entry;
  int r = -EINVAL;
  if (krb5_kt_resolve(ctx, name, &kt) == 0) {
    krb5_error_code code = krb5_kt_start_seq_get(ctx, kt, &cur);
    if (code == 0) {
      if (krb5_kt_next_entry(ctx, kt, &entry, &cur) == 0) {
        char *text = NULL;
        if (krb5_unparse_name(ctx, entry.principal, &text) == 0) {
          snprintf(principal, plen, "%s", text);
          krb5_free_unparsed_name(ctx, text);
        }
        krb5_free_keytab_entry_contents(ctx, &entry);
        r = 0;
      } else {
        r = -ENODATA;
      }
      krb5_kt_end_seq_get(ctx, kt, &cur);
    }
    krb5_kt_close(ctx, kt);
  }
  krb5_free_context(ctx);
  if (r == -EINVAL)
    snprintf(err, errlen,
             "%s is not a Kerberos keytab: automatic login cannot work. Export the service key "
             "with ktpass (Windows) or kadmin ktadd (MIT) again.",
             keytab);
  else if (r == -ENODATA)
    snprintf(err, errlen,
             "The Kerberos keytab %s holds no keys: automatic login cannot work. Export the "
             "service key of HTTP/<host> into it.",
             keytab);
  return r;
}
