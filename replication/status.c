/*
 * status.c -- the node's view of its cluster, written once a second to a
 * small text file next to the database, which `ovms-admin cluster status`
 * reads (a second process cannot ask the running node otherwise, and a
 * file also tells when the node last wrote it).
 *
 * Lines (space separated, one fact each):
 *   updated <unix seconds>
 *   node <server id>
 *   peer <id> <state> <since> <address|-> <records in> <records out> <their watermarks|-> <last error|->
 *   origin <id> <our seq> <highest seq known> <records behind> <seconds behind>
 * "Highest known" is the most a peer advertised or sent for that origin;
 * "seconds behind" counts from when we first saw ourselves behind it.
 * The file is replaced with a rename, so a reader never sees half of it.
 * Threading: the replication loop only.
 */
#include "repl_int.h"

#include <stdio.h>
#include <string.h>

typedef struct lag {
    char origin[33];
    int64_t known;
    double behind_since;
} lag_t;

static lag_t lags[REPL_MAX_ORIGINS];
static int nlags;

static lag_t *lag_of(const char *origin)
{
    for (int i = 0; i < nlags; i++)
        if (!strcmp(lags[i].origin, origin))
            return &lags[i];
    if (nlags == REPL_MAX_ORIGINS)
        return NULL;
    lag_t *l = &lags[nlags++];
    snprintf(l->origin, sizeof l->origin, "%.32s", origin);
    return l;
}

static void note_known(const char *origin, int64_t seq)
{
    lag_t *l = lag_of(origin);
    if (l && seq > l->known)
        l->known = seq;
}

static void write_peer(FILE *f, const peer_t *p, double wall)
{
    const link_t *l = p->link ? p->link : p->dialing;
    fprintf(f, "peer %s %s %.0f %s %llu %llu ", p->conf.id,
            p->link ? "up" : l ? link_state_name(l) : "down", p->since ? p->since : wall,
            p->conf.host[0] ? (l ? l->addr : p->conf.host) : (l ? l->addr : "-"),
            (unsigned long long)(l ? l->in : 0), (unsigned long long)(l ? l->out : 0));
    for (int i = 0; i < p->nadv; i++)
        fprintf(f, "%s%s:%lld", i ? "," : "", p->adv_origin[i], (long long)p->advertised[i]);
    fprintf(f, "%s ", p->nadv ? "" : "-");
    if (p->last_error[0] && !p->link) {
        for (const char *c = p->last_error; *c; c++)
            fputc(*c == ' ' ? '_' : *c, f);
        fputc('\n', f);
    } else {
        fputs("-\n", f);
    }
}

void status_write(ovms_replication_t *r)
{
    char tmp[1100];
    double wall = repl_wall();
    ovms_store_wm_t ours[REPL_MAX_ORIGINS];

    if (!r->cfg.status_path)
        return;
    for (int i = 0; i < r->npeers; i++) {
        const peer_t *p = &r->peers[i];
        for (int k = 0; k < p->nadv; k++)
            note_known(p->adv_origin[k], p->advertised[k]);
        if (p->link)
            for (int k = 0; k < p->link->seen.n; k++)
                note_known(p->link->seen.v[k].origin, p->link->seen.v[k].seq);
    }
    int n = ovms_store_watermarks(r->cfg.store, ours, REPL_MAX_ORIGINS);
    snprintf(tmp, sizeof tmp, "%s.tmp", r->cfg.status_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "updated %.0f\nnode %s\n", wall, r->server_id);
    for (int i = 0; i < r->npeers; i++)
        write_peer(f, &r->peers[i], wall);
    for (int i = 0; i < n; i++)
        note_known(ours[i].origin, 0);
    for (int i = 0; i < nlags; i++) {
        lag_t *l = &lags[i];
        int64_t mine = 0;
        for (int k = 0; k < n; k++)
            if (!strcmp(ours[k].origin, l->origin))
                mine = ours[k].seq;
        if (!strcmp(l->origin, r->server_id)) {
            mine = ovms_store_own_seq(r->cfg.store);    /* our own: nothing to wait for */
            mine = l->known > mine ? l->known : mine;
        }
        int64_t behind = l->known > mine ? l->known - mine : 0;
        if (!behind)
            l->behind_since = 0;
        else if (!l->behind_since)
            l->behind_since = wall;
        fprintf(f, "origin %s %lld %lld %lld %.0f\n", l->origin, (long long)mine,
                (long long)(l->known > mine ? l->known : mine), (long long)behind,
                behind ? wall - l->behind_since : 0.0);
    }
    if (fclose(f) == 0)
        rename(tmp, r->cfg.status_path);
}
