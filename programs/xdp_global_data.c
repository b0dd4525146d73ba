// SPDX-License-Identifier: GPL-2.0
/* Global data and a BPF-to-BPF call: count every packet (.bss), find the UDP
 * destination port in a separate function (never inlined), and give
 * datagrams to `drop_port` (.rodata) the verdict `match_verdict` (.data),
 * logging each with bpf_printk. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

volatile const __u16 drop_port = 9;
__u32 match_verdict = XDP_DROP;
__u64 packets_seen;
__u64 udp_seen;

static __noinline int udp_dest_port(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct udphdr *udp = (void *)(iph + 1);

	if ((void *)(udp + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 || iph->protocol != IPPROTO_UDP)
		return -1;
	return bpf_ntohs(udp->dest);
}

SEC("xdp")
int xdp_global_data(struct xdp_md *ctx)
{
	int port;

	__sync_fetch_and_add(&packets_seen, 1);
	port = udp_dest_port((void *)(long)ctx->data, (void *)(long)ctx->data_end);
	if (port < 0)
		return XDP_PASS;
	udp_seen++;
	if (port != drop_port)
		return XDP_PASS;
	bpf_printk("udp to port %d: verdict %u", port, match_verdict);
	return match_verdict;
}

char LICENSE[] SEC("license") = "GPL";
