/*
 * groups.c -- groups (PROTOCOL 6.8), the one channel across vehicles and
 * owners: a car's g updates its entry in a group and reaches every app
 * subscribed to that group, whichever worker the app is on; G subscribes
 * an app and sends it the current entries. All in memory.
 *
 * One registry under one mutex: groups are rare (rallies, fleet maps), and
 * the lock is held only to copy what must be sent. Deliveries to apps on
 * other workers go through their mailboxes.
 * Threading: any worker.
 */
#include "server_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct member {
    char vehicle[33];
    char *data;
} member_t;

typedef struct subscriber {
    int worker;
    uint64_t conn;
} subscriber_t;

typedef struct group {
    struct group *next;
    char name[65];
    member_t *m;
    int nm, mcap;
    subscriber_t *s;
    int ns, scap;
} group_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static group_t *groups;

void groups_init(void)
{
}

static int group_name(ovms_str_t id, char out[65])
{
    if (id.len == 0 || id.len >= 65)
        return -1;
    for (size_t i = 0; i < id.len; i++)
        out[i] = (char)toupper((unsigned char)id.ptr[i]);
    out[id.len] = '\0';
    return 0;
}

/* Caller holds mu. */
static group_t *find_group(const char *name, int create)
{
    for (group_t *g = groups; g; g = g->next)
        if (!strcmp(g->name, name))
            return g;
    if (!create)
        return NULL;
    group_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    g->next = groups;
    groups = g;
    return g;
}

static int grow(void **arr, int *cap, int n, size_t size)
{
    if (n < *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 4;
    void *grown = realloc(*arr, (size_t)ncap * size);
    if (!grown)
        return -1;
    *arr = grown;
    *cap = ncap;
    return 0;
}

static void send_to(server_t *srv, worker_t *here, const subscriber_t *s, const char *msg, size_t len)
{
    if (s->worker == here->index) {
        conn_t *c = worker_find_conn(here, s->conn);
        if (c && c->state == CS_ACTIVE)
            conn_send(c, msg, len);
        return;
    }
    deliver_t *d = malloc(sizeof *d + len);
    if (!d)
        return;
    d->mail.type = MAIL_DELIVER;
    d->conn_id = s->conn;
    d->len = len;
    memcpy(d->msg, msg, len);
    if (worker_post(&srv->workers[s->worker], &d->mail) < 0)
        free(d);
}

void groups_update(conn_t *car, ovms_str_t payload)
{
    ovms_group_t gu;
    char name[65], msg[OVMS_LINE_MAX + 128];
    subscriber_t *subs = NULL;
    int ns = 0;

    if (ovms_group_parse_car(payload, &gu) < 0 || group_name(gu.group, name) < 0)
        return;
    int n = ovms_group_format_relay(car->vehicle->id, name, gu.data.ptr ? gu.data : OVMS_STR(""),
                                    msg, sizeof msg);
    if (n < 0)
        return;
    pthread_mutex_lock(&mu);
    group_t *g = find_group(name, 1);
    if (g) {
        int i;
        for (i = 0; i < g->nm && strcmp(g->m[i].vehicle, car->vehicle->id); i++)
            ;
        char *data = strndup(gu.data.ptr ? gu.data.ptr : "", gu.data.len);
        if (data && (i < g->nm || grow((void **)&g->m, &g->mcap, g->nm, sizeof *g->m) == 0)) {
            if (i == g->nm) {
                snprintf(g->m[i].vehicle, sizeof g->m[i].vehicle, "%s", car->vehicle->id);
                g->m[i].data = NULL;
                g->nm++;
            }
            free(g->m[i].data);
            g->m[i].data = data;
        } else {
            free(data);
        }
        if (g->ns && (subs = malloc((size_t)g->ns * sizeof *subs))) {
            memcpy(subs, g->s, (size_t)g->ns * sizeof *subs);
            ns = g->ns;
        }
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < ns; i++)
        send_to(car->w->srv, car->w, &subs[i], msg, (size_t)n);
    free(subs);
}

void groups_subscribe(conn_t *c, ovms_str_t payload)
{
    ovms_groupsub_t gs;
    char name[65], **lines = NULL;
    int nlines = 0;

    if (ovms_groupsub_parse(payload, &gs) < 0 || group_name(gs.group, name) < 0)
        return;
    pthread_mutex_lock(&mu);
    group_t *g = find_group(name, c->role == 'A');
    if (g && c->role == 'A') {
        int i;
        for (i = 0; i < g->ns; i++)
            if (g->s[i].worker == c->w->index && g->s[i].conn == c->id)
                break;
        if (i == g->ns && grow((void **)&g->s, &g->scap, g->ns, sizeof *g->s) == 0) {
            g->s[g->ns++] = (subscriber_t){ c->w->index, c->id };
            c->flags |= CF_GROUPS;
        }
    }
    if (g && g->nm && (lines = calloc((size_t)g->nm, sizeof *lines))) {
        for (int i = 0; i < g->nm; i++) {
            char msg[OVMS_LINE_MAX + 128];
            if (ovms_group_format_relay(g->m[i].vehicle, name, ovms_str_c(g->m[i].data), msg,
                                        sizeof msg) > 0)
                lines[nlines++] = strdup(msg);
        }
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nlines; i++) {
        if (lines[i])
            conn_send(c, lines[i], strlen(lines[i]));
        free(lines[i]);
    }
    free(lines);
}

void groups_car_gone(const char *vehicle)
{
    pthread_mutex_lock(&mu);
    for (group_t *g = groups; g; g = g->next)
        for (int i = 0; i < g->nm; i++)
            if (!strcmp(g->m[i].vehicle, vehicle)) {
                free(g->m[i].data);
                g->m[i] = g->m[--g->nm];
                break;
            }
    pthread_mutex_unlock(&mu);
}

void groups_conn_gone(conn_t *c)
{
    pthread_mutex_lock(&mu);
    for (group_t *g = groups; g; g = g->next)
        for (int i = 0; i < g->ns; i++)
            if (g->s[i].worker == c->w->index && g->s[i].conn == c->id) {
                g->s[i] = g->s[--g->ns];
                break;
            }
    pthread_mutex_unlock(&mu);
}
