"""TCP/IPv4 frames on a tester port, to and from the script's segments, with scapy
(the harness's codec at the edges: harness/packets.py).

`WireSegment.frame()` makes the frame a script's inbound segment becomes, as
packetdrill's tcp_packet.c/ip_packet.c make it (IPv4 without options, ID 0, no DF,
TTL 255, TOS 0, zero payload bytes, the options in the script's order), with both
checksums. `WireSegment.parse()` reads an outbound frame, checking what packetdrill
checks before it compares fields: the IP header checksum
(verify_outbound_live_checksums()) and, since the DUT's ports checksum in software,
the TCP checksum too.
"""
from __future__ import annotations

from dataclasses import dataclass
from socket import IPPROTO_TCP, inet_aton

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from harness.mockkernel.wire.checksum import checksum, pseudo_header_sum
from harness.packetdrill.script import (
    TCPOPT_EOL,
    TCPOPT_MSS,
    TCPOPT_NOP,
    TCPOPT_SACK,
    TCPOPT_SACK_PERM,
    TCPOPT_TIMESTAMP,
    TCPOPT_WINDOW,
    TcpOption,
)

INBOUND_TTL = 255  # packetdrill's TTL_CHECK_NONE, the TTL of the segments it injects

# TCP header flag bits, by the letters packetdrill writes for them (tcp_packet.c)
FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10, "E": 0x40, "W": 0x80}
FLAG_NAMES = {"F": "fin", "S": "syn", "R": "rst", "P": "psh", ".": "ack", "E": "ece", "W": "cwr"}
FLAG_ORDER = "SFRPEW."  # the order the letters are printed in
# every header flag bit, the ones scripts cannot write (URG, AE) included
ALL_FLAGS = 0x1FF

# scapy's names of the options scripts write
_SCAPY_NAMES = {TCPOPT_EOL: "EOL", TCPOPT_NOP: "NOP", TCPOPT_MSS: "MSS", TCPOPT_WINDOW: "WScale",
                TCPOPT_SACK_PERM: "SAckOK", TCPOPT_SACK: "SAck", TCPOPT_TIMESTAMP: "Timestamp"}
_KINDS = {name: kind for kind, name in _SCAPY_NAMES.items()}


def flag_bits(flags: str) -> int:
    bits = 0
    for letter in flags:
        bits |= FLAG_BITS[letter]
    return bits


def flag_letters(bits: int) -> str:
    letters = "".join(c for c in FLAG_ORDER if bits & FLAG_BITS[c])
    return letters or "-"


class MalformedFrame(ValueError):
    """A frame that left the DUT is not well-formed TCP/IPv4: the message says how."""


def _to_scapy(option: TcpOption) -> tuple:
    name = _SCAPY_NAMES[option.kind]
    if option.kind in (TCPOPT_MSS, TCPOPT_WINDOW):
        return name, option.value
    if option.kind == TCPOPT_SACK:
        return name, tuple(edge for block in option.blocks for edge in block)
    if option.kind == TCPOPT_TIMESTAMP:
        return name, (option.val, option.ecr)
    return name, b"" if option.kind == TCPOPT_SACK_PERM else None


def _from_scapy(name: str | int, value) -> TcpOption:
    kind = _KINDS.get(name, name)
    if kind in (TCPOPT_MSS, TCPOPT_WINDOW):
        return TcpOption(kind, value)
    if kind == TCPOPT_SACK:
        return TcpOption(kind, blocks=tuple(zip(value[::2], value[1::2])))
    if kind == TCPOPT_TIMESTAMP:
        return TcpOption(kind, val=value[0], ecr=value[1])
    if kind in (TCPOPT_NOP, TCPOPT_EOL, TCPOPT_SACK_PERM):
        return TcpOption(kind)
    return TcpOption(kind, value=len(value or b"") + 2)


@dataclass(frozen=True)
class WireSegment:
    """A TCP/IPv4 segment as it is on the wire (live values)."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    options: tuple[TcpOption, ...]
    payload: bytes

    @property
    def is_syn(self) -> bool:
        return bool(self.flags & FLAG_BITS["S"])

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & FLAG_BITS["."])

    @classmethod
    def parse(cls, frame: bytes) -> "WireSegment | None":
        """The TCP/IPv4 segment in `frame`, or None for any other frame (ARP, UDP, ...)."""
        packet = Ether(frame)
        ip, tcp = packet.getlayer(IP), packet.getlayer(TCP)
        if ip is None or tcp is None or ip.frag or ip.flags.MF:
            return None
        datagram = bytes(ip)
        header_len = ip.ihl * 4
        if checksum(datagram[:header_len]):
            raise MalformedFrame("bad outbound IP checksum")
        carried = datagram[header_len:ip.len]
        if checksum(carried, pseudo_header_sum(inet_aton(ip.src), inet_aton(ip.dst), IPPROTO_TCP, len(carried))):
            raise MalformedFrame("bad outbound TCP checksum")
        try:
            options = tuple(_from_scapy(name, value) for name, value in tcp.options)
        except (TypeError, ValueError, IndexError) as err:
            raise MalformedFrame(f"undecodable TCP options: {err}") from None
        return cls(ip.src, ip.dst, tcp.sport, tcp.dport, tcp.seq, tcp.ack, int(tcp.flags) & ALL_FLAGS, tcp.window,
                   options, carried[tcp.dataofs * 4:])

    def frame(self, src_mac: str, dst_mac: str) -> bytes:
        """The Ethernet frame carrying this segment, checksums filled in."""
        return bytes(Ether(src=src_mac, dst=dst_mac)
                     / IP(src=self.src, dst=self.dst, ttl=INBOUND_TTL, id=0, flags=0)
                     / TCP(sport=self.sport, dport=self.dport, seq=self.seq, ack=self.ack, flags=self.flags,
                           window=self.window, options=[_to_scapy(o) for o in self.options])
                     / self.payload)

    def describe(self) -> str:
        """In packetdrill's notation: ports flags seq:end(len) ack win <options>."""
        text = f"{self.sport}>{self.dport} {flag_letters(self.flags)} " \
               f"{self.seq}:{(self.seq + len(self.payload)) & 0xFFFFFFFF}({len(self.payload)})"
        if self.has_ack:
            text += f" ack {self.ack}"
        text += f" win {self.window}"
        if self.options:
            text += " <" + ",".join(str(option) for option in self.options) + ">"
        return text
