/*
 * write.c -- the write operations, each run by the writer thread inside the
 * current group-commit transaction (and its own savepoint, so a failing
 * request leaves the others of its batch intact).
 *
 * Every replicated change takes the next value of this node's counter as
 * its seq, with this node as origin: that pair is what replication reads
 * back as "records changed since a watermark", and a row's newer version
 * replaces the older one in place (the log compacts itself).
 * Threading: writer thread only.
 */
#include "store_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int64_t store_next_seq(ovms_store_t *st)
{
    return ++st->own_seq;
}

void store_mark_vehicle(ovms_store_t *st, const char *id)
{
    store_dirty_t *d = &st->dirty;
    if (d->all)
        return;
    for (int i = 0; i < d->nvehicles; i++)
        if (strcmp(d->vehicles[i], id) == 0)
            return;
    if (d->nvehicles == (int)(sizeof d->vehicles / sizeof d->vehicles[0])) {
        d->all = 1;
        return;
    }
    snprintf(d->vehicles[d->nvehicles++], sizeof d->vehicles[0], "%s", id);
}

/* The stamp of a local change: see store_stamp_after. */
int64_t store_bump(const ovms_store_t *st, const store_version_t *old)
{
    return old->found ? store_stamp_after(st, old->changed, old->origin) : store_now();
}

/* The version a write replaces: sql selects (changed, origin) of one row,
 * changed as text or unix seconds, keyed by ?1 (text, or integer when key is NULL). */
int store_version_of(ovms_store_t *st, const char *sql, const char *key, int64_t id,
                     store_version_t *v)
{
    sqlite3_stmt *s = store_stmt(&st->w, sql);
    int rc;
    memset(v, 0, sizeof *v);
    if (!s)
        return OVMS_EIO;
    if (key)
        sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        v->found = 1;
        if (sqlite3_column_type(s, 0) == SQLITE_INTEGER)
            v->changed = sqlite3_column_int64(s, 0);
        else
            ovms_timestamp_parse(ovms_str_c((const char *)sqlite3_column_text(s, 0)), &v->changed);
        snprintf(v->origin, sizeof v->origin, "%s", (const char *)sqlite3_column_text(s, 1));
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_error(st->w.db, rc);
}

void store_bind_change(ovms_store_t *st, sqlite3_stmt *s, int at, int64_t when)
{
    char ts[20];
    sqlite3_bind_text(s, at, store_ts(when, ts), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, at + 1, st->node_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, at + 2, store_next_seq(st));
}

#define OWNER_VERSION "SELECT changed, origin FROM owners WHERE id = ?1"
#define VEHICLE_VERSION "SELECT changed, origin FROM vehicles WHERE vehicleid = ?1"

#define ARG(k) (req->s[k])
#define ARGN(k) (req->n[k])

/* ---- owners ---------------------------------------------------------------- */

int store_owner_id_by_name(ovms_store_t *st, const char *name, int64_t *id)
{
    sqlite3_stmt *s = store_stmt(&st->w, "SELECT id FROM owners WHERE name = ?1 AND deleted = 0");
    int rc;
    *id = -1;
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? OVMS_ENOTFOUND : store_sql_error(st->w.db, rc);
}

/* An owner's id is a hash of its name (docs/replication.md): nodes that
 * create owners at the same time never hand out one id for two names, and
 * one name created on two nodes is one owner, merged last-writer-wins. */
