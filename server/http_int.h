/*
 * http_int.h -- the HTTP API inside ovmsd (../shared/HTTP-API.md): its
 * connections (http.c), its requests and answers, and the API on top
 * (http_api.c, http_auth.c).
 *
 * An HTTP connection lives on the worker that accepted it, like a v2
 * connection before its login; it never moves. A request is parsed by
 * llhttp into an http_req_t that exists only while the request is being
 * received and answered, so an idle keep-alive connection costs its handle
 * and parser only. One request is answered at a time: the input of a
 * pipelining client waits, and so does the parser, until the answer is
 * queued.
 */
#ifndef OVMS_HTTP_INT_H
#define OVMS_HTTP_INT_H

#include "server_int.h"

#include <jansson.h>
#include <llhttp.h>

#define HTTP_HEAD_MAX 8192           /* request line + headers (HTTP-API.md §2.1) */
#define HTTP_BODY_MAX 65536
#define HTTP_HEADERS_MAX 64
#define HTTP_REQUEST_SECONDS 30      /* to receive a whole request, or between requests */

typedef struct http_header {
    uint16_t name, name_len, value, value_len;   /* offsets into head */
} http_header_t;

typedef struct http_req {
    int method;                      /* llhttp_method_t */
    uint8_t major, minor;
    uint8_t keep_alive;
    uint8_t in_value;                /* the parser is in a header value */
    uint16_t url_len;                /* the target is head[0 .. url_len) */
    size_t head_len;
    int nheaders;
    http_header_t headers[HTTP_HEADERS_MAX];
    char *body;
    size_t body_len;
    char head[HTTP_HEAD_MAX];
} http_req_t;

/* A request being parsed (http_parse.c). */
typedef struct http_parse {
    llhttp_t parser;
    http_req_t *req;                 /* being received */
    int status;                      /* after HTTP_PARSE_ERROR: the answer */
    const char *reason, *headers;
} http_parse_t;

enum { HTTP_PARSE_ERROR = -1, HTTP_PARSE_MORE = 0, HTTP_PARSE_DONE = 1 };
void http_parse_init(http_parse_t *hp);
void http_parse_free(http_parse_t *hp);
/* Feed bytes. DONE: a request is complete (http_parse_take it, then feed
 * the bytes from *used on). ERROR: status, reason and headers say what to
 * answer before closing. MORE: all taken, nothing complete yet. */
int http_parse_feed(http_parse_t *hp, const char *data, size_t len, size_t *used);
http_req_t *http_parse_take(http_parse_t *hp);
http_req_t *http_req_new(void);
void http_req_free(http_req_t *r);
/* A thread's spare requests (at its end). */
void http_req_spares_free(void);

typedef struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;                /* the request deadline */
    worker_t *w;
    link_t wlink;                    /* the worker's HTTP connections */
    http_parse_t parse;
    http_req_t *req;                 /* being answered, or NULL */
    char *held;                      /* input after a complete request, waiting for its answer */
    size_t held_len;
    int refs;
    uint8_t answering;               /* req is being answered */
    uint8_t closing;
    uint8_t close_after;             /* the answer being written is the last */
    uint8_t https;
    tls_conn_t *tls;                 /* on an HTTPS listener */
    uint8_t reading;
    uint8_t in_parse;                /* parse() is on the stack: drain() leaves it the rest */
    uint8_t rl_held;                 /* a refused request held for the rate limit's delay */
    uint8_t moved;                   /* handed to another worker: this object only closes */
    uint8_t votes;                   /* consecutive requests for vehicles homed on `prefer` */
    worker_t *prefer;                /* where the vehicles it asks for live */
    peer_t peer;
} http_conn_t;

/* The worker's side (worker.c): a connection on an HTTP listener. */
void http_accept(worker_t *w, uv_stream_t *listener, int https);
/* The request was about a vehicle homed on home: a plain HTTP connection
 * that keeps asking about vehicles there moves there between requests,
 * so its answers need no trip between workers. */
void http_conn_prefer(http_conn_t *c, worker_t *home);
/* Close every HTTP connection (the worker is stopping). */
void http_close_all(worker_t *w);

