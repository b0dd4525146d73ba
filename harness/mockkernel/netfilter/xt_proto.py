"""iptables 1.8.9 matches on a transport header that iptables-nft sends as
xt matches (nft_compat): esp and ipcomp (libxt_esp.c, libxt_ipcomp.c; the
kernel's xt_esp.c, xt_ipcomp.c), ah (libipt_ah.c; ipt_ah.c), sctp
(libxt_sctp.c; xt_sctp.c) and dccp (libxt_dccp.c; xt_dccp.c). Each is
registered for its protocol (xt_match.proto): the kernel's xt_check_match()
refuses it in a rule whose -p is not that protocol. `nft list` shows the
extension's translation (its xlate()), `xt match NAME` when it has none.

Left out: the hotdrop of a header cut short (the packet is dropped by the
kernel; here the match just does not match).
"""
from __future__ import annotations

import socket

from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import XtMatch, inv, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, c_strtoul, usage_error
from harness.mockkernel.wire import dccp, ipsec, sctp
from harness.mockkernel.wire.dccp import DccpHeader
from harness.mockkernel.wire.ipsec import AuthHeader, CompHeader, EspHeader
from harness.mockkernel.wire.sctp import SctpPacket

IPPROTO_DCCP, IPPROTO_ESP, IPPROTO_AH, IPPROTO_COMP, IPPROTO_SCTP = 33, 50, 51, 108, 132


class ProtoMatch(XtMatch):
    """A match the kernel registers for one protocol (xt_match.proto)."""

    PROTO = 0

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        """xt_check_match(): `-p` must be the match's protocol, not inverted."""
        if not rule.proto or rule.proto[0] != self.PROTO or rule.proto[1]:
            raise kernel_refusal(chain)


# ------------------------------------------------------------------ esp, ah, ipcomp

class SpiMatch(ProtoMatch):
    """--espspi / --ahspi / --ipcompspi [!] MIN[:MAX] (XTTYPE_UINT32RC); the
    kernel's spi_match(): MIN <= spi <= MAX, inverted with `!`."""

    def __init__(self, name: str, proto: int, option: str, read, xlate: str, hdrres: bool = False) -> None:
        super().__init__()
        self.name, self.PROTO, self.read, self.xlate = name, proto, read, xlate
        self.OPTIONS = (XtOpt((option,), invert=True),) + ((XtOpt(("--compres",), arg=False),) if hdrres else ())
        self.option_name = option
        self.spis, self.invert, self.hdrres = (0, 0xFFFFFFFF), False, False

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--compres":
            self.hdrres = True
            return
        self.spis, self.invert = self.uint_range(option, value, 0xFFFFFFFF), invert

    @property
    def _all(self) -> bool:
        return self.spis == (0, 0xFFFFFFFF)

    def _spis(self, sep: str) -> str:
        low, high = self.spis
        return str(low) if low == high else f"{low}{sep}{high}"

    def save(self) -> str:
        """esp_save(): nothing for the whole range (inverted or not)."""
        out = f"-m {self.name}"
        if not self._all:
            out += f" {inv(self.invert)}{self.option_name} {self._spis(':')}"
        return out + (" --compres" if self.hdrres else "")

    def listing(self) -> str:
        low, high = self.spis
        spis = ""
        if not self._all or self.invert:
            bang = "!" if self.invert else ""
            spis = f"spi:{bang}{low}" if low == high else f"spis:{bang}{low}:{high}"
        label = {"esp": "esp", "ah": "ah", "ipcomp": "comp"}[self.name]
        return " ".join(p for p in (label, spis, "reserved" if self.hdrres else "") if p)

    def translation(self) -> str:
        if self.name == "ipcomp":  # comp_xlate(): always the cpi
            return f"comp cpi {'!= ' if self.invert else ''}{self._spis('-')}"
        if self._all:
            return ""
        return f"{self.xlate} spi {'!= ' if self.invert else ''}{self._spis('-')}"

    def stmts(self, rule) -> list[Stmt]:
        (low, high), read, invert = self.spis, self.read, self.invert

        def build(ctx):
            def spi_mt(pkt) -> bool:
                """esp_mt(), ah_mt(), comp_mt(): never a later fragment nor a header cut short."""
                if pkt.fragoff:
                    return False
                spi = read(pkt.buf, pkt.thoff, pkt.end)
                return spi is not None and (low <= spi <= high) != invert
            return spi_mt
        return [XtCompat("match", self.name, self.translation(), build)]


