"""iptables extensions on real frames, as iptables-nft 1.8.9 puts them in the
kernel (native expressions or nft_compat xt matches and targets).

Each case adds rules with iptables, every counting rule named by a comment
(`-m comment --comment NAME`, no target: it counts and goes on), sends frames
through the DUT and asserts which rules counted them (iptables-save -c) or
what the frame that left looks like. The expectations are the kernel's
(net/netfilter/xt_*.c), written by hand.
"""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkInit, SCTPChunkSACK
from scapy.layers.inet6 import IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, PadN
from scapy.packet import Raw

from harness.packets import Mask
from harness.target import CommandError
from harness.testing import forward
from harness.testing import counted_by_iptables_comment as counts

pytestmark = pytest.mark.requires("nftables")




def add(target, *rules: str) -> None:
    for rule in rules:
        target.sh(f"iptables {rule}")


def test_multiport_matches_each_listed_port_and_range_either_side_with_ports(target, router):
    """xt_multiport ports_match_v1(): --dports the destination port, a range
    counting inclusively; --ports either port; `!` what none of them match."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp -m multiport --dports 7,9:10 -m comment --comment dports",
        "-A FORWARD -p udp -m multiport ! --dports 7,9:10 -m comment --comment not-dports",
        "-A FORWARD -p udp -m multiport --ports 2000 -m comment --comment either")
    for sport, dport in ((1000, 7), (1000, 8), (1000, 10), (2000, 8), (1000, 2000)):
        forward(target, h0, h1, UDP(sport=sport, dport=dport))
    assert counts(target) == {"dports": 2, "not-dports": 3, "either": 2}


@pytest.mark.parametrize("burst, passed", [(3, 3), (0, 5)])
def test_limit_lets_the_burst_through_then_holds_to_the_rate(target, router, burst, passed):
    """iptables-nft makes -m limit nft's limit (nft_limit.c): a bucket of
    --limit-burst packets refilled at --limit, 1/hour refilling nothing
    within the test; a burst of 0 is nft_limit_init()'s default of 5."""
    h0, h1 = router[0], router[1]
    add(target, f"-A FORWARD -p udp -m limit --limit 1/hour --limit-burst {burst} -m comment --comment limited")
    for _ in range(7):
        forward(target, h0, h1, UDP(sport=1, dport=2))
    assert counts(target) == {"limited": passed}


def test_statistic_nth_matches_every_nth_packet_from_the_one_given(target, router):
    """xt_statistic statistic_mt() nth mode: --every 3 --packet 1 matches the
    2nd, 5th, 8th... packet; random mode with probability 1 and 0 always and never."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -m statistic --mode nth --every 3 --packet 1 -m comment --comment nth",
        "-A FORWARD -m statistic --mode nth --every 2 --packet 0 -m comment --comment odd",
        "-A FORWARD -m statistic --mode random --probability 1 -m comment --comment always",
        "-A FORWARD -m statistic --mode random --probability 0 -m comment --comment never")
    matched = []
    for number in range(1, 9):
        before = counts(target)
        forward(target, h0, h1, UDP(sport=1, dport=number))
        matched.append({name for name, packets in counts(target).items() if packets != before[name]})
    assert matched == [{"odd", "always"}, {"nth", "always"}, {"odd", "always"}, {"always"},
                       {"odd", "nth", "always"}, {"always"}, {"odd", "always"}, {"nth", "always"}]


def test_addrtype_sees_local_broadcast_and_unicast_destinations(target, router):
    """xt_addrtype: the destination's route type (inet_dev_addr_type()): the
    DUT's own address is LOCAL, a forwarded host's UNICAST."""
    h0, h1 = router[0], router[1]
    add(target, "-A INPUT -m addrtype --dst-type LOCAL -m comment --comment input-local",
        "-A FORWARD -m addrtype --dst-type UNICAST -m comment --comment forward-unicast",
        "-A FORWARD -m addrtype --dst-type LOCAL -m comment --comment forward-local",
        "-A FORWARD -m addrtype ! --src-type LOCAL -m comment --comment not-from-local")
    forward(target, h0, h1, UDP(sport=1, dport=2))
    target.send(h0.port, h0.to_dut(dst=h0.dut_ip) / UDP(sport=1, dport=9))
    assert counts(target) == {"input-local": 1, "forward-unicast": 1, "forward-local": 0, "not-from-local": 1}


def test_length_ttl_dscp_and_tos_read_the_ip_header(target, router):
    """xt_length: the IP total length; xt_hl ttl_mt(): the TTL seen in FORWARD
    (already decremented); xt_dscp dscp_mt() the DSCP bits, tos_mt()
    (TOS & mask) == value."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -m length --length 0:100 -m comment --comment short",
        "-A FORWARD -m ttl --ttl-eq 63 -m comment --comment ttl63",
        "-A FORWARD -m ttl --ttl-lt 10 -m comment --comment ttl-low",
        "-A FORWARD -m dscp --dscp 46 -m comment --comment ef",
        "-A FORWARD -m tos --tos 0xb8 -m comment --comment tos-b8",
        "-A FORWARD -m tos --tos 0x08/0x0c -m comment --comment tos-masked")
    forward(target, h0, h1, UDP(sport=1, dport=2), ttl=64, tos=0xB9)
    forward(target, h0, h1, UDP(sport=1, dport=2) / bytes(100), ttl=9, tos=0x07)
    assert counts(target) == {"short": 1, "ttl63": 1, "ttl-low": 1, "ef": 1, "tos-b8": 0, "tos-masked": 1}


