/* rtload: load generator for real-time chat and presence servers over
 * WebSocket, Atrium's client contract or XMPP (RFC 7395). One process, one
 * libuv loop thread; see bench/rtload/README.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <netdb.h>

#include <jansson.h>
#include <uv.h>

#include "selftest.h"
#include "sess.h"
#include "stats.h"
#include "wsutil.h"

#define NS_PER_S 1000000000ull
#define TICK_MS 100
#define MAX_SAMPLES (20u * 1000u * 1000u)
#define MAX_REASONS 8
#define TEXT_PREFIX_LEN 44 /* "rt " + 20 digits + " " + 19 digits + " " */

typedef enum { SC_IDLE, SC_CHAT, SC_FANOUT } scenario_t;

typedef struct opts {
  sess_proto_t proto;
  scenario_t scenario;
  const char *proto_name, *scenario_name, *url, *creds;
  long first, conns, pairs, window, size, watchers, changes, concurrency;
  double hold, duration, warmup, settle, timeout, max_time, gap_ms;
  double rate; /* chat: messages per second over all senders, paced (open loop); 0: closed loop */
  long server_pid;
  long src_lo, src_hi;
} opts_t;

/* The driver's view of one user, beside its session. */
typedef struct user {
  int settled;   /* the connect phase is over for it: ready (and watching) or failed */
  int watching;  /* fanout: its watch of the fan-out user is confirmed */
  int peer;      /* chat: the other half of the pair, -1 if none */
  int inflight;  /* chat sender: messages sent, not yet received */
  uint64_t seq;  /* chat sender: next sequence number */
  long last_k;   /* fanout watcher: the last change it received */
} user_t;

enum phase { PH_CONNECT_FIRST, PH_CONNECT, PH_SETTLE, PH_RUN, PH_DRAIN, PH_DONE };

typedef struct reason {
  char why[160];
  size_t count;
} reason_t;

typedef struct cpu_mark {
  uint64_t t;
  double self, server, machine;
} cpu_mark_t;

typedef struct rl {
  opts_t o;
  uv_loop_t *loop;
  uv_timer_t tick, gap, pace;
  uv_signal_t sigint, sigterm;
  sess_ctx_t ctx;
  wsu_url_t url;
  size_t n;
  sess_t *s;
  user_t *u;
  char **addr, **secret;
  /* connect phase */
  size_t next, upto, inprogress, settled, ready_n, failed_n, dropped_n;
  uint64_t connect_t0, connect_t1;
  size_t unfinished; /* neither ready nor failed when the run ended */
  size_t held;       /* open and ready when the run ended */
  reason_t fail_reasons[MAX_REASONS], drop_reasons[MAX_REASONS];
  size_t errors;
  reason_t error_reasons[MAX_REASONS];
  enum phase phase;
  uint64_t t_start, phase_deadline;
  const char *aborted;
  cpu_mark_t cpu_start, cpu_w0, cpu_w1;
  long rss_before, rss_connected, rss_after;
  /* chat */
  char *text;
  size_t pairs_active;
  uint64_t w0, w1; /* the measurement window */
  uint64_t sent, received, received_window, misrouted, bad_text, ok_missing_fields;
  int64_t inflight_total;
  stats_samples_t lat, ok_lat;
  /* open loop: senders in turn, as many as the rate makes due */
  size_t *senders, nsenders, next_sender;
  uint64_t pace_t0, paced;
  /* fanout */
  long k;               /* the change in flight, 0 before the first */
  uint64_t k_t0, k_last;
  size_t k_expected, k_got;
  size_t watchers_active;
  uint64_t deliveries, missing, wrong_state, spans_ns;
  long changes_complete;
  stats_samples_t first_w, last_w, deliv;
} rl_t;

static rl_t R;

static uint64_t now_ns(void) { return uv_hrtime(); }

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void note_reason(reason_t *tab, const char *why) {
  for (size_t i = 0; i < MAX_REASONS; i++) {
    if (tab[i].count && strcmp(tab[i].why, why) == 0) {
      tab[i].count++;
      return;
    }
    if (!tab[i].count) {
      snprintf(tab[i].why, sizeof tab[i].why, "%s", why);
      tab[i].count = 1;
      return;
    }
  }
  tab[MAX_REASONS - 1].count++; /* the last row also counts the overflow */
}

static json_t *reasons_json(const reason_t *tab) {
  json_t *a = json_array();
  for (size_t i = 0; i < MAX_REASONS && tab[i].count; i++)
    json_array_append_new(a, json_pack("{s:s, s:I}", "reason", tab[i].why, "count", (json_int_t)tab[i].count));
  return a;
}

static cpu_mark_t cpu_now(void) {
  cpu_mark_t m = {.t = now_ns(), .self = stats_self_cpu_s(), .server = -1, .machine = stats_machine_busy_s()};
  if (R.o.server_pid > 0)
    m.server = stats_proc_cpu_s((pid_t)R.o.server_pid);
  return m;
}

static json_t *cpu_json(cpu_mark_t a, cpu_mark_t b, double per) {
  double wall = secs(b.t - a.t);
  double gen = b.self - a.self;
  json_t *o = json_pack("{s:f, s:f, s:f}", "wall_s", wall, "generator_s", gen, "generator_pct_core",
                        wall > 0 ? 100.0 * gen / wall : 0.0);
  if (a.server >= 0 && b.server >= 0) {
    double srv = b.server - a.server;
    json_object_set_new(o, "server_s", json_real(srv));
    json_object_set_new(o, "server_pct_core", json_real(wall > 0 ? 100.0 * srv / wall : 0.0));
    if (per > 0)
      json_object_set_new(o, "server_us_per_event", json_real(1e6 * srv / per));
    /* The machine may be shared: what other processes took in the same
     * wall time says whether the two above had the CPUs to themselves. */
    if (a.machine >= 0 && b.machine >= 0 && wall > 0) {
      double others = (b.machine - a.machine) - gen - srv;
      json_object_set_new(o, "others_pct_core", json_real(others > 0 ? 100.0 * others / wall : 0.0));
    }
  } else {
    json_object_set_new(o, "server_s", json_null());
  }
  if (per > 0)
    json_object_set_new(o, "generator_us_per_event", json_real(1e6 * gen / per));
  return o;
}

