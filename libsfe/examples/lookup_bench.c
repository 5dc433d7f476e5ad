/*
 * B+-tree lookups through sfe_read_xrp, timed from C: what
 * libsfe/examples/overhead.rs compares with the same chains through the
 * Rust API. usage: lookup_bench DEVICE DB LOOKUP.o N  -> prints "ns_per_lookup X"
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "sfe.h"

int main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	struct sfe_engine *e;
	if (sfe_engine_open(argv[1], NULL, 0, &e) < 0) {
		fprintf(stderr, "%s\n", sfe_last_error());
		return 1;
	}
	int fd = open(argv[2], O_RDONLY);
	uint64_t sb[8];
	if (fd < 0 || pread(fd, sb, sizeof sb, 0) != sizeof sb)
		return 1;
	uint64_t root = sb[1], nkeys = sb[2];
	int prog = sfe_prog_load(e, argv[3], NULL, 4096);
	if (prog < 0) {
		fprintf(stderr, "%s\n", sfe_last_error());
		return 1;
	}
	long n = atol(argv[4]);
	uint8_t *buf = aligned_alloc(4096, 4096);
	uint64_t *scratch = aligned_alloc(4096, SFE_SCRATCH_SIZE);
	memset(scratch, 0, SFE_SCRATCH_SIZE);
	struct timespec t0, t1;
	for (int pass = 0; pass < 2; pass++) { /* pass 0 warms up */
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (long i = 0; i < n; i++) {
			scratch[0] = 2 * ((uint64_t)(i * 7919) % nkeys) + 2;
			if (sfe_read_xrp(e, fd, buf, 4096, (int64_t)root, prog, scratch) != 4096 || scratch[2] != 1) {
				fprintf(stderr, "lookup %ld: %s\n", i, sfe_last_error());
				return 1;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
	}
	double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
	printf("ns_per_lookup %.1f\n", ns / (double)n);
	sfe_engine_close(e);
	return 0;
}
