// SPDX-License-Identifier: GPL-2.0
/* The lab's tester ends run this so they accept frames a DUT port sends with
 * XDP_TX or XDP_REDIRECT: a veth delivers xdp_frames only to a peer in NAPI
 * mode, which an attached XDP program gives it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
