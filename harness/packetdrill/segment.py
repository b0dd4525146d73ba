"""TCP/IPv4 frames on a tester port, to and from the script's segments.

`build_frame()` makes the frame a script's inbound segment becomes, as packetdrill's
tcp_packet.c/ip_packet.c make it (IPv4 without options, ID 0, no DF, TTL 255,
TOS 0, zero payload bytes), with both checksums. `WireSegment.parse()` reads an
outbound frame, checking what packetdrill checks before it compares fields: the IP
header checksum (verify_outbound_live_checksums()) and, since the DUT's ports
checksum in software, the TCP checksum too.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace

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

ETH_P_IP = 0x0800
IPPROTO_TCP = 6
ETH_HLEN, IP_HLEN, TCP_HLEN = 14, 20, 20
INBOUND_TTL = 255  # packetdrill's TTL_CHECK_NONE, the TTL of the segments it injects

# TCP header flag bits, and the letters packetdrill writes for them
FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10, "U": 0x20, "E": 0x40, "W": 0x80}
FLAG_AE = 0x100  # the AE bit, once a reserved bit (RFC 9768)
FLAG_ORDER = "SFRPUEWA."  # the order packetdrill's packet_to_string prints flags in
FLAG_NAMES = {"F": "FIN", "S": "SYN", "R": "RST", "P": "PSH", ".": "ACK", "U": "URG", "E": "ECE",
              "W": "CWR", "A": "AE"}


def flag_bits(flags: str) -> int:
    bits = 0
    for letter in flags:
        bits |= FLAG_AE if letter == "A" else FLAG_BITS[letter]
    return bits


def flag_letters(bits: int) -> str:
    letters = "".join(c for c in FLAG_ORDER
                      if bits & (FLAG_AE if c == "A" else FLAG_BITS[c]))
    return letters or "-"


class MalformedFrame(ValueError):
    """A frame that left the DUT is not well-formed TCP/IPv4: the message says how."""


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip4(address: str) -> bytes:
    return bytes(int(part) for part in address.split("."))


def encode_options(options: tuple[TcpOption, ...]) -> bytes:
    out = bytearray()
    for option in options:
        if option.kind in (TCPOPT_NOP, TCPOPT_EOL):
            out.append(option.kind)
        elif option.kind == TCPOPT_MSS:
            out += struct.pack("!BBH", TCPOPT_MSS, 4, option.value)
        elif option.kind == TCPOPT_WINDOW:
            out += struct.pack("!BBB", TCPOPT_WINDOW, 3, option.value)
        elif option.kind == TCPOPT_SACK_PERM:
            out += struct.pack("!BB", TCPOPT_SACK_PERM, 2)
        elif option.kind == TCPOPT_SACK:
            out += struct.pack("!BB", TCPOPT_SACK, option.length)
            for left, right in option.blocks:
                out += struct.pack("!II", left, right)
        elif option.kind == TCPOPT_TIMESTAMP:
            out += struct.pack("!BBII", TCPOPT_TIMESTAMP, 10, option.val, option.ecr)
    return bytes(out)


def decode_options(data: bytes) -> tuple[TcpOption, ...]:
    """The options as packetdrill's tcp_options_next() walks them; an option running
    past the header is a MalformedFrame."""
    options, pos = [], 0
    while pos < len(data):
        kind = data[pos]
        if kind in (TCPOPT_NOP, TCPOPT_EOL):
            options.append(TcpOption(kind))
            pos += 1
            continue
        if pos + 2 > len(data) or data[pos + 1] < 2 or pos + data[pos + 1] > len(data):
            raise MalformedFrame(f"TCP option kind {kind} at offset {pos} runs past the header")
        length, body = data[pos + 1], data[pos + 2:pos + data[pos + 1]]
        if kind == TCPOPT_MSS and length == 4:
            options.append(TcpOption(kind, struct.unpack("!H", body)[0]))
        elif kind == TCPOPT_WINDOW and length == 3:
            options.append(TcpOption(kind, body[0]))
        elif kind == TCPOPT_SACK_PERM and length == 2:
            options.append(TcpOption(kind))
        elif kind == TCPOPT_SACK and (length - 2) % 8 == 0:
            words = struct.unpack(f"!{(length - 2) // 4}I", body)
            options.append(TcpOption(kind, blocks=tuple(zip(words[::2], words[1::2]))))
        elif kind == TCPOPT_TIMESTAMP and length == 10:
            val, ecr = struct.unpack("!II", body)
            options.append(TcpOption(kind, val=val, ecr=ecr))
        else:
            options.append(TcpOption(kind, value=length))
        pos += length
    return tuple(options)


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
    urg: int
    options: tuple[TcpOption, ...]
    payload: bytes
    ttl: int = INBOUND_TTL
    tos: int = 0

    @property
    def is_syn(self) -> bool:
        return bool(self.flags & FLAG_BITS["S"])

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & FLAG_BITS["."])

    def option(self, kind: int) -> TcpOption | None:
        return next((o for o in self.options if o.kind == kind), None)

    def with_options(self, options: tuple[TcpOption, ...]) -> "WireSegment":
        return replace(self, options=options)

    @classmethod
    def parse(cls, frame: bytes) -> "WireSegment | None":
        """The TCP/IPv4 segment in `frame`, or None for any other frame (ARP, UDP, ...)."""
        if len(frame) < ETH_HLEN + IP_HLEN or struct.unpack_from("!H", frame, 12)[0] != ETH_P_IP:
            return None
        ip = frame[ETH_HLEN:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        if ip[0] >> 4 != 4 or ip[9] != IPPROTO_TCP:
            return None
        if ihl < IP_HLEN or total > len(ip) or total < ihl + TCP_HLEN:
            raise MalformedFrame(f"IPv4 header length {ihl} / total length {total} do not fit a "
                                 f"{len(ip)}-byte packet")
        if _checksum(bytes(ip[:ihl])):
            raise MalformedFrame("bad outbound IP checksum")
        tcp = bytes(ip[ihl:total])
        src, dst = ip[12:16], ip[16:20]
        pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_TCP, len(tcp))
        if _checksum(pseudo + tcp):
            raise MalformedFrame("bad outbound TCP checksum")
        sport, dport, seq, ack, offset_flags, window, _, urg = struct.unpack_from("!HHIIHHHH", tcp)
        doff = (offset_flags >> 12) * 4
        if doff < TCP_HLEN or doff > len(tcp):
            raise MalformedFrame(f"TCP data offset {doff} does not fit a {len(tcp)}-byte segment")
        return cls(".".join(map(str, src)), ".".join(map(str, dst)), sport, dport, seq, ack,
                   offset_flags & 0x1FF, window, urg, decode_options(tcp[TCP_HLEN:doff]), tcp[doff:],
                   ttl=ip[8], tos=ip[1])

    def frame(self, src_mac: str, dst_mac: str) -> bytes:
        """The Ethernet frame carrying this segment, checksums filled in."""
        options = encode_options(self.options)
        doff = (TCP_HLEN + len(options)) // 4
        tcp = struct.pack("!HHIIHHHH", self.sport, self.dport, self.seq, self.ack,
                          (doff << 12) | self.flags, self.window, 0, self.urg) + options + self.payload
        src, dst = _ip4(self.src), _ip4(self.dst)
        pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_TCP, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, self.tos, IP_HLEN + len(tcp), 0, 0, self.ttl,
                         IPPROTO_TCP, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        macs = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
        return macs + struct.pack("!H", ETH_P_IP) + ip + tcp

    def describe(self) -> str:
        """In packetdrill's notation: flags seq:end(len) ack win <options>."""
        text = f"{self.sport}>{self.dport} {flag_letters(self.flags)} " \
               f"{self.seq}:{(self.seq + len(self.payload)) & 0xFFFFFFFF}({len(self.payload)})"
        if self.has_ack:
            text += f" ack {self.ack}"
        text += f" win {self.window}"
        if self.options:
            text += " <" + ",".join(str(option) for option in self.options) + ">"
        return text
