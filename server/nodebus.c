/*
 * nodebus.c -- the vehicle hub across nodes, over the Redis bus
 * (replication/bus.c): a car on one node and its apps on others see each
 * other as on one server. Without [redis] configured nothing here runs.
 *
 * Each worker has a bus for the vehicles homed on it, and watches a
 * vehicle's channel while the vehicle has a local car or client. Messages
 * on a channel (type, then the sending node):
 *   M  a car message as relayed to clients (the car's node sends it; the
 *      others relay it to their clients, followed by T0, and f after F)
 *   X  anything else the car's node relays to every client as is: P
 *      alerts, ET, replies nobody asked for
 *   S  a node's state for the vehicle: "<apps>,<car 0/1>", sent when it
 *      changes, every 10 s while it is not "0,0", and in answer to Q; also
 *      kept in the hash <prefix>{V}:nodes with the time, which a node that
 *      starts watching reads once (its first client's burst waits for it)
 *   Q  "tell me your state": sent when a node's subscription to the
 *      channel is confirmed (it starts watching, or Redis came back)
 *   N  the car's node's answer to Q besides S and L: a snapshot of the car's
 *      stored messages (what a login there would replay) and its paranoid
 *      token. A node that starts watching while the car is elsewhere holds
 *      its first clients' bursts until it has it (at most SNAPSHOT_WAIT_S),
 *      so that an app replays the same messages on any node; after Redis
 *      was away, what changed meanwhile goes to the clients already there
 *   L  "<when>": a car logged in there at that time (unix ms): a local car
 *      connection for the vehicle that is older goes (one car per vehicle
 *      in the cluster); said again after Redis was away
 *   C  "<connection id>|<command>": a command from a client there, for the
 *      car's node, which queues it in the car's requester FIFO like its own
 *   R  "<node>|<connection id>|<reply>": the car's reply for that client;
 *      the requester's node answers c<cmd>,1,... itself when the car went
 *      away or nothing came within --command-timeout, so no command is
 *      silently lost (a reply later than that is dropped: the requester
 *      has had its answer)
 *   W  "what is your own seq now?": a client here asked for history (C31,
 *      C32) while the car is on another node; the car's node answers
 *   w  "<seq>": its own committed counter. The asker's node answers the
 *      client once its store holds that node's records up to there (at
 *      most READ_WAIT_MS later), so a record the car was just told is
 *      stored is in the answer on every node
 * From the S messages each node knows the other nodes' app counts and
 * where the car is; an entry not refreshed for 30 s is forgotten, so a node
 * that died leaves its cars "connected" for at most that long. Z to the car
 * counts the apps of every node; Z to apps says whether the car is
 * connected anywhere. Snapshots (N) and waiting history reads (W/w) are
 * in nodebus_catchup.c.
 * Threading: the vehicle's home worker.
 */
#include "server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_REFRESH_S 10
#define STATE_EXPIRE_S 30
#define SNAPSHOT_WAIT_S 2
/* ---- what the other nodes have ----------------------------------------------------------------- */

