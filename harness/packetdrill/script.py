"""A parsed packetdrill script: options, a header, timed events.

The shapes follow packetdrill's script.h/packet.h: an event has a time (absolute,
`+` relative, `*` any, or a `~` range) and an action, a TCP segment in (`<`) or out
(`>`), a system call, or a shell command. Times are microseconds, as packetdrill keeps
them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from harness.target import PORTS


class TimeKind(Enum):
    ABSOLUTE = "absolute"
    RELATIVE = "relative"              # `+t`: after the previous event
    ANY = "any"                        # `*`: outbound segments only
    ABSOLUTE_RANGE = "absolute range"  # `t1~t2`: outbound segments only
    RELATIVE_RANGE = "relative range"  # `+t1~+t2`: outbound segments only


@dataclass(frozen=True)
class EventTime:
    kind: TimeKind
    usecs: int = 0
    end_usecs: int | None = None   # the end of a range


# TCP option kinds (include/net/tcp.h TCPOPT_*)
TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS, TCPOPT_WINDOW, TCPOPT_SACK_PERM, TCPOPT_SACK, TCPOPT_TIMESTAMP = \
    0, 1, 2, 3, 4, 5, 8


@dataclass(frozen=True)
class TcpOption:
    """One TCP option: `mss 1460` (MSS, value), `wscale 7` (WINDOW, value),
    `sackOK`, `sack 1:1001 2001:3001` (SACK, blocks), `TS val 100 ecr 0`
    (TIMESTAMP, val, ecr), `nop`, `eol`."""

    kind: int
    value: int | None = None
    blocks: tuple[tuple[int, int], ...] = ()
    val: int | None = None
    ecr: int | None = None

    def __str__(self) -> str:
        if self.kind == TCPOPT_MSS:
            return f"mss {self.value}"
        if self.kind == TCPOPT_WINDOW:
            return f"wscale {self.value}"
        if self.kind == TCPOPT_SACK_PERM:
            return "sackOK"
        if self.kind == TCPOPT_SACK:
            return "sack " + " ".join(f"{left}:{right}" for left, right in self.blocks)
        if self.kind == TCPOPT_TIMESTAMP:
            return f"TS val {self.val} ecr {self.ecr}"
        return {TCPOPT_NOP: "nop", TCPOPT_EOL: "eol"}.get(self.kind, f"kind {self.kind}")

    @property
    def length(self) -> int:
        """Bytes on the wire."""
        return {TCPOPT_EOL: 1, TCPOPT_NOP: 1, TCPOPT_MSS: 4, TCPOPT_WINDOW: 3, TCPOPT_SACK_PERM: 2,
                TCPOPT_TIMESTAMP: 10}.get(self.kind, 2 + 8 * len(self.blocks))


@dataclass(frozen=True)
class Segment:
    """A TCP segment of the script. `flags` as written ("S.", "P.", "F.", "R", ...);
    ports None: the connection's own; `window` None: not checked (outbound only);
    `options` None: `<...>`, not checked (outbound only)."""

    inbound: bool
    flags: str
    seq: int
    payload: int
    ack: int | None
    window: int | None
    options: tuple[TcpOption, ...] | None
    src_port: int | None = None
    dst_port: int | None = None

    def describe(self) -> str:
        """The segment as the script writes it."""
        ports = f"{self.src_port}>{self.dst_port} " if self.src_port is not None else ""
        text = f"{'<' if self.inbound else '>'} {ports}{self.flags or '-'} " \
               f"{self.seq}:{self.seq + self.payload}({self.payload})"
        if self.ack is not None:
            text += f" ack {self.ack}"
        if self.window is not None:
            text += f" win {self.window}"
        if self.options is None:
            text += " <...>"
        elif self.options:
            text += " <" + ",".join(str(option) for option in self.options) + ">"
        return text


@dataclass(frozen=True)
class Expr:
    """A system call argument or result: kind "ellipsis", "int", "word" (a symbol
    such as SOCK_STREAM or an errno name), "string", "or" (`A|B`, operands in
    `items`), "list" (`[1]`), "linger" (`{onoff=1, linger=0}`, items onoff, linger)."""

    kind: str
    value: int | str | None = None
    items: tuple["Expr", ...] = ()
    text: str = ""    # as written, for messages


@dataclass(frozen=True)
class Syscall:
    name: str
    args: tuple[Expr, ...]
    result: Expr
    errno: str | None = None
    end_usecs: int | None = None   # `...t`: a blocking call that returns at t


@dataclass(frozen=True)
class Command:
    """A `shell` line."""

    text: str


@dataclass(frozen=True)
class Event:
    line: int
    time: EventTime
    action: Segment | Syscall | Command

    @property
    def kind(self) -> str:
        if isinstance(self.action, Segment):
            return "inbound packet" if self.action.inbound else "outbound packet"
        return "system call" if isinstance(self.action, Syscall) else "command"


@dataclass(frozen=True)
class Addressing:
    """Where the script's connection lives: the DUT's `port`, the DUT's address on it
    (the script's local side) and the remote host behind the tester port. The default
    is the harness's plan for the port; a header comment
    `// packet-journey: port=p1 local=10.0.1.1 remote=10.0.1.2` changes it."""

    port: str = "p0"
    local: str = ""
    remote: str = ""

    def __post_init__(self) -> None:
        index = next(p.index for p in PORTS if p.name == self.port)
        object.__setattr__(self, "local", self.local or f"10.0.{index}.1")
        object.__setattr__(self, "remote", self.remote or f"10.0.{index}.2")


@dataclass(frozen=True)
class Config:
    """packetdrill's command-line options a script may set at its top (`--name=value`),
    with packetdrill's defaults (config.c set_default_config())."""

    tolerance_usecs: int = 4000
    tolerance_percent: float = 12.5
    bind_port: int = 8080
    connect_port: int = 8080
    tcp_ts_tick_usecs: int = 0     # 0: outbound TS val is not checked, as in packetdrill


@dataclass
class Script:
    path: str
    config: Config
    addressing: Addressing
    events: list[Event] = field(default_factory=list)
    init_command: Command | None = None
    cleanup_command: Command | None = None
