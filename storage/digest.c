/*
 * digest.c -- one line per replicated table (rows and a SHA-256 over the
 * content in key order), so that two nodes' stores can be compared at a
 * glance: `ovms-admin cluster digest`.
 *
 * What goes in is what replication makes equal: every column a record
 * carries, with the version (changed, origin, seq) that won, tombstones
 * included; not what is local by design (a vehicle's type, push
 * subscriptions, provisioning records, the watermarks). History that has
 * expired by the time of the read is left out, because each node expires
 * on its own schedule.
 * Threading: a reader thread, inside its read transaction.
 */
#include "store_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *table;
    const char *sql;
} TABLES[] = {
    { "owners", "SELECT id, name, mail, pwhash, status, deleted, changed, origin, seq "
                "FROM owners ORDER BY id" },
    { "vehicles", "SELECT vehicleid, owner, carpass, v_server, created, deleted, changed, origin, "
                  "seq, ptoken, ptoken_changed, ptoken_origin, ptoken_seq "
                  "FROM vehicles ORDER BY vehicleid" },
    { "messages", "SELECT vehicleid, code, payload, received, paranoid, ptoken, origin, seq "
                  "FROM messages ORDER BY vehicleid, code" },
    { "apitokens", "SELECT hash, owner, prefix, application, purpose, permit, created, deleted, "
                   "changed, origin, seq FROM apitokens ORDER BY hash" },
    { "history", "SELECT vehicleid, type, recno, ts, korigin, expires, data, origin, seq "
                 "FROM history WHERE expires >= ?1 ORDER BY vehicleid, type, ts, recno, korigin" },
};

/* Each cell as its length and bytes, so that no two contents collide. */
static void hash_row(EVP_MD_CTX *md, sqlite3_stmt *s)
{
    for (int i = 0; i < sqlite3_column_count(s); i++) {
        const unsigned char *p = sqlite3_column_text(s, i);
        char len[24];
        int n = snprintf(len, sizeof len, "%d:", sqlite3_column_bytes(s, i));
        EVP_DigestUpdate(md, len, (size_t)n);
        if (p)
            EVP_DigestUpdate(md, p, (size_t)sqlite3_column_bytes(s, i));
    }
}

static int digest_table(store_conn_t *c, const char *sql, int64_t now, long long *rows,
                        char hex[65])
{
    sqlite3_stmt *s = store_stmt(c, sql);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char out[32];
    unsigned int outlen = 0;
    int rc;

    *rows = 0;
    if (!s || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return s ? OVMS_ENOMEM : OVMS_EIO;
    }
    if (sqlite3_bind_parameter_count(s))
        sqlite3_bind_int64(s, 1, now);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        hash_row(md, s);
        (*rows)++;
    }
    sqlite3_reset(s);
    EVP_DigestFinal_ex(md, out, &outlen);
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; i < outlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", out[i]);
    return rc == SQLITE_DONE ? 0 : store_sql_error(c->db, rc);
}

int store_digest(store_conn_t *c, ovms_store_req_t *req)
{
    store_rows_builder_t b;
    int64_t now = store_now();

    store_rows_begin(&b, &req->rows, 3);
    for (size_t t = 0; t < sizeof TABLES / sizeof TABLES[0]; t++) {
        char hex[65] = "", count[24];
        long long rows;
        int rc = digest_table(c, TABLES[t].sql, now, &rows, hex);
        if (rc < 0) {
            store_rows_end(&b);
            return rc;
        }
        snprintf(count, sizeof count, "%lld", rows);
        const char *cells[3] = { TABLES[t].table, count, hex };
        store_rows_add(&b, cells, NULL);
    }
    return store_rows_end(&b);
}
