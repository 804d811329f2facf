/* Screen sharing, computed per receiver. See share.h for the contract and
 * docs/meeting.md for what hosts and admins see.
 *
 *   presenter  --regions-->  decode job (CPU pool, one at a time per share)
 *                              the framebuffer is the job's; at the last
 *                              region of a frame it copies it into a frame_t
 *   loop       <--frame---   the newest frame replaces the one before
 *   viewer senders           each picks a tier; a tier of the newest frame
 *                            not encoded yet is encoded once (CPU pool), and
 *                            every viewer of that tier is sent the same bytes
 *
 * A viewer that holds a picture of an earlier frame at a tier of the same
 * size is sent a delta instead: what moved (rows, found by their hashes,
 * delta.h) as copies and what changed as JPEG patches. A delta is encoded
 * once per base frame, frame and tier, and shared by every viewer with that
 * base, so viewers that keep up share one encode; when more than half of
 * the screen changed the whole picture is sent.
 *
 * A viewer's sender sends only when the viewer's socket has nothing queued
 * and fewer than VIEWER_WINDOW frames wait for their acknowledgement, so a
 * slow viewer skips frames: it always gets the newest, and nothing queues
 * up for it. The bandwidth estimate comes from those acknowledgements
 * (sent after decode and paint, with the time that took): it holds behind a
 * reverse proxy and under TLS, where the socket here is not the viewer's. */
#include "mod/meeting/share.h"

#include <errno.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "mod/meeting/screen.h"

#define PENDING_BYTES_MAX (32 * 1024 * 1024) /* regions waiting for the decoder */
#define VIEWER_WINDOW 2          /* frames sent and not yet acknowledged */
#define ACK_TIMEOUT_MS 5000      /* an unacknowledged frame stops counting */
#define MAX_FPS 30
#define STILL_MS 500             /* no new frame this long: the picture stands still */
#define TICK_MS 20
#define SAMPLES 6                /* the estimate: the largest of the last few */
#define LINK_USE 0.85            /* of the estimate, what the frames may take */
#define FPS_GOOD 15              /* a tier is affordable at this rate ... */
#define FPS_POOR 10              /* ... and left below this one */
#define DOWN_DWELL_MS 1000       /* at a tier at least this long before going down */
#define UP_DWELL_MS 5000         /* ... and before going up */
#define UP_HOLD_MS 3000          /* the better tier must stay affordable this long */
#define NOTSENT_LOWAT (16 * 1024)
#define CREDIBLE_BYTES (32 * 1024) /* a frame this large measures a link's rate, not its burst */
#define CREDIBLE_MS 10
#define START_ACKS 2             /* acknowledgements that place a new viewer's tier at once */

static const double tier_ratio[SCREEN_TIERS] = {1.0, 0.64, 0.15, 2.5};
#define COST_WEIGHT 0.3 /* of the newest frame, in a viewer's bytes a frame */

static struct {
  atomic_uint_fast64_t frames, regions, region_errors, encodes[SCREEN_TIERS], sent[SCREEN_TIERS],
      skipped, deltas[SCREEN_TIERS], deltas_sent;
} C;

/* The benchmark's baseline (bench/meeting.sh, ATRIUM_SCREEN_ENCODE=per-viewer):
 * every frame a viewer is sent is encoded for that viewer alone, as servers
 * with an encoder per viewer do, so that the gain of sharing can be
 * measured against it in the same run. Off otherwise. */
static bool per_viewer_encode;

bool share_configure(void) {
  const char *e = getenv("ATRIUM_SCREEN_ENCODE");
  per_viewer_encode = e && strcmp(e, "per-viewer") == 0;
  return per_viewer_encode;
}

void share_counters(share_counters_t *out) {
  out->frames = atomic_load(&C.frames);
  out->regions = atomic_load(&C.regions);
  out->region_errors = atomic_load(&C.region_errors);
  for (int i = 0; i < SCREEN_TIERS; i++) {
    out->encodes[i] = atomic_load(&C.encodes[i]);
    out->sent[i] = atomic_load(&C.sent[i]);
    out->deltas[i] = atomic_load(&C.deltas[i]);
  }
  out->deltas_sent = atomic_load(&C.deltas_sent);
  out->skipped = atomic_load(&C.skipped);
}

/* A tier of a frame encoded for one viewer (the per-viewer baseline only). */
typedef struct own_enc {
  struct own_enc *next;
  uint64_t viewer;
  screen_tier_t tier;
  uint8_t *enc; /* NULL while encoding */
  size_t enc_len;
} own_enc_t;

/* A delta of a frame from an earlier one: made once for every viewer that
 * holds that base at a tier of the same size (per viewer in the baseline). */
typedef struct delta_enc {
  struct delta_enc *next;
  uint32_t base_seq;
  screen_tier_t tier;
  uint64_t viewer;
  bool encoding, whole; /* whole: too much changed, send the whole picture */
  uint8_t *enc;
  size_t enc_len;
} delta_enc_t;

