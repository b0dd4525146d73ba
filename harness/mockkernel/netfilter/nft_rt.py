"""nft_rt: `rt mtu`, the TCP MSS a packet's routes allow (net/netfilter/nft_rt.c,
NFT_RT_TCPMSS).

get_tcpmss() takes the MTU of the packet's route (dst_mtu(skb_dst(skb))), lowers
it to the MTU of the route back to the packet's source (nf_route() to the IPv4
source address: for a forwarded packet, normally out of the port it came in on),
and subtracts the IPv4 and TCP headers (40); an MTU of 40 or less, or over
0xFFFF, gives TCP_MSS_DEFAULT (536). With no route on the packet (PREROUTING,
INPUT) the expression breaks the rule; nft_rt_validate() refuses it outside the
forward, output and postrouting hooks and outside the ip, ip6 and inet families.
Left out: the other keys (nexthop, classid, ipsec) and IPv6 (the mock routes IPv4).
"""
from __future__ import annotations

from harness.mockkernel.ipv4 import route
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, PrintCtx, Selector, Stmt
from harness.mockkernel.wire import ipv4

TCP_MSS_DEFAULT = 536  # include/net/tcp.h: RFC 1122's MSS when nothing better is known
MSS_HEADERS = 20 + 20  # sizeof(struct iphdr) + sizeof(struct tcphdr)
# nft_rt_validate(): where the route a TCPMSS load reads exists
TCPMSS_HOOKS = frozenset(("forward", "output", "postrouting"))
TCPMSS_FAMILIES = frozenset(("ip", "ip6", "inet"))


def get_tcpmss(net, dst: route.Rtable, saddr: int) -> int:
    """nft_rt.c get_tcpmss() for an IPv4 packet from `saddr` whose route is `dst`."""
    mtu = dst.dst_mtu()
    back = route.ip_route_output(net, saddr)
    if isinstance(back, route.Rtable):  # no route back: the packet's own MTU alone
        mtu = min(mtu, back.dst_mtu())
    if mtu <= MSS_HEADERS or mtu > 0xFFFF:
        return TCP_MSS_DEFAULT
    return mtu - MSS_HEADERS


class Rt(Selector):
    """`rt mtu` (NFT_RT_TCPMSS): the MSS get_tcpmss() gives, or None (NFT_BREAK)
    when the packet has no route yet."""

    dtype = types.length16

    def text(self, pctx: PrintCtx) -> str:
        return "rt mtu"

    def load(self, ctx: CompileCtx):
        net, saddr_field = ctx.net, ipv4.SADDR_FIELD

        def rt_tcpmss(pkt):
            dst = pkt.skb.dst
            if dst is None or pkt.tprot is None:
                return None
            return get_tcpmss(net, dst, saddr_field.unpack_from(pkt.buf, pkt.nh)[0])
        return rt_tcpmss


def loads_tcpmss(stmt: Stmt) -> bool:
    """Whether a statement loads `rt mtu` (a match on it, or a value set from it)."""
    return isinstance(getattr(stmt, "lhs", None), Rt) or isinstance(getattr(stmt, "value", None), Rt)


def tcpmss_refused(stmt: Stmt, family: str, hook: str) -> bool:
    """nft_rt_validate(): a statement loading `rt mtu` in a base chain of a
    family or at a hook where it cannot run."""
    return loads_tcpmss(stmt) and (family not in TCPMSS_FAMILIES or hook not in TCPMSS_HOOKS)
