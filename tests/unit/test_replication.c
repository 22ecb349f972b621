/*
 * test_replication.c -- the merge of replicated records (storage/apply.c)
 * and the records themselves (proto/msg_repl.c): whatever the order in
 * which the records of three origins arrive, and however often, the state
 * they make is the same; the watermark and forwarding rules; the stamp of
 * a change made after seeing a version from a clock that runs ahead.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ovms_store.h"

static char dir[64];

static ovms_store_t *open_named(const char *name, const char *node)
{
    char path[128], err[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/ovms-repl-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
    }
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    ovms_store_config_t cfg = { .path = path, .node_id = node, .expire_interval_ms = -1 };
    ovms_store_t *st;
    cr_assert_eq(ovms_store_open(&st, &cfg, err, sizeof err), 0, "%s", err);
    return st;
}

static void run_ok(ovms_store_t *st, ovms_store_req_t *req, int prep)
{
    cr_assert_eq(prep, 0);
    int rc = ovms_store_run(st, req);
    cr_assert_eq(rc, 0, "%s", ovms_strerror(rc));
}

/* One origin's records, in seq order. */
typedef struct feed {
    char **rec;
    int n;
} feed_t;

static void read_feed(ovms_store_t *st, const char *origin, feed_t *f)
{
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    run_ok(st, &req, ovms_store_prep_changes(&req, origin, 0, 100000));
    f->n = req.rows.nrows;
    f->rec = calloc((size_t)f->n, sizeof *f->rec);
    for (int i = 0; i < f->n; i++)
        f->rec[i] = strdup(ovms_store_cell(&req.rows, i, 1));
    ovms_store_req_cleanup(&req);
}

static void digest(ovms_store_t *st, char *out, size_t cap)
{
    ovms_store_req_t req;
    size_t at = 0;
    ovms_store_req_init(&req);
    run_ok(st, &req, ovms_store_prep_digest(&req));
    for (int i = 0; i < req.rows.nrows; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s %s %s\n", ovms_store_cell(&req.rows, i, 0),
                               ovms_store_cell(&req.rows, i, 1), ovms_store_cell(&req.rows, i, 2));
    ovms_store_req_cleanup(&req);
}

static int64_t apply(ovms_store_t *st, const char *lines)
{
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    run_ok(st, &req, ovms_store_prep_apply(&req, lines, strlen(lines)));
    int64_t n = req.value;
    ovms_store_req_cleanup(&req);
    return n;
}

#define W(st, prep) do { ovms_store_req_t r_; ovms_store_req_init(&r_); run_ok(st, &r_, prep); \
                         ovms_store_req_cleanup(&r_); } while (0)
#define REQ (&r_)

/* Three nodes change the same things apart: one vehicle id made on all
 * three, one owner name on two, messages of the same code at the same
 * second, the same history key, a removal, a paranoid token. */
