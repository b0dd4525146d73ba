"""nftables matches and statements, and the iptables front end, on real frames.

Each case loads a small ruleset whose counter rules carry a comment naming
them, sends frames through the DUT and asserts what the kernel did: which
rules counted each frame, the frame that left, the conntrack entry, the drop.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.testing import (counted_by_comment, forward, forwarded_matches, icmp_socket_mask, matched_by, quoted,
                             socket_datagram_mask)

pytestmark = pytest.mark.requires("nftables")

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"


def passing_matches(target, sender, frame, receiver, left) -> set[str]:
    """The counter rules that counted `frame`, sent from `sender`'s wire, on
    its way to leaving towards `receiver` as `left` (NAT may rewrite it)."""
    def deliver():
        target.send(sender.port, frame)
        target.expect(receiver.port, left)
    return matched_by(target, deliver)


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
    h0 = router[0]
    by_address = {host.ip: host for host in router}
    target.sh("nft -f -", stdin=ADDRESSES)
    expected = {
        ("10.0.0.2", "10.0.1.2"): {"prefix", "anonymous set"},
        ("10.0.0.3", "10.0.1.2"): {"prefix"},
        ("10.0.0.4", "10.0.1.2"): set(),
        ("10.0.0.5", "10.0.1.2"): {"range"},
        ("10.0.0.9", "10.0.1.2"): {"range"},
        ("10.0.0.10", "10.0.1.2"): set(),
        ("10.0.0.16", "10.0.1.2"): {"named set"},
        ("10.0.0.20", "10.0.1.2"): {"anonymous set", "named set"},
        ("10.0.0.29", "10.0.1.2"): {"anonymous set", "named set"},
        ("10.0.0.31", "10.0.1.2"): {"named set"},
        ("10.0.0.32", "10.0.1.2"): set(),
        ("10.0.0.42", "10.0.1.2"): {"named set"},
        ("10.0.0.43", "10.0.1.2"): set(),
        ("10.0.0.64", "10.0.1.2"): {"anonymous set"},
        ("10.0.0.127", "10.0.1.2"): {"anonymous set"},
        ("10.0.0.128", "10.0.1.2"): {"outside prefix"},
        ("10.0.0.2", "10.0.2.2"): {"prefix", "anonymous set", "daddr prefix", "daddr not in set"},
    }
    seen = {(src, dst): forwarded_matches(target, h0, by_address[dst], UDP(sport=1000, dport=2000), src=src)
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

    echo = passing_matches(target, h0, h0.to_dut(id=3) / ICMP(type=8, id=3, seq=1), h0,
                           icmp_socket_mask(h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64) / ICMP(type=0, id=3, seq=1)))
    assert echo == {"ipv4", "tcp or icmp", "L2 unicast", "to a local address", "unmarked in input"}


CT_NAT = """
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        udp dport 8080 dnat to 10.0.1.2:80
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p2" masquerade
    }
}
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct status dnat counter comment "dnat"
        ct status snat counter comment "snat"
        ct direction original counter comment "original"
        ct direction reply counter comment "reply"
        ct state new counter comment "new"
        ct state established counter comment "established"
    }
}
"""


@pytest.mark.requires("conntrack")
def test_ct_status_direction_and_state_in_forward(target, router):
    """A DNAT is bound in prerouting, so forward sees `ct status dnat` from the
    first packet on; masquerade binds in postrouting, after forward: the first
    packet of a masqueraded flow is not yet `snat`, its reply and the later
    packets are."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin=CT_NAT)

    seen = {
        "dnat request": passing_matches(target, h0, h0.to_dut(id=1) / UDP(sport=5001, dport=8080), h1,
                                        h1.from_dut(src=h0.ip, dst=h1.ip, id=1, ttl=63) / UDP(sport=5001, dport=80)),
        "dnat reply": passing_matches(target, h1, h1.to_dut(dst=h0.ip, id=2) / UDP(sport=80, dport=5001), h0,
                                      h0.from_dut(src=h0.dut_ip, dst=h0.ip, id=2, ttl=63) /
                                      UDP(sport=8080, dport=5001)),
        "masquerade request": passing_matches(target, h0, h0.to_dut(dst=h2.ip, id=3) / UDP(sport=6000, dport=53), h2,
                                              h2.from_dut(src=h2.dut_ip, dst=h2.ip, id=3, ttl=63) /
                                              UDP(sport=6000, dport=53)),
        "masquerade reply": passing_matches(target, h2, h2.to_dut(id=4) / UDP(sport=53, dport=6000), h0,
                                            h0.from_dut(src=h2.ip, dst=h0.ip, id=4, ttl=63) /
                                            UDP(sport=53, dport=6000)),
        "masquerade again": passing_matches(target, h0, h0.to_dut(dst=h2.ip, id=5) / UDP(sport=6000, dport=53), h2,
                                            h2.from_dut(src=h2.dut_ip, dst=h2.ip, id=5, ttl=63) /
                                            UDP(sport=6000, dport=53)),
    }
    assert seen == {
        "dnat request": {"dnat", "original", "new"},
        "dnat reply": {"dnat", "reply", "established"},
        "masquerade request": {"original", "new"},
        "masquerade reply": {"snat", "reply", "established"},
        "masquerade again": {"snat", "original", "established"},
    }


