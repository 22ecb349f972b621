/*
 * test_firmware.c -- the firmware core against a scripted fake server:
 * byte for byte against the shared vectors (login, transport, history,
 * paranoid mode, auto-provisioning), the login refusal rule, reporting
 * cadence, pings and timeouts, reconnect backoff with jitter, DNS
 * rotation with a test resolver, the h queue across a simulated restart,
 * and no allocation once running.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fw_fake.h"
#include "ovms_fw.h"
#include "vectors.h"

#define S 1000ull                /* ms per second */

static fake_platform_t fp;
static fake_server_t srv;
static ovms_fw_t fw, fw2;

static ovms_fw_config_t config(const char *vehicle, const char *password)
{
    ovms_fw_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.server, sizeof c.server, "ovms.example.org");
    snprintf(c.vehicle_id, sizeof c.vehicle_id, "%s", vehicle);
    snprintf(c.password, sizeof c.password, "%s", password);
    return c;
}

/* The vector's wire line for one car message must be what the car sent. */
static void expect_wire(const char *path)
{
    const char *want = vec_str(path);
    const char *got = take_output(&fw, NULL);
    cr_assert_str_eq(got, want, "%s", path);
}

/* Feed a vector's server line to the car. */
static void feed_wire(const char *path, uint64_t now)
{
    const char *line = vec_str(path);
    ovms_fw_input(&fw, now, line, strlen(line));
}

/* ---- the vectors ---------------------------------------------------------------------- */

Test(firmware, car_session_vector_byte_exact)
{
    const char *sec = "g_car_session_22";
    ovms_fw_config_t c = config(vec_str("g_car_session_22.inputs.vehicle_id"),
                                vec_str("g_car_session_22.inputs.car_password"));
    uint64_t next, now = 1000;
    ovms_session_t check;          /* the server's view of the car's stream */
    char plain[4096];
    ovms_msg_t m;

    fake_init(&fp);
    fake_token(&fp, vec_str("g_car_session_22.inputs.client_token"));
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT);
    cr_assert_str_eq(fp.resolved_host, "ovms.example.org");
    cr_assert_eq(ovms_fw_target(&fw)->port, 6867);
    ovms_fw_connected(&fw, now);
    expect_wire("g_car_session_22.car_welcome_line");

    feed_wire("g_car_session_22.server_welcome_line", now);
    cr_assert_eq(fw.state, OVMS_FW_ONLINE);
    const char *pw = vec_str("g_car_session_22.inputs.car_password");
    const char *st = vec_str("g_car_session_22.inputs.server_token");
    const char *ct = vec_str("g_car_session_22.inputs.client_token");
    ovms_session_init(&check, pw, strlen(pw), st, strlen(st), ct, strlen(ct));

    /* Z0: logged in; no vehicle here, so nothing to report */
    feed_wire(vec_path("%s.server_to_car.0.wire", sec), now);
    cr_assert_eq(fw.peers, 0);
    cr_assert_eq(take_output(&fw, NULL)[0], '\0');

    const char *splain = vec_str(vec_path("%s.car_to_server.0.plaintext", sec));
    cr_assert_eq(ovms_fw_send(&fw, splain + 5), 0);
    expect_wire(vec_path("%s.car_to_server.0.wire", sec));
    cr_assert_eq(ovms_fw_send(&fw, "A"), 0);
    expect_wire(vec_path("%s.car_to_server.1.wire", sec));

    /* the history record: ack code 42, one minute old, made by the h queue */
    ovms_fw_record_t rec = { .type = "*-LOG-Trip", .recno = 1, .lifetime = 86400,
                             .when = fp.wall - 60, .data = "1,51.4775,-0.0014,Greenwich, London" };
    fw.hq.next_ackcode = 42;
    cr_assert_eq(ovms_fw_history_add(&fw, &rec), 0);
    expect_wire(vec_path("%s.car_to_server.2.wire", sec));
    cr_assert_eq(fw.hq.n, 1);

    /* advance the check session past the three lines */
    for (int i = 0; i < 3; i++) {
        size_t len;
        char *line = vec_line(vec_path("%s.car_to_server.%d.wire", sec, i), &len);
        cr_assert_eq(ovms_session_decode(&check, line, len, plain, sizeof plain, &m), 0);
        free(line);
    }

    feed_wire(vec_path("%s.server_to_car.1.wire", sec), now);   /* a: nothing */
    cr_assert_eq(take_output(&fw, NULL)[0], '\0');
    feed_wire(vec_path("%s.server_to_car.2.wire", sec), now);   /* h42 */
    cr_assert_eq(fw.hq.n, 0, "h42 acknowledges the record");
    feed_wire(vec_path("%s.server_to_car.3.wire", sec), now);   /* Z1 */
    cr_assert_eq(fw.peers, 1);

    const char *cplain = vec_str(vec_path("%s.car_to_server.3.plaintext", sec));
    cr_assert_eq(ovms_fw_send(&fw, cplain + 5), 0);
    const char *cwire = vec_str(vec_path("%s.car_to_server.3.wire", sec));
    size_t len;
    const char *got = take_output(&fw, &len);
    cr_assert_str_eq(got, cwire);
    cr_assert_eq(ovms_session_decode(&check, got, len - 2, plain, sizeof plain, &m), 0);

    /* the routed command: the car answers it (a text command) */
    feed_wire(vec_path("%s.server_to_car.4.wire", sec), now);
    got = take_output(&fw, &len);
    cr_assert_eq(ovms_session_decode(&check, got, len - 2, plain, sizeof plain, &m), 0);
    cr_assert_eq(m.code, 'c');
    cr_assert(!strncmp(m.payload.ptr, "7,0,v.b.soc", 11), "%.*s", (int)m.payload.len, m.payload.ptr);

    /* the server's idle ping AFA: the car answers a */
    feed_wire(vec_path("%s.server_to_car.5.wire", sec), now);
    got = take_output(&fw, &len);
    cr_assert_eq(ovms_session_decode(&check, got, len - 2, plain, sizeof plain, &m), 0);
    cr_assert_eq(m.code, 'a');
    cr_assert_eq(m.payload.len, 0);
}

