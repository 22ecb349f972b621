/*
 * sim.c -- the simulated electric car: its model and clock.
 *
 * The car lives in whole simulated seconds ("ticks"). Each call to step
 * runs every tick up to the driver's clock times time_scale, so the result
 * depends only on the seed, the start and the time reached -- not on how
 * often the driver calls (tests rely on that). A long gap is skipped past
 * after two simulated days, so a suspended process does not spin.
 *
 * The day of the car: parked for a while (locked, handbrake on), then a
 * round trip or two along a loop through Greenwich, Blackheath, Lewisham
 * and Deptford (speed varying by road, state of charge falling with speed
 * and climate, some of it recovered), back home where it is plugged in when
 * the battery is below 85 % and charges at up to 7.2 kW (tapering above
 * 80 %) to the limit of its charge mode, or waits for its timer. A trip
 * and a charge each leave a historical record (*-LOG-Trip, *-LOG-Charge).
 * Temperatures follow the time of day and the load; tyre pressures follow
 * their temperatures.
 * Threading: the caller's; no globals.
 */
#include "fw_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_CATCHUP (2 * 86400)
#define HOME_PLUG_BELOW 85.0
#define CHARGER_KW 7.2
#define CHARGE_EFFICIENCY 0.92
#define KWH_PER_KM 0.145
#define AUX_KW 0.3
#define CLIMATE_KW 1.5
#define RECORD_LIFETIME (365 * 86400)

typedef struct waypoint {
    double lat, lon, alt;
    double kmh;                    /* speed on the road to the next point */
} waypoint_t;

/* A loop of about 15 km; the first point is home. */
static const waypoint_t route[] = {
    { 51.482580, -0.007660, 8, 30 },    /* Greenwich town centre */
    { 51.476900, 0.000500, 45, 40 },    /* Greenwich Park */
    { 51.467000, 0.009000, 42, 48 },    /* Blackheath */
    { 51.461300, -0.010600, 12, 30 },   /* Lewisham */
    { 51.474000, -0.026000, 6, 40 },    /* Deptford */
    { 51.488500, -0.030500, 5, 48 },    /* Surrey Quays */
    { 51.500300, 0.003900, 4, 64 },     /* Greenwich Peninsula */
    { 51.490000, -0.002000, 7, 30 },    /* Maze Hill */
};
#define NPOINTS ((int)(sizeof route / sizeof route[0]))

/* ---- randomness: xorshift64*, seeded ----------------------------------- */

static uint64_t next_random(ovms_sim_t *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi). */
static double uniform(ovms_sim_t *s, double lo, double hi)
{
    return lo + (hi - lo) * (double)(next_random(s) >> 11) / 9007199254740992.0;
}

/* ---- names and derived figures ------------------------------------------ */

const char *sim_charge_state_name(int cs)
{
    switch (cs) {
    case SIM_CS_CHARGING: return "charging";
    case SIM_CS_TOPOFF: return "topoff";
    case SIM_CS_DONE: return "done";
    case SIM_CS_TIMERWAIT: return "timerwait";
    default: return "stopped";
    }
}

const char *sim_charge_mode_name(int mode)
{
    switch (mode) {
    case 1: return "storage";
    case 3: return "range";
    case 4: return "performance";
    default: return "standard";
    }
}

double sim_soc_limit(const ovms_sim_t *s)
{
    switch (s->charge_mode) {
    case 1: return 50.0;
    case 3:
    case 4: return 100.0;
    default: return 90.0;
    }
}

double sim_ideal_range(const ovms_sim_t *s)
{
    return s->soc / 100.0 * s->capacity_kwh * s->soh / 100.0 / 0.125;
}

/* The estimate suffers from the cold and from climate use. */
double sim_est_range(const ovms_sim_t *s)
{
    double per_km = KWH_PER_KM + (s->ambient < 10 ? (10 - s->ambient) * 0.003 : 0) +
                    (s->climate ? 0.02 : 0);
    return s->soc / 100.0 * s->capacity_kwh * s->soh / 100.0 / per_km;
}

int64_t ovms_sim_wall(const ovms_sim_t *s)
{
    return s->wall0 + s->ticks;
}

const char *ovms_sim_phase_name(const ovms_sim_t *s)
{
    static const char *const names[] = { "parked", "driving", "charging" };
    return s->phase >= 0 && s->phase <= 2 ? names[s->phase] : "?";
}

/* Real (driver) unix time of the current tick, for record timestamps: the
 * firmware sends them relative to the real clock. */
static int64_t real_wall(const ovms_sim_t *s)
{
    return s->wall0 + (int64_t)((double)s->ticks / s->time_scale);
}

static int minute_of_day(const ovms_sim_t *s)
{
    return (int)((ovms_sim_wall(s) % 86400 + 86400) % 86400 / 60);
}

