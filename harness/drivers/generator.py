"""The netns lab's traffic generator: tools/pjgen.c, run in the tester namespace.

`build()` compiles pjgen with the system's C compiler on first use, cached by
content hash in tools/build/ (as bpf_build.py caches the eBPF objects; .ci/setup
builds it ahead). `GeneratorRun` starts it on a profile: each stream's frames are
harness.traffic.stream_frames() in order, sent from the stream's tester port (the
peer of its DUT port) at stream_pps() on a port of veth's line rate, with the payload
tag in every UDP frame; its receiver counts what the DUT sends back on every tester
port (a run without it only sends, and the DUT's counters say what arrived: the
kernel anchors of benchmarks/). pjgen ends by itself when every tagged packet sent
has arrived; otherwise the caller decides when the DUT has drained and calls
`stop()`. `to_result()` turns pjgen's statistics into a harness.traffic.Result.

Rates on this machine (2 shared vCPUs, kernel 6.18; `python -m benchmarks lab`), idle:
64-byte frames from one tester port into a DUT with no address or route (it drops them
at routing), 1.10-1.15 Mpps with sendmmsg and 0.95-1.00 Mpps with the TPACKET_V2 TX
ring (blocking send()), so sendmmsg is the default. The sender's own context runs the
DUT's receive path (veth_xmit() -> netif_rx() -> the softirq run when the sender
re-enables bottom halves), so what the DUT does per packet is part of the rate:
forwarding took it to 0.50-0.58 Mpps, every packet received. With the machine loaded
by other work (load average 12) the same runs gave 0.10-0.42 Mpps: a run that falls
behind its schedule says so in Result.notes.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.drivers.netns import NetnsLab
from harness.drivers.reaper import reaper
from harness.target import PORTS, TargetError, TargetUnavailable
from harness.traffic import (
    LatencyStats,
    Mode,
    PortStats,
    Profile,
    Result,
    StreamStats,
    TrafficCaps,
    l1_bits,
    stream_frames,
    stream_pps,
)

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "pjgen.c"
BUILD = SOURCE.parent / "build"
CC_FLAGS = ("-O2", "-Wall", "-pthread")
LIBS = ("-lm",)
TX_METHODS = ("sendmmsg", "ring")

# veth_get_link_ksettings() (drivers/net/veth.c) reports SPEED_10000: percent rates
# are of 10 Gbit/s.
VETH_LINE_BPS = 10e9
# Measured here (module doc): 64-byte frames, sendmmsg, a DUT dropping them early;
# declared a little under the lowest run, so a profile asking for more is refused.
GENERATOR_PPS = 1.0e6
# 1514-byte frames: 0.55 Mpps (6.8 Gbit/s on the line) in the best run, on a loaded
# machine; declared a little under it.
GENERATOR_BPS_L1 = 0.45e6 * l1_bits(1514)
CAPS = TrafficCaps(
    generator="pjgen (sendmmsg on AF_PACKET, tester netns)",
    max_pps=GENERATOR_PPS, max_bps_L1=GENERATOR_BPS_L1,
    observes=frozenset({"latency", "losses", "qdisc", "softnet", "nft"}))

MODE_LETTERS = {Mode.CONTINUOUS: "c", Mode.SINGLE_BURST: "s", Mode.MULTI_BURST: "m"}
STARTUP_TIMEOUT = 30.0  # until pjgen has opened its sockets and started sending
WAIT_TICK = 0.1  # seconds between a waiter's looks at pjgen's progress (a progress bar's)
# A run that took longer than its schedule by this factor and margin (s) says the
# generator fell behind.
BEHIND_SCHEDULE, BEHIND_MARGIN = 1.1, 0.001


def build() -> Path:
    """pjgen's executable, compiled unless an up-to-date one is cached."""
    cc = shutil.which("cc")
    if cc is None:
        raise TargetUnavailable("building the lab's traffic generator (tools/pjgen.c) needs a C compiler: "
                                "`apt-get install gcc`")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False).stdout
    key = hashlib.sha256(version.encode() + " ".join(CC_FLAGS + LIBS).encode() + SOURCE.read_bytes()).hexdigest()
    BUILD.mkdir(parents=True, exist_ok=True)
    binary = BUILD / "pjgen"
    stamp = BUILD / "pjgen.sha256"
    with open(BUILD / "pjgen.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker compiling it: wait, then find it built
        if binary.exists() and stamp.exists() and stamp.read_text() == key:
            return binary
        with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
            built = Path(tmp) / "pjgen"
            result = subprocess.run([cc, *CC_FLAGS, "-o", str(built), str(SOURCE), *LIBS],
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise TargetError(f"cc failed on {SOURCE}:\n{result.stderr}")
            os.replace(built, binary)
            (Path(tmp) / "stamp").write_text(key)
            os.replace(Path(tmp) / "stamp", stamp)
    return binary


def tester_port(dut_port: str) -> str:
    """The tester end wired to DUT port `dut_port`."""
    for port in PORTS:
        if port.name == dut_port:
            return port.peer
    raise TargetError(f"stream into {dut_port!r}: the lab's DUT ports are {', '.join(p.name for p in PORTS)}")


def port_pps(profile: Profile, line_bps: float = VETH_LINE_BPS) -> dict[str, float]:
    """The packets per second the profile asks of each DUT port."""
    rates: dict[str, float] = {}
    for stream in profile.streams:
        rates[stream.port] = rates.get(stream.port, 0.0) + stream_pps(stream, line_bps)
    return rates


def schedule_seconds(profile: Profile, duration: float | None, line_bps: float = VETH_LINE_BPS) -> float:
    """When the profile's last packet is due on ports of `line_bps`: a burst's n-th
    packet n / pps after the burst starts, the next burst `ibg` after the last packet
    of the one before."""
    seconds = [duration or 0.0]
    for stream in profile.streams:
        if stream.mode is not Mode.CONTINUOUS:
            pps = stream_pps(stream, line_bps)
            seconds.append(stream.bursts * (stream.count - 1) / pps + (stream.bursts - 1) * stream.ibg)
    return max(seconds)


def spec(profile: Profile, duration: float | None, tx: str = "sendmmsg", receive: bool = True) -> str:
    """pjgen's input for `profile` (tools/pjgen.c's header describes it); `receive`:
    its receiver counts on every tester port, else it opens no RX ring and only sends."""
    if tx not in TX_METHODS:
        raise TargetError(f"pjgen sends with {' or '.join(TX_METHODS)}, not {tx!r}")
    lines = [f"tx {tx}", f"duration_ns {round((duration or 0) * 1e9)}",
             " ".join(["rx", *(port.peer for port in PORTS if receive)])]
    for stream in profile.streams:
        frames = stream_frames(stream)
        lines.append(f"stream {stream.id} {tester_port(stream.port)} {stream_pps(stream, VETH_LINE_BPS)!r} "
                     f"{MODE_LETTERS[stream.mode]} {stream.count or 0} {stream.bursts} "
                     f"{round(stream.ibg * 1e9)} {len(frames)}")
        lines += (frame.hex() for frame in frames)
    return "\n".join(lines) + "\n"


class GeneratorRun:
    """pjgen running one profile in the lab's tester namespace."""

    def __init__(self, lab: NetnsLab, profile: Profile, duration: float | None, tx: str = "sendmmsg",
                 receive: bool = True):
        self._start(spec(profile, duration, tx, receive),
                    lambda argv, **popen_args: lab.popen(lab.tester, argv, **popen_args))

    @classmethod
    def from_spec(cls, text: str, popen: Callable[..., subprocess.Popen] = subprocess.Popen) -> GeneratorRun:
        """pjgen on a spec written by the caller, started by `popen` (by default in this
        process's namespace): the TRex stand-in's runs."""
        run = cls.__new__(cls)
        run._start(text, popen)
        return run

    def _start(self, text: str, popen: Callable[..., subprocess.Popen]) -> None:
        binary = build()
        self._spec = tempfile.NamedTemporaryFile("w", prefix=f"pjgen{os.getpid()}-", suffix=".spec")  # noqa: SIM115 -- as long as pjgen runs
        reaper().path(self._spec.name)
        self._spec.write(text)
        self._spec.flush()
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 -- as long as pjgen runs
        self._process = popen([str(binary), self._spec.name], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=self._stderr)
        self.started = time.monotonic()
        self._buffer = b""
        self._events: dict[str, dict] = {}
        self._exited = False

    def wait_sent(self, timeout: float, waiting: Callable[[float], None] | None = None) -> dict:
        """pjgen's `sent` event, once every stream has ended (`timeout`: past the
        streams' own time, how long starting may take). `waiting` is called every
        WAIT_TICK seconds meanwhile with the seconds since pjgen started."""
        deadline = time.monotonic() + timeout
        while not self._wait_event("sent", min(WAIT_TICK, deadline - time.monotonic())):
            if self._exited or time.monotonic() >= deadline:
                raise TargetError(f"pjgen did not finish sending within {timeout:.1f} s: {self._failure()}")
            if waiting is not None:
                waiting(time.monotonic() - self.started)
        return self._events["sent"]

    def finished(self, timeout: float) -> bool:
        """Whether pjgen's receiver has ended (every tagged packet arrived), waiting up to `timeout`."""
        return self._wait_event("stats", timeout)

    def stats(self) -> dict:
        """pjgen's statistics: asks its receiver to stop if it has not ended by itself."""
        if "stats" not in self._events:
            self.request_stop()
            if not self._wait_event("stats", STARTUP_TIMEOUT):
                raise TargetError(f"pjgen gave no statistics after `stop`: {self._failure()}")
        return self._events["stats"]

    def request_stop(self) -> None:
        """Ask pjgen to end: its streams, if still sending, and its receiver."""
        try:
            self._process.stdin.write(b"stop\n")
            self._process.stdin.flush()
        except BrokenPipeError:  # it ended meanwhile
            pass

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            stream.close()
        self._spec.close()
        self._stderr.close()

    def __enter__(self) -> GeneratorRun:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _wait_event(self, name: str, timeout: float) -> bool:
        """Read pjgen's output until event `name` arrived, it exited, or `timeout` passed."""
        deadline = time.monotonic() + timeout
        out = self._process.stdout
        while name not in self._events:
            left = deadline - time.monotonic()
            if left < 0 or not select.select([out], [], [], left)[0]:
                return False
            chunk = os.read(out.fileno(), 1 << 16)
            if not chunk:
                self._exited = True
                return False  # _failure() says how
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                event = json.loads(line)
                self._events[event["event"]] = event
        return True

    def _failure(self) -> str:
        status = self._process.poll()
        self._stderr.seek(0)
        said = self._stderr.read().strip()
        state = "it is still running" if status is None else f"it exited with status {status}"
        return state + (f": {said}" if said else "")


def _latency(measured: dict) -> LatencyStats | None:
    """pjgen's latency counts (ns) as LatencyRecorder.stats() gives them (us)."""
    if not measured["n"]:
        return None
    return LatencyStats(measured["min_ns"] / 1e3, measured["sum_ns"] / measured["n"] / 1e3,
                        measured["max_ns"] / 1e3, measured["jitter_ns"] / 1e3,
                        {int(bucket): packets for bucket, packets in measured["histogram_us"].items()})


def to_result(profile: Profile, duration: float | None, stats: dict, target: str = "dut") -> Result:
    """The Result of a run from pjgen's statistics: ports by DUT port, streams by id.
    Rates are over the time the streams ran (`Result.duration`)."""
    seconds = max(stats["tx_ns"] / 1e9, 1e-9)
    result = Result(target=target, duration=stats["tx_ns"] / 1e9)
    scheduled = schedule_seconds(profile, duration)
    if result.duration > scheduled * BEHIND_SCHEDULE + BEHIND_MARGIN:
        result.notes.append(f"the streams were due to end after {scheduled:.3f} s and ended after "
                            f"{result.duration:.3f} s: the generator fell behind their rates and sent "
                            "late packets as soon as it could")
    for stream, measured in zip(profile.streams, stats["streams"]):
        ipackets, ibytes = measured["ipackets"], measured["ibytes"]
        if not measured["tagged"]:
            result.notes.append(f"stream {stream.id} carries no payload tag (not IPv4/UDP with room for it): "
                                "what arrived of it is counted only per port")
        latency = _latency(measured["latency"]) if stream.latency else None
        result.streams[stream.id] = StreamStats(
            stream.id, measured["opackets"], ipackets, measured["obytes"], ibytes,
            out_of_order=measured["out_of_order"], duplicates=measured["duplicates"], latency=latency)
        result.streams[stream.id].set_rates(seconds, seconds)
    for port in PORTS:
        sent = [m for s, m in zip(profile.streams, stats["streams"]) if s.port == port.name]
        opackets, obytes = sum(m["opackets"] for m in sent), sum(m["obytes"] for m in sent)
        received = stats["ports"][port.peer]
        ipackets, ibytes = received["ipackets"], received["ibytes"]
        result.ports[port.name] = PortStats(opackets, ipackets, obytes, ibytes)
        result.ports[port.name].set_rates(seconds, seconds)
        if received["ring_drops"]:
            result.notes.append(f"the receiver's ring on {port.peer} was full for {received['ring_drops']} frames "
                                f"{port.name} sent: lost by the tester, not by the DUT")
        if received["untagged"]:
            result.notes.append(f"{port.peer} received {received['untagged']} frames from {port.name} that no "
                                "stream sent (no payload tag of this run): ARP, ICMP errors, ...")
    return result