Test(firmware, paranoid_vector_byte_exact)
{
    const char *pw = vec_str("g_car_session_22.inputs.car_password");
    const char *ct = vec_str("g_car_session_22.inputs.client_token");
    ovms_fw_config_t c = config("TESTCAR", pw);
    snprintf(c.module_pw, sizeof c.module_pw, "%s", vec_str("i_paranoid_22.module_password"));
    uint64_t now = 1000;
    char plain[4096], inner[4096];
    ovms_msg_t m;

    fake_init(&fp);
    fake_token(&fp, ct);
    fake_token(&fp, vec_str("i_paranoid_22.ptoken"));
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    fw.attempt_at = now;
    fake_login(&srv, &fw, now, pw, vec_str("g_car_session_22.inputs.server_token"));

    /* a fresh session of section g: ET first, then the wrapped S and L */
    server_send(&srv, &fw, now, "Z0");
    const char *got = take_output(&fw, NULL);
    cr_assert_str_eq(got, vec_str("i_paranoid_22.car_to_server_fresh_session_of_section_g.0.wire"));
    for (int i = 0; i < 2; i++) {
        const char *msg = vec_str(vec_path("i_paranoid_22.inner_messages.%d", i));
        cr_assert_eq(ovms_fw_send(&fw, msg + 5), 0);
        cr_assert_str_eq(take_output(&fw, NULL),
                         vec_str(vec_path("i_paranoid_22.car_to_server_fresh_session_of_section_g.%d.wire", i + 1)));
    }
    /* a check session kept in step with the three lines */
    ovms_session_t dec;
    const char *st = vec_str("g_car_session_22.inputs.server_token");
    ovms_session_init(&dec, pw, strlen(pw), st, strlen(st), ct, strlen(ct));
    for (int i = 0; i < 3; i++) {
        size_t len;
        char *line = vec_line(vec_path("i_paranoid_22.car_to_server_fresh_session_of_section_g.%d.wire", i), &len);
        cr_assert_eq(ovms_session_decode(&dec, line, len, plain, sizeof plain, &m), 0);
        free(line);
    }

    /* an app's paranoid command EMC: the car runs it and answers EMc */
    const char *emc = vec_str("i_paranoid_22.app_command_em_plaintext");
    server_send(&srv, &fw, now, emc + 5);
    size_t len;
    got = take_output(&fw, &len);
    cr_assert_eq(ovms_session_decode(&dec, got, len - 2, plain, sizeof plain, &m), 0);
    cr_assert_eq(m.code, 'E');
    cr_assert_eq(m.payload.ptr[0], 'M');
    cr_assert_eq(m.payload.ptr[1], 'c');
    uint8_t pdigest[16];
    vec_hex("i_paranoid_22.pdigest_hex", pdigest, sizeof pdigest);
    int n = ovms_paranoid_unwrap(pdigest, m.payload.ptr + 1, m.payload.len - 1, inner, sizeof inner);
    cr_assert_gt(n, 0);
    cr_assert(!strncmp(inner, "c7,0,", 5), "%s", inner);

    /* history is never wrapped: the server must read and acknowledge it */
    ovms_fw_record_t rec = { .type = "*-LOG-Trip", .recno = 1, .lifetime = 60, .when = fp.wall,
                             .data = "x" };
    cr_assert_eq(ovms_fw_history_add(&fw, &rec), 0);
    got = take_output(&fw, &len);
    cr_assert_eq(ovms_session_decode(&dec, got, len - 2, plain, sizeof plain, &m), 0);
    cr_assert_eq(m.code, 'h');
    /* nor is a ping */
    cr_assert_eq(ovms_fw_send(&fw, "A"), 0);
    got = take_output(&fw, &len);
    cr_assert_eq(ovms_session_decode(&dec, got, len - 2, plain, sizeof plain, &m), 0);
    cr_assert_eq(m.code, 'A');
}