def _esp_spi(buf: bytearray, off: int, end: int) -> int | None:
    """The SPI the kernel reads through skb_header_pointer(), None when the header is cut short."""
    return EspHeader(buf, off).spi if off + ipsec.ESP_HLEN <= end else None


def _ah_spi(buf: bytearray, off: int, end: int) -> int | None:
    return AuthHeader(buf, off).spi if off + ipsec.AH_HLEN <= end else None


def _ipcomp_cpi(buf: bytearray, off: int, end: int) -> int | None:
    return CompHeader(buf, off).cpi if off + ipsec.COMP_HLEN <= end else None


def esp_match() -> SpiMatch:
    return SpiMatch("esp", IPPROTO_ESP, "--espspi", _esp_spi, "esp")


def ah_match() -> SpiMatch:
    return SpiMatch("ah", IPPROTO_AH, "--ahspi", _ah_spi, "ah")


def ipcomp_match() -> SpiMatch:
    return SpiMatch("ipcomp", IPPROTO_COMP, "--ipcompspi", _ipcomp_cpi, "comp", hdrres=True)


# ------------------------------------------------------------------ ports (sctp, dccp)

def _getportbyname(text: str, proto: str | None) -> int | None:
    """xtables_getportbyname() (proto None) / xtables_parse_port(): a number
    up to 65535 or a service name; None when neither."""
    number = c_strtoul(text)
    if number is not None and number <= 65535:
        return number
    try:
        return socket.getservbyname(text, proto) if proto else socket.getservbyname(text)
    except OSError:
        return None


def _ports_save(option: str, ports: tuple) -> str:
    low, high, invert = ports
    return f"{inv(invert)}{option} {low}" + ("" if low == high else f":{high}")


def _ports_listing(name: str, ports: tuple) -> str:
    """print_ports(): nothing for 0:65535 not inverted."""
    low, high, invert = ports
    if (low, high) == (0, 0xFFFF) and not invert:
        return ""
    bang = "!" if invert else ""
    return f"{name}:{bang}{low}" if low == high else f"{name}s:{bang}{low}:{high}"


def _ports_xlate(proto: str, field: str, ports: tuple) -> str:
    low, high, invert = ports
    return f"{proto} {field}{' !=' if invert else ''} {low}" + ("" if low == high else f"-{high}")


def _in(value: int, ports: tuple | None) -> bool:
    """SCCHECK()/DCCHECK() of a port: true when not asked, else in range xor inverted."""
    return ports is None or (ports[0] <= value <= ports[1]) != ports[2]


# ------------------------------------------------------------------ sctp

# sctp_chunk_names[]: name, chunk type, valid flags, nft's name (in the table's order)
SCTP_CHUNKS = (("DATA", 0, "----IUBE", "data"), ("INIT", 1, "--------", "init"),
               ("INIT_ACK", 2, "--------", "init-ack"), ("SACK", 3, "--------", "sack"),
               ("HEARTBEAT", 4, "--------", "heartbeat"), ("HEARTBEAT_ACK", 5, "--------", "heartbeat-ack"),
               ("ABORT", 6, "-------T", "abort"), ("SHUTDOWN", 7, "--------", "shutdown"),
               ("SHUTDOWN_ACK", 8, "--------", "shutdown-ack"), ("ERROR", 9, "--------", "error"),
               ("COOKIE_ECHO", 10, "--------", "cookie-echo"), ("COOKIE_ACK", 11, "--------", "cookie-ack"),
               ("ECN_ECNE", 12, "--------", "ecne"), ("ECN_CWR", 13, "--------", "cwr"),
               ("SHUTDOWN_COMPLETE", 14, "-------T", "shutdown-complete"), ("I_DATA", 64, "----IUBE", "i-data"),
               ("RE_CONFIG", 130, "--------", "re-config"), ("PAD", 132, "--------", "pad"),
               ("ASCONF", 193, "--------", "asconf"), ("ASCONF_ACK", 128, "--------", "asconf-ack"),
               ("FORWARD_TSN", 192, "--------", "forward-tsn"), ("I_FORWARD_TSN", 194, "--------", "i-forward-tsn"))
SCTP_MATCH_TYPES = ("any", "all", "only")  # SCTP_CHUNK_MATCH_ANY, _ALL, _ONLY
XT_NUM_SCTP_FLAGS = 4


