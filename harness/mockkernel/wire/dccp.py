"""DCCP generic header view (include/uapi/linux/dccp.h, struct dccp_hdr)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire.errors import Truncated
from harness.mockkernel.wire.view import HeaderView

IPPROTO_DCCP = 33
DCCP_HLEN = 12  # struct dccp_hdr with dccph_x 0 (the 24-bit sequence number)
# field offsets of struct dccp_hdr; the type is bits 1-4 of byte 8 (dccph_x is bit 0)
SOURCE, DEST, DOFF, CSCOV_CCVAL, CHECKSUM, TYPE_X = 0, 2, 4, 5, 6, 8
TYPE_MASK, TYPE_SHIFT = 0x1E, 1
PORTS = struct.Struct("!HH")
# enum dccp_pkt_type
DCCP_PKT_REQUEST, DCCP_PKT_RESPONSE, DCCP_PKT_DATA, DCCP_PKT_ACK = 0, 1, 2, 3


def check_len(buf: bytearray, off: int, end: int) -> None:
    if end - off < DCCP_HLEN:
        raise Truncated(None, f"DCCP header needs {DCCP_HLEN} bytes, have {end - off}")


class DccpHeader(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def sport(self) -> int:
        return PORTS.unpack_from(self.buf, self.off)[0]

    @property
    def dport(self) -> int:
        return PORTS.unpack_from(self.buf, self.off)[1]

    @property
    def type(self) -> int:
        return (self.buf[self.off + TYPE_X] & TYPE_MASK) >> TYPE_SHIFT
