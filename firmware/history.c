/*
 * history.c -- store and forward of historical records (h).
 *
 * A record is written to persistent storage before it is queued, sent with
 * an ack code, resent every 10 s while online, and dropped (and the
 * storage rewritten) only when the server's h<ackcode> arrives. So a record
 * survives reconnects and restarts until the server has it. A full queue
 * refuses new records rather than dropping old ones.
 * Threading: the core's.
 */
#include "fw_int.h"

#include <stdio.h>
#include <string.h>

#define HISTORY_MAGIC 0x4f564831u           /* "OVH1" */

static int save(ovms_fw_t *fw)
{
    fw->hq.magic = HISTORY_MAGIC;
    if (!fw->pf->save || fw->pf->save(fw->pf->ctx, "history", &fw->hq, sizeof fw->hq) < 0) {
        fw_log(fw, OVMS_FW_LOG_ERROR, "cannot save the history queue");
        return -1;
    }
    return 0;
}

void fw_history_load(ovms_fw_t *fw)
{
    if (!fw->pf->load || fw->pf->load(fw->pf->ctx, "history", &fw->hq, sizeof fw->hq) != (int)sizeof fw->hq ||
        fw->hq.magic != HISTORY_MAGIC || fw->hq.n < 0 || fw->hq.n > OVMS_FW_HISTORY) {
        memset(&fw->hq, 0, sizeof fw->hq);
        fw->hq.next_ackcode = 1;
        return;
    }
    if (!fw->hq.next_ackcode)
        fw->hq.next_ackcode = 1;
    if (fw->hq.n)
        fw_log(fw, OVMS_FW_LOG_INFO, "%d history records waiting for the server", fw->hq.n);
}

static void send_one(ovms_fw_t *fw, const ovms_fw_hrec_t *h)
{
    ovms_histack_t ha;
    char ack[16], msg[OVMS_LINE_MAX];
    int64_t diff = h->rec.when - fw->pf->wall(fw->pf->ctx);

    snprintf(ack, sizeof ack, "%u", h->ackcode);
    ha.ackcode = ovms_str_c(ack);
    ha.timediff = diff < 0 ? diff : 0;
    ha.type = ovms_str_c(h->rec.type);
    ha.recno = h->rec.recno;
    ha.lifetime = h->rec.lifetime;
    ha.data = ovms_str_c(h->rec.data);
    if (ovms_histack_format(&ha, msg, sizeof msg) > 0)
        ovms_fw_send(fw, msg);
}

void fw_history_send_all(ovms_fw_t *fw)
{
    if (fw->state != OVMS_FW_ONLINE || fw->peers < 0)
        return;
    for (int i = 0; i < fw->hq.n; i++)
        send_one(fw, &fw->hq.rec[i]);
    fw->next_retransmit = fw->now + 10000;
}

int ovms_fw_history_add(ovms_fw_t *fw, const ovms_fw_record_t *rec)
{
    if (fw->hq.n == OVMS_FW_HISTORY) {
        fw_log(fw, OVMS_FW_LOG_ERROR, "history queue full: %s record refused", rec->type);
        return -1;
    }
    ovms_fw_hrec_t *h = &fw->hq.rec[fw->hq.n++];
    h->ackcode = fw->hq.next_ackcode++;
    h->rec = *rec;
    h->rec.data[sizeof h->rec.data - 1] = '\0';
    if (save(fw) < 0) {
        fw->hq.n--;
        return -1;
    }
    fw_log(fw, OVMS_FW_LOG_INFO, "history record %s #%u queued", rec->type, h->ackcode);
    if (fw->state == OVMS_FW_ONLINE && fw->peers >= 0) {
        send_one(fw, h);
        if (fw->hq.n == 1)
            fw->next_retransmit = fw->now + 10000;
    }
    return 0;
}

void fw_history_ack(ovms_fw_t *fw, ovms_str_t payload)
{
    int64_t code;
    if (ovms_int_parse(payload, &code) < 0)
        return;
    for (int i = 0; i < fw->hq.n; i++) {
        if (fw->hq.rec[i].ackcode != (uint32_t)code)
            continue;
        memmove(&fw->hq.rec[i], &fw->hq.rec[i + 1],
                (size_t)(fw->hq.n - i - 1) * sizeof fw->hq.rec[0]);
        fw->hq.n--;
        fw->records_acked++;
        save(fw);
        fw_log(fw, OVMS_FW_LOG_DEBUG, "history record #%lld acknowledged", (long long)code);
        return;
    }
}
