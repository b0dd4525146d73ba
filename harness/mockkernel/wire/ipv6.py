"""IPv6 header and extension header views (include/uapi/linux/ipv6.h struct
ipv6hdr, ipv6_opt_hdr, frag_hdr, ipv6_rt_hdr; include/net/ipv6.h NEXTHDR_*).

Addresses cross module boundaries as 16-byte `bytes` (a slice of the frame,
hashable); text only at the edges (addr_str()). The hot path reads the fixed
header with one load (HEADER, or a narrower projection at the header's start).
check_len() checks what ip6_rcv_core() checks of the header itself; the
address rules (loopback, multicast scope, multicast source) are the caller's,
in the kernel's order. ipv6_addr_type() classifies an address as
net/ipv6/addrconf_core.c __ipv6_addr_type() does, for the bits the model uses.
"""
from __future__ import annotations

import ipaddress
import socket
import struct

from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.errors import Malformed, Truncated
from harness.mockkernel.wire.view import HeaderView

# include/net/ipv6.h
NEXTHDR_HOP, NEXTHDR_TCP, NEXTHDR_UDP, NEXTHDR_IPV6 = 0, 6, 17, 41
NEXTHDR_ROUTING, NEXTHDR_FRAGMENT, NEXTHDR_GRE, NEXTHDR_ESP, NEXTHDR_AUTH = 43, 44, 47, 50, 51
NEXTHDR_ICMP, NEXTHDR_NONE, NEXTHDR_DEST, NEXTHDR_MOBILITY = 58, 59, 60, 135
IPPROTO_ICMPV6 = NEXTHDR_ICMP
# ipv6_ext_hdr(): the headers ipv6_skip_exthdr() walks over
EXTENSION_HEADERS = frozenset({NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT, NEXTHDR_AUTH, NEXTHDR_NONE,
                               NEXTHDR_DEST})
PROTO_NAMES = {NEXTHDR_TCP: "tcp", NEXTHDR_UDP: "udp", NEXTHDR_ICMP: "icmpv6", NEXTHDR_HOP: "hbh",
               NEXTHDR_ROUTING: "rt", NEXTHDR_FRAGMENT: "frag", NEXTHDR_DEST: "dst", NEXTHDR_NONE: "none"}
IPV6_MIN_MTU = 1280
IPV6_MAXPLEN = 65535

IPV6_HLEN = 40
# field offsets of struct ipv6hdr
VERSION_TCLASS_FLOW, PAYLOAD_LEN, NEXTHDR, HOP_LIMIT, SADDR, DADDR = 0, 4, 6, 7, 8, 24
HEADER = struct.Struct("!IHBB16s16s")  # version/tclass/flow label, payload_len, nexthdr, hop_limit, saddr, daddr
unpack = HEADER.unpack_from
# projections, applied at the header's start
RCV_FIELDS = struct.Struct("!B3xHB1x16s16s")  # version/tclass high nibble, payload_len, nexthdr, saddr, daddr
ADDRS = struct.Struct("!8x16s16s")  # saddr, daddr
FLOWINFO_ADDRS = struct.Struct("!I4x16s16s")  # version/tclass/flow label, saddr, daddr
IPV6_FLOWINFO_MASK = 0x0FFFFFFF  # ip6_flowinfo(): traffic class and flow label
DADDR_FIELD = struct.Struct("!24x16s")
PAYLOAD_LEN_NEXTHDR = struct.Struct("!4xHB")
_U16 = struct.Struct("!H")

# struct frag_hdr: nexthdr, reserved, frag_off (offset << 3 | M), identification
FRAG_HLEN = 8
FRAG_HEADER = struct.Struct("!BxHI")
FRAG_OFF = 2  # field offset in struct frag_hdr
# field offsets of struct ipv6_opt_hdr (and the first two of ipv6_rt_hdr, ip_auth_hdr)
OPT_NEXTHDR, OPT_HDRLEN = 0, 1
RT_TYPE, RT_SEGMENTS_LEFT = 2, 3  # of struct ipv6_rt_hdr
IP6_MF, IP6_OFFSET = 0x0001, 0xFFF8
# struct ipv6_opt_hdr (hop-by-hop, destination options, routing): nexthdr, hdrlen in 8-octet units less one
OPT_HEADER = struct.Struct("!BB")
# struct ipv6_rt_hdr: nexthdr, hdrlen, type, segments_left
RT_HEADER = struct.Struct("!BBBB")
# TLV option types (include/uapi/linux/in6.h, ipv6.h)
IPV6_TLV_PAD1, IPV6_TLV_PADN, IPV6_TLV_ROUTERALERT, IPV6_TLV_JUMBO = 0, 1, 5, 0xC2
# field offsets of an option (type, length, data) in a hop-by-hop or destination options header
TLV_TYPE, TLV_LEN, TLV_DATA = 0, 1, 2
# what a node that does not know an option does, by its type's two top bits (RFC 8200 4.2)
TLV_ACTION_SKIP, TLV_ACTION_DISCARD, TLV_ACTION_REPORT, TLV_ACTION_REPORT_UNICAST = 0, 1, 2, 3
_U32 = struct.Struct("!I")