typedef struct frame {
  atomic_int ref;
  uint32_t seq, capture_ms;
  unsigned w, h;
  uint8_t *rgb;   /* immutable once made: the encoders read it */
  uint64_t *hash; /* its rows' hashes in bands (delta.h), made with it */
  /* loop thread only: */
  uint8_t *enc[SCREEN_TIERS];
  size_t enc_len[SCREEN_TIERS];
  bool encoding[SCREEN_TIERS];
  own_enc_t *own;
  delta_enc_t *deltas;
} frame_t;

typedef struct region_msg {
  struct region_msg *next;
  size_t len;
  uint8_t data[];
} region_msg_t;

struct share {
  atomic_int ref; /* the room's, the timer's, one per job in flight */
  loop_t *loop;
  workpool_t *pool;
  share_error_fn on_error;
  void *ctx;
  bool closed; /* loop: the room let go */
  /* the decoder's side, under lock */
  pthread_mutex_t lock;
  region_msg_t *head, *tail;
  size_t pending_bytes;
  bool decoding;
  uint64_t generation; /* a reset drops what was decoded for the presenter before */
  bool clear_fb;
  uint8_t *fb; /* the running decode job's only */
  unsigned fb_w, fb_h;
  /* the loop's side */
  frame_t *latest;
  uint32_t next_seq;
  uint64_t last_frame_ms;
  viewer_t *viewers;
  uv_timer_t timer;
  uv_timer_t pace; /* the earliest paced send: a tick would be up to TICK_MS late */
  uint64_t pace_at;
  uint64_t frames, encodes[SCREEN_TIERS], deltas[SCREEN_TIERS];
  uint64_t next_viewer_id;
  double size[SCREEN_TIERS]; /* encoded bytes, a moving average; 0: not seen */
};

typedef struct inflight {
  uint32_t seq;
  size_t bytes;
  uint64_t sent_ms;
} inflight_t;

struct viewer {
  viewer_t *next;
  share_t *s;
  ws_t *ws;
  uint64_t id;
  char pid[16];
  double cap_bps; /* the QoS policy's rate, 0: none */
  bool own_socket;
  screen_tier_t tier;
  frame_t *base;          /* the picture the viewer holds (the last frame sent) ... */
  screen_tier_t base_tier; /* ... and its tier */
  double cost;            /* bytes a frame at its tier lately, where a delta was possible; 0: none */
  uint64_t deltas_sent;
  bool last_whole; /* its last delta changed too much: the whole picture went */
  uint64_t tier_since_ms, better_since_ms;
  uint32_t tier_changes;
  double samples[SAMPLES];
  unsigned nsamples, next_sample;
  bool samples_credible; /* the samples are from frames that measured the rate */
  inflight_t inflight[VIEWER_WINDOW];
  unsigned ninflight;
  uint64_t last_ack_ms, next_send_ms;
  uint32_t last_seq, lossless_seq;
  bool sent_any;
  uint64_t sent[SCREEN_TIERS], skipped, acked;
  uint64_t recent[64]; /* send times, for the frame rate */
  unsigned nrecent;
};

static void share_unref(share_t *s);

/* ---- frames ------------------------------------------------------------------------------- */

static void frame_unref(frame_t *f) {
  if (!f || atomic_fetch_sub(&f->ref, 1) != 1) return;
  for (int i = 0; i < SCREEN_TIERS; i++) free(f->enc[i]);
  while (f->deltas) {
    delta_enc_t *d = f->deltas;
    f->deltas = d->next;
    free(d->enc);
    free(d);
  }
  free(f->hash);
  while (f->own) {
    own_enc_t *o = f->own;
    f->own = o->next;
    free(o->enc);
    free(o);
  }
  free(f->rgb);
  free(f);
}

/* ---- decoding (CPU pool) ----------------------------------------------------------------------- */

typedef struct posted {
  share_t *s;
  uint64_t generation;
  frame_t *frame;
  frame_t *base; /* a delta's */
  int tier;
  uint64_t viewer; /* per-viewer baseline: whose encode; 0: the shared one */
  bool whole;
  uint8_t *enc;
  size_t enc_len;
  int status;
  char detail[256];
} posted_t;

static void pump_all(share_t *s);

static void on_decode_error(void *arg) {
  posted_t *p = arg;
  share_t *s = p->s;
  pthread_mutex_lock(&s->lock);
  bool current = p->generation == s->generation;
  pthread_mutex_unlock(&s->lock);
  if (!s->closed && current && s->on_error) s->on_error(s->ctx, 422, "bad_image", p->detail);
  share_unref(s);
  free(p);
}

static void on_frame(void *arg) {
  posted_t *p = arg;
  share_t *s = p->s;
  pthread_mutex_lock(&s->lock);
  bool current = p->generation == s->generation;
  pthread_mutex_unlock(&s->lock);
  if (!s->closed && current) {
    p->frame->seq = ++s->next_seq;
    frame_unref(s->latest);
    s->latest = p->frame;
    s->frames++;
    atomic_fetch_add(&C.frames, 1);
    s->last_frame_ms = loop_now_ms(s->loop);
    pump_all(s);
  } else {
    frame_unref(p->frame);
  }
  share_unref(s);
  free(p);
}

