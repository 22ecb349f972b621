/*
 * test_fleet_run.c -- ovms-fleet against real nodes: every scenario at a
 * small size against one node, cross-node against a 3-node cluster on a
 * real redis-server; the counts must add up (sent = received, nothing
 * lost, duplicated or misrouted), and a run that does lose (its node killed
 * under it) must say so and fail.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define FLEET_LIMITS "--max-unauthenticated-per-address 5000 --max-unauthenticated 5000"

typedef struct run {
    int status;              /* exit status */
    char out[65536];         /* everything it printed */
    json_t *json;            /* its last line */
} run_t;

static void fleet(run_t *r, const char *fmt, ...)
{
    char args[2048], cmd[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s --no-progress 2>&1", OVMS_FLEET_BIN, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run %s", cmd);
    size_t n = fread(r->out, 1, sizeof r->out - 1, p);
    r->out[n] = '\0';
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char *last = r->out + n;
    while (last > r->out && last[-1] == '\n')
        *--last = '\0';
    char *line = strrchr(r->out, '\n');
    r->json = json_loads(line ? line + 1 : r->out, 0, NULL);
}

static json_int_t num(json_t *o, const char *path)
{
    char key[64];
    const char *dot = strchr(path, '.');
    if (!dot)
        return json_integer_value(json_object_get(o, path));
    snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
    return num(json_object_get(o, key), dot + 1);
}

/* The run succeeded and what was sent arrived: once, in order, where it belonged. */
static void expect_counts_add_up(run_t *r, const char *what)
{
    cr_assert(r->json, "%s: no JSON line:\n%s", what, r->out);
    cr_assert_eq(r->status, 0, "%s: exit status %d:\n%s", what, r->status, r->out);
    cr_assert(json_is_true(json_object_get(r->json, "ok")), "%s: not ok:\n%s", what, r->out);
    cr_assert_gt(num(r->json, "sent"), 0, "%s: nothing sent:\n%s", what, r->out);
    cr_assert_eq(num(r->json, "sent"), num(r->json, "received"), "%s: sent != received:\n%s", what, r->out);
    cr_assert_eq(num(r->json, "lost"), 0, "%s", what);
    cr_assert_eq(num(r->json, "dups"), 0, "%s", what);
    cr_assert_eq(num(r->json, "misrouted"), 0, "%s", what);
    cr_assert_eq(num(r->json, "errors"), 0, "%s", what);
    json_t *lat = json_object_get(r->json, "latency_ms");
    cr_assert(json_number_value(json_object_get(lat, "p50")) > 0, "%s: no latency", what);
    cr_assert(json_number_value(json_object_get(lat, "max")) >= json_number_value(json_object_get(lat, "p99")));
}

static node_t node;

static void start_node(void)
{
    node_prepare(&node);
    node_start(&node, FLEET_LIMITS);
}

static void stop_node(void)
{
    cr_assert_eq(node_stop(&node), 0, "the node did not stop cleanly");
}

#define ONE_NODE(r, scenario, extra)                                                              \
    fleet(r, "%s --server 127.0.0.1:%d --db %s --duration 1 --json " extra, scenario, node.port, node.db)

Test(fleet, relay_open_and_closed_loop, .timeout = 120)
{
    run_t r;
    start_node();
    ONE_NODE(&r, "relay", "--cars 40 --apps-per-car 2 --rate 20");
    expect_counts_add_up(&r, "relay, open loop");
    cr_assert_eq(num(r.json, "relay.car_messages") * 2, num(r.json, "sent"), "two apps per car");
    cr_assert(strstr(r.out, "open loop"));
    json_decref(r.json);
    ONE_NODE(&r, "relay", "--cars 20 --rate 0 --window 4");
    expect_counts_add_up(&r, "relay, closed loop");
    cr_assert(!strcmp(json_string_value(json_object_get(r.json, "loop")), "closed"));
    json_decref(r.json);
    stop_node();
}

Test(fleet, commands_and_history, .timeout = 120)
{
    run_t r;
    start_node();
    ONE_NODE(&r, "commands", "--cars 20");
    expect_counts_add_up(&r, "commands, one at a time");
    json_decref(r.json);
    ONE_NODE(&r, "commands", "--cars 20 --command-rate 10");
    expect_counts_add_up(&r, "commands at 10/s per app");
    json_decref(r.json);
    ONE_NODE(&r, "history", "--cars 20 --window 4");
    expect_counts_add_up(&r, "history");
    /* acknowledged means stored: the node holds every record */
    ovms_store_t *st = node_store(&node);
    ovms_vehicle_t v;
    cr_assert_eq(ovms_store_vehicle_get(st, "FLEET000019", &v), 0, "the fleet was provisioned");
    ovms_store_close(st);
    json_decref(r.json);
    stop_node();
}

