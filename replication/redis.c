/*
 * redis.c -- one Redis connection on a libuv loop (see redis.h): our
 * socket, hiredis's formatter and reply parser.
 *
 * Each connection attempt is a `sock_t` of its own (a TCP or unix socket
 * handle and its connect request), freed in its close callback, so an old
 * attempt's late callbacks never touch the next one. Commands waiting for a
 * reply are a FIFO of callbacks (Redis answers in order); subscribe-mode
 * messages are recognised by their shape and go to on_push. Output is
 * gathered in one buffer and written by a prepare handle, once per loop
 * turn. A timer drives reconnects (jittered exponential backoff) and fails
 * the connection when the oldest command waits longer than timeout_ms.
 * Threading: the loop's thread only.
 */
#include "redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ovms_proto.h"

#define MAX_QUEUED (32u << 20)      /* output bytes before commands are refused */

enum { RS_DOWN, RS_CONNECTING, RS_HANDSHAKE, RS_UP };

typedef struct pending {
    struct pending *next;
    repl_redis_reply_cb cb;
    void *arg;
    double sent;                    /* loop seconds */
    int internal;                   /* AUTH / SELECT of the handshake */
} pending_t;

typedef struct sock {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;
    uv_connect_t connect;
    uv_getaddrinfo_t resolve;
    struct repl_redis *rc;          /* NULL once detached (closing) */
    int refs;                       /* the handle, a connect or resolve in flight */
} sock_t;

typedef struct out_write {
    uv_write_t req;
    sock_t *sock;
    size_t len;
    char bytes[];
} out_write_t;

struct repl_redis {
    uv_loop_t *loop;
    repl_redis_conf_t conf;
    char host[256];
    int port;                       /* 0: unix socket at host */
    sock_t *sock;
    redisReader *reader;
    pending_t *head, *tail;
    int handshake_left;
    int state, closing;
    int down_reported;              /* on_state(down) said for this outage */
    double connect_started;
    char *out;
    size_t olen, ocap, unsent;
    uv_prepare_t flush;
    uv_timer_t timer;
    int backoff_ms;
    double next_connect;            /* loop seconds; 0: none planned */
    uint64_t rng;
    int handles_open;
    repl_redis_stats_t stats;
    char inbuf[65536];
};

static double now_s(repl_redis_t *rc)
{
    return (double)uv_now(rc->loop) / 1000.0;
}

/* ---- sockets ---------------------------------------------------------------------------------------- */

static void sock_unref(sock_t *s)
{
    if (--s->refs == 0)
        free(s);
}

static void on_sock_closed(uv_handle_t *h)
{
    sock_unref(h->data);
}

/* Detach the current socket: its late callbacks see rc == NULL. */
static void sock_drop(repl_redis_t *rc)
{
    sock_t *s = rc->sock;
    if (!s)
        return;
    rc->sock = NULL;
    s->rc = NULL;
    uv_close(&s->h.handle, on_sock_closed);
}

/* ---- failing and going down ----------------------------------------------------------------------- */

static void plan_connect(repl_redis_t *rc)
{
    int max = rc->conf.max_backoff_ms > 0 ? rc->conf.max_backoff_ms : 5000;
    rc->backoff_ms = rc->backoff_ms ? rc->backoff_ms * 2 : 100;
    if (rc->backoff_ms > max)
        rc->backoff_ms = max;
    rc->rng ^= rc->rng << 13;
    rc->rng ^= rc->rng >> 7;
    rc->rng ^= rc->rng << 17;
    double jitter = 0.5 + (double)(rc->rng % 1000) / 2000.0;
    rc->next_connect = now_s(rc) + rc->backoff_ms / 1000.0 * jitter;
}

/* Every command waiting gets NULL, once; the connection is gone. */
static void fail_pending(repl_redis_t *rc)
{
    pending_t *p = rc->head;
    rc->head = rc->tail = NULL;
    while (p) {
        pending_t *next = p->next;
        if (p->cb && !p->internal)
            p->cb(rc, NULL, p->arg);
        free(p);
        p = next;
    }
}

static void go_down(repl_redis_t *rc, const char *why)
{
    sock_drop(rc);
    rc->state = RS_DOWN;
    rc->olen = 0;
    if (rc->reader) {
        redisReaderFree(rc->reader);
        rc->reader = NULL;
    }
    fail_pending(rc);
    if (rc->closing)
        return;
    plan_connect(rc);
    if (!rc->down_reported && rc->conf.on_state)     /* once per outage */
        rc->conf.on_state(rc, 0, why, rc->conf.ctx);
    rc->down_reported = 1;
}

