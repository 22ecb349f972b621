/*
 * log.c -- one line per event on stderr, in a form grep and journald like:
 *
 *   2026-11-25T16:14:31Z info  #4201 C TESTCAR 127.0.0.1:53211 car logged in
 *
 * level, connection id, role, vehicle and peer address, then the text.
 * Under systemd (JOURNAL_STREAM set) the time stamp is left to journald and
 * the line starts with the syslog priority prefix "<3>".."<7>" instead.
 *
 * Logging never blocks a worker. A line is formatted by the thread that
 * logs it and copied into a bounded ring (LOG_RING bytes); a thread of its
 * own writes the ring to stderr with blocking writes, so a full pipe or a
 * stuck journald stalls only that thread. When the ring is full, lines are
 * dropped and counted, and the writer says how many once it catches up.
 *
 * Repeated events that a client can cause at will (failed logins from one
 * address, refused connections, notifications) go through log_limited: at
 * most LOG_REPEAT_BURST lines per (kind, subject) in a LOG_REPEAT_WINDOW,
 * then one line saying how many more there were. The table of recent keys
 * has a fixed size, so a flood of distinct subjects costs no memory either.
 * Threading: any thread; the ring and the repeat table have their own locks.
 */
#include "server_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_RING (256 * 1024)
#define LOG_LINE_MAX 2048
#define LOG_REPEAT_SLOTS 512
#define LOG_REPEAT_WINDOW 60          /* seconds */
#define LOG_REPEAT_BURST 3

int ovms_log_level = OVMS_LOG_INFO;
static int journald;

static const char *const level_names[] = { "error", "warn ", "info ", "debug" };
static const int level_prio[] = { 3, 4, 6, 7 };

/* ---- the ring and its writer thread -------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char buf[LOG_RING];
    size_t head, len;                 /* bytes waiting: buf[head .. head + len) mod LOG_RING */
    uint64_t dropped;
    int running, stop;
    pthread_t thread;
} ring = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(STDERR_FILENO, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;                   /* nowhere left to report it */
        p += k;
        n -= (size_t)k;
    }
}

static void ring_put(const char *line, size_t n)
{
    pthread_mutex_lock(&ring.mu);
    if (!ring.running) {
        pthread_mutex_unlock(&ring.mu);
        write_all(line, n);           /* before start or after the end: write it straight */
        return;
    }
    if (LOG_RING - ring.len < n) {
        ring.dropped++;
    } else {
        size_t tail = (ring.head + ring.len) % LOG_RING, first = LOG_RING - tail;
        if (first > n)
            first = n;
        memcpy(ring.buf + tail, line, first);
        memcpy(ring.buf, line + first, n - first);
        if (ring.len == 0)
            pthread_cond_signal(&ring.cv);
        ring.len += n;
    }
    pthread_mutex_unlock(&ring.mu);
}

static size_t format_prefix(char *line, size_t cap, ovms_log_level_t level)
{
    size_t n;
    if (journald) {
        n = (size_t)snprintf(line, cap, "<%d>", level_prio[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, cap, "%Y-%m-%dT%H:%M:%SZ ", &tm);
    }
    return n + (size_t)snprintf(line + n, cap - n, "%s ", level_names[level]);
}

/* A line of the logger's own (drops, repeat summaries), written by the writer thread. */
static void own_line(ovms_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void own_line(ovms_log_level_t level, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;
    size_t n = format_prefix(line, sizeof line, level);
    va_start(ap, fmt);
    int k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    n += k > 0 ? (size_t)k : 0;
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    write_all(line, n);
}

static void flush_repeats(int all);

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "ovmsd-log");   /* for top -H, perf */
    pthread_mutex_lock(&ring.mu);
    for (;;) {
        while (ring.len == 0 && !ring.dropped && !ring.stop) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;        /* wake once a second for repeat summaries */
            if (pthread_cond_timedwait(&ring.cv, &ring.mu, &until) == ETIMEDOUT) {
                pthread_mutex_unlock(&ring.mu);
                flush_repeats(0);
                pthread_mutex_lock(&ring.mu);
            }
        }
        if (ring.len == 0 && ring.stop)
            break;
        size_t n = ring.len, first = LOG_RING - ring.head;
        if (first > n)
            first = n;
        uint64_t dropped = ring.dropped;
        ring.dropped = 0;
        pthread_mutex_unlock(&ring.mu);
        write_all(ring.buf + ring.head, first);       /* only this thread reads the bytes */
        if (dropped)
            own_line(OVMS_LOG_WARN, "log: %llu lines dropped (stderr could not keep up)",
                     (unsigned long long)dropped);
        pthread_mutex_lock(&ring.mu);
        ring.head = (ring.head + first) % LOG_RING;
        ring.len -= first;
    }
    pthread_mutex_unlock(&ring.mu);
    return NULL;
}

