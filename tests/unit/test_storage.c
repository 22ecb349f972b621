/*
 * test_storage.c -- storage/: every operation, group commit semantics,
 * concurrent writers, expiry, migrations, bad database files, changes made
 * by another process, the replication change feed, and lazy writes.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ovms_store.h"

static char dir[256], path[300];

static void make_path(void)
{
    snprintf(dir, sizeof dir, "/tmp/ovms-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/node.db", dir);
}

static ovms_store_t *open_store(const char *node)
{
    ovms_store_config_t cfg = { .path = path, .node_id = node, .poll_ms = 50 };
    ovms_store_t *st;
    char err[256];
    int rc = ovms_store_open(&st, &cfg, err, sizeof err);
    cr_assert_eq(rc, 0, "open: %s (%s)", err, ovms_strerror(rc));
    return st;
}

static int run(ovms_store_t *st, ovms_store_req_t *req)
{
    int rc = ovms_store_run(st, req);
    return rc;
}

#define RUN_OK(st, req, prep)                                               \
    do {                                                                    \
        cr_assert_eq((prep), 0, "prep %s", #prep);                          \
        int rc_ = run(st, req);                                             \
        cr_assert_eq(rc_, 0, "%s: %s", #prep, ovms_strerror(rc_));          \
    } while (0)

static void add_vehicle(ovms_store_t *st, const char *id, const char *pw)
{
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, id, NULL, pw, NULL, NULL, OVMS_STORE_CREATE));
    ovms_store_req_cleanup(&req);
}

Test(storage, fresh_file_migrates_and_names_the_node)
{
    make_path();
    ovms_store_t *st = open_store("node-a");
    cr_assert_str_eq(ovms_store_node_id(st), "NODE-A");
    ovms_store_close(st);

    sqlite3 *db;
    sqlite3_stmt *s;
    sqlite3_open(path, &db);
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(s, 0), ovms_store_schema_version());
    sqlite3_finalize(s);
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
    sqlite3_step(s);
    cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);

    /* reopening keeps the node id; another id is refused clearly */
    st = open_store(NULL);
    cr_assert_str_eq(ovms_store_node_id(st), "NODE-A");
    ovms_store_close(st);
    ovms_store_config_t cfg = { .path = path, .node_id = "OTHER" };
    char err[256];
    cr_assert_eq(ovms_store_open(&st, &cfg, err, sizeof err), OVMS_ECONFIG);
    cr_assert_null(st);
    cr_assert(strstr(err, "belongs to node NODE-A"), "%s", err);
}

Test(storage, owners)
{
    ovms_store_req_t req;
    ovms_owner_t o;
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_req_init(&req);

    RUN_OK(st, &req, ovms_store_prep_owner_put(&req, "alice", "alice@example.org", NULL, 1, OVMS_STORE_CREATE));
    int64_t id = req.value;
    cr_assert_gt(id, 0);
    cr_assert_eq(ovms_store_owner_get(st, "alice", &o), 0);
    cr_assert_str_eq(o.mail, "alice@example.org");
    cr_assert_eq(o.id, id);

    ovms_store_prep_owner_put(&req, "alice", NULL, NULL, 1, OVMS_STORE_CREATE);
    cr_assert_eq(run(st, &req), OVMS_EEXIST);
    ovms_store_prep_owner_put(&req, "bob", "x", NULL, 1, OVMS_STORE_UPDATE);
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);
    cr_assert_eq(ovms_store_prep_owner_put(&req, "a,b", NULL, NULL, 1, 0), OVMS_EINVAL);
    cr_assert_eq(ovms_store_prep_owner_put(&req, "ab", "m,ail", NULL, 1, 0), OVMS_EINVAL);

    char hash[128];
    cr_assert_gt(ovms_password_hash("s3cret", hash, sizeof hash), 0);
    RUN_OK(st, &req, ovms_store_prep_owner_put(&req, "alice", "new@example.org", hash, -1, OVMS_STORE_UPDATE));
    cr_assert_eq(ovms_store_owner_get(st, "alice", &o), 0);
    cr_assert_str_eq(o.mail, "new@example.org");
    cr_assert_eq(ovms_password_check("s3cret", o.pwhash), 0);
    cr_assert_eq(ovms_password_check("wrong", o.pwhash), OVMS_EDIGEST);

    RUN_OK(st, &req, ovms_store_prep_owner_list(&req));
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 1), "alice");

    /* an owner with vehicles cannot go; without, it becomes a tombstone */
    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, "CAR1", "alice", "pw", NULL, NULL, OVMS_STORE_CREATE));
    ovms_store_prep_owner_remove(&req, "alice");
    cr_assert_eq(run(st, &req), OVMS_EBUSY);
    RUN_OK(st, &req, ovms_store_prep_vehicle_remove(&req, "CAR1"));
    RUN_OK(st, &req, ovms_store_prep_owner_remove(&req, "alice"));
    cr_assert_eq(ovms_store_owner_get(st, "alice", &o), OVMS_ENOTFOUND);
    RUN_OK(st, &req, ovms_store_prep_owner_list(&req));
    cr_assert_eq(req.rows.nrows, 0);
    /* the name is free again, and comes back under its id (a hash of the
     * name: nodes creating owners at once never collide) */
    RUN_OK(st, &req, ovms_store_prep_owner_put(&req, "alice", NULL, NULL, 1, OVMS_STORE_CREATE));
    cr_assert_eq(req.value, id);
    RUN_OK(st, &req, ovms_store_prep_owner_put(&req, "bob", NULL, NULL, 1, OVMS_STORE_CREATE));
    cr_assert_neq(req.value, id);
    cr_assert(req.value > (1ll << 32) && req.value < (1ll << 53));
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

/* Drupal 7 hashes of accounts migrated from a reference database: known
 * answers published with other implementations (2^15 and 2^7 rounds). */
Test(storage, drupal7_hashes_are_checked)
{
    const char *d15 = "$S$DeIZ1KTE.VzRvudZ5.xgOakipuMFrVyPmRdWTjAdYieWj27NMglI";
    const char *d7 = "$S$5FIcboyzv1ZD/OZDb4w/4HSlnsPlwbr/PWLWrHPWrJp8eXOQQaWJ";
    cr_assert_eq(ovms_password_check("password1234", d15), 0);
    cr_assert_eq(ovms_password_check("password1235", d15), OVMS_EDIGEST);
    cr_assert_eq(ovms_password_check("DifficultPassword123", d7), 0);
    cr_assert_eq(ovms_password_check("", d7), OVMS_EDIGEST);
    cr_assert_eq(ovms_password_check("DifficultPassword123", "$S$5FIcboyz"), OVMS_EDIGEST);
    cr_assert_eq(ovms_password_check("DifficultPassword123",
                                     "$S$!FIcboyzv1ZD/OZDb4w/4HSlnsPlwbr/PWLWrHPWrJp8eXOQQaWJ"), OVMS_EDIGEST);
}

