/*
 * welcome.c -- the plain-text first lines of a connection.
 *
 * Client welcomes are matched the way the reference server's regex
 * ^MP-(\S)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)(\s+(.+))? matches them, so any
 * line a real car or app gets through with works here; everything else is
 * OVMS_EWELCOME, which a server answers by closing silently. The server
 * reply is parsed the way cars read it: the token, then everything after it
 * as the digest, compared as a string.
 * Threading: pure functions.
 */
#include "build.h"

#include <string.h>

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

typedef struct cursor {
    const char *p, *end;
} cursor_t;

static size_t skip_space(cursor_t *c)
{
    const char *start = c->p;
    while (c->p < c->end && is_space(*c->p))
        c->p++;
    return (size_t)(c->p - start);
}

static ovms_str_t take_word(cursor_t *c)
{
    const char *start = c->p;
    while (c->p < c->end && !is_space(*c->p))
        c->p++;
    return (ovms_str_t){ start, (size_t)(c->p - start) };
}

/* \s+(\S+): whitespace, then a non-empty word. */
static int next_word(cursor_t *c, ovms_str_t *w)
{
    if (skip_space(c) == 0)
        return OVMS_EWELCOME;
    *w = take_word(c);
    return w->len ? 0 : OVMS_EWELCOME;
}

static int parse_mp(cursor_t *c, ovms_welcome_t *w)
{
    if (c->p >= c->end || is_space(*c->p))
        return OVMS_EWELCOME;
    w->kind = OVMS_WELCOME_MP;
    w->role = *c->p++;
    if (next_word(c, &w->scheme) || next_word(c, &w->token) || next_word(c, &w->digest) ||
        next_word(c, &w->vehicle))
        return OVMS_EWELCOME;
    if (skip_space(c))
        w->rest = (ovms_str_t){ c->p, (size_t)(c->end - c->p) };
    return 0;
}

static int parse_apc(cursor_t *c, ovms_welcome_t *w)
{
    w->kind = OVMS_WELCOME_APC;
    if (skip_space(c) == 0 || c->p >= c->end || is_space(*c->p))
        return OVMS_EWELCOME;
    w->scheme = (ovms_str_t){ c->p++, 1 };      /* (\S): one character */
    if (next_word(c, &w->token))
        return OVMS_EWELCOME;
    return 0;
}

int ovms_welcome_parse(const char *line, size_t len, ovms_welcome_t *w)
{
    cursor_t c = { line, line + len };

    memset(w, 0, sizeof *w);
    if (memchr(line, '\0', len))
        return OVMS_EWELCOME;
    if (len >= 3 && memcmp(line, "MP-", 3) == 0) {
        c.p += 3;
        return parse_mp(&c, w);
    }
    if (len >= 4 && memcmp(line, "AP-C", 4) == 0) {
        c.p += 4;
        return parse_apc(&c, w);
    }
    if ((len >= 16 && memcmp(line, "GET /apiv2 HTTP/", 16) == 0) ||
        (len >= 17 && memcmp(line, "GET /apiv2/ HTTP/", 17) == 0)) {
        w->kind = OVMS_WELCOME_HTTP;
        return 0;
    }
    return OVMS_EWELCOME;
}

int ovms_welcome_format_client(char *buf, size_t cap, char role, const char *token,
                               const char *digest, const char *vehicle)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_puts(&b, "MP-");
    ovms__buf_putc(&b, role);
    ovms__buf_puts(&b, " 0 ");
    ovms__buf_puts(&b, token);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, digest);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, vehicle);
    ovms__buf_puts(&b, "\r\n");
    return ovms__buf_done(&b);
}

int ovms_welcome_format_scheme1(char *buf, size_t cap, char role, const char *user,
                                const char *password, const char *vehicle)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_puts(&b, "MP-");
    ovms__buf_putc(&b, role);
    ovms__buf_puts(&b, " 1 ");
    ovms__buf_puts(&b, user);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, password);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, vehicle);
    ovms__buf_puts(&b, "\r\n");
    return ovms__buf_done(&b);
}

int ovms_welcome_format_server(char *buf, size_t cap, const char *token, const char *digest)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_puts(&b, "MP-S 0 ");
    ovms__buf_puts(&b, token);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, digest);
    ovms__buf_puts(&b, "\r\n");
    return ovms__buf_done(&b);
}

int ovms_welcome_format_server1(char *buf, size_t cap, const char *user, const char *vehicle,
                                const char *const *ids, size_t nids)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_puts(&b, "MP-S 1 ");
    ovms__buf_puts(&b, user);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, vehicle);
    for (size_t i = 0; i < nids; i++) {
        ovms__buf_putc(&b, ' ');
        ovms__buf_puts(&b, ids[i]);
    }
    ovms__buf_puts(&b, "\r\n");
    return ovms__buf_done(&b);
}

