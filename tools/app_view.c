/*
 * app_view.c -- car messages for people and for scripts.
 *
 * People get units (km or miles as the car reports, km/h, degrees C, kPa,
 * kW), words instead of bitmaps, and "12 min ago" instead of a count of
 * seconds. Scripts get JSON: every field of a known message under its
 * PROTOCOL.md name (generated from proto's field tables, so the two cannot
 * drift apart), numbers as numbers, and the raw payload alongside.
 */
#include "app.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* ---- the car as the app knows it ---------------------------------------------- */

void app_car_init(app_car_t *car)
{
    memset(car, 0, sizeof *car);
    car->age = -1;
}

static int is_car_data(char code)
{
    return code >= 'A' && code <= 'Z' && !strchr("ACETZ", code);
}

int app_car_update(app_car_t *car, const app_msg_t *m)
{
    unsigned char code = (unsigned char)m->code;
    int64_t n;
    if (code == 'Z' && ovms_count_parse(m->payload, &n) == 0) {
        car->connected = n > 0;
        return 0;
    }
    if (code == 'T' && ovms_count_parse(m->payload, &n) == 0) {
        car->age = n;
        car->age_at_ms = app_now_ms();
        return 0;
    }
    if (code >= 128 || !is_car_data((char)code))
        return 0;
    ovms_str_copy((ovms_str_t){ m->payload.ptr, m->payload.len < sizeof car->msg[0] - 1
                                                 ? m->payload.len : sizeof car->msg[0] - 1 },
                  car->msg[code], sizeof car->msg[0]);
    car->have[code] = 1;
    car->paranoid[code] = (uint8_t)(m->paranoid ? 1 + m->unreadable : 0);
    return 1;
}

/* The payload of a code if we have it and can read it. */
static int get(const app_car_t *car, char code, ovms_str_t *out)
{
    unsigned char c = (unsigned char)code;
    if (!car->have[c] || car->paranoid[c] == 2)
        return 0;
    *out = ovms_str_c(car->msg[c]);
    return 1;
}

static int64_t age_now(const app_car_t *car)
{
    if (car->age < 0)
        return -1;
    return car->age + (int64_t)((app_now_ms() - car->age_at_ms) / 1000);
}

/* ---- small formatting helpers ------------------------------------------------------ */

void app_ago(int64_t secs, char *out, size_t cap)
{
    if (secs < 0)
        snprintf(out, cap, "never");
    else if (secs < 60)
        snprintf(out, cap, "%lld s ago", (long long)secs);
    else if (secs < 3600)
        snprintf(out, cap, "%lld min ago", (long long)(secs / 60));
    else if (secs < 86400)
        snprintf(out, cap, "%lld h %lld min ago", (long long)(secs / 3600),
                 (long long)(secs % 3600 / 60));
    else
        snprintf(out, cap, "%lld days ago", (long long)(secs / 86400));
}

static void duration(int64_t secs, char *out, size_t cap)
{
    if (secs < 60)
        snprintf(out, cap, "%lld s", (long long)secs);
    else if (secs < 3600)
        snprintf(out, cap, "%lld min", (long long)(secs / 60));
    else
        snprintf(out, cap, "%lld h %lld min", (long long)(secs / 3600), (long long)(secs % 3600 / 60));
}

static int have(ovms_num_t n)
{
    return !ovms_num_empty(n);
}

static const char *dist_unit(const ovms_state_t *s)
{
    return s && s->units.len && s->units.ptr[0] == 'M' ? "miles" : "km";
}

static void print_label(FILE *out, const char *label)
{
    fprintf(out, "  %-10s", label);
}

/* ---- people: the status screen ------------------------------------------------------ */

static void show_battery(const ovms_state_t *s, FILE *out)
{
    print_label(out, "Battery");
    fprintf(out, "%.1f %%", s->soc.v);
    if (have(s->ideal_range))
        fprintf(out, ", ideal range %.0f %s", s->ideal_range.v, dist_unit(s));
    if (have(s->est_range))
        fprintf(out, ", estimated %.0f %s", s->est_range.v, dist_unit(s));
    if (s->nfields >= 34 && s->soh.v > 0)
        fprintf(out, ", health %.0f %%", s->soh.v);
    fputc('\n', out);
}

