/*
 * conn.c -- one client connection: reading and framing lines, encrypting
 * and queueing output, flushing, closing.
 *
 * Reads land in the worker's one read buffer; complete lines are handled in
 * place and only an unfinished line is kept (proto's splitter), so an idle
 * connection holds no buffers. Output is encoded straight into the
 * connection's out buffer and written once per loop turn (the worker's
 * check phase): uv_try_write first, and only what the kernel does not take
 * goes to a uv_write, which then owns that buffer. A connection whose
 * unsent output passes the configured limit (a client that stopped reading)
 * is closed at the next flush, so memory never grows without bound.
 *
 * Lifetime: a reference for being open, plus one per pending store request;
 * the memory goes when the last is dropped. conn_close runs the disconnect
 * effects at once; the handle closes asynchronously.
 * Threading: the owning worker's thread only.
 */
#include "server_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

conn_t *conn_new(worker_t *w)
{
    conn_t *c = pool_alloc(&w->conn_pool);
    if (!c)
        return NULL;
    if (uv_tcp_init(&w->loop, &c->tcp) < 0) {
        pool_free(&w->conn_pool, c);
        return NULL;
    }
    c->tcp.data = c;
    c->w = w;
    c->id = (++w->next_id << 8) | (uint64_t)w->index;
    c->refs = 1;
    link_init(&c->wlink);
    link_init(&c->vlink);
    ovms_linesplit_init(&c->ls, OVMS_LINE_MAX, NULL, 0);
    c->accepted = c->last_rx = c->last_tx = worker_now(w);
    worker_track_conn(w, c);
    return c;
}

const char *conn_vehicle_id(const conn_t *c)
{
    if (c->vehicle)
        return c->vehicle->id;
    if (c->moving)
        return c->moving->vehicle;
    return "-";
}

void peer_of_tcp(const uv_tcp_t *tcp, peer_t *out)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        out->family = 4;
        out->port = ntohs(in->sin_port);
        memcpy(out->addr, &in->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        out->family = 6;
        out->port = ntohs(in6->sin6_port);
        memcpy(out->addr, &in6->sin6_addr, 16);
    }
}

void conn_read_peer(conn_t *c)
{
    if (!c->peer.family)
        peer_of_tcp(&c->tcp, &c->peer);
}

const char *peer_addr_text(const peer_t *p, char *buf, size_t cap)
{
    if (!(p->family == 4 && inet_ntop(AF_INET, p->addr, buf, (socklen_t)cap)) &&
        !(p->family == 6 && inet_ntop(AF_INET6, p->addr, buf, (socklen_t)cap)))
        snprintf(buf, cap, "-");
    return buf;
}

const char *conn_peer_text(const conn_t *c, char *buf, size_t cap)
{
    char addr[INET6_ADDRSTRLEN];
    if (!c->peer.family)
        return snprintf(buf, cap, "-"), buf;
    peer_addr_text(&c->peer, addr, sizeof addr);
    snprintf(buf, cap, c->peer.family == 6 ? "[%s]:%u" : "%s:%u", addr, c->peer.port);
    return buf;
}

/* ---- lifetime ------------------------------------------------------------------------- */

void conn_ref(conn_t *c)
{
    c->refs++;
}

void conn_unref(conn_t *c)
{
    if (--c->refs > 0)
        return;
    worker_untrack_conn(c->w, c);
    ovms_linesplit_free(&c->ls);
    free(c->out);
    free(c->held);
    if (c->moving) {
        tls_conn_free(c->moving->tls);
        ws_free(c->moving->ws);
    }
    free(c->moving);
    tls_conn_free(c->tls);
    ws_free(c->ws);
    pool_free(&c->w->conn_pool, c);
}

static void on_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

/* Anyone can open connections that never log in, as many as they like:
 * those closes are logged per source address and reason, a few a minute. */
static void log_close(conn_t *c, const char *why)
{
    char addr[INET6_ADDRSTRLEN];
    if (c->vehicle || c->moving)
        LOG_INFO(c, "closed: %s", why);
    else
        log_limited(OVMS_LOG_INFO, c, why, peer_addr_text(&c->peer, addr, sizeof addr),
                    "closed: %s", why);
}

