/*
 * read.c -- the read operations, run by the reader thread on its own
 * connection (WAL: reads see every committed write and never wait for the
 * writer's fsync). Each operation runs in one read transaction so that its
 * queries see a single snapshot.
 * Threading: reader thread only.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARG(k) (req->s[k])

static void int_cell(char *buf, size_t cap, int64_t v)
{
    snprintf(buf, cap, "%lld", (long long)v);
}

/* Step through a statement, adding each row as text. */
static int rows_from_stmt(store_conn_t *c, sqlite3_stmt *s, store_rows_builder_t *b)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        store_rows_add_stmt(b, s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? store_rows_end(b) : store_sql_error(c->db, rc);
}

static int op_msg_list(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = store_stmt(c,
        "SELECT code, payload, paranoid, ptoken, received FROM messages "
        "WHERE vehicleid = ?1 AND (paranoid = 0 OR "
        "  ptoken = (SELECT ptoken FROM vehicles WHERE vehicleid = ?1)) "
        "ORDER BY CASE code WHEN 'F' THEN 0 WHEN 'S' THEN 1 ELSE 2 END, code");
    int rc;

    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    store_rows_begin(&b, &req->rows, 5);
    if ((rc = rows_from_stmt(c, s, &b)) < 0)
        return rc;
    s = store_stmt(c, "SELECT coalesce((SELECT max(received) FROM messages WHERE vehicleid = ?1), "
                      "created) FROM vehicles WHERE vehicleid = ?1 AND deleted = 0");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    req->value = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? OVMS_ENOTFOUND : store_sql_error(c->db, rc);
}

static int op_hist_summary(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = store_stmt(c,
        "SELECT type, count(DISTINCT recno), count(*), "
        "  sum(length(CAST(type AS BLOB)) + length(CAST(data AS BLOB)) "
        "      + length(CAST(vehicleid AS BLOB)) + 20), min(ts), max(ts) "
        "FROM history WHERE vehicleid = ?1 AND ts > ?2 GROUP BY type ORDER BY type");
    int rc;

    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, req->i[0]);
    store_rows_begin(&b, &req->rows, 6);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char n1[24], n2[24], n3[24], first[20], last[20];
        int_cell(n1, sizeof n1, sqlite3_column_int64(s, 1));
        int_cell(n2, sizeof n2, sqlite3_column_int64(s, 2));
        int_cell(n3, sizeof n3, sqlite3_column_int64(s, 3));
        const char *cells[6] = { (const char *)sqlite3_column_text(s, 0), n1, n2, n3,
                                 store_ts(sqlite3_column_int64(s, 4), first),
                                 store_ts(sqlite3_column_int64(s, 5), last) };
        store_rows_add(&b, cells, NULL);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? store_rows_end(&b) : store_sql_error(c->db, rc);
}

static int op_hist_records(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = store_stmt(c,
        "SELECT ts, recno, data FROM history WHERE vehicleid = ?1 AND type = ?2 AND ts > ?3 "
        "ORDER BY ts, recno");
    int rc;

    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    store_bind_text(s, 2, ARG(1), req->n[1]);
    sqlite3_bind_int64(s, 3, req->i[0]);
    store_rows_begin(&b, &req->rows, 3);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char ts[20], recno[24];
        int_cell(recno, sizeof recno, sqlite3_column_int64(s, 1));
        const char *cells[3] = { store_ts(sqlite3_column_int64(s, 0), ts), recno,
                                 (const char *)sqlite3_column_text(s, 2) };
        size_t lens[3] = { strlen(ts), strlen(recno), (size_t)sqlite3_column_bytes(s, 2) };
        store_rows_add(&b, cells, lens);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? store_rows_end(&b) : store_sql_error(c->db, rc);
}

