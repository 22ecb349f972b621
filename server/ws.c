/*
 * ws.c -- WebSocket /apiv2 on the v2 listeners (HTTP-API.md §12): a
 * browser's way to speak v2. After the upgrade every data frame from the
 * client carries one v2 line and every line to it goes out as one
 * unfragmented, unmasked text frame without CR LF; in between, everything
 * is PROTOCOL.md unchanged (the welcome in the first frame, either scheme,
 * any role).
 *
 * The layer sits between the socket (or TLS) and the line splitter, as TLS
 * sits below it: ws_input turns frames into "line\n" text and hands all of
 * it to conn_feed in one call, which holds what the connection cannot take
 * yet (a login in progress, a move to the vehicle's home worker) exactly as
 * for TCP. That call is the last thing ws_input does: a login may hand the
 * connection, and this state with it, to another worker inside it. Framing
 * is wslay's frame layer (its event layer refuses unmasked client frames,
 * which the reference accepts); reassembly, control frames and limits are
 * here.
 *
 * ovmsd answers ping with pong and close with close (then closes the
 * connection), limits a message to PROTOCOL 2.2's 4096-byte line (close
 * 1009), strips a trailing CR as well as LF, selects the subprotocol "ovms"
 * when offered and none otherwise, and, when [v2] ws_origins lists any,
 * refuses an upgrade whose Origin is not among them with 403 (§12.2: a web
 * page elsewhere cannot then try logins from its visitors' browsers).
 * Threading: the connection's worker; the state moves with a handoff.
 */
#include "server_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#define WS_HEADERS_MAX 64
#define WS_FRAME_MAX (OVMS_WIRE_LEN(OVMS_LINE_MAX + 512) + 16)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws_conn {
    wslay_frame_context_ptr fr;
    const char *in;                  /* ws_input's bytes not yet taken by wslay */
    size_t in_len;
    uint8_t *stage;                  /* the frame being written */
    size_t stage_len, stage_cap;
    uint8_t open;                    /* the 101 went out: frames from now on */
    uint8_t rest;                    /* conn_feed: what follows the upgrade is frames */
    uint8_t closing;                 /* our close frame is out: input is ignored */
    uint8_t in_frame, frame_op, msg_op;
    uint8_t upgrade, conn_upgrade, version13, proto_ovms;
    uint8_t headers;
    char origin[128];                /* the Origin header, "" when none */
    uint8_t ctl_len;
    uint16_t msg_len;
    uint64_t frame_got;
    char key[64];
    char ctl[125];
    char msg[OVMS_LINE_MAX + 2];     /* a line, with room for the CR LF a client may send */
};

static ssize_t on_recv(uint8_t *buf, size_t len, int flags, void *user)
{
    ws_conn_t *ws = user;
    (void)flags;
    size_t n = len < ws->in_len ? len : ws->in_len;
    if (!n)
        return -1;                   /* wslay: nothing more now (WANT_READ) */
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t on_send(const uint8_t *data, size_t len, int flags, void *user)
{
    ws_conn_t *ws = user;
    (void)flags;
    if (ws->stage_len + len > ws->stage_cap)
        return -1;
    memcpy(ws->stage + ws->stage_len, data, len);
    ws->stage_len += len;
    return (ssize_t)len;
}

static int on_genmask(uint8_t *buf, size_t len, void *user)
{
    (void)user;
    memset(buf, 0, len);             /* a server never masks */
    return 0;
}

void ws_free(ws_conn_t *ws)
{
    if (!ws)
        return;
    wslay_frame_context_free(ws->fr);
    free(ws);
}

int ws_is_open(const ws_conn_t *ws)
{
    return ws && ws->open;
}

int ws_take_rest(ws_conn_t *ws)
{
    int rest = ws && ws->rest;
    if (rest)
        ws->rest = 0;
    return rest;
}

/* ---- output --------------------------------------------------------------------------------- */

static int emit_frame(conn_t *c, int opcode, const char *data, size_t len)
{
    ws_conn_t *ws = c->ws;
    uint8_t frame[WS_FRAME_MAX];
    struct wslay_frame_iocb io = { .fin = 1, .opcode = (uint8_t)opcode, .payload_length = len,
                                   .data = (const uint8_t *)data, .data_length = len };
    if (len > WS_FRAME_MAX - 16)
        return -1;
    ws->stage = frame;
    ws->stage_len = 0;
    ws->stage_cap = sizeof frame;
    ssize_t r = wslay_frame_send(ws->fr, &io);
    ws->stage = NULL;
    if (r < 0 || (size_t)r != len)
        return -1;
    return conn_emit(c, (const char *)frame, ws->stage_len);
}

int ws_send_lines(conn_t *c, const char *data, size_t len)
{
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len, taken = nl ? n + 1 : n;
        if (n && data[n - 1] == '\r')
            n--;
        if (n && emit_frame(c, WSLAY_TEXT_FRAME, data, n) < 0)
            return -1;
        data += taken;
        len -= taken;
    }
    return 0;
}

