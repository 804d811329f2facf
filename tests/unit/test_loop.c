/* The event loop and the worker pool: work posted from other threads runs on
 * the loop's thread in posting order; a stopped loop refuses work; a pool runs
 * every job it accepted, refuses what does not fit its queue, and joins. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/loop.h"
#include "core/map.h"
#include "core/workpool.h"

typedef struct order {
  loop_t *loop;
  int seen[100];
  atomic_int n;
  atomic_bool wrong_thread;
} order_t;

typedef struct step {
  order_t *o;
  int value;
} step_t;

static void record(void *arg) {
  step_t *s = arg;
  if (!loop_on_thread(s->o->loop)) atomic_store(&s->o->wrong_thread, true);
  s->o->seen[atomic_fetch_add(&s->o->n, 1)] = s->value;
}

static void nothing(void *arg) {}

static void test_post_runs_in_order_on_the_loop(void **state) {
  order_t o = {.loop = loop_new("test")};
  char err[256];
  assert_non_null(o.loop);
  assert_int_equal(loop_start(o.loop, err, sizeof err), 0);
  assert_false(loop_on_thread(o.loop));
  step_t steps[100];
  for (int i = 0; i < 100; i++) {
    steps[i] = (step_t){.o = &o, .value = i};
    assert_int_equal(loop_post(o.loop, record, &steps[i]), 0);
  }
  /* loop_call returns once everything posted before it ran. */
  assert_int_equal(loop_call(o.loop, nothing, NULL, 5000), 0);
  assert_int_equal(atomic_load(&o.n), 100);
  for (int i = 0; i < 100; i++) assert_int_equal(o.seen[i], i);
  assert_false(atomic_load(&o.wrong_thread));
  loop_stop(o.loop);
  assert_int_equal(loop_post(o.loop, nothing, NULL), -ESHUTDOWN);
  assert_int_equal(loop_call(o.loop, nothing, NULL, 100), -ESHUTDOWN);
  loop_free(o.loop);
}

static void slow(void *arg) {
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, NULL);
  atomic_store((atomic_bool *)arg, true);
}

static void test_call_times_out_and_still_runs(void **state) {
  loop_t *l = loop_new("test");
  char err[256];
  assert_int_equal(loop_start(l, err, sizeof err), 0);
  static atomic_bool done; /* outlives the call, as loop_call asks */
  atomic_store(&done, false);
  assert_int_equal(loop_call(l, slow, &done, 50), -ETIMEDOUT);
  assert_false(atomic_load(&done));
  assert_int_equal(loop_call(l, nothing, NULL, 5000), 0);
  assert_true(atomic_load(&done));
  loop_free(l);
}

typedef struct timed {
  uv_timer_t timer;
  loop_t *loop;
  uint64_t armed_at, fired_at;
  atomic_bool fired;
} timed_t;

static void on_timer(uv_timer_t *t) {
  timed_t *x = t->data;
  x->fired_at = loop_now_ms(x->loop);
  atomic_store(&x->fired, true);
  uv_close((uv_handle_t *)t, NULL);
}

static void arm(void *arg) {
  timed_t *x = arg;
  uv_timer_init(loop_uv(x->loop), &x->timer);
  x->timer.data = x;
  x->armed_at = loop_now_ms(x->loop);
  uv_timer_start(&x->timer, on_timer, 30, 0);
}

static void test_timer_on_the_loop(void **state) {
  /* The loop is libuv's: handles made on its thread work as usual. */
  static timed_t x;
  x.loop = loop_new("test");
  char err[256];
  assert_int_equal(loop_start(x.loop, err, sizeof err), 0);
  assert_int_equal(loop_call(x.loop, arm, &x, 5000), 0);
  for (int i = 0; i < 200 && !atomic_load(&x.fired); i++) usleep(5000);
  assert_true(atomic_load(&x.fired));
  assert_true(x.fired_at - x.armed_at >= 30);
  loop_free(x.loop);
}

static atomic_int jobs_done;

static void count_job(void *arg) {
  struct timespec ts = {0, 1000 * 1000};
  nanosleep(&ts, NULL);
  atomic_fetch_add(&jobs_done, 1);
}

