/*
 * repl.c -- the replication object: its thread and loop, the mailbox other
 * threads post to (links the server hands over, store completions), the
 * once-a-second tick (dials, timeouts, the status file) and the peers.
 *
 * Why a thread of its own: a peer's resync streams records as fast as the
 * store can read them and the network take them; on a worker loop that
 * would sit in front of the node's cars and apps. Here it only competes for
 * a core, and the store's bulk reader keeps its reads away from logins'.
 *
 * Dialing: every peer with an address is dialed, first after a short random
 * delay (so that two nodes starting together rarely dial each other at the
 * same moment), then after each failure or drop with exponential backoff
 * (1 s doubling to backoff_max_ms, each wait jittered to 50-100 %), for
 * ever. A link that came up resets the backoff.
 * Threading: ovms_replication_* from any thread; the rest on the loop.
 */
#include "repl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- small things ----------------------------------------------------------------------------- */

int64_t marks_get(const marks_t *m, const char *origin)
{
    return ovms_store_wm_find(m->v, m->n, origin);
}

int marks_set(marks_t *m, const char *origin, int64_t seq)
{
    return ovms_store_wm_raise(m->v, &m->n, REPL_MAX_ORIGINS, origin, seq);
}

double repl_now(ovms_replication_t *r)
{
    return (double)uv_now(&r->loop) / 1000.0;
}

double repl_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

uint32_t repl_random(ovms_replication_t *r)
{
    r->rng ^= r->rng << 13;         /* xorshift64: jitter, not secrets */
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return (uint32_t)(r->rng >> 32);
}

void repl_log(ovms_replication_t *r, int level, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    if (!r->cfg.log)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    r->cfg.log(r->cfg.ctx, level, text);
}

peer_t *repl_peer(ovms_replication_t *r, ovms_str_t id)
{
    for (int i = 0; i < r->npeers; i++)
        if (strlen(r->peers[i].conf.id) == id.len &&
            !strncasecmp(r->peers[i].conf.id, id.ptr, id.len))
            return &r->peers[i];
    return NULL;
}

/* ---- mail -------------------------------------------------------------------------------------- */