/* ---- output ------------------------------------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status)
{
    out_write_t *w = (out_write_t *)req;     /* req is its first member */
    sock_t *s = w->sock;
    repl_redis_t *rc = s->rc;
    if (rc) {
        rc->unsent -= w->len;
        if (status < 0)
            go_down(rc, uv_strerror(status));
    }
    free(w);
    sock_unref(s);
}

static void on_flush(uv_prepare_t *h)
{
    repl_redis_t *rc = h->data;
    uv_prepare_stop(h);
    if (!rc->olen || !rc->sock || rc->state < RS_HANDSHAKE)
        return;
    out_write_t *w = malloc(sizeof *w + rc->olen);
    if (!w) {
        go_down(rc, "out of memory");
        return;
    }
    memcpy(w->bytes, rc->out, rc->olen);
    w->len = rc->olen;
    w->sock = rc->sock;
    rc->unsent += rc->olen;
    rc->olen = 0;
    uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)w->len);
    rc->sock->refs++;
    int err = uv_write(&w->req, &rc->sock->h.stream, &buf, 1, on_written);
    if (err < 0) {
        rc->unsent -= w->len;
        sock_unref(w->sock);
        free(w);
        go_down(rc, uv_strerror(err));
    }
}

static int queue_bytes(repl_redis_t *rc, const char *cmd, size_t len)
{
    if (rc->olen + len > rc->ocap) {
        size_t cap = rc->ocap ? rc->ocap : 16384;
        while (cap < rc->olen + len)
            cap *= 2;
        char *grown = realloc(rc->out, cap);
        if (!grown)
            return OVMS_ENOMEM;
        rc->out = grown;
        rc->ocap = cap;
    }
    memcpy(rc->out + rc->olen, cmd, len);
    rc->olen += len;
    uv_prepare_start(&rc->flush, on_flush);
    return 0;
}

static int send_formatted(repl_redis_t *rc, char *cmd, int len, repl_redis_reply_cb cb, void *arg,
                          int internal, int expects_reply)
{
    pending_t *p = NULL;
    if (len < 0)
        return OVMS_ENOMEM;
    if (expects_reply && !(p = calloc(1, sizeof *p))) {
        redisFreeCommand(cmd);
        return OVMS_ENOMEM;
    }
    int rc_ = queue_bytes(rc, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rc_ < 0) {
        free(p);
        return rc_;
    }
    rc->stats.commands++;
    if (p) {
        p->cb = cb;
        p->arg = arg;
        p->internal = internal;
        p->sent = now_s(rc);
        if (rc->tail)
            rc->tail->next = p;
        else
            rc->head = p;
        rc->tail = p;
    }
    return 0;
}

static int usable(const repl_redis_t *rc)
{
    if (rc->state != RS_UP || rc->closing)
        return OVMS_ECLOSED;
    return rc->olen + rc->unsent > MAX_QUEUED ? OVMS_ENOMEM : 0;
}

int repl_redis_command(repl_redis_t *rc, repl_redis_reply_cb cb, void *arg, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int err = usable(rc);
    if (err < 0)
        return err;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    return send_formatted(rc, cmd, len, cb, arg, 0, 1);
}

static int send_argv(repl_redis_t *rc, repl_redis_reply_cb cb, void *arg, int argc,
                     const char **argv, const size_t *lens, int expects_reply)
{
    char *cmd = NULL;
    int err = usable(rc);
    if (err < 0)
        return err;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    return send_formatted(rc, cmd, len, cb, arg, 0, expects_reply);
}

int repl_redis_argv(repl_redis_t *rc, repl_redis_reply_cb cb, void *arg, int argc,
                    const char **argv, const size_t *lens)
{
    return send_argv(rc, cb, arg, argc, argv, lens, 1);
}

int repl_redis_push_command(repl_redis_t *rc, int argc, const char **argv, const size_t *lens)
{
    return send_argv(rc, NULL, NULL, argc, argv, lens, 0);   /* (subscribe mode: no reply of its own) */
}

/* ---- input ---------------------------------------------------------------------------------------------- */

/* Subscribe-mode messages: arrays that begin with one of these words. */
static int is_push(const redisReply *r)
{
    static const char *const kinds[] = { "message", "pmessage", "subscribe", "unsubscribe",
                                         "psubscribe", "punsubscribe" };
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcasecmp(r->element[0]->str, kinds[i]))
            return 1;
    return 0;
}

