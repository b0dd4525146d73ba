"""SCTP common header and chunk views (include/linux/sctp.h: struct sctphdr,
struct sctp_chunkhdr; RFC 9260 section 3)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire.errors import Truncated
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


def chunk_header(buf: bytearray, at: int) -> tuple[int, int, int]:
    """(type, flags, length) of the chunk header at `at`."""
    return CHUNK_HEADER.unpack_from(buf, at)


def padded(length: int) -> int:
    """SCTP_PAD4(): a chunk's length rounded up to 4 bytes, where the next one starts."""
    return (length + 3) & ~3


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

    @property
    def first_chunk(self) -> int:
        """Where the first chunk header starts."""
        return self.off + SCTP_HLEN
