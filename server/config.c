/*
 * config.c -- ovmsd's configuration: defaults, an INI file read with inih
 * (sections in the spirit of the reference's ovms_server.conf), then
 * command-line flags, which override the file.
 *
 * Every setting is one row of KEYS: its section, its name, its type and
 * where it lives. The file uses "name = value" in [section]; the command
 * line uses --name-with-dashes VALUE (listen addresses may repeat). A bad
 * file or flag is one line naming the file, line and key, and exit code 2.
 * Threading: main thread only.
 */
#include "server_int.h"

#include <ctype.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum ktype { K_STR, K_INT, K_SIZE, K_LISTEN, K_TLS_LISTEN, K_HTTP_LISTEN, K_HTTPS_LISTEN, K_LEVEL, K_SYNC, K_PEER,
             K_PEM };

typedef struct key {
    const char *section, *name;
    enum ktype type;
    size_t offset, size;            /* size: for strings */
    long min, max;                  /* for numbers */
    int reloadable;
} key_t_;

#define F(field) offsetof(ovms_config_t, field), sizeof(((ovms_config_t *)0)->field)
static const key_t_ KEYS[] = {
    { "server", "node_id", K_STR, F(node_id), 0, 0, 0 },
    { "server", "listen", K_LISTEN, F(listen), 0, 0, 0 },
    { "server", "tls_listen", K_TLS_LISTEN, F(tls_listen), 0, 0, 0 },
    { "server", "tls_cert", K_STR, F(tls_cert), 0, 0, 0 },
    { "server", "tls_key", K_STR, F(tls_key), 0, 0, 0 },
    /* the reference's keys (HTTP-API.md §13): one PEM with certificate and key; this node has
     * one certificate for all its TLS listeners */
    { "httpapi", "sslcrt", K_PEM, F(tls_cert), 0, 0, 0 },
    { "v2", "sslcrt", K_PEM, F(tls_cert), 0, 0, 0 },
    { "server", "workers", K_INT, F(workers), 0, 64, 0 },
    { "server", "timeout_api", K_INT, F(timeout_api), 10, 86400, 1 },
    { "httpapi", "http", K_HTTP_LISTEN, F(http_listen), 0, 0, 0 },
    { "httpapi", "https", K_HTTPS_LISTEN, F(https_listen), 0, 0, 0 },
    { "httpapi", "ratelimit_http_burst", K_INT, F(rl_burst), 1, 1000000, 1 },
    { "httpapi", "ratelimit_http_permin", K_INT, F(rl_permin), 0, 1000000, 1 },
    { "httpapi", "ratelimit_http_max", K_INT, F(rl_max), 1, 1000000, 1 },
    { "httpapi", "ratelimit_http_expire", K_INT, F(rl_expire), 1, 86400, 1 },
    { "httpapi", "ratelimit_http_delay", K_INT, F(rl_delay), 0, 600, 1 },
    { "httpapi", "ratelimit_http_exempt", K_STR, F(rl_exempt), 0, 0, 1 },
    { "httpapi", "metrics_allow", K_STR, F(metrics_allow), 0, 0, 1 },
    { "v2", "ws_origins", K_STR, F(ws_origins), 0, 0, 1 },
    { "mqtt", "superuser", K_STR, F(mqtt_superuser), 0, 0, 1 },
    { "server", "peer", K_PEER, F(peers), 0, 0, 0 },
    { "db", "path", K_STR, F(db_path), 0, 0, 0 },
    { "redis", "redis", K_STR, F(redis), 0, 0, 0 },
    { "redis", "redis_password", K_STR, F(redis_password), 0, 0, 0 },
    { "redis", "redis_prefix", K_STR, F(redis_prefix), 0, 0, 0 },
    { "db", "sync", K_SYNC, F(db_sync_normal), 0, 0, 0 },
    { "db", "message_interval_ms", K_INT, F(message_interval_ms), 0, 60000, 1 },
    { "timeouts", "welcome", K_INT, F(welcome_timeout), 1, 86400, 1 },
    { "timeouts", "car_idle", K_INT, F(car_idle), 1, 86400, 1 },
    { "timeouts", "app_idle", K_INT, F(app_idle), 1, 86400, 1 },
    { "timeouts", "batch_idle", K_INT, F(batch_idle), 1, 86400, 1 },
    { "timeouts", "ping_after", K_INT, F(ping_after), 1, 86400, 1 },
    { "timeouts", "ping_interval", K_INT, F(ping_interval), 1, 86400, 1 },
    { "timeouts", "util_flush", K_INT, F(util_flush), 1, 3600, 1 },
    { "timeouts", "expire_interval", K_INT, F(expire_interval), 1, 86400, 0 },
    { "timeouts", "welcome_under_pressure", K_INT, F(welcome_under_pressure), 1, 86400, 1 },
    { "timeouts", "peer_keepalive", K_INT, F(peer_keepalive), 1, 86400, 0 },
    { "timeouts", "peer_idle", K_INT, F(peer_idle), 2, 86400, 0 },
    { "timeouts", "command_timeout", K_INT, F(command_timeout), 1, 3600, 1 },
    { "httpapi", "command_timeout", K_INT, F(command_timeout), 1, 3600, 1 },   /* HTTP-API.md §13 */
    { "limits", "max_connections", K_INT, F(max_connections), 1, 1000000, 1 },
    { "limits", "output_limit", K_SIZE, F(output_limit), 4096, 1L << 30, 1 },
    { "limits", "max_pending_commands", K_INT, F(max_pending_commands), 1, 10000, 1 },
    { "limits", "max_groups_per_connection", K_INT, F(max_groups_per_conn), 1, 100000, 1 },
    { "limits", "max_unauthenticated", K_INT, F(max_unauth), 1, 1000000, 1 },
    { "limits", "max_unauthenticated_per_address", K_INT, F(max_unauth_per_address), 1, 1000000, 1 },
    { "security", "login_penalty", K_INT, F(login_penalty), 0, 3600, 1 },
    { "security", "login_penalty_threshold", K_INT, F(login_penalty_threshold), 0, 86400, 1 },
    { "security", "login_penalty_max", K_INT, F(login_penalty_max), 1, 86400, 1 },
    { "security", "vehicle_login_penalty", K_INT, F(vehicle_penalty), 0, 3600, 1 },
    { "security", "vehicle_login_penalty_threshold", K_INT, F(vehicle_penalty_threshold), 0, 86400, 1 },
    { "security", "token_replay", K_INT, F(token_replay), 0, 1, 1 },
    { "security", "token_memory", K_INT, F(token_memory), 1024, 16777216, 0 },
    { "push", "notification_days", K_INT, F(notification_days), 1, 3650, 1 },
    { "log", "level", K_LEVEL, F(log_level), 0, 0, 1 },
    { "log", "history", K_INT, F(log_history), 0, 3650 * 86400L, 1 },
    { "quota", "history_per_minute", K_INT, F(history_per_minute), 1, 1000000, 1 },
    { "quota", "history_burst", K_INT, F(history_burst), 1, 1000000, 1 },
    { "quota", "history_max_records", K_INT, F(history_max_records), 10, 100000000, 1 },
    { "quota", "history_max_days", K_INT, F(history_max_days), 1, 36500, 1 },
    { "quota", "notifications_per_minute", K_INT, F(notifications_per_minute), 1, 1000000, 1 },
    { "quota", "notification_burst", K_INT, F(notification_burst), 1, 1000000, 1 },
    { "quota", "push_subscriptions_per_hour", K_INT, F(push_subscriptions_per_hour), 1, 1000000, 1 },
    { "quota", "push_subscription_burst", K_INT, F(push_subscription_burst), 1, 1000000, 1 },
    { "quota", "max_push_subscriptions", K_INT, F(max_push_subscriptions), 1, 1000000, 1 },
    { "quota", "server_history_per_minute", K_INT, F(server_history_per_minute), 1, 1000000, 1 },
    { "quota", "server_history_burst", K_INT, F(server_history_burst), 1, 1000000, 1 },
};
#define NKEYS (sizeof KEYS / sizeof KEYS[0])