static void make_history(feed_t feeds[3])
{
    ovms_store_t *a = open_named("A", "A"), *b = open_named("B", "B"), *c = open_named("C", "C");
    int64_t t = (int64_t)time(NULL) - 60;
    ovms_store_t *all[3] = { a, b, c };
    const char *names[3] = { "A", "B", "C" };

    W(a, ovms_store_prep_owner_put(REQ, "alice", "a@example.org", "", 1, 0));
    W(a, ovms_store_prep_vehicle_put(REQ, "CAR1", "alice", "passwordA", NULL, NULL, 0));
    W(a, ovms_store_prep_msg_put(REQ, "CAR1", 'S', "80,K", 4, 0, NULL, t));
    W(a, ovms_store_prep_hist_put(REQ, "CAR1", "*-LOG-Trip", 1, t - 100, t + 86400, "a", 1));
    W(a, ovms_store_prep_ptoken_set(REQ, "CAR1", "TOKENA", t + 1));
    W(a, ovms_store_prep_msg_put(REQ, "CAR1", 'D', "paranoid-a", 10, 1, "TOKENA", t + 2));
    W(a, ovms_store_prep_util_add(REQ, "CAR1", t, 1, 2, 3, 4));

    W(b, ovms_store_prep_owner_put(REQ, "alice", "b@example.org", "", 1, 0));
    W(b, ovms_store_prep_vehicle_put(REQ, "CAR1", "alice", "passwordB", NULL, NULL, 0));
    W(b, ovms_store_prep_msg_put(REQ, "CAR1", 'S', "70,K", 4, 0, NULL, t));
    W(b, ovms_store_prep_hist_put(REQ, "CAR1", "*-LOG-Trip", 1, t - 100, t + 86400, "b", 1));
    W(b, ovms_store_prep_vehicle_put(REQ, "CAR2", NULL, "password2", NULL, NULL, 0));
    W(b, ovms_store_prep_msg_put(REQ, "CAR2", 'L', "51,0", 4, 0, NULL, t + 5));
    W(b, ovms_store_prep_vehicle_remove(REQ, "CAR2"));
    W(b, ovms_store_prep_util_add(REQ, "CAR1", t, 10, 20, 30, 40));

    sleep(1);                       /* C's CAR1 is another incarnation, made later */
    W(c, ovms_store_prep_vehicle_put(REQ, "CAR1", NULL, "passwordC", NULL, NULL, 0));
    W(c, ovms_store_prep_msg_put(REQ, "CAR1", 'L', "52,1", 4, 0, NULL, t + 10));
    W(c, ovms_store_prep_vehicle_put(REQ, "CAR3", NULL, "password3", NULL, "C", 0));
    W(c, ovms_store_prep_hist_put(REQ, "CAR3", "*-LOG-Trip", 7, t - 100, t + 86400, "c", 1));
    W(c, ovms_store_prep_owner_put(REQ, "carol", "", "", 1, 0));
    W(c, ovms_store_prep_vehicle_put(REQ, "CAR3", "carol", NULL, NULL, NULL, OVMS_STORE_UPDATE));
    W(c, ovms_store_prep_vehicle_put(REQ, "CAR2", NULL, "password2c", NULL, NULL, 0));

    for (int i = 0; i < 3; i++) {
        read_feed(all[i], names[i], &feeds[i]);
        cr_assert_gt(feeds[i].n, 3);
        ovms_store_close(all[i]);
    }
}

static uint32_t rng = 12345;
static uint32_t rnd(uint32_t n)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) % n;
}

/* Deliver the feeds in a random interleaving that keeps each origin's
 * order (links are FIFO), with random repeats of earlier records (a ring,
 * a reconnect), in random batch sizes. */
static void deliver_shuffled(ovms_store_t *st, feed_t feeds[3])
{
    int next[3] = { 0 };
    char batch[65536];
    size_t len = 0;
    int in_batch = 0, limit = 1 + (int)rnd(6);

    for (;;) {
        int left = 0;
        for (int i = 0; i < 3; i++)
            left += feeds[i].n - next[i];
        if (!left)
            break;
        int o;
        do
            o = (int)rnd(3);
        while (next[o] == feeds[o].n);
        const char *rec = feeds[o].rec[next[o]];
        if (next[o] > 0 && rnd(5) == 0)
            rec = feeds[o].rec[rnd((uint32_t)next[o])];     /* an old copy again */
        else
            next[o]++;
        len += (size_t)snprintf(batch + len, sizeof batch - len, "%s\n", rec);
        if (++in_batch >= limit) {
            apply(st, batch);
            len = 0;
            in_batch = 0;
            limit = 1 + (int)rnd(6);
        }
    }
    if (len)
        apply(st, batch);
}

Test(replication, the_merge_does_not_depend_on_order_or_repeats, .timeout = 120)
{
    feed_t feeds[3];
    char first[1024], other[1024];
    make_history(feeds);

    for (int trial = 0; trial < 25; trial++) {
        char name[16];
        snprintf(name, sizeof name, "X%d", trial);
        ovms_store_t *x = open_named(name, "X");
        deliver_shuffled(x, feeds);
        digest(x, trial ? other : first, sizeof first);
        if (trial)
            cr_assert_str_eq(other, first, "trial %d differs:\n%s\nvs\n%s", trial, other, first);
        if (!trial) {
            /* the state is what last-writer-wins says */
            ovms_vehicle_t v;
            cr_assert_eq(ovms_store_vehicle_get(x, "CAR1", &v), 0);
            cr_assert_str_eq(v.carpass, "passwordC");       /* C's creation came last */
            cr_assert_eq(ovms_store_vehicle_get(x, "CAR2", &v), 0);
            cr_assert_str_eq(v.carpass, "password2c");
            ovms_owner_t o;
            cr_assert_eq(ovms_store_owner_get(x, "alice", &o), 0);
            cr_assert_eq(ovms_store_owner_get(x, "carol", &o), 0);
        }
        ovms_store_close(x);
    }
    /* alice (one owner from two nodes), car1, car2 (from two), car3, carol */
    cr_assert(strstr(first, "owners 5 "), "%s", first);
}