CT_STATUS_UDP = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct status confirmed counter comment "confirmed"
        ct status seen-reply counter comment "seen-reply"
        ct status assured counter comment "assured"
    }
}
"""


@pytest.mark.requires("conntrack")
def test_ct_status_of_a_udp_flow_confirmed_seen_reply_then_assured_after_two_seconds(target, router):
    """The first packet's entry is confirmed only in postrouting, after
    forward; the reply sets seen-reply; a UDP flow becomes assured (a
    stream) only with a packet more than two seconds after it began
    (nf_conntrack_udp_packet()'s stream_ts)."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=CT_STATUS_UDP)
    request, reply = UDP(sport=4000, dport=4001), UDP(sport=4001, dport=4000)
    seen = {"request": forwarded_matches(target, h0, h1, request),
            "reply": forwarded_matches(target, h1, h0, reply),
            "second request": forwarded_matches(target, h0, h1, request)}
    target.wait(2.5)
    seen["after 2.5 s"] = forwarded_matches(target, h0, h1, request)
    assert seen == {
        "request": set(),
        "reply": {"confirmed", "seen-reply"},
        "second request": {"confirmed", "seen-reply"},
        "after 2.5 s": {"confirmed", "seen-reply", "assured"},
    }
    assert [e.status >= {"assured", "seen-reply"} for e in target.conntrack() if e.proto == "udp"] == [True]


MARK_IN_OUTPUT = {
    "nft": ["nft -f -", """
table ip t {
    chain output {
        type route hook output priority mangle; policy accept;
        udp dport 9 meta mark set 0x1
    }
}
"""],
    "iptables": ["iptables -t mangle -A OUTPUT -p udp --dport 9 -j MARK --set-mark 0x1", None],
}


@pytest.mark.requires("sockets")
@pytest.mark.parametrize("front_end", sorted(MARK_IN_OUTPUT))
def test_mark_set_in_a_route_chain_reroutes_a_local_packet_by_fwmark(target, hosts, front_end):
    """A mark set in an output `type route` chain (iptables' mangle OUTPUT is
    one) makes the kernel route the packet again (nf_route_table_hook4 /
    ip_route_me_harder): the fwmark rule sends it out p2. The source address,
    chosen by the first route, stays."""
    h1, h2 = hosts[1], hosts[2]
    target.sh("ip rule add fwmark 0x1 lookup 100")
    target.sh(f"ip route add 10.0.1.0/24 via {h2.ip} dev p2 table 100")
    command, stdin = MARK_IN_OUTPUT[front_end]
    target.sh(command, stdin=stdin)
    sock = target.socket("udp", ("0.0.0.0", 5555))
    sock.sendto(b"marked", (h1.ip, 9))
    sock.sendto(b"not marked", (h1.ip, 10))
    target.expect(h2.port, socket_datagram_mask(h2.from_dut(src=h1.dut_ip, dst=h1.ip, ttl=64, flags="DF") /
                                                UDP(sport=5555, dport=9) / b"marked"))
    target.expect(h1.port, socket_datagram_mask(h1.from_dut(src=h1.dut_ip, dst=h1.ip, ttl=64, flags="DF") /
                                                UDP(sport=5555, dport=10) / b"not marked"))


CT_MARK = """
table ip t {
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        ct state new udp dport 7000 ct mark set 0x2a
        meta mark set ct mark
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct mark 0x2a counter comment "ct mark 0x2a"
        meta mark 0x2a counter comment "meta mark from ct mark"
    }
}
"""


@pytest.mark.requires("conntrack")
def test_ct_mark_set_on_the_first_packet_marks_the_whole_connection(target, router):
    """`ct mark set` writes the conntrack entry: the reply carries the mark too,
    `meta mark set ct mark` restores it onto each packet, and conntrack -L
    shows it."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=CT_MARK)
    seen = {
        "request": forwarded_matches(target, h0, h1, UDP(sport=5000, dport=7000)),
        "reply": forwarded_matches(target, h1, h0, UDP(sport=7000, dport=5000)),
        "other flow": forwarded_matches(target, h0, h1, UDP(sport=5000, dport=7001)),
    }
    assert seen == {
        "request": {"ct mark 0x2a", "meta mark from ct mark"},
        "reply": {"ct mark 0x2a", "meta mark from ct mark"},
        "other flow": set(),
    }
    marks = {e.original: e.mark for e in target.conntrack() if e.proto == "udp"}
    assert marks == {(h0.ip, h1.ip, 5000, 7000): 0x2A, (h0.ip, h1.ip, 5000, 7001): 0}


LIMIT = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        udp dport 9 limit rate 1/minute burst 3 packets counter comment "under the limit"
        udp dport 9 limit rate over 1/minute burst 3 packets counter comment "over the limit"
    }
}
"""


def test_limit_lets_the_burst_through_then_matches_over_it(target, router):
    """A bucket of `burst` packets, refilled at one packet per minute (nothing
    in the milliseconds the frames take): of six, the first three are under
    the limit; an `over` limit's own bucket matches the last three."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=LIMIT)
    target.send(h0.port, [h0.to_dut(dst=h1.ip, id=i) / UDP(sport=8, dport=9) for i in range(6)])
    target.frames_left(h1.port, 6, "every packet, the rules only count")
    assert counted_by_comment(target) == {"under the limit": 3, "over the limit": 3}


BYTE_LIMIT = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        limit rate 1000 bytes/minute counter comment "1000 bytes a minute"
        limit rate 1000 bytes/minute burst 500 bytes counter comment "and a 500-byte burst"
    }
}
"""


def test_byte_limit_bucket_holds_a_unit_of_rate_plus_the_burst(target, router):
    """nft_limit_init(): a byte limit's bucket is unit * (rate + burst) / rate,
    so without a burst a minute's 1000 bytes pass at once: four 228-byte
    packets (a fifth would need 1140); with 500 more, six."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=BYTE_LIMIT)
    target.send(h0.port, [h0.to_dut(dst=h1.ip, id=i) / UDP(sport=8, dport=9) / bytes(200) for i in range(8)])
    target.frames_left(h1.port, 8, "every packet, the rules only count")
    assert counted_by_comment(target) == {"1000 bytes a minute": 4, "and a 500-byte burst": 6}


CHAINS = """
table ip t {
    set blocked {
        type ipv4_addr
        elements = { 10.0.0.66, 10.0.0.67 }
    }
    map by_port {
        type inet_service : verdict
        elements = { 1001 : jump tagged, 1002 : goto tagged, 1003 : drop, 1004 : accept }
    }
    chain tagged {
        counter comment "tagged"
        udp sport 1 return
        counter comment "end of tagged"
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip saddr @blocked counter drop comment "blocked"
        udp dport vmap @by_port
        counter comment "after the map"
    }
}
"""


def test_named_set_verdict_map_jump_goto_and_return(target, router):
    """jump comes back after the rule that jumped; goto does not (the end of
    the chain gone to ends the base chain: its policy); return leaves a chain
    early; a vmap without the key goes on with the next rule."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=CHAINS)
    seen = {
        "jump": forwarded_matches(target, h0, h1, UDP(sport=5, dport=1001)),
        "jump, return early": forwarded_matches(target, h0, h1, UDP(sport=1, dport=1001)),
        "goto": forwarded_matches(target, h0, h1, UDP(sport=5, dport=1002)),
        "accept": forwarded_matches(target, h0, h1, UDP(sport=5, dport=1004)),
        "not in the map": forwarded_matches(target, h0, h1, UDP(sport=5, dport=1005)),
    }
    assert seen == {
        "jump": {"tagged", "end of tagged", "after the map"},
        "jump, return early": {"tagged", "after the map"},
        "goto": {"tagged", "end of tagged"},
        "accept": set(),
        "not in the map": {"after the map"},
    }
    target.sh("nft add element ip t blocked { 10.0.0.68 }")
    for src, dport in (("10.0.0.2", 1003), ("10.0.0.66", 1005), ("10.0.0.68", 1005)):
        target.send(h0.port, h0.to_dut(src=src, dst=h1.ip) / UDP(sport=5, dport=dport))
        target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_FORWARD")] * 3
    assert counted_by_comment(target)["blocked"] == 2


EXPRESSIONS = """
table ip t {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        udp dport 5 meta mark set 0x1234
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip saddr . udp dport { 10.0.0.2 . 53, 10.0.0.3 . 54 } counter comment "address . port"
        ip saddr & 0.0.0.255 == 0.0.0.3 counter comment "last byte 3"
        iifname { "p0", "p2" } counter comment "from p0 or p2"
        meta mark & 0xff00 == 0x1200 counter comment "mark 0x12XX"
    }
}
"""


def test_concatenations_bitmasks_and_interface_sets(target, router):
    h0, h1, h2 = router
    target.sh("nft -f -", stdin=EXPRESSIONS)
    seen = {
        "10.0.0.2:53": forwarded_matches(target, h0, h1, UDP(sport=1, dport=53)),
        "10.0.0.2:54": forwarded_matches(target, h0, h1, UDP(sport=1, dport=54)),
        "10.0.0.3:54": forwarded_matches(target, h0, h1, UDP(sport=1, dport=54), src="10.0.0.3"),
        "10.0.1.3 marked": forwarded_matches(target, h1, h2, UDP(sport=1, dport=5), src="10.0.1.3"),
    }
    assert seen == {
        "10.0.0.2:53": {"address . port", "from p0 or p2"},
        "10.0.0.2:54": {"from p0 or p2"},
        "10.0.0.3:54": {"address . port", "last byte 3", "from p0 or p2"},
        "10.0.1.3 marked": {"last byte 3", "mark 0x12XX"},
    }


FRAGMENTS = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        udp dport 53 counter comment "udp dport 53"
        th dport 53 counter comment "th dport 53"
        udp dport 53 udp length 32 counter comment "udp dport and length"
        meta l4proto udp counter comment "meta l4proto udp"
        ip protocol udp counter comment "ip protocol udp"
    }
}
"""


def test_a_non_first_fragment_matches_transport_fields_of_aligned_loads_only(target, router):
    """Without conntrack nothing reassembles forwarded fragments: the FORWARD
    hook sees each, with its protocol (`meta l4proto`, `ip protocol`). For a
    non-first fragment nft_payload_eval() refuses the transport header, but
    nft_payload_fast_eval() (loads of 1, 2 or 4 aligned bytes) does not check
    the fragment offset: `udp dport 53` reads the fragment's first bytes. nft
    merges `udp dport 53 udp length 32` into one 4-byte load at offset 2, not
    aligned: that one is refused."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=FRAGMENTS)
    looks_like_udp = bytes(UDP(sport=1, dport=53, len=32, chksum=0)) + bytes(8)
    seen = {
        "first": forwarded_matches(target, h0, h1, UDP(sport=1, dport=53, len=32, chksum=0) / bytes(8),
                                   proto=17, flags="MF"),
        "second": forwarded_matches(target, h0, h1, looks_like_udp, proto=17, frag=2),
    }
    every = {"udp dport 53", "th dport 53", "udp dport and length", "meta l4proto udp", "ip protocol udp"}
    assert seen == {"first": every, "second": every - {"udp dport and length"}}


