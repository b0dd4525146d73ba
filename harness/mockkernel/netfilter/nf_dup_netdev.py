"""net/netfilter/nf_dup_netdev.c: send a packet, or a copy of it, out of
another device from a netdev chain, skipping the stack.

nf_fwd_netdev_egress() (`fwd to DEV`) hands the packet itself to the device
(a device that is gone frees it); nf_dup_netdev_egress() a clone of it (a
device that is gone: nothing). nf_do_netdev_egress() pushes the MAC header
back at the ingress hook (where the data is at the network header; at egress
it is at the MAC header already), sets the device, clears the timestamp and
calls dev_queue_xmit(): the target device's netdev egress chains, TC egress,
its qdisc and driver, no routing, no TTL change. Nested more than
NF_RECURSION_LIMIT deep (an egress chain forwarding to a device whose egress
chain forwards again) the packet is freed.

The mock's clone is a copy of the bytes too (skb_copy): the kernel's clone
shares them until a writer unshares them, which every writer the mock has
would do.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.mockkernel.core.dev import dev_queue_xmit
from harness.mockkernel.core.skbuff import kfree_skb, skb_copy
from harness.mockkernel.netfilter.core import NF_NETDEV_INGRESS

NF_RECURSION_LIMIT = 2
_recursion = [0]  # softnet_data.xmit.nf_dup_skb_recursion: per CPU, one CPU here


def nf_do_netdev_egress(skb, dev, hook: int, stage) -> None:
    if _recursion[0] > NF_RECURSION_LIMIT:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, stage, "nf_do_netdev_egress")
        return
    if hook == NF_NETDEV_INGRESS:
        skb.data -= skb.network_header - skb.mac_header  # skb_push(skb, skb->mac_len)
    skb.dev = dev
    skb.tstamp = 0.0  # skb_clear_tstamp()
    _recursion[0] += 1
    try:
        dev_queue_xmit(skb)
    finally:
        _recursion[0] -= 1


def nf_fwd_netdev_egress(skb, state, oif: int) -> None:
    """The packet out of device `oif`; the caller's verdict is NF_STOLEN."""
    net = skb.net
    dev = net.devices.get(oif)
    if dev is None:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, state.stage, "nf_fwd_netdev_egress")
        return
    net.tracer.hop(skb, state.stage, "nf_fwd_netdev_egress", "FWD", f"to {dev.name}")
    nf_do_netdev_egress(skb, dev, state.hook, state.stage)


def nf_dup_netdev_egress(skb, state, oif: int) -> None:
    """A copy of the packet out of device `oif`, traced as a packet `skb` caused."""
    net = skb.net
    dev = net.devices.get(oif)
    if dev is None:
        return
    copy = skb_copy(skb)
    net.tracer.start(copy, f"nf_dup_netdev_egress to {dev.name}", parent=skb)
    nf_do_netdev_egress(copy, dev, state.hook, state.stage)
