"""Connection tracking of IPv6 packets on the mock (netfilter/nf_conntrack_core.py
ipv6_conntrack_in, icmpv6_error; net/netfilter/nf_conntrack_proto_icmpv6.c), run
at the hooks on crafted packets, with the ctinfo each must get written out by
hand from the kernel's tables (invmap[], valid_new[], noct_valid_new[])."""
from __future__ import annotations

import pytest
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6ND_RA, ICMPv6NIQueryNOOP, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop)

from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter.core import (NF_ACCEPT, NF_INET_LOCAL_IN, NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING,
                                               NFPROTO_IPV4, NFPROTO_IPV6, NfHookState)
from harness.mockkernel.netfilter.nf_conntrack import (IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY, IP_CT_NEW,
                                                       IP_CT_RELATED_REPLY, IP_CT_UNTRACKED, UNTRACKED)
from harness.mockkernel.netfilter.nf_conntrack_core import ipv6_conntrack_in, nf_ct_netns_get
from harness.mockkernel.netfilter.nf_tables import counters
from harness.mockkernel.target import sh
from harness.target import CommandError

A, B = "2001:db8::2", "2001:db8:1::2"


def _kernel() -> Kernel:
    k = Kernel()
    nf_ct_netns_get(k, NFPROTO_IPV6)
    return k


def _through(k: Kernel, pkt) -> tuple:
    """The packet through PREROUTING and INPUT's conntrack entries: (nfct, ctinfo)."""
    skb = alloc_skb(bytes(pkt))
    skb.net, skb.dev, skb.protocol = k, k.dev_by_name("p0"), 0x86DD
    skb.network_header = skb.data
    k.tracer.start(skb, pkt.summary())
    for hook in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN):
        state = NfHookState(hook, NFPROTO_IPV6, skb.dev, None, k)
        for entry in k.nf_hooks.entries[(NFPROTO_IPV6, hook)]:
            assert entry.fn(skb, state) == NF_ACCEPT
    return skb.nfct, skb.ctinfo


def test_an_echo_request_is_new_its_reply_established_reply_then_the_next_request_established():
    k = _kernel()
    request, first_info = _through(k, IPv6(src=A, dst=B) / ICMPv6EchoRequest(id=7, seq=1))
    reply, reply_info = _through(k, IPv6(src=B, dst=A) / ICMPv6EchoReply(id=7, seq=1))
    again, again_info = _through(k, IPv6(src=A, dst=B) / ICMPv6EchoRequest(id=7, seq=2))
    assert (first_info, reply_info, again_info) == (IP_CT_NEW, IP_CT_ESTABLISHED_REPLY, IP_CT_ESTABLISHED)
    assert request is reply is again
    assert k.sysctl.values["net.netfilter.nf_conntrack_count"] == 1


@pytest.mark.parametrize("message", [ICMPv6ND_NS(tgt=B), ICMPv6ND_NA(tgt=B), ICMPv6ND_RA()],
                         ids=["neighbour solicitation", "neighbour advertisement", "router advertisement"])
def test_neighbour_discovery_is_untracked(message):
    k = _kernel()
    assert _through(k, IPv6(src=A, dst=B, hlim=255) / message) == (UNTRACKED, IP_CT_UNTRACKED)
    assert k.sysctl.values["net.netfilter.nf_conntrack_count"] == 0


def test_an_echo_reply_alone_and_an_unknown_informational_type_start_nothing():
    """icmpv6_new(): only echo and node information requests start an entry."""
    k = _kernel()
    assert _through(k, IPv6(src=A, dst=B) / ICMPv6EchoReply(id=1))[0] is None
    assert _through(k, IPv6(src=A, dst=B) / ICMPv6EchoRequest(type=200))[0] is None
    assert _through(k, IPv6(src=A, dst=B) / ICMPv6NIQueryNOOP())[1] == IP_CT_NEW


