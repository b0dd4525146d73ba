// SPDX-License-Identifier: GPL-2.0
/* Return the TC action in the first byte of a UDP payload as a signed
 * number (0 OK, 2 SHOT, 4 STOLEN, 0xff UNSPEC, ...); other packets get
 * TC_ACT_OK. Lets one program show every verdict. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_verdict(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct udphdr *udp = (void *)(iph + 1);
	__s8 *action = (void *)(udp + 1);

	if ((void *)(action + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
	    iph->protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	return *action;
}

char LICENSE[] SEC("license") = "GPL";
