"""Traffic at rate: profiles of streams, and the results a run gives back.

The same types on every target: the mock's virtual-time line-rate model
(mockkernel/linerate/), the netns lab's software generator (drivers/generator.py)
and a lab's TRex. Statistic names are TRex's where they overlap (opackets,
ipackets, tx_pps, rx_bps_L1, ...), so a TRex user reads a result at once.

Rates on the wire: L2 counts the frame as the tester hands it over plus its 4-byte
FCS; L1 adds the 8-byte preamble and the 12-byte inter-frame gap, so a 60-byte
frame (64 with FCS) takes 84 bytes of line: 14.88 Mpps at 10 Gbit/s. A frame
under ETH_ZLEN (60) bytes goes on the line padded to it, as a NIC pads it:
stream_frames() pads it, so every length here is a length on the wire.

A stream's frames (stream_frames()): the template resized to each of `sizes`
(the UDP or TCP payload grows with zeros or is trimmed; other frames get a
zero trailer), each Vary field set, and IPv4 total length, UDP length and
the IPv4/UDP/TCP checksums that cover a changed byte recomputed. Headers are
read and written through harness/mockkernel/wire's views and named offsets.

Payload tag (TAG_LEN bytes, the last of the UDP payload), for receivers that see
only bytes: struct TAG ("<HHIQ"): magic TAG_MAGIC ("PJ"), stream id, sequence
number, transmit time in ns (CLOCK_MONOTONIC on the lab, virtual on the mock).
The lab's C generator writes and reads exactly this layout.

Profiles and results are plain data: `to_dict()` / `from_dict()` round-trip
through JSON.
"""
from __future__ import annotations

import dataclasses
import math
import random
import struct
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fractions import Fraction

from harness.mockkernel.wire import ethernet, ipv4, tcp, udp
from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.errors import WireError
from harness.mockkernel.wire.field import BE16

FCS_LEN = 4
PREAMBLE_IFG = 20  # 8-byte preamble + SFD, 12-byte inter-frame gap
ETH_ZLEN = 60  # the shortest frame without FCS (include/uapi/linux/if_ether.h)
MIN_SIZE = ETH_ZLEN + FCS_LEN  # the shortest size with FCS a stream may ask for

TAG = struct.Struct("<HHIQ")  # magic, stream id, sequence number, tx time (ns)
TAG_LEN = TAG.size
TAG_MAGIC = 0x4A50  # "PJ" in memory order
SEQ_SPACE = 1 << 32  # the tag's sequence numbers wrap here

MAX_CYCLE = 1 << 20  # frames in one cycle of a stream: past this, the profile is a mistake


def l2_bits(frame_len: float) -> float:
    """Bits a frame takes at L2: the frame (without FCS, as sent) plus the FCS."""
    return (frame_len + FCS_LEN) * 8


def l1_bits(frame_len: float) -> float:
    """Bits a frame takes on the line: L2 plus preamble and inter-frame gap."""
    return (frame_len + FCS_LEN + PREAMBLE_IFG) * 8


class RateUnit(StrEnum):
    PPS = "pps"
    BPS_L1 = "bps_L1"  # bit/s on the line (TRex's default meaning of "bps")
    BPS_L2 = "bps_L2"
    PERCENT = "percent"  # of the port's line rate (L1)


@dataclass(frozen=True)
class Rate:
    value: float
    unit: RateUnit = RateUnit.PPS

    def __post_init__(self):
        if self.value < 0:
            raise ValueError(f"rate {self.value} {self.unit} is negative")

    def pps(self, frame_len: float, line_bps: float) -> float:
        """Packets per second for frames of (mean) length `frame_len` on a port of
        `line_bps` bit/s."""
        if self.unit is RateUnit.PPS:
            return float(self.value)
        if self.unit is RateUnit.BPS_L1:
            return self.value / l1_bits(frame_len)
        if self.unit is RateUnit.BPS_L2:
            return self.value / l2_bits(frame_len)
        return self.value / 100 * line_bps / l1_bits(frame_len)

    def to_dict(self) -> dict:
        return {"value": self.value, "unit": self.unit.value}

    @classmethod
    def from_dict(cls, data: dict) -> Rate:
        return cls(data["value"], RateUnit(data["unit"]))


class Mode(StrEnum):
    CONTINUOUS = "continuous"  # until the run's duration ends
    SINGLE_BURST = "single_burst"  # `count` packets at `rate`, then stop
    MULTI_BURST = "multi_burst"  # `bursts` bursts of `count` packets, `ibg` seconds apart


class VaryMode(StrEnum):
    INC = "inc"
    DEC = "dec"
    RANDOM = "random"


