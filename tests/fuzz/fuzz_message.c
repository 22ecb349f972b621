/*
 * fuzz_message.c -- libFuzzer target: the message parsers. The first byte
 * is the code, the rest the payload; every typed parser that accepts it is
 * followed by its formatter, and formatting must be stable: parsing the
 * formatted text and formatting again gives the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ovms_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char plain[8192];
    ovms_msg_t m;

    if (size < 1 || size > 4096)
        return 0;
    fuzz_parse_message((char)data[0], (ovms_str_t){ (const char *)data + 1, size - 1 });
    /* and the generic MP-0 framing */
    memcpy(plain, "MP-0 ", 5);
    memcpy(plain + 5, data, size);
    if (ovms_msg_parse(plain, size + 5, &m) == 0 &&
        (m.payload.ptr < plain || m.payload.ptr + m.payload.len > plain + size + 5))
        abort();
    return 0;
}
