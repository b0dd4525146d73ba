"""The netdev ingress hook (include/linux/netfilter_netdev.h nf_hook_ingress(),
net/core/dev.c nf_ingress()).

nft chains `type filter hook ingress device "pN" priority P` (family netdev)
register at NFPROTO_NETDEV hook NF_NETDEV_INGRESS; __netif_receive_skb_core()
runs them right after TC ingress, before the protocol handler, with the
receiving device as the state's input device (each chain keeps to its own
devices). The skb's data is at the network header then. A drop frees the
packet with NETFILTER_DROP at nft_do_chain (seen on the lab), its journey
stage NF_INGRESS.
Left out: the netdev egress hook.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_NETDEV_INGRESS, NFPROTO_NETDEV, NfHookState, nf_hook_slow


class NfNetdevHookState(NfHookState):
    """The hook state at netdev ingress: its journey stage is NF_INGRESS."""

    __slots__ = ()

    @property
    def stage(self) -> str:
        return "NF_INGRESS"


def nf_hook_ingress(skb) -> bool:
    """True if the packet goes on (no chain, or every chain accepted it)."""
    entries = skb.net.nf_hooks.entries.get((NFPROTO_NETDEV, NF_NETDEV_INGRESS))
    if not entries:
        return True
    state = NfNetdevHookState(NF_NETDEV_INGRESS, NFPROTO_NETDEV, skb.dev, None, skb.net)
    return nf_hook_slow(skb, state, entries) == NF_ACCEPT
