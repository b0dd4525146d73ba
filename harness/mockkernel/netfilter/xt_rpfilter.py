"""-m rpfilter (iptables 1.8.9 extensions/libxt_rpfilter.c; net/ipv4/netfilter/
ipt_rpfilter.c): the reverse path filter as a match, a FIB lookup towards the
packet's source. Sent by iptables-nft as an xt match (nft_compat); nft 1.0.6
lists it by rpfilter_xlate() (`fib saddr [. mark] [. iif] oif [!= ]0`, with
--accept-local alone no translation: `xt match rpfilter`).

rpfilter_check() takes it in the raw and mangle tables only, and the match
registers for NF_INET_PRE_ROUTING alone (nft_match_validate() refuses a base
chain of another hook): the kernel answers EINVAL, iptables "RULE_APPEND failed
(Invalid argument)". Left out: ip6tables' rpfilter (ip6t_rpfilter.c) is named
as not modelled.
"""
from __future__ import annotations

from harness.mockkernel.ipv4 import route
from harness.mockkernel.net import RTN_LOCAL, RTN_UNICAST
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import XtMatch, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, not_modelled_error
from harness.mockkernel.netfilter.xt_packet import PACKET_LOOPBACK
from harness.mockkernel.wire import ipv4

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
    """rpfilter_mt(): a looped-back packet (or one received on lo) passes; a
    source 0.0.0.0 to the limited broadcast or a link-local group passes;
    else rpfilter_lookup_reverse(), each answer inverted by --invert."""
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


class RpfilterMatch(XtMatch):
    """--loose, --validmark, --accept-local, --invert (flags, no values)."""

    name = "rpfilter"
    OPTIONS = tuple(XtOpt((option,), arg=False) for option in FLAGS)

    def __init__(self) -> None:
        super().__init__()
        self.flags = 0

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if rule.family.nft_family != "ip":
            raise not_modelled_error(f"{rule.family.prog} -m rpfilter")
        self.flags |= FLAGS[option]

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if rule.family.nft_family != "ip":
            raise not_modelled_error(f"{rule.family.prog} -m rpfilter")
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
        flags = self.flags
        return [XtCompat("match", "rpfilter", self.xlate(), lambda ctx: rpfilter_mt(ctx.net, flags))]


RPFILTER_MATCHES = {"rpfilter": RpfilterMatch}
