"""nft_dup: `dup to ADDR [device DEV]` in ip tables (net/netfilter/nft_dup_ipv4.c,
ipv4/netfilter/nf_dup_ipv4.c; nftables src/statement.c dup_stmt_print()).

nf_dup_ipv4(): a copy of the packet, untracked (nf_reset_ct()), DF set, its
TTL lowered by one at prerouting and input, routed to ADDR as its next hop
(flowi4 FLOWI_FLAG_KNOWN_NH, out of DEV when given) and sent by
ip_local_out(), so it crosses OUTPUT and POSTROUTING; the original goes on.
A copy that finds no route is freed. While the copy is sent, a dup it meets
does nothing (the per-CPU nf_skb_duplicated). Left out: dup in ip6, inet and
netdev tables (nf_dup_ipv6, nft_fwd_netdev's dup).
"""
from __future__ import annotations

from dataclasses import replace

from harness.mockkernel.core.skbuff import skb_copy
from harness.mockkernel.ipv4 import route
from harness.mockkernel.ipv4.ip_output import ip_local_out
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.core import NF_INET_LOCAL_IN, NF_INET_PRE_ROUTING
from harness.mockkernel.netfilter.nf_conntrack import IP_CT_UNTRACKED, UNTRACKED
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, MapExpr, PrintCtx, Stmt
from harness.mockkernel.netfilter.nft_json import selector_json
from harness.mockkernel.wire.ipv4 import IP_DF, Ipv4Packet

TTL_OFFSET = 8

_duplicating = [False]  # nf_skb_duplicated: a per-CPU flag, one CPU here


class Dup(Stmt):
    def __init__(self, addr, device: str | None = None, loc=None):
        self.addr, self.device, self.loc = addr, device, loc  # addr: an address or a MapExpr

    def maps(self) -> list[MapExpr]:
        return [self.addr] if isinstance(self.addr, MapExpr) else []

    def text(self, pctx: PrintCtx) -> str:
        addr = self.addr.text(pctx) if isinstance(self.addr, MapExpr) else types.ipv4_addr.format(self.addr)
        return f"dup to {addr}" + (f' device "{self.device}"' if self.device else "")

    def json(self, pctx: PrintCtx) -> list[dict]:
        addr = selector_json(self.addr, pctx) if isinstance(self.addr, MapExpr) else \
            types.ipv4_addr.format(self.addr)
        return [{"dup": {"addr": addr, **({"dev": self.device} if self.device else {})}}]

    def compile(self, ctx: CompileCtx):
        net, device = ctx.net, self.device
        gateway = self.addr.lookup(ctx) if isinstance(self.addr, MapExpr) else (lambda pkt, a=self.addr: a)

        def dup(pkt):
            gw = gateway(pkt)
            if gw is None:
                return None
            if not _duplicating[0]:
                nf_dup_ipv4(net, pkt.skb, pkt.state.hook, gw, device)
            return None
        return dup


def nf_dup_ipv4(net, skb, hooknum: int, gw: int, device: str | None) -> None:
    copy = skb_copy(skb)
    copy.nfct, copy.ctinfo = UNTRACKED, IP_CT_UNTRACKED
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
    net.tracer.start(copy, f"nf_dup_ipv4 to {types.ipv4_addr.format(gw)}", parent=skb)
    _duplicating[0] = True
    try:
        ip_local_out(copy)
    finally:
        _duplicating[0] = False
