/*
 * server.c -- a node's life: open the store, bind one SO_REUSEPORT socket
 * per worker and listen address (libuv 1.44 has no flag for it, so the
 * sockets are made here), start the workers, then wait on the main thread
 * for signals. SIGTERM/SIGINT: every worker stops accepting, flushes
 * utilisation, closes its connections and waits for its store requests;
 * then the store finishes its queue and closes. SIGHUP re-reads what can
 * change while running.
 * Threading: the main thread.
 */
#include "http_auth.h"

#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int bind_socket(const ovms_listen_t *l, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE }, *res;
    char port[8];
    int fd, on = 1, rc;

    snprintf(port, sizeof port, "%d", l->port);
    if ((rc = getaddrinfo(l->host, port, &hints, &res)) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", l->host, l->port, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Accepted sockets inherit these, so no connection needs a setsockopt:
     * no Nagle delay, and the reference's keepalive (idle 240 s, interval
     * 240 s, the kernel's 9 probes). */
    int idle = 240, defer = 5;
    /* Clients speak first: accept a connection once its welcome is in, so
     * the worker can read it at once (defer at most 5 s, then accept anyway). */
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof idle) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", l->host, l->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int bind_all(server_t *srv, char *err, size_t errlen)
{
    const ovms_config_t *cfg = srv->cfg;
    for (int i = 0; i < srv->nworkers; i++) {
        worker_t *w = &srv->workers[i];
        int n2 = cfg->nlisten, n2t = n2 + cfg->ntls_listen, nh = n2t + cfg->nhttp_listen;
        for (int k = 0; k < nh + cfg->nhttps_listen; k++) {
            int kind = k < n2 ? LISTEN_V2 : k < n2t ? LISTEN_V2_TLS : k < nh ? LISTEN_HTTP : LISTEN_HTTPS;
            const ovms_listen_t *l = kind == LISTEN_V2 ? &cfg->listen[k]
                                     : kind == LISTEN_V2_TLS ? &cfg->tls_listen[k - n2]
                                     : kind == LISTEN_HTTP ? &cfg->http_listen[k - n2t]
                                     : &cfg->https_listen[k - nh];
            int fd = bind_socket(l, err, errlen);
            if (fd < 0)
                return -1;
            w->listen_kind[w->nlisteners] = (uint8_t)kind;
            w->listen_fds[w->nlisteners++] = fd;
        }
    }
    return 0;
}

static void stop_workers(server_t *srv)
{
    for (int i = 0; i < srv->nworkers; i++) {
        mail_t *m = calloc(1, sizeof *m);
        if (!m)
            continue;
        m->type = MAIL_STOP;
        if (worker_post(&srv->workers[i], m) < 0)
            free(m);
    }
}

typedef struct signals {
    uv_signal_t term, intr, hup, usr1;
    server_t *srv;
} signals_t;

/* ---- configuration snapshots -------------------------------------------------------- */

typedef struct shared_config {
    ovms_config_t cfg;
    int refs;
} shared_config_t;

const ovms_config_t *config_share(const ovms_config_t *src, int refs)
{
    shared_config_t *sc = malloc(sizeof *sc);
    if (!sc)
        return NULL;
    sc->cfg = *src;
    sc->refs = refs;
    return &sc->cfg;
}

