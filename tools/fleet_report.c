/*
 * fleet_report.c -- what a fleet run tells people and machines: a summary
 * table, one JSON object on one line (jansson), and plots (gnuplot) of the
 * latency over time and its distribution.
 *
 * Every scenario has one primary measure, so that scripts read the same
 * three fields whatever ran: "sent", "received" and "latency_ms" are
 * deliveries owed to apps and made (relay, cross-node, churn, mixed),
 * commands and their answers (commands), history records and their acks
 * (history), or connection attempts and logins (login-storm, idle). The
 * other measures of the run follow in their own objects.
 */
#include "fleet.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

const fleet_hist_t *fleet_result_primary(const fleet_result_t *r, uint64_t *sent, uint64_t *received)
{
    switch (r->s->kind) {
    case FLEET_LOGIN_STORM:
    case FLEET_IDLE:
        *sent = r->c.connects;
        *received = r->c.logins;
        return &r->login;
    case FLEET_COMMANDS:
        *sent = r->c.cmd_sent;
        *received = r->c.cmd_done;
        return &r->command;
    case FLEET_HISTORY:
        *sent = r->c.hist_sent;
        *received = r->c.hist_acked;
        return &r->history;
    default:
        *sent = r->c.sent;
        *received = r->c.received;
        return &r->relay;
    }
}

double fleet_result_rate(const fleet_result_t *r)
{
    uint64_t sent, received;
    fleet_result_primary(r, &sent, &received);
    double t = r->s->kind == FLEET_IDLE ? r->up_seconds : r->seconds;
    return t > 0 ? (double)received / t : 0;
}

static uint64_t held(const fleet_result_t *r)
{
    return r->c.cars_online + r->c.apps_online;
}

double fleet_result_bytes_per_conn(const fleet_result_t *r)
{
    long grown = 0;
    int known = 0;
    for (int i = 0; i < r->nodes; i++)
        if (r->node[i].pid > 0 && r->node[i].rss_kb0 > 0 && r->node[i].rss_kb1 > 0) {
            grown += r->node[i].rss_kb1 - r->node[i].rss_kb0;
            known++;
        }
    if (!known || !held(r))
        return -1;
    return (double)grown * 1024.0 / (double)held(r);
}

static double server_cpu(const fleet_result_t *r, int *known)
{
    double cpu = 0;
    *known = 0;
    for (int i = 0; i < r->nodes; i++)
        if (r->node[i].pid > 0) {
            cpu += r->node[i].cpu1 - r->node[i].cpu0;
            (*known)++;
        }
    return cpu;
}

/* ---- the table ---------------------------------------------------------------------------- */

static void latency_row(FILE *out, const char *what, const fleet_hist_t *h)
{
    if (!h->count)
        return;
    fprintf(out, "  %-18s p50 %.3f ms   p99 %.3f ms   p99.9 %.3f ms   max %.3f ms   (%llu)\n", what,
            fleet_hist_quantile_ms(h, 0.5), fleet_hist_quantile_ms(h, 0.99),
            fleet_hist_quantile_ms(h, 0.999), fleet_hist_quantile_ms(h, 1.0),
            (unsigned long long)h->count);
}

