/*
 * link.c -- one MP-S link to a peer: dialing it or taking it over from the
 * server, the handshake (PROTOCOL, MP-S "Link handshake"), reading and
 * writing lines with the session's RC4 + base64, keepalive and timeouts.
 *
 * States: a dialed link is CONNECTING, then sends its welcome and waits
 * for the peer's (WELCOME), then for the peer's RW (WAIT_RW); an accepted
 * link answers the welcome and sends RW at once. Both are then UP, and
 * sync.c takes over the records. A peer's second link replaces the older
 * one, as a car's second login does.
 *
 * Memory: a link is freed when its handle has closed and no store request
 * of it is still out (refs). Output is gathered per event into one buffer
 * and written with one uv_write.
 * Threading: the replication loop only.
 */
#include "repl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WIRE_MAX 16384             /* longest line on a link (base64 of a record) */

static char readbuf[65536];         /* one loop thread: one read buffer */

typedef struct out_write {
    uv_write_t req;
    link_t *link;
    size_t len;
    char bytes[];
} out_write_t;

static void link_free(link_t *l)
{
    ovms_linesplit_free(&l->ls);
    free(l->batch);
    free(l->obuf);
    free(l);
}

void link_unref(link_t *l)
{
    if (--l->refs == 0)
        link_free(l);
}

const char *link_state_name(const link_t *l)
{
    static const char *names[] = { "connecting", "welcome", "handshake", "up", "closing" };
    return names[l->state];
}

static link_t *link_new(ovms_replication_t *r, peer_t *p, int dialer)
{
    link_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->r = r;
    l->peer = p;
    l->dialer = dialer;
    l->refs = 1;                    /* the handle's */
    l->opened = l->last_rx = l->last_tx = repl_now(r);
    ovms_linesplit_init(&l->ls, WIRE_MAX, NULL, 0);
    uv_tcp_init(&r->loop, &l->tcp);
    l->tcp.data = l;
    l->next = r->links;
    r->links = l;
    return l;
}

static void on_closed(uv_handle_t *h)
{
    link_t *l = h->data;
    ovms_replication_t *r = l->r;
    for (link_t **pp = &r->links; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    link_unref(l);
}

void link_close(link_t *l, int level, const char *why)
{
    peer_t *p = l->peer;
    if (l->state == L_CLOSING)
        return;
    if (why)
        repl_log(l->r, level, "peer %s (%s): link closed: %s", p->conf.id, l->addr, why);
    if (p->link == l) {
        p->link = NULL;
        p->since = repl_wall();
        __atomic_sub_fetch(&l->r->links_up, 1, __ATOMIC_RELAXED);
    }
    if (p->dialing == l)
        p->dialing = NULL;
    if (why && l->dialer)
        snprintf(p->last_error, sizeof p->last_error, "%s", why);
    l->state = L_CLOSING;
    uv_close((uv_handle_t *)&l->tcp, on_closed);
}

void link_close_all(ovms_replication_t *r)
{
    for (link_t *l = r->links; l; l = l->next)
        link_close(l, 3, "the node is stopping");
}

/* ---- output ------------------------------------------------------------------------------------ */

static void on_written(uv_write_t *req, int status)
{
    out_write_t *w = container_of(req, out_write_t, req);
    link_t *l = w->link;
    l->unsent -= w->len;
    if (status < 0 && l->state != L_CLOSING)
        link_close(l, 1, uv_strerror(status));
    else if (l->state == L_UP)
        sync_kick(l);               /* room again: the log reads may go on */
    free(w);
    link_unref(l);
}

static int out_reserve(link_t *l, size_t more)
{
    if (l->olen + more <= l->ocap)
        return 0;
    size_t cap = l->ocap ? l->ocap : 16384;
    while (cap < l->olen + more)
        cap *= 2;
    char *grown = realloc(l->obuf, cap);
    if (!grown)
        return OVMS_ENOMEM;
    l->obuf = grown;
    l->ocap = cap;
    return 0;
}

static void send_raw(link_t *l, const char *bytes, size_t len)
{
    if (l->state == L_CLOSING || out_reserve(l, len) < 0)
        return;
    memcpy(l->obuf + l->olen, bytes, len);
    l->olen += len;
}

void link_send_line(link_t *l, const char *msg, size_t len)
{
    if (l->state == L_CLOSING || out_reserve(l, OVMS_WIRE_LEN(len)) < 0)
        return;
    int n = ovms_session_encode(&l->session, msg, len, l->obuf + l->olen, l->ocap - l->olen);
    if (n > 0)
        l->olen += (size_t)n;
}

void link_flush(link_t *l)
{
    if (!l->olen || l->state == L_CLOSING)
        return;
    out_write_t *w = malloc(sizeof *w + l->olen);
    if (!w) {
        link_close(l, 0, "out of memory");
        return;
    }
    memcpy(w->bytes, l->obuf, l->olen);
    w->len = l->olen;
    w->link = l;
    l->olen = 0;
    if (l->ocap > (1u << 20)) {     /* give back a big resync buffer */
        free(l->obuf);
        l->obuf = NULL;
        l->ocap = 0;
    }
    uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)w->len);
    l->refs++;
    l->unsent += w->len;
    l->last_tx = repl_now(l->r);
    int rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &buf, 1, on_written);
    if (rc < 0) {
        l->unsent -= w->len;
        free(w);
        link_unref(l);
        link_close(l, 1, uv_strerror(rc));
    }
}

