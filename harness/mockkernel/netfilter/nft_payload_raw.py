"""Raw payload expressions: `@ll,OFFSET,LEN`, `@nh,...`, `@th,...`, `@ih,...`
(nftables parser_bison.y payload_raw_expr; net/netfilter/nft_payload.c).

OFFSET and LEN are bits from the start of the link-layer, network, transport
or inner header (enum nft_payload_bases). nft loads whole bytes: a field not
on byte boundaries becomes a load of the bytes it spans and a mask
(evaluate.c expr_evaluate_bits()), and its value is shifted into place, so
`@ll,0,1 1` lists as `@ll,0,8 & 0x80 == 0x80`. A raw load of the transport
or network header where the rule established the protocol, at the offset and
width of one of its fields, lists as that field (netlink_delinearize.c's
payload_expr_complete()): `meta l4proto tcp @th,16,16 22` is `tcp dport 22`,
and after `meta l4proto { tcp, udp }` it is `th dport`. Raw loads put no
dependency in front. The inner header (6.2's NFT_PAYLOAD_INNER_HEADER) is
where nft_payload_inner_offset() puts it: after a UDP header or a TCP header
with its options, in a first fragment; any other packet breaks the rule.
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import (PAYLOAD_FIELDS, CompileCtx, Match, Payload, PrintCtx, Selector,
                                                    SetRef, Value, link_loader, payload_loader)
from harness.mockkernel.wire import tcp
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP, IPPROTO_UDP
from harness.mockkernel.wire.udp import UDP_HLEN

RAW_BASES = ("ll", "nh", "th", "ih")  # enum nft_payload_bases, in order
REGISTER_BITS = 128  # NFT_REG_SIZE: the widest load


class RawType(types.IntegerType):
    """A raw load's type: an integer of its width, printed in hex (0x0);
    json.c prints one wider than 64 bits as a hex string."""

    def __init__(self, bits: int):
        super().__init__("integer", bits, "integer")

    def format(self, value) -> str:
        return f"0x{value:x}"

    def json_value(self, value):
        return value if self.size <= 64 else f"0x{value:x}"


class RawPayload(Selector):
    """nft_payload of `bits` bits at `offset` bits into header `base`."""

    def __init__(self, base: str, offset: int, bits: int):
        self.base, self.offset, self.bits = base, offset, bits
        self.dtype = RawType(bits)

    @property
    def aligned(self) -> bool:
        return self.offset % 8 == 0 and self.bits % 8 == 0

    def text(self, pctx: PrintCtx) -> str:
        return f"@{self.base},{self.offset},{self.bits}"

    def json(self, pctx: PrintCtx) -> dict:
        return {"payload": {"base": self.base, "offset": self.offset, "len": self.bits}}

    def load(self, ctx: CompileCtx):
        off, nbytes = self.offset // 8, self.bits // 8
        if self.base == "ll":
            return link_loader(off, nbytes)
        if self.base != "ih":
            return payload_loader(self.base == "th", off, nbytes)

        def load_inner(pkt):
            start = inner_offset(pkt)
            if start is None or start + off + nbytes > pkt.end:
                return None
            return int.from_bytes(pkt.buf[start + off:start + off + nbytes], "big")
        return load_inner


def inner_offset(pkt) -> int | None:
    """nft_payload_inner_offset(): where the inner header starts in pkt.buf."""
    thoff = pkt.thoff
    if thoff < 0 or pkt.fragoff:
        return None
    if pkt.tprot == IPPROTO_UDP:
        return thoff + UDP_HLEN
    if pkt.tprot == IPPROTO_TCP and thoff + tcp.TCP_HLEN <= pkt.end:
        return thoff + tcp.DATA_OFFSET_LEN[pkt.buf[thoff + tcp.DOFF]]
    return None


def byte_aligned(match: Match) -> Match | None:
    """expr_evaluate_bits(): a raw match off byte boundaries as a load of the
    bytes it spans, masked, its value shifted into place (None for a set or
    range, whose elements the mock does not shift)."""
    raw = match.lhs
    first, last = raw.offset // 8, (raw.offset + raw.bits + 7) // 8
    shift = (last - first) * 8 - raw.offset % 8 - raw.bits
    wide = RawPayload(raw.base, first * 8, (last - first) * 8)
    mask = ((1 << raw.bits) - 1) << shift
    if not isinstance(match.rhs, Value):
        return None
    op = "==" if match.op == "implicit" else match.op
    return Match(wide, op, Value(match.rhs.value << shift), mask=mask, loc=match.loc)


def known_field(raw: RawPayload, l4: str | None, net: str | None) -> Payload | None:
    """payload_expr_complete(): the field of the protocol the rule established
    at the raw load's offset and width (`th`'s after a set of transport
    protocols), or None."""
    proto = {"th": "th" if l4 == "set" else l4, "nh": net}.get(raw.base)
    for fld in PAYLOAD_FIELDS.get(proto, {}).values() if proto else ():
        if fld.byte_aligned and fld.offset * 8 == raw.offset and fld.bits == raw.bits:
            return Payload((fld,))
    return None


def evaluate(match: Match, l4: str | None, net: str | None) -> Match | None:
    """A raw payload match as nft sends it: byte-aligned, and listed as the
    field it amounts to when the rule's protocols name one (an anonymous set's
    elements then print as that field's values). None: not modelled."""
    if not match.lhs.aligned:
        return byte_aligned(match)
    field = known_field(match.lhs, l4, net)
    if field is None:
        return match
    if isinstance(match.rhs, SetRef) and match.rhs.name is None:
        match.rhs.set.key_types = [field.dtype]
    return Match(field, match.op, match.rhs, mask=match.mask, loc=match.loc)
