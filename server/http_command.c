/*
 * http_command.c -- car commands over HTTP (HTTP-API.md §9): the endpoints
 * that the reference leaves at 501, as an HTTP requester in the car's
 * command queue.
 *
 * The request's worker checks rights, ownership and parameters and builds
 * the command line; a call takes it to the vehicle's home worker, which
 * queues an HTTP requester (requester_t.http) behind the others and sends
 * the line to the car. The unchanged FIFO rule of PROTOCOL §6.4 routes the
 * replies: a single-line reply, or the last line of C1/C3, completes it;
 * the command deadline ([timeouts] command_timeout) turns its slot into an
 * empty one and answers 504; the car leaving answers 503 (C5: 202, the car
 * reboots). The outcome goes back to the request's worker, which answers.
 * At most HTTP_COMMANDS_MAX HTTP commands wait per vehicle.
 *
 * A car on another node of the cluster gets the command over the Redis bus
 * as a v2 app's would (nodebus.c), with the command's own id as requester:
 * its replies come back to http_cmd_reply, its node going answers 503, and
 * the deadline here answers 504 and drops a late reply. A vehicle this
 * node does not watch yet is watched first, and the command is parked
 * until the other nodes' states say where the car is.
 */
#include "http_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_COMMANDS_MAX 8
#define LINES_MAX 64
#define PAYLOAD_MAX 140              /* V2 receive buffers (PROTOCOL §10) */

enum outcome { OUT_REPLY = 1, OUT_PARANOID, OUT_TIMEOUT, OUT_GONE, OUT_OFFLINE, OUT_ELSEWHERE,
               OUT_BUSY, OUT_CHANGED };

struct http_cmd {
    call_t call;                     /* request's worker -> home -> request's worker */
    worker_t *origin;
    api_req_t *a;                    /* touched on origin only */
    char id[33];
    uint64_t identity;
    int cmd;
    char line[PAYLOAD_MAX + 8];      /* "C<cmd>[,<params>]" */
    int at_home_done;
    /* on the home worker while queued */
    vehicle_t *v;
    link_t wlink;                    /* the home worker's HTTP commands, for the deadline */
    uint32_t deadline;
    uint8_t remote;                  /* forwarded over the bus (v->rcmds), not in v's queue */
    uint8_t parked;                  /* waiting for the other nodes' states */
    uint64_t rid;                    /* the requester id the car's node replies to */
    /* the outcome */
    enum outcome out;
    int nlines;
    char *lines[LINES_MAX];          /* the replies' payloads, without the leading 'c' */
};

static void post_back(http_cmd_t *h);

/* ---- on the home worker ---------------------------------------------------------------------------- */

static void leave_queue(http_cmd_t *h, enum outcome out)
{
    h->out = out;
    link_del(&h->wlink);
    vehicle_t *v = h->v;
    h->v = NULL;
    if (h->remote || h->parked) {
        nodebus_forget_http(v, h);
        v->http_cmds--;
        h->remote = h->parked = 0;
    }
    post_back(h);
    nodebus_sync(v);                 /* (unwatched when nothing else needs it) */
    hub_unref(v);
}

void http_cmd_reply(http_cmd_t *h, ovms_str_t payload, int paranoid, int done)
{
    if (paranoid) {
        leave_queue(h, OUT_PARANOID);
        return;
    }
    if (h->nlines < LINES_MAX)
        h->lines[h->nlines++] = strndup(payload.ptr, payload.len);
    if (done)
        leave_queue(h, OUT_REPLY);
}

void http_cmd_car_gone(http_cmd_t *h)
{
    leave_queue(h, OUT_GONE);
}

/* Once a second: commands past their deadline leave an empty slot. */
void http_cmd_sweep(worker_t *w)
{
    uint32_t now = worker_now(w);
    link_each(pos, &w->http_cmds) {
        http_cmd_t *h = container_of(pos, http_cmd_t, wlink);
        if (h->deadline > now)
            continue;
        vehicle_t *v = h->v;
        for (int i = 0; i < v->qlen; i++)
            if (v->cmdq[(v->qhead + i) % v->qcap].http == h)
                v->cmdq[(v->qhead + i) % v->qcap].http = NULL;
        leave_queue(h, OUT_TIMEOUT);
    }
}

