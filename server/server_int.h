/*
 * server_int.h -- internal to server/: the node, its workers, connections
 * and the vehicle hub, and the functions the files of this folder share.
 *
 * Ownership and threads (see docs/architecture.md):
 *   - A worker is one thread with one libuv loop and its own listeners.
 *   - A connection is accepted by any worker; once it has logged in for a
 *     vehicle it is handed to that vehicle's *home worker* (a hash of the
 *     vehicle id), which owns the vehicle's hub entry. So everything about
 *     one vehicle -- its car, apps, batch clients, Z counts, command queue,
 *     stored-message cache -- lives on one thread and needs no lock.
 *   - Other threads reach a worker only through its mailbox (a locked list
 *     and a uv_async_t signalled on the empty -> non-empty edge): handoffs,
 *     store completions, group deliveries, stop.
 *   - Groups cross vehicles, so they live in one registry with a mutex.
 */
#ifndef OVMS_SERVER_INT_H
#define OVMS_SERVER_INT_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "ovms_proto.h"
#include "ovms_server.h"
#include "ovms_store.h"

typedef struct server server_t;
typedef struct worker worker_t;
typedef struct conn conn_t;
typedef struct vehicle vehicle_t;
typedef struct tls_conn tls_conn_t;
typedef struct ws_conn ws_conn_t;
typedef struct guard guard_t;

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- intrusive lists ----------------------------------------------------------------- */

/* A peer address in 20 bytes (text only when a log line needs it). */
typedef struct peer {
    uint8_t family;          /* 0 unknown, 4 or 6 */
    uint16_t port;
    uint8_t addr[16];
} peer_t;

typedef struct link {
    struct link *prev, *next;
} link_t;

