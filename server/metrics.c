/*
 * metrics.c -- GET /metrics (Prometheus text format 0.0.4) on the HTTP
 * listeners, for the addresses of [httpapi] metrics_allow only.
 *
 * Each worker counts into its own worker_metrics_t, single writer: an
 * increment is a relaxed load and store (no lock prefix, no shared cache
 * line), and the scrape, on whichever worker took the request, adds the
 * workers up with relaxed loads. A scrape therefore never stops a worker,
 * and a figure read mid-update is at most one event behind. The store's
 * figures come from ovms_store_get_stats, replication's from its
 * once-a-second snapshot.
 *
 * Latencies: relay is from the read that brought a car's message (or the
 * bus message carrying it) to the write of the copies for its clients, one
 * observation per loop turn that relayed; history acknowledgement is from
 * the H record's submission to the store to its durable commit, when h
 * goes out.
 * Threading: metric_* on the counting worker; metrics_answer on any worker.
 */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void metric_inc(uint64_t *counter)
{
    __atomic_store_n(counter, LOAD(*counter) + 1, __ATOMIC_RELAXED);
}

void metric_gauge_add(int64_t *gauge, int64_t delta)
{
    __atomic_store_n(gauge, LOAD(*gauge) + delta, __ATOMIC_RELAXED);
}

void metric_observe(metric_hist_t *h, double seconds)
{
    int i = 0;
    while (i < OVMS_HIST_BUCKETS && seconds > ovms_hist_bounds[i])
        i++;
    metric_inc(&h->n[i]);
    metric_inc(&h->count);
    __atomic_store_n(&h->sum_us, LOAD(h->sum_us) + (uint64_t)(seconds * 1e6), __ATOMIC_RELAXED);
}

double metric_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int metric_role(char role)
{
    return role == 'C' ? 0 : role == 'A' ? 1 : role == 'B' ? 2 : -1;
}

/* ---- the scrape ------------------------------------------------------------------------------------ */

static const char *const ROLES[3] = { "car", "app", "batch" };
static const char *const OUTCOMES[METRIC_CMD_OUTCOMES] = {
    "sent", "forwarded", "replied", "not_connected", "refused", "timeout",
};

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t sum_u(const server_t *srv, size_t offset)
{
    uint64_t t = 0;
    for (int i = 0; i < srv->nworkers; i++)
        t += __atomic_load_n((const uint64_t *)((const char *)&srv->workers[i].m + offset), __ATOMIC_RELAXED);
    return t;
}

#define SUM(field) sum_u(srv, offsetof(worker_metrics_t, field))

static void by_code(FILE *f, const server_t *srv, const char *name, const char *help, int rx)
{
    family(f, name, "counter", help);
    for (int code = 33; code < 127; code++) {
        uint64_t n = 0;
        for (int w = 0; w < srv->nworkers; w++)
            n += rx ? LOAD(srv->workers[w].m.rx[code]) : LOAD(srv->workers[w].m.tx[code]);
        if (n && code != '"' && code != '\\')
            fprintf(f, "%s{code=\"%c\"} %llu\n", name, code, (unsigned long long)n);
    }
}

