/*
 * bench_report.h -- shared by the benchmarks: timing and writing a section
 * of docs/benchmarks.md between markers, so each benchmark owns its part of
 * the page and reruns replace old figures instead of appending.
 */
#ifndef OVMS_BENCH_REPORT_H
#define OVMS_BENCH_REPORT_H

#include <stddef.h>

double bench_now(void);                 /* monotonic seconds */
const char *bench_machine(void);        /* "2 cores, <cpu model>" */
/* Replace the text between <!-- bench:NAME --> and <!-- /bench:NAME --> in
 * the file (adding the section at the end when missing). */
int bench_report_section(const char *file, const char *name, const char *markdown);

#endif
