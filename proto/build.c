/*
 * build.c -- the bounded string builder behind every proto formatter.
 * Threading: operates on caller-owned buffers only.
 */
#include "build.h"

#include <stdio.h>
#include <string.h>

void ovms__buf_init(ovms__buf_t *b, char *p, size_t cap)
{
    b->p = p;
    b->cap = cap;
    b->len = 0;
    b->err = cap ? 0 : OVMS_ENOSPC;
    if (cap)
        p[0] = '\0';
}

void ovms__buf_put(ovms__buf_t *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (b->len + n + 1 > b->cap) {
        b->err = OVMS_ENOSPC;
        return;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ovms__buf_puts(ovms__buf_t *b, const char *s)
{
    ovms__buf_put(b, s, strlen(s));
}

void ovms__buf_putc(ovms__buf_t *b, char c)
{
    ovms__buf_put(b, &c, 1);
}

void ovms__buf_int(ovms__buf_t *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    ovms__buf_put(b, tmp, (size_t)n);
}

void ovms__buf_uint(ovms__buf_t *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    ovms__buf_put(b, tmp, (size_t)n);
}

void ovms__buf_num(ovms__buf_t *b, ovms_num_t n)
{
    char tmp[64];
    int len;

    if (ovms_num_empty(n))
        return;
    if (n.dp > 18 || n.v != n.v || n.v > 1e18 || n.v < -1e18) {
        if (!b->err)
            b->err = OVMS_ERANGE;
        return;
    }
    len = snprintf(tmp, sizeof tmp, "%.*f", (int)n.dp, n.v);
    ovms__buf_put(b, tmp, (size_t)len);
}

int ovms__field_ok(ovms_str_t s, int flags)
{
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c == '\n' || c == '\0')
            return OVMS_ECOMMA;
        /* CR is V3's line break inside free text: only the last field has it. */
        if ((c == ',' || c == '\r') && !(flags & OVMS__FIELD_LAST))
            return OVMS_ECOMMA;
    }
    return 0;
}

void ovms__buf_field(ovms__buf_t *b, ovms_str_t s, int flags)
{
    int rc = ovms__field_ok(s, flags);
    if (rc < 0) {
        if (!b->err)
            b->err = rc;
        return;
    }
    ovms__buf_put(b, s.ptr, s.len);
}

void ovms__buf_cfield(ovms__buf_t *b, const char *s, int flags)
{
    ovms__buf_field(b, ovms_str_c(s ? s : ""), flags);
}

int ovms__buf_done(ovms__buf_t *b)
{
    return b->err ? b->err : (int)b->len;
}

void ovms__tok_init(ovms__tok_t *t, ovms_str_t s)
{
    if (!s.ptr)
        s.ptr = "";             /* an empty slice may carry no pointer */
    t->p = s.ptr;
    t->end = s.ptr + s.len;
    t->done = 0;
}

int ovms__tok_next(ovms__tok_t *t, ovms_str_t *field)
{
    const char *comma;

    if (t->done)
        return 0;
    comma = t->p < t->end ? memchr(t->p, ',', (size_t)(t->end - t->p)) : NULL;
    if (comma) {
        *field = (ovms_str_t){ t->p, (size_t)(comma - t->p) };
        t->p = comma + 1;
    } else {
        *field = (ovms_str_t){ t->p, (size_t)(t->end - t->p) };
        t->p = t->end;
        t->done = 1;
    }
    return 1;
}

int ovms__tok_rest(ovms__tok_t *t, ovms_str_t *rest)
{
    if (t->done)
        return 0;
    *rest = (ovms_str_t){ t->p, (size_t)(t->end - t->p) };
    t->p = t->end;
    t->done = 1;
    return 1;
}

int ovms__tok_need(ovms__tok_t *t, ovms_str_t *field)
{
    return ovms__tok_next(t, field) ? 0 : OVMS_EFIELDS;
}

int ovms__tok_need_int(ovms__tok_t *t, int64_t *v)
{
    ovms_str_t f;
    if (!ovms__tok_next(t, &f))
        return OVMS_EFIELDS;
    return ovms_int_parse(f, v);
}

int64_t ovms__lenient_int(ovms_str_t s)
{
    size_t i = 0;
    int64_t v = 0;
    int neg = 0;

    while (i < s.len && (s.ptr[i] == ' ' || s.ptr[i] == '\t'))
        i++;
    if (i < s.len && (s.ptr[i] == '-' || s.ptr[i] == '+'))
        neg = s.ptr[i++] == '-';
    for (; i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9'; i++) {
        if (v > (INT64_MAX - 9) / 10)
            break;
        v = v * 10 + (s.ptr[i] - '0');
    }
    return neg ? -v : v;
}
