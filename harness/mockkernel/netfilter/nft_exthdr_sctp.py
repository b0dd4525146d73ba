"""nft_exthdr's SCTP chunks: `sctp chunk NAME [FIELD]` (net/netfilter/nft_exthdr.c
nft_exthdr_sctp_eval(); nftables src/sctp_chunk.c, the chunk descriptors and
their field templates, and parser_bison.y sctp_chunk_alloc).

nft puts no dependency before a chunk match (the listing shows none): the
kernel checks pkt->tprot itself. It walks the chunks after the 12-byte common
header: a chunk header that is not all there or has length 0 ends the walk,
each chunk leads to the next at its length rounded up to 4 bytes, while that
is inside the packet. The first chunk of the type is the one: with no field
(NFT_EXTHDR_F_PRESENT) the match is whether there is one (`exists`, else 0 for
`missing`); a field is loaded when the chunk's own length covers it and the
chunk ends inside the packet, else the rule breaks (NFT_BREAK), as it does
when no chunk of the type is found. Left out: the fragment-offset check of
later kernels (a non-first fragment's bytes are walked as chunks, as on 6.18).
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, PrintCtx, Selector
from harness.mockkernel.wire import sctp

_COMMON = {"type": (0, 8), "flags": (1, 8), "length": (2, 16)}
_INIT = {**_COMMON, "init-tag": (4, 32), "a-rwnd": (8, 32), "num-outbound-streams": (12, 16),
         "num-inbound-streams": (14, 16), "initial-tsn": (16, 32)}
# src/sctp_chunk.c: each chunk nft names, its type (enum sctp_cid) and its fields (byte offset, bits)
SCTP_CHUNKS = {
    "data": (0, {**_COMMON, "tsn": (4, 32), "stream": (8, 16), "ssn": (10, 16), "ppid": (12, 32)}),
    "init": (1, _INIT),
    "init-ack": (2, _INIT),
    "sack": (3, {**_COMMON, "cum-tsn-ack": (4, 32), "a-rwnd": (8, 32), "num-gap-ack-blocks": (12, 16),
                 "num-dup-tsns": (14, 16)}),
    "heartbeat": (4, _COMMON),
    "heartbeat-ack": (5, _COMMON),
    "abort": (6, _COMMON),
    "shutdown": (7, {**_COMMON, "cum-tsn-ack": (4, 32)}),
    "shutdown-ack": (8, _COMMON),
    "error": (9, _COMMON),
    "cookie-echo": (10, _COMMON),
    "cookie-ack": (11, _COMMON),
    "ecne": (12, {**_COMMON, "lowest-tsn": (4, 32)}),
    "cwr": (13, {**_COMMON, "lowest-tsn": (4, 32)}),
    "shutdown-complete": (14, _COMMON),
    "asconf-ack": (0x80, {**_COMMON, "seqno": (4, 32)}),
    "forward-tsn": (0xC0, {**_COMMON, "new-cum-tsn": (4, 32)}),
    "asconf": (0xC1, {**_COMMON, "seqno": (4, 32)}),
}
_TYPES = {8: types.ttl, 16: types.length16, 32: types.IntegerType("integer", 32, "integer")}


def find_chunk(pkt, chunk_type: int) -> int | None:
    """nft_exthdr_sctp_eval()'s walk: where in pkt.buf the first chunk of
    `chunk_type` starts, or None."""
    if pkt.tprot != sctp.IPPROTO_SCTP or pkt.thoff < 0:
        return None
    buf, end = pkt.buf, pkt.end
    at = pkt.thoff + sctp.SCTP_HLEN
    while at + sctp.SCTP_CHUNK_HLEN <= end:
        found, _, length = sctp.chunk_header(buf, at)
        if not length:
            return None
        if found == chunk_type:
            return at
        at += sctp.padded(length)
    return None


class SctpChunk(Selector):
    """`sctp chunk NAME FIELD` (exthdr load, NFT_EXTHDR_OP_SCTP), or with no
    field whether the packet has such a chunk (`exists`/`missing`)."""

    def __init__(self, name: str, field: str | None):
        self.name, self.field = name, field
        self.type, fields = SCTP_CHUNKS[name]
        if field is None:
            self.offset, self.bits, self.dtype = 0, 8, types.boolean
        else:
            self.offset, self.bits = fields[field]
            self.dtype = _TYPES[self.bits]

    def text(self, pctx: PrintCtx) -> str:
        return f"sctp chunk {self.name}" + (f" {self.field}" if self.field else "")

    def json(self, pctx: PrintCtx) -> dict:
        return {"sctp chunk": {"name": self.name, **({"field": self.field} if self.field else {})}}

    def load(self, ctx: CompileCtx):
        chunk_type, offset, nbytes = self.type, self.offset, self.bits // 8
        if self.field is None:
            def sctp_chunk_present(pkt):
                return 0 if find_chunk(pkt, chunk_type) is None else 1
            return sctp_chunk_present

        def sctp_chunk_field(pkt):
            at = find_chunk(pkt, chunk_type)
            if at is None:
                return None
            length = sctp.chunk_header(pkt.buf, at)[2]
            if offset + nbytes > length or at + length > pkt.end:
                return None
            return int.from_bytes(pkt.buf[at + offset:at + offset + nbytes], "big")
        return sctp_chunk_field
