/*
 * ovms_fw.h -- the car module firmware: the one public header of firmware/.
 *
 * The core is a protocol client and vehicle-reporting state machine that
 * does no I/O. A driver (ovms-car's blocking socket, or a libuv loop running
 * thousands of cars) feeds it what arrives and the current time, and
 * collects what to send, what to do (connect, close) and when to call again.
 * The platform -- wall clock, randomness, persistent storage, name
 * resolution, logging -- is a small table of functions, and so is the
 * vehicle, for which a simulated electric car is provided.
 *
 * No global state; no allocation after ovms_fw_init (every buffer is in the
 * ovms_fw_t the caller provides).
 * Threading: one ovms_fw_t belongs to one thread at a time.
 */
#ifndef OVMS_FW_H
#define OVMS_FW_H

#include <stddef.h>
#include <stdint.h>

#include "ovms_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* The vehicle                                                              */
/* ------------------------------------------------------------------------ */

/* What the car reports: proto's typed messages (strings point into the
 * vehicle's own storage). */
typedef struct ovms_fw_report {
    ovms_firmware_t firmware;      /* F */
    ovms_caps_t caps;              /* V */
    ovms_state_t state;            /* S */
    ovms_environment_t env;        /* D */
    ovms_location_t location;      /* L */
    ovms_tpmsw_t tpmsw;            /* W */
    ovms_tpms_t tpms;              /* Y */
} ovms_fw_report_t;

/* A historical record made by the vehicle (a trip, a charge). */
typedef struct ovms_fw_record {
    char type[33];
    int32_t recno;
    int32_t lifetime;              /* seconds */
    int64_t when;                  /* unix seconds */
    char data[200];
} ovms_fw_record_t;

typedef struct ovms_fw_vehicle {
    void *self;
    /* Advance the vehicle to `now` (monotonic ms). */
    void (*step)(void *self, uint64_t now_ms);
    void (*report)(void *self, ovms_fw_report_t *out);
    /* Vehicle commands (10-26): the result (0 ok, 1 failed, 2 unsupported,
     * 3 unimplemented) and an optional text. */
    int (*command)(void *self, int cmd, const char *params, char *text, size_t cap);
    /* A record the vehicle produced since the last call: 1, or 0 for none. */
    int (*next_record)(void *self, ovms_fw_record_t *out);
    /* One line of status for text command "stat". */
    void (*status)(void *self, char *out, size_t cap);
} ovms_fw_vehicle_t;

/* ------------------------------------------------------------------------ */
/* The platform                                                             */
/* ------------------------------------------------------------------------ */

typedef struct ovms_fw_addr {
    char host[64];                 /* numeric address */
    int port;
} ovms_fw_addr_t;

enum { OVMS_FW_LOG_ERROR, OVMS_FW_LOG_WARN, OVMS_FW_LOG_INFO, OVMS_FW_LOG_DEBUG };

typedef struct ovms_fw_platform {
    void *ctx;
    int64_t (*wall)(void *ctx);                                   /* unix seconds */
    void (*random)(void *ctx, uint8_t *buf, size_t n);            /* CSPRNG bytes */
    /* Persistent storage by name: load returns the byte count (<0: none);
     * save returns 0 once the bytes are durable. */
    int (*load)(void *ctx, const char *name, void *buf, size_t cap);
    int (*save)(void *ctx, const char *name, const void *buf, size_t len);
    /* Every address of host (numeric text), at most max; count or <0. */
    int (*resolve)(void *ctx, const char *host, ovms_fw_addr_t *out, int max);
    void (*log)(void *ctx, int level, const char *text);
} ovms_fw_platform_t;

/* ------------------------------------------------------------------------ */
/* The core                                                                 */
/* ------------------------------------------------------------------------ */

#define OVMS_FW_PORT 6867
#define OVMS_FW_MAX_ADDRS 8
#define OVMS_FW_HISTORY 48             /* records kept until acknowledged */
#define OVMS_FW_OUT 12288              /* bytes waiting to be sent */
#define OVMS_FW_FEATURES 16
#define OVMS_FW_PARAMS 32
#define OVMS_FW_PARAM_LEN 64

