/*
 * core.c -- the firmware's protocol client and reporting state machine.
 *
 * States: WAITING (backoff before the next attempt) -> CONNECTING (the
 * driver connects to ovms_fw_target) -> PROVISIONING (AP-C, when there are
 * no credentials) -> WELCOME (MP-C sent) -> ONLINE. A connection refused
 * during authentication stops the module until its settings change, as V3
 * modules do, so a wrong password does not get it blocked. Other failures
 * retry with exponential backoff and full jitter, rotating through every
 * address the server name resolves to (DNS round robin).
 *
 * Online it reports F V S D L W Y after login and whenever the app count
 * rises, then S D L W Y every update_watched seconds while apps watch (Z>0)
 * and every update_idle seconds otherwise; pings after 900 s of silence;
 * reconnects after 960 s without hearing from the server; sends history
 * records until each is acknowledged.
 * Threading: the caller's; no globals, no allocation.
 */
#include "fw_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MS 1000ull
#define PING_AFTER (900 * MS)
#define RX_TIMEOUT (960 * MS)
#define HANDSHAKE_TIMEOUT (30 * MS)
#define RETRANSMIT (10 * MS)

static const char *const state_names[] = { "?", "waiting", "connecting", "provisioning",
                                           "welcome", "online", "stopped" };

const char *ovms_fw_state_name(ovms_fw_state_t s)
{
    return s >= OVMS_FW_WAITING && s <= OVMS_FW_STOPPED ? state_names[s] : "?";
}

void fw_log(ovms_fw_t *fw, int level, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    if (!fw->pf->log)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fw->pf->log(fw->pf->ctx, level, text);
}

/* ---- settings and credentials --------------------------------------------------------- */

static void parse_server(ovms_fw_t *fw)
{
    const char *colon = strrchr(fw->cfg.server, ':');
    fw->port = OVMS_FW_PORT;
    if (colon && !strchr(colon, ']')) {
        snprintf(fw->host, sizeof fw->host, "%.*s", (int)(colon - fw->cfg.server), fw->cfg.server);
        fw->port = atoi(colon + 1) > 0 ? atoi(colon + 1) : OVMS_FW_PORT;
    } else {
        fw_copy(fw->host, sizeof fw->host, fw->cfg.server);
    }
}

void fw_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Parameters of PROTOCOL 9.1 from the settings: #4 server, #8 vehicle id,
 * #9 car password, #10 paranoid password (#1, the module password, is
 * where V3 keeps it too; it gets the same value unless one was set). */
static void params_from_config(ovms_fw_t *fw)
{
    if (!fw->params[1][0])
        fw_copy(fw->params[1], OVMS_FW_PARAM_LEN, fw->cfg.module_pw);
    if (!fw->params[2][0])
        fw_copy(fw->params[2], OVMS_FW_PARAM_LEN, "K");
    fw_copy(fw->params[4], OVMS_FW_PARAM_LEN, fw->cfg.server);
    fw_copy(fw->params[8], OVMS_FW_PARAM_LEN, fw->cfg.vehicle_id);
    fw_copy(fw->params[9], OVMS_FW_PARAM_LEN, fw->cfg.password);
    fw_copy(fw->params[10], OVMS_FW_PARAM_LEN, fw->cfg.module_pw);
}

void fw_config_from_params(ovms_fw_t *fw)
{
    fw_copy(fw->cfg.module_pw, sizeof fw->cfg.module_pw, fw->params[10]);
    if (fw->params[4][0])
        fw_copy(fw->cfg.server, sizeof fw->cfg.server, fw->params[4]);
    fw_copy(fw->cfg.vehicle_id, sizeof fw->cfg.vehicle_id, fw->params[8]);
    fw_copy(fw->cfg.password, sizeof fw->cfg.password, fw->params[9]);
    parse_server(fw);
    fw->naddrs = 0;                         /* resolve again */
}

typedef struct saved_settings {
    uint32_t magic;
    char features[OVMS_FW_FEATURES][12];
    char params[OVMS_FW_PARAMS][OVMS_FW_PARAM_LEN];
} saved_settings_t;

#define SETTINGS_MAGIC 0x4f564d53u          /* "OVMS" */

