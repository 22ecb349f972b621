/*
 * sim_report.c -- what the simulated car reports: every field of F V S D L
 * W Y in the form V3 firmware sends (decimals where V3 has them, kilometres,
 * km/h, kPa in Y and psi in W), and a one-screen status for text command
 * "stat" and for charge alerts.
 * Threading: the caller's.
 */
#include "fw_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define N(v, dp) OVMS_NUM((v), (dp))
#define S(text) ovms_str_c(text)

static void report_state(const ovms_sim_t *s, ovms_state_t *st)
{
    int charging = s->phase == OVMS_SIM_CHARGING && s->charge_kw > 0;
    double amps = charging ? s->charge_kw * 1000.0 / SIM_LINE_VOLTAGE : 0;
    double limit = sim_soc_limit(s);
    double mins_full = charging ? (100 - s->soc) / 100 * s->capacity_kwh / s->charge_kw * 60 : 0;
    double mins_limit = charging ? (limit - s->soc) / 100 * s->capacity_kwh / s->charge_kw * 60 : 0;
    double pack_v = 340 + s->soc * 0.6;

    st->nfields = 42;
    st->soc = N(s->soc, 1);
    st->units = S("K");
    st->line_voltage = N(s->plugged ? SIM_LINE_VOLTAGE : 0, 0);
    st->charge_current = N(amps, 2);
    st->charge_state = S(sim_charge_state_name(s->charge_state));
    st->charge_mode = S(sim_charge_mode_name(s->charge_mode));
    st->ideal_range = N(floor(sim_ideal_range(s)), 0);
    st->est_range = N(floor(sim_est_range(s)), 0);
    st->charge_limit = N(s->charge_limit_a, 0);
    st->charge_duration = N(s->phase == OVMS_SIM_CHARGING ? (double)(s->ticks - s->charge_started) : 0, 0);
    st->charger_b4 = N(0, 0);
    st->charge_kwh = N(floor(s->charge_kwh * 10), 0);
    st->charge_substate = N(s->timer_mode ? 3 : 0, 0);
    st->charge_state_n = N(s->charge_state, 0);      /* SIM_CS_* use the protocol's numbers */
    st->charge_mode_n = N(s->charge_mode, 0);
    st->timer_mode = N(s->timer_mode, 0);
    st->timer_start = N(s->timer_start, 0);
    st->timer_stale = N(1, 0);
    st->cac = N(s->capacity_kwh * 1000 / 360 * s->soh / 100, 2);
    st->acc_mins_full = N(floor(mins_full), 0);
    st->acc_mins_limit = N(floor(mins_limit), 0);
    st->acc_range_limit = N(0, 0);
    st->acc_soc_limit = N(limit, 0);
    st->cooldown_active = N(s->cooldown_until > s->ticks ? 0 : -1, 0);
    st->cooldown_temp_limit = N(15, 0);
    st->cooldown_time_limit = N(15, 0);
    st->charge_estimate = N(floor(mins_full), 0);
    st->mins_range_limit = N(-1, 0);
    st->mins_soc_limit = N(floor(mins_limit), 0);
    st->max_ideal_range = N(floor(s->capacity_kwh * s->soh / 100 / 0.125), 0);
    st->charge_type = S(s->plugged ? "type2" : "undefined");
    st->charge_power = N(charging ? s->charge_kw * 0.92 : 0, 2);
    st->battery_voltage = N(pack_v, 2);
    st->soh = N(s->soh, 2);
    st->charge_power_input = N(charging ? s->charge_kw : 0, 2);
    st->charger_efficiency = N(charging ? 92 : 0, 2);
    st->battery_current = N(s->battery_kw * 1000 / pack_v, 2);
    st->range_speed = N(charging ? s->charge_kw * 0.92 / 0.125 : 0, 1);
    st->grid_kwh = N(s->grid_kwh, 1);
    st->grid_kwh_total = N(s->grid_kwh_total, 1);
    st->usable_kwh = N(s->capacity_kwh * s->soh / 100 * s->soc / 100, 1);
    st->charge_timestamp = N(s->phase == OVMS_SIM_CHARGING ? (double)s->charge_started_wall : -1, 0);
}

