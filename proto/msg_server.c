/*
 * msg_server.c -- typed forms of the messages a server interprets: H and h
 * (history), C and c (commands), E (paranoid), P and p (push), and the
 * one-number messages Z and T.
 *
 * Where the reference server is lenient these parsers are too, because
 * routing depends on them: a command response's numbers are read the way
 * Perl numifies them (missing or non-numeric counts as 0), and an h is
 * acknowledged from its raw text even when it does not parse.
 * Threading: pure functions.
 */
#include "build.h"

#include <string.h>

/* ---- H and h -------------------------------------------------------------- */

int ovms_history_parse(ovms_str_t payload, ovms_history_t *out)
{
    ovms__tok_t tok;
    int rc;

    memset(out, 0, sizeof *out);
    ovms__tok_init(&tok, payload);
    if ((rc = ovms__tok_need(&tok, &out->type)) < 0 ||
        (rc = ovms__tok_need_int(&tok, &out->recno)) < 0 ||
        (rc = ovms__tok_need_int(&tok, &out->lifetime)) < 0)
        return rc;
    if (!ovms__tok_rest(&tok, &out->data))
        return OVMS_EFIELDS;
    return out->type.len ? 0 : OVMS_EFIELDS;
}

int ovms_history_format(const ovms_history_t *in, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'H');
    ovms__buf_field(&b, in->type, 0);
    ovms__buf_putc(&b, ',');
    ovms__buf_int(&b, in->recno);
    ovms__buf_putc(&b, ',');
    ovms__buf_int(&b, in->lifetime);
    ovms__buf_putc(&b, ',');
    ovms__buf_field(&b, in->data, OVMS__FIELD_LAST);
    return ovms__buf_done(&b);
}

int ovms_histack_parse(ovms_str_t payload, ovms_histack_t *out)
{
    ovms__tok_t tok;
    int rc;

    memset(out, 0, sizeof *out);
    ovms__tok_init(&tok, payload);
    if ((rc = ovms__tok_need(&tok, &out->ackcode)) < 0 ||
        (rc = ovms__tok_need_int(&tok, &out->timediff)) < 0 ||
        (rc = ovms__tok_need(&tok, &out->type)) < 0 ||
        (rc = ovms__tok_need_int(&tok, &out->recno)) < 0 ||
        (rc = ovms__tok_need_int(&tok, &out->lifetime)) < 0)
        return rc;
    if (!ovms__tok_rest(&tok, &out->data))
        return OVMS_EFIELDS;
    return out->type.len ? 0 : OVMS_EFIELDS;
}

int ovms_histack_format(const ovms_histack_t *in, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'h');
    ovms__buf_field(&b, in->ackcode, 0);
    ovms__buf_putc(&b, ',');
    ovms__buf_int(&b, in->timediff);
    ovms__buf_putc(&b, ',');
    ovms__buf_field(&b, in->type, 0);
    ovms__buf_putc(&b, ',');
    ovms__buf_int(&b, in->recno);
    ovms__buf_putc(&b, ',');
    ovms__buf_int(&b, in->lifetime);
    ovms__buf_putc(&b, ',');
    ovms__buf_field(&b, in->data, OVMS__FIELD_LAST);
    return ovms__buf_done(&b);
}

int ovms_histack_ack(ovms_str_t payload, char *buf, size_t cap)
{
    const char *comma = payload.len ? memchr(payload.ptr, ',', payload.len) : NULL;
    size_t n = comma ? (size_t)(comma - payload.ptr) : payload.len;
    ovms__buf_t b;

    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'h');
    ovms__buf_put(&b, payload.ptr, n);
    return ovms__buf_done(&b);
}

/* ---- C and c -------------------------------------------------------------- */

int ovms_command_parse(ovms_str_t payload, ovms_command_t *out)
{
    size_t i = 0;
    int64_t cmd = 0;

    memset(out, 0, sizeof *out);
    while (i < payload.len && payload.ptr[i] >= '0' && payload.ptr[i] <= '9') {
        if (cmd < 100000000)
            cmd = cmd * 10 + (payload.ptr[i] - '0');
        i++;
    }
    out->has_cmd = i > 0;
    out->cmd = (int)cmd;
    out->wellformed = out->has_cmd && (i == payload.len || payload.ptr[i] == ',');
    const char *comma = payload.len ? memchr(payload.ptr, ',', payload.len) : NULL;
    if (comma) {
        out->has_params = 1;
        out->params = (ovms_str_t){ comma + 1, (size_t)(payload.ptr + payload.len - comma - 1) };
    }
    return out->has_cmd ? 0 : OVMS_ENUMBER;
}