int fw_save_settings(ovms_fw_t *fw)
{
    saved_settings_t s = { .magic = SETTINGS_MAGIC };
    memcpy(s.features, fw->features, sizeof s.features);
    memcpy(s.params, fw->params, sizeof s.params);
    if (!fw->pf->save || fw->pf->save(fw->pf->ctx, "settings", &s, sizeof s) < 0) {
        fw_log(fw, OVMS_FW_LOG_ERROR, "cannot save the settings");
        return -1;
    }
    return 0;
}

static void load_settings(ovms_fw_t *fw)
{
    saved_settings_t s;
    if (!fw->pf->load || fw->pf->load(fw->pf->ctx, "settings", &s, sizeof s) != (int)sizeof s ||
        s.magic != SETTINGS_MAGIC)
        return;
    memcpy(fw->features, s.features, sizeof s.features);
    memcpy(fw->params, s.params, sizeof s.params);
    for (int i = 0; i < OVMS_FW_PARAMS; i++)
        fw->params[i][OVMS_FW_PARAM_LEN - 1] = '\0';
    /* settings given now win over stored ones; stored ones fill the gaps
     * (for example credentials that came by auto-provisioning) */
    if (!fw->cfg.vehicle_id[0] && fw->params[8][0])
        fw_config_from_params(fw);
}

int ovms_fw_init(ovms_fw_t *fw, const ovms_fw_config_t *cfg, const ovms_fw_platform_t *pf,
                 ovms_fw_vehicle_t *veh, uint64_t now_ms)
{
    memset(fw, 0, sizeof *fw);
    fw->cfg = *cfg;
    fw->pf = pf;
    fw->veh = veh;
    if (!fw->cfg.update_watched)
        fw->cfg.update_watched = 10;
    if (!fw->cfg.update_idle)
        fw->cfg.update_idle = 600;
    if (!fw->cfg.backoff_min)
        fw->cfg.backoff_min = 2;
    if (!fw->cfg.backoff_max)
        fw->cfg.backoff_max = 300;
    parse_server(fw);
    ovms_linesplit_init(&fw->ls, OVMS_CLIENT_LINE_MAX, fw->line_storage, sizeof fw->line_storage);
    params_from_config(fw);
    load_settings(fw);
    params_from_config(fw);
    fw_history_load(fw);
    fw->backoff = fw->cfg.backoff_min;
    fw->state = OVMS_FW_WAITING;
    fw->attempt_at = now_ms;                /* connect at once */
    fw->now = now_ms;
    if (!fw->cfg.vehicle_id[0] && !(fw->cfg.vin[0] && fw->cfg.iccid[0])) {
        fw_log(fw, OVMS_FW_LOG_ERROR, "no vehicle id and no provisioning keys (VIN, ICCID)");
        fw->state = OVMS_FW_STOPPED;
    }
    return 0;
}

void ovms_fw_reconfigure(ovms_fw_t *fw, const ovms_fw_config_t *cfg, uint64_t now_ms)
{
    fw->cfg = *cfg;
    parse_server(fw);
    params_from_config(fw);
    fw->naddrs = 0;
    fw->backoff = fw->cfg.backoff_min;
    if (fw->state == OVMS_FW_ONLINE || fw->state == OVMS_FW_WELCOME ||
        fw->state == OVMS_FW_PROVISIONING || fw->state == OVMS_FW_CONNECTING)
        fw->want_close = 1;
    else {
        fw->state = OVMS_FW_WAITING;
        fw->attempt_at = now_ms;
    }
}

/* ---- sending ------------------------------------------------------------------------ */

static int append_out(ovms_fw_t *fw, const char *data, size_t len)
{
    if (fw->out_len + len > sizeof fw->out) {
        fw_log(fw, OVMS_FW_LOG_WARN, "output full: a message was not sent");
        return -1;
    }
    memcpy(fw->out + fw->out_len, data, len);
    fw->out_len += len;
    return 0;
}

/* Paranoid mode wraps every message but the excluded codes (E A a g P) and
 * history (h, H: the server must read those). */
static int wraps(const ovms_fw_t *fw, char code)
{
    return fw->cfg.module_pw[0] && !ovms_paranoid_excluded(code) && code != 'h' && code != 'H';
}

