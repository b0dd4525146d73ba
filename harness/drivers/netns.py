"""The embedded lab: a DUT and a tester network namespace on this host, wired by veth.

    tester netns pj<pid>x<n>-tst         DUT netns pj<pid>x<n>-dut
      t0 (port.peer_mac)  <--- veth --->  p0 (port.mac)
      t1                  <--- veth --->  p1
      t2                  <--- veth --->  p2

Every link is created inside the namespaces (`ip -n TST link add t0 ... peer name p0
netns DUT`), so nothing is ever created in, or named in, the host's namespace. The
DUT gets `DUT_SYSCTLS`; the tester has IPv6 off and no addresses, so its ports never
send anything on their own. Both get their sysctls before the links exist, so the
ports inherit conf/default. Names carry the pid and an instance counter, so
pytest-xdist workers and several labs in one process never collide.

Safety: nothing runs in, and no socket is opened in, the host's network namespace
(`refuse_host_netns`). `NetnsLab.close()` deletes both namespaces; it also runs at
interpreter exit and on SIGTERM for every lab still alive, with every process still
running in them. A process killed before it could (SIGKILL) has its reaper delete them
at once (reaper.py), and a process starting its first lab removes the namespaces of
labs whose process died without cleaning up. Commands end within COMMAND_TIMEOUT.
"""
from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from harness.drivers.reaper import reaper
from harness.target import (
    DUT_PORT_OFFLOADS,
    DUT_SYSCTLS,
    PORTS,
    CommandError,
    TargetError,
    TargetUnavailable,
)

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
# init_net's inode is fixed (PROC_NET_INIT_INO in include/linux/proc_ns.h).
PROC_NET_INIT_INO = 0xEFFFFFF9

# The tester's ports must stay silent: no IPv6 means no router solicitations,
# DAD or MLD reports; without addresses IPv4 answers nothing either.
TESTER_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}

# The tester's ends carry frames this long both ways (veth drops a frame longer than
# the receiving end's MTU): the most with which veth still allows native XDP on the
# DUT's end (veth_xdp_set(): a 4 KiB page less XDP headroom, skb_shared_info, Ethernet).
TESTER_MTU = 3506

# A command that has not finished after this long is killed and fails naming itself:
# a hung `nft` or `tc` must not hang the session. The slowest the suites run (a large
# `nft -f`, `tc` loading a program on a loaded machine) take a few seconds.
COMMAND_TIMEOUT = 120.0
# delete_namespace(): how long the processes inside may take to die of SIGKILL
KILL_TIMEOUT = 5.0
KILL_POLL = 0.02

# Debian packages providing the programs the lab and `sh()` run.
PACKAGES = {
    "ip": "iproute2", "tc": "iproute2", "sysctl": "procps", "ethtool": "ethtool",
    "nft": "nftables", "iptables": "iptables", "iptables-save": "iptables",
    "iptables-restore": "iptables", "ip6tables": "iptables", "ip6tables-save": "iptables",
    "ip6tables-restore": "iptables", "conntrack": "conntrack", "bpftool": "bpftool",
    "bpftrace": "bpftrace", "mount": "mount", "nstat": "iproute2", "ss": "iproute2", "cat": "coreutils",
    "bridge": "iproute2",
}

_LAB_NAME = re.compile(r"^pj(\d+)x\d+-(dut|tst)$")
_libc = ctypes.CDLL(None, use_errno=True)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise TargetUnavailable(f"{what} needs root (network namespaces, veth, raw sockets): "
                                "run pytest as root, or use --target=mock")


def require_tool(program: str) -> str:
    """The path of `program`, or TargetUnavailable saying which package installs it."""
    path = shutil.which(program)
    if path is None:
        package = PACKAGES.get(program, program)
        raise TargetUnavailable(f"`{program}` is not installed: `apt-get install {package}`")
    return path