void http_cmd_stop_all(worker_t *w)
{
    link_each(pos, &w->http_cmds) {
        http_cmd_t *h = container_of(pos, http_cmd_t, wlink);
        vehicle_t *v = h->v;
        for (int i = 0; i < v->qlen; i++)
            if (v->cmdq[(v->qhead + i) % v->qcap].http == h)
                v->cmdq[(v->qhead + i) % v->qcap].http = NULL;
        leave_queue(h, OUT_GONE);
    }
}

static int http_waiting(const vehicle_t *v)
{
    int n = 0;
    for (int i = 0; i < v->qlen; i++)
        n += v->cmdq[(v->qhead + i) % v->qcap].http != NULL;
    return n;
}

/* Waiting on the home worker (its deadline counts): parked, or forwarded. */
static void hold(worker_t *w, http_cmd_t *h, vehicle_t *v)
{
    hub_ref(v);
    h->v = v;
    h->deadline = worker_now(w) + (uint32_t)w->cfg->command_timeout;
    link_add(&w->http_cmds, &h->wlink);
    v->http_cmds++;
}

/* To the car on another node; the outcome when it cannot go. */
static enum outcome forward(worker_t *w, http_cmd_t *h, vehicle_t *v)
{
    h->rid = (++w->next_id << 8) | (uint64_t)w->index;     /* never a connection's id */
    int rc = nodebus_command_http(v, h, h->rid, h->cmd, h->line, strlen(h->line));
    if (rc <= 0)
        return rc < 0 ? OUT_BUSY : OUT_OFFLINE;
    metric_inc(&w->m.commands[METRIC_CMD_FORWARDED]);
    h->remote = 1;
    hold(w, h, v);
    return 0;
}

static void dispatch(worker_t *w, http_cmd_t *h, vehicle_t *v);

void http_cmd_states_known(vehicle_t *v)
{
    worker_t *w = v->w;
    link_each(pos, &w->http_cmds) {
        http_cmd_t *h = container_of(pos, http_cmd_t, wlink);
        if (h->v != v || !h->parked)
            continue;
        link_del(&h->wlink);
        h->parked = 0;
        v->http_cmds--;
        h->v = NULL;
        dispatch(w, h, v);
        hub_unref(v);                /* dispatch took its own reference if it keeps it */
    }
}

static void at_home(worker_t *w, http_cmd_t *h)
{
    vehicle_t *v = hub_get(w, h->id, h->identity);
    h->at_home_done = 1;
    if (v && !v->car && w->bus && (!v->watched || nodebus_states_pending(v))) {
        h->parked = 1;               /* where the car is: the other nodes say */
        hold(w, h, v);
        nodebus_sync(v);
        if (nodebus_states_pending(v))
            return;
        http_cmd_states_known(v);    /* the watch could not start: what we know */
        return;
    }
    dispatch(w, h, v);
}

static void dispatch(worker_t *w, http_cmd_t *h, vehicle_t *v)
{
    h->at_home_done = 1;
    if (!v) {
        h->out = OUT_CHANGED;
    } else if (!v->car) {
        h->out = hub_car_anywhere(v) ? forward(w, h, v) : OUT_OFFLINE;
        if (!h->out)
            return;                  /* a reply, the deadline or the car's leaving goes on */
    } else if (http_waiting(v) >= HTTP_COMMANDS_MAX || v->qlen >= w->cfg->max_pending_commands) {
        h->out = OUT_BUSY;
    } else {
        requester_t who = { .http = h };
        if (cmd_queue_push(v, &who) == 0) {
            hub_ref(v);
            h->v = v;
            h->deadline = worker_now(w) + (uint32_t)w->cfg->command_timeout;
            link_add(&w->http_cmds, &h->wlink);
            metric_inc(&w->m.commands[METRIC_CMD_SENT]);
            conn_send(v->car, h->line, strlen(h->line));
            return;                          /* a reply, the deadline or the car's leaving goes on */
        }
        h->out = OUT_BUSY;
    }
    if (v) {
        hub_ref(v);
        hub_unref(v);                        /* an entry made for the look goes again */
    }
    post_back(h);
}