int ovms_fw_send(ovms_fw_t *fw, const char *msg)
{
    char wrapped[OVMS_LINE_MAX], wire[OVMS_WIRE_LEN(OVMS_LINE_MAX)];
    size_t len = strlen(msg);
    int n;

    if (fw->state != OVMS_FW_ONLINE || len == 0)
        return -1;
    if (wraps(fw, msg[0])) {
        n = ovms_paranoid_wrap(fw->pdigest, msg, len, wrapped, sizeof wrapped);
        if (n < 0)
            return -1;
        msg = wrapped;
        len = (size_t)n;
    }
    if (len > 3067 - 1) {
        fw_log(fw, OVMS_FW_LOG_WARN, "message too long for a line: not sent");
        return -1;
    }
    n = ovms_session_encode(&fw->session, msg, len, wire, sizeof wire);
    if (n < 0 || append_out(fw, wire, (size_t)n) < 0)
        return -1;
    fw->last_tx = fw->now;
    return 0;
}

int fw_sendf(ovms_fw_t *fw, const char *fmt, ...)
{
    char msg[OVMS_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof msg)
        return -1;
    return ovms_fw_send(fw, msg);
}

size_t ovms_fw_pending(const ovms_fw_t *fw, const char **data)
{
    *data = fw->out;
    return fw->out_len;
}

void ovms_fw_sent(ovms_fw_t *fw, size_t n)
{
    if (n >= fw->out_len) {
        fw->out_len = 0;
        return;
    }
    memmove(fw->out, fw->out + n, fw->out_len - n);
    fw->out_len -= n;
}

/* ---- reporting ------------------------------------------------------------------------ */

static void send_formatted(ovms_fw_t *fw, int n, const char *msg)
{
    if (n > 0)
        ovms_fw_send(fw, msg);
}

/* full: F and V as well (after login, and when more apps watch). */
static void report(ovms_fw_t *fw, int full)
{
    ovms_fw_report_t r;
    char msg[OVMS_LINE_MAX];

    if (!fw->veh)
        return;
    memset(&r, 0, sizeof r);
    fw->veh->report(fw->veh->self, &r);
    if (full) {
        send_formatted(fw, ovms_firmware_format(&r.firmware, msg, sizeof msg), msg);
        send_formatted(fw, ovms_caps_format(&r.caps, msg, sizeof msg), msg);
    }
    send_formatted(fw, ovms_state_format(&r.state, msg, sizeof msg), msg);
    send_formatted(fw, ovms_environment_format(&r.env, msg, sizeof msg), msg);
    send_formatted(fw, ovms_location_format(&r.location, msg, sizeof msg), msg);
    send_formatted(fw, ovms_tpms_format(&r.tpms, msg, sizeof msg), msg);
    send_formatted(fw, ovms_tpmsw_format(&r.tpmsw, msg, sizeof msg), msg);
    fw->reports++;
    fw->next_report = fw->now + (fw->peers > 0 ? fw->cfg.update_watched : fw->cfg.update_idle) * MS;
}

/* ---- connecting ------------------------------------------------------------------------- */

static void schedule_retry(ovms_fw_t *fw, const char *why)
{
    uint8_t r[2];
    unsigned b = fw->backoff;
    /* full jitter over the upper half: between b/2 and b seconds */
    fw->pf->random(fw->pf->ctx, r, sizeof r);
    uint64_t wait_ms = (uint64_t)b * 500 + ((uint64_t)(r[0] << 8 | r[1]) * b * 500) / 65536;
    fw->attempt_at = fw->now + wait_ms;
    fw->state = OVMS_FW_WAITING;
    fw->backoff = b * 2 > fw->cfg.backoff_max ? fw->cfg.backoff_max : b * 2;
    fw_log(fw, OVMS_FW_LOG_INFO, "%s; next attempt in %.1f s", why, (double)wait_ms / 1000.0);
}

static void reset_connection(ovms_fw_t *fw)
{
    fw->out_len = 0;
    fw->peers = 0;
    fw->want_close = 0;
    ovms_linesplit_init(&fw->ls, OVMS_CLIENT_LINE_MAX, fw->line_storage, sizeof fw->line_storage);
}

