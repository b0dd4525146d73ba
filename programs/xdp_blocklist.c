// SPDX-License-Identifier: GPL-2.0
/* Drop IPv4 packets whose source address falls in a prefix of the `blocklist`
 * LPM trie; the value counts the packets each prefix dropped. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct ipv4_lpm_key {
	__u32 prefixlen;
	__u32 addr; /* network byte order */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipv4_lpm_key);
	__type(value, __u64);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} blocklist SEC(".maps");

SEC("xdp")
int xdp_blocklist(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct ipv4_lpm_key key;
	__u64 *drops;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	key.prefixlen = 32;
	key.addr = iph->saddr;
	drops = bpf_map_lookup_elem(&blocklist, &key);
	if (!drops)
		return XDP_PASS;
	__sync_fetch_and_add(drops, 1);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