static void post(share_t *s, loop_fn fn, posted_t *p) {
  atomic_fetch_add(&s->ref, 1);
  p->s = s;
  if (loop_post(s->loop, fn, p) < 0) {
    /* The loop stopped: nobody is left to tell. */
    frame_unref(p->frame);
    free(p->enc);
    free(p);
    share_unref(s);
  }
}

static void decode_job(void *arg) {
  share_t *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->lock);
    region_msg_t *m = s->head;
    if (m) {
      s->head = m->next;
      if (!s->head) s->tail = NULL;
      s->pending_bytes -= m->len;
    } else {
      s->decoding = false;
    }
    uint64_t gen = s->generation;
    if (s->clear_fb) {
      free(s->fb);
      s->fb = NULL;
      s->fb_w = s->fb_h = 0;
      s->clear_fb = false;
    }
    pthread_mutex_unlock(&s->lock);
    if (!m) break;
    screen_region_t r;
    char err[256];
    int rc = screen_region_parse(m->data, m->len, &r, err, sizeof err);
    if (rc == 0 && (r.fb_width != s->fb_w || r.fb_height != s->fb_h)) {
      /* A new screen size: the picture starts from black. */
      free(s->fb);
      s->fb = calloc((size_t)r.fb_width * r.fb_height, 3);
      s->fb_w = s->fb ? r.fb_width : 0;
      s->fb_h = s->fb ? r.fb_height : 0;
      if (!s->fb) {
        rc = -ENOMEM;
        snprintf(err, sizeof err, "The server is out of memory for the screen.");
      }
    }
    if (rc == 0) rc = screen_region_decode(&r, s->fb, s->fb_w, s->fb_h, err, sizeof err);
    if (rc < 0) {
      atomic_fetch_add(&C.region_errors, 1);
      posted_t *p = calloc(1, sizeof *p);
      if (p) {
        p->generation = gen;
        snprintf(p->detail, sizeof p->detail, "%s", err);
        post(s, on_decode_error, p);
      }
    } else if (r.flags & SCREEN_LAST) {
      frame_t *f = calloc(1, sizeof *f);
      size_t bytes = (size_t)s->fb_w * s->fb_h * 3;
      unsigned bands = delta_bands(s->fb_w, NULL);
      if (f && (f->rgb = malloc(bytes)) &&
          (f->hash = malloc((size_t)s->fb_h * bands * sizeof *f->hash))) {
        memcpy(f->rgb, s->fb, bytes);
        delta_row_hashes(f->rgb, s->fb_w, s->fb_h, f->hash);
        atomic_init(&f->ref, 1);
        f->w = s->fb_w;
        f->h = s->fb_h;
        f->capture_ms = r.capture_ms;
        posted_t *p = calloc(1, sizeof *p);
        if (p) {
          p->generation = gen;
          p->frame = f;
          post(s, on_frame, p);
        } else {
          frame_unref(f);
        }
      } else {
        if (f) free(f->rgb);
        free(f);
      }
    }
    free(m);
  }
  share_unref(s);
}

int share_region(share_t *s, const uint8_t *data, size_t len, int *status, const char **code,
                 char *err, size_t errlen) {
  screen_region_t r;
  if (screen_region_parse(data, len, &r, err, errlen) < 0) {
    atomic_fetch_add(&C.region_errors, 1);
    *status = len > SCREEN_REGION_HEADER + SCREEN_REGION_BYTES_MAX ? 413 : 400;
    *code = *status == 413 ? "too_big" : "bad_region";
    return -EINVAL;
  }
  atomic_fetch_add(&C.regions, 1);
  region_msg_t *m = malloc(sizeof *m + len);
  if (!m) {
    *status = 503;
    *code = "busy";
    snprintf(err, errlen, "The server is out of memory; the region was dropped.");
    return -ENOMEM;
  }
  m->next = NULL;
  m->len = len;
  memcpy(m->data, data, len);
  pthread_mutex_lock(&s->lock);
  if (s->pending_bytes + len > PENDING_BYTES_MAX) {
    pthread_mutex_unlock(&s->lock);
    free(m);
    *status = 503;
    *code = "too_fast";
    snprintf(err, errlen, "Regions arrive faster than the server decodes them; this one was "
                          "dropped. Send fewer or smaller regions.");
    return -EAGAIN;
  }
  if (s->tail)
    s->tail->next = m;
  else
    s->head = m;
  s->tail = m;
  s->pending_bytes += len;
  bool start = !s->decoding;
  if (start) s->decoding = true;
  pthread_mutex_unlock(&s->lock);
  if (start) {
    atomic_fetch_add(&s->ref, 1);
    if (workpool_submit(s->pool, decode_job, s) < 0) {
      /* The job takes whatever is queued once it runs; this one never will. */
      pthread_mutex_lock(&s->lock);
      s->decoding = false;
      pthread_mutex_unlock(&s->lock);
      atomic_fetch_sub(&s->ref, 1);
      *status = 503;
      *code = "busy";
      snprintf(err, errlen, "The server's image workers are busy; send the region again.");
      return -EAGAIN;
    }
  }
  return 0;
}