static int pick_target(ovms_fw_t *fw)
{
    if (fw->naddrs == 0 || fw->next_addr >= fw->naddrs) {
        /* resolve again at every round through the list: DNS round robin */
        int n = fw->pf->resolve(fw->pf->ctx, fw->host, fw->addrs, OVMS_FW_MAX_ADDRS);
        if (n <= 0) {
            fw->naddrs = 0;
            return -1;
        }
        fw->naddrs = n;
        fw->next_addr = 0;
        for (int i = 0; i < n; i++)
            fw->addrs[i].port = fw->port;
    }
    fw->next_addr++;
    return 0;
}

const ovms_fw_addr_t *ovms_fw_target(const ovms_fw_t *fw)
{
    return fw->naddrs ? &fw->addrs[fw->next_addr - 1] : NULL;
}

static void send_raw_line(ovms_fw_t *fw, const char *line)
{
    append_out(fw, line, strlen(line));
    fw->last_tx = fw->now;
}

static void send_welcome(ovms_fw_t *fw)
{
    uint8_t bytes[OVMS_TOKEN_LEN];
    char digest[OVMS_DIGEST_B64_LEN + 1], line[256];

    fw->pf->random(fw->pf->ctx, bytes, sizeof bytes);
    ovms_token_from_bytes(bytes, sizeof bytes, fw->token);
    ovms_digest_b64(fw->cfg.password, strlen(fw->cfg.password), fw->token, OVMS_TOKEN_LEN, digest);
    ovms_welcome_format_client(line, sizeof line, 'C', fw->token, digest, fw->cfg.vehicle_id);
    send_raw_line(fw, line);
    fw->state = OVMS_FW_WELCOME;
}

void ovms_fw_connected(ovms_fw_t *fw, uint64_t now_ms)
{
    char line[128];
    fw->now = now_ms;
    reset_connection(fw);
    fw->last_rx = now_ms;
    fw->login_at = now_ms;
    if (!fw->cfg.vehicle_id[0]) {
        ovms_apc_format(line, sizeof line, fw->cfg.vin);
        send_raw_line(fw, line);
        fw->state = OVMS_FW_PROVISIONING;
        fw_log(fw, OVMS_FW_LOG_INFO, "no credentials: asking for provisioning (AP-C %s)", fw->cfg.vin);
        return;
    }
    send_welcome(fw);
}

void ovms_fw_connect_failed(ovms_fw_t *fw, uint64_t now_ms)
{
    fw->now = now_ms;
    schedule_retry(fw, "cannot connect");
}

void ovms_fw_closed(ovms_fw_t *fw, uint64_t now_ms)
{
    ovms_fw_state_t was = fw->state;
    fw->now = now_ms;
    reset_connection(fw);
    if (was == OVMS_FW_WELCOME) {
        /* the server refused the login: retrying would only get us blocked */
        fw->state = OVMS_FW_STOPPED;
        fw_log(fw, OVMS_FW_LOG_ERROR, "the server refused the login of %s: not reconnecting "
               "until the settings change", fw->cfg.vehicle_id);
        return;
    }
    if (was == OVMS_FW_ONLINE && now_ms - fw->login_at > 60 * MS)
        fw->backoff = fw->cfg.backoff_min;  /* it worked for a while: start over */
    if (was != OVMS_FW_STOPPED)
        schedule_retry(fw, "connection closed");
}

/* ---- receiving --------------------------------------------------------------------------- */

static void provisioning_reply(ovms_fw_t *fw, ovms_str_t line)
{
    ovms_apreply_t ap;
    ovms_params_t p;
    char text[512];

    if (ovms_apreply_parse(line.ptr, line.len, &ap) < 0 || !ap.found) {
        fw_log(fw, OVMS_FW_LOG_WARN, "no provisioning record for %s", fw->cfg.vin);
        fw->want_close = 1;
        fw->backoff = fw->cfg.backoff_max;
        return;
    }
    if (ovms_provision_decode(fw->cfg.iccid, ap.token, ap.digest, ap.record, text, sizeof text) < 0 ||
        ovms_params_parse(ovms_str_c(text), &p) < 10) {
        fw_log(fw, OVMS_FW_LOG_ERROR, "the provisioning record does not open with our ICCID");
        fw->want_close = 1;
        return;
    }
    for (int i = 0; i < p.n && i < OVMS_FW_PARAMS; i++)
        ovms_str_copy(p.v[i], fw->params[i], OVMS_FW_PARAM_LEN);
    fw_config_from_params(fw);
    fw_save_settings(fw);
    fw_log(fw, OVMS_FW_LOG_INFO, "provisioned as %s (server %s)", fw->cfg.vehicle_id, fw->cfg.server);
    send_welcome(fw);                       /* on the same connection */
}