void config_unref(const ovms_config_t *cfg)
{
    if (!cfg)
        return;
    shared_config_t *sc = container_of(cfg, shared_config_t, cfg);
    if (__atomic_sub_fetch(&sc->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(sc);
}

/* SIGHUP: a fresh snapshot goes to every worker by mail, so a worker never
 * sees a configuration change under its feet. */
static void reload(server_t *srv)
{
    ovms_config_t next;
    char note[512];

    char tls_err[512];
    int tls = tls_reload(srv, tls_err, sizeof tls_err);
    if (tls < 0)
        LOG_ERROR(NULL, "TLS certificate not reloaded, keeping the running one: %s", tls_err);
    else if (tls > 0)
        LOG_INFO(NULL, "TLS certificate and key reloaded from %s and %s", srv->cfg->tls_cert, srv->cfg->tls_key);
    if (ovms_config_reload(srv->cfg, &next, note, sizeof note) < 0) {
        LOG_ERROR(NULL, "reload failed, keeping the running configuration: %s", note);
        return;
    }
    const ovms_config_t *shared = config_share(&next, 1 + srv->nworkers);
    if (!shared) {
        LOG_ERROR(NULL, "reload failed: out of memory");
        return;
    }
    for (int i = 0; i < srv->nworkers; i++) {
        config_mail_t *m = calloc(1, sizeof *m);
        if (m) {
            m->mail.type = MAIL_CONFIG;
            m->cfg = shared;
        }
        if (!m || worker_post(&srv->workers[i], &m->mail) < 0) {
            free(m);
            config_unref(shared);
        }
    }
    __atomic_store_n(&ovms_log_level, (int)shared->log_level, __ATOMIC_RELAXED);
    config_unref(srv->cfg);
    srv->cfg = shared;
    if (note[0])
        LOG_WARN(NULL, "configuration reloaded; changes to %s take effect at the next start", note);
    else
        LOG_INFO(NULL, "configuration reloaded");
}

/* SIGUSR1: one line of what the node holds, for operators (and tests). */
static void log_stats(server_t *srv)
{
    guard_stats_t g;
    int64_t ngroups, nsubs, nmembers;
    char repl[160];
    guard_stats(srv->guard, &g);
    groups_stats(&ngroups, &nsubs, &nmembers);
    ovms_replication_summary(__atomic_load_n(&srv->repl, __ATOMIC_ACQUIRE), repl, sizeof repl);
    LOG_WARN(NULL, "stats: %lld connections (%lld not logged in), %zu vehicles known, "
             "%lld groups (%lld subscriptions, %lld members); refused since start: %lld penalized "
             "addresses, %lld over the per-address limit, %lld over the total limit, %lld for a "
             "guarded vehicle, %lld replayed welcomes; replication: %s",
             (long long)__atomic_load_n(&srv->conn_count, __ATOMIC_RELAXED),
             (long long)g.unauthenticated, ovms_store_vehicle_count(srv->store), (long long)ngroups,
             (long long)nsubs, (long long)nmembers, (long long)g.refused_penalty,
             (long long)g.refused_address, (long long)g.refused_total, (long long)g.refused_vehicle,
             (long long)g.replays, repl);
}

static void on_signal(uv_signal_t *h, int signum)
{
    signals_t *s = h->data;
    if (signum == SIGHUP) {
        reload(s->srv);
        return;
    }
    if (signum == SIGUSR1) {
        log_stats(s->srv);
        return;
    }
    LOG_INFO(NULL, "%s: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    stop_workers(s->srv);
    uv_close((uv_handle_t *)&s->term, NULL);
    uv_close((uv_handle_t *)&s->intr, NULL);
    uv_close((uv_handle_t *)&s->hup, NULL);
    uv_close((uv_handle_t *)&s->usr1, NULL);
}

/* On the store's writer thread: tell the vehicle's home worker. Before the
 * workers exist there is nobody to tell; once they stop, they refuse it. */
static void vehicle_changed(void *ctx, const char *id)
{
    server_t *srv = ctx;
    vehicle_mail_t *m;
    if (!__atomic_load_n(&srv->workers_ready, __ATOMIC_ACQUIRE) || !(m = calloc(1, sizeof *m)))
        return;
    m->mail.type = MAIL_VEHICLE;
    snprintf(m->id, sizeof m->id, "%s", id);
    if (worker_post(worker_home(srv, id), &m->mail) < 0)
        free(m);
}

/* On the store's writer thread: replication reads what is new. */
static void store_committed(void *ctx)
{
    server_t *srv = ctx;
    pthread_mutex_lock(&srv->repl_mu);
    ovms_replication_kick(srv->repl);
    pthread_mutex_unlock(&srv->repl_mu);
}

static void repl_log(void *ctx, int level, const char *text)
{
    (void)ctx;
    if (log_enabled((ovms_log_level_t)level))
        log_line((ovms_log_level_t)level, NULL, "replication: %s", text);
}

/* Peers configured: the replication thread starts (docs/replication.md). */
static int start_replication(server_t *srv)
{
    const ovms_config_t *cfg = srv->cfg;
    static char status_path[1100];
    ovms_replication_config_t rcfg = {
        .server_id = ovms_store_node_id(srv->store),
        .npeers = cfg->npeers,
        .store = srv->store,
        .status_path = status_path,
        .keepalive_s = cfg->peer_keepalive,
        .idle_timeout_s = cfg->peer_idle,
        .log = repl_log,
    };
    ovms_replication_t *r;
    if (!cfg->npeers)
        return 0;
    for (int i = 0; i < cfg->npeers; i++) {
        if (!strcasecmp(cfg->peers[i].id, rcfg.server_id)) {
            LOG_ERROR(NULL, "peer %s is this node's own id", cfg->peers[i].id);
            return -1;
        }
        rcfg.peers[i] = cfg->peers[i];
    }
    snprintf(status_path, sizeof status_path, "%s.cluster", cfg->db_path);
    int rc = ovms_replication_start(&r, &rcfg);
    if (rc < 0) {
        LOG_ERROR(NULL, "cannot start replication: %s", ovms_strerror(rc));
        return rc;
    }
    pthread_mutex_lock(&srv->repl_mu);
    __atomic_store_n(&srv->repl, r, __ATOMIC_RELEASE);   /* (workers read it without the lock) */
    pthread_mutex_unlock(&srv->repl_mu);
    ovms_replication_kick(r);
    return 0;
}

/* After the workers stopped (they use srv->repl without the lock). */
static void stop_replication(server_t *srv)
{
    pthread_mutex_lock(&srv->repl_mu);
    ovms_replication_t *r = srv->repl;
    __atomic_store_n(&srv->repl, NULL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&srv->repl_mu);
    ovms_replication_stop(r);
}

static int open_store(server_t *srv)
{
    const ovms_config_t *cfg = srv->cfg;
    ovms_store_config_t scfg = {
        .path = cfg->db_path,
        .node_id = cfg->node_id[0] ? cfg->node_id : NULL,
        .sync_normal = cfg->db_sync_normal,
        .expire_interval_ms = cfg->expire_interval * 1000,
        .poll_ms = 250,                 /* ovms-admin changes reach peers within a second */
        .vehicle_changed = vehicle_changed,
        .committed = store_committed,
        .ctx = srv,
    };
    char err[512];
    int rc = ovms_store_open(&srv->store, &scfg, err, sizeof err);
    if (rc < 0)
        LOG_ERROR(NULL, "%s", err);
    return rc;
}

static void describe(const server_t *srv)
{
    char where[512] = "";
    size_t n = 0;
    for (int k = 0; k < srv->cfg->nlisten && n < sizeof where; k++)
        n += (size_t)snprintf(where + n, sizeof where - n, "%s%s:%d", k ? " " : "",
                              srv->cfg->listen[k].host, srv->cfg->listen[k].port);
    for (int k = 0; k < srv->cfg->ntls_listen && n < sizeof where; k++)
        n += (size_t)snprintf(where + n, sizeof where - n, " %s:%d (TLS)",
                              srv->cfg->tls_listen[k].host, srv->cfg->tls_listen[k].port);
    LOG_INFO(NULL, "%s node %s: %d workers, listening on %s, database %s (%zu vehicles)",
             ovms_server_version, ovms_store_node_id(srv->store), srv->nworkers, where,
             srv->cfg->db_path, ovms_store_vehicle_count(srv->store));
}

/* Fixed malloc thresholds, so that memory freed after a burst goes back.
 * glibc raises both thresholds whenever a large block is freed (the store's
 * vehicle table as it grows, a table of the hub): then a large block comes
 * from an arena instead of its own mapping, and an arena other than the
 * main one shrinks its top only past the raised trim threshold, which
 * malloc_trim() does not touch. Measured after a storm of 18,000 logins:
 * 2,398 bytes per idle connection with glibc's moving thresholds, 1,747
 * with these (each worker's arena kept about 8 MB of free top). */
static void malloc_settle(void)
{
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

static int server_run(ovms_config_t *cfg)
{
    server_t srv = { .cfg = cfg };      /* the caller's, until the workers exist */
    signals_t sig = { .srv = &srv };
    char err[512];
    int rc = 0;

    __atomic_store_n(&ovms_log_level, (int)cfg->log_level, __ATOMIC_RELAXED);
    signal(SIGPIPE, SIG_IGN);
    malloc_settle();
    pthread_mutex_init(&srv.auth_mu, NULL);
    pthread_mutex_init(&srv.repl_mu, NULL);
    if (tls_init(&srv, err, sizeof err) < 0) {
        LOG_ERROR(NULL, "%s", err);
        return 1;
    }
    if (open_store(&srv) < 0) {
        tls_free(&srv);
        return 1;
    }
    if (!(srv.guard = guard_new((size_t)cfg->token_memory)) || http_state_init(&srv) < 0 ||
        ovms_password_hash("a password no owner has", srv.dummy_hash, sizeof srv.dummy_hash) < 0) {
        LOG_ERROR(NULL, "out of memory");
        http_state_free(&srv);
        guard_free(srv.guard);
        ovms_store_close(srv.store);
        tls_free(&srv);
        return 1;
    }
    srv.nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv.nworkers < 1)
        srv.nworkers = 1;
    srv.workers = calloc((size_t)srv.nworkers, sizeof *srv.workers);
    if (!srv.workers || bind_all(&srv, err, sizeof err) < 0 ||
        !(srv.cfg = config_share(cfg, 1 + srv.nworkers))) {
        LOG_ERROR(NULL, "%s", srv.workers && srv.cfg ? err : "out of memory");
        ovms_store_close(srv.store);
        return 1;
    }
    for (int i = 0; i < srv.nworkers; i++)
        srv.workers[i].cfg = srv.cfg;    /* one reference each */
    groups_init();
    uv_loop_init(&srv.main_loop);
    uv_signal_init(&srv.main_loop, &sig.term);
    uv_signal_init(&srv.main_loop, &sig.intr);
    uv_signal_init(&srv.main_loop, &sig.hup);
    uv_signal_init(&srv.main_loop, &sig.usr1);
    sig.term.data = sig.intr.data = sig.hup.data = sig.usr1.data = &sig;
    uv_signal_start(&sig.term, on_signal, SIGTERM);
    uv_signal_start(&sig.intr, on_signal, SIGINT);
    uv_signal_start(&sig.hup, on_signal, SIGHUP);
    uv_signal_start(&sig.usr1, on_signal, SIGUSR1);

    /* Every worker is set up before any listens: a listening worker may
     * hand a login to any other at once. */
    int ready = 0, started = 0;
    for (; ready < srv.nworkers; ready++) {
        srv.workers[ready].srv = &srv;
        srv.workers[ready].index = ready;
        if ((rc = worker_init(&srv.workers[ready])) < 0) {
            LOG_ERROR(NULL, "cannot set up worker %d: %s", ready, uv_strerror(rc));
            break;
        }
    }
    if (ready == srv.nworkers)
        __atomic_store_n(&srv.workers_ready, 1, __ATOMIC_RELEASE);
    /* Replication before anyone listens: a peer that dials the moment the
     * port opens must find it there (it was closed as "no peers configured") */
    int repl_ok = ready == srv.nworkers && start_replication(&srv) == 0;
    for (; repl_ok && started < srv.nworkers; started++) {
        if ((rc = worker_start(&srv.workers[started])) < 0) {
            LOG_ERROR(NULL, "cannot start worker %d: %s", started, uv_strerror(rc));
            break;
        }
    }
    if (repl_ok && started == srv.nworkers) {
        describe(&srv);
        uv_run(&srv.main_loop, UV_RUN_DEFAULT);
    } else {
        stop_workers(&srv);
        uv_close((uv_handle_t *)&sig.term, NULL);
        uv_close((uv_handle_t *)&sig.intr, NULL);
        uv_close((uv_handle_t *)&sig.hup, NULL);
        uv_close((uv_handle_t *)&sig.usr1, NULL);
        uv_run(&srv.main_loop, UV_RUN_DEFAULT);
        rc = 1;
    }
    /* Loops are closed only once every thread is gone: until then any
     * worker may still post to any other. */
    for (int i = 0; i < started; i++)
        pthread_join(srv.workers[i].thread, NULL);
    for (int i = 0; i < ready; i++) {
        if (i >= started)
            worker_run(&srv.workers[i]);    /* set up, never started: let it close */
        if (uv_loop_close(&srv.workers[i].loop) != 0)
            LOG_WARN(NULL, "worker %d: loop still had handles at exit", i);
        table_free(&srv.workers[i].vehicles);
        table_free(&srv.workers[i].conn_ids);
        pool_destroy(&srv.workers[i].conn_pool);
        pool_destroy(&srv.workers[i].vehicle_pool);
    }
    stop_replication(&srv);
    for (int i = 0; i < srv.nworkers; i++)
        config_unref(srv.workers[i].cfg);
    config_unref(srv.cfg);
    uv_loop_close(&srv.main_loop);
    ovms_store_close(srv.store);
    free(srv.workers);
    free(srv.auth_failed);
    guard_free(srv.guard);
    http_state_free(&srv);
    tls_free(&srv);
    LOG_INFO(NULL, "stopped");
    return rc < 0 ? 1 : rc;
}

int ovms_server_run(ovms_config_t *cfg)
{
    log_init();
    int rc = server_run(cfg);
    log_shutdown();
    return rc;
}
