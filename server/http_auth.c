/*
 * http_auth.c -- who is asking (HTTP-API.md §3) and how often (§4): the
 * node's HTTP sessions, the rate limit per client address, and the check
 * of credentials.
 *
 * All three are node-wide: a client's consecutive requests may land on any
 * worker (SO_REUSEPORT), so the tables sit behind one mutex, held only for
 * a lookup or an update. Every table is bounded: a flood of new addresses,
 * sessions or passwords cannot grow them past their caps.
 *
 * Passwords are PBKDF2 hashes, tens of milliseconds of CPU each: the check
 * runs on libuv's thread pool, never on the loop (the reference re-hashes on
 * its one thread for every cookieless request, §14 S8), and a verified
 * (name, password) pair is remembered for VERIFIED_SECONDS by its SHA-256, so
 * a script polling with its password in the URL costs one hash per interval.
 * An unknown name is checked against a dummy hash all the same, so the time
 * to the answer does not tell which names exist.
 *
 * In a cluster (with Redis) a session is valid on every node (§3.4): it is
 * also kept in Redis as "<prefix>s:<id>" = "owner\npermit" with the
 * timeout as its lifetime. A node that does not know a cookie asks Redis
 * (GETEX, which also slides the lifetime there), and a node's own copy is
 * believed for SESSION_RECHECK seconds before Redis is asked again, so a
 * session ended on one node ends on the others within that. While Redis is
 * away, the copies a node has go on working.
 */
#include "http_auth.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SESSIONS_MAX 100000
#define LIMITS_MAX 100000
#define VERIFIED_MAX 10000
#define VERIFIED_SECONDS 10

#define SESSION_RECHECK 5

typedef struct session {
    char id[37];
    char owner[65];
    char permit[256];
    int64_t expires;                 /* unix seconds; sliding */
    int64_t checked;                 /* when Redis last said it exists (or we made it) */
    int64_t touched;                 /* when its Redis lifetime was last renewed */
} session_t;

typedef struct limit {
    peer_t addr;                     /* port 0 */
    int quota;
    int64_t expires;
    int held;                        /* refused requests being held (§4: at most 8) */
} limit_t;

typedef struct verified {
    uint8_t digest[32];              /* SHA-256 of name NUL password */
    char owner[65];
    int64_t expires;
} verified_t;

struct http_state {
    pthread_mutex_t mu;
    table_t sessions, limits, verified;
    int64_t next_refill;
};

static uint64_t session_hash(const void *item) { return hash_str(((const session_t *)item)->id); }
static int session_match(const void *item, const void *key) { return !strcmp(((const session_t *)item)->id, key); }

static uint64_t addr_hash(const peer_t *p)
{
    uint64_t h = p->family;
    for (int i = 0; i < 16; i += 8) {
        uint64_t x;
        memcpy(&x, p->addr + i, 8);
        h = hash_u64(h ^ x);
    }
    return h;
}
static uint64_t limit_hash(const void *item) { return addr_hash(&((const limit_t *)item)->addr); }
static int limit_match(const void *item, const void *key)
{
    return !memcmp(&((const limit_t *)item)->addr, key, sizeof(peer_t));
}

static uint64_t verified_hash(const void *item)
{
    uint64_t h;
    memcpy(&h, ((const verified_t *)item)->digest, 8);
    return h;
}
static int verified_match(const void *item, const void *key) { return !memcmp(((const verified_t *)item)->digest, key, 32); }

int http_state_init(server_t *srv)
{
    http_state_t *st = calloc(1, sizeof *st);
    if (!st)
        return -1;
    pthread_mutex_init(&st->mu, NULL);
    st->sessions.hash_item = session_hash;
    st->limits.hash_item = limit_hash;
    st->verified.hash_item = verified_hash;
    st->next_refill = wall_now() + 60;
    srv->http = st;
    return 0;
}

static void table_drain(table_t *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slot[i]);
    table_free(t);
}

void http_state_free(server_t *srv)
{
    http_state_t *st = srv->http;
    if (!st)
        return;
    table_drain(&st->sessions);
    table_drain(&st->limits);
    table_drain(&st->verified);
    pthread_mutex_destroy(&st->mu);
    free(st);
    srv->http = NULL;
}

/* Items for which gone(item, now) holds, out of t (collected first: removal
 * moves later entries back). */