def test_a_port_unreachable_quoting_a_tracked_datagram_is_related_reply():
    k = _kernel()
    sent = IPv6(src=A, dst=B) / UDP(sport=4000, dport=53) / b"q"
    entry, _ = _through(k, sent)
    error = IPv6(src=B, dst=A) / ICMPv6DestUnreach(code=4) / bytes(sent)
    assert _through(k, error) == (entry, IP_CT_RELATED_REPLY)
    stray = IPv6(src=B, dst=A) / ICMPv6DestUnreach(code=4) / bytes(IPv6(src=A, dst=B) / UDP(sport=9, dport=9))
    assert _through(k, stray)[0] is None


def test_udp_behind_a_hop_by_hop_header_is_tracked():
    k = _kernel()
    _, info = _through(k, IPv6(src=A, dst=B) / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2))
    assert info == IP_CT_NEW


def test_a_non_first_fragment_conntrack_meets_is_invalid():
    """Without nf_defrag_ipv6 before it (ipv6_get_l4proto(): no transport header)."""
    k = _kernel()
    skb = alloc_skb(bytes(IPv6(src=A, dst=B) / IPv6ExtHdrFragment(offset=10, nh=17) / (b"x" * 16)))
    skb.net, skb.dev, skb.network_header = k, k.dev_by_name("p0"), skb.data
    assert ipv6_conntrack_in(skb, NfHookState(NF_INET_PRE_ROUTING, NFPROTO_IPV6, skb.dev, None, k)) == NF_ACCEPT
    assert skb.nfct is None


def test_conntrack_l_lists_both_families_unless_told_one():
    """conntrack-tools 1.4.7 dumps AF_UNSPEC; -f or an address filter picks a family
    (seen on 6.18)."""
    k = _kernel()
    nf_ct_netns_get(k, NFPROTO_IPV4)
    _through(k, IPv6(src=A, dst=B) / UDP(sport=1, dport=2))
    sh(k, ["conntrack", "-I", "-p", "udp", "-s", "10.0.0.2", "-d", "10.0.1.2", "--sport", "5", "--dport", "53",
           "-t", "30"])
    v6 = f"udp      17 30 src={A} dst={B} sport=1 dport=2 [UNREPLIED] src={B} dst={A} sport=2 dport=1 mark=0 use=1\n"
    v4 = ("udp      17 30 src=10.0.0.2 dst=10.0.1.2 sport=5 dport=53 [UNREPLIED] src=10.0.1.2 dst=10.0.0.2 "
          "sport=53 dport=5 mark=0 use=1\n")
    assert sh(k, ["conntrack", "-L"]) == v6 + v4
    assert sh(k, ["conntrack", "-L", "-f", "ipv6"]) == sh(k, ["conntrack", "-L", "-s", A]) == v6
    assert sh(k, ["conntrack", "-L", "-f", "ipv4"]) == v4
    assert sh(k, ["conntrack", "-C"]) == "2\n"
    sh(k, ["conntrack", "-F", "-f", "ipv6"])
    assert sh(k, ["conntrack", "-L"]) == "", "-F ignores the family"


NAT66 = """table ip6 nat {
\tchain pre {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tudp dport 53 dnat to [2001:db8:1::53]:5353
\t\ticmpv6 type echo-request dnat to 2001:db8:1::7
\t}
\tchain post {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip6 saddr 2001:db8:1::/64 snat to 2001:db8::99
\t}
}
"""


def _hooked(k: Kernel, pkt, hooks) -> bytes:
    """The packet after the hooks' entries (conntrack, NAT), as it would leave."""
    skb = alloc_skb(bytes(pkt))
    skb.net, skb.dev, skb.protocol = k, k.dev_by_name("p0"), 0x86DD
    skb.network_header = skb.data
    k.tracer.start(skb, pkt.summary())
    for hook in hooks:
        state = NfHookState(hook, NFPROTO_IPV6, skb.dev, skb.dev, k)
        for entry in k.nf_hooks.entries[(NFPROTO_IPV6, hook)]:
            assert entry.fn(skb, state) == NF_ACCEPT
    return bytes(skb.buf[skb.network_header:skb.tail])