Test(fleet, login_storm_idle_mixed_and_churn, .timeout = 180)
{
    run_t r;
    start_node();
    ONE_NODE(&r, "login-storm", "--cars 16");
    expect_counts_add_up(&r, "login-storm");   /* (the logins in flight at the end are not counted sent) */
    cr_assert_gt(num(r.json, "connections.logins"), 100, "%s", r.out);
    json_decref(r.json);
    ONE_NODE(&r, "idle", "--cars 300 --apps-per-car 1 --hold 2");
    expect_counts_add_up(&r, "idle");
    cr_assert_eq(num(r.json, "connections.held"), 600);
    json_t *srv = json_object_get(r.json, "server");
    cr_assert(srv && json_number_value(json_object_get(srv, "bytes_per_conn")) > 0,
              "the node's memory per connection, from /proc:\n%s", r.out);
    json_decref(r.json);
    fleet(&r, "mixed --server 127.0.0.1:%d --db %s --cars 400 --active 0.25 --rate 5 --command-rate 1 "
              "--history-rate 1 --duration 2 --json", node.port, node.db);
    expect_counts_add_up(&r, "mixed");
    cr_assert_gt(num(r.json, "commands.answered"), 0, "%s", r.out);
    cr_assert_eq(num(r.json, "commands.answered"), num(r.json, "commands.sent"));
    cr_assert_gt(num(r.json, "history.acked"), 0, "%s", r.out);
    cr_assert_eq(num(r.json, "history.acked"), num(r.json, "history.sent"));
    json_decref(r.json);
    fleet(&r, "churn --server 127.0.0.1:%d --db %s --cars 30 --rate 10 --lifetime 0.5 --duration 3 --json",
          node.port, node.db);
    expect_counts_add_up(&r, "churn");
    cr_assert_gt(num(r.json, "connections.reconnects"), 20, "nobody came and went:\n%s", r.out);
    json_decref(r.json);
    stop_node();
}

Test(fleet, cross_node_on_a_three_node_cluster, .timeout = 180)
{
    node_t nodes[3];
    run_t r;
    int redis_port = harness_free_port();
    pid_t redis = redis_start(redis_port);
    char extra[256];
    cluster_node_prepare(&nodes[0], "N1", 1);
    cluster_node_prepare(&nodes[1], "N2", 0);
    cluster_node_prepare(&nodes[2], "N3", 0);
    snprintf(extra, sizeof extra, "--redis 127.0.0.1:%d " FLEET_LIMITS, redis_port);
    cluster_start(nodes, 3, "mesh", extra);
    cr_assert(cluster_converged(nodes, 3, 10000));
    fleet(&r, "cross-node --server 127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d --db %s,%s,%s --cars 60 "
              "--apps-per-car 2 --rate 10 --duration 3 --json", nodes[0].port, nodes[1].port, nodes[2].port,
          nodes[0].db, nodes[1].db, nodes[2].db);
    expect_counts_add_up(&r, "cross-node");
    cr_assert_eq(num(r.json, "nodes"), 3);
    json_decref(r.json);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(node_stop(&nodes[i]), 0);
    redis_stop(redis);
}

Test(fleet, a_node_killed_under_the_fleet_fails_the_run, .timeout = 120)
{
    run_t r;
    start_node();
    pid_t killer = fork();
    if (killer == 0) {
        sleep(2);                /* provisioned, connected, a second into the load */
        kill(node.pid, SIGKILL);
        _exit(0);
    }
    ONE_NODE(&r, "relay", "--cars 20 --rate 20 --duration 4 --connect-timeout 5");
    waitpid(killer, NULL, 0);
    waitpid(node.pid, NULL, 0);
    cr_assert(r.json, "no JSON line:\n%s", r.out);
    cr_assert_eq(r.status, 1, "exit status %d:\n%s", r.status, r.out);
    cr_assert(json_is_false(json_object_get(r.json, "ok")));
    cr_assert_gt(num(r.json, "connections.disconnects"), 0, "%s", r.out);
    cr_assert(strstr(r.out, "FAILED"), "%s", r.out);
    json_decref(r.json);
}

Test(fleet, refuses_what_it_should_not_do, .timeout = 30)
{
    run_t r;
    fleet(&r, "relay --server 192.0.2.1:6867 --duration 1");
    cr_assert_eq(r.status, 2, "%s", r.out);
    cr_assert(strstr(r.out, "outside 127.0.0.0/8"), "%s", r.out);
    fleet(&r, "relay --cars many");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.out, "cars: expected a whole number"), "%s", r.out);
    fleet(&r, "parade");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.out, "unknown scenario"), "%s", r.out);
    fleet(&r, "relay --duration 0");
    cr_assert_eq(r.status, 2, "an unbounded run");
    fleet(&r, "--help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "login-storm") && strstr(r.out, "--json"), "%s", r.out);
}
