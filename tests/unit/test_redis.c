/*
 * test_redis.c -- replication/redis.c against a real redis-server, started
 * here on a free loopback port (and a unix socket) and stopped by PID:
 * pipelined commands in order, pub/sub, AUTH, a Redis killed and started
 * again under traffic (every command answered or failed, down and up said
 * once each), and a loop that closes cleanly.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ovms_proto.h"
#include "ovms_repl.h"
#include "redis.h"

static pid_t redis_pid;
static int redis_port;
static char redis_dir[64], redis_sock[128];

static int free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
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

/* redis-server on 127.0.0.1:redis_port and a unix socket; password may be NULL. */
static void redis_start(const char *password)
{
    char port[16];
    if (!redis_dir[0]) {
        snprintf(redis_dir, sizeof redis_dir, "/tmp/ovms-redis-XXXXXX");
        cr_assert_not_null(mkdtemp(redis_dir));
        snprintf(redis_sock, sizeof redis_sock, "%s/redis.sock", redis_dir);
    }
    if (!redis_port)
        redis_port = free_port();
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", 1);
        dup2(null, 1);
        const char *argv[24] = { "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", redis_dir, "--unixsocket", redis_sock,
                                 "--daemonize", "no" };
        int n = 15;
        if (password) {
            argv[n++] = "--requirepass";
            argv[n++] = password;
        }
        argv[n] = NULL;
        execvp("redis-server", (char **)argv);
        _exit(127);
    }
    for (int i = 0; i < 300 && !can_connect(redis_port); i++)
        usleep(10000);
    cr_assert(can_connect(redis_port), "redis-server did not start");
}

static void redis_kill(void)
{
    int status;
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, &status, 0);
    }
    redis_pid = 0;
}

static void fini(void)
{
    redis_kill();
}

/* ---- a loop and its connections ----------------------------------------------------------------- */

static uv_loop_t loop;
static int ups, downs;
static char last_why[256];

static void on_state(repl_redis_t *rc, int up, const char *why, void *ctx)
{
    (void)rc;
    (void)ctx;
    if (up)
        ups++;
    else {
        downs++;
        snprintf(last_why, sizeof last_why, "%s", why ? why : "");
    }
}

static repl_redis_t *open_conn(const char *address, const char *password,
                               void (*on_push)(repl_redis_t *, redisReply *, void *))
{
    repl_redis_conf_t conf = { .on_state = on_state, .on_push = on_push, .max_backoff_ms = 200 };
    repl_redis_t *rc;
    snprintf(conf.address, sizeof conf.address, "%s", address);
    if (password)
        snprintf(conf.password, sizeof conf.password, "%s", password);
    cr_assert_eq(repl_redis_open(&rc, &loop, &conf), 0);
    return rc;
}

static void run_until(int *flag, int want, int ms)
{
    for (int i = 0; i < ms / 5 && *flag < want; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
}

static void close_loop(repl_redis_t **rcs, int n)
{
    for (int i = 0; i < n; i++)
        repl_redis_close(rcs[i]);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "the loop still had handles");
}

static void init(void)
{
    uv_loop_init(&loop);
    ups = downs = 0;
    last_why[0] = '\0';
}

TestSuite(redis, .init = init, .fini = fini, .timeout = 30);

/* ---- tests ------------------------------------------------------------------------------------------ */

typedef struct seen {
    int n, nulls, bad;
} seen_t;

static void count_reply(repl_redis_t *rc, redisReply *r, void *arg)
{
    seen_t *s = arg;
    (void)rc;
    if (!r)
        s->nulls++;
    else
        s->n++;
}

static int get_order;
static void check_get(repl_redis_t *rc, redisReply *r, void *arg)
{
    (void)rc;
    char want[32];
    snprintf(want, sizeof want, "v%ld", (long)(intptr_t)arg);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    cr_assert_str_eq(r->str, want);
    cr_assert_eq((intptr_t)arg, get_order, "replies out of order");
    get_order++;
}

