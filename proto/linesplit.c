/*
 * linesplit.c -- incremental line framing.
 *
 * Lines that lie wholly inside a received chunk are handed out in place;
 * only a chunk's unfinished last line is copied into the tail, so bytes are
 * copied at most once and only when a line straddles two reads. In heap mode
 * the tail exists only while a partial line is pending: an idle connection
 * holds no buffer.
 *
 * Limits follow PROTOCOL 2.2: more than max + 1 bytes without a LF (room for
 * the CR) or a line whose content exceeds max is an error at once, before
 * the excess is buffered.
 * Threading: a splitter belongs to its connection's thread.
 */
#include "ovms_proto.h"

#include <stdlib.h>
#include <string.h>

#define TAIL_MIN 128

int ovms_linesplit_init(ovms_linesplit_t *ls, size_t max, char *storage, size_t cap)
{
    if (max == 0 || max > 60000 || (storage && cap < max + 2))
        return OVMS_EINVAL;
    ls->tail = storage;
    ls->len = 0;
    ls->cap = storage ? (uint16_t)(cap > 65535 ? 65535 : cap) : 0;
    ls->max = (uint16_t)max;
    ls->owned = storage == NULL;
    ls->emitted = 0;
    return 0;
}

void ovms_linesplit_free(ovms_linesplit_t *ls)
{
    if (ls->owned)
        free(ls->tail);
    ls->tail = NULL;
    ls->len = ls->cap = 0;
}

static void tail_reset(ovms_linesplit_t *ls)
{
    ls->len = 0;
    ls->emitted = 0;
    if (ls->owned) {
        free(ls->tail);
        ls->tail = NULL;
        ls->cap = 0;
    }
}

static int tail_append(ovms_linesplit_t *ls, const char *p, size_t n)
{
    size_t need = (size_t)ls->len + n;

    if (need > ls->cap) {
        size_t cap = ls->cap ? ls->cap : TAIL_MIN;
        char *grown;
        while (cap < need)
            cap *= 2;
        if (cap > (size_t)ls->max + 2)
            cap = (size_t)ls->max + 2;
        grown = realloc(ls->tail, cap);
        if (!grown)
            return OVMS_ENOMEM;
        ls->tail = grown;
        ls->cap = (uint16_t)cap;
    }
    memcpy(ls->tail + ls->len, p, n);
    ls->len = (uint16_t)need;
    return 0;
}

/* Strip a CR before the LF and enforce the content limit. */
static int finish_line(const ovms_linesplit_t *ls, const char *p, size_t n, ovms_str_t *line)
{
    if (n && p[n - 1] == '\r')
        n--;
    if (n > ls->max)
        return OVMS_ELINE;
    *line = (ovms_str_t){ p, n };
    return 1;
}

int ovms_linesplit_next(ovms_linesplit_t *ls, const char **data, size_t *len,
                        ovms_str_t *line)
{
    const char *p = *data, *lf;
    size_t k, limit = (size_t)ls->max + 1;
    int rc;

    if (ls->emitted)
        tail_reset(ls);
    if (*len == 0)
        return 0;
    lf = memchr(p, '\n', *len);
    if (!lf) {
        if ((size_t)ls->len + *len > limit)
            return OVMS_ELINE;
        rc = tail_append(ls, p, *len);
        *data += *len;
        *len = 0;
        return rc;
    }
    k = (size_t)(lf - p);
    *data += k + 1;
    *len -= k + 1;
    if (ls->len == 0)
        return finish_line(ls, p, k, line);
    if ((size_t)ls->len + k > limit)
        return OVMS_ELINE;
    rc = tail_append(ls, p, k);
    if (rc < 0)
        return rc;
    ls->emitted = 1;
    return finish_line(ls, ls->tail, ls->len, line);
}
