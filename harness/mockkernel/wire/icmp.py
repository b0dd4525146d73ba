"""ICMP header view (include/uapi/linux/icmp.h)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire import Truncated
from harness.mockkernel.wire.checksum import checksum

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


class IcmpMessage:
    __slots__ = ("buf", "off")

    def __init__(self, buf: bytearray, off: int):
        self.buf, self.off = buf, off

    def check_len(self, available: int) -> "IcmpMessage":
        if available < 8:
            raise Truncated("ICMP header needs 8 bytes")
        return self

    @property
    def type(self) -> int:
        return self.buf[self.off]

    @property
    def code(self) -> int:
        return self.buf[self.off + 1]

    @property
    def echo_id(self) -> int:
        return struct.unpack_from("!H", self.buf, self.off + 4)[0]


def build(icmp_type: int, code: int, rest: bytes, payload: bytes) -> bytes:
    """An ICMP message: type, code, checksum, the 4 `rest` bytes, then payload."""
    msg = bytearray(struct.pack("!BBH", icmp_type, code, 0)) + rest + payload
    struct.pack_into("!H", msg, 2, checksum(msg))
    return bytes(msg)
