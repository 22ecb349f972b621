/*
 * app_main.c -- ovms-app: the app role on the command line, for people and
 * scripts.
 *
 *   ovms-app --server HOST[:PORT] --vehicle ID --password PW ACTION ...
 *
 * status and location show what the server replays at login (the latest
 * of each car message and how old it is); watch goes on to show live
 * updates, reconnecting when the connection drops; command sends a command
 * by name or number and waits for the whole reply; history reads the
 * server's historical records (commands 31 and 32).
 */
#include "app.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BURST_TIMEOUT_MS 10000

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
        "usage: ovms-app [options] ACTION [ARGS...]\n"
        "\n"
        "actions:\n"
        "  status                 the car's state: battery, charge, doors, temperatures, tyres, place\n"
        "  location               where the car is (with a map link)\n"
        "  watch                  the state, then live updates until Ctrl-C\n"
        "  command WORDS...       send a command by name or number (see below), wait for the reply\n"
        "  history [TYPE]         historical record types, or the records of one TYPE\n"
        "\n"
        "options:\n"
        "  --server HOST[:PORT]   the server (default $OVMS_SERVER or 127.0.0.1; port 6867, 6870 with --tls)\n"
        "  --dns HOST[:PORT]      ask this DNS server for the name, keeping its round-robin order\n"
        "                         (default $OVMS_DNS, else the system resolver)\n"
        "  --vehicle ID           the vehicle id ($OVMS_VEHICLE)\n"
        "  --password PW          the car password, or with --user the owner's password ($OVMS_PASSWORD)\n"
        "  --user NAME            log in as this owner (scheme 1) instead of with the car password\n"
        "  --paranoid SECRET      read paranoid-mode data and send paranoid commands (module password)\n"
        "  --tls                  connect with TLS; --insecure skips the certificate check, --ca FILE\n"
        "                         trusts the authorities in FILE\n"
        "  --json                 JSON for scripts (watch: one object per line)\n"
        "  --timeout S            how long to wait for a reply (default 20)\n"
        "  --for S, --count N     watch: stop after S seconds or N updates\n"
        "  --since WHEN           history: only records after WHEN (YYYY-MM-DD[ HH:MM:SS])\n"
        "\n"
        "exit status: 0 ok, 1 the car said failed, 2 usage, 3 the car cannot do it,\n"
        "             4 no reply (car offline), 5 cannot connect or log in\n"
        "\n");
    app_command_help(out);
}

/* HOST, HOST:PORT, [V6]:PORT. */
static int parse_server(const char *text, app_opts_t *o)
{
    const char *colon = strrchr(text, ':');
    size_t hostlen = strlen(text);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close)
            return -1;
        snprintf(o->host, sizeof o->host, "%.*s", (int)(close - text - 1), text + 1);
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        if (colon && strchr(text, ':') != colon)
            colon = NULL;                      /* a bare IPv6 address */
        if (colon)
            hostlen = (size_t)(colon - text);
        snprintf(o->host, sizeof o->host, "%.*s", (int)hostlen, text);
    }
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port < 1 || port > 65535)
            return -1;
        o->port = (int)port;
    }
    return o->host[0] ? 0 : -1;
}

/* Read the login burst (Z, stored messages) up to T. */
static int read_burst(app_conn_t *c, app_car_t *car)
{
    uint64_t deadline = app_now_ms() + BURST_TIMEOUT_MS;
    for (;;) {
        app_msg_t m;
        uint64_t now = app_now_ms();
        int rc = now < deadline ? app_recv(c, (int)(deadline - now), &m) : 0;
        if (rc <= 0) {
            fprintf(stderr, "ovms-app: %s\n", rc == 0 ? "the server did not finish its login burst"
                                                      : "the server closed the connection");
            return APP_CONNECTION;
        }
        app_car_update(car, &m);
        if (m.code == 'T')
            return APP_OK;
    }
}