void log_init(void)
{
    journald = getenv("JOURNAL_STREAM") != NULL;
    pthread_mutex_lock(&ring.mu);
    ring.stop = 0;
    ring.running = pthread_create(&ring.thread, NULL, writer_main, NULL) == 0;
    pthread_mutex_unlock(&ring.mu);
}

void log_shutdown(void)
{
    struct timespec until;
    flush_repeats(1);
    pthread_mutex_lock(&ring.mu);
    if (!ring.running) {
        pthread_mutex_unlock(&ring.mu);
        return;
    }
    ring.stop = 1;
    pthread_cond_signal(&ring.cv);
    pthread_mutex_unlock(&ring.mu);
    /* a stuck stderr must not keep the node from exiting */
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    if (pthread_timedjoin_np(ring.thread, NULL, &until) != 0) {
        pthread_detach(ring.thread);
        return;                       /* the ring stays: its thread may still read it */
    }
    pthread_mutex_lock(&ring.mu);
    ring.running = 0;
    pthread_mutex_unlock(&ring.mu);
}

/* ---- lines ------------------------------------------------------------------------ */

static void vlog_line(ovms_log_level_t level, const conn_t *c, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t n = format_prefix(line, sizeof line, level);

    if (c && n < sizeof line) {
        char peer[64];
        n += (size_t)snprintf(line + n, sizeof line - n, "#%llu %c %s %s ",
                              (unsigned long long)c->id, c->role ? c->role : '-',
                              conn_vehicle_id(c), conn_peer_text(c, peer, sizeof peer));
    }
    if (n < sizeof line) {
        int k = vsnprintf(line + n, sizeof line - n, fmt, ap);
        n += k > 0 ? (size_t)k : 0;
    }
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    ring_put(line, n);
}

void log_line(ovms_log_level_t level, const conn_t *c, const char *fmt, ...)
{
    va_list ap;
    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog_line(level, c, fmt, ap);
    va_end(ap);
}

/* ---- repeated events ------------------------------------------------------------------ */

typedef struct repeat {
    uint64_t key;
    int64_t window_start;             /* monotonic seconds */
    uint32_t count, suppressed;
    uint8_t level;
    char what[96];                    /* "<kind> (<subject>)", for the summary */
} repeat_t;

static pthread_mutex_t repeat_mu = PTHREAD_MUTEX_INITIALIZER;
static repeat_t repeats[LOG_REPEAT_SLOTS];

static int64_t mono_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static void summary_line(const repeat_t *r)
{
    char line[LOG_LINE_MAX];
    size_t n = format_prefix(line, sizeof line, (ovms_log_level_t)r->level);
    n += (size_t)snprintf(line + n, sizeof line - n, "%s: %u more in the last %d s\n", r->what,
                          r->suppressed, LOG_REPEAT_WINDOW);
    ring_put(line, n < sizeof line ? n : sizeof line - 1);
}

/* Summaries of windows that have ended (or all of them, at shutdown). */
static void flush_repeats(int all)
{
    int64_t now = mono_secs();
    pthread_mutex_lock(&repeat_mu);
    for (int i = 0; i < LOG_REPEAT_SLOTS; i++) {
        repeat_t *r = &repeats[i];
        if (r->suppressed && (all || now - r->window_start >= LOG_REPEAT_WINDOW)) {
            summary_line(r);
            r->suppressed = 0;
        }
    }
    pthread_mutex_unlock(&repeat_mu);
}

/* Is this occurrence one to write out? Counts it either way. */
static int repeat_admit(ovms_log_level_t level, const char *kind, const char *subject)
{
    uint64_t key = hash_str(kind) ^ (hash_str(subject) * 0x9e3779b97f4a7c15u);
    int64_t now = mono_secs();
    int admit;

    pthread_mutex_lock(&repeat_mu);
    repeat_t *r = &repeats[key % LOG_REPEAT_SLOTS];
    if (r->key != key || now - r->window_start >= LOG_REPEAT_WINDOW) {
        if (r->suppressed)
            summary_line(r);          /* the slot's previous owner says its last word */
        r->key = key;
        r->window_start = now;
        r->count = r->suppressed = 0;
        r->level = (uint8_t)level;
        snprintf(r->what, sizeof r->what, "%s (%s)", kind, subject);
    }
    admit = r->count++ < LOG_REPEAT_BURST;
    if (!admit)
        r->suppressed++;
    pthread_mutex_unlock(&repeat_mu);
    return admit;
}

void log_limited(ovms_log_level_t level, const conn_t *c, const char *kind, const char *subject,
                 const char *fmt, ...)
{
    va_list ap;
    if (!log_enabled(level) || !repeat_admit(level, kind, subject))
        return;
    va_start(ap, fmt);
    vlog_line(level, c, fmt, ap);
    va_end(ap);
}
