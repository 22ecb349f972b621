/*
 * fw_fake.c -- the scripted platform and fake server of fw_fake.h.
 */
#include "fw_fake.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static fake_platform_t *fp_of(void *ctx)
{
    return ctx;
}

static int64_t fake_wall(void *ctx)
{
    return fp_of(ctx)->wall;
}

static void fake_random(void *ctx, uint8_t *buf, size_t n)
{
    fake_platform_t *fp = ctx;
    for (size_t i = 0; i < n; i++)
        buf[i] = fp->rnd_pos < fp->rnd_n ? fp->rnd[fp->rnd_pos++] : fp->counter++;
}

static int find_file(fake_platform_t *fp, const char *name)
{
    for (int i = 0; i < FAKE_FILES; i++)
        if (fp->files[i].used && !strcmp(fp->files[i].name, name))
            return i;
    return -1;
}

static int fake_load(void *ctx, const char *name, void *buf, size_t cap)
{
    fake_platform_t *fp = ctx;
    int i = find_file(fp, name);
    if (i < 0)
        return -1;
    size_t n = fp->files[i].len < cap ? fp->files[i].len : cap;
    memcpy(buf, fp->files[i].data, n);
    return (int)n;
}

static int fake_save(void *ctx, const char *name, const void *buf, size_t len)
{
    fake_platform_t *fp = ctx;
    if (fp->fail_saves || len > FAKE_FILE_MAX)
        return -1;
    int i = find_file(fp, name);
    for (int k = 0; i < 0 && k < FAKE_FILES; k++)
        if (!fp->files[k].used)
            i = k;
    cr_assert_geq(i, 0, "too many files");
    fp->files[i].used = 1;
    snprintf(fp->files[i].name, sizeof fp->files[i].name, "%s", name);
    memcpy(fp->files[i].data, buf, len);
    fp->files[i].len = len;
    fp->saves++;
    return 0;
}

static int fake_resolve(void *ctx, const char *host, ovms_fw_addr_t *out, int max)
{
    fake_platform_t *fp = ctx;
    fp->resolves++;
    snprintf(fp->resolved_host, sizeof fp->resolved_host, "%s", host);
    int n = fp->naddrs < max ? fp->naddrs : max;
    memcpy(out, fp->addrs, (size_t)n * sizeof out[0]);
    return n > 0 ? n : -1;
}

static void fake_log(void *ctx, int level, const char *text)
{
    fake_platform_t *fp = ctx;
    int n = snprintf(fp->log + fp->loglen, sizeof fp->log - fp->loglen, "%d %s\n", level, text);
    if (n > 0 && fp->loglen + (size_t)n < sizeof fp->log)
        fp->loglen += (size_t)n;
}

void fake_init(fake_platform_t *fp)
{
    memset(fp, 0, sizeof *fp);
    fp->pf = (ovms_fw_platform_t){ .ctx = fp, .wall = fake_wall, .random = fake_random,
                                   .load = fake_load, .save = fake_save,
                                   .resolve = fake_resolve, .log = fake_log };
    fp->wall = 1795600000;
    static const char *const local[] = { "127.0.0.1", NULL };
    fake_addrs(fp, local);
}

void fake_random_bytes(fake_platform_t *fp, const uint8_t *bytes, size_t n)
{
    cr_assert_leq(fp->rnd_n + n, sizeof fp->rnd);
    memcpy(fp->rnd + fp->rnd_n, bytes, n);
    fp->rnd_n += n;
}

void fake_token(fake_platform_t *fp, const char *token)
{
    for (const char *c = token; *c; c++) {
        const char *at = strchr(alphabet, *c);
        cr_assert(at && *c, "'%c' is not a token character", *c);
        uint8_t b = (uint8_t)(at - alphabet);
        fake_random_bytes(fp, &b, 1);
    }
}

