"""nftables data maps on real frames: the value a rule sets or NATs to is
looked up by the packet's own fields, and a key the map lacks breaks the rule
(nft_lookup_eval() returns NFT_BREAK), so the chain goes on with the next one.

Cases: a port-forward map keyed by `address . port` and its replies, marks
from an interval map steering policy routing, SNAT by source prefix, a miss,
and elements added and deleted while traffic runs.
"""
from __future__ import annotations

import re

import pytest
from scapy.layers.inet import TCP, UDP

from harness.testing import counted_by_comment

pytestmark = pytest.mark.requires("nftables")


# `fwd` is an nft keyword (the fwd statement): nft 1.0.6 refuses it as a map name
PORT_FORWARD = """
table ip nat {
    map portfwd {
        type ipv4_addr . inet_service : ipv4_addr . inet_service
        elements = { 10.0.0.1 . 8080 : 10.0.1.2 . 80, 10.0.0.1 . 2222 : 10.0.2.2 . 22 }
    }
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        dnat to ip daddr . tcp dport map @portfwd
    }
}
"""


@pytest.mark.requires("conntrack")
def test_a_port_forward_map_dnats_each_address_and_port_pair_and_replies_are_un_natted(target, router):
    """The map's data is `address . port`: both are rewritten in PREROUTING,
    each pair to its own server, and the server's reply leaves from the
    address and port the client asked for."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin=PORT_FORWARD)
    target.send(h0.port, h0.to_dut(id=11) / TCP(sport=40000, dport=8080, flags="S", seq=1))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=11, ttl=63) /
                  TCP(sport=40000, dport=80, flags="S", seq=1))
    target.send(h0.port, h0.to_dut(id=12) / TCP(sport=40001, dport=2222, flags="S", seq=1))
    target.expect(h2.port, h2.from_dut(src=h0.ip, dst=h2.ip, id=12, ttl=63) /
                  TCP(sport=40001, dport=22, flags="S", seq=1))
    target.send(h1.port, h1.to_dut(src=h1.ip, dst=h0.ip, id=13) / TCP(sport=80, dport=40000, flags="SA", seq=100, ack=2))
    target.expect(h0.port, h0.from_dut(src=h0.dut_ip, dst=h0.ip, id=13, ttl=63) /
                  TCP(sport=8080, dport=40000, flags="SA", seq=100, ack=2))
    target.expect_nothing()
    entries = sorted((e.original, e.reply) for e in target.conntrack() if e.proto == "tcp")
    assert entries == [((h0.ip, h0.dut_ip, 40000, 8080), (h1.ip, h0.ip, 80, 40000)),
                       ((h0.ip, h0.dut_ip, 40001, 2222), (h2.ip, h0.ip, 22, 40001))]


def marks_ruleset(map_body: str, counted_marks: dict[str, int]) -> str:
    """Table t: `meta mark set ip saddr map @marks` in prerouting, a counter
    per mark (named by its comment) in forward."""
    counters = "\n".join(f'        meta mark {mark} counter comment "{name}"' for name, mark in counted_marks.items())
    return f"""
table ip t {{
    map marks {{
        type ipv4_addr : mark
{map_body}
    }}
    chain prerouting {{
        type filter hook prerouting priority mangle; policy accept;
        meta mark set ip saddr map @marks
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
{counters}
    }}
}}
"""


MARKS = marks_ruleset("        flags interval\n        elements = { 10.0.0.0/28 : 1, 10.0.0.100-10.0.0.109 : 2 }",
                      {"mark 1": 1, "mark 2": 2, "no mark": 0})


def test_marks_from_an_interval_map_steer_policy_routing_and_a_miss_leaves_the_mark(target, router):
    """The mark is set in PREROUTING, before the route lookup: mark 2 takes
    the `fwmark 2` table's route out of p2; a source in no range of the map
    breaks the rule, keeps mark 0 and the main table's route."""
    h0, h1, h2 = router
    target.sh("ip rule add fwmark 2 lookup 100")
    target.sh(f"ip route add {h1.ip}/32 via {h2.ip} table 100")
    target.sh("nft -f -", stdin=MARKS)
    before = counted_by_comment(target)
    for src, ident, egress in (("10.0.0.2", 21, h1), ("10.0.0.15", 22, h1), ("10.0.0.105", 23, h2),
                               ("10.0.0.50", 24, h1)):
        l4 = UDP(sport=1000 + ident, dport=53)
        target.send(h0.port, h0.to_dut(src=src, dst=h1.ip, id=ident) / l4)
        target.expect(egress.port, egress.from_dut(src=src, dst=h1.ip, id=ident, ttl=63) / l4)
    target.expect_nothing()
    counts = counted_by_comment(target)
    assert {name: counts[name] - before.get(name, 0) for name in counts} == {"mark 1": 2, "mark 2": 1, "no mark": 1}


