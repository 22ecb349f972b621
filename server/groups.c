/*
 * groups.c -- groups (PROTOCOL 6.8), the one channel across vehicles and
 * owners: a car's g updates its entry in a group and reaches every app
 * subscribed to that group, whichever worker the app is on; G subscribes
 * an app and sends it the current entries. All in memory.
 *
 * One registry under one mutex (groups are rare: rallies, fleet maps), held
 * only to find and copy what must be sent. Groups are found by name in a
 * hash table and freed when their last member and subscriber are gone.
 * Each subscribing connection and each member car has a small record of its
 * groups, so leaving touches only those, and both are capped
 * (max_groups_per_connection): one app cannot make the registry grow, or
 * every later G slow, by subscribing to thousands of names. Deliveries to
 * apps on other workers go through their mailboxes.
 *
 * Across nodes (with the Redis bus), each group has a channel
 * "<prefix>g{GROUP}", watched by every worker that holds a subscriber or
 * a member car of the group (one watch per holder entry). On it:
 *   g  "<vehicle>,<data>": a member's update, sent by the car's worker;
 *      each worker that receives it passes it to its own subscribers (a
 *      node's other workers had it through the mailboxes already, and a
 *      node never receives its own messages back)
 *   q  "<connection id>": an app subscribed on the sending node; every
 *      worker with member cars answers with its entries
 *   e  "<node>|<connection id>|<vehicle>,<data>": one entry for that app
 * Nothing of another node is kept here: a new subscriber asks (q, sent
 * once its worker's subscription is confirmed, so no answer can pass it),
 * and after Redis was away every subscriber asks again and every member's
 * worker sends its entries again as updates.
 * Threading: any worker.
 */
#include "server_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct member {
    char vehicle[33];
    int worker;                      /* the car's */
    char *data;
} member_t;

typedef struct subscriber {
    int worker;
    uint64_t conn;
} subscriber_t;

typedef struct group {
    char name[65];
    member_t *m;
    int nm, mcap;
    subscriber_t *s;
    int ns, scap;
} group_t;

/* What one app connection subscribed to, or one car is a member of. */
typedef struct holder {
    uint64_t conn;                   /* the connection (app or car) */
    char vehicle[33];                /* a car's vehicle; "" for an app */
    int n, cap;                      /* cap: the limit when it was made (a reload may change it) */
    group_t *g[];                    /* at most the cap at creation */
} holder_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static table_t groups;               /* group_t by name */
static table_t holders;              /* holder_t by connection id */
static int64_t nsubs, nmembers;      /* under mu, for the statistics */

static uint64_t group_hash(const void *item)
{
    return hash_str(((const group_t *)item)->name);
}

static int group_match(const void *item, const void *key)
{
    return !strcmp(((const group_t *)item)->name, key);
}

static uint64_t holder_hash(const void *item)
{
    return hash_u64(((const holder_t *)item)->conn);
}

static int holder_match(const void *item, const void *key)
{
    return ((const holder_t *)item)->conn == *(const uint64_t *)key;
}

void groups_init(void)
{
    groups.hash_item = group_hash;
    holders.hash_item = holder_hash;
}

static int group_name(ovms_str_t id, char out[65])
{
    if (id.len == 0 || id.len >= 65)
        return -1;
    for (size_t i = 0; i < id.len; i++)
        out[i] = (char)toupper((unsigned char)id.ptr[i]);
    out[id.len] = '\0';
    return 0;
}

