/*
 * sync.c -- the records on an up link: what to send the peer, and what to
 * do with what it sends (PROTOCOL, MP-S "Watermarks, exactly-once and no
 * loops").
 *
 * Sending is one loop for resync and live alike: the link knows, per
 * origin, up to which seq the peer holds records (its watermarks from the
 * handshake, then raised by every record sent and every record received
 * from it, since a peer that sends a record of an origin holds that
 * origin's earlier ones). Whenever the store commits (or a write drains),
 * it reads the next records above those marks from the store's bulk
 * reader and sends them in seq order per origin. Reading the tables rather
 * than a queue means a record is only ever sent after it was committed, a
 * peer that was away gets exactly what it lacks, and a record applied from
 * one peer goes on to the others but never back. Reads pause while more
 * than REPL_SEND_HIGH bytes wait to be written, so a slow peer costs a
 * bounded buffer, not memory without end.
 *
 * Receiving: every record is checked (fields, numbers, commas where the
 * protocol forbids them, its seq above the last one of its origin on this
 * link: each link is FIFO per origin) before it joins a batch; a bad one
 * closes the link and nothing of it is applied, the batch before it is.
 * Batches go to the store's writer, which applies the new ones by the merge
 * rule and moves the watermarks in the same transaction. Reading from the
 * socket pauses while REPL_APPLY_INFLIGHT batches are out.
 * Threading: the replication loop only.
 */
#include "repl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sending -------------------------------------------------------------------------------------- */

static void log_read_done(repl_job_t *job);

static void cursors_text(const marks_t *m, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < m->n && at + 60 < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s:%lld", i ? " " : "", m->v[i].origin,
                               (long long)m->v[i].seq);
}

void sync_kick(link_t *l)
{
    char cursors[REPL_MAX_ORIGINS * 56];
    if (l->state != L_UP)
        return;
    if (l->log_reading || l->unsent > REPL_SEND_HIGH) {
        l->log_again = 1;           /* after the read, or when the writes drain */
        return;
    }
    repl_job_t *job = repl_job_new(l, log_read_done);
    if (!job)
        return;                     /* the tick tries again */
    cursors_text(&l->holds, cursors, sizeof cursors);
    ovms_store_prep_changes_after(&job->req, cursors, REPL_READ_BATCH);
    ovms_store_req_bulk(&job->req);
    l->log_reading = 1;
    l->log_again = 0;
    repl_job_submit(job);
}

static void log_read_done(repl_job_t *job)
{
    link_t *l = job->link;
    const ovms_store_rows_t *rows = &job->req.rows;
    int records = 0;

    l->log_reading = 0;
    if (l->state != L_UP)
        return;
    if (job->req.status < 0) {
        repl_log(l->r, 0, "peer %s: cannot read the log: %s", l->peer->conf.id,
                 ovms_strerror(job->req.status));
        l->log_again = 1;           /* the tick tries again */
        return;
    }
    for (int i = 0; i < rows->nrows; i++) {
        const char *origin = ovms_store_cell(rows, i, 0), *rec = ovms_store_cell(rows, i, 2);
        int64_t seq = atoll(ovms_store_cell(rows, i, 1));
        if (rec[0]) {
            link_send_line(l, rec, strlen(rec));
            records++;
        }
        marks_set(&l->holds, origin, seq);     /* sent, or nothing more there */
    }
    l->out += (uint64_t)records;
    __atomic_add_fetch(&l->r->records_out, (uint64_t)records, __ATOMIC_RELAXED);
    link_flush(l);
    if (records >= REPL_READ_BATCH || l->log_again)
        sync_kick(l);
}

/* ---- receiving: checks -------------------------------------------------------------------------- */

static int plain(ovms_str_t s, size_t min, size_t max)
{
    if (s.len < min || s.len > max)
        return 0;
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] == ',' || s.ptr[i] == ' ' || (unsigned char)s.ptr[i] < 0x20)
            return 0;
    return 1;
}

