/*
 * fleet_stats.c -- latency histograms and counters for ovms-fleet.
 *
 * A run records millions of latencies in several processes, so they go
 * into fixed log-linear buckets rather than a list: constant memory, O(1)
 * per sample, and two histograms add up bucket by bucket (the parent merges
 * its workers' and subtracts the last second's snapshot for the timeline).
 * Below 64 us every microsecond has its bucket; above, 32 buckets per power
 * of two keep every percentile within about 3 % of the true value.
 */
#include "fleet.h"

#include <string.h>
#include <time.h>

uint64_t fleet_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int fleet_hist_bucket(uint64_t us)
{
    if (us < FLEET_HIST_LINEAR)
        return (int)us;
    int e = 63 - __builtin_clzll(us);             /* 6.. */
    int shift = e - 5;                            /* keeps the top 6 bits: 32..63 */
    int sub = (int)(us >> shift) - FLEET_HIST_SUB;
    int b = FLEET_HIST_LINEAR + (e - 6) * FLEET_HIST_SUB + sub;
    return b < FLEET_HIST_BUCKETS ? b : FLEET_HIST_BUCKETS - 1;
}

uint64_t fleet_hist_bucket_value(int b)
{
    if (b < FLEET_HIST_LINEAR)
        return (uint64_t)b;
    int e = (b - FLEET_HIST_LINEAR) / FLEET_HIST_SUB + 6;
    int sub = (b - FLEET_HIST_LINEAR) % FLEET_HIST_SUB;
    uint64_t low = (uint64_t)(FLEET_HIST_SUB + sub) << (e - 5);
    return low + ((1ull << (e - 5)) >> 1);
}

void fleet_hist_add(fleet_hist_t *h, uint64_t us)
{
    h->b[fleet_hist_bucket(us)]++;
    h->count++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

void fleet_hist_merge(fleet_hist_t *into, const fleet_hist_t *from)
{
    for (int i = 0; i < FLEET_HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    into->sum_us += from->sum_us;
    if (from->max_us > into->max_us)
        into->max_us = from->max_us;
}

void fleet_hist_since(fleet_hist_t *out, const fleet_hist_t *now, const fleet_hist_t *before)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < FLEET_HIST_BUCKETS; i++) {
        out->b[i] = now->b[i] - before->b[i];
        out->count += out->b[i];
        if (out->b[i])
            out->max_us = fleet_hist_bucket_value(i);
    }
    out->sum_us = now->sum_us - before->sum_us;
    if (out->max_us > now->max_us)
        out->max_us = now->max_us;
}

double fleet_hist_quantile_ms(const fleet_hist_t *h, double q)
{
    if (!h->count)
        return 0;
    if (q >= 1.0)
        return (double)h->max_us / 1000.0;
    uint64_t rank = (uint64_t)(q * (double)h->count);   /* samples below the answer */
    uint64_t seen = 0;
    for (int i = 0; i < FLEET_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank) {
            uint64_t v = fleet_hist_bucket_value(i);
            return (double)(v < h->max_us ? v : h->max_us) / 1000.0;
        }
    }
    return (double)h->max_us / 1000.0;
}

double fleet_hist_mean_ms(const fleet_hist_t *h)
{
    return h->count ? (double)h->sum_us / (double)h->count / 1000.0 : 0;
}

void fleet_counts_add(fleet_counts_t *into, const fleet_counts_t *from)
{
    uint64_t *a = (uint64_t *)into;
    const uint64_t *b = (const uint64_t *)from;
    for (size_t i = 0; i < FLEET_COUNTS_N; i++)
        a[i] += b[i];
}

uint64_t fleet_counts_errors(const fleet_counts_t *c)
{
    return c->login_failures + c->disconnects + c->lost + c->dups + c->misrouted + c->out_of_order +
           c->cmd_failed + c->cmd_misrouted + c->cmd_lost + c->hist_lost;
}
