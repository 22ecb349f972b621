/*
 * cache.c -- vehicles and owners held in memory, so that a login (the
 * commonest question a node asks) never waits for the disk.
 *
 * Vehicles live in an open-addressing table keyed by the upper-case id
 * (linear probing, backward-shift deletion, at most half full); owners in an
 * array sorted by id. Readers take the read lock; the writer thread
 * refreshes entries after each commit that touched them, and reloads
 * everything when another process (ovms-admin) committed.
 * Threading: lookups from any thread; changes from the writer thread, or
 * from ovms_store_open before the threads start.
 */
#include "store_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603u;           /* FNV-1a */
    for (; *id; id++) {
        h ^= (uint8_t)*id;
        h *= 1099511628211u;
    }
    return h;
}

int store_cache_init(store_cache_t *c)
{
    memset(c, 0, sizeof *c);
    return pthread_rwlock_init(&c->lock, NULL) == 0 ? 0 : OVMS_ENOMEM;
}

void store_cache_free(store_cache_t *c)
{
    free(c->vehicles);
    free(c->owners);
    free(c->tokens);
    pthread_rwlock_destroy(&c->lock);
}

static size_t find_slot(const ovms_vehicle_t *tab, size_t cap, const char *id)
{
    size_t i = (size_t)(hash_id(id) & (cap - 1));
    while (tab[i].id[0] && strcmp(tab[i].id, id) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

static int grow(store_cache_t *c, size_t want)
{
    size_t cap = 64;
    while (cap < want * 2)
        cap *= 2;
    if (cap <= c->vcap)
        return 0;
    ovms_vehicle_t *tab = calloc(cap, sizeof *tab);
    if (!tab)
        return OVMS_ENOMEM;
    for (size_t i = 0; i < c->vcap; i++)
        if (c->vehicles[i].id[0])
            tab[find_slot(tab, cap, c->vehicles[i].id)] = c->vehicles[i];
    free(c->vehicles);
    c->vehicles = tab;
    c->vcap = cap;
    return 0;
}

/* Caller holds the write lock. */
static int put_vehicle(store_cache_t *c, const ovms_vehicle_t *v)
{
    if ((c->vcount + 1) * 2 > c->vcap && grow(c, c->vcount + 1) < 0)
        return OVMS_ENOMEM;
    size_t i = find_slot(c->vehicles, c->vcap, v->id);
    if (!c->vehicles[i].id[0])
        c->vcount++;
    c->vehicles[i] = *v;
    return 0;
}

/* Caller holds the write lock. Backward-shift deletion keeps probes intact. */
static void drop_vehicle(store_cache_t *c, const char *id)
{
    if (!c->vcap)
        return;
    size_t i = find_slot(c->vehicles, c->vcap, id), mask = c->vcap - 1;
    if (!c->vehicles[i].id[0])
        return;
    c->vehicles[i].id[0] = '\0';
    c->vcount--;
    for (size_t j = (i + 1) & mask; c->vehicles[j].id[0]; j = (j + 1) & mask) {
        size_t home = (size_t)(hash_id(c->vehicles[j].id) & mask);
        /* move j back to i if its home is not in (i, j] cyclically */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            c->vehicles[i] = c->vehicles[j];
            c->vehicles[j].id[0] = '\0';
            i = j;
        }
    }
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static const char VEHICLE_SQL[] =
    "SELECT vehicleid, owner, carpass, vtype, v_server, ptoken, created FROM vehicles "
    "WHERE deleted = 0";
static const char VEHICLE_ONE_SQL[] =
    "SELECT vehicleid, owner, carpass, vtype, v_server, ptoken, created FROM vehicles "
    "WHERE deleted = 0 AND vehicleid = ?1";

static void row_to_vehicle(sqlite3_stmt *s, ovms_vehicle_t *v)
{
    copy_col(v->id, sizeof v->id, s, 0);
    v->owner = sqlite3_column_int64(s, 1);
    copy_col(v->carpass, sizeof v->carpass, s, 2);
    copy_col(v->vtype, sizeof v->vtype, s, 3);
    copy_col(v->v_server, sizeof v->v_server, s, 4);
    copy_col(v->ptoken, sizeof v->ptoken, s, 5);
    v->created = sqlite3_column_int64(s, 6);
}

int store_cache_reload_owners(store_cache_t *c, store_conn_t *conn)
{
    sqlite3_stmt *s = store_stmt(conn, "SELECT id, name, mail, pwhash, status FROM owners "
                                       "WHERE deleted = 0 ORDER BY id");
    ovms_owner_t *list = NULL;
    size_t n = 0, cap = 0;
    int rc;

    if (!s)
        return OVMS_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            ovms_owner_t *grown = realloc(list, (cap = cap ? cap * 2 : 64) * sizeof *list);
            if (!grown) {
                free(list);
                sqlite3_reset(s);
                return OVMS_ENOMEM;
            }
            list = grown;
        }
        ovms_owner_t *o = &list[n++];
        o->id = sqlite3_column_int64(s, 0);
        copy_col(o->name, sizeof o->name, s, 1);
        copy_col(o->mail, sizeof o->mail, s, 2);
        copy_col(o->pwhash, sizeof o->pwhash, s, 3);
        o->status = sqlite3_column_int64(s, 4);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        free(list);
        return store_sql_error(conn->db, rc);
    }
    pthread_rwlock_wrlock(&c->lock);
    free(c->owners);
    c->owners = list;
    c->ocount = n;
    pthread_rwlock_unlock(&c->lock);
    return 0;
}

