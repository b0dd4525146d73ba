// SPDX-License-Identifier: GPL-2.0
/* Forward every frame out of the device the `tx_port` devmap holds for the
 * ingress ifindex (XDP_REDIRECT); with no entry the frame passes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
} tx_port SEC(".maps");

SEC("xdp")
int xdp_redirect_devmap(struct xdp_md *ctx)
{
	return bpf_redirect_map(&tx_port, ctx->ingress_ifindex, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
