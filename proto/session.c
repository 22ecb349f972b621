/*
 * session.c -- a connection's cipher state and the message framing inside
 * a line: base64(RC4("MP-0 " code payload)) CR LF.
 *
 * A session is two RC4 states keyed alike (rx and tx: both directions use
 * the same keystream, a weakness the protocol requires) plus a mode byte for
 * scheme 1, whose lines are the bare message. Encoding runs RC4 and base64
 * over stack blocks of a multiple of three bytes, so a long message needs no
 * heap and the base64 groups of consecutive blocks join without padding.
 * Threading: a session belongs to the thread that owns its connection.
 */
#include "ovms_proto.h"

#include <string.h>

#define ENCODE_BLOCK 768   /* plaintext bytes per round; a multiple of 3 */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int ovms_msg_parse(const char *plain, size_t len, ovms_msg_t *msg)
{
    const char *payload, *end, *lf;

    if (len < 6 || memcmp(plain, "MP-0", 4) != 0 || !is_space(plain[4]) ||
        is_space(plain[5]) || plain[5] == '\0')
        return OVMS_EUNDECODABLE;
    payload = plain + 6;
    end = plain + len;
    lf = memchr(payload, '\n', (size_t)(end - payload));
    if (lf) {
        end = lf;
        if (end > payload && end[-1] == '\r')
            end--;
    }
    if (memchr(payload, '\0', (size_t)(end - payload)))
        return OVMS_EUNDECODABLE;
    msg->code = plain[5];
    msg->payload = (ovms_str_t){ payload, (size_t)(end - payload) };
    return 0;
}

int ovms_msg_format(char *buf, size_t cap, char code, const char *payload, size_t len)
{
    if (OVMS_PREFIX_LEN + 1 + len + 1 > cap)
        return OVMS_ENOSPC;
    memcpy(buf, OVMS_PREFIX, OVMS_PREFIX_LEN);
    buf[OVMS_PREFIX_LEN] = code;
    if (len)
        memcpy(buf + OVMS_PREFIX_LEN + 1, payload, len);
    buf[OVMS_PREFIX_LEN + 1 + len] = '\0';
    return (int)(OVMS_PREFIX_LEN + 1 + len);
}

int ovms_session_key(const char *password, size_t pwlen,
                     const char *server_token, size_t stlen,
                     const char *client_token, size_t ctlen,
                     uint8_t key[OVMS_MD5_LEN])
{
    char both[2 * 64];

    if (stlen > 64 || ctlen > 64)
        return OVMS_EINVAL;
    memcpy(both, server_token, stlen);      /* the server's token comes first */
    memcpy(both + stlen, client_token, ctlen);
    return ovms_hmac_md5(password, pwlen, both, stlen + ctlen, key);
}

void ovms_session_init_key(ovms_session_t *s, const uint8_t key[OVMS_MD5_LEN])
{
    ovms_rc4_init_drop(&s->rx, key, OVMS_MD5_LEN, OVMS_RC4_DROP);
    s->tx = s->rx;                          /* identical keying, identical drop */
    s->plain = 0;
}

int ovms_session_init(ovms_session_t *s, const char *password, size_t pwlen,
                      const char *server_token, size_t stlen,
                      const char *client_token, size_t ctlen)
{
    uint8_t key[OVMS_MD5_LEN];
    int rc = ovms_session_key(password, pwlen, server_token, stlen, client_token, ctlen, key);
    if (rc < 0)
        return rc;
    ovms_session_init_key(s, key);
    return 0;
}

void ovms_session_init_plain(ovms_session_t *s)
{
    memset(s, 0, sizeof *s);
    s->plain = 1;
}

static int encode_plain(const char *msg, size_t len, char *out, size_t cap)
{
    if (len + 3 > cap)
        return OVMS_ENOSPC;
    memcpy(out, msg, len);
    memcpy(out + len, "\r\n", 3);
    return (int)len + 2;
}

int ovms_session_encode(ovms_session_t *s, const char *msg, size_t len,
                        char *out, size_t cap)
{
    uint8_t block[ENCODE_BLOCK];
    size_t total = OVMS_PREFIX_LEN + len, done = 0, o = 0;

    if (s->plain)
        return encode_plain(msg, len, out, cap);
    if (OVMS_WIRE_LEN(len) > cap)
        return OVMS_ENOSPC;
    while (done < total) {
        size_t n = total - done < ENCODE_BLOCK ? total - done : ENCODE_BLOCK;
        size_t k = 0;
        if (done < OVMS_PREFIX_LEN) {
            k = OVMS_PREFIX_LEN - done < n ? OVMS_PREFIX_LEN - done : n;
            memcpy(block, &OVMS_PREFIX[done], k);
        }
        if (n > k)
            memcpy(block + k, msg + (done + k - OVMS_PREFIX_LEN), n - k);
        ovms_rc4_crypt(&s->tx, block, block, n);
        o += (size_t)ovms_b64_encode(block, n, out + o, cap - o);
        done += n;
    }
    memcpy(out + o, "\r\n", 3);
    return (int)(o + 2);
}

static int decode_plain(const char *line, size_t len, char *buf, size_t cap,
                        ovms_msg_t *msg)
{
    if (OVMS_PREFIX_LEN + len > cap)
        return OVMS_ENOSPC;
    memcpy(buf, OVMS_PREFIX, OVMS_PREFIX_LEN);
    memcpy(buf + OVMS_PREFIX_LEN, line, len);
    return ovms_msg_parse(buf, OVMS_PREFIX_LEN + len, msg);
}

int ovms_session_decode(ovms_session_t *s, const char *line, size_t len,
                        char *buf, size_t cap, ovms_msg_t *msg)
{
    int n;

    if (s->plain)
        return decode_plain(line, len, buf, cap, msg);
    n = ovms_b64_decode(line, len, (uint8_t *)buf, cap);
    if (n < 0)
        return n == OVMS_ENOSPC ? n : OVMS_EUNDECODABLE;
    ovms_rc4_crypt(&s->rx, buf, buf, (size_t)n);
    return ovms_msg_parse(buf, (size_t)n, msg);
}
