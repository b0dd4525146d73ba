"""A dual-stack stateful `inet` ruleset of the kind found on real hosts
(loopback, established/related, icmp and icmpv6 types including neighbour
discovery, ssh, a drop policy) and a fib reverse-path filter, on both targets:
the ruleset lists as nft 1.0.6 lists it and decides what reaches the DUT.
"""
from __future__ import annotations

from socket import AF_INET6

import pytest
from scapy.layers.inet import ICMP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,
                                ICMPv6NDOptSrcLLAddr, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop)
from scapy.layers.l2 import Ether

from harness.packets import Mask
from harness.testing import counted, drops, icmp_socket_mask

pytestmark = pytest.mark.requires("nftables")

HOST_RULESET = """table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tiif lo accept
\t\tct state established,related accept
\t\tct state invalid drop
\t\tmeta l4proto icmp icmp type { echo-request, destination-unreachable, time-exceeded, parameter-problem } accept
\t\tmeta l4proto ipv6-icmp icmpv6 type { echo-request, destination-unreachable, packet-too-big, time-exceeded, \\
parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept
\t\ttcp dport 22 ct state new accept
\t\tcounter comment "dropped by policy"
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t}
\tchain output {
\t\ttype filter hook output priority filter; policy accept;
\t}
}
"""
# what nft 1.0.6 lists for it (seen on 6.18): the implicit protocol matches gone, sets sorted by value
HOST_LISTING = """table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tiif "lo" accept
\t\tct state established,related accept
\t\tct state invalid drop
\t\ticmp type { destination-unreachable, echo-request, time-exceeded, parameter-problem } accept
\t\ticmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, \
nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept
\t\ttcp dport 22 ct state new accept
\t\tcounter packets 0 bytes 0 comment "dropped by policy"
\t}

\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t}

\tchain output {
\t\ttype filter hook output priority filter; policy accept;
\t}
}
"""


@pytest.mark.requires("host_input_policy")  # a lab DUT refuses it: its SSH session comes in too
def test_a_dual_stack_host_ruleset_lists_as_nft_lists_it(target):
    target.sh("nft -f -", stdin=HOST_RULESET)
    assert target.sh("nft list ruleset") == HOST_LISTING


@pytest.mark.requires("host_input_policy")  # a lab DUT refuses it: its SSH session comes in too
def test_the_host_ruleset_answers_ipv4_echo_and_drops_the_rest_by_policy(target, hosts):
    h0 = hosts[0]
    target.sh("nft -f -", stdin=HOST_RULESET)
    request = h0.to_dut() / ICMP(type=8, id=0x77, seq=1) / b"ping"
    target.send(h0.port, request)
    reply = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags=0) / ICMP(type=0, id=0x77, seq=1) / b"ping"
    target.expect(h0.port, icmp_socket_mask(reply))
    target.send(h0.port, h0.to_dut() / UDP(sport=1234, dport=9999) / b"closed port")
    target.expect_nothing()  # no port unreachable: the policy dropped it before UDP saw it
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_INPUT")]
    assert [(c.chain, c.rule, c.packets) for c in target.counters()] == \
        [("input", 'counter comment "dropped by policy"', 1)]


@pytest.mark.requires("host_input_policy")  # a lab DUT refuses it: its SSH session comes in too
def test_the_host_ruleset_lets_the_reply_to_a_local_socket_in_as_established(target, hosts):
    h1 = hosts[1]
    target.sh("nft -f -", stdin=HOST_RULESET)
    sock = target.socket("udp", (h1.dut_ip, 5353))
    sock.sendto(b"query", (h1.ip, 53))
    target.send(h1.port, h1.to_dut() / UDP(sport=53, dport=5353) / b"answer")
    assert sock.recv() == (b"answer", (h1.ip, 53))
    assert target.drops() == []


RP_FILTER = """table inet rpf {
\tchain prerouting {
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tfib saddr . iif oif missing counter drop
\t}
}
"""


@pytest.mark.parametrize("src, forwarded", [("10.0.0.77", True), ("10.0.1.77", False), ("192.0.2.9", False)],
                         ids=["route back through the input port", "route back through another port",
                              "no route back"])
