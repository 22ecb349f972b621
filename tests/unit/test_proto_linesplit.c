/*
 * test_proto_linesplit.c -- incremental line framing: terminators, chunk
 * boundaries anywhere (CR and LF split included), the 4096-byte limit, and
 * random chunking against a reference split.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ovms_proto.h"

typedef struct collected {
    char lines[64][5000];
    size_t len[64];
    int n;
    int err;
} collected_t;

static void feed(ovms_linesplit_t *ls, const char *data, size_t len, collected_t *c)
{
    ovms_str_t line;
    int rc;
    while ((rc = ovms_linesplit_next(ls, &data, &len, &line)) > 0) {
        cr_assert_lt(c->n, 64);
        memcpy(c->lines[c->n], line.ptr, line.len);
        c->len[c->n++] = line.len;
    }
    if (rc < 0)
        c->err = rc;
}

Test(linesplit, whole_lines_in_one_chunk)
{
    ovms_linesplit_t ls;
    collected_t c = { 0 };
    const char *in = "one\r\ntwo\nthree\r\n\r\n";
    ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
    feed(&ls, in, strlen(in), &c);
    cr_assert_eq(c.n, 4);
    cr_assert_arr_eq(c.lines[0], "one", 3);
    cr_assert_arr_eq(c.lines[1], "two", 3);
    cr_assert_arr_eq(c.lines[2], "three", 5);
    cr_assert_eq(c.len[3], 0);
    /* nothing pending, and in heap mode nothing allocated */
    cr_assert_eq(ovms_linesplit_pending(&ls), 0);
    cr_assert_null(ls.tail);
    ovms_linesplit_free(&ls);
}

Test(linesplit, lines_inside_a_chunk_are_not_copied)
{
    ovms_linesplit_t ls;
    const char *in = "abc\ndef\n", *p = in;
    size_t len = strlen(in);
    ovms_str_t line;
    ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
    cr_assert_eq(ovms_linesplit_next(&ls, &p, &len, &line), 1);
    cr_assert_eq(line.ptr, in);
    cr_assert_eq(ovms_linesplit_next(&ls, &p, &len, &line), 1);
    cr_assert_eq(line.ptr, in + 4);
    cr_assert_eq(ovms_linesplit_next(&ls, &p, &len, &line), 0);
    ovms_linesplit_free(&ls);
}

Test(linesplit, cr_and_lf_split_across_chunks)
{
    ovms_linesplit_t ls;
    collected_t c = { 0 };
    ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
    feed(&ls, "hel", 3, &c);
    cr_assert_eq(c.n, 0);
    cr_assert_eq(ovms_linesplit_pending(&ls), 3);
    feed(&ls, "lo\r", 3, &c);
    cr_assert_eq(c.n, 0);
    feed(&ls, "\nx", 2, &c);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(c.len[0], 5);
    cr_assert_arr_eq(c.lines[0], "hello", 5);
    feed(&ls, "\r", 1, &c);
    feed(&ls, "\n", 1, &c);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(c.len[1], 1);
    cr_assert_eq(c.lines[1][0], 'x');
    ovms_linesplit_free(&ls);
}

Test(linesplit, byte_at_a_time)
{
    ovms_linesplit_t ls;
    collected_t c = { 0 };
    const char *in = "MP-C 0 tok dig CAR\r\nQUJD\nline three\r\n";
    ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
    for (size_t i = 0; i < strlen(in); i++)
        feed(&ls, in + i, 1, &c);
    cr_assert_eq(c.n, 3);
    cr_assert_arr_eq(c.lines[0], "MP-C 0 tok dig CAR", c.len[0]);
    cr_assert_arr_eq(c.lines[2], "line three", c.len[2]);
    ovms_linesplit_free(&ls);
}

static char *repeat(char ch, size_t n, const char *suffix)
{
    char *s = malloc(n + strlen(suffix) + 1);
    memset(s, ch, n);
    strcpy(s + n, suffix);
    return s;
}