Test(redis, pipelined_commands_are_answered_in_order)
{
    char addr[64];
    seen_t sets = { 0 };
    redis_start(NULL);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", redis_port);
    repl_redis_t *rc = open_conn(addr, NULL, NULL);
    run_until(&ups, 1, 3000);
    cr_assert_eq(ups, 1);
    get_order = 0;
    for (long i = 0; i < 2000; i++)
        cr_assert_eq(repl_redis_command(rc, count_reply, &sets, "SET k%ld v%ld", i, i), 0);
    for (long i = 0; i < 2000; i++)
        cr_assert_eq(repl_redis_command(rc, check_get, (void *)(intptr_t)i, "GET k%ld", i), 0);
    run_until(&get_order, 2000, 5000);
    cr_assert_eq(sets.n, 2000);
    cr_assert_eq(get_order, 2000);
    repl_redis_stats_t st;
    repl_redis_get_stats(rc, &st);
    cr_assert_eq(st.connects, 1);
    close_loop(&rc, 1);
}

static int subscribed, messages;
static char last_message[64];
static void on_push(repl_redis_t *rc, redisReply *r, void *ctx)
{
    (void)rc;
    (void)ctx;
    if (!strcmp(r->element[0]->str, "subscribe"))
        subscribed++;
    else if (!strcmp(r->element[0]->str, "message")) {
        messages++;
        snprintf(last_message, sizeof last_message, "%.*s", (int)r->element[2]->len, r->element[2]->str);
    }
}

Test(redis, subscribe_and_publish)
{
    char addr[64];
    seen_t pubs = { 0 };
    redis_start(NULL);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", redis_port);
    repl_redis_t *rcs[2] = { open_conn(addr, NULL, NULL), open_conn(addr, NULL, on_push) };
    run_until(&ups, 2, 3000);
    subscribed = messages = 0;
    const char *sub[] = { "SUBSCRIBE", "ovms:{CAR1}:car" };
    cr_assert_eq(repl_redis_push_command(rcs[1], 2, sub, NULL), 0);
    run_until(&subscribed, 1, 3000);
    cr_assert_eq(subscribed, 1);
    for (int i = 0; i < 100; i++)
        repl_redis_command(rcs[0], count_reply, &pubs, "PUBLISH %s m%d", "ovms:{CAR1}:car", i);
    run_until(&messages, 100, 3000);
    cr_assert_eq(messages, 100);
    cr_assert_str_eq(last_message, "m99");
    cr_assert_eq(pubs.n, 100);
    close_loop(rcs, 2);
}

Test(redis, auth_over_a_unix_socket_and_a_wrong_password)
{
    char addr[160];
    redis_start("s3cret");
    snprintf(addr, sizeof addr, "unix:%s", redis_sock);
    repl_redis_t *rcs[2] = { open_conn(addr, "s3cret", NULL), NULL };
    run_until(&ups, 1, 3000);
    cr_assert_eq(ups, 1);
    cr_assert(repl_redis_up(rcs[0]));
    rcs[1] = open_conn(addr, "wrong", NULL);
    run_until(&downs, 1, 3000);
    cr_assert_eq(ups, 1, "a wrong password came up");
    cr_assert(strstr(last_why, "refused at connect"), "%s", last_why);
    cr_assert_not(strstr(last_why, "wrong"), "the password is in the reason: %s", last_why);
    close_loop(rcs, 2);
}

static repl_redis_t *traffic_conn;
static seen_t traffic;
static int refused;
static void on_traffic(uv_timer_t *t)
{
    (void)t;
    for (int i = 0; i < 20; i++)
        if (repl_redis_command(traffic_conn, count_reply, &traffic, "INCR counter") < 0)
            refused++;
}

