"""`--target=dut` without a lab file: the Target interface over the real kernel of
this host, in the namespaces of a fresh `NetnsLab`.

Configuration runs the operators' own commands inside the DUT namespace; frames are
written and captured with AF_PACKET sockets on the tester ends of the veth pairs;
applications are sockets opened inside the DUT namespace; drops come from the
`skb:kfree_skb` tracepoint (`kfree_skb.py`); netfilter hops from nf_tables tracing
(`nftrace.py`), switched on by the test's first `nft` or `iptables` command; XDP and TC hops
from program run counts and the devices' counters (`xdpstats.py`); rule
counters from `nft -a list ruleset`; conntrack entries from a ctnetlink dump
(`nfnetlink.py`). The real kernel takes real time, so expectations wait: up to
`positive_timeout` for an expected frame, and `negative_timeout` to be sure nothing
comes. The positive one ends as soon as the frame is there, so it is long enough for
a machine loaded with parallel workers; only a failing expectation waits it out.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

from harness.drivers import generator, load_counters, nfnetlink
from harness.drivers.bpf_events import open_event_reader
from harness.drivers.ct_table import HostConntrackTable
from harness.drivers.kfree_skb import KfreeSkbTracer, NetnsDrops
from harness.drivers.netns import TESTER_MTU, NetnsLab, require_tool
from harness.drivers.nftrace import (
    NftTrace,
    hide_trace_table,
    parse_ruleset,
    rule_counters,
)
from harness.drivers.xdpstats import BpfRunObserver
from harness.journey import CtEntry, Drop, Journey, RuleCounter
from harness.progress import ProgressBar
from harness.target import (
    MAX_L2_OVERHEAD,
    PORTS,
    AppSocket,
    CommandError,
    EventReader,
    Port,
    Target,
    TargetError,
    check_readable,
    frame_too_long,
)
from harness.traffic import Loss, Profile, Result, TrafficCaps

# What `sh()` runs: the configuration tools operators use, the counters' readers
# (nstat; cat of /proc/net/* and /proc/sys/* only), nothing else.
SH_PROGRAMS = frozenset({
    "ip", "nft", "iptables", "iptables-save", "iptables-restore", "tc", "sysctl",
    "ethtool", "conntrack", "bpftool", "nstat", "cat",
})
# The ones that change nf_tables rulesets (iptables is iptables-nft on Debian).
RULESET_PROGRAMS = frozenset({"nft", "iptables", "iptables-restore"})

ETH_P_ALL = 0x0003
ETH_HLEN = 14
MAX_FRAME = 65535
# Frames of one burst leave the DUT microseconds apart: after the first, keep
# collecting until the ports stay quiet this long, so a burst is not split.
BURST_QUIET = 0.01
# Application sockets by `proto`: the IP protocol of the SOCK_DGRAM socket, and the
# /proc/net table listing it (a ping socket is SOCK_DGRAM + IPPROTO_ICMP).
APP_SOCKETS = {"udp": (socket.IPPROTO_UDP, "udp"), "icmp": (socket.IPPROTO_ICMP, "icmp")}
# Fields of a /proc/net/udp and /proc/net/icmp row (udp4_format_sock(), ping_v4_format_sock())
PROC_NET_INODE = 9
PROC_NET_DROPS = 12
# A traffic run's DUT has drained when its devices' counters stayed unchanged this
# long with nothing in its qdiscs; DRAIN_TIMEOUT only ends a run whose DUT never drains.
DRAIN_QUIET = 0.02
DRAIN_POLL = 0.002
DRAIN_TIMEOUT = 30.0
# A classic BPF socket filter of one instruction, `ret #0`: it accepts no frame.
SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27
ACCEPT_NOTHING = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K, 0


class NetnsTarget(Target):
    """The real kernel in a DUT namespace, ports p0..p2 wired to tester ports t0..t2."""

    name = "dut"

    def __init__(self, positive_timeout: float = 5.0, negative_timeout: float = 0.25,
                 nftrace: bool = True) -> None:
        """`nftrace=False` leaves packets untraced (load runs: tracing costs the kernel
        a netlink message per chain and rule a packet crosses)."""
        super().__init__()
        self.positive_timeout = positive_timeout
        self.negative_timeout = negative_timeout
        self._sockets: list[NetnsSocket] = []
        self._event_readers: list[EventReader] = []
        self._drops: NetnsDrops | None = None
        self._nftrace: NftTrace | None = None
        self._bpf_runs: BpfRunObserver | None = None
        self._testers_in_napi_mode = False
        self._frames_traced_from = 0  # frame_log index where the trace was last cleared
        self.lab = NetnsLab()
        self._nstat_history = os.path.join(tempfile.gettempdir(), f"{self.lab.dut}.nstat")
        self._conntrack_table = HostConntrackTable(self.lab)
        try:
            # opened with the lab, so nothing the DUT sends is missed
            self._wires = {port.name: self._tester_socket(port) for port in PORTS}
            capabilities = {"kernel", "frames", "sockets"}
            try:
                self._drops = KfreeSkbTracer.shared().watch(self.lab)
                capabilities.add("drop_reasons")
            except TargetError as exc:  # bpftrace missing or failing: no drop reasons
                self._no_drop_reasons = str(exc)
            if shutil.which("nft"):
                capabilities.add("nftables")
                if nftrace:
                    capabilities.add("nftrace")  # netfilter hops, netdev ingress included
            capabilities.add("xdp")  # native XDP on veth: `ip link set dev pN xdp obj ...`
            capabilities.add("tc")  # clsact + cls_bpf: `tc filter add dev pN ingress bpf da obj ...`
            capabilities.add("bpf_events")  # ring buffers and perf event arrays read through bpf(2)
            if shutil.which("bpftool"):
                capabilities.add("bpftool")
                try:
                    self._bpf_runs = BpfRunObserver(self.lab)
                    capabilities.update({"journey.xdp", "journey.tc"})  # TC ingress and egress
                except TargetError as exc:  # no BPF_ENABLE_STATS: program runs are not counted
                    self._no_xdp_journeys = str(exc)
            try:
                nfnetlink.check_conntrack(self.lab)
                capabilities.add("conntrack")
            except (TargetError, OSError) as exc:  # no ctnetlink in this kernel
                self._no_conntrack = str(exc)
            self.capabilities = frozenset(capabilities)
        except BaseException:
            self.lab.close()
            raise

    def _tester_socket(self, port: Port) -> socket.socket:
        sock = self.lab.socket(self.lab.tester, socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((port.peer, ETH_P_ALL))
        sock.setblocking(False)
        return sock

    # configuration -----------------------------------------------------------
    def sh(self, cmd: str | Sequence[str], stdin: str | None = None) -> str:
        argv = self.argv(cmd)
        if not argv:
            raise CommandError(argv, "empty command")
        if argv[0] not in SH_PROGRAMS:
            raise CommandError(argv, f"`{argv[0]}` is not a configuration command this target runs; "
                                     f"it runs {', '.join(sorted(SH_PROGRAMS))}")
        require_tool(argv[0])
        if argv[0] == "cat":
            check_readable(argv)
        if argv[0] == "nstat":  # its history file is per user, in /tmp: give this DUT its own
            argv = ["env", f"NSTAT_HISTORY={self._nstat_history}", *argv]
        if argv[0] not in RULESET_PROGRAMS or "nftrace" not in self.capabilities:
            # procps 4.0.2 exits 0 after a refused write (e.g. a key read-only in a netns)
            out = self.lab.run(self.lab.dut, argv, stdin, stderr_fails=argv[0] == "sysctl")
            self._peer_accepts_xdp_frames(argv)
            if argv[:3] == ["tc", "filter", "add"] and self._bpf_runs is not None:
                self._bpf_runs.active = True  # from now on each send is counted
            return out
        # pj_trace is there before the test's first ruleset, and back after a flush
        if self._nftrace is None:
            self._nftrace = NftTrace(self.lab)
        self._nftrace.before_ruleset_command()
        try:
            output = self.lab.run(self.lab.dut, argv, stdin)
        finally:
            self._nftrace.after_ruleset_command()
        return hide_trace_table(argv, output) if argv[0] == "nft" else output

    def _peer_accepts_xdp_frames(self, argv: list[str]) -> None:
        """After the first `ip link set dev pN xdp obj ...`, give every tester end an
        XDP_PASS program: a veth delivers XDP_TX/XDP_REDIRECT frames only to a peer
        in NAPI mode, and a program may redirect to any port."""
        if argv[:3] != ["ip", "link", "set"] or not {"xdp", "xdpdrv", "xdpgeneric"} & set(argv):
            return
        if self._bpf_runs is not None:  # from now on each send is counted
            self._bpf_runs.active = True
        if "off" in argv or self._testers_in_napi_mode:
            return
        from harness import bpf_build
        program = str(bpf_build.build("xdp_pass"))
        for port in PORTS:
            self.lab.run(self.lab.tester, ["ip", "link", "set", "dev", port.peer, "xdp", "obj", program, "sec", "xdp"])
        self._testers_in_napi_mode = True

    # frames ------------------------------------------------------------------
    def _transmit(self, port: Port, frames: list[bytes]) -> None:
        if self._bpf_runs is not None:
            self._bpf_runs.before_send(port, frames)
        wire = self._wires[port.name]
        refused = [frame for frame in frames if not _put_on_wire(wire, frame)]
        if refused:
            self._check_refused(port, max(len(frame) for frame in refused))

    def _check_refused(self, port: Port, longest: int) -> None:
        """The DUT port dropped frames on receipt. A full backlog or a port set down
        is the DUT's behaviour, seen in drops(); a frame longer than the port's MTU is
        a mistake in the test, and says so."""
        link = json.loads(self.lab.run(self.lab.dut, ["ip", "-json", "link", "show", port.name]))
        if longest > link[0]["mtu"] + MAX_L2_OVERHEAD:
            raise frame_too_long(port, longest, link[0]["mtu"])

    def _receive(self, timeout: float) -> dict[str, list[bytes]]:
        received: dict[str, list[bytes]] = {name: [] for name in self._wires}
        deadline = time.monotonic() + timeout
        while True:
            got_some = any(received.values())
            wait = BURST_QUIET if got_some else max(deadline - time.monotonic(), 0.0)
            ready, _, _ = select.select(list(self._wires.values()), [], [], wait)
            if not ready:
                return received
            for name, wire in self._wires.items():
                received[name] += _drain_incoming(wire)

    # applications, observation, time ----------------------------------------
    def socket(self, proto: str, bind: tuple[str, int], rcvbuf: int | None = None) -> AppSocket:
        sock = NetnsSocket(self.lab, proto, bind, rcvbuf, self.positive_timeout)
        self._sockets.append(sock)
        return sock

    def journeys(self) -> list[Journey]:
        """The netfilter hops of every traced packet (once the test configured nftables),
        with its drop; drops of other packets as journeys of their own; XDP hops first."""
        journeys = self._netfilter_journeys()
        return self._bpf_runs.merge(journeys) if self._bpf_runs is not None else journeys

    def _netfilter_journeys(self) -> list[Journey]:
        if self._nftrace is None:
            return [Journey(packet=drop.packet, drop=drop) for drop in self.drops()]
        # the drop sentinel syncs the DUT: what was sent before it has been through
        drops = self.drops() if self._drops is not None else []
        self._collect(0.0)  # frames that left show POSTROUTING's NAT; they stay queued for expect()
        frames_out = [frame for direction, _, frame in self.frame_log[self._frames_traced_from:] if direction == "left"]
        readable = "conntrack" in self.capabilities
        return self._nftrace.journeys(drops, frames_out, self.conntrack if readable else None)

    def drops(self) -> list[Drop]:
        if self._drops is None:
            raise TargetError(f"this target cannot see drop reasons: {self._no_drop_reasons}")
        return self._drops.drops()

    def counters(self) -> list[RuleCounter]:
        """Every rule with an anonymous counter, from `nft -a list ruleset`: the rule's
        text as nft lists it, less `counter packets N bytes M` and its handle."""
        require_tool("nft")
        return rule_counters(parse_ruleset(self.lab.run(self.lab.dut, ["nft", "-a", "list", "ruleset"])))

    def conntrack(self) -> list[CtEntry]:
        if "conntrack" not in self.capabilities:
            raise TargetError(f"this target cannot read the conntrack table: {self._no_conntrack}")
        return nfnetlink.conntrack_entries(self.lab)

    def conntrack_create(self, entries) -> None:
        if "conntrack" not in self.capabilities:
            raise TargetError(f"this target cannot create conntrack entries: {self._no_conntrack}")
        entries = list(entries)
        self._conntrack_table.claim_for(len(entries))
        nfnetlink.create_entries(self.lab, entries)

    def bpf_events(self, map_id: int) -> EventReader:
        reader = open_event_reader(map_id)
        self._event_readers.append(reader)
        return reader

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
        nft = "nftables" in self.capabilities
        with ExitStack() as stack:
            stack.enter_context(self._wires_deaf())
            if self._nftrace is not None:
                stack.enter_context(self._nftrace.untraced())
            drop_counts = stack.enter_context(self._drops.counting()) if self._drops is not None else None
            before = load_counters.take(self.lab, nft)
            schedule = generator.schedule_seconds(profile, duration)
            bar = stack.enter_context(ProgressBar("lab traffic", schedule, "{completed:.1f}/{total:.1f} s, {doing}"))
            run = stack.enter_context(generator.GeneratorRun(self.lab, profile, duration))
            run.wait_sent(2 * schedule + generator.STARTUP_TIMEOUT,
                          lambda seconds: bar.update(min(seconds, schedule), doing="pjgen sending"))
            drained = self._wait_drained(run, lambda: bar.update(schedule, doing="the DUT draining"))
            stats = run.stats()
            after = load_counters.take(self.lab, nft)
        result = generator.to_result(profile, duration, stats, self.name)
        counter_losses, notes = load_counters.compare(self.lab, before, after)
        if drop_counts is not None:
            result.losses = [Loss(stage, reason, where, packets) for (reason, stage, where), packets
                             in sorted(drop_counts.items(), key=lambda item: -item[1])]
        else:
            result.losses = counter_losses
            notes.append(f"no drop reasons ({self._no_drop_reasons}): losses are what the counters name")
        if not drained:
            notes.append(f"the DUT had not drained {DRAIN_TIMEOUT:.0f} s after the streams ended: "
                         "what it still held counts as lost")
        result.notes += notes
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
            counters = self.lab.read_proc_net(self.lab.dut, "dev")
            if counters != last:
                last, still_since = counters, now
            elif now - still_since >= DRAIN_QUIET and not load_counters.qdisc_backlog(self.lab):
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

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def reset(self) -> None:
        if self._drops is not None:  # first: its sentinel syncs the DUT, so what was sent has left
            self._drops.clear()
        super().reset()
        if self._nftrace is not None:
            self._nftrace.clear()
            self._frames_traced_from = len(self.frame_log)
        if self._bpf_runs is not None:
            self._bpf_runs.clear()

    def close(self) -> None:
        try:
            for sock in self._sockets:
                sock.close()
            for reader in self._event_readers:
                reader.close()
            if self._nftrace is not None:  # its reader thread stops before the lab closes its sockets
                self._nftrace.close()
            if self._drops is not None:
                self._drops.close()
            if self._bpf_runs is not None:
                self._bpf_runs.close()
        finally:
            try:
                self._conntrack_table.release()
            finally:
                if os.path.exists(self._nstat_history):
                    os.unlink(self._nstat_history)
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


def _drain_incoming(wire: socket.socket) -> list[bytes]:
    """Every frame queued on a tester port that came from the DUT (the port's own
    transmissions show up as PACKET_OUTGOING)."""
    frames = []
    while True:
        try:
            frame, address = wire.recvfrom(MAX_FRAME)
        except BlockingIOError:
            return frames
        if address[2] != socket.PACKET_OUTGOING:
            frames.append(frame)


class NetnsSocket(AppSocket):
    """A UDP socket or ICMP ping socket of an application in the DUT namespace."""

    def __init__(self, lab: NetnsLab, proto: str, bind: tuple[str, int], rcvbuf: int | None,
                 timeout: float):
        if proto not in APP_SOCKETS:
            raise TargetError(f"socket proto {proto!r} is not supported; use 'udp' or 'icmp'")
        ipproto, self._proc_net = APP_SOCKETS[proto]
        self.lab, self.proto, self.bind, self.timeout = lab, proto, bind, timeout
        self.sock = lab.socket(lab.dut, socket.AF_INET, socket.SOCK_DGRAM, ipproto)
        try:
            if rcvbuf is not None:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.bind(bind)
        except OSError as exc:
            self.sock.close()
            raise TargetError(f"{proto} socket bind {bind}: {exc.strerror}") from exc
        self.sock.setblocking(False)
        self.inode = os.fstat(self.sock.fileno()).st_ino

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        """As the application calls it: the kernel's errors (EPERM from a netfilter
        drop on output, ENETUNREACH, ...) reach the caller as OSError."""
        self.sock.sendto(data, addr)

    def recv(self) -> tuple[bytes, tuple[str, int]]:
        ready, _, _ = select.select([self.sock], [], [], self.timeout)
        if not ready:
            raise TargetError(f"{self.proto} socket {self.bind}: nothing received in {self.timeout} s")
        return self._recvfrom()

    def recv_all(self) -> list[tuple[bytes, tuple[str, int]]]:
        datagrams = []
        while True:
            try:
                datagrams.append(self._recvfrom())
            except BlockingIOError:
                return datagrams

    def _recvfrom(self) -> tuple[bytes, tuple[str, int]]:
        data, (addr, port) = self.sock.recvfrom(MAX_FRAME)
        return data, (addr, port)

    def drops(self) -> int:
        """The `drops` column of this socket's line in /proc/net/udp (or icmp)."""
        for line in self.lab.read_proc_net(self.lab.dut, self._proc_net).splitlines()[1:]:
            fields = line.split()
            if int(fields[PROC_NET_INODE]) == self.inode:
                return int(fields[PROC_NET_DROPS])
        raise TargetError(f"{self.proto} socket {self.bind} (inode {self.inode}) is not in "
                          f"/proc/net/{self._proc_net} of {self.lab.dut}")

    def close(self) -> None:
        self.sock.close()