# ---------------------------------------------------------------- statements

MANGLE = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        udp dport 1 ip ttl set 9
        udp dport 2 ip dscp set af41
        udp dport 3 ip ttl set 200 ip dscp set cs0
    }
}
"""


@pytest.mark.parametrize("dport, tos, expected_ttl, expected_tos", [
    (1, 0x00, 9, 0x00),
    (2, 0x03, 63, 0x8B),  # af41 is 34 << 2; the ECN bits stay
    (3, 0xB9, 200, 0x01),
], ids=["ttl", "dscp keeps ecn", "ttl and dscp"])
def test_ip_ttl_and_dscp_set_rewrite_the_header_and_its_checksum(target, router, dport, tos, expected_ttl,
                                                                expected_tos):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=MANGLE)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=11, tos=tos) / UDP(sport=5, dport=dport) / b"mangled")
    # scapy computes the header checksum of the expected frame: compared byte for byte
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=11, tos=expected_tos, ttl=expected_ttl) /
                  UDP(sport=5, dport=dport) / b"mangled")


TTL_SET_TO_1_IN_PREROUTING = """
table ip t {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        ip ttl set 1
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        counter comment "forward"
    }
}
"""


def test_ttl_set_to_1_in_prerouting_is_caught_by_ip_forward(target, router):
    """Prerouting runs before ip_forward() checks the TTL: time exceeded goes
    back and the packet is dropped before the FORWARD hook."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=TTL_SET_TO_1_IN_PREROUTING)
    sent = h0.to_dut(dst=h1.ip, id=12) / UDP(sport=5, dport=6)
    target.send(h0.port, sent)
    arrived = sent.copy()
    arrived[IP].ttl = 1
    del arrived[IP].chksum
    target.expect(h0.port, h0.icmp_error(11, 0, Ether(bytes(arrived))))
    target.expect_nothing()
    assert counted_by_comment(target) == {"forward": 0}


