/*
 * http_vehicle.c -- the vehicle read endpoints of HTTP-API.md §7.4-§7.8:
 * protocol, status, location, charge, tpms.
 *
 * They answer from the vehicle's stored messages as its home worker holds
 * them: its hub cache, loaded from the store with the messages not yet
 * written on top (hub_with_cache), so an answer never lags the car by the
 * write-behind interval. The request's worker checks ownership from the
 * store's memory, sends a call to the home worker, which copies what the
 * endpoint needs and sends it back; the JSON is built on the request's
 * worker.
 *
 * A polled vehicle's answer is kept (a memo per worker thread, by vehicle
 * and endpoint) with the cache generation and the second it was made in:
 * the call then carries them, the home worker finds its cache unchanged in
 * the same second and sends nothing back, and the request's worker answers
 * the same bytes again without building any JSON. An answer depends only
 * on the cache and the current second (the ages), so it is the same.
 *
 * Values follow §5: message fields are strings as the car sent them (a
 * field past the end, or an empty one followed only by empty ones, is
 * null: Perl's split), computed values (ages, bit tests, psi) are numbers,
 * and bit tests give the masked value.
 */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIELDS_MAX 64

typedef struct msg_copy {
    char code;
    uint8_t paranoid;
    char *payload;
    char ptoken[65];
    int64_t received;
} msg_copy_t;

typedef struct vehicle_call vehicle_call_t;
struct vehicle_call {
    call_t call;
    worker_t *origin;
    api_req_t *a;                    /* touched on origin only */
    void (*finish)(vehicle_call_t *k);
    char id[33];
    uint64_t identity;
    int at_home_done;
    int gone;                        /* the vehicle changed on the way */
    enum { CALL_READ, CALL_REGISTER, CALL_UNREGISTER } op;
    char key[72];                    /* of the HTTP app entry (hub_http.c) */
    uint32_t lifetime;               /* of an entry without a session, seconds */
    int car, apps, batch, first;     /* connections, after the entry changed */
    uint32_t want_gen;               /* the memo's: 0 none */
    int64_t want_sec;
    int unchanged;                   /* the cache is the memo's, in its second: nothing copied */
    uint32_t gen;                    /* the cache generation copied */
    int memo_ok;                     /* its answer depends on the cache and the second only */
    int nmsgs;
    msg_copy_t msgs[64];             /* one per code: a vehicle stores few */
};

static void free_call(vehicle_call_t *k)
{
    for (int i = 0; i < k->nmsgs; i++)
        free(k->msgs[i].payload);
    free(k);
}

/* ---- the memo ---------------------------------------------------------------------------------------------------- */

#define MEMO_SLOTS 256

typedef struct memo {
    char id[33];
    void (*finish)(vehicle_call_t *k);
    uint32_t gen;
    int64_t sec;
    char *body;
    size_t len;
} memo_t;

static __thread memo_t memos[MEMO_SLOTS];

static memo_t *memo_slot(const char *id, void (*finish)(vehicle_call_t *k))
{
    uint64_t h = (uint64_t)(uintptr_t)finish;
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211u;
    return &memos[h % MEMO_SLOTS];
}

static memo_t *memo_find(const vehicle_call_t *k)
{
    memo_t *m = memo_slot(k->id, k->finish);
    return m->body && m->finish == k->finish && !strcmp(m->id, k->id) ? m : NULL;
}

void http_memo_free(void)
{
    for (int i = 0; i < MEMO_SLOTS; i++) {
        free(memos[i].body);
        memos[i].body = NULL;
    }
}

/* ---- the trip to the home worker -------------------------------------------------------------------- */

static void post_or_run(worker_t *here, worker_t *to, vehicle_call_t *k);

static void count(vehicle_t *v, vehicle_call_t *k)
{
    k->car = hub_car_anywhere(v);
    k->apps = hub_apps_total(v);
    link_each(pos, &v->clients)
        k->batch += container_of(pos, conn_t, vlink)->role == 'B';
}

