/*
 * bench_repl.c -- replication benchmark: two ovmsd nodes A and B linked by
 * MP-S, on loopback, with fresh databases.
 *
 *   bench_repl --ovmsd build/server/ovmsd [--records N] [--rate R] [--seconds S]
 *              [--cars C] [--report FILE]
 *
 *   catch-up  A's database is filled with N historical records first (one
 *             vehicle per 10,000, written with the storage API); B starts
 *             empty and the clock runs until B's watermark for A reaches
 *             A's last seq: records applied per second, seconds for N.
 *             Meanwhile a car and an app of B's own relay 200 messages/s on
 *             B; their latency during the catch-up against before it shows
 *             whether the resync touches B's clients.
 *   lag       C cars send `h` records to A at R records/s in all (open
 *             loop, for S seconds); the records carry their send time, and
 *             this program, linked to B as a third peer, receives each one
 *             as B forwards it, which is after B committed it: lag from the
 *             car's send to B's commit (an upper bound: it also holds A's
 *             acknowledgement path and B's forwarding read).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_report.h"
#include "ovms_proto.h"
#include "ovms_store.h"

#define CARPW "BENCHPASS"

static const char *ovmsd = "build/server/ovmsd";
static char dir[64];

static void die(const char *what)
{
    fprintf(stderr, "bench_repl: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind");
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- nodes ------------------------------------------------------------------------------------ */

typedef struct node {
    const char *id;
    int port;
    pid_t pid;
    char db[128];
} node_t;

static void node_start(node_t *n, const char *peers)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s --db %s --listen 127.0.0.1:%d --server-id %s --workers 2 "
             "--history-per-minute 1000000 --history-burst 1000000 --history-max-records 100000000 "
             "--login-penalty 0 --vehicle-login-penalty 0 --level warn %s >>%s.log 2>&1",
             ovmsd, n->db, n->port, n->id, peers, n->db);
    if ((n->pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)n->port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return;
        usleep(10000);
    }
    fprintf(stderr, "bench_repl: %s did not start (see %s.log)\n", n->id, n->db);
    exit(1);
}

static void node_stop(node_t *n)
{
    int status;
    if (n->pid <= 0)
        return;
    kill(n->pid, SIGTERM);
    waitpid(n->pid, &status, 0);
    n->pid = 0;
}

