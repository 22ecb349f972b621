/*
 * hub.c -- the vehicle hub: for each vehicle homed on this worker, who is
 * connected (the car, its apps and batch clients), the Z counts, the
 * stored-message cache used for login replay, and utilisation counters.
 *
 * A vehicle entry exists while a connection or a pending store request
 * refers to it. Its stored messages are held in memory only while clients
 * are connected: the first client's login loads them with an *ordered* read
 * (it runs after every write already queued, so it sees the car's latest
 * message), and clients wait, parked, until it is in. Live messages that
 * arrive during the load override what the load brings. So an app's login
 * burst is always Z, then the latest state, then T, with nothing live in
 * between, and without a disk read per login once the cache is warm.
 * Threading: the home worker's thread only.
 */
#include "server_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the vehicle table ---------------------------------------------------------------- */

static uint64_t vehicle_hash(const void *item)
{
    return hash_str(((const vehicle_t *)item)->id);
}

static int vehicle_match(const void *item, const void *key)
{
    return strcmp(((const vehicle_t *)item)->id, key) == 0;
}

static int64_t today(void)
{
    int64_t now = wall_now();
    return now - now % 86400;
}

static void hub_retire(vehicle_t *v, const char *why);

vehicle_t *hub_get(worker_t *w, const char *id, uint64_t identity)
{
    vehicle_t *v = table_find(&w->vehicles, hash_str(id), vehicle_match, id);
    ovms_vehicle_t rec;

    if (ovms_store_vehicle_get(w->srv->store, id, &rec) < 0 || ovms_store_vehicle_identity(&rec) != identity)
        return NULL;
    if (v && v->identity != identity) {
        hub_retire(v, "vehicle removed or changed");   /* its notice is still on the way */
        v = NULL;
    }
    if (v)
        return v;
    if (!(v = pool_alloc(&w->vehicle_pool)))
        return NULL;
    snprintf(v->id, sizeof v->id, "%s", rec.id);
    v->spread = (uint32_t)hash_u64(hash_str(rec.id));   /* not the home worker's hash */
    v->w = w;
    v->identity = identity;
    v->incarnation = rec.created;
    link_init(&v->clients);
    link_init(&v->waiting);
    link_init(&v->dlink);
    if (rec.ptoken[0])
        v->ptoken = strdup(rec.ptoken);
    v->last_update = rec.created;
    v->owner = rec.owner;
    v->util_day = today();
    w->vehicles.hash_item = vehicle_hash;
    if (table_insert(&w->vehicles, v) < 0) {
        free(v->ptoken);
        pool_free(&w->vehicle_pool, v);
        return NULL;
    }
    return v;
}

static void free_msgs(cached_msg_t *m, int n)
{
    for (int i = 0; i < n; i++)
        free(m[i].payload);
    free(m);
}

static void drop_cache(vehicle_t *v)
{
    for (int i = 0; i < v->ncache; i++)
        free(v->cache[i].payload);
    free(v->cache);
    v->cache = NULL;
    v->ncache = v->cache_cap = 0;
    v->cache_state = CACHE_NONE;
    v->cache_gen++;
}

void hub_ref(vehicle_t *v)
{
    v->refs++;
}

static void submit_dirty(vehicle_t *v);

static int util_pending(const vehicle_t *v)
{
    return v->util[0] || v->util[1] || v->util[2] || v->util[3];
}

static void free_vehicle(vehicle_t *v)
{
    link_del(&v->dlink);
    free(v->remote);
    free(v->ptoken);
    drop_cache(v);
    free_msgs(v->dirty, v->ndirty);
    free(v->cmdq);
    free(v->rcmds);
    table_remove(&v->w->vehicles, v);
    pool_free(&v->w->vehicle_pool, v);
}

/* With no connection left the entry goes, unless it still holds
 * utilisation counts or held messages, or owes on a budget: then it stays
 * until the next periodic flush finds it settled, so a car that reconnects
 * often costs one write per period rather than one per visit, and cannot
 * refill its budgets by reconnecting. */
void hub_unref(vehicle_t *v)
{
    if (--v->refs > 0)
        return;
    drop_cache(v);
    if ((!util_pending(v) && !v->ndirty && quota_settled(v)) || v->w->stopping || v->retired) {
        hub_flush_util(v);
        if (v->ndirty && !v->msg_writes)
            submit_dirty(v);           /* keeps it referenced until written */
        if (v->refs == 0)
            free_vehicle(v);
    }
}

