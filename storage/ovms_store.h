/*
 * ovms_store.h -- the per-node SQLite store: the one public header of
 * storage/.
 *
 * What it keeps: owners and vehicles (with last-writer-wins change stamps
 * for replication), the latest stored message per vehicle and code, the
 * historical records (H/h from cars, and the server's own types such as
 * *-OVM-Utilisation and *-Log-Notification), push subscriptions and
 * auto-provisioning records.
 *
 * How it works: one writer thread owns the write connection (WAL). Callers
 * prepare a request (a caller-owned ovms_store_req_t, as uv_fs_t is in
 * libuv) and submit it; the writer takes every request waiting when it
 * starts a transaction and commits them together (group commit). A write
 * completes only after its transaction committed: that is what lets the
 * server acknowledge an `h` once it is durable. Reads run on a separate
 * reader thread with its own connection, so they never wait behind a
 * commit's fsync. Vehicles and owners are also held in memory, so a login
 * never touches the disk.
 *
 * Completions: the store hands each finished request to the submitter's
 * sink (for ovmsd, the worker's mailbox); the submitter's thread then calls
 * req->done. Without a sink, done runs on the store's thread.
 * ovms_store_run() submits and waits, for tools and tests.
 *
 * Threading: every function may be called from any thread; a request
 * belongs to the store from submit until it is handed to its sink.
 */
#ifndef OVMS_STORE_H
#define OVMS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ovms_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ovms_store ovms_store_t;
typedef struct ovms_store_req ovms_store_req_t;

typedef void (*ovms_store_done_cb)(ovms_store_req_t *req);

/* How a finished request gets back to the thread that submitted it. post()
 * runs on a store thread and must only hand the request over. */
typedef struct ovms_store_sink {
    void (*post)(void *ctx, ovms_store_req_t *req);
    void *ctx;
} ovms_store_sink_t;

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct ovms_store_config {
    const char *path;           /* database file (created when missing) */
    const char *node_id;        /* server id for a new database; NULL: from the host name */
    int sync_normal;            /* 1: fsync at checkpoints only (faster, loses the last
                                   commits on power failure); 0: fsync every commit */
    int expire_interval_ms;     /* housekeeping period; 0: 60000; < 0: never */
    int expire_batch;           /* rows deleted per housekeeping transaction; 0: 1000 */
    int poll_ms;                /* how often to look for other processes' changes; 0: 1000 */
    int readonly;               /* open for reading only (no writer thread) */
    /* Called on the writer thread after a commit (this process's or, within
     * poll_ms, another's) that removed a vehicle, re-created it, or changed
     * its car password, owner or scope: whoever is logged in for it under
     * the old identity must go. Only hands the id over; may be NULL. */
    void (*vehicle_changed)(void *ctx, const char *id);
    /* Called on the writer thread after a commit that changed replicated
     * rows (this process's, or another's seen within poll_ms), and when
     * watermarks moved: replication reads what is new. May be NULL. */
    void (*committed)(void *ctx);
    void *ctx;
} ovms_store_config_t;

/* Open (creating and migrating as needed) and start the threads. On failure
 * *st is NULL, the result is OVMS_ECORRUPT, OVMS_EREADONLY, OVMS_EIO, ... and
 * err (if given) holds one line explaining it. */
int ovms_store_open(ovms_store_t **st, const ovms_store_config_t *cfg, char *err, size_t errlen);
/* Finish every submitted request, stop the threads, close. */
void ovms_store_close(ovms_store_t *st);

const char *ovms_store_node_id(const ovms_store_t *st);
/* The schema version this code writes (PRAGMA user_version). */
int ovms_store_schema_version(void);

/* ------------------------------------------------------------------------ */
/* In-memory lookups (any thread, no disk)                                  */
/* ------------------------------------------------------------------------ */

typedef struct ovms_vehicle {
    char id[33];                /* upper case */
    int64_t owner;
    char carpass[65];
    char vtype[17];
    char v_server[33];          /* "*" or a server id */
    char ptoken[65];            /* current paranoid token, "" if none */
    int64_t created;            /* unix seconds; also the vehicle's incarnation: a vehicle
                                   removed and added again is created strictly later */
} ovms_vehicle_t;

