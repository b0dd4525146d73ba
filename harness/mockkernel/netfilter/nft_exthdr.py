"""nft_exthdr's TCP options: `tcp option NAME [FIELD]` for every option nftables 1.0.6's
src/tcpopt.c names (eol, nop, maxseg, window, sack-perm, sack/sack0-3 left/right,
timestamp tsval/tsecr, md5sig, mptcp subtype, fastopen, and `length`), `tcp option
KIND exists|missing`, the raw `tcp option @KIND,OFFSET,LENGTH`, `tcp option maxseg
size set V` and `reset tcp option NAME|KIND` (net/netfilter/nft_exthdr.c,
nft_exthdr_tcp_eval(), nft_exthdr_tcp_set_eval(), nft_exthdr_tcp_strip_eval()).

All walk the options as nft_exthdr does, which is not tcp_parse_options()
(wire/tcp.py exthdr_option(): an EOL does not end the walk); the first option
of the kind is the one. An option running past the header, or too short for
the field, breaks the rule (NFT_BREAK); so does a packet that is not TCP, a
non-first fragment, or a header not all there. A load finds nothing in
a header without the option (the rule breaks; `exists` is 0 instead).

The set statement writes the MSS only when that lowers it ("increase can cause
connection to stall"), on any segment that carries the option, SYN or not: a
rule restricts it to SYNs with `tcp flags syn`. The TCP checksum is updated
incrementally with the old and new 16 bits as they lie
(inet_proto_csum_replace2()), which is right only for a field at an even
offset: an MSS option after a single NOP leaves with a checksum the receiver
refuses, on Linux as here. Left out: setting fields other than the MSS.

IPv6 extension headers (`exthdr hbh exists`, `frag more-fragments 1`, `rt
seg-left > 0`, `srh sid[1] ::1`, `mh type binding-update`, ...):
nft_exthdr_ipv6_eval() finds the header with ipv6_find_hdr() and loads the
field at its offset; a packet without it breaks the rule (`exists` is 0
instead). The fields are nftables src/exthdr.c's; nft lists a field by the
first template of its header type at that offset and length, so `rt0 addr[1]`
and `rt2 addr` come back as `srh sid[1]`, as nft 1.0.6 prints them.
"""
from __future__ import annotations

from harness.mockkernel.ipv6.exthdrs_core import ipv6_find_hdr
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.core import NF_DROP
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, PrintCtx, Selector, Stmt
from harness.mockkernel.wire.checksum import csum_replace
from harness.mockkernel.wire import tcp
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP

# nftables src/tcpopt.c tcpopt_protocols[]: the options nft names, their kind and their
# fields as (bit offset, bits); `sack1`..`sack3` are the SACK option's later blocks
# (their fields 64 bits further each), `sack0` the first, listed as `sack`
_LENGTH = {"length": (8, 8)}
TCP_OPTIONS = {
    "eol": (0, {}), "nop": (1, {}), "maxseg": (tcp.TCPOPT_MSS, {**_LENGTH, "size": (16, 16)}),
    "window": (3, {**_LENGTH, "count": (16, 8)}), "sack-perm": (4, dict(_LENGTH)),
    "sack": (5, {**_LENGTH, "left": (16, 32), "right": (48, 32)}),
    "timestamp": (8, {**_LENGTH, "tsval": (16, 32), "tsecr": (48, 32)}), "md5sig": (19, dict(_LENGTH)),
    "mptcp": (30, {**_LENGTH, "subtype": (16, 4)}), "fastopen": (34, dict(_LENGTH)),
}
SACK_BLOCKS = {"sack0": 0, "sack1": 1, "sack2": 2, "sack3": 3}
# scanner.l: the words of one token each; `echo` is TCPOPT_KIND_ECHO (6), which nft names by number
OPTION_ALIASES = {"mss": "maxseg", "sack-permitted": "sack-perm", "noop": "nop", **dict.fromkeys(SACK_BLOCKS, "sack")}
OPTION_KINDS = {"echo": 6}
KIND_NAMES = {kind: name for name, (kind, _) in TCP_OPTIONS.items()}
_FIELD_TYPES: dict[int, types.Datatype] = {}