static inline void link_init(link_t *h) { h->prev = h->next = h; }
static inline int link_empty(const link_t *h) { return h->next == h; }
static inline void link_add(link_t *h, link_t *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void link_del(link_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
#define link_each(pos, head) for (link_t *pos = (head)->next, *pos##_n = pos->next; \
                                  pos != (head); pos = pos##_n, pos##_n = pos->next)

/* ---- hash tables (table.c) ---------------------------------------------------------------- */

typedef struct table {
    void **slot;
    size_t cap, count;
    uint64_t (*hash_item)(const void *item);
} table_t;

void *table_find(const table_t *t, uint64_t h, int (*match)(const void *item, const void *key),
                 const void *key);
int table_insert(table_t *t, void *item);
void table_remove(table_t *t, void *item);
void table_free(table_t *t);
uint64_t hash_u64(uint64_t x);
uint64_t hash_str(const char *s);

/* ---- pools of long-lived objects (pool.c) ---------------------------------------------------- */

/* Under AddressSanitizer (gcc's macro, clang's feature) objects come from calloc. */
#if defined(__SANITIZE_ADDRESS__)
#define OVMS_POOL_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OVMS_POOL_PLAIN 1
#endif
#endif

typedef struct pool {
    size_t size, per_slab;
    struct slab *room;       /* slabs with room */
    size_t nslabs, empty;
} pool_t;

void pool_init(pool_t *p, size_t size);
void *pool_alloc(pool_t *p);         /* zeroed; NULL when out of memory */
void pool_free(pool_t *p, void *obj);
void pool_destroy(pool_t *p);        /* once every object was freed */

/* ---- logging (log.c) -------------------------------------------------------------------- */

/* Read by every thread, set by the main thread (SIGHUP): accessed atomically. */
extern int ovms_log_level;
static inline int log_enabled(ovms_log_level_t level)
{
    return (int)level <= __atomic_load_n(&ovms_log_level, __ATOMIC_RELAXED);
}
void log_init(void);                 /* starts the writer thread */
void log_shutdown(void);             /* writes what is left (waits at most 2 s) */
void log_line(ovms_log_level_t level, const conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A line for an event a client can repeat at will: at most a few per
 * (kind, subject) a minute, then a count of the rest. subject is what
 * makes events alike besides their kind: a source address, a vehicle. */
void log_limited(ovms_log_level_t level, const conn_t *c, const char *kind, const char *subject,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define LOG_ERROR(c, ...) log_line(OVMS_LOG_ERROR, c, __VA_ARGS__)
#define LOG_WARN(c, ...) log_line(OVMS_LOG_WARN, c, __VA_ARGS__)
#define LOG_INFO(c, ...) do { if (log_enabled(OVMS_LOG_INFO)) log_line(OVMS_LOG_INFO, c, __VA_ARGS__); } while (0)
#define LOG_DEBUG(c, ...) do { if (log_enabled(OVMS_LOG_DEBUG)) log_line(OVMS_LOG_DEBUG, c, __VA_ARGS__); } while (0)

/* ---- mailbox ------------------------------------------------------------------------------ */

enum mail_type { MAIL_HANDOFF = 1, MAIL_STORE, MAIL_DELIVER, MAIL_STOP, MAIL_CONFIG, MAIL_VEHICLE, MAIL_CALL };


typedef struct mail {
    struct mail *next;
    int type;
} mail_t;

/* A logged-in connection moving to its vehicle's home worker. */
typedef struct handoff {
    mail_t mail;
    int fd;
    uint64_t id;
    char role;
    uint8_t scheme;
    uint8_t apc_done;
    ovms_session_t session;
    char vehicle[33];
    uint64_t identity;                   /* of the vehicle record the login was checked against */
    peer_t peer;
    tls_conn_t *tls;                     /* moves with the connection, or NULL */
    ws_conn_t *ws;                       /* the same for a WebSocket's state */
    uint16_t welcome_rx, welcome_tx;     /* bytes, for utilisation */
    size_t nout;                         /* output not yet written (welcome) */
    size_t nin;                          /* input received but not yet processed */
    char bytes[];                        /* nout output bytes, then nin input bytes */
} handoff_t;

/* A vehicle was removed or its identity changed (from the store's writer). */
typedef struct vehicle_mail {
    mail_t mail;
    char id[33];
} vehicle_mail_t;

/* A new configuration snapshot (SIGHUP); the mail holds one reference. */
typedef struct config_mail {
    mail_t mail;
    const ovms_config_t *cfg;
} config_mail_t;

/* Work for another worker: run there with its worker (w NULL: the mail is
 * being disposed of, unrun; free what it holds). */
typedef struct call call_t;
struct call {
    mail_t mail;
    void (*run)(worker_t *w, call_t *c);
};

/* A line for a connection on another worker (group updates). */
typedef struct deliver {
    mail_t mail;
    uint64_t conn_id;
    size_t len;
    char msg[];
} deliver_t;

/* A store request made by a worker; the store hands it back to the worker's
 * mailbox, and `done` runs there. */
typedef struct sreq sreq_t;
typedef void (*sreq_cb)(sreq_t *r);
struct sreq {
    mail_t mail;
    ovms_store_req_t req;
    worker_t *w;
    conn_t *conn;            /* holds a reference while pending, or NULL */
    vehicle_t *vehicle;      /* holds a reference while pending, or NULL */
    sreq_cb done;
    char text[160];          /* e.g. the h ack, a C32 record type */
    int64_t arg;
};

/* A server command's reply being streamed: the rows, moved out of its
 * store request, and where it is. Owned by the connection. */
typedef struct reply {
    ovms_store_req_t req;    /* holds the rows */
    int cmd, next;
    char text[160];          /* the C32 record type */
} reply_t;

/* ---- connections (conn.c) ---------------------------------------------------------------- */

enum conn_state {
    CS_WELCOME = 1,   /* waiting for the first line (or AP-C answered) */
    CS_MOVING,        /* logged in; being handed to its home worker */
    CS_PARKED,        /* waiting (cache load, a lookup): input is held */
    CS_ACTIVE,        /* logged in on its home worker */
    CS_CLOSING
};

#define CF_APC_DONE   0x01   /* answered an AP-C already */
#define CF_IN_FLUSH   0x02   /* on the worker's flush list */
#define CF_READING    0x04
#define CF_GROUPS     0x08   /* has group subscriptions or entries */
#define CF_BUSY       0x10   /* a welcome step is pending (AP-C lookup, scheme 1) */
#define CF_REPLAYED   0x20   /* got its login burst */
#define CF_MOVED      0x40   /* handed to another worker: this object only closes */
#define CF_KILL       0x80   /* over its output limit: close at the next flush */
#define CF_THROTTLED  0x100  /* too many history writes pending: not reading */
#define CF_UNAUTH     0x200  /* counted as unauthenticated (guard) */
#define CF_ADDR_COUNT 0x400  /* ... and against its address */
#define CF_REPLYING   0x800  /* a long reply is streaming: input is held */
#define CF_QUOTA      0x1000 /* the car's history budget is spent: not reading */
#define CF_PEER       0x2000 /* an MP-S peer link on its way to replication/ */
#define CF_LAST       0x4000 /* close once the output is written */
/* what holds a connection's input back */
#define CF_HOLD_INPUT (CF_BUSY | CF_THROTTLED | CF_REPLYING | CF_QUOTA)

/* A car may have this many history records waiting for the disk before the
 * server stops reading from it (and resumes below half). */
#define HIST_WRITES_MAX 512

struct conn {
    uv_tcp_t tcp;
    worker_t *w;
    uint64_t id;
    link_t wlink;            /* worker's connections */
    link_t vlink;            /* vehicle's clients */
    conn_t *flush_next;
    vehicle_t *vehicle;
    ovms_session_t session;
    ovms_linesplit_t ls;
    char *out;               /* encoded output not yet handed to the kernel */
    uint32_t out_len, out_cap;
    uint32_t inflight;       /* bytes in a uv_write */
    uint32_t refs;
    uint32_t accepted, last_rx, last_tx, last_ping;   /* worker clock, seconds */
    uint8_t state;
    char role;               /* 'C' 'A' 'B'; 0 before login */
    uint8_t scheme;
    uint16_t flags;
    uint16_t hist_writes;    /* history records of this car not yet durable */
    char *held;              /* received bytes waiting while parked */
    uint32_t held_len;
    uint16_t welcome_rx, welcome_tx; /* welcome line bytes, for utilisation */
    handoff_t *moving;       /* the handoff being prepared (CS_MOVING) */
    tls_conn_t *tls;         /* on a TLS listener: out holds ciphertext */
    ws_conn_t *ws;           /* a WebSocket /apiv2 connection: lines travel in frames */
    reply_t *reply;          /* a server command's rows, streaming (CF_REPLYING) */
    peer_t peer;
};

conn_t *conn_new(worker_t *w);
/* Take over an accepted or handed-over socket. */
int conn_start(conn_t *c);
/* The same for a fresh accept: reads what already arrived first. */
int conn_start_accepted(conn_t *c);
void conn_close(conn_t *c, const char *why);
/* Its address from the socket (once). */
void conn_read_peer(conn_t *c);
/* It logged in (or is going): no longer counted as unauthenticated. */
void conn_authenticated(conn_t *c);
void conn_ref(conn_t *c);
void conn_unref(conn_t *c);
/* Bytes queued for the socket and not yet written. */
static inline size_t conn_backlog(const conn_t *c)
{
    return (size_t)c->out_len + c->inflight;
}
/* Queue a message (code + payload) for the client, encrypted with its session. */
void conn_send(conn_t *c, const char *msg, size_t len);
void conn_sendf(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Raw bytes (welcome lines); before encryption starts. */
int conn_send_raw(conn_t *c, const char *data, size_t len);
/* Bytes for the socket as they are (through TLS when the connection has it):
 * what a WebSocket frame is written with. */
int conn_emit(conn_t *c, const char *data, size_t len);
/* Stop reading and close once what is queued has been written (why: for the log). */
void conn_close_after_output(conn_t *c, const char *why);
/* Bytes already in wire form (TLS records, output carried by a handoff). */
void conn_queue_wire(conn_t *c, const char *data, size_t len);
void conn_flush_all(worker_t *w);
/* Process bytes: lines are split and handed to the welcome or message path. */
void conn_feed(conn_t *c, const char *data, size_t len);
void conn_park(conn_t *c);
void conn_unpark(conn_t *c);
/* "address:port" of the peer, into buf. */
const char *conn_peer_text(const conn_t *c, char *buf, size_t cap);
/* The address at the other end of a socket (family 0 when unknown). */
void peer_of_tcp(const uv_tcp_t *tcp, peer_t *out);
/* The peer's address alone (no port), into buf. */
const char *peer_addr_text(const peer_t *p, char *buf, size_t cap);
const char *conn_vehicle_id(const conn_t *c);

/* ---- workers (worker.c) ---------------------------------------------------------------------- */

#define RBUF_SIZE 65536

/* ---- metrics (metrics.c) ------------------------------------------------------------------- */

/* A latency histogram counted by one worker (buckets: ovms_hist_bounds). */
typedef struct metric_hist {
    uint64_t n[OVMS_HIST_BUCKETS + 1];
    uint64_t count, sum_us;
} metric_hist_t;

enum { METRIC_CMD_SENT, METRIC_CMD_FORWARDED, METRIC_CMD_REPLIED, METRIC_CMD_NOT_CONNECTED,
       METRIC_CMD_REFUSED, METRIC_CMD_TIMEOUT, METRIC_CMD_OUTCOMES };

/* What one worker counts; read by any worker's /metrics scrape. */
typedef struct worker_metrics {
    uint64_t rx[128], tx[128];       /* v2 messages by code */
    uint64_t logins[3];              /* car, app, batch */
    uint64_t login_failures;
    int64_t online[3];               /* logged in and attached now */
    uint64_t commands[METRIC_CMD_OUTCOMES];
    uint64_t http[6];                /* HTTP answers by status / 100 */
    int64_t bus_up;
    metric_hist_t relay, hist_ack;
} worker_metrics_t;

/* Single-writer updates (relaxed atomics, no lock). */
void metric_inc(uint64_t *counter);
void metric_gauge_add(int64_t *gauge, int64_t delta);
void metric_observe(metric_hist_t *h, double seconds);
double metric_mono(void);            /* monotonic seconds (the store's clock) */
int metric_role(char role);          /* 0 car, 1 app, 2 batch, -1 none */

struct worker {
    server_t *srv;
    const ovms_config_t *cfg;    /* this worker's snapshot: only its thread reads or swaps it */
    int index;
    pthread_t thread;
    uv_loop_t loop;
    uv_tcp_t listeners[OVMS_MAX_LISTEN * 4];
    int listen_fds[OVMS_MAX_LISTEN * 4];
    uint8_t listen_kind[OVMS_MAX_LISTEN * 4];   /* LISTEN_V2, _V2_TLS, _HTTP, _HTTPS */
    int nlisteners;
    uv_async_t wake;
    uv_check_t flusher;
    uv_timer_t sweep;
    uv_timer_t due_timer;    /* the due list's head: held stored messages to write */
    link_t due;              /* vehicles with held messages, by when they are due */
    pthread_mutex_t mail_mu;
    mail_t *mail_head, *mail_tail;
    int mail_closed;         /* under mail_mu: the worker takes no more mail */
    conn_t *flush_head;
    link_t conns;
    size_t nconns;
    link_t https;            /* HTTP connections (http.c) */
    link_t http_cmds;        /* HTTP commands queued for cars homed here (http_command.c) */
    size_t nhttp;
    uint64_t next_id;
    worker_metrics_t m;
    double rx_at;                /* monotonic: when the read being handled arrived */
    double relay_at;             /* the rx_at of the first relay this turn, or 0 */
    table_t vehicles;        /* the hub shard: vehicles homed here, by id */
    ovms_bus_t *bus;         /* the Redis bus for them, or NULL */
    /* history reads (C31/C32) waiting for replication to bring the car
     * node's records (nodebus.c), and their timer */
    struct read_wait *reads;
    int nreads;
    uv_timer_t reads_timer;
    table_t conn_ids;        /* connections by id, for deliveries */
    pool_t conn_pool, vehicle_pool;   /* their own slabs, away from the heap (pool.c) */
    int64_t pending_sreqs;
    int stopping;
    uint64_t last_util_flush;
    char rbuf[RBUF_SIZE];
    char tlsbuf[RBUF_SIZE];  /* plaintext out of TLS, for the line splitter */
    char scratch[2 * OVMS_B64_DECODED_MAX(OVMS_LINE_MAX) + 64];
};

enum { LISTEN_V2 = 0, LISTEN_V2_TLS, LISTEN_HTTP, LISTEN_HTTPS };

int worker_init(worker_t *w);      /* every worker, before any starts */
/* An HTTP connection of w has closed (http.c). */
void worker_http_closed(worker_t *w);
int worker_start(worker_t *w);     /* listen and run the loop's thread */
void worker_run(worker_t *w);      /* the loop, until the worker has stopped */
void worker_maybe_finish(worker_t *w);
/* Hand mail to a worker (any thread). -1 when it has stopped taking mail:
 * the caller still owns m (mail_dispose frees any kind). */
int worker_post(worker_t *w, mail_t *m);
void mail_dispose(server_t *srv, mail_t *m);
uint32_t worker_now(worker_t *w);               /* seconds since the loop began */
int64_t wall_now(void);                          /* unix seconds */
int64_t wall_now_ms(void);                       /* unix milliseconds */
worker_t *worker_home(server_t *srv, const char *vehicle);
conn_t *worker_find_conn(worker_t *w, uint64_t id);
void worker_track_conn(worker_t *w, conn_t *c);
void worker_untrack_conn(worker_t *w, conn_t *c);
/* A store request that completes on this worker. */
sreq_t *sreq_new(worker_t *w, conn_t *c, vehicle_t *v, sreq_cb done);
int sreq_submit(sreq_t *r);
void sreq_free(sreq_t *r);

/* ---- admission control (guard.c) ------------------------------------------------------------ */

enum { GUARD_OK = 0, GUARD_PENALIZED, GUARD_ADDRESS_FULL, GUARD_TOTAL_FULL };

guard_t *guard_new(size_t token_memory);
void guard_free(guard_t *g);
/* A new connection: GUARD_OK (and counted as unauthenticated; *counted
 * says whether against its address too), or why it must be closed. */
int guard_accept(guard_t *g, const ovms_config_t *cfg, const peer_t *p, int *counted);
/* It left the unauthenticated state (logged in, or closed). */
void guard_release(guard_t *g, const peer_t *p, int counted);
/* Welcomes time out sooner while this holds. */
int guard_under_pressure(guard_t *g, const ovms_config_t *cfg);
/* A failed login from p (for vehicle, or NULL when none is known). */
void guard_failure(guard_t *g, const ovms_config_t *cfg, const peer_t *p, const char *vehicle);
void guard_success(guard_t *g, const peer_t *p, const char *vehicle);
/* 0 when the vehicle is being guessed at and p never logged in to it. */
int guard_vehicle_allows(guard_t *g, const ovms_config_t *cfg, const peer_t *p, const char *vehicle);
/* Remembers the token; 0 when it was used for this vehicle before. */
int guard_token_fresh(guard_t *g, const char *vehicle, const char *token);
typedef struct guard_stats {
    int64_t unauthenticated, refused_penalty, refused_address, refused_total, refused_vehicle,
        replays;
} guard_stats_t;
void guard_stats(guard_t *g, guard_stats_t *out);

/* ---- the node (server.c) ------------------------------------------------------------------- */

struct server {
    const ovms_config_t *cfg;        /* the main thread's snapshot (workers have their own) */
    ovms_store_t *store;
    worker_t *workers;
    int nworkers;
    int workers_ready;               /* atomic: every mailbox exists */
    uv_loop_t main_loop;
    int64_t conn_count;              /* atomic */
    int64_t refused;                 /* atomic */
    uint64_t last_refusal_log;
    void *tls_ctx;                   /* SSL_CTX, when TLS listeners are configured */
    guard_t *guard;
    ovms_replication_t *repl;        /* NULL without peers; set and cleared under repl_mu */
    struct http_state *http;         /* sessions, rate limits (http_auth.c) */
    pthread_mutex_t repl_mu;         /* so that a commit's kick never meets a stopping one */
    char dummy_hash[129];            /* checked for unknown owners, so they take as long */
    /* vehicles whose car failed to authenticate (for the success alert) */
    pthread_mutex_t auth_mu;
    char (*auth_failed)[33];
    size_t nauth_failed;
};

extern const char ovms_server_version[];

/* Configuration snapshots are immutable and shared by reference: a copy
 * of src with refs references, and dropping one (the last frees it). */
const ovms_config_t *config_share(const ovms_config_t *src, int refs);
void config_unref(const ovms_config_t *cfg);

/* ---- login (login.c) ------------------------------------------------------------------------ */

void login_line(conn_t *c, ovms_str_t line);
/* A connection in CS_MOVING with its remaining input held: send it home. */
void login_hand_over(conn_t *c);
/* On the home worker: attach a handed-over connection to its vehicle. */
void login_arrive(worker_t *w, handoff_t *h);

/* ---- the vehicle hub (hub.c) ------------------------------------------------------------------ */

typedef struct cached_msg {
    char code;
    uint8_t paranoid;
    uint8_t live;            /* set by a live message while the cache loads */
    char *payload;           /* NUL-terminated */
    size_t len;
    char ptoken[65];
    int64_t received;
} cached_msg_t;

enum cache_state { CACHE_NONE = 0, CACHE_LOADING, CACHE_READY };

/* A token bucket kept as its debt (quota.c): zero is full. */
typedef struct bucket {
    float used;
    uint32_t at;             /* worker clock, 1/64 s */
} bucket_t;
enum { QUOTA_HISTORY, QUOTA_NOTIFY, QUOTA_PUSHSUB, QUOTA_SERVER_HISTORY, QUOTA_KINDS };

/* Who asked a command: a connection here, one on another node, or an HTTP
 * request (http_command.c). */
typedef struct http_cmd http_cmd_t;
typedef struct requester {
    conn_t *conn;
    http_cmd_t *http;
    uint64_t remote_id;      /* the connection's id on that node */
    char node[33];           /* "" when local */
} requester_t;

/* A command forwarded to the car's node, waiting for its reply. */
typedef struct remote_cmd {
    uint64_t conn_id;        /* the requester: a connection here, or an HTTP command's id */
    http_cmd_t *http;        /* an HTTP command (its answer goes there), or NULL */
    int cmd;
    uint32_t deadline;       /* worker clock, seconds */
} remote_cmd_t;

/* Another node's state for a vehicle (nodebus.c). */
typedef struct remote_node {
    char node[33];
    int napps;
    uint8_t car;
    uint32_t seen;           /* worker clock, seconds */
} remote_node_t;

struct vehicle {
    char id[33];
    uint8_t retired;         /* removed or changed: out of the table, going away */
    uint32_t spread;         /* from its id: its own moment for periodic writes (hub.c) */
    worker_t *w;
    uint64_t identity;       /* ovms_store_vehicle_identity() of the record its connections logged in with */
    int64_t incarnation;     /* the record's created: every data write is for this one */
    conn_t *car;
    link_t clients;          /* apps and batch clients, logged in */
    link_t waiting;          /* clients parked until the cache is loaded */
    struct cache_wait *cache_waits;   /* calls waiting for the cache too (hub_with_cache) */
    uint32_t cache_kept_until;        /* worker clock: a vehicle read over HTTP keeps its cache (and entry) */
    struct http_app *http_apps;       /* HTTP app entries, counted in napps (hub_http.c) */
    uint16_t http_cmds;               /* HTTP commands waiting for the bus here (keep it watched) */
    uint32_t cache_gen;               /* changes whenever the cache's content may have (HTTP memo) */
    struct states_wait *states_waits; /* HTTP calls waiting for the other nodes' states */
    int napps;
    int refs;                /* connections + pending store requests */
    /* command queue: requesters (conn NULL and no node: one that left) */
    requester_t *cmdq;
    int qhead, qlen, qcap;
    /* commands this node forwarded to the car's node (nodebus.c) */
    remote_cmd_t *rcmds;
    int nrcmds;
    /* stored messages, for replay */
    int cache_state;
    cached_msg_t *cache;
    int ncache, cache_cap;
    char *ptoken;            /* the car's paranoid token; NULL until it sends one */
    int64_t last_update;     /* newest stored message, or when provisioned */
    int64_t owner;
    /* stored messages waiting for the disk: one write in flight at a time,
     * newer messages of a code replace the waiting copy (latest wins) */
    cached_msg_t *dirty;
    int ndirty, dirty_cap;
    int msg_writes;
    uint64_t last_msg_write;     /* worker clock, ms */
    link_t dlink;            /* on the worker's due list while messages are held */
    /* utilisation not yet written */
    int64_t util[4];         /* car_rx car_tx app_rx app_tx */
    int64_t util_day;
    bucket_t quota[QUOTA_KINDS];   /* budgets of client-driven writes */
    /* across nodes (nodebus.c): watched on the bus, the others' states */
    uint8_t watched;
    uint8_t bus_pending;     /* BUS_STATES or BUS_SNAPSHOT: clients wait (nodebus.c) */
    uint8_t snapshot_seen;   /* the car's node sent its snapshot since we watch */
    uint8_t snapshot_due;    /* we owe the bus a snapshot once the cache is loaded */
    uint8_t car_z_due;       /* the car's first Z waits for the others' states, and ours stored */
    uint8_t state_stored;    /* Redis holds our state for the vehicle (since we watch it) */
    uint8_t bus_missed;      /* our bus link went down while watching: the next snapshot is replayed */
    uint8_t nremote;
    remote_node_t *remote;
    uint32_t state_sent;     /* worker clock, seconds */
    uint32_t snapshot_deadline;   /* worker clock, seconds */
    int64_t car_since;       /* when the local car logged in, unix ms */
};

enum { BUS_READY = 0, BUS_STATES, BUS_SNAPSHOT };

/* ---- HTTP app entries (hub_http.c) ---- */

/* Add or refresh the entry key (expires: worker clock seconds, 0 for
 * never); *first says whether the vehicle had no app anywhere before. */
int hub_http_app_add(vehicle_t *v, const char *key, uint32_t expires, int *first);
void hub_http_app_remove(vehicle_t *v, const char *key);
void hub_http_expire(worker_t *w);                      /* once a second */
void hub_http_forget(worker_t *w, const char *const *keys, int n);   /* sessions that ended */
void hub_http_drop(vehicle_t *v);                       /* the vehicle retires */
void hub_http_drop_all(worker_t *w);                    /* the worker stops */

/* ---- the hub across nodes (nodebus.c) ---------------------------------------------------------- */

int nodebus_open(worker_t *w);       /* when [redis] is configured */
void nodebus_close(worker_t *w);
void nodebus_tick(worker_t *w);      /* once a second */
/* After a local login or detach: watch or release the channel, say our state. */
void nodebus_sync(vehicle_t *v);
void nodebus_car_message(vehicle_t *v, const char *raw, size_t len);
void nodebus_car_login(vehicle_t *v);
/* Something relayed to every client as is (P, ET, an unsolicited c). */
void nodebus_relay(vehicle_t *v, const char *raw, size_t len);
/* Publish on the vehicle's channel (while it is watched). */
void nodebus_publish(vehicle_t *v, char type, const char *payload, size_t len);
/* nodebus_catchup.c: a snapshot that came (N), the car node's counter for
 * waiting history reads (w), and freeing those reads when the bus closes. */
void nodebus_take_snapshot(vehicle_t *v, const char *payload, size_t len);
void nodebus_reads_target(vehicle_t *v, const char *from, const char *payload, size_t len);
void nodebus_reads_free(worker_t *w);
/* On the car's node, when the cache is ready: the car's stored messages
 * and paranoid token for the other nodes' watchers (hub_want_snapshot). */
void nodebus_snapshot(vehicle_t *v);
/* A command for a car on another node: 1 when forwarded (its reply, or an
 * error at the timeout, will come), 0 when the car is on no node. */
int nodebus_command(vehicle_t *v, conn_t *c, int cmd, const char *raw, size_t len);
/* The car's reply for a requester on another node. */
void nodebus_reply(vehicle_t *v, const requester_t *to, const char *raw, size_t len);
/* C31/C32 from a client here while the car is on another node: 1 when it
 * waits until this node holds the car node's records up to now (input is
 * held meanwhile; cmd_server_run runs it), 0 to answer it at once. */
int nodebus_defer_read(vehicle_t *v, conn_t *c, ovms_str_t payload);
/* Run a server command (30-32) for the connection now (commands.c). */
void cmd_server_run(conn_t *c, ovms_str_t payload);
/* On the car's node: a forwarded command (commands.c). */
void cmd_from_remote(vehicle_t *v, const char *node, uint64_t conn_id, const char *raw, size_t len);
/* Apps of every node (Z to the car), and whether the car is on any node. */
int hub_apps_total(const vehicle_t *v);
int hub_car_anywhere(const vehicle_t *v);
/* Clients waiting for the stored messages and the others' states get
 * their login burst once both are there. */
void hub_release_waiting(vehicle_t *v);
/* fn(v, arg) once v's stored messages are in its cache, with any not yet
 * written: now, or when the load completes (in the order asked). */
typedef void (*hub_cache_fn)(vehicle_t *v, void *arg);
void hub_with_cache(vehicle_t *v, hub_cache_fn fn, void *arg);
/* Once a second: caches kept for HTTP reads that were not read again go
 * (all: every kept one, the worker stops). */
void hub_cache_expire(worker_t *w, int all);
/* w's vehicles for which want() holds, each referenced (the caller unrefs and
 * frees the list): for sweeps whose work may free entries and shift the table. */
vehicle_t **hub_collect(worker_t *w, int (*want)(const vehicle_t *v, const void *arg), const void *arg,
                        size_t *n);
/* The entry homed on w for id, NULL when none (or retired). */
vehicle_t *hub_find(worker_t *w, const char *id);

/* Find or create the entry for a login checked against identity; NULL when
 * the vehicle is gone or changed since (an entry for an older identity is
 * retired, its connections closed). */
vehicle_t *hub_get(worker_t *w, const char *id, uint64_t identity);
/* The store says the vehicle was removed or changed: close everything of it. */
void hub_vehicle_changed(worker_t *w, const char *id);
void hub_ref(vehicle_t *v);
void hub_unref(vehicle_t *v);
void hub_car_login(vehicle_t *v, conn_t *c);
void hub_client_login(vehicle_t *v, conn_t *c);
void hub_detach(conn_t *c);
/* Send a message to every logged-in client (apps and batch). */
void hub_to_clients(vehicle_t *v, const char *msg, size_t len);
/* The current paranoid token ("" when none) and setting it. */
const char *hub_ptoken(const vehicle_t *v);
int hub_set_ptoken(vehicle_t *v, ovms_str_t token);
void hub_cache_put(vehicle_t *v, char code, const char *payload, size_t len, int paranoid,
                   int64_t when);
/* The cached stored message of a code, NULL when none (or no cache). */
const cached_msg_t *hub_cache_find(const vehicle_t *v, char code);
/* The bus asks for the car's snapshot: nodebus_snapshot() runs now, or once
 * the stored messages are loaded. */
void hub_want_snapshot(vehicle_t *v);
/* Store a car message as the vehicle's latest of its code (coalesced). */
void hub_store_message(vehicle_t *v, char code, const char *payload, size_t len, int paranoid,
                       int64_t when);
/* A car's history write was submitted / completed (back-pressure). */
void conn_hist_begin(conn_t *c);
void conn_hist_end(conn_t *c);
/* Its history budget is spent: stop reading; resume once it refills. */
void conn_quota_pause(conn_t *c);
void conn_quota_check(conn_t *c);
void hub_count(vehicle_t *v, int slot, size_t bytes);   /* utilisation */
void hub_flush_util(vehicle_t *v);
/* Periodic and final writes: utilisation, and (when `all`, at stop) every
 * stored message still held back by the write interval. */
void hub_flush_all(worker_t *w, int all);
/* The due timer: write the held messages whose interval has passed. */
void hub_write_due(worker_t *w);
enum { UTIL_CAR_RX, UTIL_CAR_TX, UTIL_APP_RX, UTIL_APP_TX };

/* ---- budgets (quota.c) ----------------------------------------------------------------------- */

/* 1 and one token taken, or 0 when the vehicle's budget of that kind is spent. */
int quota_take(vehicle_t *v, int kind);
int quota_available(vehicle_t *v, int kind);
/* Every budget back to full: the entry may go. */
int quota_settled(vehicle_t *v);
/* A historical record of the node's own (notifications, server logs,
 * written and forgotten): for that incarnation of the vehicle (0: any),
 * at most half of history_max_records, so the car's own records keep room. */
void hub_own_record(worker_t *w, const char *vehicle, int64_t incarnation, const char *type,
                    int64_t recno, int64_t lifetime, const char *data, size_t len);
/* A line for the vehicle's *-OVM-ServerLogs history (when log history is on
 * and the server-history budget allows). */
void hub_server_log(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- messages (car.c, client.c, commands.c, groups.c, push.c) --------------------------------- */

void car_message(conn_t *c, const ovms_msg_t *m);
void client_message(conn_t *c, const ovms_msg_t *m);
void cmd_from_client(conn_t *c, ovms_str_t payload, int paranoid, const char *raw, size_t rawlen);
void cmd_reply_from_car(conn_t *car, ovms_str_t payload, int paranoid, const char *raw, size_t rawlen);
void cmd_forget(vehicle_t *v, conn_t *c);
/* A streaming reply: more rows once output drained, or its end (also when
 * the connection closes). */
void cmd_reply_continue(conn_t *c);
void cmd_reply_end(conn_t *c);
void cmd_clear(vehicle_t *v);
/* Join the car's requester FIFO (-1 out of memory). */
int cmd_queue_push(vehicle_t *v, const requester_t *who);
/* http_command.c, on the home worker: a reply routed to an HTTP requester
 * (done: it left the queue), the car gone, the deadline sweep, stopping. */
/* Commands 30-32, answered by the server (commands.c): the store read
 * (type: C32's record type, copied out; OVMS_EINVAL without one), the
 * reply line k of its rows, and the answer when there are none. */
int cmd_server_prep(ovms_store_req_t *req, const char *vehicle, const ovms_command_t *cmd, char *type,
                    size_t cap);
void cmd_server_line(int cmd, const ovms_store_rows_t *rows, const char *type, int k, char *buf, size_t cap);
const char *cmd_server_none(int cmd);
void http_cmd_reply(http_cmd_t *h, ovms_str_t payload, int paranoid, int done);
void http_cmd_car_gone(http_cmd_t *h);
void http_cmd_sweep(worker_t *w);
void http_cmd_stop_all(worker_t *w);
/* The other nodes' states of v are known: parked HTTP commands go on. */
void http_cmd_states_known(vehicle_t *v);
/* An HTTP command to the car on another node: 1 sent, 0 cannot (no bus,
 * car nowhere), -1 too many waiting. Replies come to http_cmd_reply. */
int nodebus_command_http(vehicle_t *v, http_cmd_t *h, uint64_t id, int cmd, const char *raw, size_t len);
/* The HTTP command's forwarded entry goes (answered or timed out). */
void nodebus_forget_http(vehicle_t *v, http_cmd_t *h);
/* The counts the other nodes keep in Redis for a vehicle not watched here
 * (the nodes' own fields; this one does not publish for it): cb once, on
 * w's loop (0, 0 when Redis cannot say). -1: not asked (no Redis). */
typedef void (*nodebus_counts_cb)(void *ctx, int apps, int car);
int nodebus_remote_counts(worker_t *w, const char *vehicle, nodebus_counts_cb cb, void *ctx);
/* fn(v, arg) once the other nodes' states of v are known (now, when they are). */
void nodebus_when_states_known(vehicle_t *v, void (*fn)(vehicle_t *v, void *arg), void *arg);
/* 1 while the other nodes' states of v are being read (clients wait). */
int nodebus_states_pending(const vehicle_t *v);
void groups_init(void);
void groups_update(conn_t *car, ovms_str_t payload);
void groups_subscribe(conn_t *c, ovms_str_t payload);
void groups_conn_gone(conn_t *c);
/* From the bus: a group's message, and our subscription to a group confirmed. */
void groups_bus_message(worker_t *w, const char *group, char type, const char *from,
                        const char *payload, size_t len);
void groups_bus_watching(worker_t *w, const char *group, int again);
void groups_bus_up(worker_t *w);
void groups_stats(int64_t *ngroups, int64_t *subscriptions, int64_t *members);
void push_from(conn_t *c, const ovms_msg_t *m);
void push_subscribe(conn_t *c, ovms_str_t payload);
/* incarnation: the vehicle's, or 0 when the caller has no hub entry */
void push_notify(worker_t *w, const char *vehicle, int64_t incarnation, char type, const char *text);

/* ---- WebSocket /apiv2 (ws.c) ------------------------------------------------------------------ */

/* The first line "GET /apiv2[/] HTTP/x": 0 and c->ws set, or -1 (close it). */
int ws_begin(conn_t *c, ovms_str_t line);
/* The upgrade's header lines until the empty one, which answers 101. */
void ws_handshake_line(conn_t *c, ovms_str_t line);
int ws_is_open(const ws_conn_t *ws);
/* 1 once, right after the 101: the rest of that input is frames. */
int ws_take_rest(ws_conn_t *ws);
/* Frames from the socket: their lines go to conn_feed. */
void ws_input(conn_t *c, const char *data, size_t len);
/* Lines (CR LF separated) out, one text frame each. */
int ws_send_lines(conn_t *c, const char *data, size_t len);
void ws_free(ws_conn_t *ws);

/* ---- TLS (tls.c) --------------------------------------------------------------------------------- */

int tls_init(server_t *srv, char *err, size_t errlen);
/* SIGHUP: the certificate and key files again; 1 replaced, 0 no TLS, -1 kept (err says why). */
int tls_reload(server_t *srv, char *err, size_t errlen);
void tls_free(server_t *srv);
tls_conn_t *tls_conn_new(server_t *srv);
void tls_conn_free(tls_conn_t *t);
const char *tls_conn_error(const tls_conn_t *t);
/* Received ciphertext in; plaintext out (at most cap; call again with no
 * input while it fills cap), and handshake bytes to send appended to
 * *wire. 0 fine, 1 the peer closed TLS, -1 error. */
int tls_receive(tls_conn_t *t, const char *data, size_t len, char *plain, size_t cap,
                size_t *plain_len, char **wire, size_t *wire_len);
/* Plaintext in; ciphertext appended to *wire. Returns the bytes taken. */
int tls_send(tls_conn_t *t, const char *data, size_t len, char **wire, size_t *wire_len);

#endif
