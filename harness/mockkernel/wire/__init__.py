"""Typed views over packet bytes (in the manner of smoltcp's `wire`).

The only place a header is parsed or written. Each header module has its
field offsets as named constants, precompiled Structs that read a header (or
the fields one user needs) in one load, a check_len() that checks the
header's own rules and raises a typed error (errors.py) for the caller to map
to its drop reason, checksum helpers, and a small class wrapping a buffer and
an offset with properties for code off the hot path. Nothing is parsed into
temporary objects per packet; the datapath keeps working on the same bytearray.
"""
from __future__ import annotations

from harness.mockkernel.wire import arp, ethernet, ipv4, ipv6
from harness.mockkernel.wire.errors import Malformed, Truncated, WireError

__all__ = ["FrameSummary", "Malformed", "Truncated", "WireError", "summarize_frame"]


def summarize_frame(buf: bytearray, off: int) -> str:
    """A one-line summary of an Ethernet frame straight from the bytes
    (scapy's decoding is for humans at the edges, too slow per packet)."""
    length = len(buf) - off
    if length < ethernet.ETH_HLEN:
        return f"runt frame of {length} bytes"
    frame = ethernet.EthernetFrame(buf, off)
    ethertype = frame.ethertype
    macs = f"{ethernet.mac_to_str(frame.src)} > {ethernet.mac_to_str(frame.dst)}"
    if ethertype == ethernet.ETH_P_IP and length >= ethernet.ETH_HLEN + ipv4.IPV4_MIN_HLEN:
        return f"{macs} IPv4 {ipv4.Ipv4Packet(buf, frame.payload_offset).summary()}"
    if ethertype == ethernet.ETH_P_IPV6 and length >= ethernet.ETH_HLEN + ipv6.IPV6_HLEN:
        return f"{macs} IPv6 {ipv6.Ipv6Packet(buf, frame.payload_offset).summary()}"
    if ethertype == ethernet.ETH_P_ARP and length >= ethernet.ETH_HLEN + arp.ARP_LEN:
        packet = arp.ArpPacket(buf, frame.payload_offset)
        op = "request" if packet.op == arp.ARPOP_REQUEST else "reply"
        return f"{macs} ARP {op} {'.'.join(map(str, packet.tip))} tell {'.'.join(map(str, packet.sip))}"
    return f"{macs} ethertype 0x{ethertype:04x} len={length}"


class FrameSummary:
    """The packet line of a journey, rendered only when someone reads it."""

    __slots__ = ("frame",)

    def __init__(self, buf: bytearray, off: int):
        self.frame = buf[off:off + 64]  # a copy: the datapath rewrites buf in place

    def __str__(self) -> str:
        return summarize_frame(self.frame, 0)
