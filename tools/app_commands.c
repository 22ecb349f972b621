/*
 * app_commands.c -- commands by name ("charge start", "lock 1234") or by
 * number ("20 1234"), sent to the car (or the server for 30-32), and their
 * replies gathered -- multi-line ones whole -- and shown as a table for
 * people or as JSON.
 */
#include "app.h"

#include <stdlib.h>
#include <string.h>

typedef int (*convert_fn)(int argc, char **argv, char *params, size_t cap);

typedef struct named {
    const char *words;         /* what the user types before the arguments */
    int cmd;
    int min_args, max_args;
    convert_fn convert;        /* NULL: arguments joined with commas */
    const char *args, *help;
} named_t;

static int charge_mode_number(const char *name)
{
    static const char *const modes[] = { "standard", "storage", "", "range", "performance" };
    for (int i = 0; i < 5; i++)
        if (modes[i][0] && !strcmp(name, modes[i]))
            return i;
    char *end;
    long n = strtol(name, &end, 10);
    return *end || end == name ? -1 : (int)n;
}

static int conv_mode(int argc, char **argv, char *params, size_t cap)
{
    int mode = charge_mode_number(argv[0]);
    if (mode < 0) {
        fprintf(stderr, "ovms-app: charge mode is standard, storage, range or performance\n");
        return -1;
    }
    if (argc == 2)
        snprintf(params, cap, "%d,%s", mode, argv[1]);
    else
        snprintf(params, cap, "%d", mode);
    return 0;
}

static int conv_on_off(int argc, char **argv, char *params, size_t cap)
{
    if (!strcmp(argv[0], "on") || !strcmp(argv[0], "1"))
        snprintf(params, cap, "1");
    else if (!strcmp(argv[0], "off") || !strcmp(argv[0], "0"))
        snprintf(params, cap, "0");
    else {
        fprintf(stderr, "ovms-app: expected on or off\n");
        return -1;
    }
    return 0;
}

/* "off", "HH:MM" (minutes after midnight), or the raw "<mode> <start>". */
static int conv_timer(int argc, char **argv, char *params, size_t cap)
{
    int h, m;
    if (argc == 2)
        snprintf(params, cap, "%s,%s", argv[0], argv[1]);
    else if (!strcmp(argv[0], "off"))
        snprintf(params, cap, "0,0");
    else if (sscanf(argv[0], "%d:%d", &h, &m) == 2 && h >= 0 && h < 24 && m >= 0 && m < 60)
        snprintf(params, cap, "1,%d", h * 60 + m);
    else {
        fprintf(stderr, "ovms-app: charge timer takes off, HH:MM, or <mode> <start>\n");
        return -1;
    }
    return 0;
}

/* The words joined with sep; -1 if they do not fit. */
static int join_words(int argc, char **argv, const char *sep, char *params, size_t cap)
{
    size_t used = 0;
    params[0] = '\0';
    for (int i = 0; i < argc && used < cap; i++)
        used += (size_t)snprintf(params + used, cap - used, "%s%s", i ? sep : "", argv[i]);
    return used < cap ? 0 : -1;
}

/* Free text: the rest of the words with spaces. */
static int conv_text(int argc, char **argv, char *params, size_t cap)
{
    return join_words(argc, argv, " ", params, cap);
}

/* "<number> <text...>": the first word, a comma, the text. */
static int conv_first_then_text(int argc, char **argv, char *params, size_t cap)
{
    int n = snprintf(params, cap, "%s,", argv[0]);
    return n > 0 && (size_t)n < cap ? conv_text(argc - 1, argv + 1, params + n, cap - (size_t)n) : -1;
}

