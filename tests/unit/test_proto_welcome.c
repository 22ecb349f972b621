/*
 * test_proto_welcome.c -- first lines: client welcomes in every accepted
 * variant, the server reply as cars check it, scheme 1, AP-C, MP-S peer
 * welcomes with watermarks, and garbage that must be refused.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ovms_proto.h"
#include "vectors.h"

static int parse_vec(const char *path, ovms_welcome_t *w)
{
    size_t len;
    char *line = vec_line(path, &len);
    int rc = ovms_welcome_parse(line, len, w);
    /* slices point into line; keep it alive for the test (leaked on purpose) */
    return rc;
}

static void check_car_welcome(const char *path)
{
    ovms_welcome_t w;
    cr_assert_eq(parse_vec(path, &w), 0, "%s", path);
    cr_assert_eq(w.kind, OVMS_WELCOME_MP);
    cr_assert_eq(w.role, 'C');
    cr_assert(ovms_str_eq(w.scheme, "0"));
    cr_assert(ovms_str_eq(w.token, vec_str("g_car_session_22.inputs.client_token")));
    cr_assert_eq(w.rest.len, 0);
    char id[40];
    ovms_vehicleid_normalize(w.vehicle, id, sizeof id);
    cr_assert_str_eq(id, "TESTCAR");
    const char *pw = vec_str("g_car_session_22.inputs.car_password");
    cr_assert_eq(ovms_digest_check(pw, strlen(pw), w.token.ptr, w.token.len, w.digest.ptr,
                                   w.digest.len), 0);
}

Test(welcome, car_variants_from_vectors)
{
    check_car_welcome("g_car_session_22.car_welcome_line");
    check_car_welcome("g_car_session_22.car_welcome_line_unpadded_digest");
    check_car_welcome("g_car_session_22.car_welcome_line_lowercase_id_lf_only");
}

Test(welcome, formats_reproduce_vectors)
{
    char line[256];
    ovms_welcome_format_client(line, sizeof line, 'C', vec_str("inputs.client_token"),
                               vec_str("a_car_digest.base64"), vec_str("inputs.vehicle_id"));
    cr_assert_str_eq(line, vec_str("a_car_digest.car_welcome_line"));
    ovms_welcome_format_server(line, sizeof line, vec_str("inputs.server_token"),
                               vec_str("b_server_digest.base64"));
    cr_assert_str_eq(line, vec_str("b_server_digest.server_welcome_line"));
    ovms_welcome_format_client(line, sizeof line, 'A', vec_str("h_app_session_22.inputs.client_token"),
                               "M0UkMRVlB84xWcKZWvD8Qg", "TESTCAR");
    cr_assert_str_eq(line, vec_str("h_app_session_22.app_welcome_line_unpadded_digest"));
    cr_assert_eq(ovms_welcome_format_server(line, 10, "tok", "dig"), OVMS_ENOSPC);
}

Test(welcome, app_welcome_both_digest_forms)
{
    ovms_welcome_t w;
    const char *pw = vec_str("h_app_session_22.inputs.car_password");
    const char *paths[] = { "h_app_session_22.app_welcome_line_unpadded_digest",
                            "h_app_session_22.app_welcome_line_padded_digest" };
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(parse_vec(paths[i], &w), 0);
        cr_assert_eq(w.role, 'A');
        cr_assert_eq(ovms_digest_check(pw, strlen(pw), w.token.ptr, w.token.len, w.digest.ptr,
                                       w.digest.len), 0);
    }
}

