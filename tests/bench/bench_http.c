/*
 * bench_http.c -- the HTTP API under keep-alive load: C clients, each with
 * one request outstanding at a time (closed loop), for S seconds.
 *
 *   bench_http --port P --path /api/status/V [--header "Cookie: ..."]
 *              [--clients 100] [--seconds 10] [--threads 1] [--report FILE]
 *              [--spread N] [--name SECTION]
 *
 * With --spread N, "{i}" in the path becomes the client's number modulo N:
 * client k polls vehicle k % N (as many scripts polling their own cars).
 * Prints requests per second and the latency percentiles, and with
 * --report writes them into FILE's SECTION ("http") section. Every answer must be
 * "200": anything else is counted and fails the run (exit status 1).
 * Loopback only: the host is 127.0.0.1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_report.h"

#define BUCKETS 4000                 /* latency histogram: 10 us buckets up to 40 ms, then one */

typedef struct client {
    int fd;
    char *request;                   /* its own (its vehicle's) */
    size_t request_len;
    double sent;
    size_t have;
    char buf[16384];
} client_t;

typedef struct run {
    int port, clients, threads, spread;
    double seconds;
    const char *path, *headers;
} run_t;


typedef struct result {
    long done, bad;
    long hist[BUCKETS + 1];
    double max;
} result_t;

static run_t cfg = { .clients = 100, .threads = 1, .seconds = 10, .spread = 1 };

/* Client k's request, made once. */
static char *request_of(int k, size_t *len)
{
    char path[512], *req;
    const char *mark = strstr(cfg.path, "{i}");
    if (mark)
        snprintf(path, sizeof path, "%.*s%d%s", (int)(mark - cfg.path), cfg.path, k % cfg.spread, mark + 3);
    else
        snprintf(path, sizeof path, "%s", cfg.path);
    int n = asprintf(&req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", path, cfg.headers);
    if (n < 0)
        exit(2);
    *len = (size_t)n;
    return req;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static int connect_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_request(client_t *c)
{
    c->sent = bench_now();
    c->have = 0;
    if (write(c->fd, c->request, c->request_len) != (ssize_t)c->request_len)
        die("write");
}

/* A whole answer in buf: its length, or 0 while incomplete. */
static size_t answer_len(const client_t *c, int *ok)
{
    const char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->buf) + 4, body = 0;
    const char *cl = memmem(c->buf, head, "Content-Length: ", 16);
    if (cl)
        body = (size_t)strtoul(cl + 16, NULL, 10);
    if (c->have < head + body)
        return 0;
    *ok = c->have > 12 && !memcmp(c->buf + 9, "200", 3);
    return head + body;
}

static void record(result_t *r, double seconds)
{
    long b = (long)(seconds * 1e5);
    r->hist[b < BUCKETS ? b : BUCKETS]++;
    if (seconds > r->max)
        r->max = seconds;
}

typedef struct thread_arg {
    result_t r;
    int first;                       /* the number of its first client */
} thread_arg_t;

static void *load(void *arg)
{
    thread_arg_t *ta = arg;
    result_t *r = &ta->r;
    int n = cfg.clients / cfg.threads, ep = epoll_create1(0);
    client_t *cs = calloc((size_t)n, sizeof *cs);
    if (!cs || ep < 0)
        die("setup");
    for (int i = 0; i < n; i++) {
        cs[i].fd = connect_one();
        cs[i].request = request_of(ta->first + i, &cs[i].request_len);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        send_request(&cs[i]);
    }
    double end = bench_now() + cfg.seconds;
    struct epoll_event evs[256];
    while (bench_now() < end) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            client_t *c = evs[i].data.ptr;
            ssize_t got = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
            if (got <= 0) {
                fprintf(stderr, "bench_http: the server closed a connection\n");
                exit(1);
            }
            c->have += (size_t)got;
            int ok = 0;
            size_t len = answer_len(c, &ok);
            if (!len)
                continue;
            record(r, bench_now() - c->sent);
            r->done++;
            r->bad += !ok;
            send_request(c);
        }
    }
    for (int i = 0; i < n; i++) {
        close(cs[i].fd);
        free(cs[i].request);
    }
    free(cs);
    close(ep);
    return NULL;
}

static double percentile(const result_t *r, double p)
{
    long want = (long)(p * (double)r->done), seen = 0;
    for (int b = 0; b <= BUCKETS; b++) {
        seen += r->hist[b];
        if (seen > want)
            return b < BUCKETS ? (b + 1) * 0.01 : r->max * 1000;
    }
    return r->max * 1000;
}

int main(int argc, char **argv)
{
    const char *path = "/api/status/BENCHCAR", *report = NULL, *name = "http";
    static char headers[1024] = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            cfg.port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--path"))
            path = argv[i + 1];
        else if (!strcmp(argv[i], "--header"))
            snprintf(headers + strlen(headers), sizeof headers - strlen(headers), "%s\r\n", argv[i + 1]);
        else if (!strcmp(argv[i], "--clients"))
            cfg.clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            cfg.seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            cfg.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--report"))
            report = argv[i + 1];
        else if (!strcmp(argv[i], "--spread"))
            cfg.spread = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--name"))
            name = argv[i + 1];
        else {
            fprintf(stderr, "bench_http: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (cfg.port <= 0 || cfg.clients < 1 || cfg.threads < 1 || cfg.clients < cfg.threads || cfg.spread < 1) {
        fprintf(stderr, "usage: bench_http --port P [--path PATH] [--header H]... [--clients N] [--seconds S]\n");
        return 2;
    }
    cfg.path = path;
    cfg.headers = headers;
    pthread_t t[16];
    static thread_arg_t ta[16];
    result_t all = { 0 };
    int nt = cfg.threads < 16 ? cfg.threads : 16;
    for (int i = 0; i < nt; i++) {
        ta[i].first = i * (cfg.clients / cfg.threads);
        pthread_create(&t[i], NULL, load, &ta[i]);
    }
    for (int i = 0; i < nt; i++) {
        result_t *r = &ta[i].r;
        pthread_join(t[i], NULL);
        all.done += r->done;
        all.bad += r->bad;
        for (int b = 0; b <= BUCKETS; b++)
            all.hist[b] += r->hist[b];
        if (r->max > all.max)
            all.max = r->max;
    }
    double rate = (double)all.done / cfg.seconds;
    char md[2048], spread_note[96] = "";
    if (cfg.spread > 1)
        snprintf(spread_note, sizeof spread_note, " (`{i}` = client number mod %d: %d vehicles)", cfg.spread,
                 cfg.spread);
    snprintf(md, sizeof md,
             "`GET %s` with keep-alive, %d clients each with one request outstanding%s, %.0f s, %d load "
             "thread(s) on the same machine (%s):\n\n"
             "| requests/s | p50 | p99 | p99.9 | max | not 200 |\n|---|---|---|---|---|---|\n"
             "| %.0f | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %ld |\n",
             path, cfg.clients, spread_note, cfg.seconds, nt, bench_machine(), rate, percentile(&all, 0.5),
             percentile(&all, 0.99), percentile(&all, 0.999), all.max * 1000, all.bad);
    printf("%s", md);
    if (report && bench_report_section(report, name, md) < 0)
        fprintf(stderr, "bench_http: cannot write %s\n", report);
    return all.bad || !all.done ? 1 : 0;
}
