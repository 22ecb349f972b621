/*
 * fuzz_http.c -- libFuzzer target: the HTTP request parser of the API
 * (server/http_parse.c: llhttp and the bounds around it) and the readers
 * of what a request carries (query and form parameters, the session
 * cookie). The input is cut in two at a point its first byte chooses, so
 * requests split across reads are covered. Invariants: every request
 * stays within its bounds (target, headers and body inside their buffers),
 * an error is one of the engine's answers, and a pipelined stream yields
 * its requests one at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

static void check_request(const http_req_t *r)
{
    if (r->url_len > r->head_len || r->head_len > sizeof r->head || r->nheaders > HTTP_HEADERS_MAX ||
        r->body_len > HTTP_BODY_MAX || (r->body_len && !r->body))
        abort();
    for (int i = 0; i < r->nheaders; i++) {
        const http_header_t *h = &r->headers[i];
        if ((size_t)h->name + h->name_len > r->head_len || (size_t)h->value + h->value_len > r->head_len)
            abort();
    }
    char out[256], id[37];
    size_t len;
    const char *q = memchr(r->head, '?', r->url_len);
    if (q)
        (void)http_form_get(q + 1, (size_t)(r->head + r->url_len - q - 1), "password", out, sizeof out);
    if (r->body)
        (void)http_form_get(r->body, r->body_len, "username", out, sizeof out);
    if (http_cookie_session(r, id) && strlen(id) != 36)
        abort();
    (void)http_header(r, "Content-Type", &len);
}

static int feed(http_parse_t *hp, const uint8_t *data, size_t len)
{
    while (len) {
        size_t used = 0;
        int rc = http_parse_feed(hp, (const char *)data, len, &used);
        if (rc == HTTP_PARSE_ERROR) {
            int s = hp->status;
            if (s != 400 && s != 413 && s != 431 && s != 501 && s != 503 && s != 506 && s != 599)
                abort();
            return -1;
        }
        if (rc == HTTP_PARSE_MORE)
            return 0;
        if (used > len)
            abort();
        http_req_t *r = http_parse_take(hp);
        if (!r)
            abort();
        check_request(r);
        http_req_free(r);
        data += used;
        len -= used;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_parse_t hp;
    http_parse_init(&hp);
    size_t cut = size ? (size_t)data[0] % (size + 1) : 0;
    if (feed(&hp, data, cut) == 0)
        (void)feed(&hp, data + cut, size - cut);
    http_parse_free(&hp);
    return 0;
}
