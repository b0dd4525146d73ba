// SPDX-License-Identifier: GPL-2.0
/* Send IPv4 UDP datagrams back where they came from with XDP_TX: swap the
 * MAC addresses, the IP addresses and the UDP ports, reset the TTL to 64 and
 * recompute the IP header checksum. Anything else passes. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

static __always_inline __u16 ip_fast_csum(struct iphdr *iph)
{
	__u16 *word = (__u16 *)iph;
	__u32 sum = 0;

	iph->check = 0;
#pragma unroll
	for (int i = 0; i < (int)sizeof(*iph) / 2; i++)
		sum += word[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xdp_tx_reflector(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct udphdr *udp = (void *)(iph + 1);
	unsigned char mac[ETH_ALEN];
	__be32 addr;
	__be16 port;

	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (iph->ihl != 5 || iph->protocol != IPPROTO_UDP)
		return XDP_PASS;

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	addr = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = addr;
	iph->ttl = 64;
	iph->check = ip_fast_csum(iph);

	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
