"""Run a packetdrill script on a target, as packetdrill's run.c/run_packet.c/
run_system_call.c run one in local mode, over the Target API only.

The DUT is the script's local side: its address on the script's port, an
application socket from `target.socket("tcp")`. The remote side is the tester port:
inbound segments are frames sent into the DUT port at their time, outbound ones are
the frames `target.next_frame()` gives back with their departure times.

What packetdrill does and the runner keeps:
- times: absolute, `+` relative to the previous event (two inbound packets in a row
  are anchored to the first's script time, not to when it was sent), `*`, ranges;
  the first event at 0. Inbound packets, system calls and commands wait for their
  time; an outbound packet is looked for at once and must have left within the
  tolerance of its time.
- sequence numbers: the remote's ISN is the script's (the connection's first inbound
  SYN / SYN-ACK); the DUT's ISN (its first SYN / SYN-ACK) is remapped: script seq = live seq - live ISN (+ script ISN on a SYN),
  and inbound acks and SACK blocks the other way (socket.h *_seq_*_offset()).
  Inbound TS ecr is the live TS val of the outbound segment whose script TS val it
  names; outbound TS val is mapped from the first one seen, and checked only with
  --tcp_ts_tick_usecs (packetdrill's default is not to).
- checks (verify_outbound_live_packet()): every TCP flag, seq, ack, window (when
  written), the options in order and their values (`<...>` skips
  them), the payload, the IP and TCP checksums, the time. An outbound segment
  with less payload than the script's is joined with the next ones of the same
  connection, as packetdrill aggregates TSO/GSO segments. Stricter than
  packetdrill: the outbound TS ecr is checked (inbound TS vals go out unmapped, so
  the DUT's echo is in script space already).
- system calls: on a blocking descriptor a call that would block waits; one written
  `...t` may return later, at t, while the script goes on (one at a time, as
  packetdrill's single system-call thread). Expected result and errno.

Each connection is one remote port: a segment without ports is the script's
connection (remote port DEFAULT_REMOTE_PORT to the bound port, or the connect()ed
one from the DUT's ephemeral port); `< 40001>8080 S ...` names another, with its own
sequence mapping, so one script can open several (listen overflow, SYN cookies).

Time: virtual on the mock, where every check is exact (tolerance 0); real on a DUT,
with packetdrill's tolerance (--tolerance_usecs, 4000 us, or --tolerance_percent of
the time since the previous event, 12.5 %, whichever is larger) widened by the
scheduling delay the runner measures on itself (SchedulingDelay).
"""
from __future__ import annotations

import errno as errno_module
import os
import shlex
import struct
import time as wallclock
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.journey import render_all
from harness.packetdrill.lexer import ScriptSyntaxError
from harness.packetdrill.script import (
    TCPOPT_SACK,
    TCPOPT_TIMESTAMP,
    Command,
    Event,
    Expr,
    Script,
    Segment,
    Syscall,
    TcpOption,
    TimeKind,
)
from harness.packetdrill.segment import (
    FLAG_BITS,
    FLAG_NAMES,
    FLAG_ORDER,
    MalformedFrame,
    WireSegment,
    flag_bits,
)
from harness.packetdrill.symbols import CONSTANTS, ERRNOS
from harness.target import Target

if TYPE_CHECKING:
    from harness.target import StreamSocket

# the remote port of the script's connection when the DUT listens (packetdrill takes an
# ephemeral port of its host; the tester has no stack, so any fixed port does)
DEFAULT_REMOTE_PORT = 50000
# how long packetdrill's sniffer waits past an outbound packet's time before it gives up
# (the runner waits as long for a late blocking call at the end of the script)
SNIFF_GRACE_USECS = 2_000_000
# the longest a `*` outbound packet is waited for
ANY_TIME_WAIT_USECS = 10_000_000
# on real time, how often a pending blocking call is retried while time passes
PENDING_POLL_SECONDS = 0.002
# the shell programs a `command` line may run (through target.sh)
SHELL_PROGRAMS = ("sysctl", "ip", "nft", "tc")

O_NONBLOCK = CONSTANTS["O_NONBLOCK"]


class ScriptFailure(AssertionError):
    """The DUT did not do what the script says: names the script line, what was
    expected and what happened."""


@dataclass
class Connection:
    """packetdrill's struct socket for one connection: ports and sequence mapping."""

    remote_port: int
    local_port: int | None
    remote_isn: int = 0
    remote_isn_known: bool = False   # set by the first inbound SYN (or SYN-ACK of a connect())
    script_local_isn: int = 0
    live_local_isn: int = 0
    local_isn_known: bool = False    # set by the DUT's first SYN or SYN-ACK
    ts_vals: dict[int, int] = field(default_factory=dict)   # script TS val -> live TS val
    first_ts: tuple[int, int] | None = None                  # (script, live) TS val

    def local_offset(self, syn: bool) -> int:
        """local_seq_script_to_live_offset()"""
        return (self.live_local_isn - self.script_local_isn) if syn else self.live_local_isn

    def remote_offset(self, syn: bool) -> int:
        """remote_seq_script_to_live_offset()"""
        return 0 if syn else self.remote_isn


