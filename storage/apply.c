/*
 * apply.c -- records received from peers, merged into the store
 * last-writer-wins (PROTOCOL, MP-S "Merge rule"), and the watermarks that
 * make each record take effect exactly once.
 *
 * A record is new when its seq is above this node's watermark for its
 * origin; only new records are applied, and the watermark moves in the same
 * transaction, so a record arriving twice (around a ring, or again after a
 * crash before the peer heard of the commit) changes nothing the second
 * time. A new record replaces the current version of its key when its
 * (changed, origin, seq) is greater; either way it is then part of what
 * this node forwards, because the forwarding reads the tables themselves
 * (they are the replication log: each row keeps the origin and seq of the
 * version it holds, and a newer version replaces an older one in place).
 *
 * Data of a vehicle (stored messages, history) is kept whether or not the
 * vehicle is known yet or in this node's scope: records of different
 * origins arrive in any order, and a node forwards what it does not serve.
 * Data for a removed vehicle (a tombstone) is dropped, and a tombstone or a
 * new incarnation arriving takes the data with it, as a removal does
 * locally.
 *
 * Watermarks and the change stamp rule live here too; see
 * docs/replication.md for why a local change never takes a stamp earlier
 * than the version it replaces.
 * Threading: writer thread only (store_marks_load also at open).
 */
#include "store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLOCK_AHEAD_WARN 300       /* seconds a stamp may be ahead before we say so */
#define MAX_NOTES 8                 /* per request; the rest are counted */

/* ---- watermarks ----------------------------------------------------------------------------- */

int store_marks_load(store_conn_t *c, store_marks_t *m)
{
    sqlite3_stmt *s = store_stmt(c, "SELECT origin, seq FROM watermarks ORDER BY origin");
    int rc;
    memset(m, 0, sizeof *m);
    if (!s)
        return OVMS_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        store_mark_set(m, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1));
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : store_sql_error(c->db, rc);
}

int64_t ovms_store_wm_find(const ovms_store_wm_t *v, int n, const char *origin)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i].origin, origin))
            return v[i].seq;
    return 0;
}

int ovms_store_wm_raise(ovms_store_wm_t *v, int *n, int cap, const char *origin, int64_t seq)
{
    int i;
    for (i = 0; i < *n; i++)
        if (!strcmp(v[i].origin, origin))
            break;
    if (i == *n) {
        if (*n == cap)
            return OVMS_ERANGE;
        snprintf(v[i].origin, sizeof v[i].origin, "%.32s", origin);
        v[i].seq = 0;
        (*n)++;
    }
    if (seq > v[i].seq)
        v[i].seq = seq;
    return 0;
}

int64_t store_mark_get(const store_marks_t *m, const char *origin)
{
    return ovms_store_wm_find(m->v, m->n, origin);
}

void store_mark_set(store_marks_t *m, const char *origin, int64_t seq)
{
    ovms_store_wm_raise(m->v, &m->n, STORE_MAX_ORIGINS, origin, seq);  /* (full: see apply_one) */
}

void store_marks_advertised(const ovms_store_t *st, store_marks_t *out)
{
    *out = st->marks;
    store_mark_set(out, st->node_id, 0);
    for (int i = 0; i < out->n; i++)
        if (!strcmp(out->v[i].origin, st->node_id))
            out->v[i].seq = st->catch_up_own ? 0 : st->own_seq;
}

/* ---- change stamps -------------------------------------------------------------------------- */

int64_t store_stamp_after(const ovms_store_t *st, int64_t old_changed, const char *old_origin)
{
    int64_t now = store_now();
    if (old_changed < now)
        return now;
    /* the version replaced is stamped now or later (another node's clock is
     * ahead): take its stamp, one second later unless (origin, seq) already
     * makes ours the greater (ours, or an origin that sorts below ours) */
    return strcmp(st->node_id, old_origin) >= 0 ? old_changed : old_changed + 1;
}

/* (changed, origin, seq) of a against b: >0 when a is the later version. */
static int version_cmp(int64_t ca, const char *oa, int64_t sa, int64_t cb, const char *ob,
                       int64_t sb)
{
    if (ca != cb)
        return ca < cb ? -1 : 1;
    int o = strcmp(oa, ob);
    if (o)
        return o;
    return sa < sb ? -1 : sa > sb;
}