static void post(ovms_replication_t *r, repl_mail_t *m)
{
    pthread_mutex_lock(&r->mu);
    m->next = r->mail;
    r->mail = m;
    /* signalled under the lock: ovms_replication_stop drains the mail under
     * it too, so once it has seen the last job it cannot free r while a
     * store thread is still between its unlock and the signal */
    uv_async_send(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

static void job_post(void *ctx, ovms_store_req_t *req)
{
    repl_job_t *job = req->data;
    post(ctx, &job->mail);
}

static void job_run(ovms_replication_t *r, repl_mail_t *m)
{
    repl_job_t *job = (repl_job_t *)m;
    (void)r;
    job->done(job);
    ovms_store_req_cleanup(&job->req);
    link_unref(job->link);
    free(job);
    __atomic_sub_fetch(&r->jobs, 1, __ATOMIC_RELAXED);
}

repl_job_t *repl_job_new(link_t *l, void (*done)(repl_job_t *job))
{
    repl_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    ovms_store_req_init(&job->req);
    job->req.data = job;
    job->mail.run = job_run;
    job->link = l;
    job->done = done;
    l->refs++;
    __atomic_add_fetch(&l->r->jobs, 1, __ATOMIC_RELAXED);
    return job;
}

void repl_job_submit(repl_job_t *job)
{
    ovms_replication_t *r = job->link->r;
    ovms_store_sink_t sink = { job_post, r };
    int rc = ovms_store_submit(r->cfg.store, &job->req, &sink, NULL);
    if (rc < 0) {
        job->req.status = rc;
        post(r, &job->mail);        /* done still runs on the loop, later */
    }
}

/* Links the server hands over. */
typedef struct adopt {
    repl_mail_t mail;
    int fd;
    peer_t *peer;
    char token[OVMS_TOKEN_LEN + 1];
    char addr[64];
    char *marks;
    size_t nheld;
    char held[];
} adopt_t;

static void adopt_run(ovms_replication_t *r, repl_mail_t *m)
{
    adopt_t *a = (adopt_t *)m;
    if (uv_is_closing((uv_handle_t *)&r->tick))
        close(a->fd);               /* stopping */
    else
        link_accept(r, a->fd, a->peer, a->token, a->marks, a->held, a->nheld, a->addr);
    free(a->marks);
    free(a);
}

/* ---- the loop ----------------------------------------------------------------------------------- */

static void on_close_quiet(uv_handle_t *h)
{
    (void)h;
}

static void shut_down(ovms_replication_t *r)
{
    link_close_all(r);
    uv_close((uv_handle_t *)&r->tick, on_close_quiet);
    uv_close((uv_handle_t *)&r->wake, on_close_quiet);
}

static void on_wake(uv_async_t *h)
{
    ovms_replication_t *r = h->data;
    pthread_mutex_lock(&r->mu);
    repl_mail_t *m = r->mail;
    int kicked = r->kicked, stopping = r->stopping;
    r->mail = NULL;
    r->kicked = 0;
    pthread_mutex_unlock(&r->mu);

    /* oldest first: mail was pushed on the front */
    repl_mail_t *rev = NULL;
    while (m) {
        repl_mail_t *next = m->next;
        m->next = rev;
        rev = m;
        m = next;
    }
    while (rev) {
        repl_mail_t *next = rev->next;
        rev->run(r, rev);
        rev = next;
    }
    if (kicked && !stopping)
        for (link_t *l = r->links; l; l = l->next)
            sync_kick(l);
    if (stopping && !uv_is_closing((uv_handle_t *)&r->tick))
        shut_down(r);
}

static void schedule_dial(ovms_replication_t *r, peer_t *p, int failed)
{
    int max = r->cfg.backoff_max_ms > 0 ? r->cfg.backoff_max_ms : 30000;
    if (!failed)
        p->backoff_ms = 1000;
    else if (p->backoff_ms < max)
        p->backoff_ms = p->backoff_ms * 2 > max ? max : p->backoff_ms * 2;
    double wait = p->backoff_ms / 1000.0 * (0.5 + (repl_random(r) % 1000) / 2000.0);
    p->next_dial = repl_now(r) + wait;
}

static void on_tick(uv_timer_t *t)
{
    ovms_replication_t *r = t->data;
    double now = repl_now(r);
    link_t *next;

    for (link_t *l = r->links; l; l = next) {
        next = l->next;
        link_tick(l, now);
    }
    for (int i = 0; i < r->npeers; i++) {
        peer_t *p = &r->peers[i];
        if (!p->conf.host[0] || p->link || p->dialing)
            continue;
        if (!p->next_dial)
            schedule_dial(r, p, p->backoff_ms > 0);
        else if (now >= p->next_dial) {
            p->next_dial = 0;
            link_dial(r, p);
        }
    }
    status_write(r);
}

static void *thread_main(void *arg)
{
    ovms_replication_t *r = arg;
    pthread_setname_np(pthread_self(), "ovmsd-repl");   /* for top -H, perf */
    /* behind the workers when the cores are busy: a resync may take a
     * little longer, the node's cars and apps must not wait (Linux: per thread) */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------------- */

int ovms_replication_start(ovms_replication_t **out, const ovms_replication_config_t *cfg)
{
    ovms_replication_t *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r)
        return OVMS_ENOMEM;
    r->cfg = *cfg;
    snprintf(r->server_id, sizeof r->server_id, "%s", cfg->server_id);
    r->cfg.server_id = r->server_id;
    r->npeers = cfg->npeers;
    for (int i = 0; i < cfg->npeers; i++)
        r->peers[i].conf = cfg->peers[i];
    r->rng = (uint64_t)repl_wall() * 2654435761u ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15u;
    r->started = repl_wall();
    if (uv_loop_init(&r->loop) < 0) {
        free(r);
        return OVMS_ENOMEM;
    }
    pthread_mutex_init(&r->mu, NULL);
    uv_async_init(&r->loop, &r->wake, on_wake);
    r->wake.data = r;
    uv_timer_init(&r->loop, &r->tick);
    r->tick.data = r;
    for (int i = 0; i < r->npeers; i++) {
        r->peers[i].since = r->started;
        if (r->peers[i].conf.host[0])   /* the first dial soon, at a random moment */
            r->peers[i].next_dial = (100 + repl_random(r) % 400) / 1000.0;
    }
    uv_timer_start(&r->tick, on_tick, 100, 1000);
    if (pthread_create(&r->thread, NULL, thread_main, r) != 0) {
        uv_close((uv_handle_t *)&r->tick, NULL);
        uv_close((uv_handle_t *)&r->wake, NULL);
        uv_run(&r->loop, UV_RUN_DEFAULT);
        uv_loop_close(&r->loop);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return OVMS_ENOMEM;
    }
    *out = r;
    return 0;
}

void ovms_replication_stop(ovms_replication_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->wake);
    pthread_join(r->thread, NULL);
    /* store requests still out: wait for them (they post here), so that
     * nothing completes into freed memory */
    for (;;) {
        pthread_mutex_lock(&r->mu);
        repl_mail_t *m = r->mail;
        r->mail = NULL;
        pthread_mutex_unlock(&r->mu);
        while (m) {
            repl_mail_t *next = m->next;
            m->run(r, m);
            m = next;
        }
        if (!__atomic_load_n(&r->jobs, __ATOMIC_RELAXED))
            break;
        usleep(1000);
    }
    uv_run(&r->loop, UV_RUN_NOWAIT);
    uv_loop_close(&r->loop);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void ovms_replication_kick(ovms_replication_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    if (!r->kicked)
        uv_async_send(&r->wake);    /* (under the lock, as in post) */
    r->kicked = 1;
    pthread_mutex_unlock(&r->mu);
}

int ovms_replication_check(ovms_replication_t *r, ovms_str_t id, ovms_str_t token, ovms_str_t digest)
{
    peer_t *p = repl_peer(r, id);      /* peers never change after start */
    if (!p)
        return OVMS_ENOTFOUND;
    return ovms_digest_check(p->conf.secret, strlen(p->conf.secret), token.ptr, token.len,
                             digest.ptr, digest.len) < 0 ? OVMS_EDIGEST : 0;
}

int ovms_replication_adopt(ovms_replication_t *r, int fd, ovms_str_t id, ovms_str_t token,
                           ovms_str_t watermarks, const char *held, size_t nheld, const char *addr)
{
    peer_t *p = repl_peer(r, id);
    adopt_t *a = p && token.len <= OVMS_TOKEN_LEN * 3 ? calloc(1, sizeof *a + nheld) : NULL;
    if (a)
        a->marks = strndup(watermarks.ptr ? watermarks.ptr : "", watermarks.len);
    if (!a || !a->marks || token.len >= sizeof a->token) {
        if (a)
            free(a->marks);
        free(a);
        close(fd);
        return p ? OVMS_ENOMEM : OVMS_ENOTFOUND;
    }
    a->mail.run = adopt_run;
    a->fd = fd;
    a->peer = p;
    memcpy(a->token, token.ptr, token.len);
    snprintf(a->addr, sizeof a->addr, "%s", addr ? addr : "?");
    a->nheld = nheld;
    if (nheld)
        memcpy(a->held, held, nheld);
    pthread_mutex_lock(&r->mu);
    int stopping = r->stopping;
    pthread_mutex_unlock(&r->mu);
    if (stopping) {
        close(fd);
        free(a->marks);
        free(a);
        return OVMS_ECLOSED;
    }
    post(r, &a->mail);
    return 0;
}

void ovms_replication_summary(ovms_replication_t *r, char *buf, size_t cap)
{
    if (!r) {
        snprintf(buf, cap, "no peers");
        return;
    }
    snprintf(buf, cap, "peers: %d up of %d, %llu records in, %llu out",
             __atomic_load_n(&r->links_up, __ATOMIC_RELAXED), r->npeers,
             (unsigned long long)__atomic_load_n(&r->records_in, __ATOMIC_RELAXED),
             (unsigned long long)__atomic_load_n(&r->records_out, __ATOMIC_RELAXED));
}
