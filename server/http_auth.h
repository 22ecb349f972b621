/*
 * http_auth.h -- the HTTP API's sessions, rate limit and credential checks
 * (http_auth.c), node-wide and safe from any worker.
 */
#ifndef OVMS_HTTP_AUTH_H
#define OVMS_HTTP_AUTH_H

#include "http_int.h"

typedef struct http_state http_state_t;

int http_state_init(server_t *srv);
void http_state_free(server_t *srv);
/* Once a second, from one worker: expiry, and the rate limit's minute. */
void http_state_tick(server_t *srv, const ovms_config_t *cfg);

/* A refused request is held before its 429 (delta 1: 1 when this address
 * holds fewer than 8; delta -1: its answer went or its connection closed). */
int http_rate_hold(server_t *srv, const peer_t *from, int delta);
/* 1 when a request from this address may run now (§4). */
int http_rate_allows(server_t *srv, const ovms_config_t *cfg, const peer_t *from);

/* Sessions: on this node, and with Redis on every node (http_auth.c). */
int http_session_new(worker_t *w, const char *owner, const char *permit, char id[37]);
/* 1 and who when this node knows the session (its expiry slides); 0 when
 * it does not and there is no Redis; 2 when only Redis can say: then
 * http_session_fetch. */
int http_session_use(worker_t *w, const char *id, http_who_t *who);
/* done(arg, found) on w's loop, who filled when found. */
void http_session_fetch(worker_t *w, const char *id, http_who_t *who, void (*done)(void *arg, int found),
                        void *arg);
void http_session_delete(worker_t *w, const char *id);

/* A permission string grants right ("*" grants all; §3.3). */
int http_permits(const char *permit, const char *right);
/* ... and every right of want ("*" only by "*": §14 S5). */
int http_permits_all(const char *have, const char *want);

/* done(arg, ok, owner, permit) runs once, on w's loop: at once for an API
 * token of the user or a pair verified a moment ago, else after the
 * password hash on the thread pool. permit: "*" for a password, the
 * token's permit for a token. */
typedef void (*http_checked_cb)(void *arg, int ok, const char *owner, const char *permit);
void http_check_password(worker_t *w, const char *user, const char *password, http_checked_cb done,
                         void *arg);

/* 1 when secret is an API token of user (of any owner when user is NULL):
 * owner and permit filled, its lastused noted. No hashing work: a table
 * lookup (HTTP, v2 scheme 1 and /mqapi alike, §3.2). */
int http_token_login(worker_t *w, const char *user, const char *secret, char owner[65],
                     char permit[256]);

#endif
