// SPDX-License-Identifier: GPL-2.0
/* bpf_redirect() an IPv4 UDP datagram to the ifindex in the first byte of
 * its payload, to that device's ingress if the second byte is 1
 * (BPF_F_INGRESS), else out of it; other packets continue (TC_ACT_OK). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_redirect(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct udphdr *udp = (void *)(iph + 1);
	__u8 *target = (void *)(udp + 1);

	if ((void *)(target + 2) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
	    iph->protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	return bpf_redirect(target[0], target[1] == 1 ? BPF_F_INGRESS : 0);
}

char LICENSE[] SEC("license") = "GPL";
