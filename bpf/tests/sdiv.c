/*
 * Signed division and modulo in C (clang >= 18 with -mcpu=v4 emits
 * sdiv/smod; older clang refuses). Data words 0-3: a, b (64-bit) and c, d
 * (32-bit in the low halves of words 2, 3). Scratch words 0-3 get a / b,
 * a % b, c / d, c % d (0 where the divisor is 0); returns their sum.
 */
#include "xrp.h"

SEC("xrp")
int sdiv(struct bpf_xrp *ctx)
{
	__s64 *d = (__s64 *)ctx->data;
	__s64 *s = (__s64 *)ctx->scratch;
	__s64 a = d[0], b = d[1];
	__s32 c = (__s32)d[2], e = (__s32)d[3];
	s[0] = b ? a / b : 0;
	s[1] = b ? a % b : 0;
	s[2] = e ? c / e : 0;
	s[3] = e ? c % e : 0;
	return (int)(s[0] + s[1] + s[2] + s[3]);
}

LICENSE("GPL");
