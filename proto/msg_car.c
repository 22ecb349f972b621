/*
 * msg_car.c -- typed forms of the car's data messages: S D L F W X (fixed
 * field tables), Y (TPMS sections), V (capabilities) and the group messages
 * g and G.
 *
 * The fixed-layout messages share one table-driven engine: the field lists
 * in ovms_proto.h generate both the structs and the tables here. Parsing
 * accepts fewer fields than the table knows (older firmware) and keeps any
 * unknown trailing fields verbatim in `extra` (newer firmware), so parse
 * then format gives back the same bytes.
 * Threading: pure functions.
 */
#include "build.h"

#include <stddef.h>
#include <string.h>

enum { FT_STR, FT_NUM, FT_INT };

typedef struct field_desc {
    uint8_t type;
    uint16_t offset;
} field_desc_t;

typedef struct table {
    char code;
    uint8_t n;
    size_t size;
    const field_desc_t *f;
} table_t;

/* All table structs begin with the same two members. */
_Static_assert(offsetof(ovms_state_t, extra) == offsetof(ovms_location_t, extra) &&
               offsetof(ovms_state_t, nfields) == offsetof(ovms_generator_t, nfields),
               "table structs share their header");

#define DESC(type, name) { FT_##type, (uint16_t)offsetof(CUR, name) },
#define TABLE(var, code, tname, FIELDS)                                             \
    static const field_desc_t var##_fields[] = { FIELDS(DESC) };                   \
    static const table_t var = { code, sizeof var##_fields / sizeof(field_desc_t), \
                                 sizeof(tname##_t), var##_fields };

#define CUR ovms_state_t
TABLE(state_table, 'S', ovms_state, OVMS_STATE_FIELDS)
#undef CUR
#define CUR ovms_environment_t
TABLE(environment_table, 'D', ovms_environment, OVMS_ENVIRONMENT_FIELDS)
#undef CUR
#define CUR ovms_location_t
TABLE(location_table, 'L', ovms_location, OVMS_LOCATION_FIELDS)
#undef CUR
#define CUR ovms_firmware_t
TABLE(firmware_table, 'F', ovms_firmware, OVMS_FIRMWARE_FIELDS)
#undef CUR
#define CUR ovms_tpmsw_t
TABLE(tpmsw_table, 'W', ovms_tpmsw, OVMS_TPMSW_FIELDS)
#undef CUR
#define CUR ovms_generator_t
TABLE(generator_table, 'X', ovms_generator, OVMS_GENERATOR_FIELDS)
#undef CUR
#define CUR ovms_groupdata_t
TABLE(groupdata_table, 'g', ovms_groupdata, OVMS_GROUPDATA_FIELDS)
#undef CUR

static int parse_field(const field_desc_t *fd, ovms_str_t text, char *base)
{
    void *at = base + fd->offset;
    switch (fd->type) {
    case FT_NUM: return ovms_num_parse(text, at);
    case FT_INT: return ovms_int_parse(text, at);
    default: *(ovms_str_t *)at = text; return 0;
    }
}

static void format_field(const field_desc_t *fd, const char *base, ovms__buf_t *b)
{
    const void *at = base + fd->offset;
    switch (fd->type) {
    case FT_NUM: ovms__buf_num(b, *(const ovms_num_t *)at); break;
    case FT_INT: ovms__buf_int(b, *(const int64_t *)at); break;
    default: ovms__buf_field(b, *(const ovms_str_t *)at, 0); break;
    }
}

static void clear_table_struct(const table_t *t, char *base)
{
    memset(base, 0, t->size);
    for (int i = 0; i < t->n; i++)
        if (t->f[i].type == FT_NUM)
            *(ovms_num_t *)(base + t->f[i].offset) = OVMS_NUM(0, OVMS_NUM_EMPTY);
}

static int table_parse(const table_t *t, ovms_str_t payload, void *out)
{
    char *base = out;
    int *nfields = (int *)(base + offsetof(ovms_state_t, nfields));
    ovms_str_t *extra = (ovms_str_t *)(base + offsetof(ovms_state_t, extra));
    ovms__tok_t tok;
    ovms_str_t field;

    clear_table_struct(t, base);
    if (payload.len == 0)
        return 0;
    ovms__tok_init(&tok, payload);
    while (*nfields < t->n && ovms__tok_next(&tok, &field)) {
        int rc = parse_field(&t->f[*nfields], field, base);
        if (rc < 0)
            return rc;
        (*nfields)++;
    }
    ovms__tok_rest(&tok, extra);
    return 0;
}

static int table_format(const table_t *t, const void *in, char *buf, size_t cap)
{
    const char *base = in;
    int nfields = *(const int *)(base + offsetof(ovms_state_t, nfields));
    const ovms_str_t *extra = (const ovms_str_t *)(base + offsetof(ovms_state_t, extra));
    ovms__buf_t b;

    if (nfields < 0 || nfields > t->n)
        return OVMS_EINVAL;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, t->code);
    for (int i = 0; i < nfields; i++) {
        if (i)
            ovms__buf_putc(&b, ',');
        format_field(&t->f[i], base, &b);
    }
    if (nfields == t->n && extra->ptr) {
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, *extra, OVMS__FIELD_LAST);
    }
    return ovms__buf_done(&b);
}