void fake_addrs(fake_platform_t *fp, const char *const *hosts)
{
    fp->naddrs = 0;
    for (; *hosts && fp->naddrs < OVMS_FW_MAX_ADDRS; hosts++)
        snprintf(fp->addrs[fp->naddrs++].host, sizeof fp->addrs[0].host, "%s", *hosts);
}

int fake_log_has(const fake_platform_t *fp, const char *text)
{
    return strstr(fp->log, text) != NULL;
}

const char *take_output(ovms_fw_t *fw, size_t *len)
{
    static char out[OVMS_FW_OUT + 1];
    const char *data;
    size_t n = ovms_fw_pending(fw, &data);
    memcpy(out, data, n);
    out[n] = '\0';
    ovms_fw_sent(fw, n);
    if (len)
        *len = n;
    return out;
}

void fake_login(fake_server_t *srv, ovms_fw_t *fw, uint64_t now,
                const char *password, const char *stoken)
{
    uint64_t next;
    char digest[OVMS_DIGEST_B64_LEN + 1], line[256];
    ovms_welcome_t w;

    memset(srv, 0, sizeof *srv);
    ovms_linesplit_init(&srv->ls, OVMS_CLIENT_LINE_MAX, srv->tail, sizeof srv->tail);
    cr_assert_eq(fw->state, OVMS_FW_WAITING, "state %s", ovms_fw_state_name(fw->state));
    fw->attempt_at = now;                    /* no waiting in tests that log in */
    cr_assert_eq(ovms_fw_poll(fw, now, &next), OVMS_FW_CONNECT);
    ovms_fw_connected(fw, now);
    size_t len;
    const char *welcome = take_output(fw, &len);
    cr_assert_gt(len, 2);
    cr_assert_eq(ovms_welcome_parse(welcome, len - 2, &w), 0, "welcome: %s", welcome);
    cr_assert_eq(w.role, 'C');
    cr_assert_eq(ovms_digest_check(password, strlen(password), w.token.ptr, w.token.len,
                                   w.digest.ptr, w.digest.len), 0);
    ovms_digest_b64(password, strlen(password), stoken, strlen(stoken), digest);
    ovms_welcome_format_server(line, sizeof line, stoken, digest);
    ovms_session_init(&srv->s, password, strlen(password), stoken, strlen(stoken), w.token.ptr,
                      w.token.len);
    ovms_fw_input(fw, now, line, strlen(line));
    cr_assert_eq(fw->state, OVMS_FW_ONLINE, "state %s", ovms_fw_state_name(fw->state));
}

void server_send(fake_server_t *srv, ovms_fw_t *fw, uint64_t now, const char *msg)
{
    char wire[OVMS_WIRE_LEN(OVMS_LINE_MAX)];
    int n = ovms_session_encode(&srv->s, msg, strlen(msg), wire, sizeof wire);
    cr_assert_gt(n, 0);
    ovms_fw_input(fw, now, wire, (size_t)n);
}

int server_collect(fake_server_t *srv, ovms_fw_t *fw)
{
    size_t len;
    const char *data = take_output(fw, &len);
    ovms_str_t line;
    srv->n = 0;
    while (ovms_linesplit_next(&srv->ls, &data, &len, &line) > 0) {
        char plain[OVMS_CLIENT_LINE_MAX];
        ovms_msg_t m;
        cr_assert_eq(ovms_session_decode(&srv->s, line.ptr, line.len, plain, sizeof plain, &m), 0,
                     "the car sent an undecodable line");
        cr_assert_lt(srv->n, 256);
        snprintf(srv->msg[srv->n], sizeof srv->msg[0], "%c%.*s", m.code, (int)m.payload.len,
                 m.payload.ptr);
        srv->n++;
    }
    return srv->n;
}

int server_find(const fake_server_t *srv, const char *prefix)
{
    for (int i = 0; i < srv->n; i++)
        if (!strncmp(srv->msg[i], prefix, strlen(prefix)))
            return i;
    return -1;
}

int server_count(const fake_server_t *srv, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < srv->n; i++)
        n += !strncmp(srv->msg[i], prefix, strlen(prefix));
    return n;
}
