// SPDX-License-Identifier: GPL-2.0
/* Mark every packet with 0x2a (skb->mark) and continue (TC_ACT_OK): at TC
 * ingress the mark is there for `ip rule fwmark` and nft `meta mark`. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define MARK 0x2a

SEC("tc")
int tc_set_mark(struct __sk_buff *skb)
{
	skb->mark = MARK;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
