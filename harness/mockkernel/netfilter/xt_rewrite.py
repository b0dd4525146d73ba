"""iptables 1.8.9 targets that record or rewrite a packet and let it go on
(XT_CONTINUE), as iptables-nft sends them (nft_compat): TRACE (xt_TRACE.c),
ECN (ipt_ECN.c), IDLETIMER (xt_IDLETIMER.c), AUDIT (xt_AUDIT.c),
CLASSIFY (xt_CLASSIFY.c), CHECKSUM (xt_CHECKSUM.c), TCPOPTSTRIP
(xt_TCPOPTSTRIP.c), and NETMAP (libipt_NETMAP.c, libip6t_NETMAP.c; xt_NETMAP.c), which maps a
connection's address prefix as nf_nat does. Each parses and saves as its
libxt_*.c does, `nft list` shows its xlate() (`xt target NAME` without one),
and the kernel's checkentry limits it to its table and hooks.

Left out: the audit record AUDIT writes (the packet goes on, as in the
kernel), CHECKSUM's fill (the mock computes every checksum in full, nothing
is left CHECKSUM_PARTIAL).
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.core import NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import MetaSet, Nat, Stmt
from harness.mockkernel.netfilter.xt_matches import kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, c_strtoul, usage_error
from harness.mockkernel.netfilter.xt_targets import XtTarget
from harness.mockkernel.wire import ipv4, tcp
from harness.mockkernel.wire.ipv4 import Ipv4Packet
from harness.mockkernel.wire.tcp import TcpSegment

AUDIT_TYPES = ("accept", "drop", "reject")


class AuditTarget(XtTarget):
    """--type accept|drop|reject; audit_tg(): an audit record, then on."""

    name = "AUDIT"
    OPTIONS = (XtOpt(("--type",), mandatory=True),)

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.type = "accept"

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if value.lower() not in AUDIT_TYPES:
            raise usage_error(f'Bad action type value "{value}"')
        self.type = value.lower()

    def save_options(self) -> str:
        return f" --type {self.type}"

    def listing(self) -> str:
        return f"AUDIT {self.type}"

    def stmts(self, rule) -> list[Stmt]:  # audit_tg_xlate(): `log level audit`
        return [XtCompat("target", "AUDIT", "log level audit", lambda ctx: lambda pkt: None)]


class ClassifyTarget(XtTarget):
    """--set-class MAJOR:MINOR (hex); classify_tg(): skb->priority. mangle
    table, in OUTPUT, FORWARD and POSTROUTING."""

    name = "CLASSIFY"
    OPTIONS = (XtOpt(("--set-class",), mandatory=True),)

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.major = self.minor = 0

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        major, colon, minor = value.partition(":")
        numbers = [_hex(major), _hex(minor)] if colon else [None]
        if None in numbers:
            raise usage_error(f'Bad class value "{value}"')
        self.major, self.minor = numbers[0] & 0xFFFF, numbers[1] & 0xFFFF  # TC_H_MAKE(i << 16, j)

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if table != "mangle" or builtin and chain not in ("OUTPUT", "FORWARD", "POSTROUTING"):
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        return f" --set-class {self.major:04x}:{self.minor:04x}"

    def listing(self) -> str:
        return f"CLASSIFY set {self.major:x}:{self.minor:x}"

    def stmts(self, rule) -> list[Stmt]:
        priority = self.major << 16 | self.minor

        def build(ctx):
            def classify_tg(pkt):
                pkt.skb.priority = priority
                return None
            return classify_tg
        return [XtCompat("target", "CLASSIFY", f"meta priority set {self.major:x}:{self.minor:x}", build)]


def _hex(text: str) -> int | None:
    """sscanf("%x"): hex digits, an optional 0x."""
    digits = text[2:] if text[:2].lower() == "0x" else text
    try:
        return int(digits, 16) if digits else None
    except ValueError:
        return None


class ChecksumTarget(XtTarget):
    """--checksum-fill; checksum_tg(): fills a checksum left partial (none in
    the mock). mangle table only."""

    name = "CHECKSUM"
    OPTIONS = (XtOpt(("--checksum-fill",), arg=False, mandatory=True),)

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        pass

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if table != "mangle":
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        return " --checksum-fill"

    def listing(self) -> str:
        return "CHECKSUM fill"

    def stmts(self, rule) -> list[Stmt]:
        return [XtCompat("target", "CHECKSUM", None, lambda ctx: lambda pkt: None)]


TCP_OPTION_NAMES = {"wscale": 3, "mss": 2, "sack-permitted": 4, "sack": 5, "timestamp": 8, "md5": 19}


class TcpoptstripTarget(XtTarget):
    """--strip-options N|NAME,...; tcpoptstrip_mangle_packet(): each option
    listed becomes NOPs, the checksum patched per 16-bit word. TCP only
    (-p tcp), mangle table."""

    name = "TCPOPTSTRIP"
    OPTIONS = (XtOpt(("--strip-options",)),)

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.strip: frozenset[int] = frozenset()

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        kinds = set()
        for part in value.split(","):
            kind = TCP_OPTION_NAMES.get(part)
            if kind is None:
                kind = c_strtoul(part)
                if kind is None or kind > 255:
                    raise usage_error(f'Bad TCP option value "{part}"')
            if kind < 2:
                raise usage_error("Option value may not be 0 or 1")
            if kind in kinds:
                raise usage_error(f'Option "{part}" already specified')
            kinds.add(kind)
        self.strip = frozenset(kinds)

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if table != "mangle" or not rule.proto or rule.proto[0] != 6 or rule.proto[1]:
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        return f" --strip-options {','.join(map(str, sorted(self.strip)))}" if self.strip else ""

    def listing(self) -> str:
        names = {v: k for k, v in TCP_OPTION_NAMES.items()}
        return "TCPOPTSTRIP options " + ",".join(names.get(k, str(k)) for k in sorted(self.strip))

    def stmts(self, rule) -> list[Stmt]:
        strip = self.strip

        def build(ctx):
            def tcpoptstrip_tg(pkt):
                if pkt.fragoff or not strip or pkt.thoff + tcp.TCP_HLEN > pkt.end:
                    return None
                tcp.strip_options(pkt.buf, pkt.thoff, TcpSegment(pkt.buf, pkt.thoff).header_len, strip)
                return None
            return tcpoptstrip_tg
        return [XtCompat("target", "TCPOPTSTRIP", None, build, may_change_packet=True)]


class NetmapTarget(XtTarget):
    """--to ADDR[/MASK]; netmap_tg4(), netmap_tg6(): in PREROUTING and OUTPUT
    the destination's prefix becomes the given one (DNAT), in POSTROUTING and
    INPUT the source's (SNAT), the host part kept. nat table."""

    name = "NETMAP"
    OPTIONS = (XtOpt(("--to",), mandatory=True),)

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.addr = self.mask = 0

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        self.addr, self.mask, _ = rule.family.parse_address(value)

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if table != "nat":
            raise kernel_refusal(chain)

    def _text(self) -> str:
        family = self.family
        plen = family.prefix_length(self.mask)
        return f"{family.address_text(self.addr)}/{plen if plen is not None else family.address_text(self.mask)}"

    def save_options(self) -> str:
        return f" --to {self._text()}"

    def listing(self) -> str:
        return f"to:{self._text()}"

    def stmts(self, rule) -> list[Stmt]:
        span = (self.addr, self.addr | (self.family.all_ones ^ self.mask))
        dnat, snat = Nat("dnat", None, span, None, (), prefix=True), Nat("snat", None, span, None, (), prefix=True)
        if self.family.nft_family == "ip6":  # libip6t_NETMAP.c: the range's addresses are IPv6 ones
            dnat.addr_type = snat.addr_type = types.ipv6_addr

        def build(ctx):
            to_dst, to_src = dnat.compile(ctx), snat.compile(ctx)

            def netmap_tg(pkt):
                hook = pkt.state.hook
                return to_dst(pkt) if hook in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT) else to_src(pkt)
            return netmap_tg
        return [XtCompat("target", "NETMAP", None, build, terminal=True, needs_conntrack=True,
                         may_change_packet=True)]


