/*
 * error.c -- names and descriptions of the OVMS_E* codes.
 *
 * The codes are shared by every subsystem (proto is the one module everyone
 * includes), so the table lives here, generated from OVMS_ERRNO_MAP.
 * Threading: read-only data, callable from any thread.
 */
#include "ovms_proto.h"

const char *ovms_strerror(int err)
{
    switch (err) {
    case 0: return "success";
#define OVMS__ERRTEXT(name, val, text) case (val): return (text);
    OVMS_ERRNO_MAP(OVMS__ERRTEXT)
#undef OVMS__ERRTEXT
    default: return "unknown error";
    }
}

const char *ovms_err_name(int err)
{
    switch (err) {
    case 0: return "OK";
#define OVMS__ERRNAME(name, val, text) case (val): return #name;
    OVMS_ERRNO_MAP(OVMS__ERRNAME)
#undef OVMS__ERRNAME
    default: return "EUNKNOWN";
    }
}
