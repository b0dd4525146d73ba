// SPDX-License-Identifier: GPL-2.0
/* Copy skb->hash into skb->mark and continue (TC_ACT_OK): the RSS hash a NIC
 * with receive hashing on gave the packet becomes visible to nft `meta mark`. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_hash_mark(struct __sk_buff *skb)
{
	skb->mark = skb->hash;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
