"""iptables 1.8.9 matches (extensions/libxt_*.c, libipt_icmp.c, libip6t_icmp6.c)
as iptables-nft keeps them: each parses its options as the C extension does,
saves them as iptables-save prints them, prints its `iptables -L` column, and
gives the statements iptables-nft puts in the kernel: native nft expressions
for tcp, udp and mark (nft.c add_match()), nft_compat (nft_compat.py) for the
rest, shown by `nft list` as the extension's translation. Each match's
datapath follows its kernel module (net/netfilter/xt_*.c), named in its class.
"""
from __future__ import annotations

import re
import socket

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nf_conntrack import UNTRACKED, ct_direction
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import (PAYLOAD_FIELDS, Ct, Fib, Limit, Match, Meta, Payload, Range, Stmt,
                                                    Value, Xt, ct_state_bits)
from harness.mockkernel.netfilter.xt_options import VERSION, XtError, XtExtension, XtOpt, c_strtoul, usage_error
from harness.mockkernel.wire import icmp, ipv4, ipv6, tcp
from harness.mockkernel.wire.icmp import IcmpMessage
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP, Ipv4Packet
from harness.mockkernel.wire.ipv6 import Ipv6Packet
from harness.mockkernel.wire.tcp import TcpSegment

CT_STATES = {"INVALID": 1, "ESTABLISHED": 2, "RELATED": 4, "NEW": 8, "UNTRACKED": 64, "SNAT": 256, "DNAT": 512}
CT_STATE_ORDER = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")  # libxt_conntrack's
CT_STATUS = {"EXPECTED": 1, "SEEN_REPLY": 2, "ASSURED": 4, "CONFIRMED": 8}  # print order too
TCP_FLAGS = {"FIN": 1, "SYN": 2, "RST": 4, "PSH": 8, "ACK": 16, "URG": 32, "ALL": 63, "NONE": 0}
TCP_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG")
PORT_PROTOS = {6: "tcp", 17: "udp", 136: "udplite", 132: "sctp", 33: "dccp"}  # multiport's
ICMP_NAMES = {  # libipt_icmp.c icmp_codes: name -> (type, code low, code high)
    "any": (0xFF, 0, 0xFF), "echo-reply": (0, 0, 0xFF), "pong": (0, 0, 0xFF),
    "destination-unreachable": (3, 0, 0xFF), "network-unreachable": (3, 0, 0), "host-unreachable": (3, 1, 1),
    "protocol-unreachable": (3, 2, 2), "port-unreachable": (3, 3, 3), "fragmentation-needed": (3, 4, 4),
    "source-route-failed": (3, 5, 5), "network-unknown": (3, 6, 6), "host-unknown": (3, 7, 7),
    "network-prohibited": (3, 9, 9), "host-prohibited": (3, 10, 10), "TOS-network-unreachable": (3, 11, 11),
    "TOS-host-unreachable": (3, 12, 12), "communication-prohibited": (3, 13, 13),
    "host-precedence-violation": (3, 14, 14), "precedence-cutoff": (3, 15, 15), "source-quench": (4, 0, 0xFF),
    "redirect": (5, 0, 0xFF), "network-redirect": (5, 0, 0), "host-redirect": (5, 1, 1),
    "TOS-network-redirect": (5, 2, 2), "TOS-host-redirect": (5, 3, 3), "echo-request": (8, 0, 0xFF),
    "ping": (8, 0, 0xFF), "router-advertisement": (9, 0, 0xFF), "router-solicitation": (10, 0, 0xFF),
    "time-exceeded": (11, 0, 0xFF), "ttl-exceeded": (11, 0, 0xFF), "ttl-zero-during-transit": (11, 0, 0),
    "ttl-zero-during-reassembly": (11, 1, 1), "parameter-problem": (12, 0, 0xFF), "ip-header-bad": (12, 0, 0),
    "required-option-missing": (12, 1, 1), "timestamp-request": (13, 0, 0xFF), "timestamp-reply": (14, 0, 0xFF),
    "address-mask-request": (17, 0, 0xFF), "address-mask-reply": (18, 0, 0xFF)}
ICMPV6_NAMES = {  # libip6t_icmp6.c icmpv6_codes
    "destination-unreachable": (1, 0, 0xFF), "no-route": (1, 0, 0), "communication-prohibited": (1, 1, 1),
    "beyond-scope": (1, 2, 2), "address-unreachable": (1, 3, 3), "port-unreachable": (1, 4, 4),
    "failed-policy": (1, 5, 5), "reject-route": (1, 6, 6), "packet-too-big": (2, 0, 0xFF),
    "time-exceeded": (3, 0, 0xFF), "ttl-exceeded": (3, 0, 0xFF), "ttl-zero-during-transit": (3, 0, 0),
    "ttl-zero-during-reassembly": (3, 1, 1), "parameter-problem": (4, 0, 0xFF), "bad-header": (4, 0, 0),
    "unknown-header-type": (4, 1, 1), "unknown-option": (4, 2, 2), "echo-request": (128, 0, 0xFF),
    "ping": (128, 0, 0xFF), "echo-reply": (129, 0, 0xFF), "pong": (129, 0, 0xFF),
    "router-solicitation": (133, 0, 0xFF), "router-advertisement": (134, 0, 0xFF),
    "neighbour-solicitation": (135, 0, 0xFF), "neighbor-solicitation": (135, 0, 0xFF),
    "neighbour-advertisement": (136, 0, 0xFF), "neighbor-advertisement": (136, 0, 0xFF),
    "redirect": (137, 0, 0xFF)}


def inv(invert: bool) -> str:
    return "! " if invert else ""


def quote(text: str) -> str:
    """xtables_save_string(): bare when only letters, digits, `_` and `-`,
    else in double quotes with `"`, `\\` and `'` escaped."""
    if text and all(c.isascii() and (c.isalnum() or c in "_-") for c in text):
        return text
    return '"' + "".join("\\" + c if c in "\"\\'" else c for c in text) + '"'


def field(proto: str, name: str) -> Payload:
    return Payload((PAYLOAD_FIELDS[proto][name],))


def parse_port(text: str, proto: str) -> int:
    """xtables_parse_port(): a number up to 65535 or a service name."""
    number = c_strtoul(text) if text[:1].isdigit() else None
    if number is not None and number <= 65535:
        return number
    try:
        return socket.getservbyname(text, proto)
    except OSError:
        raise usage_error(f"invalid port/service `{text}' specified") from None


def _ports_text(low: int, high: int, sep: str = ":") -> str:
    return str(low) if low == high else f"{low}{sep}{high}"


class XtMatch(XtExtension):
    """One `-m NAME ...` (or a protocol's match loaded for its options)."""

    LIST_SEPARATOR = " "  # what its print() writes first, after the destination column

    def save(self) -> str:
        """Its options as iptables-save prints them."""
        raise NotImplementedError

    def listing(self) -> str:
        """Its column in `iptables -L -n`."""
        raise NotImplementedError

    def stmts(self, rule) -> list[Stmt]:
        raise NotImplementedError

    def rule_check(self, rule) -> None:
        """What iptables refuses once the whole command line is read."""

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        """What the kernel's checkentry refuses in this chain (a builtin one: its hook)."""

    def table_check(self, rule, table: str, chain: str) -> None:
        """What the kernel's checkentry refuses in this table (par->table)."""


