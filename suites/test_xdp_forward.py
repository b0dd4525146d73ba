"""An XDP forwarder built on bpf_fib_lookup (programs/xdp_fib_forward.c, after
samples/bpf/xdp_fwd_kern.c), the same object on both targets: what it forwards by
itself, bypassing the stack and netfilter, and what it hands to the stack because the
FIB lookup said so (no neighbour, forwarding off, TTL, a packet too big for the
egress MTU), where Linux then resolves the neighbour, sends the ICMP or drops."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from harness.testing import counted_in_chain

pytestmark = pytest.mark.requires("xdp")

FORWARD_COUNTER = "table ip t {\n chain forward {\n type filter hook forward priority 0;\n  counter\n }\n}\n"


@pytest.fixture
def fib_router(target, router, bpf_objects):
    """`router` with the forwarder on p0, and a counter in the forward hook."""
    target.sh("nft -f -", stdin=FORWARD_COUNTER)
    target.sh(f"ip link set dev {router[0].port.name} xdp obj {bpf_objects['xdp_fib_forward']} sec xdp")
    return router


def send_with_a_complete_lookup(target, fib_router):
    """h0 sends to h1, whose neighbour entry the DUT has: the frame sent."""
    h0, h1 = fib_router[0], fib_router[1]
    sent = h0.to_dut(dst=h1.ip, id=11, ttl=9, tos=0x10) / UDP(sport=1, dport=9) / b"fast path"
    target.send(h0.port, sent)
    return sent


def test_a_complete_lookup_forwards_in_xdp_with_the_neighbours_macs_and_never_reaches_netfilter(target, fib_router):
    h1 = fib_router[1]
    sent = send_with_a_complete_lookup(target, fib_router)
    got = target.frame_left(h1.port, "the frame, forwarded by XDP")
    expected = sent.copy()
    expected[Ether].src, expected[Ether].dst = h1.port.mac, h1.mac
    expected[IP].ttl = 8
    expected[IP].chksum = None  # what scapy computes from scratch: the program's incremental update must agree
    assert got == bytes(Ether(bytes(expected)))
    assert counted_in_chain(target, "forward") == 0
    assert target.drops() == []


@pytest.mark.requires("journey.xdp")
def test_a_complete_lookup_s_journey_is_the_xdp_redirect_then_the_transmit_without_netfilter(target, fib_router):
    h0, h1 = fib_router[0], fib_router[1]
    send_with_a_complete_lookup(target, fib_router)
    target.collect(h1.port)
    hops = [(h.stage, h.where, h.verdict) for j in target.journeys() for h in j.hops]
    assert ("XDP", h0.port.name, "REDIRECT") in hops and ("NIC_TX", h1.port.name, "XMIT") in hops
    assert not [stage for stage, _, _ in hops if stage.startswith("NF_")]


def test_no_neighbour_passes_to_the_stack_which_forwards_through_netfilter_and_resolves_it(target, fib_router):
    h0, h1 = fib_router[0], fib_router[1]
    target.sh(f"ip neigh del {h1.ip} dev {h1.port.name}")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=12) / UDP(sport=1, dport=9) / b"slow path")
    request = target.frame_left(h1.port, "the stack's ARP request for h1")
    assert (ARP(request[14:]).op, ARP(request[14:]).pdst) == (1, h1.ip)
    assert counted_in_chain(target, "forward") == 1


def test_forwarding_off_passes_to_the_stack_which_drops_it_without_an_icmp(target, fib_router):
    h0 = fib_router[0]
    target.sh("sysctl -w net.ipv4.ip_forward=0")
    target.send(h0.port, h0.to_dut(dst=fib_router[1].ip, id=13) / UDP(sport=1, dport=9) / b"not a router")
    target.expect_nothing()  # ip_error() sends nothing when the device does not forward
    assert [(d.reason, d.location) for d in target.drops()] == [("IP_INADDRERRORS", "ip_error")]
    assert counted_in_chain(target, "forward") == 0


def test_ttl_1_passes_to_the_stack_which_answers_time_exceeded(target, fib_router):
    h0, h1 = fib_router[0], fib_router[1]
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=14, ttl=1) / UDP(sport=1, dport=9) / b"expiring")
    target.expect_nothing([h1.port])
    reply = target.frame_left(h0.port, "the stack's time exceeded")
    assert (IP(reply[14:])[ICMP].type, IP(reply[14:])[ICMP].code) == (11, 0)


def test_a_packet_over_the_egress_mtu_with_df_passes_to_the_stack_which_answers_frag_needed(target, fib_router):
    h0, h1 = fib_router[0], fib_router[1]
    target.sh(f"ip link set dev {h1.port.name} mtu 1000")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=15, flags="DF") / UDP(sport=1, dport=9) / (b"x" * 1200))
    target.expect_nothing([h1.port])
    reply = target.frame_left(h0.port, "the stack's fragmentation needed")
    icmp = IP(reply[14:])[ICMP]
    assert (icmp.type, icmp.code, icmp.nexthopmtu) == (3, 4, 1000)
    assert counted_in_chain(target, "forward") == 0  # ip_forward() checks the MTU before the forward hook
    assert [(d.reason, d.stage) for d in target.drops()] == [("PKT_TOO_BIG", "IP_FORWARD")]


def test_a_blackhole_route_is_dropped_in_xdp(target, fib_router):
    h0 = fib_router[0]
    target.sh("ip route add blackhole 10.66.0.0/16")
    target.send(h0.port, h0.to_dut(dst="10.66.1.1", id=16) / UDP(sport=1, dport=9) / b"void")
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NOT_SPECIFIED", "XDP")]
    assert counted_in_chain(target, "forward") == 0
