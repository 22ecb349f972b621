/*
 * worker.c -- one worker thread: its libuv loop, its SO_REUSEPORT
 * listeners, its mailbox, the per-turn write flush, the once-a-second sweep
 * (timeouts, pings, utilisation), and the tables of the connections and
 * vehicles it owns.
 *
 * The mailbox is a mutex-protected list plus a uv_async_t that is signalled
 * only on the empty -> non-empty edge, so a burst of cross-thread events
 * costs one wakeup. Writes queued during a loop turn are flushed together
 * in the check phase, after all reads of that turn were handled.
 * Threading: everything here runs on the worker's own thread, except
 * worker_post (any thread) and worker_home (pure).
 */
#include "http_auth.h"
#include "http_int.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- clocks ------------------------------------------------------------------------- */

uint32_t worker_now(worker_t *w)
{
    return (uint32_t)(uv_now(&w->loop) / 1000);
}

int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- homes and tables ------------------------------------------------------------------ */

worker_t *worker_home(server_t *srv, const char *vehicle)
{
    return &srv->workers[hash_str(vehicle) % (uint64_t)srv->nworkers];
}

static uint64_t conn_hash(const void *item)
{
    return hash_u64(((const conn_t *)item)->id);
}

static int conn_match(const void *item, const void *key)
{
    return ((const conn_t *)item)->id == *(const uint64_t *)key;
}

void worker_track_conn(worker_t *w, conn_t *c)
{
    w->conn_ids.hash_item = conn_hash;
    table_insert(&w->conn_ids, c);    /* on failure only group deliveries miss it */
}

void worker_untrack_conn(worker_t *w, conn_t *c)
{
    table_remove(&w->conn_ids, c);
}

conn_t *worker_find_conn(worker_t *w, uint64_t id)
{
    return table_find(&w->conn_ids, hash_u64(id), conn_match, &id);
}

/* ---- store requests -------------------------------------------------------------------- */

/* Runs on a store thread: hand the request to its worker. */
static void sreq_post(void *ctx, ovms_store_req_t *req)
{
    sreq_t *r = container_of(req, sreq_t, req);
    (void)ctx;
    /* cannot be refused: a worker keeps its mailbox while requests are pending */
    (void)worker_post(r->w, &r->mail);
}

sreq_t *sreq_new(worker_t *w, conn_t *c, vehicle_t *v, sreq_cb done)
{
    sreq_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->mail.type = MAIL_STORE;
    r->w = w;
    r->conn = c;
    r->vehicle = v;
    r->done = done;
    ovms_store_req_init(&r->req);
    return r;
}

/* A write without a done() failed: a vehicle removed meanwhile and a
 * full history are expected, anything else is an error. */
static void log_unawaited(const conn_t *c, int status)
{
    if (status == OVMS_ENOTFOUND)
        LOG_INFO(c, "a write for a vehicle removed meanwhile was dropped");
    else if (status < 0 && status != OVMS_EQUOTA)
        LOG_ERROR(c, "store write failed: %s", ovms_strerror(status));
}

/* A write nobody waits for (utilisation, server logs, notifications):
 * finished and freed on the store's thread, so it costs its worker no
 * wakeup. Failures are logged there. */
static void sreq_forget(ovms_store_req_t *req)
{
    log_unawaited(NULL, req->status);
    sreq_free(container_of(req, sreq_t, req));
}

int sreq_submit(sreq_t *r)
{
    static const ovms_store_sink_t sink_template = { sreq_post, NULL };
    if (!r->done && !r->conn && !r->vehicle) {
        int rc = ovms_store_submit(r->w->srv->store, &r->req, NULL, sreq_forget);
        if (rc < 0)
            sreq_free(r);
        return rc;
    }
    if (r->conn)
        conn_ref(r->conn);
    if (r->vehicle)
        hub_ref(r->vehicle);
    r->w->pending_sreqs++;
    int rc = ovms_store_submit(r->w->srv->store, &r->req, &sink_template, NULL);
    if (rc < 0) {
        r->req.status = rc;
        (void)worker_post(r->w, &r->mail);   /* complete it the usual way */
    }
    return rc;
}

void sreq_free(sreq_t *r)
{
    ovms_store_req_cleanup(&r->req);
    free(r);
}

static void sreq_complete(worker_t *w, sreq_t *r)
{
    conn_t *c = r->conn;
    vehicle_t *v = r->vehicle;
    if (r->done)
        r->done(r);
    else
        log_unawaited(c, r->req.status);
    w->pending_sreqs--;
    sreq_free(r);
    if (c)
        conn_unref(c);
    if (v)
        hub_unref(v);
}

