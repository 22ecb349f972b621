/*
 * msg_repl.c -- replication records between nodes (PROTOCOL, MP-S section):
 * R (RV vehicles, RO owners, RK API tokens, RW watermarks) and r (stored
 * car messages, paranoid tokens, historical records).
 *
 * R records keep the guide's fields first and append origin and seq; in r
 * our fields come first so that the guide's free-text last field stays last.
 * Timestamps must be exact "YYYY-MM-DD HH:MM:SS": last-writer-wins compares
 * them as strings.
 * Threading: pure functions.
 */
#include "build.h"

#include <string.h>

static int parse_seq(ovms_str_t s, uint64_t *seq)
{
    int64_t v;
    int rc = ovms_int_parse(s, &v);
    if (rc < 0)
        return rc;
    if (v < 0)
        return OVMS_ERANGE;
    *seq = (uint64_t)v;
    return 0;
}

static int check_changed(ovms_str_t s)
{
    int64_t t;
    return s.len == 19 && ovms_timestamp_parse(s, &t) == 0 ? 0 : OVMS_EINVAL;
}

/* <changed>,<origin>,<seq>: how R records end. */
static int parse_change(ovms__tok_t *tok, ovms_change_t *ch)
{
    ovms_str_t seq;
    int rc;
    if ((rc = ovms__tok_need(tok, &ch->changed)) < 0 ||
        (rc = ovms__tok_need(tok, &ch->origin)) < 0 ||
        (rc = ovms__tok_need(tok, &seq)) < 0)
        return rc;
    if ((rc = check_changed(ch->changed)) < 0 || (rc = ovms_serverid_check(ch->origin)) < 0)
        return rc;
    return parse_seq(seq, &ch->seq);
}

static int parse_deleted(ovms__tok_t *tok, int *deleted)
{
    int64_t v;
    int rc = ovms__tok_need_int(tok, &v);
    if (rc < 0)
        return rc;
    if (v != 0 && v != 1)
        return OVMS_ERANGE;
    *deleted = (int)v;
    return 0;
}

static int parse_rv(ovms__tok_t *tok, ovms_repl_t *out)
{
    int rc;
    if ((rc = ovms__tok_need(tok, &out->vehicle)) < 0 ||
        (rc = ovms__tok_need(tok, &out->owner)) < 0 ||
        (rc = ovms__tok_need(tok, &out->carpass)) < 0 ||
        (rc = ovms__tok_need(tok, &out->v_server)) < 0 ||
        (rc = parse_deleted(tok, &out->deleted)) < 0 ||
        (rc = parse_change(tok, &out->ch)) < 0)
        return rc;
    return ovms_vehicleid_check(out->vehicle);
}

static int parse_ro(ovms__tok_t *tok, ovms_repl_t *out)
{
    int rc;
    if ((rc = ovms__tok_need(tok, &out->ownerid)) < 0 ||
        (rc = ovms__tok_need(tok, &out->name)) < 0 ||
        (rc = ovms__tok_need(tok, &out->mail)) < 0 ||
        (rc = ovms__tok_need(tok, &out->pwhash)) < 0 ||
        (rc = ovms__tok_need_int(tok, &out->status)) < 0 ||
        (rc = parse_deleted(tok, &out->deleted)) < 0 ||
        (rc = parse_change(tok, &out->ch)) < 0)
        return rc;
    return out->ownerid.len ? 0 : OVMS_EFIELDS;
}

/* RK<hash>,<ownerid>,<prefix>,<application>,<purpose>,<created>,<deleted>,
 * <changed>,<origin>,<seq>,<permit>: the permit, a list with commas, last. */
