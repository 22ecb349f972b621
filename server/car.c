/*
 * car.c -- messages from a car (PROTOCOL 6): data messages are stored,
 * relayed to every client and followed by T0 (and f after F); ET/EM, c,
 * g, H/h and P have their own handling; A is answered with a.
 * Threading: the vehicle's home worker.
 */
#include "server_int.h"

#include <stdio.h>
#include <string.h>

const char ovms_server_version[] = "ovmsd-" OVMS_VERSION;

/* PROTOCOL 6.1: store, relay verbatim, f after F, then T0. raw is the
 * message as the car sent it (code and payload, or EM<code><payload>). */
static void data_message(conn_t *c, char code, ovms_str_t payload, int paranoid,
                         const char *raw, size_t rawlen)
{
    vehicle_t *v = c->vehicle;
    int64_t now = wall_now();

    hub_store_message(v, code, payload.ptr, payload.len, paranoid, now);
    hub_cache_put(v, code, payload.ptr, payload.len, paranoid, now);
    hub_to_clients(v, raw, rawlen);
    nodebus_car_message(v, raw, rawlen);     /* apps on other nodes (T0 and f there) */
    if (code == 'F') {
        char f[64];
        int n = snprintf(f, sizeof f, "f%s", ovms_server_version);
        hub_to_clients(v, f, (size_t)n);
    }
    hub_to_clients(v, "T0", 2);
}

/* The V2 firmware 1.2.0 bug (PROTOCOL 4.1): the first ",performance,," in
 * a plain S becomes ",performance,". */
static void state_message(conn_t *c, ovms_str_t payload, const char *raw, size_t rawlen)
{
    static const char bad[] = ",performance,,";
    char fixed[OVMS_LINE_MAX + 2];
    const char *hit = payload.len >= sizeof bad - 1
                          ? memmem(payload.ptr, payload.len, bad, sizeof bad - 1) : NULL;
    if (!hit || rawlen > sizeof fixed) {
        data_message(c, 'S', payload, 0, raw, rawlen);
        return;
    }
    size_t before = (size_t)(hit - raw) + sizeof bad - 2;      /* keep ",performance," */
    memcpy(fixed, raw, before);
    memcpy(fixed + before, hit + sizeof bad - 1, rawlen - before - 1);
    size_t len = rawlen - 1;
    data_message(c, 'S', (ovms_str_t){ fixed + 1, len - 1 }, 0, fixed, len);
}

static void paranoid_message(conn_t *c, ovms_str_t payload, const char *raw, size_t rawlen)
{
    vehicle_t *v = c->vehicle;
    ovms_paranoid_t e;

    if (ovms_paranoid_parse(payload, &e) < 0) {
        LOG_DEBUG(c, "dropped E%c from the car", e.kind ? e.kind : '?');
        return;
    }
    if (e.kind == 'T') {
        if (e.token.len == 0 || e.token.len > 64 || memchr(e.token.ptr, ',', e.token.len) ||
            hub_set_ptoken(v, e.token) < 0) {
            log_limited(OVMS_LOG_WARN, c, "paranoid token ignored", v->id,
                        "unusable paranoid token ignored");
            return;
        }
        sreq_t *r = sreq_new(c->w, NULL, NULL, NULL);
        if (r && ovms_store_prep_ptoken_set(&r->req, v->id, hub_ptoken(v), wall_now()) == 0) {
            ovms_store_req_incarnation(&r->req, v->incarnation);
            sreq_submit(r);
        }
        else if (r)
            sreq_free(r);
        hub_to_clients(v, raw, rawlen);
        nodebus_relay(v, raw, rawlen);
        return;
    }
    switch (e.code) {
    case 'c':
        cmd_reply_from_car(c, e.data, 1, raw, rawlen);
        return;
    case 'h': {
        /* cannot be read, so nothing is stored; acknowledged as the reference does */
        char ack[OVMS_LINE_MAX + 2];
        int n = ovms_histack_ack(payload, ack, sizeof ack);
        if (n > 0)
            conn_send(c, ack, (size_t)n);
        return;
    }
    case 'A': case 'a': case 'C': case 'G': case 'g': case 'H': case 'P': case 'p':
        LOG_DEBUG(c, "dropped EM%c from the car", e.code);
        return;
    default:
        data_message(c, e.code, e.data, 1, raw, rawlen);
    }
}

/* A car's history record is limited in three ways (docs/operations.md): its
 * lifetime (history_max_days), the records its vehicle may hold
 * (history_max_records: over it, h is not acknowledged, so the car keeps
 * it), and the rate (history_per_minute: over it, the car is not read
 * until the budget refills; nothing is lost). */
static int64_t capped_expiry(const conn_t *c, int64_t ts, int64_t expires)
{
    int64_t longest = ts + (int64_t)c->w->cfg->history_max_days * 86400;
    return expires > longest ? longest : expires;
}

