"""The TRex stand-in's traffic: TRex streams compiled to frames, sent at rate by pjgen.

A stream is parsed as TrexRpcCmdAddStream does (trex-core
src/stx/stl/trex_stl_rpc_cmds.cpp): mode continuous / single_burst / multi_burst, a
rate in pps, bps_L1, bps_L2 or percentage of the port's line (TrexStreamRate in
trex_stl_stream.h: a packet counts its expected length plus the 4-byte FCS, L1 adds
20 bytes of preamble and gap), its VM (vm.py), and flow_stats by pg_id ("stats" or
"latency"). Flags bit 0 clear: the port's MAC is the source, as TRex's DP writes it
(TrexStream::m_flags); a stand-in port has no configured destination, so the
packet's destination MAC stays whatever bits 1-2 ask.

start_traffic scales a port's streams by the multiplier as
TrexStatelessProfile::calculate_effective_factor_internal() does (raw factor, or the
factor that brings the streams' sum to the pps / bps L2 / bps L1 / % of line asked),
and refuses an L1 rate over the line without `force`. The ports started within
START_GATHER of each other run together in one pjgen (tools/pjgen.c): every stream
from its port's interface at its rate, the payload tag in the last 16 bytes of every
UDP frame (which TRex would not write into a stream without flow stats), and every
port receiving. Its statistics become the ports' counters, and the pg_ids' flow
stats and latency (stats.py), when the run ends: TRex's counters grow while it runs,
the stand-in's at the end.

A stream's isg delays its first packet after the port starts; start_at_ts (a
synchronized start) delays the run to that time (on the clock ping answers). Not
implemented, refused naming it: stream chaining (self_start false, next_stream_id),
core pinning, continuous streams without a duration, a second run while one is
going, and pause/resume/update.
"""
from __future__ import annotations

import base64
import binascii
import queue
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass

from harness.drivers import generator
from harness.drivers.trex_standin import rpc, vm
from harness.drivers.trex_standin.capture import MAX_PKT_SIZE, MIN_PKT_SIZE
from harness.drivers.trex_standin.rpc import execute_error, parse_error
from harness.drivers.trex_standin.stats import Latency, PgidCounters, PortCounters, trex_histogram_bucket
from harness.mockkernel.wire.ethernet import EthernetFrame, mac_to_bytes
from harness.traffic import l1_bits, l2_bits, rates

START_GATHER = 0.05  # seconds: ports started this close together run in one pjgen
DRAIN_SECONDS = 0.5  # after the last packet is sent, how long what is still on its way may take
STOP_TIMEOUT = 10.0
MODES = ("continuous", "single_burst", "multi_burst")
RATE_TYPES = ("pps", "bps_L1", "bps_L2", "percentage")
MUL_TYPES = ("raw", "bps", "bpsl1", "pps", "percentage")
FLAG_SRC_FROM_PACKET, FLAG_DUMMY = 0x1, 0x8
PJGEN_MODES = {"continuous": "c", "single_burst": "s", "multi_burst": "m"}


@dataclass
class Stream:
    """One added stream, compiled."""

    port: int
    stream_id: int
    json: dict
    frames: list[bytes]
    mode: str
    packets: int  # single_burst: total_pkts; multi_burst: pkts_per_burst; continuous: 0
    bursts: int
    ibg_usec: float
    isg_usec: float  # when it starts, after the port starts
    rate_type: str
    rate_value: float
    pg_id: int | None
    latency: bool
    sends: bool  # enabled and not a dummy stream (flags bit 3): TRex compiles only those into a run

    @property
    def mean_len(self) -> float:
        return sum(len(frame) for frame in self.frames) / len(self.frames)

    def pps(self, line_bps: float) -> float:
        """TrexStreamRate::get_pps(), from whichever rate the stream was given."""
        if self.rate_type == "pps":
            return self.rate_value
        if self.rate_type == "bps_L2":
            return self.rate_value / l2_bits(self.mean_len)
        bps_l1 = self.rate_value if self.rate_type == "bps_L1" else self.rate_value / 100 * line_bps
        return bps_l1 / l1_bits(self.mean_len)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise parse_error(f"'binary' is not base64: {error}") from None


