// SPDX-License-Identifier: GPL-2.0
/* Report every IPv4 packet to user space twice: a record in the `events`
 * ring buffer (reserve/submit) and the same record plus the first 14 bytes
 * of the frame through the `perf_events` perf event array. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct event {
	__be32 saddr;
	__be32 daddr;
	__u16 len;
	__u8 protocol;
	__u8 ttl;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

SEC("xdp")
int xdp_events(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct event ev, *rec;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ev.saddr = iph->saddr;
	ev.daddr = iph->daddr;
	ev.len = data_end - data;
	ev.protocol = iph->protocol;
	ev.ttl = iph->ttl;

	rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
	if (rec) {
		*rec = ev;
		bpf_ringbuf_submit(rec, 0);
	}
	bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU | ((__u64)ETH_HLEN << 32),
			      &ev, sizeof(ev));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