/* ---- notes for the log ----------------------------------------------------------------------- */

typedef struct apply_ctx {
    ovms_store_t *st;
    store_rows_builder_t notes;
    int nnotes, dropped_notes;
    int64_t now;
} apply_ctx_t;

static void note(apply_ctx_t *a, const char *level, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    if (a->nnotes >= MAX_NOTES) {
        a->dropped_notes++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    const char *cells[2] = { level, text };
    store_rows_add(&a->notes, cells, NULL);
    a->nnotes++;
}

static int64_t unix_of(ovms_str_t ts)
{
    int64_t t = 0;
    ovms_timestamp_parse(ts, &t);
    return t;
}

static void check_clock(apply_ctx_t *a, const ovms_change_t *ch, int64_t changed)
{
    if (changed > a->now + CLOCK_AHEAD_WARN)
        note(a, "warn", "clock: a record from %.*s (seq %llu) is stamped %.*s, %lld s ahead of "
             "this node's clock: applied; check the clocks of both nodes",
             (int)ch->origin.len, ch->origin.ptr, (unsigned long long)ch->seq,
             (int)ch->changed.len, ch->changed.ptr, (long long)(changed - a->now));
}

/* ---- vehicles and owners -------------------------------------------------------------------- */

typedef struct vehicle_row {
    int found, deleted;
    int64_t owner, created, changed, seq;
    char origin[33], carpass[65];
} vehicle_row_t;

static int vehicle_row(ovms_store_t *st, const char *id, vehicle_row_t *v)
{
    sqlite3_stmt *s = store_stmt(&st->w,
        "SELECT deleted, owner, created, changed, seq, origin, carpass FROM vehicles "
        "WHERE vehicleid = ?1");
    int rc;
    memset(v, 0, sizeof *v);
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        v->found = 1;
        v->deleted = sqlite3_column_int(s, 0);
        v->owner = sqlite3_column_int64(s, 1);
        v->created = sqlite3_column_int64(s, 2);
        v->changed = unix_of(ovms_str_c((const char *)sqlite3_column_text(s, 3)));
        v->seq = sqlite3_column_int64(s, 4);
        snprintf(v->origin, sizeof v->origin, "%s", (const char *)sqlite3_column_text(s, 5));
        snprintf(v->carpass, sizeof v->carpass, "%s", (const char *)sqlite3_column_text(s, 6));
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_error(st->w.db, rc);
}

/* The loser's side of a conflict says what it lost: a live vehicle made
 * here, replaced by one created independently elsewhere (another
 * incarnation: the same id made on two nodes apart). A removal or a change
 * of the same vehicle from another node is ordinary news. No secrets. */
static void note_overwritten(apply_ctx_t *a, const char *id, const vehicle_row_t *cur,
                             const ovms_repl_t *r, int64_t owner, int64_t created)
{
    if (!cur->found || cur->deleted)
        return;
    if (r->deleted || created == cur->created) {
        note(a, "info", "vehicle %s %s by %.*s", id, r->deleted ? "removed" : "changed",
             (int)r->ch.origin.len, r->ch.origin.ptr);
        return;
    }
    if (strcmp(cur->origin, a->st->node_id) != 0)
        return;
    note(a, "warn", "conflict: vehicle %s as made here (owner %lld, created %lld, seq %lld) "
         "was overwritten by the later one made on %.*s (owner %lld, created %lld, changed %.*s); "
         "its stored data is gone here", id, (long long)cur->owner, (long long)cur->created,
         (long long)cur->seq, (int)r->ch.origin.len, r->ch.origin.ptr, (long long)owner,
         (long long)created, (int)r->ch.changed.len, r->ch.changed.ptr);
}

static int apply_rv(apply_ctx_t *a, const ovms_repl_t *r)
{
    ovms_store_t *st = a->st;
    char id[33], origin[33];
    int64_t owner, created = 0, changed = unix_of(r->ch.changed), purged;
    vehicle_row_t cur;
    int rc = 0;

    ovms_vehicleid_normalize(r->vehicle, id, sizeof id);
    ovms_str_copy(r->ch.origin, origin, sizeof origin);
    ovms_int_parse(r->owner, &owner);
    if (r->extra.len)
        ovms_int_parse(r->extra, &created);
    if ((rc = vehicle_row(st, id, &cur)) < 0)
        return rc;
    if (cur.found && version_cmp(changed, origin, (int64_t)r->ch.seq, cur.changed, cur.origin,
                                 cur.seq) <= 0)
        return 0;                   /* an older version: no effect */
    if (!created)                   /* from a peer that does not send it */
        created = cur.found && !cur.deleted ? cur.created : changed;
    note_overwritten(a, id, &cur, r, owner, created);
    /* a removal takes the data with it; another incarnation what is older
     * than itself (data of either may have come first, from other origins) */
    int new_life = !cur.found || cur.deleted || created != cur.created;
    if (r->deleted)
        rc = store_purge_vehicle_data(st, id, &purged);
    else if (new_life)
        rc = store_purge_older_data(st, id, created);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = store_stmt(&st->w,
        "INSERT INTO vehicles(vehicleid, owner, carpass, v_server, created, deleted, changed, "
        "  origin, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
        "ON CONFLICT(vehicleid) DO UPDATE SET owner = excluded.owner, "
        "  carpass = excluded.carpass, v_server = excluded.v_server, created = excluded.created, "
        "  deleted = excluded.deleted, changed = excluded.changed, origin = excluded.origin, "
        "  seq = excluded.seq, ptoken = CASE WHEN ?10 THEN '' ELSE ptoken END, "
        "  ptoken_changed = CASE WHEN ?10 THEN '' ELSE ptoken_changed END, "
        "  ptoken_origin = CASE WHEN ?10 THEN '' ELSE ptoken_origin END, "
        "  ptoken_seq = CASE WHEN ?10 THEN 0 ELSE ptoken_seq END");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, owner);
    store_bind_text(s, 3, r->carpass.ptr, r->carpass.len);
    store_bind_text(s, 4, r->v_server.ptr, r->v_server.len);
    sqlite3_bind_int64(s, 5, created);
    sqlite3_bind_int(s, 6, r->deleted);
    store_bind_text(s, 7, r->ch.changed.ptr, r->ch.changed.len);
    sqlite3_bind_text(s, 8, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 9, (int64_t)r->ch.seq);
    sqlite3_bind_int(s, 10, r->deleted);     /* the token is a register of its own */
    store_mark_vehicle(st, id);
    return store_step_done(&st->w, s);
}

