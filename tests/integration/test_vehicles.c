/*
 * test_vehicles.c -- vehicles changing under a running node: removed,
 * re-created, given a new password or owner with ovms-admin, a separate
 * process on the same database, while their car and apps are connected.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static node_t node;

static void admin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void admin(const char *fmt, ...)
{
    char args[512], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s --db %s %s >>%s 2>&1", OVMS_ADMIN_PATH, node.db, args, node.log);
    cr_assert_eq(system(cmd), 0, "ovms-admin %s failed; see %s", args, node.log);
}

/* Logins for a vehicle ovms-admin just added work once the node has seen
 * it (within a second); 0 once logged in, -1 if it never worked. */
static int login_soon(client_t *c, char role, const char *id, const char *pw)
{
    for (int i = 0; i < 25; i++) {
        if (client_login(c, node.port, role, id, pw) == 0)
            return 0;
        client_close(c);
        usleep(100000);
    }
    return -1;
}

static int rows_of(ovms_store_t *st, ovms_store_req_t *req)
{
    cr_assert_eq(ovms_store_run(st, req), 0);
    return req->rows.nrows;
}

/* Removed: its car and apps go within two seconds; re-created with the
 * same id for another owner, it starts empty and the old car is not it. */
Test(vehicles, removal_closes_and_nothing_survives_into_a_new_vehicle, .timeout = 60)
{
    client_t car, app, batch, newapp, newcar;
    node_prepare(&node);
    node_start(&node, NULL);
    client_login_ok(&car, node.port, 'C', "TESTCAR", "NETPASS");
    client_login_ok(&app, node.port, 'A', "TESTCAR", "NETPASS");
    client_login_ok(&batch, node.port, 'B', "TESTCAR", "NETPASS");
    client_send(&car, "S80.0,K,0,0.00,stopped,standard,250,230");
    client_send(&car, "L51.477500,-0.001400,90,35,1,1");
    client_send(&car, "ETtoken0123456789abcdef");
    client_send(&car, "EMDc2VjcmV0");
    client_send(&car, "h1,0,*-LOG-Trip,1,86400,a trip");
    cr_assert(client_expect(&car, "h1", 3000));
    client_send(&car, "PAold owner's alert");
    client_send(&car, "gRALLY,80,50,90,35,1,1,51.4775,-0.0014");
    client_send(&app, "papp,mail,simple,old@example.org");
    client_send(&app, "A");
    cr_assert(client_expect(&app, "a", 3000));
    usleep(1500000);                            /* the stored messages are written */

    admin("vehicle remove TESTCAR");
    cr_assert(client_wait_closed(&car, 2500), "the removed vehicle's car is still connected");
    cr_assert(client_wait_closed(&app, 2500), "the removed vehicle's app is still connected");
    cr_assert(client_wait_closed(&batch, 2500), "the removed vehicle's batch client is still connected");
    cr_assert_eq(client_login(&car, node.port, 'C', "TESTCAR", "NETPASS"), -1, "removed, yet it logs in");
    client_close(&car);

    admin("owner add newowner");
    admin("vehicle add TESTCAR --password NEWPASS1 --owner newowner");
    /* nothing of the old vehicle is replayed or listed */
    cr_assert_eq(login_soon(&newapp, 'A', "TESTCAR", "NEWPASS1"), 0, "the new vehicle cannot log in");
    cr_assert_str_eq(client_recv(&newapp, 3000), "Z0");
    const char *m = client_recv(&newapp, 3000);
    cr_assert(m && m[0] == 'T', "the new vehicle replays an old message: %s", m ? m : "(none)");
    client_send(&newapp, "C31");          /* only the new login's own server log line */
    const char *c31 = client_recv(&newapp, 3000);
    cr_assert(c31 && !strncmp(c31, "c31,0,1,1,*-OVM-ServerLogs,", 27),
              "the new vehicle lists old history: %s", c31 ? c31 : "(none)");
    client_send(&newapp, "GRALLY");
    cr_assert(client_silent(&newapp, 500, NULL), "the old car's group entry survived");
    /* (this one alerts the new owner: it is a failed car login) */
    cr_assert_eq(client_login(&car, node.port, 'C', "TESTCAR", "NETPASS"), -1,
                 "the old car password opens the new vehicle");
    client_close(&car);
    /* the new car gets the new owner's commands */
    client_login_ok(&newcar, node.port, 'C', "TESTCAR", "NEWPASS1");
    cr_assert(client_expect(&newapp, "Z1", 3000));
    client_send(&newapp, "C7,stat");
    cr_assert(client_expect(&newcar, "C7,stat", 3000));
    client_close(&newcar);
    client_close(&newapp);
    cr_assert_eq(node_stop(&node), 0);

    ovms_store_t *st = node_store(&node);
    ovms_store_req_t req;
    ovms_vehicle_t v;
    ovms_store_req_init(&req);
    ovms_store_prep_pushsub_list(&req, "TESTCAR");
    cr_assert_eq(rows_of(st, &req), 0, "an old push subscription survived");
    ovms_store_prep_hist_list(&req, "TESTCAR", "*-LOG-Trip");
    cr_assert_eq(rows_of(st, &req), 0, "the old car's history survived");
    ovms_store_prep_hist_list(&req, "TESTCAR", "*-Log-Notification");
    for (int i = 0, n = rows_of(st, &req); i < n; i++)
        cr_assert_not(strstr(ovms_store_cell(&req.rows, i, 4), "old owner"),
                      "the old owner's notification survived");
    ovms_store_prep_msg_list(&req, "TESTCAR");
    cr_assert_eq(rows_of(st, &req), 0, "an old stored message survived");
    cr_assert_eq(ovms_store_vehicle_get(st, "TESTCAR", &v), 0);
    cr_assert_str_eq(v.ptoken, "", "the old paranoid token survived");
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

/* A new car password or a new owner also ends the sessions made with the
 * old one, while the other vehicle's connections stay. */
Test(vehicles, password_and_owner_changes_close_the_sessions, .timeout = 60)
{
    client_t car, app, other;
    node_prepare(&node);
    node_start(&node, NULL);
    client_login_ok(&car, node.port, 'C', "TESTCAR", "NETPASS");
    client_login_ok(&app, node.port, 'A', "TESTCAR", "NETPASS");
    client_login_ok(&other, node.port, 'C', "OTHERCAR", "OTHERPW");
    admin("vehicle set-password TESTCAR CHANGED1");
    cr_assert(client_wait_closed(&car, 2500), "car still connected after the password change");
    cr_assert(client_wait_closed(&app, 2500), "app still connected after the password change");
    cr_assert_eq(client_login(&car, node.port, 'A', "TESTCAR", "NETPASS"), -1);
    client_close(&car);
    client_close(&app);
    cr_assert_eq(login_soon(&car, 'C', "TESTCAR", "CHANGED1"), 0);
    cr_assert_str_eq(client_recv(&car, 3000), "Z0");

    admin("owner add buyer");
    admin("vehicle set TESTCAR --owner buyer");
    cr_assert(client_wait_closed(&car, 2500), "car still connected after a change of owner");
    client_send(&other, "A");
    cr_assert(client_expect(&other, "a", 3000), "another vehicle's car was disturbed");
    client_close(&other);
    cr_assert_eq(node_stop(&node), 0);
}