/* ---- the connect ramp ----------------------------------------------------- */

static void settle(size_t i, int ok) {
  user_t *u = &R.u[i];
  if (u->settled)
    return;
  u->settled = 1;
  R.settled++;
  if (R.inprogress > 0)
    R.inprogress--;
  if (!ok)
    R.failed_n++;
  if (R.settled == R.n)
    R.connect_t1 = now_ns();
}

static int is_watcher(size_t i) { return R.o.scenario == SC_FANOUT && i > 0; }

static void pump(void) {
  while (R.next < R.upto && R.inprogress < (size_t)R.o.concurrency) {
    size_t i = R.next++;
    struct sockaddr_in src, *srcp = NULL;
    if ((ntohl(R.ctx.target.dst.sin_addr.s_addr) >> 24) == 127) {
      /* Spread over 127.0.0.lo..hi so that no source address needs more
       * ephemeral ports than one range holds. */
      memset(&src, 0, sizeof src);
      src.sin_family = AF_INET;
      long span = R.o.src_hi - R.o.src_lo + 1;
      src.sin_addr.s_addr = htonl((127u << 24) | (uint32_t)(R.o.src_lo + (long)(i % (size_t)span)));
      srcp = &src;
    }
    R.s[i].address = R.addr[i];
    R.s[i].secret = R.secret[i];
    R.s[i].deadline_ns = now_ns() + (uint64_t)(R.o.timeout * 1e9);
    R.inprogress++;
    if (sess_start(&R.s[i], &R.ctx, srcp) < 0) {
      note_reason(R.fail_reasons, "the loop could not create a TCP handle");
      settle(i, 0);
    }
  }
}

/* ---- session events --------------------------------------------------------- */

static size_t idx_of(sess_t *s) { return (size_t)(s - R.s); }

static void ev_ready(sess_t *s) {
  size_t i = idx_of(s);
  R.ready_n++;
  if (is_watcher(i) && R.o.proto == SESS_ATRIUM) {
    const char *a[1] = {R.addr[0]};
    s->deadline_ns = now_ns() + (uint64_t)(R.o.timeout * 1e9);
    if (sess_watch(s, a, 1, "rtload-watch") < 0)
      sess_close(s, "could not send presence.watch");
    return;
  }
  if (is_watcher(i))
    R.u[i].watching = 1; /* the seeded roster subscription is the watch */
  settle(i, 1);
}

static void send_chat(size_t i) {
  user_t *u = &R.u[i];
  uint64_t t = now_ns();
  char head[TEXT_PREFIX_LEN + 1];
  snprintf(head, sizeof head, "rt %020" PRIu64 " %019" PRIu64 " ", t, u->seq);
  memcpy(R.text, head, TEXT_PREFIX_LEN);
  char id[64];
  snprintf(id, sizeof id, "m%" PRIu64 "-%" PRIu64, u->seq, t);
  if (sess_chat(&R.s[i], R.addr[u->peer], R.text, (size_t)R.o.size, id) < 0)
    return;
  u->seq++;
  u->inflight++;
  R.inflight_total++;
  R.sent++;
}

static int chat_sending(uint64_t t) { return R.phase == PH_RUN && t < R.w1; }

static void ev_chat(sess_t *s, const char *from, const char *text, size_t n) {
  size_t r = idx_of(s);
  uint64_t t = now_ns();
  if (R.o.scenario != SC_CHAT || R.u[r].peer < 0 || (r & 1) == 0) {
    R.misrouted++;
    return;
  }
  size_t snd = (size_t)R.u[r].peer;
  if (strcmp(from, R.addr[snd]) != 0) {
    R.misrouted++;
    return;
  }
  char *end = NULL;
  if (n != (size_t)R.o.size || strncmp(text, "rt ", 3) != 0) {
    R.bad_text++;
    return;
  }
  uint64_t sent_at = strtoull(text + 3, &end, 10);
  if (end != text + 23 || sent_at > t) {
    R.bad_text++;
    return;
  }
  R.received++;
  if (R.u[snd].inflight > 0) {
    R.u[snd].inflight--;
    R.inflight_total--;
  }
  if (t >= R.w0 && t <= R.w1 && R.w0) {
    R.received_window++;
    if (sent_at >= R.w0)
      stats_add_ns(&R.lat, t - sent_at);
  }
  if (chat_sending(t) && R.o.rate <= 0)
    send_chat(snd);
}

/* Open loop: whatever the rate makes due since the run began goes out now,
 * whether or not earlier messages have arrived, so that a slow server shows
 * as latency instead of as a lower offered load. */
static void on_pace(uv_timer_t *t) {
  (void)t;
  uint64_t now = now_ns();
  if (!chat_sending(now) || !R.nsenders) {
    uv_timer_stop(&R.pace);
    return;
  }
  uint64_t due = (uint64_t)((double)(now - R.pace_t0) * R.o.rate / 1e9);
  while (R.paced < due) {
    send_chat(R.senders[R.next_sender]);
    R.next_sender = (R.next_sender + 1) % R.nsenders;
    R.paced++;
  }
}