/* ---- records ------------------------------------------------------------ */

static void add_record(ovms_sim_t *s, const char *type, const char *data)
{
    if (s->nrecords == (int)(sizeof s->records / sizeof s->records[0]))
        return;                    /* the firmware takes them every second */
    ovms_fw_record_t *r = &s->records[s->nrecords++];
    memset(r, 0, sizeof *r);
    snprintf(r->type, sizeof r->type, "%s", type);
    r->recno = 1;                  /* the data format version, as V3 uses it */
    r->lifetime = RECORD_LIFETIME;
    r->when = real_wall(s);
    snprintf(r->data, sizeof r->data, "%s", data);
}

static int sim_next_record(void *self, ovms_fw_record_t *out)
{
    ovms_sim_t *s = self;
    if (!s->nrecords)
        return 0;
    *out = s->records[0];
    memmove(&s->records[0], &s->records[1], (size_t)(s->nrecords - 1) * sizeof s->records[0]);
    s->nrecords--;
    return 1;
}

/* ---- charging ------------------------------------------------------------ */

static int timer_allows(const ovms_sim_t *s)
{
    if (!s->timer_mode)
        return 1;
    /* the timer opens an eight hour window from its start (minutes after midnight) */
    int since = (minute_of_day(s) - s->timer_start % 1440 + 1440) % 1440;
    return since < 8 * 60;
}

int sim_charge_start(ovms_sim_t *s)
{
    if (!s->plugged || s->phase == OVMS_SIM_DRIVING)
        return -1;
    if (s->soc >= sim_soc_limit(s) - 0.5) {
        s->charge_state = SIM_CS_DONE;
        return 0;
    }
    if (s->phase != OVMS_SIM_CHARGING) {
        s->phase = OVMS_SIM_CHARGING;
        s->charge_started = s->ticks;
        s->charge_started_wall = real_wall(s);
        s->charge_start_soc = s->soc;
        s->charge_kwh = 0;
        s->grid_kwh = 0;
    }
    s->charge_state = timer_allows(s) ? SIM_CS_CHARGING : SIM_CS_TIMERWAIT;
    return 0;
}

void sim_charge_stop(ovms_sim_t *s, int state)
{
    char data[200];
    if (s->phase == OVMS_SIM_CHARGING && s->charge_kwh > 0.01) {
        snprintf(data, sizeof data, "%lld,%lld,%.1f,%.1f,%.2f,%.2f,%s,%d,%.6f,%.6f",
                 (long long)s->charge_started_wall, (long long)(s->ticks - s->charge_started),
                 s->charge_start_soc, s->soc, s->charge_kwh, s->grid_kwh,
                 sim_charge_mode_name(s->charge_mode), s->charge_limit_a, s->lat, s->lon);
        add_record(s, "*-LOG-Charge", data);
        s->charges++;
    }
    s->charge_state = state;
    s->charge_kw = 0;
    if (s->phase == OVMS_SIM_CHARGING) {
        s->phase = OVMS_SIM_PARKED;
        s->phase_left = (int64_t)uniform(s, 1800, 4 * 3600);
    }
}

static void charge_tick(ovms_sim_t *s)
{
    if (!timer_allows(s)) {
        s->charge_state = SIM_CS_TIMERWAIT;
        s->charge_kw = 0;
        return;
    }
    double kw = SIM_LINE_VOLTAGE * s->charge_limit_a / 1000.0;
    if (kw > CHARGER_KW)
        kw = CHARGER_KW;
    if (s->soc > 80)
        kw *= fmax(0.25, (100 - s->soc) / 20.0);
    double stored = kw * CHARGE_EFFICIENCY / 3600.0;
    s->charge_kw = kw;
    s->soc += stored / s->capacity_kwh * 100.0;
    s->charge_kwh += stored;
    s->grid_kwh += kw / 3600.0;
    s->grid_kwh_total += kw / 3600.0;
    s->battery_kw = -stored * 3600.0;
    s->charge_state = s->soc >= 95 && sim_soc_limit(s) > 99 ? SIM_CS_TOPOFF : SIM_CS_CHARGING;
    if (s->soc >= sim_soc_limit(s)) {
        s->soc = sim_soc_limit(s);
        sim_charge_stop(s, SIM_CS_DONE);
    }
}

/* ---- driving ------------------------------------------------------------- */

static double segment_metres(int from)
{
    const waypoint_t *a = &route[from], *b = &route[(from + 1) % NPOINTS];
    double dy = (b->lat - a->lat) * 111320.0;
    double dx = (b->lon - a->lon) * 111320.0 * cos(a->lat * M_PI / 180.0);
    return sqrt(dx * dx + dy * dy);
}