int64_t store_owner_id(const char *name)
{
    uint64_t h = 1469598103934665603u;           /* FNV-1a, then a 64-bit mix */
    for (const char *p = name; *p; p++) {
        h ^= (uint8_t)*p;
        h *= 1099511628211u;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    /* above 2^32 (clear of the small ids of older databases), below 2^53
     * (exact in JSON and JavaScript) */
    return (int64_t)(h % ((1ull << 53) - (1ull << 32))) + (int64_t)(1ull << 32);
}

static int owner_insert(ovms_store_t *st, const char *name, const char *mail, const char *pwhash,
                        int64_t status, int64_t *id)
{
    /* a removed owner of the same name comes back under its id */
    sqlite3_stmt *s = store_stmt(&st->w,
        "INSERT INTO owners(id, name, mail, pwhash, status, changed, origin, seq) "
        "VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO UPDATE SET "
        "name = excluded.name, mail = excluded.mail, pwhash = excluded.pwhash, "
        "status = excluded.status, deleted = 0, changed = excluded.changed, "
        "origin = excluded.origin, seq = excluded.seq "
        "WHERE owners.deleted = 1 AND owners.name = excluded.name");
    store_version_t old;
    int64_t want = store_owner_id(name);
    int rc;
    *id = -1;
    if (!s)
        return OVMS_EIO;
    if ((rc = store_version_of(st, OWNER_VERSION, NULL, want, &old)) < 0)
        return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, mail ? mail : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, pwhash ? pwhash : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, status < 0 ? 1 : status);
    store_bind_change(st, s, 5, store_bump(st, &old));
    sqlite3_bind_int64(s, 8, want);
    rc = store_step_done(&st->w, s);
    if (rc == 0 && sqlite3_changes(st->w.db) == 0)
        return OVMS_EEXIST;          /* another name hashes to this id (about 2^-53) */
    if (rc == 0)
        *id = want;
    st->dirty.owners = 1;
    return rc;
}

static int op_owner_put(ovms_store_t *st, ovms_store_req_t *req)
{
    int64_t id;
    int rc = store_owner_id_by_name(st, ARG(0), &id);

    if (rc == 0 && (req->flags & OVMS_STORE_CREATE))
        return OVMS_EEXIST;
    if (rc == OVMS_ENOTFOUND && !(req->flags & OVMS_STORE_UPDATE)) {
        rc = owner_insert(st, ARG(0), ARG(1), ARG(2), req->i[0], &id);
        req->value = id;
        return rc;
    }
    store_version_t old;
    if (rc == 0)
        rc = store_version_of(st, OWNER_VERSION, NULL, id, &old);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = store_stmt(&st->w,
        "UPDATE owners SET mail = coalesce(?1, mail), pwhash = coalesce(?2, pwhash), "
        "status = CASE WHEN ?3 < 0 THEN status ELSE ?3 END, "
        "changed = ?4, origin = ?5, seq = ?6 WHERE id = ?7");
    if (!s)
        return OVMS_EIO;
    if (ARG(1))
        sqlite3_bind_text(s, 1, ARG(1), -1, SQLITE_TRANSIENT);
    if (ARG(2))
        sqlite3_bind_text(s, 2, ARG(2), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, req->i[0]);
    store_bind_change(st, s, 4, store_bump(st, &old));
    sqlite3_bind_int64(s, 7, id);
    req->value = id;
    st->dirty.owners = 1;
    return store_step_done(&st->w, s);
}

static int op_owner_remove(ovms_store_t *st, ovms_store_req_t *req)
{
    int64_t id;
    int rc = store_owner_id_by_name(st, ARG(0), &id);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = store_stmt(&st->w,
        "SELECT count(*) FROM vehicles WHERE owner = ?1 AND deleted = 0");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_int64(s, 1, id);
    int64_t vehicles = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (vehicles)
        return OVMS_EBUSY;          /* remove (or move) its vehicles first */
    store_version_t old;
    if ((rc = store_version_of(st, OWNER_VERSION, NULL, id, &old)) < 0)
        return rc;
    s = store_stmt(&st->w, "UPDATE owners SET deleted = 1, changed = ?1, origin = ?2, seq = ?3 "
                           "WHERE id = ?4");
    if (!s)
        return OVMS_EIO;
    store_bind_change(st, s, 1, store_bump(st, &old));
    sqlite3_bind_int64(s, 4, id);
    req->value = id;
    st->dirty.owners = 1;
    return store_step_done(&st->w, s);
}

/* ---- vehicles -------------------------------------------------------------- */

/* live: 1 when the vehicle exists and is not a tombstone; owner: its owner. */
static int vehicle_live(ovms_store_t *st, const char *id, int *live, int64_t *owner)
{
    sqlite3_stmt *s = store_stmt(&st->w, "SELECT deleted, owner FROM vehicles WHERE vehicleid = ?1");
    int rc;
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    *live = rc == SQLITE_ROW && sqlite3_column_int(s, 0) == 0;
    *owner = rc == SQLITE_ROW ? sqlite3_column_int64(s, 1) : -1;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_error(st->w.db, rc);
}

