/* Profile pictures in a web meeting. The meeting page shows them with
 * <img> elements, which carry no client token, and guests have none at
 * all: so each picture in a participant list is a URL of its own,
 * /webmeeting/pictures/{user}?meeting=&k=, whose key k is a MAC over the
 * meeting, the user and whom the list was for (a user or a guest) under a
 * secret of this process. Only someone who was sent the list has the URL,
 * only for that meeting while it runs, and the URL is checked against the
 * Users data source's permissions at every request: a guest's URL works
 * only while directory.users_permissions holds Authenticated, a user's
 * while it holds Users or Authenticated. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "mod/cluster/cluster.h"
#include "mod/directory/directory.h"
#include "mod/meeting/internal.h"

static unsigned char secret[crypto_auth_hmacsha256_KEYBYTES];

void meeting_pictures_init(void) { randombytes_buf(secret, sizeof secret); }

static void key_of(const char *meeting, const char *user, bool guest, char out[33]) {
  char msg[STORE_MEETING_ID_MAX + 80];
  snprintf(msg, sizeof msg, "%c\n%s\n%s", guest ? 'g' : 'u', meeting, user);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256(mac, (const unsigned char *)msg, strlen(msg), secret);
  sodium_bin2hex(out, 33, mac, 16);
}

bool meeting_pictures_shown(bool guest) {
  return directory_users_permit("Authenticated") || (!guest && directory_users_permit("Users"));
}

json_t *meeting_picture_url(const char *meeting, const char *user, const char *etag, bool guest) {
  if (!user[0] || !etag[0]) return json_null();
  char key[33], url[STORE_MEETING_ID_MAX + 256];
  key_of(meeting, user, guest, key);
  /* Relative to the meeting page, which works under any published path;
   * v= changes with the picture, so a browser does not show an old one. */
  snprintf(url, sizeof url, "pictures/%s?meeting=%s&k=%s&v=%.16s", user, meeting, key, etag);
  return json_string(url);
}

static enum MHD_Result refuse(http_request_t *req, unsigned status, const char *slug,
                              const char *title, const char *detail) {
  return http_reply_problem(req, status, slug, title, detail, NULL);
}

/* GET /webmeeting/pictures/{user}?meeting=&k= */
enum MHD_Result meeting_picture(http_request_t *req) {
  enum MHD_Result gated;
  if (!cluster_meeting_gate(req, &gated)) return gated;
  if (!meeting_enabled())
    return refuse(req, MHD_HTTP_NOT_FOUND, "meeting_disabled", "Web meetings are off",
                  "Web meetings are not enabled on this server.");
  const char *user = strrchr(http_path(req), '/');
  user = user ? user + 1 : "";
  const char *id = http_query(req, "meeting"), *k = http_query(req, "k");
  if (!id || !*id || strlen(id) > STORE_MEETING_ID_MAX)
    return http_reply_bad_param(req, "meeting", "the meeting's id from its join link");
  if (!k || strlen(k) != 32 || strlen(user) > STORE_USER_NAME_MAX)
    return refuse(req, MHD_HTTP_FORBIDDEN, "picture_key", "Not a picture of this meeting",
                  "This picture address was not given out in this meeting.");
  char as_user[33], as_guest[33];
  key_of(id, user, false, as_user);
  key_of(id, user, true, as_guest);
  bool guest = sodium_memcmp(k, as_guest, 32) == 0;
  if (!guest && sodium_memcmp(k, as_user, 32) != 0)
    return refuse(req, MHD_HTTP_FORBIDDEN, "picture_key", "Not a picture of this meeting",
                  "This picture address was not given out in this meeting.");
  if (!meeting_pictures_shown(guest))
    return refuse(req, MHD_HTTP_FORBIDDEN, "pictures-not-permitted", "Pictures not permitted",
                  guest ? "Guests see no profile pictures: the permissions of the Users data "
                          "source (directory.users_permissions) do not include Authenticated."
                        : "The permissions of the Users data source "
                          "(directory.users_permissions) do not let users see pictures.");
  store_meeting_t m;
  store_txn_t *t;
  int r = store_read_begin(http_store(req), "meeting: picture", &t);
  if (r == 0) {
    r = store_meeting_get(t, id, &m);
    store_read_end(t);
  }
  if (r == -ENOENT || (r == 0 && m.ended_at[0]))
    return refuse(req, MHD_HTTP_NOT_FOUND, "no_meeting", "No such meeting",
                  "The meeting has ended or does not exist.");
  if (r < 0) return http_reply_store_failed(req);
  store_picture_t pic;
  r = directory_picture_get(http_store(req), user, false, &pic);
  if (r == -ENOENT)
    return refuse(req, MHD_HTTP_NOT_FOUND, "no-picture", "No picture",
                  "This participant has no profile picture; show the initials instead.");
  if (r < 0) return http_reply_store_failed(req);
  return directory_reply_picture(req, &pic);
}