/* API tokens: kept as hashes, found from memory, listed by prefix, removed
 * by the whole token or an unambiguous prefix, at most a number per owner. */
Test(storage, api_tokens)
{
    ovms_store_req_t req;
    ovms_token_t t;
    char tok[3][65];
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_req_init(&req);
    snprintf(tok[0], 65, "%s", "2702de7206f2dbad8b56522c88c896df5253d6182967d6a90970a09d8aaddd31");
    snprintf(tok[1], 65, "%s", "2702de72aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    snprintf(tok[2], 65, "%s", "ffffffffbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");

    ovms_store_prep_token_put(&req, "alice", tok[0], "app", "p", "auth");
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);                 /* no such owner */
    RUN_OK(st, &req, ovms_store_prep_owner_put(&req, "alice", NULL, NULL, 1, OVMS_STORE_CREATE));
    cr_assert_eq(ovms_store_prep_token_put(&req, "alice", "2702DE72", "a", "p", "auth"), OVMS_EINVAL);
    cr_assert_eq(ovms_store_prep_token_put(&req, "alice", tok[0], "my,app", "p", "auth"), OVMS_EINVAL);
    cr_assert_eq(ovms_store_prep_token_put(&req, "alice", tok[0], "a", "p", "x\ny"), OVMS_EINVAL);
    for (int i = 0; i < 3; i++)
        RUN_OK(st, &req, ovms_store_prep_token_put(&req, "alice", tok[i], "myapp", "testing",
                                                   i ? "auth" : "Auth , SESSION"));
    cr_assert_eq(ovms_store_token_find(st, tok[0], &t), 0);
    cr_assert_str_eq(t.owner_name, "alice");
    cr_assert_str_eq(t.permit, "Auth , SESSION");
    cr_assert_eq(strlen(t.hash), 64);
    tok[0][63] = '0';
    cr_assert_eq(ovms_store_token_find(st, tok[0], &t), OVMS_ENOTFOUND);
    tok[0][63] = '1';

    RUN_OK(st, &req, ovms_store_prep_token_list(&req, "alice"));
    cr_assert_eq(req.rows.nrows, 3);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 0), "2702de72");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 1), "myapp");
    cr_assert_eq(strlen(ovms_store_cell(&req.rows, 0, 4)), 19);

    ovms_store_prep_token_remove(&req, "alice", "2702de72");
    cr_assert_eq(run(st, &req), OVMS_EEXIST);                    /* two tokens start so */
    RUN_OK(st, &req, ovms_store_prep_token_remove(&req, "alice", "ffffffff"));
    cr_assert_eq(req.value, 1);
    cr_assert_eq(ovms_store_token_find(st, tok[2], &t), OVMS_ENOTFOUND);
    RUN_OK(st, &req, ovms_store_prep_token_remove(&req, "alice", tok[1]));
    cr_assert_eq(req.value, 1);
    RUN_OK(st, &req, ovms_store_prep_token_remove(&req, "alice", tok[1]));
    cr_assert_eq(req.value, 0);                                  /* gone already: not an error */
    RUN_OK(st, &req, ovms_store_prep_token_list(&req, "alice"));
    cr_assert_eq(req.rows.nrows, 1);

    /* at most OVMS_TOKENS_PER_OWNER live tokens */
    for (int i = 1; i < OVMS_TOKENS_PER_OWNER; i++) {
        char t2[65];
        snprintf(t2, sizeof t2, "%064x", i);
        RUN_OK(st, &req, ovms_store_prep_token_put(&req, "alice", t2, "a", "p", "auth"));
    }
    ovms_store_prep_token_put(&req, "alice", tok[2], "a", "p", "auth");
    cr_assert_eq(run(st, &req), OVMS_EQUOTA);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);

    /* and after a restart, from the file */
    st = open_store("N1");
    cr_assert_eq(ovms_store_token_find(st, tok[0], &t), 0);
    cr_assert_str_eq(t.permit, "Auth , SESSION");
    ovms_store_close(st);
}

Test(storage, vehicles_and_cache)
{
    ovms_store_req_t req;
    ovms_vehicle_t v;
    char ids[256];
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_req_init(&req);

    /* no owner named: one is created after the vehicle */
    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, "testcar", NULL, "NETPASS", "TR", NULL, OVMS_STORE_CREATE));
    int64_t owner = req.value;
    cr_assert_eq(ovms_store_vehicle_get(st, "TESTCAR", &v), 0);
    cr_assert_str_eq(v.id, "TESTCAR");
    cr_assert_str_eq(v.carpass, "NETPASS");
    cr_assert_str_eq(v.vtype, "TR");
    cr_assert_str_eq(v.v_server, "*");
    cr_assert_eq(v.owner, owner);
    cr_assert_eq(ovms_store_vehicle_get(st, "TestCar", &v), 0);     /* any case */
    ovms_owner_t o;
    cr_assert_eq(ovms_store_owner_get(st, "testcar", &o), 0);

    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, "OTHERCAR", "testcar", "OTHERPW", NULL, NULL, OVMS_STORE_CREATE));
    cr_assert_eq(req.value, owner);
    cr_assert_eq(ovms_store_owner_vehicles(st, owner, ids, sizeof ids), 2);
    cr_assert_str_eq(ids, "OTHERCAR TESTCAR");

    ovms_store_prep_vehicle_put(&req, "TESTCAR", NULL, "X", NULL, NULL, OVMS_STORE_CREATE);
    cr_assert_eq(run(st, &req), OVMS_EEXIST);
    ovms_store_prep_vehicle_put(&req, "NOSUCH", NULL, "X", NULL, NULL, OVMS_STORE_UPDATE);
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);
    ovms_store_prep_vehicle_put(&req, "NEWCAR", "nobody", "X", NULL, NULL, OVMS_STORE_CREATE);
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);
    cr_assert_eq(ovms_store_prep_vehicle_put(&req, "A,B", NULL, "X", NULL, NULL, 0), OVMS_EINVAL);
    cr_assert_eq(ovms_store_prep_vehicle_put(&req, "AB", NULL, "P,W", NULL, NULL, 0), OVMS_EINVAL);
    cr_assert_eq(ovms_store_prep_vehicle_put(&req, "AB", NULL, "PW", NULL, "bad id!", 0), OVMS_EINVAL);

    /* set-password updates the cache at once */
    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, "TESTCAR", NULL, "NEWPASS", NULL, NULL, OVMS_STORE_UPDATE));
    cr_assert_eq(ovms_store_vehicle_get(st, "TESTCAR", &v), 0);
    cr_assert_str_eq(v.carpass, "NEWPASS");
    cr_assert_str_eq(v.vtype, "TR");

    RUN_OK(st, &req, ovms_store_prep_vehicle_list(&req));
    cr_assert_eq(req.rows.nrows, 2);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 0), "OTHERCAR");

    /* removal is a tombstone; the id can come back */
    RUN_OK(st, &req, ovms_store_prep_vehicle_remove(&req, "TESTCAR"));
    cr_assert_eq(ovms_store_vehicle_get(st, "TESTCAR", &v), OVMS_ENOTFOUND);
    ovms_store_prep_vehicle_remove(&req, "TESTCAR");
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);
    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, "TESTCAR", NULL, "AGAIN", NULL, NULL, OVMS_STORE_CREATE));
    cr_assert_eq(ovms_store_vehicle_get(st, "TESTCAR", &v), 0);
    cr_assert_str_eq(v.carpass, "AGAIN");
    cr_assert_eq(ovms_store_vehicle_count(st), 2);

    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
    /* the cache is rebuilt from disk on open */
    st = open_store(NULL);
    cr_assert_eq(ovms_store_vehicle_get(st, "TESTCAR", &v), 0);
    cr_assert_str_eq(v.carpass, "AGAIN");
    ovms_store_close(st);
}

