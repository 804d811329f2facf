/* Server-rendered HTML pages (the UM settings page, the web meeting's
 * guest pages): a page is written into memory with every value escaped,
 * then answered in one reply. Their scripts are separate files: the
 * Content-Security-Policy is default-src 'self'. */
#pragma once

#include <stdio.h>

#include "http/http.h"

typedef struct page {
  FILE *f;
  char *buf;
  size_t len;
} page_t;

void page_escape(FILE *f, const char *s);
/* The head (lang, title, pages.css, an optional module script) and the
 * opening of <main>. 0 or -ENOMEM. */
int page_open(page_t *p, const char *lang, const char *title, const char *script);
/* Closes the page and answers it (the page's memory goes with the reply). */
enum MHD_Result page_reply(http_request_t *req, unsigned status, page_t *p);
/* A page with one heading and one sentence (the 404s of published paths). */
enum MHD_Result page_reply_message(http_request_t *req, unsigned status, const char *title,
                                   const char *sentence);
