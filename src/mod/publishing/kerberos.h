/* Integrated Windows login: the GSSAPI (Kerberos through SPNEGO) acceptor
 * behind POST /client/v1/login/auto, and the rule that maps a Kerberos
 * principal to a user's windows_account (docs/operations/kerberos.md).
 *
 * The acceptor credential comes from login.kerberos_keytab, acquired per
 * request with gss_acquire_cred_from and a credential store naming the
 * keytab: no process-wide KRB5_KTNAME, so a new keytab path or a rewritten
 * keytab file is used by the next request (the live apply of the setting). Any
 * service principal in the keytab is accepted (HTTP/<host>@REALM for the
 * names clients use to reach the server). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define KERBEROS_TOKEN_MAX (64 * 1024) /* decoded SPNEGO token; AD tickets with PACs are ~12 KB */
#define KERBEROS_NAME_MAX 512

typedef struct kerberos_result {
  char principal[KERBEROS_NAME_MAX]; /* "alice@ATRIUM.TEST" */
  char *reply_b64; /* mutual authentication token for "WWW-Authenticate: Negotiate <...>", or NULL */
} kerberos_result_t;

/* Accepts the base64 token of "Authorization: Negotiate <token>".
 *  0        authenticated; out->principal set
 *  -ENOENT  the keytab cannot be read (err says why and what to do)
 *  -EINVAL  the token is not base64, empty or too large
 *  -EACCES  GSSAPI refused the token (err holds GSSAPI's reason)
 *  -EPROTO  the mechanism wants another round trip (NTLM or a broken
 *           client): only Kerberos in one round is supported
 *  -ENOMEM
 * Release out with kerberos_result_clear. Never logs. */
int kerberos_accept(const char *keytab, const char *token_b64, kerberos_result_t *out, char *err,
                    size_t errlen);
void kerberos_result_clear(kerberos_result_t *out); /* accepts NULL */

/* Whether the keytab can serve logins: readable, a keytab, with at least
 * one key. 0 and the first principal in *principal; -ENOENT (missing or
 * unreadable), -EINVAL (not a keytab), -ENODATA (no keys), each with a
 * sentence in err that says what to do. Reads the file; never logs. */
int kerberos_keytab_check(const char *keytab, char *principal, size_t plen, char *err,
                          size_t errlen);

/* The windows_account spellings that name `principal`, most specific first:
 *   "alice@ATRIUM.TEST"  the principal itself (user principal name form)
 *   "ATRIUM\alice"       NetBIOS form: the realm's first label, a backslash, the name
 * Matching is case-insensitive (Windows account names are). A principal with
 * an instance ("alice/admin@R") or without a realm names no user: 0 is
 * returned. Otherwise the number of spellings written (≤ max). */
size_t kerberos_account_candidates(const char *principal, char out[][KERBEROS_NAME_MAX],
                                   size_t max);

/* Does windows_account name principal under the rule above? */
bool kerberos_account_matches(const char *windows_account, const char *principal);