static void provision(const char *reply_path, int expect_ok)
{
    ovms_fw_config_t c;
    uint64_t next, now = 1000;
    memset(&c, 0, sizeof c);
    snprintf(c.server, sizeof c.server, "provisioning.example.org");
    snprintf(c.vin, sizeof c.vin, "%s", vec_str("j_auto_provision_22.vin_apkey"));
    snprintf(c.iccid, sizeof c.iccid, "%s", vec_str("j_auto_provision_22.iccid_secret"));
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT);
    ovms_fw_connected(&fw, now);
    expect_wire("j_auto_provision_22.car_request_line");
    cr_assert_eq(fw.state, OVMS_FW_PROVISIONING);
    feed_wire(reply_path, now);
    if (!expect_ok) {
        cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CLOSE);
        return;
    }
    /* provisioned: the parameters are stored and it logs in on the same connection */
    cr_assert_eq(fw.state, OVMS_FW_WELCOME);
    cr_assert_str_eq(fw.cfg.vehicle_id, "TESTCAR");
    cr_assert_str_eq(fw.cfg.password, "NETPASS");
    cr_assert_str_eq(fw.cfg.server, "ovms.example.org");
    cr_assert_str_eq(fw.params[1], "MODULEPW");
    cr_assert_str_eq(fw.params[0], "+447700900123");
    cr_assert_str_eq(fw.params[5], "internet");
    cr_assert_str_eq(fw.params[3], "", "'-' is an empty parameter");
    cr_assert_str_eq(fw.cfg.module_pw, "", "no paranoid password was provisioned");
    const char *welcome = take_output(&fw, NULL);
    ovms_welcome_t w;
    cr_assert_eq(ovms_welcome_parse(welcome, strlen(welcome) - 2, &w), 0);
    cr_assert(ovms_str_eq(w.vehicle, "TESTCAR"));
    cr_assert_eq(ovms_digest_check("NETPASS", 7, w.token.ptr, w.token.len, w.digest.ptr,
                                   w.digest.len), 0);

    /* after a restart the stored credentials are used without asking again */
    ovms_fw_init(&fw2, &c, &fp.pf, NULL, now);
    cr_assert_str_eq(fw2.cfg.vehicle_id, "TESTCAR");
    cr_assert_str_eq(fw2.cfg.password, "NETPASS");
    cr_assert_str_eq(fw2.host, "ovms.example.org");
    cr_assert_eq(ovms_fw_poll(&fw2, now, &next), OVMS_FW_CONNECT);
    ovms_fw_connected(&fw2, now);
    cr_assert(!strncmp(take_output(&fw2, NULL), "MP-C 0 ", 7));
}

Test(firmware, auto_provisioning_vector)
{
    provision("j_auto_provision_22.server_reply_line_ovmsd", 1);
}

Test(firmware, auto_provisioning_accepts_the_unpadded_digest)
{
    provision("j_auto_provision_22.server_reply_line_perl_generated_record", 1);
}

Test(firmware, auto_provisioning_refused)
{
    provision("j_auto_provision_22.unknown_key_reply_line", 0);
    cr_assert(fake_log_has(&fp, "no provisioning record"));
    ovms_fw_closed(&fw, 1000);
    cr_assert_eq(fw.state, OVMS_FW_WAITING);
    cr_assert_geq(fw.attempt_at, 1000 + 150 * S, "a missing record is asked for rarely");
}

