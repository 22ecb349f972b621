/*
 * ovms_proto.h -- the OVMS v2 wire protocol as a pure, I/O-free library.
 *
 * This is the one public header of proto/. Everything here is a function of
 * its arguments: no sockets, no clocks, no global mutable state visible to
 * callers, and no allocation but the line splitter's optional tail buffer
 * (OpenSSL's CSPRNG is the only outside service, used by the token
 * generators). Every
 * other part of the project (server, firmware, tools) speaks the protocol
 * only through this header; ../shared/PROTOCOL.md is the authority it
 * implements, docs/protocol-notes.md records our decisions where it is silent.
 *
 * Conventions
 *   - Functions return int: >= 0 is success (often a length), < 0 is an
 *     OVMS_E* code; ovms_strerror() names it.
 *   - Text comes in and goes out as (pointer, length) pairs. Parsed results
 *     (ovms_str_t) point into the caller's input, so they live as long as it.
 *   - Formatters write into caller buffers and NUL-terminate; they return the
 *     length without the NUL, or OVMS_ENOSPC when the buffer is too small.
 *   - Threading: every function is reentrant; objects (sessions, splitters)
 *     belong to one thread at a time.
 */
#ifndef OVMS_PROTO_H
#define OVMS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

#define OVMS_ERRNO_MAP(X)                                                     \
    X(EINVAL,      -1,  "invalid argument")                                   \
    X(ENOSPC,      -2,  "output buffer too small")                            \
    X(ENOMEM,      -3,  "out of memory")                                      \
    X(ELINE,       -4,  "line longer than the limit")                         \
    X(EUNDECODABLE,-5,  "line does not decode to 'MP-0 <code>'")             \
    X(EWELCOME,    -6,  "malformed welcome line")                             \
    X(EDIGEST,     -7,  "digest does not authenticate")                      \
    X(EFIELDS,     -8,  "missing fields")                                     \
    X(ENUMBER,     -9,  "field is not a number")                              \
    X(ECODE,       -10, "unexpected message code")                            \
    X(ECOMMA,      -11, "comma or line break in a field that may not hold one")\
    X(ERANGE,      -12, "value out of range")                                 \
    X(ECRYPTO,     -13, "cryptographic library failure")                      \
    X(EIO,         -14, "input/output error")                                 \
    X(ENOTFOUND,   -15, "not found")                                          \
    X(EEXIST,      -16, "already exists")                                     \
    X(ECORRUPT,    -17, "data file is corrupt or unreadable")                \
    X(EREADONLY,   -18, "data file is read-only")                             \
    X(EBUSY,       -19, "resource busy")                                      \
    X(ECLOSED,     -20, "closed")                                             \
    X(ETIMEDOUT,   -21, "timed out")                                          \
    X(ECONFIG,     -22, "bad configuration")                                  \
    X(EQUOTA,      -23, "quota exceeded")

enum {
#define OVMS__ERRENUM(name, val, text) OVMS_##name = (val),
    OVMS_ERRNO_MAP(OVMS__ERRENUM)
#undef OVMS__ERRENUM
};

/* A short English description of an OVMS_E* code (or of 0). Never NULL. */
const char *ovms_strerror(int err);
/* The symbolic name of an OVMS_E* code, e.g. "EFIELDS". Never NULL. */
const char *ovms_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define OVMS_LINE_MAX        4096  /* content bytes a server accepts per line  */
#define OVMS_CLIENT_LINE_MAX 8192  /* content bytes a client must accept       */
#define OVMS_TOKEN_LEN       22    /* random token characters                  */
#define OVMS_DIGEST_B64_LEN  24    /* padded base64 of a 16-byte digest        */
#define OVMS_MD5_LEN         16
#define OVMS_PREFIX          "MP-0 "
#define OVMS_PREFIX_LEN      5

/* Bytes of base64 text for n raw bytes (padded), and raw bytes for n chars. */
#define OVMS_B64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
#define OVMS_B64_DECODED_MAX(n) ((((n) + 3) / 4) * 3)

/* A wire line (base64 + CR LF + NUL) carrying a message of n bytes. */
#define OVMS_WIRE_LEN(n) (OVMS_B64_ENCODED_LEN((n) + OVMS_PREFIX_LEN) + 3)

/* ------------------------------------------------------------------------ */
/* Text slices and numbers                                                  */
/* ------------------------------------------------------------------------ */

typedef struct ovms_str {
    const char *ptr;
    size_t len;
} ovms_str_t;

#define OVMS_STR(lit) ((ovms_str_t){ (lit), sizeof(lit) - 1 })
ovms_str_t ovms_str_c(const char *s);                 /* from a C string */
int ovms_str_eq(ovms_str_t a, const char *s);          /* exact compare   */
/* Copy into buf as a C string; OVMS_ENOSPC if it does not fit. */
int ovms_str_copy(ovms_str_t s, char *buf, size_t cap);

