/*
 * test_server.c -- integration tests: the real ovmsd, started on a free
 * loopback port with a fresh database, driven over sockets with proto/.
 * They cover what the shared conformance suite does not: many apps across
 * workers, requesters that leave mid-reply, slow readers, durability of h
 * acknowledgements, timeouts, limits, scheme 1, provisioning, groups, push,
 * utilisation, configuration errors and vehicle isolation under churn.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define PW "NETPASS"

static node_t node;

static void start_default(void)
{
    node_prepare(&node);
    node_start(&node, NULL);
}

static void stop_checked(void)
{
    cr_assert_eq(node_stop(&node), 0, "ovmsd did not shut down cleanly; see %s", node.log);
}

Test(server, car_message_reaches_many_apps_across_workers, .timeout = 60)
{
    enum { APPS = 24 };
    client_t car, apps[APPS];
    start_default();
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    for (int i = 0; i < APPS; i++) {
        cr_assert_eq(client_login_ok(&apps[i], node.port, 'A', "TESTCAR", PW), 1);
        char z[8];
        snprintf(z, sizeof z, "Z%d", i + 1);
        cr_assert(client_expect(&car, z, 3000), "car was not told %s", z);
    }
    client_send(&car, "S80.0,K,0,0.00,stopped,standard,250,230");
    for (int i = 0; i < APPS; i++) {
        cr_assert_str_eq(client_recv(&apps[i], 3000), "S80.0,K,0,0.00,stopped,standard,250,230");
        cr_assert_str_eq(client_recv(&apps[i], 3000), "T0");
    }
    /* apps leave: the car sees the count go down, to Z0 */
    for (int i = 0; i < APPS; i++)
        client_close(&apps[i]);
    cr_assert(client_expect(&car, "Z0", 5000));
    client_close(&car);
    stop_checked();
}

Test(server, requester_leaving_mid_reply_gets_nothing_and_order_holds, .timeout = 30)
{
    client_t car, app1, app2;
    start_default();
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_login_ok(&app1, node.port, 'A', "TESTCAR", PW);
    client_login_ok(&app2, node.port, 'A', "TESTCAR", PW);
    client_send(&app1, "C3");
    cr_assert(client_expect(&car, "C3", 3000));
    client_send(&app2, "C7,stat");
    cr_assert(client_expect(&car, "C7,stat", 3000));
    client_send(&car, "c3,0,0,3,first");
    cr_assert_str_eq(client_recv(&app1, 3000), "c3,0,0,3,first");
    client_close(&app1);                     /* leaves in the middle of the reply */
    cr_assert(client_expect(&car, "Z1", 3000));
    client_send(&car, "c3,0,1,3,second");
    client_send(&car, "c3,0,2,3,third");
    client_send(&car, "c7,0,status text");
    /* app2 gets its own reply and none of the leaver's lines */
    cr_assert_str_eq(client_recv(&app2, 3000), "c7,0,status text");
    cr_assert(client_silent(&app2, 500, NULL));
    stop_checked();
}

Test(server, command_to_offline_car_is_answered, .timeout = 30)
{
    client_t app, batch;
    start_default();
    cr_assert_eq(client_login_ok(&app, node.port, 'A', "TESTCAR", PW), 0);
    client_send(&app, "C11");
    cr_assert_str_eq(client_recv(&app, 3000), "c11,1,vehicle not connected");
    client_send(&app, "Cnotanumber");
    cr_assert(client_silent(&app, 500, NULL));
    cr_assert_eq(client_login_ok(&batch, node.port, 'B', "TESTCAR", PW), 0);
    client_send(&batch, "C20,1234");
    cr_assert_str_eq(client_recv(&batch, 3000), "c20,1,vehicle not connected");
    stop_checked();
}