@pytest.mark.requires("drop_reasons")
def test_ttl_set_to_1_in_prerouting_is_dropped_by_ip_forward_as_ip_inhdr(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=TTL_SET_TO_1_IN_PREROUTING)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=12) / UDP(sport=5, dport=6))
    assert [(d.reason, d.stage) for d in target.drops()] == [("IP_INHDR", "IP_FORWARD")]


LOG_AND_COUNT = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        udp dport 5 log prefix "pj-forward " level info counter comment "logged"
        counter comment "after the log"
    }
}
"""


def test_log_is_not_a_verdict_and_counters_count_ip_bytes(target, router):
    """log lets the packet go on to the next rule; a counter adds the IP
    datagram's length (skb->len at the IPv4 hooks: no Ethernet header)."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=LOG_AND_COUNT)
    forward(target, h0, h1, UDP(sport=4, dport=5) / bytes(10))
    forward(target, h0, h1, UDP(sport=4, dport=5) / bytes(100))
    forward(target, h0, h1, UDP(sport=4, dport=6))
    got = {c.rule: (c.packets, c.bytes) for c in target.counters()}
    assert got == {
        'udp dport 5 log prefix "pj-forward " level info counter comment "logged"': (2, 38 + 128),
        'counter comment "after the log"': (3, 38 + 128 + 28),
    }