static void report_environment(const ovms_sim_t *s, ovms_environment_t *e)
{
    int driving = s->phase == OVMS_SIM_DRIVING;
    int charging = s->phase == OVMS_SIM_CHARGING && s->charge_kw > 0;
    int d1 = (s->plugged ? 0x04 | 0x08 : 0) | (charging ? 0x10 : 0) | (driving ? 0x80 : 0x40);
    int d2 = (s->locked ? 0x08 : 0) | (s->valet ? 0x10 : 0);
    int d5 = (driving || charging ? 0x10 : 0) | (s->climate ? 0x80 : 0);

    e->nfields = 21;
    e->doors1 = N(d1, 0);
    e->doors2 = N(d2, 0);
    e->lock_state = N(s->locked ? 4 : 5, 0);
    e->pem_temp = N(s->pem_temp, 1);
    e->motor_temp = N(s->motor_temp, 1);
    e->battery_temp = N(s->battery_temp, 1);
    e->trip = N(floor(s->trip_km * 10), 0);
    e->odometer = N(floor(s->odometer_km * 10), 0);
    e->speed = N(floor(s->speed), 0);
    e->parking_time = N(driving ? 0 : (double)(s->ticks - s->parked_since), 0);
    e->ambient_temp = N(s->ambient, 1);
    e->doors3 = N(driving || charging ? 0x01 : 0, 0);
    e->stale_temps = N(1, 0);
    e->stale_ambient = N(1, 0);
    e->v12_line = N(s->v12, 2);
    e->doors4 = N(0, 0);
    e->v12_ref = N(12.6, 2);
    e->doors5 = N(d5, 0);
    e->charger_temp = N(s->charger_temp, 1);
    e->v12_current = N(driving || charging ? 1.8 : 0.3, 2);
    e->cabin_temp = N(s->cabin, 1);
}

static void report_location(const ovms_sim_t *s, ovms_location_t *l)
{
    l->nfields = 19;
    l->latitude = N(s->lat, 6);
    l->longitude = N(s->lon, 6);
    l->direction = N(floor(s->heading), 0);
    l->altitude = N(floor(s->altitude), 0);
    l->gps_lock = N(1, 0);
    l->gps_stale = N(1, 0);
    l->speed = N(floor(s->speed), 0);
    l->trip = N(floor(s->trip_km * 10), 0);
    l->drive_mode = S("0");
    l->battery_power = N(s->battery_kw, 2);
    l->energy_used = N(s->trip_kwh_used, 3);
    l->energy_recovered = N(s->trip_kwh_recovered, 3);
    l->inverter_power = N(s->phase == OVMS_SIM_DRIVING ? s->battery_kw * 0.95 : 0, 2);
    l->inverter_efficiency = N(s->phase == OVMS_SIM_DRIVING ? 95 : 0, 1);
    l->gps_mode = S("AA");
    l->satellites = N(9, 0);
    l->hdop = N(0.9, 1);
    l->gps_speed = N(s->speed, 1);
    l->gps_signal = N(85, 0);
}

static void report_firmware(const ovms_sim_t *s, ovms_firmware_t *f)
{
    f->nfields = 10;
    f->version = S(OVMS_FW_VERSION);
    f->vin = S(s->vin);
    f->signal = N(-67, 0);
    f->can_write = S("sim");
    f->vehicle_type = S("SIM");
    f->provider = S("Simulated");
    f->service_km = N(floor(30000 - fmod(s->odometer_km, 30000)), 0);
    f->service_secs = N(-1, 0);
    f->hardware = S("OVMS simulated module");
    f->modem = S("none");
}

