/* Push notifications to the mobile app: APNs and FCM directly, or a Matrix
 * push gateway (docs/operations/push.md). A chat message, a missed call or a
 * meeting invitation for a user whose phone has a push token and who has no
 * client connected is written into a durable outbox in the transaction of
 * the event itself; one sender thread sends the outbox over HTTP/2, through
 * the outbound proxy when mobile.push_use_proxy says so.
 *
 * Routes: PUT /client/v1/device (the app's push token), GET
 * /client/v1/notifications/{id} (what an id_only notification announced),
 * POST /api/v1/push/test (the staged test). */
#pragma once

#include "mod/module.h"

extern const atrium_module_t push_module;
