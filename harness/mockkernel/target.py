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

import errno
import os
import select
from collections.abc import Callable, Iterable, Sequence
from socket import AF_INET, AF_INET6, SO_ERROR, SO_RCVBUF, SO_SNDBUF, SOL_SOCKET

from harness.journey import CtEntry, Drop, Journeys, RuleCounter
from harness.mockkernel import cmd
from harness.mockkernel.bpf.maps import PAGE_SIZE, PerfEventArrayMap, RingBufMap
from harness.mockkernel.cmd.conntrack import ct_entry, nf_conn_from
from harness.mockkernel.ipv4 import ping, route, tcp, udp
from harness.mockkernel.ipv4.inet_hashtables import inet6_sk_daddr
from harness.mockkernel.ipv6 import tcp_ipv6
from harness.mockkernel.ipv6 import udp as udp6
from harness.mockkernel.ipv6.addrconf import IN6ADDR_ANY, ipv6_chk_addr
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.linerate.cost import CostModel
from harness.mockkernel.linerate.engine import Engine
from harness.mockkernel.net import int_to_ip, ip_to_int
from harness.mockkernel.netfilter.nf_conntrack_core import ctnetlink_create_conntrack, nf_conntrack_gc
from harness.mockkernel.netfilter import nf_tables
from harness.mockkernel.tracer import JOURNEY_LIMIT
from harness.mockkernel.wire.ipv6 import addr_bytes, addr_str
from harness.target import (MAX_L2_OVERHEAD, PERF_RING_PAGES, AppSocket, CommandError, Departed, EventReader,
                            Port, StreamSocket, Target, TargetError, TcpInfo, TcpState, check_family,
                            check_readable, frame_too_long)
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
                              "tc", "bpf_events", "fresh_devices", "frame_times", "bridge_vlan_filtering",
                              "ipv6", "host_input_policy", "nft_queue", "nft_flowtable"})

    def __init__(self, seed: int = 0, cost: CostModel | None = None, journey_limit: int = JOURNEY_LIMIT) -> None:
        super().__init__()
        self.kernel = Kernel(seed)
        self.kernel.tracer.journey_limit = journey_limit
        self._uncollected_dropped = dict.fromkeys(self.kernel.nics, 0)
        self._wire_times: dict[str, list[float]] = {name: [] for name in self.kernel.nics}  # as nic.wire
        self.cost = cost or CostModel.default()  # what line-rate runs charge each path to its core
        self._sockets: list[MockSocket | MockStreamSocket] = []
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
               sndbuf: int | None = None, family: int = AF_INET) -> AppSocket | StreamSocket:
        check_family(family)
        if family == AF_INET6 and proto == "icmp":
            raise TargetError("icmp sockets over IPv6 (AF_INET6, ping6 sockets) are not modelled by the mock")
        if proto == "tcp":
            stream = MockStreamSocket.open(self, bind, rcvbuf, sndbuf, family)
            self._sockets.append(stream)
            return stream
        if bind is None:
            raise TargetError(f"a {proto} socket needs an address to bind to")
        if sndbuf is not None:
            raise TargetError(f"sndbuf on a {proto} socket is not modelled by the mock (its sendmsg queues nothing)")
        sock = MockSocket(self.kernel, proto, bind, rcvbuf, self._settle, family)
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
        return [ct_entry(self.kernel, ct) for ct in self.kernel.conntrack.entries() if ct.l3num == AF_INET]

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
        self.traffic_results.append(result)
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
    """A UDP or ping socket in the mock kernel's socket tables (UDP over IPv6
    too, AF_INET6: addresses as 16 bytes in the same UDP table); `settle` is
    the target's, run after each datagram it sends."""

    def __init__(self, kernel: Kernel, proto: str, bind: tuple[str, int], rcvbuf: int | None,
                 settle: Callable[[], None], family: int = AF_INET):
        if proto not in ("udp", "icmp"):
            raise TargetError(f"socket proto {proto!r} is not supported; use 'udp', 'icmp' or 'tcp'")
        self.kernel, self.proto, self.settle, self.family = kernel, proto, settle, family
        if family == AF_INET6:
            addr, port = addr_bytes(bind[0]), bind[1]
            local = addr == IN6ADDR_ANY or ipv6_chk_addr(kernel, addr)
        else:
            addr, port = ip_to_int(bind[0]), bind[1]
            local = not addr or addr in {a.local for d in kernel.devices.values() for a in d.addrs}
        if not local:
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
        if self.family == AF_INET6:
            udp6.udpv6_sendmsg(self.kernel, self.sk, data, addr_bytes(addr[0]), addr[1])
        elif self.proto == "udp":
            udp.udp_sendmsg(self.kernel, self.sk, data, ip_to_int(addr[0]), addr[1])
        else:
            ping.ping_v4_sendmsg(self.kernel, self.sk, data, ip_to_int(addr[0]))
        self.settle()

    def recv(self) -> tuple[bytes, tuple[str, int]]:
        got = self._recvmsg()
        if got is None:
            raise TargetError(f"{self.proto} socket on port {self.sk.port}: nothing received")
        return got

    def recv_all(self) -> list[tuple[bytes, tuple[str, int]]]:
        out = []
        while (got := self._recvmsg()) is not None:
            out.append(got)
        return out

    def _recvmsg(self):
        if self.family == AF_INET6:
            got = udp6.udpv6_recvmsg(self.sk)
            return None if got is None else (got[0], (addr_str(got[1][0]), got[1][1]))
        got = (udp.udp_recvmsg if self.proto == "udp" else ping.ping_recvmsg)(self.sk)
        if got is None:
            return None
        data, (saddr, sport) = got
        return data, (int_to_ip(saddr), sport)

    def drops(self) -> int:
        return self.sk.drops

    def close(self) -> None:
        self.table.pop(self.key, None)