static void server_welcome(ovms_fw_t *fw, ovms_str_t line)
{
    char stoken[64];
    if (ovms_server_welcome_verify(line.ptr, line.len, fw->cfg.password, strlen(fw->cfg.password),
                                   fw->token, stoken, sizeof stoken) < 0) {
        fw_log(fw, OVMS_FW_LOG_ERROR, "the server's welcome does not authenticate: closing");
        fw->want_close = 1;
        fw->state = OVMS_FW_STOPPED;
        return;
    }
    ovms_session_init(&fw->session, fw->cfg.password, strlen(fw->cfg.password), stoken,
                      strlen(stoken), fw->token, OVMS_TOKEN_LEN);
    fw->state = OVMS_FW_ONLINE;
    fw->logins++;
    fw->peers = -1;                         /* until the first Z */
    fw_log(fw, OVMS_FW_LOG_INFO, "logged in as %s", fw->cfg.vehicle_id);
}

/* After login (the first Z): the paranoid token, everything, history. */
static void after_login(ovms_fw_t *fw)
{
    if (fw->cfg.module_pw[0]) {
        uint8_t bytes[OVMS_TOKEN_LEN];
        fw->pf->random(fw->pf->ctx, bytes, sizeof bytes);
        ovms_token_from_bytes(bytes, sizeof bytes, fw->ptoken);
        ovms_paranoid_key(fw->cfg.module_pw, strlen(fw->cfg.module_pw), fw->ptoken,
                          OVMS_TOKEN_LEN, fw->pdigest);
        fw_sendf(fw, "ET%s", fw->ptoken);
    }
    report(fw, 1);
    fw_history_send_all(fw);
}

/* EM from an app: a paranoid command (anything else is not for us). */
static void paranoid_in(ovms_fw_t *fw, ovms_str_t payload)
{
    ovms_paranoid_t e;
    char inner[OVMS_LINE_MAX];
    if (!fw->cfg.module_pw[0] || ovms_paranoid_parse(payload, &e) < 0 || e.kind != 'M')
        return;
    int n = ovms_paranoid_unwrap(fw->pdigest, payload.ptr + 1, payload.len - 1, inner, sizeof inner);
    if (n > 0 && inner[0] == 'C')
        fw_command(fw, (ovms_str_t){ inner + 1, (size_t)n - 1 }, 1);
}

static void on_message(ovms_fw_t *fw, const ovms_msg_t *m)
{
    int64_t n;
    switch (m->code) {
    case 'Z':
        if (ovms_count_parse(m->payload, &n) < 0)
            return;
        if (fw->peers < 0) {
            fw->peers = (int)n;
            after_login(fw);
        } else {
            int more = n > fw->peers;
            fw->peers = (int)n;
            if (more)
                report(fw, 1);              /* a new app: send it everything */
            else
                fw->next_report = fw->now + (n > 0 ? fw->cfg.update_watched : fw->cfg.update_idle) * MS;
        }
        return;
    case 'A': ovms_fw_send(fw, "a"); return;
    case 'C': fw_command(fw, m->payload, 0); return;
    case 'E': paranoid_in(fw, m->payload); return;
    case 'h': fw_history_ack(fw, m->payload); return;
    default: return;                        /* a, f, T and anything new: nothing to do */
    }
}

