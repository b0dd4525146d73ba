"""A lab station's TRex, through the official client in a process of its own.

`TrexClient` starts `python -m harness.drivers.trex_worker` (inside `ip netns
exec <trex.via_netns>` when the lab file says so: the stand-in lab reaches its
TRex from a namespace of its own) and sends it requests over a pipe; the worker
runs lbr-trex-client 3.4.0 (`trex.stl.api`), which must not be imported here
(trex_worker.py's doc says why, and describes the protocol and how a profile
becomes STL streams).

- Functional frames: the ports stay in service mode with a capture of what they
  receive; push() sends frames out of the TRex port cabled to a DUT port,
  received() returns what the capture holds by DUT port. Only the receive side is
  captured, so TRex's own frames never appear.
- Line rate: run() adds the profile's streams, starts them, waits until they
  end and the DUT drained (its qdiscs empty, as the caller's `held` reads them,
  then every port's and pg_id's receive counters still for a while, bounded),
  then reads get_stats() and get_pgid_stats() into a Result.
  Service mode and the capture are off meanwhile, so the run's frames are not
  taken for functional ones; what the capture held when the run began is kept
  for the next received().
- Every request has a timeout (the lab file's `timeouts`); a refused or silent
  server, a server error, a worker that died or hung are a TrexError naming the
  server, the namespace it was reached from and what was being done:
  infrastructure (TargetUnavailable), so a test is reported broken, never failed.

Checked here against the TRex stand-in (harness/drivers/trex_standin) only, never a
real TRex: connecting, acquiring and resetting ports, service mode, push and
capture, streams with flow and latency statistics, their counts and drain. What a
real TRex adds is described, not tested: its rates from DPDK, its pg_id rules
rewriting the IPv4 id (trex_worker.py's doc), its latency figures' smoothing
(`average` is a filtered one in TRex, the mean on the stand-in) and its several
cores per port (split_to_cores interleaves a stream's flow values across them).
"""
from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.drivers import generator
from harness.labfile import Timeouts, Trex
from harness.target import TargetError, TargetUnavailable
from harness.traffic import (
    ETH_ZLEN,
    LatencyStats,
    PortStats,
    Profile,
    Result,
    StreamStats,
    TrafficCaps,
    l1_bits,
)

ROOT = Path(__file__).resolve().parents[2]  # where `harness` is importable from, for the worker
HEADER_LEN = 4  # a message's big-endian length (trex_worker.HEADER)
STARTUP = 20.0  # seconds the worker may take to import the client (about 1.5 s here, idle)
# received(): after the first frame, polls until one finds nothing new, for at most this long
RECEIVE_SETTLE = 1.0
DRAIN_QUIET = 0.2  # the DUT drained: its qdiscs empty, then receive counters unchanged this long (s) ...
DRAIN_TIMEOUT = 10.0  # ... or the run ends anyway after this long, saying so
EXIT_WAIT = 5.0  # seconds a worker whose pipe closed may take to exit
STDERR_TAIL = 2000  # characters of the worker's stderr an error quotes
LATE = 1.0  # seconds past the schedule after which the streams' end is worth a note
OBSERVES = frozenset({"latency"})  # TRex's own statistics; the DUT's side observes the rest


class TrexError(TargetUnavailable):
    """The TRex server or the client process failed: infrastructure, not the product."""