static int grow(void **arr, int *cap, int n, size_t size)
{
    if (n < *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 4;
    void *grown = realloc(*arr, (size_t)ncap * size);
    if (!grown)
        return -1;
    *arr = grown;
    *cap = ncap;
    return 0;
}

/* ---- the registry (caller holds mu) --------------------------------------------------- */

static group_t *find_group(const char *name, int create)
{
    group_t *g = table_find(&groups, hash_str(name), group_match, name);
    if (g || !create)
        return g;
    if (!(g = calloc(1, sizeof *g)))
        return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    if (table_insert(&groups, g) < 0) {
        free(g);
        return NULL;
    }
    return g;
}

static void maybe_free_group(group_t *g)
{
    if (g->nm || g->ns)
        return;
    table_remove(&groups, g);
    free(g->m);
    free(g->s);
    free(g);
}

static holder_t *find_holder(uint64_t conn)
{
    return table_find(&holders, hash_u64(conn), holder_match, &conn);
}

/* The holder's record, made on first use. */
static holder_t *holder_of(uint64_t conn, const char *vehicle, int cap)
{
    holder_t *h = find_holder(conn);
    if (h)
        return h;
    if (!(h = calloc(1, sizeof *h + (size_t)cap * sizeof h->g[0])))
        return NULL;
    h->conn = conn;
    h->cap = cap;
    snprintf(h->vehicle, sizeof h->vehicle, "%s", vehicle ? vehicle : "");
    if (table_insert(&holders, h) < 0) {
        free(h);
        return NULL;
    }
    return h;
}

static int holds(const holder_t *h, const group_t *g)
{
    for (int i = 0; i < h->n; i++)
        if (h->g[i] == g)
            return 1;
    return 0;
}

static void drop_member(group_t *g, const char *vehicle)
{
    for (int i = 0; i < g->nm; i++)
        if (!strcmp(g->m[i].vehicle, vehicle)) {
            free(g->m[i].data);
            g->m[i] = g->m[--g->nm];
            nmembers--;
            return;
        }
}

static void drop_subscriber(group_t *g, int worker, uint64_t conn)
{
    for (int i = 0; i < g->ns; i++)
        if (g->s[i].worker == worker && g->s[i].conn == conn) {
            g->s[i] = g->s[--g->ns];
            nsubs--;
            return;
        }
}

/* ---- delivering --------------------------------------------------------------------------- */

static void send_to_conn(worker_t *w, uint64_t id, const char *msg, size_t len)
{
    conn_t *c = worker_find_conn(w, id);
    if (c && c->state == CS_ACTIVE)
        conn_send(c, msg, len);
}

static void send_to(server_t *srv, worker_t *here, const subscriber_t *s, const char *msg, size_t len)
{
    if (s->worker == here->index) {
        send_to_conn(here, s->conn, msg, len);
        return;
    }
    deliver_t *d = malloc(sizeof *d + len);
    if (!d)
        return;
    d->mail.type = MAIL_DELIVER;
    d->conn_id = s->conn;
    d->len = len;
    memcpy(d->msg, msg, len);
    if (worker_post(&srv->workers[s->worker], &d->mail) < 0)
        free(d);
}

/* The car's entry in the group; NULL when it is a member of as many groups
 * as it may be. Caller holds mu. */
static member_t *member_slot(conn_t *car, group_t *g)
{
    const char *id = car->vehicle->id;
    for (int i = 0; i < g->nm; i++)
        if (!strcmp(g->m[i].vehicle, id))
            return &g->m[i];
    holder_t *h = holder_of(car->id, id, car->w->cfg->max_groups_per_conn);
    if (!h || h->n >= h->cap || h->n >= car->w->cfg->max_groups_per_conn ||
        grow((void **)&g->m, &g->mcap, g->nm, sizeof *g->m) < 0)
        return NULL;
    h->g[h->n++] = g;
    car->flags |= CF_GROUPS;
    member_t *m = &g->m[g->nm++];
    snprintf(m->vehicle, sizeof m->vehicle, "%s", id);
    m->worker = car->w->index;
    m->data = NULL;
    nmembers++;
    if (car->w->bus)
        ovms_bus_watch_topic(car->w->bus, OVMS_BUS_GROUP, g->name);
    return m;
}

void groups_update(conn_t *car, ovms_str_t payload)
{
    ovms_group_t gu;
    char name[65], msg[OVMS_LINE_MAX + 128];
    subscriber_t *subs = NULL;
    int ns = 0, refused = 0;

    if (ovms_group_parse_car(payload, &gu) < 0 || group_name(gu.group, name) < 0)
        return;
    int n = ovms_group_format_relay(car->vehicle->id, name, gu.data.ptr ? gu.data : OVMS_STR(""),
                                    msg, sizeof msg);
    char *data = strndup(gu.data.ptr ? gu.data.ptr : "", gu.data.len);
    if (n < 0 || !data) {
        free(data);
        return;
    }
    pthread_mutex_lock(&mu);
    group_t *g = find_group(name, 1);
    member_t *m = g ? member_slot(car, g) : NULL;
    if (m) {
        free(m->data);
        m->data = data;
        data = NULL;
        if (g->ns && (subs = malloc((size_t)g->ns * sizeof *subs))) {
            memcpy(subs, g->s, (size_t)g->ns * sizeof *subs);
            ns = g->ns;
        }
    } else if (g) {
        refused = 1;
        maybe_free_group(g);
    }
    pthread_mutex_unlock(&mu);
    free(data);
    if (refused)
        log_limited(OVMS_LOG_INFO, car, "group update refused", car->vehicle->id,
                    "g for %s refused: the car is in %d groups already", name,
                    car->w->cfg->max_groups_per_conn);
    for (int i = 0; i < ns; i++)
        send_to(car->w->srv, car->w, &subs[i], msg, (size_t)n);
    free(subs);
    if (!refused && car->w->bus) {
        /* "g<vehicle>,<GROUP>,<data>" without the group: "<vehicle>,<data>" */
        char entry[OVMS_LINE_MAX + 64];
        int e = snprintf(entry, sizeof entry, "%s,%.*s", car->vehicle->id, (int)gu.data.len,
                         gu.data.ptr ? gu.data.ptr : "");
        if (e > 0 && (size_t)e < sizeof entry)
            ovms_bus_publish_topic(car->w->bus, OVMS_BUS_GROUP, name, 'g', entry, (size_t)e);
    }
}

/* An app joins (at most max_groups_per_connection groups). 0, or -1 when it
 * may not: then nothing is sent. Caller holds mu. */
static int subscribe(conn_t *c, group_t *g)
{
    holder_t *h = holder_of(c->id, NULL, c->w->cfg->max_groups_per_conn);
    if (!h)
        return -1;
    if (holds(h, g))
        return 0;
    if (h->n >= h->cap || h->n >= c->w->cfg->max_groups_per_conn || grow((void **)&g->s, &g->scap, g->ns, sizeof *g->s) < 0)
        return -1;
    h->g[h->n++] = g;
    g->s[g->ns++] = (subscriber_t){ c->w->index, c->id };
    c->flags |= CF_GROUPS;
    nsubs++;
    if (c->w->bus)
        ovms_bus_watch_topic(c->w->bus, OVMS_BUS_GROUP, g->name);
    return 0;
}

/* Ask the other nodes for a new subscriber's entries. */
static void ask_entries(worker_t *w, const char *group, uint64_t conn)
{
    char q[32];
    int n = snprintf(q, sizeof q, "%llu", (unsigned long long)conn);
    ovms_bus_publish_topic(w->bus, OVMS_BUS_GROUP, group, 'q', q, (size_t)n);
}

void groups_subscribe(conn_t *c, ovms_str_t payload)
{
    ovms_groupsub_t gs;
    char name[65], **lines = NULL;
    int nlines = 0, refused = 0;

    if (ovms_groupsub_parse(payload, &gs) < 0 || group_name(gs.group, name) < 0)
        return;
    pthread_mutex_lock(&mu);
    group_t *g = find_group(name, c->role == 'A');
    if (g && c->role == 'A' && subscribe(c, g) < 0) {
        refused = 1;
        maybe_free_group(g);
        g = NULL;
    }
    if (g && g->nm && (lines = calloc((size_t)g->nm, sizeof *lines))) {
        for (int i = 0; i < g->nm; i++) {
            char msg[OVMS_LINE_MAX + 128];
            if (ovms_group_format_relay(g->m[i].vehicle, name, ovms_str_c(g->m[i].data), msg,
                                        sizeof msg) > 0)
                lines[nlines++] = strdup(msg);
        }
    }
    pthread_mutex_unlock(&mu);
    if (refused)
        log_limited(OVMS_LOG_INFO, c, "group subscription refused", c->vehicle->id,
                    "G %s refused: the connection is in %d groups already", name,
                    c->w->cfg->max_groups_per_conn);
    for (int i = 0; i < nlines; i++) {
        if (lines[i])
            conn_send(c, lines[i], strlen(lines[i]));
        free(lines[i]);
    }
    free(lines);
    /* the other nodes' entries follow; before the subscription is in place
     * on_watching asks for every subscriber here */
    if (!refused && c->role == 'A' && c->w->bus && ovms_bus_watching(c->w->bus, OVMS_BUS_GROUP, name))
        ask_entries(c->w, name, c->id);
}

/* A car or app connection with groups leaves: its entries and subscriptions
 * go, and every group left empty with them. */
void groups_conn_gone(conn_t *c)
{
    pthread_mutex_lock(&mu);
    holder_t *h = find_holder(c->id);
    if (h) {
        for (int i = 0; i < h->n; i++) {
            if (c->w->bus)
                ovms_bus_unwatch_topic(c->w->bus, OVMS_BUS_GROUP, h->g[i]->name);
            if (h->vehicle[0])
                drop_member(h->g[i], h->vehicle);
            else
                drop_subscriber(h->g[i], c->w->index, c->id);
            maybe_free_group(h->g[i]);
        }
        table_remove(&holders, h);
        free(h);
    }
    pthread_mutex_unlock(&mu);
}

/* ---- across nodes -------------------------------------------------------------------------- */

/* This worker's subscribers of a group, copied (caller frees). */
static uint64_t *local_subscribers(const worker_t *w, const char *group, int *n)
{
    uint64_t *out = NULL;
    *n = 0;
    pthread_mutex_lock(&mu);
    group_t *g = find_group(group, 0);
    if (g && g->ns && (out = malloc((size_t)g->ns * sizeof *out)))
        for (int i = 0; i < g->ns; i++)
            if (g->s[i].worker == w->index)
                out[(*n)++] = g->s[i].conn;
    pthread_mutex_unlock(&mu);
    return out;
}

/* "<vehicle>,<data>" as the relay line "g<vehicle>,<GROUP>,<data>". */
static int relay_line(const char *group, const char *entry, size_t len, char *out, size_t cap)
{
    const char *comma = memchr(entry, ',', len);
    char vehicle[33];
    if (!comma || comma == entry || comma - entry > 32)
        return -1;
    snprintf(vehicle, sizeof vehicle, "%.*s", (int)(comma - entry), entry);
    return ovms_group_format_relay(vehicle, group, (ovms_str_t){ comma + 1, (size_t)(entry + len - comma - 1) },
                                   out, cap);
}

/* Our members' entries (those on this worker), each published with the
 * given prefix: "<node>|<conn>|" for e, "" for g. */
static void publish_entries(worker_t *w, const char *group, char type, const char *prefix)
{
    char **entries = NULL;
    int n = 0;
    pthread_mutex_lock(&mu);
    group_t *g = find_group(group, 0);
    if (g && g->nm && (entries = calloc((size_t)g->nm, sizeof *entries)))
        for (int i = 0; i < g->nm; i++) {
            if (g->m[i].worker != w->index)
                continue;
            const char *data = g->m[i].data ? g->m[i].data : "";
            size_t len = strlen(prefix) + strlen(g->m[i].vehicle) + strlen(data) + 2;
            if ((entries[n] = malloc(len)))
                snprintf(entries[n++], len, "%s%s,%s", prefix, g->m[i].vehicle, data);
        }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++) {
        ovms_bus_publish_topic(w->bus, OVMS_BUS_GROUP, group, type, entries[i], strlen(entries[i]));
        free(entries[i]);
    }
    free(entries);
}

