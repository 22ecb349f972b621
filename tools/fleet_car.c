/*
 * fleet_car.c -- one simulated car of a fleet: the firmware core
 * (firmware/ovms_fw.h) and its simulated vehicle on a non-blocking socket.
 *
 * The core does the protocol -- login, session, Z, its own reports, pings,
 * commands, store-and-forward history -- exactly as ovms-car does; this
 * driver only adds the scenario's load on top through the core's own
 * entry points: relay messages through ovms_fw_send (a state report with a
 * tag "F<car>.<seq>.<ns>" appended, which apps check for order, loss and
 * latency) and history records through ovms_fw_history_add, whose acks it
 * notices when they leave the core's queue.
 *
 * Open loop: messages are due at fixed times from a random phase, and the
 * tag carries the due time, so a node that falls behind shows as latency
 * (coordinated omission). Closed loop: a window of messages not yet seen by
 * every app of the car. A car only sends while its apps are all live: in
 * churn, a car or app about to leave first waits until what was sent has
 * arrived, so that every count still adds up.
 */
#include "fleet_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t ms_of(uint64_t ns) { return ns / NS_PER_MS; }

static int scenario_relays(const fleet_scenario_t *s, int number)
{
    switch (s->kind) {
    case FLEET_RELAY:
    case FLEET_CROSS_NODE:
    case FLEET_CHURN:
        return 1;
    case FLEET_MIXED:   /* the active share, spread over the fleet */
        return (double)(number % 1000) < s->active * 1000.0;
    default:
        return 0;
    }
}

void fleet_car_init(fleet_car_t *c, fleet_worker_t *w, int index, int number)
{
    const fleet_scenario_t *s = w->s;
    c->w = w;
    c->index = index;
    c->number = number;
    c->fd = -1;
    c->relays = scenario_relays(s, number);
    c->histories = s->kind == FLEET_HISTORY || (s->kind == FLEET_MIXED && s->history_rate > 0);
    const fleet_node_t *n = &w->job->nodes[fleet_car_node(s, number, w->job->nnodes)];
    snprintf(c->cfg.server, sizeof c->cfg.server, "%s:%d", n->host, n->port);
    snprintf(c->cfg.vehicle_id, sizeof c->cfg.vehicle_id, s->ids, s->first + number);
    snprintf(c->cfg.password, sizeof c->cfg.password, "%s", s->password);
    /* reconnect soon after an unexpected close: the run measures the node */
    c->cfg.backoff_min = 1;
    c->cfg.backoff_max = 2;
    uint64_t now = fleet_now_ns();
    ovms_sim_init(&c->sim, w->job->seed * 1000003u + (uint64_t)number, 1.0, time(NULL), ms_of(now));
    ovms_fw_init(&c->fw, &c->cfg, &w->pf, &c->sim.ops, ms_of(now));
}

int fleet_car_up(const fleet_car_t *c)
{
    return c->online || c->refused;
}

int fleet_car_gate(const fleet_car_t *c)
{
    if (!c->online || c->leaving)
        return 0;
    for (int i = 0; i < c->napps; i++)
        if (c->apps[i].state != APP_LIVE || c->apps[i].leaving)
            return 0;
    return 1;
}

/* Has every app seen every message, and is every command answered? */
static int apps_caught_up(const fleet_car_t *c)
{
    for (int i = 0; i < c->napps; i++)
        if (c->apps[i].state == APP_LIVE && !fleet_app_drained(&c->apps[i]))
            return 0;
    return 1;
}

int fleet_car_drained(const fleet_car_t *c)
{
    if (c->w->s->kind == FLEET_LOGIN_STORM)
        return c->fd < 0;        /* the login in flight has finished */
    return c->refused || (apps_caught_up(c) && c->nhout == 0);
}

/* ---- the socket ---------------------------------------------------------------------------- */

