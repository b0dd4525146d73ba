// SPDX-License-Identifier: GPL-2.0
/* The stand-in lab's TRex ports run this: like xdp_pass.c it puts a veth in NAPI
 * mode, so it accepts frames its DUT port sends with XDP_TX or XDP_REDIRECT; being a
 * frags-aware program (section xdp.frags: BPF_F_XDP_HAS_FRAGS) it leaves the DUT
 * port's largest MTU as it was (veth_xdp_set() in drivers/net/veth.c caps the peer's
 * max_mtu at one page for a program without frags), so a suite can still raise it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp.frags")
int xdp_pass_frags(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
