/* deploybench inference harness for generated C models (prefix "dbm").
 *
 * Reads run.cfg from the working directory (semihosting on Cortex-M, native stdio on Linux):
 *
 *     inferences N      timed loop length; 0 is the baseline run for instruction counting
 *     samples S         float32 samples in the input file (each DBM_INPUT_SIZE floats)
 *     input PATH        raw little-endian float32 inputs, S samples back to back
 *     output PATH       where outputs of each sample are written once (the functional pass,
 *                       streamed sample by sample); "-": none, a counting boot
 *
 * A counting boot loads its S samples before any inference, so file I/O never lands inside
 * the counted loop and the difference of two boots (N and 0) is N inferences plus N loop
 * iterations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define EXIT_CONFIG 1
#define EXIT_IO 2
#define EXIT_MODEL 4

static float output_buffer[DBM_OUTPUT_SIZE];

static int read_config(unsigned long *inferences, unsigned long *samples, char *input,
                       char *output)
{
    FILE *cfg = fopen("run.cfg", "r");
    if (cfg == NULL) {
        printf("DEPLOYBENCH-ERROR: cannot open run.cfg\n");
        return EXIT_CONFIG;
    }
    char line[320];
    int seen = 0;
    while (fgets(line, sizeof line, cfg) != NULL) {
        char key[32];
        char value[256];
        if (line[0] == '#' || sscanf(line, "%31s %255s", key, value) != 2) {
            continue;
        }
        if (strcmp(key, "inferences") == 0) {
            *inferences = strtoul(value, NULL, 10);
            seen |= 1;
        } else if (strcmp(key, "samples") == 0) {
            *samples = strtoul(value, NULL, 10);
            seen |= 2;
        } else if (strcmp(key, "input") == 0) {
            strcpy(input, value);
            seen |= 4;
        } else if (strcmp(key, "output") == 0) {
            strcpy(output, value);
            seen |= 8;
        }
    }
    fclose(cfg);
    if (seen != 15 || *samples == 0) {
        printf("DEPLOYBENCH-ERROR: run.cfg needs inferences, samples>0, input and output\n");
        return EXIT_CONFIG;
    }
    return 0;
}

int main(void)
{
    unsigned long inferences = 0;
    unsigned long samples = 0;
    char input_path[256];
    char output_path[256];
    int rc = read_config(&inferences, &samples, input_path, output_path);
    if (rc != 0) {
        return rc;
    }

    if (strcmp(output_path, "-") != 0) {
        /* The functional pass streams one sample at a time: the dataset need not fit in RAM
         * (360 digits are 92 KB, more than an lm3s6965evb has). */
        static float sample_buffer[DBM_INPUT_SIZE];
        FILE *in = fopen(input_path, "rb");
        FILE *out = fopen(output_path, "wb");
        if (in == NULL || out == NULL) {
            printf("DEPLOYBENCH-ERROR: cannot open %s or create %s\n", input_path, output_path);
            return EXIT_IO;
        }
        for (unsigned long s = 0; s < samples; s++) {
            if (fread(sample_buffer, sizeof(float), DBM_INPUT_SIZE, in) != DBM_INPUT_SIZE) {
                printf("DEPLOYBENCH-ERROR: cannot read sample %lu from %s\n", s, input_path);
                return EXIT_IO;
            }
            if (dbm_run(sample_buffer, output_buffer) != 0) {
                printf("DEPLOYBENCH-ERROR: dbm_run failed on sample %lu\n", s);
                return EXIT_MODEL;
            }
            if (fwrite(output_buffer, sizeof(float), DBM_OUTPUT_SIZE, out) != DBM_OUTPUT_SIZE) {
                printf("DEPLOYBENCH-ERROR: cannot write %s\n", output_path);
                return EXIT_IO;
            }
        }
        fclose(in);
        fclose(out);
    }
    if (strcmp(output_path, "-") == 0 || inferences > 0) {
        /* Counting boots (output "-": the baseline with 0 inferences and the counted ones)
         * load the same samples before any inference, so file I/O cancels out of their
         * difference and the counted loop is inferences plus loop steps only. */
        size_t input_floats = (size_t)samples * DBM_INPUT_SIZE;
        float *inputs = malloc(input_floats * sizeof(float));
        if (inputs == NULL) {
            printf("DEPLOYBENCH-ERROR: no RAM for %lu input samples\n", samples);
            return EXIT_IO;
        }
        FILE *in = fopen(input_path, "rb");
        if (in == NULL || fread(inputs, sizeof(float), input_floats, in) != input_floats) {
            printf("DEPLOYBENCH-ERROR: cannot read %lu samples from %s\n", samples, input_path);
            return EXIT_IO;
        }
        fclose(in);
        /* A wrapping pointer instead of `%`: no division (a library call on some cores). */
        const float *sample = inputs;
        const float *const last = inputs + (samples - 1) * DBM_INPUT_SIZE;
        int failures = 0;
        for (unsigned long i = 0; i < inferences; i++) {
            failures |= dbm_run(sample, output_buffer);
            sample = (sample == last) ? inputs : sample + DBM_INPUT_SIZE;
        }
        free(inputs);
        if (failures != 0) {
            printf("DEPLOYBENCH-ERROR: dbm_run failed in the counted loop\n");
            return EXIT_MODEL;
        }
    }
    printf("DEPLOYBENCH-DONE inferences=%lu samples=%lu\n", inferences, samples);
    return 0;
}
