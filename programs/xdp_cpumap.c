// SPDX-License-Identifier: GPL-2.0
/* Hand every IPv4 frame to CPU 0 through the `cpu_map` cpumap (XDP_REDIRECT):
 * that CPU's kthread builds the skb and passes it up the stack. User space
 * fills the slot (struct bpf_cpumap_val: queue size, no second program); with
 * the slot empty bpf_redirect_map() returns XDP_ABORTED (flags 0). Other
 * frames (ARP) pass. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
	__uint(max_entries, 1);
} cpu_map SEC(".maps");

SEC("xdp")
int xdp_cpumap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	return bpf_redirect_map(&cpu_map, 0, 0);
}

char LICENSE[] SEC("license") = "GPL";