# Where nf_nat_l4proto_unique_tuple() looks for a source port when no range is
# given: the class of the original port (<512, 512-1023, >=1024).
PORT_CLASSES = {100: (1, 511), 700: (600, 1023), 6000: (1024, 65535)}
MASQUERADE_P1 = """
table ip nat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade {flags}
    }}
}}
"""


def masquerade_flows(target, h0, h1, l4s) -> list[IP]:
    """Send one packet of each flow from h0 to h1; the IP packets that left p1."""
    out = []
    for i, l4 in enumerate(l4s):
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=20 + i) / l4)
        out.append(IP(target.frame_left(h1.port, f"the masqueraded {l4.summary()}")[14:]))
    return out


@pytest.mark.requires("conntrack")
@pytest.mark.parametrize("flags", ["", "random", "fully-random", "random,persistent"])
@pytest.mark.parametrize("sport", sorted(PORT_CLASSES))
def test_masquerade_random_picks_a_port_of_the_original_class_and_conntrack_knows_it(target, router, flags,
                                                                                      sport):
    """Without flags a free source port is kept. With `random` or
    `fully-random` (NF_NAT_RANGE_PROTO_RANDOM_ALL) it is chosen afresh in its
    class, free or not. Either way the reply tuple in conntrack is the frame
    that left, and a reply to it is un-NATed back to the original port."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=MASQUERADE_P1.format(flags=flags))
    dports = (53, 54, 55)
    left = masquerade_flows(target, h0, h1, [UDP(sport=sport, dport=d) / b"q" for d in dports])
    ports = [ip[UDP].sport for ip in left]
    low, high = PORT_CLASSES[sport]
    assert [(ip.src, ip.dst, ip[UDP].dport) for ip in left] == [(h1.dut_ip, h1.ip, d) for d in dports]
    assert all(low <= p <= high for p in ports), f"source ports {ports} not all in {low}-{high}"
    if flags:
        # three random picks all equal to the original: a chance of (1/511)**3 at most
        assert ports != [sport] * 3, f"{flags} kept every original port: {ports}"
    else:
        assert ports == [sport] * 3
    entries = sorted((e.original, e.reply, "snat" in e.status) for e in target.conntrack() if e.proto == "udp")
    assert entries == [((h0.ip, h1.ip, sport, d), (h1.ip, h1.dut_ip, d, p), True) for d, p in zip(dports, ports)]
    target.send(h1.port, h1.to_dut(id=29) / UDP(sport=53, dport=ports[0]) / b"a")
    target.expect(h0.port, h0.from_dut(src=h1.ip, dst=h0.ip, id=29, ttl=63) / UDP(sport=53, dport=sport) / b"a")


@pytest.mark.requires("conntrack")
@pytest.mark.parametrize("flags", ["", "random"])
def test_masquerade_of_icmp_echoes_keeps_or_randomises_their_id(target, router, flags):
    """The echo id is ICMP's port: kept when free, chosen among all 65536
    with `random`, rewritten with the ICMP checksum; the reply tuple holds
    the id the frame left with."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=MASQUERADE_P1.format(flags=flags))
    idents = (0x4242, 0x4243, 0x4244)
    left = masquerade_flows(target, h0, h1, [ICMP(type=8, id=i, seq=1) / b"ping" for i in idents])
    out_ids = [ip[ICMP].id for ip in left]
    # scapy computes the expected checksums from the fields
    assert [bytes(ip) for ip in left] == [bytes(IP(src=h1.dut_ip, dst=h1.ip, id=20 + n, ttl=63) /
                                                ICMP(type=8, id=i, seq=1) / b"ping") for n, i in enumerate(out_ids)]
    if flags:
        assert out_ids != list(idents), f"{flags} kept every echo id: {out_ids}"
    else:
        assert out_ids == list(idents)
    entries = sorted((e.original, e.reply) for e in target.conntrack() if e.proto == "icmp")
    assert entries == [((h0.ip, h1.ip, i, 8 << 8), (h1.ip, h1.dut_ip, o, 0)) for i, o in zip(idents, out_ids)]
    target.send(h1.port, h1.to_dut(id=29) / ICMP(type=0, id=out_ids[0], seq=1) / b"pong")
    target.expect(h0.port, h0.from_dut(src=h1.ip, dst=h0.ip, id=29, ttl=63) / ICMP(type=0, id=idents[0], seq=1) /
                  b"pong")