#define TABLE_API(tname, table)                                                \
    int tname##_parse(ovms_str_t payload, tname##_t *out)                      \
    {                                                                          \
        return table_parse(&table, payload, out);                              \
    }                                                                          \
    int tname##_format(const tname##_t *in, char *buf, size_t cap)             \
    {                                                                          \
        return table_format(&table, in, buf, cap);                             \
    }
TABLE_API(ovms_state, state_table)
TABLE_API(ovms_environment, environment_table)
TABLE_API(ovms_location, location_table)
TABLE_API(ovms_firmware, firmware_table)
TABLE_API(ovms_tpmsw, tpmsw_table)
TABLE_API(ovms_generator, generator_table)

/* ---- Y: TPMS sections ----------------------------------------------------- */

static int need_count(ovms__tok_t *tok, int *n)
{
    int64_t v;
    int rc = ovms__tok_need_int(tok, &v);
    if (rc < 0)
        return rc;
    if (v < 0 || v > OVMS_TPMS_WHEELS)
        return OVMS_ERANGE;
    *n = (int)v;
    return 0;
}

static int need_num(ovms__tok_t *tok, ovms_num_t *v)
{
    ovms_str_t f;
    int rc = ovms__tok_need(tok, &f);
    return rc < 0 ? rc : ovms_num_parse(f, v);
}

static int parse_tpms_section(ovms__tok_t *tok, ovms_tpms_section_t *sec)
{
    int rc = need_count(tok, &sec->n);
    for (int i = 0; rc == 0 && i < sec->n; i++)
        rc = need_num(tok, &sec->v[i]);
    return rc < 0 ? rc : need_num(tok, &sec->valid);
}

int ovms_tpms_parse(ovms_str_t payload, ovms_tpms_t *out)
{
    ovms__tok_t tok;
    int rc;

    memset(out, 0, sizeof *out);
    ovms__tok_init(&tok, payload);
    rc = need_count(&tok, &out->nwheels);
    for (int i = 0; rc == 0 && i < out->nwheels; i++)
        rc = ovms__tok_need(&tok, &out->wheel[i]);
    for (int s = 0; rc == 0 && s < OVMS_TPMS_SENSOR; s++)
        rc = parse_tpms_section(&tok, &out->sec[s]);
    if (rc < 0)
        return rc;
    out->nsections = OVMS_TPMS_SENSOR;
    /* The sensor map is optional; anything else after it is kept. */
    ovms__tok_t probe = tok;
    if (!tok.done && parse_tpms_section(&probe, &out->sec[OVMS_TPMS_SENSOR]) == 0) {
        out->nsections = OVMS_TPMS_SECTIONS;
        tok = probe;
    } else {
        memset(&out->sec[OVMS_TPMS_SENSOR], 0, sizeof out->sec[0]);
    }
    ovms__tok_rest(&tok, &out->extra);
    return 0;
}

int ovms_tpms_format(const ovms_tpms_t *in, char *buf, size_t cap)
{
    ovms__buf_t b;

    if (in->nwheels < 0 || in->nwheels > OVMS_TPMS_WHEELS ||
        (in->nsections != OVMS_TPMS_SENSOR && in->nsections != OVMS_TPMS_SECTIONS))
        return OVMS_EINVAL;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'Y');
    ovms__buf_int(&b, in->nwheels);
    for (int i = 0; i < in->nwheels; i++) {
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, in->wheel[i], 0);
    }
    for (int s = 0; s < in->nsections; s++) {
        const ovms_tpms_section_t *sec = &in->sec[s];
        if (sec->n < 0 || sec->n > OVMS_TPMS_WHEELS)
            return OVMS_EINVAL;
        ovms__buf_putc(&b, ',');
        ovms__buf_int(&b, sec->n);
        for (int i = 0; i < sec->n; i++) {
            ovms__buf_putc(&b, ',');
            ovms__buf_num(&b, sec->v[i]);
        }
        ovms__buf_putc(&b, ',');
        ovms__buf_num(&b, sec->valid);
    }
    if (in->extra.ptr) {
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, in->extra, OVMS__FIELD_LAST);
    }
    return ovms__buf_done(&b);
}

/* ---- V: capabilities ------------------------------------------------------ */