static void ev_ok(sess_t *s, const char *id, const char *message_id, const char *time) {
  size_t i = idx_of(s);
  uint64_t t = now_ns();
  if (is_watcher(i) && strcmp(id, "rtload-watch") == 0) {
    if (!R.u[i].settled) {
      R.u[i].watching = 1;
      settle(i, 1);
    }
    return;
  }
  if (id[0] != 'm')
    return;
  if (!message_id || !time)
    R.ok_missing_fields++;
  const char *dash = strchr(id, '-');
  if (!dash)
    return;
  uint64_t sent_at = strtoull(dash + 1, NULL, 10);
  if (R.w0 && sent_at >= R.w0 && t <= R.w1 && sent_at <= t)
    stats_add_ns(&R.ok_lat, t - sent_at);
}

static void start_change(void);

static void on_gap(uv_timer_t *t) {
  (void)t;
  if (R.phase == PH_RUN)
    start_change();
}

static void change_done(void) {
  if (R.k_got > 0) {
    R.spans_ns += R.k_last - R.k_t0;
    stats_add_ns(&R.last_w, R.k_last - R.k_t0);
  }
  if (R.k_got >= R.k_expected)
    R.changes_complete++;
  else
    R.missing += R.k_expected - R.k_got;
  R.k_expected = 0;
  if (R.k >= R.o.changes) {
    R.phase = PH_DONE;
    R.cpu_w1 = cpu_now();
    return;
  }
  uv_timer_start(&R.gap, on_gap, (uint64_t)R.o.gap_ms, 0);
}

static void ev_presence(sess_t *s, const char *from, const char *state, const char *note) {
  size_t i = idx_of(s);
  if (R.o.scenario != SC_FANOUT || !is_watcher(i) || R.k == 0 || R.k_expected == 0 || !note)
    return;
  if (strcmp(from, R.addr[0]) != 0 || strncmp(note, "rtload-fan-", 11) != 0)
    return;
  long k = strtol(note + 11, NULL, 10);
  if (k != R.k || R.u[i].last_k == k)
    return;
  uint64_t t = now_ns();
  R.u[i].last_k = k;
  const char *want = (k & 1) ? "away" : "available";
  if (strcmp(state, want) != 0)
    R.wrong_state++;
  R.k_got++;
  R.deliveries++;
  R.k_last = t;
  stats_add_ns(&R.deliv, t - R.k_t0);
  if (R.k_got == 1)
    stats_add_ns(&R.first_w, t - R.k_t0);
  if (R.k_got == R.k_expected)
    change_done();
}

static void ev_error(sess_t *s, const char *id, const char *what) {
  size_t i = idx_of(s);
  R.errors++;
  note_reason(R.error_reasons, what);
  if (id && strcmp(id, "rtload-watch") == 0 && !R.u[i].settled)
    sess_close(s, "presence.watch was answered with an error");
}

static void ev_closed(sess_t *s, const char *why) {
  size_t i = idx_of(s);
  if (R.phase == PH_DONE && R.u[i].settled)
    return;
  if (!R.u[i].settled) {
    note_reason(R.fail_reasons, why);
    if (s->ready)
      R.ready_n--;
    settle(i, 0);
    return;
  }
  R.dropped_n++;
  note_reason(R.drop_reasons, why);
  if (R.o.scenario == SC_FANOUT && is_watcher(i) && R.k_expected > 0 && R.u[i].watching && R.u[i].last_k != R.k) {
    /* a watcher that left cannot receive this change: it is a drop, not
     * a missing delivery */
    R.k_expected--;
    if (R.k_got > 0 && R.k_got == R.k_expected)
      change_done();
  }
  if (R.o.scenario == SC_CHAT && R.u[i].peer >= 0) {
    size_t snd = (i & 1) ? (size_t)R.u[i].peer : i;
    R.inflight_total -= R.u[snd].inflight;
    R.u[snd].inflight = 0;
  }
}

static const sess_events_t events = {
    .ready = ev_ready,
    .chat = ev_chat,
    .ok = ev_ok,
    .presence = ev_presence,
    .error = ev_error,
    .closed = ev_closed,
};

/* ---- phases ------------------------------------------------------------------ */

static int open_and_ready(size_t i) { return R.s[i].phase == SESS_OPEN && R.u[i].settled && R.s[i].ready; }

static void start_change(void) {
  R.k++;
  R.k_got = 0;
  R.k_expected = 0;
  for (size_t i = 1; i < R.n; i++)
    if (open_and_ready(i) && R.u[i].watching)
      R.k_expected++;
  if (R.k_expected == 0 || !open_and_ready(0)) {
    R.aborted = "no watcher (or the fan-out user) is connected any more";
    R.phase = PH_DONE;
    R.cpu_w1 = cpu_now();
    return;
  }
  char note[32];
  snprintf(note, sizeof note, "rtload-fan-%ld", R.k);
  char id[32];
  snprintf(id, sizeof id, "f%ld", R.k);
  R.k_t0 = now_ns();
  R.phase_deadline = R.k_t0 + (uint64_t)(R.o.timeout * 1e9);
  if (sess_presence(&R.s[0], (R.k & 1) ? "away" : "available", note, id) < 0) {
    R.aborted = "the fan-out user could not send its presence";
    R.phase = PH_DONE;
    R.cpu_w1 = cpu_now();
  }
}

