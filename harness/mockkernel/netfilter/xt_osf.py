"""-m osf (iptables 1.8.9 extensions/libxt_osf.c; net/netfilter/xt_osf.c):
passive OS fingerprinting of a TCP SYN by nfnetlink_osf (nfnetlink_osf.py).
Sent by iptables-nft as an xt match (nft_compat); nft 1.0.6 lists it as `xt
match osf` (libxt_osf has no xlate()). IPv4 only (libxt_osf registers for
NFPROTO_IPV4: ip6tables does not know it).

[!] --genre NAME (mandatory, kept to MAXGENRELEN - 1 characters as
xtopt_parse_string() cuts it), --ttl 0|1|2, --log 0|1|2. The kernel's
xt_osf_match registers for TCP (`-p tcp`, not inverted: xt_check_match()) at
PRE_ROUTING, LOCAL_IN and FORWARD; elsewhere it answers EINVAL. Left out: the
kernel log lines --log asks for (nf_log_packet()).
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nfnetlink_osf import nf_osf_match
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import XtMatch, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP

MAXGENRELEN = 32  # include/uapi/linux/netfilter/nfnetlink_osf.h
OSF_HOOKS = ("PREROUTING", "INPUT", "FORWARD")


class OsfMatch(XtMatch):
    """xt_osf_match_packet(): nf_osf_match() of the packet."""

    name = "osf"
    OPTIONS = (XtOpt(("--genre",), invert=True, mandatory=True), XtOpt(("--ttl",)), XtOpt(("--log",)))

    def __init__(self) -> None:
        super().__init__()
        self.genre, self.invert = "", False
        self.ttl = self.log = None

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--genre":
            self.genre, self.invert = value[:MAXGENRELEN - 1], invert
        elif option == "--ttl":
            self.ttl = self.uint(option, value, 0, 2)
        else:
            self.log = self.uint(option, value, 0, 2)

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if not rule.proto or rule.proto[0] != IPPROTO_TCP or rule.proto[1] or builtin and chain not in OSF_HOOKS:
            raise kernel_refusal(chain)

    def save(self) -> str:
        out = f"-m osf {'! ' if self.invert else ''}--genre {self.genre}"
        if self.ttl is not None:
            out += f" --ttl {self.ttl}"
        if self.log is not None:
            out += f" --log {self.log}"
        return out

    def listing(self) -> str:
        return f"OS fingerprint match {'! ' if self.invert else ''}{self.genre}"

    def stmts(self, rule) -> list[Stmt]:
        genre, log = self.genre, self.log is not None
        return [XtCompat("match", "osf", None, lambda ctx: lambda pkt: nf_osf_match(pkt, genre, log))]


OSF_MATCHES = {"osf": OsfMatch}
OSF_FAMILY_ONLY = {"osf": "ip"}
