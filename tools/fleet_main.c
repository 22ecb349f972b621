/*
 * fleet_main.c -- ovms-fleet's command line and the parent process: targets
 * (a DNS name, a list of nodes, one node), provisioning, the worker
 * processes, the phases of a run, the progress line and the report.
 *
 *   ovms-fleet SCENARIO [--setting VALUE ...]
 *   ovms-fleet --config FILE [--setting VALUE ...]
 *
 * The parent holds no connection: it forks the workers (each holds a slice
 * of the fleet, at most about 15,000 sockets, under the 20,000-file limit),
 * moves them through the phases in shared memory, and reads their counters
 * once a second for the progress line and the timeline. Local nodes are
 * found by their listening socket in /proc, for their memory and CPU.
 */
#include "fleet.h"
#include "ovms_resolve.h"
#include "ovms_store.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CONNS_PER_PROC 15000

static volatile sig_atomic_t interrupted;
static void on_interrupt(int sig) { (void)sig; interrupted = 1; }

static void usage(FILE *out)
{
    fprintf(out,
        "usage: ovms-fleet SCENARIO [--setting VALUE ...]\n"
        "       ovms-fleet --config FILE [--setting VALUE ...]\n"
        "\n"
        "Runs a simulated fleet of cars (the firmware core) and apps against one ovmsd node or a\n"
        "cluster, and reports what it saw. Every run is bounded and stops by itself.\n"
        "\n"
        "scenarios:\n"
        "  login-storm  cars log in, and again, as fast as they can (handshake latency)\n"
        "  idle         connections held for --hold seconds (server memory per connection)\n"
        "  relay        cars report at --rate per second (0: closed loop, --window unanswered);\n"
        "               apps measure car-to-app latency from a timestamp in each message\n"
        "  commands     apps command their cars (--command-rate, 0: one at a time), round trip\n"
        "  history      cars send history records (--history-rate, 0: --window unacked), ack latency\n"
        "  cross-node   relay with every app on another node than its car\n"
        "  mixed        a day: most cars parked, --active share watched, reporting, commanded,\n"
        "               history from everyone\n"
        "  churn        cars and apps reconnect continuously (mean --lifetime seconds) while reporting\n"
        "\n"
        "settings (also keys of a scenario file, INI, with scenario = NAME first):\n"
        "  --server HOST:PORT[,HOST:PORT...]  nodes, or NAME:PORT resolved to every address (127.0.0.1:6867)\n"
        "  --dns HOST:PORT      resolve names through this DNS server\n"
        "  --db PATH[,PATH...]  provision the fleet's vehicles in these node databases first\n"
        "  --ids PATTERN        vehicle ids (FLEET%%06d), --first N, --password PW (FLEETPW)\n"
        "  --cars N  --apps-per-car M  --rate R  --window W  --duration S  --hold S\n"
        "  --active F  --command-rate R  --history-rate R  --lifetime S\n"
        "  --procs P            worker processes (default: enough for the file limit, at least 2)\n"
        "  --connect-window N   logins in flight per process (24; 0: all at once)\n"
        "  --connect-timeout S (60)  --drain-timeout S (10)\n"
        "  --json               end with one line holding a JSON object (sent, received, lost, dups,\n"
        "                       misrouted, rate_per_s, latency_ms {p50, p99, p999, max}, ...)\n"
        "  --plot DIR           PNG plots (gnuplot): latency over time, latency by percentile\n"
        "  --progress / --no-progress   the live line (default: on a terminal only)\n"
        "  --allow-remote       allow targets outside 127.0.0.0/8 (never a production server)\n"
        "\n"
        "Exit status: 0 when nothing was lost, duplicated, misrouted or refused; 1 when anything\n"
        "was; 2 for a bad command line.\n");
}

/* ---- the command line ------------------------------------------------------------------------ */

static int is_flag(const char *key)
{
    return !strcmp(key, "json") || !strcmp(key, "allow-remote") || !strcmp(key, "progress");
}