static void begin_run(void) {
  uint64_t t = now_ns();
  R.phase = PH_RUN;
  if (R.o.scenario == SC_IDLE) {
    R.phase_deadline = t + (uint64_t)(R.o.hold * 1e9);
    R.cpu_w0 = cpu_now();
  } else if (R.o.scenario == SC_CHAT) {
    R.w0 = t + (uint64_t)(R.o.warmup * 1e9);
    R.w1 = R.w0 + (uint64_t)(R.o.duration * 1e9);
    if (R.o.rate > 0 && !R.senders)
      R.senders = calloc(R.n / 2 + 1, sizeof *R.senders);
    for (size_t i = 0; i + 1 < R.n; i += 2) {
      if (!open_and_ready(i) || !open_and_ready(i + 1))
        continue;
      R.pairs_active++;
      if (R.o.rate > 0) {
        if (R.senders)
          R.senders[R.nsenders++] = i;
        continue;
      }
      for (long w = 0; w < R.o.window; w++)
        send_chat(i);
    }
    if (R.o.rate > 0) {
      R.pace_t0 = t;
      uv_timer_start(&R.pace, on_pace, 1, 1);
    }
    if (R.pairs_active == 0) {
      R.aborted = "no pair has both users connected";
      R.phase = PH_DONE;
    }
  } else {
    for (size_t i = 1; i < R.n; i++)
      if (open_and_ready(i) && R.u[i].watching)
        R.watchers_active++;
    if (!open_and_ready(0)) {
      R.aborted = "the fan-out user is not connected";
      R.phase = PH_DONE;
      return;
    }
    R.cpu_w0 = cpu_now();
    start_change();
  }
}

static void end_connect(void) {
  if (R.o.server_pid > 0)
    R.rss_connected = stats_proc_rss_kib((pid_t)R.o.server_pid);
  R.phase = PH_SETTLE;
  R.phase_deadline = now_ns() + (uint64_t)(R.o.settle * 1e9);
}

static void finish_all(void);

static void on_tick(uv_timer_t *t) {
  (void)t;
  uint64_t now = now_ns();
  if (R.phase != PH_DONE && now - R.t_start > (uint64_t)(R.o.max_time * 1e9)) {
    R.aborted = "the run exceeded --max-time";
    R.phase = PH_DONE;
  }
  /* handshakes (and watch confirmations) past their deadline */
  if (R.phase == PH_CONNECT_FIRST || R.phase == PH_CONNECT) {
    char why[96];
    for (size_t i = 0; i < R.next; i++)
      if (!R.u[i].settled && R.s[i].phase != SESS_CLOSED && now > R.s[i].deadline_ns) {
        snprintf(why, sizeof why, "%s within --timeout %g s",
                 R.s[i].ready ? "presence.watch was not answered" : "the handshake did not finish", R.o.timeout);
        sess_close(&R.s[i], why);
      }
    pump();
  }
  switch (R.phase) {
  case PH_CONNECT_FIRST:
    if (R.settled == R.upto) {
      if (R.ready_n == 0) {
        R.aborted = "the fan-out user could not connect";
        R.phase = PH_DONE;
        break;
      }
      R.phase = PH_CONNECT;
      R.upto = R.n;
      pump();
    }
    break;
  case PH_CONNECT:
    if (R.settled == R.n)
      end_connect();
    break;
  case PH_SETTLE:
    if (now >= R.phase_deadline)
      begin_run();
    break;
  case PH_RUN:
    if (R.o.scenario == SC_IDLE && now >= R.phase_deadline) {
      R.cpu_w1 = cpu_now();
      R.phase = PH_DONE;
    } else if (R.o.scenario == SC_CHAT && now >= R.w1) {
      R.cpu_w1 = cpu_now();
      R.phase = PH_DRAIN;
      R.phase_deadline = now + (uint64_t)(R.o.timeout * 1e9);
    } else if (R.o.scenario == SC_CHAT && now >= R.w0 && R.cpu_w0.t == 0) {
      R.cpu_w0 = cpu_now();
    } else if (R.o.scenario == SC_FANOUT && R.k_expected > 0 && now >= R.phase_deadline) {
      change_done();
    }
    break;
  case PH_DRAIN:
    if (R.inflight_total <= 0 || now >= R.phase_deadline)
      R.phase = PH_DONE;
    break;
  case PH_DONE:
    break;
  }
  if (R.phase == PH_DONE)
    finish_all();
}

static void on_signal(uv_signal_t *h, int sig) {
  (void)h;
  (void)sig;
  if (R.phase != PH_DONE) {
    R.aborted = "interrupted by a signal";
    R.phase = PH_DONE;
  }
}

static void finish_all(void) {
  static int done;
  if (done)
    return;
  done = 1;
  if (R.o.server_pid > 0)
    R.rss_after = stats_proc_rss_kib((pid_t)R.o.server_pid);
  if (R.cpu_w1.t == 0)
    R.cpu_w1 = cpu_now();
  if (R.connect_t1 == 0)
    R.connect_t1 = now_ns();
  R.unfinished = R.n - R.settled;
  for (size_t i = 0; i < R.n; i++)
    if (R.u[i].settled && R.s[i].ready && R.s[i].phase == SESS_OPEN)
      R.held++;
  for (size_t i = 0; i < R.next; i++)
    if (R.s[i].phase != SESS_CLOSED) {
      R.u[i].settled = 1;
      sess_close(&R.s[i], NULL);
    }
  uv_timer_stop(&R.tick);
  uv_close((uv_handle_t *)&R.tick, NULL);
  uv_close((uv_handle_t *)&R.gap, NULL);
  uv_close((uv_handle_t *)&R.pace, NULL);
  uv_close((uv_handle_t *)&R.sigint, NULL);
  uv_close((uv_handle_t *)&R.sigterm, NULL);
}

/* ---- report --------------------------------------------------------------------- */

