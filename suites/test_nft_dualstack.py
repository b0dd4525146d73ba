"""A dual-stack stateful `inet` ruleset of the kind found on real hosts
(loopback, established/related, icmp and icmpv6 types including neighbour
discovery, ssh, a drop policy) and a fib reverse-path filter, on both targets:
the ruleset lists as nft 1.0.6 lists it and decides what reaches the DUT.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, UDP

from harness.testing import icmp_socket_mask

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


def test_a_dual_stack_host_ruleset_lists_as_nft_lists_it(target):
    target.sh("nft -f -", stdin=HOST_RULESET)
    assert target.sh("nft list ruleset") == HOST_LISTING


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
