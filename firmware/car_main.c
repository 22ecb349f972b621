/*
 * car_main.c -- ovms-car: one simulated car on a blocking-style POSIX
 * driver (one socket, poll(2)) around the firmware core.
 *
 * The platform here: the wall clock, OpenSSL's CSPRNG, files in the state
 * directory (written to a temporary name, fsync'ed and renamed, so a crash
 * leaves the old or the new version, never half of one), getaddrinfo for
 * every address of the server name, and a log on stderr. SIGINT or SIGTERM
 * closes the connection and exits 0; the history queue is on disk already.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "ovms_fw.h"
#include "ovms_resolve.h"

typedef struct car {
    char state_dir[512];
    char label[40];
    int verbose;
    const char *dns;                /* --dns: ask this DNS server directly */
    int fd;
    ovms_fw_t fw;
    ovms_sim_t sim;
    int last_phase;
} car_t;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the platform --------------------------------------------------------------- */

static void car_log(void *ctx, int level, const char *text)
{
    static const char *const names[] = { "error", "warning", "info", "debug" };
    car_t *car = ctx;
    char when[32];
    time_t t = time(NULL);
    if (level == OVMS_FW_LOG_DEBUG && !car->verbose)
        return;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
    fprintf(stderr, "%s ovms-car[%s] %s: %s\n", when, car->label, names[level], text);
}

static void logf_(car_t *car, int level, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    car_log(car, level, text);
}

