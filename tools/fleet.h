/*
 * fleet.h -- ovms-fleet: simulated fleets of cars and apps against one node
 * or a cluster, for load tests and the benchmark report.
 *
 * The parent process resolves the targets, provisions the vehicles, forks
 * worker processes (one process may hold at most 20,000 files) and watches
 * them through a shared memory block: each worker owns a slice of the
 * vehicles -- every car of the slice and all of its apps -- so that it can
 * check for itself that each app saw each of its car's messages once and in
 * order, and so that a closed loop knows what is still unanswered. Cars are
 * the firmware core (firmware/ovms_fw.h) on non-blocking sockets; apps are a
 * small client of proto/.
 *
 *   fleet_stats.c     histograms of latency, percentiles, merging
 *   fleet_scenario.c  scenarios by name or from a file, and their bounds
 *   fleet_report.c    the summary table, the JSON line, the plots
 *   fleet_car.c       one simulated car: the firmware core on a socket
 *   fleet_app.c       one app connection
 *   fleet_worker.c    a worker process: its event loop and timers
 *   fleet_main.c      the command line, targets, processes, progress
 */
#ifndef OVMS_FLEET_H
#define OVMS_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- statistics (fleet_stats.c) ---------------------------------------------------------- */

/* Microseconds in log-linear buckets: exact below 64 us, then 32 buckets per
 * power of two (within 3 %), up to 2^38 us. Plain counters, so that the
 * workers' copies in shared memory add up and subtract (per-second views). */
#define FLEET_HIST_LINEAR 64
#define FLEET_HIST_SUB 32
#define FLEET_HIST_BUCKETS (FLEET_HIST_LINEAR + 32 * FLEET_HIST_SUB)

typedef struct fleet_hist {
    uint64_t count;
    uint64_t sum_us;
    uint64_t max_us;
    uint64_t b[FLEET_HIST_BUCKETS];
} fleet_hist_t;

void fleet_hist_add(fleet_hist_t *h, uint64_t us);
void fleet_hist_merge(fleet_hist_t *into, const fleet_hist_t *from);
/* What was added to `now` since `before` (max: the largest bucket seen). */
void fleet_hist_since(fleet_hist_t *out, const fleet_hist_t *now, const fleet_hist_t *before);
/* The q-quantile (0..1) in milliseconds; 0 when empty. */
double fleet_hist_quantile_ms(const fleet_hist_t *h, double q);
double fleet_hist_mean_ms(const fleet_hist_t *h);
int fleet_hist_bucket(uint64_t us);
uint64_t fleet_hist_bucket_value(int bucket);   /* a bucket's midpoint, us */

/* Everything a worker counts. Gauges first, then monotonic counters. */
typedef struct fleet_counts {
    uint64_t cars_online, apps_online;       /* gauges */
    uint64_t connects, logins, login_failures, disconnects;
    uint64_t car_msgs, sent, received, lost, dups, misrouted, out_of_order;
    uint64_t cmd_sent, cmd_done, cmd_failed, cmd_misrouted, cmd_lost;
    uint64_t hist_sent, hist_acked, hist_lost;     /* lost: still unanswered at the end */
    uint64_t reconnects;                     /* churn: planned */
} fleet_counts_t;

#define FLEET_COUNTS_N (sizeof(fleet_counts_t) / sizeof(uint64_t))

void fleet_counts_add(fleet_counts_t *into, const fleet_counts_t *from);
/* Lost, duplicated, misrouted, out of order, failed logins, commands and
 * unexpected disconnects: everything that makes a run fail. */
uint64_t fleet_counts_errors(const fleet_counts_t *c);

/* What a worker shares with the parent. */
typedef struct fleet_slot {
    fleet_counts_t c;
    fleet_hist_t relay, command, history, login;
    fleet_hist_t send_lag;                   /* open loop: how late the car sent, after its due time */
    volatile int ready;                      /* every connection up */
    volatile int drained;                    /* nothing left unanswered */
    volatile int done;
    char error[160];                         /* why a worker gave up */
} fleet_slot_t;

/* ---- scenarios (fleet_scenario.c) -------------------------------------------------------- */

typedef enum fleet_kind {
    FLEET_LOGIN_STORM, FLEET_IDLE, FLEET_RELAY, FLEET_COMMANDS, FLEET_HISTORY,
    FLEET_CROSS_NODE, FLEET_MIXED, FLEET_CHURN
} fleet_kind_t;

#define FLEET_MAX_NODES 32
#define FLEET_MAX_CARS 200000
#define FLEET_MAX_APPS_PER_CAR 16
#define FLEET_MAX_DURATION 86400.0
#define FLEET_MAX_PROCS 64