Test(replication, watermarks_make_each_record_count_once_and_forwarding_skips_the_source)
{
    feed_t feeds[3];
    char text[65536];
    size_t len = 0;
    make_history(feeds);
    ovms_store_t *x = open_named("W", "X");
    for (int i = 0; i < feeds[0].n; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s\n", feeds[0].rec[i]);
    cr_assert_eq(apply(x, text), feeds[0].n);
    cr_assert_eq(apply(x, text), 0, "a second copy had an effect");

    ovms_store_wm_t wm[8];
    int n = ovms_store_watermarks(x, wm, 8);
    int64_t a_mark = 0;
    cr_assert(n > 0 && n <= 8);
    for (int i = 0; i < n && i < 8; i++)
        if (!strcmp(wm[i].origin, "A"))
            a_mark = wm[i].seq;
    char want[64];
    snprintf(want, sizeof want, "rA,%lld,", (long long)a_mark);
    cr_assert(a_mark > 0 && strstr(text, want), "A's watermark %lld is not its last record", (long long)a_mark);

    /* what X sends a peer: nothing of A to one that holds A's records, all of it to one that does not */
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    snprintf(want, sizeof want, "A:%lld", (long long)a_mark);
    run_ok(x, &req, ovms_store_prep_changes_after(&req, want, 1000));
    for (int i = 0; i < req.rows.nrows; i++)
        cr_assert(ovms_store_cell(&req.rows, i, 2)[0] == '\0' ||
                  strcmp(ovms_store_cell(&req.rows, i, 0), "A") != 0, "sent back: %s",
                  ovms_store_cell(&req.rows, i, 2));
    run_ok(x, &req, ovms_store_prep_changes_after(&req, "", 1000));
    int of_a = 0;
    for (int i = 0; i < req.rows.nrows; i++)
        of_a += ovms_store_cell(&req.rows, i, 2)[0] && !strcmp(ovms_store_cell(&req.rows, i, 0), "A");
    cr_assert_gt(of_a, 0);
    ovms_store_req_cleanup(&req);
    ovms_store_close(x);
}

Test(replication, a_change_after_a_version_from_the_future_still_wins)
{
    char rec[256], ts[20];
    int64_t ahead = (int64_t)time(NULL) + 3600;
    ovms_timestamp_format(ahead, ts);
    ovms_store_t *b = open_named("CLOCK", "B");
    snprintf(rec, sizeof rec, "RVFUTURE,1,farpassword,*,0,%s,Z,5,%lld\n", ts, (long long)ahead);

    ovms_store_req_t req;
    ovms_store_req_init(&req);
    run_ok(b, &req, ovms_store_prep_apply(&req, rec, strlen(rec)));
    cr_assert_eq(req.value, 1);
    cr_assert_eq(req.rows.nrows, 1);
    cr_assert(strstr(ovms_store_cell(&req.rows, 0, 1), "clock:"), "%s", ovms_store_cell(&req.rows, 0, 1));

    /* changed here after seeing it: stamped after it, whatever our clock says */
    W(b, ovms_store_prep_vehicle_put(REQ, "FUTURE", NULL, "newpassword", NULL, NULL, OVMS_STORE_UPDATE));
    run_ok(b, &req, ovms_store_prep_changes(&req, "B", 0, 100));
    cr_assert_eq(req.rows.nrows, 1);
    ovms_timestamp_format(ahead + 1, ts);       /* B sorts below Z: one second later */
    cr_assert(strstr(ovms_store_cell(&req.rows, 0, 1), ts), "%s", ovms_store_cell(&req.rows, 0, 1));
    ovms_store_req_cleanup(&req);

    /* and so it wins on a node that has both */
    ovms_store_t *y = open_named("CLOCK2", "Y");
    apply(y, rec);
    ovms_store_req_init(&req);
    run_ok(b, &req, ovms_store_prep_changes(&req, "B", 0, 100));
    char mine[512];
    snprintf(mine, sizeof mine, "%s\n", ovms_store_cell(&req.rows, 0, 1));
    ovms_store_req_cleanup(&req);
    apply(y, mine);
    ovms_vehicle_t v;
    cr_assert_eq(ovms_store_vehicle_get(y, "FUTURE", &v), 0);
    cr_assert_str_eq(v.carpass, "newpassword");
    ovms_store_close(y);
    ovms_store_close(b);
}

Test(replication, records_round_trip_and_bad_ones_are_refused)
{
    static const char *good[] = {
        "VCAR1,4294967297,pass,*,0,2026-01-02 03:04:05,N1,17,1767323045",
        "VCAR1,4294967297,pass,N2,1,2026-01-02 03:04:05,N1,18",
        "O4294967297,alice,a@example.org,$pbkdf2-sha256$1$x$y,1,0,2026-01-02 03:04:05,N1,19",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ovms_repl_t r;
        char out[512];
        cr_assert_eq(ovms_repl_parse(ovms_str_c(good[i]), &r), 0, "%s", good[i]);
        int n = ovms_repl_format(&r, out, sizeof out);
        cr_assert_gt(n, 0);
        cr_assert_str_eq(out + 1, good[i]);
    }
    static const char *rgood[] = {
        "N1,5,2026-01-02 03:04:05,CAR1,S,0,,80.0,K,0",
        "N1,6,2026-01-02 03:04:05,CAR1,D,1,TOK,encrypted",
        "N1,7,2026-01-02 03:04:05,CAR1,E,TOK",
        "N1,8,2026-01-02 03:04:05,CAR1,H,*-LOG-Trip,3,2026-02-02 03:04:05,a,b,c",
    };
    for (size_t i = 0; i < sizeof rgood / sizeof rgood[0]; i++) {
        ovms_replmsg_t m;
        char out[512];
        cr_assert_eq(ovms_replmsg_parse(ovms_str_c(rgood[i]), &m), 0, "%s", rgood[i]);
        cr_assert_gt(ovms_replmsg_format(&m, out, sizeof out), 0);
        cr_assert_str_eq(out + 1, rgood[i]);
    }
    static const char *bad[] = {
        "VCAR1,1,pass,*,0,2026-01-02 03:04:05,N1",              /* no seq */
        "VCAR1,1,pass,*,2,2026-01-02 03:04:05,N1,5",            /* deleted must be 0 or 1 */
        "VCAR1,1,pass,*,0,2026-01-02,N1,5",                     /* timestamp not exact */
        "VCAR1,1,pass,*,0,2026-01-02 03:04:05,bad id!,5",       /* origin */
        "VCAR1,1,pass,*,0,2026-01-02 03:04:05,N1,-5",           /* seq */
        "OX,alice,mail,hash,one,0,2026-01-02 03:04:05,N1,5",    /* status */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ovms_repl_t r;
        cr_assert_lt(ovms_repl_parse(ovms_str_c(bad[i]), &r), 0, "accepted %s", bad[i]);
    }
    static const char *rbad[] = {
        "N1,x,2026-01-02 03:04:05,CAR1,S,0,,80",                /* seq */
        "N1,5,2026-01-02 03:04:05,CAR1,S,2,,80",                /* paranoid flag */
        "N1,5,2026-01-02 03:04:05,CAR1,SS,0,,80",               /* code */
        "N1,5,2026-01-02 03:04:05,CAR1,H,*-LOG-Trip,x,2026-02-02 03:04:05,a",  /* recno */
        "N1,5,2026-01-02 03:04:05,CAR1",                        /* fields */
    };
    for (size_t i = 0; i < sizeof rbad / sizeof rbad[0]; i++) {
        ovms_replmsg_t m;
        cr_assert_lt(ovms_replmsg_parse(ovms_str_c(rbad[i]), &m), 0, "accepted %s", rbad[i]);
    }
}

static void apply_feed(ovms_store_t *st, const feed_t *f)
{
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);
    for (int i = 0; i < f->n; i++) {
        size_t n = strlen(f->rec[i]);
        if (len + n + 2 > cap) {
            text[len] = '\0';
            apply(st, text);
            len = 0;
        }
        memcpy(text + len, f->rec[i], n);
        text[len + n] = '\n';
        len += n + 1;
    }
    text[len] = '\0';
    if (len)
        apply(st, text);
    free(text);
}

