#include "ctl/render.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Values as an administrator reads them: strings bare, "" spelled out, and
 * everything else (lists, policy objects) as compact JSON. Returns a
 * malloc'd string, or NULL on out of memory. */
static char *format_value(const json_t *v) {
  if (!v || json_is_null(v))
    return strdup("(none)");
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    return strdup(s[0] ? s : "(blank)");
  }
  return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The API shows a secret as {"set": bool} and nothing else about it. */
static bool is_secret_value(const json_t *v) {
  return json_is_object(v) && json_object_size(v) == 1 &&
         json_is_boolean(json_object_get(v, "set"));
}

void ctl_render_warning(FILE *f, const json_t *warning) {
  if (json_is_string(warning)) {
    fprintf(f, "  warning: %s\n", json_string_value(warning));
    return;
  }
  const char *key = json_string_value(json_object_get(warning, "key"));
  const char *message = json_string_value(json_object_get(warning, "message"));
  if (key)
    fprintf(f, "  warning: %s: %s\n", key, message ? message : "(no message)");
  else
    fprintf(f, "  warning: %s\n", message ? message : "(no message)");
}

void ctl_render_setting(FILE *f, const char *key, const json_t *entry) {
  const json_t *value = json_object_get(entry, "value");
  const json_t *effective = json_object_get(entry, "effective");
  const char *source = json_string_value(json_object_get(entry, "source"));

  fprintf(f, "%s = ", key);
  if (is_secret_value(value)) {
    fputs(json_is_true(json_object_get(value, "set")) ? "(set)" : "(not set)", f);
  } else {
    char *text = format_value(value);
    fputs(text ? text : "?", f);
    free(text);
    if (effective && !json_equal(effective, value)) {
      char *eff = format_value(effective);
      fprintf(f, " → %s", eff ? eff : "?");
      free(eff);
    }
  }
  if (source)
    fprintf(f, "  (%s)", source);
  fputc('\n', f);

  /* Warnings here belong to this key, so the key is not repeated. */
  size_t i;
  json_t *w;
  json_array_foreach(json_object_get(entry, "warnings"), i, w) {
    const char *message = json_is_string(w) ? json_string_value(w)
                                            : json_string_value(json_object_get(w, "message"));
    fprintf(f, "    warning: %s\n", message ? message : "(no message)");
  }
}

static bool matches(const char *only, const char *key, const char *section) {
  if (!only)
    return true;
  return (key && strcmp(only, key) == 0) || (section && strcmp(only, section) == 0);
}

static void render_schema_row(FILE *f, const json_t *row) {
  const char *key = json_string_value(json_object_get(row, "key"));
  const char *type = json_string_value(json_object_get(row, "type"));
  const json_t *choices = json_object_get(row, "choices");
  const json_t *min = json_object_get(row, "min");
  const json_t *max = json_object_get(row, "max");
  const char *items = json_string_value(json_object_get(row, "items"));

  fprintf(f, "  %s  %s", key ? key : "?", type ? type : "?");
  if (json_is_array(choices) && json_array_size(choices) > 0) {
    size_t i;
    json_t *c;
    fputs(" (", f);
    json_array_foreach(choices, i, c) fprintf(f, "%s%s", i ? "|" : "", json_string_value(c));
    fputc(')', f);
  }
  if (json_is_integer(min) && json_is_integer(max))
    fprintf(f, " %" JSON_INTEGER_FORMAT "–%" JSON_INTEGER_FORMAT, json_integer_value(min),
            json_integer_value(max));
  if (items)
    fprintf(f, " of %s", items);

  const json_t *def = json_object_get(row, "default");
  if (type && strcmp(type, "secret") == 0) {
    fputs("  default: (not set)", f);
  } else if (def && !json_is_null(def)) {
    char *text = format_value(def);
    fprintf(f, "  default: %s", text ? text : "?");
    free(text);
  } else {
    fputs("  default: (computed)", f);
  }
  fputc('\n', f);

  const char *label = json_string_value(json_object_get(row, "label"));
  const char *help = json_string_value(json_object_get(row, "help"));
  if (label && label[0])
    fprintf(f, "      %s\n", label);
  if (help && help[0])
    fprintf(f, "      %s\n", help);
}