Test(firmware, provisioning_record_for_another_iccid)
{
    ovms_fw_config_t c;
    uint64_t next, now = 1000;
    char digest[32], record[512], line[1024];
    memset(&c, 0, sizeof c);
    snprintf(c.server, sizeof c.server, "p.example.org");
    snprintf(c.vin, sizeof c.vin, "VIN1");
    snprintf(c.iccid, sizeof c.iccid, "1111");
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT);
    ovms_fw_connected(&fw, now);
    take_output(&fw, NULL);
    const char *params = "- PW K - s.example.org - - - CAR CARPW";
    ovms_provision_encode("2222", "Tok22charsForTheTest01", params, strlen(params), digest, record,
                          sizeof record);
    ovms_aps_format(line, sizeof line, "Tok22charsForTheTest01", digest, record);
    ovms_fw_input(&fw, now, line, strlen(line));
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CLOSE);
    cr_assert_str_eq(fw.cfg.vehicle_id, "", "nothing taken from a record it cannot open");
}

/* ---- login refusals --------------------------------------------------------------------- */

Test(firmware, a_refused_login_stops_reconnecting)
{
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 1000;
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT);
    ovms_fw_connected(&fw, now);
    take_output(&fw, NULL);
    ovms_fw_closed(&fw, now + 10);               /* the server closed during authentication */
    cr_assert_eq(fw.state, OVMS_FW_STOPPED);
    for (uint64_t t = now; t < now + 3600 * S; t += 60 * S)
        cr_assert_eq(ovms_fw_poll(&fw, t, &next), OVMS_FW_NOTHING);
    /* new settings: it tries again */
    c = config("CAR", "NEWPW");
    ovms_fw_reconfigure(&fw, &c, now + 3600 * S);
    cr_assert_eq(ovms_fw_poll(&fw, now + 3600 * S, &next), OVMS_FW_CONNECT);
}

Test(firmware, a_server_that_cannot_prove_the_password_is_left)
{
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 1000;
    char digest[32], line[128];
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT);
    ovms_fw_connected(&fw, now);
    take_output(&fw, NULL);
    ovms_digest_b64("WRONG", 5, "ServerToken0123456789a", 22, digest);
    ovms_welcome_format_server(line, sizeof line, "ServerToken0123456789a", digest);
    ovms_fw_input(&fw, now, line, strlen(line));
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CLOSE);
    ovms_fw_closed(&fw, now);
    cr_assert_eq(fw.state, OVMS_FW_STOPPED);
}

Test(firmware, no_credentials_and_no_provisioning_keys)
{
    ovms_fw_config_t c = config("", "");
    uint64_t next;
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, 0);
    cr_assert_eq(fw.state, OVMS_FW_STOPPED);
    cr_assert_eq(ovms_fw_poll(&fw, 0, &next), OVMS_FW_NOTHING);
    cr_assert(fake_log_has(&fp, "no vehicle id"));
}

/* ---- backoff and DNS rotation --------------------------------------------------------- */

Test(firmware, backoff_doubles_with_jitter_up_to_the_cap)
{
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 0;
    unsigned want = 2;
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT, "attempt %d", i);
        /* alternately the lowest and the highest jitter */
        uint8_t r[2] = { i % 2 ? 0xff : 0, i % 2 ? 0xff : 0 };
        fake_random_bytes(&fp, r, 2);
        ovms_fw_connect_failed(&fw, now);
        uint64_t wait = fw.attempt_at - now;
        cr_assert_geq(wait, want * 500ull, "attempt %d waits %llu ms, at least %u s / 2", i,
                      (unsigned long long)wait, want);
        cr_assert_leq(wait, want * 1000ull, "attempt %d waits %llu ms, at most %u s", i,
                      (unsigned long long)wait, want);
        if (i % 2 == 0)
            cr_assert_eq(wait, want * 500ull);
        else
            cr_assert_gt(wait, want * 990ull);
        /* nothing happens before the time */
        cr_assert_eq(ovms_fw_poll(&fw, fw.attempt_at - 1, &next), OVMS_FW_NOTHING);
        cr_assert_leq(next, fw.attempt_at);
        now = fw.attempt_at;
        want = want * 2 > 300 ? 300 : want * 2;
    }
    cr_assert_eq(fw.backoff, 300);
}