def _host_netns_inodes() -> frozenset[int]:
    """The namespaces never to touch: init_net, pid 1's, and the one this process
    started in (the harness's own host, even inside a container)."""
    inodes = {PROC_NET_INIT_INO, os.stat("/proc/self/ns/net").st_ino}
    try:
        inodes.add(os.stat("/proc/1/ns/net").st_ino)
    except PermissionError:  # a sandboxed pid 1 hides its namespaces even from root
        pass
    return frozenset(inodes)


HOST_NETNS_INODES = _host_netns_inodes()


def refuse_host_netns(inode: int, action: str) -> None:
    if inode in HOST_NETNS_INODES:
        raise TargetError(f"refusing to {action}: network namespace inode {inode} is the "
                          "host's; the lab only ever works inside its own namespaces")


def _setns(fd: int) -> None:
    """setns(2) for the calling thread only (os.setns arrived in Python 3.12)."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextmanager
def inside_netns(path: str) -> Iterator[None]:
    """Run the block with the calling thread in the network namespace at `path`;
    what the block creates (a socket) stays in that namespace afterwards."""
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        refuse_host_netns(os.fstat(target).st_ino, f"enter {path}")
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


class NetnsLab:
    """One DUT namespace and one tester namespace, wired port by port (module doc).

    `dut`/`tester` are the namespace names, `dut_inode`/`tester_inode` their inodes
    (what tracepoints report), `sysctls` what was set, by namespace name. The drop
    tracer reports the DUT namespace's drops on every device (`lab_ifindexes`
    None: only the lab's ports and lo are there) and never the host's (`host_inodes`).
    `owns_namespace`: nothing but the lab uses the DUT namespace, which close() deletes
    with whatever the observers put there.
    """

    host_inodes = HOST_NETNS_INODES
    lab_ifindexes = None
    owns_namespace = True

    def __init__(self) -> None:
        require_root("the netns lab")
        for program in ("ip", "sysctl", "ethtool"):
            require_tool(program)
        _start_process_lifecycle()
        n = next(_instance_numbers)
        self.dut = f"pj{os.getpid()}x{n}-dut"
        self.tester = f"pj{os.getpid()}x{n}-tst"
        self.sysctls = {self.dut: dict(DUT_SYSCTLS), self.tester: dict(TESTER_SYSCTLS)}
        self._sockets: list[socket.socket] = []
        self._closed = False
        _live_labs.add(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        for name in (self.dut, self.tester):
            reaper().netns(name)  # before it exists: deleted even if we die making it
            run_argv(["ip", "netns", "add", name])
        self.dut_inode = self.inode(self.dut)
        self.tester_inode = self.inode(self.tester)
        for name, sysctls in self.sysctls.items():
            self.run(name, ["sysctl", "-q", "-w", *(f"{key}={value}" for key, value in sysctls.items())])
        links = [f"link add {p.peer} address {p.peer_mac} mtu {TESTER_MTU} type veth "
                 f"peer name {p.name} address {p.mac} netns {self.dut}" for p in PORTS]
        run_argv(["ip", "-n", self.tester, "-batch", "-"], stdin="\n".join(
            links + ["link set lo up"] + [f"link set {p.peer} up" for p in PORTS]))
        run_argv(["ip", "-n", self.dut, "-batch", "-"], stdin="\n".join(
            ["link set lo up"] + [f"link set {p.name} up" for p in PORTS]))
        for port in PORTS:
            self.run(self.dut, ["ethtool", "-K", port.name, *DUT_PORT_OFFLOADS])

    @staticmethod
    def path(name: str) -> str:
        return os.path.join(NETNS_RUN_DIR, name)

    def inode(self, name: str) -> int:
        """The namespace's inode, refusing the host's (a stray bind mount, say)."""
        try:
            inode = os.stat(self.path(name)).st_ino
        except FileNotFoundError:
            raise TargetError(f"namespace {name} is gone: something deleted it under the test "
                              f"(`ip netns delete {name}`?)") from None
        refuse_host_netns(inode, f"use namespace {name}")
        return inode

    def run(self, name: str, argv: Sequence[str], stdin: str | None = None, stderr_fails: bool = False) -> str:
        """Run `argv` (no shell) inside namespace `name`: its stdout, or CommandError.
        `stderr_fails`: anything on stderr is a failure too, whatever the exit status."""
        self._check_open()
        self.inode(name)
        return run_argv(["ip", "netns", "exec", name, *argv], stdin, shown=list(argv), stderr_fails=stderr_fails)

    def popen(self, name: str, argv: Sequence[str], **popen_args) -> subprocess.Popen:
        """Start `argv` (no shell) inside namespace `name` and return without waiting
        (a traffic generator); the caller waits for it or kills it."""
        self._check_open()
        self.inode(name)
        return subprocess.Popen(["ip", "netns", "exec", name, *argv], **popen_args)

    def socket(self, name: str, family: int, sock_type: int, proto: int = 0) -> socket.socket:
        """A socket created inside namespace `name`, closed with the lab."""
        self._check_open()
        with inside_netns(self.path(name)):
            sock = socket.socket(family, sock_type, proto)
        self._sockets.append(sock)
        return sock

    def inside(self, name: str) -> AbstractContextManager[None]:
        """Run the block with the calling thread inside namespace `name` (inside_netns())."""
        self._check_open()
        return inside_netns(self.path(name))

    def other_addresses(self) -> frozenset[str]:
        """Addresses in the DUT namespace that are not the test's: none, the lab made it."""
        return frozenset()

    def read_proc_net(self, name: str, filename: str) -> str:
        """/proc/net/`filename` as namespace `name` sees it."""
        self._check_open()
        # /proc/self/net is the main thread's namespace; this thread's is thread-self
        with self.inside(name), open(f"/proc/thread-self/net/{filename}") as f:
            return f.read()

    def close(self) -> None:
        """Close the lab's sockets and delete both namespaces. Safe to call twice, and
        to re-enter from the SIGTERM handler: each step checks what is left to do."""
        self._closed = True
        for sock in self._sockets:
            sock.close()
        # what a test started in them (a hung command's children, a server) goes with them
        failures = [failure for name in (self.dut, self.tester) if (failure := delete_namespace(name))]
        _live_labs.discard(self)
        if failures:
            raise TargetError("lab teardown failed: " + "; ".join(failures))

    def _check_open(self) -> None:
        if self._closed:
            raise TargetError(f"lab {self.dut} is closed")

    def __repr__(self) -> str:
        return f"NetnsLab({self.dut}, {self.tester})"