/* ---- encoding (CPU pool) -------------------------------------------------------------------------- */

static own_enc_t *own_find(frame_t *f, uint64_t viewer, screen_tier_t tier) {
  for (own_enc_t *o = f->own; o; o = o->next)
    if (o->viewer == viewer && o->tier == tier) return o;
  return NULL;
}

static void own_drop(frame_t *f, own_enc_t *o) {
  for (own_enc_t **pp = &f->own; *pp; pp = &(*pp)->next)
    if (*pp == o) {
      *pp = o->next;
      break;
    }
  free(o->enc);
  free(o);
}

static void on_encoded(void *arg) {
  posted_t *p = arg;
  share_t *s = p->s;
  frame_t *f = p->frame;
  own_enc_t *own = p->viewer ? own_find(f, p->viewer, p->tier) : NULL;
  if (p->viewer) {
    if (!p->enc && own) own_drop(f, own); /* the next pump asks again */
  } else {
    f->encoding[p->tier] = false;
  }
  if (p->enc) {
    screen_frame_header(p->enc, p->tier, f->seq, f->capture_ms, f->w, f->h, false);
    if (own) {
      own->enc = p->enc;
      own->enc_len = p->enc_len;
    } else if (!p->viewer) {
      f->enc[p->tier] = p->enc;
      f->enc_len[p->tier] = p->enc_len;
    }
    s->encodes[p->tier]++;
    atomic_fetch_add(&C.encodes[p->tier], 1);
    double n = (double)p->enc_len;
    s->size[p->tier] = s->size[p->tier] > 0 ? 0.7 * s->size[p->tier] + 0.3 * n : n;
    if (p->viewer && !own) free(p->enc);
  }
  if (!s->closed) pump_all(s);
  frame_unref(f);
  share_unref(s);
  free(p);
}

static void encode_job(void *arg) {
  posted_t *p = arg;
  frame_t *f = p->frame;
  if (screen_encode(f->rgb, f->w, f->h, p->tier, &p->enc, &p->enc_len) < 0) {
    static atomic_bool warned;
    if (!atomic_exchange(&warned, true))
      log_warning("Screen sharing: a frame could not be encoded (%s tier)",
                  screen_tier_name(p->tier));
    p->enc = NULL;
  }
  share_t *s = p->s;
  if (loop_post(s->loop, on_encoded, p) < 0) {
    free(p->enc);
    frame_unref(f);
    free(p);
    share_unref(s);
  }
}

/* Starts the encode of a tier of f for v unless it is done or under way:
 * the one every viewer shares, or in the per-viewer baseline v's own. */
static void want_tier(share_t *s, frame_t *f, screen_tier_t tier, const viewer_t *v) {
  own_enc_t *own = NULL;
  if (per_viewer_encode) {
    if (own_find(f, v->id, tier)) return;
    if (!(own = calloc(1, sizeof *own))) return;
    own->viewer = v->id;
    own->tier = tier;
    own->next = f->own;
    f->own = own;
  } else if (f->enc[tier] || f->encoding[tier]) {
    return;
  }
  posted_t *p = calloc(1, sizeof *p);
  if (!p) {
    if (own) own_drop(f, own);
    return;
  }
  p->s = s;
  p->frame = f;
  p->tier = tier;
  p->viewer = own ? v->id : 0;
  atomic_fetch_add(&f->ref, 1);
  atomic_fetch_add(&s->ref, 1);
  if (!own) f->encoding[tier] = true;
  if (workpool_submit(s->pool, encode_job, p) < 0) {
    /* The pool is full: the next tick asks again. */
    if (own)
      own_drop(f, own);
    else
      f->encoding[tier] = false;
    atomic_fetch_sub(&f->ref, 1);
    atomic_fetch_sub(&s->ref, 1);
    free(p);
  }
}

/* ---- deltas (CPU pool) ------------------------------------------------------------------------- */

static delta_enc_t *delta_find(frame_t *f, uint32_t base_seq, screen_tier_t tier, uint64_t viewer) {
  for (delta_enc_t *d = f->deltas; d; d = d->next)
    if (d->base_seq == base_seq && d->tier == tier && d->viewer == viewer) return d;
  return NULL;
}

static void delta_drop(frame_t *f, delta_enc_t *d) {
  for (delta_enc_t **pp = &f->deltas; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      break;
    }
  free(d->enc);
  free(d);
}