static const named_t commands[] = {
    { "features", 1, 0, 0, NULL, "", "list the module's features" },
    { "feature", 2, 2, 2, NULL, "<n> <value>", "set a feature" },
    { "params", 3, 0, 0, NULL, "", "list the module's parameters" },
    { "param", 4, 2, 2, NULL, "<n> <value>", "set a parameter" },
    { "reboot", 5, 0, 0, NULL, "", "reboot the module" },
    { "charge alert", 6, 0, 0, NULL, "", "ask for a charge alert" },
    { "text", 7, 1, 64, conv_text, "<command...>", "run a text (shell) command, e.g. text stat" },
    { "charge mode", 10, 1, 1, conv_mode, "<standard|storage|range|performance>", "set the charge mode" },
    { "charge start", 11, 0, 0, NULL, "", "start charging" },
    { "charge stop", 12, 0, 0, NULL, "", "stop charging" },
    { "charge current", 15, 1, 1, NULL, "<amps>", "set the charge current limit" },
    { "charge set", 16, 2, 2, conv_mode, "<mode> <amps>", "set the charge mode and current" },
    { "charge timer", 17, 1, 2, conv_timer, "<off|HH:MM>", "charge on plug-in, or from a time" },
    { "wakeup temp", 19, 0, 0, NULL, "", "wake up the temperature subsystem" },
    { "wakeup", 18, 0, 0, NULL, "", "wake up the car" },
    { "lock", 20, 1, 1, NULL, "<pin>", "lock the car" },
    { "valet off", 23, 1, 1, NULL, "<pin>", "leave valet mode" },
    { "valet", 21, 1, 1, NULL, "<pin>", "enter valet mode" },
    { "unlock", 22, 1, 1, NULL, "<pin>", "unlock the car" },
    { "homelink", 24, 0, 1, NULL, "[0|1|2]", "press a homelink button" },
    { "cooldown", 25, 0, 0, NULL, "", "cool the battery down (while plugged in)" },
    { "climate", 26, 1, 1, conv_on_off, "<on|off>", "climate control" },
    { "utilisation", 30, 0, 0, NULL, "", "data used per day (answered by the server)" },
    { "history summary", 31, 0, 1, NULL, "[since]", "historical record types (server)" },
    { "history records", 32, 1, 2, NULL, "<type> [since]", "historical records of a type (server)" },
    { "sms", 40, 2, 64, conv_first_then_text, "<number> <text...>", "send an SMS from the module" },
    { "ussd", 41, 1, 1, NULL, "<code>", "send a USSD code" },
    { "at", 49, 1, 64, conv_text, "<AT command>", "send a raw modem command" },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

void app_command_help(FILE *out)
{
    fprintf(out, "commands (or a number and its parameters, e.g. \"command 20 1234\"):\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char usage[64];
        snprintf(usage, sizeof usage, "%s %s", commands[i].words, commands[i].args);
        fprintf(out, "  %-34s %2d  %s\n", usage, commands[i].cmd, commands[i].help);
    }
}

/* How many of argv make up words ("charge start" is 2), or 0. */
static int match_words(const char *words, int argc, char **argv)
{
    char copy[64];
    int n = 0;
    snprintf(copy, sizeof copy, "%s", words);
    for (char *save, *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save), n++)
        if (n >= argc || strcmp(argv[n], w) != 0)
            return 0;
    return n;
}

int app_command_parse(int argc, char **argv, int *cmd, char *params, size_t cap)
{
    char *end;
    if (argc < 1) {
        fprintf(stderr, "ovms-app: which command?\n");
        app_command_help(stderr);
        return -1;
    }
    long n = strtol(argv[0], &end, 10);
    if (!*end && end != argv[0]) {
        if (n < 0 || n > 65535) {
            fprintf(stderr, "ovms-app: %s is not a command number\n", argv[0]);
            return -1;
        }
        *cmd = (int)n;
        return join_words(argc - 1, argv + 1, ",", params, cap);
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const named_t *c = &commands[i];
        int used = match_words(c->words, argc, argv);
        if (!used)
            continue;
        int nargs = argc - used;
        if (nargs < c->min_args || nargs > c->max_args) {
            fprintf(stderr, "ovms-app: usage: command %s %s\n", c->words, c->args);
            return -1;
        }
        *cmd = c->cmd;
        params[0] = '\0';
        if (nargs == 0)
            return 0;
        return c->convert ? c->convert(nargs, argv + used, params, cap)
                          : join_words(nargs, argv + used, ",", params, cap);
    }
    fprintf(stderr, "ovms-app: unknown command '%s'\n", argv[0]);
    app_command_help(stderr);
    return -1;
}

