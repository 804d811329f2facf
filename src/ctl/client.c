#include "ctl/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A settings document is a few kilobytes; anything near this is not ours. */
#define CTL_MAX_BODY (16u * 1024 * 1024)

struct ctl_client {
  CURL *curl;
  char *base_url;
  char *token;
  char *cacert;
  bool verbose;
};

static bool curl_started;

ctl_client_t *ctl_client_new(const char *base_url, const char *token, const char *cacert,
                             bool verbose) {
  if (!curl_started) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      return NULL;
    curl_started = true;
  }
  ctl_client_t *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->curl = curl_easy_init();
  c->base_url = strdup(base_url);
  c->token = token ? strdup(token) : NULL;
  c->cacert = cacert ? strdup(cacert) : NULL;
  c->verbose = verbose;
  if (!c->curl || !c->base_url || (token && !c->token) || (cacert && !c->cacert)) {
    ctl_client_free(c);
    return NULL;
  }
  size_t n = strlen(c->base_url);
  while (n > 0 && c->base_url[n - 1] == '/')
    c->base_url[--n] = '\0';
  return c;
}

void ctl_client_free(ctl_client_t *c) {
  if (!c)
    return;
  if (c->curl)
    curl_easy_cleanup(c->curl);
  if (c->token) {
    explicit_bzero(c->token, strlen(c->token));
    free(c->token);
  }
  free(c->base_url);
  free(c->cacert);
  free(c);
}

const char *ctl_client_url(const ctl_client_t *c) {
  return c->base_url;
}

bool ctl_client_has_token(const ctl_client_t *c) {
  return c->token && c->token[0];
}

typedef struct buffer {
  char *data;
  size_t len;
  bool too_big;
} buffer_t;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
  buffer_t *b = userdata;
  size_t n = size * nmemb;
  if (b->len + n > CTL_MAX_BODY) {
    b->too_big = true;
    return 0; /* makes libcurl abort the transfer */
  }
  char *p = realloc(b->data, b->len + n + 1);
  if (!p)
    return 0;
  memcpy(p + b->len, ptr, n);
  b->data = p;
  b->len += n;
  b->data[b->len] = '\0';
  return n;
}

static char *normalise_content_type(const char *ct) {
  if (!ct)
    return NULL;
  size_t n = strcspn(ct, ";");
  while (n > 0 && isspace((unsigned char)ct[n - 1]))
    n--;
  char *out = strndup(ct, n);
  if (out)
    for (char *p = out; *p; p++)
      *p = (char)tolower((unsigned char)*p);
  return out;
}

/* Appends a header line; the token's line is built here and wiped after use
 * by the caller so that it does not linger in freed memory. */
static int add_header(struct curl_slist **list, const char *line) {
  struct curl_slist *l = curl_slist_append(*list, line);
  if (!l)
    return -ENOMEM;
  *list = l;
  return 0;
}

static int set_options(ctl_client_t *c, const char *method, const char *url, const char *body,
                       size_t len, struct curl_slist *headers, buffer_t *buf, char *curl_err) {
  CURL *h = c->curl;
  CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
  do {                                                                                             \
    if (rc == CURLE_OK)                                                                            \
      rc = curl_easy_setopt(h, opt, val);                                                          \
  } while (0)
  SET(CURLOPT_URL, url);
  SET(CURLOPT_ERRORBUFFER, curl_err);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_CONNECTTIMEOUT, 10L);
  SET(CURLOPT_TIMEOUT, 30L);
  /* A redirect could carry the bearer token somewhere else: never follow. */
  SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  if (c->cacert)
    SET(CURLOPT_CAINFO, c->cacert);
  SET(CURLOPT_USERAGENT, "atriumctl/" ATRIUM_VERSION);
  SET(CURLOPT_HTTPHEADER, headers);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, buf);
  SET(CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    SET(CURLOPT_POSTFIELDS, body);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  } else if (strcmp(method, "GET") == 0) {
    SET(CURLOPT_HTTPGET, 1L);
  } else {
    /* DELETE without a body: no request body, but still read the response. */
    SET(CURLOPT_POSTFIELDS, "");
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
  }
#undef SET
  return rc == CURLE_OK ? 0 : -EINVAL;
}

