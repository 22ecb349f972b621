/*
 * test_proto_session.c -- the scheme 0 line cipher and the MP-0 framing,
 * byte for byte against every wire sequence in the shared vectors, plus the
 * errors a server acts on (undecodable lines).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ovms_proto.h"
#include "vectors.h"

/* Walk one direction of a vector session: encoding the plaintexts with one
 * session must give the wire lines, and decoding the wire lines with a
 * second session keyed alike must give the plaintexts back. */
static void check_stream(const uint8_t key[16], const char *list)
{
    ovms_session_t enc, dec;
    ovms_session_init_key(&enc, key);
    ovms_session_init_key(&dec, key);

    for (size_t i = 0; i < vec_len(list); i++) {
        const char *plain = vec_str(vec_path("%s.%zu.plaintext", list, i));
        const char *wire = vec_str(vec_path("%s.%zu.wire", list, i));
        char out[8192], buf[8192];
        ovms_msg_t msg;

        cr_assert_eq(strncmp(plain, "MP-0 ", 5), 0);
        int n = ovms_session_encode(&enc, plain + 5, strlen(plain + 5), out, sizeof out);
        cr_assert_eq(n, (int)strlen(wire), "%s[%zu]: length", list, i);
        cr_assert_str_eq(out, wire, "%s[%zu]", list, i);

        size_t len;
        char *line = vec_line(vec_path("%s.%zu.wire", list, i), &len);
        cr_assert_eq(ovms_session_decode(&dec, line, len, buf, sizeof buf, &msg), 0);
        cr_assert_eq(msg.code, plain[5]);
        cr_assert_eq(msg.payload.len, strlen(plain + 6));
        cr_assert_arr_eq(msg.payload.ptr, plain + 6, msg.payload.len);
        free(line);
    }
}

static void session_key_of(const char *sec, uint8_t key[16])
{
    const char *pw = vec_str(vec_path("%s.inputs.car_password", sec));
    const char *st = vec_str(vec_path("%s.inputs.server_token", sec));
    const char *ct = vec_str(vec_path("%s.inputs.client_token", sec));
    uint8_t want[16];
    cr_assert_eq(ovms_session_key(pw, strlen(pw), st, strlen(st), ct, strlen(ct), key), 0);
    vec_hex(vec_path("%s.session_key_hex", sec), want, sizeof want);
    cr_assert_arr_eq(key, want, 16);
}

Test(session, key_order_and_keystream)
{
    uint8_t key[16], want[16], ks[32], zero[32] = { 0 };
    const char *pw = vec_str("inputs.shared_secret");
    const char *st = vec_str("inputs.server_token"), *ct = vec_str("inputs.client_token");
    ovms_session_t s;

    ovms_session_key(pw, strlen(pw), st, strlen(st), ct, strlen(ct), key);
    vec_hex("c_session_key.hex", want, sizeof want);
    cr_assert_arr_eq(key, want, 16);
    ovms_session_key(pw, strlen(pw), ct, strlen(ct), st, strlen(st), key);
    vec_hex("c_session_key.wrong_order_client_plus_server_hex", want, sizeof want);
    cr_assert_arr_eq(key, want, 16);

    cr_assert_eq(ovms_session_init(&s, pw, strlen(pw), st, strlen(st), ct, strlen(ct)), 0);
    ovms_rc4_crypt(&s.tx, zero, ks, sizeof ks);
    uint8_t want_ks[32];
    cr_assert_eq(vec_hex("c_session_key.keystream_after_1024_discard_first32_hex", want_ks, 32), 32);
    cr_assert_arr_eq(ks, want_ks, 32);
    /* rx is an independent state with the very same keystream */
    uint8_t ks2[32];
    ovms_rc4_crypt(&s.rx, zero, ks2, sizeof ks2);
    cr_assert_arr_eq(ks, ks2, sizeof ks);
}

Test(session, vectors_section_d)
{
    uint8_t key[16];
    vec_hex("c_session_key.hex", key, sizeof key);
    check_stream(key, "d_transport.car_to_server");
    check_stream(key, "d_transport.server_to_car");
    check_stream(key, "e_paranoid.wire_sequence_car_to_server_fresh_session");
}

Test(session, vectors_section_g_car)
{
    uint8_t key[16];
    session_key_of("g_car_session_22", key);
    check_stream(key, "g_car_session_22.car_to_server");
    check_stream(key, "g_car_session_22.server_to_car");
    check_stream(key, "i_paranoid_22.car_to_server_fresh_session_of_section_g");
}

Test(session, vectors_section_h_app)
{
    uint8_t key[16];
    session_key_of("h_app_session_22", key);
    check_stream(key, "h_app_session_22.app_to_server");
    check_stream(key, "h_app_session_22.server_to_app");
}

Test(session, vectors_section_k_peer)
{
    uint8_t key[16], want[16];
    const char *secret = vec_str("k_peer_link.inputs.peer_secret");
    const char *at = vec_str("k_peer_link.inputs.acceptor_token");
    const char *dt = vec_str("k_peer_link.inputs.dialer_token");

    /* the acceptor answers like a server: its token comes first */
    ovms_session_key(secret, strlen(secret), at, strlen(at), dt, strlen(dt), key);
    vec_hex("k_peer_link.session_key_hex", want, sizeof want);
    cr_assert_arr_eq(key, want, 16);
    check_stream(key, "k_peer_link.dialer_to_acceptor");
    check_stream(key, "k_peer_link.acceptor_to_dialer");
}