static remote_node_t *remote_of(vehicle_t *v, const char *node, int create)
{
    for (int i = 0; i < v->nremote; i++)
        if (!strcmp(v->remote[i].node, node))
            return &v->remote[i];
    if (!create || v->nremote == 255)
        return NULL;
    remote_node_t *grown = realloc(v->remote, (size_t)(v->nremote + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    v->remote = grown;
    remote_node_t *r = &v->remote[v->nremote++];
    memset(r, 0, sizeof *r);
    snprintf(r->node, sizeof r->node, "%s", node);
    return r;
}

int hub_apps_total(const vehicle_t *v)
{
    int n = v->napps;
    for (int i = 0; i < v->nremote; i++)
        n += v->remote[i].napps;
    return n;
}

int hub_car_anywhere(const vehicle_t *v)
{
    if (v->car)
        return 1;
    for (int i = 0; i < v->nremote; i++)
        if (v->remote[i].car)
            return 1;
    return 0;
}

/* Forwarded commands still waiting: each requester hears why, once. */
static void fail_commands(vehicle_t *v, const char *why, int expired_only)
{
    uint32_t now = worker_now(v->w);
    for (int i = 0; i < v->nrcmds; i++) {
        remote_cmd_t *rc = &v->rcmds[i];
        if (expired_only && (now < rc->deadline || rc->http))
            continue;                /* (an HTTP command's own deadline answers it) */
        if (rc->http) {
            http_cmd_t *h = rc->http;
            v->rcmds[i--] = v->rcmds[--v->nrcmds];
            metric_inc(&v->w->m.commands[METRIC_CMD_NOT_CONNECTED]);
            http_cmd_car_gone(h);
            continue;
        }
        conn_t *c = worker_find_conn(v->w, rc->conn_id);
        if (c && c->state == CS_ACTIVE && c->vehicle == v && rc->cmd >= 0)
            conn_sendf(c, "c%d,1,%s", rc->cmd, why);   /* (a paranoid command's number is unknown) */
        metric_inc(&v->w->m.commands[expired_only ? METRIC_CMD_TIMEOUT : METRIC_CMD_NOT_CONNECTED]);
        v->rcmds[i--] = v->rcmds[--v->nrcmds];
    }
}

/* After the totals may have changed: tell the car and the apps here. */
static void tell_locals(vehicle_t *v, int apps_before, int car_before)
{
    int apps = hub_apps_total(v), car = hub_car_anywhere(v);
    if (v->car && !v->car_z_due && apps != apps_before)
        conn_sendf(v->car, "Z%d", apps);    /* (a first Z still due says the total itself) */
    if (car != car_before)
        hub_to_clients(v, car ? "Z1" : "Z0", 2);
    if (!car && car_before)
        fail_commands(v, "vehicle not connected", 0);
}

/* ---- sending ------------------------------------------------------------------------------------- */

void nodebus_publish(vehicle_t *v, char type, const char *payload, size_t len)
{
    ovms_bus_t *bus = v->w->bus;
    if (bus && v->watched)
        ovms_bus_publish(bus, v->id, type, payload, len);
}

/* The car's first Z, once the others' states are known (it counts their
 * apps) and Redis holds ours (an app that logs in on another node after
 * the car heard its Z then finds the car there: that node reads the hash
 * before the app's Z). Without Redis it waits for neither. */
static void car_first_z(vehicle_t *v)
{
    if (v->bus_pending == BUS_STATES || !v->state_stored)
        return;
    if (v->car_z_due && v->car)
        conn_sendf(v->car, "Z%d", hub_apps_total(v));
    v->car_z_due = 0;
}

/* Our state is in Redis, or cannot be (it went away): the car waits no longer. */
static void state_now_stored(vehicle_t *v)
{
    v->state_stored = 1;
    car_first_z(v);
}

static void mark_missed(vehicle_t *v)
{
    v->bus_missed = 1;
    state_now_stored(v);
}

static void state_stored(void *ctx, const char *vehicle, int ok)
{
    vehicle_t *v = hub_find(ctx, vehicle);
    (void)ok;
    if (v && v->watched)
        state_now_stored(v);
}

/* Our state: published for the watchers now, and kept in the state hash
 * (with the time) for nodes that start watching later. */
static void publish_state(vehicle_t *v)
{
    char s[32], kept[48];
    int n = snprintf(s, sizeof s, "%d,%d", v->napps, v->car ? 1 : 0);
    if (!v->w->bus)
        return;
    ovms_bus_publish(v->w->bus, v->id, 'S', s, (size_t)n);
    if (v->napps || v->car)
        snprintf(kept, sizeof kept, "%s,%lld", s, (long long)wall_now());
    else
        kept[0] = '\0';
    /* (only the first since we watch is waited for: no callback for the refreshes) */
    if (ovms_bus_state_put(v->w->bus, v->id, kept, v->state_stored ? NULL : state_stored, v->w) < 0)
        state_stored(v->w, v->id, 0);
    v->state_sent = worker_now(v->w);
}

static void remote_state_set(vehicle_t *v, const char *from, const char *payload);

/* The others' states are known: a car logged in here meanwhile hears its
 * Z; the waiting clients' bursts go out, unless the car is on another node
 * and its snapshot has not come yet. */
struct states_wait {
    struct states_wait *next;
    void (*fn)(vehicle_t *v, void *arg);
    void *arg;
};

void nodebus_when_states_known(vehicle_t *v, void (*fn)(vehicle_t *v, void *arg), void *arg)
{
    struct states_wait *sw = v->bus_pending == BUS_STATES ? calloc(1, sizeof *sw) : NULL;
    if (!sw) {
        fn(v, arg);
        return;
    }
    sw->fn = fn;
    sw->arg = arg;
    sw->next = v->states_waits;
    v->states_waits = sw;
}

static void run_states_waits(vehicle_t *v)
{
    while (v->states_waits) {
        struct states_wait *sw = v->states_waits;
        v->states_waits = sw->next;
        sw->fn(v, sw->arg);
        free(sw);
    }
}

static void states_settled(vehicle_t *v)
{
    car_first_z(v);
    http_cmd_states_known(v);        /* a command needs to know where the car is, no more */
    run_states_waits(v);
    if (!v->car && hub_car_anywhere(v) && !v->snapshot_seen) {
        v->bus_pending = BUS_SNAPSHOT;
        v->snapshot_deadline = worker_now(v->w) + SNAPSHOT_WAIT_S;
        return;
    }
    v->bus_pending = BUS_READY;
    hub_release_waiting(v);
}

/* One field of a vehicle's state hash: 1 and another node's counts when
 * it is that node's and fresh ("apps,car,when"). */
static int other_state(worker_t *w, const char *node, const char *value, int64_t now, int *apps, int *car)
{
    long long when;
    return strcmp(node, ovms_store_node_id(w->srv->store)) != 0 &&
           sscanf(value, "%d,%d,%lld", apps, car, &when) == 3 && now - when <= STATE_EXPIRE_S;
}

/* What the state hash says, when we start watching: until it is known the
 * clients logging in wait (their Z must say whether the car is anywhere). */
static void states_known(void *ctx, const char *vehicle, int ok, int n, const char *const *nodes,
                         const char *const *values)
{
    worker_t *w = ctx;
    vehicle_t *v = hub_find(w, vehicle);
    int64_t now = wall_now();
    if (!v)
        return;
    if (!ok)
        v->state_stored = 1;        /* Redis cannot answer: the car's Z waits for nothing */
    for (int i = 0; ok && i < n; i++) {
        int apps, car;
        if (!other_state(w, nodes[i], values[i], now, &apps, &car))
            continue;
        char state[32];
        snprintf(state, sizeof state, "%d,%d", apps, car);
        remote_state_set(v, nodes[i], state);
    }
    if (v->bus_pending == BUS_STATES)
        states_settled(v);
}

void nodebus_sync(vehicle_t *v)
{
    ovms_bus_t *bus = v->w->bus;
    if (!bus)
        return;
    int want = v->car || !link_empty(&v->clients) || !link_empty(&v->waiting) || v->http_apps ||
               v->http_cmds;
    if (want && !v->watched) {
        if (ovms_bus_watch(bus, v->id) == 0) {
            v->watched = 1;         /* Q goes once the subscription is confirmed */
            v->state_stored = 0;
            if (ovms_bus_state_get(bus, v->id, states_known, v->w) == 0)
                v->bus_pending = BUS_STATES;
        }
    }
    /* Our state only once we listen: a node told "the car is here" may
     * send a command at once, and it must find our subscription in place
     * (on_watching says it then). Also the "0,0" of a vehicle we stop watching. */
    if (!want || ovms_bus_watching(bus, OVMS_BUS_VEHICLE, v->id))
        publish_state(v);
    if (!want && v->watched) {
        ovms_bus_unwatch(bus, v->id);
        v->watched = 0;
        free(v->remote);
        v->remote = NULL;
        v->nremote = 0;
        v->bus_pending = BUS_READY;
        v->snapshot_seen = 0;
        v->car_z_due = 0;
        v->nrcmds = 0;              /* (their requesters left with the last client) */
    }
}

void nodebus_car_message(vehicle_t *v, const char *raw, size_t len)
{
    nodebus_publish(v, 'M', raw, len);
}

void nodebus_relay(vehicle_t *v, const char *raw, size_t len)
{
    nodebus_publish(v, 'X', raw, len);
}

/* L carries when the car logged in here (unix ms): of two connections
 * the older goes, also when both nodes say so again after Redis was away. */
static void publish_car_login(vehicle_t *v)
{
    char since[32];
    int n = snprintf(since, sizeof since, "%lld", (long long)v->car_since);
    nodebus_publish(v, 'L', since, (size_t)n);
}

void nodebus_car_login(vehicle_t *v)
{
    v->car_since = wall_now_ms();
    publish_car_login(v);
    if (v->bus_pending == BUS_SNAPSHOT) {   /* the car is here now: no snapshot to wait for */
        v->bus_pending = BUS_READY;
        hub_release_waiting(v);
    }
}

/* To the car's node: 1 sent, 0 not (no bus, car nowhere, Redis away), -1 too many waiting. */
static int forward(vehicle_t *v, uint64_t id, http_cmd_t *http, int cmd, const char *raw, size_t len)
{
    char msg[OVMS_LINE_MAX + 32];
    if (!v->w->bus || !v->watched || !hub_car_anywhere(v) || len > OVMS_LINE_MAX)
        return 0;
    if (v->nrcmds >= v->w->cfg->max_pending_commands)
        return -1;
    int n = snprintf(msg, sizeof msg, "%llu|%.*s", (unsigned long long)id, (int)len, raw);
    if (ovms_bus_publish(v->w->bus, v->id, 'C', msg, (size_t)n) < 0)
        return 0;                   /* Redis is away: as if the car were nowhere */
    remote_cmd_t *grown = realloc(v->rcmds, (size_t)(v->nrcmds + 1) * sizeof *grown);
    if (grown) {
        v->rcmds = grown;
        v->rcmds[v->nrcmds++] = (remote_cmd_t){ id, http, cmd,
                                                worker_now(v->w) + (uint32_t)v->w->cfg->command_timeout };
    }
    return 1;
}

int nodebus_command(vehicle_t *v, conn_t *c, int cmd, const char *raw, size_t len)
{
    int rc = forward(v, c->id, NULL, cmd, raw, len);
    if (rc < 0 && cmd >= 0)
        conn_sendf(c, "c%d,1,too many commands waiting for the vehicle", cmd);
    return rc != 0;
}

int nodebus_command_http(vehicle_t *v, http_cmd_t *h, uint64_t id, int cmd, const char *raw, size_t len)
{
    return forward(v, id, h, cmd, raw, len);
}

void nodebus_forget_http(vehicle_t *v, http_cmd_t *h)
{
    for (int i = 0; i < v->nrcmds; i++)
        if (v->rcmds[i].http == h) {
            memmove(&v->rcmds[i], &v->rcmds[i + 1], (size_t)(v->nrcmds - i - 1) * sizeof *v->rcmds);
            v->nrcmds--;
            i--;
        }
}

int nodebus_states_pending(const vehicle_t *v)
{
    return v->bus_pending == BUS_STATES;
}

void nodebus_reply(vehicle_t *v, const requester_t *to, const char *raw, size_t len)
{
    char msg[OVMS_LINE_MAX + 80];
    if (len > OVMS_LINE_MAX)
        return;
    int n = snprintf(msg, sizeof msg, "%s|%llu|%.*s", to->node, (unsigned long long)to->remote_id,
                     (int)len, raw);
    nodebus_publish(v, 'R', msg, (size_t)n);
}

/* ---- receiving ----------------------------------------------------------------------------------- */

static void relay_remote(vehicle_t *v, const char *payload, size_t len)
{
    if (len >= 2 && payload[0] != 'E')
        hub_cache_put(v, payload[0], payload + 1, len - 1, 0, wall_now());
    else if (len >= 3 && payload[1] == 'M')         /* EM<code><data>: kept as the car's node does */
        hub_cache_put(v, payload[2], payload + 3, len - 3, 1, wall_now());
    hub_to_clients(v, payload, len);
    if (len && payload[0] == 'F') {
        char f[64];
        int n = snprintf(f, sizeof f, "f%s", ovms_server_version);
        hub_to_clients(v, f, (size_t)n);
    }
    hub_to_clients(v, "T0", 2);
}

/* Records a node's "<apps>,<car>"; the caller tells the locals. */
static void remote_state_set(vehicle_t *v, const char *from, const char *payload)
{
    int apps = 0, car = 0;
    if (sscanf(payload, "%d,%d", &apps, &car) != 2 || apps < 0)
        return;
    remote_node_t *r = remote_of(v, from, apps || car);
    if (!r)
        return;
    r->napps = apps;
    r->car = car != 0;
    r->seen = worker_now(v->w);
}

static void remote_state(vehicle_t *v, const char *from, const char *payload)
{
    int apps_before = hub_apps_total(v), car_before = hub_car_anywhere(v);
    remote_state_set(v, from, payload);
    tell_locals(v, apps_before, car_before);
}

/* "<connection id>|<command>" from the requester's node. */
static void remote_command(vehicle_t *v, const char *from, const char *payload, size_t len)
{
    const char *bar = memchr(payload, '|', len);
    if (!bar || bar + 1 >= payload + len)
        return;
    uint64_t id = strtoull(payload, NULL, 10);
    cmd_from_remote(v, from, id, bar + 1, (size_t)(payload + len - bar - 1));
}

/* "<node>|<connection id>|<reply>": ours when the node is this one. */
static void remote_reply(vehicle_t *v, const char *payload, size_t len)
{
    const char *me = ovms_store_node_id(v->w->srv->store);
    size_t mlen = strlen(me);
    if (len <= mlen + 1 || memcmp(payload, me, mlen) != 0 || payload[mlen] != '|')
        return;
    const char *idp = payload + mlen + 1, *bar = memchr(idp, '|', (size_t)(payload + len - idp));
    if (!bar)
        return;
    uint64_t id = strtoull(idp, NULL, 10);
    const char *raw = bar + 1;
    size_t rlen = (size_t)(payload + len - raw);
    ovms_cmdreply_t r;
    int last = 1, i;
    if (rlen > 1 && raw[0] == 'c' && ovms_cmdreply_parse((ovms_str_t){ raw + 1, rlen - 1 }, &r) == 0)
        last = !ovms_cmdreply_continues(&r);
    for (i = 0; i < v->nrcmds && v->rcmds[i].conn_id != id; i++)
        ;                           /* the oldest of this requester's */
    if (i == v->nrcmds) {
        LOG_DEBUG(NULL, "%s: a reply after the command timeout dropped", v->id);
        return;                     /* it was told "no reply from the vehicle" already */
    }
    http_cmd_t *http = v->rcmds[i].http;
    if (last) {
        memmove(&v->rcmds[i], &v->rcmds[i + 1], (size_t)(v->nrcmds - i - 1) * sizeof *v->rcmds);
        v->nrcmds--;
    }
    if (http) {
        int paranoid = rlen >= 2 && raw[0] == 'E' && raw[1] == 'M';
        ovms_str_t body = { raw + (rlen ? 1 : 0), rlen ? rlen - 1 : 0 };
        http_cmd_reply(http, body, paranoid, last || paranoid);
        return;
    }
    conn_t *c = worker_find_conn(v->w, id);
    if (c && c->state == CS_ACTIVE && c->vehicle == v)
        conn_send(c, raw, rlen);
}

static void bus_message(void *ctx, int kind, const char *vehicle, char type, const char *from,
                       const char *payload, size_t len)
{
    worker_t *w = ctx;
    if (kind == OVMS_BUS_GROUP) {
        groups_bus_message(w, vehicle, type, from, payload, len);
        return;
    }
    vehicle_t *v = hub_find(w, vehicle);
    char text[64];
    LOG_DEBUG(NULL, "bus: %s from %s: %c%.*s%s", vehicle, from, type, (int)(len > 60 ? 60 : len),
              payload, v && v->watched ? "" : " (not watched here)");
    if (!v || !v->watched)
        return;
    switch (type) {
    case 'M':
        relay_remote(v, payload, len);
        break;
    case 'S':
        snprintf(text, sizeof text, "%.*s", (int)(len < 60 ? len : 60), payload);
        remote_state(v, from, text);
        break;
    case 'Q':
        /* the car's node asking again: its link was down, and what it could
         * not publish meanwhile comes in its snapshot, which is replayed */
        for (int i = 0; i < v->nremote; i++)
            if (v->remote[i].car && !strcmp(v->remote[i].node, from))
                v->bus_missed = 1;
        publish_state(v);
        if (v->car) {
            publish_car_login(v);   /* (the asker may hold an older connection of the car) */
            hub_want_snapshot(v);
        }
        break;
    case 'N':
        nodebus_take_snapshot(v, payload, len);
        break;
    case 'W':
        if (v->car) {
            int n = snprintf(text, sizeof text, "%lld", (long long)ovms_store_own_seq(w->srv->store));
            nodebus_publish(v, 'w', text, (size_t)n);
        }
        break;
    case 'w':
        nodebus_reads_target(v, from, payload, len);
        break;
    case 'X':
        if (len > 2 && len <= 66 && payload[0] == 'E' && payload[1] == 'T')
            hub_set_ptoken(v, (ovms_str_t){ payload + 2, len - 2 });   /* replays use it */
        hub_to_clients(v, payload, len);
        break;
    case 'C':
        remote_command(v, from, payload, len);
        break;
    case 'R':
        remote_reply(v, payload, len);
        break;
    case 'L':
        if (v->car && atoll(payload) >= v->car_since) {
            snprintf(text, sizeof text, "replaced by a login of the same car on %s", from);
            conn_close(v->car, text);
        }
        break;
    default:
        break;
    }
}

/* What arrives over the bus counts as read now, for the relay latency. */
static void on_message(void *ctx, int kind, const char *vehicle, char type, const char *from,
                       const char *payload, size_t len)
{
    worker_t *w = ctx;
    w->rx_at = metric_mono();
    bus_message(ctx, kind, vehicle, type, from, payload, len);
    w->rx_at = 0;
}

/* ---- the worker's bus ------------------------------------------------------------------------------ */

static void each_watched(worker_t *w, void (*fn)(vehicle_t *v))
{
    link_each(pos, &w->conns) {
        conn_t *c = container_of(pos, conn_t, wlink);
        vehicle_t *v = c->vehicle;
        /* once per vehicle: through its car, its first client, or its first
         * client waiting for its burst */
        if (!v || !v->watched)
            continue;
        if (v->car ? v->car == c
                   : c->vlink.prev == (link_empty(&v->clients) ? &v->waiting : &v->clients))
            fn(v);
    }
}

/* Said whenever we can listen or publish again after Redis was away (the
 * subscription confirmed, or both connections up): whichever of two nodes
 * comes back second is heard by the first. The car's node sends its
 * snapshot unasked, as a Q may have come while it could not answer. */
static void speak_again(vehicle_t *v)
{
    LOG_DEBUG(NULL, "bus: %s: telling the others again%s", v->id, v->car ? " (the car is here)" : "");
    nodebus_publish(v, 'Q', "", 0);
    publish_state(v);
    if (v->car) {
        publish_car_login(v);       /* a car that moved meanwhile: the older connection goes */
        hub_want_snapshot(v);
    }
}

static void on_state(void *ctx, int up, const char *why)
{
    worker_t *w = ctx;
    __atomic_store_n(&w->m.bus_up, up, __ATOMIC_RELAXED);
    if (w->index == 0) {            /* the node says it once, not once per worker */
        if (up)
            LOG_INFO(NULL, "Redis bus: connected to %s", w->cfg->redis);
        else
            LOG_WARN(NULL, "Redis bus: %s unreachable (%s): serving local clients only",
                     w->cfg->redis, why ? why : "down");
    }
    if (!up)
        each_watched(w, mark_missed);    /* (and the car's first Z does not wait for Redis) */
    if (up) {
        each_watched(w, speak_again);       /* what we and the others missed meanwhile */
        groups_bus_up(w);
    }
}

/* Our subscription to the channel is in place: ask the others now, so that
 * their answers cannot pass it (and after Redis was away, say what we
 * have: see speak_again). */
static void on_watching(void *ctx, int kind, const char *vehicle, int again)
{
    if (kind == OVMS_BUS_GROUP) {
        groups_bus_watching(ctx, vehicle, again);
        return;
    }
    vehicle_t *v = hub_find(ctx, vehicle);
    if (!v || !v->watched)
        return;
    if (again) {
        speak_again(v);
    } else {
        nodebus_publish(v, 'Q', "", 0);
        publish_state(v);           /* (held back by nodebus_sync until now) */
    }
}

int nodebus_open(worker_t *w)
{
    const ovms_config_t *cfg = w->cfg;
    ovms_bus_config_t bc = { .on_message = on_message, .on_state = on_state,
                             .on_watching = on_watching, .ctx = w };
    if (!cfg->redis[0])
        return 0;
    snprintf(bc.redis, sizeof bc.redis, "%s", cfg->redis);
    snprintf(bc.password, sizeof bc.password, "%s", cfg->redis_password);
    snprintf(bc.prefix, sizeof bc.prefix, "%s", cfg->redis_prefix);
    snprintf(bc.node_id, sizeof bc.node_id, "%s", ovms_store_node_id(w->srv->store));
    int rc = ovms_bus_open(&w->bus, &w->loop, &bc);
    if (rc == 0) {
        uv_timer_init(&w->loop, &w->reads_timer);
        w->reads_timer.data = w;
    }
    return rc;
}

void nodebus_close(worker_t *w)
{
    if (!w->bus)
        return;
    ovms_bus_close(w->bus);
    w->bus = NULL;
    nodebus_reads_free(w);
    uv_close((uv_handle_t *)&w->reads_timer, NULL);
}

/* Once a second: refresh our state where it is not "0,0", forget nodes
 * that stopped refreshing theirs. */
static void refresh(vehicle_t *v)
{
    uint32_t now = worker_now(v->w);
    int apps_before = hub_apps_total(v), car_before = hub_car_anywhere(v);
    for (int i = 0; i < v->nremote; i++)
        if (now - v->remote[i].seen > STATE_EXPIRE_S) {
            v->remote[i] = v->remote[--v->nremote];
            i--;
        }
    tell_locals(v, apps_before, car_before);
    fail_commands(v, "no reply from the vehicle", 1);
    if (v->bus_pending == BUS_SNAPSHOT && now >= v->snapshot_deadline) {
        v->bus_pending = BUS_READY;         /* the car's node is silent: replay what we have */
        hub_release_waiting(v);
    }
    if (now - v->state_sent >= STATE_REFRESH_S && (v->napps || v->car))
        publish_state(v);
}

void nodebus_tick(worker_t *w)
{
    if (w->bus)
        each_watched(w, refresh);
}

/* ---- counts of a vehicle this node does not watch (the HTTP API) --------------------------------- */

typedef struct counts_ask {
    nodebus_counts_cb cb;
    void *ctx;
    worker_t *w;
} counts_ask_t;

static void counts_known(void *ctx, const char *vehicle, int ok, int n, const char *const *nodes,
                         const char *const *values)
{
    counts_ask_t *q = ctx;
    int apps_sum = 0, car_any = 0;
    int64_t now = wall_now();
    (void)vehicle;
    for (int i = 0; ok && i < n; i++) {
        int apps, car;
        if (!other_state(q->w, nodes[i], values[i], now, &apps, &car))
            continue;
        apps_sum += apps;
        car_any |= car != 0;
    }
    q->cb(q->ctx, apps_sum, car_any);
    free(q);
}

int nodebus_remote_counts(worker_t *w, const char *vehicle, nodebus_counts_cb cb, void *ctx)
{
    counts_ask_t *q = w->bus ? calloc(1, sizeof *q) : NULL;
    if (!q)
        return -1;
    q->cb = cb;
    q->ctx = ctx;
    q->w = w;
    if (ovms_bus_state_get(w->bus, vehicle, counts_known, q) < 0) {
        free(q);
        return -1;
    }
    return 0;
}