static void on_delta(void *arg) {
  posted_t *p = arg;
  share_t *s = p->s;
  frame_t *f = p->frame;
  delta_enc_t *d = delta_find(f, p->base->seq, p->tier, p->viewer);
  if (d) {
    d->encoding = false;
    if (p->enc) {
      screen_frame_header(p->enc, p->tier, f->seq, f->capture_ms, f->w, f->h, true);
      d->enc = p->enc;
      d->enc_len = p->enc_len;
      p->enc = NULL;
      s->deltas[p->tier]++;
      atomic_fetch_add(&C.deltas[p->tier], 1);
    } else if (p->whole) {
      d->whole = true;
    } else {
      delta_drop(f, d); /* it failed: the next pump asks again */
    }
  }
  free(p->enc);
  if (!s->closed) pump_all(s);
  frame_unref(p->base);
  frame_unref(f);
  share_unref(s);
  free(p);
}

static void delta_job(void *arg) {
  posted_t *p = arg;
  frame_t *f = p->frame, *b = p->base;
  delta_plan_t plan;
  unsigned grain = p->tier == SCREEN_TIER_LOW ? 2 : 1;
  if (delta_plan(b->hash, f->hash, f->w, f->h, grain, &plan) < 0) {
    p->enc = NULL;
  } else if (plan.changed_px * 2 > (uint64_t)f->w * f->h) {
    p->whole = true;
  } else if (screen_encode_delta(f->rgb, f->w, f->h, p->tier, b->seq, &plan, &p->enc,
                                 &p->enc_len) < 0) {
    p->enc = NULL;
  }
  share_t *s = p->s;
  if (loop_post(s->loop, on_delta, p) < 0) {
    free(p->enc);
    frame_unref(b);
    frame_unref(f);
    free(p);
    share_unref(s);
  }
}

/* Starts the delta of f from b at `tier` for v (shared unless the baseline
 * encodes per viewer). */
static void want_delta(share_t *s, frame_t *f, frame_t *b, screen_tier_t tier, const viewer_t *v) {
  delta_enc_t *d = calloc(1, sizeof *d);
  posted_t *p = calloc(1, sizeof *p);
  if (!d || !p) {
    free(d);
    free(p);
    return;
  }
  d->base_seq = b->seq;
  d->tier = tier;
  d->viewer = per_viewer_encode ? v->id : 0;
  d->encoding = true;
  d->next = f->deltas;
  f->deltas = d;
  p->s = s;
  p->frame = f;
  p->base = b;
  p->tier = tier;
  p->viewer = d->viewer;
  atomic_fetch_add(&f->ref, 1);
  atomic_fetch_add(&b->ref, 1);
  atomic_fetch_add(&s->ref, 1);
  if (workpool_submit(s->pool, delta_job, p) < 0) {
    /* The pool is full: the next tick asks again. */
    delta_drop(f, d);
    atomic_fetch_sub(&f->ref, 1);
    atomic_fetch_sub(&b->ref, 1);
    atomic_fetch_sub(&s->ref, 1);
    free(p);
  }
}

/* ---- each viewer's sender ---------------------------------------------------------------------- */

static double estimate_bps(const viewer_t *v) {
  double best = 0;
  for (unsigned i = 0; i < v->nsamples; i++)
    if (v->samples[i] > best) best = v->samples[i];
  if (v->cap_bps > 0 && (best == 0 || best > v->cap_bps)) best = v->cap_bps;
  return best;
}

/* Bytes a frame of `tier` takes: measured, or guessed from a tier that was. */
static double tier_size(const share_t *s, screen_tier_t tier) {
  if (s->size[tier] > 0) return s->size[tier];
  for (int k = 0; k < SCREEN_TIERS; k++)
    if (s->size[k] > 0) return s->size[k] * tier_ratio[tier] / tier_ratio[k];
  return 0;
}

/* Bytes a frame of `tier` costs this viewer: what its frames cost lately
 * where a delta was possible (scaled from its tier to that one), or else a
 * whole picture's size. */
static double frame_cost(const share_t *s, const viewer_t *v, screen_tier_t tier) {
  if (v->cost <= 0) return tier_size(s, tier);
  if (tier == v->tier) return v->cost;
  double from = tier_size(s, v->tier), to = tier_size(s, tier);
  if (from > 0 && to > 0) return v->cost * to / from;
  return v->cost * tier_ratio[tier] / tier_ratio[v->tier];
}

static void set_tier(viewer_t *v, screen_tier_t tier, uint64_t now) {
  if (v->cost > 0) v->cost = frame_cost(v->s, v, tier);
  v->tier = tier;
  v->tier_since_ms = now;
  v->better_since_ms = 0;
  v->tier_changes++;
}

static double affordable_fps(const share_t *s, const viewer_t *v, screen_tier_t tier) {
  double size = frame_cost(s, v, tier), bps = estimate_bps(v);
  if (size <= 0 || bps <= 0) return MAX_FPS; /* nothing known yet: start at the top */
  return bps * LINK_USE / (8 * size);
}

/* After each acknowledgement: down at once when the tier became
 * unaffordable (after a short dwell), up one step only when the better
 * tier stayed affordable for a while and the tier has not changed lately.
 * A new viewer starts at the low tier, so that a picture arrives within a
 * second on any link, and its first acknowledgements put it straight at
 * the tier its link affords. */
