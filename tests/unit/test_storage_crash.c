/*
 * test_storage_crash.c -- crash safety: a child process streams history
 * records into the store and reports every acknowledgement through a pipe;
 * the parent kills it with SIGKILL mid-stream, reopens the database and
 * checks that every acknowledged record is there.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ovms_store.h"

#define IN_FLIGHT 256

static int ack_fd;

/* Runs on the writer thread after the commit: report the record number. */
static void report_ack(void *ctx, ovms_store_req_t *req)
{
    int32_t recno = (int32_t)(intptr_t)req->data;
    (void)ctx;
    if (req->status == 0 && write(ack_fd, &recno, sizeof recno) != sizeof recno)
        _exit(3);
    __atomic_store_n((int *)&req->op, 0, __ATOMIC_RELEASE);   /* slot free again */
}

static void child_stream(const char *path, int fd)
{
    ovms_store_config_t cfg = { .path = path };
    ovms_store_t *st;
    static ovms_store_req_t reqs[IN_FLIGHT];
    ovms_store_sink_t sink = { report_ack, NULL };

    ack_fd = fd;
    if (ovms_store_open(&st, &cfg, NULL, 0) != 0)
        _exit(1);
    for (int32_t recno = 0;; recno++) {
        ovms_store_req_t *req = &reqs[recno % IN_FLIGHT];
        while (__atomic_load_n(&req->op, __ATOMIC_ACQUIRE) != 0)
            usleep(50);
        ovms_store_req_cleanup(req);
        ovms_store_prep_hist_put(req, "CAR", "*-LOG-Crash", recno, 1000, 99999999999,
                                 "payload,that,must,survive", 25);
        req->data = (void *)(intptr_t)recno;
        if (ovms_store_submit(st, req, &sink, NULL) != 0)
            _exit(2);
    }
}

Test(storage_crash, acknowledged_records_survive_sigkill)
{
    char dir[] = "/tmp/ovms-crash-XXXXXX", path[300];
    int fds[2];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/node.db", dir);

    /* the vehicle exists before the stream starts */
    ovms_store_config_t cfg = { .path = path, .node_id = "N1" };
    ovms_store_t *st;
    ovms_store_req_t req;
    cr_assert_eq(ovms_store_open(&st, &cfg, NULL, 0), 0);
    ovms_store_req_init(&req);
    ovms_store_prep_vehicle_put(&req, "CAR", NULL, "pw", NULL, NULL, OVMS_STORE_CREATE);
    cr_assert_eq(ovms_store_run(st, &req), 0);
    ovms_store_close(st);

    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_stream(path, fds[1]);
    }
    close(fds[1]);

    /* let it acknowledge a few thousand, then kill it without warning */
    static char acked[1 << 22];
    int32_t recno;
    int n = 0, max = -1;
    while (n < 5000 && read(fds[0], &recno, sizeof recno) == sizeof recno) {
        acked[recno] = 1;
        n++;
        max = recno > max ? recno : max;
    }
    kill(pid, SIGKILL);
    /* acknowledgements already in the pipe count too */
    while (read(fds[0], &recno, sizeof recno) == sizeof recno) {
        acked[recno] = 1;
        n++;
        max = recno > max ? recno : max;
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child ended otherwise");
    cr_assert_geq(n, 5000);

    /* reopen (recovering the WAL) and look for every acknowledged record */
    cr_assert_eq(ovms_store_open(&st, &cfg, NULL, 0), 0);
    ovms_store_prep_hist_list(&req, "CAR", "*-LOG-Crash");
    cr_assert_eq(ovms_store_run(st, &req), 0);
    static char stored[1 << 22];
    for (int i = 0; i < req.rows.nrows; i++) {
        int r = atoi(ovms_store_cell(&req.rows, i, 2));
        cr_assert_str_eq(ovms_store_cell(&req.rows, i, 4), "payload,that,must,survive");
        stored[r] = 1;
    }
    int lost = 0;
    for (int r = 0; r <= max; r++)
        lost += acked[r] && !stored[r];
    cr_assert_eq(lost, 0, "%d of %d acknowledged records lost", lost, n);
    cr_log_info("%d acknowledged, %d stored, 0 lost", n, req.rows.nrows);
    ovms_store_req_cleanup(&req);
    ovms_store_close(st);
}
