/* bench_pack.c - .smelt throughput per core, in process (no start-up costs): packs FILE REPS
 * times with one thread (sm_smelt_pack: read, plane split, zstd, xxh3, write to the page cache)
 * and verifies the result REPS times (sm_smelt_verify_file: every chunk decoded and every
 * checksum computed), timing CPU seconds of the process (CLOCK_PROCESS_CPUTIME_ID), so other
 * load on a shared machine does not count. Prints: bytes packed_bytes pack_cpu_s verify_cpu_s.
 * usage: bench_pack FILE OUT.smelt [REPS] */
#include "formats/smelt.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_pack FILE OUT.smelt [REPS]\n");
        return 2;
    }
    const int reps = argc > 3 ? atoi(argv[3]) : 10;
    setenv("SMELT_THREADS", "1", 1);
    sm_outfile_set_durable(false);
    sm_smelt_pack_opts o = {.threads = 1, .quiet = true};
    double t0 = cpu_now();
    for (int i = 0; i < reps; i++)
        if (sm_smelt_pack(argv[1], argv[2], &o)) {
            fprintf(stderr, "%s\n", sm_last_error());
            return 1;
        }
    const double tp = cpu_now() - t0;
    uint64_t nt, nb = 0;
    t0 = cpu_now();
    for (int i = 0; i < reps; i++)
        if (sm_smelt_verify_file(argv[2], &nt, &nb)) {
            fprintf(stderr, "%s\n", sm_last_error());
            return 1;
        }
    const double tv = cpu_now() - t0;
    FILE *f = fopen(argv[2], "rb");
    fseek(f, 0, SEEK_END);
    const long packed = ftell(f);
    fclose(f);
    printf("%llu %ld %.6f %.6f\n", (unsigned long long)nb, packed, tp / reps, tv / reps);
    return 0;
}
