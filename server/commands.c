/*
 * commands.c -- commands and their responses (PROTOCOL 6.4).
 *
 * A command from a client goes to the car, and the client joins the car's
 * requester FIFO; the car's responses are matched to requesters by order.
 * Multi-line replies to commands 1 and 3 keep their requester at the head
 * until the last line (or an error line, as the reference does). A
 * requester that disconnects leaves an empty slot, so the order holds and
 * its replies are dropped. With the car offline the client is told at once
 * (decision a). Commands 30, 31 and 32 are answered here from the store,
 * with ordered reads so that what the car just sent is included.
 * Threading: the vehicle's home worker.
 */
#include "server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the requester FIFO ---------------------------------------------------------------- */

int cmd_queue_push(vehicle_t *v, const requester_t *who)
{
    if (v->qlen == v->qcap) {
        int cap = v->qcap ? v->qcap * 2 : 8;
        requester_t *q = malloc((size_t)cap * sizeof *q);
        if (!q)
            return -1;
        for (int i = 0; i < v->qlen; i++)
            q[i] = v->cmdq[(v->qhead + i) % v->qcap];
        free(v->cmdq);
        v->cmdq = q;
        v->qcap = cap;
        v->qhead = 0;
    }
    v->cmdq[(v->qhead + v->qlen) % v->qcap] = *who;
    v->qlen++;
    return 0;
}

static requester_t queue_pop(vehicle_t *v)
{
    requester_t who = v->cmdq[v->qhead];
    v->qhead = (v->qhead + 1) % v->qcap;
    v->qlen--;
    return who;
}

void cmd_forget(vehicle_t *v, conn_t *c)
{
    for (int i = 0; i < v->qlen; i++)
        if (v->cmdq[(v->qhead + i) % v->qcap].conn == c)
            v->cmdq[(v->qhead + i) % v->qcap].conn = NULL;
}

void cmd_clear(vehicle_t *v)
{
    while (v->qlen) {                    /* HTTP requesters hear why (the others, from Z0) */
        requester_t who = queue_pop(v);
        if (who.http)
            http_cmd_car_gone(who.http);
    }
    v->qlen = 0;
    v->qhead = 0;
}

/* ---- server-handled commands 30, 31, 32 -------------------------------------------------- */

/* ---- streaming replies -------------------------------------------------------------------- *
 * A reply can be thousands of lines (C32 of a busy car's history): they are
 * queued only while the connection's unsent output stays below a high-water
 * mark, and the rest follows as the kernel takes it, so a reader that keeps
 * up gets everything and never meets the output limit. The connection's
 * input is held meanwhile (it cannot pile up more requests); a reply that
 * is not read for a minute closes the connection (worker.c). */

#define REPLY_HIGH_WATER (64 * 1024)

typedef void (*line_fn)(const ovms_store_rows_t *rows, const char *type, int k, int n, char *buf, size_t cap);
static void c30_line(const ovms_store_rows_t *rows, const char *type, int k, int n, char *buf, size_t cap);
static void c31_line(const ovms_store_rows_t *rows, const char *type, int k, int n, char *buf, size_t cap);
static void c32_line(const ovms_store_rows_t *rows, const char *type, int k, int n, char *buf, size_t cap);

static line_fn line_of(int cmd)
{
    return cmd == 30 ? c30_line : cmd == 31 ? c31_line : c32_line;
}

void cmd_server_line(int cmd, const ovms_store_rows_t *rows, const char *type, int k, char *buf, size_t cap)
{
    line_of(cmd)(rows, type, k, rows->nrows, buf, cap);
}

const char *cmd_server_none(int cmd)
{
    return cmd == 30 ? "No GPRS utilisation data available" : "No historical data available";
}

void cmd_reply_continue(conn_t *c)
{
    reply_t *r = c->reply;
    char buf[OVMS_LINE_MAX + 512];
    int n = r->req.rows.nrows;
    size_t high = c->w->cfg->output_limit / 2 < REPLY_HIGH_WATER ? c->w->cfg->output_limit / 2
                                                                  : REPLY_HIGH_WATER;
    while (r->next < n && conn_backlog(c) < high && c->state == CS_ACTIVE) {
        line_of(r->cmd)(&r->req.rows, r->text, r->next, n, buf, sizeof buf);
        conn_send(c, buf, strlen(buf));
        r->next++;
    }
    if (r->next >= n)
        cmd_reply_end(c);
}

void cmd_reply_end(conn_t *c)
{
    reply_t *r = c->reply;
    c->reply = NULL;
    c->flags &= (uint16_t)~CF_REPLYING;
    ovms_store_req_cleanup(&r->req);
    free(r);
    if (c->state != CS_CLOSING)
        conn_unpark(c);                  /* what it sent meanwhile, then the socket */
}