/* The named owner, or (on create with no name) one named after the vehicle. */
static int resolve_owner(ovms_store_t *st, ovms_store_req_t *req, int creating, int64_t *owner)
{
    if (ARG(1))
        return store_owner_id_by_name(st, ARG(1), owner);
    if (!creating) {
        *owner = -1;
        return 0;
    }
    char name[40];
    size_t i;
    for (i = 0; ARG(0)[i] && i + 1 < sizeof name; i++)
        name[i] = (char)tolower((unsigned char)ARG(0)[i]);
    name[i] = '\0';
    if (store_owner_id_by_name(st, name, owner) == 0)
        return 0;
    return owner_insert(st, name, "", "", 1, owner);
}

static int vehicle_create(ovms_store_t *st, ovms_store_req_t *req, int64_t owner)
{
    sqlite3_stmt *s = store_stmt(&st->w,
        "INSERT INTO vehicles(vehicleid, owner, carpass, vtype, v_server, created, deleted, "
        "  changed, origin, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9) "
        "ON CONFLICT(vehicleid) DO UPDATE SET owner = excluded.owner, "
        "  carpass = excluded.carpass, vtype = excluded.vtype, v_server = excluded.v_server, "
        "  created = max(excluded.created, vehicles.created + 1), deleted = 0, ptoken = '', "
        "  changed = excluded.changed, origin = excluded.origin, seq = excluded.seq");
    store_version_t old;
    int64_t now = store_now();
    int rc;
    if (!s)
        return OVMS_EIO;
    if (!ARG(2))
        return OVMS_EINVAL;         /* a new vehicle needs its car password */
    if ((rc = store_version_of(st, VEHICLE_VERSION, ARG(0), 0, &old)) < 0)
        return rc;
    sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, owner);
    sqlite3_bind_text(s, 3, ARG(2), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 4, ARG(3) ? ARG(3) : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 5, ARG(4) ? ARG(4) : "*", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 6, now);
    store_bind_change(st, s, 7, store_bump(st, &old));
    return store_step_done(&st->w, s);
}

static int vehicle_update(ovms_store_t *st, ovms_store_req_t *req, int64_t owner)
{
    sqlite3_stmt *s = store_stmt(&st->w,
        "UPDATE vehicles SET owner = CASE WHEN ?1 < 0 THEN owner ELSE ?1 END, "
        "carpass = coalesce(?2, carpass), vtype = coalesce(?3, vtype), "
        "v_server = coalesce(?4, v_server), changed = ?5, origin = ?6, seq = ?7 "
        "WHERE vehicleid = ?8");
    store_version_t old;
    int rc;
    if (!s)
        return OVMS_EIO;
    if ((rc = store_version_of(st, VEHICLE_VERSION, ARG(0), 0, &old)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, owner);
    for (int k = 2; k <= 4; k++)
        if (ARG(k))
            sqlite3_bind_text(s, k, ARG(k), -1, SQLITE_TRANSIENT);
    store_bind_change(st, s, 5, store_bump(st, &old));
    sqlite3_bind_text(s, 8, ARG(0), -1, SQLITE_TRANSIENT);
    return store_step_done(&st->w, s);
}

static int op_vehicle_put(ovms_store_t *st, ovms_store_req_t *req)
{
    int64_t owner, current;
    int live, rc = vehicle_live(st, ARG(0), &live, &current);

    if (rc < 0)
        return rc;
    if (live && (req->flags & OVMS_STORE_CREATE))
        return OVMS_EEXIST;
    if (!live && (req->flags & OVMS_STORE_UPDATE))
        return OVMS_ENOTFOUND;
    rc = resolve_owner(st, req, !live, &owner);
    if (rc < 0)
        return rc;
    rc = live ? vehicle_update(st, req, owner) : vehicle_create(st, req, owner);
    req->value = owner >= 0 ? owner : current;
    store_mark_vehicle(st, ARG(0));
    return rc;
}

/* Run DELETEs of one vehicle's rows (?1 the id, ?2, when a statement has
 * it, `before`); *rows (if given) counts what went. */
static int purge(ovms_store_t *st, const char *const *sqls, size_t n, const char *id,
                 int64_t before, int64_t *rows)
{
    if (rows)
        *rows = 0;
    for (size_t k = 0; k < n; k++) {
        sqlite3_stmt *s = store_stmt(&st->w, sqls[k]);
        int rc;
        if (!s)
            return OVMS_EIO;
        sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_bind_parameter_count(s) > 1)
            sqlite3_bind_int64(s, 2, before);
        if ((rc = store_step_done(&st->w, s)) < 0)
            return rc;
        if (rows)
            *rows += sqlite3_changes(st->w.db);
    }
    return 0;
}

