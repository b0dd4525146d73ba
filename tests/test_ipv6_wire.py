"""The IPv6 views (wire/ipv6.py, wire/icmpv6.py) and the extension header
walk (ipv6/exthdrs_core.py) on packets scapy builds: fields, checksums,
what check_len() refuses, and ipv6_skip_exthdr()/ipv6_find_hdr() results
written out by hand for each chain."""
from __future__ import annotations

import errno

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)

from harness.mockkernel.ipv6.exthdrs_core import IP6_FH_F_FRAG, ipv6_find_hdr, ipv6_skip_exthdr
from harness.mockkernel.netfilter.core import NF_INET_FORWARD, NFPROTO_INET, NFPROTO_IPV6, NfHooks
from harness.mockkernel.wire import Malformed, Truncated, icmpv6, ipv6

SRC, DST = "2001:db8:1::2", "2001:db8:2::2"


def test_header_fields_and_the_icmpv6_checksum_over_the_pseudo_header():
    pkt = bytearray(bytes(IPv6(src=SRC, dst=DST, hlim=7, tc=0xB8, fl=0x12345) / ICMPv6EchoRequest(id=9, seq=3)))
    hdr = ipv6.Ipv6Packet(pkt).check_len()
    assert (hdr.version, hdr.tclass, hdr.flowlabel, hdr.hop_limit, hdr.nexthdr, hdr.payload_len) == \
        (6, 0xB8, 0x12345, 7, ipv6.NEXTHDR_ICMP, 8)
    assert (ipv6.addr_str(hdr.saddr), ipv6.addr_str(hdr.daddr)) == (SRC, DST)
    msg = icmpv6.Icmpv6Message(pkt, 40)
    assert (msg.type, msg.echo_id, msg.sequence) == (icmpv6.ICMPV6_ECHO_REQUEST, 9, 3)
    pseudo = ipv6.pseudo_header_sum(pkt, 0, ipv6.NEXTHDR_ICMP, 8)
    assert icmpv6.checksum_ok(pkt, 40, 48, pseudo)
    rebuilt = bytearray(pkt)
    icmpv6.fill_checksum(rebuilt, 40, 48, pseudo)
    assert rebuilt == pkt
    assert ipv6.build_header(hdr.saddr, hdr.daddr, ipv6.NEXTHDR_ICMP, 8, 7, 0xB8, 0x12345) == pkt[:40]


def test_check_len_refuses_a_short_header_another_version_and_a_payload_len_past_the_end():
    pkt = bytes(IPv6(src=SRC, dst=DST) / UDP(sport=1, dport=2))
    with pytest.raises(Truncated):
        ipv6.check_len(bytearray(pkt[:39]), 0, 39)
    with pytest.raises(Malformed) as version:
        ipv6.check_len(bytearray(b"\x40" + pkt[1:]), 0, len(pkt))
    assert version.value.field == "version"
    with pytest.raises(Truncated) as payload_len:
        ipv6.check_len(bytearray(pkt[:-1]), 0, len(pkt) - 1)
    assert payload_len.value.field == "payload_len"


@pytest.mark.parametrize("address, kind", [
    ("::", ipv6.IPV6_ADDR_ANY), ("::1", ipv6.IPV6_ADDR_UNICAST | ipv6.IPV6_ADDR_LOOPBACK),
    ("ff02::1", ipv6.IPV6_ADDR_MULTICAST), ("fe80::1", ipv6.IPV6_ADDR_UNICAST | ipv6.IPV6_ADDR_LINKLOCAL),
    ("::ffff:10.0.0.1", ipv6.IPV6_ADDR_MAPPED), ("2001:db8::1", ipv6.IPV6_ADDR_UNICAST)])
def test_address_types(address, kind):
    assert ipv6.ipv6_addr_type(ipv6.addr_bytes(address)) == kind


def test_skip_and_find_walk_hop_by_hop_routing_destination_options_to_the_upper_layer():
    pkt = bytearray(bytes(IPv6(src=SRC, dst=DST) / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=[SRC])
                          / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=2)))
    # hop-by-hop 8 bytes at 40, routing 24 at 48, destination options 8 at 72, UDP at 80
    assert ipv6_skip_exthdr(pkt, 40, pkt[6], len(pkt)) == (80, ipv6.NEXTHDR_UDP, 0)
    assert ipv6_find_hdr(pkt, 0, len(pkt), -1)[:3] == (ipv6.NEXTHDR_UDP, 80, 0)
    assert ipv6_find_hdr(pkt, 0, len(pkt), ipv6.NEXTHDR_ROUTING)[:2] == (ipv6.NEXTHDR_ROUTING, 48)
    assert ipv6_find_hdr(pkt, 0, len(pkt), ipv6.NEXTHDR_FRAGMENT)[0] == -errno.ENOENT
    assert ipv6_find_hdr(pkt, 0, 60, -1)[0] == -errno.EBADMSG


def test_a_non_first_fragment_stops_the_walk_at_its_fragment_header():
    pkt = bytearray(bytes(IPv6(src=SRC, dst=DST) / IPv6ExtHdrFragment(offset=10, m=1, nh=17) / (b"x" * 16)))
    assert ipv6_skip_exthdr(pkt, 40, pkt[6], len(pkt)) == (40, ipv6.NEXTHDR_FRAGMENT, 10 << 3 | 1)
    assert ipv6_find_hdr(pkt, 0, len(pkt), -1) == (ipv6.NEXTHDR_UDP, 0, 80, IP6_FH_F_FRAG)
    assert ipv6_find_hdr(pkt, 0, len(pkt), ipv6.NEXTHDR_UDP)[0] == -errno.ENOENT


def test_inet_hooks_register_for_ipv6_and_the_ipv6_list_holds_the_hook_functions():
    hooks = NfHooks()

    def fn(skb, state):
        return 1
    entry = hooks.register(NFPROTO_INET, NF_INET_FORWARD, 0, "inet filter forward", fn)
    assert hooks.ipv6[NF_INET_FORWARD] == (fn,) and hooks.ipv4[NF_INET_FORWARD] == (fn,)
    hooks.unregister(entry)
    hooks.register(NFPROTO_IPV6, NF_INET_FORWARD, 0, "ip6 filter forward", fn)
    assert hooks.ipv6[NF_INET_FORWARD] == (fn,) and hooks.ipv4[NF_INET_FORWARD] == ()