# include/net/ipv6.h / addrconf.h address types
IPV6_ADDR_ANY, IPV6_ADDR_UNICAST, IPV6_ADDR_MULTICAST = 0x0000, 0x0001, 0x0002
IPV6_ADDR_LOOPBACK, IPV6_ADDR_LINKLOCAL, IPV6_ADDR_SITELOCAL = 0x0010, 0x0020, 0x0040
IPV6_ADDR_MAPPED = 0x1000
IPV6_ADDR_SCOPE_NODELOCAL, IPV6_ADDR_SCOPE_LINKLOCAL = 0x01, 0x02
ANY = bytes(16)
LOOPBACK = bytes(15) + b"\x01"


def check_len(buf: bytearray, off: int, end: int) -> int:
    """The payload_len of the header at `off` of a packet ending at `end`,
    after ip6_rcv_core()'s own checks of it: 40 bytes there, version 6
    (field "version"), payload_len within the packet (field "payload_len";
    0 with a hop-by-hop header is a jumbogram's, checked by its option)."""
    length = end - off
    if length < IPV6_HLEN:
        raise Truncated(None, f"IPv6 header needs {IPV6_HLEN} bytes, have {length}")
    if buf[off] >> 4 != 6:
        raise Malformed("version", f"IP version {buf[off] >> 4} in an IPv6 header")
    payload_len, nexthdr = PAYLOAD_LEN_NEXTHDR.unpack_from(buf, off)
    if (payload_len or nexthdr != NEXTHDR_HOP) and IPV6_HLEN + payload_len > length:
        raise Truncated("payload_len", f"IPv6 payload_len {payload_len} is over the "
                                       f"{length - IPV6_HLEN} bytes after the header")
    return payload_len


def is_multicast(addr: bytes) -> bool:
    return addr[0] == 0xFF


def mc_scope(addr: bytes) -> int:
    """IPV6_ADDR_MC_SCOPE(): the scope nibble of a multicast address."""
    return addr[1] & 0x0F


def is_linklocal(addr: bytes) -> bool:
    """fe80::/10 (ipv6_addr_type()'s IPV6_ADDR_LINKLOCAL for unicast)."""
    return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def ipv6_addr_type(addr: bytes) -> int:
    """__ipv6_addr_type() for the classes the model tells apart: multicast,
    unspecified, loopback, v4-mapped, link-local and site-local unicast, else
    global unicast."""
    if addr[0] == 0xFF:
        return IPV6_ADDR_MULTICAST
    if addr == ANY:
        return IPV6_ADDR_ANY
    if addr == LOOPBACK:
        return IPV6_ADDR_UNICAST | IPV6_ADDR_LOOPBACK
    if addr[:12] == b"\0" * 10 + b"\xff\xff":
        return IPV6_ADDR_MAPPED
    if addr[0] == 0xFE and addr[1] & 0xC0 == 0x80:
        return IPV6_ADDR_UNICAST | IPV6_ADDR_LINKLOCAL
    if addr[0] == 0xFE and addr[1] & 0xC0 == 0xC0:
        return IPV6_ADDR_UNICAST | IPV6_ADDR_SITELOCAL
    return IPV6_ADDR_UNICAST


def addr_str(addr: bytes) -> str:
    """RFC 5952 text as inet_ntop() (and so iproute2) prints it: a v4-mapped
    address ends in a dotted quad (::ffff:10.0.0.2), as ipaddress does not print it."""
    return socket.inet_ntop(socket.AF_INET6, bytes(addr))


