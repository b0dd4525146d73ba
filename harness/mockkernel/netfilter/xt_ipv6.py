"""ip6tables' extension-header matches (extensions/libip6t_frag.c, libip6t_rt.c,
libip6t_hbh.c, libip6t_dst.c, libip6t_ipv6header.c, libip6t_eui64.c) and
their kernel modules (net/ipv6/netfilter/ip6t_frag.c, ip6t_rt.c, ip6t_hbh.c,
ip6t_ipv6header.c, ip6t_eui64.c), each finding its header with
ipv6_find_hdr() as the kernel does (ipv6/exthdrs_core.py).
"""
from __future__ import annotations

from harness.mockkernel.ipv6.exthdrs_core import ipv6_find_hdr
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import XtMatch, _ports_text, inv, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtError, XtOpt, c_strtoul, usage_error
from harness.mockkernel.wire.ethernet import ETH_HLEN
from harness.mockkernel.wire.ethernet import HEADER as ETHERNET_HEADER
from harness.mockkernel.wire.ipv6 import (EXTENSION_HEADERS, FRAG_HEADER, FRAG_HLEN, NEXTHDR_AUTH, NEXTHDR_DEST,
                                          NEXTHDR_ESP, NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_NONE, NEXTHDR_ROUTING,
                                          OPT_HDRLEN, OPT_HEADER, OPT_NEXTHDR, RT_HEADER, Ipv6Packet, exthdr_len)

IP6_MF = 0x0001


def _header(pkt, nexthdr: int) -> int | None:
    """The offset of the packet's `nexthdr` extension header, or None."""
    found, offset, _, _ = ipv6_find_hdr(pkt.buf, pkt.nh, pkt.end, nexthdr)
    return offset if found >= 0 else None


def _range(ext: XtMatch, option: str, value: str) -> tuple[int, int]:
    """`N` or `N:M` (32-bit), as libip6t_frag's and libip6t_rt's XTTYPE_UINT32RC."""
    low, colon, high = value.partition(":")
    numbers = [c_strtoul(low) if low else 0, (c_strtoul(high) if high else 0xFFFFFFFF) if colon else None]
    numbers[1] = numbers[0] if numbers[1] is None else numbers[1]
    if any(n is None or n > 0xFFFFFFFF for n in numbers):
        raise ext.error(f'bad value for option "{option}", or out of range (0-4294967295).\n')
    return numbers[0], numbers[1]


