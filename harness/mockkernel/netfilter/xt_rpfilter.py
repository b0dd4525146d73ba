"""-m rpfilter (iptables 1.8.9 extensions/libxt_rpfilter.c; net/ipv4/netfilter/
ipt_rpfilter.c, net/ipv6/netfilter/ip6t_rpfilter.c): the reverse path filter
as a match, a FIB lookup towards the packet's source. Sent by iptables-nft as an xt match (nft_compat); nft 1.0.6
lists it by rpfilter_xlate() (`fib saddr [. mark] [. iif] oif [!= ]0`, with
--accept-local alone no translation: `xt match rpfilter`).

rpfilter_check() takes it in the raw and mangle tables only, and the match
registers for NF_INET_PRE_ROUTING alone (nft_match_validate() refuses a base
chain of another hook): the kernel answers EINVAL, iptables "RULE_APPEND failed
(Invalid argument)".
"""
from __future__ import annotations

from harness.mockkernel.ipv4 import route
from harness.mockkernel.ipv6.fib6_rules import Flowi6, fib6_rule_lookup
from harness.mockkernel.ipv6.ip6_fib import RTF_ANYCAST, RTF_LOCAL, RTF_REJECT
from harness.mockkernel.ipv6.route import ip6_pol_route_lookup
from harness.mockkernel.net import RTN_LOCAL, RTN_UNICAST
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import XtMatch, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt
from harness.mockkernel.netfilter.xt_packet import PACKET_LOOPBACK
from harness.mockkernel.wire import ipv4, ipv6

# include/uapi/linux/netfilter/xt_rpfilter.h
XT_RPFILTER_LOOSE, XT_RPFILTER_VALID_MARK, XT_RPFILTER_ACCEPT_LOCAL, XT_RPFILTER_INVERT = 1, 2, 4, 8
FLAGS = {"--loose": XT_RPFILTER_LOOSE, "--validmark": XT_RPFILTER_VALID_MARK,
         "--accept-local": XT_RPFILTER_ACCEPT_LOCAL, "--invert": XT_RPFILTER_INVERT}


def rpfilter_get_saddr(addr: int) -> int:
    """No route is looked up from a multicast, broadcast or zero-net address."""
    return 0 if route.is_multicast(addr) or route.is_lbcast(addr) or route.is_zeronet(addr) else addr


def rpfilter_lookup_reverse(net, daddr: int, saddr: int, mark: int, tos: int, dev, flags: int) -> bool:
    """fib_lookup() from lo towards the packet's source: a unicast route (or a
    local one with --accept-local) whose nexthop uses the receiving device
    (fib_info_nh_uses_dev()), any device with --loose."""
    res = route.fib_lookup(net, daddr, saddr, route.LOOPBACK_IFINDEX, None, mark, tos)
    if res.__class__ is int:
        return False
    if res.type is not RTN_UNICAST and (res.type is not RTN_LOCAL or not flags & XT_RPFILTER_ACCEPT_LOCAL):
        return False
    return res.route.oif == dev.ifindex or bool(flags & XT_RPFILTER_LOOSE)


def rpfilter_mt(net, flags: int):
    """ipt_rpfilter.c rpfilter_mt(): a looped-back packet (or one received on
    lo) passes; a source 0.0.0.0 to the limited broadcast or a link-local
    group passes; else rpfilter_lookup_reverse(), each answer inverted by
    --invert."""
    invert = bool(flags & XT_RPFILTER_INVERT)
    use_mark = flags & XT_RPFILTER_VALID_MARK

    def match(pkt) -> bool:
        skb, dev = pkt.skb, pkt.state.in_dev
        if skb.pkt_type == PACKET_LOOPBACK or dev.is_loopback:
            return not invert
        tos, saddr, daddr = ipv4.ROUTE_FIELDS.unpack_from(pkt.buf, pkt.nh)
        if route.is_zeronet(saddr) and (route.is_lbcast(daddr) or route.is_local_multicast(daddr)):
            return not invert
        found = rpfilter_lookup_reverse(net, saddr, rpfilter_get_saddr(daddr), skb.mark if use_mark else 0,
                                        tos & ipv4.IPTOS_TOS_MASK, dev, flags)
        return found != invert
    return match


