"""Redirects a router DUT sends (net/ipv6/ip6_output.c ip6_forward() ->
net/ipv6/ndisc.c ndisc_send_redirect()): a packet forwarded out of the port it
came in on tells its sender of the better first hop, from the port's link-local
address, with the target's link-layer address when the DUT knows it and as much
of the packet as fits in 1280 bytes (in 8-byte units); the packet is forwarded
all the same. Rate limited per destination and per sender (inet_peer, 1 s,
a burst of 6)."""
from __future__ import annotations

from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6ND_Redirect, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from harness.testing import drops

NEIGHBOUR, NEIGHBOUR_MAC = "2001:db8::9", "02:00:00:00:09:09"  # another host on h0's wire
ROUTER_LL, ROUTER_MAC = "fe80::3", "02:00:00:00:03:03"  # another router on h0's wire
REMOTE = "2001:db8:77::1"  # a destination behind that router
PAYLOAD = b"x" * 52  # an IPv6 packet of 100 bytes: 96 of them fit the redirected header option


def redirected_header(packet: bytes, options_len: int = 0) -> bytes:
    """ND_OPT_REDIRECT_HDR (type 4): 8-byte units, 6 reserved bytes, then the
    packet's first rd_len - 8 bytes, rd_len = min(1280 - 40 - 40 - options_len,
    len(packet) + 8) rounded down to 8 (ndisc_send_redirect())."""
    rd_len = min(1280 - 40 - 40 - options_len, len(packet) + 8) & ~7
    return bytes([4, rd_len // 8]) + bytes(6) + packet[:rd_len - 8]


def redirect(host, target: str, dest: str, about: bytes, target_mac: str | None) -> Ether:
    """The redirect the DUT sends `host` about packet `about` (hop limit 255, from
    the port's link-local address, no flow label: ndisc_send_skb())."""
    options = ICMPv6NDOptDstLLAddr(lladdr=target_mac) if target_mac else None
    message = ICMPv6ND_Redirect(tgt=target, dst=dest)
    if options is not None:
        message = message / options
    return host.from_dut6(src=host.dut_ll6, dst=host.ip6, hlim=255) / message / \
        Raw(redirected_header(about, 8 if options is not None else 0))


def test_a_packet_to_a_neighbour_on_its_own_wire_gets_a_redirect_and_is_forwarded(target, router6):
    h0 = router6[0]
    target.sh(f"ip -6 neigh replace {NEIGHBOUR} lladdr {NEIGHBOUR_MAC} dev p0 nud permanent")
    packet = h0.to_dut6(dst=NEIGHBOUR) / UDP(sport=4000, dport=53) / PAYLOAD
    target.send(h0.port, packet)
    about = bytes(packet)[14:]
    # sent before the packet goes on through the FORWARD hook
    target.expect(h0.port, redirect(h0, NEIGHBOUR, NEIGHBOUR, about, NEIGHBOUR_MAC))
    target.expect(h0.port, Ether(src=h0.port.mac, dst=NEIGHBOUR_MAC) /
                  IPv6(src=h0.ip6, dst=NEIGHBOUR, hlim=63) / UDP(sport=4000, dport=53) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == []


def test_the_redirect_leaves_out_a_target_address_the_dut_has_not_resolved(target, router6):
    h0 = router6[0]
    packet = h0.to_dut6(dst=NEIGHBOUR) / UDP(sport=4000, dport=53) / PAYLOAD
    target.send(h0.port, packet)
    target.expect(h0.port, redirect(h0, NEIGHBOUR, NEIGHBOUR, bytes(packet)[14:], None))
    # then the forwarded packet solicits the neighbour, from the link-local address (its source is not ours)
    target.expect(h0.port, Ether(src=h0.port.mac, dst="33:33:ff:00:00:09") /
                  IPv6(src=h0.dut_ll6, dst="ff02::1:ff00:9", hlim=255) / ICMPv6ND_NS(tgt=NEIGHBOUR) /
                  ICMPv6NDOptSrcLLAddr(lladdr=h0.port.mac))


def test_a_packet_routed_back_through_another_router_names_that_router(target, router6):
    h0 = router6[0]
    target.sh(f"ip -6 neigh replace {ROUTER_LL} lladdr {ROUTER_MAC} dev p0 nud permanent")
    target.sh(f"ip -6 route add 2001:db8:77::/64 via {ROUTER_LL} dev p0")
    packet = h0.to_dut6(dst=REMOTE) / UDP(sport=4000, dport=53) / PAYLOAD
    target.send(h0.port, packet)
    target.expect(h0.port, redirect(h0, ROUTER_LL, REMOTE, bytes(packet)[14:], ROUTER_MAC))
    target.expect(h0.port, Ether(src=h0.port.mac, dst=ROUTER_MAC) /
                  IPv6(src=h0.ip6, dst=REMOTE, hlim=63) / UDP(sport=4000, dport=53) / PAYLOAD)


def test_no_redirect_names_a_router_by_its_global_address(target, router6):
    """The target of a redirect is the destination itself or a link-local router."""
    h0 = router6[0]
    target.sh(f"ip -6 neigh replace 2001:db8::3 lladdr {ROUTER_MAC} dev p0 nud permanent")
    target.sh("ip -6 route add 2001:db8:77::/64 via 2001:db8::3 dev p0")
    target.send(h0.port, h0.to_dut6(dst=REMOTE) / UDP(sport=4000, dport=53) / PAYLOAD)
    target.expect(h0.port, Ether(src=h0.port.mac, dst=ROUTER_MAC) /
                  IPv6(src=h0.ip6, dst=REMOTE, hlim=63) / UDP(sport=4000, dport=53) / PAYLOAD)
    target.expect_nothing()


def test_a_burst_to_one_destination_gets_six_redirects(target, router6):
    h0 = router6[0]
    target.sh(f"ip -6 neigh replace {NEIGHBOUR} lladdr {NEIGHBOUR_MAC} dev p0 nud permanent")
    target.send(h0.port, [h0.to_dut6(dst=NEIGHBOUR) / UDP(sport=4000 + i, dport=53) / PAYLOAD for i in range(8)])
    frames = target.collect(h0.port)
    assert [IPv6(f[14:]).nh for f in frames].count(58) == 6
    assert [IPv6(f[14:]).nh for f in frames].count(17) == 8


def test_a_packet_between_two_ports_gets_no_redirect(target, router6):
    h0, h1 = router6[0], router6[1]
    target.send(h0.port, h0.to_dut6(dst=h1.ip6) / UDP(sport=4000, dport=53) / PAYLOAD)
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63) / UDP(sport=4000, dport=53) / PAYLOAD)
    target.expect_nothing()
