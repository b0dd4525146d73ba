// SPDX-License-Identifier: GPL-2.0
/* Send IPv6 UDP datagrams back where they came from with XDP_TX: swap the
 * MAC addresses, the IPv6 addresses and the UDP ports and reset the hop
 * limit to 64. Swapping keeps the UDP checksum (the pseudo-header sums the
 * same words). Datagrams to port 9 (discard) are dropped; anything else,
 * IPv4 and IPv6 with extension headers included, passes. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_ipv6_reflector(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6h = data + sizeof(*eth);
	struct udphdr *udp = (void *)(ip6h + 1);
	unsigned char mac[ETH_ALEN];
	struct in6_addr addr;
	__be16 port;

	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	if (ip6h->version != 6 || ip6h->nexthdr != IPPROTO_UDP)
		return XDP_PASS;
	if (udp->dest == bpf_htons(9))
		return XDP_DROP;

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	addr = ip6h->saddr;
	ip6h->saddr = ip6h->daddr;
	ip6h->daddr = addr;
	ip6h->hop_limit = 64;

	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
