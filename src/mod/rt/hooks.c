/* The other modules' hooks into the real-time core (rt.h): a small fixed
 * table filled in their init and read afterwards without a lock (it does
 * not change while the server runs). */
#include <errno.h>
#include <stddef.h>

#include "mod/rt/internal.h"

#define HOOKS_MAX 8

static const rt_hooks_t *hooks[HOOKS_MAX];
static size_t hook_count;
static const rt_federation_t *federation;

int rt_add_hooks(const rt_hooks_t *h) {
  if (hook_count == HOOKS_MAX) return -ENOSPC;
  hooks[hook_count++] = h;
  return 0;
}

void rt_hooks_clear(void) {
  hook_count = 0;
  federation = NULL;
}

void rt_set_federation(const rt_federation_t *f) { federation = f; }
const rt_federation_t *rt_federation(void) { return federation; }

int rt_hooks_message(store_txn_t *t, const rt_message_event_t *m) {
  for (size_t i = 0; i < hook_count; i++)
    if (hooks[i]->message_in_txn) {
      int r = hooks[i]->message_in_txn(t, m, hooks[i]->ctx);
      if (r < 0) return r;
    }
  return 0;
}

int rt_hooks_read(store_txn_t *t, int64_t reader, int64_t peer, int64_t upto) {
  for (size_t i = 0; i < hook_count; i++)
    if (hooks[i]->read_in_txn) {
      int r = hooks[i]->read_in_txn(t, reader, peer, upto, hooks[i]->ctx);
      if (r < 0) return r;
    }
  return 0;
}

int rt_hooks_journal(store_txn_t *t, const store_journal_t *e) {
  for (size_t i = 0; i < hook_count; i++)
    if (hooks[i]->journal_in_txn) {
      int r = hooks[i]->journal_in_txn(t, e, hooks[i]->ctx);
      if (r < 0) return r;
    }
  return 0;
}

void rt_hooks_committed(void) {
  for (size_t i = 0; i < hook_count; i++)
    if (hooks[i]->committed) hooks[i]->committed(hooks[i]->ctx);
}

void rt_hooks_presence(const char *name, rt_state_t state, const char *note) {
  for (size_t i = 0; i < hook_count; i++)
    if (hooks[i]->presence_changed) hooks[i]->presence_changed(name, state, note, hooks[i]->ctx);
}
