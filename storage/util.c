/*
 * util.c -- SQLite helpers for storage/: error mapping, the per-connection
 * statement cache, and the builder for read results.
 *
 * Statements are prepared once per connection and kept, keyed by the
 * address of their SQL literal, so the hot paths (message and history
 * writes) never re-parse SQL.
 * Threading: a store_conn_t belongs to one thread (writer or reader).
 */
#include "store_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int store_sql_error(sqlite3 *db, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW: return 0;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: return OVMS_ECORRUPT;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN: return OVMS_EREADONLY;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return OVMS_EBUSY;
    case SQLITE_NOMEM: return OVMS_ENOMEM;
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
            return OVMS_ENOTFOUND;
        return OVMS_EEXIST;
    case SQLITE_FULL:
    case SQLITE_IOERR:
    default: (void)db; return OVMS_EIO;
    }
}

int store_exec(sqlite3 *db, const char *sql)
{
    return store_sql_error(db, sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static size_t slot_of(const char *sql)
{
    uintptr_t h = (uintptr_t)sql;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15u;
    return (size_t)(h >> 40) % STORE_STMT_SLOTS;
}

sqlite3_stmt *store_stmt(store_conn_t *c, const char *sql)
{
    size_t i = slot_of(sql);

    for (size_t n = 0; n < STORE_STMT_SLOTS; n++, i = (i + 1) % STORE_STMT_SLOTS) {
        if (c->slot[i].sql == sql) {
            sqlite3_reset(c->slot[i].stmt);
            sqlite3_clear_bindings(c->slot[i].stmt);
            return c->slot[i].stmt;
        }
        if (!c->slot[i].sql) {
            if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                   &c->slot[i].stmt, NULL) != SQLITE_OK)
                return NULL;
            c->slot[i].sql = sql;
            return c->slot[i].stmt;
        }
    }
    return NULL;                    /* more distinct statements than slots: a bug */
}

void store_conn_close(store_conn_t *c)
{
    for (size_t i = 0; i < STORE_STMT_SLOTS; i++) {
        if (c->slot[i].stmt)
            sqlite3_finalize(c->slot[i].stmt);
        c->slot[i].sql = NULL;
        c->slot[i].stmt = NULL;
    }
    if (c->db)
        sqlite3_close(c->db);
    c->db = NULL;
}

int store_step_done(store_conn_t *c, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_sql_error(c->db, rc);
}

void store_bind_text(sqlite3_stmt *s, int i, const char *p, size_t n)
{
    sqlite3_bind_text(s, i, p ? p : "", p ? (int)n : 0, SQLITE_TRANSIENT);
}

/* ---- read results --------------------------------------------------------- */

/* Cells are individual allocations; the cell array grows by doubling. */
void store_rows_begin(store_rows_builder_t *b, ovms_store_rows_t *rows, int ncols)
{
    store_rows_free(rows);
    rows->ncols = ncols;
    b->rows = rows;
    b->cap = 0;
    b->failed = 0;
}

static int rows_reserve(store_rows_builder_t *b)
{
    ovms_store_rows_t *r = b->rows;
    size_t need = (size_t)(r->nrows + 1) * (size_t)r->ncols;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : (size_t)r->ncols * 16;
        while (cap < need)
            cap *= 2;
        char **grown = realloc(r->cell, cap * sizeof *grown);
        if (!grown)
            return -1;
        r->cell = grown;
        b->cap = cap;
    }
    return 0;
}

void store_rows_add(store_rows_builder_t *b, const char *const *cells, const size_t *lens)
{
    ovms_store_rows_t *r = b->rows;
    if (b->failed || rows_reserve(b) < 0) {
        b->failed = 1;
        return;
    }
    char **row = r->cell + (size_t)r->nrows * (size_t)r->ncols;
    for (int i = 0; i < r->ncols; i++) {
        size_t n = cells[i] ? (lens ? lens[i] : strlen(cells[i])) : 0;
        row[i] = malloc(n + 1);
        if (!row[i]) {
            for (int k = 0; k < i; k++)
                free(row[k]);
            b->failed = 1;
            return;
        }
        if (n)
            memcpy(row[i], cells[i], n);
        row[i][n] = '\0';
    }
    r->nrows++;
}

void store_rows_add_stmt(store_rows_builder_t *b, sqlite3_stmt *s)
{
    const char *cells[16];
    size_t lens[16];
    int n = b->rows->ncols;
    for (int i = 0; i < n && i < 16; i++) {
        cells[i] = (const char *)sqlite3_column_text(s, i);
        lens[i] = (size_t)sqlite3_column_bytes(s, i);
    }
    store_rows_add(b, cells, lens);
}

int store_rows_end(store_rows_builder_t *b)
{
    return b->failed ? OVMS_ENOMEM : 0;
}

void store_rows_free(ovms_store_rows_t *rows)
{
    size_t n = (size_t)rows->nrows * (size_t)rows->ncols;
    for (size_t i = 0; i < n; i++)
        free(rows->cell[i]);
    free(rows->cell);
    rows->cell = NULL;
    rows->nrows = 0;
}

const char *store_ts(int64_t t, char out[20])
{
    if (ovms_timestamp_format(t, out) < 0)
        out[0] = '\0';
    return out;
}

double store_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t store_now(void)
{
    return (int64_t)time(NULL);
}

const double ovms_hist_bounds[OVMS_HIST_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};

void ovms_hist_add(ovms_hist_t *h, double seconds)
{
    int i = 0;
    while (i < OVMS_HIST_BUCKETS && seconds > ovms_hist_bounds[i])
        i++;
    h->n[i]++;
    h->count++;
    h->sum += seconds;
}