Test(server, slow_reader_is_disconnected_and_others_go_on, .timeout = 90)
{
    enum { BATCH = 20, BATCHES = 200 };
    client_t car, slow, fast;
    char big[3000];
    start_default();                         /* default output limit: 1 MiB */
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_login_ok(&slow, node.port, 'A', "TESTCAR", PW);
    client_login_ok(&fast, node.port, 'A', "TESTCAR", PW);
    int rcv = 4096;
    setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);   /* and it never reads */
    memset(big, 'x', sizeof big);
    big[0] = 'X';
    big[sizeof big - 1] = '\0';
    long rss0 = node_rss_kb(&node), peak = rss0;
    int got = 0;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++)
            client_send(&car, big);
        /* the fast app keeps up: everything sent so far arrives */
        while (got < 2 * BATCH * (b + 1)) {
            cr_assert_not_null(client_recv(&fast, 5000), "fast app starved at %d", got);
            got++;
        }
        long rss = node_rss_kb(&node);
        peak = rss > peak ? rss : peak;
    }
    /* (the app itself sees EOF only after draining megabytes of kernel
     * buffers through its 4 KB window, so the server's word is what counts) */
    cr_assert(node_log_has(&node, "closed: output queue limit exceeded (slow reader)"),
              "the slow app was not disconnected");
#ifndef UNDER_ASAN
    /* (under ASan the quarantine keeps freed memory, so only the plain build measures) */
    cr_assert_lt(peak - rss0, 16384, "server memory grew by %ld kB while the app did not read",
                 peak - rss0);
#else
    (void)peak;
#endif
    stop_checked();
}

Test(server, h_acknowledged_only_when_durable, .timeout = 60)
{
    client_t car, app;
    start_default();
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    for (int i = 0; i < 50; i++)
        client_sendf(&car, "h%d,-%d,*-LOG-Durable,%d,86400,record %d,with,commas", 100 + i, i, i, i);
    for (int i = 0; i < 50; i++) {
        char want[16];
        snprintf(want, sizeof want, "h%d", 100 + i);
        cr_assert(client_expect(&car, want, 5000), "no ack %s", want);
    }
    node_kill9(&node);                      /* no shutdown: only what was durable survives */
    node_start(&node, NULL);
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    client_send(&app, "C32,*-LOG-Durable");
    for (int i = 0; i < 50; i++) {
        const char *m = client_recv(&app, 3000);
        cr_assert_not_null(m);
        char prefix[48];
        snprintf(prefix, sizeof prefix, "c32,0,%d,50,*-LOG-Durable,", i + 1);
        cr_assert(strncmp(m, prefix, strlen(prefix)) == 0, "%s", m);
    }
    stop_checked();
}

Test(server, malformed_h_still_acknowledged, .timeout = 30)
{
    client_t car;
    start_default();
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_send(&car, "h7,garbage");
    cr_assert_str_eq(client_recv(&car, 3000), "h7");
    client_send(&car, "EMh3Zm9v,bar");       /* paranoid h: unreadable, acked like the reference */
    cr_assert_str_eq(client_recv(&car, 3000), "hMh3Zm9v");
    stop_checked();
}

Test(server, welcome_timeout, .timeout = 30)
{
    client_t c;
    node_prepare(&node);
    node_start(&node, "--welcome 1");
    client_connect(&c, node.port);
    client_send_raw(&c, "MP-", 3);          /* trickles, never finishes */
    cr_assert(client_wait_closed(&c, 4000), "not closed after the welcome timeout");
    stop_checked();
}

Test(server, car_ping_and_idle_timeouts, .timeout = 30)
{
    client_t car, batch;
    node_prepare(&node);
    node_start(&node, "--ping-after 1 --ping-interval 1 --car-idle 4 --batch-idle 2");
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    cr_assert_str_eq(client_recv(&car, 4000), "AFA", "no server ping to the idle car");
    client_send(&car, "a");
    client_login_ok(&batch, node.port, 'B', "TESTCAR", PW);
    cr_assert(client_wait_closed(&batch, 5000), "idle batch client not closed");
    cr_assert(client_wait_closed(&car, 8000), "silent car not closed after car_idle");
    stop_checked();
}

Test(server, line_over_4096_closes, .timeout = 30)
{
    client_t car, app;
    char line[5000];
    start_default();
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    cr_assert(client_expect(&app, "Z1", 3000));
    memset(line, 'A', 4097);
    memcpy(line + 4097, "\r\n", 2);
    client_send_raw(&car, line, 4099);
    cr_assert(client_wait_closed(&car, 3000), "a 4097-byte line did not close the connection");
    cr_assert(client_expect(&app, "Z0", 3000));
    stop_checked();
}

