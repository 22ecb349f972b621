/*
 * harness.h -- for integration tests: start the real ovmsd (and stop it by
 * PID) on a free loopback port with a fresh database, and talk to it as a
 * car, app or batch client through proto/, byte for byte.
 */
#ifndef OVMS_TEST_HARNESS_H
#define OVMS_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include "ovms_proto.h"
#include "ovms_store.h"

/* The programs under test: the ones this build made, unless the
 * environment names others (the ThreadSanitizer stage runs these tests
 * against an ovmsd and ovms-admin built with TSan). */
const char *harness_bin(const char *env, const char *built);
#define OVMSD_PATH harness_bin("OVMSD_BIN", OVMSD_BIN)
#define OVMS_ADMIN_PATH harness_bin("OVMS_ADMIN_BIN", OVMS_ADMIN_BIN)

typedef struct node {
    pid_t pid;
    int port;
    char id[33];             /* server id; "" means TESTNODE */
    char dir[128];
    char db[192];
    char log[192];
    char conf[192];
} node_t;

/* A free TCP port on 127.0.0.1 (bound and released). */
int harness_free_port(void);
/* A fresh database with TESTCAR/NETPASS and OTHERCAR/OTHERPW (one owner,
 * "owner", login password "ownerpw"). */
void node_prepare(node_t *n);
/* Start ovmsd --db --listen 127.0.0.1:<free port> --workers 2, without
 * login penalties (tests fail logins on purpose), plus args (a printf
 * format, which may turn them on); waits until it accepts connections. */
void node_start(node_t *n, const char *args_fmt, ...);
/* SIGTERM, wait; returns the exit status (-1 if it had to be killed). */
int node_stop(node_t *n);
void node_kill9(node_t *n);
/* Open the node's database (while stopped, or alongside it). */
ovms_store_t *node_store(node_t *n);
/* Run a prepared read on the node's database (opened for it, and closed);
 * the rows stay in req. Returns how many there are. */
int node_rows(node_t *n, ovms_store_req_t *req);
/* Resident memory of the server process, kB. */
long node_rss_kb(node_t *n);
/* Does the server's log contain this text (waiting up to 2 s for it)? */
int node_log_has(node_t *n, const char *text);
/* The same without waiting, for what must not be there. */
int node_log_has_now(node_t *n, const char *text);

typedef struct ssl_st SSL;

typedef struct client {
    int fd;
    SSL *ssl;                /* TLS client, or NULL */
    char role;
    ovms_session_t session;
    ovms_linesplit_t ls;
    char tail[OVMS_CLIENT_LINE_MAX + 2];
    char inbuf[65536];
    size_t inlen, inpos;
    int closed;
    char msg[OVMS_CLIENT_LINE_MAX + 8];   /* the last message received */
} client_t;

/* TCP connect; the test fails if it cannot. */
void client_connect(client_t *c, int port);
/* The same from a given loopback address (127.0.0.0/8), e.g. "127.0.0.7". */
void client_connect_from(client_t *c, int port, const char *source);
/* The same to another loopback address than 127.0.0.1 (a deploy/cluster.sh node). */
void client_connect_host(client_t *c, const char *host, int port, const char *source);
/* TCP connect and a TLS handshake (certificates are not checked). */
void client_connect_tls(client_t *c, int port);
/* A self-signed certificate and key for localhost in dir (cert.pem, key.pem). */
void make_test_certificate(const char *dir);
/* Scheme 0 login over an already connected client. */
int client_login_on(client_t *c, char role, const char *vehicle, const char *password);
/* Scheme 0 login; returns 0, or -1 if the server closed without a welcome. */
int client_login(client_t *c, int port, char role, const char *vehicle, const char *password);
/* Login and check the burst: returns the Z value (apps and batch read to T). */
int client_login_ok(client_t *c, int port, char role, const char *vehicle, const char *password);
void client_send(client_t *c, const char *msg);
void client_sendf(client_t *c, const char *fmt, ...);
void client_send_raw(client_t *c, const char *bytes, size_t len);
/* Next raw line (without terminator) or NULL on timeout/close. */
const char *client_recv_line(client_t *c, int timeout_ms, size_t *len);
/* Next decrypted message (code + payload) or NULL on timeout/close. */
const char *client_recv(client_t *c, int timeout_ms);
/* Wait for a message equal to want (others skipped); 1 found, 0 not. */
int client_expect(client_t *c, const char *want, int timeout_ms);
/* Wait for a message starting with prefix; returns it or NULL. */
const char *client_expect_prefix(client_t *c, const char *prefix, int timeout_ms);
/* 1 if nothing arrives (other than messages starting with ignore, if given). */
int client_silent(client_t *c, int ms, const char *ignore);
/* 1 if the server closed the connection within ms. */
int client_wait_closed(client_t *c, int ms);
void client_close(client_t *c);
/* Send a C31/C32 and read its reply to the end: the lines, joined by '\n',
 * into out; their number (0 and the error line in out for "cNN,1,..."). */
int client_read_reply(client_t *app, const char *cmd, char *out, size_t cap);

/* ---- clusters (replication) ---- */

/* A node named id with an empty database (no vehicles), or with the
 * fixtures of node_prepare when fixtures is 1. */
void cluster_node_prepare(node_t *n, const char *id, int fixtures);
/* Start nodes[0..count-1] with peers along the topology: "mesh" (every
 * pair, both dialing), "chain" (i - i+1), "ring" (a chain closed), "star"
 * (0 - each other). The later node of each pair dials the earlier one;
 * secrets are per pair. extra: more flags for every node. */
void cluster_start(node_t *nodes, int count, const char *topology, const char *extra);
/* The --peer flags node i gets in that topology (for restarting one). */
void cluster_peer_flags(node_t *nodes, int count, const char *topology, int i, char *out, size_t cap);
/* `ovms-admin --db <db> cluster digest`, while the node runs or not. */
void node_digest(node_t *n, char *out, size_t cap);
/* Wait until every node prints the same digest; 1 when they do. */
int cluster_converged(node_t *nodes, int count, int timeout_ms);
/* Run ovms-admin on the node's database; its exit status. */
int node_admin(node_t *n, const char *args_fmt, ...) __attribute__((format(printf, 2, 3)));
/* redis-server on 127.0.0.1:port (no persistence), started and stopped by PID. */
pid_t redis_start(int port);
void redis_stop(pid_t pid);
/* Log in as an MP-S peer: 0 and the RW greeting in c->msg, or -1. */
int peer_login(client_t *c, int port, const char *id, const char *secret, const char *marks);


#endif
