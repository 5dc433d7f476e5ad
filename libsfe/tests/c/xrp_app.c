/*
 * A small XRP-style application: B+-tree lookups and a range scan over a
 * database file (docs/format.md), each answer checked against the same
 * traversal done with plain pread. Written against XRP's interface:
 * bpf_prog_load(path, BPF_PROG_TYPE_XRP, &obj, &fd) and
 * syscall(SYS_READ_XRP, fd, buf, count, offset, prog_fd, scratch). Built
 * twice: as is (run under LD_PRELOAD=libsfe_xrp.so), and with -DUSE_LIBSFE,
 * where those two calls go to libsfe (sfe_prog_load, sfe_read_xrp).
 *
 * usage: xrp_app DB LOOKUP.o RANGE.o LOOKUPS [DEVICE (USE_LIBSFE only)]
 * prints "ok lookups=N found=F range_calls=C range_keys=K" and exits 0 when
 * every answer matched.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SCRATCH_SIZE 4096
#define MAGIC 0x54424653u
#define KIND_INNER 1
#define KIND_LEAF 2
#define RB_MAX 48 /* (key, value) pairs one range call returns */

#ifdef USE_LIBSFE
#include "sfe.h"
static struct sfe_engine *engine;
static int load_prog(const char *path)
{
	int h = sfe_prog_load(engine, path, NULL, 0);
	if (h < 0) {
		fprintf(stderr, "sfe_prog_load %s: %s\n", path, sfe_last_error());
		exit(1);
	}
	return h;
}
static long read_xrp(int fd, void *buf, size_t count, uint64_t off, int prog, void *scratch)
{
	ssize_t r = sfe_read_xrp(engine, fd, buf, count, (int64_t)off, prog, scratch);
	if (r < 0) {
		fprintf(stderr, "sfe_read_xrp: %s\n", sfe_last_error());
		errno = (int)-r;
		return -1;
	}
	return r;
}
static void unload_prog(int h) { sfe_prog_unload(engine, h); }
#else
/* XRP's interface (libbpf 0.x and XRP's kernel). */
#define SYS_READ_XRP 445
#define BPF_PROG_TYPE_XRP 31
struct bpf_object;
int bpf_prog_load(const char *file, int type, struct bpf_object **pobj, int *prog_fd);
static int load_prog(const char *path)
{
	struct bpf_object *obj;
	int fd;
	if (bpf_prog_load(path, BPF_PROG_TYPE_XRP, &obj, &fd)) {
		fprintf(stderr, "Failed to load bpf program %s\n", path);
		exit(1);
	}
	return fd;
}
static long read_xrp(int fd, void *buf, size_t count, uint64_t off, int prog, void *scratch)
{
	return syscall(SYS_READ_XRP, fd, buf, count, off, prog, scratch);
}
static void unload_prog(int fd) { close(fd); }
#endif

static uint64_t node_size;

static uint64_t u64_at(const uint8_t *b, size_t o)
{
	uint64_t v;
	memcpy(&v, b + o, 8);
	return v;
}

static void read_node(int fd, uint64_t off, uint8_t *node)
{
	if (pread(fd, node, node_size, (off_t)off) != (ssize_t)node_size) {
		perror("pread");
		exit(1);
	}
}

static unsigned fanout(void) { return (unsigned)((node_size - 16) / 16); }

/* Plain-read lookup: 1 and *value when found. */
static int plain_lookup(int fd, uint64_t root, uint64_t key, uint64_t *value)
{
	uint8_t node[4096];
	uint64_t off = root;
	for (;;) {
		read_node(fd, off, node);
		unsigned n = *(uint16_t *)(node + 6), lo = 0;
		while (lo < n && u64_at(node, 16 + 8 * lo) <= key)
			lo++;
		size_t vals = 16 + 8 * fanout();
		if (node[4] == KIND_LEAF) {
			if (lo > 0 && u64_at(node, 16 + 8 * (lo - 1)) == key) {
				*value = u64_at(node, vals + 8 * (lo - 1));
				return 1;
			}
			return 0;
		}
		if (lo == 0)
			return 0;
		off = u64_at(node, vals + 8 * (lo - 1));
	}
}

/* Plain-read range scan: count and wrapping sum of the values of keys in [lo, hi]. */
static void plain_range(int fd, uint64_t root, uint64_t lo, uint64_t hi, uint64_t *count, uint64_t *sum)
{
	uint8_t node[4096];
	uint64_t off = root;
	*count = *sum = 0;
	for (;;) {
		read_node(fd, off, node);
		unsigned n = *(uint16_t *)(node + 6), r = 0;
		size_t vals = 16 + 8 * fanout();
		if (node[4] == KIND_LEAF)
			break;
		while (r < n && u64_at(node, 16 + 8 * r) <= lo)
			r++;
		off = u64_at(node, vals + 8 * (r == 0 ? 0 : r - 1));
	}
	for (;;) {
		unsigned n = *(uint16_t *)(node + 6);
		size_t vals = 16 + 8 * fanout();
		for (unsigned i = 0; i < n; i++) {
			uint64_t k = u64_at(node, 16 + 8 * i);
			if (k > hi)
				return;
			if (k >= lo) {
				*count += 1;
				*sum += u64_at(node, vals + 8 * i);
			}
		}
		uint64_t next = u64_at(node, 8);
		if (next == 0)
			return;
		read_node(fd, next, node);
	}
}