static int parse_args(fleet_scenario_t *s, int argc, char **argv)
{
    char err[300];
    int i = 1, have = 0;
    if (argc < 2) {
        usage(stderr);
        return -1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        exit(0);
    }
    if (!strcmp(argv[1], "--config")) {
        if (argc < 3) {
            fprintf(stderr, "ovms-fleet: --config needs a file\n");
            return -1;
        }
        if (fleet_scenario_init(s, "relay", err, sizeof err) < 0 ||
            fleet_scenario_load(s, argv[2], err, sizeof err) < 0) {
            fprintf(stderr, "ovms-fleet: %s\n", err);
            return -1;
        }
        i = 3;
        have = 1;
    } else if (argv[1][0] != '-') {
        if (fleet_scenario_init(s, argv[1], err, sizeof err) < 0) {
            fprintf(stderr, "ovms-fleet: %s\n", err);
            return -1;
        }
        i = 2;
        have = 1;
    }
    if (!have) {
        fprintf(stderr, "ovms-fleet: name a scenario first (ovms-fleet --help)\n");
        return -1;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "ovms-fleet: unexpected '%s' (settings are --name value)\n", a);
            return -1;
        }
        a += 2;
        const char *v;
        if (!strcmp(a, "no-progress")) {
            s->progress = 0;
            continue;
        }
        if (is_flag(a))
            v = "1";
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            fprintf(stderr, "ovms-fleet: --%s needs a value\n", a);
            return -1;
        }
        if (fleet_scenario_set(s, a, v, err, sizeof err) < 0) {
            fprintf(stderr, "ovms-fleet: %s\n", err);
            return -1;
        }
    }
    if (fleet_scenario_check(s, err, sizeof err) < 0) {
        fprintf(stderr, "ovms-fleet: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- targets -------------------------------------------------------------------------------- */

static int add_target(fleet_result_t *r, const fleet_scenario_t *s, const char *item)
{
    char host[256], addrs[FLEET_MAX_NODES][OVMS_RESOLVE_HOSTLEN], err[256];
    const char *colon = strrchr(item, ':');
    if (!colon || colon == item || (size_t)(colon - item) >= sizeof host || atoi(colon + 1) <= 0 ||
        atoi(colon + 1) > 65535) {
        fprintf(stderr, "ovms-fleet: server '%s': expected HOST:PORT\n", item);
        return -1;
    }
    memcpy(host, item, (size_t)(colon - item));
    host[colon - item] = '\0';
    int n = ovms_resolve(host, s->dns[0] ? s->dns : NULL, addrs, FLEET_MAX_NODES, err, sizeof err);
    if (n <= 0) {
        fprintf(stderr, "ovms-fleet: %s: %s\n", host, n < 0 ? err : "no address");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!s->allow_remote && !fleet_addr_is_loopback(addrs[i])) {
            fprintf(stderr, "ovms-fleet: %s is %s, outside 127.0.0.0/8: a load test goes to a test "
                    "node only (--allow-remote to insist)\n", host, addrs[i]);
            return -1;
        }
        if (strchr(addrs[i], ':')) {
            fprintf(stderr, "ovms-fleet: %s: IPv6 targets are not supported yet\n", addrs[i]);
            return -1;
        }
        if (r->nodes == FLEET_MAX_NODES) {
            fprintf(stderr, "ovms-fleet: more than %d nodes\n", FLEET_MAX_NODES);
            return -1;
        }
        fleet_node_t *node = &r->node[r->nodes++];
        snprintf(node->host, sizeof node->host, "%.63s", addrs[i]);
        node->port = atoi(colon + 1);
    }
    return 0;
}

static int resolve_targets(fleet_result_t *r, const fleet_scenario_t *s)
{
    char list[sizeof s->server], *save = NULL;
    snprintf(list, sizeof list, "%s", s->server);
    for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save))
        if (add_target(r, s, item) < 0)
            return -1;
    return r->nodes ? 0 : -1;
}

/* ---- the nodes' processes, from /proc ------------------------------------------------------------- */

/* The inode of the socket listening on host:port (or on any address). */
static unsigned long listen_inode(const fleet_node_t *n)
{
    unsigned a, b, c, d;
    char want[16];
    if (sscanf(n->host, "%u.%u.%u.%u", &a, &b, &c, &d) != 4)
        return 0;
    snprintf(want, sizeof want, "%02X%02X%02X%02X", d, c, b, a);   /* little-endian hex */
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    unsigned long found = 0;
    while (f && !found && fgets(line, sizeof line, f)) {
        char local[16];
        unsigned port, state;
        unsigned long inode;
        if (sscanf(line, " %*d: %8[0-9A-F]:%X %*8[0-9A-F]:%*X %X %*s %*s %*s %*d %*d %lu", local, &port,
                   &state, &inode) != 4)
            continue;
        if (state == 0x0A && port == (unsigned)n->port && (!strcmp(local, want) || !strcmp(local, "00000000")))
            found = inode;
    }
    if (f)
        fclose(f);
    return found;
}

