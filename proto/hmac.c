/*
 * hmac.c -- HMAC-MD5 (RFC 2104) over OpenSSL's MD5.
 *
 * Why not OpenSSL's HMAC or EVP_MAC: they allocate a digest context every
 * time they are given a new key, and every login brings new keys (the
 * digest, the session key, the paranoid key). The car firmware must not
 * allocate once running, and the server does tens of thousands of logins a
 * second. OpenSSL's MD5 with its context on our stack allocates nothing
 * and is its assembly implementation; the HMAC construction around it is
 * two padded hashes. (MD5_Init and friends are deprecated in OpenSSL 3.0
 * but remain the only allocation-free entry point.)
 * Threading: pure functions; no state outside the caller's stack.
 */
#include "ovms_proto.h"

#include <string.h>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/md5.h>

#define BLOCK 64

/* MD5 of pad (the key XOR a byte) followed by msg. */
static void padded_hash(const uint8_t key[BLOCK], uint8_t x, const void *msg, size_t len,
                        uint8_t out[OVMS_MD5_LEN])
{
    uint8_t pad[BLOCK];
    MD5_CTX c;
    for (int i = 0; i < BLOCK; i++)
        pad[i] = key[i] ^ x;
    MD5_Init(&c);
    MD5_Update(&c, pad, sizeof pad);
    if (len)
        MD5_Update(&c, msg, len);
    MD5_Final(out, &c);
}

int ovms_hmac_md5(const void *key, size_t keylen, const void *msg, size_t msglen,
                  uint8_t out[OVMS_MD5_LEN])
{
    uint8_t k[BLOCK] = { 0 }, inner[OVMS_MD5_LEN];

    if (keylen > BLOCK) {                    /* long keys are hashed first */
        MD5_CTX c;
        MD5_Init(&c);
        MD5_Update(&c, key, keylen);
        MD5_Final(k, &c);
    } else if (keylen) {
        memcpy(k, key, keylen);
    }
    padded_hash(k, 0x36, msg, msglen, inner);
    padded_hash(k, 0x5c, inner, sizeof inner, out);
    return 0;
}
