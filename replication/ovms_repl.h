/*
 * ovms_repl.h -- replication/: the durable half of an ovmsd cluster, MP-S
 * peer links carrying R and r records (PROTOCOL, "Server-to-server
 * (MP-S)"). The one public header of this folder.
 *
 * What it does: dials the peers that have an address (jittered exponential
 * backoff, for ever), takes over the links peers dial in (the server checks
 * the welcome and hands the socket over), sends each peer every record it
 * does not hold yet (resync, then live, from the store's tables, which are
 * the replication log), and applies what peers send through the store's
 * merge (storage/apply.c). See docs/replication.md.
 *
 * Threading: everything runs on one thread of its own with its own libuv
 * loop, so a resync of millions of records or a slow peer never touches the
 * worker loops that serve cars and apps; reads go to the store's bulk
 * reader, applies to its writer. The functions below may be called from
 * any thread. replication/ talks back to the server only through the
 * callbacks it is given.
 */
#ifndef OVMS_REPL_H
#define OVMS_REPL_H

#include <stddef.h>

#include "ovms_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OVMS_MAX_PEERS 32

typedef struct ovms_peer_conf {
    char id[33];                /* the peer's server id (upper case) */
    char secret[65];            /* shared with that peer */
    char host[256];             /* to dial; "" when the peer dials us */
    int port;
} ovms_peer_conf_t;

/* Log levels, as the server's: 0 error, 1 warn, 2 info, 3 debug. */
typedef void (*ovms_replication_log_cb)(void *ctx, int level, const char *text);

typedef struct ovms_replication_config {
    const char *server_id;      /* this node (the store's node id) */
    ovms_peer_conf_t peers[OVMS_MAX_PEERS];
    int npeers;
    ovms_store_t *store;
    const char *status_path;    /* rewritten every second for `ovms-admin cluster status`; NULL: none */
    int keepalive_s;            /* send A after this long without sending (600) */
    int idle_timeout_s;         /* close a link silent this long (3600) */
    int handshake_timeout_s;    /* a link must be up within this (30) */
    int backoff_max_ms;         /* longest wait between dials (30000) */
    int caught_up_after_s;      /* a new database has its own old records after a link was up this long (30) */
    ovms_replication_log_cb log;
    void *ctx;
} ovms_replication_config_t;

typedef struct ovms_replication ovms_replication_t;

/* Start the thread and begin dialing. 0 or an OVMS_E* code. */
int ovms_replication_start(ovms_replication_t **r, const ovms_replication_config_t *cfg);
/* Close every link and stop the thread. The store must still be open. */
void ovms_replication_stop(ovms_replication_t *r);

/* The store committed something: look for records to send (cheap; any
 * thread, including the store's writer). */
void ovms_replication_kick(ovms_replication_t *r);

/* For the server's welcome check of an MP-S login: 0 when id names a
 * configured peer (case-insensitive) and digest is base64(HMAC-MD5(that
 * peer's secret, token)); OVMS_ENOTFOUND for an unknown peer, OVMS_EDIGEST
 * for a wrong digest. */
int ovms_replication_check(ovms_replication_t *r, ovms_str_t id, ovms_str_t token,
                           ovms_str_t digest);

/* Take over a checked link: fd (owned by replication from now on, also on
 * failure), the dialer's id, token and watermarks (the rest of its welcome
 * line), bytes already read after the welcome, and the address for logs. */
int ovms_replication_adopt(ovms_replication_t *r, int fd, ovms_str_t id, ovms_str_t token,
                           ovms_str_t watermarks, const char *held, size_t nheld,
                           const char *addr);

/* The replication figures in Prometheus text (per peer: link up, records
 * in and out; per origin: records and seconds behind), as of the last
 * second; "" without replication. Any thread. */
void ovms_replication_metrics(char *buf, size_t cap);