static int64_t watermark(const char *db, const char *origin)
{
    sqlite3 *h;
    sqlite3_stmt *s;
    int64_t seq = 0;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return 0;
    sqlite3_busy_timeout(h, 1000);
    if (sqlite3_prepare_v2(h, "SELECT seq FROM watermarks WHERE origin = ?1", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, origin, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW)
            seq = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    sqlite3_close(h);
    return seq;
}

/* ---- a blocking client ---------------------------------------------------------------------- */

typedef struct conn {
    int fd;
    ovms_session_t session;
    ovms_linesplit_t ls;
    char tail[16384];
    char buf[65536];
    size_t len, pos;
    char plain[16384];
} conn_t;

static void conn_open(conn_t *c, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int one = 1;
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ovms_linesplit_init(&c->ls, sizeof c->tail - 2, c->tail, sizeof c->tail);
}

static void send_all(conn_t *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

static void conn_send(conn_t *c, const char *msg)
{
    char wire[OVMS_WIRE_LEN(4096)];
    int n = ovms_session_encode(&c->session, msg, strlen(msg), wire, sizeof wire);
    send_all(c, wire, (size_t)n);
}

/* The next line within ms, or NULL. */
static const char *conn_line(conn_t *c, int ms, size_t *len)
{
    ovms_str_t line;
    for (;;) {
        const char *data = c->buf + c->pos;
        size_t left = c->len - c->pos;
        int rc = ovms_linesplit_next(&c->ls, &data, &left, &line);
        c->pos = (size_t)(data - c->buf);
        if (rc > 0) {
            *len = line.len;
            return line.ptr;
        }
        if (rc < 0)
            return NULL;
        struct pollfd p = { c->fd, POLLIN, 0 };
        if (poll(&p, 1, ms) <= 0)
            return NULL;
        ssize_t r = read(c->fd, c->buf, sizeof c->buf);
        if (r <= 0)
            return NULL;
        c->len = (size_t)r;
        c->pos = 0;
    }
}

static const char *conn_recv(conn_t *c, int ms)
{
    size_t len;
    ovms_msg_t m;
    const char *line = conn_line(c, ms, &len);
    if (!line || ovms_session_decode(&c->session, line, len, c->plain, sizeof c->plain - 1, &m) < 0)
        return NULL;
    memmove(c->plain, &m.code, 1);
    memmove(c->plain + 1, m.payload.ptr, m.payload.len);
    c->plain[1 + m.payload.len] = '\0';
    return c->plain;
}

/* Scheme 0 login (role C/A) or an MP-S peer login (role S, secret, id). */
static void conn_login(conn_t *c, int port, char role, const char *who, const char *secret)
{
    char token[OVMS_TOKEN_LEN + 1], digest[OVMS_DIGEST_B64_LEN + 1], line[256], stoken[64];
    size_t len;
    conn_open(c, port);
    ovms_token_generate(token);
    ovms_digest_b64(secret, strlen(secret), token, strlen(token), digest);
    int n = snprintf(line, sizeof line, "MP-%c 0 %s %s %s\r\n", role, token, digest, who);
    send_all(c, line, (size_t)n);
    const char *reply = conn_line(c, 5000, &len);
    if (!reply || ovms_server_welcome_verify(reply, len, secret, strlen(secret), token, stoken,
                                             sizeof stoken) < 0) {
        fprintf(stderr, "bench_repl: login %c %s refused\n", role, who);
        exit(1);
    }
    ovms_session_init(&c->session, secret, strlen(secret), stoken, strlen(stoken), token, strlen(token));
}

/* ---- figures ---------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

/* ---- relay on B while it catches up --------------------------------------------------------- */

typedef struct relay {
    int port;
    volatile int stop, phase;       /* phase 0: before, 1: during the catch-up */
    double *lat[2];
    size_t n[2], cap;
    double *ack[2];                 /* the car's own h records: send to acknowledgement */
    size_t nack[2];
} relay_t;

static void *relay_app(void *arg)
{
    relay_t *r = arg;
    conn_t app;
    conn_login(&app, r->port, 'A', "RELAYCAR", CARPW);
    while (!r->stop) {
        const char *m = conn_recv(&app, 200);
        double sent;
        if (m && m[0] == 'S' && sscanf(m + 1, "%lf", &sent) == 1) {
            int ph = r->phase;
            if (r->n[ph] < r->cap)
                r->lat[ph][r->n[ph]++] = (wall_us() - sent) / 1000.0;
        }
    }
    close(app.fd);
    return NULL;
}

static void *relay_car(void *arg)
{
    relay_t *r = arg;
    conn_t car;
    char msg[64];
    static double sent_h[1 << 16];
    unsigned k = 0;
    conn_login(&car, r->port, 'C', "RELAYCAR", CARPW);
    for (double next = wall_us(); !r->stop; next += 5000, k++) {   /* 200 per second */
        double now = wall_us();
        if (next > now)
            usleep((useconds_t)(next - now));
        snprintf(msg, sizeof msg, "S%.0f,K,0", wall_us());
        conn_send(&car, msg);
        if (k % 4 == 0) {           /* and 50 history records per second of its own */
            unsigned h = (k / 4) & 0xffff;
            sent_h[h] = wall_us();
            snprintf(msg, sizeof msg, "h%u,0,*-LOG-Own,%u,86400,own", h, k);
            conn_send(&car, msg);
        }
        const char *m;
        while ((m = conn_recv(&car, 0))) {
            int ph = r->phase;
            if (m[0] == 'h' && r->nack[ph] < r->cap)
                r->ack[ph][r->nack[ph]++] = (wall_us() - sent_h[atoi(m + 1) & 0xffff]) / 1000.0;
        }
    }
    close(car.fd);
    return NULL;
}

/* ---- history load on A, received on B's far side ------------------------------------------------- */

typedef struct load {
    int port, cars;
    double rate, seconds;
    volatile int stop;
    double *lat;
    size_t nlat, cap;
    uint64_t sent, acked;
    double *ack_lat;                /* send to A's acknowledgement (A committed) */
    size_t nack;
    pthread_mutex_t mu;
} load_t;

typedef struct car_arg {
    load_t *ld;
    int index;
} car_arg_t;

static void *load_car(void *arg)
{
    car_arg_t *ca = arg;
    load_t *ld = ca->ld;
    conn_t car;
    char id[32], msg[128];
    snprintf(id, sizeof id, "LOADCAR%d", ca->index);
    conn_login(&car, ld->port, 'C', id, CARPW);
    double gap = 1e6 * ld->cars / ld->rate, end = wall_us() + ld->seconds * 1e6;
    size_t max = (size_t)(ld->seconds * 1e6 / gap) + 2;
    double *sent_at = calloc(max, sizeof(double)), *acked_in = calloc(max, sizeof(double));
    uint64_t i = 0, acks = 0;
    const char *m;
    for (double next = wall_us(); next < end && i < max; next += gap) {
        double now = wall_us();
        if (next > now + 200)
            usleep((useconds_t)(next - now));
        /* open loop: stamped with the scheduled time, so falling behind shows */
        snprintf(msg, sizeof msg, "h%llu,0,*-LOG-Bench,%llu,86400,%.0f", (unsigned long long)i,
                 (unsigned long long)i, next);
        sent_at[i] = next;
        conn_send(&car, msg);
        i++;
        while ((m = conn_recv(&car, 0)))
            if (m[0] == 'h' && (uint64_t)atoll(m + 1) < i)
                acked_in[acks++] = (wall_us() - sent_at[atoll(m + 1)]) / 1000.0;
    }
    while (acks < i && (m = conn_recv(&car, 3000)))
        if (m[0] == 'h' && (uint64_t)atoll(m + 1) < i)
            acked_in[acks++] = (wall_us() - sent_at[atoll(m + 1)]) / 1000.0;
    pthread_mutex_lock(&ld->mu);
    ld->sent += i;
    ld->acked += acks;
    for (uint64_t k = 0; k < acks && ld->nack < ld->cap; k++)
        ld->ack_lat[ld->nack++] = acked_in[k];
    pthread_mutex_unlock(&ld->mu);
    free(sent_at);
    free(acked_in);
    close(car.fd);
    return NULL;
}

/* The far side of B: a peer that only listens. */
static void *far_peer(void *arg)
{
    load_t *ld = arg;
    conn_t p;
    conn_login(&p, ld->port, 'S', "BENCH", "benchsecret");
    while (!ld->stop) {
        const char *m = conn_recv(&p, 200);
        if (!m || m[0] != 'r')
            continue;
        /* r<origin>,<seq>,<changed>,<vehicle>,H,<type>,<recno>,<expires>,<data> */
        const char *data = m;
        for (int k = 0; k < 8 && data; k++)
            data = strchr(data + 1, ',');
        if (data && strstr(m, ",H,*-LOG-Bench,") && ld->nlat < ld->cap)
            ld->lat[ld->nlat++] = (wall_us() - atof(data + 1)) / 1000.0;
    }
    close(p.fd);
    return NULL;
}

/* ---- the runs --------------------------------------------------------------------------------------- */

static void prefill(const char *db, const char *node, long records, int relay_car)
{
    ovms_store_config_t cfg = { .path = db, .node_id = node, .sync_normal = 1, .expire_interval_ms = -1 };
    ovms_store_t *st;
    char err[256], id[32];
    if (ovms_store_open(&st, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "bench_repl: %s\n", err);
        exit(1);
    }
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    if (relay_car) {
        ovms_store_prep_vehicle_put(&req, "RELAYCAR", NULL, CARPW, NULL, NULL, 0);
        ovms_store_run(st, &req);
    }
    for (int k = 0; k < 16; k++) {
        snprintf(id, sizeof id, "LOADCAR%d", k);
        if (!relay_car) {
            ovms_store_prep_vehicle_put(&req, id, NULL, CARPW, NULL, NULL, 0);
            ovms_store_run(st, &req);
        }
    }
    long vehicles = (records + 9999) / 10000;
    for (long v = 0; v < vehicles; v++) {
        snprintf(id, sizeof id, "FILL%ld", v);
        ovms_store_prep_vehicle_put(&req, id, NULL, CARPW, NULL, NULL, 0);
        ovms_store_run(st, &req);
    }
    ovms_store_req_cleanup(&req);
    enum { WINDOW = 8192 };
    static ovms_store_req_t reqs[WINDOW];
    int64_t now = (int64_t)time(NULL);
    char data[64];
    for (long done = 0; done < records;) {
        int n = 0;
        for (; n < WINDOW && done < records; n++, done++) {
            snprintf(id, sizeof id, "FILL%ld", done / 10000);
            snprintf(data, sizeof data, "%ld,some,record,data,%ld", done, done * 7);
            ovms_store_req_init(&reqs[n]);
            ovms_store_prep_hist_put(&reqs[n], id, "*-LOG-Fill", done % 10000, now - 3600,
                                     now + 86400 * 30, data, strlen(data));
            ovms_store_submit(st, &reqs[n], NULL, NULL);
        }
        ovms_store_req_t last;
        ovms_store_req_init(&last);
        ovms_store_prep_vehicle_list(&last);
        ovms_store_req_ordered(&last);
        ovms_store_run(st, &last);          /* after every write of the window */
        ovms_store_req_cleanup(&last);
        for (int k = 0; k < n; k++)
            ovms_store_req_cleanup(&reqs[k]);
    }
    ovms_store_close(st);
}

int main(int argc, char **argv)
{
    long records = 1000000;
    double rate = 20000, seconds = 10;
    int cars = 16;
    const char *report = NULL;
    char md[8192], peers[512];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ovmsd"))
            ovmsd = argv[i + 1];
        else if (!strcmp(argv[i], "--records"))
            records = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate"))
            rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--cars"))
            cars = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--report"))
            report = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_repl --ovmsd PATH [--records N] [--rate R] [--seconds S] "
                            "[--cars C (at most 16)] [--report FILE]\n");
            return 2;
        }
    }
    if (cars < 1 || cars > 16)
        cars = 16;
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/bench-repl-XXXXXX");
    if (!mkdtemp(dir))
        die("mkdtemp");
    node_t a = { "A", free_port(), 0, "" }, b = { "B", free_port(), 0, "" };
    snprintf(a.db, sizeof a.db, "%s/a.db", dir);
    snprintf(b.db, sizeof b.db, "%s/b.db", dir);

    /* ---- catch-up -------------------------------------------------------------------------- */
    printf("filling A with %ld records...\n", records);
    fflush(stdout);
    double t0 = bench_now();
    prefill(a.db, "A", records, 0);
    prefill(b.db, "B", 0, 1);
    printf("  %.1f s\n", bench_now() - t0);
    snprintf(peers, sizeof peers, "--peer B:benchab");
    node_start(&a, peers);
    int64_t target = watermark(a.db, "A");
    relay_t rl = { .port = b.port, .cap = 200000 };
    rl.lat[0] = calloc(rl.cap, sizeof(double));
    rl.lat[1] = calloc(rl.cap, sizeof(double));
    rl.ack[0] = calloc(rl.cap, sizeof(double));
    rl.ack[1] = calloc(rl.cap, sizeof(double));
    snprintf(peers, sizeof peers, "--peer BENCH:benchsecret");
    node_start(&b, peers);          /* first without A, for the relay baseline */
    pthread_t rt[2];
    pthread_create(&rt[0], NULL, relay_app, &rl);
    usleep(300000);
    pthread_create(&rt[1], NULL, relay_car, &rl);
    sleep(3);
    rl.stop = 1;
    pthread_join(rt[0], NULL);
    pthread_join(rt[1], NULL);
    node_stop(&b);
    rl.stop = 0;
    size_t baseline_n = rl.n[0];
    double base50 = pct(rl.lat[0], rl.n[0], 0.5), base99 = pct(rl.lat[0], rl.n[0], 0.99);
    double hbase50 = pct(rl.ack[0], rl.nack[0], 0.5), hbase99 = pct(rl.ack[0], rl.nack[0], 0.99);

    snprintf(peers, sizeof peers, "--peer A:benchab@127.0.0.1:%d --peer BENCH:benchsecret", a.port);
    node_start(&b, peers);
    rl.phase = 1;
    pthread_create(&rt[0], NULL, relay_app, &rl);
    pthread_create(&rt[1], NULL, relay_car, &rl);
    t0 = bench_now();
    double done_at = 0;
    printf("catching up: B's watermark for A towards %lld\n", (long long)target);
    while (bench_now() - t0 < 600) {
        int64_t got = watermark(b.db, "A");
        if (got >= target) {
            done_at = bench_now() - t0;
            break;
        }
        if (isatty(1))
            printf("\r  %.1f s", bench_now() - t0);
        fflush(stdout);
        usleep(50000);
    }
    rl.stop = 1;
    pthread_join(rt[0], NULL);
    pthread_join(rt[1], NULL);
    double dur50 = pct(rl.lat[1], rl.n[1], 0.5), dur99 = pct(rl.lat[1], rl.n[1], 0.99),
           durmax = pct(rl.lat[1], rl.n[1], 1.0);
    double hdur50 = pct(rl.ack[1], rl.nack[1], 0.5), hdur99 = pct(rl.ack[1], rl.nack[1], 0.99);
    printf("\r  caught up in %.2f s: %.0f records/s applied\n", done_at, records / done_at);
    printf("  relay on B (200/s): before p50 %.2f p99 %.2f ms (%zu); during p50 %.2f p99 %.2f max %.2f ms (%zu)\n",
           base50, base99, baseline_n, dur50, dur99, durmax, rl.n[1]);
    printf("  B's own h acks (50/s): before p50 %.2f p99 %.2f ms; during p50 %.2f p99 %.2f ms\n",
           hbase50, hbase99, hdur50, hdur99);
    node_stop(&a);
    node_stop(&b);

    /* ---- steady lag ------------------------------------------------------------------------ */
    node_t a2 = { "A", free_port(), 0, "" }, b2 = { "B", free_port(), 0, "" };
    snprintf(a2.db, sizeof a2.db, "%s/a2.db", dir);
    snprintf(b2.db, sizeof b2.db, "%s/b2.db", dir);
    prefill(a2.db, "A", 0, 0);
    prefill(b2.db, "B", 0, 1);
    snprintf(peers, sizeof peers, "--peer B:benchab");
    node_start(&a2, peers);
    snprintf(peers, sizeof peers, "--peer A:benchab@127.0.0.1:%d --peer BENCH:benchsecret", a2.port);
    node_start(&b2, peers);
    sleep(1);
    load_t ld = { .port = a2.port, .cars = cars, .rate = rate, .seconds = seconds };
    ld.cap = (size_t)(rate * seconds * 1.2) + 1000;
    ld.lat = calloc(ld.cap, sizeof(double));
    ld.ack_lat = calloc(ld.cap, sizeof(double));
    pthread_mutex_init(&ld.mu, NULL);
    load_t far = ld;
    far.port = b2.port;
    pthread_t fp, ct[16];
    car_arg_t ca[16];
    pthread_create(&fp, NULL, far_peer, &far);
    usleep(500000);
    printf("lag: %d cars send %.0f h records/s to A for %.0f s\n", cars, rate, seconds);
    for (int k = 0; k < cars; k++) {
        ca[k] = (car_arg_t){ &ld, k };
        pthread_create(&ct[k], NULL, load_car, &ca[k]);
    }
    for (int k = 0; k < cars; k++)
        pthread_join(ct[k], NULL);
    sleep(2);
    far.stop = 1;
    pthread_join(fp, NULL);
    double l50 = pct(far.lat, far.nlat, 0.5), l99 = pct(far.lat, far.nlat, 0.99),
           l999 = pct(far.lat, far.nlat, 0.999), lmax = pct(far.lat, far.nlat, 1.0);
    double a50 = pct(ld.ack_lat, ld.nack, 0.5), a99 = pct(ld.ack_lat, ld.nack, 0.99);
    printf("  sent %llu, acked %llu, arrived beyond B %zu; lag p50 %.1f p99 %.1f p99.9 %.1f max %.1f ms\n"
           "  (of which A's own acknowledgement, i.e. A's commit: p50 %.1f p99 %.1f ms)\n",
           (unsigned long long)ld.sent, (unsigned long long)ld.acked, far.nlat, l50, l99, l999, lmax,
           a50, a99);
    node_stop(&a2);
    node_stop(&b2);

    snprintf(md, sizeof md,
        "Two nodes on loopback, %s; `bench_repl --records %ld --rate %.0f --seconds %.0f`.\n\n"
        "| figure | measured | goal |\n|---|---|---|\n"
        "| catch-up of a fresh node: %ld records | %.1f s | under 60 s |\n"
        "| records applied per second at the peer (catch-up) | %.0f | at least 50,000 |\n"
        "| lag, car's send to the peer's commit, %.0f records/s offered: p50 / p99 / p99.9 / max | "
        "%.1f / %.1f / %.1f / %.1f ms | p99 under 100 ms |\n"
        "| ... of which the car's acknowledgement from A (A's commit): p50 / p99 | %.1f / %.1f ms | |\n"
        "| records sent / acknowledged / arrived beyond the peer | %llu / %llu / %zu | all |\n"
        "| the peer's own relay (200 msg/s) p50 / p99 before the catch-up | %.2f / %.2f ms | |\n"
        "| ... during the catch-up: p50 / p99 / max | %.2f / %.2f / %.2f ms | unchanged |\n"
        "| the peer's own history acknowledgements (50/s, fsync'ed) p50 / p99 before / during | "
        "%.2f / %.2f, %.2f / %.2f ms | |\n",
        bench_machine(), records, rate, seconds, records, done_at, records / done_at, rate, l50, l99,
        l999, lmax, a50, a99, (unsigned long long)ld.sent, (unsigned long long)ld.acked, far.nlat, base50,
        base99, dur50, dur99, durmax, hbase50, hbase99, hdur50, hdur99);
    if (report && bench_report_section(report, "replication", md) != 0)
        fprintf(stderr, "bench_repl: cannot update %s\n", report);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_repl: could not remove %s\n", dir);
    return 0;
}
