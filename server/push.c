/*
 * push.c -- push notifications (PROTOCOL 6.9, 8): a P is relayed to every
 * client of the vehicle and kept as a *-Log-Notification record; p
 * registers a subscription (never answered).
 *
 * Delivery to the push services themselves (APNS, FCM, mail, Expo) is not
 * part of this node yet: notifications are recorded in history, where apps
 * see them through C31/C32, and logged.
 * Threading: the vehicle's home worker (push_notify: any worker).
 */
#include "server_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#define NOTIFICATION_TYPE "*-Log-Notification"

void push_notify(worker_t *w, const char *vehicle, int64_t incarnation, char type, const char *text)
{
    static uint32_t seq;                /* tells apart notifications of the same second */
    char data[OVMS_LINE_MAX];
    int n = snprintf(data, sizeof data, "%c,%s", type, text);

    /* the text is the owner's business: only its size at info level */
    log_limited(OVMS_LOG_INFO, NULL, "push alert", vehicle, "%s: push alert %c (%zu bytes)", vehicle,
                type, strlen(text));
    LOG_DEBUG(NULL, "%s: push alert %c: %s", vehicle, type, text);
    uint32_t recno = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) % 1000000;
    hub_own_record(w, vehicle, incarnation, NOTIFICATION_TYPE, recno,
                   (int64_t)w->cfg->notification_days * 86400, data,
                   n > 0 && (size_t)n < sizeof data ? (size_t)n : 0);
}

void push_from(conn_t *c, const ovms_msg_t *m)
{
    vehicle_t *v = c->vehicle;
    char text[OVMS_LINE_MAX];

    hub_to_clients(v, m->payload.ptr - 1, m->payload.len + 1);
    nodebus_relay(v, m->payload.ptr - 1, m->payload.len + 1);
    if (m->payload.len < 2)
        return;
    /* relayed live always; stored and pushed within the vehicle's budget */
    if (!quota_take(v, QUOTA_NOTIFY)) {
        log_limited(OVMS_LOG_INFO, c, "notification not stored", v->id,
                    "more than %d notifications a minute: relayed, not stored or pushed",
                    c->w->cfg->notifications_per_minute);
        return;
    }
    snprintf(text, sizeof text, "%.*s", (int)m->payload.len - 1, m->payload.ptr + 1);
    push_notify(c->w, v->id, v->incarnation, m->payload.ptr[0], text);
}

static void subscribed(sreq_t *r)
{
    if (r->req.status == OVMS_EQUOTA)
        log_limited(OVMS_LOG_INFO, r->conn, "push subscription refused", conn_vehicle_id(r->conn),
                    "push subscription refused: the vehicle has %d, its limit",
                    r->w->cfg->max_push_subscriptions);
    else if (r->req.status < 0)
        LOG_WARN(r->conn, "push subscription not stored: %s", ovms_strerror(r->req.status));
    else
        LOG_INFO(r->conn, "push subscription stored (%s)", r->text);
}

static int known_push_type(ovms_str_t t)
{
    return ovms_str_eq(t, "apns") || ovms_str_eq(t, "gcm") || ovms_str_eq(t, "mail") ||
           ovms_str_eq(t, "expo");
}

void push_subscribe(conn_t *c, ovms_str_t payload)
{
    server_t *srv = c->w->srv;
    ovms_pushsub_t ps;
    ovms_vehicle_t target;
    char vehicle[33], appid[65], ptype[17], ktype[65], kvalue[OVMS_LINE_MAX];
    int64_t incarnation = c->vehicle->incarnation;

    if (ovms_pushsub_parse(payload, &ps) < 0 || !known_push_type(ps.pushtype) ||
        ovms_str_copy(ps.appid, appid, sizeof appid) < 0 ||
        ovms_str_copy(ps.pushtype, ptype, sizeof ptype) < 0 ||
        ovms_str_copy(ps.pushkeytype, ktype, sizeof ktype) < 0 ||
        ovms_str_copy(ps.pushkeyvalue, kvalue, sizeof kvalue) < 0) {
        log_limited(OVMS_LOG_INFO, c, "push subscription refused", c->vehicle->id,
                    "push subscription refused: malformed");
        return;
    }
    if (ps.simple) {
        snprintf(vehicle, sizeof vehicle, "%s", c->vehicle->id);
    } else {
        /* another vehicle of the same owner, proven with its car password */
        if (ovms_vehicleid_normalize(ps.vehicle, vehicle, sizeof vehicle) < 0 ||
            ovms_store_vehicle_get(srv->store, vehicle, &target) < 0 ||
            target.owner != c->vehicle->owner || strlen(target.carpass) != ps.netpass.len ||
            CRYPTO_memcmp(target.carpass, ps.netpass.ptr, ps.netpass.len) != 0) {
            log_limited(OVMS_LOG_INFO, c, "push subscription refused", c->vehicle->id,
                        "push subscription refused: not a vehicle of this owner, or wrong password");
            return;
        }
        incarnation = target.created;
    }
    if (!strcmp(ptype, "apns"))
        snprintf(ktype, sizeof ktype, "production");
    if (!quota_take(c->vehicle, QUOTA_PUSHSUB)) {
        log_limited(OVMS_LOG_INFO, c, "push subscription refused", c->vehicle->id,
                    "push subscription refused: more than %d an hour",
                    c->w->cfg->push_subscriptions_per_hour);
        return;
    }
    sreq_t *r = sreq_new(c->w, c, NULL, subscribed);
    if (!r)
        return;
    snprintf(r->text, sizeof r->text, "%s %.64s for %s", ptype, appid, vehicle);
    if (ovms_store_prep_pushsub_put(&r->req, c->vehicle->owner, vehicle, appid, ptype, ktype,
                                    kvalue) < 0) {
        sreq_free(r);
        return;
    }
    ovms_store_req_incarnation(&r->req, incarnation);
    ovms_store_req_limit(&r->req, c->w->cfg->max_push_subscriptions);
    sreq_submit(r);
}
