/*
 * test_firmware_sim.c -- the simulated car on its own: deterministic for a
 * seed whatever the step pattern, a plausible day (state of charge falls
 * while driving along the route and rises while charging, odometer and trip
 * grow, the GPS track stays on the route, temperatures and tyre pressures
 * stay in sensible ranges), and a record at the end of each trip and charge.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ovms_fw.h"

#define S 1000ull
#define WALL 1795600000                   /* 2026-11-25, a Wednesday */

static ovms_sim_t a, b;

static void step(ovms_sim_t *s, uint64_t ms)
{
    s->ops.step(s->ops.self, ms);
}

Test(sim, same_seed_same_car_whatever_the_step_pattern)
{
    ovms_sim_init(&a, 42, 10.0, WALL, 0);
    ovms_sim_init(&b, 42, 10.0, WALL, 0);
    /* a in one-second steps, b in irregular ones, to the same time */
    for (uint64_t t = 0; t <= 7200 * S; t += S)
        step(&a, t);
    for (uint64_t t = 0; t < 7200 * S; t += 1 + (t * 7919) % (97 * S))
        step(&b, t);
    step(&b, 7200 * S);
    cr_assert_eq(a.ticks, b.ticks);
    cr_assert_eq(a.ticks, 72000);
    cr_assert_eq(memcmp(&a.soc, &b.soc, sizeof a.soc), 0);
    cr_assert_eq(a.odometer_km, b.odometer_km);
    cr_assert_eq(a.lat, b.lat);
    cr_assert_eq(a.trips, b.trips);
    cr_assert_eq(a.charges, b.charges);

    ovms_sim_init(&b, 43, 10.0, WALL, 0);
    cr_assert_neq(strcmp(a.vin, b.vin), 0, "another seed, another car");
}

Test(sim, a_day_of_driving_and_charging)
{
    ovms_fw_record_t rec;
    int trips = 0, charges = 0, saw_driving = 0, saw_charging = 0;
    double lo_lat = 90, hi_lat = -90, lo_lon = 180, hi_lon = -180;

    ovms_sim_init(&a, 1, 1.0, WALL, 0);
    double odo0 = a.odometer_km;
    for (int64_t t = 1; t <= 24 * 3600; t++) {
        double soc = a.soc;
        int phase = a.phase;
        step(&a, (uint64_t)t * S);
        if (phase == OVMS_SIM_DRIVING && a.phase == OVMS_SIM_DRIVING) {
            saw_driving = 1;
            cr_assert_leq(a.soc, soc + 0.01, "state of charge does not rise while driving");
            cr_assert_leq(a.speed, 80);
        }
        if (phase == OVMS_SIM_CHARGING && a.phase == OVMS_SIM_CHARGING && a.charge_kw > 0) {
            saw_charging = 1;
            cr_assert_geq(a.soc, soc, "state of charge does not fall while charging");
        }
        cr_assert(a.soc >= 0 && a.soc <= 100);
        lo_lat = fmin(lo_lat, a.lat), hi_lat = fmax(hi_lat, a.lat);
        lo_lon = fmin(lo_lon, a.lon), hi_lon = fmax(hi_lon, a.lon);
        cr_assert(a.ambient > -5 && a.ambient < 25);
        cr_assert(a.battery_temp > -5 && a.battery_temp < 45);
        for (int w = 0; w < 4; w++)
            cr_assert(a.tyre_kpa[w] > 200 && a.tyre_kpa[w] < 290, "%.1f kPa", a.tyre_kpa[w]);
        while (a.ops.next_record(a.ops.self, &rec)) {
            if (!strcmp(rec.type, "*-LOG-Trip"))
                trips++;
            else if (!strcmp(rec.type, "*-LOG-Charge"))
                charges++;
            else
                cr_assert_fail("unexpected record %s", rec.type);
            cr_assert_gt(rec.lifetime, 86400);
            cr_assert(rec.when >= WALL && rec.when <= WALL + 86400);
        }
    }
    cr_assert(saw_driving && saw_charging);
    cr_assert_geq(trips, 3, "%d trips in a day", trips);
    cr_assert_geq(charges, 1, "%d charges in a day", charges);
    cr_assert_gt(a.odometer_km, odo0 + 40);
    /* the GPS track stays around Greenwich */
    cr_assert(lo_lat > 51.45 && hi_lat < 51.51, "%f..%f", lo_lat, hi_lat);
    cr_assert(lo_lon > -0.04 && hi_lon < 0.02, "%f..%f", lo_lon, hi_lon);
}