/* Whether the row that s (bound, selecting changed, origin, seq) finds is
 * the later version: 1 when r loses to it (or equals it), 0 when r wins or
 * there is none, or an error. */
static int current_wins(ovms_store_t *st, sqlite3_stmt *s, const ovms_change_t *ch)
{
    char origin[33];
    ovms_str_copy(ch->origin, origin, sizeof origin);
    int rc = sqlite3_step(s);
    int wins = rc == SQLITE_ROW &&
        version_cmp(unix_of(ch->changed), origin, (int64_t)ch->seq,
                    unix_of(ovms_str_c((const char *)sqlite3_column_text(s, 0))),
                    (const char *)sqlite3_column_text(s, 1), sqlite3_column_int64(s, 2)) <= 0;
    sqlite3_reset(s);
    return rc != SQLITE_ROW && rc != SQLITE_DONE ? store_sql_error(st->w.db, rc) : wins;
}

static int apply_ro(apply_ctx_t *a, const ovms_repl_t *r)
{
    ovms_store_t *st = a->st;
    char origin[33];
    int64_t id;
    int rc;

    ovms_int_parse(r->ownerid, &id);
    ovms_str_copy(r->ch.origin, origin, sizeof origin);
    sqlite3_stmt *s = store_stmt(&st->w, "SELECT changed, origin, seq FROM owners WHERE id = ?1");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_int64(s, 1, id);
    if ((rc = current_wins(st, s, &r->ch)) != 0)
        return rc < 0 ? rc : 0;
    s = store_stmt(&st->w,
        "INSERT INTO owners(id, name, mail, pwhash, status, deleted, changed, origin, seq) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(id) DO UPDATE SET "
        "name = excluded.name, mail = excluded.mail, pwhash = excluded.pwhash, "
        "status = excluded.status, deleted = excluded.deleted, changed = excluded.changed, "
        "origin = excluded.origin, seq = excluded.seq");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, r->name.ptr, r->name.len);
    store_bind_text(s, 3, r->mail.ptr, r->mail.len);
    store_bind_text(s, 4, r->pwhash.ptr, r->pwhash.len);
    sqlite3_bind_int64(s, 5, r->status);
    sqlite3_bind_int(s, 6, r->deleted);
    store_bind_text(s, 7, r->ch.changed.ptr, r->ch.changed.len);
    sqlite3_bind_text(s, 8, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 9, (int64_t)r->ch.seq);
    st->dirty.owners = 1;
    rc = store_step_done(&st->w, s);
    if (rc == OVMS_EEXIST || rc == OVMS_EIO) {
        /* the name is held by another live owner id (an owner made before
         * ids were hashes, on two nodes): keep ours, say so */
        note(a, "warn", "conflict: owner %.*s (id %lld) from %.*s not applied: the name belongs "
             "to another owner id here", (int)r->name.len, r->name.ptr, (long long)id,
             (int)r->ch.origin.len, r->ch.origin.ptr);
        return 0;
    }
    return rc;
}

