/*
 * store_int.h -- internal to storage/: the store object, its queues, and
 * the functions the files of this folder share. Nothing outside storage/
 * includes it.
 */
#ifndef OVMS_STORE_INT_H
#define OVMS_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "ovms_store.h"

enum store_op {
    /* writes: run by the writer thread inside a group commit */
    OP_OWNER_PUT = 1, OP_OWNER_REMOVE, OP_VEHICLE_PUT, OP_VEHICLE_REMOVE, OP_MSG_PUT,
    OP_PTOKEN_SET, OP_HIST_PUT, OP_UTIL_ADD, OP_PUSHSUB_PUT, OP_PROV_PUT, OP_PROV_REMOVE,
    OP_EXPIRE, OP_TOKEN_PUT, OP_TOKEN_REMOVE, OP_TOKEN_USED, OP_APPLY,
    OP_LAST_WRITE = OP_APPLY,
    /* reads: run by the reader thread */
    OP_MSG_LIST, OP_HIST_SUMMARY, OP_HIST_RECORDS, OP_UTIL_LIST, OP_OWNER_LIST,
    OP_VEHICLE_LIST, OP_PROV_LIST, OP_PROV_GET, OP_PUSHSUB_LIST, OP_HIST_LIST, OP_CHANGES,
    OP_CHANGES_AFTER, OP_DIGEST, OP_TOKEN_LIST,
};

#define STORE_IS_WRITE(op) ((op) <= OP_LAST_WRITE)
#define STORE_ORDERED 0x100     /* req->flags: a read that goes through the writer */
#define STORE_BULK 0x200        /* req->flags: a read for the bulk reader */

typedef struct store_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ovms_store_req_t *head, *tail;
    int urgent;                 /* requests queued that may not wait */
    uint64_t n;                 /* requests queued */
    double lazy_until;          /* the earliest deadline of the lazy ones; 0: none */
    int stop;
} store_queue_t;

/* A connection with its prepared statements, cached by SQL text address
 * (the SQL is always a string literal at the call site). */
#define STORE_STMT_SLOTS 128
typedef struct store_conn {
    sqlite3 *db;
    struct {
        const char *sql;
        sqlite3_stmt *stmt;
    } slot[STORE_STMT_SLOTS];
} store_conn_t;

/* The in-memory vehicle, owner and token tables (cache.c, tokens.c). */
typedef struct store_token store_token_t;
typedef struct store_cache {
    pthread_rwlock_t lock;
    ovms_vehicle_t *vehicles;       /* open addressing, key: id */
    size_t vcap, vcount;
    ovms_owner_t *owners;           /* sorted by id */
    size_t ocount;
    store_token_t *tokens;          /* sorted by hash */
    size_t tcount;
} store_cache_t;

/* A vehicle or owner whose cache entry must be refreshed after commit. */
/* The highest seq held per origin (the watermarks table, in memory). */
#define STORE_MAX_ORIGINS 256
typedef struct store_marks {
    int n;
    ovms_store_wm_t v[STORE_MAX_ORIGINS];
} store_marks_t;

typedef struct store_dirty {
    char vehicles[64][33];
    int nvehicles;
    int owners;                     /* any owner changed: reload owners */
    int tokens;                     /* any API token changed: reload tokens */
    int replicated;                 /* a replicated row changed: tell cfg.committed */
    int all;                        /* too much changed: reload everything */
} store_dirty_t;

struct ovms_store {
    ovms_store_config_t cfg;
    char path[1024];
    char node_id[33];
    store_conn_t w, r, b;           /* writer's, reader's and bulk reader's connections */
    pthread_t writer, reader, bulk;
    int have_writer, have_reader, have_bulk;
    store_queue_t wq, rq, bq;
    store_cache_t cache;
    store_dirty_t dirty;
    int64_t own_seq;                /* this node's replication counter */
    int catch_up_own;               /* a new database: ask peers for our own old records */
    store_marks_t marks;            /* writer's copy, inside the transaction */
    store_marks_t marks_pub;        /* as committed, under stats_mu */
    int64_t own_pub;                /* own_seq as committed, under stats_mu */
    int64_t data_version;
    pthread_mutex_t stats_mu;
    ovms_store_stats_t stats;
    int closing;
};

/* schema.c */
int store_schema_migrate(sqlite3 *db, char *err, size_t errlen);
int store_meta_node_id(store_conn_t *c, const char *wanted, char *out, size_t cap);
int store_load_seq(store_conn_t *c, const char *node, int64_t *seq);
int store_save_seq(store_conn_t *c, const char *node, int64_t seq);
/* A new database starts this node's counter at the time in microseconds
 * (so that a node whose database was lost never reuses a seq its peers
 * hold) and asks peers for its own records once (docs/replication.md). */
int store_own_counter_start(ovms_store_t *st);
int store_own_caught_up(ovms_store_t *st);