typedef struct ovms_owner {
    int64_t id;
    char name[65];
    char mail[129];
    char pwhash[129];
    int64_t status;
} ovms_owner_t;

/* What logins are checked against: a hash of the car password, owner,
 * incarnation (created) and scope. vehicle_changed announces a change of it. */
uint64_t ovms_store_vehicle_identity(const ovms_vehicle_t *v);
/* 0 and a copy, or OVMS_ENOTFOUND (also for deleted ones). id is
 * compared case-insensitively. */
int ovms_store_vehicle_get(ovms_store_t *st, const char *id, ovms_vehicle_t *out);
int ovms_store_owner_get(ovms_store_t *st, const char *name, ovms_owner_t *out);
/* The owner's vehicle ids, sorted, space separated into buf; count or error. */
int ovms_store_owner_vehicles(ovms_store_t *st, int64_t owner, char *buf, size_t cap);
/* Number of vehicles known (not deleted). */
size_t ovms_store_vehicle_count(ovms_store_t *st);

/* The highest seq held per origin (this node's own counter included), as
 * committed: what a peer is told on connecting. Copies at most max; count. */
typedef struct ovms_store_wm {
    char origin[33];
    int64_t seq;
} ovms_store_wm_t;
int ovms_store_watermarks(ovms_store_t *st, ovms_store_wm_t *out, int max);
/* A list of n watermarks (room for cap): the seq of origin (0 if absent),
 * and raising one (added when new; OVMS_ERANGE when the list is full). */
int64_t ovms_store_wm_find(const ovms_store_wm_t *v, int n, const char *origin);
int ovms_store_wm_raise(ovms_store_wm_t *v, int *n, int cap, const char *origin, int64_t seq);
/* This node's own counter as committed (what it has made up to). */
int64_t ovms_store_own_seq(ovms_store_t *st);

/* API tokens (HTTP-API.md §3.6, tokens.c): 64 lower-case hex characters,
 * kept only as their SHA-256. */
#define OVMS_TOKEN_HEX 64
#define OVMS_TOKENS_PER_OWNER 64
typedef struct ovms_token {
    int64_t owner;
    char owner_name[65];
    char permit[256];
    char hash[65];              /* hex SHA-256: what ovms_store_prep_token_used takes */
    int touch;                  /* 1: lastused is due an update (once a minute) */
} ovms_token_t;
/* 1 when token has the form of one. */
int ovms_token_valid(const char *token);
int ovms_token_hash(const char *token, char hex[65]);
/* What a token grants, from memory: 0, or OVMS_ENOTFOUND (unknown, removed,
 * or its owner is gone or not active). Any thread. */
int ovms_store_token_find(ovms_store_t *st, const char *token, ovms_token_t *out);

/* Owner login hashes: "$pbkdf2-sha256$<iter>$<salt b64>$<hash b64>" (made
 * here), or Drupal 7 "$S$..." (migrated from a reference database). */
int ovms_password_hash(const char *password, char *out, size_t cap);
int ovms_password_check(const char *password, const char *hash);

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

/* Results of reads: a table of text cells (NULL cells are ""). */
typedef struct ovms_store_rows {
    int nrows;
    int ncols;
    char **cell;                /* nrows * ncols, row-major */
} ovms_store_rows_t;

static inline const char *ovms_store_cell(const ovms_store_rows_t *r, int row, int col)
{
    return r->cell[row * r->ncols + col];
}

#define OVMS_STORE_MAX_ARGS 8

struct ovms_store_req {
    /* public: read after completion */
    void *data;                 /* the caller's */
    int status;                 /* 0 or OVMS_E* */
    int64_t value;              /* op-specific scalar result (see each prep function) */
    ovms_store_rows_t rows;     /* op-specific rows (reads) */
    /* private */
    ovms_store_req_t *next;
    int op;
    int flags;
    ovms_store_done_cb done;
    ovms_store_sink_t sink;
    char *args;                 /* one block holding the string arguments */
    const char *s[OVMS_STORE_MAX_ARGS];
    size_t n[OVMS_STORE_MAX_ARGS];
    int64_t i[OVMS_STORE_MAX_ARGS];
    int64_t incarnation;        /* see ovms_store_req_incarnation */
    int64_t limit;              /* see ovms_store_req_limit */
    int64_t msg_history;        /* see ovms_store_req_msg_history */
    double submitted;           /* monotonic seconds, for latency figures */
    int lazy_ms;                /* see ovms_store_req_lazy; 0: urgent */
    double lazy_until;          /* monotonic seconds: when a lazy write must go */
};

