"""NAT66 with maps, and the conntrack tuple's IPv6 addresses in rules
(`ct original|reply ip6 saddr|daddr`), on both targets: the ruleset lists as
nft 1.0.6 lists it, a published port goes to the host and port the map names,
the reply comes back from the address the client asked, and a forward chain
tells the connection's two tuples apart (nft_ct.c NFT_CT_SRC_IP6/DST_IP6).
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP

from harness.testing import counted_by_comment, drops

pytestmark = pytest.mark.requires("nftables", "conntrack")

PUBLISHED = """table inet nat {
\tmap published {
\t\ttype inet_service : ipv6_addr . inet_service
\t\telements = { 53 : 2001:db8:1::2 . 5353, 80 : 2001:db8:2::2 . 8080 }
\t}

\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tip6 daddr 2001:db8::1 dnat ip6 to udp dport map @published
\t\tip6 daddr 2001:db8::100 dnat ip6 to ip6 saddr map { 2001:db8::2 : 2001:db8:2::2, 2001:db8::3 : 2001:db8:1::2 }
\t}
}
table inet filter {
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t\tct original ip6 daddr 2001:db8::1 ct reply ip6 saddr 2001:db8:1::2 counter accept comment "published 53"
\t\tct original ip6 daddr 2001:db8::100 ct reply ip6 saddr { 2001:db8:1::2, 2001:db8:2::2 } counter accept """ \
    """comment "by source"
\t}
}
"""
# what nft 1.0.6 lists for it (seen on 6.18)
LISTING = PUBLISHED.replace("counter accept", "counter packets 0 bytes 0 accept")


def test_the_nat66_maps_and_ct_tuple_matches_list_as_nft_lists_them(target, router6):
    target.sh("nft -f -", stdin=PUBLISHED)
    assert target.sh("nft list ruleset") == LISTING


def test_a_port_map_publishes_a_port_on_an_inside_host_and_the_reply_comes_from_the_address_asked(target, router6):
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=PUBLISHED)
    target.send(h0.port, h0.to_dut6() / UDP(sport=4000, dport=53) / b"query")
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63) / UDP(sport=4000, dport=5353) / b"query")
    target.send(h1.port, h1.to_dut6(src=h1.ip6, dst=h0.ip6) / UDP(sport=5353, dport=4000) / b"answer")
    target.expect(h0.port, h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=63) / UDP(sport=53, dport=4000) / b"answer")
    target.expect_nothing()
    assert counted_by_comment(target) == {"published 53": 2, "by source": 0}
    assert drops(target) == []


def test_an_address_map_picks_the_inside_host_by_the_client_address(target, router6):
    """2001:db8::2 (h0) goes to h2; a source the map lacks (h1's) breaks the rule:
    not NATed, the forward chain's policy drops it (no tuple matches)."""
    h0, h1, h2 = router6
    target.sh("nft -f -", stdin=PUBLISHED)
    target.send(h0.port, h0.to_dut6(dst="2001:db8::100") / UDP(sport=4001, dport=9) / b"by source")
    target.expect(h2.port, h2.from_dut6(src=h0.ip6, dst=h2.ip6, hlim=63) / UDP(sport=4001, dport=9) / b"by source")
    target.send(h2.port, h2.to_dut6(src=h2.ip6, dst=h0.ip6) / UDP(sport=9, dport=4001) / b"back")
    target.expect(h0.port, h0.from_dut6(src="2001:db8::100", dst=h0.ip6, hlim=63) / UDP(sport=9, dport=4001) / b"back")
    target.send(h1.port, h1.to_dut6(dst="2001:db8::100") / UDP(sport=4002, dport=9) / b"x")
    target.expect_nothing()
    assert counted_by_comment(target) == {"published 53": 0, "by source": 2}
    assert drops(target) == [("NETFILTER_DROP", "NF_FORWARD", "nft_do_chain")]


PREFIX_NAT = """table ip6 nat {
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "%s" snat prefix to ip6 saddr map { 2001:db8:1::/64 : 2001:db8:99::/64 }
\t}
}
"""


def test_prefix_snat_keeps_the_host_part_and_the_reply_comes_back(target, router6):
    """NPTv6-like prefix translation (nft_nat_setup_netmap(), NF_NAT_RANGE_NETMAP):
    2001:db8:1::2 leaves as 2001:db8:99::2; nft lists the map's family."""
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=PREFIX_NAT % h0.port.name)
    assert "snat ip6 prefix to ip6 saddr map { 2001:db8:1::/64 : 2001:db8:99::/64 }" in target.sh("nft list ruleset")
    target.send(h1.port, h1.to_dut6(src=h1.ip6, dst=h0.ip6) / UDP(sport=4000, dport=53) / b"out")
    target.expect(h0.port, h0.from_dut6(src="2001:db8:99::2", dst=h0.ip6, hlim=63) / UDP(sport=4000, dport=53) / b"out")
    target.send(h0.port, h0.to_dut6(src=h0.ip6, dst="2001:db8:99::2") / UDP(sport=53, dport=4000) / b"back")
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63) / UDP(sport=53, dport=4000) / b"back")
    target.expect_nothing()
    assert drops(target) == []
