"""UDP header view (include/uapi/linux/udp.h)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire import Truncated
from harness.mockkernel.wire.checksum import checksum, pseudo_header_sum
from harness.mockkernel.wire.ipv4 import IPPROTO_UDP

UDP_HLEN = 8


class UdpDatagram:
    __slots__ = ("buf", "off")

    def __init__(self, buf: bytearray, off: int):
        self.buf, self.off = buf, off

    def check_len(self, available: int) -> "UdpDatagram":
        if available < UDP_HLEN:
            raise Truncated("UDP header needs 8 bytes")
        return self

    @property
    def sport(self) -> int:
        return struct.unpack_from("!H", self.buf, self.off)[0]

    @property
    def dport(self) -> int:
        return struct.unpack_from("!H", self.buf, self.off + 2)[0]

    @property
    def length(self) -> int:
        return struct.unpack_from("!H", self.buf, self.off + 4)[0]

    @property
    def check(self) -> int:
        return struct.unpack_from("!H", self.buf, self.off + 6)[0]

    def checksum_ok(self, saddr: bytes, daddr: bytes) -> bool:
        """A zero checksum means none was sent (RFC 768); else it must verify."""
        if self.check == 0:
            return True
        end = self.off + self.length
        return checksum(memoryview(self.buf)[self.off:end],
                        pseudo_header_sum(saddr, daddr, IPPROTO_UDP, self.length)) == 0


def build(saddr: bytes, daddr: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """udp_send_skb() with a software checksum (0 is sent as 0xFFFF)."""
    length = UDP_HLEN + len(payload)
    seg = bytearray(struct.pack("!HHHH", sport, dport, length, 0)) + payload
    csum = checksum(seg, pseudo_header_sum(saddr, daddr, IPPROTO_UDP, length)) or 0xFFFF
    struct.pack_into("!H", seg, 6, csum)
    return bytes(seg)