/* ---- mailbox ------------------------------------------------------------------------------ */

int worker_post(worker_t *w, mail_t *m)
{
    m->next = NULL;
    pthread_mutex_lock(&w->mail_mu);
    if (w->mail_closed) {
        pthread_mutex_unlock(&w->mail_mu);
        return -1;                      /* the worker has finished: the sender disposes */
    }
    int was_empty = w->mail_head == NULL;
    if (w->mail_tail)
        w->mail_tail->next = m;
    else
        w->mail_head = m;
    w->mail_tail = m;
    /* signalled under the lock, so the handle cannot be closed in between */
    if (was_empty)
        uv_async_send(&w->wake);
    pthread_mutex_unlock(&w->mail_mu);
    return 0;
}

/* Mail that arrives for a worker that is stopping or has stopped: nothing
 * may be lost silently, and a moving connection is closed, not leaked. */
void mail_dispose(server_t *srv, mail_t *m)
{
    if (m->type == MAIL_CONFIG)
        config_unref(((config_mail_t *)m)->cfg);
    if (m->type == MAIL_CALL) {
        ((call_t *)m)->run(NULL, (call_t *)m);
        return;
    }
    if (m->type == MAIL_HANDOFF) {
        handoff_t *ho = (handoff_t *)m;
        close(ho->fd);
        tls_conn_free(ho->tls);
        ws_free(ho->ws);
        __atomic_sub_fetch(&srv->conn_count, 1, __ATOMIC_RELAXED);
    }
    free(m);
}

static void deliver(worker_t *w, deliver_t *d)
{
    conn_t *c = worker_find_conn(w, d->conn_id);
    if (c && c->state == CS_ACTIVE)
        conn_send(c, d->msg, d->len);
    free(d);
}

static void begin_stop(worker_t *w);

/* Once stopping and nothing is left (connections, store requests), close
 * the mailbox: later mail is refused (its senders dispose of it), what is
 * still queued is disposed of here, and the loop then has no handles and
 * ends. Store completions cannot be refused: none is pending by now. */
void worker_maybe_finish(worker_t *w)
{
    if (!w->stopping || w->pending_sreqs != 0 || w->nconns != 0 || w->nhttp != 0 ||
        uv_is_closing((uv_handle_t *)&w->wake))
        return;
    pthread_mutex_lock(&w->mail_mu);
    w->mail_closed = 1;
    mail_t *m = w->mail_head;
    w->mail_head = w->mail_tail = NULL;
    pthread_mutex_unlock(&w->mail_mu);
    while (m) {
        mail_t *next = m->next;
        mail_dispose(w->srv, m);
        m = next;
    }
    nodebus_close(w);           /* after the closes' last states went out */
    uv_close((uv_handle_t *)&w->wake, NULL);
}

static void on_wake(uv_async_t *a)
{
    worker_t *w = a->data;
    mail_t *m;

    pthread_mutex_lock(&w->mail_mu);
    m = w->mail_head;
    w->mail_head = w->mail_tail = NULL;
    pthread_mutex_unlock(&w->mail_mu);
    while (m) {
        mail_t *next = m->next;
        switch (m->type) {
        case MAIL_HANDOFF:
            if (w->stopping)
                mail_dispose(w->srv, m);     /* closed, as if it had come a moment later */
            else
                login_arrive(w, (handoff_t *)m);
            break;
        case MAIL_STORE: sreq_complete(w, container_of(m, sreq_t, mail)); break;
        case MAIL_DELIVER: deliver(w, (deliver_t *)m); break;
        case MAIL_STOP: free(m); begin_stop(w); break;
        case MAIL_VEHICLE:
            hub_vehicle_changed(w, ((vehicle_mail_t *)m)->id);
            free(m);
            break;
        case MAIL_CALL: ((call_t *)m)->run(w, (call_t *)m); break;
        case MAIL_CONFIG:
            config_unref(w->cfg);
            w->cfg = ((config_mail_t *)m)->cfg;
            free(m);
            break;
        }
        m = next;
    }
    worker_maybe_finish(w);
}

/* ---- flush and sweep ------------------------------------------------------------------------- */

static void on_check(uv_check_t *h)
{
    conn_flush_all(h->data);
}

#define REPLY_STALL 60               /* seconds a streaming reply may make no progress */

