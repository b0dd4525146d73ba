"""The IPv6 datapath (net/ipv6/): ICMPv6 echo, the errors a router and a host
send (hop limit exceeded, packet too big, port unreachable, no route), and
forwarding with net.ipv6.conf.all.forwarding."""
from __future__ import annotations

from socket import AF_INET6

from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6PacketTooBig,
                                ICMPv6TimeExceeded, IPv6, IPv6ExtHdrFragment)

from harness.packets import Mask
from harness.testing import auto_flowlabel_mask, drops

PAYLOAD = b"packet-journey"
FAR = "2001:db8:99::7"  # no route leads there




def test_echo_request_is_answered_from_the_address_it_was_sent_to(target, hosts6):
    h0 = hosts6[0]
    target.send(h0.port, h0.to_dut6(tc=0x20) / ICMPv6EchoRequest(id=7, seq=3, data=PAYLOAD))
    # icmpv6_echo_reply(): the request's traffic class, hop limit 64 (conf hop_limit)
    target.expect(h0.port, auto_flowlabel_mask(h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=64, tc=0x20) /
                                          ICMPv6EchoReply(id=7, seq=3, data=PAYLOAD)))
    target.expect_nothing()
    assert drops(target) == []


def test_echo_request_with_a_bad_checksum_is_dropped_icmp_csum(target, hosts6):
    h0 = hosts6[0]
    target.send(h0.port, h0.to_dut6() / ICMPv6EchoRequest(id=7, seq=3, cksum=0x1234))
    target.expect_nothing()
    assert drops(target) == [("ICMP_CSUM", "L4", "icmpv6_rcv")]


def test_echo_ignore_all_drops_the_request_unanswered(target, hosts6):
    h0 = hosts6[0]
    target.sh("sysctl -w net.ipv6.icmp.echo_ignore_all=1")
    target.send(h0.port, h0.to_dut6() / ICMPv6EchoRequest(id=7, seq=3))
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", "L4", "icmpv6_rcv")]


def test_udp_to_a_closed_port_is_answered_with_port_unreachable(target, hosts6):
    h0 = hosts6[0]
    sent = h0.to_dut6() / UDP(sport=1111, dport=9) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6DestUnreach(code=4), sent))
    target.expect_nothing()
    assert drops(target) == [("NO_SOCKET", "L4", "__udp6_lib_rcv")]


def test_a_short_udp_datagram_with_a_bad_checksum_is_udp_csum_before_the_port_lookup(target, hosts6):
    """udp6_csum_init(): up to 76 bytes (CHECKSUM_BREAK) the checksum is verified at once."""
    h0 = hosts6[0]
    target.send(h0.port, h0.to_dut6() / UDP(sport=1111, dport=9, chksum=0x4321) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == [("UDP_CSUM", "L4", "__udp6_lib_rcv")]


def test_a_longer_udp_datagram_with_a_bad_checksum_to_a_closed_port_is_no_socket_unanswered(target, hosts6):
    """Past 76 bytes the check waits: __udp6_lib_rcv() has set NO_SOCKET when it finds the
    checksum bad, which only keeps the port unreachable from being sent."""
    h0 = hosts6[0]
    target.send(h0.port, h0.to_dut6() / UDP(sport=1111, dport=9, chksum=0x4321) / (b"y" * 100))
    target.expect_nothing()
    assert drops(target) == [("NO_SOCKET", "L4", "__udp6_lib_rcv")]


def test_forwarded_packet_leaves_with_its_hop_limit_decremented(target, router6):
    h0, h1 = router6[0], router6[1]
    sent = h0.to_dut6(dst=h1.ip6, hlim=64, fl=0x12345) / UDP(sport=1111, dport=2222) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63, fl=0x12345) /
                  UDP(sport=1111, dport=2222) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == []


def test_without_forwarding_a_packet_for_another_host_is_dropped_inaddrerrors(target, hosts6):
    h0, h1 = hosts6[0], hosts6[1]
    target.send(h0.port, h0.to_dut6(dst=h1.ip6) / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == [("IP_INADDRERRORS", "IP_FORWARD", "ip6_forward")]


def test_hop_limit_1_is_answered_with_time_exceeded_before_the_forward_hook(target, router6):
    h0, h1 = router6[0], router6[1]
    sent = h0.to_dut6(dst=h1.ip6, hlim=1) / UDP(sport=1111, dport=2222) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6TimeExceeded(code=0), sent))
    target.expect_nothing()
    assert drops(target) == [("IP_INHDR", "IP_FORWARD", "ip6_forward")]


def test_a_packet_over_the_egress_mtu_gets_packet_too_big_with_the_mtu(target, router6):
    """Routers never fragment IPv6: ip6_forward() answers with the egress MTU."""
    h0, h1 = router6[0], router6[1]
    target.sh(f"ip link set {h1.port.name} mtu 1280")
    sent = h0.to_dut6(dst=h1.ip6) / UDP(sport=1111, dport=2222) / (b"x" * 1300)
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6PacketTooBig(mtu=1280), sent))
    target.expect_nothing()
    assert drops(target) == [("PKT_TOO_BIG", "IP_FORWARD", "ip6_forward")]


def test_no_route_is_answered_with_destination_unreachable_no_route_even_without_forwarding(target, hosts6):
    h0 = hosts6[0]
    sent = h0.to_dut6(dst=FAR) / UDP(sport=1, dport=2) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6DestUnreach(code=0), sent))
    target.expect_nothing()
    # answered whether or not the host forwards (ip6_pkt_drop(), inlined into ip6_pkt_discard)
    assert drops(target) == [("IP_INNOROUTES", "ROUTING", "ip6_pkt_discard")]


