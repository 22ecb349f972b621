/*
 * test_car_app.c -- ovms-car and ovms-app against a real ovmsd on loopback:
 * the car's status reaches the app, every named command round-trips,
 * history arrives in command 32 (and survives ovms-car restarts while the
 * server is away), paranoid messages decode in the app, scheme 1 and TLS
 * logins work, refusals are reported, and both programs stop cleanly.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static node_t node;

typedef struct car_proc {
    pid_t pid;
    char dir[256];
    char log[300];
} car_proc_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void read_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
}

/* Run ovms-car with argv, its output in car->log (appended to, or with
 * O_TRUNC started afresh). */
static void car_spawn(car_proc_t *car, char *const argv[], int log_mode)
{
    car->pid = fork();
    cr_assert_geq(car->pid, 0);
    if (car->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(car->log, O_WRONLY | O_CREAT | log_mode, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
}

/* ovms-car with the given extra arguments (NULL-terminated), logging to a
 * file in its own state directory. */
static void car_start(car_proc_t *car, const char *server, const char *vehicle,
                      const char *password, ...)
{
    char *argv[32];
    int n = 0;
    va_list ap;
    if (!car->dir[0]) {
        snprintf(car->dir, sizeof car->dir, "%s/car-%s", node.dir, vehicle);
        snprintf(car->log, sizeof car->log, "%s.log", car->dir);
    }
    argv[n++] = OVMS_CAR_BIN;
    argv[n++] = "--server";
    argv[n++] = (char *)server;
    argv[n++] = "--vehicle";
    argv[n++] = (char *)vehicle;
    argv[n++] = "--password";
    argv[n++] = (char *)password;
    argv[n++] = "--state-dir";
    argv[n++] = car->dir;
    va_start(ap, password);
    for (char *a; (a = va_arg(ap, char *)) != NULL && n < 30;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    car_spawn(car, argv, O_APPEND);
}

/* SIGINT and wait: the exit status (-1 if it had to be killed). */
static int car_stop(car_proc_t *car)
{
    int status;
    kill(car->pid, SIGINT);
    for (int i = 0; i < 500; i++) {
        if (waitpid(car->pid, &status, WNOHANG) == car->pid) {
            car->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(10000);
    }
    kill(car->pid, SIGKILL);
    waitpid(car->pid, &status, 0);
    car->pid = 0;
    return -1;
}

static int car_log_has(car_proc_t *car, const char *text)
{
    static char buf[1 << 20];
    read_file(car->log, buf, sizeof buf);
    return strstr(buf, text) != NULL;
}

/* What the last ovms-app run wrote on stderr. */
static char app_err[8192];

/* Run ovms-app with arguments (NULL-terminated); its stdout in out, its
 * stderr in app_err; returns the exit status. */
static int app(char *out, size_t cap, const char *first, ...)
{
    char *argv[40], port[64];
    int n = 0, pipefd[2], status;
    va_list ap;
    snprintf(port, sizeof port, "127.0.0.1:%d", node.port);
    argv[n++] = OVMS_APP_BIN;
    argv[n++] = "--server";
    argv[n++] = port;
    argv[n++] = "--timeout";
    argv[n++] = "10";
    argv[n++] = (char *)first;
    va_start(ap, first);
    for (char *a; (a = va_arg(ap, char *)) != NULL && n < 38;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char errpath[300];
    snprintf(errpath, sizeof errpath, "%s/app.err", node.dir);
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pipefd[1], 1);
        int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(efd, 2);
        close(pipefd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t used = 0;
    ssize_t r;
    while ((r = read(pipefd[0], out + used, cap - 1 - used)) > 0)
        used += (size_t)r;
    out[used] = '\0';
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    read_file(errpath, app_err, sizeof app_err);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static json_t *parse_json(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DISABLE_EOF_CHECK, &err);
    cr_assert_not_null(j, "not JSON (%s): %s", err.text, text);
    return j;
}

static char server_arg[64];

/* A node, and a car on it (through the name localhost) that runs 120 times
 * faster than real time and reports every second while watched. */
static void start_all(car_proc_t *car, const char *vehicle, const char *password,
                      const char *paranoid)
{
    node_prepare(&node);
    node_start(&node, NULL);
    snprintf(server_arg, sizeof server_arg, "localhost:%d", node.port);
    memset(car, 0, sizeof *car);
    car_start(car, server_arg, vehicle, password, "--time-scale", "120", "--update-watched", "1",
              "--seed", "17", paranoid ? "--paranoid" : NULL, paranoid, NULL);
}

/* Wait until the app sees the car connected with a state of charge. */
static json_t *wait_for_status(const char *vehicle, const char *password)
{
    static char out[1 << 16];
    double until = now_s() + 20;
    while (now_s() < until) {
        int rc = app(out, sizeof out, "--vehicle", vehicle, "--password", password, "--json",
                     "status", NULL);
        if (rc == 0) {
            json_t *j = parse_json(out);
            if (json_is_true(json_object_get(j, "car_connected")) &&
                json_object_get(json_object_get(j, "messages"), "S"))
                return j;
            json_decref(j);
        }
        usleep(200000);
    }
    cr_assert_fail("the car's status never reached the app");
    return NULL;
}

static void stop_all(car_proc_t *car)
{
    cr_assert_eq(car_stop(car), 0, "ovms-car stops cleanly on SIGINT");
    cr_assert(car_log_has(car, "stopped:"));
    node_stop(&node);
}

Test(car_app, status_location_and_watch_reach_the_app, .timeout = 90)
{
    static char out[1 << 16];
    car_proc_t car;
    start_all(&car, "TESTCAR", "NETPASS", NULL);
    json_t *j = wait_for_status("TESTCAR", "NETPASS");
    json_t *msgs = json_object_get(j, "messages");
    json_t *s = json_object_get(json_object_get(msgs, "S"), "fields");
    double soc = json_number_value(json_object_get(s, "soc"));
    cr_assert(soc > 0 && soc <= 100, "soc %f", soc);
    cr_assert_str_eq(json_string_value(json_object_get(s, "units")), "K");
    json_t *l = json_object_get(json_object_get(msgs, "L"), "fields");
    cr_assert_float_eq(json_number_value(json_object_get(l, "latitude")), 51.48, 0.05);
    json_t *f = json_object_get(json_object_get(msgs, "F"), "fields");
    cr_assert(!strncmp(json_string_value(json_object_get(f, "vin")), "OVMSSIM", 7));
    cr_assert_not_null(json_object_get(msgs, "D"));
    cr_assert_not_null(json_object_get(msgs, "Y"));
    cr_assert_not_null(json_object_get(msgs, "W"));
    json_decref(j);

    /* people: units and time ago */
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "NETPASS", "status",
                     NULL), 0);
    cr_assert_not_null(strstr(out, "TESTCAR: car connected, last update"), "%s", out);
    cr_assert_not_null(strstr(out, " ago"), "%s", out);
    cr_assert_not_null(strstr(out, "Battery "), "%s", out);
    cr_assert_not_null(strstr(out, " km"), "%s", out);
    cr_assert_not_null(strstr(out, " kPa"), "%s", out);
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "NETPASS", "location",
                     NULL), 0);
    cr_assert_not_null(strstr(out, "openstreetmap.org/?mlat=51.4"), "%s", out);

    /* watch: live updates, one JSON object per line */
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "NETPASS", "--json",
                     "watch", "--count", "6", NULL), 0);
    int lines = 0, live_s = 0;
    for (char *save, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *m = parse_json(line);
        const char *code = json_string_value(json_object_get(m, "code"));
        if (lines > 0 && code && !strcmp(code, "S"))
            live_s++;
        lines++;
        json_decref(m);
    }
    cr_assert_eq(lines, 7, "the status, then six live messages");
    cr_assert_geq(live_s, 1);
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "NETPASS", "watch",
                     "--for", "3", NULL), 0);
    cr_assert_not_null(strstr(out, "-- live updates"), "%s", out);
    cr_assert_not_null(strstr(out, "  S   battery "), "%s", out);
    stop_all(&car);
}

