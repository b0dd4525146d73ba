"""The official TRex client in a process of its own: `python -m harness.drivers.trex_worker`.

lbr-trex-client 3.4.0 (the TRex v3.04 Python client, `trex.stl.api`) vendors
scapy 2.4.3, PyYAML and pyzmq and rewrites sys.path and sys.modules when it is
imported, so only this process imports it: the harness talks to it through
harness/drivers/trex.py, never by importing this module.

Protocol, on stdin/stdout: each message is a 4-byte big-endian length and that
many bytes of UTF-8 JSON. A request is {"op": ..., ...}; the answer is
{"ok": <result>} or {"error": <message>, "kind": "trex" | "profile"}, "profile"
when the profile asks for what TRex's streams cannot express. Frames cross as
base64. Anything the client prints goes to stderr (fd 1 is the protocol's).

Requests:
  streams  {profile, ports: {DUT port: TRex port}} -> [stream JSON]: no server needed
  connect  {server, sync_port, async_port, timeout, ports: [TRex port]} -> version,
           system info and each port's speed; the ports reset, in service mode,
           with a capture of what they receive
  push     {port, frames}: in service mode, out of TRex port `port`, as they are (MACs too)
  receive  {timeout, settle}: what the ports captured, [[TRex port, frame], ...]
  run      {profile, duration, ports, timeout}: the streams at rate, until they ended; the
           counts stay live (rx filters on) for drain, until finish
  drain    {quiet, timeout}: the counts once the receive counters stood still `quiet` s
  finish   the run's rx filters removed, service mode and a new capture
  close    the ports released, the connection closed; the process exits

Profile -> streams (stl_streams()): a Stream becomes one STLStream per frame size,
in the order of harness.traffic.size_order() (TRex's imix profile: a stream per
size, 0.1 us apart, each at its share of the rate), whose field engine (STLVM)
makes exactly the frames harness.traffic.stream_frames() lists for that size, in
that order: each Vary field's values over the size's packets become a flow
variable, a range (`inc`/`dec`, `min_value`..`max_value` by `step`, first value
`init_value`) when they step evenly without wrapping, else a `value_list` walked
in order (random: the Vary's permutation; TRex's own `random` draws with
replacement), written with write_flow_var; then fix_checksum_hw (IPv4 header and
UDP/TCP) or fix_checksum_ipv4 (IPv4 only: no L4, or UDP without a checksum)
where stream_frames() recomputes them. TRex's flow engine semantics are
trex-core's src/stx/stl/trex_stl_stream_vm.h (inc_mod(), dec_mod(),
inc_mod_list(); a range padded to a multiple of the step by the server,
TrexRpcCmdAddStream::handle_range_padding()). Every IPv4 stream gets a pg_id of
its own per size (STLFlowLatencyStats with latency, else STLFlowStats); on a
real TRex those rewrite the IPv4 id (trex_stl_fs.cpp: ip_id_reserve_base +
hw_id, 0xFFFF for latency) and latency streams carry TRex's 16-byte header in
place of the harness's tag, so a stream cannot vary ip.id there.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable

from harness.mockkernel.wire import ipv4, udp
from harness.traffic import (
    FCS_LEN,
    Mode,
    Profile,
    RateUnit,
    Stream,
    field_at,
    l1_bits,
    l2_bits,
    l3_l4,
    size_order,
    stream_frames,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the vendored scapy 2.4.3's deprecation warnings, not ours
    import lbr_trex_client  # noqa: F401 -- puts `trex` on sys.path: only in this process (module doc)
    from trex.stl.api import (
        CTRexVmInsFixHwCs,
        PacketBuffer,
        STLClient,
        STLFlowLatencyStats,
        STLFlowStats,
        STLPktBuilder,
        STLStream,
        STLStreamDstMAC_PKT,
        STLTXCont,
        STLTXMultiBurst,
        STLTXSingleBurst,
        STLVmFixChecksumHw,
        STLVmFixIpv4,
        STLVmFlowVar,
        STLVmWrFlowVar,
        TRexError,
    )

HEADER_LEN = 4  # a message's length, big-endian
IMIX_ISG_USEC = 0.1  # stl/imix.py starts its size streams 0.1 us apart, in the listed order
VALUE_LIST_MAX = 0xFFFF  # TrexRpcCmdAddStream::check_value_list(): UINT16_MAX values at most
VAR_SIZES = (1, 2, 4, 8)  # a flow variable's sizes in bytes (CTRexVmInsFlowVar.VALID_SIZES)
CAPTURE_LIMIT = 4096  # frames the server holds per capture (9 KB each) until fetched
POLL = 0.01  # seconds between looks at the server while waiting
RATE_KEYWORD = {RateUnit.PPS: "pps", RateUnit.BPS_L1: "bps_L1", RateUnit.BPS_L2: "bps_L2",
                RateUnit.PERCENT: "percentage"}


class ProfileError(ValueError):
    """The profile asks for what TRex's streams cannot express."""