static void reply_rows(sreq_t *r, int cmd, const char *none)
{
    conn_t *c = r->conn;
    int n = r->req.status == 0 ? r->req.rows.nrows : 0;

    if (c->state != CS_ACTIVE)
        return;
    if (r->req.status < 0)
        LOG_ERROR(c, "command %d: store read failed: %s", cmd, ovms_strerror(r->req.status));
    if (n == 0) {
        conn_sendf(c, "c%d,1,%s", cmd, none);
        c->flags &= (uint16_t)~CF_REPLYING;
        conn_unpark(c);
        return;
    }
    reply_t *reply = calloc(1, sizeof *reply);
    if (!reply) {
        conn_close(c, "out of memory");
        return;
    }
    reply->req = r->req;                 /* the rows move to the connection */
    ovms_store_req_init(&r->req);
    reply->cmd = cmd;
    memcpy(reply->text, r->text, sizeof reply->text);
    c->reply = reply;
    cmd_reply_continue(c);
}

static void c30_line(const ovms_store_rows_t *rows, const char *type, int k, int n, char *buf, size_t cap)
{
    (void)type;
    snprintf(buf, cap, "c30,0,%d,%d,%s,%s,%s,%s,%s", k + 1, n, ovms_store_cell(rows, k, 0),
             ovms_store_cell(rows, k, 1), ovms_store_cell(rows, k, 2),
             ovms_store_cell(rows, k, 3), ovms_store_cell(rows, k, 4));
}

static void c31_line(const ovms_store_rows_t *rows, const char *type, int k, int n, char *buf, size_t cap)
{
    (void)type;
    snprintf(buf, cap, "c31,0,%d,%d,%s,%s,%s,%s,%s,%s", k + 1, n, ovms_store_cell(rows, k, 0),
             ovms_store_cell(rows, k, 1), ovms_store_cell(rows, k, 2),
             ovms_store_cell(rows, k, 3), ovms_store_cell(rows, k, 4),
             ovms_store_cell(rows, k, 5));
}

static void c32_line(const ovms_store_rows_t *rows, const char *type, int k, int n, char *buf, size_t cap)
{
    snprintf(buf, cap, "c32,0,%d,%d,%s,%s,%s,%s", k + 1, n, type, ovms_store_cell(rows, k, 0),
             ovms_store_cell(rows, k, 1), ovms_store_cell(rows, k, 2));
}

static void c30_done(sreq_t *r)
{
    reply_rows(r, 30, cmd_server_none(30));
}

static void c31_done(sreq_t *r)
{
    reply_rows(r, 31, cmd_server_none(31));
}

static void c32_done(sreq_t *r)
{
    reply_rows(r, 32, cmd_server_none(32));
}

/* "since" is a date or a timestamp; missing or unreadable means all records. */
static int64_t parse_since(ovms_str_t s)
{
    int64_t t;
    return s.len && ovms_timestamp_parse(s, &t) == 0 ? t : INT64_MIN;
}

int cmd_server_prep(ovms_store_req_t *req, const char *vehicle, const ovms_command_t *cmd, char *type,
                    size_t cap)
{
    ovms_str_t f[2] = { { "", 0 }, { "", 0 } };
    int nf = cmd->has_params ? ovms_fields_split(cmd->params, f, 2) : 0;
    type[0] = '\0';
    if (cmd->cmd == 30)
        return ovms_store_prep_util_list(req, vehicle);
    if (cmd->cmd == 31)
        return ovms_store_prep_hist_summary(req, vehicle, nf > 0 ? parse_since(f[0]) : INT64_MIN);
    if (nf < 1 || f[0].len == 0 || f[0].len >= cap)
        return OVMS_EINVAL;
    ovms_str_copy(f[0], type, cap);
    return ovms_store_prep_hist_records(req, vehicle, type, nf > 1 ? parse_since(f[1]) : -1);
}

static void server_command(conn_t *c, const ovms_command_t *cmd)
{
    vehicle_t *v = c->vehicle;
    sreq_t *r;
    ovms_str_t f[2] = { { "", 0 }, { "", 0 } };
    int nf = cmd->has_params ? ovms_fields_split(cmd->params, f, 2) : 0;

    if (cmd->cmd == 30) {
        hub_flush_util(v);          /* so that today's counters are in */
        r = sreq_new(c->w, c, NULL, c30_done);
        if (r)
            ovms_store_prep_util_list(&r->req, v->id);
    } else if (cmd->cmd == 31) {
        r = sreq_new(c->w, c, NULL, c31_done);
        if (r)
            ovms_store_prep_hist_summary(&r->req, v->id, nf > 0 ? parse_since(f[0]) : INT64_MIN);
    } else {
        if (nf < 1 || f[0].len == 0 || f[0].len >= sizeof r->text) {
            conn_send(c, "c32,1,No historical data available", 34);
            return;
        }
        r = sreq_new(c->w, c, NULL, c32_done);
        if (r) {
            ovms_str_copy(f[0], r->text, sizeof r->text);
            ovms_store_prep_hist_records(&r->req, v->id, r->text, nf > 1 ? parse_since(f[1]) : -1);
        }
    }
    if (!r)
        return;
    ovms_store_req_ordered(&r->req);
    sreq_submit(r);
    c->flags |= CF_REPLYING;    /* one server command at a time: input waits for the reply */
}

