"""nft payload matches on the transport headers beyond TCP and UDP, on real frames.

A forward chain of counter rules, each carrying a comment naming it, one per
header field kind (nftables src/proto.c: sctp, dccp, ah, esp, comp, udplite,
igmp); frames of each protocol are forwarded through the DUT and the test
asserts which rules counted them. The kernel loads each field at its offset
from the transport header (net/netfilter/nft_payload.c), after nft's
`meta l4proto P` dependency, so a rule for one protocol never counts another's
frame even where the bytes at that offset would match; `sctp chunk` walks
the chunks (nft_exthdr.c) and finds one after another. Raw loads (`@th,67,4`)
read the bits given from the header given, the inner header after UDP's. SCTP, AH and ESP
frames are scapy's; DCCP, IPComp and UDP-Lite headers are built by hand here.
"""
from __future__ import annotations

import struct

import pytest
from scapy.layers.igmp import IGMP
from scapy.layers.inet import ICMP, TCP, UDP
from scapy.layers.inet6 import IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.ipsec import AH, ESP
from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkInit, SCTPChunkSACK
from scapy.packet import Raw

from harness.testing import icmp_socket_mask, matched_by

pytestmark = pytest.mark.requires("nftables")

HEADERS = """
table inet t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        sctp dport 5000 counter comment "sctp dport"
        sctp vtag 0x01020304 counter comment "sctp vtag"
        sctp chunk init exists counter comment "sctp init chunk"
        sctp chunk data stream 7 counter comment "sctp data stream 7"
        meta l4proto sctp sctp chunk data missing counter comment "sctp without data chunk"
        dccp type request counter comment "dccp request"
        dccp sport 6000 dccp dport 6001 counter comment "dccp ports"
        ah spi 0x100 counter comment "ah spi"
        ah nexthdr != udp counter comment "ah nexthdr not udp"
        esp spi 0x200 esp sequence 7 counter comment "esp spi and sequence"
        comp cpi 3 counter comment "comp cpi"
        udplite dport 7000 counter comment "udplite dport"
        udplite csumcov 8 counter comment "udplite csumcov 8"
        igmp type membership-report-v2 counter comment "igmp v2 report"
        igmp mrt 100 counter comment "igmp mrt 100"
        udp dport 5000 counter comment "udp dport"
        meta l4proto 33 @th,67,4 3 counter comment "raw dccp type ack"
        meta nfproto ipv4 @nh,72,8 108 counter comment "raw ip protocol 108"
        @ih,0,16 0xcafe counter comment "raw inner header"
    }
}
"""


def dccp_header(sport: int, dport: int, pkt_type: int) -> bytes:
    """struct dccp_hdr with 48-bit sequence numbers (dccph_x 1): type in bits 1-4 of byte 8."""
    return struct.pack("!HHBBHBBH", sport, dport, 4, 0, 0, (pkt_type << 1) | 1, 0, 0) + bytes(4)


def ipcomp_header(nexthdr: int, cpi: int) -> bytes:
    return struct.pack("!BBH", nexthdr, 0, cpi) + bytes(16)


def udplite_header(sport: int, dport: int, cscov: int) -> bytes:
    return struct.pack("!HHHH", sport, dport, cscov, 0x1234) + bytes(16)


def forwarded(target, src_host, dst_host, proto: int | None, l4) -> set[str]:
    """The rules that counted `l4` (over IPv4 protocol `proto`, or scapy's own)
    forwarded from src_host to dst_host."""
    fields = {"dst": dst_host.ip, "id": 7, "ttl": 64, **({"proto": proto} if proto is not None else {})}
    sent = src_host.to_dut(**fields) / l4

    def deliver():
        target.send(src_host.port, sent)
        target.expect(dst_host.port, dst_host.from_dut(**{**fields, "src": src_host.ip, "ttl": 63}) / l4)
    return matched_by(target, deliver)


def forwarded6(target, src_host, dst_host, l4) -> set[str]:
    fields = {"dst": dst_host.ip6, "hlim": 64}
    sent = src_host.to_dut6(**fields) / l4

    def deliver():
        target.send(src_host.port, sent)
        target.expect(dst_host.port, dst_host.from_dut6(**{**fields, "src": src_host.ip6, "hlim": 63}) / l4)
    return matched_by(target, deliver)