_ETH, _IP, _UDP, _TCP = "eth", "ip", "udp", "tcp"  # the headers a field lives in
# where each field lives: the header it belongs to, its named offset there, its width in bytes
_FIELD_AT = {
    "eth.src": (_ETH, ethernet.SRC, ethernet.ETH_ALEN), "eth.dst": (_ETH, ethernet.DST, ethernet.ETH_ALEN),
    "ip.src": (_IP, ipv4.SADDR, 4), "ip.dst": (_IP, ipv4.DADDR, 4), "ip.tos": (_IP, ipv4.TOS, 1),
    "ip.id": (_IP, ipv4.ID, 2),
    "udp.sport": (_UDP, udp.SOURCE, 2), "udp.dport": (_UDP, udp.DEST, 2),
    "tcp.sport": (_TCP, tcp.SOURCE, 2), "tcp.dport": (_TCP, tcp.DEST, 2),
}
# Fields a stream can vary; the L3/L4 checksums are fixed after each change.
VARY_FIELDS = tuple(_FIELD_AT)


@dataclass(frozen=True)
class Vary:
    """Field variation (TRex's STLVmFlowVar): `field` takes `count` distinct values
    from its value in the frame, by `step`, in `mode` (random: seeded).

    inc: v, v+step, ... v+(count-1)*step; dec: v, v-step, ...; both wrap within
    the field's width. random: the same `count` values in an order shuffled by
    `seed`, each once per cycle (a permutation, so a flow count stays exact; TRex
    draws with replacement). Every Vary of a stream advances on every packet,
    as TRex's flow variables do: two of 4 and 3 values give 12 combinations."""

    field: str
    count: int
    mode: VaryMode = VaryMode.INC
    step: int = 1
    seed: int = 0

    def __post_init__(self):
        if self.field not in _FIELD_AT:
            raise ValueError(f"cannot vary {self.field!r}: the fields a stream varies are {', '.join(VARY_FIELDS)}")
        if self.count < 1 or self.step < 1:
            raise ValueError(f"vary {self.field}: count {self.count} and step {self.step} must be at least 1")
        bits = 8 * _FIELD_AT[self.field][2]
        distinct = (1 << bits) // math.gcd(self.step, 1 << bits)
        if self.count > distinct:
            raise ValueError(f"vary {self.field}: {self.count} values by step {self.step} repeat after {distinct} "
                             f"in a {bits}-bit field")

    def values(self, start: int) -> list[int]:
        """The values the field takes in one cycle, from `start` (its value in the template)."""
        space = 1 << (8 * _FIELD_AT[self.field][2])
        sign = -1 if self.mode is VaryMode.DEC else 1
        values = [(start + sign * k * self.step) % space for k in range(self.count)]
        if self.mode is VaryMode.RANDOM:
            random.Random(self.seed).shuffle(values)
        return values

    def to_dict(self) -> dict:
        return {"field": self.field, "count": self.count, "mode": self.mode.value, "step": self.step,
                "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict) -> Vary:
        return cls(data["field"], data["count"], VaryMode(data["mode"]), data["step"], data["seed"])


# Simple IMIX (TRex's and the IETF's): 64:7, 594:4, 1518:1 frame sizes with FCS.
IMIX = ((64, 7), (594, 4), (1518, 1))


@dataclass(frozen=True)
class _Layout:
    """Where a frame's headers are: what stream_frames() and the tag need of it."""

    l3: int | None  # the IPv4 header, if the frame carries one
    l4: int | None  # the UDP or TCP header (not of a fragment)
    protocol: int | None  # IPPROTO_UDP or IPPROTO_TCP, with l4
    payload: int  # where the L4 payload starts (the end of the frame when there is none)
    end: int  # the end of the IPv4 datagram (of the frame when there is none)

    @property
    def headers(self) -> set[str]:
        found = {_ETH}
        if self.l3 is not None:
            found.add(_IP)
        if self.l4 is not None:
            found.add(_UDP if self.protocol == ipv4.IPPROTO_UDP else _TCP)
        return found


def _layout(frame: bytes | bytearray) -> _Layout:
    """The headers of an Ethernet frame (802.1Q/802.1ad tags skipped); what is not
    a well-formed IPv4 header is payload."""
    buf, end = frame, len(frame)
    try:
        ethernet.check_len(buf, 0, end)
        off, ethertype = ethernet.ETH_HLEN, ethernet.ethertype(buf, 0)
        while ethertype in (ethernet.ETH_P_8021Q, ethernet.ETH_P_8021AD):
            tag = ethernet.VlanTag(buf, off).check_len()
            off, ethertype = off + ethernet.VLAN_HLEN, tag.encapsulated_proto
        if ethertype != ethernet.ETH_P_IP:
            return _Layout(None, None, None, end, end)
        hlen, tot_len = ipv4.check_len(buf, off, end)
    except WireError:
        return _Layout(None, None, None, end, end)
    packet = ipv4.Ipv4Packet(buf, off)
    l3, l4, datagram_end = off, off + hlen, off + tot_len
    protocol = packet.protocol
    fragment = packet.frag_off & (ipv4.IP_MF | ipv4.IP_OFFSET)
    try:
        if protocol == ipv4.IPPROTO_UDP and not fragment:
            udp.check_len(buf, l4, datagram_end)
            return _Layout(l3, l4, protocol, l4 + udp.UDP_HLEN, datagram_end)
        if protocol == ipv4.IPPROTO_TCP and not fragment:
            doff = tcp.check_len(buf, l4, datagram_end)
            return _Layout(l3, l4, protocol, l4 + doff, datagram_end)
    except WireError:
        pass
    return _Layout(l3, None, None, datagram_end, datagram_end)


def _resized(frame: bytes, layout: _Layout, frame_len: int) -> bytearray:
    """The frame at `frame_len` bytes (Stream checked that its headers fit): a
    UDP or TCP payload grown with zeros or trimmed, lengths and checksums fixed;
    any other frame padded with a zero trailer."""
    if layout.l4 is None:
        return bytearray(frame[:layout.end]) + bytes(frame_len - layout.end)
    payload_len = frame_len - layout.payload
    payload = frame[layout.payload:layout.end][:payload_len]
    buf = bytearray(frame[:layout.payload]) + payload + bytes(payload_len - len(payload))
    ipv4.Ipv4Packet(buf, layout.l3).tot_len = frame_len - layout.l3
    if layout.protocol == ipv4.IPPROTO_UDP:
        BE16.pack_into(buf, layout.l4 + udp.LEN, frame_len - layout.l4)
    _fix_checksums(buf, replace(layout, end=frame_len))
    return buf


def _fix_checksums(buf: bytearray, layout: _Layout) -> None:
    """The IPv4 header checksum and the UDP/TCP checksum, of a frame whose
    headers are where `layout` says."""
    if layout.l3 is not None:
        ipv4.fill_checksum(buf, layout.l3)
    if layout.l4 is not None:
        _fix_l4_checksum(buf, layout)


def _fix_l4_checksum(buf: bytearray, layout: _Layout) -> None:
    """The UDP/TCP checksum over the datagram and its pseudo-header (a UDP
    checksum of 0, none sent, stays 0; a computed 0 goes as 0xFFFF, RFC 768)."""
    is_udp = layout.protocol == ipv4.IPPROTO_UDP
    at = layout.l4 + (udp.CHECK if is_udp else tcp.CHECK)
    if is_udp and not udp.UdpDatagram(buf, layout.l4).check:
        return
    BE16.pack_into(buf, at, 0)
    value = checksum(memoryview(buf)[layout.l4:layout.end],
                     ipv4.pseudo_header_sum(buf, layout.l3, layout.protocol, layout.end - layout.l4))
    BE16.pack_into(buf, at, 0xFFFF if is_udp and not value else value)


@dataclass(frozen=True)
class Stream:
    """One stream into DUT port `port` (sent by its tester port)."""

    port: str
    frame: bytes  # the template (a scapy packet is turned into bytes by Stream.of())
    rate: Rate = Rate(100.0, RateUnit.PERCENT)
    mode: Mode = Mode.CONTINUOUS
    count: int | None = None  # packets (single and multi burst)
    bursts: int = 1
    ibg: float = 0.0  # seconds between bursts
    sizes: tuple[tuple[int, int], ...] | None = None  # (size with FCS, weight): padded/trimmed template
    vary: tuple[Vary, ...] = ()
    latency: bool = False  # timestamps in the payload, latency measured at the receiver
    id: int = 0

    def __post_init__(self):
        if self.mode is not Mode.CONTINUOUS and (self.count is None or self.count < 1):
            raise ValueError(f"stream {self.id}: a {self.mode} needs a count of packets, got {self.count}")
        if self.bursts < 1 or self.ibg < 0:
            raise ValueError(f"stream {self.id}: bursts {self.bursts} must be at least 1, ibg {self.ibg} not negative")
        layout = _layout(self.frame)
        if self.sizes is not None:
            if not self.sizes or any(size < MIN_SIZE or weight < 1 for size, weight in self.sizes):
                raise ValueError(f"stream {self.id}: sizes {self.sizes} must be (size >= {MIN_SIZE} with FCS, "
                                 f"weight >= 1) pairs")
            least = layout.end if layout.l4 is None else layout.payload
            if min(size for size, _ in self.sizes) - FCS_LEN < least:
                raise ValueError(f"stream {self.id}: sizes {self.sizes} cut into the frame's first {least} bytes "
                                 f"({'its headers' if layout.l4 is not None else 'a non-UDP/TCP frame only grows'})")
        for vary in self.vary:
            header = _FIELD_AT[vary.field][0]
            if header not in layout.headers:
                raise ValueError(f"stream {self.id}: cannot vary {vary.field}, the frame has no {header} header")
        if self.latency:
            _tag_offset(self.frame, layout, f"stream {self.id} asks for latency")
            for size, _ in self.sizes or ():
                if size - FCS_LEN - layout.payload < TAG_LEN:
                    raise ValueError(f"stream {self.id}: a {size}-byte frame leaves no room for the "
                                     f"{TAG_LEN}-byte latency tag after {layout.payload} bytes of headers")

    @classmethod
    def of(cls, port: str, packet_or_bytes, **fields) -> Stream:
        """A stream of `packet_or_bytes` (a scapy packet or bytes) into `port`,
        with any other Stream field by name. A UDP frame's payload grows (zeros)
        to TAG_LEN bytes at least, and the frame to ETH_ZLEN, so a tag fits."""
        frame = bytes(packet_or_bytes)
        layout = _layout(frame)
        if layout.protocol == ipv4.IPPROTO_UDP:
            frame_len = layout.payload + max(layout.end - layout.payload, TAG_LEN, ETH_ZLEN - layout.payload)
            if frame_len != layout.end:
                frame = bytes(_resized(frame, layout, frame_len))
        if fields.get("sizes") is not None:
            fields["sizes"] = tuple((size, weight) for size, weight in fields["sizes"])
        if "vary" in fields:
            fields["vary"] = tuple(fields["vary"])
        return cls(port, frame, **fields)

    def to_dict(self) -> dict:
        return {"port": self.port, "frame": self.frame.hex(), "rate": self.rate.to_dict(), "mode": self.mode.value,
                "count": self.count, "bursts": self.bursts, "ibg": self.ibg,
                "sizes": None if self.sizes is None else [list(pair) for pair in self.sizes],
                "vary": [vary.to_dict() for vary in self.vary], "latency": self.latency, "id": self.id}

    @classmethod
    def from_dict(cls, data: dict) -> Stream:
        return cls(data["port"], bytes.fromhex(data["frame"]), Rate.from_dict(data["rate"]), Mode(data["mode"]),
                   data["count"], data["bursts"], data["ibg"],
                   None if data["sizes"] is None else tuple(tuple(pair) for pair in data["sizes"]),
                   tuple(Vary.from_dict(vary) for vary in data["vary"]), data["latency"], data["id"])


def size_order(sizes: tuple[tuple[int, int], ...]) -> list[int]:
    """One cycle of `sizes` (size, weight) in the order TRex's imix profile sends
    them (stl/imix.py: a stream per size at 28:16:4 pps, starting 0, 0.1 and
    0.2 us in): size k's i-th packet leaves at i/weight_k of the cycle, ties in
    the listed order. IMIX: 64, 594, 1518, 64, 594, 64, 64, 594, 64, 64, 594, 64."""
    sends = [(Fraction(i, weight), k) for k, (_, weight) in enumerate(sizes) for i in range(weight)]
    return [sizes[k][0] for _, k in sorted(sends)]


def stream_frames(stream: Stream) -> list[bytes]:
    """One cycle of the stream's frames in the order the generator sends them:
    packet n of the run is frames[n % len(frames)]. Sizes interleave as
    size_order() says, every Vary advances on every packet, so the cycle is the
    least common multiple of the sizes' weights' sum and the Vary counts."""
    layout = _layout(stream.frame)
    if stream.sizes:
        sizes = size_order(stream.sizes)
        templates = {size: bytes(_resized(stream.frame, layout, size - FCS_LEN)) for size in set(sizes)}
    else:  # the template as it is, padded as a NIC pads a short frame
        sizes = [0]
        templates = {0: stream.frame + bytes(max(ETH_ZLEN - len(stream.frame), 0))}
    layouts = {size: _layout(template) for size, template in templates.items()}
    # (header, offset, width, the values of one cycle) of each varied field
    varied = []
    for vary in stream.vary:
        header = _FIELD_AT[vary.field][0]
        at, width = _field_at(layout, vary.field)
        start = int.from_bytes(stream.frame[at:at + width], "big")
        varied.append((header, at, width, vary.values(start)))
    cycle = math.lcm(len(sizes), *(vary.count for vary in stream.vary))
    if cycle > MAX_CYCLE:
        raise ValueError(f"stream {stream.id}: {cycle} frames in one cycle (the sizes' order of {len(sizes)} "
                         f"and the counts {[vary.count for vary in stream.vary]} have few common factors); "
                         f"the limit is {MAX_CYCLE}")
    frames, made = [], {}
    for n in range(cycle):
        size = sizes[n % len(sizes)]
        key = (size, *(n % vary.count for vary in stream.vary))
        if key not in made:
            made[key] = _varied_frame(templates[size], layouts[size], varied, key[1:])
        frames.append(made[key])
    return frames


def _field_at(layout: _Layout, field: str) -> tuple[int, int]:
    """(offset, width) of Vary field `field` in a frame of `layout`."""
    header, offset, width = _FIELD_AT[field]
    return {_ETH: 0, _IP: layout.l3, _UDP: layout.l4, _TCP: layout.l4}[header] + offset, width


def field_at(frame: bytes, field: str) -> tuple[int, int]:
    """Where Vary field `field` is in `frame` (Stream checked it has the header):
    its byte offset and width."""
    return _field_at(_layout(frame), field)


def l3_l4(frame: bytes) -> tuple[int | None, int | None, int | None]:
    """Where stream_frames() finds a frame's checksummed headers: the IPv4 header's
    offset, the UDP or TCP header's and its protocol (IPPROTO_UDP/TCP); None for
    what the frame has not."""
    layout = _layout(frame)
    return layout.l3, layout.l4, layout.protocol


def _varied_frame(template: bytes, layout: _Layout, varied, value_indexes: tuple[int, ...]) -> bytes:
    """The template with each varied field at its value of `value_indexes`, and
    the checksums that cover a changed field recomputed."""
    if not varied:
        return template
    buf = bytearray(template)
    for (_, at, width, values), index in zip(varied, value_indexes):
        buf[at:at + width] = values[index].to_bytes(width, "big")
    changed = {header for header, _, _, _ in varied}
    if _IP in changed:
        ipv4.fill_checksum(buf, layout.l3)
    if changed & {_IP, _UDP, _TCP} and layout.l4 is not None:
        _fix_l4_checksum(buf, layout)
    return bytes(buf)


def mean_frame_len(stream: Stream) -> float:
    """The mean length (without FCS, padded to ETH_ZLEN) of the frames the stream sends."""
    if not stream.sizes:
        return float(max(len(stream.frame), ETH_ZLEN))
    return sum((size - FCS_LEN) * weight for size, weight in stream.sizes) / sum(w for _, w in stream.sizes)


def stream_pps(stream: Stream, line_bps: float) -> float:
    """The stream's rate in packets per second on a port of `line_bps` bit/s."""
    return stream.rate.pps(mean_frame_len(stream), line_bps)


def _tag_offset(frame: bytes | bytearray, layout: _Layout, who: str) -> int:
    """Where the tag goes in the frame: the last TAG_LEN bytes of its UDP payload."""
    if layout.protocol != ipv4.IPPROTO_UDP:
        raise ValueError(f"{who}: only an IPv4/UDP frame carries the payload tag, this one "
                         f"{'is not IPv4' if layout.l3 is None else 'is not UDP'}")
    if layout.end - layout.payload < TAG_LEN:
        raise ValueError(f"{who}: the UDP payload of {layout.end - layout.payload} bytes is shorter than the "
                         f"{TAG_LEN}-byte tag (Stream.of() makes room for it)")
    return layout.end - TAG_LEN


def tag_frame(frame: bytes, stream_id: int, seq: int, ts_ns: int) -> bytes:
    """`frame` with the tag (TAG) in the last TAG_LEN bytes of its UDP payload and
    the UDP checksum recomputed (left 0 if the frame's is 0: none sent)."""
    buf = bytearray(frame)
    layout = _layout(buf)
    TAG.pack_into(buf, _tag_offset(buf, layout, "tag_frame"), TAG_MAGIC, stream_id, seq % SEQ_SPACE, ts_ns)
    _fix_l4_checksum(buf, layout)
    return bytes(buf)


def read_tag(frame: bytes) -> tuple[int, int, int] | None:
    """(stream id, sequence number, tx time in ns) of a tagged frame, or None when
    the frame is not IPv4/UDP, its payload is shorter than the tag, or the magic
    is not there."""
    layout = _layout(frame)
    if layout.protocol != ipv4.IPPROTO_UDP or layout.end - layout.payload < TAG_LEN:
        return None
    magic, stream_id, seq, ts_ns = TAG.unpack_from(frame, layout.end - TAG_LEN)
    return (stream_id, seq, ts_ns) if magic == TAG_MAGIC else None


@dataclass(frozen=True)
class Profile:
    streams: tuple[Stream, ...]

    def __post_init__(self):
        ids = [stream.id for stream in self.streams]
        if len(set(ids)) != len(ids):
            raise ValueError(f"stream ids {ids} repeat: each stream of a profile needs its own id")

    def check_duration(self, duration: float | None) -> None:
        """Continuous streams run for the run's duration: they need one."""
        continuous = [stream.id for stream in self.streams if stream.mode is Mode.CONTINUOUS]
        if continuous and (duration is None or duration <= 0):
            raise ValueError(f"streams {continuous} are continuous: traffic() needs a duration in seconds, "
                             f"got {duration}")

    def to_dict(self) -> dict:
        return {"streams": [stream.to_dict() for stream in self.streams]}

    @classmethod
    def from_dict(cls, data: dict) -> Profile:
        return cls(tuple(Stream.from_dict(stream) for stream in data["streams"]))


@dataclass
class LatencyStats:
    """Latency of a stream's packets, in microseconds; jitter as RFC 3550 6.4.1
    (J += (|D| - J) / 16); histogram: bucket lower bound (us) -> packets."""

    min_us: float = 0.0
    avg_us: float = 0.0
    max_us: float = 0.0
    jitter_us: float = 0.0
    histogram: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"min_us": self.min_us, "avg_us": self.avg_us, "max_us": self.max_us, "jitter_us": self.jitter_us,
                "histogram": {str(bucket): packets for bucket, packets in self.histogram.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> LatencyStats:
        return cls(data["min_us"], data["avg_us"], data["max_us"], data["jitter_us"],
                   {int(bucket): packets for bucket, packets in data["histogram"].items()})


def histogram_bucket(latency_us: float) -> int:
    """The histogram bucket of a latency: its leading digit times its decade.
    TRex's buckets (trex-core time_histogram.cpp, CTimeHistogram::Add() and
    dump_json()) are 10, 20, .. 90, 100, 200, .., each up to the next, and 0
    for all of 0-10 us; here 0-10 us has 1 us buckets 1..9 and 0 for under
    1 us, since a software path's latencies are a few microseconds."""
    whole = int(latency_us)
    decade = 10 ** (len(str(whole)) - 1)
    return whole // decade * decade


class LatencyRecorder:
    """Latencies of one stream's packets in arrival order, into LatencyStats:
    min, the mean over every packet (TRex shows a smoothed average per
    period), max, RFC 3550 jitter (A.8: J += (|D| - J) / 16, D the difference
    between consecutive packets' latencies, as TRex's CJitter) and the histogram."""

    def __init__(self):
        self.packets = 0
        self._total = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._jitter = 0.0
        self._last: float | None = None
        self._histogram: dict[int, int] = {}

    def add(self, latency_us: float, count: int = 1) -> None:
        """`count` consecutive packets of latency `latency_us` (a train; 0: none):
        the first moves the jitter by its difference to the previous packet, the
        others by 0."""
        if count < 0:
            raise ValueError(f"a train of {count} packets")
        if not count:
            return
        if self._last is not None:
            self._jitter += (abs(latency_us - self._last) - self._jitter) / 16
        self._jitter *= (15 / 16) ** (count - 1)
        self._last = latency_us
        self.packets += count
        self._total += latency_us * count
        self._min = min(self._min, latency_us)
        self._max = max(self._max, latency_us)
        bucket = histogram_bucket(latency_us)
        self._histogram[bucket] = self._histogram.get(bucket, 0) + count

    def stats(self) -> LatencyStats:
        if not self.packets:
            return LatencyStats()
        return LatencyStats(self._min, self._total / self.packets, self._max, self._jitter,
                            dict(sorted(self._histogram.items())))


class SequenceChecker:
    """Sequence numbers of one stream in arrival order, counted as TRex's flow
    stats count them (RXLatency::handle_seq_number in trex-core): `expected` is
    the next number in order, from 0.
    - seq == expected: in order.
    - seq ahead of expected: the packets between are thought lost (`dropped` +=
      the gap, `seq_too_high` += 1), expected = seq + 1.
    - seq behind expected (`seq_too_low` += 1): a duplicate if it is
      expected - 1 (the last in order, again), else out of order, which was
      counted lost: `dropped` -= 1. expected stays.
    Numbers wrap at 2**32 (the tag's u32): ahead means within half the space."""

    def __init__(self):
        self.expected = 0
        self.dropped = 0
        self.seq_too_high = 0
        self.seq_too_low = 0
        self.out_of_order = 0
        self.duplicates = 0

    def see(self, seq: int, count: int = 1) -> None:
        """Packets seq, seq + 1, ... seq + count - 1 arrived, in that order (0: none)."""
        if count < 0:
            raise ValueError(f"a train of {count} packets")
        if not count:
            return
        ahead = (seq - self.expected) % SEQ_SPACE
        if ahead == 0:
            self.expected = (seq + count) % SEQ_SPACE
        elif ahead < SEQ_SPACE // 2:
            self.dropped += ahead
            self.seq_too_high += 1
            self.expected = (seq + count) % SEQ_SPACE
        else:
            behind = SEQ_SPACE - ahead  # seq .. expected - 1 arrive late, the rest in order
            late = min(count, behind)
            duplicates = 1 if behind <= count else 0
            self.seq_too_low += late
            self.duplicates += duplicates
            self.out_of_order += late - duplicates
            self.dropped = max(self.dropped - (late - duplicates), 0)
            if count > behind:
                self.expected = (seq + count) % SEQ_SPACE


def rates(packets: int, frame_bytes: int, seconds: float) -> tuple[float, float, float]:
    """pps, L2 and L1 bit/s of `packets` frames of `frame_bytes` bytes in all
    (without FCS) over `seconds`."""
    bits = frame_bytes * 8
    return packets / seconds, (bits + l2_bits(0) * packets) / seconds, (bits + l1_bits(0) * packets) / seconds


@dataclass
class PortStats:
    """TRex's per-port names. `o*` is what the tester sent into the DUT port,
    `i*` what the tester received from it."""

    opackets: int = 0
    ipackets: int = 0
    obytes: int = 0
    ibytes: int = 0
    tx_pps: float = 0.0
    rx_pps: float = 0.0
    tx_bps: float = 0.0  # L2
    rx_bps: float = 0.0
    tx_bps_L1: float = 0.0
    rx_bps_L1: float = 0.0

    def set_rates(self, tx_seconds: float, rx_seconds: float) -> None:
        """The rates from the counts: what was sent over `tx_seconds`, received over `rx_seconds`."""
        self.tx_pps, self.tx_bps, self.tx_bps_L1 = rates(self.opackets, self.obytes, tx_seconds)
        self.rx_pps, self.rx_bps, self.rx_bps_L1 = rates(self.ipackets, self.ibytes, rx_seconds)


@dataclass
class StreamStats:
    id: int
    opackets: int = 0
    ipackets: int = 0
    obytes: int = 0
    ibytes: int = 0
    tx_pps: float = 0.0
    rx_pps: float = 0.0
    tx_bps_L1: float = 0.0
    rx_bps_L1: float = 0.0
    out_of_order: int = 0
    duplicates: int = 0
    latency: LatencyStats | None = None

    def set_rates(self, tx_seconds: float, rx_seconds: float) -> None:
        """The rates from the counts: what was sent over `tx_seconds`, received over `rx_seconds`."""
        self.tx_pps, _, self.tx_bps_L1 = rates(self.opackets, self.obytes, tx_seconds)
        self.rx_pps, _, self.rx_bps_L1 = rates(self.ipackets, self.ibytes, rx_seconds)

    @property
    def lost(self) -> int:
        return max(self.opackets - self.ipackets, 0)

    def loss_ratio(self) -> float:
        """Lost over sent (0 when nothing was sent)."""
        return self.lost / self.opackets if self.opackets else 0.0


@dataclass
class Loss:
    """Packets lost at one place, as far as the target can tell: the stage (a
    journey Stage value), the kernel's drop reason, and where (function or counter)."""

    stage: str
    reason: str
    where: str
    packets: int


@dataclass
class Result:
    target: str
    duration: float  # seconds the streams ran (virtual on the mock)
    ports: dict[str, PortStats] = field(default_factory=dict)
    streams: dict[int, StreamStats] = field(default_factory=dict)
    losses: list[Loss] = field(default_factory=list)
    paths: list[tuple[str, int]] = field(default_factory=list)  # journey paths with counts, where known
    notes: list[str] = field(default_factory=list)  # what the target could not observe, and why

    def loss_ratio(self, stream_id: int | None = None) -> float:
        """Lost over sent of stream `stream_id`, or of all streams together."""
        if stream_id is not None:
            return self.streams[stream_id].loss_ratio()
        sent = sum(stats.opackets for stats in self.streams.values())
        return sum(stats.lost for stats in self.streams.values()) / sent if sent else 0.0

    def to_dict(self) -> dict:
        return {
            "target": self.target, "duration": self.duration,
            "ports": {name: _plain(stats) for name, stats in self.ports.items()},
            "streams": {str(sid): {**_plain(stats), "latency": None if stats.latency is None
                                   else stats.latency.to_dict()} for sid, stats in self.streams.items()},
            "losses": [_plain(loss) for loss in self.losses],
            "paths": [[path, count] for path, count in self.paths],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        streams = {}
        for sid, stats in data["streams"].items():
            latency = stats["latency"]
            streams[int(sid)] = StreamStats(**{**stats, "latency": None if latency is None
                                               else LatencyStats.from_dict(latency)})
        return cls(data["target"], data["duration"],
                   {name: PortStats(**stats) for name, stats in data["ports"].items()}, streams,
                   [Loss(**loss) for loss in data["losses"]], [(path, count) for path, count in data["paths"]],
                   list(data["notes"]))

    def summary(self) -> str:
        """A short table in the manner of TRex's console: per port, per stream, the
        losses by place, and the notes."""
        lines = [f"traffic on {self.target}: {self.duration:.3f} s"]
        if self.ports:
            lines += _columns([["port", *self.ports]] + [[name, *(cell(p) for p in self.ports.values())]
                                                         for name, cell in _PORT_ROWS])
        if self.streams:
            lines += _columns([list(_STREAM_COLUMNS)] + [_stream_row(sid, s) for sid, s in self.streams.items()])
        if self.losses:
            lines.append("losses:")
            lines += ["  " + line for line in _columns([["stage", "reason", "where", "packets"]] + [
                [loss.stage, loss.reason, loss.where, f"{loss.packets:,}"] for loss in self.losses])]
        if self.notes:
            lines.append("notes:")
            lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


# the rows of the summary's port table: a statistic and how a cell shows it
_PORT_ROWS = (("opackets", lambda p: f"{p.opackets:,}"), ("ipackets", lambda p: f"{p.ipackets:,}"),
              ("tx_pps", lambda p: _si(p.tx_pps, "pps")), ("rx_pps", lambda p: _si(p.rx_pps, "pps")),
              ("tx_bps_L1", lambda p: _si(p.tx_bps_L1, "bps")), ("rx_bps_L1", lambda p: _si(p.rx_bps_L1, "bps")))
_STREAM_COLUMNS = ("stream", "opackets", "ipackets", "lost", "loss", "latency min/avg/max us", "jitter us",
                   "ooo", "dup")


def _stream_row(sid: int, stats: StreamStats) -> list[str]:
    latency = stats.latency
    return [str(sid), f"{stats.opackets:,}", f"{stats.ipackets:,}", f"{stats.lost:,}", f"{stats.loss_ratio():.3%}",
            "-" if latency is None else f"{latency.min_us:.1f}/{latency.avg_us:.1f}/{latency.max_us:.1f}",
            "-" if latency is None else f"{latency.jitter_us:.2f}", str(stats.out_of_order), str(stats.duplicates)]


def _plain(record) -> dict:
    """A flat dataclass's fields as a dict (the records of a Result)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _si(value: float, unit: str) -> str:
    """14880952 pps -> "14.88 Mpps", as TRex's console prints rates."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.2f} {unit}"


def _columns(table: list[list[str]]) -> list[str]:
    """Rows of cells, left-aligned in columns two spaces apart."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]


@dataclass(frozen=True)
class TrafficCaps:
    """What a target's generator can offer and what it observes at rate."""

    generator: str  # e.g. "virtual-time model", "AF_PACKET TX ring in the tester netns"
    max_pps: float  # per port, measured or declared
    max_bps_L1: float
    observes: frozenset[str]  # "latency", "losses", "paths", "qdisc", "ring", "softnet", ...

    def shortfall(self, pps: float = 0.0, bps_L1: float = 0.0) -> str | None:
        """Why this target cannot offer `pps` / `bps_L1` per port, or None."""
        short = []
        if pps > self.max_pps:
            short.append(f"{_si(pps, 'pps')} asked, {_si(self.max_pps, 'pps')} at most")
        if bps_L1 > self.max_bps_L1:
            short.append(f"{_si(bps_L1, 'bps')} (L1) asked, {_si(self.max_bps_L1, 'bps')} at most")
        if not short:
            return None
        return f"the {self.generator} generator offers too little per port: {'; '.join(short)}"
