/*
 * repl_int.h -- internal to replication/: the replication object, peers and
 * links, and what the files of this folder share.
 */
#ifndef OVMS_REPL_INT_H
#define OVMS_REPL_INT_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "ovms_proto.h"
#include "ovms_repl.h"

#include <stddef.h>
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define REPL_MAX_ORIGINS 256
#define REPL_READ_BATCH 2048        /* records per log read */
#define REPL_APPLY_BATCH 1024       /* records per apply request */
#define REPL_APPLY_INFLIGHT 4       /* apply requests per link before reading pauses */
#define REPL_SEND_HIGH (1u << 20)   /* unsent bytes before the log reads pause */

typedef struct link link_t;

/* A configured peer and its dialing state. */
typedef struct peer {
    ovms_peer_conf_t conf;
    link_t *link;               /* the link in use, or NULL */
    link_t *dialing;            /* a dial in progress */
    double next_dial;           /* loop seconds; 0: not dialing */
    int backoff_ms;
    double since;               /* when the current state began (wall seconds) */
    int64_t advertised[REPL_MAX_ORIGINS];   /* its watermarks at the last link */
    char adv_origin[REPL_MAX_ORIGINS][33];
    int nadv;
    char last_error[128];
} peer_t;

/* Per-origin counters (what a peer holds, what arrived on a link). */
typedef struct marks {
    int n;
    ovms_store_wm_t v[REPL_MAX_ORIGINS];
} marks_t;
int64_t marks_get(const marks_t *m, const char *origin);
int marks_set(marks_t *m, const char *origin, int64_t seq);     /* keeps the maximum */

/* Mail from other threads (adopted links, store completions). */
typedef struct repl_mail {
    struct repl_mail *next;
    void (*run)(ovms_replication_t *r, struct repl_mail *m);    /* on the loop; frees m */
} repl_mail_t;

/* A store request of a link; done runs on the loop thread. */
typedef struct repl_job {
    repl_mail_t mail;
    ovms_store_req_t req;
    link_t *link;
    void (*done)(struct repl_job *job);
} repl_job_t;

struct ovms_replication {
    ovms_replication_config_t cfg;
    char server_id[33];
    peer_t peers[OVMS_MAX_PEERS];
    int npeers;
    link_t *links;              /* every open link, dialed or accepted */
    uv_loop_t loop;
    uv_async_t wake;            /* mail, kick or stop */
    uv_timer_t tick;            /* once a second: timeouts, dials, status */
    pthread_t thread;
    pthread_mutex_t mu;
    repl_mail_t *mail;          /* under mu */
    int kicked;                 /* under mu */
    int stopping;               /* under mu */
    uint64_t records_in, records_out;   /* loop thread; the summary reads them racily */
    int links_up;
    int jobs;                   /* store requests out (atomic) */
    double started;
    uint64_t rng;
};

/* repl.c */
double repl_now(ovms_replication_t *r);          /* loop seconds (monotonic) */
double repl_wall(void);
void repl_log(ovms_replication_t *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A job for link l (which stays allocated until done ran); NULL when out of memory. */
repl_job_t *repl_job_new(link_t *l, void (*done)(repl_job_t *job));
/* Submit a prepared job; done runs on the loop thread (also when the
 * store refuses it, with the status set). The job is freed after done. */
void repl_job_submit(repl_job_t *job);
peer_t *repl_peer(ovms_replication_t *r, ovms_str_t id);
uint32_t repl_random(ovms_replication_t *r);

/* link.c */
void link_dial(ovms_replication_t *r, peer_t *p);
void link_accept(ovms_replication_t *r, int fd, peer_t *p, const char *token, const char *marks,
                 const char *held, size_t nheld, const char *addr);
void link_close(link_t *l, int level, const char *why);
void link_tick(link_t *l, double now);
void link_close_all(ovms_replication_t *r);
void link_unref(link_t *l);
void link_send_line(link_t *l, const char *msg, size_t len);     /* gathered ... */
void link_flush(link_t *l);                                     /* ... and written */
void link_pause(link_t *l, int pause);                          /* reading off/on */
/* link.c, for status */
const char *link_state_name(const link_t *l);

/* sync.c */
void sync_kick(link_t *l);                      /* up, or the store committed: send what is new */
int sync_record(link_t *l, const char *msg, size_t len);   /* 0, or the link was closed */
void sync_flush(link_t *l);                     /* end of a read chunk: apply what came */
void sync_tick(link_t *l, double now);

/* status.c */
void status_write(ovms_replication_t *r);

/* The link itself (link.c owns it; sync.c keeps its counters here). */
enum link_state { L_CONNECTING, L_WELCOME, L_WAIT_RW, L_UP, L_CLOSING };

struct link {
    uv_tcp_t tcp;
    uv_connect_t connect;
    ovms_replication_t *r;
    peer_t *peer;
    link_t *next;
    int dialer;
    enum link_state state;
    int refs;                   /* the handle, and each store request in flight */
    ovms_session_t session;
    ovms_linesplit_t ls;
    char token[OVMS_TOKEN_LEN + 1];
    char addr[64];
    double opened, up_since, last_rx, last_tx;   /* loop seconds */
    int reading_paused;
    size_t unsent;              /* bytes handed to uv_write, not yet written */
    char *obuf;                 /* lines gathered for the next write */
    size_t olen, ocap;
    /* sending: what the peer holds, per origin */
    marks_t holds;
    int log_reading, log_again, caught_up_sent;
    /* receiving: the last seq per origin on this link (FIFO), the batch */
    marks_t seen;
    char *batch;
    size_t batch_len, batch_cap;
    int batch_count, applying;
    uint64_t in, out;
};

#endif
