/*
 * The C side of BENCHMARKS.md item 8: device tokens through the C API.
 *
 *   ffi_device_token DEVICE_YML KEY_DIR CALLS
 *
 * Makes a client, gets one token (discovery, connection: not timed), then
 * CALLS tokens one after the other, each timed, and prints
 * "US t1 t2 ..." (microseconds per call) and "CPU_NS n" (the CPU time all
 * the process's threads spent during the loop, from
 * /proc/self/task/TID/schedstat). bench-ffi runs it alternately with its
 * Rust twin (the same loop over OnesIdClient::device_token) and compares
 * the two. It also prints "LIB path", the libonesoidc it runs on (a
 * LD_LIBRARY_PATH, as `cargo run` sets one, could pick a debug build).
 */
#define _GNU_SOURCE /* dladdr */

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <onesoidc.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* CPU time of all this process's threads so far, in ns. */
static unsigned long long cpu_ns(void) {
    unsigned long long total = 0;
    DIR *tasks = opendir("/proc/self/task");
    if (tasks == NULL) {
        return 0;
    }
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        char path[320];
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", entry->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long ns = 0;
        if (f != NULL && fscanf(f, "%llu", &ns) == 1) {
            total += ns;
        }
        if (f != NULL) {
            fclose(f);
        }
    }
    closedir(tasks);
    return total;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s DEVICE_YML KEY_DIR CALLS\n", argv[0]);
        return 2;
    }
    int calls = atoi(argv[3]);
    onesoidc_client *client = NULL;
    char *token = NULL;
    if (onesoidc_client_new(argv[1], argv[2], &client) != ONESOIDC_OK ||
        onesoidc_device_token(client, &token) != ONESOIDC_OK) {
        fprintf(stderr, "ffi_device_token: %s\n", onesoidc_last_error());
        return 1;
    }
    onesoidc_string_free(token);
    Dl_info library;
    if (dladdr((void *)onesoidc_version, &library) != 0 && library.dli_fname != NULL) {
        printf("LIB %s\n", library.dli_fname);
    }
    unsigned long long cpu_before = cpu_ns();
    printf("US");
    for (int i = 0; i < calls; i++) {
        double start = now_us();
        int status = onesoidc_device_token(client, &token);
        double took = now_us() - start;
        if (status != ONESOIDC_OK) {
            fprintf(stderr, "ffi_device_token: %s\n", onesoidc_last_error());
            return 1;
        }
        onesoidc_string_free(token);
        printf(" %.1f", took);
    }
    printf("\nCPU_NS %llu\n", cpu_ns() - cpu_before);
    onesoidc_client_free(client);
    return 0;
}
