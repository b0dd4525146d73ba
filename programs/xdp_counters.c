// SPDX-License-Identifier: GPL-2.0
/* Count packets and bytes per IP protocol: a per-CPU array of counters and a
 * shared array updated with atomic adds. Every packet passes. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct counters {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct counters);
	__uint(max_entries, 256);
} proto_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 256);
} proto_packets SEC(".maps");

SEC("xdp")
int xdp_counters(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct counters *stats;
	__u64 *packets;
	__u32 proto;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	proto = iph->protocol;
	stats = bpf_map_lookup_elem(&proto_stats, &proto);
	if (stats) {
		stats->packets++;
		stats->bytes += data_end - data;
	}
	packets = bpf_map_lookup_elem(&proto_packets, &proto);
	if (packets)
		__sync_fetch_and_add(packets, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
