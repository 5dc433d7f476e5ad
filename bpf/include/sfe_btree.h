/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The on-disk B+-tree format shared by `sfbench mkdb`, the chaining engine's
 * native traversals (chaining/src/btree.rs, which checks these constants
 * against this file in its tests) and the bundled BPF programs.
 * See docs/format.md.
 *
 * A database file is a sequence of nodes of SFE_BT_NODE_SIZE bytes. Node 0
 * is the superblock; every other node is an inner node or a leaf:
 *
 *   offset 0   u32 magic ("SFBT")
 *          4   u8  kind (1 inner, 2 leaf, 3 superblock)
 *          5   u8  level (0 for leaves)
 *          6   u16 nkeys (<= SFE_BT_FANOUT)
 *          8   u64 next: next leaf's file offset (leaves; 0 = last);
 *                  the root's file offset (superblock)
 *         16   u64 keys[SFE_BT_FANOUT], sorted ascending
 *   VALS_OFF   u64 vals[SFE_BT_FANOUT]: inner: child node file offsets,
 *                  child i holding keys in [keys[i], keys[i+1]); leaf: values
 *
 * The superblock's keys[0..4] hold: number of keys, depth (levels
 * including the leaves), node size, seed.
 * All integers are little-endian.
 */
#ifndef SFE_BTREE_H
#define SFE_BTREE_H

#define SFE_BT_MAGIC 0x54424653u
#define SFE_BT_KIND_INNER 1
#define SFE_BT_KIND_LEAF 2
#define SFE_BT_KIND_SUPER 3
#define SFE_BT_HDR 16

#ifndef SFE_BT_NODE_SIZE
#define SFE_BT_NODE_SIZE 4096
#endif

#define SFE_BT_FANOUT ((SFE_BT_NODE_SIZE - SFE_BT_HDR) / 16)
#define SFE_BT_KEYS_OFF SFE_BT_HDR
#define SFE_BT_VALS_OFF (SFE_BT_HDR + 8 * SFE_BT_FANOUT)

/* Binary-search steps that cover SFE_BT_FANOUT keys: ceil(log2(FANOUT + 1)). */
#if SFE_BT_NODE_SIZE == 4096
#define SFE_BT_SEARCH_STEPS 8
#elif SFE_BT_NODE_SIZE == 512
#define SFE_BT_SEARCH_STEPS 5
#else
#error "SFE_BT_NODE_SIZE must be 4096 or 512"
#endif

/* Scratch of a point lookup, in u64 words. */
#define SFE_LK_KEY 0     /* in: the key */
#define SFE_LK_VALUE 1   /* out: its value */
#define SFE_LK_FOUND 2   /* out: 1 found, 0 not found */
#define SFE_LK_NODES 3   /* out: nodes visited */

/* Scratch of a range scan with SUM, in u64 words. */
#define SFE_RS_LO 0      /* in: first key */
#define SFE_RS_HI 1      /* in: last key (inclusive) */
#define SFE_RS_SUM 2     /* out: sum of the values (wrapping) */
#define SFE_RS_COUNT 3   /* out: number of keys in range */
#define SFE_RS_NODES 4   /* out: nodes visited */

/* Scratch of filter-reduce over a file of u64, in u64 words. */
#define SFE_FR_LO 0      /* in: keep x with lo <= x <= hi */
#define SFE_FR_HI 1
#define SFE_FR_END 2     /* in: file size in bytes (a multiple of the block) */
#define SFE_FR_OFF 3     /* in/out: offset of the block being read */
#define SFE_FR_SUM 4     /* out: SUM (wrapping) */
#define SFE_FR_COUNT 5   /* out: COUNT */
#define SFE_FR_MIN 6     /* out: MIN (in: u64 max) */
#define SFE_FR_MAX 7     /* out: MAX (in: 0) */
#define SFE_FR_BLOCK 4096

/* Errors a program reports by returning them (the chain aborts with it). */
#define SFE_ERR_BAD_NODE 1

/*
 * For BPF programs: the number of keys <= key among the node's first n keys
 * (binary search, a fixed number of steps the verifier can follow), or
 * SFE_BT_FANOUT + 1 if a probe would leave the node.
 */
#ifdef XRP_H
static __always_inline __u32 sfe_bt_rank(const __u64 *keys, __u32 n, __u64 key)
{
	__u32 lo = 0, hi = n;
#pragma clang loop unroll(full)
	for (int i = 0; i < SFE_BT_SEARCH_STEPS; i++) {
		if (lo < hi) {
			__u32 mid = (lo + hi) >> 1;
			if (mid >= SFE_BT_FANOUT)
				return SFE_BT_FANOUT + 1;
			if (keys[mid] <= key)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	return lo;
}
#endif

#endif /* SFE_BTREE_H */