static void handshake_reply(repl_redis_t *rc, redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof why, "refused at connect: %.150s", r->str);
        go_down(rc, why);
        return;
    }
    if (--rc->handshake_left == 0) {
        rc->state = RS_UP;
        rc->backoff_ms = 0;
        rc->down_reported = 0;
        if (rc->conf.on_state)
            rc->conf.on_state(rc, 1, NULL, rc->conf.ctx);
    }
}

static void dispatch(repl_redis_t *rc, redisReply *r)
{
    rc->stats.replies++;
    /* only a subscriber connection (on_push set) gets pushes: elsewhere an
     * array that starts with "message" is just data */
    if (rc->conf.on_push && is_push(r)) {
        if (rc->conf.on_push)
            rc->conf.on_push(rc, r, rc->conf.ctx);
        return;
    }
    pending_t *p = rc->head;
    if (!p) {
        go_down(rc, "a reply nobody asked for");
        return;
    }
    rc->head = p->next;
    if (!rc->head)
        rc->tail = NULL;
    if (p->internal)
        handshake_reply(rc, r);
    else if (p->cb)
        p->cb(rc, r, p->arg);
    free(p);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf)
{
    sock_t *s = h->data;
    (void)want;
    if (s->rc)
        *buf = uv_buf_init(s->rc->inbuf, sizeof s->rc->inbuf);
    else
        *buf = uv_buf_init(NULL, 0);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    sock_t *s = stream->data;
    repl_redis_t *rc = s->rc;
    if (!rc)
        return;
    if (nread < 0) {
        go_down(rc, nread == UV_EOF ? "closed by Redis" : uv_strerror((int)nread));
        return;
    }
    if (redisReaderFeed(rc->reader, buf->base, (size_t)nread) != REDIS_OK) {
        go_down(rc, "cannot parse what Redis sent");
        return;
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
            go_down(rc, "cannot parse what Redis sent");
            return;
        }
        if (!reply)
            return;
        dispatch(rc, reply);
        freeReplyObject(reply);
        if (rc->sock != s)
            return;                 /* a callback closed or the connection failed */
    }
}

/* ---- connecting ------------------------------------------------------------------------------------------ */

static void start_handshake(repl_redis_t *rc)
{
    char *cmd;
    int len;
    rc->state = RS_HANDSHAKE;
    rc->handshake_left = 1;
    rc->stats.connects++;
    if (rc->conf.password[0]) {
        len = redisFormatCommand(&cmd, "AUTH %s", rc->conf.password);
        send_formatted(rc, cmd, len, NULL, NULL, 1, 1);
        rc->handshake_left++;
    }
    if (rc->conf.db) {
        len = redisFormatCommand(&cmd, "SELECT %d", rc->conf.db);
        send_formatted(rc, cmd, len, NULL, NULL, 1, 1);
        rc->handshake_left++;
    }
    len = redisFormatCommand(&cmd, "PING");         /* up once this is answered */
    send_formatted(rc, cmd, len, NULL, NULL, 1, 1);
}

static void on_connected(uv_connect_t *req, int status)
{
    sock_t *s = req->data;
    repl_redis_t *rc = s->rc;
    if (rc && status < 0)
        go_down(rc, uv_strerror(status));
    else if (rc) {
        rc->reader = redisReaderCreate();
        if (!rc->reader)
            go_down(rc, "out of memory");
        else {
            uv_read_start(&s->h.stream, on_alloc, on_read);
            start_handshake(rc);
        }
    }
    sock_unref(s);
}

