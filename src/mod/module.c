#include "mod/module.h"

static const atrium_module_t *const *list_of;
static size_t count_of;

void modules_set(const atrium_module_t *const *list, size_t count) {
  list_of = list;
  count_of = count;
}

const atrium_module_t *const *modules_list(size_t *count) {
  *count = count_of;
  return list_of;
}

const char *module_state_name(module_state_t state) {
  switch (state) {
  case MODULE_OFF: return "off";
  case MODULE_OK: return "ok";
  case MODULE_WARNING: return "warning";
  case MODULE_FAILING: return "failing";
  }
  return "unknown";
}
