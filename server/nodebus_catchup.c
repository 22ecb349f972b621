/*
 * nodebus_catchup.c -- bringing a node's clients up to date with the car's
 * node across the bus (nodebus.c has the channel and its messages):
 *   - the snapshot (N) of the car's stored messages and paranoid token that
 *     the car's node sends a node that starts watching, or after Redis was
 *     away, and what the receiving node does with it (caches what differs
 *     and passes it to the clients already there);
 *   - history reads (C31, C32) asked on another node than the car's, which
 *     wait (W/w) until replication has brought the car node's records up to
 *     its counter at the time of asking.
 * Threading: the vehicle's home worker.
 */
#include "server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_WAIT_MS 2000
#define READ_POLL_MS 5

/* A client's C31/C32 waiting for replication (one per client at most: its
 * input is held meanwhile). */
typedef struct read_wait {
    uint64_t conn;
    char vehicle[33];
    char origin[33];         /* the car's node */
    int64_t seq;             /* its own seq when asked; -1 until it says */
    uint64_t deadline;       /* loop ms */
    char *payload;
    size_t len;
} read_wait_t;

/* ---- the snapshot ---------------------------------------------------------------------------------- */

/* N: "<last update>,<paranoid token>", then per stored message
 * "\n<received>,<0|1 paranoid>,<code><payload>" (payloads are lines: no
 * LF in them). Paranoid messages made under an older token are left out:
 * nobody could read them. */
void nodebus_snapshot(vehicle_t *v)
{
    size_t cap = 128, len = 0;
    for (int i = 0; i < v->ncache; i++)
        cap += v->cache[i].len + 40;
    char *buf = malloc(cap);
    if (!buf)
        return;
    len += (size_t)snprintf(buf, cap, "%lld,%s", (long long)v->last_update, hub_ptoken(v));
    for (int i = 0; i < v->ncache; i++) {
        const cached_msg_t *e = &v->cache[i];
        if (e->paranoid && strcmp(e->ptoken, hub_ptoken(v)) != 0)
            continue;
        len += (size_t)snprintf(buf + len, cap - len, "\n%lld,%d,%c", (long long)e->received,
                                e->paranoid ? 1 : 0, e->code);
        memcpy(buf + len, e->payload, e->len);
        len += e->len;
    }
    nodebus_publish(v, 'N', buf, len);
    free(buf);
}

/* One stored message of a snapshot: cached when it differs from ours, and
 * sent to the clients already here (they missed it). Returns 1 if sent. */
static int snapshot_entry(vehicle_t *v, const char *line, size_t len, int replay, int *et_sent)
{
    char buf[OVMS_LINE_MAX + 8];
    long long when;
    int paranoid, at = 0;
    if (sscanf(line, "%lld,%d,%n", &when, &paranoid, &at) != 2 || at <= 0 || (size_t)at >= len)
        return 0;
    char code = line[at];
    const char *payload = line + at + 1;
    size_t plen = len - (size_t)at - 1;
    const cached_msg_t *e = hub_cache_find(v, code);
    if (e && e->len == plen && !memcmp(e->payload, payload, plen) && e->paranoid == (paranoid != 0))
        return 0;
    /* Ours is newer: kept. (The car's node may have read its copy from a
     * store that lags the live relay, when the car just logged in there.) */
    if (e && e->received > when)
        return 0;
    hub_cache_put(v, code, payload, plen, paranoid != 0, when);
    /* The clients already here only missed something if our bus link was
     * down meanwhile; else they had every message live, and a snapshot
     * asked by another node that starts watching would give them an older
     * one again. */
    if (!replay || link_empty(&v->clients) || plen + 3 > sizeof buf)
        return 0;
    if (paranoid && !*et_sent) {
        int n = snprintf(buf, sizeof buf, "ET%s", hub_ptoken(v));
        hub_to_clients(v, buf, (size_t)n);
        *et_sent = 1;
    }
    size_t n = 0;
    if (paranoid) {
        buf[n++] = 'E';
        buf[n++] = 'M';
    }
    buf[n++] = code;
    memcpy(buf + n, payload, plen);
    hub_to_clients(v, buf, n + plen);
    return 1;
}

