/*
 * password.c -- owner login hashes for scheme 1 logins:
 * "$pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>", PBKDF2-HMAC-SHA256
 * from libcrypto with a random 16-byte salt. (Car passwords, in contrast,
 * must be kept in clear: the protocol computes HMACs with them.)
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

int ovms_password_check(const char *password, const char *stored)
{
    char salt64[64], hash64[96];
    uint8_t salt[64], want[96], got[PW_LEN];
    int iter, nsalt, nhash;

    if (sscanf(stored, "$pbkdf2-sha256$%d$%63[^$]$%95s", &iter, salt64, hash64) != 3 ||
        iter < 1000 || iter > 10000000)
        return OVMS_EDIGEST;
    nsalt = ovms_b64_decode(salt64, strlen(salt64), salt, sizeof salt);
    nhash = ovms_b64_decode(hash64, strlen(hash64), want, sizeof want);
    if (nsalt <= 0 || nhash != PW_LEN || derive(password, salt, (size_t)nsalt, iter, got) < 0)
        return OVMS_EDIGEST;
    return CRYPTO_memcmp(got, want, PW_LEN) == 0 ? 0 : OVMS_EDIGEST;
}