/* ---- the trip ------------------------------------------------------------------------------------------ */

static void answer(http_cmd_t *h);

static void free_cmd(http_cmd_t *h)
{
    for (int i = 0; i < h->nlines; i++)
        free(h->lines[i]);
    free(h);
}

static void call_run(worker_t *w, call_t *m)
{
    http_cmd_t *h = (http_cmd_t *)m;
    if (!w) {
        free_cmd(h);
        return;
    }
    if (!h->at_home_done) {
        at_home(w, h);
        return;
    }
    answer(h);
    free_cmd(h);
}

static void post_back(http_cmd_t *h)
{
    h->at_home_done = 1;
    if (worker_post(h->origin, &h->call.mail) < 0)
        free_cmd(h);
}

/* ---- the answer (§9.1) ------------------------------------------------------------------------------- */

static json_t *text_json(const char *p, size_t len)
{
    json_t *j = json_stringn(p ? p : "", p ? len : 0);
    return j ? j : json_null();
}

static json_t *outcome_json(const http_cmd_t *h, const char *text)
{
    return json_pack("{s:i,s:n,s:s}", "command", h->cmd, "result", "text", text);
}

static void answer_reply(http_cmd_t *h)
{
    api_req_t *a = h->a;
    ovms_cmdreply_t last = { 0 };
    json_t *resp = json_array();
    for (int i = 0; i < h->nlines; i++)
        json_array_append_new(resp, text_json(h->lines[i], strlen(h->lines[i])));
    ovms_cmdreply_parse(ovms_str_c(h->lines[h->nlines - 1]), &last);
    json_t *o = json_pack("{s:i,s:I,s:o}", "command", h->cmd, "result", (json_int_t)last.result, "response", resp);
    if (h->cmd == 1 || h->cmd == 3) {
        json_t *values = json_array();
        int max = 0;
        for (int i = 0; i < h->nlines; i++) {
            ovms_cmdreply_t r;
            ovms_cmdreply_parse(ovms_str_c(h->lines[i]), &r);
            if (r.result != 0 || r.nfields < 5 || r.k < 0 || r.k >= 256)
                continue;
            max = (int)r.max;
            while ((int)json_array_size(values) <= r.k)
                json_array_append_new(values, json_null());
            json_array_set_new(values, (size_t)r.k, text_json(r.value.ptr, r.value.len));
        }
        json_object_set_new(o, h->cmd == 1 ? "features" : "parameters", values);
        json_object_set_new(o, "max", json_integer(max));
        json_object_set_new(o, "text", json_string(""));
    } else {
        json_object_set_new(o, "text", text_json(last.text.ptr, last.text.len));
    }
    if (last.result == 0)
        api_json(a, 200, "Ok", o, NULL);
    else if (last.result == 2 || last.result == 3)
        api_json(a, 501, "Not Implemented", o, NULL);
    else
        api_json(a, 409, "Conflict", o, NULL);
}

