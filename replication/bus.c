/*
 * bus.c -- the Redis bus of one loop: per-vehicle and per-group channels
 * for live traffic between nodes (see ovms_repl.h). Two connections
 * (redis.c): one publishes, one is in subscribe mode.
 *
 * A channel is "<prefix><key>", the key "{VEHICLE}" or "g{GROUP}": the
 * braces are Redis Cluster's hash tag, so a vehicle's or group's traffic
 * stays on one shard. Watches are counted per key in a small hash table; the first watch
 * subscribes, the last release unsubscribes. When the subscriber comes
 * back after Redis was away, every watched channel is subscribed again (in
 * commands of up to 256 channels) and on_state(up) follows, so the caller
 * can send what remote watchers missed. The bus is "up" while both
 * connections are.
 * Threading: the loop's thread only.
 */
#include "repl_int.h"
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096
#define SUBSCRIBE_BATCH 256

typedef struct watch {
    struct watch *next;
    int count;
    int confirmed;                  /* Redis said "subscribe" for it */
    int again;                      /* subscribed again after Redis came back */
    char key[72];                   /* "{VEHICLE}" or "g{GROUP}" */
} watch_t;

struct ovms_bus {
    ovms_bus_config_t cfg;
    repl_redis_t *pub, *sub;
    watch_t *buckets[BUCKETS];
    size_t nwatched;
    int up;                         /* as last reported */
    int closing;
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % BUCKETS;
}

static void key_of(int kind, const char *name, char out[72])
{
    snprintf(out, 72, "%s{%.64s}", kind == OVMS_BUS_GROUP ? "g" : "", name);
}

static watch_t **find(ovms_bus_t *b, const char *key)
{
    watch_t **w = &b->buckets[hash(key)];
    while (*w && strcmp((*w)->key, key) != 0)
        w = &(*w)->next;
    return w;
}

static size_t channel_of(const ovms_bus_t *b, const char *key, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%s", b->cfg.prefix, key);
    return n < 0 ? 0 : (size_t)n;
}

static void subscribe(ovms_bus_t *b, const char *cmd, const char *const *keys, int n)
{
    const char *argv[SUBSCRIBE_BATCH + 1];
    size_t lens[SUBSCRIBE_BATCH + 1];
    char names[SUBSCRIBE_BATCH][140];      /* (35 KB of stack; loops run on several threads) */
    argv[0] = cmd;
    lens[0] = strlen(cmd);
    for (int i = 0; i < n; i++) {
        lens[i + 1] = channel_of(b, keys[i], names[i], sizeof names[i]);
        argv[i + 1] = names[i];
    }
    repl_redis_push_command(b->sub, n + 1, argv, lens);
}

/* After the subscriber (re)connected: every watched channel again. */
static void resubscribe(ovms_bus_t *b)
{
    const char *batch[SUBSCRIBE_BATCH];
    int n = 0;
    for (int i = 0; i < BUCKETS; i++)
        for (watch_t *w = b->buckets[i]; w; w = w->next) {
            w->confirmed = 0;
            w->again = 1;
            batch[n++] = w->key;
            if (n == SUBSCRIBE_BATCH) {
                subscribe(b, "SUBSCRIBE", batch, n);
                n = 0;
            }
        }
    if (n)
        subscribe(b, "SUBSCRIBE", batch, n);
}

static void report(ovms_bus_t *b, const char *why)
{
    int up = repl_redis_up(b->pub) && repl_redis_up(b->sub);
    if (up == b->up || b->closing)
        return;
    b->up = up;
    if (b->cfg.on_state)
        b->cfg.on_state(b->cfg.ctx, up, why);
}

static void on_state(repl_redis_t *rc, int up, const char *why, void *ctx)
{
    ovms_bus_t *b = ctx;
    if (up && rc == b->sub)
        resubscribe(b);
    report(b, up ? NULL : why);
}

/* "<prefix>{VEHICLE}" or "<prefix>g{GROUP}" to its kind, name and key;
 * -1 when not one of ours. */
static int topic_of(const ovms_bus_t *b, const char *channel, char name[65], char key[72])
{
    size_t plen = strlen(b->cfg.prefix);
    if (strncmp(channel, b->cfg.prefix, plen) != 0)
        return -1;
    const char *k = channel + plen;
    int kind = k[0] == 'g' ? OVMS_BUS_GROUP : OVMS_BUS_VEHICLE;
    const char *open = k + (kind == OVMS_BUS_GROUP), *close = strchr(open, '}');
    int max = kind == OVMS_BUS_GROUP ? 64 : 32;
    if (*open != '{' || !close || close[1] || close == open + 1 || close - open - 1 > max)
        return -1;
    snprintf(name, 65, "%.*s", (int)(close - open - 1), open + 1);
    snprintf(key, 72, "%s", k);
    return kind;
}

