/*
 * Issue 15's precision case: a 10-round binary search over a 4 KiB block
 * of 512 sorted u64 keys, as clang -O2 compiles it at the default CPU
 * (no ALU32: u32 values are zero-extended with <<32 >>32, and each round
 * compares the same two registers twice, once per value it selects).
 * scratch[0] = key; scratch[1] = number of keys <= key.
 */
#include "xrp.h"

#define NKEYS 512
#define ROUNDS 10

SEC("xrp")
int bsearch512(struct bpf_xrp *ctx)
{
	const __u64 *keys = (const __u64 *)ctx->data;
	__u64 *s = (__u64 *)ctx->scratch;
	__u64 key = s[0];
	__u32 lo = 0, hi = NKEYS;

#pragma clang loop unroll(full)
	for (int i = 0; i < ROUNDS; i++) {
		if (lo < hi) {
			__u32 mid = (lo + hi) >> 1;
			if (mid >= NKEYS)
				return 1;
			if (keys[mid] <= key)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	s[1] = lo;
	return 0;
}

LICENSE("Dual MIT/GPL");
