"""iptables 1.8.9 targets (extensions/libxt_*.c, libipt_REJECT.c,
libip6t_REJECT.c) as iptables-nft keeps them: options parsed as the C
extension parses them, saved as iptables-save prints them, the `iptables -L`
column, and the statements iptables-nft puts in the kernel. Verdicts, LOG,
MARK, NAT, REJECT and NOTRACK keep the native nft statements they had; the
rest run as nft_compat targets (nft_compat.py) after their kernel modules
(net/netfilter/xt_*.c, named in each class), listed as nft 1.0.6 lists them.
"""
from __future__ import annotations

import re
import socket

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.core import NF_DROP, NF_QUEUE_NR
from harness.mockkernel.netfilter.nf_conntrack import IP_CT_NEW, IPS_TEMPLATE, UNTRACKED, NfConn, Tuple
from harness.mockkernel.netfilter.nf_nat_range import NatRange
from harness.mockkernel.netfilter.nf_synproxy import (NF_SYNPROXY_OPT_ECN, NF_SYNPROXY_OPT_MSS,
                                                      NF_SYNPROXY_OPT_SACK_PERM, NF_SYNPROXY_OPT_TIMESTAMP,
                                                      NF_SYNPROXY_OPT_WSCALE, NfSynproxyInfo, synproxy_eval)
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import (Log, MetaSet, Nat, Notrack, PrintCtx, Reject, Stmt,
                                                    Verdict, Xt)
from harness.mockkernel.netfilter.xt_matches import DscpMatch, c_strtoul, kernel_refusal, parse_tos, quote
from harness.mockkernel.netfilter.xt_options import (XtExtension, XtOpt, exclusive, not_modelled_error,
                                                     usage_error)
from harness.mockkernel.ipv4 import route
from harness.mockkernel.ipv6 import route as route6
from harness.mockkernel.wire import ipv4, ipv6, tcp
from harness.mockkernel.wire.ipv4 import Ipv4Packet
from harness.mockkernel.wire.ipv6 import Ipv6Packet
from harness.mockkernel.wire.checksum import csum_replace
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP
from harness.mockkernel.wire.tcp import CHECK, DOFF, TCP_HLEN, TCPOLEN_MSS, TCPOPT_MSS, TCPOPT_NOP, TcpSegment

LOG_LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")  # nft's names of 0..7
LOG_FLAG_BITS = (0x01, 0x02, 0x04, 0x08, 0x20)  # XT_LOG_TCPSEQ, TCPOPT, IPOPT, UID, MACDECODE (0x10: NFLOG)
LOG_LEVEL_NAMES = {"alert": 1, "crit": 2, "debug": 7, "emerg": 0, "error": 3, "info": 6, "notice": 5, "panic": 0,
                   "warning": 4}  # libxt_LOG.c log_names
MAX_TCP_HEADER = 15 * 4  # the largest data offset: no room for one more option
# the table and chains each target may be used in, checked as the rule is added
# (xt_check_target(): the registration's `.table`, e.g. ipt_REJECT.c and
# ip6t_REJECT.c's "filter", and its hooks at a builtin chain); what a user chain
# reached from a hook refuses is nft_compat.XT_HOOKS
TARGET_PLACES = {"DNAT": ("nat", {"PREROUTING", "OUTPUT"}), "REDIRECT": ("nat", {"PREROUTING", "OUTPUT"}),
                 "SNAT": ("nat", {"POSTROUTING", "INPUT"}), "MASQUERADE": ("nat", {"POSTROUTING"}),
                 "NOTRACK": ("raw", {"PREROUTING", "OUTPUT"}), "CT": ("raw", {"PREROUTING", "OUTPUT"}),
                 "REJECT": ("filter", {"INPUT", "FORWARD", "OUTPUT"}), "TCPMSS": (None, None),
                 "DSCP": ("mangle", None), "TOS": ("mangle", None), "TTL": ("mangle", None),
                 "HL": ("mangle", None), "CONNMARK": (None, None), "SYNPROXY": (None, {"INPUT", "FORWARD"})}


class XtTarget(XtExtension):
    """`-j NAME [options]`, or a jump (`-j CHAIN`, `-g CHAIN`)."""

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__()
        self.name, self.family, self.goto = name or self.name, family, goto

    @property
    def list_name(self) -> str:
        """The target column of `iptables -L`."""
        return self.name

    def save(self) -> str:
        return f"-g {self.name}" if self.goto else f"-j {self.name}" + self.save_options()

    def save_options(self) -> str:
        return ""

    def listing(self) -> str:
        return ""

    def stmts(self, rule) -> list[Stmt]:
        if self.name in ("ACCEPT", "DROP", "RETURN"):
            return [Verdict(self.name.lower())]
        return [Verdict("goto" if self.goto else "jump", self.name)]

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        """What the kernel's checkentry refuses (the table and hooks a target is for)."""
        if self.name not in TARGET_PLACES:
            return
        want_table, chains = TARGET_PLACES[self.name]
        if want_table is not None and want_table != table or builtin and chains is not None and chain not in chains:
            raise kernel_refusal(chain)

    @property
    def is_jump(self) -> bool:
        """To a chain: -g always (`-g ACCEPT` names a chain), -j unless a verdict."""
        return type(self) is XtTarget and (self.goto or self.name not in ("ACCEPT", "DROP", "RETURN"))


# ------------------------------------------------------------------ LOG, NFLOG, NFQUEUE

