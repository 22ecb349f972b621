/*
 * prep.c -- preparing requests: each public prep function checks its
 * arguments (the point of entry where PROTOCOL 3.2's comma rule is
 * enforced for ids, passwords, names and mail addresses) and copies them
 * into one block owned by the request.
 * Threading: the caller's; a request is not yet shared.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* Copy up to OVMS_STORE_MAX_ARGS strings (NULL stays NULL) into req->args. */
static int set_args(ovms_store_req_t *req, int op, int n, const char *const *v, const size_t *len)
{
    size_t total = 0, at = 0, lens[OVMS_STORE_MAX_ARGS];

    ovms_store_req_cleanup(req);
    for (int k = 0; k < n; k++) {
        lens[k] = v[k] ? (len && len[k] != (size_t)-1 ? len[k] : strlen(v[k])) : 0;
        total += v[k] ? lens[k] + 1 : 0;
    }
    req->args = malloc(total ? total : 1);
    if (!req->args)
        return OVMS_ENOMEM;
    for (int k = 0; k < n; k++) {
        if (!v[k])
            continue;
        memcpy(req->args + at, v[k], lens[k]);
        req->args[at + lens[k]] = '\0';
        req->s[k] = req->args + at;
        req->n[k] = lens[k];
        at += lens[k] + 1;
    }
    req->op = op;
    req->flags = 0;
    req->value = 0;
    req->incarnation = 0;
    req->limit = 0;
    req->msg_history = 0;
    memset(req->i, 0, sizeof req->i);
    return 0;
}

/* Text that travels in a non-final field: no commas, no line breaks. */
static int plain_field(const char *s, size_t max)
{
    if (!s)
        return 0;
    if (strlen(s) > max || strpbrk(s, ",\r\n"))
        return OVMS_EINVAL;
    return 0;
}

static int vehicle_key(const char *id, char key[33])
{
    return ovms_vehicleid_normalize(ovms_str_c(id ? id : ""), key, 33) < 0 ? OVMS_EINVAL : 0;
}

int ovms_store_prep_owner_put(ovms_store_req_t *req, const char *name, const char *mail,
                              const char *pwhash, int64_t status, int flags)
{
    if (!name || !*name || plain_field(name, 64) || plain_field(mail, 128) ||
        plain_field(pwhash, 128) || strchr(name, ' '))
        return OVMS_EINVAL;
    const char *v[] = { name, mail, pwhash };
    int rc = set_args(req, OP_OWNER_PUT, 3, v, NULL);
    req->i[0] = status;
    req->flags = flags;
    return rc;
}

int ovms_store_prep_owner_remove(ovms_store_req_t *req, const char *name)
{
    if (!name || !*name)
        return OVMS_EINVAL;
    return set_args(req, OP_OWNER_REMOVE, 1, &name, NULL);
}

int ovms_store_prep_vehicle_put(ovms_store_req_t *req, const char *id, const char *owner,
                                const char *carpass, const char *vtype, const char *v_server,
                                int flags)
{
    char key[33];
    /* an empty car password would let anyone log in as the car */
    if (vehicle_key(id, key) < 0 || plain_field(owner, 64) || plain_field(carpass, 64) ||
        plain_field(vtype, 16) || (carpass && (!*carpass || strchr(carpass, ' '))))
        return OVMS_EINVAL;
    if (v_server && strcmp(v_server, "*") != 0 && ovms_serverid_check(ovms_str_c(v_server)) < 0)
        return OVMS_EINVAL;
    const char *v[] = { key, owner, carpass, vtype, v_server };
    int rc = set_args(req, OP_VEHICLE_PUT, 5, v, NULL);
    req->flags = flags;
    return rc;
}

int ovms_store_prep_vehicle_remove(ovms_store_req_t *req, const char *id)
{
    char key[33];
    if (vehicle_key(id, key) < 0)
        return OVMS_EINVAL;
    const char *v[] = { key };
    return set_args(req, OP_VEHICLE_REMOVE, 1, v, NULL);
}

int ovms_store_prep_msg_put(ovms_store_req_t *req, const char *vehicle, char code,
                            const char *payload, size_t len, int paranoid, const char *ptoken,
                            int64_t received)
{
    char key[33], c[2] = { code, '\0' };
    if (vehicle_key(vehicle, key) < 0 || code == '\0' || len > OVMS_LINE_MAX)
        return OVMS_EINVAL;
    const char *v[] = { key, c, payload ? payload : "", ptoken ? ptoken : "" };
    const size_t n[] = { (size_t)-1, 1, len, (size_t)-1 };
    int rc = set_args(req, OP_MSG_PUT, 4, v, n);
    req->i[0] = paranoid;
    req->i[1] = received;
    return rc;
}

