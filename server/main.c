/*
 * main.c -- ovmsd: one OVMS v2 server node in the foreground.
 *   ovmsd [--config FILE] --db PATH --listen HOST:PORT [...]
 * Exit status: 0 after a clean shutdown, 1 when the node cannot start or
 * fails, 2 for a bad configuration (one line on stderr says what).
 */
#include <stdio.h>

#include "ovms_server.h"

int main(int argc, char **argv)
{
    ovms_config_t cfg;
    char err[512];
    int rc = ovms_config_load(&cfg, argc, argv, err, sizeof err);

    if (rc == 1)
        return 0;
    if (rc != 0) {
        fprintf(stderr, "ovmsd: %s\n", err);
        return 2;
    }
    return ovms_server_run(&cfg);
}