static double segment_heading(int from)
{
    const waypoint_t *a = &route[from], *b = &route[(from + 1) % NPOINTS];
    double dy = b->lat - a->lat;
    double dx = (b->lon - a->lon) * cos(a->lat * M_PI / 180.0);
    double h = atan2(dx, dy) * 180.0 / M_PI;
    return h < 0 ? h + 360.0 : h;
}

static void place_on_route(ovms_sim_t *s)
{
    const waypoint_t *a = &route[s->waypoint], *b = &route[(s->waypoint + 1) % NPOINTS];
    double f = s->seg_done_m / segment_metres(s->waypoint);
    s->lat = a->lat + (b->lat - a->lat) * f;
    s->lon = a->lon + (b->lon - a->lon) * f;
    s->altitude = a->alt + (b->alt - a->alt) * f;
    s->heading = segment_heading(s->waypoint);
}

static void begin_trip(ovms_sim_t *s)
{
    if (s->phase == OVMS_SIM_CHARGING)
        sim_charge_stop(s, SIM_CS_STOPPED);
    s->plugged = 0;
    s->charge_state = SIM_CS_STOPPED;
    s->locked = 0;
    s->phase = OVMS_SIM_DRIVING;
    s->laps_left = 1 + (int)uniform(s, 0, 2);
    s->trip_km = 0;
    s->trip_kwh_used = s->trip_kwh_recovered = 0;
    s->trip_start_soc = s->soc;
    s->trip_start_lat = s->lat;
    s->trip_start_lon = s->lon;
    s->trip_started = s->ticks;
    s->trip_started_wall = real_wall(s);
}

static void end_trip(ovms_sim_t *s)
{
    char data[200];
    int64_t secs = s->ticks - s->trip_started;
    snprintf(data, sizeof data, "%lld,%lld,%.1f,%.1f,%.1f,%.3f,%.3f,%.0f,%.6f,%.6f,%.6f,%.6f",
             (long long)s->trip_started_wall, (long long)secs, s->trip_km, s->trip_start_soc,
             s->soc, s->trip_kwh_used, s->trip_kwh_recovered,
             secs > 0 ? s->trip_km / ((double)secs / 3600.0) : 0.0, s->trip_start_lat,
             s->trip_start_lon, s->lat, s->lon);
    add_record(s, "*-LOG-Trip", data);
    s->trips++;
    s->speed = 0;
    s->battery_kw = 0;
    s->locked = 1;                           /* the owner locks it at home */
    s->phase = OVMS_SIM_PARKED;
    s->parked_since = s->ticks;
    s->phase_left = (int64_t)uniform(s, 1800, 3 * 3600);
    if (s->soc < HOME_PLUG_BELOW) {
        s->plugged = 1;
        sim_charge_start(s);
    }
}

static void drive_tick(ovms_sim_t *s)
{
    double target = route[s->waypoint].kmh + uniform(s, -6, 6);
    double before = s->speed;
    /* about 1.5 m/s2 either way */
    if (s->speed < target)
        s->speed = fmin(target, s->speed + 5.4);
    else
        s->speed = fmax(target, s->speed - 5.4);
    if (s->speed < 0)
        s->speed = 0;

    double metres = s->speed / 3.6;
    double kw = s->speed * KWH_PER_KM + AUX_KW + (s->climate ? CLIMATE_KW : 0);
    if (s->speed > before)
        kw += (s->speed - before) * 1.2;     /* accelerating */
    double regen = s->speed < before ? (before - s->speed) * 0.9 / 3600.0 : 0;
    s->battery_kw = kw - regen * 3600.0;
    s->trip_kwh_used += kw / 3600.0;
    s->trip_kwh_recovered += regen;
    s->soc -= (kw / 3600.0 - regen) / s->capacity_kwh * 100.0;
    if (s->soc < 0)
        s->soc = 0;
    s->trip_km += metres / 1000.0;
    s->odometer_km += metres / 1000.0;

    s->seg_done_m += metres;
    while (s->seg_done_m >= segment_metres(s->waypoint)) {
        s->seg_done_m -= segment_metres(s->waypoint);
        s->waypoint = (s->waypoint + 1) % NPOINTS;
        if (s->waypoint == 0 && --s->laps_left == 0) {
            s->seg_done_m = 0;
            place_on_route(s);
            end_trip(s);
            return;
        }
    }
    place_on_route(s);
}

/* ---- body and climate ------------------------------------------------------ */

/* Toward target with a time constant of tau seconds (one tick). */
static double approach(double v, double target, double tau)
{
    return v + (target - v) / tau;
}