static int number(ovms_str_t s, int64_t min)
{
    int64_t v;
    return ovms_int_parse(s, &v) == 0 && v >= min;
}

static const char *check_rv(const ovms_repl_t *r)
{
    if (!number(r->owner, 0))
        return "owner is not a number";
    if (!plain(r->carpass, 1, 64))
        return "bad car password field";
    if (!ovms_str_eq(r->v_server, "*") && ovms_serverid_check(r->v_server) < 0)
        return "bad v_server";
    if (r->extra.len && !number(r->extra, 1))
        return "too many fields";
    return NULL;
}

static const char *check_ro(const ovms_repl_t *r)
{
    if (!number(r->ownerid, 1))
        return "owner id is not a number";
    if (!plain(r->name, 1, 64) || !plain(r->mail, 0, 128) || !plain(r->pwhash, 0, 128))
        return "bad name, mail or password hash field";
    if (r->status < 0 || r->extra.len)
        return r->extra.len ? "too many fields" : "bad status";
    return NULL;
}

static const char *check_r(const ovms_replmsg_t *m)
{
    if (m->code == 'E')
        return plain(m->ptoken, 1, 64) ? NULL : "bad paranoid token (commas are not allowed there)";
    if (m->code == 'H') {
        if (!plain(m->type, 1, 32) || m->recno < 0)
            return "bad history type or record number";
        return NULL;
    }
    if (m->code <= ' ' || m->code > '~')
        return "bad message code";
    return plain(m->ptoken, 0, 64) ? NULL : "bad paranoid token field";
}

static const char *check_rk(const ovms_repl_t *r)
{
    if (!number(r->ownerid, 1))
        return "owner id is not a number";
    for (size_t i = 0; i < r->tokenhash.len; i++)
        if (!strchr("0123456789abcdef", r->tokenhash.ptr[i]))
            return "bad token hash";
    if (!plain(r->prefix, 8, 8) || r->application.len > 32 || r->purpose.len > 80 ||
        r->permit.len > 255)
        return "bad token prefix, application, purpose or permit";
    for (size_t i = 0; i < r->permit.len; i++)
        if ((unsigned char)r->permit.ptr[i] < 0x20)
            return "bad token permit";
    return NULL;
}

/* Parse and check one record: NULL and its origin and seq, or why it is bad. */
static const char *check_record(const char *rec, size_t len, ovms_change_t *ch, int *is_rw)
{
    ovms_str_t body = { rec + 1, len - 1 };
    const char *why;
    int rc;
    *is_rw = 0;
    if (rec[0] == 'R') {
        ovms_repl_t r;
        if ((rc = ovms_repl_parse(body, &r)) < 0)
            return rc == OVMS_EINVAL ? "a field has a bad value (timestamp, server or vehicle id)"
                                     : ovms_strerror(rc);
        if (r.kind == 'W') {
            *is_rw = 1;
            return NULL;
        }
        if ((why = r.kind == 'V' ? check_rv(&r) : r.kind == 'K' ? check_rk(&r) : check_ro(&r)))
            return why;
        *ch = r.ch;
        return NULL;
    }
    ovms_replmsg_t m;
    if ((rc = ovms_replmsg_parse(body, &m)) < 0)
        return rc == OVMS_EINVAL ? "a field has a bad value (timestamp, server or vehicle id)"
                                 : ovms_strerror(rc);
    if ((why = check_r(&m)))
        return why;
    *ch = m.ch;
    return NULL;
}

/* ---- receiving: batches ------------------------------------------------------------------------- */

