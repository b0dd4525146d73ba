"""ARP packet view for Ethernet/IPv4 (include/uapi/linux/if_arp.h, struct arphdr)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire.errors import Malformed, Truncated
from harness.mockkernel.wire.view import HeaderView

ARP_LEN = 28  # arp_hdr_len() of an Ethernet device: 8 + 2 * (6 + 4)
ARPHRD_ETHER, ARPHRD_IEEE802 = 1, 6
ARPOP_REQUEST, ARPOP_REPLY = 1, 2
# field offsets of struct arphdr and the Ethernet/IPv4 addresses after it
HRD, PRO, HLN, PLN, OP, SHA, SIP, THA, TIP = 0, 2, 4, 5, 6, 8, 14, 18, 24
HEADER = struct.Struct("!HHBBH6s4s6s4s")


def check_len(buf: bytearray, off: int, end: int) -> None:
    """arp_rcv(): the header with Ethernet/IPv4 addresses is there
    (pskb_may_pull(arp_hdr_len(dev))), and its address lengths say so."""
    if end - off < ARP_LEN:
        raise Truncated(None, f"ARP needs {ARP_LEN} bytes, have {end - off}")
    if buf[off + HLN] != 6:
        raise Malformed("hln", f"ARP hardware address length {buf[off + HLN]}, Ethernet's is 6")
    if buf[off + PLN] != 4:
        raise Malformed("pln", f"ARP protocol address length {buf[off + PLN]}, IPv4's is 4")


class ArpPacket(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    def fields(self) -> tuple[int, int, int, int, int, bytes, bytes, bytes, bytes]:
        """(hrd, pro, hln, pln, op, sha, sip, tha, tip)."""
        return HEADER.unpack_from(self.buf, self.off)

    @property
    def op(self) -> int:
        return HEADER.unpack_from(self.buf, self.off)[4]

    @property
    def sip(self) -> bytes:
        return bytes(self.buf[self.off + SIP:self.off + SIP + 4])

    @property
    def tip(self) -> bytes:
        return bytes(self.buf[self.off + TIP:self.off + TIP + 4])


def build(op: int, sha: bytes, sip: bytes, tha: bytes, tip: bytes) -> bytes:
    return HEADER.pack(ARPHRD_ETHER, 0x0800, 6, 4, op, sha, sip, tha, tip)