Test(firmware, backoff_starts_over_after_a_good_connection)
{
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 0;
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT);
        ovms_fw_connect_failed(&fw, now);
        now = fw.attempt_at;
    }
    cr_assert_eq(fw.backoff, 64);
    fake_login(&srv, &fw, now, "PW", "ServerToken0123456789a");
    server_send(&srv, &fw, now, "Z0");
    now += 120 * S;
    ovms_fw_closed(&fw, now);
    cr_assert_eq(fw.state, OVMS_FW_WAITING);
    cr_assert_leq(fw.attempt_at - now, 2 * S, "back to the shortest wait");
}

Test(firmware, dns_round_robin_rotation)
{
    static const char *const round1[] = { "192.0.2.1", "192.0.2.2", "2001:db8::3", NULL };
    static const char *const round2[] = { "192.0.2.7", "192.0.2.8", NULL };
    ovms_fw_config_t c = config("CAR", "PW");
    snprintf(c.server, sizeof c.server, "cluster.example.org:7000");
    uint64_t next, now = 0;
    fake_init(&fp);
    fake_addrs(&fp, round1);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);

    const char *expect[] = { "192.0.2.1", "192.0.2.2", "2001:db8::3", "192.0.2.7", "192.0.2.8",
                             "192.0.2.7" };
    for (int i = 0; i < 6; i++) {
        if (i == 3)
            fake_addrs(&fp, round2);        /* the name now answers differently */
        cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT);
        const ovms_fw_addr_t *t = ovms_fw_target(&fw);
        cr_assert_str_eq(t->host, expect[i], "attempt %d", i);
        cr_assert_eq(t->port, 7000);
        ovms_fw_connect_failed(&fw, now);
        now = fw.attempt_at;
    }
    cr_assert_str_eq(fp.resolved_host, "cluster.example.org");
    cr_assert_eq(fp.resolves, 3, "resolved once per round through the list");
}

Test(firmware, resolution_failure_is_retried)
{
    static const char *const none[] = { NULL };
    static const char *const one[] = { "192.0.2.9", NULL };
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 0;
    fake_init(&fp);
    fake_addrs(&fp, none);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_NOTHING);
    cr_assert_eq(fw.state, OVMS_FW_WAITING);
    cr_assert_gt(fw.attempt_at, now);
    cr_assert(fake_log_has(&fp, "cannot resolve"));
    fake_addrs(&fp, one);
    cr_assert_eq(ovms_fw_poll(&fw, fw.attempt_at, &next), OVMS_FW_CONNECT);
    cr_assert_str_eq(ovms_fw_target(&fw)->host, "192.0.2.9");
}

/* ---- keepalive and timeouts -------------------------------------------------------------- */

