// SPDX-License-Identifier: GPL-2.0
/* Growing and shrinking the XDP frame: IPIP encapsulation with
 * bpf_xdp_adjust_head (the outer checksum from bpf_csum_diff) and truncation to
 * 64 bytes with bpf_xdp_adjust_tail. Both pass the result to the stack.
 * bpf_xdp_adjust_meta lives in xdp_meta.c: some kernels refuse that helper, and
 * libbpf loads an object's programs all or none. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define TRIM_LEN 64

volatile const __be32 tunnel_src = bpf_htonl(0x0a630001); /* 10.99.0.1 */
volatile const __be32 tunnel_dst = bpf_htonl(0x0a630002); /* 10.99.0.2 */

static __always_inline __u16 csum_fold(__s64 csum)
{
	__u32 sum = csum;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xdp_ipip_encap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data, *new_eth;
	struct iphdr *inner = data + sizeof(*eth), *outer;
	__u16 inner_len;

	if ((void *)(inner + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	inner_len = bpf_ntohs(inner->tot_len);
	if (bpf_xdp_adjust_head(ctx, 0 - (int)sizeof(struct iphdr)))
		return XDP_DROP;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	new_eth = data;
	eth = data + sizeof(struct iphdr);
	outer = data + sizeof(*new_eth);
	if ((void *)(outer + 2) > data_end)
		return XDP_DROP;
	__builtin_memcpy(new_eth, eth, sizeof(*new_eth));
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0;
	outer->tot_len = bpf_htons(inner_len + sizeof(*outer));
	outer->id = 0;
	outer->frag_off = bpf_htons(0x4000);
	outer->ttl = 64;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = tunnel_src;
	outer->daddr = tunnel_dst;
	outer->check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)outer, sizeof(*outer), 0));
	return XDP_PASS;
}

SEC("xdp")
int xdp_trim(struct xdp_md *ctx)
{
	long len = (long)ctx->data_end - (long)ctx->data;

	if (len > TRIM_LEN && bpf_xdp_adjust_tail(ctx, (int)(TRIM_LEN - len)))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
