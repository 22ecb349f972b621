/*
 * tls.c -- TLS for the 6870 listeners (PROTOCOL 2.1): the same protocol
 * inside TLS, so scheme 0 is RC4 inside TLS.
 *
 * OpenSSL runs over memory BIOs, so libuv keeps owning the socket: bytes
 * read from the socket go into the read BIO and come out of SSL_read as
 * plaintext for the line splitter; a connection's per-turn output goes
 * through SSL_write and what lands in the write BIO is written to the
 * socket. Handshake records are produced the same way. An SSL object is
 * used by one thread at a time, so it moves with its connection when the
 * connection moves to its vehicle's home worker. SSL_MODE_RELEASE_BUFFERS
 * lets an idle TLS connection give back its record buffers.
 * SIGHUP reads the certificate and key files again (a renewed
 * certificate at the same paths): a new context replaces the old one for
 * new connections, under a lock that tls_conn_new also takes, and the old
 * one lives on in the connections made with it (SSL_new holds a
 * reference). A bad file keeps the running context.
 * Threading: the context pointer under ctx_mu; a connection's SSL object
 * belongs to the connection's thread.
 */
#include "server_int.h"

#include <openssl/err.h>
#include <pthread.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_conn {
    SSL *ssl;
    BIO *in;                 /* socket -> OpenSSL */
    BIO *out;                /* OpenSSL -> socket */
    char error[260];         /* the last failure, for the log */
};

const char *tls_conn_error(const tls_conn_t *t)
{
    return t && t->error[0] ? t->error : "TLS error";
}

static const char *tls_error(void)
{
    static __thread char buf[256];
    unsigned long e = ERR_get_error();
    if (!e)
        return "unknown TLS error";
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;

static SSL_CTX *make_ctx(const ovms_config_t *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS: %s", tls_error());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        snprintf(err, errlen, "TLS certificate %s: %s", cfg->tls_cert, tls_error());
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "TLS key %s: %s", cfg->tls_key, tls_error());
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int tls_init(server_t *srv, char *err, size_t errlen)
{
    const ovms_config_t *cfg = srv->cfg;
    if (!cfg->ntls_listen && !cfg->nhttps_listen)
        return 0;
    return (srv->tls_ctx = make_ctx(cfg, err, errlen)) ? 0 : -1;
}

int tls_reload(server_t *srv, char *err, size_t errlen)
{
    if (!srv->tls_ctx)
        return 0;                    /* no TLS listeners */
    SSL_CTX *fresh = make_ctx(srv->cfg, err, errlen), *old;
    if (!fresh)
        return -1;
    pthread_mutex_lock(&ctx_mu);
    old = srv->tls_ctx;
    srv->tls_ctx = fresh;
    pthread_mutex_unlock(&ctx_mu);
    SSL_CTX_free(old);               /* connections made with it keep their reference */
    return 1;
}

void tls_free(server_t *srv)
{
    SSL_CTX_free(srv->tls_ctx);
    srv->tls_ctx = NULL;
}

tls_conn_t *tls_conn_new(server_t *srv)
{
    tls_conn_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_lock(&ctx_mu);
    t->ssl = SSL_new(srv->tls_ctx);
    pthread_mutex_unlock(&ctx_mu);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->in || !t->out) {
        SSL_free(t->ssl);
        BIO_free(t->in);
        BIO_free(t->out);
        free(t);
        return NULL;
    }
    BIO_set_mem_eof_return(t->in, -1);        /* "no data yet", not end of stream */
    SSL_set_bio(t->ssl, t->in, t->out);       /* the SSL owns both BIOs now */
    SSL_set_accept_state(t->ssl);
    return t;
}

void tls_conn_free(tls_conn_t *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

/* Encrypted bytes waiting to be written to the socket. */
static int drain(tls_conn_t *t, char **buf, size_t *len)
{
    size_t pending = BIO_ctrl_pending(t->out);
    if (!pending)
        return 0;
    char *grown = realloc(*buf, *len + pending);
    if (!grown)
        return -1;
    int n = BIO_read(t->out, grown + *len, (int)pending);
    *buf = grown;
    *len += n > 0 ? (size_t)n : 0;
    return 0;
}

int tls_receive(tls_conn_t *t, const char *data, size_t len, char *plain, size_t cap,
                size_t *plain_len, char **wire, size_t *wire_len)
{
    *plain_len = 0;
    if (len && BIO_write(t->in, data, (int)len) != (int)len)
        return -1;
    while (*plain_len < cap) {
        int n = SSL_read(t->ssl, plain + *plain_len, (int)(cap - *plain_len));
        if (n > 0) {
            *plain_len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN)
            return drain(t, wire, wire_len) < 0 ? -1 : 1;     /* close_notify */
        snprintf(t->error, sizeof t->error, "%s", e == SSL_ERROR_SSL ? tls_error() : "TLS read failed");
        ERR_clear_error();
        return -1;
    }
    return drain(t, wire, wire_len) < 0 ? -1 : 0;
}

int tls_send(tls_conn_t *t, const char *data, size_t len, char **wire, size_t *wire_len)
{
    size_t done = 0;
    while (done < len) {
        int n = SSL_write(t->ssl, data + done, (int)(len - done));
        if (n <= 0) {
            int e = SSL_get_error(t->ssl, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;                           /* handshake not done: keep the rest */
            snprintf(t->error, sizeof t->error, "%s", e == SSL_ERROR_SSL ? tls_error() : "TLS write failed");
            ERR_clear_error();
            return -1;
        }
        done += (size_t)n;
    }
    if (drain(t, wire, wire_len) < 0)
        return -1;
    return (int)done;
}
