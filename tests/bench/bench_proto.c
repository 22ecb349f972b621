/*
 * bench_proto.c -- proto/ micro-benchmark: encode and decode of a typical
 * V3 `S` line on one core, the cost of a scheme 0 handshake's crypto, and
 * the bytes of cipher state a session holds.
 *
 *   bench_proto [--seconds S] [--report docs/benchmarks.md]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_report.h"
#include "ovms_proto.h"

static const char S_LINE[] =
    "S80.0,K,0,0.00,stopped,standard,250,230,16,0,0,0,0,21,0,0,0,0,160.00,0,0,0,0,-1,0,0,0,0,0,"
    "300,0,0.00,396.00,98.00,0.00,0.00,-1.25,0.0,0.0,0.0,64.0,-1";

typedef struct result {
    double encode_lps, decode_lps, login_ps, parse_lps;
    size_t wire_len;
} result_t;

static double run_encode(double seconds, size_t *wire_len)
{
    ovms_session_t s;
    uint8_t key[16] = { 1 };
    char out[OVMS_WIRE_LEN(sizeof S_LINE)];
    long n = 0;
    double t0 = bench_now(), t;

    ovms_session_init_key(&s, key);
    do {
        for (int i = 0; i < 10000; i++)
            *wire_len = (size_t)ovms_session_encode(&s, S_LINE, sizeof S_LINE - 1, out, sizeof out);
        n += 10000;
        t = bench_now() - t0;
    } while (t < seconds);
    return (double)n / t;
}

static double run_decode(double seconds)
{
    ovms_session_t enc, dec;
    uint8_t key[16] = { 1 };
    enum { LINES = 4096 };
    static char wire[LINES][OVMS_WIRE_LEN(sizeof S_LINE)];
    static int len[LINES];
    char buf[512];
    ovms_msg_t m;
    long n = 0;
    double t0, t;

    /* one continuous stream, so every line decodes with the advancing state */
    ovms_session_init_key(&enc, key);
    ovms_session_init_key(&dec, key);
    for (int i = 0; i < LINES; i++)
        len[i] = ovms_session_encode(&enc, S_LINE, sizeof S_LINE - 1, wire[i], sizeof wire[i]) - 2;
    t0 = bench_now();
    do {
        for (int i = 0; i < LINES; i++) {
            if (ovms_session_decode(&dec, wire[i], (size_t)len[i], buf, sizeof buf, &m) != 0) {
                fprintf(stderr, "decode failed\n");
                exit(1);
            }
        }
        n += LINES;
        ovms_session_init_key(&dec, key);       /* back to the start of the stream */
        t = bench_now() - t0;
    } while (t < seconds);
    return (double)n / t;
}

static double run_parse(double seconds)
{
    ovms_state_t st;
    long n = 0;
    double t0 = bench_now(), t;
    ovms_str_t p = { S_LINE + 1, sizeof S_LINE - 2 };
    do {
        for (int i = 0; i < 10000; i++)
            ovms_state_parse(p, &st);
        n += 10000;
        t = bench_now() - t0;
    } while (t < seconds);
    return (double)n / t;
}

/* The crypto of one server-side scheme 0 login: check the client digest,
 * make a token and our digest, derive the session and prime both states. */
static double run_login(double seconds)
{
    const char *pw = "NETPASS", *ct = "Car0Token+22charsXYZ/a";
    char digest[OVMS_DIGEST_B64_LEN + 1], st[OVMS_TOKEN_LEN + 1];
    ovms_session_t s;
    long n = 0;
    double t0 = bench_now(), t;

    ovms_digest_b64(pw, 7, ct, 22, digest);
    do {
        for (int i = 0; i < 1000; i++) {
            if (ovms_digest_check(pw, 7, ct, 22, digest, 24) != 0)
                exit(1);
            ovms_token_generate(st);
            char mine[OVMS_DIGEST_B64_LEN + 1];
            ovms_digest_b64(pw, 7, st, 22, mine);
            ovms_session_init(&s, pw, 7, st, 22, ct, 22);
        }
        n += 1000;
        t = bench_now() - t0;
    } while (t < seconds);
    return (double)n / t;
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    const char *report = NULL;
    result_t r = { 0 };
    char md[4096];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--report") && i + 1 < argc)
            report = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--report FILE]\n", argv[0]);
            return 2;
        }
    }
    printf("proto benchmark, one core, %.1f s per figure (%s)\n", seconds, bench_machine());
    r.encode_lps = run_encode(seconds, &r.wire_len);
    printf("  encode S line (%zu plaintext -> %zu wire bytes): %12.0f lines/s\n",
           sizeof S_LINE - 1 + OVMS_PREFIX_LEN, r.wire_len, r.encode_lps);
    r.decode_lps = run_decode(seconds);
    printf("  decode S line:                                  %12.0f lines/s\n", r.decode_lps);
    r.parse_lps = run_parse(seconds);
    printf("  typed parse of the S payload (42 fields):       %12.0f msgs/s\n", r.parse_lps);
    r.login_ps = run_login(seconds);
    printf("  scheme 0 login crypto (3 HMAC + token + 2 RC4 keyings): %8.0f logins/s\n",
           r.login_ps);
    printf("  session state: %zu bytes (2 x %zu-byte RC4 + mode); OpenSSL EVP RC4 would be ~2 x 1.4 KiB\n",
           sizeof(ovms_session_t), sizeof(ovms_rc4_t));
    printf("  line splitter state: %zu bytes, no buffer while no partial line is pending\n",
           sizeof(ovms_linesplit_t));

    snprintf(md, sizeof md,
             "### proto/ (one core)\n\n"
             "`build/tests/bench/bench_proto --seconds %.0f` on %s.\n\n"
             "| what | figure |\n|---|---|\n"
             "| encode a typical V3 `S` line (%zu wire bytes) | %.0f lines/s |\n"
             "| decode the same line | %.0f lines/s |\n"
             "| typed parse of its 42 fields | %.0f msgs/s |\n"
             "| server-side crypto of one scheme 0 login | %.0f logins/s |\n"
             "| cipher state per session | %zu bytes |\n"
             "| line splitter per connection (idle) | %zu bytes, no buffer |\n\n",
             seconds, bench_machine(), r.wire_len, r.encode_lps, r.decode_lps, r.parse_lps,
             r.login_ps, sizeof(ovms_session_t), sizeof(ovms_linesplit_t));
    if (report && bench_report_section(report, "proto", md) != 0) {
        fprintf(stderr, "cannot write %s\n", report);
        return 1;
    }
    return 0;
}