/* One row per day: the four counters summed over all origins. */
static int op_util_list(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = store_stmt(c,
        "SELECT ts, recno, sum(CAST(data AS INTEGER)) FROM history "
        "WHERE vehicleid = ?1 AND type = '" UTIL_TYPE "' AND recno BETWEEN 0 AND 3 "
        "GROUP BY ts, recno ORDER BY ts DESC");
    int64_t day = -1, counter[4] = { 0 };
    int rc, days = 0;

    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    store_rows_begin(&b, &req->rows, 5);
    for (;;) {
        rc = sqlite3_step(s);
        int64_t ts = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -2;
        if (day != -1 && ts != day) {
            char date[20], v[4][24];
            store_ts(day, date);
            date[10] = '\0';
            for (int k = 0; k < 4; k++)
                int_cell(v[k], sizeof v[k], counter[k]);
            const char *cells[5] = { date, v[0], v[1], v[2], v[3] };
            store_rows_add(&b, cells, NULL);
            memset(counter, 0, sizeof counter);
            if (++days == 90)
                break;
        }
        if (rc != SQLITE_ROW)
            break;
        day = ts;
        counter[sqlite3_column_int(s, 1)] = sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? store_rows_end(&b) : store_sql_error(c->db, rc);
}

static int op_owner_list(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = store_stmt(c,
        "SELECT id, name, mail, status, coalesce((SELECT group_concat(vehicleid, ' ') FROM "
        "  (SELECT vehicleid FROM vehicles WHERE owner = o.id AND deleted = 0 "
        "   ORDER BY vehicleid)), ''), changed, origin, seq "
        "FROM owners o WHERE deleted = 0 ORDER BY id");
    if (!s)
        return OVMS_EIO;
    store_rows_begin(&b, &req->rows, 8);
    return rows_from_stmt(c, s, &b);
}

static int op_vehicle_list(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = store_stmt(c,
        "SELECT v.vehicleid, v.owner, coalesce(o.name, ''), v.vtype, v.v_server, "
        "  (SELECT max(received) FROM messages m WHERE m.vehicleid = v.vehicleid), "
        "  v.changed, v.origin, v.seq "
        "FROM vehicles v LEFT JOIN owners o ON o.id = v.owner "
        "WHERE v.deleted = 0 ORDER BY v.vehicleid");
    int rc;

    if (!s)
        return OVMS_EIO;
    store_rows_begin(&b, &req->rows, 9);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char last[20] = "";
        const char *cells[9];
        if (sqlite3_column_type(s, 5) != SQLITE_NULL)
            store_ts(sqlite3_column_int64(s, 5), last);
        for (int k = 0; k < 9; k++)
            cells[k] = (const char *)sqlite3_column_text(s, k);
        cells[5] = last;
        store_rows_add(&b, cells, NULL);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? store_rows_end(&b) : store_sql_error(c->db, rc);
}

static int op_prov(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = ARG(0)
        ? store_stmt(c, "SELECT apkey, vehicleid, token, digest, record FROM provisioning "
                        "WHERE apkey = ?1")
        : store_stmt(c, "SELECT apkey, vehicleid, token, digest, record FROM provisioning "
                        "ORDER BY apkey");
    int rc;
    if (!s)
        return OVMS_EIO;
    if (ARG(0))
        sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    store_rows_begin(&b, &req->rows, 5);
    rc = rows_from_stmt(c, s, &b);
    if (rc == 0 && ARG(0) && req->rows.nrows == 0)
        return OVMS_ENOTFOUND;
    return rc;
}

static int op_pushsub_list(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = store_stmt(c,
        "SELECT owner, appid, pushtype, keytype, keyvalue FROM pushsubs WHERE vehicleid = ?1 "
        "ORDER BY owner, appid");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    store_rows_begin(&b, &req->rows, 5);
    return rows_from_stmt(c, s, &b);
}

static int op_hist_list(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    sqlite3_stmt *s = store_stmt(c,
        "SELECT type, ts, recno, expires, data FROM history "
        "WHERE vehicleid = ?1 AND (?2 IS NULL OR type = ?2) ORDER BY type, ts, recno");
    int rc;

    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, ARG(0), -1, SQLITE_TRANSIENT);
    if (ARG(1))
        sqlite3_bind_text(s, 2, ARG(1), -1, SQLITE_TRANSIENT);
    store_rows_begin(&b, &req->rows, 5);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char ts[20], exp[20], recno[24];
        int_cell(recno, sizeof recno, sqlite3_column_int64(s, 2));
        const char *cells[5] = { (const char *)sqlite3_column_text(s, 0),
                                 store_ts(sqlite3_column_int64(s, 1), ts), recno,
                                 store_ts(sqlite3_column_int64(s, 3), exp),
                                 (const char *)sqlite3_column_text(s, 4) };
        size_t lens[5] = { (size_t)sqlite3_column_bytes(s, 0), strlen(ts), strlen(recno),
                           strlen(exp), (size_t)sqlite3_column_bytes(s, 4) };
        store_rows_add(&b, cells, lens);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? store_rows_end(&b) : store_sql_error(c->db, rc);
}

