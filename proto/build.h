/*
 * build.h -- internal to proto/: a bounded string builder for formatters.
 *
 * Every formatter writes through it, so each checks capacity and field
 * content the same way: the first failure sticks and ovms__buf_done()
 * reports it. Fields are checked for what the wire cannot carry: LF and NUL
 * anywhere, and commas and CRs (V3's line break in free text) in any field
 * but a message's last (PROTOCOL 3.2).
 */
#ifndef OVMS_PROTO_BUILD_H
#define OVMS_PROTO_BUILD_H

#include "ovms_proto.h"

typedef struct ovms__buf {
    char *p;
    size_t cap;
    size_t len;
    int err;
} ovms__buf_t;

#define OVMS__FIELD_LAST 1   /* the message's final field: commas allowed */

void ovms__buf_init(ovms__buf_t *b, char *p, size_t cap);
void ovms__buf_put(ovms__buf_t *b, const char *s, size_t n);
void ovms__buf_puts(ovms__buf_t *b, const char *s);
void ovms__buf_putc(ovms__buf_t *b, char c);
void ovms__buf_int(ovms__buf_t *b, int64_t v);
void ovms__buf_uint(ovms__buf_t *b, uint64_t v);
void ovms__buf_num(ovms__buf_t *b, ovms_num_t n);
/* A text field, checked as described above. */
void ovms__buf_field(ovms__buf_t *b, ovms_str_t s, int flags);
void ovms__buf_cfield(ovms__buf_t *b, const char *s, int flags);
/* The length written, or the first error. Always NUL-terminates when cap > 0. */
int ovms__buf_done(ovms__buf_t *b);

/* Field checks shared with parsers. */
int ovms__field_ok(ovms_str_t s, int flags);

/* A comma tokenizer for parsers. "" is one empty field; "a," is "a" and "". */
typedef struct ovms__tok {
    const char *p, *end;
    int done;
} ovms__tok_t;

void ovms__tok_init(ovms__tok_t *t, ovms_str_t s);
/* 1 with the next field, 0 when none is left. */
int ovms__tok_next(ovms__tok_t *t, ovms_str_t *field);
/* 1 with everything not yet taken (commas included), 0 when none is left. */
int ovms__tok_rest(ovms__tok_t *t, ovms_str_t *rest);
/* Fields that must be present: OVMS_EFIELDS when missing. */
int ovms__tok_need(ovms__tok_t *t, ovms_str_t *field);
int ovms__tok_need_int(ovms__tok_t *t, int64_t *v);
/* Leading integer the way Perl numifies ("3abc" is 3, "x" is 0). */
int64_t ovms__lenient_int(ovms_str_t s);

#endif
