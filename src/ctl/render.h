/* Human-readable output of atriumctl (with --json the server's JSON is
 * printed instead and nothing here is used). */
#pragma once

#include <jansson.h>
#include <stdio.h>

/* One setting: "key = value  (source)", "(blank) → effective" for values
 * whose blank means a computed default, secrets as "(set)"/"(not set)", and
 * the setting's warnings on the lines below. */
void ctl_render_setting(FILE *f, const char *key, const json_t *entry);

/* A warning object {"key","message"} or a plain string, as "  warning: ...". */
void ctl_render_warning(FILE *f, const json_t *warning);

/* The schema: sections as headings, then key, type, default, bounds, help. */
void ctl_render_schema(FILE *f, const json_t *schema, const char *only);

/* The audit page {"total","offset","limit","entries":[...]} as a table. */
void ctl_render_audit(FILE *f, const json_t *page);
