/* Keeps libcurl from resetting HTTP/2 streams that are already closed.
 *
 * libcurl 7.88 (Debian 12's) sends RST_STREAM(STREAM_CLOSED) when a
 * transfer ends, also for a stream that ended normally: its stream-close
 * handling clears the flag that says the stream is closed before the
 * transfer's end checks it. Every finished stream is then followed by a
 * reset. A server with the rapid-reset protection of CVE-2023-44487
 * (nghttp2 >= 1.57: 1,000 resets, then 33 a second) answers with
 * GOAWAY(INTERNAL_ERROR) after about a thousand streams, so a push sender
 * that keeps one connection busy got a new connection, a new TLS handshake
 * and Apple's one-stream start every ~1,500 notifications, with the streams
 * past the GOAWAY refused and sent again.
 *
 * The fix here is the protocol's own rule (RFC 9113 5.1: nothing but
 * PRIORITY is sent on a closed stream): libcurl sets its nghttp2 callbacks
 * through nghttp2_session_callbacks_set_send_callback, which this file
 * defines in the executable and so comes first (ELF symbol interposition);
 * it sets libcurl's callback as asked and adds a before-frame-send callback
 * that cancels an RST_STREAM(STREAM_CLOSED) whose stream nghttp2 no longer
 * has. A reset of a stream still open (a transfer given up: timeout,
 * shutdown) still goes out; a reset of a request that never left the queue
 * was already handled by nghttp2 when it was submitted (the HEADERS are
 * dropped) and must not reach the server either. libcurl does not set a
 * before-frame-send callback itself (7.88 to 8.x); with a libcurl that no
 * longer resets closed streams this cancels nothing. */
#include <dlfcn.h>
#include <nghttp2/nghttp2.h>
#include <stdatomic.h>

#include "mod/outbound/outbound.h"

static atomic_ullong cancelled;

static int skip_reset_of_closed_stream(nghttp2_session *session, const nghttp2_frame *frame,
                                       void *user_data) {
  (void)user_data;
  if (frame->hd.type == NGHTTP2_RST_STREAM &&
      frame->rst_stream.error_code == NGHTTP2_STREAM_CLOSED &&
      !nghttp2_session_find_stream(session, frame->hd.stream_id)) {
    atomic_fetch_add(&cancelled, 1);
    return NGHTTP2_ERR_CANCEL;
  }
  return 0;
}

typedef void (*set_send_fn)(nghttp2_session_callbacks *, nghttp2_send_callback);

void nghttp2_session_callbacks_set_send_callback(nghttp2_session_callbacks *cbs,
                                                 nghttp2_send_callback send_callback) {
  static _Atomic(set_send_fn) real;
  set_send_fn f = atomic_load(&real);
  if (!f) {
    /* The library's own definition, next in the lookup order after ours. */
    f = (set_send_fn)dlsym(RTLD_NEXT, "nghttp2_session_callbacks_set_send_callback");
    if (!f) return; /* cannot happen while libnghttp2 is linked */
    atomic_store(&real, f);
  }
  f(cbs, send_callback);
  nghttp2_session_callbacks_set_before_frame_send_callback(cbs, skip_reset_of_closed_stream);
}

unsigned long long outbound_h2_resets_cancelled(void) { return atomic_load(&cancelled); }
