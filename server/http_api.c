/*
 * http_api.c -- the /api dispatcher of HTTP-API.md §2.2-§2.3 and its
 * endpoints.
 *
 * A request goes: rate limit (§4, every path), routing by the first path
 * segment (the rest are arguments), credentials (§3.1: the session cookie,
 * else username and password (or API token) from the URL query or an
 * Authorization: Basic header, or a token alone as Authorization: Bearer),
 * rights, then the handler. Answers carry the reference's reason
 * phrases, typos included ("Unrecongised"), and Access-Control-Allow-Origin.
 *
 * What a vehicle's connections are is known only to its home worker (the
 * hub shard), so an endpoint that reports them sends a call_t from worker
 * to worker; each fills in the vehicles it homes, and the last hands the
 * call back to the connection's worker, which answers. No lock is taken on
 * the hub.
 */
#include "http_auth.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CORS "Access-Control-Allow-Origin: *\r\n"

typedef void (*api_fn)(api_req_t *a);

struct route {
    int method;
    const char *name;
    const char *right;               /* NULL: authenticated is enough */
    api_fn fn;
};

/* ---- answers ------------------------------------------------------------------------------------- */

static void text(http_conn_t *c, int status, const char *reason, const char *body)
{
    http_respond(c, status, reason, "text/plain", CORS, body, strlen(body));
}

void api_text(api_req_t *a, int status, const char *reason, const char *body)
{
    text(a->c, status, reason, body);
}

void api_json(api_req_t *a, int status, const char *reason, json_t *j, const char *headers)
{
    api_json_flags(a, status, reason, j, headers, 0);
}

/* JSON as the reference prints it (§5): compact, keys sorted, then a newline. Takes j. */
char *api_json_text(json_t *j, size_t flags, size_t *len)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | flags) : NULL;
    json_decref(j);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *body = realloc(s, n + 2);
    if (!body) {
        free(s);
        return NULL;
    }
    body[n] = '\n';
    body[n + 1] = '\0';
    *len = n + 1;
    return body;
}

void api_json_body(api_req_t *a, int status, const char *reason, const char *body, size_t len,
                   const char *headers)
{
    char h[512];
    snprintf(h, sizeof h, CORS "%s", headers ? headers : "");
    http_respond(a->c, status, reason, "application/json", h, body, len);
}

void api_json_flags(api_req_t *a, int status, const char *reason, json_t *j, const char *headers, size_t flags)
{
    size_t len = 0;
    char *body = api_json_text(j, flags, &len);
    if (!body) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        return;
    }
    api_json_body(a, status, reason, body, len, headers);
    free(body);
}

void api_done(api_req_t *a)
{
    http_conn_unref(a->c);
    free(a);
}

/* ---- parameters ------------------------------------------------------------------------------------ */

static void url_query(const http_req_t *r, const char **q, size_t *qlen)
{
    const char *mark = memchr(r->head, '?', r->url_len);
    *q = mark ? mark + 1 : r->head + r->url_len;
    *qlen = mark ? (size_t)(r->head + r->url_len - mark - 1) : 0;
}

int api_query(api_req_t *a, const char *name, char *out, size_t cap)
{
    const char *q;
    size_t qlen;
    url_query(a->r, &q, &qlen);
    return http_form_get(q, qlen, name, out, cap);
}

/* ---- credentials (§3.1) ---------------------------------------------------------------------------- */

/* username and password: the URL query first, then Authorization: Basic. */
static int given_password(const http_req_t *r, char *user, size_t ucap, char *pw, size_t pcap)
{
    const char *q;
    size_t qlen, len;
    url_query(r, &q, &qlen);
    if (http_form_get(q, qlen, "username", user, ucap) && http_form_get(q, qlen, "password", pw, pcap))
        return 1;
    const char *v = http_header(r, "Authorization", &len);
    uint8_t plain[400];
    if (!v || len < 7 || strncasecmp(v, "Basic ", 6) != 0)
        return 0;
    int n = ovms_b64_decode(v + 6, len - 6, plain, sizeof plain - 1);
    if (n <= 0)
        return 0;
    plain[n] = '\0';
    char *colon = strchr((char *)plain, ':');
    if (!colon || (size_t)(colon - (char *)plain) >= ucap || strlen(colon + 1) >= pcap)
        return 0;
    size_t ulen = (size_t)(colon - (char *)plain), plen = strlen(colon + 1);
    memcpy(user, plain, ulen);
    user[ulen] = '\0';
    memcpy(pw, colon + 1, plen + 1);
    OPENSSL_cleanse(plain, sizeof plain);
    return 1;
}

