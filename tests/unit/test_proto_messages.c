/*
 * test_proto_messages.c -- typed messages: a parse/format round trip for
 * every message code, fields of modern firmware and unknown trailing fields
 * kept, older firmware's shorter messages accepted, and the documented
 * error for each kind of malformed input.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ovms_proto.h"
#include "vectors.h"

/* Parse a message ("<code><payload>") with its typed parser and format it
 * again; returns the formatter's result and leaves the text in out. */
static int roundtrip(const char *msg, char *out, size_t cap)
{
    ovms_str_t p = { msg + 1, strlen(msg + 1) };
    int rc;
    union {
        ovms_state_t s; ovms_environment_t d; ovms_location_t l; ovms_firmware_t f;
        ovms_tpmsw_t w; ovms_generator_t x; ovms_tpms_t y; ovms_caps_t v; ovms_group_t g;
        ovms_groupsub_t gs; ovms_history_t h; ovms_histack_t ha; ovms_command_t c;
        ovms_cmdreply_t cr; ovms_paranoid_t e; ovms_push_t pu; ovms_pushsub_t ps;
        ovms_repl_t r; ovms_replmsg_t rm; int64_t n;
    } u;
    char tmp[64];

#define TYPED(code, parse, format, field)                                     \
    case code:                                                                \
        if ((rc = parse(p, &u.field)) < 0)                                    \
            return rc;                                                        \
        return format(&u.field, out, cap);
    switch (msg[0]) {
    TYPED('S', ovms_state_parse, ovms_state_format, s)
    TYPED('D', ovms_environment_parse, ovms_environment_format, d)
    TYPED('L', ovms_location_parse, ovms_location_format, l)
    TYPED('F', ovms_firmware_parse, ovms_firmware_format, f)
    TYPED('W', ovms_tpmsw_parse, ovms_tpmsw_format, w)
    TYPED('X', ovms_generator_parse, ovms_generator_format, x)
    TYPED('Y', ovms_tpms_parse, ovms_tpms_format, y)
    TYPED('V', ovms_caps_parse, ovms_caps_format, v)
    TYPED('H', ovms_history_parse, ovms_history_format, h)
    case 'h':
        if (!memchr(p.ptr, ',', p.len))         /* the server's ack form */
            return ovms_histack_ack(p, out, cap);
        if ((rc = ovms_histack_parse(p, &u.ha)) < 0)
            return rc;
        return ovms_histack_format(&u.ha, out, cap);
    TYPED('E', ovms_paranoid_parse, ovms_paranoid_format, e)
    TYPED('p', ovms_pushsub_parse, ovms_pushsub_format, ps)
    TYPED('R', ovms_repl_parse, ovms_repl_format, r)
    TYPED('r', ovms_replmsg_parse, ovms_replmsg_format, rm)
    case 'g':
        if ((rc = ovms_group_parse_relay(p, &u.g)) == 0) {
            ovms_str_copy(u.g.vehicle, tmp, sizeof tmp);
            char grp[64];
            ovms_str_copy(u.g.group, grp, sizeof grp);
            return ovms_group_format_relay(tmp, grp, u.g.data, out, cap);
        }
        return rc;
    case 'G':
        if ((rc = ovms_groupsub_parse(p, &u.gs)) < 0)
            return rc;
        ovms_str_copy(u.gs.group, tmp, sizeof tmp);
        return ovms_groupsub_format(tmp, out, cap);
    case 'C': {
        char params[512];
        if ((rc = ovms_command_parse(p, &u.c)) < 0)
            return rc;
        ovms_str_copy(u.c.params, params, sizeof params);
        return ovms_command_format(u.c.cmd, u.c.has_params ? params : NULL, out, cap);
    }
    case 'c': {
        char text[512];
        ovms_cmdreply_parse(p, &u.cr);
        ovms_str_copy(u.cr.text, text, sizeof text);
        return ovms_cmdreply_format((int)u.cr.cmd, (int)u.cr.result,
                                    u.cr.nfields > 2 ? text : NULL, out, cap);
    }
    case 'P': {
        char text[512];
        if ((rc = ovms_push_parse(p, &u.pu)) < 0)
            return rc;
        ovms_str_copy(u.pu.text, text, sizeof text);
        return ovms_push_format(u.pu.type, text, out, cap);
    }
    case 'Z':
    case 'T':
        if ((rc = ovms_count_parse(p, &u.n)) < 0)
            return rc;
        return ovms_count_format(msg[0], u.n, out, cap);
    default: {
        /* A a f and unknown codes: the generic message */
        char framed[4096];
        ovms_msg_t m;
        int n = ovms_msg_format(framed, sizeof framed, msg[0], p.ptr, p.len);
        if ((rc = ovms_msg_parse(framed, (size_t)n, &m)) < 0)
            return rc;
        if (m.payload.len + 2 > cap)
            return OVMS_ENOSPC;
        out[0] = m.code;
        memcpy(out + 1, m.payload.ptr, m.payload.len);
        out[1 + m.payload.len] = '\0';
        return (int)m.payload.len + 1;
    }
    }
#undef TYPED
}