/* One line for the server's statistics: "peers: N up of M, R records in, S out". */
void ovms_replication_summary(ovms_replication_t *r, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* The Redis bus (live traffic between nodes): per-vehicle channels         */
/* ------------------------------------------------------------------------ */

/* One bus per libuv loop (ovmsd: per worker, for the vehicles homed
 * there): a publishing and a subscribing Redis connection. Topics are
 * vehicles and groups: a vehicle's channel is "<prefix>{<VEHICLE>}", a
 * group's "<prefix>g{<GROUP>}" (the hash tag lets Redis Cluster shard by
 * vehicle or group); a message on it is "<type><from node>|<payload>". A node's
 * own messages come back to it and are not delivered. Watches are
 * counted; the channel is subscribed while any is held and subscribed
 * again after Redis comes back, after which on_state(up) is called, so the
 * caller can bring remote watchers up to date. Threading: the loop's. */
typedef struct ovms_bus ovms_bus_t;

typedef struct ovms_bus_config {
    char redis[300];            /* "HOST:PORT" or "unix:PATH" */
    char password[129];         /* AUTH when set */
    char prefix[64];            /* channel and key prefix, e.g. "ovms:" */
    char node_id[33];
    void (*on_message)(void *ctx, int kind, const char *name, char type, const char *from,
                       const char *payload, size_t len);
    void (*on_state)(void *ctx, int up, const char *why);   /* once per change */
    /* Redis confirmed a subscription: messages on the channel reach us
     * from now on. again: 1 for a resubscription after Redis came back. */
    void (*on_watching)(void *ctx, int kind, const char *name, int again);
    void *ctx;
} ovms_bus_config_t;

typedef struct uv_loop_s uv_loop_t;
int ovms_bus_open(ovms_bus_t **bus, uv_loop_t *loop, const ovms_bus_config_t *cfg);
/* Closes both connections; freed once the loop has run their close callbacks. */
void ovms_bus_close(ovms_bus_t *bus);
int ovms_bus_up(const ovms_bus_t *bus);
enum { OVMS_BUS_VEHICLE = 0, OVMS_BUS_GROUP = 1 };     /* topic kinds */
/* Hold / release a watch on a topic's channel (names upper case: vehicle
 * ids of at most 32 characters, group names of at most 64). */
int ovms_bus_watch_topic(ovms_bus_t *bus, int kind, const char *name);
void ovms_bus_unwatch_topic(ovms_bus_t *bus, int kind, const char *name);
/* 1 once Redis confirmed the watch's subscription (on_watching was called)
 * and while it holds: messages on the topic reach us. */
int ovms_bus_watching(ovms_bus_t *bus, int kind, const char *name);
int ovms_bus_watch(ovms_bus_t *bus, const char *vehicle);     /* a vehicle's */
void ovms_bus_unwatch(ovms_bus_t *bus, const char *vehicle);
/* Publish (batched per loop turn). OVMS_ECLOSED while Redis is away: the
 * message is not sent (pub/sub is at most once). */
int ovms_bus_publish_topic(ovms_bus_t *bus, int kind, const char *name, char type,
                           const char *payload, size_t len);
int ovms_bus_publish(ovms_bus_t *bus, const char *vehicle, char type, const char *payload,
                     size_t len);
/* Topics watched now. */
size_t ovms_bus_watched(const ovms_bus_t *bus);

/* A vehicle's state by node, kept in Redis as the hash "<prefix>{V}:nodes"
 * (field: node id), so that a node starting to watch a vehicle learns in
 * one round trip where its car is and how many apps each node has. put
 * sets our field ("" removes it) and keeps the hash for 60 s; readers
 * judge freshness from the value. get calls cb once: ok 0 when Redis could
 * not answer, else the fields of every node, ours included. put's stored,
 * if given, is called once Redis has applied it (ok 1), or could not (0):
 * a get that any node sends after that sees it. */
typedef void (*ovms_bus_stored_cb)(void *ctx, const char *vehicle, int ok);
int ovms_bus_state_put(ovms_bus_t *bus, const char *vehicle, const char *value, ovms_bus_stored_cb stored,
                       void *ctx);
typedef void (*ovms_bus_states_cb)(void *ctx, const char *vehicle, int ok, int n,
                                   const char *const *nodes, const char *const *values);
int ovms_bus_state_get(ovms_bus_t *bus, const char *vehicle, ovms_bus_states_cb cb, void *ctx);

/* Small values shared by the nodes with a lifetime (the HTTP API's
 * sessions), under "<prefix><key>". set stores value for ttl seconds; get
 * calls cb once with the value (NULL: none; ok 0: Redis could not answer)
 * and, when ttl > 0, gives the key ttl seconds again (GETEX: a sliding
 * lifetime); touch only does the latter; del removes it. */
typedef void (*ovms_bus_value_cb)(void *ctx, int ok, const char *value, size_t len);
int ovms_bus_kv_set(ovms_bus_t *bus, const char *key, const char *value, size_t len, int ttl);
int ovms_bus_kv_get(ovms_bus_t *bus, const char *key, int ttl, ovms_bus_value_cb cb, void *ctx);
int ovms_bus_kv_touch(ovms_bus_t *bus, const char *key, int ttl);
int ovms_bus_kv_del(ovms_bus_t *bus, const char *key);

#ifdef __cplusplus
}
#endif
#endif /* OVMS_REPL_H */
