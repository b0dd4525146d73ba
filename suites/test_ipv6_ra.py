"""Router advertisements meeting a host DUT and a router DUT (net/ipv6/ndisc.c
ndisc_router_discovery()): the cur hop limit and MTU a host takes from them, the
default router it learns, and when an advertisement is ignored (accept_ra,
forwarding, accept_ra_min_hop_limit, an MTU out of range).

Each advertisement comes from h0's link-local address to all-nodes, with h0's
link-layer address, as a router on h0's wire sends it (radvd's defaults but the
fields a test sets)."""
from __future__ import annotations

import errno
import re
from socket import AF_INET6

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptMTU,
                                ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import Ether

from harness.testing.plan import IPV6_FORWARD_ON
from harness.testing.masks import auto_flowlabel_mask

ALL_NODES, ALL_NODES_MAC = "ff02::1", "33:33:00:00:00:01"
ALL_ROUTERS, ALL_ROUTERS_MAC = "ff02::2", "33:33:00:00:00:02"
OFF_LINK = "2001:db8:99::5"  # a destination no DUT route reaches but a default one


def advertisement(host, chlim: int = 0, lifetime: int = 0, mtu: int | None = None, prf: int = 0) -> Ether:
    """An RA from `host`'s router: cur hop limit `chlim` (0: unspecified), router
    lifetime `lifetime` s (0: not a default router), an MTU option if given."""
    ra = Ether(src=host.mac, dst=ALL_NODES_MAC) / IPv6(src=host.ll6, dst=ALL_NODES, hlim=255) / \
        ICMPv6ND_RA(chlim=chlim, routerlifetime=lifetime, prf=prf) / ICMPv6NDOptSrcLLAddr(lladdr=host.mac)
    return ra / ICMPv6NDOptMTU(mtu=mtu) if mtu is not None else ra


def conf(target, port, name: str) -> str:
    return target.sh(f"sysctl -n net.ipv6.conf.{port.name}.{name}").strip()


def test_a_host_takes_the_cur_hop_limit_and_mtu_of_an_advertisement(target, hosts6):
    h0, h1 = hosts6[0], hosts6[1]
    target.send(h0.port, advertisement(h0, chlim=42, mtu=1400))
    target.expect_nothing()
    assert (conf(target, h0.port, "hop_limit"), conf(target, h0.port, "mtu")) == ("42", "1400")
    assert (conf(target, h1.port, "hop_limit"), conf(target, h1.port, "mtu")) == ("64", "1500")
    # icmpv6_echo_reply(): the hop limit of the route's device (ip6_dst_hoplimit())
    target.send(h0.port, h0.to_dut6() / ICMPv6EchoRequest(id=7, seq=1))
    target.expect(h0.port, auto_flowlabel_mask(h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=42) /
                                          ICMPv6EchoReply(id=7, seq=1)))


def test_the_router_becomes_a_stale_router_neighbour(target, hosts6):
    h0 = hosts6[0]
    target.send(h0.port, advertisement(h0, chlim=42))
    target.expect_nothing()
    assert target.sh(f"ip -6 neigh show dev {h0.port.name} {h0.ll6}").split() == [
        h0.ll6, "lladdr", h0.mac, "router", "STALE"]


@pytest.mark.parametrize("accept_ra, taken", [(1, False), (2, True)])
def test_a_router_takes_an_advertisement_only_with_accept_ra_2(target, router6, accept_ra, taken):
    h0 = router6[0]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.accept_ra={accept_ra}")
    target.send(h0.port, advertisement(h0, chlim=42, mtu=1400))
    target.expect_nothing()
    expected = ("42", "1400") if taken else ("64", "1500")
    assert (conf(target, h0.port, "hop_limit"), conf(target, h0.port, "mtu")) == expected


def test_accept_ra_0_ignores_the_advertisement_but_still_learns_the_router(target, hosts6):
    h0 = hosts6[0]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.accept_ra=0")
    target.send(h0.port, advertisement(h0, chlim=42, mtu=1400))
    target.expect_nothing()
    assert (conf(target, h0.port, "hop_limit"), conf(target, h0.port, "mtu")) == ("64", "1500")
    assert "router STALE" in target.sh(f"ip -6 neigh show dev {h0.port.name} {h0.ll6}")


def test_a_hop_limit_below_accept_ra_min_hop_limit_is_ignored(target, hosts6):
    h0 = hosts6[0]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.accept_ra_min_hop_limit=50")
    target.send(h0.port, advertisement(h0, chlim=42, mtu=1400))
    target.expect_nothing()
    assert (conf(target, h0.port, "hop_limit"), conf(target, h0.port, "mtu")) == ("64", "1400")


@pytest.mark.parametrize("mtu", [1279, 1501])
def test_an_mtu_below_the_ipv6_minimum_or_above_the_device_s_is_ignored(target, hosts6, mtu):
    h0 = hosts6[0]
    target.send(h0.port, advertisement(h0, chlim=42, mtu=mtu))
    target.expect_nothing()
    assert (conf(target, h0.port, "hop_limit"), conf(target, h0.port, "mtu")) == ("42", "1500")


