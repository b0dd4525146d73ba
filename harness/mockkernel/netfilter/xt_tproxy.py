"""-j TPROXY, as iptables-nft sends it (nft_compat): libxt_TPROXY.c revision 1;
net/netfilter/xt_TPROXY.c tproxy_tg4_v1()/tproxy_tg6_v1().

tproxy_tg4(): the transport header's ports (skb_header_pointer() of a UDP
header's 8 bytes: none, NF_DROP), then the socket established for the
packet, else the listener on --on-ip:--on-port (the address of the receiving
device, else the packet's destination, for --on-ip 0; the packet's port for
--on-port 0); only a transparent one (IP_TRANSPARENT,
nf_tproxy_sk_is_transparent()) takes the packet: its mark set
((mark & ~mask) ^ value) and NF_ACCEPT. Otherwise NF_DROP, unlike nft's
`tproxy`, which breaks the rule. The mock's sockets never set
IP_TRANSPARENT (nft_tproxy.py), so every packet that reaches it is dropped,
as on a kernel where no proxy opened a transparent socket.
tproxy_tg4_check(): -p tcp or -p udp, not inverted; mangle table,
PREROUTING (xt_check_target()).

Left out: nf_defrag_ipv4_enable(), which the check calls (the mock's
fragments are reassembled only where conntrack runs).
"""
from __future__ import annotations

import socket

from harness.mockkernel.netfilter.core import NF_DROP
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, usage_error
from harness.mockkernel.netfilter.xt_targets import XtTarget
from harness.mockkernel.netfilter.xt_tee import parse_host
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP, IPPROTO_UDP
from harness.mockkernel.wire.udp import UDP_HLEN


def parse_port(text: str) -> int:
    """xtopt_parse_port(): xtables_getportbyname(), getaddrinfo() of the
    service (a decimal number up to 65535, or a name in /etc/services)."""
    try:
        infos = socket.getaddrinfo(None, text)
    except (socket.gaierror, UnicodeError, ValueError):
        infos = []
    port = next((info[4][1] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)), None)
    if port is None:
        raise usage_error(f'Port "{text}" does not resolve to anything.\n')
    return port


class TproxyTarget(XtTarget):
    """--on-port PORT [--on-ip ADDR] [--tproxy-mark VALUE[/MASK]]."""

    name = "TPROXY"
    OPTIONS = (XtOpt(("--on-port",), mandatory=True), XtOpt(("--on-ip",)), XtOpt(("--tproxy-mark",)))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.port = self.addr = self.mark = self.mask = 0

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--on-port":
            self.port = parse_port(value)
        elif option == "--on-ip":
            self.addr = parse_host(self.family, value)
        else:
            self.mark, self.mask = self.markmask(option, value)

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        proto = rule.proto
        if table != "mangle" or builtin and chain != "PREROUTING" or \
                not proto or proto[0] not in (IPPROTO_TCP, IPPROTO_UDP) or proto[1]:
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        """tproxy_tg_save4(): every field, given or not."""
        return (f" --on-port {self.port} --on-ip {self.family.address_text(self.addr)} "
                f"--tproxy-mark 0x{self.mark:x}/0x{self.mask:x}")

    def listing(self) -> str:
        return f"TPROXY redirect {self.family.address_text(self.addr)}:{self.port} mark 0x{self.mark:x}/0x{self.mask:x}"

    def stmts(self, rule) -> list[Stmt]:
        port = self.port

        def build(ctx):
            where = ctx.chain_id

            def tproxy_tg(pkt):
                skb = pkt.skb
                if pkt.thoff < 0 or pkt.thoff + UDP_HLEN > pkt.end:  # skb_header_pointer() of the ports: NF_DROP
                    return NF_DROP
                skb.net.tracer.hop(skb, pkt.state.stage, where, "TPROXY",
                                   f"no transparent socket for port {port or 'of the packet'}")
                return NF_DROP
            return tproxy_tg
        return [XtCompat("target", "TPROXY", None, build, terminal=True)]


TPROXY_TARGETS = {"TPROXY": TproxyTarget}
