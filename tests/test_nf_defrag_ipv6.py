"""nf_defrag_ipv6 on the mock beyond the cross-target suite (suites/test_ipv6_conntrack.py):
the journey of a datagram through the defrag hook, and the answers of
nf_ct_frag6_queue() that differ from the stack's reassembly
(net/ipv6/netfilter/nf_conntrack_reasm.c), each written out from the kernel's code."""
from __future__ import annotations

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether

from harness.mockkernel.target import MockTarget
from harness.testing.plan import Host, ipv6_on, plan_hosts6

TRACKED = """table inet t {
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tct state new counter
\t}
}
"""
DATA = bytes(range(256)) * 4


def _router() -> tuple[MockTarget, list[Host]]:
    dut = MockTarget()
    ipv6_on(dut)
    hosts = plan_hosts6(dut)
    dut.sh("sysctl -w net.ipv6.conf.all.forwarding=1")
    dut.sh("nft -f -", stdin=TRACKED)
    return dut, hosts


def _fragment(h0: Host, h1: Host, offset: int, data: bytes, more: bool, ident: int = 7) -> Ether:
    return h0.to_dut6(dst=h1.ip6) / IPv6ExtHdrFragment(nh=17, offset=offset // 8, m=int(more), id=ident) / data


def _udp(h0: Host, h1: Host, length: int) -> bytes:
    return bytes(IPv6(src=h0.ip6, dst=h1.ip6) / UDP(sport=1, dport=2) / DATA[:length - 8])[40:]


def test_the_datagram_goes_through_the_defrag_hook_before_conntrack_and_the_chains():
    dut, (h0, h1, _) = _router()
    udp = _udp(h0, h1, 1000)
    dut.send(h0.port, [_fragment(h0, h1, 0, udp[:600], True), _fragment(h0, h1, 600, udp[600:], False)])
    first, second = dut.journeys()[:2]
    assert [(h.stage, h.where, h.verdict) for h in first.hops][-1] == ("IP_DEFRAG", "nf_ct_frag6_queue", "QUEUED")
    hops = [(h.stage, h.where, h.verdict) for h in second.hops]
    start = hops.index(("IP_DEFRAG", "nf_ct_frag6_queue", "QUEUED"))
    assert hops[start:start + 3] == [("IP_DEFRAG", "nf_ct_frag6_queue", "QUEUED"),
                                     ("IP_DEFRAG", "nf_ct_frag6_reasm", "REASSEMBLED"),
                                     ("NF_PREROUTING", "nf_conntrack_in", "NEW")]
    assert [h.summary for h in second.hops if h.where == "nf_ct_frag6_reasm"] == ["2 fragments, len=1040"]
    assert len(dut.collect(h1.port.name)) == 2


def test_without_conntrack_in_an_ip6_table_fragments_pass_as_they_are():
    """An ip table's conntrack is IPv4's only (nf_ct_netns_do_get()): no nf_defrag_ipv6."""
    dut, (h0, h1, _) = _router()
    dut.sh("nft flush ruleset")
    dut.sh("nft add table ip t")
    dut.sh("nft add chain ip t c { type filter hook forward priority 0 \\; }")
    dut.sh("nft add rule ip t c ct state new counter")
    udp = _udp(h0, h1, 1000)
    dut.send(h0.port, [_fragment(h0, h1, 0, udp[:600], True), _fragment(h0, h1, 600, udp[600:], False, 9)])
    assert [IPv6(bytes(f)[14:])[IPv6ExtHdrFragment].id for f in dut.collect(h1.port.name)] == [7, 9]


def test_a_non_last_fragment_not_a_multiple_of_8_kills_the_queue_and_passes_as_it_is():
    """nf_ct_frag6_queue(): end & 7 -> inet_frag_kill(), -EPROTO, which
    nf_ct_frag6_gather() turns into 0: the fragment goes on (conntrack: INVALID)."""
    dut, (h0, h1, _) = _router()
    udp = _udp(h0, h1, 1000)
    dut.send(h0.port, [_fragment(h0, h1, 600, udp[600:], False), _fragment(h0, h1, 0, udp[:601], True)])
    sent = dut.collect(h1.port.name)
    assert [len(IPv6(bytes(f)[14:])[IPv6ExtHdrFragment].payload) for f in sent] == [601]
    verdicts = [(h.verdict, str(h.summary)) for j in dut.journeys() for h in j.hops if h.where == "nf_conntrack_in"]
    assert verdicts == [("INVALID", "udp: truncated/malformed packet")], "udp_error(): its length is 1000"
    assert [(d.reason, d.location) for d in dut.drops()] == [("NOT_SPECIFIED", "inet_frag_rbtree_purge")]


def test_a_second_last_fragment_with_another_end_is_dropped_at_the_hook_and_the_queue_lives():
    """nf_ct_frag6_queue(): `goto err` without inet_frag_kill() -> -EINVAL -> NF_DROP."""
    dut, (h0, h1, _) = _router()
    udp = _udp(h0, h1, 1000)
    dut.send(h0.port, [_fragment(h0, h1, 600, udp[600:], False), _fragment(h0, h1, 600, udp[600:960], False),
                       _fragment(h0, h1, 0, udp[:600], True)])
    assert len(dut.collect(h1.port.name)) == 2, "the first datagram completed"
    assert [(d.reason, d.stage, d.location) for d in dut.drops()] == \
        [("NETFILTER_DROP", "NF_PREROUTING", "nf_hook_slow")]


def test_an_overlap_kills_the_queue_and_is_dropped():
    dut, (h0, h1, _) = _router()
    udp = _udp(h0, h1, 1000)
    dut.send(h0.port, [_fragment(h0, h1, 0, udp[:600], True), _fragment(h0, h1, 592, udp[592:], False)])
    assert dut.collect(h1.port.name) == []
    assert sorted((d.reason, d.location) for d in dut.drops()) == \
        [("NETFILTER_DROP", "nf_hook_slow"), ("NOT_SPECIFIED", "inet_frag_rbtree_purge")]


def test_an_atomic_fragment_is_reassembled_alone_and_leaves_without_its_fragment_header():
    """nf_ct_frag6_gather() has no atomic-fragment case: offset 0 without M is a
    whole queue at once; the datagram is no longer than frag_max_size, so not refragmented."""
    dut, (h0, h1, _) = _router()
    udp = _udp(h0, h1, 100)
    dut.send(h0.port, _fragment(h0, h1, 0, udp, False))
    (sent,) = dut.collect(h1.port.name)
    assert bytes(sent)[14:] == bytes(IPv6(src=h0.ip6, dst=h1.ip6, hlim=63, nh=17) / udp)
