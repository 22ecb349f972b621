/*
 * client.c -- messages from apps and batch clients (PROTOCOL 6): commands,
 * paranoid commands, groups, push; anything else an app sends is forwarded
 * to the car; a batch client's is dropped. ET from a client is ignored
 * (decision d): only the car may set the paranoid token.
 * Threading: the vehicle's home worker.
 */
#include "server_int.h"

static void forward_to_car(conn_t *c, const char *raw, size_t rawlen)
{
    vehicle_t *v = c->vehicle;
    if (c->role == 'A' && v->car)
        conn_send(v->car, raw, rawlen);
    else
        LOG_DEBUG(c, "dropped %c (%s)", raw[0], c->role == 'A' ? "car not connected" : "batch");
}

static void paranoid_message(conn_t *c, ovms_str_t payload, const char *raw, size_t rawlen)
{
    ovms_paranoid_t e;
    if (ovms_paranoid_parse(payload, &e) < 0 || e.kind == 'T') {
        LOG_DEBUG(c, "ignored E%c from a client", payload.len ? payload.ptr[0] : '?');
        return;
    }
    if (e.code == 'C')
        cmd_from_client(c, e.data, 1, raw, rawlen);
    else
        forward_to_car(c, raw, rawlen);
}

void client_message(conn_t *c, const ovms_msg_t *m)
{
    const char *raw = m->payload.ptr - 1;
    size_t rawlen = m->payload.len + 1;

    switch (m->code) {
    case 'A': conn_send(c, "a", 1); return;
    case 'a': return;
    case 'C': cmd_from_client(c, m->payload, 0, raw, rawlen); return;
    case 'E': paranoid_message(c, m->payload, raw, rawlen); return;
    case 'G': groups_subscribe(c, m->payload); return;
    case 'P': push_from(c, m); return;
    case 'p': push_subscribe(c, m->payload); return;
    case 'c':
    case 'H':
    case 'h':
    case 'g': LOG_DEBUG(c, "dropped %c from a client", m->code); return;
    default: forward_to_car(c, raw, rawlen); return;
    }
}