# What tcp_poll() reports for each StreamSocket.wait() event (an error or hang-up ends every wait).
POLL_ENDS = select.EPOLLERR | select.EPOLLHUP
WAIT_EVENTS = {
    "readable": select.EPOLLIN | select.EPOLLRDHUP | POLL_ENDS,
    "writable": select.EPOLLOUT | POLL_ENDS,
    "connected": select.EPOLLOUT | POLL_ENDS,
}


class MockStreamSocket(StreamSocket):
    """A TCP socket of the mock kernel (harness/mockkernel/ipv4/tcp.py's calls, as
    the socket layer makes them: inet_bind, inet_listen, inet_accept, inet_stream_connect,
    tcp_sendmsg, ...). After each call the target settles, so what the call sent is
    stamped with the time now; wait() advances virtual time timer by timer. An
    accepted socket joins the target's sockets, so every one is closed with it."""

    def __init__(self, target: MockTarget, sk: tcp.TcpSock) -> None:
        self.target, self.sk = target, sk
        self.closed = False

    @classmethod
    def open(cls, target: MockTarget, bind: tuple[str, int] | None, rcvbuf: int | None,
             sndbuf: int | None, family: int = AF_INET) -> MockStreamSocket:
        sock = cls(target, tcp.tcp_sock_create(target.kernel, tcp_ipv6.TCPV6_PROT if family == AF_INET6
                                                else tcp.TCP_PROT))
        try:
            if rcvbuf is not None:
                sock.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
            if sndbuf is not None:
                sock.setsockopt(SOL_SOCKET, SO_SNDBUF, sndbuf)
            if bind is not None:
                sock.bind(bind)
        except BaseException:
            sock.close()
            raise
        return sock

    def _call(self, function: Callable, *args):
        """One socket call into the kernel, then the target settles (even if it raised)."""
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        try:
            return function(self.sk, *args)
        finally:
            self.target._settle()

    def _address(self, host: str) -> int | bytes:
        """The socket's family's address: an integer, or 16 bytes."""
        return addr_bytes(host) if self.sk.family == AF_INET6 else ip_to_int(host)

    def bind(self, addr: tuple[str, int]) -> None:
        bind = tcp_ipv6.inet6_bind if self.sk.family == AF_INET6 else tcp.inet_bind
        self._call(bind, self._address(addr[0]), addr[1])

    def listen(self, backlog: int) -> None:
        self._call(tcp.inet_listen, backlog)

    def accept(self) -> tuple[MockStreamSocket, tuple[str, int]]:
        child = MockStreamSocket(self.target, self._call(tcp.inet_accept))
        self.target._sockets.append(child)
        sk = child.sk
        peer = sk.daddr if sk.family == AF_INET else inet6_sk_daddr(sk)
        return child, (addr_str(peer) if sk.family == AF_INET6 else int_to_ip(peer), sk.dport)

    def connect(self, addr: tuple[str, int]) -> None:
        self._call(tcp.inet_stream_connect, self._address(addr[0]), addr[1])

    def send(self, data: bytes) -> int:
        return self._call(tcp.tcp_sendmsg, bytes(data))

    def recv(self, bufsize: int) -> bytes:
        return self._call(tcp.tcp_recvmsg, bufsize)

    def shutdown(self, how: int) -> None:
        self._call(tcp.tcp_shutdown, how)

    def close(self) -> None:
        if not self.closed:
            self._call(tcp.tcp_close)
            self.closed = True

    def setsockopt(self, level: int, name: int, value: int | bytes) -> None:
        self._call(tcp.do_tcp_setsockopt, level, name, value)

    def getsockopt(self, level: int, name: int) -> int:
        return self._call(tcp.do_tcp_getsockopt, level, name)

    def wait(self, event: str, timeout: float | None = None) -> bool:
        if event not in WAIT_EVENTS:
            raise TargetError(f"a socket waits for {', '.join(WAIT_EVENTS)}, not {event!r}")
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        wanted = WAIT_EVENTS[event]
        seconds = self.target.positive_timeout if timeout is None else timeout
        if not self.target.run_timers(self.target.now() + max(seconds, 0.0), lambda: tcp.tcp_poll(self.sk) & wanted):
            return False
        if event == "connected":
            self._check_connected()
        return True

    def _check_connected(self) -> None:
        """As the netns lab's: the handshake's error (SO_ERROR, read and cleared), or
        ENOTCONN when the socket is not connected at all."""
        error = self.getsockopt(SOL_SOCKET, SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))
        if self.info().state in (TcpState.TCP_CLOSE, TcpState.TCP_LISTEN):
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))

    def info(self) -> TcpInfo:
        return self._call(tcp.tcp_get_info)