static const char USAGE[] =
    "usage: ovmsd [--config FILE] [--db PATH] [--listen HOST:PORT]... [options]\n"
    "\n"
    "Runs one OVMS v2 server node in the foreground until SIGTERM or SIGINT.\n"
    "SIGHUP re-reads the file and applies the flags again (flags still win); the log\n"
    "level, timeouts and limits change at once, the rest at the next start. SIGUSR1\n"
    "logs one line of figures (connections, groups, refused logins).\n"
    "\n"
    "Every setting of the config file can be given as a flag, overriding it:\n"
    "  --node-id ID, --server-id ID   this node's server id (default: the database's, or the\n"
    "                            host name); 1-32 of A-Z 0-9 _ -\n"
    "  --peer ID:SECRET[@HOST:PORT]   a replication peer (repeatable): its server id, the\n"
    "                            secret both sides share (1-64 characters, no commas or\n"
    "                            spaces; in this flag no @ either), and where to dial it\n"
    "                            (omit when it dials us); peer\n"
    "                            links arrive on the ordinary --listen ports. In the file:\n"
    "                            one [peer ID] section each, with secret = and address =\n"
    "  --peer-keepalive N --peer-idle N   peer link ping and timeout, seconds (600, 3600)\n"
    "  --command-timeout N       a command sent to the car's node over the bus that has no\n"
    "                            reply after N seconds is answered c<cmd>,1,no reply from\n"
    "                            the vehicle (30)\n"
    "  --redis HOST:PORT|unix:PATH   the Redis bus for live traffic between nodes (relay, Z,\n"
    "                            presence); none by default. --redis-password PW,\n"
    "                            --redis-prefix P (\"ovms:\"). In the file: [redis] redis = ...\n"
    "  --listen HOST:PORT        plain listener, repeatable (default 0.0.0.0:6867)\n"
    "  --tls-listen HOST:PORT    TLS listener, repeatable (needs --tls-cert and --tls-key)\n"
    "  --tls-cert FILE, --tls-key FILE   (or --sslcrt PEM, [httpapi]/[v2] sslcrt: both in one\n"
    "                            file; default conf/ovms_server.pem)\n"
    "  --http HOST:PORT          HTTP API listener, repeatable (default 0.0.0.0:6868 when no\n"
    "                            listener of any kind is configured; none otherwise)\n"
    "  --https HOST:PORT         the HTTP API over TLS, repeatable (needs --tls-cert, --tls-key)\n"
    "  --timeout-api N           HTTP sessions end N seconds after their last use (300)\n"
    "  --ratelimit-http-burst N --ratelimit-http-permin N --ratelimit-http-max N\n"
    "  --ratelimit-http-expire N --ratelimit-http-delay N   requests per client address\n"
    "                            (120 at once, then 60 a minute up to 240; forgotten after\n"
    "                            300 s; refusals held 20 s); --ratelimit-http-exempt \"ADDR ...\"\n"
    "                            (\"127.0.0.1 ::1\")\n"
    "  --superuser NAME          the MQTT superuser that /mqapi/superuser and /mqapi/acl know\n"
    "  --metrics-allow \"ADDR ...\" addresses that may read GET /metrics (\"127.0.0.1 ::1\";\n"
    "                            \"\" turns it off)\n"
    "  --ws-origins \"ORIGIN ...\" Origin headers a WebSocket /apiv2 upgrade may carry (any)\n"
    "  --workers N               worker threads (default: number of cores)\n"
    "  --db PATH                 the node's SQLite database (created when missing)\n"
    "  --sync full|normal        fsync every commit (full, default) or at checkpoints\n"
    "  --message-interval-ms N   write a vehicle's stored messages at most this often (1000)\n"
    "  --welcome N --car-idle N --app-idle N --batch-idle N   timeouts, seconds\n"
    "  --ping-after N --ping-interval N   server ping to idle cars, seconds\n"
    "  --util-flush N --expire-interval N\n"
    "  --max-connections N       refuse connections beyond this\n"
    "  --output-limit BYTES      close a connection whose unsent output exceeds this\n"
    "  --max-pending-commands N  per car\n"
    "  --max-groups-per-connection N  groups an app joins or a car is in (16)\n"
    "  --max-unauthenticated N, --max-unauthenticated-per-address N\n"
    "                            connections that have not logged in yet (1024; 64 per address)\n"
    "  --welcome-under-pressure N  welcome timeout past half of those, seconds (5)\n"
    "  --login-penalty N --login-penalty-threshold N --login-penalty-max N\n"
    "                            seconds per failed login; an address over the threshold is\n"
    "                            refused (3, 15, 600)\n"
    "  --vehicle-login-penalty N --vehicle-login-penalty-threshold N\n"
    "                            the same per vehicle, for addresses it does not know (3, 60)\n"
    "  --token-replay 0|1        refuse a client token a vehicle has seen before (1)\n"
    "  --token-memory N          client tokens remembered (262144)\n"
    "  --notification-days N     how long push notifications are kept in history\n"
    "  --history N               seconds stored messages and server log lines are kept as\n"
    "                            history, as the reference does (86400; 0: off)\n"
    "  Budgets per vehicle ([quota]; see docs/operations.md):\n"
    "  --history-per-minute N --history-burst N   h and H from the car (120, 1000)\n"
    "  --history-max-records N   records stored per vehicle (100000)\n"
    "  --history-max-days N      longest lifetime of a car's record (365)\n"
    "  --notifications-per-minute N --notification-burst N   stored P (6, 20)\n"
    "  --push-subscriptions-per-hour N --push-subscription-burst N --max-push-subscriptions N\n"
    "                            (60, 10, 32)\n"
    "  --server-history-per-minute N --server-history-burst N   log history records (60, 120)\n"
    "  --level error|warn|info|debug   log level (also --log-level)\n"
    "  --check-config            check the file and flags, print what would run, and exit\n"
    "                            (0, or 2 with the one line that says what is wrong)\n"
    "  --help, --version\n"
    "\n"
    "A commented sample configuration is deploy/ovmsd.conf.\n";