int ovms_store_prep_ptoken_set(ovms_store_req_t *req, const char *vehicle, const char *ptoken,
                               int64_t when)
{
    char key[33];
    if (vehicle_key(vehicle, key) < 0 || !ptoken || plain_field(ptoken, 64))
        return OVMS_EINVAL;
    const char *v[] = { key, ptoken };
    int rc = set_args(req, OP_PTOKEN_SET, 2, v, NULL);
    req->i[0] = when;
    return rc;
}

int ovms_store_prep_hist_put(ovms_store_req_t *req, const char *vehicle, const char *type,
                             int64_t recno, int64_t ts, int64_t expires, const char *data,
                             size_t len)
{
    char key[33];
    if (vehicle_key(vehicle, key) < 0 || !type || !*type || plain_field(type, 64) ||
        len > OVMS_LINE_MAX)
        return OVMS_EINVAL;
    const char *v[] = { key, type, data ? data : "" };
    const size_t n[] = { (size_t)-1, (size_t)-1, len };
    int rc = set_args(req, OP_HIST_PUT, 3, v, n);
    req->i[0] = recno;
    req->i[1] = ts;
    req->i[2] = expires;
    return rc;
}

int ovms_store_prep_util_add(ovms_store_req_t *req, const char *vehicle, int64_t when,
                             int64_t car_rx, int64_t car_tx, int64_t app_rx, int64_t app_tx)
{
    char key[33];
    if (vehicle_key(vehicle, key) < 0 || when < 0)
        return OVMS_EINVAL;
    const char *v[] = { key };
    int rc = set_args(req, OP_UTIL_ADD, 1, v, NULL);
    req->i[0] = when;
    req->i[1] = car_rx;
    req->i[2] = car_tx;
    req->i[3] = app_rx;
    req->i[4] = app_tx;
    return rc;
}

int ovms_store_prep_pushsub_put(ovms_store_req_t *req, int64_t owner, const char *vehicle,
                                const char *appid, const char *pushtype, const char *keytype,
                                const char *keyvalue)
{
    char key[33];
    if (vehicle_key(vehicle, key) < 0 || !appid || !pushtype || !keyvalue)
        return OVMS_EINVAL;
    const char *v[] = { key, appid, pushtype, keytype ? keytype : "", keyvalue };
    int rc = set_args(req, OP_PUSHSUB_PUT, 5, v, NULL);
    req->i[0] = owner;
    return rc;
}

int ovms_store_prep_prov_put(ovms_store_req_t *req, const char *apkey, const char *vehicle,
                             const char *token, const char *digest, const char *record)
{
    char key[33];
    if (!apkey || !*apkey || strpbrk(apkey, " ,\r\n") || vehicle_key(vehicle, key) < 0 ||
        !token || !digest || !record)
        return OVMS_EINVAL;
    const char *v[] = { apkey, key, token, digest, record };
    return set_args(req, OP_PROV_PUT, 5, v, NULL);
}

int ovms_store_prep_prov_remove(ovms_store_req_t *req, const char *apkey)
{
    if (!apkey || !*apkey)
        return OVMS_EINVAL;
    return set_args(req, OP_PROV_REMOVE, 1, &apkey, NULL);
}

int ovms_store_prep_expire(ovms_store_req_t *req, int64_t now)
{
    int rc = set_args(req, OP_EXPIRE, 0, NULL, NULL);
    req->i[0] = now;
    return rc;
}

/* ---- reads -------------------------------------------------------------------------- */

static int prep_vehicle_read(ovms_store_req_t *req, int op, const char *vehicle,
                             const char *extra)
{
    char key[33];
    if (vehicle_key(vehicle, key) < 0)
        return OVMS_EINVAL;
    const char *v[] = { key, extra };
    return set_args(req, op, 2, v, NULL);
}

int ovms_store_prep_msg_list(ovms_store_req_t *req, const char *vehicle)
{
    return prep_vehicle_read(req, OP_MSG_LIST, vehicle, NULL);
}

int ovms_store_prep_hist_summary(ovms_store_req_t *req, const char *vehicle, int64_t since)
{
    int rc = prep_vehicle_read(req, OP_HIST_SUMMARY, vehicle, NULL);
    req->i[0] = since;
    return rc;
}