/* When any of it changes, connections made under the old values must go. */
uint64_t ovms_store_vehicle_identity(const ovms_vehicle_t *v)
{
    uint64_t h = hash_id(v->carpass) * 31 + (uint64_t)v->owner;
    h = h * 1099511628211u + (uint64_t)v->created;
    return h * 1099511628211u ^ hash_id(v->v_server);
}

static int same_identity(const ovms_vehicle_t *a, const ovms_vehicle_t *b)
{
    return ovms_store_vehicle_identity(a) == ovms_store_vehicle_identity(b);
}

static const ovms_vehicle_t *lookup(const store_cache_t *c, const char *id)
{
    if (!c->vcap)
        return NULL;
    size_t i = find_slot(c->vehicles, c->vcap, id);
    return c->vehicles[i].id[0] ? &c->vehicles[i] : NULL;
}

static void tell_changed(ovms_store_t *st, const char *id)
{
    if (st->cfg.vehicle_changed)
        st->cfg.vehicle_changed(st->cfg.ctx, id);
}

int store_cache_reload(ovms_store_t *st, store_conn_t *conn)
{
    store_cache_t *c = &st->cache, fresh = { 0 };
    sqlite3_stmt *s = store_stmt(conn, VEHICLE_SQL);
    ovms_vehicle_t v;
    char (*changed)[33] = NULL;
    size_t nchanged = 0;
    int rc;

    if (!s)
        return OVMS_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        row_to_vehicle(s, &v);
        if (put_vehicle(&fresh, &v) < 0) {
            sqlite3_reset(s);
            free(fresh.vehicles);
            return OVMS_ENOMEM;
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        free(fresh.vehicles);
        return store_sql_error(conn->db, rc);
    }
    pthread_rwlock_wrlock(&c->lock);
    /* vehicles gone or with another identity, told once the lock is released */
    if (c->vcount && (changed = malloc(c->vcount * sizeof *changed))) {
        for (size_t i = 0; i < c->vcap; i++) {
            const ovms_vehicle_t *old = &c->vehicles[i], *now;
            if (old->id[0] && (!(now = lookup(&fresh, old->id)) || !same_identity(old, now)))
                memcpy(changed[nchanged++], old->id, sizeof changed[0]);
        }
    }
    free(c->vehicles);
    c->vehicles = fresh.vehicles;
    c->vcap = fresh.vcap;
    c->vcount = fresh.vcount;
    pthread_rwlock_unlock(&c->lock);
    for (size_t i = 0; i < nchanged; i++)
        tell_changed(st, changed[i]);
    free(changed);
    int rc2 = store_cache_reload_owners(c, conn);
    return rc2 < 0 ? rc2 : store_cache_reload_tokens(c, conn);
}

