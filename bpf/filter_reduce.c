/*
 * Filter-reduce over a file of little-endian u64 (the thesis workload): keep
 * values x with lo <= x <= hi, and reduce them to SUM, COUNT, MIN and MAX.
 * One run per 4 KiB block; the chain walks the file block by block.
 */
#include "xrp.h"
#include "sfe_btree.h"

#define WORDS (SFE_FR_BLOCK / 8)

SEC("xrp")
int filter_reduce(struct bpf_xrp *ctx)
{
	const __u64 *w = (const __u64 *)ctx->data;
	__u64 *s = (__u64 *)ctx->scratch;
	__u64 lo = s[SFE_FR_LO], hi = s[SFE_FR_HI];
	__u64 sum = s[SFE_FR_SUM], count = s[SFE_FR_COUNT];
	__u64 min = s[SFE_FR_MIN], max = s[SFE_FR_MAX];

	for (__u32 i = 0; i < WORDS; i++) {
		__u64 x = w[i];
		if (x >= lo && x <= hi) {
			sum += x;
			count += 1;
			if (x < min)
				min = x;
			if (x > max)
				max = x;
		}
	}
	s[SFE_FR_SUM] = sum;
	s[SFE_FR_COUNT] = count;
	s[SFE_FR_MIN] = min;
	s[SFE_FR_MAX] = max;

	__u64 next = s[SFE_FR_OFF] + SFE_FR_BLOCK;
	s[SFE_FR_OFF] = next;
	if (next >= s[SFE_FR_END]) {
		ctx->done = 1;
		return 0;
	}
	ctx->next_addr[0] = next;
	ctx->size[0] = SFE_FR_BLOCK;
	return 0;
}

LICENSE("Dual MIT/GPL");