/* ---- replies ------------------------------------------------------------------------ */

static const char *const param_names[] = {
    "phone", "module password", "units", "notify", "server", "APN", "GPRS user", "GPRS password",
    "vehicle id", "car password", "paranoid password", "group 1", "group 2",
};

static int multi_line(int cmd)
{
    return cmd == 1 || cmd == 3 || (cmd >= 30 && cmd <= 32);
}

/* The fields of a server reply line for JSON. */
static json_t *server_line_json(int cmd, ovms_str_t value)
{
    static const char *const f30[] = { "date", "car_rx", "car_tx", "app_rx", "app_tx" };
    static const char *const f31[] = { "type", "recnos", "records", "bytes", "first", "last" };
    static const char *const f32[] = { "type", "timestamp", "recno", "data" };
    const char *const *names = cmd == 30 ? f30 : cmd == 31 ? f31 : f32;
    int nnames = cmd == 30 ? 5 : cmd == 31 ? 6 : 4;
    ovms_str_t f[6];
    int n = ovms_fields_split(value, f, nnames);
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        int64_t v;
        int numeric = strcmp(names[i], "type") && strcmp(names[i], "data") &&
                      strcmp(names[i], "date") && strcmp(names[i], "first") &&
                      strcmp(names[i], "last") && strcmp(names[i], "timestamp");
        json_object_set_new(o, names[i], numeric && ovms_int_parse(f[i], &v) == 0
                                             ? json_integer(v) : json_stringn(f[i].ptr, f[i].len));
    }
    return o;
}

static void print_line_human(int cmd, const ovms_cmdreply_t *r)
{
    ovms_str_t f[6];
    int n;
    switch (cmd) {
    case 1:
        printf("feature %2lld  %.*s\n", (long long)r->k, (int)r->value.len, r->value.ptr);
        return;
    case 3:
        printf("#%-2lld %-18s %.*s\n", (long long)r->k,
               r->k < (int64_t)(sizeof param_names / sizeof param_names[0]) ? param_names[r->k] : "",
               (int)r->value.len, r->value.ptr);
        return;
    case 30:
        n = ovms_fields_split(r->value, f, 5);
        if (r->k == 1)
            printf("%-10s %12s %12s %12s %12s\n", "day", "to car", "from car", "to apps", "from apps");
        for (int i = 0; i < n; i++)
            printf(i ? " %12.*s" : "%-10.*s", (int)f[i].len, f[i].ptr);
        putchar('\n');
        return;
    case 31:
        n = ovms_fields_split(r->value, f, 6);
        if (r->k == 1)
            printf("%-28s %7s %8s %9s  %-19s  %s\n", "type", "recnos", "records", "bytes", "first",
                   "last");
        if (n == 6)
            printf("%-28.*s %7.*s %8.*s %9.*s  %-19.*s  %.*s\n", (int)f[0].len, f[0].ptr,
                   (int)f[1].len, f[1].ptr, (int)f[2].len, f[2].ptr, (int)f[3].len, f[3].ptr,
                   (int)f[4].len, f[4].ptr, (int)f[5].len, f[5].ptr);
        return;
    case 32:
        n = ovms_fields_split(r->value, f, 4);
        if (n == 4)
            printf("%.*s  #%.*s  %.*s\n", (int)f[1].len, f[1].ptr, (int)f[2].len, f[2].ptr,
                   (int)f[3].len, f[3].ptr);
        return;
    }
}

/* Text from the car: V3 turns line breaks into CR. */
static void print_text(ovms_str_t t)
{
    for (size_t i = 0; i < t.len; i++)
        putchar(t.ptr[i] == '\r' ? '\n' : t.ptr[i]);
    putchar('\n');
}

static int result_exit(int cmd, int64_t result, ovms_str_t text)
{
    if (result == 0 || (cmd >= 30 && cmd <= 32 && result == 1))
        return APP_OK;                 /* the server has nothing: an empty answer */
    if (result == 1)
        return ovms_str_eq(text, "vehicle not connected") ? APP_NO_REPLY : APP_FAILED;
    return APP_UNSUPPORTED;
}