static int64_t pf_wall(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

static void pf_random(void *ctx, uint8_t *buf, size_t n)
{
    if (RAND_bytes(buf, (int)n) != 1) {
        car_log(ctx, OVMS_FW_LOG_ERROR, "the system has no randomness to give: stopping");
        exit(1);
    }
}

static void state_path(car_t *car, const char *name, const char *suffix, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s%s", car->state_dir, name, suffix);
}

static int pf_load(void *ctx, const char *name, void *buf, size_t cap)
{
    char path[600];
    state_path(ctx, name, "", path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap);
    close(fd);
    return n < 0 ? -1 : (int)n;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int pf_save(void *ctx, const char *name, const void *buf, size_t len)
{
    car_t *car = ctx;
    char path[600], tmp[600];
    state_path(car, name, "", path, sizeof path);
    state_path(car, name, ".tmp", tmp, sizeof tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0)
        return -1;
    int dfd = open(car->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);                     /* make the rename itself durable */
        close(dfd);
    }
    return 0;
}

static int pf_resolve(void *ctx, const char *host, ovms_fw_addr_t *out, int max)
{
    car_t *car = ctx;
    char addrs[OVMS_FW_MAX_ADDRS][OVMS_RESOLVE_HOSTLEN], err[200];
    int n = ovms_resolve(host, car->dns, addrs, max < OVMS_FW_MAX_ADDRS ? max : OVMS_FW_MAX_ADDRS,
                         err, sizeof err);
    if (n < 0) {
        logf_(ctx, OVMS_FW_LOG_WARN, "%s", err);
        return -1;
    }
    for (int i = 0; i < n; i++)
        snprintf(out[i].host, sizeof out[i].host, "%.63s", addrs[i]);
    return n;
}

/* ---- the socket ------------------------------------------------------------------ */

static int connect_to(car_t *car, const ovms_fw_addr_t *a)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
    struct addrinfo *res;
    char port[8];
    snprintf(port, sizeof port, "%d", a->port);
    if (getaddrinfo(a->host, port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -1;
    }
    /* a bounded connect: non-blocking, then wait up to 10 s */
    fcntl(fd, F_SETFL, O_NONBLOCK);
    int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, 10000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
            err == 0)
            rc = 0;
        else
            errno = err ? err : ETIMEDOUT;
    }
    if (rc < 0) {
        logf_(car, OVMS_FW_LOG_WARN, "connect to %s port %d: %s", a->host, a->port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void close_socket(car_t *car)
{
    if (car->fd >= 0)
        close(car->fd);
    car->fd = -1;
    ovms_fw_closed(&car->fw, now_ms());
}

/* Write what the core has for the server; 0, or -1 when the link broke. */
static int flush(car_t *car)
{
    const char *data;
    size_t len;
    while ((len = ovms_fw_pending(&car->fw, &data)) > 0) {
        ssize_t n = send(car->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1;
        ovms_fw_sent(&car->fw, (size_t)n);
    }
    return 0;
}

/* Read what arrived; 0, or -1 when the server closed. */
static int receive(car_t *car)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(car->fd, buf, sizeof buf, 0);
        if (n > 0) {
            ovms_fw_input(&car->fw, now_ms(), buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n == 0)
            logf_(car, OVMS_FW_LOG_INFO, "the server closed the connection");
        else
            logf_(car, OVMS_FW_LOG_WARN, "receive: %s", strerror(errno));
        return -1;
    }
}

static void log_vehicle_changes(car_t *car)
{
    if (car->sim.phase == car->last_phase)
        return;
    car->last_phase = car->sim.phase;
    logf_(car, OVMS_FW_LOG_INFO, "vehicle %s: SOC %.1f%%, odometer %.1f km, at %.5f,%.5f",
          ovms_sim_phase_name(&car->sim), car->sim.soc, car->sim.odometer_km, car->sim.lat,
          car->sim.lon);
}

/* Until a signal, or until the core stops (the server refused the login:
 * retrying with the same credentials would only get the car blocked). */
static int run(car_t *car)
{
    while (!stopping) {
        if (car->fw.state == OVMS_FW_STOPPED && car->fd < 0)
            return 1;
        uint64_t next, now = now_ms();
        ovms_fw_action_t act = ovms_fw_poll(&car->fw, now, &next);
        log_vehicle_changes(car);
        if (act == OVMS_FW_CONNECT) {
            car->fd = connect_to(car, ovms_fw_target(&car->fw));
            if (car->fd < 0)
                ovms_fw_connect_failed(&car->fw, now_ms());
            else
                ovms_fw_connected(&car->fw, now_ms());
            continue;
        }
        if (act == OVMS_FW_CLOSE) {
            if (car->fd >= 0)
                flush(car);             /* a last reply (reboot) goes out first */
            close_socket(car);
            continue;
        }
        if (car->fd >= 0 && flush(car) < 0) {
            close_socket(car);
            continue;
        }
        const char *pending;
        struct pollfd p = { .fd = car->fd, .events = POLLIN };
        if (car->fd >= 0 && ovms_fw_pending(&car->fw, &pending))
            p.events |= POLLOUT;
        now = now_ms();
        int wait = next > now ? (int)(next - now) : 0;
        int rc = poll(&p, car->fd >= 0 ? 1 : 0, wait);
        if (rc > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) && receive(car) < 0)
            close_socket(car);
    }
    return 0;
}

/* ---- command line ------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
        "usage: ovms-car --server HOST[:PORT] --vehicle ID --password PW [options]\n"
        "       ovms-car --server HOST[:PORT] --vin VIN --iccid ICCID [options]   (auto-provisioning)\n"
        "\n"
        "Runs one simulated electric car against an OVMS v2 server.\n"
        "\n"
        "  --server HOST[:PORT]   server name (every address is tried in turn); port 6867\n"
        "  --dns HOST[:PORT]      ask this DNS server for the name, keeping its round-robin\n"
        "                         order (a local cluster's; default: the system resolver)\n"
        "  --vehicle ID           vehicle id\n"
        "  --password PW          car (server) password\n"
        "  --paranoid SECRET      paranoid mode with this module password\n"
        "  --state-dir DIR        where settings and unacknowledged history are kept\n"
        "                         (default ~/.local/state/ovms-car/<ID or VIN>)\n"
        "  --vin VIN --iccid ICC  keys for auto-provisioning (AP-C) without credentials\n"
        "  --seed N               simulation seed (default: from the vehicle id)\n"
        "  --time-scale X         simulated seconds per real second (default 1)\n"
        "  --update-watched S     seconds between reports while apps watch (default 10)\n"
        "  --update-idle S        seconds between reports otherwise (default 600)\n"
        "  -v, --verbose          log more\n"
        "  -h, --help             this text\n");
}

static uint64_t seed_from(const char *text)
{
    uint64_t h = 1469598103934665603ull;          /* FNV-1a */
    for (; *text; text++)
        h = (h ^ (uint8_t)*text) * 1099511628211ull;
    return h;
}

