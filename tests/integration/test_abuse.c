/*
 * test_abuse.c -- what one client (or one address, or a crowd of them)
 * must not be able to do to a node: exhaust the connection slots with
 * half-finished welcomes, guess passwords at full speed, learn which owner
 * names exist from timing, or replay a recorded welcome. The real ovmsd;
 * clients come from different loopback addresses (127.0.0.0/8).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static node_t node;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* A scheme 0 login from a source address; 0 when the server welcomed it. */
static int login_from(client_t *c, const char *source, char role, const char *vehicle, const char *pw)
{
    client_connect_from(c, node.port, source);
    return client_login_on(c, role, vehicle, pw);
}

/* A connection that never finishes its welcome. */
static void half_open(client_t *c, const char *source)
{
    client_connect_from(c, node.port, source);
    client_send_raw(c, "MP-", 3);
}

/* ---- connection exhaustion (item 7) --------------------------------------------------- */

Test(abuse, half_finished_welcomes_from_one_address_do_not_block_logins, .timeout = 60)
{
    enum { FLOOD = 300 };
    static client_t flood[FLOOD];
    client_t app;
    node_prepare(&node);
    node_start(&node, "--max-connections 300 --max-unauthenticated-per-address 20");
    for (int i = 0; i < FLOOD; i++)
        half_open(&flood[i], "127.0.0.5");
    int cut = 0;
    usleep(300000);                  /* refusals are immediate: the ones admitted stay open */
    for (int i = 0; i < FLOOD; i++)
        cut += client_wait_closed(&flood[i], 20);
    cr_assert_geq(cut, FLOOD - 20, "only %d of %d half-finished welcomes from one address were cut", cut,
                  FLOOD);
    double t0 = now_ms();
    cr_assert_eq(login_from(&app, "127.0.0.6", 'A', "TESTCAR", "NETPASS"), 0,
                 "a login from another address was refused while one address flooded");
    cr_assert_lt(now_ms() - t0, 1000);
    cr_assert(node_log_has(&node, "too many connections from this address not logged in yet"));
    for (int i = 0; i < FLOOD; i++)
        client_close(&flood[i]);
    client_close(&app);
    cr_assert_eq(node_stop(&node), 0);
}

Test(abuse, a_handshake_flood_from_many_addresses_is_timed_out_sooner, .timeout = 60)
{
    enum { FLOOD = 40 };
    client_t flood[FLOOD], app;
    char source[32];
    node_prepare(&node);
    node_start(&node, "--max-unauthenticated %d --welcome-under-pressure 2", FLOOD);
    for (int i = 0; i < FLOOD; i++) {
        snprintf(source, sizeof source, "127.0.1.%d", i + 1);
        half_open(&flood[i], source);
    }
    usleep(200000);
    /* the slots are full: logins wait for the flood to be cut, seconds, not 30 */
    double t0 = now_ms();
    int ok = -1;
    while (ok != 0 && now_ms() - t0 < 6000) {
        ok = login_from(&app, "127.0.0.6", 'A', "TESTCAR", "NETPASS");
        if (ok != 0) {
            client_close(&app);
            usleep(200000);
        }
    }
    cr_assert_eq(ok, 0, "no login within 6 s while handshakes flooded the node");
    /* cut until the pressure is relieved (below half the limit) */
    int cut = 0;
    for (int i = 0; i < FLOOD; i++)
        cut += client_wait_closed(&flood[i], 100);
    cr_assert_geq(cut, FLOOD / 2, "only %d of %d half-finished welcomes cut under pressure", cut, FLOOD);
    for (int i = 0; i < FLOOD; i++)
        client_close(&flood[i]);
    client_close(&app);
    cr_assert_eq(node_stop(&node), 0);
}

/* ---- password guessing (item 8) ------------------------------------------------------------ */