Test(storage, stored_messages_in_replay_order)
{
    ovms_store_req_t req;
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_req_init(&req);
    add_vehicle(st, "CAR", "pw");

    const char *codes = "LDSWFa";
    for (int i = 0; codes[i]; i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "%c-payload,%d", codes[i], i);
        RUN_OK(st, &req, ovms_store_prep_msg_put(&req, "CAR", codes[i], payload, strlen(payload), 0, NULL, 1000 + i));
    }
    /* latest wins */
    RUN_OK(st, &req, ovms_store_prep_msg_put(&req, "CAR", 'S', "S2", 2, 0, NULL, 2000));
    /* paranoid messages under the current token replay; others do not */
    RUN_OK(st, &req, ovms_store_prep_ptoken_set(&req, "CAR", "TOKEN1", 2001));
    RUN_OK(st, &req, ovms_store_prep_msg_put(&req, "CAR", 'X', "b64x", 4, 1, "TOKEN1", 2002));
    RUN_OK(st, &req, ovms_store_prep_msg_put(&req, "CAR", 'Y', "b64y", 4, 1, "TOKEN0", 2003));
    ovms_vehicle_t v;
    ovms_store_vehicle_get(st, "CAR", &v);
    cr_assert_str_eq(v.ptoken, "TOKEN1");

    RUN_OK(st, &req, ovms_store_prep_msg_list(&req, "CAR"));
    const char *want = "FSDLWXa";
    cr_assert_eq(req.rows.nrows, (int)strlen(want));
    for (int i = 0; want[i]; i++)
        cr_assert_eq(ovms_store_cell(&req.rows, i, 0)[0], want[i], "row %d", i);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 1, 1), "S2");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 5, 2), "1");
    cr_assert_eq(req.value, 2003);               /* last update: newest message */

    /* a message up to the line limit is kept whole (decision f) */
    char big[3067];
    memset(big, 'q', sizeof big);
    RUN_OK(st, &req, ovms_store_prep_msg_put(&req, "CAR", 'Q', big, sizeof big, 0, NULL, 3000));
    RUN_OK(st, &req, ovms_store_prep_msg_list(&req, "CAR"));
    int found = 0;
    for (int i = 0; i < req.rows.nrows; i++)
        if (ovms_store_cell(&req.rows, i, 0)[0] == 'Q')
            found = strlen(ovms_store_cell(&req.rows, i, 1)) == sizeof big;
    cr_assert(found);

    /* an unknown vehicle is refused */
    ovms_store_prep_msg_put(&req, "NOSUCH", 'S', "x", 1, 0, NULL, 1);
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);
    ovms_store_prep_msg_list(&req, "NOSUCH");
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

Test(storage, history_summary_records_and_replacement)
{
    ovms_store_req_t req;
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_req_init(&req);
    add_vehicle(st, "CAR", "pw");

    /* 2026-01-01 00:00:00 = 1767225600 */
    const int64_t t0 = 1767225600;
    const char *data[] = { "a,b,c", "d", "e,f" };
    for (int i = 0; i < 3; i++)
        RUN_OK(st, &req, ovms_store_prep_hist_put(&req, "CAR", "*-LOG-Trip", i % 2, t0 + i * 60,
                                                 t0 + 86400, data[i], strlen(data[i])));
    RUN_OK(st, &req, ovms_store_prep_hist_put(&req, "CAR", "RT-PWR-Log", 0, t0, t0 + 86400, "x", 1));
    /* same (vehicle, type, recno, timestamp): replaces */
    RUN_OK(st, &req, ovms_store_prep_hist_put(&req, "CAR", "RT-PWR-Log", 0, t0, t0 + 86400, "yy", 2));

    RUN_OK(st, &req, ovms_store_prep_hist_summary(&req, "CAR", INT64_MIN));
    cr_assert_eq(req.rows.nrows, 2);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 0), "*-LOG-Trip");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 1), "2");   /* distinct recnos */
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 2), "3");   /* records */
    /* size: sum of len(type) + len(data) + len(vehicle) + 20 */
    char size[32];
    snprintf(size, sizeof size, "%d", 3 * (10 + 3 + 20) + 5 + 1 + 3);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 3), size);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 4), "2026-01-01 00:00:00");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 5), "2026-01-01 00:02:00");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 1, 2), "1");

    /* since is strict: only later records */
    RUN_OK(st, &req, ovms_store_prep_hist_summary(&req, "CAR", t0));
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 2), "2");

    RUN_OK(st, &req, ovms_store_prep_hist_records(&req, "CAR", "*-LOG-Trip", -1));
    cr_assert_eq(req.rows.nrows, 3);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 0), "2026-01-01 00:00:00");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 2), "a,b,c");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 2, 1), "0");
    RUN_OK(st, &req, ovms_store_prep_hist_records(&req, "CAR", "*-LOG-Trip", t0 + 60));
    cr_assert_eq(req.rows.nrows, 1);
    RUN_OK(st, &req, ovms_store_prep_hist_records(&req, "CAR", "RT-PWR-Log", -1));
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 2), "yy");
    RUN_OK(st, &req, ovms_store_prep_hist_records(&req, "CAR", "nothing", -1));
    cr_assert_eq(req.rows.nrows, 0);
    RUN_OK(st, &req, ovms_store_prep_hist_list(&req, "CAR", NULL));
    cr_assert_eq(req.rows.nrows, 4);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 3), "2026-01-02 00:00:00");
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