/* cache.c */
int store_cache_init(store_cache_t *c);
void store_cache_free(store_cache_t *c);
/* Both tell cfg.vehicle_changed about vehicles whose identity changed. */
int store_cache_reload(ovms_store_t *st, store_conn_t *conn);
int store_cache_refresh_vehicle(ovms_store_t *st, store_conn_t *conn, const char *id);
int store_cache_reload_owners(store_cache_t *c, store_conn_t *conn);

/* tokens.c */
int store_cache_reload_tokens(store_cache_t *c, store_conn_t *conn);
int store_op_token_put(ovms_store_t *st, ovms_store_req_t *req);
int store_op_token_remove(ovms_store_t *st, ovms_store_req_t *req);
int store_op_token_used(ovms_store_t *st, ovms_store_req_t *req);
int store_op_token_list(store_conn_t *c, ovms_store_req_t *req);

/* write.c: one write request inside the writer's transaction */
int store_exec_write(ovms_store_t *st, ovms_store_req_t *req);
int store_expire_batch(ovms_store_t *st, int64_t now, int limit);
void store_mark_vehicle(ovms_store_t *st, const char *id);

/* read.c */
int store_exec_read(ovms_store_t *st, store_conn_t *c, ovms_store_req_t *req);
/* The same, inside a transaction the caller already holds. */
int store_exec_read_here(store_conn_t *c, ovms_store_req_t *req);

/* apply.c: records from peers, merged last-writer-wins */
int store_apply(ovms_store_t *st, ovms_store_req_t *req);
int store_marks_load(store_conn_t *c, store_marks_t *m);
int64_t store_mark_get(const store_marks_t *m, const char *origin);
void store_mark_set(store_marks_t *m, const char *origin, int64_t seq);
/* What peers are told: the marks, with this node's own counter (0 while a
 * new database waits for its own old records). */
void store_marks_advertised(const ovms_store_t *st, store_marks_t *out);
/* A change stamp for a local write replacing version (old_changed, old_origin,
 * old_seq): now, or later when that version is stamped at or past now, so that
 * the new version always wins over the one it replaces (docs/replication.md). */
int64_t store_stamp_after(const ovms_store_t *st, int64_t old_changed, const char *old_origin);

/* write.c */
typedef struct store_version {
    int found;
    int64_t changed;                /* unix seconds */
    char origin[33];
} store_version_t;
int64_t store_owner_id(const char *name);
/* The next seq of this node's own counter (a local change, in a write). */
int64_t store_next_seq(ovms_store_t *st);
/* A live owner's id by name: 0, OVMS_ENOTFOUND, or an error. */
int store_owner_id_by_name(ovms_store_t *st, const char *name, int64_t *id);
/* The version a local write replaces: sql selects (changed, origin) of one
 * row keyed by ?1 (key as text, or id when key is NULL); v->found 0 without one. */
int store_version_of(ovms_store_t *st, const char *sql, const char *key, int64_t id,
                     store_version_t *v);
/* The change stamp of a write replacing old (store_stamp_after, or now). */
int64_t store_bump(const ovms_store_t *st, const store_version_t *old);
/* Bind changed (as text), origin (this node) and the next seq at ?at.. ?at+2. */
void store_bind_change(ovms_store_t *st, sqlite3_stmt *s, int at, int64_t when);
int store_purge_vehicle_data(ovms_store_t *st, const char *id, int64_t *rows);
int store_purge_older_data(ovms_store_t *st, const char *id, int64_t created);
/* Data timestamped more than this before its vehicle's creation belongs to
 * an earlier vehicle of the same id (clocks of nodes may differ this much). */
#define STORE_INCARNATION_GRACE 300

/* digest.c */
int store_digest(store_conn_t *c, ovms_store_req_t *req);

/* util.c */
int store_sql_error(sqlite3 *db, int rc);
int store_exec(sqlite3 *db, const char *sql);
/* The cached, reset statement for a literal SQL text; NULL on error. */
sqlite3_stmt *store_stmt(store_conn_t *c, const char *sql);
void store_conn_close(store_conn_t *c);
/* Step a statement to completion; 0 or an OVMS error. */
int store_step_done(store_conn_t *c, sqlite3_stmt *s);
void store_bind_text(sqlite3_stmt *s, int i, const char *p, size_t n);
/* rows builder for read results */
typedef struct store_rows_builder {
    ovms_store_rows_t *rows;
    size_t cap;                     /* cells allocated */
    int failed;
} store_rows_builder_t;
void store_rows_begin(store_rows_builder_t *b, ovms_store_rows_t *rows, int ncols);
void store_rows_add(store_rows_builder_t *b, const char *const *cells, const size_t *lens);
/* add the current row of a stepped statement, columns 0..ncols-1 */
void store_rows_add_stmt(store_rows_builder_t *b, sqlite3_stmt *s);
int store_rows_end(store_rows_builder_t *b);
void store_rows_free(ovms_store_rows_t *rows);
const char *store_ts(int64_t t, char out[20]);
double store_now_mono(void);
int64_t store_now(void);

#define UTIL_TYPE "*-OVM-Utilisation"
#define UTIL_KEEP_SECS (90 * 86400)

#endif
