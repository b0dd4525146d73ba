"""Ethernet II header view (include/uapi/linux/if_ether.h)."""
from __future__ import annotations

import struct

from harness.mockkernel.wire import Truncated

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6


def mac_to_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def mac_to_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


class EthernetFrame:
    __slots__ = ("buf", "off")

    def __init__(self, buf: bytearray, off: int = 0):
        self.buf, self.off = buf, off

    def check_len(self) -> "EthernetFrame":
        if len(self.buf) - self.off < ETH_HLEN:
            raise Truncated(f"ethernet header needs {ETH_HLEN} bytes, have {len(self.buf) - self.off}")
        return self

    @property
    def dst(self) -> bytes:
        return bytes(self.buf[self.off:self.off + 6])

    @dst.setter
    def dst(self, mac: bytes) -> None:
        self.buf[self.off:self.off + 6] = mac

    @property
    def src(self) -> bytes:
        return bytes(self.buf[self.off + 6:self.off + 12])

    @src.setter
    def src(self, mac: bytes) -> None:
        self.buf[self.off + 6:self.off + 12] = mac

    @property
    def ethertype(self) -> int:
        return struct.unpack_from("!H", self.buf, self.off + 12)[0]

    @ethertype.setter
    def ethertype(self, value: int) -> None:
        struct.pack_into("!H", self.buf, self.off + 12, value)


def is_multicast(mac: bytes) -> bool:
    return bool(mac[0] & 1)