static int pid_of_socket(unsigned long inode)
{
    char want[64], path[300], link[64];
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    DIR *proc = opendir("/proc");
    struct dirent *e;
    int found = 0;
    while (proc && !found && (e = readdir(proc))) {
        int pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/fd", pid);
        DIR *fds = opendir(path);
        struct dirent *fd;
        while (fds && !found && (fd = readdir(fds))) {
            snprintf(path, sizeof path, "/proc/%d/fd/%.20s", pid, fd->d_name);
            ssize_t k = readlink(path, link, sizeof link - 1);
            if (k > 0) {
                link[k] = '\0';
                found = !strcmp(link, want) ? pid : 0;
            }
        }
        if (fds)
            closedir(fds);
    }
    if (proc)
        closedir(proc);
    return found;
}

static long rss_kb(int pid)
{
    char path[64], line[256];
    long kb = 0;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static double cpu_seconds(int pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f && fgets(buf, sizeof buf, f)) {
        char *p = strrchr(buf, ')');
        if (p)
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    }
    if (f)
        fclose(f);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void find_nodes(fleet_result_t *r)
{
    for (int i = 0; i < r->nodes; i++) {
        unsigned long inode = listen_inode(&r->node[i]);
        r->node[i].pid = inode ? pid_of_socket(inode) : 0;
        for (int k = 0; k < i; k++)
            if (r->node[k].pid == r->node[i].pid)
                r->node[i].pid = 0;           /* one process, counted once */
    }
}

/* The machine's CPU time so far (all CPUs, jiffies) from /proc/stat. */
static int machine_cpu(uint64_t *busy, uint64_t *idle, uint64_t *steal)
{
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return -1;
    *busy = v[0] + v[1] + v[2] + v[5] + v[6];   /* user nice system irq softirq */
    *idle = v[3] + v[4];                        /* idle iowait */
    *steal = v[7];
    return 0;
}

static void sample_nodes(fleet_result_t *r, int end)
{
    static uint64_t busy0, idle0, steal0;
    uint64_t busy, idle, steal;
    if (machine_cpu(&busy, &idle, &steal) == 0) {
        if (!end) {
            busy0 = busy, idle0 = idle, steal0 = steal;
        } else {
            r->cpu_busy = busy - busy0;
            r->cpu_idle = idle - idle0;
            r->cpu_steal = steal - steal0;
        }
    }
    for (int i = 0; i < r->nodes; i++) {
        fleet_node_t *n = &r->node[i];
        if (n->pid <= 0)
            continue;
        if (end) {
            n->rss_kb1 = rss_kb(n->pid);
            n->cpu1 = cpu_seconds(n->pid);
        } else {
            n->rss_kb0 = rss_kb(n->pid);
            n->cpu0 = cpu_seconds(n->pid);
        }
    }
}

/* ---- provisioning ---------------------------------------------------------------------------------- */

/* Adds what is missing or different; *changed counts what it wrote (a
 * fleet provisioned by an earlier run costs nothing, not even the wait). */
static int provision_one(const fleet_scenario_t *s, const char *path, int *changed)
{
    ovms_store_config_t cfg = { .path = path, .sync_normal = 1, .expire_interval_ms = -1 };
    ovms_store_t *st;
    char err[300], id[40];
    if (ovms_store_open(&st, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "ovms-fleet: %s\n", err);
        return -1;
    }
    ovms_store_req_t *reqs = calloc((size_t)s->cars + 1, sizeof *reqs);
    if (!reqs) {
        ovms_store_close(st);
        return -1;
    }
    ovms_owner_t owner;
    int rc = 0;
    if (ovms_store_owner_get(st, "fleet", &owner) != 0) {
        ovms_store_prep_owner_put(&reqs[s->cars], "fleet", NULL, NULL, 1, 0);
        rc = ovms_store_run(st, &reqs[s->cars]);
    }
    for (int i = 0; rc >= 0 && i < s->cars; i++) {
        ovms_vehicle_t v;
        snprintf(id, sizeof id, s->ids, s->first + i);
        if (ovms_store_vehicle_get(st, id, &v) == 0 && strcmp(v.carpass, s->password) == 0)
            continue;
        ovms_store_prep_vehicle_put(&reqs[i], id, "fleet", s->password, NULL, NULL, 0);
        ovms_store_submit(st, &reqs[i], NULL, NULL);
        (*changed)++;
    }
    ovms_store_close(st);                  /* finishes the queue */
    for (int i = 0; i <= s->cars; i++)
        ovms_store_req_cleanup(&reqs[i]);
    free(reqs);
    if (rc < 0)
        fprintf(stderr, "ovms-fleet: %s: cannot add the fleet's owner\n", path);
    return rc < 0 ? -1 : 0;
}

static int provision(const fleet_scenario_t *s)
{
    char list[sizeof s->db], *save = NULL;
    if (!s->db[0])
        return 0;
    snprintf(list, sizeof list, "%s", s->db);
    int changed = 0;
    for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        int before = changed;
        if (provision_one(s, p, &changed) < 0)
            return -1;
        if (!s->json)
            fprintf(stderr, "ovms-fleet: %d vehicles provisioned in %s (%d added or changed)\n", s->cars, p,
                    changed - before);
    }
    /* a running node notices another process's changes within a second */
    if (changed)
        usleep(1500 * 1000);
    return 0;
}

