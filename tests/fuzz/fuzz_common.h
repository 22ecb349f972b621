/*
 * fuzz_common.h -- shared by the fuzz targets: run a payload through the
 * typed parser for its code (every parser, for unknown codes) and check
 * that what parses formats stably.
 */
#ifndef OVMS_FUZZ_COMMON_H
#define OVMS_FUZZ_COMMON_H

#include "ovms_proto.h"

void fuzz_parse_message(char code, ovms_str_t payload);

#endif