static void defaults(ovms_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->welcome_timeout = 30;
    cfg->car_idle = 960;
    cfg->app_idle = 1200;
    cfg->batch_idle = 300;
    cfg->ping_after = 900;
    cfg->ping_interval = 300;
    cfg->util_flush = 60;
    cfg->message_interval_ms = 1000;
    cfg->expire_interval = 60;
    cfg->max_connections = 19000;
    cfg->output_limit = 1 << 20;
    cfg->max_pending_commands = 64;
    cfg->max_groups_per_conn = 16;
    cfg->max_unauth = 1024;
    cfg->max_unauth_per_address = 64;
    cfg->welcome_under_pressure = 5;
    cfg->login_penalty = 3;
    cfg->login_penalty_threshold = 15;
    cfg->login_penalty_max = 600;
    cfg->vehicle_penalty = 3;
    cfg->vehicle_penalty_threshold = 60;
    cfg->token_replay = 1;
    cfg->token_memory = 262144;
    cfg->history_per_minute = 120;
    cfg->history_burst = 1000;
    cfg->history_max_records = 100000;
    cfg->history_max_days = 365;
    cfg->notifications_per_minute = 6;
    cfg->notification_burst = 20;
    cfg->push_subscriptions_per_hour = 60;
    cfg->push_subscription_burst = 10;
    cfg->max_push_subscriptions = 32;
    cfg->server_history_per_minute = 60;
    cfg->server_history_burst = 120;
    cfg->log_history = 86400;            /* the reference's default: a day */
    cfg->notification_days = 30;
    cfg->log_level = OVMS_LOG_INFO;
    cfg->peer_keepalive = 600;
    cfg->peer_idle = 3600;
    cfg->command_timeout = 30;
    cfg->timeout_api = 300;              /* the reference's conf.default */
    cfg->rl_burst = 120;
    cfg->rl_permin = 60;
    cfg->rl_max = 240;
    cfg->rl_expire = 300;
    cfg->rl_delay = 20;
    snprintf(cfg->rl_exempt, sizeof cfg->rl_exempt, "127.0.0.1 ::1");
    snprintf(cfg->metrics_allow, sizeof cfg->metrics_allow, "127.0.0.1 ::1");
    snprintf(cfg->redis_prefix, sizeof cfg->redis_prefix, "ovms:");
}

