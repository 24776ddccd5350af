/* fuzz_replay.c - runs a libFuzzer target over files named on the command line, so that the
 * fuzz targets build and replay their corpora with gcc too (no libFuzzer needed). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); return 2; }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
        if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); return 2; }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)(n > 0 ? n : 0));
        free(buf);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
