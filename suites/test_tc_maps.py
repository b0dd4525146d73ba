"""TC programs driven by maps filled with bpftool: a classifier whose marks pick
the policy-routing table, and a header-rewriting NAT at TC egress, which runs
after netfilter's POSTROUTING SNAT and so sees (and rewrites) the translated
source. The same clang-built objects and the same bpftool commands on both
targets."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP

from harness import bpfmaps

pytestmark = pytest.mark.requires("tc", "bpftool")


def attach(target, port: str, direction: str, obj, section: str) -> None:
    target.sh(f"tc qdisc add dev {port} clsact")
    target.sh(f"tc filter add dev {port} {direction} bpf da obj {obj} sec {section}")


def be32(address: str) -> bytes:
    return ipaddress.IPv4Address(address).packed


@pytest.mark.requires("nftables")
def test_marks_from_the_port_policy_map_pick_the_routing_table_and_netfilter_sees_them(target, router, bpf_objects):
    """The mark and priority written at TC ingress are on the skb in PREROUTING;
    the mark selects table 100 (ip rule fwmark), and ip_forward() then sets the
    priority from the TOS (rt_tos2priority: lowdelay 0x10 -> TC_PRIO_INTERACTIVE 6)."""
    h0, h1, h2 = router
    attach(target, "p0", "ingress", bpf_objects["tc_mark"], "tc")
    policy = bpfmaps.map_of(target, "p0", "port_policy", hook="tc/ingress")
    policy.update(struct.pack("<H", 53), struct.pack("<II", 7, 3))  # key: port in host order; mark 7, priority 3
    target.sh("ip route add 10.9.0.0/24 via 10.0.1.2")
    target.sh("ip route add 10.9.0.0/24 via 10.0.2.2 table 100")
    target.sh("ip rule add fwmark 7 table 100")
    target.sh("nft -f -", stdin="""
table ip mangle {
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        meta mark 7 meta priority 0:3 counter
    }
    chain forward {
        type filter hook forward priority mangle; policy accept;
        meta mark 7 meta priority 0:6 counter
    }
}
""")
    target.send(h0.port, h0.to_dut(dst="10.9.0.5", id=11, tos=0x10) / UDP(sport=4000, dport=53) / b"marked")
    target.expect(h2.port, h2.from_dut(src=h0.ip, dst="10.9.0.5", id=11, tos=0x10, ttl=63) /
                  UDP(sport=4000, dport=53) / b"marked")
    target.send(h0.port, h0.to_dut(dst="10.9.0.5", id=12) / UDP(sport=4000, dport=54) / b"plain")
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst="10.9.0.5", id=12, ttl=63) /
                  UDP(sport=4000, dport=54) / b"plain")
    target.expect_nothing()
    assert [(c.chain, c.packets) for c in target.counters() if c.table == "mangle"] == \
        [("prerouting", 1), ("forward", 1)]
    assert policy.lookup(struct.pack("<H", 53)) == struct.pack("<II", 7, 3)


MASQUERADE_ON_P1 = """
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
"""


@pytest.fixture
def masquerade_then_tc_snat(target, router, bpf_objects):
    """POSTROUTING masquerades what leaves p1; tc_nat's egress program on p1
    rewrites sources found in its `snat` map, which the test fills."""
    target.sh("nft -f -", stdin=MASQUERADE_ON_P1)
    attach(target, "p1", "egress", bpf_objects["tc_nat"], "tc/egress")
    return bpfmaps.map_of(target, "p1", "snat", hook="tc/egress")


def test_tc_egress_nat_sees_the_source_postrouting_snat_wrote(target, router, masquerade_then_tc_snat):
    """POSTROUTING masquerades 10.0.0.2 to 10.0.1.1; TC egress on p1 then finds
    10.0.1.1 in its map (the original source's entry never matches) and rewrites
    it, fixing the IP and L4 checksums."""
    h0, h1 = router[0], router[1]
    masquerade_then_tc_snat.update(be32(h1.dut_ip), be32("10.0.1.77"))
    masquerade_then_tc_snat.update(be32(h0.ip), be32("203.0.113.9"))
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=21) / UDP(sport=5000, dport=53) / b"udp")
    target.expect(h1.port, h1.from_dut(src="10.0.1.77", dst=h1.ip, id=21, ttl=63) /
                  UDP(sport=5000, dport=53) / b"udp")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=22) / TCP(sport=5001, dport=80, flags="S", seq=9))
    target.expect(h1.port, h1.from_dut(src="10.0.1.77", dst=h1.ip, id=22, ttl=63) /
                  TCP(sport=5001, dport=80, flags="S", seq=9))
    target.expect_nothing()


@pytest.mark.requires("conntrack")
def test_conntrack_knows_only_the_netfilter_translation_not_the_tc_rewrite(target, router, masquerade_then_tc_snat):
    h0, h1 = router[0], router[1]
    masquerade_then_tc_snat.update(be32(h1.dut_ip), be32("10.0.1.77"))
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=31) / UDP(sport=5002, dport=53) / b"q")
    sent = IP(target.frame_left(h1.port, "the datagram, masqueraded then rewritten at tc egress")[14:])
    assert sent.src == "10.0.1.77"
    assert [(e.original, e.reply) for e in target.conntrack() if e.proto == "udp"] == \
        [((h0.ip, h1.ip, 5002, 53), (h1.ip, h1.dut_ip, 53, 5002))]