/* Shorter while many connections have not logged in (a handshake flood). */
static uint32_t welcome_limit(worker_t *w)
{
    const ovms_config_t *cfg = w->cfg;
    if (guard_under_pressure(w->srv->guard, cfg) && cfg->welcome_under_pressure < cfg->welcome_timeout)
        return (uint32_t)cfg->welcome_under_pressure;
    return (uint32_t)cfg->welcome_timeout;
}

static void sweep_conn(worker_t *w, conn_t *c, uint32_t now)
{
    const ovms_config_t *cfg = w->cfg;

    if (c->state == CS_WELCOME || (c->state == CS_PARKED && !c->role)) {
        if (now - c->accepted >= welcome_limit(w))
            conn_close(c, "no welcome within the time limit");
        return;
    }
    if (c->state != CS_ACTIVE && c->state != CS_PARKED)
        return;
    uint32_t idle = c->role == 'C' ? (uint32_t)cfg->car_idle
                  : c->role == 'A' ? (uint32_t)cfg->app_idle : (uint32_t)cfg->batch_idle;
    if (now - c->last_rx >= idle) {
        conn_close(c, "idle: nothing received for the time limit");
        return;
    }
    conn_quota_check(c);
    if (c->reply && now - c->last_tx >= REPLY_STALL) {
        conn_close(c, "a long reply was not read for 60 s");
        return;
    }
    if (c->role == 'C' && now - c->last_tx >= (uint32_t)cfg->ping_after &&
        now - c->last_ping >= (uint32_t)cfg->ping_interval) {
        conn_send(c, "AFA", 3);
        c->last_ping = now;
    }
}

static void on_sweep(uv_timer_t *t)
{
    worker_t *w = t->data;
    uint32_t now = worker_now(w);

    link_each(pos, &w->conns)
        sweep_conn(w, container_of(pos, conn_t, wlink), now);
    hub_flush_all(w, 0);
    hub_http_expire(w);
    hub_cache_expire(w, 0);
    http_cmd_sweep(w);
    nodebus_tick(w);
    /* Give memory freed after a burst (a login storm, a flood of output)
     * back to the system; one worker does it for the whole process. */
    if (w->index == 0 && now % 10 == 0)
        malloc_trim(0);
    if (w->index == 0)
        http_state_tick(w->srv, w->cfg);
}

/* ---- accepting ---------------------------------------------------------------------------- */

/* At the connection limit: accept and close at once, and say so now and then. */
static void log_refusal(worker_t *w)
{
    server_t *srv = w->srv;
    int64_t n = __atomic_add_fetch(&srv->refused, 1, __ATOMIC_RELAXED);
    uint64_t now = uv_now(&w->loop);
    uint64_t last = __atomic_load_n(&srv->last_refusal_log, __ATOMIC_RELAXED);
    if (last == 0 || now - last >= 10000) {
        __atomic_store_n(&srv->last_refusal_log, now, __ATOMIC_RELAXED);
        LOG_WARN(NULL, "connection limit (%d) reached: refusing connections (%lld so far)",
                 w->cfg->max_connections, (long long)n);
    }
}

static void refused_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    worker_untrack_conn(c->w, c);
    ovms_linesplit_free(&c->ls);
    pool_free(&c->w->conn_pool, c);
}

/* Admission control before a byte is read (guard.c): penalized addresses,
 * and too many unauthenticated connections from one address or in all. */
static int admit(worker_t *w, conn_t *c)
{
    static const char *const why[] = {
        [GUARD_PENALIZED] = "refused: too many failed logins from this address",
        [GUARD_ADDRESS_FULL] = "refused: too many connections from this address not logged in yet",
        [GUARD_TOTAL_FULL] = "refused: too many connections not logged in yet",
    };
    char addr[64];
    int counted;
    conn_read_peer(c);
    int rc = guard_accept(w->srv->guard, w->cfg, &c->peer, &counted);
    if (rc != GUARD_OK) {
        log_limited(OVMS_LOG_WARN, c, why[rc], rc == GUARD_TOTAL_FULL ? "all addresses"
                    : peer_addr_text(&c->peer, addr, sizeof addr), "%s", why[rc]);
        return 0;
    }
    c->flags |= CF_UNAUTH | (counted ? CF_ADDR_COUNT : 0);
    return 1;
}

