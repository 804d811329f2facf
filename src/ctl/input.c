#include "ctl/input.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ctl/client.h"

/* Larger than any settings export; keeps a mistaken `import /dev/zero` finite. */
#define CTL_MAX_INPUT (8u * 1024 * 1024)

static int read_fd(int fd, char **data, size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (!buf)
    return -ENOMEM;
  for (;;) {
    if (n + 1 >= cap) {
      if (cap >= CTL_MAX_INPUT) {
        free(buf);
        return -EFBIG;
      }
      char *p = realloc(buf, cap * 2);
      if (!p) {
        free(buf);
        return -ENOMEM;
      }
      buf = p;
      cap *= 2;
    }
    ssize_t got = read(fd, buf + n, cap - n - 1);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      int e = -errno;
      free(buf);
      return e;
    }
    if (got == 0)
      break;
    n += (size_t)got;
  }
  buf[n] = '\0';
  *data = buf;
  if (len)
    *len = n;
  return 0;
}

int ctl_read_file(const char *path, char **data, size_t *len) {
  if (strcmp(path, "-") == 0)
    return read_fd(STDIN_FILENO, data, len);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int r = read_fd(fd, data, len);
  close(fd);
  return r;
}

int ctl_read_password_file(const char *path, char **out) {
  char *data = NULL;
  size_t len = 0;
  int r = ctl_read_file(path, &data, &len);
  if (r < 0) {
    fprintf(stderr, "error: cannot read the password from %s: %s\n", path, strerror(-r));
    return CTL_EXIT_USAGE;
  }
  /* A password file ends with a newline more often than not; the first line is the password. */
  size_t cut = strcspn(data, "\r\n");
  explicit_bzero(data + cut, len - cut);
  *out = data;
  return CTL_EXIT_OK;
}

void ctl_secret_free(char *secret) {
  if (!secret)
    return;
  explicit_bzero(secret, strlen(secret));
  free(secret);
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
  (void)sig;
  interrupted = 1;
}

int ctl_read_secret_tty(const char *prompt, char **out) {
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return -ENXIO;
  struct termios old, quiet;
  if (tcgetattr(fd, &old) < 0) {
    close(fd);
    return -ENXIO;
  }
  /* Without SA_RESTART a ^C makes read() return, so the echo is switched
   * back on instead of leaving the terminal silent. */
  struct sigaction sa = {.sa_handler = on_interrupt}, old_int, old_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  interrupted = 0;
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
  quiet.c_lflag |= ICANON;
  int r = 0;
  if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
    r = -errno;

  char line[1024];
  size_t n = 0;
  while (r == 0) {
    char ch;
    ssize_t got = read(fd, &ch, 1);
    if (got < 0 || interrupted) {
      r = -EINTR;
      break;
    }
    if (got == 0 || ch == '\n' || ch == '\r')
      break;
    if (n + 1 >= sizeof(line)) {
      r = -E2BIG;
      break;
    }
    line[n++] = ch;
  }
  line[n] = '\0';
  tcsetattr(fd, TCSAFLUSH, &old);
  if (write(fd, "\n", 1) < 0) {
    /* nothing to do: the newline is cosmetic */
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  close(fd);
  if (r == 0 && !(*out = strdup(line)))
    r = -ENOMEM;
  explicit_bzero(line, sizeof(line));
  return r;
}

/* ---- KEY=VALUE conversion ------------------------------------------------ */

static const json_t *schema_find(const json_t *schema, const char *key) {
  size_t i;
  json_t *row;
  json_array_foreach(json_object_get(schema, "settings"), i, row) {
    const char *k = json_string_value(json_object_get(row, "key"));
    if (k && strcmp(k, key) == 0)
      return row;
  }
  return NULL;
}

static bool parse_bool(const char *text, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcasecmp(text, yes[i]) == 0) {
      *out = true;
      return true;
    }
    if (strcasecmp(text, no[i]) == 0) {
      *out = false;
      return true;
    }
  }
  return false;
}

static bool parse_integer(const char *text, json_int_t *out) {
  if (!text[0] || isspace((unsigned char)text[0]))
    return false;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0')
    return false;
  *out = (json_int_t)v;
  return true;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s))
    s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* "a, b,c" → ["a","b","c"]; "" → []. */
static json_t *split_list(const char *text) {
  json_t *arr = json_array();
  char *copy = strdup(text);
  if (!arr || !copy) {
    json_decref(arr);
    free(copy);
    return NULL;
  }
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *item = trim(tok);
    if (item[0] && json_array_append_new(arr, json_string(item)) < 0) {
      json_decref(arr);
      arr = NULL;
      break;
    }
  }
  free(copy);
  return arr;
}