Test(sim, a_trip_record_tells_the_trip)
{
    ovms_fw_record_t rec;
    ovms_sim_init(&a, 2, 1.0, WALL, 0);
    a.phase_left = 1;
    double soc0 = a.soc;
    uint64_t t = 0;
    while (!a.ops.next_record(a.ops.self, &rec)) {
        t += 10 * S;
        step(&a, t);
        cr_assert_lt(t, 3 * 3600 * S, "no trip ended in three hours");
    }
    cr_assert_str_eq(rec.type, "*-LOG-Trip");
    long long start, secs;
    double km, soc_start, soc_end;
    cr_assert_eq(sscanf(rec.data, "%lld,%lld,%lf,%lf,%lf", &start, &secs, &km, &soc_start, &soc_end), 5,
                 "%s", rec.data);
    cr_assert_gt(km, 10, "one lap of the route at least: %.1f km", km);
    cr_assert_lt(soc_end, soc_start);
    cr_assert_float_eq(soc_start, soc0, 0.11);
    cr_assert_gt(secs, 600);
    /* home again, locked, and plugged in if it needs it */
    cr_assert_eq(a.phase == OVMS_SIM_DRIVING, 0);
    cr_assert_eq(a.locked, 1);
    cr_assert_float_eq(a.lat, 51.48258, 1e-6);
}

Test(sim, time_scale_speeds_the_car_up)
{
    ovms_sim_init(&a, 9, 60.0, WALL, 5000);
    step(&a, 5000 + 60 * S);
    cr_assert_eq(a.ticks, 3600, "a minute of real time is an hour of the car's");
    cr_assert_eq(ovms_sim_wall(&a), WALL + 3600);
    /* a long pause (a suspended laptop) is skipped past, not replayed */
    step(&a, 5000 + 30ull * 86400 * S);
    cr_assert_eq(a.ticks, (int64_t)30 * 86400 * 60);
}

Test(sim, charging_follows_mode_limit_and_timer)
{
    ovms_sim_init(&a, 4, 1.0, WALL, 0);
    a.phase_left = 1000000;
    a.plugged = 1;
    a.soc = 40;
    char text[64];
    cr_assert_eq(a.ops.command(a.ops.self, 10, "1", text, sizeof text), 0);   /* storage: 50 % */
    cr_assert_eq(a.ops.command(a.ops.self, 11, "", text, sizeof text), 0);
    uint64_t t = 0;
    while (a.phase == OVMS_SIM_CHARGING) {
        t += 60 * S;
        step(&a, t);
        cr_assert_lt(t, 6 * 3600 * S);
    }
    cr_assert_float_eq(a.soc, 50.0, 0.01);
    cr_assert_eq(a.charge_state, 4, "done");
    /* a timer outside its window waits */
    ovms_sim_init(&b, 4, 1.0, WALL, 0);
    b.phase_left = 1000000;
    b.plugged = 1;
    b.soc = 40;
    char timer[32];
    snprintf(timer, sizeof timer, "1,%d", (int)((ovms_sim_wall(&b) % 86400) / 60 + 720) % 1440);
    cr_assert_eq(b.ops.command(b.ops.self, 17, timer, text, sizeof text), 0);   /* in 12 hours */
    cr_assert_eq(b.ops.command(b.ops.self, 11, "", text, sizeof text), 0);
    step(&b, 600 * S);
    cr_assert_eq(b.charge_state, 14, "timerwait");
    cr_assert_float_eq(b.soc, 40.0, 0.01);
}