class FragMatch(XtMatch):
    """-m frag; ip6t_frag.c frag_mt6(): the fragment header's id in a range,
    first (offset 0), more (MF set), last (MF clear), reserved bits clear.
    The kernel ignores --fraglen (the header has no length)."""

    name = "frag"
    OPTIONS = (XtOpt(("--fragid",), invert=True), XtOpt(("--fraglen",), invert=True),
               XtOpt(("--fragres",), arg=False), XtOpt(("--fragfirst",), arg=False),
               XtOpt(("--fragmore",), arg=False, excl=("--fraglast",)),
               XtOpt(("--fraglast",), arg=False, excl=("--fragmore",)))

    def __init__(self) -> None:
        super().__init__()
        self.ids, self.ids_invert, self.length = (0, 0xFFFFFFFF), False, None

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--fragid":
            self.ids, self.ids_invert = _range(self, option, value), invert
        elif option == "--fraglen":
            self.length = (self.uint(option, value, 0, 0xFFFFFFFF), invert)

    def save(self) -> str:
        parts = ["-m frag"]
        if "--fragid" in self.given:
            parts.append(f"{inv(self.ids_invert)}--fragid {_ports_text(*self.ids)}")
        if self.length is not None:
            parts.append(f"{inv(self.length[1])}--fraglen {self.length[0]}")
        parts += [o for o in ("--fragres", "--fragfirst", "--fragmore", "--fraglast") if o in self.given]
        return " ".join(parts)

    def listing(self) -> str:  # frag_print(): "frag ", the ids, then each part with a space before it
        ids = ""
        if "--fragid" in self.given:
            low, high = self.ids
            ids = f"id:{'!' if self.ids_invert else ''}{low}" if low == high else \
                f"ids:{'!' if self.ids_invert else ''}{low}:{high}"
        parts = [f"length:{'!' if self.length[1] else ''}{self.length[0]}"] if self.length is not None else []
        parts += [label for option, label in (("--fragres", "reserved"), ("--fragfirst", "first"),
                                              ("--fragmore", "more"), ("--fraglast", "last")) if option in self.given]
        return "frag " + ids + "".join(f" {part}" for part in parts)

    def stmts(self, rule) -> list[Stmt]:
        (low, high), invert, given = self.ids, self.ids_invert, set(self.given)
        texts = []
        if "--fragid" in given:
            texts.append(f"frag id {'!= ' if invert else ''}{_ports_text(low, high, '-')}")
        texts += [text for option, text in (("--fragres", "frag reserved 1"), ("--fragfirst", "frag frag-off 0"),
                                            ("--fragmore", "frag more-fragments 1"),
                                            ("--fraglast", "frag more-fragments 0")) if option in given]

        def build(ctx):
            def frag_mt6(pkt) -> bool:
                at = _header(pkt, NEXTHDR_FRAGMENT)
                if at is None or at + FRAG_HLEN > pkt.end:
                    return False
                _, frag_off, ident = FRAG_HEADER.unpack_from(pkt.buf, at)
                reserved = pkt.buf[at + OPT_HDRLEN]  # struct frag_hdr's reserved byte lies where hdrlen would
                return ((low <= ident <= high) != invert
                        and not ("--fragres" in given and (reserved or frag_off & 0x6))
                        and not ("--fragfirst" in given and frag_off & ~0x7)
                        and not ("--fragmore" in given and not frag_off & IP6_MF)
                        and not ("--fraglast" in given and frag_off & IP6_MF))
            return frag_mt6
        return [XtCompat("match", "frag", " ".join(texts) or None, build)]


class RtMatch(XtMatch):
    """-m rt; ip6t_rt.c rt_mt6(): the routing header's type, segments left
    (a range) and length in bytes; type 0's address list is not modelled."""

    name = "rt"
    OPTIONS = (XtOpt(("--rt-type",), invert=True), XtOpt(("--rt-segsleft",), invert=True),
               XtOpt(("--rt-len",), invert=True))
    UNMODELLED = ("--rt-0-res", "--rt-0-addrs", "--rt-0-not-strict")

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, tuple] = {}

    def option(self, word: str) -> XtOpt | None:
        if word in self.UNMODELLED:
            raise XtError(f"ip6tables -m rt {word} is not modelled by the mock kernel", 1)
        return super().option(word)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--rt-segsleft":
            self.values[option] = (_range(self, option, value), invert)
        else:
            self.values[option] = (self.uint(option, value, 0, 0xFFFFFFFF), invert)

    def save(self) -> str:
        parts = ["-m rt"]
        for option in ("--rt-type", "--rt-segsleft", "--rt-len"):
            if option in self.values:
                value, invert = self.values[option]
                text = _ports_text(*value) if option == "--rt-segsleft" else str(value)
                parts.append(f"{inv(invert)}{option} {text}")
        return " ".join(parts)

    def listing(self) -> str:
        parts = ["rt"]
        for option, label in (("--rt-type", "type:"), ("--rt-segsleft", "segsleft"), ("--rt-len", "length:")):
            if option in self.values:
                value, invert = self.values[option]
                bang = "!" if invert else ""
                if option == "--rt-segsleft":
                    low, high = value
                    parts.append(f"segsleft:{bang}{low}" if low == high else f"segslefts:{bang}{low}:{high}")
                else:
                    parts.append(f"{label}{bang}{value}")
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        values = dict(self.values)
        texts = []
        for option, what in (("--rt-type", "type"), ("--rt-segsleft", "seg-left"), ("--rt-len", "hdrlength")):
            if option in values:
                value, invert = values[option]
                text = _ports_text(*value, sep="-") if option == "--rt-segsleft" else str(value)
                texts.append(f"rt {what} {'!= ' if invert else ''}{text}")

        def build(ctx):
            def rt_mt6(pkt) -> bool:
                at = _header(pkt, NEXTHDR_ROUTING)
                if at is None or at + RT_HEADER.size > pkt.end:
                    return False
                _, _, kind, segments_left = RT_HEADER.unpack_from(pkt.buf, at)
                have = {"--rt-type": kind, "--rt-len": exthdr_len(pkt.buf, at, NEXTHDR_ROUTING)}
                for option, (value, invert) in values.items():
                    if option == "--rt-segsleft":
                        ok = value[0] <= segments_left <= value[1]
                    else:
                        ok = have[option] == value
                    if ok == invert:
                        return False
                return True
            return rt_mt6
        return [XtCompat("match", "rt", " ".join(texts) or None, build)]


