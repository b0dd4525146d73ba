"""UDP header view (include/uapi/linux/udp.h, struct udphdr)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire import ipv4
from harness.mockkernel.wire.checksum import checksum, pseudo_header_sum
from harness.mockkernel.wire.errors import Malformed, Truncated
from harness.mockkernel.wire.ipv4 import IPPROTO_UDP
from harness.mockkernel.wire.view import HeaderView

UDP_HLEN = 8
# field offsets of struct udphdr
SOURCE, DEST, LEN, CHECK = 0, 2, 4, 6
HEADER = struct.Struct("!HHHH")  # source, dest, len, check
unpack = HEADER.unpack_from
PORTS = struct.Struct("!HH")  # source, dest
_U16 = struct.Struct("!H")


def check_len(buf: bytearray, off: int, end: int) -> tuple[int, int]:
    """(dest port, len) of the datagram at `off` after __udp4_lib_rcv()'s
    checks: the 8-byte header there, then len within the packet and covering
    the header (errors of those two have field "len")."""
    available = end - off
    if available < UDP_HLEN:
        raise Truncated(None, f"UDP header needs {UDP_HLEN} bytes, have {available}")
    _, dest, length, _ = HEADER.unpack_from(buf, off)
    if length > available:
        raise Truncated("len", f"UDP len {length} is over the {available} bytes there")
    if length < UDP_HLEN:
        raise Malformed("len", f"UDP len {length} is under the {UDP_HLEN}-byte header")
    return dest, length


def checksum_ok(buf: bytearray, nh: int, off: int, length: int) -> bool:
    """The datagram of `length` bytes at `off`, carried by the IPv4 header at
    `nh`: a zero checksum means none was sent (RFC 768); else it must verify."""
    if not _U16.unpack_from(buf, off + CHECK)[0]:
        return True
    return checksum(memoryview(buf)[off:off + length], ipv4.pseudo_header_sum(buf, nh, IPPROTO_UDP, length)) == 0


class UdpDatagram(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def sport(self) -> int:
        return _U16.unpack_from(self.buf, self.off + SOURCE)[0]

    @property
    def dport(self) -> int:
        return _U16.unpack_from(self.buf, self.off + DEST)[0]

    @property
    def length(self) -> int:
        return _U16.unpack_from(self.buf, self.off + LEN)[0]

    @property
    def check(self) -> int:
        return _U16.unpack_from(self.buf, self.off + CHECK)[0]

    @property
    def payload_offset(self) -> int:
        return self.off + UDP_HLEN

    def checksum_ok(self, nh: int) -> bool:
        """Against the pseudo-header of the IPv4 header at `nh`."""
        return checksum_ok(self.buf, nh, self.off, self.length)


def build(saddr: bytes, daddr: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """udp_send_skb() with a software checksum (0 is sent as 0xFFFF)."""
    length = UDP_HLEN + len(payload)
    seg = bytearray(HEADER.pack(sport, dport, length, 0)) + payload
    csum = checksum(seg, pseudo_header_sum(saddr, daddr, IPPROTO_UDP, length)) or 0xFFFF
    _U16.pack_into(seg, CHECK, csum)
    return bytes(seg)