/* An API token by its hash, last-writer-wins like an owner. */
static int apply_rk(apply_ctx_t *a, const ovms_repl_t *r)
{
    ovms_store_t *st = a->st;
    char origin[33], hash[65];
    int64_t owner;
    int rc;

    ovms_int_parse(r->ownerid, &owner);
    ovms_str_copy(r->ch.origin, origin, sizeof origin);
    ovms_str_copy(r->tokenhash, hash, sizeof hash);
    sqlite3_stmt *s = store_stmt(&st->w, "SELECT changed, origin, seq FROM apitokens WHERE hash = ?1");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_TRANSIENT);
    if ((rc = current_wins(st, s, &r->ch)) != 0)
        return rc < 0 ? rc : 0;
    s = store_stmt(&st->w,
        "INSERT INTO apitokens(hash, owner, prefix, application, purpose, permit, created, lastused, "
        "deleted, changed, origin, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11) "
        "ON CONFLICT(hash) DO UPDATE SET owner = excluded.owner, prefix = excluded.prefix, "
        "application = excluded.application, purpose = excluded.purpose, permit = excluded.permit, "
        "created = excluded.created, deleted = excluded.deleted, changed = excluded.changed, "
        "origin = excluded.origin, seq = excluded.seq");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, owner);
    store_bind_text(s, 3, r->prefix.ptr, r->prefix.len);
    store_bind_text(s, 4, r->application.ptr, r->application.len);
    store_bind_text(s, 5, r->purpose.ptr, r->purpose.len);
    store_bind_text(s, 6, r->permit.ptr, r->permit.len);
    store_bind_text(s, 7, r->created.ptr, r->created.len);
    sqlite3_bind_int(s, 8, r->deleted);
    store_bind_text(s, 9, r->ch.changed.ptr, r->ch.changed.len);
    sqlite3_bind_text(s, 10, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 11, (int64_t)r->ch.seq);
    st->dirty.tokens = 1;
    return store_step_done(&st->w, s);
}

/* ---- car data --------------------------------------------------------------------------------- */

/* 1 when data for this vehicle is to be kept: not for a removed one; a
 * vehicle not known yet (its record comes from another origin) takes it. */
static int data_wanted(ovms_store_t *st, const char *id)
{
    sqlite3_stmt *s = store_stmt(&st->w, "SELECT deleted FROM vehicles WHERE vehicleid = ?1");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s), removed = rc == SQLITE_ROW && sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_sql_error(st->w.db, rc);
    return !removed;
}