static void *table_prune(table_t *t, int (*gone)(void *item, int64_t now, const ovms_config_t *cfg),
                         int64_t now, const ovms_config_t *cfg, int keep, size_t *nkept)
{
    size_t n = 0;
    void **dead = malloc((t->count ? t->count : 1) * sizeof *dead);
    if (!dead)
        return NULL;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slot[i] && gone(t->slot[i], now, cfg))
            dead[n++] = t->slot[i];
    for (size_t i = 0; i < n; i++) {
        table_remove(t, dead[i]);
        if (!keep)
            free(dead[i]);
    }
    if (nkept)
        *nkept = n;
    if (keep)
        return dead;                     /* the caller frees them, and the list */
    free(dead);
    return NULL;
}

/* ---- sessions that end: their app entries go on every worker (§3.4) ---- */

typedef struct forget_call {
    call_t call;
    int n;
    char keys[][72];
} forget_call_t;

static void forget_run(worker_t *w, call_t *m)
{
    forget_call_t *f = (forget_call_t *)m;
    const char **ptrs = w ? malloc((size_t)f->n * sizeof *ptrs) : NULL;
    for (int i = 0; ptrs && i < f->n; i++)
        ptrs[i] = f->keys[i];
    if (ptrs)
        hub_http_forget(w, ptrs, f->n);
    free(ptrs);
    free(f);
}

static void broadcast_forget(server_t *srv, char (*keys)[72], int n)
{
    for (int i = 0; n > 0 && i < srv->nworkers; i++) {
        forget_call_t *f = malloc(sizeof *f + (size_t)n * sizeof f->keys[0]);
        if (!f)
            continue;
        f->call.mail.type = MAIL_CALL;
        f->call.run = forget_run;
        f->n = n;
        memcpy(f->keys, keys, (size_t)n * sizeof f->keys[0]);
        if (worker_post(&srv->workers[i], &f->call.mail) < 0)
            free(f);
    }
}

static int session_gone(void *item, int64_t now, const ovms_config_t *cfg)
{
    (void)cfg;
    return ((session_t *)item)->expires <= now;
}

static int verified_gone(void *item, int64_t now, const ovms_config_t *cfg)
{
    (void)cfg;
    return ((verified_t *)item)->expires <= now;
}

/* Once a minute: forget quiet addresses, and give the others their minute's share. */
static int limit_refill(void *item, int64_t now, const ovms_config_t *cfg)
{
    limit_t *l = item;
    if (l->expires <= now)
        return 1;
    l->quota = l->quota + cfg->rl_permin > cfg->rl_max ? cfg->rl_max : l->quota + cfg->rl_permin;
    return 0;
}

void http_state_tick(server_t *srv, const ovms_config_t *cfg)
{
    http_state_t *st = srv->http;
    int64_t now = wall_now();
    size_t n = 0;
    pthread_mutex_lock(&st->mu);
    session_t **ended = table_prune(&st->sessions, session_gone, now, cfg, 1, &n);
    table_prune(&st->verified, verified_gone, now, cfg, 0, NULL);
    if (now >= st->next_refill) {
        table_prune(&st->limits, limit_refill, now, cfg, 0, NULL);
        st->next_refill = now + 60;
    }
    pthread_mutex_unlock(&st->mu);
    char (*keys)[72] = n ? malloc(n * sizeof *keys) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (keys)
            snprintf(keys[i], sizeof keys[i], "s:%s", ended[i]->id);
        free(ended[i]);
    }
    if (keys)
        broadcast_forget(srv, keys, (int)n);
    free(keys);
    free(ended);
}

#define HELD_MAX 8                   /* refused requests held per address (§4) */

/* ---- the rate limit (§4) ------------------------------------------------------------------------ */

int http_addr_listed(const char *list, const peer_t *p)
{
    char addr[64], copy[512], *save = NULL;
    peer_addr_text(p, addr, sizeof addr);
    snprintf(copy, sizeof copy, "%s", list);
    for (char *tok = strtok_r(copy, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save))
        if (!strcasecmp(tok, addr))
            return 1;
    return 0;
}

static int exempt(const ovms_config_t *cfg, const peer_t *p)
{
    return http_addr_listed(cfg->rl_exempt, p);
}

int http_rate_hold(server_t *srv, const peer_t *from, int delta)
{
    http_state_t *st = srv->http;
    peer_t key = *from;
    key.port = 0;
    int ok = 0;
    pthread_mutex_lock(&st->mu);
    limit_t *l = table_find(&st->limits, addr_hash(&key), limit_match, &key);
    if (l && (delta < 0 || l->held < HELD_MAX)) {
        l->held += delta;
        if (l->held < 0)
            l->held = 0;
        ok = 1;
    }
    pthread_mutex_unlock(&st->mu);
    return ok;
}