/* "host:port", "[v6]:port" or ":port" / "port" (all interfaces). */
static int parse_listen(const char *v, ovms_listen_t *out)
{
    const char *colon = strrchr(v, ':');
    const char *host = v;
    size_t hlen;
    char *end;

    if (!colon) {
        host = "0.0.0.0";
        hlen = strlen(host);
        colon = v - 1;
    } else {
        hlen = (size_t)(colon - v);
        if (hlen >= 2 && v[0] == '[' && v[hlen - 1] == ']') {
            host = v + 1;
            hlen -= 2;
        }
        if (hlen == 0) {
            host = "0.0.0.0";
            hlen = strlen(host);
        }
    }
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 1 || port > 65535 || hlen >= sizeof out->host)
        return -1;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = (int)port;
    return 0;
}

static int parse_level(const char *v, ovms_log_level_t *out)
{
    static const char *names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(v, names[i])) {
            *out = (ovms_log_level_t)i;
            return 0;
        }
    return -1;
}

/* A peer by id (upper-cased), added when new; NULL when the list is full. */
static ovms_peer_conf_t *peer_slot(ovms_config_t *cfg, const char *id, size_t len)
{
    char up[33];
    if (len == 0 || len >= sizeof up)
        return NULL;
    for (size_t i = 0; i < len; i++)
        up[i] = (char)toupper((unsigned char)id[i]);
    up[len] = '\0';
    for (int i = 0; i < cfg->npeers; i++)
        if (!strcmp(cfg->peers[i].id, up))
            return &cfg->peers[i];
    if (cfg->npeers == OVMS_MAX_PEERS)
        return NULL;
    ovms_peer_conf_t *p = &cfg->peers[cfg->npeers++];
    memset(p, 0, sizeof *p);
    memcpy(p->id, up, len + 1);
    return p;
}

