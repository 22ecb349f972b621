/*
 * guard.c -- who may try to log in: admission control before and during
 * the welcome, shared by every worker (PROTOCOL 2 says nothing of it; the
 * decisions are in docs/operations.md and docs/protocol-notes.md).
 *
 *  - Unauthenticated connections are counted per source address and in
 *    total. Past max_unauthenticated_per_address an address's new
 *    connection is closed at accept; past max_unauthenticated anyone's is.
 *    Past half of the total the node is "under pressure" and welcomes time
 *    out after welcome_under_pressure seconds instead of 30, so a flood of
 *    half-finished handshakes cannot hold the slots that real logins need.
 *  - Failed logins (wrong digest or password, unknown vehicle or owner, a
 *    replayed token) add login_penalty seconds to their address's penalty,
 *    capped at login_penalty_max; while the penalty left is above
 *    login_penalty_threshold, the address's connections are closed at
 *    accept, unread (OpenSSH's PerSourcePenalties). Sustained guessing from
 *    one address is thereby held to one attempt per login_penalty seconds;
 *    successful logins never add to it, so a car that reconnects often is
 *    never penalized.
 *  - Failed logins also count against the vehicle. While a vehicle's
 *    penalty is above vehicle_login_penalty_threshold (guessing from many
 *    addresses), only addresses that logged in to it successfully before
 *    are still checked; others are refused unchecked, so its real car and
 *    apps keep working.
 *  - Client tokens of successful scheme 0 logins are remembered per
 *    vehicle (token_memory entries); the same token again is a replayed
 *    welcome and is refused (token_replay = 0 turns this off).
 *
 * Every table is bounded (set-associative: a key may live in one of WAYS
 * slots of its set, and a new key replaces the least useful one), so a
 * flood of distinct addresses, vehicles or tokens costs no more memory
 * than the bound; below it a table grows with what it tracks. Time
 * is monotonic seconds. Each table has its own mutex, held for a lookup.
 * Threading: any worker.
 */
#include "server_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAYS 4
#define FIRST_SETS 256               /* tables start at 1 Ki entries and double */
#define ADDR_MAX 65536               /* source addresses tracked */
#define VEHICLE_MAX 65536            /* vehicles tracked */
#define GOOD_ADDRS 4                 /* remembered good addresses per vehicle */

typedef struct addr_entry {
    uint64_t key;                    /* hash of the address; 0 = free */
    uint32_t unauth;                 /* unauthenticated connections now */
    uint32_t penalty_until;          /* monotonic seconds */
} addr_entry_t;

/* 48 bytes a vehicle; a good address is a 32-bit fingerprint (a false
 * match is about one in a billion per login). */
typedef struct vehicle_entry {
    uint64_t key;                    /* hash of the vehicle id; 0 = free */
    uint32_t penalty_until;
    uint32_t good_seen[GOOD_ADDRS];  /* when each good address last logged in */
    uint32_t good[GOOD_ADDRS];       /* address fingerprints */
} vehicle_entry_t;

typedef struct token_entry {
    uint64_t key;                    /* hash of (vehicle, token); 0 = free */
    uint32_t seen;
} token_entry_t;

/* ---- a set-associative table that grows ------------------------------------------------ *
 * A key lives in one of the WAYS slots of set key & (nsets - 1). A new key
 * takes a free slot or the least worth one of its set; the table doubles
 * (up to max_sets) when three quarters full, so memory follows what is
 * tracked. Doubling splits each set in two, so rehashing never overflows. */

typedef struct assoc {
    uint8_t *slot;
    size_t size;                     /* of an entry; the uint64_t key comes first */
    size_t nsets, max_sets, count;
    /* what losing the entry would cost; PINNED: it must stay */
    uint64_t (*worth)(const void *entry, uint32_t now);
} assoc_t;

#define PINNED UINT64_MAX

static uint64_t key_of(const void *e)
{
    return *(const uint64_t *)e;
}

static void *entry_at(const assoc_t *t, size_t set, int way)
{
    return t->slot + (set * WAYS + (size_t)way) * t->size;
}

