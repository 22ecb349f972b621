/*
 * store.c -- opening the store, its two threads, and the requests.
 *
 * Writer thread: waits for requests, takes every one waiting and runs them
 * in one transaction (group commit, at most MAX_BATCH per transaction),
 * each in its own savepoint when it is more than one statement (a peer's
 * batch of records, at most one per transaction). Only after
 * COMMIT returns are the requests handed to their sinks, so a completion
 * means "durable" (with the default synchronous=FULL, durable on disk).
 * Between batches it looks for other processes' commits (PRAGMA
 * data_version: ovms-admin may run alongside) and runs housekeeping, which
 * deletes expired history in bounded transactions and lets waiting writes
 * go first between them.
 *
 * Reader thread: runs reads on its own connection. Bulk reader: the same
 * for long reads (a peer's resync), so that they never hold up a login's.
 *
 * The replication counter is read from the database at the start of every
 * write transaction (under its write lock), so two processes writing as the
 * same node never hand out the same seq.
 * Threading: public functions from any thread; see each thread's loop.
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BATCH 4096

/* ---- queues -------------------------------------------------------------------- */

static int queue_init(store_queue_t *q)
{
    memset(q, 0, sizeof *q);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_mutex_init(&q->mu, NULL) || pthread_cond_init(&q->cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc ? OVMS_ENOMEM : 0;
}

static void queue_destroy(store_queue_t *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

static int queue_push(store_queue_t *q, ovms_store_req_t *req)
{
    pthread_mutex_lock(&q->mu);
    if (q->stop) {
        pthread_mutex_unlock(&q->mu);
        return OVMS_ECLOSED;
    }
    req->next = NULL;
    if (q->tail)
        q->tail->next = req;
    else
        q->head = req;
    q->tail = req;
    q->n++;
    /* only the edge to "something must be done" wakes: the first urgent
     * request, or a lazy one that is due sooner than any waiting */
    if (req->lazy_until <= 0) {
        if (q->urgent++ == 0)
            pthread_cond_signal(&q->cv);
    } else if (!q->urgent && (q->lazy_until <= 0 || req->lazy_until < q->lazy_until)) {
        q->lazy_until = req->lazy_until;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return 0;
}

/* Lazy requests alone wait for their deadline (or company). */
static int queue_ready(const store_queue_t *q, double now)
{
    return q->urgent || (q->head && now >= q->lazy_until);
}

/* Everything queued, once something must be done (an urgent request, or a
 * lazy one's deadline), waiting until `deadline` (monotonic seconds; <= 0:
 * forever). NULL on timeout, or when stopped and empty (*stopped set). */
static ovms_store_req_t *queue_take(store_queue_t *q, double deadline, int *stopped)
{
    ovms_store_req_t *all;

    pthread_mutex_lock(&q->mu);
    while (!q->stop && !queue_ready(q, store_now_mono())) {
        double until = deadline;
        if (q->head && (until <= 0 || q->lazy_until < until))
            until = q->lazy_until;
        if (until <= 0) {
            pthread_cond_wait(&q->cv, &q->mu);
            continue;
        }
        struct timespec ts = { (time_t)until, (long)((until - (double)(time_t)until) * 1e9) };
        if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT && until == deadline &&
            !queue_ready(q, store_now_mono())) {
            *stopped = 0;               /* the caller's deadline; lazy writes keep waiting */
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
    }
    all = q->head;
    q->head = q->tail = NULL;
    q->n = 0;
    q->urgent = 0;
    q->lazy_until = 0;
    *stopped = q->stop;
    pthread_mutex_unlock(&q->mu);
    return all;
}

static ovms_store_req_t *queue_poll(store_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    ovms_store_req_t *all = q->head;
    q->head = q->tail = NULL;
    q->n = 0;
    q->urgent = 0;
    q->lazy_until = 0;
    pthread_mutex_unlock(&q->mu);
    return all;
}

static void queue_stop(store_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* ---- completions ------------------------------------------------------------- */

static void complete(ovms_store_req_t *req)
{
    if (req->sink.post)
        req->sink.post(req->sink.ctx, req);
    else if (req->done)
        req->done(req);
}

static void complete_list(ovms_store_req_t *list)
{
    while (list) {
        ovms_store_req_t *next = list->next;   /* req may be gone after complete() */
        complete(list);
        list = next;
    }
}

static void add_stats(ovms_store_t *st, uint64_t commits, uint64_t writes, uint64_t reads,
                      uint64_t expired, size_t batch)
{
    pthread_mutex_lock(&st->stats_mu);
    st->stats.commits += commits;
    st->stats.writes += writes;
    st->stats.reads += reads;
    st->stats.expired += expired;
    if (batch > st->stats.max_batch)
        st->stats.max_batch = batch;
    pthread_mutex_unlock(&st->stats_mu);
}

/* ---- the writer ------------------------------------------------------------------- */

static int needs_savepoint(const ovms_store_req_t *req)
{
    int op = req->op;
    return op == OP_OWNER_PUT || op == OP_OWNER_REMOVE || op == OP_VEHICLE_PUT ||
           op == OP_VEHICLE_REMOVE || op == OP_UTIL_ADD || op == OP_APPLY ||
           (op == OP_MSG_PUT && req->msg_history);
}

static void run_one(ovms_store_t *st, ovms_store_req_t *req)
{
    if (!STORE_IS_WRITE(req->op)) {
        req->status = store_exec_read_here(&st->w, req);   /* an ordered read */
        return;
    }
    if (!needs_savepoint(req)) {
        req->status = store_exec_write(st, req);    /* a failed statement undoes itself */
        return;
    }
    store_step_done(&st->w, store_stmt(&st->w, "SAVEPOINT one"));
    req->status = store_exec_write(st, req);
    if (req->status < 0)
        store_step_done(&st->w, store_stmt(&st->w, "ROLLBACK TO one"));
    store_step_done(&st->w, store_stmt(&st->w, "RELEASE one"));
}

static void refresh_cache(ovms_store_t *st)
{
    store_dirty_t *d = &st->dirty;
    if (d->all) {
        store_cache_reload(st, &st->w);
    } else {
        for (int i = 0; i < d->nvehicles; i++)
            store_cache_refresh_vehicle(st, &st->w, d->vehicles[i]);
        if (d->owners)
            store_cache_reload_owners(&st->cache, &st->w);
        if (d->tokens)
            store_cache_reload_tokens(&st->cache, &st->w);
    }
    memset(d, 0, sizeof *d);
}

/* What the committed watermarks are now; tell replication when they moved. */
static void publish_marks(ovms_store_t *st, int moved)
{
    pthread_mutex_lock(&st->stats_mu);
    store_marks_advertised(st, &st->marks_pub);
    st->own_pub = st->own_seq;
    pthread_mutex_unlock(&st->stats_mu);
    if (moved && st->cfg.committed)
        st->cfg.committed(st->cfg.ctx);
}

int64_t ovms_store_own_seq(ovms_store_t *st)
{
    pthread_mutex_lock(&st->stats_mu);
    int64_t seq = st->own_pub;
    pthread_mutex_unlock(&st->stats_mu);
    return seq;
}

int ovms_store_watermarks(ovms_store_t *st, ovms_store_wm_t *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&st->stats_mu);
    for (; n < st->marks_pub.n && n < max; n++)
        out[n] = st->marks_pub.v[n];
    pthread_mutex_unlock(&st->stats_mu);
    return n;
}

static int begin_write(ovms_store_t *st)
{
    int64_t seq = 0;
    int rc = store_exec(st->w.db, "BEGIN IMMEDIATE");
    if (rc == 0 && store_load_seq(&st->w, st->node_id, &seq) == 0 && seq > st->own_seq)
        st->own_seq = seq;
    return rc;
}

/* One group commit over a list of at most MAX_BATCH write requests. */
static void commit_batch(ovms_store_t *st, ovms_store_req_t *list, size_t count)
{
    /* seq0 before begin_write: a counter it adopts from ovms-admin's commit
     * is a change of ours to publish, even when this batch adds none (else
     * poll_external would find the counter already equal and say nothing) */
    int64_t seq0 = st->own_seq;
    double t0 = store_now_mono();
    int rc = begin_write(st);
    store_marks_t marks0 = st->marks;

    st->dirty.replicated = 0;
    for (ovms_store_req_t *r = list; r && rc == 0; r = r->next)
        run_one(st, r);
    if (rc == 0 && st->own_seq != seq0)
        rc = store_save_seq(&st->w, st->node_id, st->own_seq);
    if (rc == 0)
        rc = store_exec(st->w.db, "COMMIT");
    if (rc < 0) {
        store_exec(st->w.db, "ROLLBACK");
        st->own_seq = seq0;
        st->marks = marks0;
        memset(&st->dirty, 0, sizeof st->dirty);
        for (ovms_store_req_t *r = list; r; r = r->next)
            r->status = rc;
    } else {
        int moved = st->own_seq != seq0 || st->dirty.replicated;
        double took = store_now_mono() - t0;
        refresh_cache(st);
        add_stats(st, 1, count, 0, 0, count);
        pthread_mutex_lock(&st->stats_mu);
        ovms_hist_add(&st->stats.commit, took);
        pthread_mutex_unlock(&st->stats_mu);
        publish_marks(st, moved);
    }
    complete_list(list);
}

static void run_expire(ovms_store_t *st, ovms_store_req_t *req);

/* Split a taken list into expiry requests and group commits. A batch of
 * records from a peer (OP_APPLY, up to a thousand records) goes one per
 * transaction, so that a peer's resync never makes the node's own writes
 * (a car's h acknowledgement) wait behind several of them; later applies
 * stay in their order (a link's records must be applied in it). */
static void process_writes(ovms_store_t *st, ovms_store_req_t *list)
{
    ovms_store_req_t *expires = NULL, **etail = &expires;

    while (list) {
        ovms_store_req_t *batch = NULL, **tail = &batch;
        ovms_store_req_t *later = NULL, **ltail = &later;
        size_t n = 0;
        int applies = 0;
        while (list && n < MAX_BATCH) {
            ovms_store_req_t *r = list;
            list = list->next;
            r->next = NULL;
            if (r->op == OP_EXPIRE) {
                *etail = r;
                etail = &r->next;
            } else if (r->op == OP_APPLY && applies++) {
                *ltail = r;
                ltail = &r->next;
            } else {
                *tail = r;
                tail = &r->next;
                n++;
            }
        }
        if (batch)
            commit_batch(st, batch, n);
        if (later) {
            *ltail = list;
            list = later;
        }
    }
    while (expires) {
        ovms_store_req_t *r = expires;
        expires = expires->next;
        r->next = NULL;
        run_expire(st, r);
        complete(r);
    }
}

/* Expired history goes in transactions of expire_batch rows; writes that
 * arrive meanwhile are committed between them. */
static int64_t expire_until_done(ovms_store_t *st, int64_t now)
{
    int limit = st->cfg.expire_batch > 0 ? st->cfg.expire_batch : 1000;
    int64_t total = 0;

    for (;;) {
        int n = 0, rc = begin_write(st);
        if (rc == 0)
            n = store_expire_batch(st, now, limit);
        if (rc == 0 && n >= 0)
            rc = store_exec(st->w.db, "COMMIT");
        if (rc < 0 || n < 0) {
            store_exec(st->w.db, "ROLLBACK");
            return rc < 0 ? rc : n;
        }
        total += n;
        add_stats(st, 1, 0, 0, (uint64_t)n, 0);
        if (n < limit)
            return total;
        ovms_store_req_t *waiting = queue_poll(&st->wq);
        if (waiting)
            process_writes(st, waiting);
    }
}

static void run_expire(ovms_store_t *st, ovms_store_req_t *req)
{
    int64_t n = expire_until_done(st, req->i[0]);
    req->status = n < 0 ? (int)n : 0;
    req->value = n < 0 ? 0 : n;
}

/* Another process committed (ovms-admin): reload what we hold in memory. */
static void poll_external(ovms_store_t *st)
{
    sqlite3_stmt *s = store_stmt(&st->w, "PRAGMA data_version");
    int64_t v;
    if (!s || sqlite3_step(s) != SQLITE_ROW) {
        if (s)
            sqlite3_reset(s);
        return;
    }
    v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (v != st->data_version) {
        int64_t seq = 0;
        st->data_version = v;
        if (store_cache_reload(st, &st->w) == 0) {
            pthread_mutex_lock(&st->stats_mu);
            st->stats.reloads++;
            pthread_mutex_unlock(&st->stats_mu);
        }
        /* ovms-admin writes as this node: its changes are ours to send.
         * Replication is told even when a batch already took the counter
         * over (begin_write): a kick too many costs one read of the log. */
        if (store_load_seq(&st->w, st->node_id, &seq) == 0 && seq > st->own_seq)
            st->own_seq = seq;
        publish_marks(st, 1);
    }
}

static void *writer_main(void *arg)
{
    ovms_store_t *st = arg;
    pthread_setname_np(pthread_self(), "store-write");   /* for top -H, perf */
    double poll = (st->cfg.poll_ms > 0 ? st->cfg.poll_ms : 1000) / 1000.0;
    double expire = (st->cfg.expire_interval_ms ? st->cfg.expire_interval_ms : 60000) / 1000.0;
    double next_poll = store_now_mono() + poll;
    double next_expire = expire > 0 ? store_now_mono() + expire : 0;
    int stopped = 0;

    while (!stopped) {
        double deadline = next_expire > 0 && next_expire < next_poll ? next_expire : next_poll;
        ovms_store_req_t *list = queue_take(&st->wq, deadline, &stopped);
        if (list) {
            process_writes(st, list);
            stopped = 0;                /* drain everything before leaving */
        }
        /* also when busy: other processes' changes must be seen within poll_ms */
        double now = store_now_mono();
        if (now >= next_poll) {
            poll_external(st);
            next_poll = now + poll;
        }
        /* also when busy: expiry commits waiting writes between its batches */
        if (next_expire > 0 && now >= next_expire) {
            expire_until_done(st, store_now());
            next_expire = now + expire;
        }
    }
    return NULL;
}

static void read_loop(ovms_store_t *st, store_queue_t *q, store_conn_t *c)
{
    int stopped = 0;

    for (;;) {
        ovms_store_req_t *list = queue_take(q, 0, &stopped);
        if (!list && stopped)
            break;
        size_t n = 0;
        for (ovms_store_req_t *r = list; r; r = r->next, n++)
            r->status = store_exec_read(st, c, r);
        add_stats(st, 0, 0, n, 0, 0);
        complete_list(list);
    }
}

static void *reader_main(void *arg)
{
    ovms_store_t *st = arg;
    pthread_setname_np(pthread_self(), "store-read");
    read_loop(st, &st->rq, &st->r);
    return NULL;
}

static void *bulk_main(void *arg)
{
    ovms_store_t *st = arg;
    pthread_setname_np(pthread_self(), "store-bulk");
    read_loop(st, &st->bq, &st->b);
    return NULL;
}

/* ---- opening -------------------------------------------------------------------- */

static int open_conn(store_conn_t *c, const char *path, int readonly, int sync_normal,
                     char *err, size_t errlen)
{
    int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);

    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        return rc == SQLITE_CANTOPEN ? OVMS_EIO : store_sql_error(c->db, rc);
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, 5000);
    /* Reading the schema is what tells a database from anything else. */
    rc = sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if ((rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_CANTOPEN) {
        snprintf(err, errlen, "database %s is read-only or its folder is not writable (%s)",
                 path, sqlite3_errmsg(c->db));
        return OVMS_EREADONLY;
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s is not a usable SQLite database (%s)", path,
                 sqlite3_errmsg(c->db));
        return (rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT ? OVMS_ECORRUPT
                                                                           : store_sql_error(c->db, rc);
    }
    if (!readonly && sqlite3_db_readonly(c->db, "main") == 1) {
        snprintf(err, errlen, "database %s is read-only (check the file's and its folder's "
                              "permissions)", path);
        return OVMS_EREADONLY;
    }
    if (!readonly) {
        sqlite3_stmt *s;
        const unsigned char *mode = NULL;
        if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) == SQLITE_OK) {
            if (sqlite3_step(s) == SQLITE_ROW)
                mode = sqlite3_column_text(s, 0);
            int wal = mode && strcmp((const char *)mode, "wal") == 0;
            rc = sqlite3_finalize(s);
            if (!wal) {
                snprintf(err, errlen, "cannot switch %s to WAL mode: %s", path,
                         sqlite3_errmsg(c->db));
                return rc == SQLITE_OK ? OVMS_EIO : store_sql_error(c->db, rc);
            }
        }
    }
    store_exec(c->db, sync_normal ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL");
    /* no foreign keys: replicated records of different origins arrive in
     * any order (a car's messages before its vehicle, a vehicle before its
     * owner); the write operations check what they need themselves */
    return 0;
}

static void store_free(ovms_store_t *st)
{
    store_conn_close(&st->w);
    store_conn_close(&st->r);
    store_conn_close(&st->b);
    store_cache_free(&st->cache);
    queue_destroy(&st->wq);
    queue_destroy(&st->rq);
    queue_destroy(&st->bq);
    pthread_mutex_destroy(&st->stats_mu);
    free(st);
}

static int open_and_prepare(ovms_store_t *st, char *err, size_t errlen)
{
    const ovms_store_config_t *cfg = &st->cfg;
    int rc;

    if ((rc = open_conn(&st->w, st->path, cfg->readonly, cfg->sync_normal, err, errlen)) < 0)
        return rc;
    if (!cfg->readonly && (rc = store_schema_migrate(st->w.db, err, errlen)) < 0)
        return rc;
    rc = store_meta_node_id(&st->w, cfg->node_id, st->node_id, sizeof st->node_id);
    if (rc == OVMS_ECONFIG) {
        snprintf(err, errlen, "database %s belongs to node %s, not %s", st->path, st->node_id,
                 cfg->node_id ? cfg->node_id : "?");
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the node id from %s: %s", st->path,
                 sqlite3_errmsg(st->w.db));
        return rc;
    }
    store_load_seq(&st->w, st->node_id, &st->own_seq);
    if (!cfg->readonly && (rc = store_own_counter_start(st)) < 0) {
        snprintf(err, errlen, "cannot start the replication counter in %s", st->path);
        return rc;
    }
    if ((rc = store_marks_load(&st->w, &st->marks)) < 0) {
        snprintf(err, errlen, "cannot read the watermarks from %s", st->path);
        return rc;
    }
    store_marks_advertised(st, &st->marks_pub);
    st->own_pub = st->own_seq;
    if ((rc = open_conn(&st->r, st->path, cfg->readonly, cfg->sync_normal, err, errlen)) < 0 ||
        (rc = open_conn(&st->b, st->path, cfg->readonly, cfg->sync_normal, err, errlen)) < 0)
        return rc;
    if ((rc = store_cache_reload(st, &st->w)) < 0) {
        snprintf(err, errlen, "cannot load vehicles from %s: %s", st->path, ovms_strerror(rc));
        return rc;
    }
    return 0;
}