class SctpMatch(ProtoMatch):
    """libxt_sctp.c (old-style parse, its own messages); xt_sctp.c sctp_mt():
    the ports, then the chunks walked as match_packet() walks them.

    iptables keeps a chunk's flags under the chunk's index in its name table
    (save_chunk_flag_info(..., i, ...)) and prints and the kernel matches
    them under the chunk type: the two agree only for the first fifteen
    chunks, as here."""

    name = "sctp"
    PROTO = IPPROTO_SCTP
    OPTIONS = (XtOpt(("--sport", "--source-port"), invert=True, multi=True),
               XtOpt(("--dport", "--destination-port"), invert=True, multi=True),
               XtOpt(("--chunk-types",), invert=True, multi=True))

    def __init__(self) -> None:
        super().__init__()
        self.sport = self.dport = None  # (low, high, invert)
        self.chunks = None  # (match type, frozenset of chunk types, {index: (flag, mask)}, invert)

    def take(self, word: str, words: list[str], invert: bool, rule) -> None:
        if word == "--chunk-types":
            if self.chunks is not None:
                raise usage_error("Only one `--chunk-types' allowed")
            if len(words) < 2 or words[1][:1] in ("-", "!"):
                raise usage_error("--chunk-types requires two args")
            self.chunks = self._parse_chunks(words.pop(0), words.pop(0)) + (invert,)
            return
        super().take(word, words, invert, rule)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        attr = "sport" if option == "--sport" else "dport"
        if getattr(self, attr) is not None:
            raise usage_error(f"Only one `{'--source-port' if attr == 'sport' else '--destination-port'}' allowed")
        setattr(self, attr, self._ports(value) + (invert,))

    @staticmethod
    def _ports(text: str) -> tuple[int, int]:
        """parse_sctp_ports(): xtables_parse_port() each side of a colon."""
        low_text, colon, high_text = text.partition(":")
        low = _parse_port(low_text) if not colon or low_text else 0
        high = _parse_port(high_text) if colon and high_text else 0xFFFF if colon else low
        if low > high:
            raise usage_error("invalid portrange (min > max)")
        return low, high

    @staticmethod
    def _parse_chunks(kind: str, chunks: str) -> tuple:
        """parse_sctp_chunks(): ALL, ANY or ONLY, then ALL, NONE or
        NAME[:FLAGS] each (a flag's letter upper-case: set, lower: clear)."""
        if kind.lower() not in SCTP_MATCH_TYPES:
            raise usage_error('Match type has to be one of "ALL", "ANY" or "ONLY"')
        if chunks.upper() == "ALL":
            return kind.lower(), frozenset(range(256)), {}
        if chunks.upper() == "NONE":
            return kind.lower(), frozenset(), {}
        types, flags = set(), {}
        for part in chunks.split(","):
            if not part:
                continue
            name, colon, letters = part.partition(":")
            index = next((i for i, c in enumerate(SCTP_CHUNKS) if c[0].lower() == name.lower()), None)
            if index is None:
                raise usage_error(f"Unknown sctp chunk `{name}'")
            types.add(SCTP_CHUNKS[index][1])
            valid = SCTP_CHUNKS[index][2]
            for letter in letters if colon else "":
                position = valid.find(letter.upper())
                if position < 0:
                    raise usage_error(f"Invalid flags for chunk type {index}")
                if index not in flags and len(flags) == XT_NUM_SCTP_FLAGS:
                    raise usage_error("Number of chunk types with flags exceeds currently allowed limit. "
                                      "Increasing this limit involves changing IPT_NUM_SCTP_FLAGS and recompiling "
                                      "both the kernel space and user space modules")
                bit = 1 << (7 - position)
                flag, mask = flags.get(index, (0, 0))
                flags[index] = (flag | (bit if letter.isupper() else 0), mask | bit)
        return kind.lower(), frozenset(types), flags

    def _chunk_text(self) -> str:
        """print_chunks() (not numeric): the chunks by type, each with its flags."""
        kind, types, flags, _ = self.chunks
        if not types:
            return f"{kind} NONE"
        if len(types) == 256:
            return f"{kind} ALL"
        names = []
        for number in sorted(types):
            name = "".join(c[0] for c in SCTP_CHUNKS if c[1] == number)
            if number in flags:
                flag, mask = flags[number]
                valid = SCTP_CHUNKS[number][2]
                name += ":" + "".join(valid[7 - i] if flag >> i & 1 else valid[7 - i].lower()
                                      for i in range(7, -1, -1) if mask >> i & 1)
            names.append(name)
        return f"{kind} {','.join(names)}"

    def save(self) -> str:
        out = "-m sctp"
        if self.sport:
            out += " " + _ports_save("--sport", self.sport)
        if self.dport:
            out += " " + _ports_save("--dport", self.dport)
        if self.chunks:
            out += f" {inv(self.chunks[3])}--chunk-types {self._chunk_text()}"
        return out

    def listing(self) -> str:
        parts = ["sctp"]
        for name, ports in (("spt", self.sport), ("dpt", self.dport)):
            if ports:
                parts.append(_ports_listing(name, ports))
        if self.chunks:  # sctp_print(): numeric chunk types under -n
            kind, types, flags, invert = self.chunks
            text = "NONE" if not types else "ALL" if len(types) == 256 else \
                ",".join(f"0x{t:04X}" for t in sorted(types))
            parts.append(("! " if invert else "") + f"{kind} {text}")
        return " ".join(p for p in parts if p)

    def translation(self) -> str | None:
        """sctp_xlate(): none without options or for ANY."""
        if not (self.sport or self.dport or self.chunks):
            return None
        parts = [_ports_xlate("sctp", f, p) for f, p in (("sport", self.sport), ("dport", self.dport)) if p]
        if self.chunks:
            kind, types, flags, invert = self.chunks
            if kind == "any":
                return None
            for name, number, _, nftname in SCTP_CHUNKS:
                if number not in types:
                    if kind == "only":
                        parts.append(f"sctp chunk {nftname} {'exists' if invert else 'missing'}")
                    continue
                if number in flags:
                    flag, mask = flags[number]
                    parts.append(f"sctp chunk {nftname} flags & 0x{mask:x} {'!=' if invert else '=='} 0x{flag:x}")
                else:
                    parts.append(f"sctp chunk {nftname} {'missing' if invert else 'exists'}")
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        sport, dport, chunks = self.sport, self.dport, self.chunks

        def build(ctx):
            def sctp_mt(pkt) -> bool:
                if pkt.fragoff:
                    return False
                buf, th, end = pkt.buf, pkt.thoff, pkt.end
                if th + sctp.SCTP_HLEN > end:
                    return False
                view = SctpPacket(buf, th)
                if not (_in(view.sport, sport) and _in(view.dport, dport)):
                    return False
                return chunks is None or match_packet(buf, th + sctp.SCTP_HLEN, end, chunks[:3]) != chunks[3]
            return sctp_mt
        return [XtCompat("match", "sctp", self.translation(), build)]


