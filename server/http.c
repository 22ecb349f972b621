/*
 * http.c -- HTTP connections on the worker loops: reading into the parser
 * (http_parse.c, which also says how bad input is answered), one request
 * answered at a time, writing the answers, and the deadline: 30 s for a
 * request to arrive, after the connection opened or the previous answer
 * went (then the connection closes). HTTP/1.1 answers keep the connection
 * unless the client says close; HTTP/1.0 ones only when it asks for
 * keep-alive.
 *
 * Lifetime: the connection holds one reference for its handles; an answer
 * being prepared elsewhere (a store read, another worker) holds another, so
 * the object outlives a client that went away, and http_respond on it
 * does nothing.
 */
#include "http_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <time.h>

static void conn_close_http(http_conn_t *c);
static void start_reading(http_conn_t *c);

/* ---- lifetime --------------------------------------------------------------------------------- */

void http_conn_ref(http_conn_t *c)
{
    c->refs++;
}

void http_conn_unref(http_conn_t *c)
{
    if (--c->refs > 0)
        return;
    http_req_free(c->req);
    http_parse_free(&c->parse);
    tls_conn_free(c->tls);
    free(c->held);
    free(c);
}

static void handle_closed(uv_handle_t *h)
{
    http_conn_unref(h->data);        /* one reference per handle */
}

static void conn_close_http(http_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->rl_held)
        http_rate_hold(c->w->srv, &c->peer, -1);
    c->rl_held = 0;
    link_del(&c->wlink);
    if (!c->moved)
        __atomic_sub_fetch(&c->w->srv->conn_count, 1, __ATOMIC_RELAXED);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->tcp, handle_closed);
    worker_http_closed(c->w);
}

void http_close_all(worker_t *w)
{
    link_each(pos, &w->https)
        conn_close_http(container_of(pos, http_conn_t, wlink));
}

/* ---- writing ----------------------------------------------------------------------------------- */

typedef struct http_write {
    uv_write_t req;
    http_conn_t *conn;
    char *buffer;
    int answer;                      /* the end of an answer (else TLS handshake bytes) */
} http_write_t;

static void request_done(http_conn_t *c);

static void on_written(uv_write_t *req, int status)
{
    http_write_t *wr = (http_write_t *)req;
    http_conn_t *c = wr->conn;
    int answer = wr->answer;
    free(wr->buffer);
    free(wr);
    if (status < 0)
        conn_close_http(c);
    else if (!c->closing && answer)
        request_done(c);
    http_conn_unref(c);
}

/* Bytes for the socket (takes buf); an answer's end lets the next request in. */
static void write_bytes(http_conn_t *c, char *buf, size_t len, int answer)
{
    if (!len) {
        free(buf);
        if (answer)
            request_done(c);
        return;
    }
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        free(buf);
        conn_close_http(c);
        return;
    }
    if ((size_t)n == len) {
        free(buf);
        if (answer)
            request_done(c);
        return;
    }
    http_write_t *wr = malloc(sizeof *wr);
    if (!wr) {
        free(buf);
        conn_close_http(c);
        return;
    }
    wr->conn = c;
    wr->buffer = buf;
    wr->answer = answer;
    b = uv_buf_init(buf + n, (unsigned)(len - (size_t)n));
    http_conn_ref(c);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        free(buf);
        free(wr);
        http_conn_unref(c);
        conn_close_http(c);
    }
}

static void http_date(char *buf, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

void http_respond(http_conn_t *c, int status, const char *reason, const char *ctype,
                  const char *headers, const char *body, size_t len)
{
    if (c->closing || !c->req)
        return;
    if (status >= 100 && status < 600)
        metric_inc(&c->w->m.http[status / 100]);
    http_req_t *r = c->req;
    char date[64], head[1024];
    http_date(date, sizeof date);
    int v11 = r->major == 1 && r->minor >= 1;
    int keep = r->keep_alive && !c->close_after && !c->w->stopping;
    if (!keep)
        c->close_after = 1;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.%d %d %s\r\nDate: %s\r\nExpires: %s\r\nCache-Control: max-age=0\r\n"
                     "Connection: %s\r\n%s%s%sContent-Length: %zu\r\n",
                     v11, status, reason, date, date, keep ? "keep-alive" : "close",
                     ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", len);
    size_t hl = headers ? strlen(headers) : 0;
    if (n < 0 || (size_t)n >= sizeof head)
        n = 0;
    char *buf = malloc((size_t)n + hl + 2 + len);
    if (!buf) {
        conn_close_http(c);
        return;
    }
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, headers ? headers : "", hl);
    memcpy(buf + (size_t)n + hl, "\r\n", 2);
    memcpy(buf + (size_t)n + hl + 2, body, len);
    size_t total = (size_t)n + hl + 2 + len;
    if (c->tls) {                        /* the answer as TLS records */
        char *wire = NULL;
        size_t wire_len = 0;
        int sent = tls_send(c->tls, buf, total, &wire, &wire_len);
        free(buf);
        if (sent != (int)total) {
            free(wire);
            conn_close_http(c);
            return;
        }
        buf = wire;
        total = wire_len;
    }
    write_bytes(c, buf, total, 1);
}