int store_cache_refresh_vehicle(ovms_store_t *st, store_conn_t *conn, const char *id)
{
    store_cache_t *c = &st->cache;
    sqlite3_stmt *s = store_stmt(conn, VEHICLE_ONE_SQL);
    ovms_vehicle_t v;
    int found, rc = 0, changed;

    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    found = sqlite3_step(s) == SQLITE_ROW;
    if (found)
        row_to_vehicle(s, &v);
    sqlite3_reset(s);
    pthread_rwlock_wrlock(&c->lock);
    const ovms_vehicle_t *old = lookup(c, id);
    changed = old && (!found || !same_identity(old, &v));
    if (found)
        rc = put_vehicle(c, &v);
    else
        drop_vehicle(c, id);
    pthread_rwlock_unlock(&c->lock);
    if (changed)
        tell_changed(st, id);
    return rc;
}

/* ---- public lookups --------------------------------------------------------- */

int ovms_store_vehicle_get(ovms_store_t *st, const char *id, ovms_vehicle_t *out)
{
    char key[33];
    int rc = OVMS_ENOTFOUND;

    if (ovms_vehicleid_normalize(ovms_str_c(id), key, sizeof key) < 0)
        return OVMS_ENOTFOUND;
    pthread_rwlock_rdlock(&st->cache.lock);
    const ovms_vehicle_t *v = lookup(&st->cache, key);
    if (v) {
        *out = *v;
        rc = 0;
    }
    pthread_rwlock_unlock(&st->cache.lock);
    return rc;
}

int ovms_store_owner_get(ovms_store_t *st, const char *name, ovms_owner_t *out)
{
    int rc = OVMS_ENOTFOUND;
    pthread_rwlock_rdlock(&st->cache.lock);
    for (size_t i = 0; i < st->cache.ocount; i++) {
        if (strcmp(st->cache.owners[i].name, name) == 0) {
            *out = st->cache.owners[i];
            rc = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&st->cache.lock);
    return rc;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ovms_store_owner_vehicles(ovms_store_t *st, int64_t owner, char *buf, size_t cap)
{
    const char **ids = NULL;
    size_t n = 0, o = 0;
    int rc = 0;

    pthread_rwlock_rdlock(&st->cache.lock);
    ids = malloc((st->cache.vcount + 1) * sizeof *ids);
    if (!ids) {
        pthread_rwlock_unlock(&st->cache.lock);
        return OVMS_ENOMEM;
    }
    for (size_t i = 0; i < st->cache.vcap; i++)
        if (st->cache.vehicles[i].id[0] && st->cache.vehicles[i].owner == owner)
            ids[n++] = st->cache.vehicles[i].id;
    qsort(ids, n, sizeof *ids, cmp_id);
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t len = strlen(ids[i]);
        if (o + len + (i ? 1 : 0) + 1 > cap) {
            rc = OVMS_ENOSPC;
            break;
        }
        if (i)
            buf[o++] = ' ';
        memcpy(buf + o, ids[i], len + 1);
        o += len;
    }
    pthread_rwlock_unlock(&st->cache.lock);
    free(ids);
    return rc < 0 ? rc : (int)n;
}

size_t ovms_store_vehicle_count(ovms_store_t *st)
{
    pthread_rwlock_rdlock(&st->cache.lock);
    size_t n = st->cache.vcount;
    pthread_rwlock_unlock(&st->cache.lock);
    return n;
}
