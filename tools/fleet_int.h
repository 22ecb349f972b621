/*
 * fleet_int.h -- inside an ovms-fleet worker: its cars, its apps, and the
 * loop they share (fleet_car.c, fleet_app.c, fleet_worker.c).
 */
#ifndef OVMS_FLEET_INT_H
#define OVMS_FLEET_INT_H

#include "fleet.h"
#include "ovms_fw.h"
#include "ovms_proto.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define FLEET_CMD_TIMEOUT_NS (35 * NS_PER_S)   /* the node answers at 30 s */

typedef struct fleet_worker fleet_worker_t;
typedef struct fleet_app fleet_app_t;

/* One simulated car: the firmware core, its simulated vehicle, a socket. */
typedef struct fleet_car {
    fleet_worker_t *w;
    int index;                   /* in the worker */
    int number;                  /* in the fleet (its vehicle id) */
    int fd, polling_out, connecting;
    int online;                  /* after the first Z */
    int refused;                 /* the node refused the login: stays down */
    int leaving;                 /* churn: finishing what is in flight before it goes */
    int relays, histories;       /* what this car does in the scenario */
    uint64_t connect_ns;
    uint64_t seq;                /* relay messages sent */
    uint64_t next_send_ns, next_hist_ns, fw_next_ns, leave_ns;
    uint32_t hist_seq;
    char body[400];              /* the state report relay messages carry */
    uint64_t body_at;
    struct { uint32_t ackcode; uint64_t at_ns; } hout[OVMS_FW_HISTORY];
    int nhout;
    unsigned acked_seen;
    fleet_app_t *apps;
    int napps;
    uint64_t wake_ns;
    uint32_t gen;
    int wake_pending;
    int queued, granted, handshaking;   /* the connect window (fleet_worker.c) */
    ovms_fw_config_t cfg;
    ovms_sim_t sim;
    ovms_fw_t fw;
} fleet_car_t;

enum { APP_OFF, APP_CONNECTING, APP_WELCOME, APP_REPLAY, APP_LIVE };

/* One app watching (and commanding) one car. */
struct fleet_app {
    fleet_worker_t *w;
    fleet_car_t *car;
    int index;                   /* in the worker */
    int node;
    int fd, polling_out, state;
    int leaving;
    int refused;                 /* the node refused the login: stays down */
    uint64_t connect_ns, leave_ns, back_ns;
    uint64_t last_seq, received;
    /* the one command in flight */
    int cmd, cmd_kind;
    uint64_t cmd_at_ns, next_cmd_ns;
    unsigned commands;
    uint64_t wake_ns;
    uint32_t gen;
    int wake_pending;
    int queued, granted, handshaking;
    char token[OVMS_TOKEN_LEN + 1];
    ovms_session_t s;
    ovms_linesplit_t ls;
    char tail[OVMS_CLIENT_LINE_MAX + 2];
    char out[1024];
    size_t out_len;
};

struct fleet_worker {
    const fleet_job_t *job;
    const fleet_scenario_t *s;
    fleet_slot_t *slot;
    int ep;
    int phase;
    uint64_t run_ns;             /* when the load started */
    uint64_t rng;
    fleet_car_t *cars;
    fleet_app_t *apps;
    int ncars, napps;
    struct fleet_timer *heap;
    size_t nheap, capheap;
    int inflight;                /* handshakes under way */
    uint32_t *waitq;             /* waiting for a place in the connect window */
    size_t wq_head, wq_len, wq_cap;
    ovms_fw_platform_t pf;
    char buf[1 << 16];
};

/* fleet_worker.c: the loop's services */
void fleet_wake_car(fleet_car_t *c, uint64_t at_ns);
void fleet_wake_app(fleet_app_t *a, uint64_t at_ns);
void fleet_watch(fleet_worker_t *w, int fd, int out, uint32_t kind, int index, int *polling_out, int add);
uint64_t fleet_rand(fleet_worker_t *w);
double fleet_rand_unit(fleet_worker_t *w);            /* [0, 1) */
double fleet_rand_exp(fleet_worker_t *w, double mean);
int fleet_connect(const char *host, int port);         /* non-blocking; fd or -1 */
int fleet_churning(const fleet_worker_t *w);
/* The connect window: may this car (or app) start its handshake now? If not
 * it waits in line and is woken with *granted set when a place is free. */
int fleet_handshake_begin(fleet_worker_t *w, int is_app, int index, int *queued);
void fleet_handshake_end(fleet_worker_t *w, int *handshaking);

/* fleet_car.c */
void fleet_car_init(fleet_car_t *c, fleet_worker_t *w, int index, int number);
void fleet_car_tick(fleet_car_t *c, uint64_t now);
void fleet_car_io(fleet_car_t *c, uint32_t events, uint64_t now);
int fleet_car_drained(const fleet_car_t *c);
int fleet_car_up(const fleet_car_t *c);               /* online, or refused for good */
void fleet_car_finish(fleet_car_t *c);                /* at the end: lost records */
/* May the car send relay messages now (online, its apps all live, nobody leaving)? */
int fleet_car_gate(const fleet_car_t *c);

/* fleet_app.c */
void fleet_app_init(fleet_app_t *a, fleet_worker_t *w, fleet_car_t *car, int index, int node);
void fleet_app_tick(fleet_app_t *a, uint64_t now);
void fleet_app_io(fleet_app_t *a, uint32_t events, uint64_t now);
int fleet_app_drained(const fleet_app_t *a);
void fleet_app_finish(fleet_app_t *a);                /* at the end: lost messages */
int fleet_app_commands(const fleet_app_t *a);         /* does this app command its car? */

#endif
