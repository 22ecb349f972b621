/*
 * tokens.c -- API tokens (HTTP-API.md §3.6): made, listed and removed for
 * an owner, replicated as RK records, and held in memory for logins.
 *
 * A token is 64 lower-case hex characters that the server draws from the
 * CSPRNG. Only the hex SHA-256 of it is stored, with its first 8
 * characters so that a listing can name it (§6.3). A token carries 256
 * random bits, so one unsalted hash is enough: there is nothing to guess,
 * and a login with a token costs a hash and a table lookup, not PBKDF2.
 *
 * Removal leaves a tombstone (deleted = 1) that wins or loses like any
 * version, so that an old copy from a peer cannot bring a token back.
 * lastused is this node's own and is not replicated: a token in use would
 * otherwise make a record a minute on every node. It is written at most
 * once a minute per token (the in-memory copy decides when).
 * Threading: the ops run on the writer (writes) and reader (the listing)
 * threads; ovms_store_token_find from any thread, under the cache lock.
 */
#include "store_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOUCH_SECONDS 60

struct store_token {
    uint8_t hash[32];
    int64_t owner;
    int64_t used;                   /* unix seconds; updated atomically under the read lock */
    char permit[256];
};

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int ovms_token_valid(const char *token)
{
    size_t n = 0;
    for (; token[n]; n++)
        if (hexval((unsigned char)token[n]) < 0)
            return 0;
    return n == OVMS_TOKEN_HEX;
}