def run_argv(argv: list[str], stdin: str | None = None, shown: list[str] | None = None,
             stderr_fails: bool = False) -> str:
    """stdout of `argv`, or CommandError naming `shown` (the command as the user wrote it),
    also when it has not finished after COMMAND_TIMEOUT seconds. It runs in a process
    group of its own, killed whole on the timeout or when we are interrupted, so what
    a hung command started does not outlive it."""
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0)
    try:
        stdout, stderr = process.communicate(stdin, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise CommandError(shown or argv, f"no end after {COMMAND_TIMEOUT:g} s (the lab's command timeout, "
                                          "harness.drivers.netns.COMMAND_TIMEOUT): killed", -signal.SIGKILL) from None
    except BaseException:
        _kill_group(process)
        raise
    if process.returncode != 0 or (stderr_fails and stderr.strip()):
        raise CommandError(shown or argv, stderr.strip() or stdout.strip()
                           or f"exit status {process.returncode}", process.returncode)
    return stdout


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL `process` and its process group, reap it and close its pipes."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is gone already
        pass
    process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _delete_netns(name: str) -> str | None:
    """Delete namespace `name` if it exists; a description of the failure, if any."""
    if not os.path.exists(NetnsLab.path(name)):
        return None
    # its own session: a SIGTERM to our process group must not kill the teardown
    result = subprocess.run(["ip", "netns", "delete", name], capture_output=True, text=True,
                            check=False, start_new_session=True)
    if result.returncode != 0 and os.path.exists(NetnsLab.path(name)):
        return f"`ip netns delete {name}`: {result.stderr.strip()}"
    return None


def process_exits(pid: int, timeout: float) -> bool:
    """Whether process `pid` (any process, not only a child) has exited or
    exits within `timeout` seconds: its pidfd becomes readable."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def pids_in(name: str) -> list[int]:
    """The processes inside namespace `name` (`ip netns pids`, read from /proc)."""
    inode = os.stat(NetnsLab.path(name)).st_ino
    refuse_host_netns(inode, f"list the processes of {name}")
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                pids.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, PermissionError):  # exited meanwhile
            continue
    return pids


def delete_namespace(name: str) -> str | None:
    """Kill every process in namespace `name`, then delete it (its links go with the
    last process); a description of the failure, if any."""
    if not os.path.exists(NetnsLab.path(name)):
        return None
    # never this process: a SIGTERM handler may run while the main thread is inside the namespace
    pids = [pid for pid in pids_in(name) if pid != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + KILL_TIMEOUT
    while (alive := [pid for pid in pids if not _exited(pid)]) and time.monotonic() < deadline:
        time.sleep(KILL_POLL)
    if alive:
        return f"namespace {name}: processes {', '.join(map(str, alive))} survive SIGKILL"
    return _delete_netns(name)


def _exited(pid: int) -> bool:
    """Gone, or a zombie (exited, not yet reaped: it has left its namespaces)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


# process lifecycle: stale labs, exit, SIGTERM -------------------------------------

_instance_numbers = itertools.count()
_live_labs: set[NetnsLab] = set()
_lifecycle_lock = threading.Lock()
_lifecycle_started = False
_previous_sigterm = None


def _start_process_lifecycle() -> None:
    """Once per process: remove dead processes' labs, clean ours at exit and SIGTERM."""
    global _lifecycle_started, _previous_sigterm
    with _lifecycle_lock:
        if _lifecycle_started:
            return
        _lifecycle_started = True
        remove_stale_labs()
        atexit.register(close_live_labs)
        # handlers can only be installed from the main thread; elsewhere the atexit
        # hook and the fixtures' close() still clean up
        if threading.current_thread() is threading.main_thread():
            _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)


