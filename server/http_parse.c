/*
 * http_parse.c -- requests out of bytes: llhttp does the parsing, this
 * file keeps what the API needs (the target, the headers, the body) within
 * bounds, and says how the reference's engine would answer what it cannot
 * take (HTTP-API.md §2.1). No I/O and no loop: http.c feeds it, and so does
 * the fuzzer (tests/fuzz/fuzz_http.c).
 *
 * The answers for bad input: a method other than GET, PUT, POST, DELETE
 * (and OPTIONS, which the API answers for CORS preflights) is "501 not
 * implemented" with an Allow header; a request line that is not METHOD SP
 * target SP HTTP/x.y is "400 bad request"; HTTP 2 or later "506"; headers
 * llhttp cannot parse "599 garbled headers"; more than 8 KiB of request
 * line and headers, or more than 64 headers, "431"; a body over 64 KiB
 * "413". After any of them the connection closes.
 *
 * One request at a time: when one is complete the parser pauses, and the
 * bytes after it wait (the caller keeps them) until the request was taken.
 */
#include "http_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static llhttp_settings_t settings;

const char *http_header(const http_req_t *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (int i = 0; i < r->nheaders; i++) {
        const http_header_t *h = &r->headers[i];
        if (h->name_len == nl && !strncasecmp(r->head + h->name, name, nl)) {
            *len = h->value_len;
            return r->head + h->value;
        }
    }
    return NULL;
}

/* Requests are 9 KB: each thread keeps a few freed ones for the next, as
 * allocating and freeing that much per request made malloc consolidate and
 * trim its arena on every request (a fifth of the node's CPU under load). */
#define SPARE_REQS 32
static __thread http_req_t *spare[SPARE_REQS];
static __thread int nspare;

http_req_t *http_req_new(void)
{
    if (!nspare)
        return calloc(1, sizeof(http_req_t));
    http_req_t *r = spare[--nspare];
    memset(r, 0, offsetof(http_req_t, head));     /* the head buffer is overwritten as it fills */
    return r;
}

void http_req_free(http_req_t *r)
{
    if (!r)
        return;
    free(r->body);
    if (nspare < SPARE_REQS)
        spare[nspare++] = r;
    else
        free(r);
}

void http_req_spares_free(void)
{
    while (nspare)
        free(spare[--nspare]);
}

static http_parse_t *of(llhttp_t *p)
{
    return p->data;
}

static int refuse(llhttp_t *p, int status, const char *reason, const char *headers)
{
    http_parse_t *hp = of(p);
    hp->status = status;
    hp->reason = reason;
    hp->headers = headers;
    return HPE_USER;
}

#define ALLOW "Allow: GET,PUT,POST,DELETE\r\n"

static int too_large(llhttp_t *p)
{
    return refuse(p, 431, "Request Header Fields Too Large", NULL);
}

/* Bytes of the request line and headers, within HTTP_HEAD_MAX. */
static int head_append(http_req_t *r, const char *at, size_t len)
{
    if (r->head_len + len > sizeof r->head)
        return -1;
    memcpy(r->head + r->head_len, at, len);
    r->head_len += len;
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    http_parse_t *hp = of(p);
    if (!hp->req && !(hp->req = http_req_new()))
        return refuse(p, 503, "Service Unavailable", NULL);
    return HPE_OK;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    http_req_t *r = of(p)->req;
    if (head_append(r, at, len) < 0)
        return too_large(p);
    r->url_len = (uint16_t)r->head_len;
    return HPE_OK;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    http_req_t *r = of(p)->req;
    if (r->in_value || r->nheaders == 0) {           /* a new header begins */
        if (r->nheaders == HTTP_HEADERS_MAX)
            return too_large(p);
        http_header_t *h = &r->headers[r->nheaders++];
        h->name = h->value = (uint16_t)r->head_len;
        h->name_len = h->value_len = 0;
        r->in_value = 0;
    }
    if (head_append(r, at, len) < 0)
        return too_large(p);
    http_header_t *h = &r->headers[r->nheaders - 1];
    h->name_len = (uint16_t)(h->name_len + len);
    h->value = (uint16_t)r->head_len;
    return HPE_OK;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    http_req_t *r = of(p)->req;
    if (r->nheaders == 0)
        return HPE_OK;
    r->in_value = 1;
    if (head_append(r, at, len) < 0)
        return too_large(p);
    r->headers[r->nheaders - 1].value_len = (uint16_t)(r->headers[r->nheaders - 1].value_len + len);
    return HPE_OK;
}

static int on_headers_complete(llhttp_t *p)
{
    http_req_t *r = of(p)->req;
    r->method = p->method;
    r->major = p->http_major;
    r->minor = p->http_minor;
    if (r->major >= 2)
        return refuse(p, 506, "http protocol version not supported", NULL);
    if (p->content_length > HTTP_BODY_MAX && p->content_length != UINT64_MAX)
        return refuse(p, 413, "Payload Too Large", NULL);
    switch (r->method) {
    case HTTP_GET: case HTTP_PUT: case HTTP_POST: case HTTP_DELETE: case HTTP_OPTIONS:
        return HPE_OK;
    default:
        return refuse(p, 501, "not implemented", ALLOW);
    }
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    http_req_t *r = of(p)->req;
    if (r->body_len + len > HTTP_BODY_MAX)
        return refuse(p, 413, "Payload Too Large", NULL);
    char *grown = realloc(r->body, r->body_len + len + 1);
    if (!grown)
        return refuse(p, 503, "Service Unavailable", NULL);
    memcpy(grown + r->body_len, at, len);
    r->body = grown;
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return HPE_OK;
}