static void show_charge(const ovms_state_t *s, const ovms_environment_t *e, FILE *out)
{
    char state[32], mode[32], left[32];
    ovms_str_copy(s->charge_state, state, sizeof state);
    ovms_str_copy(s->charge_mode, mode, sizeof mode);
    int plugged = e && ((int)e->doors1.v & 0x04);
    print_label(out, "Charge");
    if (!strcmp(state, "charging") || !strcmp(state, "topoff")) {
        double kw = s->nfields >= 32 && s->charge_power.v > 0 ? s->charge_power.v
                                                              : s->line_voltage.v * s->charge_current.v / 1000;
        fprintf(out, "%s at %.1f kW (%.1f A of %.0f A, %s mode)", state, kw, s->charge_current.v,
                s->charge_limit.v, mode);
        if (have(s->acc_soc_limit) && s->acc_soc_limit.v > 0)
            fprintf(out, " to %.0f %%", s->acc_soc_limit.v);
        if (s->nfields >= 29 && s->mins_soc_limit.v > 0) {
            duration((int64_t)s->mins_soc_limit.v * 60, left, sizeof left);
            fprintf(out, ", %s left", left);
        }
        fprintf(out, ", %.1f kWh so far\n", s->charge_kwh.v / 10);
    } else if (!strcmp(state, "timerwait")) {
        fprintf(out, "plugged in, waiting for the charge timer (%s mode)\n", mode);
    } else if (!strcmp(state, "done")) {
        fprintf(out, "done (%s mode)%s\n", mode, plugged ? ", still plugged in" : "");
    } else {
        fprintf(out, "not charging%s (%s mode, %.0f A)\n", plugged ? ", plugged in" : "", mode,
                s->charge_limit.v);
    }
}

static void show_body(const ovms_environment_t *e, const ovms_state_t *s, FILE *out)
{
    int d1 = (int)e->doors1.v, d2 = (int)e->doors2.v, d5 = e->nfields >= 18 ? (int)e->doors5.v : 0;
    char parked[32];
    print_label(out, "Driving");
    if (e->speed.v > 0 || (d1 & 0x80))
        fprintf(out, "on, %.0f km/h, trip %.1f %s\n", e->speed.v, e->trip.v / 10, dist_unit(s));
    else if (e->parking_time.v > 0) {
        duration((int64_t)e->parking_time.v, parked, sizeof parked);
        fprintf(out, "parked for %s\n", parked);
    } else
        fprintf(out, "parked\n");
    print_label(out, "Odometer");
    fprintf(out, "%.1f %s\n", e->odometer.v / 10, dist_unit(s));
    print_label(out, "Doors");
    fprintf(out, "%s%s", (int)e->lock_state.v == 4 || (d2 & 0x08) ? "locked" : "unlocked",
            d2 & 0x10 ? ", valet mode" : "");
    const struct { int set; const char *what; } open[] = {
        { d1 & 0x01, "left door" }, { d1 & 0x02, "right door" }, { d5 & 0x01, "rear left door" },
        { d5 & 0x02, "rear right door" }, { d2 & 0x40, "bonnet" }, { d2 & 0x80, "boot" },
        { d5 & 0x04, "frunk" }, { d1 & 0x04, "charge port" },
    };
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++)
        if (open[i].set)
            fprintf(out, ", %s open", open[i].what);
    fputc('\n', out);
    print_label(out, "Temps");
    fprintf(out, "outside %.1f °C", e->ambient_temp.v);
    if (e->nfields >= 21 && have(e->cabin_temp))
        fprintf(out, ", cabin %.1f °C", e->cabin_temp.v);
    fprintf(out, ", battery %.1f °C, motor %.1f °C, inverter %.1f °C%s\n", e->battery_temp.v,
            e->motor_temp.v, e->pem_temp.v, d5 & 0x80 ? "; climate on" : "");
    print_label(out, "12 V");
    fprintf(out, "%.2f V\n", e->v12_line.v);
}

static void show_tyres(const app_car_t *car, FILE *out)
{
    ovms_str_t p;
    ovms_tpms_t y;
    ovms_tpmsw_t w;
    print_label(out, "Tyres");
    if (get(car, 'Y', &p) && ovms_tpms_parse(p, &y) == 0 && y.nwheels > 0) {
        for (int i = 0; i < y.nwheels; i++) {
            fprintf(out, "%s%.*s", i ? ", " : "", (int)y.wheel[i].len, y.wheel[i].ptr);
            if (i < y.sec[OVMS_TPMS_PRESSURE].n)
                fprintf(out, " %.0f kPa", y.sec[OVMS_TPMS_PRESSURE].v[i].v);
            if (i < y.sec[OVMS_TPMS_TEMP].n)
                fprintf(out, " %.0f °C", y.sec[OVMS_TPMS_TEMP].v[i].v);
            if (i < y.sec[OVMS_TPMS_ALERT].n && y.sec[OVMS_TPMS_ALERT].v[i].v > 0)
                fprintf(out, " (%s)", y.sec[OVMS_TPMS_ALERT].v[i].v > 1 ? "ALERT" : "warning");
        }
        fputc('\n', out);
    } else if (get(car, 'W', &p) && ovms_tpmsw_parse(p, &w) == 0) {
        fprintf(out, "FR %.1f psi, RR %.1f psi, FL %.1f psi, RL %.1f psi\n", w.fr_pressure.v,
                w.rr_pressure.v, w.fl_pressure.v, w.rl_pressure.v);
    } else {
        fprintf(out, "no data\n");
    }
}

