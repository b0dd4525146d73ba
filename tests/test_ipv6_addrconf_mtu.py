"""addrconf_notify() on NETDEV_CHANGEMTU (net/ipv6/addrconf.c): an MTU under
IPV6_MIN_MTU (1280) stops IPv6 on a device as unregistering it does."""
from __future__ import annotations

import pytest

from harness.mockkernel.target import MockTarget
from harness.target import CommandError
from harness.testing import ipv6_on


@pytest.fixture
def target():
    target = MockTarget()
    ipv6_on(target)
    target.sh("ip -6 addr add 2001:db8:2::1/64 dev p2")
    yield target
    target.close()


def test_an_mtu_under_1280_takes_a_devices_ipv6_addresses_routes_and_sysctls_away(target):
    """addrconf_ifdown(dev, dev != net->loopback_dev): the inet6_dev goes (seed 22 of the
    differential runner: the kernel had no route to 2001:db8:2::2 after `ip link set p2 mtu 576`)."""
    target.sh("ip link set p2 mtu 576")
    assert target.sh("ip -6 addr show dev p2") == ""
    assert "2001:db8:2::/64" not in target.sh("ip -6 route")
    with pytest.raises(CommandError):
        target.sh("sysctl -n net.ipv6.conf.p2.forwarding")


def test_an_mtu_back_at_1280_gives_the_device_a_new_inet6_dev_with_its_link_local_address_only(target):
    """NETDEV_CHANGEMTU with no inet6_dev: ipv6_add_dev(), then as NETDEV_UP (the device is up)."""
    target.sh("ip link set p2 mtu 576")
    target.sh("ip link set p2 mtu 1280")
    shown = target.sh("ip -6 addr show dev p2")
    assert "fe80::" in shown and "2001:db8:2::1" not in shown
    assert target.sh("sysctl -n net.ipv6.conf.p2.mtu").strip() == "1280"
