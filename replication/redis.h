/*
 * redis.h -- internal to replication/ (and its tests): one Redis connection
 * on a libuv loop. hiredis formats the commands and parses the replies; the
 * socket, the buffers, the timers and the reconnects are ours, so a
 * connect failure, a Redis restart or a stall is handled like any other
 * connection of the node (the Debian hiredis 0.14 libuv adapter loses
 * connect failures).
 *
 * Every command gets its callback exactly once: with the reply, or with
 * NULL when the connection went away before the reply came (so nothing a
 * caller waits for is silently lost). Output is gathered and written once
 * per loop turn (pipelining without waiting). A connection that goes down
 * is opened again with jittered exponential backoff (100 ms doubling to
 * max_backoff_ms) for ever; `on_state` says when it is up (after AUTH and
 * SELECT) and when it went down, once each.
 * Threading: the loop's thread only.
 */
#ifndef OVMS_REPL_REDIS_H
#define OVMS_REPL_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <uv.h>

typedef struct repl_redis repl_redis_t;

/* reply: NULL when the connection failed first; owned by the library. */
typedef void (*repl_redis_reply_cb)(repl_redis_t *rc, redisReply *reply, void *arg);

typedef struct repl_redis_conf {
    char address[300];          /* "HOST:PORT" or "unix:PATH" */
    char password[129];         /* AUTH when not empty */
    int db;                     /* SELECT when not 0 */
    int max_backoff_ms;         /* 0: 5000 */
    int timeout_ms;             /* a reply later than this fails the connection; 0: 5000 */
    void (*on_state)(repl_redis_t *rc, int up, const char *why, void *ctx);
    /* pub/sub: messages that are not replies (subscribe mode); may be NULL */
    void (*on_push)(repl_redis_t *rc, redisReply *msg, void *ctx);
    void *ctx;
} repl_redis_conf_t;

/* Start connecting; 0, or OVMS_EINVAL for a bad address, OVMS_ENOMEM. */
int repl_redis_open(repl_redis_t **out, uv_loop_t *loop, const repl_redis_conf_t *conf);
/* Fail what is pending (callbacks with NULL), close; freed once the handles
 * have closed (run the loop). */
void repl_redis_close(repl_redis_t *rc);
int repl_redis_up(const repl_redis_t *rc);

/* Queue a command (printf-like, hiredis format: %s %b %d ...) or one given
 * as arguments. cb may be NULL. While the connection is down the command
 * fails at once (cb with NULL) rather than waiting: callers that must not
 * lose it have their own retry or reply. 0 or OVMS_ECLOSED/OVMS_ENOMEM. */
int repl_redis_command(repl_redis_t *rc, repl_redis_reply_cb cb, void *arg, const char *fmt, ...);
int repl_redis_argv(repl_redis_t *rc, repl_redis_reply_cb cb, void *arg, int argc,
                    const char **argv, const size_t *lens);
/* A command whose replies come as pushes (SUBSCRIBE, UNSUBSCRIBE, ...): no
 * callback is queued for it; its confirmations reach on_push. */
int repl_redis_push_command(repl_redis_t *rc, int argc, const char **argv, const size_t *lens);

/* Figures: commands sent, replies received, connects, bytes queued now. */
typedef struct repl_redis_stats {
    unsigned long long commands, replies, connects;
    size_t queued;
} repl_redis_stats_t;
void repl_redis_get_stats(const repl_redis_t *rc, repl_redis_stats_t *out);

#endif