class TraceTarget(XtTarget):
    """-j TRACE (raw table, PREROUTING and OUTPUT); trace_tg(): skb->nf_trace,
    the packet then traced as nft's `meta nftrace set 1` traces it."""

    name = "TRACE"

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if table != "raw" or builtin and chain not in ("PREROUTING", "OUTPUT"):
            raise kernel_refusal(chain)

    def listing(self) -> str:
        return ""

    def stmts(self, rule) -> list[Stmt]:
        return [XtCompat("target", "TRACE", "meta nftrace set 1", inner=MetaSet("nftrace", 1))]


class EcnTarget(XtTarget):
    """libipt_ECN.c; ipt_ECN.c ecn_tg(): sets the IP header's ECN bits
    (--ecn-ip-ect) and TCP's ECE and CWR (--ecn-tcp-ece/-cwr; --ecn-tcp-remove
    clears both), the checksums patched. mangle table; the TCP bits want -p tcp."""

    name = "ECN"
    OPTIONS = (XtOpt(("--ecn-tcp-remove",), arg=False), XtOpt(("--ecn-tcp-cwr",)), XtOpt(("--ecn-tcp-ece",)),
               XtOpt(("--ecn-ip-ect",)))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.ops: dict[str, int] = {}  # "ece", "cwr", "ip" -> the value set

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--ecn-tcp-remove":
            self.ops = {"ece": 0, "cwr": 0}
        else:
            key = option.rsplit("-", 1)[1]
            self.ops[{"ect": "ip"}.get(key, key)] = self.uint(option, value, 0, 3 if key == "ect" else 1)

    def check(self, rule) -> None:
        if not self.given:
            raise usage_error("ECN target: An operation is required")

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        tcp_ops = "ece" in self.ops or "cwr" in self.ops
        if table != "mangle" or tcp_ops and (not rule.proto or rule.proto[0] != 6 or rule.proto[1]):
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        if self.ops == {"ece": 0, "cwr": 0}:
            return " --ecn-tcp-remove"
        return "".join(f" --ecn-{name} {self.ops[key]}" for key, name in (("ece", "tcp-ece"), ("cwr", "tcp-cwr"),
                                                                           ("ip", "ip-ect")) if key in self.ops)

    def listing(self) -> str:
        if self.ops == {"ece": 0, "cwr": 0}:
            return "ECN TCP remove"
        return "ECN " + " ".join(f"{key.upper()}={value}" for key, value in self.ops.items())

    def stmts(self, rule) -> list[Stmt]:
        ops = dict(self.ops)

        def build(ctx):
            def ecn_tg(pkt):
                buf, nh = pkt.buf, pkt.nh
                if "ip" in ops:  # set_ect_ip()
                    header = Ipv4Packet(buf, nh)
                    if header.tos & 3 != ops["ip"]:
                        header.tos = header.tos & ~3 | ops["ip"]
                        ipv4.fill_checksum(buf, nh)
                if ("ece" in ops or "cwr" in ops) and pkt.tprot == 6 and pkt.thoff + tcp.TCP_HLEN <= pkt.end:
                    tcp.set_ecn_flags(buf, pkt.thoff, ops.get("ece"), ops.get("cwr"))  # set_ect_tcp()
                return None
            return ecn_tg
        return [XtCompat("target", "ECN", None, build, may_change_packet=True)]


