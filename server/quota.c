/*
 * quota.c -- per-vehicle budgets for the writes a client can make the node
 * do (docs/operations.md, "Limits and quotas"): history records from the
 * car (h, H), stored notifications (P), push subscriptions (p), and the
 * records the node keeps itself (the log history of messages and server
 * log lines). Each is a token bucket: `burst` at once, refilled at `rate`.
 * What happens when one is empty is the caller's decision: h and H pause
 * reading from the car (nothing is lost), the others are not stored.
 *
 * A bucket is kept as its debt (tokens used and not yet refilled), so a
 * zeroed vehicle entry has full buckets. A vehicle entry whose buckets are
 * not full yet outlives its last connection (hub.c), so reconnecting does
 * not refill a budget. Time is the worker's clock in 1/64 s.
 * Threading: the vehicle's home worker.
 */
#include "server_int.h"

static uint32_t ticks(const worker_t *w)
{
    return (uint32_t)(uv_now(&w->loop) * 64 / 1000);   /* wraps after two years */
}

static void limits(const ovms_config_t *cfg, int kind, double *per_second, double *burst)
{
    switch (kind) {
    case QUOTA_HISTORY:
        *per_second = cfg->history_per_minute / 60.0;
        *burst = cfg->history_burst;
        break;
    case QUOTA_NOTIFY:
        *per_second = cfg->notifications_per_minute / 60.0;
        *burst = cfg->notification_burst;
        break;
    case QUOTA_PUSHSUB:
        *per_second = cfg->push_subscriptions_per_hour / 3600.0;
        *burst = cfg->push_subscription_burst;
        break;
    default:
        *per_second = cfg->server_history_per_minute / 60.0;
        *burst = cfg->server_history_burst;
        break;
    }
}

/* The bucket's debt now, after refilling. */
static double debt(vehicle_t *v, int kind, double *burst)
{
    bucket_t *b = &v->quota[kind];
    double per_second;
    uint32_t now = ticks(v->w);
    limits(v->w->cfg, kind, &per_second, burst);
    double paid = per_second * (double)(uint32_t)(now - b->at) / 64.0;
    b->used = b->used > paid ? (float)(b->used - paid) : 0;
    b->at = now;
    return b->used;
}

int quota_take(vehicle_t *v, int kind)
{
    double burst;
    if (debt(v, kind, &burst) + 1 > burst)
        return 0;
    v->quota[kind].used += 1;
    return 1;
}

int quota_available(vehicle_t *v, int kind)
{
    double burst;
    return debt(v, kind, &burst) + 1 <= burst;
}

int quota_settled(vehicle_t *v)
{
    double burst;
    for (int k = 0; k < QUOTA_KINDS; k++)
        if (v->quota[k].used > 0 && debt(v, k, &burst) > 0)
            return 0;
    return 1;
}