typedef struct named_case {
    const char *words[5];
    int want_exit;           /* -1: 0 or 1 (depends on the car's state) */
} named_case_t;

Test(car_app, every_named_command_round_trips, .timeout = 120)
{
    static char out[1 << 16];
    static const named_case_t cases[] = {
        { { "features" }, 0 },
        { { "feature", "8", "1" }, 0 },
        { { "params" }, 0 },
        { { "param", "5", "apn.example" }, 0 },
        { { "charge", "alert" }, 0 },
        { { "text", "stat" }, 0 },
        { { "charge", "mode", "range" }, 0 },
        { { "charge", "current", "16" }, 0 },
        { { "charge", "set", "standard", "32" }, 0 },
        { { "charge", "timer", "01:30" }, 0 },
        { { "charge", "timer", "off" }, 0 },
        { { "charge", "start" }, -1 },
        { { "charge", "stop" }, -1 },
        { { "wakeup" }, 0 },
        { { "wakeup", "temp" }, 0 },
        { { "lock", "1234" }, 0 },
        { { "lock", "9999" }, 1 },
        { { "unlock", "1234" }, 0 },
        { { "valet", "1234" }, 0 },
        { { "valet", "off", "1234" }, 0 },
        { { "homelink", "1" }, 0 },
        { { "cooldown" }, -1 },
        { { "climate", "on" }, 0 },
        { { "climate", "off" }, 0 },
        { { "utilisation" }, 0 },
        { { "history", "summary" }, 0 },
        { { "history", "records", "*-LOG-Trip" }, 0 },
        { { "sms", "+447700900123", "hello", "there" }, 3 },
        { { "ussd", "*100#" }, 3 },
        { { "at", "AT+CSQ" }, 3 },
        { { "20", "1234" }, 0 },
    };
    car_proc_t car;
    start_all(&car, "TESTCAR", "NETPASS", NULL);
    json_decref(wait_for_status("TESTCAR", "NETPASS"));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *w = cases[i].words;
        int rc = app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "NETPASS", "--json",
                     "command", w[0], w[1], w[2], w[3], w[4], NULL);
        if (cases[i].want_exit >= 0)
            cr_assert_eq(rc, cases[i].want_exit, "command %s %s: exit %d: %s", w[0], w[1] ? w[1] : "",
                         rc, out);
        else
            cr_assert(rc == 0 || rc == 1, "command %s %s: exit %d", w[0], w[1], rc);
        json_t *j = parse_json(out);
        cr_assert(json_is_integer(json_object_get(j, "command")), "%s", out);
        if (!strcmp(w[0], "features") || !strcmp(w[0], "params"))
            cr_assert_eq(json_array_size(json_object_get(j, "lines")), !strcmp(w[0], "features") ? 16 : 32);
        if (!strcmp(w[0], "text"))
            cr_assert_not_null(strstr(json_string_value(json_object_get(j, "text")), "SOC: "));
        json_decref(j);
    }
    /* the settings took: feature 8 and parameter 5 come back */
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "NETPASS", "command",
                     "params", NULL), 0);
    cr_assert_not_null(strstr(out, "apn.example"), "%s", out);
    /* reboot: the reply, then the car reconnects */
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "NETPASS", "command",
                     "reboot", NULL), 0);
    cr_assert_str_eq(out, "ok: rebooting\n");
    json_decref(wait_for_status("TESTCAR", "NETPASS"));
    cr_assert(car_log_has(&car, "command 5"));
    stop_all(&car);
}

