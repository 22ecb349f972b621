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
 * Every table has a fixed size (set-associative: a key may live in one of
 * WAYS slots of its set, and a new key replaces the least useful one), so
 * a flood of distinct addresses, vehicles or tokens costs no memory. Time
 * is monotonic seconds. Each table has its own mutex, held for a lookup.
 * Threading: any worker.
 */
#include "server_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAYS 4
#define ADDR_SETS 16384              /* 64 Ki addresses */
#define VEHICLE_SETS 16384           /* 64 Ki vehicles */
#define GOOD_ADDRS 4                 /* remembered good addresses per vehicle */

typedef struct addr_entry {
    uint64_t key;                    /* hash of the address; 0 = free */
    uint32_t unauth;                 /* unauthenticated connections now */
    uint32_t penalty_until;          /* monotonic seconds */
} addr_entry_t;

typedef struct vehicle_entry {
    uint64_t key;                    /* hash of the vehicle id; 0 = free */
    uint32_t penalty_until;
    uint32_t good_seen[GOOD_ADDRS];  /* when each good address last logged in */
    uint64_t good[GOOD_ADDRS];       /* address hashes */
} vehicle_entry_t;

typedef struct token_entry {
    uint64_t key;                    /* hash of (vehicle, token); 0 = free */
    uint32_t seen;
} token_entry_t;

struct guard {
    pthread_mutex_t addr_mu, vehicle_mu, token_mu;
    addr_entry_t *addrs;             /* ADDR_SETS * WAYS */
    vehicle_entry_t *vehicles;       /* VEHICLE_SETS * WAYS */
    token_entry_t *tokens;           /* ntoken_sets * WAYS */
    size_t ntoken_sets;
    int64_t unauth_total;            /* atomic */
    int64_t refused_penalty, refused_addr, refused_total, refused_vehicle, replays;  /* atomic */
};

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
    g->ntoken_sets = token_memory / WAYS ? token_memory / WAYS : 1;
    /* calloc'ed pages stay untouched (and cost nothing) until used */
    g->addrs = calloc((size_t)ADDR_SETS * WAYS, sizeof *g->addrs);
    g->vehicles = calloc((size_t)VEHICLE_SETS * WAYS, sizeof *g->vehicles);
    g->tokens = calloc(g->ntoken_sets * WAYS, sizeof *g->tokens);
    if (!g->addrs || !g->vehicles || !g->tokens) {
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
    free(g->addrs);
    free(g->vehicles);
    free(g->tokens);
    free(g);
}

/* ---- addresses ------------------------------------------------------------------------ */

/* The address's entry, or (create) a new one in place of the least useful
 * entry of its set; NULL when every slot holds live connections. Caller
 * holds addr_mu. */
static addr_entry_t *addr_find(guard_t *g, uint64_t key, uint32_t now, int create)
{
    addr_entry_t *set = &g->addrs[(key % ADDR_SETS) * WAYS], *victim = NULL;
    for (int i = 0; i < WAYS; i++)
        if (set[i].key == key)
            return &set[i];
    if (!create)
        return NULL;
    for (int i = 0; i < WAYS; i++) {
        addr_entry_t *e = &set[i];
        if (e->unauth)
            continue;                /* its count must survive until released */
        if (!victim || e->penalty_until < victim->penalty_until)
            victim = e;              /* a free slot or an expired penalty first */
    }
    if (victim) {
        if (victim->penalty_until > now && victim->key)
            return NULL;             /* every slot holds a live penalty: keep them */
        memset(victim, 0, sizeof *victim);
        victim->key = key;
    }
    return victim;
}

int guard_accept(guard_t *g, const ovms_config_t *cfg, const peer_t *p, int *counted)
{
    uint32_t now = mono_now();
    uint64_t key = addr_key(p);
    int rc = GUARD_OK;

    *counted = 0;
    pthread_mutex_lock(&g->addr_mu);
    addr_entry_t *e = addr_find(g, key, now, 1);
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
    addr_entry_t *e = addr_find(g, addr_key(p), 0, 0);
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

static vehicle_entry_t *vehicle_find(guard_t *g, uint64_t key, int create)
{
    vehicle_entry_t *set = &g->vehicles[(key % VEHICLE_SETS) * WAYS], *victim = NULL;
    uint32_t victim_age = 0;
    for (int i = 0; i < WAYS; i++)
        if (set[i].key == key)
            return &set[i];
    if (!create)
        return NULL;
    /* a free slot, else the entry with the oldest activity */
    for (int i = 0; i < WAYS; i++) {
        if (!set[i].key) {
            victim = &set[i];
            break;
        }
        uint32_t latest = set[i].penalty_until;
        for (int k = 0; k < GOOD_ADDRS; k++)
            latest = set[i].good_seen[k] > latest ? set[i].good_seen[k] : latest;
        if (!victim || latest < victim_age) {
            victim = &set[i];
            victim_age = latest;
        }
    }
    memset(victim, 0, sizeof *victim);
    victim->key = key;
    return victim;
}

static int knows_address(const vehicle_entry_t *v, uint64_t addr)
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
    vehicle_entry_t *v = vehicle_find(g, nonzero(hash_str(vehicle)), 0);
    if (v && v->penalty_until > now &&
        v->penalty_until - now > (uint32_t)cfg->vehicle_penalty_threshold)
        allowed = knows_address(v, addr_key(p));
    pthread_mutex_unlock(&g->vehicle_mu);
    if (!allowed)
        __atomic_add_fetch(&g->refused_vehicle, 1, __ATOMIC_RELAXED);
    return allowed;
}

void guard_failure(guard_t *g, const ovms_config_t *cfg, const peer_t *p, const char *vehicle)
{
    uint32_t now = mono_now();
    pthread_mutex_lock(&g->addr_mu);
    addr_entry_t *e = addr_find(g, addr_key(p), now, 1);
    if (e)
        add_penalty(&e->penalty_until, now, cfg->login_penalty, cfg->login_penalty_max);
    pthread_mutex_unlock(&g->addr_mu);
    if (!vehicle)
        return;
    pthread_mutex_lock(&g->vehicle_mu);
    vehicle_entry_t *v = vehicle_find(g, nonzero(hash_str(vehicle)), 1);
    add_penalty(&v->penalty_until, now, cfg->vehicle_penalty, cfg->login_penalty_max);
    pthread_mutex_unlock(&g->vehicle_mu);
}

void guard_success(guard_t *g, const peer_t *p, const char *vehicle)
{
    uint32_t now = mono_now();
    uint64_t addr = addr_key(p);
    pthread_mutex_lock(&g->vehicle_mu);
    vehicle_entry_t *v = vehicle_find(g, nonzero(hash_str(vehicle)), 1);
    int slot = 0;
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
    token_entry_t *set = &g->tokens[(key % g->ntoken_sets) * WAYS], *oldest = &set[0];
    int fresh = 1;

    pthread_mutex_lock(&g->token_mu);
    for (int i = 0; i < WAYS; i++) {
        if (set[i].key == key) {
            fresh = 0;
            break;
        }
        if (set[i].seen < oldest->seen)
            oldest = &set[i];
    }
    if (fresh) {
        oldest->key = key;
        oldest->seen = mono_now();
    }
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
