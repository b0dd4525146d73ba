"""Packets at the edges: building test frames with scapy, masks, decoding for humans.

Nothing here runs inside the mock kernel's datapath; it works on `bytes`.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from scapy.data import DLT_EN10MB
from scapy.fields import _BitField
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter


def to_bytes(frame: bytes | bytearray | Packet) -> bytes:
    return bytes(frame)


def describe(frame: bytes) -> str:
    """One line a network engineer reads at a glance (scapy's summary + length)."""
    try:
        return f"{Ether(frame).summary()} len={len(frame)}"
    except Exception as exc:  # an undecodable frame is still worth showing
        return f"<undecodable {len(frame)} bytes: {exc}> {frame[:64].hex()}"


def show(frame: bytes) -> str:
    return Ether(frame).show(dump=True)


# pcapng's EPB direction flag, seen from the DUT port (Target.frame_log's words)
PCAPNG_DIRECTION = {"sent into": 1, "left": 2}


def frames_pcap(frame_log: list[tuple[str, str, bytes]]) -> bytes:
    """A pcapng file of a test's frames (Target.frame_log): one interface per DUT
    port, each frame inbound or outbound with a comment saying which ("sent into
    p0"). Frames are written as they were on the wire, never dissected, so a runt
    or malformed frame is recorded like any other."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "frames.pcapng")
        with PcapNgWriter(path) as writer:
            writer.linktype = DLT_EN10MB  # what the Raw records hold: scapy would guess it, and warn
            writer.write_header(None)
            for direction, port, frame in frame_log:
                record = Raw(frame)  # the bytes as given: no dissection
                record.sniffed_on, record.direction = port, PCAPNG_DIRECTION[direction]
                record.comments = [f"{direction} {port}".encode()]
                writer.write_packet(record)
        with open(path, "rb") as f:
            return f.read()


@dataclass
class Mask:
    """Which bits of the expected frame must match (PTF's Mask, with reasons).

    Every ignored field carries `why`: a mask hides only what Linux makes
    unpredictable, and the failure output says what was hidden and why.
    """

    expected: bytes
    bits: bytearray = field(init=False)
    reasons: list[str] = field(default_factory=list, init=False)

    def __init__(self, expected: bytes | Packet):
        self.expected = to_bytes(expected)
        self.bits = bytearray(b"\xff" * len(self.expected))
        self.reasons = []

    def ignore(self, layer: type[Packet], field_name: str, why: str) -> "Mask":
        """Don't care about `layer.field_name` of the expected frame."""
        packet = Ether(self.expected)
        layer_pkt = packet.getlayer(layer)
        if layer_pkt is None:
            raise ValueError(f"expected frame has no {layer.__name__} layer to mask")
        offset = len(packet) - len(layer_pkt)
        bit_start = offset * 8
        for fld in layer_pkt.fields_desc:
            size = _field_bits(layer_pkt, fld)
            if fld.name == field_name:
                self._clear_bits(bit_start, size)
                self.reasons.append(f"{layer.__name__}.{field_name}: {why}")
                return self
            bit_start += size
        raise ValueError(f"{layer.__name__} has no field {field_name!r}")

    def ignore_bytes(self, offset: int, length: int, why: str) -> "Mask":
        self._clear_bits(offset * 8, length * 8)
        self.reasons.append(f"bytes {offset}..{offset + length - 1}: {why}")
        return self

    def _clear_bits(self, start: int, count: int) -> None:
        for bit in range(start, start + count):
            self.bits[bit // 8] &= ~(0x80 >> (bit % 8)) & 0xFF

    def matches(self, frame: bytes) -> bool:
        if len(frame) != len(self.expected):
            return False
        return all((a ^ b) & m == 0 for a, b, m in zip(frame, self.expected, self.bits))

    def differences(self, frame: bytes) -> str:
        """Field-level diff of `frame` against the expected one, masked bits skipped."""
        if len(frame) != len(self.expected):
            return f"length {len(frame)} != expected {len(self.expected)}"
        got, want = Ether(frame), Ether(self.expected)
        diffs = []
        offset = 0
        while want and got:
            if type(want) is not type(got):
                diffs.append(f"layer: expected {type(want).__name__}, got {type(got).__name__}")
                break
            for fld in want.fields_desc:
                size = _field_bits(want, fld)
                if not self._masked(offset, size):
                    a, b = want.getfieldval(fld.name), got.getfieldval(fld.name)
                    if a != b:
                        diffs.append(f"{type(want).__name__}.{fld.name}: expected {a!r}, got {b!r}")
                offset += size
            want, got = want.payload, got.payload
            if not isinstance(want, Packet) or not isinstance(got, Packet) or not want.fields_desc:
                break
        return "; ".join(diffs) or "payload bytes differ"

    def _masked(self, bit_start: int, count: int) -> bool:
        return all(
            not self.bits[bit // 8] & (0x80 >> (bit % 8)) for bit in range(bit_start, bit_start + count)
        ) if count else False


def _field_bits(pkt: Packet, fld) -> int:
    """Width of a field in bits as serialized in this packet."""
    if isinstance(fld, _BitField):
        return abs(fld.size)
    return len(fld.addfield(pkt, b"", pkt.getfieldval(fld.name))) * 8


def as_mask(frame: bytes | Packet | Mask) -> Mask:
    """What expect() was given, as a Mask; a TypeError naming anything that is no frame."""
    if isinstance(frame, Mask):
        return frame
    if not isinstance(frame, (bytes, bytearray, Packet)):
        raise TypeError(f"an expected frame is bytes, a bytearray, a scapy Packet or a Mask, not "
                        f"{type(frame).__name__}: {frame!r:.60}")
    return Mask(frame)
