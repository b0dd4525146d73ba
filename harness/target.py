"""The one interface suites speak: a DUT with ports wired to tester ports.

Suites never import a backend. `Target` implements the PTF-style frame I/O once
(per-port receive queues, flush before send, masks, failure messages with the
journeys); a backend supplies configuration (`sh`), raw tester-port I/O
(`_transmit`, `_receive`), applications (`socket`), observations (`journeys`,
`drops`, and with capability "bpf_events" the records eBPF programs send
through ring buffers and perf event arrays: `bpf_events(map_id)`) and the
passing of time (`wait`).
"""
from __future__ import annotations

import shlex
import time
from socket import AF_INET, AF_INET6
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

from harness.journey import CtEntry, Drop, Journey, RuleCounter, render_all
from harness.traffic import Profile, Result, TrafficCaps

if TYPE_CHECKING:
    from scapy.packet import Packet

    from harness.packets import Mask

    FrameLike = bytes | bytearray | Packet

NPORTS = 3


@dataclass(frozen=True)
class Port:
    """DUT port `name` (p0..), wired to tester port `peer` (t0..). MACs are fixed
    and identical on every target, so expected frames can be written literally."""

    index: int
    name: str
    mac: str
    peer: str
    peer_mac: str


PORTS = tuple(
    Port(i, f"p{i}", f"02:00:00:00:00:{i + 1:02x}", f"t{i}", f"02:00:00:00:01:{i + 1:02x}")
    for i in range(NPORTS)
)


# veth leaves locally generated UDP/TCP with CHECKSUM_PARTIAL (no NIC ever fills
# it in), so the tester would capture half-done checksums: checksum in software
# (`ethtool -K <port> tx off` on every target; it also takes TSO away, so GSO
# packets leave segmented).
DUT_PORT_OFFLOADS = ("tx", "off")

# The DUT's sysctls, set to known values on every target at start: a new netns
# copies IPv4 conf/all and conf/default from the host, so nothing is inherited.
# IPv6 is off so no router solicitations, DAD or MLD frames reach the tester ports;
# ping sockets are open to every group so `socket("icmp")` works as root and not.
DUT_SYSCTLS = {
    "net.ipv4.ip_forward": "0",
    "net.ipv4.conf.all.forwarding": "0",
    "net.ipv4.conf.default.forwarding": "0",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv4.conf.all.accept_local": "0",
    "net.ipv4.conf.default.accept_local": "0",
    "net.ipv4.conf.all.route_localnet": "0",
    "net.ipv4.conf.default.route_localnet": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.default.accept_source_route": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.all.log_martians": "0",
    "net.ipv4.conf.default.log_martians": "0",
    "net.ipv4.ip_default_ttl": "64",
    "net.ipv4.ip_no_pmtu_disc": "0",
    "net.ipv4.icmp_ratelimit": "1000",
    "net.ipv4.icmp_ratemask": "6168",
    "net.ipv4.icmp_msgs_per_sec": "1000",
    "net.ipv4.icmp_msgs_burst": "50",
    "net.ipv4.icmp_echo_ignore_all": "0",
    "net.ipv4.icmp_echo_ignore_broadcasts": "1",
    "net.ipv4.ipfrag_time": "30",
    "net.ipv4.ping_group_range": "0\t2147483647",
    # Linux's defaults (6.16+) for a machine with enough memory (tcp_init()): a new netns
    # copies the host's, and the largest decides the window scale a socket offers
    "net.ipv4.tcp_rmem": "4096\t131072\t33554432",
    "net.ipv4.tcp_wmem": "4096\t16384\t4194304",
    # a new netns sizes it from the host's memory (tcp_sk_init(): max(128, ehash entries / 128))
    "net.ipv4.tcp_max_syn_backlog": "2048",
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
    # a DUT netns inherits the host's default (bbr on the project's machines, not modelled) and may only
    # switch to tcp_allowed_congestion_control ("reno bbr" there): reno runs the same on both targets
    "net.ipv4.tcp_congestion_control": "reno",
}


SOCKET_FAMILIES = (AF_INET, AF_INET6)


def check_family(family: int) -> None:
    if family not in SOCKET_FAMILIES:
        raise TargetError(f"socket family {family!r} is not supported; use socket.AF_INET or socket.AF_INET6")


