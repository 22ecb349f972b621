/*
 * crypto.c -- the primitives under the protocol: RC4, HMAC-MD5, base64,
 * random tokens and digests.
 *
 * RC4 is our own: it is a dozen lines, and a byte-sized state (258 bytes)
 * keeps a connection's two cipher states at 516 bytes, where OpenSSL's
 * RC4_KEY needs 1 KiB each and its EVP context about 1.4 KiB (and the legacy
 * provider besides). HMAC-MD5 (hmac.c), base64 blocks and the CSPRNG come
 * from OpenSSL's libcrypto.
 *
 * base64 decoding is deliberately lenient, as the reference's
 * MIME::Base64 is: characters outside the alphabet are skipped, decoding
 * stops at the first '=', missing padding is fine.
 * Threading: pure functions (OpenSSL's RAND is thread-safe).
 */
#include "ovms_proto.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- RC4 ---------------------------------------------------------------- */

void ovms_rc4_init(ovms_rc4_t *rc4, const void *key, size_t keylen)
{
    static const uint8_t zero = 0;
    const uint8_t *k = keylen ? key : &zero;
    uint8_t *s = rc4->s;
    uint8_t j = 0;

    if (keylen == 0)
        keylen = 1;
    for (int i = 0; i < 256; i++)
        s[i] = (uint8_t)i;
    for (int i = 0; i < 256; i++) {
        uint8_t t = s[i];
        j = (uint8_t)(j + t + k[(size_t)i % keylen]);
        s[i] = s[j];
        s[j] = t;
    }
    rc4->i = rc4->j = 0;
}

void ovms_rc4_crypt(ovms_rc4_t *rc4, const void *in, void *out, size_t len)
{
    const uint8_t *src = in;
    uint8_t *dst = out, *s = rc4->s;
    uint8_t i = rc4->i, j = rc4->j;

    for (size_t n = 0; n < len; n++) {
        uint8_t si, sj;
        i = (uint8_t)(i + 1);
        si = s[i];
        j = (uint8_t)(j + si);
        sj = s[j];
        s[i] = sj;
        s[j] = si;
        dst[n] = src[n] ^ s[(uint8_t)(si + sj)];
    }
    rc4->i = i;
    rc4->j = j;
}

void ovms_rc4_init_drop(ovms_rc4_t *rc4, const void *key, size_t keylen, size_t drop)
{
    uint8_t scratch[256] = { 0 };

    ovms_rc4_init(rc4, key, keylen);
    while (drop > 0) {
        size_t n = drop < sizeof scratch ? drop : sizeof scratch;
        ovms_rc4_crypt(rc4, scratch, scratch, n);
        drop -= n;
    }
}

/* ---- base64 ------------------------------------------------------------- */

int ovms_b64_encode(const void *in, size_t len, char *out, size_t cap)
{
    size_t need = OVMS_B64_ENCODED_LEN(len);

    if (need + 1 > cap)
        return OVMS_ENOSPC;
    if (len > (size_t)0x3fffffff)
        return OVMS_EINVAL;
    if (len == 0) {
        out[0] = '\0';
        return 0;
    }
    return EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* 1 for alphabet characters, 2 for '=', 0 for anything else. */
static const uint8_t b64_class[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1, ['+'] = 1, ['/'] = 1, ['='] = 2,
};

/* Decode whole 4-character groups of clean alphabet text. */
static int decode_groups(const char *in, size_t n, uint8_t *out)
{
    if (n == 0)
        return 0;
    return EVP_DecodeBlock(out, (const unsigned char *)in, (int)n) < 0 ? OVMS_EINVAL
                                                                        : (int)(n / 4 * 3);
}

/* Decode a final group of 2 or 3 characters (1 carries no whole byte). */
static int decode_tail(const char *in, size_t n, uint8_t *out)
{
    char quad[4] = { '=', '=', '=', '=' };
    uint8_t bytes[3];

    if (n < 2)
        return 0;
    memcpy(quad, in, n);
    if (EVP_DecodeBlock(bytes, (const unsigned char *)quad, 4) < 0)
        return OVMS_EINVAL;
    memcpy(out, bytes, n - 1);
    return (int)n - 1;
}

/* Clean text: decode straight from the input. */
static int decode_clean(const char *in, size_t n, uint8_t *out)
{
    size_t whole = n & ~(size_t)3;
    int a = decode_groups(in, whole, out);
    if (a < 0)
        return a;
    int b = decode_tail(in + whole, n - whole, out + a);
    return b < 0 ? b : a + b;
}

/* Text with stray characters: gather alphabet characters in blocks. */
static int decode_filtered(const char *in, size_t len, uint8_t *out)
{
    char block[1024];
    size_t q = 0;
    int o = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t cls = b64_class[(uint8_t)in[i]];
        if (cls == 2)
            break;
        if (cls == 0)
            continue;
        block[q++] = in[i];
        if (q == sizeof block) {
            int n = decode_groups(block, q, out + o);
            if (n < 0)
                return n;
            o += n;
            q = 0;
        }
    }
    int n = decode_clean(block, q, out + o);
    return n < 0 ? n : o + n;
}

int ovms_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    size_t clean = 0;

    if (cap < OVMS_B64_DECODED_MAX(len))
        return OVMS_ENOSPC;
    if (len > (size_t)0x3fffffff)
        return OVMS_EINVAL;
    while (clean < len && b64_class[(uint8_t)in[clean]] == 1)
        clean++;
    if (clean == len || in[clean] == '=')
        return decode_clean(in, clean, out);
    return decode_filtered(in, len, out);
}

/* ---- tokens and digests -------------------------------------------------- */

void ovms_token_from_bytes(const uint8_t *bytes, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = b64_alphabet[bytes[i] & 63];
    out[n] = '\0';
}

int ovms_token_generate(char out[OVMS_TOKEN_LEN + 1])
{
    uint8_t bytes[OVMS_TOKEN_LEN];

    if (RAND_bytes(bytes, sizeof bytes) != 1)
        return OVMS_ECRYPTO;
    ovms_token_from_bytes(bytes, sizeof bytes, out);
    return 0;
}

int ovms_digest_b64(const void *key, size_t keylen, const void *msg, size_t msglen,
                    char out[OVMS_DIGEST_B64_LEN + 1])
{
    uint8_t mac[OVMS_MD5_LEN];
    int rc = ovms_hmac_md5(key, keylen, msg, msglen, mac);
    if (rc < 0)
        return rc;
    return ovms_b64_encode(mac, sizeof mac, out, OVMS_DIGEST_B64_LEN + 1);
}

int ovms_digest_check(const void *key, size_t keylen, const void *msg, size_t msglen,
                      const char *b64, size_t b64len)
{
    uint8_t want[OVMS_MD5_LEN], got[OVMS_B64_DECODED_MAX(64)];
    int n, rc;

    if (b64len > 64)
        return OVMS_EDIGEST;
    n = ovms_b64_decode(b64, b64len, got, sizeof got);
    rc = ovms_hmac_md5(key, keylen, msg, msglen, want);
    if (rc < 0)
        return rc;
    if (n != OVMS_MD5_LEN || CRYPTO_memcmp(got, want, OVMS_MD5_LEN) != 0)
        return OVMS_EDIGEST;
    return 0;
}