static int show_once(const app_opts_t *o, int location)
{
    static app_conn_t c;
    static app_car_t car;
    int rc = app_connect(&c, o);
    if (rc)
        return rc;
    app_car_init(&car);
    rc = read_burst(&c, &car);
    if (rc == APP_OK) {
        if (o->json)
            app_print_json(location ? app_json_location(&car, c.vehicle)
                                    : app_json_status(&car, c.vehicle), stdout);
        else if (location)
            app_show_location(&car, c.vehicle, stdout);
        else
            app_show_status(&car, c.vehicle, stdout);
    }
    app_close(&c);
    return rc;
}

typedef struct watch_limits {
    long for_secs, count;
} watch_limits_t;

/* One connection's worth of watching: APP_OK when a limit or a signal
 * ended it, APP_CONNECTION when the connection was lost. */
static int watch_connection(app_conn_t *c, app_car_t *car, const watch_limits_t *lim,
                            uint64_t end_ms, long *seen)
{
    const app_opts_t *o = c->opts;
    while (!stopping) {
        app_msg_t m;
        uint64_t now = app_now_ms();
        if (end_ms && now >= end_ms)
            return APP_OK;
        int wait = end_ms ? (int)(end_ms - now) : 1000;
        int rc = app_recv(c, wait > 1000 ? 1000 : wait, &m);
        if (rc < 0)
            return APP_CONNECTION;
        if (rc == 0 || m.code == 'T' || m.code == 'f' || m.code == 'a' ||
            (m.code == 'E' && !m.paranoid))
            continue;                   /* nothing new about the car */
        app_car_update(car, &m);
        if (o->json)
            app_print_json(app_json_message(&m), stdout);
        else
            app_show_live(&m, stdout);
        if (lim->count && ++*seen >= lim->count)
            return APP_OK;
    }
    return APP_OK;
}

static int watch(const app_opts_t *o, const watch_limits_t *lim)
{
    static app_conn_t c;
    static app_car_t car;
    uint64_t end_ms = lim->for_secs ? app_now_ms() + (uint64_t)lim->for_secs * 1000 : 0;
    unsigned backoff = 1;
    long seen = 0;
    int first = 1;

    while (!stopping) {
        int rc = app_connect(&c, o);
        if (rc == APP_OK) {
            app_car_init(&car);
            rc = read_burst(&c, &car);
        }
        if (rc != APP_OK && first)
            return rc;                  /* wrong settings: say so at once */
        if (rc == APP_OK) {
            backoff = 1;
            if (o->json)
                app_print_json(app_json_status(&car, c.vehicle), stdout);
            else {
                app_show_status(&car, c.vehicle, stdout);
                printf("-- live updates (Ctrl-C to stop) --\n");
                fflush(stdout);
            }
            first = 0;
            rc = watch_connection(&c, &car, lim, end_ms, &seen);
            app_close(&c);
            if (rc == APP_OK)
                return APP_OK;
        }
        if (end_ms && app_now_ms() >= end_ms)
            return APP_OK;
        fprintf(stderr, "ovms-app: connection lost; reconnecting in %u s\n", backoff);
        for (unsigned i = 0; i < backoff * 10 && !stopping; i++)
            usleep(100000);
        backoff = backoff * 2 > 30 ? 30 : backoff * 2;
    }
    return APP_OK;
}

static int command(const app_opts_t *o, int argc, char **argv)
{
    static app_conn_t c;
    char params[OVMS_LINE_MAX / 2];
    int cmd;
    if (app_command_parse(argc, argv, &cmd, params, sizeof params) < 0)
        return APP_USAGE;
    int rc = app_connect(&c, o);
    if (rc)
        return rc;
    rc = app_command_run(&c, cmd, params);
    app_close(&c);
    return rc;
}

