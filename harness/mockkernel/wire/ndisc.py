"""Neighbour discovery messages (include/net/ndisc.h struct nd_msg, rs_msg, ra_msg,
struct nd_opt_hdr; RFC 4861 4.3-4.6).

An NS or NA is the ICMPv6 header (whose 32 bits after the checksum carry an
NA's R, S and O flags) and the target address, then options of 8-octet units:
type, length in units, data. parse_options() walks them as
ndisc_parse_options() does: a zero length, or an option running past the
message, spoils the whole message; the first option of each type counts.
"""
from __future__ import annotations

import struct

from harness.mockkernel.wire.errors import Truncated
from harness.mockkernel.wire.view import HeaderView

ND_OPT_SOURCE_LL_ADDR, ND_OPT_TARGET_LL_ADDR, ND_OPT_REDIRECT_HDR, ND_OPT_MTU, ND_OPT_NONCE = 1, 2, 4, 5, 14
ND_MSG_LEN = 24  # struct nd_msg: the ICMPv6 header, the target
RS_MSG_LEN, RA_MSG_LEN, RD_MSG_LEN = 8, 16, 40  # struct rs_msg, ra_msg, rd_msg (target, destination)
# field offsets of struct nd_msg
CODE, FLAGS, TARGET = 1, 4, 8
ND_ROUTER, ND_SOLICITED, ND_OVERRIDE = 0x80000000, 0x40000000, 0x20000000
NONCE_LEN = 6
_FLAGS = struct.Struct("!4xI")
OPT_HEADER = struct.Struct("!BB")  # type, length in 8-octet units
OPT_DATA = 2  # an option's data after its header


def check_len(buf: bytearray, off: int, end: int) -> None:
    if end - off < ND_MSG_LEN:
        raise Truncated(None, f"an NS/NA needs {ND_MSG_LEN} bytes, have {end - off}")


class NdMsg(HeaderView):
    """struct nd_msg: an NS or NA at the ICMPv6 header."""

    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def code(self) -> int:
        return self.buf[self.off + CODE]

    @property
    def flags(self) -> int:
        return _FLAGS.unpack_from(self.buf, self.off)[0]

    @property
    def target(self) -> bytes:
        return bytes(self.buf[self.off + TARGET:self.off + TARGET + 16])


def check_ra_len(buf: bytearray, off: int, end: int) -> None:
    if end - off < RA_MSG_LEN:
        raise Truncated(None, f"an RA needs {RA_MSG_LEN} bytes, have {end - off}")


class RaMsg(HeaderView):
    """struct ra_msg: a router advertisement at its ICMPv6 header."""

    __slots__ = ()
    _check = staticmethod(check_ra_len)
    _FIELDS = struct.Struct("!4xBBH")  # cur hop limit, M|O|H|prf|P, router lifetime (s)

    @property
    def cur_hop_limit(self) -> int:
        return self._FIELDS.unpack_from(self.buf, self.off)[0]

    @property
    def router_pref(self) -> int:
        """icmp6_router_pref: bits 3-4 of the flags byte (RFC 4191 2.2)."""
        return self._FIELDS.unpack_from(self.buf, self.off)[1] >> 3 & 0x3

    @property
    def router_lifetime(self) -> int:
        return self._FIELDS.unpack_from(self.buf, self.off)[2]


_MTU = struct.Struct("!4xI")  # the option header, 2 reserved bytes, the MTU


def option_mtu(buf, off: int) -> int:
    """An MTU option's MTU (ndisc_router_discovery() reads it whatever the option's length)."""
    return _MTU.unpack_from(buf, off)[0]


def parse_options(buf, off: int, end: int) -> dict[int, int] | None:
    """The offset of the first option of each type, by type; None when an
    option has length 0 or runs past `end`."""
    options: dict[int, int] = {}
    while off < end:
        if end - off < OPT_HEADER.size:
            return None
        opt_type, units = OPT_HEADER.unpack_from(buf, off)
        length = units << 3
        if length == 0 or end - off < length:
            return None
        options.setdefault(opt_type, off)
        off += length
    return options


def option_lladdr(buf, off: int, addr_len: int = 6) -> bytes | None:
    """A link-layer address option's address, None when its length is not one
    8-octet unit (ndisc_opt_addr_data() for Ethernet)."""
    if OPT_HEADER.unpack_from(buf, off)[1] != 1:
        return None
    return bytes(buf[off + OPT_DATA:off + OPT_DATA + addr_len])


def option_nonce(buf, off: int) -> bytes:
    """A nonce option's 6 bytes (RFC 7527), empty when its length is not 1."""
    if OPT_HEADER.unpack_from(buf, off)[1] != 1:
        return b""
    return bytes(buf[off + OPT_DATA:off + OPT_DATA + NONCE_LEN])


def lladdr_option(opt_type: int, mac: bytes) -> bytes:
    """ndisc_fill_addr_option() for Ethernet: one unit, the address."""
    return OPT_HEADER.pack(opt_type, 1) + mac


def redirected_header_option(packet: bytes) -> bytes:
    """ndisc_fill_redirect_hdr_option(): 8-byte units, 6 reserved bytes, the
    packet's first bytes (a multiple of 8 long, the caller's cut)."""
    return OPT_HEADER.pack(ND_OPT_REDIRECT_HDR, (len(packet) + 8) >> 3) + bytes(6) + packet


def nonce_option(nonce: bytes) -> bytes:
    return OPT_HEADER.pack(ND_OPT_NONCE, 1) + nonce