/* ---- replication records ---------------------------------------------------- */

typedef struct change {
    int64_t seq;
    char *text;
} change_t;

typedef struct changes {
    change_t *v;
    size_t n, cap;
} changes_t;

static int add_change(changes_t *cs, int64_t seq, const char *text, size_t len)
{
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 64;
        change_t *grown = realloc(cs->v, cap * sizeof *grown);
        if (!grown)
            return OVMS_ENOMEM;
        cs->v = grown;
        cs->cap = cap;
    }
    cs->v[cs->n].text = strndup(text, len);
    if (!cs->v[cs->n].text)
        return OVMS_ENOMEM;
    cs->v[cs->n++].seq = seq;
    return 0;
}

static ovms_str_t col(sqlite3_stmt *s, int i)
{
    const char *p = (const char *)sqlite3_column_text(s, i);
    return (ovms_str_t){ p ? p : "", p ? (size_t)sqlite3_column_bytes(s, i) : 0 };
}

static ovms_change_t change_of(sqlite3_stmt *s, int at, char *ts)
{
    ovms_change_t ch = { col(s, at), col(s, at + 1), (uint64_t)sqlite3_column_int64(s, at + 2) };
    if (ts)
        ch.changed = (ovms_str_t){ ts, strlen(ts) };
    return ch;
}

/* Each query yields rows of one record kind; fmt turns a row into text. */
typedef int (*change_fmt_fn)(sqlite3_stmt *s, char *buf, size_t cap);

static int fmt_owner(sqlite3_stmt *s, char *buf, size_t cap)
{
    ovms_repl_t r = { .kind = 'O' };
    char id[24];
    int_cell(id, sizeof id, sqlite3_column_int64(s, 0));
    r.ownerid = ovms_str_c(id);
    r.name = col(s, 1);
    r.mail = col(s, 2);
    r.pwhash = col(s, 3);
    r.status = sqlite3_column_int64(s, 4);
    r.deleted = sqlite3_column_int(s, 5);
    r.ch = change_of(s, 6, NULL);
    return ovms_repl_format(&r, buf, cap);
}

static int fmt_vehicle(sqlite3_stmt *s, char *buf, size_t cap)
{
    ovms_repl_t r = { .kind = 'V' };
    char owner[24];
    int_cell(owner, sizeof owner, sqlite3_column_int64(s, 1));
    r.vehicle = col(s, 0);
    r.owner = ovms_str_c(owner);
    r.carpass = col(s, 2);
    r.v_server = col(s, 3);
    r.deleted = sqlite3_column_int(s, 4);
    r.ch = change_of(s, 5, NULL);
    /* appended (the extension rule): the incarnation, so that a node that
     * missed a removal still sees that the vehicle was made again */
    char created[24];
    int_cell(created, sizeof created, sqlite3_column_int64(s, 8));
    r.extra = ovms_str_c(created);
    return ovms_repl_format(&r, buf, cap);
}

static int fmt_token(sqlite3_stmt *s, char *buf, size_t cap)
{
    ovms_repl_t r = { .kind = 'K' };
    char owner[24];
    int_cell(owner, sizeof owner, sqlite3_column_int64(s, 1));
    r.tokenhash = col(s, 0);
    r.ownerid = ovms_str_c(owner);
    r.prefix = col(s, 2);
    r.application = col(s, 3);
    r.purpose = col(s, 4);
    r.created = col(s, 5);
    r.deleted = sqlite3_column_int(s, 6);
    r.ch = change_of(s, 7, NULL);
    r.permit = col(s, 10);
    return ovms_repl_format(&r, buf, cap);
}

static int fmt_ptoken(sqlite3_stmt *s, char *buf, size_t cap)
{
    ovms_replmsg_t m = { .code = 'E' };
    m.vehicle = col(s, 0);
    m.ptoken = col(s, 1);
    m.ch = change_of(s, 2, NULL);
    return ovms_replmsg_format(&m, buf, cap);
}

