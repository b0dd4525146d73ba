"""A fresh network namespace on a lab DUT for one test, holding the DUT's ports.

The embedded lab gives each test a new DUT namespace. On a lab DUT the agent
(drivers/agent.py) does the same with the DUT's own ports: it creates a namespace,
moves p0..p2 into it, gives it DUT_SYSCTLS and the ports' offloads as the netns lab
has them, and when the test ends moves the ports back into the namespace the agent
runs in (the DUT's own, with its management interface) and deletes it.

Moving a device keeps what belongs to the device: its driver, queues, rings,
offloads, MTU, MAC, XDP program; its addresses, routes and neighbours stay behind
(dev_change_net_namespace() in net/core/dev.c: dev_close(), then the
NETDEV_UNREGISTER notifiers flush them), and the qdiscs go (dev_shutdown()). So the
test meets an IP stack as booted, as on the embedded lab: MIB counters at 0, no
inet_peer entries (the ICMP rate limit's tokens per peer), no conntrack entries,
no nftables ruleset, and no management interface or traffic. What a port carries
back is put right by the harness's snapshot and restore (dutstate.py).

An agent that dies however it dies (SIGKILL included) has its reaper (reaper.py)
empty the namespace the same way: its ports moved back, then deleted; its veth
ports (the stand-in lab's) would be destroyed with it otherwise. One its reaper did
not empty (named `pjports<inode of the DUT's namespace>-<pid>x<n>`) is emptied by
the next agent.
"""
from __future__ import annotations

import itertools
import os
import re
import socket

from harness.drivers.netns import (
    NETNS_RUN_DIR,
    NetnsLab,
    _delete_netns,
    orphaned_namespaces,
    process_exits,
    owned_namespaces,
    require_root,
    require_tool,
    run_argv,
)
from harness.drivers.reaper import reaper
from harness.target import DUT_PORT_OFFLOADS, DUT_SYSCTLS, PORTS, TargetError

# The DUT's own namespace (the agent's), by inode, names the namespaces its agents make:
# DUTs that share a /run/netns (the stand-in lab's) never take each other's.
HOME_INODE = os.stat("/proc/self/ns/net").st_ino
_NAME = re.compile(rf"^pjports{HOME_INODE}-(\d+)x\d+$")
# An agent whose session dropped moves the ports home as it exits: milliseconds, unless
# the DUT is very busy.
OLD_AGENT_EXIT = 30.0
_instance_numbers = itertools.count()


class PortsNetns(NetnsLab):
    """The DUT's ports in a namespace of their own for one test (module doc); the
    DutSide's lab, with NetnsLab's interface for namespace `dut`."""

    # the agent's own namespace (management, other traffic) is never reported
    host_inodes = frozenset({HOME_INODE})

    def __init__(self) -> None:
        require_root("moving the DUT's ports into a namespace of the test")
        for program in ("ip", "sysctl", "ethtool"):
            require_tool(program)
        remove_stale_namespaces()
        self.dut = f"pjports{HOME_INODE}-{os.getpid()}x{next(_instance_numbers)}"
        self.sysctls = {self.dut: dict(DUT_SYSCTLS)}
        self._sockets: list[socket.socket] = []
        self._closed = False
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        reaper().ports_netns(self.dut)  # before it exists: emptied and deleted even if we die holding it
        run_argv(["ip", "netns", "add", self.dut])
        self.dut_inode = self.inode(self.dut)
        self.run(self.dut, ["sysctl", "-q", "-w", *(f"{key}={value}" for key, value in DUT_SYSCTLS.items())])
        for port in PORTS:
            run_argv(["ip", "link", "set", "dev", port.name, "netns", self.dut])
        run_argv(["ip", "-n", self.dut, "-batch", "-"], stdin="\n".join(
            ["link set lo up"] + [f"link set {port.name} up" for port in PORTS]))
        for port in PORTS:
            self.run(self.dut, ["ethtool", "-K", port.name, *DUT_PORT_OFFLOADS])

    def close(self) -> None:
        """Close the test's sockets, move the ports back home, delete the namespace;
        safe twice. A port that cannot be moved back is named with the command."""
        self._closed = True
        for sock in self._sockets:
            sock.close()
        failures = empty_namespace(self.dut)
        if failures:
            raise TargetError("the DUT's ports did not come back from the test's namespace: " + "; ".join(failures))

    def __repr__(self) -> str:
        return f"PortsNetns({self.dut})"


def empty_namespace(name: str) -> list[str]:
    """Move every port p0..p2 in namespace `name` back to this process's namespace,
    then delete it: the failures, each with the command to finish by hand."""
    if not os.path.exists(os.path.join(NETNS_RUN_DIR, name)):
        return []
    failures = []
    for port in PORTS:
        argv = ["ip", "-n", name, "link", "set", "dev", port.name, "netns", str(os.getpid())]
        if not os.path.exists(os.path.join("/sys/class/net", port.name)):  # not home yet
            try:
                run_argv(argv)
            except TargetError as exc:
                failures.append(f"{port.name}: {exc} (by hand: ip -n {name} link set dev {port.name} "
                                f"netns <pid of a process in the DUT's namespace>)")
    if not failures and (failure := _delete_netns(name)):
        failures.append(failure)
    return failures


def remove_stale_namespaces() -> list[str]:
    """Empty and delete the port namespaces of agents that died; the names. An agent
    whose SSH session dropped may still be moving the ports home: it is waited for."""
    for _, pid in owned_namespaces(_NAME):
        if pid != os.getpid():
            if not process_exits(pid, OLD_AGENT_EXIT):
                raise TargetError(f"another agent (pid {pid}) holds the DUT's ports and did not exit within "
                                  f"{OLD_AGENT_EXIT:.0f} s")
    removed = orphaned_namespaces(_NAME)
    for name in removed:
        if failures := empty_namespace(name):
            raise TargetError(f"a dead agent's namespace {name} holds the DUT's ports: " + "; ".join(failures))
    return removed