Test(linesplit, limit_4096)
{
    ovms_linesplit_t ls;
    collected_t c = { 0 };

    /* exactly 4096 content bytes with CR LF: accepted, in one chunk or split */
    char *ok = repeat('A', 4096, "\r\n");
    ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
    feed(&ls, ok, 4098, &c);
    feed(&ls, ok, 4000, &c);
    feed(&ls, ok + 4000, 98, &c);
    cr_assert_eq(c.err, 0);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(c.len[0], 4096);
    cr_assert_eq(c.len[1], 4096);
    ovms_linesplit_free(&ls);

    /* 4097 content bytes: an error whichever way it arrives */
    char *bad = repeat('A', 4097, "\n");
    for (size_t cut = 1; cut < 4098; cut += 1000) {
        collected_t e = { 0 };
        ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
        feed(&ls, bad, cut, &e);
        if (!e.err)
            feed(&ls, bad + cut, 4098 - cut, &e);
        cr_assert_eq(e.err, OVMS_ELINE, "cut at %zu", cut);
        ovms_linesplit_free(&ls);
    }
    /* 4097 bytes + CR: still too long after the CR is removed */
    char *bad_cr = repeat('A', 4097, "\r\n");
    collected_t e2 = { 0 };
    ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
    feed(&ls, bad_cr, 4099, &e2);
    cr_assert_eq(e2.err, OVMS_ELINE);
    ovms_linesplit_free(&ls);

    /* more than 4097 bytes without any LF: an error before the LF comes */
    char *flood = repeat('A', 4098, "");
    collected_t e3 = { 0 };
    ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
    feed(&ls, flood, 4097, &e3);
    cr_assert_eq(e3.err, 0);
    feed(&ls, flood, 1, &e3);
    cr_assert_eq(e3.err, OVMS_ELINE);
    ovms_linesplit_free(&ls);
    free(ok);
    free(bad);
    free(bad_cr);
    free(flood);
}

Test(linesplit, nul_bytes_are_data)
{
    ovms_linesplit_t ls;
    collected_t c = { 0 };
    ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
    feed(&ls, "a\0b\r\n\0\n", 7, &c);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(c.len[0], 3);
    cr_assert_eq(c.lines[0][1], '\0');
    cr_assert_eq(c.len[1], 1);
    ovms_linesplit_free(&ls);
}

Test(linesplit, caller_storage)
{
    ovms_linesplit_t ls;
    char storage[OVMS_CLIENT_LINE_MAX + 2];
    ovms_str_t line;
    cr_assert_eq(ovms_linesplit_init(&ls, OVMS_CLIENT_LINE_MAX, storage, 100), OVMS_EINVAL);
    cr_assert_eq(ovms_linesplit_init(&ls, OVMS_CLIENT_LINE_MAX, storage, sizeof storage), 0);
    /* a client accepts 8192-byte lines; the partial one lives in our storage */
    char *long_line = repeat('z', 8192, "\r\n");
    const char *p = long_line;
    size_t len = 5000;
    cr_assert_eq(ovms_linesplit_next(&ls, &p, &len, &line), 0);
    cr_assert_eq(ls.tail, storage);
    len = 3194;
    cr_assert_eq(ovms_linesplit_next(&ls, &p, &len, &line), 1);
    cr_assert_eq(line.ptr, storage);
    cr_assert_eq(line.len, 8192);
    cr_assert_eq(ovms_linesplit_next(&ls, &p, &len, &line), 0);
    cr_assert_eq(ls.tail, storage);      /* storage is kept, never freed */
    ovms_linesplit_free(&ls);
    free(long_line);
}

/* Random lines cut into random chunks must come out exactly as a plain split. */
Test(linesplit, random_chunking)
{
    srand(1234);
    for (int round = 0; round < 300; round++) {
        static char stream[20000];
        size_t len = 0, want_len[64];
        int nlines = 1 + rand() % 40;
        char *want_ptr[64];
        for (int i = 0; i < nlines; i++) {
            size_t n = (size_t)rand() % 300;
            want_ptr[i] = stream + len;
            want_len[i] = n;
            for (size_t k = 0; k < n; k++)
                stream[len++] = (char)('a' + rand() % 26);
            if (rand() & 1)
                stream[len++] = '\r';
            stream[len++] = '\n';
        }
        ovms_linesplit_t ls;
        collected_t c = { 0 };
        ovms_linesplit_init(&ls, OVMS_LINE_MAX, NULL, 0);
        for (size_t at = 0; at < len;) {
            size_t n = 1 + (size_t)rand() % 700;
            if (n > len - at)
                n = len - at;
            feed(&ls, stream + at, n, &c);
            at += n;
        }
        cr_assert_eq(c.err, 0);
        cr_assert_eq(c.n, nlines, "round %d", round);
        for (int i = 0; i < nlines; i++) {
            cr_assert_eq(c.len[i], want_len[i], "round %d line %d", round, i);
            cr_assert_arr_eq(c.lines[i], want_ptr[i], want_len[i]);
        }
        cr_assert_null(ls.tail);
        ovms_linesplit_free(&ls);
    }
}

Test(linesplit, bad_init)
{
    ovms_linesplit_t ls;
    cr_assert_eq(ovms_linesplit_init(&ls, 0, NULL, 0), OVMS_EINVAL);
    cr_assert_eq(ovms_linesplit_init(&ls, 70000, NULL, 0), OVMS_EINVAL);
}