static void flush(fleet_car_t *c)
{
    const char *data;
    size_t n;
    while (c->fd >= 0 && !c->connecting && (n = ovms_fw_pending(&c->fw, &data)) > 0) {
        ssize_t k = send(c->fd, data, n, MSG_NOSIGNAL);
        if (k <= 0)
            break;
        ovms_fw_sent(&c->fw, (size_t)k);
    }
    if (c->fd >= 0)
        fleet_watch(c->w, c->fd, c->connecting || ovms_fw_pending(&c->fw, &data) > 0, 0, c->index,
                    &c->polling_out, 0);
}

static void went_offline(fleet_car_t *c)
{
    if (c->online)
        c->w->slot->c.cars_online--;
    c->online = 0;
}

static void close_socket(fleet_car_t *c, uint64_t now, int planned)
{
    if (c->fd < 0)
        return;
    if (!planned && c->w->phase < FLEET_PHASE_STOP && c->w->s->kind != FLEET_LOGIN_STORM)
        c->w->slot->c.disconnects++;
    close(c->fd);
    c->fd = -1;
    c->polling_out = 0;
    c->connecting = 0;
    fleet_handshake_end(c->w, &c->handshaking);
    went_offline(c);
    ovms_fw_closed(&c->fw, ms_of(now));
    if (c->fw.state == OVMS_FW_STOPPED && !c->refused) {
        c->refused = 1;
        c->w->slot->c.login_failures++;
    }
}

static void start_connect(fleet_car_t *c, uint64_t now)
{
    const ovms_fw_addr_t *t = ovms_fw_target(&c->fw);
    c->w->slot->c.connects++;
    c->connect_ns = now;
    c->fd = t ? fleet_connect(t->host, t->port) : -1;
    if (c->fd < 0) {
        ovms_fw_connect_failed(&c->fw, ms_of(now));
        c->w->slot->c.login_failures++;
        fleet_handshake_end(c->w, &c->handshaking);
        return;
    }
    c->connecting = 1;
    fleet_watch(c->w, c->fd, 1, 0, c->index, &c->polling_out, 1);
}

/* The first Z: logged in, reporting. */
static void came_online(fleet_car_t *c, uint64_t now)
{
    fleet_worker_t *w = c->w;
    fleet_handshake_end(w, &c->handshaking);
    c->online = 1;
    w->slot->c.cars_online++;
    w->slot->c.logins++;
    fleet_hist_add(&w->slot->login, (now - c->connect_ns) / 1000);
    if (fleet_churning(w))
        c->leave_ns = now + (uint64_t)(fleet_rand_exp(w, w->s->lifetime) * 1e9);
    if (w->s->kind == FLEET_LOGIN_STORM) {
        /* done: the same car logs in again at once, as a new connection */
        close(c->fd);
        c->fd = -1;
        c->polling_out = 0;
        went_offline(c);
        ovms_fw_init(&c->fw, &c->cfg, &w->pf, &c->sim.ops, ms_of(now));
    }
}

/* ---- the load -------------------------------------------------------------------------------- */

/* The car's state report, formatted again at most once a second: the
 * vehicle changes slowly, and the load generator's CPU is the node's too. */
static const char *state_body(fleet_car_t *c, uint64_t now)
{
    if (!c->body_at || now - c->body_at >= NS_PER_S) {
        ovms_fw_report_t r;
        memset(&r, 0, sizeof r);
        c->sim.ops.report(c->sim.ops.self, &r);
        if (ovms_state_format(&r.state, c->body, sizeof c->body) < 0)
            c->body[0] = '\0';
        c->body_at = now;
    }
    return c->body;
}