static int token_digest(const char *token, uint8_t out[32])
{
    unsigned int len = 0;
    if (!ovms_token_valid(token))
        return OVMS_EINVAL;
    return EVP_Digest(token, OVMS_TOKEN_HEX, out, &len, EVP_sha256(), NULL) == 1 ? 0 : OVMS_ECRYPTO;
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int from_hex(const char *hex, uint8_t out[32])
{
    for (int i = 0; i < 32; i++) {
        int hi = hexval((unsigned char)hex[2 * i]), lo = hi < 0 ? -1 : hexval((unsigned char)hex[2 * i + 1]);
        if (lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[64] ? -1 : 0;
}

int ovms_token_hash(const char *token, char hex[65])
{
    uint8_t h[32];
    int rc = token_digest(token, h);
    if (rc == 0)
        to_hex(h, sizeof h, hex);
    return rc;
}

/* ---- in memory -------------------------------------------------------------------------------- */

static int cmp_hash(const void *a, const void *b)
{
    return memcmp(((const store_token_t *)a)->hash, ((const store_token_t *)b)->hash, 32);
}

int store_cache_reload_tokens(store_cache_t *c, store_conn_t *conn)
{
    sqlite3_stmt *s = store_stmt(conn, "SELECT hash, owner, permit, lastused FROM apitokens "
                                       "WHERE deleted = 0");
    store_token_t *list = NULL;
    size_t n = 0, cap = 0;
    int rc;

    if (!s)
        return OVMS_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            store_token_t *grown = realloc(list, (cap = cap ? cap * 2 : 16) * sizeof *list);
            if (!grown) {
                free(list);
                sqlite3_reset(s);
                return OVMS_ENOMEM;
            }
            list = grown;
        }
        store_token_t *t = &list[n];
        const char *hex = (const char *)sqlite3_column_text(s, 0);
        if (!hex || from_hex(hex, t->hash) < 0)
            continue;
        t->owner = sqlite3_column_int64(s, 1);
        snprintf(t->permit, sizeof t->permit, "%s", (const char *)sqlite3_column_text(s, 2));
        int64_t used = 0;
        ovms_timestamp_parse(ovms_str_c((const char *)sqlite3_column_text(s, 3)), &used);
        t->used = used;
        n++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        free(list);
        return store_sql_error(conn->db, rc);
    }
    if (n > 1)
        qsort(list, n, sizeof *list, cmp_hash);
    pthread_rwlock_wrlock(&c->lock);
    free(c->tokens);
    c->tokens = list;
    c->tcount = n;
    pthread_rwlock_unlock(&c->lock);
    return 0;
}

static const ovms_owner_t *owner_by_id(const store_cache_t *c, int64_t id)
{
    size_t lo = 0, hi = c->ocount;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->owners[mid].id == id)
            return &c->owners[mid];
        if (c->owners[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int ovms_store_token_find(ovms_store_t *st, const char *token, ovms_token_t *out)
{
    store_token_t key;
    int rc = token_digest(token, key.hash);
    if (rc < 0)
        return OVMS_ENOTFOUND;
    memset(out, 0, sizeof *out);
    rc = OVMS_ENOTFOUND;
    pthread_rwlock_rdlock(&st->cache.lock);
    store_token_t *t = st->cache.tcount ? bsearch(&key, st->cache.tokens, st->cache.tcount,
                                                  sizeof key, cmp_hash) : NULL;
    const ovms_owner_t *o = t ? owner_by_id(&st->cache, t->owner) : NULL;
    if (o && o->status == 1) {
        out->owner = o->id;
        snprintf(out->owner_name, sizeof out->owner_name, "%s", o->name);
        snprintf(out->permit, sizeof out->permit, "%s", t->permit);
        to_hex(key.hash, sizeof key.hash, out->hash);
        int64_t now = store_now(), used = __atomic_load_n(&t->used, __ATOMIC_RELAXED);
        out->touch = now - used >= TOUCH_SECONDS &&
                     __atomic_compare_exchange_n(&t->used, &used, now, 0, __ATOMIC_RELAXED,
                                                 __ATOMIC_RELAXED);
        rc = 0;
    }
    pthread_rwlock_unlock(&st->cache.lock);
    return rc;
}

/* ---- writes ----------------------------------------------------------------------------------- */

#define ARG(k) (req->s[k])

static int64_t live_count(ovms_store_t *st, int64_t owner)
{
    sqlite3_stmt *s = store_stmt(&st->w, "SELECT count(*) FROM apitokens WHERE owner = ?1 AND deleted = 0");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_int64(s, 1, owner);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return n;
}

/* args: owner name, token, application, purpose, permit. value: the owner id. */
int store_op_token_put(ovms_store_t *st, ovms_store_req_t *req)
{
    char hex[65];
    int64_t owner, n;
    int rc = store_owner_id_by_name(st, ARG(0), &owner);
    if (rc < 0)
        return rc;
    if ((n = live_count(st, owner)) < 0)
        return (int)n;
    if (n >= OVMS_TOKENS_PER_OWNER)
        return OVMS_EQUOTA;
    if ((rc = ovms_token_hash(ARG(1), hex)) < 0)
        return rc;
    sqlite3_stmt *s = store_stmt(&st->w,
        "INSERT INTO apitokens(hash, owner, prefix, application, purpose, permit, created, lastused, "
        "deleted, changed, origin, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 0, ?7, ?8, ?9)");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, owner);
    sqlite3_bind_text(s, 3, ARG(1), 8, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 4, ARG(2), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 5, ARG(3), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 6, ARG(4), -1, SQLITE_TRANSIENT);
    store_bind_change(st, s, 7, store_now());    /* ?7 is also created and lastused */
    req->value = owner;
    st->dirty.tokens = 1;
    return store_step_done(&st->w, s);
}

/* The hash of the owner's live token named by a whole token or its
 * 8-character prefix: 0, OVMS_ENOTFOUND, or OVMS_EEXIST when ambiguous. */
static int resolve(ovms_store_t *st, int64_t owner, const char *name, char hex[65])
{
    char whole[65];
    int by_prefix = strlen(name) == 8;
    if (!by_prefix && ovms_token_hash(name, whole) < 0)
        return OVMS_ENOTFOUND;
    sqlite3_stmt *s = store_stmt(&st->w, "SELECT hash FROM apitokens WHERE owner = ?1 AND "
                                         "(prefix = ?2 OR hash = ?3) AND deleted = 0 LIMIT 2");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_int64(s, 1, owner);
    sqlite3_bind_text(s, 2, by_prefix ? name : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, by_prefix ? "" : whole, -1, SQLITE_TRANSIENT);
    int found = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (found++ == 0)
            snprintf(hex, 65, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_error(st->w.db, rc);
    return found == 1 ? 0 : found ? OVMS_EEXIST : OVMS_ENOTFOUND;
}

/* args: owner name, token or prefix. value: tokens removed (0 or 1). */
int store_op_token_remove(ovms_store_t *st, ovms_store_req_t *req)
{
    char hex[65];
    int64_t owner;
    store_version_t old;
    int rc = store_owner_id_by_name(st, ARG(0), &owner);
    req->value = 0;
    if (rc == 0)
        rc = resolve(st, owner, ARG(1), hex);
    if (rc == OVMS_ENOTFOUND)
        return 0;                   /* nothing to remove: answered as removed (§6.5) */
    if (rc < 0)
        return rc;
    if ((rc = store_version_of(st, "SELECT changed, origin FROM apitokens WHERE hash = ?1", hex, 0,
                               &old)) < 0)
        return rc;
    sqlite3_stmt *s = store_stmt(&st->w, "UPDATE apitokens SET deleted = 1, changed = ?1, origin = ?2, "
                                         "seq = ?3 WHERE hash = ?4");
    if (!s)
        return OVMS_EIO;
    store_bind_change(st, s, 1, store_bump(st, &old));
    sqlite3_bind_text(s, 4, hex, -1, SQLITE_TRANSIENT);
    st->dirty.tokens = 1;
    req->value = 1;
    return store_step_done(&st->w, s);
}

/* args: token hash; i[0]: when. Local only: no new version. */
int store_op_token_used(ovms_store_t *st, ovms_store_req_t *req)
{
    char ts[20];
    sqlite3_stmt *s = store_stmt(&st->w, "UPDATE apitokens SET lastused = ?1 WHERE hash = ?2");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, store_ts(req->i[0], ts), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, ARG(0), -1, SQLITE_TRANSIENT);
    return store_step_done(&st->w, s);
}

/* ---- the listing (reader) --------------------------------------------------------------------- */

int store_op_token_list(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = store_stmt(c,
        "SELECT t.prefix, t.application, t.purpose, t.permit, t.created, t.lastused "
        "FROM apitokens t JOIN owners o ON o.id = t.owner "
        "WHERE o.name = ?1 AND o.deleted = 0 AND t.deleted = 0 ORDER BY t.created, t.prefix");
    int rc;
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    store_rows_begin(&b, &req->rows, 6);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        store_rows_add_stmt(&b, s);
    sqlite3_reset(s);
    int end = store_rows_end(&b);
    return rc != SQLITE_DONE ? store_sql_error(c->db, rc) : end;
}