int http_rate_allows(server_t *srv, const ovms_config_t *cfg, const peer_t *from)
{
    if (exempt(cfg, from))
        return 1;
    http_state_t *st = srv->http;
    peer_t key = *from;
    key.port = 0;
    int64_t now = wall_now();
    int ok;
    pthread_mutex_lock(&st->mu);
    limit_t *l = table_find(&st->limits, addr_hash(&key), limit_match, &key);
    if (!l) {
        /* the first request passes with a full burst; past the cap, strangers wait */
        ok = st->limits.count < LIMITS_MAX && (l = calloc(1, sizeof *l)) != NULL;
        if (ok) {
            l->addr = key;
            l->quota = cfg->rl_burst;
            if (table_insert(&st->limits, l) < 0) {
                free(l);
                l = NULL;
            }
        }
    } else {
        l->quota = l->quota > 0 ? l->quota - 1 : 0;
        ok = l->quota > 0;
    }
    if (l)
        l->expires = now + cfg->rl_expire;
    pthread_mutex_unlock(&st->mu);
    return ok;
}

/* ---- sessions (§3.4) ------------------------------------------------------------------------------ */

static void session_key(const char *id, char key[48])
{
    snprintf(key, 48, "s:%s", id);
}

/* Insert or refresh our copy; -1 when the table is full. */
static int session_put(server_t *srv, const ovms_config_t *cfg, const char *id, const char *owner,
                       const char *permit)
{
    http_state_t *st = srv->http;
    int64_t now = wall_now();
    int rc = 0;
    pthread_mutex_lock(&st->mu);
    session_t *s = table_find(&st->sessions, hash_str(id), session_match, id);
    if (!s && st->sessions.count < SESSIONS_MAX && (s = calloc(1, sizeof *s))) {
        snprintf(s->id, sizeof s->id, "%s", id);
        if (table_insert(&st->sessions, s) < 0) {
            free(s);
            s = NULL;
        }
    }
    if (s) {
        snprintf(s->owner, sizeof s->owner, "%s", owner);
        snprintf(s->permit, sizeof s->permit, "%s", permit);
        s->expires = now + cfg->timeout_api;
        s->checked = s->touched = now;
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int http_session_new(worker_t *w, const char *owner, const char *permit, char id[37])
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);     /* UUID version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(id, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    if (session_put(w->srv, w->cfg, id, owner, permit) < 0)
        return -1;
    if (w->bus) {
        char key[48], value[340];
        session_key(id, key);
        int n = snprintf(value, sizeof value, "%s\n%s", owner, permit);
        ovms_bus_kv_set(w->bus, key, value, (size_t)n, w->cfg->timeout_api);
    }
    return 0;
}

static void who_of(const session_t *s, http_who_t *who)
{
    snprintf(who->owner, sizeof who->owner, "%s", s->owner);
    snprintf(who->permit, sizeof who->permit, "%s", s->permit);
    snprintf(who->session, sizeof who->session, "%s", s->id);
}

int http_session_use(worker_t *w, const char *id, http_who_t *who)
{
    http_state_t *st = w->srv->http;
    int64_t now = wall_now();
    int found = w->bus ? 2 : 0, touch = 0;
    pthread_mutex_lock(&st->mu);
    session_t *s = table_find(&st->sessions, hash_str(id), session_match, id);
    if (s && s->expires > now && (!w->bus || now - s->checked < SESSION_RECHECK)) {
        s->expires = now + w->cfg->timeout_api;  /* sliding (a deviation: §3.4, F7) */
        who_of(s, who);
        if (w->bus && now - s->touched >= w->cfg->timeout_api / 4) {
            s->touched = now;
            touch = 1;
        }
        found = 1;
    }
    pthread_mutex_unlock(&st->mu);
    if (touch) {
        char key[48];
        session_key(id, key);
        ovms_bus_kv_touch(w->bus, key, w->cfg->timeout_api);
    }
    return found;
}

typedef struct fetch {
    worker_t *w;
    char id[37];
    http_who_t *who;
    void (*done)(void *arg, int found);
    void *arg;
} fetch_t;

