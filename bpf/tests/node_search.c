/*
 * One step of a B+-tree lookup over a 4 KiB node: 255 sorted u64 keys at
 * offset 0 and 255 u64 values (child offsets or record values) at 2048.
 * scratch[0..8] holds the key searched for. The program finds the first
 * key >= the searched one; on an exact match it stores the value in
 * scratch[8..16], the index in scratch[16..24] and sets done; otherwise it
 * asks for the child block at that index.
 */
#include "xrp.h"

#define NODE_KEYS 255
#define VALUES_OFF 2048
#define BLOCK_SIZE 4096

SEC("xrp")
int node_search(struct bpf_xrp *ctx)
{
	const __u64 *keys = (const __u64 *)ctx->data;
	const __u64 *values = (const __u64 *)(ctx->data + VALUES_OFF);
	__u64 *scratch = (__u64 *)ctx->scratch;
	__u64 key = scratch[0];
	__u32 lo = 0, hi = NODE_KEYS;

	/* 255 keys: 8 halvings reach a single candidate. */
#pragma clang loop unroll(full)
	for (int i = 0; i < 8; i++) {
		__u32 mid = (lo + hi) >> 1;
		if (mid >= NODE_KEYS)
			break;
		if (keys[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= NODE_KEYS) {
		scratch[2] = NODE_KEYS;
		ctx->done = 1;
		return 0;
	}
	scratch[2] = lo;
	if (keys[lo] == key) {
		scratch[1] = values[lo];
		ctx->done = 1;
		return 0;
	}
	ctx->next_addr[0] = values[lo];
	ctx->size[0] = BLOCK_SIZE;
	return 0;
}

LICENSE("Dual MIT/GPL");