void http_conn_ref(http_conn_t *c);
void http_conn_unref(http_conn_t *c);
/* The answer to c's current request; headers is "" or CRLF-terminated
 * lines. No-op when the connection has gone. Input resumes after it. */
void http_respond(http_conn_t *c, int status, const char *reason, const char *ctype,
                  const char *headers, const char *body, size_t len);
/* A header's value (NULL when absent); names compare case-insensitively. */
const char *http_header(const http_req_t *r, const char *name, size_t *len);

/* http_api.c: a complete request to answer (now or later, by http_respond). */
void http_api_handle(http_conn_t *c, http_req_t *r);
/* http_parse.c: the first value of name in a query or form string,
 * URL-decoded (§2.1); 1 when there. */
int http_form_get(const char *q, size_t qlen, const char *name, char *out, size_t cap);
/* The same from a form body (application/x-www-form-urlencoded; §2.1). */
int http_form_body(const http_req_t *r, const char *name, char *out, size_t cap);
/* URL-decode src[0..len) into out ('+' is a space); -1 when it does not fit. */
int http_url_decode(const char *src, size_t len, char *out, size_t cap);
/* The session id of the Cookie header (§3.1); 1 when there. */
int http_cookie_session(const http_req_t *r, char id[37]);
/* http_file.c: 1 when the target is /file/... (answered). */
int http_file(http_conn_t *c, const http_req_t *r);
/* metrics.c: 1 when path is /metrics (answered). */
int metrics_answer(http_conn_t *c, const http_req_t *r, const char *path, size_t plen);
/* 1 when p's address is in the space- or comma-separated list. */
int http_addr_listed(const char *list, const peer_t *p);
/* http_mqapi.c: 1 when path is one of the /mqapi hooks (answered). */
int http_mqapi(http_conn_t *c, const http_req_t *r, const char *path, size_t plen);

/* ---- the API's requests (http_api.c) and its vehicle endpoints (http_vehicle.c) ---- */

typedef struct http_who {
    char owner[65];
    char permit[256];                /* "*" for a password */
    char session[37];                /* the session it came with, or "" */
} http_who_t;

typedef struct route route_t;
typedef struct api_req {
    http_conn_t *c;                  /* a reference is held */
    http_req_t *r;
    const route_t *route;
    char args[2][128];               /* the path segments after the endpoint's, decoded */
    http_who_t who;
} api_req_t;

/* Answers with the API's CORS header; api_json takes j (compact, keys sorted, "\n"). */
void api_text(api_req_t *a, int status, const char *reason, const char *body);
void api_json(api_req_t *a, int status, const char *reason, json_t *j, const char *headers);
/* The JSON text of an answer (takes j; malloc'd, with its "\n"), and such a text answered. */
char *api_json_text(json_t *j, size_t flags, size_t *len);
void api_json_body(api_req_t *a, int status, const char *reason, const char *body, size_t len,
                   const char *headers);
/* A worker thread's kept answers (http_vehicle.c), at its end. */
void http_memo_free(void);
/* The same with more json_dumps flags (JSON_REAL_PRECISION for Perl's numbers). */
void api_json_flags(api_req_t *a, int status, const char *reason, json_t *j, const char *headers, size_t flags);
/* The request is answered: its reference on the connection goes. */
void api_done(api_req_t *a);

/* http_token.c: /api/token (§6.3-§6.5) */
void api_token_get(api_req_t *a);
void api_token_post(api_req_t *a);
void api_token_delete(api_req_t *a);

void api_vehicle_get(api_req_t *a);
void api_vehicle_delete(api_req_t *a);
void api_protocol_get(api_req_t *a);
void api_status_get(api_req_t *a);
void api_location_get(api_req_t *a);
void api_charge_get(api_req_t *a);
void api_tpms_get(api_req_t *a);
void api_historical_get(api_req_t *a);
void api_lock_get(api_req_t *a);
void api_valet_get(api_req_t *a);
/* http_command.c: the car-command endpoint name (§9.2) for a's method. */
void api_command(api_req_t *a, const char *name);
/* The first value of name in the URL query (§2.1); 1 when there. */
int api_query(api_req_t *a, const char *name, char *out, size_t cap);

#endif