# -- the profile as STL streams --------------------------------------------------------

def stl_streams(profile: Profile, trex_ports: dict[str, int]) -> list[tuple[dict, STLStream]]:
    """The STLStreams of `profile` (module doc), each with what it is: {"stream":
    Stream.id, "size": frame size with FCS or None, "pg_id": its pg_id or None,
    "latency", "port": TRex port, "dut_port"}. pg_ids are numbered from 0."""
    parts: list[tuple[dict, STLStream]] = []
    for stream in profile.streams:
        if stream.port not in trex_ports:
            raise ProfileError(f"stream {stream.id} goes into {stream.port}, which no TRex port is cabled to "
                               f"(the lab file's trex.ports: {trex_ports})")
        parts += _stream_parts(stream, trex_ports[stream.port], len(parts))
    return parts


def _stream_parts(stream: Stream, trex_port: int, first_pg_id: int) -> list[tuple[dict, STLStream]]:
    frames = stream_frames(stream)
    l3, l4, protocol = l3_l4(stream.frame)
    if l3 is not None and any(vary.field == "ip.id" for vary in stream.vary):
        raise ProfileError(f"stream {stream.id} varies ip.id, which TRex's flow statistics own (trex_stl_fs.cpp "
                           "writes ip_id_reserve_base + hw_id into it, 0xFFFF for latency)")
    sizes = stream.sizes or ((None, 1),)
    order = size_order(stream.sizes) if stream.sizes else [None]
    shares = _rate_shares(stream)
    parts = []
    for k, (size, _) in enumerate(sizes):
        count = None if stream.count is None else sum(
            1 for n in range(stream.count) if order[n % len(order)] == size)
        if count == 0:  # a burst shorter than one round of the sizes
            continue
        own = [frame for n, frame in enumerate(frames) if order[n % len(order)] == size]
        pg_id = None if l3 is None else first_pg_id + len(parts)
        flow_stats = None if pg_id is None else (STLFlowLatencyStats(pg_id) if stream.latency else STLFlowStats(pg_id))
        packet = STLPktBuilder(pkt_buffer=own[0], vm=_field_engine(stream, own, l3, l4, protocol))
        stl = STLStream(name=f"s{stream.id}" + ("" if size is None else f"-{size}"), packet=packet,
                        mode=_tx_mode(stream, count, {RATE_KEYWORD[stream.rate.unit]: stream.rate.value * shares[k]}),
                        isg=k * IMIX_ISG_USEC, flow_stats=flow_stats,
                        mac_src_override_by_pkt=True, mac_dst_override_mode=STLStreamDstMAC_PKT)
        parts.append(({"stream": stream.id, "size": size, "pg_id": pg_id, "latency": stream.latency,
                       "port": trex_port, "dut_port": stream.port}, stl))
    return parts


def _rate_shares(stream: Stream) -> list[float]:
    """Each size's share of the stream's rate, in the rate's own unit: its weight,
    times its frames' bits for a bit rate (percent: L1 bits)."""
    if not stream.sizes:
        return [1.0]
    bits = {RateUnit.PPS: lambda length: 1.0, RateUnit.BPS_L1: l1_bits, RateUnit.PERCENT: l1_bits,
            RateUnit.BPS_L2: l2_bits}[stream.rate.unit]
    amounts = [weight * bits(size - FCS_LEN) for size, weight in stream.sizes]
    return [amount / sum(amounts) for amount in amounts]