static int apply_message(apply_ctx_t *a, const ovms_replmsg_t *m, const char *id,
                         const char *origin)
{
    ovms_store_t *st = a->st;
    char code[2] = { m->code, 0 };
    int64_t received = unix_of(m->ch.changed);
    sqlite3_stmt *s = store_stmt(&st->w,
        "INSERT INTO messages(vehicleid, code, payload, received, paranoid, ptoken, origin, seq) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(vehicleid, code) DO UPDATE SET "
        "payload = excluded.payload, received = excluded.received, "
        "paranoid = excluded.paranoid, ptoken = excluded.ptoken, "
        "origin = excluded.origin, seq = excluded.seq "
        "WHERE excluded.received > messages.received OR (excluded.received = messages.received "
        "  AND (excluded.origin > messages.origin OR (excluded.origin = messages.origin "
        "  AND excluded.seq > messages.seq)))");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, code, 1, SQLITE_TRANSIENT);
    store_bind_text(s, 3, m->payload.ptr, m->payload.len);
    sqlite3_bind_int64(s, 4, received);
    sqlite3_bind_int(s, 5, m->paranoid);
    store_bind_text(s, 6, m->ptoken.ptr, m->ptoken.len);
    sqlite3_bind_text(s, 7, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 8, (int64_t)m->ch.seq);
    check_clock(a, &m->ch, received);
    return store_step_done(&st->w, s);
}

/* The car's paranoid token: it lives on the vehicle row, so it needs the
 * vehicle; a later token invalidates paranoid messages made under others. */
static int apply_ptoken(apply_ctx_t *a, const ovms_replmsg_t *m, const char *id,
                        const char *origin)
{
    ovms_store_t *st = a->st;
    int64_t changed = unix_of(m->ch.changed);
    sqlite3_stmt *s = store_stmt(&st->w,
        "UPDATE vehicles SET ptoken = ?1, ptoken_changed = ?2, ptoken_origin = ?3, "
        "ptoken_seq = ?4 WHERE vehicleid = ?5 AND deleted = 0 AND (ptoken_changed < ?2 OR "
        "(ptoken_changed = ?2 AND (ptoken_origin < ?3 OR (ptoken_origin = ?3 "
        "AND ptoken_seq < ?4)))) AND ?6 >= created - ?7");
    int rc;
    if (!s)
        return OVMS_EIO;
    store_bind_text(s, 1, m->ptoken.ptr, m->ptoken.len);
    store_bind_text(s, 2, m->ch.changed.ptr, m->ch.changed.len);
    sqlite3_bind_text(s, 3, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, (int64_t)m->ch.seq);
    sqlite3_bind_text(s, 5, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 6, changed);          /* not an earlier vehicle's token */
    sqlite3_bind_int(s, 7, STORE_INCARNATION_GRACE);
    check_clock(a, &m->ch, changed);
    if ((rc = store_step_done(&st->w, s)) < 0 || sqlite3_changes(st->w.db) == 0)
        return rc;
    store_mark_vehicle(st, id);
    s = store_stmt(&st->w, "DELETE FROM messages WHERE vehicleid = ?1 AND paranoid = 1 "
                           "AND ptoken <> ?2");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    store_bind_text(s, 2, m->ptoken.ptr, m->ptoken.len);
    return store_step_done(&st->w, s);
}

/* Historical records: the timestamp is part of the key, so the version is
 * (origin, seq); utilisation counters are kept per origin and summed. */
static int apply_history(apply_ctx_t *a, const ovms_replmsg_t *m, const char *id,
                         const char *origin)
{
    ovms_store_t *st = a->st;
    int util = ovms_str_eq(m->type, UTIL_TYPE);
    sqlite3_stmt *s = store_stmt(&st->w,
        "INSERT INTO history(vehicleid, type, recno, ts, korigin, expires, data, origin, seq) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
        "ON CONFLICT(vehicleid, type, ts, recno, korigin) DO UPDATE SET "
        "expires = excluded.expires, data = excluded.data, origin = excluded.origin, "
        "seq = excluded.seq WHERE excluded.origin > history.origin OR "
        "(excluded.origin = history.origin AND excluded.seq > history.seq)");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    store_bind_text(s, 2, m->type.ptr, m->type.len);
    sqlite3_bind_int64(s, 3, m->recno);
    sqlite3_bind_int64(s, 4, unix_of(m->ch.changed));
    sqlite3_bind_text(s, 5, util ? origin : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 6, unix_of(m->expires));
    store_bind_text(s, 7, m->data.ptr, m->data.len);
    sqlite3_bind_text(s, 8, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 9, (int64_t)m->ch.seq);
    return store_step_done(&st->w, s);
}

