/*
 * fuzz_welcome.c -- libFuzzer target: every first-line parser (client
 * welcome, server replies for scheme 0 and 1, AP-S/AP-X, watermarks,
 * provisioning parameters). Invariants: parsed slices lie inside the
 * input, and a parsed MP- welcome formatted again parses to the same fields.
 */
#include <stdlib.h>
#include <string.h>

#include "ovms_proto.h"

static const char *in_lo, *in_hi;

static void inside(ovms_str_t s)
{
    if (s.len && (s.ptr < in_lo || s.ptr + s.len > in_hi))
        abort();
}

static int same(ovms_str_t a, ovms_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void check_reformat(const ovms_welcome_t *w)
{
    char token[4200], digest[4200], vehicle[4200], line[13000];
    ovms_welcome_t w2;

    if (w->kind != OVMS_WELCOME_MP || w->rest.len)
        return;
    ovms_str_copy(w->token, token, sizeof token);
    ovms_str_copy(w->digest, digest, sizeof digest);
    ovms_str_copy(w->vehicle, vehicle, sizeof vehicle);
    if (!same(w->scheme, OVMS_STR("0")))
        return;
    int n = ovms_welcome_format_client(line, sizeof line, w->role, token, digest, vehicle);
    if (n < 2 || ovms_welcome_parse(line, (size_t)n - 2, &w2) != 0)
        abort();
    if (w2.role != w->role || !same(w2.token, w->token) || !same(w2.digest, w->digest) ||
        !same(w2.vehicle, w->vehicle))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    ovms_welcome_t w;
    ovms_server_welcome_t sw;
    ovms_server_welcome1_t sw1;
    ovms_apreply_t ap;
    ovms_watermark_t wm[16];
    ovms_params_t params;
    char token[64];

    in_lo = line;
    in_hi = line + size;
    if (ovms_welcome_parse(line, size, &w) == 0) {
        inside(w.scheme);
        inside(w.token);
        inside(w.digest);
        inside(w.vehicle);
        inside(w.rest);
        check_reformat(&w);
        if (w.kind == OVMS_WELCOME_MP && w.role == 'S')
            ovms_watermarks_parse(w.rest, ' ', wm, 16);
        char id[40];
        ovms_vehicleid_normalize(w.vehicle, id, sizeof id);
    }
    if (ovms_server_welcome_parse(line, size, &sw) == 0) {
        inside(sw.token);
        inside(sw.digest);
    }
    ovms_server_welcome_verify(line, size, "NETPASS", 7, "Car0Token+22charsXYZ/a", token,
                               sizeof token);
    if (ovms_server_welcome1_parse(line, size, &sw1) == 0)
        inside(sw1.ids);
    if (ovms_apreply_parse(line, size, &ap) == 0 && ap.found) {
        char out[4096];
        inside(ap.record);
        ovms_provision_decode("89440000000000000000", ap.token, ap.digest, ap.record, out,
                              sizeof out);
    }
    ovms_watermarks_parse((ovms_str_t){ line, size }, ',', wm, 16);
    ovms_params_parse((ovms_str_t){ line, size }, &params);
    return 0;
}