static int assoc_init(assoc_t *t, size_t size, size_t max_entries,
                      uint64_t (*worth)(const void *, uint32_t))
{
    t->size = size;
    t->nsets = FIRST_SETS;
    t->max_sets = FIRST_SETS;
    while (t->max_sets * WAYS < max_entries)
        t->max_sets *= 2;
    t->count = 0;
    t->worth = worth;
    t->slot = calloc(t->nsets * WAYS, size);
    return t->slot ? 0 : OVMS_ENOMEM;
}

static void *assoc_find(const assoc_t *t, uint64_t key)
{
    size_t set = key & (t->nsets - 1);
    for (int i = 0; i < WAYS; i++) {
        void *e = entry_at(t, set, i);
        if (key_of(e) == key)
            return e;
    }
    return NULL;
}

static void assoc_grow(assoc_t *t)
{
    assoc_t bigger = *t;
    bigger.nsets = t->nsets * 2;
    if (!(bigger.slot = calloc(bigger.nsets * WAYS, t->size)))
        return;                      /* stay as large as it is */
    for (size_t set = 0; set < t->nsets; set++)
        for (int i = 0; i < WAYS; i++) {
            void *e = entry_at(t, set, i);
            if (!key_of(e))
                continue;
            size_t to = key_of(e) & (bigger.nsets - 1);
            for (int k = 0; k < WAYS; k++)
                if (!key_of(entry_at(&bigger, to, k))) {
                    memcpy(entry_at(&bigger, to, k), e, t->size);
                    break;
                }
        }
    free(t->slot);
    *t = bigger;
}

/* The key's entry, or a fresh one (zeroed but for the key) in place of the
 * least worth entry of its set; NULL when all of them are pinned, or (keep)
 * when even the least worth one is worth keeping now. */
static void *assoc_insert(assoc_t *t, uint64_t key, uint32_t now, int keep)
{
    void *e = assoc_find(t, key), *victim = NULL;
    uint64_t victim_worth = PINNED;
    if (e)
        return e;
    if (t->count * 4 >= t->nsets * WAYS * 3 && t->nsets < t->max_sets)
        assoc_grow(t);
    size_t set = key & (t->nsets - 1);
    for (int i = 0; i < WAYS; i++) {
        void *c = entry_at(t, set, i);
        uint64_t w = key_of(c) ? t->worth(c, now) : 0;
        if (w < victim_worth || (!victim && w != PINNED)) {
            victim = c;
            victim_worth = w;
        }
    }
    if (!victim || (keep && key_of(victim) && victim_worth > now))
        return NULL;
    if (!key_of(victim))
        t->count++;
    memset(victim, 0, t->size);
    *(uint64_t *)victim = key;
    return victim;
}

/* ---- the guard -------------------------------------------------------------------------- */

struct guard {
    pthread_mutex_t addr_mu, vehicle_mu, token_mu;
    assoc_t addrs, vehicles, tokens;
    int64_t unauth_total;            /* atomic */
    int64_t refused_penalty, refused_addr, refused_total, refused_vehicle, replays;  /* atomic */
};

static uint64_t addr_worth(const void *entry, uint32_t now)
{
    const addr_entry_t *e = entry;
    (void)now;
    return e->unauth ? PINNED : e->penalty_until;    /* its count must survive until released */
}

static uint64_t vehicle_worth(const void *entry, uint32_t now)
{
    const vehicle_entry_t *v = entry;
    uint32_t latest = v->penalty_until;
    (void)now;
    for (int k = 0; k < GOOD_ADDRS; k++)
        latest = v->good_seen[k] > latest ? v->good_seen[k] : latest;
    return latest;
}

static uint64_t token_worth(const void *entry, uint32_t now)
{
    (void)now;
    return ((const token_entry_t *)entry)->seen;
}

static uint32_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)ts.tv_sec + 1;  /* never 0: 0 means "no penalty" */
}

static uint64_t nonzero(uint64_t h)
{
    return h ? h : 1;
}

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211u;
    }
    return h;
}

