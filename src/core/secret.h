/* Secrets at rest: libsodium secretbox (XSalsa20-Poly1305) with a 32-byte key
 * kept in <data_dir>/secret.key (mode 0600, created at first start).
 * Sealed text is "sbox1:" + base64(nonce || ciphertext), so a later key
 * rotation can tell versions apart. Password hashing (Argon2id) lives here
 * too: both are the one place libsodium is used. No function logs. */
#pragma once

#include <stddef.h>

typedef struct secret_key secret_key_t;

#define SECRET_KEY_FILE "secret.key"
#define SECRET_SEALED_PREFIX "sbox1:"

/* Loads the key, creating it (0600) when absent. Refuses a key file that is
 * readable by group or others, or of the wrong size, with a sentence in err. */
int secret_key_open(const char *data_dir, secret_key_t **out, char *err, size_t errlen);
void secret_key_close(secret_key_t *k); /* accepts NULL; wipes the key */

/* *sealed is malloc'd. */
int secret_seal(const secret_key_t *k, const char *plain, char **sealed);
/* -EINVAL for text that is not sealed with this key (tampered, other key). *plain malloc'd. */
int secret_unseal(const secret_key_t *k, const char *sealed, char **plain);

/* Argon2id (crypto_pwhash_str, interactive limits). *hash malloc'd. */
int secret_password_hash(const char *password, char **hash);
/* 0 when the password matches, -EACCES when not, -EINVAL for a malformed hash. */
int secret_password_verify(const char *hash, const char *password);

/* Random token: `bytes` random bytes as URL-safe base64 without padding. *out malloc'd. */
int secret_random_token(size_t bytes, char **out);
/* Hex SHA-256 of s into out[65]. */
void secret_sha256_hex(const char *s, char out[65]);