static int peer_secret(ovms_peer_conf_t *p, const char *v, size_t len)
{
    if (len == 0 || len >= sizeof p->secret || memchr(v, ',', len) || memchr(v, ' ', len))
        return -1;
    memcpy(p->secret, v, len);
    p->secret[len] = '\0';
    return 0;
}

static int peer_address(ovms_peer_conf_t *p, const char *v)
{
    ovms_listen_t where;
    if (parse_listen(v, &where) < 0 || !strchr(v, ':'))
        return -1;
    snprintf(p->host, sizeof p->host, "%s", where.host);
    p->port = where.port;
    return 0;
}

/* "ID:SECRET[@HOST:PORT]" */
static int parse_peer(ovms_config_t *cfg, const char *v)
{
    const char *colon = strchr(v, ':'), *at = strrchr(v, '@');
    if (!colon || ovms_serverid_check((ovms_str_t){ v, (size_t)(colon - v) }) < 0)
        return -1;
    if (at && at < colon)
        at = NULL;
    ovms_peer_conf_t *p = peer_slot(cfg, v, (size_t)(colon - v));
    if (!p)
        return -1;
    const char *secret = colon + 1;
    size_t slen = at ? (size_t)(at - secret) : strlen(secret);
    p->host[0] = '\0';
    p->port = 0;
    return peer_secret(p, secret, slen) < 0 || (at && peer_address(p, at + 1) < 0) ? -1 : 0;
}