static void show_location_line(const ovms_location_t *l, FILE *out)
{
    print_label(out, "Location");
    fprintf(out, "%.6f, %.6f", l->latitude.v, l->longitude.v);
    if (have(l->altitude))
        fprintf(out, ", altitude %.0f m", l->altitude.v);
    if (have(l->direction))
        fprintf(out, ", heading %.0f°", l->direction.v);
    if (have(l->gps_lock) && l->gps_lock.v == 0)
        fprintf(out, " (no GPS lock)");
    fputc('\n', out);
    print_label(out, "");
    fprintf(out, "https://www.openstreetmap.org/?mlat=%.6f&mlon=%.6f#map=16/%.6f/%.6f\n",
            l->latitude.v, l->longitude.v, l->latitude.v, l->longitude.v);
}

static void show_header(const app_car_t *car, const char *vehicle, FILE *out)
{
    char ago[48];
    app_ago(age_now(car), ago, sizeof ago);
    fprintf(out, "%s: car %s, last update %s\n", vehicle,
            car->connected ? "connected" : "not connected", ago);
}

static void show_paranoid_note(const app_car_t *car, FILE *out)
{
    int locked = 0;
    for (int c = 0; c < 128; c++)
        locked |= car->paranoid[c] == 2;
    if (locked)
        fprintf(out, "  (some data is paranoid-encrypted: give --paranoid with the module password)\n");
}

void app_show_status(const app_car_t *car, const char *vehicle, FILE *out)
{
    ovms_str_t p;
    ovms_state_t s;
    ovms_environment_t e;
    ovms_location_t l;
    ovms_firmware_t f;
    int has_s = get(car, 'S', &p) && ovms_state_parse(p, &s) == 0;
    int has_e = get(car, 'D', &p) && ovms_environment_parse(p, &e) == 0;

    show_header(car, vehicle, out);
    if (has_s) {
        show_battery(&s, out);
        show_charge(&s, has_e ? &e : NULL, out);
    }
    if (has_e)
        show_body(&e, has_s ? &s : NULL, out);
    if (get(car, 'Y', &p) || get(car, 'W', &p))
        show_tyres(car, out);
    if (get(car, 'L', &p) && ovms_location_parse(p, &l) == 0)
        show_location_line(&l, out);
    if (get(car, 'F', &p) && ovms_firmware_parse(p, &f) == 0) {
        print_label(out, "Module");
        fprintf(out, "%.*s, VIN %.*s, vehicle type %.*s\n", (int)f.version.len, f.version.ptr,
                (int)f.vin.len, f.vin.ptr, (int)f.vehicle_type.len, f.vehicle_type.ptr);
    }
    if (!has_s && !has_e)
        fprintf(out, "  the server has nothing from this car yet\n");
    show_paranoid_note(car, out);
}

void app_show_location(const app_car_t *car, const char *vehicle, FILE *out)
{
    ovms_str_t p;
    ovms_location_t l;
    show_header(car, vehicle, out);
    if (!(get(car, 'L', &p) && ovms_location_parse(p, &l) == 0)) {
        fprintf(out, "  no location from this car yet\n");
        show_paranoid_note(car, out);
        return;
    }
    show_location_line(&l, out);
    if (l.nfields >= 7) {
        print_label(out, "Speed");
        fprintf(out, "%.0f km/h\n", l.speed.v);
    }
}

/* ---- people: one line per live message ----------------------------------------------- */