Test(storage, utilisation_days)
{
    ovms_store_req_t req;
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_req_init(&req);
    add_vehicle(st, "CAR", "pw");
    const int64_t day = 1767225600;
    RUN_OK(st, &req, ovms_store_prep_util_add(&req, "CAR", day + 100, 10, 20, 30, 40));
    RUN_OK(st, &req, ovms_store_prep_util_add(&req, "CAR", day + 5000, 1, 2, 3, 4));
    RUN_OK(st, &req, ovms_store_prep_util_add(&req, "CAR", day + 86400 + 5, 7, 0, 0, 0));
    RUN_OK(st, &req, ovms_store_prep_util_list(&req, "CAR"));
    cr_assert_eq(req.rows.nrows, 2);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 0), "2026-01-02");   /* newest first */
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 1), "7");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 1, 0), "2026-01-01");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 1, 1), "11");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 1, 4), "44");
    /* kept as *-OVM-Utilisation records, expiring after 90 days */
    RUN_OK(st, &req, ovms_store_prep_hist_list(&req, "CAR", "*-OVM-Utilisation"));
    cr_assert_eq(req.rows.nrows, 8);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 3), "2026-04-01 00:00:00");
    /* at most 90 days are listed */
    for (int d = 2; d < 100; d++)
        RUN_OK(st, &req, ovms_store_prep_util_add(&req, "CAR", day + d * 86400, 1, 1, 1, 1));
    RUN_OK(st, &req, ovms_store_prep_util_list(&req, "CAR"));
    cr_assert_eq(req.rows.nrows, 90);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

Test(storage, expiry_deletes_only_expired_rows)
{
    ovms_store_req_t req;
    make_path();
    ovms_store_config_t cfg = { .path = path, .node_id = "N1", .expire_batch = 7,
                                .expire_interval_ms = -1 };
    ovms_store_t *st;
    cr_assert_eq(ovms_store_open(&st, &cfg, NULL, 0), 0);
    ovms_store_req_init(&req);
    add_vehicle(st, "CAR", "pw");
    for (int i = 0; i < 100; i++)
        RUN_OK(st, &req, ovms_store_prep_hist_put(&req, "CAR", "T", i, 1000 + i, 5000 + i * 10, "d", 1));
    /* expires < now: rows 0..49 have expires 5000..5490 */
    RUN_OK(st, &req, ovms_store_prep_expire(&req, 5495));
    cr_assert_eq(req.value, 50);
    RUN_OK(st, &req, ovms_store_prep_hist_list(&req, "CAR", "T"));
    cr_assert_eq(req.rows.nrows, 50);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 2), "50");
    RUN_OK(st, &req, ovms_store_prep_expire(&req, 5495));
    cr_assert_eq(req.value, 0);
    ovms_store_stats_t stats;
    ovms_store_get_stats(st, &stats);
    cr_assert_eq(stats.expired, 50);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

/* ---- group commit ----------------------------------------------------------- */

typedef struct visibility {
    pthread_mutex_t mu;
    int done, visible;
    sqlite3 *db;
} visibility_t;

/* Runs on the writer thread when a request completes: the record must be
 * readable by an independent connection at that moment. */
static void check_visible(void *ctx, ovms_store_req_t *req)
{
    visibility_t *v = ctx;
    sqlite3_stmt *s;
    pthread_mutex_lock(&v->mu);
    sqlite3_prepare_v2(v->db, "SELECT count(*) FROM history WHERE recno = ?1", -1, &s, NULL);
    sqlite3_bind_int64(s, 1, req->i[0]);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1 && req->status == 0)
        v->visible++;
    sqlite3_finalize(s);
    v->done++;
    pthread_mutex_unlock(&v->mu);
}

Test(storage, completion_only_after_commit)
{
    enum { N = 2000 };
    static ovms_store_req_t reqs[N];
    visibility_t vis = { PTHREAD_MUTEX_INITIALIZER, 0, 0, NULL };
    ovms_store_sink_t sink = { check_visible, &vis };
    make_path();
    ovms_store_t *st = open_store("N1");
    add_vehicle(st, "CAR", "pw");
    sqlite3_open(path, &vis.db);
    for (int i = 0; i < N; i++) {
        ovms_store_req_init(&reqs[i]);
        ovms_store_prep_hist_put(&reqs[i], "CAR", "T", i, 1000, 99999999999, "x", 1);
        cr_assert_eq(ovms_store_submit(st, &reqs[i], &sink, NULL), 0);
    }
    for (int tries = 0; tries < 1000; tries++) {
        pthread_mutex_lock(&vis.mu);
        int done = vis.done;
        pthread_mutex_unlock(&vis.mu);
        if (done == N)
            break;
        usleep(10000);
    }
    cr_assert_eq(vis.done, N);
    cr_assert_eq(vis.visible, N, "%d of %d completions came before their commit was visible",
                 N - vis.visible, N);
    ovms_store_stats_t stats;
    ovms_store_get_stats(st, &stats);
    cr_assert_lt(stats.commits, (uint64_t)N, "requests were grouped: %llu commits",
                 (unsigned long long)stats.commits);
    cr_assert_gt(stats.max_batch, 1);
    sqlite3_close(vis.db);
    for (int i = 0; i < N; i++)
        ovms_store_req_cleanup(&reqs[i]);
    ovms_store_close(st);
}

typedef struct writer_arg {
    ovms_store_t *st;
    int first, count;
} writer_arg_t;

