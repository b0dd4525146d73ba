"""nftables for IPv6 on the mock (netfilter/nft_parser.py, nft_exprs.py,
nft_exthdr.py, nft_json.py; ipv6/exthdrs_core.py): `ip6` and dual-stack `inet`
rules with IPv6 header fields, icmpv6, extension headers, fib, reject and NAT66
listed and refused as nft 1.0.6 does (answers recorded in tests/golden/nft/ by
tests/golden/record_nft), and the extension header walk and loads run on
crafted packets with expected values written out by hand."""
from __future__ import annotations

import re

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting

from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter.core import NF_INET_LOCAL_IN, NF_INET_PRE_ROUTING, NFPROTO_IPV4, NFPROTO_IPV6, \
    NfHookState
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, Fib, NftPktinfo
from harness.mockkernel.netfilter.nft_exthdr import Exthdr6
from harness.mockkernel.target import sh
from test_nft import _without_json_handles, real_tools  # noqa: F401  (a fixture, used by name)

CHAIN = "table %s t {\n\tchain c {\n\t\ttype filter hook input priority filter; policy accept;\n\t\t%s\n\t}\n}\n"

# every IPv6 expression family nft 1.0.6 takes, in an ip6 and an inet table
RULES = [
    "ip6 saddr fe80::/10 accept", "ip6 daddr ::1 drop", "ip6 saddr { 2001:db8::1, 2001:db8::/64 } accept",
    "ip6 nexthdr { tcp, udp, ipv6-icmp } accept", "ip6 hoplimit < 64 drop", "ip6 flowlabel 1234 drop",
    "ip6 dscp cs1 drop", "ip6 dscp { af11, ef } drop", "ip6 ecn ce drop", "ip6 version 6 drop", "ip6 length 100 drop",
    "ip6 saddr 2001:db8::1 tcp dport 22 accept", "ip6 nexthdr tcp tcp dport 22", "ip6 nexthdr 58 icmpv6 type 1",
    "icmpv6 type echo-request accept",
    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept",
    "icmpv6 type destination-unreachable icmpv6 code port-unreachable accept", "icmpv6 code no-route drop",
    "icmpv6 mtu 1280 drop", "icmpv6 id 5 drop", "icmpv6 sequence 5 drop", "icmpv6 id 5 icmpv6 sequence 6",
    "icmpv6 type echo-reply icmpv6 sequence 5", "icmpv6 code 0 icmpv6 id 5", "icmpv6 param-problem 5 drop",
    "icmpv6 max-delay 5 drop", "icmpv6 checksum 5 drop", "meta l4proto ipv6-icmp accept",
    "meta l4proto ipv6-icmp icmpv6 type echo-request accept", "ip6 nexthdr ipv6-icmp icmpv6 type echo-request accept",
    "reject with icmpv6 type admin-prohibited", "reject with icmpv6 type port-unreachable",
    "reject with icmpv6 no-route", "reject with tcp reset", "tcp dport 22 reject with tcp reset", "reject",
    "ip6 saddr ::1 reject", "icmpv6 type 1 reject",
    "exthdr hbh exists drop", "exthdr rt exists drop", "exthdr frag exists drop", "exthdr dst exists drop",
    "exthdr mh exists drop", "exthdr hbh missing drop", "hbh nexthdr tcp drop", "hbh hdrlength 1 drop",
    "frag more-fragments 1 drop", "frag frag-off 10 drop", "frag id 5 drop", "frag nexthdr udp drop",
    "frag reserved 1 drop", "frag reserved2 1 drop", "frag frag-off 10 frag more-fragments 0", "rt type 0 drop",
    "rt seg-left > 0 drop", "rt nexthdr tcp drop", "rt hdrlength 2 drop", "rt0 addr[1] ::1 drop", "rt0 addr[2] ::2",
    "srh last-entry 0 drop", "srh flags 0 drop", "srh tag 0 drop", "srh sid[1] ::1 drop", "dst nexthdr tcp drop",
    "dst hdrlength 2 drop", "mh type 0 drop", "mh type binding-update drop", "mh nexthdr 59 drop",
    "mh hdrlength 1 drop", "mh checksum 1 drop", "mh reserved 1 drop",
    "fib saddr . iif oif missing drop", "fib saddr . iif oif exists accept", "fib daddr type local accept",
    "fib daddr . iif type local accept", "fib daddr type { local, unicast } accept", "fib saddr oif 0 drop",
    'fib daddr oifname "lo" drop', "fib saddr . mark oif missing drop", "fib saddr . mark . iif oif missing drop",
    "ct state established,related accept",
]
# only an inet table has both protocols: icmpx, and the family-specific rejects in full
INET_RULES = [
    "reject with icmpx type no-route", "reject with icmpx type port-unreachable",
    "reject with icmp type port-unreachable",
    "ip6 saddr ::1 reject with icmpx type port-unreachable", "ip saddr 1.1.1.1 reject", "meta nfproto ipv6 reject",
    "meta nfproto ipv4 counter reject", "exthdr hbh exists reject", "meta l4proto tcp reject with tcp reset",
    "ip protocol tcp tcp dport 22", "meta nfproto ipv6 icmpv6 type 1", "ip saddr 1.1.1.1 icmpv6 type 1",
    "ip6 saddr ::1 icmp type 1", "icmp type echo-request icmp id 5", "icmp id 3",
]


