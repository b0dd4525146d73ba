"""nft_exthdr's TCP options: `tcp option maxseg size|length` matches, `tcp option
maxseg exists|missing`, and `tcp option maxseg size set V` (net/netfilter/nft_exthdr.c,
nft_exthdr_tcp_eval() and nft_exthdr_tcp_set_eval(); nftables src/tcpopt.c).

Both walk the options as nft_exthdr does, which is not tcp_parse_options()
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
refuses, on Linux as here. Left out: options other than maxseg, raw `tcp option
@kind,off,len`, `reset` (option stripping), 4-byte fields.

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
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, PrintCtx, Selector, Stmt
from harness.mockkernel.wire import tcp
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP

# nftables src/tcpopt.c: the options nft names, their kind, and their fields as (offset, bytes, type)
TCP_OPTIONS = {"maxseg": (tcp.TCPOPT_MSS, {"size": (2, 2, types.length16), "length": (1, 1, types.ttl)})}
OPTION_ALIASES = {"mss": "maxseg"}  # scanner.l: both words are the MSS token


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
    """`tcp option NAME FIELD` (exthdr load tcpopt), or `tcp option NAME` with no
    field: whether the option is there (NFT_EXTHDR_F_PRESENT, `exists`/`missing`)."""

    def __init__(self, name: str, field: str | None):
        self.name, self.field = name, field
        self.kind, fields = TCP_OPTIONS[name]
        if field is None:
            self.offset, self.size, self.dtype = 0, 1, types.boolean
        else:
            self.offset, self.size, self.dtype = fields[field]

    def text(self, pctx: PrintCtx) -> str:
        return f"tcp option {self.name}" + (f" {self.field}" if self.field else "")

    def load(self, ctx: CompileCtx):
        kind, offset, size, need = self.kind, self.offset, self.size, self.offset + self.size
        if self.field is None:
            def tcp_option_present(pkt):
                at = nft_tcp_option(pkt, kind, need)
                return 0 if at is None or at == tcp.OPTION_ABSENT else 1
            return tcp_option_present

        def tcp_option_field(pkt):
            at = nft_tcp_option(pkt, kind, need)
            if at is None or at == tcp.OPTION_ABSENT:
                return None
            return tcp.option_field(pkt.buf, at, offset, size)
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