class LogTarget(XtTarget):
    """libxt_LOG.c; nft's `log` (nft_log.c)."""

    name = "LOG"
    OPTIONS = (XtOpt(("--log-level",)), XtOpt(("--log-prefix",)), XtOpt(("--log-tcp-sequence",), arg=False),
               XtOpt(("--log-tcp-options",), arg=False), XtOpt(("--log-ip-options",), arg=False),
               XtOpt(("--log-uid",), arg=False), XtOpt(("--log-macdecode",), arg=False))
    FLAGS = (("--log-tcp-sequence", "tcp sequence"), ("--log-tcp-options", "tcp options"),
             ("--log-ip-options", "ip options"), ("--log-uid", "skuid"), ("--log-macdecode", "ether"))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.level, self.prefix = 4, None

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--log-level":
            if value.isdigit() and int(value) < 8:
                self.level = int(value)
            elif value in LOG_LEVEL_NAMES:
                self.level = LOG_LEVEL_NAMES[value]
            else:
                raise usage_error(f'log level "{value}" unknown\n')
        elif option == "--log-prefix":
            self.prefix = value[:29]  # struct xt_log_info prefix[30]

    def save_options(self) -> str:
        out = f" --log-prefix {quote(self.prefix)}" if self.prefix is not None else ""
        out += f" --log-level {self.level}" if self.level != 4 else ""
        return out + "".join(f" {o}" for o, _ in self.FLAGS if o in self.given)

    def listing(self) -> str:
        flags = sum(bit for (option, _), bit in zip(self.FLAGS, LOG_FLAG_BITS) if option in self.given)
        prefix = f' prefix "{self.prefix}"' if self.prefix is not None else ""
        return f"LOG flags {flags} level {self.level}{prefix}"

    def stmts(self, rule) -> list[Stmt]:
        log = Log(self.prefix, LOG_LEVELS[self.level])
        text = log.text(PrintCtx())
        tcp = [f for o, f in self.FLAGS[:2] if o in self.given]
        flags = ([f"flags tcp {','.join(f.split()[1] for f in tcp)}"] if tcp else []) + \
            [f"flags {f}" for o, f in self.FLAGS[2:] if o in self.given]
        return [XtCompat("target", "LOG", " ".join([text] + flags), inner=log)]


class NflogTarget(XtTarget):
    """libxt_NFLOG.c; nft's `log group` (the journey records the LOG hop)."""

    name = "NFLOG"
    OPTIONS = (XtOpt(("--nflog-group",)), XtOpt(("--nflog-prefix",)), XtOpt(("--nflog-range",)),
               XtOpt(("--nflog-size",)), XtOpt(("--nflog-threshold",)))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.values: dict[str, object] = {}

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--nflog-prefix":
            self.values[option] = value
        elif option == "--nflog-range":
            self.uint(option, value, 0, 0xFFFFFFFF)  # accepted and dropped (nflog_parse())
        else:
            high = 0xFFFF if option != "--nflog-size" else 0xFFFFFFFF
            self.values[option] = self.uint(option, value, 0, high)

    def save_options(self) -> str:
        out = ""
        for option in ("--nflog-prefix", "--nflog-group", "--nflog-size", "--nflog-threshold"):
            if option in self.values and (option != "--nflog-group" or self.values[option]):
                value = self.values[option]
                out += f" {option} {quote(value) if option == '--nflog-prefix' else value}"
        return out

    def listing(self) -> str:
        parts = []
        if "--nflog-prefix" in self.values:
            parts.append(f'nflog-prefix {quote(self.values["--nflog-prefix"])}')
        if self.values.get("--nflog-group"):
            parts.append(f'nflog-group {self.values["--nflog-group"]}')
        if "--nflog-size" in self.values:
            parts.append(f'nflog-size {self.values["--nflog-size"]}')
        if "--nflog-threshold" in self.values:
            parts.append(f'nflog-threshold {self.values["--nflog-threshold"]}')
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        v = self.values
        text = "log"
        if "--nflog-prefix" in v:
            text += f' prefix "{v["--nflog-prefix"]}"'
        text += f' group {v.get("--nflog-group", 0)}'
        if "--nflog-size" in v:
            text += f' snaplen {v["--nflog-size"]}'
        if "--nflog-threshold" in v:
            text += f' queue-threshold {v["--nflog-threshold"]}'
        return [Xt(text, Log(v.get("--nflog-prefix")))]


class NfqueueTarget(XtTarget):
    """libxt_NFQUEUE.c revision 3; xt_NFQUEUE.c nfqueue_tg_v3(): the verdict
    NF_QUEUE_NR(queue), NF_VERDICT_FLAG_QUEUE_BYPASS with --queue-bypass;
    nf_hook_slow() hands it to nf_queue() (netfilter/core.py), which with no program
    on the queue (always, on the mock) frees the packet, or with bypass goes
    on with the hook's next entry. Over a balance the kernel picks the queue
    by CPU or nfqueue_hash(); the mock takes the first."""

    name = "NFQUEUE"
    OPTIONS = (XtOpt(("--queue-num",), excl=("--queue-balance",)),
               XtOpt(("--queue-balance",), excl=("--queue-num",)), XtOpt(("--queue-bypass",), arg=False),
               XtOpt(("--queue-cpu-fanout",), arg=False))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.low = self.high = 0

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--queue-num":
            self.low = self.high = self.uint(option, value, 0, 0xFFFF)
        elif option == "--queue-balance":
            self.low, self.high = self.uint_range(option, value, 0xFFFF)
            if self.low > self.high:
                raise usage_error(f"{self.low} should be less than {self.high}")

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        """nfqueue_tg_check(): queues_total, a __u16, is 0 for a balance over
        all 65536 queues, and refused."""
        if (self.high - self.low + 1) & 0xFFFF == 0:
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        out = f" --queue-balance {self.low}:{self.high}" if "--queue-balance" in self.given else \
            f" --queue-num {self.low}"
        return out + "".join(f" {o}" for o in ("--queue-bypass", "--queue-cpu-fanout") if o in self.given)

    def listing(self) -> str:
        out = f"NFQUEUE balance {self.low}:{self.high}" if "--queue-balance" in self.given else \
            f"NFQUEUE num {self.low}"
        return out + "".join(f" {o[2:].replace('queue-', '')}" for o in ("--queue-bypass", "--queue-cpu-fanout")
                             if o in self.given)

    def stmts(self, rule) -> list[Stmt]:
        num = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        flags = [f for o, f in (("--queue-bypass", "bypass"), ("--queue-cpu-fanout", "fanout"))
                 if o in self.given]
        text = f"queue num {num}" + (" " + ",".join(flags) if flags else "")
        verdict = NF_QUEUE_NR(self.low, "--queue-bypass" in self.given)
        return [XtCompat("target", "NFQUEUE", text, lambda ctx: lambda pkt: verdict, terminal=True)]


# ------------------------------------------------------------------ MARK, CONNMARK