/* Our copy, while Redis cannot say: 1 when it exists. */
static int session_local(worker_t *w, const char *id, http_who_t *who)
{
    http_state_t *st = w->srv->http;
    int64_t now = wall_now();
    int found = 0;
    pthread_mutex_lock(&st->mu);
    session_t *s = table_find(&st->sessions, hash_str(id), session_match, id);
    if (s && s->expires > now) {
        s->expires = now + w->cfg->timeout_api;
        who_of(s, who);
        found = 1;
    }
    pthread_mutex_unlock(&st->mu);
    return found;
}

static void forget_local(server_t *srv, const char *id);

static void fetched(void *ctx, int ok, const char *value, size_t len)
{
    fetch_t *f = ctx;
    int found = 0;
    const char *nl = value ? memchr(value, '\n', len) : NULL;
    if (!ok) {
        found = session_local(f->w, f->id, f->who);
    } else if (nl && (size_t)(nl - value) < sizeof f->who->owner && len - (size_t)(nl - value) - 1 < sizeof f->who->permit) {
        snprintf(f->who->owner, sizeof f->who->owner, "%.*s", (int)(nl - value), value);
        snprintf(f->who->permit, sizeof f->who->permit, "%.*s", (int)(len - (size_t)(nl - value) - 1), nl + 1);
        snprintf(f->who->session, sizeof f->who->session, "%s", f->id);
        found = session_put(f->w->srv, f->w->cfg, f->id, f->who->owner, f->who->permit) == 0;
    } else {
        forget_local(f->w->srv, f->id);  /* ended elsewhere (or never was) */
    }
    f->done(f->arg, found);
    free(f);
}

void http_session_fetch(worker_t *w, const char *id, http_who_t *who, void (*done)(void *arg, int found),
                        void *arg)
{
    char key[48];
    fetch_t *f = calloc(1, sizeof *f);
    if (!f) {
        done(arg, session_local(w, id, who));
        return;
    }
    f->w = w;
    snprintf(f->id, sizeof f->id, "%s", id);
    f->who = who;
    f->done = done;
    f->arg = arg;
    session_key(id, key);
    if (!w->bus || ovms_bus_kv_get(w->bus, key, w->cfg->timeout_api, fetched, f) < 0)
        fetched(f, 0, NULL, 0);          /* Redis is away: what we have */
}

static void forget_local(server_t *srv, const char *id)
{
    http_state_t *st = srv->http;
    pthread_mutex_lock(&st->mu);
    session_t *s = table_find(&st->sessions, hash_str(id), session_match, id);
    if (s)
        table_remove(&st->sessions, s);
    pthread_mutex_unlock(&st->mu);
    if (s) {
        char key[1][72];
        snprintf(key[0], sizeof key[0], "s:%s", s->id);
        broadcast_forget(srv, key, 1);
    }
    free(s);
}

void http_session_delete(worker_t *w, const char *id)
{
    forget_local(w->srv, id);
    if (w->bus) {
        char key[48];
        session_key(id, key);
        ovms_bus_kv_del(w->bus, key);
    }
}

/* ---- permissions (§3.3) ---------------------------------------------------------------------------- */

/* fn(right, arg) for each right of a comma-separated list, blanks around it
 * trimmed, empty ones skipped; the first nonzero fn returns ends it. */
static int each_right(const char *permit, int (*fn)(const char *right, const void *arg), const void *arg)
{
    char list[256], *save = NULL;
    snprintf(list, sizeof list, "%s", permit);
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            tok[--n] = '\0';
        int rc = n ? fn(tok, arg) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

static int grants(const char *have, const void *right)
{
    return !strcmp(have, "*") || !strcasecmp(have, right);
}

int http_permits(const char *permit, const char *right)
{
    return each_right(permit, grants, right);
}

static int not_granted(const char *want, const void *have)
{
    return !http_permits(have, want);
}

int http_permits_all(const char *have, const char *want)
{
    return !each_right(want, not_granted, have);
}

/* ---- API tokens ---------------------------------------------------------------------------------- */

int http_token_login(worker_t *w, const char *user, const char *secret, char owner[65],
                     char permit[256])
{
    ovms_token_t t;
    if (!ovms_token_valid(secret) || ovms_store_token_find(w->srv->store, secret, &t) < 0 ||
        (user && strcmp(user, t.owner_name) != 0))
        return 0;
    snprintf(owner, 65, "%s", t.owner_name);
    snprintf(permit, 256, "%s", t.permit);
    if (t.touch) {                   /* lastused, at most once a minute: nobody waits for it */
        sreq_t *r = sreq_new(w, NULL, NULL, NULL);
        if (r && ovms_store_prep_token_used(&r->req, t.hash, wall_now()) == 0) {
            ovms_store_req_lazy(&r->req, 1000);
            sreq_submit(r);
        } else if (r) {
            sreq_free(r);
        }
    }
    return 1;
}

/* ---- checking a password ----------------------------------------------------------------------------- */

static void credential_digest(const char *user, const char *password, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, user, strlen(user) + 1) != 1 ||
        EVP_DigestUpdate(ctx, password, strlen(password)) != 1 || EVP_DigestFinal_ex(ctx, out, &len) != 1)
        memset(out, 0, 32);
    EVP_MD_CTX_free(ctx);
}