def _nat_kernel() -> Kernel:
    k = Kernel()
    sh(k, ["nft", "-f", "-"], NAT66)
    return k


def test_dnat66_rewrites_the_destination_and_port_with_a_valid_checksum_and_the_reply_is_un_natted():
    k = _nat_kernel()
    query = IPv6(src=A, dst="2001:db8::1") / UDP(sport=4000, dport=53) / b"query"
    out = _hooked(k, query, (NF_INET_PRE_ROUTING, NF_INET_POST_ROUTING))
    want = IPv6(src=A, dst="2001:db8:1::53") / UDP(sport=4000, dport=5353) / b"query"
    assert out == bytes(want)  # scapy computes the UDP checksum over the new pseudo-header
    answer = IPv6(src="2001:db8:1::53", dst=A) / UDP(sport=5353, dport=4000) / b"answer"
    back = _hooked(k, answer, (NF_INET_PRE_ROUTING, NF_INET_POST_ROUTING))
    assert back == bytes(IPv6(src="2001:db8::1", dst=A) / UDP(sport=53, dport=4000) / b"answer")


def test_snat66_and_an_echo_request_dnat_keep_the_icmpv6_checksum_right():
    k = _nat_kernel()
    out = _hooked(k, IPv6(src=A, dst="2001:db8::1") / ICMPv6EchoRequest(id=9, seq=1, data=b"ping"),
                  (NF_INET_PRE_ROUTING,))
    assert out == bytes(IPv6(src=A, dst="2001:db8:1::7") / ICMPv6EchoRequest(id=9, seq=1, data=b"ping"))
    leaving = IPv6(src="2001:db8:1::5", dst=B) / UDP(sport=7, dport=8) / b"x"
    out = _hooked(k, leaving, (NF_INET_PRE_ROUTING, NF_INET_POST_ROUTING))
    assert out == bytes(IPv6(src="2001:db8::99", dst=B) / UDP(sport=7, dport=8) / b"x")


def test_an_icmpv6_error_about_a_dnatted_datagram_is_translated_back_for_its_sender():
    """nf_nat_icmpv6_reply_translation(): the quoted datagram gets the address
    and port its sender used, the outer source the address it sent to."""
    k = _nat_kernel()
    query = IPv6(src=A, dst="2001:db8::1") / UDP(sport=4000, dport=53) / b"query"
    natted = _hooked(k, query, (NF_INET_PRE_ROUTING, NF_INET_POST_ROUTING))
    error = IPv6(src="2001:db8:1::53", dst=A) / ICMPv6DestUnreach(code=4) / natted
    out = _hooked(k, error, (NF_INET_PRE_ROUTING, NF_INET_POST_ROUTING))
    want = IPv6(src="2001:db8::1", dst=A) / ICMPv6DestUnreach(code=4) / bytes(query)
    assert out == bytes(want)


def test_a_tcp_handshake_over_ipv6_is_tracked_to_established_and_a_bad_checksum_is_invalid():
    k = _kernel()
    syn = IPv6(src=A, dst=B) / IPv6ExtHdrHopByHop() / TCP(sport=40000, dport=22, flags="S", seq=100)
    entry, info = _through(k, syn)
    assert (info, entry.proto_state) == (IP_CT_NEW, "SYN_SENT")
    _, info = _through(k, IPv6(src=B, dst=A) / TCP(sport=22, dport=40000, flags="SA", seq=500, ack=101))
    assert (info, entry.proto_state) == (IP_CT_ESTABLISHED_REPLY, "SYN_RECV")
    _, info = _through(k, IPv6(src=A, dst=B) / TCP(sport=40000, dport=22, flags="A", seq=101, ack=501))
    assert (info, entry.proto_state) == (IP_CT_ESTABLISHED, "ESTABLISHED")
    corrupt = IPv6(src=A, dst=B) / TCP(sport=40001, dport=22, flags="S", seq=1, chksum=0xBAD)
    assert _through(k, corrupt)[0] is None


