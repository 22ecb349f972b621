/*
 * md5.c -- MD5 (RFC 1321) and HMAC-MD5 (RFC 2104), our own.
 *
 * Why not OpenSSL's: its HMAC allocates a digest context every time it is
 * given a new key, and every login brings new keys (the digest, the session
 * key, the paranoid key). The car firmware must not allocate once running,
 * and the server does tens of thousands of logins a second, so a fixed,
 * stack-only implementation is both the portable and the fast choice: an
 * HMAC over a short message is four compression blocks.
 * Threading: pure functions; no state outside the caller's stack.
 */
#include "ovms_proto.h"

#include <string.h>

typedef struct md5 {
    uint32_t h[4];
    uint64_t total;            /* bytes hashed */
    uint8_t block[64];
    size_t used;               /* bytes waiting in block */
} md5_t;

static const uint32_t K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
    0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
    0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
    0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
    0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
    0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* Left-rotation amounts, four per round. */
static const uint8_t R[4][4] = { { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 },
                                 { 6, 10, 15, 21 } };

static uint32_t rotl(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

/* One step: a = b + ((a + f + K[i] + m[g]) <<< r), then rotate the names. */
#define STEP(f, g, r)                                                           \
    do {                                                                        \
        uint32_t t_ = d, b_ = b + rotl(a + (f) + K[i] + m[g], r);               \
        d = c;                                                                  \
        c = b;                                                                  \
        b = b_;                                                                 \
        a = t_;                                                                 \
    } while (0)

static void compress(uint32_t h[4], const uint8_t *p)
{
    uint32_t m[16], a = h[0], b = h[1], c = h[2], d = h[3];
    int i;
    for (i = 0; i < 16; i++)
        m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    /* four rounds of sixteen steps, each with its own function and order */
    for (i = 0; i < 16; i++)
        STEP((b & c) | (~b & d), i, R[0][i & 3]);
    for (; i < 32; i++)
        STEP((d & b) | (~d & c), (5 * i + 1) & 15, R[1][i & 3]);
    for (; i < 48; i++)
        STEP(b ^ c ^ d, (3 * i + 5) & 15, R[2][i & 3]);
    for (; i < 64; i++)
        STEP(c ^ (b | ~d), (7 * i) & 15, R[3][i & 3]);
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

static void md5_init(md5_t *s)
{
    s->h[0] = 0x67452301;
    s->h[1] = 0xefcdab89;
    s->h[2] = 0x98badcfe;
    s->h[3] = 0x10325476;
    s->total = 0;
    s->used = 0;
}

static void md5_update(md5_t *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (!len)
        return;
    s->total += len;
    if (s->used) {
        size_t take = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->block + s->used, p, take);
        s->used += take;
        p += take;
        len -= take;
        if (s->used < 64)
            return;
        compress(s->h, s->block);
        s->used = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        compress(s->h, p);
    memcpy(s->block, p, len);
    s->used = len;
}

static void md5_final(md5_t *s, uint8_t out[OVMS_MD5_LEN])
{
    uint64_t bits = s->total * 8;
    uint8_t pad = 0x80, zero = 0, len[8];
    md5_update(s, &pad, 1);
    while (s->used != 56)
        md5_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (8 * i));
    md5_update(s, len, 8);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++)
            out[4 * i + k] = (uint8_t)(s->h[i] >> (8 * k));
}

int ovms_hmac_md5(const void *key, size_t keylen, const void *msg, size_t msglen,
                  uint8_t out[OVMS_MD5_LEN])
{
    uint8_t k[64] = { 0 }, pad[64], inner[OVMS_MD5_LEN];
    md5_t s;

    if (keylen > 64) {                       /* RFC 2104: long keys are hashed first */
        md5_init(&s);
        md5_update(&s, key, keylen);
        md5_final(&s, k);
    } else if (keylen) {
        memcpy(k, key, keylen);
    }
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    md5_init(&s);
    md5_update(&s, pad, 64);
    md5_update(&s, msg, msglen);
    md5_final(&s, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    md5_init(&s);
    md5_update(&s, pad, 64);
    md5_update(&s, inner, sizeof inner);
    md5_final(&s, out);
    return 0;
}