static void copy_now(vehicle_t *v, void *arg)
{
    vehicle_call_t *k = arg;
    count(v, k);
    k->gen = v->cache_gen;
    if (k->want_gen && k->want_gen == v->cache_gen && k->want_sec == wall_now()) {
        k->unchanged = 1;
        k->at_home_done = 1;
        post_or_run(v->w, k->origin, k);
        return;
    }
    for (int i = 0; i < v->ncache && k->nmsgs < (int)(sizeof k->msgs / sizeof k->msgs[0]); i++) {
        const cached_msg_t *e = &v->cache[i];
        msg_copy_t *m = &k->msgs[k->nmsgs];
        if (!(m->payload = strdup(e->payload)))
            continue;
        m->code = e->code;
        m->paranoid = e->paranoid;
        snprintf(m->ptoken, sizeof m->ptoken, "%s", e->ptoken);
        m->received = e->received;
        k->nmsgs++;
    }
    k->at_home_done = 1;
    post_or_run(v->w, k->origin, k);
}

/* A new app entry starts the watch of a vehicle: its counts once the other
 * nodes' states are known (where the car is). */
static void copy_cache(vehicle_t *v, void *arg)
{
    vehicle_call_t *k = arg;
    if (k->op == CALL_REGISTER) {
        hub_http_app_add(v, k->key, k->lifetime ? worker_now(v->w) + k->lifetime : 0, &k->first);
        nodebus_when_states_known(v, copy_now, k);
        return;
    }
    copy_now(v, k);
}

static void vehicle_call_go(vehicle_call_t *k);

/* Back with "unchanged": the memo's bytes, if the slot still holds them. */
static void memo_answer(vehicle_call_t *k)
{
    memo_t *m = memo_find(k);
    if (!m || m->gen != k->want_gen || m->sec != k->want_sec) {
        k->want_gen = 0;             /* another vehicle took the slot meanwhile: ask again */
        k->unchanged = k->at_home_done = 0;
        vehicle_call_go(k);
        return;
    }
    api_json_body(k->a, 200, "Ok", m->body, m->len, NULL);
    api_done(k->a);
    free_call(k);
}

static void call_run(worker_t *w, call_t *m)
{
    vehicle_call_t *k = (vehicle_call_t *)m;
    if (!w) {
        free_call(k);                /* a worker stopped: the node is going down */
        return;
    }
    if (k->at_home_done) {           /* back where the request is */
        if (k->unchanged && !k->gone && !k->a->c->closing) {
            memo_answer(k);
            return;
        }
        k->finish(k);
        free_call(k);
        return;
    }
    vehicle_t *v = hub_get(w, k->id, k->identity);
    if (!v) {
        k->gone = 1;
        k->at_home_done = 1;
        post_or_run(w, k->origin, k);
        return;
    }
    hub_ref(v);                      /* an entry made for us goes again after */
    if (k->op == CALL_UNREGISTER) {
        hub_http_app_remove(v, k->key);
        count(v, k);
        k->at_home_done = 1;
        post_or_run(w, k->origin, k);
    } else {
        hub_with_cache(v, copy_cache, k);
    }
    hub_unref(v);
}

static void post_or_run(worker_t *here, worker_t *to, vehicle_call_t *k)
{
    if (to == here) {
        call_run(here, &k->call);
        return;
    }
    if (worker_post(to, &k->call.mail) < 0)
        mail_dispose(here->srv, &k->call.mail);
}

/* The caller's vehicle <V> (upper-cased, §3.5) into rec, or 0 after a 403 (§2.3). */
static int owned_vehicle(api_req_t *a, ovms_vehicle_t *rec)
{
    server_t *srv = a->c->w->srv;
    char id[33];
    ovms_owner_t owner;
    if (ovms_vehicleid_normalize(ovms_str_c(a->args[0]), id, sizeof id) < 0 ||
        ovms_store_vehicle_get(srv->store, id, rec) < 0 ||
        ovms_store_owner_get(srv->store, a->who.owner, &owner) < 0 || rec->owner != owner.id) {
        api_text(a, 403, "Forbidden", "Forbidden\n");
        api_done(a);
        return 0;
    }
    return 1;
}

static vehicle_call_t *vehicle_call_new(api_req_t *a, void (*finish)(vehicle_call_t *k), ovms_vehicle_t *rec)
{
    if (!owned_vehicle(a, rec))
        return NULL;
    vehicle_call_t *k = calloc(1, sizeof *k);
    if (!k) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        api_done(a);
        return NULL;
    }
    k->call.mail.type = MAIL_CALL;
    k->call.run = call_run;
    k->origin = a->c->w;
    k->a = a;
    k->finish = finish;
    snprintf(k->id, sizeof k->id, "%s", rec->id);
    k->identity = ovms_store_vehicle_identity(rec);
    return k;
}