void conn_authenticated(conn_t *c)
{
    if (c->flags & CF_UNAUTH)
        guard_release(c->w->srv->guard, &c->peer, (c->flags & CF_ADDR_COUNT) != 0);
    c->flags &= (uint16_t)~(CF_UNAUTH | CF_ADDR_COUNT);
}

void conn_close(conn_t *c, const char *why)
{
    worker_t *w = c->w;

    if (c->state == CS_CLOSING)
        return;
    int was_counted = c->state != 0 && !(c->flags & CF_MOVED);
    c->state = CS_CLOSING;
    conn_authenticated(c);
    if (why && !(c->flags & CF_MOVED))
        log_close(c, why);
    if (c->reply)
        cmd_reply_end(c);
    if (c->vehicle && why)
        hub_server_log(c, "%s", why);
    if (c->vehicle && metric_role(c->role) >= 0)
        metric_gauge_add(&w->m.online[metric_role(c->role)], -1);
    if (c->vehicle)
        hub_detach(c);
    if (c->flags & CF_GROUPS)
        groups_conn_gone(c);
    if (!link_empty(&c->wlink)) {
        link_del(&c->wlink);
        w->nconns--;
    }
    if (was_counted)
        __atomic_sub_fetch(&w->srv->conn_count, 1, __ATOMIC_RELAXED);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    worker_maybe_finish(w);
}

/* ---- reading ---------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    (void)suggested;
    /* one buffer per worker: lines are handled before the next read */
    *buf = uv_buf_init(c->w->rbuf, RBUF_SIZE);
}

static int reserve(conn_t *c, size_t more);
static void schedule_flush(conn_t *c);
void conn_queue_wire(conn_t *c, const char *data, size_t len);

/* Bytes already in wire form (TLS records, carried output) straight to the
 * socket's queue. */
void conn_queue_wire(conn_t *c, const char *data, size_t len)
{
    if (!len || c->state == CS_CLOSING || reserve(c, len) < 0)
        return;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += (uint32_t)len;
    schedule_flush(c);
}

/* Plain bytes: through the WebSocket layer once it is open, then the lines. */
static void deliver(conn_t *c, const char *data, size_t len)
{
    if (ws_is_open(c->ws))
        ws_input(c, data, len);
    else
        conn_feed(c, data, len);
}

/* Bytes from a TLS connection's socket: through OpenSSL, then the lines. */
static void tls_input(conn_t *c, const char *data, size_t len)
{
    worker_t *w = c->w;
    conn_ref(c);
    for (;;) {
        char *wire = NULL;
        size_t wire_len = 0, plain = 0;
        int rc = tls_receive(c->tls, data, len, w->tlsbuf, sizeof w->tlsbuf, &plain, &wire,
                             &wire_len);
        data = NULL;
        len = 0;
        conn_queue_wire(c, wire, wire_len);
        free(wire);
        if (rc < 0) {
            conn_close(c, c->tls ? tls_conn_error(c->tls) : "TLS error");
            break;
        }
        if (plain)
            deliver(c, w->tlsbuf, plain);
        if (rc == 1) {
            conn_close(c, "TLS closed by the peer");
            break;
        }
        /* stop when drained, or when the connection moved on (closed, handed over) */
        if (plain < sizeof w->tlsbuf || !c->tls || c->state == CS_CLOSING)
            break;
    }
    conn_unref(c);
}

static void input(conn_t *c, const char *data, size_t len)
{
    if (c->tls)
        tls_input(c, data, len);
    else
        deliver(c, data, len);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    c->last_rx = worker_now(c->w);
    c->w->rx_at = metric_mono();         /* for the relay latency */
    input(c, buf->base, (size_t)nread);
    c->w->rx_at = 0;
}

static int start_reading(conn_t *c)
{
    if (c->flags & CF_READING)
        return 0;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc == 0)
        c->flags |= CF_READING;
    return rc;
}

static void stop_reading(conn_t *c)
{
    if (c->flags & CF_READING) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->flags &= (uint16_t)~CF_READING;
    }
}

int conn_start(conn_t *c)
{
    conn_read_peer(c);
    link_add(&c->w->conns, &c->wlink);
    c->w->nconns++;
    LOG_DEBUG(c, "connected");
    return c->state == CS_PARKED ? 0 : start_reading(c);
}

