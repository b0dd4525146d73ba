"""XDP and TC programs on IPv6 frames: the same clang-built objects on both targets
parse the IPv6 header (and in TC its extension headers) and act on what they find.
The DUT needs no IPv6 address for any of it: XDP and TC ingress see the frame before
the IPv6 stack does, and each verdict here (XDP_TX, XDP_DROP, TC_ACT_SHOT, a redirect)
decides the frame's fate there."""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether

from harness.testing import drops

TESTER_IP6, DUT_IP6 = "2001:db8::2", "2001:db8::1"


def udp6(host, dport: int, *exthdrs, hlim: int = 9) -> Ether:
    """An IPv6 UDP datagram from the tester behind `host` to the DUT's port."""
    packet = IPv6(src=TESTER_IP6, dst=DUT_IP6, hlim=hlim)
    for header in exthdrs:
        packet = packet / header
    return Ether(src=host.mac, dst=host.port.mac) / packet / UDP(sport=4000, dport=dport) / b"six"


def attach_tc(target, port, obj) -> None:
    target.sh(f"tc qdisc add dev {port.name} clsact")
    target.sh(f"tc filter add dev {port.name} ingress bpf da obj {obj} sec tc")


@pytest.mark.requires("xdp")
def test_xdp_tx_reflects_an_ipv6_datagram_with_addresses_and_ports_swapped(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh(f"ip link set dev {h0.port.name} xdp obj {bpf_objects['xdp_ipv6_reflector']} sec xdp")
    target.send(h0.port, udp6(h0, 7777))
    got = Ether(target.frame_left(h0.port, "the datagram, reflected by XDP_TX"))
    assert (got.src, got.dst) == (h0.port.mac, h0.mac)
    assert (got[IPv6].src, got[IPv6].dst, got[IPv6].hlim) == (DUT_IP6, TESTER_IP6, 64)
    assert (got[UDP].sport, got[UDP].dport, bytes(got[UDP].payload)) == (7777, 4000, b"six")
    # swapping keeps the checksum: the frame is byte for byte the one scapy builds for the reply
    assert bytes(got) == bytes(Ether(src=h0.port.mac, dst=h0.mac) / IPv6(src=DUT_IP6, dst=TESTER_IP6, hlim=64) /
                               UDP(sport=7777, dport=4000) / b"six")


@pytest.mark.requires("xdp", "drop_reasons")
def test_xdp_drops_an_ipv6_datagram_to_the_discard_port(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh(f"ip link set dev {h0.port.name} xdp obj {bpf_objects['xdp_ipv6_reflector']} sec xdp")
    target.send(h0.port, udp6(h0, 9))
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", "XDP", "veth_xdp_rcv_skb")]


@pytest.mark.requires("tc", "drop_reasons")
@pytest.mark.parametrize("exthdrs", [(), (IPv6ExtHdrHopByHop(),), (IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt())],
                         ids=["no extension header", "hop-by-hop", "hop-by-hop and destination options"])
def test_tc_walks_the_extension_headers_to_udp_and_drops_the_discard_port(target, hosts, bpf_objects, exthdrs):
    h0 = hosts[0]
    attach_tc(target, h0.port, bpf_objects["tc_ipv6_exthdr"])
    target.send(h0.port, udp6(h0, 9, *exthdrs))
    target.expect_nothing()
    assert drops(target) == [("TC_INGRESS", "TC_INGRESS", "__netif_receive_skb_core")]


@pytest.mark.requires("tc")
@pytest.mark.parametrize("dport, exthdrs", [
    (53, (IPv6ExtHdrDestOpt(),)),
    (9, (IPv6ExtHdrDestOpt(),) * 5),  # a fifth header is past the walk: UDP is never reached
], ids=["another port", "past the fourth extension header"])
def test_tc_sends_any_other_ipv6_packet_back_unchanged(target, hosts, bpf_objects, dport, exthdrs):
    h0 = hosts[0]
    attach_tc(target, h0.port, bpf_objects["tc_ipv6_exthdr"])
    frame = udp6(h0, dport, *exthdrs)
    target.send(h0.port, frame)
    assert target.frame_left(h0.port, "the packet, redirected back by TC") == bytes(frame)