/* "subscribe", channel, count: the watch is in place. */
static void on_subscribed(ovms_bus_t *b, redisReply *r)
{
    char name[65], key[72];
    int kind = r->element[1]->type == REDIS_REPLY_STRING ? topic_of(b, r->element[1]->str, name, key) : -1;
    watch_t *w = kind >= 0 ? *find(b, key) : NULL;
    if (!w || w->confirmed)
        return;                     /* released meanwhile, or said already */
    w->confirmed = 1;
    if (b->cfg.on_watching)
        b->cfg.on_watching(b->cfg.ctx, kind, name, w->again);
    w->again = 0;
}

/* "message", channel, "<type><from>|<payload>" */
static void on_push(repl_redis_t *rc, redisReply *r, void *ctx)
{
    ovms_bus_t *b = ctx;
    (void)rc;
    if (!strcmp(r->element[0]->str, "subscribe")) {
        on_subscribed(b, r);
        return;
    }
    if (strcmp(r->element[0]->str, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return;
    const char *m = r->element[2]->str, *bar = memchr(m, '|', r->element[2]->len);
    char name[65], key[72], from[33];
    int kind = r->element[1]->type == REDIS_REPLY_STRING ? topic_of(b, r->element[1]->str, name, key) : -1;
    if (kind < 0 || !bar || bar == m + 1 || bar - m - 1 > 32)
        return;                     /* not one of ours */
    snprintf(from, sizeof from, "%.*s", (int)(bar - m - 1), m + 1);
    if (!strcmp(from, b->cfg.node_id))
        return;                     /* our own, back from Redis */
    size_t len = r->element[2]->len - (size_t)(bar + 1 - m);
    if (b->cfg.on_message)
        b->cfg.on_message(b->cfg.ctx, kind, name, m[0], from, bar + 1, len);
}

int ovms_bus_open(ovms_bus_t **out, uv_loop_t *loop, const ovms_bus_config_t *cfg)
{
    ovms_bus_t *b = calloc(1, sizeof *b);
    repl_redis_conf_t rc = { .on_state = on_state };
    *out = NULL;
    if (!b)
        return OVMS_ENOMEM;
    b->cfg = *cfg;
    snprintf(rc.address, sizeof rc.address, "%s", cfg->redis);
    snprintf(rc.password, sizeof rc.password, "%s", cfg->password);
    rc.ctx = b;
    int err = repl_redis_open(&b->pub, loop, &rc);
    rc.on_push = on_push;
    if (err == 0 && (err = repl_redis_open(&b->sub, loop, &rc)) < 0)
        repl_redis_close(b->pub);
    if (err < 0) {
        free(b);
        return err;
    }
    *out = b;
    return 0;
}

void ovms_bus_close(ovms_bus_t *b)
{
    if (!b)
        return;
    b->closing = 1;
    repl_redis_close(b->pub);
    repl_redis_close(b->sub);
    for (int i = 0; i < BUCKETS; i++)
        while (b->buckets[i]) {
            watch_t *w = b->buckets[i];
            b->buckets[i] = w->next;
            free(w);
        }
    free(b);
}

int ovms_bus_up(const ovms_bus_t *b)
{
    return b->up;
}

int ovms_bus_watch_topic(ovms_bus_t *b, int kind, const char *name)
{
    char key[72];
    key_of(kind, name, key);
    watch_t **w = find(b, key);
    if (*w) {
        (*w)->count++;
        return 0;
    }
    watch_t *n = calloc(1, sizeof *n);
    if (!n)
        return OVMS_ENOMEM;
    snprintf(n->key, sizeof n->key, "%s", key);
    n->count = 1;
    *w = n;
    b->nwatched++;
    if (repl_redis_up(b->sub))      /* else: when it comes back */
        subscribe(b, "SUBSCRIBE", (const char *const[]){ n->key }, 1);
    return 0;
}

void ovms_bus_unwatch_topic(ovms_bus_t *b, int kind, const char *name)
{
    char key[72];
    key_of(kind, name, key);
    watch_t **w = find(b, key), *gone = *w;
    if (!gone || --gone->count > 0)
        return;
    if (repl_redis_up(b->sub))
        subscribe(b, "UNSUBSCRIBE", (const char *const[]){ gone->key }, 1);
    *w = gone->next;
    free(gone);
    b->nwatched--;
}

int ovms_bus_watching(ovms_bus_t *b, int kind, const char *name)
{
    char key[72];
    key_of(kind, name, key);
    watch_t *w = *find(b, key);
    return w && w->confirmed;
}

int ovms_bus_watch(ovms_bus_t *b, const char *vehicle)
{
    return ovms_bus_watch_topic(b, OVMS_BUS_VEHICLE, vehicle);
}

void ovms_bus_unwatch(ovms_bus_t *b, const char *vehicle)
{
    ovms_bus_unwatch_topic(b, OVMS_BUS_VEHICLE, vehicle);
}

size_t ovms_bus_watched(const ovms_bus_t *b)
{
    return b->nwatched;
}

int ovms_bus_publish_topic(ovms_bus_t *b, int kind, const char *name, char type,
                           const char *payload, size_t len)
{
    char key[72], channel[140], head[40];
    key_of(kind, name, key);
    size_t clen = channel_of(b, key, channel, sizeof channel);
    int hlen = snprintf(head, sizeof head, "%c%s|", type, b->cfg.node_id);
    char *msg = malloc((size_t)hlen + len);
    if (!msg)
        return OVMS_ENOMEM;
    memcpy(msg, head, (size_t)hlen);
    memcpy(msg + hlen, payload, len);
    const char *argv[3] = { "PUBLISH", channel, msg };
    size_t lens[3] = { 7, clen, (size_t)hlen + len };
    int err = repl_redis_argv(b->pub, NULL, NULL, 3, argv, lens);
    free(msg);
    return err;
}

int ovms_bus_publish(ovms_bus_t *b, const char *vehicle, char type, const char *payload, size_t len)
{
    return ovms_bus_publish_topic(b, OVMS_BUS_VEHICLE, vehicle, type, payload, len);
}

/* ---- the state hash -------------------------------------------------------------------------- */

static size_t state_key(const ovms_bus_t *b, const char *vehicle, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s{%s}:nodes", b->cfg.prefix, vehicle);
    return n < 0 ? 0 : (size_t)n;
}

/* A state hash command's caller, called back with the reply (put: stored;
 * get: states). */
typedef struct state_call {
    union {
        ovms_bus_stored_cb stored;
        ovms_bus_states_cb states;
    } cb;
    void *ctx;
    char vehicle[33];
} state_call_t;

static state_call_t *state_call_new(void *ctx, const char *vehicle)
{
    state_call_t *c = calloc(1, sizeof *c);
    if (c) {
        c->ctx = ctx;
        snprintf(c->vehicle, sizeof c->vehicle, "%s", vehicle);
    }
    return c;
}

/* the reply to the command after HSET (or HDEL) on the same connection:
 * Redis has applied it */
static void on_stored(repl_redis_t *rc, redisReply *r, void *arg)
{
    state_call_t *s = arg;
    (void)rc;
    s->cb.stored(s->ctx, s->vehicle, r && r->type != REDIS_REPLY_ERROR);
    free(s);
}

int ovms_bus_state_put(ovms_bus_t *b, const char *vehicle, const char *value, ovms_bus_stored_cb stored,
                       void *ctx)
{
    char key[120];
    size_t klen = state_key(b, vehicle, key, sizeof key);
    state_call_t *s = NULL;
    if (stored) {
        if (!(s = state_call_new(ctx, vehicle)))
            return OVMS_ENOMEM;
        s->cb.stored = stored;
    }
    int err;
    if (!*value) {
        const char *argv[3] = { "HDEL", key, b->cfg.node_id };
        size_t lens[3] = { 4, klen, strlen(b->cfg.node_id) };
        err = repl_redis_argv(b->pub, s ? on_stored : NULL, s, 3, argv, lens);
    } else {
        const char *set[4] = { "HSET", key, b->cfg.node_id, value };
        size_t slens[4] = { 4, klen, strlen(b->cfg.node_id), strlen(value) };
        err = repl_redis_argv(b->pub, NULL, NULL, 4, set, slens);
        const char *exp[3] = { "EXPIRE", key, "60" };
        size_t elens[3] = { 6, klen, 2 };
        if (err >= 0)
            err = repl_redis_argv(b->pub, s ? on_stored : NULL, s, 3, exp, elens);
    }
    if (err < 0)
        free(s);
    return err;
}

static void on_states(repl_redis_t *rc, redisReply *r, void *arg)
{
    state_call_t *q = arg;
    const char *nodes[64], *values[64];
    int n = 0, ok = r && r->type == REDIS_REPLY_ARRAY;
    (void)rc;
    for (size_t i = 0; ok && i + 1 < r->elements && n < 64; i += 2) {
        if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i + 1]->type != REDIS_REPLY_STRING)
            continue;
        nodes[n] = r->element[i]->str;
        values[n++] = r->element[i + 1]->str;
    }
    q->cb.states(q->ctx, q->vehicle, ok, n, nodes, values);
    free(q);
}

