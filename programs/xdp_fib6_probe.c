// SPDX-License-Identifier: GPL-2.0
/* bpf_fib_lookup for IPv6, as a probe that shows all it answers. An IPv6
 * UDP datagram carries the question: the lookup takes its addresses, flow
 * label, next header, ports and length (tot_len: payload length + 40) and
 * the receiving device; the flags are the first payload byte and the
 * table (BPF_FIB_LOOKUP_TBID) the u32 at the fifth. The answer
 * goes back in the same frame with XDP_TX: the return code in the second
 * payload byte and the struct bpf_fib_lookup as the call left it in the 64
 * bytes from the ninth. Frames too short for that, and anything else, pass. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET6 10
#define ANSWER_AT 8

SEC("xdp")
int xdp_fib6_probe(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6h = data + sizeof(*eth);
	struct udphdr *udp = (void *)(ip6h + 1);
	__u8 *payload = (void *)(udp + 1);
	struct bpf_fib_lookup fib = {};
	long rc;

	if ((void *)(payload + ANSWER_AT + sizeof(fib)) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	if (ip6h->nexthdr != IPPROTO_UDP)
		return XDP_PASS;
	fib.family = AF_INET6;
	fib.flowinfo = *(__be32 *)ip6h & bpf_htonl(0x0FFFFFFF);
	fib.l4_protocol = ip6h->nexthdr;
	fib.sport = udp->source;
	fib.dport = udp->dest;
	fib.tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
	__builtin_memcpy(fib.ipv6_src, &ip6h->saddr, sizeof(fib.ipv6_src));
	__builtin_memcpy(fib.ipv6_dst, &ip6h->daddr, sizeof(fib.ipv6_dst));
	fib.ifindex = ctx->ingress_ifindex;
	if (payload[0] & BPF_FIB_LOOKUP_TBID)
		fib.tbid = *(__u32 *)(payload + 4);

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), payload[0]);
	payload[1] = (__u8)rc;
	__builtin_memcpy(payload + ANSWER_AT, &fib, sizeof(fib));
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
