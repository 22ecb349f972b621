/*
 * fleet_scenario.c -- what a fleet run does: a named scenario's defaults,
 * settings by name (one table serves the command line and scenario files),
 * and the bounds every run keeps.
 *
 * A run is always bounded: a fleet size, a duration, timeouts for coming up
 * and draining, all with upper limits, so that a typo cannot leave a load
 * generator running against a node. Targets must be on the loopback range
 * unless the operator says otherwise (allow-remote): a load test pointed at
 * a production server by mistake is an outage.
 */
#include "fleet.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
    [FLEET_LOGIN_STORM] = "login-storm", [FLEET_IDLE] = "idle",         [FLEET_RELAY] = "relay",
    [FLEET_COMMANDS] = "commands",       [FLEET_HISTORY] = "history",   [FLEET_CROSS_NODE] = "cross-node",
    [FLEET_MIXED] = "mixed",             [FLEET_CHURN] = "churn",
};

const char *fleet_kind_name(fleet_kind_t k)
{
    return k <= FLEET_CHURN ? kind_names[k] : "?";
}

static void defaults(fleet_scenario_t *s, fleet_kind_t k)
{
    memset(s, 0, sizeof *s);
    s->kind = k;
    snprintf(s->name, sizeof s->name, "%s", kind_names[k]);
    s->cars = 100;
    s->apps_per_car = 1;
    s->rate = 10;
    s->window = 8;
    s->duration = 10;
    s->active = 1;
    s->lifetime = 5;
    s->hold = 12;
    s->connect_timeout = 60;
    s->drain_timeout = 10;
    s->progress = -1;
    s->connect_window = 24;      /* per process: 2 x 24 under a node's 64 per address */
    snprintf(s->server, sizeof s->server, "127.0.0.1:6867");
    snprintf(s->ids, sizeof s->ids, "FLEET%%06d");
    snprintf(s->password, sizeof s->password, "FLEETPW");
    switch (k) {
    case FLEET_LOGIN_STORM: s->cars = 200; s->apps_per_car = 0; break;
    case FLEET_IDLE: s->cars = 1000; s->apps_per_car = 0; s->duration = 0; break;
    case FLEET_COMMANDS: s->rate = 0; s->window = 1; break;
    case FLEET_HISTORY: s->apps_per_car = 0; s->rate = 0; break;
    case FLEET_MIXED:
        /* a day in a fleet: most cars parked, a tenth watched while they
         * drive or charge, reporting every second, commanded now and then,
         * history trickling in from everyone */
        s->cars = 1000;
        s->active = 0.1;
        s->rate = 1;
        s->command_rate = 0.05;
        s->history_rate = 0.01;
        s->duration = 60;
        break;
    case FLEET_CHURN: s->rate = 2; s->duration = 20; break;
    default: break;
    }
}

int fleet_scenario_init(fleet_scenario_t *s, const char *name, char *err, size_t errlen)
{
    for (int k = 0; k <= FLEET_CHURN; k++)
        if (!strcmp(name, kind_names[k])) {
            defaults(s, (fleet_kind_t)k);
            return 0;
        }
    snprintf(err, errlen, "unknown scenario '%s' (login-storm, idle, relay, commands, history, "
             "cross-node, mixed, churn)", name);
    return -1;
}

/* ---- settings by name ---------------------------------------------------------------------- */

enum { T_INT, T_NUM, T_STR, T_FLAG };

