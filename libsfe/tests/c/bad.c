/* Reads past the block it is verified for: the verifier must reject it. */
#include "xrp.h"

SEC("xrp")
int past_the_block(struct bpf_xrp *ctx)
{
	ctx->done = 1;
	return ctx->data[8192];
}

LICENSE("Dual MIT/GPL");