static void apply_done(repl_job_t *job)
{
    link_t *l = job->link;
    const ovms_store_rows_t *rows = &job->req.rows;

    l->applying--;
    l->in += (uint64_t)job->req.value;
    __atomic_add_fetch(&l->r->records_in, (uint64_t)job->req.value, __ATOMIC_RELAXED);
    for (int i = 0; job->req.status == 0 && i < rows->nrows; i++)
        repl_log(l->r, strcmp(ovms_store_cell(rows, i, 0), "warn") ? 2 : 1, "peer %s: %s",
                 l->peer->conf.id, ovms_store_cell(rows, i, 1));
    if (job->req.status < 0) {
        /* nothing of the batch was kept: the peer sends it again from our
         * watermarks when the link comes back */
        repl_log(l->r, 0, "peer %s: cannot apply records: %s", l->peer->conf.id,
                 ovms_strerror(job->req.status));
        link_close(l, 1, "the store refused records");
        return;
    }
    if (l->applying < REPL_APPLY_INFLIGHT)
        link_pause(l, 0);
}

void sync_flush(link_t *l)
{
    if (!l->batch_count || l->state != L_UP)
        return;
    repl_job_t *job = repl_job_new(l, apply_done);
    if (!job || ovms_store_prep_apply(&job->req, l->batch, l->batch_len) < 0) {
        link_close(l, 0, "out of memory");
        return;                     /* (the job, if any, is freed when its mail runs) */
    }
    l->batch_len = 0;
    l->batch_count = 0;
    l->applying++;
    repl_job_submit(job);
    if (l->applying >= REPL_APPLY_INFLIGHT)
        link_pause(l, 1);
}

static int batch_add(link_t *l, const char *rec, size_t len)
{
    if (l->batch_len + len + 1 > l->batch_cap) {
        size_t cap = l->batch_cap ? l->batch_cap * 2 : 65536;
        while (cap < l->batch_len + len + 1)
            cap *= 2;
        char *grown = realloc(l->batch, cap);
        if (!grown)
            return OVMS_ENOMEM;
        l->batch = grown;
        l->batch_cap = cap;
    }
    memcpy(l->batch + l->batch_len, rec, len);
    l->batch[l->batch_len + len] = '\n';
    l->batch_len += len + 1;
    l->batch_count++;
    return 0;
}

int sync_record(link_t *l, const char *rec, size_t len)
{
    ovms_change_t ch = { 0 };
    char origin[33], why[160];
    int is_rw;
    const char *bad = check_record(rec, len, &ch, &is_rw);

    if (is_rw)
        return 0;                   /* only the first one means something */
    if (bad) {
        snprintf(why, sizeof why, "bad %s record: %s; nothing of it applied",
                 rec[0] == 'R' ? (len > 1 && rec[1] == 'V' ? "RV" : "RO") : "r", bad);
        sync_flush(l);              /* the good ones before it stand */
        link_close(l, 1, why);
        return -1;
    }
    ovms_str_copy(ch.origin, origin, sizeof origin);
    int64_t last = marks_get(&l->seen, origin), seq = (int64_t)ch.seq;
    if (seq <= last) {
        snprintf(why, sizeof why, "records of origin %s out of order (seq %lld after %lld); "
                 "nothing of it applied", origin, (long long)seq, (long long)last);
        sync_flush(l);
        link_close(l, 1, why);
        return -1;
    }
    if (marks_set(&l->seen, origin, seq) < 0 || batch_add(l, rec, len) < 0) {
        link_close(l, 1, "too many origins, or out of memory");
        return -1;
    }
    marks_set(&l->holds, origin, seq);      /* the peer has it: never send it back */
    if (l->batch_count >= REPL_APPLY_BATCH)
        sync_flush(l);
    return 0;
}

static void caught_up_done(repl_job_t *job)
{
    (void)job;
}

void sync_tick(link_t *l, double now)
{
    int after = l->r->cfg.caught_up_after_s > 0 ? l->r->cfg.caught_up_after_s : 30;
    if (!l->caught_up_sent && now - l->up_since >= after) {
        repl_job_t *job = repl_job_new(l, caught_up_done);
        if (job) {
            ovms_store_prep_own_caught_up(&job->req);
            repl_job_submit(job);
            l->caught_up_sent = 1;
        }
    }
    if (l->log_again)
        sync_kick(l);
}