/* stamp_ns: when it was due (open loop) or now; now_ns: when it goes */
static int send_relay(fleet_car_t *c, uint64_t stamp_ns, uint64_t now_ns)
{
    char msg[OVMS_LINE_MAX];
    snprintf(msg, sizeof msg, "S%s,F%d.%llu.%llu", state_body(c, stamp_ns), c->number,
             (unsigned long long)c->seq + 1, (unsigned long long)stamp_ns);
    if (ovms_fw_send(&c->fw, msg) < 0)
        return -1;               /* the core's output is full: later */
    c->seq++;
    c->w->slot->c.car_msgs++;
    if (c->w->s->rate > 0)
        fleet_hist_add(&c->w->slot->send_lag, now_ns > stamp_ns ? (now_ns - stamp_ns) / 1000 : 0);
    c->w->slot->c.sent += (uint64_t)c->napps;
    return 0;
}

static int in_flight(const fleet_car_t *c)
{
    uint64_t behind = 0;
    for (int i = 0; i < c->napps; i++) {
        uint64_t b = c->seq - c->apps[i].last_seq;
        if (b > behind)
            behind = b;
    }
    return (int)behind;
}

static void relay_due(fleet_car_t *c, uint64_t now)
{
    const fleet_scenario_t *s = c->w->s;
    if (s->rate <= 0) {
        while (fleet_car_gate(c) && in_flight(c) < s->window && send_relay(c, now, now) == 0)
            ;
        return;
    }
    uint64_t period = (uint64_t)(1e9 / s->rate);
    while (c->next_send_ns <= now) {
        if (!fleet_car_gate(c)) {
            c->next_send_ns += period;   /* paused (churn): skipped, not queued */
            continue;
        }
        if (send_relay(c, c->next_send_ns, now) < 0)
            break;
        c->next_send_ns += period;
    }
}

static int add_record(fleet_car_t *c, uint64_t stamp_ns)
{
    ovms_fw_record_t rec;
    if (c->nhout >= OVMS_FW_HISTORY - 4 || c->fw.hq.n >= OVMS_FW_HISTORY - 4)
        return -1;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.type, sizeof rec.type, "*-Fleet-Load");
    rec.recno = (int32_t)++c->hist_seq;
    rec.lifetime = 3600;
    rec.when = time(NULL);
    snprintf(rec.data, sizeof rec.data, "%d,%u,fleet load record", c->number, c->hist_seq);
    uint32_t code = c->fw.hq.next_ackcode;
    if (ovms_fw_history_add(&c->fw, &rec) < 0)
        return -1;
    c->hout[c->nhout].ackcode = code;
    c->hout[c->nhout].at_ns = stamp_ns;
    c->nhout++;
    c->w->slot->c.hist_sent++;
    return 0;
}

static void history_due(fleet_car_t *c, uint64_t now)
{
    const fleet_scenario_t *s = c->w->s;
    if (!c->online || c->leaving)
        return;
    if (s->history_rate <= 0) {
        while (c->nhout < s->window && add_record(c, now) == 0)
            ;
        return;
    }
    uint64_t period = (uint64_t)(1e9 / s->history_rate);
    while (c->next_hist_ns <= now && add_record(c, c->next_hist_ns) == 0)
        c->next_hist_ns += period;
}

/* Records that left the core's queue were acknowledged by the node. */
static void notice_acks(fleet_car_t *c, uint64_t now)
{
    if (c->fw.records_acked == c->acked_seen)
        return;
    c->acked_seen = c->fw.records_acked;
    for (int i = 0; i < c->nhout;) {
        int queued = 0;
        for (int k = 0; k < c->fw.hq.n && !queued; k++)
            queued = c->fw.hq.rec[k].ackcode == c->hout[i].ackcode;
        if (queued) {
            i++;
            continue;
        }
        fleet_hist_add(&c->w->slot->history, (now - c->hout[i].at_ns) / 1000);
        c->w->slot->c.hist_acked++;
        c->hout[i] = c->hout[--c->nhout];
    }
}

void fleet_car_finish(fleet_car_t *c)
{
    c->w->slot->c.hist_lost += (uint64_t)c->nhout;
}

/* ---- churn: leave once everything sent has arrived ---------------------------------------------- */