static void answer(http_cmd_t *h)
{
    api_req_t *a = h->a;
    if (a->c->closing) {
        api_done(a);
        return;
    }
    static const int outcome[] = { [OUT_TIMEOUT] = METRIC_CMD_TIMEOUT + 1,
                                   [OUT_OFFLINE] = METRIC_CMD_NOT_CONNECTED + 1,
                                   [OUT_BUSY] = METRIC_CMD_REFUSED + 1 };
    if ((size_t)h->out < sizeof outcome / sizeof outcome[0] && outcome[h->out])
        metric_inc(&a->c->w->m.commands[outcome[h->out] - 1]);
    switch (h->out) {
    case OUT_REPLY: answer_reply(h); break;
    case OUT_PARANOID: api_json(a, 502, "Bad Gateway", outcome_json(h, "paranoid response"), NULL); break;
    case OUT_TIMEOUT: api_json(a, 504, "Gateway Timeout", outcome_json(h, "no response from vehicle"), NULL); break;
    case OUT_GONE:
        if (h->cmd == 5)
            api_json(a, 202, "Accepted", outcome_json(h, "vehicle disconnected (rebooting)"), NULL);
        else
            api_json(a, 503, "Service Unavailable", outcome_json(h, "vehicle disconnected"), NULL);
        break;
    case OUT_OFFLINE:
        api_json(a, 503, "Service Unavailable",
                 json_pack("{s:i,s:i,s:s}", "command", h->cmd, "result", 1, "text", "vehicle not connected"), NULL);
        break;
    case OUT_ELSEWHERE:
        api_json(a, 503, "Service Unavailable",
                 json_pack("{s:i,s:i,s:s}", "command", h->cmd, "result", 1, "text",
                           "vehicle connected to another node: not yet supported over HTTP"), NULL);
        break;
    case OUT_BUSY: api_text(a, 429, "Too many requests", "Too many commands waiting for the vehicle\n"); break;
    default: api_text(a, 403, "Forbidden", "Forbidden\n"); break;
    }
    api_done(a);
}

/* ---- parameters (§9.1 step 1) -------------------------------------------------------------------------- */

/* name from the URL query or a form body; 1 when given. */
static int param(api_req_t *a, const char *name, char *out, size_t cap)
{
    size_t len;
    if (api_query(a, name, out, cap))
        return 1;
    const char *type = http_header(a->r, "Content-Type", &len);
    return type && len >= 33 && !strncasecmp(type, "application/x-www-form-urlencoded", 33) && a->r->body &&
           http_form_get(a->r->body, a->r->body_len, name, out, cap);
}

static int clean(const char *v, int last)
{
    for (const char *p = v; *p; p++)
        if (*p == '\r' || *p == '\n' || (!last && *p == ','))
            return 0;
    return 1;
}

static int number_in(const char *v, long lo, long hi, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < lo || n > hi)
        return 0;
    *out = n;
    return 1;
}

static int bad(api_req_t *a, const char *name)
{
    char body[96];
    snprintf(body, sizeof body, "Invalid parameter: %s\n", name);
    api_text(a, 400, "Bad Request", body);
    api_done(a);
    return -1;
}

/* Optional digits (a PIN) appended as ",<pin>". */
static int optional_digits(api_req_t *a, const char *name, char *line, size_t cap, long lo, long hi)
{
    char v[64];
    long n;
    if (!param(a, name, v, sizeof v))
        return 0;
    if (!number_in(v, lo, hi, &n) || strspn(v, "0123456789") != strlen(v))
        return bad(a, name);
    size_t used = strlen(line);
    snprintf(line + used, cap - used, ",%s", v);
    return 0;
}

static int charge_line(api_req_t *a, char *line, size_t cap)
{
    static const char *modes[] = { "standard", "storage", NULL, "range", "performance" };
    char mode[32], current[16], timer[16], start[16];
    long m = -1, amps = -1, t, s = -1;
    int has_mode = param(a, "mode", mode, sizeof mode), has_current = param(a, "current", current, sizeof current);
    int has_timer = param(a, "timermode", timer, sizeof timer), has_start = param(a, "timerstart", start, sizeof start);
    if (has_mode) {
        for (long i = 0; i < 5; i++)
            if (modes[i] && !strcasecmp(mode, modes[i]))
                m = i;
        if (m < 0 && (!number_in(mode, 0, 4, &m) || m == 2))
            return bad(a, "mode");
    }
    if (has_current && !number_in(current, 1, 255, &amps))
        return bad(a, "current");
    if ((has_mode || has_current) && (has_timer || has_start))
        return bad(a, "timermode");                   /* one group per request */
    if (has_timer && !number_in(timer, 0, 1, &t))
        return bad(a, "timermode");
    if (has_start && (!has_timer || !number_in(start, 0, 65535, &s)))
        return bad(a, "timerstart");
    if (has_mode && has_current)
        snprintf(line, cap, "C16,%ld,%ld", m, amps);
    else if (has_mode)
        snprintf(line, cap, "C10,%ld", m);
    else if (has_current)
        snprintf(line, cap, "C15,%ld", amps);
    else if (has_timer && has_start)
        snprintf(line, cap, "C17,%ld,%ld", t, s);
    else if (has_timer)
        snprintf(line, cap, "C17,%ld", t);
    else
        snprintf(line, cap, "C11");
    return 0;
}

