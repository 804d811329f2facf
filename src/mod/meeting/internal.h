/* Inside the meeting module. Four parts:
 *
 *   privacy_api.c  the privacy policy as the pages and the admin API use it;
 *   api.c          the REST side on the HTTP threads: creating meetings,
 *                  invitations, tickets for users' WebSockets;
 *   room.c         every running meeting (participants, lobby, chat, host
 *                  controls), on the runtime's event loop: the one place
 *                  that holds meeting state, so that a cluster can fence it;
 *   share.c        screen sharing: the presenter's framebuffer, the tiers
 *                  encoded on the CPU pool, each viewer's sender.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/atlas.h"
#include "http/http.h"
#include "store/store.h"

/* The privacy templates and the live {RetentionTime} from atlas.xml.
 * 0 or -ENOMEM. */
int meeting_privacy_init(const atlas_config_t *atlas);
void meeting_privacy_shutdown(void);
/* The privacy policy in `lang` (a privacy_lang_t) as it is shown now: an
 * HTML fragment, *html malloc'd. 0 or a negative errno (logged here). */
int meeting_privacy_render(int lang, char **html, size_t *len);
/* Whether a template in force still holds the shipped "[Operator: ...]" /
 * "[Betreiber: ...]" lines: guests would read them. false before init.
 * *which gets the file names ("DataPrivacyStatement_EN.html, ..."). */
bool meeting_privacy_unedited(char *which, size_t len);
/* GET /api/v1/privacy, GET /api/v1/privacy/preview */
enum MHD_Result meeting_privacy_info(http_request_t *req);
enum MHD_Result meeting_privacy_preview(http_request_t *req);

/* ---- limits --------------------------------------------------------------------------------- */

#define MEETING_NAME_MAX 100        /* a guest's name, bytes */
#define MEETING_CHAT_MAX 2000       /* a chat message, bytes */
#define MEETING_CHAT_RATE 5         /* per second and participant ... */
#define MEETING_CHAT_BURST 10       /* ... with this many at once */
#define MEETING_INVITEES_MAX 100
#define MEETING_PARTICIPANTS_MAX 200 /* per meeting, lobby included */
#define MEETING_TICKET_SECONDS 60
#define MEETING_IDLE_SECONDS 120
#define MEETING_MAX_MESSAGE (8 * 1024 * 1024) /* a region; larger closes with 1009 */
#define MEETING_MAX_QUEUED (8 * 1024 * 1024)

/* ---- the REST side (api.c) ---------------------------------------------------------------- */

void meeting_api_init(store_t *store);
void meeting_api_shutdown(void);
enum MHD_Result meeting_api_create(http_request_t *req);
enum MHD_Result meeting_api_list(http_request_t *req);
enum MHD_Result meeting_api_get(http_request_t *req);
enum MHD_Result meeting_api_ticket(http_request_t *req);
/* The join link of meeting `id` under the effective meeting.url. */
void meeting_join_url(const char *id, char *out, size_t len);
/* Whether the effective meeting.url is https. */
bool meeting_url_encrypted(void);
bool meeting_enabled(void);
/* Consumes a ticket of meeting `id`: true and the user's name. */
bool meeting_ticket_take(const char *ticket, const char *id, char user[65]);

/* ---- profile pictures (pictures.c) ------------------------------------------------------- */

void meeting_pictures_init(void);
/* Whether a participant list for a guest (or a user) shows pictures now:
 * directory.users_permissions holds Authenticated (or, for a user, Users). */
bool meeting_pictures_shown(bool guest);
/* The picture URL of the user `user` (whose picture has the entity tag
 * `etag`, "" for none) in a list for a guest or a user: a new JSON string
 * relative to the meeting page, or null for none. The caller checked
 * meeting_pictures_shown for whom the list is. */
json_t *meeting_picture_url(const char *meeting, const char *user, const char *etag, bool guest);
/* GET /webmeeting/pictures/{user} */
enum MHD_Result meeting_picture(http_request_t *req);

/* ---- the rooms (room.c, loop thread unless said) --------------------------------------------- */

/* What the WebSocket handler learnt on the HTTP thread, for the room. */
typedef struct meeting_join {
  store_meeting_t meeting;
  char user[65];          /* a user's name, "" for a guest */
  char display_name[257]; /* the user's, "" for a guest */
  char picture[STORE_PICTURE_ETAG_MAX + 1]; /* the user's picture's entity tag, "" for none */
  bool encrypted;         /* the meeting URL is https */
  long max_rate_mbps;     /* the QoS policy's cap of this connection, 0: none */
  bool own_socket;        /* the socket is the viewer's (no TLS relay, no proxy) */
} meeting_join_t;

int meeting_rooms_init(store_t *store);
void meeting_rooms_shutdown(void);
/* GET /webmeeting/ws (HTTP thread). */
enum MHD_Result meeting_ws(http_request_t *req);
/* On the loop: ends every running meeting with `reason`. */
void meeting_rooms_end_all(void *reason);
/* On the loop: closes every meeting socket (the server stops). */
void meeting_rooms_close_all(void *arg);
size_t meeting_sockets(void); /* any thread */
void meeting_rooms_draining(bool on);
/* Counters for /metrics (any thread). */
typedef struct meeting_counters {
  uint64_t rooms, participants, chats, errors;
} meeting_counters_t;
void meeting_counters(meeting_counters_t *out);
