/*
 * app_conn.c -- ovms-app's connection to a server: TCP or TLS, the app
 * login (scheme 0 with the car password and a verified server digest, or
 * scheme 1 with the owner's user name and password), line decryption, and
 * paranoid decoding with the module password once the car's ET token has
 * been seen.
 *
 * Blocking sockets with poll(2) for timeouts: ovms-app handles one
 * connection at a time and has nothing else to do while it waits.
 */
#include "app.h"
#include "ovms_resolve.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define LOGIN_TIMEOUT_MS 15000

uint64_t app_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Connects to a numeric address; -1 with errno set when it fails. */
static int tcp_connect_one(const char *host, int port)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
    struct addrinfo *res;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        int err = errno;
        close(fd);
        fd = -1;
        errno = err;
    }
    freeaddrinfo(res);
    return fd;
}

static int tcp_connect(const app_opts_t *o)
{
    char addrs[8][OVMS_RESOLVE_HOSTLEN], err[200];
    int n = ovms_resolve(o->host, o->dns, addrs, 8, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "ovms-app: %s\n", err);
        return -1;
    }
    /* every address in turn, in the resolver's order, as cars do with DNS round robin */
    int fd = -1, last = 0;
    for (int i = 0; i < n && fd < 0; i++) {
        fd = tcp_connect_one(addrs[i], o->port);
        last = errno;
        if (fd >= 0 && o->verbose)
            fprintf(stderr, "ovms-app: connected to %s port %d\n", addrs[i], o->port);
    }
    if (fd < 0)
        fprintf(stderr, "ovms-app: cannot connect to %s port %d: %s\n", o->host, o->port,
                strerror(last));
    return fd;
}

static int tls_start(app_conn_t *c)
{
    const app_opts_t *o = c->opts;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx)
        return -1;
    if (!o->insecure) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        if (o->ca_file ? SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL) != 1
                       : SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
            fprintf(stderr, "ovms-app: cannot load the certificate authorities%s%s\n",
                    o->ca_file ? " from " : "", o->ca_file ? o->ca_file : "");
            return -1;
        }
    }
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, o->host);
    if (!o->insecure)
        SSL_set1_host(c->ssl, o->host);
    if (SSL_connect(c->ssl) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        fprintf(stderr, "ovms-app: TLS with %s failed: %s%s\n", o->host, err,
                o->insecure ? "" : " (--insecure skips certificate checks)");
        return -1;
    }
    return 0;
}

static int raw_write(app_conn_t *c, const char *data, size_t len)
{
    while (len) {
        ssize_t n = c->ssl ? SSL_write(c->ssl, data, (int)len) : send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && !c->ssl && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* More bytes into inbuf: 1 read, 0 timeout, -1 closed. */
static int fill(app_conn_t *c, int timeout_ms)
{
    if (!(c->ssl && SSL_pending(c->ssl))) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        int rc = poll(&p, 1, timeout_ms);
        if (rc == 0)
            return 0;
        if (rc < 0)
            return errno == EINTR ? 0 : -1;
    }
    ssize_t n = c->ssl ? SSL_read(c->ssl, c->inbuf, sizeof c->inbuf)
                       : recv(c->fd, c->inbuf, sizeof c->inbuf, 0);
    if (n <= 0)
        return -1;
    c->inlen = (size_t)n;
    c->inpos = 0;
    return 1;
}

/* The next raw line (without terminator): 1, 0 timeout, -1 closed. */
static int next_line(app_conn_t *c, int timeout_ms, ovms_str_t *line)
{
    uint64_t deadline = app_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        const char *data = c->inbuf + c->inpos;
        size_t len = c->inlen - c->inpos;
        int rc = ovms_linesplit_next(&c->ls, &data, &len, line);
        c->inpos = c->inlen - len;
        if (rc > 0)
            return 1;
        if (rc < 0)
            return -1;
        uint64_t now = app_now_ms();
        if (now >= deadline)
            return 0;
        rc = fill(c, (int)(deadline - now));
        if (rc <= 0)
            return rc;
    }
}

static int login_scheme0(app_conn_t *c)
{
    const app_opts_t *o = c->opts;
    char token[OVMS_TOKEN_LEN + 1], digest[OVMS_DIGEST_B64_LEN + 1], line[256], stoken[64];
    ovms_str_t reply;

    if (ovms_token_generate(token) < 0)
        return -1;
    ovms_digest_b64(o->password, strlen(o->password), token, OVMS_TOKEN_LEN, digest);
    ovms_welcome_format_client(line, sizeof line, 'A', token, digest, o->vehicle);
    if (raw_write(c, line, strlen(line)) < 0 || next_line(c, LOGIN_TIMEOUT_MS, &reply) <= 0) {
        fprintf(stderr, "ovms-app: the server refused the login of %s (wrong vehicle id or car "
                "password?)\n", o->vehicle);
        return -1;
    }
    if (ovms_server_welcome_verify(reply.ptr, reply.len, o->password, strlen(o->password), token,
                                   stoken, sizeof stoken) < 0) {
        fprintf(stderr, "ovms-app: the server's welcome does not prove it knows the car password: "
                "not talking to it\n");
        return -1;
    }
    ovms_session_init(&c->session, o->password, strlen(o->password), stoken, strlen(stoken), token,
                      OVMS_TOKEN_LEN);
    snprintf(c->vehicle, sizeof c->vehicle, "%s", o->vehicle);
    return 0;
}

