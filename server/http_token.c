/*
 * http_token.c -- /api/token (HTTP-API.md §6.3-§6.5): an owner's API
 * tokens, listed, made and removed. The route asks for token.admin (or
 * admin).
 *
 * A token is made here from the CSPRNG (32 bytes, 64 lower-case hex
 * characters: the reference's format) and shown once, in the 201 answer:
 * the store keeps only its hash, so the listing names each token by its
 * first 8 characters and "…" (an ovmsd deviation), and a DELETE takes the
 * whole token or that prefix. A new token's permit may not grant what the
 * caller's own does not (§14 S5). Answers wait for the commit, so a token
 * just shown works at once on this node, and on the others as soon as
 * replication (an RK record) reaches them.
 */
#include "http_auth.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static api_req_t *req_of(sreq_t *r)
{
    return (api_req_t *)(intptr_t)r->arg;
}

/* An sreq whose answer goes to a; NULL (a answered) when there is none. */
static sreq_t *token_sreq(api_req_t *a, sreq_cb done)
{
    sreq_t *r = sreq_new(a->c->w, NULL, NULL, done);
    if (!r) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        api_done(a);
        return NULL;
    }
    r->arg = (int64_t)(intptr_t)a;
    return r;
}

static void submit(api_req_t *a, sreq_t *r, int prep)
{
    if (prep < 0) {
        sreq_free(r);
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        api_done(a);
        return;
    }
    sreq_submit(r);                  /* a refused one completes as a failure: its done answers */
}

/* ---- GET: the listing (§6.3) --------------------------------------------------------------------- */

static void listed(sreq_t *r)
{
    api_req_t *a = req_of(r);
    const ovms_store_rows_t *rows = &r->req.rows;
    if (r->req.status < 0) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
        api_done(a);
        return;
    }
    json_t *list = json_array();
    for (int i = 0; list && i < rows->nrows; i++) {
        char masked[16];
        snprintf(masked, sizeof masked, "%s\xe2\x80\xa6", ovms_store_cell(rows, i, 0));   /* "…" */
        json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
            "token", masked, "application", ovms_store_cell(rows, i, 1),
            "purpose", ovms_store_cell(rows, i, 2), "permit", ovms_store_cell(rows, i, 3),
            "created", ovms_store_cell(rows, i, 4), "refreshed", ovms_store_cell(rows, i, 4),
            "lastused", ovms_store_cell(rows, i, 5), "owner", a->who.owner));
    }
    api_json(a, 200, "Ok", list, NULL);
    api_done(a);
}

void api_token_get(api_req_t *a)
{
    sreq_t *r = token_sreq(a, listed);
    if (r) {
        int rc = ovms_store_prep_token_list(&r->req, a->who.owner);
        ovms_store_req_ordered(&r->req);         /* sees a token made a moment ago */
        submit(a, r, rc);
    }
}

/* ---- POST: a new token (§6.4) -------------------------------------------------------------------- */

typedef struct fields {
    char application[33], purpose[81], permit[256];
} fields_t;

static int param(api_req_t *a, const char *name, const char *dflt, char *out, size_t cap, int commas);

/* The form's fields with their defaults: NULL, or the name of a bad one. */
static const char *fields_of(api_req_t *a, fields_t *f)
{
    return !param(a, "application", "notspecified", f->application, sizeof f->application, 0) ? "application"
         : !param(a, "purpose", "notspecified", f->purpose, sizeof f->purpose, 0) ? "purpose"
         : !param(a, "permit", "auth", f->permit, sizeof f->permit, 1) ? "permit" : NULL;
}

static void made(sreq_t *r)
{
    api_req_t *a = req_of(r);
    char *token = r->text;           /* the new token: shown once, here */
    fields_t m;
    fields_of(a, &m);                /* checked before the write */
    int rc = r->req.status;
    if (rc == OVMS_EQUOTA) {
        char body[80];
        snprintf(body, sizeof body, "Too many tokens (at most %d)\n", OVMS_TOKENS_PER_OWNER);
        api_text(a, 409, "Conflict", body);
    } else if (rc < 0) {
        api_text(a, 500, "Internal Server Error", "Internal error\n");
    } else {
        api_json(a, 201, "Created", json_pack("{s:s,s:s,s:s,s:s,s:s}", "application", m.application,
                                              "owner", a->who.owner, "permit", m.permit,
                                              "purpose", m.purpose, "token", token), NULL);
    }
    OPENSSL_cleanse(token, OVMS_TOKEN_HEX);
    api_done(a);
}

/* A form parameter with its default; 0 when given too long or with what
 * the column may not hold (commas in application and purpose: they travel
 * in a replicated record's inner fields). */
static int param(api_req_t *a, const char *name, const char *dflt, char *out, size_t cap, int commas)
{
    char buf[1024];
    if (!http_form_body(a->r, name, buf, sizeof buf)) {
        snprintf(out, cap, "%s", dflt);
        return 1;
    }
    if (strlen(buf) >= cap || strpbrk(buf, "\r\n") || (!commas && strchr(buf, ',')))
        return 0;
    snprintf(out, cap, "%s", buf);
    return 1;
}

static void random_token(char out[OVMS_TOKEN_HEX + 1])
{
    uint8_t b[OVMS_TOKEN_HEX / 2];
    if (RAND_bytes(b, sizeof b) != 1)
        abort();                     /* no CSPRNG: no tokens, never a weak one (§14 S7) */
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    OPENSSL_cleanse(b, sizeof b);
}

void api_token_post(api_req_t *a)
{
    fields_t m;
    const char *bad = fields_of(a, &m);
    if (bad) {
        char body[64];
        snprintf(body, sizeof body, "Invalid parameter: %s\n", bad);
        api_text(a, 400, "Bad Request", body);
        api_done(a);
        return;
    }
    if (!http_permits_all(a->who.permit, m.permit)) {
        api_text(a, 403, "Forbidden", "Insufficient rights\n");
        api_done(a);
        return;
    }
    sreq_t *r = token_sreq(a, made);
    if (!r)
        return;
    random_token(r->text);
    submit(a, r, ovms_store_prep_token_put(&r->req, a->who.owner, r->text, m.application, m.purpose,
                                           m.permit));
}

/* ---- DELETE (§6.5) ------------------------------------------------------------------------------ */

static void removed(sreq_t *r)
{
    api_req_t *a = req_of(r);
    if (r->req.status == OVMS_EEXIST)
        api_text(a, 409, "Conflict", "Token prefix is ambiguous: give the whole token\n");
    else if (r->req.status < 0)
        api_text(a, 500, "Internal Server Error", "Internal error\n");
    else                             /* also when there was no such token (F18: reproduced) */
        api_json(a, 200, "Ok", json_pack("{s:s,s:s}", "owner", a->who.owner, "token", a->args[0]), NULL);
    api_done(a);
}

void api_token_delete(api_req_t *a)
{
    if (!a->args[0][0]) {
        api_text(a, 404, "Token missing", "Token not specified\n");
        api_done(a);
        return;
    }
    sreq_t *r = token_sreq(a, removed);
    if (r)
        submit(a, r, ovms_store_prep_token_remove(&r->req, a->who.owner, a->args[0]));
}
