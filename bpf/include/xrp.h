/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The storage-function context, binary compatible with XRP's struct bpf_xrp
 * (OSDI'22): programs written for XRP compile against this header unchanged.
 * A program is a function in SEC("xrp") (any section name works; the loader
 * picks by name) taking a struct bpf_xrp * and returning 0 to continue or
 * finish per `done`, non-zero to abort the chain with that code.
 */
#ifndef XRP_H
#define XRP_H

#include "bpf_helpers.h"

#define XRP_FANOUT_MAX 16
#define XRP_SCRATCH_SIZE 4096

struct bpf_xrp {
	char *data;                        /* offset 0   the block just read        */
	int done;                          /* offset 8   set to finish the chain    */
	uint64_t next_addr[XRP_FANOUT_MAX]; /* offset 16  file offsets to read next */
	uint64_t size[XRP_FANOUT_MAX];     /* offset 144 their sizes; 0 = no read   */
	char *scratch;                     /* offset 272 per-request scratch, 4 KiB */
};                                         /* 280 bytes */

_Static_assert(sizeof(struct bpf_xrp) == 280, "struct bpf_xrp must be 280 bytes");
_Static_assert(__builtin_offsetof(struct bpf_xrp, scratch) == 272, "scratch at 272");

#define LICENSE(s) char _license[] SEC("license") = s

#endif /* XRP_H */