static void run_route(api_req_t *a)
{
    if (!strcmp(a->who.permit, "none")) {
        api_text(a, 401, "Unauthorized", "Authentication failed\n");
    } else if (a->route->right && !http_permits(a->who.permit, a->route->right) &&
               !(!strcmp(a->route->right, "token.admin") && http_permits(a->who.permit, "admin"))) {
        api_text(a, 403, "Forbidden", "Insufficient rights\n");
    } else {
        a->route->fn(a);
        return;                          /* the handler finishes a */
    }
    api_done(a);
}

static void password_checked(void *arg, int ok, const char *owner, const char *permit)
{
    api_req_t *a = arg;
    if (!ok || a->c->closing) {
        if (!a->c->closing)
            api_text(a, 401, "Unauthorized", "Authentication failed\n");
        api_done(a);
        return;
    }
    snprintf(a->who.owner, sizeof a->who.owner, "%s", owner);
    snprintf(a->who.permit, sizeof a->who.permit, "%s", permit);
    run_route(a);
}

/* Authorization: Bearer <token> (an extension, §3.1): the token alone. */
static int given_bearer(const http_req_t *r, char token[OVMS_TOKEN_HEX + 1])
{
    size_t len;
    const char *v = http_header(r, "Authorization", &len);
    if (!v || len != 7 + OVMS_TOKEN_HEX || strncasecmp(v, "Bearer ", 7) != 0)
        return 0;
    memcpy(token, v + 7, OVMS_TOKEN_HEX);
    token[OVMS_TOKEN_HEX] = '\0';
    return 1;
}

/* No (valid) cookie: a token or a password. */
static void authenticate_credentials(api_req_t *a)
{
    char user[65], pw[129];
    if (given_bearer(a->r, pw)) {
        if (http_token_login(a->c->w, NULL, pw, a->who.owner, a->who.permit)) {
            run_route(a);
        } else {
            api_text(a, 401, "Unauthorized", "Authentication failed\n");
            api_done(a);
        }
        OPENSSL_cleanse(pw, sizeof pw);
        return;
    }
    if (!given_password(a->r, user, sizeof user, pw, sizeof pw)) {
        api_text(a, 401, "Unauthorized", "Authentication failed\n");
        api_done(a);
        return;
    }
    http_check_password(a->c->w, user, pw, password_checked, a);
    OPENSSL_cleanse(pw, sizeof pw);
}

static void session_fetched(void *arg, int found)
{
    api_req_t *a = arg;
    if (a->c->closing)
        api_done(a);
    else if (found)
        run_route(a);
    else
        authenticate_credentials(a);     /* an unknown or ended session is ignored (§3.1) */
}

static void authenticate(api_req_t *a)
{
    char id[37];
    if (http_cookie_session(a->r, id)) {
        int rc = http_session_use(a->c->w, id, &a->who);
        if (rc == 1) {
            run_route(a);
            return;
        }
        if (rc == 2) {
            http_session_fetch(a->c->w, id, &a->who, session_fetched, a);
            return;
        }
    }
    authenticate_credentials(a);
}

/* ---- sessions: /api/cookie (§6.1, §6.2) ---------------------------------------------------------------- */

