/*
 * bpf_map_update_elem with a value pointer that aliases the map slot being
 * updated (v = lookup(m, &k); update(m, &k, v, 0)), on a hash and an array
 * map. The helper must copy the value out before writing: the slot then
 * holds the same bytes. Returns the hash value + the array value.
 */
#include "xrp.h"

BPF_MAP_DEF(h, BPF_MAP_TYPE_HASH, __u64, __u64, 4);
BPF_MAP_DEF(a, BPF_MAP_TYPE_ARRAY, __u32, __u64, 1);

SEC("xrp")
int alias(struct bpf_xrp *ctx)
{
	__u64 k = 7, init = 0x1122334455667788ULL;
	if (bpf_map_update_elem(&h, &k, &init, BPF_ANY))
		return -1;
	__u64 *v = bpf_map_lookup_elem(&h, &k);
	if (!v)
		return -2;
	if (bpf_map_update_elem(&h, &k, v, BPF_ANY))
		return -3;
	__u32 i = 0;
	__u64 *w = bpf_map_lookup_elem(&a, &i);
	if (!w)
		return -4;
	*w = 5;
	if (bpf_map_update_elem(&a, &i, w, BPF_EXIST))
		return -5;
	return (int)(*v + *w);
}

LICENSE("GPL");