static void thermal_tick(ovms_sim_t *s)
{
    double hour = (double)minute_of_day(s) / 60.0;
    /* a mild day: 6 C before dawn, 16 C mid-afternoon */
    s->ambient = 11.0 + 5.0 * sin((hour - 9.0) / 24.0 * 2 * M_PI);
    int driving = s->phase == OVMS_SIM_DRIVING;
    int charging = s->phase == OVMS_SIM_CHARGING && s->charge_kw > 0;
    s->cabin = approach(s->cabin, s->climate ? 21.0 : s->ambient + (driving ? 4 : 0), 600);
    double batt = s->ambient + (driving ? 8 : charging ? 6 : 0);
    if (s->cooldown_until > s->ticks)
        batt = fmin(batt, 15.0);
    s->battery_temp = approach(s->battery_temp, batt, 1800);
    s->motor_temp = approach(s->motor_temp, s->ambient + (driving ? 10 + s->speed * 0.4 : 0), 300);
    s->pem_temp = approach(s->pem_temp, s->ambient + (driving ? 8 + s->speed * 0.3 : 0), 300);
    s->charger_temp = approach(s->charger_temp, s->ambient + (charging ? 18 : 0), 600);
    s->v12 = approach(s->v12, driving || charging ? 14.2 : 12.6, 60);
    for (int i = 0; i < 4; i++) {
        s->tyre_temp[i] = approach(s->tyre_temp[i], s->ambient + (driving ? 6 + s->speed * 0.1 : 0), 900);
        /* pressure follows absolute temperature (set cold at 15 C) */
        s->tyre_kpa[i] = s->tyre_base_kpa[i] * (273.15 + s->tyre_temp[i]) / (273.15 + 15.0);
    }
}

static void parked_tick(ovms_sim_t *s)
{
    s->battery_kw = AUX_KW / 10 + (s->climate ? CLIMATE_KW : 0);
    if (s->climate)
        s->soc -= s->battery_kw / 3600.0 / s->capacity_kwh * 100.0;
    if (--s->phase_left > 0)
        return;
    if (s->soc > 25 && !s->valet)
        begin_trip(s);
    else
        s->phase_left = 3600;                /* stays home */
}

static void tick(ovms_sim_t *s)
{
    switch (s->phase) {
    case OVMS_SIM_DRIVING: drive_tick(s); break;
    case OVMS_SIM_CHARGING: charge_tick(s); break;
    default: parked_tick(s); break;
    }
    thermal_tick(s);
    s->ticks++;
}

void sim_step(void *self, uint64_t now_ms)
{
    ovms_sim_t *s = self;
    if (now_ms < s->started_ms)
        return;
    int64_t target = (int64_t)((double)(now_ms - s->started_ms) * s->time_scale / 1000.0);
    if (target - s->ticks > MAX_CATCHUP)
        s->ticks = target - MAX_CATCHUP;
    while (s->ticks < target)
        tick(s);
}

void ovms_sim_init(ovms_sim_t *s, uint64_t seed, double time_scale, int64_t wall_now,
                   uint64_t now_ms)
{
    memset(s, 0, sizeof *s);
    s->ops = (ovms_fw_vehicle_t){ .self = s, .step = sim_step, .report = sim_report,
                                  .command = sim_command, .next_record = sim_next_record,
                                  .status = sim_status };
    s->rng = seed * 0x9E3779B97F4A7C15ull + 0x243F6A8885A308D3ull;
    if (!s->rng)
        s->rng = 1;
    s->time_scale = time_scale > 0 ? time_scale : 1.0;
    s->started_ms = now_ms;
    s->wall0 = wall_now;
    snprintf(s->vin, sizeof s->vin, "OVMSSIM%010llu",
             (unsigned long long)(next_random(s) % 10000000000ull));
    snprintf(s->pin, sizeof s->pin, "%s", SIM_PIN_DEFAULT);
    s->capacity_kwh = 40.0;
    s->soh = uniform(s, 90, 99);
    s->soc = uniform(s, 55, 90);
    s->odometer_km = uniform(s, 5000, 60000);
    s->charge_mode = 0;
    s->charge_limit_a = 32;
    s->charge_state = SIM_CS_STOPPED;
    s->timer_start = 0;
    s->grid_kwh_total = s->odometer_km * 0.17;
    s->locked = 1;
    s->phase = OVMS_SIM_PARKED;
    s->phase_left = (int64_t)uniform(s, 30, 180);   /* so that a demo moves soon */
    s->waypoint = 0;
    place_on_route(s);
    thermal_tick(s);
    s->cabin = s->battery_temp = s->motor_temp = s->pem_temp = s->charger_temp = s->ambient;
    s->v12 = 12.6;
    for (int i = 0; i < 4; i++) {
        s->tyre_base_kpa[i] = uniform(s, 236, 252);
        s->tyre_temp[i] = s->ambient;
    }
    thermal_tick(s);
}