/* The listen and peer lists are replaced by the first value from each source. */
typedef struct source {
    ovms_config_t *cfg;
    int listen_seen, tls_seen, http_seen, https_seen, peers_seen;
    int v2_given, http_given;        /* in any source: the HTTP default applies only without both */
    char err[512];
    const char *where;
} source_t;

static int set_value(source_t *src, const key_t_ *k, const char *v, int line)
{
    char *at = (char *)src->cfg + k->offset, *end;
    long n;

    switch (k->type) {
    case K_STR:
        if (strlen(v) >= k->size)
            goto bad;
        snprintf(at, k->size, "%s", v);
        return 0;
    case K_PEM:
        if (strlen(v) >= sizeof src->cfg->tls_cert || strlen(v) >= sizeof src->cfg->tls_key)
            goto bad;
        snprintf(src->cfg->tls_cert, sizeof src->cfg->tls_cert, "%s", v);
        snprintf(src->cfg->tls_key, sizeof src->cfg->tls_key, "%s", v);
        return 0;
    case K_INT:
    case K_SIZE:
        n = strtol(v, &end, 10);
        if (*end || end == v || n < k->min || n > k->max)
            goto bad;
        if (k->type == K_INT)
            *(int *)at = (int)n;
        else
            *(size_t *)at = (size_t)n;
        return 0;
    case K_LISTEN:
    case K_TLS_LISTEN:
    case K_HTTP_LISTEN:
    case K_HTTPS_LISTEN: {
        int *count = k->type == K_LISTEN ? &src->cfg->nlisten
                     : k->type == K_TLS_LISTEN ? &src->cfg->ntls_listen
                     : k->type == K_HTTP_LISTEN ? &src->cfg->nhttp_listen : &src->cfg->nhttps_listen;
        int *seen = k->type == K_LISTEN ? &src->listen_seen
                    : k->type == K_TLS_LISTEN ? &src->tls_seen
                    : k->type == K_HTTP_LISTEN ? &src->http_seen : &src->https_seen;
        ovms_listen_t *list = (ovms_listen_t *)at;
        if (!*seen) {
            *count = 0;
            *seen = 1;
        }
        *(k->type == K_HTTP_LISTEN ? &src->http_given : &src->v2_given) = 1;   /* https counts as v2 here */
        /* a file value may list several, comma or space separated */
        char copy[512], *save = NULL;
        snprintf(copy, sizeof copy, "%s", v);
        for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
            if (*count == OVMS_MAX_LISTEN || parse_listen(tok, &list[*count]) < 0)
                goto bad;
            (*count)++;
        }
        return 0;
    }
    case K_LEVEL:
        if (parse_level(v, (ovms_log_level_t *)at) < 0)
            goto bad;
        return 0;
    case K_PEER:
        if (!src->peers_seen) {
            src->cfg->npeers = 0;
            src->peers_seen = 1;
        }
        if (parse_peer(src->cfg, v) < 0)
            goto bad;
        return 0;
    case K_SYNC:
        if (!strcmp(v, "full"))
            *(int *)at = 0;
        else if (!strcmp(v, "normal"))
            *(int *)at = 1;
        else
            goto bad;
        return 0;
    }
bad:
    if (line)
        snprintf(src->err, sizeof src->err, "%s:%d: bad value '%s' for %s in [%s]", src->where,
                 line, v, k->name, k->section);
    else {
        char flag[64];
        snprintf(flag, sizeof flag, "%s", k->name);
        for (char *p = flag; *p; p++)
            *p = *p == '_' ? '-' : *p;          /* the flag's spelling */
        snprintf(src->err, sizeof src->err, "bad value '%s' for --%s", v, flag);
    }
    return -1;
}