Test(redis, redis_killed_and_started_again_under_traffic)
{
    char addr[64];
    uv_timer_t t;
    redis_start(NULL);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", redis_port);
    traffic_conn = open_conn(addr, NULL, NULL);
    run_until(&ups, 1, 3000);
    memset(&traffic, 0, sizeof traffic);
    refused = 0;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_traffic, 1, 1);
    int never = 0;
    run_until(&never, 1, 300);
    redis_kill();                       /* in the middle of it */
    run_until(&downs, 1, 3000);
    cr_assert_eq(downs, 1);
    run_until(&never, 1, 500);
    cr_assert_eq(downs, 1, "the outage was reported more than once");
    cr_assert_gt(refused, 0, "commands were accepted while Redis was away");
    redis_start(NULL);
    run_until(&ups, 2, 5000);
    cr_assert_eq(ups, 2, "did not come back");
    int before = traffic.n;
    run_until(&never, 1, 300);
    cr_assert_gt(traffic.n, before, "no replies after the recovery");
    uv_timer_stop(&t);
    uv_close((uv_handle_t *)&t, NULL);
    int sent_ok = traffic.n + traffic.nulls;
    run_until(&never, 1, 200);
    /* every accepted command got its callback: a reply or NULL */
    repl_redis_stats_t st;
    repl_redis_get_stats(traffic_conn, &st);
    cr_assert_geq(traffic.n + traffic.nulls, sent_ok);
    cr_assert_eq((unsigned long long)(traffic.n + traffic.nulls), st.commands - 2 * 1,
                 "commands %llu, answered %d, failed %d", st.commands, traffic.n, traffic.nulls);
    close_loop(&traffic_conn, 1);
}

Test(redis, closing_fails_what_is_pending_and_the_loop_closes)
{
    char addr[64];
    seen_t s = { 0 };
    redis_start(NULL);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", redis_port);
    repl_redis_t *rc = open_conn(addr, NULL, NULL);
    run_until(&ups, 1, 3000);
    for (int i = 0; i < 50; i++)
        repl_redis_command(rc, count_reply, &s, "PING");
    close_loop(&rc, 1);                 /* before any reply came */
    cr_assert_eq(s.n + s.nulls, 50);
    cr_assert_eq(s.nulls, 50);
}

/* ---- the bus on top ------------------------------------------------------------------------------ */

typedef struct node_bus {
    int messages, ups, downs, watching, again;
    char last[128], from[33], vehicle[65];
    char type;
    int kind;
} node_bus_t;

static void bus_message(void *ctx, int kind, const char *vehicle, char type, const char *from,
                        const char *payload, size_t len)
{
    node_bus_t *n = ctx;
    n->messages++;
    n->kind = kind;
    n->type = type;
    snprintf(n->vehicle, sizeof n->vehicle, "%s", vehicle);
    snprintf(n->from, sizeof n->from, "%s", from);
    snprintf(n->last, sizeof n->last, "%.*s", (int)len, payload);
}

static void bus_watching(void *ctx, int kind, const char *name, int again)
{
    node_bus_t *n = ctx;
    (void)kind;
    (void)name;
    n->watching++;
    n->again += again;
}

static void bus_state(void *ctx, int up, const char *why)
{
    node_bus_t *n = ctx;
    (void)why;
    if (up)
        n->ups++;
    else
        n->downs++;
}

static ovms_bus_t *bus_for(const char *node, node_bus_t *n)
{
    ovms_bus_config_t cfg = { .on_message = bus_message, .on_state = bus_state,
                              .on_watching = bus_watching, .ctx = n };
    ovms_bus_t *b;
    snprintf(cfg.redis, sizeof cfg.redis, "127.0.0.1:%d", redis_port);
    snprintf(cfg.prefix, sizeof cfg.prefix, "ovmstest:");
    snprintf(cfg.node_id, sizeof cfg.node_id, "%s", node);
    cr_assert_eq(ovms_bus_open(&b, &loop, &cfg), 0);
    return b;
}