Test(replication, owners_made_at_once_on_two_nodes_never_share_an_id, .timeout = 120)
{
    ovms_store_t *p = open_named("OWNP", "P"), *q = open_named("OWNQ", "Q");
    ovms_store_t *both[2] = { p, q };
    char name[32], dp[1024], dq[1024];
    /* the old scheme (max(id) + 1) gives the same ids to p0.. and q0..; names s0.. are on both */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2000; i++) {
            snprintf(name, sizeof name, "%c%d", k ? 'q' : 'p', i);
            W(both[k], ovms_store_prep_owner_put(REQ, name, "", "", 1, OVMS_STORE_CREATE));
            if (i < 200) {
                snprintf(name, sizeof name, "s%d", i);
                W(both[k], ovms_store_prep_owner_put(REQ, name, k ? "q@x" : "p@x", "", 1, OVMS_STORE_CREATE));
            }
        }
    feed_t fp, fq;
    read_feed(p, "P", &fp);
    read_feed(q, "Q", &fq);
    apply_feed(p, &fq);
    apply_feed(q, &fp);
    digest(p, dp, sizeof dp);
    digest(q, dq, sizeof dq);
    cr_assert_str_eq(dp, dq);

    ovms_store_req_t req;
    ovms_store_req_init(&req);
    run_ok(p, &req, ovms_store_prep_owner_list(&req));
    cr_assert_eq(req.rows.nrows, 4200, "%d owners", req.rows.nrows);
    int64_t *ids = calloc((size_t)req.rows.nrows, sizeof *ids);
    for (int i = 0; i < req.rows.nrows; i++)
        ids[i] = atoll(ovms_store_cell(&req.rows, i, 0));
    for (int i = 0; i < req.rows.nrows; i++)
        for (int k = i + 1; k < req.rows.nrows; k++)
            cr_assert_neq(ids[i], ids[k], "%s and %s share id %lld", ovms_store_cell(&req.rows, i, 1),
                          ovms_store_cell(&req.rows, k, 1), (long long)ids[i]);
    free(ids);
    ovms_store_req_cleanup(&req);
    ovms_store_close(p);
    ovms_store_close(q);
}

