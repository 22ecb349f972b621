/*
 * fuzz_firmware.c -- libFuzzer target: the car firmware core facing a
 * hostile server. The first byte picks the stage the bytes arrive in: 0
 * logged in (the rest is a list of messages, one per line, which a fake
 * server encrypts properly: this reaches the command, history and paranoid
 * handlers), 1 waiting for the server's welcome, 2 waiting for a
 * provisioning reply (the rest is raw bytes)) and paranoid mode (byte / 3
 * odd). The core must not crash,
 * must keep its output within bounds, and everything it sends must decrypt.
 */
#include <stdlib.h>
#include <string.h>

#include "ovms_fw.h"

static uint8_t storage[2][32768];
static int stored[2];

static int64_t wall(void *ctx) { (void)ctx; return 1795600000; }

static void rnd(void *ctx, uint8_t *buf, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 37 + 11);
}

static int slot(const char *name) { return strcmp(name, "history") == 0; }

static int load(void *ctx, const char *name, void *buf, size_t cap)
{
    (void)ctx, (void)name, (void)buf, (void)cap;
    return -1;                       /* every run starts from nothing */
}

static int save(void *ctx, const char *name, const void *buf, size_t len)
{
    (void)ctx;
    if (len > sizeof storage[0])
        return -1;
    memcpy(storage[slot(name)], buf, len);
    stored[slot(name)] = (int)len;
    return 0;
}

static int resolve(void *ctx, const char *host, ovms_fw_addr_t *out, int max)
{
    (void)ctx, (void)host, (void)max;
    strcpy(out[0].host, "127.0.0.1");
    return 1;
}

static const ovms_fw_platform_t pf = { .wall = wall, .random = rnd, .load = load,
                                       .save = save, .resolve = resolve };

static ovms_fw_t fw;
static ovms_sim_t sim;
static ovms_session_t server;

/* Everything the car sent must be well-formed lines the server can read. */
static void drain(int online)
{
    const char *data;
    size_t len = ovms_fw_pending(&fw, &data);
    if (len > OVMS_FW_OUT)
        abort();
    if (online) {
        const char *p = data, *end = data + len;
        while (p < end) {
            const char *lf = memchr(p, '\n', (size_t)(end - p));
            if (!lf || lf == p || lf[-1] != '\r')
                abort();
            char plain[8192];
            ovms_msg_t m;
            if (ovms_session_decode(&server, p, (size_t)(lf - 1 - p), plain, sizeof plain, &m) < 0)
                abort();
            p = lf + 1;
        }
    }
    ovms_fw_sent(&fw, len);
}

static void login(void)
{
    char digest[OVMS_DIGEST_B64_LEN + 1], line[128];
    const char *stoken = "ServerToken0123456789a";
    ovms_digest_b64("PW", 2, stoken, 22, digest);
    ovms_welcome_format_server(line, sizeof line, stoken, digest);
    ovms_session_init(&server, "PW", 2, stoken, 22, fw.token, OVMS_TOKEN_LEN);
    ovms_fw_input(&fw, 0, line, strlen(line));
    if (fw.state != OVMS_FW_ONLINE)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ovms_fw_config_t cfg = { .server = "fuzz.example:6867", .vehicle_id = "CAR", .password = "PW",
                             .module_pw = "PARA" };
    uint64_t next, now = 0;
    if (size < 1 || size > 16384)
        return 0;
    int stage = data[0] % 3;
    if ((data[0] / 3) % 2 == 0)
        cfg.module_pw[0] = '\0';
    if (stage == 2) {
        cfg.vehicle_id[0] = '\0';
        strcpy(cfg.vin, "VIN");
        strcpy(cfg.iccid, "ICCID");
    }
    ovms_sim_init(&sim, 1, 1.0, 1795600000, 0);
    ovms_fw_init(&fw, &cfg, &pf, &sim.ops, 0);
    if (ovms_fw_poll(&fw, now, &next) != OVMS_FW_CONNECT)
        abort();
    ovms_fw_connected(&fw, now);
    drain(0);
    if (stage != 0) {
        ovms_fw_input(&fw, now, (const char *)data + 1, size - 1);
        drain(fw.state == OVMS_FW_ONLINE);
        ovms_fw_poll(&fw, now + 1000, &next);
        return 0;
    }
    login();
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        size_t len = lf ? (size_t)(lf - p) : (size_t)(end - p);
        char wire[OVMS_WIRE_LEN(OVMS_LINE_MAX)];
        int n = len && len < OVMS_LINE_MAX ? ovms_session_encode(&server, p, len, wire, sizeof wire) : -1;
        if (n > 0)
            ovms_fw_input(&fw, now, wire, (size_t)n);
        now += 7000;
        if (ovms_fw_poll(&fw, now, &next) == OVMS_FW_CLOSE) {
            drain(1);
            return 0;
        }
        drain(1);
        p += len + 1;
    }
    return 0;
}
