/*
 * fleet_app.c -- one app of a fleet: logs in for its car's vehicle (MP-A,
 * scheme 0), checks every relayed message the car tagged, and commands the
 * car when the scenario says so.
 *
 * The login replays the vehicle's stored messages and ends with T: those
 * (old tags among them) are history, not traffic; the app is live from the
 * T on. A tagged message must come from the app's own car (else misrouted)
 * with the next sequence number (lower: a duplicate; higher: a gap, counted
 * out of order, and whatever never arrives is counted lost at the end).
 * Commands alternate a one-line reply (7,stat) with the 16-line list of
 * command 1; a reply line the app did not ask for is misrouted.
 */
#include "fleet_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

void fleet_app_init(fleet_app_t *a, fleet_worker_t *w, fleet_car_t *car, int index, int node)
{
    a->w = w;
    a->car = car;
    a->index = index;
    a->node = node;
    a->fd = -1;
    a->state = APP_OFF;
}

int fleet_app_commands(const fleet_app_t *a)
{
    const fleet_scenario_t *s = a->w->s;
    return s->kind == FLEET_COMMANDS || (s->kind == FLEET_MIXED && s->command_rate > 0 && a->car->relays);
}

int fleet_app_drained(const fleet_app_t *a)
{
    return a->last_seq == a->car->seq && !a->cmd;
}

void fleet_app_finish(fleet_app_t *a)
{
    fleet_counts_t *c = &a->w->slot->c;
    c->lost += a->car->seq > a->received ? a->car->seq - a->received : 0;
    if (a->cmd)
        c->cmd_lost++;
}

/* ---- the connection ------------------------------------------------------------------------- */

static void queue(fleet_app_t *a, const char *data, size_t len)
{
    if (a->out_len + len > sizeof a->out)
        return;                          /* cannot happen: one command at a time */
    memcpy(a->out + a->out_len, data, len);
    a->out_len += len;
}