Test(welcome, server_reply_verified_as_cars_do)
{
    char token[32];
    size_t len;
    const char *pw = vec_str("g_car_session_22.inputs.car_password");
    const char *ct = vec_str("g_car_session_22.inputs.client_token");
    char *line = vec_line("g_car_session_22.server_welcome_line", &len);

    cr_assert_eq(ovms_server_welcome_verify(line, len, pw, strlen(pw), ct, token, sizeof token), 0);
    cr_assert_str_eq(token, vec_str("g_car_session_22.inputs.server_token"));
    /* a wrong password, an echo of our own token, an unpadded or suffixed digest */
    cr_assert_eq(ovms_server_welcome_verify(line, len, "WRONG", 5, ct, token, sizeof token),
                 OVMS_EDIGEST);
    cr_assert_eq(ovms_server_welcome_verify(line, len, pw, strlen(pw),
                                            vec_str("g_car_session_22.inputs.server_token"),
                                            token, sizeof token),
                 OVMS_EDIGEST);
    cr_assert_eq(ovms_server_welcome_verify(line, len - 2, pw, strlen(pw), ct, token, sizeof token),
                 OVMS_EDIGEST);
    char suffixed[128];
    snprintf(suffixed, sizeof suffixed, "%s x", line);
    cr_assert_eq(ovms_server_welcome_verify(suffixed, strlen(suffixed), pw, strlen(pw), ct, token,
                                            sizeof token),
                 OVMS_EDIGEST);
    cr_assert_eq(ovms_server_welcome_verify("MP-S 1 x y", 10, pw, strlen(pw), ct, token,
                                            sizeof token),
                 OVMS_EWELCOME);
    cr_assert_eq(ovms_server_welcome_verify("MP-S 0 tokenonly", 16, pw, strlen(pw), ct, token,
                                            sizeof token),
                 OVMS_EWELCOME);
    free(line);
}

Test(welcome, separators_are_any_whitespace)
{
    ovms_welcome_t w;
    const char *line = "MP-A\t0  tok \t dig   CAR";
    cr_assert_eq(ovms_welcome_parse(line, strlen(line), &w), 0);
    cr_assert(ovms_str_eq(w.token, "tok"));
    cr_assert(ovms_str_eq(w.digest, "dig"));
    cr_assert(ovms_str_eq(w.vehicle, "CAR"));
}

Test(welcome, garbage_is_refused)
{
    const char *bad[] = {
        "", "hello", "MP-", "MP-C", "MP-C 0", "MP-C 0 tok dig", "MP-C 0 tok dig ",
        "MP- 0 tok dig CAR", "MP-CC 0 tok dig CAR", "mp-c 0 tok dig CAR",
        "GET / HTTP/1.1", "AP-C", "AP-C 0", "AP-C 0 ", "AP-C00 key", "\x01\x02\x03",
        "MPC 0 tok dig CAR",
    };
    ovms_welcome_t w;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(ovms_welcome_parse(bad[i], strlen(bad[i]), &w), OVMS_EWELCOME, "[%s]", bad[i]);
    /* a NUL anywhere */
    cr_assert_eq(ovms_welcome_parse("MP-C 0 t\0k dig CAR", 18, &w), OVMS_EWELCOME);
}

Test(welcome, other_first_lines)
{
    ovms_welcome_t w;
    size_t len;
    char *line = vec_line("j_auto_provision_22.car_request_line", &len);
    cr_assert_eq(ovms_welcome_parse(line, len, &w), 0);
    cr_assert_eq(w.kind, OVMS_WELCOME_APC);
    cr_assert(ovms_str_eq(w.scheme, "0"));
    cr_assert(ovms_str_eq(w.token, vec_str("j_auto_provision_22.vin_apkey")));
    free(line);

    cr_assert_eq(ovms_welcome_parse("GET /apiv2 HTTP/1.1", 19, &w), 0);
    cr_assert_eq(w.kind, OVMS_WELCOME_HTTP);

    /* unknown scheme or role letter still parses: the server decides */
    cr_assert_eq(ovms_welcome_parse("MP-X 7 a b c", 12, &w), 0);
    cr_assert_eq(w.role, 'X');
    cr_assert(ovms_str_eq(w.scheme, "7"));
}

Test(welcome, scheme1)
{
    char line[128];
    ovms_welcome_t w;
    ovms_server_welcome1_t sw;
    const char *ids[] = { "CAR1", "CAR2" };

    ovms_welcome_format_scheme1(line, sizeof line, 'A', "owner", "secret", "*");
    cr_assert_str_eq(line, "MP-A 1 owner secret *\r\n");
    cr_assert_eq(ovms_welcome_parse(line, strlen(line) - 2, &w), 0);
    cr_assert(ovms_str_eq(w.scheme, "1"));
    cr_assert(ovms_str_eq(w.token, "owner"));
    cr_assert(ovms_str_eq(w.digest, "secret"));
    cr_assert(ovms_str_eq(w.vehicle, "*"));

    ovms_welcome_format_server1(line, sizeof line, "owner", "CAR1", ids, 2);
    cr_assert_str_eq(line, "MP-S 1 owner CAR1 CAR1 CAR2\r\n");
    cr_assert_eq(ovms_server_welcome1_parse(line, strlen(line) - 2, &sw), 0);
    cr_assert(ovms_str_eq(sw.vehicle, "CAR1"));
    cr_assert(ovms_str_eq(sw.ids, "CAR1 CAR2"));
    cr_assert_eq(ovms_server_welcome1_parse("MP-S 1 owner", 12, &sw), OVMS_EWELCOME);
}