void fleet_report_table(FILE *out, const fleet_result_t *r)
{
    const fleet_scenario_t *s = r->s;
    const fleet_counts_t *c = &r->c;
    uint64_t sent, received, errors = fleet_counts_errors(c);
    fleet_result_primary(r, &sent, &received);
    fprintf(out, "ovms-fleet %s: %d cars", s->name, s->cars);
    if (s->kind != FLEET_LOGIN_STORM && s->kind != FLEET_HISTORY && s->apps_per_car)
        fprintf(out, " x %d app%s", s->apps_per_car, s->apps_per_car > 1 ? "s" : "");
    fprintf(out, " on %d node%s, %d process%s, %s, %.1f s of load\n", r->nodes, r->nodes > 1 ? "s" : "",
            r->procs, r->procs > 1 ? "es" : "", fleet_scenario_closed_loop(s) ? "closed loop" : "open loop",
            r->seconds);
    fprintf(out, "  %-18s %llu logins, %llu failed, %llu unexpected disconnects; all up in %.2f s\n",
            "connections", (unsigned long long)c->logins, (unsigned long long)c->login_failures,
            (unsigned long long)c->disconnects, r->up_seconds);
    if (c->car_msgs)
        fprintf(out, "  %-18s %llu car messages; %llu deliveries owed, %llu made: %llu lost, %llu "
                "duplicated, %llu misrouted, %llu out of order\n", "relay",
                (unsigned long long)c->car_msgs, (unsigned long long)c->sent,
                (unsigned long long)c->received, (unsigned long long)c->lost,
                (unsigned long long)c->dups, (unsigned long long)c->misrouted,
                (unsigned long long)c->out_of_order);
    if (c->cmd_sent)
        fprintf(out, "  %-18s %llu sent, %llu answered, %llu failed, %llu unanswered, %llu misrouted "
                "reply lines\n", "commands", (unsigned long long)c->cmd_sent,
                (unsigned long long)c->cmd_done, (unsigned long long)c->cmd_failed,
                (unsigned long long)c->cmd_lost, (unsigned long long)c->cmd_misrouted);
    if (c->hist_sent)
        fprintf(out, "  %-18s %llu records sent, %llu acknowledged, %llu unacknowledged\n", "history",
                (unsigned long long)c->hist_sent, (unsigned long long)c->hist_acked,
                (unsigned long long)c->hist_lost);
    if (c->reconnects)
        fprintf(out, "  %-18s %llu planned reconnects (%.0f/s)\n", "churn",
                (unsigned long long)c->reconnects, r->seconds > 0 ? (double)c->reconnects / r->seconds : 0);
    fprintf(out, "  %-18s %.0f /s (%llu of %llu)\n", "rate", fleet_result_rate(r),
            (unsigned long long)received, (unsigned long long)sent);
    latency_row(out, "relay latency", &r->relay);
    latency_row(out, "  of it, sending", &r->send_lag);
    latency_row(out, "command round trip", &r->command);
    latency_row(out, "history ack", &r->history);
    latency_row(out, "login handshake", &r->login);
    double bpc = fleet_result_bytes_per_conn(r);
    if (bpc >= 0)
        fprintf(out, "  %-18s %.0f bytes per connection held (%llu held)\n", "server memory", bpc,
                (unsigned long long)held(r));
    int known;
    double cpu = server_cpu(r, &known);
    if (known && received)
        fprintf(out, "  %-18s %.2f s, %.2f us per %s\n", "server CPU", cpu, cpu * 1e6 / (double)received,
                s->kind == FLEET_LOGIN_STORM || s->kind == FLEET_IDLE ? "login" : "item received");
    uint64_t all = r->cpu_busy + r->cpu_idle + r->cpu_steal;
    if (all)
        fprintf(out, "  %-18s %.0f %% busy, %.0f %% idle, %.0f %% taken by the hypervisor (steal)\n",
                "machine CPU", 100.0 * (double)r->cpu_busy / (double)all, 100.0 * (double)r->cpu_idle / (double)all,
                100.0 * (double)r->cpu_steal / (double)all);
    if (r->error[0])
        fprintf(out, "  %-18s %s\n", "FAILED", r->error);
    else if (errors)
        fprintf(out, "  %-18s %llu errors\n", "FAILED", (unsigned long long)errors);
    else
        fprintf(out, "  %-18s OK: nothing lost, duplicated, misrouted or refused\n", "result");
}

/* ---- JSON -------------------------------------------------------------------------------- */

static json_t *latency_json(const fleet_hist_t *h)
{
    return json_pack("{s:f,s:f,s:f,s:f,s:f,s:I}", "p50", fleet_hist_quantile_ms(h, 0.5), "p99",
                     fleet_hist_quantile_ms(h, 0.99), "p999", fleet_hist_quantile_ms(h, 0.999), "max",
                     fleet_hist_quantile_ms(h, 1.0), "mean", fleet_hist_mean_ms(h), "count",
                     (json_int_t)h->count);
}

#define I(x) ((json_int_t)(x))