Test(abuse, failed_logins_are_penalized_per_address, .timeout = 60)
{
    client_t c, car;
    node_prepare(&node);
    node_start(&node, "--login-penalty 2 --login-penalty-threshold 6");
    for (int i = 0; i < 200; i++) {
        char guess[16];
        snprintf(guess, sizeof guess, "GUESS%d", i);
        cr_assert_eq(login_from(&c, "127.0.0.7", 'C', "TESTCAR", guess), -1);
        client_close(&c);
    }
    /* the guesser's address is refused even with the right password ... */
    cr_assert_eq(login_from(&c, "127.0.0.7", 'C', "TESTCAR", "NETPASS"), -1,
                 "the right password worked at once after 200 wrong ones from one address");
    client_close(&c);
    /* ... while the real car, elsewhere, logs in at once */
    cr_assert_eq(login_from(&car, "127.0.0.8", 'C', "TESTCAR", "NETPASS"), 0);
    cr_assert_str_eq(client_recv(&car, 3000), "Z0");
    cr_assert(node_log_has(&node, "refused: too many failed logins from this address"));
    /* the penalty runs out: only the first few failures counted */
    usleep(3500000);
    cr_assert_eq(login_from(&c, "127.0.0.7", 'A', "TESTCAR", "NETPASS"), 0,
                 "the address stays refused after its penalty ran out");
    client_close(&c);
    client_close(&car);
    cr_assert_eq(node_stop(&node), 0);
}

Test(abuse, a_vehicle_guessed_at_from_many_addresses_keeps_its_real_car, .timeout = 60)
{
    client_t c, car;
    char source[32];
    node_prepare(&node);
    node_start(&node, "--vehicle-login-penalty 3 --vehicle-login-penalty-threshold 30");
    cr_assert_eq(login_from(&car, "127.0.0.9", 'C', "TESTCAR", "NETPASS"), 0);   /* known good */
    client_close(&car);
    for (int i = 0; i < 20; i++) {
        snprintf(source, sizeof source, "127.0.2.%d", i + 1);
        cr_assert_eq(login_from(&c, source, 'A', "TESTCAR", "WRONG"), -1);
        client_close(&c);
    }
    cr_assert_eq(login_from(&c, "127.0.3.1", 'A', "TESTCAR", "NETPASS"), -1,
                 "an unknown address got its guess checked while the vehicle was under attack");
    client_close(&c);
    cr_assert_eq(login_from(&car, "127.0.0.9", 'C', "TESTCAR", "NETPASS"), 0,
                 "the real car was locked out");
    cr_assert_str_eq(client_recv(&car, 3000), "Z0");
    cr_assert_eq(login_from(&c, "127.0.3.1", 'A', "OTHERCAR", "OTHERPW"), 0,
                 "another vehicle was locked out too");
    client_close(&c);
    client_close(&car);
    cr_assert_eq(node_stop(&node), 0);
}

/* Scheme 1: an unknown owner name takes as long to refuse as a known one
 * with a wrong password, so timing does not tell which names exist. */
static double scheme1_refusal_ms(const char *user)
{
    client_t c;
    char line[128];
    double total = 0;
    for (int i = 0; i < 5; i++) {
        client_connect(&c, node.port);
        int n = snprintf(line, sizeof line, "MP-A 1 %s wrongpassword TESTCAR\r\n", user);
        double t0 = now_ms();
        client_send_raw(&c, line, (size_t)n);
        cr_assert(client_wait_closed(&c, 5000));
        total += now_ms() - t0;
        client_close(&c);
    }
    return total / 5;
}

Test(abuse, unknown_owners_take_as_long_as_wrong_passwords, .timeout = 60)
{
    node_prepare(&node);
    node_start(&node, NULL);
    double known = scheme1_refusal_ms("owner"), unknown = scheme1_refusal_ms("nosuchowner");
    cr_log_info("scheme 1 refusal: known owner %.2f ms, unknown owner %.2f ms", known, unknown);
    cr_assert_gt(unknown, known * 0.5, "unknown owner refused in %.2f ms, known one in %.2f ms",
                 unknown, known);
    cr_assert_eq(node_stop(&node), 0);
}

/* ---- replayed welcomes (item 9) -------------------------------------------------------- */