int ovms_store_open(ovms_store_t **out, const ovms_store_config_t *cfg, char *err, size_t errlen)
{
    char dummy[8];
    ovms_store_t *st;
    int rc;

    *out = NULL;
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!cfg || !cfg->path || !*cfg->path) {
        snprintf(err, errlen, "no database path given");
        return OVMS_EINVAL;
    }
    st = calloc(1, sizeof *st);
    if (!st || queue_init(&st->wq) < 0 || queue_init(&st->rq) < 0 || queue_init(&st->bq) < 0 ||
        store_cache_init(&st->cache) < 0 || pthread_mutex_init(&st->stats_mu, NULL) != 0) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return OVMS_ENOMEM;
    }
    st->cfg = *cfg;                     /* node_id still points at the caller's */
    snprintf(st->path, sizeof st->path, "%s", cfg->path);
    st->cfg.path = st->path;
    if ((rc = open_and_prepare(st, err, errlen)) < 0) {
        store_free(st);
        return rc;
    }
    st->cfg.node_id = st->node_id;
    poll_external(st);                 /* the baseline data_version */
    st->have_reader = pthread_create(&st->reader, NULL, reader_main, st) == 0;
    st->have_bulk = pthread_create(&st->bulk, NULL, bulk_main, st) == 0;
    if (!cfg->readonly)
        st->have_writer = pthread_create(&st->writer, NULL, writer_main, st) == 0;
    if (!st->have_reader || !st->have_bulk || (!cfg->readonly && !st->have_writer)) {
        snprintf(err, errlen, "cannot start the storage threads");
        ovms_store_close(st);
        return OVMS_ENOMEM;
    }
    *out = st;
    return 0;
}

