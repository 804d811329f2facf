/* libFuzzer target for what the push module reads from outside: a
 * provider's answer body (APNs, FCM, OAuth2, any bytes a middlebox sends),
 * and the key files an administrator pastes (the APNs .p8, the FCM
 * service-account JSON). Besides crashes it checks the contract: a reason
 * is short printable ASCII, a refusal has a sentence. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mod/push/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char buf[64];
  int64_t ts;
  const char *r = push_answer_reason((const char *)data, size, buf, sizeof buf, &ts);
  if (r) {
    if (strlen(r) >= sizeof buf) abort();
    for (const char *p = r; *p; p++)
      if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') abort();
  }
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char err[400];
  err[0] = '\0';
  gnutls_privkey_t k = NULL;
  if (push_es256_key_load(text, &k, err, sizeof err) == 0)
    gnutls_privkey_deinit(k);
  else if (!err[0])
    abort();
  push_fcm_account_t a;
  err[0] = '\0';
  if (push_fcm_account_parse(text, &a, err, sizeof err) != 0 && !err[0]) abort();
  push_fcm_account_clear(&a);
  free(text);
  return 0;
}
