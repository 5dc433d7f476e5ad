/*
 * libsfe's error paths, from C: an unknown program handle, a program the
 * verifier rejects, a file that is not on the engine's device, a NULL
 * engine, a program that aborts its chain, and a file that changes while a
 * chain runs (the chain ends -ESTALE; the next one reads the new extents).
 *
 * usage: errors DB DEVICE LOOKUP.o BAD.o OTHER_FILE
 * DB is a database file this test may append to.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sfe.h"

static int failures;

#define CHECK(cond, ...)                                   \
	do {                                               \
		if (!(cond)) {                             \
			fprintf(stderr, "FAILED %s: ", #cond); \
			fprintf(stderr, __VA_ARGS__);      \
			fprintf(stderr, "\n");             \
			failures++;                        \
		}                                          \
	} while (0)

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s DB DEVICE LOOKUP.o BAD.o OTHER_FILE\n", argv[0]);
		return 2;
	}
	struct sfe_engine *e = NULL;
	int rc = sfe_engine_open(argv[2], NULL, 0, &e);
	if (rc < 0) {
		fprintf(stderr, "sfe_engine_open: %s\n", sfe_last_error());
		return 1;
	}
	int fd = open(argv[1], O_RDONLY);
	uint8_t sb[512];
	if (fd < 0 || pread(fd, sb, sizeof sb, 0) != sizeof sb) {
		perror(argv[1]);
		return 1;
	}
	uint64_t root, node_size;
	memcpy(&root, sb + 8, 8);
	memcpy(&node_size, sb + 32, 8);
	uint8_t *buf = aligned_alloc(4096, 4096);
	uint64_t *scratch = aligned_alloc(4096, SFE_SCRATCH_SIZE);
	memset(scratch, 0, SFE_SCRATCH_SIZE);

	int prog = sfe_prog_load(e, argv[3], NULL, 0);
	CHECK(prog >= 0, "loading the lookup program: %s", sfe_last_error());

	/* An unknown program handle. */
	ssize_t r = sfe_read_xrp(e, fd, buf, node_size, (int64_t)root, prog + 1000, scratch);
	CHECK(r == -EBADF, "unknown handle gave %zd", r);
	CHECK(strstr(sfe_last_error(), "unknown program handle") != NULL, "message: %s", sfe_last_error());
	CHECK(sfe_last_status() == SFE_STATUS_NOT_STARTED, "status %d", sfe_last_status());

	/* A program the verifier rejects: the message says why. */
	rc = sfe_prog_load(e, argv[4], NULL, 0);
	CHECK(rc == -EINVAL, "rejected program gave %d", rc);
	CHECK(strstr(sfe_last_error(), "verifier") != NULL, "message: %s", sfe_last_error());
	fprintf(stderr, "rejection message: %s\n", sfe_last_error());
	rc = sfe_prog_load(e, "/nonexistent/prog.o", NULL, 0);
	CHECK(rc == -ENOENT, "missing object gave %d", rc);

	/* A file on another device. */
	int other = open(argv[5], O_RDONLY);
	CHECK(other >= 0, "open %s", argv[5]);
	r = sfe_read_xrp(e, other, buf, 512, 0, prog, scratch);
	CHECK(r == -EXDEV, "file on another device gave %zd", r);
	CHECK(strstr(sfe_last_error(), "not on") != NULL, "message: %s", sfe_last_error());
	fprintf(stderr, "other device message: %s\n", sfe_last_error());

	/* NULL arguments are errors, not crashes. */
	r = sfe_read_xrp(NULL, fd, buf, node_size, (int64_t)root, prog, scratch);
	CHECK(r == -EINVAL, "NULL engine gave %zd", r);
	r = sfe_read_xrp(e, fd, NULL, node_size, (int64_t)root, prog, scratch);
	CHECK(r == -EINVAL, "NULL buf gave %zd", r);
	r = sfe_read_xrp(e, -1, buf, node_size, (int64_t)root, prog, scratch);
	CHECK(r == -EBADF, "fd -1 gave %zd", r);
	CHECK(sfe_engine_open(NULL, NULL, 0, &e) == -EINVAL, "NULL device");

	/* A lookup that works, then one the program aborts (the superblock is not a tree node). */
	scratch[0] = 2;
	r = sfe_read_xrp(e, fd, buf, node_size, (int64_t)root, prog, scratch);
	CHECK(r == (ssize_t)node_size && scratch[2] == 1, "lookup of key 2: %zd found %lu: %s", r, (unsigned long)scratch[2], sfe_last_error());
	r = sfe_read_xrp(e, fd, buf, node_size, 0, prog, scratch);
	CHECK(r == -ECANCELED && sfe_last_status() == SFE_STATUS_ABORTED, "abort gave %zd status %d", r, sfe_last_status());
	/* A read past the end of the file. */
	r = sfe_read_xrp(e, fd, buf, node_size, 1LL << 40, prog, scratch);
	CHECK(r == -EFAULT && sfe_last_status() == SFE_STATUS_ACCESS, "read past the end gave %zd status %d", r, sfe_last_status());
	/* A size the device cannot read. */
	r = sfe_read_xrp(e, fd, buf, 100, (int64_t)root, prog, scratch);
	CHECK(r == -EINVAL && sfe_last_status() == SFE_STATUS_BAD_SIZE, "size 100 gave %zd status %d", r, sfe_last_status());

	/* The file changes during a chain: chain A is in flight when the file
	 * grows (new extents, new version); chain B, submitted after, maps the
	 * file again. A must end -ESTALE, B must succeed. */
	uint64_t *sa = aligned_alloc(4096, SFE_SCRATCH_SIZE), *sb2 = aligned_alloc(4096, SFE_SCRATCH_SIZE);
	uint8_t *ba = aligned_alloc(4096, 4096), *bb = aligned_alloc(4096, 4096);
	memset(sa, 0, SFE_SCRATCH_SIZE);
	memset(sb2, 0, SFE_SCRATCH_SIZE);
	sa[0] = 4;
	sb2[0] = 4;
	rc = sfe_submit_xrp(e, fd, ba, node_size, (int64_t)root, prog, sa, 1);
	CHECK(rc == 0, "submit A: %s", sfe_last_error());
	CHECK(sfe_in_flight(e) == 1, "in flight %d", sfe_in_flight(e));
	int w = open(argv[1], O_WRONLY | O_APPEND);
	static uint8_t grow[1 << 16];
	CHECK(w >= 0 && write(w, grow, sizeof grow) == sizeof grow && fsync(w) == 0, "growing the file");
	close(w);
	rc = sfe_submit_xrp(e, fd, bb, node_size, (int64_t)root, prog, sb2, 2);
	CHECK(rc == 0, "submit B: %s", sfe_last_error());
	struct sfe_completion done[4];
	int got = 0, seen_a = 0, seen_b = 0;
	for (int spins = 0; got < 2 && spins < 1000000; spins++) {
		int n = sfe_poll(e, done, 4);
		CHECK(n >= 0, "poll: %s", sfe_last_error());
		for (int i = 0; i < n; i++) {
			if (done[i].user_data == 1) {
				seen_a = 1;
				CHECK(done[i].result == -ESTALE && done[i].status == SFE_STATUS_STALE, "A: result %lld status %d",
				      (long long)done[i].result, done[i].status);
			} else if (done[i].user_data == 2) {
				seen_b = 1;
				CHECK(done[i].result == (int64_t)node_size && sb2[2] == 1 && sb2[0] == 4, "B: result %lld found %lu",
				      (long long)done[i].result, (unsigned long)sb2[2]);
			}
		}
		got += n > 0 ? n : 0;
	}
	CHECK(seen_a && seen_b, "both chains reported (a %d b %d)", seen_a, seen_b);
	CHECK(sfe_in_flight(e) == 0, "in flight after poll %d", sfe_in_flight(e));

	CHECK(sfe_prog_unload(e, prog) == 0, "unload");
	r = sfe_read_xrp(e, fd, buf, node_size, (int64_t)root, prog, scratch);
	CHECK(r == -EBADF, "unloaded handle gave %zd", r);
	sfe_engine_close(e);
	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("ok errors\n");
	return 0;
}