static int parse_rk(ovms__tok_t *tok, ovms_repl_t *out)
{
    int rc;
    if ((rc = ovms__tok_need(tok, &out->tokenhash)) < 0 ||
        (rc = ovms__tok_need(tok, &out->ownerid)) < 0 ||
        (rc = ovms__tok_need(tok, &out->prefix)) < 0 ||
        (rc = ovms__tok_need(tok, &out->application)) < 0 ||
        (rc = ovms__tok_need(tok, &out->purpose)) < 0 ||
        (rc = ovms__tok_need(tok, &out->created)) < 0 ||
        (rc = parse_deleted(tok, &out->deleted)) < 0 ||
        (rc = parse_change(tok, &out->ch)) < 0)
        return rc;
    if (out->tokenhash.len != 64 || !out->ownerid.len || check_changed(out->created) < 0)
        return OVMS_EINVAL;
    ovms__tok_rest(tok, &out->permit);
    return 0;
}

int ovms_repl_parse(ovms_str_t payload, ovms_repl_t *out)
{
    ovms__tok_t tok;
    int rc;

    memset(out, 0, sizeof *out);
    if (payload.len < 1)
        return OVMS_EFIELDS;
    out->kind = payload.ptr[0];
    ovms__tok_init(&tok, (ovms_str_t){ payload.ptr + 1, payload.len - 1 });
    switch (out->kind) {
    case 'V': rc = parse_rv(&tok, out); break;
    case 'O': rc = parse_ro(&tok, out); break;
    case 'K': return parse_rk(&tok, out);
    case 'W':
        if ((rc = ovms__tok_need(&tok, &out->serverid)) < 0 ||
            (rc = ovms_serverid_check(out->serverid)) < 0)
            return rc;
        ovms__tok_rest(&tok, &out->watermarks);
        return 0;
    default: return OVMS_ECODE;
    }
    if (rc < 0)
        return rc;
    ovms__tok_rest(&tok, &out->extra);
    return 0;
}

static void format_change(ovms__buf_t *b, const ovms_change_t *ch)
{
    if (check_changed(ch->changed) < 0 || ovms_serverid_check(ch->origin) < 0) {
        if (!b->err)
            b->err = OVMS_EINVAL;
        return;
    }
    ovms__buf_putc(b, ',');
    ovms__buf_field(b, ch->changed, 0);
    ovms__buf_putc(b, ',');
    ovms__buf_field(b, ch->origin, 0);
    ovms__buf_putc(b, ',');
    ovms__buf_uint(b, ch->seq);
}

static void put_fields(ovms__buf_t *b, const ovms_str_t *f, int n)
{
    for (int i = 0; i < n; i++) {
        if (i)
            ovms__buf_putc(b, ',');
        ovms__buf_field(b, f[i], 0);
    }
}

int ovms_repl_format(const ovms_repl_t *in, char *buf, size_t cap)
{
    ovms__buf_t b;

    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'R');
    ovms__buf_putc(&b, in->kind);
    if (in->kind == 'V') {
        const ovms_str_t f[] = { in->vehicle, in->owner, in->carpass, in->v_server };
        put_fields(&b, f, 4);
    } else if (in->kind == 'O') {
        const ovms_str_t f[] = { in->ownerid, in->name, in->mail, in->pwhash };
        put_fields(&b, f, 4);
        ovms__buf_putc(&b, ',');
        ovms__buf_int(&b, in->status);
    } else if (in->kind == 'K') {
        const ovms_str_t f[] = { in->tokenhash, in->ownerid, in->prefix, in->application,
                                 in->purpose, in->created };
        put_fields(&b, f, 6);
        ovms__buf_puts(&b, in->deleted ? ",1" : ",0");
        format_change(&b, &in->ch);
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, in->permit, OVMS__FIELD_LAST);
        return ovms__buf_done(&b);
    } else if (in->kind == 'W') {
        ovms__buf_field(&b, in->serverid, 0);
        if (in->watermarks.ptr) {
            ovms__buf_putc(&b, ',');
            ovms__buf_field(&b, in->watermarks, OVMS__FIELD_LAST);
        }
        return ovms__buf_done(&b);
    } else {
        return OVMS_ECODE;
    }
    ovms__buf_puts(&b, in->deleted ? ",1" : ",0");
    format_change(&b, &in->ch);
    if (in->extra.ptr) {
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, in->extra, OVMS__FIELD_LAST);
    }
    return ovms__buf_done(&b);
}