static int trip_records(char *out, size_t cap)
{
    int rc = app(out, cap, "--vehicle", "TESTCAR", "--password", "NETPASS", "--json", "history",
                 "*-LOG-Trip", NULL);
    if (rc != 0)
        return -1;
    json_t *j = parse_json(out);
    int n = (int)json_array_size(json_object_get(j, "lines"));
    json_decref(j);
    return n;
}

Test(car_app, history_arrives_in_command_32, .timeout = 120)
{
    static char out[1 << 16];
    car_proc_t car;
    start_all(&car, "TESTCAR", "NETPASS", NULL);
    double until = now_s() + 60;
    int n = 0;
    while (now_s() < until && (n = trip_records(out, sizeof out)) < 1)
        sleep(1);
    cr_assert_geq(n, 1, "no trip record arrived");
    json_t *j = parse_json(out);
    json_t *line = json_array_get(json_object_get(j, "lines"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(line, "type")), "*-LOG-Trip");
    cr_assert_eq(json_integer_value(json_object_get(line, "recno")), 1);
    cr_assert_gt(strlen(json_string_value(json_object_get(line, "data"))), 20);
    json_decref(j);
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "NETPASS", "history",
                     NULL), 0);
    cr_assert_not_null(strstr(out, "*-LOG-Trip"), "%s", out);
    stop_all(&car);
}