def compile_stream(port: int, mac: str, stream_id: int, section: dict) -> Stream:
    """TrexRpcCmdAddStream::_run() for the stand-in: the stream's frames and rate."""
    mode = rpc.param_dict(section, "mode")
    mode_type = rpc.param_choice(mode, "type", MODES)
    packets, bursts, ibg = 0, 1, 0.0
    if mode_type == "single_burst":
        packets = rpc.param_int(mode, "total_pkts", high=0xFFFFFFFF)
        if not packets:
            raise parse_error("single_burst: 'total_pkts' cannot be zero.")
    elif mode_type == "multi_burst":
        ibg = rpc.param_float(mode, "ibg")
        bursts = rpc.param_int(mode, "count", high=0xFFFFFFFF)
        packets = rpc.param_int(mode, "pkts_per_burst", high=0xFFFFFFFF)
        if not packets:
            raise parse_error("multi_burst: 'pkts_per_burst' cannot be zero.")
    rate = rpc.param_dict(mode, "rate")
    rate_value = rpc.param_float(rate, "value")
    rate_type = rpc.param_choice(rate, "type", RATE_TYPES)
    if rate_value <= 0:
        raise parse_error(f"rate 'value' {rate_value} must be positive")
    if not rpc.param_bool(section, "self_start") or rpc.param_int(section, "next_stream_id", low=-1) != -1:
        raise execute_error("stream chaining (self_start false, next_stream_id) is not implemented by the "
                            "TRex stand-in")
    isg = rpc.param_float(section, "isg")
    if section.get("core_id", -1) not in (-1, 0):
        raise execute_error("There is only one core, hence core ID must be 0.")
    flags = rpc.param_int(section, "flags")
    if rpc.param_bool(section, "start_paused", False):
        raise execute_error("streams that start paused are not implemented by the TRex stand-in")
    packet = _b64(rpc.param_str(rpc.param_dict(section, "packet"), "binary"))
    if not MIN_PKT_SIZE <= len(packet) <= MAX_PKT_SIZE:
        raise execute_error(f"Bad packet size provided: {len(packet)}. Should be between {MIN_PKT_SIZE} and "
                            f"{MAX_PKT_SIZE}")
    try:
        frames = vm.StreamVm(packet, rpc.param_dict(section, "vm"),
                             rpc.param_int(section, "random_seed", 0, high=0xFFFFFFFF)).frames()
    except vm.VmError as error:
        raise parse_error(str(error)) from None
    frames = [_port_macs(frame, flags, mac) for frame in frames]
    flow_stats = rpc.param_dict(section, "flow_stats")
    pg_id, latency = None, False
    if rpc.param_bool(flow_stats, "enabled"):
        pg_id = rpc.param_int(flow_stats, "stream_id", high=0xFFFFFFFF)
        rule = rpc.param_choice(flow_stats, "rule_type", ("stats", "latency", "tpg"))
        if rule == "tpg":
            raise execute_error("tagged packet groups are not implemented by the TRex stand-in")
        latency = rule == "latency"
    return Stream(port, stream_id, section, frames, mode_type, packets, bursts, ibg, isg, rate_type, rate_value,
                  pg_id, latency, rpc.param_bool(section, "enabled") and not flags & FLAG_DUMMY)


def _port_macs(frame: bytes, flags: int, mac: str) -> bytes:
    """The DP's MAC override: the port's MAC as source unless the packet's is kept (a
    stand-in port has no configured destination: the packet's stays)."""
    if flags & FLAG_SRC_FROM_PACKET:
        return frame
    buf = bytearray(frame)
    EthernetFrame(buf).src = mac_to_bytes(mac)
    return bytes(buf)


def multiplier_factor(streams: list[Stream], mul: dict, line_bps: float, force: bool) -> float:
    """calculate_effective_factor(): what the streams' rates are multiplied by."""
    mul_type = rpc.param_choice(mul, "type", MUL_TYPES)
    if rpc.param_str(mul, "op") != "abs":
        raise parse_error("start message can only specify absolute speed rate")
    value = rpc.param_float(mul, "value")
    if value <= 0:
        raise parse_error("multiplier can't be zero")
    pps = [s.pps(line_bps) for s in streams]
    bps_l1 = sum(p * l1_bits(s.mean_len) for p, s in zip(pps, streams))
    if mul_type == "raw":
        factor = value
    elif mul_type == "pps":
        factor = value / sum(pps)
    elif mul_type == "bps":
        factor = value / sum(p * l2_bits(s.mean_len) for p, s in zip(pps, streams))
    elif mul_type == "bpsl1":
        factor = value / bps_l1
    else:
        factor = value / 100 * line_bps / bps_l1
    if not force and bps_l1 * factor / line_bps > 1.0001:
        raise execute_error(f"Expected L1 B/W: '{bps_l1 * factor / 1e9:g} Gbps' exceeds port line rate: "
                            f"'{line_bps / 1e9:g} Gbps'")
    return factor