/* ---- r -------------------------------------------------------------------- */

static int parse_r_history(ovms__tok_t *tok, ovms_replmsg_t *out)
{
    int rc;
    if ((rc = ovms__tok_need(tok, &out->type)) < 0 ||
        (rc = ovms__tok_need_int(tok, &out->recno)) < 0 ||
        (rc = ovms__tok_need(tok, &out->expires)) < 0)
        return rc;
    if (check_changed(out->expires) < 0)
        return OVMS_EINVAL;
    return ovms__tok_rest(tok, &out->data) ? 0 : OVMS_EFIELDS;
}

static int parse_r_stored(ovms__tok_t *tok, ovms_replmsg_t *out)
{
    ovms_str_t flag;
    int rc;
    if ((rc = ovms__tok_need(tok, &flag)) < 0 || (rc = ovms__tok_need(tok, &out->ptoken)) < 0)
        return rc;
    if (!ovms_str_eq(flag, "0") && !ovms_str_eq(flag, "1"))
        return OVMS_ERANGE;
    out->paranoid = flag.ptr[0] == '1';
    return ovms__tok_rest(tok, &out->payload) ? 0 : OVMS_EFIELDS;
}

int ovms_replmsg_parse(ovms_str_t payload, ovms_replmsg_t *out)
{
    ovms__tok_t tok;
    ovms_str_t seq, code;
    int rc;

    memset(out, 0, sizeof *out);
    ovms__tok_init(&tok, payload);
    if ((rc = ovms__tok_need(&tok, &out->ch.origin)) < 0 ||
        (rc = ovms__tok_need(&tok, &seq)) < 0 ||
        (rc = ovms__tok_need(&tok, &out->ch.changed)) < 0 ||
        (rc = ovms__tok_need(&tok, &out->vehicle)) < 0 ||
        (rc = ovms__tok_need(&tok, &code)) < 0)
        return rc;
    if ((rc = ovms_serverid_check(out->ch.origin)) < 0 || (rc = parse_seq(seq, &out->ch.seq)) < 0 ||
        (rc = check_changed(out->ch.changed)) < 0 || (rc = ovms_vehicleid_check(out->vehicle)) < 0)
        return rc;
    if (code.len != 1)
        return OVMS_ECODE;
    out->code = code.ptr[0];
    if (out->code == 'E')
        return ovms__tok_rest(&tok, &out->ptoken) ? 0 : OVMS_EFIELDS;
    if (out->code == 'H')
        return parse_r_history(&tok, out);
    return parse_r_stored(&tok, out);
}

int ovms_replmsg_format(const ovms_replmsg_t *in, char *buf, size_t cap)
{
    ovms__buf_t b;

    if (check_changed(in->ch.changed) < 0 || ovms_serverid_check(in->ch.origin) < 0)
        return OVMS_EINVAL;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'r');
    ovms__buf_field(&b, in->ch.origin, 0);
    ovms__buf_putc(&b, ',');
    ovms__buf_uint(&b, in->ch.seq);
    ovms__buf_putc(&b, ',');
    ovms__buf_field(&b, in->ch.changed, 0);
    ovms__buf_putc(&b, ',');
    ovms__buf_field(&b, in->vehicle, 0);
    ovms__buf_putc(&b, ',');
    ovms__buf_putc(&b, in->code);
    ovms__buf_putc(&b, ',');
    if (in->code == 'E') {
        ovms__buf_field(&b, in->ptoken, 0);
    } else if (in->code == 'H') {
        ovms__buf_field(&b, in->type, 0);
        ovms__buf_putc(&b, ',');
        ovms__buf_int(&b, in->recno);
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, in->expires, 0);
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, in->data, OVMS__FIELD_LAST);
    } else {
        ovms__buf_puts(&b, in->paranoid ? "1," : "0,");
        ovms__buf_field(&b, in->ptoken, 0);
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, in->payload, OVMS__FIELD_LAST);
    }
    return ovms__buf_done(&b);
}