typedef struct ovms_fw_config {
    char server[128];              /* host[:port] */
    char vehicle_id[33];           /* empty: provision with vin + iccid */
    char password[65];             /* the car (server) password */
    char module_pw[65];            /* paranoid mode when set */
    char vin[32], iccid[32];       /* for auto-provisioning */
    unsigned update_watched;       /* seconds between reports while apps watch (10) */
    unsigned update_idle;          /* seconds between reports otherwise (600) */
    unsigned backoff_min, backoff_max;   /* reconnect delay bounds, seconds (2, 300) */
} ovms_fw_config_t;

typedef enum ovms_fw_state {
    OVMS_FW_WAITING = 1,           /* before the next connection attempt */
    OVMS_FW_CONNECTING,            /* the driver is connecting */
    OVMS_FW_PROVISIONING,          /* AP-C sent */
    OVMS_FW_WELCOME,               /* MP-C sent, waiting for the server's */
    OVMS_FW_ONLINE,                /* logged in */
    OVMS_FW_STOPPED                /* authentication refused: waits for new settings */
} ovms_fw_state_t;

/* What the driver should do after ovms_fw_poll. */
typedef enum ovms_fw_action {
    OVMS_FW_NOTHING = 0,
    OVMS_FW_CONNECT,               /* connect to ovms_fw_target(), then ovms_fw_connected */
    OVMS_FW_CLOSE                  /* send what is pending (best effort), close the
                                      connection, then ovms_fw_closed */
} ovms_fw_action_t;

typedef struct ovms_fw_hrec {
    uint32_t ackcode;
    ovms_fw_record_t rec;
} ovms_fw_hrec_t;

typedef struct ovms_fw {
    ovms_fw_config_t cfg;
    const ovms_fw_platform_t *pf;
    ovms_fw_vehicle_t *veh;
    ovms_fw_state_t state;
    int want_close;
    uint64_t now;                  /* the time of the current call */
    /* connection */
    ovms_fw_addr_t addrs[OVMS_FW_MAX_ADDRS];
    int naddrs, next_addr;
    int port;
    char host[128];
    uint64_t attempt_at;           /* next connection attempt (WAITING) */
    unsigned backoff;              /* seconds */
    uint64_t last_rx, last_tx, login_at;
    char token[OVMS_TOKEN_LEN + 1];
    ovms_session_t session;
    ovms_linesplit_t ls;
    char line_storage[OVMS_CLIENT_LINE_MAX + 2];
    char out[OVMS_FW_OUT];
    size_t out_len;
    /* reporting */
    int peers;                     /* Z */
    uint64_t next_report;
    /* paranoid mode */
    char ptoken[OVMS_TOKEN_LEN + 1];
    uint8_t pdigest[OVMS_MD5_LEN];
    /* history: store and forward, kept in the layout it is saved in */
    struct ovms_fw_hq {
        uint32_t magic;
        uint32_t next_ackcode;
        int32_t n;
        ovms_fw_hrec_t rec[OVMS_FW_HISTORY];
    } hq;
    uint64_t next_retransmit;
    /* module settings (commands 1-4) */
    char features[OVMS_FW_FEATURES][12];
    char params[OVMS_FW_PARAMS][OVMS_FW_PARAM_LEN];
    /* figures */
    unsigned logins, reports, commands, records_acked;
} ovms_fw_t;

/* Set up (loading credentials, settings and history from storage). */
int ovms_fw_init(ovms_fw_t *fw, const ovms_fw_config_t *cfg, const ovms_fw_platform_t *pf,
                 ovms_fw_vehicle_t *veh, uint64_t now_ms);
