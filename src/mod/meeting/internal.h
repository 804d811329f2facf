/* Inside the meeting module: the privacy policy (privacy_api.c) as the pages
 * and the admin API use it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "conf/atlas.h"
#include "http/http.h"

/* The template directories and the live {RetentionTime} from atlas.xml.
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