static void *history_writer(void *p)
{
    writer_arg_t *a = p;
    ovms_store_req_t *reqs = calloc((size_t)a->count, sizeof *reqs);
    int failures = 0;
    /* submit all, then wait for each: a pipelined writer */
    for (int i = 0; i < a->count; i++) {
        ovms_store_prep_hist_put(&reqs[i], "CAR", "*-LOG-Many", a->first + i, 1000, 99999999999, "data,with,commas", 16);
    }
    for (int i = 0; i < a->count; i++)
        failures += ovms_store_run(a->st, &reqs[i]) != 0;
    for (int i = 0; i < a->count; i++)
        ovms_store_req_cleanup(&reqs[i]);
    free(reqs);
    return (void *)(intptr_t)failures;
}

Test(storage, ten_thousand_records_from_several_threads)
{
    enum { THREADS = 8, PER = 1250 };
    pthread_t t[THREADS];
    writer_arg_t args[THREADS];
    ovms_store_req_t req;
    make_path();
    ovms_store_t *st = open_store("N1");
    add_vehicle(st, "CAR", "pw");
    for (int i = 0; i < THREADS; i++) {
        args[i] = (writer_arg_t){ st, i * PER, PER };
        pthread_create(&t[i], NULL, history_writer, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        void *failures;
        pthread_join(t[i], &failures);
        cr_assert_eq((intptr_t)failures, 0);
    }
    ovms_store_req_init(&req);
    RUN_OK(st, &req, ovms_store_prep_hist_summary(&req, "CAR", INT64_MIN));
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 1), "10000");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 2), "10000");
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

/* ---- bad files and other processes -------------------------------------------------- */

Test(storage, corrupt_file_is_a_clear_error)
{
    make_path();
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 200; i++)
        fputs("this is not a database, just text that happens to be here\n", f);
    fclose(f);
    ovms_store_config_t cfg = { .path = path };
    ovms_store_t *st;
    char err[256];
    cr_assert_eq(ovms_store_open(&st, &cfg, err, sizeof err), OVMS_ECORRUPT);
    cr_assert_null(st);
    cr_assert(strstr(err, "not a usable SQLite database"), "%s", err);

    /* a database whose pages were damaged after creation */
    make_path();
    st = open_store("N1");
    add_vehicle(st, "CAR", "pw");
    ovms_store_close(st);
    f = fopen(path, "r+");
    fseek(f, 0, SEEK_SET);
    fputs("garbage header garbage", f);
    fclose(f);
    cr_assert_eq(ovms_store_open(&st, &cfg, err, sizeof err), OVMS_ECORRUPT, "%s", err);
}

Test(storage, missing_folder_is_a_clear_error)
{
    ovms_store_config_t cfg = { .path = "/nonexistent-folder/sub/node.db" };
    ovms_store_t *st;
    char err[256];
    int rc = ovms_store_open(&st, &cfg, err, sizeof err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err, "cannot open database"), "%s", err);
}

/* Read-only checks must not run as root (root ignores permissions). */
static void become_nobody(void)
{
    if (getuid() == 0) {
        cr_assert_eq(setgid(65534), 0);
        cr_assert_eq(setuid(65534), 0);
    }
}

Test(storage, read_only_file_is_a_clear_error)
{
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_close(st);
    chmod(dir, 0755);
    chmod(path, 0444);
    unlink(strcat(strcpy((char[400]){ 0 }, path), "-wal"));
    unlink(strcat(strcpy((char[400]){ 0 }, path), "-shm"));
    become_nobody();
    ovms_store_config_t cfg = { .path = path };
    char err[256];
    int rc = ovms_store_open(&st, &cfg, err, sizeof err);
    cr_assert(rc == OVMS_EREADONLY || rc == OVMS_EIO, "%s (%s)", ovms_strerror(rc), err);
    cr_assert_null(st);
    cr_assert(strstr(err, "read-only") || strstr(err, "cannot"), "%s", err);
}

Test(storage, changes_by_another_process_reach_the_cache)
{
    make_path();
    ovms_store_t *server = open_store("N1");
    ovms_vehicle_t v;
    cr_assert_eq(ovms_store_vehicle_get(server, "LATE", &v), OVMS_ENOTFOUND);
    /* ovms-admin: another process writing the same file */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --db %s vehicle add LATE --password pw >/dev/null", OVMS_ADMIN_BIN, path);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ovms-admin failed");
    int found = 0;
    for (int i = 0; i < 200 && !found; i++) {
        found = ovms_store_vehicle_get(server, "LATE", &v) == 0;
        usleep(10000);
    }
    cr_assert(found, "the server's cache never saw the vehicle another process added");
    ovms_store_close(server);
}

/* ---- push, provisioning, replication feed ------------------------------------- */

Test(storage, push_subscriptions_and_provisioning)
{
    ovms_store_req_t req;
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_req_init(&req);
    add_vehicle(st, "CAR", "pw");
    ovms_vehicle_t v;
    ovms_store_vehicle_get(st, "CAR", &v);
    RUN_OK(st, &req, ovms_store_prep_pushsub_put(&req, v.owner, "CAR", "app1", "mail", "", "a@example.org"));
    RUN_OK(st, &req, ovms_store_prep_pushsub_put(&req, v.owner, "CAR", "app1", "mail", "", "b@example.org"));
    RUN_OK(st, &req, ovms_store_prep_pushsub_put(&req, v.owner, "CAR", "app2", "expo", "simple", "tok"));
    RUN_OK(st, &req, ovms_store_prep_pushsub_list(&req, "CAR"));
    cr_assert_eq(req.rows.nrows, 2);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 4), "b@example.org");

    RUN_OK(st, &req, ovms_store_prep_prov_put(&req, "VIN1", "CAR", "tok", "dig", "rec"));
    ovms_store_prep_prov_get(&req, "VIN1");
    cr_assert_eq(run(st, &req), 0);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 4), "rec");
    ovms_store_prep_prov_get(&req, "VIN2");
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);
    RUN_OK(st, &req, ovms_store_prep_prov_list(&req));
    cr_assert_eq(req.rows.nrows, 1);
    RUN_OK(st, &req, ovms_store_prep_prov_remove(&req, "VIN1"));
    ovms_store_prep_prov_remove(&req, "VIN1");
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

