"""IPv4 multicast input: what the DUT does with a datagram sent to a group.

Every port has joined 224.0.0.1 (all-hosts: igmp.c ip_mc_up() joins it on each
device that comes up) and no other group, and no multicast router runs, so a
group packet is delivered locally (all-hosts) or dropped at routing. The source
checks are ip_mc_validate_source()'s (route.c). Expected values were read on
the netns lab (kernel 6.18).
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.testing import counted_by_comment, drops, icmp_socket_mask

ALL_HOSTS = "224.0.0.1"
# RFC 1112 6.4: the low 23 bits of the group in 01:00:5e:00:00:00
ALL_HOSTS_MAC = "01:00:5e:00:00:01"


def to_group(host, group: str = ALL_HOSTS, mac: str = ALL_HOSTS_MAC, **ip_fields) -> Ether:
    """Ether/IP from `host` to `group`, on the group's multicast MAC."""
    fields = {"src": host.ip, "dst": group, **ip_fields}
    return Ether(src=host.mac, dst=mac) / IP(**fields)


def test_all_hosts_datagram_reaches_a_socket_bound_to_0_0_0_0(target, hosts):
    """__udp4_lib_mcast_deliver(): the socket on the port bound to 0.0.0.0 gets it."""
    h0 = hosts[0]
    sock = target.socket("udp", ("0.0.0.0", 5000))
    target.send(h0.port, to_group(h0) / UDP(sport=40000, dport=5000) / b"all hosts")
    assert sock.recv() == (b"all hosts", (h0.ip, 40000))
    target.expect_nothing()
    assert target.drops() == []


def test_all_hosts_datagram_on_the_port_mac_is_delivered_too(target, hosts):
    """The route, not the link-layer address, makes it multicast: a group address
    on the DUT's own MAC (pkt_type host) is delivered the same way."""
    h1 = hosts[1]
    sock = target.socket("udp", ("0.0.0.0", 5000))
    target.send(h1.port, to_group(h1, mac=h1.port.mac) / UDP(sport=40001, dport=5000) / b"unicast mac")
    assert sock.recv() == (b"unicast mac", (h1.ip, 40001))
    assert target.drops() == []


def test_all_hosts_datagram_from_0_0_0_0_is_delivered(target, hosts):
    """ip_mc_validate_source(): a zeronet source may send to a link-local group
    (224.0.0.0/24), as a host without an address does."""
    h0 = hosts[0]
    sock = target.socket("udp", ("0.0.0.0", 5000))
    target.send(h0.port, to_group(h0, src="0.0.0.0") / UDP(sport=68, dport=5000) / b"no address yet")
    assert sock.recv() == (b"no address yet", ("0.0.0.0", 68))
    assert target.drops() == []


def test_all_hosts_datagram_for_no_socket_is_dropped_without_icmp(target, hosts):
    """No port unreachable for a multicast route; the kfree_skb() is in the
    mcast path inlined into __udp4_lib_rcv."""
    h0 = hosts[0]
    target.send(h0.port, to_group(h0) / UDP(sport=40000, dport=5999) / b"anyone?")
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", "L4", "__udp4_lib_rcv")]


@pytest.mark.parametrize("group, mac", [("239.1.2.3", "01:00:5e:01:02:03"), ("224.0.0.251", "01:00:5e:00:00:fb")])
def test_a_group_nobody_joined_is_dropped_at_routing(target, hosts, group, mac):
    """ip_route_input_rcu(): not ours (ip_check_mc_rcu() finds no membership)
    and no mc_forwarding, so no route: NOT_SPECIFIED, even for a socket on the port."""
    h0 = hosts[0]
    sock = target.socket("udp", ("0.0.0.0", 5000))
    target.send(h0.port, to_group(h0, group, mac) / UDP(sport=40000, dport=5000) / b"unjoined")
    target.expect_nothing()
    assert sock.recv_all() == []
    assert drops(target) == [("NOT_SPECIFIED", "ROUTING", "ip_rcv_finish_core")]


@pytest.mark.parametrize("source, reason", [
    ("224.0.0.5", "IP_INVALID_SOURCE"),
    ("255.255.255.255", "IP_INVALID_SOURCE"),
    ("127.0.0.1", "IP_LOCALNET"),
    ("10.0.0.1", "IP_LOCAL_SOURCE"),
])
def test_all_hosts_from_a_martian_source_is_dropped_at_routing(target, hosts, source, reason):
    """ip_mc_validate_source(): a multicast or limited broadcast source, a
    loopback one (route_localnet 0), and one of the DUT's own addresses
    (fib_validate_source(), accept_local 0)."""
    h0 = hosts[0]
    sock = target.socket("udp", ("0.0.0.0", 5000))
    target.send(h0.port, to_group(h0, src=source) / UDP(sport=40000, dport=5000) / b"martian")
    target.expect_nothing()
    assert sock.recv_all() == []
    assert drops(target) == [(reason, "ROUTING", "ip_rcv_finish_core")]


def test_group_membership_is_checked_before_the_source(target, hosts):
    """ip_route_input_rcu() asks ip_check_mc_rcu() first: a multicast source to
    a group nobody joined is dropped for the group, not the source."""
    h0 = hosts[0]
    target.send(h0.port, to_group(h0, "239.1.2.3", "01:00:5e:01:02:03", src="224.0.0.5") /
                UDP(sport=40000, dport=5000) / b"x")
    assert drops(target) == [("NOT_SPECIFIED", "ROUTING", "ip_rcv_finish_core")]


