/*
 * test_cluster.c -- replication between real ovmsd nodes on loopback
 * (MP-S, R and r records): topologies, car data crossing nodes, removals,
 * crashes, partitions, a node rebuilt from nothing, concurrent creation,
 * and what a bad or unknown peer gets. Every node is started and stopped by
 * PID here; `ovms-admin cluster digest` compares their stores.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define PW "NETPASS"
#define MAXN 4

static node_t nodes[MAXN];
static int nnodes;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Node 0 has the fixtures (TESTCAR, OTHERCAR, owner "owner"); the rest start empty. */
static void prepare(int count)
{
    char id[8];
    nnodes = count;
    for (int i = 0; i < count; i++) {
        snprintf(id, sizeof id, "N%d", i + 1);
        cluster_node_prepare(&nodes[i], id, i == 0);
    }
}

static void stop_all(void)
{
    for (int i = 0; i < nnodes; i++) {
        if (nodes[i].pid > 0)
            cr_assert_eq(node_stop(&nodes[i]), 0, "node %s did not stop cleanly; see %s",
                         nodes[i].id, nodes[i].log);
        cr_assert_not(node_log_has_now(&nodes[i], "ERROR") &&
                      node_log_has_now(&nodes[i], "cannot apply"), "see %s", nodes[i].log);
    }
}

/* Log in to a node until it works (or ms pass): how long it took, or -1. */
static double login_within(node_t *n, char role, const char *vehicle, const char *pw, int ms)
{
    double start = now_ms();
    while (now_ms() - start < ms) {
        client_t c;
        if (client_login(&c, n->port, role, vehicle, pw) == 0) {
            client_close(&c);
            return now_ms() - start;
        }
        client_close(&c);
        usleep(20000);
    }
    return -1;
}

static int login_refused(node_t *n, const char *vehicle, const char *pw)
{
    client_t c;
    int refused = client_login(&c, n->port, 'A', vehicle, pw) < 0;
    client_close(&c);
    return refused;
}

/* The sum of "records out" over a node's peers, from its status file. */
static long long records_out(node_t *n)
{
    char path[256], line[4096];
    long long sum = 0;
    snprintf(path, sizeof path, "%s.cluster", n->db);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long long in, out;
        if (sscanf(line, "peer %*s %*s %*f %*s %llu %llu", &in, &out) == 2)
            sum += (long long)out;
    }
    fclose(f);
    return sum;
}

static void assert_converged(const char *what)
{
    cr_assert(cluster_converged(nodes, nnodes, 10000), "%s: the nodes' digests differ", what);
}

/* Wait until the node's database holds n stored messages of TESTCAR. */
static void wait_messages(node_t *n, int count)
{
    for (int i = 0; i < 50; i++) {
        ovms_store_req_t req;
        ovms_store_req_init(&req);
        ovms_store_prep_msg_list(&req, "TESTCAR");
        int rows = node_rows(n, &req);
        ovms_store_req_cleanup(&req);
        if (rows >= count)
            return;
        usleep(100000);
    }
    cr_assert_fail("node %s never held %d stored messages", n->id, count);
}

/* ---- three nodes: admin changes and car data cross the cluster ------------------------------- */