@pytest.mark.requires("conntrack")
def test_conntrack_options_and_connmark_follow_the_connection(target, router):
    """CONNMARK --set-mark marks the connection on its first packet; the
    reply matches connmark, conntrack --ctdir REPLY and --ctorigdstport (the
    original direction's port) and --ctstatus SEEN_REPLY (set by the reply itself)."""
    h0, h1 = router[0], router[1]
    add(target, "-t mangle -A PREROUTING -m conntrack --ctstate NEW -j CONNMARK --set-mark 0x5",
        "-A FORWARD -m connmark --mark 0x5 -m comment --comment connmark",
        "-A FORWARD -m conntrack --ctdir REPLY -m comment --comment reply",
        "-A FORWARD -m conntrack --ctdir ORIGINAL --ctorigsrc 10.0.0.0/24 -m comment --comment original",
        "-A FORWARD -m conntrack --ctorigdstport 53 --ctproto udp -m comment --comment to-53",
        "-A FORWARD -m conntrack --ctstatus SEEN_REPLY -m comment --comment seen-reply")
    forward(target, h0, h1, UDP(sport=1000, dport=53))
    forward(target, h1, h0, UDP(sport=53, dport=1000))
    assert counts(target) == {"connmark": 2, "reply": 1, "original": 1, "to-53": 2, "seen-reply": 1}


def test_connmark_restore_copies_the_connection_mark_to_each_packet(target, router):
    """CONNMARK --save-mark / --restore-mark (connmark_tg_shift()): the mark
    MARK gives the first packet is saved in the connection and restored on
    the reply, which MARK never touched."""
    h0, h1 = router[0], router[1]
    add(target, "-t mangle -A PREROUTING -j CONNMARK --restore-mark",
        "-t mangle -A PREROUTING -p udp --dport 53 -j MARK --set-mark 0x7",
        "-t mangle -A PREROUTING -j CONNMARK --save-mark",
        "-A FORWARD -m mark --mark 0x7 -m comment --comment marked")
    forward(target, h0, h1, UDP(sport=1000, dport=53))
    forward(target, h1, h0, UDP(sport=53, dport=1000))
    assert counts(target) == {"marked": 2}


def test_dscp_tos_and_ttl_targets_rewrite_the_forwarded_header(target, router):
    """xt_DSCP dscp_tg() keeps the ECN bits; tos_tg() (tos & ~mask) ^ value;
    xt_HL ttl_tg() sets the TTL before forwarding decrements it; the header
    checksum follows (the frame expected carries the right one)."""
    h0, h1 = router[0], router[1]
    add(target, "-t mangle -A FORWARD -p udp --dport 1 -j DSCP --set-dscp 10",
        "-t mangle -A FORWARD -p udp --dport 2 -j TOS --or-tos 0x10",
        "-t mangle -A PREROUTING -p udp --dport 3 -j TTL --ttl-set 20")
    sent = h0.to_dut(dst=h1.ip, id=7, tos=0x03) / UDP(sport=9, dport=1)
    target.send(h0.port, sent)
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=7, tos=0x2B, ttl=63) / UDP(sport=9, dport=1))
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=8, tos=0x04) / UDP(sport=9, dport=2))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=8, tos=0x14, ttl=63) / UDP(sport=9, dport=2))
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=9) / UDP(sport=9, dport=3))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=9, ttl=19) / UDP(sport=9, dport=3))