typedef struct fleet_scenario {
    fleet_kind_t kind;
    char name[32];
    int cars, apps_per_car;
    double rate;              /* relay messages per car per second; 0: closed loop */
    int window;               /* closed loop: unanswered items per car (app for commands) */
    double duration;          /* seconds of load */
    double active;            /* mixed: the share of cars driving or charging, watched */
    double command_rate;      /* commands per app per second (commands, mixed); 0: closed loop */
    double history_rate;      /* history records per car per second (history, mixed); 0: closed */
    double lifetime;          /* churn: mean seconds a connection lives */
    double hold;              /* idle: seconds held before the memory is read */
    double connect_timeout;   /* seconds for the fleet to come up */
    double drain_timeout;     /* seconds to wait for what is still in flight */
    int procs;                /* worker processes; 0: enough for the file limit, at least 2 */
    int connect_window;       /* handshakes in flight per process; 0: no limit */
    /* targets and credentials */
    char server[1024];        /* HOST:PORT[,HOST:PORT...] or NAME:PORT */
    char dns[80];             /* resolve through this DNS server (HOST:PORT) */
    char db[2048];            /* provision here first: PATH[,PATH...] */
    char ids[40];             /* vehicle id pattern, printf with the car's number */
    char password[65];
    int first;                /* number of the first vehicle */
    int allow_remote;         /* targets outside 127.0.0.0/8 */
    /* output */
    int json;
    char plot[512];
    int progress;             /* -1: on a terminal only, 0 off, 1 on */
} fleet_scenario_t;

const char *fleet_kind_name(fleet_kind_t k);
/* Defaults for a named scenario; -1 for an unknown name. */
int fleet_scenario_init(fleet_scenario_t *s, const char *name, char *err, size_t errlen);
/* One setting by name (a command-line option without its "--", or a key of
 * a scenario file; '-' and '_' alike). */
int fleet_scenario_set(fleet_scenario_t *s, const char *key, const char *value, char *err,
                       size_t errlen);
/* A scenario file (INI: key = value, optional [scenario] section; "scenario"
 * or "name" picks the defaults and must come first). */
int fleet_scenario_load(fleet_scenario_t *s, const char *path, char *err, size_t errlen);
/* The bounds every run keeps; a message for the first it breaks. */
int fleet_scenario_check(const fleet_scenario_t *s, char *err, size_t errlen);
int fleet_scenario_closed_loop(const fleet_scenario_t *s);
/* Is this numeric address on the loopback range (127.0.0.0/8, ::1)? */
int fleet_addr_is_loopback(const char *host);

/* ---- the report (fleet_report.c) --------------------------------------------------------- */

typedef struct fleet_node {
    char host[64];
    int port;
    int pid;                  /* the local process listening there, or 0 */
    long rss_kb0, rss_kb1;    /* before the fleet came, and at the end (idle: after holding) */
    double cpu0, cpu1;        /* CPU seconds at the start and end of the load */
} fleet_node_t;

/* One second of the run, for the progress line and the plots. */
typedef struct fleet_second {
    double t;
    uint64_t sent, received, errors, online;
    double p50, p99, max;     /* of that second's primary latency, ms */
    long rss_kb;              /* the local nodes' resident memory, 0 when unknown */
    double busy_pct, steal_pct;   /* the machine's CPU that second (/proc/stat); -1 unknown */
} fleet_second_t;

typedef struct fleet_result {
    const fleet_scenario_t *s;
    int nodes;
    fleet_node_t node[FLEET_MAX_NODES];
    int procs;
    double up_seconds;        /* for every connection to come up */
    double seconds;           /* of load */
    fleet_counts_t c;
    fleet_hist_t relay, command, history, login;
    fleet_hist_t send_lag;    /* the generator's own lateness: part of the relay latency */
    /* the whole machine during the load (/proc/stat), in jiffies: what the
     * node and the fleet used, what was idle, and what the hypervisor took
     * (steal) -- a virtual machine's tail latency is often the last */
    uint64_t cpu_busy, cpu_idle, cpu_steal;
    fleet_second_t *timeline;
    int nseconds;
    char error[200];          /* a run that could not be done at all */
} fleet_result_t;

/* The scenario's own measure: what "sent", "received" and "latency" mean. */
const fleet_hist_t *fleet_result_primary(const fleet_result_t *r, uint64_t *sent, uint64_t *received);
double fleet_result_rate(const fleet_result_t *r);
/* Server memory per connection held, bytes (idle); <0 without the nodes' /proc. */
double fleet_result_bytes_per_conn(const fleet_result_t *r);
void fleet_report_table(FILE *out, const fleet_result_t *r);
/* The one-line JSON object (newline included) into a malloc'd string. */
char *fleet_report_json(const fleet_result_t *r);
/* Data files and PNGs in dir (gnuplot); 0, or -1 with a message. */
int fleet_report_plot(const fleet_result_t *r, const char *dir, char *err, size_t errlen);

/* ---- the workers (fleet_worker.c) -------------------------------------------------------- */

enum { FLEET_PHASE_CONNECT, FLEET_PHASE_RUN, FLEET_PHASE_DRAIN, FLEET_PHASE_STOP };

typedef struct fleet_shared {
    volatile int phase;
    int nslots;
    fleet_slot_t slot[FLEET_MAX_PROCS];
} fleet_shared_t;

typedef struct fleet_job {
    const fleet_scenario_t *s;
    int first, count;         /* this worker's cars, by number within the fleet */
    const fleet_node_t *nodes;
    int nnodes;
    fleet_shared_t *shared;
    fleet_slot_t *slot;
    uint64_t seed;
} fleet_job_t;

/* The worker's whole life; returns its exit status. */
int fleet_worker_run(const fleet_job_t *job);

/* Where a car and its apps connect: round robin over the nodes; across
 * nodes (cross-node) never the car's own node while there are others. */
int fleet_car_node(const fleet_scenario_t *s, int car, int nnodes);
int fleet_app_node(const fleet_scenario_t *s, int car, int app, int nnodes);

uint64_t fleet_now_ns(void);

#endif