Test(welcome, peer_link_with_watermarks)
{
    ovms_welcome_t w;
    ovms_watermark_t wm[8];
    char line[256];
    const char *secret = vec_str("k_peer_link.inputs.peer_secret");
    const char *dt = vec_str("k_peer_link.inputs.dialer_token");

    cr_assert_eq(parse_vec("k_peer_link.dialer_welcome_line", &w), 0);
    cr_assert_eq(w.role, 'S');
    cr_assert(ovms_str_eq(w.vehicle, vec_str("k_peer_link.inputs.dialer_id")));
    cr_assert(ovms_str_eq(w.rest, vec_str("k_peer_link.inputs.dialer_watermarks")));
    cr_assert_eq(ovms_digest_check(secret, strlen(secret), w.token.ptr, w.token.len,
                                   w.digest.ptr, w.digest.len), 0);
    int n = ovms_watermarks_parse(w.rest, ' ', wm, 8);
    cr_assert_eq(n, 3);
    cr_assert(ovms_str_eq(wm[0].origin, "NODE1"));
    cr_assert_eq(wm[0].seq, 47);
    cr_assert_eq(wm[2].seq, 5);

    char digest[32];
    ovms_digest_b64(secret, strlen(secret), dt, strlen(dt), digest);
    ovms_welcome_format_peer(line, sizeof line, dt, digest, "NODE1", wm, (size_t)n);
    cr_assert_str_eq(line, vec_str("k_peer_link.dialer_welcome_line"));

    const char *at = vec_str("k_peer_link.inputs.acceptor_token");
    ovms_digest_b64(secret, strlen(secret), at, strlen(at), digest);
    ovms_welcome_format_server(line, sizeof line, at, digest);
    cr_assert_str_eq(line, vec_str("k_peer_link.acceptor_welcome_line"));

    /* comma-separated (RW) form and bad items */
    cr_assert_eq(ovms_watermarks_parse(OVMS_STR("NODE1:42,NODE2:17"), ',', wm, 8), 2);
    cr_assert_eq(ovms_watermarks_parse(OVMS_STR(""), ',', wm, 8), 0);
    cr_assert_eq(ovms_watermarks_parse(OVMS_STR("NODE1"), ',', wm, 8), OVMS_EFIELDS);
    cr_assert_eq(ovms_watermarks_parse(OVMS_STR("NODE1:x"), ',', wm, 8), OVMS_ENUMBER);
    cr_assert_eq(ovms_watermarks_parse(OVMS_STR("NODE1:-1"), ',', wm, 8), OVMS_ENUMBER);
    cr_assert_eq(ovms_watermarks_parse(OVMS_STR("BAD ID:1"), ',', wm, 8), OVMS_EINVAL);
    cr_assert_eq(ovms_watermarks_parse(OVMS_STR("A:1 B:2 C:3"), ' ', wm, 2), OVMS_ERANGE);
}

Test(welcome, ids)
{
    char buf[40];
    cr_assert_eq(ovms_vehicleid_normalize(OVMS_STR("testCar-1"), buf, sizeof buf), 9);
    cr_assert_str_eq(buf, "TESTCAR-1");
    cr_assert_eq(ovms_vehicleid_check(OVMS_STR("A,B")), OVMS_EINVAL);
    cr_assert_eq(ovms_vehicleid_check(OVMS_STR("A B")), OVMS_EINVAL);
    cr_assert_eq(ovms_vehicleid_check(OVMS_STR("")), OVMS_EINVAL);
    cr_assert_eq(ovms_vehicleid_check(OVMS_STR("123456789012345678901234567890123")), OVMS_EINVAL);
    cr_assert_eq(ovms_serverid_check(OVMS_STR("NODE_1-a")), 0);
    cr_assert_eq(ovms_serverid_check(OVMS_STR("NODE.1")), OVMS_EINVAL);
}
