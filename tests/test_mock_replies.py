"""The answers the mock kernel sends itself (ICMP errors, TCP resets) where the
differential runner (python -m harness.diff) found it answering otherwise than
the kernel; each test names the kernel behaviour and the function deciding it."""
from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption
from scapy.layers.l2 import Ether

from harness.journey import with_children
from harness.mockkernel.target import MockTarget
from harness.testing import plan_router


def _router(hook: str, *rules: str, kind: str = "filter") -> MockTarget:
    """The plan's router with one chain of `rules` at `hook`."""
    target = MockTarget()
    plan_router(target)
    body = "\n".join(rules)
    target.sh(["nft", "-f", "-"], f"table ip t {{\nchain c {{\ntype {kind} hook {hook} priority 0\n{body}\n}}\n}}\n")
    return target


def _into_p0(target: MockTarget, packet) -> None:
    target.send("p0", [bytes(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01") / packet)])


def _answers(target: MockTarget) -> list[tuple[str, str | None]]:
    """Each packet the sent one caused: its summary line, and its drop reason."""
    (sent,) = target.journeys()
    return [(str(j.packet), j.drop and str(j.drop.reason)) for j in with_children(sent.children)]


def test_a_prerouting_reject_of_a_0_0_0_0_source_answers_itself_through_lo():
    """nf_reject_fill_skb_dst() routes to the sender 0.0.0.0: ip_route_output_key_hash_rcu()'s
    `!fl4->daddr` branch makes that a local route (RTCF_LOCAL, lo), so __icmp_send() answers
    from the packet's destination 10.0.0.1, and icmp_route_lookup() (the same branch) sends it
    to that source: 10.0.0.1 > 10.0.0.1 through lo, where it is an ordinary packet in."""
    target = _router("prerouting", "ip saddr 0.0.0.0 reject")
    _into_p0(target, IP(src="0.0.0.0", dst="10.0.0.1", id=7) / TCP(sport=22, dport=22, flags="A"))
    ((summary, drop),) = _answers(target)
    assert "10.0.0.1 > 10.0.0.1 icmp" in summary and "type 3 code 3" in summary
    assert drop is None
    assert target.collect_all() == {"p0": [], "p1": [], "p2": []}


def test_the_reset_of_a_prerouting_reject_of_a_0_0_0_0_source_goes_to_0_0_0_0_through_lo():
    """nf_send_reset(): the RST's header is the original's addresses swapped
    (nf_reject_iphdr_put()), and ip_route_me_harder() routes its 0.0.0.0 locally;
    on lo it finds no socket (tcp_v4_rcv(): NO_SOCKET)."""
    target = _router("prerouting", "ip saddr 0.0.0.0 reject with tcp reset")
    _into_p0(target, IP(src="0.0.0.0", dst="10.0.0.1", id=7) / TCP(sport=22, dport=22, flags="A"))
    ((summary, drop),) = _answers(target)
    assert "10.0.0.1 > 0.0.0.0 tcp" in summary
    assert drop == "NO_SOCKET"


def test_an_output_reject_of_an_echo_reply_sends_no_error_while_icmp_holds_its_socket():
    """icmp_reply() sends holding icmp_xmit_lock(); the reject in OUTPUT calls
    __icmp_send(), whose icmp_xmit_lock() trylock of the same per-CPU socket fails:
    the reply is dropped and no error follows it."""
    target = _router("output", "reject with icmp type net-unreachable")
    _into_p0(target, IP(src="10.0.0.2", dst="10.0.0.1", id=7) / ICMP(id=3, seq=1))
    ((summary, drop),) = _answers(target)
    assert "10.0.0.1 > 10.0.0.2 icmp" in summary and "echo" in summary
    assert drop == "NETFILTER_DROP"
    assert target.collect_all() == {"p0": [], "p1": [], "p2": []}



def test_the_reset_of_a_segment_with_record_route_echoes_the_option_with_this_host_recorded():
    """tcp_v4_send_reset() -> ip_send_unicast_reply(): __ip_options_echo() of the
    segment's options goes into the RST's header, and __ip_make_skb()'s
    ip_options_build() records the RST's own source in the slot it left."""
    target = _router("input", "counter")
    record_route = IPOption(b"\x07\x0b\x04" + bytes(8))
    _into_p0(target, IP(src="10.0.0.2", dst="10.0.0.1", id=7, options=[record_route]) / TCP(sport=1000, dport=22,
                                                                                            flags="S"))
    (rst,) = target.collect_all()["p0"]
    assert rst[14] == 0x48 and rst[14 + 32 + 13] == 0x14  # IHL 8; the TCP flags RST|ACK
    # the slot ip_rcv_options() filled on the way in (10.0.0.1), the RST's own (10.0.0.1), end of list
    assert rst[34:46] == bytes.fromhex("070b0c" "0a000001" "0a000001" "00")


def test_a_reject_sends_no_icmp_error_about_a_received_packet_whose_transport_checksum_fails():
    """nf_send_unreach(): a received packet is CHECKSUM_NONE, so nf_ip_checksum() checks what
    nf_reject_verify_csum() does not skip: an ICMP message or UDP datagram with a bad sum gets no
    error; UDP without a checksum (0) and GRE (not a sum of the payload) do. Seed 16, scenario 88."""
    target = _router("input", "reject")
    _into_p0(target, IP(src="10.0.0.2", dst="10.0.0.1", id=1) / ICMP(chksum=0x1111) / b"abcd")
    assert _answers(target) == []
    target = _router("input", "reject")
    _into_p0(target, IP(src="10.0.0.2", dst="10.0.0.1", id=2) / UDP(sport=5, dport=9, chksum=0x1234) / b"abc")
    assert _answers(target) == []
    for packet in (IP(src="10.0.0.2", dst="10.0.0.1", id=3) / UDP(sport=5, dport=9, chksum=0) / b"abc",
                   IP(src="10.0.0.2", dst="10.0.0.1", id=4, proto=47) / b"\x00\x00\x08\x00abcd"):
        target = _router("input", "reject")
        _into_p0(target, packet)
        assert [summary.split(":")[0] for summary, _ in _answers(target)] == ["icmp_send type 3 code 3"]


def test_a_reset_without_a_route_back_is_built_then_freed_in_nf_send_reset():
    """nf_send_reset() builds the RST before ip_route_me_harder() routes it; no route back to
    the sender is `goto free_nskb`, kfree_skb(): a NOT_SPECIFIED drop. Seed 16, scenario 165."""
    target = _router("forward", "reject with tcp reset")
    target.sh(["ip", "route", "add", "198.51.100.0/24", "via", "10.0.2.2"])
    _into_p0(target, IP(src="192.0.2.7", dst="198.51.100.1", id=1) / TCP(sport=22, dport=22, flags="S"))
    ((summary, drop),) = _answers(target)
    assert summary.startswith("nf_send_reset: 198.51.100.1 > 192.0.2.7 tcp")
    assert drop == "NOT_SPECIFIED"


def test_a_reset_reject_answers_no_segment_that_came_on_a_broadcast_route():
    """nf_send_reset(): `if (skb_rtable(oldskb)->rt_flags & (RTCF_BROADCAST | RTCF_MULTICAST))
    return;`: a SYN to the subnet's broadcast address rejected in INPUT gets no RST."""
    target = _router("input", "reject with tcp reset")
    _into_p0(target, IP(src="10.0.0.2", dst="10.0.0.255", id=1) / TCP(sport=1000, dport=22, flags="S"))
    assert _answers(target) == []


def test_an_icmp_error_takes_the_unconfirmed_entry_of_the_packet_it_answers_and_is_un_dnatted():
    """icmp_glue_bits() nf_ct_attach()es the error to the entry of the packet it
    answers, RELATED_REPLY, though that packet (DNATed, then out of TTL in
    ip_forward()) never reached the confirmation: nf_nat_icmp_reply_translation() in
    POSTROUTING gives the error the source and the quote the destination the sender
    used; no packet of the reply direction confirms the entry
    (__nf_conntrack_confirm())."""
    target = _router("prerouting", "dnat to 10.0.2.2", kind="nat")
    _into_p0(target, IP(src="10.0.0.2", dst="192.0.2.9", id=7, ttl=1) / UDP(sport=1000, dport=9))
    (error,) = target.collect_all()["p0"]
    outer = IP(error[14:])
    assert (outer.src, outer[ICMP].type, outer[ICMP].payload.dst) == ("192.0.2.9", 11, "192.0.2.9")
    assert target.conntrack() == []


def test_the_reset_of_a_prerouting_reject_is_related_to_the_segment_s_entry():
    """nf_send_reset() nf_ct_attach()es the RST to the SYN's entry: `ct state related`
    in OUTPUT, where a lookup of its tuple would have made it a new entry."""
    target = _router("prerouting", "ct state new reject with tcp reset")
    target.sh(["nft", "add", "chain", "ip", "t", "out", "{ type filter hook output priority 0; }"])
    target.sh(["nft", "add", "rule", "ip", "t", "out", "ct state != related drop"])
    _into_p0(target, IP(src="10.0.0.2", dst="10.0.0.1", id=7) / TCP(sport=1000, dport=22, flags="S"))
    (rst,) = target.collect_all()["p0"]
    assert IP(rst[14:])[TCP].flags == "RA"


RECORD_ROUTE = IPOption(b"\x07\x0b\x04" + bytes(8))


def test_a_reject_after_prerouting_finds_a_bad_sum_where_a_record_route_was_written():
    """ip_rcv_options() writes this host's address into a record route without
    fixing the header checksum; nf_ip_checksum() of a CHECKSUM_NONE packet sums from
    the network header, so in INPUT the sum fails: no port unreachable, no RST. In
    PREROUTING, before the write, both are sent."""
    for hook, rule in (("input", "reject"), ("input", "reject with tcp reset")):
        target = _router(hook, rule)
        _into_p0(target, IP(src="10.0.0.2", dst="10.0.0.1", id=7, options=[RECORD_ROUTE]) / TCP(sport=1000, dport=22,
                                                                                                flags="S"))
        assert _answers(target) == []
    target = _router("prerouting", "reject with tcp reset")
    _into_p0(target, IP(src="10.0.0.2", dst="10.0.0.1", id=7, options=[RECORD_ROUTE]) / TCP(sport=1000, dport=22,
                                                                                            flags="S"))
    assert len(_answers(target)) == 1


def test_a_forward_reject_trusts_the_sum_conntrack_kept_but_not_for_a_reset():
    """Conntrack summed the datagram at PREROUTING (csum_valid): nf_send_unreach()'s
    skb_csum_unnecessary() sends the error in FORWARD; nf_send_reset() has no such
    shortcut, and ip_forward()'s skb_forward_csum() dropped CHECKSUM_COMPLETE: its
    nf_ip_checksum() sums the stale header and sends nothing."""
    target = _router("forward", "ct state new reject")
    _into_p0(target, IP(src="10.0.0.2", dst="10.0.2.2", id=7, options=[RECORD_ROUTE]) / UDP(sport=1000, dport=9))
    ((summary, _),) = _answers(target)
    assert summary.startswith("icmp_send type 3 code 3")
    target = _router("forward", "ct state new reject with tcp reset")
    _into_p0(target, IP(src="10.0.0.2", dst="10.0.2.2", id=7, options=[RECORD_ROUTE]) / TCP(sport=1000, dport=22,
                                                                                            flags="S"))
    assert _answers(target) == []
