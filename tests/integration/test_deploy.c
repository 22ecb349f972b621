/*
 * test_deploy.c -- deploy/cluster.sh and the round-robin DNS name: a real
 * 3-node cluster on 127.0.0.11-13 with its redis-server and dnsmasq, all
 * started by the script and stopped by it (by PID) at the end of each test,
 * pass or fail. Twenty ovms-car processes given only the DNS name spread
 * over the nodes, and each is watched from an app on another node.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define NCARS 20

typedef struct cluster {
    char dir[128];
    char host[3][32];
    int port;
    char dns_name[64], dns[64];
    int nodes;
} cluster_t;

static cluster_t cl;
static pid_t cars[NCARS];

/* The build tree whose programs the script runs: the one holding
 * $OVMSD_BIN when set (the TSan stage), else this build. */
static void build_dir(char *out, size_t cap)
{
    const char *bin = getenv("OVMSD_BIN");
    if (bin && *bin) {
        snprintf(out, cap, "%s", bin);
        for (int i = 0; i < 2; i++) {
            char *slash = strrchr(out, '/');
            if (slash)
                *slash = '\0';
        }
        return;
    }
    snprintf(out, cap, "%s", OVMS_BUILD_DIR);
}

/* Runs deploy/cluster.sh with the arguments; its output in out, its status returned. */
static int cluster_sh(char *out, size_t cap, const char *fmt, ...)
{
    char args[256], cmd[1024], build[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    build_dir(build, sizeof build);
    snprintf(cmd, sizeof cmd, "OVMS_BUILD='%s' OVMS_NODE_FLAGS='--workers 2' '%s/deploy/cluster.sh' %s --dir '%s' 2>&1",
             build, OVMS_SOURCE_DIR, args, cl.dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run cluster.sh");
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* "node N1 127.0.0.11:PORT db PATH" and "dns NAME HOST:PORT" lines. */
static void parse_up(const char *out)
{
    char line[512];
    const char *p = out;
    cl.nodes = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        char id[16], addr[64], name[64];
        if (sscanf(line, "node %15s %63s db", id, addr) == 2 && cl.nodes < 3) {
            char *colon = strrchr(addr, ':');
            cr_assert(colon, "bad node line %s", line);
            *colon = '\0';
            snprintf(cl.host[cl.nodes++], sizeof cl.host[0], "%.31s", addr);
            cl.port = atoi(colon + 1);
        } else if (sscanf(line, "dns %63s %63s", name, addr) == 2) {
            snprintf(cl.dns_name, sizeof cl.dns_name, "%s", name);
            snprintf(cl.dns, sizeof cl.dns, "%s", addr);
        }
        p += len + (nl ? 1 : 0);
    }
}

static void cluster_up(void)
{
    char out[4096];
    snprintf(cl.dir, sizeof cl.dir, "/tmp/ovms-test-deploy-XXXXXX");
    cr_assert(mkdtemp(cl.dir), "mkdtemp: %s", strerror(errno));
    int rc = cluster_sh(out, sizeof out, "up 3");
    cr_assert_eq(rc, 0, "cluster.sh up failed: %s", out);
    parse_up(out);
    cr_assert_eq(cl.nodes, 3, "expected three node lines: %s", out);
    cr_assert(cl.dns[0] && strstr(out, "redis "), "no dns or redis line: %s", out);
}

static void cluster_down(void)
{
    char out[4096];
    for (int i = 0; i < NCARS; i++)
        if (cars[i] > 0) {
            kill(cars[i], SIGKILL);
            waitpid(cars[i], NULL, 0);
            cars[i] = 0;
        }
    if (cl.dir[0]) {
        char cmd[256];
        cluster_sh(out, sizeof out, "down");
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", cl.dir);
        if (system(cmd) != 0)
            cr_log_warn("could not remove %s", cl.dir);
    }
}

/* Alive and not a zombie (the container's init may never reap them). */
static int running(pid_t pid)
{
    char path[64], stat[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(stat, 1, sizeof stat - 1, f) : 0;
    stat[n] = '\0';
    if (f)
        fclose(f);
    const char *close = strrchr(stat, ')');
    return n > 0 && close && close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
}

static void admin(int node, const char *fmt, ...)
{
    char args[256], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' --db '%s/N%d/node.db' %s >/dev/null 2>&1", OVMS_ADMIN_PATH,
             cl.dir, node + 1, args);
    cr_assert_eq(system(cmd), 0, "ovms-admin %s failed", args);
}

/* Vehicles a node's database holds. */
static int vehicles_on(int node)
{
    char cmd[1024], buf[65536];
    snprintf(cmd, sizeof cmd, "'%s' --db '%s/N%d/node.db' --json vehicle list 2>/dev/null", OVMS_ADMIN_PATH,
             cl.dir, node + 1);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = '\0';
    if (p)
        pclose(p);
    int count = 0;
    for (const char *s = buf; (s = strstr(s, "\"DNSCAR")); s++)
        count++;
    return count;
}

static void car_start(int i)
{
    char vehicle[16], pw[16], dir[192], log[224], server[128];
    snprintf(vehicle, sizeof vehicle, "DNSCAR%02d", i);
    snprintf(pw, sizeof pw, "dnspass%02d", i);
    snprintf(dir, sizeof dir, "%s/cars/%s", cl.dir, vehicle);
    snprintf(log, sizeof log, "%s/cars/%s.log", cl.dir, vehicle);
    snprintf(server, sizeof server, "%s:%d", cl.dns_name, cl.port);
    cars[i] = fork();
    cr_assert_geq(cars[i], 0);
    if (cars[i] == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(OVMS_CAR_BIN, OVMS_CAR_BIN, "--server", server, "--dns", cl.dns, "--vehicle", vehicle,
              "--password", pw, "--state-dir", dir, "--update-watched", "1", (char *)NULL);
        _exit(127);
    }
}

/* The node the car logged in on, from its log: -1 while it has not. */
static int car_node(int i)
{
    char log[224], buf[16384], host[64] = "";
    snprintf(log, sizeof log, "%s/cars/DNSCAR%02d.log", cl.dir, i);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    if (!strstr(buf, "logged in as"))
        return -1;
    for (const char *s = buf; (s = strstr(s, "connecting to ")); s++)
        sscanf(s, "connecting to %63s", host);
    for (int k = 0; k < 3; k++)
        if (!strcmp(host, cl.host[k]))
            return k;
    return -1;
}

Test(deploy, twenty_cars_through_the_dns_name_spread_over_the_nodes_and_are_watched_across,
     .timeout = 120, .fini = cluster_down)
{
    int where[NCARS], per_node[3] = { 0 };
    cluster_up();
    for (int i = 0; i < NCARS; i++)
        admin(0, "vehicle add DNSCAR%02d --password dnspass%02d", i, i);
    for (int k = 1; k < 3; k++) {
        int n = 0;
        for (int t = 0; t < 200 && (n = vehicles_on(k)) < NCARS; t++)
            usleep(50 * 1000);
        cr_assert_eq(n, NCARS, "node N%d has %d of the %d vehicles", k + 1, n, NCARS);
    }
    char cars_dir[192];
    snprintf(cars_dir, sizeof cars_dir, "%s/cars", cl.dir);
    cr_assert_eq(mkdir(cars_dir, 0700), 0);
    for (int i = 0; i < NCARS; i++)
        car_start(i);
    for (int i = 0; i < NCARS; i++) {
        where[i] = -1;
        for (int t = 0; t < 200 && (where[i] = car_node(i)) < 0; t++)
            usleep(50 * 1000);
        cr_assert_geq(where[i], 0, "car %d never logged in on a node", i);
        per_node[where[i]]++;
    }
    cr_log_info("cars per node: N1 %d, N2 %d, N3 %d", per_node[0], per_node[1], per_node[2]);
    for (int k = 0; k < 3; k++)
        cr_assert_geq(per_node[k], 3, "the DNS name did not spread the cars: N1 %d, N2 %d, N3 %d",
                      per_node[0], per_node[1], per_node[2]);

    /* each car watched from an app on another node: the car is seen
     * connected there (Z1), and its reports, sent only while an app
     * watches, arrive there live */
    static client_t apps[NCARS];
    for (int i = 0; i < NCARS; i++) {
        char vehicle[16], pw[16];
        int k = (where[i] + 1) % 3;
        snprintf(vehicle, sizeof vehicle, "DNSCAR%02d", i);
        snprintf(pw, sizeof pw, "dnspass%02d", i);
        client_connect_host(&apps[i], cl.host[k], cl.port, NULL);
        cr_assert_eq(client_login_on(&apps[i], 'A', vehicle, pw), 0, "app login for %s on N%d", vehicle, k + 1);
        const char *z = client_recv(&apps[i], 3000);
        cr_assert(z && !strcmp(z, "Z1"), "%s on N%d: the car on N%d is not seen (%s)", vehicle, k + 1,
                  where[i] + 1, z ? z : "nothing");
        for (const char *m; (m = client_recv(&apps[i], 2000)) && m[0] != 'T';)
            ;
    }
    for (int i = 0; i < NCARS; i++) {
        const char *m = NULL;
        for (int tries = 0; tries < 50; tries++) {
            m = client_recv(&apps[i], 5000);
            if (!m || (m[0] != 'T' && m[0] != 'Z'))
                break;
        }
        cr_assert(m, "DNSCAR%02d on N%d: nothing live reached its app on N%d", i, where[i] + 1,
                  (where[i] + 1) % 3 + 1);
        client_close(&apps[i]);
    }

    /* ovms-app given the DNS name lands on different nodes too, and sees
     * the car wherever it is */
    int app_nodes[3] = { 0 };
    for (int run = 0; run < 6; run++) {
        char cmd[1024], buf[8192];
        snprintf(cmd, sizeof cmd, "'%s' --server %s:%d --dns %s --vehicle DNSCAR00 --password dnspass00 "
                 "-v --json status 2>&1", OVMS_APP_BIN, cl.dns_name, cl.port, cl.dns);
        FILE *p = popen(cmd, "r");
        size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
        buf[n] = '\0';
        int status = p ? pclose(p) : -1;
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ovms-app status failed: %s", buf);
        for (int k = 0; k < 3; k++) {
            char want[64];
            snprintf(want, sizeof want, "connected to %s ", cl.host[k]);
            app_nodes[k] += strstr(buf, want) != NULL;
        }
    }
    int used = (app_nodes[0] > 0) + (app_nodes[1] > 0) + (app_nodes[2] > 0);
    cr_assert_geq(used, 2, "ovms-app always went to the same node (N1 %d, N2 %d, N3 %d)", app_nodes[0],
                  app_nodes[1], app_nodes[2]);
}

Test(deploy, up_again_starts_only_what_is_down_and_down_stops_everything, .timeout = 60,
     .fini = cluster_down)
{
    char out[4096], pidfile[192], pid_text[32];
    cluster_up();
    cr_assert_eq(cluster_sh(out, sizeof out, "status"), 0, "status of a running cluster failed: %s", out);
    cr_assert(strstr(out, "link N2 up") || strstr(out, "link N2 connecting"), "no links in the status: %s", out);
    cr_assert(strstr(out, "redis") && strstr(out, ": up"), "status: %s", out);

    /* node N2 dies: status says so; up starts it again, and nothing else */
    snprintf(pidfile, sizeof pidfile, "%s/N2/ovmsd.pid", cl.dir);
    FILE *f = fopen(pidfile, "r");
    cr_assert(f && fgets(pid_text, sizeof pid_text, f));
    fclose(f);
    pid_t n2 = atoi(pid_text);
    char n1_before[32] = "", n1_after[32] = "";
    snprintf(pidfile, sizeof pidfile, "%s/N1/ovmsd.pid", cl.dir);
    f = fopen(pidfile, "r");
    cr_assert(f && fgets(n1_before, sizeof n1_before, f));
    fclose(f);
    kill(n2, SIGKILL);
    usleep(200 * 1000);
    cr_assert_neq(cluster_sh(out, sizeof out, "status"), 0, "status did not fail with a node down");
    cr_assert(strstr(out, "N2/node.db: down"), "status: %s", out);
    cr_assert_eq(cluster_sh(out, sizeof out, "up 3"), 0, "up again failed: %s", out);
    cr_assert(strstr(out, "node N2 "), "up again: %s", out);
    f = fopen(pidfile, "r");
    cr_assert(f && fgets(n1_after, sizeof n1_after, f));
    fclose(f);
    cr_assert_str_eq(n1_before, n1_after, "up restarted a node that was running");
    cr_assert_eq(cluster_sh(out, sizeof out, "status"), 0, "status after up: %s", out);

    /* down stops every process it started */
    char pids[5][32];
    const char *files[5] = { "N1/ovmsd.pid", "N2/ovmsd.pid", "N3/ovmsd.pid", "redis/redis.pid",
                             "dns/dnsmasq.pid" };
    for (int i = 0; i < 5; i++) {
        snprintf(pidfile, sizeof pidfile, "%s/%s", cl.dir, files[i]);
        f = fopen(pidfile, "r");
        cr_assert(f && fgets(pids[i], sizeof pids[i], f), "no %s", files[i]);
        fclose(f);
    }
    cr_assert_eq(cluster_sh(out, sizeof out, "down"), 0, "down: %s", out);
    for (int i = 0; i < 5; i++)
        cr_assert(!running(atoi(pids[i])), "%s (pid %s) still runs after down", files[i], pids[i]);
}

/* ovmsd --check-config on a file: its exit status, its output in out. */
static int check_config(const char *file, const char *extra, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --check-config --config '%s' %s 2>&1", OVMSD_PATH, file, extra);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(deploy, the_shipped_configurations_are_valid)
{
    char out[4096], path[512];
    static const char *const files[] = { "ovmsd.conf", "cluster-3-hosts/node1.conf",
                                         "cluster-3-hosts/node2.conf", "cluster-3-hosts/node3.conf" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/deploy/%s", OVMS_SOURCE_DIR, files[i]);
        cr_assert_eq(check_config(path, "", out, sizeof out), 0, "%s: %s", files[i], out);
        cr_assert(strstr(out, "configuration ok"), "%s: %s", files[i], out);
    }
    /* each node of the sample names the other two as peers, and the same Redis */
    for (int k = 1; k <= 3; k++) {
        snprintf(path, sizeof path, "%s/deploy/cluster-3-hosts/node%d.conf", OVMS_SOURCE_DIR, k);
        check_config(path, "", out, sizeof out);
        for (int j = 1; j <= 3; j++) {
            char want[64];
            snprintf(want, sizeof want, j == k ? "node N%d," : "peer N%d, dialed at 10.0.0.%d:6867", j, j);
            cr_assert(strstr(out, want), "node%d.conf lacks '%s': %s", k, want, out);
        }
        cr_assert(strstr(out, "redis 10.0.0.1:6379"), "node%d.conf: %s", k, out);
    }
    /* a bad value is one line and status 2 */
    snprintf(path, sizeof path, "%s/deploy/ovmsd.conf", OVMS_SOURCE_DIR);
    cr_assert_eq(check_config(path, "--command-timeout 0", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "bad value '0' for --command-timeout"), "%s", out);
}