static int make_dirs(const char *path)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static int copy_arg(char *dst, size_t cap, const char *src, const char *what)
{
    if (strlen(src) >= cap) {
        fprintf(stderr, "ovms-car: %s is too long (at most %zu characters)\n", what, cap - 1);
        return -1;
    }
    snprintf(dst, cap, "%s", src);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "server", required_argument, 0, 's' }, { "vehicle", required_argument, 0, 'i' },
        { "password", required_argument, 0, 'p' }, { "paranoid", required_argument, 0, 'P' },
        { "state-dir", required_argument, 0, 'd' }, { "vin", required_argument, 0, 'V' },
        { "iccid", required_argument, 0, 'I' }, { "seed", required_argument, 0, 'S' },
        { "time-scale", required_argument, 0, 't' }, { "update-watched", required_argument, 0, 'w' },
        { "update-idle", required_argument, 0, 'u' }, { "verbose", no_argument, 0, 'v' },
        { "help", no_argument, 0, 'h' }, { "dns", required_argument, 0, 'D' },
        { 0, 0, 0, 0 } };
    static car_t car;
    ovms_fw_config_t cfg = { 0 };
    const char *state_dir = NULL;
    double scale = 1.0;
    uint64_t seed = 0;
    int have_seed = 0, c, bad = 0;

    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 's': bad |= copy_arg(cfg.server, sizeof cfg.server, optarg, "--server"); break;
        case 'i': bad |= copy_arg(cfg.vehicle_id, sizeof cfg.vehicle_id, optarg, "--vehicle"); break;
        case 'p': bad |= copy_arg(cfg.password, sizeof cfg.password, optarg, "--password"); break;
        case 'P': bad |= copy_arg(cfg.module_pw, sizeof cfg.module_pw, optarg, "--paranoid"); break;
        case 'V': bad |= copy_arg(cfg.vin, sizeof cfg.vin, optarg, "--vin"); break;
        case 'I': bad |= copy_arg(cfg.iccid, sizeof cfg.iccid, optarg, "--iccid"); break;
        case 'd': state_dir = optarg; break;
        case 'D': car.dns = optarg; break;
        case 'S': seed = strtoull(optarg, NULL, 0); have_seed = 1; break;
        case 't': scale = atof(optarg); break;
        case 'w': cfg.update_watched = (unsigned)atoi(optarg); break;
        case 'u': cfg.update_idle = (unsigned)atoi(optarg); break;
        case 'v': car.verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bad)
        return 2;
    if (optind < argc || !cfg.server[0] || (!cfg.vehicle_id[0] && !(cfg.vin[0] && cfg.iccid[0])) ||
        (cfg.vehicle_id[0] && !cfg.password[0]) || scale <= 0) {
        fprintf(stderr, "ovms-car: give --server and either --vehicle with --password, or --vin "
                "with --iccid (and a positive --time-scale)\n\n");
        usage(stderr);
        return 2;
    }
    if (cfg.vehicle_id[0] && ovms_vehicleid_check(ovms_str_c(cfg.vehicle_id)) < 0) {
        fprintf(stderr, "ovms-car: '%s' is not a vehicle id (1-32 characters, no spaces or commas)\n",
                cfg.vehicle_id);
        return 2;
    }

    const char *who = cfg.vehicle_id[0] ? cfg.vehicle_id : cfg.vin;
    snprintf(car.label, sizeof car.label, "%s", who);
    if (state_dir)
        snprintf(car.state_dir, sizeof car.state_dir, "%s", state_dir);
    else
        snprintf(car.state_dir, sizeof car.state_dir, "%s/.local/state/ovms-car/%s",
                 getenv("HOME") ? getenv("HOME") : ".", who);
    if (make_dirs(car.state_dir) < 0) {
        fprintf(stderr, "ovms-car: cannot create the state directory %s: %s\n", car.state_dir,
                strerror(errno));
        return 1;
    }

    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART: poll returns */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const ovms_fw_platform_t pf = { .ctx = &car, .wall = pf_wall, .random = pf_random,
                                    .load = pf_load, .save = pf_save, .resolve = pf_resolve,
                                    .log = car_log };

    uint64_t start = now_ms();
    car.fd = -1;
    ovms_sim_init(&car.sim, have_seed ? seed : seed_from(who), scale, (int64_t)time(NULL), start);
    car.last_phase = car.sim.phase;
    ovms_fw_init(&car.fw, &cfg, &pf, &car.sim.ops, start);
    logf_(&car, OVMS_FW_LOG_INFO, "simulated car %s (VIN %s, SOC %.1f%%) for %s; state in %s%s",
          who, car.sim.vin, car.sim.soc, cfg.server, car.state_dir,
          cfg.module_pw[0] ? "; paranoid mode" : "");
    if (car.fw.state == OVMS_FW_STOPPED)
        return 1;

    int rc = run(&car);
    if (car.fd >= 0)
        close(car.fd);
    logf_(&car, OVMS_FW_LOG_INFO, "stopped: %u logins, %u reports, %u commands, %u history "
          "records acknowledged, %d waiting", car.fw.logins, car.fw.reports, car.fw.commands,
          car.fw.records_acked, car.fw.hq.n);
    return rc;
}