static void on_connection(uv_stream_t *listener, int status)
{
    worker_t *w = listener->data;
    conn_t *c;

    if (status < 0) {
        LOG_WARN(NULL, "accept failed: %s", uv_strerror(status));
        return;
    }
    int kind = w->listen_kind[(uv_tcp_t *)listener - w->listeners];
    if (kind == LISTEN_HTTP || kind == LISTEN_HTTPS) {
        if (!w->stopping)
            http_accept(w, listener, kind == LISTEN_HTTPS);
        return;
    }
    if (w->stopping || !(c = conn_new(w)))
        return;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->state = CS_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, refused_closed);
        return;
    }
    if (__atomic_load_n(&w->srv->conn_count, __ATOMIC_RELAXED) >= w->cfg->max_connections) {
        log_refusal(w);
        c->state = CS_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, refused_closed);
        return;
    }
    if (!admit(w, c)) {
        c->state = CS_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, refused_closed);
        return;
    }
    __atomic_add_fetch(&w->srv->conn_count, 1, __ATOMIC_RELAXED);
    c->state = CS_WELCOME;
    if (kind == LISTEN_V2_TLS && !(c->tls = tls_conn_new(w->srv))) {
        conn_close(c, "cannot start TLS");
        return;
    }
    if (conn_start_accepted(c) < 0)
        conn_close(c, "cannot start reading");
}

void worker_http_closed(worker_t *w)
{
    w->nhttp--;
    worker_maybe_finish(w);
}

/* ---- start and stop ------------------------------------------------------------------------- */

static void begin_stop(worker_t *w)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    for (int i = 0; i < w->nlisteners; i++)
        uv_close((uv_handle_t *)&w->listeners[i], NULL);
    uv_timer_stop(&w->sweep);
    uv_close((uv_handle_t *)&w->sweep, NULL);
    uv_close((uv_handle_t *)&w->due_timer, NULL);
    conn_flush_all(w);
    http_cmd_stop_all(w);
    link_each(pos, &w->conns)
        conn_close(container_of(pos, conn_t, wlink), "server shutting down");
    http_close_all(w);
    hub_http_drop_all(w);
    hub_cache_expire(w, 1);
    conn_flush_all(w);          /* closing queued last words (Z0): drop their references */
    hub_flush_all(w, 1);        /* utilisation and held messages go to the store */
    uv_close((uv_handle_t *)&w->flusher, NULL);
    worker_maybe_finish(w);
}

void worker_run(worker_t *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* drain what the last turn left (handles closed, mail taken) */
    uv_run(&w->loop, UV_RUN_NOWAIT);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof name, "ovmsd-w%d", w->index);   /* for top -H, perf */
    pthread_setname_np(pthread_self(), name);
    worker_run(w);
    http_req_spares_free();
    http_memo_free();
    return NULL;
}

/* Everything a worker needs before any worker listens: once one listens,
 * it may hand a login to any other, whose mailbox must then exist. */
int worker_init(worker_t *w)
{
    int rc = uv_loop_init(&w->loop);
    if (rc < 0)
        return rc;
    link_init(&w->conns);
    link_init(&w->https);
    link_init(&w->http_cmds);
    pool_init(&w->conn_pool, sizeof(conn_t));
    pool_init(&w->vehicle_pool, sizeof(vehicle_t));
    pthread_mutex_init(&w->mail_mu, NULL);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_check_init(&w->loop, &w->flusher);
    w->flusher.data = w;
    uv_check_start(&w->flusher, on_check);
    uv_timer_init(&w->loop, &w->sweep);
    w->sweep.data = w;
    uv_timer_start(&w->sweep, on_sweep, 1000, 1000);
    uv_timer_init(&w->loop, &w->due_timer);
    w->due_timer.data = w;
    link_init(&w->due);
    w->last_util_flush = worker_now(w);
    if ((rc = nodebus_open(w)) < 0)
        return rc;
    for (int i = 0; i < w->nlisteners; i++) {
        uv_tcp_init(&w->loop, &w->listeners[i]);
        w->listeners[i].data = w;
        if ((rc = uv_tcp_open(&w->listeners[i], w->listen_fds[i])) < 0)
            return rc;
    }
    return 0;
}

/* listen_fds: sockets the server bound for this worker (SO_REUSEPORT). */
int worker_start(worker_t *w)
{
    int rc;
    for (int i = 0; i < w->nlisteners; i++)
        if ((rc = uv_listen((uv_stream_t *)&w->listeners[i], 1024, on_connection)) < 0)
            return rc;
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : UV_ENOMEM;
}
