/*
 * bench_store.c -- storage/ benchmark: acknowledged (durable) history
 * records per second and the time from request to durable completion.
 *
 *   bench_store [--records N] [--writers K] [--window W] [--sync full|normal]
 *               [--report docs/benchmarks.md]
 *
 * Three runs against a fresh database in /tmp (synchronous=FULL unless told
 * otherwise, so "acknowledged" means fsync'ed):
 *   sequential  one thread that waits for each acknowledgement: the fsync floor
 *   pipelined   one thread keeping W requests in flight
 *   writers     K threads, each keeping W/K in flight (many cars on many workers)
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_report.h"
#include "ovms_store.h"

typedef struct run {
    ovms_store_t *st;
    int records;
    int window;
    int first;
    double *lat;                /* per record, seconds */
    sem_t slots;
} run_t;

typedef struct slot {
    ovms_store_req_t req;
    run_t *run;
    int index;
} slot_t;

static void slot_done(ovms_store_req_t *req)
{
    slot_t *s = (slot_t *)req;
    s->run->lat[s->index] = bench_now() - req->submitted;
    if (req->status != 0) {
        fprintf(stderr, "write failed: %s\n", ovms_strerror(req->status));
        exit(1);
    }
    sem_post(&s->run->slots);
}

static const char DATA[] = "1,51.477500,-0.001400,12.5,38.2,0.0,Greenwich; London,2026-01-02 03:04:05";

static void *writer(void *p)
{
    run_t *r = p;
    slot_t *slots = calloc((size_t)r->window, sizeof *slots);
    int64_t now = 1767225600;

    for (int i = 0; i < r->records; i++) {
        sem_wait(&r->slots);
        slot_t *s = &slots[i % r->window];
        ovms_store_req_cleanup(&s->req);
        ovms_store_prep_hist_put(&s->req, "BENCHCAR", "*-LOG-Trip", r->first + i, now + i,
                                 now + 86400 * 365, DATA, sizeof DATA - 1);
        s->run = r;
        s->index = i;
        if (ovms_store_submit(r->st, &s->req, NULL, slot_done) != 0) {
            fprintf(stderr, "submit failed\n");
            exit(1);
        }
    }
    for (int i = 0; i < r->window; i++)
        sem_wait(&r->slots);                /* all acknowledged */
    for (int i = 0; i < r->window; i++)
        ovms_store_req_cleanup(&slots[i].req);
    free(slots);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct figures {
    double rate, p50, p99, max;
    int records, threads, window;
    size_t max_batch;
    uint64_t commits;
} figures_t;

static figures_t bench(const char *path, int sync_normal, int threads, int records, int window)
{
    ovms_store_config_t cfg = { .path = path, .node_id = "BENCH", .sync_normal = sync_normal,
                                .expire_interval_ms = -1 };
    ovms_store_t *st;
    ovms_store_req_t req;
    char err[256];
    figures_t f = { .records = records * threads, .threads = threads, .window = window };

    unlink(path);
    if (ovms_store_open(&st, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    ovms_store_req_init(&req);
    ovms_store_prep_vehicle_put(&req, "BENCHCAR", NULL, "pw", NULL, NULL, 0);
    ovms_store_run(st, &req);
    ovms_store_req_cleanup(&req);

    run_t *runs = calloc((size_t)threads, sizeof *runs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    double *lat = calloc((size_t)(records * threads), sizeof *lat);
    double t0 = bench_now();
    for (int t = 0; t < threads; t++) {
        runs[t] = (run_t){ .st = st, .records = records, .window = window,
                           .first = t * records, .lat = lat + t * records };
        sem_init(&runs[t].slots, 0, (unsigned)window);
        pthread_create(&tid[t], NULL, writer, &runs[t]);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    double elapsed = bench_now() - t0;

    ovms_store_stats_t stats;
    ovms_store_get_stats(st, &stats);
    ovms_store_close(st);
    qsort(lat, (size_t)f.records, sizeof *lat, cmp_double);
    f.rate = f.records / elapsed;
    f.p50 = lat[f.records / 2] * 1000;
    f.p99 = lat[(size_t)(f.records * 0.99)] * 1000;
    f.max = lat[f.records - 1] * 1000;
    f.max_batch = stats.max_batch;
    f.commits = stats.commits;
    free(lat);
    free(runs);
    free(tid);
    return f;
}

static void print(const char *name, const figures_t *f)
{
    printf("  %-11s %2d thread(s) x %5d in flight: %9.0f acks/s  p50 %6.2f ms  p99 %6.2f ms  "
           "max %6.1f ms  (%llu commits, largest %zu)\n",
           name, f->threads, f->window, f->rate, f->p50, f->p99, f->max,
           (unsigned long long)f->commits, f->max_batch);
}

static void row(char *md, size_t cap, const char *name, const figures_t *f)
{
    size_t n = strlen(md);
    snprintf(md + n, cap - n, "| %s | %d x %d | %d | %.0f | %.2f | %.2f | %.1f | %zu |\n", name,
             f->threads, f->window, f->records, f->rate, f->p50, f->p99, f->max, f->max_batch);
}

int main(int argc, char **argv)
{
    int records = 200000, writers = 8, window = 512, sync_normal = 0;
    const char *report = NULL;
    char path[] = "/tmp/ovms-bench-store.db", md[4096];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--records") && i + 1 < argc)
            records = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--writers") && i + 1 < argc)
            writers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--window") && i + 1 < argc)
            window = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
            sync_normal = !strcmp(argv[++i], "normal");
        else if (!strcmp(argv[i], "--report") && i + 1 < argc)
            report = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--records N] [--writers K] [--window W] "
                            "[--sync full|normal] [--report FILE]\n", argv[0]);
            return 2;
        }
    }
    printf("storage benchmark: durable history acknowledgements, synchronous=%s (%s)\n",
           sync_normal ? "NORMAL" : "FULL", bench_machine());
    figures_t seq = bench(path, sync_normal, 1, 2000, 1);
    print("sequential", &seq);
    figures_t pipe = bench(path, sync_normal, 1, records, window);
    print("pipelined", &pipe);
    figures_t many = bench(path, sync_normal, writers, records / writers, window / writers);
    print("writers", &many);
    unlink(path);

    snprintf(md, sizeof md,
             "### storage/: durable history acknowledgements\n\n"
             "`build/tests/bench/bench_store --records %d --writers %d --window %d` on %s; "
             "synchronous=%s, so an acknowledgement means the commit was fsync'ed. "
             "Latency is from submit to the completion callback.\n\n"
             "| run | threads x in flight | records | acks/s | p50 ms | p99 ms | max ms | largest group commit |\n"
             "|---|---|---|---|---|---|---|---|\n",
             records, writers, window, bench_machine(), sync_normal ? "NORMAL" : "FULL");
    row(md, sizeof md, "sequential (wait for each)", &seq);
    row(md, sizeof md, "one thread, pipelined", &pipe);
    row(md, sizeof md, "several writers", &many);
    strncat(md, "\nGoal: 50,000 acknowledged records/s. The sequential figure is one fsync per "
                "record and shows why group commit matters.\n\n", sizeof md - strlen(md) - 1);
    if (report && bench_report_section(report, "store", md) != 0) {
        fprintf(stderr, "cannot write %s\n", report);
        return 1;
    }
    return 0;
}
