"""nftables matches and statements, and the iptables front end, on real frames.

Each case loads a small ruleset whose counter rules carry a comment naming
them, sends frames through the DUT and asserts what the kernel did: which
rules counted each frame, the frame that left, the conntrack entry, the drop.
"""
from __future__ import annotations

import re

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from plan import icmp_socket_mask, quoted

pytestmark = pytest.mark.requires("nftables")

COMMENT = re.compile(r'comment "([^"]*)"$')
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"


def counted(target) -> dict[str, int]:
    """Packets counted so far by each counter rule, by the rule's comment."""
    return {m.group(1): c.packets for c in target.counters() if (m := COMMENT.search(c.rule))}


def matched_by(target, deliver) -> set[str]:
    """The comments of the counter rules that counted while `deliver()` ran."""
    before = counted(target)
    deliver()
    return {name for name, packets in counted(target).items() if packets != before.get(name, 0)}


def forward(target, src_host, dst_host, l4, **ip_fields) -> bytes:
    """Send `l4` from src_host's wire to dst_host through the DUT; return the
    forwarded frame (the DUT decrements the TTL, nothing else changes)."""
    fields = {"dst": dst_host.ip, "id": 7, **ip_fields}
    sent = src_host.to_dut(**fields) / l4
    target.send(src_host.port, sent)
    left = dst_host.from_dut(**{**fields, "src": fields.get("src", src_host.ip), "ttl": sent[IP].ttl - 1}) / l4
    return target.expect(dst_host.port, left)


def forwarded_matches(target, src_host, dst_host, l4, **ip_fields) -> set[str]:
    return matched_by(target, lambda: forward(target, src_host, dst_host, l4, **ip_fields))


# ---------------------------------------------------------------- matches

ADDRESSES = """
table ip t {
    set lab_hosts {
        type ipv4_addr
        flags interval
        elements = { 10.0.0.16/28, 10.0.0.40-10.0.0.42 }
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip saddr 10.0.0.0/30 counter comment "prefix"
        ip saddr 10.0.0.5-10.0.0.9 counter comment "range"
        ip saddr { 10.0.0.2, 10.0.0.64/26, 10.0.0.20-10.0.0.29 } counter comment "anonymous set"
        ip saddr @lab_hosts counter comment "named set"
        ip saddr != 10.0.0.0/25 counter comment "outside prefix"
        ip daddr 10.0.2.0/24 counter comment "daddr prefix"
        ip daddr != { 10.0.1.2, 10.0.1.3 } counter comment "daddr not in set"
    }
}
"""


def test_address_prefixes_ranges_and_interval_sets_match_their_bounds(target, router):
    h0, h1, h2 = router
    target.sh("nft -f -", stdin=ADDRESSES)
    expected = {
        ("10.0.0.2", h1): {"prefix", "anonymous set"},
        ("10.0.0.3", h1): {"prefix"},
        ("10.0.0.4", h1): set(),
        ("10.0.0.5", h1): {"range"},
        ("10.0.0.9", h1): {"range"},
        ("10.0.0.10", h1): set(),
        ("10.0.0.16", h1): {"named set"},
        ("10.0.0.20", h1): {"anonymous set", "named set"},
        ("10.0.0.29", h1): {"anonymous set", "named set"},
        ("10.0.0.31", h1): {"named set"},
        ("10.0.0.32", h1): set(),
        ("10.0.0.42", h1): {"named set"},
        ("10.0.0.43", h1): set(),
        ("10.0.0.64", h1): {"anonymous set"},
        ("10.0.0.127", h1): {"anonymous set"},
        ("10.0.0.128", h1): {"outside prefix"},
        ("10.0.0.2", h2): {"prefix", "anonymous set", "daddr prefix", "daddr not in set"},
    }
    seen = {(src, dst): forwarded_matches(target, h0, dst, UDP(sport=1000, dport=2000), src=src)
            for src, dst in expected}
    assert seen == expected


IP_HEADER = """
table ip t {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        ip ttl 64 counter comment "ttl 64 in prerouting"
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip protocol udp counter comment "udp"
        ip protocol { tcp, icmp } counter comment "tcp or icmp"
        ip ttl 63 counter comment "ttl 63 in forward"
        ip ttl < 10 counter comment "ttl under 10"
        ip dscp ef counter comment "ef"
        ip dscp cs1 counter comment "cs1"
        ip length 100-200 counter comment "100 to 200 bytes"
    }
}
"""


