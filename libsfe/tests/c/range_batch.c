/*
 * A range scan that returns to the host in batches, as XRP's range programs
 * do: descend to the leaf holding scratch[0] (lo), then copy (key, value)
 * pairs with lo <= key <= hi (scratch[1]) into scratch[4..] until RB_MAX
 * pairs; scratch[2] = pairs, scratch[3] = the offset of the block being
 * read (the host sets it to where it starts), so a full batch leaves there
 * the leaf to resume at; 0 when the scan is complete. A leaf asked for
 * directly (a resubmission) is scanned from scratch[0].
 */
#include "xrp.h"
#include "sfe_btree.h"

#define RB_MAX 48

SEC("xrp")
int range_batch(struct bpf_xrp *ctx)
{
	const __u8 *node = (const __u8 *)ctx->data;
	__u64 *s = (__u64 *)ctx->scratch;
	const __u64 *keys = (const __u64 *)(node + SFE_BT_KEYS_OFF);
	const __u64 *vals = (const __u64 *)(node + SFE_BT_VALS_OFF);
	__u64 lo_key = s[0], hi_key = s[1];
	__u32 n = *(const __u16 *)(node + 6);
	__u8 kind = node[4];

	if (*(const __u32 *)node != SFE_BT_MAGIC || n == 0 || n > SFE_BT_FANOUT)
		return SFE_ERR_BAD_NODE;
	if (kind == SFE_BT_KIND_INNER) {
		__u32 lo = sfe_bt_rank(keys, n, lo_key);
		if (lo > SFE_BT_FANOUT)
			return SFE_ERR_BAD_NODE;
		__u32 c = lo == 0 ? 0 : lo - 1;
		if (c >= SFE_BT_FANOUT)
			return SFE_ERR_BAD_NODE;
		ctx->next_addr[0] = vals[c];
		ctx->size[0] = SFE_BT_NODE_SIZE;
		s[3] = vals[c];
		return 0;
	}
	if (kind != SFE_BT_KIND_LEAF)
		return SFE_ERR_BAD_NODE;
	/* Keys from lo on start at the number of keys below lo: no branch per
	 * skipped key (one path per iteration keeps the verifier linear). */
	__u32 i0 = lo_key == 0 ? 0 : sfe_bt_rank(keys, n, lo_key - 1);
	__u64 cnt = s[2];
	if (cnt > RB_MAX)
		return SFE_ERR_BAD_NODE;
	for (__u32 t = 0; t < SFE_BT_FANOUT; t++) {
		__u32 i = i0 + t;
		if (i >= n || i >= SFE_BT_FANOUT)
			break;
		__u64 k = keys[i];
		if (k > hi_key) {
			s[2] = cnt;
			s[3] = 0;
			ctx->done = 1;
			return 0;
		}
		if (cnt >= RB_MAX) {
			/* Batch full: the host resumes at this leaf (s[3]). */
			s[2] = cnt;
			ctx->done = 1;
			return 0;
		}
		s[4 + 2 * cnt] = k;
		s[5 + 2 * cnt] = vals[i];
		cnt++;
	}
	s[2] = cnt;
	__u64 next = *(const __u64 *)(node + 8);
	if (next == 0) {
		s[3] = 0;
		ctx->done = 1;
		return 0;
	}
	ctx->next_addr[0] = next;
	ctx->size[0] = SFE_BT_NODE_SIZE;
	s[3] = next;
	return 0;
}

LICENSE("Dual MIT/GPL");
