"""nft_rt: the packet's route (net/netfilter/nft_rt.c nft_rt_get_eval()).
Every key breaks the rule when the packet has no route (skb_dst()) yet.

- `rt mtu` (NFT_RT_TCPMSS): get_tcpmss() takes the MTU of the packet's route
  (dst_mtu(skb_dst(skb))), lowers it to the MTU of the route back to the
  packet's source (nf_route() to the IPv4 source address: for a forwarded
  packet, normally out of the port it came in on), and subtracts the IPv4 and
  TCP headers (40); an MTU of 40 or less, or over 0xFFFF, gives
  TCP_MSS_DEFAULT (536). nft_rt_validate() refuses it outside the forward,
  output and postrouting hooks and outside the ip, ip6 and inet families.
  Left out: IPv6's (the mock routes IPv4 for it).
- `rt classid` (NFT_RT_CLASSID): dst->tclassid, the route's realm: the mock's
  routes have none (0).
- `rt ip nexthop`, `rt ip6 nexthop` (NFT_RT_NEXTHOP4/6): rt_nexthop() and
  rt6_nexthop(), the route's gateway, else the packet's destination; a packet
  of the other family breaks the rule (nft_pf()).
- `rt ipsec` (NFT_RT_XFRM): whether dst->xfrm is set: never (no xfrm).
nft (src/evaluate.c expr_evaluate_rt()) takes `rt nexthop` as the rule's
network protocol's (the table's, or an earlier match's); without one it is
"cannot determine ip protocol version", of the other family "will not match".
"""
from __future__ import annotations

from harness.mockkernel.ipv4 import route
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.core import NFPROTO_IPV4, NFPROTO_IPV6
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, PrintCtx, Selector, Stmt
from harness.mockkernel.netfilter.nft_meta import realm
from harness.mockkernel.wire import ipv4
from harness.mockkernel.wire.ipv6 import Ipv6Packet

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
    """An nft_rt load: `key` mtu, classid, nexthop (with `family` ip or ip6) or ipsec."""

    def __init__(self, key: str = "mtu", family: str | None = None):
        self.key, self.family = key, family
        self.dtype = {"mtu": types.length16, "classid": realm, "ipsec": types.boolean,
                      "nexthop": types.ipv4_addr if family == "ip" else types.ipv6_addr}[key]

    def text(self, pctx: PrintCtx) -> str:
        return f"rt {self.family} nexthop" if self.key == "nexthop" else f"rt {self.key}"

    def json(self, pctx: PrintCtx) -> dict:
        return {"rt": {"key": self.key, **({"family": self.family} if self.family else {})}}

    def load(self, ctx: CompileCtx):
        if self.key == "classid" or self.key == "ipsec":
            return lambda pkt: None if pkt.skb.dst is None else 0
        if self.key == "nexthop":
            return self._nexthop4() if self.family == "ip" else self._nexthop6()
        net, saddr_field = ctx.net, ipv4.SADDR_FIELD

        def rt_tcpmss(pkt):
            dst = pkt.skb.dst
            if dst is None or pkt.tprot is None:
                return None
            return get_tcpmss(net, dst, saddr_field.unpack_from(pkt.buf, pkt.nh)[0])
        return rt_tcpmss

    @staticmethod
    def _nexthop4():
        daddr_field = ipv4.DADDR_FIELD

        def rt_nexthop4(pkt):
            dst = pkt.skb.dst
            if dst is None or pkt.state.pf != NFPROTO_IPV4:
                return None
            return dst.gateway if dst.gateway is not None else daddr_field.unpack_from(pkt.buf, pkt.nh)[0]
        return rt_nexthop4

    @staticmethod
    def _nexthop6():
        def rt_nexthop6(pkt):
            dst = pkt.skb.dst
            if dst is None or pkt.state.pf != NFPROTO_IPV6:
                return None
            return int.from_bytes(dst.nexthop(Ipv6Packet(pkt.buf, pkt.nh).daddr), "big")
        return rt_nexthop6


def loads_tcpmss(stmt: Stmt) -> bool:
    """Whether a statement loads `rt mtu` (a match on it, or a value set from it)."""
    return any(isinstance(x, Rt) and x.key == "mtu" for x in (getattr(stmt, "lhs", None), getattr(stmt, "value", None)))


def tcpmss_refused(stmt: Stmt, family: str, hook: str) -> bool:
    """nft_rt_validate(): a statement loading `rt mtu` in a base chain of a
    family or at a hook where it cannot run."""
    return loads_tcpmss(stmt) and (family not in TCPMSS_FAMILIES or hook not in TCPMSS_HOOKS)