/* A protocol number: integers and decimals ("80", "80.0", "-1.25"). The
 * number of decimals is kept so that formatting reproduces the input. */
typedef struct ovms_num {
    double v;
    int8_t dp;           /* digits after the point; OVMS_NUM_EMPTY: empty field */
} ovms_num_t;

#define OVMS_NUM_EMPTY (-1)
#define OVMS_NUM(val, decimals) ((ovms_num_t){ (val), (decimals) })
static inline int ovms_num_empty(ovms_num_t n) { return n.dp < 0; }

/* Parse "[-]digits[.digits]" with at most 15 digits (so that formatting
 * gives back the same text); "" gives an empty number. */
int ovms_num_parse(ovms_str_t s, ovms_num_t *out);
/* Parse "[-]digits" into an int64; no decimals, no empty. */
int ovms_int_parse(ovms_str_t s, int64_t *out);

/* Rewrite free text the way V3 firmware's mp_encode does before sending:
 * ',' -> ';' (only the last field may hold commas), CR LF and LF -> CR.
 * Returns the new length (never longer). */
size_t ovms_text_sanitize(char *text, size_t len);

/* ------------------------------------------------------------------------ */
/* Crypto primitives                                                        */
/* ------------------------------------------------------------------------ */

/* RC4 with byte-sized state: 258 bytes, where OpenSSL's RC4_KEY takes 1 KiB
 * and an EVP cipher context about 1.4 KiB. Two live per connection. */
typedef struct ovms_rc4 {
    uint8_t s[256];
    uint8_t i, j;
} ovms_rc4_t;

void ovms_rc4_init(ovms_rc4_t *rc4, const void *key, size_t keylen);
/* Key and throw away the first `drop` bytes of keystream (OVMS uses 1024). */
void ovms_rc4_init_drop(ovms_rc4_t *rc4, const void *key, size_t keylen, size_t drop);
void ovms_rc4_crypt(ovms_rc4_t *rc4, const void *in, void *out, size_t len);

#define OVMS_RC4_DROP 1024

/* HMAC-MD5 over OpenSSL's MD5: no allocation, no state. */
int ovms_hmac_md5(const void *key, size_t keylen, const void *msg, size_t msglen,
                  uint8_t out[OVMS_MD5_LEN]);

/* Standard base64 with '=' padding; writes a NUL; returns the text length. */
int ovms_b64_encode(const void *in, size_t len, char *out, size_t cap);
/* Lenient decode: characters outside the alphabet are skipped, decoding stops
 * at the first '=', missing padding is tolerated. Returns the byte count.
 * cap must be >= OVMS_B64_DECODED_MAX(len). */
int ovms_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* 22 characters from the base64 alphabet drawn from the OS CSPRNG
 * (alphabet[byte & 63]: 64 divides 256, so no bias), NUL-terminated. */
int ovms_token_generate(char out[OVMS_TOKEN_LEN + 1]);
/* The same mapping from caller-supplied random bytes (for tests, firmware). */
void ovms_token_from_bytes(const uint8_t *bytes, size_t n, char *out);

/* base64(HMAC-MD5(key, msg)), padded, 24 chars + NUL. */
int ovms_digest_b64(const void *key, size_t keylen, const void *msg, size_t msglen,
                    char out[OVMS_DIGEST_B64_LEN + 1]);
/* Check a received digest in any form (padded, unpadded, with stray
 * characters) against HMAC-MD5(key, msg), in constant time.
 * 0 when it matches, OVMS_EDIGEST when not. */
int ovms_digest_check(const void *key, size_t keylen, const void *msg, size_t msglen,
                      const char *b64, size_t b64len);

/* ------------------------------------------------------------------------ */
/* Line framing                                                             */
/* ------------------------------------------------------------------------ */

/*
 * An incremental splitter. Feed it chunks as they arrive; it hands back
 * complete lines (without LF, and without a CR just before the LF). Lines
 * that lie wholly inside a chunk point into the chunk itself; only the
 * unfinished tail of a chunk is copied, into `tail`. With no storage given
 * the tail is malloc'ed on demand and freed when it empties, so an idle
 * connection holds no buffer at all.
 *
 *     ovms_str_t line;
 *     while ((rc = ovms_linesplit_next(&ls, &data, &len, &line)) > 0)
 *         handle(line);          // valid until the next call
 *     if (rc < 0) close_connection();     // OVMS_ELINE or OVMS_ENOMEM
 */
typedef struct ovms_linesplit {
    char *tail;
    uint16_t len;        /* bytes held in tail */
    uint16_t cap;        /* size of tail (0: nothing allocated) */
    uint16_t max;        /* longest line content accepted */
    uint8_t owned;       /* tail is heap memory we manage */
    uint8_t emitted;     /* the last line returned came from tail */
} ovms_linesplit_t;

