/*
 * B+-tree range scan with a SUM aggregate (format: include/sfe_btree.h):
 * descend to the leaf that holds `lo`, then walk leaves through their next
 * pointers, summing the values of keys in [lo, hi].
 */
#include "xrp.h"
#include "sfe_btree.h"

SEC("xrp")
int range_sum(struct bpf_xrp *ctx)
{
	const __u8 *node = (const __u8 *)ctx->data;
	__u64 *s = (__u64 *)ctx->scratch;
	const __u64 *keys = (const __u64 *)(node + SFE_BT_KEYS_OFF);
	const __u64 *vals = (const __u64 *)(node + SFE_BT_VALS_OFF);
	__u64 lo_key = s[SFE_RS_LO], hi_key = s[SFE_RS_HI];
	__u32 n = *(const __u16 *)(node + 6);
	__u8 kind = node[4];

	if (*(const __u32 *)node != SFE_BT_MAGIC || n == 0 || n > SFE_BT_FANOUT)
		return SFE_ERR_BAD_NODE;
	s[SFE_RS_NODES] += 1;

	if (kind == SFE_BT_KIND_INNER) {
		__u32 lo = sfe_bt_rank(keys, n, lo_key);
		if (lo > SFE_BT_FANOUT)
			return SFE_ERR_BAD_NODE;
		/* The child holding lo_key, or the first child if lo_key is smaller than all. */
		__u32 c = lo == 0 ? 0 : lo - 1;
		if (c >= SFE_BT_FANOUT)
			return SFE_ERR_BAD_NODE;
		ctx->next_addr[0] = vals[c];
		ctx->size[0] = SFE_BT_NODE_SIZE;
		return 0;
	}
	if (kind != SFE_BT_KIND_LEAF)
		return SFE_ERR_BAD_NODE;

	__u64 sum = s[SFE_RS_SUM], count = s[SFE_RS_COUNT];
	for (__u32 i = 0; i < SFE_BT_FANOUT; i++) {
		if (i >= n)
			break;
		__u64 k = keys[i];
		if (k > hi_key) {
			s[SFE_RS_SUM] = sum;
			s[SFE_RS_COUNT] = count;
			ctx->done = 1;
			return 0;
		}
		if (k >= lo_key) {
			sum += vals[i];
			count += 1;
		}
	}
	s[SFE_RS_SUM] = sum;
	s[SFE_RS_COUNT] = count;
	__u64 next = *(const __u64 *)(node + 8);
	if (next == 0) {
		ctx->done = 1;
		return 0;
	}
	ctx->next_addr[0] = next;
	ctx->size[0] = SFE_BT_NODE_SIZE;
	return 0;
}

LICENSE("Dual MIT/GPL");
