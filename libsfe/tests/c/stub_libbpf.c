/*
 * What a stock system gives an XRP application: libbpf 0.x's legacy
 * bpf_prog_load, which asks the kernel for BPF_PROG_TYPE_XRP and is refused
 * (the type does not exist). The test links the application against this,
 * as it would be linked against libbpf.so.0, so that it runs unchanged with
 * and without the preload shim.
 */
#include <errno.h>
struct bpf_object;
int bpf_prog_load(const char *file, int type, struct bpf_object **pobj, int *prog_fd)
{
	(void)file; (void)type; (void)pobj; (void)prog_fd;
	errno = EINVAL;
	return -EINVAL;
}
