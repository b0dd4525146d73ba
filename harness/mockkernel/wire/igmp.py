"""IGMP header view (include/uapi/linux/igmp.h, struct igmphdr)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.errors import Truncated
from harness.mockkernel.wire.view import HeaderView

IGMP_HOST_MEMBERSHIP_QUERY = 0x11
IGMP_HOST_MEMBERSHIP_REPORT = 0x12
IGMPV2_HOST_MEMBERSHIP_REPORT = 0x16
IGMP_HLEN = 8
IGMPV3_QUERY_LEN = 12
# field offsets of struct igmphdr
TYPE, CODE, CSUM, GROUP = 0, 1, 2, 4


def check_len(buf: bytearray, off: int, end: int) -> None:
    """igmp_rcv(): pskb_may_pull(sizeof(struct igmphdr))."""
    if end - off < IGMP_HLEN:
        raise Truncated(None, f"IGMP header needs {IGMP_HLEN} bytes, have {end - off}")


def checksum_ok(buf: bytearray, off: int, end: int) -> bool:
    return not checksum(memoryview(buf)[off:end])


def igmp_type(buf: bytearray, off: int) -> int:
    return buf[off + TYPE]


# the rest of the types (include/uapi/linux/igmp.h)
IGMP_HOST_LEAVE_MESSAGE = 0x17
IGMPV3_HOST_MEMBERSHIP_REPORT = 0x22
# IGMPv3 group record types: 1..6 (MODE_IS_INCLUDE, MODE_IS_EXCLUDE, CHANGE_TO_INCLUDE, CHANGE_TO_EXCLUDE,
# ALLOW_NEW_SOURCES, BLOCK_OLD_SOURCES); the two that, with no source, mean a leave
IGMPV3_MODE_IS_INCLUDE, IGMPV3_CHANGE_TO_INCLUDE = 1, 3
IGMPV3_GREC_TYPES = range(1, 7)
IGMPV3_REPORT_LEN = 8  # struct igmpv3_report without its records
IGMPV3_GREC_LEN = 8  # struct igmpv3_grec without its sources
IGMP_TIMER_SCALE = 10  # the code of a v1/v2 query is tenths of a second
HEADER = struct.Struct("!BBHI")  # type, code, csum, group
NGREC_FIELD = struct.Struct("!6xH")  # struct igmpv3_report: ngrec
GREC = struct.Struct("!BBHI")  # struct igmpv3_grec: type, auxwords, nsrcs, mca
IGMPV3_QUERY_FIELDS = struct.Struct("!xB8xH")  # code, nsrcs of struct igmpv3_query


def igmpv3_records(buf: bytearray, off: int, end: int):
    """(record type, group) of each group record of the IGMPv3 report at `off`,
    as br_ip4_multicast_igmp3_report() walks them; Truncated where one is cut short."""
    length = IGMPV3_REPORT_LEN
    for _ in range(NGREC_FIELD.unpack_from(buf, off)[0]):
        length += IGMPV3_GREC_LEN
        if off + length > end:
            raise Truncated(None, "IGMPv3 group record cut short")
        grec_type, _, nsrcs, group = GREC.unpack_from(buf, off + length - IGMPV3_GREC_LEN)
        length += nsrcs * 4
        if off + length > end:
            raise Truncated(None, "IGMPv3 group record sources cut short")
        yield grec_type, group, nsrcs


def build_query(code: int, group: int) -> bytearray:
    """A v2 query (8 bytes) with its checksum filled in."""
    message = bytearray(HEADER.pack(IGMP_HOST_MEMBERSHIP_QUERY, code, 0, group))
    struct.pack_into("!H", message, CSUM, checksum(message))
    return message


class IgmpHeader(HeaderView):
    """struct igmphdr."""

    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def type(self) -> int:
        return self.buf[self.off + TYPE]

    @property
    def code(self) -> int:
        """The max response time of a query, in tenths of a second."""
        return self.buf[self.off + CODE]

    @property
    def csum(self) -> int:
        return HEADER.unpack_from(self.buf, self.off)[2]

    @property
    def group(self) -> int:
        return HEADER.unpack_from(self.buf, self.off)[3]
