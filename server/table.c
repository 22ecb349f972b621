/*
 * table.c -- a small open-addressing hash table of pointers (linear
 * probing, at most half full, backward-shift deletion so no tombstones
 * build up). Used for a worker's connections by id and its vehicles by id.
 * Threading: a table belongs to one worker.
 */
#include "server_int.h"

#include <stdlib.h>

static size_t slot_of(const table_t *t, uint64_t h)
{
    return (size_t)(h & (t->cap - 1));
}

void *table_find(const table_t *t, uint64_t h, int (*match)(const void *item, const void *key),
                 const void *key)
{
    if (!t->cap)
        return NULL;
    for (size_t i = slot_of(t, h); t->slot[i]; i = (i + 1) & (t->cap - 1))
        if (match(t->slot[i], key))
            return t->slot[i];
    return NULL;
}

static void place(void **slot, size_t cap, void *item, uint64_t h)
{
    size_t i = (size_t)(h & (cap - 1));
    while (slot[i])
        i = (i + 1) & (cap - 1);
    slot[i] = item;
}

int table_insert(table_t *t, void *item)
{
    if ((t->count + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        void **slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (size_t i = 0; i < t->cap; i++)
            if (t->slot[i])
                place(slot, cap, t->slot[i], t->hash_item(t->slot[i]));
        free(t->slot);
        t->slot = slot;
        t->cap = cap;
    }
    place(t->slot, t->cap, item, t->hash_item(item));
    t->count++;
    return 0;
}

void table_remove(table_t *t, void *item)
{
    if (!t->cap)
        return;
    size_t mask = t->cap - 1, i = slot_of(t, t->hash_item(item));
    while (t->slot[i] && t->slot[i] != item)
        i = (i + 1) & mask;
    if (!t->slot[i])
        return;
    t->slot[i] = NULL;
    t->count--;
    /* pull back later entries whose probe sequence passed through i */
    for (size_t j = (i + 1) & mask; t->slot[j]; j = (j + 1) & mask) {
        size_t home = slot_of(t, t->hash_item(t->slot[j]));
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            t->slot[i] = t->slot[j];
            t->slot[j] = NULL;
            i = j;
        }
    }
}

void table_free(table_t *t)
{
    free(t->slot);
    t->slot = NULL;
    t->cap = t->count = 0;
}

uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    return x;
}

uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603u;          /* FNV-1a */
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211u;
    }
    return h;
}
