/*
 * test_bus.c -- live traffic across nodes over the Redis bus: a car on one
 * node and its apps on others, with a real redis-server and real ovmsd
 * nodes on loopback, all started and stopped by PID here.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define PW "NETPASS"

static node_t nodes[3];
static pid_t redis;
static int redis_port;

/* Three nodes in a mesh on one Redis; flags go to every node. */
static void start_cluster_with(const char *flags)
{
    char extra[256];
    redis_port = harness_free_port();
    redis = redis_start(redis_port);
    cluster_node_prepare(&nodes[0], "N1", 1);
    cluster_node_prepare(&nodes[1], "N2", 0);
    cluster_node_prepare(&nodes[2], "N3", 0);
    snprintf(extra, sizeof extra, "--redis 127.0.0.1:%d %s", redis_port, flags);
    cluster_start(nodes, 3, "mesh", extra);
    cr_assert(cluster_converged(nodes, 3, 10000), "the nodes did not converge");
}

static void start_cluster(void)
{
    start_cluster_with("");
}

static void stop_cluster(void)
{
    for (int i = 0; i < 3; i++)
        if (nodes[i].pid > 0)
            cr_assert_eq(node_stop(&nodes[i]), 0, "node %s did not stop cleanly", nodes[i].id);
    redis_stop(redis);
}

/* An app's login burst: Z, then anything, up to T; the Z value. */
static int app_login(client_t *app, node_t *n)
{
    cr_assert_eq(client_login(app, n->port, 'A', "TESTCAR", PW), 0);
    const char *z = client_recv(app, 3000);
    cr_assert(z && z[0] == 'Z', "no Z: %s", z ? z : "(nothing)");
    int value = atoi(z + 1);
    for (const char *m; (m = client_recv(app, 2000)) && m[0] != 'T';)
        ;
    return value;
}

Test(bus, a_car_on_one_node_and_its_apps_on_two_others, .timeout = 60)
{
    client_t car, app2, app3;
    start_cluster();
    cr_assert_eq(app_login(&app2, &nodes[1]), 0, "Z1 with no car anywhere");
    /* the car arrives on node 1: the apps elsewhere hear of it, the car counts them */
    client_login(&car, nodes[0].port, 'C', "TESTCAR", PW);
    const char *z = client_recv(&car, 3000);
    cr_assert(z && z[0] == 'Z');
    int counted = atoi(z + 1);
    if (counted != 1)
        cr_assert(client_expect(&car, "Z1", 2000), "the car never counted the app on node 2 (Z%d)", counted);
    cr_assert(client_expect(&app2, "Z1", 3000), "the app on node 2 never saw the car");
    cr_assert_eq(app_login(&app3, &nodes[2]), 1, "node 3 does not know the car is on node 1");
    cr_assert(client_expect(&car, "Z2", 3000), "the car did not count two apps");

    /* its messages reach both, once each, in order, each followed by T0 */
    for (int i = 0; i < 50; i++)
        client_sendf(&car, "S%d.0,K,0,0.00,stopped,standard,250,230", i);
    client_t *apps[2] = { &app2, &app3 };
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 50; i++) {
            char want[64];
            snprintf(want, sizeof want, "S%d.0,K,0,0.00,stopped,standard,250,230", i);
            const char *m = client_recv(apps[k], 3000);
            cr_assert(m && !strcmp(m, want), "app %d: expected %s, got %s", k + 2, want, m ? m : "nothing");
            m = client_recv(apps[k], 3000);
            cr_assert(m && !strcmp(m, "T0"), "app %d: no T0 after %s (%s)", k + 2, want, m ? m : "nothing");
        }
    cr_assert(client_silent(&app2, 500, "Z"), "a message came twice");
    /* alerts, the paranoid token and replies nobody asked for go to every node's apps as is */
    client_send(&car, "PIcharge finished");
    client_send(&car, "ETnewtoken123");
    client_send(&car, "c99,0,nobody asked");
    for (int k = 0; k < 2; k++) {
        cr_assert(client_expect(apps[k], "PIcharge finished", 3000), "app %d: no alert", k + 2);
        cr_assert(client_expect(apps[k], "ETnewtoken123", 3000), "app %d: no ET", k + 2);
        cr_assert(client_expect(apps[k], "c99,0,nobody asked", 3000), "app %d: no c99", k + 2);
    }

    /* commands from an app on node 2 reach the car on node 1; replies, multi-line too, only it */
    client_send(&app2, "C6,1");
    cr_assert(client_expect(&car, "C6,1", 3000), "the command did not reach the car");
    client_send(&car, "c6,0,done");
    cr_assert(client_expect(&app2, "c6,0,done", 3000), "the reply did not reach the requester");
    client_send(&app3, "C3");
    cr_assert(client_expect(&car, "C3", 3000));
    client_send(&car, "c3,0,0,2,first");
    client_send(&car, "c3,0,1,2,second");
    cr_assert(client_expect(&app3, "c3,0,0,2,first", 3000));
    cr_assert(client_expect(&app3, "c3,0,1,2,second", 3000));
    cr_assert(client_silent(&app2, 500, "Z"), "another app got a reply that was not for it");

    /* an app leaves node 3: the car hears it */
    client_close(&app3);
    cr_assert(client_expect(&car, "Z1", 3000));
    /* a second login of the car on node 2 drops the one on node 1 */
    client_t car2;
    client_login(&car2, nodes[1].port, 'C', "TESTCAR", PW);
    cr_assert(client_wait_closed(&car, 3000), "the older car connection on node 1 stayed");
    cr_assert(node_log_has(&nodes[0], "replaced by a login of the same car on N2"));
    client_close(&car);
    /* the car goes: the app hears it, and commands are answered at once */
    client_close(&car2);
    cr_assert(client_expect(&app2, "Z0", 3000), "the app never saw the car go");
    client_send(&app2, "C6,1");
    cr_assert(client_expect(&app2, "c6,1,vehicle not connected", 3000));
    client_close(&app2);
    stop_cluster();
}