#define F(field) offsetof(fleet_scenario_t, field)
static const struct setting {
    const char *key;
    int type;
    size_t off, size;
    double min, max;
} settings[] = {
    { "cars", T_INT, F(cars), 0, 1, FLEET_MAX_CARS },
    { "apps-per-car", T_INT, F(apps_per_car), 0, 0, FLEET_MAX_APPS_PER_CAR },
    { "rate", T_NUM, F(rate), 0, 0, 100000 },
    { "window", T_INT, F(window), 0, 1, 40 },
    { "duration", T_NUM, F(duration), 0, 0, FLEET_MAX_DURATION },
    { "active", T_NUM, F(active), 0, 0, 1 },
    { "command-rate", T_NUM, F(command_rate), 0, 0, 1000 },
    { "history-rate", T_NUM, F(history_rate), 0, 0, 1000 },
    { "lifetime", T_NUM, F(lifetime), 0, 0.2, 86400 },
    { "hold", T_NUM, F(hold), 0, 0, 3600 },
    { "connect-timeout", T_NUM, F(connect_timeout), 0, 1, 3600 },
    { "drain-timeout", T_NUM, F(drain_timeout), 0, 0.1, 600 },
    { "procs", T_INT, F(procs), 0, 0, FLEET_MAX_PROCS },
    { "connect-window", T_INT, F(connect_window), 0, 0, 100000 },
    { "first", T_INT, F(first), 0, 0, 99999999 },
    { "server", T_STR, F(server), sizeof(((fleet_scenario_t *)0)->server), 0, 0 },
    { "dns", T_STR, F(dns), sizeof(((fleet_scenario_t *)0)->dns), 0, 0 },
    { "db", T_STR, F(db), sizeof(((fleet_scenario_t *)0)->db), 0, 0 },
    { "ids", T_STR, F(ids), sizeof(((fleet_scenario_t *)0)->ids), 0, 0 },
    { "password", T_STR, F(password), sizeof(((fleet_scenario_t *)0)->password), 0, 0 },
    { "plot", T_STR, F(plot), sizeof(((fleet_scenario_t *)0)->plot), 0, 0 },
    { "allow-remote", T_FLAG, F(allow_remote), 0, 0, 1 },
    { "json", T_FLAG, F(json), 0, 0, 1 },
    { "progress", T_FLAG, F(progress), 0, 0, 1 },
};
#undef F

static int same_key(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_')))
            return 0;
    return *a == *b;
}

static int parse_flag(const char *v, int *out)
{
    if (!strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on"))
        *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

int fleet_scenario_set(fleet_scenario_t *s, const char *key, const char *value, char *err,
                       size_t errlen)
{
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        const struct setting *t = &settings[i];
        if (!same_key(key, t->key))
            continue;
        char *end;
        void *at = (char *)s + t->off;
        errno = 0;
        if (t->type == T_STR) {
            if (strlen(value) >= t->size) {
                snprintf(err, errlen, "%s: longer than %zu characters", t->key, t->size - 1);
                return -1;
            }
            snprintf((char *)at, t->size, "%s", value);
            return 0;
        }
        if (t->type == T_FLAG) {
            if (parse_flag(value, (int *)at) < 0) {
                snprintf(err, errlen, "%s: expected yes or no, not '%s'", t->key, value);
                return -1;
            }
            return 0;
        }
        double v = strtod(value, &end);
        if (errno || end == value || *end || v < t->min || v > t->max ||
            (t->type == T_INT && v != (double)(long)v)) {
            snprintf(err, errlen, "%s: expected %s from %g to %g, not '%s'", t->key,
                     t->type == T_INT ? "a whole number" : "a number", t->min, t->max, value);
            return -1;
        }
        if (t->type == T_INT)
            *(int *)at = (int)v;
        else
            *(double *)at = v;
        return 0;
    }
    snprintf(err, errlen, "unknown setting '%s'", key);
    return -1;
}

/* ---- scenario files -------------------------------------------------------------------------- */

typedef struct load_ctx {
    fleet_scenario_t *s;
    char *err;
    size_t errlen;
    int settings_seen, failed;
} load_ctx_t;

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
    load_ctx_t *c = user;
    if (c->failed)
        return 0;
    if (section[0] && strcmp(section, "scenario") != 0) {
        snprintf(c->err, c->errlen, "unknown section [%s] (only [scenario])", section);
        c->failed = 1;
        return 0;
    }
    if (same_key(key, "scenario") || same_key(key, "name")) {
        if (c->settings_seen) {
            snprintf(c->err, c->errlen, "%s must come before the other settings", key);
            c->failed = 1;
            return 0;
        }
        if (fleet_scenario_init(c->s, value, c->err, c->errlen) < 0)
            c->failed = 1;
        return !c->failed;
    }
    c->settings_seen = 1;
    if (fleet_scenario_set(c->s, key, value, c->err, c->errlen) < 0)
        c->failed = 1;
    return !c->failed;
}