/* The vehicle is gone or is another one now: out of the table (a new login
 * makes a fresh entry), nothing of it written any more, every connection
 * closed. The entry itself goes with its last reference. */
static void hub_retire(vehicle_t *v, const char *why)
{
    hub_ref(v);
    table_remove(&v->w->vehicles, v);
    v->retired = 1;
    free_msgs(v->dirty, v->ndirty);
    v->dirty = NULL;
    v->ndirty = v->dirty_cap = 0;
    link_del(&v->dlink);
    memset(v->util, 0, sizeof v->util);
    LOG_INFO(NULL, "%s: %s: closing its connections", v->id, why);
    if (v->car)
        conn_close(v->car, why);
    while (!link_empty(&v->clients))
        conn_close(container_of(v->clients.next, conn_t, vlink), why);
    while (!link_empty(&v->waiting))
        conn_close(container_of(v->waiting.next, conn_t, vlink), why);
    hub_http_drop(v);
    if (v->cache_kept_until) {
        v->cache_kept_until = 0;
        hub_unref(v);
    }
    hub_unref(v);
}

vehicle_t *hub_find(worker_t *w, const char *id)
{
    vehicle_t *v = table_find(&w->vehicles, hash_str(id), vehicle_match, id);
    return v && !v->retired ? v : NULL;
}

void hub_vehicle_changed(worker_t *w, const char *id)
{
    vehicle_t *v = table_find(&w->vehicles, hash_str(id), vehicle_match, id);
    ovms_vehicle_t rec;
    if (!v)
        return;
    if (ovms_store_vehicle_get(w->srv->store, id, &rec) == 0 && ovms_store_vehicle_identity(&rec) == v->identity)
        return;                     /* changed and changed back, or already seen */
    hub_retire(v, "vehicle removed or changed");
}

const char *hub_ptoken(const vehicle_t *v)
{
    return v->ptoken ? v->ptoken : "";
}