/* Data of an earlier vehicle of the same id, once another incarnation
 * (created at `created`) won: messages and history older than it, but
 * the node's utilisation counters (summed per day, not dated by event). */
int store_purge_older_data(ovms_store_t *st, const char *id, int64_t created)
{
    static const char *const purges[] = {
        "DELETE FROM messages WHERE vehicleid = ?1 AND received < ?2",
        "DELETE FROM history WHERE vehicleid = ?1 AND ts < ?2 AND type <> '" UTIL_TYPE "'",
    };
    return purge(st, purges, sizeof purges / sizeof purges[0], id,
                 created - STORE_INCARNATION_GRACE, NULL);
}

/* A removed vehicle takes its data with it, so that a vehicle added later
 * with the same id starts empty; the tombstone row stays for replication. */
int store_purge_vehicle_data(ovms_store_t *st, const char *id, int64_t *rows)
{
    static const char *const purges[] = {
        "DELETE FROM messages WHERE vehicleid = ?1",
        "DELETE FROM history WHERE vehicleid = ?1",
        "DELETE FROM pushsubs WHERE vehicleid = ?1",
        "DELETE FROM provisioning WHERE vehicleid = ?1",
    };
    return purge(st, purges, sizeof purges / sizeof purges[0], id, 0, rows);
}

static int op_vehicle_remove(ovms_store_t *st, ovms_store_req_t *req)
{
    sqlite3_stmt *s = store_stmt(&st->w,
        "UPDATE vehicles SET deleted = 1, ptoken = '', ptoken_changed = '', ptoken_origin = '', "
        "ptoken_seq = 0, changed = ?1, origin = ?2, seq = ?3 WHERE vehicleid = ?4 AND deleted = 0");
    store_version_t old;
    int rc;
    if (!s)
        return OVMS_EIO;
    if ((rc = store_version_of(st, VEHICLE_VERSION, ARG(0), 0, &old)) < 0)
        return rc;
    store_bind_change(st, s, 1, store_bump(st, &old));
    sqlite3_bind_text(s, 4, ARG(0), -1, SQLITE_TRANSIENT);
    rc = store_step_done(&st->w, s);
    if (rc == 0 && sqlite3_changes(st->w.db) == 0)
        return OVMS_ENOTFOUND;
    if (rc == 0)
        rc = store_purge_vehicle_data(st, ARG(0), &req->value);
    store_mark_vehicle(st, ARG(0));
    return rc;
}

/* ---- car data ----------------------------------------------------------------- */

/* Data is written only for a live vehicle, and, when the request names an
 * incarnation, only for that one (ovms_store_req_incarnation). */
static int vehicle_current(ovms_store_t *st, ovms_store_req_t *req, const char *id)
{
    sqlite3_stmt *s = store_stmt(&st->w,
        "SELECT created FROM vehicles WHERE vehicleid = ?1 AND deleted = 0");
    int rc, ok;
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    ok = rc == SQLITE_ROW && (!req->incarnation || sqlite3_column_int64(s, 0) == req->incarnation);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_sql_error(st->w.db, rc);
    return ok ? 0 : OVMS_ENOTFOUND;
}

static int history_insert(ovms_store_t *st, ovms_store_req_t *req, const char *type, size_t tlen,
                          int64_t recno, int64_t ts, int64_t expires, const char *data, size_t dlen);

static int message_version(ovms_store_t *st, ovms_store_req_t *req, store_version_t *v)
{
    sqlite3_stmt *s = store_stmt(&st->w,
        "SELECT received, origin FROM messages WHERE vehicleid = ?1 AND code = ?2");
    int rc;
    memset(v, 0, sizeof *v);
    if (!s)
        return OVMS_EIO;
    store_bind_text(s, 1, ARG(0), ARGN(0));
    store_bind_text(s, 2, ARG(1), ARGN(1));
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        v->found = 1;
        v->changed = sqlite3_column_int64(s, 0);
        snprintf(v->origin, sizeof v->origin, "%s", (const char *)sqlite3_column_text(s, 1));
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_error(st->w.db, rc);
}

