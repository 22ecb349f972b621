/*
 * login.c -- the first lines of a connection (PROTOCOL 2): scheme 0 and
 * scheme 1 logins, AP-C auto-provisioning, and the handoff of a logged-in
 * connection to its vehicle's home worker.
 *
 * Anything a server must refuse is closed without a reply, as cars expect
 * (a V3 car stops retrying after an authentication close). The server
 * welcome travels with the connection and is written together with the
 * first message (Z), one write for both. The socket itself moves as a
 * dup'ed fd: the old handle closes, the new worker opens the copy.
 * Threading: login_line and login_hand_over on the accepting worker;
 * login_arrive on the home worker; the scheme 1 password check runs on the
 * libuv thread pool.
 */
#include "http_auth.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- failed-authentication alerts (PROTOCOL 2.4.2) ------------------------------------ */

/* failed: a car's digest did not match; else a car logged in. The owner is
 * alerted on the first failure and on the first success after failures. */
static void auth_alert(conn_t *c, const char *vehicle, int failed)
{
    server_t *srv = c->w->srv;
    int alert = 0;

    pthread_mutex_lock(&srv->auth_mu);
    size_t i;
    for (i = 0; i < srv->nauth_failed; i++)
        if (!strcmp(srv->auth_failed[i], vehicle))
            break;
    int known = i < srv->nauth_failed;
    if (failed && !known) {
        char (*grown)[33] = realloc(srv->auth_failed, (srv->nauth_failed + 1) * sizeof *grown);
        if (grown) {
            srv->auth_failed = grown;
            snprintf(srv->auth_failed[srv->nauth_failed++], 33, "%s", vehicle);
            alert = 1;
        }
    } else if (!failed && known) {
        srv->auth_failed[i][0] = '\0';
        memmove(&srv->auth_failed[i], &srv->auth_failed[i + 1],
                (srv->nauth_failed - i - 1) * sizeof *srv->auth_failed);
        srv->nauth_failed--;
        alert = 1;
    }
    pthread_mutex_unlock(&srv->auth_mu);
    if (alert) {
        char text[128], peer[64];
        snprintf(text, sizeof text, "Vehicle authentication %s (%s)",
                 failed ? "failed" : "successful", conn_peer_text(c, peer, sizeof peer));
        push_notify(c->w, vehicle, 0, 'A', text);
    }
}

/* ---- moving to the home worker ------------------------------------------------------------ */

static void begin_move(conn_t *c, const ovms_vehicle_t *rec)
{
    handoff_t *ho = calloc(1, sizeof *ho);
    if (!ho) {
        conn_close(c, "out of memory");
        return;
    }
    ho->mail.type = MAIL_HANDOFF;
    ho->fd = -1;
    ho->id = c->id;
    ho->role = c->role;
    ho->scheme = c->scheme;
    ho->apc_done = (c->flags & CF_APC_DONE) != 0;
    ho->session = c->session;
    snprintf(ho->vehicle, sizeof ho->vehicle, "%s", rec->id);
    ho->identity = ovms_store_vehicle_identity(rec);
    ho->peer = c->peer;
    ho->welcome_rx = c->welcome_rx;
    ho->welcome_tx = c->welcome_tx;
    ho->tls = c->tls;            /* the TLS state goes with the socket */
    c->tls = NULL;
    ho->ws = c->ws;              /* and so does a WebSocket's */
    c->ws = NULL;
    c->moving = ho;
    c->state = CS_MOVING;
    conn_authenticated(c);
    guard_success(c->w->srv->guard, &c->peer, rec->id);
}