static void vehicle_call_go(vehicle_call_t *k)
{
    worker_t *w = k->a->c->w, *home = worker_home(w->srv, k->id);
    memo_t *m = k->op == CALL_READ && k->memo_ok ? memo_find(k) : NULL;
    if (m && m->sec == wall_now()) {
        k->want_gen = m->gen;
        k->want_sec = m->sec;
    }
    http_conn_prefer(k->a->c, home);
    post_or_run(w, home, k);
}

/* keep: the answer depends on the cache and the second only, so finish_with keeps it (the memo). */
static void vehicle_call_kept(api_req_t *a, void (*finish)(vehicle_call_t *k), int keep)
{
    ovms_vehicle_t rec;
    vehicle_call_t *k = vehicle_call_new(a, finish, &rec);
    if (k) {
        k->memo_ok = keep;
        vehicle_call_go(k);
    }
}

static void vehicle_call(api_req_t *a, void (*finish)(vehicle_call_t *k))
{
    vehicle_call_kept(a, finish, 0);
}

static void memo_call(api_req_t *a, void (*finish)(vehicle_call_t *k))
{
    vehicle_call_kept(a, finish, 1);
}

/* ---- values ---------------------------------------------------------------------------------------------- */

typedef struct fields {
    int n;
    const char *at[FIELDS_MAX];
    size_t len[FIELDS_MAX];
} fields_t;

/* Split at every comma; trailing empty fields dropped, as Perl's split does. */
static void split(const char *payload, fields_t *f)
{
    const char *p = payload;
    f->n = 0;
    while (f->n < FIELDS_MAX) {
        const char *comma = strchr(p, ',');
        f->at[f->n] = p;
        f->len[f->n] = comma ? (size_t)(comma - p) : strlen(p);
        f->n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    while (f->n > 0 && f->len[f->n - 1] == 0)
        f->n--;
}

/* Bytes as a JSON string: as they are when UTF-8, else each byte a Latin-1 character. */
static json_t *bytes_string(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    char *u = malloc(len * 2 + 1);
    size_t n = 0;
    if (!u)
        return json_null();
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80) {
            u[n++] = (char)ch;
        } else {
            u[n++] = (char)(0xc0 | (ch >> 6));
            u[n++] = (char)(0x80 | (ch & 0x3f));
        }
    }
    j = json_stringn(u, n);
    free(u);
    return j ? j : json_null();
}

/* Field i (1-based) as a string, or null past the end. */
static json_t *field(const fields_t *f, int i)
{
    return i <= f->n ? bytes_string(f->at[i - 1], f->len[i - 1]) : json_null();
}

/* Field i in Perl's numeric context, masked: the masked value (0 when missing). */
static json_t *field_bits(const fields_t *f, int i, unsigned mask)
{
    long long v = 0;
    if (i <= f->n && f->len[i - 1]) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.*s", (int)(f->len[i - 1] < 31 ? f->len[i - 1] : 31), f->at[i - 1]);
        v = strtoll(buf, NULL, 10);
    }
    return json_integer((json_int_t)((unsigned long long)v & mask));
}

static void msg_times(json_t *o, const msg_copy_t *m, char letter)
{
    char key[32], when[32];
    time_t t = (time_t)m->received;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    int64_t age = wall_now() - m->received;
    snprintf(key, sizeof key, "m_msgtime_%c", letter);
    json_object_set_new(o, key, json_string(when));
    snprintf(key, sizeof key, "m_msgage_%c", letter);
    json_object_set_new(o, key, json_integer(age > 0 ? age : 0));
}

static const msg_copy_t *find(const vehicle_call_t *k, char code)
{
    for (int i = 0; i < k->nmsgs; i++)
        if (k->msgs[i].code == code)
            return &k->msgs[i];
    return NULL;
}

/* A key from field `field` of a message: a string, or (mask != 0) a bit test. */
typedef struct key_of {
    const char *key;
    int field;
    unsigned mask;
} key_of_t;