int ovms_store_prep_hist_records(ovms_store_req_t *req, const char *vehicle, const char *type,
                                 int64_t since)
{
    if (!type)
        return OVMS_EINVAL;
    int rc = prep_vehicle_read(req, OP_HIST_RECORDS, vehicle, type);
    req->i[0] = since < 0 ? INT64_MIN : since;
    return rc;
}

int ovms_store_prep_util_list(ovms_store_req_t *req, const char *vehicle)
{
    return prep_vehicle_read(req, OP_UTIL_LIST, vehicle, NULL);
}

int ovms_store_prep_owner_list(ovms_store_req_t *req)
{
    return set_args(req, OP_OWNER_LIST, 0, NULL, NULL);
}

int ovms_store_prep_vehicle_list(ovms_store_req_t *req)
{
    return set_args(req, OP_VEHICLE_LIST, 0, NULL, NULL);
}

int ovms_store_prep_prov_list(ovms_store_req_t *req)
{
    return set_args(req, OP_PROV_LIST, 0, NULL, NULL);
}

int ovms_store_prep_prov_get(ovms_store_req_t *req, const char *apkey)
{
    if (!apkey)
        return OVMS_EINVAL;
    return set_args(req, OP_PROV_GET, 1, &apkey, NULL);
}

int ovms_store_prep_pushsub_list(ovms_store_req_t *req, const char *vehicle)
{
    return prep_vehicle_read(req, OP_PUSHSUB_LIST, vehicle, NULL);
}

int ovms_store_prep_hist_list(ovms_store_req_t *req, const char *vehicle, const char *type)
{
    return prep_vehicle_read(req, OP_HIST_LIST, vehicle, type);
}

int ovms_store_prep_changes(ovms_store_req_t *req, const char *origin, int64_t after, int limit)
{
    if (!origin || ovms_serverid_check(ovms_str_c(origin)) < 0 || limit <= 0)
        return OVMS_EINVAL;
    int rc = set_args(req, OP_CHANGES, 1, &origin, NULL);
    req->i[0] = after;
    req->i[1] = limit;
    return rc;
}

int ovms_store_prep_changes_after(ovms_store_req_t *req, const char *cursors, int limit)
{
    if (limit <= 0)
        return OVMS_EINVAL;
    const char *arg = cursors ? cursors : "";
    int rc = set_args(req, OP_CHANGES_AFTER, 1, &arg, NULL);
    req->i[0] = limit;
    return rc;
}

int ovms_store_prep_apply(ovms_store_req_t *req, const char *records, size_t len)
{
    if (!records)
        return OVMS_EINVAL;
    return set_args(req, OP_APPLY, 1, &records, &len);
}

int ovms_store_prep_digest(ovms_store_req_t *req)
{
    return set_args(req, OP_DIGEST, 0, NULL, NULL);
}

int ovms_store_prep_own_caught_up(ovms_store_req_t *req)
{
    const char *none = "";
    int rc = set_args(req, OP_APPLY, 1, &none, NULL);
    req->i[0] = 1;
    return rc;
}

/* ---- API tokens ---------------------------------------------------------------------------- */

int ovms_store_prep_token_put(ovms_store_req_t *req, const char *owner, const char *token,
                              const char *application, const char *purpose, const char *permit)
{
    if (!owner || !*owner || !token || !ovms_token_valid(token) || !application ||
        plain_field(application, 32) || !purpose || plain_field(purpose, 80) || !permit ||
        strlen(permit) > 255 || strpbrk(permit, "\r\n"))
        return OVMS_EINVAL;
    const char *v[] = { owner, token, application, purpose, permit };
    return set_args(req, OP_TOKEN_PUT, 5, v, NULL);
}

int ovms_store_prep_token_remove(ovms_store_req_t *req, const char *owner, const char *token)
{
    if (!owner || !*owner || !token)
        return OVMS_EINVAL;
    const char *v[] = { owner, token };
    return set_args(req, OP_TOKEN_REMOVE, 2, v, NULL);
}

int ovms_store_prep_token_used(ovms_store_req_t *req, const char *hash, int64_t when)
{
    if (!hash || strlen(hash) != 64)
        return OVMS_EINVAL;
    int rc = set_args(req, OP_TOKEN_USED, 1, &hash, NULL);
    req->i[0] = when;
    return rc;
}

int ovms_store_prep_token_list(ovms_store_req_t *req, const char *owner)
{
    if (!owner)
        return OVMS_EINVAL;
    return set_args(req, OP_TOKEN_LIST, 1, &owner, NULL);
}
