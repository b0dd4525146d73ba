"""ARP packet view for Ethernet/IPv4 (include/uapi/linux/if_arp.h)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire import Truncated

ARP_LEN = 28
ARPHRD_ETHER = 1
ARPOP_REQUEST, ARPOP_REPLY = 1, 2
_FMT = struct.Struct("!HHBBH6s4s6s4s")


class ArpPacket:
    __slots__ = ("buf", "off")

    def __init__(self, buf: bytearray, off: int):
        self.buf, self.off = buf, off

    def check_len(self) -> "ArpPacket":
        if len(self.buf) - self.off < ARP_LEN:
            raise Truncated(f"ARP needs {ARP_LEN} bytes, have {len(self.buf) - self.off}")
        return self

    def fields(self) -> tuple[int, int, int, int, int, bytes, bytes, bytes, bytes]:
        """(hrd, pro, hln, pln, op, sha, sip, tha, tip)."""
        return _FMT.unpack_from(self.buf, self.off)


def build(op: int, sha: bytes, sip: bytes, tha: bytes, tip: bytes) -> bytes:
    return _FMT.pack(ARPHRD_ETHER, 0x0800, 6, 4, op, sha, sip, tha, tip)
