/*
 * sim_commands.c -- vehicle commands 10-26 (PROTOCOL 9) against the
 * simulated car. Results: 0 done, 1 refused (with the reason as text, as
 * V3 gives it), 2 for what this car has not got.
 * Threading: the caller's.
 */
#include "fw_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK 0
#define FAILED 1
#define UNSUPPORTED 2

/* Up to max integer parameters; returns how many were given, -1 if one is
 * not a number. */
static int int_params(const char *params, long *v, int max)
{
    int n = 0;
    const char *p = params;
    while (*p && n < max) {
        char *end;
        v[n] = strtol(p, &end, 10);
        if (end == p || (*end && *end != ','))
            return -1;
        n++;
        p = *end ? end + 1 : end;
    }
    return n;
}

static int fail(char *text, size_t cap, const char *why)
{
    snprintf(text, cap, "%s", why);
    return FAILED;
}

static int set_mode(ovms_sim_t *s, long mode, char *text, size_t cap)
{
    if (mode != 0 && mode != 1 && mode != 3 && mode != 4)
        return fail(text, cap, "unknown charge mode");
    s->charge_mode = (int)mode;
    /* a lower limit can end a charge; a higher one can restart a finished one */
    if (s->phase == OVMS_SIM_CHARGING && s->soc >= sim_soc_limit(s))
        sim_charge_stop(s, SIM_CS_DONE);
    else if (s->plugged && s->charge_state == SIM_CS_DONE && s->soc < sim_soc_limit(s) - 0.5)
        sim_charge_start(s);
    return OK;
}

static int set_current(ovms_sim_t *s, long amps, char *text, size_t cap)
{
    if (amps < 6 || amps > SIM_MAX_AMPS)
        return fail(text, cap, "charge current must be 6 to 32 A");
    s->charge_limit_a = (int)amps;
    return OK;
}

static int check_pin(const ovms_sim_t *s, const char *params, char *text, size_t cap)
{
    if (strcmp(params, s->pin) != 0) {
        fail(text, cap, "wrong PIN");
        return -1;
    }
    return 0;
}

static int charge_command(ovms_sim_t *s, int cmd, const char *params, char *text, size_t cap)
{
    long v[2];
    int n = int_params(params, v, 2);
    switch (cmd) {
    case 10:
        return n == 1 ? set_mode(s, v[0], text, cap) : fail(text, cap, "expected <mode>");
    case 11:
        if (!s->plugged)
            return fail(text, cap, "not plugged in");
        if (s->soc >= sim_soc_limit(s) - 0.5)
            return fail(text, cap, "already charged to the limit of this mode");
        return sim_charge_start(s) == 0 ? OK : fail(text, cap, "cannot charge now");
    case 12:
        if (s->phase != OVMS_SIM_CHARGING)
            return fail(text, cap, "not charging");
        sim_charge_stop(s, SIM_CS_STOPPED);
        return OK;
    case 15:
        return n == 1 ? set_current(s, v[0], text, cap) : fail(text, cap, "expected <amps>");
    case 16:
        if (n != 2)
            return fail(text, cap, "expected <mode>,<amps>");
        if (set_current(s, v[1], text, cap) != OK)
            return FAILED;
        return set_mode(s, v[0], text, cap);
    case 17:
        if (n != 2 || (v[0] != 0 && v[0] != 1) || v[1] < 0 || v[1] > 0xFFFF)
            return fail(text, cap, "expected <timermode 0/1>,<start>");
        s->timer_mode = (int)v[0];
        s->timer_start = (int)v[1];
        if (s->phase == OVMS_SIM_CHARGING)
            sim_charge_start(s);        /* re-evaluate the timer */
        return OK;
    default:
        return UNSUPPORTED;
    }
}

static int body_command(ovms_sim_t *s, int cmd, const char *params, char *text, size_t cap)
{
    long v[1];
    switch (cmd) {
    case 18:
    case 19:
        return OK;                      /* the simulated car is always awake */
    case 20:
    case 22:
        if (check_pin(s, params, text, cap) < 0)
            return FAILED;
        if (cmd == 22 && s->phase == OVMS_SIM_DRIVING)
            return OK;                  /* unlocked while driving already */
        s->locked = cmd == 20;
        return OK;
    case 21:
    case 23:
        if (check_pin(s, params, text, cap) < 0)
            return FAILED;
        s->valet = cmd == 21;
        return OK;
    case 24:
        if (*params && (int_params(params, v, 1) != 1 || v[0] < 0 || v[0] > 2))
            return fail(text, cap, "button must be 0, 1 or 2");
        s->homelink = *params ? (int)v[0] + 1 : 1;
        snprintf(text, cap, "homelink %d activated", s->homelink - 1);
        return OK;
    case 25:
        if (!s->plugged)
            return fail(text, cap, "not plugged in");
        s->cooldown_until = s->ticks + 15 * 60;
        return OK;
    case 26:
        if (int_params(params, v, 1) != 1 || (v[0] != 0 && v[0] != 1))
            return fail(text, cap, "expected 0 (off) or 1 (on)");
        s->climate = (int)v[0];
        return OK;
    default:
        return UNSUPPORTED;
    }
}

int sim_command(void *self, int cmd, const char *params, char *text, size_t cap)
{
    ovms_sim_t *s = self;
    if (cmd >= 10 && cmd <= 17)
        return charge_command(s, cmd, params, text, cap);
    return body_command(s, cmd, params, text, cap);
}