def test_tcpmss_lowers_a_syn_mss_option_and_never_raises_it(target, router):
    """xt_TCPMSS tcpmss_mangle_packet(): a SYN's MSS above --set-mss is
    lowered to it (checksum patched), one below it is left; --clamp-mss-to-pmtu
    uses the path MTU less 40 (the egress device's 1400 here); a SYN without
    the option gets one, at most RFC 879's 536, the IP length grown by 4."""
    h0, h1, h2 = router[0], router[1], router[2]
    target.sh("ip link set p2 mtu 1400")
    add(target, "-t mangle -A FORWARD -o p1 -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1200",
        "-t mangle -A FORWARD -o p2 -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu")
    for dst, mss, want in ((h1, 1460, 1200), (h1, 1000, 1000), (h2, 1460, 1360), (h1, None, 536)):
        options = [("MSS", mss)] if mss else []
        syn = TCP(sport=1000, dport=80, flags="S", seq=1, options=options)
        target.send(h0.port, h0.to_dut(dst=dst.ip, id=5) / syn)
        left = TCP(sport=1000, dport=80, flags="S", seq=1, options=[("MSS", want)])
        target.expect(dst.port, dst.from_dut(src=h0.ip, dst=dst.ip, id=5, ttl=63) / left)


def test_nfqueue_without_a_reader_drops_unless_it_may_bypass(target, router):
    """xt_NFQUEUE: nf_queue() finds no program on the queue: the packet is
    dropped, or with --queue-bypass accepted and goes on."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp --dport 1 -j NFQUEUE --queue-num 3",
        "-A FORWARD -p udp --dport 2 -j NFQUEUE --queue-num 4 --queue-bypass")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=1) / UDP(sport=9, dport=1))
    target.expect_nothing()
    forward(target, h0, h1, UDP(sport=9, dport=2))


def test_recent_counts_the_times_an_address_was_seen(target, router):
    """xt_recent recent_mt(): --set records the source each time (and
    matches); --rcheck --hitcount 3 matches once the source was seen three
    times within --seconds; another source has no entry."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp --dport 22 -m recent --name ssh --set -m comment --comment seen",
        "-A FORWARD -p udp --dport 22 -m recent --name ssh --rcheck --seconds 60 --hitcount 3 "
        "-m comment --comment third",
        "-A FORWARD -p udp --dport 23 -m recent --name ssh --rcheck -m comment --comment known")
    for _ in range(4):
        forward(target, h0, h1, UDP(sport=1000, dport=22))
    forward(target, h0, h1, UDP(sport=1000, dport=23))
    forward(target, h0, h1, UDP(sport=1000, dport=23), src="10.0.0.3")
    assert counts(target) == {"seen": 4, "third": 2, "known": 1}


def test_hashlimit_keeps_a_bucket_per_source(target, router):
    """xt_hashlimit hashlimit_mt(): --hashlimit-mode srcip gives each source
    its own bucket of --hashlimit-burst packets."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 "
                "--hashlimit-mode srcip --hashlimit-name per-source -m comment --comment under")
    for src in ("10.0.0.2", "10.0.0.3"):
        for _ in range(3):
            forward(target, h0, h1, UDP(sport=1, dport=2), src=src)
    assert counts(target) == {"under": 4}


@pytest.mark.requires("conntrack")
def test_connlimit_counts_the_connections_of_a_source(target, router):
    """xt_connlimit with nf_conncount: a new connection is counted with those
    the source already holds; above 2 matches from the third one on, per source."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp -m conntrack --ctstate NEW -m connlimit --connlimit-above 2 "
                "-m comment --comment over")
    for sport in (1001, 1002, 1003, 1004):
        forward(target, h0, h1, UDP(sport=sport, dport=2))
    forward(target, h0, h1, UDP(sport=1001, dport=2), src="10.0.0.3")
    assert counts(target) == {"over": 2}


def forward6(target, src_host, dst_host, payload, hlim: int = 64) -> bytes:
    """Send `payload` (extension headers and all) from src_host to dst_host
    through the DUT; the frame that left, its hop limit decremented."""
    target.send(src_host.port, src_host.to_dut6(dst=dst_host.ip6, hlim=hlim, fl=0x12345) / payload)
    return target.expect(dst_host.port, dst_host.from_dut6(src=src_host.ip6, dst=dst_host.ip6, hlim=hlim - 1,
                                                           fl=0x12345) / payload)


