/*
 * test_admin.c -- ovms-admin as scripts use it: runs the built binary and
 * checks its output, exit status and what lands in the database.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ovms_store.h"

static char dir[64], db[128];

/* Run ovms-admin with the arguments; returns the exit status, output in out. */
static int admin(char *out, size_t cap, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --db %s %s 2>&1", OVMS_ADMIN_BIN, db, args);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void fresh_db(void)
{
    snprintf(dir, sizeof dir, "/tmp/ovms-admin-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/node.db", dir);
}

Test(admin, the_forms_scripts_rely_on)
{
    char out[8192];
    fresh_db();
    cr_assert_eq(admin(out, sizeof out, "owner add fleet"), 0, "%s", out);
    cr_assert(strstr(out, "owner fleet added"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle add TESTCAR --password NETPASS"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle add othercar --password OTHERPW --owner fleet"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle list --json"), 0, "%s", out);

    json_error_t err;
    json_t *list = json_loads(out, 0, &err);
    cr_assert_not_null(list, "not JSON: %s", out);
    cr_assert_eq(json_array_size(list), 2);
    json_t *first = json_array_get(list, 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "vehicle")), "OTHERCAR");
    cr_assert_str_eq(json_string_value(json_object_get(first, "owner")), "fleet");
    json_t *second = json_array_get(list, 1);
    /* no owner named: one was created after the vehicle */
    cr_assert_str_eq(json_string_value(json_object_get(second, "owner")), "testcar");
    json_decref(list);

    /* the server's view of the same file */
    ovms_store_config_t cfg = { .path = db };
    ovms_store_t *st;
    ovms_vehicle_t v;
    cr_assert_eq(ovms_store_open(&st, &cfg, NULL, 0), 0);
    cr_assert_eq(ovms_store_vehicle_get(st, "TESTCAR", &v), 0);
    cr_assert_str_eq(v.carpass, "NETPASS");
    ovms_store_close(st);
}

Test(admin, every_command)
{
    char out[8192];
    fresh_db();
    cr_assert_eq(admin(out, sizeof out, "owner add alice --mail a@example.org --password pw"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "owner set alice --mail b@example.org"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "--json owner list"), 0);
    cr_assert(strstr(out, "\"mail\": \"b@example.org\""), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle add CAR1 --password p1 --owner alice --type TR"), 0);
    cr_assert_eq(admin(out, sizeof out, "vehicle set-password CAR1 p2"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle set CAR1 --server NODE2"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle list"), 0);
    cr_assert(strstr(out, "CAR1") && strstr(out, "NODE2") && strstr(out, "alice"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "provision add VIN123 --iccid 8944000000000000001 --vehicle car1 --server ovms.example.org"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "--json provision list"), 0);
    cr_assert(strstr(out, "\"apkey\": \"VIN123\""), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "history CAR1"), 0, "%s", out);
    cr_assert(strstr(out, "(none)"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "provision remove VIN123"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "owner remove alice"), 1);
    cr_assert(strstr(out, "still has vehicles"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle remove CAR1"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "owner remove alice"), 0, "%s", out);
    cr_assert_eq(admin(out, sizeof out, "--json vehicle list"), 0);
    cr_assert_str_eq(out, "[]\n");
}

Test(admin, errors_are_clear)
{
    char out[8192];
    fresh_db();
    cr_assert_eq(admin(out, sizeof out, "vehicle add CAR --password x"), 0);
    cr_assert_eq(admin(out, sizeof out, "vehicle add car --password y"), 1);
    cr_assert(strstr(out, "already exists"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle add X,Y --password y"), 1);
    cr_assert(strstr(out, "without spaces or commas"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle add NEW"), 2);
    cr_assert(strstr(out, "--password"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle add NEW --password x --owner ghost"), 1);
    cr_assert(strstr(out, "no owner named ghost"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle remove NOPE"), 1);
    cr_assert_eq(admin(out, sizeof out, "frobnicate"), 2);
    cr_assert_eq(admin(out, sizeof out, "vehicle list --bogus"), 2);
    cr_assert_eq(admin(out, sizeof out, "history GHOST"), 1);
    /* a file that is not a database */
    FILE *f = fopen(db, "w");
    fputs("not a database at all, not even close, really not\n", f);
    fclose(f);
    cr_assert_eq(admin(out, sizeof out, "vehicle list"), 1);
    cr_assert(strstr(out, "not a usable SQLite database"), "%s", out);
}

/* An empty car password would let anyone log in as the car: refused.
 * Short ones work, with a warning. */
Test(admin, empty_car_passwords_are_refused_and_short_ones_warned)
{
    char out[8192];
    fresh_db();
    cr_assert_eq(admin(out, sizeof out, "vehicle add CAR --password ''"), 1, "%s", out);
    cr_assert(strstr(out, "may not be empty"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle list --json"), 0);
    cr_assert_str_eq(out, "[]\n", "the vehicle was added anyway: %s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle add CAR --password abc"), 0, "%s", out);
    cr_assert(strstr(out, "warning: a car password of 3 characters is easy to guess"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle set-password CAR ''"), 1, "%s", out);
    cr_assert(strstr(out, "may not be empty"), "%s", out);
    cr_assert_eq(admin(out, sizeof out, "vehicle set-password CAR longenough"), 0, "%s", out);
    cr_assert_null(strstr(out, "warning"), "%s", out);

    /* and at the storage API, for any other tool */
    ovms_store_req_t req;
    ovms_store_req_init(&req);
    cr_assert_eq(ovms_store_prep_vehicle_put(&req, "CAR2", NULL, "", NULL, NULL, OVMS_STORE_CREATE),
                 OVMS_EINVAL);
    ovms_store_req_cleanup(&req);
}