@pytest.mark.parametrize("table, rule, error", [
    ("ip6", "ct original ip saddr 10.0.0.1", "conflicting protocols specified: ip6 vs. ip"),
    ("inet", "ct original saddr 2001:db8::2",
     'cannot determine ip protocol version, use "ip saddr" or "ip6 saddr" instead'),
], ids=["the other family in an ip6 table", "no family in an inet table"])
def test_a_ct_tuple_address_of_no_or_the_wrong_family_is_refused_naming_the_expression(table, rule, error):
    """nft 1.0.6 (evaluate.c expr_evaluate_ct()), seen on 6.18: the caret under the ct expression."""
    k = Kernel()
    sh(k, ["nft", f"add table {table} t"])
    sh(k, ["nft", f"add chain {table} t c {{ type filter hook forward priority 0 ; }}"])
    command = f"add rule {table} t c {rule} counter"
    with pytest.raises(CommandError) as info:
        sh(k, ["nft", command])
    expression = " ".join(rule.split()[:-1])
    start = command.index(expression)
    assert str(info.value).split("failed: ", 1)[1] == f"Error: {error}\n{command}\n{' ' * start}{'^' * len(expression)}"


def test_ct_original_ip6_saddr_matches_the_entry_and_an_ipv4_entry_breaks_the_rule():
    k = Kernel()
    sh(k, ["nft", "-f", "-"], """table inet t {
\tchain c {
\t\ttype filter hook prerouting priority 0; policy accept;
\t\tct original ip6 saddr 2001:db8::2 counter
\t\tct reply ip6 saddr 2001:db8:1::2 counter
\t\tct original ip saddr 10.0.0.2 counter
\t}
}
""")
    for pkt in (IPv6(src=A, dst=B) / UDP(sport=1, dport=2), IPv6(src=B, dst=A) / UDP(sport=2, dport=1)):
        _hooked(k, pkt, (NF_INET_PRE_ROUTING, NF_INET_POST_ROUTING))
    assert [c.packets for c in counters(k)] == [2, 2, 0]


def test_a_concatenation_of_ct_keys_alone_turns_conntrack_on():
    """nft_ct_get_init() takes nf_ct_netns_get() for every ct key, in a concatenation too."""
    k = Kernel()
    sh(k, ["nft", "-f", "-"], """table ip6 t {
\tchain c {
\t\ttype filter hook prerouting priority 0; policy accept;
\t\tct original ip6 saddr . ct original ip6 daddr { 2001:db8::2 . 2001:db8:1::2 } counter
\t}
}
""")
    _hooked(k, IPv6(src=A, dst=B) / UDP(sport=1, dport=2), (NF_INET_PRE_ROUTING,))
    assert [c.packets for c in counters(k)] == [1]


@pytest.mark.parametrize("statement, families", [
    ("dnat ip6 to 2001:db8:2::2", {NFPROTO_IPV6}), ("dnat ip to 10.0.2.2", {NFPROTO_IPV4}),
    ("masquerade", {NFPROTO_IPV4, NFPROTO_IPV6})])
def test_an_inet_nat_statement_takes_the_conntrack_of_its_nat_family_masquerade_its_tables(statement, families):
    """nft_nat_init(): nf_ct_netns_get(ctx->net, family) with the NAT family
    (NFTA_NAT_FAMILY), so an inet table's `dnat ip6 to` tracks no IPv4 packet;
    nft_masq_init(): ctx->family, inet's both (seed 5 of the differential runner)."""
    k = Kernel()
    hook = "postrouting" if statement == "masquerade" else "prerouting"
    sh(k, ["nft", "-f", "-"], f"table inet t {{\n\tchain c {{\n\t\ttype nat hook {hook} priority 0; policy accept;\n"
                              f"\t\tmeta l4proto udp {statement}\n\t}}\n}}\n")
    assert {pf for pf, users in k.conntrack.users.items() if users} == families