@pytest.mark.ipv6
def test_ip6tables_matches_find_extension_headers_and_the_hop_limit(target, router6):
    """ip6t_frag frag_mt6() (first: offset 0, more: MF, the id in a range),
    ip6t_ipv6header ipv6header_mt6() (exactly the headers named, `protocol`
    an upper-layer one), ip6t_hbh hbh_mt6() (the header's length in bytes),
    xt_hl hl_mt6() (the hop limit FORWARD sees, already decremented)."""
    h0, h1 = router6[0], router6[1]
    rules = ("-m frag --fragfirst -m comment --comment first", "-m frag --fragmore -m comment --comment more",
             "-m frag --fragid 100:200 -m comment --comment id",
             "-m ipv6header --header ipv6-frag,protocol -m comment --comment frag-and-upper",
             "-m ipv6header --header protocol -m comment --comment upper-only",
             "-m hbh --hbh-len 8 -m comment --comment hbh8", "-m hl --hl-eq 63 -m comment --comment hl63")
    for rule in rules:
        target.sh(f"ip6tables -A FORWARD {rule}")
    forward6(target, h0, h1, UDP(sport=1, dport=2) / b"whole")
    forward6(target, h0, h1, IPv6ExtHdrFragment(id=150, m=1, offset=0, nh=17) / UDP(sport=1, dport=2) / bytes(8),
             hlim=10)
    forward6(target, h0, h1, IPv6ExtHdrFragment(id=150, m=0, offset=2, nh=17) / bytes(8), hlim=10)
    forward6(target, h0, h1, IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0\0\0\0")]) / UDP(sport=1, dport=2),
             hlim=10)
    assert counts(target, prog="ip6tables") == {"first": 1, "more": 1, "id": 2, "frag-and-upper": 2, "upper-only": 1,
                                                 "hbh8": 1, "hl63": 1}


def test_esp_ah_and_ipcomp_match_the_spi_within_the_range(target, router):
    """xt_esp esp_mt(), ipt_ah ah_mt(), xt_ipcomp comp_mt(): spi_match() of
    the header's SPI (IPComp: its 16-bit CPI) against MIN:MAX, `!` outside."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p esp -m esp --espspi 100:200 -m comment --comment esp-range",
        "-A FORWARD -p esp -m esp ! --espspi 150 -m comment --comment esp-not-150",
        "-A FORWARD -p ah -m ah --ahspi 7 -m comment --comment ah-7",
        "-A FORWARD -p ipcomp -m ipcomp --ipcompspi 0x1234 -m comment --comment cpi")
    for spi in (150, 300):
        forward(target, h0, h1, Raw(struct.pack("!II", spi, 1) + bytes(16)), proto=50)
    forward(target, h0, h1, Raw(struct.pack("!BBHII", 59, 4, 0, 7, 1) + bytes(12)), proto=51)
    forward(target, h0, h1, Raw(struct.pack("!BBH", 17, 0, 0x1234) + bytes(12)), proto=108)
    assert counts(target) == {"esp-range": 1, "esp-not-150": 1, "ah-7": 1, "cpi": 1}


def test_sctp_matches_ports_and_chunk_types_any_all_only(target, router):
    """xt_sctp match_packet(): ANY a listed chunk present, ALL every listed
    chunk present, ONLY no chunk but the listed ones; the ports in range."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p sctp -m sctp --chunk-types any INIT -m comment --comment any-init",
        "-A FORWARD -p sctp -m sctp --chunk-types only DATA -m comment --comment only-data",
        "-A FORWARD -p sctp -m sctp --chunk-types all DATA,SACK -m comment --comment all-data-sack",
        "-A FORWARD -p sctp -m sctp --sport 1:100 ! --dport 6000 -m comment --comment ports")
    for chunks in (SCTPChunkInit(), SCTPChunkData(data=b"x"), SCTPChunkData(data=b"x") / SCTPChunkSACK()):
        forward(target, h0, h1, SCTP(sport=42, dport=5000, tag=1) / chunks)
    assert counts(target) == {"any-init": 1, "only-data": 1, "all-data-sack": 1, "ports": 3}


