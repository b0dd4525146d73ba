"""A lab DUT over SSH (asyncssh): commands and long-running processes.

`SshHost` gives the rest of the harness synchronous calls; asyncssh runs on a
private event loop in a daemon thread, and every call waits at most the lab file's
timeouts (`connect` to reach and log in, `command` for each command). Safety:

- The host key is always checked against the lab file's `known_hosts`; there is
  no way to turn the check off.
- A command is `shlex.join(argv)` (behind `sudo -n --` when `become: sudo`): the
  remote shell sees each argument as one word; no shell string is ever built
  from pieces.
- With `via_netns`, the TCP socket is created inside that local network namespace
  (`inside_netns`) and handed to asyncssh, so the host's namespace is never used
  to reach the stand-in lab.

A command that ran and failed raises `CommandError` (a product or test error, as on
every target); anything that keeps the DUT from being reached or answering raises
`RemoteError`, a `TargetUnavailable` (infrastructure: broken, not failed), naming
who was reached how, what was being done, and why it failed.
"""
from __future__ import annotations

import asyncio
import shlex
import socket
import threading
import warnings
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from harness.drivers.netns import NETNS_RUN_DIR, inside_netns
from harness.target import CommandError, TargetUnavailable

from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    # asyncssh imports cryptography's DSA, deprecated there; the harness never uses DSA
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    import asyncssh


class RemoteError(TargetUnavailable):
    """The DUT cannot be reached, or stopped answering: infrastructure, not a test failure."""

    def __init__(self, where: str, doing: str, reason: str):
        self.where, self.doing, self.reason = where, doing, reason
        super().__init__(f"cannot reach DUT {where} while {doing}: {reason}")


class SshHost:
    """One SSH connection to a DUT of the lab file (`dut`: a labfile.Dut, `timeouts`:
    a labfile.Timeouts); connected on creation."""

    def __init__(self, dut: Any, timeouts: Any) -> None:
        self.dut = dut
        self.timeouts = timeouts
        self.address = f"{dut.user}@{dut.host}:{dut.port}"
        self.where = self.address + (f" (from netns {dut.via_netns})" if dut.via_netns else "")
        self._conn: asyncssh.SSHClientConnection | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"ssh {self.address}", daemon=True)
        self._thread.start()
        try:
            self._connect()
        except BaseException:
            self._stop_loop()
            raise

    # connection --------------------------------------------------------------
    def _connect(self) -> None:
        known_hosts = Path(self.dut.known_hosts)
        if not known_hosts.is_file():
            raise RemoteError(self.where, "connecting", f"known_hosts file {known_hosts} does not exist "
                                                        "(host keys are always checked)")
        sock, peer = self._netns_socket() if self.dut.via_netns else (None, None)
        options = dict(
            username=self.dut.user, known_hosts=str(known_hosts), config=None,
            client_keys=[str(self.dut.key)] if self.dut.key else (),
            agent_path=() if self.dut.agent else None,
        )

        async def connect() -> asyncssh.SSHClientConnection:
            if sock is None:
                return await asyncssh.connect(self.dut.host, self.dut.port, **options)
            await self._loop.sock_connect(sock, peer)
            return await asyncssh.connect(self.dut.host, self.dut.port, sock=sock, **options)

        try:
            self._conn = self._call(connect(), "connecting", self.timeouts.connect)
        except BaseException:
            if sock is not None:
                sock.close()
            raise

    def _netns_socket(self) -> tuple[socket.socket, tuple]:
        """A TCP socket created inside `via_netns` (the name resolved there too), and
        the address to connect it to."""
        try:
            with inside_netns(f"{NETNS_RUN_DIR}/{self.dut.via_netns}"):
                family, kind, proto, _, peer = socket.getaddrinfo(
                    self.dut.host, self.dut.port, type=socket.SOCK_STREAM)[0]
                sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise RemoteError(self.where, f"opening a socket in netns {self.dut.via_netns}", str(exc)) from exc
        sock.setblocking(False)
        return sock, peer

    def reconnect(self) -> None:
        """A fresh connection, after the last one dropped (or to be sure of one)."""
        self._disconnect()
        self._connect()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def close(self) -> None:
        """Disconnect and stop the event loop; safe twice."""
        if self._loop.is_closed():
            return
        try:
            self._disconnect()
        finally:
            self._stop_loop()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            self._call(conn.wait_closed(), "disconnecting", self.timeouts.connect)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SshHost:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # commands ----------------------------------------------------------------
    def command_line(self, argv: Sequence[str]) -> str:
        """What the remote shell gets for `argv`: each argument one word."""
        prefix = ["sudo", "-n", "--"] if self.dut.become == "sudo" else []
        return shlex.join([*prefix, *argv])

    def run(self, argv: Sequence[str], stdin: str | None = None, stderr_fails: bool = False) -> str:
        """stdout of `argv` on the DUT, or CommandError naming it with its stderr (or
        stdout, or exit status), as NetnsLab.run does. `stderr_fails`: anything on
        stderr is a failure too, whatever the exit status."""
        conn = self._connection(f"running `{shlex.join(argv)}`")
        # without input, stdin is at its end at once (as `cmd < /dev/null`), so nothing waits on it
        source = {"input": stdin} if stdin else {"stdin": asyncssh.DEVNULL}

        async def run() -> asyncssh.SSHCompletedProcess:
            process = await conn.create_process(self.command_line(argv), **source)
            try:
                return await process.wait()
            except asyncio.CancelledError:  # out of time: stop it (sshd refuses signals to root sessions)
                process.kill()
                process.close()
                raise

        shown = shlex.join(argv)
        result = self._call(run(), f"running `{shown}`", self.timeouts.command,
                            f"; it may still run there (`pkill -f {shlex.quote(shown)}` on the DUT)")
        stdout, stderr = str(result.stdout or ""), str(result.stderr or "")
        if result.returncode != 0 or (stderr_fails and stderr.strip()):
            raise CommandError(argv, stderr.strip() or stdout.strip() or _exit_status(result), result.returncode)
        return stdout

    def open_process(self, argv: Sequence[str]) -> RemoteProcess:
        """`argv` started on the DUT with binary stdin/stdout, left running."""
        doing = f"starting `{shlex.join(argv)}`"
        conn = self._connection(doing)
        process = self._call(conn.create_process(self.command_line(argv), encoding=None), doing,
                             self.timeouts.command)
        return RemoteProcess(self, process, list(argv))

    # the event loop ----------------------------------------------------------
    def _connection(self, doing: str) -> asyncssh.SSHClientConnection:
        if not self.connected:
            raise RemoteError(self.where, doing, "the connection was lost (reconnect() opens a new one)")
        return self._conn

    def _call(self, coroutine: Coroutine, doing: str, timeout: float, after_timeout: str = "") -> Any:
        """Run `coroutine` on the loop, waiting at most `timeout` s; asyncssh's and the
        network's errors become RemoteError (`after_timeout`: what to add to a timeout's)."""
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coroutine, timeout), self._loop)
        try:
            return future.result()
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise RemoteError(self.where, doing, f"no answer within {timeout:g} s{after_timeout}") from exc
        except asyncssh.HostKeyNotVerifiable as exc:
            raise RemoteError(self.where, doing, f"the host key is not the one {self.dut.known_hosts} "
                                                 f"names for {self.dut.host}: {exc.reason}") from exc
        except asyncssh.KeyImportError as exc:
            raise RemoteError(self.where, doing, f"the key {self.dut.key} cannot be read: {exc}") from exc
        except asyncssh.PermissionDenied as exc:
            raise RemoteError(self.where, doing, f"{self.dut.user} was refused with "
                                                 f"{self._credentials()}: {exc.reason}") from exc
        except asyncio.IncompleteReadError as exc:
            raise RemoteError(self.where, doing, f"the remote process closed its output after "
                                                 f"{len(exc.partial)} of {exc.expected} bytes") from exc
        except (asyncssh.Error, OSError) as exc:
            lost = self._conn is not None and self._conn.is_closed()
            raise RemoteError(self.where, doing, _reason(exc, lost)) from exc
        except BaseException:  # KeyboardInterrupt: do not leave the call running
            future.cancel()
            raise

    def _credentials(self) -> str:
        keys = [f"key {self.dut.key}"] if self.dut.key else []
        return " or ".join(keys + (["ssh-agent"] if self.dut.agent else []))

    def __repr__(self) -> str:
        return f"SshHost({self.where})"


