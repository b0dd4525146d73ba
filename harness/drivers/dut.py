"""`--target=dut` without a lab file: the Target interface over the real kernel of
this host, in the namespaces of a fresh `NetnsLab`.

Configuration runs the operators' own commands inside the DUT namespace; frames are
written and captured with AF_PACKET sockets on the tester ends of the veth pairs (leaving
out the MLD reports a DUT with IPv6 on sends by itself, which the mock does not model).
What observes and acts on the DUT is its DutSide (dutside.py), which a lab DUT's
agent serves the same way (agent.py): applications are sockets opened inside the
DUT namespace; drops come from the `skb:kfree_skb` tracepoint (`kfree_skb.py`);
netfilter hops from nf_tables tracing (`nftrace.py`), switched on by the test's first
`nft` or `iptables` command; XDP and TC hops from program run counts and the devices'
counters (`xdpstats.py`); rule counters from `nft -a list ruleset`; conntrack entries
from a ctnetlink dump (`nfnetlink.py`). The real kernel takes real time, so expectations wait: up to
`positive_timeout` for an expected frame, and `negative_timeout` to be sure nothing
comes. The positive one ends as soon as the frame is there, so it is long enough for
a machine loaded with parallel workers; only a failing expectation waits it out.

Settling. Where the frames were sent, and are collected, by threads that run on one
CPU only (the differential runner pins its main thread so), and no application socket
of the DUT sends on its own, `negative_timeout` is not waited out: every
frame a tester port sends is received by the DUT's veth on the sending CPU
(veth_xmit() -> __netif_rx() -> enqueue_to_backlog() on smp_processor_id(), RPS
off), and everything the DUT sends from there, out of a port (veth again) or to
itself (loopback_xmit()), is queued on that CPU's backlog behind what is queued
already: one softnet queue, first in first out (net/core/dev.c process_backlog()).
A marker frame sent on the tester's lo joins the same queue; once it is received,
all that was queued before it has been through, and MARKER_ROUNDS rounds cover a
DUT that answers itself through lo that many times over. A port in NAPI mode (XDP
attached: veth_xdp_rx() polls on the CPU its NAPI was scheduled on) or a DUT agent
falls back to the timeout.
"""
from __future__ import annotations

import ctypes
import errno
import itertools
import os
import select
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from harness.drivers import agent, generator
from harness.drivers.auxdata import ANCILLARY_SPACE, enable_auxdata, with_vlan_tag
from harness.drivers.agent import RemoteDutSide
from harness.drivers.dutside import DutSide, attaches_bpf, check_command
from harness.drivers.netns import TESTER_MTU, NetnsLab
from harness.journey import CtEntry, Drop, Journey, RuleCounter
from harness.mockkernel.wire.mld import is_mld_report
from harness.progress import ProgressBar
from harness.target import (
    MAX_L2_OVERHEAD,
    PORTS,
    AppSocket,
    Departed,
    EventReader,
    Port,
    StreamSocket,
    Target,
    TargetError,
    check_family,
    frame_too_long,
)
from harness.traffic import Profile, Result, TrafficCaps

ETH_P_ALL = 0x0003
ETH_HLEN = 14
MAX_FRAME = 65535
# Frames of one burst leave the DUT microseconds apart: after the first, keep
# collecting until the ports stay quiet this long, so a burst is not split.
BURST_QUIET = 0.01
# A traffic run's DUT has drained when its devices' counters stayed unchanged this
# long with nothing in its qdiscs; DRAIN_TIMEOUT only ends a run whose DUT never drains.
DRAIN_QUIET = 0.02
DRAIN_POLL = 0.002
DRAIN_TIMEOUT = 30.0
# The agent closes its observers (bpftrace, nftrace tables) before it exits.
AGENT_EXIT_TIMEOUT = 30.0
# Each captured frame's receive time (SO_TIMESTAMPNS_OLD: struct timespec, CLOCK_REALTIME)
SO_TIMESTAMPNS = SCM_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")
# A classic BPF socket filter of one instruction, `ret #0`: it accepts no frame.
SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27
ACCEPT_NOTHING = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K, 0
# The settling markers (NetnsTarget._collect_quiet()): frames of the IEEE local
# experimental ethertype on the tester's lo, each a round through the CPU's backlog;
# a round lets one more packet the DUT sends to itself through lo have its answer.
MARKER_ETHERTYPE = 0x88B5
MARKER_ROUNDS = 4