def test_dccp_matches_the_packet_type_and_an_option(target, router):
    """xt_dccp dccp_mt(): the type's bit in --dccp-types; dccp_find_option()
    looks for the option between the type's fixed header and doff."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p dccp -m dccp --dport 2000 --dccp-types REQUEST -m comment --comment request",
        "-A FORWARD -p dccp -m dccp ! --dccp-types REQUEST,RESPONSE -m comment --comment not-request",
        "-A FORWARD -p dccp -m dccp --dccp-option 32 -m comment --comment option-32")
    # generic header with the 48-bit sequence number (X set): doff in words, the type in bits 1-4 of byte 8
    request = struct.pack("!HHBBHB3sI", 1000, 2000, 5, 0, 0, 0 << 1 | 1, bytes(3), 1) + struct.pack("!I", 0)
    data = struct.pack("!HHBBHB3sI", 1000, 2000, 5, 0, 0, 2 << 1 | 1, bytes(3), 2) + bytes((32, 3, 1, 0))
    for header in (request, data):
        forward(target, h0, h1, Raw(header), proto=33)
    assert counts(target) == {"request": 1, "not-request": 1, "option-32": 1}


@pytest.mark.requires("conntrack")
def test_dnat_with_a_base_port_shifts_the_port_from_it(target, router):
    """DNAT --to-destination ADDR:A-B/BASE (NF_NAT_RANGE_PROTO_OFFSET):
    nf_nat_l4proto_unique_tuple() tries A + (port - BASE) % (B - A + 1) first."""
    h0, h1 = router[0], router[1]
    add(target, f"-t nat -A PREROUTING -p udp --dport 5000:6000 -j DNAT --to-destination {h1.ip}:1000-2000/1000")
    for dport, shifted in ((5000, 1997), (5600, 1596)):
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=3) / UDP(sport=7, dport=dport))
        target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=3, ttl=63) / UDP(sport=7, dport=shifted))


def test_iprange_ecn_tcpmss_mac_and_quota_read_the_packet(target, router):
    """xt_iprange iprange_mt4() (inclusive ranges, `!` outside), xt_ecn
    ecn_mt4() (the IP ECN bits, TCP's CWR), xt_tcpmss tcpmss_mt() (a segment
    without the option matches only `!`), xt_mac mac_mt() (the sender's
    Ethernet source), xt_quota quota_mt() (bytes left cover the IP length:
    28-byte datagrams against 60 bytes match twice), xt_pkttype (unicast to a host)."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -m iprange --src-range 10.0.0.1-10.0.0.2 -m comment --comment src-range",
        "-A FORWARD -m iprange ! --dst-range 10.0.1.3-10.0.1.9 -m comment --comment not-dst-range",
        "-A FORWARD -p tcp -m ecn --ecn-tcp-cwr --ecn-ip-ect 2 -m comment --comment cwr-ect0",
        "-A FORWARD -p tcp -m tcpmss --mss 1000:1460 -m comment --comment mss",
        "-A FORWARD -p tcp -m tcpmss ! --mss 1000:1460 -m comment --comment not-mss",
        f"-A FORWARD -m mac --mac-source {h0.mac} -m comment --comment from-h0",
        "-A FORWARD -p udp -m quota --quota 60 -m comment --comment quota",
        "-A FORWARD -m pkttype --pkt-type unicast -m comment --comment unicast")
    for _ in range(3):
        forward(target, h0, h1, UDP(sport=1, dport=2))
    forward(target, h0, h1, TCP(sport=1, dport=2, flags="SC", options=[("MSS", 1200)]), tos=0x02)
    forward(target, h0, h1, TCP(sport=1, dport=2, flags="A"))
    assert counts(target) == {"src-range": 5, "not-dst-range": 5, "cwr-ect0": 1, "mss": 1, "not-mss": 1,
                              "from-h0": 5, "quota": 2, "unicast": 5}


@pytest.mark.requires("conntrack")
def test_connbytes_reads_the_connections_counters(target, router):
    """xt_connbytes connbytes_mt() over nf_conn_acct (turned on by the rule,
    nf_ct_set_acct()): the original direction's packets counted before the
    filter sees the packet, `!` outside FROM:TO, avgpkt the bytes per packet
    (28-byte datagrams)."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp -m connbytes --connbytes 0:1 --connbytes-mode packets --connbytes-dir original "
                "-m comment --comment first",
        "-A FORWARD -p udp -m connbytes ! --connbytes 0:2 --connbytes-mode packets --connbytes-dir both "
        "-m comment --comment past-two",
        "-A FORWARD -p udp -m connbytes --connbytes 28:28 --connbytes-mode avgpkt --connbytes-dir original "
        "-m comment --comment avg-28")
    for _ in range(3):
        forward(target, h0, h1, UDP(sport=1000, dport=53))
    forward(target, h1, h0, UDP(sport=53, dport=1000))
    assert counts(target) == {"first": 1, "past-two": 2, "avg-28": 4}


def test_tcpoptstrip_turns_the_listed_options_into_nops(target, router):
    """xt_TCPOPTSTRIP tcpoptstrip_mangle_packet(): the SACK-permitted and
    timestamp options become NOPs in place, the MSS stays; the checksum follows."""
    h0, h1 = router[0], router[1]
    add(target, "-t mangle -A FORWARD -p tcp -j TCPOPTSTRIP --strip-options sack-permitted,timestamp")
    syn = TCP(sport=1000, dport=80, flags="S", seq=1, options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0))])
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=4) / syn)
    left = TCP(sport=1000, dport=80, flags="S", seq=1, options=[("MSS", 1460)] + [("NOP", None)] * 12)
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=4, ttl=63) / left)


@pytest.mark.requires("conntrack")
def test_netmap_maps_the_destination_prefix_keeping_the_host_part(target, router):
    """xt_NETMAP netmap_tg4() in PREROUTING: the destination's network bits
    become --to's, the host bits stay (10.0.9.N to 10.0.1.N)."""
    h0, h1 = router[0], router[1]
    host = h1.ip.rsplit(".", 1)[1]
    prefix = h1.ip.rsplit(".", 1)[0] + ".0/24"
    add(target, f"-t nat -A PREROUTING -d 10.0.9.0/24 -j NETMAP --to {prefix}")
    target.send(h0.port, h0.to_dut(dst=f"10.0.9.{host}", id=6) / UDP(sport=5, dport=6))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=6, ttl=63) / UDP(sport=5, dport=6))