NOTRACK = """
table ip t {
    chain raw {
        type filter hook prerouting priority raw; policy accept;
        udp dport 9999 notrack
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state untracked counter comment "untracked"
        ct state new counter comment "new"
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
"""


@pytest.mark.requires("conntrack")
def test_notrack_skips_conntrack_and_so_nat(target, router):
    """An untracked packet has no conntrack entry for NAT to bind: it leaves
    with its own source, while a tracked one is masqueraded."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=NOTRACK)
    untracked = matched_by(target, lambda: forward(target, h0, h1, UDP(sport=5, dport=9999)))
    tracked = passing_matches(target, h0, h0.to_dut(dst=h1.ip, id=8) / UDP(sport=5, dport=9998), h1,
                              h1.from_dut(src=h1.dut_ip, dst=h1.ip, id=8, ttl=63) / UDP(sport=5, dport=9998))
    assert (untracked, tracked) == ({"untracked"}, {"new"})
    assert [e.original for e in target.conntrack() if e.proto == "udp"] == [(h0.ip, h1.ip, 5, 9998)]


# ---------------------------------------------------------------- iptables

def saved(target, *args: str) -> str:
    """iptables-save's output without its `#` lines (they carry the time)."""
    return "".join(line + "\n" for line in target.sh(["iptables-save", *args]).splitlines()
                   if not line.startswith("#"))


