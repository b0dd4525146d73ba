// SPDX-License-Identifier: GPL-2.0
/* Classify in TC for policy routing: an IPv4 TCP or UDP packet whose
 * destination port is in `port_policy` gets that entry's skb->mark and
 * skb->priority. Every packet continues (TC_ACT_OK). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct policy {
	__u32 mark;
	__u32 priority;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16); /* destination port, host byte order */
	__type(value, struct policy);
	__uint(max_entries, 64);
} port_policy SEC(".maps");

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct udphdr *l4 = (void *)(iph + 1); /* ports sit at the same offsets in TCP */
	struct policy *policy;
	__u16 port;

	if ((void *)(l4 + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5)
		return TC_ACT_OK;
	if (iph->protocol != IPPROTO_UDP && iph->protocol != IPPROTO_TCP)
		return TC_ACT_OK;
	port = bpf_ntohs(l4->dest);
	policy = bpf_map_lookup_elem(&port_policy, &port);
	if (policy) {
		skb->mark = policy->mark;
		skb->priority = policy->priority;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