class IdletimerTarget(XtTarget):
    """libxt_IDLETIMER.c revision 1; xt_IDLETIMER.c: each packet restarts the
    label's timer (its sysfs file tells user space when it runs out); the
    packet goes on. The mock kernel keeps no such timers: nothing seen changes."""

    name = "IDLETIMER"
    OPTIONS = (XtOpt(("--timeout",), mandatory=True), XtOpt(("--label",), mandatory=True),
               XtOpt(("--alarm",), arg=False))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.timeout, self.label = 0, ""

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--timeout":
            self.timeout = self.uint(option, value, 0, 0xFFFFFFFF)
        elif option == "--label":
            self.label = value[:27]

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if self.timeout == 0:  # idletimer_tg_checkentry()
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        return f" --timeout {self.timeout} --label {self.label}" + (" --alarm" if "--alarm" in self.given else "")

    def listing(self) -> str:
        return f"timeout:{self.timeout} label:{self.label}" + (" alarm" if "--alarm" in self.given else "")

    def stmts(self, rule) -> list[Stmt]:
        return [XtCompat("target", "IDLETIMER", None, lambda ctx: lambda pkt: None)]


REWRITE_TARGETS = {"ECN": EcnTarget, "IDLETIMER": IdletimerTarget, "TRACE": TraceTarget, "AUDIT": AuditTarget, "CLASSIFY": ClassifyTarget, "CHECKSUM": ChecksumTarget,
                   "TCPOPTSTRIP": TcpoptstripTarget, "NETMAP": NetmapTarget}
REWRITE_FAMILY_ONLY = {"ECN": "ip"}  # libipt_ECN.c
