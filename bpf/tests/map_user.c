/*
 * Uses both map kinds and every helper: counts calls in an array map, records
 * the first data word per call number in a hash map, deletes an old entry,
 * reads the clock and prints once. Returns the new call count.
 */
#include "xrp.h"

BPF_MAP_DEF(counts, BPF_MAP_TYPE_ARRAY, __u32, __u64, 4);
BPF_MAP_DEF(seen, BPF_MAP_TYPE_HASH, __u64, __u64, 64);

SEC("xrp")
int map_user(struct bpf_xrp *ctx)
{
	__u32 idx = 0;
	__u64 *count = bpf_map_lookup_elem(&counts, &idx);
	if (!count)
		return 1;
	*count += 1;
	__u64 n = *count;

	__u64 word = *(__u64 *)ctx->data;
	if (bpf_map_update_elem(&seen, &n, &word, BPF_ANY) != 0)
		return 2;
	__u64 old = n - 1;
	bpf_map_delete_elem(&seen, &old);

	__u64 t = bpf_ktime_get_ns();
	idx = 1;
	bpf_map_update_elem(&counts, &idx, &t, BPF_ANY);
	bpf_printk("map_user call %llu\n", n);
	ctx->done = 1;
	return (int)n;
}

LICENSE("GPL");