static int op_msg_put(ovms_store_t *st, ovms_store_req_t *req)
{
    int live = vehicle_current(st, req, ARG(0));
    if (live < 0)
        return live;
    sqlite3_stmt *s = store_stmt(&st->w,
        "INSERT INTO messages(vehicleid, code, payload, received, paranoid, ptoken, origin, seq) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(vehicleid, code) DO UPDATE SET "
        "payload = excluded.payload, received = excluded.received, "
        "paranoid = excluded.paranoid, ptoken = excluded.ptoken, "
        "origin = excluded.origin, seq = excluded.seq");
    store_version_t old;
    int64_t received = req->i[1];
    if (!s)
        return OVMS_EIO;
    if ((live = message_version(st, req, &old)) < 0)
        return live;
    if (old.found && received <= old.changed)
        received = store_stamp_after(st, old.changed, old.origin);
    store_bind_text(s, 1, ARG(0), ARGN(0));
    store_bind_text(s, 2, ARG(1), ARGN(1));
    store_bind_text(s, 3, ARG(2), ARGN(2));
    sqlite3_bind_int64(s, 4, received);
    sqlite3_bind_int(s, 5, req->i[0] ? 1 : 0);
    store_bind_text(s, 6, ARG(3), ARGN(3));
    sqlite3_bind_text(s, 7, st->node_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, store_next_seq(st));
    int rc = store_step_done(&st->w, s);
    /* the reference's log history: the message as a record of its code;
     * left out (not an error) when the vehicle's history is full */
    if (rc == 0 && req->msg_history) {
        rc = history_insert(st, req, ARG(1), ARGN(1), 0, req->i[1], req->msg_history, ARG(2), ARGN(2));
        if (rc == OVMS_EQUOTA)
            rc = 0;
    }
    return rc;
}

static int op_ptoken_set(ovms_store_t *st, ovms_store_req_t *req)
{
    int live = vehicle_current(st, req, ARG(0));
    if (live < 0)
        return live;
    sqlite3_stmt *s = store_stmt(&st->w,
        "UPDATE vehicles SET ptoken = ?1, ptoken_changed = ?2, ptoken_origin = ?3, "
        "ptoken_seq = ?4 WHERE vehicleid = ?5 AND deleted = 0");
    store_version_t old;
    int64_t when = req->i[0];
    int rc;
    if (!s)
        return OVMS_EIO;
    if ((rc = store_version_of(st, "SELECT ptoken_changed, ptoken_origin FROM vehicles "
                             "WHERE vehicleid = ?1 AND ptoken_changed <> ''", ARG(0), 0, &old)) < 0)
        return rc;
    if (old.found && when <= old.changed)
        when = store_stamp_after(st, old.changed, old.origin);
    store_bind_text(s, 1, ARG(1), ARGN(1));
    store_bind_change(st, s, 2, when);
    store_bind_text(s, 5, ARG(0), ARGN(0));
    rc = store_step_done(&st->w, s);
    if (rc == 0 && sqlite3_changes(st->w.db) == 0)
        return OVMS_ENOTFOUND;
    store_mark_vehicle(st, ARG(0));
    return rc;
}

/* s is "SELECT <it exists already>, <how many the vehicle has>": a
 * replacement always fits, a new one only below the limit. */
static int room_under_limit(ovms_store_t *st, sqlite3_stmt *s, int64_t limit)
{
    int rc = sqlite3_step(s), fits = 1;
    if (rc == SQLITE_ROW)
        fits = sqlite3_column_int(s, 0) || sqlite3_column_int64(s, 1) < limit;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return store_sql_error(st->w.db, rc);
    return fits ? 0 : OVMS_EQUOTA;
}

/* Room for this record under the vehicle's limit (history_count is kept
 * exact by triggers). */
