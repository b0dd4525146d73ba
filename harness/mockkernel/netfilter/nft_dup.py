"""nft_dup: `dup to ADDR [device DEV]` in ip and ip6 tables
(net/netfilter/nft_dup_ipv4.c, ipv4/netfilter/nf_dup_ipv4.c,
ipv6/netfilter/nft_dup_ipv6.c, ipv6/netfilter/nf_dup_ipv6.c; nftables
src/statement.c dup_stmt_print(), src/evaluate.c stmt_evaluate_dup()).

nf_dup_ipv4(): a copy of the packet, untracked (nf_reset_ct()), DF set, its
TTL lowered by one at prerouting and input, routed to ADDR as its next hop
(flowi4 FLOWI_FLAG_KNOWN_NH, out of DEV when given) and sent by
ip_local_out(), so it crosses OUTPUT and POSTROUTING; the original goes on.
nf_dup_ipv6() is the same for IPv6: the copy's hop limit lowered at
prerouting and input (no DF), routed by nf_dup_ipv6_route() (ADDR as the
next hop unless the route has a gateway: ip6_pol_route()'s RTF_CACHE clone
for FLOWI_FLAG_KNOWN_NH) and sent by ip6_local_out(). A copy that finds no
route is freed. While the copy is sent, a dup it meets does nothing (the
per-CPU nf_skb_duplicated). nft refuses dup in inet tables ("unsupported
family"). Dup in netdev tables is nft_dup_netdev.py.
"""
from __future__ import annotations

from dataclasses import replace

from harness.mockkernel.core.skbuff import skb_copy
from harness.mockkernel.ipv4 import route
from harness.mockkernel.ipv4.ip_output import ip_local_out
from harness.mockkernel.ipv6 import route as route6
from harness.mockkernel.ipv6.ip6_output import ip6_local_out
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.core import NF_INET_LOCAL_IN, NF_INET_PRE_ROUTING
from harness.mockkernel.netfilter.nf_conntrack import IP_CT_UNTRACKED, UNTRACKED
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, MapExpr, PrintCtx, Stmt
from harness.mockkernel.netfilter.nft_json import selector_json
from harness.mockkernel.wire.ipv4 import IP_DF, Ipv4Packet
from harness.mockkernel.wire.ipv6 import Ipv6Packet

TTL_OFFSET = 8

_duplicating = [False]  # nf_skb_duplicated: a per-CPU flag, one CPU here


class Dup(Stmt):
    def __init__(self, addr, device: str | None = None, loc=None, family: str = "ip"):
        self.addr, self.device, self.loc = addr, device, loc  # addr: an address or a MapExpr
        self.family = family  # the table's: nft_dup_ipv4 (ip) or nft_dup_ipv6 (ip6)

    @property
    def addr_type(self) -> types.Datatype:
        return types.ipv6_addr if self.family == "ip6" else types.ipv4_addr

    def maps(self) -> list[MapExpr]:
        return [self.addr] if isinstance(self.addr, MapExpr) else []

    def text(self, pctx: PrintCtx) -> str:
        addr = self.addr.text(pctx) if isinstance(self.addr, MapExpr) else self.addr_type.format(self.addr)
        return f"dup to {addr}" + (f' device "{self.device}"' if self.device else "")

    def json(self, pctx: PrintCtx) -> list[dict]:
        addr = selector_json(self.addr, pctx) if isinstance(self.addr, MapExpr) else \
            self.addr_type.format(self.addr)
        return [{"dup": {"addr": addr, **({"dev": self.device} if self.device else {})}}]

    def compile(self, ctx: CompileCtx):
        net, device = ctx.net, self.device
        gateway = self.addr.lookup(ctx) if isinstance(self.addr, MapExpr) else (lambda pkt, a=self.addr: a)
        nf_dup = nf_dup_ipv6 if self.family == "ip6" else nf_dup_ipv4

        def dup(pkt):
            gw = gateway(pkt)
            if gw is None:
                return None
            nf_dup(net, pkt.skb, pkt.state.hook, gw, device)
            return None
        return dup


def _send_copy(net, copy, parent, what: str, local_out) -> None:
    """Trace the copy as a packet `parent` caused and send it, nf_skb_duplicated set meanwhile."""
    net.tracer.start(copy, what, parent=parent)
    _duplicating[0] = True
    try:
        local_out(copy)
    finally:
        _duplicating[0] = False


def _untracked_copy(skb):
    copy = skb_copy(skb)
    copy.nfct, copy.ctinfo = UNTRACKED, IP_CT_UNTRACKED
    return copy


def nf_dup_ipv4(net, skb, hooknum: int, gw: int, device: str | None) -> None:
    if _duplicating[0]:  # nf_skb_duplicated: a copy being sent is not copied again
        return
    copy = _untracked_copy(skb)
    iph = Ipv4Packet(copy.buf, copy.network_header)
    iph.frag_off |= IP_DF  # the sender learns of a smaller MTU on the copy's route
    if hooknum in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN):
        copy.buf[copy.network_header + TTL_OFFSET] -= 1  # ip_local_out() fills the checksum
    dev = net.dev_by_name(device) if device else None
    if device and dev is None:
        return
    rt = route.ip_route_output(net, gw, oif=dev.ifindex if dev else None)
    if not isinstance(rt, route.Rtable) or rt.dev is None:
        return
    copy.dst, copy.dev = replace(rt, gateway=gw), rt.dev  # FLOWI_FLAG_KNOWN_NH: gw is the next hop
    _send_copy(net, copy, skb, f"nf_dup_ipv4 to {types.ipv4_addr.format(gw)}", ip_local_out)


def nf_dup_ipv6(net, skb, hooknum: int, gw: int, device: str | None) -> None:
    if _duplicating[0]:
        return
    copy = _untracked_copy(skb)
    if hooknum in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN):
        ip6h = Ipv6Packet(copy.buf, copy.network_header)
        ip6h.hop_limit = (ip6h.hop_limit - 1) & 0xFF
    dev = net.dev_by_name(device) if device else None
    if device and dev is None:
        return
    gw_bytes = gw.to_bytes(16, "big")
    rt = route6.ip6_route_output(net, gw_bytes, oif=dev.ifindex if dev else None)
    if rt.error or rt.dev is None:  # nf_dup_ipv6_route(): dst->error frees the copy
        return
    # FLOWI_FLAG_KNOWN_NH: a route without a gateway gets an RTF_CACHE clone whose next hop is gw
    copy.dst, copy.dev = replace(rt, gateway=rt.gateway or gw_bytes), rt.dev
    _send_copy(net, copy, skb, f"nf_dup_ipv6 to {types.ipv6_addr.format(gw)}", ip6_local_out)