Test(server, connection_limit_refuses_cleanly, .timeout = 30)
{
    client_t c[4];
    node_prepare(&node);
    node_start(&node, "--max-connections 3");
    for (int i = 0; i < 3; i++)
        client_login_ok(&c[i], node.port, 'A', "TESTCAR", PW);
    cr_assert_eq(client_login(&c[3], node.port, 'A', "TESTCAR", PW), -1);
    cr_assert(node_log_has(&node, "connection limit (3) reached"));
    client_close(&c[0]);
    usleep(300000);
    client_t again;
    cr_assert_eq(client_login_ok(&again, node.port, 'A', "TESTCAR", PW), 0);
    stop_checked();
}

Test(server, scheme1_owner_login, .timeout = 30)
{
    client_t c;
    size_t len;
    start_default();
    client_connect(&c, node.port);
    client_send_raw(&c, "MP-A 1 owner ownerpw *\r\n", 24);
    const char *reply = client_recv_line(&c, 5000, &len);
    cr_assert_not_null(reply);
    cr_assert_eq(strncmp(reply, "MP-S 1 owner OTHERCAR OTHERCAR TESTCAR", len), 0, "%.*s", (int)len, reply);
    ovms_session_init_plain(&c.session);
    cr_assert_str_eq(client_recv(&c, 3000), "Z0");
    cr_assert_eq(client_recv(&c, 3000)[0], 'T');
    client_send(&c, "A");
    cr_assert_str_eq(client_recv(&c, 3000), "a");
    client_close(&c);
    /* a wrong password is closed without a reply */
    client_connect(&c, node.port);
    client_send_raw(&c, "MP-A 1 owner wrong TESTCAR\r\n", 28);
    cr_assert(client_wait_closed(&c, 5000));
    stop_checked();
}

Test(server, apc_with_a_record_then_login, .timeout = 30)
{
    client_t c;
    size_t len;
    ovms_store_req_t req;
    char digest[32], record[512], params[512];
    const char *text = "- PARA K - ovms.example.org internet - - TESTCAR NETPASS";

    node_prepare(&node);
    ovms_store_t *st = node_store(&node);
    ovms_store_req_init(&req);
    ovms_provision_encode("89440000000000000042", "ProvToken0123456789abc", text, strlen(text),
                          digest, record, sizeof record);
    ovms_store_prep_prov_put(&req, "VIN00000000000042", "TESTCAR", "ProvToken0123456789abc", digest, record);
    cr_assert_eq(ovms_store_run(st, &req), 0);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
    node_start(&node, NULL);

    client_connect(&c, node.port);
    client_send_raw(&c, "AP-C 0 VIN00000000000042\r\n", 26);
    const char *line = client_recv_line(&c, 3000, &len);
    ovms_apreply_t ap;
    cr_assert_eq(ovms_apreply_parse(line, len, &ap), 0);
    cr_assert(ap.found);
    cr_assert_eq(ovms_provision_decode("89440000000000000042", ap.token, ap.digest, ap.record,
                                       params, sizeof params), (int)strlen(text));
    cr_assert_str_eq(params, text);
    client_send_raw(&c, "AP-C 0 VIN00000000000042\r\n", 26);    /* only once per connection */
    line = client_recv_line(&c, 3000, &len);
    cr_assert_eq(strncmp(line, "AP-X", len), 0);
    client_close(&c);
    stop_checked();
}

Test(server, groups_cross_vehicles, .timeout = 30)
{
    client_t car1, car2, app;
    start_default();
    client_login_ok(&car1, node.port, 'C', "TESTCAR", PW);
    client_login_ok(&car2, node.port, 'C', "OTHERCAR", "OTHERPW");
    client_send(&car1, "grally,80,50,90,35,1,1,51.477500,-0.001400");
    usleep(200000);
    client_login_ok(&app, node.port, 'A', "OTHERCAR", "OTHERPW");
    client_send(&app, "GRally");
    cr_assert_str_eq(client_recv(&app, 3000), "gTESTCAR,RALLY,80,50,90,35,1,1,51.477500,-0.001400");
    client_send(&car2, "gRALLY,60,0,0,0,1,1,48.1,11.5");
    cr_assert_str_eq(client_recv(&app, 3000), "gOTHERCAR,RALLY,60,0,0,0,1,1,48.1,11.5");
    client_close(&car1);                     /* its entry is forgotten */
    usleep(200000);
    client_t app2;
    client_login_ok(&app2, node.port, 'A', "TESTCAR", PW);
    client_send(&app2, "GRALLY");
    cr_assert_str_eq(client_recv(&app2, 3000), "gOTHERCAR,RALLY,60,0,0,0,1,1,48.1,11.5");
    cr_assert(client_silent(&app2, 400, NULL));
    stop_checked();
}

