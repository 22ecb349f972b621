/*
 * test_proto_crypto.c -- RC4, HMAC-MD5, base64, tokens, digests, paranoid
 * wrapping and auto-provisioning records, against published answers and the
 * shared vectors.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/provider.h>
#include <string.h>

#include "ovms_proto.h"
#include "vectors.h"

static void rc4_expect(const char *key, const char *plain, const char *hex)
{
    uint8_t out[64], want[64];
    ovms_rc4_t rc4;
    size_t n = strlen(plain);

    for (size_t i = 0; i < n; i++)
        sscanf(hex + 2 * i, "%2hhx", &want[i]);
    ovms_rc4_init(&rc4, key, strlen(key));
    ovms_rc4_crypt(&rc4, plain, out, n);
    cr_assert_arr_eq(out, want, n, "RC4(%s, %s)", key, plain);
}

Test(rc4, published_answers)
{
    rc4_expect("Key", "Plaintext", "bbf316e8d940af0ad3");
    rc4_expect("Wiki", "pedia", "1021bf0420");
    rc4_expect("Secret", "Attack at dawn", "45a01f645fc35b383552544b9bf5");
}

Test(rc4, rfc6229_40bit_key)
{
    static const uint8_t key[] = { 1, 2, 3, 4, 5 };
    static const uint8_t want[] = { 0xb2, 0x39, 0x63, 0x05, 0xf0, 0x3d, 0xc0, 0x27,
                                    0xcc, 0xc3, 0x52, 0x4a, 0x0a, 0x11, 0x18, 0xa8 };
    uint8_t zero[16] = { 0 }, out[16];
    ovms_rc4_t rc4;

    ovms_rc4_init(&rc4, key, sizeof key);
    ovms_rc4_crypt(&rc4, zero, out, sizeof out);
    cr_assert_arr_eq(out, want, sizeof want);
}

Test(rc4, state_is_compact)
{
    cr_assert_leq(sizeof(ovms_rc4_t), 258);
    cr_assert_leq(sizeof(ovms_session_t), 2 * 258 + 1);
}

/* Our RC4 against OpenSSL's (legacy provider) for random keys, drops and lengths. */
Test(rc4, matches_openssl_legacy_rc4)
{
    OSSL_PROVIDER *legacy = OSSL_PROVIDER_load(NULL, "legacy");
    OSSL_PROVIDER *deflt = OSSL_PROVIDER_load(NULL, "default");
    cr_assert_not_null(legacy, "OpenSSL legacy provider (ships with libssl3) not loadable");
    EVP_CIPHER *rc4 = EVP_CIPHER_fetch(NULL, "RC4", NULL);
    cr_assert_not_null(rc4);
    srand(7);
    for (int round = 0; round < 200; round++) {
        uint8_t key[32], in[3000], ours[3000], theirs[3000 + 1024], pad[3000 + 1024] = { 0 };
        size_t keylen = 1 + (size_t)rand() % sizeof key, len = (size_t)rand() % sizeof in;
        size_t drop = (round & 1) ? OVMS_RC4_DROP : 0;
        int outl = 0;
        for (size_t i = 0; i < keylen; i++)
            key[i] = (uint8_t)rand();
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)rand();
        memcpy(pad + drop, in, len);

        ovms_rc4_t st;
        ovms_rc4_init_drop(&st, key, keylen, drop);
        ovms_rc4_crypt(&st, in, ours, len);

        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        cr_assert(EVP_EncryptInit_ex2(ctx, rc4, NULL, NULL, NULL));
        cr_assert(EVP_CIPHER_CTX_set_key_length(ctx, (int)keylen));
        cr_assert(EVP_EncryptInit_ex2(ctx, NULL, key, NULL, NULL));
        cr_assert(EVP_EncryptUpdate(ctx, theirs, &outl, pad, (int)(drop + len)));
        EVP_CIPHER_CTX_free(ctx);
        cr_assert_arr_eq(ours, theirs + drop, len, "round %d keylen %zu len %zu", round, keylen, len);
    }
    EVP_CIPHER_free(rc4);
    OSSL_PROVIDER_unload(legacy);
    OSSL_PROVIDER_unload(deflt);
}

