#include "core/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct post {
  struct post *next;
  loop_fn fn;
  void *arg;
} post_t;

struct loop {
  char name[32];
  uv_loop_t uv;
  uv_async_t wake;
  pthread_t thread;
  bool started;
  pthread_t owner; /* the loop's thread, valid while started */
  pthread_mutex_t lock; /* guards the posted list and `accepting` */
  post_t *head, *tail;
  bool accepting, stopping;
};

loop_t *loop_new(const char *name) {
  loop_t *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  snprintf(l->name, sizeof l->name, "%s", name);
  pthread_mutex_init(&l->lock, NULL);
  if (uv_loop_init(&l->uv) != 0) {
    pthread_mutex_destroy(&l->lock);
    free(l);
    return NULL;
  }
  return l;
}

static void close_any(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Runs what was posted; on stop, closes the loop's handles so uv_run ends. */
static void on_wake(uv_async_t *a) {
  loop_t *l = a->data;
  pthread_mutex_lock(&l->lock);
  post_t *p = l->head;
  l->head = l->tail = NULL;
  bool stopping = l->stopping;
  pthread_mutex_unlock(&l->lock);
  while (p) {
    post_t *next = p->next;
    p->fn(p->arg);
    free(p);
    p = next;
  }
  if (stopping) uv_walk(&l->uv, close_any, NULL);
}

static void *run(void *arg) {
  loop_t *l = arg;
  uv_run(&l->uv, UV_RUN_DEFAULT);
  return NULL;
}

int loop_start(loop_t *l, char *err, size_t errlen) {
  int r = uv_async_init(&l->uv, &l->wake, on_wake);
  if (r != 0) {
    snprintf(err, errlen, "Cannot start the %s event loop: %s.", l->name, uv_strerror(r));
    return -EIO;
  }
  l->wake.data = l;
  pthread_mutex_lock(&l->lock);
  l->accepting = true;
  l->stopping = false;
  pthread_mutex_unlock(&l->lock);
  r = pthread_create(&l->thread, NULL, run, l);
  if (r != 0) {
    snprintf(err, errlen, "Cannot start the %s event loop thread: %s.", l->name, strerror(r));
    pthread_mutex_lock(&l->lock);
    l->accepting = false;
    pthread_mutex_unlock(&l->lock);
    uv_close((uv_handle_t *)&l->wake, NULL);
    uv_run(&l->uv, UV_RUN_NOWAIT);
    return -r;
  }
  l->owner = l->thread;
  l->started = true;
  return 0;
}

int loop_post(loop_t *l, loop_fn fn, void *arg) {
  post_t *p = malloc(sizeof *p);
  if (!p) return -ENOMEM;
  *p = (post_t){.fn = fn, .arg = arg};
  pthread_mutex_lock(&l->lock);
  if (!l->accepting) {
    pthread_mutex_unlock(&l->lock);
    free(p);
    return -ESHUTDOWN;
  }
  if (l->tail)
    l->tail->next = p;
  else
    l->head = p;
  l->tail = p;
  /* Under the lock: loop_stop cannot close the async handle in between. */
  uv_async_send(&l->wake);
  pthread_mutex_unlock(&l->lock);
  return 0;
}

typedef struct call {
  loop_fn fn;
  void *arg;
  pthread_mutex_t lock;
  pthread_cond_t done_cond;
  bool done, abandoned;
} call_t;

static void call_run(void *arg) {
  call_t *c = arg;
  c->fn(c->arg);
  pthread_mutex_lock(&c->lock);
  c->done = true;
  bool abandoned = c->abandoned;
  pthread_cond_signal(&c->done_cond);
  pthread_mutex_unlock(&c->lock);
  if (abandoned) {
    pthread_cond_destroy(&c->done_cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
  }
}

int loop_call(loop_t *l, loop_fn fn, void *arg, int timeout_ms) {
  if (loop_on_thread(l)) {
    fn(arg);
    return 0;
  }
  call_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->fn = fn;
  c->arg = arg;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->done_cond, NULL);
  int r = loop_post(l, call_run, c);
  if (r < 0) {
    pthread_cond_destroy(&c->done_cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return r;
  }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&c->lock);
  while (!c->done)
    if (pthread_cond_timedwait(&c->done_cond, &c->lock, &until) == ETIMEDOUT) break;
  bool done = c->done;
  if (!done) c->abandoned = true; /* call_run frees it when it runs */
  pthread_mutex_unlock(&c->lock);
  if (!done) return -ETIMEDOUT;
  pthread_cond_destroy(&c->done_cond);
  pthread_mutex_destroy(&c->lock);
  free(c);
  return 0;
}

uv_loop_t *loop_uv(loop_t *l) { return &l->uv; }

bool loop_on_thread(const loop_t *l) {
  return l->started && pthread_equal(pthread_self(), l->owner);
}

uint64_t loop_now_ms(loop_t *l) { return uv_now(&l->uv); }

void loop_stop(loop_t *l) {
  if (!l || !l->started) return;
  pthread_mutex_lock(&l->lock);
  l->accepting = false;
  l->stopping = true;
  uv_async_send(&l->wake);
  pthread_mutex_unlock(&l->lock);
  pthread_join(l->thread, NULL);
  l->started = false;
  /* Posts that lost the race with the stop never ran; they carry no
   * resources of the loop, only their own. */
  post_t *p = l->head;
  l->head = l->tail = NULL;
  while (p) {
    post_t *next = p->next;
    free(p);
    p = next;
  }
}

void loop_free(loop_t *l) {
  if (!l) return;
  loop_stop(l);
  uv_loop_close(&l->uv);
  pthread_mutex_destroy(&l->lock);
  free(l);
}