/* A new connection's welcome is usually there already (TCP_DEFER_ACCEPT):
 * read it now, before the socket joins the loop. A login that moves to
 * another worker then never costs this loop an epoll registration. */
int conn_start_accepted(conn_t *c)
{
    uv_os_fd_t fd;
    ssize_t n = -1;

    conn_read_peer(c);
    link_add(&c->w->conns, &c->wlink);
    c->w->nconns++;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        n = recv(fd, c->w->rbuf, RBUF_SIZE, MSG_DONTWAIT);
    if (n == 0) {
        conn_close(c, "closed by the peer");
        return 0;
    }
    int rc = 0;
    conn_ref(c);                /* the input may close it */
    if (n > 0)
        input(c, c->w->rbuf, (size_t)n);
    if (c->state == CS_WELCOME && !(c->flags & (CF_HOLD_INPUT | CF_MOVED)))
        rc = start_reading(c);
    conn_unref(c);
    return rc;
}

/* Keep what cannot be handled yet (while parked, busy or moving). */
static void hold(conn_t *c, const char *data, size_t len)
{
    if (len == 0)
        return;
    char *grown = realloc(c->held, c->held_len + len);
    if (!grown) {
        conn_close(c, "out of memory");
        return;
    }
    memcpy(grown + c->held_len, data, len);
    c->held = grown;
    c->held_len += (uint32_t)len;
}

static void count_rx(conn_t *c, size_t bytes)
{
    if (c->vehicle && c->role == 'C')
        hub_count(c->vehicle, UTIL_CAR_TX, bytes);
    else if (c->vehicle && c->role == 'A')
        hub_count(c->vehicle, UTIL_APP_TX, bytes);
}

static void message_line(conn_t *c, ovms_str_t line)
{
    ovms_msg_t m;
    int rc = ovms_session_decode(&c->session, line.ptr, line.len, c->w->scratch,
                                 sizeof c->w->scratch, &m);
    count_rx(c, line.len + 2);
    if (rc < 0) {
        conn_close(c, "undecodable line");
        return;
    }
    metric_inc(&c->w->m.rx[m.code & 127]);
    LOG_DEBUG(c, "rx %c%.*s", m.code, (int)(m.payload.len > 200 ? 200 : m.payload.len),
              m.payload.ptr);
    if (c->role == 'C')
        car_message(c, &m);
    else
        client_message(c, &m);
}

void conn_feed(conn_t *c, const char *data, size_t len)
{
    ovms_str_t line;

    for (;;) {
        if (c->state == CS_CLOSING)
            return;
        if (c->state == CS_PARKED || c->state == CS_MOVING || (c->flags & CF_HOLD_INPUT)) {
            hold(c, data, len);
            stop_reading(c);
            if (c->state == CS_MOVING)
                login_hand_over(c);
            return;
        }
        /* with len 0 this only lets the splitter free a finished tail */
        int rc = ovms_linesplit_next(&c->ls, &data, &len, &line);
        if (rc == 0)
            return;
        if (rc < 0) {
            conn_close(c, rc == OVMS_ELINE ? "line longer than 4096 bytes" : "out of memory");
            return;
        }
        if (c->state == CS_WELCOME)
            login_line(c, line);
        else
            message_line(c, line);
        if (ws_take_rest(c->ws)) {           /* the upgrade is answered: frames follow */
            if (len)
                ws_input(c, data, len);
            return;
        }
    }
}

void conn_park(conn_t *c)
{
    c->state = CS_PARKED;
    stop_reading(c);
}

/* Resume: first what was held, then the socket. */
void conn_unpark(conn_t *c)
{
    if (c->state == CS_CLOSING)
        return;
    if (c->state == CS_PARKED)
        c->state = c->role ? CS_ACTIVE : CS_WELCOME;
    char *held = c->held;
    uint32_t n = c->held_len;
    c->held = NULL;
    c->held_len = 0;
    conn_ref(c);
    if (n)
        conn_feed(c, held, n);
    free(held);
    if (c->state != CS_CLOSING && c->state != CS_PARKED && c->state != CS_MOVING &&
        !(c->flags & CF_HOLD_INPUT))
        start_reading(c);
    conn_unref(c);
}

