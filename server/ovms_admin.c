/*
 * ovms_admin.c -- ovms-admin: the operators' tool for owners, vehicles,
 * auto-provisioning records and history of a node's database.
 *
 *   ovms-admin --db PATH [--json] owner add|list|set|remove ...
 *   ovms-admin --db PATH [--json] vehicle add|list|set|set-password|remove ...
 *   ovms-admin --db PATH [--json] provision add|list|remove ...
 *   ovms-admin --db PATH [--json] history VEHICLE [TYPE]
 *   ovms-admin --db PATH [--json] cluster status|digest
 *
 * It writes through the same storage API as the server (its own store on
 * the same file: SQLite's locking and the server's change polling make that
 * safe while ovmsd runs). Removing is a tombstone, so replication can carry
 * it. Human output by default, --json for scripts. Exit status: 0 done,
 * 1 the operation failed (the message says why), 2 bad usage.
 * Threading: single-threaded (the store has its own threads).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ovms_proto.h"
#include "ovms_store.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define SHORT_CARPASS 8          /* shorter car passwords get a warning */

static const char USAGE[] =
    "usage: ovms-admin --db PATH [--json] [--node ID] COMMAND ...\n"
    "\n"
    "  owner add NAME [--mail MAIL] [--password PW | --password-hash HASH]\n"
    "  owner set NAME [--mail MAIL] [--password PW | --password-hash HASH] [--status N]\n"
    "  owner list\n"
    "  owner remove NAME\n"
    "  vehicle add VEHICLEID --password PW [--owner NAME] [--type T] [--server ID|*]\n"
    "  vehicle set VEHICLEID [--owner NAME] [--type T] [--server ID|*]\n"
    "  vehicle set-password VEHICLEID PW\n"
    "  vehicle list\n"
    "  vehicle remove VEHICLEID\n"
    "  provision add APKEY --iccid ICCID --vehicle VEHICLEID [--server HOST]\n"
    "                [--module-password PW] [--phone N] [--apn APN] [--apn-user U]\n"
    "                [--apn-password P] [--units K|M]\n"
    "  provision list\n"
    "  provision remove APKEY\n"
    "  history VEHICLEID [TYPE]\n"
    "  cluster status    the running node's peer links, watermarks and lag\n"
    "  cluster digest    one line per replicated table: <table> <rows> <digest>;\n"
    "                    nodes holding the same content print the same lines\n"
    "\n"
    "A vehicle added without --owner gets a new owner named after it.\n"
    "Removing leaves a tombstone that replication carries to other nodes.\n"
    "--node names the node when the database is new (default: from the host name).\n";

typedef struct cli {
    const char *db;
    int json;
    int argc;                   /* positional words after the options */
    const char *argv[16];
    /* named options */
    const char *mail, *password, *owner, *type, *server, *iccid, *vehicle, *module_pw,
        *phone, *apn, *apn_user, *apn_pw, *units, *status, *node, *pwhash;
    ovms_store_t *st;
} cli_t;

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("ovms-admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(ovms-admin --help shows the commands)\n", stderr);
    return EXIT_USAGE;
}

static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs("ovms-admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAIL;
}

/* ---- options ------------------------------------------------------------------- */

typedef struct option_def {
    const char *name;
    size_t offset;
} option_def_t;

#define OPT(n, field) { n, offsetof(cli_t, field) }
static const option_def_t OPTIONS[] = {
    OPT("--db", db), OPT("--mail", mail), OPT("--password", password), OPT("--owner", owner),
    OPT("--type", type), OPT("--server", server), OPT("--iccid", iccid),
    OPT("--vehicle", vehicle), OPT("--module-password", module_pw), OPT("--phone", phone),
    OPT("--apn", apn), OPT("--apn-user", apn_user), OPT("--apn-password", apn_pw),
    OPT("--units", units), OPT("--status", status), OPT("--node", node), OPT("--password-hash", pwhash),
};

static int parse_args(cli_t *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            c->json = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            exit(0);
        }
        if (a[0] == '-' && a[1] == '-') {
            size_t k;
            for (k = 0; k < sizeof OPTIONS / sizeof OPTIONS[0]; k++)
                if (!strcmp(a, OPTIONS[k].name))
                    break;
            if (k == sizeof OPTIONS / sizeof OPTIONS[0])
                return usage_error("unknown option %s", a);
            if (i + 1 >= argc)
                return usage_error("%s needs a value", a);
            *(const char **)((char *)c + OPTIONS[k].offset) = argv[++i];
            continue;
        }
        if (c->argc == (int)(sizeof c->argv / sizeof c->argv[0]))
            return usage_error("too many arguments");
        c->argv[c->argc++] = a;
    }
    if (!c->db)
        return usage_error("--db PATH is required");
    if (c->argc == 0)
        return usage_error("no command given");
    return 0;
}