static void live_summary(const app_msg_t *m, FILE *out)
{
    ovms_state_t s;
    ovms_environment_t e;
    ovms_location_t l;
    ovms_firmware_t f;
    ovms_tpms_t y;
    ovms_tpmsw_t w;
    int64_t n;
    char state[32];

    switch (m->code) {
    case 'S':
        if (ovms_state_parse(m->payload, &s) < 0)
            break;
        ovms_str_copy(s.charge_state, state, sizeof state);
        fprintf(out, "battery %.1f %%, %s, range %.0f %s\n", s.soc.v, state, s.est_range.v,
                dist_unit(&s));
        return;
    case 'D':
        if (ovms_environment_parse(m->payload, &e) < 0)
            break;
        fprintf(out, "%s, %.0f km/h, odometer %.1f, outside %.1f °C\n",
                (int)e.lock_state.v == 4 ? "locked" : "unlocked", e.speed.v, e.odometer.v / 10,
                e.ambient_temp.v);
        return;
    case 'L':
        if (ovms_location_parse(m->payload, &l) < 0)
            break;
        fprintf(out, "at %.6f, %.6f heading %.0f°%s\n", l.latitude.v, l.longitude.v,
                l.direction.v, l.nfields >= 7 && l.speed.v > 0 ? ", moving" : "");
        return;
    case 'F':
        if (ovms_firmware_parse(m->payload, &f) < 0)
            break;
        fprintf(out, "module %.*s, VIN %.*s\n", (int)f.version.len, f.version.ptr, (int)f.vin.len,
                f.vin.ptr);
        return;
    case 'Y':
        if (ovms_tpms_parse(m->payload, &y) < 0)
            break;
        fprintf(out, "tyres");
        for (int i = 0; i < y.nwheels && i < y.sec[OVMS_TPMS_PRESSURE].n; i++)
            fprintf(out, "%s %.*s %.0f kPa", i ? "," : "", (int)y.wheel[i].len, y.wheel[i].ptr,
                    y.sec[OVMS_TPMS_PRESSURE].v[i].v);
        fputc('\n', out);
        return;
    case 'W':
        if (ovms_tpmsw_parse(m->payload, &w) < 0)
            break;
        fprintf(out, "tyres FR %.1f, RR %.1f, FL %.1f, RL %.1f psi\n", w.fr_pressure.v,
                w.rr_pressure.v, w.fl_pressure.v, w.rl_pressure.v);
        return;
    case 'V':
        fprintf(out, "supports commands %.*s\n", (int)m->payload.len, m->payload.ptr);
        return;
    case 'Z':
        if (ovms_count_parse(m->payload, &n) == 0) {
            fprintf(out, "car %s\n", n ? "connected" : "disconnected");
            return;
        }
        break;
    case 'P':
        if (m->payload.len >= 1) {
            fprintf(out, "%s: %.*s\n", m->payload.ptr[0] == 'A' ? "alert" : m->payload.ptr[0] == 'E'
                    ? "error" : "information", (int)m->payload.len - 1, m->payload.ptr + 1);
            return;
        }
        break;
    default:
        break;
    }
    fprintf(out, "%.*s\n", (int)m->payload.len, m->payload.ptr);
}

void app_show_live(const app_msg_t *m, FILE *out)
{
    char when[16];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%H:%M:%S", localtime(&t));
    fprintf(out, "%s  %c%s  ", when, m->code, m->paranoid ? "*" : " ");
    if (m->unreadable)
        fprintf(out, "(paranoid: give --paranoid with the module password)\n");
    else
        live_summary(m, out);
    fflush(out);
}

/* ---- scripts: JSON ------------------------------------------------------------------- */

static json_t *num_json(ovms_num_t n)
{
    if (ovms_num_empty(n))
        return json_null();
    return n.dp == 0 ? json_integer((json_int_t)n.v) : json_real(n.v);
}

static json_t *str_json(ovms_str_t s)
{
    return json_stringn(s.ptr, s.len);
}

#define J_NUM num_json
#define J_STR str_json
/* One function per field table: every field present, by its name. */
#define TABLE_JSON(fname, type, FIELDS)                                        \
    static json_t *fname(const type *in)                                        \
    {                                                                           \
        json_t *o = json_object();                                             \
        int i = 0;                                                              \
        FIELDS(TABLE_JSON_FIELD)                                                \
        if (in->extra.len)                                                      \
            json_object_set_new(o, "extra", str_json(in->extra));              \
        return o;                                                               \
    }
