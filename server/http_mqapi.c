/*
 * http_mqapi.c -- the Mosquitto authentication hooks of HTTP-API.md §11:
 * /mqapi/auth, /mqapi/superuser and /mqapi/acl, for a broker with an HTTP
 * auth backend, which POSTs a form and reads only the status.
 *
 * Parameters come from a form body (application/x-www-form-urlencoded).
 * An ovmsd extension (§11): a JSON object body (application/json, as
 * mosquitto-go-auth sends in JSON mode) is read too; invalid JSON is a
 * request without the parameters. The answers are the reference's, empty
 * bodies included. A password is the
 * owner's (which grants every right, so also v3 and mqtt); an API token
 * passes when its permit holds v3 or mqtt.
 */
#include "http_auth.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CORS "Access-Control-Allow-Origin: *\r\n"

/* name from a form body, or from a JSON object body; 1 when there. */
static int body_param(const http_req_t *r, const char *name, char *out, size_t cap)
{
    size_t len;
    const char *type = http_header(r, "Content-Type", &len);
    if (!type || len < 16 || strncasecmp(type, "application/json", 16) != 0)
        return http_form_body(r, name, out, cap);
    json_t *j = r->body ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *v = json_is_object(j) ? json_object_get(j, name) : NULL;
    int ok = 0;
    if (json_is_string(v) && json_string_length(v) < cap && !memchr(json_string_value(v), '\0', json_string_length(v))) {
        snprintf(out, cap, "%s", json_string_value(v));
        ok = 1;
    } else if (json_is_integer(v)) {
        snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        ok = 1;
    }
    json_decref(j);
    return ok;
}

static void answer(http_conn_t *c, int status, const char *reason, const char *body)
{
    http_respond(c, status, reason, "text/plain", CORS, body, strlen(body));
}

static void auth_checked(void *arg, int ok, const char *owner, const char *permit)
{
    http_conn_t *c = arg;
    (void)owner;
    if (ok && (http_permits(permit, "v3") || http_permits(permit, "mqtt")))
        answer(c, 200, "Authentication OK", "");
    else
        answer(c, 403, "Authentication FAILED", "");
    http_conn_unref(c);
}

static void auth(http_conn_t *c, const http_req_t *r)
{
    char user[65], pw[129];
    if (!body_param(r, "username", user, sizeof user) || !body_param(r, "password", pw, sizeof pw)) {
        answer(c, 403, "Authentication FAILED", "");
        return;
    }
    http_conn_ref(c);
    http_check_password(c->w, user, pw, auth_checked, c);
}

static void superuser(http_conn_t *c, const http_req_t *r)
{
    const char *su = c->w->cfg->mqtt_superuser;
    char user[65];
    if (!body_param(r, "username", user, sizeof user) || !user[0])
        answer(c, 404, "Username required", "Username required\n");
    else if (!su[0] || strcmp(su, user) != 0)
        answer(c, 403, "Not a superuser", "");
    else
        answer(c, 200, "Is a superuser", "");
}

static void acl(http_conn_t *c, const http_req_t *r)
{
    const char *su = c->w->cfg->mqtt_superuser;
    char user[65], topic[512], prefix[80];
    int have_user = body_param(r, "username", user, sizeof user);
    int have_topic = body_param(r, "topic", topic, sizeof topic);
    if (have_user && su[0] && !strcmp(su, user)) {
        answer(c, 200, "Superuser acl is permitted", "");
        return;
    }
    snprintf(prefix, sizeof prefix, "ovms/%s/", have_user ? user : "");
    if (have_user && user[0] && have_topic && !strncmp(topic, prefix, strlen(prefix)))
        answer(c, 200, "Access granted", "");     /* read and write alike, as the reference (F21) */
    else
        answer(c, 403, "Access denied", "");
}

int http_mqapi(http_conn_t *c, const http_req_t *r, const char *path, size_t plen)
{
    static const struct {
        const char *name;
        void (*fn)(http_conn_t *c, const http_req_t *r);
    } hooks[] = { { "/mqapi/auth", auth }, { "/mqapi/superuser", superuser }, { "/mqapi/acl", acl } };
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++) {
        size_t n = strlen(hooks[i].name);
        if (plen < n || memcmp(path, hooks[i].name, n) != 0 || (plen > n && path[n] != '/'))
            continue;
        if (r->method != HTTP_POST)
            answer(c, 404, "Unrecongised API call", "Unrecognised API call\n");
        else
            hooks[i].fn(c, r);
        return 1;
    }
    return 0;
}
