"""NAT placement and conntrack: where addresses change, and what replies see."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

pytestmark = pytest.mark.requires("nftables")

PORT_FORWARD = """
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        udp dport 8080 dnat to 10.0.1.2:80
        tcp dport 8080 dnat to 10.0.1.2:80
    }
}
table ip filter {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ip daddr 10.0.1.2 udp dport 80 accept
        ip daddr 10.0.1.2 tcp dport 80 accept
        ct state established,related accept
    }
}
"""

MASQUERADE = """
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
"""


def test_dnat_port_forward_happens_in_prerouting_so_forward_sees_the_new_address(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=PORT_FORWARD)
    target.send(h0.port, h0.to_dut(dst=h0.dut_ip, id=21) / UDP(sport=5000, dport=8080) / b"fwd")
    # the filter chain accepts only 10.0.1.2:80, so this frame proves FORWARD saw the DNAT
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=21, ttl=63) / UDP(sport=5000, dport=80) / b"fwd")
    target.expect_nothing()


@pytest.mark.requires("conntrack")
def test_replies_to_a_dnat_flow_are_un_natted_from_the_conntrack_entry(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=PORT_FORWARD)
    target.send(h0.port, h0.to_dut(dst=h0.dut_ip, id=22) / UDP(sport=5001, dport=8080) / b"q")
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=22, ttl=63) / UDP(sport=5001, dport=80) / b"q")
    target.send(h1.port, h1.to_dut(src=h1.ip, dst=h0.ip, id=23) / UDP(sport=80, dport=5001) / b"a")
    target.expect(h0.port, h0.from_dut(src=h0.dut_ip, dst=h0.ip, id=23, ttl=63) / UDP(sport=8080, dport=5001) / b"a")
    entries = [e for e in target.conntrack() if e.proto == "udp"]
    assert [(e.original, e.reply) for e in entries] == [
        ((h0.ip, h0.dut_ip, 5001, 8080), (h1.ip, h0.ip, 80, 5001))]
    assert {"dnat", "seen-reply"} <= entries[0].status


def test_masquerade_in_postrouting_rewrites_the_source_to_the_egress_address(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=MASQUERADE)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=31) / UDP(sport=6000, dport=53) / b"dns?")
    # the source port is kept: no other connection uses 10.0.1.1:6000 -> 10.0.1.2:53
    target.expect(h1.port, h1.from_dut(src=h1.dut_ip, dst=h1.ip, id=31, ttl=63) / UDP(sport=6000, dport=53) / b"dns?")
    target.send(h1.port, h1.to_dut(src=h1.ip, dst=h1.dut_ip, id=32) / UDP(sport=53, dport=6000) / b"dns!")
    target.expect(h0.port, h0.from_dut(src=h1.ip, dst=h0.ip, id=32, ttl=63) / UDP(sport=53, dport=6000) / b"dns!")


def test_masquerade_moves_a_clashing_source_port(target, router):
    """Two hosts use the same source port to the same server: the second one's
    port changes (the first keeps its own)."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin=MASQUERADE)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=41) / UDP(sport=7000, dport=53))
    first = IP(target.frame_left(h1.port, "h0's datagram, masqueraded")[14:])
    target.send(h2.port, h2.to_dut(dst=h1.ip, id=42) / UDP(sport=7000, dport=53))
    second = IP(target.frame_left(h1.port, "h2's datagram, masqueraded")[14:])
    assert (first.src, first[UDP].sport) == (h1.dut_ip, 7000)
    assert second.src == h1.dut_ip and second[UDP].sport != 7000
    assert 1024 <= second[UDP].sport <= 65535


def test_output_dnat_re_routes_a_locally_generated_packet(target, hosts):
    h1, h2 = hosts[1], hosts[2]
    target.sh("nft -f -", stdin="""
table ip nat {
    chain output {
        type nat hook output priority -100; policy accept;
        ip daddr 10.0.1.2 udp dport 53 dnat to 10.0.2.2:5353
    }
}
""")
    sock = target.socket("udp", (h1.dut_ip, 4444))
    sock.sendto(b"query", (h1.ip, 53))
    # the route to 10.0.1.2 said p1; after DNAT in OUTPUT the packet is routed again
    ip = IP(target.frame_left(h2.port, "the datagram, DNATed in OUTPUT and routed again")[14:])
    assert (ip.src, ip.dst, ip[UDP].sport, ip[UDP].dport, bytes(ip[UDP].payload)) == \
        (h1.dut_ip, h2.ip, 4444, 5353, b"query")
    target.expect_nothing([h1.port])