/* ---- going up ------------------------------------------------------------------------------------ */

static int parse_marks(link_t *l, ovms_str_t text, char sep)
{
    ovms_watermark_t wm[REPL_MAX_ORIGINS];
    peer_t *p = l->peer;
    int n = text.len ? ovms_watermarks_parse(text, sep, wm, REPL_MAX_ORIGINS) : 0;
    if (n < 0)
        return n;
    p->nadv = 0;
    for (int i = 0; i < n; i++) {
        char origin[33];
        if (ovms_serverid_check(wm[i].origin) < 0)
            return OVMS_EINVAL;
        ovms_str_copy(wm[i].origin, origin, sizeof origin);
        marks_set(&l->holds, origin, (int64_t)wm[i].seq);
        snprintf(p->adv_origin[p->nadv], sizeof p->adv_origin[0], "%.32s", origin);
        p->advertised[p->nadv++] = (int64_t)wm[i].seq;
    }
    return 0;
}

static void go_up(link_t *l)
{
    peer_t *p = l->peer;
    if (p->link && p->link != l)
        link_close(p->link, 2, "replaced by a newer link with the same peer");
    if (p->dialing == l)
        p->dialing = NULL;
    p->link = l;
    p->since = repl_wall();
    p->backoff_ms = 0;
    p->last_error[0] = '\0';
    l->state = L_UP;
    l->up_since = repl_now(l->r);
    __atomic_add_fetch(&l->r->links_up, 1, __ATOMIC_RELAXED);
    repl_log(l->r, 2, "peer %s (%s): link up (%s), resync from %d watermarks", p->conf.id,
             l->addr, l->dialer ? "dialed" : "accepted", l->holds.n);
    sync_kick(l);                   /* resync, then live: one loop (sync.c) */
}

/* Our watermarks, "<o>:<s>" joined by sep. */
static void our_marks(ovms_replication_t *r, char sep, char *buf, size_t cap)
{
    ovms_store_wm_t wm[REPL_MAX_ORIGINS];
    int n = ovms_store_watermarks(r->cfg.store, wm, REPL_MAX_ORIGINS);
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && at + 60 < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s:%lld", i ? (char[]){ sep, 0 } : "",
                               wm[i].origin, (long long)wm[i].seq);
}

/* ---- input ------------------------------------------------------------------------------------- */

static void dialer_welcome(link_t *l, ovms_str_t line)
{
    peer_t *p = l->peer;
    char server_token[65];
    if (ovms_server_welcome_verify(line.ptr, line.len, p->conf.secret, strlen(p->conf.secret),
                                   l->token, server_token, sizeof server_token) < 0) {
        link_close(l, 1, "the peer's welcome does not verify (is the secret the same on both?)");
        return;
    }
    ovms_session_init(&l->session, p->conf.secret, strlen(p->conf.secret), server_token,
                      strlen(server_token), l->token, strlen(l->token));
    l->state = L_WAIT_RW;
}