static void cookie_get(api_req_t *a)
{
    char id[37], headers[256];
    if (a->who.session[0])
        http_session_delete(a->c->w, a->who.session);     /* the new one inherits who it was */
    if (http_session_new(a->c->w, a->who.owner, a->who.permit, id) < 0) {
        api_text(a, 503, "Service Unavailable", "Too many sessions\n");
    } else {
        snprintf(headers, sizeof headers, "Set-Cookie: ovmsapisession=%s; Path=/; HttpOnly%s\r\n", id,
                 a->c->https ? "; Secure" : "");
        char h[512];
        snprintf(h, sizeof h, CORS "%s", headers);
        http_respond(a->c, 200, "Ok", "text/plain", h, "Login ok\n", 9);
    }
    api_done(a);
}

static void cookie_delete(api_req_t *a)
{
    if (a->who.session[0])
        http_session_delete(a->c->w, a->who.session);
    api_text(a, 200, "Ok", "Logout ok\n");
    api_done(a);
}

/* ---- connection counts from the home workers ------------------------------------------------------------ */

typedef struct count {
    char id[33];
    int car, apps, batch;
    int watched;                     /* the totals include the other nodes already */
} count_t;

typedef struct counts_call {
    call_t call;
    worker_t *origin;
    int next;                        /* the next worker to visit */
    api_req_t *a;                    /* touched on origin only */
    int (*finish)(struct counts_call *k);     /* 1: done with k (else it frees k itself) */
    int pending;                     /* Redis lookups out (finish) */
    int n;
    count_t v[];
} counts_call_t;

static void count_homed(worker_t *w, counts_call_t *k)
{
    for (int i = 0; i < k->n; i++) {
        if (worker_home(w->srv, k->v[i].id) != w)
            continue;
        vehicle_t *v = hub_find(w, k->v[i].id);
        if (!v)
            continue;
        /* watched: the others' states are known here; else only ours, and Redis says the rest */
        k->v[i].watched = v->watched;
        k->v[i].car = v->watched ? hub_car_anywhere(v) : v->car != NULL;
        k->v[i].apps = v->watched ? hub_apps_total(v) : v->napps;
        link_each(pos, &v->clients)
            k->v[i].batch += container_of(pos, conn_t, vlink)->role == 'B';
    }
}

static void counts_run(worker_t *w, call_t *m)
{
    counts_call_t *k = (counts_call_t *)m;
    if (!w) {                        /* a worker stopped on the way: the node is going down */
        free(k);
        return;
    }
    server_t *srv = w->srv;
    if (k->next < srv->nworkers && &srv->workers[k->next] == w) {
        count_homed(w, k);
        k->next++;
    }
    worker_t *to = k->next < srv->nworkers ? &srv->workers[k->next] : k->origin;
    if (to == w) {
        if (k->next < srv->nworkers) {
            counts_run(w, m);
            return;
        }
        if (k->finish(k))
            free(k);
        return;
    }
    if (worker_post(to, &k->call.mail) < 0)
        mail_dispose(srv, &k->call.mail);
}

/* Count the connections of ids (space separated), then finish(k) on a's worker. */
static void counts_start(api_req_t *a, const char *ids, int (*finish)(counts_call_t *k))
{
    int n = 0;
    for (const char *p = ids; *p; p++)
        n += (p == ids || p[-1] == ' ') && *p != ' ';
    counts_call_t *k = calloc(1, sizeof *k + (size_t)n * sizeof(count_t));
    if (!k) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        api_done(a);
        return;
    }
    k->call.mail.type = MAIL_CALL;
    k->call.run = counts_run;
    k->origin = a->c->w;
    k->a = a;
    k->finish = finish;
    const char *p = ids;
    while (*p && k->n < n) {
        size_t len = strcspn(p, " ");
        if (len && len < sizeof k->v[0].id)
            snprintf(k->v[k->n++].id, sizeof k->v[0].id, "%.*s", (int)len, p);
        p += len;
        while (*p == ' ')
            p++;
    }
    counts_run(a->c->w, &k->call);
}

/* ---- vehicles (§7.1) ------------------------------------------------------------------------------------------ */