def field_type(bits: int) -> types.Datatype:
    """A template's integer_type of `bits` (big endian, as PHT() declares them)."""
    if bits not in _FIELD_TYPES:
        _FIELD_TYPES[bits] = types.IntegerType("integer", bits, "integer")
    return _FIELD_TYPES[bits]


def nft_tcp_option(pkt, kind: int, need: int) -> int | None:
    """nft_tcp_header_pointer() and the option walk: where in pkt.buf the first
    option of `kind` starts, tcp.OPTION_ABSENT, or None when the rule breaks."""
    thoff = pkt.thoff
    if pkt.tprot != IPPROTO_TCP or pkt.fragoff or thoff < 0 or thoff + tcp.TCP_HLEN > pkt.end:
        return None
    hdrlen = tcp.DATA_OFFSET_LEN[pkt.buf[thoff + tcp.DOFF]]
    if hdrlen < tcp.TCP_HLEN or thoff + hdrlen > pkt.end:
        return None
    return tcp.exthdr_option(pkt.buf, thoff, hdrlen, kind, need)


class TcpOption(Selector):
    """`tcp option NAME FIELD` (exthdr load tcpopt), `tcp option NAME|KIND` with no
    field: whether the option is there (NFT_EXTHDR_F_PRESENT, `exists`/`missing`),
    or `tcp option @KIND,OFFSET,LENGTH` (bits of the option, tcpopt_init_raw()).
    `block` numbers a SACK block (`sack2 left`). The kernel loads whole bytes
    (priv->offset, priv->len) and nft masks a sub-byte field after (`mptcp subtype`)."""

    def __init__(self, name: str | None, field: str | None, block: int = 0, kind: int | None = None,
                 raw: tuple[int, int] | None = None):
        self.name, self.field, self.block, self.raw = name, field, block, raw
        self.kind = TCP_OPTIONS[name][0] if name is not None else kind
        if raw is not None:
            bit_offset, bits = raw
        elif field is None:
            bit_offset, bits = 0, 8
        else:
            bit_offset, bits = TCP_OPTIONS[name][1][field]
            if field in ("left", "right"):
                bit_offset += 64 * block
        self.bit_offset, self.bits = bit_offset, bits
        self.offset = bit_offset // 8
        self.size = max((bit_offset % 8 + bits + 7) // 8, 1)
        self.shift = (8 - (bit_offset + bits) % 8) % 8
        self.mask = (1 << bits) - 1 if bits % 8 or bit_offset % 8 else 0
        self.dtype = types.boolean if field is None and raw is None else field_type(bits)

    @property
    def option_name(self) -> str:
        """The option as listed: by name (a later SACK block with its number), or by kind."""
        if self.name is None:
            return str(self.kind)
        return f"{self.name}{self.block}" if self.block else self.name

    def text(self, pctx: PrintCtx) -> str:
        if self.raw is not None:
            return f"tcp option @{self.kind},{self.raw[0]},{self.raw[1]}"
        return f"tcp option {self.option_name}" + (f" {self.field}" if self.field else "")

    def json(self, pctx: PrintCtx) -> dict:
        if self.raw is not None or self.name is None:
            return {"tcp option": {"base": self.kind, "offset": self.bit_offset, "len": self.bits}}
        out = {"name": self.option_name}
        if self.field:
            out["field"] = self.field
        return {"tcp option": out}

    def load(self, ctx: CompileCtx):
        kind, offset, size, need = self.kind, self.offset, self.size, self.offset + self.size
        if self.field is None and self.raw is None:
            def tcp_option_present(pkt):
                at = nft_tcp_option(pkt, kind, 1)
                return 0 if at is None or at == tcp.OPTION_ABSENT else 1
            return tcp_option_present
        mask, shift = self.mask, self.shift

        def tcp_option_field(pkt):
            at = nft_tcp_option(pkt, kind, need)
            if at is None or at == tcp.OPTION_ABSENT:
                return None
            value = tcp.option_field(pkt.buf, at, offset, size)
            return (value >> shift) & mask if mask else value
        return tcp_option_field


class TcpOptionSet(Stmt):
    """`tcp option maxseg size set V`: nft_exthdr_tcp_set_eval() of a 2-byte
    field from a constant or a load (`rt mtu`)."""

    may_change_packet = True

    def __init__(self, option: TcpOption, value, loc=None):
        self.option, self.value, self.loc = option, value, loc  # value: int or a Selector

    def text(self, pctx: PrintCtx) -> str:
        value = self.value.text(pctx) if isinstance(self.value, Selector) else self.option.dtype.format(self.value)
        return f"{self.option.text(pctx)} set {value}"

    def compile(self, ctx: CompileCtx):
        option = self.option
        kind, offset, need = option.kind, option.offset, option.offset + option.size
        only_lower = kind == tcp.TCPOPT_MSS
        load = self.value.load(ctx) if isinstance(self.value, Selector) else (lambda pkt, v=self.value: v)

        def tcp_option_set(pkt):
            new = load(pkt)
            if new is None:  # the source expression broke the rule first
                return NFT_BREAK
            at = nft_tcp_option(pkt, kind, need)
            if at is None:
                return NFT_BREAK
            if at == tcp.OPTION_ABSENT:
                return None
            old = tcp.option_field(pkt.buf, at, offset, 2)
            if old == new or only_lower and old <= new:
                return None
            tcp.replace_u16(pkt.buf, pkt.thoff, at + offset, new)
        return tcp_option_set


class TcpOptionReset(Stmt):
    """`reset tcp option NAME|KIND`: nft_exthdr_tcp_strip_eval() overwrites the
    first option of the kind with NOPs, the checksum updated byte by byte as
    they lie (inet_proto_csum_replace2() of each byte in its 16-bit word); an
    option running past the header drops the packet; a segment without it goes
    on unchanged; no TCP header to read breaks the rule."""

    may_change_packet = True

    def __init__(self, option: TcpOption, loc=None):
        self.option, self.loc = option, loc

    def text(self, pctx: PrintCtx) -> str:
        return f"reset tcp option {self.option.option_name}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        option = self.option
        if option.name is None:
            return [{"reset": {"tcp option": {"base": option.kind, "offset": 0, "len": 0}}}]
        return [{"reset": {"tcp option": {"name": option.option_name}}}]

    def compile(self, ctx: CompileCtx):
        kind = self.option.kind

        def tcp_option_strip(pkt):
            at = nft_tcp_option(pkt, kind, 1)
            if at is None:  # past the header (NF_DROP), or no header (NFT_BREAK)
                thoff = pkt.thoff
                readable = pkt.tprot == IPPROTO_TCP and not pkt.fragoff and thoff >= 0 \
                    and thoff + tcp.TCP_HLEN <= pkt.end
                return NF_DROP if readable and _option_overruns(pkt, kind) else NFT_BREAK
            if at == tcp.OPTION_ABSENT:
                return None
            buf, thoff = pkt.buf, pkt.thoff
            size = 1 if buf[at] <= tcp.TCPOPT_NOP or buf[at + tcp.OPT_LEN] == 0 else buf[at + tcp.OPT_LEN]
            check = int.from_bytes(buf[thoff + tcp.CHECK:thoff + tcp.CHECK + 2], "big")
            for j in range(size):
                old, new = buf[at + j], tcp.TCPOPT_NOP
                if (at - thoff + j) % 2 == 0:
                    old, new = old << 8, new << 8
                check = csum_replace(check, old, new, 2)
                buf[at + j] = tcp.TCPOPT_NOP
            buf[thoff + tcp.CHECK:thoff + tcp.CHECK + 2] = check.to_bytes(2, "big")
        return tcp_option_strip


def _option_overruns(pkt, kind: int) -> bool:
    """Whether the first option of `kind` runs past the header (not merely a short header)."""
    thoff = pkt.thoff
    hdrlen = tcp.DATA_OFFSET_LEN[pkt.buf[thoff + tcp.DOFF]]
    return hdrlen >= tcp.TCP_HLEN and thoff + hdrlen <= pkt.end


# nftables src/exthdr.c: each IPv6 extension header nft names, its NEXTHDR number and
# its fields as (byte offset, bits, type, mask of the loaded bytes, shift); `sid[n]`
# and `addr[n]` are 16-byte slots from byte 8 on
EXTHDR6_TYPES = {"hbh": 0, "rt": 43, "rt0": 43, "rt2": 43, "srh": 43, "frag": 44, "dst": 60, "mh": 135}
_NEXT_LEN = {"nexthdr": (0, 8, types.inet_proto, 0, 0), "hdrlength": (1, 8, types.ttl, 0, 0)}
EXTHDR6_FIELDS = {
    "hbh": _NEXT_LEN, "dst": _NEXT_LEN,
    "rt": {**_NEXT_LEN, "type": (2, 8, types.ttl, 0, 0), "seg-left": (3, 8, types.ttl, 0, 0)},
    "rt0": {"reserved": (4, 32, types.integer, 0, 0)},
    "rt2": {"reserved": (4, 32, types.integer, 0, 0)},
    "srh": {"last-entry": (4, 8, types.ttl, 0, 0), "flags": (5, 8, types.ttl, 0, 0),
            "tag": (6, 16, types.length16, 0, 0)},
    "frag": {"nexthdr": (0, 8, types.inet_proto, 0, 0), "reserved": (1, 8, types.ttl, 0, 0),
             "frag-off": (2, 13, types.length16, 0xFFF8, 3), "reserved2": (3, 2, types.ttl, 0x06, 1),
             "more-fragments": (3, 1, types.ttl, 0x01, 0), "id": (4, 32, types.integer, 0, 0)},
    "mh": {**_NEXT_LEN, "type": (2, 8, types.mh_type, 0, 0), "reserved": (3, 8, types.ttl, 0, 0),
           "checksum": (4, 16, types.length16, 0, 0)},
}
EXTHDR6_SLOTS = {"rt0": "addr", "rt2": "addr", "srh": "sid"}  # the 16-byte address slots from byte 8
EXTHDR6_SLOT_TEMPLATES = 2  # `sid[1]`, `sid[2]`: the slots nft 1.0.6 has a template for
EXTHDR_EXISTS = ("hbh", "rt", "frag", "dst", "mh")  # parser_bison.y exthdr_key


class Exthdr6(Selector):
    """nft_exthdr of an IPv6 extension header: a field of it (`frag id`), or
    with no field whether the packet has the header (NFT_EXTHDR_F_PRESENT,
    `exthdr frag exists`). `slot` numbers an address slot (`srh sid[2]`)."""

    def __init__(self, header: str, field: str | None, slot: int = 0):
        self.header, self.field, self.slot = header, field, slot
        self.invalid = None  # the NftError nft's evaluation gives for a field without a template
        self.nexthdr = EXTHDR6_TYPES[header]
        if field is None:
            self.offset, self.bits, self.dtype, self.mask, self.shift = 0, 8, types.boolean, 0, 0
        elif field == EXTHDR6_SLOTS.get(header):
            self.offset, self.bits, self.dtype, self.mask, self.shift = 8 + 16 * (slot - 1), 128, \
                types.ipv6_addr, 0, 0
        else:
            self.offset, self.bits, self.dtype, self.mask, self.shift = EXTHDR6_FIELDS[header][field]

    def text(self, pctx: PrintCtx) -> str:
        if self.field is None:
            return f"exthdr {self.header}"
        if self.bits == 128 and self.nexthdr == 43:  # the first routing header template at this offset
            return f"srh sid[{self.slot}]"
        return f"{self.header} {self.field}"

    def json_text(self) -> dict:
        if self.field is None:
            return {"name": self.header}
        if self.bits == 128 and self.nexthdr == 43:
            return {"name": "srh", "field": f"sid[{self.slot}]"}
        return {"name": self.header, "field": self.field}

    def load(self, ctx: CompileCtx):
        nexthdr, offset, mask, shift = self.nexthdr, self.offset, self.mask, self.shift
        nbytes = (mask.bit_length() + 7) // 8 if mask else (self.bits + 7) // 8
        if self.field is None:
            def exthdr_present(pkt):
                return 1 if ipv6_find_hdr(pkt.buf, pkt.nh, pkt.end, nexthdr)[0] >= 0 else 0
            return exthdr_present

        def exthdr_field(pkt):
            found, start, _, _ = ipv6_find_hdr(pkt.buf, pkt.nh, pkt.end, nexthdr)
            at = start + offset
            if found < 0 or at + nbytes > pkt.end:
                return None
            value = int.from_bytes(pkt.buf[at:at + nbytes], "big")
            return (value & mask) >> shift if mask else value
        return exthdr_field