Test(storage, changes_since_a_watermark)
{
    ovms_store_req_t req;
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_req_init(&req);
    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, "TESTCAR", NULL, "NETPASS", NULL, NULL, OVMS_STORE_CREATE));
    RUN_OK(st, &req, ovms_store_prep_msg_put(&req, "TESTCAR", 'S', "80.0,K,0", 8, 0, NULL, 1767323046));
    RUN_OK(st, &req, ovms_store_prep_hist_put(&req, "TESTCAR", "*-LOG-Trip", 1, 1767323047, 1767409447, "a,b", 3));
    RUN_OK(st, &req, ovms_store_prep_ptoken_set(&req, "TESTCAR", "Tok", 1767323048));

    RUN_OK(st, &req, ovms_store_prep_changes(&req, "N1", 0, 100));
    cr_assert_eq(req.rows.nrows, 5);    /* owner, vehicle, message, history, token */
    /* a new database's counter starts at the time in microseconds */
    long long s0 = atoll(ovms_store_cell(&req.rows, 0, 0));
    cr_assert(s0 > 1700000000000000ll, "%lld", s0);
    char want[256], owner[32];
    snprintf(owner, sizeof owner, "%lld", (long long)atoll(ovms_store_cell(&req.rows, 0, 1) + 2));
    snprintf(want, sizeof want, "RO%s,testcar,,,1,0,", owner);
    cr_assert(strncmp(ovms_store_cell(&req.rows, 0, 1), want, strlen(want)) == 0,
              "%s", ovms_store_cell(&req.rows, 0, 1));
    snprintf(want, sizeof want, "RVTESTCAR,%s,NETPASS,*,0,", owner);
    cr_assert(strncmp(ovms_store_cell(&req.rows, 1, 1), want, strlen(want)) == 0,
              "%s", ovms_store_cell(&req.rows, 1, 1));
    snprintf(want, sizeof want, "rN1,%lld,2026-01-02 03:04:06,TESTCAR,S,0,,80.0,K,0", s0 + 2);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 2, 1), want);
    snprintf(want, sizeof want,
             "rN1,%lld,2026-01-02 03:04:07,TESTCAR,H,*-LOG-Trip,1,2026-01-03 03:04:07,a,b", s0 + 3);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 3, 1), want);
    snprintf(want, sizeof want, "rN1,%lld,2026-01-02 03:04:08,TESTCAR,E,Tok", s0 + 4);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 4, 1), want);
    /* each record parses back with proto */
    for (int i = 0; i < req.rows.nrows; i++) {
        const char *rec = ovms_store_cell(&req.rows, i, 1);
        ovms_str_t p = { rec + 1, strlen(rec) - 1 };
        ovms_repl_t r;
        ovms_replmsg_t m;
        int rc = rec[0] == 'R' ? ovms_repl_parse(p, &r) : ovms_replmsg_parse(p, &m);
        cr_assert_eq(rc, 0, "%s", rec);
    }
    /* a newer version replaces the old one in the feed (compaction) */
    RUN_OK(st, &req, ovms_store_prep_msg_put(&req, "TESTCAR", 'S', "79.0,K,0", 8, 0, NULL, 1767323050));
    RUN_OK(st, &req, ovms_store_prep_changes(&req, "N1", s0 + 1, 100));
    cr_assert_eq(req.rows.nrows, 3);
    cr_assert_eq(atoll(ovms_store_cell(&req.rows, 2, 0)), s0 + 5);
    RUN_OK(st, &req, ovms_store_prep_changes(&req, "N1", 0, 2));
    cr_assert_eq(req.rows.nrows, 2);
    RUN_OK(st, &req, ovms_store_prep_changes(&req, "OTHER", 0, 100));
    cr_assert_eq(req.rows.nrows, 0);
    /* all origins at once, after cursors: the last row says how far N1 goes */
    snprintf(want, sizeof want, "N1:%lld", s0 + 3);
    RUN_OK(st, &req, ovms_store_prep_changes_after(&req, want, 100));
    cr_assert_eq(req.rows.nrows, 3);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 2, 2), "");
    cr_assert_eq(atoll(ovms_store_cell(&req.rows, 2, 1)), s0 + 5);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);

    /* the counter survives a restart */
    st = open_store(NULL);
    ovms_store_req_init(&req);
    RUN_OK(st, &req, ovms_store_prep_msg_put(&req, "TESTCAR", 'D', "1", 1, 0, NULL, 1767323060));
    RUN_OK(st, &req, ovms_store_prep_changes(&req, "N1", s0 + 5, 100));
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert_eq(atoll(ovms_store_cell(&req.rows, 0, 0)), s0 + 6);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

Test(storage, closed_store_refuses)
{
    make_path();
    ovms_store_config_t cfg = { .path = path, .readonly = 0 };
    ovms_store_t *st;
    cr_assert_eq(ovms_store_open(&st, &cfg, NULL, 0), 0);
    ovms_store_close(st);
    /* read-only mode: reads work, writes are refused */
    cfg.readonly = 1;
    cr_assert_eq(ovms_store_open(&st, &cfg, NULL, 0), 0);
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    ovms_store_prep_vehicle_list(&req);
    cr_assert_eq(ovms_store_run(st, &req), 0);
    ovms_store_prep_owner_put(&req, "x", NULL, NULL, 1, 0);
    cr_assert_eq(ovms_store_run(st, &req), OVMS_EREADONLY);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

/* ---- vehicles removed and changed ------------------------------------------------- */

typedef struct changes_seen {
    pthread_mutex_t mu;
    char ids[16][33];
    int n;
} changes_seen_t;

static void note_change(void *ctx, const char *id)
{
    changes_seen_t *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (c->n < 16)
        snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", id);
    pthread_mutex_unlock(&c->mu);
}

static int seen(changes_seen_t *c, const char *id)
{
    int found = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++)
        found |= !strcmp(c->ids[i], id);
    c->n = 0;
    pthread_mutex_unlock(&c->mu);
    return found;
}