class SideTarget(Target):
    """A Target whose DUT half is `side`, a DutSide (in this process or a DUT agent's):
    the applications, observations and phases both the netns target and a lab's read
    from it. `_frames_traced_from` is the frame_log index where the trace was last
    cleared."""

    side: DutSide | RemoteDutSide
    positive_timeout: float
    _frames_traced_from = 0

    # applications, observation, time ----------------------------------------
    def socket(self, proto: str, bind: tuple[str, int] | None = None, rcvbuf: int | None = None,
               sndbuf: int | None = None, family: int = socket.AF_INET) -> AppSocket | StreamSocket:
        check_family(family)
        return self.side.socket(proto, bind, rcvbuf, sndbuf, self.positive_timeout, family)

    def journeys(self) -> list[Journey]:
        """The DUT's journeys (DutSide.journeys()) of the frames of this phase."""
        # the drop sentinel syncs the DUT: what was sent before it has been through
        drops = self.side.drops() if "drop_reasons" in self.capabilities else None
        self._collect(0.0)  # frames that left show POSTROUTING's NAT; they stay queued for expect()
        frames_out = [frame for direction, _, frame in self.frame_log[self._frames_traced_from:] if direction == "left"]
        return self.side.journeys(frames_out, drops)

    def drops(self) -> list[Drop]:
        return self.side.drops()

    def counters(self) -> list[RuleCounter]:
        return self.side.counters()

    def conntrack(self) -> list[CtEntry]:
        return self.side.conntrack()

    def conntrack_create(self, entries) -> None:
        self.side.conntrack_create(entries)

    def bpf_events(self, map_id: int) -> EventReader:
        return self.side.bpf_events(map_id)

    def now(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def reset(self) -> None:
        self.side.reset()  # first: its drop sentinel syncs the DUT, so what was sent has left
        super().reset()
        self._frames_traced_from = len(self.frame_log)


class NetnsTarget(SideTarget):
    """The real kernel in a DUT namespace, ports p0..p2 wired to tester ports t0..t2:
    a NetnsLab, the DUT's observers (`side`, a DutSide), the tester's wires and pjgen."""

    name = "dut"

    def __init__(self, positive_timeout: float = 5.0, negative_timeout: float = 0.25,
                 nftrace: bool = True, agent_python: str | None = None) -> None:
        """`nftrace=False` leaves packets untraced (load runs: tracing costs the kernel
        a netlink message per chain and rule a packet crosses). `agent_python`: the
        DUT half is a DUT agent run by this interpreter in the DUT namespace
        (drivers/agent.py's bootstrap, `python -I`), as on a lab DUT but over pipes."""
        super().__init__()
        self.positive_timeout = positive_timeout
        self.negative_timeout = negative_timeout
        self._testers_in_napi_mode = False
        self._agent: subprocess.Popen | None = None
        self.lab = NetnsLab()
        try:
            # opened with the lab, so nothing the DUT sends is missed
            self._wires = {port.name: self._tester_socket(port) for port in PORTS}
            self._marker_wire = self.lab.socket(self.lab.tester, socket.AF_PACKET, socket.SOCK_RAW)
            self._marker_wire.bind(("lo", MARKER_ETHERTYPE))
            self._markers = itertools.count(1)
            self._sent_from: set[frozenset[int]] = set()  # the CPU affinities of the threads that sent frames
            self._applications = False
            self.side = DutSide(self.lab, nftrace) if agent_python is None else self._start_agent(agent_python, nftrace)
        except BaseException:
            self._stop_agent()
            self.lab.close()
            raise
        # the lab's veths are new for each test: their counters start at 0; frames are
        # stamped when captured (SO_TIMESTAMPNS), well under a millisecond after they left;
        # no session reaches the DUT through its ports, so its input hook may drop by policy
        self.capabilities = self.side.capabilities | {"fresh_devices", "frame_times", "host_input_policy"}

    def _start_agent(self, python: str, nftrace: bool) -> RemoteDutSide:
        self._agent = self.lab.popen(self.lab.dut, agent.agent_argv(python), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        channel = agent.PipeChannel(self._agent.stdin, self._agent.stdout)
        channel.write(agent.agent_code())
        return RemoteDutSide(channel, nftrace, self.lab.dut)

    def _stop_agent(self) -> None:
        """Close the agent's stdin, which ends it, and wait for it."""
        if self._agent is not None:
            try:
                self._agent.stdin.close()
            except BrokenPipeError:  # it is gone already: the wait below reaps it
                pass
            self._agent.wait(AGENT_EXIT_TIMEOUT)
            self._agent.stdout.close()

    def _tester_socket(self, port: Port) -> socket.socket:
        sock = self.lab.socket(self.lab.tester, socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((port.peer, ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        enable_auxdata(sock)
        sock.setblocking(False)
        return sock

    # configuration -----------------------------------------------------------
    def sh(self, cmd: str | Sequence[str], stdin: str | None = None) -> str:
        argv = self.argv(cmd)
        check_command(argv)
        command = self.side.before_command(argv)
        try:
            # procps 4.0.2 exits 0 after a refused write (e.g. a key read-only in a netns)
            output = self.lab.run(self.lab.dut, command, stdin, stderr_fails=argv[0] == "sysctl")
        except BaseException:
            self.side.after_command(argv, None)
            raise
        output = self.side.after_command(argv, output)
        self._peer_accepts_xdp_frames(argv)
        return output

    def _peer_accepts_xdp_frames(self, argv: list[str]) -> None:
        """After the first `ip link set dev pN xdp obj ...`, give every tester end an
        XDP_PASS program: a veth delivers XDP_TX/XDP_REDIRECT frames only to a peer
        in NAPI mode, and a program may redirect to any port."""
        if self._testers_in_napi_mode or argv[:3] != ["ip", "link", "set"] or not attaches_bpf(argv) or "off" in argv:
            return
        from harness import bpf_build
        program = str(bpf_build.build("xdp_pass"))
        for port in PORTS:
            self.lab.run(self.lab.tester, ["ip", "link", "set", "dev", port.peer, "xdp", "obj", program, "sec", "xdp"])
        self._testers_in_napi_mode = True

    # frames ------------------------------------------------------------------
    def socket(self, proto: str, bind: tuple[str, int] | None = None, rcvbuf: int | None = None,
               sndbuf: int | None = None, family: int = socket.AF_INET) -> AppSocket | StreamSocket:
        self._applications = True  # they send from any thread, and their timers fire on any CPU: no settling
        return super().socket(proto, bind, rcvbuf, sndbuf, family)

    def _transmit(self, port: Port, frames: list[bytes]) -> None:
        self.side.before_send(port, frames)
        self._sent_from.add(frozenset(os.sched_getaffinity(0)))
        wire = self._wires[port.name]
        refused = [frame for frame in frames if not _put_on_wire(wire, frame)]
        if refused:
            self._check_refused(port, max(len(frame) for frame in refused))

    def _check_refused(self, port: Port, longest: int) -> None:
        """The DUT port dropped frames on receipt. A full backlog or a port set down
        is the DUT's behaviour, seen in drops(); a frame longer than the port's MTU is
        a mistake in the test, and says so."""
        mtu = self.side.port_mtu(port.name)
        if longest > mtu + MAX_L2_OVERHEAD:
            raise frame_too_long(port, longest, mtu)

    def _receive(self, timeout: float) -> dict[str, Departed]:
        return self._capture(timeout, BURST_QUIET)

    def _collect_quiet(self) -> None:
        """Collect until the DUT is done with what was sent: without waiting out the
        negative timeout when this process runs on one CPU (module doc, Settling)."""
        if not self._settles_by_markers():
            super()._collect_quiet()
            return
        for _ in range(MARKER_ROUNDS):
            self._marker_round()
        self._collect(0.0)

    def _settles_by_markers(self) -> bool:
        """This thread and every thread that sent frames may run on one and the same
        CPU only, no application socket was opened, no port is in NAPI mode (XDP,
        module doc) and the DUT half is no agent."""
        if self._testers_in_napi_mode or self._agent is not None or self._applications:
            return False
        here = frozenset(os.sched_getaffinity(0))
        return len(here) == 1 and self._sent_from <= {here}

    def _marker_round(self) -> None:
        """Send a marker through the tester's lo and wait until it is received:
        everything queued on this CPU's backlog before it has then been through."""
        nonce = next(self._markers).to_bytes(8, "big")
        self._marker_wire.send(bytes(12) + MARKER_ETHERTYPE.to_bytes(2, "big") + nonce + bytes(38))
        deadline = time.monotonic() + self.positive_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._marker_wire], [], [], remaining)
            if ready and self._marker_wire.recv(MAX_FRAME)[14:22] == nonce:
                return
        raise TargetError(f"a settling marker on the tester's lo did not come back within {self.positive_timeout} s")

    def _await_frames(self, seconds: float) -> None:
        """next_frame(): back as soon as a frame is captured, not after its burst."""
        self._queue_departed(self._capture(seconds, 0.0))

    def _capture(self, timeout: float, quiet: float) -> dict[str, Departed]:
        """What the tester ports captured, each frame with its capture time (when the
        tester's end of the veth received it, which is when the DUT's end sent it):
        waits up to `timeout` for a first frame, then until the wires were quiet for
        `quiet` seconds."""
        received = {name: Departed([], []) for name in self._wires}
        deadline = time.monotonic() + timeout
        while True:
            got_some = any(departed.frames for departed in received.values())
            wait = quiet if got_some else max(deadline - time.monotonic(), 0.0)
            ready, _, _ = select.select(list(self._wires.values()), [], [], wait)
            if not ready:
                return received
            for name, wire in self._wires.items():
                _drain_incoming(wire, received[name])

    # traffic at rate -----------------------------------------------------------
    def traffic_caps(self) -> TrafficCaps:
        return generator.CAPS

    def traffic(self, profile: Profile, duration: float | None = None) -> Result:
        """pjgen in the tester namespace (drivers/generator.py). The DUT is not traced
        meanwhile (no nftrace; drops counted in the kernel, not reported one by one),
        the wires take none of the run's frames, and loss is counted once every tagged
        packet arrived or the DUT drained (_wait_drained)."""
        profile.check_duration(duration)
        caps = self.traffic_caps()
        for port, pps in generator.port_pps(profile).items():
            if shortfall := caps.shortfall(pps):
                raise TargetError(f"{port}: {shortfall}")
        with self._wires_deaf():
            self.side.begin_load_run()
            try:
                tester_before = self.lab.read_proc_net(self.lab.tester, "dev")
                schedule = generator.schedule_seconds(profile, duration)
                with ProgressBar("lab traffic", schedule, "{completed:.1f}/{total:.1f} s, {doing}") as bar, \
                        generator.GeneratorRun(self.lab, profile, duration) as run:
                    run.wait_sent(2 * schedule + generator.STARTUP_TIMEOUT,
                                  lambda seconds: bar.update(min(seconds, schedule), doing="pjgen sending"))
                    drained = self._wait_drained(run, lambda: bar.update(schedule, doing="the DUT draining"))
                    stats = run.stats()
                    tester_after = self.lab.read_proc_net(self.lab.tester, "dev")
            finally:
                observed = self.side.end_load_run()
        result = generator.to_result(profile, duration, stats, self.name)
        result.losses, notes = observed.losses(tester_before, tester_after)
        if not drained:
            notes.append(f"the DUT had not drained {DRAIN_TIMEOUT:.0f} s after the streams ended: "
                         "what it still held counts as lost")
        result.notes += notes
        self.traffic_results.append(result)
        return result

    def _wait_drained(self, run: generator.GeneratorRun, waiting: Callable[[], None]) -> bool:
        """Wait until the receiver has every tagged packet sent, or the DUT drained: its
        devices' counters (/proc/net/dev) unchanged for DRAIN_QUIET and its qdiscs empty.
        False if neither happened within DRAIN_TIMEOUT. Calls `waiting` at each look."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        last, still_since = None, time.monotonic()
        while not run.finished(DRAIN_POLL):
            waiting()
            now = time.monotonic()
            counters = self.side.proc_net_dev()
            if counters != last:
                last, still_since = counters, now
            elif now - still_since >= DRAIN_QUIET and not self.side.qdisc_backlog():
                return True
            if now > deadline:
                return False
        return True

    @contextmanager
    def _wires_deaf(self) -> Iterator[None]:
        """A traffic run's frames are the generator's: the wires take none of them (a
        socket filter that accepts nothing), so expect() after a run sees only what
        came after it, and no frame of the run is copied to them."""
        self._collect(0.0)  # frames from before the run stay queued for expect()
        program = ctypes.create_string_buffer(ACCEPT_NOTHING)
        fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog
        for wire in self._wires.values():
            wire.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        try:
            yield
        finally:
            for wire in self._wires.values():
                wire.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)

    def close(self) -> None:
        try:
            self.side.close()
        finally:
            try:
                self._stop_agent()
            finally:
                self.lab.close()


def _put_on_wire(wire: socket.socket, frame: bytes) -> bool:
    """Send `frame` from a tester port; False if the DUT's end refused it (veth_xmit()
    returns NET_XMIT_DROP, which AF_PACKET reports as ENOBUFS)."""
    try:
        wire.send(frame)
    except OSError as exc:
        if exc.errno == errno.EMSGSIZE:
            raise TargetError(f"a {len(frame)}-byte frame is longer than the lab's wires carry "
                              f"(MTU {TESTER_MTU} + {ETH_HLEN} bytes)") from exc
        if exc.errno == errno.ENOBUFS:
            return False
        raise
    return True


def _drain_incoming(wire: socket.socket, into: Departed) -> None:
    """Every frame queued on a tester port that came from the DUT (the port's own
    transmissions show up as PACKET_OUTGOING), with its capture time moved from
    CLOCK_REALTIME to the monotonic clock of Target.now()."""
    realtime_ahead = time.time_ns() - time.monotonic_ns()
    while True:
        try:
            frame, ancillary, _, address = wire.recvmsg(MAX_FRAME, socket.CMSG_SPACE(TIMESPEC.size) + ANCILLARY_SPACE)
        except BlockingIOError:
            return
        if address[2] == socket.PACKET_OUTGOING or is_mld_report(frame):
            continue
        into.frames.append(with_vlan_tag(frame, ancillary))
        into.times.append(_captured_at(ancillary, realtime_ahead))


def _captured_at(ancillary: list[tuple[int, int, bytes]], realtime_ahead: int) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
            seconds, nanoseconds = TIMESPEC.unpack(data)
            return (seconds * 1_000_000_000 + nanoseconds - realtime_ahead) / 1e9
    raise TargetError("a tester port's frame came without its capture time (SO_TIMESTAMPNS)")