static json_t *report(cpu_mark_t end) {
  double csecs = secs(R.connect_t1 - R.connect_t0);
  size_t requested = R.n;
  size_t established = R.ready_n;
  json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "tool", "rtload", "proto", R.o.proto_name, "scenario",
                        R.o.scenario_name, "url", R.o.url);
  json_object_set_new(o, "server_pid", R.o.server_pid > 0 ? json_integer(R.o.server_pid) : json_null());
  json_t *pa = json_pack("{s:I, s:I, s:f, s:f}", "first", (json_int_t)R.o.first, "concurrency",
                         (json_int_t)R.o.concurrency, "timeout_s", R.o.timeout, "settle_s", R.o.settle);
  if (R.o.scenario == SC_IDLE) {
    json_object_set_new(pa, "conns", json_integer(R.o.conns));
    json_object_set_new(pa, "hold_s", json_real(R.o.hold));
  } else if (R.o.scenario == SC_CHAT) {
    json_object_set_new(pa, "pairs", json_integer(R.o.pairs));
    json_object_set_new(pa, "window", json_integer(R.o.window));
    json_object_set_new(pa, "size", json_integer(R.o.size));
    json_object_set_new(pa, "warmup_s", json_real(R.o.warmup));
    json_object_set_new(pa, "duration_s", json_real(R.o.duration));
  } else {
    json_object_set_new(pa, "watchers", json_integer(R.o.watchers));
    json_object_set_new(pa, "changes", json_integer(R.o.changes));
    json_object_set_new(pa, "gap_ms", json_real(R.o.gap_ms));
  }
  json_object_set_new(o, "params", pa);
  json_object_set_new(o, "connect",
                      json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:o, s:o}", "requested", (json_int_t)requested,
                                "established", (json_int_t)established, "failed", (json_int_t)R.failed_n,
                                "unfinished", (json_int_t)R.unfinished,
                                "seconds", csecs, "per_s", csecs > 0 ? (double)established / csecs : 0.0,
                                "concurrency", (json_int_t)R.o.concurrency, "failures", reasons_json(R.fail_reasons),
                                "drops", reasons_json(R.drop_reasons)));
  size_t open_now = R.held;
  if (R.o.scenario == SC_IDLE) {
    json_t *idle = json_pack("{s:I, s:I, s:f}", "held", (json_int_t)open_now, "dropped_during_run",
                             (json_int_t)R.dropped_n, "hold_s", R.o.hold);
    if (R.o.server_pid > 0) {
      json_object_set_new(idle, "server_rss_kib_before", json_integer(R.rss_before));
      json_object_set_new(idle, "server_rss_kib_connected", json_integer(R.rss_connected));
      json_object_set_new(idle, "server_rss_kib_after_hold", json_integer(R.rss_after));
      json_object_set_new(idle, "server_rss_bytes_per_conn",
                          open_now ? json_real((double)(R.rss_after - R.rss_before) * 1024.0 / (double)open_now)
                                   : json_null());
    }
    json_object_set_new(o, "idle", idle);
    json_object_set_new(o, "cpu_hold", cpu_json(R.cpu_w0, R.cpu_w1, 0));
  } else if (R.o.scenario == SC_CHAT) {
    double dur = secs(R.w1 - R.w0);
    json_t *c = json_pack("{s:I, s:I, s:I, s:f, s:I, s:I, s:f}", "pairs_active", (json_int_t)R.pairs_active,
                          "window", (json_int_t)R.o.window, "size", (json_int_t)R.o.size, "duration_s", dur,
                          "sent", (json_int_t)R.sent, "received_in_window", (json_int_t)R.received_window,
                          "messages_per_s", dur > 0 ? (double)R.received_window / dur : 0.0);
    json_object_set_new(c, "offered_rate", json_real(R.o.rate));
    json_object_set_new(c, "latency", stats_json(&R.lat));
    json_object_set_new(c, "ok_latency", R.o.proto == SESS_ATRIUM ? stats_json(&R.ok_lat) : json_null());
    json_object_set_new(c, "lost", json_integer((json_int_t)(R.sent - R.received)));
    json_object_set_new(c, "misrouted", json_integer((json_int_t)R.misrouted));
    json_object_set_new(c, "bad_text", json_integer((json_int_t)R.bad_text));
    if (R.o.proto == SESS_ATRIUM)
      json_object_set_new(c, "ok_without_message_id_or_time", json_integer((json_int_t)R.ok_missing_fields));
    json_object_set_new(o, "chat", c);
    json_object_set_new(o, "cpu_window", cpu_json(R.cpu_w0, R.cpu_w1, (double)R.received_window));
  } else {
    double span = secs(R.spans_ns);
    json_t *f = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "watchers_active", (json_int_t)R.watchers_active,
                          "changes", (json_int_t)R.k, "changes_complete", (json_int_t)R.changes_complete,
                          "deliveries", (json_int_t)R.deliveries, "missing", (json_int_t)R.missing,
                          "wrong_state", (json_int_t)R.wrong_state, "deliveries_per_s",
                          span > 0 ? (double)R.deliveries / span : 0.0);
    json_object_set_new(f, "last_watcher", stats_json(&R.last_w));
    json_object_set_new(f, "first_watcher", stats_json(&R.first_w));
    json_object_set_new(f, "delivery", stats_json(&R.deliv));
    json_object_set_new(o, "fanout", f);
    json_object_set_new(o, "cpu_changes", cpu_json(R.cpu_w0, R.cpu_w1, (double)R.deliveries));
  }
  json_object_set_new(o, "cpu_total", cpu_json(R.cpu_start, end, 0));
  json_object_set_new(o, "generator_max_rss_kib", json_integer(stats_self_maxrss_kib()));
  json_object_set_new(o, "errors",
                      json_pack("{s:I, s:o}", "count", (json_int_t)R.errors, "first", reasons_json(R.error_reasons)));
  json_object_set_new(o, "aborted", R.aborted ? json_string(R.aborted) : json_null());
  return o;
}