/* Run timers; *next_ms is when to call again at the latest. */
ovms_fw_action_t ovms_fw_poll(ovms_fw_t *fw, uint64_t now_ms, uint64_t *next_ms);
/* Where to connect (after OVMS_FW_CONNECT). */
const ovms_fw_addr_t *ovms_fw_target(const ovms_fw_t *fw);
void ovms_fw_connected(ovms_fw_t *fw, uint64_t now_ms);
void ovms_fw_connect_failed(ovms_fw_t *fw, uint64_t now_ms);
void ovms_fw_closed(ovms_fw_t *fw, uint64_t now_ms);
/* Bytes received from the server. */
void ovms_fw_input(ovms_fw_t *fw, uint64_t now_ms, const char *data, size_t len);
/* Bytes waiting to be sent, and telling the core they were. */
size_t ovms_fw_pending(const ovms_fw_t *fw, const char **data);
void ovms_fw_sent(ovms_fw_t *fw, size_t n);
/* Send a message (code + payload) now, paranoid-wrapped when on. */
int ovms_fw_send(ovms_fw_t *fw, const char *msg);
/* Keep a record until the server acknowledges it (persisted at once). */
int ovms_fw_history_add(ovms_fw_t *fw, const ovms_fw_record_t *rec);
/* New settings (credentials, server): reconnect with them. */
void ovms_fw_reconfigure(ovms_fw_t *fw, const ovms_fw_config_t *cfg, uint64_t now_ms);
const char *ovms_fw_state_name(ovms_fw_state_t s);

/* ------------------------------------------------------------------------ */
/* The simulated vehicle                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A plausible electric car, seeded and deterministic: it drives a round
 * trip along a route (state of charge falling with speed), parks, charges
 * (rising), and so on; with ranges, temperatures, doors and locks, tyre
 * pressures, odometer and a GPS track. A trip and a charge each end with a
 * historical record. time_scale speeds its clock up (for tests and demos).
 */
typedef struct ovms_sim {
    ovms_fw_vehicle_t ops;         /* hand &sim->ops to ovms_fw_init */
    uint64_t rng;
    double time_scale;             /* simulated seconds per real second */
    uint64_t started_ms;           /* driver clock at start */
    int64_t wall0;                 /* unix seconds at start */
    int64_t ticks;                 /* simulated seconds done */
    /* what it is doing */
    int phase;                     /* OVMS_SIM_PARKED, _DRIVING, _CHARGING */
    int64_t phase_left;            /* simulated seconds (parked) */
    int64_t parked_since;          /* tick */
    /* battery and charging */
    double soc, soh, capacity_kwh, battery_temp, battery_kw;
    int plugged, charge_state, charge_mode, charge_limit_a, timer_mode, timer_start;
    double charge_kw, charge_kwh, charge_start_soc, grid_kwh, grid_kwh_total;
    int64_t charge_started;        /* tick */
    int64_t charge_started_wall;
    /* driving */
    double odometer_km, trip_km, speed, lat, lon, heading, altitude;
    int waypoint, laps_left;
    double seg_done_m, trip_kwh_used, trip_kwh_recovered, trip_start_soc;
    double trip_start_lat, trip_start_lon;
    int64_t trip_started;          /* tick */
    int64_t trip_started_wall;
    /* body and climate */
    int locked, valet, climate, homelink;
    int64_t cooldown_until;        /* tick */
    char pin[16];
    double ambient, cabin, motor_temp, pem_temp, charger_temp, v12;
    double tyre_base_kpa[4], tyre_kpa[4], tyre_temp[4];
    /* records waiting for the firmware */
    ovms_fw_record_t records[4];
    int nrecords;
    unsigned trips, charges;
    char vin[20];
} ovms_sim_t;

enum { OVMS_SIM_PARKED, OVMS_SIM_DRIVING, OVMS_SIM_CHARGING };

/* Park the car (seeded state of charge, odometer, VIN) at the start of its
 * route. wall_now and now_ms are the real clocks at start. */
void ovms_sim_init(ovms_sim_t *sim, uint64_t seed, double time_scale, int64_t wall_now,
                   uint64_t now_ms);
/* The simulated unix time (runs time_scale times faster than the real one). */
int64_t ovms_sim_wall(const ovms_sim_t *sim);
const char *ovms_sim_phase_name(const ovms_sim_t *sim);

#ifdef __cplusplus
}
#endif
#endif