void ovms_fw_input(ovms_fw_t *fw, uint64_t now_ms, const char *data, size_t len)
{
    ovms_str_t line;
    int rc;

    fw->now = now_ms;
    fw->last_rx = now_ms;
    while ((rc = ovms_linesplit_next(&fw->ls, &data, &len, &line)) > 0) {
        if (fw->want_close)
            return;
        if (fw->state == OVMS_FW_PROVISIONING) {
            provisioning_reply(fw, line);
        } else if (fw->state == OVMS_FW_WELCOME) {
            server_welcome(fw, line);
        } else if (fw->state == OVMS_FW_ONLINE) {
            char plain[OVMS_CLIENT_LINE_MAX];
            ovms_msg_t m;
            if (ovms_session_decode(&fw->session, line.ptr, line.len, plain, sizeof plain, &m) < 0) {
                fw_log(fw, OVMS_FW_LOG_WARN, "undecodable line from the server: reconnecting");
                fw->want_close = 1;
                return;
            }
            on_message(fw, &m);
        }
    }
    if (rc < 0)
        fw->want_close = 1;
}

/* ---- time ---------------------------------------------------------------------------------- */

static uint64_t earlier(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Reports, history retransmission and pings; when they are next due.
 * Reports and history wait for the first Z (peers < 0 until then). */
static uint64_t online_timers(ovms_fw_t *fw, uint64_t now_ms)
{
    int after_z = fw->peers >= 0;
    if (after_z && now_ms >= fw->next_report)
        report(fw, 0);
    if (after_z && fw->hq.n && now_ms >= fw->next_retransmit)
        fw_history_send_all(fw);
    if (now_ms - fw->last_tx >= PING_AFTER)
        ovms_fw_send(fw, "A");
    uint64_t next = earlier(fw->last_rx + RX_TIMEOUT, fw->last_tx + PING_AFTER);
    if (after_z)
        next = earlier(next, fw->next_report);
    if (after_z && fw->hq.n)
        next = earlier(next, fw->next_retransmit);
    return next;
}

ovms_fw_action_t ovms_fw_poll(ovms_fw_t *fw, uint64_t now_ms, uint64_t *next_ms)
{
    ovms_fw_record_t rec;
    uint64_t next = now_ms + 60 * MS;

    fw->now = now_ms;
    if (fw->veh) {
        fw->veh->step(fw->veh->self, now_ms);
        while (fw->veh->next_record && fw->veh->next_record(fw->veh->self, &rec))
            ovms_fw_history_add(fw, &rec);
    }
    switch (fw->state) {
    case OVMS_FW_WAITING:
        if (now_ms >= fw->attempt_at) {
            if (pick_target(fw) < 0) {
                schedule_retry(fw, "cannot resolve the server name");
                next = fw->attempt_at;
                break;
            }
            fw->state = OVMS_FW_CONNECTING;
            fw_log(fw, OVMS_FW_LOG_INFO, "connecting to %s port %d (%s)", fw->addrs[fw->next_addr - 1].host,
                   fw->port, fw->host);
            *next_ms = now_ms + HANDSHAKE_TIMEOUT;
            return OVMS_FW_CONNECT;
        }
        next = fw->attempt_at;
        break;
    case OVMS_FW_CONNECTING:
    case OVMS_FW_PROVISIONING:
    case OVMS_FW_WELCOME:
        if (fw->want_close || now_ms - fw->login_at >= HANDSHAKE_TIMEOUT) {
            if (!fw->want_close)
                fw_log(fw, OVMS_FW_LOG_WARN, "no answer from the server: closing");
            if (fw->state == OVMS_FW_WELCOME)
                fw->state = OVMS_FW_CONNECTING;    /* our own close is not a refusal */
            *next_ms = now_ms + MS;
            return OVMS_FW_CLOSE;
        }
        next = fw->login_at + HANDSHAKE_TIMEOUT;
        break;
    case OVMS_FW_ONLINE:
        if (fw->want_close || now_ms - fw->last_rx >= RX_TIMEOUT) {
            if (!fw->want_close)
                fw_log(fw, OVMS_FW_LOG_WARN, "nothing from the server for 960 s: reconnecting");
            *next_ms = now_ms + MS;
            return OVMS_FW_CLOSE;
        }
        next = online_timers(fw, now_ms);
        break;
    case OVMS_FW_STOPPED:
        if (fw->want_close) {
            *next_ms = now_ms + 60 * MS;
            return OVMS_FW_CLOSE;
        }
        break;
    }
    /* the vehicle makes progress (and records) even between protocol events */
    *next_ms = earlier(next, now_ms + MS);
    return OVMS_FW_NOTHING;
}