static void car_data_crosses(const char *topology)
{
    client_t car, app;
    char reply[16384];

    prepare(3);
    cluster_start(nodes, 3, topology, NULL);
    assert_converged("initial resync");

    /* an owner and a vehicle made with ovms-admin on node 1 log in on node 3 within a second */
    cr_assert_eq(node_admin(&nodes[0], "owner add alice --password alicepw1"), 0);
    double t0 = now_ms();
    cr_assert_eq(node_admin(&nodes[0], "vehicle add NEWCAR --password NEWPASS1 --owner alice"), 0);
    double took = login_within(&nodes[2], 'A', "NEWCAR", "NEWPASS1", 3000);
    cr_assert(took >= 0 && now_ms() - t0 < 1000 + 300, "NEWCAR logged in on node 3 after %.0f ms "
              "(ovms-admin took %.0f ms)", now_ms() - t0, now_ms() - t0 - took);

    /* a car on node 1 reports and goes; the app on node 3 gets it all */
    client_login_ok(&car, nodes[0].port, 'C', "TESTCAR", PW);
    client_send(&car, "S80.0,K,0,0.00,stopped,standard,250,230");
    client_send(&car, "L51.477500,-0.001400,90,35,1,1");
    client_send(&car, "D97,0,5,21.5,22,19,123,45678,0,3600,12,1,1,1,12.6,0,12.9,0,0");
    for (int i = 0; i < 5; i++)
        client_sendf(&car, "h%d,-%d,*-LOG-Trip,%d,86400,trip %d,with,commas", 10 + i, 60 * i, i, i);
    for (int i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof want, "h%d", 10 + i);
        cr_assert(client_expect(&car, want, 5000), "no ack %s", want);
    }
    client_close(&car);
    wait_messages(&nodes[0], 3);    /* written behind, within message_interval */
    assert_converged("after the car's data");
    wait_messages(&nodes[2], 3);
    cr_assert_eq(client_login(&app, nodes[2].port, 'A', "TESTCAR", PW), 0);
    int seen = 0;
    char got[2048] = "";
    for (const char *m; (m = client_recv(&app, 2000)) && m[0] != 'T';) {
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s | ", m);
        if (!strcmp(m, "S80.0,K,0,0.00,stopped,standard,250,230") ||
            !strcmp(m, "L51.477500,-0.001400,90,35,1,1") ||
            !strcmp(m, "D97,0,5,21.5,22,19,123,45678,0,3600,12,1,1,1,12.6,0,12.9,0,0"))
            seen++;
    }
    cr_assert_eq(seen, 3, "node 3's login replay lacked some of S, L, D: %s", got);
    client_read_reply(&app, "C31", reply, sizeof reply);
    cr_assert(strstr(reply, ",*-LOG-Trip,5,5,"), "C31 on node 3:\n%s", reply);
    cr_assert_eq(client_read_reply(&app, "C32,*-LOG-Trip", reply, sizeof reply), 5);
    cr_assert(strstr(reply, ",4,trip 4,with,commas\n"), "C32 on node 3:\n%s", reply);
    client_close(&app);

    /* a removal on node 2 reaches everyone and stays, also over a restart */
    cr_assert_eq(node_admin(&nodes[1], "vehicle remove OTHERCAR"), 0);
    assert_converged("after the removal");
    cr_assert(login_refused(&nodes[0], "OTHERCAR", "OTHERPW"));
    cr_assert(login_refused(&nodes[2], "OTHERCAR", "OTHERPW"));
    char flags[1024];
    cr_assert_eq(node_stop(&nodes[2]), 0);
    /* a change made with ovms-admin while node 3 does not run goes out when it starts */
    cr_assert_eq(node_admin(&nodes[2], "vehicle add OFFLINE3 --password OFFLINEPW"), 0);
    cluster_peer_flags(nodes, 3, topology, 2, flags, sizeof flags);
    node_start(&nodes[2], "%s", flags);
    assert_converged("after node 3 restarted");
    cr_assert(login_refused(&nodes[2], "OTHERCAR", "OTHERPW"));
    cr_assert(login_within(&nodes[2], 'A', "TESTCAR", PW, 2000) >= 0);
    cr_assert(login_within(&nodes[0], 'A', "OFFLINE3", "OFFLINEPW", 2000) >= 0);
    /* what the operator sees */
    char cmd[512], out[8192] = "";
    snprintf(cmd, sizeof cmd, "%s --db %s --json cluster status", OVMS_ADMIN_PATH, nodes[1].db);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    cr_assert(strstr(out, "\"peer\": \"N1\"") && strstr(out, "\"state\": \"up\"") &&
              strstr(out, "\"lag_records\": 0"), "cluster status of node 2:\n%s", out);
    stop_all();
}

Test(cluster, mesh_admin_changes_and_car_data_reach_every_node, .timeout = 60)
{
    car_data_crosses("mesh");
}

Test(cluster, chain_admin_changes_and_car_data_reach_every_node, .timeout = 60)
{
    car_data_crosses("chain");
}

