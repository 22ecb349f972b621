/*
 * password.c -- owner login hashes for scheme 1 logins:
 * "$pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>", PBKDF2-HMAC-SHA256
 * from libcrypto with a random 16-byte salt. (Car passwords, in contrast,
 * must be kept in clear: the protocol computes HMACs with them.)
 *
 * Accounts migrated from a reference database keep their Drupal 7 hashes
 * ("$S$" + a round-count letter + 8 salt characters + 43 characters of the
 * digest): SHA-512 of salt and password, then 2^k rounds of SHA-512 of the
 * previous digest and the password, written in phpass's own base64 (6 bits
 * at a time, least significant first). They are checked, never made.
 * Threading: pure functions.
 */
#include "ovms_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PW_ITERATIONS 20000
#define PW_SALT 16
#define PW_LEN 32

static int derive(const char *password, const uint8_t *salt, size_t saltlen, int iter,
                  uint8_t out[PW_LEN])
{
    return PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen, iter,
                             EVP_sha256(), PW_LEN, out) == 1 ? 0 : OVMS_ECRYPTO;
}

int ovms_password_hash(const char *password, char *out, size_t cap)
{
    uint8_t salt[PW_SALT], hash[PW_LEN];
    char salt64[32], hash64[48];

    if (RAND_bytes(salt, sizeof salt) != 1 || derive(password, salt, sizeof salt, PW_ITERATIONS, hash) < 0)
        return OVMS_ECRYPTO;
    ovms_b64_encode(salt, sizeof salt, salt64, sizeof salt64);
    ovms_b64_encode(hash, sizeof hash, hash64, sizeof hash64);
    int n = snprintf(out, cap, "$pbkdf2-sha256$%d$%s$%s", PW_ITERATIONS, salt64, hash64);
    return n < 0 || (size_t)n >= cap ? OVMS_ENOSPC : n;
}

static const char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* phpass base64: 3 bytes become 4 characters, low bits first; a short last
 * group writes only the characters its bytes reach. */
static void phpass_b64(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = in[i];
        size_t left = n - i;
        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= (uint32_t)in[i + 2] << 16;
        size_t chars = left >= 3 ? 4 : left + 1;
        for (size_t k = 0; k < chars; k++)
            *out++ = itoa64[(v >> (6 * k)) & 0x3f];
    }
    *out = '\0';
}

#define DRUPAL_LEN 55               /* what Drupal stores and compares */

static int sha512_two(const uint8_t *a, size_t na, const char *b, size_t nb, uint8_t out[64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, a, na) == 1 && EVP_DigestUpdate(ctx, b, nb) == 1 &&
             EVP_DigestFinal_ex(ctx, out, NULL) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : OVMS_ECRYPTO;
}

static int drupal_check(const char *password, const char *stored)
{
    const char *k = strlen(stored) >= 12 ? strchr(itoa64, stored[3]) : NULL;
    int log2 = k && stored[3] ? (int)(k - itoa64) : -1;
    uint8_t h[64];
    char text[12 + 88];
    size_t pwlen = strlen(password);

    if (log2 < 7 || log2 > 30 || strlen(stored) < DRUPAL_LEN)
        return OVMS_EDIGEST;
    if (sha512_two((const uint8_t *)stored + 4, 8, password, pwlen, h) < 0)
        return OVMS_EDIGEST;
    for (long n = 1L << log2; n > 0; n--)
        if (sha512_two(h, sizeof h, password, pwlen, h) < 0)
            return OVMS_EDIGEST;
    memcpy(text, stored, 12);
    phpass_b64(h, sizeof h, text + 12);
    int same = CRYPTO_memcmp(text, stored, DRUPAL_LEN) == 0;
    OPENSSL_cleanse(h, sizeof h);
    return same ? 0 : OVMS_EDIGEST;
}

int ovms_password_check(const char *password, const char *stored)
{
    char salt64[64], hash64[96];
    uint8_t salt[64], want[96], got[PW_LEN];
    int iter, nsalt, nhash;

    if (!strncmp(stored, "$S$", 3))
        return drupal_check(password, stored);
    if (sscanf(stored, "$pbkdf2-sha256$%d$%63[^$]$%95s", &iter, salt64, hash64) != 3 ||
        iter < 1000 || iter > 10000000)
        return OVMS_EDIGEST;
    nsalt = ovms_b64_decode(salt64, strlen(salt64), salt, sizeof salt);
    nhash = ovms_b64_decode(hash64, strlen(hash64), want, sizeof want);
    if (nsalt <= 0 || nhash != PW_LEN || derive(password, salt, (size_t)nsalt, iter, got) < 0)
        return OVMS_EDIGEST;
    return CRYPTO_memcmp(got, want, PW_LEN) == 0 ? 0 : OVMS_EDIGEST;
}
