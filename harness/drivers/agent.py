"""The DUT agent: a DutSide (drivers/dutside.py) served on a lab DUT over a byte
channel, its stdin and stdout, which the harness reaches through SSH.

On the DUT: `<python> -I -c AGENT_BOOTSTRAP`, its code coming first on its stdin
(agent_zip(): the harness package as a zip, built in memory), or `python -m
harness.drivers.agent`. The bootstrap writes the zip into a directory of its own in
the DUT's temporary directory (the agent's session directory) and imports from it;
the agent's reaper (reaper.py, started first thing) removes that directory, and the
files the harness put there (eBPF objects a command names, `PUT_FILE`), once the
agent has exited, however it exits: nothing of the harness stays on the DUT. (Only
a kill of the agent in the moment between writing the zip and starting its reaper
would leave the directory; an agent that cannot import removes it.)
It observes the namespace it runs in (`HereLab`), whose ports the harness has renamed
p0..p2 before starting it. Its imports are the standard library's only: Debian's
/usr/bin/python3 without any site package (`python3 -I`) runs it; it needs Python
3.11 or later (enum.StrEnum), and on an older one says so on stderr and exits 1.

Protocol: each message is a 4-byte big-endian length and a pickle. The harness asks
`(handle, method, args)`, handle 0 being the DutSide and others the application
sockets (UDP and ping sockets, TCP sockets and the ones their accept() returns)
and event readers it returned (which come back as `Remote(handle, kind,
attributes)`); the agent answers `(OK, value)` or `(FAILED, kind, details)`, which
`RemoteDutSide` raises as the CommandError, TargetError, TargetUnavailable or OSError
the DutSide raised, with its message. Both sides unpickle with an allow-list of the
harness's data types (SafeUnpickler): nothing else is ever constructed, and no
function is called.

The agent serves one DutSide at a time: `OPEN` (its arguments) makes one, on the
agent's own namespace or (isolate) on a fresh namespace it moves the DUT's ports into
(portsnetns.py), `close` closes it, and the next test opens another (each test gets a
fresh target); the
drop tracer, bpftrace, stays up between them as it does in a harness process. The
agent exits when its stdin closes (the SSH connection dropped, or the harness closed
it), on SIGTERM and SIGHUP, closing the DutSide first: the nftrace tables and the
application sockets go, bpftrace exits (it follows the agent's pid).

`RemoteDutSide(channel)` is the harness's proxy with DutSide's methods; `channel`
has `write(data)` and `readexactly(n)` (PipeChannel for a local process's pipes,
ProcessChannel for a process with such stdin and stdout streams, e.g. over SSH).
"""
from __future__ import annotations

import functools
import io
import os
import pickle
import signal
import socket
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Protocol

import harness
from harness import dropreason, journey, target, traffic
from harness.drivers import dutside, load_counters
from harness.drivers.herelab import HereLab
from harness.drivers.portsnetns import PortsNetns
from harness.drivers.reaper import reaper
from harness.target import (
    AppSocket,
    CommandError,
    EventReader,
    Port,
    StreamSocket,
    TargetError,
    TargetUnavailable,
    TcpInfo,
)

LENGTH_BYTES = 4  # each message's length, big-endian, before it
PICKLE_PROTOCOL = 5
OK, FAILED = "ok", "failed"
DUT_SIDE = 0  # the handle of the DutSide itself
OPEN = "open"
# What the harness may call on the agent's objects, by kind (attributes are read).
CALLABLE = {
    "dut": frozenset({
        "before_command", "after_command", "port_mtu", "before_send", "socket", "journeys", "drops",
        "counters", "conntrack", "conntrack_create", "bpf_events", "begin_load_run", "proc_net_dev",
        "qdisc_backlog", "end_load_run", "reset", "close",
    }),
    "socket": frozenset({"sendto", "recv", "recv_all", "drops", "close"}),
    "stream_socket": frozenset({"bind", "listen", "accept", "connect", "send", "recv", "shutdown", "close",
                                "setsockopt", "getsockopt", "wait", "info"}),
    "event_reader": frozenset({"read", "close", "lost"}),
}
PUT_FILE = "put_file"
AGENT_SESSION_PREFIX = "packet-journey-agent-"
# Run by `python -I -c`: the agent's code from stdin (agent_code()) into a session
# directory (module doc), then the agent, serving the rest of stdin.
AGENT_BOOTSTRAP = f"""\
import os, sys, tempfile
if sys.version_info < (3, 11):
    sys.exit(f"the packet-journey DUT agent needs Python 3.11 or later, not {{sys.version.split()[0]}}")
size = int.from_bytes(sys.stdin.buffer.read({LENGTH_BYTES}), "big")
code = sys.stdin.buffer.read(size)
if not size or len(code) != size:
    sys.exit("the packet-journey DUT agent's code did not arrive whole on its stdin")
session = tempfile.mkdtemp(prefix="{AGENT_SESSION_PREFIX}")
with open(os.path.join(session, "harness.zip"), "wb") as f:
    f.write(code)
sys.path.insert(0, os.path.join(session, "harness.zip"))
try:
    from harness.drivers.agent import main
except BaseException:
    import shutil
    shutil.rmtree(session)
    raise
raise SystemExit(main(session))
"""
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: the archive depends on content only


