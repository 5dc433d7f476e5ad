/*
 * A __noinline helper function: clang emits a bpf-to-bpf call, and the
 * callee has its own stack frame (its `local` array). (Signed division in C
 * needs clang -mcpu=v4, clang 18 or later; the sdiv/smod tests assemble the
 * instructions instead.) Returns mix(d[0], d[1]); the scratch gets it too.
 */
#include "xrp.h"

static __noinline __s64 mix(__s64 a, __s64 b)
{
	volatile __s64 local[4] = {a, b, a ^ b, a + b};
	return local[0] * 3 + local[1] - local[2] + local[3];
}

SEC("xrp")
int calls_frame(struct bpf_xrp *ctx)
{
	__s64 *d = (__s64 *)ctx->data;
	__s64 *s = (__s64 *)ctx->scratch;
	volatile __s64 mine = d[2];
	s[0] = mix(d[0], d[1]);
	s[1] = mine;
	return (int)s[0];
}

LICENSE("GPL");