def test_accept_ra_mtu_0_ignores_the_mtu_option(target, hosts6):
    h0 = hosts6[0]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.accept_ra_mtu=0")
    target.send(h0.port, advertisement(h0, chlim=42, mtu=1400))
    target.expect_nothing()
    assert (conf(target, h0.port, "hop_limit"), conf(target, h0.port, "mtu")) == ("42", "1500")


def test_accept_ra_defrtr_0_also_ignores_the_hop_limit(target, hosts6):
    """The cur hop limit is taken in the default-router part of the advertisement."""
    h0 = hosts6[0]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.accept_ra_defrtr=0")
    target.send(h0.port, advertisement(h0, chlim=42, mtu=1400))
    target.expect_nothing()
    assert (conf(target, h0.port, "hop_limit"), conf(target, h0.port, "mtu")) == ("64", "1400")


def unreachable(app) -> int:
    """The errno sendto() to OFF_LINK fails with (0: it was sent)."""
    try:
        app.sendto(b"hello", (OFF_LINK, 53))
    except OSError as exc:
        return exc.errno
    return 0


def test_a_host_sends_off_link_traffic_to_the_default_router_it_learned(target, hosts6):
    h0 = hosts6[0]
    app = target.socket("udp", ("::", 4000), family=AF_INET6)
    assert unreachable(app) == errno.ENETUNREACH  # no route yet
    target.send(h0.port, advertisement(h0, lifetime=1800))
    target.expect_nothing()
    assert unreachable(app) == 0
    # the router's entry is STALE with the address the advertisement carried: used at once
    target.expect(h0.port, auto_flowlabel_mask(
        Ether(src=h0.port.mac, dst=h0.mac) / IPv6(src=h0.dut_ip6, dst=OFF_LINK, hlim=64) /
        UDP(sport=4000, dport=53) / b"hello"))


def test_the_default_route_is_listed_with_its_lifetime_mtu_hop_limit_and_preference(target, hosts6):
    """The route's hoplimit and mtu metrics come from the same advertisement; its
    lifetime counts down from the router lifetime (a second or two may be gone)."""
    h0 = hosts6[0]
    target.send(h0.port, advertisement(h0, chlim=42, lifetime=1800, mtu=1400, prf=1))
    target.expect_nothing()
    listed = target.sh("ip -6 route show default")
    assert re.fullmatch(rf"default via {h0.ll6} dev p0 proto ra metric 1024 expires 1(79[89]|800)sec "
                        r"mtu 1400 hoplimit 42 pref high\n", listed), listed
    assert target.sh(f"ip -6 route get {OFF_LINK}") == (
        f"{OFF_LINK} from :: via {h0.ll6} dev p0 proto ra src {h0.dut_ip6} metric 1024 mtu 1400 hoplimit 42 "
        "pref high\n")


def test_a_later_advertisement_changes_the_router_s_preference(target, hosts6):
    h0 = hosts6[0]
    target.send(h0.port, advertisement(h0, lifetime=1800, prf=1))
    target.send(h0.port, advertisement(h0, lifetime=1800, prf=3))
    target.expect_nothing()
    assert target.sh("ip -6 route show default").endswith(" pref low\n")


def test_the_default_route_is_not_used_once_the_router_lifetime_is_over(target, hosts6):
    h0 = hosts6[0]
    target.send(h0.port, advertisement(h0, lifetime=2))
    target.expect_nothing()
    app = target.socket("udp", ("::", 4000), family=AF_INET6)
    target.wait(2.5)
    assert unreachable(app) == errno.ENETUNREACH


def test_a_router_lifetime_of_0_withdraws_the_default_router(target, hosts6):
    h0 = hosts6[0]
    target.send(h0.port, advertisement(h0, lifetime=1800))
    target.send(h0.port, advertisement(h0, lifetime=0))
    target.expect_nothing()
    app = target.socket("udp", ("::", 4000), family=AF_INET6)
    assert unreachable(app) == errno.ENETUNREACH


def test_a_router_learns_no_default_router_from_an_advertisement(target, router6):
    h0 = router6[0]
    target.send(h0.port, advertisement(h0, lifetime=1800))
    target.expect_nothing()
    app = target.socket("udp", ("::", 4000), family=AF_INET6)
    assert unreachable(app) == errno.ENETUNREACH


def test_a_host_drops_a_router_solicitation_and_a_router_learns_its_sender(target, hosts6):
    h0 = hosts6[0]
    rs = Ether(src=h0.mac, dst=ALL_ROUTERS_MAC) / IPv6(src=h0.ll6, dst=ALL_ROUTERS, hlim=255) / \
        ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=h0.mac)
    target.send(h0.port, rs)
    target.expect_nothing()
    assert target.sh(f"ip -6 neigh show dev {h0.port.name} {h0.ll6}") == ""
    target.sh(IPV6_FORWARD_ON)
    target.send(h0.port, rs)
    target.expect_nothing()
    assert target.sh(f"ip -6 neigh show dev {h0.port.name} {h0.ll6}").split() == [h0.ll6, "lladdr", h0.mac, "STALE"]
