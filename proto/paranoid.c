/*
 * paranoid.c -- paranoid mode (PROTOCOL 7): end-to-end wrapping of messages
 * between a car and its owner's apps with the module password, which the
 * server never knows.
 *
 * "<code><data>" becomes "EM<code>" + base64(RC4'(data)), where RC4' is keyed
 * with pdigest = HMAC-MD5(module password, ptoken), drops 1024 bytes, and is
 * created anew for every message: each message reuses the same keystream.
 * That is weak, but it is the protocol; the vectors pin the exact form, which
 * public V3 firmware gets wrong.
 * Threading: pure functions.
 */
#include "build.h"

#include <string.h>

#define WRAP_BLOCK 768   /* a multiple of 3: base64 groups join cleanly */

int ovms_paranoid_key(const char *module_pw, size_t pwlen, const char *ptoken,
                      size_t ptlen, uint8_t pdigest[OVMS_MD5_LEN])
{
    return ovms_hmac_md5(module_pw, pwlen, ptoken, ptlen, pdigest);
}

int ovms_paranoid_excluded(char code)
{
    return code == 'E' || code == 'A' || code == 'a' || code == 'g' || code == 'P';
}

int ovms_paranoid_wrap(const uint8_t pdigest[OVMS_MD5_LEN], const char *msg, size_t len,
                       char *out, size_t cap)
{
    uint8_t block[WRAP_BLOCK];
    ovms_rc4_t rc4;
    size_t done = 1, o = 3;

    if (len < 1)
        return OVMS_EINVAL;
    if (3 + OVMS_B64_ENCODED_LEN(len - 1) + 1 > cap)
        return OVMS_ENOSPC;
    out[0] = 'E';
    out[1] = 'M';
    out[2] = msg[0];
    out[3] = '\0';
    ovms_rc4_init_drop(&rc4, pdigest, OVMS_MD5_LEN, OVMS_RC4_DROP);
    while (done < len) {
        size_t n = len - done < WRAP_BLOCK ? len - done : WRAP_BLOCK;
        ovms_rc4_crypt(&rc4, msg + done, block, n);
        o += (size_t)ovms_b64_encode(block, n, out + o, cap - o);
        done += n;
    }
    return (int)o;
}

int ovms_paranoid_unwrap(const uint8_t pdigest[OVMS_MD5_LEN], const char *payload,
                         size_t len, char *out, size_t cap)
{
    ovms_rc4_t rc4;
    int n;

    if (len < 1)
        return OVMS_EFIELDS;
    if (cap < 1 + OVMS_B64_DECODED_MAX(len - 1) + 1)
        return OVMS_ENOSPC;
    out[0] = payload[0];
    n = ovms_b64_decode(payload + 1, len - 1, (uint8_t *)out + 1, cap - 2);
    if (n < 0)
        return n;
    ovms_rc4_init_drop(&rc4, pdigest, OVMS_MD5_LEN, OVMS_RC4_DROP);
    ovms_rc4_crypt(&rc4, out + 1, out + 1, (size_t)n);
    out[1 + n] = '\0';
    return 1 + n;
}