static uint64_t addr_key(const peer_t *p)
{
    uint64_t h = hash_bytes(&p->family, 1, 1469598103934665603u);
    return nonzero(hash_u64(hash_bytes(p->addr, p->family == 4 ? 4 : 16, h)));
}

guard_t *guard_new(size_t token_memory)
{
    guard_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    if (assoc_init(&g->addrs, sizeof(addr_entry_t), ADDR_MAX, addr_worth) < 0 ||
        assoc_init(&g->vehicles, sizeof(vehicle_entry_t), VEHICLE_MAX, vehicle_worth) < 0 ||
        assoc_init(&g->tokens, sizeof(token_entry_t), token_memory, token_worth) < 0) {
        guard_free(g);
        return NULL;
    }
    pthread_mutex_init(&g->addr_mu, NULL);
    pthread_mutex_init(&g->vehicle_mu, NULL);
    pthread_mutex_init(&g->token_mu, NULL);
    return g;
}

void guard_free(guard_t *g)
{
    if (!g)
        return;
    free(g->addrs.slot);
    free(g->vehicles.slot);
    free(g->tokens.slot);
    free(g);
}

/* ---- addresses ------------------------------------------------------------------------ */

int guard_accept(guard_t *g, const ovms_config_t *cfg, const peer_t *p, int *counted)
{
    uint32_t now = mono_now();
    int rc = GUARD_OK;

    *counted = 0;
    pthread_mutex_lock(&g->addr_mu);
    addr_entry_t *e = assoc_insert(&g->addrs, addr_key(p), now, 1);
    if (e && e->penalty_until > now &&
        e->penalty_until - now > (uint32_t)cfg->login_penalty_threshold)
        rc = GUARD_PENALIZED;
    else if (e && e->unauth >= (uint32_t)cfg->max_unauth_per_address)
        rc = GUARD_ADDRESS_FULL;
    else if (__atomic_load_n(&g->unauth_total, __ATOMIC_RELAXED) >= cfg->max_unauth)
        rc = GUARD_TOTAL_FULL;
    if (rc == GUARD_OK && e) {
        e->unauth++;
        *counted = 1;
    }
    pthread_mutex_unlock(&g->addr_mu);
    if (rc == GUARD_OK)
        __atomic_add_fetch(&g->unauth_total, 1, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(rc == GUARD_PENALIZED ? &g->refused_penalty
                           : rc == GUARD_ADDRESS_FULL ? &g->refused_addr : &g->refused_total,
                           1, __ATOMIC_RELAXED);
    return rc;
}

void guard_release(guard_t *g, const peer_t *p, int counted)
{
    __atomic_sub_fetch(&g->unauth_total, 1, __ATOMIC_RELAXED);
    if (!counted)
        return;
    pthread_mutex_lock(&g->addr_mu);
    addr_entry_t *e = assoc_find(&g->addrs, addr_key(p));
    if (e && e->unauth)
        e->unauth--;
    pthread_mutex_unlock(&g->addr_mu);
}

int guard_under_pressure(guard_t *g, const ovms_config_t *cfg)
{
    return __atomic_load_n(&g->unauth_total, __ATOMIC_RELAXED) * 2 > cfg->max_unauth;
}

/* penalty_until += per failure (from now if it had run out), at most max ahead. */
static void add_penalty(uint32_t *until, uint32_t now, int per, int max)
{
    uint32_t from = *until > now ? *until : now;
    uint32_t next = from + (uint32_t)per;
    *until = next - now > (uint32_t)max ? now + (uint32_t)max : next;
}

/* ---- vehicles -------------------------------------------------------------------------- */

static uint32_t fingerprint(uint64_t h)
{
    uint32_t f = (uint32_t)(h ^ (h >> 32));
    return f ? f : 1;
}

static int knows_address(const vehicle_entry_t *v, uint32_t addr)
{
    for (int k = 0; k < GOOD_ADDRS; k++)
        if (v->good[k] == addr)
            return 1;
    return 0;
}

int guard_vehicle_allows(guard_t *g, const ovms_config_t *cfg, const peer_t *p, const char *vehicle)
{
    uint32_t now = mono_now();
    int allowed = 1;
    pthread_mutex_lock(&g->vehicle_mu);
    vehicle_entry_t *v = assoc_find(&g->vehicles, nonzero(hash_str(vehicle)));
    if (v && v->penalty_until > now &&
        v->penalty_until - now > (uint32_t)cfg->vehicle_penalty_threshold)
        allowed = knows_address(v, fingerprint(addr_key(p)));
    pthread_mutex_unlock(&g->vehicle_mu);
    if (!allowed)
        __atomic_add_fetch(&g->refused_vehicle, 1, __ATOMIC_RELAXED);
    return allowed;
}

void guard_failure(guard_t *g, const ovms_config_t *cfg, const peer_t *p, const char *vehicle)
{
    uint32_t now = mono_now();
    pthread_mutex_lock(&g->addr_mu);
    addr_entry_t *e = assoc_insert(&g->addrs, addr_key(p), now, 1);
    if (e)
        add_penalty(&e->penalty_until, now, cfg->login_penalty, cfg->login_penalty_max);
    pthread_mutex_unlock(&g->addr_mu);
    if (!vehicle)
        return;
    pthread_mutex_lock(&g->vehicle_mu);
    vehicle_entry_t *v = assoc_insert(&g->vehicles, nonzero(hash_str(vehicle)), now, 0);
    if (v)
        add_penalty(&v->penalty_until, now, cfg->vehicle_penalty, cfg->login_penalty_max);
    pthread_mutex_unlock(&g->vehicle_mu);
}

void guard_success(guard_t *g, const peer_t *p, const char *vehicle)
{
    uint32_t now = mono_now();
    uint32_t addr = fingerprint(addr_key(p));
    pthread_mutex_lock(&g->vehicle_mu);
    vehicle_entry_t *v = assoc_insert(&g->vehicles, nonzero(hash_str(vehicle)), now, 0);
    int slot = 0;
    if (!v) {
        pthread_mutex_unlock(&g->vehicle_mu);
        return;
    }
    for (int k = 0; k < GOOD_ADDRS; k++) {
        if (v->good[k] == addr) {
            slot = k;
            break;
        }
        if (v->good_seen[k] < v->good_seen[slot])
            slot = k;                /* otherwise the one seen longest ago */
    }
    v->good[slot] = addr;
    v->good_seen[slot] = now;
    pthread_mutex_unlock(&g->vehicle_mu);
}

/* ---- client tokens ------------------------------------------------------------------------ */

int guard_token_fresh(guard_t *g, const char *vehicle, const char *token)
{
    uint64_t key = nonzero(hash_u64(hash_bytes(token, strlen(token), hash_str(vehicle))));
    int fresh;

    pthread_mutex_lock(&g->token_mu);
    fresh = assoc_find(&g->tokens, key) == NULL;
    token_entry_t *t = fresh ? assoc_insert(&g->tokens, key, 0, 0) : NULL;
    if (t)
        t->seen = mono_now();        /* the oldest token of its set gave way */
    pthread_mutex_unlock(&g->token_mu);
    if (!fresh)
        __atomic_add_fetch(&g->replays, 1, __ATOMIC_RELAXED);
    return fresh;
}

void guard_stats(guard_t *g, guard_stats_t *out)
{
    out->unauthenticated = __atomic_load_n(&g->unauth_total, __ATOMIC_RELAXED);
    out->refused_penalty = __atomic_load_n(&g->refused_penalty, __ATOMIC_RELAXED);
    out->refused_address = __atomic_load_n(&g->refused_addr, __ATOMIC_RELAXED);
    out->refused_total = __atomic_load_n(&g->refused_total, __ATOMIC_RELAXED);
    out->refused_vehicle = __atomic_load_n(&g->refused_vehicle, __ATOMIC_RELAXED);
    out->replays = __atomic_load_n(&g->replays, __ATOMIC_RELAXED);
}