static int login_scheme1(app_conn_t *c)
{
    const app_opts_t *o = c->opts;
    char line[512];
    ovms_str_t reply;
    ovms_server_welcome1_t sw;

    if (ovms_welcome_format_scheme1(line, sizeof line, 'A', o->user, o->password,
                                    o->vehicle ? o->vehicle : "*") < 0) {
        fprintf(stderr, "ovms-app: the user name, password or vehicle id has a space in it\n");
        return -1;
    }
    if (raw_write(c, line, strlen(line)) < 0 || next_line(c, LOGIN_TIMEOUT_MS, &reply) <= 0 ||
        ovms_server_welcome1_parse(reply.ptr, reply.len, &sw) < 0) {
        fprintf(stderr, "ovms-app: the server refused the login of user %s%s%s\n", o->user,
                o->vehicle ? " for " : "", o->vehicle ? o->vehicle : "");
        return -1;
    }
    ovms_session_init_plain(&c->session);
    ovms_str_copy(sw.vehicle, c->vehicle, sizeof c->vehicle);
    ovms_str_copy(sw.ids, c->vehicles, sizeof c->vehicles);
    return 0;
}

int app_connect(app_conn_t *c, const app_opts_t *o)
{
    memset(c, 0, sizeof *c);
    c->opts = o;
    c->fd = tcp_connect(o);
    if (c->fd < 0)
        return APP_CONNECTION;
    ovms_linesplit_init(&c->ls, OVMS_CLIENT_LINE_MAX, c->tail, sizeof c->tail);
    if ((o->tls && tls_start(c) < 0) || (o->user ? login_scheme1(c) : login_scheme0(c)) < 0) {
        app_close(c);
        return APP_CONNECTION;
    }
    return APP_OK;
}

void app_close(app_conn_t *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->ctx = NULL;
    c->fd = -1;
}

int app_send(app_conn_t *c, const char *msg)
{
    char wire[OVMS_WIRE_LEN(OVMS_LINE_MAX)];
    int n = ovms_session_encode(&c->session, msg, strlen(msg), wire, sizeof wire);
    if (n < 0)
        return -1;
    return raw_write(c, wire, (size_t)n);
}

int app_send_command(app_conn_t *c, int cmd, const char *params)
{
    char msg[OVMS_LINE_MAX], wrapped[OVMS_LINE_MAX];
    if (ovms_command_format(cmd, *params ? params : NULL, msg, sizeof msg) < 0)
        return -1;
    /* 30-32 are answered by the server, which cannot read a paranoid command */
    if (c->have_pdigest && (cmd < 30 || cmd > 32) &&
        ovms_paranoid_wrap(c->pdigest, msg, strlen(msg), wrapped, sizeof wrapped) > 0)
        return app_send(c, wrapped);
    return app_send(c, msg);
}

/* ET: the car's paranoid token; with the module password we can read EM. */
static void paranoid_token(app_conn_t *c, ovms_str_t payload)
{
    const char *pw = c->opts->module_pw;
    if (payload.len < 2 || payload.len - 1 >= sizeof c->ptoken)
        return;
    ovms_str_copy((ovms_str_t){ payload.ptr + 1, payload.len - 1 }, c->ptoken, sizeof c->ptoken);
    if (pw && *pw)
        c->have_pdigest = ovms_paranoid_key(pw, strlen(pw), c->ptoken, strlen(c->ptoken),
                                            c->pdigest) == 0;
}

int app_recv(app_conn_t *c, int timeout_ms, app_msg_t *m)
{
    ovms_str_t line;
    ovms_msg_t msg;
    int rc = next_line(c, timeout_ms, &line);
    if (rc <= 0)
        return rc;
    if (ovms_session_decode(&c->session, line.ptr, line.len, c->plain, sizeof c->plain, &msg) < 0) {
        fprintf(stderr, "ovms-app: an undecodable line from the server\n");
        return -1;
    }
    memset(m, 0, sizeof *m);
    m->code = msg.code;
    m->payload = msg.payload;
    if (msg.code != 'E' || msg.payload.len < 1)
        return 1;
    if (msg.payload.ptr[0] == 'T') {
        paranoid_token(c, msg.payload);
        return 1;
    }
    if (msg.payload.ptr[0] != 'M' || msg.payload.len < 2)
        return 1;
    m->paranoid = 1;
    m->code = msg.payload.ptr[1];
    int n = c->have_pdigest ? ovms_paranoid_unwrap(c->pdigest, msg.payload.ptr + 1,
                                                   msg.payload.len - 1, c->unwrapped,
                                                   sizeof c->unwrapped)
                            : -1;
    if (n < 1) {
        m->unreadable = 1;
        m->payload = (ovms_str_t){ msg.payload.ptr + 2, msg.payload.len - 2 };
        return 1;
    }
    m->payload = (ovms_str_t){ c->unwrapped + 1, (size_t)n - 1 };
    return 1;
}
