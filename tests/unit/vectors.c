/*
 * vectors.c -- loads and navigates the shared known-answer vectors.
 * The location is OVMS_SHARED_DIR (set by CMake) unless the environment
 * variable OVMS_SHARED overrides it.
 */
#include "vectors.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *vec_root(void)
{
    static json_t *root;
    if (!root) {
        const char *dir = getenv("OVMS_SHARED") ? getenv("OVMS_SHARED") : OVMS_SHARED_DIR;
        char path[1024];
        json_error_t err;
        snprintf(path, sizeof path, "%s/vectors/ovms_vectors.json", dir);
        root = json_load_file(path, 0, &err);
        cr_assert_not_null(root, "cannot read %s: %s (line %d)", path, err.text, err.line);
    }
    return root;
}

json_t *vec_get(const char *path)
{
    json_t *node = vec_root();
    char buf[256], *save = NULL;

    snprintf(buf, sizeof buf, "%s", path);
    for (char *part = strtok_r(buf, ".", &save); part && node; part = strtok_r(NULL, ".", &save)) {
        if (json_is_array(node))
            node = json_array_get(node, (size_t)strtoul(part, NULL, 10));
        else
            node = json_object_get(node, part);
    }
    cr_assert_not_null(node, "vector %s is missing", path);
    return node;
}

const char *vec_str(const char *path)
{
    json_t *node = vec_get(path);
    cr_assert(json_is_string(node), "vector %s is not a string", path);
    return json_string_value(node);
}

size_t vec_len(const char *path)
{
    json_t *node = vec_get(path);
    cr_assert(json_is_array(node), "vector %s is not an array", path);
    return json_array_size(node);
}

size_t vec_hex(const char *path, uint8_t *out, size_t cap)
{
    const char *hex = vec_str(path);
    size_t n = strlen(hex) / 2;
    cr_assert(n <= cap, "vector %s too long", path);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        cr_assert(sscanf(hex + 2 * i, "%2x", &v) == 1, "vector %s is not hex", path);
        out[i] = (uint8_t)v;
    }
    return n;
}

char *vec_line(const char *path, size_t *len)
{
    const char *s = vec_str(path);
    size_t n = strlen(s);
    if (n && s[n - 1] == '\n')
        n--;
    if (n && s[n - 1] == '\r')
        n--;
    char *copy = strndup(s, n);
    cr_assert_not_null(copy);
    if (len)
        *len = n;
    return copy;
}

const char *vec_path(const char *fmt, ...)
{
    static char buf[8][256];
    static int slot;
    va_list ap;
    char *out = buf[slot++ % 8];
    va_start(ap, fmt);
    vsnprintf(out, sizeof buf[0], fmt, ap);
    va_end(ap);
    return out;
}