int fleet_scenario_load(fleet_scenario_t *s, const char *path, char *err, size_t errlen)
{
    char inner[256] = "";
    load_ctx_t c = { s, inner, sizeof inner, 0, 0 };
    int rc = ini_parse(path, on_ini, &c);
    if (rc == -1) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s line %d: %s", path, rc, inner[0] ? inner : "not key = value");
        return -1;
    }
    return 0;
}

/* ---- bounds -------------------------------------------------------------------------------- */

int fleet_scenario_closed_loop(const fleet_scenario_t *s)
{
    switch (s->kind) {
    case FLEET_COMMANDS: return s->command_rate <= 0;
    case FLEET_HISTORY: return s->history_rate <= 0;
    case FLEET_RELAY:
    case FLEET_CROSS_NODE: return s->rate <= 0;
    default: return 0;
    }
}

static int id_pattern_ok(const char *p)
{
    int conversions = 0;
    for (const char *c = p; *c; c++) {
        if (*c != '%') {
            if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
                return 0;
            continue;
        }
        if (c[1] == '%') {
            c++;
            continue;
        }
        c++;
        while (*c == '0' || isdigit((unsigned char)*c))
            c++;
        if (*c != 'd')
            return 0;
        conversions++;
    }
    return conversions == 1;
}

int fleet_scenario_check(const fleet_scenario_t *s, char *err, size_t errlen)
{
    int apps = s->kind == FLEET_LOGIN_STORM || s->kind == FLEET_HISTORY ? 0 : s->apps_per_car;
    if (!id_pattern_ok(s->ids)) {
        snprintf(err, errlen, "ids: a vehicle id pattern with one %%d (letters, digits, - _ .), "
                 "not '%s'", s->ids);
        return -1;
    }
    char probe[64];
    if (snprintf(probe, sizeof probe, s->ids, s->first + s->cars) > 32) {
        snprintf(err, errlen, "ids: vehicle ids longer than 32 characters");
        return -1;
    }
    if (!s->password[0]) {
        snprintf(err, errlen, "password: the vehicles' password must not be empty");
        return -1;
    }
    if (!s->server[0]) {
        snprintf(err, errlen, "server: no target (HOST:PORT[,HOST:PORT...])");
        return -1;
    }
    if ((double)s->cars * (1 + apps) > (double)FLEET_MAX_PROCS * 19000) {
        snprintf(err, errlen, "%d cars with %d apps each is more connections than %d processes "
                 "can hold", s->cars, apps, FLEET_MAX_PROCS);
        return -1;
    }
    if (s->kind == FLEET_IDLE ? s->hold <= 0 : s->duration <= 0) {
        snprintf(err, errlen, "%s: a run needs a %s above 0", s->name,
                 s->kind == FLEET_IDLE ? "hold" : "duration");
        return -1;
    }
    if ((s->kind == FLEET_COMMANDS || s->kind == FLEET_CROSS_NODE || s->kind == FLEET_CHURN ||
         s->kind == FLEET_RELAY || s->kind == FLEET_MIXED) && s->apps_per_car < 1) {
        snprintf(err, errlen, "%s: needs apps (apps-per-car at least 1)", s->name);
        return -1;
    }
    if (s->kind == FLEET_CHURN && s->rate <= 0) {
        snprintf(err, errlen, "churn: needs a rate above 0 (cars report while they come and go)");
        return -1;
    }
    return 0;
}

int fleet_addr_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

/* ---- placement ---------------------------------------------------------------------------- */

int fleet_car_node(const fleet_scenario_t *s, int car, int nnodes)
{
    (void)s;
    return nnodes > 0 ? car % nnodes : 0;
}

int fleet_app_node(const fleet_scenario_t *s, int car, int app, int nnodes)
{
    int home = fleet_car_node(s, car, nnodes);
    if (nnodes < 2 || s->kind != FLEET_CROSS_NODE)
        return home;
    return (home + 1 + app % (nnodes - 1)) % nnodes;   /* every other node, never the car's */
}