int hub_set_ptoken(vehicle_t *v, ovms_str_t token)
{
    v->cache_gen++;                  /* which paranoid messages count may change */
    char *copy = strndup(token.ptr, token.len);
    if (!copy)
        return OVMS_ENOMEM;
    free(v->ptoken);
    v->ptoken = copy;
    return 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

void hub_to_clients(vehicle_t *v, const char *msg, size_t len)
{
    worker_t *w = v->w;
    if (w->rx_at && !w->relay_at && !link_empty(&v->clients))
        w->relay_at = w->rx_at;      /* written at this turn's flush: the relay latency */
    link_each(pos, &v->clients)
        conn_send(container_of(pos, conn_t, vlink), msg, len);
}

/* "<prefix><code><payload>" to one connection. */
static void send_coded(conn_t *c, const char *prefix, char code, const char *payload, size_t len)
{
    char buf[OVMS_LINE_MAX + 8];
    size_t p = strlen(prefix);
    if (p + 1 + len > sizeof buf)
        return;
    memcpy(buf, prefix, p);
    buf[p] = code;
    memcpy(buf + p + 1, payload, len);
    conn_send(c, buf, p + 1 + len);
}

/* ---- the stored-message cache --------------------------------------------------------------- */

/* Replay order (PROTOCOL 6.3): F, S, then ascending code byte. */
static int replay_key(char code)
{
    return code == 'F' ? 0 : code == 'S' ? 1 : 2 + (uint8_t)code;
}

static cached_msg_t *cache_slot(vehicle_t *v, char code)
{
    int i, key = replay_key(code);
    for (i = 0; i < v->ncache; i++) {
        if (v->cache[i].code == code)
            return &v->cache[i];
        if (replay_key(v->cache[i].code) > key)
            break;
    }
    if (v->ncache == v->cache_cap) {
        int cap = v->cache_cap ? v->cache_cap * 2 : 8;
        cached_msg_t *grown = realloc(v->cache, (size_t)cap * sizeof *grown);
        if (!grown)
            return NULL;
        v->cache = grown;
        v->cache_cap = cap;
    }
    memmove(&v->cache[i + 1], &v->cache[i], (size_t)(v->ncache - i) * sizeof *v->cache);
    v->ncache++;
    memset(&v->cache[i], 0, sizeof v->cache[i]);
    v->cache[i].code = code;
    return &v->cache[i];
}

static void cache_set(vehicle_t *v, char code, const char *payload, size_t len, int paranoid,
                      const char *ptoken, int64_t when, int live)
{
    cached_msg_t *e = cache_slot(v, code);
    char *copy = malloc(len + 1);
    if (!e || !copy) {
        free(copy);
        return;
    }
    memcpy(copy, payload, len);
    copy[len] = '\0';
    free(e->payload);
    e->payload = copy;
    e->len = len;
    e->paranoid = (uint8_t)paranoid;
    e->live = (uint8_t)live;
    snprintf(e->ptoken, sizeof e->ptoken, "%s", ptoken);
    e->received = when;
    v->cache_gen++;
}

void hub_cache_put(vehicle_t *v, char code, const char *payload, size_t len, int paranoid,
                   int64_t when)
{
    if (when > v->last_update)
        v->last_update = when;
    if (v->cache_state != CACHE_NONE)
        cache_set(v, code, payload, len, paranoid, paranoid ? hub_ptoken(v) : "", when,
                  v->cache_state == CACHE_LOADING);
}

const cached_msg_t *hub_cache_find(const vehicle_t *v, char code)
{
    for (int i = 0; v->cache_state != CACHE_NONE && i < v->ncache; i++)
        if (v->cache[i].code == code)
            return &v->cache[i];
    return NULL;
}

/* ---- writing stored messages -------------------------------------------------------------- */

/* How long a write nobody waits for may wait in the store's queue for
 * others to share its commit: the writes of a fleet come spread out (see
 * the slots below), and a commit each would cost the writer more than the
 * writes themselves. */
#define LAZY_WRITE_MS 100

static void msg_written(sreq_t *r);

static void submit_message(vehicle_t *v, char code, const char *payload, size_t len, int paranoid,
                           const char *ptoken, int64_t when)
{
    sreq_t *r = sreq_new(v->w, NULL, v, msg_written);
    if (!r)
        return;
    if (ovms_store_prep_msg_put(&r->req, v->id, code, payload, len, paranoid, ptoken, when) < 0) {
        sreq_free(r);
        return;
    }
    ovms_store_req_incarnation(&r->req, v->incarnation);
    if (v->w->cfg->message_interval_ms > 0)
        ovms_store_req_lazy(&r->req, LAZY_WRITE_MS);   /* written behind already */
    /* the reference's log history: every stored message also as a record
     * of its code, within the vehicle's budget for the node's own records */
    const ovms_config_t *cfg = v->w->cfg;
    if (cfg->log_history > 0 && quota_take(v, QUOTA_SERVER_HISTORY)) {
        ovms_store_req_msg_history(&r->req, when + cfg->log_history);
        ovms_store_req_limit(&r->req, cfg->history_max_records / 2);
    }
    v->msg_writes++;
    sreq_submit(r);
}

static void submit_dirty(vehicle_t *v)
{
    cached_msg_t *dirty = v->dirty;
    int n = v->ndirty;
    v->dirty = NULL;
    v->ndirty = v->dirty_cap = 0;
    link_del(&v->dlink);
    v->last_msg_write = uv_now(&v->w->loop);
    for (int i = 0; i < n; i++)
        submit_message(v, dirty[i].code, dirty[i].payload, dirty[i].len, dirty[i].paranoid,
                       dirty[i].ptoken, dirty[i].received);
    free_msgs(dirty, n);
}

/* ---- the due list ------------------------------------------------------------------------- *
 * Vehicles whose held messages wait for their write interval, ordered by
 * when it ends (last write + interval), with one timer for the head. A
 * vehicle due while its previous write is still in flight leaves the list
 * and is written as soon as that write completes. So a held message is
 * durable at most one interval (plus a commit) after it arrived, and with
 * an interval of 0 right after the write before it.
 *
 * Each vehicle writes at its own moment of the interval (its slot, from a
 * hash of its id). Without slots, a fleet that logged in together -- every
 * car after a restart -- would write together at every interval forever
 * after: a burst of a thousand writes and commits each second, the tail
 * latency of everything else on the node. A write is brought forward by at
 * most half an interval to reach its slot (twice, at most, to get there), so
 * a held message still waits at most one interval. */

static uint64_t due_at(const vehicle_t *v)
{
    uint64_t interval = (uint64_t)v->w->cfg->message_interval_ms;
    uint64_t nominal = v->last_msg_write + interval;
    if (interval < 2)
        return nominal;
    uint64_t past = (nominal % interval + interval - v->spread % interval) % interval;
    return nominal - (past <= interval / 2 ? past : interval / 2);
}

static void on_due_timer(uv_timer_t *t)
{
    hub_write_due(t->data);
}

static void arm_due_timer(worker_t *w)
{
    if (link_empty(&w->due) || w->stopping) {
        uv_timer_stop(&w->due_timer);
        return;
    }
    uint64_t at = due_at(container_of(w->due.next, vehicle_t, dlink)), now = uv_now(&w->loop);
    uv_timer_start(&w->due_timer, on_due_timer, at > now ? at - now : 0, 0);
}

static void due_insert(vehicle_t *v)
{
    worker_t *w = v->w;
    link_t *pos = w->due.prev;
    if (!link_empty(&v->dlink))
        return;
    /* usually the latest: walk back from the tail */
    while (pos != &w->due && due_at(container_of(pos, vehicle_t, dlink)) > due_at(v))
        pos = pos->prev;
    link_add(pos->next, &v->dlink);
    if (w->due.next == &v->dlink)
        arm_due_timer(w);
}

void hub_write_due(worker_t *w)
{
    uint64_t now = uv_now(&w->loop);
    while (!link_empty(&w->due)) {
        vehicle_t *v = container_of(w->due.next, vehicle_t, dlink);
        if (due_at(v) > now)
            break;
        link_del(&v->dlink);
        if (v->msg_writes == 0)
            submit_dirty(v);          /* else msg_written submits it */
    }
    arm_due_timer(w);
}

static void msg_written(sreq_t *r)
{
    vehicle_t *v = r->vehicle;
    if (r->req.status < 0 && !(r->req.status == OVMS_ENOTFOUND && v->retired))
        LOG_ERROR(NULL, "%s: stored message not written: %s", v->id, ovms_strerror(r->req.status));
    v->msg_writes--;
    if (v->msg_writes == 0 && v->ndirty && due_at(v) <= uv_now(&v->w->loop))
        submit_dirty(v);              /* what came meanwhile, now that it is due */
}

/* Keep the newest message of its code for the next write. */
static void hold_message(vehicle_t *v, char code, const char *payload, size_t len, int paranoid,
                         const char *ptoken, int64_t when)
{
    int i;
    for (i = 0; i < v->ndirty && v->dirty[i].code != code; i++)
        ;
    if (i == v->ndirty) {
        if (v->ndirty == v->dirty_cap) {
            int cap = v->dirty_cap ? v->dirty_cap * 2 : 4;
            cached_msg_t *grown = realloc(v->dirty, (size_t)cap * sizeof *grown);
            if (!grown)
                return;
            v->dirty = grown;
            v->dirty_cap = cap;
        }
        memset(&v->dirty[i], 0, sizeof v->dirty[i]);
        v->dirty[i].code = code;
        v->ndirty++;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, payload, len);
    copy[len] = '\0';
    free(v->dirty[i].payload);
    v->dirty[i].payload = copy;
    v->dirty[i].len = len;
    v->dirty[i].paranoid = (uint8_t)paranoid;
    snprintf(v->dirty[i].ptoken, sizeof v->dirty[i].ptoken, "%s", ptoken);
    v->dirty[i].received = when;
    due_insert(v);
}

/* The first message after a quiet spell is written at once; within the
 * write interval later ones are held, newest per code, and written when
 * the interval ends (the due list). A flood of car messages therefore costs at most one write per
 * vehicle and code per interval. (History, H and h, is never held.) */
void hub_store_message(vehicle_t *v, char code, const char *payload, size_t len, int paranoid,
                       int64_t when)
{
    const char *ptoken = paranoid ? hub_ptoken(v) : "";
    uint64_t now = uv_now(&v->w->loop);
    uint64_t interval = (uint64_t)v->w->cfg->message_interval_ms;

    if (v->msg_writes == 0 && v->ndirty == 0 && now - v->last_msg_write >= interval) {
        v->last_msg_write = now;
        submit_message(v, code, payload, len, paranoid, ptoken, when);
        return;
    }
    hold_message(v, code, payload, len, paranoid, ptoken, when);
}

static void client_burst(vehicle_t *v, conn_t *c)
{
    int et_sent = 0;

    link_add(&v->clients, &c->vlink);
    c->flags |= CF_REPLAYED;
    if (c->role == 'A') {
        v->napps++;
        if (v->car)
            conn_sendf(v->car, "Z%d", hub_apps_total(v));
    }
    nodebus_sync(v);
    conn_send(c, hub_car_anywhere(v) ? "Z1" : "Z0", 2);
    for (int i = 0; i < v->ncache; i++) {
        const cached_msg_t *e = &v->cache[i];
        if (!e->paranoid) {
            send_coded(c, "", e->code, e->payload, e->len);
            continue;
        }
        if (strcmp(e->ptoken, hub_ptoken(v)) != 0)
            continue;                     /* made under an older token: invalid */
        if (!et_sent) {
            conn_sendf(c, "ET%s", hub_ptoken(v));
            et_sent = 1;
        }
        send_coded(c, "EM", e->code, e->payload, e->len);
    }
    int64_t age = wall_now() - v->last_update;
    conn_sendf(c, "T%lld", (long long)(age > 0 ? age : 0));
}

static void maybe_drop_cache(vehicle_t *v)
{
    if (v->cache_state == CACHE_READY && link_empty(&v->clients) && link_empty(&v->waiting) &&
        !v->cache_waits && !v->cache_kept_until)
        drop_cache(v);
}

/* A vehicle read over HTTP keeps its cache, and its hub entry (a reference),
 * for CACHE_KEEP_S after the last read: a dashboard polling every few
 * seconds costs one store read, not one per request. */
#define CACHE_KEEP_S 10

static void keep_cache(vehicle_t *v)
{
    if (!v->cache_kept_until)
        hub_ref(v);
    v->cache_kept_until = worker_now(v->w) + CACHE_KEEP_S;
}

vehicle_t **hub_collect(worker_t *w, int (*want)(const vehicle_t *v, const void *arg), const void *arg,
                        size_t *n)
{
    vehicle_t **list = NULL;
    *n = 0;
    for (size_t i = 0; i < w->vehicles.cap; i++) {
        vehicle_t *v = w->vehicles.slot[i];
        if (!v || !want(v, arg))
            continue;
        vehicle_t **grown = realloc(list, (*n + 1) * sizeof *list);
        if (!grown)
            break;
        list = grown;
        list[(*n)++] = v;
        hub_ref(v);
    }
    return list;
}

typedef struct expiry {
    uint32_t now;
    int all;
} expiry_t;

static int cache_kept_out(const vehicle_t *v, const void *arg)
{
    const expiry_t *e = arg;
    return v->cache_kept_until && (e->all || v->cache_kept_until <= e->now);
}

void hub_cache_expire(worker_t *w, int all)
{
    expiry_t e = { worker_now(w), all };
    size_t n;
    vehicle_t **gone = hub_collect(w, cache_kept_out, &e, &n);
    for (size_t i = 0; i < n; i++) {
        gone[i]->cache_kept_until = 0;
        maybe_drop_cache(gone[i]);
        hub_unref(gone[i]);          /* the kept reference */
        hub_unref(gone[i]);          /* hub_collect's */
    }
    free(gone);
}

typedef struct cache_wait {
    struct cache_wait *next;
    hub_cache_fn fn;
    void *arg;
} cache_wait_t;

static void run_cache_waits(vehicle_t *v)
{
    while (v->cache_waits) {
        cache_wait_t *cw = v->cache_waits;
        v->cache_waits = cw->next;
        cw->fn(v, cw->arg);
        free(cw);
    }
}

static void cache_loaded(sreq_t *r)
{
    vehicle_t *v = r->vehicle;
    const ovms_store_rows_t *rows = &r->req.rows;

    if (r->req.status < 0)
        LOG_ERROR(NULL, "%s: cannot load stored messages: %s", v->id, ovms_strerror(r->req.status));
    for (int i = 0; r->req.status == 0 && i < rows->nrows; i++) {
        char code = ovms_store_cell(rows, i, 0)[0];
        cached_msg_t *e = NULL;
        for (int k = 0; k < v->ncache; k++)
            if (v->cache[k].code == code)
                e = &v->cache[k];
        if (e && e->live)
            continue;                    /* a live message arrived meanwhile: it is newer */
        const char *payload = ovms_store_cell(rows, i, 1);
        cache_set(v, code, payload, strlen(payload), ovms_store_cell(rows, i, 2)[0] == '1',
                  ovms_store_cell(rows, i, 3), atoll(ovms_store_cell(rows, i, 4)), 0);
    }
    if (r->req.status == 0 && r->req.value > v->last_update)
        v->last_update = r->req.value;
    for (int k = 0; k < v->ncache; k++)
        v->cache[k].live = 0;
    v->cache_state = CACHE_READY;
    if (v->snapshot_due) {
        v->snapshot_due = 0;
        nodebus_snapshot(v);
    }
    run_cache_waits(v);
    hub_release_waiting(v);
    maybe_drop_cache(v);
}

void hub_release_waiting(vehicle_t *v)
{
    if (v->cache_state != CACHE_READY || v->bus_pending)
        return;
    while (!link_empty(&v->waiting)) {
        conn_t *c = container_of(v->waiting.next, conn_t, vlink);
        link_del(&c->vlink);
        client_burst(v, c);
        conn_unpark(c);
    }
    maybe_drop_cache(v);
}

static void load_cache(vehicle_t *v)
{
    sreq_t *r = sreq_new(v->w, NULL, v, cache_loaded);
    if (!r) {
        v->cache_state = CACHE_READY;    /* replay what we have rather than hang */
        return;
    }
    v->cache_state = CACHE_LOADING;
    /* messages still waiting to be written are newer than anything the read
     * can find: they go in first, as live ones */
    for (int i = 0; i < v->ndirty; i++)
        cache_set(v, v->dirty[i].code, v->dirty[i].payload, v->dirty[i].len, v->dirty[i].paranoid,
                  v->dirty[i].ptoken, v->dirty[i].received, 1);
    ovms_store_prep_msg_list(&r->req, v->id);
    ovms_store_req_ordered(&r->req);
    sreq_submit(r);
}

void hub_with_cache(vehicle_t *v, hub_cache_fn fn, void *arg)
{
    keep_cache(v);
    if (v->cache_state != CACHE_READY) {
        cache_wait_t *cw = calloc(1, sizeof *cw), **tail = &v->cache_waits;
        if (cw) {
            cw->fn = fn;
            cw->arg = arg;
            while (*tail)
                tail = &(*tail)->next;
            *tail = cw;
            if (v->cache_state == CACHE_NONE)
                load_cache(v);
            if (v->cache_state != CACHE_READY)
                return;
            run_cache_waits(v);          /* the load could not start: what we have */
            maybe_drop_cache(v);
            return;
        }
    }
    fn(v, arg);
    maybe_drop_cache(v);
}

void hub_want_snapshot(vehicle_t *v)
{
    if (v->cache_state == CACHE_READY) {
        nodebus_snapshot(v);
        return;
    }
    v->snapshot_due = 1;            /* cache_loaded sends it */
    if (v->cache_state == CACHE_NONE)
        load_cache(v);
}

/* ---- logins and disconnects ------------------------------------------------------------------- */

void hub_car_login(vehicle_t *v, conn_t *c)
{
    if (v->car && v->car != c)
        conn_close(v->car, "replaced by a new login of the same car");
    v->car = c;
    cmd_clear(v);
    c->last_ping = worker_now(c->w);
    hub_to_clients(v, "Z1", 2);
    nodebus_sync(v);
    nodebus_car_login(v);
    if (v->bus_pending == BUS_STATES)
        v->car_z_due = 1;           /* sent once the others' app counts are known */
    else
        conn_sendf(c, "Z%d", hub_apps_total(v));
}

void hub_client_login(vehicle_t *v, conn_t *c)
{
    if (v->cache_state == CACHE_READY && !v->bus_pending && v->watched == (v->w->bus != NULL)) {
        client_burst(v, c);
        return;
    }
    link_add(&v->waiting, &c->vlink);
    conn_park(c);
    nodebus_sync(v);                 /* the first watcher here asks the others */
    if (v->cache_state == CACHE_NONE)
        load_cache(v);
    else
        hub_release_waiting(v);
}

void hub_detach(conn_t *c)
{
    vehicle_t *v = c->vehicle;

    if (v->car == c) {
        v->car = NULL;
        cmd_clear(v);
        if (!hub_car_anywhere(v))
            hub_to_clients(v, "Z0", 2);  /* (its group entries go with the connection) */
    } else if (!link_empty(&c->vlink)) {
        link_del(&c->vlink);
        if (c->flags & CF_REPLAYED) {
            cmd_forget(v, c);
            if (c->role == 'A') {
                v->napps--;
                if (v->car)
                    conn_sendf(v->car, "Z%d", hub_apps_total(v));
            }
        }
    }
    c->vehicle = NULL;
    nodebus_sync(v);
    maybe_drop_cache(v);
    hub_unref(v);
}

/* ---- server log history ----------------------------------------------------------------------- */

#define SERVER_LOGS_TYPE "*-OVM-ServerLogs"

void hub_server_log(conn_t *c, const char *fmt, ...)
{
    static uint32_t recno;           /* as the reference: a counter, 0..65535 */
    vehicle_t *v = c->vehicle;
    const ovms_config_t *cfg = c->w->cfg;
    char data[512];
    va_list ap;

    if (!v || v->retired || cfg->log_history <= 0 || !quota_take(v, QUOTA_SERVER_HISTORY))
        return;
    int n = snprintf(data, sizeof data, "#%llu %c ", (unsigned long long)c->id, c->role ? c->role : '-');
    va_start(ap, fmt);
    vsnprintf(data + n, sizeof data - (size_t)n, fmt, ap);
    va_end(ap);
    for (char *p = data; *p; p++)    /* the last field of a record: commas may stay, line breaks not */
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    uint32_t k = __atomic_fetch_add(&recno, 1, __ATOMIC_RELAXED) % 65536;
    hub_own_record(c->w, v->id, v->incarnation, SERVER_LOGS_TYPE, k, cfg->log_history, data,
                   strlen(data));
}

void hub_own_record(worker_t *w, const char *vehicle, int64_t incarnation, const char *type,
                    int64_t recno, int64_t lifetime, const char *data, size_t len)
{
    sreq_t *r = sreq_new(w, NULL, NULL, NULL);
    int64_t now = wall_now();
    if (!r)
        return;
    if (ovms_store_prep_hist_put(&r->req, vehicle, type, recno, now, now + lifetime, data, len) < 0) {
        sreq_free(r);
        return;
    }
    ovms_store_req_incarnation(&r->req, incarnation);
    ovms_store_req_limit(&r->req, w->cfg->history_max_records / 2);
    sreq_submit(r);
}

/* ---- utilisation ------------------------------------------------------------------------------ */

void hub_flush_util(vehicle_t *v)
{
    if (!util_pending(v))
        return;
    sreq_t *r = sreq_new(v->w, NULL, NULL, NULL);
    if (!r)
        return;
    ovms_store_prep_util_add(&r->req, v->id, v->util_day, v->util[0], v->util[1], v->util[2],
                             v->util[3]);
    ovms_store_req_incarnation(&r->req, v->incarnation);
    ovms_store_req_lazy(&r->req, LAZY_WRITE_MS);
    memset(v->util, 0, sizeof v->util);
    sreq_submit(r);
}

void hub_count(vehicle_t *v, int slot, size_t bytes)
{
    if (v->retired)
        return;                      /* last words (Z0) of a vehicle that is gone */
    int64_t day = today();
    if (day != v->util_day) {
        hub_flush_util(v);
        v->util_day = day;
    }
    v->util[slot] += (int64_t)bytes;
}

void hub_flush_all(worker_t *w, int all)
{
    int util_due = all || worker_now(w) - w->last_util_flush >= (uint32_t)w->cfg->util_flush;

    if (util_due)
        w->last_util_flush = worker_now(w);
    for (size_t i = 0; i < w->vehicles.cap; i++) {
        vehicle_t *v = w->vehicles.slot[i];
        if (!v)
            continue;
        if (util_due)
            hub_flush_util(v);
        if (all && v->ndirty && v->msg_writes == 0)
            submit_dirty(v);
        if (v->refs == 0 && !util_pending(v) && !v->ndirty && (all || quota_settled(v))) {
            free_vehicle(v);         /* a retired entry: the table shifted, look again here */
            i--;
        }
    }
}