static void test_pool_runs_everything_it_accepted(void **state) {
  workpool_t *p = workpool_new("test", 2, 1000);
  char err[256];
  assert_non_null(p);
  assert_int_equal(workpool_start(p, err, sizeof err), 0);
  atomic_store(&jobs_done, 0);
  for (int i = 0; i < 500; i++) assert_int_equal(workpool_submit(p, count_job, NULL), 0);
  workpool_stop(p); /* runs what is queued, then joins */
  assert_int_equal(atomic_load(&jobs_done), 500);
  assert_int_equal(workpool_submit(p, count_job, NULL), -ESHUTDOWN);
  workpool_stats_t s;
  workpool_get_stats(p, &s);
  assert_int_equal(s.done, 500);
  assert_int_equal(s.queued, 0);
  workpool_free(p);
}

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;

static void blocked_job(void *arg) {
  pthread_mutex_lock(&gate);
  pthread_mutex_unlock(&gate);
  atomic_fetch_add(&jobs_done, 1);
}

static void test_full_queue_refuses(void **state) {
  workpool_t *p = workpool_new("test", 1, 4);
  char err[256];
  assert_int_equal(workpool_start(p, err, sizeof err), 0);
  atomic_store(&jobs_done, 0);
  pthread_mutex_lock(&gate);
  /* One job occupies the thread, four wait: the fifth that waits is refused. */
  int accepted = 0, refused = 0;
  for (int i = 0; i < 10; i++) {
    int r = workpool_submit(p, blocked_job, NULL);
    if (r == 0) accepted++;
    if (r == -EAGAIN) refused++;
    if (i == 0) {
      /* Let the worker take the first job off the queue. */
      for (int w = 0; w < 200; w++) {
        workpool_stats_t s;
        workpool_get_stats(p, &s);
        if (s.running == 1) break;
        usleep(1000);
      }
    }
  }
  assert_int_equal(accepted, 5);
  assert_int_equal(refused, 5);
  pthread_mutex_unlock(&gate);
  workpool_stop(p);
  assert_int_equal(atomic_load(&jobs_done), 5);
  workpool_stats_t s;
  workpool_get_stats(p, &s);
  assert_int_equal(s.refused, 5);
  workpool_free(p);
}

/* The map the loops index their state with: every key found after inserts,
 * deletions in any order and growth, and nothing found that was deleted. */
static void test_map(void **state) {
  map_t *m = map_new();
  assert_non_null(m);
  enum { N = 20000 };
  static int values[N];
  char key[32];
  for (int i = 0; i < N; i++) {
    values[i] = i;
    snprintf(key, sizeof key, "user-%d", i);
    assert_int_equal(map_put_str(m, key, &values[i]), 0);
  }
  assert_int_equal(map_count(m), N);
  for (int i = 0; i < N; i += 3) {
    snprintf(key, sizeof key, "user-%d", i);
    assert_ptr_equal(map_del_str(m, key), &values[i]);
    assert_null(map_del_str(m, key));
  }
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "user-%d", i);
    int *v = map_get_str(m, key);
    if (i % 3 == 0)
      assert_null(v);
    else
      assert_ptr_equal(v, &values[i]);
  }
  /* Replacing keeps one entry; integer keys live beside string keys. */
  assert_int_equal(map_put_str(m, "user-1", &values[5]), 0);
  assert_ptr_equal(map_get_str(m, "user-1"), &values[5]);
  assert_int_equal(map_put_u64(m, 42, &values[7]), 0);
  assert_ptr_equal(map_get_u64(m, 42), &values[7]);
  assert_null(map_get_u64(m, 43));
  assert_int_equal(map_count(m), N - (N + 2) / 3 + 1);
  map_free(m);
  map_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_post_runs_in_order_on_the_loop),
      cmocka_unit_test(test_call_times_out_and_still_runs),
      cmocka_unit_test(test_timer_on_the_loop),
      cmocka_unit_test(test_pool_runs_everything_it_accepted),
      cmocka_unit_test(test_full_queue_refuses),
      cmocka_unit_test(test_map),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