static void connect_to(repl_redis_t *rc, sock_t *s, const struct sockaddr *addr)
{
    s->connect.data = s;
    s->refs++;
    int err = uv_tcp_connect(&s->connect, &s->h.tcp, addr, on_connected);
    if (err < 0) {
        s->refs--;
        go_down(rc, uv_strerror(err));
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    sock_t *s = req->data;
    repl_redis_t *rc = s->rc;
    if (rc && status < 0)
        go_down(rc, uv_strerror(status));
    else if (rc)
        connect_to(rc, s, res->ai_addr);
    if (res)
        uv_freeaddrinfo(res);
    sock_unref(s);
}

static void open_socket(repl_redis_t *rc)
{
    sock_t *s = calloc(1, sizeof *s);
    if (!s) {
        plan_connect(rc);
        return;
    }
    s->rc = rc;
    s->refs = 1;
    rc->sock = s;
    rc->state = RS_CONNECTING;
    rc->next_connect = 0;
    rc->connect_started = now_s(rc);
    if (!rc->port) {
        uv_pipe_init(rc->loop, &s->h.pipe, 0);
        s->h.handle.data = s;
        s->connect.data = s;
        s->refs++;
        uv_pipe_connect(&s->connect, &s->h.pipe, rc->host, on_connected);
        return;
    }
    uv_tcp_init(rc->loop, &s->h.tcp);
    uv_tcp_nodelay(&s->h.tcp, 1);   /* one write per loop turn already batches: no Nagle wait on top */
    s->h.handle.data = s;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(rc->host, rc->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(rc->host, rc->port, (struct sockaddr_in6 *)&ss) == 0) {
        connect_to(rc, s, (struct sockaddr *)&ss);
        return;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", rc->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    s->resolve.data = s;
    s->refs++;
    if (uv_getaddrinfo(rc->loop, &s->resolve, on_resolved, rc->host, port, &hints) < 0) {
        s->refs--;
        go_down(rc, "cannot resolve the Redis address");
    }
}

static void on_timer(uv_timer_t *t)
{
    repl_redis_t *rc = t->data;
    double now = now_s(rc);
    int timeout = rc->conf.timeout_ms > 0 ? rc->conf.timeout_ms : 5000;
    if (rc->closing)
        return;
    if (rc->state == RS_DOWN && rc->next_connect && now >= rc->next_connect)
        open_socket(rc);
    else if (rc->head && now - rc->head->sent > timeout / 1000.0)
        go_down(rc, "Redis did not answer in time");
    else if (rc->state == RS_CONNECTING && now - rc->connect_started > timeout / 1000.0)
        go_down(rc, "connecting to Redis timed out");
}

/* ---- public ---------------------------------------------------------------------------------------------- */

static int parse_address(repl_redis_t *rc, const char *a)
{
    if (!strncmp(a, "unix:", 5)) {
        if (!a[5] || strlen(a + 5) >= sizeof rc->host)
            return OVMS_EINVAL;
        snprintf(rc->host, sizeof rc->host, "%s", a + 5);
        rc->port = 0;
        return 0;
    }
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a || (size_t)(colon - a) >= sizeof rc->host)
        return OVMS_EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return OVMS_EINVAL;
    size_t n = (size_t)(colon - a);
    if (n >= 2 && a[0] == '[' && a[n - 1] == ']') {
        a++;
        n -= 2;
    }
    memcpy(rc->host, a, n);
    rc->host[n] = '\0';
    rc->port = (int)port;
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    repl_redis_t *rc = h->data;
    if (--rc->handles_open == 0) {
        free(rc->out);
        free(rc);
    }
}

int repl_redis_open(repl_redis_t **out, uv_loop_t *loop, const repl_redis_conf_t *conf)
{
    repl_redis_t *rc = calloc(1, sizeof *rc);
    *out = NULL;
    if (!rc)
        return OVMS_ENOMEM;
    rc->loop = loop;
    rc->conf = *conf;
    if (parse_address(rc, conf->address) < 0) {
        free(rc);
        return OVMS_EINVAL;
    }
    rc->rng = (uint64_t)(uintptr_t)rc ^ uv_hrtime() ^ 0x9e3779b97f4a7c15u;
    uv_prepare_init(loop, &rc->flush);
    rc->flush.data = rc;
    uv_timer_init(loop, &rc->timer);
    rc->timer.data = rc;
    rc->handles_open = 2;
    uv_timer_start(&rc->timer, on_timer, 50, 50);
    open_socket(rc);
    *out = rc;
    return 0;
}

void repl_redis_close(repl_redis_t *rc)
{
    if (!rc || rc->closing)
        return;
    rc->closing = 1;
    go_down(rc, "closing");
    uv_close((uv_handle_t *)&rc->flush, on_handle_closed);
    uv_close((uv_handle_t *)&rc->timer, on_handle_closed);
}

int repl_redis_up(const repl_redis_t *rc)
{
    return rc->state == RS_UP && !rc->closing;
}

void repl_redis_get_stats(const repl_redis_t *rc, repl_redis_stats_t *out)
{
    *out = rc->stats;
    out->queued = rc->olen + rc->unsent;
}