Test(server, push_relayed_logged_and_subscriptions_stored, .timeout = 30)
{
    client_t car, app;
    ovms_store_req_t req;
    start_default();
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    client_send(&app, "pmyapp,mail,,OTHERCAR,OTHERPW,owner@example.org");
    client_send(&app, "papp2,expo,simple,ExponentPushToken[abc]");
    client_send(&app, "pbad,mail,,OTHERCAR,WRONGPW,x@example.org");
    cr_assert(client_silent(&app, 300, NULL), "p is never answered");
    client_send(&car, "PAAlarm sounding, check the car");
    cr_assert_str_eq(client_recv(&app, 3000), "PAAlarm sounding, check the car");
    client_send(&app, "C32,*-Log-Notification");
    const char *m = client_expect_prefix(&app, "c32,0,1,1,*-Log-Notification,", 3000);
    cr_assert_not_null(m);
    cr_assert(strstr(m, ",A,Alarm sounding, check the car"), "%s", m);
    stop_checked();

    ovms_store_t *st = node_store(&node);
    ovms_store_req_init(&req);
    ovms_store_prep_pushsub_list(&req, "OTHERCAR");
    cr_assert_eq(ovms_store_run(st, &req), 0);
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 4), "owner@example.org");
    ovms_store_prep_pushsub_list(&req, "TESTCAR");
    cr_assert_eq(ovms_store_run(st, &req), 0);
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 3), "simple");
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

Test(server, utilisation_counted_and_kept_across_shutdown, .timeout = 30)
{
    client_t car, app;
    start_default();
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    for (int i = 0; i < 20; i++)
        client_send(&car, "D97,0,5,21.5,22,19,123,45678,0,3600,12,1,1,1,12.6,0,12.9,0,0");
    for (int i = 0; i < 40; i++)
        cr_assert_not_null(client_recv(&app, 3000));
    client_close(&car);
    client_close(&app);
    stop_checked();                          /* flushes the counters */
    node_start(&node, NULL);
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    client_send(&app, "C30");
    const char *m = client_recv(&app, 3000);
    int k, n, car_rx, car_tx, app_rx, app_tx;
    char date[16];
    cr_assert_eq(sscanf(m, "c30,0,%d,%d,%10[0-9-],%d,%d,%d,%d", &k, &n, date, &car_rx, &car_tx,
                        &app_rx, &app_tx), 7, "%s", m);
    cr_assert_gt(car_tx, 20 * 80, "%s", m);    /* twenty D lines from the car */
    cr_assert_gt(app_rx, 20 * 80, "%s", m);
    cr_assert_gt(car_rx, 0, "%s", m);
    stop_checked();
}

Test(server, paranoid_command_routing, .timeout = 30)
{
    client_t car, app;
    start_default();
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    client_send(&app, "EMChcjqk+Sb");
    cr_assert(client_expect(&car, "EMChcjqk+Sb", 3000));
    client_send(&car, "EMcQUJD");
    cr_assert_str_eq(client_recv(&app, 3000), "EMcQUJD");
    /* car offline: a paranoid command cannot be answered, so it is dropped */
    client_close(&car);
    cr_assert(client_expect(&app, "Z0", 3000));
    client_send(&app, "EMChcjqk+Sb");
    cr_assert(client_silent(&app, 400, NULL));
    stop_checked();
}

/* Random logins, messages and disconnects on two vehicles: no message of
 * one vehicle ever reaches a connection of the other. */