int ovms_bus_state_get(ovms_bus_t *b, const char *vehicle, ovms_bus_states_cb cb, void *ctx)
{
    char key[120];
    size_t klen = state_key(b, vehicle, key, sizeof key);
    state_call_t *q = state_call_new(ctx, vehicle);
    if (!q)
        return OVMS_ENOMEM;
    q->cb.states = cb;
    const char *argv[2] = { "HGETALL", key };
    size_t lens[2] = { 7, klen };
    int err = repl_redis_argv(b->pub, on_states, q, 2, argv, lens);
    if (err < 0)
        free(q);
    return err;
}

/* ---- shared values (sessions) --------------------------------------------------------------------- */

typedef struct kv_call {
    ovms_bus_value_cb cb;
    void *ctx;
} kv_call_t;

static size_t kv_key(const ovms_bus_t *b, const char *key, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%s", b->cfg.prefix, key);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int ovms_bus_kv_set(ovms_bus_t *b, const char *key, const char *value, size_t len, int ttl)
{
    char k[160], t[16];
    size_t klen = kv_key(b, key, k, sizeof k);
    int tlen = snprintf(t, sizeof t, "%d", ttl);
    if (!klen)
        return OVMS_EINVAL;
    const char *argv[5] = { "SET", k, value, "EX", t };
    size_t lens[5] = { 3, klen, len, 2, (size_t)tlen };
    return repl_redis_argv(b->pub, NULL, NULL, 5, argv, lens);
}

static void on_value(repl_redis_t *rc, redisReply *r, void *arg)
{
    kv_call_t *q = arg;
    (void)rc;
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL))
        q->cb(q->ctx, 0, NULL, 0);
    else if (r->type == REDIS_REPLY_NIL)
        q->cb(q->ctx, 1, NULL, 0);
    else
        q->cb(q->ctx, 1, r->str, r->len);
    free(q);
}

