"""The `hosts` and `router` fixtures: the addressing plan of plan.py built on the target.

Registered by the packet-journey plugin (harness/plugin.py's pytest_plugins), so a
suite in any directory has them once the package is installed.
"""
from __future__ import annotations

import pytest

from harness.target import Target
from harness.testing.plan import IP_FORWARD_ON, IPV6_FORWARD_ON, Host, plan_hosts, plan_hosts6


@pytest.fixture
def hosts(target: Target) -> list[Host]:
    """Addresses on p0..p2 and permanent neighbour entries for h0..h2 (plan_hosts())."""
    return plan_hosts(target)


@pytest.fixture
def router(target: Target, hosts: list[Host]) -> list[Host]:
    """`hosts`, with IPv4 forwarding on."""
    target.sh(IP_FORWARD_ON)
    return hosts


@pytest.fixture
def hosts6(target: Target) -> list[Host]:
    """The IPv6 plan (plan_hosts6()); its tests are IPv6 suites (marker ipv6)."""
    return plan_hosts6(target)


@pytest.fixture
def router6(target: Target, hosts6: list[Host]) -> list[Host]:
    """`hosts6`, with IPv6 forwarding on (net.ipv6.conf.all.forwarding=1)."""
    target.sh(IPV6_FORWARD_ON)
    return hosts6