/* The welcome line of a car login, as a sniffer would record it. */
static int recorded_welcome(char *line, size_t cap)
{
    char token[OVMS_TOKEN_LEN + 1], digest[OVMS_DIGEST_B64_LEN + 1];
    ovms_token_generate(token);
    ovms_digest_b64("NETPASS", 7, token, strlen(token), digest);
    return ovms_welcome_format_client(line, cap, 'C', token, digest, "TESTCAR");
}

static int answered(const char *line, size_t n)
{
    client_t c;
    size_t len;
    client_connect(&c, node.port);
    client_send_raw(&c, line, n);
    int got = client_recv_line(&c, 2000, &len) != NULL;
    client_close(&c);
    return got;
}

Test(abuse, a_recorded_car_welcome_cannot_be_replayed, .timeout = 60)
{
    char line[256];
    client_t car;
    node_prepare(&node);
    node_start(&node, NULL);
    int n = recorded_welcome(line, sizeof line);
    cr_assert(answered(line, (size_t)n), "the original login was refused");
    /* the real car comes back with a fresh token; a replay must not drop it */
    client_login_ok(&car, node.port, 'C', "TESTCAR", "NETPASS");
    cr_assert_not(answered(line, (size_t)n), "a replayed welcome logged in");
    client_send(&car, "A");
    cr_assert(client_expect(&car, "a", 3000), "the real car was dropped by the replay");
    cr_assert(node_log_has(&node, "replayed welcome"));
    client_close(&car);
    cr_assert_eq(node_stop(&node), 0);

    /* configurable: off, tokens may be reused as PROTOCOL 2.4.2 allows */
    node_start(&node, "--token-replay 0");
    cr_assert(answered(line, (size_t)n));
    cr_assert(answered(line, (size_t)n), "--token-replay 0 still refused a reused token");
    cr_assert_eq(node_stop(&node), 0);
}

/* ---- groups (item 6) ------------------------------------------------------------------------- */

static int stats_say(const char *text)
{
    char line[4096];
    int found = 0;
    kill(node.pid, SIGUSR1);
    for (int i = 0; i < 50 && !found; i++) {
        usleep(20000);
        FILE *f = fopen(node.log, "r");
        found = 0;
        while (f && fgets(line, sizeof line, f))
            found = strstr(line, "stats: ") ? strstr(line, text) != NULL : found;
        if (f)
            fclose(f);
    }
    return found;
}

Test(abuse, groups_are_capped_indexed_and_freed, .timeout = 60)
{
    enum { NAMES = 120000 };
    client_t app, car;
    node_prepare(&node);
    node_start(&node, NULL);
    client_login_ok(&app, node.port, 'A', "TESTCAR", "NETPASS");
    client_login_ok(&car, node.port, 'C', "OTHERCAR", "OTHERPW");
    double t0 = now_ms();
    for (int i = 0; i < NAMES; i++)
        client_sendf(&app, "GFLOOD%d", i);
    client_send(&app, "A");
    cr_assert(client_expect(&app, "a", 30000), "%d G were not handled within 30 s", NAMES);
    cr_log_info("%d G in %.0f ms", NAMES, now_ms() - t0);
    /* subscribed to the first 16 only */
    client_send(&car, "gFLOOD5,80,50,90,35,1,1,51.4775,-0.0014");
    cr_assert_str_eq(client_recv(&app, 3000), "gOTHERCAR,FLOOD5,80,50,90,35,1,1,51.4775,-0.0014");
    client_send(&car, "gFLOOD100,80,50,90,35,1,1,51.4775,-0.0014");
    cr_assert(client_silent(&app, 500, NULL), "subscribed beyond the cap");
    cr_assert(stats_say("17 groups (16 subscriptions, 2 members)"), "unexpected group registry");
    client_close(&app);
    client_close(&car);
    usleep(300000);
    cr_assert(stats_say("0 groups (0 subscriptions, 0 members)"), "groups not freed after their clients left");
    cr_assert_eq(node_stop(&node), 0);
}

