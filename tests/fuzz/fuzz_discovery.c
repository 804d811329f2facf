/* libFuzzer target for the discovery datagrams (src/discovery_wire.c): the
 * responder's query parser sees whatever the network sends, and atriumctl's
 * answer parser whatever answers. Besides crashes it checks the contract: an
 * accepted query yields an answer no larger than the query, and that answer
 * parses back to what was put in. The rate limiter is driven with keys from
 * the input against a small table (eviction paths). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mod/publishing/discovery_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  discovery_query_t q;
  discovery_drop_t why = DISCOVERY_DROP_COUNT;
  int r = discovery_parse_query(data, size, &q, &why);
  if (r == 0) {
    if (q.len != size || size < DISCOVERY_QUERY_MIN || size > DISCOVERY_QUERY_MAX) abort();
    uint8_t out[DISCOVERY_QUERY_MAX];
    /* Domain and URL from the input's tail, so that their sizes vary. */
    char url[700];
    size_t n = data[size - 1] % sizeof url;
    memset(url, 'u', n);
    url[n] = '\0';
    int a = discovery_build_answer(&q, "example.com", url, "0.1.0", out, sizeof out);
    if (a >= 0) {
      if ((size_t)a > q.len) abort(); /* the amplification rule */
      discovery_answer_t back;
      if (discovery_parse_answer(out, (size_t)a, q.nonce, &back) != 0) abort();
      if (strcmp(back.url, url) != 0 || strcmp(back.domain, "example.com") != 0) abort();
    } else if (a != -EMSGSIZE) {
      abort();
    }
  } else if (r != -EBADMSG || why >= DISCOVERY_DROP_COUNT) {
    abort();
  }

  /* The same bytes as an answer to a nonce taken from them. */
  if (size >= DISCOVERY_HEADER_LEN) {
    discovery_answer_t ans;
    int p = discovery_parse_answer(data, size, data + 8, &ans);
    if (p == 0 && (strlen(ans.url) >= sizeof ans.url || !memchr(ans.domain, 0, sizeof ans.domain)))
      abort();
    if (p != 0 && p != -EBADMSG && p != -ESTALE) abort();
  }

  /* Keys from the input against a table smaller than their number. */
  discovery_limiter_t *l = discovery_limiter_new(8, 1, 3);
  if (!l) abort();
  for (size_t i = 0; i + 4 <= size && i < 4096; i += 4)
    (void)discovery_limiter_allow(l, data + i, 1 + data[i] % 16 <= size - i ? 1 + data[i] % 16 : 4,
                                  data[i + 1]);
  discovery_limiter_free(l);
  return 0;
}