def test_ip_header_matches_see_the_ttl_already_decremented_in_forward(target, router):
    """ip_forward() decrements the TTL before the FORWARD hook: a frame sent
    with TTL 64 is `ip ttl 64` in prerouting and `ip ttl 63` in forward.
    `ip dscp` ignores the two ECN bits of the TOS byte; `ip length` is the
    IP total length."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=IP_HEADER)
    udp = UDP(sport=1, dport=2)
    seen = {
        "udp ttl 64": forwarded_matches(target, h0, h1, udp, ttl=64),
        "udp ttl 9": forwarded_matches(target, h0, h1, udp, ttl=9),
        "tcp ef": forwarded_matches(target, h0, h1, TCP(sport=1, dport=2, flags="S"), tos=0xB8),
        "icmp ef ecn-ce": forwarded_matches(target, h0, h1, ICMP(type=8, id=1, seq=1), tos=0xBB),
        "udp cs1": forwarded_matches(target, h0, h1, udp, tos=0x20),
        "100 bytes": forwarded_matches(target, h0, h1, udp / bytes(72)),
        "200 bytes": forwarded_matches(target, h0, h1, udp / bytes(172)),
        "201 bytes": forwarded_matches(target, h0, h1, udp / bytes(173)),
    }
    in_forward = {"ttl 64 in prerouting", "ttl 63 in forward"}
    assert seen == {
        "udp ttl 64": {"udp"} | in_forward,
        "udp ttl 9": {"udp", "ttl under 10"},
        "tcp ef": {"tcp or icmp", "ef"} | in_forward,
        "icmp ef ecn-ce": {"tcp or icmp", "ef"} | in_forward,
        "udp cs1": {"udp", "cs1"} | in_forward,
        "100 bytes": {"udp", "100 to 200 bytes"} | in_forward,
        "200 bytes": {"udp", "100 to 200 bytes"} | in_forward,
        "201 bytes": {"udp"} | in_forward,
    }


PORTS = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        th dport 53 counter comment "th dport 53"
        udp dport 53 counter comment "udp dport 53"
        tcp dport 53 counter comment "tcp dport 53"
        udp sport 1024-65535 udp dport 53 counter comment "udp from a high port to 53"
        tcp dport { 22, 80, 443 } counter comment "tcp to 22, 80 or 443"
        tcp sport 443 counter comment "tcp from 443"
        udp dport != 53 counter comment "udp not to 53"
    }
}
"""


def test_transport_port_matches_th_tcp_and_udp(target, router):
    """`th dport` reads the transport header whatever the protocol; `tcp` and
    `udp` matches carry their protocol as an implicit dependency."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=PORTS)
    seen = {
        "udp 5000 -> 53": forwarded_matches(target, h0, h1, UDP(sport=5000, dport=53)),
        "udp 500 -> 53": forwarded_matches(target, h0, h1, UDP(sport=500, dport=53)),
        "tcp 5000 -> 53": forwarded_matches(target, h0, h1, TCP(sport=5000, dport=53, flags="S")),
        "tcp 5000 -> 443": forwarded_matches(target, h0, h1, TCP(sport=5000, dport=443, flags="S")),
        "tcp 443 -> 5000": forwarded_matches(target, h0, h1, TCP(sport=443, dport=5000, flags="SA")),
        "udp 53 -> 5000": forwarded_matches(target, h0, h1, UDP(sport=53, dport=5000)),
    }
    assert seen == {
        "udp 5000 -> 53": {"th dport 53", "udp dport 53", "udp from a high port to 53"},
        "udp 500 -> 53": {"th dport 53", "udp dport 53"},
        "tcp 5000 -> 53": {"th dport 53", "tcp dport 53"},
        "tcp 5000 -> 443": {"tcp to 22, 80 or 443"},
        "tcp 443 -> 5000": {"tcp from 443"},
        "udp 53 -> 5000": {"udp not to 53"},
    }


TCP_FLAGS = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        tcp flags & (syn | ack) == syn counter comment "masked syn"
        tcp flags syn / syn,ack counter comment "syn / syn,ack"
        tcp flags syn counter comment "syn among others"
        tcp flags == syn counter comment "exactly syn"
        tcp flags & (fin | rst) != 0 counter comment "fin or rst"
    }
}
"""


def test_tcp_flag_matches_masked_slash_any_and_exact(target, router):
    """`tcp flags & (syn|ack) == syn` and `tcp flags syn / syn,ack` are one
    match (nft lists both the second way); a bare `tcp flags syn` tests for
    the bit among others, `== syn` for exactly it."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=TCP_FLAGS)
    seen = {flags: forwarded_matches(target, h0, h1, TCP(sport=7, dport=8, flags=flags))
            for flags in ("S", "SA", "SE", "A", "FA", "R")}
    assert seen == {
        "S": {"masked syn", "syn / syn,ack", "syn among others", "exactly syn"},
        "SA": {"syn among others"},
        "SE": {"masked syn", "syn / syn,ack", "syn among others"},
        "A": set(),
        "FA": {"fin or rst"},
        "R": {"fin or rst"},
    }
    listed = [c.rule for c in target.counters()]
    assert listed[:2] == ['tcp flags syn / syn,ack counter comment "masked syn"',
                          'tcp flags syn / syn,ack counter comment "syn / syn,ack"']


ICMP_TYPES = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        icmp type echo-request counter comment "echo-request"
        icmp type { echo-reply, destination-unreachable } counter comment "reply or unreachable"
        icmp code port-unreachable counter comment "port-unreachable"
        icmp type != echo-request counter comment "not echo-request"
    }
}
"""


