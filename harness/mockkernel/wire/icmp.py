"""ICMP header view (include/uapi/linux/icmp.h, struct icmphdr)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.errors import Truncated
from harness.mockkernel.wire.view import HeaderView

ICMP_ECHOREPLY, ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT = 0, 3, 4, 5
ICMP_ECHO, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB = 8, 11, 12
ICMP_TIMESTAMP, ICMP_TIMESTAMPREPLY, ICMP_INFO_REQUEST, ICMP_INFO_REPLY = 13, 14, 15, 16
ICMP_ADDRESS, ICMP_ADDRESSREPLY = 17, 18
# codes
ICMP_NET_UNREACH, ICMP_HOST_UNREACH, ICMP_PROT_UNREACH, ICMP_PORT_UNREACH = 0, 1, 2, 3
ICMP_FRAG_NEEDED, ICMP_PKT_FILTERED = 4, 13
ICMP_EXC_TTL, ICMP_EXC_FRAGTIME = 0, 1
ERROR_TYPES = frozenset({ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT,
                         ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB})
# queries and their replies: the messages whose id icmp_manip_pkt() rewrites
QUERY_TYPES = frozenset({ICMP_ECHOREPLY, ICMP_ECHO, ICMP_TIMESTAMP, ICMP_TIMESTAMPREPLY, ICMP_INFO_REQUEST,
                         ICMP_INFO_REPLY, ICMP_ADDRESS, ICMP_ADDRESSREPLY})

ICMP_HLEN = 8
# field offsets of struct icmphdr; an error quotes the offending IP header at QUOTED
TYPE, CODE, CHECKSUM, ID, SEQUENCE, QUOTED = 0, 1, 2, 4, 6, 8
# of the offending packet's L4 header an error quotes at least 8 bytes (RFC 792):
# NAT rewrites ports in a quoted header only when they are there
QUOTED_L4_LEN = 8
# a timestamp message's three times after the header (RFC 792): originate, receive, transmit
ORIGINATE, TIMESTAMPS_LEN = 8, 12
HEADER = struct.Struct("!BBHHH")  # type, code, checksum, id, sequence
CHECK_ID = struct.Struct("!HH")  # checksum and id, from CHECKSUM
_HEADER_REST = struct.Struct("!BBHI")  # type, code, checksum, the rest of the header as one word
_U16 = struct.Struct("!H")


def check_len(buf: bytearray, off: int, end: int) -> None:
    """icmp_rcv(): pskb_may_pull(sizeof(struct icmphdr))."""
    if end - off < ICMP_HLEN:
        raise Truncated(None, f"ICMP header needs {ICMP_HLEN} bytes, have {end - off}")


def timestamp_reply(buf: bytearray, off: int, now_ms: int) -> bytearray:
    """icmp_timestamp()'s answer to the timestamp request at `off`: its header as
    type 14 code 0 (id and sequence kept), its originate time, then `now_ms` as
    receive and transmit time; the checksum left to fill (the request's data past
    its first 4 bytes is not sent back: head_len is the header and 12 bytes)."""
    reply = bytearray(buf[off:off + ORIGINATE + 4]) + now_ms.to_bytes(4, "big") * 2
    reply[TYPE], reply[CODE] = ICMP_TIMESTAMPREPLY, 0
    return reply


def echo_id(buf: bytearray, off: int) -> int:
    return _U16.unpack_from(buf, off + ID)[0]


def fill_checksum(buf: bytearray, off: int, end: int, initial: int = 0) -> None:
    """The message's checksum over `off`..`end` (plus `initial`), written in place."""
    _U16.pack_into(buf, off + CHECKSUM, 0)
    _U16.pack_into(buf, off + CHECKSUM, checksum(memoryview(buf)[off:end], initial))


class IcmpMessage(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def type(self) -> int:
        return self.buf[self.off + TYPE]

    @type.setter
    def type(self, value: int) -> None:
        self.buf[self.off + TYPE] = value

    @property
    def code(self) -> int:
        return self.buf[self.off + CODE]

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self.buf, self.off + CHECKSUM)[0]

    @property
    def echo_id(self) -> int:
        return _U16.unpack_from(self.buf, self.off + ID)[0]

    @echo_id.setter
    def echo_id(self, value: int) -> None:
        _U16.pack_into(self.buf, self.off + ID, value)

    @property
    def quoted_offset(self) -> int:
        """Where an error's quoted IP header starts."""
        return self.off + QUOTED

    def checksum_ok(self, end: int) -> bool:
        return checksum(memoryview(self.buf)[self.off:end]) == 0


def build(icmp_type: int, code: int, rest: int, payload: bytes) -> bytes:
    """An ICMP message: type, code, checksum, the 32-bit rest of the header
    (an error's unused word or MTU, a query's id and sequence), then payload."""
    msg = bytearray(_HEADER_REST.pack(icmp_type, code, 0, rest)) + payload
    fill_checksum(msg, 0, len(msg))
    return bytes(msg)