void ovms_store_req_init(ovms_store_req_t *req);
/* Free what a request holds (arguments, result rows); it can be reused. */
void ovms_store_req_cleanup(ovms_store_req_t *req);

/* Queue a prepared request. sink may be NULL (done runs on the store
 * thread); done may be NULL. OVMS_ECLOSED after ovms_store_close began. */
int ovms_store_submit(ovms_store_t *st, ovms_store_req_t *req, const ovms_store_sink_t *sink,
                      ovms_store_done_cb done);
/* Submit and wait; returns req->status. Not from a store thread. */
int ovms_store_run(ovms_store_t *st, ovms_store_req_t *req);

/* Flags for the *_put operations. */
#define OVMS_STORE_CREATE 1     /* fail with OVMS_EEXIST if it exists */
#define OVMS_STORE_UPDATE 2     /* fail with OVMS_ENOTFOUND if it does not */

/* Make a prepared write of a vehicle's data (stored message, paranoid
 * token, history, utilisation, push subscription) apply only to the
 * vehicle created at `created` (ovms_vehicle_t.created): once that vehicle
 * was removed, or removed and added again, the write fails with
 * OVMS_ENOTFOUND and stores nothing, so nothing of an old vehicle leaks
 * into a new one of the same id. Without it, the write applies to whatever
 * live vehicle has the id. */
void ovms_store_req_incarnation(ovms_store_req_t *req, int64_t created);

/* A write nobody waits for (a stored message written behind, utilisation)
 * may wait up to `max_ms` for company, so that writes that arrive spread out
 * share one commit instead of each paying for their own. Any other write or
 * an ordered read takes every waiting one along, in order; shutdown writes
 * them all. 0: urgent, as without it. */
void ovms_store_req_lazy(ovms_store_req_t *req, int max_ms);

/* A per-vehicle limit for a prepared write: a new historical record
 * (hist_put, util_add, the record of msg_history) only while the vehicle
 * holds fewer than `max` records, a new push subscription only while it has
 * fewer than `max`. Replacing an existing one is always allowed. Over the
 * limit the write fails with OVMS_EQUOTA (a stored message still is
 * stored; only its historical record is left out). 0: no limit. */
void ovms_store_req_limit(ovms_store_req_t *req, int64_t max);
/* For msg_put: also keep the message as a historical record (type = its
 * code, recno 0, at its reception time), expiring at `expires`, as the
 * reference does when log history is on. */
void ovms_store_req_msg_history(ovms_store_req_t *req, int64_t expires);

/* Make a prepared read run on the bulk reader, a thread and connection of
 * its own, so that long reads (a peer's resync) never delay the short ones
 * that logins make. */
void ovms_store_req_bulk(ovms_store_req_t *req);

/* Make a prepared read *ordered*: it runs on the writer, after every write
 * submitted before it, so it sees them (read-your-writes). Plain reads run
 * on the reader thread and see what has been committed when they run. */
void ovms_store_req_ordered(ovms_store_req_t *req);

/*
 * Preparing requests. Each copies its arguments into the request. Writes:
 */
/* Owner by name (no commas). NULL mail/pwhash leave them unchanged on update.
 * value: the owner id. */
int ovms_store_prep_owner_put(ovms_store_req_t *req, const char *name, const char *mail,
                              const char *pwhash, int64_t status, int flags);
int ovms_store_prep_owner_remove(ovms_store_req_t *req, const char *name);
/* Vehicle by id. owner NULL on create: a new owner named after the vehicle.
 * NULL strings leave fields unchanged on update. value: the owner id.
 * OVMS_EINVAL for an empty car password (or one with spaces or commas). */