def test_icmp_type_and_code_matches(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=ICMP_TYPES)
    about = h1.to_dut(src=h1.ip, dst=h0.ip, id=5) / UDP(sport=53, dport=5353)
    seen = {
        "echo request": forwarded_matches(target, h0, h1, ICMP(type=8, id=9, seq=1)),
        "echo reply": forwarded_matches(target, h0, h1, ICMP(type=0, id=9, seq=1)),
        "port unreachable": forwarded_matches(target, h0, h1, ICMP(type=3, code=3) / quoted(about)),
        "time exceeded": forwarded_matches(target, h0, h1, ICMP(type=11, code=0) / quoted(about)),
        "udp": forwarded_matches(target, h0, h1, UDP(sport=8, dport=0)),
    }
    assert seen == {
        "echo request": {"echo-request"},
        "echo reply": {"reply or unreachable", "not echo-request"},
        "port unreachable": {"reply or unreachable", "port-unreachable", "not echo-request"},
        "time exceeded": {"not echo-request"},
        "udp": set(),
    }


INTERFACES = """
table ip t {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        iifname "p0" counter comment "prerouting in p0"
        oifname "p1" counter comment "prerouting out p1"
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname "p0" oifname "p1" counter comment "p0 to p1 by name"
        iif "p2" oif "p1" counter comment "p2 to p1 by index"
        iifname != "p0" counter comment "not from p0"
        oifname "p*" counter comment "out a p port"
        oif "p2" counter comment "out p2 by index"
    }
}
"""


def test_interface_matches_by_name_index_and_wildcard(target, router):
    """The output device is known from the FORWARD hook on: in prerouting
    `oifname` compares an empty name and never matches."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin=INTERFACES)
    udp = UDP(sport=1, dport=2)
    seen = {
        "p0 -> p1": forwarded_matches(target, h0, h1, udp),
        "p0 -> p2": forwarded_matches(target, h0, h2, udp),
        "p2 -> p1": forwarded_matches(target, h2, h1, udp),
    }
    assert seen == {
        "p0 -> p1": {"prerouting in p0", "p0 to p1 by name", "out a p port"},
        "p0 -> p2": {"prerouting in p0", "out a p port", "out p2 by index"},
        "p2 -> p1": {"p2 to p1 by index", "not from p0", "out a p port"},
    }


META = """
table inet t {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        meta nfproto ipv4 counter comment "ipv4"
        meta l4proto udp counter comment "udp"
        meta l4proto { tcp, icmp } counter comment "tcp or icmp"
        meta pkttype broadcast counter comment "L2 broadcast"
        meta pkttype unicast counter comment "L2 unicast"
        fib daddr type local counter comment "to a local address"
        fib daddr type broadcast counter comment "to a broadcast address"
        udp dport 4001 meta mark set 0x2a
    }
    chain input {
        type filter hook input priority filter; policy accept;
        meta mark 0x2a counter comment "marked in input"
        meta mark 0 counter comment "unmarked in input"
    }
}
"""


@pytest.mark.requires("sockets")
def test_meta_pkttype_fib_type_l4proto_nfproto_and_mark(target, hosts):
    """pkttype is what the Ethernet destination said, `fib daddr type` what
    the IP destination is to this host: an Ethernet broadcast may carry a
    unicast IP packet. A mark set in prerouting is seen in input."""
    h0 = hosts[0]
    target.sh("nft -f -", stdin=META)
    sock = target.socket("udp", ("0.0.0.0", 4001))

    def received(frame):
        def deliver():
            target.send(h0.port, frame)
            assert sock.recv()[0] == b"x"
        return matched_by(target, deliver)

    def frame(mac, dst):
        return Ether(src=h0.mac, dst=mac) / IP(src=h0.ip, dst=dst) / UDP(sport=9, dport=4001) / b"x"

    seen = {
        "unicast to p0's address": received(frame(h0.port.mac, h0.dut_ip)),
        "unicast to p2's address": received(frame(h0.port.mac, "10.0.2.1")),
        "broadcast to the subnet broadcast": received(frame(BROADCAST_MAC, "10.0.0.255")),
        "broadcast to p0's address": received(frame(BROADCAST_MAC, h0.dut_ip)),
        "broadcast to 255.255.255.255": received(frame(BROADCAST_MAC, "255.255.255.255")),
    }
    common = {"ipv4", "udp", "marked in input"}
    assert seen == {
        "unicast to p0's address": common | {"L2 unicast", "to a local address"},
        "unicast to p2's address": common | {"L2 unicast", "to a local address"},
        "broadcast to the subnet broadcast": common | {"L2 broadcast", "to a broadcast address"},
        "broadcast to p0's address": common | {"L2 broadcast", "to a local address"},
        "broadcast to 255.255.255.255": common | {"L2 broadcast", "to a broadcast address"},
    }

    def ping():
        target.send(h0.port, h0.to_dut(id=3) / ICMP(type=8, id=3, seq=1))
        target.expect(h0.port, icmp_socket_mask(h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64) / ICMP(type=0, id=3, seq=1)))
    echo = matched_by(target, ping)
    assert echo == {"ipv4", "tcp or icmp", "L2 unicast", "to a local address", "unmarked in input"}