#define TABLE_JSON_FIELD(t, name)                                              \
    if (i++ < in->nfields)                                                      \
        json_object_set_new(o, #name, J_##t(in->name));

TABLE_JSON(state_json, ovms_state_t, OVMS_STATE_FIELDS)
TABLE_JSON(environment_json, ovms_environment_t, OVMS_ENVIRONMENT_FIELDS)
TABLE_JSON(location_json, ovms_location_t, OVMS_LOCATION_FIELDS)
TABLE_JSON(firmware_json, ovms_firmware_t, OVMS_FIRMWARE_FIELDS)
TABLE_JSON(tpmsw_json, ovms_tpmsw_t, OVMS_TPMSW_FIELDS)
TABLE_JSON(generator_json, ovms_generator_t, OVMS_GENERATOR_FIELDS)

static json_t *tpms_json(const ovms_tpms_t *y)
{
    static const char *const names[] = { "pressure_kpa", "temp_c", "health", "alert", "sensor" };
    json_t *o = json_object();
    for (int w = 0; w < y->nwheels; w++) {
        json_t *wheel = json_object();
        for (int s = 0; s < y->nsections; s++)
            if (w < y->sec[s].n)
                json_object_set_new(wheel, names[s], num_json(y->sec[s].v[w]));
        char name[16];
        ovms_str_copy(y->wheel[w], name, sizeof name);
        json_object_set_new(o, name, wheel);
    }
    return o;
}

/* The fields of a car message, or NULL when it is not one we know. */
static json_t *fields_json(char code, ovms_str_t p)
{
    union {
        ovms_state_t s;
        ovms_environment_t e;
        ovms_location_t l;
        ovms_firmware_t f;
        ovms_tpmsw_t w;
        ovms_tpms_t y;
        ovms_generator_t x;
    } u;
    switch (code) {
    case 'S': return ovms_state_parse(p, &u.s) == 0 ? state_json(&u.s) : NULL;
    case 'D': return ovms_environment_parse(p, &u.e) == 0 ? environment_json(&u.e) : NULL;
    case 'L': return ovms_location_parse(p, &u.l) == 0 ? location_json(&u.l) : NULL;
    case 'F': return ovms_firmware_parse(p, &u.f) == 0 ? firmware_json(&u.f) : NULL;
    case 'W': return ovms_tpmsw_parse(p, &u.w) == 0 ? tpmsw_json(&u.w) : NULL;
    case 'Y': return ovms_tpms_parse(p, &u.y) == 0 ? tpms_json(&u.y) : NULL;
    case 'X': return ovms_generator_parse(p, &u.x) == 0 ? generator_json(&u.x) : NULL;
    default: return NULL;
    }
}

/* A message's content: paranoid flag, payload, fields (or that it is unreadable). */
static json_t *message_body_json(const app_msg_t *m, json_t *o)
{
    json_object_set_new(o, "paranoid", json_boolean(m->paranoid));
    if (m->unreadable) {
        json_object_set_new(o, "readable", json_false());
        return o;
    }
    json_object_set_new(o, "payload", str_json(m->payload));
    json_t *f = fields_json(m->code, m->payload);
    if (f)
        json_object_set_new(o, "fields", f);
    return o;
}

json_t *app_json_message(const app_msg_t *m)
{
    char code[2] = { m->code, 0 };
    json_t *o = json_object();
    json_object_set_new(o, "time", json_integer((json_int_t)time(NULL)));
    json_object_set_new(o, "code", json_string(code));
    return message_body_json(m, o);
}

static json_t *header_json(const app_car_t *car, const char *vehicle)
{
    json_t *o = json_object();
    int64_t age = age_now(car);
    json_object_set_new(o, "vehicle", json_string(vehicle));
    json_object_set_new(o, "car_connected", json_boolean(car->connected));
    json_object_set_new(o, "last_update_secs", age < 0 ? json_null() : json_integer(age));
    json_object_set_new(o, "last_update", age < 0 ? json_null()
                                                  : json_integer((json_int_t)(time(NULL) - age)));
    return o;
}

json_t *app_json_status(const app_car_t *car, const char *vehicle)
{
    json_t *o = header_json(car, vehicle), *msgs = json_object();
    for (int c = 0; c < 128; c++) {
        if (!car->have[c])
            continue;
        app_msg_t m = { .code = (char)c, .payload = ovms_str_c(car->msg[c]),
                        .paranoid = car->paranoid[c] != 0, .unreadable = car->paranoid[c] == 2 };
        char code[2] = { (char)c, 0 };
        json_object_set_new(msgs, code, message_body_json(&m, json_object()));
    }
    json_object_set_new(o, "messages", msgs);
    return o;
}

json_t *app_json_location(const app_car_t *car, const char *vehicle)
{
    json_t *o = header_json(car, vehicle);
    ovms_str_t p;
    json_t *l = get(car, 'L', &p) ? fields_json('L', p) : NULL;
    json_object_set_new(o, "location", l ? l : json_null());
    return o;
}

void app_print_json(json_t *j, FILE *out)
{
    json_dumpf(j, out, JSON_COMPACT | JSON_REAL_PRECISION(12));
    fputc('\n', out);
    fflush(out);
    json_decref(j);
}
