/*
 * fleet_worker.c -- one ovms-fleet worker process: an epoll loop over its
 * cars and apps, a timer heap, and the phases the parent sets in shared
 * memory (connect, run, drain, stop).
 *
 * Timers are a binary heap of (time, who, generation): asking for an
 * earlier wake pushes a new entry and makes the older one stale, so there
 * is no removal. The loop sleeps in epoll_pwait2 to the nanosecond, because
 * an open-loop sender that wakes a millisecond late would charge the node
 * with its own lateness. EPOLLOUT is asked for only while output waits: a
 * writable socket always polls ready and would turn the loop into a busy
 * one, taking the CPU from the node under test.
 */
#include "fleet_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct fleet_timer {
    uint64_t at;
    uint32_t who;                /* bit 31: an app */
    uint32_t gen;
} fleet_timer_t;

#define APP_BIT 0x80000000u

/* ---- randomness, sockets -------------------------------------------------------------------- */

uint64_t fleet_rand(fleet_worker_t *w)
{
    /* xorshift64*: the fleet needs spread, not secrets */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 2685821657736338717ull;
}

double fleet_rand_unit(fleet_worker_t *w)
{
    return (double)(fleet_rand(w) >> 11) / 9007199254740992.0;
}

double fleet_rand_exp(fleet_worker_t *w, double mean)
{
    return -mean * log(1.0 - fleet_rand_unit(w));
}

int fleet_churning(const fleet_worker_t *w)
{
    return w->s->kind == FLEET_CHURN;
}

int fleet_connect(const char *host, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

void fleet_watch(fleet_worker_t *w, int fd, int out, uint32_t kind, int index, int *polling_out, int add)
{
    if (!add && out == *polling_out)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0),
                              .data.u32 = (kind ? APP_BIT : 0) | (uint32_t)index };
    epoll_ctl(w->ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
    *polling_out = out;
}

/* ---- the platform for the firmware core ----------------------------------------------------------- */

static int64_t pf_wall(void *ctx) { (void)ctx; return (int64_t)time(NULL); }

static void pf_random(void *ctx, uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(fleet_rand(ctx) >> 56);
}

/* Nothing persists: each run starts with fresh modules. */
static int pf_load(void *ctx, const char *name, void *buf, size_t cap)
{
    (void)ctx, (void)name, (void)buf, (void)cap;
    return -1;
}

static int pf_save(void *ctx, const char *name, const void *buf, size_t len)
{
    (void)ctx, (void)name, (void)buf, (void)len;
    return 0;
}

static int pf_resolve(void *ctx, const char *host, ovms_fw_addr_t *out, int max)
{
    (void)ctx;
    if (max < 1 || strlen(host) >= sizeof out->host)
        return -1;
    snprintf(out->host, sizeof out->host, "%s", host);   /* the parent resolved already */
    return 1;
}

/* ---- timers --------------------------------------------------------------------------------- */

static void heap_push(fleet_worker_t *w, fleet_timer_t t)
{
    if (w->nheap == w->capheap) {
        w->capheap = w->capheap ? w->capheap * 2 : 1024;
        w->heap = realloc(w->heap, w->capheap * sizeof *w->heap);
    }
    size_t i = w->nheap++;
    while (i > 0 && w->heap[(i - 1) / 2].at > t.at) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = t;
}

static fleet_timer_t heap_pop(fleet_worker_t *w)
{
    fleet_timer_t top = w->heap[0], last = w->heap[--w->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->nheap)
            break;
        if (c + 1 < w->nheap && w->heap[c + 1].at < w->heap[c].at)
            c++;
        if (w->heap[c].at >= last.at)
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->nheap)
        w->heap[i] = last;
    return top;
}

static void wake(fleet_worker_t *w, uint32_t who, uint64_t *wake_ns, uint32_t *gen, int *pending,
                 uint64_t at)
{
    if (*pending && *wake_ns <= at)
        return;
    *wake_ns = at;
    *pending = 1;
    heap_push(w, (fleet_timer_t){ at, who, ++*gen });
}

void fleet_wake_car(fleet_car_t *c, uint64_t at)
{
    wake(c->w, (uint32_t)c->index, &c->wake_ns, &c->gen, &c->wake_pending, at);
}

void fleet_wake_app(fleet_app_t *a, uint64_t at)
{
    wake(a->w, APP_BIT | (uint32_t)a->index, &a->wake_ns, &a->gen, &a->wake_pending, at);
}

