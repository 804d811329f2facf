/* Secrets at rest and password hashing: see secret.h. */
#include "core/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX_LEN (sizeof(SECRET_SEALED_PREFIX) - 1)
/* Settings values are small; the cap keeps size arithmetic far from overflow. */
#define SEAL_MAX_PLAIN (16u * 1024 * 1024)
#define TOKEN_MAX_BYTES 1024

struct secret_key {
  unsigned char *key; /* sodium_malloc'd: guarded pages, wiped when freed */
};

/* sodium_init is idempotent and thread-safe, so each entry point calls it
 * rather than relying on the daemon having done so. */
static int init_sodium(void) { return sodium_init() < 0 ? -EIO : 0; }

/* ---- key file ------------------------------------------------------------------ */

static int read_full(int fd, unsigned char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = read(fd, buf + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EIO; /* file shrank between fstat and read */
    done += (size_t)n;
  }
  return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, buf + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    done += (size_t)n;
  }
  return 0;
}

/* Makes the new file's directory entry durable too: a key that vanishes after
 * a power cut would make every sealed secret unreadable. */
static void fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* Writes a new random key; -EEXIST when another process got there first. */
static int create_key(const char *path, const char *dir, unsigned char *key, char *err,
                      size_t errlen) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int e = errno;
    if (e != EEXIST)
      snprintf(err, errlen,
               "cannot create the secret key file %s: %s; check that the data directory exists "
               "and that the user running atriumd may write to it",
               path, strerror(e));
    return -e;
  }
  randombytes_buf(key, crypto_secretbox_KEYBYTES);
  int r = write_full(fd, key, crypto_secretbox_KEYBYTES);
  if (r == 0 && fsync(fd) < 0)
    r = -errno;
  if (close(fd) < 0 && r == 0)
    r = -errno;
  if (r < 0) {
    /* A short key file would be refused at every later start. */
    unlink(path);
    sodium_memzero(key, crypto_secretbox_KEYBYTES);
    snprintf(err, errlen,
             "cannot write the secret key file %s: %s; check that the disk is not full", path,
             strerror(-r));
    return r;
  }
  fsync_dir(dir);
  return 0;
}

static int load_key(const char *path, unsigned char *key, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int e = errno;
    if (e != ENOENT)
      snprintf(err, errlen,
               "cannot open the secret key file %s: %s; check that it is a regular file owned by "
               "the user running atriumd",
               path, strerror(e));
    return -e;
  }
  struct stat st;
  int r = 0;
  if (fstat(fd, &st) < 0) {
    r = -errno;
    snprintf(err, errlen, "cannot read the secret key file %s: %s", path, strerror(-r));
  } else if (!S_ISREG(st.st_mode)) {
    r = -EINVAL;
    snprintf(err, errlen, "the secret key file %s is not a regular file; replace it with the key "
             "file from a backup", path);
  } else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    /* Anyone who can read it can read every stored secret; anyone who can
     * write it can make the server lose them. */
    r = -EPERM;
    snprintf(err, errlen,
             "the secret key file %s is accessible by other users (mode %04o); run: chmod 600 %s",
             path, (unsigned)(st.st_mode & 07777), path);
  } else if (st.st_size != crypto_secretbox_KEYBYTES) {
    r = -EINVAL;
    snprintf(err, errlen,
             "the secret key file %s has %lld bytes instead of %d: it is damaged or not an Atrium "
             "key; restore it from a backup (removing it makes the stored secrets unreadable)",
             path, (long long)st.st_size, (int)crypto_secretbox_KEYBYTES);
  } else if ((r = read_full(fd, key, crypto_secretbox_KEYBYTES)) < 0) {
    snprintf(err, errlen, "cannot read the secret key file %s: %s", path, strerror(-r));
  }
  close(fd);
  return r;
}

int secret_key_open(const char *data_dir, secret_key_t **out, char *err, size_t errlen) {
  *out = NULL;
  if (errlen)
    err[0] = '\0';
  if (init_sodium() < 0) {
    snprintf(err, errlen, "cannot initialise libsodium (no source of random numbers?)");
    return -EIO;
  }
  char path[PATH_MAX];
  int n = snprintf(path, sizeof(path), "%s/%s", data_dir, SECRET_KEY_FILE);
  if (n < 0 || (size_t)n >= sizeof(path)) {
    snprintf(err, errlen, "the data directory path %s is too long", data_dir);
    return -ENAMETOOLONG;
  }
  secret_key_t *k = calloc(1, sizeof(*k));
  if (!k || !(k->key = sodium_malloc(crypto_secretbox_KEYBYTES))) {
    free(k);
    snprintf(err, errlen, "out of memory loading the secret key");
    return -ENOMEM;
  }
  int r = load_key(path, k->key, err, errlen);
  if (r == -ENOENT) {
    r = create_key(path, data_dir, k->key, err, errlen);
    if (r == -EEXIST) /* lost a race with another process: use its key */
      r = load_key(path, k->key, err, errlen);
  }
  if (r < 0) {
    secret_key_close(k);
    return r;
  }
  sodium_mprotect_readonly(k->key);
  *out = k;
  return 0;
}