Test(hmac, rfc2104_and_vectors)
{
    static const uint8_t jefe[] = { 0x75, 0x0c, 0x78, 0x3e, 0x6a, 0xb0, 0xb5, 0x03,
                                    0xea, 0xa8, 0x6e, 0x31, 0x0a, 0x5d, 0xb7, 0x38 };
    uint8_t mac[16], want[16];
    const char *secret = vec_str("inputs.shared_secret");

    cr_assert_eq(ovms_hmac_md5("Jefe", 4, "what do ya want for nothing?", 28, mac), 0);
    cr_assert_arr_eq(mac, jefe, 16);

    ovms_hmac_md5(secret, strlen(secret), vec_str("inputs.client_token"),
                  strlen(vec_str("inputs.client_token")), mac);
    vec_hex("a_car_digest.hex", want, sizeof want);
    cr_assert_arr_eq(mac, want, 16);

    ovms_hmac_md5(secret, strlen(secret), vec_str("inputs.server_token"),
                  strlen(vec_str("inputs.server_token")), mac);
    vec_hex("b_server_digest.hex", want, sizeof want);
    cr_assert_arr_eq(mac, want, 16);
}

Test(hmac, empty_key_and_message)
{
    uint8_t a[16], b[16];
    cr_assert_eq(ovms_hmac_md5("", 0, "", 0, a), 0);
    cr_assert_eq(ovms_hmac_md5(NULL, 0, NULL, 0, b), 0);
    cr_assert_arr_eq(a, b, 16);
}

/* Our own MD5 against OpenSSL's HMAC for every key length around the block
 * size (long keys are hashed first) and messages across block boundaries. */
Test(hmac, matches_openssl_for_all_lengths)
{
    uint8_t key[200], msg[300], ours[16], theirs[16];
    unsigned int len;
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(i * 31 + 7);
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 17 + 3);
    for (size_t k = 1; k <= sizeof key; k += 1 + k / 16) {
        for (size_t m = 0; m <= sizeof msg; m += 1 + m / 8) {
            cr_assert_eq(ovms_hmac_md5(key, k, msg, m, ours), 0);
            cr_assert_not_null(HMAC(EVP_md5(), key, (int)k, msg, m, theirs, &len));
            cr_assert_arr_eq(ours, theirs, 16, "key %zu bytes, message %zu bytes", k, m);
        }
    }
}

Test(digest, vectors_padded_and_unpadded)
{
    char out[OVMS_DIGEST_B64_LEN + 1];
    const char *pw = vec_str("g_car_session_22.inputs.car_password");
    const char *tok = vec_str("g_car_session_22.inputs.client_token");
    const char *padded = vec_str("g_car_session_22.client_digest_padded");
    const char *unpadded = vec_str("g_car_session_22.client_digest_unpadded");

    cr_assert_eq(ovms_digest_b64(pw, strlen(pw), tok, strlen(tok), out), 24);
    cr_assert_str_eq(out, padded);
    cr_assert_eq(ovms_digest_check(pw, strlen(pw), tok, strlen(tok), padded, strlen(padded)), 0);
    cr_assert_eq(ovms_digest_check(pw, strlen(pw), tok, strlen(tok), unpadded, strlen(unpadded)), 0);
    /* stray characters are skipped, as MIME::Base64 does */
    char stray[64];
    snprintf(stray, sizeof stray, " %.*s*%s", 5, unpadded, unpadded + 5);
    cr_assert_eq(ovms_digest_check(pw, strlen(pw), tok, strlen(tok), stray, strlen(stray)), 0);
    cr_assert_eq(ovms_digest_check("other", 5, tok, strlen(tok), padded, strlen(padded)),
                 OVMS_EDIGEST);
    cr_assert_eq(ovms_digest_check(pw, strlen(pw), tok, strlen(tok), padded, 20), OVMS_EDIGEST);
    cr_assert_eq(ovms_digest_check(pw, strlen(pw), tok, strlen(tok), "", 0), OVMS_EDIGEST);
    char longer[200];
    memset(longer, 'A', sizeof longer);
    cr_assert_eq(ovms_digest_check(pw, strlen(pw), tok, strlen(tok), longer, sizeof longer),
                 OVMS_EDIGEST);
}