static void expect_roundtrip(const char *msg)
{
    char out[4096];
    int n = roundtrip(msg, out, sizeof out);
    cr_assert_geq(n, 0, "%s: %s", msg, ovms_strerror(n));
    cr_assert_str_eq(out, msg);
    cr_assert_eq(n, (int)strlen(msg));
}

Test(messages, roundtrip_every_code)
{
    static const char *samples[] = {
        /* A a: ping and ack */
        "A", "AFA", "a",
        /* C c: commands and responses */
        "C7,metrics list v.b.soc", "C1", "C32,*-LOG-Trip,2026-01-01", "C20,1234",
        "c7,0,Version: 3.3.004", "c3,0,5,32,value,with,commas", "c10,0",
        "c30,1,No GPRS utilisation data available", "c7,0,line one\rline two",
        /* D: environment, guide (19), V2 (20) and V3 (21) lengths */
        "D97,0,5,21.5,22,19,123,45678,0,3600,12,1,1,1,12.6,0,12.9,0,0",
        "D97,0,5,21.5,22,19,123,45678,0,3600,12,1,1,1,12.6,0,12.9,0,0,-0.5,20.5",
        /* E: paranoid token and message */
        "ETParanoidToken22chars/+", "EMSitS316mk2+CaTs6A92hF2ynfbc/uL8GhPTdnigPsah34Pvnr9G8=",
        "EMChcjqk+Sb",
        /* F: firmware, guide and V3 */
        "F3.3.004/ota_0/main,5YJRE11B081000001,20,0,TR,Vodafone;LTE",
        "F3.3.004-32-g5f2c3a1/ota_1/edge,VF1AG000000000001,-79,sw,RT,Telekom,12000,3600000,OVMS WIFI BLE BT cores=2 rev=ESP32/3; MDM=SIM7600,LTE",
        /* f: server firmware */
        "f0.1.0",
        /* G g: groups */
        "GRALLY",
        "gTESTCAR,RALLY,80,50,90,35,1,1,51.477500,-0.001400",
        /* H h: history */
        "H*-LOG-Trip,1,86400,a,b,c", "HRT-PWR-Log,0,31536000,",
        "h42,-60,*-LOG-Trip,1,86400,1,51.4775,-0.0014,Greenwich, London",
        /* L: location, guide (6), V2 (12), V3 (19) */
        "L51.477500,-0.001400,90,35,1,1",
        "L51.477500,-0.001400,90,35,1,1,0,123,0,0.0,1200,300",
        "L51.477500,-0.001400,90,35,1,1,0,123,0,0.0,1.2,0.3,0.0,0.0,AA,9,0.9,0.0,85",
        /* P p: push */
        "PAVehicle alert", "PISMS FROM: +44 - MSG: hello, world", "PETR,12,0x0001",
        "pmyuser,mail,,TESTCAR,NETPASS,owner@example.org",
        "papp,expo,simple,ExponentPushToken[xyz]",
        "papp,gcm,production,TESTCAR,pass,with,commas,fcmtoken",
        /* R r: replication */
        "RVTESTCAR,1,NETPASS,*,0,2026-01-02 03:04:05,NODE1,43",
        "RO1,testuser,test@example.invalid,$S$Dexamplehash,1,0,2026-01-02 03:04:05,NODE1,44",
        "RK2f5b0c3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a,4294967297,2702de72,myapp,testing,2026-01-02 03:04:05,0,2026-01-02 03:04:05,NODE1,49,auth,session",
        "RK2f5b0c3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a,4294967297,2702de72,,,2026-01-02 03:04:05,1,2026-01-02 03:04:06,NODE1,50,",
        "RWNODE2,NODE1:42,NODE2:17,NODE3:5", "RWNODE2",
        "rNODE1,45,2026-01-02 03:04:06,TESTCAR,S,0,,80.0,K,0,0.00,stopped,standard,250,230",
        "rNODE1,46,2026-01-02 03:04:07,TESTCAR,H,*-LOG-Trip,1,2026-01-03 03:04:07,51.4775,-0.0014,Greenwich, London",
        "rNODE1,47,2026-01-02 03:04:08,TESTCAR,E,ParanoidToken22chars/+",
        "rNODE1,48,2026-01-02 03:04:09,TESTCAR,W,1,ParanoidToken22chars/+,bXl0ZXN0",
        /* S: state, guide (26), short V2, V3 (42) */
        "S80,K,220,0,done,standard,300,280,13,0,0,0,0,4,0,0,0,-1",
        "S80.0,K,0,0.00,stopped,standard,250,230,16,0,0,0,0,21,0,0,0,0,160.00,0,0,0,0,-1,0,0,0,0,0,300,0,0.00,396.00,98.00,0.00,0.00,-1.25,0.0,0.0,0.0,64.0,-1",
        "S", "S,",
        /* T Z: counts */
        "T0", "T12", "Z0", "Z3",
        /* V: capabilities */
        "VC1-6,C10-12,C15-24,C40-41,C49", "V",
        /* W X Y: TPMS and generator */
        "W32.5,21,32.6,21,32.4,20,32.3,20,1", "W0,0,0,0,0,0,0,0,-1",
        "X1,1,230.0,16.00,3.68,94.0,type2,generating,0,standard,16,0,0,1.2,1.3,150.2,600,0,0,0,0,0,25.5,1732550400",
        "Y4,FL,FR,RL,RR,4,230.0,231.5,228.0,229.0,1,4,21.0,21.5,20.0,20.5,1,0,-1,4,0,0,0,0,1,0,-1",
        "Y4,FL,FR,RL,RR,4,230.0,231.5,228.0,229.0,1,4,21.0,21.5,20.0,20.5,1,0,-1,4,0,0,0,0,1,4,1,2,3,4,1",
        "Y0,0,-1,0,-1,0,-1,0,-1",
        /* an unknown code passes through */
        "Qanything,at all",
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        expect_roundtrip(samples[i]);
}

Test(messages, vector_messages_roundtrip)
{
    const char *lists[] = { "g_car_session_22.car_to_server", "g_car_session_22.server_to_car",
                            "h_app_session_22.server_to_app", "k_peer_link.dialer_to_acceptor",
                            "k_peer_link.acceptor_to_dialer", "d_transport.car_to_server" };
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
        for (size_t i = 0; i < vec_len(lists[l]); i++)
            expect_roundtrip(vec_str(vec_path("%s.%zu.plaintext", lists[l], i)) + OVMS_PREFIX_LEN);
}

Test(messages, modern_and_unknown_trailing_fields)
{
    ovms_state_t s;
    char out[1024];
    const char *v3 = "80.0,K,0,0.00,stopped,standard,250,230,16,0,0,0,0,21,0,0,0,0,160.00,0,0,0,0,-1,0,0,0,0,0,300,0,0.00,396.00,98.00,0.00,0.00,-1.25,0.0,0.0,0.0,64.0,-1";
    char future[1024];

    cr_assert_eq(ovms_state_parse(ovms_str_c(v3), &s), 0);
    cr_assert_eq(s.nfields, 42);
    cr_assert_float_eq(s.soc.v, 80.0, 1e-9);
    cr_assert_eq(s.soc.dp, 1);
    cr_assert(ovms_str_eq(s.charge_state, "stopped"));
    cr_assert_float_eq(s.battery_current.v, -1.25, 1e-9);
    cr_assert_float_eq(s.usable_kwh.v, 64.0, 1e-9);
    cr_assert_float_eq(s.charge_timestamp.v, -1, 1e-9);
    cr_assert_null(s.extra.ptr);

    snprintf(future, sizeof future, "%s,new1,new,2", v3);
    cr_assert_eq(ovms_state_parse(ovms_str_c(future), &s), 0);
    cr_assert(ovms_str_eq(s.extra, "new1,new,2"));
    ovms_state_format(&s, out, sizeof out);
    cr_assert_str_eq(out + 1, future);

    /* a trailing comma is an empty unknown field, kept too */
    snprintf(future, sizeof future, "%s,", v3);
    cr_assert_eq(ovms_state_parse(ovms_str_c(future), &s), 0);
    ovms_state_format(&s, out, sizeof out);
    cr_assert_str_eq(out + 1, future);

    /* older firmware: fewer fields, the rest marked absent */
    cr_assert_eq(ovms_state_parse(OVMS_STR("80,K,220"), &s), 0);
    cr_assert_eq(s.nfields, 3);
    cr_assert(ovms_num_empty(s.soh));

    ovms_firmware_t f;
    cr_assert_eq(ovms_firmware_parse(OVMS_STR("3.3.004,VIN,-79,sw,RT,Telekom,12000,-1,hw,LTE"), &f), 0);
    cr_assert_eq(f.nfields, 10);
    cr_assert(ovms_str_eq(f.modem, "LTE"));
    cr_assert_float_eq(f.service_secs.v, -1, 1e-9);

    ovms_location_t loc;
    cr_assert_eq(ovms_location_parse(OVMS_STR("51.477500,-0.001400,90,35,1,1,0,123,0,0.0,1.2,0.3,0.0,0.0,AA,9,0.9,0.0,85"), &loc), 0);
    cr_assert_eq(loc.nfields, 19);
    cr_assert_eq(loc.latitude.dp, 6);
    cr_assert(ovms_str_eq(loc.gps_mode, "AA"));
    cr_assert_float_eq(loc.gps_signal.v, 85, 1e-9);
}

Test(messages, formatting_from_values)
{
    ovms_state_t s = { 0 };
    char out[256];
    s.nfields = 5;
    s.soc = OVMS_NUM(79.5, 1);
    s.units = OVMS_STR("K");
    s.line_voltage = OVMS_NUM(230, 0);
    s.charge_current = OVMS_NUM(16, 2);
    s.charge_state = OVMS_STR("charging");
    cr_assert_eq(ovms_state_format(&s, out, sizeof out), 26);
    cr_assert_str_eq(out, "S79.5,K,230,16.00,charging");
    /* a comma in a non-final field is refused, never silently shifted */
    s.charge_state = OVMS_STR("char,ging");
    cr_assert_eq(ovms_state_format(&s, out, sizeof out), OVMS_ECOMMA);
    s.charge_state = OVMS_STR("charging");
    cr_assert_eq(ovms_state_format(&s, out, 10), OVMS_ENOSPC);
    s.nfields = 43;
    cr_assert_eq(ovms_state_format(&s, out, sizeof out), OVMS_EINVAL);
}

Test(messages, malformed_inputs)
{
    ovms_state_t s;
    ovms_history_t h;
    ovms_histack_t ha;
    ovms_tpms_t y;
    ovms_caps_t v;
    ovms_repl_t r;
    ovms_replmsg_t rm;
    ovms_pushsub_t ps;
    ovms_paranoid_t e;
    ovms_push_t pu;
    ovms_group_t g;
    ovms_command_t c;
    int64_t n;

    cr_assert_eq(ovms_state_parse(OVMS_STR("abc,K"), &s), OVMS_ENUMBER);
    cr_assert_eq(ovms_state_parse(OVMS_STR("80.,K"), &s), OVMS_ENUMBER);
    cr_assert_eq(ovms_state_parse(OVMS_STR("1e5,K"), &s), OVMS_ENUMBER);
    cr_assert_eq(ovms_history_parse(OVMS_STR("*-LOG-Trip,1,86400"), &h), OVMS_EFIELDS);
    cr_assert_eq(ovms_history_parse(OVMS_STR("*-LOG-Trip,x,86400,data"), &h), OVMS_ENUMBER);
    cr_assert_eq(ovms_history_parse(OVMS_STR(",1,86400,data"), &h), OVMS_EFIELDS);
    cr_assert_eq(ovms_histack_parse(OVMS_STR("42,-60,*-LOG-Trip,1,86400"), &ha), OVMS_EFIELDS);
    cr_assert_eq(ovms_histack_parse(OVMS_STR("42,soon,*-LOG-Trip,1,86400,x"), &ha), OVMS_ENUMBER);
    cr_assert_eq(ovms_tpms_parse(OVMS_STR("4,FL,FR,RL"), &y), OVMS_EFIELDS);
    cr_assert_eq(ovms_tpms_parse(OVMS_STR("99,FL"), &y), OVMS_ERANGE);
    cr_assert_eq(ovms_tpms_parse(OVMS_STR(""), &y), OVMS_ENUMBER);
    cr_assert_eq(ovms_caps_parse(OVMS_STR("C1-6,X7"), &v), OVMS_ENUMBER);
    cr_assert_eq(ovms_caps_parse(OVMS_STR("C6-1"), &v), OVMS_ENUMBER);
    cr_assert_eq(ovms_repl_parse(OVMS_STR("VTESTCAR,1,NETPASS,*,0"), &r), OVMS_EFIELDS);
    cr_assert_eq(ovms_repl_parse(OVMS_STR("VTESTCAR,1,NETPASS,*,2,2026-01-02 03:04:05,N,1"), &r),
                 OVMS_ERANGE);
    cr_assert_eq(ovms_repl_parse(OVMS_STR("VTESTCAR,1,NETPASS,*,0,2026-01-02,N,1"), &r), OVMS_EINVAL);
    cr_assert_eq(ovms_repl_parse(OVMS_STR("Qsomething"), &r), OVMS_ECODE);
    cr_assert_eq(ovms_repl_parse(OVMS_STR(""), &r), OVMS_EFIELDS);
    cr_assert_eq(ovms_replmsg_parse(OVMS_STR("NODE1,45,2026-01-02 03:04:06,TESTCAR,S,2,,x"), &rm),
                 OVMS_ERANGE);
    cr_assert_eq(ovms_replmsg_parse(OVMS_STR("NODE1,45,2026-01-02 03:04:06,TESTCAR,SS,0,,x"), &rm),
                 OVMS_ECODE);
    cr_assert_eq(ovms_replmsg_parse(OVMS_STR("NODE1,x,2026-01-02 03:04:06,TESTCAR,S,0,,x"), &rm),
                 OVMS_ENUMBER);
    cr_assert_eq(ovms_replmsg_parse(OVMS_STR("NODE1,45,2026-01-02 03:04:06,TESTCAR,S,0"), &rm),
                 OVMS_EFIELDS);
    cr_assert_eq(ovms_pushsub_parse(OVMS_STR("app,mail,,TESTCAR,owner@example.org"), &ps), OVMS_EFIELDS);
    cr_assert_eq(ovms_pushsub_parse(OVMS_STR("app,mail"), &ps), OVMS_EFIELDS);
    cr_assert_eq(ovms_pushsub_parse(OVMS_STR("app,mail,,,NETPASS,key"), &ps), OVMS_EFIELDS);
    cr_assert_eq(ovms_pushsub_parse(OVMS_STR("app,mail,,CAR,NETPASS,"), &ps), OVMS_EFIELDS);
    cr_assert_eq(ovms_pushsub_parse(OVMS_STR("app,expo,simple,"), &ps), OVMS_EFIELDS);
    cr_assert_eq(ovms_paranoid_parse(OVMS_STR(""), &e), OVMS_EFIELDS);
    cr_assert_eq(ovms_paranoid_parse(OVMS_STR("M"), &e), OVMS_EFIELDS);
    cr_assert_eq(ovms_paranoid_parse(OVMS_STR("Xyz"), &e), OVMS_ECODE);
    cr_assert_eq(e.kind, 'X');
    cr_assert_eq(ovms_push_parse(OVMS_STR(""), &pu), OVMS_EFIELDS);
    cr_assert_eq(ovms_group_parse_car(OVMS_STR(",80"), &g), OVMS_EFIELDS);
    cr_assert_eq(ovms_group_parse_relay(OVMS_STR("TESTCAR"), &g), OVMS_EFIELDS);
    cr_assert_eq(ovms_command_parse(OVMS_STR("abc"), &c), OVMS_ENUMBER);
    cr_assert_eq(ovms_count_parse(OVMS_STR("x"), &n), OVMS_ENUMBER);
    cr_assert_eq(ovms_count_parse(OVMS_STR(""), &n), OVMS_ENUMBER);
}

Test(messages, history_fields)
{
    ovms_histack_t ha;
    char ack[64];
    cr_assert_eq(ovms_histack_parse(OVMS_STR("42,-60,*-LOG-Trip,1,86400,1,51.4775,-0.0014,Greenwich, London"), &ha), 0);
    cr_assert(ovms_str_eq(ha.ackcode, "42"));
    cr_assert_eq(ha.timediff, -60);
    cr_assert(ovms_str_eq(ha.type, "*-LOG-Trip"));
    cr_assert_eq(ha.recno, 1);
    cr_assert_eq(ha.lifetime, 86400);
    cr_assert(ovms_str_eq(ha.data, "1,51.4775,-0.0014,Greenwich, London"));
    /* the ack echoes the text before the first comma, parsable or not */
    ovms_histack_ack(OVMS_STR("42,-60,*-LOG-Trip,1,86400,x"), ack, sizeof ack);
    cr_assert_str_eq(ack, "h42");
    ovms_histack_ack(OVMS_STR("7,garbage"), ack, sizeof ack);
    cr_assert_str_eq(ack, "h7");
    ovms_histack_ack(OVMS_STR("Mh3Zm9v,bar"), ack, sizeof ack);   /* EMh: "hMh<b64>" */
    cr_assert_str_eq(ack, "hMh3Zm9v");
    ovms_histack_ack(OVMS_STR(""), ack, sizeof ack);
    cr_assert_str_eq(ack, "h");
}

Test(messages, command_routing_fields)
{
    ovms_command_t c;
    ovms_cmdreply_t r;

    cr_assert_eq(ovms_command_parse(OVMS_STR("32,*-LOG-Trip,2026-01-01"), &c), 0);
    cr_assert(c.wellformed);
    cr_assert_eq(c.cmd, 32);
    cr_assert(ovms_str_eq(c.params, "*-LOG-Trip,2026-01-01"));
    cr_assert_eq(ovms_command_parse(OVMS_STR("30x"), &c), 0);
    cr_assert_eq(c.cmd, 30);
    cr_assert_not(c.wellformed);           /* so the server does not answer it */
    cr_assert_eq(ovms_command_parse(OVMS_STR("31"), &c), 0);
    cr_assert(c.wellformed);
    cr_assert_not(c.has_params);

    ovms_cmdreply_parse(OVMS_STR("3,0,5,32,value"), &r);
    cr_assert_eq(r.cmd, 3);
    cr_assert_eq(r.k, 5);
    cr_assert_eq(r.max, 32);
    cr_assert(ovms_str_eq(r.value, "value"));
    cr_assert(ovms_cmdreply_continues(&r));
    ovms_cmdreply_parse(OVMS_STR("3,0,31,32,last"), &r);
    cr_assert_not(ovms_cmdreply_continues(&r));
    ovms_cmdreply_parse(OVMS_STR("3,1,error text"), &r);
    cr_assert(ovms_cmdreply_continues(&r));    /* an error keeps the head */
    ovms_cmdreply_parse(OVMS_STR("1,0,x,y"), &r);  /* non-numeric counts as 0 */
    cr_assert_eq(r.k, 0);
    cr_assert_eq(r.max, 0);
    cr_assert_not(ovms_cmdreply_continues(&r));
    ovms_cmdreply_parse(OVMS_STR("7,0,Version: 3.3.004"), &r);
    cr_assert_not(ovms_cmdreply_continues(&r));
    cr_assert(ovms_str_eq(r.text, "Version: 3.3.004"));
    cr_assert_eq(r.nfields, 3);
    ovms_cmdreply_parse(OVMS_STR(""), &r);
    cr_assert_eq(r.cmd, 0);
}

Test(messages, subscriptions_and_push)
{
    ovms_pushsub_t ps;
    ovms_push_t pu;
    cr_assert_eq(ovms_pushsub_parse(OVMS_STR("myuser,mail,,TESTCAR,NETPASS,owner@example.org"), &ps), 0);
    cr_assert(ovms_str_eq(ps.vehicle, "TESTCAR"));
    cr_assert(ovms_str_eq(ps.netpass, "NETPASS"));
    cr_assert(ovms_str_eq(ps.pushkeyvalue, "owner@example.org"));
    cr_assert_eq(ovms_pushsub_parse(OVMS_STR("app,gcm,production,CAR,pa,ss,key"), &ps), 0);
    cr_assert(ovms_str_eq(ps.netpass, "pa,ss"));
    cr_assert(ovms_str_eq(ps.pushkeyvalue, "key"));
    cr_assert_eq(ovms_pushsub_parse(OVMS_STR("app,expo,simple,tok,en"), &ps), 0);
    cr_assert(ps.simple);
    cr_assert(ovms_str_eq(ps.pushkeyvalue, "tok,en"));

    ovms_groupsub_t gs;
    cr_assert_eq(ovms_groupsub_parse(OVMS_STR("rally,extra,fields"), &gs), 0);
    cr_assert(ovms_str_eq(gs.group, "rally"));
    cr_assert(ovms_str_eq(gs.rest, "extra,fields"));

    cr_assert_eq(ovms_push_parse(OVMS_STR("ETR,12,0x0001"), &pu), 0);
    cr_assert_eq(pu.type, 'E');
    cr_assert(ovms_str_eq(pu.vehicle_type, "TR"));
    cr_assert_eq(pu.error_code, 12);
    cr_assert(ovms_str_eq(pu.error_data, "0x0001"));
}

Test(messages, tpms_and_caps)
{
    ovms_tpms_t y;
    ovms_caps_t v;
    cr_assert_eq(ovms_tpms_parse(OVMS_STR("4,FL,FR,RL,RR,4,230.0,231.5,228.0,229.0,1,4,21.0,21.5,20.0,20.5,1,0,-1,4,0,0,0,0,1,0,-1"), &y), 0);
    cr_assert_eq(y.nwheels, 4);
    cr_assert(ovms_str_eq(y.wheel[3], "RR"));
    cr_assert_float_eq(y.sec[OVMS_TPMS_PRESSURE].v[1].v, 231.5, 1e-9);
    cr_assert_eq(y.sec[OVMS_TPMS_HEALTH].n, 0);
    cr_assert_float_eq(y.sec[OVMS_TPMS_HEALTH].valid.v, -1, 1e-9);
    cr_assert_eq(y.nsections, 5);

    cr_assert_eq(ovms_caps_parse(OVMS_STR("C1-6,C10-12,C49"), &v), 0);
    cr_assert(ovms_caps_has(&v, 5));
    cr_assert(ovms_caps_has(&v, 49));
    cr_assert_not(ovms_caps_has(&v, 7));
}

Test(messages, replication_fields)
{
    ovms_repl_t r;
    ovms_replmsg_t m;
    ovms_watermark_t wm[4];
    cr_assert_eq(ovms_repl_parse(OVMS_STR("VTESTCAR,1,NETPASS,*,0,2026-01-02 03:04:05,NODE1,43,future"), &r), 0);
    cr_assert(ovms_str_eq(r.carpass, "NETPASS"));
    cr_assert_eq(r.ch.seq, 43);
    cr_assert(ovms_str_eq(r.extra, "future"));
    cr_assert_eq(ovms_repl_parse(OVMS_STR("WNODE2,NODE1:42,NODE2:17"), &r), 0);
    cr_assert_eq(ovms_watermarks_parse(r.watermarks, ',', wm, 4), 2);
    cr_assert_eq(ovms_replmsg_parse(OVMS_STR("NODE1,46,2026-01-02 03:04:07,TESTCAR,H,*-LOG-Trip,1,2026-01-03 03:04:07,a,b"), &m), 0);
    cr_assert_eq(m.code, 'H');
    cr_assert_eq(m.recno, 1);
    cr_assert(ovms_str_eq(m.data, "a,b"));
    /* our own formatter refuses a comma in a password (PROTOCOL 3.2) */
    char out[256];
    cr_assert_eq(ovms_repl_parse(OVMS_STR("VTESTCAR,1,NETPASS,*,0,2026-01-02 03:04:05,NODE1,43"), &r), 0);
    r.carpass = OVMS_STR("NET,PASS");
    cr_assert_eq(ovms_repl_format(&r, out, sizeof out), OVMS_ECOMMA);
    /* RK: the permit list is the last field, commas and all */
    cr_assert_eq(ovms_repl_parse(OVMS_STR("K0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef,7,"
                                          "01234567,app,purpose,2026-01-02 03:04:05,0,"
                                          "2026-01-02 03:04:05,NODE1,9,auth, session"), &r), 0);
    cr_assert(ovms_str_eq(r.permit, "auth, session"));
    cr_assert(ovms_str_eq(r.application, "app"));
    cr_assert_eq(r.ch.seq, 9);
    cr_assert_eq(ovms_repl_parse(OVMS_STR("Kshort,7,01234567,app,purpose,2026-01-02 03:04:05,0,"
                                          "2026-01-02 03:04:05,NODE1,9,auth"), &r), OVMS_EINVAL);
    r.kind = 'K';
    r.application = OVMS_STR("my,app");
    cr_assert_eq(ovms_repl_format(&r, out, sizeof out), OVMS_ECOMMA);
}

Test(messages, numbers)
{
    ovms_num_t n;
    int64_t i;
    char out[64];
    ovms_environment_t d = { 0 };
    const char *good[] = { "0", "-0", "80", "80.0", "-1.25", "51.477500", "0.00", "123456789012345" };
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        cr_assert_eq(ovms_num_parse(ovms_str_c(good[k]), &n), 0, "%s", good[k]);
        d.nfields = 1;
        d.doors1 = n;
        ovms_environment_format(&d, out, sizeof out);
        cr_assert_str_eq(out + 1, good[k]);
    }
    const char *bad[] = { "+1", ".5", "5.", "1e3", "0x10", "nan", "1 ", "--1", "1234567890123456", "99999999999999999990" };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        cr_assert_eq(ovms_num_parse(ovms_str_c(bad[k]), &n), OVMS_ENUMBER, "%s", bad[k]);
    cr_assert_eq(ovms_num_parse(OVMS_STR(""), &n), 0);
    cr_assert(ovms_num_empty(n));
    cr_assert_eq(ovms_int_parse(OVMS_STR("-60"), &i), 0);
    cr_assert_eq(i, -60);
    cr_assert_eq(ovms_int_parse(OVMS_STR("1.0"), &i), OVMS_ENUMBER);
    cr_assert_eq(ovms_int_parse(OVMS_STR("-"), &i), OVMS_ENUMBER);
}

