#include "mod/directory/import_job.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/secret.h"

/* Finished jobs are kept this long for the client to read their outcome. */
#define IMPORT_JOB_KEEP_SECONDS 3600

typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED } job_state_t;
static const char *const state_names[] = {"queued", "running", "done", "failed"};

typedef struct import_job {
  char id[IMPORT_JOB_ID_MAX];
  char what[16];
  char admin[128], address[64];
  workpool_t *pool;
  store_t *store;
  directory_batch_t *batch; /* touched only by the step running now */
  /* Guarded by J.lock: */
  job_state_t state;
  size_t done, total;
  int64_t imported;
  problem_t err;
  time_t created, finished;
} import_job_t;

static struct {
  pthread_mutex_t lock;
  import_job_t *jobs[IMPORT_JOBS_MAX];
  unsigned running; /* jobs with a step queued or running */
  bool stopping;
} J = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void job_free(import_job_t *j) {
  if (!j) return;
  directory_batch_free(j->batch);
  problem_clear(&j->err);
  free(j);
}

static void rfc3339(time_t t, char *buf, size_t len) {
  struct tm tm;
  if (!t || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm)) buf[0] = '\0';
}

/* Under J.lock: the job is over; its batch (and the hashes) can go. */
static void finish_locked(import_job_t *j, job_state_t state) {
  j->state = state;
  j->finished = time(NULL);
  J.running--;
}

static void job_step(void *arg) {
  import_job_t *j = arg;
  pthread_mutex_lock(&J.lock);
  bool stopping = J.stopping;
  if (!stopping) j->state = JOB_RUNNING;
  pthread_mutex_unlock(&J.lock);
  if (stopping) {
    pthread_mutex_lock(&J.lock);
    problem_set(&j->err, 503, "stopped", "Import stopped",
                "The server stopped before the import was finished; nothing was imported. "
                "Send the import again.");
    finish_locked(j, JOB_FAILED);
    pthread_mutex_unlock(&J.lock);
    return;
  }
  bool more = false;
  int r = directory_import_hash_step(j->batch, &more);
  if (r == 0 && more) {
    pthread_mutex_lock(&J.lock);
    j->done++;
    pthread_mutex_unlock(&J.lock);
    /* One row per turn: other CPU work queued meanwhile runs in between. */
    int s = workpool_submit(j->pool, job_step, j);
    if (s == 0) return;
    if (s == -EAGAIN) {
      /* A full queue: go on here rather than give up the import. */
      job_step(j);
      return;
    }
    r = s;
  }
  int64_t imported = 0;
  problem_t err = {0};
  if (r == 0) {
    pthread_mutex_lock(&J.lock);
    if (directory_batch_passwords(j->batch) == 0) j->done = j->total;
    pthread_mutex_unlock(&J.lock);
    directory_actor_t by = {.admin = j->admin, .address = j->address};
    r = directory_import_write(j->store, &by, j->batch, &imported, &err);
  }
  pthread_mutex_lock(&J.lock);
  j->imported = imported;
  if (r == 0) {
    finish_locked(j, JOB_DONE);
  } else {
    problem_clear(&j->err);
    j->err = err;
    memset(&err, 0, sizeof err);
    if (!j->err.detail[0]) {
      if (r == -ESHUTDOWN)
        snprintf(j->err.detail, sizeof j->err.detail,
                 "The server stopped before the import was finished; nothing was imported.");
      else if (r == -EINVAL)
        snprintf(j->err.detail, sizeof j->err.detail,
                 "The import was refused; nothing was imported.");
      else
        snprintf(j->err.detail, sizeof j->err.detail,
                 "The import could not be written (%s); nothing was imported. See the server "
                 "log.",
                 strerror(-r));
    }
    finish_locked(j, JOB_FAILED);
  }
  directory_batch_free(j->batch);
  j->batch = NULL;
  pthread_mutex_unlock(&J.lock);
  problem_clear(&err);
  if (r == 0)
    log_info("import job %s: imported %lld %s(s)", j->id, (long long)imported, j->what);
  else
    log_notice("import job %s failed: %s", j->id, j->err.detail);
}

/* Under J.lock: a free place, evicting finished jobs past their time (or the
 * oldest finished one when all places are taken). -1 when all are running. */