static void histogram(FILE *f, const char *name, const char *help, const uint64_t *n, uint64_t count,
                      double sum)
{
    uint64_t cum = 0;
    family(f, name, "histogram", help);
    for (int i = 0; i < OVMS_HIST_BUCKETS; i++) {
        cum += n[i];
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, ovms_hist_bounds[i], (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
            (unsigned long long)count, name, sum, name, (unsigned long long)count);
}

static void worker_hist(FILE *f, const server_t *srv, size_t offset, const char *name, const char *help)
{
    uint64_t n[OVMS_HIST_BUCKETS + 1] = { 0 }, count = 0, sum_us = 0;
    for (int w = 0; w < srv->nworkers; w++) {
        const metric_hist_t *h = (const metric_hist_t *)((const char *)&srv->workers[w].m + offset);
        for (int i = 0; i <= OVMS_HIST_BUCKETS; i++)
            n[i] += LOAD(h->n[i]);
        count += LOAD(h->count);
        sum_us += LOAD(h->sum_us);
    }
    histogram(f, name, help, n, count, (double)sum_us / 1e6);
}

static void connections(FILE *f, const server_t *srv)
{
    guard_stats_t g;
    guard_stats(srv->guard, &g);
    family(f, "ovms_connections", "gauge", "Logged-in v2 connections (TCP, TLS, WebSocket) by role.");
    for (int r = 0; r < 3; r++) {
        int64_t n = 0;
        for (int w = 0; w < srv->nworkers; w++)
            n += LOAD(srv->workers[w].m.online[r]);
        fprintf(f, "ovms_connections{role=\"%s\"} %lld\n", ROLES[r], (long long)n);
    }
    family(f, "ovms_connections_open", "gauge", "Open client connections of every kind, HTTP included.");
    fprintf(f, "ovms_connections_open %lld\n", (long long)LOAD(((server_t *)srv)->conn_count));
    family(f, "ovms_connections_unauthenticated", "gauge", "Connections not logged in yet.");
    fprintf(f, "ovms_connections_unauthenticated %lld\n", (long long)g.unauthenticated);
    family(f, "ovms_logins_total", "counter", "Successful v2 logins by role.");
    for (int r = 0; r < 3; r++)
        fprintf(f, "ovms_logins_total{role=\"%s\"} %llu\n", ROLES[r], (unsigned long long)SUM(logins[r]));
    family(f, "ovms_login_failures_total", "counter", "Refused v2 logins (unknown vehicle or owner, wrong digest or password).");
    fprintf(f, "ovms_login_failures_total %llu\n", (unsigned long long)SUM(login_failures));
}

static void commands(FILE *f, const server_t *srv)
{
    family(f, "ovms_commands_total", "counter",
           "Car commands by outcome: sent to a car here, forwarded to another node, replied by the car, "
           "vehicle not connected, refused (queue full), timed out.");
    for (int k = 0; k < METRIC_CMD_OUTCOMES; k++)
        fprintf(f, "ovms_commands_total{outcome=\"%s\"} %llu\n", OUTCOMES[k],
                (unsigned long long)SUM(commands[k]));
    family(f, "ovms_http_responses_total", "counter", "HTTP API answers by status class.");
    for (int k = 1; k < 6; k++)
        fprintf(f, "ovms_http_responses_total{class=\"%dxx\"} %llu\n", k, (unsigned long long)SUM(http[k]));
}

static void store(FILE *f, const server_t *srv)
{
    ovms_store_stats_t s;
    ovms_store_get_stats(srv->store, &s);
    family(f, "ovms_store_queue_depth", "gauge", "Store requests waiting for the writer.");
    fprintf(f, "ovms_store_queue_depth %llu\n", (unsigned long long)s.queued);
    family(f, "ovms_store_commits_total", "counter", "Group commits.");
    fprintf(f, "ovms_store_commits_total %llu\n", (unsigned long long)s.commits);
    family(f, "ovms_store_writes_total", "counter", "Write requests committed.");
    fprintf(f, "ovms_store_writes_total %llu\n", (unsigned long long)s.writes);
    histogram(f, "ovms_store_commit_seconds", "Duration of a group commit, BEGIN to COMMIT (fsync included).",
              s.commit.n, s.commit.count, s.commit.sum);
    family(f, "ovms_vehicles_known", "gauge", "Vehicles in the store.");
    fprintf(f, "ovms_vehicles_known %zu\n", ovms_store_vehicle_count(srv->store));
}

static void bus(FILE *f, const server_t *srv, const ovms_config_t *cfg)
{
    family(f, "ovms_redis_up", "gauge", "1 when every worker's Redis bus link is up (absent without Redis).");
    if (!cfg->redis[0])
        return;
    int up = 1;
    for (int w = 0; w < srv->nworkers; w++)
        up &= LOAD(srv->workers[w].m.bus_up) != 0;
    fprintf(f, "ovms_redis_up %d\n", up);
}

static char *render(const server_t *srv, const ovms_config_t *cfg, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    connections(f, srv);
    by_code(f, srv, "ovms_messages_received_total", "v2 messages received, by code.", 1);
    by_code(f, srv, "ovms_messages_sent_total", "v2 messages sent, by code.", 0);
    commands(f, srv);
    store(f, srv);
    worker_hist(f, srv, offsetof(worker_metrics_t, relay), "ovms_relay_seconds",
                "From reading a car's message to writing its copies to the clients (per loop turn).");
    worker_hist(f, srv, offsetof(worker_metrics_t, hist_ack), "ovms_history_ack_seconds",
                "From an H record's submission to the store to its durable commit (the h).");
    bus(f, srv, cfg);
    if (__atomic_load_n(&((server_t *)srv)->repl, __ATOMIC_ACQUIRE)) {
        static char repl[65536];
        static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&mu);
        ovms_replication_metrics(repl, sizeof repl);
        fputs(repl, f);
        pthread_mutex_unlock(&mu);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

int metrics_answer(http_conn_t *c, const http_req_t *r, const char *path, size_t plen)
{
    const ovms_config_t *cfg = c->w->cfg;
    if (plen != 8 || memcmp(path, "/metrics", 8) != 0)
        return 0;
    if (!cfg->metrics_allow[0] || !http_addr_listed(cfg->metrics_allow, &c->peer)) {
        http_respond(c, 403, "Forbidden", "text/plain", "", "Forbidden\n", 10);
        return 1;
    }
    if (r->method != HTTP_GET) {
        http_respond(c, 405, "Method Not Allowed", "text/plain", "Allow: GET\r\n", "GET only\n", 9);
        return 1;
    }
    size_t len = 0;
    char *text = render(c->w->srv, cfg, &len);
    if (!text)
        http_respond(c, 500, "Internal Server Error", "text/plain", "", "Internal error\n", 15);
    else
        http_respond(c, 200, "OK", "text/plain; version=0.0.4", "", text, len);
    free(text);
    return 1;
}
