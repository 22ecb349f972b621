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
 * The same facts are kept as Prometheus text for the node's /metrics
 * (ovms_replication_metrics), a snapshot taken under a lock.
 * Threading: the replication loop, except ovms_replication_metrics (any).
 */
#include "repl_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static char *metrics_text;           /* the last snapshot, or NULL */

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

/* One family per call (Prometheus wants a family's lines together). */
static void metrics_peers(FILE *m, const ovms_replication_t *r, int what)
{
    static const char *const fam[3][3] = {
        { "ovms_replication_peer_up", "gauge", "1 when the MP-S link to the peer is up." },
        { "ovms_replication_records_received_total", "counter", "Records received on the current link." },
        { "ovms_replication_records_sent_total", "counter", "Records sent on the current link." },
    };
    fprintf(m, "# HELP %s %s\n# TYPE %s %s\n", fam[what][0], fam[what][2], fam[what][0], fam[what][1]);
    for (int i = 0; i < r->npeers; i++) {
        const peer_t *p = &r->peers[i];
        const link_t *l = p->link ? p->link : p->dialing;
        unsigned long long v = what == 0 ? (p->link != NULL) : !l ? 0 : what == 1 ? l->in : l->out;
        fprintf(m, "%s{peer=\"%s\"} %llu\n", fam[what][0], p->conf.id, v);
    }
}

static void metrics_publish(char *text)
{
    pthread_mutex_lock(&metrics_mu);
    free(metrics_text);
    metrics_text = text;
    pthread_mutex_unlock(&metrics_mu);
}

void ovms_replication_metrics(char *buf, size_t cap)
{
    pthread_mutex_lock(&metrics_mu);
    snprintf(buf, cap, "%s", metrics_text ? metrics_text : "");
    pthread_mutex_unlock(&metrics_mu);
}

void status_write(ovms_replication_t *r)
{
    char tmp[1100], *mtext = NULL;
    size_t mlen = 0;
    double wall = repl_wall();
    ovms_store_wm_t ours[REPL_MAX_ORIGINS];
    FILE *m = open_memstream(&mtext, &mlen);

    for (int k = 0; m && k < 3; k++)
        metrics_peers(m, r, k);
    for (int i = 0; i < r->npeers; i++) {
        const peer_t *p = &r->peers[i];
        for (int k = 0; k < p->nadv; k++)
            note_known(p->adv_origin[k], p->advertised[k]);
        if (p->link)
            for (int k = 0; k < p->link->seen.n; k++)
                note_known(p->link->seen.v[k].origin, p->link->seen.v[k].seq);
    }
    int n = ovms_store_watermarks(r->cfg.store, ours, REPL_MAX_ORIGINS);
    FILE *f = NULL;
    if (r->cfg.status_path) {
        snprintf(tmp, sizeof tmp, "%s.tmp", r->cfg.status_path);
        f = fopen(tmp, "w");
    }
    if (f) {
        fprintf(f, "updated %.0f\nnode %s\n", wall, r->server_id);
        for (int i = 0; i < r->npeers; i++)
            write_peer(f, &r->peers[i], wall);
    }
    for (int i = 0; i < n; i++)
        note_known(ours[i].origin, 0);
    int64_t behind_of[REPL_MAX_ORIGINS];
    double secs_of[REPL_MAX_ORIGINS];
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
        if (f)
            fprintf(f, "origin %s %lld %lld %lld %.0f\n", l->origin, (long long)mine,
                    (long long)(l->known > mine ? l->known : mine), (long long)behind,
                    behind ? wall - l->behind_since : 0.0);
        behind_of[i] = behind;
        secs_of[i] = behind ? wall - l->behind_since : 0.0;
    }
    if (m) {
        fputs("# HELP ovms_replication_behind_records Records of the origin known to exist and not yet held here.\n"
              "# TYPE ovms_replication_behind_records gauge\n", m);
        for (int i = 0; i < nlags; i++)
            fprintf(m, "ovms_replication_behind_records{origin=\"%s\"} %lld\n", lags[i].origin,
                    (long long)behind_of[i]);
        fputs("# HELP ovms_replication_behind_seconds How long this node has been behind the origin.\n"
              "# TYPE ovms_replication_behind_seconds gauge\n", m);
        for (int i = 0; i < nlags; i++)
            fprintf(m, "ovms_replication_behind_seconds{origin=\"%s\"} %.0f\n", lags[i].origin, secs_of[i]);
    }
    if (f && fclose(f) == 0)
        rename(tmp, r->cfg.status_path);
    if (m && fclose(m) == 0)
        metrics_publish(mtext);
    else
        free(mtext);
}