void ovms_store_close(ovms_store_t *st)
{
    if (!st)
        return;
    st->closing = 1;
    queue_stop(&st->rq);
    queue_stop(&st->bq);
    queue_stop(&st->wq);
    if (st->have_reader)
        pthread_join(st->reader, NULL);
    if (st->have_bulk)
        pthread_join(st->bulk, NULL);
    if (st->have_writer)
        pthread_join(st->writer, NULL);
    if (st->w.db && !st->cfg.readonly)
        sqlite3_wal_checkpoint_v2(st->w.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    store_free(st);
}

const char *ovms_store_node_id(const ovms_store_t *st)
{
    return st->node_id;
}

void ovms_store_get_stats(ovms_store_t *st, ovms_store_stats_t *out)
{
    pthread_mutex_lock(&st->stats_mu);
    *out = st->stats;
    pthread_mutex_unlock(&st->stats_mu);
    pthread_mutex_lock(&st->wq.mu);
    out->queued = st->wq.n;
    pthread_mutex_unlock(&st->wq.mu);
}

/* ---- requests ----------------------------------------------------------------------- */

void ovms_store_req_init(ovms_store_req_t *req)
{
    memset(req, 0, sizeof *req);
}

void ovms_store_req_incarnation(ovms_store_req_t *req, int64_t created)
{
    req->incarnation = created;
}

void ovms_store_req_lazy(ovms_store_req_t *req, int max_ms)
{
    req->lazy_ms = max_ms > 0 ? max_ms : 0;
}

void ovms_store_req_limit(ovms_store_req_t *req, int64_t max)
{
    req->limit = max;
}

void ovms_store_req_msg_history(ovms_store_req_t *req, int64_t expires)
{
    req->msg_history = expires;
}

void ovms_store_req_ordered(ovms_store_req_t *req)
{
    req->flags |= STORE_ORDERED;
}

void ovms_store_req_bulk(ovms_store_req_t *req)
{
    req->flags |= STORE_BULK;
}

void ovms_store_req_cleanup(ovms_store_req_t *req)
{
    free(req->args);
    req->args = NULL;
    store_rows_free(&req->rows);
    memset(req->s, 0, sizeof req->s);
}

int ovms_store_submit(ovms_store_t *st, ovms_store_req_t *req, const ovms_store_sink_t *sink,
                      ovms_store_done_cb done)
{
    if (!req->op)
        return OVMS_EINVAL;
    req->sink = sink ? *sink : (ovms_store_sink_t){ NULL, NULL };
    req->done = done;
    req->status = 0;
    req->submitted = store_now_mono();
    /* only a write may wait: a read's caller waits for it */
    req->lazy_until = req->lazy_ms > 0 && STORE_IS_WRITE(req->op) ? req->submitted + req->lazy_ms / 1000.0 : 0;
    if (STORE_IS_WRITE(req->op) || (req->flags & STORE_ORDERED)) {
        if (st->cfg.readonly)
            return STORE_IS_WRITE(req->op) ? OVMS_EREADONLY : queue_push(&st->rq, req);
        return queue_push(&st->wq, req);
    }
    return queue_push((req->flags & STORE_BULK) ? &st->bq : &st->rq, req);
}

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} waiter_t;

static void waiter_post(void *ctx, ovms_store_req_t *req)
{
    waiter_t *w = ctx;
    (void)req;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int ovms_store_run(ovms_store_t *st, ovms_store_req_t *req)
{
    waiter_t w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
    ovms_store_sink_t sink = { waiter_post, &w };
    int rc = ovms_store_submit(st, req, &sink, NULL);

    if (rc < 0)
        return req->status = rc;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return req->status;
}