Test(server, vehicle_isolation_under_churn, .timeout = 90)
{
    enum { ROUNDS = 300, SLOTS = 8 };
    client_t cl[SLOTS];
    int live[SLOTS] = { 0 }, vehicle_of[SLOTS];
    const char *ids[2] = { "TESTCAR", "OTHERCAR" }, *pws[2] = { "NETPASS", "OTHERPW" };
    start_default();
    srand(42);
    for (int round = 0; round < ROUNDS; round++) {
        int s = rand() % SLOTS, v = rand() % 2;
        if (!live[s]) {
            char role = s < 2 ? 'C' : (rand() % 3 ? 'A' : 'B');
            v = s < 2 ? s : v;             /* slots 0, 1 are the two cars */
            client_login_ok(&cl[s], node.port, role, ids[v], pws[v]);
            vehicle_of[s] = v;
            live[s] = 1;
        } else if (rand() % 4 == 0) {
            client_close(&cl[s]);
            live[s] = 0;
        } else if (cl[s].role == 'C') {
            client_sendf(&cl[s], "S%d,K,%s", round, ids[vehicle_of[s]]);
        }
        /* read what has arrived and check it belongs */
        for (int k = 0; k < SLOTS; k++) {
            const char *m;
            while (live[k] && (m = client_recv(&cl[k], 0))) {
                if (m[0] == 'S' || m[0] == 'F' || m[0] == 'D') {
                    const char *tag = strrchr(m, ',');
                    cr_assert(tag && !strcmp(tag + 1, ids[vehicle_of[k]]),
                              "%s connection got %s", ids[vehicle_of[k]], m);
                }
            }
        }
    }
    stop_checked();
}

Test(server, bad_configuration_is_one_line_and_exit_2, .timeout = 30)
{
    char cmd[1024], out[1024];
    node_prepare(&node);
    FILE *f = fopen(node.conf, "w");
    fputs("[server]\nworkers = 2\n[timeouts]\ncar_idle = soon\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s --config %s --db %s 2>&1; echo rc=$?", OVMSD_PATH, node.conf, node.db);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    cr_assert(strstr(out, ":4: bad value 'soon' for car_idle in [timeouts]"), "%s", out);
    cr_assert(strstr(out, "rc=2"), "%s", out);
    int lines = 0;
    for (const char *q = out; *q; q++)
        lines += *q == '\n';
    cr_assert_eq(lines, 2, "the error is not one line: %s", out);

    snprintf(cmd, sizeof cmd, "%s --db %s --bogus 1 2>&1; echo rc=$?", OVMSD_PATH, node.db);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    cr_assert(strstr(out, "unknown option --bogus") && strstr(out, "rc=2"), "%s", out);

    snprintf(cmd, sizeof cmd, "%s --help >/dev/null 2>&1; echo rc=$?", OVMSD_PATH);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    cr_assert(strstr(out, "rc=0"), "%s", out);
}

Test(server, config_file_and_reload, .timeout = 30)
{
    client_t car;
    node_prepare(&node);
    FILE *f = fopen(node.conf, "w");
    fprintf(f, "; test\n[log]\nlevel = info\n[timeouts]\nping_after = 1\nping_interval = 1\n");
    fclose(f);
    node_start(&node, "--config %s", node.conf);
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    cr_assert_str_eq(client_recv(&car, 4000), "AFA");
    f = fopen(node.conf, "w");
    fprintf(f, "[log]\nlevel = debug\n[timeouts]\nping_after = 1\nping_interval = 1\n");
    fclose(f);
    kill(node.pid, SIGHUP);
    usleep(300000);
    cr_assert(node_log_has(&node, "configuration reloaded"));
    client_send(&car, "A");
    cr_assert(client_expect(&car, "a", 3000));
    usleep(200000);
    cr_assert(node_log_has(&node, "rx A"), "debug level not in force after SIGHUP");
    stop_checked();
}

Test(server, corrupt_database_exits_with_a_clear_error, .timeout = 30)
{
    char cmd[1024], out[2048];
    node_prepare(&node);
    FILE *f = fopen(node.db, "w");
    fputs("this is not a database, and the node must say so plainly\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s --db %s --listen 127.0.0.1:1 2>&1; echo rc=$?", OVMSD_PATH, node.db);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    cr_assert(strstr(out, "not a usable SQLite database"), "%s", out);
    cr_assert(strstr(out, "rc=1"), "%s", out);
}

