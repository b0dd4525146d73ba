"""Traffic at rate: profiles of streams, and the results a run gives back.

The same types on every target: the mock's virtual-time line-rate model
(mockkernel/linerate/), the netns lab's software generator (drivers/generator.py)
and a lab's TRex. Statistic names are TRex's where they overlap (opackets,
ipackets, tx_pps, rx_bps_L1, ...), so a TRex user reads a result at once.

Rates on the wire: L2 counts the frame as the tester hands it over plus its 4-byte
FCS; L1 adds the 8-byte preamble and the 12-byte inter-frame gap, so a 60-byte
frame (64 with FCS) takes 84 bytes of line: 14.88 Mpps at 10 Gbit/s.

Profiles and results are plain data: `to_dict()` / `from_dict()` round-trip
through JSON.

SKELETON: the types and names below are the contract between the parts being
built in parallel (issue 10); bodies marked TODO are being written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

FCS_LEN = 4
PREAMBLE_IFG = 20  # 8-byte preamble + SFD, 12-byte inter-frame gap


def l2_bits(frame_len: int) -> int:
    """Bits a frame takes at L2: the frame (without FCS, as sent) plus the FCS."""
    return (frame_len + FCS_LEN) * 8


def l1_bits(frame_len: int) -> int:
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

    def pps(self, frame_len: float, line_bps: float) -> float:
        """Packets per second for frames of (mean) length `frame_len` on a port of
        `line_bps` bit/s."""
        raise NotImplementedError  # TODO


class Mode(StrEnum):
    CONTINUOUS = "continuous"  # until the run's duration ends
    SINGLE_BURST = "single_burst"  # `count` packets at `rate`, then stop
    MULTI_BURST = "multi_burst"  # `bursts` bursts of `count` packets, `ibg` seconds apart


class VaryMode(StrEnum):
    INC = "inc"
    DEC = "dec"
    RANDOM = "random"


# Fields a stream can vary; the L3/L4 checksums are fixed after each change.
VARY_FIELDS = ("eth.src", "eth.dst", "ip.src", "ip.dst", "ip.tos", "ip.id",
               "udp.sport", "udp.dport", "tcp.sport", "tcp.dport")


@dataclass(frozen=True)
class Vary:
    """Field variation (TRex's STLVmFlowVar): `field` takes `count` distinct values
    from its value in the frame, by `step`, in `mode` (random: seeded)."""

    field: str
    count: int
    mode: VaryMode = VaryMode.INC
    step: int = 1
    seed: int = 0


# Simple IMIX (TRex's and the IETF's): 64:7, 594:4, 1518:1 frame sizes with FCS.
IMIX = ((64, 7), (594, 4), (1518, 1))


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


@dataclass(frozen=True)
class Profile:
    streams: tuple[Stream, ...]


@dataclass
class LatencyStats:
    """Latency of a stream's packets, in microseconds; jitter as RFC 3550 6.4.1
    (J += (|D| - J) / 16); histogram: bucket lower bound (us) -> packets."""

    min_us: float = 0.0
    avg_us: float = 0.0
    max_us: float = 0.0
    jitter_us: float = 0.0
    histogram: dict[int, int] = field(default_factory=dict)


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

    @property
    def lost(self) -> int:
        return max(self.opackets - self.ipackets, 0)


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


@dataclass(frozen=True)
class TrafficCaps:
    """What a target's generator can offer and what it observes at rate."""

    generator: str  # e.g. "virtual-time model", "AF_PACKET TX ring in the tester netns"
    max_pps: float  # per port, measured or declared
    max_bps_L1: float
    observes: frozenset[str]  # "latency", "losses", "paths", "qdisc", "ring", "softnet", ...

    def shortfall(self, pps: float = 0.0, bps_L1: float = 0.0) -> str | None:
        """Why this target cannot offer `pps` / `bps_L1` per port, or None."""
        raise NotImplementedError  # TODO
