/*
 * BTF-defined maps (libbpf style, SEC(".maps")): the same counting as
 * map_user.c, with an array and a hash map declared through BTF. Build with
 * -g so that the object carries .BTF. Returns the new call count.
 */
#include "xrp.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u64);
	__type(value, __u32);
} last SEC(".maps");

SEC("xrp")
int btf_maps(struct bpf_xrp *ctx)
{
	__u32 idx = 0;
	__u64 *n = bpf_map_lookup_elem(&calls, &idx);
	if (!n)
		return -1;
	*n += 1;
	__u64 key = *n;
	__u32 v = (__u32)ctx->size[0];
	bpf_map_update_elem(&last, &key, &v, BPF_ANY);
	return (int)*n;
}

LICENSE("Dual MIT/GPL");
