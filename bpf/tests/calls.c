/*
 * bpf-to-bpf calls: non-inlined functions land in .text and are called with
 * R_BPF_64_32 relocations the loader resolves, from the program section and
 * from .text itself. Returns mix(next_addr[0], 3) + 1 = next_addr[0] * 2 + 4.
 */
#include "xrp.h"

static __noinline __u64 twice(__u64 x)
{
	return x * 2;
}

static __noinline __u64 mix(__u64 a, __u64 b)
{
	return twice(a) + b;
}

SEC("xrp")
int calls(struct bpf_xrp *ctx)
{
	volatile __u64 a = ctx->next_addr[0];
	return (int)(mix(a, 3) + 1);
}

LICENSE("Dual MIT/GPL");