void secret_key_close(secret_key_t *k) {
  if (!k)
    return;
  sodium_free(k->key); /* zeroes the memory before releasing it; accepts NULL */
  free(k);
}

/* ---- sealing ---------------------------------------------------------------------- */

int secret_seal(const secret_key_t *k, const char *plain, char **sealed) {
  *sealed = NULL;
  if (init_sodium() < 0)
    return -EIO;
  size_t plen = strlen(plain);
  if (plen > SEAL_MAX_PLAIN)
    return -E2BIG;
  size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plen;
  unsigned char *box = malloc(blen);
  if (!box)
    return -ENOMEM;
  randombytes_buf(box, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, plen,
                        box, k->key);
  size_t b64len = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL);
  char *outp = malloc(PREFIX_LEN + b64len);
  if (!outp) {
    free(box);
    return -ENOMEM;
  }
  memcpy(outp, SECRET_SEALED_PREFIX, PREFIX_LEN);
  sodium_bin2base64(outp + PREFIX_LEN, b64len, box, blen, sodium_base64_VARIANT_ORIGINAL);
  free(box);
  *sealed = outp;
  return 0;
}

int secret_unseal(const secret_key_t *k, const char *sealed, char **plain) {
  *plain = NULL;
  if (init_sodium() < 0)
    return -EIO;
  if (strncmp(sealed, SECRET_SEALED_PREFIX, PREFIX_LEN) != 0)
    return -EINVAL;
  const char *b64 = sealed + PREFIX_LEN;
  size_t b64len = strlen(b64);
  if (b64len > sodium_base64_ENCODED_LEN(SEAL_MAX_PLAIN + crypto_secretbox_NONCEBYTES +
                                             crypto_secretbox_MACBYTES,
                                         sodium_base64_VARIANT_ORIGINAL))
    return -EINVAL;
  size_t maxbin = b64len / 4 * 3 + 3;
  unsigned char *box = malloc(maxbin);
  if (!box)
    return -ENOMEM;
  size_t blen = 0;
  /* b64_end NULL: any character outside the alphabet is an error rather than
   * the end of the input, so trailing garbage is refused. */
  if (sodium_base642bin(box, maxbin, b64, b64len, NULL, &blen, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
    free(box);
    return -EINVAL;
  }
  size_t clen = blen - crypto_secretbox_NONCEBYTES;
  size_t plen = clen - crypto_secretbox_MACBYTES;
  char *outp = malloc(plen + 1);
  if (!outp) {
    free(box);
    return -ENOMEM;
  }
  int rc = crypto_secretbox_open_easy((unsigned char *)outp, box + crypto_secretbox_NONCEBYTES,
                                      clen, box, k->key);
  free(box);
  /* An embedded NUL cannot come from secret_seal (it takes C strings); a
   * caller would silently see a shorter secret, so refuse it. */
  if (rc != 0 || memchr(outp, '\0', plen)) {
    sodium_memzero(outp, plen);
    free(outp);
    return -EINVAL;
  }
  outp[plen] = '\0';
  *plain = outp;
  return 0;
}

/* ---- passwords ---------------------------------------------------------------------- */

int secret_password_hash(const char *password, char **hash) {
  *hash = NULL;
  if (init_sodium() < 0)
    return -EIO;
  char buf[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(buf, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                            crypto_pwhash_MEMLIMIT_INTERACTIVE,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    return -ENOMEM; /* the only documented failure: not enough memory */
  *hash = strdup(buf);
  return *hash ? 0 : -ENOMEM;
}

int secret_password_verify(const char *hash, const char *password) {
  if (init_sodium() < 0)
    return -EIO;
  if (strnlen(hash, crypto_pwhash_STRBYTES) >= crypto_pwhash_STRBYTES)
    return -EINVAL;
  /* needs_rehash parses the string without hashing: -1 means malformed, which
   * str_verify would report the same way as a wrong password. */
  if (crypto_pwhash_str_needs_rehash(hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                     crypto_pwhash_MEMLIMIT_INTERACTIVE) < 0)
    return -EINVAL;
  return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0 ? 0 : -EACCES;
}

/* ---- tokens and hashes ---------------------------------------------------------------- */

int secret_random_token(size_t bytes, char **out) {
  *out = NULL;
  if (bytes == 0 || bytes > TOKEN_MAX_BYTES)
    return -EINVAL;
  if (init_sodium() < 0)
    return -EIO;
  unsigned char raw[TOKEN_MAX_BYTES];
  size_t len = sodium_base64_ENCODED_LEN(bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *s = malloc(len);
  if (!s)
    return -ENOMEM;
  randombytes_buf(raw, bytes);
  sodium_bin2base64(s, len, raw, bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, bytes);
  *out = s;
  return 0;
}

void secret_sha256_hex(const char *s, char out[65]) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  (void)init_sodium(); /* SHA-256 needs no initialised state; only CPU feature probing */
  crypto_hash_sha256(digest, (const unsigned char *)s, strlen(s));
  sodium_bin2hex(out, 65, digest, sizeof(digest));
}