static int parse_cap_number(const char **p, const char *end, uint16_t *v)
{
    unsigned n = 0;
    const char *start = *p;
    while (*p < end && **p >= '0' && **p <= '9' && n <= 65535)
        n = n * 10 + (unsigned)(*(*p)++ - '0');
    if (*p == start || n > 65535)
        return OVMS_ENUMBER;
    *v = (uint16_t)n;
    return 0;
}

static int parse_cap(ovms_str_t item, uint16_t *lo, uint16_t *hi)
{
    const char *p = item.ptr + 1, *end = item.ptr + item.len;

    if (item.len < 2 || item.ptr[0] != 'C' || parse_cap_number(&p, end, lo) < 0)
        return OVMS_ENUMBER;
    *hi = *lo;
    if (p < end && *p == '-') {
        p++;
        if (parse_cap_number(&p, end, hi) < 0 || *hi < *lo)
            return OVMS_ENUMBER;
    }
    return p == end ? 0 : OVMS_ENUMBER;
}

int ovms_caps_parse(ovms_str_t payload, ovms_caps_t *out)
{
    ovms__tok_t tok;
    ovms_str_t item;

    out->n = 0;
    if (payload.len == 0)
        return 0;
    ovms__tok_init(&tok, payload);
    while (ovms__tok_next(&tok, &item)) {
        if (out->n == OVMS_CAPS_MAX)
            return OVMS_ERANGE;
        int rc = parse_cap(item, &out->r[out->n].lo, &out->r[out->n].hi);
        if (rc < 0)
            return rc;
        out->n++;
    }
    return 0;
}

int ovms_caps_format(const ovms_caps_t *in, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'V');
    for (int i = 0; i < in->n; i++) {
        ovms__buf_puts(&b, i ? ",C" : "C");
        ovms__buf_int(&b, in->r[i].lo);
        if (in->r[i].hi != in->r[i].lo) {
            ovms__buf_putc(&b, '-');
            ovms__buf_int(&b, in->r[i].hi);
        }
    }
    return ovms__buf_done(&b);
}

int ovms_caps_has(const ovms_caps_t *c, int cmd)
{
    for (int i = 0; i < c->n; i++)
        if (cmd >= c->r[i].lo && cmd <= c->r[i].hi)
            return 1;
    return 0;
}

/* ---- g and G: groups ------------------------------------------------------ */

static void parse_group_data(ovms_group_t *out)
{
    if (table_parse(&groupdata_table, out->data, &out->d) < 0)
        clear_table_struct(&groupdata_table, (char *)&out->d);
}

int ovms_group_parse_car(ovms_str_t payload, ovms_group_t *out)
{
    ovms__tok_t tok;

    memset(out, 0, sizeof *out);
    ovms__tok_init(&tok, payload);
    ovms__tok_next(&tok, &out->group);
    if (out->group.len == 0)
        return OVMS_EFIELDS;
    ovms__tok_rest(&tok, &out->data);
    parse_group_data(out);
    return 0;
}

int ovms_group_parse_relay(ovms_str_t payload, ovms_group_t *out)
{
    ovms__tok_t tok;

    memset(out, 0, sizeof *out);
    ovms__tok_init(&tok, payload);
    ovms__tok_next(&tok, &out->vehicle);
    if (out->vehicle.len == 0 || !ovms__tok_next(&tok, &out->group) || out->group.len == 0)
        return OVMS_EFIELDS;
    ovms__tok_rest(&tok, &out->data);
    parse_group_data(out);
    return 0;
}

int ovms_group_format_car(const char *group, ovms_str_t data, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'g');
    ovms__buf_cfield(&b, group, 0);
    if (data.ptr) {
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, data, OVMS__FIELD_LAST);
    }
    return ovms__buf_done(&b);
}

int ovms_group_format_relay(const char *vehicle, const char *group, ovms_str_t data,
                            char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'g');
    ovms__buf_cfield(&b, vehicle, 0);
    ovms__buf_putc(&b, ',');
    ovms__buf_cfield(&b, group, 0);
    if (data.ptr) {
        ovms__buf_putc(&b, ',');
        ovms__buf_field(&b, data, OVMS__FIELD_LAST);
    }
    return ovms__buf_done(&b);
}

int ovms_groupsub_parse(ovms_str_t payload, ovms_groupsub_t *out)
{
    ovms__tok_t tok;

    memset(out, 0, sizeof *out);
    ovms__tok_init(&tok, payload);
    ovms__tok_next(&tok, &out->group);
    if (out->group.len == 0)
        return OVMS_EFIELDS;
    ovms__tok_rest(&tok, &out->rest);
    return 0;
}

int ovms_groupsub_format(const char *group, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_putc(&b, 'G');
    ovms__buf_cfield(&b, group, 0);
    return ovms__buf_done(&b);
}
