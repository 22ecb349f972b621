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
             OVMSD_PATH, n->db, n->port, extra, n->log);
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
    cr_assert_not(node_log_has_now(&node, "still had handles"), "a worker's loop did not close; see %s",
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

/* ---- logging ------------------------------------------------------------------------- */

/* ovmsd with stdout and stderr on fd (a pipe the test holds). */
static void start_on_fd(node_t *n, int fd, const char *level)
{
    char port[32];
    if (!n->port)
        n->port = harness_free_port();
    snprintf(port, sizeof port, "127.0.0.1:%d", n->port);
    n->pid = fork();
    cr_assert_geq(n->pid, 0);
    if (n->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(OVMSD_PATH, OVMSD_PATH, "--db", n->db, "--listen", port, "--workers", "2",
              "--node-id", "TESTNODE", "--level", level, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        client_t probe;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)n->port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int s = socket(AF_INET, SOCK_STREAM, 0), ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        (void)probe;
        if (ok)
            return;
        usleep(10000);
    }
    cr_assert_fail("ovmsd did not start");
}

/* Read what the pipe holds for up to ms; 1 if text was seen. */
static int pipe_has(int fd, const char *text, int ms)
{
    static char seen[1 << 16];
    static size_t len;
    char buf[65536];
    for (int waited = 0; waited < ms; waited += 20) {
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
            /* keep the last 64 KiB, enough for a line that straddles reads */
            if ((size_t)n >= sizeof seen) {
                memcpy(seen, buf + n - (sizeof seen - 1), sizeof seen - 1);
                len = sizeof seen - 1;
            } else {
                if (len + (size_t)n >= sizeof seen) {
                    size_t keep = sizeof seen - 1 - (size_t)n;
                    memmove(seen, seen + len - keep, keep);
                    len = keep;
                }
                memcpy(seen + len, buf, (size_t)n);
                len += (size_t)n;
            }
            seen[len] = '\0';
            if (strstr(seen, text))
                return 1;
        }
        usleep(20000);
    }
    return 0;
}

/* stderr stops being read (a full pipe, a stuck journald): the workers
 * go on relaying, and the log later says how many lines it dropped. */
Test(lifecycle, a_stalled_stderr_never_stops_the_workers, .timeout = 60)
{
    enum { MESSAGES = 3000 };
    client_t car, app;
    int p[2];
    node_prepare(&node);
    cr_assert_eq(pipe(p), 0);
    start_on_fd(&node, p[1], "debug");           /* every message is two log lines */
    close(p[1]);
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    for (int i = 0; i < MESSAGES; i++) {
        client_sendf(&car, "S%d,K,0,0.00,stopped,standard,250,230,16,0,0,0,0,21,0,0,0,0", i);
        cr_assert_not_null(client_expect_prefix(&app, "S", 5000),
                           "relay stopped after %d messages while stderr was not read", i);
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    cr_assert(pipe_has(p[0], "lines dropped (stderr could not keep up)", 5000),
              "no report of dropped log lines");
    kill(node.pid, SIGTERM);
    int status;
    for (int i = 0; i < 500 && waitpid(node.pid, &status, WNOHANG) != node.pid; i++)
        pipe_has(p[0], "\x01", 20);             /* keep draining while it stops */
    node.pid = 0;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(p[0]);
}

static int count_log_lines(node_t *n, const char *text)
{
    char line[4096];
    int count = 0;
    FILE *f = fopen(n->log, "r");
    while (f && fgets(line, sizeof line, f))
        count += strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return count;
}

/* Failed logins from one address are summed up, not one line each, and
 * the text of a notification is not written at info level. */
Test(lifecycle, repeated_events_are_summed_up_and_contents_kept_out, .timeout = 60)
{
    client_t c, car;
    node_prepare(&node);
    node_start(&node, NULL);
    for (int i = 0; i < 60; i++) {
        client_connect(&c, node.port);
        const char *bad = "MP-A 0 abcdefghijklmnopqrstuv AAAAAAAAAAAAAAAAAAAAAA TESTCAR\r\n";
        client_send_raw(&c, bad, strlen(bad));
        client_wait_closed(&c, 2000);
        client_close(&c);
    }
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_send(&car, "PAthe secret words of the owner");
    client_send(&car, "A");
    cr_assert(client_expect(&car, "a", 3000));
    client_close(&car);
    cr_assert_eq(node_stop(&node), 0);
    int failures = count_log_lines(&node, "authentication failed for TESTCAR");
    cr_assert_leq(failures, 5, "%d lines for 60 failed logins from one address", failures);
    cr_assert(node_log_has(&node, "more in the last"), "no summary of the repeated failures");
    cr_assert(node_log_has(&node, "push alert A"), "the notification was not logged at all");
    cr_assert_not(node_log_has_now(&node, "secret words"), "a notification's text is in the log");
}

/* ---- what a kill -9 may lose ---------------------------------------------------------- */

/* A burst of S messages; the app sees the last relayed; `wait_ms` later
 * the node is killed. The replay after the restart must show that last
 * one: with --message-interval-ms 0 "durable promptly", otherwise at most
 * one interval later. */
static void burst_then_kill(int interval_ms, int wait_ms, int rounds)
{
    client_t car, app;
    char extra[64];
    snprintf(extra, sizeof extra, "--message-interval-ms %d", interval_ms);
    node_prepare(&node);
    for (int round = 0; round < rounds; round++) {
        char last[64];
        node_start(&node, "%s", extra);
        client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
        client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
        for (int i = 0; i < 50; i++)
            client_sendf(&car, "S%d.%d,K,220", round, i);
        snprintf(last, sizeof last, "S%d.49,K,220", round);
        cr_assert(client_expect(&app, last, 5000), "the last message was not relayed");
        usleep((useconds_t)wait_ms * 1000);
        node_kill9(&node);
        client_close(&car);
        client_close(&app);
        node_start(&node, "%s", extra);
        cr_assert_eq(client_login(&app, node.port, 'A', "TESTCAR", PW), 0);
        cr_assert_str_eq(client_recv(&app, 3000), "Z0");
        const char *m = client_recv(&app, 3000);
        cr_assert(m && !strcmp(m, last), "round %d (interval %d ms): kill -9 %d ms after the relay "
                  "lost %s; the replay has %s", round, interval_ms, wait_ms, last, m ? m : "nothing");
        client_close(&app);
        cr_assert_eq(node_stop(&node), 0);
    }
}

Test(lifecycle, a_relayed_message_is_durable_promptly_with_interval_0, .timeout = 60)
{
    burst_then_kill(0, 150, 3);
}

Test(lifecycle, a_relayed_message_is_durable_within_one_interval, .timeout = 60)
{
    burst_then_kill(1000, 1250, 2);
}