/* max: content limit (OVMS_LINE_MAX for servers). storage may be NULL
 * (heap on demand) or a buffer of at least max + 2 bytes. */
int ovms_linesplit_init(ovms_linesplit_t *ls, size_t max, char *storage, size_t cap);
/* 1: *line is set and *data, *len advanced past it; 0: chunk used up, a
 * partial line is kept; OVMS_ELINE: a line went over the limit (the
 * splitter must not be used further); OVMS_ENOMEM. */
int ovms_linesplit_next(ovms_linesplit_t *ls, const char **data, size_t *len,
                        ovms_str_t *line);
/* Bytes of an unfinished line held. */
static inline size_t ovms_linesplit_pending(const ovms_linesplit_t *ls) { return ls->len; }
void ovms_linesplit_free(ovms_linesplit_t *ls);

/* ------------------------------------------------------------------------ */
/* Messages: "MP-0 <code><payload>"                                         */
/* ------------------------------------------------------------------------ */

typedef struct ovms_msg {
    char code;
    ovms_str_t payload;
} ovms_msg_t;

/* Parse decrypted plaintext: "MP-0", one whitespace character, a non-space
 * code, then the payload up to the end or the first LF (a CR just before
 * that LF is dropped; other CRs stay, as V3 firmware uses them as line
 * breaks in command output). A NUL in the payload makes it undecodable. */
int ovms_msg_parse(const char *plain, size_t len, ovms_msg_t *msg);
/* Write "MP-0 " code payload; returns the length. */
int ovms_msg_format(char *buf, size_t cap, char code, const char *payload, size_t len);

/* Split a payload at commas into at most `max` fields; the last one keeps any
 * remaining commas. Returns the number of fields (an empty payload has one
 * empty field). */
int ovms_fields_split(ovms_str_t payload, ovms_str_t *fields, int max);

/* ------------------------------------------------------------------------ */
/* Crypto session: scheme 0 line encryption (and scheme 1 plain lines)      */
/* ------------------------------------------------------------------------ */

/* Two RC4 states and a mode byte: 517 bytes, the whole cipher state of a
 * connection. */
typedef struct ovms_session {
    ovms_rc4_t rx;
    ovms_rc4_t tx;
    uint8_t plain;       /* scheme 1: no prefix, no RC4, no base64 */
} ovms_session_t;

/* sessionkey = HMAC-MD5(password, servertoken || clienttoken). */
int ovms_session_key(const char *password, size_t pwlen,
                     const char *server_token, size_t stlen,
                     const char *client_token, size_t ctlen,
                     uint8_t key[OVMS_MD5_LEN]);
/* Scheme 0: both states keyed with the session key, each dropping 1024. */
int ovms_session_init(ovms_session_t *s, const char *password, size_t pwlen,
                      const char *server_token, size_t stlen,
                      const char *client_token, size_t ctlen);
void ovms_session_init_key(ovms_session_t *s, const uint8_t key[OVMS_MD5_LEN]);
/* Scheme 1: lines are the bare message. */
void ovms_session_init_plain(ovms_session_t *s);

/* Encode message `msg` (code + payload, no prefix) as a wire line ending in
 * CR LF; returns the line length. out needs OVMS_WIRE_LEN(len) bytes. */
int ovms_session_encode(ovms_session_t *s, const char *msg, size_t len,
                        char *out, size_t cap);
/* Decode one received line (terminator already removed). buf receives the
 * plaintext (OVMS_B64_DECODED_MAX(len) bytes suffice); msg points into it.
 * OVMS_EUNDECODABLE when it is not "MP-0 <code>...". */
int ovms_session_decode(ovms_session_t *s, const char *line, size_t len,
                        char *buf, size_t cap, ovms_msg_t *msg);

/* ------------------------------------------------------------------------ */
/* Welcome lines                                                            */
/* ------------------------------------------------------------------------ */

typedef enum ovms_welcome_kind {
    OVMS_WELCOME_MP = 1,   /* MP-<role> <scheme> <f3> <f4> <f5>[ <rest>] */
    OVMS_WELCOME_APC,      /* AP-C <scheme> <apkey>                      */
    OVMS_WELCOME_HTTP      /* GET /apiv2 HTTP/x (WebSocket upgrade)      */
} ovms_welcome_kind_t;

typedef struct ovms_welcome {
    ovms_welcome_kind_t kind;
    char role;             /* C A B S (any single character is parsed) */
    ovms_str_t scheme;     /* "0", "1", ... (AP-C: its scheme) */
    ovms_str_t token;      /* scheme 0: client token; scheme 1: user name; AP-C: apkey */
    ovms_str_t digest;     /* scheme 0: client digest; scheme 1: password */
    ovms_str_t vehicle;    /* vehicle id, "*" (scheme 1), or server id (MP-S) */
    ovms_str_t rest;       /* anything after field 5 (MP-S: watermarks) */
} ovms_welcome_t;