/* A close frame with code (and the reason for the log), then the close. */
static void close_with(conn_t *c, uint16_t code, const char *why)
{
    ws_conn_t *ws = c->ws;
    uint8_t body[2] = { (uint8_t)(code >> 8), (uint8_t)code };
    if (ws->closing)
        return;
    ws->closing = 1;
    if (emit_frame(c, WSLAY_CONNECTION_CLOSE, (const char *)body, code ? 2 : 0) < 0)
        conn_close(c, why);
    else
        conn_close_after_output(c, why);
}

/* ---- the upgrade ------------------------------------------------------------------------------- */

int ws_begin(conn_t *c, ovms_str_t line)
{
    static const char *const first[] = { "GET /apiv2 HTTP/", "GET /apiv2/ HTTP/" };
    int ok = 0;
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(first[i]);
        ok |= line.len > n && !memcmp(line.ptr, first[i], n) && !memchr(line.ptr + n, ' ', line.len - n);
    }
    if (!ok)
        return -1;                   /* another first line (a query string, say): closed silently */
    static const struct wslay_frame_callbacks cb = { on_send, on_recv, on_genmask };
    ws_conn_t *ws = calloc(1, sizeof *ws);
    if (!ws || wslay_frame_context_init(&ws->fr, &cb, ws) != 0) {
        free(ws);
        return -1;
    }
    c->ws = ws;
    return 0;
}

/* 1 when the comma-separated header value holds token (case-insensitively). */
static int has_token(const char *v, size_t len, const char *token)
{
    size_t n = strlen(token);
    for (size_t i = 0; i < len;) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == n && !strncasecmp(v + start, token, n))
            return 1;
    }
    return 0;
}

static void header(ws_conn_t *ws, ovms_str_t line)
{
    const char *colon = memchr(line.ptr, ':', line.len);
    if (!colon)
        return;
    size_t nlen = (size_t)(colon - line.ptr);
    const char *v = colon + 1, *end = line.ptr + line.len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    size_t vlen = (size_t)(end - v);
#define IS(name) (nlen == sizeof name - 1 && !strncasecmp(line.ptr, name, nlen))
    if (IS("Upgrade"))
        ws->upgrade = has_token(v, vlen, "websocket");
    else if (IS("Connection"))
        ws->conn_upgrade = has_token(v, vlen, "upgrade");
    else if (IS("Sec-WebSocket-Version"))
        ws->version13 = vlen == 2 && !memcmp(v, "13", 2);
    else if (IS("Sec-WebSocket-Protocol"))
        ws->proto_ovms = has_token(v, vlen, "ovms");
    else if (IS("Sec-WebSocket-Key") && vlen < sizeof ws->key)
        snprintf(ws->key, sizeof ws->key, "%.*s", (int)vlen, v);
    else if (IS("Origin"))
        snprintf(ws->origin, sizeof ws->origin, "%.*s", (int)(vlen < sizeof ws->origin ? vlen : sizeof ws->origin - 1), v);
#undef IS
}

static int origin_allowed(const char *list, const char *origin)
{
    char copy[512], *save = NULL;
    snprintf(copy, sizeof copy, "%s", list);
    for (char *tok = strtok_r(copy, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save))
        if (origin[0] && !strcasecmp(tok, origin))
            return 1;
    return 0;
}