@dataclass
class Start:
    """One port's start_traffic, waiting to run."""

    port: int
    profile: str
    streams: list[Stream]
    factor: float
    duration: float  # seconds, <= 0: none
    start_at: float = 0.0  # time.monotonic() (what ping answers) to start at, 0: now


class TrafficRun:
    """One pjgen: the streams of the ports started together, and a thread waiting on it."""

    def __init__(self, starts: list[Start], interfaces: list[str], line_bps: list[float]):
        self.starts = starts
        self.interfaces = interfaces
        self.line_bps = line_bps
        self.streams = [s for start in starts for s in start.streams]
        self.stopped = False
        self.results: queue.Queue = queue.Queue(1)
        self._generator = generator.GeneratorRun.from_spec(self.spec())
        self._thread = threading.Thread(target=self._wait, name="trex-standin run", daemon=True)
        self._thread.start()

    def spec(self) -> str:
        """pjgen's input (tools/pjgen.c's header): pjgen stream id n + 1 is self.streams[n]."""
        duration = max(start.duration for start in self.starts)
        lines = ["tx sendmmsg", f"duration_ns {round(max(duration, 0) * 1e9)}", "rx " + " ".join(self.interfaces)]
        factors = {start.port: start.factor for start in self.starts}
        for n, stream in enumerate(self.streams):
            pps = stream.pps(self.line_bps[stream.port]) * factors[stream.port]
            lines.append(f"stream {n + 1} {self.interfaces[stream.port]} {pps!r} {PJGEN_MODES[stream.mode]} "
                         f"{stream.packets} {stream.bursts} {round(stream.ibg_usec * 1e3)} {len(stream.frames)} "
                         f"{round(stream.isg_usec * 1e3)}")
            lines += (frame.hex() for frame in stream.frames)
        return "\n".join(lines) + "\n"

    def schedule_seconds(self) -> float:
        seconds = [max(start.duration for start in self.starts)]
        for start in self.starts:
            for stream in start.streams:
                if stream.mode != "continuous":
                    pps = stream.pps(self.line_bps[stream.port]) * start.factor
                    seconds.append((stream.isg_usec + stream.bursts * stream.ibg_usec) / 1e6
                                   + stream.bursts * stream.packets / pps)
        return max(seconds)

    def stop(self) -> dict:
        """End the streams now; the statistics."""
        self.stopped = True
        self._generator.request_stop()
        return self.wait(STOP_TIMEOUT)

    def wait(self, timeout: float) -> dict:
        try:
            result = self.results.get(timeout=timeout)
        except queue.Empty:
            raise execute_error(f"the stand-in's generator did not end within {timeout:g} s") from None
        self._thread.join()
        if isinstance(result, Exception):
            raise execute_error(f"the stand-in's generator failed: {result}")
        return result

    def done(self) -> bool:
        return not self.results.empty()

    def close(self) -> None:
        self._generator.close()

    def _wait(self) -> None:
        try:
            self._generator.wait_sent(2 * self.schedule_seconds() + generator.STARTUP_TIMEOUT)
            self._generator.finished(DRAIN_SECONDS)
            self.results.put(self._generator.stats())
        except Exception as error:  # noqa: BLE001 -- handed to the RPC thread, which reports it
            self.results.put(error)


def apply_stats(run: TrafficRun, stats: dict, counters: list[PortCounters], pgids: dict[int, PgidCounters]) -> None:
    """pjgen's statistics of `run` into the ports' counters and the pg_ids' flow stats."""
    seconds = max(stats["tx_ns"] / 1e9, 1e-9)
    index = {name: n for n, name in enumerate(run.interfaces)}
    sent = {n: [0, 0] for n in range(len(counters))}
    for stream, measured in zip(run.streams, stats["streams"]):
        sent[stream.port][0] += measured["opackets"]
        sent[stream.port][1] += measured["obytes"]
        if stream.pg_id is not None and stream.pg_id in pgids:
            _apply_pgid(pgids[stream.pg_id], stream, measured, index, seconds)
    for n, port in enumerate(counters):
        opackets, obytes = sent[n]
        received = stats["ports"][run.interfaces[n]]
        port.opackets += opackets
        port.obytes += obytes
        port.ipackets += received["ipackets"]
        port.ibytes += received["ibytes"]
        port.tx_pps, port.tx_bps, _ = rates(opackets, obytes, seconds)
        port.rx_pps, port.rx_bps, _ = rates(received["ipackets"], received["ibytes"], seconds)