def _tx_mode(stream: Stream, count: int | None, rate: dict):
    if stream.mode is Mode.CONTINUOUS:
        return STLTXCont(**rate)
    if stream.mode is Mode.SINGLE_BURST:
        return STLTXSingleBurst(total_pkts=count, **rate)
    return STLTXMultiBurst(pkts_per_burst=count, ibg=stream.ibg * 1e6, count=stream.bursts, **rate)


def _field_engine(stream: Stream, frames: list[bytes], l3, l4, protocol) -> list:
    """The instructions that turn frames[0] into each of `frames` in turn (module doc)."""
    instructions, changed = [], set()
    for vary in stream.vary:
        offset, width = field_at(stream.frame, vary.field)
        values = _period([int.from_bytes(frame[offset:offset + width], "big") for frame in frames])
        if len(values) == 1:
            continue
        changed.add(vary.field.split(".")[0])
        if width not in VAR_SIZES:  # a MAC: TRex writes 1, 2, 4 or 8 bytes, so its low 4 bytes
            if len({value >> 32 for value in values}) > 1:
                raise ProfileError(f"stream {stream.id}: {vary.field}'s values change its first two bytes; "
                                   "TRex's field engine writes a MAC's last four")
            offset, width, values = offset + 2, 4, [value & 0xFFFFFFFF for value in values]
        name = vary.field.replace(".", "_")  # a dot names a tuple variable's part in TRex
        instructions += [_flow_var(stream, vary.field, name, width, values), STLVmWrFlowVar(name, pkt_offset=offset)]
    ip_changed = "ip" in changed
    is_udp = protocol == ipv4.IPPROTO_UDP
    l4_changed = l4 is not None and changed & {"ip", "udp", "tcp"} and not (
        is_udp and not udp.UdpDatagram(frames[0], l4).check)  # a UDP checksum of 0: none sent, stays 0
    if l4_changed:
        l4_type = CTRexVmInsFixHwCs.L4_TYPE_UDP if is_udp else CTRexVmInsFixHwCs.L4_TYPE_TCP
        instructions.append(STLVmFixChecksumHw(l3_offset=l3, l4_offset=l4, l4_type=l4_type))
    elif ip_changed:
        instructions.append(STLVmFixIpv4(offset=l3))
    return instructions


def _period(values: list[int]) -> list[int]:
    """The shortest prefix of `values` that, repeated, makes them."""
    n = len(values)
    for length in range(1, n + 1):
        if n % length == 0 and values[length:] == values[:-length]:
            return values[:length]
    return values


def _flow_var(stream: Stream, field: str, name: str, size: int, values: list[int]) -> STLVmFlowVar:
    """A flow variable taking `values` in turn, from the first: a range if they step
    evenly without wrapping and TRex's padding of the range fits the variable, else a list."""
    step = values[1] - values[0]
    even = all(b - a == step for a, b in zip(values, values[1:]))
    low, high = min(values), max(values)
    pad = abs(step) - 1  # handle_range_padding() widens a range to a multiple of the step
    if even and (high + pad < 1 << (8 * size) if step > 0 else low >= pad):
        return STLVmFlowVar(name, init_value=values[0], min_value=low, max_value=high, size=size, step=abs(step),
                            op="inc" if step > 0 else "dec")
    if len(values) > VALUE_LIST_MAX:
        raise ProfileError(f"stream {stream.id}: {field} takes {len(values)} values in an order TRex's ranges "
                           f"cannot make, more than the {VALUE_LIST_MAX} a value_list holds")
    return STLVmFlowVar(name, value_list=values, size=size, op="inc")


# -- the server ---------------------------------------------------------------------------

