"""Where the stack's IPv6 reassembly drops a fragment (net/ipv6/reassembly.c): ip6_frag_queue()
is inlined into ipv6_frag_rcv() (6.18: it is not in kallsyms), so kfree_skb_reason() names
ipv6_frag_rcv as the location of every drop it makes."""
from __future__ import annotations

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6ExtHdrFragment

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
