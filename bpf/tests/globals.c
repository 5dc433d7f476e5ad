/*
 * Globals: a .rodata table, a .data counter and a .bss total. Adds the table
 * entry picked by data[0] to the counter; returns the counter; scratch[0..8]
 * gets the .bss total. (The verifier does not take bpf-to-bpf calls yet, so
 * the helper function is inlined; calls.c has a real local call.)
 */
#include "xrp.h"

static const __u64 table[4] = { 10, 20, 30, 40 };
__u64 counter = 100;
__u64 total;

static __always_inline __u64 pick(__u64 i)
{
	return table[i & 3];
}

SEC("xrp")
int globals(struct bpf_xrp *ctx)
{
	__u64 v = pick((__u8)ctx->data[0]);
	counter += v;
	total += 1;
	*(__u64 *)ctx->scratch = total;
	ctx->done = 1;
	return (int)counter;
}

SEC("xrp/second")
int second(struct bpf_xrp *ctx)
{
	return (int)pick(2);
}

LICENSE("Dual MIT/GPL");