Test(redis, the_bus_carries_a_vehicle_channel_between_nodes_and_survives_a_restart)
{
    node_bus_t n1 = { 0 }, n2 = { 0 };
    int never = 0;
    redis_start(NULL);
    ovms_bus_t *b1 = bus_for("N1", &n1), *b2 = bus_for("N2", &n2);
    run_until(&n2.ups, 1, 3000);
    run_until(&n1.ups, 1, 3000);
    cr_assert(ovms_bus_up(b1) && ovms_bus_up(b2));
    cr_assert_eq(ovms_bus_watch(b2, "CAR1"), 0);
    cr_assert_eq(ovms_bus_watch(b2, "CAR1"), 0);        /* counted */
    run_until(&n2.watching, 1, 2000);                   /* Redis confirmed it once */
    run_until(&never, 1, 200);
    cr_assert_eq(n2.watching, 1);
    cr_assert_eq(n2.again, 0);
    cr_assert_eq(ovms_bus_publish(b1, "CAR1", 'M', "S80.0,K,0", 9), 0);
    cr_assert_eq(ovms_bus_publish(b2, "CAR1", 'M', "own", 3), 0);   /* not delivered to itself */
    cr_assert_eq(ovms_bus_publish(b1, "CAR2", 'M', "unwatched", 9), 0);
    run_until(&n2.messages, 1, 2000);
    run_until(&never, 1, 200);
    cr_assert_eq(n2.messages, 1);
    cr_assert_eq(n2.type, 'M');
    cr_assert_str_eq(n2.vehicle, "CAR1");
    cr_assert_str_eq(n2.from, "N1");
    cr_assert_str_eq(n2.last, "S80.0,K,0");
    cr_assert_eq(n1.messages, 0);

    /* Redis goes away and comes back: the watch is subscribed again */
    redis_kill();
    run_until(&n2.downs, 1, 3000);
    cr_assert_eq(n2.downs, 1);
    cr_assert_eq(ovms_bus_publish(b1, "CAR1", 'M', "lost", 4), OVMS_ECLOSED);
    redis_start(NULL);
    run_until(&n2.ups, 2, 5000);
    run_until(&n1.ups, 2, 5000);
    cr_assert_eq(n2.ups, 2);
    run_until(&n2.watching, 2, 2000);                   /* resubscribed, and told so */
    cr_assert_eq(n2.again, 1);
    run_until(&never, 1, 200);
    cr_assert_eq(ovms_bus_publish(b1, "CAR1", 'M', "after", 5), 0);
    run_until(&n2.messages, 2, 2000);
    cr_assert_eq(n2.messages, 2);
    cr_assert_str_eq(n2.last, "after");

    /* a group is a topic of its own: same name, another channel */
    cr_assert_eq(ovms_bus_watch_topic(b2, OVMS_BUS_GROUP, "CAR1"), 0);
    run_until(&n2.watching, 3, 2000);
    cr_assert_eq(ovms_bus_publish_topic(b1, OVMS_BUS_GROUP, "CAR1", 'g', "CAR9,80", 7), 0);
    run_until(&n2.messages, 3, 2000);
    cr_assert_eq(n2.messages, 3);
    cr_assert_eq(n2.kind, OVMS_BUS_GROUP);
    cr_assert_str_eq(n2.vehicle, "CAR1");
    cr_assert_str_eq(n2.last, "CAR9,80");
    ovms_bus_unwatch_topic(b2, OVMS_BUS_GROUP, "CAR1");
    cr_assert_eq(ovms_bus_publish(b1, "CAR1", 'M', "vehicle", 7), 0);    /* still watched */
    run_until(&n2.messages, 4, 2000);
    cr_assert_eq(n2.kind, OVMS_BUS_VEHICLE);
    cr_assert_str_eq(n2.last, "vehicle");

    /* the last release unsubscribes */
    ovms_bus_unwatch(b2, "CAR1");
    ovms_bus_unwatch(b2, "CAR1");
    cr_assert_eq(ovms_bus_watched(b2), 0);
    run_until(&never, 1, 200);
    ovms_bus_publish(b1, "CAR1", 'M', "nobody", 6);
    run_until(&never, 1, 300);
    cr_assert_eq(n2.messages, 4);
    ovms_bus_close(b1);
    ovms_bus_close(b2);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
