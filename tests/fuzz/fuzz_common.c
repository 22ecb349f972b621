/*
 * fuzz_common.c -- typed-parser dispatch with a formatting stability check:
 * format(parse(x)) = y must satisfy format(parse(y)) = y.
 */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

#define STABLE(type, parse, format)                                          \
    static void check_##parse(ovms_str_t payload)                            \
    {                                                                        \
        type a, b;                                                           \
        char out1[12000], out2[12000];                                       \
        if (parse(payload, &a) != 0)                                         \
            return;                                                          \
        int n1 = format(&a, out1, sizeof out1);                              \
        if (n1 < 1)                                                          \
            return;                                                          \
        if (parse((ovms_str_t){ out1 + 1, (size_t)n1 - 1 }, &b) != 0)        \
            abort();                                                         \
        int n2 = format(&b, out2, sizeof out2);                              \
        if (n1 != n2 || memcmp(out1, out2, (size_t)n1) != 0)                 \
            abort();                                                         \
    }

STABLE(ovms_state_t, ovms_state_parse, ovms_state_format)
STABLE(ovms_environment_t, ovms_environment_parse, ovms_environment_format)
STABLE(ovms_location_t, ovms_location_parse, ovms_location_format)
STABLE(ovms_firmware_t, ovms_firmware_parse, ovms_firmware_format)
STABLE(ovms_tpmsw_t, ovms_tpmsw_parse, ovms_tpmsw_format)
STABLE(ovms_generator_t, ovms_generator_parse, ovms_generator_format)
STABLE(ovms_tpms_t, ovms_tpms_parse, ovms_tpms_format)
STABLE(ovms_caps_t, ovms_caps_parse, ovms_caps_format)
STABLE(ovms_history_t, ovms_history_parse, ovms_history_format)
STABLE(ovms_histack_t, ovms_histack_parse, ovms_histack_format)
STABLE(ovms_paranoid_t, ovms_paranoid_parse, ovms_paranoid_format)
STABLE(ovms_pushsub_t, ovms_pushsub_parse, ovms_pushsub_format)
STABLE(ovms_repl_t, ovms_repl_parse, ovms_repl_format)
STABLE(ovms_replmsg_t, ovms_replmsg_parse, ovms_replmsg_format)

static void check_other(char code, ovms_str_t payload)
{
    char out[12000];
    ovms_command_t c;
    ovms_cmdreply_t r;
    ovms_push_t p;
    ovms_group_t g;
    ovms_groupsub_t gs;
    int64_t n;

    ovms_command_parse(payload, &c);
    ovms_cmdreply_parse(payload, &r);
    ovms_cmdreply_continues(&r);
    ovms_push_parse(payload, &p);
    ovms_group_parse_car(payload, &g);
    ovms_group_parse_relay(payload, &g);
    ovms_groupsub_parse(payload, &gs);
    ovms_histack_ack(payload, out, sizeof out);
    if (ovms_count_parse(payload, &n) == 0)
        ovms_count_format(code, n, out, sizeof out);
}

void fuzz_parse_message(char code, ovms_str_t payload)
{
    switch (code) {
    case 'S': check_ovms_state_parse(payload); break;
    case 'D': check_ovms_environment_parse(payload); break;
    case 'L': check_ovms_location_parse(payload); break;
    case 'F': check_ovms_firmware_parse(payload); break;
    case 'W': check_ovms_tpmsw_parse(payload); break;
    case 'X': check_ovms_generator_parse(payload); break;
    case 'Y': check_ovms_tpms_parse(payload); break;
    case 'V': check_ovms_caps_parse(payload); break;
    case 'H': check_ovms_history_parse(payload); break;
    case 'h': check_ovms_histack_parse(payload); break;
    case 'E': check_ovms_paranoid_parse(payload); break;
    case 'p': check_ovms_pushsub_parse(payload); break;
    case 'R': check_ovms_repl_parse(payload); break;
    case 'r': check_ovms_replmsg_parse(payload); break;
    default: {
        /* unknown codes: try every parser, none may misbehave */
        check_ovms_state_parse(payload);
        check_ovms_tpms_parse(payload);
        check_ovms_caps_parse(payload);
        check_ovms_history_parse(payload);
        check_ovms_histack_parse(payload);
        check_ovms_pushsub_parse(payload);
        check_ovms_repl_parse(payload);
        check_ovms_replmsg_parse(payload);
        check_ovms_paranoid_parse(payload);
        break;
    }
    }
    check_other(code, payload);
}