/* Join the vehicle's hub entry on this (its home) worker and go live. */
static void attach(conn_t *c, const char *vehicle, uint64_t identity, uint16_t welcome_rx,
                   uint16_t welcome_tx)
{
    vehicle_t *v = hub_get(c->w, vehicle, identity);

    if (!v) {
        conn_close(c, "vehicle removed or changed during login");
        return;
    }
    c->vehicle = v;
    hub_ref(v);
    c->state = CS_ACTIVE;
    if (metric_role(c->role) >= 0) {
        metric_inc(&c->w->m.logins[metric_role(c->role)]);
        metric_gauge_add(&c->w->m.online[metric_role(c->role)], 1);
    }
    if (c->role == 'C') {
        hub_count(v, UTIL_CAR_TX, welcome_rx);
        hub_count(v, UTIL_CAR_RX, welcome_tx);
    } else if (c->role == 'A') {
        hub_count(v, UTIL_APP_TX, welcome_rx);
        hub_count(v, UTIL_APP_RX, welcome_tx);
    }
    LOG_INFO(c, "%s logged in", c->role == 'C' ? "car" : c->role == 'A' ? "app" : "batch client");
    hub_server_log(c, "got proto #%d/%c login", c->scheme, c->role);
    if (c->role == 'C') {
        hub_car_login(v, c);
        conn_unpark(c);
    } else {
        hub_client_login(v, c);          /* parks it while the stored messages load */
        if (c->state == CS_ACTIVE)
            conn_unpark(c);
    }
}

/* ---- MP-S: peer links go to replication/ ------------------------------------------------------ */

static void refuse(conn_t *c, const char *vehicle, const char *why);

/* A checked peer login waits here (CS_MOVING) for the rest of its first
 * read, then its socket goes to the replication thread. */
static void peer_hand_over(conn_t *c)
{
    ovms_replication_t *r = __atomic_load_n(&c->w->srv->repl, __ATOMIC_ACQUIRE);
    handoff_t *ho = c->moving;
    char addr[64];
    uv_os_fd_t fd;
    int copy;

    if (!r || uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0 || (copy = dup(fd)) < 0) {
        conn_close(c, "cannot hand the peer link over");
        return;
    }
    const char *token = ho->bytes, *marks = token + strlen(token) + 1;
    LOG_INFO(c, "MP-S login of peer %s: the link goes to replication", ho->vehicle);
    ovms_replication_adopt(r, copy, ovms_str_c(ho->vehicle), ovms_str_c(token), ovms_str_c(marks),
                           c->held, c->held_len, conn_peer_text(c, addr, sizeof addr));
    conn_close(c, NULL);             /* this handle; the copy lives on over there */
}

static void peer_login(conn_t *c, const ovms_welcome_t *wl)
{
    server_t *srv = c->w->srv;
    ovms_replication_t *r = __atomic_load_n(&srv->repl, __ATOMIC_ACQUIRE);
    ovms_vehicle_t v;
    char id[33];

    if (!r) {
        conn_close(c, "MP-S peer login: no peers configured");
        return;
    }
    if (c->tls || c->ws || !ovms_str_eq(wl->scheme, "0")) {
        refuse(c, NULL, c->tls || c->ws ? "MP-S peer login over TLS or WebSocket (peers use the plain listener)"
                                        : "MP-S peer login with an unknown scheme");
        return;
    }
    int rc = ovms_replication_check(r, wl->vehicle, wl->token, wl->digest);
    if (rc == OVMS_ENOTFOUND && ovms_vehicleid_normalize(wl->vehicle, id, sizeof id) >= 0 &&
        ovms_store_vehicle_get(srv->store, id, &v) == 0) {
        refuse(c, NULL, "MP-S login naming a vehicle (the reference's old use of the role)");
        return;
    }
    if (rc < 0) {
        refuse(c, NULL, rc == OVMS_ENOTFOUND ? "MP-S peer login from an unknown server id"
                                             : "MP-S peer login with a wrong digest");
        return;
    }
    handoff_t *ho = calloc(1, sizeof *ho + wl->token.len + wl->rest.len + 2);
    if (!ho) {
        conn_close(c, "out of memory");
        return;
    }
    ho->fd = -1;
    ovms_str_copy(wl->vehicle, ho->vehicle, sizeof ho->vehicle);
    memcpy(ho->bytes, wl->token.ptr, wl->token.len);
    if (wl->rest.len)
        memcpy(ho->bytes + wl->token.len + 1, wl->rest.ptr, wl->rest.len);
    c->moving = ho;
    c->role = 'S';
    c->state = CS_MOVING;
    c->flags |= CF_PEER;
    conn_authenticated(c);
}