Test(firmware, pings_when_idle_and_reconnects_when_the_server_is_silent)
{
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 0;
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    fake_login(&srv, &fw, now, "PW", "ServerToken0123456789a");
    server_send(&srv, &fw, now, "Z0");
    server_collect(&srv, &fw);

    cr_assert_eq(ovms_fw_poll(&fw, now + 899 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(server_collect(&srv, &fw), 0);
    cr_assert_eq(ovms_fw_poll(&fw, now + 900 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(server_collect(&srv, &fw), 1);
    cr_assert_str_eq(srv.msg[0], "A");
    /* the server's answer keeps the link; its own ping gets an a */
    server_send(&srv, &fw, now + 901 * S, "a");
    server_send(&srv, &fw, now + 902 * S, "AFA");
    cr_assert_eq(server_collect(&srv, &fw), 1);
    cr_assert_str_eq(srv.msg[0], "a");
    cr_assert_eq(ovms_fw_poll(&fw, now + 1800 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(ovms_fw_poll(&fw, now + 902 * S + 960 * S, &next), OVMS_FW_CLOSE);
    ovms_fw_closed(&fw, now + 1862 * S);
    cr_assert_eq(fw.state, OVMS_FW_WAITING);
}

Test(firmware, a_silent_server_during_login_is_given_up)
{
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 0;
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT);
    ovms_fw_connected(&fw, now);
    cr_assert_eq(ovms_fw_poll(&fw, now + 29 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(ovms_fw_poll(&fw, now + 30 * S, &next), OVMS_FW_CLOSE);
    ovms_fw_closed(&fw, now + 30 * S);
    cr_assert_eq(fw.state, OVMS_FW_WAITING, "our own timeout is not a refusal");
}

Test(firmware, an_undecodable_line_reconnects)
{
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next;
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, 0);
    fake_login(&srv, &fw, 0, "PW", "ServerToken0123456789a");
    ovms_fw_input(&fw, 0, "garbage!!\r\n", 11);
    cr_assert_eq(ovms_fw_poll(&fw, 0, &next), OVMS_FW_CLOSE);
}

/* ---- reporting -------------------------------------------------------------------------- */

Test(firmware, reports_often_while_watched_and_rarely_otherwise)
{
    static ovms_sim_t sim;
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 0;
    fake_init(&fp);
    ovms_sim_init(&sim, 7, 1.0, fp.wall, now);
    sim.phase_left = 100000;                  /* parked: no trip records in between */
    ovms_fw_init(&fw, &c, &fp.pf, &sim.ops, now);
    fake_login(&srv, &fw, now, "PW", "ServerToken0123456789a");

    /* Z0 after login: everything, F and V included */
    server_send(&srv, &fw, now, "Z0");
    cr_assert_eq(server_collect(&srv, &fw), 7);
    const char *order = "FVSDLYW";
    for (int i = 0; i < 7; i++)
        cr_assert_eq(srv.msg[i][0], order[i], "message %d is %s", i, srv.msg[i]);

    /* nobody watching: the next report after 600 s */
    for (uint64_t t = now + 1 * S; t < now + 600 * S; t += 30 * S) {
        cr_assert_eq(ovms_fw_poll(&fw, t, &next), OVMS_FW_NOTHING);
        server_send(&srv, &fw, t, "a");    /* keep the link alive */
    }
    cr_assert_eq(server_collect(&srv, &fw), 0);
    cr_assert_eq(ovms_fw_poll(&fw, now + 600 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(server_collect(&srv, &fw), 5, "S D L Y W");
    cr_assert_eq(server_find(&srv, "F"), -1);

    /* an app arrives: everything at once, then every 10 s */
    now += 601 * S;
    server_send(&srv, &fw, now, "Z1");
    cr_assert_eq(server_collect(&srv, &fw), 7);
    cr_assert_eq(ovms_fw_poll(&fw, now + 9 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(server_collect(&srv, &fw), 0);
    cr_assert_leq(next, now + 10 * S);
    cr_assert_eq(ovms_fw_poll(&fw, now + 10 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(server_collect(&srv, &fw), 5);
    /* a second app: everything again */
    server_send(&srv, &fw, now + 11 * S, "Z2");
    cr_assert_eq(server_collect(&srv, &fw), 7);
    /* one leaves: no burst */
    server_send(&srv, &fw, now + 12 * S, "Z1");
    cr_assert_eq(server_collect(&srv, &fw), 0);
    /* all leave: back to rare reports */
    server_send(&srv, &fw, now + 13 * S, "Z0");
    cr_assert_eq(ovms_fw_poll(&fw, now + 100 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(server_collect(&srv, &fw), 0);
    cr_assert_eq(ovms_fw_poll(&fw, now + 613 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(server_collect(&srv, &fw), 5);
}

Test(firmware, every_report_carries_every_field)
{
    static ovms_sim_t sim;
    ovms_fw_config_t c = config("CAR", "PW");
    fake_init(&fp);
    ovms_sim_init(&sim, 3, 1.0, fp.wall, 0);
    ovms_fw_init(&fw, &c, &fp.pf, &sim.ops, 0);
    fake_login(&srv, &fw, 0, "PW", "ServerToken0123456789a");
    server_send(&srv, &fw, 0, "Z1");
    cr_assert_eq(server_collect(&srv, &fw), 7);

    ovms_state_t st;
    ovms_environment_t env;
    ovms_location_t loc;
    ovms_firmware_t f;
    ovms_tpms_t y;
    ovms_tpmsw_t w;
    ovms_caps_t caps;
    const char *m;
    m = srv.msg[server_find(&srv, "F")];
    cr_assert_eq(ovms_firmware_parse(ovms_str_c(m + 1), &f), 0);
    cr_assert_eq(f.nfields, 10);
    cr_assert_eq(f.extra.len, 0);
    m = srv.msg[server_find(&srv, "S")];
    cr_assert_eq(ovms_state_parse(ovms_str_c(m + 1), &st), 0);
    cr_assert_eq(st.nfields, 42, "%s", m);
    m = srv.msg[server_find(&srv, "D")];
    cr_assert_eq(ovms_environment_parse(ovms_str_c(m + 1), &env), 0);
    cr_assert_eq(env.nfields, 21);
    m = srv.msg[server_find(&srv, "L")];
    cr_assert_eq(ovms_location_parse(ovms_str_c(m + 1), &loc), 0);
    cr_assert_eq(loc.nfields, 19);
    m = srv.msg[server_find(&srv, "Y")];
    cr_assert_eq(ovms_tpms_parse(ovms_str_c(m + 1), &y), 0);
    cr_assert_eq(y.nwheels, 4);
    m = srv.msg[server_find(&srv, "W")];
    cr_assert_eq(ovms_tpmsw_parse(ovms_str_c(m + 1), &w), 0);
    cr_assert_eq(w.nfields, 9);
    cr_assert_null(strstr(m, ",,"), "no empty W field (it crashes the Android app): %s", m);
    m = srv.msg[server_find(&srv, "V")];
    cr_assert_eq(ovms_caps_parse(ovms_str_c(m + 1), &caps), 0);
    for (int cmd = 1; cmd <= 26; cmd++)
        cr_assert_eq(ovms_caps_has(&caps, cmd), (cmd <= 7 || (cmd >= 10 && cmd <= 12) || cmd >= 15),
                     "capability C%d", cmd);
}

/* ---- the h queue ---------------------------------------------------------------------- */

static ovms_fw_record_t record(int i)
{
    ovms_fw_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.type, sizeof r.type, "*-LOG-Test");
    r.recno = i;
    r.lifetime = 3600;
    r.when = fp.wall - 10 * i;
    snprintf(r.data, sizeof r.data, "record %d, with a comma", i);
    return r;
}

Test(firmware, history_survives_reconnects_and_restarts_until_acknowledged)
{
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 0;
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);

    /* made while offline: stored at once */
    for (int i = 1; i <= 3; i++) {
        ovms_fw_record_t r = record(i);
        cr_assert_eq(ovms_fw_history_add(&fw, &r), 0);
    }
    cr_assert_eq(fp.saves, 3);

    /* the module restarts (power loss): the queue comes back from storage */
    memset(&fw, 0xAA, sizeof fw);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    cr_assert_eq(fw.hq.n, 3);
    cr_assert(fake_log_has(&fp, "3 history records waiting"));

    /* online: all three go out after the first Z */
    fake_login(&srv, &fw, now, "PW", "ServerToken0123456789a");
    cr_assert_eq(server_collect(&srv, &fw), 0, "nothing before Z");
    server_send(&srv, &fw, now, "Z0");
    cr_assert_eq(server_collect(&srv, &fw), 3);
    ovms_histack_t h;
    cr_assert_eq(ovms_histack_parse(ovms_str_c(srv.msg[1] + 1), &h), 0);
    cr_assert(ovms_str_eq(h.ackcode, "2"));
    cr_assert_eq(h.timediff, -20);
    cr_assert(ovms_str_eq(h.data, "record 2, with a comma"));

    /* the server acknowledges #2 only */
    server_send(&srv, &fw, now, "h2");
    cr_assert_eq(fw.hq.n, 2);
    /* unacknowledged ones are sent again every 10 s */
    cr_assert_eq(ovms_fw_poll(&fw, now + 9 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(server_collect(&srv, &fw), 0);
    cr_assert_eq(ovms_fw_poll(&fw, now + 10 * S, &next), OVMS_FW_NOTHING);
    cr_assert_eq(server_collect(&srv, &fw), 2);
    cr_assert(!strncmp(srv.msg[0], "h1,", 3) && !strncmp(srv.msg[1], "h3,", 3));

    /* the connection drops; a reconnect sends them again */
    cr_assert_eq(ovms_fw_poll(&fw, now + 11 * S, &next), OVMS_FW_NOTHING);
    ovms_fw_closed(&fw, now + 11 * S);
    now = fw.attempt_at;
    fake_login(&srv, &fw, now, "PW", "ServerToken0123456789a");
    server_send(&srv, &fw, now, "Z0");
    cr_assert_eq(server_collect(&srv, &fw), 2);

    /* restart again: still two, and new ack codes do not collide */
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    cr_assert_eq(fw.hq.n, 2);
    cr_assert_eq(fw.hq.next_ackcode, 4);
    fake_login(&srv, &fw, now, "PW", "ServerToken0123456789a");
    server_send(&srv, &fw, now, "Z0");
    cr_assert_eq(server_collect(&srv, &fw), 2);
    server_send(&srv, &fw, now, "h1");
    server_send(&srv, &fw, now, "h3");
    server_send(&srv, &fw, now, "h3");          /* a duplicate ack is harmless */
    cr_assert_eq(fw.hq.n, 0);
    cr_assert_eq(fw.records_acked, 2);
    ovms_fw_init(&fw2, &c, &fp.pf, NULL, now);
    cr_assert_eq(fw2.hq.n, 0, "acknowledged records are gone from storage too");
}

Test(firmware, waiting_history_does_not_spin_before_the_first_z)
{
    ovms_fw_config_t c = config("CAR", "PW");
    uint64_t next, now = 0;
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, now);
    ovms_fw_record_t r = record(1);
    cr_assert_eq(ovms_fw_history_add(&fw, &r), 0);
    fake_login(&srv, &fw, now, "PW", "ServerToken0123456789a");
    /* logged in, no Z yet: nothing is due, so the core must not ask to run at once */
    cr_assert_eq(ovms_fw_poll(&fw, now + 5, &next), OVMS_FW_NOTHING);
    cr_assert_gt(next, now + 5);
    cr_assert_eq(server_collect(&srv, &fw), 0);
}

Test(firmware, a_full_history_queue_refuses_rather_than_drops)
{
    ovms_fw_config_t c = config("CAR", "PW");
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, 0);
    for (int i = 0; i < OVMS_FW_HISTORY; i++) {
        ovms_fw_record_t r = record(i);
        cr_assert_eq(ovms_fw_history_add(&fw, &r), 0);
    }
    ovms_fw_record_t r = record(99);
    cr_assert_eq(ovms_fw_history_add(&fw, &r), -1);
    cr_assert_eq(fw.hq.n, OVMS_FW_HISTORY);
    cr_assert_eq(fw.hq.rec[0].rec.recno, 0, "the oldest is kept");
}

Test(firmware, a_record_that_cannot_be_stored_is_not_queued)
{
    ovms_fw_config_t c = config("CAR", "PW");
    fake_init(&fp);
    ovms_fw_init(&fw, &c, &fp.pf, NULL, 0);
    fp.fail_saves = 1;
    ovms_fw_record_t r = record(1);
    cr_assert_eq(ovms_fw_history_add(&fw, &r), -1);
    cr_assert_eq(fw.hq.n, 0);
    cr_assert(fake_log_has(&fp, "cannot save the history"));
}

/* ---- no allocation once running ----------------------------------------------------------- */

#if !defined(__SANITIZE_ADDRESS__) && !defined(__has_feature)
#define COUNT_ALLOCATIONS 1
#elif defined(__has_feature)
#if !__has_feature(address_sanitizer)
#define COUNT_ALLOCATIONS 1
#endif
#endif

#ifdef COUNT_ALLOCATIONS
/* Count this thread's allocations by interposing glibc's malloc family. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static __thread int counting;
static __thread long allocations;

void *malloc(size_t n)
{
    if (counting)
        allocations++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    if (counting)
        allocations++;
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    if (counting)
        allocations++;
    return __libc_realloc(p, n);
}

Test(firmware, no_allocation_once_running)
{
    static ovms_sim_t sim;
    ovms_fw_config_t c = config("CAR", "PW");
    snprintf(c.module_pw, sizeof c.module_pw, "PARA");
    uint64_t next, now = 0;
    fake_init(&fp);
    ovms_sim_init(&sim, 5, 30.0, fp.wall, now);
    ovms_fw_init(&fw, &c, &fp.pf, &sim.ops, now);
    /* warm up the crypto library once (its first use sets up tables) */
    fake_login(&srv, &fw, now, "PW", "ServerToken0123456789a");
    server_send(&srv, &fw, now, "Z0");
    server_collect(&srv, &fw);

    counting = 1;
    for (int round = 0; round < 3; round++) {
        ovms_fw_closed(&fw, now);
        now = fw.attempt_at;
        fake_login(&srv, &fw, now, "PW", "ServerToken0123456789a");
        server_send(&srv, &fw, now, "Z1");
        for (int i = 0; i < 120; i++) {
            now += 5 * S;
            ovms_fw_poll(&fw, now, &next);
            server_send(&srv, &fw, now, "C7,stat");
            server_send(&srv, &fw, now, "A");
            server_collect(&srv, &fw);
        }
    }
    counting = 0;
    cr_assert_eq(allocations, 0, "%ld allocations while running", allocations);
    cr_assert_gt(fw.reports, 100);
}
#endif