void nodebus_take_snapshot(vehicle_t *v, const char *payload, size_t len)
{
    const char *end = payload + len, *nl = memchr(payload, '\n', len);
    const char *head_end = nl ? nl : end;
    const char *comma = memchr(payload, ',', (size_t)(head_end - payload));
    int et_sent = 0, sent = 0, replay = v->bus_missed;
    if (v->car || !comma)
        return;                     /* the car is here: we are the authority */
    v->bus_missed = 0;
    size_t tlen = (size_t)(head_end - comma - 1);
    if (tlen && tlen <= 64 && (strlen(hub_ptoken(v)) != tlen || memcmp(hub_ptoken(v), comma + 1, tlen)))
        hub_set_ptoken(v, (ovms_str_t){ comma + 1, tlen });
    int64_t last = atoll(payload);
    while (nl) {
        const char *line = nl + 1, *next = memchr(line, '\n', (size_t)(end - line));
        sent += snapshot_entry(v, line, (size_t)((next ? next : end) - line), replay, &et_sent);
        nl = next;
    }
    if (last > v->last_update)
        v->last_update = last;
    if (sent) {
        char t[32];
        int64_t age = wall_now() - v->last_update;
        int n = snprintf(t, sizeof t, "T%lld", (long long)(age > 0 ? age : 0));
        hub_to_clients(v, t, (size_t)n);
    }
    v->snapshot_seen = 1;
    if (v->bus_pending == BUS_SNAPSHOT) {
        v->bus_pending = BUS_READY;
        hub_release_waiting(v);
    }
}

/* ---- history reads that wait for replication ------------------------------------------------------------ */

static const char *car_node(const vehicle_t *v)
{
    for (int i = 0; i < v->nremote; i++)
        if (v->remote[i].car)
            return v->remote[i].node;
    return NULL;
}

static void read_run(worker_t *w, read_wait_t *r)
{
    conn_t *c = worker_find_conn(w, r->conn);
    if (!c || c->state != CS_ACTIVE || !c->vehicle || strcmp(c->vehicle->id, r->vehicle) != 0)
        return;
    c->flags &= (uint16_t)~CF_REPLYING;
    cmd_server_run(c, (ovms_str_t){ r->payload, r->len });
    if (!(c->flags & CF_REPLYING))
        conn_unpark(c);             /* answered at once: what it sent meanwhile goes on */
}

/* Answer every read whose records are here, or whose time is up. */
static void reads_check(worker_t *w)
{
    ovms_store_wm_t marks[64];
    int nmarks = ovms_store_watermarks(w->srv->store, marks, 64);
    uint64_t now = uv_now(&w->loop);
    for (int i = 0; i < w->nreads; i++) {
        read_wait_t *r = &w->reads[i];
        int here = r->seq >= 0 && ovms_store_wm_find(marks, nmarks, r->origin) >= r->seq;
        if (!here && now < r->deadline)
            continue;
        read_wait_t done = *r;
        w->reads[i--] = w->reads[--w->nreads];
        read_run(w, &done);
        free(done.payload);
    }
    if (!w->nreads)
        uv_timer_stop(&w->reads_timer);
}

static void on_reads_timer(uv_timer_t *t)
{
    reads_check(t->data);
}

int nodebus_defer_read(vehicle_t *v, conn_t *c, ovms_str_t payload)
{
    worker_t *w = v->w;
    const char *origin = car_node(v);
    if (!w->bus || !v->watched || v->car || !origin || !ovms_bus_up(w->bus))
        return 0;
    read_wait_t *grown = realloc(w->reads, (size_t)(w->nreads + 1) * sizeof *grown);
    char *copy = malloc(payload.len + 1);
    if (grown)
        w->reads = grown;
    if (!grown || !copy || ovms_bus_publish(w->bus, v->id, 'W', "", 0) < 0) {
        free(copy);
        return 0;
    }
    memcpy(copy, payload.ptr, payload.len);
    read_wait_t *r = &w->reads[w->nreads++];
    memset(r, 0, sizeof *r);
    r->conn = c->id;
    snprintf(r->vehicle, sizeof r->vehicle, "%s", v->id);
    snprintf(r->origin, sizeof r->origin, "%s", origin);
    r->seq = -1;
    r->deadline = uv_now(&w->loop) + READ_WAIT_MS;
    r->payload = copy;
    r->len = payload.len;
    c->flags |= CF_REPLYING;        /* input waits, as for any server command */
    if (!uv_is_active((uv_handle_t *)&w->reads_timer))
        uv_timer_start(&w->reads_timer, on_reads_timer, READ_POLL_MS, READ_POLL_MS);
    return 1;
}

/* w: the car's node's own seq, for the reads of this vehicle asked of it. */
void nodebus_reads_target(vehicle_t *v, const char *from, const char *payload, size_t len)
{
    char text[32];
    snprintf(text, sizeof text, "%.*s", (int)(len < 31 ? len : 31), payload);
    int64_t seq = atoll(text);
    for (int i = 0; i < v->w->nreads; i++) {
        read_wait_t *r = &v->w->reads[i];
        if (r->seq < 0 && !strcmp(r->vehicle, v->id) && !strcmp(r->origin, from))
            r->seq = seq;
    }
    reads_check(v->w);
}

void nodebus_reads_free(worker_t *w)
{
    for (int i = 0; i < w->nreads; i++)
        free(w->reads[i].payload);  /* (their clients are gone: the node stops) */
    free(w->reads);
    w->reads = NULL;
    w->nreads = 0;
}