static void accept_value(const char *key, char out[32])
{
    unsigned char sha[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char text[128];
    int len = snprintf(text, sizeof text, "%s" WS_GUID, key);
    EVP_Digest(text, (size_t)len, sha, &n, EVP_sha1(), NULL);
    ovms_b64_encode(sha, n, out, 32);
}

void ws_handshake_line(conn_t *c, ovms_str_t line)
{
    ws_conn_t *ws = c->ws;
    if (line.len) {
        if (++ws->headers > WS_HEADERS_MAX)
            conn_close(c, "WebSocket upgrade: too many headers");
        else
            header(ws, line);
        return;
    }
    if (!ws->upgrade || !ws->conn_upgrade || !ws->version13 || !ws->key[0]) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                                  "Content-Length: 0\r\n\r\n";
        conn_send_raw(c, bad, sizeof bad - 1);
        conn_close_after_output(c, "WebSocket upgrade without its headers");
        return;
    }
    if (c->w->cfg->ws_origins[0] && !origin_allowed(c->w->cfg->ws_origins, ws->origin)) {
        static const char no[] = "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        conn_send_raw(c, no, sizeof no - 1);
        conn_close_after_output(c, "WebSocket upgrade from an Origin not in ws_origins");
        return;
    }
    char acc[32], answer[256];
    accept_value(ws->key, acc);
    int n = snprintf(answer, sizeof answer,
                     "HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                     acc, ws->proto_ovms ? "Sec-WebSocket-Protocol: ovms\r\n" : "");
    conn_send_raw(c, answer, (size_t)n);
    ws->open = ws->rest = 1;
    LOG_DEBUG(c, "WebSocket upgrade on /apiv2");
}

/* ---- input -------------------------------------------------------------------------------------- */

/* A whole control frame. */
static void control(conn_t *c, int opcode)
{
    ws_conn_t *ws = c->ws;
    if (opcode == WSLAY_PING) {
        if (emit_frame(c, WSLAY_PONG, ws->ctl, ws->ctl_len) < 0)
            conn_close(c, "cannot answer a WebSocket ping");
    } else if (opcode == WSLAY_CONNECTION_CLOSE) {
        uint16_t code = ws->ctl_len >= 2 ? (uint16_t)((uint8_t)ws->ctl[0] << 8 | (uint8_t)ws->ctl[1]) : 0;
        close_with(c, code ? code : 1000, "WebSocket closed by the client");
    }                                /* a pong: nothing to do */
}

/* A whole data message: one line for conn_feed, into out. */
static void message(ws_conn_t *ws, char *out, size_t *out_len)
{
    size_t n = ws->msg_len;
    if (n && ws->msg[n - 1] == '\n')
        n--;
    if (n && ws->msg[n - 1] == '\r')
        n--;
    if (n) {                         /* an empty frame is no line */
        memcpy(out + *out_len, ws->msg, n);
        out[*out_len + n] = '\n';
        *out_len += n + 1;
    }
    ws->msg_len = 0;
    ws->msg_op = 0;
}

/* One chunk of a frame's payload from wslay; 0, or a close code. */
static int chunk(conn_t *c, const struct wslay_frame_iocb *io, char *out, size_t *out_len)
{
    ws_conn_t *ws = c->ws;
    if (!ws->in_frame) {             /* a frame begins */
        int ctl = wslay_is_ctrl_frame(io->opcode);
        if (io->rsv || (io->opcode > 2 && !ctl) || io->opcode > WSLAY_PONG ||
            (io->opcode == WSLAY_CONTINUATION_FRAME) != (ws->msg_op != 0 && !ctl))
            return 1002;             /* unknown opcode, extension bits, or fragments out of order */
        if (!ctl && ws->msg_len + io->payload_length > sizeof ws->msg)
            return 1009;
        ws->in_frame = 1;
        ws->frame_op = io->opcode;
        ws->frame_got = 0;
        if (ctl)
            ws->ctl_len = 0;
        else if (io->opcode != WSLAY_CONTINUATION_FRAME)
            ws->msg_op = io->opcode;
    }
    if (wslay_is_ctrl_frame(ws->frame_op)) {
        memcpy(ws->ctl + ws->ctl_len, io->data, io->data_length);
        ws->ctl_len = (uint8_t)(ws->ctl_len + io->data_length);
    } else {
        memcpy(ws->msg + ws->msg_len, io->data, io->data_length);
        ws->msg_len = (uint16_t)(ws->msg_len + io->data_length);
    }
    ws->frame_got += io->data_length;
    if (ws->frame_got < io->payload_length)
        return 0;
    ws->in_frame = 0;                /* the frame is complete */
    if (wslay_is_ctrl_frame(ws->frame_op))
        control(c, ws->frame_op);
    else if (io->fin)
        message(ws, out, out_len);
    return 0;
}

void ws_input(conn_t *c, const char *data, size_t len)
{
    ws_conn_t *ws = c->ws;
    /* at most every byte becomes a line byte, plus a message begun earlier and its LF */
    char *out = malloc(len + sizeof ws->msg + 2);
    size_t out_len = 0;
    if (!out) {
        conn_close(c, "out of memory");
        return;
    }
    ws->in = data;
    ws->in_len = len;
    while (!ws->closing && c->state != CS_CLOSING) {
        struct wslay_frame_iocb io;
        ssize_t r = wslay_frame_recv(ws->fr, &io);
        if (r == WSLAY_ERR_WANT_READ) {
            if (!ws->in_len)
                break;
            continue;
        }
        int code = r < 0 ? 1002 : chunk(c, &io, out, &out_len);
        if (code) {
            close_with(c, (uint16_t)code, code == 1009 ? "WebSocket message over 4096 bytes"
                                                       : "WebSocket protocol error");
            break;
        }
    }
    ws->in = NULL;
    ws->in_len = 0;
    if (out_len && c->state != CS_CLOSING && !ws->closing)
        conn_feed(c, out, out_len);  /* last: it may move the connection, and ws, away */
    free(out);
}