Test(bus, redis_restarted_in_the_middle_of_traffic, .timeout = 60)
{
    client_t car, app;
    start_cluster_with("--level debug");   /* (the bus in the logs, for a failure)*/
    cr_assert_eq(app_login(&app, &nodes[1]), 0);
    client_login(&car, nodes[0].port, 'C', "TESTCAR", PW);
    cr_assert(client_expect(&app, "Z1", 3000));
    client_send(&car, "S1.0,K,0");
    cr_assert(client_expect(&app, "S1.0,K,0", 3000));
    redis_stop(redis);
    /* each node goes on serving its own clients */
    client_t local;
    cr_assert_eq(app_login(&local, &nodes[0]), 1);
    client_send(&car, "S2.0,K,0");
    cr_assert(client_expect(&local, "S2.0,K,0", 3000), "local relay stopped with Redis away");
    cr_assert(node_log_has(&nodes[0], "Redis bus:"), "the outage was not logged");
    redis = redis_start(redis_port);
    /* after the recovery the remote app is brought up to date with what the
     * car sent meanwhile (its current state), without waiting for more */
    cr_assert(client_expect(&app, "S2.0,K,0", 10000),
              "the app on node 2 was not brought up to date after Redis came back");
    /* and the fan-out works again, with the counts right */
    int ok = 0;
    for (int i = 0; i < 50 && !ok; i++) {
        client_sendf(&car, "S%d.5,K,0", 100 + i);
        char want[32];
        snprintf(want, sizeof want, "S%d.5,K,0", 100 + i);
        ok = client_expect(&app, want, 200);
    }
    cr_assert(ok, "messages never crossed nodes again after Redis came back");
    client_close(&local);
    cr_assert(client_expect(&car, "Z1", 3000), "the car's count is not right after the recovery");
    client_close(&car);
    int z0 = client_expect(&app, "Z0", 3000);
    client_close(&app);
    stop_cluster();
    cr_assert(z0, "the app never heard the car go after the recovery");
}