static int on_message_complete(llhttp_t *p)
{
    of(p)->req->keep_alive = (uint8_t)llhttp_should_keep_alive(p);
    return HPE_PAUSED;                   /* one request at a time */
}

static void settings_once(void)
{
    static int done;
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE))
        return;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    if (!done) {
        llhttp_settings_init(&settings);
        settings.on_message_begin = on_message_begin;
        settings.on_url = on_url;
        settings.on_header_field = on_header_field;
        settings.on_header_value = on_header_value;
        settings.on_headers_complete = on_headers_complete;
        settings.on_body = on_body;
        settings.on_message_complete = on_message_complete;
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&mu);
}

void http_parse_init(http_parse_t *hp)
{
    settings_once();
    memset(hp, 0, sizeof *hp);
    llhttp_init(&hp->parser, HTTP_REQUEST, &settings);
    hp->parser.data = hp;
}

void http_parse_free(http_parse_t *hp)
{
    http_req_free(hp->req);
    hp->req = NULL;
}

/* "get / HTTP/1.1" is a method we do not know (501); "hello" no request line (400). */
static int looks_like_request_line(const char *data, size_t len)
{
    const char *eol = memchr(data, '\n', len), *end = eol ? eol : data + len;
    const char *sp1 = memchr(data, ' ', (size_t)(end - data));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
    return sp1 && sp2 && sp1 > data && sp2 > sp1 + 1 && end - sp2 > 5 && !strncmp(sp2 + 1, "HTTP/", 5);
}

static void why_llhttp_stopped(http_parse_t *hp, llhttp_errno_t err, const char *data, size_t len)
{
    if (hp->status)
        return;                          /* our own refusal (a callback's) */
    hp->headers = NULL;
    if (err == HPE_INVALID_METHOD && looks_like_request_line(data, len)) {
        hp->status = 501, hp->reason = "not implemented", hp->headers = ALLOW;
    } else if (err == HPE_INVALID_METHOD || err == HPE_INVALID_URL || !hp->req || !hp->parser.http_major) {
        hp->status = 400, hp->reason = "bad request";
    } else if (err == HPE_INVALID_VERSION) {
        hp->status = 506, hp->reason = "http protocol version not supported";
    } else {
        hp->status = 599, hp->reason = "garbled headers";
    }
}

int http_parse_feed(http_parse_t *hp, const char *data, size_t len, size_t *used)
{
    llhttp_errno_t err = llhttp_execute(&hp->parser, data, len);
    *used = len;
    if (err == HPE_OK)
        return HTTP_PARSE_MORE;
    if (err == HPE_PAUSED) {
        const char *stop = llhttp_get_error_pos(&hp->parser);
        if (stop && stop >= data && stop <= data + len)
            *used = (size_t)(stop - data);
        return HTTP_PARSE_DONE;
    }
    why_llhttp_stopped(hp, err, data, len);
    return HTTP_PARSE_ERROR;
}

http_req_t *http_parse_take(http_parse_t *hp)
{
    http_req_t *r = hp->req;
    hp->req = NULL;
    llhttp_resume(&hp->parser);
    return r;
}

/* ---- what requests carry: query and form parameters, the session cookie ---- */

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* URL-decode src[0..len) into out ('+' is a space); -1 when it does not fit. */
int http_url_decode(const char *src, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '+')
            ch = ' ';
        else if (ch == '%' && i + 2 < len && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            ch = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = ch;
    }
    out[n] = '\0';
    return 0;
}

/* The first value of name in a query or form string (§2.1); 1 when found. */
int http_form_get(const char *q, size_t qlen, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = q, *end = q + qlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        char key[64];
        if (http_url_decode(p, (size_t)(kend - p), key, sizeof key) == 0 && strlen(key) == nl &&
            !memcmp(key, name, nl))
            return http_url_decode(eq ? eq + 1 : stop, eq ? (size_t)(stop - eq - 1) : 0, out, cap) == 0;
        p = stop + 1;
    }
    return 0;
}

/* The session id of the Cookie header: the first piece starting ovmsapisession=,
 * pieces split at ';' followed by whitespace. */
int http_cookie_session(const http_req_t *r, char id[37])
{
    size_t len;
    const char *v = http_header(r, "Cookie", &len);
    const char *end = v ? v + len : NULL, *p = v;
    static const char name[] = "ovmsapisession=";
    while (p && p < end) {
        const char *next = NULL;
        for (const char *s = p; s < end; s++)
            if (*s == ';' && s + 1 < end && (s[1] == ' ' || s[1] == '\t')) {
                next = s;
                break;
            }
        const char *stop = next ? next : end;
        if ((size_t)(stop - p) > sizeof name - 1 && !memcmp(p, name, sizeof name - 1)) {
            size_t n = (size_t)(stop - p) - (sizeof name - 1);
            if (n != 36)
                return 0;
            memcpy(id, p + sizeof name - 1, 36);
            id[36] = '\0';
            return 1;
        }
        if (!next)
            break;
        p = next + 1;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
    }
    return 0;
}


int http_form_body(const http_req_t *r, const char *name, char *out, size_t cap)
{
    size_t len;
    const char *type = http_header(r, "Content-Type", &len);
    if (!type || len < 33 || strncasecmp(type, "application/x-www-form-urlencoded", 33) != 0 || !r->body)
        return 0;
    return http_form_get(r->body, r->body_len, name, out, cap);
}
