/*
 * hub_http.c -- HTTP app entries (HTTP-API.md §3.5): a `GET /api/vehicle/<V>`
 * makes its caller an app connection of the vehicle, so the car hears `Z`
 * counting it and sends at its "connected" rate, until the entry goes.
 *
 * An entry lives on the vehicle's home worker, in the vehicle's hub entry,
 * and holds a reference on it. It counts in napps like a TCP app, so every
 * `Z`, `/api/vehicles` count and the state other nodes see (the Redis bus:
 * the vehicle is watched while it has entries) include it. It receives
 * nothing. Keys: "s:<session id>" for a session's, removed when the session
 * ends (the session table tells every worker, hub_http_forget); "o:<owner>"
 * for calls without a cookie, which expires timeout_api seconds after its
 * last GET (a deviation: the reference's shared entry never goes, F5).
 * Entries per vehicle are bounded (HTTP_APPS_MAX): past that, a GET still
 * answers but adds nothing.
 */
#include "server_int.h"

#include <stdlib.h>
#include <string.h>

#define HTTP_APPS_MAX 64

typedef struct http_app {
    struct http_app *next;
    char key[72];
    uint32_t expires;                /* worker clock, seconds; 0: until removed */
} http_app_t;

static void apps_changed(vehicle_t *v)
{
    if (v->car)
        conn_sendf(v->car, "Z%d", hub_apps_total(v));
    nodebus_sync(v);
}

int hub_http_app_add(vehicle_t *v, const char *key, uint32_t expires, int *first)
{
    int n = 0;
    *first = hub_apps_total(v) == 0;
    for (http_app_t *a = v->http_apps; a; a = a->next, n++)
        if (!strcmp(a->key, key)) {
            a->expires = expires;
            apps_changed(v);             /* the reference tells the car on every GET (F22) */
            return 0;
        }
    http_app_t *a = n < HTTP_APPS_MAX ? calloc(1, sizeof *a) : NULL;
    if (!a)
        return -1;
    snprintf(a->key, sizeof a->key, "%s", key);
    a->expires = expires;
    a->next = v->http_apps;
    v->http_apps = a;
    v->napps++;
    hub_ref(v);
    apps_changed(v);
    return 0;
}

/* Remove the entries for which gone(key) holds; 1 when any went. The
 * vehicle may go with its last reference: the caller holds one. */
static int remove_where(vehicle_t *v, int (*gone)(const http_app_t *a, const void *arg), const void *arg)
{
    int removed = 0;
    for (http_app_t **p = &v->http_apps; *p;) {
        http_app_t *a = *p;
        if (!gone(a, arg)) {
            p = &a->next;
            continue;
        }
        *p = a->next;
        free(a);
        v->napps--;
        removed++;
    }
    if (removed)
        apps_changed(v);
    for (int i = 0; i < removed; i++)
        hub_unref(v);
    return removed > 0;
}

static int key_is(const http_app_t *a, const void *key)
{
    return !strcmp(a->key, key);
}

void hub_http_app_remove(vehicle_t *v, const char *key)
{
    hub_ref(v);
    remove_where(v, key_is, key);
    hub_unref(v);
}

static int expired(const http_app_t *a, const void *now)
{
    return a->expires && a->expires <= *(const uint32_t *)now;
}

typedef struct keys {
    const char *const *keys;
    int n;
} keys_t;

static int in_keys(const http_app_t *a, const void *arg)
{
    const keys_t *k = arg;
    for (int i = 0; i < k->n; i++)
        if (!strcmp(a->key, k->keys[i]))
            return 1;
    return 0;
}

static int has_entries(const vehicle_t *v, const void *arg)
{
    (void)arg;
    return v->http_apps != NULL;
}

static void sweep(worker_t *w, int (*gone)(const http_app_t *a, const void *arg), const void *arg)
{
    size_t n;
    vehicle_t **list = hub_collect(w, has_entries, NULL, &n);
    for (size_t i = 0; i < n; i++) {
        remove_where(list[i], gone, arg);
        hub_unref(list[i]);
    }
    free(list);
}

void hub_http_expire(worker_t *w)
{
    uint32_t now = worker_now(w);
    sweep(w, expired, &now);
}

void hub_http_forget(worker_t *w, const char *const *keys, int n)
{
    keys_t k = { keys, n };
    sweep(w, in_keys, &k);
}

static int always(const http_app_t *a, const void *arg)
{
    (void)a;
    (void)arg;
    return 1;
}

void hub_http_drop(vehicle_t *v)
{
    hub_ref(v);
    remove_where(v, always, NULL);
    hub_unref(v);
}

void hub_http_drop_all(worker_t *w)
{
    sweep(w, always, NULL);
}