static void print_single_human(int cmd, const ovms_cmdreply_t *r)
{
    switch (r->result) {
    case 0:
        if (cmd == 7 && r->text.len)
            print_text(r->text);
        else
            printf("ok%s%.*s\n", r->text.len ? ": " : "", (int)r->text.len, r->text.ptr);
        return;
    case 1:
        if (cmd >= 30 && cmd <= 32)
            printf("%.*s\n", (int)r->text.len, r->text.ptr);    /* "No ... data available" */
        else
            printf("failed%s%.*s\n", r->text.len ? ": " : "", (int)r->text.len, r->text.ptr);
        return;
    case 2:
        printf("unsupported by this car%s%.*s\n", r->text.len ? ": " : "", (int)r->text.len,
               r->text.ptr);
        return;
    default:
        printf("not implemented by this car (result %lld)\n", (long long)r->result);
    }
}

/* A reply line that belongs to our command, and whether more follow. */
static int more_follow(int cmd, const ovms_cmdreply_t *r)
{
    if (!multi_line(cmd) || r->result != 0 || r->nfields < 5)
        return 0;
    return cmd >= 30 ? r->k < r->max : r->k < r->max - 1;
}

int app_command_run(app_conn_t *c, int cmd, const char *params)
{
    const app_opts_t *o = c->opts;
    json_t *lines = json_array();
    int exit_code = APP_NO_REPLY;
    uint64_t deadline = app_now_ms() + (uint64_t)o->timeout_ms;
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%d,", cmd);

    if (app_send_command(c, cmd, params) < 0) {
        fprintf(stderr, "ovms-app: cannot send the command\n");
        json_decref(lines);
        return APP_CONNECTION;
    }
    for (;;) {
        app_msg_t m;
        uint64_t now = app_now_ms();
        int rc = now < deadline ? app_recv(c, (int)(deadline - now), &m) : 0;
        if (rc <= 0) {
            fprintf(stderr, "ovms-app: %s\n", rc == 0 ? "no reply in time (is the car online?)"
                                                      : "the server closed the connection");
            exit_code = rc == 0 ? APP_NO_REPLY : APP_CONNECTION;
            break;
        }
        ovms_cmdreply_t r;
        if (m.code == 'c' && m.unreadable) {
            /* replies are routed to their requester: this one is ours */
            fprintf(stderr, "ovms-app: the car answered in paranoid mode: give --paranoid with "
                    "the module password to read it\n");
            exit_code = APP_FAILED;
            break;
        }
        if (m.code != 'c' || m.payload.len < strlen(prefix) ||
            memcmp(m.payload.ptr, prefix, strlen(prefix)) != 0 || ovms_cmdreply_parse(m.payload, &r) < 0)
            continue;
        int more = more_follow(cmd, &r);
        if (multi_line(cmd) && r.result == 0 && r.nfields >= 5) {
            json_array_append_new(lines, cmd >= 30 ? server_line_json(cmd, r.value)
                                                   : json_stringn(r.value.ptr, r.value.len));
            if (!o->json)
                print_line_human(cmd, &r);
            exit_code = APP_OK;
            if (more)
                continue;
        } else {
            exit_code = result_exit(cmd, r.result, r.text);
            if (o->json) {
                json_t *j = json_object();
                json_object_set_new(j, "command", json_integer(cmd));
                json_object_set_new(j, "result", json_integer(r.result));
                json_object_set_new(j, "text", json_stringn(r.text.ptr, r.text.len));
                json_object_set_new(j, "paranoid", json_boolean(m.paranoid));
                app_print_json(j, stdout);
            } else {
                print_single_human(cmd, &r);
            }
            json_decref(lines);
            return exit_code;
        }
        break;
    }
    if (o->json && exit_code == APP_OK) {
        json_t *j = json_object();
        json_object_set_new(j, "command", json_integer(cmd));
        json_object_set_new(j, "result", json_integer(0));
        json_object_set_new(j, "lines", lines);
        app_print_json(j, stdout);
        return exit_code;
    }
    json_decref(lines);
    return exit_code;
}