Test(bus, a_node_killed_leaves_its_car_connected_elsewhere_for_at_most_the_expiry, .timeout = 90)
{
    client_t car, app;
    start_cluster();
    cr_assert_eq(app_login(&app, &nodes[1]), 0);
    client_login(&car, nodes[0].port, 'C', "TESTCAR", PW);
    cr_assert(client_expect(&app, "Z1", 3000));
    node_kill9(&nodes[0]);          /* no goodbye: only the expiry can tell */
    double t0 = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = ts.tv_sec + ts.tv_nsec / 1e9;
    cr_assert(client_expect(&app, "Z0", 45000), "node 2 still thinks the car is connected");
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double took = ts.tv_sec + ts.tv_nsec / 1e9 - t0;
    cr_assert_leq(took, 42, "the car showed as connected for %.0f s after its node died", took);
    client_send(&app, "C6,1");
    cr_assert(client_expect(&app, "c6,1,vehicle not connected", 3000),
              "a command for the car of the dead node was not answered");
    client_close(&car);
    client_close(&app);
    stop_cluster();
}

/* A car's ping answered: everything it sent before was handled. */
static void car_sync(client_t *car)
{
    client_send(car, "A");
    cr_assert(client_expect(car, "a", 3000), "no answer to the car's ping");
}

/* The next n group messages (g...), sorted into out[] by the order given in want[]. */
static void expect_group_lines(client_t *app, const char *const *want, int n, const char *who)
{
    int seen[8] = { 0 };
    for (int k = 0; k < n; k++) {
        const char *m = client_expect_prefix(app, "g", 3000);
        cr_assert(m, "%s: only %d of %d group entries came", who, k, n);
        int hit = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(m, want[i]) && !seen[i])
                seen[i] = hit = 1;
        cr_assert(hit, "%s: unexpected or repeated group line %s", who, m);
    }
    cr_assert(client_silent(app, 400, "Z"), "%s: more group lines than expected", who);
}

Test(bus, groups_across_nodes, .timeout = 60)
{
    client_t car1, car2, app3, app1, late;
    start_cluster();
    client_login(&car1, nodes[0].port, 'C', "TESTCAR", PW);
    client_login(&car2, nodes[1].port, 'C', "OTHERCAR", "OTHERPW");
    client_send(&car1, "gRALLY,80,0,90,10,1,0,51.5,-0.1");
    client_send(&car2, "grally,55,30,180,20,1,0,51.6,-0.2");
    car_sync(&car1);
    car_sync(&car2);

    /* an app on a third node subscribes: the entries of both cars, from both nodes */
    app_login(&app3, &nodes[2]);
    client_send(&app3, "GRally");
    const char *both[] = { "gTESTCAR,RALLY,80,0,90,10,1,0,51.5,-0.1",
                           "gOTHERCAR,RALLY,55,30,180,20,1,0,51.6,-0.2" };
    expect_group_lines(&app3, both, 2, "app on node 3");
    /* updates reach it live, once */
    client_send(&car1, "gRALLY,81,0,90,10,1,0,51.5,-0.1");
    const char *update[] = { "gTESTCAR,RALLY,81,0,90,10,1,0,51.5,-0.1" };
    expect_group_lines(&app3, update, 1, "app on node 3, live");
    client_send(&car2, "gRALLY,56,30,180,20,1,0,51.6,-0.2");
    const char *update2[] = { "gOTHERCAR,RALLY,56,30,180,20,1,0,51.6,-0.2" };
    expect_group_lines(&app3, update2, 1, "app on node 3, live from node 2");

    /* an app of the other vehicle on the car's node: its own node's entry and the other's */
    cr_assert_eq(client_login(&app1, nodes[0].port, 'A', "OTHERCAR", "OTHERPW"), 0);
    client_expect_prefix(&app1, "T", 3000);
    client_send(&app1, "GRALLY");
    const char *now[] = { update[0], update2[0] };
    expect_group_lines(&app1, now, 2, "app on node 1");
    client_send(&car2, "gRALLY,57,30,180,20,1,0,51.6,-0.2");
    const char *u3[] = { "gOTHERCAR,RALLY,57,30,180,20,1,0,51.6,-0.2" };
    expect_group_lines(&app1, u3, 1, "app on node 1, live");
    expect_group_lines(&app3, u3, 1, "app on node 3, live again");

    /* a car that leaves takes its entry with it */
    client_close(&car2);
    cr_assert(client_expect(&app1, "Z0", 3000));
    usleep(300 * 1000);
    app_login(&late, &nodes[2]);
    client_send(&late, "GRALLY");
    expect_group_lines(&late, update, 1, "a later app on node 3");
    client_close(&late);
    client_close(&app1);
    client_close(&app3);
    client_close(&car1);
    stop_cluster();
}