/* ---- long replies (item 11) ------------------------------------------------------------------- */

Test(abuse, a_long_c32_reply_reaches_a_reader_that_keeps_up, .timeout = 120)
{
    enum { RECORDS = 20000 };
    client_t app;
    char data[501], prefix[64];
    node_prepare(&node);
    ovms_store_t *st = node_store(&node);
    ovms_store_req_t *reqs = calloc(RECORDS, sizeof *reqs);   /* submitted together: one commit */
    memset(data, 'x', 500);
    data[500] = '\0';
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < RECORDS; i++) {
        ovms_store_req_init(&reqs[i]);
        ovms_store_prep_hist_put(&reqs[i], "TESTCAR", "*-LOG-Big", i, now - RECORDS + i, now + 86400,
                                 data, 500);
        cr_assert_eq(ovms_store_submit(st, &reqs[i], NULL, NULL), 0);
    }
    ovms_store_close(st);                          /* finishes every write */
    for (int i = 0; i < RECORDS; i++) {
        cr_assert_eq(reqs[i].status, 0);
        ovms_store_req_cleanup(&reqs[i]);
    }
    free(reqs);
    node_start(&node, NULL);                        /* default output limit: 1 MiB */
    client_login_ok(&app, node.port, 'A', "TESTCAR", "NETPASS");
    client_send(&app, "C32,*-LOG-Big");
    client_send(&app, "C31");                       /* waits for the C32 reply */
    for (int i = 0; i < RECORDS; i++) {
        const char *m = client_recv(&app, 5000);
        cr_assert_not_null(m, "the reply stopped after %d of %d lines (%s)", i, RECORDS,
                           app.closed ? "closed by the server" : "silence");
        snprintf(prefix, sizeof prefix, "c32,0,%d,%d,*-LOG-Big,", i + 1, RECORDS);
        cr_assert(!strncmp(m, prefix, strlen(prefix)), "line %d: %.60s", i, m);
    }
    const char *m = client_recv(&app, 5000);
    cr_assert(m && !strncmp(m, "c31,0,1,2,*-LOG-Big,20000,20000,", 32), "after the reply: %s", m ? m : "(none)");
    cr_assert_not(node_log_has_now(&node, "slow reader"));
    client_close(&app);
    cr_assert_eq(node_stop(&node), 0);
}

/* ---- write budgets (item 5) ------------------------------------------------------------------ */

static int64_t db_count(const char *vehicle, const char *type)
{
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    ovms_store_prep_hist_list(&req, vehicle, type);
    int64_t n = node_rows(&node, &req);
    ovms_store_req_cleanup(&req);
    return n;
}

/* A car sending notifications flat out: all relayed live, but only its
 * budget stored, and another vehicle's h acknowledgements keep coming. */
Test(abuse, a_notification_flood_stores_only_its_budget, .timeout = 90)
{
    enum { FLOOD = 2000 };
    client_t car, app, other;
    node_prepare(&node);
    node_start(&node, NULL);
    client_login_ok(&car, node.port, 'C', "TESTCAR", "NETPASS");
    client_login_ok(&app, node.port, 'A', "TESTCAR", "NETPASS");
    client_login_ok(&other, node.port, 'C', "OTHERCAR", "OTHERPW");
    double worst = 0;
    for (int i = 0; i < FLOOD; i++) {
        client_sendf(&car, "PAflood %d", i);
        if (i % 100 == 50) {
            char ack[16];
            snprintf(ack, sizeof ack, "h%d", i);
            double t0 = now_ms();
            client_sendf(&other, "h%d,0,*-LOG-Other,%d,86400,meanwhile", i, i);
            cr_assert(client_expect(&other, ack, 5000), "no ack %s during the flood", ack);
            worst = now_ms() - t0 > worst ? now_ms() - t0 : worst;
        }
    }
    for (int i = 0; i < FLOOD; i++)
        cr_assert_not_null(client_expect_prefix(&app, "PAflood", 5000), "relayed %d of %d", i, FLOOD);
    cr_log_info("another vehicle's h ack during the flood: worst %.1f ms", worst);
    client_close(&car);
    client_close(&app);
    client_close(&other);
    cr_assert_eq(node_stop(&node), 0);
    int64_t stored = db_count("TESTCAR", "*-Log-Notification");
    cr_assert_leq(stored, 22, "%lld of %d notifications stored", (long long)stored, FLOOD);
    cr_assert_geq(stored, 20);
}