def xmark(ext: XtTarget, option: str, value: str) -> tuple[int, int]:
    """The (value, mask) of `mark = (mark & ~mask) ^ value` each mark option
    stands for (libxt_MARK.c mark_tg_parse(), libxt_CONNMARK.c
    connmark_tg_parse()): --set-xmark VALUE[/MASK] as given, --set-mark the
    value or'ed into the mask, --and-mark, --or-mark, --xor-mark BITS."""
    if option in ("--set-xmark", "--set-mark"):
        mark, mask = ext.markmask(option, value)
        return mark, mask if option == "--set-xmark" or mask == 0xFFFFFFFF else mask | mark
    bits, _ = ext.markmask(option, value)
    return {"--and-mark": (0, ~bits & 0xFFFFFFFF), "--or-mark": (bits, bits), "--xor-mark": (bits, 0)}[option]


class MarkTarget(XtTarget):
    """libxt_MARK.c revision 2: every form is `--set-xmark value/mask`
    (mark = (mark & ~mask) ^ value)."""

    name = "MARK"
    FORMS = ("--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark")
    OPTIONS = exclusive(FORMS)
    REQUIRED = "MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required"

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.value = self.mask = None

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.value, self.mask = xmark(self, option, value)

    def check(self, rule) -> None:
        if self.value is None:
            raise usage_error(self.REQUIRED)

    def save_options(self) -> str:
        return f" --set-xmark 0x{self.value:x}/0x{self.mask:x}"

    def listing(self) -> str:
        return mark_listing("MARK", self.value, self.mask)

    def stmts(self, rule) -> list[Stmt]:
        value, mask = self.value, self.mask
        keep = ~mask & 0xFFFFFFFF
        return [XtCompat("target", "MARK", mark_xlate("meta mark set", "mark", value, mask),
                         inner=MetaSet("mark", value, keep=keep))]


def mark_xlate(head: str, current: str, value: int, mask: int) -> str:
    """mark_tg_xlate() / connmark_tg_xlate(): the operation the pair amounts to."""
    keep = ~mask & 0xFFFFFFFF
    if mask == 0xFFFFFFFF:
        return f"{head} 0x{value:x}"
    if value == 0:
        return f"{head} {current} and 0x{keep:x}"
    if value == mask:
        return f"{head} {current} or 0x{value:x}"
    if mask == 0:
        return f"{head} {current} xor 0x{value:x}"
    return f"{head} {current} and 0x{keep:x} xor 0x{value:x}"


def mark_listing(label: str, value: int, mask: int) -> str:
    """libxt_MARK's mark_tg_print()."""
    if value == 0:
        return f"{label} and 0x{~mask & 0xFFFFFFFF:x}"
    if value == mask:
        return f"{label} or 0x{value:x}"
    if mask == 0:
        return f"{label} xor 0x{value:x}"
    if mask == 0xFFFFFFFF:
        return f"{label} set 0x{value:x}"
    return f"{label} xset 0x{value:x}/0x{mask:x}"


class ConnmarkTarget(XtTarget):
    """libxt_CONNMARK.c revision 1; xt_connmark.c connmark_tg_shift():
    --set-xmark on ct->mark, --save-mark (ct mark from the packet's),
    --restore-mark (the packet's from the ct mark), each with its masks."""

    name = "CONNMARK"
    MODES = ("--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark", "--save-mark", "--restore-mark")
    OPTIONS = exclusive(MODES, no_arg=("--save-mark", "--restore-mark")) + \
        (XtOpt(("--mask",)), XtOpt(("--nfmask",)), XtOpt(("--ctmask",)))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.mode, self.value, self.mask = None, 0, 0xFFFFFFFF
        self.nfmask = self.ctmask = 0xFFFFFFFF

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option in ("--mask", "--nfmask", "--ctmask"):
            bits, _ = self.markmask(option, value)
            if option in ("--mask", "--nfmask"):
                self.nfmask = bits
            if option in ("--mask", "--ctmask"):
                self.ctmask = bits
            return
        if option in ("--save-mark", "--restore-mark"):
            self.mode = option
            return
        self.mode = "--set-xmark"
        self.value, self.mask = xmark(self, option, value)

    def check(self, rule) -> None:
        if self.mode is None:
            raise usage_error("CONNMARK target: No operation specified")

    def save_options(self) -> str:
        if self.mode == "--set-xmark":
            return f" --set-xmark 0x{self.value:x}/0x{self.mask:x}"
        return f" {self.mode} --nfmask 0x{self.nfmask:x} --ctmask 0x{self.ctmask:x}"

    def listing(self) -> str:
        if self.mode == "--set-xmark":
            return mark_listing("CONNMARK", self.value, self.mask)
        if self.nfmask == self.ctmask == 0xFFFFFFFF:
            return f"CONNMARK {'save' if self.mode == '--save-mark' else 'restore'}"
        if self.nfmask == self.ctmask:
            return f"CONNMARK {'save' if self.mode == '--save-mark' else 'restore'} mask 0x{self.nfmask:x}"
        if self.mode == "--save-mark":
            return f"CONNMARK save nfmask 0x{self.nfmask:x} ctmask ~0x{self.ctmask:x}"
        return f"CONNMARK restore ctmask 0x{self.ctmask:x} nfmask ~0x{self.nfmask:x}"

    def stmts(self, rule) -> list[Stmt]:
        mode, value, mask, nfmask, ctmask = self.mode, self.value, self.mask, self.nfmask, self.ctmask
        if mode == "--set-xmark":
            text = mark_xlate("ct mark set", "ct mark", value, mask)
            if mask not in (0xFFFFFFFF, 0, value) and value:
                text = f"ct mark set ct mark xor 0x{value:x} and 0x{~mask & 0xFFFFFFFF:x}"
        elif nfmask != ctmask:  # connmark_tg_xlate() translates one mask only
            text = None
        elif mode == "--save-mark":
            text = "ct mark set mark" + (f" and 0x{nfmask:x}" if nfmask != 0xFFFFFFFF else "")
        else:
            text = "meta mark set ct mark" + (f" and 0x{ctmask:x}" if ctmask != 0xFFFFFFFF else "")

        def build(ctx):
            def connmark_tg(pkt):
                skb = pkt.skb
                ct = skb.nfct
                if ct is None or ct is UNTRACKED:
                    return None
                if mode == "--set-xmark":
                    ct.mark = (ct.mark & ~mask & 0xFFFFFFFF) ^ value
                elif mode == "--save-mark":
                    ct.mark = (ct.mark & ~ctmask & 0xFFFFFFFF) ^ (skb.mark & nfmask)
                else:
                    skb.mark = (skb.mark & ~nfmask & 0xFFFFFFFF) ^ (ct.mark & ctmask)
                return None
            return connmark_tg
        return [XtCompat("target", "CONNMARK", text, build, needs_conntrack=True, may_change_packet=True)]