/* ---- output helpers -------------------------------------------------------------- */

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(s);
    free(s);
    json_decref(j);
}

/* Human output: columns padded to the widest cell. */
static void print_table(const char *const *head, int ncols, const ovms_store_rows_t *rows,
                        const int *cols)
{
    size_t width[16] = { 0 };
    for (int c = 0; c < ncols; c++) {
        width[c] = strlen(head[c]);
        for (int r = 0; r < rows->nrows; r++) {
            size_t n = strlen(ovms_store_cell(rows, r, cols[c]));
            width[c] = n > width[c] ? n : width[c];
        }
    }
    for (int c = 0; c < ncols; c++)
        printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, head[c], c + 1 < ncols ? "  " : "\n");
    for (int r = 0; r < rows->nrows; r++)
        for (int c = 0; c < ncols; c++)
            printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, ovms_store_cell(rows, r, cols[c]),
                   c + 1 < ncols ? "  " : "\n");
    if (rows->nrows == 0)
        printf("(none)\n");
}

/* Rows as a JSON array of objects; numeric columns become numbers. */
static json_t *rows_json(const ovms_store_rows_t *rows, const char *const *keys,
                         const char *numeric)
{
    json_t *arr = json_array();
    for (int r = 0; r < rows->nrows; r++) {
        json_t *o = json_object();
        for (int c = 0; c < rows->ncols && keys[c]; c++) {
            const char *v = ovms_store_cell(rows, r, c);
            json_object_set_new(o, keys[c], numeric[c] == 'n' ? json_integer(atoll(v))
                                                              : json_string(v));
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

static int run_req(cli_t *c, ovms_store_req_t *req, int prep_rc, const char *what)
{
    if (prep_rc < 0)
        return prep_rc;
    int rc = ovms_store_run(c->st, req);
    /* the callers explain these three in their own words */
    if (rc < 0 && rc != OVMS_EEXIST && rc != OVMS_ENOTFOUND && rc != OVMS_EBUSY)
        fprintf(stderr, "ovms-admin: %s failed: %s\n", what, ovms_strerror(rc));
    return rc;
}

static int report_write(cli_t *c, const char *text, const char *idkey, int64_t id)
{
    if (c->json) {
        json_t *j = json_pack("{s:b}", "ok", 1);
        if (idkey)
            json_object_set_new(j, idkey, json_integer(id));
        print_json(j);
    } else {
        puts(text);
    }
    return 0;
}

/* ---- owner ------------------------------------------------------------------------- */

static int owner_cmd(cli_t *c)
{
    ovms_store_req_t req;
    const char *sub = c->argc > 1 ? c->argv[1] : "";
    const char *name = c->argc > 2 ? c->argv[2] : NULL;
    char hash[160], text[200];
    int rc;

    ovms_store_req_init(&req);
    if (!strcmp(sub, "list")) {
        if ((rc = run_req(c, &req, ovms_store_prep_owner_list(&req), "owner list")) < 0)
            return EXIT_FAIL;
        static const char *const keys[] = { "id", "name", "mail", "status", "vehicles",
                                            "changed", "origin", "seq" };
        static const char *const head[] = { "ID", "NAME", "MAIL", "STATUS", "VEHICLES" };
        static const int cols[] = { 0, 1, 2, 3, 4 };
        if (c->json)
            print_json(rows_json(&req.rows, keys, "nssnsssn"));
        else
            print_table(head, 5, &req.rows, cols);
        ovms_store_req_cleanup(&req);
        return 0;
    }
    if (!name)
        return usage_error("owner %s needs a NAME", sub[0] ? sub : "COMMAND");
    if (c->password && c->pwhash)
        return usage_error("give --password or --password-hash, not both");
    /* a hash carried over from a reference database (Drupal 7 "$S$") or
     * from another node: stored as given, checked at login */
    if (c->pwhash && strncmp(c->pwhash, "$S$", 3) && strncmp(c->pwhash, "$pbkdf2-sha256$", 15))
        return usage_error("--password-hash takes a Drupal 7 ($S$...) or $pbkdf2-sha256$ hash");
    if (c->pwhash && snprintf(hash, sizeof hash, "%s", c->pwhash) >= (int)sizeof hash)
        return usage_error("--password-hash is too long");
    if (c->password && ovms_password_hash(c->password, hash, sizeof hash) < 0)
        return fail("cannot hash the password");
    if (!strcmp(sub, "add") || !strcmp(sub, "set")) {
        int add = !strcmp(sub, "add");
        int64_t status = c->status ? atoll(c->status) : (add ? 1 : -1);
        rc = ovms_store_prep_owner_put(&req, name, c->mail, c->password || c->pwhash ? hash : NULL, status,
                                       add ? OVMS_STORE_CREATE : OVMS_STORE_UPDATE);
        if (rc == OVMS_EINVAL)
            return fail("owner names and mail addresses may not hold commas, spaces or line breaks");
        if ((rc = run_req(c, &req, rc, add ? "owner add" : "owner set")) < 0)
            return rc == OVMS_EEXIST ? fail("owner %s already exists", name)
                 : rc == OVMS_ENOTFOUND ? fail("no owner named %s", name) : EXIT_FAIL;
        snprintf(text, sizeof text, "owner %s %s (id %lld)", name, add ? "added" : "updated",
                 (long long)req.value);
        report_write(c, text, "owner_id", req.value);
    } else if (!strcmp(sub, "remove")) {
        rc = run_req(c, &req, ovms_store_prep_owner_remove(&req, name), "owner remove");
        if (rc == OVMS_ENOTFOUND)
            return fail("no owner named %s", name);
        if (rc == OVMS_EBUSY)
            return fail("owner %s still has vehicles: remove them first", name);
        if (rc < 0)
            return EXIT_FAIL;
        snprintf(text, sizeof text, "owner %s removed", name);
        report_write(c, text, NULL, 0);
    } else {
        return usage_error("unknown owner command '%s'", sub);
    }
    ovms_store_req_cleanup(&req);
    return 0;
}

/* ---- vehicle ------------------------------------------------------------------------ */

static int vehicle_list(cli_t *c)
{
    ovms_store_req_t req;
    static const char *const keys[] = { "vehicle", "owner_id", "owner", "type", "server",
                                        "last_update", "changed", "origin", "seq" };
    static const char *const head[] = { "VEHICLE", "OWNER", "TYPE", "SERVER", "LAST UPDATE" };
    static const int cols[] = { 0, 2, 3, 4, 5 };

    ovms_store_req_init(&req);
    if (run_req(c, &req, ovms_store_prep_vehicle_list(&req), "vehicle list") < 0)
        return EXIT_FAIL;
    if (c->json)
        print_json(rows_json(&req.rows, keys, "snssssssn"));
    else
        print_table(head, 5, &req.rows, cols);
    ovms_store_req_cleanup(&req);
    return 0;
}

static int vehicle_error(int rc, const char *id, const char *owner)
{
    switch (rc) {
    case OVMS_EEXIST: return fail("vehicle %s already exists (vehicle ids are unique)", id);
    case OVMS_ENOTFOUND:
        return owner ? fail("no vehicle %s or no owner named %s", id, owner)
                     : fail("no vehicle %s", id);
    default: return EXIT_FAIL;
    }
}

static int vehicle_cmd(cli_t *c)
{
    ovms_store_req_t req;
    const char *sub = c->argc > 1 ? c->argv[1] : "";
    const char *id = c->argc > 2 ? c->argv[2] : NULL;
    char text[200];
    int rc;

    if (!strcmp(sub, "list"))
        return vehicle_list(c);
    if (!id)
        return usage_error("vehicle %s needs a VEHICLEID", sub[0] ? sub : "COMMAND");
    ovms_store_req_init(&req);
    if (!strcmp(sub, "add") || !strcmp(sub, "set") || !strcmp(sub, "set-password")) {
        int add = !strcmp(sub, "add");
        const char *pw = !strcmp(sub, "set-password") && c->argc > 3 ? c->argv[3] : c->password;
        if ((add || !strcmp(sub, "set-password")) && !pw)
            return usage_error("vehicle %s needs the car password (--password PW)", sub);
        if (pw && !*pw)
            return fail("the car password may not be empty: anyone could log in as the car");
        if (pw && strlen(pw) < SHORT_CARPASS)
            fprintf(stderr, "ovms-admin: warning: a car password of %zu characters is easy to guess; "
                            "use at least %d (at most 64)\n", strlen(pw), SHORT_CARPASS);
        rc = ovms_store_prep_vehicle_put(&req, id, c->owner, pw, c->type, c->server,
                                         add ? OVMS_STORE_CREATE : OVMS_STORE_UPDATE);
        if (rc == OVMS_EINVAL)
            return fail("bad value: vehicle ids are 1-32 characters without spaces or commas; "
                        "car passwords at most 64 bytes without commas or spaces; "
                        "--server is * or a server id");
        if ((rc = run_req(c, &req, rc, sub)) < 0)
            return vehicle_error(rc, id, c->owner);
        ovms_vehicle_t v;
        ovms_store_vehicle_get(c->st, id, &v);
        snprintf(text, sizeof text, "vehicle %s %s (owner id %lld)", v.id,
                 add ? "added" : "updated", (long long)req.value);
        report_write(c, text, "owner_id", req.value);
    } else if (!strcmp(sub, "remove")) {
        if ((rc = run_req(c, &req, ovms_store_prep_vehicle_remove(&req, id), "vehicle remove")) < 0)
            return vehicle_error(rc, id, NULL);
        snprintf(text, sizeof text, "vehicle %s removed, with %lld rows of its data (stored messages, "
                 "history, push subscriptions, provisioning records)", id, (long long)req.value);
        report_write(c, text, "data_rows", req.value);
    } else {
        return usage_error("unknown vehicle command '%s'", sub);
    }
    ovms_store_req_cleanup(&req);
    return 0;
}

/* ---- provisioning -------------------------------------------------------------------- */

/* Parameters #0..#9 of PROTOCOL 9.1, "-" for empty ones. */
static int provision_params(cli_t *c, const ovms_vehicle_t *v, char *out, size_t cap)
{
    ovms_params_t p = { .n = 10 };
    const char *vals[10] = { c->phone, c->module_pw, c->units ? c->units : "K", NULL,
                             c->server, c->apn, c->apn_user, c->apn_pw, v->id, v->carpass };
    for (int i = 0; i < 10; i++)
        p.v[i] = ovms_str_c(vals[i] ? vals[i] : "");
    return ovms_params_format(&p, out, cap);
}

static int provision_add(cli_t *c, const char *apkey)
{
    ovms_store_req_t req;
    ovms_vehicle_t v;
    char params[1024], token[OVMS_TOKEN_LEN + 1], digest[OVMS_DIGEST_B64_LEN + 1], record[2048];
    char text[200];

    if (!c->iccid || !c->vehicle)
        return usage_error("provision add needs --iccid ICCID and --vehicle VEHICLEID");
    if (ovms_store_vehicle_get(c->st, c->vehicle, &v) < 0)
        return fail("no vehicle %s", c->vehicle);
    if (provision_params(c, &v, params, sizeof params) < 0)
        return fail("provisioning values may not hold spaces");
    if (ovms_token_generate(token) < 0 ||
        ovms_provision_encode(c->iccid, token, params, strlen(params), digest, record,
                              sizeof record) < 0)
        return fail("cannot build the provisioning record");
    ovms_store_req_init(&req);
    int rc = ovms_store_prep_prov_put(&req, apkey, v.id, token, digest, record);
    if (rc == OVMS_EINVAL)
        return fail("the apkey (VIN) may not hold spaces or commas");
    if (run_req(c, &req, rc, "provision add") < 0)
        return EXIT_FAIL;
    snprintf(text, sizeof text, "provisioning record for %s added (vehicle %s)", apkey, v.id);
    report_write(c, text, NULL, 0);
    ovms_store_req_cleanup(&req);
    return 0;
}

static int provision_cmd(cli_t *c)
{
    ovms_store_req_t req;
    const char *sub = c->argc > 1 ? c->argv[1] : "";
    const char *apkey = c->argc > 2 ? c->argv[2] : NULL;

    ovms_store_req_init(&req);
    if (!strcmp(sub, "list")) {
        static const char *const keys[] = { "apkey", "vehicle", "token", "digest", "record" };
        static const char *const head[] = { "APKEY", "VEHICLE", "TOKEN" };
        static const int cols[] = { 0, 1, 2 };
        if (run_req(c, &req, ovms_store_prep_prov_list(&req), "provision list") < 0)
            return EXIT_FAIL;
        if (c->json)
            print_json(rows_json(&req.rows, keys, "sssss"));
        else
            print_table(head, 3, &req.rows, cols);
        ovms_store_req_cleanup(&req);
        return 0;
    }
    if (!apkey)
        return usage_error("provision %s needs an APKEY (the VIN)", sub[0] ? sub : "COMMAND");
    if (!strcmp(sub, "add"))
        return provision_add(c, apkey);
    if (!strcmp(sub, "remove")) {
        int rc = run_req(c, &req, ovms_store_prep_prov_remove(&req, apkey), "provision remove");
        if (rc == OVMS_ENOTFOUND)
            return fail("no provisioning record for %s", apkey);
        if (rc < 0)
            return EXIT_FAIL;
        char text[200];
        snprintf(text, sizeof text, "provisioning record for %s removed", apkey);
        report_write(c, text, NULL, 0);
        ovms_store_req_cleanup(&req);
        return 0;
    }
    return usage_error("unknown provision command '%s'", sub);
}

/* ---- history --------------------------------------------------------------------------- */

static int history_cmd(cli_t *c)
{
    ovms_store_req_t req;
    static const char *const keys[] = { "type", "timestamp", "recno", "expires", "data" };
    static const char *const head[] = { "TYPE", "TIMESTAMP", "RECNO", "EXPIRES", "DATA" };
    static const int cols[] = { 0, 1, 2, 3, 4 };

    if (c->argc < 2)
        return usage_error("history needs a VEHICLEID");
    ovms_store_req_init(&req);
    int rc = ovms_store_prep_hist_list(&req, c->argv[1], c->argc > 2 ? c->argv[2] : NULL);
    if (rc == OVMS_EINVAL)
        return fail("bad vehicle id %s", c->argv[1]);
    if (run_req(c, &req, rc, "history") < 0)
        return EXIT_FAIL;
    ovms_vehicle_t v;
    if (req.rows.nrows == 0 && ovms_store_vehicle_get(c->st, c->argv[1], &v) < 0)
        return fail("no vehicle %s", c->argv[1]);
    if (c->json)
        print_json(rows_json(&req.rows, keys, "ssnss"));
    else
        print_table(head, 5, &req.rows, cols);
    ovms_store_req_cleanup(&req);
    return 0;
}

/* ---- cluster ----------------------------------------------------------------------------- */

static int cluster_digest(cli_t *c)
{
    ovms_store_req_t req;
    static const char *const keys[] = { "table", "rows", "digest" };
    ovms_store_req_init(&req);
    if (run_req(c, &req, ovms_store_prep_digest(&req), "cluster digest") < 0)
        return EXIT_FAIL;
    if (c->json)
        print_json(rows_json(&req.rows, keys, "sns"));
    else
        for (int r = 0; r < req.rows.nrows; r++)
            printf("%s %s %s\n", ovms_store_cell(&req.rows, r, 0), ovms_store_cell(&req.rows, r, 1),
                   ovms_store_cell(&req.rows, r, 2));
    ovms_store_req_cleanup(&req);
    return 0;
}

static const char *when_text(double t, char *buf)
{
    ovms_timestamp_format((int64_t)t, buf);
    return buf;
}

/* The file the running node rewrites every second (replication/status.c). */
static int cluster_status(cli_t *c)
{
    char path[1100], line[4096], ts[20];
    snprintf(path, sizeof path, "%s.cluster", c->db);
    FILE *f = fopen(path, "r");
    if (!f)
        return fail("no cluster status for %s: the node is not running with peers (%s is missing)",
                    c->db, path);
    json_t *peers = json_array(), *origins = json_array(), *top = json_object();
    double updated = 0;
    char node[64] = "?";
    while (fgets(line, sizeof line, f)) {
        char id[64], state[32], addr[300], marks[3000], error[200];
        double since, behind_s;
        unsigned long long in, out;
        long long ours, known, behind;
        if (sscanf(line, "updated %lf", &updated) == 1 || sscanf(line, "node %63s", node) == 1)
            continue;
        if (sscanf(line, "peer %63s %31s %lf %299s %llu %llu %2999s %199s", id, state, &since, addr,
                   &in, &out, marks, error) == 8) {
            for (char *e = error; *e; e++)
                *e = *e == '_' ? ' ' : *e;
            json_array_append_new(peers, json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:s}", "peer", id,
                "state", state, "since", when_text(since, ts), "address", addr, "records_in",
                (json_int_t)in, "records_out", (json_int_t)out, "watermarks", marks, "last_error",
                strcmp(error, "-") ? error : ""));
        } else if (sscanf(line, "origin %63s %lld %lld %lld %lf", id, &ours, &known, &behind,
                          &behind_s) == 5) {
            json_array_append_new(origins, json_pack("{s:s,s:I,s:I,s:I,s:I}", "origin", id, "ours",
                (json_int_t)ours, "known", (json_int_t)known, "lag_records", (json_int_t)behind,
                "lag_seconds", (json_int_t)behind_s));
        }
    }
    fclose(f);
    double age = (double)time(NULL) - updated;
    json_object_set_new(top, "node", json_string(node));
    json_object_set_new(top, "updated", json_string(when_text(updated, ts)));
    json_object_set_new(top, "stale", json_boolean(age > 5));
    json_object_set_new(top, "peers", peers);
    json_object_set_new(top, "origins", origins);
    if (c->json) {
        print_json(top);
        return 0;
    }
    printf("node %s, status of %s%s\n\n", node, when_text(updated, ts),
           age > 5 ? " (stale: is the node running?)" : "");
    printf("%-12s %-10s %-19s  %-22s %10s %10s  %s\n", "PEER", "STATE", "SINCE", "ADDRESS", "IN",
           "OUT", "THEIR WATERMARKS (at link start)");
    size_t i;
    json_t *v;
    json_array_foreach(peers, i, v) {
        printf("%-12s %-10s %-19s  %-22s %10lld %10lld  %s%s%s\n",
               json_string_value(json_object_get(v, "peer")),
               json_string_value(json_object_get(v, "state")),
               json_string_value(json_object_get(v, "since")),
               json_string_value(json_object_get(v, "address")),
               (long long)json_integer_value(json_object_get(v, "records_in")),
               (long long)json_integer_value(json_object_get(v, "records_out")),
               json_string_value(json_object_get(v, "watermarks")),
               *json_string_value(json_object_get(v, "last_error")) ? "  last error: " : "",
               json_string_value(json_object_get(v, "last_error")));
    }
    printf("\n%-12s %18s %18s %12s %8s\n", "ORIGIN", "OUR SEQ", "HIGHEST KNOWN", "LAG (SEQ)",
           "LAG (S)");
    json_array_foreach(origins, i, v)
        printf("%-12s %18lld %18lld %12lld %8lld\n", json_string_value(json_object_get(v, "origin")),
               (long long)json_integer_value(json_object_get(v, "ours")),
               (long long)json_integer_value(json_object_get(v, "known")),
               (long long)json_integer_value(json_object_get(v, "lag_records")),
               (long long)json_integer_value(json_object_get(v, "lag_seconds")));
    json_decref(top);
    return 0;
}

static int cluster_cmd(cli_t *c)
{
    const char *sub = c->argc > 1 ? c->argv[1] : "";
    if (!strcmp(sub, "digest"))
        return cluster_digest(c);
    return usage_error("unknown cluster command '%s' (status or digest)", sub);
}

int main(int argc, char **argv)
{
    cli_t c = { 0 };
    ovms_store_config_t cfg = { 0 };
    char err[512];
    int rc = parse_args(&c, argc, argv);

    if (rc)
        return rc;
    const char *cmd = c.argv[0];
    if (strcmp(cmd, "owner") && strcmp(cmd, "vehicle") && strcmp(cmd, "provision") &&
        strcmp(cmd, "history") && strcmp(cmd, "cluster"))
        return usage_error("unknown command '%s'", cmd);
    if (!strcmp(cmd, "cluster") && c.argc > 1 && !strcmp(c.argv[1], "status"))
        return cluster_status(&c);      /* the running node's file; no store needed */
    cfg.path = c.db;
    cfg.readonly = !strcmp(cmd, "cluster");
    cfg.node_id = c.node;
    cfg.expire_interval_ms = -1;        /* housekeeping is the server's job */
    if ((rc = ovms_store_open(&c.st, &cfg, err, sizeof err)) < 0)
        return fail("%s", err);
    if (!strcmp(cmd, "owner"))
        rc = owner_cmd(&c);
    else if (!strcmp(cmd, "vehicle"))
        rc = vehicle_cmd(&c);
    else if (!strcmp(cmd, "provision"))
        rc = provision_cmd(&c);
    else if (!strcmp(cmd, "cluster"))
        rc = cluster_cmd(&c);
    else
        rc = history_cmd(&c);
    ovms_store_close(c.st);
    return rc < 0 ? EXIT_FAIL : rc;
}