def test_source_on_another_subnet_passes_without_rp_filter(target, hosts):
    """fib_validate_source() with rp_filter 0: h1's address arriving on p0 is fine."""
    h0 = hosts[0]
    sock = target.socket("udp", ("0.0.0.0", 5000))
    target.send(h0.port, to_group(h0, src=hosts[1].ip) / UDP(sport=40000, dport=5000) / b"elsewhere")
    assert sock.recv() == (b"elsewhere", (hosts[1].ip, 40000))


def test_source_on_another_subnet_is_dropped_by_strict_rp_filter(target, hosts):
    """fib_validate_source() with rp_filter 1: the route back to h1 is not via p0."""
    h0 = hosts[0]
    target.sh("sysctl -w net.ipv4.conf.all.rp_filter=1")
    target.send(h0.port, to_group(h0, src=hosts[1].ip) / UDP(sport=40000, dport=5000) / b"elsewhere")
    target.expect_nothing()
    assert drops(target) == [("IP_RPFILTER", "ROUTING", "ip_rcv_finish_core")]


@pytest.mark.parametrize("icmp_type", [8, 13], ids=["echo", "timestamp"])
def test_echo_and_timestamp_to_all_hosts_are_ignored(target, hosts, icmp_type):
    """icmp_rcv(): icmp_echo_ignore_broadcasts (1 here, the default) covers
    RTCF_MULTICAST routes too; the packet is freed with INVALID_PROTO."""
    h0 = hosts[0]
    assert target.sh("sysctl -n net.ipv4.icmp_echo_ignore_broadcasts").strip() == "1"
    target.send(h0.port, to_group(h0) / ICMP(type=icmp_type, id=1, seq=1))
    target.expect_nothing()
    assert drops(target) == [("INVALID_PROTO", "L4", "icmp_rcv")]


def test_echo_to_all_hosts_is_answered_once_broadcasts_are_not_ignored(target, hosts):
    """icmp_reply(): the reply's source is fib_compute_spec_dst(), the preferred
    source of the route back to the sender (p0's address)."""
    h0 = hosts[0]
    target.sh("sysctl -w net.ipv4.icmp_echo_ignore_broadcasts=0")
    target.send(h0.port, to_group(h0) / ICMP(type=8, id=0x4321, seq=2) / b"group ping")
    reply = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags=0) / \
        ICMP(type=0, id=0x4321, seq=2) / b"group ping"
    target.expect(h0.port, icmp_socket_mask(reply))
    target.expect_nothing()


def test_unknown_protocol_to_all_hosts_gets_no_protocol_unreachable(target, hosts):
    """__icmp_send() sends nothing about a packet on a multicast route."""
    h0 = hosts[0]
    target.send(h0.port, to_group(h0, proto=253) / b"experimental")
    target.expect_nothing()
    assert drops(target) == [("IP_NOPROTO", "L4", "ip_local_deliver_finish")]


def test_tcp_to_all_hosts_is_discarded_without_a_reset(target, hosts):
    """tcp_v4_rcv() discards a segment that was not PACKET_HOST; on the DUT's
    own MAC it finds no socket, and tcp_v4_send_reset() answers only RTN_LOCAL."""
    h0 = hosts[0]
    target.send(h0.port, [to_group(h0) / TCP(sport=40000, dport=80, flags="S"),
                          to_group(h0, mac=h0.port.mac) / TCP(sport=40001, dport=80, flags="S")])
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", "L4", "tcp_v4_rcv"), ("NO_SOCKET", "L4", "tcp_v4_rcv")]


def test_igmp_query_is_consumed_and_a_bad_one_freed(target, hosts):
    """igmp_rcv(): a general query (v2, 8 bytes) is taken quietly (all-hosts is
    never reported); a bad checksum or a v3 report is freed."""
    h0 = hosts[0]
    query = bytes.fromhex("1164ee9b00000000")
    bad_checksum = bytes.fromhex("11640000 00000000")
    v3_report = bytes.fromhex("2200ddff00000000")
    target.send(h0.port, to_group(h0, proto=2) / query)
    target.expect_nothing()
    assert target.drops() == []
    target.send(h0.port, [to_group(h0, proto=2) / bad_checksum, to_group(h0, proto=2) / v3_report])
    target.expect_nothing()
    # the lab's drop tracer knows no stage for igmp_rcv: compare reason and place
    assert [(d.reason, d.location) for d in target.drops()] == [("NOT_SPECIFIED", "igmp_rcv")] * 2


PKTTYPE = """
table ip t {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        udp dport 5000 meta pkttype multicast counter comment "pre multicast"
        udp dport 5000 fib daddr type multicast counter comment "pre to a multicast address"
    }
    chain input {
        type filter hook input priority filter; policy accept;
        udp dport 5000 meta pkttype multicast counter comment "in multicast"
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        udp dport 5000 counter comment "forwarded"
    }
}
"""


@pytest.mark.requires("nftables", "nftrace")
def test_all_hosts_datagram_crosses_prerouting_then_input_as_pkttype_multicast(target, router):
    """With forwarding on, an all-hosts datagram still goes to INPUT, never
    FORWARD (no multicast routing); pkttype is multicast in both chains."""
    h0 = router[0]
    target.sh("nft -f -", stdin=PKTTYPE)
    sock = target.socket("udp", ("0.0.0.0", 5000))
    target.send(h0.port, to_group(h0, id=4242) / UDP(sport=40000, dport=5000) / b"chains")
    assert sock.recv()[0] == b"chains"
    assert counted_by_comment(target) == {"pre multicast": 1, "pre to a multicast address": 1, "in multicast": 1, "forwarded": 0}
    crossed = [[(h.stage, h.where) for h in j.hops if h.where.startswith("ip t ")] for j in target.journeys()]
    assert [c for c in crossed if c] == [[("NF_PREROUTING", "ip t prerouting"), ("NF_INPUT", "ip t input")]]