static void put_keys(json_t *o, const fields_t *f, const key_of_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, keys[i].key, keys[i].mask ? field_bits(f, keys[i].field, keys[i].mask)
                                                         : field(f, keys[i].field));
}

#define NKEYS(k) (sizeof(k) / sizeof((k)[0]))

/* Common endings: gone, not there, paranoid. 1 when the answer was given. */
static int answered_early(vehicle_call_t *k, const msg_copy_t *primary)
{
    api_req_t *a = k->a;
    if (a->c->closing)
        return 1;
    if (k->gone) {
        api_text(a, 403, "Forbidden", "Forbidden\n");
        return 1;
    }
    if (primary && primary->paranoid) {
        api_text(a, 502, "Bad Gateway", "Paranoid vehicles not supported by api\n");
        return 1;
    }
    return 0;
}

/* The JSON answer (takes o), kept for the next poll of the same cache and second. */
static void finish_with(vehicle_call_t *k, json_t *o)
{
    size_t len = 0;
    char *body = api_json_text(o, 0, &len);
    if (!body) {
        api_text(k->a, 500, "Internal Server Error", "Internal error\n");
        return;
    }
    api_json_body(k->a, 200, "Ok", body, len, NULL);
    if (!k->memo_ok) {
        free(body);
        return;
    }
    memo_t *m = memo_slot(k->id, k->finish);
    free(m->body);
    snprintf(m->id, sizeof m->id, "%s", k->id);
    m->finish = k->finish;
    m->gen = k->gen;
    m->sec = wall_now();
    m->body = body;
    m->len = len;
}

/* ---- /api/vehicle (§7.2, §7.3): the caller as an app connection ---------------------------------------------- */

/* A session's entry, or the owner's one for calls without a cookie (which expires). */
static void entry_key(vehicle_call_t *k, const api_req_t *a)
{
    if (a->who.session[0]) {
        snprintf(k->key, sizeof k->key, "s:%s", a->who.session);
    } else {
        snprintf(k->key, sizeof k->key, "o:%s", a->who.owner);
        k->lifetime = (uint32_t)a->c->w->cfg->timeout_api;
    }
}

static void vehicle_answer(vehicle_call_t *k)
{
    if (!answered_early(k, NULL)) {
        json_t *o = json_pack("{s:i,s:i,s:i,s:i}", "v_net_connected", k->car, "v_apps_connected", k->apps,
                              "v_btcs_connected", k->batch, "v_first_peer", k->first);
        const msg_copy_t *s = find(k, 'S');
        if (o && s)
            msg_times(o, s, 's');
        finish_with(k, o);
    }
    api_done(k->a);
}


static void disconnect_answer(vehicle_call_t *k)
{
    if (!answered_early(k, NULL))       /* JSON type, plain body: as the reference (F11) */
        http_respond(k->a->c, 200, "Ok", "application/json", "Access-Control-Allow-Origin: *\r\n",
                     "Disconnect OK\n", 14);
    api_done(k->a);
}

/* The caller's app entry made or removed on the home worker, then finish. */
static void entry_call(api_req_t *a, void (*finish)(vehicle_call_t *k), int op)
{
    ovms_vehicle_t rec;
    vehicle_call_t *k = vehicle_call_new(a, finish, &rec);
    if (!k)
        return;
    k->op = op;
    entry_key(k, a);
    vehicle_call_go(k);
}

void api_vehicle_get(api_req_t *a)
{
    entry_call(a, vehicle_answer, CALL_REGISTER);
}

void api_vehicle_delete(api_req_t *a)
{
    entry_call(a, disconnect_answer, CALL_UNREGISTER);
}

/* ---- /api/protocol (§7.4) ----------------------------------------------------------------------------------- */

static int protocol_rank(char code)
{
    return code == 'F' ? -2 : code == 'S' ? -1 : (unsigned char)code;
}

static int by_protocol_order(const void *x, const void *y)
{
    return protocol_rank(((const msg_copy_t *)x)->code) - protocol_rank(((const msg_copy_t *)y)->code);
}

