"""Typed views over packet bytes (in the manner of smoltcp's `wire`).

Each header is a small class wrapping a buffer and an offset: fields are
properties that read and write the bytes in place, `check_len()` raises
`Truncated`, and checksum helpers work on the buffer. Nothing is parsed into
temporary objects; the datapath keeps working on the same bytearray.
"""


class Truncated(ValueError):
    """The buffer is shorter than the header (or the length it declares)."""


def summarize_frame(buf: bytearray, off: int) -> str:
    """A one-line summary of an Ethernet frame straight from the bytes
    (scapy's decoding is for humans at the edges, too slow per packet)."""
    from harness.mockkernel.wire.ethernet import ETH_P_ARP, ETH_P_IP, mac_to_str
    from harness.mockkernel.wire.ipv4 import Ipv4Packet

    if len(buf) - off < 14:
        return f"runt frame of {len(buf) - off} bytes"
    ethertype = (buf[off + 12] << 8) | buf[off + 13]
    macs = f"{mac_to_str(buf[off + 6:off + 12])} > {mac_to_str(buf[off:off + 6])}"
    if ethertype == ETH_P_IP and len(buf) - off >= 34:
        return f"{macs} IPv4 {Ipv4Packet(buf, off + 14).summary()}"
    if ethertype == ETH_P_ARP and len(buf) - off >= 42:
        op = "request" if buf[off + 21] == 1 else "reply"
        sip, tip = buf[off + 28:off + 32], buf[off + 38:off + 42]
        return f"{macs} ARP {op} {'.'.join(map(str, tip))} tell {'.'.join(map(str, sip))}"
    return f"{macs} ethertype 0x{ethertype:04x} len={len(buf) - off}"


class FrameSummary:
    """The packet line of a journey, rendered only when someone reads it."""

    __slots__ = ("frame",)

    def __init__(self, buf: bytearray, off: int):
        self.frame = buf[off:off + 64]  # a copy: the datapath rewrites buf in place

    def __str__(self) -> str:
        return summarize_frame(self.frame, 0)