/* Rings and stars: everything arrives once, and nothing circles after. */
static void converges_without_loops(const char *topology)
{
    prepare(4);
    cluster_start(nodes, 4, topology, NULL);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(node_admin(&nodes[i], "vehicle add CAR%d --password PASSWORD%d", i, i), 0);
        cr_assert_eq(node_admin(&nodes[i], "owner add owner%d", i), 0);
    }
    assert_converged(topology);
    cr_assert_eq(node_admin(&nodes[3], "vehicle set CAR0 --server N2"), 0);
    assert_converged(topology);
    for (int i = 0; i < 4; i++)
        cr_assert(login_within(&nodes[i], 'A', "CAR3", "PASSWORD3", 2000) >= 0);
    /* in scope only on N2 */
    cr_assert(login_within(&nodes[1], 'A', "CAR0", "PASSWORD0", 2000) >= 0);
    cr_assert(login_refused(&nodes[0], "CAR0", "PASSWORD0"));
    usleep(1500000);                /* the status files catch up */
    long long before[4];
    for (int i = 0; i < 4; i++)
        before[i] = records_out(&nodes[i]);
    usleep(2500000);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(records_out(&nodes[i]), before[i], "node %s still sends records (a loop?)",
                     nodes[i].id);
    stop_all();
}

Test(cluster, ring_converges_without_loops, .timeout = 60)
{
    converges_without_loops("ring");
}

Test(cluster, star_converges_without_loops, .timeout = 60)
{
    converges_without_loops("star");
}

/* ---- faults ---------------------------------------------------------------------------------- */

#define LOAD 1500

typedef struct loader {
    int port;
    int acked[LOAD];
    int nacked;
} loader_t;

/* A car sending LOAD history records, counting the acks (each is durable). */
static void *history_load(void *arg)
{
    loader_t *ld = arg;
    client_t car;
    cr_assert_eq(client_login(&car, ld->port, 'C', "TESTCAR", PW), 0);
    for (int i = 0; i < LOAD; i++) {
        client_sendf(&car, "h%d,-%d,*-LOG-Load,%d,86400,record %d", i, i % 50, i, i);
        if (i % 100 == 99)
            usleep(20000);
    }
    for (const char *m; ld->nacked < LOAD && (m = client_recv(&car, 5000));)
        if (m[0] == 'h')
            ld->acked[ld->nacked++] = atoi(m + 1);
    client_close(&car);
    return NULL;
}

static int history_rows(node_t *n, const char *type)
{
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    ovms_store_prep_hist_list(&req, "TESTCAR", type);
    int rows = node_rows(n, &req);
    ovms_store_req_cleanup(&req);
    return rows;
}

Test(cluster, kill9_during_a_history_load_loses_nothing_acknowledged, .timeout = 90)
{
    static loader_t ld;
    pthread_t t;
    char flags[1024];
    const char *quota = "--history-per-minute 1000000 --history-burst 1000000";

    prepare(3);
    cluster_start(nodes, 3, "mesh", quota);
    assert_converged("initial resync");
    ld.port = nodes[0].port;
    pthread_create(&t, NULL, history_load, &ld);
    usleep(300000);
    node_kill9(&nodes[1]);          /* a peer dies in the middle */
    usleep(300000);
    cluster_peer_flags(nodes, 3, "mesh", 1, flags, sizeof flags);
    node_start(&nodes[1], "%s %s", flags, quota);
    usleep(200000);
    node_kill9(&nodes[0]);          /* and the car's own node too */
    pthread_join(t, NULL);
    cluster_peer_flags(nodes, 3, "mesh", 0, flags, sizeof flags);
    node_start(&nodes[0], "%s %s", flags, quota);
    assert_converged("after the crashes");
    cr_assert_gt(ld.nacked, 0);
    for (int i = 0; i < 3; i++)
        cr_assert_geq(history_rows(&nodes[i], "*-LOG-Load"), ld.nacked,
                      "node %s holds fewer records than were acknowledged (%d)", nodes[i].id, ld.nacked);
    stop_all();
}