# ------------------------------------------------------------------ TCPMSS

class TcpmssTarget(XtTarget):
    """libxt_TCPMSS.c; xt_TCPMSS.c tcpmss_mangle_packet(): on a SYN, an MSS
    option above the new value is lowered to it (the path MTU minus the
    headers with --clamp-mss-to-pmtu), the TCP checksum patched."""

    name = "TCPMSS"
    OPTIONS = (XtOpt(("--set-mss",)), XtOpt(("--clamp-mss-to-pmtu",), arg=False))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.mss = None

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--set-mss":
            self.mss = self.uint(option, value, 0, 0xFFFF - 20)

    def check(self, rule) -> None:
        if not self.given:
            raise usage_error("TCPMSS target: At least one parameter is required")

    @property
    def clamp(self) -> bool:
        return "--clamp-mss-to-pmtu" in self.given

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        """tcpmss_tg4_check(): TCP only; clamping only where a route is known
        (FORWARD, OUTPUT, POSTROUTING). Under nft_compat no SYN match is asked for."""
        if not rule.proto or rule.proto[0] != 6 or rule.proto[1]:
            raise kernel_refusal(chain)
        if self.clamp and builtin and chain not in ("FORWARD", "OUTPUT", "POSTROUTING"):
            raise kernel_refusal(chain)
        super().rule_check(rule, table, chain, builtin)

    def save_options(self) -> str:
        return " --clamp-mss-to-pmtu" if self.clamp else f" --set-mss {self.mss}"

    def listing(self) -> str:
        return "TCPMSS clamp to PMTU" if self.clamp else f"TCPMSS set {self.mss}"

    def stmts(self, rule) -> list[Stmt]:
        clamp, fixed, v4 = self.clamp, self.mss, rule.family.nft_family == "ip"
        text = "tcp option maxseg size set " + ("rt mtu" if clamp else str(fixed))
        header = 40 if v4 else 60  # minlen: the IP and TCP headers

        def build(ctx):
            def tcpmss_tg(pkt):
                if pkt.tprot != IPPROTO_TCP or pkt.fragoff:
                    return None
                if clamp:
                    mtu = min(_dst_mtu(pkt.skb.dst, v4), _reverse_mtu(ctx.net, pkt, v4))
                    if mtu <= header:  # "unknown or invalid path-MTU": the packet is dropped
                        return NF_DROP
                    return _mangle_mss(pkt, mtu - header, v4)
                return _mangle_mss(pkt, fixed, v4)
            return tcpmss_tg
        return [XtCompat("target", "TCPMSS", text, build, may_change_packet=True)]


def _dst_mtu(dst, v4: bool) -> int:
    """dst_mtu(): the route's mtu metric, else its device's."""
    if dst is None:
        return 0xFFFFFFFF
    return dst.dst_mtu() if v4 else dst.mtu or dst.dev.mtu


def _reverse_mtu(net, pkt, v4: bool) -> int:
    """tcpmss_reverse_mtu(): the MTU of the route back to the sender (~0 without one)."""
    if v4:
        found = route.fib_lookup(net, ipv4.SADDR_FIELD.unpack_from(pkt.buf, pkt.nh)[0])
        if found.__class__ is int:
            return 0xFFFFFFFF
        dev = net.devices.get(found.route.oif)
        return found.route.mtu or (dev.mtu if dev is not None else 0xFFFFFFFF)
    found = route6.fib6_lookup(net, Ipv6Packet(pkt.buf, pkt.nh).saddr)
    if found.__class__ is int:
        return 0xFFFFFFFF
    dev = net.devices.get(found.ifindex)
    return found.mtu or (dev.mtu if dev is not None else 0xFFFFFFFF)


