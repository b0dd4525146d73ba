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


def data_offset(buf: bytearray, off: int) -> int:
    """dccph_doff * 4: where the options end and the data begins."""
    return buf[off + DOFF] * 4


def header_len(buf: bytearray, off: int) -> int:
    """__dccp_hdr_len(): the generic header, its extended sequence number
    (dccph_x: 4 more bytes), and its type's fixed part (dccp_packet_hdr_len():
    none for DATA, the service code for REQUEST, struct dccp_hdr_ack_bits for
    the acknowledging types, 12 bytes for RESPONSE and RESET)."""
    kind = (buf[off + TYPE_X] & TYPE_MASK) >> TYPE_SHIFT
    extended = 4 if buf[off + TYPE_X] & 1 else 0
    if kind == DCCP_PKT_DATA:
        fixed = 0
    elif kind == DCCP_PKT_REQUEST:
        fixed = 4
    elif kind in (DCCP_PKT_ACK, 4, 5, 6, 8, 9):  # DATAACK, CLOSEREQ, CLOSE, SYNC, SYNCACK
        fixed = 8
    else:
        fixed = 12
    return DCCP_HLEN + extended + fixed


def find_option(buf: bytearray, off: int, end: int, option: int) -> bool:
    """xt_dccp.c dccp_find_option(): the options between the type's fixed
    header and doff*4, each one byte (types 0 and 1) or a length byte on;
    none when doff ends before the fixed header or past the packet."""
    start, stop = header_len(buf, off), data_offset(buf, off)
    if stop < start or off + stop > end:
        return False
    i = start
    while i < stop:
        kind = buf[off + i]
        if kind == option:
            return True
        length = buf[off + i + 1] if kind >= 2 and i + 1 < stop else 0
        i += length or 1
    return False
