/*
 * http_file.c -- /file/<name> (HTTP-API.md §10): public static files from
 * httpfiles/ under the node's working directory, for any method, with no
 * authentication and no CORS header, as the reference serves them.
 *
 * The whole request target must be /file/ and a name of letters, digits,
 * '.', '_' and '-' (a query string makes it a 404, as in the reference);
 * the name must be a regular file, so ".." (a directory) is not one. The
 * file's first line is its Content-Type (trailing CR and LF removed: an
 * ovmsd fix), the rest is the body, sent with its length and then the
 * connection closes. Files are read whole on the worker loop, so they are
 * limited to 1 MiB: this is for a few small pages, not a file server.
 * Threading: the connection's worker.
 */
#include "http_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX (1 << 20)

static int name_ok(const char *p, size_t n)
{
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '_' || p[i] == '-'))
            return 0;
    return 1;
}

static void not_found(http_conn_t *c)
{
    http_respond(c, 404, "not found", "text/plain", "", "not found\n", 10);
}

/* The file's bytes (NUL-terminated), or NULL. */
static char *read_file(const char *name, size_t *len)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "httpfiles/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= FILE_MAX &&
        (buf = malloc((size_t)st.st_size + 1))) {
        ssize_t got = read(fd, buf, (size_t)st.st_size);
        if (got != st.st_size) {
            free(buf);
            buf = NULL;
        } else {
            buf[got] = '\0';
            *len = (size_t)got;
        }
    }
    close(fd);
    return buf;
}

int http_file(http_conn_t *c, const http_req_t *r)
{
    if (r->url_len < 6 || memcmp(r->head, "/file/", 6) != 0)
        return 0;
    char name[256];
    size_t n = r->url_len - 6;
    if (!name_ok(r->head + 6, n) || n >= sizeof name) {
        not_found(c);
        return 1;
    }
    memcpy(name, r->head + 6, n);
    name[n] = '\0';
    size_t len = 0;
    char *data = read_file(name, &len);
    const char *nl = data ? memchr(data, '\n', len) : NULL;
    if (!nl) {
        not_found(c);                    /* no such file, or no type line */
        free(data);
        return 1;
    }
    size_t tlen = (size_t)(nl - data);
    while (tlen && (data[tlen - 1] == '\r' || data[tlen - 1] == ' '))
        tlen--;
    char type[256];
    snprintf(type, sizeof type, "%.*s", (int)(tlen < sizeof type ? tlen : sizeof type - 1), data);
    if (strpbrk(type, "\r\n")) {
        not_found(c);
        free(data);
        return 1;
    }
    c->close_after = 1;
    http_respond(c, 200, "ok", type, "", nl + 1, len - (size_t)(nl + 1 - data));
    free(data);
    return 1;
}