static void protocol_answer(vehicle_call_t *k)
{
    if (!answered_early(k, NULL)) {
        qsort(k->msgs, (size_t)k->nmsgs, sizeof k->msgs[0], by_protocol_order);
        json_t *list = json_array();
        for (int i = 0; list && i < k->nmsgs; i++) {
            const msg_copy_t *m = &k->msgs[i];
            char when[32], code[2] = { m->code, 0 };
            time_t t = (time_t)m->received;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
            json_t *o = json_object();
            json_object_set_new(o, "m_code", json_string(code));
            json_object_set_new(o, "m_msg", bytes_string(m->payload, strlen(m->payload)));
            json_object_set_new(o, "m_msgtime", json_string(when));
            json_object_set_new(o, "m_paranoid", json_string(m->paranoid ? "1" : "0"));
            json_object_set_new(o, "m_ptoken", bytes_string(m->ptoken, strlen(m->ptoken)));
            json_array_append_new(list, o);
        }
        finish_with(k, list);
    }
    api_done(k->a);
}

void api_protocol_get(api_req_t *a)
{
    vehicle_call(a, protocol_answer);
}

/* ---- /api/status (§7.5) and /api/charge (§7.8) ---------------------------------------------------------------- */

static const key_of_t STATUS_S[] = {
    { "soc", 1, 0 }, { "units", 2, 0 }, { "chargestate", 5, 0 }, { "mode", 6, 0 },
    { "idealrange", 7, 0 }, { "estimatedrange", 8, 0 }, { "cac100", 19, 0 },
    { "cooldown_active", 24, 0 }, { "idealrange_max", 30, 0 }, { "soh", 34, 0 },
};

/* carawake and alarmsounding test the bits the firmware means (deviations F3, F4). */
static const key_of_t STATUS_D[] = {
    { "fl_dooropen", 1, 0x01 }, { "fr_dooropen", 1, 0x02 }, { "cp_dooropen", 1, 0x04 },
    { "pilotpresent", 1, 0x08 }, { "charging", 1, 0x10 }, { "handbrake", 1, 0x40 }, { "caron", 1, 0x80 },
    { "carlocked", 2, 0x08 }, { "valetmode", 2, 0x10 }, { "bt_open", 2, 0x40 }, { "tr_open", 2, 0x80 },
    { "temperature_pem", 4, 0 }, { "temperature_motor", 5, 0 }, { "temperature_battery", 6, 0 },
    { "tripmeter", 7, 0 }, { "odometer", 8, 0 }, { "speed", 9, 0 }, { "parkingtimer", 10, 0 },
    { "temperature_ambient", 11, 0 }, { "carawake", 12, 0x01 }, { "staletemps", 13, 0 },
    { "staleambient", 14, 0 }, { "vehicle12v", 15, 0 }, { "alarmsounding", 16, 0x02 },
    { "vehicle12v_ref", 17, 0 }, { "charging_12v", 18, 0x10 }, { "temperature_charger", 19, 0 },
    { "vehicle12v_current", 20, 0 }, { "temperature_cabin", 21, 0 },
};

static const key_of_t CHARGE_S[] = {
    { "soc", 1, 0 }, { "units", 2, 0 }, { "linevoltage", 3, 0 }, { "chargecurrent", 4, 0 },
    { "chargestate", 5, 0 }, { "mode", 6, 0 }, { "idealrange", 7, 0 }, { "estimatedrange", 8, 0 },
    { "chargelimit", 9, 0 }, { "chargeduration", 10, 0 }, { "chargeb4", 11, 0 }, { "chargekwh", 12, 0 },
    { "chargesubstate", 13, 0 }, { "chargetimermode", 16, 0 }, { "chargestarttime", 17, 0 },
    { "chargetimerstale", 18, 0 }, { "cac100", 19, 0 }, { "charge_etr_full", 20, 0 },
    { "charge_etr_limit", 21, 0 }, { "charge_limit_range", 22, 0 }, { "charge_limit_soc", 23, 0 },
    { "cooldown_active", 24, 0 }, { "cooldown_tbattery", 25, 0 }, { "cooldown_timelimit", 26, 0 },
    { "charge_estimate", 27, 0 }, { "charge_etr_range", 28, 0 }, { "charge_etr_soc", 29, 0 },
    { "idealrange_max", 30, 0 }, { "chargetype", 31, 0 }, { "chargepower", 32, 0 },
    { "battvoltage", 33, 0 }, { "soh", 34, 0 }, { "chargepowerinput", 35, 0 },
    { "chargerefficiency", 36, 0 }, { "batt_current", 37, 0 }, { "batt_range_speed", 38, 0 },
    { "charge_kwh_grid", 39, 0 }, { "charge_kwh_grid_total", 40, 0 }, { "batt_capacity", 41, 0 },
};