static int64_t count_rows(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int64_t n = -1;
    sqlite3_open(path, &db);
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* A removed vehicle's data goes with it, and writes made for the old
 * vehicle (still in flight when it was removed and added again) are
 * refused instead of landing in the new one. */
Test(storage, removal_takes_the_data_and_old_writes_are_refused)
{
    ovms_store_req_t req;
    ovms_vehicle_t v;
    changes_seen_t changes = { .mu = PTHREAD_MUTEX_INITIALIZER };
    make_path();
    ovms_store_config_t cfg = { .path = path, .node_id = "N1", .poll_ms = 50,
                                .vehicle_changed = note_change, .ctx = &changes };
    ovms_store_t *st;
    cr_assert_eq(ovms_store_open(&st, &cfg, NULL, 0), 0);
    ovms_store_req_init(&req);
    add_vehicle(st, "CAR", "PW");
    cr_assert_eq(ovms_store_vehicle_get(st, "CAR", &v), 0);
    int64_t first = v.created;
    RUN_OK(st, &req, ovms_store_prep_msg_put(&req, "CAR", 'S', "80,K", 4, 0, "", 100));
    RUN_OK(st, &req, ovms_store_prep_ptoken_set(&req, "CAR", "tok", 100));
    RUN_OK(st, &req, ovms_store_prep_hist_put(&req, "CAR", "*-LOG-Trip", 1, 100, 1L << 40, "x", 1));
    RUN_OK(st, &req, ovms_store_prep_pushsub_put(&req, v.owner, "CAR", "app", "mail", "", "a@b"));
    RUN_OK(st, &req, ovms_store_prep_prov_put(&req, "VIN1", "CAR", "t", "d", "r"));
    cr_assert_not(seen(&changes, "CAR"), "adding a vehicle is no change of identity");

    RUN_OK(st, &req, ovms_store_prep_vehicle_remove(&req, "CAR"));
    cr_assert_eq(req.value, 4, "data rows removed: %lld", (long long)req.value);
    cr_assert(seen(&changes, "CAR"), "removal not reported");
    cr_assert_eq(count_rows("SELECT count(*) FROM messages"), 0);
    cr_assert_eq(count_rows("SELECT count(*) FROM history"), 0);
    cr_assert_eq(count_rows("SELECT count(*) FROM pushsubs"), 0);
    cr_assert_eq(count_rows("SELECT count(*) FROM provisioning"), 0);
    cr_assert_eq(count_rows("SELECT count(*) FROM vehicles WHERE deleted = 1"), 1, "no tombstone");

    /* a write for the removed vehicle is refused */
    ovms_store_prep_msg_put(&req, "CAR", 'D', "1", 1, 0, "", 101);
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);

    /* added again (in the same second): a new incarnation */
    add_vehicle(st, "CAR", "NEWPW");
    cr_assert_eq(ovms_store_vehicle_get(st, "CAR", &v), 0);
    cr_assert_gt(v.created, first, "the new vehicle is not a new incarnation");
    cr_assert_str_eq(v.ptoken, "");
    ovms_store_prep_msg_put(&req, "CAR", 'S', "old car", 7, 0, "", 102);
    ovms_store_req_incarnation(&req, first);
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND, "a write of the old incarnation landed");
    ovms_store_prep_hist_put(&req, "CAR", "*-LOG-Trip", 2, 102, 1L << 40, "old", 3);
    ovms_store_req_incarnation(&req, first);
    cr_assert_eq(run(st, &req), OVMS_ENOTFOUND);
    ovms_store_prep_msg_put(&req, "CAR", 'S', "new car", 7, 0, "", 103);
    ovms_store_req_incarnation(&req, v.created);
    cr_assert_eq(run(st, &req), 0);
    RUN_OK(st, &req, ovms_store_prep_msg_list(&req, "CAR"));
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 1), "new car");

    /* identity changes are reported; other changes are not */
    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, "CAR", NULL, NULL, "TR", NULL, OVMS_STORE_UPDATE));
    cr_assert_not(seen(&changes, "CAR"), "a type change is not a change of identity");
    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, "CAR", NULL, "PW3", NULL, NULL, OVMS_STORE_UPDATE));
    cr_assert(seen(&changes, "CAR"), "password change not reported");
    RUN_OK(st, &req, ovms_store_prep_vehicle_put(&req, "CAR", NULL, NULL, NULL, "N2", OVMS_STORE_UPDATE));
    cr_assert(seen(&changes, "CAR"), "scope change not reported");
    ovms_store_req_cleanup(&req);

    /* ... also when another process makes them */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s --db %s vehicle remove CAR >/dev/null", OVMS_ADMIN_BIN, path);
    cr_assert_eq(system(cmd), 0);
    int reported = 0;
    for (int i = 0; i < 100 && !reported; i++) {
        usleep(20000);
        reported = seen(&changes, "CAR");
    }
    cr_assert(reported, "a removal by another process was not reported");
    ovms_store_close(st);
}

/* Per-vehicle limits: new records and subscriptions only below the limit,
 * replacements always; a stored message can also be kept as history. */
Test(storage, per_vehicle_limits_and_message_history)
{
    ovms_store_req_t req;
    ovms_vehicle_t v;
    make_path();
    ovms_store_t *st = open_store("N1");
    ovms_store_req_init(&req);
    add_vehicle(st, "CAR", "PW");
    add_vehicle(st, "CAR2", "PW");
    cr_assert_eq(ovms_store_vehicle_get(st, "CAR", &v), 0);
    for (int i = 0; i < 5; i++) {
        ovms_store_prep_hist_put(&req, "CAR", "*-LOG-T", i, 1000 + i, 1L << 40, "r", 1);
        ovms_store_req_limit(&req, 3);
        cr_assert_eq(run(st, &req), i < 3 ? 0 : OVMS_EQUOTA, "record %d", i);
    }
    ovms_store_prep_hist_put(&req, "CAR", "*-LOG-T", 1, 1001, 1L << 40, "replaced", 8);
    ovms_store_req_limit(&req, 3);
    cr_assert_eq(run(st, &req), 0, "a replacement counts against the limit");
    ovms_store_prep_hist_put(&req, "CAR2", "*-LOG-T", 9, 1000, 1L << 40, "r", 1);
    ovms_store_req_limit(&req, 3);
    cr_assert_eq(run(st, &req), 0, "another vehicle's records count against this one's limit");
    /* expiry frees room: the count follows deletions */
    RUN_OK(st, &req, ovms_store_prep_hist_put(&req, "CAR", "*-LOG-Old", 0, 1, 2, "gone", 4));
    RUN_OK(st, &req, ovms_store_prep_expire(&req, 100));
    ovms_store_prep_hist_put(&req, "CAR", "*-LOG-T", 7, 1007, 1L << 40, "r", 1);
    ovms_store_req_limit(&req, 3);
    cr_assert_eq(run(st, &req), OVMS_EQUOTA);
    cr_assert_eq(count_rows("SELECT n FROM history_count WHERE vehicleid = 'CAR'"), 3);

    /* a stored message with its historical record (left out, not failed, when full) */
    ovms_store_prep_msg_put(&req, "CAR2", 'S', "80,K", 4, 0, "", 2000);
    ovms_store_req_msg_history(&req, 1L << 40);
    cr_assert_eq(run(st, &req), 0);
    RUN_OK(st, &req, ovms_store_prep_hist_records(&req, "CAR2", "S", -1));
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 1), "0");
    cr_assert_str_eq(ovms_store_cell(&req.rows, 0, 2), "80,K");
    ovms_store_prep_msg_put(&req, "CAR", 'S', "70,K", 4, 0, "", 2001);
    ovms_store_req_msg_history(&req, 1L << 40);
    ovms_store_req_limit(&req, 3);
    cr_assert_eq(run(st, &req), 0, "a full history failed the stored message");
    RUN_OK(st, &req, ovms_store_prep_msg_list(&req, "CAR"));
    cr_assert_eq(req.rows.nrows, 1);

    /* push subscriptions */
    for (int i = 0; i < 4; i++) {
        char app[16];
        snprintf(app, sizeof app, "app%d", i);
        ovms_store_prep_pushsub_put(&req, v.owner, "CAR", app, "mail", "", "a@b");
        ovms_store_req_limit(&req, 2);
        cr_assert_eq(run(st, &req), i < 2 ? 0 : OVMS_EQUOTA, "subscription %d", i);
    }
    ovms_store_prep_pushsub_put(&req, v.owner, "CAR", "app1", "mail", "", "new@b");
    ovms_store_req_limit(&req, 2);
    cr_assert_eq(run(st, &req), 0, "replacing a subscription was refused");
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