static void got_rw(link_t *l, ovms_str_t payload)
{
    ovms_repl_t rw;
    if (ovms_repl_parse(payload, &rw) < 0 || rw.kind != 'W' ||
        !ovms_str_eq(rw.serverid, l->peer->conf.id) || parse_marks(l, rw.watermarks, ',') < 0) {
        link_close(l, 1, "bad RW (watermarks) from the peer");
        return;
    }
    go_up(l);
}

static void on_message(link_t *l, const ovms_msg_t *m)
{
    if (l->state == L_WAIT_RW) {
        if (m->code == 'R' && m->payload.len && m->payload.ptr[0] == 'W')
            got_rw(l, m->payload);
        else
            link_close(l, 1, "the peer did not begin with RW");
        return;
    }
    switch (m->code) {
    case 'R':
    case 'r': {
        char rec[OVMS_LINE_MAX * 3];
        if (m->payload.len + 1 > sizeof rec) {
            link_close(l, 1, "record too long");
            return;
        }
        rec[0] = m->code;
        memcpy(rec + 1, m->payload.ptr, m->payload.len);
        sync_record(l, rec, m->payload.len + 1);
        return;
    }
    case 'A':
        link_send_line(l, "a", 1);
        return;
    default:
        return;                     /* 'a' and anything else: ignored */
    }
}

static void on_line(link_t *l, ovms_str_t line)
{
    static char plain[WIRE_MAX];
    ovms_msg_t m;

    if (l->state == L_WELCOME) {
        dialer_welcome(l, line);
        return;
    }
    if (ovms_session_decode(&l->session, line.ptr, line.len, plain, sizeof plain, &m) < 0) {
        link_close(l, 1, "undecodable line (wrong secret, or not a peer)");
        return;
    }
    on_message(l, &m);
}