/* Back-pressure for history: a car that sends records faster than the disk
 * takes them is not read until half of them are in. */
void conn_hist_begin(conn_t *c)
{
    if (++c->hist_writes >= HIST_WRITES_MAX && !(c->flags & CF_THROTTLED)) {
        c->flags |= CF_THROTTLED;
        LOG_DEBUG(c, "%d history records waiting for the disk: pausing reads", c->hist_writes);
    }
}

void conn_hist_end(conn_t *c)
{
    c->hist_writes--;
    if ((c->flags & CF_THROTTLED) && c->hist_writes < HIST_WRITES_MAX / 2) {
        c->flags &= (uint16_t)~CF_THROTTLED;
        conn_unpark(c);
    }
}

/* The car's history budget is spent: not read until it refills (the sweep
 * looks once a second), so it slows down instead of losing anything. */
void conn_quota_pause(conn_t *c)
{
    if (!(c->flags & CF_QUOTA))
        log_limited(OVMS_LOG_INFO, c, "history budget spent", conn_vehicle_id(c),
                    "history records faster than %d a minute: pausing reads",
                    c->w->cfg->history_per_minute);
    c->flags |= CF_QUOTA;
}

void conn_quota_check(conn_t *c)
{
    if ((c->flags & CF_QUOTA) && c->vehicle && quota_available(c->vehicle, QUOTA_HISTORY)) {
        c->flags &= (uint16_t)~CF_QUOTA;
        conn_unpark(c);
    }
}

/* ---- writing ------------------------------------------------------------------------------ */

static void schedule_flush(conn_t *c)
{
    if (!(c->flags & CF_IN_FLUSH)) {
        c->flags |= CF_IN_FLUSH;
        c->flush_next = c->w->flush_head;
        c->w->flush_head = c;
        conn_ref(c);
    }
}

static int reserve(conn_t *c, size_t more)
{
    size_t need = (size_t)c->out_len + more;
    if (need <= c->out_cap)
        return 0;
    size_t cap = c->out_cap ? c->out_cap : 256;
    while (cap < need)
        cap *= 2;
    char *grown = realloc(c->out, cap);
    if (!grown)
        return -1;
    c->out = grown;
    c->out_cap = (uint32_t)cap;
    return 0;
}

static void over_limit_check(conn_t *c)
{
    if ((size_t)c->out_len + c->inflight > c->w->cfg->output_limit && !(c->flags & CF_KILL)) {
        c->flags |= CF_KILL;
        LOG_WARN(c, "output queue over %zu bytes: the client is not reading",
                 c->w->cfg->output_limit);
    }
}

/* Through TLS when the connection has it: one TLS record per call. */
static int put_out(conn_t *c, const char *data, size_t len)
{
    char *wire = NULL;
    size_t wire_len = 0;
    if (tls_send(c->tls, data, len, &wire, &wire_len) != (int)len) {
        free(wire);
        return -1;
    }
    conn_queue_wire(c, wire, wire_len);
    free(wire);
    return 0;
}

void conn_send(conn_t *c, const char *msg, size_t len)
{
    int n;
    if (c->state == CS_CLOSING || (c->flags & CF_KILL))
        return;
    if (c->tls || c->ws) {
        char line[OVMS_WIRE_LEN(OVMS_LINE_MAX + 512)];
        n = ovms_session_encode(&c->session, msg, len, line, sizeof line);
        if (n < 0 || (c->ws ? ws_send_lines(c, line, (size_t)n) : put_out(c, line, (size_t)n)) < 0) {
            c->flags |= CF_KILL;
            schedule_flush(c);
            return;
        }
    } else {
        if (reserve(c, OVMS_WIRE_LEN(len)) < 0) {
            c->flags |= CF_KILL;
            schedule_flush(c);
            return;
        }
        n = ovms_session_encode(&c->session, msg, len, c->out + c->out_len, c->out_cap - c->out_len);
        if (n < 0)
            return;
        c->out_len += (uint32_t)n;
    }
    c->last_tx = worker_now(c->w);
    if (len)
        metric_inc(&c->w->m.tx[(unsigned char)msg[0] & 127]);
    if (c->vehicle && c->role == 'C')
        hub_count(c->vehicle, UTIL_CAR_RX, (size_t)n);
    else if (c->vehicle && c->role == 'A')
        hub_count(c->vehicle, UTIL_APP_RX, (size_t)n);
    LOG_DEBUG(c, "tx %.*s", (int)(len > 200 ? 200 : len), msg);
    over_limit_check(c);
    schedule_flush(c);
}