int ovms_bus_kv_get(ovms_bus_t *b, const char *key, int ttl, ovms_bus_value_cb cb, void *ctx)
{
    char k[160], t[16];
    size_t klen = kv_key(b, key, k, sizeof k);
    int tlen = snprintf(t, sizeof t, "%d", ttl);
    kv_call_t *q = klen ? calloc(1, sizeof *q) : NULL;
    if (!q)
        return klen ? OVMS_ENOMEM : OVMS_EINVAL;
    q->cb = cb;
    q->ctx = ctx;
    const char *argv[4] = { ttl > 0 ? "GETEX" : "GET", k, "EX", t };
    size_t lens[4] = { ttl > 0 ? 5u : 3u, klen, 2, (size_t)tlen };
    int err = repl_redis_argv(b->pub, on_value, q, ttl > 0 ? 4 : 2, argv, lens);
    if (err < 0)
        free(q);
    return err;
}

int ovms_bus_kv_touch(ovms_bus_t *b, const char *key, int ttl)
{
    char k[160], t[16];
    size_t klen = kv_key(b, key, k, sizeof k);
    int tlen = snprintf(t, sizeof t, "%d", ttl);
    if (!klen)
        return OVMS_EINVAL;
    const char *argv[3] = { "EXPIRE", k, t };
    size_t lens[3] = { 6, klen, (size_t)tlen };
    return repl_redis_argv(b->pub, NULL, NULL, 3, argv, lens);
}

int ovms_bus_kv_del(ovms_bus_t *b, const char *key)
{
    char k[160];
    size_t klen = kv_key(b, key, k, sizeof k);
    if (!klen)
        return OVMS_EINVAL;
    const char *argv[2] = { "DEL", k };
    size_t lens[2] = { 3, klen };
    return repl_redis_argv(b->pub, NULL, NULL, 2, argv, lens);
}