Test(car_app, history_survives_car_restarts_while_the_server_is_away, .timeout = 120)
{
    static char out[1 << 16];
    car_proc_t car;
    memset(&car, 0, sizeof car);
    node_prepare(&node);
    /* no server yet: the car drives (fast) and keeps its records */
    car_start(&car, "127.0.0.1:1", "TESTCAR", "NETPASS", "--time-scale", "2000", "--seed", "5", NULL);
    double until = now_s() + 30;
    while (now_s() < until && !car_log_has(&car, "history record *-LOG-Trip #2 queued"))
        usleep(100000);
    cr_assert(car_log_has(&car, "#2 queued"), "two trips while offline");
    cr_assert_eq(car_stop(&car), 0);
    cr_assert(car_log_has(&car, "0 history records acknowledged"));

    /* it comes back with its queue, and the server gets everything */
    node_start(&node, NULL);
    snprintf(server_arg, sizeof server_arg, "127.0.0.1:%d", node.port);
    car_start(&car, server_arg, "TESTCAR", "NETPASS", "--time-scale", "1", "--seed", "5", NULL);
    until = now_s() + 30;
    int n = 0;
    while (now_s() < until && (n = trip_records(out, sizeof out)) < 2)
        usleep(300000);
    cr_assert_geq(n, 2, "the records made offline arrived: %s", out);
    cr_assert(car_log_has(&car, "history records waiting for the server"));
    stop_all(&car);
}

Test(car_app, paranoid_messages_decode_in_the_app, .timeout = 90)
{
    static char out[1 << 16];
    car_proc_t car;
    start_all(&car, "OTHERCAR", "OTHERPW", "MODPW");
    double until = now_s() + 20;
    json_t *j = NULL;
    while (now_s() < until) {
        cr_assert_eq(app(out, sizeof out, "--vehicle", "OTHERCAR", "--password", "OTHERPW",
                         "--paranoid", "MODPW", "--json", "status", NULL), 0);
        j = parse_json(out);
        json_t *s = json_object_get(json_object_get(j, "messages"), "S");
        if (s && json_object_get(s, "fields"))
            break;
        json_decref(j);
        j = NULL;
        usleep(200000);
    }
    cr_assert_not_null(j, "paranoid S never decoded");
    json_t *s = json_object_get(json_object_get(j, "messages"), "S");
    cr_assert(json_is_true(json_object_get(s, "paranoid")));
    double soc = json_number_value(json_object_get(json_object_get(s, "fields"), "soc"));
    cr_assert(soc > 0 && soc <= 100);
    json_decref(j);

    /* without the module password the app says that it cannot read */
    cr_assert_eq(app(out, sizeof out, "--vehicle", "OTHERCAR", "--password", "OTHERPW", "--json",
                     "status", NULL), 0);
    j = parse_json(out);
    s = json_object_get(json_object_get(j, "messages"), "S");
    cr_assert(json_is_false(json_object_get(s, "readable")), "%s", out);
    json_decref(j);
    cr_assert_eq(app(out, sizeof out, "--vehicle", "OTHERCAR", "--password", "OTHERPW", "status",
                     NULL), 0);
    cr_assert_not_null(strstr(out, "give --paranoid"), "%s", out);

    /* paranoid commands: EMC out, EMc back */
    cr_assert_eq(app(out, sizeof out, "--vehicle", "OTHERCAR", "--password", "OTHERPW",
                     "--paranoid", "MODPW", "--json", "command", "text", "stat", NULL), 0);
    j = parse_json(out);
    cr_assert(json_is_true(json_object_get(j, "paranoid")), "%s", out);
    cr_assert_not_null(strstr(json_string_value(json_object_get(j, "text")), "SOC: "));
    json_decref(j);
    cr_assert_eq(app(out, sizeof out, "--vehicle", "OTHERCAR", "--password", "OTHERPW",
                     "--paranoid", "MODPW", "command", "lock", "1234", NULL), 0);
    /* the server still answers 30-32 itself (they are never wrapped) */
    cr_assert_eq(app(out, sizeof out, "--vehicle", "OTHERCAR", "--password", "OTHERPW",
                     "--paranoid", "MODPW", "command", "utilisation", NULL), 0);
    stop_all(&car);
}