/* Car messages are written coalesced (the newest of each code); an app
 * that logs in right after a burst must still get the newest of each. */
Test(server, replay_after_a_burst_has_the_latest, .timeout = 30)
{
    client_t car, app;
    start_default();
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    for (int i = 0; i <= 500; i++) {
        client_sendf(&car, "S%d,K,220", i);
        client_sendf(&car, "D%d,0,5", i);
        if (i % 100 == 0)
            client_sendf(&car, "L%d.000000,0.000000,90,35,1,1", i);
    }
    client_send(&car, "A");
    cr_assert(client_expect(&car, "a", 5000));   /* everything before it was handled */
    cr_assert_eq(client_login(&app, node.port, 'A', "TESTCAR", PW), 0);
    cr_assert_str_eq(client_recv(&app, 3000), "Z1");
    cr_assert_str_eq(client_recv(&app, 3000), "S500,K,220");
    cr_assert_str_eq(client_recv(&app, 3000), "D500,0,5");
    cr_assert_str_eq(client_recv(&app, 3000), "L500.000000,0.000000,90,35,1,1");
    cr_assert_eq(client_recv(&app, 3000)[0], 'T');
    client_close(&car);
    client_close(&app);
    stop_checked();
    /* and the newest is what was kept on disk */
    node_start(&node, NULL);
    client_login_ok(&car, node.port, 'B', "TESTCAR", PW);
    stop_checked();
    ovms_store_t *st = node_store(&node);
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    ovms_store_prep_msg_list(&req, "TESTCAR");
    cr_assert_eq(ovms_store_run(st, &req), 0);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 1), "500,K,220");
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

/* PROTOCOL 2.1: port 6870 is the same protocol inside TLS (scheme 0 RC4
 * inside TLS); a car on TLS and an app on plain TCP share a vehicle. */
Test(server, tls_listener_speaks_the_same_protocol, .timeout = 60)
{
    client_t car, app, app2;
    int tls_port;
    node_prepare(&node);
    make_test_certificate(node.dir);
    {
        /* a second free port for TLS */
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
        socklen_t len = sizeof a;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        bind(fd, (struct sockaddr *)&a, sizeof a);
        getsockname(fd, (struct sockaddr *)&a, &len);
        tls_port = ntohs(a.sin_port);
        close(fd);
    }
    node_start(&node, "--tls-listen 127.0.0.1:%d --tls-cert %s/cert.pem --tls-key %s/key.pem",
               tls_port, node.dir, node.dir);
    client_connect_tls(&car, tls_port);
    cr_assert_eq(client_login_on(&car, 'C', "TESTCAR", PW), 0);
    cr_assert_str_eq(client_recv(&car, 3000), "Z0");
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    cr_assert_str_eq(client_recv(&car, 3000), "Z1");
    client_send(&car, "S77.0,K,0");
    cr_assert_str_eq(client_recv(&app, 3000), "S77.0,K,0");
    client_send(&app, "C7,stat");
    cr_assert_str_eq(client_recv(&car, 3000), "C7,stat");
    /* an app over TLS, on whichever worker, gets the replay */
    client_connect_tls(&app2, tls_port);
    cr_assert_eq(client_login_on(&app2, 'A', "OTHERCAR", "OTHERPW"), 0);
    cr_assert_str_eq(client_recv(&app2, 3000), "Z0");
    cr_assert_eq(client_recv(&app2, 3000)[0], 'T');
    client_send(&app2, "A");
    cr_assert_str_eq(client_recv(&app2, 3000), "a");
    /* plain bytes on the TLS port are not a TLS handshake: closed */
    client_t bad;
    client_connect(&bad, tls_port);
    client_send_raw(&bad, "MP-C 0 x y TESTCAR\r\n", 20);
    cr_assert(client_wait_closed(&bad, 3000));
    client_close(&car);
    client_close(&app);
    client_close(&app2);
    stop_checked();
}