Test(base64, encode_and_decode_every_length)
{
    uint8_t in[64], back[70];
    char text[100];
    for (size_t n = 0; n <= sizeof in; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 37 + n);
        int len = ovms_b64_encode(in, n, text, sizeof text);
        cr_assert_eq((size_t)len, OVMS_B64_ENCODED_LEN(n));
        cr_assert_eq(ovms_b64_decode(text, (size_t)len, back, sizeof back), (int)n);
        cr_assert_arr_eq(back, in, n);
        /* without padding */
        size_t unpadded = (size_t)len;
        while (unpadded && text[unpadded - 1] == '=')
            unpadded--;
        cr_assert_eq(ovms_b64_decode(text, unpadded, back, sizeof back), (int)n);
        cr_assert_arr_eq(back, in, n);
    }
}

Test(base64, lenient_decode)
{
    uint8_t out[64];
    cr_assert_eq(ovms_b64_decode("QUJD", 4, out, sizeof out), 3);
    cr_assert_arr_eq(out, "ABC", 3);
    /* stray characters skipped */
    cr_assert_eq(ovms_b64_decode("Q U\tJ*D!", 8, out, sizeof out), 3);
    cr_assert_arr_eq(out, "ABC", 3);
    /* decoding stops at '=', with or without stray characters before it */
    cr_assert_eq(ovms_b64_decode("QQ==QUJD", 8, out, sizeof out), 1);
    cr_assert_eq(out[0], 'A');
    cr_assert_eq(ovms_b64_decode("Q!Q==QUJD", 9, out, sizeof out), 1);
    cr_assert_eq(out[0], 'A');
    /* a lone trailing character carries no whole byte */
    cr_assert_eq(ovms_b64_decode("QUJDR", 5, out, sizeof out), 3);
    /* nothing valid at all */
    cr_assert_eq(ovms_b64_decode("!!!!", 4, out, sizeof out), 0);
    cr_assert_eq(ovms_b64_decode("", 0, out, sizeof out), 0);
    /* a NUL is a stray character like any other */
    cr_assert_eq(ovms_b64_decode("QU\0JD", 5, out, sizeof out), 3);
    /* too small an output buffer is refused up front */
    cr_assert_eq(ovms_b64_decode("QUJDQUJD", 8, out, 5), OVMS_ENOSPC);
}

Test(base64, long_filtered_input_crosses_blocks)
{
    char text[4000];
    uint8_t in[2400], out[3000];
    char clean[3300];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 7);
    int n = ovms_b64_encode(in, sizeof in, clean, sizeof clean);
    size_t t = 0;
    for (int i = 0; i < n; i++) {
        text[t++] = clean[i];
        if (i % 5 == 0)
            text[t++] = '\n';
    }
    cr_assert_eq(ovms_b64_decode(text, t, out, sizeof out), (int)sizeof in);
    cr_assert_arr_eq(out, in, sizeof in);
}

Test(tokens, alphabet_mapping_and_generation)
{
    uint8_t bytes[8];
    char out[32], a[OVMS_TOKEN_LEN + 1], b[OVMS_TOKEN_LEN + 1];
    const char *alphabet = vec_str("l_limits.token_alphabet");
    size_t n = vec_hex("l_limits.token_example_bytes_hex", bytes, sizeof bytes);

    ovms_token_from_bytes(bytes, n, out);
    cr_assert_str_eq(out, vec_str("l_limits.token_example_chars"));

    cr_assert_eq(ovms_token_generate(a), 0);
    cr_assert_eq(ovms_token_generate(b), 0);
    cr_assert_eq(strlen(a), (size_t)OVMS_TOKEN_LEN);
    cr_assert_eq(strspn(a, alphabet), strlen(a));
    cr_assert_str_neq(a, b);
}