def test_snat_by_source_prefix_from_an_anonymous_map_and_replies_come_back(target, router):
    """`snat to ip saddr map { prefix : address }`: each prefix leaves with
    its own address; a source in neither prefix is not NATed (the rule
    breaks, no other rule binds: a null binding keeps the source)."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin="""
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" snat to ip saddr map { 10.0.0.0/28 : 10.0.1.100, 10.0.0.16/28 : 10.0.1.101 }
    }
}
""")
    for src, ident, translated in (("10.0.0.2", 31, "10.0.1.100"), ("10.0.0.20", 32, "10.0.1.101"),
                                   ("10.0.0.40", 33, "10.0.0.40")):
        l4 = UDP(sport=5000 + ident, dport=53) / b"q"
        target.send(h0.port, h0.to_dut(src=src, dst=h1.ip, id=ident) / l4)
        target.expect(h1.port, h1.from_dut(src=translated, dst=h1.ip, id=ident, ttl=63) / l4)
    reply = UDP(sport=53, dport=5031) / b"a"
    target.send(h1.port, h1.to_dut(src=h1.ip, dst="10.0.1.100", id=34) / reply)
    target.expect(h0.port, h0.from_dut(src=h1.ip, dst="10.0.0.2", id=34, ttl=63) / reply)
    target.expect_nothing()


@pytest.mark.requires("conntrack")
def test_a_nat_map_giving_an_address_and_a_port_range_dnats_within_the_range(target, router):
    """Data `ADDR . PORT-PORT` (an interval concatenation: nft_nat_eval() reads
    NFTA_NAT_REG_PROTO_MAX after the minimum): a port already in the range is
    kept (get_unique_tuple(): the tuple is in range), one outside it gets a
    port of the range, here its only one; the reply leaves from the address
    and port the client asked for."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin="""
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        dnat ip to ip saddr . udp dport map { %s . 5060 : %s . 5000-5100, %s . 5061 : %s . 7000-7000 }
    }
}
""" % (h0.ip, h1.ip, h0.ip, h2.ip))
    assert "map { %s . 5060 : %s . 5000-5100, %s . 5061 : %s . 7000 }" % (h0.ip, h1.ip, h0.ip, h2.ip) in \
        target.sh("nft list table ip nat")
    target.send(h0.port, h0.to_dut(id=51) / UDP(sport=40000, dport=5060) / b"in range")
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=51, ttl=63) / UDP(sport=40000, dport=5060) / b"in range")
    target.send(h0.port, h0.to_dut(id=52) / UDP(sport=40001, dport=5061) / b"moved")
    target.expect(h2.port, h2.from_dut(src=h0.ip, dst=h2.ip, id=52, ttl=63) / UDP(sport=40001, dport=7000) / b"moved")
    target.send(h2.port, h2.to_dut(src=h2.ip, dst=h0.ip, id=53) / UDP(sport=7000, dport=40001) / b"back")
    target.expect(h0.port, h0.from_dut(src=h0.dut_ip, dst=h0.ip, id=53, ttl=63) / UDP(sport=5061, dport=40001) / b"back")
    target.expect_nothing()


def test_a_key_missing_from_a_nat_map_breaks_the_rule_and_the_next_rule_decides(target, router):
    """A miss is NFT_BREAK, not a verdict: the chain goes on, and the next
    rule's DNAT applies."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin="""
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        dnat to udp dport map { 53 : 10.0.1.2, 123 : 10.0.1.2 }
        dnat to 10.0.2.2
    }
}
""")
    for dport, ident, server in ((53, 41, h1), (54, 42, h2), (123, 43, h1)):
        l4 = UDP(sport=6000, dport=dport) / b"x"
        target.send(h0.port, h0.to_dut(id=ident) / l4)
        target.expect(server.port, server.from_dut(src=h0.ip, dst=server.ip, id=ident, ttl=63) / l4)
    target.expect_nothing()


RUNTIME = marks_ruleset("", {"mark 5": 5, "mark 6": 6})


def test_elements_added_and_deleted_at_run_time_change_the_next_packet(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=RUNTIME)

    def marks_of_one_packet(ident: int) -> set[str]:
        before = counted_by_comment(target)
        l4 = UDP(sport=7000, dport=7)
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=ident) / l4)
        target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=ident, ttl=63) / l4)
        return {name for name, packets in counted_by_comment(target).items() if packets != before.get(name, 0)}

    assert marks_of_one_packet(51) == set()
    target.sh("nft add element ip t marks { 10.0.0.2 : 5, 10.0.0.3 : 6 }")
    assert marks_of_one_packet(52) == {"mark 5"}
    target.sh("nft delete element ip t marks { 10.0.0.2 }")
    assert marks_of_one_packet(53) == set()
    target.sh("nft add element ip t marks { 10.0.0.2 : 6 }")
    assert marks_of_one_packet(54) == {"mark 6"}
    assert target.sh("nft list map ip t marks") == """table ip t {
\tmap marks {
\t\ttype ipv4_addr : mark
\t\telements = { 10.0.0.2 : 0x00000006, 10.0.0.3 : 0x00000006 }
\t}
}
"""
