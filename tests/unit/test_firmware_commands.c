/*
 * test_firmware_commands.c -- every command of PROTOCOL 9 (1-49) sent by a
 * fake server to the firmware core with the simulated car, and the reply
 * and the effect checked: module settings, charging, locks and valet mode
 * with the PIN, climate, and "unsupported" for what a simulated car has not
 * got.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fw_fake.h"
#include "ovms_fw.h"

#define S 1000ull

static fake_platform_t fp;
static fake_server_t srv;
static ovms_fw_t fw;
static ovms_sim_t sim;
static uint64_t now;

static void online(void)
{
    ovms_fw_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.server, sizeof c.server, "ovms.example.org");
    snprintf(c.vehicle_id, sizeof c.vehicle_id, "SIMCAR");
    snprintf(c.password, sizeof c.password, "CARPW");
    snprintf(c.module_pw, sizeof c.module_pw, "%s", "");
    now = 0;
    fake_init(&fp);
    ovms_sim_init(&sim, 11, 1.0, fp.wall, now);
    sim.phase_left = 1000000;                  /* stays parked unless a test moves it */
    ovms_fw_init(&fw, &c, &fp.pf, &sim.ops, now);
    fake_login(&srv, &fw, now, "CARPW", "ServerToken0123456789a");
    server_send(&srv, &fw, now, "Z0");
    server_collect(&srv, &fw);
}

/* Send a command; the replies (c...) collected. */
static int command(const char *msg)
{
    now += S;
    server_send(&srv, &fw, now, msg);
    server_collect(&srv, &fw);
    return srv.n;
}

/* Send a command that gets exactly one reply; check it. */
static void expect(const char *msg, const char *reply)
{
    cr_assert_eq(command(msg), 1, "%s: %d replies", msg, srv.n);
    cr_assert_str_eq(srv.msg[0], reply, "%s", msg);
}

TestSuite(fwcmd, .init = online);

Test(fwcmd, features_list_and_set)
{
    cr_assert_eq(command("C1"), OVMS_FW_FEATURES);
    for (int k = 0; k < OVMS_FW_FEATURES; k++) {
        char want[32];
        snprintf(want, sizeof want, "c1,0,%d,%d,", k, OVMS_FW_FEATURES);
        cr_assert_str_eq(srv.msg[k], want);
    }
    expect("C2,8,1", "c2,0,");
    expect("C2,9,20", "c2,0,");
    cr_assert_eq(command("C1"), OVMS_FW_FEATURES);
    cr_assert_str_eq(srv.msg[8], "c1,0,8,16,1");
    cr_assert_str_eq(srv.msg[9], "c1,0,9,16,20");
    expect("C2,99,1", "c2,1,expected <feature>;<value>");
    expect("C2", "c2,1,expected <feature>;<value>");
    /* kept across a restart */
    ovms_fw_t again;
    ovms_fw_init(&again, &fw.cfg, &fp.pf, &sim.ops, now);
    cr_assert_str_eq(again.features[9], "20");
}

Test(fwcmd, parameters_list_without_passwords)
{
    cr_assert_eq(command("C3"), OVMS_FW_PARAMS);
    cr_assert_str_eq(srv.msg[4], "c3,0,4,32,ovms.example.org");
    cr_assert_str_eq(srv.msg[8], "c3,0,8,32,SIMCAR");
    cr_assert_str_eq(srv.msg[9], "c3,0,9,32,", "the car password is never sent");
    cr_assert_str_eq(srv.msg[31], "c3,0,31,32,");
    expect("C4,5,internet.example", "c4,0,");
    cr_assert_str_eq(fw.params[5], "internet.example");
    expect("C4,5,two words", "c4,1,expected <param>;<value> without spaces");
}

Test(fwcmd, new_credentials_reconnect_with_them)
{
    uint64_t next;
    expect("C4,9,NEWPW", "c4,0,");
    cr_assert_str_eq(fw.cfg.password, "NEWPW");
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CLOSE);
    ovms_fw_closed(&fw, now);
    cr_assert_eq(fw.state, OVMS_FW_WAITING);
    fake_login(&srv, &fw, now, "NEWPW", "ServerToken0123456789b");
}

Test(fwcmd, new_server_is_resolved)
{
    uint64_t next;
    expect("C4,4,other.example.org:7777", "c4,0,");
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CLOSE);
    ovms_fw_closed(&fw, now);
    fw.attempt_at = now;
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CONNECT);
    cr_assert_str_eq(fp.resolved_host, "other.example.org");
    cr_assert_eq(ovms_fw_target(&fw)->port, 7777);
}

Test(fwcmd, reboot_reconnects)
{
    uint64_t next;
    expect("C5", "c5,0,rebooting");
    cr_assert_eq(ovms_fw_poll(&fw, now, &next), OVMS_FW_CLOSE);
}

Test(fwcmd, charge_alert)
{
    cr_assert_eq(command("C6"), 2);
    cr_assert_str_eq(srv.msg[0], "c6,0,");
    cr_assert(!strncmp(srv.msg[1], "PANot charging", 14), "%s", srv.msg[1]);
}