class OptsMatch(XtMatch):
    """-m hbh / -m dst; ip6t_hbh.c hbh_mt6(): the options header's length in
    bytes; matching single options (--hbh-opts) is not modelled."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.length = name, None
        self.OPTIONS = (XtOpt((f"--{name}-len",), invert=True),)
        self.nexthdr = NEXTHDR_HOP if name == "hbh" else NEXTHDR_DEST

    def option(self, word: str) -> XtOpt | None:
        if word == f"--{self.name}-opts":
            raise XtError(f"ip6tables -m {self.name} {word} is not modelled by the mock kernel", 1)
        return super().option(word)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.length = (self.uint(option, value, 0, 0xFFFFFFFF), invert)

    def save(self) -> str:
        if self.length is None:
            return f"-m {self.name}"
        return f"-m {self.name} {inv(self.length[1])}--{self.name}-len {self.length[0]}"

    def listing(self) -> str:
        if self.length is None:
            return self.name
        return f"{self.name} length:{'!' if self.length[1] else ''}{self.length[0]}"

    def stmts(self, rule) -> list[Stmt]:
        length, nexthdr = self.length, self.nexthdr
        text = None  # hbh_mt6_xlate(): hbh's length alone has a translation
        if length is not None and self.name == "hbh":
            text = f"hbh hdrlength {'!= ' if length[1] else ''}{length[0]}"

        def build(ctx):
            def hbh_mt6(pkt) -> bool:
                at = _header(pkt, nexthdr)
                if at is None or at + OPT_HEADER.size > pkt.end:
                    return False
                return length is None or (exthdr_len(pkt.buf, at, nexthdr) == length[0]) != length[1]
            return hbh_mt6
        return [XtCompat("match", self.name, text, build)]


# ip6t_ipv6header.h MASK_*: (bit, the name libip6t_ipv6header saves, the names it reads)
IPV6_HEADERS = ((128, "hop-by-hop", ("hop-by-hop", "hop")), (64, "ipv6-opts", ("ipv6-opts", "dst")),
                (32, "ipv6-route", ("ipv6-route", "route")), (16, "ipv6-frag", ("ipv6-frag", "frag")),
                (8, "ah", ("ah", "auth")), (4, "esp", ("esp",)), (2, "ipv6-nonxt", ("ipv6-nonxt", "none")),
                (1, "protocol", ("protocol", "prot")))
HEADER_BITS = {NEXTHDR_HOP: 128, NEXTHDR_DEST: 64, NEXTHDR_ROUTING: 32, NEXTHDR_FRAGMENT: 16, NEXTHDR_AUTH: 8,
               NEXTHDR_ESP: 4, NEXTHDR_NONE: 2}


class Ipv6headerMatch(XtMatch):
    """-m ipv6header; ip6t_ipv6header.c ipv6header_mt6(): the set of headers
    the packet carries (`protocol`: an upper-layer one) is exactly the one
    given, or with --soft holds every one given."""

    name = "ipv6header"
    OPTIONS = (XtOpt(("--header",), invert=True, mandatory=True), XtOpt(("--soft",), arg=False))

    def __init__(self) -> None:
        super().__init__()
        self.bits, self.invert = 0, False

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option != "--header":
            return
        for name in value.split(","):
            number = c_strtoul(name)
            bit = HEADER_BITS.get(number, 1 if number is not None else None) if number is not None else \
                next((b for b, _, names in IPV6_HEADERS if name in names), None)
            if bit is None:
                raise usage_error(f"unknown header `{name}' specified")
            self.bits |= bit
        self.invert = invert

    def _names(self) -> str:
        return ",".join(saved for bit, saved, _ in IPV6_HEADERS if self.bits & bit)

    def save(self) -> str:
        soft = " --soft" if "--soft" in self.given else ""
        return f"-m ipv6header {inv(self.invert)}--header {self._names()}{soft}"

    def listing(self) -> str:
        soft = " soft" if "--soft" in self.given else ""
        return f"ipv6header flags:{'!' if self.invert else ''}0x{self.bits:02X}{soft}"

    def stmts(self, rule) -> list[Stmt]:
        bits, invert, soft = self.bits, self.invert, "--soft" in self.given

        def build(ctx):
            def ipv6header_mt6(pkt) -> bool:
                buf, header = pkt.buf, Ipv6Packet(pkt.buf, pkt.nh)
                at, nexthdr, seen = header.payload_offset, header.nexthdr, 0
                while nexthdr in EXTENSION_HEADERS and nexthdr != NEXTHDR_NONE or nexthdr == NEXTHDR_ESP:
                    seen |= HEADER_BITS[nexthdr]
                    if nexthdr == NEXTHDR_ESP or at + OPT_HEADER.size > pkt.end:
                        break
                    following = buf[at + OPT_NEXTHDR]
                    at += FRAG_HLEN if nexthdr == NEXTHDR_FRAGMENT else exthdr_len(buf, at, nexthdr)
                    nexthdr = following
                if nexthdr == NEXTHDR_NONE:
                    seen |= HEADER_BITS[NEXTHDR_NONE]
                elif nexthdr != NEXTHDR_ESP:
                    seen |= 1
                if soft:
                    return not ((seen ^ bits ^ (bits if invert else 0)) & bits)
                return (seen != bits) if invert else (seen == bits)
            return ipv6header_mt6
        return [XtCompat("match", "ipv6header", None, build)]


class Eui64Match(XtMatch):
    """-m eui64; ip6t_eui64.c eui64_mt6(): the source address's interface
    identifier is the EUI-64 of the frame's source MAC (prerouting, input
    and forward only: the kernel refuses it elsewhere)."""

    name = "eui64"

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if builtin and chain not in ("PREROUTING", "INPUT", "FORWARD"):
            raise kernel_refusal(chain)

    def save(self) -> str:
        return "-m eui64"

    def listing(self) -> str:
        return ""  # eui64 prints nothing

    def stmts(self, rule) -> list[Stmt]:
        def build(ctx):
            def eui64_mt6(pkt) -> bool:
                skb = pkt.skb
                if skb.mac_header + ETH_HLEN > skb.network_header:
                    return False
                _, source, _ = ETHERNET_HEADER.unpack_from(pkt.buf, skb.mac_header)
                eui64 = bytes([source[0] ^ 0x02]) + source[1:3] + b"\xff\xfe" + source[3:6]  # the U/L bit flipped
                return Ipv6Packet(pkt.buf, pkt.nh).saddr[8:] == eui64
            return eui64_mt6
        return [XtCompat("match", "eui64", None, build)]


IPV6_MATCHES = {"frag": FragMatch, "rt": RtMatch, "hbh": lambda: OptsMatch("hbh"), "dst": lambda: OptsMatch("dst"),
                "ipv6header": Ipv6headerMatch, "eui64": Eui64Match}