/* "C<cmd>,<index>,<value>": index 0-31, value the last field (commas allowed for C4). */
static int indexed_line(api_req_t *a, int cmd, const char *iname, char *line, size_t cap)
{
    char idx[16], value[PAYLOAD_MAX + 1];
    long n;
    if (!param(a, iname, idx, sizeof idx) || !number_in(idx, 0, 31, &n))
        return bad(a, iname);
    if (!param(a, "value", value, sizeof value) || !clean(value, cmd == 4))
        return bad(a, "value");
    snprintf(line, cap, "C%d,%ld,%s", cmd, n, value);
    return 0;
}

typedef struct command_route {
    int method;
    const char *name;
    int cmd;                         /* 0: built by fn */
    const char *pin;                 /* an optional digits parameter, or NULL */
    long pin_max;
} command_route_t;

static const command_route_t COMMANDS[] = {
    { HTTP_PUT, "charge", 0, NULL, 0 },       { HTTP_DELETE, "charge", 12, NULL, 0 },
    { HTTP_PUT, "lock", 20, "pin", 99999999 }, { HTTP_DELETE, "lock", 22, "pin", 99999999 },
    { HTTP_PUT, "valet", 21, "pin", 99999999 }, { HTTP_DELETE, "valet", 23, "pin", 99999999 },
    { HTTP_GET, "features", 1, NULL, 0 },     { HTTP_PUT, "features", 2, NULL, 0 },
    { HTTP_PUT, "feature", 2, NULL, 0 },      { HTTP_GET, "parameters", 3, NULL, 0 },
    { HTTP_PUT, "parameters", 4, NULL, 0 },   { HTTP_PUT, "parameter", 4, NULL, 0 },
    { HTTP_PUT, "reset", 5, NULL, 0 },        { HTTP_PUT, "homelink", 24, "button", 2 },
    { HTTP_POST, "command", -1, NULL, 0 },
};

/* POST /api/command: command=<n>[,<params>], the params free text (no line breaks). */
static int generic_line(api_req_t *a, char *line, size_t cap)
{
    char v[PAYLOAD_MAX + 2];
    size_t digits;
    if (!param(a, "command", v, sizeof v) || !(digits = strspn(v, "0123456789")) || digits > 3 ||
        (v[digits] && v[digits] != ',') || !clean(v, 1))
        return bad(a, "command");
    snprintf(line, cap, "C%s", v);
    return 0;
}

static int build_line(api_req_t *a, const command_route_t *cr, char *line, size_t cap)
{
    if (cr->cmd < 0)
        return generic_line(a, line, cap);
    if (!cr->cmd)
        return charge_line(a, line, cap);
    if (cr->cmd == 2)
        return indexed_line(a, 2, "feature", line, cap);
    if (cr->cmd == 4)
        return indexed_line(a, 4, "param", line, cap);
    snprintf(line, cap, "C%d", cr->cmd);
    return cr->pin ? optional_digits(a, cr->pin, line, cap, 0, cr->pin_max) : 0;
}

static const command_route_t *command_of(const api_req_t *a, const char *name)
{
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (COMMANDS[i].method == a->r->method && !strcmp(COMMANDS[i].name, name))
            return &COMMANDS[i];
    return NULL;
}

/* ---- commands 30-32 over POST /api/command: the server answers ------------------------------------------ */

#define SERVER_LINES_MAX 1000