int ovms_store_prep_vehicle_put(ovms_store_req_t *req, const char *id, const char *owner,
                                const char *carpass, const char *vtype, const char *v_server,
                                int flags);
/* Leaves a tombstone (for replication) and deletes the vehicle's data in
 * the same transaction: stored messages, history, push subscriptions,
 * provisioning records, paranoid token. value: data rows deleted. */
int ovms_store_prep_vehicle_remove(ovms_store_req_t *req, const char *id);
/* The latest message of a code (replaces the previous one). */
int ovms_store_prep_msg_put(ovms_store_req_t *req, const char *vehicle, char code,
                            const char *payload, size_t len, int paranoid, const char *ptoken,
                            int64_t received);
/* The car's paranoid token (ET). */
int ovms_store_prep_ptoken_set(ovms_store_req_t *req, const char *vehicle, const char *ptoken,
                               int64_t when);
/* A historical record; (vehicle, type, recno, ts) replaces an existing one. */
int ovms_store_prep_hist_put(ovms_store_req_t *req, const char *vehicle, const char *type,
                             int64_t recno, int64_t ts, int64_t expires, const char *data,
                             size_t len);
/* Add byte counts to a vehicle's day (UTC midnight of `when`), kept as
 * *-OVM-Utilisation records 0..3 of this node, expiring after 90 days. */
int ovms_store_prep_util_add(ovms_store_req_t *req, const char *vehicle, int64_t when,
                             int64_t car_rx, int64_t car_tx, int64_t app_rx, int64_t app_tx);
/* Push subscription keyed by (owner, vehicle, appid): replaces. */
int ovms_store_prep_pushsub_put(ovms_store_req_t *req, int64_t owner, const char *vehicle,
                                const char *appid, const char *pushtype, const char *keytype,
                                const char *keyvalue);
/* Auto-provisioning record for an apkey (VIN): the prepared AP-S fields. */
int ovms_store_prep_prov_put(ovms_store_req_t *req, const char *apkey, const char *vehicle,
                             const char *token, const char *digest, const char *record);
int ovms_store_prep_prov_remove(ovms_store_req_t *req, const char *apkey);
/* Delete history that expired before `now` (all of it, in bounded
 * batches). value: rows deleted. Housekeeping does this on its own. */
int ovms_store_prep_expire(ovms_store_req_t *req, int64_t now);

/*
 * Reads (rows as listed; timestamps "YYYY-MM-DD HH:MM:SS" UTC):
 */
/* Stored messages to replay, in replay order (F, S, then ascending code),
 * paranoid ones only under the current token.
 * rows: code, payload, paranoid (0/1), ptoken, received. value: last update. */
int ovms_store_prep_msg_list(ovms_store_req_t *req, const char *vehicle);
/* C31: rows: type, distinct recnos, records, size bytes, first, last. */
int ovms_store_prep_hist_summary(ovms_store_req_t *req, const char *vehicle, int64_t since);
/* C32: rows: timestamp, recno, data (ordered by timestamp, recno).
 * since < 0: all records. */
int ovms_store_prep_hist_records(ovms_store_req_t *req, const char *vehicle, const char *type,
                                 int64_t since);
/* C30: rows: date, car_rx, car_tx, app_rx, app_tx (all origins summed),
 * newest first, at most 90. */
int ovms_store_prep_util_list(ovms_store_req_t *req, const char *vehicle);
/* API tokens (tokens.c). put: a new token of the named owner (application
 * and purpose without commas or line breaks, at most 32 and 80 bytes;
 * permit at most 255, no line breaks); OVMS_ENOTFOUND without that owner,
 * OVMS_EQUOTA when it has OVMS_TOKENS_PER_OWNER already; value: owner id.
 * remove: by the whole token or its first 8 characters (OVMS_EEXIST when
 * those name two); value: tokens removed (0 is not an error). used: this
 * node's lastused of the token (by hash), not replicated. */
int ovms_store_prep_token_put(ovms_store_req_t *req, const char *owner, const char *token,
                              const char *application, const char *purpose, const char *permit);
