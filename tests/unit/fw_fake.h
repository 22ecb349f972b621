/*
 * fw_fake.h -- test helpers for the firmware core: a scripted platform
 * (clock, randomness, storage in memory, a resolver that answers what the
 * test says) and a fake server that speaks to the core byte for byte.
 */
#ifndef OVMS_TEST_FW_FAKE_H
#define OVMS_TEST_FW_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "ovms_fw.h"

#define FAKE_FILES 4
#define FAKE_FILE_MAX 32768

typedef struct fake_platform {
    ovms_fw_platform_t pf;
    int64_t wall;
    /* randomness: scripted bytes first, then a counter */
    uint8_t rnd[1024];
    size_t rnd_n, rnd_pos;
    uint8_t counter;
    /* storage ("flash") */
    struct {
        char name[32];
        size_t len;
        int used;
        uint8_t data[FAKE_FILE_MAX];
    } files[FAKE_FILES];
    int saves;
    int fail_saves;
    /* resolver */
    ovms_fw_addr_t addrs[OVMS_FW_MAX_ADDRS];
    int naddrs;
    int resolves;
    char resolved_host[128];
    /* log */
    char log[32768];
    size_t loglen;
} fake_platform_t;

void fake_init(fake_platform_t *fp);
/* The next random bytes spell this token (alphabet index per character). */
void fake_token(fake_platform_t *fp, const char *token);
void fake_random_bytes(fake_platform_t *fp, const uint8_t *bytes, size_t n);
/* What the resolver answers from now on (NULL-terminated list of addresses). */
void fake_addrs(fake_platform_t *fp, const char *const *hosts);
int fake_log_has(const fake_platform_t *fp, const char *text);

/* What the car sent since the last call (marked as sent), NUL-terminated. */
const char *take_output(ovms_fw_t *fw, size_t *len);

typedef struct fake_server {
    ovms_session_t s;
    ovms_linesplit_t ls;
    char tail[OVMS_CLIENT_LINE_MAX + 2];
    int n;                                  /* messages collected */
    char msg[256][OVMS_LINE_MAX];           /* plaintext code + payload */
} fake_server_t;

/* Drive the core from WAITING through the scheme 0 login with the given
 * server token: poll until CONNECT, connected, check the car's welcome,
 * answer with a correct server welcome, set up the server's session. */
void fake_login(fake_server_t *srv, ovms_fw_t *fw, uint64_t now,
                const char *password, const char *stoken);
/* Encrypt a message (code + payload) and feed it to the core. */
void server_send(fake_server_t *srv, ovms_fw_t *fw, uint64_t now, const char *msg);
/* Decode what the car sent since the last call into srv->msg[0..n). */
int server_collect(fake_server_t *srv, ovms_fw_t *fw);
/* Index of the first collected message starting with prefix, or -1. */
int server_find(const fake_server_t *srv, const char *prefix);
/* How many collected messages start with prefix. */
int server_count(const fake_server_t *srv, const char *prefix);

#endif