Test(messages, text_helpers)
{
    char text[] = "LTE,Online\r\nline2\nline3";
    size_t n = ovms_text_sanitize(text, strlen(text));
    cr_assert_eq(n, 22);
    cr_assert_arr_eq(text, "LTE;Online\rline2\rline3", n);

    int64_t t;
    char ts[20];
    cr_assert_eq(ovms_timestamp_parse(OVMS_STR("2026-01-02 03:04:05"), &t), 0);
    cr_assert_eq(t, 1767323045);
    ovms_timestamp_format(t, ts);
    cr_assert_str_eq(ts, "2026-01-02 03:04:05");
    cr_assert_eq(ovms_timestamp_parse(OVMS_STR("2026-01-02"), &t), 0);
    cr_assert_eq(t, 1767312000);
    cr_assert_eq(ovms_timestamp_parse(OVMS_STR("2026-13-02"), &t), OVMS_EINVAL);
    cr_assert_eq(ovms_timestamp_parse(OVMS_STR("2026-01-02T03:04:05"), &t), OVMS_EINVAL);

    cr_assert_str_eq(ovms_strerror(OVMS_EFIELDS), "missing fields");
    cr_assert_str_eq(ovms_err_name(OVMS_ELINE), "ELINE");
    cr_assert_str_eq(ovms_strerror(12345), "unknown error");

    ovms_str_t f[3];
    cr_assert_eq(ovms_fields_split(OVMS_STR("a,b,c,d"), f, 3), 3);
    cr_assert(ovms_str_eq(f[2], "c,d"));
    cr_assert_eq(ovms_fields_split(OVMS_STR(""), f, 3), 1);
    cr_assert_eq(ovms_fields_split(OVMS_STR("a"), f, 0), OVMS_EINVAL);
}