class Remote(NamedTuple):
    """An object the agent holds for the harness: an application socket or an event
    reader, and the attributes the proxy needs up front."""

    handle: int
    kind: str
    attributes: dict[str, Any]


# The only classes either side builds from a message: the harness's data types.
ALLOWED_CLASSES = {
    (cls.__module__, cls.__qualname__): cls for cls in (
        journey.Journey, journey.Hop, journey.Drop, journey.Stage, journey.RuleCounter, journey.CtEntry,
        dropreason.DropReason, traffic.Loss, load_counters.Snapshot, dutside.LoadRunObservation,
        target.Port, target.TcpInfo, target.TcpState, Remote, set, frozenset, bytearray,
    )
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data and ALLOWED_CLASSES, refusing every other global."""

    def find_class(self, module: str, name: str) -> type:
        cls = ALLOWED_CLASSES.get((module, name))
        if cls is None:
            raise pickle.UnpicklingError(f"a DUT agent message holds {module}.{name}, which is not one of "
                                         "the harness's data types (drivers/agent.py ALLOWED_CLASSES)")
        return cls


class EnumByValue(pickle.Pickler):
    """Pickles an enum member as its class called with its value: Python 3.11 pickles
    some by name through builtins.getattr, which SafeUnpickler must refuse."""

    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, Enum):
            return type(obj), (obj.value,)
        return NotImplemented


def encode(message: object) -> bytes:
    buffer = io.BytesIO()
    EnumByValue(buffer, PICKLE_PROTOCOL).dump(message)
    data = buffer.getvalue()
    return len(data).to_bytes(LENGTH_BYTES, "big") + data


def decode(data: bytes) -> object:
    return SafeUnpickler(io.BytesIO(data)).load()


# the agent --------------------------------------------------------------------------

class Agent:
    """Serves a DutSide at a time: its handle table and the dispatch of requests."""

    def __init__(self, session: str) -> None:
        """`session`: the directory files the harness puts on the DUT go to."""
        self.session = session
        self.objects: dict[int, tuple[str, object]] = {}
        self.lab: HereLab | None = None

    def answer(self, request: bytes) -> bytes:
        """The encoded reply to an encoded request."""
        try:
            handle, method, args = decode(request)
            return encode((OK, self._call(handle, method, args)))
        except CommandError as exc:
            return encode((FAILED, "CommandError", (exc.argv, str(exc), exc.returncode)))
        except TargetUnavailable as exc:
            return encode((FAILED, "TargetUnavailable", str(exc)))
        except TargetError as exc:
            return encode((FAILED, "TargetError", str(exc)))
        except OSError as exc:  # an application socket's: the kernel's errno, as the application sees it
            return encode((FAILED, "OSError", (exc.errno, exc.strerror)))
        except Exception as exc:  # a request it cannot read, or a fault of its own: the harness shows where
            return encode((FAILED, "AgentFault", "".join(traceback.format_exception(exc))))

    def _call(self, handle: int, method: str, args: tuple) -> object:
        if handle == DUT_SIDE and method == OPEN:
            return self._open(*args)
        if handle == DUT_SIDE and method == "close":
            return self.close()
        if handle == DUT_SIDE and method == PUT_FILE:
            return self._put_file(*args)
        if handle not in self.objects:
            raise TargetError(f"the DUT agent holds no object {handle} (closed, or never opened)")
        kind, obj = self.objects[handle]
        if method not in CALLABLE[kind]:
            raise TargetError(f"the DUT agent does not serve {kind}.{method}")
        value = getattr(obj, method)
        return self._remote(value(*args) if callable(value) else value)

    def _open(self, nftrace: bool, isolate: bool = False) -> tuple[list[str], str | None]:
        """A DutSide on this namespace, or with `isolate` on a fresh namespace holding
        the ports (PortsNetns); its capabilities and that namespace's name."""
        if self.objects:
            raise TargetError("the DUT agent's DutSide is open already: close it first")
        self.lab = PortsNetns() if isolate else HereLab()
        try:
            self.objects[DUT_SIDE] = ("dut", dutside.DutSide(self.lab, nftrace))
        except BaseException:
            self.lab.close()
            raise
        return sorted(self.objects[DUT_SIDE][1].capabilities), self.lab.dut if isolate else None

    def _put_file(self, name: str, data: bytes) -> str:
        """`data` as file `name` (a plain name) in the session directory; its path."""
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise TargetError(f"the DUT agent puts files under plain names, not {name!r}")
        path = os.path.join(self.session, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def _remote(self, result: object) -> object:
        """Sockets and event readers stay here: the harness gets their handles (of
        an accepted socket too, which comes with its peer's address)."""
        if isinstance(result, AppSocket):
            return self._hold("socket", result, {})
        if isinstance(result, StreamSocket):
            return self._hold("stream_socket", result, {})
        if isinstance(result, tuple) and result and isinstance(result[0], StreamSocket):
            return (self._remote(result[0]), *result[1:])
        if isinstance(result, EventReader):
            return self._hold("event_reader", result, {"kind": result.kind})
        return result

    def _hold(self, kind: str, obj: object, attributes: dict[str, Any]) -> Remote:
        handle = max(self.objects) + 1
        self.objects[handle] = (kind, obj)
        return Remote(handle, kind, attributes)

    def close(self) -> None:
        """Close the DutSide (which closes its sockets and readers) and its lab, if open."""
        try:
            if DUT_SIDE in self.objects:
                self.objects[DUT_SIDE][1].close()
        finally:
            self.objects.clear()
            if self.lab is not None:
                self.lab.close()
                self.lab = None


def read_message(stream: BinaryIO) -> bytes | None:
    """The next message, undecoded; None at the end of the stream (the harness went away)."""
    header = _read_exactly(stream, LENGTH_BYTES)
    if header is None:
        return None
    return _read_exactly(stream, int.from_bytes(header, "big"))


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def main(session: str | None = None) -> int:
    """Serve requests from stdin on stdout until stdin closes. `session`: the
    bootstrap's session directory (module doc); else one is made."""
    session = session or tempfile.mkdtemp(prefix=AGENT_SESSION_PREFIX)
    reaper().path(session)  # removed once we have exited, however we exit
    requests = sys.stdin.buffer
    # the protocol owns stdout: anything else printing goes to stderr
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    agent = Agent(session)
    try:
        while (request := read_message(requests)) is not None:
            replies.write(agent.answer(request))
            replies.flush()
    finally:
        agent.close()
    return 0


# the harness's side --------------------------------------------------------------------

class Channel(Protocol):
    def write(self, data: bytes) -> None: ...
    def readexactly(self, n: int) -> bytes: ...


class PipeChannel:
    """A local process's stdin and stdout pipes (the agent in a namespace of this host)."""

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO) -> None:
        self.stdin, self.stdout = stdin, stdout

    def write(self, data: bytes) -> None:
        self.stdin.write(data)
        self.stdin.flush()

    def readexactly(self, n: int) -> bytes:
        data = _read_exactly(self.stdout, n)
        if data is None:
            raise EOFError("the DUT agent closed its stdout")
        return data


class ProcessChannel:
    """A process whose stdin has write() and drain() and whose stdout has
    readexactly(), as synchronous methods (a process started over SSH)."""

    def __init__(self, process) -> None:
        self.process = process

    def write(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.drain()

    def readexactly(self, n: int) -> bytes:
        return self.process.stdout.readexactly(n)


class RemoteDutSide:
    """A DutSide in a DUT agent at the other end of `channel`, with DutSide's methods;
    `where` names the DUT in errors. Closing it leaves the agent running, ready for
    the next RemoteDutSide on the same channel."""

    def __init__(self, channel: Channel, nftrace: bool = True, where: str = "the DUT",
                 isolate: bool = False) -> None:
        """`isolate`: the DutSide gets a fresh namespace holding the DUT's ports
        (portsnetns.py), named `netns`; else (None) the agent's own namespace."""
        self.channel = channel
        self.where = where
        self.closed = False
        self._sends_counted = False
        capabilities, self.netns = self._call(DUT_SIDE, OPEN, nftrace, isolate)
        self.capabilities = frozenset(capabilities)

    def _call(self, handle: int, method: str, *args: object) -> Any:
        if self.closed:
            raise TargetError(f"this DutSide of the DUT agent on {self.where} is closed")
        try:
            self.channel.write(encode((handle, method, args)))
            length = int.from_bytes(self.channel.readexactly(LENGTH_BYTES), "big")
            reply = decode(self.channel.readexactly(length))
        except (EOFError, OSError) as exc:
            self.closed = True
            raise TargetUnavailable(f"lost the DUT agent on {self.where} during {method}(): "
                                    f"{exc or type(exc).__name__}") from exc
        except pickle.UnpicklingError as exc:
            raise TargetError(f"the DUT agent on {self.where} answered {method}() with what the harness "
                              f"does not accept: {exc}") from exc
        if reply[0] == OK:
            return reply[1]
        raise _remote_exception(reply[1], reply[2], self.where)

    # configuration -----------------------------------------------------------
    def before_command(self, argv: list[str]) -> list[str]:
        return self._call(DUT_SIDE, "before_command", argv)

    def after_command(self, argv: list[str], output: str | None) -> str | None:
        self._sends_counted |= output is not None and dutside.attaches_bpf(argv)
        return self._call(DUT_SIDE, "after_command", argv, output)

    def port_mtu(self, port: str) -> int:
        return self._call(DUT_SIDE, "port_mtu", port)

    # frames, applications, observation ---------------------------------------
    def before_send(self, port: Port, frames: list[bytes]) -> None:
        """Until the test attached XDP or TC the DutSide counts no send: no round trip."""
        if self._sends_counted:
            self._call(DUT_SIDE, "before_send", port, frames)

    def socket(self, proto: str, bind: tuple[str, int] | None, rcvbuf: int | None, sndbuf: int | None,
               timeout: float, family: int = socket.AF_INET) -> AppSocket | StreamSocket:
        remote = self._call(DUT_SIDE, "socket", proto, bind, rcvbuf, sndbuf, timeout, int(family))  # a plain int pickles
        if remote.kind == "stream_socket":
            return RemoteStreamSocket(self, remote)
        return RemoteAppSocket(self, remote)

    def journeys(self, frames_out: list[bytes], drops: list[journey.Drop] | None) -> list[journey.Journey]:
        return self._call(DUT_SIDE, "journeys", frames_out, drops)

    def drops(self) -> list[journey.Drop]:
        return self._call(DUT_SIDE, "drops")

    def counters(self) -> list[journey.RuleCounter]:
        return self._call(DUT_SIDE, "counters")

    def conntrack(self) -> list[journey.CtEntry]:
        return self._call(DUT_SIDE, "conntrack")

    def conntrack_create(self, entries: Iterable[journey.CtEntry]) -> None:
        self._call(DUT_SIDE, "conntrack_create", list(entries))

    def bpf_events(self, map_id: int) -> EventReader:
        return RemoteEventReader(self, self._call(DUT_SIDE, "bpf_events", map_id))

    # traffic at rate -----------------------------------------------------------
    def begin_load_run(self) -> None:
        self._call(DUT_SIDE, "begin_load_run")

    def proc_net_dev(self) -> str:
        return self._call(DUT_SIDE, "proc_net_dev")

    def qdisc_backlog(self) -> int:
        return self._call(DUT_SIDE, "qdisc_backlog")

    def end_load_run(self) -> dutside.LoadRunObservation:
        return self._call(DUT_SIDE, "end_load_run")

    # phases --------------------------------------------------------------------
    def reset(self) -> None:
        self._call(DUT_SIDE, "reset")

    def put_file(self, name: str, data: bytes) -> str:
        """`data` as file `name` in the agent's session directory on the DUT (removed
        when the agent exits); its path there."""
        return self._call(DUT_SIDE, PUT_FILE, name, data)

    def close(self) -> None:
        """Close the DutSide on the DUT; safe twice. The channel is the caller's to
        close (the agent exits then)."""
        if not self.closed:
            self._call(DUT_SIDE, "close")
            self.closed = True


class RemoteAppSocket(AppSocket):
    """An application socket the agent holds on the DUT."""

    def __init__(self, dut: RemoteDutSide, remote: Remote) -> None:
        self.dut, self.handle = dut, remote.handle

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.dut._call(self.handle, "sendto", data, addr)

    def recv(self) -> tuple[bytes, tuple[str, int]]:
        return self.dut._call(self.handle, "recv")

    def recv_all(self) -> list[tuple[bytes, tuple[str, int]]]:
        return self.dut._call(self.handle, "recv_all")

    def drops(self) -> int:
        return self.dut._call(self.handle, "drops")

    def close(self) -> None:
        if not self.dut.closed:
            self.dut._call(self.handle, "close")


class RemoteStreamSocket(StreamSocket):
    """A TCP socket the agent holds on the DUT; the kernel's errors come back as the
    OSError of their errno (BlockingIOError, ConnectionRefusedError, ...)."""

    def __init__(self, dut: RemoteDutSide, remote: Remote) -> None:
        self.dut, self.handle = dut, remote.handle

    def bind(self, addr: tuple[str, int]) -> None:
        self.dut._call(self.handle, "bind", addr)

    def listen(self, backlog: int) -> None:
        self.dut._call(self.handle, "listen", backlog)

    def accept(self) -> tuple[StreamSocket, tuple[str, int]]:
        remote, peer = self.dut._call(self.handle, "accept")
        return RemoteStreamSocket(self.dut, remote), peer

    def connect(self, addr: tuple[str, int]) -> None:
        self.dut._call(self.handle, "connect", addr)

    def send(self, data: bytes) -> int:
        return self.dut._call(self.handle, "send", data)

    def recv(self, bufsize: int) -> bytes:
        return self.dut._call(self.handle, "recv", bufsize)

    def shutdown(self, how: int) -> None:
        self.dut._call(self.handle, "shutdown", how)

    def close(self) -> None:
        if not self.dut.closed:
            self.dut._call(self.handle, "close")

    def setsockopt(self, level: int, name: int, value: int | bytes) -> None:
        self.dut._call(self.handle, "setsockopt", level, name, value)

    def getsockopt(self, level: int, name: int) -> int:
        return self.dut._call(self.handle, "getsockopt", level, name)

    def wait(self, event: str, timeout: float | None = None) -> bool:
        return self.dut._call(self.handle, "wait", event, timeout)

    def info(self) -> TcpInfo:
        return self.dut._call(self.handle, "info")


class RemoteEventReader(EventReader):
    """An eBPF event reader the agent holds on the DUT."""

    def __init__(self, dut: RemoteDutSide, remote: Remote) -> None:
        self.dut, self.handle = dut, remote.handle
        self.kind = remote.attributes["kind"]

    @property
    def lost(self) -> int:
        return self.dut._call(self.handle, "lost")

    def read(self) -> list[bytes]:
        return self.dut._call(self.handle, "read")

    def close(self) -> None:
        if not self.dut.closed:
            self.dut._call(self.handle, "close")


def _remote_exception(kind: str, details: Any, where: str) -> Exception:
    """The exception the DutSide raised on the DUT, with its message."""
    if kind == "CommandError":
        argv, message, returncode = details
        error = CommandError(argv, "", returncode)
        error.args = (message,)
        return error
    if kind == "TargetUnavailable":
        return TargetUnavailable(details)
    if kind == "TargetError":
        return TargetError(details)
    if kind == "OSError":
        return OSError(*details)
    return TargetError(f"the DUT agent on {where} failed:\n{details}")


# the agent's code --------------------------------------------------------------------------

@functools.cache
def agent_code() -> bytes:
    """What the harness writes to the agent's stdin before its first request: the
    harness package as a zip (every module; the agent imports what it needs), with its
    length ahead of it. Built once per process, in memory: nothing is written on the
    harness's side either. Deflate's fastest level: 0.2 s here for 1.4 MB, against
    0.3 s for 1.2 MB at its default."""
    package = Path(harness.__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(path for path in package.rglob("*.py") if "__pycache__" not in path.parts):
            info = zipfile.ZipInfo(f"harness/{path.relative_to(package).as_posix()}", ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED, compresslevel=1)
    code = buffer.getvalue()
    return len(code).to_bytes(LENGTH_BYTES, "big") + code


def agent_argv(python: str) -> list[str]:
    """The command line starting the agent with `python`; agent_code() goes first on its stdin."""
    return [python, "-I", "-c", AGENT_BOOTSTRAP]


if __name__ == "__main__":
    sys.exit(main())