# ------------------------------------------------------------------ tcp, udp

class PortMatch(XtMatch):
    """libxt_tcp.c (old-style parse, its own messages) and libxt_udp.c
    (XTTYPE_PORTRC: libxtables' xtopt_parse_mport()); native nft payload
    matches in iptables-nft (add_nft_tcp(), add_nft_udp())."""

    OPTIONS = (XtOpt(("--sport", "--source-port"), invert=True, multi=True),
               XtOpt(("--dport", "--destination-port"), invert=True, multi=True))
    UDP_OPTIONS = (XtOpt(("--source-port", "--sport"), invert=True),
                   XtOpt(("--destination-port", "--dport"), invert=True))
    TCP_OPTIONS = (XtOpt(("--tcp-flags",), invert=True, multi=True), XtOpt(("--syn",), arg=False, invert=True,
                                                                          multi=True),
                   XtOpt(("--tcp-option",), invert=True, multi=True))

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.sport = self.dport = self.flags = self.option_kind = None  # (low, high, invert) / (mask, cmp, invert)
        if name == "tcp":
            self.OPTIONS = PortMatch.OPTIONS + PortMatch.TCP_OPTIONS
        else:
            self.OPTIONS = PortMatch.UDP_OPTIONS

    def take(self, word: str, words: list[str], invert: bool, rule) -> None:
        if word == "--tcp-flags":
            if len(words) < 2 or words[1].startswith("-") and words[1] != "-":
                raise usage_error("--tcp-flags requires two args.")
            self._once("flags", "Only one of `--syn' or `--tcp-flags'  allowed")
            self.flags = (tcp_flags(words.pop(0)), tcp_flags(words.pop(0)), invert)
            return
        if word == "--syn":
            self._once("flags", "Only one of `--syn' or `--tcp-flags'  allowed")
            self.flags = (0x17, 0x02, invert)  # FIN,SYN,RST,ACK SYN
            return
        super().take(word, words, invert, rule)

    def _once(self, attr: str, message: str) -> None:
        if getattr(self, attr) is not None:
            raise usage_error(message)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--tcp-option":
            self._once("option_kind", "Only one `--tcp-option' allowed")
            number = c_strtoul(value)
            if number is None or number > 255:
                raise usage_error(f"Bad TCP option `{value}'")
            self.option_kind = (number, invert)
            return
        attr = "sport" if option in ("--sport", "--source-port") else "dport"
        self._once(attr, f"Only one `{'--source-port' if attr == 'sport' else '--destination-port'}' allowed")
        low, high = self.port_range(value) if self.name == "tcp" else xtopt_parse_mport(self, option, value)
        setattr(self, attr, (low, high, invert))

    def port_range(self, text: str) -> tuple[int, int]:
        """parse_tcp_ports(): `P`, `P:Q`, `P:` (to 65535), `:Q` (from 0)."""
        if ":" not in text:
            port = parse_port(text, self.name)
            return port, port
        low_text, _, high_text = text.partition(":")
        low = parse_port(low_text, self.name) if low_text else 0
        high = parse_port(high_text, self.name) if high_text else 65535
        if low > high:
            raise usage_error("invalid portrange (min > max)")
        return low, high

    def rule_check(self, rule) -> None:
        number = {"tcp": 6, "udp": 17}[self.name]
        if not rule.proto or rule.proto[0] != number or rule.proto[1]:
            raise usage_error(f"{self.name.upper()} match requires '-p {self.name}'")

    def save(self) -> str:
        out = f"-m {self.name}"
        for opt, ports in (("--sport", self.sport), ("--dport", self.dport)):
            if ports:
                out += f" {inv(ports[2])}{opt} {_ports_text(ports[0], ports[1])}"
        if self.option_kind:
            out += f" {inv(self.option_kind[1])}--tcp-option {self.option_kind[0]}"
        if self.flags:
            mask, cmp, invert = self.flags
            out += f" {inv(invert)}--tcp-flags {flag_names(mask)} {flag_names(cmp)}"
        return out

    def listing(self) -> str:
        parts = [self.name]
        for short, ports in (("spt", self.sport), ("dpt", self.dport)):
            if ports:
                low, high, invert = ports
                bang = "!" if invert else ""
                parts.append(f"{short}s:{bang}{low}:{high}" if high != low else f"{short}:{bang}{low}")
        if self.option_kind:
            parts.append(f"option={'!' if self.option_kind[1] else ''}{self.option_kind[0]}")
        if self.flags:
            mask, cmp, invert = self.flags
            parts.append(f"flags:{'!' if invert else ''}0x{mask:02X}/0x{cmp:02X}")
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        """add_nft_tcp(): the flags first, then the ports (one, up to one: <=, or a range)."""
        out: list[Stmt] = []
        if self.flags:
            mask, cmp, invert = self.flags
            out.append(Match(field("tcp", "flags"), "!=" if invert else "==", Value(cmp), mask=mask))
        for fld, ports in (("sport", self.sport), ("dport", self.dport)):
            if ports:
                low, high, invert = ports
                if low == 0 < high and not invert:
                    out.append(Match(field(self.name, fld), "<=", Value(high)))
                    continue
                out.append(Match(field(self.name, fld), "!=" if invert else "==",
                                 Value(low) if low == high else Range(low, high)))
        if self.option_kind:
            kind, invert = self.option_kind
            out.append(XtCompat("match", "tcp", f"tcp option {kind} {'missing' if invert else 'exists'}",
                                lambda ctx: _has_tcp_option(kind), invert=invert))
        if not out:  # nothing to translate: the xt match itself, whose translation is empty
            out.append(XtCompat("match", self.name, "", lambda ctx: _not_a_later_fragment))
        return out


def xtopt_parse_mport(ext: XtExtension, option: str, text: str) -> tuple[int, int]:
    """libxtables xtopt_parse_mport(): `P`, `P:Q`, an empty part keeping its
    bound (0, 65535), each part xtables_getportbyname(); no order check."""
    bounds, parts = [0, 0xFFFF], text.split(":")
    if len(parts) > 2:
        raise usage_error(f'{ext.name}: Too many components for option "{option}" (max: 2)\n')
    for index, part in enumerate(parts):
        if part:
            bounds[index] = xtables_getportbyname(part)
    return (bounds[0], bounds[0]) if len(parts) == 1 else (bounds[0], bounds[1])


def xtables_getportbyname(name: str) -> int:
    """getaddrinfo(NULL, name)'s port: a whole decimal strtoul() number taken
    as a C int, negative ones looked up as names, the rest cut to 16 bits
    (65536 is port 0); else a service name."""
    found = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)", name)
    if found is not None:
        value = int(found.group(2))
        value = (1 << 64) - 1 if value >= 1 << 64 else -value % (1 << 64) if found.group(1) == "-" else value
        if not value & 0x80000000:
            return value & 0xFFFF
    try:
        return socket.getservbyname(name)
    except OSError:
        raise usage_error(f'Port "{name}" does not resolve to anything.\n') from None


def _not_a_later_fragment(pkt) -> bool:
    """tcp_mt() / udp_mt() with every port allowed: any packet but a non-first fragment."""
    return not pkt.fragoff