static const key_t_ *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(KEYS[i].section, section) && !strcmp(KEYS[i].name, name))
            return &KEYS[i];
    return NULL;
}

/* [peer ID] with secret = and address = */
static int peer_section(source_t *src, const char *section, const char *name, const char *value)
{
    const char *id = section + 5;
    ovms_peer_conf_t *p = NULL;
    int ok = ovms_serverid_check(ovms_str_c(id)) == 0 && (p = peer_slot(src->cfg, id, strlen(id)));
    if (ok && !strcmp(name, "secret"))
        ok = peer_secret(p, value, strlen(value)) == 0;
    else if (ok && !strcmp(name, "address"))
        ok = peer_address(p, value) == 0;
    else if (ok) {
        snprintf(src->err, sizeof src->err, "%s: unknown setting '%s' in [%s]", src->where, name,
                 section);
        return 0;
    }
    if (!ok)
        snprintf(src->err, sizeof src->err, "%s:-1: bad value '%s' for %s in [%s]", src->where,
                 value, name, section);
    return ok;
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
    source_t *src = user;
    if (src->err[0])
        return 0;
    if (!strncmp(section, "peer ", 5)) {
        src->peers_seen = 1;
        return peer_section(src, section, name, value);
    }
    const key_t_ *k = find_key(section, name);
    if (!k) {
        snprintf(src->err, sizeof src->err, "%s: unknown setting '%s' in [%s]", src->where, name,
                 section);
        return 0;
    }
    return set_value(src, k, value, -1) == 0;
}

static int read_file(source_t *src, const char *file)
{
    src->where = file;
    int rc = ini_parse(file, on_ini_value, src);
    if (rc == -1) {
        snprintf(src->err, sizeof src->err, "cannot read config file %.400s", file);
        return -1;
    }
    if (rc > 0 && !src->err[0])
        snprintf(src->err, sizeof src->err, "%.400s:%d: syntax error", file, rc);
    if (rc != 0 || src->err[0]) {
        /* inih reports the line of the first error; put it in the message */
        char *p = strstr(src->err, ":-1:");
        if (p && rc > 0) {
            char fixed[512];
            snprintf(fixed, sizeof fixed, "%.*s:%d:%s", (int)(p - src->err), src->err, rc, p + 4);
            snprintf(src->err, sizeof src->err, "%s", fixed);
        }
        return -1;
    }
    return 0;
}

/* --name-with-dashes -> the key whose name has underscores. */
static const key_t_ *flag_key(const char *flag)
{
    char name[64];
    size_t i;
    if (strncmp(flag, "--", 2) != 0)
        return NULL;
    for (i = 0; flag[2 + i] && i + 1 < sizeof name; i++)
        name[i] = flag[2 + i] == '-' ? '_' : flag[2 + i];
    name[i] = '\0';
    if (!strcmp(name, "log_level"))
        strcpy(name, "level");
    if (!strcmp(name, "db"))
        strcpy(name, "path");
    if (!strcmp(name, "server_id"))
        strcpy(name, "node_id");
    for (size_t k = 0; k < NKEYS; k++)
        if (!strcmp(KEYS[k].name, name))
            return &KEYS[k];
    return NULL;
}

