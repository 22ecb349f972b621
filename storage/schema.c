/*
 * schema.c -- the database schema, its forward migrations, and the node's
 * identity and replication counter kept in the database.
 *
 * Migration i takes a database from PRAGMA user_version i to i + 1, each in
 * its own transaction, so an interrupted upgrade leaves a consistent older
 * version behind. Every replicated row carries (origin, seq): the node that
 * made the change and that node's counter, which is also what "records
 * changed since a watermark" reads; (changed, origin, seq) orders versions
 * for last-writer-wins.
 * Threading: called by ovms_store_open before the threads start, or by the
 * writer thread.
 */
#include "store_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const migrations[] = {
    /* 0 -> 1: the first schema */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE watermarks (origin TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE owners ("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL, mail TEXT NOT NULL DEFAULT '',"
    "  pwhash TEXT NOT NULL DEFAULT '', status INTEGER NOT NULL DEFAULT 1,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  changed TEXT NOT NULL, origin TEXT NOT NULL, seq INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX owners_name ON owners(name) WHERE deleted = 0;"
    "CREATE INDEX owners_change ON owners(origin, seq);"
    "CREATE TABLE vehicles ("
    "  vehicleid TEXT PRIMARY KEY, owner INTEGER NOT NULL REFERENCES owners(id),"
    "  carpass TEXT NOT NULL, vtype TEXT NOT NULL DEFAULT '', v_server TEXT NOT NULL DEFAULT '*',"
    "  created INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,"
    "  changed TEXT NOT NULL, origin TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  ptoken TEXT NOT NULL DEFAULT '', ptoken_changed TEXT NOT NULL DEFAULT '',"
    "  ptoken_origin TEXT NOT NULL DEFAULT '', ptoken_seq INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX vehicles_owner ON vehicles(owner);"
    "CREATE INDEX vehicles_change ON vehicles(origin, seq);"
    "CREATE INDEX vehicles_ptoken_change ON vehicles(ptoken_origin, ptoken_seq);"
    "CREATE TABLE messages ("
    "  vehicleid TEXT NOT NULL REFERENCES vehicles(vehicleid), code TEXT NOT NULL,"
    "  payload TEXT NOT NULL, received INTEGER NOT NULL, paranoid INTEGER NOT NULL DEFAULT 0,"
    "  ptoken TEXT NOT NULL DEFAULT '', origin TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  PRIMARY KEY (vehicleid, code)) WITHOUT ROWID;"
    "CREATE INDEX messages_change ON messages(origin, seq);"
    "CREATE TABLE history ("
    "  id INTEGER PRIMARY KEY, vehicleid TEXT NOT NULL REFERENCES vehicles(vehicleid),"
    "  type TEXT NOT NULL, recno INTEGER NOT NULL, ts INTEGER NOT NULL,"
    "  korigin TEXT NOT NULL DEFAULT '', expires INTEGER NOT NULL, data TEXT NOT NULL,"
    "  origin TEXT NOT NULL, seq INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX history_key ON history(vehicleid, type, ts, recno, korigin);"
    "CREATE INDEX history_expires ON history(expires);"
    "CREATE INDEX history_change ON history(origin, seq);"
    "CREATE TABLE pushsubs ("
    "  owner INTEGER NOT NULL REFERENCES owners(id),"
    "  vehicleid TEXT NOT NULL REFERENCES vehicles(vehicleid), appid TEXT NOT NULL,"
    "  pushtype TEXT NOT NULL, keytype TEXT NOT NULL, keyvalue TEXT NOT NULL,"
    "  created INTEGER NOT NULL, PRIMARY KEY (owner, vehicleid, appid)) WITHOUT ROWID;"
    "CREATE INDEX pushsubs_vehicle ON pushsubs(vehicleid);"
    "CREATE TABLE provisioning ("
    "  apkey TEXT PRIMARY KEY, vehicleid TEXT NOT NULL, token TEXT NOT NULL,"
    "  digest TEXT NOT NULL, record TEXT NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;",
    /* 1 -> 2: history records per vehicle, kept exact by triggers, for the
     * per-vehicle limit (an upsert that replaces a record fires neither) */
    "CREATE TABLE history_count (vehicleid TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO history_count SELECT vehicleid, count(*) FROM history GROUP BY vehicleid;"
    "CREATE TRIGGER history_counted AFTER INSERT ON history BEGIN "
    "  INSERT INTO history_count VALUES (new.vehicleid, 1) "
    "  ON CONFLICT(vehicleid) DO UPDATE SET n = n + 1; END;"
    "CREATE TRIGGER history_uncounted AFTER DELETE ON history BEGIN "
    "  UPDATE history_count SET n = n - 1 WHERE vehicleid = old.vehicleid; END;",
    /* 2 -> 3: API tokens (HTTP-API.md §3.6), by the SHA-256 of the secret;
     * lastused is local (not replicated) */
    "CREATE TABLE apitokens ("
    "  hash TEXT PRIMARY KEY, owner INTEGER NOT NULL, prefix TEXT NOT NULL,"
    "  application TEXT NOT NULL, purpose TEXT NOT NULL, permit TEXT NOT NULL,"
    "  created TEXT NOT NULL, lastused TEXT NOT NULL DEFAULT '',"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  changed TEXT NOT NULL, origin TEXT NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX apitokens_owner ON apitokens(owner);"
    "CREATE INDEX apitokens_change ON apitokens(origin, seq);",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

int ovms_store_schema_version(void)
{
    return SCHEMA_VERSION;
}

static int user_version(sqlite3 *db, int *version)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

static int apply_migration(sqlite3 *db, int from, char *err, size_t errlen)
{
    char *msg = NULL, pragma[64];
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, migrations[from], NULL, NULL, &msg);
    if (rc == SQLITE_OK) {
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", from + 1);
        rc = sqlite3_exec(db, pragma, NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "schema migration %d -> %d failed: %s", from, from + 1,
                 msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int store_schema_migrate(sqlite3 *db, char *err, size_t errlen)
{
    int version = 0, rc = user_version(db, &version);

    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot read the database: %s", sqlite3_errstr(rc));
        return store_sql_error(db, rc);
    }
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen, "database schema version %d is newer than this program's (%d)",
                 version, SCHEMA_VERSION);
        return OVMS_ECORRUPT;
    }
    for (; version < SCHEMA_VERSION; version++) {
        rc = apply_migration(db, version, err, errlen);
        if (rc != SQLITE_OK)
            return store_sql_error(db, rc);
    }
    return 0;
}

/* A server id from the host name: upper case, A-Z 0-9 _ - only. */
static void default_node_id(char *out, size_t cap)
{
    char host[256] = "";
    size_t o = 0;

    gethostname(host, sizeof host - 1);
    for (size_t i = 0; host[i] && host[i] != '.' && o + 1 < cap && o < 32; i++) {
        char c = (char)toupper((unsigned char)host[i]);
        if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_')
            out[o++] = c;
    }
    if (o == 0)
        o = (size_t)snprintf(out, cap, "NODE1");
    out[o] = '\0';
}

int store_meta_node_id(store_conn_t *c, const char *wanted, char *out, size_t cap)
{
    sqlite3_stmt *s = store_stmt(c, "SELECT value FROM meta WHERE key = 'node_id'");
    if (!s)
        return OVMS_EIO;
    if (sqlite3_step(s) == SQLITE_ROW) {
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_reset(s);
        if (wanted && strcasecmp(wanted, out) != 0)
            return OVMS_ECONFIG;
        return 0;
    }
    sqlite3_reset(s);
    if (wanted)
        snprintf(out, cap, "%s", wanted);
    else
        default_node_id(out, cap);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    if (ovms_serverid_check(ovms_str_c(out)) < 0)
        return OVMS_ECONFIG;
    s = store_stmt(c, "INSERT INTO meta(key, value) VALUES ('node_id', ?1)");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, out, -1, SQLITE_TRANSIENT);
    return store_step_done(c, s);
}