void login_hand_over(conn_t *c)
{
    if (c->flags & CF_PEER) {
        peer_hand_over(c);
        return;
    }
    worker_t *home = worker_home(c->w->srv, c->moving->vehicle);
    handoff_t *ho = c->moving;
    uv_os_fd_t fd;
    size_t nout = 0;

    if (c->inflight)
        return;       /* closing the handle now would cancel that write: on_written calls again */
    if (home == c->w) {
        /* already home: no socket to move */
        char vehicle[33];
        uint64_t identity = ho->identity;
        snprintf(vehicle, sizeof vehicle, "%s", ho->vehicle);
        c->tls = ho->tls;
        c->ws = ho->ws;
        c->moving = NULL;
        free(ho);
        attach(c, vehicle, identity, c->welcome_rx, c->welcome_tx);
        return;
    }
    /* the welcome travels with the connection and goes out with its first
     * message (Z) in one write */
    nout = c->out_len;
    c->out_len = 0;
    handoff_t *full = realloc(ho, sizeof *ho + nout + c->held_len);
    if (!full || uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0 || (full->fd = dup(fd)) < 0) {
        c->moving = full ? full : ho;
        conn_close(c, "cannot hand the connection over");
        return;
    }
    c->moving = NULL;
    if (nout)
        memcpy(full->bytes, c->out, nout);
    if (c->held_len)
        memcpy(full->bytes + nout, c->held, c->held_len);
    full->nout = nout;
    full->nin = c->held_len;
    LOG_DEBUG(c, "logged in for %s, moving to worker %d", full->vehicle, home->index);
    c->flags |= CF_MOVED;
    conn_close(c, NULL);
    if (worker_post(home, &full->mail) < 0)
        mail_dispose(home->srv, &full->mail);      /* the node is stopping */
}

void login_arrive(worker_t *w, handoff_t *ho)
{
    conn_t *c = conn_new(w);

    if (!c || uv_tcp_open(&c->tcp, ho->fd) < 0) {
        LOG_ERROR(NULL, "cannot take over connection #%llu", (unsigned long long)ho->id);
        if (c) {
            c->state = CS_ACTIVE;
            conn_close(c, "cannot take it over");
        } else {
            close(ho->fd);
            __atomic_sub_fetch(&w->srv->conn_count, 1, __ATOMIC_RELAXED);
        }
        tls_conn_free(ho->tls);
        ws_free(ho->ws);
        free(ho);
        return;
    }
    worker_untrack_conn(w, c);
    c->id = ho->id;                    /* the same connection, for the logs */
    worker_track_conn(w, c);
    c->role = ho->role;
    c->scheme = ho->scheme;
    c->session = ho->session;
    c->tls = ho->tls;
    ho->tls = NULL;
    c->ws = ho->ws;
    ho->ws = NULL;
    if (ho->apc_done)
        c->flags |= CF_APC_DONE;
    c->peer = ho->peer;
    c->state = CS_PARKED;              /* not reading until attached */
    if (ho->nout)
        conn_queue_wire(c, ho->bytes, ho->nout);    /* already wire bytes (TLS: records) */
    if (ho->nin && (c->held = malloc(ho->nin))) {
        memcpy(c->held, ho->bytes + ho->nout, ho->nin);
        c->held_len = (uint32_t)ho->nin;
    }
    conn_start(c);
    attach(c, ho->vehicle, ho->identity, ho->welcome_rx, ho->welcome_tx);
    free(ho);
}

/* ---- scheme 0 --------------------------------------------------------------------------------- */