def test_string_finds_a_pattern_within_the_offsets(target, router):
    """xt_string string_mt(): skb_find_text() from the network header, the
    whole pattern within [--from, --to); --hex-string's bytes; --icase."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp -m string --string secret --algo bm -m comment --comment secret",
        "-A FORWARD -p udp -m string --hex-string |dead| --algo kmp --from 28 -m comment --comment dead",
        "-A FORWARD -p udp -m string --string SECRET --algo bm --icase --to 35 -m comment --comment early-icase")
    for payload in (b"xsecret", b"xxxxxsecret", b"\xde\xad", b"plain"):
        forward(target, h0, h1, UDP(sport=1, dport=2) / payload)
    assert counts(target) == {"secret": 2, "dead": 1, "early-icase": 1}


def test_hashlimit_in_bytes_refills_its_burst_count(target, router):
    """xt_hashlimit in byte mode (--hashlimit-upto 1kb/s): a full bucket of a
    second's credits, each packet costing its started 16-byte chunks;
    hashlimit_byte_cost() caps a packet's cost at the full bucket and refills
    an empty bucket while the burst (2kb: two 1024-byte quanta) lasts. Five
    1128-byte datagrams, each worth the whole bucket: the first, then one per
    refill (the time between them refills far less than a second's worth)."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp -m hashlimit --hashlimit-upto 1kb/s --hashlimit-burst 2kb "
                "--hashlimit-name bytes -m comment --comment under")
    for _ in range(5):
        forward(target, h0, h1, UDP(sport=1, dport=2) / bytes(1100))
    assert counts(target) == {"under": 3}


@pytest.mark.requires("conntrack")
def test_ct_zone_puts_the_connection_in_that_zone(target, router):
    """xt_CT with --zone: a template before conntrack, the entry made in zone
    5 (conntrack -L shows zone=5); TRACE marks the packet for nftrace and lets it on."""
    h0, h1 = router[0], router[1]
    add(target, "-t raw -A PREROUTING -p udp --dport 53 -j CT --zone 5 --ctevents new,destroy",
        "-t raw -A PREROUTING -p udp --dport 53 -j TRACE")
    forward(target, h0, h1, UDP(sport=1000, dport=53))
    entries = [line for line in target.sh(["conntrack", "-L"]).splitlines() if "dport=53" in line]
    assert len(entries) == 1 and "zone=5" in entries[0], entries


@pytest.mark.requires("conntrack")
def test_connlabel_sets_a_label_bit_the_reply_then_carries(target, router):
    """xt_connlabel connlabel_mt(): --set sets the bit in the connection (and
    matches); the reply, which the setting rule does not match, has it too."""
    h0, h1 = router[0], router[1]
    add(target, "-t mangle -A PREROUTING -p udp --dport 53 -m connlabel --label 3 --set",
        "-A FORWARD -m connlabel --label 3 -m comment --comment labelled",
        "-A FORWARD -m connlabel ! --label 4 -m comment --comment not-4")
    forward(target, h0, h1, UDP(sport=1000, dport=53))
    forward(target, h1, h0, UDP(sport=53, dport=1000))
    forward(target, h0, h1, UDP(sport=1001, dport=54))
    assert counts(target) == {"labelled": 2, "not-4": 3}


def test_ecn_target_clears_the_tcp_ecn_flags_and_sets_the_ip_codepoint(target, router):
    """ipt_ECN ecn_tg(): --ecn-tcp-remove clears ECE and CWR (set_ect_tcp()),
    --ecn-ip-ect 1 sets the IP ECN bits (set_ect_ip()), the checksums
    patched; IDLETIMER lets the packet go on untouched."""
    h0, h1 = router[0], router[1]
    add(target, "-t mangle -A FORWARD -p tcp --dport 80 -j ECN --ecn-tcp-remove",
        "-t mangle -A FORWARD -p udp -j ECN --ecn-ip-ect 1",
        "-A FORWARD -j IDLETIMER --timeout 60 --label pj")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=8) / TCP(sport=1000, dport=80, flags="SEC", seq=1))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=8, ttl=63) / TCP(sport=1000, dport=80, flags="S", seq=1))
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=9, tos=0x10) / UDP(sport=1, dport=2))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=9, ttl=63, tos=0x11) / UDP(sport=1, dport=2))


