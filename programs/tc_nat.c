// SPDX-License-Identifier: GPL-2.0
/* Stateless one-to-one NAT in TC: ingress rewrites the IPv4 destination
 * address found in the `dnat` table, egress the source address found in
 * `snat`. Checksums are fixed with bpf_l3_csum_replace (IP header) and
 * bpf_l4_csum_replace (TCP/UDP pseudo header) before the address is written
 * with bpf_skb_store_bytes. Headers with options are left alone. */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define IP_OFF ETH_HLEN
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_SRC_OFF (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (IP_OFF + offsetof(struct iphdr, daddr))
#define L4_OFF (IP_OFF + sizeof(struct iphdr))

struct nat_table {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, __be32);
	__uint(max_entries, 256);
};

struct nat_table dnat SEC(".maps");
struct nat_table snat SEC(".maps");

static __always_inline int nat_rewrite(struct __sk_buff *skb, void *table, __u32 addr_off)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	__be32 from, *to;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5)
		return TC_ACT_OK;
	from = addr_off == IP_SRC_OFF ? iph->saddr : iph->daddr;
	to = bpf_map_lookup_elem(table, &from);
	if (!to)
		return TC_ACT_OK;
	if (iph->protocol == IPPROTO_TCP)
		bpf_l4_csum_replace(skb, L4_OFF + offsetof(struct tcphdr, check), from, *to,
				    BPF_F_PSEUDO_HDR | sizeof(*to));
	else if (iph->protocol == IPPROTO_UDP)
		bpf_l4_csum_replace(skb, L4_OFF + offsetof(struct udphdr, check), from, *to,
				    BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | sizeof(*to));
	bpf_l3_csum_replace(skb, IP_CSUM_OFF, from, *to, sizeof(*to));
	bpf_skb_store_bytes(skb, addr_off, to, sizeof(*to), 0);
	return TC_ACT_OK;
}

SEC("tc/ingress")
int tc_dnat(struct __sk_buff *skb)
{
	return nat_rewrite(skb, &dnat, IP_DST_OFF);
}

SEC("tc/egress")
int tc_snat(struct __sk_buff *skb)
{
	return nat_rewrite(skb, &snat, IP_SRC_OFF);
}

char LICENSE[] SEC("license") = "GPL";