Test(paranoid, vectors_section_e)
{
    uint8_t pdigest[16], want[16];
    char em[128], back[128], inner[64];
    const char *secret = vec_str("e_paranoid.paranoid_secret");
    const char *ptoken = vec_str("e_paranoid.ptoken");

    ovms_paranoid_key(secret, strlen(secret), ptoken, strlen(ptoken), pdigest);
    vec_hex("e_paranoid.pdigest_hex", want, sizeof want);
    cr_assert_arr_eq(pdigest, want, 16);

    snprintf(inner, sizeof inner, "%s%s", vec_str("e_paranoid.inner_code"),
             vec_str("e_paranoid.inner_data"));
    int n = ovms_paranoid_wrap(pdigest, inner, strlen(inner), em, sizeof em);
    cr_assert_gt(n, 0);
    cr_assert_str_eq(em, vec_str("e_paranoid.em_line_plaintext") + OVMS_PREFIX_LEN);

    n = ovms_paranoid_unwrap(pdigest, em + 2, strlen(em) - 2, back, sizeof back);
    cr_assert_str_eq(back, inner);

    const char *cmd = vec_str("e_paranoid.app_to_car_command_example.inner") + OVMS_PREFIX_LEN;
    ovms_paranoid_wrap(pdigest, cmd, strlen(cmd), em, sizeof em);
    cr_assert_str_eq(em, vec_str("e_paranoid.app_to_car_command_example.em_line_plaintext") +
                             OVMS_PREFIX_LEN);
}

Test(paranoid, vectors_section_i)
{
    uint8_t pdigest[16], want[16];
    char em[256], back[256];
    const char *pw = vec_str("i_paranoid_22.module_password");
    const char *ptoken = vec_str("i_paranoid_22.ptoken");

    ovms_paranoid_key(pw, strlen(pw), ptoken, strlen(ptoken), pdigest);
    vec_hex("i_paranoid_22.pdigest_hex", want, sizeof want);
    cr_assert_arr_eq(pdigest, want, 16);
    for (size_t i = 0; i < vec_len("i_paranoid_22.inner_messages"); i++) {
        const char *inner = vec_str(vec_path("i_paranoid_22.inner_messages.%zu", i)) + OVMS_PREFIX_LEN;
        const char *line = vec_str(vec_path("i_paranoid_22.em_lines_plaintext.%zu", i)) + OVMS_PREFIX_LEN;
        ovms_paranoid_wrap(pdigest, inner, strlen(inner), em, sizeof em);
        cr_assert_str_eq(em, line);
        ovms_paranoid_unwrap(pdigest, line + 2, strlen(line) - 2, back, sizeof back);
        cr_assert_str_eq(back, inner);
    }
    const char *cmd = vec_str("i_paranoid_22.app_command_plaintext") + OVMS_PREFIX_LEN;
    ovms_paranoid_wrap(pdigest, cmd, strlen(cmd), em, sizeof em);
    cr_assert_str_eq(em, vec_str("i_paranoid_22.app_command_em_plaintext") + OVMS_PREFIX_LEN);
}

Test(paranoid, excluded_codes_and_errors)
{
    uint8_t pdigest[16] = { 0 };
    char out[8];
    for (size_t i = 0; i < vec_len("e_paranoid.not_paranoid_encrypted_codes"); i++)
        cr_assert(ovms_paranoid_excluded(
            vec_str(vec_path("e_paranoid.not_paranoid_encrypted_codes.%zu", i))[0]));
    cr_assert_not(ovms_paranoid_excluded('S'));
    cr_assert_not(ovms_paranoid_excluded('h'));
    cr_assert_eq(ovms_paranoid_wrap(pdigest, "", 0, out, sizeof out), OVMS_EINVAL);
    cr_assert_eq(ovms_paranoid_wrap(pdigest, "S80,K,220", 9, out, sizeof out), OVMS_ENOSPC);
    cr_assert_eq(ovms_paranoid_unwrap(pdigest, "", 0, out, sizeof out), OVMS_EFIELDS);
}