static void choose_tier(viewer_t *v, uint64_t now) {
  share_t *s = v->s;
  screen_tier_t target = SCREEN_TIER_LOW;
  for (int t = SCREEN_TIER_HIGH; t <= SCREEN_TIER_LOW; t++)
    if (affordable_fps(s, v, t) >= FPS_GOOD) {
      target = t;
      break;
    }
  if (v->acked <= START_ACKS) {
    if (target != v->tier) set_tier(v, target, now);
  } else if (target > v->tier) {
    v->better_since_ms = 0;
    if (affordable_fps(s, v, v->tier) < FPS_POOR && now - v->tier_since_ms >= DOWN_DWELL_MS)
      set_tier(v, target, now);
  } else if (target < v->tier) {
    if (!v->better_since_ms) v->better_since_ms = now;
    if (now - v->better_since_ms >= UP_HOLD_MS && now - v->tier_since_ms >= UP_DWELL_MS)
      set_tier(v, v->tier - 1, now);
  } else {
    v->better_since_ms = 0;
  }
}

static void drop_stale_inflight(viewer_t *v, uint64_t now) {
  unsigned k = 0;
  for (unsigned i = 0; i < v->ninflight; i++)
    if (now - v->inflight[i].sent_ms < ACK_TIMEOUT_MS) v->inflight[k++] = v->inflight[i];
  v->ninflight = k;
}

/* counted: a frame where a delta was possible, so what it cost says what
 * the viewer's frames cost while the picture changes like this. */
static void send_tier(viewer_t *v, frame_t *f, screen_tier_t tier, const uint8_t *enc,
                      size_t enc_len, uint64_t now, bool delta, bool counted) {
  if (ws_send(v->ws, true, enc, enc_len) < 0) return;
  if (v->base != f) {
    frame_unref(v->base);
    atomic_fetch_add(&f->ref, 1);
    v->base = f;
  }
  v->base_tier = tier;
  if (delta) {
    v->deltas_sent++;
    atomic_fetch_add(&C.deltas_sent, 1);
  }
  if (counted && tier == v->tier)
    v->cost = v->cost > 0 ? (1 - COST_WEIGHT) * v->cost + COST_WEIGHT * (double)enc_len
                          : (double)enc_len;
  if (v->sent_any && f->seq > v->last_seq + 1 && tier != SCREEN_TIER_LOSSLESS) {
    v->skipped += f->seq - v->last_seq - 1;
    atomic_fetch_add(&C.skipped, f->seq - v->last_seq - 1);
  }
  v->sent_any = true;
  v->last_seq = f->seq;
  if (tier == SCREEN_TIER_LOSSLESS) v->lossless_seq = f->seq;
  v->sent[tier]++;
  atomic_fetch_add(&C.sent[tier], 1);
  v->inflight[v->ninflight++] = (inflight_t){.seq = f->seq, .bytes = enc_len, .sent_ms = now};
  v->recent[v->nrecent++ % 64] = now;
  /* Paced to the estimate, and at most MAX_FPS. */
  double bps = estimate_bps(v);
  uint64_t gap = 1000 / MAX_FPS;
  if (bps > 0) {
    uint64_t wire = (uint64_t)((double)enc_len * 8 * 1000 / (bps * 0.95));
    if (wire > gap) gap = wire;
  }
  v->next_send_ms = now + gap;
}

static void on_pace(uv_timer_t *t) {
  share_t *s = t->data;
  s->pace_at = 0;
  if (!s->closed && s->viewers && s->latest) pump_all(s);
}

static void pace_at(share_t *s, uint64_t at, uint64_t now) {
  if (s->pace_at > now && s->pace_at <= at) return; /* an earlier wake-up is due */
  s->pace_at = at;
  uv_timer_start(&s->pace, on_pace, at > now ? at - now : 0, 0);
}

static bool full_size(screen_tier_t t) { return t != SCREEN_TIER_LOW; }

