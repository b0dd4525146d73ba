"""nft netdev `fwd` and `dup` (nft_fwd_netdev.c, nft_dup_netdev.c, nf_dup_netdev.c)
on both targets: a netdev chain sends the packet (fwd) or a copy of it (dup) out of
another device by dev_queue_xmit(), past the stack: no routing, no TTL change, the
frame as it came in. `fwd ip to ADDR device DEV` instead lowers the TTL and lets
the neighbour (ARP) give the frame its header. fwd is a verdict (NF_STOLEN): the
stack never sees the packet; dup lets the original go on."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.testing import drops

pytestmark = pytest.mark.requires("nftables")


def netdev_chain(target, hook: str, port, *rules: str) -> None:
    body = "".join(f"  {rule}\n" for rule in rules)
    target.sh("nft -f -", stdin=f'table netdev nd {{\n chain c {{\n type filter hook {hook} device "{port.name}" '
                                f"priority 0;\n{body} }}\n}}\n")


def test_fwd_at_ingress_sends_the_frame_unchanged_out_of_the_other_port(target, hosts):
    h0, h1 = hosts[0], hosts[1]
    netdev_chain(target, "ingress", h0.port, f'udp dport 7 fwd to "{h1.port.name}"')
    sock = target.socket("udp", (h0.dut_ip, 7))
    frame = h0.to_dut(id=1, ttl=1) / UDP(sport=1, dport=7) / b"fwd"
    target.send(h0.port, frame)
    target.expect(h1.port, frame)  # TTL 1 and the DUT's MAC as destination: not routed
    assert sock.recv_all() == []
    assert drops(target) == []


def test_fwd_through_a_map_breaks_the_rule_for_a_key_it_lacks(target, hosts):
    h0, h1, h2 = hosts[0], hosts[1], hosts[2]
    netdev_chain(target, "ingress", h0.port,
                 f'fwd to udp dport map {{ 8 : "{h1.port.name}", 9 : "{h2.port.name}" }}')
    sock = target.socket("udp", (h0.dut_ip, 10))
    to_h2 = h0.to_dut(id=2) / UDP(sport=1, dport=9) / b"nine"
    target.send(h0.port, to_h2)
    target.expect(h2.port, to_h2)
    target.send(h0.port, h0.to_dut(id=3) / UDP(sport=1, dport=10) / b"ten")
    assert sock.recv()[0] == b"ten"


def test_dup_at_ingress_sends_a_copy_and_the_original_goes_up_the_stack(target, hosts):
    h0, h1 = hosts[0], hosts[1]
    netdev_chain(target, "ingress", h0.port, f'udp dport 7 dup to "{h1.port.name}"')
    sock = target.socket("udp", (h0.dut_ip, 7))
    frame = h0.to_dut(id=4) / UDP(sport=1, dport=7) / b"dup"
    target.send(h0.port, frame)
    target.expect(h1.port, frame)
    assert sock.recv()[0] == b"dup"


def test_fwd_at_egress_sends_the_routed_frame_out_of_another_port(target, router):
    h0, h1, h2 = router[0], router[1], router[2]
    netdev_chain(target, "egress", h1.port, f'udp dport 7 fwd to "{h2.port.name}"')
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=5, ttl=9) / UDP(sport=1, dport=7) / b"egress")
    got = Ether(target.frame_left(h2.port, "the routed frame, forwarded at p1's egress"))
    assert (got.src, got.dst, got[IP].ttl, bytes(got[UDP].payload)) == (h1.port.mac, h1.mac, 8, b"egress")
    target.expect_nothing([h1.port])


def test_fwd_to_a_neighbour_lowers_the_ttl_and_takes_the_neighbours_mac(target, hosts):
    h0, h1 = hosts[0], hosts[1]
    netdev_chain(target, "ingress", h0.port, f'udp dport 7 fwd ip to {h1.ip} device "{h1.port.name}"')
    target.send(h0.port, h0.to_dut(dst="10.9.9.9", id=6, ttl=5) / UDP(sport=1, dport=7) / b"neigh")
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst="10.9.9.9", id=6, ttl=4) / UDP(sport=1, dport=7) / b"neigh")