void conn_sendf(conn_t *c, const char *fmt, ...)
{
    char buf[OVMS_LINE_MAX + 512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        conn_send(c, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

int conn_send_raw(conn_t *c, const char *data, size_t len)
{
    if (c->state == CS_CLOSING)
        return -1;
    return ws_is_open(c->ws) ? ws_send_lines(c, data, len) : conn_emit(c, data, len);
}

int conn_emit(conn_t *c, const char *data, size_t len)
{
    if (c->state == CS_CLOSING)
        return -1;
    if (c->tls)
        return put_out(c, data, len);
    if (reserve(c, len) < 0)
        return -1;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += (uint32_t)len;
    schedule_flush(c);
    return 0;
}

typedef struct write_req {
    uv_write_t req;
    conn_t *conn;
    char *buffer;
} write_req_t;

static void on_written(uv_write_t *req, int status)
{
    write_req_t *wr = (write_req_t *)req;
    conn_t *c = wr->conn;
    free(wr->buffer);
    free(wr);
    c->inflight = 0;
    if (c->reply && c->state == CS_ACTIVE && status >= 0)
        cmd_reply_continue(c);           /* the kernel took it: the next rows */
    if (status < 0 && c->state != CS_CLOSING)
        conn_close(c, uv_strerror(status));
    else if ((c->flags & CF_LAST) && !c->out_len)
        conn_close(c, "closed after its last answer");
    else if (c->state == CS_MOVING && c->moving)
        login_hand_over(c);              /* it waited for this write to finish */
    else if (c->out_len && c->state != CS_CLOSING)
        schedule_flush(c);
    conn_unref(c);
}

static void flush_one(conn_t *c)
{
    if (c->flags & CF_KILL) {
        conn_close(c, "output queue limit exceeded (slow reader)");
        return;
    }
    if (c->state == CS_CLOSING || c->inflight || !c->out_len)
        return;
    uv_buf_t b = uv_buf_init(c->out, c->out_len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        conn_close(c, uv_strerror(n));
        return;
    }
    if ((uint32_t)n == c->out_len) {
        /* all taken: an idle connection keeps no output buffer */
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_cap = 0;
        if (c->flags & CF_LAST)
            conn_close(c, "closed after its last answer");
        else if (c->reply)
            cmd_reply_continue(c);       /* room for the next rows */
        return;
    }
    write_req_t *wr = malloc(sizeof *wr);
    if (!wr) {
        conn_close(c, "out of memory");
        return;
    }
    wr->conn = c;
    wr->buffer = c->out;
    b = uv_buf_init(c->out + n, c->out_len - (uint32_t)n);
    c->inflight = c->out_len - (uint32_t)n;
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    conn_ref(c);
    int rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc < 0) {
        c->inflight = 0;
        free(wr->buffer);
        free(wr);
        conn_unref(c);
        conn_close(c, uv_strerror(rc));
    }
}

void conn_close_after_output(conn_t *c, const char *why)
{
    if (c->state == CS_CLOSING)
        return;
    LOG_DEBUG(c, "closing after its output: %s", why);
    stop_reading(c);
    c->flags |= CF_LAST;
    if (!c->out_len && !c->inflight)
        conn_close(c, why);
    else
        schedule_flush(c);
}

void conn_flush_all(worker_t *w)
{
    while (w->flush_head) {
        conn_t *c = w->flush_head;
        w->flush_head = c->flush_next;
        c->flush_next = NULL;
        c->flags &= (uint16_t)~CF_IN_FLUSH;
        flush_one(c);
        conn_unref(c);
    }
    if (w->relay_at) {
        metric_observe(&w->m.relay, metric_mono() - w->relay_at);
        w->relay_at = 0;
    }
}
