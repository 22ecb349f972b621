/*
 * test_fleet.c -- ovms-fleet's statistics, scenario parser and report
 * writer (tools/fleet_stats.c, fleet_scenario.c, fleet_report.c).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* within the histogram's resolution (3 %, and 1 us below 64 us) */
static void assert_close(double got_ms, double want_ms, const char *what)
{
    double tol = want_ms * 0.035 + 0.0011;
    cr_assert(fabs(got_ms - want_ms) <= tol, "%s: %.4f ms, expected %.4f ms", what, got_ms, want_ms);
}

Test(fleet_stats, buckets_are_exact_below_64_us_and_within_3_percent_above)
{
    for (uint64_t us = 0; us < 64; us++)
        cr_assert_eq(fleet_hist_bucket_value(fleet_hist_bucket(us)), us);
    for (uint64_t us = 64; us < 100000000; us = us * 11 / 10 + 1) {
        uint64_t v = fleet_hist_bucket_value(fleet_hist_bucket(us));
        cr_assert(fabs((double)v - (double)us) <= (double)us * 0.032, "%llu us -> %llu",
                  (unsigned long long)us, (unsigned long long)v);
    }
    /* monotonic: a larger value never lands in an earlier bucket */
    for (uint64_t us = 1; us < 5000000; us += 997)
        cr_assert(fleet_hist_bucket(us) >= fleet_hist_bucket(us - 1));
    cr_assert_eq(fleet_hist_bucket(UINT64_MAX), FLEET_HIST_BUCKETS - 1, "the largest values are kept, not lost");
}

Test(fleet_stats, percentiles_match_a_sorted_list)
{
    enum { N = 100000 };
    static uint64_t v[N];
    fleet_hist_t h = { 0 };
    srand(7);
    for (int i = 0; i < N; i++) {
        /* a long tail: mostly a few hundred us, some tens of ms */
        v[i] = (uint64_t)(200 + rand() % 300) + (i % 97 == 0 ? (uint64_t)(rand() % 40000) : 0);
        fleet_hist_add(&h, v[i]);
    }
    qsort(v, N, sizeof v[0], cmp_u64);
    cr_assert_eq(h.count, N);
    assert_close(fleet_hist_quantile_ms(&h, 0.5), (double)v[N / 2] / 1000, "p50");
    assert_close(fleet_hist_quantile_ms(&h, 0.99), (double)v[N * 99 / 100] / 1000, "p99");
    assert_close(fleet_hist_quantile_ms(&h, 0.999), (double)v[N * 999 / 1000] / 1000, "p99.9");
    cr_assert_float_eq(fleet_hist_quantile_ms(&h, 1.0), (double)v[N - 1] / 1000, 1e-9, "max is exact");
    double sum = 0;
    for (int i = 0; i < N; i++)
        sum += (double)v[i];
    cr_assert_float_eq(fleet_hist_mean_ms(&h), sum / N / 1000, 1e-9);
}

Test(fleet_stats, an_empty_histogram_reports_zero)
{
    fleet_hist_t h = { 0 };
    cr_assert_eq(fleet_hist_quantile_ms(&h, 0.99), 0);
    cr_assert_eq(fleet_hist_mean_ms(&h), 0);
}

Test(fleet_stats, histograms_of_several_processes_merge_into_the_whole)
{
    fleet_hist_t part[3] = { 0 }, whole = { 0 }, merged = { 0 };
    for (uint64_t i = 0; i < 30000; i++) {
        uint64_t us = (i * 7919) % 25000;
        fleet_hist_add(&part[i % 3], us);
        fleet_hist_add(&whole, us);
    }
    for (int p = 0; p < 3; p++)
        fleet_hist_merge(&merged, &part[p]);
    cr_assert_eq(memcmp(&merged, &whole, sizeof whole), 0, "merged differs from the whole");
}