Test(bus, a_command_never_goes_unanswered, .timeout = 60)
{
    client_t car, app;
    start_cluster_with("--command-timeout 2");
    cr_assert_eq(app_login(&app, &nodes[1]), 0);
    client_login(&car, nodes[0].port, 'C', "TESTCAR", PW);
    cr_assert(client_expect(&app, "Z1", 3000));
    /* the car says nothing: the requester's node answers at the timeout */
    client_send(&app, "C6,1");
    cr_assert(client_expect(&car, "C6,1", 3000));
    cr_assert(client_expect(&app, "c6,1,no reply from the vehicle", 5000),
              "no answer at the command timeout");
    /* and a reply later than that is not delivered a second time */
    client_send(&car, "c6,0,late");
    cr_assert(client_silent(&app, 700, "Z"), "a late reply reached the app after its timeout answer");
    /* the same when Redis goes away after the command left */
    client_send(&app, "C7");
    cr_assert(client_expect(&car, "C7", 3000));
    redis_stop(redis);
    cr_assert(client_expect(&app, "c7,1,no reply from the vehicle", 5000),
              "a command lost with Redis was not answered");
    /* while Redis is away a command is answered at once */
    client_send(&app, "C8");
    const char *m = client_expect_prefix(&app, "c8,1,", 3000);
    cr_assert(m, "a command sent while Redis was away was not answered");
    redis = redis_start(redis_port);
    client_close(&car);
    client_close(&app);
    stop_cluster();
}

Test(bus, a_car_that_moved_while_redis_was_away_keeps_only_its_newer_connection, .timeout = 60)
{
    client_t old_car, new_car, app;
    start_cluster_with("--level debug");   /* (the bus in the logs, for a failure)*/
    client_login(&old_car, nodes[0].port, 'C', "TESTCAR", PW);
    cr_assert(client_expect_prefix(&old_car, "Z", 3000));
    cr_assert_eq(app_login(&app, &nodes[1]), 1, "node 2 did not know of the car on node 1");
    cr_assert(client_expect(&old_car, "Z1", 3000), "node 1 never counted the app on node 2");
    redis_stop(redis);
    usleep(300 * 1000);
    /* the car comes back on node 3; node 1 cannot hear of it */
    client_login(&new_car, nodes[2].port, 'C', "TESTCAR", PW);
    cr_assert(client_expect_prefix(&new_car, "Z", 3000));
    cr_assert(!client_wait_closed(&old_car, 500), "node 1 heard of the new login without Redis");
    redis = redis_start(redis_port);
    /* once the nodes meet again the older connection goes, the newer stays */
    cr_assert(client_wait_closed(&old_car, 15000), "two connections of the car stayed after Redis came back");
    cr_assert(node_log_has(&nodes[0], "replaced by a login of the same car on N3"));
    client_send(&new_car, "A");
    cr_assert(client_expect(&new_car, "a", 3000), "the newer car connection was closed too");
    client_close(&old_car);
    client_close(&new_car);
    client_close(&app);
    stop_cluster();
}

