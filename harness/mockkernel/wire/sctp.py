"""SCTP common header and chunk views (include/linux/sctp.h: struct sctphdr,
struct sctp_chunkhdr; RFC 9260 section 3)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire.errors import Malformed, Truncated
from harness.mockkernel.wire.view import HeaderView

IPPROTO_SCTP = 132
SCTP_HLEN = 12
# field offsets of struct sctphdr
SOURCE, DEST, VTAG, CHECKSUM = 0, 2, 4, 8
SCTP_CHUNK_HLEN = 4  # struct sctp_chunkhdr: type, flags, length
CHUNK_TYPE, CHUNK_FLAGS, CHUNK_LENGTH = 0, 1, 2
HEADER = struct.Struct("!HHII")  # source, dest, vtag, checksum
CHUNK_HEADER = struct.Struct("!BBH")  # type, flags, length
# enum sctp_cid (include/linux/sctp.h)
SCTP_CID_DATA, SCTP_CID_INIT, SCTP_CID_INIT_ACK, SCTP_CID_SACK = 0, 1, 2, 3


def check_len(buf: bytearray, off: int, end: int) -> None:
    if end - off < SCTP_HLEN:
        raise Truncated(None, f"SCTP header needs {SCTP_HLEN} bytes, have {end - off}")


def chunks(buf: bytearray, off: int, end: int):
    """(offset, type) of each chunk after the common header at `off`, as
    nft_exthdr_sctp_eval() walks them: a chunk's length rounded up to 4
    bytes leads to the next; the walk ends at a chunk header past `end`
    or a length under the chunk header (Malformed then)."""
    at = off + SCTP_HLEN
    while at + SCTP_CHUNK_HLEN <= end:
        ctype, _, length = CHUNK_HEADER.unpack_from(buf, at)
        yield at, ctype
        if length < SCTP_CHUNK_HLEN:
            raise Malformed("length", f"SCTP chunk length {length} is under its {SCTP_CHUNK_HLEN}-byte header")
        at += (length + 3) & ~3


class SctpPacket(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def sport(self) -> int:
        return HEADER.unpack_from(self.buf, self.off)[0]

    @property
    def dport(self) -> int:
        return HEADER.unpack_from(self.buf, self.off)[1]

    @property
    def vtag(self) -> int:
        return HEADER.unpack_from(self.buf, self.off)[2]

    @property
    def checksum(self) -> int:
        return HEADER.unpack_from(self.buf, self.off)[3]

    def chunks(self, end: int):
        return chunks(self.buf, self.off, end)