def test_transport_header_fields_match_their_own_protocol_only(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=HEADERS)
    seen = {
        "sctp init to 5000": forwarded(target, h0, h1, None, SCTP(sport=1, dport=5000, tag=0)
                                       / SCTPChunkInit(init_tag=1)),
        "sctp data, vtag": forwarded(target, h0, h1, None, SCTP(sport=1, dport=2, tag=0x01020304)
                                     / SCTPChunkData(data=b"x")),
        "sctp sack, data stream 7": forwarded(target, h0, h1, None, SCTP(sport=1, dport=2, tag=9)
                                              / SCTPChunkSACK(cumul_tsn_ack=1) / SCTPChunkData(stream_id=7, data=b"x")),
        "dccp request": forwarded(target, h0, h1, 33, Raw(dccp_header(6000, 6001, 0))),
        "dccp ack": forwarded(target, h0, h1, 33, Raw(dccp_header(6000, 6002, 3))),
        "ah over tcp": forwarded(target, h0, h1, None, AH(nh=6, spi=0x100, seq=1, icv=bytes(12))
                                 / Raw(bytes(20))),
        "ah over udp": forwarded(target, h0, h1, None, AH(nh=17, spi=0x101, seq=1, icv=bytes(12))
                                 / Raw(bytes(8))),
        "esp": forwarded(target, h0, h1, None, ESP(spi=0x200, seq=7, data=bytes(16))),
        "esp other sequence": forwarded(target, h0, h1, None, ESP(spi=0x200, seq=8, data=bytes(16))),
        "ipcomp": forwarded(target, h0, h1, 108, Raw(ipcomp_header(6, 3))),
        "udplite": forwarded(target, h0, h1, 136, Raw(udplite_header(1, 7000, 8))),
        "udp, not udplite": forwarded(target, h0, h1, None, UDP(sport=1, dport=7000) / Raw(bytes(16))),
        "udp, cafe inside": forwarded(target, h0, h1, None, UDP(sport=1, dport=2) / Raw(b"\xca\xfe" + bytes(14))),
        "igmp report": forwarded(target, h0, h1, None, IGMP(type=0x16, mrcode=0, gaddr="239.1.1.1")),
        "igmp query": forwarded(target, h0, h1, None, IGMP(type=0x11, mrcode=100, gaddr="0.0.0.0")),
    }
    assert seen == {
        "sctp init to 5000": {"sctp dport", "sctp init chunk", "sctp without data chunk"},
        "sctp data, vtag": {"sctp vtag"},
        "sctp sack, data stream 7": {"sctp data stream 7"},
        "dccp request": {"dccp request", "dccp ports"},
        "dccp ack": {"raw dccp type ack"},
        "ah over tcp": {"ah spi", "ah nexthdr not udp"},
        "ah over udp": set(),
        "esp": {"esp spi and sequence"},
        "esp other sequence": set(),
        "ipcomp": {"comp cpi", "raw ip protocol 108"},
        "udplite": {"udplite dport", "udplite csumcov 8"},
        "udp, not udplite": set(),
        "udp, cafe inside": {"raw inner header"},
        "igmp report": {"igmp v2 report"},
        "igmp query": {"igmp mrt 100"},
    }


def test_an_ipv6_sctp_header_is_found_past_extension_headers(target, router6):
    """nft_set_pktinfo_ipv6(): the transport header is where ipv6_find_hdr()
    finds it, after a hop-by-hop and a destination options header."""
    h0, h1 = router6[0], router6[1]
    target.sh("nft -f -", stdin=HEADERS)
    sctp = SCTP(sport=1, dport=5000, tag=0x01020304) / SCTPChunkData(data=b"x")
    past_headers = IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / sctp
    assert forwarded6(target, h0, h1, sctp) == {"sctp dport", "sctp vtag"}
    assert forwarded6(target, h0, h1, past_headers) == {"sctp dport", "sctp vtag"}


# ---------------------------------------------------------------- header rewrites

REWRITES = """
table ip t {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        tcp dport 7001 ip daddr set 10.0.2.2
        udp dport 7002 udp dport set 53
        udp dport 7003 ip ecn set ce
    }
}
table ip6 t6 {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        udp dport 7004 ip6 daddr set 2001:db8:2::2
        udp dport 7005 ip6 flowlabel set 12345 ip6 dscp set af42
    }
}
"""


def test_header_fields_set_in_prerouting_leave_with_their_checksums_updated(target, router):
    """nft_payload_set_eval(): `ip daddr set` before routing sends the packet to
    the new address, the IPv4 header checksum and TCP's (its pseudo-header
    holds the address) updated; `udp dport set` updates UDP's checksum; `ip ecn
    set` writes two bits and the header checksum. Scapy fills in the expected
    frames' checksums from their contents."""
    h0, h1, h2 = router[0], router[1], router[2]
    target.sh("nft -f -", stdin=REWRITES)
    tcp = TCP(sport=1000, dport=7001, flags="S", seq=1)
    target.send(h0.port, h0.to_dut(dst=h1.ip, ttl=64, id=1) / tcp)
    target.expect(h2.port, h2.from_dut(src=h0.ip, dst=h2.ip, ttl=63, id=1) / tcp)
    payload = Raw(b"rewrite")
    target.send(h0.port, h0.to_dut(dst=h1.ip, ttl=64, id=2) / UDP(sport=1000, dport=7002) / payload)
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, ttl=63, id=2) / UDP(sport=1000, dport=53) / payload)
    target.send(h0.port, h0.to_dut(dst=h1.ip, ttl=64, id=3, tos=0x20) / UDP(sport=1000, dport=7003) / payload)
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, ttl=63, id=3, tos=0x23)
                  / UDP(sport=1000, dport=7003) / payload)