/* e: "<node>|<connection id>|<vehicle>,<data>", ours when the node is this one. */
static void take_entry(worker_t *w, const char *group, const char *payload, size_t len)
{
    const char *me = ovms_store_node_id(w->srv->store), *end = payload + len;
    size_t mlen = strlen(me);
    char msg[OVMS_LINE_MAX + 128];
    if (len <= mlen + 1 || memcmp(payload, me, mlen) != 0 || payload[mlen] != '|')
        return;
    const char *idp = payload + mlen + 1, *bar = memchr(idp, '|', (size_t)(end - idp));
    if (!bar)
        return;
    int n = relay_line(group, bar + 1, (size_t)(end - bar - 1), msg, sizeof msg);
    if (n > 0)
        send_to_conn(w, strtoull(idp, NULL, 10), msg, (size_t)n);
}

void groups_bus_message(worker_t *w, const char *group, char type, const char *from,
                        const char *payload, size_t len)
{
    char msg[OVMS_LINE_MAX + 128], conn[64];
    if (type == 'g') {
        int n = relay_line(group, payload, len, msg, sizeof msg), ns;
        uint64_t *subs = n > 0 ? local_subscribers(w, group, &ns) : NULL;
        for (int i = 0; subs && i < ns; i++)
            send_to_conn(w, subs[i], msg, (size_t)n);
        free(subs);
    } else if (type == 'q' && len < sizeof conn - 40) {
        snprintf(conn, sizeof conn, "%s|%.*s|", from, (int)len, payload);
        publish_entries(w, group, 'e', conn);
    } else if (type == 'e') {
        take_entry(w, group, payload, len);
    }
}