static void maybe_leave(fleet_car_t *c, uint64_t now)
{
    if (!fleet_churning(c->w) || !c->online || now < c->leave_ns)
        return;
    c->leaving = 1;
    const char *data;
    if (!apps_caught_up(c) || ovms_fw_pending(&c->fw, &data) > 0)
        return;                       /* an app's receipt wakes us again */
    c->w->slot->c.reconnects++;
    shutdown(c->fd, SHUT_WR);
    close_socket(c, now, 1);
    c->leaving = 0;
}

/* ---- the loop's entry points -------------------------------------------------------------------- */

static uint64_t earliest(uint64_t a, uint64_t b) { return a < b ? a : b; }

void fleet_car_tick(fleet_car_t *c, uint64_t now)
{
    fleet_worker_t *w = c->w;
    int loading = w->phase == FLEET_PHASE_RUN;
    if (w->s->kind == FLEET_LOGIN_STORM && !loading && c->fd < 0)
        return;                  /* no new logins; the one in flight finishes */
    if (c->refused)
        return;
    if (c->queued) {
        if (!c->granted)
            return;              /* waiting for a place in the connect window */
        c->queued = c->granted = 0;
        c->handshaking = 1;
        start_connect(c, now);
    }
    if (now >= c->fw_next_ns && !c->queued) {
        uint64_t next_ms = 0;
        ovms_fw_action_t act = ovms_fw_poll(&c->fw, ms_of(now), &next_ms);
        c->fw_next_ns = next_ms * NS_PER_MS;
        if (act == OVMS_FW_CONNECT && c->fd < 0) {
            if (!fleet_handshake_begin(w, 0, c->index, &c->queued))
                return;
            c->handshaking = 1;
            start_connect(c, now);
        }
        else if (act == OVMS_FW_CLOSE) {
            flush(c);
            close_socket(c, now, 0);
        }
    }
    c->fw.now = ms_of(now);
    if (loading && c->relays && c->napps)
        relay_due(c, now);
    if (loading && c->histories)
        history_due(c, now);
    if (loading)
        maybe_leave(c, now);
    flush(c);
    uint64_t next = c->fw_next_ns;
    if (loading && c->relays && w->s->rate > 0)
        next = earliest(next, c->next_send_ns);
    if (loading && c->histories && w->s->history_rate > 0)
        next = earliest(next, c->next_hist_ns);
    if (loading && fleet_churning(w) && c->online && !c->leaving)
        next = earliest(next, c->leave_ns);   /* once leaving, its apps' receipts wake it */
    /* never again within this pass of the timers: what it waits for comes
     * from the sockets, which the loop reads first */
    fleet_wake_car(c, next > now ? next : now + 1);
}

static void connected(fleet_car_t *c, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof err;
    c->connecting = 0;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        close(c->fd);
        c->fd = -1;
        c->polling_out = 0;
        ovms_fw_connect_failed(&c->fw, ms_of(now));
        c->w->slot->c.login_failures++;
        fleet_handshake_end(c->w, &c->handshaking);
        return;
    }
    ovms_fw_connected(&c->fw, ms_of(now));
}

void fleet_car_io(fleet_car_t *c, uint32_t events, uint64_t now)
{
    if (c->fd < 0)
        return;
    if (c->connecting) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        connected(c, now);
        if (c->fd < 0) {
            fleet_wake_car(c, now);
            return;
        }
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        for (;;) {
            ssize_t n = recv(c->fd, c->w->buf, sizeof c->w->buf, 0);
            if (n > 0) {
                ovms_fw_input(&c->fw, ms_of(now), c->w->buf, (size_t)n);
                if (!c->online && c->fw.state == OVMS_FW_ONLINE && c->fw.peers >= 0)
                    came_online(c, now);
                if (c->fd < 0)
                    break;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            close_socket(c, now, 0);      /* the node closed, or the connection broke */
            break;
        }
        notice_acks(c, now);
    }
    c->fw_next_ns = now;                  /* let the core act on what arrived */
    fleet_car_tick(c, now);
}