static int in_scope(server_t *srv, const ovms_vehicle_t *v)
{
    return !strcmp(v->v_server, "*") || !strcasecmp(v->v_server, ovms_store_node_id(srv->store));
}

/* A failed login: the address (and the vehicle, when there is one) pays
 * for it (guard.c), the log says so a few times a minute, and the
 * connection closes without a reply, as cars expect. */
static void refuse(conn_t *c, const char *vehicle, const char *why)
{
    char addr[64];
    guard_failure(c->w->srv->guard, c->w->cfg, &c->peer, vehicle);
    metric_inc(&c->w->m.login_failures);
    log_limited(OVMS_LOG_WARN, c, why, peer_addr_text(&c->peer, addr, sizeof addr), "%s%s%s", why,
                vehicle ? " for " : "", vehicle ? vehicle : "");
    c->role = 0;
    conn_close(c, NULL);             /* logged just above */
}

static void scheme0(conn_t *c, const ovms_welcome_t *wl)
{
    server_t *srv = c->w->srv;
    guard_t *guard = srv->guard;
    ovms_vehicle_t v;
    char id[33], client_token[65], server_token[OVMS_TOKEN_LEN + 1];
    char digest[OVMS_DIGEST_B64_LEN + 1], line[128];

    if (ovms_vehicleid_normalize(wl->vehicle, id, sizeof id) < 0 ||
        ovms_store_vehicle_get(srv->store, id, &v) < 0 || !in_scope(srv, &v)) {
        refuse(c, NULL, "login for an unknown vehicle");
        return;
    }
    if (wl->token.len >= sizeof client_token) {
        conn_close(c, "client token too long");
        return;
    }
    if (!guard_vehicle_allows(guard, c->w->cfg, &c->peer, id)) {
        /* unchecked, so only the address pays: the vehicle's guard lifts on time */
        refuse(c, NULL, "vehicle under a password-guessing attack: refused from an unknown address");
        return;
    }
    ovms_str_copy(wl->token, client_token, sizeof client_token);
    c->role = wl->role;
    if (ovms_digest_check(v.carpass, strlen(v.carpass), wl->token.ptr, wl->token.len,
                          wl->digest.ptr, wl->digest.len) < 0) {
        if (c->role == 'C')
            auth_alert(c, id, 1);
        refuse(c, id, "authentication failed");
        return;
    }
    /* no real client reuses a token: a second use is a recorded welcome
     * played back (protocol-notes.md) */
    if (c->w->cfg->token_replay && !guard_token_fresh(guard, id, client_token)) {
        refuse(c, id, "replayed welcome (client token used before)");
        return;
    }
    if (c->role == 'C')
        auth_alert(c, id, 0);
    do {
        if (ovms_token_generate(server_token) < 0) {
            conn_close(c, "no random bytes");
            return;
        }
    } while (!strcmp(server_token, client_token));
    ovms_digest_b64(v.carpass, strlen(v.carpass), server_token, OVMS_TOKEN_LEN, digest);
    int n = ovms_welcome_format_server(line, sizeof line, server_token, digest);
    if (n < 0 || ovms_session_init(&c->session, v.carpass, strlen(v.carpass), server_token,
                                   OVMS_TOKEN_LEN, client_token, strlen(client_token)) < 0) {
        conn_close(c, "cannot set up the session");
        return;
    }
    conn_send_raw(c, line, (size_t)n);
    c->welcome_tx = (uint16_t)n;
    c->scheme = 0;
    begin_move(c, &v);
}

/* ---- scheme 1: owner name and password --------------------------------------------------- */

typedef struct pw_work {
    uv_work_t work;
    conn_t *conn;
    ovms_owner_t owner;
    char password[129];
    char vehicle[33];
    int ok;
    int unknown;             /* no such owner: checked against a dummy hash all the same */
} pw_work_t;

static void pw_check(uv_work_t *req)
{
    pw_work_t *pw = container_of(req, pw_work_t, work);
    pw->ok = ovms_password_check(pw->password, pw->owner.pwhash) == 0;
}