class TargetError(Exception):
    """A target cannot do what was asked; the message says why and what to do."""


class TargetUnavailable(TargetError):
    """This machine cannot provide the target (not root, a tool missing); the
    message says what is missing and how to install it. Tests skip with it."""


class CommandError(TargetError):
    """A configuration command failed (on the DUT) or is not supported (mock)."""

    def __init__(self, argv: Sequence[str], message: str, returncode: int = 1):
        self.argv = list(argv)
        self.returncode = returncode
        super().__init__(f"`{shlex.join(self.argv)}` failed: {message}")


# What `sh("cat FILE...")` may read on every target: the kernel's counters and settings.
READABLE_FILES = ("/proc/net/", "/proc/sys/")


def check_readable(argv: Sequence[str]) -> None:
    """`cat` reads files under READABLE_FILES only, with no options: a
    CommandError naming the first path outside them."""
    for path in argv[1:]:
        if not path.startswith(READABLE_FILES) or "/.." in path:
            raise CommandError(argv, f"`cat` reads only {' and '.join(p + '*' for p in READABLE_FILES)} "
                                     f"on a target, not {path!r}")


# A veth (like a NIC) refuses a frame longer than the port's MTU + this many bytes.
MAX_L2_OVERHEAD = 18


def frame_too_long(port: "Port", length: int, mtu: int) -> TargetError:
    """The test sent a frame the DUT port cannot receive: a mistake in the test."""
    return TargetError(f"{port.name} cannot receive a {length}-byte frame: its MTU is {mtu} "
                       f"(veth refuses frames over MTU + {MAX_L2_OVERHEAD} bytes, as a NIC drops "
                       f"oversized frames); raise it with `ip link set {port.name} mtu N` or send "
                       "a smaller frame")


# The shortest frame a tester port sends: AF_PACKET's packet_snd() refuses one shorter
# than the device's min_header_len (dev_validate_header()), ETH_HLEN for Ethernet (ether_setup()).
MIN_FRAME_LEN = 14


def wire_frames(port: "Port", frames: object) -> list[bytes]:
    """send()'s `frames` as the bytes to put on the wire: one frame (bytes, bytearray
    or a scapy Packet) or an iterable of them. Anything else is a TypeError naming
    its type (a str is no frame, and is not taken apart into characters); a frame
    shorter than an Ethernet header is a TargetError, as a tester port refuses it."""
    packet_type = _packets().Packet
    frame_types = (bytes, bytearray, packet_type)
    expected = "bytes, a bytearray or a scapy Packet, or a list of them"
    if isinstance(frames, frame_types):
        frames = [frames]
    elif isinstance(frames, (str, memoryview)) or not isinstance(frames, Iterable):
        raise TypeError(f"send({port.name!r}, ...) takes {expected}, not {type(frames).__name__}: {frames!r:.60}")
    out = []
    for index, frame in enumerate(frames):
        if not isinstance(frame, frame_types):
            raise TypeError(f"send({port.name!r}, ...) takes {expected}; frame {index} is "
                            f"{type(frame).__name__}: {frame!r:.60}")
        data = bytes(frame)
        if len(data) < MIN_FRAME_LEN:
            raise TargetError(f"frame {index} for {port.name} is {len(data)} bytes ({data.hex(' ')}), shorter than "
                              f"the {MIN_FRAME_LEN}-byte Ethernet header: a tester port cannot send it (AF_PACKET "
                              "refuses it with EINVAL, dev_validate_header()); runts of 14 bytes or more are sent")
        out.append(data)
    return out


class ExpectError(AssertionError):
    """An expected frame did not arrive, or an unexpected one did."""


def _packets() -> ModuleType:
    """harness.packets (scapy), imported when frames are first handled: the DUT agent
    (drivers/agent.py) imports this module on a DUT that has the standard library only."""
    import harness.packets
    return harness.packets