/* h faster than its budget: the car is slowed down (not read), nothing lost. */
Test(abuse, history_faster_than_its_budget_is_slowed_not_lost, .timeout = 90)
{
    enum { RECORDS = 200 };
    client_t car;
    node_prepare(&node);
    node_start(&node, "--history-per-minute 600 --history-burst 50");
    client_login_ok(&car, node.port, 'C', "TESTCAR", "NETPASS");
    for (int i = 0; i < RECORDS; i++)
        client_sendf(&car, "h%d,0,*-LOG-Fast,%d,86400,record %d", i, i, i);
    int acks = 0;
    double t0 = now_ms();
    while (now_ms() - t0 < 2000 && client_expect_prefix(&car, "h", 100))
        acks++;
    cr_assert_leq(acks, 50 + 10 * 3 + 10, "%d acks in 2 s with a budget of 50 + 10/s", acks);
    while (acks < RECORDS && client_expect_prefix(&car, "h", 5000))
        acks++;
    cr_assert_eq(acks, RECORDS, "only %d of %d records acknowledged", acks, RECORDS);
    client_close(&car);
    cr_assert_eq(node_stop(&node), 0);
    cr_assert_eq(db_count("TESTCAR", "*-LOG-Fast"), RECORDS);
}

/* A vehicle holds at most history_max_records: beyond, h is not
 * acknowledged (the car keeps it) and nothing more is stored. */
Test(abuse, a_vehicles_history_is_capped, .timeout = 60)
{
    client_t car;
    node_prepare(&node);
    node_start(&node, "--history-max-records 30 --history 0");
    client_login_ok(&car, node.port, 'C', "TESTCAR", "NETPASS");
    for (int i = 0; i < 50; i++)
        client_sendf(&car, "h%d,0,*-LOG-Cap,%d,86400,record %d", i, i, i);
    int acks = 0;
    while (client_expect_prefix(&car, "h", 1500))
        acks++;
    cr_assert_eq(acks, 30, "%d of 50 records acknowledged with a limit of 30", acks);
    client_close(&car);
    cr_assert_eq(node_stop(&node), 0);
    cr_assert(node_log_has(&node, "the vehicle holds 30 history records, its limit"));
    cr_assert_eq(db_count("TESTCAR", "*-LOG-Cap"), 30);
}

static int64_t subscriptions(const char *vehicle)
{
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    ovms_store_prep_pushsub_list(&req, vehicle);
    int64_t n = node_rows(&node, &req);
    ovms_store_req_cleanup(&req);
    return n;
}

static void subscribe_many(const char *extra, int many)
{
    client_t app;
    node_prepare(&node);
    node_start(&node, "%s", extra);
    client_login_ok(&app, node.port, 'A', "TESTCAR", "NETPASS");
    for (int i = 0; i < many; i++)
        client_sendf(&app, "papp%d,expo,simple,ExponentPushToken[%d]", i, i);
    client_send(&app, "A");
    cr_assert(client_expect(&app, "a", 5000));
    client_close(&app);
    cr_assert_eq(node_stop(&node), 0);
}

Test(abuse, push_subscriptions_have_a_rate_and_a_limit, .timeout = 60)
{
    subscribe_many("", 100);
    cr_assert_eq(subscriptions("TESTCAR"), 10, "the burst of 10 was not the limit");
    subscribe_many("--push-subscription-burst 100 --max-push-subscriptions 5", 100);
    cr_assert_eq(subscriptions("TESTCAR"), 5, "the per-vehicle limit of 5 did not hold");
}
