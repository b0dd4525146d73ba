"""A DUT namespace reached over real SSH, for the remote driver's tests:

    ctl netns pjr<pid>x<n>-ctl                 DUT netns pjr<pid>x<n>-dut
      c0   10.254.77.1/30  <--- veth --->  mgmt0  10.254.77.2/30, sshd on :22
      t0..t2               <--- veth --->  ens1f0..ens1f2 (the lab ports)

The test process reaches sshd through a socket opened in the ctl namespace, as the
stand-in lab does; the host's namespace is never used.
"""
from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from harness.drivers.reaper import reaper
from harness.drivers.sshd import Sshd, start_sshd

DUT_ADDRESS = "10.254.77.2"
LAB_PORTS = ("ens1f0", "ens1f1", "ens1f2")
_instances = itertools.count()


def ip(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", netns, *args], capture_output=True, text=True, check=True).stdout


@contextmanager
def ssh_dut(workdir: Path) -> Iterator[SimpleNamespace]:
    """The topology above; yields .dut and .timeouts (shaped as the lab file's
    Dut and Timeouts), .sshd, .dut_netns, .ctl_netns."""
    n = next(_instances)
    dut_netns, ctl_netns = f"pjr{os.getpid()}x{n}-dut", f"pjr{os.getpid()}x{n}-ctl"
    made: list[str] = []
    sshd: Sshd | None = None
    try:
        for name in (dut_netns, ctl_netns):
            reaper().netns(name)  # deleted with its sshd even if this process is killed
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
        # link-local addresses usable at once: no local route appearing mid-test after DAD
        subprocess.run(["ip", "netns", "exec", dut_netns, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0"],
                       check=True)
        ip(ctl_netns, "link", "add", "c0", "type", "veth", "peer", "name", "mgmt0", "netns", dut_netns)
        for k, port in enumerate(LAB_PORTS):
            ip(ctl_netns, "link", "add", f"t{k}", "type", "veth", "peer", "name", port, "netns", dut_netns)
            ip(ctl_netns, "link", "set", f"t{k}", "up")
        ip(ctl_netns, "addr", "add", "10.254.77.1/30", "dev", "c0")
        ip(dut_netns, "addr", "add", f"{DUT_ADDRESS}/30", "dev", "mgmt0")
        for netns, link in ((ctl_netns, "c0"), (dut_netns, "mgmt0"), (dut_netns, "lo"), (ctl_netns, "lo")):
            ip(netns, "link", "set", link, "up")
        sshd = start_sshd(dut_netns, DUT_ADDRESS, workdir)
        yield SimpleNamespace(
            dut=SimpleNamespace(host=DUT_ADDRESS, port=22, user="root", key=sshd.user_key, agent=False,
                                known_hosts=sshd.known_hosts, become="root", python="python3",
                                via_netns=ctl_netns, allow=list(LAB_PORTS), management=["mgmt0"]),
            timeouts=SimpleNamespace(connect=5.0, command=20.0),
            sshd=sshd, dut_netns=dut_netns, ctl_netns=ctl_netns, workdir=workdir)
    finally:
        try:
            if sshd is not None:
                sshd.stop()
        finally:  # the namespaces go even if stopping sshd failed
            for name in made:
                subprocess.run(["ip", "netns", "delete", name], check=True)