IPTABLES_COMMANDS = [
    "iptables -N counted",
    "iptables -A counted -m comment --comment 'new flows' -j LOG --log-prefix 'pj '",
    "iptables -A counted -j MARK --set-mark 0x2a",
    "iptables -A counted -p udp --dport 7 -j RETURN",
    "iptables -A counted -j MARK --set-xmark 0x1/0xff",
    "iptables -A FORWARD -m conntrack --ctstate NEW -j counted",
    "iptables -A FORWARD -m mark --mark 0x2a -j ACCEPT",
    "iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment replies -j ACCEPT",
    "iptables -P FORWARD DROP",
]


@pytest.mark.requires("conntrack")
def test_iptables_user_chain_with_conntrack_comment_mark_log_and_return(target, router):
    """A new flow jumps to a user chain that logs and marks it; RETURN before
    the second MARK keeps 0x2a (accepted), else the mark becomes 0x1 and the
    policy drops it; replies pass as ESTABLISHED. iptables-save shows every
    rule's counter (-c) and the policy's: only what the policy decided."""
    h0, h1 = router[0], router[1]
    for command in IPTABLES_COMMANDS:
        target.sh(command)
    forward(target, h0, h1, UDP(sport=1000, dport=7) / b"x")
    forward(target, h1, h0, UDP(sport=7, dport=1000) / b"x")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=9) / UDP(sport=1000, dport=9) / b"x")
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_FORWARD")]
    assert saved(target, "-c") == """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [1:29]
:OUTPUT ACCEPT [0:0]
:counted - [0:0]
[2:58] -A FORWARD -m conntrack --ctstate NEW -j counted
[1:29] -A FORWARD -m mark --mark 0x2a -j ACCEPT
[1:29] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment replies -j ACCEPT
[2:58] -A counted -m comment --comment "new flows" -j LOG --log-prefix "pj "
[2:58] -A counted -j MARK --set-xmark 0x2a/0xffffffff
[1:29] -A counted -p udp -m udp --dport 7 -j RETURN
[1:29] -A counted -j MARK --set-xmark 0x1/0xff
COMMIT
"""
    assert target.sh("iptables -L counted -v -n -x") == """\
Chain counted (1 references)
    pkts      bytes target     prot opt in     out     source               destination         
       2       58 LOG        0    --  *      *       0.0.0.0/0            0.0.0.0/0            /* new flows */ LOG flags 0 level 4 prefix "pj "
       2       58 MARK       0    --  *      *       0.0.0.0/0            0.0.0.0/0            MARK set 0x2a
       1       29 RETURN     17   --  *      *       0.0.0.0/0            0.0.0.0/0            udp dpt:7
       1       29 MARK       0    --  *      *       0.0.0.0/0            0.0.0.0/0            MARK xset 0x1/0xff
"""
    assert target.sh("iptables -L FORWARD -v -n").splitlines()[0] == "Chain FORWARD (policy DROP 1 packets, 29 bytes)"


