/*
 * One shared counter: every call adds 1 to entry 0 of an array map with
 * __sync_fetch_and_add (a BPF_ATOMIC add on the map value), and adds the
 * old value of entry 1 (fetched atomically) into entry 2 of the scratch.
 * Returns 0 and ends the chain.
 */
#include "xrp.h"

BPF_MAP_DEF(counter, BPF_MAP_TYPE_ARRAY, __u32, __u64, 2);

SEC("xrp")
int count(struct bpf_xrp *ctx)
{
	__u32 idx = 0;
	__u64 *c = bpf_map_lookup_elem(&counter, &idx);
	if (!c)
		return 1;
	__sync_fetch_and_add(c, 1);
	__u64 *scratch = (__u64 *)ctx->scratch;
	idx = 1;
	__u64 *d = bpf_map_lookup_elem(&counter, &idx);
	if (!d)
		return 2;
	scratch[2] = __sync_fetch_and_add(d, 2);
	ctx->done = 1;
	return 0;
}

LICENSE("GPL");