static int history_room(ovms_store_t *st, const ovms_store_req_t *req, const char *type,
                        size_t tlen, int64_t recno, int64_t ts)
{
    if (!req->limit)
        return 0;
    sqlite3_stmt *s = store_stmt(&st->w,
        "SELECT EXISTS (SELECT 1 FROM history WHERE vehicleid = ?1 AND type = ?2 AND ts = ?3 "
        "  AND recno = ?4 AND korigin = ''), "
        "coalesce((SELECT n FROM history_count WHERE vehicleid = ?1), 0)");
    if (!s)
        return OVMS_EIO;
    store_bind_text(s, 1, ARG(0), ARGN(0));
    store_bind_text(s, 2, type, tlen);
    sqlite3_bind_int64(s, 3, ts);
    sqlite3_bind_int64(s, 4, recno);
    return room_under_limit(st, s, req->limit);
}

/* One historical record of the request's vehicle (ARG(0)), replacing one
 * with the same key. */
static int history_insert(ovms_store_t *st, ovms_store_req_t *req, const char *type, size_t tlen,
                          int64_t recno, int64_t ts, int64_t expires, const char *data, size_t dlen)
{
    int rc = history_room(st, req, type, tlen, recno, ts);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = store_stmt(&st->w,
        "INSERT INTO history(vehicleid, type, recno, ts, korigin, expires, data, origin, seq) "
        "VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, ?7, ?8) "
        "ON CONFLICT(vehicleid, type, ts, recno, korigin) DO UPDATE SET "
        "expires = excluded.expires, data = excluded.data, origin = excluded.origin, "
        "seq = excluded.seq");
    if (!s)
        return OVMS_EIO;
    store_bind_text(s, 1, ARG(0), ARGN(0));
    store_bind_text(s, 2, type, tlen);
    sqlite3_bind_int64(s, 3, recno);
    sqlite3_bind_int64(s, 4, ts);
    sqlite3_bind_int64(s, 5, expires);
    store_bind_text(s, 6, data, dlen);
    sqlite3_bind_text(s, 7, st->node_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, store_next_seq(st));
    return store_step_done(&st->w, s);
}

static int op_hist_put(ovms_store_t *st, ovms_store_req_t *req)
{
    int live = vehicle_current(st, req, ARG(0));
    if (live < 0)
        return live;
    return history_insert(st, req, ARG(1), ARGN(1), req->i[0], req->i[1], req->i[2], ARG(2), ARGN(2));
}

static int op_util_add(ovms_store_t *st, ovms_store_req_t *req)
{
    int live = vehicle_current(st, req, ARG(0));
    if (live < 0)
        return live;
    int64_t day = req->i[0] - (req->i[0] % 86400);
    for (int k = 0; k < 4; k++) {
        sqlite3_stmt *s = store_stmt(&st->w,
            "INSERT INTO history(vehicleid, type, recno, ts, korigin, expires, data, origin, seq) "
            "VALUES (?1, '" UTIL_TYPE "', ?2, ?3, ?4, ?5, ?6, ?4, ?7) "
            "ON CONFLICT(vehicleid, type, ts, recno, korigin) DO UPDATE SET "
            "data = CAST(CAST(data AS INTEGER) + CAST(excluded.data AS INTEGER) AS TEXT), "
            "origin = excluded.origin, seq = excluded.seq");
        char count[24];
        int rc;
        if (!s)
            return OVMS_EIO;
        snprintf(count, sizeof count, "%lld", (long long)req->i[1 + k]);
        store_bind_text(s, 1, ARG(0), ARGN(0));
        sqlite3_bind_int(s, 2, k);
        sqlite3_bind_int64(s, 3, day);
        sqlite3_bind_text(s, 4, st->node_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, day + UTIL_KEEP_SECS);
        sqlite3_bind_text(s, 6, count, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 7, store_next_seq(st));
        if ((rc = store_step_done(&st->w, s)) < 0)
            return rc;
    }
    return 0;
}

/* A new subscription only below the vehicle's limit; replacing one is fine. */
static int pushsub_room(ovms_store_t *st, ovms_store_req_t *req)
{
    if (!req->limit)
        return 0;
    sqlite3_stmt *s = store_stmt(&st->w,
        "SELECT EXISTS (SELECT 1 FROM pushsubs WHERE owner = ?1 AND vehicleid = ?2 AND appid = ?3), "
        "(SELECT count(*) FROM pushsubs WHERE vehicleid = ?2)");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_int64(s, 1, req->i[0]);
    store_bind_text(s, 2, ARG(0), ARGN(0));
    store_bind_text(s, 3, ARG(1), ARGN(1));
    return room_under_limit(st, s, req->limit);
}

