// SPDX-License-Identifier: GPL-2.0
/* bpf_csum_diff() as a function of the frame: the first two bytes are
 * from_size and to_size (each at most 32), then the seed (host order), then
 * 32 bytes of `from` and 32 of `to`. Returns the helper's result: the same
 * frame through BPF_PROG_TEST_RUN and the mock pins its arithmetic. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_WORDS 32

struct csum_args {
	__u8 from_size;
	__u8 to_size;
	__u8 pad[2];
	__u32 seed;
	__u8 from[MAX_WORDS];
	__u8 to[MAX_WORDS];
};

SEC("xdp")
int xdp_csum_diff(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct csum_args *in = data;
	__u8 from[MAX_WORDS], to[MAX_WORDS];
	__u32 from_size, to_size;

	if ((void *)(in + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(from, in->from, sizeof(from));
	__builtin_memcpy(to, in->to, sizeof(to));
	from_size = in->from_size;
	to_size = in->to_size;
	if (from_size > MAX_WORDS || to_size > MAX_WORDS)
		return XDP_ABORTED;
	return (__u32)bpf_csum_diff((__be32 *)from, from_size, (__be32 *)to, to_size, in->seed);
}

char LICENSE[] SEC("license") = "GPL";
