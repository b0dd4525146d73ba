"""iptables 1.8.9 matches on what a packet carries or where it is, sent by
iptables-nft as xt matches (nft_compat): iprange (libxt_iprange.c revision 1;
xt_iprange.c), pkttype (xt_pkttype.c), cpu (xt_cpu.c), quota (xt_quota.c),
ecn (xt_ecn.c), realm (libipt_realm.c; xt_realm.c), tcpmss (xt_tcpmss.c), mac
(xt_mac.c) and helper (xt_helper.c). Each parses and saves as its libxt_*.c
does, `nft list` shows its xlate(), and it matches as its kernel module does.

Left out: realm names (/etc/iproute2/rt_realms: a name is refused as not
modelled), the mock kernel has one CPU (0) and no route realms (tclassid 0).
"""
from __future__ import annotations

import calendar
import re
import time
import weakref

from harness.mockkernel.core.skbuff import PACKET_BROADCAST, PACKET_HOST, PACKET_MULTICAST, PACKET_OTHERHOST
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.nft_socket import bound_address, nf_sk_lookup_slow_v4
from harness.mockkernel.netfilter.xt_matches import XtMatch, inv, kernel_refusal, parse_protocol, quote
from harness.mockkernel.netfilter.xt_options import VERSION, XtError, XtOpt, c_strtoul, not_modelled_error, usage_error
from harness.mockkernel.wire import ethernet, tcp
from harness.mockkernel.wire.ipv4 import Ipv4Packet
from harness.mockkernel.wire.ipv6 import Ipv6Packet
from harness.mockkernel.wire.tcp import TcpSegment

PACKET_LOOPBACK = 5


class IprangeMatch(XtMatch):
    """--src-range / --dst-range [!] FROM[-TO]: iprange_mt4()/iprange_mt6()."""

    name = "iprange"
    OPTIONS = (XtOpt(("--src-range",), invert=True), XtOpt(("--dst-range",), invert=True))

    def __init__(self) -> None:
        super().__init__()
        self.ranges: dict[str, tuple] = {}  # option -> (low, high, invert)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        family, bounds = rule.family, []
        low_text, dash, high_text = value.partition("-")
        for text in (low_text, high_text) if dash else (low_text, low_text):
            try:
                bounds.append(int(family.address(text)))
            except ValueError:
                raise usage_error(f'iprange: Bad value for "{option}" option: "{text}"') from None
        self.ranges[option] = (bounds[0], bounds[1], invert)
        self.family = family

    def check(self, rule) -> None:
        if not self.ranges:
            raise usage_error("iprange match: You must specify `--src-range' or `--dst-range'")

    def save(self) -> str:
        out = "-m iprange"
        for option in ("--src-range", "--dst-range"):
            if option in self.ranges:
                out += f" {inv(self.ranges[option][2])}{option} {self._text(option)}"
        return out

    def _text(self, option: str) -> str:
        low, high, _ = self.ranges[option]
        return f"{self.family.address_text(low)}-{self.family.address_text(high)}"

    def listing(self) -> str:
        parts = []
        for option, label in (("--src-range", "source IP range"), ("--dst-range", "destination IP range")):
            if option in self.ranges:
                parts.append(f"{label}{' !' if self.ranges[option][2] else ''} {self._text(option)}")
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        ip = "ip" if rule.family.nft_family == "ip" else "ip6"
        parts = []
        for option, field in (("--src-range", "saddr"), ("--dst-range", "daddr")):
            if option in self.ranges:
                low, high, invert = self.ranges[option]
                shown = rule.family.address_text(low) + ("" if low == high else f"-{rule.family.address_text(high)}")
                parts.append(f"{ip} {field} {'!= ' if invert else ''}{shown}")
        src, dst, v4 = self.ranges.get("--src-range"), self.ranges.get("--dst-range"), ip == "ip"

        def build(ctx):
            def iprange_mt(pkt) -> bool:
                if v4:
                    header = Ipv4Packet(pkt.buf, pkt.nh)
                    saddr, daddr = header.saddr, header.daddr
                else:
                    header = Ipv6Packet(pkt.buf, pkt.nh)
                    saddr, daddr = int.from_bytes(header.saddr, "big"), int.from_bytes(header.daddr, "big")
                return all((r[0] <= addr <= r[1]) != r[2] for r, addr in ((src, saddr), (dst, daddr)) if r)
            return iprange_mt
        return [XtCompat("match", "iprange", " ".join(parts), build)]


# libxt_pkttype.c supported_types: the first name of a type is the one printed
PKTTYPES = (("unicast", PACKET_HOST), ("broadcast", PACKET_BROADCAST), ("multicast", PACKET_MULTICAST),
            ("otherhost", PACKET_OTHERHOST), ("bcast", PACKET_BROADCAST), ("mcast", PACKET_MULTICAST),
            ("host", PACKET_HOST))


