"""The network namespace this process runs in, as the DUT half of a lab: what the
DUT agent (drivers/agent.py) observes on a lab DUT, where the lab's ports p0..p2
(renamed so by the harness before it starts the agent) share the namespace with
the management interface.

`HereLab` has NetnsLab's interface as DutSide's observers use it, for one
namespace, `dut`: commands run directly, sockets are opened directly, /proc/net is
this process's. It does not refuse the host's namespace as NetnsLab does: on a DUT
that is the namespace under test, and the harness only ever starts the agent on a
DUT its lab file names. Since the namespace outlives the agent and carries other
traffic (`owns_namespace` False), the observers undo what they put there when they
close, nftrace traces only packets of the ports and lo, conntrack() leaves out the
other interfaces' connections, and the drop tracer reports the drops on the ports
and lo only (`lab_ifindexes`, kfree_skb.py).
"""
from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

from harness.drivers.netns import require_root, require_tool, run_argv
from harness.target import PORTS, TargetError

class HereLab:
    """This process's network namespace, named `dut` (module doc)."""

    host_inodes: frozenset[int] = frozenset()
    owns_namespace = False

    def __init__(self) -> None:
        require_root("the DUT agent")
        for program in ("ip", "sysctl", "ethtool"):
            require_tool(program)
        self.dut = f"{socket.gethostname()}-agent{os.getpid()}"
        self.dut_inode = os.stat("/proc/self/ns/net").st_ino
        self.lab_ifindexes = frozenset(self._ifindex(name) for name in (*(port.name for port in PORTS), "lo"))
        self._sockets: list[socket.socket] = []
        self._closed = False

    @staticmethod
    def _ifindex(name: str) -> int:
        try:
            return socket.if_nametoindex(name)
        except OSError:
            raise TargetError(f"this DUT has no interface {name}: the harness renames the lab's ports "
                              f"to {', '.join(port.name for port in PORTS)} before it starts the agent") from None

    def run(self, name: str, argv: Sequence[str], stdin: str | None = None, stderr_fails: bool = False) -> str:
        """Run `argv` (no shell): its stdout, or CommandError (NetnsLab.run())."""
        self._check(name)
        return run_argv(list(argv), stdin, stderr_fails=stderr_fails)

    def socket(self, name: str, family: int, sock_type: int, proto: int = 0) -> socket.socket:
        """A socket, closed with the lab."""
        self._check(name)
        sock = socket.socket(family, sock_type, proto)
        self._sockets.append(sock)
        return sock

    def inside(self, name: str) -> AbstractContextManager[None]:
        """Every thread of this process is in the namespace already."""
        self._check(name)
        return nullcontext()

    def other_addresses(self) -> frozenset[str]:
        """The IPv4 addresses of the interfaces other than the ports and lo: the
        management's, whose connections are not the test's."""
        ports = {port.name for port in PORTS} | {"lo"}
        return frozenset(address["local"] for link in json.loads(self.run(self.dut, ["ip", "-j", "-4", "addr", "show"]))
                         if link["ifname"] not in ports for address in link.get("addr_info", []))

    def read_proc_net(self, name: str, filename: str) -> str:
        self._check(name)
        with open(f"/proc/thread-self/net/{filename}") as f:
            return f.read()

    def close(self) -> None:
        self._closed = True
        for sock in self._sockets:
            sock.close()

    def _check(self, name: str) -> None:
        if self._closed:
            raise TargetError(f"lab {self.dut} is closed")
        if name != self.dut:
            raise TargetError(f"{self.dut} is the only namespace of this lab, not {name}")

    def __repr__(self) -> str:
        return f"HereLab({self.dut})"