/* The vehicle the login asked for ("*": the owner's first), if the owner has it. */
static int pick_vehicle(const char *want, const char *ids, char *out, size_t cap)
{
    const char *p = ids;
    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        if (!strcmp(want, "*") || (strlen(want) == n && !strncmp(want, p, n))) {
            snprintf(out, cap, "%.*s", (int)n, p);
            return 0;
        }
        p += n + (sp ? 1 : 0);
    }
    return -1;
}

/* The owner is who it said (ok): the welcome and the move to the vehicle. */
static void scheme1_finish(conn_t *c, int ok, const ovms_owner_t *owner, const char *want)
{
    server_t *srv = c->w->srv;
    char ids[4096], vehicle[33], line[4300];
    ovms_vehicle_t v;

    if (!ok) {
        refuse(c, NULL, "scheme 1 login: unknown owner or wrong password");
    } else if (ovms_store_owner_vehicles(srv->store, owner->id, ids, sizeof ids) < 0 ||
               pick_vehicle(want, ids, vehicle, sizeof vehicle) < 0 ||
               ovms_store_vehicle_get(srv->store, vehicle, &v) < 0 || !in_scope(srv, &v)) {
        conn_close(c, "scheme 1 login: no such vehicle for this owner");
    } else {
        int n = snprintf(line, sizeof line, "MP-S 1 %s %s %s\r\n", owner->name, vehicle, ids);
        conn_send_raw(c, line, (size_t)n);
        c->welcome_tx = (uint16_t)n;
        ovms_session_init_plain(&c->session);
        c->scheme = 1;
        begin_move(c, &v);
        if (c->state == CS_MOVING)
            login_hand_over(c);
    }
}

static void pw_checked(uv_work_t *req, int status)
{
    pw_work_t *pw = container_of(req, pw_work_t, work);
    conn_t *c = pw->conn;

    c->flags &= (uint16_t)~CF_BUSY;
    if (c->state != CS_CLOSING)
        scheme1_finish(c, status == 0 && pw->ok && !pw->unknown, &pw->owner, pw->vehicle);
    conn_unref(c);
    free(pw);
}

/* An API token as the password (§3.2 of HTTP-API.md): 1 when it is one of
 * the owner's; it logs in only with the right v2. */
static int scheme1_token(conn_t *c, const char *user, const char *secret, const char *want)
{
    char owner[65], permit[256];
    ovms_owner_t o;
    if (!http_token_login(c->w, user, secret, owner, permit) ||
        ovms_store_owner_get(c->w->srv->store, owner, &o) < 0)
        return 0;
    scheme1_finish(c, http_permits(permit, "v2"), &o, want);
    return 1;
}

static void scheme1(conn_t *c, const ovms_welcome_t *wl)
{
    server_t *srv = c->w->srv;
    char user[65];
    pw_work_t *pw;

    if (wl->token.len >= sizeof user || wl->digest.len >= sizeof pw->password) {
        conn_close(c, "scheme 1 login: name or password too long");
        return;
    }
    ovms_str_copy(wl->token, user, sizeof user);
    pw = calloc(1, sizeof *pw);
    if (!pw) {
        conn_close(c, "out of memory");
        return;
    }
    /* an unknown owner costs the same PBKDF2 as a wrong password, so the
     * time to the close does not tell which owner names exist */
    if (ovms_store_owner_get(srv->store, user, &pw->owner) < 0 || !pw->owner.pwhash[0]) {
        pw->unknown = 1;
        snprintf(pw->owner.pwhash, sizeof pw->owner.pwhash, "%s", srv->dummy_hash);
    }
    ovms_str_copy(wl->digest, pw->password, sizeof pw->password);
    if (ovms_str_eq(wl->vehicle, "*"))
        strcpy(pw->vehicle, "*");
    else if (ovms_vehicleid_normalize(wl->vehicle, pw->vehicle, sizeof pw->vehicle) < 0) {
        free(pw);
        conn_close(c, "scheme 1 login: bad vehicle id");
        return;
    }
    pw->conn = c;
    c->role = wl->role;
    if (scheme1_token(c, user, pw->password, pw->vehicle)) {
        OPENSSL_cleanse(pw->password, sizeof pw->password);
        free(pw);
        return;
    }
    c->flags |= CF_BUSY;
    conn_ref(c);
    if (uv_queue_work(&c->w->loop, &pw->work, pw_check, pw_checked) < 0) {
        c->flags &= (uint16_t)~CF_BUSY;
        conn_unref(c);
        free(pw);
        conn_close(c, "cannot check the password");
    }
}