static const key_of_t CHARGE_D[] = {
    { "cp_dooropen", 1, 0x04 }, { "pilotpresent", 1, 0x08 }, { "charging", 1, 0x10 }, { "caron", 1, 0x80 },
    { "temperature_pem", 4, 0 }, { "temperature_motor", 5, 0 }, { "temperature_battery", 6, 0 },
    { "temperature_ambient", 11, 0 }, { "temperature_charger", 19, 0 }, { "temperature_cabin", 21, 0 },
    { "carawake", 12, 0x01 }, { "staletemps", 13, 0 }, { "staleambient", 14, 0 },
    { "vehicle12v", 15, 0 }, { "vehicle12v_ref", 17, 0 }, { "charging_12v", 18, 0x10 },
    { "vehicle12v_current", 20, 0 },
};

/* S as the primary message, D adding its keys when stored and not paranoid. */
static void s_and_d(vehicle_call_t *k, const key_of_t *skeys, size_t ns, const key_of_t *dkeys, size_t nd)
{
    const msg_copy_t *s = find(k, 'S'), *d = find(k, 'D');
    if (!answered_early(k, s)) {
        json_t *o = json_object();
        fields_t f;
        if (s) {
            msg_times(o, s, 's');
            split(s->payload, &f);
            put_keys(o, &f, skeys, ns);
        }
        if (d && !d->paranoid) {
            msg_times(o, d, 'd');
            split(d->payload, &f);
            put_keys(o, &f, dkeys, nd);
        }
        finish_with(k, o);
    }
    api_done(k->a);
}

static void status_answer(vehicle_call_t *k)
{
    s_and_d(k, STATUS_S, NKEYS(STATUS_S), STATUS_D, NKEYS(STATUS_D));
}

static void charge_answer(vehicle_call_t *k)
{
    s_and_d(k, CHARGE_S, NKEYS(CHARGE_S), CHARGE_D, NKEYS(CHARGE_D));
}

void api_status_get(api_req_t *a)
{
    memo_call(a, status_answer);
}

void api_charge_get(api_req_t *a)
{
    memo_call(a, charge_answer);
}

/* ---- /api/location (§7.7) ---------------------------------------------------------------------------------------- */

static const key_of_t LOCATION_L[] = {
    { "latitude", 1, 0 }, { "longitude", 2, 0 }, { "direction", 3, 0 }, { "altitude", 4, 0 },
    { "gpslock", 5, 0 }, { "stalegps", 6, 0 }, { "speed", 7, 0 }, { "tripmeter", 8, 0 },
    { "drivemode", 9, 0 }, { "power", 10, 0 }, { "energyused", 11, 0 }, { "energyrecd", 12, 0 },
    { "invpower", 13, 0 }, { "invefficiency", 14, 0 },
};

static void location_answer(vehicle_call_t *k)
{
    const msg_copy_t *l = find(k, 'L');
    if (!answered_early(k, l)) {
        json_t *o = json_object();
        fields_t f;
        if (l) {
            msg_times(o, l, 'l');
            split(l->payload, &f);
            put_keys(o, &f, LOCATION_L, NKEYS(LOCATION_L));
        }
        finish_with(k, o);
    }
    api_done(k->a);
}

void api_location_get(api_req_t *a)
{
    memo_call(a, location_answer);
}

/* ---- /api/lock and /api/valet, read (§9.2): the stored D ----------------------------------------------------------- */

static void d_answer(vehicle_call_t *k, const key_of_t *keys, size_t n)
{
    const msg_copy_t *d = find(k, 'D');
    if (!answered_early(k, d)) {
        json_t *o = json_object();
        fields_t f;
        if (d) {
            msg_times(o, d, 'd');
            split(d->payload, &f);
            put_keys(o, &f, keys, n);
        }
        finish_with(k, o);
    }
    api_done(k->a);
}

static const key_of_t LOCK_D[] = { { "carlocked", 2, 0x08 }, { "lockstate", 3, 0 } };
static const key_of_t VALET_D[] = { { "valetmode", 2, 0x10 } };

