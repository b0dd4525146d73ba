"""The `hosts` and `router` fixtures: the addressing plan of plan.py built on the target.

Registered by the packet-journey plugin (harness/plugin.py's pytest_plugins), so a
suite in any directory has them once the package is installed. The DUT's neighbour
entries for the hosts are static (`nud permanent`), so no test depends on ARP
timing unless it is about ARP.
"""
from __future__ import annotations

import pytest

from harness.target import Target
from harness.testing.plan import Host


@pytest.fixture
def hosts(target: Target) -> list[Host]:
    """Addresses on p0..p2 and permanent neighbour entries for h0..h2."""
    out = []
    for port in target.ports:
        host = Host(port)
        target.sh(f"ip addr add {host.dut_ip}/24 dev {port.name}")
        target.sh(f"ip neigh replace {host.ip} lladdr {host.mac} dev {port.name} nud permanent")
        out.append(host)
    return out


@pytest.fixture
def router(target: Target, hosts: list[Host]) -> list[Host]:
    """`hosts`, with IPv4 forwarding on."""
    target.sh("sysctl -w net.ipv4.ip_forward=1")
    return hosts