/* ---- the workers ------------------------------------------------------------------------------------ */

static int procs_for(const fleet_scenario_t *s)
{
    int apps = s->kind == FLEET_LOGIN_STORM || s->kind == FLEET_HISTORY ? 0 : s->apps_per_car;
    double conns = (double)s->cars * (1 + apps);
    int p = s->procs ? s->procs : (int)((conns + CONNS_PER_PROC - 1) / CONNS_PER_PROC);
    if (!s->procs && p < 2)
        p = 2;
    if (p > s->cars)
        p = s->cars;
    return p > FLEET_MAX_PROCS ? FLEET_MAX_PROCS : p;
}

static int spawn(fleet_shared_t *sh, const fleet_scenario_t *s, fleet_result_t *r, pid_t *pids)
{
    int per = s->cars / r->procs, extra = s->cars % r->procs, first = 0;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    sh->nslots = r->procs;
    for (int p = 0; p < r->procs; p++) {
        fleet_job_t job = { .s = s, .first = first, .count = per + (p < extra), .nodes = r->node,
                            .nnodes = r->nodes, .shared = sh, .slot = &sh->slot[p],
                            .seed = seed + (uint64_t)p * 7919 };
        first += job.count;
        pids[p] = fork();
        if (pids[p] < 0) {
            fprintf(stderr, "ovms-fleet: fork: %s\n", strerror(errno));
            return -1;
        }
        if (pids[p] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive the run */
            signal(SIGINT, SIG_IGN);
            _exit(fleet_worker_run(&job));
        }
    }
    return 0;
}

static void snapshot(const fleet_shared_t *sh, fleet_counts_t *c, fleet_hist_t *h, const fleet_result_t *r)
{
    memset(c, 0, sizeof *c);
    memset(h, 0, sizeof *h);
    for (int p = 0; p < sh->nslots; p++) {
        const fleet_slot_t *sl = &sh->slot[p];
        fleet_counts_add(c, &sl->c);
        switch (r->s->kind) {
        case FLEET_LOGIN_STORM:
        case FLEET_IDLE: fleet_hist_merge(h, &sl->login); break;
        case FLEET_COMMANDS: fleet_hist_merge(h, &sl->command); break;
        case FLEET_HISTORY: fleet_hist_merge(h, &sl->history); break;
        default: fleet_hist_merge(h, &sl->relay); break;
        }
    }
}

static int count_flag(const fleet_shared_t *sh, size_t off)
{
    int n = 0;
    for (int p = 0; p < sh->nslots; p++)
        n += *(const volatile int *)((const char *)&sh->slot[p] + off) != 0;
    return n;
}

static int workers_alive(pid_t *pids, int n)
{
    int alive = 0;
    for (int p = 0; p < n; p++) {
        if (pids[p] <= 0)
            continue;
        int st;
        if (waitpid(pids[p], &st, WNOHANG) == pids[p])
            pids[p] = -pids[p];
        else
            alive++;
    }
    return alive;
}