@dataclass
class Descriptor:
    sock: StreamSocket
    nonblocking: bool = False


@dataclass
class PendingCall:
    """A blocking system call the script lets return later (`...t`)."""

    event: Event
    start_usecs: int
    end_usecs: int
    attempt: Callable[[], int]   # raises BlockingIOError while the call would block


class SchedulingDelay:
    """How late this process runs on a loaded machine, to widen real-time tolerances.

    The runner measures itself: at start, how far past their end 20 sleeps of 1 ms
    wake up; during the run, how late it wakes from each wait for an event's time, how
    late each event starts and each inbound segment has been sent (send() returned). The DUT's
    softirqs and timers are delayed as much as the runner's own thread on the same
    CPUs, and a checked time spans the runner's event and the DUT's answer, so the
    tolerance grows by twice the largest lateness seen."""

    CALIBRATION_SLEEPS = 20
    CALIBRATION_SLEEP_SECONDS = 0.001

    def __init__(self) -> None:
        self.worst_usecs = 0

    def calibrate(self) -> None:
        for _ in range(self.CALIBRATION_SLEEPS):
            start = wallclock.monotonic()
            wallclock.sleep(self.CALIBRATION_SLEEP_SECONDS)
            self.observe(wallclock.monotonic() - start - self.CALIBRATION_SLEEP_SECONDS)

    def observe(self, late_seconds: float) -> None:
        self.worst_usecs = max(self.worst_usecs, round(late_seconds * 1e6))

    @property
    def widening_usecs(self) -> int:
        return 2 * self.worst_usecs


def run_script(target: Target, script: Script) -> None:
    """Run `script` on `target`; ScriptFailure if the DUT disagrees, ScriptSyntaxError
    if the script asks for what the harness cannot do."""
    Runner(target, script).run()