static void submit_history(conn_t *c, sreq_t *r)
{
    ovms_store_req_incarnation(&r->req, c->vehicle->incarnation);
    ovms_store_req_limit(&r->req, c->w->cfg->history_max_records);
    conn_hist_begin(c);
    sreq_submit(r);
    if (!quota_take(c->vehicle, QUOTA_HISTORY))
        conn_quota_pause(c);
}

static void history_full(sreq_t *r, const char *what)
{
    log_limited(OVMS_LOG_WARN, r->conn, "history full", conn_vehicle_id(r->conn),
                "%s not stored: the vehicle holds %d history records, its limit", what,
                r->w->cfg->history_max_records);
}

static void history_written(sreq_t *r)
{
    conn_hist_end(r->conn);
    if (r->req.status == OVMS_EQUOTA)
        history_full(r, "H record");
    else if (r->req.status < 0)
        LOG_ERROR(r->conn, "H record not stored: %s", ovms_strerror(r->req.status));
}

static void history(conn_t *c, ovms_str_t payload)
{
    ovms_history_t h;
    int64_t now = wall_now();
    if (ovms_history_parse(payload, &h) < 0) {
        LOG_DEBUG(c, "H with fewer than 4 fields or bad numbers: ignored");
        return;
    }
    sreq_t *r = sreq_new(c->w, c, NULL, history_written);
    char type[65];
    if (!r)
        return;
    if (ovms_str_copy(h.type, type, sizeof type) < 0 ||
        ovms_store_prep_hist_put(&r->req, c->vehicle->id, type, h.recno, now,
                                 capped_expiry(c, now, now + h.lifetime), h.data.ptr, h.data.len) < 0) {
        log_limited(OVMS_LOG_WARN, c, "H record refused", c->vehicle->id,
                    "H record refused (type too long or bad data)");
        sreq_free(r);
        return;
    }
    submit_history(c, r);
}

/* The acknowledgement goes out only once the record is durable. */
static void history_stored(sreq_t *r)
{
    conn_t *c = r->conn;
    conn_hist_end(c);
    if (r->req.status == OVMS_EQUOTA) {
        history_full(r, "h record (not acknowledged: the car keeps it)");
        return;
    }
    if (r->req.status < 0) {
        LOG_ERROR(c, "h record not stored (%s): not acknowledged, the car will resend",
                  ovms_strerror(r->req.status));
        return;
    }
    metric_observe(&r->w->m.hist_ack, metric_mono() - r->req.submitted);
    if (c->state == CS_ACTIVE)
        conn_send(c, r->text, strlen(r->text));
}

static void history_ack(conn_t *c, ovms_str_t payload)
{
    ovms_histack_t h;
    char ack[OVMS_LINE_MAX + 2], type[65];
    int64_t now = wall_now();
    int n = ovms_histack_ack(payload, ack, sizeof ack);
    sreq_t *r;

    if (n < 0)
        return;
    if (ovms_histack_parse(payload, &h) < 0 || (size_t)n >= sizeof r->text ||
        ovms_str_copy(h.type, type, sizeof type) < 0 || !(r = sreq_new(c->w, c, NULL, history_stored))) {
        conn_send(c, ack, (size_t)n);       /* malformed: acknowledged all the same */
        return;
    }
    memcpy(r->text, ack, (size_t)n + 1);
    if (ovms_store_prep_hist_put(&r->req, c->vehicle->id, type, h.recno, now + h.timediff,
                                 capped_expiry(c, now + h.timediff, now + (h.lifetime - h.timediff)),
                                 h.data.ptr, h.data.len) < 0) {
        sreq_free(r);
        conn_send(c, ack, (size_t)n);
        return;
    }
    submit_history(c, r);
}

void car_message(conn_t *c, const ovms_msg_t *m)
{
    const char *raw = m->payload.ptr - 1;    /* the code, then the payload */
    size_t rawlen = m->payload.len + 1;

    switch (m->code) {
    case 'A': conn_send(c, "a", 1); return;
    case 'a': return;
    case 'C':
    case 'p': LOG_DEBUG(c, "dropped %c from the car", m->code); return;
    case 'c': cmd_reply_from_car(c, m->payload, 0, raw, rawlen); return;
    case 'E': paranoid_message(c, m->payload, raw, rawlen); return;
    case 'G': groups_subscribe(c, m->payload); return;
    case 'g': groups_update(c, m->payload); return;
    case 'H': history(c, m->payload); return;
    case 'h': history_ack(c, m->payload); return;
    case 'P': push_from(c, m); return;
    case 'S': state_message(c, m->payload, raw, rawlen); return;
    default: data_message(c, m->code, m->payload, 0, raw, rawlen); return;
    }
}