static void pump(viewer_t *v) {
  share_t *s = v->s;
  frame_t *f = s->latest;
  if (!f) return;
  uint64_t now = loop_now_ms(s->loop);
  bool still = now - s->last_frame_ms >= STILL_MS;
  bool new_frame = !v->sent_any || f->seq != v->last_seq;
  bool refresh = !new_frame && still && v->lossless_seq != f->seq;
  if (!new_frame && !refresh) return;
  drop_stale_inflight(v, now);
  /* Two frames in flight keep a fast link busy across the round trip; on a
   * link where one frame takes longer than a frame interval, the second
   * would only wait in the bottleneck's queue, adding its time to the delay. */
  unsigned window = VIEWER_WINDOW;
  double bps = estimate_bps(v), size = frame_cost(s, v, v->tier);
  if (bps > 0 && size > 0 && size * 8 * 1000 / bps > 1000.0 / MAX_FPS) window = 1;
  if (v->ninflight >= window) return;
  if (now < v->next_send_ms) {
    pace_at(s, v->next_send_ms, now);
    return;
  }
  if (ws_queued(v->ws) > 0) {
    ws_want_writable(v->ws);
    return;
  }
  screen_tier_t tier = refresh ? SCREEN_TIER_LOSSLESS : v->tier;
  frame_t *b = v->base;
  bool can_delta = !refresh && b && b != f && b->w == f->w && b->h == f->h &&
                   full_size(v->base_tier) == full_size(tier);
  if (can_delta) {
    delta_enc_t *d = delta_find(f, b->seq, tier, per_viewer_encode ? v->id : 0);
    /* While everything changes, the whole picture is likely needed again:
     * its encode starts beside the delta's instead of after it. */
    if ((!d || d->encoding) && v->last_whole && !per_viewer_encode && !f->enc[tier])
      want_tier(s, f, tier, v);
    if (!d) {
      want_delta(s, f, b, tier, v);
      return;
    }
    if (d->encoding) return;
    v->last_whole = d->whole;
    if (!d->whole) {
      send_tier(v, f, tier, d->enc, d->enc_len, now, true, true);
      if (per_viewer_encode) delta_drop(f, d);
      return;
    }
  }
  if (per_viewer_encode) {
    own_enc_t *own = own_find(f, v->id, tier);
    if (own && own->enc) {
      send_tier(v, f, tier, own->enc, own->enc_len, now, false, can_delta);
      own_drop(f, own); /* sent (or the socket failed): nobody else may use it */
    } else {
      want_tier(s, f, tier, v);
    }
  } else if (f->enc[tier]) {
    send_tier(v, f, tier, f->enc[tier], f->enc_len[tier], now, false, can_delta);
  } else {
    want_tier(s, f, tier, v);
  }
}

static void pump_all(share_t *s) {
  for (viewer_t *v = s->viewers; v; v = v->next) pump(v);
}

static void on_tick(uv_timer_t *t) {
  share_t *s = t->data;
  if (s->viewers && s->latest) pump_all(s);
}