class PkttypeMatch(XtMatch):
    """--pkt-type TYPE; pkttype_mt(): skb->pkt_type, a looped-back packet
    classed by its destination (multicast, else broadcast)."""

    name = "pkttype"
    OPTIONS = (XtOpt(("--pkt-type",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.type, self.invert = PACKET_HOST, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        found = next((number for name, number in PKTTYPES if name == value.lower()), None)
        if found is None:
            raise usage_error(f"Bad packet type '{value}'")
        self.type, self.invert = found, invert

    @property
    def _name(self) -> str:
        return next(name for name, number in PKTTYPES if number == self.type)

    def save(self) -> str:
        return f"-m pkttype {inv(self.invert)}--pkt-type {self._name}"

    def listing(self) -> str:
        return f"PKTTYPE {'!' if self.invert else ''}= {self._name}"

    def stmts(self, rule) -> list[Stmt]:
        wanted, v4 = self.type, rule.family.nft_family == "ip"

        def build(ctx):
            def pkttype_mt(pkt) -> bool:
                kind = pkt.skb.pkt_type
                if kind == PACKET_LOOPBACK:
                    multicast = Ipv4Packet(pkt.buf, pkt.nh).daddr >> 28 == 0xE if v4 else \
                        Ipv6Packet(pkt.buf, pkt.nh).daddr[0] == 0xFF  # ipv4_is_multicast(), ipv6_addr_is_multicast()
                    kind = PACKET_MULTICAST if multicast else PACKET_BROADCAST
                return kind == wanted
            return pkttype_mt
        return [XtCompat("match", "pkttype", f"pkttype {'!= ' if self.invert else ''}{self._name}", build,
                         invert=self.invert)]


class CpuMatch(XtMatch):
    """--cpu N; cpu_mt(): the CPU handling the packet (the mock kernel's one, 0)."""

    name = "cpu"
    OPTIONS = (XtOpt(("--cpu",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.cpu, self.invert = 0, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.cpu, self.invert = self.uint(option, value, 0, 0xFFFFFFFF), invert

    def save(self) -> str:
        return f"-m cpu {inv(self.invert)}--cpu {self.cpu}"

    def listing(self) -> str:
        return f"cpu {'! ' if self.invert else ''}{self.cpu}"

    def stmts(self, rule) -> list[Stmt]:
        on_cpu = self.cpu == 0
        return [XtCompat("match", "cpu", f"cpu {'!= ' if self.invert else ''}{self.cpu}",
                         lambda ctx: lambda pkt: on_cpu, invert=self.invert)]


class XtQuotaPriv:
    """struct xt_quota_priv: the bytes a rule's quota has left."""

    __slots__ = ("quota", "__weakref__")

    def __init__(self, quota: int) -> None:
        self.quota = quota


# each namespace's quotas, alive while a compiled rule holds one
_QUOTA_PRIVS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def quota_privs(net) -> list[XtQuotaPriv]:
    """The namespace's quotas: bounded counters the line-rate engine may draw
    down in bulk (a train's packets pass while the bytes left cover them)."""
    return list(_QUOTA_PRIVS.get(net) or ())


class QuotaMatch(XtMatch):
    """--quota BYTES; quota_mt(): matches while the bytes left cover the
    packet (skb->len, from the network header), each taking its length off;
    the first that does not fit empties it. `!` matches the others."""

    name = "quota"
    OPTIONS = (XtOpt(("--quota",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.quota, self.invert = 0, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.quota, self.invert = self.uint(option, value, 0, 0xFFFFFFFFFFFFFFFF), invert

    def save(self) -> str:
        return f"-m quota {inv(self.invert)}--quota {self.quota}"

    def listing(self) -> str:
        return f"quota: {self.quota} bytes"

    def stmts(self, rule) -> list[Stmt]:
        quota = self.quota

        def build(ctx):
            priv = XtQuotaPriv(quota)
            _QUOTA_PRIVS.setdefault(ctx.net, weakref.WeakSet()).add(priv)

            def quota_mt(pkt) -> bool:
                length = pkt.end - pkt.nh
                if priv.quota >= length:
                    priv.quota -= length
                    return True
                priv.quota = 0
                return False
            return quota_mt
        text = f"quota {'over ' if self.invert else ''}{self.quota} bytes"
        return [XtCompat("match", "quota", text, build, invert=self.invert)]


ECN_NAMES = ("not-ect", "ect1", "ect0", "ce")  # nft's ecn_type


class EcnMatch(XtMatch):
    """--ecn-tcp-ece, --ecn-tcp-cwr, --ecn-ip-ect N; ecn_mt4(): the IP ECN
    bits, then TCP's ECE and CWR (ecn_mt_check(): those want -p tcp)."""

    name = "ecn"
    OPTIONS = (XtOpt(("--ecn-tcp-cwr",), arg=False, invert=True), XtOpt(("--ecn-tcp-ece",), arg=False, invert=True),
               XtOpt(("--ecn-ip-ect",), invert=True))

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, tuple] = {}  # option -> (value, invert)

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        self.ops[option] = (self.uint(option, value, 0, 3) if value is not None else None, invert)

    def check(self, rule) -> None:
        if not self.ops:
            raise usage_error("ECN match: some option required")

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        tcp_asked = "--ecn-tcp-ece" in self.ops or "--ecn-tcp-cwr" in self.ops
        if tcp_asked and (not rule.proto or rule.proto[0] != 6 or rule.proto[1]):
            raise kernel_refusal(chain)

    def save(self) -> str:
        out = "-m ecn"
        for option in ("--ecn-tcp-ece", "--ecn-tcp-cwr", "--ecn-ip-ect"):
            if option in self.ops:
                value, invert = self.ops[option]
                out += f" {inv(invert)}{option}" + ("" if value is None else f" {value}")
        return out

    def listing(self) -> str:
        parts = ["ECN match"]
        for option, label in (("--ecn-tcp-ece", "ECE"), ("--ecn-tcp-cwr", "CWR"), ("--ecn-ip-ect", "ECT=")):
            if option in self.ops:
                value, invert = self.ops[option]
                parts.append(f"{'!' if invert else ''}{label}" + ("" if value is None else str(value)))
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        parts = []
        for option, text in (("--ecn-tcp-ece", "tcp flags {}ecn"), ("--ecn-tcp-cwr", "tcp flags {}cwr")):
            if option in self.ops:
                parts.append(text.format("!= " if self.ops[option][1] else ""))
        if "--ecn-ip-ect" in self.ops:
            value, invert = self.ops["--ecn-ip-ect"]
            parts.append(f"{'ip' if rule.family.nft_family == 'ip' else 'ip6'} ecn {'!= ' if invert else ''}"
                         f"{ECN_NAMES[value]}")
        ops, v4 = dict(self.ops), rule.family.nft_family == "ip"

        def build(ctx):
            def ecn_mt(pkt) -> bool:
                if "--ecn-ip-ect" in ops:
                    value, invert = ops["--ecn-ip-ect"]
                    ecn = Ipv4Packet(pkt.buf, pkt.nh).tos & 3 if v4 else Ipv6Packet(pkt.buf, pkt.nh).tclass & 3
                    if (ecn == value) == invert:
                        return False
                for option, bit in (("--ecn-tcp-ece", tcp.TCPHDR_ECE), ("--ecn-tcp-cwr", tcp.TCPHDR_CWR)):
                    if option in ops:
                        if pkt.fragoff or pkt.thoff + tcp.TCP_HLEN > pkt.end:
                            return False
                        if bool(TcpSegment(pkt.buf, pkt.thoff).flags & bit) == ops[option][1]:
                            return False
                return True
            return ecn_mt
        return [XtCompat("match", "ecn", " ".join(parts), build)]


class RealmMatch(XtMatch):
    """--realm [!] VALUE[/MASK]; realm_mt(): (dst->tclassid & mask) == value,
    the route's realm (none in the mock kernel: 0)."""

    name = "realm"
    OPTIONS = (XtOpt(("--realm",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.id, self.mask, self.invert = 0, 0xFFFFFFFF, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        text, slash, mask_text = value.partition("/")
        number = c_strtoul(text)
        mask = c_strtoul(mask_text) if slash else 0xFFFFFFFF
        if number is None:
            raise not_modelled_error(f"a realm name (--realm {text}: /etc/iproute2/rt_realms)")
        if number > 0xFFFFFFFF or mask is None or mask > 0xFFFFFFFF:
            raise self.bad_value(option, value)
        self.id, self.mask, self.invert = number, mask, invert

    def _text(self) -> str:
        """xtables_print_val_mask(): hex, the mask when not all ones."""
        return f"0x{self.id:x}" + ("" if self.mask == 0xFFFFFFFF else f"/0x{self.mask:x}")

    def save(self) -> str:
        return f"-m realm {inv(self.invert)}--realm {self._text()}"

    def listing(self) -> str:
        return f"{'! ' if self.invert else ''}realm {self._text()}"

    def stmts(self, rule) -> list[Stmt]:
        neq = "!= " if self.invert else ""
        text = f"rtclassid {neq}0x{self.id:x}" if self.mask == 0xFFFFFFFF else \
            f"rtclassid and 0x{self.mask:x} {'!=' if self.invert else '=='} 0x{self.id:x}"
        hit = (0 & self.mask) == self.id
        return [XtCompat("match", "realm", text, lambda ctx: lambda pkt: hit, invert=self.invert)]


class TcpmssMatch(XtMatch):
    """--mss MIN[:MAX]; tcpmss_mt(): the MSS option's value in range, a
    segment without one matching only `!`."""

    name = "tcpmss"
    OPTIONS = (XtOpt(("--mss",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.low, self.high, self.invert = 0, 0, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        (self.low, self.high), self.invert = self.uint_range(option, value, 0xFFFF), invert
        if self.low > self.high:
            raise self.error("invalid range given\n".rstrip())

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if not rule.proto or rule.proto[0] != 6 or rule.proto[1]:
            raise kernel_refusal(chain)  # xt_match.proto = IPPROTO_TCP

    def _text(self, sep: str) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}{sep}{self.high}"

    def save(self) -> str:
        return f"-m tcpmss {inv(self.invert)}--mss {self._text(':')}"

    def listing(self) -> str:
        return f"tcpmss match {'!' if self.invert else ''}{self._text(':')}"

    def stmts(self, rule) -> list[Stmt]:
        low, high, invert = self.low, self.high, self.invert
        text = f"tcp option maxseg size {'!= ' if invert else ''}{self._text('-')}"

        def build(ctx):
            def tcpmss_mt(pkt) -> bool:
                if pkt.thoff + tcp.TCP_HLEN > pkt.end:
                    return False
                mss = tcp.mss_option(pkt.buf, pkt.thoff, TcpSegment(pkt.buf, pkt.thoff).header_len)
                return invert if mss is None else (low <= mss <= high) != invert
            return tcpmss_mt
        return [XtCompat("match", "tcpmss", text, build)]


class MacMatch(XtMatch):
    """--mac-source [!] XX:XX:XX:XX:XX:XX; mac_mt(): the Ethernet source of a
    received frame (PREROUTING, INPUT, FORWARD only)."""

    name = "mac"
    OPTIONS = (XtOpt(("--mac-source",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.mac, self.invert = b"", False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        parts = value.split(":")
        if len(parts) != 6 or not all(1 <= len(p) <= 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                      for p in parts):
            raise usage_error("Invalid MAC address specified.")
        self.mac, self.invert = bytes(int(p, 16) for p in parts), invert

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if builtin and chain not in ("PREROUTING", "INPUT", "FORWARD"):
            raise kernel_refusal(chain)

    def save(self) -> str:
        return f"-m mac {inv(self.invert)}--mac-source {ethernet.mac_to_str(self.mac)}"

    def listing(self) -> str:
        return f"MAC{' !' if self.invert else ''} {ethernet.mac_to_str(self.mac).upper()}"

    def stmts(self, rule) -> list[Stmt]:
        mac = self.mac
        text = f"ether saddr {'!= ' if self.invert else ''}{ethernet.mac_to_str(mac)}"

        def build(ctx):
            def mac_mt(pkt) -> bool:
                skb = pkt.skb
                start = skb.mac_header
                if skb.dev is None or start < 0 or start + ethernet.ETH_HLEN > pkt.nh:
                    return False
                return bytes(pkt.buf[start + ethernet.SRC:start + ethernet.SRC + ethernet.ETH_ALEN]) == mac
            return mac_mt
        return [XtCompat("match", "mac", text, build, invert=self.invert)]


class HelperMatch(XtMatch):
    """--helper NAME; helper_mt(): the helper of the connection this one is
    expected by. The mock kernel runs no conntrack helpers: nothing is
    expected, and only `!` matches."""

    name = "helper"
    OPTIONS = (XtOpt(("--helper",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.helper, self.invert = "", False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.helper, self.invert = value[:29], invert

    def save(self) -> str:
        return f"-m helper {inv(self.invert)}--helper {quote(self.helper)}"

    def listing(self) -> str:
        return f"helper match {'! ' if self.invert else ''}\"{self.helper}\""

    def stmts(self, rule) -> list[Stmt]:
        invert = self.invert

        def build(ctx):
            def helper_mt(pkt) -> bool:  # no entry, no master, no helper alike: info->invert
                return invert
            return helper_mt
        return [XtCompat("match", "helper", f'ct helper {"!= " if invert else ""}"{self.helper}"', build,
                         needs_conntrack=True)]


XT_STRING_MAX_PATTERN_SIZE = 128
TEXTSEARCH_ALGOS = ("bm", "kmp", "fsm")  # lib/ts_bm.c, ts_kmp.c, ts_fsm.c


class StringMatch(XtMatch):
    """libxt_string.c revision 1; xt_string.c string_mt(): skb_find_text()
    finds the pattern wholly within [--from, --to) of the packet from its
    network header (--icase: either case). Every algorithm finds the first
    occurrence alike, so the mock searches directly."""

    name = "string"
    OPTIONS = (XtOpt(("--from",)), XtOpt(("--to",)), XtOpt(("--algo",), mandatory=True),
               XtOpt(("--string",), invert=True, excl=("--hex-string",)),
               XtOpt(("--hex-string",), invert=True, excl=("--string",)), XtOpt(("--icase",), arg=False))

    def __init__(self) -> None:
        super().__init__()
        self.pattern, self.algo, self.start, self.stop = b"", "", 0, 0xFFFF
        self.invert = self.icase = False

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--from":
            self.start = self.uint(option, value, 0, 0xFFFF)
        elif option == "--to":
            self.stop = self.uint(option, value, 0, 0xFFFF)
        elif option == "--algo":
            self.algo = value[:15]
        elif option == "--icase":
            self.icase = True
        else:
            self.pattern = _string(value) if option == "--string" else _hex_string(value)
            self.invert = invert

    def check(self, rule) -> None:
        if not ({"--string", "--hex-string"} & self.given):
            raise usage_error("STRING match: You must specify `--string' or `--hex-string'")

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        """string_mt_check(): from not past to; textsearch_prepare() knows the algorithm."""
        if self.start > self.stop:
            raise kernel_refusal(chain)
        if self.algo not in TEXTSEARCH_ALGOS:
            raise XtError(f"{VERSION}:  RULE_APPEND failed (No such file or directory): rule in chain {chain}", 4)

    def _pattern_text(self) -> str:
        """is_hex_string(): unprintable bytes or a trailing backslash print as hex."""
        pattern = self.pattern
        if any(not 32 <= b < 127 for b in pattern) or pattern[-1:] == b"\\":
            return '"|' + pattern.hex() + '|"'
        return '"' + "".join("\\" + chr(b) if chr(b) in '"\\' else chr(b) for b in pattern) + '"'

    @property
    def _hex(self) -> bool:
        return self._pattern_text().startswith('"|')

    def save(self) -> str:
        out = f"-m string {inv(self.invert)}--{'hex-string' if self._hex else 'string'} {self._pattern_text()}"
        out += f" --algo {self.algo}"
        if self.start:
            out += f" --from {self.start}"
        if self.stop != 0xFFFF:
            out += f" --to {self.stop}"
        return out + (" --icase" if self.icase else "")

    def listing(self) -> str:
        out = f"STRING match {'!' if self.invert else ''}{self._pattern_text()} ALGO name {self.algo}"
        if self.start:
            out += f" FROM {self.start}"
        if self.stop != 0xFFFF:
            out += f" TO {self.stop}"
        return out + (" ICASE" if self.icase else "")

    def stmts(self, rule) -> list[Stmt]:
        pattern, start, stop, icase = self.pattern, self.start, self.stop, self.icase
        if icase:
            pattern = pattern.lower()

        def build(ctx):
            def string_mt(pkt) -> bool:
                data = bytes(pkt.buf[pkt.nh + start:min(pkt.nh + stop, pkt.end)])
                return (data.lower() if icase else data).find(pattern) >= 0
            return string_mt
        return [XtCompat("match", "string", None, build, invert=self.invert)]


def _string(text: str) -> bytes:
    """parse_string(): at most 128 bytes."""
    data = text.encode("latin-1", "replace")
    if len(data) > XT_STRING_MAX_PATTERN_SIZE:
        raise usage_error(f'STRING too long "{text}"')
    return data


def _hex_string(text: str) -> bytes:
    """parse_hex_string(): `|..|` blocks of hex pairs (spaces between them
    allowed), `\\` quoting a character outside them."""
    if not text:
        raise usage_error("STRING must contain at least one char")
    out, i, in_hex = bytearray(), 0, False
    while i < len(text):
        if len(out) >= XT_STRING_MAX_PATTERN_SIZE:
            raise usage_error(f'STRING too long "{text}"')
        char = text[i]
        if char == "\\":
            if in_hex:
                raise usage_error("Cannot include literals in hex data")
            if i + 1 >= len(text):
                raise usage_error("Bad literal placement at end of string")
            out.append(ord(text[i + 1]) & 0xFF)
            i += 2
            continue
        if char == "|":
            in_hex = not in_hex
            i += 1
            while in_hex and i < len(text) and text[i] == " ":
                i += 1
            continue
        if in_hex:
            if i + 1 >= len(text):
                raise usage_error("Odd number of hex digits")
            if i + 2 >= len(text):
                raise usage_error("Invalid hex block")
            for digit in text[i:i + 2]:
                if digit not in "0123456789abcdefABCDEF":
                    raise usage_error(f"Invalid hex char '{digit}'")
            out.append(int(text[i:i + 2], 16))
            i += 3 if text[i + 2] == " " else 2
        else:
            out.append(ord(char) & 0xFF)
            i += 1
    return bytes(out)


XT_TIME_ALL_MONTHDAYS, XT_TIME_ALL_WEEKDAYS, XT_TIME_MAX_DAYTIME = 0xFFFFFFFE, 0xFE, 24 * 60 * 60 - 1
WEEK_DAYS = (None, "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
INT_MAX = 0x7FFFFFFF


class TimeMatch(XtMatch):
    """libxt_time.c; xt_time.c time_mt(): the time now (the mock kernel's
    real-time clock, in UTC: the kernel's timezone offset is 0) within the
    dates, the daytime (across midnight when --timestop is before
    --timestart), the weekdays and the monthdays."""

    name = "time"
    OPTIONS = (XtOpt(("--datestart",)), XtOpt(("--datestop",)), XtOpt(("--timestart",)), XtOpt(("--timestop",)),
               XtOpt(("--contiguous",), arg=False), XtOpt(("--weekdays",), invert=True),
               XtOpt(("--monthdays",), invert=True), XtOpt(("--localtz",), arg=False, excl=("--utc",)),
               XtOpt(("--utc",), arg=False, excl=("--localtz", "--kerneltz")),
               XtOpt(("--kerneltz",), arg=False, excl=("--utc",)))

    def __init__(self) -> None:
        super().__init__()
        self.date_start, self.date_stop = 0, INT_MAX
        self.day_start, self.day_stop = 0, XT_TIME_MAX_DAYTIME
        self.monthdays, self.weekdays = XT_TIME_ALL_MONTHDAYS, XT_TIME_ALL_WEEKDAYS
        self.kerneltz = self.contiguous = False

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option in ("--datestart", "--datestop"):
            setattr(self, "date_start" if option == "--datestart" else "date_stop", _parse_date(value))
        elif option in ("--timestart", "--timestop"):
            setattr(self, "day_start" if option == "--timestart" else "day_stop", _parse_daytime(value))
        elif option == "--contiguous":
            self.contiguous = True
        elif option in ("--localtz", "--kerneltz"):
            self.kerneltz = True
        elif option == "--monthdays":
            mask = 0
            for day in value.split(","):
                number = c_strtoul(day[:2])
                if number is None or number > 31 or len(day) > 2:
                    raise usage_error(f"{day[:2]} is not a valid day for --monthdays")
                mask |= 1 << number
            self.monthdays = mask ^ XT_TIME_ALL_MONTHDAYS if invert else mask
        elif option == "--weekdays":
            mask = 0
            for day in value.split(","):
                day = day[:3]
                number = c_strtoul(day)
                if number is not None:
                    if number == 0:
                        raise usage_error("No, the week does NOT begin with Sunday.")
                    mask |= 1 << number
                    continue
                found = [i for i in range(1, 8) if WEEK_DAYS[i][:2] == day[:2]]
                if not found:
                    raise usage_error(f"{day} is not a valid day specifier")
                mask |= 1 << found[0]
            self.weekdays = mask ^ XT_TIME_ALL_WEEKDAYS if invert else mask

    def check(self, rule) -> None:
        if self.contiguous and self.day_start < self.day_stop:
            raise usage_error("time: --contiguous only makes sense when stoptime is smaller than starttime")

    def save(self) -> str:
        out = "-m time"
        if (self.day_start, self.day_stop) != (0, XT_TIME_MAX_DAYTIME):
            out += f" --timestart {_daytime(self.day_start)} --timestop {_daytime(self.day_stop)}"
        if self.monthdays != XT_TIME_ALL_MONTHDAYS:
            out += " --monthdays " + ",".join(str(i) for i in range(1, 32) if self.monthdays >> i & 1)
        if self.weekdays != XT_TIME_ALL_WEEKDAYS:
            out += " --weekdays " + ",".join(WEEK_DAYS[i] for i in range(1, 8) if self.weekdays >> i & 1)
        for option, date in (("--datestart", self.date_start), ("--datestop", self.date_stop)):
            if date != 0:  # time_print_date() skips 0 and LONG_MAX, so INT_MAX, the default stop, is printed
                out += f" {option} {time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(date))}"
        return out + (" --kerneltz" if self.kerneltz else "") + (" --contiguous" if self.contiguous else "")

    def listing(self) -> str:
        return "TIME " + self.save()[len("-m time "):]

    def stmts(self, rule) -> list[Stmt]:
        start, stop, day_start, day_stop = self.date_start, self.date_stop, self.day_start, self.day_stop
        weekdays, monthdays, contiguous = self.weekdays, self.monthdays, self.contiguous

        def build(ctx):
            clock = ctx.net.clock

            def time_mt(pkt) -> bool:
                stamp = int(clock.realtime())  # ktime_get_real_ns(): the skb has no timestamp
                if stamp < start or stamp > stop:
                    return False
                daytime = stamp % 86400
                if day_start < day_stop:
                    if not day_start <= daytime <= day_stop:
                        return False
                else:
                    if day_stop < daytime < day_start:
                        return False
                    if contiguous and daytime <= day_stop:
                        stamp -= 86400  # the time frame began the day before
                moment = time.gmtime(stamp)
                if not weekdays >> (moment.tm_wday + 1) & 1:
                    return False
                return monthdays == XT_TIME_ALL_MONTHDAYS or bool(monthdays >> moment.tm_mday & 1)
            return time_mt
        return [XtCompat("match", "time", self.xlate(), build)]

    def xlate(self) -> str | None:
        """time_xlate(): the dates (UTC), the daytime, the weekdays (Sunday 0);
        no translation with --monthdays (nft_time has none). A list of days
        is braced with spaces, as the lab's libxt_time prints it for nft."""
        text = ""
        if (self.date_start, self.date_stop) != (0, INT_MAX):
            text += "meta time " + "-".join(time.strftime('"%Y-%m-%d %H:%M:%S"', time.gmtime(date))
                                            for date in (self.date_start, self.date_stop))
        if (self.day_start, self.day_stop) != (0, XT_TIME_MAX_DAYTIME):
            text += f' meta hour "{_daytime(self.day_start)}"-"{_daytime(self.day_stop)}"'
        if self.monthdays != XT_TIME_ALL_MONTHDAYS:
            return None
        if self.weekdays != XT_TIME_ALL_WEEKDAYS:
            days = [str(i % 7) for i in range(1, 8) if self.weekdays >> i & 1]
            text += " meta day " + ("{ " + ", ".join(days) + " }" if len(days) > 1 else days[0])
        return text


def _parse_date(text: str) -> int:
    """time_parse_date(): YYYY[-MM[-DD[Thh[:mm[:ss]]]]] in UTC, 1970 to 2038."""
    match = re.fullmatch(r"(\d+)(?:-(\d+)(?:-(\d+)(?:T(\d+)(?::(\d+)(?::(\d+))?)?)?)?)?", text)
    parts = [int(p) if p else d for p, d in zip(match.groups(), (0, 1, 1, 0, 0, 0))] if match else None
    if not parts or not 1970 <= parts[0] <= 2038 or parts[1] > 12 or parts[2] > 31 or parts[3] > 23 \
            or parts[4] > 59 or parts[5] > 59:
        raise usage_error(f'Invalid date "{text}" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]')
    return calendar.timegm((parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], 0, 0, 0))


def _parse_daytime(text: str) -> int:
    """time_parse_minutes(): hh:mm[:ss]."""
    match = re.fullmatch(r"(\d+):(\d+)(?::(\d+))?", text)
    if not match or int(match[1]) > 23 or int(match[2]) > 59 or match[3] and int(match[3]) > 59:
        raise usage_error(f'invalid time "{text}" specified, should be hh:mm[:ss] format and within the boundaries')
    return int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3] or 0)


def _daytime(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


POLICY_PROTOS = {51: "ah", 50: "esp", 108: "ipcomp"}


class PolicyMatch(XtMatch):
    """libxt_policy.c; xt_policy.c policy_mt(): the IPsec policy the packet
    was (--dir in: its secpath) or will be (--dir out: its route's xfrm)
    handled by. The mock kernel has no IPsec: no packet has either, so
    `--pol none` matches every packet and `--pol ipsec` none."""

    name = "policy"
    OPTIONS = (XtOpt(("--dir",), mandatory=True), XtOpt(("--pol",), mandatory=True), XtOpt(("--strict",), arg=False),
               XtOpt(("--reqid",), invert=True, multi=True), XtOpt(("--spi",), invert=True, multi=True),
               XtOpt(("--tunnel-src",), invert=True, multi=True), XtOpt(("--tunnel-dst",), invert=True, multi=True),
               XtOpt(("--proto",), invert=True, multi=True), XtOpt(("--mode",), invert=True, multi=True),
               XtOpt(("--next",), arg=False, multi=True, also=("--strict",)))
    ELEMENT_ORDER = ("--reqid", "--spi", "--proto", "--mode", "--tunnel-dst", "--tunnel-src")

    def __init__(self) -> None:
        super().__init__()
        self.direction = self.policy = None
        self.elements: list[dict] = [{}]  # option -> (value, invert), one dict per --next

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        element = self.elements[-1]
        if option == "--dir":
            if value not in ("in", "out"):
                raise usage_error(f'policy_match: invalid dir "{value}"')
            self.direction = value
        elif option == "--pol":
            if value not in ("none", "ipsec"):
                raise usage_error(f'policy match: invalid policy "{value}"')
            self.policy = value
        elif option == "--next":
            if len(self.elements) == 4:  # XT_POLICY_MAX_ELEM
                raise usage_error("policy match: maximum policy depth reached")
            self.elements.append({})
        elif option != "--strict":
            if option in element:
                raise usage_error(f"policy match: double {option} option")
            if option in ("--reqid", "--spi"):
                parsed = self.uint(option, value, 0, 0xFFFFFFFF)
            elif option == "--proto":
                parsed = parse_protocol(value)
                if parsed not in POLICY_PROTOS:
                    raise usage_error("policy match: protocol must be ah/esp/ipcomp")
            elif option == "--mode":
                if value not in ("transport", "tunnel"):
                    raise usage_error(f'policy match: invalid mode "{value}"')
                parsed = value
            else:
                parsed = rule.family.parse_address(value)
            element[option] = (parsed, invert)

    def check(self, rule) -> None:
        """policy_check()."""
        if self.direction is None:
            raise usage_error("policy match: neither --dir in nor --dir out specified")
        used = [e for e in self.elements if e] if self.policy == "none" else self.elements
        if self.policy == "none":
            if "--strict" in self.given:
                raise usage_error("policy match: policy none but --strict given")
            if used or len(self.elements) > 1:
                raise usage_error("policy match: policy none but policy given")
            self.elements = []
        for i, element in enumerate(self.elements):
            if "--strict" in self.given and not element:
                raise usage_error(f"policy match: empty policy element {i}. --strict is in effect, but at least one "
                                  "of reqid, spi, tunnel-src, tunnel-dst, proto or mode is required.")
            mode, mode_invert = element.get("--mode", ("transport", False))
            if ("--tunnel-src" in element or "--tunnel-dst" in element) and \
                    (mode == "tunnel" and mode_invert or mode == "transport" and not mode_invert):
                raise usage_error("policy match: --tunnel-src/--tunnel-dst is only valid in tunnel mode")

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        """policy_mt_check(): in only where packets arrive, out where they leave."""
        allowed = ("PREROUTING", "INPUT", "FORWARD") if self.direction == "in" else \
            ("POSTROUTING", "OUTPUT", "FORWARD")
        if builtin and chain not in allowed:
            raise kernel_refusal(chain)

    def _element_text(self, element: dict) -> str:
        parts = []
        for option in self.ELEMENT_ORDER:
            if option in element:
                value, invert = element[option]
                if option.startswith("--tunnel"):  # xtables_ipaddr_to_numeric() and the mask, always
                    addr, mask, family = value
                    text = f"{family.address_text(addr)}/{family.mask_text(mask)}"
                else:
                    text = f"0x{value:x}" if option == "--spi" else POLICY_PROTOS[value] if option == "--proto" \
                        else str(value)
                parts.append(f"{inv(invert)}{option} {text}")
        return " ".join(parts)

    def save(self) -> str:
        out = f"-m policy --dir {self.direction} --pol {self.policy}" + (" --strict" if "--strict" in self.given else "")
        texts = [self._element_text(e) for e in self.elements]
        return out + "".join(f" {t}" if i == 0 else f" --next {t}" for i, t in enumerate(texts) if t or i)

    def listing(self) -> str:
        return "policy match " + self.save()[len("-m policy "):].replace("--", "")

    def stmts(self, rule) -> list[Stmt]:
        simple = self.policy == "ipsec" and not any(self.elements) and "--strict" not in self.given
        text = "meta secpath exists" if simple and self.direction == "in" else \
            "meta secpath missing" if self.policy == "none" and self.direction == "in" else None
        hit = self.policy == "none"
        return [XtCompat("match", "policy", text, lambda ctx: lambda pkt: hit)]


class SocketMatch(XtMatch):
    """libxt_socket.c revision 3; xt_socket.c socket_match(): the packet's
    socket, else the one nf_sk_lookup_slow_v4() finds (nft_socket.py), not a
    listener on 0.0.0.0 unless --nowildcard, and with --transparent only an
    IP_TRANSPARENT one (the mock's sockets never are); --restore-skmark copies
    its mark to the packet. PREROUTING and INPUT only."""

    name = "socket"
    OPTIONS = (XtOpt(("--transparent",), arg=False), XtOpt(("--nowildcard",), arg=False),
               XtOpt(("--restore-skmark",), arg=False))

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        pass

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if builtin and chain not in ("PREROUTING", "INPUT"):
            raise kernel_refusal(chain)

    def save(self) -> str:
        return " ".join(["-m socket"] + [o for o in ("--transparent", "--nowildcard", "--restore-skmark")
                                         if o in self.given])

    def listing(self) -> str:
        return " ".join(["socket"] + [o[2:] for o in ("--transparent", "--nowildcard", "--restore-skmark")
                                      if o in self.given])

    def stmts(self, rule) -> list[Stmt]:
        transparent_only, nowildcard = "--transparent" in self.given, "--nowildcard" in self.given
        restore = "--restore-skmark" in self.given

        def build(ctx):
            net = ctx.net

            def socket_match(pkt) -> bool:
                sk = pkt.skb.sk or nf_sk_lookup_slow_v4(net, pkt)
                if sk is None:
                    return False
                wildcard = not nowildcard and bound_address(sk) == 0
                transparent = bool(getattr(sk, "transparent", False)) if transparent_only else True
                if restore and not wildcard and transparent:
                    pkt.skb.mark = getattr(sk, "mark", 0)
                return not wildcard and transparent
            return socket_match
        return [XtCompat("match", "socket", None, build)]


class CgroupMatch(XtMatch):
    """libxt_cgroup.c revision 2; xt_cgroup.c cgroup_mt_v2(): the packet's
    full socket in a cgroup at or below --path, or of net_cls class --cgroup
    (`!` inverts either); a packet without a socket never matches. The mock
    kernel's sockets are all in the root cgroup with class 0: a path other
    than "/" is not modelled. INPUT, OUTPUT and POSTROUTING only."""

    name = "cgroup"
    OPTIONS = (XtOpt(("--path",), invert=True), XtOpt(("--cgroup",), invert=True))

    def __init__(self) -> None:
        super().__init__()
        self.path = self.classid = None  # (value, invert)

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--path":
            if value.rstrip("/") != "":
                raise not_modelled_error(f"-m cgroup --path {value} (the mock's sockets are in the root cgroup)")
            self.path = (value[:4095], invert)
        else:
            self.classid = (self.uint(option, value, 0, 0xFFFFFFFF), invert)

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        """cgroup_mt_check_v2(): a path or a class, not both nor neither; its hooks."""
        if (self.path is None) == (self.classid is None) or \
                builtin and chain not in ("INPUT", "OUTPUT", "POSTROUTING"):
            raise kernel_refusal(chain)

    def save(self) -> str:
        out = "-m cgroup"
        if self.path is not None:
            out += f" {inv(self.path[1])}--path {quote(self.path[0])}"
        if self.classid is not None:
            out += f" {inv(self.classid[1])}--cgroup {self.classid[0]}"
        return out

    def listing(self) -> str:
        if self.path is not None:
            return f"cgroup {'! ' if self.path[1] else ''}{self.path[0]}"
        return f"cgroup {'! ' if self.classid[1] else ''}{self.classid[0]}"

    def stmts(self, rule) -> list[Stmt]:
        wanted = self.path if self.path is not None else self.classid
        hit = True if self.path is not None else wanted[0] == 0  # descendant of /; class 0
        result = hit != wanted[1]
        text = None if self.path is not None or self.classid is None else \
            f"meta cgroup {'!= ' if wanted[1] else ''}{wanted[0]}"
        return [XtCompat("match", "cgroup", text, lambda ctx: lambda pkt: pkt.skb.sk is not None and result)]


PACKET_MATCHES = {"iprange": IprangeMatch, "pkttype": PkttypeMatch, "cpu": CpuMatch, "quota": QuotaMatch,
                  "ecn": EcnMatch, "realm": RealmMatch, "tcpmss": TcpmssMatch, "mac": MacMatch,
                  "helper": HelperMatch, "string": StringMatch, "time": TimeMatch,
                  "policy": PolicyMatch, "socket": SocketMatch,
                  "cgroup": CgroupMatch}
PACKET_FAMILY_ONLY = {"realm": "ip"}