Test(fwcmd, text_commands)
{
    cr_assert_eq(command("C7,stat"), 1);
    cr_assert(!strncmp(srv.msg[0], "c7,0,Not charging\rSOC: ", 23), "%s", srv.msg[0]);
    cr_assert_null(strchr(srv.msg[0] + 5, ','), "commas become ; in free text");
    cr_assert_null(strchr(srv.msg[0], '\n'), "line breaks become CR");
    cr_assert_eq(command("C7,ver"), 1);
    cr_assert(!strncmp(srv.msg[0], "c7,0,ovms-fw-", 13), "%s", srv.msg[0]);
    cr_assert_eq(command("C7,metrics list v.b.s"), 1);
    cr_assert(!strncmp(srv.msg[0], "c7,0,v.b.soc ", 13), "%s", srv.msg[0]);
    cr_assert_not_null(strstr(srv.msg[0], "v.b.soh"));
    cr_assert_eq(command("C7,history"), 1);
    cr_assert_str_eq(srv.msg[0], "c7,0,0 records waiting; 0 acknowledged");
    cr_assert_eq(command("C7,frobnicate"), 1);
    cr_assert_str_eq(srv.msg[0], "c7,0,Unrecognised command: frobnicate");
}

Test(fwcmd, charge_mode_and_current)
{
    expect("C10,3", "c10,0,");
    cr_assert_eq(sim.charge_mode, 3);
    expect("C10,2", "c10,1,unknown charge mode");
    expect("C10", "c10,1,expected <mode>");
    expect("C15,16", "c15,0,");
    cr_assert_eq(sim.charge_limit_a, 16);
    expect("C15,99", "c15,1,charge current must be 6 to 32 A");
    expect("C16,1,10", "c16,0,");
    cr_assert_eq(sim.charge_mode, 1);
    cr_assert_eq(sim.charge_limit_a, 10);
    expect("C16,1", "c16,1,expected <mode>;<amps>");
    expect("C17,1,120", "c17,0,");
    cr_assert_eq(sim.timer_mode, 1);
    cr_assert_eq(sim.timer_start, 120);
    expect("C17,5,1", "c17,1,expected <timermode 0/1>;<start>");
}

Test(fwcmd, charge_start_and_stop)
{
    expect("C11", "c11,1,not plugged in");
    expect("C12", "c12,1,not charging");
    sim.plugged = 1;
    sim.soc = 50;
    expect("C11", "c11,0,");
    cr_assert_eq(sim.phase, OVMS_SIM_CHARGING);
    /* an hour of charging raises the state of charge */
    uint64_t next;
    double before = sim.soc;
    for (int i = 0; i < 60; i++) {
        now += 60 * S;
        ovms_fw_poll(&fw, now, &next);
        server_send(&srv, &fw, now, "a");
    }
    cr_assert_gt(sim.soc, before + 10, "%.1f -> %.1f", before, sim.soc);
    server_collect(&srv, &fw);
    expect("C12", "c12,0,");
    cr_assert_eq(sim.phase, OVMS_SIM_PARKED);
    /* stopping made a charge record, queued for the server */
    uint64_t nx;
    ovms_fw_poll(&fw, now, &nx);
    cr_assert_eq(fw.hq.n, 1);
    cr_assert_str_eq(fw.hq.rec[0].rec.type, "*-LOG-Charge");
}

Test(fwcmd, wakeups)
{
    expect("C18", "c18,0,");
    expect("C19", "c19,0,");
}

Test(fwcmd, locks_and_valet_with_the_pin)
{
    expect("C22,1234", "c22,0,");
    cr_assert_eq(sim.locked, 0);
    expect("C20,0000", "c20,1,wrong PIN");
    cr_assert_eq(sim.locked, 0);
    expect("C20,1234", "c20,0,");
    cr_assert_eq(sim.locked, 1);
    expect("C22", "c22,1,wrong PIN");
    expect("C21,1234", "c21,0,");
    cr_assert_eq(sim.valet, 1);
    expect("C23,4321", "c23,1,wrong PIN");
    cr_assert_eq(sim.valet, 1);
    expect("C23,1234", "c23,0,");
    cr_assert_eq(sim.valet, 0);
    /* the report shows it */
    ovms_fw_report_t r;
    sim.ops.report(sim.ops.self, &r);
    cr_assert_eq((int)r.env.lock_state.v, 4);
    cr_assert_eq((int)r.env.doors2.v & 0x18, 0x08);
}

Test(fwcmd, homelink_cooldown_climate)
{
    expect("C24", "c24,0,homelink 0 activated");
    expect("C24,2", "c24,0,homelink 2 activated");
    expect("C24,7", "c24,1,button must be 0; 1 or 2");
    expect("C25", "c25,1,not plugged in");
    sim.plugged = 1;
    expect("C25", "c25,0,");
    expect("C26,1", "c26,0,");
    cr_assert_eq(sim.climate, 1);
    expect("C26,0", "c26,0,");
    expect("C26,on", "c26,1,expected 0 (off) or 1 (on)");
}

Test(fwcmd, what_a_simulated_car_cannot_do)
{
    expect("C13", "c13,2,");
    expect("C14", "c14,2,");
    expect("C27", "c27,2,");
    expect("C30", "c30,2,answered by the server");
    expect("C31", "c31,2,answered by the server");
    expect("C32,*-LOG-Trip", "c32,2,answered by the server");
    expect("C40,+4477,hello", "c40,2,no modem in this module");
    expect("C41,*100#", "c41,2,no modem in this module");
    expect("C49,AT+CSQ", "c49,2,no modem in this module");
    for (int cmd = 8; cmd <= 9; cmd++) {
        char msg[16], want[16];
        snprintf(msg, sizeof msg, "C%d", cmd);
        snprintf(want, sizeof want, "c%d,2,", cmd);
        expect(msg, want);
    }
    for (int cmd = 33; cmd <= 49; cmd++) {
        if (cmd == 40 || cmd == 41 || cmd == 49)
            continue;
        char msg[16], want[16];
        snprintf(msg, sizeof msg, "C%d", cmd);
        snprintf(want, sizeof want, "c%d,2,", cmd);
        expect(msg, want);
    }
    /* not a command at all: no reply */
    cr_assert_eq(command("Cfoo"), 0);
}