char *fleet_report_json(const fleet_result_t *r)
{
    const fleet_scenario_t *s = r->s;
    const fleet_counts_t *c = &r->c;
    uint64_t sent, received;
    const fleet_hist_t *primary = fleet_result_primary(r, &sent, &received);
    json_t *o = json_object();
    json_object_set_new(o, "scenario", json_string(s->name));
    json_object_set_new(o, "ok", json_boolean(!r->error[0] && fleet_counts_errors(c) == 0));
    if (r->error[0])
        json_object_set_new(o, "error", json_string(r->error));
    json_object_set_new(o, "nodes", json_integer(r->nodes));
    json_object_set_new(o, "procs", json_integer(r->procs));
    json_object_set_new(o, "cars", json_integer(s->cars));
    json_object_set_new(o, "apps_per_car", json_integer(s->apps_per_car));
    json_object_set_new(o, "loop", json_string(fleet_scenario_closed_loop(s) ? "closed" : "open"));
    json_object_set_new(o, "rate_per_car", json_real(s->rate));
    json_object_set_new(o, "duration_s", json_real(r->seconds));
    json_object_set_new(o, "up_s", json_real(r->up_seconds));
    json_object_set_new(o, "sent", json_integer(I(sent)));
    json_object_set_new(o, "received", json_integer(I(received)));
    json_object_set_new(o, "lost", json_integer(I(c->lost + c->cmd_lost + c->hist_lost)));
    json_object_set_new(o, "dups", json_integer(I(c->dups)));
    json_object_set_new(o, "misrouted", json_integer(I(c->misrouted + c->cmd_misrouted)));
    json_object_set_new(o, "out_of_order", json_integer(I(c->out_of_order)));
    json_object_set_new(o, "errors", json_integer(I(fleet_counts_errors(c))));
    json_object_set_new(o, "rate_per_s", json_real(fleet_result_rate(r)));
    json_object_set_new(o, "latency_ms", latency_json(primary));
    json_object_set_new(o, "connections", json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}", "logins", I(c->logins),
                        "login_failures", I(c->login_failures), "disconnects", I(c->disconnects),
                        "held", I(held(r)), "reconnects", I(c->reconnects), "login_ms",
                        latency_json(&r->login)));
    json_object_set_new(o, "relay", json_pack("{s:I,s:I,s:I,s:I,s:o,s:o}", "car_messages", I(c->car_msgs),
                        "owed", I(c->sent), "delivered", I(c->received), "lost", I(c->lost),
                        "latency_ms", latency_json(&r->relay), "send_lag_ms", latency_json(&r->send_lag)));
    json_object_set_new(o, "commands", json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}", "sent", I(c->cmd_sent),
                        "answered", I(c->cmd_done), "failed", I(c->cmd_failed), "unanswered", I(c->cmd_lost),
                        "misrouted", I(c->cmd_misrouted), "latency_ms", latency_json(&r->command)));
    json_object_set_new(o, "history", json_pack("{s:I,s:I,s:I,s:o}", "sent", I(c->hist_sent), "acked",
                        I(c->hist_acked), "unacked", I(c->hist_lost), "latency_ms", latency_json(&r->history)));
    int known;
    double cpu = server_cpu(r, &known), bpc = fleet_result_bytes_per_conn(r);
    if (known) {
        json_t *srv = json_object();
        json_object_set_new(srv, "cpu_s", json_real(cpu));
        if (received)
            json_object_set_new(srv, "cpu_us_per_item", json_real(cpu * 1e6 / (double)received));
        if (bpc >= 0)
            json_object_set_new(srv, "bytes_per_conn", json_real(bpc));
        long rss = 0;
        for (int i = 0; i < r->nodes; i++)
            rss += r->node[i].rss_kb1;
        json_object_set_new(srv, "rss_kb", json_integer(rss));
        json_object_set_new(o, "server", srv);
    }
    uint64_t all = r->cpu_busy + r->cpu_idle + r->cpu_steal;
    if (all)
        json_object_set_new(o, "machine", json_pack("{s:f,s:f,s:f}", "busy_pct",
                            100.0 * (double)r->cpu_busy / (double)all, "idle_pct",
                            100.0 * (double)r->cpu_idle / (double)all, "steal_pct",
                            100.0 * (double)r->cpu_steal / (double)all));
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) {
        free(text);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

#undef I

/* ---- plots ------------------------------------------------------------------------------- */

static int write_data(const fleet_result_t *r, const char *dir, char *err, size_t errlen)
{
    char path[700];
    uint64_t sent, received;
    const fleet_hist_t *h = fleet_result_primary(r, &sent, &received);
    snprintf(path, sizeof path, "%s/%s-timeline.dat", dir, r->s->name);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "# t_s sent_per_s received_per_s errors online p50_ms p99_ms max_ms server_rss_kb "
               "machine_busy_pct machine_steal_pct\n");
    for (int i = 0; i < r->nseconds; i++) {
        const fleet_second_t *t = &r->timeline[i];
        fprintf(f, "%.1f %llu %llu %llu %llu %.4f %.4f %.4f %ld %.1f %.1f\n", t->t, (unsigned long long)t->sent,
                (unsigned long long)t->received, (unsigned long long)t->errors,
                (unsigned long long)t->online, t->p50, t->p99, t->max, t->rss_kb, t->busy_pct, t->steal_pct);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/%s-distribution.dat", dir, r->s->name);
    if (!(f = fopen(path, "w"))) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* by percentile, on a scale that spreads the tail: x = 1 / (1 - q) */
    fprintf(f, "# percentile one_over_1_minus_q latency_ms\n");
    static const double qs[] = { 0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995,
                                 0.9999, 0.99999 };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        if (h->count && (double)h->count * (1 - qs[i]) >= 1)
            fprintf(f, "%.3f %.1f %.4f\n", qs[i] * 100, 1 / (1 - qs[i]), fleet_hist_quantile_ms(h, qs[i]));
    fprintf(f, "100 %.1f %.4f\n", (double)h->count, fleet_hist_quantile_ms(h, 1.0));
    fclose(f);
    return 0;
}

static const char *primary_label(const fleet_scenario_t *s)
{
    switch (s->kind) {
    case FLEET_LOGIN_STORM:
    case FLEET_IDLE: return "login handshake (connect to first Z or T)";
    case FLEET_COMMANDS: return "command round trip (app to car to app)";
    case FLEET_HISTORY: return "history acknowledgement (h record to ack)";
    default: return "relay latency (car send, or its due time, to app receive)";
    }
}

int fleet_report_plot(const fleet_result_t *r, const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (write_data(r, dir, err, errlen) < 0)
        return -1;
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        snprintf(err, errlen, "cannot run gnuplot: %s", strerror(errno));
        return -1;
    }
    const char *n = r->s->name, *label = primary_label(r->s);
    fprintf(g, "set terminal pngcairo size 900,520 font ',11'\nset grid\nset key top left\n"
               "set output '%s/%s-latency-time.png'\n"
               "set title \"ovms-fleet %s: %s, each second\"\n"
               "set xlabel 'seconds into the run'\nset ylabel 'ms'\nset logscale y\n"
               "set y2label 'received per second'\nset y2tics\nset ytics nomirror\n"
               "plot '%s/%s-timeline.dat' using 1:($6>0?$6:1/0) with lines title 'p50', "
               "'' using 1:($7>0?$7:1/0) with lines title 'p99', "
               "'' using 1:($8>0?$8:1/0) with lines title 'max', "
               "'' using 1:3 axes x1y2 with lines dashtype 2 title 'received/s'\n",
            dir, n, n, label, dir, n);
    fprintf(g, "unset y2tics\nunset y2label\nset ytics mirror\n"
               "set output '%s/%s-latency-distribution.png'\n"
               "set title \"ovms-fleet %s: %s, by percentile\"\n"
               "set xlabel 'percentile'\nset ylabel 'ms'\nset logscale x\nset logscale y\n"
               "set xtics ('50' 2, '90' 10, '99' 100, '99.9' 1000, '99.99' 10000, '99.999' 100000)\n"
               "plot '%s/%s-distribution.dat' using 2:3 with linespoints title '%s'\n",
            dir, n, n, label, dir, n, n);
    if (r->nseconds && r->timeline[0].rss_kb > 0)
        fprintf(g, "unset logscale x\nunset logscale y\nunset xtics\nset xtics\n"
                   "set output '%s/%s-memory.png'\n"
                   "set title \"ovms-fleet %s: the nodes' resident memory\"\n"
                   "set xlabel 'seconds into the run'\nset ylabel 'MiB'\nset yrange [0:*]\n"
                   "plot '%s/%s-timeline.dat' using 1:($9/1024) with lines title 'RSS, all local nodes'\n",
                dir, n, n, dir, n);
    fprintf(g, "unset logscale x\nunset logscale y\nunset xtics\nset xtics\n"
               "set output '%s/%s-machine.png'\n"
               "set title \"ovms-fleet %s: the machine's CPU each second (node and fleet)\"\n"
               "set xlabel 'seconds into the run'\nset ylabel '%% of all CPUs'\nset yrange [0:100]\n"
               "plot '%s/%s-timeline.dat' using 1:($10>=0?$10:1/0) with lines title 'busy', "
               "'' using 1:($11>=0?$11:1/0) with lines title 'taken by the hypervisor (steal)'\n",
            dir, n, n, dir, n);
    int rc = pclose(g);
    if (rc != 0) {
        snprintf(err, errlen, "gnuplot failed (status %d): is it installed?", WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
        return -1;
    }
    return 0;
}