def test_fib_saddr_iif_oif_missing_is_a_strict_reverse_path_filter_for_ipv4(target, router, src, forwarded):
    """nft_fib4_eval(): the source must route back out of the port the packet
    came in on (10.0.0.0/24 is behind p0, 10.0.1.0/24 behind p1)."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin=RP_FILTER)
    sent = h0.to_dut(src=src, dst=h2.ip) / UDP(sport=1, dport=2) / b"rpf"
    target.send(h0.port, sent)
    if forwarded:
        target.expect(h2.port, h2.from_dut(src=src, dst=h2.ip, ttl=63) / UDP(sport=1, dport=2) / b"rpf")
        assert target.drops() == []
    else:
        target.expect_nothing()
        assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_PREROUTING")]


# ------------------------------------------------------------------ IPv6

def _flow(frame) -> Mask:
    """What the DUT sends from its own sockets carries an automatic flow label."""
    return Mask(frame).ignore(IPv6, "fl", "auto_flowlabels: the flow's hash under a random key")


@pytest.mark.requires("host_input_policy")  # a lab DUT refuses it: its SSH session comes in too
def test_the_host_ruleset_answers_icmpv6_echo_and_drops_a_closed_port_by_policy(target, hosts6):
    h0 = hosts6[0]
    target.sh("nft -f -", stdin=HOST_RULESET)
    target.send(h0.port, h0.to_dut6() / ICMPv6EchoRequest(id=0x77, seq=1, data=b"ping"))
    target.expect(h0.port, _flow(h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=64) /
                                 ICMPv6EchoReply(id=0x77, seq=1, data=b"ping")))
    target.send(h0.port, h0.to_dut6() / UDP(sport=1234, dport=9999) / b"closed port")
    target.expect_nothing()  # no port unreachable: the policy dropped it before UDP saw it
    assert drops(target) == [("NETFILTER_DROP", "NF_INPUT", "nft_do_chain")]
    assert counted(target, "dropped by policy") == 1


@pytest.mark.requires("host_input_policy")  # a lab DUT refuses it: its SSH session comes in too
def test_the_host_ruleset_lets_a_reply_to_a_local_ipv6_socket_in_as_established(target, hosts6):
    h1 = hosts6[1]
    target.sh("nft -f -", stdin=HOST_RULESET)
    sock = target.socket("udp", (h1.dut_ip6, 5353), family=AF_INET6)
    sock.sendto(b"query", (h1.ip6, 53))
    target.send(h1.port, h1.to_dut6(src=h1.ip6) / UDP(sport=53, dport=5353) / b"answer")
    assert sock.recv() == (b"answer", (h1.ip6, 53))
    assert drops(target) == []


@pytest.mark.requires("host_input_policy")  # a lab DUT refuses it: its SSH session comes in too
def test_neighbour_discovery_passes_the_ct_state_invalid_drop_rule_untracked(target, hosts6):
    """nf_conntrack_icmpv6_error(): NS is UNTRACKED, so `ct state invalid drop`
    lets it through to the icmpv6 accept rule and the DUT answers."""
    h0 = hosts6[0]
    target.sh("nft -f -", stdin=HOST_RULESET)
    target.send(h0.port, Ether(src=h0.mac, dst="33:33:ff:00:00:01") /
                IPv6(src=h0.ip6, dst="ff02::1:ff00:1", hlim=255) /
                ICMPv6ND_NS(tgt=h0.dut_ip6) / ICMPv6NDOptSrcLLAddr(lladdr=h0.mac))
    target.expect(h0.port, h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=255) /
                  ICMPv6ND_NA(tgt=h0.dut_ip6, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=h0.port.mac))
    assert drops(target) == []
    assert counted(target, "dropped by policy") == 0


RP_FILTER6 = """table ip6 rpf {
\tchain prerouting {
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tfib saddr . iif oif missing counter drop
\t}
}
"""


@pytest.mark.parametrize("src, forwarded", [("2001:db8::77", True), ("2001:db8:1::77", False),
                                            ("2001:db8:99::9", False)],
                         ids=["route back through the input port", "route back through another port",
                              "no route back"])
def test_fib_saddr_iif_oif_missing_is_a_strict_reverse_path_filter_for_ipv6(target, router6, src, forwarded):
    """nft_fib6_eval(): the source must route back out of the port the packet
    came in on (2001:db8::/64 is on p0, 2001:db8:1::/64 on p1)."""
    h0, h1, h2 = router6
    target.sh("nft -f -", stdin=RP_FILTER6)
    sent = h0.to_dut6(src=src, dst=h2.ip6) / UDP(sport=1, dport=2) / b"rpf"
    target.send(h0.port, sent)
    if forwarded:
        target.expect(h2.port, h2.from_dut6(src=src, dst=h2.ip6, hlim=63) / UDP(sport=1, dport=2) / b"rpf")
        assert drops(target) == []
    else:
        target.expect_nothing()
        assert drops(target) == [("NETFILTER_DROP", "NF_PREROUTING", "nft_do_chain")]


EXTHDR_DROPS = """table inet headers {
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\trt type 0 counter drop comment "type 0 routing header"
\t\texthdr hbh exists counter drop comment "hop-by-hop"
\t\tfrag more-fragments 1 counter drop comment "first fragment"
\t}
}
"""


@pytest.mark.parametrize("headers, comment", [
    (IPv6ExtHdrHopByHop(), "hop-by-hop"),
    (IPv6ExtHdrDestOpt(), None),
], ids=["hop-by-hop", "destination options"])
def test_extension_header_rules_drop_a_forwarded_packet_by_the_header_it_carries(target, router6, headers, comment):
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=EXTHDR_DROPS)
    target.send(h0.port, h0.to_dut6(dst=h1.ip6) / headers / UDP(sport=1, dport=2) / b"x")
    if comment is None:
        target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63) / headers / UDP(sport=1, dport=2) / b"x")
        assert drops(target) == []
    else:
        target.expect_nothing()
        assert drops(target) == [("NETFILTER_DROP", "NF_FORWARD", "nft_do_chain")]
        assert counted(target, comment) == 1


NAT66 = """table ip6 nat {
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tudp dport 53 dnat to [2001:db8:1::2]:5353
\t}
}
"""


def test_nat66_dnat_sends_a_datagram_to_the_inside_host_and_un_nats_its_reply(target, router6):
    """A published port: h0 asks the DUT's address, h1 (inside) gets it on 5353,
    and h0 gets the answer from the address and port it asked."""
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=NAT66)
    target.send(h0.port, h0.to_dut6() / UDP(sport=4000, dport=53) / b"query")
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63) / UDP(sport=4000, dport=5353) / b"query")
    target.send(h1.port, h1.to_dut6(src=h1.ip6, dst=h0.ip6) / UDP(sport=5353, dport=4000) / b"answer")
    target.expect(h0.port, h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=63) / UDP(sport=53, dport=4000) / b"answer")
    assert drops(target) == []


REJECTS = """table inet r {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tudp dport 9 reject
\t\tudp dport 10 reject with icmpx type admin-prohibited
\t\ttcp dport 23 reject with tcp reset
\t}
}
"""


@pytest.mark.parametrize("dport, code", [(9, 4), (10, 1)], ids=["icmpx port-unreachable", "icmpx admin-prohibited"])
def test_an_inet_reject_answers_ipv6_with_the_icmpv6_code_of_its_icmpx_code(target, hosts6, dport, code):
    """nft_reject_inet_eval(): icmpx port-unreachable is ICMPv6 code 4, admin-prohibited 1
    (nft_reject_icmpv6_code()); the packet is dropped where the chain rejected it."""
    h0 = hosts6[0]
    target.sh("nft -f -", stdin=REJECTS)
    sent = h0.to_dut6() / UDP(sport=1111, dport=dport) / b"rejected"
    target.send(h0.port, sent)
    target.expect(h0.port, _flow(h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=64) / ICMPv6DestUnreach(code=code) /
                                 bytes(sent[IPv6])))
    assert drops(target) == [("NETFILTER_DROP", "NF_INPUT", "nft_do_chain")]


def test_reject_with_tcp_reset_answers_an_ipv6_syn_with_a_rst(target, hosts6):
    """nf_send_reset6(): RST|ACK acknowledging the SYN, from the address it was
    sent to, traffic class and flow label 0, the route's hop limit."""
    h0 = hosts6[0]
    target.sh("nft -f -", stdin=REJECTS)
    target.send(h0.port, h0.to_dut6() / TCP(sport=40000, dport=23, flags="S", seq=1000))
    target.expect(h0.port, h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=64) /
                  TCP(sport=23, dport=40000, flags="RA", seq=0, ack=1001, window=0))
    assert drops(target) == [("NETFILTER_DROP", "NF_INPUT", "nft_do_chain")]


MASQ66 = """table inet nat {
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "%s" masquerade
\t}
}
"""


def test_nat66_masquerade_takes_the_egress_ports_address_and_un_nats_the_reply(target, router6):
    """nf_nat_masquerade_ipv6(): the source becomes the address
    ipv6_dev_get_saddr() picks on the way out (2001:db8:1::1 on p1)."""
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=MASQ66 % h1.port.name)
    target.send(h0.port, h0.to_dut6(dst=h1.ip6) / UDP(sport=4000, dport=53) / b"query")
    target.expect(h1.port, h1.from_dut6(src=h1.dut_ip6, dst=h1.ip6, hlim=63) / UDP(sport=4000, dport=53) / b"query")
    target.send(h1.port, h1.to_dut6(src=h1.ip6, dst=h1.dut_ip6) / UDP(sport=53, dport=4000) / b"answer")
    target.expect(h0.port, h0.from_dut6(src=h1.ip6, dst=h0.ip6, hlim=63) / UDP(sport=53, dport=4000) / b"answer")
    assert drops(target) == []