Test(cluster, partition_with_changes_on_both_sides_heals, .timeout = 60)
{
    prepare(3);
    cluster_start(nodes, 3, "mesh", NULL);
    assert_converged("initial resync");
    kill(nodes[2].pid, SIGSTOP);    /* node 3 is cut off ... */
    cr_assert_eq(node_admin(&nodes[0], "vehicle add LEFT1 --password LEFTPASS1"), 0);
    cr_assert_eq(node_admin(&nodes[0], "owner add alice"), 0);
    cr_assert_eq(node_admin(&nodes[0], "owner add carol --mail carol@left"), 0);
    cr_assert_eq(node_admin(&nodes[0], "vehicle add SAMECAR --password FROMLEFT1"), 0);
    /* ... and changed meanwhile (ovms-admin on its database) */
    cr_assert_eq(node_admin(&nodes[2], "vehicle add RIGHT3 --password RIGHTPASS3"), 0);
    cr_assert_eq(node_admin(&nodes[2], "owner add bob"), 0);
    cr_assert_eq(node_admin(&nodes[2], "owner add carol --mail carol@right"), 0);
    sleep(1);                       /* the later creation of SAMECAR wins */
    cr_assert_eq(node_admin(&nodes[2], "vehicle add SAMECAR --password FROMRIGHT3"), 0);
    cr_assert_eq(node_admin(&nodes[2], "vehicle remove TESTCAR"), 0);
    kill(nodes[2].pid, SIGCONT);
    assert_converged("after the partition");
    for (int i = 0; i < 3; i++) {
        cr_assert(login_within(&nodes[i], 'A', "LEFT1", "LEFTPASS1", 2000) >= 0);
        cr_assert(login_within(&nodes[i], 'A', "RIGHT3", "RIGHTPASS3", 2000) >= 0);
        cr_assert(login_within(&nodes[i], 'A', "SAMECAR", "FROMRIGHT3", 2000) >= 0);
        cr_assert(login_refused(&nodes[i], "SAMECAR", "FROMLEFT1"));
        cr_assert(login_refused(&nodes[i], "TESTCAR", PW));
    }
    cr_assert(node_log_has(&nodes[0], "conflict: vehicle SAMECAR"),
              "the losing node does not say what was overwritten; see %s", nodes[0].log);
    /* owners made at the same time on both sides: distinct ids, one carol */
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    ovms_store_prep_owner_list(&req);
    int rows = node_rows(&nodes[1], &req);
    int carol = 0;
    for (int r = 0; r < rows; r++) {
        for (int k = r + 1; k < rows; k++)
            cr_assert_str_neq(ovms_store_cell(&req.rows, r, 0), ovms_store_cell(&req.rows, k, 0),
                              "owners %s and %s share an id", ovms_store_cell(&req.rows, r, 1),
                              ovms_store_cell(&req.rows, k, 1));
        carol += !strcmp(ovms_store_cell(&req.rows, r, 1), "carol");
    }
    cr_assert_eq(carol, 1);
    ovms_store_req_cleanup(&req);
    stop_all();
}

Test(cluster, a_node_with_an_empty_database_catches_up, .timeout = 60)
{
    char flags[1024];
    prepare(3);
    cluster_start(nodes, 3, "mesh", NULL);
    cr_assert_eq(node_admin(&nodes[2], "vehicle add MADEON3 --password MADEON3PW"), 0);
    client_t car;
    client_login_ok(&car, nodes[0].port, 'C', "TESTCAR", PW);
    for (int i = 0; i < 200; i++)
        client_sendf(&car, "h%d,0,*-LOG-Some,%d,86400,record %d", i, i, i);
    cr_assert(client_expect(&car, "h199", 5000));
    client_close(&car);
    assert_converged("before the loss");
    /* node 3 loses its database */
    cr_assert_eq(node_stop(&nodes[2]), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -f %s %s-wal %s-shm %s.cluster", nodes[2].db, nodes[2].db,
             nodes[2].db, nodes[2].db);
    cr_assert_eq(system(cmd), 0);
    ovms_store_close(node_store(&nodes[2]));
    cluster_peer_flags(nodes, 3, "mesh", 2, flags, sizeof flags);
    node_start(&nodes[2], "%s", flags);
    assert_converged("after the rebuild");
    /* what it had made itself came back to it, and what it makes now is new to the others */
    cr_assert(login_within(&nodes[2], 'A', "MADEON3", "MADEON3PW", 2000) >= 0);
    cr_assert_eq(node_admin(&nodes[2], "vehicle add NEWON3 --password NEWON3PW"), 0);
    cr_assert(login_within(&nodes[0], 'A', "NEWON3", "NEWON3PW", 2000) >= 0);
    cr_assert_eq(history_rows(&nodes[2], "*-LOG-Some"), 200);
    stop_all();
}