int ovms_command_format(int cmd, const char *params, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'C');
    ovms__buf_int(&b, cmd);
    if (params) {
        ovms__buf_putc(&b, ',');
        ovms__buf_cfield(&b, params, OVMS__FIELD_LAST);
    }
    return ovms__buf_done(&b);
}

int ovms_cmdreply_parse(ovms_str_t payload, ovms_cmdreply_t *out)
{
    ovms_str_t f[5];
    int n = ovms_fields_split(payload, f, 5);

    memset(out, 0, sizeof *out);
    out->cmd = ovms__lenient_int(f[0]);
    out->result = n > 1 ? ovms__lenient_int(f[1]) : 0;
    out->k = n > 2 ? ovms__lenient_int(f[2]) : 0;
    out->max = n > 3 ? ovms__lenient_int(f[3]) : 0;
    if (n > 2) {
        /* text: everything after the second comma */
        out->text = (ovms_str_t){ f[2].ptr, (size_t)(payload.ptr + payload.len - f[2].ptr) };
    }
    if (n > 4)
        out->value = f[4];
    out->nfields = 1;
    for (size_t i = 0; i < payload.len; i++)
        out->nfields += payload.ptr[i] == ',';
    return 0;
}

int ovms_cmdreply_format(int cmd, int result, const char *text, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'c');
    ovms__buf_int(&b, cmd);
    ovms__buf_putc(&b, ',');
    ovms__buf_int(&b, result);
    if (text) {
        ovms__buf_putc(&b, ',');
        ovms__buf_cfield(&b, text, OVMS__FIELD_LAST);
    }
    return ovms__buf_done(&b);
}

int ovms_cmdreply_format_multi(int cmd, int result, int k, int max, ovms_str_t value,
                               char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'c');
    ovms__buf_int(&b, cmd);
    ovms__buf_putc(&b, ',');
    ovms__buf_int(&b, result);
    ovms__buf_putc(&b, ',');
    ovms__buf_int(&b, k);
    ovms__buf_putc(&b, ',');
    ovms__buf_int(&b, max);
    ovms__buf_putc(&b, ',');
    ovms__buf_field(&b, value, OVMS__FIELD_LAST);
    return ovms__buf_done(&b);
}

int ovms_cmdreply_continues(const ovms_cmdreply_t *r)
{
    return (r->cmd == 1 || r->cmd == 3) && (r->result != 0 || r->k < r->max - 1);
}

/* ---- E: paranoid ------------------------------------------------------------ */

int ovms_paranoid_parse(ovms_str_t payload, ovms_paranoid_t *out)
{
    memset(out, 0, sizeof *out);
    if (payload.len == 0)
        return OVMS_EFIELDS;
    out->kind = payload.ptr[0];
    if (out->kind == 'T') {
        out->token = (ovms_str_t){ payload.ptr + 1, payload.len - 1 };
        return 0;
    }
    if (out->kind == 'M') {
        if (payload.len < 2)
            return OVMS_EFIELDS;
        out->code = payload.ptr[1];
        out->data = (ovms_str_t){ payload.ptr + 2, payload.len - 2 };
        return 0;
    }
    return OVMS_ECODE;
}

int ovms_paranoid_format(const ovms_paranoid_t *in, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'E');
    ovms__buf_putc(&b, in->kind);
    if (in->kind == 'T') {
        ovms__buf_field(&b, in->token, 0);
    } else if (in->kind == 'M') {
        ovms__buf_putc(&b, in->code);
        ovms__buf_field(&b, in->data, OVMS__FIELD_LAST);
    } else {
        return OVMS_ECODE;
    }
    return ovms__buf_done(&b);
}

/* ---- P and p: push -------------------------------------------------------- */