int main(int argc, char **argv)
{
#ifdef USE_LIBSFE
	if (argc != 6) {
		fprintf(stderr, "usage: %s DB LOOKUP.o RANGE.o LOOKUPS DEVICE\n", argv[0]);
		return 2;
	}
	if (sfe_engine_open(argv[5], NULL, 0, &engine) < 0) {
		fprintf(stderr, "sfe_engine_open %s: %s\n", argv[5], sfe_last_error());
		return 1;
	}
#else
	if (argc != 5) {
		fprintf(stderr, "usage: %s DB LOOKUP.o RANGE.o LOOKUPS\n", argv[0]);
		return 2;
	}
#endif
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	int lookup = load_prog(argv[2]);
	int range = load_prog(argv[3]);
	long lookups = atol(argv[4]);

	uint8_t sb[512];
	if (pread(fd, sb, sizeof sb, 0) != sizeof sb || *(uint32_t *)sb != MAGIC) {
		fprintf(stderr, "%s is not a database\n", argv[1]);
		return 1;
	}
	uint64_t root = u64_at(sb, 8), nkeys = u64_at(sb, 16);
	node_size = u64_at(sb, 32);

	uint8_t *buf = aligned_alloc(4096, 4096);
	uint64_t *scratch = aligned_alloc(4096, SCRATCH_SIZE);
	long found = 0;
	for (long i = 0; i < lookups; i++) {
		/* Present keys are 2, 4, 6, ...; odd keys miss. */
		uint64_t key = (uint64_t)((i * 7919) % (long)(2 * nkeys + 3));
		memset(scratch, 0, SCRATCH_SIZE);
		scratch[0] = key;
		long r = read_xrp(fd, buf, node_size, root, lookup, scratch);
		if (r != (long)node_size) {
			fprintf(stderr, "read_xrp(lookup %lu) = %ld: %s\n", (unsigned long)key, r, strerror(errno));
			return 1;
		}
		uint64_t want = 0;
		int has = plain_lookup(fd, root, key, &want);
		if ((int)scratch[2] != has || (has && scratch[1] != want)) {
			fprintf(stderr, "key %lu: read_xrp says found=%lu value=%lu, plain reads say found=%d value=%lu\n",
				(unsigned long)key, (unsigned long)scratch[2], (unsigned long)scratch[1], has, (unsigned long)want);
			return 1;
		}
		/* The last block read is the leaf: its magic and kind. */
		if (*(uint32_t *)buf != MAGIC || (has && buf[4] != KIND_LEAF)) {
			fprintf(stderr, "key %lu: buf does not hold the leaf\n", (unsigned long)key);
			return 1;
		}
		found += has;
	}

	/* Range scan over about a third of the keys, RB_MAX pairs per call: the
	 * program stops when the batch is full and the host resubmits at the
	 * leaf it stopped in, as XRP's range programs do. */
	uint64_t lo = nkeys / 3, hi = nkeys / 3 + nkeys / 3 * 2 + 1;
	uint64_t got_count = 0, got_sum = 0, prev_key = 0;
	long calls = 0;
	uint64_t at = root;
	memset(scratch, 0, SCRATCH_SIZE);
	scratch[0] = lo;
	scratch[1] = hi;
	for (;;) {
		scratch[2] = 0;
		scratch[3] = at;
		long r = read_xrp(fd, buf, node_size, at, range, scratch);
		calls++;
		if (r != (long)node_size) {
			fprintf(stderr, "read_xrp(range) = %ld: %s\n", r, strerror(errno));
			return 1;
		}
		uint64_t n = scratch[2];
		if (n > RB_MAX) {
			fprintf(stderr, "range batch of %lu pairs\n", (unsigned long)n);
			return 1;
		}
		for (uint64_t i = 0; i < n; i++) {
			uint64_t k = scratch[4 + 2 * i], v = scratch[5 + 2 * i];
			if (k < lo || k > hi || (got_count > 0 && k <= prev_key)) {
				fprintf(stderr, "range: key %lu out of order or range\n", (unsigned long)k);
				return 1;
			}
			prev_key = k;
			got_count++;
			got_sum += v;
		}
		if (scratch[3] == 0)
			break;
		/* Resume at the leaf the program stopped in, after the last key. */
		at = scratch[3];
		scratch[0] = prev_key + 1;
	}
	uint64_t want_count, want_sum;
	plain_range(fd, root, lo, hi, &want_count, &want_sum);
	if (got_count != want_count || got_sum != want_sum) {
		fprintf(stderr, "range [%lu, %lu]: read_xrp %lu keys sum %lu, plain reads %lu keys sum %lu\n", (unsigned long)lo,
			(unsigned long)hi, (unsigned long)got_count, (unsigned long)got_sum, (unsigned long)want_count,
			(unsigned long)want_sum);
		return 1;
	}
	if (calls < 2) {
		fprintf(stderr, "range scan took %ld call: the test wants resubmission\n", calls);
		return 1;
	}
	printf("ok lookups=%ld found=%ld range_calls=%ld range_keys=%lu\n", lookups, found, calls, (unsigned long)got_count);
	unload_prog(range);
	unload_prog(lookup);
	close(fd);
#ifdef USE_LIBSFE
	sfe_engine_close(engine);
#endif
	return 0;
}