int ctl_request(ctl_client_t *c, const char *method, const char *path, const char *body,
                size_t len, const char *if_match, ctl_response_t *resp, char *err, size_t errlen) {
  memset(resp, 0, sizeof(*resp));
  err[0] = '\0';
  char *url = NULL;
  if (asprintf(&url, "%s%s", c->base_url, path) < 0)
    return -ENOMEM;

  int r = 0;
  struct curl_slist *headers = NULL;
  char *auth = NULL;
  char line[128];
  r = add_header(&headers, "Accept: application/json, application/problem+json");
  if (r == 0 && body)
    r = add_header(&headers, "Content-Type: application/json");
  if (r == 0 && if_match) {
    snprintf(line, sizeof(line), "If-Match: %s", if_match);
    r = add_header(&headers, line);
  }
  if (r == 0 && ctl_client_has_token(c)) {
    if (asprintf(&auth, "Authorization: Bearer %s", c->token) < 0) {
      auth = NULL;
      r = -ENOMEM;
    } else {
      r = add_header(&headers, auth);
    }
  }
  /* libcurl adds "Expect: 100-continue" to larger bodies; it only costs a round trip here. */
  if (r == 0)
    r = add_header(&headers, "Expect:");

  buffer_t buf = {0};
  char curl_err[CURL_ERROR_SIZE] = "";
  if (r == 0) {
    curl_easy_reset(c->curl);
    r = set_options(c, method, url, body, len, headers, &buf, curl_err);
    if (r < 0)
      snprintf(err, errlen, "libcurl refused the request options");
  }
  if (r == 0) {
    if (c->verbose)
      fprintf(stderr, "> %s %s\n", method, path);
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc == CURLE_OK) {
      long status = 0;
      char *ct = NULL;
      curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
      curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &ct);
      resp->status = status;
      resp->content_type = normalise_content_type(ct);
      resp->body = buf.data ? buf.data : strdup("");
      resp->len = buf.len;
      buf.data = NULL;
      if (!resp->body || (ct && !resp->content_type))
        r = -ENOMEM;
      else if (c->verbose)
        fprintf(stderr, "< %ld %s (%zu bytes)\n", status,
                resp->content_type ? resp->content_type : "-", resp->len);
    } else if (buf.too_big) {
      snprintf(err, errlen, "the response from %s is larger than %u bytes", c->base_url,
               CTL_MAX_BODY);
      r = -EMSGSIZE;
    } else if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
      snprintf(err, errlen, "%s is not a usable server URL (http or https): %s", c->base_url,
               curl_err[0] ? curl_err : curl_easy_strerror(rc));
      r = -EINVAL;
    } else if (rc == CURLE_WRITE_ERROR) {
      r = -ENOMEM;
    } else {
      snprintf(err, errlen, "cannot reach the server at %s: %s", c->base_url,
               curl_err[0] ? curl_err : curl_easy_strerror(rc));
      r = -EHOSTUNREACH;
    }
  }
  if (r == -ENOMEM && !err[0])
    snprintf(err, errlen, "out of memory");
  free(buf.data);
  curl_slist_free_all(headers);
  if (auth) {
    explicit_bzero(auth, strlen(auth));
    free(auth);
  }
  free(url);
  if (r < 0)
    ctl_response_clear(resp);
  return r;
}

void ctl_response_clear(ctl_response_t *resp) {
  free(resp->body);
  free(resp->content_type);
  memset(resp, 0, sizeof(*resp));
}

int ctl_exit_for_status(long status) {
  if (status >= 200 && status < 300)
    return CTL_EXIT_OK;
  switch (status) {
  case 400:
  case 404: /* no such user, ...: the request names something that is not there */
  case 413:
  case 422:
    return CTL_EXIT_REFUSED;
  case 401:
  case 403:
  case 429:
    return CTL_EXIT_AUTH;
  case 409:
  case 412:
    return CTL_EXIT_CONFLICT;
  default:
    return CTL_EXIT_SERVER;
  }
}

json_t *ctl_response_json(const ctl_response_t *resp) {
  if (!resp->body || resp->len == 0)
    return NULL;
  return json_loadb(resp->body, resp->len, JSON_DECODE_ANY, NULL);
}

static const char *reason_phrase(long status) {
  switch (status) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "unexpected status";
  }
}

static const char *json_text(const json_t *obj, const char *name) {
  const char *s = json_string_value(json_object_get(obj, name));
  return s && s[0] ? s : NULL;
}

/* The server's sentences name the API call that helps; at the command line
 * the command that makes it is the help. */
static const struct {
  const char *api, *cli;
} cli_words[] = {
    {"GET /api/v1/users lists them", "'atriumctl users list' lists them"},
    {"GET /api/v1/admins (atriumctl admin list) lists them", "'atriumctl admin list' lists them"},
    {"GET /api/v1/settings/schema lists them", "'atriumctl schema' lists them"},
    {"see GET /api/v1/settings/schema", "see 'atriumctl schema'"},
};

/* `in` with the API calls of cli_words replaced, into buf. */
static const char *for_cli(const char *in, char *buf, size_t len) {
  if (!in) return NULL;
  snprintf(buf, len, "%s", in);
  for (size_t i = 0; i < sizeof cli_words / sizeof cli_words[0]; i++) {
    char *at = strstr(buf, cli_words[i].api);
    if (!at) continue;
    char tail[1024];
    snprintf(tail, sizeof tail, "%s", at + strlen(cli_words[i].api));
    snprintf(at, len - (size_t)(at - buf), "%s%s", cli_words[i].cli, tail);
  }
  return buf;
}

void ctl_print_problem(const ctl_response_t *resp) {
  json_t *doc = ctl_response_json(resp);
  char dbuf[1024], mbuf[1024];
  const char *title = json_is_object(doc) ? json_text(doc, "title") : NULL;
  const char *detail =
      for_cli(json_is_object(doc) ? json_text(doc, "detail") : NULL, dbuf, sizeof dbuf);
  if (!title && !detail) {
    fprintf(stderr, "error: the server answered %ld %s%s%s\n", resp->status,
            reason_phrase(resp->status), resp->content_type ? " with " : "",
            resp->content_type ? resp->content_type : "");
    json_decref(doc);
    return;
  }
  if (title && detail && strcmp(title, detail) != 0)
    fprintf(stderr, "error: %s: %s\n", title, detail);
  else
    fprintf(stderr, "error: %s\n", title ? title : detail);
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(doc, "errors"), i, e) {
    const char *key = json_text(e, "key");
    const char *message = for_cli(json_text(e, "message"), mbuf, sizeof mbuf);
    const char *field = json_text(e, "field");
    /* A message the sentence above already says is not said twice. */
    if (message && detail && strstr(detail, message)) continue;
    /* The field is a path inside the key's value ("[0].dscp"), so it extends the key. */
    fprintf(stderr, "  %s%s%s: %s\n", key ? key : "(request)",
            field && field[0] != '[' ? "." : "", field ? field : "",
            message ? message : "invalid");
  }
  json_decref(doc);
}
