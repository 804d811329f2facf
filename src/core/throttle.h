/* Login throttling, one policy for every password login (admin, client,
 * the UM settings page), after OpenSSH's PerSourcePenalties and OWASP's
 * rule that throttling must never lock the rightful owner out:
 *
 *  - The source address (netaddr_client_key: IPv6 by /64) is penalised
 *    first: after `free_failures` failures within `window_ms`, each further
 *    failure blocks the source for 1, 2, 4 ... seconds, at most
 *    `max_delay_ms`. A blocked source is refused before its password is
 *    looked at. A success does not clear the source's count: otherwise an
 *    attacker with one valid account could mix in its logins to wipe it.
 *  - An account is never locked. When failures for it come from
 *    `account_sources` distinct sources within the window it is "slowed":
 *    a source that has itself failed for this account in the last
 *    `slowed_wait_ms` is refused for it, while a source without such a
 *    failure still gets its password checked, so the owner from a clean
 *    address logs in.
 *  - Successful logins are rate limited per source and per account (token
 *    buckets): valid credentials cannot be used to fill the token table or
 *    keep the password hasher busy.
 *  - Keys are exact (the whole text, compared byte for byte after a keyed
 *    hash picks the bucket). Memory is bounded by `capacity` entries per
 *    table (sources, accounts); when a table is full the least recently used
 *    entry that holds nothing live (no failure within the window, no block,
 *    no attempt in flight, a full bucket) makes room. If there is none, the
 *    newcomer is counted in the table's one shared overflow entry instead:
 *    a flood of fresh keys can neither push out nor reset a live penalty.
 *
 * Thread-safe (one mutex per throttle). Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct throttle_policy {
  size_t capacity;          /* entries per table (sources, accounts) */
  unsigned free_failures;   /* failures of a source before it is delayed */
  int64_t window_ms;        /* a failure is forgotten after this */
  int64_t max_delay_ms;     /* the longest block of a source */
  unsigned account_sources; /* distinct failing sources that slow an account */
  int64_t slowed_wait_ms;   /* a failed source's wait for a slowed account */
  unsigned ok_burst_source; /* successful logins a source may make at once */
  int64_t ok_refill_source_ms; /* and one more after each such interval */
  unsigned ok_burst_account;
  int64_t ok_refill_account_ms;
} throttle_policy_t;

/* The policy of the server's logins: 16384 entries, 5 free failures, 15
 * minutes, at most 300 s, 8 sources, 60 s, 30 successes per source then one
 * per 2 s, 10 per account then one per 6 s. */
void throttle_default_policy(throttle_policy_t *p);

typedef struct throttle throttle_t;
throttle_t *throttle_new(const throttle_policy_t *policy); /* NULL on OOM */
void throttle_free(throttle_t *t);                          /* accepts NULL */

typedef enum throttle_verdict {
  THROTTLE_GO,      /* check the password, then call throttle_end */
  THROTTLE_SOURCE,  /* the source is blocked */
  THROTTLE_ACCOUNT, /* the account is slowed and this source failed for it */
  THROTTLE_RATE,    /* too many successful logins (source or account) */
} throttle_verdict_t;

typedef enum throttle_outcome {
  THROTTLE_OK,     /* the password was right */
  THROTTLE_FAILED, /* wrong name or password */
  THROTTLE_ERROR,  /* neither (a store failure): counts nothing */
} throttle_outcome_t;

/* realm separates the account namespaces ("admin", "client"); the account
 * is compared exactly, so the caller folds case where its logins do. source
 * is a client address as text (netaddr_client_key_text is applied here).
 * On anything but THROTTLE_GO *retry_after_s is the wait in seconds (>= 1)
 * and throttle_end must not be called. now_ms: a monotonic clock. */
throttle_verdict_t throttle_begin(throttle_t *t, const char *realm, const char *account,
                                  const char *source, int64_t now_ms, int *retry_after_s);
void throttle_end(throttle_t *t, const char *realm, const char *account, const char *source,
                  throttle_outcome_t outcome, int64_t now_ms);

typedef struct throttle_stats {
  size_t sources, accounts;            /* entries in use */
  uint64_t refused[4];                 /* by verdict (THROTTLE_GO unused) */
  uint64_t evicted, overflowed;        /* entries pushed out; newcomers counted in overflow */
} throttle_stats_t;
void throttle_get_stats(throttle_t *t, throttle_stats_t *out);

/* ---- the process-wide throttle of the server's logins ---------------------------- */

/* The shared instance with throttle_default_policy (made on first use);
 * NULL only when out of memory, and then logins go unthrottled rather than
 * refused. */
throttle_t *throttle_logins(void);
/* Sets the successful-login bursts and the free failures per source of the
 * shared instance (atlas.xml <Limits loginsPerSource loginsPerAccount
 * loginFailuresPerSource>); call before its first use, later calls change
 * nothing. */
void throttle_logins_configure(unsigned ok_per_source, unsigned ok_per_account,
                               unsigned free_failures);
int64_t throttle_now_ms(void);
/* Forgets everything the shared instance holds (between unit tests). */
void throttle_logins_reset(void);
/* atrium_login_throttle_* lines (a metrics_write_fn). */
void throttle_write_metrics(FILE *f, void *ctx);
