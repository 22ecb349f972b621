/*
 * pool.c -- fixed-size objects that live long (connections, hub entries)
 * in slabs of their own, away from the heap.
 *
 * Why: a login storm allocates, next to each connection, many short-lived
 * things (the accepting worker's connection, handoff mail, store requests
 * for the car's first reports, line tails). In one malloc heap the
 * connections that stay end up scattered between the holes the others
 * leave, so the pages stay resident after the storm is over: measured, an
 * idle node held 2.5-3.5 KB of RSS per connection of which 1.5 KB was in
 * use. In slabs the survivors sit densely, the heap's transient memory
 * comes back as whole pages (malloc_trim), and a slab that empties goes
 * back to the system at once.
 *
 * A slab is 64 KiB, mapped at a 64 KiB boundary, so an object finds its
 * slab by masking its address; each slab keeps its own free list and count,
 * and the pool lists slabs with room. One worker's objects only, on its
 * thread: no locks. Under AddressSanitizer objects come from calloc, so
 * that use after free is still caught.
 */
#include "server_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLAB_SIZE ((size_t)64 * 1024)

typedef struct slab {
    struct slab *prev, *next;    /* the pool's slabs with room */
    void *free;                  /* freed objects, linked through their first word */
    size_t used;                 /* objects handed out */
    size_t fresh;                /* objects never handed out, from the end of the header */
} slab_t;

/* objects start past the header, 16-byte aligned */
#define SLAB_HEADER ((sizeof(slab_t) + 15) & ~(size_t)15)

void pool_init(pool_t *p, size_t size)
{
    memset(p, 0, sizeof *p);
    p->size = (size + 15) & ~(size_t)15;
    p->per_slab = (SLAB_SIZE - SLAB_HEADER) / p->size;
}

#ifndef OVMS_POOL_PLAIN
static char *slab_objects(slab_t *s)
{
    return (char *)s + SLAB_HEADER;
}

static void slab_link(pool_t *p, slab_t *s)
{
    s->prev = NULL;
    s->next = p->room;
    if (p->room)
        p->room->prev = s;
    p->room = s;
}

static void slab_unlink(pool_t *p, slab_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        p->room = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

/* A 64 KiB mapping on a 64 KiB boundary: map twice that, trim both ends. */
static slab_t *slab_new(pool_t *p)
{
    char *m = mmap(NULL, 2 * SLAB_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    char *start = (char *)(((uintptr_t)m + SLAB_SIZE - 1) & ~(uintptr_t)(SLAB_SIZE - 1));
    if (start > m)
        munmap(m, (size_t)(start - m));
    munmap(start + SLAB_SIZE, (size_t)(m + 2 * SLAB_SIZE - (start + SLAB_SIZE)));
    slab_t *s = (slab_t *)start;
    s->fresh = p->per_slab;
    p->nslabs++;
    p->empty++;
    slab_link(p, s);
    return s;
}

#endif

void *pool_alloc(pool_t *p)
{
#ifdef OVMS_POOL_PLAIN
    return calloc(1, p->size);
#else
    slab_t *s = p->room ? p->room : slab_new(p);
    if (!s)
        return NULL;
    void *o;
    if (s->used == 0)
        p->empty--;
    if (s->free) {
        o = s->free;
        s->free = *(void **)o;
    } else {
        o = slab_objects(s) + (p->per_slab - s->fresh) * p->size;
        s->fresh--;
    }
    s->used++;
    if (!s->free && !s->fresh)
        slab_unlink(p, s);          /* full */
    memset(o, 0, p->size);
    return o;
#endif
}

void pool_free(pool_t *p, void *o)
{
#ifdef OVMS_POOL_PLAIN
    (void)p;
    free(o);
#else
    if (!o)
        return;
    slab_t *s = (slab_t *)((uintptr_t)o & ~(uintptr_t)(SLAB_SIZE - 1));
    int was_full = !s->free && !s->fresh;
    *(void **)o = s->free;
    s->free = o;
    s->used--;
    if (was_full)
        slab_link(p, s);
    if (s->used == 0 && ++p->empty > 1) {
        slab_unlink(p, s);          /* empty: back to the system, keeping one spare */
        p->nslabs--;
        p->empty--;
        munmap(s, SLAB_SIZE);
    }
#endif
}

/* Every slab, used or not: only once nothing in it is referenced. */
void pool_destroy(pool_t *p)
{
#ifndef OVMS_POOL_PLAIN
    /* full slabs are on no list; finding them needs a walk we do not keep,
     * so the pool is destroyed only when empty (one spare slab at most) */
    while (p->room) {
        slab_t *s = p->room;
        slab_unlink(p, s);
        munmap(s, SLAB_SIZE);
    }
#endif
    p->nslabs = p->empty = 0;
}