/* ---- peers that are not, and peers that send garbage -------------------------------------------- */

static void expect_closed_with(client_t *c, node_t *n, const char *log_text)
{
    cr_assert(client_wait_closed(c, 3000), "the link stayed open after: %s", log_text);
    cr_assert(node_log_has(n, log_text), "no log line '%s'; see %s", log_text, n->log);
    client_close(c);
}

Test(cluster, bad_records_and_strangers_are_refused, .timeout = 60)
{
    client_t c;
    char line[256];
    prepare(2);
    nodes[0].port = harness_free_port();
    nodes[1].port = harness_free_port();
    node_start(&nodes[0], "--peer N2:secret-0-1 --peer FAKE:fakesecret");
    node_start(&nodes[1], "--peer N1:secret-0-1@127.0.0.1:%d", nodes[0].port);
    assert_converged("initial resync");

    /* strangers: closed without a word, logged with the address */
    client_connect(&c, nodes[0].port);
    const char *stranger = "MP-S 0 abcdefghijklmnopqrstuv 0123456789012345678901== NOBODY\r\n";
    client_send_raw(&c, stranger, strlen(stranger));
    cr_assert(client_wait_closed(&c, 3000));
    client_close(&c);
    cr_assert(node_log_has(&nodes[0], "unknown server id"));
    cr_assert_eq(peer_login(&c, nodes[0].port, "FAKE", "wrongsecret", NULL), -1);
    client_close(&c);
    cr_assert(node_log_has(&nodes[0], "wrong digest"));
    cr_assert_eq(peer_login(&c, nodes[0].port, "TESTCAR", PW, NULL), -1);
    client_close(&c);
    cr_assert(node_log_has(&nodes[0], "MP-S login naming a vehicle"));

    /* a good record first, so that we see it applied and the bad one not */
    static const struct {
        const char *record, *log;
    } bad[] = {
        { "RVBAD1,1,pw,*,0,2026-01-01 00:00:00,FAKE", "bad RV record" },
        { "RVBAD2,notanumber,pw,*,0,2026-01-01 00:00:00,FAKE,%d", "owner is not a number" },
        { "RVBAD3,1,pw,*,0,2026-13-45 99:00:00,FAKE,%d", "bad RV record" },
        { "rFAKE,%d,2026-01-01 00:00:00,TESTCAR,E,token,with,commas", "commas are not allowed" },
        { "rFAKE,%d,2026-01-01 00:00:00,TESTCAR,H,*-LOG-X,notanumber,2027-01-01 00:00:00,x",
          "bad r record" },
    };
    int seq = 100;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        cr_assert_eq(peer_login(&c, nodes[0].port, "FAKE", "fakesecret", NULL), 0);
        client_sendf(&c, "RVGOOD%zu,1,goodpass%zu,*,0,2026-01-01 00:00:00,FAKE,%d", k, k, ++seq);
        snprintf(line, sizeof line, bad[k].record, ++seq);
        client_send(&c, line);
        expect_closed_with(&c, &nodes[0], bad[k].log);
    }
    /* order: a seq below the last one of its origin on the link */
    cr_assert_eq(peer_login(&c, nodes[0].port, "FAKE", "fakesecret", NULL), 0);
    client_sendf(&c, "RVORDER1,1,orderpass1,*,0,2026-01-01 00:00:00,FAKE,%d", seq + 10);
    client_sendf(&c, "RVORDER2,1,orderpass2,*,0,2026-01-01 00:00:00,FAKE,%d", seq + 5);
    expect_closed_with(&c, &nodes[0], "out of order");
    cr_assert(login_within(&nodes[0], 'A', "ORDER1", "orderpass1", 2000) >= 0);
    cr_assert(login_refused(&nodes[0], "ORDER2", "orderpass2"));
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(line, sizeof line, "GOOD%zu", k);
        char pw[32];
        snprintf(pw, sizeof pw, "goodpass%zu", k);
        cr_assert(login_within(&nodes[0], 'A', line, pw, 2000) >= 0, "%s was not applied", line);
    }
    cr_assert(login_refused(&nodes[0], "BAD2", "pw"));

    /* the real peer was not disturbed: it has all the good ones */
    assert_converged("after the bad peer");
    cr_assert(login_within(&nodes[1], 'A', "GOOD4", "goodpass4", 2000) >= 0);
    /* no secret and no password hash in any log */
    for (int i = 0; i < 2; i++) {
        cr_assert_not(node_log_has_now(&nodes[i], "secret-0-1"), "a secret in %s", nodes[i].log);
        cr_assert_not(node_log_has_now(&nodes[i], "fakesecret"), "a secret in %s", nodes[i].log);
        cr_assert_not(node_log_has_now(&nodes[i], "$pbkdf2"), "a hash in %s", nodes[i].log);
        cr_assert_not(node_log_has_now(&nodes[i], "goodpass"), "a car password in %s", nodes[i].log);
    }
    stop_all();
}

