/*
 * text.c -- the small text types of the protocol: slices, numbers, ids,
 * timestamps, and the firmware's free-text rewriting.
 *
 * Numbers keep their count of decimals so that "80" and "80.0" both survive
 * a parse/format round trip: V2 firmware sends integers where V3 sends
 * decimals, and a server must relay either unchanged.
 * Threading: pure functions.
 */
#include "ovms_proto.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

ovms_str_t ovms_str_c(const char *s)
{
    return (ovms_str_t){ s, s ? strlen(s) : 0 };
}

int ovms_str_eq(ovms_str_t a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && memcmp(a.ptr, s, n) == 0;
}

int ovms_str_copy(ovms_str_t s, char *buf, size_t cap)
{
    if (s.len >= cap)
        return OVMS_ENOSPC;
    if (s.len)
        memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    return (int)s.len;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int ovms_num_parse(ovms_str_t s, ovms_num_t *out)
{
    static const double pow10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
                                    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18 };
    size_t i = 0, int_digits = 0, dec_digits = 0;
    uint64_t mant = 0;
    int neg = 0;

    if (s.len == 0) {
        *out = OVMS_NUM(0, OVMS_NUM_EMPTY);
        return 0;
    }
    if (s.ptr[0] == '-') {
        neg = 1;
        i++;
    }
    for (; i < s.len && is_digit(s.ptr[i]); i++, int_digits++)
        mant = mant * 10 + (uint64_t)(s.ptr[i] - '0');
    if (i < s.len && s.ptr[i] == '.') {
        for (i++; i < s.len && is_digit(s.ptr[i]); i++, dec_digits++)
            mant = mant * 10 + (uint64_t)(s.ptr[i] - '0');
        if (dec_digits == 0)
            return OVMS_ENUMBER;
    }
    /* Up to 15 digits (DBL_DIG) a number round-trips exactly through a
     * double and %.*f; longer ones could come back with other digits. */
    if (i != s.len || int_digits == 0 || int_digits + dec_digits > 15)
        return OVMS_ENUMBER;
    /* One correctly rounded division: %.*f then reproduces the digits. */
    double v = (double)mant / pow10[dec_digits];
    *out = OVMS_NUM(neg ? -v : v, (int8_t)dec_digits);
    return 0;
}

int ovms_int_parse(ovms_str_t s, int64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    int neg = 0;

    if (s.len && s.ptr[0] == '-') {
        neg = 1;
        i++;
    }
    if (i == s.len || s.len - i > 18)
        return OVMS_ENUMBER;
    for (; i < s.len; i++) {
        if (!is_digit(s.ptr[i]))
            return OVMS_ENUMBER;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

size_t ovms_text_sanitize(char *text, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && text[i] != '\0'; i++) {
        char c = text[i];
        if (c == ',')
            c = ';';
        else if (c == '\r' && i + 1 < len && text[i + 1] == '\n')
            continue;                 /* CR LF becomes the CR of the LF */
        else if (c == '\n')
            c = '\r';
        text[o++] = c;
    }
    return o;
}

int ovms_serverid_check(ovms_str_t id)
{
    if (id.len < 1 || id.len > 32)
        return OVMS_EINVAL;
    for (size_t i = 0; i < id.len; i++) {
        char c = id.ptr[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) ||
                 c == '_' || c == '-';
        if (!ok)
            return OVMS_EINVAL;
    }
    return 0;
}

int ovms_vehicleid_check(ovms_str_t id)
{
    if (id.len < 1 || id.len > 32)
        return OVMS_EINVAL;
    for (size_t i = 0; i < id.len; i++) {
        unsigned char c = (unsigned char)id.ptr[i];
        if (c <= ' ' || c == ',' || c == 0x7f)
            return OVMS_EINVAL;
    }
    return 0;
}

int ovms_vehicleid_normalize(ovms_str_t id, char *buf, size_t cap)
{
    int rc = ovms_vehicleid_check(id);
    if (rc < 0)
        return rc;
    if (id.len >= cap)
        return OVMS_ENOSPC;
    for (size_t i = 0; i < id.len; i++) {
        char c = id.ptr[i];
        buf[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    buf[id.len] = '\0';
    return (int)id.len;
}

int ovms_timestamp_format(int64_t unix_secs, char out[20])
{
    struct tm tm;
    time_t t = (time_t)unix_secs;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
        return OVMS_ERANGE;
    return (int)strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int two_digits(const char *p, int *v)
{
    if (!is_digit(p[0]) || !is_digit(p[1]))
        return -1;
    *v = (p[0] - '0') * 10 + (p[1] - '0');
    return 0;
}

int ovms_timestamp_parse(ovms_str_t s, int64_t *unix_secs)
{
    int y1, y2, mo, d, h = 0, mi = 0, se = 0;
    const char *p = s.ptr;

    if (s.len != 10 && s.len != 19)
        return OVMS_EINVAL;
    if (two_digits(p, &y1) || two_digits(p + 2, &y2) || p[4] != '-' ||
        two_digits(p + 5, &mo) || p[7] != '-' || two_digits(p + 8, &d))
        return OVMS_EINVAL;
    if (s.len == 19 && (p[10] != ' ' || two_digits(p + 11, &h) || p[13] != ':' ||
                        two_digits(p + 14, &mi) || p[16] != ':' || two_digits(p + 17, &se)))
        return OVMS_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return OVMS_EINVAL;
    *unix_secs = days_from_civil(y1 * 100 + y2, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 0;
}