Test(fleet_stats, the_last_second_is_the_difference_of_two_snapshots)
{
    fleet_hist_t h = { 0 }, before, second;
    for (int i = 0; i < 1000; i++)
        fleet_hist_add(&h, 100);
    before = h;
    for (int i = 0; i < 10; i++)
        fleet_hist_add(&h, 5000);
    fleet_hist_since(&second, &h, &before);
    cr_assert_eq(second.count, 10);
    assert_close(fleet_hist_quantile_ms(&second, 0.5), 5.0, "that second's p50");
    assert_close(fleet_hist_quantile_ms(&second, 1.0), 5.0, "that second's max");
}

Test(fleet_stats, counts_add_up_and_errors_are_what_fails_a_run)
{
    fleet_counts_t a = { .sent = 10, .received = 9, .lost = 1 }, b = { .sent = 5, .received = 5 }, sum = { 0 };
    fleet_counts_add(&sum, &a);
    fleet_counts_add(&sum, &b);
    cr_assert_eq(sum.sent, 15);
    cr_assert_eq(sum.received, 14);
    cr_assert_eq(fleet_counts_errors(&sum), 1);
    fleet_counts_t in_flight = { .hist_sent = 5, .hist_acked = 3, .cmd_sent = 2 };
    cr_assert_eq(fleet_counts_errors(&in_flight), 0, "in flight is not an error until the end");
    fleet_counts_t bad = { .dups = 1, .misrouted = 2, .out_of_order = 3, .login_failures = 4,
                           .disconnects = 5, .cmd_failed = 6, .cmd_lost = 7, .hist_lost = 8,
                           .cmd_misrouted = 9 };
    cr_assert_eq(fleet_counts_errors(&bad), 45);
}

/* ---- scenarios ---- */

Test(fleet_scenario, each_scenario_has_sane_defaults)
{
    const char *names[] = { "login-storm", "idle", "relay", "commands", "history", "cross-node", "mixed", "churn" };
    char err[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fleet_scenario_t s;
        cr_assert_eq(fleet_scenario_init(&s, names[i], err, sizeof err), 0, "%s", names[i]);
        cr_assert_str_eq(fleet_kind_name(s.kind), names[i]);
        cr_assert_eq(fleet_scenario_check(&s, err, sizeof err), 0, "%s: %s", names[i], err);
    }
    fleet_scenario_t s;
    cr_assert_eq(fleet_scenario_init(&s, "stampede", err, sizeof err), -1);
    cr_assert(strstr(err, "unknown scenario 'stampede'"), "%s", err);
}

Test(fleet_scenario, settings_by_name_with_dashes_or_underscores)
{
    fleet_scenario_t s;
    char err[256];
    fleet_scenario_init(&s, "relay", err, sizeof err);
    cr_assert_eq(fleet_scenario_set(&s, "apps-per-car", "3", err, sizeof err), 0);
    cr_assert_eq(fleet_scenario_set(&s, "command_rate", "0.5", err, sizeof err), 0);
    cr_assert_eq(fleet_scenario_set(&s, "server", "127.0.0.11:6867,127.0.0.12:6867", err, sizeof err), 0);
    cr_assert_eq(fleet_scenario_set(&s, "json", "yes", err, sizeof err), 0);
    cr_assert_eq(s.apps_per_car, 3);
    cr_assert_float_eq(s.command_rate, 0.5, 1e-12);
    cr_assert_str_eq(s.server, "127.0.0.11:6867,127.0.0.12:6867");
    cr_assert_eq(s.json, 1);
}