class Runner:
    def __init__(self, target: Target, script: Script):
        self.target, self.script = target, script
        self.config, self.addr = script.config, script.addressing
        self.port = target.port(self.addr.port)
        self.virtual = "virtual_time" in target.capabilities
        self.delay = SchedulingDelay()
        self.fds: dict[int, Descriptor] = {}
        self.connections: dict[int, Connection] = {}
        self.default_remote_port: int | None = None
        self.outbound: list[tuple[WireSegment, float]] = []   # frames that left, not yet matched
        self.ignored: list[str] = []                         # frames that left for no connection of the script
        self.pending: PendingCall | None = None
        self.event: Event | None = None
        self.last_event: Event | None = None
        self.event_usecs = 0                    # the current event's script time
        self.event_end_usecs: int | None = None  # the end of its range, or of a blocking call
        self.last_usecs = 0                     # the previous event's script time
        self.done_usecs = 0                     # when the previous event ended: what `+t` counts from
        self.start = 0.0

    # the run ---------------------------------------------------------------------------
    def run(self) -> None:
        self.set_up_addresses()
        if self.script.init_command:
            self.shell(self.script.init_command, line=self.script.events[0].line)
        if not self.virtual:
            self.delay.calibrate()
        self.start = self.target.now()
        try:
            for event in self.script.events:
                self.event = event
                self.run_event(event)
                self.last_event, self.last_usecs = event, self.event_usecs
            if self.pending:
                end = self.pending.end_usecs
                self.settle_pending(end + self.tolerance(end, self.pending.start_usecs) + SNIFF_GRACE_USECS)
            if self.pending:
                raise self.failure("exiting while a blocking system call is in progress", self.pending.event)
        finally:
            if self.script.cleanup_command:
                self.shell(self.script.cleanup_command, line=self.script.events[-1].line)

    def set_up_addresses(self) -> None:
        """The DUT's address on the port and a permanent neighbour for the remote, so no
        ARP is ever needed; a remote outside the port's /24 gets a route on the port."""
        local, remote, name = self.addr.local, self.addr.remote, self.port.name
        self.target.sh(f"ip addr add {local}/24 dev {name}")
        if remote.rsplit(".", 1)[0] != local.rsplit(".", 1)[0]:
            self.target.sh(f"ip route add {remote}/32 dev {name}")
        self.target.sh(f"ip neigh replace {remote} lladdr {self.port.peer_mac} dev {name} nud permanent")

    def run_event(self, event: Event) -> None:
        self.event_usecs, self.event_end_usecs = self.resolve_time(event)
        action = event.action
        if isinstance(action, Segment) and not action.inbound:
            self.expect_outbound(event, action)
            return
        self.advance_to(self.event_usecs)
        self.measure_lateness()
        if isinstance(action, Segment):
            self.send_inbound(action)
        elif isinstance(action, Syscall):
            self.run_syscall(event, action)
        else:
            self.shell(action, event.line)
        self.poll_pending()
        self.done_usecs = self.now_usecs()

    def resolve_time(self, event: Event) -> tuple[int, int | None]:
        """adjust_relative_event_times(): (script time, end of a range or of a blocking call)."""
        when = event.time
        end = when.end_usecs
        if isinstance(event.action, Syscall) and event.action.end_usecs is not None:
            end = event.action.end_usecs
        if when.kind not in (TimeKind.RELATIVE, TimeKind.RELATIVE_RANGE, TimeKind.ANY):
            return when.usecs, end
        anchored = self.last_event is not None and self.is_inbound(self.last_event) and self.is_inbound(event)
        offset = self.last_usecs if anchored else self.done_usecs
        return offset + when.usecs, (offset + end if end is not None else None)

    @staticmethod
    def is_inbound(event: Event) -> bool:
        return isinstance(event.action, Segment) and event.action.inbound

    # time ---------------------------------------------------------------------------------
    def now_usecs(self) -> int:
        return round((self.target.now() - self.start) * 1e6)

    def live_time(self, usecs: int) -> float:
        return self.start + usecs / 1e6

    def tolerance(self, usecs: int, since_usecs: int) -> int:
        """verify_time()'s tolerance for an event at `usecs`; 0 on virtual time."""
        if self.virtual:
            return 0
        percent = self.config.tolerance_percent / 100 * max(usecs - since_usecs, 0)
        return round(max(self.config.tolerance_usecs, percent)) + self.delay.widening_usecs

    def advance_to(self, usecs: int) -> None:
        """Let time pass until script time `usecs`, keeping the frames that leave and
        retrying a pending blocking call on the way."""
        while True:
            until = self.next_stop(usecs)
            got = self.target.next_frame(self.port, self.live_time(until))
            if got is not None:
                self.keep_frame(*got)
            elif not self.virtual:
                self.delay.observe((self.now_usecs() - until) / 1e6)
            self.poll_pending()
            if got is None and until >= usecs:
                return

    def settle_pending(self, usecs: int) -> None:
        """Let time pass up to `usecs` while a pending call has not returned."""
        while self.pending and self.now_usecs() < usecs:
            got = self.target.next_frame(self.port, self.live_time(self.next_stop(usecs)))
            if got is not None:
                self.keep_frame(*got)
            self.poll_pending()

    def next_stop(self, usecs: int) -> int:
        """How far to let time run toward `usecs` before retrying a pending call: on
        virtual time straight to its end time, then (and on real time throughout) in
        steps of PENDING_POLL_SECONDS, so that when it returns is seen to a step."""
        if self.pending is None:
            return usecs
        now = self.now_usecs()
        if self.virtual and now < self.pending.end_usecs:
            return min(usecs, self.pending.end_usecs)
        return min(usecs, now + round(PENDING_POLL_SECONDS * 1e6))

    def measure_lateness(self) -> None:
        """An inbound packet, system call or command starts at its time: on real time,
        how late the runner is measures the machine's load (SchedulingDelay)."""
        if not self.virtual:
            self.delay.observe((self.now_usecs() - self.event_usecs) / 1e6)

    def check_time(self, what: str, actual_usecs: int, start: int, end: int | None, since: int) -> str | None:
        """verify_time(): None if `actual_usecs` is within tolerance of [start, end]."""
        tolerance = self.tolerance(start, since)
        last = start if end is None else end
        if start - tolerance <= actual_usecs <= last + tolerance:
            return None
        if end is None:
            return (f"timing error: expected {what} at {start / 1e6:.6f} sec but happened at "
                    f"{actual_usecs / 1e6:.6f} sec; tolerance {tolerance / 1e6:.6f} sec")
        return (f"timing error: expected {what} in time range {start / 1e6:.6f}~{end / 1e6:.6f} sec "
                f"but happened at {actual_usecs / 1e6:.6f} sec; tolerance {tolerance / 1e6:.6f} sec")

    # frames ---------------------------------------------------------------------------------
    def keep_frame(self, frame: bytes, departed: float) -> None:
        try:
            segment = WireSegment.parse(frame)
        except MalformedFrame as err:
            raise self.failure(f"the DUT sent a malformed frame on {self.port.name}: {err}", self.event) from None
        usecs = round((departed - self.start) * 1e6)
        if segment is None or segment.src != self.addr.local or segment.dst != self.addr.remote:
            self.ignored.append(f"{usecs / 1e6:.6f} {frame[:64].hex()}" if segment is None
                                else f"{usecs / 1e6:.6f} {segment.src} > {segment.dst} {segment.describe()}")
            return
        self.outbound.append((segment, departed))

    def next_outbound(self, deadline_usecs: int) -> tuple[WireSegment, int] | None:
        """The next segment that left for the remote, waiting until `deadline_usecs`."""
        while not self.outbound:
            got = self.target.next_frame(self.port, self.live_time(deadline_usecs))
            if got is None:
                return None
            self.keep_frame(*got)
            self.poll_pending()
        segment, departed = self.outbound.pop(0)
        return segment, round((departed - self.start) * 1e6)

    def inject(self, segment: WireSegment) -> None:
        """The frame into the DUT port; what left before stays queued for next_frame().
        On real time, how late it went in (it left within send()) is load measured."""
        self.target.send(self.port, segment.frame(self.port.peer_mac, self.port.mac), flush=False)
        if not self.virtual:
            self.delay.observe((self.now_usecs() - self.event_usecs) / 1e6)

    # connections --------------------------------------------------------------------------------
    def connection_for(self, segment: Segment) -> Connection:
        """The connection a script segment belongs to, created on first use."""
        if segment.src_port is not None:
            remote, local = (segment.src_port, segment.dst_port) if segment.inbound \
                else (segment.dst_port, segment.src_port)
            return self.connections.setdefault(remote, Connection(remote, local))
        if self.default_remote_port is None:
            if not segment.inbound:
                raise self.failure("an outbound segment, but the script has no connection yet: nothing was "
                                   "sent to the DUT and no connect() was made", self.event)
            self.default_remote_port = DEFAULT_REMOTE_PORT
            self.connections.setdefault(DEFAULT_REMOTE_PORT,
                                        Connection(DEFAULT_REMOTE_PORT, self.config.bind_port))
        return self.connections[self.default_remote_port]

    def connection_of(self, live: WireSegment) -> Connection | None:
        conn = self.connections.get(live.dport)
        if conn is None:
            return None
        if conn.local_port is None and live.is_syn and not live.has_ack:
            conn.local_port = live.sport
        return conn if conn.local_port == live.sport else None

    # inbound ----------------------------------------------------------------------------------------
    def send_inbound(self, segment: Segment) -> None:
        """map_inbound_packet(), then the frame into the DUT port."""
        conn = self.connection_for(segment)
        syn = "S" in segment.flags
        if syn and not conn.remote_isn_known:
            conn.remote_isn, conn.remote_isn_known = segment.seq, True
        seq = (segment.seq + conn.remote_offset(syn)) & 0xFFFFFFFF
        ack_offset = conn.local_offset(syn)
        ack = ((segment.ack or 0) + ack_offset) & 0xFFFFFFFF if "." in segment.flags else 0
        options = tuple(self.map_inbound_option(option, conn, ack_offset, "." in segment.flags)
                        for option in segment.options)
        local_port = conn.local_port if conn.local_port is not None else self.config.bind_port
        live = WireSegment(self.addr.remote, self.addr.local, conn.remote_port, local_port, seq, ack,
                           flag_bits(segment.flags), segment.window, options, bytes(segment.payload))
        self.inject(live)

    def map_inbound_option(self, option: TcpOption, conn: Connection, ack_offset: int, has_ack: bool) -> TcpOption:
        if option.kind == TCPOPT_SACK:
            return TcpOption(TCPOPT_SACK, blocks=tuple(((left + ack_offset) & 0xFFFFFFFF,
                                                        (right + ack_offset) & 0xFFFFFFFF)
                                                       for left, right in option.blocks))
        if option.kind == TCPOPT_TIMESTAMP and has_ack:
            if option.ecr not in conn.ts_vals:
                raise self.failure(f"unable to infer live TS ecr for script TS ecr {option.ecr}; no matching "
                                   "or preceding outbound TS val", self.event)
            return TcpOption(TCPOPT_TIMESTAMP, val=option.val, ecr=conn.ts_vals[option.ecr])
        return option

    # outbound ---------------------------------------------------------------------------------------
    def expect_outbound(self, event: Event, script: Segment) -> None:
        """do_outbound_script_packet() and verify_outbound_live_packet()."""
        conn = self.connection_for(script)
        kind = event.time.kind
        if kind is TimeKind.ANY:
            deadline = self.now_usecs() + ANY_TIME_WAIT_USECS
        else:
            last = self.event_end_usecs if self.event_end_usecs is not None else self.event_usecs
            deadline = last + self.tolerance(last, self.last_usecs) + SNIFF_GRACE_USECS
        looked_from = self.now_usecs()
        pieces: list[tuple[WireSegment, int]] = []
        got_payload = 0
        while not pieces or got_payload < script.payload:
            got = self.next_outbound(deadline)
            if got is None:
                if pieces:
                    break
                raise self.failure(self.nothing_left(deadline), event)
            live, departed = got
            owner = self.connection_of(live)
            if owner is not conn:
                raise self.failure("packet is not for expected socket: "
                                   f"{live.describe()} at {departed / 1e6:.6f} sec", event, script=script)
            if pieces:
                self.check_fragment(pieces[-1][0], live, script, departed)
            pieces.append((live, departed))
            got_payload += len(live.payload)
        if got_payload != script.payload:
            raise self.failure(f"live packet payload: expected {script.payload} bytes vs actual {got_payload} bytes",
                               event, script=script, actual=[(self.to_script(conn, p, script), d) for p, d in pieces])
        departed = pieces[-1][1]
        live = pieces[0][0] if len(pieces) == 1 else self.aggregate([p for p, _ in pieces])
        self.learn_isn(conn, script, live)
        actual = self.to_script(conn, live, script)
        problem = self.compare(script, actual)
        if problem is None and kind is not TimeKind.ANY:
            problem = self.check_time("outbound packet", departed, self.event_usecs, self.event_end_usecs,
                                      self.last_usecs)
        if problem:
            raise self.failure(problem, event, script=script, actual=[(actual, departed)])
        # packetdrill's sniffer returns as the packet arrives: the next relative time
        # counts from then, not from when this target's reader handed it over
        self.done_usecs = max(departed, looked_from)

    def nothing_left(self, deadline: int) -> str:
        return (f"expected outbound packet at {self.event_usecs / 1e6:.6f} sec, but nothing left "
                f"{self.port.name} for {self.addr.remote} by {deadline / 1e6:.6f} sec")

    def check_fragment(self, previous: WireSegment, live: WireSegment, script: Segment, departed: int) -> None:
        """verify_packet_fragments(): a continuation of the previous segment."""
        same = previous.flags & ~(FLAG_BITS["P"] | FLAG_BITS["F"]) == live.flags & ~(FLAG_BITS["P"] | FLAG_BITS["F"])
        if not same or live.seq != (previous.seq + len(previous.payload)) & 0xFFFFFFFF or live.ack != previous.ack \
                or live.window != previous.window:
            raise self.failure(f"the segment after {previous.describe()} is not its continuation: "
                               f"{live.describe()} at {departed / 1e6:.6f} sec", self.event, script=script)

    @staticmethod
    def aggregate(pieces: list[WireSegment]) -> WireSegment:
        """aggregate_packets(): the last segment's headers, the first's seq and CWR."""
        first, last = pieces[0], pieces[-1]
        cwr = FLAG_BITS["W"]
        flags = (last.flags & ~cwr) | (first.flags & cwr)
        return WireSegment(last.src, last.dst, last.sport, last.dport, first.seq, last.ack, flags, last.window,
                           last.options, b"".join(p.payload for p in pieces))

    def learn_isn(self, conn: Connection, script: Segment, live: WireSegment) -> None:
        """The DUT's ISN, from its first SYN or SYN-ACK (handle_connect_for_script_packet(),
        do_outbound_script_packet()); a later one reads in the same numbering."""
        if "S" in script.flags and live.is_syn and not conn.local_isn_known:
            conn.script_local_isn, conn.live_local_isn, conn.local_isn_known = script.seq, live.seq, True

    def to_script(self, conn: Connection, live: WireSegment, script: Segment) -> WireSegment:
        """map_outbound_live_packet() and tcp_convert_seq_number(): live values into
        script space."""
        syn = live.is_syn
        seq = (live.seq - conn.local_offset(syn)) & 0xFFFFFFFF
        ack_offset = conn.remote_offset(syn)
        ack = (live.ack - ack_offset) & 0xFFFFFFFF if live.has_ack else live.ack
        options = []
        for option in live.options:
            if option.kind == TCPOPT_SACK:
                option = TcpOption(TCPOPT_SACK, blocks=tuple(((l - ack_offset) & 0xFFFFFFFF, (r - ack_offset)
                                                              & 0xFFFFFFFF) for l, r in option.blocks))
            elif option.kind == TCPOPT_TIMESTAMP:
                option = self.map_ts_val(conn, option, script)
            options.append(option)
        return WireSegment(live.src, live.dst, live.sport, live.dport, seq, ack, live.flags, live.window,
                           tuple(options), live.payload)

    def map_ts_val(self, conn: Connection, option: TcpOption, script: Segment) -> TcpOption:
        scripted = next((o for o in script.options or () if o.kind == TCPOPT_TIMESTAMP), None)
        if scripted is None:
            return option
        conn.ts_vals[scripted.val] = option.val
        if conn.first_ts is None:
            conn.first_ts = (scripted.val, option.val)
        first_script, first_live = conn.first_ts
        return TcpOption(TCPOPT_TIMESTAMP, val=(first_script + option.val - first_live) & 0xFFFFFFFF, ecr=option.ecr)

    def compare(self, script: Segment, actual: WireSegment) -> str | None:
        """verify_tcp() and verify_outbound_live_tcp_options(), in packetdrill's words."""
        expected_flags = flag_bits(script.flags)
        for letter, name in FLAG_NAMES.items():
            bit = FLAG_BITS[letter]
            if expected_flags & bit != actual.flags & bit:
                return f"live packet field tcp_{name}: expected: {int(bool(expected_flags & bit))} " \
                       f"vs actual: {int(bool(actual.flags & bit))}"
        unwritable = actual.flags & ~flag_bits(FLAG_ORDER)
        if unwritable:
            return f"live packet has flag bits the script cannot write set: {unwritable:#x} (URG or AE)"
        checks = [("tcp_seq", script.seq, actual.seq),
                  ("tcp_ack_seq", script.ack or 0, actual.ack)]
        if script.window is not None:
            checks.append(("tcp_window", script.window, actual.window))
        for name, expected, got in checks:
            if expected != got:
                return f"live packet field {name}: expected: {expected} vs actual: {got}"
        if script.options is not None:
            problem = self.compare_options(script.options, actual.options)
            if problem:
                return problem
        if any(actual.payload):
            return "incorrect outbound data payload"
        return None

    def compare_options(self, expected: tuple[TcpOption, ...], actual: tuple[TcpOption, ...]) -> str | None:
        if [o.kind for o in expected] != [o.kind for o in actual]:
            return "bad outbound TCP options"
        for want, got in zip(expected, actual):
            if want.kind == TCPOPT_TIMESTAMP:
                if want.ecr != got.ecr:
                    return f"bad value in outbound TCP option TS ecr: expected: {want.ecr} actual: {got.ecr}"
                tick = self.config.tcp_ts_tick_usecs
                tolerance = self.tolerance(self.event_usecs, 0)
                if tick and abs(((got.val - want.val + 2**31) % 2**32) - 2**31) * tick > tolerance:
                    return f"bad outbound TCP timestamp value, tolerance {tolerance}: expected: {want} actual: {got}"
            elif want != got:
                return f"bad value in outbound TCP option (kind={want.kind}): expected: {want} actual: {got}"
        return None

    # system calls -------------------------------------------------------------------------------
    def run_syscall(self, event: Event, call: Syscall) -> None:
        if call.end_usecs is not None and self.pending:
            raise self.failure(f"a blocking {call.name}() while the blocking call of line "
                               f"{self.pending.event.line} is in progress", event)
        attempt, blocking = getattr(self, f"sys_{call.name}")(call)
        try:
            result, error = attempt(), 0
        except BlockingIOError as err:
            if blocking:
                if call.end_usecs is not None:
                    self.pending = PendingCall(event, self.event_usecs, self.event_end_usecs, attempt)
                    return
                result, error = self.wait_briefly(attempt, event, call)
            else:
                result, error = -1, err.errno
        except OSError as err:
            result, error = -1, err.errno
        self.check_result(event, call, result, error)
        if call.end_usecs is not None:
            problem = self.check_time("system call return", self.now_usecs(), self.event_end_usecs, None,
                                      self.event_usecs)
            if problem:
                raise self.failure(problem, event)

    def wait_briefly(self, attempt: Callable[[], int], event: Event, call: Syscall) -> tuple[int, int]:
        """A call on a blocking descriptor written without `...`: packetdrill expects it
        to return at once; on real time the DUT may still be taking in the segment
        just sent, so it may take the tolerance."""
        deadline = self.now_usecs() + self.tolerance(self.event_usecs, self.last_usecs)
        while True:
            if self.now_usecs() >= deadline:
                raise self.failure(f"{call.name}() blocks, but the script expects it to return at once "
                                   f"(write a blocking call as `+0...T {call.name}(...)`)", event)
            self.advance_to(min(deadline, self.now_usecs() + round(PENDING_POLL_SECONDS * 1e6)))
            try:
                return attempt(), 0
            except BlockingIOError:
                continue
            except OSError as err:
                return -1, err.errno

    def poll_pending(self) -> None:
        pending = self.pending
        if pending is None:
            return
        try:
            result, error = pending.attempt(), 0
        except BlockingIOError:
            return
        except OSError as err:
            result, error = -1, err.errno
        self.pending = None
        call = pending.event.action
        self.check_result(pending.event, call, result, error)
        problem = self.check_time("system call return", self.now_usecs(), pending.end_usecs, None,
                                  pending.start_usecs)
        if problem:
            raise self.failure(problem, pending.event)

    def check_result(self, event: Event, call: Syscall, result: int, error: int) -> None:
        """end_syscall()"""
        expected = self.integer(call.result, event)
        new_fd = call.name in ("socket", "accept")
        if result != expected and not (new_fd and expected >= 0 <= result):
            detail = f" with errno {error} ({os.strerror(error)})" if error else ""
            raise self.failure(f"Expected result {expected} but got {result}{detail}", event)
        if call.errno is not None and error != ERRNOS[call.errno]:
            raise self.failure(f"Expected errno {ERRNOS[call.errno]} ({os.strerror(ERRNOS[call.errno])}) but got "
                               f"{error} ({os.strerror(error) if error else 'none'})", event)

    def integer(self, expr: Expr, event: Event) -> int:
        if expr.kind == "int":
            return expr.value
        if expr.kind == "or":
            value = 0
            for item in expr.items:
                value |= self.integer(item, event)
            return value
        if expr.kind == "list" and len(expr.items) == 1:
            return self.integer(expr.items[0], event)
        raise ScriptSyntaxError(self.script.path, event.line, "expected an integer", expr.text)

    def fd(self, expr: Expr) -> Descriptor:
        number = self.integer(expr, self.event)
        if number not in self.fds:
            raise ScriptSyntaxError(self.script.path, self.event.line, "no such file descriptor in the script",
                                    expr.text)
        return self.fds[number]

    def need_ellipsis(self, call: Syscall, *indexes: int) -> None:
        for index in indexes:
            if call.args[index].kind != "ellipsis":
                raise ScriptSyntaxError(self.script.path, self.event.line,
                                        f"the harness takes {call.name}()'s addresses from the script's "
                                        "addressing: write `...`", call.args[index].text)

    def new_fd(self, call: Syscall, sock: StreamSocket, nonblocking: bool = False) -> int:
        number = self.integer(call.result, self.event)
        self.fds[number] = Descriptor(sock, nonblocking)
        return number

    # each system call returns (attempt, blocks) ----------------------------------------------------
    def sys_socket(self, call: Syscall):
        kind = self.integer(call.args[1], self.event)
        if kind & ~CONSTANTS["SOCK_NONBLOCK"] != CONSTANTS["SOCK_STREAM"] or \
                self.integer(call.args[2], self.event) not in (0, CONSTANTS["IPPROTO_TCP"]):
            raise ScriptSyntaxError(self.script.path, self.event.line, "the harness runs TCP sockets only",
                                    call.args[1].text)
        return (lambda: self.new_fd(call, self.target.socket("tcp"),
                                    bool(kind & CONSTANTS["SOCK_NONBLOCK"]))), False

    def sys_bind(self, call: Syscall):
        self.need_ellipsis(call, 1, 2)
        sock = self.fd(call.args[0]).sock
        return (lambda: sock.bind((self.addr.local, self.config.bind_port)) or 0), False

    def sys_listen(self, call: Syscall):
        sock = self.fd(call.args[0]).sock
        backlog = self.integer(call.args[1], self.event)
        return (lambda: sock.listen(backlog) or 0), False

    def sys_accept(self, call: Syscall):
        self.need_ellipsis(call, 1, 2)
        descriptor = self.fd(call.args[0])
        return (lambda: self.new_fd(call, descriptor.sock.accept()[0])), not descriptor.nonblocking

    def sys_connect(self, call: Syscall):
        self.need_ellipsis(call, 1, 2)
        descriptor = self.fd(call.args[0])
        sock = descriptor.sock
        remote = self.connections.setdefault(self.config.connect_port, Connection(self.config.connect_port, None))
        self.default_remote_port = remote.remote_port
        if descriptor.nonblocking:
            return (lambda: sock.connect((self.addr.remote, self.config.connect_port)) or 0), False
        started = []

        def attempt() -> int:
            """connect(), then until the handshake ends: wait("connected") raises its error."""
            if not started:
                started.append(True)
                sock.connect((self.addr.remote, self.config.connect_port))
                return 0
            if not sock.wait("connected", 0):
                raise BlockingIOError(errno_module.EINPROGRESS, "connecting")
            return 0
        return attempt, True

    def sys_write(self, call: Syscall):
        return self.sending(call, self.integer(call.args[2], self.event))

    def sys_send(self, call: Syscall):
        return self.sending(call, self.integer(call.args[2], self.event), self.integer(call.args[3], self.event))

    def sending(self, call: Syscall, length: int, flags: int = 0):
        """write()/send() of `length` zero bytes: a blocking one returns once all are queued."""
        descriptor = self.fd(call.args[0])
        nonblocking = descriptor.nonblocking or bool(flags & CONSTANTS["MSG_DONTWAIT"])
        self.need_no_flags(call, flags & ~CONSTANTS["MSG_DONTWAIT"])
        sent = [0]

        def attempt() -> int:
            while sent[0] < length:
                try:
                    sent[0] += descriptor.sock.send(bytes(length - sent[0]))
                except BlockingIOError:
                    if sent[0] and nonblocking:
                        return sent[0]
                    raise
                if nonblocking:
                    break
            return sent[0]
        return attempt, not nonblocking

    def sys_read(self, call: Syscall):
        return self.receiving(call, self.integer(call.args[2], self.event))

    def sys_recv(self, call: Syscall):
        return self.receiving(call, self.integer(call.args[2], self.event), self.integer(call.args[3], self.event))

    def receiving(self, call: Syscall, length: int, flags: int = 0):
        descriptor = self.fd(call.args[0])
        self.need_no_flags(call, flags & ~CONSTANTS["MSG_DONTWAIT"])
        return (lambda: len(descriptor.sock.recv(length))), \
            not (descriptor.nonblocking or flags & CONSTANTS["MSG_DONTWAIT"])

    def need_no_flags(self, call: Syscall, flags: int) -> None:
        if flags:
            raise ScriptSyntaxError(self.script.path, self.event.line,
                                    f"{call.name}() flags other than MSG_DONTWAIT are not supported by the harness",
                                    call.args[-1].text)

    def sys_shutdown(self, call: Syscall):
        sock = self.fd(call.args[0]).sock
        how = self.integer(call.args[1], self.event)
        return (lambda: sock.shutdown(how) or 0), False

    def sys_close(self, call: Syscall):
        number = self.integer(call.args[0], self.event)
        descriptor = self.fd(call.args[0])

        def attempt() -> int:
            descriptor.sock.close()
            del self.fds[number]
            return 0
        return attempt, False

    def sys_setsockopt(self, call: Syscall):
        sock = self.fd(call.args[0]).sock
        level, name = self.integer(call.args[1], self.event), self.integer(call.args[2], self.event)
        value_expr = call.args[3]
        if value_expr.kind == "linger":
            value = struct.pack("ii", *(item.value for item in value_expr.items))
        elif value_expr.kind == "string":
            value = value_expr.value.encode()
        else:
            value = self.integer(value_expr, self.event)
        return (lambda: sock.setsockopt(level, name, value) or 0), False

    def sys_getsockopt(self, call: Syscall):
        sock = self.fd(call.args[0]).sock
        level, name = self.integer(call.args[1], self.event), self.integer(call.args[2], self.event)
        wanted = call.args[3]
        event = self.event

        def attempt() -> int:
            value = sock.getsockopt(level, name)
            if wanted.kind != "ellipsis" and value != self.integer(wanted, event):
                raise self.failure(f"Bad getsockopt optval: expected: {self.integer(wanted, event)} "
                                   f"actual: {value}", event)
            return 0
        return attempt, False

    def sys_fcntl(self, call: Syscall):
        descriptor = self.fd(call.args[0])
        command = self.integer(call.args[1], self.event)
        if command == CONSTANTS["F_GETFL"] and len(call.args) == 2:
            return (lambda: CONSTANTS["O_RDWR"] | (O_NONBLOCK if descriptor.nonblocking else 0)), False
        if command == CONSTANTS["F_SETFL"] and len(call.args) == 3:
            flags = self.integer(call.args[2], self.event)

            def attempt() -> int:
                descriptor.nonblocking = bool(flags & O_NONBLOCK)
                return 0
            return attempt, False
        raise ScriptSyntaxError(self.script.path, self.event.line,
                                "the harness runs fcntl(fd, F_GETFL) and fcntl(fd, F_SETFL, flags)", call.args[1].text)

    # shell ---------------------------------------------------------------------------------------
    def shell(self, command: Command, line: int) -> None:
        """A `command` line: `;`-separated sysctl, ip, nft and tc commands, each through
        target.sh(); anything else is an error naming the program."""
        for part in command.text.split(";"):
            argv = shlex.split(part)
            if not argv:
                continue
            if argv[0] not in SHELL_PROGRAMS:
                raise ScriptSyntaxError(self.script.path, line, "a command line runs only "
                                        + ", ".join(SHELL_PROGRAMS) + " (through target.sh)", argv[0])
            self.target.sh(argv)

    # failures ------------------------------------------------------------------------------------
    def failure(self, message: str, event: Event | None, script: Segment | None = None,
                actual: list[tuple[WireSegment, int]] | None = None) -> ScriptFailure:
        line = event.line if event else 0
        text = [f"{self.script.path}:{line}: error handling {event.kind if event else 'script'}: {message}"]
        if script is not None:
            text.append(f"script packet: {self.event_usecs / 1e6:9.6f} {script.describe()}")
        for segment, usecs in actual or ():
            text.append(f"actual packet: {usecs / 1e6:9.6f} {segment.describe()}")
        waiting = [f"  {usecs / 1e6:.6f} {segment.describe()}" for segment, usecs in
                   ((s, round((d - self.start) * 1e6)) for s, d in self.outbound)]
        if waiting:
            text.append("left the DUT and not yet matched (live values):")
            text += waiting
        if self.ignored:
            text.append(f"other frames that left {self.port.name}:")
            text += [f"  {line}" for line in self.ignored]
        text.append(f"journeys on {self.target.name}:")
        text.append(render_all(self.target.journeys()))
        return ScriptFailure("\n".join(text))