Test(server, tls_misconfiguration_is_one_line, .timeout = 30)
{
    char cmd[1024], out[1024];
    node_prepare(&node);
    snprintf(cmd, sizeof cmd, "%s --db %s --listen 127.0.0.1:1 --tls-listen 127.0.0.1:2 "
             "--tls-cert /nonexistent.pem --tls-key /nonexistent.key 2>&1; echo rc=$?",
             OVMSD_PATH, node.db);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    cr_assert(strstr(out, "TLS certificate /nonexistent.pem") && strstr(out, "rc=1"), "%s", out);
}

/* ---- log history, as the reference keeps it by default ------------------------------------ */

Test(server, stored_messages_and_server_logs_are_history_like_the_reference, .timeout = 30)
{
    client_t car, app;
    char reply[16384];
    start_default();
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_send(&car, "F3.3.001/V3,5YJRE11B081000001,21,1,TR,provider");
    client_send(&car, "S80.0,K,0,0.00,stopped,standard,250,230");
    client_send(&car, "D97,0,5,21.5,22,19,123,45678,0,3600,12,1,1,1,12.6,0,12.9,0,0");
    client_send(&car, "L51.477500,-0.001400,90,35,1,1");
    client_send(&car, "PIcharge finished");
    client_close(&car);                              /* the server logs when it went */
    usleep(1500000);
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    client_read_reply(&app, "C31", reply, sizeof reply);
    const char *types[] = { ",*-Log-Notification,", ",*-OVM-ServerLogs,", ",D,", ",F,", ",L,", ",S," };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        cr_assert(strstr(reply, types[i]), "C31 lacks %s:\n%s", types[i], reply);
    client_read_reply(&app, "C32,S,2020-01-01", reply, sizeof reply);
    cr_assert(strstr(reply, ",S,") && strstr(reply, ",0,80.0,K,0,0.00,stopped,standard,250,230\n"),
              "C32,S does not return the state:\n%s", reply);
    client_read_reply(&app, "C32,*-OVM-ServerLogs", reply, sizeof reply);
    cr_assert(strstr(reply, " C got proto #0/C login"), "no login line:\n%s", reply);
    cr_assert(strstr(reply, " C closed by the peer"), "no line for the car leaving:\n%s", reply);
    client_close(&app);
    stop_checked();
}

Test(server, log_history_is_optional_and_within_a_budget, .timeout = 30)
{
    client_t car, app;
    char reply[16384], code[2] = "0";
    node_prepare(&node);
    node_start(&node, "--history 0");
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    client_send(&car, "S80.0,K,0");
    client_send(&car, "PAalert");
    usleep(1200000);
    client_login_ok(&app, node.port, 'A', "TESTCAR", PW);
    client_read_reply(&app, "C31", reply, sizeof reply);
    cr_assert(strstr(reply, "c31,0,1,1,*-Log-Notification,"), "with --history 0:\n%s", reply);
    client_close(&app);
    client_close(&car);
    stop_checked();
    /* a car sending forty kinds of message at once: at most its budget of
     * the node's own records (10, one of them for its login) */
    node_start(&node, "--message-interval-ms 0 --server-history-burst 10 --server-history-per-minute 1");
    client_login_ok(&car, node.port, 'C', "TESTCAR", PW);
    const char *codes = "0123456789IJKMNOQUbdeijklmnoqstuvwxyz!#$";
    for (const char *p = codes; *p; p++) {
        code[0] = *p;
        client_sendf(&car, "%s%d,data", code, (int)(p - codes));
    }
    client_send(&car, "A");
    cr_assert(client_expect(&car, "a", 3000));
    usleep(500000);
    client_close(&car);
    stop_checked();
    ovms_store_t *st = node_store(&node);
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    ovms_store_prep_hist_list(&req, "TESTCAR", NULL);
    cr_assert_eq(ovms_store_run(st, &req), 0);
    int ours = 0;
    for (int i = 0; i < req.rows.nrows; i++)
        ours += strlen(ovms_store_cell(&req.rows, i, 0)) == 1 ||
                !strcmp(ovms_store_cell(&req.rows, i, 0), "*-OVM-ServerLogs");
    cr_assert_leq(ours, 10, "%d records of the node's own for a budget of 10", ours);
    cr_assert_geq(ours, 9);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}
