/*
 * bench_report.c -- timing and report writing for the benchmarks.
 */
#include "bench_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *bench_machine(void)
{
    static char desc[256];
    char line[256], model[200] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && colon) {
                snprintf(model, sizeof model, "%s", colon + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        }
        fclose(f);
    }
    snprintf(desc, sizeof desc, "%ld cores, %s", sysconf(_SC_NPROCESSORS_ONLN), model);
    return desc;
}

static char *read_all(const char *file)
{
    FILE *f = fopen(file, "r");
    char *buf;
    long n;
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

int bench_report_section(const char *file, const char *name, const char *markdown)
{
    char open_tag[128], close_tag[128], tmp[1024];
    char *old = read_all(file), *start, *end;
    FILE *out;

    if (!old)
        return -1;
    snprintf(open_tag, sizeof open_tag, "<!-- bench:%s -->", name);
    snprintf(close_tag, sizeof close_tag, "<!-- /bench:%s -->", name);
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    out = fopen(tmp, "w");
    if (!out) {
        free(old);
        return -1;
    }
    start = strstr(old, open_tag);
    end = start ? strstr(start, close_tag) : NULL;
    if (start && end) {
        fwrite(old, 1, (size_t)(start - old), out);
        fprintf(out, "%s\n%s%s", open_tag, markdown, close_tag);
        fputs(end + strlen(close_tag), out);
    } else {
        fputs(old, out);
        fprintf(out, "%s%s\n%s%s\n", *old ? "\n" : "", open_tag, markdown, close_tag);
    }
    free(old);
    if (fclose(out) != 0 || rename(tmp, file) != 0)
        return -1;
    return 0;
}