class Worker:
    """One connection to a TRex server, driven by requests (module doc)."""

    def __init__(self) -> None:
        self.client: STLClient | None = None
        self.ports: list[int] = []
        self.capture_id: int | None = None
        self.captured = 0  # the index of the last frame fetched from the capture
        self.running: list[int] = []  # the ports of a run not finished yet

    def streams(self, profile: dict, ports: dict[str, int]) -> list[dict]:
        return [{**what, "stream_json": stl.to_json()}
                for what, stl in stl_streams(Profile.from_dict(profile), ports)]

    def connect(self, server: str, sync_port: int, async_port: int, timeout: float, ports: list[int]) -> dict:
        self.client = STLClient(server=server, sync_port=sync_port, async_port=async_port, verbose_level="error",
                                sync_timeout=timeout, async_timeout=timeout)
        self.client.connect()
        missing = sorted(set(ports) - set(self.client.get_all_ports()))
        if missing:
            raise TRexError(f"the lab file cables TRex ports {missing}, the server has {self.client.get_all_ports()}")
        self.ports = sorted(ports)
        self.client.reset(self.ports)  # acquires them (force: the station's claim is the lock), nothing left running
        self._service()
        return {"version": self.client.get_server_version(), "system_info": self.client.get_server_system_info(),
                "speed_bps": {port: self.client.ports[port].get_speed_bps() for port in self.ports}}

    def _service(self) -> None:
        """Service mode and a capture of every port's receive side: functional frames."""
        self.client.set_service_mode(self.ports, enabled=True)
        self.capture_id = self.client.start_capture(rx_ports=self.ports, limit=CAPTURE_LIMIT, mode="fixed")["id"]
        self.captured = 0

    def _end_service(self) -> None:
        self.client.stop_capture(self.capture_id)
        self.capture_id = None
        self.client.set_service_mode(self.ports, enabled=False)

    def push(self, port: int, frames: list[str]) -> None:
        self.client.push_packets([PacketBuffer(base64.b64decode(frame)) for frame in frames], ports=[port], force=True)

    def receive(self, timeout: float, settle: float) -> list[list]:
        """What the capture holds: waits up to `timeout` for the first frame, then
        until a poll finds nothing new (at most `settle` seconds more)."""
        frames = self._fetch()
        deadline = time.monotonic() + timeout
        while not frames and time.monotonic() < deadline:
            time.sleep(POLL)
            frames = self._fetch()
        settled = time.monotonic() + settle
        while frames and time.monotonic() < settled:
            time.sleep(POLL)
            more = self._fetch()
            if not more:
                break
            frames += more
        return frames

    def _fetch(self) -> list[list]:
        """The frames captured since the last fetch, in order. TRex numbers every
        frame its capture matches, also those a full buffer drops (TrexCapture::
        handle_pkt()): a gap in the numbers is frames lost, an error."""
        packets: list[dict] = []
        self.client.fetch_capture_packets(self.capture_id, packets, pkt_count=CAPTURE_LIMIT)
        packets.sort(key=lambda packet: packet["index"])
        lost = sum(packet["index"] - previous - 1 for previous, packet in
                   zip([self.captured] + [packet["index"] for packet in packets], packets))
        if packets:
            self.captured = packets[-1]["index"]
        if lost:
            raise TRexError(f"the capture of the ports' received frames lost {lost}: more than its limit of "
                            f"{CAPTURE_LIMIT} arrived between two fetches")
        return [[packet["port"], base64.b64encode(packet["binary"]).decode()] for packet in packets]

    def run(self, profile: dict, duration: float | None, ports: dict[str, int], timeout: float) -> dict:
        """The profile at rate: what the capture holds kept (`captured`), service
        mode and capture off (the run's frames are not functional frames), streams
        added, started and waited for (`timeout`). The counts stay live for
        drain() until finish(): the harness drains while the DUT still queues."""
        parts = stl_streams(Profile.from_dict(profile), ports)
        captured = self._fetch()
        self._end_service()
        try:
            client = self.client
            client.remove_all_streams(self.ports)
            client.clear_stats(self.ports)
            used = sorted({what["port"] for what, _ in parts})
            for port in used:
                client.add_streams([stl for what, stl in parts if what["port"] == port], ports=[port])
            continuous = any(_continuous(stl) for _, stl in parts)
            started = time.monotonic()
            # one start: each start() makes the client's pg_id counts relative to that moment
            client.start(used, force=True, duration=duration if continuous else -1)
            self._wait(lambda: not client.is_traffic_active(used), timeout, "the streams to end")
            ran = time.monotonic() - started
        except BaseException:
            self._service()
            raise
        self.running = used
        cut = sorted({what["stream"] for what, stl in parts if continuous and not _continuous(stl)})
        return {"parts": [what for what, _ in parts], "duration": ran, "cut": cut, "captured": captured}

    def drain(self, quiet: float, timeout: float) -> dict:
        """The run's counts once they stood still (_drain()), and whether they did in time."""
        drained, stats = self._drain(quiet, timeout)
        return {"drained": drained,
                "ports": {port: {key: stats[port][key] for key in ("opackets", "ipackets", "obytes", "ibytes")}
                          for port in self.ports},
                "flow_stats": _flow_stats(stats.get("flow_stats", {})), "latency": _latency(stats.get("latency", {}))}

    def finish(self) -> None:
        """The run's rx filters go (its counts were read), then service mode again."""
        try:
            self.client.wait_on_traffic(self.running, rx_delay_ms=0)
        finally:
            self.running = []
            self._service()

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TRexError(f"waited {timeout:.1f} s for {what}")
            time.sleep(POLL)

    def _drain(self, quiet: float, timeout: float) -> tuple[bool, dict]:
        """Statistics once every port's and pg_id's receive counter stood still
        `quiet` seconds, and whether they did within `timeout`."""
        deadline = time.monotonic() + timeout
        last, still_since = None, time.monotonic()
        while True:
            stats = self.client.get_stats(self.ports)
            received = ([stats[port]["ipackets"] for port in self.ports],
                        sorted((pg_id, _total(counts["rx_pkts"])) for pg_id, counts in stats["flow_stats"].items()
                               if pg_id != "global"))
            now = time.monotonic()
            if received != last:
                last, still_since = received, now
            elif now - still_since >= quiet:
                return True, stats
            if now > deadline:
                return False, stats
            time.sleep(POLL)

    def close(self) -> None:
        if self.client is not None and self.client.is_connected():
            self.client.disconnect()


