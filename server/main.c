/*
 * main.c -- ovmsd: one OVMS v2 server node in the foreground.
 *   ovmsd [--config FILE] --db PATH --listen HOST:PORT [...]
 *   ovmsd --check-config [--config FILE] [...]   check, say what would run, exit
 * Exit status: 0 after a clean shutdown (or a good check), 1 when the node
 * cannot start or fails, 2 for a bad configuration (one line on stderr
 * says what).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ovms_server.h"

/* One paragraph an operator can read before a restart: what would run. */
static void print_summary(const ovms_config_t *cfg)
{
    printf("configuration ok: node %s, database %s\n", cfg->node_id[0] ? cfg->node_id : "(the database's)",
           cfg->db_path);
    for (int i = 0; i < cfg->nlisten; i++)
        printf("  listen %s:%d\n", cfg->listen[i].host, cfg->listen[i].port);
    for (int i = 0; i < cfg->ntls_listen; i++)
        printf("  tls_listen %s:%d\n", cfg->tls_listen[i].host, cfg->tls_listen[i].port);
    for (int i = 0; i < cfg->npeers; i++) {
        if (cfg->peers[i].host[0])
            printf("  peer %s, dialed at %s:%d\n", cfg->peers[i].id, cfg->peers[i].host, cfg->peers[i].port);
        else
            printf("  peer %s, which dials us\n", cfg->peers[i].id);
    }
    printf("  redis %s\n", cfg->redis[0] ? cfg->redis : "(none: no live traffic across nodes)");
}

int main(int argc, char **argv)
{
    ovms_config_t cfg;
    char err[512];
    int check = 0, n = 0;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args)
        return 1;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--check-config"))
            check = 1;
        else
            args[n++] = argv[i];
    }
    int rc = ovms_config_load(&cfg, n, args, err, sizeof err);
    if (rc == 0 && check)
        print_summary(&cfg);
    else if (rc == 0)
        rc = ovms_server_run(&cfg);       /* (args lives as long: a reload re-reads the flags) */
    else if (rc == 1)
        rc = 0;                           /* --help, --version */
    else {
        fprintf(stderr, "ovmsd: %s\n", err);
        rc = 2;
    }
    free(args);
    return rc;
}