int store_load_seq(store_conn_t *c, const char *node, int64_t *seq)
{
    sqlite3_stmt *s = store_stmt(c, "SELECT seq FROM watermarks WHERE origin = ?1");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, node, -1, SQLITE_TRANSIENT);
    *seq = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return 0;
}

int store_save_seq(store_conn_t *c, const char *node, int64_t seq)
{
    sqlite3_stmt *s = store_stmt(c, "INSERT INTO watermarks(origin, seq) VALUES (?1, ?2) "
                                    "ON CONFLICT(origin) DO UPDATE SET seq = max(seq, excluded.seq)");
    if (!s)
        return OVMS_EIO;
    sqlite3_bind_text(s, 1, node, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, seq);
    return store_step_done(c, s);
}

static int meta_flag(store_conn_t *c, const char *sql, int *flag)
{
    sqlite3_stmt *s = store_stmt(c, sql);
    if (!s)
        return OVMS_EIO;
    int rc = sqlite3_step(s);
    if (flag)
        *flag = rc == SQLITE_ROW;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_error(c->db, rc);
}

int store_own_counter_start(ovms_store_t *st)
{
    int rc = meta_flag(&st->w, "SELECT 1 FROM meta WHERE key = 'catch_up_own'", &st->catch_up_own);
    if (rc < 0 || st->own_seq)
        return rc;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    st->own_seq = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if ((rc = store_save_seq(&st->w, st->node_id, st->own_seq)) < 0)
        return rc;
    st->catch_up_own = 1;
    return meta_flag(&st->w, "INSERT OR IGNORE INTO meta(key, value) VALUES ('catch_up_own', '1')",
                     NULL);
}

int store_own_caught_up(ovms_store_t *st)
{
    st->catch_up_own = 0;
    return meta_flag(&st->w, "DELETE FROM meta WHERE key = 'catch_up_own'", NULL);
}