def test_time_matches_the_dates_and_days_around_now(target, router):
    """xt_time time_mt(): the clock now (2026 on both targets) within
    --datestart/--datestop, every weekday listed, a date range long past never."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -m time --datestart 2020-01-01 --datestop 2037-12-31 -m comment --comment now",
        "-A FORWARD -m time --datestop 2001-01-01T00:00:00 -m comment --comment past",
        "-A FORWARD -m time --weekdays Mon,Tue,Wed,Thu,Fri,Sat,Sun --timestart 00:00 --timestop 23:59:59 "
        "-m comment --comment every-day")
    forward(target, h0, h1, UDP(sport=1, dport=2))
    assert counts(target) == {"now": 1, "past": 0, "every-day": 1}


def test_policy_sees_no_ipsec_on_a_plain_packet(target, router):
    """xt_policy policy_mt(): a packet that came in without a secpath matches
    --pol none and not --pol ipsec."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -m policy --dir in --pol none -m comment --comment plain",
        "-A FORWARD -m policy --dir in --pol ipsec -m comment --comment ipsec",
        "-A FORWARD -m policy --dir out --pol ipsec --strict --proto esp -m comment --comment out-esp")
    forward(target, h0, h1, UDP(sport=1, dport=2))
    assert counts(target) == {"plain": 1, "ipsec": 0, "out-esp": 0}


@pytest.mark.requires("sockets")
def test_socket_matches_a_packet_for_a_bound_socket(target, router):
    """xt_socket socket_match(): a datagram to a port a DUT socket is bound to
    (on the DUT's address, not a wildcard) has a socket; one to another port
    none; --transparent wants IP_TRANSPARENT, which the socket lacks."""
    h0, h1 = router[0], router[1]
    target.socket("udp", (h0.dut_ip, 7000))
    add(target, "-t mangle -A INPUT -p udp -m socket -m comment --comment socket",
        "-t mangle -A INPUT -p udp -m socket --transparent -m comment --comment transparent")
    for dport in (7000, 7001):
        target.send(h0.port, h0.to_dut(dst=h0.dut_ip) / UDP(sport=1, dport=dport) / b"x")
    forward(target, h0, h1, UDP(sport=1, dport=2))  # after the two, in order on the same wire
    assert counts(target, "mangle") == {"socket": 1, "transparent": 0}


@pytest.mark.requires("sockets")
def test_cgroup_matches_a_local_sockets_packets(target, router):
    """xt_cgroup cgroup_mt_v2(): a packet from a DUT socket is in a cgroup
    below "/" (every one is) and of net_cls class 0; a forwarded packet has
    no socket and matches neither way."""
    h0, h1 = router[0], router[1]
    add(target, "-t mangle -A POSTROUTING -p udp -m cgroup --path / -m comment --comment below-root",
        "-t mangle -A POSTROUTING -p udp -m cgroup ! --cgroup 7 -m comment --comment not-class-7")
    sock = target.socket("udp", (h0.dut_ip, 7100))
    sock.sendto(b"x", (h0.ip, 9))
    sent = h0.from_dut(src=h0.dut_ip, dst=h0.ip) / UDP(sport=7100, dport=9) / b"x"
    target.expect(h0.port, Mask(sent).ignore(IP, "id", "the socket's IP ID").ignore(IP, "flags", "DF by PMTU discovery")
                  .ignore(IP, "chksum", "follows the ID and flags"))
    forward(target, h0, h1, UDP(sport=1, dport=2))
    assert counts(target, "mangle") == {"below-root": 1, "not-class-7": 1}


@pytest.mark.ipv6
@pytest.mark.requires("conntrack")
def test_ip6tables_netmap_maps_the_destination_prefix_keeping_the_host_part(target, router6):
    """ip6tables -j NETMAP (libip6t_NETMAP.c; xt_NETMAP.c netmap_tg6()): in
    PREROUTING the destination's bits under the --to mask become the
    prefix's, the rest of the address kept; then it is routed to the new one."""
    h0, h1 = router6[0], router6[1]
    target.sh("ip6tables -t nat -A PREROUTING -d 2001:db8:99::/64 -j NETMAP --to 2001:db8:1::/64")
    target.send(h0.port, h0.to_dut6(dst="2001:db8:99::2", fl=0) / UDP(sport=1, dport=2) / b"mapped")
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63, fl=0) / UDP(sport=1, dport=2) / b"mapped")