class AppSocket(ABC):
    """An application's socket on the DUT (UDP, or an ICMP ping socket)."""

    @abstractmethod
    def sendto(self, data: bytes, addr: tuple[str, int]) -> None: ...

    @abstractmethod
    def recv(self) -> tuple[bytes, tuple[str, int]]:
        """Next queued datagram and its source (waiting up to the target's positive
        timeout); TargetError if none arrives."""

    @abstractmethod
    def recv_all(self) -> list[tuple[bytes, tuple[str, int]]]:
        """Every datagram queued right now, in order, without waiting for more."""

    @abstractmethod
    def drops(self) -> int:
        """Datagrams the kernel dropped for this socket (/proc/net/udp `drops`)."""

    @abstractmethod
    def close(self) -> None: ...


class TcpState(IntEnum):
    """A TCP socket's state, with the kernel's names and values (include/net/tcp_states.h)."""

    TCP_ESTABLISHED = 1
    TCP_SYN_SENT = 2
    TCP_SYN_RECV = 3
    TCP_FIN_WAIT1 = 4
    TCP_FIN_WAIT2 = 5
    TCP_TIME_WAIT = 6
    TCP_CLOSE = 7
    TCP_CLOSE_WAIT = 8
    TCP_LAST_ACK = 9
    TCP_LISTEN = 10
    TCP_CLOSING = 11
    TCP_NEW_SYN_RECV = 12


@dataclass(frozen=True)
class TcpInfo:
    """A TCP socket as `ss -tin` shows it, from getsockopt(TCP_INFO) (struct tcp_info,
    filled by tcp_get_info() in net/ipv4/tcp.c) and the queue ioctls (tcp_ioctl()).

    - recv_q, send_q: on a listener the accept queue and its limit (tcp_get_info()
      aliases tcpi_unacked to sk_ack_backlog and tcpi_sacked to sk_max_ack_backlog,
      as ss's Recv-Q/Send-Q show them); else SIOCINQ, tcp_inq(): rcv_nxt - copied_seq,
      less the FIN once received, 0 in SYN_SENT/SYN_RECV; and SIOCOUTQ:
      write_seq - snd_una (a FIN queued counts 1), 0 in SYN_SENT/SYN_RECV.
    - cwnd, ssthresh (segments; TCP_INFINITE_SSTHRESH 0x7fffffff until the first
      loss), rtt_us, rttvar_us (srtt >> 3 and mdev >> 2, in us), rto_ms (icsk_rto),
      mss (tcpi_snd_mss: mss_cache), rcv_wnd (rcv_wnd, bytes) and snd_wnd (the peer's
      window, scaled, bytes);
    - retrans (retrans_out), total_retrans, lost (lost_out), sacked (sacked_out),
      unacked (packets_out), delivered (segments), bytes_acked, bytes_received.
    A listener's tcp_get_info() returns after state, cwnd (TCP_INIT_CWND, from
    tcp_init_sock()) and unacked/sacked (its accept queue and limit, as recv_q/send_q):
    the rest is 0.
    """

    state: TcpState
    recv_q: int
    send_q: int
    cwnd: int
    ssthresh: int
    rtt_us: int
    rttvar_us: int
    rto_ms: int
    mss: int
    rcv_wnd: int
    snd_wnd: int
    retrans: int
    total_retrans: int
    lost: int
    sacked: int
    unacked: int
    delivered: int
    bytes_acked: int
    bytes_received: int


# What StreamSocket.wait() waits for.
SOCKET_EVENTS = ("readable", "writable", "connected")


