/*
 * test_pool.c -- server/pool.c: objects come zeroed, distinct and aligned,
 * freed ones are reused, and slabs that empty go back to the system
 * (keeping one spare).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "server_int.h"

typedef struct thing {
    char bytes[960];
} thing_t;

Test(pool, objects_are_zeroed_distinct_and_aligned)
{
    pool_t p;
    pool_init(&p, sizeof(thing_t));
    enum { N = 1000 };
    static thing_t *t[N];
    for (int i = 0; i < N; i++) {
        t[i] = pool_alloc(&p);
        cr_assert_not_null(t[i]);
        cr_assert_eq((uintptr_t)t[i] % 16, 0);
        for (size_t k = 0; k < sizeof t[i]->bytes; k++)
            cr_assert_eq(t[i]->bytes[k], 0);
        memset(t[i]->bytes, 0xA5, sizeof t[i]->bytes);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            cr_assert(t[i] + 1 <= t[j] || t[j] + 1 <= t[i], "objects %d and %d overlap", i, j);
    for (int i = 0; i < N; i++)
        pool_free(&p, t[i]);
    pool_destroy(&p);
}

#ifndef OVMS_POOL_PLAIN
Test(pool, freed_objects_are_reused_and_empty_slabs_returned)
{
    pool_t p;
    pool_init(&p, sizeof(thing_t));
    enum { N = 2000 };
    static thing_t *t[N];
    for (int i = 0; i < N; i++)
        t[i] = pool_alloc(&p);
    size_t full = p.nslabs;
    cr_assert_geq(full * p.per_slab, (size_t)N);
    cr_assert_lt((full - 1) * p.per_slab, (size_t)N, "%zu slabs for %d objects", full, N);
    thing_t *freed = t[N / 2];
    pool_free(&p, freed);
    t[N / 2] = pool_alloc(&p);
    cr_assert_eq(t[N / 2], freed, "a freed object is handed out again first");
    cr_assert_eq(p.nslabs, full);
    for (int i = 0; i < N; i++)
        pool_free(&p, t[i]);
    cr_assert_eq(p.nslabs, 1, "%zu slabs kept after everything was freed", p.nslabs);
    cr_assert_eq(p.empty, 1);
    /* the spare is used again, no new slab */
    thing_t *again = pool_alloc(&p);
    cr_assert_eq(p.nslabs, 1);
    pool_free(&p, again);
    pool_destroy(&p);
    cr_assert_eq(p.nslabs, 0);
}
#endif