class _Worker:
    """The client process and the length-prefixed JSON pipe to it."""

    def __init__(self, where: str, via_netns: str | None):
        self.where = where
        argv = [sys.executable, "-m", "harness.drivers.trex_worker"]
        if via_netns is not None:
            argv = ["ip", "netns", "exec", via_netns, *argv]
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- as long as the worker runs
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                            env={**os.environ, "PYTHONPATH": path})
        except OSError as exc:
            self._stderr.close()
            raise TrexError(f"{where}: starting the TRex client process `{' '.join(argv)}`: {exc}") from exc
        self.ended: str | None = None  # why the process is gone, once it is
        self._started = False  # it answered once: the client is imported

    def call(self, op: str, args: dict, doing: str, timeout: float):
        """Send request `op` with `args` and return its answer's result, within
        `timeout` seconds (and STARTUP more for the first)."""
        if self.ended is not None:
            raise TrexError(f"{self.where}: {doing}: {self.ended}")
        body = json.dumps({"op": op, **args}).encode()
        if not self._started:
            timeout += STARTUP
        try:
            self.process.stdin.write(len(body).to_bytes(HEADER_LEN, "big") + body)
            self.process.stdin.flush()
            deadline = time.monotonic() + timeout
            header = self._read(HEADER_LEN, deadline, timeout)
            answer = json.loads(self._read(int.from_bytes(header, "big"), deadline, timeout))
        except (BrokenPipeError, EOFError):
            self._end(f"the TRex client process ended: {self._exit()}")
            raise TrexError(f"{self.where}: {doing}: {self.ended}") from None
        except TimeoutError as exc:
            self._end(f"the TRex client process gave no answer within {timeout:.1f} s and was stopped")
            raise TrexError(f"{self.where}: {doing}: {self.ended}") from exc
        self._started = True
        if "error" not in answer:
            return answer["ok"]
        if answer["kind"] == "profile":
            raise TargetError(f"{self.where} cannot run this profile: {answer['error']}")
        raise TrexError(f"{self.where}: {doing}: {answer['error']}")

    def _read(self, count: int, deadline: float, timeout: float) -> bytes:
        out, data = self.process.stdout, b""
        while len(data) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([out], [], [], left)[0]:
                raise TimeoutError(timeout)
            chunk = os.read(out.fileno(), count - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _exit(self) -> str:
        """How the process ended, with the end of what it said on stderr."""
        try:
            status = self.process.wait(timeout=EXIT_WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace").strip()[-STDERR_TAIL:]
        return f"status {status}" + (f", stderr:\n{said}" if said else "")

    def _end(self, why: str) -> None:
        self.ended = why
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self, timeout: float) -> None:
        """Ask the worker to close its connection and exit; safe twice."""
        if self.ended is None:
            try:
                self.call("close", {}, "closing the connection", timeout)
            finally:
                self._end("the TRex client was closed")
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            stream.close()


class TrexClient:
    """One station's TRex server, reached as the lab file says (module doc). With
    `connect=False` no server is reached: only streams() works (--lab-dry-run)."""

    def __init__(self, trex: Trex, timeouts: Timeouts, connect: bool = True):
        self.address = f"{trex.host}:{trex.sync_port}"
        self.via_netns = trex.via_netns
        self._timeouts = timeouts
        self._dut_port = {int(trex_port): dut_port for trex_port, dut_port in trex.ports.items()}
        self._trex_port = {dut_port: trex_port for trex_port, dut_port in self._dut_port.items()}
        where = f"TRex at {self.address}" + (f" (from netns {trex.via_netns})" if trex.via_netns else "")
        self._worker = _Worker(where, trex.via_netns if connect else None)
        self._server: dict | None = None
        self._captured: list[list] = []  # [TRex port, frame] the capture held when a run began
        if connect:
            try:
                self._server = self._worker.call(
                    "connect", {"server": trex.host, "sync_port": trex.sync_port, "async_port": trex.async_port,
                                "timeout": timeouts.connect, "ports": sorted(self._dut_port)},
                    f"connecting (async port {trex.async_port}) and acquiring ports {sorted(self._dut_port)}",
                    timeouts.connect)
            except BaseException:
                self.close()
                raise

    # functional frames ------------------------------------------------------------
    def push(self, dut_port: str, frames: list[bytes]) -> None:
        """Send `frames` as they are out of the TRex port cabled to `dut_port`."""
        trex_port = self._trex_port_of(dut_port)
        self._call("push", {"port": trex_port, "frames": [base64.b64encode(frame).decode() for frame in frames]},
                   f"pushing {len(frames)} frames out of port {trex_port} (to {dut_port})", self._timeouts.trex)

    def received(self, timeout: float) -> dict[str, list[bytes]]:
        """The frames the DUT sent since the last call, by DUT port: waits up to
        `timeout` for the first, then until the capture stays quiet."""
        if self._captured:  # frames from before a run: they arrived first
            timeout = 0.0
        captured = self._call("receive", {"timeout": timeout, "settle": RECEIVE_SETTLE}, "fetching the capture",
                              timeout + RECEIVE_SETTLE + self._timeouts.trex)
        captured, self._captured = self._captured + captured, []
        frames: dict[str, list[bytes]] = {dut_port: [] for dut_port in self._trex_port}
        for trex_port, frame in captured:
            frames[self._dut_port[trex_port]].append(base64.b64decode(frame))
        return frames

    # traffic at rate ------------------------------------------------------------------
    def caps(self) -> TrafficCaps:
        """The ports' line rate (the slowest cabled port), or a stand-in's declared limits."""
        server = self._connected()
        line = self._line_bps()
        standin = server["system_info"].get("packet_journey_standin")
        if standin is not None:
            if "max_pps" not in standin:
                raise TrexError(f"{self._worker.where}: reading the stand-in's generator limits: it declares none "
                                f"({standin}), so it generates no traffic at rate")
            return TrafficCaps(f"TRex stand-in at {self.address} ({standin.get('engine', 'packet-journey')})",
                               max_pps=float(standin["max_pps"]), max_bps_L1=min(float(standin["max_bps_L1"]), line),
                               observes=OBSERVES)
        return TrafficCaps(f"TRex {server['version']['version']} at {self.address}",
                           max_pps=line / l1_bits(ETH_ZLEN), max_bps_L1=line, observes=OBSERVES)

    def run(self, profile: Profile, duration: float | None, held: Callable[[], int] = lambda: 0) -> Result:
        """The profile at rate, until the DUT drained (module doc): TRex's receive
        counters stood still and `held()`, the packets the DUT still queues, was 0
        before they did. A rate the generator cannot offer is a TargetError naming
        caps().shortfall()."""
        profile.check_duration(duration)
        line, caps = self._line_bps(), self.caps()
        for port, pps in generator.port_pps(profile, line).items():
            if shortfall := caps.shortfall(pps):
                raise TargetError(f"{port}: {shortfall}")
        schedule = generator.schedule_seconds(profile, duration, line)
        wait = 2 * schedule + self._timeouts.trex
        answer = self._call("run", {"profile": profile.to_dict(), "duration": duration, "ports": self._trex_port,
                                    "timeout": wait}, f"running {len(profile.streams)} streams", wait + self._timeouts.trex)
        self._captured += answer["captured"]
        try:
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while True:
                holding = held()  # sampled first: what it still held has reached TRex once the counts stand still
                counts = self._call("drain", {"quiet": DRAIN_QUIET, "timeout": max(deadline - time.monotonic(), 0.0)},
                                    "waiting for the DUT to drain", DRAIN_TIMEOUT + self._timeouts.trex)
                if not counts["drained"] or not holding:
                    break
        finally:
            self._call("finish", {}, "ending the run", self._timeouts.trex)
        return to_result(profile, answer | counts, self._dut_port, schedule)

    def streams(self, profile: Profile, duration: float | None) -> list[dict]:
        """What run() would add, without a server: per STLStream its stream id,
        size, pg_id, TRex port and DUT port, and `stream_json`, STLStream.to_json()."""
        profile.check_duration(duration)
        return self._worker.call("streams", {"profile": profile.to_dict(), "ports": self._trex_port},
                                 f"mapping {len(profile.streams)} streams to STL streams", self._timeouts.trex)

    def identity(self) -> dict:
        """The server's address, version and system information, for the report."""
        server = self._connected()
        return {"address": self.address, "via_netns": self.via_netns, "version": server["version"],
                "system_info": server["system_info"]}

    @property
    def ended(self) -> str | None:
        """Why the client process is gone (it died, hung, or was closed), or None."""
        return self._worker.ended

    def close(self) -> None:
        """Release the ports and end the client process; safe twice."""
        self._server = None
        self._worker.close(self._timeouts.trex)

    def _call(self, op: str, args: dict, doing: str, timeout: float):
        self._connected()
        return self._worker.call(op, args, doing, timeout)

    def _connected(self) -> dict:
        if self._server is None:
            raise TargetError(f"TRex at {self.address}: not connected (closed, or made for streams() only)")
        return self._server

    def _line_bps(self) -> float:
        return float(min(self._connected()["speed_bps"][str(port)] for port in self._dut_port))

    def _trex_port_of(self, dut_port: str) -> int:
        if dut_port not in self._trex_port:
            raise TargetError(f"TRex at {self.address}: no TRex port is cabled to {dut_port!r} "
                              f"(the lab file's trex.ports: {self._dut_port})")
        return self._trex_port[dut_port]


def to_result(profile: Profile, answer: dict, dut_port: dict[int, str], schedule: float) -> Result:
    """A Result from the worker's `run` answer: TRex's port statistics by DUT
    port, its pg_id statistics summed into each Stream's (a Stream sent as one
    STLStream per size has a pg_id per size). The streams ran for their
    `schedule` (TRex paces them; the client only hears afterwards that they
    ended, which the notes mention when it was late): rates are over it."""
    seconds = max(schedule, 1e-9)
    result = Result(target="lab", duration=schedule)
    for stream in profile.streams:
        parts = [part for part in answer["parts"] if part["stream"] == stream.id and part["pg_id"] is not None]
        if not parts:
            result.notes.append(f"stream {stream.id} is not IPv4: TRex's flow statistics cannot count it, "
                                "only its port's counters do")
            continue
        flows = [answer["flow_stats"].get(str(part["pg_id"]), {}) for part in parts]
        stats = StreamStats(stream.id, *(sum(flow.get(key) or 0 for flow in flows)
                                         for key in ("tx_pkts", "rx_pkts", "tx_bytes", "rx_bytes")))
        if stream.latency:
            measured = [(answer["latency"].get(str(part["pg_id"])), flow.get("rx_pkts") or 0)
                        for part, flow in zip(parts, flows)]
            measured = [(latency, packets) for latency, packets in measured if latency is not None]
            stats.out_of_order = sum(latency["err_cntrs"].get("out_of_order", 0) for latency, _ in measured)
            stats.duplicates = sum(latency["err_cntrs"].get("dup", 0) for latency, _ in measured)
            stats.latency = _latency(measured)
            if len(parts) > 1:
                result.notes.append(f"stream {stream.id}'s latency joins its {len(parts)} sizes' pg_ids: min and max "
                                    "of all, average and jitter weighted by packets received")
        stats.set_rates(seconds, seconds)
        result.streams[stream.id] = stats
    for trex_port, dut in sorted(dut_port.items()):
        counts = answer["ports"][str(trex_port)]
        result.ports[dut] = PortStats(counts["opackets"], counts["ipackets"], counts["obytes"], counts["ibytes"])
        result.ports[dut].set_rates(seconds, seconds)
    if answer["duration"] > schedule + LATE:
        result.notes.append(f"the streams were due to end after {schedule:.3f} s; TRex said they had after "
                            f"{answer['duration']:.3f} s")
    if not answer["drained"]:
        result.notes.append(f"the DUT had not drained {DRAIN_TIMEOUT:.0f} s after the streams ended: "
                            "what it still held counts as lost")
    if answer["cut"]:
        result.notes.append(f"streams {answer['cut']} are bursts run with continuous streams: TRex stopped them at "
                            "the duration (start(duration=...)) if they had not ended")
    return result


def _latency(measured: list[tuple[dict, int]]) -> LatencyStats | None:
    """TRex's latency figures (usec) of one or more pg_ids with the packets each
    received, as one LatencyStats; None when none received any with figures."""
    figures = ("average", "jitter", "total_min", "total_max")
    measured = [(latency, packets) for latency, packets in measured
                if packets and all(latency[figure] is not None for figure in figures)]
    if not measured:
        return None
    total = sum(packets for _, packets in measured)
    histogram: dict[int, int] = {}
    for latency, _ in measured:
        for bucket, count in latency["histogram"].items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + count
    return LatencyStats(min(latency["total_min"] for latency, _ in measured),
                        sum(latency["average"] * packets for latency, packets in measured) / total,
                        max(latency["total_max"] for latency, _ in measured),
                        sum(latency["jitter"] * packets for latency, packets in measured) / total,
                        dict(sorted(histogram.items())))