static int op_pushsub_put(ovms_store_t *st, ovms_store_req_t *req)
{
    int live = vehicle_current(st, req, ARG(0));
    if (live == 0)
        live = pushsub_room(st, req);
    if (live < 0)
        return live;
    sqlite3_stmt *s = store_stmt(&st->w,
        "INSERT INTO pushsubs(owner, vehicleid, appid, pushtype, keytype, keyvalue, created) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(owner, vehicleid, appid) DO UPDATE SET "
        "pushtype = excluded.pushtype, keytype = excluded.keytype, keyvalue = excluded.keyvalue");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_int64(s, 1, req->i[0]);
    for (int k = 0; k < 5; k++)
        store_bind_text(s, 2 + k, ARG(k), ARGN(k));
    sqlite3_bind_int64(s, 7, store_now());
    return store_step_done(&st->w, s);
}

static int op_prov_put(ovms_store_t *st, ovms_store_req_t *req)
{
    const char *sql = (req->flags & OVMS_STORE_CREATE)
        ? "INSERT INTO provisioning(apkey, vehicleid, token, digest, record, created) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        : "INSERT INTO provisioning(apkey, vehicleid, token, digest, record, created) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(apkey) DO UPDATE SET "
          "vehicleid = excluded.vehicleid, token = excluded.token, digest = excluded.digest, "
          "record = excluded.record";
    sqlite3_stmt *s = store_stmt(&st->w, sql);
    if (!s)
        return OVMS_EIO;
    for (int k = 0; k < 5; k++)
        store_bind_text(s, 1 + k, ARG(k), ARGN(k));
    sqlite3_bind_int64(s, 6, store_now());
    return store_step_done(&st->w, s);
}

static int op_prov_remove(ovms_store_t *st, ovms_store_req_t *req)
{
    sqlite3_stmt *s = store_stmt(&st->w, "DELETE FROM provisioning WHERE apkey = ?1");
    int rc;
    if (!s)
        return OVMS_EIO;
    store_bind_text(s, 1, ARG(0), ARGN(0));
    rc = store_step_done(&st->w, s);
    return rc == 0 && sqlite3_changes(st->w.db) == 0 ? OVMS_ENOTFOUND : rc;
}

/* ---- housekeeping ------------------------------------------------------------- */

int store_expire_batch(ovms_store_t *st, int64_t now, int limit)
{
    sqlite3_stmt *s = store_stmt(&st->w,
        "DELETE FROM history WHERE id IN "
        "(SELECT id FROM history WHERE expires < ?1 LIMIT ?2)");
    int rc;
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, limit);
    rc = store_step_done(&st->w, s);
    return rc < 0 ? rc : sqlite3_changes(st->w.db);
}

int store_exec_write(ovms_store_t *st, ovms_store_req_t *req)
{
    switch (req->op) {
    case OP_OWNER_PUT: return op_owner_put(st, req);
    case OP_OWNER_REMOVE: return op_owner_remove(st, req);
    case OP_VEHICLE_PUT: return op_vehicle_put(st, req);
    case OP_VEHICLE_REMOVE: return op_vehicle_remove(st, req);
    case OP_MSG_PUT: return op_msg_put(st, req);
    case OP_PTOKEN_SET: return op_ptoken_set(st, req);
    case OP_HIST_PUT: return op_hist_put(st, req);
    case OP_UTIL_ADD: return op_util_add(st, req);
    case OP_PUSHSUB_PUT: return op_pushsub_put(st, req);
    case OP_PROV_PUT: return op_prov_put(st, req);
    case OP_PROV_REMOVE: return op_prov_remove(st, req);
    case OP_TOKEN_PUT: return store_op_token_put(st, req);
    case OP_TOKEN_REMOVE: return store_op_token_remove(st, req);
    case OP_TOKEN_USED: return store_op_token_used(st, req);
    case OP_APPLY: return store_apply(st, req);
    default: return OVMS_EINVAL;
    }
}