def _has_tcp_option(kind: int):
    """xt_tcpudp.c tcp_find_option(): walk the TCP options for `kind` (seen
    even when its length runs past the header)."""
    def find(pkt) -> bool:
        if pkt.tprot != IPPROTO_TCP or pkt.fragoff:
            return False
        buf, th = pkt.buf, pkt.thoff
        return tcp.exthdr_option(buf, th, TcpSegment(buf, th).header_len, kind, 0) != tcp.OPTION_ABSENT
    return find


def flag_names(bits: int) -> str:
    names = [n for i, n in enumerate(TCP_FLAG_NAMES) if bits >> i & 1]
    return ",".join(names) if names else "NONE"


def tcp_flags(text: str) -> int:
    value = 0
    for name in text.split(","):
        if name.upper() not in TCP_FLAGS:
            raise usage_error(f"Unknown TCP flag `{name}'")
        value |= TCP_FLAGS[name.upper()]
    return value


# ------------------------------------------------------------------ icmp

class IcmpMatch(XtMatch):
    """libipt_icmp.c; nft shows a type alone translated, one with a code as `xt match icmp`."""

    name = "icmp"
    OPTIONS = (XtOpt(("--icmp-type",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.type, self.code, self.invert = 0, (0, 0xFF), False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if value in ICMP_NAMES:
            self.type, low, high = ICMP_NAMES[value]
            self.code = (low, high)
        else:
            kind, slash, code = value.partition("/")
            number, code_number = c_strtoul(kind), c_strtoul(code) if slash else 0
            if number is None or number > 255 or code_number is None or code_number > 255:
                raise usage_error(f"Unknown ICMP type `{value}'")
            self.type, self.code = number, (code_number, code_number) if slash else (0, 0xFF)
        self.invert = invert

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if not rule.proto or rule.proto[0] != 1 or rule.proto[1]:
            raise kernel_refusal(chain)  # xt_icmp's checkentry wants -p icmp

    def _text(self) -> str:
        if self.type == 0xFF:
            return "any"
        return str(self.type) + ("" if self.code == (0, 0xFF) else f"/{self.code[0]}")

    def save(self) -> str:
        return f"-m icmp {inv(self.invert)}--icmp-type {self._text()}"

    def listing(self) -> str:  # print_icmptype(): "icmp", " !" when inverted, "type N" (any: 255)
        code = "" if self.code == (0, 0xFF) else f" code {self.code[0]}"
        return f"icmp{' !' if self.invert else ''}type {self.type}{code}"

    def stmts(self, rule) -> list[Stmt]:
        kind, (low, high), invert = self.type, self.code, self.invert
        if kind == 0xFF:
            return [XtCompat("match", "icmp", "ip protocol icmp", lambda ctx: lambda pkt: True, invert=invert)]
        text = None
        if self.code == (0, 0xFF):
            text = f"icmp type {'!= ' if invert else ''}{types.icmp_type.format(kind)}"
        return [XtCompat("match", "icmp", text, lambda ctx: _icmp_match(kind, low, high), invert=invert)]


def _icmp_match(kind: int, low: int, high: int):
    """xt_icmp icmp_match() / icmp6_match(): the type, the code within [low, high]."""
    def match(pkt) -> bool:
        if pkt.fragoff or pkt.thoff < 0 or pkt.thoff + icmp.CODE >= pkt.end:
            return False
        message = IcmpMessage(pkt.buf, pkt.thoff)  # the type and code lie alike in ICMPv6
        return message.type == kind and low <= message.code <= high
    return match


class Icmp6Match(IcmpMatch):
    """libip6t_icmp6.c."""

    name = "icmp6"
    OPTIONS = (XtOpt(("--icmpv6-type",), invert=True, mandatory=True),)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if value in ICMPV6_NAMES:
            self.type, low, high = ICMPV6_NAMES[value]
            self.code = (low, high)
        else:
            kind, slash, code = value.partition("/")
            if not kind.isdigit() or slash and not code.isdigit():
                raise usage_error(f"Unknown ICMPv6 type `{value}'")
            if int(kind) > 255 or slash and int(code) > 255:
                raise usage_error(f"Invalid ICMPv6 type `{value}'")
            self.type, self.code = int(kind), (int(code), int(code)) if slash else (0, 0xFF)
        self.invert = invert

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if not rule.proto or rule.proto[0] != 58 or rule.proto[1]:
            raise kernel_refusal(chain)

    def save(self) -> str:
        code = "" if self.code == (0, 0xFF) else f"/{self.code[0]}"
        return f"-m icmp6 {inv(self.invert)}--icmpv6-type {self.type}{code}"

    def listing(self) -> str:  # icmp6_print(): " ipv6-icmp", then " !" when inverted, then "type N"
        code = "" if self.code == (0, 0xFF) else f" code {self.code[0]}"
        return f"ipv6-icmp{' !' if self.invert else ''}type {self.type}{code}"

    def stmts(self, rule) -> list[Stmt]:
        kind, (low, high), invert = self.type, self.code, self.invert
        text = None
        if self.code == (0, 0xFF):
            text = f"icmpv6 type {'!= ' if invert else ''}{types.icmpv6_type.format(kind)}"
        return [XtCompat("match", "icmp6", text, lambda ctx: _icmp_match(kind, low, high), invert=invert)]


def kernel_refusal(chain: str, error: str = "Invalid argument"):
    """What the kernel's checkentry (or nft's validation) refusing the rule
    looks like: EINVAL unless `error` names another errno's strerror()."""
    return XtError(f"{VERSION}:  RULE_APPEND failed ({error}): rule in chain {chain}", 4)


# ------------------------------------------------------------------ conntrack, state

class StateMatch(XtMatch):
    """-m state --state and -m conntrack (libxt_state.c, libxt_conntrack.c
    revision 3; xt_conntrack.c conntrack_mt())."""

    OPTIONS_STATE = (XtOpt(("--state",), invert=True, mandatory=True),)
    OPTIONS_CONNTRACK = tuple(XtOpt((name,), invert=True) for name in (
        "--ctstate", "--ctproto", "--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst", "--ctorigsrcport",
        "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport", "--ctstatus", "--ctexpire")) + \
        (XtOpt(("--ctdir",)),)
    # save order (conntrack_dump()) and translation order (conntrack3_mt_xlate())
    SAVE_ORDER = ("--ctstate", "--ctproto", "--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst",
                  "--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport", "--ctstatus",
                  "--ctexpire", "--ctdir")
    XLATE_ORDER = ("--ctdir", "--ctstate", "--ctstatus", "--ctexpire", "--ctproto", "--ctorigsrc", "--ctorigdst",
                   "--ctreplsrc", "--ctrepldst", "--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport",
                   "--ctrepldstport")

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.OPTIONS = self.OPTIONS_STATE if name == "state" else self.OPTIONS_CONNTRACK
        self.values: dict[str, tuple] = {}  # option -> (value, invert)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option in ("--state", "--ctstate"):
            states = value.split(",")
            allowed = CT_STATES if option == "--ctstate" else {k: v for k, v in CT_STATES.items() if v < 256}
            bad = next((s for s in states if s.upper() not in allowed), None)
            if bad is not None:
                raise usage_error(f'Bad {option[2:]} "{bad}"')
            parsed = tuple(sorted({s.upper() for s in states}, key=CT_STATE_ORDER.index))
        elif option == "--ctstatus":
            bad = next((s for s in value.split(",") if s.upper() not in CT_STATUS and s.upper() != "NONE"), None)
            if bad is not None:
                raise usage_error(f'Bad ctstatus "{bad}"')
            parsed = tuple(s for s in CT_STATUS if s in value.upper().split(","))
        elif option == "--ctproto":
            parsed = parse_protocol(value)
        elif option in ("--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"):
            parsed = rule.family.parse_address(value)
        elif option.endswith("port"):
            parsed = _uint16_range(self, option, value)
        elif option == "--ctexpire":
            parsed = self.uint_range(option, value, 0xFFFFFFFF)
        else:  # --ctdir
            if value.upper() not in ("ORIGINAL", "REPLY"):
                raise self.bad_value(option, value)
            parsed = value.upper()
        self.values[option] = (parsed, invert)

    def check(self, rule) -> None:
        if self.name == "conntrack" and not self.values:
            raise usage_error("conntrack: At least one option is required")

    def save(self) -> str:
        if self.name == "state":
            states, invert = self.values["--state"]
            return f"-m state {inv(invert)}--state {','.join(states)}"
        parts = ["-m conntrack"]
        for option in self.SAVE_ORDER:
            if option in self.values:
                value, invert = self.values[option]
                parts.append(f"{inv(invert)}{option} {self._save_value(option, value)}")
        return " ".join(parts)

    def _save_value(self, option: str, value) -> str:
        if option in ("--ctstate", "--ctstatus"):
            return ",".join(value) or "NONE"  # print_status(): no bit is NONE
        if option in ("--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"):
            return address_text(value)
        if option.endswith("port") or option == "--ctexpire":
            return _ports_text(*value)
        return str(value)

    def listing(self) -> str:
        if self.name == "state":
            states, invert = self.values["--state"]
            return f"{'! ' if invert else ''}state {','.join(states)}"
        parts = []
        for option in self.SAVE_ORDER:
            if option in self.values:
                value, invert = self.values[option]
                label = option[2:]
                if option == "--ctdir":
                    parts.append(f"ctdir {value}")
                else:
                    parts.append(f"{'! ' if invert else ''}{label} {self._save_value(option, value)}")
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        order = ("--state",) if self.name == "state" else self.XLATE_ORDER
        texts = [self._xlate(o, *self.values[o]) for o in order if o in self.values]
        values = dict(self.values)  # iptables-nft 1.8.9 sends -m state as conntrack revision 3
        return [XtCompat("match", "conntrack", " ".join(texts), lambda ctx: _conntrack_match(values),
                         needs_conntrack=True)]

    def _xlate(self, option: str, value, invert: bool) -> str:
        bang = "! " if invert else ""
        neq = "!= " if invert else ""
        if option in ("--state", "--ctstate"):  # state_xlate_print(): a NAT state says `ct status` alone
            if "SNAT" in value or "DNAT" in value:
                return f"ct status {bang}{'snat' if 'SNAT' in value else 'dnat'}"
            return f"ct state {bang}{','.join(s.lower() for s in value)}"
        if option == "--ctstatus":
            return f"ct status {bang}{','.join(s.lower().replace('_', '-') for s in value)}".rstrip()
        if option == "--ctdir":
            return f"ct direction {value.lower()}"
        if option == "--ctproto":
            return f"ct original protocol {neq}{value}"
        if option == "--ctexpire":
            return f"ct expiration {neq}{_ports_text(*value, sep='-')}"
        direction = "original" if "orig" in option else "reply"
        if option.endswith("port"):
            what = "proto-src" if "src" in option else "proto-dst"
            return f"ct {direction} {what} {neq}{_ports_text(*value, sep='-')}"
        what = "saddr" if option.endswith("src") else "daddr"
        return f"ct {direction} {what} {neq}{address_text(value)}"


def address_text(value) -> str:
    """An (address, mask, family) from XtFamily.parse_address(), as
    conntrack_dump_addr() prints it: a mask whose ones are not contiguous is
    left out (iptables' own loss: the kernel still matches with it)."""
    addr, mask, family = value
    text, plen = family.address_text(addr), family.prefix_length(mask)
    return text if plen in (None, family.bits) else f"{text}/{plen}"


def _uint16_range(ext: XtExtension, option: str, value: str) -> tuple[int, int]:
    """libxt_conntrack's port options (XTTYPE_PORTRC): `P` or `P:Q`, a number
    kept in 16 bits as C keeps it (70000 is 4464), or a service name."""
    low, colon, high = value.partition(":")
    ports = []
    for text in (low, high) if colon else (low,):
        number = c_strtoul(text)
        ports.append(number & 0xFFFF if number is not None else parse_port(text, "tcp"))
    return ports[0], ports[-1]


def _conntrack_match(values: dict):
    """xt_conntrack.c conntrack_mt(): every option given must hold (each inverted alone)."""
    def state_ok(pkt, states) -> bool:
        bits = ct_state_bits(pkt)
        ct = pkt.skb.nfct
        status = ct.status if ct is not None and ct is not UNTRACKED else 0
        want = sum(CT_STATES[s] for s in states if CT_STATES[s] < 256)
        nat = [s for s in states if CT_STATES[s] >= 256]
        nat_ok = any(status & (16 if s == "SNAT" else 32) for s in nat)  # IPS_SRC_NAT / IPS_DST_NAT
        return bool(bits & want) or nat_ok

    def tuple_of(ct, option):
        return ct.original if "orig" in option else ct.reply

    def one(pkt, option, value) -> bool:
        if option in ("--state", "--ctstate"):
            return state_ok(pkt, value)
        ct = pkt.skb.nfct
        if ct is None or ct is UNTRACKED:
            return False
        if option == "--ctstatus":
            return bool(ct.status & sum(CT_STATUS[s] for s in value))
        if option == "--ctdir":
            return ct_direction(pkt.skb.ctinfo) == (0 if value == "ORIGINAL" else 1)
        if option == "--ctproto":
            return ct.original.proto == value
        if option == "--ctexpire":
            left = max(0, int(ct.timeout - pkt.skb.net.clock.now))
            return value[0] <= left <= value[1]
        tup = tuple_of(ct, option)
        if option.endswith("port"):
            port = tup.sport if "src" in option else tup.dport
            return value[0] <= port <= value[1]
        addr, mask, family = value
        have = tup.src if option.endswith("src") else tup.dst
        have = have if isinstance(have, int) else int.from_bytes(have, "big")
        return have & mask == addr

    def match(pkt) -> bool:
        return all(one(pkt, option, value) != invert for option, (value, invert) in values.items())
    return match


# ------------------------------------------------------------------ comment, mark, connmark

class CommentMatch(XtMatch):
    """libxt_comment.c: up to 255 characters (a longer one is cut), no datapath."""

    name = "comment"
    OPTIONS = (XtOpt(("--comment",), mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.text = value[:255]  # xtopt_parse_string() keeps what fits XT_MAX_COMMENT_LEN with its NUL

    def save(self) -> str:
        return f"-m comment --comment {quote(self.text)}"

    def listing(self) -> str:
        return f"/* {self.text} */"

    def stmts(self, rule) -> list[Stmt]:  # nft 1.0.6 prints iptables-nft's comment match as nothing
        return [XtCompat("match", "comment", "", lambda ctx: lambda pkt: True)]


class MarkMatch(XtMatch):
    """libxt_mark.c; native `meta mark` in iptables-nft (add_nft_mark())."""

    name = "mark"
    OPTIONS = (XtOpt(("--mark",), invert=True, mandatory=True),)
    selector = "meta mark"

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask, self.invert = 0, 0xFFFFFFFF, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.value, self.mask = self.markmask(option, value)
        self.invert = invert

    def _mark(self) -> str:
        return f"0x{self.value:x}" + (f"/0x{self.mask:x}" if self.mask != 0xFFFFFFFF else "")

    def save(self) -> str:
        return f"-m {self.name} {inv(self.invert)}--mark {self._mark()}"

    def listing(self) -> str:
        return f"mark match {'! ' if self.invert else ''}{self._mark()}"

    def stmts(self, rule) -> list[Stmt]:
        op = "!=" if self.invert else "=="
        if self.mask == 0xFFFFFFFF:
            return [Match(Meta("mark"), op, Value(self.value))]
        return [Match(Meta("mark"), op, Value(self.value), mask=self.mask)]


class ConnmarkMatch(MarkMatch):
    """libxt_connmark.c; xt_connmark.c connmark_mt(): (ct->mark & mask) == mark."""

    name = "connmark"

    def listing(self) -> str:  # connmark_mt_print(): "connmark match ", "!" when inverted, " 0x..."
        return f"connmark match {'!' if self.invert else ''} {self._mark()}"

    def stmts(self, rule) -> list[Stmt]:
        value, mask, invert = self.value, self.mask, self.invert
        neq = "!= " if invert else ""
        text = f"ct mark {neq}0x{value:x}" if mask == 0xFFFFFFFF else \
            f"ct mark and 0x{mask:x} {'!=' if invert else '=='} 0x{value:x}"
        return [XtCompat("match", "connmark", text, inner=Match(Ct("mark"), "!=" if invert else "==", Value(value),
                                                                mask=None if mask == 0xFFFFFFFF else mask))]


# ------------------------------------------------------------------ multiport

class MultiportMatch(XtMatch):
    """libxt_multiport.c revision 1 (up to 15 ports, a range counting two);
    xt_multiport.c ports_match_v1()."""

    name = "multiport"
    OPTIONS = (XtOpt(("--source-ports", "--sports"), invert=True, excl=("--destination-ports", "--ports")),
               XtOpt(("--destination-ports", "--dports"), invert=True, excl=("--source-ports", "--ports")),
               XtOpt(("--ports",), invert=True, excl=("--source-ports", "--destination-ports")))

    def __init__(self) -> None:
        super().__init__()
        self.flag, self.ports, self.invert = None, [], False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        proto, proto_invert = rule.proto if rule.proto else (0, False)
        if proto == 0:
            raise usage_error("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'")
        if proto_invert or proto not in PORT_PROTOS:
            raise usage_error("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")
        name, count, ports = PORT_PROTOS[proto], 0, []
        for item in value.split(","):
            low_text, colon, high_text = item.partition(":")
            low = parse_port(low_text, name)
            high = parse_port(high_text, name) if colon else low
            if colon and low >= high:  # parse_multi_ports_v1(): a range's ends must rise
                raise usage_error("invalid portrange specified")
            count += 2 if colon else 1
            if count > 15:
                raise usage_error("too many ports specified")
            ports.append((low, high))
        self.flag, self.ports, self.invert = option, ports, invert

    def check(self, rule) -> None:
        if self.flag is None:
            raise usage_error("multiport expection an option")

    def _list(self) -> str:
        return ",".join(_ports_text(low, high) for low, high in self.ports)

    def save(self) -> str:
        option = {"--source-ports": "--sports", "--destination-ports": "--dports"}.get(self.flag, self.flag)
        return f"-m multiport {inv(self.invert)}{option} {self._list()}"

    def listing(self) -> str:
        label = {"--source-ports": "sports", "--destination-ports": "dports", "--ports": "ports"}[self.flag]
        return f"multiport {label} {' !' if self.invert else ''}{self._list()}"

    def stmts(self, rule) -> list[Stmt]:
        ports, flag, invert = tuple(self.ports), self.flag, self.invert
        proto, neq = PORT_PROTOS[rule.proto[0]], "!= " if invert else ""
        items = [_ports_text(low, high, "-") for low, high in ports]
        if flag == "--ports":  # __multiport_xlate_v1(): each stored port (a range's ends apart) paired with
            # any port on the other side; the inversion left out of the text, not of the match
            stored = [port for low, high in ports for port in ((low,) if low == high else (low, high))]
            pairs = [p for port in stored for p in (f"0-65535 . {port}", f"{port} . 0-65535")]
            text = f"{proto} sport . {proto} dport {{ {', '.join(pairs)} }}"
        else:
            what = "sport" if flag == "--source-ports" else "dport"
            values = items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"
            text = f"{proto} {what} {neq}{values}"

        def build(ctx):
            def ports_match(pkt) -> bool:
                if pkt.fragoff or pkt.thoff < 0:
                    return False
                sport, dport = tcp.PORTS.unpack_from(pkt.buf, pkt.thoff)  # where UDP, SCTP, DCCP have them too
                for low, high in ports:
                    if flag != "--destination-ports" and low <= sport <= high:
                        return True
                    if flag != "--source-ports" and low <= dport <= high:
                        return True
                return False
            return ports_match
        return [XtCompat("match", "multiport", text, build, invert=invert)]


# ------------------------------------------------------------------ limit

LIMIT_UNITS = {"sec": ("second", 1), "second": ("second", 1), "s": ("second", 1), "min": ("minute", 60),
               "minute": ("minute", 60), "m": ("minute", 60), "hour": ("hour", 3600), "h": ("hour", 3600),
               "day": ("day", 86400), "d": ("day", 86400)}
XT_LIMIT_SCALE = 10000


class LimitMatch(XtMatch):
    """libxt_limit.c; xt_limit.c limit_mt(): a token bucket of `burst` packets."""

    name = "limit"
    OPTIONS = (XtOpt(("--limit",)), XtOpt(("--limit-burst",)))

    def __init__(self) -> None:
        super().__init__()
        self.rate, self.unit, self.burst = 3, "hour", 5

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--limit-burst":
            self.burst = self.uint(option, value, 0, 10000)
            return
        number, slash, unit = value.partition("/")
        rate = c_strtoul(number)
        unit = unit if slash else "sec"
        if rate is None or rate == 0 or not any(u.startswith(unit) for u in ("second", "minute", "hour", "day")):
            raise usage_error(f"bad rate \"{value}\"'")
        unit = next(u for u in ("second", "minute", "hour", "day") if u.startswith(unit))
        seconds = LIMIT_UNITS[unit][1]
        if seconds * XT_LIMIT_SCALE // rate == 0:
            raise usage_error(f'Rate too fast "{value}"')
        self.rate, self.unit = rate, unit

    def save(self) -> str:
        unit = {"second": "sec", "minute": "min"}.get(self.unit, self.unit)
        burst = f" --limit-burst {self.burst}" if self.burst not in (0, 5) else ""
        return f"-m limit --limit {self.rate}/{unit}{burst}"

    def listing(self) -> str:
        unit = {"second": "sec", "minute": "min"}.get(self.unit, self.unit)
        return f"limit: avg {self.rate}/{unit} burst {self.burst or 5}"  # read back from nft's limit

    def stmts(self, rule) -> list[Stmt]:
        limit = Limit(self.rate, self.unit, self.burst or 5, False)  # nft_limit_init(): burst 0 is the default 5
        return [Xt(limit.text(None), limit)]


# ------------------------------------------------------------------ addrtype

ADDR_TYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE",
              "PROHIBIT", "THROW", "NAT", "XRESOLVE")  # bit i: route type i (libxt_addrtype.c rtn_names)


class AddrtypeMatch(XtMatch):
    """libxt_addrtype.c revision 1; xt_addrtype.c addrtype_mt_v1(): the route
    type of the address (inet_dev_addr_type() / the IPv6 FIB); the
    translation is nft's `fib ... type`."""

    name = "addrtype"
    OPTIONS = (XtOpt(("--src-type",), invert=True), XtOpt(("--dst-type",), invert=True),
               XtOpt(("--limit-iface-in",), arg=False, excl=("--limit-iface-out",)),
               XtOpt(("--limit-iface-out",), arg=False, excl=("--limit-iface-in",)))

    def __init__(self) -> None:
        super().__init__()
        self.src = self.dst = None  # (bits, invert)

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if value is None:
            return
        bits = 0
        for name in value.split(","):
            if name.upper() not in ADDR_TYPES:
                raise usage_error(f'addrtype: bad type "{name}"')
            bits |= 1 << ADDR_TYPES.index(name.upper())
        setattr(self, "src" if option == "--src-type" else "dst", (bits, invert))

    def check(self, rule) -> None:
        if self.src is None and self.dst is None:
            raise usage_error("addrtype: you must specify --src-type or --dst-type")

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if builtin and ("--limit-iface-in" in self.given and chain in ("OUTPUT", "POSTROUTING") or
                        "--limit-iface-out" in self.given and chain in ("PREROUTING", "INPUT")):
            raise kernel_refusal(chain)

    @staticmethod
    def _names(bits: int) -> str:
        return ",".join(n for i, n in enumerate(ADDR_TYPES) if bits >> i & 1)

    def save(self) -> str:
        parts = ["-m addrtype"]
        for option, spec in (("--src-type", self.src), ("--dst-type", self.dst)):
            if spec:
                parts.append(f"{inv(spec[1])}{option} {self._names(spec[0])}")
        parts += [o for o in ("--limit-iface-in", "--limit-iface-out") if o in self.given]
        return " ".join(parts)

    def listing(self) -> str:
        parts = []
        for label, spec in (("src-type", self.src), ("dst-type", self.dst)):
            if spec:
                parts.append(f"{label} {'!' if spec[1] else ''}{self._names(spec[0])}")
        parts += [label for option, label in (("--limit-iface-in", "limit-in"), ("--limit-iface-out", "limit-out"))
                  if option in self.given]
        return "ADDRTYPE match " + " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        texts, checks = [], []
        iface = "iif" if "--limit-iface-in" in self.given else "oif" if "--limit-iface-out" in self.given else None
        for which, spec in (("saddr", self.src), ("daddr", self.dst)):
            if not spec:
                continue
            bits, invert = spec
            names = [n.lower() for i, n in enumerate(ADDR_TYPES) if bits >> i & 1]
            values = names[0] if len(names) == 1 else "{ " + ", ".join(names) + " }"
            key = f"{which} . {iface}" if iface else which
            texts.append(f"fib {key} type {'!= ' if invert else ''}{values}")
            checks.append((which, bits, invert))
        texts = texts[:1]  # addrtype_mt_xlate() translates the source type alone when both are given

        def build(ctx):
            types_of = [(Fib((which, iface) if iface else (which,)).load(ctx), bits, invert)
                        for which, bits, invert in checks]

            def addrtype_mt(pkt) -> bool:
                for route_type, bits, invert in types_of:
                    kind = route_type(pkt)
                    if kind is None or bool(bits >> kind & 1) == invert:
                        return False
                return True
            return addrtype_mt
        return [XtCompat("match", "addrtype", " ".join(texts), build)]


# ------------------------------------------------------------------ statistic

class StatisticMatch(XtMatch):
    """libxt_statistic.c; xt_statistic.c statistic_mt(): random (a 31-bit
    draw under probability * 2^31) or every nth packet (a shared counter)."""

    name = "statistic"
    OPTIONS = (XtOpt(("--mode",), mandatory=True), XtOpt(("--probability",), invert=True, excl=("--every", "--packet")),
               XtOpt(("--every",), invert=True, excl=("--probability",), also=("--packet",)),
               XtOpt(("--packet",), excl=("--probability",), also=("--every",)))

    def __init__(self) -> None:
        super().__init__()
        self.mode, self.probability, self.every, self.packet, self.invert = "random", None, 0, 0, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--mode":
            if value not in ("random", "nth"):
                raise usage_error(f'Bad mode "{value}"')
            self.mode = value
        elif option == "--probability":
            try:
                probability = float(value)
            except ValueError:
                probability = -1.0
            if not 0 <= probability <= 1:
                raise self.error('bad value for option "--probability", or out of range (0-1).\n')
            self.probability, self.invert = probability, invert
        elif option == "--every":
            self.every, self.invert = self.uint(option, value, 1, 0xFFFFFFFF), invert
        else:
            self.packet = self.uint(option, value, 0, 0xFFFFFFFF)

    def check(self, rule) -> None:
        if self.mode == "random" and self.probability is None:
            raise usage_error("--probability must be specified when using random mode")
        if self.mode == "nth" and self.packet > self.every - 1:
            raise usage_error("the --packet p must be 0 <= p <= n-1")

    @property
    def threshold(self) -> int:
        """statistic_parse(): lround(0x80000000 * probability)."""
        return int(0x80000000 * self.probability + 0.5)

    def save(self) -> str:
        if self.mode == "random":
            return f"-m statistic --mode random {inv(self.invert)}--probability {self.threshold / 0x80000000:.11f}"
        return f"-m statistic --mode nth {inv(self.invert)}--every {self.every} --packet {self.packet}"

    def listing(self) -> str:
        if self.mode == "random":
            return f"statistic mode random {'! ' if self.invert else ''}probability {self.threshold / 0x80000000:.11f}"
        packet = f" packet {self.packet}" if self.packet else ""
        return f"statistic mode nth {'! ' if self.invert else ''}every {self.every}{packet}"

    def stmts(self, rule) -> list[Stmt]:
        invert = self.invert
        if self.mode == "random":
            threshold = self.threshold
            text = f"meta random & 2147483647 {'>=' if invert else '<'} {threshold}"

            def build(ctx):  # get_random_u32() & 0x7FFFFFFF: the namespace's seeded generator
                draw = ctx.net.random
                return lambda pkt: draw.getrandbits(31) < threshold
            return [XtCompat("match", "statistic", text, build, invert=invert)]
        last = self.every - 1  # u.nth.every, as libxt_statistic stores it
        counter = [last - self.packet]  # info->master->count, set at checkentry
        text = f"numgen inc mod {self.every} {'!= ' if invert else ''}{self.packet}"

        def build_nth(ctx):
            def nth(pkt) -> bool:  # the count wraps after `every` packets; the packet it wraps on matches
                counter[0] = 0 if counter[0] == last else counter[0] + 1
                return counter[0] == 0
            return nth
        return [XtCompat("match", "statistic", text, build_nth, invert=invert)]


# ------------------------------------------------------------------ length, ttl/hl, tos, dscp

class LengthMatch(XtMatch):
    """libxt_length.c; xt_length.c: the IP datagram's length (IPv6: payload + 40)."""

    name = "length"
    OPTIONS = (XtOpt(("--length",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.low, self.high, self.invert = 0, 0, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        (self.low, self.high), self.invert = self.uint_range(option, value, 0xFFFF), invert

    def save(self) -> str:
        return f"-m length {inv(self.invert)}--length {_ports_text(self.low, self.high)}"

    def listing(self) -> str:
        return f"length {'!' if self.invert else ''}{_ports_text(self.low, self.high)}"

    def stmts(self, rule) -> list[Stmt]:
        low, high, invert = self.low, self.high, self.invert
        text = f"meta length {'!= ' if invert else ''}{_ports_text(low, high, '-')}"
        return [XtCompat("match", "length", text, lambda ctx: lambda pkt: low <= pkt.end - pkt.nh <= high,
                         invert=invert)]


class TtlMatch(XtMatch):
    """libipt_ttl.c / libip6t_hl.c; xt_hl.c: the TTL (hop limit) eq, lt, gt, (inverted eq)."""

    name = "ttl"
    FIELD = "ttl"

    def __init__(self) -> None:
        super().__init__()
        self.op, self.value = "eq", 0
        self.invert = False

    @property
    def OPTIONS(self):  # noqa: N802 - the option table, by the family's name for the field
        prefix = f"--{self.FIELD}-"
        return (XtOpt((prefix + "eq",), invert=True, excl=(prefix + "lt", prefix + "gt")),
                XtOpt((prefix + "lt",), excl=(prefix + "eq", prefix + "gt")),
                XtOpt((prefix + "gt",), excl=(prefix + "eq", prefix + "lt")))

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.op, self.value, self.invert = option[-2:], self.uint(option, value, 0, 255), invert

    def check(self, rule) -> None:
        if not self.given:
            raise usage_error(f"{self.name.upper()} match: You must specify one of `--{self.FIELD}-eq', "
                              f"`--{self.FIELD}-lt', `--{self.FIELD}-gt")

    def save(self) -> str:
        return f"-m {self.name} {inv(self.invert)}--{self.FIELD}-{self.op} {self.value}"

    def listing(self) -> str:
        op = {"eq": "==" if not self.invert else "!=", "lt": "<", "gt": ">"}[self.op]
        return f"{self.name.upper() if self.name == 'ttl' else 'HL'} match {self.name.upper()} {op} {self.value}"

    def stmts(self, rule) -> list[Stmt]:
        op, value, invert = self.op, self.value, self.invert
        proto, fld = ("ip", "ttl") if self.name == "ttl" else ("ip6", "hoplimit")
        text = f"{proto} {fld} " + {"eq": "!= " if invert else "", "lt": "lt ", "gt": "gt "}[op] + str(value)
        offset = ipv4.TTL if self.name == "ttl" else ipv6.HOP_LIMIT

        def build(ctx):
            compare = {"eq": lambda v: v == value, "lt": lambda v: v < value, "gt": lambda v: v > value}[op]
            return lambda pkt: compare(pkt.buf[pkt.nh + offset])
        return [XtCompat("match", self.name, text, build, invert=invert)]


class HlMatch(TtlMatch):
    name = "hl"
    FIELD = "hl"


class DscpMatch(XtMatch):
    """libxt_dscp.c; xt_dscp.c dscp_mt(): the DS field's upper six bits."""

    name = "dscp"
    OPTIONS = (XtOpt(("--dscp",), invert=True, excl=("--dscp-class",)),
               XtOpt(("--dscp-class",), invert=True, excl=("--dscp",)))
    CLASSES = {"CS0": 0, "CS1": 8, "CS2": 16, "CS3": 24, "CS4": 32, "CS5": 40, "CS6": 48, "CS7": 56, "BE": 0,
               "AF11": 10, "AF12": 12, "AF13": 14, "AF21": 18, "AF22": 20, "AF23": 22, "AF31": 26, "AF32": 28,
               "AF33": 30, "AF41": 34, "AF42": 36, "AF43": 38, "EF": 46}  # libxt_dscp_helper.c ds_classes

    def __init__(self) -> None:
        super().__init__()
        self.value, self.invert = 0, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--dscp-class":
            if value.upper() not in self.CLASSES:
                raise usage_error(f"Invalid DSCP value `{value}'")
            self.value = self.CLASSES[value.upper()]
        else:
            self.value = self.uint(option, value, 0, 63)
        self.invert = invert

    def check(self, rule) -> None:
        if not self.given:
            raise usage_error("DSCP match: Parameter --dscp is required")

    def save(self) -> str:
        return f"-m dscp {inv(self.invert)}--dscp 0x{self.value:02x}"

    def listing(self) -> str:
        return f"DSCP match {'!' if self.invert else ''}0x{self.value:02x}"

    def stmts(self, rule) -> list[Stmt]:
        value, invert = self.value, self.invert
        proto = "ip" if rule.family.nft_family == "ip" else "ip6"
        text = f"{proto} dscp {'!= ' if invert else ''}0x{value:02x}"
        read = _ds_field(proto)
        return [XtCompat("match", "dscp", text, lambda ctx: lambda pkt: read(pkt) >> 2 == value, invert=invert)]


def _ds_field(proto: str):
    """The DS field (IPv4 TOS byte, IPv6 traffic class) of a packet."""
    if proto == "ip":
        return lambda pkt: Ipv4Packet(pkt.buf, pkt.nh).tos
    return lambda pkt: Ipv6Packet(pkt.buf, pkt.nh).tclass


TOS_NAMES = {"Minimize-Delay": 0x10, "Maximize-Throughput": 0x08, "Maximize-Reliability": 0x04,
             "Minimize-Cost": 0x02, "Normal-Service": 0x00}  # tos_values.c


def parse_tos(ext: XtExtension, option: str, value: str, default_mask: int) -> tuple[int, int]:
    """tos_parse_numeric() / tos_parse_symbolic(): `VALUE[/MASK]` or a name (mask 0x3f)."""
    number, slash, mask = value.partition("/")
    numbers = (c_strtoul(number), c_strtoul(mask) if slash else default_mask)
    if all(n is not None and n <= 0xFF for n in numbers):
        return numbers[0], numbers[1]
    if value in TOS_NAMES:
        return TOS_NAMES[value], 0x3F
    raise usage_error(f'Symbolic name "{value}" is unknown')


class TosMatch(XtMatch):
    """libxt_tos.c revision 1; xt_dscp.c tos_mt(): (tos & mask) == value.
    nft 1.0.6 has no translation for it: `xt match tos`."""

    name = "tos"
    OPTIONS = (XtOpt(("--tos",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask, self.invert = 0, 0xFF, False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        (self.value, self.mask), self.invert = parse_tos(self, option, value, 0xFF), invert

    def save(self) -> str:
        return f"-m tos {inv(self.invert)}--tos 0x{self.value:02x}/0x{self.mask:02x}"

    def listing(self) -> str:
        return f"tos match{'!' if self.invert else ''}0x{self.value:02x}/0x{self.mask:02x}"

    def stmts(self, rule) -> list[Stmt]:
        value, mask = self.value, self.mask
        read = _ds_field("ip" if rule.family.nft_family == "ip" else "ip6")
        return [XtCompat("match", "tos", None, lambda ctx: lambda pkt: read(pkt) & mask == value,
                         invert=self.invert)]


# ------------------------------------------------------------------ owner

SOCKET_OWNER = 0  # the mock's sockets are root's (uid and gid 0): the harness opens them as root


class OwnerMatch(XtMatch):
    """libxt_owner.c revision 1; xt_owner.c owner_mt(): the sending socket's
    uid/gid (output and postrouting only: the kernel refuses it elsewhere)."""

    name = "owner"
    OPTIONS = (XtOpt(("--uid-owner",), invert=True), XtOpt(("--gid-owner",), invert=True),
               XtOpt(("--socket-exists",), arg=False, invert=True), XtOpt(("--suppl-groups",), arg=False))
    IDS = {"--uid-owner": {"root": 0, "daemon": 1, "bin": 2, "sys": 3, "nobody": 65534},
           "--gid-owner": {"root": 0, "daemon": 1, "bin": 2, "sys": 3, "adm": 4, "nogroup": 65534}}

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, tuple] = {}

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--suppl-groups" and "--gid-owner" not in self.values:
            raise self.bad_value(option, "you need to use --gid-owner first")
        if value is None:
            self.values[option] = (None, invert)
            return
        low_text, dash, high_text = value.partition("-")
        ids = []
        for text in (low_text, high_text) if dash else (low_text,):
            number = self.IDS[option].get(text, c_strtoul(text))
            if number is None or number > 0xFFFFFFFE:
                raise self.bad_value(option, value)
            ids.append(number)
        self.values[option] = ((ids[0], ids[-1]), invert)

    def check(self, rule) -> None:
        if not self.values:
            raise usage_error("owner: At least one of --uid-owner, --gid-owner or --socket-exists is required")

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if builtin and chain not in ("OUTPUT", "POSTROUTING"):
            raise kernel_refusal(chain)

    def save(self) -> str:
        parts = ["-m owner"]
        for option in ("--uid-owner", "--gid-owner", "--socket-exists", "--suppl-groups"):
            if option in self.values:
                ids, invert = self.values[option]
                parts.append(f"{inv(invert)}{option}" + ("" if ids is None else f" {_ports_text(*ids, sep='-')}"))
        return " ".join(parts)

    def listing(self) -> str:
        parts = []
        for option, label in (("--uid-owner", "owner UID match"), ("--gid-owner", "owner GID match"),
                              ("--socket-exists", "owner socket exists"), ("--suppl-groups", "incl. suppl. groups")):
            if option in self.values:
                ids, invert = self.values[option]
                parts.append(("! " if invert else "") + label + ("" if ids is None else f" {_ports_text(*ids, sep='-')}"))
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        texts, checks = [], []
        for option, key in (("--uid-owner", "skuid"), ("--gid-owner", "skgid")):
            if option in self.values:
                (low, high), invert = self.values[option]
                texts.append(f"{key} {'!= ' if invert else ''}{_ports_text(low, high, '-')}")
                checks.append((key, low, high, invert))
        exists = self.values.get("--socket-exists")
        if exists is not None:
            texts.append("meta skuid " + ("missing" if exists[1] else "exists"))  # no translation in 1.8.9

        def build(ctx):
            def owner_mt(pkt) -> bool:
                sk = pkt.skb.sk
                if exists is not None and (sk is None) != exists[1]:
                    return False
                for key, low, high, invert in checks:
                    if sk is None or (low <= SOCKET_OWNER <= high) == invert:
                        return False
                return True
            return owner_mt
        # owner_mt_xlate(): one option; --suppl-groups has none. The mock's sockets are root's, with no
        # supplementary groups: --suppl-groups (xt_owner's groups_search()) adds none to the gid checked
        text = texts[0] if len(self.values) == 1 and exists is None else None
        return [XtCompat("match", "owner", text, build)]


# ------------------------------------------------------------------ registry

def parse_protocol(text: str) -> int:
    """xtables_parse_protocol(): a number, an /etc/protocols name, or a builtin one."""
    number = c_strtoul(text)
    if number is not None and number <= 255:
        return number
    if text.lower() in PROTOCOL_NUMBERS:
        return PROTOCOL_NUMBERS[text.lower()]
    raise usage_error(f'unknown protocol "{text}" specified')


# Debian netbase's /etc/protocols (getprotobynumber's first name; the aliases
# getprotobyname knows), and xtables_chain_protos (all, mh, ipv6-mh, icmpv6)
PROTOCOL_NAMES = {1: "icmp", 2: "igmp", 3: "ggp", 4: "ipencap", 5: "st", 6: "tcp", 8: "egp", 9: "igp", 12: "pup",
                  17: "udp", 20: "hmp", 22: "xns-idp", 27: "rdp", 29: "iso-tp4", 33: "dccp", 36: "xtp", 37: "ddp",
                  38: "idpr-cmtp", 41: "ipv6", 43: "ipv6-route", 44: "ipv6-frag", 45: "idrp", 46: "rsvp",
                  47: "gre", 50: "esp", 51: "ah", 57: "skip", 58: "ipv6-icmp", 59: "ipv6-nonxt", 60: "ipv6-opts",
                  73: "rspf", 81: "vmtp", 88: "eigrp", 89: "ospf", 93: "ax.25", 94: "ipip", 97: "etherip",
                  98: "encap", 103: "pim", 108: "ipcomp", 112: "vrrp", 115: "l2tp", 124: "isis", 132: "sctp",
                  133: "fc", 135: "mobility-header", 136: "udplite", 137: "mpls-in-ip", 138: "manet", 139: "hip",
                  140: "shim6", 141: "wesp", 142: "rohc", 143: "ethernet"}
PROTOCOL_NUMBERS = {name: number for number, name in PROTOCOL_NAMES.items()}
PROTOCOL_NUMBERS.update({"all": 0, "ip": 0, "hopopt": 0, "ipsec-esp": 50, "ipsec-ah": 51, "icmpv6": 58,
                         "mh": 135, "ipv6-mh": 135, "ospfigp": 89, "cphb": 73, "ip-encap": 4})

MATCHES = {"tcp": lambda: PortMatch("tcp"), "udp": lambda: PortMatch("udp"), "icmp": IcmpMatch,
           "icmp6": Icmp6Match, "state": lambda: StateMatch("state"), "conntrack": lambda: StateMatch("conntrack"),
           "comment": CommentMatch, "mark": MarkMatch, "connmark": ConnmarkMatch, "multiport": MultiportMatch,
           "limit": LimitMatch, "addrtype": AddrtypeMatch, "statistic": StatisticMatch, "length": LengthMatch,
           "ttl": TtlMatch, "hl": HlMatch, "dscp": DscpMatch, "tos": TosMatch, "owner": OwnerMatch}
FAMILY_ONLY = {"icmp": "ip", "ttl": "ip", "icmp6": "ip6", "hl": "ip6"}  # libipt_*/libip6t_* extensions
# extensions iptables 1.8.9 ships that the mock does not model (yet): named, not refused as unknown
KNOWN_UNMODELLED = {"ah", "among", "devgroup", "ipvs", "l2tp", "mh",
                    "srh", "udplite"}
