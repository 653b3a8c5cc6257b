/* replay_main.c — run a libFuzzer target without libFuzzer: LLVMFuzzerTestOneInput once per
 * file named on the command line. ctest uses it to replay every committed seed corpus (and
 * every crash turned regression input) on each build, sanitizers included. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) {
            fprintf(stderr, "%s: cannot open\n", argv[i]);
            return 2;
        }
        uint8_t *buf = NULL;
        size_t n = 0, cap = 0;
        for (;;) {
            if (n == cap) {
                cap = cap ? 2 * cap : 4096;
                uint8_t *nb = realloc(buf, cap);
                if (!nb) abort();
                buf = nb;
            }
            size_t r = fread(buf + n, 1, cap - n, fp);
            if (r == 0) break;
            n += r;
        }
        fclose(fp);
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
    }
    printf("%d inputs replayed\n", argc - 1);
    return 0;
}
