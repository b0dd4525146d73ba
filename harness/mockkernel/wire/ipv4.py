"""IPv4 header view (include/uapi/linux/ip.h, struct iphdr).

The hot path reads a header with one load: HEADER (every field) or one of the
narrower projections below, each a precompiled Struct applied at the header's
start (pad bytes skip what it does not need). check_len() checks what
ip_rcv_core() checks of the header itself; the checksum is verified between
its two groups of checks by the caller, in the kernel's order.
"""
from __future__ import annotations

import struct

from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.errors import Malformed, Truncated
from harness.mockkernel.wire.view import HeaderView

IPPROTO_ICMP, IPPROTO_IGMP, IPPROTO_TCP, IPPROTO_UDP = 1, 2, 6, 17
IP_DF, IP_MF, IP_OFFSET = 0x4000, 0x2000, 0x1FFF
IPOPT_END, IPOPT_NOOP, IPOPT_LSRR, IPOPT_SSRR = 0, 1, 0x83, 0x89
# an option's bytes after its type: length, pointer, and a timestamp's overflow/flags
IPOPT_OLEN, IPOPT_OFFSET, IPOPT_TS_FLAGS = 1, 2, 3
PROTO_NAMES = {IPPROTO_ICMP: "icmp", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}
IPTOS_TOS_MASK = 0x1E

IPV4_MIN_HLEN = 20
# field offsets of struct iphdr
VERSION_IHL, TOS, TOT_LEN, ID, FRAG_OFF, TTL, PROTOCOL, CHECK, SADDR, DADDR = 0, 1, 2, 4, 6, 8, 9, 10, 12, 16

HEADER = struct.Struct("!BBHHHBBHII")  # version/ihl, tos, tot_len, id, frag_off, ttl, protocol, check, saddr, daddr
unpack = HEADER.unpack_from
# projections, applied at the header's start
TUPLE_FIELDS = struct.Struct("!B8xB2xII")  # version/ihl, protocol, saddr, daddr: nf_ct_get_tuple()
NAT_FIELDS = struct.Struct("!B5xHxBHII")  # version/ihl, frag_off, protocol, check, saddr, daddr: manip_pkt
ADDRS = struct.Struct("!12xII")  # saddr, daddr
DADDR_FIELD = struct.Struct("!16xI")
SADDR_FIELD = struct.Struct("!12xI")
FRAG_OFF_PROTOCOL = struct.Struct("!6xHxB")  # frag_off, protocol
PKTINFO_FIELDS = struct.Struct("!B5xHxB")  # version/ihl, frag_off, protocol: nft_set_pktinfo_ipv4()
RCV_FINISH_FIELDS = struct.Struct("!BB7xB2xII")  # version/ihl, tos, protocol, saddr, daddr: ip_rcv_finish()
ROUTE_FIELDS = struct.Struct("!xB10xII")  # tos, saddr, daddr: what a re-route after OUTPUT's chains depends on
IHL_TOT_LEN = struct.Struct("!BxH")  # version/ihl, tot_len
# written at CHECK: the checksum and both addresses in one store (NAT)
CHECK_ADDRS = struct.Struct("!HII")
_U16 = struct.Struct("!H")
_TTL_PROTOCOL_LE_CHECK = struct.Struct("<BBH")  # the checksum as x86 loads it: ip_decrease_ttl()
# the header length in bytes for each value of the first byte (ihl * 4)
HEADER_LEN = tuple((first & 0x0F) * 4 for first in range(256))


def check_len(buf: bytearray, off: int, end: int) -> tuple[int, int]:
    """(header length, tot_len) of the header at `off` of a packet ending at
    `end`, after ip_rcv_core()'s checks in its order: 20 bytes, IHL >= 5 and
    version 4, the IHL's bytes there; then tot_len within the packet and
    covering the header (the caller checks the checksum before those two:
    their errors have field "tot_len")."""
    length = end - off
    if length < IPV4_MIN_HLEN:
        raise Truncated(None, f"IPv4 header needs {IPV4_MIN_HLEN} bytes, have {length}")
    first = buf[off]
    hlen = HEADER_LEN[first]
    if hlen < IPV4_MIN_HLEN:
        raise Malformed("ihl", f"IPv4 IHL {hlen // 4} is under 5")
    if first >> 4 != 4:
        raise Malformed("version", f"IP version {first >> 4} in an IPv4 header")
    if length < hlen:
        raise Truncated("ihl", f"IPv4 IHL says {hlen} header bytes, have {length}")
    tot_len = _U16.unpack_from(buf, off + TOT_LEN)[0]
    if length < tot_len:
        raise Truncated("tot_len", f"IPv4 tot_len {tot_len} is over the {length} bytes there")
    if tot_len < hlen:
        raise Malformed("tot_len", f"IPv4 tot_len {tot_len} is under the header's {hlen} bytes")
    return hlen, tot_len


def rcv_header_ok(buf: bytearray, off: int, end: int) -> int:
    """The tot_len of a header that passes every check of ip_rcv_core()
    (check_len()'s and the checksum), 0 if one fails: the receive path's one
    call for a good header; check_len() and checksum_ok() then say which
    check failed, in the kernel's order."""
    if end - off < IPV4_MIN_HLEN:
        return 0
    first, tot_len = IHL_TOT_LEN.unpack_from(buf, off)
    hlen = HEADER_LEN[first]
    if first >> 4 != 4 or hlen < IPV4_MIN_HLEN or tot_len < hlen or end - off < tot_len:
        return 0
    value = int.from_bytes(buf[off:off + hlen], "big")
    return tot_len if value and not value % 0xFFFF else 0