void groups_bus_watching(worker_t *w, const char *group, int again)
{
    int n;
    uint64_t *subs = local_subscribers(w, group, &n);
    for (int i = 0; subs && i < n; i++)
        ask_entries(w, group, subs[i]);
    free(subs);
    if (again)                      /* (a q sent before we listened again was lost) */
        publish_entries(w, group, 'g', "");
}

/* Redis is back (both connections): for every group this worker holds a
 * subscriber or a member car of, do what on_watching(again) does, since
 * answers published while our publishing connection was still down were
 * lost. Names are copied out first: the calls take the lock again. */
void groups_bus_up(worker_t *w)
{
    char (*names)[65] = NULL;
    size_t n = 0;
    pthread_mutex_lock(&mu);
    if (groups.count && (names = malloc(groups.count * sizeof *names)))
        for (size_t i = 0; i < groups.cap; i++) {
            const group_t *g = groups.slot[i];
            int mine = 0;
            for (int k = 0; g && !mine && k < g->ns; k++)
                mine = g->s[k].worker == w->index;
            for (int k = 0; g && !mine && k < g->nm; k++)
                mine = g->m[k].worker == w->index;
            if (mine)
                snprintf(names[n++], sizeof names[0], "%s", g->name);
        }
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < n; i++)
        groups_bus_watching(w, names[i], 1);
    free(names);
}

void groups_stats(int64_t *ngroups, int64_t *subscriptions, int64_t *members)
{
    pthread_mutex_lock(&mu);
    *ngroups = (int64_t)groups.count;
    *subscriptions = nsubs;
    *members = nmembers;
    pthread_mutex_unlock(&mu);
}