static void server_rows(sreq_t *r)
{
    api_req_t *a = (api_req_t *)(intptr_t)r->arg;
    int cmd = atoi(r->text + 64);
    const ovms_store_rows_t *rows = &r->req.rows;
    int n = r->req.status == 0 ? rows->nrows : 0, truncated = n > SERVER_LINES_MAX;
    json_t *resp = json_array();
    char buf[OVMS_LINE_MAX + 512];
    if (n > SERVER_LINES_MAX)
        n = SERVER_LINES_MAX;
    for (int k = 0; k < n; k++) {
        cmd_server_line(cmd, rows, r->text, k, buf, sizeof buf);
        json_array_append_new(resp, json_string(buf + 1));      /* without the leading 'c' */
    }
    json_t *o;
    if (n) {
        o = json_pack("{s:i,s:i,s:o,s:s}", "command", cmd, "result", 0, "response", resp, "text", "");
        api_json(a, 200, "Ok", o, truncated ? "X-OVMS-Truncated: 1\r\n" : NULL);
    } else {
        snprintf(buf, sizeof buf, "%d,1,%s", cmd, cmd_server_none(cmd));
        json_array_append_new(resp, json_string(buf));
        o = json_pack("{s:i,s:i,s:o,s:s}", "command", cmd, "result", 1, "response", resp, "text",
                      cmd_server_none(cmd));
        api_json(a, 409, "Conflict", o, NULL);
    }
    api_done(a);
}

static void server_answered(api_req_t *a, const char *payload, const char *vehicle)
{
    ovms_command_t cmd = { 0 };
    ovms_command_parse(ovms_str_c(payload), &cmd);
    sreq_t *r = sreq_new(a->c->w, NULL, NULL, server_rows);
    if (!r) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        api_done(a);
        return;
    }
    r->arg = (int64_t)(intptr_t)a;
    snprintf(r->text + 64, sizeof r->text - 64, "%d", cmd.cmd);   /* r->text[0..64): C32's type */
    if (cmd_server_prep(&r->req, vehicle, &cmd, r->text, 64) < 0) {
        sreq_free(r);
        bad(a, "command");
        return;
    }
    ovms_store_req_ordered(&r->req);
    sreq_submit(r);
}

void api_command(api_req_t *a, const char *name)
{
    server_t *srv = a->c->w->srv;
    const command_route_t *cr = command_of(a, name);
    char id[33];
    ovms_vehicle_t rec;
    ovms_owner_t owner;
    if (!cr) {
        api_text(a, 404, "Unrecongised API call", "Unrecognised API call\n");
        api_done(a);
        return;
    }
    if (ovms_vehicleid_normalize(ovms_str_c(a->args[0]), id, sizeof id) < 0 ||
        ovms_store_vehicle_get(srv->store, id, &rec) < 0 ||
        ovms_store_owner_get(srv->store, a->who.owner, &owner) < 0 || rec.owner != owner.id) {
        api_text(a, 403, "Forbidden", "Forbidden\n");
        api_done(a);
        return;
    }
    if (!http_permits(a->who.permit, "command") && !http_permits(a->who.permit, "admin")) {
        api_text(a, 403, "Forbidden", "Insufficient rights\n");
        api_done(a);
        return;
    }
    http_cmd_t *h = calloc(1, sizeof *h);
    if (!h) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        api_done(a);
        return;
    }
    if (build_line(a, cr, h->line, sizeof h->line) < 0) {
        free(h);
        return;                                      /* answered 400 */
    }
    if (strlen(h->line) - 1 > PAYLOAD_MAX) {
        free(h);
        bad(a, "value");
        return;
    }
    h->cmd = atoi(h->line + 1);
    if (h->cmd >= 30 && h->cmd <= 32) {
        server_answered(a, h->line + 1, rec.id);    /* the server's own (PROTOCOL §6.4) */
        free(h);
        return;
    }
    h->call.mail.type = MAIL_CALL;
    h->call.run = call_run;
    h->origin = a->c->w;
    h->a = a;
    snprintf(h->id, sizeof h->id, "%s", rec.id);
    h->identity = ovms_store_vehicle_identity(&rec);
    link_init(&h->wlink);
    worker_t *home = worker_home(srv, h->id);
    http_conn_prefer(a->c, home);
    if (home == a->c->w)
        at_home(home, h);
    else if (worker_post(home, &h->call.mail) < 0) {
        free(h);
        api_text(a, 503, "Service Unavailable", "Server shutting down\n");
        api_done(a);
    }
}