/* Parse a first line (terminator removed). OVMS_EWELCOME for anything that
 * is not one of the forms above: the server closes such connections silently. */
int ovms_welcome_parse(const char *line, size_t len, ovms_welcome_t *w);

/* "MP-<role> 0 <token> <digest> <vehicleid>\r\n" */
int ovms_welcome_format_client(char *buf, size_t cap, char role, const char *token,
                               const char *digest, const char *vehicle);
/* "MP-A 1 <user> <password> <vehicleid|*>\r\n" */
int ovms_welcome_format_scheme1(char *buf, size_t cap, char role, const char *user,
                                const char *password, const char *vehicle);
/* "MP-S 0 <token> <digest>\r\n" */
int ovms_welcome_format_server(char *buf, size_t cap, const char *token, const char *digest);
/* "MP-S 1 <user> <vehicleid> <id> <id> ...\r\n" */
int ovms_welcome_format_server1(char *buf, size_t cap, const char *user, const char *vehicle,
                                const char *const *ids, size_t nids);

/* The reply a scheme 0 client gets. */
typedef struct ovms_server_welcome {
    ovms_str_t token;
    ovms_str_t digest;     /* everything after the token, as cars take it */
} ovms_server_welcome_t;

/* Parse "MP-S 0 <token> <digest>". */
int ovms_server_welcome_parse(const char *line, size_t len, ovms_server_welcome_t *sw);
/* Parse and check a server welcome as a car does: prefix, token differs from
 * ours, digest string-equal to our padded computation. On success copies the
 * server token (NUL-terminated) into server_token. */
int ovms_server_welcome_verify(const char *line, size_t len, const char *password,
                               size_t pwlen, const char *client_token,
                               char *server_token, size_t stcap);

/* Scheme 1 reply "MP-S 1 <user> <vehicleid> <ids...>". */
typedef struct ovms_server_welcome1 {
    ovms_str_t user;
    ovms_str_t vehicle;
    ovms_str_t ids;        /* space separated vehicle ids */
} ovms_server_welcome1_t;
int ovms_server_welcome1_parse(const char *line, size_t len, ovms_server_welcome1_t *sw);

/* MP-S peer links: "<origin>:<seq>" watermarks. */
typedef struct ovms_watermark {
    ovms_str_t origin;
    uint64_t seq;
} ovms_watermark_t;

/* Parse space-separated (welcome) or comma-separated (RW) watermark items.
 * Returns the count (at most max) or OVMS_EFIELDS / OVMS_ENUMBER / OVMS_ERANGE. */
int ovms_watermarks_parse(ovms_str_t text, char sep, ovms_watermark_t *wm, int max);
/* "MP-S 0 <token> <digest> <serverid>[ <origin>:<seq>]...\r\n" */
int ovms_welcome_format_peer(char *buf, size_t cap, const char *token, const char *digest,
                             const char *serverid, const ovms_watermark_t *wm, size_t nwm);