static int validate(const ovms_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg->db_path[0]) {
        snprintf(err, errlen, "no database given: use --db PATH or [db] path");
        return -1;
    }
    if (cfg->node_id[0] && ovms_serverid_check(ovms_str_c(cfg->node_id)) < 0) {
        snprintf(err, errlen, "node id '%s' must be 1-32 of A-Z 0-9 _ -", cfg->node_id);
        return -1;
    }
    for (int i = 0; i < cfg->npeers; i++) {
        if (!cfg->peers[i].secret[0]) {
            snprintf(err, errlen, "peer %s has no secret", cfg->peers[i].id);
            return -1;
        }
        if (!strcasecmp(cfg->peers[i].id, cfg->node_id)) {
            snprintf(err, errlen, "peer %s is this node's own id", cfg->peers[i].id);
            return -1;
        }
    }
    if (cfg->redis[0] && strncmp(cfg->redis, "unix:", 5) != 0) {
        ovms_listen_t where;
        if (!strchr(cfg->redis, ':') || parse_listen(cfg->redis, &where) < 0) {
            snprintf(err, errlen, "redis '%s' must be HOST:PORT or unix:PATH", cfg->redis);
            return -1;
        }
    }
    if ((cfg->ntls_listen || cfg->nhttps_listen) && (!cfg->tls_cert[0] || !cfg->tls_key[0])) {
        snprintf(err, errlen, "tls_listen needs tls_cert and tls_key");
        return -1;
    }
    if (cfg->nlisten + cfg->ntls_listen == 0) {
        snprintf(err, errlen, "nothing to listen on");
        return -1;
    }
    return 0;
}

int ovms_config_load(ovms_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    source_t src = { .cfg = cfg };

    defaults(cfg);
    cfg->argc = argc;
    cfg->argv = argv;
    cfg->nlisten = 1;
    parse_listen("0.0.0.0:6867", &cfg->listen[0]);
    cfg->nhttp_listen = 1;               /* as the reference: 6868, unless listeners are given */
    parse_listen("0.0.0.0:6868", &cfg->http_listen[0]);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("ovmsd %s\n", OVMS_VERSION);
            return 1;
        }
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a file");
                return 2;
            }
            snprintf(cfg->config_file, sizeof cfg->config_file, "%s", argv[++i]);
        }
    }
    if (cfg->config_file[0] && read_file(&src, cfg->config_file) < 0) {
        snprintf(err, errlen, "%s", src.err);
        return 2;
    }
    src.listen_seen = src.tls_seen = src.http_seen = src.https_seen = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        const key_t_ *k = flag_key(argv[i]);
        if (!k) {
            snprintf(err, errlen, "unknown option %s (ovmsd --help lists them)", argv[i]);
            return 2;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "%s needs a value", argv[i]);
            return 2;
        }
        if (set_value(&src, k, argv[++i], 0) < 0) {
            snprintf(err, errlen, "%s", src.err);
            return 2;
        }
    }
    if (src.v2_given && !src.http_given)
        cfg->nhttp_listen = 0;           /* listeners chosen: HTTP only where asked for */
    if ((cfg->ntls_listen || cfg->nhttps_listen) && !cfg->tls_cert[0] && !cfg->tls_key[0]) {
        /* the reference's default: conf/ovms_server.pem, certificate and key in one file */
        snprintf(cfg->tls_cert, sizeof cfg->tls_cert, "conf/ovms_server.pem");
        snprintf(cfg->tls_key, sizeof cfg->tls_key, "conf/ovms_server.pem");
    }
    if (validate(cfg, err, errlen) < 0)
        return 2;
    return 0;
}

int ovms_config_reload(const ovms_config_t *cur, ovms_config_t *next, char *note, size_t notelen)
{
    size_t n = 0;

    note[0] = '\0';
    if (ovms_config_load(next, cur->argc, cur->argv, note, notelen) != 0)
        return -1;
    for (size_t k = 0; k < NKEYS; k++) {
        const key_t_ *key = &KEYS[k];
        char *to = (char *)next + key->offset;
        const char *from = (const char *)cur + key->offset;
        if (key->reloadable || !memcmp(to, from, key->size))
            continue;
        if (n < notelen)
            n += (size_t)snprintf(note + n, notelen - n, "%s%s", n ? ", " : "", key->name);
        memcpy(to, from, key->size);
    }
    next->nlisten = cur->nlisten;                 /* they go with the listen lists */
    next->ntls_listen = cur->ntls_listen;
    next->nhttp_listen = cur->nhttp_listen;
    next->nhttps_listen = cur->nhttps_listen;
    next->npeers = cur->npeers;                   /* and the peers */
    return 0;
}