@pytest.mark.parametrize("family, rule", [("ip6", r) for r in RULES] + [("inet", r) for r in RULES + INET_RULES])
def test_an_ipv6_rule_lists_back_as_real_nft_lists_it(family, rule, real_tools):
    steps = [(["nft", "-f", "-"], CHAIN % (family, rule)), (["nft", "-a", "list", "ruleset"], None),
             (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


NAT66 = """table ip6 n {
\tchain pre {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\ttcp dport 80 dnat to 2001:db8::1
\t\ttcp dport 81 dnat to [2001:db8::1]:8080
\t\ttcp dport 82 dnat ip6 to [2001:db8::1]:8080
\t\ttcp dport 83 dnat to 2001:db8::1-2001:db8::5
\t\ttcp dport 84 dnat to [2001:db8::1]-[2001:db8::5]:80-90
\t\ttcp dport 85 redirect to :22
\t}
\tchain post {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "p0" masquerade
\t\tsnat ip6 to 2001:db8::9 persistent
\t\tmeta l4proto tcp masquerade to :1000-2000 random
\t}
}
table inet m {
\tchain pre {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\ttcp dport 80 dnat ip6 to 2001:db8::1
\t\tip6 daddr ::1 tcp dport 2 dnat to [::2]:3
\t\tip daddr 10.0.0.1 dnat to 10.0.0.2
\t}
\tchain post {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta nfproto ipv6 masquerade
\t\tsnat ip6 to 2001:db8::9
\t}
}
"""


def test_nat66_lists_back_as_real_nft_lists_it(real_tools):
    steps = [(["nft", "-f", "-"], NAT66), (["nft", "-a", "list", "ruleset"], None),
             (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


SETUP = "".join(f"table {family} t {{\n\tchain c {{ type filter hook input priority 0; }}\n"
                f"\tchain n {{ type nat hook prerouting priority 0; }}\n}}\n" for family in ("ip", "ip6", "inet"))
# what nft 1.0.6 refuses of IPv6 rules, each in the family it is refused in
REFUSED = [
    ("ip", "c", "ip6 saddr ::1"), ("ip", "c", "reject with icmpv6 type no-route"), ("ip", "c", "exthdr hbh exists"),
    ("ip", "c", "frag frag-off 10 frag more-fragments 0"), ("ip", "c", "rt2 addr ::1"), ("ip", "c", "srh sid[3] ::3"),
    ("ip", "c", "reject with icmpx type port-unreachable"), ("ip6", "c", "ip saddr 1.1.1.1"),
    ("ip6", "c", "reject with icmp type host-unreachable"), ("ip6", "c", "reject with icmpx type no-route"),
    ("ip6", "c", "ip6 saddr ::1 reject with icmpx type no-route"), ("ip6", "c", "meta nfproto ipv6"),
    ("inet", "c", "icmpv6 type 1 icmp type 2"), ("inet", "c", "icmp type 2 icmpv6 type 1"),
    ("inet", "c", "ip6 saddr ::1 ip saddr 1.1.1.1"), ("inet", "c", "ip saddr 1.1.1.1 reject with icmpv6 type no-route"),
    ("inet", "c", "ip6 saddr ::1 reject with icmp type port-unreachable"),
    ("inet", "c", "ip saddr 1.1.1.1 exthdr hbh exists"),
    ("inet", "c", "icmpv6 type 1 icmpv6 id 5"), ("inet", "c", "icmp type 3 icmp sequence 5"),
    ("inet", "c", "fib saddr . daddr oif"), ("inet", "c", "fib mark oif"), ("inet", "c", "fib saddr . iif . oif oif"),
    ("inet", "c", "rt2 addr ::1"), ("inet", "c", "exthdr rt0 exists"), ("inet", "c", "srh sid[3] ::3"),
    ("inet", "c", "srh sid[0] ::3"), ("inet", "c", "srh sid ::3"), ("inet", "c", "hbh foo 1"),
    ("inet", "c", "srh foo 1"),
    ("inet", "c", "dst foo 1"), ("inet", "c", "rt0 foo"), ("inet", "c", "exthdr foo exists"), ("inet", "c", "mh foo 1"),
    ("inet", "c", "rt foo 1"), ("inet", "c", "frag 1"),
    ("inet", "c", "icmpv6 type foo"), ("inet", "c", "ip6 dscp foo"), ("inet", "c", "mh type foo"),
    ("inet", "c", "ip6 saddr 1.1.1.1"), ("ip6", "n", "dnat ip to 1.1.1.1"), ("ip6", "n", "dnat to 1.1.1.1"),
    ("ip", "n", "dnat ip6 to ::1"), ("ip", "n", "dnat to ::1"), ("inet", "n", "ip6 daddr ::1 dnat ip to 1.1.1.1"),
    ("inet", "n", "ip6 daddr ::1 tcp dport 1 dnat ip to 1.1.1.1:3"), ("inet", "n", "dnat ip6 to 1.1.1.1"),
    ("inet", "n", "dnat to ::1"), ("ip6", "n", "masquerade to :1000-2000"),
]


def test_ipv6_rules_real_nft_refuses_are_refused_with_its_message(real_tools):
    steps = [(["nft", "-f", "-"], SETUP)] + [(["nft", "add", "rule", family, "t", chain, *rule.split()], None)
                                            for family, chain, rule in REFUSED]
    real_tools.assert_same_as_real(steps + [(["nft", "list", "ruleset"], None)])


# ------------------------------------------------------------------ IPv6 packets in nf_tables, crafted

def _pktinfo(k: Kernel, pkt, pf: int = NFPROTO_IPV6) -> NftPktinfo:
    skb = alloc_skb(bytes(pkt))
    skb.net, skb.dev = k, k.dev_by_name("p0")
    skb.protocol = 0x86DD if pkt.haslayer(IPv6) else 0x0800
    skb.network_header = skb.data
    return NftPktinfo(skb, NfHookState(NF_INET_LOCAL_IN, pf, skb.dev, None, k))


@pytest.mark.parametrize("pkt, tprot, thoff, fragoff", [
    (IPv6() / IPv6ExtHdrHopByHop() / TCP(), 6, 48, 0),
    (IPv6() / IPv6ExtHdrFragment(offset=2, nh=17) / (b"x" * 8), 17, 0, 16),
    (IPv6(plen=200) / UDP(), None, -1, 0),  # a payload length past the packet: unspec
    (IPv6(version=4) / UDP(), None, -1, 0),
])
def test_nft_pktinfo_of_an_ipv6_packet_is_what_nft_set_pktinfo_ipv6_sets(pkt, tprot, thoff, fragoff):
    pkt = _pktinfo(Kernel(), pkt)
    from_network_header = pkt.thoff - pkt.nh if pkt.thoff >= 0 else -1
    assert (pkt.tprot, from_network_header, pkt.fragoff) == (tprot, thoff, fragoff)


FRAGMENTED = IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(offset=10, m=1, id=0x12345678, nh=17) / (b"x" * 8)
ROUTED = IPv6() / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8::1", "2001:db8::2"]) / TCP()


@pytest.mark.parametrize("pkt, header, field, slot, want", [
    (FRAGMENTED, "frag", "frag-off", 0, 10), (FRAGMENTED, "frag", "more-fragments", 0, 1),
    (FRAGMENTED, "frag", "id", 0, 0x12345678), (FRAGMENTED, "frag", "nexthdr", 0, 17),
    (FRAGMENTED, "hbh", "nexthdr", 0, 44), (FRAGMENTED, "frag", None, 0, 1), (FRAGMENTED, "rt", None, 0, 0),
    (FRAGMENTED, "rt", "seg-left", 0, None),  # no routing header: the rule breaks
    (ROUTED, "rt", "seg-left", 0, 1), (ROUTED, "rt", "type", 0, 0), (ROUTED, "rt", "hdrlength", 0, 4),
    (ROUTED, "rt0", "addr", 2, 0x20010DB8 << 96 | 2), (ROUTED, "srh", "sid", 1, 0x20010DB8 << 96 | 1),
    (ROUTED, "dst", None, 0, 0),
])
def test_an_extension_header_field_loads_what_nft_exthdr_ipv6_eval_loads(pkt, header, field, slot, want):
    k = Kernel()
    load = Exthdr6(header, field, slot).load(CompileCtx(k, "ip6", "ip6 t c", {}))
    assert load(_pktinfo(k, pkt)) == want


def test_fib_saddr_iif_oif_drops_an_ipv4_packet_with_no_route_back_through_its_input_port():
    """nft_fib4_eval(): the route to the source must leave through the port the
    packet came in on; 10.9.9.9 routes through p1 here, 10.0.0.2 through p0."""
    k = Kernel()
    for line in ("ip addr add 10.0.0.1/24 dev p0", "ip addr add 10.0.1.1/24 dev p1",
                 "ip route add 10.9.9.0/24 via 10.0.1.2"):
        sh(k, line.split())
    sh(k, ["nft", "-f", "-"], "table inet t {\n\tchain c {\n\t\ttype filter hook prerouting priority 0;\n"
                               "\t\tfib saddr . iif oif missing counter drop\n\t}\n}\n")
    verdicts = []
    for src in ("10.0.0.2", "10.9.9.9", "192.0.2.1"):
        pkt = _pktinfo(k, IP(src=src, dst="10.0.0.1") / UDP(), NFPROTO_IPV4)
        state = NfHookState(NF_INET_PRE_ROUTING, NFPROTO_IPV4, k.dev_by_name("p0"), None, k)
        pkt.state = state
        fib = k.nft.ruleset.tables[0].chains["c"].rules[0].stmts[0].lhs
        verdicts.append(fib.load(CompileCtx(k, "inet", "inet t c", {}))(pkt))
    assert verdicts == [1, 0, 0]  # 192.0.2.1: no route at all


IP6TABLES = [
    "-A INPUT -s 2001:db8::/64 -p tcp --dport 22 -j ACCEPT",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-A INPUT -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT",
    "-A INPUT -p icmpv6 -m icmp6 --icmpv6-type 135 -j ACCEPT",
    "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1/4 -j ACCEPT",
    "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type port-unreachable -j ACCEPT",
    "-A INPUT -p ipv6-icmp ! --icmpv6-type neighbour-advertisement -j ACCEPT",
    "-A INPUT -d ::1/128 -i lo -j ACCEPT",
    "-A INPUT -s fe80::1 -j DROP",
    "-A INPUT -p udp -j REJECT",
    "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
    "-A INPUT -j REJECT --reject-with icmp6-adm-prohibited",
    "-A INPUT -j REJECT --reject-with icmp6-no-route",
    "-A INPUT -j REJECT --reject-with addr-unreach",
    "-A INPUT -p icmp -j ACCEPT",
    "-t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination [2001:db8::1]:8080",
    "-t nat -A PREROUTING -p tcp --dport 81 -j DNAT --to-destination 2001:db8::1",
    "-t nat -A PREROUTING -p tcp --dport 82 -j DNAT --to-destination [2001:db8::1]-[2001:db8::5]:80-90",
    "-t nat -A PREROUTING -p tcp --dport 83 -j DNAT --to-destination [2001:db8::1-2001:db8::5]:80-90",
    "-t nat -A PREROUTING -p tcp --dport 84 -j DNAT --to-destination [2001:db8::1]:0",
    "-t nat -A POSTROUTING -o p0 -j MASQUERADE",
    "-t nat -A POSTROUTING -s 2001:db8::/64 -j SNAT --to-source 2001:db8::9",
    "-P FORWARD DROP",
    "-A INPUT -p icmpv6 --icmpv6-type destination-unreachable/4 -j ACCEPT",  # refused: a name has no code
    "-A INPUT -p icmpv6 --icmpv6-type nd-neighbor-solicit -j ACCEPT",  # nft's name, not ip6tables'
    "-A INPUT -j REJECT --reject-with icmp-port-unreachable",
    "-A INPUT -p icmp --icmp-type 8 -j ACCEPT",
    "-A INPUT -s 1.2.3.4 -j ACCEPT",
    "-A INPUT -s 2001:db8::/129 -j DROP",
    "-A NOPE -j ACCEPT",
    "-t foo -L",
    "-S",
    "-L -n -v --line-numbers",
    "-t nat -L -n",
]


def test_ip6tables_nft_makes_the_tables_real_ip6tables_nft_makes(real_tools):
    steps = [(["ip6tables", *c.split()], None) for c in IP6TABLES]
    steps += [(["nft", "-a", "list", "ruleset"], None), (["ip6tables-save"], None), (["iptables-save"], None),
              (["ip6tables-restore"], "*filter\n:INPUT DROP [0:0]\n:beta - [0:0]\n-A INPUT -s ::1 -j beta\nCOMMIT\n"),
              (["ip6tables-restore"], "*filter\n-A INPUT -j NOPE\nCOMMIT\n"), (["ip6tables-restore"], "*foo\n"),
              (["nft", "-a", "list", "ruleset"], None), (["ip6tables", "-S"], None)]
    real_tools.assert_same_as_real(steps, lambda argv, out: re.sub(r"^#.*\n", "", out, flags=re.M),
                                   ("nft", "ip6tables", "ip6tables-save"))


def test_fib_saddr_iif_oif_finds_an_ipv6_source_only_when_its_route_leaves_through_the_input_port():
    """nft_fib6_eval(): 2001:db8::/64 routes out of p0, 2001:db8:9::/64 out of p1,
    fe80::/64 out of p0 only (a link-local source is looked up strictly on
    the input port), nothing else routes."""
    k = Kernel()
    for line in ("sysctl -w net.ipv6.conf.all.disable_ipv6=0", "ip -6 route flush table main",
                 "ip -6 route add 2001:db8::/64 dev p0",
                 "ip -6 route add 2001:db8:9::/64 dev p1", "ip -6 route add fe80::/64 dev p0"):
        sh(k, line.split())
    fib = Fib(("saddr", "iif"), "oif", types.boolean, present=True)
    load = fib.load(CompileCtx(k, "inet", "inet t c", {}))
    seen = []
    for src, port in (("2001:db8::2", "p0"), ("2001:db8:9::2", "p0"), ("2001:db8:77::2", "p0"), ("fe80::2", "p0"),
                      ("fe80::2", "p1"), ("2001:db8:9::2", "p1")):
        pkt = _pktinfo(k, IPv6(src=src, dst="2001:db8::1") / UDP())
        pkt.state = NfHookState(NF_INET_PRE_ROUTING, NFPROTO_IPV6, k.dev_by_name(port), None, k)
        seen.append(load(pkt))
    assert seen == [1, 0, 0, 1, 0, 1]
