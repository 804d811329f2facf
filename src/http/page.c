#include "http/page.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

void page_escape(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&#39;", f); break;
    default: fputc(*s, f);
    }
  }
}

int page_open(page_t *p, const char *lang, const char *title, const char *script) {
  p->buf = NULL;
  p->len = 0;
  p->f = open_memstream(&p->buf, &p->len);
  if (!p->f) return -ENOMEM;
  fprintf(p->f, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          lang);
  page_escape(p->f, title);
  fputs("</title>\n<link rel=\"stylesheet\" href=\"pages.css\">\n", p->f);
  if (script) fprintf(p->f, "<script type=\"module\" src=\"%s\"></script>\n", script);
  fputs("</head>\n<body>\n<main>\n", p->f);
  return 0;
}

enum MHD_Result page_reply(http_request_t *req, unsigned status, page_t *p) {
  fputs("</main>\n</body>\n</html>\n", p->f);
  bool bad = ferror(p->f) != 0;
  if (fclose(p->f) != 0 || bad) {
    free(p->buf);
    return http_reply_oom(req);
  }
  return http_reply_buffer(req, status, "text/html; charset=utf-8", p->buf, p->len, free, p->buf);
}

enum MHD_Result page_reply_message(http_request_t *req, unsigned status, const char *title,
                                   const char *sentence) {
  page_t p;
  if (page_open(&p, "en", title, NULL) != 0) return http_reply_oom(req);
  fputs("<h1>", p.f);
  page_escape(p.f, title);
  fputs("</h1>\n<p>", p.f);
  page_escape(p.f, sentence);
  fputs("</p>\n", p.f);
  return page_reply(req, status, &p);
}
