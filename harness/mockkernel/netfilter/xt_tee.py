"""-j TEE, as iptables-nft sends it (nft_compat): libxt_TEE.c revision 1;
net/netfilter/xt_TEE.c tee_tg4()/tee_tg6() over nf_dup_ipv4()/nf_dup_ipv6()
(nft_dup.py, the copy nft's `dup` sends as well). Also libxtables'
XTTYPE_HOST (xtopt_parse_host()), which TPROXY's --on-ip takes too.
"""
from __future__ import annotations

import socket

from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_dup import nf_dup_ipv4, nf_dup_ipv6
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, usage_error
from harness.mockkernel.netfilter.xt_targets import XtTarget

IFNAMSIZ = 16


def parse_host(family, text: str) -> int:
    """xtopt_parse_host(): getaddrinfo() in the family (so inet_aton()'s
    forms and host names too); every answer must be the same address."""
    af = socket.AF_INET6 if family.nft_family == "ip6" else socket.AF_INET
    try:
        infos = socket.getaddrinfo(text, None, af)
    except socket.gaierror as err:
        raise usage_error(f"getaddrinfo: {err.strerror}\n") from None
    except (UnicodeError, ValueError):  # a name Python's IDNA codec refuses: getaddrinfo(3) finds no such name
        raise usage_error("getaddrinfo: Name or service not known\n") from None
    addresses = {info[4][0] for info in infos}
    if len(addresses) > 1:
        raise usage_error(f"{text} resolves to more than one address\n")
    return int(family.address(addresses.pop()))


class TeeTarget(XtTarget):
    """--gateway ADDR [--oif NAME]; tee_tg4(): a copy of the packet to
    ADDR as its next hop (nf_dup_ipv4(): untracked, DF set, TTL lowered at
    prerouting and input, sent by ip_local_out()), the original goes on
    (XT_CONTINUE). --oif: tee_tg_check() and tee_netdev_event() keep the
    index of the device so named, -1 (no constraint on the route) while
    there is none. tee_tg_check(): the all-zeros address is refused."""

    name = "TEE"
    OPTIONS = (XtOpt(("--gateway",), mandatory=True), XtOpt(("--oif",)))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.gateway, self.oif = 0, ""

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--gateway":
            self.gateway = parse_host(self.family, value)
        else:
            self.oif = value[:IFNAMSIZ - 1]  # xtopt_parse_string() into char oif[IFNAMSIZ]

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if self.gateway == 0:
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        return f" --gateway {self.family.address_text(self.gateway)}" + (f" --oif {self.oif}" if self.oif else "")

    def listing(self) -> str:
        return f"TEE gw:{self.family.address_text(self.gateway)}" + (f" oif={self.oif}" if self.oif else "")

    def stmts(self, rule) -> list[Stmt]:
        gateway, oif = self.gateway, self.oif
        text = f"dup to {self.family.address_text(gateway)}" + (f" device {oif}" if oif else "")
        nf_dup = nf_dup_ipv6 if self.family.nft_family == "ip6" else nf_dup_ipv4

        def build(ctx):
            net = ctx.net

            def tee_tg(pkt):
                device = oif if oif and net.dev_by_name(oif) is not None else None  # priv->oif, -1 without one
                nf_dup(net, pkt.skb, pkt.state.hook, gateway, device)
                return None
            return tee_tg
        return [XtCompat("target", "TEE", text, build)]


TEE_TARGETS = {"TEE": TeeTarget}