static void lock_answer(vehicle_call_t *k)
{
    d_answer(k, LOCK_D, NKEYS(LOCK_D));
}

static void valet_answer(vehicle_call_t *k)
{
    d_answer(k, VALET_D, NKEYS(VALET_D));
}

void api_lock_get(api_req_t *a)
{
    vehicle_call(a, lock_answer);
}

void api_valet_get(api_req_t *a)
{
    vehicle_call(a, valet_answer);
}

/* ---- /api/tpms (§7.6) ----------------------------------------------------------------------------------------------- */

static const key_of_t TPMS_W[] = {
    { "fr_pressure", 1, 0 }, { "fr_temperature", 2, 0 }, { "rr_pressure", 3, 0 },
    { "rr_temperature", 4, 0 }, { "fl_pressure", 5, 0 }, { "fl_temperature", 6, 0 },
    { "rl_pressure", 7, 0 }, { "rl_temperature", 8, 0 }, { "staletpms", 9, 0 },
};

/* A count-prefixed section of Y starting at field *at (0-based): its values, and
 * its validity field when it has one. */
typedef struct section {
    int count, first;                /* values are fields first .. first+count-1 (0-based) */
    int validity;                    /* its field, or -1 */
} section_t;

static int section_at(const fields_t *f, int *at, int with_validity, section_t *s)
{
    if (*at >= f->n)
        return -1;
    char buf[16];
    snprintf(buf, sizeof buf, "%.*s", (int)(f->len[*at] < 15 ? f->len[*at] : 15), f->at[*at]);
    long n = strtol(buf, NULL, 10);
    if (n < 0 || n > FIELDS_MAX)
        return -1;
    s->count = (int)n;
    s->first = *at + 1;
    s->validity = with_validity ? s->first + s->count : -1;
    *at = s->first + s->count + (with_validity ? 1 : 0);
    return 0;
}

static json_t *field0(const fields_t *f, int i)
{
    return field(f, i + 1);
}