static int history(const app_opts_t *o, int argc, char **argv, const char *since)
{
    char *words[4];
    int n = 0;
    if (argc > 1) {
        fprintf(stderr, "ovms-app: history takes at most one record type\n");
        return APP_USAGE;
    }
    words[n++] = argc ? "32" : "31";
    if (argc)
        words[n++] = argv[0];
    if (since)
        words[n++] = (char *)since;
    return command(o, n, words);
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

int main(int argc, char **argv)
{
    enum { O_TLS = 256, O_INSECURE, O_CA, O_JSON, O_TIMEOUT, O_FOR, O_COUNT, O_SINCE, O_DNS };
    static const struct option opts[] = {
        { "server", required_argument, 0, 's' }, { "vehicle", required_argument, 0, 'i' },
        { "password", required_argument, 0, 'p' }, { "user", required_argument, 0, 'u' },
        { "paranoid", required_argument, 0, 'P' }, { "tls", no_argument, 0, O_TLS },
        { "insecure", no_argument, 0, O_INSECURE }, { "ca", required_argument, 0, O_CA },
        { "json", no_argument, 0, O_JSON }, { "timeout", required_argument, 0, O_TIMEOUT },
        { "for", required_argument, 0, O_FOR }, { "count", required_argument, 0, O_COUNT },
        { "since", required_argument, 0, O_SINCE }, { "verbose", no_argument, 0, 'v' },
        { "help", no_argument, 0, 'h' }, { "dns", required_argument, 0, O_DNS },
        { 0, 0, 0, 0 } };
    app_opts_t o = { .port = 0, .timeout_ms = 20000 };
    watch_limits_t lim = { 0, 0 };
    const char *server = env_or("OVMS_SERVER", "127.0.0.1"), *since = NULL;
    int c;

    o.dns = env_or("OVMS_DNS", NULL);
    o.vehicle = env_or("OVMS_VEHICLE", NULL);
    o.password = env_or("OVMS_PASSWORD", NULL);
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 'i': o.vehicle = optarg; break;
        case 'p': o.password = optarg; break;
        case 'u': o.user = optarg; break;
        case 'P': o.module_pw = optarg; break;
        case O_TLS: o.tls = 1; break;
        case O_INSECURE: o.insecure = 1; break;
        case O_CA: o.ca_file = optarg; break;
        case O_JSON: o.json = 1; break;
        case O_TIMEOUT: o.timeout_ms = atoi(optarg) * 1000; break;
        case O_FOR: lim.for_secs = atol(optarg); break;
        case O_COUNT: lim.count = atol(optarg); break;
        case O_SINCE: since = optarg; break;
        case O_DNS: o.dns = optarg; break;
        case 'v': o.verbose = 1; break;
        case 'h': usage(stdout); return APP_OK;
        default: usage(stderr); return APP_USAGE;
        }
    }
    if (parse_server(server, &o) < 0) {
        fprintf(stderr, "ovms-app: '%s' is not HOST[:PORT]\n", server);
        return APP_USAGE;
    }
    if (!o.port)
        o.port = o.tls ? 6870 : 6867;
    if (optind >= argc) {
        usage(stderr);
        return APP_USAGE;
    }
    if (!o.password || (!o.vehicle && !o.user) || o.timeout_ms <= 0) {
        fprintf(stderr, "ovms-app: give --vehicle and --password (the car password), or --user and "
                "--password (the owner's)\n");
        return APP_USAGE;
    }

    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *action = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    if (!strcmp(action, "status") && !nargs)
        return show_once(&o, 0);
    if (!strcmp(action, "location") && !nargs)
        return show_once(&o, 1);
    if (!strcmp(action, "watch") && !nargs)
        return watch(&o, &lim);
    if (!strcmp(action, "command"))
        return command(&o, nargs, args);
    if (!strcmp(action, "history"))
        return history(&o, nargs, args, since);
    fprintf(stderr, "ovms-app: unknown action '%s' (or unexpected arguments)\n\n", action);
    usage(stderr);
    return APP_USAGE;
}