int ovms_server_welcome_parse(const char *line, size_t len, ovms_server_welcome_t *sw)
{
    const char *p = line + 7, *end = line + len, *sp;

    if (len < 7 || memcmp(line, "MP-S 0 ", 7) != 0)
        return OVMS_EWELCOME;
    sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || sp == p || sp + 1 >= end)
        return OVMS_EWELCOME;
    sw->token = (ovms_str_t){ p, (size_t)(sp - p) };
    sw->digest = (ovms_str_t){ sp + 1, (size_t)(end - sp - 1) };
    return 0;
}

int ovms_server_welcome_verify(const char *line, size_t len, const char *password,
                               size_t pwlen, const char *client_token,
                               char *server_token, size_t stcap)
{
    ovms_server_welcome_t sw;
    char want[OVMS_DIGEST_B64_LEN + 1];
    int rc = ovms_server_welcome_parse(line, len, &sw);

    if (rc < 0)
        return rc;
    if (ovms_str_eq(sw.token, client_token))
        return OVMS_EDIGEST;        /* an echo of our own handshake */
    rc = ovms_digest_b64(password, pwlen, sw.token.ptr, sw.token.len, want);
    if (rc < 0)
        return rc;
    if (!ovms_str_eq(sw.digest, want))
        return OVMS_EDIGEST;
    return ovms_str_copy(sw.token, server_token, stcap) < 0 ? OVMS_ENOSPC : 0;
}

int ovms_server_welcome1_parse(const char *line, size_t len, ovms_server_welcome1_t *sw)
{
    cursor_t c = { line, line + len };

    memset(sw, 0, sizeof *sw);
    if (len < 7 || memcmp(line, "MP-S 1 ", 7) != 0)
        return OVMS_EWELCOME;
    c.p += 6;
    if (next_word(&c, &sw->user) || next_word(&c, &sw->vehicle))
        return OVMS_EWELCOME;
    skip_space(&c);
    sw->ids = (ovms_str_t){ c.p, (size_t)(c.end - c.p) };
    return 0;
}

/* ---- MP-S peer watermarks ------------------------------------------------ */

static int parse_watermark(ovms_str_t item, ovms_watermark_t *wm)
{
    const char *colon = memchr(item.ptr, ':', item.len);
    ovms_str_t seq;
    int64_t v;

    if (!colon)
        return OVMS_EFIELDS;
    wm->origin = (ovms_str_t){ item.ptr, (size_t)(colon - item.ptr) };
    seq = (ovms_str_t){ colon + 1, (size_t)(item.ptr + item.len - colon - 1) };
    if (ovms_serverid_check(wm->origin) < 0)
        return OVMS_EINVAL;
    if (ovms_int_parse(seq, &v) < 0 || v < 0)
        return OVMS_ENUMBER;
    wm->seq = (uint64_t)v;
    return 0;
}

int ovms_watermarks_parse(ovms_str_t text, char sep, ovms_watermark_t *wm, int max)
{
    const char *p, *end;
    int n = 0;

    if (text.len == 0)
        return 0;
    p = text.ptr;
    end = text.ptr + text.len;

    while (p < end) {
        const char *q = p;
        if (sep == ' ') {
            while (p < end && is_space(*p))
                p++;
            q = p;
            while (q < end && !is_space(*q))
                q++;
            if (q == p)
                break;
        } else {
            while (q < end && *q != sep)
                q++;
        }
        if (n == max)
            return OVMS_ERANGE;
        int rc = parse_watermark((ovms_str_t){ p, (size_t)(q - p) }, &wm[n]);
        if (rc < 0)
            return rc;
        n++;
        p = (q < end && sep != ' ') ? q + 1 : q;
    }
    return n;
}

int ovms_welcome_format_peer(char *buf, size_t cap, const char *token, const char *digest,
                             const char *serverid, const ovms_watermark_t *wm, size_t nwm)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_puts(&b, "MP-S 0 ");
    ovms__buf_puts(&b, token);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, digest);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, serverid);
    for (size_t i = 0; i < nwm; i++) {
        ovms__buf_putc(&b, ' ');
        ovms__buf_put(&b, wm[i].origin.ptr, wm[i].origin.len);
        ovms__buf_putc(&b, ':');
        ovms__buf_uint(&b, wm[i].seq);
    }
    ovms__buf_puts(&b, "\r\n");
    return ovms__buf_done(&b);
}