static void report_tpms(const ovms_sim_t *s, ovms_fw_report_t *r)
{
    /* our wheels are indexed FL FR RL RR; W wants FR RR FL RL in psi */
    static const char *const wheel[4] = { "FL", "FR", "RL", "RR" };
    static const int w_order[4] = { 1, 3, 0, 2 };
    ovms_tpms_t *y = &r->tpms;
    ovms_num_t *w = &r->tpmsw.fr_pressure;

    y->nwheels = 4;
    y->nsections = 4;
    for (int i = 0; i < 4; i++) {
        y->wheel[i] = S(wheel[i]);
        y->sec[OVMS_TPMS_PRESSURE].v[i] = N(s->tyre_kpa[i], 1);
        y->sec[OVMS_TPMS_TEMP].v[i] = N(s->tyre_temp[i], 1);
        y->sec[OVMS_TPMS_ALERT].v[i] = N(s->tyre_kpa[i] < 200 ? 2 : s->tyre_kpa[i] < 220 ? 1 : 0, 0);
    }
    y->sec[OVMS_TPMS_PRESSURE].n = y->sec[OVMS_TPMS_TEMP].n = y->sec[OVMS_TPMS_ALERT].n = 4;
    y->sec[OVMS_TPMS_PRESSURE].valid = y->sec[OVMS_TPMS_TEMP].valid = N(1, 0);
    y->sec[OVMS_TPMS_ALERT].valid = N(1, 0);
    y->sec[OVMS_TPMS_HEALTH].n = 0;
    y->sec[OVMS_TPMS_HEALTH].valid = N(-1, 0);

    r->tpmsw.nfields = 9;
    for (int k = 0; k < 4; k++) {
        int i = w_order[k];
        w[2 * k] = N(s->tyre_kpa[i] / 6.894757, 1);
        w[2 * k + 1] = N(s->tyre_temp[i], 1);
    }
    r->tpmsw.stale = N(1, 0);
}

static void report_caps(ovms_caps_t *c)
{
    static const uint16_t ranges[][2] = { { 1, 7 }, { 10, 12 }, { 15, 26 } };
    c->n = 3;
    for (int i = 0; i < 3; i++) {
        c->r[i].lo = ranges[i][0];
        c->r[i].hi = ranges[i][1];
    }
}

void sim_report(void *self, ovms_fw_report_t *out)
{
    const ovms_sim_t *s = self;
    report_firmware(s, &out->firmware);
    report_caps(&out->caps);
    report_state(s, &out->state);
    report_environment(s, &out->env);
    report_location(s, &out->location);
    report_tpms(s, out);
}

void sim_status(void *self, char *out, size_t cap)
{
    const ovms_sim_t *s = self;
    char doing[64];
    if (s->phase == OVMS_SIM_DRIVING)
        snprintf(doing, sizeof doing, "Driving %.0fkm/h", s->speed);
    else if (s->phase == OVMS_SIM_CHARGING && s->charge_state == SIM_CS_TIMERWAIT)
        snprintf(doing, sizeof doing, "Waiting for the charge timer");
    else if (s->phase == OVMS_SIM_CHARGING)
        snprintf(doing, sizeof doing, "Charging %.1fkW (%s)", s->charge_kw,
                 sim_charge_mode_name(s->charge_mode));
    else if (s->charge_state == SIM_CS_DONE)
        snprintf(doing, sizeof doing, "Charge done");
    else
        snprintf(doing, sizeof doing, "Not charging");
    snprintf(out, cap, "%s\nSOC: %.1f%%\nIdeal range: %.0fkm\nEst. range: %.0fkm\n"
             "ODO: %.1fkm\nCAC: %.1fAh\nSOH: %.0f%%\n%s%s",
             doing, s->soc, sim_ideal_range(s), sim_est_range(s), s->odometer_km,
             s->capacity_kwh * 1000 / 360 * s->soh / 100, s->soh,
             s->locked ? "Locked" : "Unlocked", s->valet ? ", valet mode" : "");
}