def _parse_port(text: str) -> int:
    number = _getportbyname(text, "sctp")
    if number is None:
        raise usage_error(f"invalid port/service `{text}' specified")
    return number


def match_packet(buf: bytearray, off: int, end: int, chunks: tuple) -> bool:
    """xt_sctp.c match_packet(): every chunk until the packet's end, against
    ANY (one of them, its flags right), ALL (each of them seen with its flags
    right) or ONLY (none but them, each with its flags right). A chunk cut
    short or of length 0 ends it unmatched (the kernel's hotdrop)."""
    kind, types, flags = chunks
    left = set(types) if kind == "all" else None
    while True:
        if off + sctp.SCTP_CHUNK_HLEN > end:
            return False
        chunk_type, chunk_flags, length = sctp.chunk_header(buf, off)
        if length == 0:
            return False
        flags_ok = chunk_type not in flags or chunk_flags & flags[chunk_type][1] == flags[chunk_type][0]
        if chunk_type in types:
            if kind == "any" and flags_ok:
                return True
            if kind == "all" and flags_ok:
                left.discard(chunk_type)
            if kind == "only" and not flags_ok:
                return False
        elif kind == "only":
            return False
        off += sctp.padded(length)
        if off >= end:
            break
    return not left if kind == "all" else kind == "only"


# ------------------------------------------------------------------ dccp

DCCP_TYPES = ("REQUEST", "RESPONSE", "DATA", "ACK", "DATAACK", "CLOSEREQ", "CLOSE", "RESET", "SYNC", "SYNCACK",
              "INVALID")
DCCP_TYPES_XLATE = ("request", "response", "data", "ack", "dataack", "closereq", "close", "reset", "sync",
                    "syncack", "10-15")
INVALID_OTHER_TYPE_MASK = 0xF800