def _continuous(stl: STLStream) -> bool:
    return stl.fields["mode"]["type"] == "continuous"


def _total(counts) -> int | None:
    """A flow statistic's total over ports; None when TRex has none (StatNotAvailable)."""
    value = counts.get("total") if isinstance(counts, dict) else counts
    return value if isinstance(value, (int, float)) else None


def _flow_stats(flow_stats: dict) -> dict:
    """get_pgid_stats()' flow_stats, totals over ports, by pg_id."""
    return {pg_id: {key: _total(counts[key]) for key in ("tx_pkts", "rx_pkts", "tx_bytes", "rx_bytes")}
            for pg_id, counts in flow_stats.items() if pg_id != "global"}


def _latency(latency: dict) -> dict:
    """get_pgid_stats()' latency by pg_id: its latency figures (usec) and error counters."""
    plain = {}
    for pg_id, stats in latency.items():
        if pg_id == "global":
            continue
        figures = stats["latency"]
        plain[pg_id] = {"err_cntrs": dict(stats["err_cntrs"]),
                        "histogram": {str(bucket): count for bucket, count in figures["histogram"].items()},
                        **{key: figures[key] if isinstance(figures[key], (int, float)) else None
                           for key in ("average", "jitter", "total_min", "total_max")}}
    return plain


# -- the protocol ---------------------------------------------------------------------------

def read_message(stream) -> dict | None:
    header = stream.read(HEADER_LEN)
    if len(header) < HEADER_LEN:
        return None
    return json.loads(stream.read(int.from_bytes(header, "big")))


def write_message(stream, message: dict) -> None:
    body = json.dumps(message).encode()
    stream.write(len(body).to_bytes(HEADER_LEN, "big") + body)
    stream.flush()


def serve(requests, answers) -> None:
    worker = Worker()
    try:
        while (request := read_message(requests)) is not None:
            op = request.pop("op")
            try:
                answer = {"ok": getattr(worker, op)(**request)}
            except ProfileError as exc:
                answer = {"error": str(exc), "kind": "profile"}
            except TRexError as exc:
                answer = {"error": str(exc).strip() or type(exc).__name__, "kind": "trex"}
            write_message(answers, answer)
            if op == "close":
                return
    finally:
        worker.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the harness's: it closes this process
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what the client prints goes to stderr, not into the protocol
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
