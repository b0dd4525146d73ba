"""`--target=mock`: the Target interface over the mock kernel.

Frames are delivered synchronously and deterministically, so expectations need
no timeouts; `wait()` and `next_frame()` advance virtual time timer by timer, and
each frame that leaves a port is stamped with the virtual time it left (the
time of the call, or of the timer, that sent it).

Memory stays bounded: after each call into the kernel the tracer summarises the
journeys after the first `journey_limit` (tracer.py), and a port keeps at most as
many frames nobody collected; the ones after are dropped and counted
(uncollected_dropped()), as a tester's full capture buffer drops them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from harness.journey import CtEntry, Drop, Journeys, RuleCounter
from harness.mockkernel import cmd
from harness.mockkernel.bpf.maps import PAGE_SIZE, PerfEventArrayMap, RingBufMap
from harness.mockkernel.cmd.conntrack import ct_entry, nf_conn_from
from harness.mockkernel.ipv4 import ping, route, udp
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.linerate.cost import CostModel
from harness.mockkernel.linerate.engine import Engine
from harness.mockkernel.net import int_to_ip, ip_to_int
from harness.mockkernel.netfilter.nf_conntrack_core import ctnetlink_create_conntrack, nf_conntrack_gc
from harness.mockkernel.netfilter import nf_tables
from harness.mockkernel.tracer import JOURNEY_LIMIT
from harness.target import (MAX_L2_OVERHEAD, PERF_RING_PAGES, AppSocket, CommandError, Departed, EventReader,
                            Port, StreamSocket, Target, TargetError, check_readable, frame_too_long)
from harness.traffic import ETH_ZLEN, Profile, Result, TrafficCaps, l1_bits, stream_frames


def sh(kernel: Kernel, argv: list[str], stdin: str | None = None) -> str:
    """Run a command front end on `kernel`; any change invalidates the routes
    cached on nexthops (rt_cache_flush())."""
    try:
        return cmd.run(kernel, argv, stdin)
    finally:
        route.rt_cache_flush(kernel)


class MockTarget(Target):
    name = "mock"
    capabilities = frozenset({"frames", "sockets", "drop_reasons", "virtual_time",
                              "nftables", "nftrace", "conntrack", "xdp", "journey.xdp", "journey.tc", "bpftool",
                              "tc", "bpf_events", "fresh_devices", "frame_times"})

    def __init__(self, seed: int = 0, cost: CostModel | None = None, journey_limit: int = JOURNEY_LIMIT) -> None:
        super().__init__()
        self.kernel = Kernel(seed)
        self.kernel.tracer.journey_limit = journey_limit
        self._uncollected_dropped = dict.fromkeys(self.kernel.nics, 0)
        self._wire_times: dict[str, list[float]] = {name: [] for name in self.kernel.nics}  # as nic.wire
        self.cost = cost or CostModel.default()  # what line-rate runs charge each path to its core
        self._sockets: list[MockSocket] = []
        self._event_readers: list[EventReader] = []

    def sh(self, cmd: str | Sequence[str], stdin: str | None = None) -> str:
        argv = self.argv(cmd)
        if not argv:
            raise CommandError(argv, "empty command")
        if argv[0] == "cat":
            check_readable(argv)
        return sh(self.kernel, argv, stdin)

    def _transmit(self, port: Port, frames: list[bytes]) -> None:
        mtu = self.kernel.dev_by_name(port.name).mtu
        longest = max(map(len, frames), default=0)
        if longest > mtu + MAX_L2_OVERHEAD:
            raise frame_too_long(port, longest, mtu)
        self.kernel.receive(port.name, frames)
        self._settle()

    def _settle(self) -> None:
        """After a call into the kernel, and before time moves: the frames put on the
        wire since the last call stamped with the time now, journeys past the limit
        summarised, each port's uncollected frames cut to as many (the first ones stay)."""
        tracer = self.kernel.tracer
        tracer.summarise()
        now = self.kernel.clock.now
        for name, nic in self.kernel.nics.items():
            times = self._wire_times[name]
            if len(times) < len(nic.wire):
                times += [now] * (len(nic.wire) - len(times))
            excess = len(nic.wire) - tracer.journey_limit
            if excess > 0:
                del nic.wire[tracer.journey_limit:]
                del times[tracer.journey_limit:]
                self._uncollected_dropped[name] += excess

    def uncollected_dropped(self, port: str | Port) -> int:
        return self._uncollected_dropped[self.port(port).name]

    def _receive(self, timeout: float) -> dict[str, Departed]:
        self._settle()
        out = {}
        for name, nic in self.kernel.nics.items():
            out[name] = Departed(nic.wire, self._wire_times[name])
            nic.wire, self._wire_times[name] = [], []
        return out

    # time ----------------------------------------------------------------------
    def now(self) -> float:
        return self.kernel.clock.now

    def run_timers(self, deadline: float, done: Callable[[], bool] = lambda: False) -> bool:
        """Advance virtual time timer by timer until `done()` holds (True) or time
        reaches `deadline` (False), stamping what each timer sends with its expiry."""
        clock = self.kernel.clock
        self._settle()
        while not done():
            expiry = clock.next_expiry()
            if expiry is None or expiry > deadline:
                clock.advance_to(deadline)
                self._settle()
                return done()
            clock.advance_to(expiry)
            self._settle()
        return True

    def _await_frames(self, seconds: float) -> None:
        """Fire timers until one sends a frame on some port (the ports' frames
        are collected with their times) or `seconds` have passed."""
        wires = [nic.wire for nic in self.kernel.nics.values()]
        self.run_timers(self.now() + seconds, lambda: any(wires))
        self._collect(0.0)

    def wait(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("virtual time does not run backwards")
        self.run_timers(self.now() + seconds)

    # applications ----------------------------------------------------------------
    def socket(self, proto: str, bind: tuple[str, int] | None = None, rcvbuf: int | None = None,
               sndbuf: int | None = None) -> AppSocket | StreamSocket:
        if proto == "tcp":
            raise TargetError("socket proto 'tcp' is not modelled by the mock yet (issue 13)")
        if bind is None:
            raise TargetError(f"a {proto} socket needs an address to bind to")
        if sndbuf is not None:
            raise TargetError(f"sndbuf on a {proto} socket is not modelled by the mock (its sendmsg queues nothing)")
        sock = MockSocket(self.kernel, proto, bind, rcvbuf, self._settle)
        self._sockets.append(sock)
        return sock

    def journeys(self) -> Journeys:
        tracer = self.kernel.tracer
        tracer.summarise()
        return Journeys(tracer.journeys, tracer.summary(), tracer.journey_limit)

    def drops(self) -> list[Drop]:
        """The first journey_limit drops; later ones are in journeys().paths, with their packets' paths."""
        return list(self.kernel.tracer.drops)

    def counters(self) -> list[RuleCounter]:
        return nf_tables.counters(self.kernel)

    def conntrack(self) -> list[CtEntry]:
        nf_conntrack_gc(self.kernel)
        return [ct_entry(self.kernel, ct) for ct in self.kernel.conntrack.entries()]

    def conntrack_create(self, entries: Iterable[CtEntry]) -> None:
        for entry in entries:
            error = ctnetlink_create_conntrack(self.kernel, nf_conn_from(self.kernel, entry))
            if error:
                raise TargetError(f"creating conntrack entry {entry.original} failed: {error}")

    def bpf_events(self, map_id: int) -> EventReader:
        bpf_map = self.kernel.bpf.maps.get(map_id) if self.kernel.bpf is not None else None
        if isinstance(bpf_map, RingBufMap):
            reader: EventReader = MockRingBufReader(bpf_map)
        elif isinstance(bpf_map, PerfEventArrayMap):
            reader = MockPerfEventArrayReader(bpf_map)
        elif bpf_map is None:
            raise TargetError(f"BPF_MAP_GET_FD_BY_ID {map_id}: No such file or directory")
        else:
            raise TargetError(f"map {map_id} is a {bpf_map.type_name} map: events are read from ringbuf and "
                              "perf_event_array maps")
        self._event_readers.append(reader)
        return reader

    def traffic_caps(self) -> TrafficCaps:
        """Virtual time generates any rate up to each port's line rate (64-byte frames at L1)."""
        line_bps = max(self.kernel.dev_by_name(port.name).speed for port in self.ports) * 1e6
        return TrafficCaps("virtual-time model", line_bps / l1_bits(ETH_ZLEN), line_bps,
                           frozenset({"latency", "losses", "paths", "qdisc", "ring", "rss", "softnet"}))

    def traffic(self, profile: Profile, duration: float | None = None) -> Result:
        """The profile through the line-rate model (linerate/engine.py), drained; the
        frames that leave meanwhile are stamped with the time the run ended."""
        for stream in profile.streams:
            port = self.port(stream.port)
            mtu = self.kernel.dev_by_name(port.name).mtu
            longest = max(map(len, stream_frames(stream)))
            if longest > mtu + MAX_L2_OVERHEAD:
                raise frame_too_long(port, longest, mtu)
        self._settle()
        result = Engine(self.kernel, self.cost).run(profile, duration)
        self._settle()
        return result

    def reset(self) -> None:
        super().reset()
        self.kernel.tracer.reset()
        self._uncollected_dropped = dict.fromkeys(self.kernel.nics, 0)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        for reader in self._event_readers:
            reader.close()


class MockRingBufReader(EventReader):
    """A ring buffer's consumer: the records the map's consume() hands over."""

    kind = "ringbuf"

    def __init__(self, ringbuf: RingBufMap) -> None:
        self.ringbuf = ringbuf

    def read(self) -> list[bytes]:
        return self.ringbuf.consume()

    def close(self) -> None:
        pass


class MockPerfEventArrayReader(EventReader):
    """One perf event ring per CPU in the map's slots, as the lab's reader opens them."""

    kind = "perf_event_array"

    def __init__(self, perf: PerfEventArrayMap) -> None:
        self.perf = perf
        self.lost = 0
        self._rings = [perf.open_ring(cpu, PERF_RING_PAGES * PAGE_SIZE) for cpu in range(perf.runtime.ncpus)]

    def read(self) -> list[bytes]:
        records = sorted((record for ring in self._rings for record in ring.drain()), key=lambda record: record[0])
        self.lost += sum(record for _, record in records if isinstance(record, int))
        return [record for _, record in records if isinstance(record, bytes)]

    def close(self) -> None:
        for ring in self._rings:
            self.perf.close_ring(ring)
        self._rings = []


class MockSocket(AppSocket):
    """A UDP or ping socket in the mock kernel's socket tables; `settle` is the
    target's, run after each datagram it sends."""

    def __init__(self, kernel: Kernel, proto: str, bind: tuple[str, int], rcvbuf: int | None,
                 settle: Callable[[], None]):
        if proto not in ("udp", "icmp"):
            raise TargetError(f"socket proto {proto!r} is not supported; use 'udp' or 'icmp'")
        self.kernel, self.proto, self.settle = kernel, proto, settle
        addr, port = ip_to_int(bind[0]), bind[1]
        if addr and addr not in {a.local for d in kernel.devices.values() for a in d.addrs}:
            raise TargetError(f"bind {bind}: Cannot assign requested address (not local on the DUT)")
        self.table = kernel.udp_sockets if proto == "udp" else kernel.ping_sockets
        key = (addr, port) if proto == "udp" else port
        if key in self.table:
            raise TargetError(f"bind {bind}: Address already in use")
        size = udp.sock_set_rcvbuf(kernel, rcvbuf) if rcvbuf is not None else \
            kernel.sysctl.values["net.core.rmem_default"]
        self.sk = udp.UdpSock(addr, port, size)
        self.key = key
        self.table[key] = self.sk

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.proto == "udp":
            udp.udp_sendmsg(self.kernel, self.sk, data, ip_to_int(addr[0]), addr[1])
        else:
            ping.ping_v4_sendmsg(self.kernel, self.sk, data, ip_to_int(addr[0]))
        self.settle()

    def recv(self) -> tuple[bytes, tuple[str, int]]:
        got = self._recvmsg()
        if got is None:
            raise TargetError(f"{self.proto} socket {int_to_ip(self.sk.addr)}:{self.sk.port}: nothing received")
        return got

    def recv_all(self) -> list[tuple[bytes, tuple[str, int]]]:
        out = []
        while (got := self._recvmsg()) is not None:
            out.append(got)
        return out

    def _recvmsg(self):
        got = (udp.udp_recvmsg if self.proto == "udp" else ping.ping_recvmsg)(self.sk)
        if got is None:
            return None
        data, (saddr, sport) = got
        return data, (int_to_ip(saddr), sport)

    def drops(self) -> int:
        return self.sk.drops

    def close(self) -> None:
        self.table.pop(self.key, None)
