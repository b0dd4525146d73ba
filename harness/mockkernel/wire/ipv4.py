"""IPv4 header view (include/uapi/linux/ip.h, struct iphdr)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire import Truncated
from harness.mockkernel.wire.checksum import checksum

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 1, 6, 17
IP_DF, IP_MF, IP_OFFSET = 0x4000, 0x2000, 0x1FFF
IPOPT_LSRR, IPOPT_SSRR = 0x83, 0x89
PROTO_NAMES = {IPPROTO_ICMP: "icmp", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}
_LE16 = struct.Struct("<H")


class Ipv4Packet:
    __slots__ = ("buf", "off")

    def __init__(self, buf: bytearray, off: int):
        self.buf, self.off = buf, off

    def check_len(self) -> "Ipv4Packet":
        if len(self.buf) - self.off < 20:
            raise Truncated("IPv4 header needs 20 bytes")
        return self

    @property
    def version(self) -> int:
        return self.buf[self.off] >> 4

    @property
    def ihl(self) -> int:
        return self.buf[self.off] & 0x0F

    @property
    def header_len(self) -> int:
        return (self.buf[self.off] & 0x0F) * 4

    @property
    def tos(self) -> int:
        return self.buf[self.off + 1]

    @property
    def tot_len(self) -> int:
        return struct.unpack_from("!H", self.buf, self.off + 2)[0]

    @tot_len.setter
    def tot_len(self, value: int) -> None:
        struct.pack_into("!H", self.buf, self.off + 2, value)

    @property
    def id(self) -> int:
        return struct.unpack_from("!H", self.buf, self.off + 4)[0]

    @property
    def frag_off(self) -> int:
        """Flags and offset as one 16-bit field, as the kernel keeps it."""
        return struct.unpack_from("!H", self.buf, self.off + 6)[0]

    @frag_off.setter
    def frag_off(self, value: int) -> None:
        struct.pack_into("!H", self.buf, self.off + 6, value)

    @property
    def ttl(self) -> int:
        return self.buf[self.off + 8]

    @property
    def protocol(self) -> int:
        return self.buf[self.off + 9]

    @property
    def check(self) -> int:
        return struct.unpack_from("!H", self.buf, self.off + 10)[0]

    @property
    def saddr(self) -> int:
        return struct.unpack_from("!I", self.buf, self.off + 12)[0]

    @saddr.setter
    def saddr(self, value: int) -> None:
        struct.pack_into("!I", self.buf, self.off + 12, value)

    @property
    def daddr(self) -> int:
        return struct.unpack_from("!I", self.buf, self.off + 16)[0]

    @daddr.setter
    def daddr(self, value: int) -> None:
        struct.pack_into("!I", self.buf, self.off + 16, value)

    def header_bytes(self) -> bytes:
        return bytes(self.buf[self.off:self.off + self.header_len])

    def checksum_ok(self) -> bool:
        """ip_fast_csum(iph, ihl) == 0."""
        return checksum(memoryview(self.buf)[self.off:self.off + self.header_len]) == 0

    def fill_checksum(self) -> None:
        """ip_send_check()."""
        struct.pack_into("!H", self.buf, self.off + 10, 0)
        struct.pack_into("!H", self.buf, self.off + 10,
                         checksum(memoryview(self.buf)[self.off:self.off + self.header_len]))

    def decrease_ttl(self) -> int:
        return ip_decrease_ttl(self.buf, self.off)

    def summary(self) -> str:
        proto = PROTO_NAMES.get(self.protocol, str(self.protocol))
        frag = self.frag_off
        flags = ("DF " if frag & IP_DF else "") + ("MF " if frag & IP_MF else "")
        offset = f"off={(frag & IP_OFFSET) * 8} " if frag & IP_OFFSET else ""
        return (f"{ip_str(self.saddr)} > {ip_str(self.daddr)} {proto} id={self.id} ttl={self.ttl} "
                f"{flags}{offset}len={self.tot_len}")


def ip_decrease_ttl(buf: bytearray, off: int) -> int:
    """ip_decrease_ttl() on the header at `off`: the kernel's incremental
    update, done on the little-endian load of the field as x86 does, so the
    checksum bytes (including its 0xFFFF -> 0 folding) come out as Linux
    makes them. Returns the new TTL."""
    (check,) = _LE16.unpack_from(buf, off + 10)
    check += 0x0001  # htons(0x0100) on a little-endian CPU
    _LE16.pack_into(buf, off + 10, (check + (check >= 0xFFFF)) & 0xFFFF)
    buf[off + 8] -= 1
    return buf[off + 8]


def ip_str(value: int) -> str:
    """An address as dotted quad (faster than ipaddress for per-packet text)."""
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def build_header(saddr: int, daddr: int, protocol: int, payload_len: int, ttl: int = 64,
                 tos: int = 0, ident: int = 0, frag_off: int = 0) -> bytearray:
    """A 20-byte header with its checksum filled in."""
    hdr = bytearray(struct.pack("!BBHHHBBHII", 0x45, tos, 20 + payload_len, ident, frag_off,
                                ttl, protocol, 0, saddr, daddr))
    Ipv4Packet(hdr, 0).fill_checksum()
    return hdr