def addr_bytes(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def pseudo_header_sum(buf: bytearray, off: int, nexthdr: int, length: int) -> int:
    """csum_ipv6_magic()'s folded sum for this header's addresses, the
    upper-layer `length` and `nexthdr`: what an L4 checksum starts from."""
    return 0xFFFF - checksum(buf[off + SADDR:off + DADDR + 16], nexthdr + length)


def addrs_pseudo_header_sum(saddr: bytes, daddr: bytes, nexthdr: int, length: int) -> int:
    """The same sum for a header not yet written."""
    return 0xFFFF - checksum(saddr + daddr, nexthdr + length)


def build_header(saddr: bytes, daddr: bytes, nexthdr: int, payload_len: int, hop_limit: int = 64,
                 tclass: int = 0, flowlabel: int = 0) -> bytearray:
    """ip6_flow_hdr() + the rest of struct ipv6hdr: 40 bytes."""
    return bytearray(HEADER.pack(0x60000000 | tclass << 20 | flowlabel, payload_len, nexthdr, hop_limit,
                                 saddr, daddr))


class Ipv6Packet(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def version(self) -> int:
        return self.buf[self.off] >> 4

    @property
    def tclass(self) -> int:
        return (unpack(self.buf, self.off)[0] >> 20) & 0xFF

    @tclass.setter
    def tclass(self, value: int) -> None:
        """ipv6_change_dsfield(): the traffic class, across the first two bytes."""
        word = _U32.unpack_from(self.buf, self.off)[0]
        _U32.pack_into(self.buf, self.off, (word & ~(0xFF << 20)) | value << 20)

    @property
    def flowlabel(self) -> int:
        return unpack(self.buf, self.off)[0] & 0xFFFFF

    @property
    def payload_len(self) -> int:
        return _U16.unpack_from(self.buf, self.off + PAYLOAD_LEN)[0]

    @payload_len.setter
    def payload_len(self, value: int) -> None:
        _U16.pack_into(self.buf, self.off + PAYLOAD_LEN, value)

    @property
    def nexthdr(self) -> int:
        return self.buf[self.off + NEXTHDR]

    @property
    def hop_limit(self) -> int:
        return self.buf[self.off + HOP_LIMIT]

    @hop_limit.setter
    def hop_limit(self, value: int) -> None:
        self.buf[self.off + HOP_LIMIT] = value

    @property
    def saddr(self) -> bytes:
        return bytes(self.buf[self.off + SADDR:self.off + SADDR + 16])

    @property
    def daddr(self) -> bytes:
        return bytes(self.buf[self.off + DADDR:self.off + DADDR + 16])

    @property
    def payload_offset(self) -> int:
        return self.off + IPV6_HLEN

    def summary(self) -> str:
        proto = PROTO_NAMES.get(self.nexthdr, str(self.nexthdr))
        return f"{addr_str(self.saddr)} > {addr_str(self.daddr)} {proto} hlim={self.hop_limit} " \
               f"plen={self.payload_len}"


def tlv_action(opt_type: int) -> int:
    """The action an unknown option's type asks for (TLV_ACTION_*)."""
    return opt_type >> 6


def jumbo_payload_len(buf: bytearray, off: int) -> int:
    """The 32-bit length a jumbo payload option at `off` carries."""
    return _U32.unpack_from(buf, off + TLV_DATA)[0]


def exthdr_len(buf: bytearray, off: int, nexthdr: int) -> int:
    """The length of the extension header at `off`: ipv6_authlen() for AH
    ((hdrlen + 2) * 4), else ipv6_optlen() ((hdrlen + 1) * 8)."""
    hdrlen = buf[off + OPT_HDRLEN]
    return (hdrlen + 2) << 2 if nexthdr == NEXTHDR_AUTH else (hdrlen + 1) << 3


def frag_off_field(buf: bytearray, off: int) -> int:
    """struct frag_hdr's frag_off of the header at `off`, host order (offset | M)."""
    return _U16.unpack_from(buf, off + FRAG_OFF)[0]


def options_fill_header(buf: bytearray, off: int, end: int) -> bool:
    """Whether the options header at `off` (hop-by-hop) is within `end` and its
    TLVs fill it exactly: net/netfilter/utils.c nf_ip6_check_hbh_len()'s walk,
    lengths only."""
    if end - off < 8:
        return False
    stop = off + ((buf[off + OPT_HDRLEN] + 1) << 3)
    if stop > end:
        return False
    off += TLV_DATA
    while off < stop:
        if buf[off + TLV_TYPE] == IPV6_TLV_PAD1:
            off += 1
            continue
        if stop - off < TLV_DATA:
            return False
        off += buf[off + TLV_LEN] + TLV_DATA
    return off == stop


def opt_check_len(buf: bytearray, off: int, end: int) -> int:
    """An options or routing header's length in bytes ((hdrlen + 1) * 8),
    once its first 8 bytes and then all of it are there."""
    if end - off < 8:
        raise Truncated(None, f"IPv6 extension header needs 8 bytes, have {end - off}")
    length = (buf[off + 1] + 1) << 3
    if end - off < length:
        raise Truncated("hdrlen", f"IPv6 extension header hdrlen says {length} bytes, have {end - off}")
    return length


class Ipv6OptHeader(HeaderView):
    """Hop-by-hop, destination options or routing header: nexthdr, hdrlen."""

    __slots__ = ()
    _check = staticmethod(opt_check_len)

    @property
    def nexthdr(self) -> int:
        return self.buf[self.off]

    @property
    def length(self) -> int:
        return (self.buf[self.off + 1] + 1) << 3