def _mangle_mss(pkt, new: int, v4: bool):
    """tcpmss_mangle_packet() on any TCP segment (the rule's match picks the
    SYNs): an MSS option above `new` is lowered to it, never raised; a header
    without one and no data after it gets one (at most 536, IPv6 1220: RFC 879's
    default), the checksum patched as the kernel patches it and the IP
    length grown. A header longer than the segment drops the packet."""
    buf, th, skb = pkt.buf, pkt.thoff, pkt.skb
    length = pkt.end - th
    doff = TcpSegment(buf, th).header_len if length >= TCP_HLEN else 0
    if doff < TCP_HLEN or length < doff:
        return NF_DROP
    at = th + TCP_HLEN
    while at <= th + doff - TCPOLEN_MSS:  # optlen(): NOP, EOL and a zero length step one byte
        kind, size = buf[at], tcp.option_field(buf, at, 1, 1)
        if kind == TCPOPT_MSS and size == TCPOLEN_MSS:
            if tcp.option_field(buf, at, 2, 2) > new:
                tcp.replace_u16(buf, th, at + 2, new)
            return None
        at += 1 if kind <= TCPOPT_NOP or size == 0 else size
    if length > doff or doff >= MAX_TCP_HEADER:
        return None
    new = min(new, 536 if v4 else 1220)
    option = (TCPOPT_MSS << 24) | (TCPOLEN_MSS << 16) | new
    buf[th + TCP_HLEN:th + TCP_HLEN] = option.to_bytes(TCPOLEN_MSS, "big")  # skb_put() and the memmove()
    skb.tail += TCPOLEN_MSS
    skb.end = max(skb.end, skb.tail)  # pskb_expand_head() when the tailroom was short
    pkt.end += TCPOLEN_MSS
    _csum_update(buf, th, length, length + TCPOLEN_MSS, 2)  # the pseudo-header's length
    _csum_update(buf, th, 0, option, 4)
    tcp.replace_u16(buf, th, th + DOFF, tcp.option_field(buf, th, DOFF, 2) + (TCPOLEN_MSS // 4 << 12))
    header = Ipv4Packet(buf, pkt.nh) if v4 else Ipv6Packet(buf, pkt.nh)
    if v4:
        header.tot_len += TCPOLEN_MSS
        header.fill_checksum()
    else:
        header.payload_len += TCPOLEN_MSS
    return None


def _csum_update(buf: bytearray, th: int, old: int, new: int, size: int) -> None:
    """inet_proto_csum_replace2/4() for a value not written in the segment."""
    check = tcp.option_field(buf, th, CHECK, 2)
    buf[th + CHECK:th + CHECK + 2] = csum_replace(check, old, new, size).to_bytes(2, "big")


# ------------------------------------------------------------------ TOS, DSCP, TTL, HL

class DscpTarget(XtTarget):
    """libxt_DSCP.c; xt_DSCP.c dscp_tg(): the DS field's DSCP bits, ECN kept."""

    name = "DSCP"
    OPTIONS = (XtOpt(("--set-dscp",), excl=("--set-dscp-class",)),
               XtOpt(("--set-dscp-class",), excl=("--set-dscp",)))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.value = None

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--set-dscp-class":
            if value.upper() not in DscpMatch.CLASSES:
                raise usage_error(f"Invalid DSCP value `{value}'\n")
            self.value = DscpMatch.CLASSES[value.upper()]
        else:
            self.value = self.uint(option, value, 0, 63)

    def check(self, rule) -> None:
        if self.value is None:
            raise usage_error("DSCP target: Parameter --set-dscp is required")

    def save_options(self) -> str:
        return f" --set-dscp 0x{self.value:02x}"

    def listing(self) -> str:
        return f"DSCP set 0x{self.value:02x}"

    def stmts(self, rule) -> list[Stmt]:
        proto = "ip" if rule.family.nft_family == "ip" else "ip6"
        value = self.value
        return [XtCompat("target", "DSCP", f"{proto} dscp set 0x{value:02x}",
                         lambda ctx: _set_ds(proto, lambda ds: (ds & 0x03) | value << 2), may_change_packet=True)]


def _set_ds(proto: str, change):
    """Rewrite the DS field (ipv4_change_dsfield(), the header checksum with
    it; ipv6_change_dsfield())."""
    def set_ds(pkt):
        if pkt.thoff < 0:
            return None
        header = Ipv4Packet(pkt.buf, pkt.nh) if proto == "ip" else Ipv6Packet(pkt.buf, pkt.nh)
        old = header.tos if proto == "ip" else header.tclass
        new = change(old) & 0xFF
        if new != old and proto == "ip":
            header.tos = new
            header.fill_checksum()
        elif new != old:
            header.tclass = new
        return None
    return set_ds


class TosTarget(XtTarget):
    """libxt_TOS.c revision 1; xt_DSCP.c tos_tg(): tos = (tos & ~mask) ^ value.
    nft 1.0.6 shows tos_tg_xlate()'s text, which names `ip6 dscp` in both
    families (its translation's own mistake)."""

    name = "TOS"
    FORMS = ("--set-tos", "--and-tos", "--or-tos", "--xor-tos")
    OPTIONS = exclusive(FORMS)

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.value = self.mask = None

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--set-tos":
            self.value, self.mask = parse_tos(self, option, value, 0xFF)
            return
        bits = c_strtoul(value)
        if bits is None or bits > 0xFF:
            raise self.error(f'bad value for option "{option}", or out of range (0-255).\n')
        self.value, self.mask = {"--and-tos": (0, ~bits & 0xFF), "--or-tos": (bits, bits),
                                 "--xor-tos": (bits, 0)}[option]

    def check(self, rule) -> None:
        if self.value is None:
            raise usage_error("TOS: An action is required")

    def save_options(self) -> str:
        return f" --set-tos 0x{self.value:02x}/0x{self.mask:02x}"

    def listing(self) -> str:
        return f"TOS set 0x{self.value:02x}/0x{self.mask:02x}"

    def stmts(self, rule) -> list[Stmt]:
        value, mask = self.value, self.mask
        proto = "ip" if rule.family.nft_family == "ip" else "ip6"
        dscp, dmask = value >> 2, mask >> 2
        if mask == 0xFF or mask == 0x3F:
            text = f"ip6 dscp set 0x{dscp:02x}"
        elif value == 0:
            text = f"ip6 dscp set ip6 dscp and 0x{~dmask & 0x3F:02x}"
        elif value == mask:
            text = f"ip6 dscp set ip6 dscp or 0x{dscp:02x}"
        elif mask == 0:
            text = f"ip6 dscp set ip6 dscp xor 0x{dscp:02x}"
        else:
            text = f"ip6 dscp set ip6 dscp and 0x{~dmask & 0x3F:02x} xor 0x{dscp:02x}"
        return [XtCompat("target", "TOS", text, lambda ctx: _set_ds(proto, lambda ds: (ds & ~mask) ^ value),
                         may_change_packet=True)]


class TtlTarget(XtTarget):
    """libipt_TTL.c / libip6t_HL.c; xt_HL.c ttl_tg() / hl_tg6(): set,
    decrement (not below 0) or increment (not above 255); no translation in 1.0.6."""

    name = "TTL"
    FIELD = "ttl"

    @property
    def OPTIONS(self):  # noqa: N802 - the option table, by the family's name for the field
        return exclusive(tuple(f"--{self.FIELD}-{op}" for op in ("set", "dec", "inc")))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.op, self.value = None, 0

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.op = option.rsplit("-", 1)[1]
        self.value = self.uint(option, value, 0 if self.op == "set" else 1, 255)

    def check(self, rule) -> None:
        if self.op is None:
            raise usage_error(f"{self.name}: You must specify an action")

    def save_options(self) -> str:
        return f" --{self.FIELD}-{self.op} {self.value}"

    def listing(self) -> str:
        word = {"set": "set to", "dec": "decrement by", "inc": "increment by"}[self.op]
        return f"{self.name} {word} {self.value}"

    def stmts(self, rule) -> list[Stmt]:
        op, value, v4 = self.op, self.value, self.FIELD == "ttl"

        def build(ctx):
            def ttl_tg(pkt):
                buf, nh = pkt.buf, pkt.nh
                offset = ipv4.TTL if v4 else ipv6.HOP_LIMIT
                old = buf[nh + offset]
                new = value if op == "set" else max(old - value, 0) if op == "dec" else min(old + value, 255)
                if new != old:
                    buf[nh + offset] = new
                    if v4:
                        ipv4.fill_checksum(buf, nh)
                return None
            return ttl_tg
        return [XtCompat("target", self.name, None, build, may_change_packet=True)]


class HlTarget(TtlTarget):
    name = "HL"
    FIELD = "hl"


# ------------------------------------------------------------------ NAT

class NatTarget(XtTarget):
    """libxt_NAT.c (DNAT, SNAT), libxt_MASQUERADE.c, libxt_REDIRECT.c; nft's
    nat statements (nft_nat.c, nft_masq.c, nft_redir.c) in iptables-nft."""

    FLAGS = (("--random", "random"), ("--random-fully", "fully-random"), ("--persistent", "persistent"))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.to, self.addr, self.ports = None, None, None
        option = {"DNAT": "--to-destination", "SNAT": "--to-source"}.get(name, "--to-ports")
        flags = ("--random", "--random-fully", "--persistent") if name in ("DNAT", "SNAT") else \
            ("--random", "--random-fully") if name == "MASQUERADE" else ("--random",)
        self.OPTIONS = (XtOpt((option,), mandatory=name in ("DNAT", "SNAT")),) + \
            tuple(XtOpt((f,), arg=False) for f in flags)

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if value is None:
            return
        if option == "--to-ports":
            self.ports = self._port_range(value, rule)
            return
        self.addr, self.ports, self.to = self._range(value, rule)

    def _range(self, text: str, rule) -> tuple:
        """parse_to(): `ADDR[-ADDR][:PORT[-PORT][/OFFSET]]`; an IPv6 address
        before a port in brackets, one without them all address."""
        family = rule.family
        if "[" in text:
            start = text[text.index("[") + 1:]
            end = start.find("]")
            if end < 0 or family.nft_family == "ip":
                raise usage_error("Invalid address format")
            addrs, after = start[:end], start[end + 1:]
            colon = after.find(":")
            ports = after[colon + 1:] if colon >= 0 else None
        else:
            colon = text.find(":")
            if colon >= 0 and ":" in text[colon + 1:]:
                colon = -1
            addrs, ports = (text[:colon], text[colon + 1:]) if colon >= 0 else (text, None)
        port_range, port_text = None, None
        if ports is not None:
            need_ports_protocol(rule)
            port_range, port_text = self._nat_ports(ports, rule)
        low, _, high = addrs.partition("-")
        try:
            addr = (int(family.address(low)), int(family.address(high or low))) if low else None
        except ValueError:
            raise usage_error(f"Bad IP address \"{addrs}\"") from None
        shown = "" if addr is None else family.address_text(addr[0]) + \
            ("" if addr[0] == addr[1] else "-" + family.address_text(addr[1]))
        if port_text is not None:
            shown = (f"[{shown}]" if family.nft_family == "ip6" and shown else shown) + ":" + port_text
        return addr, port_range, shown

    @staticmethod
    def _nat_ports(text: str, rule) -> tuple:
        """The port part of parse_to(): parse_ports()'s range, and its text as
        DNAT's save prints it (`A`, `A-B`, `A-B/BASE`)."""
        low, high, base = nat_ports(text)
        shown = str(low) if low == high else f"{low}-{high}"
        return (low, high, base), shown + ("" if base is None else f"/{base}")

    def _port_range(self, text: str, rule) -> tuple:
        """parse_ports() of MASQUERADE and REDIRECT (--to-ports)."""
        need_ports_protocol(rule)
        return nat_ports(text)

    def check(self, rule) -> None:
        """DNAT_fcheck() of the revision-0 targets (REDIRECT, MASQUERADE): no base port."""
        if self.name in ("REDIRECT", "MASQUERADE") and self.ports and self.ports[2] is not None:
            raise usage_error("Shifted portmap ranges not supported with this kernel")

    def save_options(self) -> str:
        out = ""
        if self.name in ("DNAT", "SNAT"):
            out += f" --to-{'destination' if self.name == 'DNAT' else 'source'} {self.to}"
        elif self.ports:
            out += f" --to-ports {_port_text(self.ports)}"
        return out + "".join(f" {o}" for o, _ in self.FLAGS if o in self.given)

    def listing(self) -> str:
        flags = [o[2:] for o, _ in self.FLAGS if o in self.given]
        if self.name in ("DNAT", "SNAT"):
            return " ".join([f"to:{self.to}"] + flags)
        label = "masq ports:" if self.name == "MASQUERADE" else "redir ports"
        ports = [f"{label} {_port_text(self.ports)}"] if self.ports else []
        return " ".join(ports + flags)

    def stmts(self, rule) -> list[Stmt]:
        kind = {"MASQUERADE": "masquerade", "REDIRECT": "redirect"}.get(self.name, self.name.lower())
        flags = tuple(f for o, f in self.FLAGS if o in self.given)
        nat = Nat(kind, None, self.addr, self.ports[:2] if self.ports else None, flags)
        if self.ports and self.ports[2] is not None:
            return [self._shifted(nat, self.ports[2])]
        if rule.family.nft_family == "ip6":
            nat.addr_type = types.ipv6_addr
            return [XtCompat("target", self.name, _nat6_xlat(nat), inner=nat)]
        return [XtCompat("target", self.name, nat.text(PrintCtx()), inner=nat)]


    def _shifted(self, nat: Nat, base: int) -> XtCompat:
        """DNAT/SNAT revision 2 with a base port (nf_nat_range2.base_proto):
        xt_nat's nf_nat_setup_info() with NF_NAT_RANGE_PROTO_OFFSET, which nft
        has no statement for (`xt target DNAT` in its listing)."""
        rng = nat.nat_range()
        rng = NatRange(rng.min_addr, rng.max_addr, rng.min_port, rng.max_port, rng.flags | {"proto-offset"}, base)
        apply = nat._binder()
        return XtCompat("target", self.name, None, lambda ctx: lambda pkt: apply(pkt, rng), terminal=True,
                        needs_conntrack=True, may_change_packet=True)


def nat_ports(text: str) -> tuple[int, int, int | None]:
    """libxt_NAT.c parse_ports(): `PORT` (a number or any protocol's service
    name), `A-B` (numbers only), `A-B/BASE` (a number from 1, or a service);
    each refusal with its message. Returns (low, high, base or None)."""
    port, end = _strtoui(text, 0)
    if port is None:
        port, end = _service(text), ""
    if end[:1] == ":":
        raise usage_error("Invalid port:port syntax - use dash")
    if end and end[0] != "-":
        raise usage_error(f"Garbage after port value: `{end}'")
    if not end:
        return port, port, None
    arg = end[1:]
    high, end = _strtoui(arg, 0)
    if high is None:
        raise usage_error(f"Port `{arg}' not valid")
    if high < port:
        raise usage_error(f"Port range `{arg}' funky")
    if not end:
        return port, high, None
    if end[0] != "/":
        raise usage_error(f"Garbage after port range: `{end}'")
    arg = end[1:]
    base, _ = _strtoui(arg, 1)
    return port, high, base if base is not None else _service(arg)


def _strtoui(text: str, low: int) -> tuple[int | None, str]:
    """xtables_strtoui(s, &end, .., low, 65535): the number the text starts
    with (base 0) and what follows it; None when there is none or it is out of range."""
    match = re.match(r"\s*(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if match is None:
        return None, text
    digits = match.group(1)
    number = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 8) if digits[0] == "0" else int(digits)
    return (number if low <= number <= 65535 else None), text[match.end():]


def _service(name: str) -> int:
    """xtables_service_to_port(name, NULL): any protocol's service of that name."""
    try:
        return socket.getservbyname(name)
    except OSError:
        raise usage_error(f"Port `{name}' not valid") from None


def _nat6_xlat(nat: Nat) -> str:
    """libxt_NAT.c's translation of an IPv6 range: one pair of brackets around
    the addresses when a port follows (`dnat to [a-b]:80`)."""
    text = nat.kind
    if nat.addr:
        low, high = (types.ipv6_addr.format(a) for a in nat.addr)
        addrs = low if low == high else f"{low}-{high}"
        text += f" to [{addrs}]" if nat.ports else f" to {addrs}"
    if nat.ports:
        low_port, high_port = nat.ports
        text += (f":{low_port}" if low_port == high_port else f":{low_port}-{high_port}") if nat.addr else \
            f" to :{low_port}" if low_port == high_port else f" to :{low_port}-{high_port}"
    flags = [f for f in ("random", "fully-random", "persistent") if f in nat.flags]
    return " ".join([text] + ([",".join(flags)] if flags else []))


def _port_text(ports: tuple) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def need_ports_protocol(rule) -> None:
    if not rule.proto or rule.proto[0] not in (6, 17, 132, 33):
        raise usage_error("Need TCP, UDP, SCTP or DCCP with port specification")


# ------------------------------------------------------------------ REJECT, NOTRACK, CT

class RejectTarget(XtTarget):
    """libipt_REJECT.c / libip6t_REJECT.c; nft's reject (nft_reject_ipv4.c,
    nft_reject_ipv6.c). A TCP reset needs `-p tcp`: the kernel refuses it otherwise."""

    name = "REJECT"
    OPTIONS = (XtOpt(("--reject-with",)),)

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.kind = family.reject_default

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        kind = rule.family.reject_aliases.get(value, value)
        if kind not in rule.family.reject_codes and kind != "tcp-reset":
            raise usage_error(f"unknown reject type \"{value}\"")
        self.kind = kind

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        super().rule_check(rule, table, chain, builtin)
        if self.kind == "tcp-reset" and (not rule.proto or rule.proto[0] != 6 or rule.proto[1]):
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        return f" --reject-with {self.kind}"

    def listing(self) -> str:
        return f"reject-with {self.kind}"

    def stmts(self, rule) -> list[Stmt]:
        family = rule.family
        if self.kind == "tcp-reset":
            return [XtCompat("target", "REJECT", "reject with tcp reset", inner=Reject("tcp reset"))]
        code = family.reject_codes[self.kind]
        reject = Reject(family.reject_kind, code)
        text = "reject" if code == family.quiet_reject else \
            f"reject with {family.reject_kind} type {reject.CODE_TYPES[family.reject_kind].format(code)}"
        return [XtCompat("target", "REJECT", text, inner=reject)]


class SynproxyTarget(XtTarget):
    """libxt_SYNPROXY.c; xt_SYNPROXY.c synproxy_tg4()/synproxy_tg6() (nf_synproxy.py):
    a SYN without ACK, FIN or RST is answered with the proxy's SYN-ACK, an ACK
    without SYN, FIN or RST checked as a cookie's; anything else goes on.
    synproxy_tg4_check(): `-p tcp` (not inverted), INPUT and FORWARD only.
    struct xt_synproxy_info keeps the window scale in 8 bits and the MSS in 16."""

    name = "SYNPROXY"
    OPTIONS = (XtOpt(("--sack-perm",), arg=False), XtOpt(("--timestamp",), arg=False), XtOpt(("--wscale",)),
               XtOpt(("--mss",)), XtOpt(("--ecn",), arg=False))
    FLAGS = (("--sack-perm", NF_SYNPROXY_OPT_SACK_PERM), ("--timestamp", NF_SYNPROXY_OPT_TIMESTAMP),
             ("--wscale", NF_SYNPROXY_OPT_WSCALE), ("--mss", NF_SYNPROXY_OPT_MSS), ("--ecn", NF_SYNPROXY_OPT_ECN))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.info = NfSynproxyInfo()

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        """SYNPROXY_parse(): each option sets its flag; the values are XTTYPE_UINT32."""
        info = self.info
        options = info.options | dict(self.FLAGS)[option]
        if option == "--wscale":
            self.info = NfSynproxyInfo(options, self.uint(option, value, 0, 0xFFFFFFFF) & 0xFF, info.mss)
        elif option == "--mss":
            self.info = NfSynproxyInfo(options, info.wscale, self.uint(option, value, 0, 0xFFFFFFFF) & 0xFFFF)
        else:
            self.info = NfSynproxyInfo(options, info.wscale, info.mss)

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        if not rule.proto or rule.proto[0] != IPPROTO_TCP or rule.proto[1]:
            raise kernel_refusal(chain)
        super().rule_check(rule, table, chain, builtin)

    def _words(self) -> list[tuple[str, str]]:
        """(option, value) of each flag set, in SYNPROXY_save()'s order."""
        info = self.info
        values = {"--wscale": f" {info.wscale}", "--mss": f" {info.mss}"}
        return [(option, values.get(option, "")) for option, bit in self.FLAGS if info.options & bit]

    def save_options(self) -> str:
        return "".join(f" {option}{value}" for option, value in self._words())

    def listing(self) -> str:
        """SYNPROXY_print(): each word with a space after it."""
        return "SYNPROXY " + "".join(f"{option[2:]}{value} " for option, value in self._words())

    def stmts(self, rule) -> list[Stmt]:
        text = " ".join(["synproxy"] + [f"{option[2:]}{value}" for option, value in self._words()])
        info = self.info

        def build(ctx):
            def synproxy_tg(pkt):
                skb = pkt.skb
                return synproxy_eval(skb.net, skb, pkt.thoff, info, xt=True)
            return synproxy_tg
        return [XtCompat("target", "SYNPROXY", text, build, needs_conntrack=True, uses_synproxy=True)]


class NotrackTarget(XtTarget):
    """libxt_NOTRACK (an alias of CT --notrack); nft's notrack. -L shows it as CT."""

    name = "NOTRACK"
    list_name = "CT"

    def listing(self) -> str:
        return "NOTRACK"

    def stmts(self, rule) -> list[Stmt]:
        return [XtCompat("target", "CT", "notrack", inner=Notrack())]  # NOTRACK is CT's alias in the kernel


CT_EVENTS = ("new", "related", "destroy", "reply", "assured", "protoinfo", "helper", "mark", "natseqinfo",
             "secmark")  # libxt_CT.c ct_event_tbl, in its order
EXP_EVENTS = ("new",)


class CtTarget(XtTarget):
    """libxt_CT.c revision 2; xt_CT.c xt_ct_target(): --notrack is nft's
    notrack; --zone N (both directions) and the event masks give the packet
    a conntrack template before conntrack sees it (its entry is made in that
    zone; the mock kernel has no event listeners, so the masks change nothing
    seen). Directional zones, a zone from the mark, helpers and timeout
    policies are not modelled."""

    name = "CT"
    OPTIONS = (XtOpt(("--notrack",), arg=False),) + tuple(XtOpt((o,)) for o in (
        "--helper", "--ctevents", "--expevents", "--zone", "--zone-orig", "--zone-reply", "--timeout"))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.zone, self.ct_events, self.exp_events = 0, (), ()

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--zone":
            if value.lower() == "mark":
                raise not_modelled_error("-j CT --zone mark")
            number = c_strtoul(value)
            if number is None or number > 0xFFFF:
                raise usage_error(f"Cannot parse {value} as a zone ID")
            self.zone = number
        elif option in ("--ctevents", "--expevents"):
            table = CT_EVENTS if option == "--ctevents" else EXP_EVENTS
            bad = next((e for e in value.split(",") if e not in table), None)
            if bad is not None:
                raise usage_error(f'Unknown event type "{bad}"')
            chosen = tuple(e for e in table if e in value.split(","))
            setattr(self, "ct_events" if option == "--ctevents" else "exp_events", chosen)
        elif option != "--notrack":
            raise not_modelled_error(f"-j CT {option}")

    def save_options(self) -> str:
        """ct_save_v1(): notrack, events, then the zone when not 0."""
        out = " --notrack" if "--notrack" in self.given else ""
        if self.ct_events:
            out += f" --ctevents {','.join(self.ct_events)}"
        if self.exp_events:
            out += f" --expevents {','.join(self.exp_events)}"
        return out + (f" --zone {self.zone}" if self.zone else "")

    def listing(self) -> str:
        parts = ["CT"] + (["notrack"] if "--notrack" in self.given else [])
        if self.ct_events:
            parts.append(f"ctevents {','.join(self.ct_events)}")
        if self.exp_events:
            parts.append(f"expevents {','.join(self.exp_events)}")
        return " ".join(parts + ([f"zone {self.zone}"] if self.zone else []))

    def stmts(self, rule) -> list[Stmt]:
        if "--notrack" in self.given:
            return [XtCompat("target", "CT", "notrack", inner=Notrack())]
        zone = self.zone

        def build(ctx):
            def xt_ct_target(pkt):
                skb = pkt.skb
                if skb.nfct is None:  # xt_ct_target(): a packet already tracked keeps its entry
                    template = NfConn(Tuple(0, 0, 0, 0, 0), Tuple(0, 0, 0, 0, 0), status=IPS_TEMPLATE)
                    template.zone = zone
                    skb.nfct, skb.ctinfo = template, IP_CT_NEW
                return None
            return xt_ct_target
        return [XtCompat("target", "CT", None, build, needs_conntrack=True)]


TARGETS = {"LOG": LogTarget, "NFLOG": NflogTarget, "NFQUEUE": NfqueueTarget, "MARK": MarkTarget,
           "CONNMARK": ConnmarkTarget, "TCPMSS": TcpmssTarget, "DSCP": DscpTarget, "TOS": TosTarget,
           "TTL": TtlTarget, "HL": HlTarget, "DNAT": NatTarget, "SNAT": NatTarget, "MASQUERADE": NatTarget,
           "REDIRECT": NatTarget, "REJECT": RejectTarget, "NOTRACK": NotrackTarget, "CT": CtTarget,
           "SYNPROXY": SynproxyTarget}
FAMILY_ONLY_TARGETS = {"TTL": "ip", "HL": "ip6"}
# targets iptables 1.8.9 ships that the mock does not model: named, not taken for a chain
KNOWN_UNMODELLED_TARGETS = {"CLUSTERIP", "DNPT", "SNPT", "LED"}
STANDARD = ("ACCEPT", "DROP", "RETURN")
