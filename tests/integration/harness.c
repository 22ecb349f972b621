/*
 * harness.c -- starts ovmsd as a child process and drives it over sockets.
 * Binaries come from OVMSD_BIN (set by CMake); every wait is bounded.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/close_range.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

const char *harness_bin(const char *env, const char *built)
{
    const char *v = getenv(env);
    return v && *v ? v : built;
}

/* A random port below the kernel's ephemeral range, free now. Not bind(0):
 * two test processes asking the kernel one after the other can be handed
 * the same just-released port, and since ovmsd listens with SO_REUSEPORT
 * both nodes would then bind it and share each other's connections. */
int harness_free_port(void)
{
    static uint64_t rng;
    if (!rng)
        rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
    for (int tries = 0; tries < 1000; tries++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int port = 15000 + (int)(rng % 17000);          /* 15000-31999 */
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    cr_assert_fail("no free port");
    return -1;
}

ovms_store_t *node_store(node_t *n)
{
    ovms_store_config_t cfg = { .path = n->db, .node_id = n->id[0] ? n->id : "TESTNODE",
                                .expire_interval_ms = -1 };
    ovms_store_t *st;
    char err[256];
    cr_assert_eq(ovms_store_open(&st, &cfg, err, sizeof err), 0, "%s", err);
    return st;
}

int node_rows(node_t *n, ovms_store_req_t *req)
{
    ovms_store_t *st = node_store(n);
    cr_assert_eq(ovms_store_run(st, req), 0, "a read of %s failed", n->db);
    ovms_store_close(st);
    return req->rows.nrows;
}

static int can_connect(int port);

static void node_dirs(node_t *n)
{
    snprintf(n->dir, sizeof n->dir, "/tmp/ovmsd-test-XXXXXX");
    cr_assert_not_null(mkdtemp(n->dir));
    snprintf(n->db, sizeof n->db, "%s/node.db", n->dir);
    snprintf(n->log, sizeof n->log, "%s/ovmsd.log", n->dir);
    snprintf(n->conf, sizeof n->conf, "%s/ovmsd.conf", n->dir);
}

static void add_fixtures(node_t *n)
{
    ovms_store_req_t req;
    char hash[160];
    ovms_store_t *st = node_store(n);
    ovms_store_req_init(&req);
    ovms_password_hash("ownerpw", hash, sizeof hash);
    ovms_store_prep_owner_put(&req, "owner", "owner@example.org", hash, 1, OVMS_STORE_CREATE);
    cr_assert_eq(ovms_store_run(st, &req), 0);
    ovms_store_prep_vehicle_put(&req, "TESTCAR", "owner", "NETPASS", NULL, NULL, OVMS_STORE_CREATE);
    cr_assert_eq(ovms_store_run(st, &req), 0);
    ovms_store_prep_vehicle_put(&req, "OTHERCAR", "owner", "OTHERPW", NULL, NULL, OVMS_STORE_CREATE);
    cr_assert_eq(ovms_store_run(st, &req), 0);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

void node_prepare(node_t *n)
{
    memset(n, 0, sizeof *n);
    node_dirs(n);
    add_fixtures(n);
}

void cluster_node_prepare(node_t *n, const char *id, int fixtures)
{
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", id);
    node_dirs(n);
    if (fixtures)
        add_fixtures(n);
    else
        ovms_store_close(node_store(n));
}

static int linked(const char *topology, int count, int i, int j)
{
    if (!strcmp(topology, "mesh"))
        return 1;
    if (!strcmp(topology, "star"))
        return i == 0 || j == 0;
    if (!strcmp(topology, "ring") && count > 2 && ((i == 0 && j == count - 1) || (j == 0 && i == count - 1)))
        return 1;
    return abs(i - j) == 1;                 /* chain (and the rest of the ring) */
}

void cluster_peer_flags(node_t *nodes, int count, const char *topology, int i, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    for (int j = 0; j < count; j++) {
        if (j == i || !linked(topology, count, i, j))
            continue;
        int lo = i < j ? i : j, hi = i < j ? j : i;
        /* the later one dials; in a mesh both do (a second link replaces the first) */
        int dial = i > j || !strcmp(topology, "mesh");
        at += (size_t)snprintf(out + at, cap - at, " --peer %s:secret-%d-%d", nodes[j].id, lo, hi);
        if (dial)
            at += (size_t)snprintf(out + at, cap - at, "@127.0.0.1:%d", nodes[j].port);
    }
}

void cluster_start(node_t *nodes, int count, const char *topology, const char *extra)
{
    char flags[2048];
    for (int i = 0; i < count; i++)
        if (!nodes[i].port)
            nodes[i].port = harness_free_port();
    for (int i = 0; i < count; i++) {
        cluster_peer_flags(nodes, count, topology, i, flags, sizeof flags);
        node_start(&nodes[i], "%s %s", flags, extra ? extra : "");
    }
}

static void run_capture(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    cr_assert_not_null(p, "cannot run %s", cmd);
    while (n + 1 < cap) {
        size_t got = fread(out + n, 1, cap - 1 - n, p);
        if (!got)
            break;
        n += got;
    }
    out[n] = '\0';
    pclose(p);
}

void node_digest(node_t *n, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --db %s cluster digest 2>&1", OVMS_ADMIN_PATH, n->db);
    run_capture(cmd, out, cap);
}

int cluster_converged(node_t *nodes, int count, int timeout_ms)
{
    char first[1024], other[1024];
    for (double end = now_ms() + timeout_ms; now_ms() < end; usleep(100000)) {
        int same = 1;
        node_digest(&nodes[0], first, sizeof first);
        for (int i = 1; i < count && same; i++) {
            node_digest(&nodes[i], other, sizeof other);
            same = !strcmp(first, other);
        }
        if (same && strstr(first, "owners "))
            return 1;
    }
    for (int i = 0; i < count; i++) {
        node_digest(&nodes[i], other, sizeof other);
        fprintf(stderr, "node %s:\n%s", nodes[i].id, other);
    }
    return 0;
}

int node_admin(node_t *n, const char *args_fmt, ...)
{
    char args[1024], cmd[2048];
    va_list ap;
    va_start(ap, args_fmt);
    vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s --db %s %s >>%s/admin.out 2>&1", OVMS_ADMIN_PATH, n->db, args, n->dir);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

pid_t redis_start(int port)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close_range(3, ~0u, 0);      /* not the test's client sockets: their close must be seen */
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execlp("redis-server", "redis-server", "--port", portarg, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300 && !can_connect(port); i++)
        usleep(10000);
    cr_assert(can_connect(port), "redis-server did not start on %d", port);
    return pid;
}

void redis_stop(pid_t pid)
{
    int status;
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

int peer_login(client_t *c, int port, const char *id, const char *secret, const char *marks)
{
    char token[OVMS_TOKEN_LEN + 1], digest[OVMS_DIGEST_B64_LEN + 1], line[512], stoken[64];
    size_t len;
    client_connect(c, port);
    c->role = 'S';
    ovms_token_generate(token);
    ovms_digest_b64(secret, strlen(secret), token, strlen(token), digest);
    int n = snprintf(line, sizeof line, "MP-S 0 %s %s %s%s%s\r\n", token, digest, id,
                     marks && *marks ? " " : "", marks ? marks : "");
    client_send_raw(c, line, (size_t)n);
    const char *reply = client_recv_line(c, 3000, &len);
    if (!reply || ovms_server_welcome_verify(reply, len, secret, strlen(secret), token, stoken,
                                             sizeof stoken) < 0)
        return -1;
    ovms_session_init(&c->session, secret, strlen(secret), stoken, strlen(stoken), token,
                      strlen(token));
    const char *rw = client_recv(c, 3000);
    return rw && !strncmp(rw, "RW", 2) ? 0 : -1;
}

static int can_connect(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

void node_start(node_t *n, const char *args_fmt, ...)
{
    char args[1024] = "", cmd[2048];
    va_list ap;
    if (args_fmt) {
        va_start(ap, args_fmt);
        vsnprintf(args, sizeof args, args_fmt, ap);
        va_end(ap);
    }
    if (!n->port)
        n->port = harness_free_port();
    /* failed logins are no offence here unless a test says so (its flags come later and win):
     * tests fail logins on purpose, all from 127.0.0.1 */
    snprintf(cmd, sizeof cmd, "exec %s --db %s --listen 127.0.0.1:%d --workers 2 --node-id %s "
             "--login-penalty 0 --vehicle-login-penalty 0 %s >>%s 2>&1",
             OVMSD_PATH, n->db, n->port, n->id[0] ? n->id : "TESTNODE", args, n->log);
    n->pid = fork();
    cr_assert_geq(n->pid, 0);
    if (n->pid == 0) {
        /* if the test process dies (a failed assertion), the node goes with it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close_range(3, ~0u, 0);      /* not the test's client sockets: their close must be seen */
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        if (can_connect(n->port))
            return;
        int status;
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            n->pid = 0;
            cr_assert_fail("ovmsd exited at start (status %d); see %s", WEXITSTATUS(status), n->log);
        }
        usleep(10000);
    }
    cr_assert_fail("ovmsd did not start listening on %d", n->port);
}

/* Under the TSan stage a report may come from a node that is killed, not
 * stopped: the log says so either way. */
static void no_race_reported(node_t *n)
{
    cr_assert_not(node_log_has_now(n, "WARNING: ThreadSanitizer"), "ThreadSanitizer reported; see %s", n->log);
}

int node_stop(node_t *n)
{
    int status;
    if (n->pid <= 0)
        return -1;
    no_race_reported(n);
    kill(n->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            n->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(10000);
    }
    kill(n->pid, SIGKILL);
    waitpid(n->pid, &status, 0);
    n->pid = 0;
    return -1;
}


void node_kill9(node_t *n)
{
    int status;
    no_race_reported(n);
    if (n->pid > 0) {
        kill(n->pid, SIGKILL);
        waitpid(n->pid, &status, 0);
    }
    n->pid = 0;
}

long node_rss_kb(node_t *n)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)n->pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

int node_log_has(node_t *n, const char *text)
{
    /* the node's log is written by a thread of its own: give a line time */
    for (int waited = 0; waited < 2000; waited += 20) {
        if (node_log_has_now(n, text))
            return 1;
        usleep(20000);
    }
    return 0;
}

int node_log_has_now(node_t *n, const char *text)
{
    char line[4096];
    int found = 0;
    FILE *f = fopen(n->log, "r");
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* ---- clients ------------------------------------------------------------------------ */

void client_connect(client_t *c, int port)
{
    client_connect_from(c, port, NULL);
}

void client_connect_from(client_t *c, int port, const char *source)
{
    client_connect_host(c, "127.0.0.1", port, source);
}

void client_connect_host(client_t *c, const char *host, int port, const char *source)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int one = 1;
    memset(c, 0, sizeof *c);
    cr_assert_eq(inet_pton(AF_INET, host, &a.sin_addr), 1, "bad address %s", host);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(c->fd, 0);
    if (source) {
        struct sockaddr_in from = { .sin_family = AF_INET };
        cr_assert_eq(inet_pton(AF_INET, source, &from.sin_addr), 1, "bad source %s", source);
        cr_assert_eq(bind(c->fd, (struct sockaddr *)&from, sizeof from), 0, "bind %s: %s", source,
                     strerror(errno));
    }
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ovms_linesplit_init(&c->ls, OVMS_CLIENT_LINE_MAX, c->tail, sizeof c->tail);
}

void client_connect_tls(client_t *c, int port)
{
    static SSL_CTX *ctx;
    client_connect(c, port);
    if (!ctx)
        ctx = SSL_CTX_new(TLS_client_method());
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");      /* cars send SNI */
    cr_assert_eq(SSL_connect(c->ssl), 1, "TLS handshake failed");
}

void make_test_certificate(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
             "-keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1", dir, dir);
    cr_assert_eq(system(cmd), 0, "openssl could not make a certificate");
}

void client_send_raw(client_t *c, const char *bytes, size_t len)
{
    while (len > 0) {
        ssize_t n = c->ssl ? SSL_write(c->ssl, bytes, (int)len) : send(c->fd, bytes, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;               /* the server closed: tests look at the reads */
        bytes += n;
        len -= (size_t)n;
    }
}

const char *client_recv_line(client_t *c, int timeout_ms, size_t *len)
{
    double deadline = now_ms() + timeout_ms;
    ovms_str_t line;
    for (;;) {
        const char *p = c->inbuf + c->inpos;
        size_t n = c->inlen - c->inpos;
        int rc = ovms_linesplit_next(&c->ls, &p, &n, &line);
        c->inpos = (size_t)(p - c->inbuf);
        if (rc > 0) {
            if (len)
                *len = line.len;
            return line.ptr;
        }
        cr_assert_geq(rc, 0, "line from the server over 8192 bytes");
        if (c->closed)
            return NULL;
        double left = deadline - now_ms();
        if (left <= 0)
            return NULL;
        struct pollfd pfd = { c->fd, POLLIN, 0 };
        if (!(c->ssl && SSL_pending(c->ssl)) && poll(&pfd, 1, (int)left + 1) <= 0)
            return NULL;
        ssize_t got = c->ssl ? SSL_read(c->ssl, c->inbuf, sizeof c->inbuf)
                             : recv(c->fd, c->inbuf, sizeof c->inbuf, 0);
        if (got <= 0) {
            c->closed = 1;
            return NULL;
        }
        c->inlen = (size_t)got;
        c->inpos = 0;
    }
}

const char *client_recv(client_t *c, int timeout_ms)
{
    size_t len;
    const char *line = client_recv_line(c, timeout_ms, &len);
    char buf[OVMS_CLIENT_LINE_MAX];
    ovms_msg_t m;
    if (!line)
        return NULL;
    cr_assert_eq(ovms_session_decode(&c->session, line, len, buf, sizeof buf, &m), 0,
                 "undecodable line from the server");
    c->msg[0] = m.code;
    memcpy(c->msg + 1, m.payload.ptr, m.payload.len);
    c->msg[1 + m.payload.len] = '\0';
    return c->msg;
}

void client_send(client_t *c, const char *msg)
{
    char wire[OVMS_WIRE_LEN(OVMS_CLIENT_LINE_MAX)];
    int n = ovms_session_encode(&c->session, msg, strlen(msg), wire, sizeof wire);
    cr_assert_gt(n, 0);
    client_send_raw(c, wire, (size_t)n);
}

void client_sendf(client_t *c, const char *fmt, ...)
{
    char msg[OVMS_CLIENT_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    client_send(c, msg);
}

int client_login(client_t *c, int port, char role, const char *vehicle, const char *password)
{
    client_connect(c, port);
    return client_login_on(c, role, vehicle, password);
}

int client_login_on(client_t *c, char role, const char *vehicle, const char *password)
{
    char token[OVMS_TOKEN_LEN + 1], digest[OVMS_DIGEST_B64_LEN + 1], line[256], stoken[64];
    size_t len;
    c->role = role;
    ovms_token_generate(token);
    ovms_digest_b64(password, strlen(password), token, strlen(token), digest);
    int n = ovms_welcome_format_client(line, sizeof line, role, token, digest, vehicle);
    client_send_raw(c, line, (size_t)n);
    const char *reply = client_recv_line(c, 3000, &len);
    if (!reply)
        return -1;
    cr_assert_eq(ovms_server_welcome_verify(reply, len, password, strlen(password), token, stoken,
                                            sizeof stoken), 0, "bad server welcome %.*s", (int)len, reply);
    ovms_session_init(&c->session, password, strlen(password), stoken, strlen(stoken), token,
                      strlen(token));
    return 0;
}

int client_login_ok(client_t *c, int port, char role, const char *vehicle, const char *password)
{
    cr_assert_eq(client_login(c, port, role, vehicle, password), 0, "login refused");
    const char *z = client_recv(c, 3000);
    cr_assert_not_null(z, "no Z after login");
    cr_assert_eq(z[0], 'Z', "first message %s", z);
    int value = atoi(z + 1);
    if (role != 'C') {
        const char *m;
        while ((m = client_recv(c, 3000)) && m[0] != 'T')
            ;
        cr_assert_not_null(m, "login burst did not end with T");
    }
    return value;
}

int client_expect(client_t *c, const char *want, int timeout_ms)
{
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        double left = deadline - now_ms();
        const char *m = left > 0 ? client_recv(c, (int)left) : NULL;
        if (!m)
            return 0;
        if (!strcmp(m, want))
            return 1;
    }
}

const char *client_expect_prefix(client_t *c, const char *prefix, int timeout_ms)
{
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        double left = deadline - now_ms();
        const char *m = left > 0 ? client_recv(c, (int)left) : NULL;
        if (!m || !strncmp(m, prefix, strlen(prefix)))
            return m;
    }
}

int client_silent(client_t *c, int ms, const char *ignore)
{
    double deadline = now_ms() + ms;
    for (;;) {
        double left = deadline - now_ms();
        if (left <= 0)
            return 1;
        const char *m = client_recv(c, (int)left);
        if (!m)
            return 1;
        if (!ignore || strncmp(m, ignore, strlen(ignore)) != 0) {
            cr_log_warn("unexpected message: %s", m);
            return 0;
        }
    }
}

int client_wait_closed(client_t *c, int ms)
{
    double deadline = now_ms() + ms;
    while (!c->closed) {
        double left = deadline - now_ms();
        if (left <= 0)
            return 0;
        size_t len;
        if (!client_recv_line(c, (int)left, &len) && !c->closed)
            return 0;
    }
    return 1;
}

/* Read a C31/C32 reply to its end: the lines, joined by '\n', into out. */
int client_read_reply(client_t *app, const char *cmd, char *out, size_t cap)
{
    int n = 0, total = 1;
    size_t len = 0;
    char want[8];
    snprintf(want, sizeof want, "c%.2s,", cmd + 1);
    out[0] = '\0';
    client_send(app, cmd);
    while (n < total) {
        const char *m = client_expect_prefix(app, want, 3000);
        cr_assert_not_null(m, "no reply to %s", cmd);
        if (!strncmp(m + 4, "1,", 2)) {
            snprintf(out, cap, "%s", m);
            return 0;
        }
        int k;
        cr_assert_eq(sscanf(m + 4, "0,%d,%d,", &k, &total), 2, "%s", m);
        len += (size_t)snprintf(out + len, cap - len, "%s\n", m);
        n++;
    }
    return n;
}

void client_close(client_t *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}
