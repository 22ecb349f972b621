/*
 * app.h -- internal to ovms-app: what its files share.
 *
 *   app_conn.c      the connection: TCP or TLS, scheme 0 or 1 login,
 *                   decrypting, paranoid unwrapping
 *   app_view.c      car messages for people (units, time ago) and as JSON
 *   app_commands.c  named commands and their replies
 *   app_main.c      the command line and the status/watch/command/history/
 *                   location actions
 */
#ifndef OVMS_APP_H
#define OVMS_APP_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "ovms_proto.h"

/* Exit codes (documented in --help). */
enum {
    APP_OK = 0,
    APP_FAILED = 1,            /* the car answered "failed" */
    APP_USAGE = 2,
    APP_UNSUPPORTED = 3,       /* the car cannot do it */
    APP_NO_REPLY = 4,          /* no answer in time, or the car is not connected */
    APP_CONNECTION = 5         /* cannot connect or log in */
};

typedef struct app_opts {
    char host[256];
    int port;
    const char *dns;           /* --dns: ask this DNS server directly (NULL: the system's) */
    int tls, insecure;
    const char *ca_file;
    const char *vehicle;       /* NULL with --user: the owner's first vehicle */
    const char *password;      /* car password (scheme 0) or owner password (scheme 1) */
    const char *user;          /* scheme 1 when set */
    const char *module_pw;     /* paranoid decoding */
    int json;
    int timeout_ms;            /* for replies */
    int verbose;
} app_opts_t;

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct app_conn {
    const app_opts_t *opts;
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    ovms_session_t session;
    ovms_linesplit_t ls;
    char tail[OVMS_CLIENT_LINE_MAX + 2];
    char inbuf[16384];
    size_t inlen, inpos;
    char vehicle[40];
    char vehicles[512];        /* scheme 1: the owner's vehicle ids */
    /* paranoid mode */
    char ptoken[OVMS_TOKEN_LEN + 8];
    uint8_t pdigest[OVMS_MD5_LEN];
    int have_pdigest;
    char plain[OVMS_CLIENT_LINE_MAX + 8];
    char unwrapped[OVMS_CLIENT_LINE_MAX + 8];
} app_conn_t;

/* A received message, after paranoid unwrapping when possible. */
typedef struct app_msg {
    char code;
    ovms_str_t payload;
    int paranoid;              /* it came as EM<code>... */
    int unreadable;            /* paranoid and we cannot decode it */
} app_msg_t;

/* app_conn.c */
/* Connect and log in as an app; prints why not and returns APP_CONNECTION. */
int app_connect(app_conn_t *c, const app_opts_t *o);
void app_close(app_conn_t *c);
/* 1: a message; 0: timeout; -1: the server closed. */
int app_recv(app_conn_t *c, int timeout_ms, app_msg_t *m);
int app_send(app_conn_t *c, const char *msg);
/* A command, paranoid-wrapped when we can and should (not 30-32). */
int app_send_command(app_conn_t *c, int cmd, const char *params);
uint64_t app_now_ms(void);

/* app_view.c: the latest of each car message, as the app knows the car. */
typedef struct app_car {
    int connected;             /* Z: 1 car online */
    int64_t age;               /* T at login: seconds since the last update, -1 unknown */
    uint64_t age_at_ms;        /* when age was measured */
    char msg[128][OVMS_LINE_MAX * 3 / 4];   /* latest payload per code byte */
    uint8_t have[128];
    uint8_t paranoid[128];
} app_car_t;

void app_car_init(app_car_t *car);
/* Keep a message; returns 1 if it is car data (something to show). */
int app_car_update(app_car_t *car, const app_msg_t *m);
void app_show_status(const app_car_t *car, const char *vehicle, FILE *out);
void app_show_location(const app_car_t *car, const char *vehicle, FILE *out);
/* One line for a live message (watch). */
void app_show_live(const app_msg_t *m, FILE *out);
json_t *app_json_status(const app_car_t *car, const char *vehicle);
json_t *app_json_location(const app_car_t *car, const char *vehicle);
json_t *app_json_message(const app_msg_t *m);
/* "12 s ago", "3 min ago", "2 h 5 min ago", "4 days ago". */
void app_ago(int64_t secs, char *out, size_t cap);
void app_print_json(json_t *j, FILE *out);

/* app_commands.c */
/* Turn words ("charge start", "lock 1234", "20 1234") into a command
 * number and parameters; prints the reason and returns -1 if it cannot. */
int app_command_parse(int argc, char **argv, int *cmd, char *params, size_t cap);
/* Send and wait for the whole reply; prints it; returns an exit code. */
int app_command_run(app_conn_t *c, int cmd, const char *params);
void app_command_help(FILE *out);

#endif
