/*
 * fuzz_session.c -- libFuzzer target: the server's receive path.
 *
 * The input is cut into chunks (sizes taken from its first bytes) and fed
 * to a line splitter; the first line goes to the welcome parser, every
 * later line through a scheme 0 session decode and, when it decodes, the
 * typed parser for its code. Invariant checked: a decoded message encoded
 * again with a mirror session decodes to the same message.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ovms_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the session key of the vectors' section c, so the d_transport seeds decode */
    static const uint8_t key[16] = { 0x40, 0x24, 0xce, 0x20, 0x31, 0x84, 0x73, 0x65,
                                     0xaa, 0x30, 0xeb, 0x40, 0x61, 0x1f, 0xcf, 0x73 };
    ovms_linesplit_t ls;
    ovms_session_t rx, mirror_tx, mirror_rx;
    size_t pos = size ? 1 : 0;   /* byte 0 only steers the chunk sizes */
    int first = 1;
    uint8_t cut = size ? data[0] : 1;

    ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
    ovms_session_init_key(&rx, key);
    ovms_session_init_key(&mirror_tx, key);
    ovms_session_init_key(&mirror_rx, key);
    while (pos < size) {
        size_t chunk = 1 + (size_t)(cut % 97);
        if (chunk > size - pos)
            chunk = size - pos;
        const char *p = (const char *)data + pos;
        size_t len = chunk;
        ovms_str_t line;
        int rc;
        cut = (uint8_t)(cut * 31 + 7);
        pos += chunk;
        while ((rc = ovms_linesplit_next(&ls, &p, &len, &line)) > 0) {
            if (line.len > OVMS_LINE_MAX)
                abort();
            if (first) {
                ovms_welcome_t w;
                ovms_welcome_parse(line.ptr, line.len, &w);
                first = 0;
                continue;
            }
            char buf[OVMS_B64_DECODED_MAX(OVMS_LINE_MAX)];
            ovms_msg_t m;
            if (ovms_session_decode(&rx, line.ptr, line.len, buf, sizeof buf, &m) != 0)
                continue;
            fuzz_parse_message(m.code, m.payload);
            /* encode and decode again: the message must survive intact */
            char wire[OVMS_WIRE_LEN(OVMS_LINE_MAX)], again[OVMS_LINE_MAX], msg[OVMS_LINE_MAX];
            ovms_msg_t m2;
            msg[0] = m.code;
            memcpy(msg + 1, m.payload.ptr, m.payload.len);
            int n = ovms_session_encode(&mirror_tx, msg, m.payload.len + 1, wire, sizeof wire);
            if (n < 2 || ovms_session_decode(&mirror_rx, wire, (size_t)n - 2, again, sizeof again, &m2) != 0)
                abort();
            if (m2.code != m.code || m2.payload.len != m.payload.len ||
                memcmp(m2.payload.ptr, m.payload.ptr, m.payload.len) != 0)
                abort();
        }
        if (rc < 0)
            break;                    /* the server closes the connection here */
    }
    ovms_linesplit_free(&ls);
    return 0;
}