static int fmt_message(sqlite3_stmt *s, char *buf, size_t cap)
{
    ovms_replmsg_t m = { 0 };
    char ts[20];
    m.vehicle = col(s, 0);
    m.code = col(s, 1).len ? col(s, 1).ptr[0] : '?';
    m.payload = col(s, 2);
    m.paranoid = sqlite3_column_int(s, 3);
    m.ptoken = col(s, 4);
    store_ts(sqlite3_column_int64(s, 5), ts);
    m.ch = change_of(s, 5, ts);
    return ovms_replmsg_format(&m, buf, cap);
}

static int fmt_history(sqlite3_stmt *s, char *buf, size_t cap)
{
    ovms_replmsg_t m = { .code = 'H' };
    char ts[20], exp[20];
    m.vehicle = col(s, 0);
    m.type = col(s, 1);
    m.recno = sqlite3_column_int64(s, 2);
    store_ts(sqlite3_column_int64(s, 3), ts);
    m.expires = ovms_str_c(store_ts(sqlite3_column_int64(s, 4), exp));
    m.data = col(s, 5);
    m.ch = change_of(s, 5, ts);     /* changed is the record's timestamp */
    return ovms_replmsg_format(&m, buf, cap);
}

static int collect(store_conn_t *c, const char *sql, change_fmt_fn fmt, const char *origin,
                   int64_t after, int64_t limit, changes_t *cs)
{
    sqlite3_stmt *s = store_stmt(c, sql);
    char buf[8192];
    int rc;

    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int64(s, 3, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int n = fmt(s, buf, sizeof buf);
        int64_t seq = sqlite3_column_int64(s, sqlite3_column_count(s) - 1);  /* seq: last */
        if (n > 0 && add_change(cs, seq, buf, (size_t)n) < 0) {
            sqlite3_reset(s);
            return OVMS_ENOMEM;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : store_sql_error(c->db, rc);
}

static int by_seq(const void *a, const void *b)
{
    int64_t x = ((const change_t *)a)->seq, y = ((const change_t *)b)->seq;
    return x < y ? -1 : x > y;
}

/* One origin's records with seq > after, at most limit, sorted by seq (the
 * six queries each stop at limit, so their merge holds the first limit). */
static int origin_changes(store_conn_t *c, const char *origin, int64_t after, int64_t limit,
                          changes_t *cs)
{
    static const struct {
        const char *sql;
        change_fmt_fn fmt;
    } feeds[] = {
        { "SELECT id, name, mail, pwhash, status, deleted, changed, origin, seq "
          "FROM owners WHERE origin = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3", fmt_owner },
        { "SELECT vehicleid, owner, carpass, v_server, deleted, changed, origin, seq, created, seq "
          "FROM vehicles WHERE origin = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3", fmt_vehicle },
        { "SELECT hash, owner, prefix, application, purpose, created, deleted, changed, origin, "
          "seq, permit, seq FROM apitokens WHERE origin = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
          fmt_token },
        { "SELECT vehicleid, ptoken, ptoken_changed, ptoken_origin, ptoken_seq FROM vehicles "
          "WHERE ptoken_origin = ?1 AND ptoken_seq > ?2 AND ptoken <> '' "
          "ORDER BY ptoken_seq LIMIT ?3", fmt_ptoken },
        { "SELECT vehicleid, code, payload, paranoid, ptoken, received, origin, seq "
          "FROM messages WHERE origin = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3", fmt_message },
        { "SELECT vehicleid, type, recno, ts, expires, data, origin, seq "
          "FROM history WHERE origin = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3", fmt_history },
    };
    size_t first = cs->n;
    for (size_t k = 0; k < sizeof feeds / sizeof feeds[0]; k++) {
        int rc = collect(c, feeds[k].sql, feeds[k].fmt, origin, after, limit, cs);
        if (rc < 0)
            return rc;
    }
    if (cs->n > first)
        qsort(cs->v + first, cs->n - first, sizeof *cs->v, by_seq);
    while (cs->n - first > (size_t)limit)
        free(cs->v[--cs->n].text);
    return 0;
}

static void free_changes(changes_t *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        free(cs->v[i].text);
    free(cs->v);
}

static int op_changes(store_conn_t *c, ovms_store_req_t *req)
{
    changes_t cs = { 0 };
    store_rows_builder_t b;
    int rc = origin_changes(c, ARG(0), req->i[0], req->i[1], &cs);

    if (rc == 0) {
        store_rows_begin(&b, &req->rows, 2);
        for (size_t i = 0; i < cs.n; i++) {
            char seq[24];
            int_cell(seq, sizeof seq, cs.v[i].seq);
            const char *cells[2] = { seq, cs.v[i].text };
            store_rows_add(&b, cells, NULL);
        }
        rc = store_rows_end(&b);
    }
    free_changes(&cs);
    return rc;
}

/* The cursor for origin in "ORIGIN:SEQ ..." (0 when not named). */
static int64_t cursor_of(const char *cursors, const char *origin)
{
    size_t n = strlen(origin);
    for (const char *p = cursors; p && *p;) {
        while (*p == ' ')
            p++;
        if (!strncmp(p, origin, n) && p[n] == ':')
            return atoll(p + n + 1);
        p = strchr(p, ' ');
    }
    return 0;
}

static int op_changes_after(store_conn_t *c, ovms_store_req_t *req)
{
    sqlite3_stmt *s = store_stmt(c, "SELECT origin, seq FROM watermarks ORDER BY origin");
    store_marks_t marks = { 0 };
    store_rows_builder_t b;
    int64_t room = req->i[0];
    int rc;

    if (!s)
        return OVMS_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && marks.n < STORE_MAX_ORIGINS) {
        snprintf(marks.v[marks.n].origin, 33, "%s", (const char *)sqlite3_column_text(s, 0));
        marks.v[marks.n++].seq = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    store_rows_begin(&b, &req->rows, 3);
    for (int i = 0; i < marks.n && room > 0; i++) {
        const ovms_store_wm_t *w = &marks.v[i];
        int64_t after = cursor_of(ARG(0), w->origin);
        changes_t cs = { 0 };
        char seq[24];
        if (after >= w->seq)
            continue;
        if ((rc = origin_changes(c, w->origin, after, room, &cs)) < 0) {
            free_changes(&cs);
            break;
        }
        for (size_t k = 0; k < cs.n; k++) {
            int_cell(seq, sizeof seq, cs.v[k].seq);
            const char *cells[3] = { w->origin, seq, cs.v[k].text };
            store_rows_add(&b, cells, NULL);
        }
        room -= (int64_t)cs.n;
        if (room > 0) {             /* all of it: say how far that reaches */
            int_cell(seq, sizeof seq, w->seq);
            const char *cells[3] = { w->origin, seq, "" };
            store_rows_add(&b, cells, NULL);
        }
        free_changes(&cs);
    }
    int end = store_rows_end(&b);
    return rc < 0 && rc != SQLITE_DONE ? store_sql_error(c->db, rc) : end;
}

static int dispatch(store_conn_t *c, ovms_store_req_t *req)
{
    switch (req->op) {
    case OP_MSG_LIST: return op_msg_list(c, req);
    case OP_HIST_SUMMARY: return op_hist_summary(c, req);
    case OP_HIST_RECORDS: return op_hist_records(c, req);
    case OP_UTIL_LIST: return op_util_list(c, req);
    case OP_OWNER_LIST: return op_owner_list(c, req);
    case OP_VEHICLE_LIST: return op_vehicle_list(c, req);
    case OP_PROV_LIST:
    case OP_PROV_GET: return op_prov(c, req);
    case OP_PUSHSUB_LIST: return op_pushsub_list(c, req);
    case OP_HIST_LIST: return op_hist_list(c, req);
    case OP_CHANGES: return op_changes(c, req);
    case OP_CHANGES_AFTER: return op_changes_after(c, req);
    case OP_DIGEST: return store_digest(c, req);
    case OP_TOKEN_LIST: return store_op_token_list(c, req);
    default: return OVMS_EINVAL;
    }
}

int store_exec_read_here(store_conn_t *c, ovms_store_req_t *req)
{
    return dispatch(c, req);
}

int store_exec_read(ovms_store_t *st, store_conn_t *c, ovms_store_req_t *req)
{
    (void)st;
    int rc = store_exec(c->db, "BEGIN");
    if (rc < 0)
        return rc;
    rc = dispatch(c, req);
    store_exec(c->db, "COMMIT");
    return rc;
}
