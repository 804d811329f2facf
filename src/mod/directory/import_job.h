/* Imports as jobs: a big user import with passwords (Argon2id, tens of
 * milliseconds of CPU per row) runs on the CPU pool one row at a time, so
 * that other work (logins, screen sharing) takes turns with it, and the
 * client follows its progress at GET /api/v1/jobs/{id}. Still all or
 * nothing: the rows are written in one transaction after the last hash.
 * Jobs live in this node's memory (at most IMPORT_JOBS_MAX, the finished
 * ones for an hour); a restart forgets them, and an unfinished one then
 * imported nothing. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "core/workpool.h"
#include "mod/directory/directory.h"

/* From this many rows with a password on, an import is a job. */
#define IMPORT_JOB_MIN_PASSWORDS 50
#define IMPORT_JOBS_MAX 32

/* Takes the batch (also on failure). *id: the job's id (IMPORT_JOB_ID_MAX).
 * -EAGAIN: IMPORT_JOBS_MAX jobs are unfinished; -ESHUTDOWN: stopping or no
 * pool; -ENOMEM. */
#define IMPORT_JOB_ID_MAX 32
int import_job_start(workpool_t *pool, store_t *store, const directory_actor_t *by,
                     directory_batch_t *batch, const char *what, char id[IMPORT_JOB_ID_MAX]);

/* {"id", "kind", "state": queued|running|done|failed, "done", "total",
 * "imported", "errors": [...], "detail", "created_at", "finished_at"};
 * NULL when there is no such job (or out of memory: *found tells). */
json_t *import_job_json(const char *id, bool *found);

/* At the module's stop: running jobs end as failed (nothing imported),
 * then every job is freed. Waits at most a few seconds. */
void import_jobs_stop(void);
