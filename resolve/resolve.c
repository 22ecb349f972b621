/*
 * resolve.c: NAME to addresses, through the system resolver or one given
 * DNS server.
 *
 * The direct path uses libresolv's res_nquery on a private resolver state
 * whose only name server is the one given (with its port, which resolv.conf
 * cannot express), and ns_parserr to read the answer. It asks for A records
 * and then AAAA records and keeps the answer's order: the DNS server's
 * round-robin rotation is what spreads clients over the nodes, and
 * getaddrinfo would re-sort the list (RFC 6724) and undo it.
 */
#include "ovms_resolve.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int add_unique(char out[][OVMS_RESOLVE_HOSTLEN], int n, int max, const char *text)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(out[i], text))
            return n;
    if (n < max)
        snprintf(out[n++], OVMS_RESOLVE_HOSTLEN, "%s", text);
    return n;
}

static int is_numeric(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static int resolve_system(const char *name, char out[][OVMS_RESOLVE_HOSTLEN], int max, char *err,
                          size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res;
    int n = 0, rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", name, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char text[OVMS_RESOLVE_HOSTLEN];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof text, NULL, 0, NI_NUMERICHOST) == 0)
            n = add_unique(out, n, max, text);
    }
    freeaddrinfo(res);
    return n;
}

/* "HOST[:PORT]" of the DNS server, IPv4 only (a loopback test server). */
static int parse_server(const char *dns, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(dns, ':');
    size_t len = colon ? (size_t)(colon - dns) : strlen(dns);
    long port = colon ? strtol(colon + 1, NULL, 10) : 53;
    if (len == 0 || len >= sizeof host || port <= 0 || port > 65535)
        return -1;
    memcpy(host, dns, len);
    host[len] = '\0';
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* The addresses of TYPE (A or AAAA) in one answer, appended to OUT. */
static int read_answer(const unsigned char *msg, int len, int type,
                       char out[][OVMS_RESOLVE_HOSTLEN], int n, int max)
{
    ns_msg handle;
    if (ns_initparse(msg, len, &handle) < 0)
        return n;
    for (int i = 0; i < ns_msg_count(handle, ns_s_an); i++) {
        ns_rr rr;
        char text[OVMS_RESOLVE_HOSTLEN];
        if (ns_parserr(&handle, ns_s_an, i, &rr) < 0 || (int)ns_rr_type(rr) != type)
            continue;
        int family = type == ns_t_a ? AF_INET : AF_INET6;
        size_t want = type == ns_t_a ? 4 : 16;
        if (ns_rr_rdlen(rr) == want && inet_ntop(family, ns_rr_rdata(rr), text, sizeof text))
            n = add_unique(out, n, max, text);
    }
    return n;
}

static int resolve_direct(const char *name, const char *dns, char out[][OVMS_RESOLVE_HOSTLEN],
                          int max, char *err, size_t errlen)
{
    struct __res_state st;
    struct sockaddr_in sa;
    if (parse_server(dns, &sa) < 0) {
        snprintf(err, errlen, "bad DNS server '%s' (want IPV4ADDRESS[:PORT])", dns);
        return -1;
    }
    memset(&st, 0, sizeof st);
    if (res_ninit(&st) < 0) {
        snprintf(err, errlen, "cannot initialise the resolver");
        return -1;
    }
    st.nscount = 1;
    st.nsaddr_list[0] = sa;
    st.retry = 2;
    st.retrans = 2;
    int n = 0;
    static const int types[] = { ns_t_a, ns_t_aaaa };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        unsigned char answer[NS_PACKETSZ * 4];
        int len = res_nquery(&st, name, ns_c_in, types[t], answer, sizeof answer);
        if (len > 0)
            n = read_answer(answer, len, types[t], out, n, max);
    }
    res_nclose(&st);
    if (n == 0)
        snprintf(err, errlen, "cannot resolve %s through the DNS server %s", name, dns);
    return n ? n : -1;
}

int ovms_resolve(const char *name, const char *dns, char out[][OVMS_RESOLVE_HOSTLEN], int max,
                 char *err, size_t errlen)
{
    if (max <= 0)
        return 0;
    if (is_numeric(name))
        return add_unique(out, 0, max, name);
    if (dns && *dns)
        return resolve_direct(name, dns, out, max, err, errlen);
    return resolve_system(name, out, max, err, errlen);
}