class StreamSocket(ABC):
    """A TCP socket of an application on the DUT. Non-blocking: a call that would
    block raises BlockingIOError (EAGAIN, or EINPROGRESS from connect()) and never
    hangs; the kernel's errors are OSError subclasses with the kernel's errno
    (ConnectionRefusedError, ConnectionResetError, BrokenPipeError, ...) on every
    target. The target closes every socket of a test (accepted ones too) when the
    test ends."""

    @abstractmethod
    def bind(self, addr: tuple[str, int]) -> None: ...

    @abstractmethod
    def listen(self, backlog: int) -> None: ...

    @abstractmethod
    def accept(self) -> tuple[StreamSocket, tuple[str, int]]:
        """The next connection of the accept queue and its peer; BlockingIOError if none."""

    @abstractmethod
    def connect(self, addr: tuple[str, int]) -> None:
        """Start the handshake: BlockingIOError(EINPROGRESS) while it runs (then
        wait("connected")); the kernel's error if it cannot start."""

    @abstractmethod
    def send(self, data: bytes) -> int:
        """Bytes taken into the send buffer (fewer than given when it fills up)."""

    @abstractmethod
    def recv(self, bufsize: int) -> bytes:
        """Up to `bufsize` bytes in order; b"" at EOF, BlockingIOError if none yet."""

    @abstractmethod
    def shutdown(self, how: int) -> None:
        """socket.SHUT_RD, SHUT_WR or SHUT_RDWR."""

    @abstractmethod
    def close(self) -> None:
        """close(2); safe twice (the target closes what a test left open)."""

    @abstractmethod
    def setsockopt(self, level: int, name: int, value: int | bytes) -> None:
        """SO_RCVBUF, SO_SNDBUF, SO_REUSEADDR, SO_LINGER (bytes: struct linger),
        TCP_NODELAY, TCP_MAXSEG, ... with the `socket` module's constants."""

    @abstractmethod
    def getsockopt(self, level: int, name: int) -> int:
        """SO_ERROR (read and cleared), SO_RCVBUF, SO_SNDBUF, TCP_MAXSEG, ..."""

    @abstractmethod
    def wait(self, event: str, timeout: float | None = None) -> bool:
        """Wait until the socket is "readable" (data, EOF, an error or a connection to
        accept), "writable" (room in the send buffer) or "connected" (the handshake
        completed; a failed one raises its error, as SO_ERROR reports it): True, or
        False after `timeout` seconds of the target's time (None: the target's
        positive timeout) without it. On the mock the wait advances virtual time."""

    @abstractmethod
    def info(self) -> TcpInfo:
        """The socket's state and queues now (TcpInfo)."""


# Each CPU's ring of a perf event array reader, on every target: 2^3 data pages.
PERF_RING_PAGES = 8


class EventReader(ABC):
    """The records an eBPF program sends user space through one map, read as
    libbpf's ring_buffer__consume() and perf_buffer__consume() read them.

    - ring buffer (BPF_MAP_TYPE_RINGBUF): each record as the program submitted
      it (bpf_ringbuf_submit/output; discarded ones are skipped). A full ring
      makes bpf_ringbuf_reserve() return NULL: that record never exists, and
      `lost` stays 0 (the kernel does not count it).
    - perf event array (BPF_MAP_TYPE_PERF_EVENT_ARRAY): opening the reader
      puts a perf event with a ring of PERF_RING_PAGES pages into the slot of
      each CPU; before that bpf_perf_event_output() fails with -ENOENT and
      stores nothing. Each record is the sample's raw data: what the program
      passed, then the packet bytes it asked for with BPF_F_CTXLEN_MASK, then
      padding up to 4 + length a multiple of 8, whose bytes are unspecified
      (perf_output_sample() skips them: stale ring bytes on the real kernel,
      zeros on the mock), so compare the first bytes. `lost`
      counts samples a full ring refused, as PERF_RECORD_LOST reports them:
      with the next sample that fits.
    """

    kind: str  # "ringbuf" or "perf_event_array"
    lost: int = 0

    @abstractmethod
    def read(self) -> list[bytes]:
        """Every record produced since the last read, in the order produced; removed."""

    @abstractmethod
    def close(self) -> None:
        """Release the reader (a perf event array's slots are emptied); safe twice."""


class Departed(NamedTuple):
    """Frames that left one DUT port, in order, and the time each left it on the
    target's clock (Target.now())."""

    frames: list[bytes]
    times: list[float]