static void vehicles_reply(counts_call_t *k)
{
    api_req_t *a = k->a;
    json_t *list = json_array();
    for (int i = 0; list && i < k->n; i++)
        json_array_append_new(list, json_pack("{s:s,s:i,s:i,s:i}", "id", k->v[i].id, "v_net_connected",
                                              k->v[i].car, "v_apps_connected", k->v[i].apps,
                                              "v_btcs_connected", k->v[i].batch));
    api_json(a, 200, "Ok", list, NULL);
    api_done(a);
}

typedef struct remote_ask {
    counts_call_t *k;
    int i;
} remote_ask_t;

static void remote_counted(void *ctx, int apps, int car)
{
    remote_ask_t *q = ctx;
    counts_call_t *k = q->k;
    k->v[q->i].apps += apps;
    k->v[q->i].car |= car;
    free(q);
    if (--k->pending == 0) {
        vehicles_reply(k);
        free(k);
    }
}

/* Vehicles not watched here: the other nodes' counts from Redis, then the answer. */
static int vehicles_answer(counts_call_t *k)
{
    worker_t *w = k->origin;
    k->pending = 1;                  /* held while asking */
    for (int i = 0; w->bus && i < k->n; i++) {
        remote_ask_t *q = k->v[i].watched ? NULL : calloc(1, sizeof *q);
        if (!q)
            continue;
        q->k = k;
        q->i = i;
        k->pending++;
        if (nodebus_remote_counts(w, k->v[i].id, remote_counted, q) < 0) {
            k->pending--;
            free(q);
        }
    }
    if (--k->pending > 0)
        return 0;                    /* the last lookup answers and frees k */
    vehicles_reply(k);
    return 1;
}

static void vehicles_get(api_req_t *a)
{
    server_t *srv = a->c->w->srv;
    ovms_owner_t owner;
    char ids[8192];
    if (ovms_store_owner_get(srv->store, a->who.owner, &owner) < 0 ||
        ovms_store_owner_vehicles(srv->store, owner.id, ids, sizeof ids) < 0)
        ids[0] = '\0';
    counts_start(a, ids, vehicles_answer);
}

static void command_endpoint(api_req_t *a)
{
    api_command(a, a->route->name);
}

/* ---- routing ------------------------------------------------------------------------------------------------------ */

static const route_t ROUTES[] = {
    { HTTP_GET, "cookie", "session", cookie_get },
    { HTTP_DELETE, "cookie", "session", cookie_delete },
    { HTTP_GET, "token", "token.admin", api_token_get },
    { HTTP_POST, "token", "token.admin", api_token_post },
    { HTTP_DELETE, "token", "token.admin", api_token_delete },
    { HTTP_GET, "vehicles", NULL, vehicles_get },
    { HTTP_GET, "vehicle", NULL, api_vehicle_get },
    { HTTP_DELETE, "vehicle", NULL, api_vehicle_delete },
    { HTTP_GET, "protocol", NULL, api_protocol_get },
    { HTTP_GET, "status", NULL, api_status_get },
    { HTTP_GET, "tpms", NULL, api_tpms_get },
    { HTTP_GET, "location", NULL, api_location_get },
    { HTTP_GET, "charge", NULL, api_charge_get },
    { HTTP_GET, "historical", NULL, api_historical_get },
    { HTTP_GET, "lock", NULL, api_lock_get },
    { HTTP_GET, "valet", NULL, api_valet_get },
    /* car commands (§9, an extension): their right is checked with ownership */
    { HTTP_PUT, "charge", NULL, command_endpoint },   { HTTP_DELETE, "charge", NULL, command_endpoint },
    { HTTP_PUT, "lock", NULL, command_endpoint },     { HTTP_DELETE, "lock", NULL, command_endpoint },
    { HTTP_PUT, "valet", NULL, command_endpoint },    { HTTP_DELETE, "valet", NULL, command_endpoint },
    { HTTP_GET, "features", NULL, command_endpoint }, { HTTP_PUT, "features", NULL, command_endpoint },
    { HTTP_PUT, "feature", NULL, command_endpoint },  { HTTP_GET, "parameters", NULL, command_endpoint },
    { HTTP_PUT, "parameters", NULL, command_endpoint }, { HTTP_PUT, "parameter", NULL, command_endpoint },
    { HTTP_PUT, "reset", NULL, command_endpoint },    { HTTP_PUT, "homelink", NULL, command_endpoint },
    { HTTP_POST, "command", NULL, command_endpoint },
};