static void stop_reading(http_conn_t *c);

/* What the parser refused, answered as the engine does: "<code> <reason>\n",
 * the last answer on the connection. */
static void engine_error(http_conn_t *c)
{
    http_parse_t *hp = &c->parse;
    char body[128];
    c->req = hp->req ? http_parse_take(hp) : http_req_new();
    if (!c->req) {
        conn_close_http(c);
        return;
    }
    if (!c->req->major)
        c->req->major = 1;               /* no version read: answered as HTTP/1.0 */
    stop_reading(c);                     /* nothing more is read from it */
    int n = snprintf(body, sizeof body, "%d %s\n", hp->status, hp->reason);
    c->answering = 1;
    c->close_after = 1;
    http_respond(c, hp->status, hp->reason, "text/plain", hp->headers, body, (size_t)n);
}

/* Input after a complete request waits in held until it is answered. */
static int hold_rest(http_conn_t *c, const char *rest, size_t n)
{
    if (!n)
        return 0;
    char *held = malloc(n);
    if (!held)
        return -1;
    memcpy(held, rest, n);
    c->held = held;
    c->held_len = n;
    return 0;
}

static void stop_reading(http_conn_t *c)
{
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

/* Bytes through the parser, up to the end of the first complete request. */
static void parse(http_conn_t *c, const char *data, size_t len)
{
    size_t used;
    int rc = http_parse_feed(&c->parse, data, len, &used);
    if (rc == HTTP_PARSE_MORE)
        return;
    if (rc == HTTP_PARSE_ERROR) {
        engine_error(c);
        return;
    }
    stop_reading(c);
    uv_timer_stop(&c->timer);
    if (hold_rest(c, data + used, len - used) < 0) {
        conn_close_http(c);
        return;
    }
    c->req = http_parse_take(&c->parse);
    c->answering = 1;
    http_api_handle(c, c->req);
}

/* ---- moving to the vehicles' home worker ------------------------------------------------------------ */

#define MOVE_AFTER 2                 /* requests in a row for vehicles homed on one other worker */

typedef struct http_move {
    call_t call;
    server_t *srv;
    int fd;
    peer_t peer;
} http_move_t;

static http_conn_t *conn_make(worker_t *w, int https);
static void on_deadline(uv_timer_t *t);

void http_conn_prefer(http_conn_t *c, worker_t *home)
{
    if (home == c->w) {
        c->votes = 0;
    } else if (home == c->prefer) {
        if (c->votes < 255)
            c->votes++;
    } else {
        c->prefer = home;
        c->votes = 1;
    }
}

static void move_arrive(worker_t *w, call_t *m)
{
    http_move_t *mv = (http_move_t *)m;
    http_conn_t *c = w && !w->stopping ? conn_make(w, 0) : NULL;
    if (!c || uv_tcp_open(&c->tcp, mv->fd) < 0) {
        close(mv->fd);               /* (a handle that failed to open does not own it) */
        if (c)
            conn_close_http(c);      /* the connection ends: uncounted there */
        else
            __atomic_sub_fetch(&mv->srv->conn_count, 1, __ATOMIC_RELAXED);
        free(mv);
        return;
    }
    c->peer = mv->peer;
    free(mv);
    uv_timer_start(&c->timer, on_deadline, HTTP_REQUEST_SECONDS * 1000, HTTP_REQUEST_SECONDS * 1000);
    start_reading(c);
}

/* Between requests, nothing held: hand the socket to the preferred worker.
 * 1 when it went (this object closes). Plain HTTP only: an SSL object may
 * hold read-ahead plaintext that would have to move too. */
static int move_home(http_conn_t *c)
{
    uv_os_fd_t fd;
    if (c->votes < MOVE_AFTER || c->tls || c->held_len || c->w->stopping ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0)
        return 0;
    http_move_t *mv = calloc(1, sizeof *mv);
    int copy = mv ? dup(fd) : -1;
    if (copy < 0) {
        free(mv);
        c->votes = 0;
        return 0;
    }
    mv->call.mail.type = MAIL_CALL;
    mv->call.run = move_arrive;
    mv->srv = c->w->srv;
    mv->fd = copy;
    mv->peer = c->peer;
    worker_t *to = c->prefer;
    LOG_DEBUG(NULL, "HTTP connection from worker %d moves to worker %d (its vehicles live there)",
              c->w->index, to->index);
    c->moved = 1;
    conn_close_http(c);
    if (worker_post(to, &mv->call.mail) < 0)
        mail_dispose(to->srv, &mv->call.mail);
    return 1;
}

/* Held requests of a pipelining client, one after another, while each is
 * answered at once; without recursion, however many there are. */
static void drain(http_conn_t *c)
{
    if (c->in_parse)
        return;                          /* the loop below, further up the stack */
    c->in_parse = 1;
    while (!c->closing && !c->answering && c->held_len) {
        char *buf = c->held;
        size_t n = c->held_len;
        c->held = NULL;
        c->held_len = 0;
        parse(c, buf, n);
        free(buf);
    }
    c->in_parse = 0;
    if (!c->closing && !c->answering && !c->reading && !move_home(c))
        start_reading(c);
}

/* The answer is with the kernel: the next request, or the end. */
static void request_done(http_conn_t *c)
{
    if (!c->answering)
        return;
    if (c->close_after) {
        conn_close_http(c);
        return;
    }
    c->answering = 0;
    http_req_free(c->req);
    c->req = NULL;
    uv_timer_again(&c->timer);
    drain(c);
}

/* ---- reading and accepting ------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http_conn_t *c = h->data;
    *buf = uv_buf_init(c->w->rbuf, sizeof c->w->rbuf);
}

/* Plaintext: parsed, or kept behind a request still being answered. */
static void input(http_conn_t *c, const char *data, size_t len)
{
    if (!c->answering && !c->held_len) {
        c->in_parse = 1;
        parse(c, data, len);
        c->in_parse = 0;
        return;
    }
    if (c->held_len + len > HTTP_HEAD_MAX + HTTP_BODY_MAX) {
        conn_close_http(c);              /* a client far ahead of its answers */
        return;
    }
    char *grown = realloc(c->held, c->held_len + len);
    if (!grown) {
        conn_close_http(c);
        return;
    }
    memcpy(grown + c->held_len, data, len);
    c->held = grown;
    c->held_len += len;
}

/* Bytes from an HTTPS socket: through OpenSSL (which may answer with
 * handshake records), then the parser. */
static void tls_input(http_conn_t *c, const char *data, size_t len)
{
    worker_t *w = c->w;
    for (;;) {
        char *wire = NULL;
        size_t wire_len = 0, plain = 0;
        int rc = tls_receive(c->tls, data, len, w->tlsbuf, sizeof w->tlsbuf, &plain, &wire, &wire_len);
        data = NULL;
        len = 0;
        write_bytes(c, wire, wire_len, 0);
        if (rc != 0 || c->closing) {
            conn_close_http(c);          /* a TLS error, or the client's close_notify */
            return;
        }
        if (plain)
            input(c, w->tlsbuf, plain);
        if (plain < sizeof w->tlsbuf || c->closing)
            return;
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    http_conn_t *c = s->data;
    if (n < 0) {
        conn_close_http(c);
        return;
    }
    if (n == 0)
        return;
    http_conn_ref(c);
    if (c->tls)
        tls_input(c, buf->base, (size_t)n);
    else
        input(c, buf->base, (size_t)n);
    drain(c);
    http_conn_unref(c);
}

static void start_reading(http_conn_t *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close_http(c);
    else
        c->reading = 1;
}

static void on_deadline(uv_timer_t *t)
{
    conn_close_http(t->data);            /* a slow or silent client */
}

/* A connection object on w's loop (counted in w's HTTP connections). */
static http_conn_t *conn_make(worker_t *w, int https)
{
    http_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->w = w;
    c->https = (uint8_t)https;
    c->refs = 2;                         /* the two handles */
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    link_init(&c->wlink);
    http_parse_init(&c->parse);
    link_add(&w->https, &c->wlink);
    w->nhttp++;
    return c;
}

void http_accept(worker_t *w, uv_stream_t *listener, int https)
{
    http_conn_t *c = conn_make(w, https);
    if (!c)
        return;
    __atomic_add_fetch(&w->srv->conn_count, 1, __ATOMIC_RELAXED);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
        __atomic_load_n(&w->srv->conn_count, __ATOMIC_RELAXED) > w->cfg->max_connections) {
        conn_close_http(c);
        return;
    }
    peer_of_tcp(&c->tcp, &c->peer);
    if (https && !(c->tls = tls_conn_new(w->srv))) {
        conn_close_http(c);
        return;
    }
    uv_timer_start(&c->timer, on_deadline, HTTP_REQUEST_SECONDS * 1000, HTTP_REQUEST_SECONDS * 1000);
    start_reading(c);
}
