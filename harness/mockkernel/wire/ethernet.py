"""Ethernet II and 802.1Q header views (include/uapi/linux/if_ether.h, include/linux/if_vlan.h)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire.errors import Truncated
from harness.mockkernel.wire.view import HeaderView

ETH_ALEN = 6
ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_IPV6 = 0x86DD
ETH_P_802_3, ETH_P_802_2 = 0x0001, 0x0004  # an 802.3 frame: raw (IPX), or with an 802.2 LLC header
ETH_P_802_3_MIN = 0x0600  # below it the field is the 802.3 length
RAW_802_3 = b"\xff\xff"  # the two bytes a raw 802.3 frame starts with
BROADCAST = b"\xff" * ETH_ALEN
# field offsets of struct ethhdr
DST, SRC, ETHERTYPE = 0, 6, 12

HEADER = struct.Struct("!6s6sH")  # dst, src, ethertype: one store writes the whole header
_ETHERTYPE = struct.Struct("!12xH")
DST_FIRST_ETHERTYPE = struct.Struct("!B11xH")  # the destination's first byte, ethertype: eth_type_trans()
MULTICAST_BIT = 0x01  # of the destination's first byte (broadcast included)

VLAN_HLEN = 4
VLAN_PRIO_SHIFT, VLAN_CFI_MASK, VLAN_VID_MASK = 13, 0x1000, 0x0FFF
# field offsets of struct vlan_hdr (the 4 bytes after an 802.1Q/802.1ad ethertype)
TCI, ENCAPSULATED_PROTO = 0, 2
VLAN_HEADER = struct.Struct("!HH")  # tci, encapsulated ethertype


def mac_to_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def mac_to_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def is_multicast(mac: bytes) -> bool:
    return bool(mac[0] & MULTICAST_BIT)


def check_len(buf: bytearray, off: int, end: int) -> None:
    if end - off < ETH_HLEN:
        raise Truncated(None, f"Ethernet header needs {ETH_HLEN} bytes, have {end - off}")


def ethertype(buf: bytearray, off: int) -> int:
    """The EtherType of the frame at `off` (eth_type_trans())."""
    return _ETHERTYPE.unpack_from(buf, off)[0]


class EthernetFrame(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def dst(self) -> bytes:
        return bytes(self.buf[self.off + DST:self.off + DST + ETH_ALEN])

    @dst.setter
    def dst(self, mac: bytes) -> None:
        self.buf[self.off + DST:self.off + DST + ETH_ALEN] = mac

    @property
    def src(self) -> bytes:
        return bytes(self.buf[self.off + SRC:self.off + SRC + ETH_ALEN])

    @src.setter
    def src(self, mac: bytes) -> None:
        self.buf[self.off + SRC:self.off + SRC + ETH_ALEN] = mac

    @property
    def ethertype(self) -> int:
        return _ETHERTYPE.unpack_from(self.buf, self.off)[0]

    @ethertype.setter
    def ethertype(self, value: int) -> None:
        struct.pack_into("!H", self.buf, self.off + ETHERTYPE, value)

    @property
    def payload_offset(self) -> int:
        return self.off + ETH_HLEN


def write_header(buf: bytearray, off: int, dst: bytes, src: bytes, ethertype: int) -> None:
    """eth_header(): the 14 bytes at `off` in one store."""
    HEADER.pack_into(buf, off, dst, src, ethertype)


def vlan_check_len(buf: bytearray, off: int, end: int) -> None:
    """A VLAN tag is 4 bytes (vlan_do_receive() pulls VLAN_HLEN); every TCI is valid."""
    if end - off < VLAN_HLEN:
        raise Truncated(None, f"802.1Q tag needs {VLAN_HLEN} bytes, have {end - off}")


class VlanTag(HeaderView):
    """The 802.1Q (or 802.1ad) tag that follows an ETH_P_8021Q ethertype:
    TCI (PCP, DEI, VID), then the encapsulated ethertype."""

    __slots__ = ()
    _check = staticmethod(vlan_check_len)

    @property
    def tci(self) -> int:
        return VLAN_HEADER.unpack_from(self.buf, self.off)[0]

    @property
    def pcp(self) -> int:
        return self.tci >> VLAN_PRIO_SHIFT

    @property
    def dei(self) -> bool:
        return bool(self.tci & VLAN_CFI_MASK)

    @property
    def vid(self) -> int:
        return self.tci & VLAN_VID_MASK

    @property
    def encapsulated_proto(self) -> int:
        return VLAN_HEADER.unpack_from(self.buf, self.off)[1]


def vlan_pop(buf: bytearray, off: int) -> tuple[int, int]:
    """skb_vlan_untag() on the bytes: the addresses of the tagged frame at `off`
    move VLAN_HLEN forward over the tag, so the untagged frame starts at
    off + VLAN_HLEN; returns the tag's (TCI, encapsulated ethertype)."""
    tci, inner = VLAN_HEADER.unpack_from(buf, off + ETH_HLEN)
    buf[off + VLAN_HLEN:off + VLAN_HLEN + 2 * ETH_ALEN] = buf[off:off + 2 * ETH_ALEN]
    return tci, inner


def vlan_push(buf: bytearray, off: int, end: int, tpid: int, tci: int) -> bytearray:
    """A new buffer holding the frame at buf[off:end] with an 802.1Q/802.1ad tag
    (`tpid`, `tci`) after its addresses (__vlan_hwaccel_push_inside())."""
    addresses = off + 2 * ETH_ALEN
    return buf[off:addresses] + VLAN_HEADER.pack(tpid, tci) + buf[addresses:end]


def vlan_tag(pcp: int, dei: bool, vid: int, encapsulated_proto: int) -> bytes:
    return VLAN_HEADER.pack(pcp << VLAN_PRIO_SHIFT | (VLAN_CFI_MASK if dei else 0) | vid, encapsulated_proto)
