/* The settings catalogue: every System setting, declared once in a table.
 * The REST API, the schema endpoint, persistence, export/import, the
 * environment overrides, the CLI, the admin page and the sanity test are all
 * driven from it. Adding a setting is one row in catalogue.c. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/validate.h"

typedef enum setting_type {
  SETTING_BOOL,
  SETTING_INT,
  SETTING_STRING,
  SETTING_HOST,
  SETTING_HOST_OR_IP,
  SETTING_URL,
  SETTING_PORT,
  SETTING_ENUM,
  SETTING_SECRET,
  SETTING_LIST,
} setting_type_t;

typedef enum setting_source {
  SETTING_SOURCE_DEFAULT,
  SETTING_SOURCE_STORE,
  SETTING_SOURCE_ENV,
  SETTING_SOURCE_INSTALL, /* not stored: the install default fixed at first start */
} setting_source_t;

enum setting_flags {
  SETTING_F_OPERATION_ONLY = 1u << 0, /* changed only by its own operation (domain.name) */
  SETTING_F_BLANK_DEFAULT = 1u << 1,  /* "" allowed; the effective value is computed */
  SETTING_F_NO_ENV = 1u << 2,         /* no ATRIUM_<KEY> override */
  SETTING_F_BLANK_OK = 1u << 3,       /* "" allowed and means "not configured" */
  SETTING_F_INSTALL_DEFAULT = 1u << 4, /* default fixed at first start, kept in the store's meta table */
  SETTING_F_MULTILINE = 1u << 5 /* line breaks and tabs allowed, up to SETTING_MULTILINE_MAX bytes
                                   (a PEM key, a JSON key file); def->check gets the rest */
};

#define SETTING_MULTILINE_MAX (64 * 1024)

struct setting_def;

/* Checks and normalises a value already known to be of the row's JSON type. */
typedef int (*setting_check_fn)(const struct setting_def *def, const json_t *in, json_t **out,
                                validate_error_t *err);

typedef struct setting_def {
  const char *key;     /* "proxy.host" */
  const char *section; /* "proxy": the apply hook unit and the page section */
  const char *label;   /* the field's label on the page */
  const char *help;    /* one or two sentences shown beside the field */
  setting_type_t type;
  const char *default_json; /* default as JSON text; NULL when computed */
  unsigned flags;
  json_int_t min, max;                  /* SETTING_INT */
  const char *const *choices;           /* SETTING_ENUM, NULL-terminated */
  const validate_url_rule_t *url_rule;  /* SETTING_URL */
  unsigned host_flags;                  /* SETTING_HOST / SETTING_HOST_OR_IP */
  const char *items;                    /* SETTING_LIST: "host_pattern" or "qos_policy" */
  setting_check_fn check;               /* SETTING_LIST and anything special */
  const char *effective_path;           /* SETTING_F_BLANK_DEFAULT URLs: path under server.public_url */
} setting_def_t;

typedef struct setting_section {
  const char *id;
  const char *title;
} setting_section_t;

extern const setting_def_t catalogue[];
extern const size_t catalogue_count;
extern const setting_section_t catalogue_sections[];
extern const size_t catalogue_section_count;

/* Index of key in catalogue[], or -1. */
int catalogue_find(const char *key);
const char *catalogue_type_name(setting_type_t type);

/* Type check + row rule: `in` is any JSON value from a client; on success *out
 * is the normalised value to store. The error message names the rule. */
int catalogue_check(const setting_def_t *def, const json_t *in, json_t **out, validate_error_t *err);

/* Parses the text of an environment variable into a value of the row's type
 * (bool: true/false/yes/no/1/0; int and port: decimal; list: JSON array or
 * comma-separated; everything else: the text itself), then catalogue_check. */
int catalogue_parse_env(const setting_def_t *def, const char *text, json_t **out, validate_error_t *err);

/* "ATRIUM_PROXY_HOST" for "proxy.host", into buf. */
void catalogue_env_name(const setting_def_t *def, char *buf, size_t len);

/* The settings reference (docs/settings.md) as Markdown, generated from the
 * table; `atriumd --settings-reference` prints it and a test checks that the
 * committed file matches. */
void catalogue_write_markdown(FILE *f);