def test_prohibit_route_answers_administratively_prohibited_and_blackhole_nothing(target, router6):
    h0 = router6[0]
    target.sh("ip -6 route add prohibit 2001:db8:98::/64")
    target.sh("ip -6 route add blackhole 2001:db8:97::/64")
    prohibited = h0.to_dut6(dst="2001:db8:98::1") / UDP(sport=1, dport=2) / PAYLOAD
    target.send(h0.port, prohibited)
    target.expect(h0.port, h0.icmp6_error(ICMPv6DestUnreach(code=1), prohibited))
    target.send(h0.port, h0.to_dut6(dst="2001:db8:97::1") / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == [("IP_INNOROUTES", "ROUTING", "ip6_pkt_prohibit"),
                             ("NOT_SPECIFIED", "ROUTING", "dst_discard_out")]


def test_a_dut_socket_datagram_over_the_mtu_leaves_in_fragments_of_the_path_mtu(target, hosts6):
    """ip6_fragment() at the source (IPV6_PMTUDISC_WANT lets the stack fragment):
    (1500 - 40 - 8) & ~7 = 1448 bytes per fragment, one identification."""
    h0 = hosts6[0]
    sock = target.socket("udp", (h0.dut_ip6, 5000), family=AF_INET6)
    data = bytes(range(256)) * 12  # 3072 bytes + 8 of UDP header: 3 fragments
    sock.sendto(data, (h0.ip6, 6000))
    datagram = bytes(UDP(sport=5000, dport=6000, chksum=udp6_checksum(h0.dut_ip6, h0.ip6, 5000, 6000, data)) / data)
    got = [target.expect(h0.port, _fragment_mask(h0, datagram, offset, length, more))
           for offset, length, more in ((0, 1448, True), (1448, 1448, True), (2896, 184, False))]
    assert len({bytes(f)[14 + 40 + 4:14 + 40 + 8] for f in got}) == 1, "one identification for all fragments"
    target.expect_nothing()


def udp6_checksum(src: str, dst: str, sport: int, dport: int, data: bytes) -> int:
    """The datagram's checksum as scapy computes it over the IPv6 pseudo-header."""
    return UDP(bytes(IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport) / data)[40:]).chksum


def _fragment_mask(host, datagram: bytes, offset: int, length: int, more: bool) -> Mask:
    frame = host.from_dut6(src=host.dut_ip6, dst=host.ip6, hlim=64) / \
        IPv6ExtHdrFragment(nh=17, offset=offset // 8, m=int(more), id=0) / datagram[offset:offset + length]
    return auto_flowlabel_mask(frame).ignore(IPv6ExtHdrFragment, "id", "ipv6_select_ident(): a keyed hash of the addresses")


def test_a_datagram_to_a_bound_socket_is_delivered_with_its_source(target, hosts6):
    h0 = hosts6[0]
    sock = target.socket("udp", ("::", 5000), family=AF_INET6)
    target.send(h0.port, h0.to_dut6() / UDP(sport=4444, dport=5000) / PAYLOAD)
    assert sock.recv() == (PAYLOAD, (h0.ip6, 4444))
    target.expect_nothing()
    assert drops(target) == []


def test_a_burst_of_errors_to_one_sender_is_cut_to_the_token_buckets_six(target, hosts6):
    """icmpv6_xrlim_allow(): net.ipv6.icmp.ratelimit (1000 ms) >> ((128 - 64) >> 5) for the
    sender's /64 route, 250 ms a message, a new peer's bucket holding six (XRLIM_BURST_FACTOR)."""
    h0 = hosts6[0]
    target.send(h0.port, [h0.to_dut6() / UDP(sport=1000 + i, dport=9) / PAYLOAD for i in range(10)])
    replies = target.collect(h0.port)
    assert [IPv6(f[14:])[ICMPv6DestUnreach].code for f in replies] == [4] * 6
    assert [d[0] for d in drops(target)] == ["NO_SOCKET"] * 10


def test_echo_replies_are_never_rate_limited(target, hosts6):
    """The default ratemask (0-1,3-127) leaves informational messages out."""
    h0 = hosts6[0]
    target.send(h0.port, [h0.to_dut6() / ICMPv6EchoRequest(id=1, seq=i) for i in range(10)])
    replies = target.collect(h0.port)
    assert [IPv6(f[14:])[ICMPv6EchoReply].seq for f in replies] == list(range(10))


def test_echo_to_all_nodes_is_answered_from_the_best_source_for_the_sender(target, hosts6):
    """ip6_mc_input() delivers a group the port joined; the reply's source is no group
    but ipv6_dev_get_saddr()'s choice for the sender (its /64's global address)."""
    h0 = hosts6[0]
    target.send(h0.port, Ether(src=h0.mac, dst="33:33:00:00:00:01") / IPv6(src=h0.ip6, dst="ff02::1") /
                ICMPv6EchoRequest(id=5, seq=1, data=PAYLOAD))
    target.expect(h0.port, auto_flowlabel_mask(h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=64) /
                                          ICMPv6EchoReply(id=5, seq=1, data=PAYLOAD)))
    target.expect_nothing()
    assert drops(target) == []


def test_force_forwarding_on_the_receiving_port_forwards_while_all_forwarding_is_off(target, hosts6):
    """ip6_forward() (6.17): conf/all's forwarding, or the ingress device's force_forwarding."""
    h0, h1 = hosts6[0], hosts6[1]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.force_forwarding=1")
    target.send(h0.port, h0.to_dut6(dst=h1.ip6, hlim=9) / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=8) / UDP(sport=1, dport=2) / PAYLOAD)
    target.send(h1.port, h1.to_dut6(dst=h0.ip6) / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == [("IP_INADDRERRORS", "IP_FORWARD", "ip6_forward")]