static void tpms_y(json_t *o, const fields_t *f)
{
    static const char *what[] = { "pressure", "temperature", "health", "alert" };
    section_t names, sec[4];
    int at = 0, have[4] = { 0 };
    if (section_at(f, &at, 0, &names) < 0)
        return;
    for (int s = 0; s < 4; s++)
        have[s] = section_at(f, &at, 1, &sec[s]) == 0;
    double stale_max = 0;
    int any_stale = 0;
    for (int s = 0; s < 4; s++) {
        if (!have[s])
            continue;
        char key[64];
        snprintf(key, sizeof key, "stale_%s", what[s]);
        json_object_set_new(o, key, field0(f, sec[s].validity));
        if (sec[s].validity < f->n) {
            char buf[32];
            snprintf(buf, sizeof buf, "%.*s", (int)(f->len[sec[s].validity] < 31 ? f->len[sec[s].validity] : 31),
                     f->at[sec[s].validity]);
            double v = strtod(buf, NULL);
            if (!any_stale || v > stale_max)
                stale_max = v;
            any_stale = 1;
        }
    }
    json_object_set_new(o, "staletpms", json_integer((json_int_t)stale_max));
    for (int i = 0; i < names.count; i++) {
        if (names.first + i >= f->n)
            break;
        char wheel[32], key[64];
        size_t wl = f->len[names.first + i] < sizeof wheel - 1 ? f->len[names.first + i] : sizeof wheel - 1;
        for (size_t c = 0; c < wl; c++) {
            char ch = f->at[names.first + i][c];
            wheel[c] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        wheel[wl] = '\0';
        if (have[0] && sec[0].count > i) {
            snprintf(key, sizeof key, "%s_pressure_kpa", wheel);
            json_object_set_new(o, key, field0(f, sec[0].first + i));
            char buf[32];
            int fi = sec[0].first + i;
            snprintf(buf, sizeof buf, "%.*s", fi < f->n ? (int)(f->len[fi] < 31 ? f->len[fi] : 31) : 0,
                     fi < f->n ? f->at[fi] : "");
            snprintf(key, sizeof key, "%s_pressure", wheel);
            json_object_set_new(o, key, json_real(strtod(buf, NULL) * 0.14503773773020923));
        }
        for (int s = 1; s < 4; s++)
            if (have[s] && sec[s].count > i) {
                snprintf(key, sizeof key, "%s_%s", wheel, what[s]);
                json_object_set_new(o, key, field0(f, sec[s].first + i));
            }
    }
}

static void tpms_answer(vehicle_call_t *k)
{
    const msg_copy_t *y = find(k, 'Y'), *w = find(k, 'W');
    const msg_copy_t *primary = y ? y : w;
    if (!answered_early(k, primary)) {
        json_t *o = json_object();
        fields_t f;
        if (y) {
            msg_times(o, y, 'y');
            msg_times(o, y, 'w');
            split(y->payload, &f);
            tpms_y(o, &f);
        } else if (w) {
            msg_times(o, w, 'w');
            split(w->payload, &f);
            put_keys(o, &f, TPMS_W, NKEYS(TPMS_W));
        }
        api_json_flags(k->a, 200, "Ok", o, NULL, JSON_REAL_PRECISION(15));   /* psi as Perl prints it */
    }
    api_done(k->a);
}

void api_tpms_get(api_req_t *a)
{
    vehicle_call(a, tpms_answer);
}

/* ---- /api/historical (§7.9) --------------------------------------------------------------------------------------- */

static json_t *row_cell(const ovms_store_rows_t *rows, int row, int col)
{
    const char *v = ovms_store_cell(rows, row, col);
    return bytes_string(v, strlen(v));
}

static void historical_answer(sreq_t *r)
{
    api_req_t *a = (api_req_t *)(intptr_t)r->arg;
    const ovms_store_rows_t *rows = &r->req.rows;
    if (a->c->closing) {
        api_done(a);
        return;
    }
    if (r->req.status < 0) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        api_done(a);
        return;
    }
    int summary = !a->args[1][0], n = rows->nrows, truncated = 0;
    char limit[24];
    if (!summary && api_query(a, "limit", limit, sizeof limit) && atoi(limit) > 0 && atoi(limit) < n) {
        n = atoi(limit);             /* oldest first: since = the last one pages on (an extension) */
        truncated = 1;
    }
    json_t *list = json_array();
    for (int i = 0; list && i < n; i++) {
        json_t *o = json_object();
        if (summary) {
            json_object_set_new(o, "h_recordtype", row_cell(rows, i, 0));
            json_object_set_new(o, "distinctrecs", row_cell(rows, i, 1));
            json_object_set_new(o, "totalrecs", row_cell(rows, i, 2));
            json_object_set_new(o, "totalsize", row_cell(rows, i, 3));
            json_object_set_new(o, "first", row_cell(rows, i, 4));
            json_object_set_new(o, "last", row_cell(rows, i, 5));
        } else {
            json_object_set_new(o, "h_timestamp", row_cell(rows, i, 0));
            json_object_set_new(o, "h_recordnumber", row_cell(rows, i, 1));
            json_object_set_new(o, "h_data", row_cell(rows, i, 2));
        }
        json_array_append_new(list, o);
    }
    api_json(a, 200, "Ok", list, truncated ? "X-OVMS-Truncated: 1\r\n" : NULL);
    api_done(a);
}

void api_historical_get(api_req_t *a)
{
    ovms_vehicle_t rec;
    char since_text[64];
    int64_t since = INT64_MIN;
    if (!owned_vehicle(a, &rec))
        return;
    if (api_query(a, "since", since_text, sizeof since_text) &&
        ovms_timestamp_parse(ovms_str_c(since_text), &since) < 0) {
        api_text(a, 400, "Bad Request", "Invalid since\n");    /* a deviation: §7.9, F16 */
        api_done(a);
        return;
    }
    sreq_t *r = sreq_new(a->c->w, NULL, NULL, historical_answer);
    if (!r) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        api_done(a);
        return;
    }
    r->arg = (int64_t)(intptr_t)a;
    if (!a->args[1][0]) {
        ovms_store_prep_hist_summary(&r->req, rec.id, since);
    } else {
        snprintf(r->text, sizeof r->text, "%s", a->args[1]);
        ovms_store_prep_hist_records(&r->req, rec.id, r->text, since == INT64_MIN ? -1 : since);
    }
    ovms_store_req_ordered(&r->req);      /* after the writes already queued */
    sreq_submit(r);
}
