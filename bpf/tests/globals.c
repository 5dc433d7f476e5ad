/*
 * Globals and local calls: a .rodata table, a .data counter, a .bss buffer and
 * a non-inlined function in .text. Sums the table entry picked by data[0]
 * into the counter; returns the counter; scratch[0..8] gets the .bss total.
 */
#include "xrp.h"

static const __u64 table[4] = { 10, 20, 30, 40 };
__u64 counter = 100;
__u64 total;

static __noinline __u64 pick(__u64 i)
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