static double jnum(json_t *o, const char *path1, const char *path2) {
  json_t *a = json_object_get(o, path1);
  json_t *b = a ? json_object_get(a, path2) : NULL;
  return json_is_number(b) ? json_number_value(b) : -1;
}

/* "12.34" or "-" when there are no samples. */
static const char *q_str(stats_samples_t *s, double q, char *buf, size_t n) {
  double v = stats_quantile_ms(s, q);
  if (v < 0)
    snprintf(buf, n, "-");
  else
    snprintf(buf, n, "%.2f", v);
  return buf;
}

static void human_line(json_t *o) {
  char a[32], b[32], c[32];
  char srv[48] = "server CPU n/a";
  const char *cpuk = R.o.scenario == SC_IDLE ? "cpu_hold" : R.o.scenario == SC_CHAT ? "cpu_window" : "cpu_changes";
  if (jnum(o, cpuk, "server_pct_core") >= 0)
    snprintf(srv, sizeof srv, "server CPU %.0f%%", jnum(o, cpuk, "server_pct_core"));
  fprintf(stderr, "rtload %s %s: ", R.o.proto_name, R.o.scenario_name);
  fprintf(stderr, "%zu/%zu connected in %.1f s; ", R.ready_n, R.n, jnum(o, "connect", "seconds"));
  if (R.o.scenario == SC_IDLE) {
    fprintf(stderr, "%.0f held", jnum(o, "idle", "held"));
    if (R.o.server_pid > 0)
      fprintf(stderr, ", server RSS %+ld KiB = %.0f B/conn", R.rss_after - R.rss_before,
              jnum(o, "idle", "server_rss_bytes_per_conn"));
  } else if (R.o.scenario == SC_CHAT) {
    fprintf(stderr, "%zu pairs, %.0f msg/s, p50 %s ms p99 %s ms max %s ms", R.pairs_active,
            jnum(o, "chat", "messages_per_s"), q_str(&R.lat, 0.5, a, sizeof a), q_str(&R.lat, 0.99, b, sizeof b),
            q_str(&R.lat, 1.0, c, sizeof c));
    if (R.o.proto == SESS_ATRIUM)
      fprintf(stderr, ", ok p50 %s ms", q_str(&R.ok_lat, 0.5, a, sizeof a));
  } else {
    fprintf(stderr, "%zu watchers, %ld/%ld changes complete, last watcher p50 %s ms max %s ms, %.0f deliveries/s",
            R.watchers_active, R.changes_complete, R.k, q_str(&R.last_w, 0.5, a, sizeof a),
            q_str(&R.last_w, 1.0, b, sizeof b), jnum(o, "fanout", "deliveries_per_s"));
  }
  char oth[48] = "";
  if (jnum(o, cpuk, "others_pct_core") >= 0)
    snprintf(oth, sizeof oth, ", other processes %.0f%%", jnum(o, cpuk, "others_pct_core"));
  fprintf(stderr, "; generator CPU %.0f%%, %s%s%s%s\n", jnum(o, cpuk, "generator_pct_core"), srv, oth,
          R.aborted ? "; ABORTED: " : "", R.aborted ? R.aborted : "");
}