/* An API token made on one node logs in on the other; removed there (by its
 * prefix), it is gone on both, and an old copy of the record that made it
 * does not bring it back. */
Test(replication, api_tokens_are_made_and_removed_on_every_node)
{
    ovms_store_t *p = open_named("TOKP", "P"), *q = open_named("TOKQ", "Q");
    const char *tok = "2702de7206f2dbad8b56522c88c896df5253d6182967d6a90970a09d8aaddd31";
    ovms_token_t t;
    char dp[1024], dq[1024];
    W(p, ovms_store_prep_owner_put(REQ, "alice", "", "", 1, OVMS_STORE_CREATE));
    W(p, ovms_store_prep_token_put(REQ, "alice", tok, "myapp", "testing", "auth,session"));
    feed_t fp, fq;
    read_feed(p, "P", &fp);
    apply_feed(q, &fp);
    cr_assert_eq(ovms_store_token_find(q, tok, &t), 0);
    cr_assert_str_eq(t.owner_name, "alice");
    cr_assert_str_eq(t.permit, "auth,session");
    W(q, ovms_store_prep_token_remove(REQ, "alice", "2702de72"));
    cr_assert_eq(ovms_store_token_find(q, tok, &t), OVMS_ENOTFOUND);
    read_feed(q, "Q", &fq);
    apply_feed(p, &fq);
    cr_assert_eq(ovms_store_token_find(p, tok, &t), OVMS_ENOTFOUND);
    /* the record that made it, again (a reconnect's resend): no resurrection */
    for (int i = 0; i < fp.n; i++)
        if (fp.rec[i][1] == 'K') {
            char line[1024];
            snprintf(line, sizeof line, "%s", fp.rec[i]);
            ovms_store_req_t req;
            ovms_store_req_init(&req);
            run_ok(q, &req, ovms_store_prep_apply(&req, line, strlen(line)));
            ovms_store_req_cleanup(&req);
        }
    cr_assert_eq(ovms_store_token_find(q, tok, &t), OVMS_ENOTFOUND);
    digest(p, dp, sizeof dp);
    digest(q, dq, sizeof dq);
    cr_assert_str_eq(dp, dq);
    cr_assert(strstr(dp, "apitokens 1 "), "%s", dp);
    ovms_store_close(p);
    ovms_store_close(q);
}