/* ---- AP-C ------------------------------------------------------------------------------------ */

static void apc_found(sreq_t *r)
{
    conn_t *c = r->conn;
    char line[1024];

    if (c->state == CS_CLOSING)
        return;
    c->flags &= (uint16_t)~CF_BUSY;
    const ovms_store_rows_t *rows = &r->req.rows;
    if (r->req.status == 0 && rows->nrows == 1 &&
        ovms_aps_format(line, sizeof line, ovms_store_cell(rows, 0, 2), ovms_store_cell(rows, 0, 3),
                        ovms_store_cell(rows, 0, 4)) > 0) {
        LOG_INFO(c, "AP-C %s: provisioning record sent (vehicle %s)", r->text,
                 ovms_store_cell(rows, 0, 1));
        conn_send_raw(c, line, strlen(line));
    } else {
        LOG_INFO(c, "AP-C %s: no provisioning record", r->text);
        conn_send_raw(c, OVMS_APX_LINE, strlen(OVMS_APX_LINE));
    }
    conn_unpark(c);
}

static void apc_request(conn_t *c, const ovms_welcome_t *wl)
{
    if (!ovms_str_eq(wl->scheme, "0")) {
        conn_close(c, "AP-C with an unknown scheme");
        return;
    }
    if ((c->flags & CF_APC_DONE) || wl->token.len >= 64) {
        conn_send_raw(c, OVMS_APX_LINE, strlen(OVMS_APX_LINE));
        c->flags |= CF_APC_DONE;
        return;
    }
    sreq_t *r = sreq_new(c->w, c, NULL, apc_found);
    if (!r) {
        conn_close(c, "out of memory");
        return;
    }
    c->flags |= CF_APC_DONE | CF_BUSY;
    ovms_str_copy(wl->token, r->text, sizeof r->text);
    ovms_store_prep_prov_get(&r->req, r->text);
    sreq_submit(r);
}

/* ---- the first line ---------------------------------------------------------------------------- */

void login_line(conn_t *c, ovms_str_t line)
{
    ovms_welcome_t wl;

    if (c->ws && !ws_is_open(c->ws)) {
        ws_handshake_line(c, line);
        return;
    }
    c->welcome_rx = (uint16_t)(line.len + 2);
    if (ovms_welcome_parse(line.ptr, line.len, &wl) < 0) {
        conn_close(c, "garbage first line");
        return;
    }
    if (wl.kind == OVMS_WELCOME_APC) {
        apc_request(c, &wl);
        return;
    }
    if (wl.kind == OVMS_WELCOME_HTTP) {
        if (c->ws || ws_begin(c, line) < 0)
            conn_close(c, "an HTTP request other than the WebSocket upgrade of /apiv2");
        return;
    }
    if (wl.role == 'S') {
        peer_login(c, &wl);
        return;
    }
    if (wl.role != 'C' && wl.role != 'A' && wl.role != 'B') {
        conn_close(c, "login with an unknown role");
        return;
    }
    if (ovms_str_eq(wl.scheme, "0"))
        scheme0(c, &wl);
    else if (ovms_str_eq(wl.scheme, "1") && wl.role != 'C')
        scheme1(c, &wl);
    else
        conn_close(c, "login with an unknown scheme");
}