@pytest.mark.requires("conntrack")
def test_stateful_forward_firewall_drops_new_from_outside_and_accepts_replies(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin="""
table ip filter {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "p0" ct state new accept
    }
}
""")
    target.send(h1.port, h1.to_dut(dst=h0.ip, id=51) / UDP(sport=9, dport=9) / b"unsolicited")
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_FORWARD")]
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=52) / TCP(sport=3333, dport=80, flags="S", seq=1))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=52, ttl=63) / TCP(sport=3333, dport=80, flags="S", seq=1))
    target.send(h1.port, h1.to_dut(dst=h0.ip, id=53) / TCP(sport=80, dport=3333, flags="SA", seq=100, ack=2))
    target.expect(h0.port, h0.from_dut(src=h1.ip, dst=h0.ip, id=53, ttl=63) /
                  TCP(sport=80, dport=3333, flags="SA", seq=100, ack=2))
    entries = [e for e in target.conntrack() if e.proto == "tcp"]
    assert [(e.state, e.original) for e in entries] == [("SYN_RECV", (h0.ip, h1.ip, 3333, 80))]


def test_port_unreachable_for_a_dnat_flow_returns_related_and_un_natted(target, router):
    """The inner packet of the ICMP error is translated back too: h0 sees an
    error about the packet it sent (to 10.0.0.1:8080), not about 10.0.1.2:80."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=PORT_FORWARD)
    sent = h0.to_dut(dst=h0.dut_ip, id=61) / UDP(sport=5002, dport=8080) / b"closed?"
    target.send(h0.port, sent)
    forwarded = target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=61, ttl=63) /
                              UDP(sport=5002, dport=80) / b"closed?")
    error = h1.to_dut(src=h1.ip, dst=h0.ip, id=62) / ICMP(type=3, code=3) / forwarded[14:]
    target.send(h1.port, error)
    got = IP(target.frame_left(h0.port, "the port unreachable, un-DNATed")[14:])
    assert (got.src, got.dst, got[ICMP].type, got[ICMP].code) == (h0.dut_ip, h0.ip, 3, 3)
    inner = got[ICMP].payload
    assert (inner.src, inner.dst, inner.sport, inner.dport) == (h0.ip, h0.dut_ip, 5002, 8080)


def test_nft_drop_is_netfilter_drop_at_the_hook_of_its_chain(target, hosts):
    h0 = hosts[0]
    target.sh("nft -f -", stdin="""
table inet filter {
    chain input {
        type filter hook input priority filter; policy accept;
        udp dport 6666 counter drop
    }
}
""")
    target.send(h0.port, h0.to_dut(id=71) / UDP(sport=1, dport=6666) / b"no")
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_INPUT")]
    counted = [c for c in target.counters() if "6666" in c.rule]
    assert [(c.chain, c.packets) for c in counted] == [("input", 1)]


def test_reject_answers_with_port_unreachable_host_unreachable_or_tcp_reset(target, hosts):
    h0 = hosts[0]
    target.sh("nft -f -", stdin="""
table ip filter {
    chain input {
        type filter hook input priority filter; policy accept;
        udp dport 1001 reject
        udp dport 1002 reject with icmp type host-unreachable
        tcp dport 1003 reject with tcp reset
    }
}
""")
    for dport, code in ((1001, 3), (1002, 1)):
        sent = h0.to_dut(id=dport) / UDP(sport=1, dport=dport)
        target.send(h0.port, sent)
        target.expect(h0.port, h0.icmp_error(3, code, sent))
    target.send(h0.port, h0.to_dut(id=1003) / TCP(sport=2, dport=1003, flags="S", seq=41))
    # nf_reject_iphdr_put(): TOS 0, DF, IP ID 0
    target.expect(h0.port, h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags="DF", id=0) /
                  TCP(sport=1003, dport=2, flags="RA", seq=0, ack=42, window=0))


@pytest.mark.requires("sockets")
def test_redirect_delivers_to_a_local_port_at_the_ingress_address(target, hosts):
    """redirect is DNAT to the primary address of the interface the packet came
    in on; the reply leaves from the port the client asked for."""
    h1 = hosts[1]
    target.sh("nft -f -", stdin="""
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        udp dport 53 redirect to :5353
    }
}
""")
    sock = target.socket("udp", ("0.0.0.0", 5353))
    target.send(h1.port, h1.to_dut(dst="192.0.2.53", id=101) / UDP(sport=3000, dport=53) / b"where?")
    assert sock.recv() == (b"where?", (h1.ip, 3000))
    sock.sendto(b"here", (h1.ip, 3000))
    ip = IP(target.frame_left(h1.port, "the answer, from the address the query was DNATed from")[14:])
    assert (ip.src, ip.dst, ip[UDP].sport, ip[UDP].dport, bytes(ip[UDP].payload)) == \
        ("192.0.2.53", h1.ip, 53, 3000, b"here")


def test_snat_to_an_address_and_port_range_maps_each_connection_into_the_range(target, router):
    """snat to ADDR:LO-HI maps every connection into the range, even when the
    original source port was free outside it (NF_NAT_RANGE_PROTO_SPECIFIED)."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin="""
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" meta l4proto udp snat to 10.0.1.100:20000-20001
    }
}
""")
    ports = []
    for sport in (6100, 6101):
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=sport) / UDP(sport=sport, dport=53))
        got = IP(target.frame_left(h1.port, f"the datagram from port {sport}, SNATed")[14:])
        assert got.src == "10.0.1.100"
        ports.append(got[UDP].sport)
    assert sorted(ports) == [20000, 20001]