Test(session, exact_4096_line)
{
    ovms_session_t enc, dec;
    uint8_t key[16] = { 1, 2, 3 };
    size_t plen = (size_t)json_integer_value(vec_get("l_limits.example_payload_length_for_exact_4096_line"));
    char *msg = malloc(plen + 1), out[OVMS_WIRE_LEN(4000)], buf[4096];
    ovms_msg_t m;

    msg[0] = 'V';
    memset(msg + 1, 'x', plen);
    ovms_session_init_key(&enc, key);
    ovms_session_init_key(&dec, key);
    int n = ovms_session_encode(&enc, msg, plen + 1, out, sizeof out);
    cr_assert_eq(n - 2, (int)json_integer_value(vec_get("l_limits.max_line_bytes_before_terminator")));
    cr_assert_eq(ovms_session_decode(&dec, out, (size_t)n - 2, buf, sizeof buf, &m), 0);
    cr_assert_eq(m.payload.len, plen);
    cr_assert_eq(ovms_session_encode(&enc, msg, plen + 1, out, OVMS_WIRE_LEN(plen + 1) - 1),
                 OVMS_ENOSPC);
    free(msg);
}

/* Encrypt raw plaintext the way a client would, for malformed cases. */
static size_t encrypt_raw(ovms_session_t *s, const char *plain, size_t len, char *out, size_t cap)
{
    uint8_t tmp[512];
    ovms_rc4_crypt(&s->tx, plain, tmp, len);
    return (size_t)ovms_b64_encode(tmp, len, out, cap);
}

static int decode_raw(const char *plain, size_t len, ovms_msg_t *m, char *buf, size_t cap)
{
    ovms_session_t client, server;
    uint8_t key[16] = { 9 };
    char line[1024];
    ovms_session_init_key(&client, key);
    ovms_session_init_key(&server, key);
    size_t n = encrypt_raw(&client, plain, len, line, sizeof line);
    return ovms_session_decode(&server, line, n, buf, cap, m);
}

Test(session, undecodable_lines)
{
    ovms_msg_t m;
    char buf[1024];
    cr_assert_eq(decode_raw("XP-0 S80", 8, &m, buf, sizeof buf), OVMS_EUNDECODABLE);
    cr_assert_eq(decode_raw("MP-0S80", 7, &m, buf, sizeof buf), OVMS_EUNDECODABLE);
    cr_assert_eq(decode_raw("MP-0 ", 5, &m, buf, sizeof buf), OVMS_EUNDECODABLE);
    cr_assert_eq(decode_raw("MP-0  S", 7, &m, buf, sizeof buf), OVMS_EUNDECODABLE);
    cr_assert_eq(decode_raw("", 0, &m, buf, sizeof buf), OVMS_EUNDECODABLE);
    cr_assert_eq(decode_raw("MP-0 S8\0000", 9, &m, buf, sizeof buf), OVMS_EUNDECODABLE);
    cr_assert_eq(decode_raw("MP-0 \0", 6, &m, buf, sizeof buf), OVMS_EUNDECODABLE);

    /* base64 garbage decodes to bytes that are not MP-0 */
    ovms_session_t s;
    uint8_t key[16] = { 9 };
    ovms_session_init_key(&s, key);
    cr_assert_eq(ovms_session_decode(&s, "!!!!", 4, buf, sizeof buf, &m), OVMS_EUNDECODABLE);
    cr_assert_eq(ovms_session_decode(&s, "QUJD", 4, buf, sizeof buf, &m), OVMS_EUNDECODABLE);
}

Test(session, accepted_variants)
{
    ovms_msg_t m;
    char buf[1024];
    /* any whitespace after MP-0, as the reference's \s */
    cr_assert_eq(decode_raw("MP-0\tS80", 8, &m, buf, sizeof buf), 0);
    cr_assert_eq(m.code, 'S');
    cr_assert(ovms_str_eq(m.payload, "80"));
    /* the payload ends at a LF; a CR before it goes, other CRs stay */
    cr_assert_eq(decode_raw("MP-0 c7,0,a\rb\r\ntrailing", 23, &m, buf, sizeof buf), 0);
    cr_assert(ovms_str_eq(m.payload, "7,0,a\rb"));
    /* an empty payload is fine */
    cr_assert_eq(decode_raw("MP-0 a", 6, &m, buf, sizeof buf), 0);
    cr_assert_eq(m.code, 'a');
    cr_assert_eq(m.payload.len, 0);
}

Test(session, scheme1_plain_lines)
{
    ovms_session_t s;
    ovms_msg_t m;
    char out[64], buf[64];

    ovms_session_init_plain(&s);
    cr_assert_eq(ovms_session_encode(&s, "Z0", 2, out, sizeof out), 4);
    cr_assert_str_eq(out, "Z0\r\n");
    cr_assert_eq(ovms_session_decode(&s, "S80,K", 5, buf, sizeof buf, &m), 0);
    cr_assert_eq(m.code, 'S');
    cr_assert(ovms_str_eq(m.payload, "80,K"));
    cr_assert_eq(ovms_session_decode(&s, "", 0, buf, sizeof buf, &m), OVMS_EUNDECODABLE);
    cr_assert_eq(ovms_session_decode(&s, " S", 2, buf, sizeof buf, &m), OVMS_EUNDECODABLE);
}

Test(session, message_framing)
{
    char buf[32];
    ovms_msg_t m;
    cr_assert_eq(ovms_msg_format(buf, sizeof buf, 'S', "80,K", 4), 10);
    cr_assert_str_eq(buf, "MP-0 S80,K");
    cr_assert_eq(ovms_msg_parse(buf, 10, &m), 0);
    cr_assert_eq(ovms_msg_format(buf, 8, 'S', "80,K", 4), OVMS_ENOSPC);
}