Test(fleet_scenario, bad_values_get_a_clear_error_and_change_nothing)
{
    fleet_scenario_t s;
    char err[256];
    fleet_scenario_init(&s, "relay", err, sizeof err);
    struct { const char *k, *v, *want; } bad[] = {
        { "cars", "lots", "cars: expected a whole number" },
        { "cars", "2.5", "cars: expected a whole number" },
        { "cars", "0", "from 1 to 200000" },
        { "cars", "1000000", "from 1 to 200000" },
        { "duration", "-1", "duration: expected a number from 0 to 86400" },
        { "apps-per-car", "17", "apps-per-car" },
        { "json", "maybe", "json: expected yes or no" },
        { "wheels", "4", "unknown setting 'wheels'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fleet_scenario_t before = s;
        cr_assert_eq(fleet_scenario_set(&s, bad[i].k, bad[i].v, err, sizeof err), -1, "%s=%s", bad[i].k, bad[i].v);
        cr_assert(strstr(err, bad[i].want), "%s=%s: %s", bad[i].k, bad[i].v, err);
        cr_assert_eq(memcmp(&before, &s, sizeof s), 0);
    }
}

Test(fleet_scenario, the_bounds_of_a_run)
{
    fleet_scenario_t s;
    char err[256];
    fleet_scenario_init(&s, "relay", err, sizeof err);
    snprintf(s.ids, sizeof s.ids, "CAR%%d%%d");
    cr_assert_eq(fleet_scenario_check(&s, err, sizeof err), -1);
    cr_assert(strstr(err, "one %d"), "%s", err);
    snprintf(s.ids, sizeof s.ids, "CAR%%s");
    cr_assert_eq(fleet_scenario_check(&s, err, sizeof err), -1, "a %%s pattern would read a wild pointer");
    snprintf(s.ids, sizeof s.ids, "CAR %%d");
    cr_assert_eq(fleet_scenario_check(&s, err, sizeof err), -1, "no spaces in vehicle ids");
    snprintf(s.ids, sizeof s.ids, "CAR-%%05d");
    cr_assert_eq(fleet_scenario_check(&s, err, sizeof err), 0, "%s", err);
    s.duration = 0;
    cr_assert_eq(fleet_scenario_check(&s, err, sizeof err), -1, "an endless run");
    cr_assert(strstr(err, "duration above 0"), "%s", err);
    s.duration = 5;
    s.apps_per_car = 0;
    cr_assert_eq(fleet_scenario_check(&s, err, sizeof err), -1, "relay without apps");
    fleet_scenario_init(&s, "idle", err, sizeof err);
    s.cars = 200000;
    s.apps_per_car = 16;
    cr_assert_eq(fleet_scenario_check(&s, err, sizeof err), -1, "more connections than the processes hold");
}

Test(fleet_scenario, only_loopback_targets_without_the_flag)
{
    cr_assert(fleet_addr_is_loopback("127.0.0.1"));
    cr_assert(fleet_addr_is_loopback("127.0.0.13"));
    cr_assert(fleet_addr_is_loopback("127.255.255.254"));
    cr_assert(fleet_addr_is_loopback("::1"));
    cr_assert(!fleet_addr_is_loopback("128.0.0.1"));
    cr_assert(!fleet_addr_is_loopback("10.0.0.1"));
    cr_assert(!fleet_addr_is_loopback("52.1.2.3"));
    cr_assert(!fleet_addr_is_loopback("localhost"), "names are resolved first");
}

Test(fleet_scenario, placement_round_robin_and_across_nodes)
{
    fleet_scenario_t s;
    char err[256];
    fleet_scenario_init(&s, "relay", err, sizeof err);
    for (int car = 0; car < 9; car++) {
        cr_assert_eq(fleet_car_node(&s, car, 3), car % 3);
        cr_assert_eq(fleet_app_node(&s, car, 0, 3), car % 3, "relay: the app beside its car");
    }
    fleet_scenario_init(&s, "cross-node", err, sizeof err);
    for (int car = 0; car < 9; car++)
        for (int app = 0; app < 4; app++) {
            int n = fleet_app_node(&s, car, app, 3);
            cr_assert_neq(n, fleet_car_node(&s, car, 3), "car %d app %d on the car's node", car, app);
            cr_assert(n >= 0 && n < 3);
        }
    cr_assert_eq(fleet_app_node(&s, 5, 0, 1), 0, "one node: nowhere else to go");
}

static char *write_temp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test-fleet-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(fleet_scenario, a_scenario_file)
{
    fleet_scenario_t s;
    char err[256];
    fleet_scenario_init(&s, "relay", err, sizeof err);
    char *path = write_temp("; a fleet for the soak\n[scenario]\nscenario = mixed\ncars = 5000\n"
                            "apps_per_car = 2\nactive = 0.2\nduration = 600\n");
    cr_assert_eq(fleet_scenario_load(&s, path, err, sizeof err), 0, "%s", err);
    unlink(path);
    cr_assert_eq(s.kind, FLEET_MIXED);
    cr_assert_eq(s.cars, 5000);
    cr_assert_eq(s.apps_per_car, 2);
    cr_assert_float_eq(s.active, 0.2, 1e-12);
    cr_assert_float_eq(s.history_rate, 0.01, 1e-12, "mixed's own defaults under the file's settings");
}

Test(fleet_scenario, a_bad_scenario_file_names_the_line)
{
    fleet_scenario_t s;
    char err[256];
    struct { const char *text, *want; } bad[] = {
        { "scenario = relay\ncars = 10\nrate = fast\n", "line 3: rate: expected a number" },
        { "cars = 10\nscenario = relay\n", "line 2: scenario must come before" },
        { "[fleet]\ncars = 10\n", "line 2: unknown section [fleet]" },
        { "scenario = parade\n", "line 1: unknown scenario 'parade'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fleet_scenario_init(&s, "relay", err, sizeof err);
        char *path = write_temp(bad[i].text);
        cr_assert_eq(fleet_scenario_load(&s, path, err, sizeof err), -1, "%s", bad[i].text);
        unlink(path);
        cr_assert(strstr(err, bad[i].want), "%s -> %s", bad[i].text, err);
    }
    cr_assert_eq(fleet_scenario_load(&s, "/nonexistent/fleet.ini", err, sizeof err), -1);
    cr_assert(strstr(err, "No such file"), "%s", err);
}

/* ---- the report ---- */

static fleet_result_t sample_result(fleet_scenario_t *s)
{
    char err[256];
    fleet_scenario_init(s, "relay", err, sizeof err);
    fleet_result_t r = { .s = s, .nodes = 1, .procs = 2, .seconds = 10, .up_seconds = 0.5 };
    snprintf(r.node[0].host, sizeof r.node[0].host, "127.0.0.1");
    r.node[0].port = 6867;
    r.c = (fleet_counts_t){ .logins = 200, .connects = 200, .car_msgs = 1000, .sent = 1000, .received = 1000,
                            .cars_online = 100, .apps_online = 100 };
    for (int i = 0; i < 1000; i++)
        fleet_hist_add(&r.relay, 100 + (uint64_t)i);
    return r;
}

Test(fleet_report, the_json_line_holds_what_scripts_rely_on)
{
    fleet_scenario_t s;
    fleet_result_t r = sample_result(&s);
    char *line = fleet_report_json(&r);
    cr_assert(line);
    size_t n = strlen(line);
    cr_assert(n > 2 && line[n - 1] == '\n' && !memchr(line, '\n', n - 1), "one line");
    json_error_t e;
    json_t *o = json_loads(line, 0, &e);
    cr_assert(o, "not JSON: %s", e.text);
    const char *ints[] = { "sent", "received", "lost", "dups", "misrouted" };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        cr_assert(json_is_integer(json_object_get(o, ints[i])), "%s", ints[i]);
    cr_assert_eq(json_integer_value(json_object_get(o, "sent")), 1000);
    cr_assert_eq(json_integer_value(json_object_get(o, "lost")), 0);
    cr_assert_float_eq(json_number_value(json_object_get(o, "rate_per_s")), 100.0, 1e-9);
    json_t *lat = json_object_get(o, "latency_ms");
    const char *qs[] = { "p50", "p99", "p999", "max" };
    for (size_t i = 0; i < 4; i++)
        cr_assert(json_is_number(json_object_get(lat, qs[i])), "latency_ms.%s", qs[i]);
    cr_assert_float_eq(json_number_value(json_object_get(lat, "max")), 1.099, 1e-9);
    cr_assert(json_is_true(json_object_get(o, "ok")));
    json_decref(o);
    free(line);
}

Test(fleet_report, a_run_with_losses_is_not_ok)
{
    fleet_scenario_t s;
    fleet_result_t r = sample_result(&s);
    r.c.received = 990;
    r.c.lost = 10;
    char *line = fleet_report_json(&r);
    json_t *o = json_loads(line, 0, NULL);
    cr_assert(json_is_false(json_object_get(o, "ok")));
    cr_assert_eq(json_integer_value(json_object_get(o, "lost")), 10);
    json_decref(o);
    free(line);
    char buf[8192] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    fleet_report_table(f, &r);
    fclose(f);
    cr_assert(strstr(buf, "10 lost"), "%s", buf);
    cr_assert(strstr(buf, "FAILED"), "%s", buf);
}

Test(fleet_report, the_table_names_the_scenario_and_its_figures)
{
    fleet_scenario_t s;
    fleet_result_t r = sample_result(&s);
    char buf[8192] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    fleet_report_table(f, &r);
    fclose(f);
    cr_assert(strstr(buf, "ovms-fleet relay: 100 cars x 1 app on 1 node"), "%s", buf);
    cr_assert(strstr(buf, "1000 deliveries owed, 1000 made: 0 lost"), "%s", buf);
    cr_assert(strstr(buf, "relay latency"), "%s", buf);
    cr_assert(strstr(buf, "OK"), "%s", buf);
}

Test(fleet_report, memory_per_connection_from_the_nodes)
{
    fleet_scenario_t s;
    fleet_result_t r = sample_result(&s);
    cr_assert_lt(fleet_result_bytes_per_conn(&r), 0, "no /proc figures: unknown, not zero");
    r.node[0].pid = 1234;
    r.node[0].rss_kb0 = 10000;
    r.node[0].rss_kb1 = 10100;                /* 100 KiB for 200 connections */
    cr_assert_float_eq(fleet_result_bytes_per_conn(&r), 512.0, 1e-9);
}

Test(fleet_report, plots_are_written_with_gnuplot)
{
    fleet_scenario_t s;
    fleet_result_t r = sample_result(&s);
    fleet_second_t t[3] = { { 1, 100, 100, 0, 200, 0.2, 0.9, 1.0, 0, -1, -1 },
                            { 2, 100, 100, 0, 200, 0.3, 1.0, 1.1, 0, 60, 2 },
                            { 3, 100, 100, 0, 200, 0.2, 0.8, 0.9, 0, 65, 25 } };
    r.timeline = t;
    r.nseconds = 3;
    char dir[] = "/tmp/test-fleet-plot-XXXXXX", err[256], path[128];
    cr_assert(mkdtemp(dir));
    int rc = fleet_report_plot(&r, dir, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    const char *files[] = { "relay-timeline.dat", "relay-distribution.dat", "relay-latency-time.png",
                            "relay-latency-distribution.png", "relay-machine.png" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "rb");
        cr_assert(f, "%s missing", files[i]);
        unsigned char head[8] = { 0 };
        size_t got = fread(head, 1, sizeof head, f);
        fclose(f);
        cr_assert(got > 0, "%s empty", files[i]);
        if (strstr(files[i], ".png"))
            cr_assert(head[1] == 'P' && head[2] == 'N' && head[3] == 'G', "%s is not a PNG", files[i]);
        unlink(path);
    }
    rmdir(dir);
}