/* Server ids: 1-32 of A-Z 0-9 _ - (compare upper-cased). 0 or OVMS_EINVAL. */
int ovms_serverid_check(ovms_str_t id);
/* Vehicle ids: 1-32 characters, no spaces, commas or control characters. */
int ovms_vehicleid_check(ovms_str_t id);
/* Upper-case a vehicle id into buf (NUL-terminated). */
int ovms_vehicleid_normalize(ovms_str_t id, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Auto-provisioning: AP-C / AP-S / AP-X                                    */
/* ------------------------------------------------------------------------ */

#define OVMS_APX_LINE "AP-X\r\n"

typedef struct ovms_apreply {
    int found;             /* 1 for AP-S, 0 for AP-X */
    ovms_str_t token;
    ovms_str_t digest;
    ovms_str_t record;
} ovms_apreply_t;

/* "AP-C 0 <apkey>\r\n" */
int ovms_apc_format(char *buf, size_t cap, const char *apkey);
/* "AP-S 0 <aptoken> <apdigest> <aprecord>\r\n" */
int ovms_aps_format(char *buf, size_t cap, const char *token, const char *digest,
                    const char *record);
int ovms_apreply_parse(const char *line, size_t len, ovms_apreply_t *r);

/* Build a record: digest = base64(HMAC-MD5(iccid, token)) padded, record =
 * base64(RC4(raw digest, drop 1024) XOR params). */
int ovms_provision_encode(const char *iccid, const char *token, const char *params,
                          size_t plen, char digest[OVMS_DIGEST_B64_LEN + 1],
                          char *record, size_t reccap);
/* Check the digest (padded or unpadded) with the ICCID and decrypt the
 * record into params (NUL-terminated). OVMS_EDIGEST on a wrong ICCID. */
int ovms_provision_decode(const char *iccid, ovms_str_t token, ovms_str_t digest,
                          ovms_str_t record, char *params, size_t cap);

/* The provisioning text: space separated parameters #0, #1, ... with "-"
 * for an empty one. */
#define OVMS_PARAM_MAX 32
typedef struct ovms_params {
    int n;
    ovms_str_t v[OVMS_PARAM_MAX];   /* "-" is returned as an empty string */
} ovms_params_t;
int ovms_params_parse(ovms_str_t text, ovms_params_t *p);
int ovms_params_format(const ovms_params_t *p, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Paranoid mode: ET / EM                                                   */
/* ------------------------------------------------------------------------ */

/* pdigest = HMAC-MD5(module password, ptoken). */
int ovms_paranoid_key(const char *module_pw, size_t pwlen, const char *ptoken,
                      size_t ptlen, uint8_t pdigest[OVMS_MD5_LEN]);
/* Codes never wrapped: E A a g P. */
int ovms_paranoid_excluded(char code);
/* "<code><data>" -> "EM<code><base64(RC4'(data))>" with a fresh RC4' per
 * message. msg is a message without prefix; writes a NUL. */
int ovms_paranoid_wrap(const uint8_t pdigest[OVMS_MD5_LEN], const char *msg, size_t len,
                       char *out, size_t cap);
/* Payload after "EM" ("<code><b64>") -> "<code><data>". */
int ovms_paranoid_unwrap(const uint8_t pdigest[OVMS_MD5_LEN], const char *payload,
                         size_t len, char *out, size_t cap);

/* ------------------------------------------------------------------------ */
/* Typed messages                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Fixed-layout car messages (S D L F W X) are described by field tables:
 * each X(type, name) entry becomes a struct member, and one generic engine
 * parses and formats them. Every struct starts with `nfields` (how many of
 * the known fields were present: older firmware sends fewer) and `extra`
 * (unknown trailing fields, verbatim, kept so that newer firmware's data
 * survives a parse/format round trip).
 */
#define OVMS__T_STR ovms_str_t
#define OVMS__T_NUM ovms_num_t
#define OVMS__T_INT int64_t
#define OVMS__MEMBER(type, name) OVMS__T_##type name;

#define OVMS_STATE_FIELDS(X)                                                  \
    X(NUM, soc) X(STR, units) X(NUM, line_voltage) X(NUM, charge_current)    \
    X(STR, charge_state) X(STR, charge_mode) X(NUM, ideal_range)             \
    X(NUM, est_range) X(NUM, charge_limit) X(NUM, charge_duration)           \
    X(NUM, charger_b4) X(NUM, charge_kwh) X(NUM, charge_substate)            \
    X(NUM, charge_state_n) X(NUM, charge_mode_n) X(NUM, timer_mode)          \
    X(NUM, timer_start) X(NUM, timer_stale) X(NUM, cac)                      \
    X(NUM, acc_mins_full) X(NUM, acc_mins_limit) X(NUM, acc_range_limit)     \
    X(NUM, acc_soc_limit) X(NUM, cooldown_active) X(NUM, cooldown_temp_limit)\
    X(NUM, cooldown_time_limit) X(NUM, charge_estimate)                      \
    X(NUM, mins_range_limit) X(NUM, mins_soc_limit) X(NUM, max_ideal_range)  \
    X(STR, charge_type) X(NUM, charge_power) X(NUM, battery_voltage)         \
    X(NUM, soh) X(NUM, charge_power_input) X(NUM, charger_efficiency)        \
    X(NUM, battery_current) X(NUM, range_speed) X(NUM, grid_kwh)             \
    X(NUM, grid_kwh_total) X(NUM, usable_kwh) X(NUM, charge_timestamp)

#define OVMS_ENVIRONMENT_FIELDS(X)                                            \
    X(NUM, doors1) X(NUM, doors2) X(NUM, lock_state) X(NUM, pem_temp)        \
    X(NUM, motor_temp) X(NUM, battery_temp) X(NUM, trip) X(NUM, odometer)    \
    X(NUM, speed) X(NUM, parking_time) X(NUM, ambient_temp) X(NUM, doors3)   \
    X(NUM, stale_temps) X(NUM, stale_ambient) X(NUM, v12_line)               \
    X(NUM, doors4) X(NUM, v12_ref) X(NUM, doors5) X(NUM, charger_temp)       \
    X(NUM, v12_current) X(NUM, cabin_temp)

#define OVMS_LOCATION_FIELDS(X)                                               \
    X(NUM, latitude) X(NUM, longitude) X(NUM, direction) X(NUM, altitude)    \
    X(NUM, gps_lock) X(NUM, gps_stale) X(NUM, speed) X(NUM, trip)            \
    X(STR, drive_mode) X(NUM, battery_power) X(NUM, energy_used)             \
    X(NUM, energy_recovered) X(NUM, inverter_power)                          \
    X(NUM, inverter_efficiency) X(STR, gps_mode) X(NUM, satellites)          \
    X(NUM, hdop) X(NUM, gps_speed) X(NUM, gps_signal)

#define OVMS_FIRMWARE_FIELDS(X)                                               \
    X(STR, version) X(STR, vin) X(NUM, signal) X(STR, can_write)             \
    X(STR, vehicle_type) X(STR, provider) X(NUM, service_km)                 \
    X(NUM, service_secs) X(STR, hardware) X(STR, modem)

#define OVMS_TPMSW_FIELDS(X)                                                  \
    X(NUM, fr_pressure) X(NUM, fr_temp) X(NUM, rr_pressure) X(NUM, rr_temp) \
    X(NUM, fl_pressure) X(NUM, fl_temp) X(NUM, rl_pressure) X(NUM, rl_temp) \
    X(NUM, stale)

#define OVMS_GENERATOR_FIELDS(X)                                              \
    X(NUM, generating) X(NUM, pilot) X(NUM, voltage) X(NUM, current)         \
    X(NUM, power) X(NUM, efficiency) X(STR, type) X(STR, state)              \
    X(STR, substate) X(STR, mode) X(NUM, current_limit) X(NUM, range_limit)  \
    X(NUM, soc_limit) X(NUM, kwh) X(NUM, kwh_grid) X(NUM, kwh_grid_total)    \
    X(NUM, time) X(NUM, timer_mode) X(NUM, timer_start)                      \
    X(NUM, dur_empty) X(NUM, dur_range) X(NUM, dur_soc) X(NUM, temperature)  \
    X(NUM, timestamp)

/* Group update data (the part after the group id in a car's g). */
#define OVMS_GROUPDATA_FIELDS(X)                                              \
    X(NUM, soc) X(NUM, speed) X(NUM, direction) X(NUM, altitude)             \
    X(NUM, gps_lock) X(NUM, gps_stale) X(NUM, latitude) X(NUM, longitude)

#define OVMS__DECLARE_TABLE_STRUCT(tname, FIELDS)                             \
    typedef struct tname { int nfields; ovms_str_t extra;                     \
                           FIELDS(OVMS__MEMBER) } tname##_t;
OVMS__DECLARE_TABLE_STRUCT(ovms_state, OVMS_STATE_FIELDS)             /* S */
OVMS__DECLARE_TABLE_STRUCT(ovms_environment, OVMS_ENVIRONMENT_FIELDS) /* D */
OVMS__DECLARE_TABLE_STRUCT(ovms_location, OVMS_LOCATION_FIELDS)       /* L */
OVMS__DECLARE_TABLE_STRUCT(ovms_firmware, OVMS_FIRMWARE_FIELDS)       /* F */
OVMS__DECLARE_TABLE_STRUCT(ovms_tpmsw, OVMS_TPMSW_FIELDS)             /* W */
OVMS__DECLARE_TABLE_STRUCT(ovms_generator, OVMS_GENERATOR_FIELDS)     /* X */
OVMS__DECLARE_TABLE_STRUCT(ovms_groupdata, OVMS_GROUPDATA_FIELDS)     /* g data */

/* parse: payload (without the code) -> struct. format: struct -> message
 * with its code ("S80,K,..."), writing `nfields` fields then `extra`. */
#define OVMS__DECLARE_TABLE_API(tname)                                        \
    int tname##_parse(ovms_str_t payload, tname##_t *out);                    \
    int tname##_format(const tname##_t *in, char *buf, size_t cap);
OVMS__DECLARE_TABLE_API(ovms_state)
OVMS__DECLARE_TABLE_API(ovms_environment)
OVMS__DECLARE_TABLE_API(ovms_location)
OVMS__DECLARE_TABLE_API(ovms_firmware)
OVMS__DECLARE_TABLE_API(ovms_tpmsw)
OVMS__DECLARE_TABLE_API(ovms_generator)

/* Y: TPMS (v3). Sections: names, pressures, temperatures, health, alerts,
 * and an optional sensor map; an undefined section is "0,-1". */
#define OVMS_TPMS_WHEELS 16
typedef struct ovms_tpms_section {
    int n;                              /* value count (0 = undefined) */
    ovms_num_t v[OVMS_TPMS_WHEELS];
    ovms_num_t valid;                   /* -1 undefined, 0 stale, 1 valid */
} ovms_tpms_section_t;

enum { OVMS_TPMS_PRESSURE, OVMS_TPMS_TEMP, OVMS_TPMS_HEALTH, OVMS_TPMS_ALERT,
       OVMS_TPMS_SENSOR, OVMS_TPMS_SECTIONS };

typedef struct ovms_tpms {
    int nwheels;
    ovms_str_t wheel[OVMS_TPMS_WHEELS];
    int nsections;                      /* 4 (no sensor map) or 5 */
    ovms_tpms_section_t sec[OVMS_TPMS_SECTIONS];
    ovms_str_t extra;
} ovms_tpms_t;
int ovms_tpms_parse(ovms_str_t payload, ovms_tpms_t *out);
int ovms_tpms_format(const ovms_tpms_t *in, char *buf, size_t cap);

/* V: capabilities "C1-6,C10-12,C49". */
#define OVMS_CAPS_MAX 64
typedef struct ovms_caps {
    int n;
    struct { uint16_t lo, hi; } r[OVMS_CAPS_MAX];
} ovms_caps_t;
int ovms_caps_parse(ovms_str_t payload, ovms_caps_t *out);
int ovms_caps_format(const ovms_caps_t *in, char *buf, size_t cap);
int ovms_caps_has(const ovms_caps_t *c, int cmd);

/* g: a car sends "g<groupid>,<data>"; the server relays
 * "g<vehicleid>,<GROUPID>,<data>". data is kept verbatim and parsed too. */
typedef struct ovms_group {
    ovms_str_t vehicle;        /* empty in the car form */
    ovms_str_t group;
    ovms_str_t data;           /* everything after the group id */
    ovms_groupdata_t d;        /* data, parsed (nfields 0 if unparsable) */
} ovms_group_t;
int ovms_group_parse_car(ovms_str_t payload, ovms_group_t *out);
int ovms_group_parse_relay(ovms_str_t payload, ovms_group_t *out);
int ovms_group_format_car(const char *group, ovms_str_t data, char *buf, size_t cap);
int ovms_group_format_relay(const char *vehicle, const char *group, ovms_str_t data,
                            char *buf, size_t cap);

/* G: group subscribe "G<groupid>[,...]". */
typedef struct ovms_groupsub {
    ovms_str_t group;
    ovms_str_t rest;
} ovms_groupsub_t;
int ovms_groupsub_parse(ovms_str_t payload, ovms_groupsub_t *out);
int ovms_groupsub_format(const char *group, char *buf, size_t cap);

/* H: "H<type>,<recno>,<lifetime>,<data>" (data may hold commas). */
typedef struct ovms_history {
    ovms_str_t type;
    int64_t recno;
    int64_t lifetime;
    ovms_str_t data;
} ovms_history_t;
int ovms_history_parse(ovms_str_t payload, ovms_history_t *out);
int ovms_history_format(const ovms_history_t *in, char *buf, size_t cap);

/* h from a car: "h<ackcode>,<timediff>,<type>,<recno>,<lifetime>,<data>".
 * ackcode is kept as text: the server echoes it exactly. */
typedef struct ovms_histack {
    ovms_str_t ackcode;
    int64_t timediff;
    ovms_str_t type;
    int64_t recno;
    int64_t lifetime;
    ovms_str_t data;
} ovms_histack_t;
int ovms_histack_parse(ovms_str_t payload, ovms_histack_t *out);
int ovms_histack_format(const ovms_histack_t *in, char *buf, size_t cap);
/* The acknowledgement for a received h (or EMh): "h" + payload up to its
 * first comma. Works on any payload, even one that failed to parse. */
int ovms_histack_ack(ovms_str_t payload, char *buf, size_t cap);

/* C: command "C<cmd>[,<params>]". */
typedef struct ovms_command {
    int has_cmd;               /* payload starts with a decimal number */
    int wellformed;            /* payload matches ^\d+(,.*)?$ */
    int cmd;
    int has_params;
    ovms_str_t params;         /* everything after the first comma */
} ovms_command_t;
int ovms_command_parse(ovms_str_t payload, ovms_command_t *out);
int ovms_command_format(int cmd, const char *params, char *buf, size_t cap);

/* c: command response "c<cmd>,<result>[,<text>]"; multi-line responses
 * "c<cmd>,<result>,<k>,<max>,<value>". Missing or non-numeric numbers are 0,
 * as the server's FIFO routing reads them. */
typedef struct ovms_cmdreply {
    int64_t cmd;
    int64_t result;
    int64_t k;
    int64_t max;
    int nfields;               /* comma-separated fields present */
    ovms_str_t text;           /* everything after the second comma */
    ovms_str_t value;          /* everything after the fourth comma */
} ovms_cmdreply_t;
int ovms_cmdreply_parse(ovms_str_t payload, ovms_cmdreply_t *out);
/* "c<cmd>,<result>[,<text>]" (text NULL: two fields). */
int ovms_cmdreply_format(int cmd, int result, const char *text, char *buf, size_t cap);
/* "c<cmd>,<result>,<k>,<max>,<value>" */
int ovms_cmdreply_format_multi(int cmd, int result, int k, int max, ovms_str_t value,
                               char *buf, size_t cap);
/* 1 when a reply keeps the requester at the head of the queue (PROTOCOL 6.4). */
int ovms_cmdreply_continues(const ovms_cmdreply_t *r);

/* E: "ET<ptoken>" or "EM<code><data>". */
typedef struct ovms_paranoid {
    char kind;                 /* 'T' or 'M' (others are parsed with kind set) */
    ovms_str_t token;          /* ET */
    char code;                 /* EM: inner code */
    ovms_str_t data;           /* EM: base64 data */
} ovms_paranoid_t;
int ovms_paranoid_parse(ovms_str_t payload, ovms_paranoid_t *out);
/* "ET<token>" or "EM<code><data>". */
int ovms_paranoid_format(const ovms_paranoid_t *in, char *buf, size_t cap);

/* P: "P<type><text>"; PE adds "<vehicletype>,<errorcode>,<errordata>". */
typedef struct ovms_push {
    char type;
    ovms_str_t text;
    ovms_str_t vehicle_type;   /* PE only */
    int64_t error_code;        /* PE only */
    ovms_str_t error_data;     /* PE only */
} ovms_push_t;
int ovms_push_parse(ovms_str_t payload, ovms_push_t *out);
int ovms_push_format(char type, const char *text, char *buf, size_t cap);

/* p: push subscription. */
typedef struct ovms_pushsub {
    ovms_str_t appid;
    ovms_str_t pushtype;       /* apns gcm mail expo */
    ovms_str_t pushkeytype;    /* "production", "simple", ... */
    int simple;                /* the 2025 "simple" form: own vehicle */
    ovms_str_t vehicle;        /* empty in the simple form */
    ovms_str_t netpass;        /* may contain commas */
    ovms_str_t pushkeyvalue;
} ovms_pushsub_t;
int ovms_pushsub_parse(ovms_str_t payload, ovms_pushsub_t *out);
int ovms_pushsub_format(const ovms_pushsub_t *in, char *buf, size_t cap);

/* R: replication of owners, vehicles and API tokens, and the watermark greeting. */
typedef struct ovms_change {
    ovms_str_t changed;        /* "YYYY-MM-DD HH:MM:SS" */
    ovms_str_t origin;
    uint64_t seq;
} ovms_change_t;

typedef struct ovms_repl {
    char kind;                 /* 'V', 'O', 'K' or 'W' */
    /* RV */
    ovms_str_t vehicle, owner, carpass, v_server;
    /* RO */
    ovms_str_t ownerid, name, mail, pwhash;
    int64_t status;
    /* RK (an ovmsd extension, docs/replication.md): an API token by the hex
     * SHA-256 of its secret; ownerid as in RO; permit is the last field
     * (a comma-separated list) */
    ovms_str_t tokenhash, prefix, application, purpose, created, permit;
    /* RV, RO and RK */
    int deleted;
    ovms_change_t ch;
    /* RW */
    ovms_str_t serverid;
    ovms_str_t watermarks;     /* "<origin>:<seq>[,...]": ovms_watermarks_parse(',') */
    ovms_str_t extra;          /* RV/RO: fields a newer node appended, verbatim */
} ovms_repl_t;
int ovms_repl_parse(ovms_str_t payload, ovms_repl_t *out);
int ovms_repl_format(const ovms_repl_t *in, char *buf, size_t cap);

/* r: replicated car data: a stored message, a paranoid token or a
 * historical record. */
typedef struct ovms_replmsg {
    ovms_change_t ch;
    ovms_str_t vehicle;
    char code;                 /* stored code, 'E' (token) or 'H' (history) */
    int paranoid;              /* stored message */
    ovms_str_t ptoken;         /* stored message or E */
    ovms_str_t payload;        /* stored message */
    ovms_str_t type;           /* H */
    int64_t recno;             /* H */
    ovms_str_t expires;        /* H */
    ovms_str_t data;           /* H */
} ovms_replmsg_t;
int ovms_replmsg_parse(ovms_str_t payload, ovms_replmsg_t *out);
int ovms_replmsg_format(const ovms_replmsg_t *in, char *buf, size_t cap);

/* Z, T: one integer; f: free text. */
int ovms_count_parse(ovms_str_t payload, int64_t *out);
int ovms_count_format(char code, int64_t n, char *buf, size_t cap);

/* Time stamps "YYYY-MM-DD HH:MM:SS" (UTC) and dates. */
int ovms_timestamp_format(int64_t unix_secs, char out[20]);
/* Accepts "YYYY-MM-DD" (midnight) and "YYYY-MM-DD HH:MM:SS". */
int ovms_timestamp_parse(ovms_str_t s, int64_t *unix_secs);

#ifdef __cplusplus
}
#endif
#endif /* OVMS_PROTO_H */