static void feed(link_t *l, const char *data, size_t len)
{
    ovms_str_t line;
    int rc;
    l->last_rx = repl_now(l->r);
    while (l->state != L_CLOSING && (rc = ovms_linesplit_next(&l->ls, &data, &len, &line)) > 0)
        on_line(l, line);
    if (l->state != L_CLOSING && rc < 0)
        link_close(l, 1, rc == OVMS_ELINE ? "line too long" : ovms_strerror(rc));
    if (l->state == L_UP)
        sync_flush(l);
    link_flush(l);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf)
{
    (void)h;
    (void)want;
    *buf = uv_buf_init(readbuf, sizeof readbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    link_t *l = s->data;
    if (nread < 0) {
        link_close(l, 2, nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
        return;
    }
    if (nread > 0)
        feed(l, buf->base, (size_t)nread);
}

void link_pause(link_t *l, int pause)
{
    if (l->state == L_CLOSING || pause == l->reading_paused)
        return;
    l->reading_paused = pause;
    if (pause)
        uv_read_stop((uv_stream_t *)&l->tcp);
    else
        uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
}

/* ---- dialing --------------------------------------------------------------------------------------- */

static void send_welcome(link_t *l)
{
    ovms_replication_t *r = l->r;
    peer_t *p = l->peer;
    char digest[OVMS_DIGEST_B64_LEN + 1], marks[REPL_MAX_ORIGINS * 56];
    char line[REPL_MAX_ORIGINS * 56 + 128];

    if (ovms_token_generate(l->token) < 0) {
        link_close(l, 0, "no random bytes");
        return;
    }
    ovms_digest_b64(p->conf.secret, strlen(p->conf.secret), l->token, OVMS_TOKEN_LEN, digest);
    our_marks(r, ' ', marks, sizeof marks);
    int n = snprintf(line, sizeof line, "MP-S 0 %s %s %s%s%s\r\n", l->token, digest, r->server_id,
                     marks[0] ? " " : "", marks);
    send_raw(l, line, (size_t)n);
    l->state = L_WELCOME;
    l->opened = repl_now(r);
    uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    link_flush(l);
}

/* The connect request holds a reference: released last, since closing the
 * handle may run this with UV_ECANCELED before the close callback. */
static void on_connected(uv_connect_t *req, int status)
{
    link_t *l = req->data;
    if (l->state != L_CLOSING && status < 0)
        link_close(l, 3, uv_strerror(status));
    else if (l->state != L_CLOSING)
        send_welcome(l);
    link_unref(l);
}

typedef struct resolve {
    uv_getaddrinfo_t req;
    link_t *link;
} resolve_t;

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_t *rs = container_of(req, resolve_t, req);
    link_t *l = rs->link;
    free(rs);
    if (l->state != L_CLOSING && status < 0)
        link_close(l, 1, uv_strerror(status));
    if (l->state != L_CLOSING) {
        l->connect.data = l;
        l->refs++;
        int rc = uv_tcp_connect(&l->connect, &l->tcp, res->ai_addr, on_connected);
        if (rc < 0) {
            l->refs--;
            link_close(l, 1, uv_strerror(rc));
        }
    }
    if (res)
        uv_freeaddrinfo(res);
    link_unref(l);
}

void link_dial(ovms_replication_t *r, peer_t *p)
{
    char port[16];
    link_t *l = link_new(r, p, 1);
    resolve_t *rs = l ? calloc(1, sizeof *rs) : NULL;
    if (!rs) {
        if (l)
            link_close(l, 0, "out of memory");
        return;
    }
    snprintf(l->addr, sizeof l->addr, "%.40s:%d", p->conf.host, p->conf.port);
    snprintf(port, sizeof port, "%d", p->conf.port);
    p->dialing = l;
    rs->link = l;
    l->refs++;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    int rc = uv_getaddrinfo(&r->loop, &rs->req, on_resolved, p->conf.host, port, &hints);
    if (rc < 0) {
        free(rs);
        l->refs--;
        link_close(l, 1, uv_strerror(rc));
    }
}

/* ---- accepting ------------------------------------------------------------------------------------ */

void link_accept(ovms_replication_t *r, int fd, peer_t *p, const char *token, const char *marks,
                 const char *held, size_t nheld, const char *addr)
{
    char mine[OVMS_TOKEN_LEN + 1], digest[OVMS_DIGEST_B64_LEN + 1], line[128];
    char rw[REPL_MAX_ORIGINS * 56 + 48], wm[REPL_MAX_ORIGINS * 56];
    link_t *l = link_new(r, p, 0);

    if (!l) {
        close(fd);
        return;
    }
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    if (uv_tcp_open(&l->tcp, fd) < 0) {
        close(fd);
        link_close(l, 1, "cannot take the connection over");
        return;
    }
    if (parse_marks(l, ovms_str_c(marks), ' ') < 0) {
        link_close(l, 1, "bad watermarks in the peer's welcome");
        return;
    }
    do {
        if (ovms_token_generate(mine) < 0) {
            link_close(l, 0, "no random bytes");
            return;
        }
    } while (!strcmp(mine, token));
    ovms_digest_b64(p->conf.secret, strlen(p->conf.secret), mine, OVMS_TOKEN_LEN, digest);
    int n = snprintf(line, sizeof line, "MP-S 0 %s %s\r\n", mine, digest);
    send_raw(l, line, (size_t)n);
    ovms_session_init(&l->session, p->conf.secret, strlen(p->conf.secret), mine, OVMS_TOKEN_LEN,
                      token, strlen(token));
    our_marks(r, ',', wm, sizeof wm);
    n = snprintf(rw, sizeof rw, "RW%s%s%s", r->server_id, wm[0] ? "," : "", wm);
    link_send_line(l, rw, (size_t)n);
    go_up(l);
    uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    if (nheld && l->state == L_UP)
        feed(l, held, nheld);
    link_flush(l);
}

/* ---- once a second ---------------------------------------------------------------------------------- */

void link_tick(link_t *l, double now)
{
    const ovms_replication_config_t *cfg = &l->r->cfg;
    int handshake = cfg->handshake_timeout_s > 0 ? cfg->handshake_timeout_s : 30;
    int idle = cfg->idle_timeout_s > 0 ? cfg->idle_timeout_s : 3600;
    int keepalive = cfg->keepalive_s > 0 ? cfg->keepalive_s : 600;

    if (l->state == L_CLOSING)
        return;
    if (l->state != L_UP) {
        if (now - l->opened > handshake)
            link_close(l, 1, "handshake timed out");
        return;
    }
    if (now - l->last_rx > idle) {
        link_close(l, 1, "nothing received for too long");
        return;
    }
    if (now - l->last_tx > keepalive) {
        link_send_line(l, "A", 1);
        link_flush(l);
    }
    sync_tick(l, now);
}
