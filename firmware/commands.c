/*
 * commands.c -- commands from apps (PROTOCOL 9): module commands (features
 * and parameters, reboot, charge alert, text commands, modem commands) are
 * answered here; vehicle commands (10-26) go to the vehicle. Replies take
 * V3's form: vehicle-handled commands always carry a third field. Under
 * paranoid mode every reply is wrapped (ovms_fw_send does it).
 * Threading: the core's.
 */
#include "fw_int.h"

#include <stdio.h>
#include <string.h>

#define CMD_OK 0
#define CMD_FAILED 1
#define CMD_UNSUPPORTED 2

static void reply(ovms_fw_t *fw, int cmd, int rc, const char *text)
{
    char clean[OVMS_LINE_MAX / 2];
    size_t n = snprintf(clean, sizeof clean, "%s", text ? text : "");
    n = ovms_text_sanitize(clean, n < sizeof clean ? n : sizeof clean - 1);
    clean[n] = '\0';
    fw_sendf(fw, "c%d,%d,%s", cmd, rc, clean);
}

/* Multi-line lists (1 and 3): c<cmd>,0,<k>,<max>,<value>, k = 0..max-1. */
static void list(ovms_fw_t *fw, int cmd, int max, const char *values, size_t stride)
{
    for (int k = 0; k < max; k++) {
        const char *v = values + (size_t)k * stride;
        /* never echo the passwords (#1 module, #9 car, #10 paranoid) */
        if (cmd == 3 && (k == 1 || k == 9 || k == 10))
            v = "";
        fw_sendf(fw, "c%d,0,%d,%d,%s", cmd, k, max, v);
    }
}

/* "<index>,<value>" into a table of strings. */
static int set_entry(ovms_str_t params, char *table, size_t width, int count, int *index)
{
    ovms_str_t f[2];
    int64_t i;
    if (ovms_fields_split(params, f, 2) != 2 || ovms_int_parse(f[0], &i) < 0 || i < 0 ||
        i >= count || f[1].len >= width || memchr(f[1].ptr, ' ', f[1].len))
        return -1;
    ovms_str_copy(f[1], table + (size_t)i * width, width);
    *index = (int)i;
    return 0;
}

/* "metrics list [prefix]": a few of V3's metric names, from the report. */
static void metrics_list(ovms_fw_t *fw, const char *prefix, char *out, size_t cap)
{
    ovms_fw_report_t r;
    size_t used = 0;
    memset(&r, 0, sizeof r);
    if (fw->veh)
        fw->veh->report(fw->veh->self, &r);
    const struct { const char *name; ovms_num_t v; const char *unit; } m[] = {
        { "v.b.soc", r.state.soc, "%" },
        { "v.b.range.ideal", r.state.ideal_range, "km" },
        { "v.b.range.est", r.state.est_range, "km" },
        { "v.b.soh", r.state.soh, "%" },
        { "v.b.temp", r.env.battery_temp, "\u00b0C" },
        { "v.c.current", r.state.charge_current, "A" },
        { "v.c.limit.soc", r.state.acc_soc_limit, "%" },
        { "v.e.cabintemp", r.env.cabin_temp, "\u00b0C" },
        { "v.e.temp", r.env.ambient_temp, "\u00b0C" },
        { "v.p.latitude", r.location.latitude, "" },
        { "v.p.longitude", r.location.longitude, "" },
        { "v.p.speed", r.location.speed, "km/h" },
    };
    out[0] = '\0';
    for (size_t i = 0; i < sizeof m / sizeof m[0] && used < cap; i++) {
        if (strncmp(m[i].name, prefix, strlen(prefix)) != 0 || ovms_num_empty(m[i].v))
            continue;
        int n = snprintf(out + used, cap - used, "%s%-20s %.*f%s", used ? "\n" : "", m[i].name,
                         m[i].v.dp, m[i].v.v, m[i].unit);
        if (n > 0)
            used += (size_t)n;
    }
    if (!out[0])
        snprintf(out, cap, "no metric matches %s", prefix);
}