/* ---- set-up ----------------------------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("rtload: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (rtload --help)\n", stderr);
  va_end(ap);
  return 2;
}

static void usage(void) {
  fputs("usage: rtload --proto atrium|xmpp --url ws://HOST:PORT/PATH --creds FILE --scenario idle|chat|fanout\n"
        "              [--first K] [--server-pid PID] [--timeout S] [--max-time S] [--concurrency C]\n"
        "              [--settle S] [--src-range LO-HI]\n"
        "  idle:   --conns N (100)  --hold S (10)\n"
        "  chat:   --pairs P (100)  --window W (1)  --size BYTES (100)  --warmup S (2)  --duration S (10)\n"
        "          --rate R (0)  messages/s over all senders, paced (open loop); 0: each sender keeps W in flight\n"
        "  fanout: --watchers W (100)  --changes K (10)  --gap-ms MS (100)\n"
        "  rtload --self-test   checks the frame encoders and decoders, prints the frames\n"
        "Credentials: one user a line, \"<address> <secret>\" (atrium: client token, xmpp: password);\n"
        "the scenario uses the lines from --first on: idle N, chat 2P (pairs 2i->2i+1), fanout 1+W\n"
        "(the first is the user whose presence changes). JSON report on stdout, one line on stderr.\n",
        stdout);
}

static int parse_long(const char *name, const char *v, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || end == v || x < lo || x > hi)
    return usage_error("--%s must be a whole number from %ld to %ld, got \"%s\"", name, lo, hi, v);
  *out = x;
  return 0;
}

static int parse_double(const char *name, const char *v, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || *end || end == v || !(x >= lo && x <= hi))
    return usage_error("--%s must be a number of seconds from %g to %g, got \"%s\"", name, lo, hi, v);
  *out = x;
  return 0;
}

static int parse_opts(int argc, char **argv, opts_t *o, int *self_test) {
  *o = (opts_t){.conns = 100, .pairs = 100, .window = 1, .size = 100, .watchers = 100, .changes = 10,
                .concurrency = 256, .hold = 10, .duration = 10, .warmup = 2, .settle = 1, .timeout = 30,
                .max_time = 900, .gap_ms = 100, .src_lo = 2, .src_hi = 254};
  static const struct option lo[] = {
      {"proto", 1, 0, 'p'},      {"url", 1, 0, 'u'},         {"creds", 1, 0, 'c'},       {"scenario", 1, 0, 's'},
      {"first", 1, 0, 'F'},      {"conns", 1, 0, 'n'},       {"pairs", 1, 0, 'P'},       {"window", 1, 0, 'w'},
      {"size", 1, 0, 'z'},       {"watchers", 1, 0, 'W'},    {"changes", 1, 0, 'k'},     {"concurrency", 1, 0, 'C'},
      {"hold", 1, 0, 'H'},       {"duration", 1, 0, 'd'},    {"warmup", 1, 0, 'a'},      {"settle", 1, 0, 'S'},
      {"timeout", 1, 0, 't'},    {"max-time", 1, 0, 'M'},    {"gap-ms", 1, 0, 'g'},      {"server-pid", 1, 0, 'i'},
      {"src-range", 1, 0, 'r'},  {"self-test", 0, 0, 'T'},   {"help", 0, 0, 'h'},        {"rate", 1, 0, 'R'},
      {0, 0, 0, 0}};
  int c, e = 0;
  *self_test = 0;
  while (!e && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'p': o->proto_name = optarg; break;
    case 'u': o->url = optarg; break;
    case 'c': o->creds = optarg; break;
    case 's': o->scenario_name = optarg; break;
    case 'F': e = parse_long("first", optarg, 0, 10000000, &o->first); break;
    case 'n': e = parse_long("conns", optarg, 1, 1000000, &o->conns); break;
    case 'P': e = parse_long("pairs", optarg, 1, 500000, &o->pairs); break;
    case 'w': e = parse_long("window", optarg, 1, 10000, &o->window); break;
    case 'z': e = parse_long("size", optarg, TEXT_PREFIX_LEN, 16384, &o->size); break;
    case 'W': e = parse_long("watchers", optarg, 1, 1000000, &o->watchers); break;
    case 'k': e = parse_long("changes", optarg, 1, 100000, &o->changes); break;
    case 'C': e = parse_long("concurrency", optarg, 1, 100000, &o->concurrency); break;
    case 'H': e = parse_double("hold", optarg, 0, 86400, &o->hold); break;
    case 'd': e = parse_double("duration", optarg, 0.1, 86400, &o->duration); break;
    case 'a': e = parse_double("warmup", optarg, 0, 3600, &o->warmup); break;
    case 'S': e = parse_double("settle", optarg, 0, 3600, &o->settle); break;
    case 't': e = parse_double("timeout", optarg, 0.1, 3600, &o->timeout); break;
    case 'M': e = parse_double("max-time", optarg, 1, 86400, &o->max_time); break;
    case 'g': e = parse_double("gap-ms", optarg, 0, 60000, &o->gap_ms); break;
    case 'R': e = parse_double("rate", optarg, 0, 10000000, &o->rate); break;
    case 'i': e = parse_long("server-pid", optarg, 1, 4194304, &o->server_pid); break;
    case 'r':
      if (sscanf(optarg, "%ld-%ld", &o->src_lo, &o->src_hi) != 2 || o->src_lo < 1 || o->src_hi > 254 ||
          o->src_lo > o->src_hi)
        e = usage_error("--src-range must be LO-HI with 1 <= LO <= HI <= 254 (last octet of 127.0.0.x), got \"%s\"",
                        optarg);
      break;
    case 'T': *self_test = 1; break;
    case 'h': usage(); exit(0);
    default: return 2;
    }
  }
  if (e)
    return e;
  if (*self_test)
    return 0;
  if (optind < argc)
    return usage_error("unexpected argument \"%s\"", argv[optind]);
  if (!o->proto_name || (strcmp(o->proto_name, "atrium") != 0 && strcmp(o->proto_name, "xmpp") != 0))
    return usage_error("--proto must be atrium or xmpp");
  o->proto = strcmp(o->proto_name, "atrium") == 0 ? SESS_ATRIUM : SESS_XMPP;
  if (!o->scenario_name)
    return usage_error("--scenario must be idle, chat or fanout");
  if (strcmp(o->scenario_name, "idle") == 0)
    o->scenario = SC_IDLE;
  else if (strcmp(o->scenario_name, "chat") == 0)
    o->scenario = SC_CHAT;
  else if (strcmp(o->scenario_name, "fanout") == 0)
    o->scenario = SC_FANOUT;
  else
    return usage_error("--scenario must be idle, chat or fanout, got \"%s\"", o->scenario_name);
  if (!o->url)
    return usage_error("--url is required (ws://HOST:PORT/PATH)");
  if (!o->creds)
    return usage_error("--creds is required (one \"<address> <secret>\" a line)");
  return 0;
}

/* Reads lines [first, first+n) of the credentials file. */
static int load_creds(const char *path, long first, size_t n) {
  FILE *f = fopen(path, "r");
  if (!f)
    return usage_error("--creds %s cannot be read: %s", path, strerror(errno));
  R.addr = calloc(n, sizeof *R.addr);
  R.secret = calloc(n, sizeof *R.secret);
  if (!R.addr || !R.secret) {
    fclose(f);
    return usage_error("out of memory for %zu users", n);
  }
  char line[2048];
  long lineno = 0, users = 0;
  size_t got = 0;
  while (got < n && fgets(line, sizeof line, f)) {
    lineno++;
    size_t l = strlen(line);
    if (l && line[l - 1] != '\n' && !feof(f)) {
      fclose(f);
      return usage_error("--creds line %ld is longer than %zu bytes", lineno, sizeof line - 2);
    }
    while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
      line[--l] = '\0';
    if (l == 0 || line[0] == '#')
      continue;
    char *sp = strchr(line, ' ');
    if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' ')) {
      fclose(f);
      return usage_error("--creds line %ld must be \"<address> <secret>\" separated by one space", lineno);
    }
    *sp = '\0';
    const char *at = strchr(line, '@');
    if (!at || at == line || !at[1]) {
      fclose(f);
      return usage_error("--creds line %ld: the address must be name@domain, got \"%s\"", lineno, line);
    }
    if (users++ < first)
      continue;
    R.addr[got] = strdup(line);
    R.secret[got] = strdup(sp + 1);
    got++;
  }
  fclose(f);
  if (got < n)
    return usage_error("--creds %s has %ld users; the scenario needs %zu after the --first %ld skipped", path, users, n,
                       first);
  return 0;
}