def rpfilter_lookup_reverse6(net, pkt, dev, flags: int) -> bool:
    """ip6t_rpfilter.c rpfilter_lookup_reverse6(): ip6_route_lookup() from lo
    towards the source (from the destination when that is unicast), out of
    the receiving device unless --loose (only there for a link-local source:
    RT6_LOOKUP_F_IFACE); an error, reject or anycast route fails, a local one
    passes with --accept-local alone, else its device must be the receiving
    one (any with --loose)."""
    saddr, daddr = ipv6.ADDRS.unpack_from(pkt.buf, pkt.nh)
    linklocal = bool(ipv6.ipv6_addr_type(saddr) & ipv6.IPV6_ADDR_LINKLOCAL)
    has_saddr = bool(ipv6.ipv6_addr_type(daddr) & ipv6.IPV6_ADDR_UNICAST)
    oif = dev.ifindex if linklocal or not flags & XT_RPFILTER_LOOSE else 0
    flow = Flowi6(int.from_bytes(saddr, "big"), int.from_bytes(daddr, "big") if has_saddr else 0,
                  route.LOOPBACK_IFINDEX, oif, mark=pkt.skb.mark if flags & XT_RPFILTER_VALID_MARK else 0,
                  has_saddr=has_saddr, lookup=ip6_pol_route_lookup, strict=linklocal)
    f6i = fib6_rule_lookup(net, flow)
    if f6i.__class__ is int or f6i.flags & (RTF_REJECT | RTF_ANYCAST):
        return False
    if f6i.flags & RTF_LOCAL:
        return bool(flags & XT_RPFILTER_ACCEPT_LOCAL)
    return f6i.ifindex == dev.ifindex or bool(flags & XT_RPFILTER_LOOSE)


def rpfilter_mt6(net, flags: int):
    """ip6t_rpfilter.c rpfilter_mt(): a looped-back packet and one from the
    unspecified address pass; else rpfilter_lookup_reverse6()."""
    invert = bool(flags & XT_RPFILTER_INVERT)

    def match(pkt) -> bool:
        dev = pkt.state.in_dev
        if pkt.skb.pkt_type == PACKET_LOOPBACK or dev.is_loopback:
            return not invert
        saddr = ipv6.ADDRS.unpack_from(pkt.buf, pkt.nh)[0]
        if ipv6.ipv6_addr_type(saddr) == ipv6.IPV6_ADDR_ANY:
            return not invert
        return rpfilter_lookup_reverse6(net, pkt, dev, flags) != invert
    return match


class RpfilterMatch(XtMatch):
    """--loose, --validmark, --accept-local, --invert (flags, no values)."""

    name = "rpfilter"
    OPTIONS = tuple(XtOpt((option,), arg=False) for option in FLAGS)

    def __init__(self) -> None:
        super().__init__()
        self.flags = 0

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        self.flags |= FLAGS[option]

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if builtin and chain != "PREROUTING":
            raise kernel_refusal(chain)

    def table_check(self, rule, table: str, chain: str) -> None:
        if table not in ("mangle", "raw"):
            raise kernel_refusal(chain)

    def _options(self, prefix: str) -> str:
        return " ".join(prefix + option[2:] for option, bit in FLAGS.items() if self.flags & bit)

    def save(self) -> str:
        return " ".join(("-m rpfilter", self._options("--"))).rstrip()

    def listing(self) -> str:
        return " ".join(("rpfilter", self._options(""))).rstrip()

    def xlate(self) -> str | None:
        """rpfilter_xlate()."""
        flags, invert = self.flags, bool(self.flags & XT_RPFILTER_INVERT)
        text = ""
        if flags & XT_RPFILTER_ACCEPT_LOCAL:
            if not invert:
                return None
            text = "fib saddr type != local "
        text += "fib saddr " + (". mark " if flags & XT_RPFILTER_VALID_MARK else "") + \
            ("" if flags & XT_RPFILTER_LOOSE else ". iif ")
        return text + f"oif {'' if invert else '!= '}0"

    def stmts(self, rule) -> list[Stmt]:
        flags, mt = self.flags, rpfilter_mt if rule.family.nft_family == "ip" else rpfilter_mt6
        return [XtCompat("match", "rpfilter", self.xlate(), lambda ctx: mt(ctx.net, flags))]


RPFILTER_MATCHES = {"rpfilter": RpfilterMatch}