int ovms_store_prep_token_remove(ovms_store_req_t *req, const char *owner, const char *token);
int ovms_store_prep_token_used(ovms_store_req_t *req, const char *hash, int64_t when);
/* rows: prefix (8 characters), application, purpose, permit, created,
 * lastused; ordered by created, then prefix */
int ovms_store_prep_token_list(ovms_store_req_t *req, const char *owner);
/* rows: id, name, mail, status, vehicles (space separated), changed, origin, seq */
int ovms_store_prep_owner_list(ovms_store_req_t *req);
/* rows: vehicle, owner id, owner name, type, v_server, last update, changed, origin, seq */
int ovms_store_prep_vehicle_list(ovms_store_req_t *req);
/* rows: apkey, vehicle, token, digest, record */
int ovms_store_prep_prov_list(ovms_store_req_t *req);
int ovms_store_prep_prov_get(ovms_store_req_t *req, const char *apkey);
/* rows: owner, appid, pushtype, keytype, keyvalue */
int ovms_store_prep_pushsub_list(ovms_store_req_t *req, const char *vehicle);
/* rows: type, timestamp, recno, expires, data (type NULL: all types) */
int ovms_store_prep_hist_list(ovms_store_req_t *req, const char *vehicle, const char *type);
/* Records of one origin with seq > after, in seq order, at most limit:
 * rows: seq, record (an R or r message, as sent between nodes). */
int ovms_store_prep_changes(ovms_store_req_t *req, const char *origin, int64_t after, int limit);

/* The same for what to send a peer: cursors is "ORIGIN:SEQ ..." (what the
 * peer holds; origins not named: 0). For every origin this store knows,
 * records with seq above its cursor in seq order, at most limit in all:
 * rows: origin, seq, record. A row with an empty record says that origin
 * has nothing more up to seq (its watermark). */
int ovms_store_prep_changes_after(ovms_store_req_t *req, const char *cursors, int limit);

/* Apply records received from a peer (replication/): records holds R and r
 * messages (as after "MP-0 "), one per line. Each one whose seq is above
 * the watermark of its origin is merged last-writer-wins (PROTOCOL, MP-S)
 * and the watermark moved, in the same transaction; older ones are
 * dropped. value: records that were new. rows: level ("warn" or "info"),
 * text: what should be logged (versions overwritten, clock warnings). */
int ovms_store_prep_apply(ovms_store_req_t *req, const char *records, size_t len);

/* A new database asks its peers for this node's own records (a node whose
 * database was lost gets back what it had made); once a link has been up
 * long enough to have sent them, replication says so and the node asks by
 * its counter from then on. */
int ovms_store_prep_own_caught_up(ovms_store_req_t *req);

/* rows: table, rows, digest: a SHA-256 over the replicated content of
 * owners, vehicles, stored messages and (unexpired) history, in key order:
 * two nodes holding the same content print the same lines. */
int ovms_store_prep_digest(ovms_store_req_t *req);

/* A latency histogram (seconds): n[i] counts values <= ovms_hist_bounds[i]
 * (and above the bound before), n[OVMS_HIST_BUCKETS] the rest. */
#define OVMS_HIST_BUCKETS 14
extern const double ovms_hist_bounds[OVMS_HIST_BUCKETS];
typedef struct ovms_hist {
    uint64_t n[OVMS_HIST_BUCKETS + 1];
    uint64_t count;
    double sum;
} ovms_hist_t;
/* Not atomic: one writer (or the caller's lock). */
void ovms_hist_add(ovms_hist_t *h, double seconds);

/* Figures since open, for logs, metrics and benchmarks. */
typedef struct ovms_store_stats {
    uint64_t commits;           /* write transactions */
    uint64_t writes;            /* write requests committed */
    uint64_t reads;
    uint64_t expired;           /* history rows removed by housekeeping */
    uint64_t reloads;           /* cache reloads after other processes' changes */
    size_t max_batch;           /* largest group commit */
    uint64_t queued;            /* requests waiting for the writer now */
    ovms_hist_t commit;         /* a group commit's duration, BEGIN to COMMIT */
} ovms_store_stats_t;
void ovms_store_get_stats(ovms_store_t *st, ovms_store_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* OVMS_STORE_H */