def checksum_ok(buf: bytearray, off: int, hlen: int) -> bool:
    """ip_fast_csum(iph, ihl) == 0: the ones'-complement sum of the header's
    words folds to 0xFFFF, i.e. (checksum.py) the header read as one integer
    is a non-zero multiple of 0xFFFF (the header length is always even)."""
    value = int.from_bytes(buf[off:off + hlen], "big")
    return value != 0 and value % 0xFFFF == 0


def fill_checksum(buf: bytearray, off: int) -> None:
    """ip_send_check(): the header checksum over IHL * 4 bytes."""
    _U16.pack_into(buf, off + CHECK, 0)
    _U16.pack_into(buf, off + CHECK, checksum(memoryview(buf)[off:off + HEADER_LEN[buf[off]]]))


def pseudo_header_sum(buf: bytearray, off: int, protocol: int, length: int) -> int:
    """csum_tcpudp_nofold() of this header's addresses, `protocol` and the L4
    `length`: the folded sum a TCP or UDP checksum starts from."""
    return 0xFFFF - checksum(buf[off + SADDR:off + DADDR + 4], protocol + length)


class Ipv4Packet(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def version(self) -> int:
        return self.buf[self.off] >> 4

    @property
    def ihl(self) -> int:
        return self.buf[self.off] & 0x0F

    @property
    def header_len(self) -> int:
        return HEADER_LEN[self.buf[self.off]]

    @property
    def payload_offset(self) -> int:
        return self.off + HEADER_LEN[self.buf[self.off]]

    @property
    def tos(self) -> int:
        return self.buf[self.off + TOS]

    @tos.setter
    def tos(self, value: int) -> None:
        self.buf[self.off + TOS] = value

    @property
    def tot_len(self) -> int:
        return _U16.unpack_from(self.buf, self.off + TOT_LEN)[0]

    @tot_len.setter
    def tot_len(self, value: int) -> None:
        _U16.pack_into(self.buf, self.off + TOT_LEN, value)

    @property
    def id(self) -> int:
        return _U16.unpack_from(self.buf, self.off + ID)[0]

    @id.setter
    def id(self, value: int) -> None:
        _U16.pack_into(self.buf, self.off + ID, value)

    @property
    def frag_off(self) -> int:
        """Flags and offset as one 16-bit field, as the kernel keeps it."""
        return _U16.unpack_from(self.buf, self.off + FRAG_OFF)[0]

    @frag_off.setter
    def frag_off(self, value: int) -> None:
        _U16.pack_into(self.buf, self.off + FRAG_OFF, value)

    @property
    def ttl(self) -> int:
        return self.buf[self.off + TTL]

    @ttl.setter
    def ttl(self, value: int) -> None:
        self.buf[self.off + TTL] = value

    @property
    def protocol(self) -> int:
        return self.buf[self.off + PROTOCOL]

    @property
    def check(self) -> int:
        return _U16.unpack_from(self.buf, self.off + CHECK)[0]

    @property
    def saddr(self) -> int:
        return SADDR_FIELD.unpack_from(self.buf, self.off)[0]

    @saddr.setter
    def saddr(self, value: int) -> None:
        struct.pack_into("!I", self.buf, self.off + SADDR, value)

    @property
    def daddr(self) -> int:
        return DADDR_FIELD.unpack_from(self.buf, self.off)[0]

    @daddr.setter
    def daddr(self, value: int) -> None:
        struct.pack_into("!I", self.buf, self.off + DADDR, value)

    @property
    def saddr_bytes(self) -> bytes:
        return bytes(self.buf[self.off + SADDR:self.off + SADDR + 4])

    @property
    def daddr_bytes(self) -> bytes:
        return bytes(self.buf[self.off + DADDR:self.off + DADDR + 4])

    def header_bytes(self) -> bytes:
        return bytes(self.buf[self.off:self.off + self.header_len])

    def checksum_ok(self) -> bool:
        return checksum_ok(self.buf, self.off, self.header_len)

    def fill_checksum(self) -> None:
        fill_checksum(self.buf, self.off)

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
    ttl, protocol, check = _TTL_PROTOCOL_LE_CHECK.unpack_from(buf, off + TTL)
    check += 0x0001  # htons(0x0100) on a little-endian CPU
    ttl -= 1
    _TTL_PROTOCOL_LE_CHECK.pack_into(buf, off + TTL, ttl, protocol, (check + (check >= 0xFFFF)) & 0xFFFF)
    return ttl


def ip_str(value: int) -> str:
    """An address as dotted quad (faster than ipaddress for per-packet text)."""
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def build_header(saddr: int, daddr: int, protocol: int, payload_len: int, ttl: int = 64,
                 tos: int = 0, ident: int = 0, frag_off: int = 0, options: bytes = b"") -> bytearray:
    """A header (20 bytes and `options`, a multiple of 4) with its checksum filled in."""
    hlen = IPV4_MIN_HLEN + len(options)
    hdr = bytearray(HEADER.pack(0x40 | hlen // 4, tos, hlen + payload_len, ident, frag_off, ttl, protocol, 0,
                                saddr, daddr)) + options
    fill_checksum(hdr, 0)
    return hdr