def test_a_udp_port_set_on_a_datagram_without_checksum_gives_it_one_that_does_not_verify(target, router):
    """nft_payload_csum_inet() updates the checksum field whatever it holds: a
    datagram sent with checksum 0 (none, RFC 768) leaves with the incremental
    update of 0 for the port's change, ~(~0 + ~0x1b5a + 0x0035) folded: 0x1b25."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=REWRITES)
    payload = Raw(b"rewrite")
    target.send(h0.port, h0.to_dut(dst=h1.ip, ttl=64, id=4) / UDP(sport=1000, dport=7002, chksum=0) / payload)
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, ttl=63, id=4)
                  / UDP(sport=1000, dport=53, chksum=0x1B25) / payload)


def test_ipv6_header_fields_set_in_prerouting(target, router6):
    """`ip6 daddr set` updates UDP's checksum (the pseudo-header,
    NFT_PAYLOAD_L4CSUM_PSEUDOHDR); the flow label and DSCP have no checksum."""
    h0, h1, h2 = router6[0], router6[1], router6[2]
    target.sh("nft -f -", stdin=REWRITES)
    payload = Raw(b"rewrite")
    udp = UDP(sport=1000, dport=7004) / payload
    target.send(h0.port, h0.to_dut6(dst=h1.ip6, hlim=64) / udp)
    target.expect(h2.port, h2.from_dut6(src=h0.ip6, dst=h2.ip6, hlim=63) / udp)
    udp = UDP(sport=1000, dport=7005) / payload
    target.send(h0.port, h0.to_dut6(dst=h1.ip6, hlim=64, fl=7) / udp)
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63, fl=12345, tc=0x24 << 2) / udp)


TCP_FLAGS = """
define every_flag = fin | syn | rst | psh | ack | urg | ecn | cwr
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        tcp flags == syn | ack counter comment "exactly syn-ack"
        tcp flags & (fin | syn | rst | ack) == { syn, syn | ack } counter comment "handshake"
        tcp flags & $every_flag == $every_flag counter comment "all flags"
    }
}
"""


def test_tcp_flags_compared_whole_masked_or_in_a_set_of_flag_combinations(target, router):
    """`tcp flags == syn | ack` compares the whole byte (listed `== 0x12`); a mask
    keeps the bits named, a set holds combinations (`syn | ack`); a mask of
    every flag masks nothing (listed `tcp flags == 0xff`)."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=TCP_FLAGS)
    seen = {flags: forwarded(target, h0, h1, None, TCP(sport=1, dport=2, flags=flags))
            for flags in ("S", "SA", "SAP", "A", "FSRPAUEC")}
    assert seen == {"S": {"handshake"}, "SA": {"exactly syn-ack", "handshake"}, "SAP": {"handshake"}, "A": set(),
                    "FSRPAUEC": {"all flags"}}
    listing = target.sh("nft list chain ip t forward")
    assert "tcp flags == 0x12 counter" in listing
    assert "tcp flags == 0xff counter" in listing


def test_ether_fields_in_an_ip_table_match_received_frames_only(target, router):
    """payload.c payload_get_get_ll_hdr(): in an ip table nft puts `meta iiftype
    ether` before an ether field (left out of the listing); a forwarded frame's
    MAC header is still there in forward, a locally sent packet has none to read
    and no input device (nft_payload_eval() of NFT_PAYLOAD_LL_HEADER breaks)."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=f"""
table ip t {{
    chain forward {{
        type filter hook forward priority filter; policy accept;
        ether saddr {h0.mac} counter comment "from h0's mac"
        ether saddr {h1.mac} counter comment "from h1's mac"
    }}
    chain output {{
        type filter hook output priority filter; policy accept;
        ether saddr {h0.mac} counter comment "output from h0's mac"
        ether type ip counter comment "output ether type ip"
    }}
}}
""")
    assert f"ether saddr {h0.mac} counter" in target.sh("nft list chain ip t forward")
    assert forwarded(target, h0, h1, None, UDP(sport=1, dport=2)) == {"from h0's mac"}
    assert forwarded(target, h1, h0, None, UDP(sport=1, dport=2)) == {"from h1's mac"}

    request = h0.to_dut(ttl=64, id=9) / ICMP(type=8, id=7, seq=1) / Raw(b"ping")
    reply = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags=0) / ICMP(type=0, id=7, seq=1) / Raw(b"ping")

    def answered():
        target.send(h0.port, request)
        target.expect(h0.port, icmp_socket_mask(reply))
    assert matched_by(target, answered) == set()