void cmd_server_run(conn_t *c, ovms_str_t payload)
{
    ovms_command_t cmd = { 0 };
    ovms_command_parse(payload, &cmd);
    if (cmd.wellformed && cmd.cmd >= 30 && cmd.cmd <= 32)
        server_command(c, &cmd);
}

/* ---- routing ------------------------------------------------------------------------------- */

void cmd_from_client(conn_t *c, ovms_str_t payload, int paranoid, const char *raw, size_t rawlen)
{
    vehicle_t *v = c->vehicle;
    ovms_command_t cmd = { 0 };

    if (!paranoid) {
        ovms_command_parse(payload, &cmd);
        if (cmd.wellformed && cmd.cmd >= 30 && cmd.cmd <= 32) {
            /* history made on the car's node may still be on its way here */
            if (cmd.cmd != 30 && nodebus_defer_read(v, c, payload))
                return;
            server_command(c, &cmd);
            return;
        }
    }
    if (!v->car) {
        if (nodebus_command(v, c, !paranoid && cmd.has_cmd ? cmd.cmd : -1, raw, rawlen)) {
            metric_inc(&c->w->m.commands[METRIC_CMD_FORWARDED]);
            return;                   /* the car is on another node */
        }
        metric_inc(&c->w->m.commands[METRIC_CMD_NOT_CONNECTED]);
        if (!paranoid && cmd.has_cmd)
            conn_sendf(c, "c%d,1,vehicle not connected", cmd.cmd);
        return;                       /* a paranoid command cannot be answered */
    }
    if (v->qlen >= c->w->cfg->max_pending_commands) {
        metric_inc(&c->w->m.commands[METRIC_CMD_REFUSED]);
        log_limited(OVMS_LOG_WARN, c, "command refused", v->id,
                    "%d commands waiting for the car: refused", v->qlen);
        if (!paranoid && cmd.has_cmd)
            conn_sendf(c, "c%d,1,too many commands waiting for the vehicle", cmd.cmd);
        return;
    }
    requester_t who = { .conn = c };
    if (cmd_queue_push(v, &who) < 0)
        return;
    metric_inc(&c->w->m.commands[METRIC_CMD_SENT]);
    conn_send(v->car, raw, rawlen);
}

void cmd_from_remote(vehicle_t *v, const char *node, uint64_t conn_id, const char *raw, size_t len)
{
    requester_t who = { .remote_id = conn_id };
    snprintf(who.node, sizeof who.node, "%s", node);
    if (!v->car)
        return;                       /* its node answers at the timeout */
    if (v->qlen >= v->w->cfg->max_pending_commands) {
        ovms_command_t cmd = { 0 };
        char reply[96];
        ovms_command_parse((ovms_str_t){ raw + 1, len - 1 }, &cmd);
        int n = snprintf(reply, sizeof reply, "c%d,1,too many commands waiting for the vehicle",
                         cmd.has_cmd ? cmd.cmd : 0);
        nodebus_reply(v, &who, reply, (size_t)n);
        return;
    }
    if (cmd_queue_push(v, &who) == 0) {
        metric_inc(&v->w->m.commands[METRIC_CMD_SENT]);
        conn_send(v->car, raw, len);
    }
}

void cmd_reply_from_car(conn_t *car, ovms_str_t payload, int paranoid, const char *raw,
                        size_t rawlen)
{
    vehicle_t *v = car->vehicle;
    requester_t target;

    if (v->qlen == 0) {
        hub_to_clients(v, raw, rawlen);   /* unsolicited: everyone, on every node */
        nodebus_relay(v, raw, rawlen);
        return;
    }
    int popped = 1;
    if (paranoid) {
        target = queue_pop(v);            /* unreadable, so it always pops */
    } else {
        ovms_cmdreply_t r;
        ovms_cmdreply_parse(payload, &r);
        popped = !ovms_cmdreply_continues(&r);
        target = popped ? queue_pop(v) : v->cmdq[v->qhead];
    }
    if (popped)
        metric_inc(&car->w->m.commands[METRIC_CMD_REPLIED]);
    if (target.http)
        http_cmd_reply(target.http, payload, paranoid, popped);
    else if (target.conn)
        conn_send(target.conn, raw, rawlen);
    else if (target.node[0])
        nodebus_reply(v, &target, raw, rawlen);
    else
        LOG_DEBUG(car, "reply for a requester that left: dropped");
}