void ctl_render_schema(FILE *f, const json_t *schema, const char *only) {
  const json_t *sections = json_object_get(schema, "sections");
  const json_t *settings = json_object_get(schema, "settings");
  size_t i, j;
  json_t *sec, *row;
  bool first = true;
  json_array_foreach(sections, i, sec) {
    const char *id = json_string_value(json_object_get(sec, "id"));
    const char *title = json_string_value(json_object_get(sec, "title"));
    bool heading = false;
    json_array_foreach(settings, j, row) {
      const char *section = json_string_value(json_object_get(row, "section"));
      const char *key = json_string_value(json_object_get(row, "key"));
      if (!id || !section || strcmp(id, section) != 0 || !matches(only, key, section))
        continue;
      if (!heading) {
        fprintf(f, "%s%s (%s)\n", first ? "" : "\n", title ? title : id, id);
        heading = true;
        first = false;
      }
      render_schema_row(f, row);
    }
  }
}

static int text_width(const char *s) {
  /* Columns, not bytes: UTF-8 continuation bytes take no column. */
  int w = 0;
  for (; s && *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80)
      w++;
  return w;
}

static const char *entry_text(const json_t *e, const char *name) {
  const char *s = json_string_value(json_object_get(e, name));
  return s ? s : "-";
}

static void pad(FILE *f, const char *s, int width) {
  fputs(s, f);
  for (int n = text_width(s); n < width; n++)
    fputc(' ', f);
}

/* "setting" rows are the change log of old; others show their action. */
static const char *audit_action(const json_t *e) {
  const char *a = json_string_value(json_object_get(e, "action"));
  return a && a[0] ? a : "setting";
}

void ctl_render_audit(FILE *f, const json_t *page) {
  const json_t *entries = json_object_get(page, "entries");
  int wt = 4, wa = 5, wc = 6, wk = 3;
  size_t i;
  json_t *e;
  json_array_foreach(entries, i, e) {
    int n;
    if ((n = text_width(entry_text(e, "time"))) > wt)
      wt = n;
    if ((n = text_width(entry_text(e, "actor"))) > wa)
      wa = n;
    if ((n = text_width(audit_action(e))) > wc)
      wc = n;
    if ((n = text_width(entry_text(e, "key"))) > wk)
      wk = n;
  }
  pad(f, "TIME", wt + 2);
  pad(f, "ACTOR", wa + 2);
  pad(f, "ACTION", wc + 2);
  pad(f, "KEY", wk + 2);
  fputs("CHANGE\n", f);
  json_array_foreach(entries, i, e) {
    pad(f, entry_text(e, "time"), wt + 2);
    pad(f, entry_text(e, "actor"), wa + 2);
    pad(f, audit_action(e), wc + 2);
    pad(f, entry_text(e, "key"), wk + 2);
    json_t *old_v = json_object_get(e, "old");
    json_t *new_v = json_object_get(e, "new");
    const char *addr = json_string_value(json_object_get(e, "address"));
    if (strcmp(audit_action(e), "setting") == 0) {
      /* null: the key was not in the store before, or was reset; either way its default. */
      char *o = json_is_null(old_v) || !old_v ? strdup("(default)") : format_value(old_v);
      char *n = json_is_null(new_v) || !new_v ? strdup("(default)") : format_value(new_v);
      fprintf(f, "%s → %s", o ? o : "?", n ? n : "?");
      free(o);
      free(n);
    } else {
      const char *o = json_string_value(old_v), *n = json_string_value(new_v);
      if (o && n)
        fprintf(f, "%s → %s", o, n);
      else
        fputs(n ? n : o ? o : "", f);
    }
    if (addr && addr[0])
      fprintf(f, "  (from %s)", addr);
    fputc('\n', f);
  }
  json_int_t total = json_integer_value(json_object_get(page, "total"));
  json_int_t offset = json_integer_value(json_object_get(page, "offset"));
  size_t shown = json_array_size(entries);
  if (shown == 0)
    fputs("(no entries)\n", f);
  else if ((json_int_t)shown < total)
    fprintf(f,
            "(entries %" JSON_INTEGER_FORMAT "–%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
            ", newest first)\n",
            offset + 1, offset + (json_int_t)shown, total);
}