int ovms_push_parse(ovms_str_t payload, ovms_push_t *out)
{
    memset(out, 0, sizeof *out);
    if (payload.len == 0)
        return OVMS_EFIELDS;
    out->type = payload.ptr[0];
    out->text = (ovms_str_t){ payload.ptr + 1, payload.len - 1 };
    if (out->type == 'E') {
        ovms_str_t f[3];
        if (ovms_fields_split(out->text, f, 3) == 3) {
            out->vehicle_type = f[0];
            out->error_code = ovms__lenient_int(f[1]);
            out->error_data = f[2];
        }
    }
    return 0;
}

int ovms_push_format(char type, const char *text, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'P');
    ovms__buf_putc(&b, type);
    ovms__buf_cfield(&b, text, OVMS__FIELD_LAST);
    return ovms__buf_done(&b);
}

/* rest = <vehicleid>,<netpass>,<pushkeyvalue>, as ^([^,]+),(.+),([^,]+)$:
 * the id ends at the first comma, the key starts after the last. */
static int split_subscription(ovms_str_t rest, ovms_pushsub_t *out)
{
    const char *end = rest.ptr + rest.len;
    const char *first = rest.len ? memchr(rest.ptr, ',', rest.len) : NULL;
    const char *key = end;

    while (key > rest.ptr && key[-1] != ',')
        key--;
    if (!first || first == rest.ptr || key - 1 <= first + 1 || key == end)
        return OVMS_EFIELDS;
    out->vehicle = (ovms_str_t){ rest.ptr, (size_t)(first - rest.ptr) };
    out->netpass = (ovms_str_t){ first + 1, (size_t)(key - 1 - (first + 1)) };
    out->pushkeyvalue = (ovms_str_t){ key, (size_t)(end - key) };
    return 0;
}

int ovms_pushsub_parse(ovms_str_t payload, ovms_pushsub_t *out)
{
    ovms__tok_t tok;
    ovms_str_t rest;
    int rc;

    memset(out, 0, sizeof *out);
    ovms__tok_init(&tok, payload);
    if ((rc = ovms__tok_need(&tok, &out->appid)) < 0 ||
        (rc = ovms__tok_need(&tok, &out->pushtype)) < 0 ||
        (rc = ovms__tok_need(&tok, &out->pushkeytype)) < 0)
        return rc;
    if (!ovms__tok_rest(&tok, &rest))
        return OVMS_EFIELDS;
    if (ovms_str_eq(out->pushkeytype, "simple")) {
        out->simple = 1;
        out->pushkeyvalue = rest;
        return rest.len ? 0 : OVMS_EFIELDS;
    }
    return split_subscription(rest, out);
}

int ovms_pushsub_format(const ovms_pushsub_t *in, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'p');
    ovms__buf_field(&b, in->appid, 0);
    ovms__buf_putc(&b, ',');
    ovms__buf_field(&b, in->pushtype, 0);
    ovms__buf_putc(&b, ',');
    ovms__buf_field(&b, in->simple ? OVMS_STR("simple") : in->pushkeytype, 0);
    ovms__buf_putc(&b, ',');
    if (in->simple) {
        ovms__buf_field(&b, in->pushkeyvalue, OVMS__FIELD_LAST);
    } else {
        ovms__buf_field(&b, in->vehicle, 0);
        ovms__buf_putc(&b, ',');
        /* the netpass may hold commas: the parse takes the last field as the key */
        ovms__buf_field(&b, in->netpass, OVMS__FIELD_LAST);
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, in->pushkeyvalue, 0);
    }
    return ovms__buf_done(&b);
}

/* ---- Z, T and friends ------------------------------------------------------- */

int ovms_count_parse(ovms_str_t payload, int64_t *out)
{
    return ovms_int_parse(payload, out);
}

int ovms_count_format(char code, int64_t n, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, code);
    ovms__buf_int(&b, n);
    return ovms__buf_done(&b);
}

int ovms_fields_split(ovms_str_t payload, ovms_str_t *fields, int max)
{
    ovms__tok_t tok;
    int n = 0;

    if (max < 1)
        return OVMS_EINVAL;
    ovms__tok_init(&tok, payload);
    while (n < max - 1 && ovms__tok_next(&tok, &fields[n]))
        n++;
    if (n == max - 1 && ovms__tok_rest(&tok, &fields[n]))
        n++;
    return n;
}