def _apply_pgid(pgid: PgidCounters, stream: Stream, measured: dict, index: dict[str, int], seconds: float) -> None:
    port = stream.port
    pgid.tx_packets[port] = pgid.tx_packets.get(port, 0) + measured["opackets"]
    pgid.tx_bytes[port] = pgid.tx_bytes.get(port, 0) + measured["obytes"]
    tps, tbs, _ = rates(measured["opackets"], measured["obytes"], seconds)
    pgid.rates.setdefault("tps", {})[port] = tps
    pgid.rates.setdefault("tbs", {})[port] = tbs
    for name, received in measured["rx_ports"].items():
        rx = index[name]
        pgid.rx_packets[rx] = pgid.rx_packets.get(rx, 0) + received["ipackets"]
        pgid.rx_bytes[rx] = pgid.rx_bytes.get(rx, 0) + received["ibytes"]
        rps, rbs, _ = rates(received["ipackets"], received["ibytes"], seconds)
        pgid.rates.setdefault("rps", {})[rx] = rps
        pgid.rates.setdefault("rbs", {})[rx] = rbs
    if pgid.latency is not None:
        _apply_latency(pgid.latency, measured)


def _apply_latency(latency: Latency, measured: dict) -> None:
    """pjgen's latencies (ns, its 1 us buckets under 10 us) into TRex's (us, one "0"
    bucket under 10 us); its sequence errors into TRex's err_cntrs."""
    found = measured["latency"]
    for name, key in (("drp", "dropped"), ("ooo", "out_of_order"), ("dup", "duplicates"),
                      ("sth", "seq_too_high"), ("stl", "seq_too_low")):
        latency.errors[name] += measured[key]
    if not found["n"]:
        return
    min_us, max_us = found["min_ns"] / 1e3, found["max_ns"] / 1e3
    latency.min_us = min_us if not latency.packets else min(latency.min_us, min_us)
    latency.max_us = max(latency.max_us, max_us)
    latency.last_max_us = max_us
    latency.packets += found["n"]
    latency.sum_us += found["sum_ns"] / 1e3
    latency.jitter_us = found["jitter_ns"] / 1e3
    for bucket, packets in found["histogram_us"].items():
        trex_bucket = trex_histogram_bucket(int(bucket))
        latency.histogram[trex_bucket] = latency.histogram.get(trex_bucket, 0) + packets


class TrafficEngine:
    """Runs starts: gathers those that come together, one pjgen at a time, the
    captures deaf meanwhile."""

    def __init__(self, interfaces: list[str], line_bps: list[float], deaf):
        self.interfaces = interfaces
        self.line_bps = line_bps
        self._deaf = deaf
        self._pending: list[Start] = []
        self._pending_since = 0.0
        self.run: TrafficRun | None = None
        self._quiet = ExitStack()

    def start(self, start: Start) -> None:
        if self.run is not None:
            raise execute_error("the TRex stand-in runs one traffic run at a time: start every port in one "
                                "start() and wait for it to end")
        if self._pending and start.duration != self._pending[0].duration:
            raise execute_error("the TRex stand-in runs ports started together with one duration: "
                                f"{start.duration} s here, {self._pending[0].duration} s before")
        if start.duration <= 0 and any(s.mode == "continuous" for s in start.streams):
            raise execute_error("the TRex stand-in's generator (pjgen) needs a duration for continuous streams: "
                                "start(duration=...)")
        self._pending.append(start)
        self._pending_since = time.monotonic()

    def due(self) -> list[Start]:
        """The gathered starts, taken, once START_GATHER passed without another and the
        time they asked to start at came; else none."""
        now = time.monotonic()
        if not self._pending or now - self._pending_since < START_GATHER or \
                now < max(start.start_at for start in self._pending):
            return []
        starts, self._pending = self._pending, []
        return starts

    def launch(self, starts: list[Start]) -> None:
        """pjgen on `starts`, the captures deaf until it ends."""
        self._quiet.enter_context(self._deaf())
        try:
            self.run = TrafficRun(starts, self.interfaces, self.line_bps)
        except BaseException:
            self._quiet.close()
            raise

    def pending_ports(self) -> set[int]:
        return {start.port for start in self._pending}

    def cancel_pending(self, port: int) -> None:
        self._pending = [start for start in self._pending if start.port != port]

    def finish(self, stats_of) -> tuple[TrafficRun, dict]:
        """The run ended (or `stats_of(run)` ends it): the run and its statistics."""
        run, self.run = self.run, None
        try:
            return run, stats_of(run)
        finally:
            run.close()
            self._quiet.close()