static int parse_json_list(const char *key, const char *text, const char *origin, json_t **out,
                           char *err, size_t errlen) {
  json_error_t jerr;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
  if (!v) {
    snprintf(err, errlen, "%s: the value%s%s is not valid JSON: %s (line %d, column %d)", key,
             origin ? " in " : "", origin ? origin : "", jerr.text, jerr.line, jerr.column);
    return -EINVAL;
  }
  *out = v;
  return 0;
}

static int read_secret(const char *key, bool *stdin_used, json_t **out, char *err,
                       size_t errlen) {
  if (*stdin_used) {
    snprintf(err, errlen, "%s: only one value can be read from stdin", key);
    return -EINVAL;
  }
  *stdin_used = true;
  char *text = NULL;
  int r;
  if (isatty(STDIN_FILENO)) {
    char prompt[160];
    snprintf(prompt, sizeof(prompt), "%s: ", key);
    r = ctl_read_secret_tty(prompt, &text);
  } else {
    r = ctl_read_file("-", &text, NULL);
    if (r == 0) {
      /* `echo secret | atriumctl set k=-` must not store the newline. */
      size_t n = strlen(text);
      if (n > 0 && text[n - 1] == '\n')
        text[--n] = '\0';
      if (n > 0 && text[n - 1] == '\r')
        text[--n] = '\0';
    }
  }
  if (r < 0) {
    snprintf(err, errlen, "%s: cannot read the value from stdin: %s", key, strerror(-r));
    return r;
  }
  *out = json_string(text);
  ctl_secret_free(text);
  return *out ? 0 : -ENOMEM;
}

static int convert_value(const json_t *row, const char *key, const char *text, bool *stdin_used,
                         json_t **out, char *err, size_t errlen) {
  const char *type = row ? json_string_value(json_object_get(row, "type")) : NULL;
  const char *items = row ? json_string_value(json_object_get(row, "items")) : NULL;
  if (!type)
    type = "string";

  if (strcmp(type, "secret") == 0 && strcmp(text, "-") == 0)
    return read_secret(key, stdin_used, out, err, errlen);

  if (strcmp(type, "bool") == 0) {
    bool b;
    /* The server's sentence speaks of JSON booleans, which the command line
     * has none of: say what atriumctl takes instead. */
    if (!parse_bool(text, &b)) {
      snprintf(err, errlen,
               "%s: '%.64s' is not a yes/no value; atriumctl takes true/false, yes/no, on/off "
               "or 1/0.",
               key, text);
      return -EDOM;
    }
    *out = json_boolean(b);
  } else if (strcmp(type, "int") == 0 || strcmp(type, "port") == 0) {
    json_int_t v;
    *out = parse_integer(text, &v) ? json_integer(v) : json_string(text);
  } else if (strcmp(type, "list") == 0) {
    if (text[0] == '@') {
      char *data = NULL;
      int r = ctl_read_file(text + 1, &data, NULL);
      if (r < 0) {
        snprintf(err, errlen, "%s: cannot read %s: %s", key, text + 1, strerror(-r));
        return r == -ENOMEM ? r : -EINVAL;
      }
      r = parse_json_list(key, data, text + 1, out, err, errlen);
      free(data);
      return r;
    }
    const char *p = text;
    while (isspace((unsigned char)*p))
      p++;
    if (*p == '[')
      return parse_json_list(key, p, NULL, out, err, errlen);
    if (items && strcmp(items, "qos_policy") == 0) {
      snprintf(err, errlen,
               "%s takes a JSON array of policy objects: give it inline ('[...]') or as @FILE",
               key);
      return -EINVAL;
    }
    *out = split_list(text);
  } else {
    *out = json_string(text);
  }
  return *out ? 0 : -ENOMEM;
}

int ctl_build_settings_body(const json_t *schema, char *const *pairs, int count, json_t **body,
                            char *err, size_t errlen) {
  err[0] = '\0';
  json_t *obj = json_object();
  if (!obj)
    return -ENOMEM;
  bool stdin_used = false;
  int r = 0;
  for (int i = 0; i < count && r == 0; i++) {
    const char *eq = strchr(pairs[i], '=');
    if (!eq || eq == pairs[i]) {
      snprintf(err, errlen, "'%s' is not KEY=VALUE", pairs[i]);
      r = -EINVAL;
      break;
    }
    char *key = strndup(pairs[i], (size_t)(eq - pairs[i]));
    if (!key) {
      r = -ENOMEM;
      break;
    }
    if (json_object_get(obj, key)) {
      snprintf(err, errlen, "%s is given twice", key);
      r = -EINVAL;
    } else {
      json_t *value = NULL;
      r = convert_value(schema_find(schema, key), key, eq + 1, &stdin_used, &value, err, errlen);
      if (r == 0 && json_object_set_new(obj, key, value) < 0)
        r = -ENOMEM;
    }
    free(key);
  }
  if (r == -ENOMEM && !err[0])
    snprintf(err, errlen, "out of memory");
  if (r < 0) {
    json_decref(obj);
    return r;
  }
  *body = obj;
  return 0;
}