def owned_namespaces(pattern: re.Pattern) -> list[tuple[str, int]]:
    """The namespaces named by `pattern`, whose group 1 is the pid of the process
    that made them, with that pid."""
    if not os.path.isdir(NETNS_RUN_DIR):
        return []
    return [(name, int(match.group(1))) for name in sorted(os.listdir(NETNS_RUN_DIR))
            if (match := pattern.match(name))]


def orphaned_namespaces(pattern: re.Pattern) -> list[str]:
    """The namespaces of owned_namespaces() whose process is gone."""
    return [name for name, pid in owned_namespaces(pattern) if not _pid_alive(pid)]


def remove_stale_labs() -> list[str]:
    """Delete `pj<pid>...` namespaces whose process is gone; the names deleted."""
    removed = orphaned_namespaces(_LAB_NAME)
    for name in removed:
        if failure := _delete_netns(name):
            raise TargetError(f"removing a stale lab failed: {failure}")
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def close_live_labs() -> None:
    """Close every lab of this process still alive, trying all before reporting."""
    close_all(_live_labs)


def close_all(labs: Iterable) -> None:
    """close() each of `labs`, trying all before reporting the failures together."""
    failures = []
    for lab in list(labs):
        try:
            lab.close()
        except TargetError as exc:
            failures.append(str(exc))
    if failures:
        raise TargetError("; ".join(failures))


def _on_sigterm(signum: int, frame) -> None:
    """Tear the labs down, deaf to further SIGTERMs meanwhile (`timeout` and CI runners
    signal the whole process group), then let SIGTERM do what it did before."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        close_live_labs()
    finally:
        if callable(_previous_sigterm):
            signal.signal(signal.SIGTERM, _previous_sigterm)
            _previous_sigterm(signum, frame)
        elif _previous_sigterm != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