static void flush(fleet_app_t *a)
{
    while (a->fd >= 0 && a->state != APP_CONNECTING && a->out_len) {
        ssize_t n = send(a->fd, a->out, a->out_len, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        memmove(a->out, a->out + n, a->out_len - (size_t)n);
        a->out_len -= (size_t)n;
    }
    if (a->fd >= 0)
        fleet_watch(a->w, a->fd, a->state == APP_CONNECTING || a->out_len > 0, 1, a->index,
                    &a->polling_out, 0);
}

static void send_msg(fleet_app_t *a, const char *msg)
{
    char wire[OVMS_WIRE_LEN(256)];
    int n = ovms_session_encode(&a->s, msg, strlen(msg), wire, sizeof wire);
    if (n > 0)
        queue(a, wire, (size_t)n);
}

static void start(fleet_app_t *a, uint64_t now)
{
    const fleet_node_t *n = &a->w->job->nodes[a->node];
    char id[40], digest[OVMS_DIGEST_B64_LEN + 1], line[160];
    uint8_t r[OVMS_TOKEN_LEN + 2];
    a->w->slot->c.connects++;
    a->connect_ns = now;
    a->out_len = 0;
    a->fd = fleet_connect(n->host, n->port);
    if (a->fd < 0) {
        a->w->slot->c.login_failures++;
        fleet_handshake_end(a->w, &a->handshaking);
        a->back_ns = now + NS_PER_S;
        fleet_wake_app(a, a->back_ns);
        return;
    }
    a->state = APP_CONNECTING;
    ovms_linesplit_init(&a->ls, OVMS_CLIENT_LINE_MAX, a->tail, sizeof a->tail);
    for (size_t i = 0; i + 8 <= sizeof r; i += 8) {
        uint64_t x = fleet_rand(a->w);
        memcpy(r + i, &x, 8);
    }
    ovms_token_from_bytes(r, OVMS_TOKEN_LEN, a->token);
    snprintf(id, sizeof id, a->w->s->ids, a->w->s->first + a->car->number);
    const char *pw = a->w->s->password;
    ovms_digest_b64(pw, strlen(pw), a->token, OVMS_TOKEN_LEN, digest);
    int len = ovms_welcome_format_client(line, sizeof line, 'A', a->token, digest, id);
    queue(a, line, (size_t)len);
    fleet_watch(a->w, a->fd, 1, 1, a->index, &a->polling_out, 1);
}

static void stop(fleet_app_t *a, uint64_t now, int planned)
{
    fleet_worker_t *w = a->w;
    if (a->state == APP_WELCOME && !planned) {
        /* the node refused the login: trying again would only get the
         * fleet's address blocked for failed logins */
        w->slot->c.login_failures++;
        a->refused = 1;
        planned = 1;
    }
    if (a->fd >= 0)
        close(a->fd);
    fleet_handshake_end(w, &a->handshaking);
    if (!planned && w->phase < FLEET_PHASE_STOP)
        w->slot->c.disconnects++;
    if (a->state == APP_LIVE)
        w->slot->c.apps_online--;
    a->fd = -1;
    a->polling_out = 0;
    a->state = APP_OFF;
    a->leaving = 0;
    if (a->cmd && !planned) {
        w->slot->c.cmd_failed++;          /* its answer went with the connection */
        a->cmd = 0;
    }
    /* back after a moment, as a phone on a mobile network is */
    if (a->refused)
        return;
    a->back_ns = now + (uint64_t)((0.5 + 0.5 * fleet_rand_unit(w)) * 1e9);
    fleet_wake_app(a, a->back_ns);
    fleet_wake_car(a->car, now);
}

/* ---- what arrives ------------------------------------------------------------------------------ */

static void relayed(fleet_app_t *a, ovms_str_t payload, uint64_t now)
{
    const char *tag = NULL;
    for (size_t i = payload.len; i > 0; i--)
        if (payload.ptr[i - 1] == ',') {
            tag = payload.ptr + i;
            break;
        }
    if (!tag || *tag != 'F')
        return;                           /* the car's own report, untagged */
    char t[64];
    size_t tl = (size_t)(payload.ptr + payload.len - tag);
    if (tl >= sizeof t)
        return;
    memcpy(t, tag, tl);
    t[tl] = '\0';
    int car;
    unsigned long long seq, stamp;
    if (sscanf(t, "F%d.%llu.%llu", &car, &seq, &stamp) != 3)
        return;
    fleet_counts_t *c = &a->w->slot->c;
    if (car != a->car->number) {
        c->misrouted++;
        return;
    }
    if (seq <= a->last_seq) {
        c->dups++;
        return;
    }
    if (seq != a->last_seq + 1)
        c->out_of_order++;
    a->last_seq = seq;
    a->received++;
    c->received++;
    fleet_hist_add(&a->w->slot->relay, now > stamp ? (now - stamp) / 1000 : 0);
    if (a->w->s->rate <= 0 || a->car->leaving || a->w->phase == FLEET_PHASE_DRAIN)
        fleet_wake_car(a->car, now);      /* the window moved, or it waits to leave */
}

static void reply(fleet_app_t *a, ovms_str_t payload, uint64_t now)
{
    fleet_counts_t *c = &a->w->slot->c;
    ovms_str_t f[5];
    int64_t cmd, rc, k = 0, max = 0;
    int nf = ovms_fields_split(payload, f, 5);
    if (nf < 2 || ovms_int_parse(f[0], &cmd) < 0 || ovms_int_parse(f[1], &rc) < 0 || !a->cmd ||
        cmd != a->cmd) {
        c->cmd_misrouted++;
        return;
    }
    int ok = rc == 0;
    if (cmd == 1 && ok) {                 /* c1,0,<k>,<max>,<value>: done at the last k */
        ok = nf >= 4 && ovms_int_parse(f[2], &k) == 0 && ovms_int_parse(f[3], &max) == 0;
        if (ok && k + 1 < max)
            return;
    }
    if (ok)
        c->cmd_done++;
    else
        c->cmd_failed++;
    fleet_hist_add(&a->w->slot->command, (now - a->cmd_at_ns) / 1000);
    a->cmd = 0;
    fleet_wake_app(a, now);
    if (a->car->leaving || a->w->phase == FLEET_PHASE_DRAIN)
        fleet_wake_car(a->car, now);
}

static void went_live(fleet_app_t *a, uint64_t now)
{
    fleet_worker_t *w = a->w;
    fleet_handshake_end(w, &a->handshaking);
    a->state = APP_LIVE;
    w->slot->c.apps_online++;
    w->slot->c.logins++;
    fleet_hist_add(&w->slot->login, (now - a->connect_ns) / 1000);
    if (fleet_churning(w))
        a->leave_ns = now + (uint64_t)(fleet_rand_exp(w, w->s->lifetime) * 1e9);
    fleet_wake_app(a, now);
    fleet_wake_car(a->car, now);          /* it may send again */
}

static int on_line(fleet_app_t *a, ovms_str_t line, uint64_t now)
{
    char plain[OVMS_CLIENT_LINE_MAX];
    ovms_msg_t m;
    const char *pw = a->w->s->password;
    if (a->state == APP_WELCOME) {
        char stoken[64];
        if (ovms_server_welcome_verify(line.ptr, line.len, pw, strlen(pw), a->token, stoken,
                                       sizeof stoken) < 0)
            return -1;                    /* refused (counted as it closes) */
        ovms_session_init(&a->s, pw, strlen(pw), stoken, strlen(stoken), a->token, OVMS_TOKEN_LEN);
        a->state = APP_REPLAY;
        return 0;
    }
    if (ovms_session_decode(&a->s, line.ptr, line.len, plain, sizeof plain, &m) < 0)
        return -1;
    if (a->state == APP_REPLAY) {
        if (m.code == 'T')
            went_live(a, now);
        return 0;
    }
    if (m.code == 'S')
        relayed(a, m.payload, now);
    else if (m.code == 'c')
        reply(a, m.payload, now);
    return 0;
}

/* ---- the loop's entry points --------------------------------------------------------------------- */

static void command_due(fleet_app_t *a, uint64_t now)
{
    const fleet_scenario_t *s = a->w->s;
    fleet_car_t *car = a->car;
    if (a->cmd) {
        if (now - a->cmd_at_ns > FLEET_CMD_TIMEOUT_NS) {
            a->w->slot->c.cmd_failed++;   /* the node owes an answer by its 30 s timeout */
            a->cmd = 0;
        }
        return;
    }
    if (!car->online || car->leaving || a->leaving || a->state != APP_LIVE)
        return;
    uint64_t at = now;
    if (s->command_rate > 0) {
        if (!a->next_cmd_ns)
            a->next_cmd_ns = now + (uint64_t)(fleet_rand_unit(a->w) * 1e9 / s->command_rate);
        if (a->next_cmd_ns > now)
            return;
        at = a->next_cmd_ns;              /* latency from when it was due */
        a->next_cmd_ns += (uint64_t)(1e9 / s->command_rate);
    }
    a->cmd = a->commands++ % 4 == 3 ? 1 : 7;
    a->cmd_at_ns = at;
    send_msg(a, a->cmd == 1 ? "C1" : "C7,stat");
    a->w->slot->c.cmd_sent++;
}

static void maybe_leave(fleet_app_t *a, uint64_t now)
{
    if (!fleet_churning(a->w) || a->state != APP_LIVE || now < a->leave_ns)
        return;
    if (!a->leaving) {
        a->leaving = 1;
        fleet_wake_car(a->car, now);      /* it holds its messages now */
    }
    if (!fleet_app_drained(a))
        return;
    a->w->slot->c.reconnects++;
    stop(a, now, 1);
}

void fleet_app_tick(fleet_app_t *a, uint64_t now)
{
    fleet_worker_t *w = a->w;
    if (w->phase >= FLEET_PHASE_STOP || a->refused)
        return;
    if (a->state == APP_OFF) {
        if (now < a->back_ns) {
            fleet_wake_app(a, a->back_ns);
            return;
        }
        if (a->queued && !a->granted)
            return;              /* waiting for a place in the connect window */
        if (!a->queued && !fleet_handshake_begin(w, 1, a->index, &a->queued))
            return;
        a->queued = a->granted = 0;
        a->handshaking = 1;
        start(a, now);
        return;
    }
    if (w->phase == FLEET_PHASE_RUN && fleet_app_commands(a))
        command_due(a, now);
    else if (a->cmd)
        command_due(a, now);              /* only its timeout */
    if (w->phase == FLEET_PHASE_RUN)
        maybe_leave(a, now);
    flush(a);
    uint64_t next = now + NS_PER_S;
    if (a->cmd)
        next = a->cmd_at_ns + FLEET_CMD_TIMEOUT_NS + NS_PER_MS;
    else if (w->phase == FLEET_PHASE_RUN && a->next_cmd_ns && a->next_cmd_ns < next)
        next = a->next_cmd_ns;
    if (fleet_churning(w) && a->state == APP_LIVE && a->leave_ns < next)
        next = a->leave_ns > now ? a->leave_ns : now + NS_PER_MS;
    fleet_wake_app(a, next);
}

void fleet_app_io(fleet_app_t *a, uint32_t events, uint64_t now)
{
    if (a->fd < 0)
        return;
    if (a->state == APP_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            a->w->slot->c.login_failures++;
            stop(a, now, 1);
            return;
        }
        a->state = APP_WELCOME;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        for (;;) {
            ssize_t n = recv(a->fd, a->w->buf, sizeof a->w->buf, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n <= 0) {
                stop(a, now, 0);
                return;
            }
            const char *p = a->w->buf;
            size_t left = (size_t)n;
            ovms_str_t line;
            int rc;
            while ((rc = ovms_linesplit_next(&a->ls, &p, &left, &line)) > 0)
                if (on_line(a, line, now) < 0) {
                    stop(a, now, 0);
                    return;
                }
            if (rc < 0) {
                stop(a, now, 0);
                return;
            }
        }
    }
    flush(a);
}
