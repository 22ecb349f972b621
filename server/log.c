/*
 * log.c -- one line per event on stderr, in a form grep and journald like:
 *
 *   2026-11-25T16:14:31Z info  #4201 C TESTCAR 127.0.0.1:53211 car logged in
 *
 * level, connection id, role, vehicle and peer address, then the text.
 * Under systemd (JOURNAL_STREAM set) the time stamp is left to journald and
 * the line starts with the syslog priority prefix "<3>".."<7>" instead.
 * Threading: any thread; each line is one write(2), so lines never mix.
 */
#include "server_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ovms_log_level = OVMS_LOG_INFO;
static int journald;

void log_init(void)
{
    journald = getenv("JOURNAL_STREAM") != NULL;
}

void log_line(ovms_log_level_t level, const conn_t *c, const char *fmt, ...)
{
    static const char *names[] = { "error", "warn ", "info ", "debug" };
    static const int prio[] = { 3, 4, 6, 7 };
    char line[2048];
    size_t n = 0;
    va_list ap;

    if (!log_enabled(level))
        return;
    if (journald) {
        n += (size_t)snprintf(line, sizeof line, "<%d>", prio[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n += strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ ", &tm);
    }
    n += (size_t)snprintf(line + n, sizeof line - n, "%s ", names[level]);
    if (c && n < sizeof line) {
        char peer[64];
        n += (size_t)snprintf(line + n, sizeof line - n, "#%llu %c %s %s ",
                              (unsigned long long)c->id, c->role ? c->role : '-',
                              conn_vehicle_id(c), conn_peer_text(c, peer, sizeof peer));
    }
    if (n < sizeof line) {
        va_start(ap, fmt);
        int k = vsnprintf(line + n, sizeof line - n, fmt, ap);
        va_end(ap);
        n += k > 0 ? (size_t)k : 0;
    }
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}