static int apply_r(apply_ctx_t *a, const ovms_replmsg_t *m, const char *origin)
{
    char id[33];
    ovms_vehicleid_normalize(m->vehicle, id, sizeof id);
    int wanted = data_wanted(a->st, id);
    if (wanted <= 0)
        return wanted;              /* a removed vehicle's: dropped */
    if (m->code == 'E')
        return apply_ptoken(a, m, id, origin);
    if (m->code == 'H')
        return apply_history(a, m, id, origin);
    return apply_message(a, m, id, origin);
}

/* ---- one request ------------------------------------------------------------------------------ */

/* One record line: applied when new. 1 new, 0 old, or an error. */
static int apply_one(apply_ctx_t *a, const char *line, size_t len)
{
    ovms_store_t *st = a->st;
    ovms_repl_t r;
    ovms_replmsg_t m;
    const ovms_change_t *ch;
    char origin[33];
    int rc;

    if (len < 2)
        return OVMS_EFIELDS;
    ovms_str_t body = { line + 1, len - 1 };
    if (line[0] == 'R' && (rc = ovms_repl_parse(body, &r)) == 0 && r.kind != 'W')
        ch = &r.ch;
    else if (line[0] == 'r' && (rc = ovms_replmsg_parse(body, &m)) == 0)
        ch = &m.ch;
    else
        return OVMS_EINVAL;         /* replication/ checked it: not ours to judge twice */
    ovms_str_copy(ch->origin, origin, sizeof origin);
    /* our own records come back only to a node whose database was lost:
     * applied by the merge rule alone, which makes a second copy a no-op */
    int own = !strcmp(origin, st->node_id);
    if (!own && (int64_t)ch->seq <= store_mark_get(&st->marks, origin))
        return 0;
    if (!own && st->marks.n == STORE_MAX_ORIGINS && !store_mark_get(&st->marks, origin))
        return OVMS_ERANGE;         /* more origins than a cluster has */
    if (line[0] == 'R')
        rc = r.kind == 'V' ? apply_rv(a, &r) : r.kind == 'K' ? apply_rk(a, &r) : apply_ro(a, &r);
    else
        rc = apply_r(a, &m, origin);
    if (rc < 0)
        return rc;
    if (own && (int64_t)ch->seq > st->own_seq)
        st->own_seq = (int64_t)ch->seq;     /* (a counter from before the loss that ran ahead) */
    else if (!own)
        store_mark_set(&st->marks, origin, (int64_t)ch->seq);
    if (line[0] == 'R' && r.kind == 'V' && !r.deleted) {
        int64_t t = unix_of(r.ch.changed);
        check_clock(a, &r.ch, t);
    }
    return 1;
}

static int save_marks(ovms_store_t *st, const store_marks_t *before)
{
    for (int i = 0; i < st->marks.n; i++) {
        const ovms_store_wm_t *w = &st->marks.v[i];
        if (store_mark_get(before, w->origin) == w->seq)
            continue;
        int rc = store_save_seq(&st->w, w->origin, w->seq);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int store_apply(ovms_store_t *st, ovms_store_req_t *req)
{
    apply_ctx_t a = { .st = st, .now = store_now() };
    store_marks_t *before = malloc(sizeof *before);
    const char *p = req->s[0], *end = p + req->n[0];
    int64_t own0 = st->own_seq, applied = 0;
    int rc = 0;

    if (!before)
        return OVMS_ENOMEM;
    if (req->i[0] && st->catch_up_own && (rc = store_own_caught_up(st)) == 0)
        st->dirty.replicated = 1;   /* publish the advertised watermark */
    *before = st->marks;
    store_rows_begin(&a.notes, &req->rows, 2);
    while (p < end && rc >= 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        rc = apply_one(&a, p, len);
        if (rc > 0)
            applied++;
        p += len + 1;
    }
    if (rc >= 0)
        rc = save_marks(st, before);
    if (a.dropped_notes) {
        a.nnotes = 0;
        note(&a, "warn", "(%d more notes of this kind left out)", a.dropped_notes);
    }
    if (store_rows_end(&a.notes) < 0 && rc >= 0)
        rc = OVMS_ENOMEM;
    if (rc < 0) {
        st->marks = *before;        /* the savepoint undoes the rows */
        st->own_seq = own0;
    } else if (applied) {
        st->dirty.replicated = 1;
    }
    free(before);
    req->value = applied;
    return rc < 0 ? rc : 0;
}