static void text_command(ovms_fw_t *fw, const char *text)
{
    char out[512];
    if (!strncmp(text, "metrics list", 12) && (text[12] == ' ' || !text[12])) {
        metrics_list(fw, text[12] ? text + 13 : "", out, sizeof out);
    } else if (!strcmp(text, "stat") || !strcmp(text, "status")) {
        if (fw->veh && fw->veh->status)
            fw->veh->status(fw->veh->self, out, sizeof out);
        else
            snprintf(out, sizeof out, "no vehicle");
    } else if (!strcmp(text, "ver") || !strcmp(text, "version")) {
        snprintf(out, sizeof out, "%s", OVMS_FW_VERSION);
    } else if (!strcmp(text, "help")) {
        snprintf(out, sizeof out, "stat\nver\nserver\nhistory\nmetrics list [prefix]\nhelp");
    } else if (!strcmp(text, "server")) {
        snprintf(out, sizeof out, "%s as %s, %u logins, %u reports, apps watching: %d",
                 fw->cfg.server, fw->cfg.vehicle_id, fw->logins, fw->reports, fw->peers);
    } else if (!strcmp(text, "history")) {
        snprintf(out, sizeof out, "%d records waiting, %u acknowledged", fw->hq.n,
                 fw->records_acked);
    } else {
        snprintf(out, sizeof out, "Unrecognised command: %.400s", text);
        reply(fw, 7, CMD_OK, out);
        return;
    }
    reply(fw, 7, CMD_OK, out);
}

static void set_parameter(ovms_fw_t *fw, ovms_str_t params)
{
    int i;
    if (set_entry(params, &fw->params[0][0], OVMS_FW_PARAM_LEN, OVMS_FW_PARAMS, &i) < 0) {
        reply(fw, 4, CMD_FAILED, "expected <param>,<value> without spaces");
        return;
    }
    fw_save_settings(fw);
    reply(fw, 4, CMD_OK, "");
    if (i == 4 || i == 8 || i == 9 || i == 10) {
        /* new credentials or server: log in again with them */
        fw_config_from_params(fw);
        ovms_fw_reconfigure(fw, &fw->cfg, fw->now);
    }
}

void fw_command(ovms_fw_t *fw, ovms_str_t payload, int paranoid)
{
    ovms_command_t c;
    char params[OVMS_LINE_MAX], text[256];
    int rc, i;

    (void)paranoid;                          /* replies are wrapped whenever paranoid mode is on */
    if (ovms_command_parse(payload, &c) < 0)
        return;
    fw->commands++;
    ovms_str_copy(c.params, params, sizeof params);
    /* PINs (20-23) and settings (4: passwords) stay out of the log */
    int secret = (c.cmd >= 20 && c.cmd <= 23) || c.cmd == 4;
    fw_log(fw, OVMS_FW_LOG_INFO, "command %d%s%s", c.cmd, c.has_params ? " " : "",
           c.has_params ? (secret ? "(hidden)" : params) : "");
    switch (c.cmd) {
    case 1:
        list(fw, 1, OVMS_FW_FEATURES, &fw->features[0][0], sizeof fw->features[0]);
        return;
    case 2:
        if (set_entry(c.params, &fw->features[0][0], sizeof fw->features[0], OVMS_FW_FEATURES, &i) < 0) {
            reply(fw, 2, CMD_FAILED, "expected <feature>,<value>");
            return;
        }
        fw_save_settings(fw);
        reply(fw, 2, CMD_OK, "");
        return;
    case 3:
        list(fw, 3, OVMS_FW_PARAMS, &fw->params[0][0], sizeof fw->params[0]);
        return;
    case 4:
        set_parameter(fw, c.params);
        return;
    case 5:
        reply(fw, 5, CMD_OK, "rebooting");
        fw->want_close = 1;                  /* a reboot: the module reconnects */
        return;
    case 6:
        reply(fw, 6, CMD_OK, "");
        if (fw->veh && fw->veh->status) {
            fw->veh->status(fw->veh->self, text, sizeof text);
            fw_sendf(fw, "PA%s", text);
        }
        return;
    case 7:
        text_command(fw, params);
        return;
    case 30:
    case 31:
    case 32:
        reply(fw, c.cmd, CMD_UNSUPPORTED, "answered by the server");
        return;
    case 40:
    case 41:
    case 49:
        reply(fw, c.cmd, CMD_UNSUPPORTED, "no modem in this module");
        return;
    default:
        break;
    }
    if (c.cmd >= 10 && c.cmd <= 29 && fw->veh && fw->veh->command) {
        text[0] = '\0';
        rc = fw->veh->command(fw->veh->self, c.cmd, params, text, sizeof text);
        reply(fw, c.cmd, rc, text);
        return;
    }
    reply(fw, c.cmd, CMD_UNSUPPORTED, "");
}
