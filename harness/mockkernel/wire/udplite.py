"""UDP-Lite header view (RFC 3828: struct udphdr with the length field read
as the checksum coverage)."""
from __future__ import annotations

from harness.mockkernel.wire import udp
from harness.mockkernel.wire.errors import Truncated
from harness.mockkernel.wire.view import HeaderView

IPPROTO_UDPLITE = 136
UDPLITE_HLEN = udp.UDP_HLEN
SOURCE, DEST, CSCOV, CHECK = udp.SOURCE, udp.DEST, udp.LEN, udp.CHECK


def check_len(buf: bytearray, off: int, end: int) -> None:
    if end - off < UDPLITE_HLEN:
        raise Truncated(None, f"UDP-Lite header needs {UDPLITE_HLEN} bytes, have {end - off}")


class UdpliteDatagram(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def sport(self) -> int:
        return udp.unpack(self.buf, self.off)[0]

    @property
    def dport(self) -> int:
        return udp.unpack(self.buf, self.off)[1]

    @property
    def cscov(self) -> int:
        """Checksum coverage in bytes; 0: the whole datagram."""
        return udp.unpack(self.buf, self.off)[2]

    @property
    def check(self) -> int:
        return udp.unpack(self.buf, self.off)[3]