static void run_timers(fleet_worker_t *w, uint64_t now)
{
    while (w->nheap && w->heap[0].at <= now) {
        fleet_timer_t t = heap_pop(w);
        if (t.who & APP_BIT) {
            fleet_app_t *a = &w->apps[t.who & ~APP_BIT];
            if (t.gen != a->gen)
                continue;
            a->wake_pending = 0;
            fleet_app_tick(a, now);
        } else {
            fleet_car_t *c = &w->cars[t.who];
            if (t.gen != c->gen)
                continue;
            c->wake_pending = 0;
            fleet_car_tick(c, now);
        }
    }
}

/* ---- the connect window ------------------------------------------------------------------------ */

/* A fleet that opened every connection at once would look like a flood to
 * the node (its limits on connections not logged in per address) and
 * measure the queue it builds; a window of handshakes in flight per
 * process, like a real fleet's spread-out connects, keeps it honest. */
int fleet_handshake_begin(fleet_worker_t *w, int is_app, int index, int *queued)
{
    int window = w->s->connect_window;
    if (!window || w->inflight < window) {
        w->inflight++;
        return 1;
    }
    if (w->wq_len == w->wq_cap) {
        size_t cap = w->wq_cap ? w->wq_cap * 2 : 256;
        uint32_t *q = malloc(cap * sizeof *q);
        for (size_t i = 0; i < w->wq_len; i++)
            q[i] = w->waitq[(w->wq_head + i) % w->wq_cap];
        free(w->waitq);
        w->waitq = q;
        w->wq_cap = cap;
        w->wq_head = 0;
    }
    w->waitq[(w->wq_head + w->wq_len++) % w->wq_cap] = (is_app ? APP_BIT : 0) | (uint32_t)index;
    *queued = 1;
    return 0;
}

void fleet_handshake_end(fleet_worker_t *w, int *handshaking)
{
    if (!*handshaking)
        return;
    *handshaking = 0;
    w->inflight--;
    if (!w->wq_len)
        return;
    uint32_t who = w->waitq[w->wq_head];
    w->wq_head = (w->wq_head + 1) % w->wq_cap;
    w->wq_len--;
    w->inflight++;
    uint64_t now = fleet_now_ns();
    if (who & APP_BIT) {
        fleet_app_t *a = &w->apps[who & ~APP_BIT];
        a->granted = 1;
        fleet_wake_app(a, now);
    } else {
        w->cars[who].granted = 1;
        fleet_wake_car(&w->cars[who], now);
    }
}

/* ---- set-up ------------------------------------------------------------------------------------ */

static int apps_for(const fleet_scenario_t *s, const fleet_car_t *c)
{
    switch (s->kind) {
    case FLEET_LOGIN_STORM:
    case FLEET_HISTORY:
        return 0;
    case FLEET_MIXED:
        return c->relays ? s->apps_per_car : 0;
    default:
        return s->apps_per_car;
    }
}

static int setup(fleet_worker_t *w, const fleet_job_t *job)
{
    const fleet_scenario_t *s = job->s;
    w->job = job;
    w->s = s;
    w->slot = job->slot;
    w->rng = job->seed | 1;
    w->pf = (ovms_fw_platform_t){ .ctx = w, .wall = pf_wall, .random = pf_random, .load = pf_load,
                                  .save = pf_save, .resolve = pf_resolve, .log = NULL };
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->ncars = job->count;
    w->cars = calloc((size_t)w->ncars, sizeof *w->cars);
    w->apps = calloc((size_t)w->ncars * (size_t)(s->apps_per_car + 1), sizeof *w->apps);
    if (w->ep < 0 || !w->cars || !w->apps)
        return -1;
    for (int i = 0; i < w->ncars; i++) {
        fleet_car_t *c = &w->cars[i];
        fleet_car_init(c, w, i, job->first + i);
        c->apps = &w->apps[w->napps];
        c->napps = apps_for(s, c);
        for (int k = 0; k < c->napps; k++, w->napps++)
            fleet_app_init(&w->apps[w->napps], w, c, w->napps,
                           fleet_app_node(s, c->number, k, job->nnodes));
    }
    return 0;
}

/* Everyone asks to connect now; the connect window (above) lets them in
 * a few at a time. The login storm starts only with the run. */