viewer_t *share_viewer_add(share_t *s, ws_t *ws, const char *pid, long max_rate_mbps,
                           bool own_socket) {
  viewer_t *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->s = s;
  v->ws = ws;
  v->id = ++s->next_viewer_id;
  snprintf(v->pid, sizeof v->pid, "%s", pid);
  v->cap_bps = max_rate_mbps > 0 ? (double)max_rate_mbps * 1e6 : 0;
  v->own_socket = own_socket;
  v->tier = SCREEN_TIER_LOW;
  v->tier_since_ms = loop_now_ms(s->loop);
  if (own_socket) {
    /* The kernel keeps little unsent: what waits, waits here, where the
     * sender can see it and send the newest frame instead. */
    int lowat = NOTSENT_LOWAT;
    setsockopt(ws_fd(ws), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
  }
  v->next = s->viewers;
  s->viewers = v;
  pump(v);
  return v;
}

void share_viewer_remove(share_t *s, viewer_t *v) {
  for (viewer_t **pp = &s->viewers; *pp; pp = &(*pp)->next)
    if (*pp == v) {
      *pp = v->next;
      break;
    }
  frame_unref(v->base);
  free(v);
}

void share_viewer_writable(viewer_t *v) { pump(v); }

int share_viewer_ack(viewer_t *v, uint32_t frame, uint32_t decode_ms, char *err, size_t errlen) {
  uint64_t now = loop_now_ms(v->s->loop);
  unsigned i = 0;
  while (i < v->ninflight && v->inflight[i].seq != frame) i++;
  if (i == v->ninflight) {
    snprintf(err, errlen, "Frame %u was not sent to you, or was acknowledged already.", frame);
    return -EINVAL;
  }
  inflight_t in = v->inflight[i];
  memmove(v->inflight + i, v->inflight + i + 1, (v->ninflight - i - 1) * sizeof *v->inflight);
  v->ninflight--;
  /* Its bytes went out after the frame before it had arrived: the time
   * they took is from the later of the two to this ack, less the paint. */
  uint64_t from = in.sent_ms > v->last_ack_ms ? in.sent_ms : v->last_ack_ms;
  double ms = (double)(now - from) - decode_ms;
  if (ms < 1) ms = 1;
  /* A small frame passes a shaper's bucket at once and says the link is
   * as fast as the next hop: it counts only until a large frame, or one
   * that waited behind another and still took a while, measured the rate. */
  bool credible = in.bytes >= CREDIBLE_BYTES || (in.sent_ms < v->last_ack_ms && ms >= CREDIBLE_MS);
  if (credible && !v->samples_credible) {
    v->nsamples = v->next_sample = 0;
    v->samples_credible = true;
  }
  if (credible || !v->samples_credible) {
    v->samples[v->next_sample] = (double)in.bytes * 8 * 1000 / ms;
    v->next_sample = (v->next_sample + 1) % SAMPLES;
    if (v->nsamples < SAMPLES) v->nsamples++;
  }
  v->last_ack_ms = now;
  v->acked++;
  choose_tier(v, now);
  pump(v);
  return 0;
}

/* ---- the share ----------------------------------------------------------------------------------- */

share_t *share_new(loop_t *loop, workpool_t *pool, share_error_fn on_error, void *ctx) {
  share_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  atomic_init(&s->ref, 3); /* the room's and the timers' */
  s->loop = loop;
  s->pool = pool;
  s->on_error = on_error;
  s->ctx = ctx;
  pthread_mutex_init(&s->lock, NULL);
  uv_timer_init(loop_uv(loop), &s->timer);
  s->timer.data = s;
  uv_timer_start(&s->timer, on_tick, TICK_MS, TICK_MS);
  uv_timer_init(loop_uv(loop), &s->pace);
  s->pace.data = s;
  return s;
}

static void share_unref(share_t *s) {
  if (atomic_fetch_sub(&s->ref, 1) != 1) return;
  region_msg_t *m = s->head;
  while (m) {
    region_msg_t *n = m->next;
    free(m);
    m = n;
  }
  frame_unref(s->latest);
  free(s->fb);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static void on_timer_closed(uv_handle_t *h) { share_unref(h->data); }

void share_free(share_t *s) {
  if (!s) return;
  s->closed = true;
  while (s->viewers) share_viewer_remove(s, s->viewers);
  share_reset(s);
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
  uv_close((uv_handle_t *)&s->pace, on_timer_closed);
  share_unref(s);
}

void share_reset(share_t *s) {
  pthread_mutex_lock(&s->lock);
  region_msg_t *m = s->head;
  s->head = s->tail = NULL;
  s->pending_bytes = 0;
  s->generation++;
  s->clear_fb = true;
  pthread_mutex_unlock(&s->lock);
  while (m) {
    region_msg_t *n = m->next;
    free(m);
    m = n;
  }
  frame_unref(s->latest);
  s->latest = NULL;
  for (viewer_t *v = s->viewers; v; v = v->next) {
    v->sent_any = false;
    v->ninflight = 0;
    v->lossless_seq = 0;
    frame_unref(v->base);
    v->base = NULL;
    v->cost = 0;
  }
}

/* ---- counters --------------------------------------------------------------------------------- */

static double viewer_fps(const viewer_t *v, uint64_t now) {
  unsigned n = v->nrecent < 64 ? v->nrecent : 64, count = 0;
  for (unsigned i = 0; i < n; i++)
    if (now - v->recent[i] <= 2000) count++;
  return count / 2.0;
}

json_t *share_stats(share_t *s) {
  uint64_t now = loop_now_ms(s->loop);
  uint64_t total = 0;
  json_t *enc = json_object(), *deltas = json_object();
  for (int t = 0; t < SCREEN_TIERS; t++) {
    json_object_set_new(enc, screen_tier_name(t), json_integer((json_int_t)s->encodes[t]));
    if (t != SCREEN_TIER_LOSSLESS)
      json_object_set_new(deltas, screen_tier_name(t), json_integer((json_int_t)s->deltas[t]));
    total += s->encodes[t] + s->deltas[t];
  }
  json_t *viewers = json_array();
  for (viewer_t *v = s->viewers; v; v = v->next) {
    json_t *sent = json_object();
    for (int t = 0; t < SCREEN_TIERS; t++)
      json_object_set_new(sent, screen_tier_name(t), json_integer((json_int_t)v->sent[t]));
    json_t *j = json_pack("{s:s, s:s, s:f, s:I, s:o, s:I, s:I, s:I, s:b}", "id", v->pid, "tier",
                          screen_tier_name(v->tier), "fps", viewer_fps(v, now), "bandwidth_kbps",
                          (json_int_t)(estimate_bps(v) / 1000), "sent", sent, "skipped",
                          (json_int_t)v->skipped, "acked", (json_int_t)v->acked, "tier_changes",
                          (json_int_t)v->tier_changes, "own_socket", v->own_socket);
    json_object_set_new(j, "deltas_sent", json_integer((json_int_t)v->deltas_sent));
    json_object_set_new(j, "frame_bytes", json_integer((json_int_t)frame_cost(s, v, v->tier)));
    if (v->own_socket) {
      struct tcp_info ti;
      socklen_t tl = sizeof ti;
      if (getsockopt(ws_fd(v->ws), IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0) {
        json_object_set_new(j, "tcp_rtt_ms", json_real(ti.tcpi_rtt / 1000.0));
      }
      int notsent = 0;
      if (ioctl(ws_fd(v->ws), SIOCOUTQNSD, &notsent) == 0)
        json_object_set_new(j, "tcp_notsent_bytes", json_integer(notsent));
    }
    json_array_append_new(viewers, j);
  }
  return json_pack("{s:I, s:o, s:o, s:f, s:I, s:o}", "frames", (json_int_t)s->frames, "encodes",
                   enc, "deltas", deltas,
                   "encodes_per_frame", s->frames ? (double)total / (double)s->frames : 0.0,
                   "latest", (json_int_t)(s->latest ? s->latest->seq : 0), "viewers", viewers);
}
