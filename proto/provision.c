/*
 * provision.c -- auto-provisioning (PROTOCOL 2.6): AP-C requests, AP-S/AP-X
 * replies, and the ICCID-keyed record they carry.
 *
 * A record is prepared offline: a random token, its digest under the SIM's
 * ICCID, and the module's parameters encrypted with RC4 keyed by the raw
 * digest. The server sends it verbatim; only the module, which can read its
 * own ICCID, can check and open it. Records made by the reference's Perl tool
 * have unpadded digests, so decoding accepts both forms.
 * Threading: pure functions.
 */
#include "build.h"

#include <string.h>

int ovms_apc_format(char *buf, size_t cap, const char *apkey)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_puts(&b, "AP-C 0 ");
    ovms__buf_puts(&b, apkey);
    ovms__buf_puts(&b, "\r\n");
    return ovms__buf_done(&b);
}

int ovms_aps_format(char *buf, size_t cap, const char *token, const char *digest,
                    const char *record)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    ovms__buf_puts(&b, "AP-S 0 ");
    ovms__buf_puts(&b, token);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, digest);
    ovms__buf_putc(&b, ' ');
    ovms__buf_puts(&b, record);
    ovms__buf_puts(&b, "\r\n");
    return ovms__buf_done(&b);
}

/* Split "a b c" at single spaces into exactly n non-empty words. */
static int split_words(const char *p, const char *end, ovms_str_t *w, int n)
{
    for (int i = 0; i < n; i++) {
        const char *sp = i < n - 1 ? memchr(p, ' ', (size_t)(end - p)) : end;
        if (!sp || sp == p)
            return OVMS_EFIELDS;
        w[i] = (ovms_str_t){ p, (size_t)(sp - p) };
        p = sp + 1;
    }
    return 0;
}

int ovms_apreply_parse(const char *line, size_t len, ovms_apreply_t *r)
{
    ovms_str_t w[3];

    memset(r, 0, sizeof *r);
    if (len == 4 && memcmp(line, "AP-X", 4) == 0)
        return 0;
    if (len < 7 || memcmp(line, "AP-S 0 ", 7) != 0)
        return OVMS_EWELCOME;
    if (split_words(line + 7, line + len, w, 3) < 0 || memchr(w[2].ptr, ' ', w[2].len))
        return OVMS_EWELCOME;
    r->found = 1;
    r->token = w[0];
    r->digest = w[1];
    r->record = w[2];
    return 0;
}

int ovms_provision_encode(const char *iccid, const char *token, const char *params,
                          size_t plen, char digest[OVMS_DIGEST_B64_LEN + 1],
                          char *record, size_t reccap)
{
    uint8_t mac[OVMS_MD5_LEN], block[768];
    ovms_rc4_t rc4;
    size_t done = 0, o = 0;
    int rc = ovms_hmac_md5(iccid, strlen(iccid), token, strlen(token), mac);

    if (rc < 0)
        return rc;
    if (OVMS_B64_ENCODED_LEN(plen) + 1 > reccap)
        return OVMS_ENOSPC;
    rc = ovms_b64_encode(mac, sizeof mac, digest, OVMS_DIGEST_B64_LEN + 1);
    if (rc < 0)
        return rc;
    ovms_rc4_init_drop(&rc4, mac, sizeof mac, OVMS_RC4_DROP);
    record[0] = '\0';
    while (done < plen) {
        size_t n = plen - done < sizeof block ? plen - done : sizeof block;
        ovms_rc4_crypt(&rc4, params + done, block, n);
        o += (size_t)ovms_b64_encode(block, n, record + o, reccap - o);
        done += n;
    }
    return (int)o;
}

int ovms_provision_decode(const char *iccid, ovms_str_t token, ovms_str_t digest,
                          ovms_str_t record, char *params, size_t cap)
{
    uint8_t mac[OVMS_MD5_LEN];
    ovms_rc4_t rc4;
    int n, rc;

    rc = ovms_digest_check(iccid, strlen(iccid), token.ptr, token.len, digest.ptr, digest.len);
    if (rc < 0)
        return rc;
    if (cap < OVMS_B64_DECODED_MAX(record.len) + 1)
        return OVMS_ENOSPC;
    rc = ovms_hmac_md5(iccid, strlen(iccid), token.ptr, token.len, mac);
    if (rc < 0)
        return rc;
    n = ovms_b64_decode(record.ptr, record.len, (uint8_t *)params, cap);
    if (n < 0)
        return n;
    ovms_rc4_init_drop(&rc4, mac, sizeof mac, OVMS_RC4_DROP);
    ovms_rc4_crypt(&rc4, params, params, (size_t)n);
    params[n] = '\0';
    return n;
}

int ovms_params_parse(ovms_str_t text, ovms_params_t *p)
{
    const char *q, *end;

    p->n = 0;
    if (text.len == 0)
        return 0;
    q = text.ptr;
    end = text.ptr + text.len;
    while (q < end) {
        const char *sp = memchr(q, ' ', (size_t)(end - q));
        const char *stop = sp ? sp : end;
        if (p->n == OVMS_PARAM_MAX)
            return OVMS_ERANGE;
        ovms_str_t v = { q, (size_t)(stop - q) };
        if (v.len == 1 && v.ptr[0] == '-')
            v.len = 0;
        p->v[p->n++] = v;
        q = sp ? sp + 1 : end;
    }
    return p->n;
}

int ovms_params_format(const ovms_params_t *p, char *buf, size_t cap)
{
    ovms__buf_t b;
    ovms__buf_init(&b, buf, cap);
    for (int i = 0; i < p->n; i++) {
        if (p->v[i].len && memchr(p->v[i].ptr, ' ', p->v[i].len) && !b.err)
            b.err = OVMS_EINVAL;
        if (i)
            ovms__buf_putc(&b, ' ');
        if (p->v[i].len)
            ovms__buf_field(&b, p->v[i], OVMS__FIELD_LAST);
        else
            ovms__buf_putc(&b, '-');
    }
    return ovms__buf_done(&b);
}
