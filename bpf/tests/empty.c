/* The smallest storage function: finishes the chain. Used for call overhead. */
#include "xrp.h"

SEC("xrp")
int empty(struct bpf_xrp *ctx)
{
	return 0;
}

LICENSE("Dual MIT/GPL");