static int verified_lookup(server_t *srv, const uint8_t digest[32], char owner[65])
{
    http_state_t *st = srv->http;
    int found = 0;
    pthread_mutex_lock(&st->mu);
    uint64_t h;
    memcpy(&h, digest, 8);
    verified_t *v = table_find(&st->verified, h, verified_match, digest);
    if (v && v->expires > wall_now()) {
        memcpy(owner, v->owner, 65);
        found = 1;
    }
    pthread_mutex_unlock(&st->mu);
    return found;
}

static void verified_remember(server_t *srv, const uint8_t digest[32], const char *owner)
{
    http_state_t *st = srv->http;
    verified_t *v = calloc(1, sizeof *v);
    if (!v)
        return;
    memcpy(v->digest, digest, 32);
    snprintf(v->owner, sizeof v->owner, "%s", owner);
    v->expires = wall_now() + VERIFIED_SECONDS;
    pthread_mutex_lock(&st->mu);
    verified_t *old = table_find(&st->verified, verified_hash(v), verified_match, digest);
    if (old)
        table_remove(&st->verified, old);
    int rc = st->verified.count < VERIFIED_MAX ? table_insert(&st->verified, v) : -1;
    pthread_mutex_unlock(&st->mu);
    free(old);
    if (rc < 0)
        free(v);
}

typedef struct check {
    uv_work_t work;
    server_t *srv;
    ovms_owner_t owner;
    char password[129];
    uint8_t digest[32];
    int unknown, ok;
    http_checked_cb done;
    void *arg;
} check_t;

static void check_run(uv_work_t *req)
{
    check_t *k = container_of(req, check_t, work);
    k->ok = ovms_password_check(k->password, k->owner.pwhash) == 0 && !k->unknown;
}

static void check_done(uv_work_t *req, int status)
{
    check_t *k = container_of(req, check_t, work);
    int ok = status == 0 && k->ok;
    if (ok)
        verified_remember(k->srv, k->digest, k->owner.name);
    k->done(k->arg, ok, ok ? k->owner.name : NULL, ok ? "*" : NULL);
    OPENSSL_cleanse(k->password, sizeof k->password);
    free(k);
}

void http_check_password(worker_t *w, const char *user, const char *password, http_checked_cb done,
                         void *arg)
{
    server_t *srv = w->srv;
    check_t *k;
    char owner[65], permit[256];
    if (strlen(user) >= sizeof k->owner.name || strlen(password) >= sizeof k->password || !password[0]) {
        done(arg, 0, NULL, NULL);                   /* never matches (§14 S10: no empty passwords) */
        return;
    }
    if (http_token_login(w, user, password, owner, permit)) {
        done(arg, 1, owner, permit);
        return;
    }
    uint8_t digest[32];
    credential_digest(user, password, digest);
    if (verified_lookup(srv, digest, owner)) {
        done(arg, 1, owner, "*");
        return;
    }
    if (!(k = calloc(1, sizeof *k))) {
        done(arg, 0, NULL, NULL);
        return;
    }
    k->srv = srv;
    memcpy(k->digest, digest, 32);
    k->done = done;
    k->arg = arg;
    snprintf(k->password, sizeof k->password, "%s", password);
    if (ovms_store_owner_get(srv->store, user, &k->owner) < 0 || !k->owner.pwhash[0]) {
        k->unknown = 1;
        snprintf(k->owner.pwhash, sizeof k->owner.pwhash, "%s", srv->dummy_hash);
    }
    if (uv_queue_work(&w->loop, &k->work, check_run, check_done) < 0) {
        free(k);
        done(arg, 0, NULL, NULL);
    }
}