static int raise_nofile(size_t need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 0;
  if (rl.rlim_cur >= need)
    return 0;
  if (rl.rlim_max < need) {
    struct rlimit want = {need, need};
    if (setrlimit(RLIMIT_NOFILE, &want) == 0)
      return 0;
    fprintf(stderr,
            "rtload: RLIMIT_NOFILE hard limit %llu is below the %zu descriptors needed and cannot be raised "
            "(run as root or raise it with ulimit -Hn)\n",
            (unsigned long long)rl.rlim_max, need);
    return 2;
  }
  rl.rlim_cur = need;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    fprintf(stderr, "rtload: setrlimit(RLIMIT_NOFILE, %zu): %s\n", need, strerror(errno));
    return 2;
  }
  return 0;
}

int main(int argc, char **argv) {
  int self_test;
  int e = parse_opts(argc, argv, &R.o, &self_test);
  if (e)
    return e;
  if (self_test)
    return selftest_run();
  char err[256];
  if (wsu_parse_url(R.o.url, &R.url, err, sizeof err) < 0)
    return usage_error("%s", err);
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  int g = getaddrinfo(R.url.host, R.url.port, &hints, &ai);
  if (g != 0 || !ai)
    return usage_error("--url host %s does not resolve to IPv4: %s", R.url.host, gai_strerror(g));
  memcpy(&R.ctx.target.dst, ai->ai_addr, sizeof R.ctx.target.dst);
  freeaddrinfo(ai);

  R.n = R.o.scenario == SC_IDLE ? (size_t)R.o.conns
        : R.o.scenario == SC_CHAT ? 2 * (size_t)R.o.pairs
                                  : 1 + (size_t)R.o.watchers;
  if ((e = load_creds(R.o.creds, R.o.first, R.n)) != 0)
    return e;
  if ((e = raise_nofile(R.n + 32)) != 0)
    return e;
  R.s = calloc(R.n, sizeof *R.s);
  R.u = calloc(R.n, sizeof *R.u);
  if (!R.s || !R.u)
    return usage_error("out of memory for %zu sessions", R.n);
  for (size_t i = 0; i < R.n; i++) {
    R.u[i].peer = -1;
    if (R.o.scenario == SC_CHAT)
      R.u[i].peer = (int)(i ^ 1);
  }
  if (R.o.scenario == SC_CHAT) {
    R.text = malloc((size_t)R.o.size);
    if (!R.text)
      return usage_error("out of memory");
    memset(R.text, 'x', (size_t)R.o.size);
  }
  stats_init(&R.lat, MAX_SAMPLES);
  stats_init(&R.ok_lat, MAX_SAMPLES);
  stats_init(&R.first_w, MAX_SAMPLES);
  stats_init(&R.last_w, MAX_SAMPLES);
  stats_init(&R.deliv, MAX_SAMPLES);

  uint64_t seed;
  if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
    seed = uv_hrtime();
  wsu_rand_seed(seed);
  signal(SIGPIPE, SIG_IGN);

  R.loop = uv_default_loop();
  R.ctx.proto = R.o.proto;
  R.ctx.loop = R.loop;
  R.ctx.target.url = &R.url;
  R.ctx.target.protocol = R.o.proto == SESS_XMPP ? "xmpp" : NULL;
  R.ctx.ev = &events;

  if (R.o.server_pid > 0) {
    R.rss_before = stats_proc_rss_kib((pid_t)R.o.server_pid);
    if (R.rss_before < 0)
      return usage_error("--server-pid %ld: /proc/%ld/status cannot be read", R.o.server_pid, R.o.server_pid);
  }
  R.t_start = now_ns();
  R.cpu_start = cpu_now();
  R.connect_t0 = R.t_start;
  R.phase = R.o.scenario == SC_FANOUT ? PH_CONNECT_FIRST : PH_CONNECT;
  R.upto = R.o.scenario == SC_FANOUT ? 1 : R.n;
  uv_timer_init(R.loop, &R.tick);
  uv_timer_init(R.loop, &R.gap);
  uv_timer_init(R.loop, &R.pace);
  uv_signal_init(R.loop, &R.sigint);
  uv_signal_init(R.loop, &R.sigterm);
  uv_signal_start(&R.sigint, on_signal, SIGINT);
  uv_signal_start(&R.sigterm, on_signal, SIGTERM);
  uv_timer_start(&R.tick, on_tick, TICK_MS, TICK_MS);
  pump();
  uv_run(R.loop, UV_RUN_DEFAULT);

  json_t *rep = report(cpu_now());
  char *js = json_dumps(rep, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
  if (js) {
    puts(js);
    free(js);
  }
  human_line(rep);
  json_decref(rep);
  int rc = R.aborted ? 1 : 0;
  for (size_t i = 0; i < R.n; i++) {
    free(R.addr[i]);
    free(R.secret[i]);
  }
  free(R.addr);
  free(R.secret);
  free(R.s);
  free(R.u);
  free(R.text);
  free(R.senders);
  stats_free(&R.lat);
  stats_free(&R.ok_lat);
  stats_free(&R.first_w);
  stats_free(&R.last_w);
  stats_free(&R.deliv);
  uv_loop_close(R.loop);
  return rc;
}