/* ---- links: a peer that is down, keepalive, a silent peer -------------------------------------- */

Test(cluster, a_peer_that_is_down_costs_nothing_and_is_dialed_again, .timeout = 60)
{
    prepare(2);
    nodes[0].port = harness_free_port();
    nodes[1].port = harness_free_port();
    /* node 2 is not there yet: node 1 keeps dialing it */
    node_start(&nodes[0], "--peer N2:secret-0-1@127.0.0.1:%d", nodes[1].port);
    /* (not timed: the dials run on the replication thread; bench_repl measures the rest) */
    for (int i = 0; i < 20; i++) {
        cr_assert(login_within(&nodes[0], 'A', "TESTCAR", PW, 1000) >= 0,
                  "a login failed while the peer was down");
        usleep(100000);
    }
    cr_assert_eq(node_admin(&nodes[0], "vehicle add WAITING --password WAITINGPW"), 0);
    /* node 2 comes (it does not dial: node 1's backoff must bring the link up) */
    node_start(&nodes[1], "--peer N1:secret-0-1");
    assert_converged("after the peer came");
    cr_assert(login_within(&nodes[1], 'A', "WAITING", "WAITINGPW", 2000) >= 0);
    stop_all();
}

Test(cluster, a_second_link_replaces_the_first_keepalive_and_a_silent_peer_is_closed, .timeout = 30)
{
    client_t c;
    prepare(1);
    nodes[0].port = harness_free_port();
    node_start(&nodes[0], "--peer FAKE:fakesecret --peer-keepalive 1 --peer-idle 4");
    /* a second link with the same peer replaces the first */
    client_t first;
    cr_assert_eq(peer_login(&first, nodes[0].port, "FAKE", "fakesecret", NULL), 0);
    cr_assert_eq(peer_login(&c, nodes[0].port, "FAKE", "fakesecret", NULL), 0);
    cr_assert(client_wait_closed(&first, 3000), "the older link stayed open");
    cr_assert(node_log_has(&nodes[0], "replaced by a newer link"));
    client_close(&first);
    /* it sends its records, then pings when it has sent nothing for a while */
    cr_assert(client_expect(&c, "A", 5000), "no keepalive A from the node");
    client_send(&c, "a");
    /* and a peer that never says anything is closed */
    cr_assert(client_wait_closed(&c, 8000), "a silent peer link stayed open");
    cr_assert(node_log_has(&nodes[0], "nothing received for too long"));
    client_close(&c);
    stop_all();
}

/* ovms-admin writes as the node it runs beside; when the node's writer
 * picks up the admin's counter while applying a peer's records (no change
 * of its own in that transaction), the admin's change must still be sent. */
Test(cluster, admin_changes_on_a_node_busy_applying_a_peer_reach_the_others, .timeout = 60)
{
    static loader_t ld;
    pthread_t t;
    const char *quota = "--history-per-minute 1000000 --history-burst 1000000";

    prepare(2);
    cluster_start(nodes, 2, "mesh", quota);
    assert_converged("initial resync");
    ld.port = nodes[0].port;
    pthread_create(&t, NULL, history_load, &ld);     /* node 2 applies node 1's records meanwhile */
    for (int i = 0; i < 5; i++) {
        usleep(150000);
        cr_assert_eq(node_admin(&nodes[1], "vehicle add ADMINCAR%d --password adminpw%d", i, i), 0);
    }
    pthread_join(t, NULL);
    assert_converged("after admin changes made while the node applied records");
    stop_all();
}