/* Once the car has its first Z, its node's state is in Redis: an app that
 * logs in on another node right after sees the car in its login burst (the
 * conformance suite across nodes relies on it; it once saw Z0, then Z1). */
Test(bus, an_app_that_logs_in_after_the_car_heard_its_z_sees_the_car_on_any_node, .timeout = 60)
{
    start_cluster();
    for (int round = 0; round < 20; round++) {
        client_t car, app;
        cr_assert_eq(client_login(&car, nodes[0].port, 'C', "TESTCAR", PW), 0);
        cr_assert(client_expect_prefix(&car, "Z", 3000), "round %d: the car had no Z", round);
        cr_assert_eq(app_login(&app, &nodes[1 + round % 2]), 1, "round %d: Z0 on node %d although the car "
                     "on node 1 had heard its Z", round, 2 + round % 2);
        client_close(&app);
        client_close(&car);
        usleep(100 * 1000);
    }
    stop_cluster();
}

Test(bus, over_a_unix_socket_with_a_password, .timeout = 60)
{
    char dir[] = "/tmp/ovms-test-redis-XXXXXX", sock[96], extra[256];
    client_t car, app;
    cr_assert(mkdtemp(dir));
    snprintf(sock, sizeof sock, "%s/redis.sock", dir);
    redis = fork();
    cr_assert_geq(redis, 0);
    if (redis == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive the test (nor hold its output open) */
        close_range(3, ~0u, 0);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--requirepass",
               "bus-secret", "--save", "", "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300 && access(sock, F_OK) != 0; i++)
        usleep(10000);
    cluster_node_prepare(&nodes[0], "N1", 1);
    cluster_node_prepare(&nodes[1], "N2", 0);
    snprintf(extra, sizeof extra, "--redis unix:%s --redis-password bus-secret --redis-prefix t1:", sock);
    cluster_start(nodes, 2, "mesh", extra);
    nodes[2].pid = 0;
    cr_assert(cluster_converged(nodes, 2, 10000), "the nodes did not converge");
    cr_assert_eq(app_login(&app, &nodes[1]), 0);
    client_login(&car, nodes[0].port, 'C', "TESTCAR", PW);
    cr_assert(client_expect(&app, "Z1", 3000), "the car on node 1 was not seen on node 2");
    client_send(&car, "S7.0,K,0");
    cr_assert(client_expect(&app, "S7.0,K,0", 3000), "no relay over the unix socket");
    cr_assert(node_log_has(&nodes[0], "Redis bus: connected to unix:"));
    client_close(&car);
    client_close(&app);
    stop_cluster();
    unlink(sock);
    rmdir(dir);
}

Test(bus, history_asked_on_another_node_holds_what_the_car_was_just_told_is_stored, .timeout = 60)
{
    client_t car, app;
    char reply[4096];
    start_cluster();
    cr_assert_eq(app_login(&app, &nodes[1]), 0);
    client_login(&car, nodes[0].port, 'C', "TESTCAR", PW);
    cr_assert(client_expect(&app, "Z1", 3000));
    for (int round = 0; round < 20; round++) {
        client_sendf(&car, "h%d,0,*-XN-Round%d,0,86400,first", 2 * round, round);
        client_sendf(&car, "h%d,-1,*-XN-Round%d,1,86400,second", 2 * round + 1, round);
        char want[16];
        snprintf(want, sizeof want, "h%d", 2 * round + 1);
        cr_assert(client_expect(&car, want, 5000), "no ack %s", want);
        /* acknowledged means stored on node 1: node 2's answer must hold both */
        char cmd[64];
        snprintf(cmd, sizeof cmd, "C32,*-XN-Round%d", round);
        int n = client_read_reply(&app, cmd, reply, sizeof reply);
        cr_assert_eq(n, 2, "round %d: C32 on node 2 gave %d records:\n%s", round, n, reply);
    }
    client_close(&car);
    client_close(&app);
    stop_cluster();
}
