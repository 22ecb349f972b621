/*
 * fw_int.h -- internal to firmware/: what core.c, commands.c and history.c
 * share.
 */
#ifndef OVMS_FW_INT_H
#define OVMS_FW_INT_H

#include <stdlib.h>

#include "ovms_fw.h"

#define OVMS_FW_VERSION "ovms-fw-" OVMS_VERSION "/sim"

void fw_log(ovms_fw_t *fw, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int fw_sendf(ovms_fw_t *fw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fw_save_settings(ovms_fw_t *fw);
/* Copy a C string, truncating to fit. */
void fw_copy(char *dst, size_t cap, const char *src);
/* Take server, credentials and paranoid secret from the parameters. */
void fw_config_from_params(ovms_fw_t *fw);

/* commands.c */
void fw_command(ovms_fw_t *fw, ovms_str_t payload, int paranoid);

/* history.c */
void fw_history_load(ovms_fw_t *fw);
void fw_history_send_all(ovms_fw_t *fw);
void fw_history_ack(ovms_fw_t *fw, ovms_str_t payload);

/* sim.c, shared with sim_report.c and sim_commands.c */
enum { SIM_CS_CHARGING = 1, SIM_CS_TOPOFF = 2, SIM_CS_DONE = 4, SIM_CS_TIMERWAIT = 14,
       SIM_CS_STOPPED = 21 };
#define SIM_PIN_DEFAULT "1234"
#define SIM_LINE_VOLTAGE 230.0
#define SIM_MAX_AMPS 32
const char *sim_charge_state_name(int cs);
const char *sim_charge_mode_name(int mode);
double sim_soc_limit(const ovms_sim_t *sim);
double sim_ideal_range(const ovms_sim_t *sim);
double sim_est_range(const ovms_sim_t *sim);
/* Plugged in and asked to charge: charging (or waiting for the timer). */
int sim_charge_start(ovms_sim_t *sim);
void sim_charge_stop(ovms_sim_t *sim, int state);
void sim_step(void *self, uint64_t now_ms);
void sim_report(void *self, ovms_fw_report_t *out);
void sim_status(void *self, char *out, size_t cap);
int sim_command(void *self, int cmd, const char *params, char *text, size_t cap);

#endif