Test(car_app, owner_login_tls_and_refusals, .timeout = 90)
{
    static char out[1 << 16];
    car_proc_t car;
    start_all(&car, "TESTCAR", "NETPASS", NULL);
    json_decref(wait_for_status("TESTCAR", "NETPASS"));

    /* scheme 1: the owner's user name and password */
    cr_assert_eq(app(out, sizeof out, "--user", "owner", "--password", "ownerpw", "--vehicle",
                     "TESTCAR", "status", NULL), 0);
    cr_assert_not_null(strstr(out, "TESTCAR: car connected"), "%s", out);
    cr_assert_eq(app(out, sizeof out, "--user", "owner", "--password", "wrong", "status", NULL), 5);
    cr_assert_not_null(strstr(app_err, "refused the login of user owner"), "%s", app_err);
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "WRONG", "status",
                     NULL), 5);
    cr_assert_not_null(strstr(app_err, "wrong vehicle id or car password"), "%s", app_err);
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "status", NULL), 2, "no password");
    cr_assert_eq(app(out, sizeof out, "--vehicle", "TESTCAR", "--password", "NETPASS", "command",
                     "frobnicate", NULL), 2);
    cr_assert_not_null(strstr(app_err, "unknown command 'frobnicate'"), "%s", app_err);
    cr_assert_not_null(strstr(app_err, "charge start"), "the list of commands follows");
    /* a command to a car that is not connected */
    cr_assert_eq(app(out, sizeof out, "--vehicle", "OTHERCAR", "--password", "OTHERPW", "command",
                     "lock", "1234", NULL), 4);
    cr_assert_str_eq(out, "failed: vehicle not connected\n");
    cr_assert_eq(car_stop(&car), 0);
    node_stop(&node);

    /* TLS: the same over 6870's protocol */
    int tls_port = harness_free_port();
    make_test_certificate(node.dir);
    node_start(&node, "--tls-listen 127.0.0.1:%d --tls-cert %s/cert.pem --tls-key %s/key.pem",
               tls_port, node.dir, node.dir);
    car_start(&car, server_arg, "TESTCAR", "NETPASS", NULL);
    char tls_server[64];
    snprintf(tls_server, sizeof tls_server, "127.0.0.1:%d", tls_port);
    double until = now_s() + 20;
    int rc;
    do {
        rc = app(out, sizeof out, "--server", tls_server, "--tls", "--insecure", "--vehicle",
                 "TESTCAR", "--password", "NETPASS", "status", NULL);
        if (rc == 0 && strstr(out, "car connected"))
            break;
        usleep(200000);
    } while (now_s() < until);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(out, "TESTCAR: car connected"), "%s", out);
    /* without --insecure a self-signed certificate is refused */
    cr_assert_eq(app(out, sizeof out, "--server", tls_server, "--tls", "--vehicle", "TESTCAR",
                     "--password", "NETPASS", "status", NULL), 5);
    cr_assert_not_null(strstr(app_err, "certificate verify failed"), "%s", app_err);
    stop_all(&car);
}

Test(car_app, a_car_provisions_itself_with_ap_c, .timeout = 60)
{
    char cmd[1024];
    car_proc_t car;
    memset(&car, 0, sizeof car);
    node_prepare(&node);
    node_start(&node, NULL);
    snprintf(server_arg, sizeof server_arg, "127.0.0.1:%d", node.port);
    snprintf(cmd, sizeof cmd, "%s --db %s provision add WVWZZZAAZJD000042 --iccid 8944500102198304826 "
             "--vehicle TESTCAR --server %s >/dev/null", OVMS_ADMIN_PATH, node.db, server_arg);
    cr_assert_eq(system(cmd), 0);
    /* no credentials: only the VIN and the SIM's ICCID */
    char *argv[] = { OVMS_CAR_BIN, "--server", server_arg, "--vin", "WVWZZZAAZJD000042", "--iccid",
                     "8944500102198304826", "--state-dir", NULL, NULL };
    snprintf(car.dir, sizeof car.dir, "%s/car-provisioned", node.dir);
    snprintf(car.log, sizeof car.log, "%s.log", car.dir);
    argv[8] = car.dir;
    car_spawn(&car, argv, O_APPEND);
    json_decref(wait_for_status("TESTCAR", "NETPASS"));
    cr_assert(car_log_has(&car, "provisioned as TESTCAR"));
    cr_assert_eq(car_stop(&car), 0);
    /* and it remembers: the next start logs in directly */
    car_spawn(&car, argv, O_TRUNC);
    json_decref(wait_for_status("TESTCAR", "NETPASS"));
    cr_assert(!car_log_has(&car, "AP-C"), "no second provisioning");
    stop_all(&car);
}

Test(car_app, a_refused_car_says_so_and_exits, .timeout = 60)
{
    car_proc_t car;
    memset(&car, 0, sizeof car);
    node_prepare(&node);
    node_start(&node, NULL);
    snprintf(server_arg, sizeof server_arg, "127.0.0.1:%d", node.port);
    car_start(&car, server_arg, "TESTCAR", "WRONGPW", NULL);
    int status = 0;
    for (int i = 0; i < 1000 && waitpid(car.pid, &status, WNOHANG) == 0; i++)
        usleep(10000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "ovms-car exits 1");
    cr_assert(car_log_has(&car, "refused the login"));
    node_stop(&node);
}