static int free_slot_locked(time_t now) {
  int slot = -1, oldest = -1;
  for (int i = 0; i < IMPORT_JOBS_MAX; i++) {
    import_job_t *j = J.jobs[i];
    if (j && j->finished && now - j->finished > IMPORT_JOB_KEEP_SECONDS) {
      job_free(j);
      J.jobs[i] = NULL;
    }
    j = J.jobs[i];
    if (!j) {
      if (slot < 0) slot = i;
    } else if (j->finished && (oldest < 0 || j->finished < J.jobs[oldest]->finished)) {
      oldest = i;
    }
  }
  if (slot < 0 && oldest >= 0) {
    job_free(J.jobs[oldest]);
    J.jobs[oldest] = NULL;
    slot = oldest;
  }
  return slot;
}

int import_job_start(workpool_t *pool, store_t *store, const directory_actor_t *by,
                     directory_batch_t *batch, const char *what, char id[IMPORT_JOB_ID_MAX]) {
  id[0] = '\0';
  if (!pool) {
    directory_batch_free(batch);
    return -ESHUTDOWN;
  }
  import_job_t *j = calloc(1, sizeof *j);
  char *token = NULL;
  if (!j || secret_random_token(12, &token) != 0) {
    free(j);
    directory_batch_free(batch);
    return -ENOMEM;
  }
  snprintf(j->id, sizeof j->id, "%s", token);
  free(token);
  snprintf(j->what, sizeof j->what, "%s", what);
  snprintf(j->admin, sizeof j->admin, "%s", by && by->admin ? by->admin : "unknown");
  snprintf(j->address, sizeof j->address, "%s", by && by->address ? by->address : "");
  j->pool = pool;
  j->store = store;
  j->batch = batch;
  j->total = directory_batch_passwords(batch);
  j->created = time(NULL);
  problem_init(&j->err);

  pthread_mutex_lock(&J.lock);
  int slot = J.stopping ? -2 : free_slot_locked(j->created);
  if (slot < 0) {
    pthread_mutex_unlock(&J.lock);
    job_free(j);
    return slot == -2 ? -ESHUTDOWN : -EAGAIN;
  }
  J.jobs[slot] = j;
  J.running++;
  pthread_mutex_unlock(&J.lock);
  snprintf(id, IMPORT_JOB_ID_MAX, "%s", j->id);
  int r = workpool_submit(pool, job_step, j);
  if (r != 0) {
    pthread_mutex_lock(&J.lock);
    J.jobs[slot] = NULL;
    J.running--;
    pthread_mutex_unlock(&J.lock);
    job_free(j);
    id[0] = '\0';
    return r;
  }
  log_info("import job %s: %zu %s(s) with passwords, started by %s", id, j->total, what,
           j->admin);
  return 0;
}

json_t *import_job_json(const char *id, bool *found) {
  *found = false;
  json_t *o = NULL;
  pthread_mutex_lock(&J.lock);
  for (int i = 0; i < IMPORT_JOBS_MAX; i++) {
    import_job_t *j = J.jobs[i];
    if (!j || strcmp(j->id, id) != 0) continue;
    *found = true;
    char created[32], finished[32];
    rfc3339(j->created, created, sizeof created);
    rfc3339(j->finished, finished, sizeof finished);
    json_t *errors = j->err.errors ? json_deep_copy(j->err.errors) : json_array();
    o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:o, s:s, s:o}", "id", j->id, "kind",
                  "users.import", "state", state_names[j->state], "done", (json_int_t)j->done,
                  "total", (json_int_t)j->total, "imported", (json_int_t)j->imported, "errors",
                  errors ? errors : json_array(), "detail",
                  j->err.detail[0] ? json_string(j->err.detail) : json_null(), "created_at",
                  created, "finished_at", finished[0] ? json_string(finished) : json_null());
    break;
  }
  pthread_mutex_unlock(&J.lock);
  return o;
}

void import_jobs_stop(void) {
  pthread_mutex_lock(&J.lock);
  J.stopping = true;
  pthread_mutex_unlock(&J.lock);
  /* A step notices within one hash; bounded, in case the pool is gone. */
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(&J.lock);
    unsigned running = J.running;
    pthread_mutex_unlock(&J.lock);
    if (!running) break;
    usleep(10000);
  }
  pthread_mutex_lock(&J.lock);
  if (J.running == 0)
    for (int i = 0; i < IMPORT_JOBS_MAX; i++) {
      job_free(J.jobs[i]);
      J.jobs[i] = NULL;
    }
  else
    log_warning("%u import job(s) still running at stop", J.running);
  pthread_mutex_unlock(&J.lock);
}