/* "/api" or "/api/...": the segments after it, undecoded, into name and args. */
static const route_t *route_of(const http_req_t *r, const char *path, size_t plen, api_req_t *a)
{
    const char *p = path + 4, *end = path + plen;
    char seg[3][128] = { "", "", "" };
    for (int i = 0; i < 3 && p < end; i++) {
        p++;                                             /* the '/' */
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        if (http_url_decode(p, (size_t)(stop - p), seg[i], sizeof seg[i]) < 0)
            seg[i][0] = '\0';
        p = stop;
    }
    memcpy(a->args[0], seg[1], sizeof a->args[0]);
    memcpy(a->args[1], seg[2], sizeof a->args[1]);
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++)
        if (ROUTES[i].method == r->method && !strcmp(ROUTES[i].name, seg[0]))
            return &ROUTES[i];
    return NULL;
}

static void api(http_conn_t *c, http_req_t *r, const char *path, size_t plen)
{
    if (r->method == HTTP_OPTIONS) {     /* CORS preflight (an extension: §2.3) */
        static const char h[] = CORS "Access-Control-Allow-Methods: GET, PUT, POST, DELETE\r\n"
                                "Access-Control-Allow-Headers: Content-Type, Authorization\r\n"
                                "Access-Control-Max-Age: 600\r\n";
        http_respond(c, 204, "No Content", NULL, h, "", 0);
        return;
    }
    api_req_t *a = calloc(1, sizeof *a);
    if (!a) {
        text(c, 500, "Internal Server Error", "Internal error\n");
        return;
    }
    a->c = c;
    a->r = r;
    http_conn_ref(c);
    if (!(a->route = route_of(r, path, plen, a))) {
        api_text(a, 404, "Unrecongised API call", "Unrecognised API call\n");
        api_done(a);
        return;
    }
    authenticate(a);
}

static void rejected(uv_timer_t *t)
{
    http_conn_t *c = t->data;
    if (c->rl_held)
        http_rate_hold(c->w->srv, &c->peer, -1);
    c->rl_held = 0;
    http_respond(c, 429, "Too many requests", NULL, CORS "Retry-After: 60\r\n", "", 0);
}

void http_api_handle(http_conn_t *c, http_req_t *r)
{
    const ovms_config_t *cfg = c->w->cfg;
    const char *q = memchr(r->head, '?', r->url_len);
    size_t plen = q ? (size_t)(q - r->head) : r->url_len;
    const char *path = r->head;

    if (!http_rate_allows(c->w->srv, cfg, &c->peer)) {
        if (cfg->rl_delay > 0 && http_rate_hold(c->w->srv, &c->peer, 1)) {
            /* held, as the reference does (at most 8 per address); the deadline timer waits */
            c->rl_held = 1;
            uv_timer_start(&c->timer, rejected, (uint64_t)cfg->rl_delay * 1000, 0);
            c->close_after = 1;
        } else {
            http_respond(c, 429, "Too many requests", NULL, CORS "Retry-After: 60\r\n", "", 0);
        }
        return;
    }
    if (plen >= 4 && !memcmp(path, "/api", 4) && (plen == 4 || path[4] == '/'))
        api(c, r, path, plen);
    else if (http_mqapi(c, r, path, plen) || metrics_answer(c, r, path, plen) || http_file(c, r))
        ;
    else if (r->method == HTTP_OPTIONS)
        http_respond(c, 501, "not implemented", "text/plain", "Allow: GET,PUT,POST,DELETE\r\n",
                     "501 not implemented\n", 20);
    else
        text(c, 404, "not found", "not found\n");
}