/* ---- lazy writes -------------------------------------------------------------------------- */

typedef struct lazy_seen {
    pthread_mutex_t mu;
    int n;
    int order[8];
    double at[8];
} lazy_seen_t;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lazy_done(void *ctx, ovms_store_req_t *req)
{
    lazy_seen_t *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->order[s->n] = (int)(intptr_t)req->data;
    s->at[s->n] = mono_s();
    s->n++;
    pthread_mutex_unlock(&s->mu);
}

static int lazy_count(lazy_seen_t *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void wait_count(lazy_seen_t *s, int n)
{
    for (int i = 0; i < 500 && lazy_count(s) < n; i++)
        usleep(10000);
    cr_assert_eq(lazy_count(s), n);
}

/* A store with one vehicle, CAR, and one lazy stored message for it submitted. */
static ovms_store_t *submit_one_lazy(ovms_store_req_t *req, const char *payload, int max_ms,
                                     const ovms_store_sink_t *sink)
{
    make_path();
    ovms_store_t *st = open_store("N1");
    add_vehicle(st, "CAR", "pw");
    ovms_store_req_init(req);
    cr_assert_eq(ovms_store_prep_msg_put(req, "CAR", 'S', payload, strlen(payload), 0, "", 1000), 0);
    ovms_store_req_lazy(req, max_ms);
    cr_assert_eq(ovms_store_submit(st, req, sink, NULL), 0);
    return st;
}

Test(storage, a_lazy_write_waits_for_its_deadline_and_no_longer)
{
    static ovms_store_req_t req;
    lazy_seen_t seen = { PTHREAD_MUTEX_INITIALIZER, 0, { 0 }, { 0 } };
    ovms_store_sink_t sink = { lazy_done, &seen };
    double t0 = mono_s();
    ovms_store_t *st = submit_one_lazy(&req, "80,K", 300, &sink);
    usleep(150 * 1000);
    cr_assert_eq(lazy_count(&seen), 0, "a lazy write alone went before its deadline");
    wait_count(&seen, 1);
    double waited = seen.at[0] - t0;
    cr_assert(waited >= 0.29 && waited < 2.0, "waited %.3f s for a 300 ms window", waited);
    cr_assert_eq(req.status, 0);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}

Test(storage, an_urgent_write_takes_the_lazy_ones_along_in_order)
{
    static ovms_store_req_t reqs[4];
    lazy_seen_t seen = { PTHREAD_MUTEX_INITIALIZER, 0, { 0 }, { 0 } };
    ovms_store_sink_t sink = { lazy_done, &seen };
    make_path();
    ovms_store_t *st = open_store("N1");
    add_vehicle(st, "CAR", "pw");
    for (int i = 0; i < 3; i++) {
        char payload[16];
        int len = snprintf(payload, sizeof payload, "%d,K", 10 * i);
        ovms_store_req_init(&reqs[i]);
        cr_assert_eq(ovms_store_prep_msg_put(&reqs[i], "CAR", 'S', payload, (size_t)len, 0, "", 1000 + i), 0);
        ovms_store_req_lazy(&reqs[i], 60000);       /* a minute: only company can make them go */
        reqs[i].data = (void *)(intptr_t)i;
        cr_assert_eq(ovms_store_submit(st, &reqs[i], &sink, NULL), 0);
    }
    usleep(100 * 1000);
    cr_assert_eq(lazy_count(&seen), 0);
    ovms_store_req_init(&reqs[3]);
    cr_assert_eq(ovms_store_prep_hist_put(&reqs[3], "CAR", "T", 1, 1000, 99999999999, "x", 1), 0);
    reqs[3].data = (void *)(intptr_t)3;
    cr_assert_eq(ovms_store_submit(st, &reqs[3], &sink, NULL), 0);
    wait_count(&seen, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(seen.order[i], i, "completion %d was request %d", i, seen.order[i]);
    /* the newest of the three is what is stored */
    ovms_store_req_t rd;
    ovms_store_req_init(&rd);
    RUN_OK(st, &rd, ovms_store_prep_msg_list(&rd, "CAR"));
    cr_assert_eq(rd.rows.nrows, 1);
    ovms_store_req_cleanup(&rd);
    for (int i = 0; i < 4; i++)
        ovms_store_req_cleanup(&reqs[i]);
    ovms_store_close(st);
}

Test(storage, closing_writes_the_lazy_ones)
{
    static ovms_store_req_t req;
    lazy_seen_t seen = { PTHREAD_MUTEX_INITIALIZER, 0, { 0 }, { 0 } };
    ovms_store_sink_t sink = { lazy_done, &seen };
    ovms_store_t *st = submit_one_lazy(&req, "55,K", 60000, &sink);
    double t0 = mono_s();
    ovms_store_close(st);
    cr_assert_eq(lazy_count(&seen), 1, "closing left a lazy write unwritten");
    cr_assert_lt(mono_s() - t0, 5.0);
    cr_assert_eq(req.status, 0);
    ovms_store_req_cleanup(&req);
    sqlite3 *db;
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM messages", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(q, 0), 1);
    sqlite3_finalize(q);
    sqlite3_close(db);
}