class RemoteProcess:
    """A process started on the DUT: `stdin.write(b)`/`stdin.drain()`,
    `stdout.readexactly(n)`, `stderr.read()` are synchronous, each waiting at most
    the lab file's command timeout."""

    def __init__(self, host: SshHost, process: asyncssh.SSHClientProcess, argv: list[str]) -> None:
        self.host = host
        self.argv = argv
        self._process = process
        self.stdin = _SyncWriter(self, process.stdin)
        self.stdout = _SyncReader(self, process.stdout)
        self.stderr = _SyncReader(self, process.stderr)

    def call(self, coroutine: Coroutine, doing: str, timeout: float | None = None) -> Any:
        return self.host._call(coroutine, f"{doing} `{shlex.join(self.argv)}`",
                               self.host.timeouts.command if timeout is None else timeout)

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: killed by that signal), None while running."""
        return self._process.returncode

    def wait(self, timeout: float | None = None) -> int:
        return self.call(self._process.wait(), "waiting for", timeout).returncode

    def close(self) -> None:
        """Close stdin (the process sees EOF) and the channel; safe twice."""
        if not self.host._loop.is_closed():
            self.host._loop.call_soon_threadsafe(self._process.close)


class _SyncWriter:
    def __init__(self, process: RemoteProcess, writer: asyncssh.SSHWriter) -> None:
        self._process, self._writer = process, writer

    def write(self, data: bytes) -> None:
        async def write() -> None:
            self._writer.write(data)
        self._process.call(write(), "writing to")

    def drain(self) -> None:
        self._process.call(self._writer.drain(), "writing to")

    def close(self) -> None:
        async def write_eof() -> None:
            self._writer.write_eof()
        self._process.call(write_eof(), "closing stdin of")


class _SyncReader:
    def __init__(self, process: RemoteProcess, reader: asyncssh.SSHReader) -> None:
        self._process, self._reader = process, reader

    def readexactly(self, n: int, timeout: float | None = None) -> bytes:
        return self._process.call(self._reader.readexactly(n), "reading from", timeout)

    def read(self, n: int = -1, timeout: float | None = None) -> bytes:
        """Up to `n` bytes (-1: until EOF)."""
        return self._process.call(self._reader.read(n), "reading from", timeout)


def _exit_status(result: asyncssh.SSHCompletedProcess) -> str:
    if result.exit_signal:
        return f"killed by signal {result.exit_signal[0]}"
    return f"exit status {result.returncode}"


def _reason(exc: BaseException, lost: bool) -> str:
    """Why a call failed; `lost`: the connection has closed meanwhile."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is sshd running and listening there?)"
    if lost or isinstance(exc, asyncssh.ConnectionLost):
        return f"the connection was lost ({exc.reason if isinstance(exc, asyncssh.Error) else exc})"
    if isinstance(exc, asyncssh.Error):
        return f"{type(exc).__name__}: {exc.reason}"
    return str(exc) or type(exc).__name__