static void provision_section(const char *sec)
{
    char digest[OVMS_DIGEST_B64_LEN + 1], record[512], line[600], params[512];
    const char *iccid = vec_str(vec_path("%s.iccid_secret", sec));
    const char *token = vec_str(vec_path("%s.server_token", sec));
    const char *text = vec_str(vec_path("%s.params_plaintext", sec));
    const char *want_record = vec_str(vec_path("%s.record_base64", sec));

    int n = ovms_provision_encode(iccid, token, text, strlen(text), digest, record, sizeof record);
    cr_assert_eq(n, (int)strlen(want_record));
    cr_assert_str_eq(record, want_record);
    cr_assert_str_eq(digest, vec_str(vec_path("%s.digest_base64_padded", sec)));

    /* the record decodes with the padded and the Perl-style unpadded digest */
    const char *forms[] = { vec_path("%s.digest_base64_padded", sec),
                            !strcmp(sec, "f_auto_provision")
                                ? "f_auto_provision.digest_base64_as_perl_b64digest"
                                : "j_auto_provision_22.digest_base64_unpadded" };
    for (int i = 0; i < 2; i++) {
        const char *d = vec_str(forms[i]);
        n = ovms_provision_decode(iccid, ovms_str_c(token), ovms_str_c(d), ovms_str_c(record),
                                  params, sizeof params);
        cr_assert_eq(n, (int)strlen(text));
        cr_assert_str_eq(params, text);
    }
    cr_assert_eq(ovms_provision_decode("89000000000000000000", ovms_str_c(token),
                                       ovms_str_c(digest), ovms_str_c(record), params,
                                       sizeof params),
                 OVMS_EDIGEST);

    ovms_apc_format(line, sizeof line, vec_str(vec_path("%s.vin_apkey", sec)));
    cr_assert_str_eq(line, vec_str(vec_path("%s.car_request_line", sec)));
}

Test(provision, vectors_section_f) { provision_section("f_auto_provision"); }
Test(provision, vectors_section_j) { provision_section("j_auto_provision_22"); }

Test(provision, reply_lines)
{
    char line[600];
    ovms_apreply_t r;
    size_t len;
    char *want = vec_line("j_auto_provision_22.server_reply_line_ovmsd", &len);

    ovms_aps_format(line, sizeof line, vec_str("j_auto_provision_22.server_token"),
                    vec_str("j_auto_provision_22.digest_base64_padded"),
                    vec_str("j_auto_provision_22.record_base64"));
    cr_assert_str_eq(line, vec_str("j_auto_provision_22.server_reply_line_ovmsd"));

    cr_assert_eq(ovms_apreply_parse(want, len, &r), 0);
    cr_assert_eq(r.found, 1);
    cr_assert(ovms_str_eq(r.token, vec_str("j_auto_provision_22.server_token")));
    cr_assert(ovms_str_eq(r.record, vec_str("j_auto_provision_22.record_base64")));
    free(want);

    want = vec_line("f_auto_provision.server_reply_line", &len);
    cr_assert_eq(ovms_apreply_parse(want, len, &r), 0);
    cr_assert(ovms_str_eq(r.digest, vec_str("f_auto_provision.digest_base64_as_perl_b64digest")));
    free(want);

    cr_assert_str_eq(OVMS_APX_LINE, vec_str("j_auto_provision_22.unknown_key_reply_line"));
    cr_assert_eq(ovms_apreply_parse("AP-X", 4, &r), 0);
    cr_assert_eq(r.found, 0);
    cr_assert_eq(ovms_apreply_parse("AP-S 0 tok dig", 14, &r), OVMS_EWELCOME);
    cr_assert_eq(ovms_apreply_parse("AP-S 0 tok dig rec extra", 24, &r), OVMS_EWELCOME);
    cr_assert_eq(ovms_apreply_parse("HELLO", 5, &r), OVMS_EWELCOME);
}

Test(provision, params_text)
{
    ovms_params_t p;
    char out[256];
    const char *text = vec_str("j_auto_provision_22.params_plaintext");

    cr_assert_eq(ovms_params_parse(ovms_str_c(text), &p), 10);
    cr_assert(ovms_str_eq(p.v[1], "MODULEPW"));
    cr_assert_eq(p.v[3].len, 0);                 /* "-" is empty */
    cr_assert(ovms_str_eq(p.v[8], "TESTCAR"));
    cr_assert_eq(ovms_params_format(&p, out, sizeof out), (int)strlen(text));
    cr_assert_str_eq(out, text);
    p.v[0] = OVMS_STR("a b");
    cr_assert_eq(ovms_params_format(&p, out, sizeof out), OVMS_EINVAL);
}