@pytest.mark.parametrize("table, spec, allowed, refused", [
    ("nat", "-p tcp -j DNAT --to-destination 192.0.2.1", "OUTPUT", "POSTROUTING"),
    ("nat", "-j MASQUERADE", "POSTROUTING", "PREROUTING"),
    ("mangle", "-p tcp -j TPROXY --on-port 1", "PREROUTING", "OUTPUT"),
    ("filter", "-m owner --uid-owner 0", "OUTPUT", "INPUT"),
    ("mangle", "-m rpfilter", "PREROUTING", "FORWARD"),
], ids=["DNAT", "MASQUERADE", "TPROXY", "owner", "rpfilter"])
def test_an_extension_in_a_user_chain_keeps_its_hooks_for_either_order_of_rules(target, table, spec, allowed,
                                                                               refused):
    """The extension's registered hooks (xt_target/xt_match `.hooks`) bind the chains
    a user chain holding it is reached from: nft_table_validate() runs
    nft_target_validate()/nft_match_validate() through the jumps, EINVAL, so the
    jump from a wrong hook fails, and so does the extension added behind one."""
    add(target, f"-t {table} -N u", f"-t {table} -A u {spec}", f"-t {table} -A {allowed} -j u")
    with pytest.raises(CommandError, match=rf"RULE_APPEND failed \(Invalid argument\): rule in chain {refused}$"):
        add(target, f"-t {table} -A {refused} -j u")
    add(target, f"-t {table} -N v", f"-t {table} -A {refused} -j v")
    with pytest.raises(CommandError, match=r"RULE_APPEND failed \(Invalid argument\): rule in chain v$"):
        add(target, f"-t {table} -A v {spec}")
    assert target.sh(f"iptables -t {table} -S v").splitlines() == ["-N v"]
    assert target.sh(f"iptables -t {table} -S {refused}").splitlines()[1:] == [f"-A {refused} -j v"]


def test_hashlimit_rules_naming_one_table_share_the_first_rules_settings(target, router):
    """xt_hashlimit hashlimit_mt_check_common(): a --hashlimit-name the namespace
    already has (htable_find_get(), by name and family) is that table, made with
    the first rule's settings; hashlimit_mt_common() keys, fills and ages entries
    by the table's (hinfo->cfg), each rule keeping only its upto/above. The later
    rules' own mode and rate are accepted, listed and not used: per source, two
    packets an hour."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p udp --dport 7 -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 "
                "--hashlimit-mode srcip --hashlimit-name shared -m comment --comment first",
        "-A FORWARD -p udp --dport 9 -m hashlimit --hashlimit-upto 1000/sec --hashlimit-burst 100 "
        "--hashlimit-mode dstip --hashlimit-name shared -m comment --comment second",
        "-A FORWARD -p udp --dport 11 -m hashlimit --hashlimit-above 1000/sec --hashlimit-burst 100 "
        "--hashlimit-name shared -m comment --comment above")
    assert "--hashlimit-upto 1000/sec --hashlimit-burst 100 --hashlimit-mode dstip" in target.sh("iptables -S FORWARD")
    for _ in range(3):
        forward(target, h0, h1, UDP(sport=1, dport=9), src="10.0.0.2")
    forward(target, h0, h1, UDP(sport=1, dport=7), src="10.0.0.2")
    forward(target, h0, h1, UDP(sport=1, dport=9), src="10.0.0.3")
    for _ in range(3):
        forward(target, h0, h1, UDP(sport=1, dport=11), src="10.0.0.4")
    assert counts(target) == {"first": 0, "second": 3, "above": 1}


def test_a_hashlimit_table_lives_while_a_rule_holds_it(target, router):
    """htable_put(): the table goes with the last rule holding it, so a later rule of
    that name makes it anew with its own settings; a flushing iptables-restore's new
    rule finds the old one still held (the old rules go when its transaction
    commits) and shares its settings and entries."""
    h0, h1 = router[0], router[1]
    tight = ("-p udp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-mode srcip "
             "--hashlimit-name t")
    loose = ("-p udp -m hashlimit --hashlimit-upto 1000/sec --hashlimit-burst 100 --hashlimit-mode srcip "
             "--hashlimit-name t")
    add(target, f"-A FORWARD {tight} -m comment --comment tight")
    for _ in range(3):
        forward(target, h0, h1, UDP(sport=1, dport=2), src="10.0.0.2")
    target.sh("iptables-restore", stdin=f"*filter\n-F FORWARD\n-A FORWARD {loose} -m comment --comment restored\n"
                                        "COMMIT\n")
    forward(target, h0, h1, UDP(sport=1, dport=2), src="10.0.0.2")
    forward(target, h0, h1, UDP(sport=1, dport=2), src="10.0.0.3")
    forward(target, h0, h1, UDP(sport=1, dport=2), src="10.0.0.3")
    forward(target, h0, h1, UDP(sport=1, dport=2), src="10.0.0.3")
    assert counts(target) == {"restored": 2}
    add(target, "-F FORWARD", f"-A FORWARD {loose} -m comment --comment anew")
    for _ in range(3):
        forward(target, h0, h1, UDP(sport=1, dport=2), src="10.0.0.2")
    assert counts(target) == {"anew": 3}
