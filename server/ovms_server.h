/*
 * ovms_server.h -- ovmsd's public header: its configuration and the call
 * that runs a node. main.c is a thin wrapper around these; tests and
 * benchmarks start the real binary.
 *
 * Threading: ovms_server_run blocks the calling thread (the main thread,
 * which handles signals) until SIGTERM/SIGINT; it starts the worker
 * threads and the store's threads itself.
 */
#ifndef OVMS_SERVER_H
#define OVMS_SERVER_H

#include <stddef.h>

#include "ovms_repl.h"
#include <stdint.h>

#define OVMS_MAX_LISTEN 8

typedef struct ovms_listen {
    char host[64];
    int port;
} ovms_listen_t;

typedef enum ovms_log_level {
    OVMS_LOG_ERROR = 0,
    OVMS_LOG_WARN,
    OVMS_LOG_INFO,
    OVMS_LOG_DEBUG
} ovms_log_level_t;

typedef struct ovms_config {
    int argc;                        /* the command line, kept so that a reload re-applies it */
    char **argv;
    char config_file[1024];          /* "" when none */
    char node_id[33];                /* "" : from the database / host name */
    ovms_listen_t listen[OVMS_MAX_LISTEN];
    int nlisten;
    ovms_listen_t tls_listen[OVMS_MAX_LISTEN];
    int ntls_listen;
    char tls_cert[1024], tls_key[1024];
    ovms_listen_t http_listen[OVMS_MAX_LISTEN];   /* the HTTP API (HTTP-API.md) */
    int nhttp_listen;
    ovms_listen_t https_listen[OVMS_MAX_LISTEN];  /* the same over TLS (tls_cert, tls_key) */
    int nhttps_listen;
    int timeout_api;                 /* HTTP sessions: seconds after their last use */
    /* the HTTP rate limit per client address (HTTP-API.md §4) */
    int rl_burst, rl_permin, rl_max, rl_expire, rl_delay;
    char rl_exempt[256];             /* addresses not limited, space separated */
    char metrics_allow[256];         /* addresses that may read /metrics; "" none */
    char ws_origins[512];            /* [v2] ws_origins: Origins a WebSocket upgrade may come from; "" any */
    char mqtt_superuser[65];         /* [mqtt] superuser for /mqapi (HTTP-API.md §11); "" none */
    int workers;                     /* 0: number of cores */
    char db_path[1024];
    int db_sync_normal;
    int message_interval_ms;         /* at most one stored-message write per vehicle per this */
    /* timeouts, seconds */
    int welcome_timeout, car_idle, app_idle, batch_idle, ping_after, ping_interval;
    int util_flush;                  /* seconds between utilisation flushes */
    int expire_interval;             /* seconds between history housekeeping runs */
    /* limits */
    int max_connections;
    size_t output_limit;             /* bytes queued for one connection */
    int max_pending_commands;        /* per car */
    int max_groups_per_conn;         /* groups an app subscribes to, or a car is in */
    int max_unauth;                  /* unauthenticated connections, in total */
    int max_unauth_per_address;      /* ... from one source address */
    int welcome_under_pressure;      /* welcome timeout past half of max_unauth, seconds */
    /* failed logins (guard.c): seconds of penalty per failure, and above
     * how many seconds an address (or a vehicle, for addresses it does not
     * know) is refused */
    int login_penalty, login_penalty_threshold, login_penalty_max;
    int vehicle_penalty, vehicle_penalty_threshold;
    int token_replay;                /* 1: refuse a client token seen before for the vehicle */
    int token_memory;                /* tokens remembered */
    /* budgets per vehicle (quota.c): a rate and a burst each */
    int history_per_minute, history_burst;           /* h and H from the car */
    int history_max_records;         /* stored per vehicle; the node's own records up to half */
    int history_max_days;            /* longest lifetime a car may give a record */
    int notifications_per_minute, notification_burst;
    int push_subscriptions_per_hour, push_subscription_burst, max_push_subscriptions;
    int server_history_per_minute, server_history_burst;   /* log history records */
    int log_history;                 /* seconds messages and server logs are kept as history; 0 off */
    int notification_days;           /* *-Log-Notification lifetime */
    ovms_log_level_t log_level;
    /* replication (MP-S): the peers, and their link timeouts, seconds */
    ovms_peer_conf_t peers[OVMS_MAX_PEERS];
    int npeers;
    int peer_keepalive, peer_idle;
    int command_timeout;             /* seconds, for commands to a car on another node */
    /* the Redis bus: "" for none */
    char redis[300], redis_password[129], redis_prefix[64];
} ovms_config_t;

/* Defaults, then the config file (--config FILE), then command-line flags.
 * Returns 0, 1 when --help or --version was printed, or 2 with one line
 * explaining the problem in err (the caller exits with that code). */
int ovms_config_load(ovms_config_t *cfg, int argc, char **argv, char *err, size_t errlen);
/* A reload: next is built exactly as at start (defaults, the file, then
 * the same command-line flags, which still win), and settings that only
 * take effect at start are kept from cur. Returns 0 (note then names any
 * such setting whose new value waits for a restart, or is ""), or -1 with
 * the reason in note. */
int ovms_config_reload(const ovms_config_t *cur, ovms_config_t *next, char *note, size_t notelen);

/* Run a node until SIGTERM or SIGINT; SIGHUP reloads. Returns the exit
 * status (0 after a clean shutdown). */
int ovms_server_run(ovms_config_t *cfg);

#endif
