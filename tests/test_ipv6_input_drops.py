"""Where IPv6 input drops what it cannot deliver, as the 6.18 lab's kfree_skb tracepoint names it:
reassembly (net/ipv6/reassembly.c: ip6_frag_queue() is inlined into ipv6_frag_rcv(), not in
kallsyms, so ipv6_frag_rcv is the location of every drop it makes) and echo replies (ping_rcv())."""
from __future__ import annotations

from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6ExtHdrFragment

from harness.mockkernel.target import MockTarget
from harness.testing import drops, ipv6_on, plan_hosts6


def test_a_duplicate_fragment_is_dup_frag_in_ipv6_frag_rcv_where_ip6_frag_queue_is_inlined():
    target = MockTarget()
    try:
        ipv6_on(target)
        h0 = plan_hosts6(target)[0]
        first = h0.to_dut6() / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=9) / UDP(sport=1, dport=2) / bytes(8)
        target.send(h0.port, [first, first])
        assert drops(target) == [("DUP_FRAG", "IP_DEFRAG", "ipv6_frag_rcv")]
    finally:
        target.close()


def test_an_icmpv6_echo_reply_no_ping_socket_takes_is_no_socket_in_ping_rcv():
    """icmpv6_rcv() hands an echo reply to ping_rcv() (net/ipv4/ping.c), which drops what
    no ping socket takes as NO_SOCKET (seed 4 of the differential runner's IPv6 grammar)."""
    target = MockTarget()
    try:
        ipv6_on(target)
        h0 = plan_hosts6(target)[0]
        target.send(h0.port, h0.to_dut6() / ICMPv6EchoReply(id=7, seq=1))
        assert drops(target) == [("NO_SOCKET", "L4", "ping_rcv")]
    finally:
        target.close()