static double now_s(void) { return (double)fleet_now_ns() / 1e9; }

/* ---- progress and the timeline ---------------------------------------------------------------------- */

typedef struct watch {
    fleet_counts_t prev_c;
    fleet_hist_t prev_h, h, d;
    uint64_t busy, idle, steal;  /* the machine's CPU at the last tick */
    int show;
    int cap;
} watch_t;

static void tick(watch_t *wt, const fleet_shared_t *sh, fleet_result_t *r, double t, double total,
                 const char *phase)
{
    fleet_counts_t c;
    snapshot(sh, &c, &wt->h, r);
    fleet_hist_since(&wt->d, &wt->h, &wt->prev_h);
    uint64_t sent, received;
    fleet_result_t cur = *r;
    cur.c = c;
    fleet_result_primary(&cur, &sent, &received);
    fleet_result_t prev = *r;
    prev.c = wt->prev_c;
    uint64_t psent, preceived;
    fleet_result_primary(&prev, &psent, &preceived);
    if (r->nseconds == wt->cap) {
        wt->cap = wt->cap ? wt->cap * 2 : 64;
        r->timeline = realloc(r->timeline, (size_t)wt->cap * sizeof *r->timeline);
    }
    fleet_second_t *sec = &r->timeline[r->nseconds++];
    *sec = (fleet_second_t){ .t = t, .sent = sent - psent, .received = received - preceived,
                             .errors = fleet_counts_errors(&c), .online = c.cars_online + c.apps_online,
                             .p50 = fleet_hist_quantile_ms(&wt->d, 0.5),
                             .p99 = fleet_hist_quantile_ms(&wt->d, 0.99),
                             .max = fleet_hist_quantile_ms(&wt->d, 1.0) };
    for (int i = 0; i < r->nodes; i++)
        if (r->node[i].pid > 0)
            sec->rss_kb += rss_kb(r->node[i].pid);
    sec->busy_pct = sec->steal_pct = -1;
    uint64_t busy, idle, steal;
    if (machine_cpu(&busy, &idle, &steal) == 0) {
        uint64_t all = (busy - wt->busy) + (idle - wt->idle) + (steal - wt->steal);
        if (wt->busy && all) {
            sec->busy_pct = 100.0 * (double)(busy - wt->busy) / (double)all;
            sec->steal_pct = 100.0 * (double)(steal - wt->steal) / (double)all;
        }
        wt->busy = busy, wt->idle = idle, wt->steal = steal;
    }
    if (wt->show)
        fprintf(stderr, "\r%-7s %5.0f/%.0f s  online %llu  sent %llu  received %llu (%llu/s)  errors %llu  "
                "p99 %.2f ms (so far %.2f)   ", phase, t, total, (unsigned long long)sec->online,
                (unsigned long long)sent, (unsigned long long)received, (unsigned long long)sec->received,
                (unsigned long long)sec->errors, sec->p99, fleet_hist_quantile_ms(&wt->h, 0.99));
    wt->prev_c = c;
    wt->prev_h = wt->h;
}

/* ---- a run ------------------------------------------------------------------------------------------ */

static void wait_for(const fleet_shared_t *sh, size_t flag, double until, pid_t *pids, int n)
{
    while (!interrupted && now_s() < until && count_flag(sh, flag) < sh->nslots && workers_alive(pids, n) == n)
        usleep(10 * 1000);
}