IPTABLES_RESTORE = """\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i p0 -p udp --dport 53 -j MARK --set-mark 0x35
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:from_p0 - [0:0]
-A FORWARD -i p0 -j from_p0
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A from_p0 -s 10.0.0.0/24 -m mark --mark 0x35 -j ACCEPT
-A from_p0 -p tcp --syn --dport 22 -m comment --comment "ssh in" -j ACCEPT
-A from_p0 -j LOG --log-prefix "dropped "
COMMIT
"""


@pytest.mark.requires("conntrack")
def test_iptables_restore_input_runs_and_saves_back_in_canonical_form(target, router):
    """What iptables-restore loads works on packets, and iptables-save gives
    it back as iptables writes rules (implicit `-m udp`, --set-mark as
    --set-xmark, --syn as its flags, ctstates in their own order), with the
    builtin chains' policy counters in every table."""
    h0, h1, h2 = router
    target.sh("iptables-restore", stdin=IPTABLES_RESTORE)
    forward(target, h0, h1, UDP(sport=1000, dport=53))
    forward(target, h1, h0, UDP(sport=53, dport=1000))
    forward(target, h0, h1, TCP(sport=1000, dport=22, flags="S"))
    for src, l4 in ((h0, UDP(sport=1000, dport=54)), (h2, UDP(sport=1000, dport=53))):
        target.send(src.port, src.to_dut(dst=h1.ip, id=9) / l4)
        target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_FORWARD")] * 2
    assert saved(target, "-c") == """\
*mangle
:PREROUTING ACCEPT [5:152]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [5:152]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [3:96]
[1:28] -A PREROUTING -i p0 -p udp -m udp --dport 53 -j MARK --set-xmark 0x35/0xffffffff
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [2:56]
:OUTPUT ACCEPT [0:0]
:from_p0 - [0:0]
[3:96] -A FORWARD -i p0 -j from_p0
[1:28] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
[1:28] -A from_p0 -s 10.0.0.0/24 -m mark --mark 0x35 -j ACCEPT
[1:40] -A from_p0 -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -m comment --comment "ssh in" -j ACCEPT
[1:28] -A from_p0 -j LOG --log-prefix "dropped "
COMMIT
"""
    # without -c the rules lose their counters, the chains keep theirs
    assert saved(target, "-t", "mangle") == """\
*mangle
:PREROUTING ACCEPT [5:152]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [5:152]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [3:96]
-A PREROUTING -i p0 -p udp -m udp --dport 53 -j MARK --set-xmark 0x35/0xffffffff
COMMIT
"""