class DccpMatch(ProtoMatch):
    """libxt_dccp.c; xt_dccp.c dccp_mt(): ports, the packet's type in the
    mask, an option present (dccp_find_option(), wire/dccp.py find_option())."""

    name = "dccp"
    PROTO = IPPROTO_DCCP
    OPTIONS = (XtOpt(("--sport", "--source-port"), invert=True), XtOpt(("--dport", "--destination-port"), invert=True),
               XtOpt(("--dccp-types",), invert=True), XtOpt(("--dccp-option",), invert=True))

    def __init__(self) -> None:
        super().__init__()
        self.sport = self.dport = self.types = self.wanted_option = None  # (value[s], invert)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option in ("--sport", "--dport"):
            setattr(self, option[2:], self._ports(value) + (invert,))
        elif option == "--dccp-types":
            mask = 0
            for name in value.split(","):
                if not name:
                    continue
                index = next((i for i, t in enumerate(DCCP_TYPES) if t.lower() == name.lower()), None)
                if index is None:
                    raise usage_error(f"Unknown DCCP type `{name}'")
                mask |= 1 << index
            if mask & 1 << 10:
                mask |= INVALID_OTHER_TYPE_MASK
            self.types = (mask, invert)
        else:
            self.wanted_option = (self.uint(option, value, 1, 255), invert)

    @staticmethod
    def _ports(text: str) -> tuple[int, int]:
        """xtopt_parse_mport(): `P`, `P:Q`, `P:` or `:Q`, each xtables_getportbyname()."""
        values = [0, 0xFFFF]
        parts = text.split(":")
        if len(parts) > 2:
            raise usage_error(f'dccp: Too many components for option "--sport" (max: 2)')
        for i, part in enumerate(parts):
            if not part:
                continue
            number = _getportbyname(part, None)
            if number is None:
                raise usage_error(f'Port "{part}" does not resolve to anything.')
            values[i] = number
        if len(parts) == 1:
            values[1] = values[0]
        return values[0], values[1]

    def _type_names(self) -> str:
        """print_types() (not numeric): up to INVALID, which stands for 10-15."""
        mask, names = self.types[0], []
        for i in range(16):
            if mask >> i & 1:
                names.append(DCCP_TYPES[i] if i < len(DCCP_TYPES) else str(i))
                if i == 10:
                    break
        return ",".join(names)

    def save(self) -> str:
        out = "-m dccp"
        if self.sport:
            out += " " + _ports_save("--sport", self.sport)
        if self.dport:
            out += " " + _ports_save("--dport", self.dport)
        if self.types:
            out += f" {inv(self.types[1])}--dccp-types {self._type_names()}"
        if self.wanted_option:
            out += f" {inv(self.wanted_option[1])}--dccp-option {self.wanted_option[0]}"
        return out

    def listing(self) -> str:
        parts = ["dccp"]
        for name, ports in (("spt", self.sport), ("dpt", self.dport)):
            if ports:
                parts.append(_ports_listing(name, ports))
        if self.types:  # numeric under -n
            mask, invert = self.types
            parts.append(("! " if invert else "") + ",".join(str(i) for i in range(16) if mask >> i & 1))
        if self.wanted_option and (self.wanted_option[0] or self.wanted_option[1]):
            parts.append(f"option={'!' if self.wanted_option[1] else ''}{self.wanted_option[0]}")
        return " ".join(p for p in parts if p)

    def translation(self) -> str | None:
        """dccp_xlate(): none with --dccp-option (nft has no dccp option)."""
        if self.wanted_option:
            return None
        parts = [_ports_xlate("dccp", f, p) for f, p in (("sport", self.sport), ("dport", self.dport)) if p]
        if self.types and self.types[0]:
            mask, invert = self.types
            if mask & INVALID_OTHER_TYPE_MASK:
                mask = mask & ~INVALID_OTHER_TYPE_MASK | 1 << 10
            names = [DCCP_TYPES_XLATE[i] for i in range(11) if mask >> i & 1]
            text = names[0] if len(names) == 1 else "{ " + ", ".join(names) + " }"
            parts.append(f"dccp type{' !=' if invert else ''} {text}")
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        sport, dport, types, option = self.sport, self.dport, self.types, self.wanted_option

        def build(ctx):
            def dccp_mt(pkt) -> bool:
                if pkt.fragoff:
                    return False
                buf, th, end = pkt.buf, pkt.thoff, pkt.end
                if th + dccp.DCCP_HLEN > end:
                    return False
                view = DccpHeader(buf, th)
                if not (_in(view.sport, sport) and _in(view.dport, dport)):
                    return False
                if types is not None and bool(types[0] >> view.type & 1) == types[1]:
                    return False
                return option is None or dccp.find_option(buf, th, end, option[0]) != option[1]
            return dccp_mt
        return [XtCompat("match", "dccp", self.translation(), build)]


PROTO_MATCHES = {"esp": esp_match, "ah": ah_match, "ipcomp": ipcomp_match, "sctp": SctpMatch, "dccp": DccpMatch}
PROTO_FAMILY_ONLY = {"ah": "ip"}  # libipt_ah.c (IPv6 has libip6t_ah.c, its own)