class Target(ABC):
    name: str
    capabilities: frozenset[str]
    positive_timeout: float = 0.0
    negative_timeout: float = 0.0

    def __init__(self) -> None:
        self.ports = PORTS
        self._queues: dict[str, list[bytes]] = {p.name: [] for p in PORTS}
        self._departures: dict[str, list[float]] = {p.name: [] for p in PORTS}  # when each queued frame left
        self.frame_log: list[tuple[str, str, bytes]] = []  # (direction, DUT port, frame), for the pcap
        self.traffic_results: list[Result] = []  # every traffic() run's, for the report's maps of its paths

    # configuration -----------------------------------------------------------
    @abstractmethod
    def sh(self, cmd: str | Sequence[str], stdin: str | None = None) -> str:
        """Run one operator command on the DUT (`ip`, `sysctl -w`, ...) and return
        its output; CommandError if it fails or is not supported."""

    @staticmethod
    def argv(cmd: str | Sequence[str]) -> list[str]:
        """sh()'s command as its words; a TypeError naming anything that is no command.
        A line whose quotes do not close, and a word with a NUL byte (which execve(2)
        cannot pass: the program would see the word cut there), are TargetErrors."""
        if isinstance(cmd, str):
            try:
                words = shlex.split(cmd)
            except ValueError as exc:
                raise TargetError(f"cannot split {cmd!r} into words: {exc}") from None
        elif isinstance(cmd, (list, tuple)) and all(isinstance(word, str) for word in cmd):
            words = list(cmd)
        else:
            raise TypeError(f"sh() takes a command line (str) or its words (a list of str), not "
                            f"{type(cmd).__name__}: {cmd!r:.60}")
        for index, word in enumerate(words):
            if "\0" in word:
                raise TargetError(f"word {index} of {words!r:.200} has a NUL byte: execve(2) cannot pass it "
                                  "to a program")
        return words

    # frames ------------------------------------------------------------------
    def port(self, name: str | Port) -> Port:
        if isinstance(name, Port):
            return name
        for port in self.ports:
            if name in (port.name, port.peer):
                return port
        raise TargetError(f"no port {name!r}; this target has {[p.name for p in self.ports]}")

    def send(self, port: str | Port, frames: FrameLike | Iterable[FrameLike], flush: bool = True) -> None:
        """Flush every tester queue, then put `frames` on the wire into DUT `port`.
        `flush=False` keeps what left the DUT before, for expect() or next_frame()
        (a timed script reads every frame the DUT sends)."""
        port = self.port(port)
        frames = wire_frames(port, frames)
        self._collect(timeout=0.0)
        if flush:
            self._forget_queued()
        self.frame_log += [("sent into", port.name, f) for f in frames]
        self._transmit(port, frames)

    def transmit(self, port: str | Port, frames: list[bytes]) -> None:
        """Put raw frames on the wire into DUT `port` and nothing else: no flush,
        no frame log. For load loops (benchmarks); tests use send()."""
        self._transmit(self.port(port), frames)

    def expect(self, port: str | Port, frame: FrameLike | Mask) -> bytes:
        """Wait for a frame matching `frame` (a Mask hides explained fields) to leave
        DUT `port`; remove it from that port's queue and return it."""
        port = self.port(port)
        mask = _packets().as_mask(frame)
        queue = self._queues[port.name]
        # other frames may come first, in bursts of their own
        self._collect_until(lambda: any(mask.matches(got) for got in queue))
        for i, got in enumerate(queue):
            if mask.matches(got):
                del self._departures[port.name][i]
                return queue.pop(i)
        raise ExpectError(self._explain_missing(port, mask))

    def expect_nothing(self, ports: Iterable[str | Port] | None = None) -> None:
        """Fail if any frame leaves the given DUT ports (all by default)."""
        names = [self.port(p).name for p in (ports if ports is not None else self.ports)]
        self._collect_quiet()
        stray = [(n, f) for n in names for f in self._queues[n]]
        if stray:
            describe = _packets().describe
            lines = [f"  {name}: {describe(f)}" for name, f in stray]
            raise ExpectError("expected no frames, but the DUT sent:\n" + "\n".join(lines)
                              + "\n\njourneys on " + self.name + ":\n" + render_all(self.journeys()))

    def collect(self, port: str | Port) -> list[bytes]:
        """Every frame that left DUT `port` (waiting the negative timeout), removed."""
        name = self.port(port).name
        self._collect_quiet()
        frames = list(self._queues[name])
        self._queues[name].clear()
        self._departures[name].clear()
        return frames

    def collect_all(self) -> dict[str, list[bytes]]:
        """Every frame that left each DUT port, by port name, removed: collect() of
        every port with one negative timeout for all of them, not one each."""
        self._collect_quiet()
        left = {}
        for port in self.ports:
            left[port.name] = list(self._queues[port.name])
            self._queues[port.name].clear()
            self._departures[port.name].clear()
        return left

    def frames_left(self, port: str | Port, count: int, expected: str) -> list[bytes]:
        """The frames that left DUT `port`, removed, which must be `count` of them:
        waits until that many arrived (up to the positive timeout), then the negative
        timeout for any more. Else an ExpectError naming the port, what was expected,
        what left instead, and the journeys."""
        port = self.port(port)
        queue = self._queues[port.name]
        self._collect_until(lambda: len(queue) >= count)
        frames = self.collect(port)
        if len(frames) == count:
            return frames
        lines = [f"expected {count} frame{'' if count == 1 else 's'} on {port.name} ({self.name}): {expected}",
                 f"{len(frames)} left {port.name}{':' if frames else ''}"]
        describe = _packets().describe
        lines += [f"  {describe(frame)}" for frame in frames]
        lines += self._uncollected_note(port)
        lines += [f"journeys on {self.name}:", render_all(self.journeys())]
        raise ExpectError("\n".join(lines))

    def frame_left(self, port: str | Port, expected: str) -> bytes:
        """The one frame that left DUT `port` (frames_left())."""
        return self.frames_left(port, 1, expected)[0]

    def _collect_until(self, done: Callable[[], bool]) -> None:
        """Collect until `done()` holds or the positive timeout ends: the wait ends
        on the event, only a failing expectation waits it out."""
        self._collect(0.0)
        deadline = time.monotonic() + self.positive_timeout
        while not done() and (remaining := deadline - time.monotonic()) > 0:
            self._collect(remaining)

    def _collect(self, timeout: float) -> None:
        self._queue_departed(self._receive(timeout))

    def _collect_quiet(self) -> None:
        """Collect until nothing more will leave: the negative timeout, unless the
        target can tell sooner that the DUT is done (NetnsTarget on one CPU)."""
        self._collect(self.negative_timeout)

    def _queue_departed(self, departed: dict[str, Departed]) -> None:
        for name, (frames, times) in departed.items():
            self._queues[name].extend(frames)
            self._departures[name].extend(times)
            self.frame_log += [("left", name, f) for f in frames]

    def _forget_queued(self) -> None:
        for name in self._queues:
            self._queues[name].clear()
            self._departures[name].clear()

    def _explain_missing(self, port: Port, mask: Mask) -> str:
        got = self._queues[port.name]
        describe = _packets().describe
        lines = [f"expected on {port.name} ({self.name}):", f"  {describe(mask.expected)}"]
        lines += [f"  masked {reason}" for reason in mask.reasons]
        if got:
            lines.append(f"arrived on {port.name} instead:")
            lines += [f"  {describe(f)}\n    differs: {mask.differences(f)}" for f in got]
        else:
            lines.append(f"nothing arrived on {port.name}")
        lines += self._uncollected_note(port)
        others = [(n, f) for n, q in self._queues.items() if n != port.name for f in q]
        lines += [f"  (on {n}: {describe(f)})" for n, f in others]
        lines.append(f"journeys on {self.name}:")
        lines.append(render_all(self.journeys()))
        return "\n".join(lines)

    def uncollected_dropped(self, port: str | Port) -> int:
        """Frames that left DUT `port` and were dropped before anyone collected
        them, because the port already held as many uncollected frames as the
        target keeps (the mock: --journey-limit)."""
        return 0

    def _uncollected_note(self, port: Port) -> list[str]:
        dropped = self.uncollected_dropped(port)
        if not dropped:
            return []
        return [f"({dropped} later frames that left {port.name} were dropped uncollected: the port already held "
                "as many frames nobody collected as the target keeps; raise --journey-limit to keep them)"]

    @abstractmethod
    def _transmit(self, port: Port, frames: list[bytes]) -> None:
        """Put frames on the tester side of `port`'s wire, in order."""

    @abstractmethod
    def _receive(self, timeout: float) -> dict[str, Departed]:
        """Frames that reached tester ports since the last call and when each left
        the DUT, by DUT port name; waits up to `timeout` for the first one."""

    # time --------------------------------------------------------------------
    @abstractmethod
    def now(self) -> float:
        """The target's clock, in seconds: virtual on the mock, monotonic on a DUT."""

    def next_frame(self, port: str | Port, until: float) -> tuple[bytes, float] | None:
        """The next frame that leaves DUT `port` (removed from its queue) and the time
        it left on now()'s clock, waiting until now() reaches `until` for one; None
        if none left by then. Frames of other ports that leave meanwhile stay queued."""
        name = self.port(port).name
        queue = self._queues[name]
        self._collect(0.0)
        while not queue and (remaining := until - self.now()) > 0:
            self._await_frames(remaining)
        if not queue:
            return None
        return queue.pop(0), self._departures[name].pop(0)

    def _await_frames(self, seconds: float) -> None:
        """Let up to `seconds` pass, collecting what leaves the DUT (next_frame())."""
        self._collect(seconds)

    # applications, observation, time ----------------------------------------
    @abstractmethod
    def socket(self, proto: str, bind: tuple[str, int] | None = None, rcvbuf: int | None = None,
               sndbuf: int | None = None, family: int = AF_INET) -> AppSocket | StreamSocket:
        """Open an application socket on the DUT: proto "udp" or "icmp" (a ping
        socket), bound to `bind` (which they need), an AppSocket; or "tcp", a
        StreamSocket, bound if `bind` is given. `rcvbuf`/`sndbuf` are set with
        SO_RCVBUF/SO_SNDBUF before the bind (the kernel doubles them). `family`:
        socket.AF_INET or AF_INET6 (an IPv6 socket's peers are (address, port)
        too: flow info and scope id are left out)."""

    @abstractmethod
    def journeys(self) -> list[Journey]:
        """Journeys of the packets of this test, as far as this target observes them
        (the mock's: a Journeys, whose `paths` count the packets past its journey limit)."""

    @abstractmethod
    def drops(self) -> list[Drop]:
        """Drops of this test's packets, with the kernel's drop reasons."""

    def counters(self) -> list[RuleCounter]:
        """Every nft rule with a counter, in listing order."""
        raise TargetError(f"target {self.name} does not report nft counters yet")

    def conntrack(self) -> list[CtEntry]:
        """The DUT's conntrack table."""
        raise TargetError(f"target {self.name} does not report conntrack entries yet")

    def conntrack_create(self, entries: Iterable[CtEntry]) -> None:
        """Create conntrack entries as `conntrack -I` does (TCP/UDP: proto, state,
        tuples, status "assured"/"seen-reply", mark, timeout), all in one batch:
        enough to fill a table to nf_conntrack_max in seconds."""
        raise TargetError(f"target {self.name} cannot create conntrack entries")

    def bpf_events(self, map_id: int) -> EventReader:
        """A reader of the records eBPF programs send through ring buffer or perf
        event array map `map_id` (its id as bpftool shows it:
        `bpfmaps.map_of(target, port, name).id`); closed with the target.
        Open a perf event array's reader before the traffic (see EventReader)."""
        raise TargetError(f"target {self.name} cannot read eBPF events")

    # traffic at rate --------------------------------------------------------
    def traffic_caps(self) -> TrafficCaps:
        """What this target's generator can offer and observe (harness/traffic.py)."""
        raise TargetError(f"target {self.name} does not generate traffic at rate")

    def traffic(self, profile: Profile, duration: float | None = None) -> Result:
        """Run `profile` and return what was sent, received and lost (harness/traffic.py).

        Continuous streams run for `duration` seconds, which they require
        (profile.check_duration() raises naming them); bursts run until sent.
        A trial ends only after the DUT has drained: packets still in rings,
        backlogs and qdiscs when the streams stop are counted where they end
        up, so loss is what the DUT lost, not what was in flight (the flaw of
        ndr_bench, which counts at the stop). `Result.duration` is the time the
        streams ran, without the drain. Each stream's frames are
        stream_frames() in order; a stream with latency carries the payload tag
        (tag_frame()). A rate the target cannot offer is a TargetError naming
        traffic_caps().shortfall()."""
        raise TargetError(f"target {self.name} does not generate traffic at rate")

    @abstractmethod
    def wait(self, seconds: float) -> None:
        """Let time pass on the DUT (virtual time on the mock)."""

    def reset(self) -> None:
        """Start a new phase of a test (each test gets a fresh target): forget the
        frames that left the DUT and were not expected or collected, and every
        observation so far (journeys, drops, XDP and TC hops). The DUT's state
        stays: configuration, conntrack entries, counters, sockets, maps; so does
        `frame_log`, whose pcap covers the whole test."""
        self._collect(0.0)
        self._forget_queued()

    def close(self) -> None:
        """Release everything the target holds; safe to call twice."""