static int run(const fleet_scenario_t *s, fleet_result_t *r)
{
    pid_t pids[FLEET_MAX_PROCS];
    fleet_shared_t *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    watch_t *wt = calloc(1, sizeof *wt);
    if (sh == MAP_FAILED || !wt) {
        fprintf(stderr, "ovms-fleet: out of memory\n");
        return -1;
    }
    wt->show = s->progress < 0 ? isatty(2) : s->progress;
    find_nodes(r);
    sample_nodes(r, 0);
    r->procs = procs_for(s);
    sh->phase = FLEET_PHASE_CONNECT;
    double t0 = now_s();
    if (spawn(sh, s, r, pids) < 0)
        return -1;
    /* coming up */
    wait_for(sh, offsetof(fleet_slot_t, ready), t0 + s->connect_timeout, pids, r->procs);
    r->up_seconds = now_s() - t0;
    int ready = count_flag(sh, offsetof(fleet_slot_t, ready)) == r->procs;
    if (!ready && !interrupted) {
        fleet_counts_t c;
        snapshot(sh, &c, &wt->h, r);
        snprintf(r->error, sizeof r->error, "the fleet did not come up within %.0f s (%llu cars, %llu "
                 "apps online; %llu login failures)", s->connect_timeout, (unsigned long long)c.cars_online,
                 (unsigned long long)c.apps_online, (unsigned long long)c.login_failures);
    }
    /* the load */
    if (ready && !interrupted) {
        double total = s->kind == FLEET_IDLE ? s->hold : s->duration;
        if (s->kind != FLEET_IDLE)
            sample_nodes(r, 0);
        else
            for (int i = 0; i < r->nodes; i++)
                if (r->node[i].pid > 0)
                    r->node[i].cpu0 = cpu_seconds(r->node[i].pid);
        snapshot(sh, &wt->prev_c, &wt->prev_h, r);
        (void)machine_cpu(&wt->busy, &wt->idle, &wt->steal);
        sh->phase = FLEET_PHASE_RUN;
        double start = now_s(), next = start + 1;
        while (!interrupted && now_s() < start + total && workers_alive(pids, r->procs) == r->procs) {
            double left = (next < start + total ? next : start + total) - now_s();
            if (left > 0)
                usleep((useconds_t)(left * 1e6 < 100000 ? left * 1e6 : 100000));
            if (now_s() >= next) {
                tick(wt, sh, r, next - start, total, "load");
                next += 1;
            }
        }
        r->seconds = now_s() - start;
        sample_nodes(r, 1);
        if (s->kind != FLEET_IDLE) {
            sh->phase = FLEET_PHASE_DRAIN;
            wait_for(sh, offsetof(fleet_slot_t, drained), now_s() + s->drain_timeout, pids, r->procs);
        }
        if (wt->show)
            fprintf(stderr, "\n");
    }
    sh->phase = FLEET_PHASE_STOP;
    double until = now_s() + 10;
    while (workers_alive(pids, r->procs) && now_s() < until)
        usleep(10 * 1000);
    for (int p = 0; p < r->procs; p++)
        if (pids[p] > 0) {
            kill(pids[p], SIGKILL);
            waitpid(pids[p], NULL, 0);
            if (!r->error[0])
                snprintf(r->error, sizeof r->error, "worker %d did not stop", p);
        }
    for (int p = 0; p < r->procs; p++) {
        const fleet_slot_t *sl = &sh->slot[p];
        fleet_counts_add(&r->c, &sl->c);
        fleet_hist_merge(&r->relay, &sl->relay);
        fleet_hist_merge(&r->command, &sl->command);
        fleet_hist_merge(&r->history, &sl->history);
        fleet_hist_merge(&r->login, &sl->login);
        fleet_hist_merge(&r->send_lag, &sl->send_lag);
        if (!sl->done && !r->error[0])
            snprintf(r->error, sizeof r->error, "worker %d failed%s%s", p, sl->error[0] ? ": " : "", sl->error);
    }
    if (interrupted && !r->error[0])
        snprintf(r->error, sizeof r->error, "interrupted");
    munmap(sh, sizeof *sh);
    free(wt);
    return 0;
}

int main(int argc, char **argv)
{
    static fleet_scenario_t s;
    static fleet_result_t r;
    char err[300];
    if (parse_args(&s, argc, argv) < 0)
        return 2;
    r.s = &s;
    if (resolve_targets(&r, &s) < 0)
        return 2;
    if (provision(&s) < 0)
        return 1;
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    signal(SIGPIPE, SIG_IGN);
    if (run(&s, &r) < 0)
        return 1;
    fleet_report_table(stdout, &r);
    if (s.plot[0] && fleet_report_plot(&r, s.plot, err, sizeof err) < 0)
        fprintf(stderr, "ovms-fleet: plots: %s\n", err);
    else if (s.plot[0])
        printf("  %-18s %s/%s-latency-time.png, %s/%s-latency-distribution.png\n", "plots", s.plot,
               s.name, s.plot, s.name);
    if (s.json) {
        char *line = fleet_report_json(&r);
        if (line)
            fputs(line, stdout);
        free(line);
    }
    free(r.timeline);
    return r.error[0] || fleet_counts_errors(&r.c) ? 1 : 0;
}
