/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Minimal BPF program-author header for the storage-function engine: int types,
 * SEC(), map definition macros and helper declarations (Linux helper ids), so
 * that `clang -target bpf -O2 -I bpf/include -c prog.c` needs no kernel headers.
 */
#ifndef XRP_BPF_HELPERS_H
#define XRP_BPF_HELPERS_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef signed short __s16;
typedef unsigned int __u32;
typedef signed int __s32;
typedef unsigned long long __u64;
typedef signed long long __s64;
typedef __u8 uint8_t;
typedef __s8 int8_t;
typedef __u16 uint16_t;
typedef __s16 int16_t;
typedef __u32 uint32_t;
typedef __s32 int32_t;
typedef __u64 uint64_t;
typedef __s64 int64_t;
typedef __u64 size_t;

#ifndef NULL
#define NULL ((void *)0)
#endif

#define SEC(name) __attribute__((section(name), used))
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define __noinline __attribute__((noinline))

/* Map types the engine implements (Linux numbering). */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2

/* Flags of bpf_map_update_elem (Linux numbering). */
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2

/*
 * Legacy map definitions, read by the engine's loader from SEC("maps"):
 *   BPF_MAP_DEF(counts, BPF_MAP_TYPE_ARRAY, __u32, __u64, 16);
 */
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

#define BPF_MAP_DEF(name, map_type, key_type, value_type, entries)          \
	struct bpf_map_def SEC("maps") name = {                             \
		.type = (map_type),                                         \
		.key_size = sizeof(key_type),                               \
		.value_size = sizeof(value_type),                           \
		.max_entries = (entries),                                   \
	}

/*
 * BTF-defined maps (libbpf style) work too; the object must carry BTF, so
 * build with `clang -g`:
 *   struct {
 *       __uint(type, BPF_MAP_TYPE_HASH);
 *       __uint(max_entries, 64);
 *       __type(key, __u64);
 *       __type(value, __u64);
 *   } seen SEC(".maps");
 */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/* Helpers, by their Linux ids. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
				   __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;

/* bpf_printk("x=%d\n", x): the format string lives on the stack. */
#define bpf_printk(fmt, ...)                                                 \
	({                                                                   \
		char ____fmt[] = fmt;                                        \
		bpf_trace_printk(____fmt, sizeof(____fmt), ##__VA_ARGS__);   \
	})

#endif /* XRP_BPF_HELPERS_H */
