/*
 * vectors.h -- test helper: the shared known-answer vectors
 * (../shared/vectors/ovms_vectors.json), read at run time so that tests
 * reproduce them from the source of truth rather than from pasted copies.
 */
#ifndef OVMS_TEST_VECTORS_H
#define OVMS_TEST_VECTORS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The parsed JSON document; a test fails if it cannot be read. */
json_t *vec_root(void);
/* Node at a dotted path, e.g. "g_car_session_22.car_to_server.2.wire". */
json_t *vec_get(const char *path);
/* String at a path (the test fails if it is missing or not a string). */
const char *vec_str(const char *path);
size_t vec_len(const char *path);      /* array length */
/* Hex string at a path into bytes; returns the byte count. */
size_t vec_hex(const char *path, uint8_t *out, size_t cap);
/* The same line without its CR LF (or LF) terminator, as a new string. */
char *vec_line(const char *path, size_t *len);
/* printf-style path building. */
const char *vec_path(const char *fmt, ...);

#endif
