// SPDX-License-Identifier: GPL-2.0
/* A 4-byte mark in front of the frame with bpf_xdp_adjust_meta, passed to the
 * stack. On its own: a kernel whose xdp_func_proto() does not offer the helper
 * refuses the whole object at load ("program of this type cannot use helper
 * bpf_xdp_adjust_meta#54"), as 6.18.44-fc does. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define META_MARK 0xfeedbeef

SEC("xdp")
int xdp_meta_mark(struct xdp_md *ctx)
{
	__u32 *meta;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
		return XDP_PASS;
	meta = (void *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > (void *)(long)ctx->data)
		return XDP_PASS;
	*meta = META_MARK;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
