/*
 * B+-tree point lookup (format: include/sfe_btree.h). One run per node: an
 * inner node sends the chain to the child that may hold the key; a leaf
 * ends it with the value, or with found = 0.
 */
#include "xrp.h"
#include "sfe_btree.h"

SEC("xrp")
int btree_lookup(struct bpf_xrp *ctx)
{
	const __u8 *node = (const __u8 *)ctx->data;
	__u64 *s = (__u64 *)ctx->scratch;
	const __u64 *keys = (const __u64 *)(node + SFE_BT_KEYS_OFF);
	const __u64 *vals = (const __u64 *)(node + SFE_BT_VALS_OFF);
	__u64 key = s[SFE_LK_KEY];
	__u32 n = *(const __u16 *)(node + 6);
	__u8 kind = node[4];

	if (*(const __u32 *)node != SFE_BT_MAGIC || n == 0 || n > SFE_BT_FANOUT)
		return SFE_ERR_BAD_NODE;
	s[SFE_LK_NODES] += 1;

	/* lo = number of keys <= key */
	__u32 lo = sfe_bt_rank(keys, n, key);
	if (lo > SFE_BT_FANOUT)
		return SFE_ERR_BAD_NODE;
	if (kind == SFE_BT_KIND_LEAF) {
		s[SFE_LK_FOUND] = 0;
		if (lo > 0 && lo <= SFE_BT_FANOUT && keys[lo - 1] == key) {
			s[SFE_LK_FOUND] = 1;
			s[SFE_LK_VALUE] = vals[lo - 1];
		}
		ctx->done = 1;
		return 0;
	}
	if (kind != SFE_BT_KIND_INNER)
		return SFE_ERR_BAD_NODE;
	if (lo == 0 || lo > SFE_BT_FANOUT) {
		/* Smaller than every key in the tree. */
		s[SFE_LK_FOUND] = 0;
		ctx->done = 1;
		return 0;
	}
	ctx->next_addr[0] = vals[lo - 1];
	ctx->size[0] = SFE_BT_NODE_SIZE;
	return 0;
}

LICENSE("Dual MIT/GPL");