static void start_all(fleet_worker_t *w, uint64_t now)
{
    for (int i = 0; i < w->ncars; i++) {
        w->cars[i].fw_next_ns = now;
        fleet_wake_car(&w->cars[i], now);
    }
    for (int i = 0; i < w->napps; i++) {
        w->apps[i].back_ns = now;
        fleet_wake_app(&w->apps[i], now);
    }
}

static void begin_run(fleet_worker_t *w, uint64_t now)
{
    const fleet_scenario_t *s = w->s;
    w->run_ns = now;
    for (int i = 0; i < w->ncars; i++) {
        fleet_car_t *c = &w->cars[i];
        if (s->rate > 0)
            c->next_send_ns = now + (uint64_t)(fleet_rand_unit(w) * 1e9 / s->rate);
        if (s->history_rate > 0)
            c->next_hist_ns = now + (uint64_t)(fleet_rand_unit(w) * 1e9 / s->history_rate);
        if (s->kind == FLEET_LOGIN_STORM)
            c->fw_next_ns = now;
        fleet_wake_car(c, now);
    }
    for (int i = 0; i < w->napps; i++)
        fleet_wake_app(&w->apps[i], now);
}

static int all_up(const fleet_worker_t *w)
{
    if (w->s->kind == FLEET_LOGIN_STORM)
        return 1;
    for (int i = 0; i < w->ncars; i++)
        if (!fleet_car_up(&w->cars[i]))
            return 0;
    for (int i = 0; i < w->napps; i++)
        if (w->apps[i].state != APP_LIVE && !w->apps[i].refused && !w->apps[i].car->refused)
            return 0;
    return 1;
}

static int all_drained(const fleet_worker_t *w)
{
    for (int i = 0; i < w->ncars; i++)
        if (!fleet_car_drained(&w->cars[i]))
            return 0;
    return 1;
}

static void finish(fleet_worker_t *w)
{
    for (int i = 0; i < w->ncars; i++)
        fleet_car_finish(&w->cars[i]);
    for (int i = 0; i < w->napps; i++)
        fleet_app_finish(&w->apps[i]);
    for (int i = 0; i < w->ncars; i++)
        if (w->cars[i].fd >= 0)
            close(w->cars[i].fd);
    for (int i = 0; i < w->napps; i++)
        if (w->apps[i].fd >= 0)
            close(w->apps[i].fd);
}

/* ---- the loop ------------------------------------------------------------------------------------ */

static void follow_phase(fleet_worker_t *w, uint64_t now)
{
    int p = w->job->shared->phase;
    if (p == w->phase)
        return;
    w->phase = p;
    if (p == FLEET_PHASE_RUN)
        begin_run(w, now);
    else if (p == FLEET_PHASE_DRAIN)
        for (int i = 0; i < w->ncars; i++)
            fleet_wake_car(&w->cars[i], now);   /* stops generating; flushes */
}

int fleet_worker_run(const fleet_job_t *job)
{
    fleet_worker_t *w = calloc(1, sizeof *w);
    struct epoll_event evs[512];
    signal(SIGPIPE, SIG_IGN);
    if (!w || setup(w, job) < 0) {
        snprintf(job->slot->error, sizeof job->slot->error, "out of memory for %d cars", job->count);
        return 1;
    }
    w->phase = FLEET_PHASE_CONNECT;
    if (job->s->kind != FLEET_LOGIN_STORM)
        start_all(w, fleet_now_ns());
    while (w->phase != FLEET_PHASE_STOP) {
        uint64_t now = fleet_now_ns(), until = now + 50 * NS_PER_MS;
        if (w->nheap && w->heap[0].at < until)
            until = w->heap[0].at > now ? w->heap[0].at : now;
        struct timespec ts = { (time_t)((until - now) / NS_PER_S), (long)((until - now) % NS_PER_S) };
        int n = epoll_pwait2(w->ep, evs, 512, &ts, NULL);
        now = fleet_now_ns();
        for (int i = 0; i < n; i++) {
            uint32_t who = evs[i].data.u32;
            if (who & APP_BIT)
                fleet_app_io(&w->apps[who & ~APP_BIT], evs[i].events, now);
            else
                fleet_car_io(&w->cars[who], evs[i].events, now);
        }
        run_timers(w, now);
        follow_phase(w, now);
        if (!w->slot->ready && all_up(w))
            w->slot->ready = 1;
        if (w->phase == FLEET_PHASE_DRAIN && !w->slot->drained && all_drained(w))
            w->slot->drained = 1;
    }
    finish(w);
    w->slot->done = 1;
    return 0;
}
