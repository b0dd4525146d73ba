// SPDX-License-Identifier: GPL-2.0
/* Walk an IPv6 packet's extension headers in TC (hop-by-hop, routing,
 * destination options: up to 4 of them, a bounded loop the verifier
 * follows, as ipv6_skip_exthdr() walks them) to the transport header. A
 * UDP datagram to port 9 is dropped (TC_ACT_SHOT); any other IPv6 packet
 * is sent back out of the device it came in on, unchanged (bpf_redirect);
 * everything else continues (TC_ACT_OK). A fifth extension header is not
 * walked: that packet goes back too. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_EXTHDRS 4

struct ipv6_opt_hdr_min {
	__u8 nexthdr;
	__u8 hdrlen;
};

SEC("tc")
int tc_ipv6_exthdr(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6h = data + sizeof(*eth);
	void *cursor = ip6h + 1;
	__u8 nexthdr;
	int walked;

	if (cursor > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	nexthdr = ip6h->nexthdr;
	for (walked = 0; walked < MAX_EXTHDRS; walked++) {
		struct ipv6_opt_hdr_min *opt = cursor;

		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING && nexthdr != IPPROTO_DSTOPTS)
			break;
		if ((void *)(opt + 1) > data_end)
			return TC_ACT_OK;
		nexthdr = opt->nexthdr;
		cursor += (opt->hdrlen + 1) * 8;
	}
	if (nexthdr == IPPROTO_UDP) {
		struct udphdr *udp = cursor;

		if ((void *)(udp + 1) > data_end)
			return TC_ACT_OK;
		if (udp->dest == bpf_htons(9))
			return TC_ACT_SHOT;
	}
	return bpf_redirect(skb->ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
