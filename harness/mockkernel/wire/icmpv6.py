"""ICMPv6 header view (include/uapi/linux/icmpv6.h, struct icmp6hdr).

The checksum covers the IPv6 pseudo-header (RFC 4443 2.3): checksum_ok() and
fill_checksum() take the sum of the carrying header's addresses and length
(wire/ipv6.py pseudo_header_sum()).
"""
from __future__ import annotations

import struct

from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.errors import Truncated
from harness.mockkernel.wire.view import HeaderView

ICMPV6_DEST_UNREACH, ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED, ICMPV6_PARAMPROB = 1, 2, 3, 4
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
ICMPV6_MGM_QUERY, ICMPV6_MGM_REPORT, ICMPV6_MGM_REDUCTION, ICMPV6_MLD2_REPORT = 130, 131, 132, 143
NDISC_ROUTER_SOLICITATION, NDISC_ROUTER_ADVERTISEMENT = 133, 134
NDISC_NEIGHBOUR_SOLICITATION, NDISC_NEIGHBOUR_ADVERTISEMENT, NDISC_REDIRECT = 135, 136, 137
# codes
ICMPV6_NOROUTE, ICMPV6_ADM_PROHIBITED, ICMPV6_NOT_NEIGHBOUR, ICMPV6_ADDR_UNREACH = 0, 1, 2, 3
ICMPV6_PORT_UNREACH, ICMPV6_POLICY_FAIL, ICMPV6_REJECT_ROUTE = 4, 5, 6
ICMPV6_EXC_HOPLIMIT, ICMPV6_EXC_FRAGTIME = 0, 1
ICMPV6_HDR_FIELD, ICMPV6_UNK_NEXTHDR, ICMPV6_UNK_OPTION, ICMPV6_HDR_INCOMP = 0, 1, 2, 3
ICMPV6_INFOMSG_MASK = 0x80  # types from 128 are informational, below errors

ICMPV6_HLEN = 8
# field offsets of struct icmp6hdr; an error quotes the offending packet at QUOTED
TYPE, CODE, CHECKSUM, ID, SEQUENCE, QUOTED = 0, 1, 2, 4, 6, 8
HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_HEADER_REST = struct.Struct("!BBHI")  # type, code, checksum, the 32-bit rest (mtu, pointer, id/seq)
_U16 = struct.Struct("!H")


def check_len(buf: bytearray, off: int, end: int) -> None:
    """icmpv6_rcv(): pskb_may_pull(sizeof(struct icmp6hdr))."""
    if end - off < ICMPV6_HLEN:
        raise Truncated(None, f"ICMPv6 header needs {ICMPV6_HLEN} bytes, have {end - off}")


def is_error(icmp_type: int) -> bool:
    return not icmp_type & ICMPV6_INFOMSG_MASK


def checksum_ok(buf: bytearray, off: int, end: int, pseudo_sum: int) -> bool:
    """The message at `off`..`end` verifies against the pseudo-header's sum."""
    return checksum(memoryview(buf)[off:end], pseudo_sum) == 0


def fill_checksum(buf: bytearray, off: int, end: int, pseudo_sum: int) -> None:
    _U16.pack_into(buf, off + CHECKSUM, 0)
    _U16.pack_into(buf, off + CHECKSUM, checksum(memoryview(buf)[off:end], pseudo_sum))


def build(icmp_type: int, code: int, rest: int, payload: bytes) -> bytearray:
    """A message with its checksum field 0 (filled once the addresses are known)."""
    return bytearray(_HEADER_REST.pack(icmp_type, code, 0, rest)) + payload


class Icmpv6Message(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def type(self) -> int:
        return self.buf[self.off + TYPE]

    @property
    def code(self) -> int:
        return self.buf[self.off + CODE]

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self.buf, self.off + CHECKSUM)[0]

    @property
    def rest(self) -> int:
        """The 32 bits after the checksum: an error's MTU or pointer."""
        return _HEADER_REST.unpack_from(self.buf, self.off)[3]

    @property
    def echo_id(self) -> int:
        return _U16.unpack_from(self.buf, self.off + ID)[0]

    @property
    def sequence(self) -> int:
        return _U16.unpack_from(self.buf, self.off + SEQUENCE)[0]

    @property
    def quoted_offset(self) -> int:
        return self.off + QUOTED
