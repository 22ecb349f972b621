/*
 * test_lifecycle.c -- a node's life while clients keep coming: starting
 * and stopping under a stream of logins (which are handed between
 * workers), reloading the configuration, a stalled log, and what a kill -9
 * may lose. The real ovmsd, started and stopped by PID.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define PW "NETPASS"

static node_t node;

/* ---- a stream of car logins for many vehicles ------------------------------------- */

#define FLEET 64

typedef struct storm {
    int port;
    volatile int stop;
    volatile long logins;        /* completed (server welcome received) */
    pthread_t threads[3];
} storm_t;

static void add_fleet(node_t *n)
{
    ovms_store_t *st = node_store(n);
    ovms_store_req_t req;
    char id[16];
    ovms_store_req_init(&req);
    for (int i = 0; i < FLEET; i++) {
        snprintf(id, sizeof id, "FLEET%02d", i);
        ovms_store_prep_vehicle_put(&req, id, "owner", "FLEETPW", NULL, NULL, OVMS_STORE_CREATE);
        cr_assert_eq(ovms_store_run(st, &req), 0);
    }
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

/* One login attempt: connect, welcome, wait briefly for the reply. No
 * assertions: the server may be starting, stopping or gone. */
static int storm_login(int port, unsigned *seed)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    char token[OVMS_TOKEN_LEN + 1], digest[OVMS_DIGEST_B64_LEN + 1], line[256], id[16], reply[256];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = 0;
    if (fd < 0)
        return 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        snprintf(id, sizeof id, "FLEET%02d", rand_r(seed) % FLEET);
        ovms_token_generate(token);
        ovms_digest_b64("FLEETPW", 7, token, strlen(token), digest);
        int n = ovms_welcome_format_client(line, sizeof line, 'C', token, digest, id);
        if (send(fd, line, (size_t)n, MSG_NOSIGNAL) == n) {
            struct pollfd p = { fd, POLLIN, 0 };
            ok = poll(&p, 1, 200) == 1 && recv(fd, reply, sizeof reply, 0) > 0;
        }
    }
    close(fd);
    return ok;
}

static void *storm_main(void *arg)
{
    storm_t *s = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    while (!s->stop) {
        if (storm_login(s->port, &seed))
            __atomic_add_fetch(&s->logins, 1, __ATOMIC_RELAXED);
        else
            usleep(200);
    }
    return NULL;
}

static void storm_start(storm_t *s, int port)
{
    memset(s, 0, sizeof *s);
    s->port = port;
    for (int i = 0; i < 3; i++)
        pthread_create(&s->threads[i], NULL, storm_main, s);
}

static void storm_stop(storm_t *s)
{
    s->stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(s->threads[i], NULL);
}

/* Start ovmsd without waiting for it (the storm is already knocking). */
static pid_t spawn_node(node_t *n, const char *extra)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec %s --db %s --listen 127.0.0.1:%d --node-id TESTNODE %s >>%s 2>&1",
             OVMSD_BIN, n->db, n->port, extra, n->log);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static const char *describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "status %d", status);
    return buf;
}

/* Restarts while a fleet keeps logging in: every start must come up and
 * every SIGTERM must end in a clean exit, whatever is in flight. */
Test(lifecycle, restarts_under_a_login_storm_are_clean, .timeout = 240)
{
    enum { RESTARTS = 60 };
    storm_t storm;
    long before;
    char why[128];

    node_prepare(&node);
    add_fleet(&node);
    node.port = harness_free_port();
    storm_start(&storm, node.port);
    for (int round = 0; round < RESTARTS; round++) {
        pid_t pid = spawn_node(&node, "--workers 16 --level warn");
        /* up: logins complete */
        before = storm.logins;
        for (int i = 0; i < 500 && storm.logins < before + 20; i++) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                storm_stop(&storm);
                cr_assert_fail("round %d: ovmsd died while starting: %s (log %s)", round,
                               describe_status(status, why, sizeof why), node.log);
            }
            usleep(10000);
        }
        cr_assert_geq(storm.logins, before + 20, "round %d: no logins after start", round);
        kill(pid, SIGTERM);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            storm_stop(&storm);
            cr_assert_fail("round %d: SIGTERM under load ended in %s (log %s)", round,
                           describe_status(status, why, sizeof why), node.log);
        }
    }
    storm_stop(&storm);
    cr_assert_not(node_log_has(&node, "still had handles"), "a worker's loop did not close; see %s",
                  node.log);
}

/* SIGHUP re-reads the file and applies the command line again: a flag
 * still overrides the file after a reload, while what only the file says
 * changes at once. */
Test(lifecycle, reload_keeps_command_line_overrides, .timeout = 30)
{
    client_t car, app;
    node_prepare(&node);
    FILE *f = fopen(node.conf, "w");
    fprintf(f, "[timeouts]\nping_after = 900\nping_interval = 300\n[limits]\nmax_pending_commands = 64\n");
    fclose(f);
    node_start(&node, "--config %s --ping-after 1 --ping-interval 1", node.conf);
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    cr_assert(client_expect(&car, "AFA", 4000), "the flags are not in force at start");
    f = fopen(node.conf, "w");
    fprintf(f, "[timeouts]\nping_after = 900\nping_interval = 300\n[limits]\nmax_pending_commands = 1\n");
    fclose(f);
    kill(node.pid, SIGHUP);
    for (int i = 0; i < 100 && !node_log_has(&node, "configuration reloaded"); i++)
        usleep(20000);
    cr_assert(node_log_has(&node, "configuration reloaded"));
    /* the flag still wins: pings go on (counting only those after a
     * sweep under the new settings) */
    cr_assert(client_silent(&car, 1500, "AFA"));
    cr_assert(client_expect(&car, "AFA", 3000), "a reload dropped --ping-after");
    /* the file's new limit is in force: one command may wait for the car */
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    client_send(&app, "C7,one");
    client_send(&app, "C7,two");
    cr_assert_str_eq(client_expect_prefix(&app, "c7,", 3000),
                     "c7,1,too many commands waiting for the vehicle");
    client_close(&app);
    client_close(&car);
    cr_assert_eq(node_stop(&node), 0);
}
