"""Proxy NDP (net/ipv6/ndisc.c ndisc_recv_ns(), pndisc_is_router(); `ip -6 neigh
add proxy ADDR dev pN` and net.ipv6.conf.*.proxy_ndp): a router answers
solicitations for an address it proxies on the port, as if it were its own but
without override, from its own address; a multicast solicitation after a random
delay of up to proxy_delay (0.8 s), a unicast one at once. A host, or a port
without proxy_ndp, leaves them unanswered."""
from __future__ import annotations

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import Ether

from harness.testing import drops

PROXIED = "2001:db8::5"  # a host the DUT answers for on h0's wire (behind it, say)
PROXIED_GROUP, PROXIED_GROUP_MAC = "ff02::1:ff00:5", "33:33:ff:00:00:05"
PROXY_DELAY = 0.8  # net.ipv6.neigh.DEV.proxy_delay: the answer to a multicast NS comes within it


def solicitation(host, unicast_to=None) -> Ether:
    """An NS from `host` for PROXIED: to its solicited-node group, or to PROXIED
    itself through the DUT's MAC (`unicast_to` the DUT port)."""
    if unicast_to is None:
        ether, dst = Ether(src=host.mac, dst=PROXIED_GROUP_MAC), PROXIED_GROUP
    else:
        ether, dst = Ether(src=host.mac, dst=unicast_to.mac), PROXIED
    return ether / IPv6(src=host.ip6, dst=dst, hlim=255) / ICMPv6ND_NS(tgt=PROXIED) / \
        ICMPv6NDOptSrcLLAddr(lladdr=host.mac)


def proxy_advertisement(host, router: int, override: int = 0) -> Ether:
    """The NA the DUT sends for PROXIED: from its address on the port, solicited,
    with its own MAC as the target's."""
    return host.from_dut6(src=host.dut_ip6, dst=host.ip6, hlim=255) / \
        ICMPv6ND_NA(R=router, S=1, O=override, tgt=PROXIED) / ICMPv6NDOptDstLLAddr(lladdr=host.port.mac)


def test_a_router_answers_a_multicast_ns_for_a_proxied_address(target, router6):
    h0 = router6[0]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.proxy_ndp=1")
    target.sh(f"ip -6 neigh add proxy {PROXIED} dev {h0.port.name}")
    target.send(h0.port, solicitation(h0))
    target.wait(PROXY_DELAY)
    target.expect(h0.port, proxy_advertisement(h0, router=0))
    target.expect_nothing()


def test_a_proxy_entry_marked_router_answers_as_a_router(target, router6):
    h0 = router6[0]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.proxy_ndp=1")
    target.sh(f"ip -6 neigh add proxy {PROXIED} dev {h0.port.name} router")
    target.send(h0.port, solicitation(h0))
    target.wait(PROXY_DELAY)
    target.expect(h0.port, proxy_advertisement(h0, router=1))


def test_a_unicast_ns_to_a_proxied_address_is_answered_with_all_proxy_ndp(target, router6):
    """ip6_forward(): with conf/all/proxy_ndp an NDP message to a proxied address is
    handed to local input (its hop limit untouched), not forwarded."""
    h0 = router6[0]
    target.sh("sysctl -w net.ipv6.conf.all.proxy_ndp=1")
    target.sh(f"ip -6 neigh add proxy {PROXIED} dev {h0.port.name}")
    target.send(h0.port, solicitation(h0, unicast_to=h0.port))
    target.expect(h0.port, h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=255) /
                  ICMPv6ND_NA(R=0, S=1, O=0, tgt=PROXIED))
    target.expect_nothing()


def test_without_proxy_ndp_the_solicitation_is_for_another_host(target, router6):
    h0 = router6[0]
    target.sh(f"ip -6 neigh add proxy {PROXIED} dev {h0.port.name}")
    target.send(h0.port, solicitation(h0))
    target.wait(PROXY_DELAY)
    target.expect_nothing()
    assert drops(target) == [("IPV6_NDISC_NS_OTHERHOST", "L4", "icmpv6_rcv")]


def test_a_host_does_not_proxy(target, hosts6):
    h0 = hosts6[0]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.proxy_ndp=1")
    target.sh(f"ip -6 neigh add proxy {PROXIED} dev {h0.port.name}")
    target.send(h0.port, solicitation(h0))
    target.wait(PROXY_DELAY)
    target.expect_nothing()


def test_proxy_entries_are_listed_added_and_deleted(target, router6):
    h0 = router6[0]
    target.sh(f"ip -6 neigh add proxy {PROXIED} dev {h0.port.name}")
    target.sh(f"ip -6 neigh add proxy 2001:db8::6 dev {h0.port.name} router")
    # print_neigh() ends a proxy entry with "proxy " (the table is a hash: sorted here)
    listed = sorted(target.sh("ip -6 neigh show proxy").splitlines())
    assert listed == [f"{PROXIED} dev p0 proxy ", "2001:db8::6 dev p0 router proxy "]
    target.sh(f"ip -6 neigh del proxy {PROXIED} dev {h0.port.name}")
    assert target.sh("ip -6 neigh show proxy") == "2001:db8::6 dev p0 router proxy \n"
    assert PROXIED not in target.sh(f"ip -6 neigh show dev {h0.port.name}")  # not a neighbour entry
