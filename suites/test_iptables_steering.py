"""iptables targets and matches that steer a packet by a hash of its flow or
send a copy elsewhere, as iptables-nft 1.8.9 puts them in the kernel
(nft_compat): HMARK (xt_HMARK.c), cluster (xt_cluster.c).

A mark is read back from the kernel by 32 counting rules after the target,
one per bit (`-m mark --mark BIT/BIT`): the bits whose rule counted a packet
are its mark. The expected marks are what the real kernel (6.18, the netns
lab) set; the mock must compute the same jhash.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import Ether

from harness.testing import forward
from harness.testing import counted_by_iptables_comment as counts

pytestmark = pytest.mark.requires("nftables")




def add(target, *rules: str, prog: str = "iptables") -> None:
    for rule in rules:
        target.sh(f"{prog} {rule}")


def add_mark_bits(target, chain: str = "FORWARD", prog: str = "iptables") -> None:
    """One counting rule per bit of the mark (after whatever set it)."""
    add(target, *(f"-A {chain} -m mark --mark 0x{1 << bit:x}/0x{1 << bit:x} -m comment --comment bit{bit}"
                  for bit in range(32)), prog=prog)


def marks_of(target, send, packets, prog: str = "iptables") -> list[int]:
    """The mark the kernel gave each packet, sent one at a time by `send`."""
    marks = []
    for packet in packets:
        before = counts(target, prog=prog)
        send(packet)
        after = counts(target, prog=prog)
        marks.append(sum(1 << int(name[3:]) for name in after if name.startswith("bit") and
                         after[name] != before[name]))
    return marks


# (reply direction, l4): a flow each way, another port, TCP, ICMP, ESP
FLOWS = [(False, UDP(sport=1000, dport=53)), (True, UDP(sport=53, dport=1000)), (False, UDP(sport=1001, dport=53)),
         (False, TCP(sport=40000, dport=80, flags="S", seq=1)), (False, ICMP(type=8, id=7, seq=1)),
         (False, ESP(spi=0x12345678, seq=1))]


@pytest.mark.parametrize("options, expected", [
    ("--hmark-src-prefix 32 --hmark-rnd 0x4 --hmark-mod 42", [7, 12, 7, 7, 7, 7]),
    ("--hmark-tuple src,dst,sport,dport,proto --hmark-rnd 0xcafe --hmark-mod 0xffffffff",
     [486712579, 486712579, 2876713518, 1879372866, 1904941872, 57058642]),
    ("--hmark-tuple src,dst,spi,proto --hmark-rnd 0x1 --hmark-mod 1000 --hmark-offset 100",
     [863, 863, 734, 276, 170, 1087]),
    ("--hmark-src-prefix 16 --hmark-dst-prefix 24 --hmark-sport-mask 0xff00 --hmark-dport-mask 0x00ff "
     "--hmark-proto-mask 0x0f --hmark-rnd 0x12345678 --hmark-mod 65536", [8551, 36207, 8551, 3992, 14943, 54982]),
])
def test_hmark_sets_the_kernels_jhash_of_the_packet_tuple(target, router, options, expected):
    """hmark_tg_v4() with hmark_pkt_set_htuple_ipv4(): addresses and ports
    masked, ports ordered larger first (so both directions of a flow get one
    mark), an ESP packet's SPI in place of ports, ICMP without ports;
    jhash_3words() with --hmark-rnd, XOR the masked protocol, scaled into
    --hmark-mod plus --hmark-offset."""
    h0, h1 = router[0], router[1]
    add(target, f"-A FORWARD -j HMARK {options}")
    add_mark_bits(target)
    assert marks_of(target, lambda flow: forward(target, *((h1, h0) if flow[0] else (h0, h1)), flow[1]),
                    FLOWS) == expected


FULL_TUPLE = "--hmark-tuple src,dst,sport,dport,proto --hmark-rnd 0xcafe --hmark-mod 0xffffffff"


def test_hmark_hashes_an_icmp_errors_quoted_header_and_no_ports_of_a_fragment(target, router):
    """hmark_pkt_set_htuple_ipv4(): an ICMP error is hashed as the packet it
    quotes (get_inner_hdr()), so it gets its flow's mark; a fragment (MF or
    an offset) is hashed without its ports, as ICMP is."""
    h0, h1 = router[0], router[1]
    add(target, f"-A FORWARD -j HMARK {FULL_TUPLE}")
    add_mark_bits(target)
    quoting = ICMP(type=3, code=3) / IP(src=h1.ip, dst=h0.ip, id=1, ttl=63) / UDP(sport=53, dport=1000)
    sends = [lambda: forward(target, h0, h1, UDP(sport=1000, dport=53)), lambda: forward(target, h0, h1, quoting),
             lambda: forward(target, h0, h1, UDP(sport=1000, dport=53), flags="MF"),
             lambda: forward(target, h0, h1, UDP(sport=7, dport=9), flags="MF"),
             lambda: forward(target, h0, h1, UDP(sport=1000, dport=53), frag=100)]
    assert marks_of(target, lambda send: send(), sends) == [486712579, 486712579, 1904941856, 1904941856,
                                                            1904941856]


@pytest.mark.requires("conntrack")
@pytest.mark.parametrize("tracked", [True, False])
def test_hmark_ct_hashes_the_connection_and_needs_conntrack_from_another_rule(target, router, tracked):
    """hmark_ct_set_htuple(): the original source, the reply's source and
    their ports: both directions of a connection get one mark. HMARK itself
    does not enable conntrack (hmark_tg_check() takes no nf_ct_netns_get()):
    with no other rule tracking, nf_ct_get() finds nothing and the mark stays 0."""
    h0, h1 = router[0], router[1]
    if tracked:
        add(target, "-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -m comment --comment tracked")
    add(target, "-A FORWARD -j HMARK --hmark-tuple ct,src,dst,sport,dport --hmark-rnd 0x9 --hmark-mod 1000 "
                "--hmark-offset 1")
    add_mark_bits(target)
    sends = [lambda: forward(target, h0, h1, UDP(sport=1000, dport=53)),
             lambda: forward(target, h1, h0, UDP(sport=53, dport=1000)),
             lambda: forward(target, h0, h1, ICMP(type=8, id=7, seq=1))]
    assert marks_of(target, lambda send: send(), sends) == ([675, 675, 593] if tracked else [0, 0, 0])


def test_cluster_picks_a_node_by_the_jhash_of_the_connections_source(target, router):
    """xt_cluster_mt(): reciprocal_scale(jhash_1word(original source,
    --cluster-hash-seed), --cluster-total-nodes) is the node; the match is
    whether the local node mask has it, `!` the other way round. The match
    enables conntrack itself (nf_ct_netns_get() in its checkentry)."""
    h0, h1 = router[0], router[1]
    seed = "--cluster-total-nodes 2 --cluster-hash-seed 0xfeedcafe"
    add(target, f"-A FORWARD -m cluster {seed} --cluster-local-node 1 -m comment --comment node1",
        f"-A FORWARD -m cluster {seed} --cluster-local-node 2 -m comment --comment node2",
        f"-A FORWARD -m cluster {seed} ! --cluster-local-nodemask 2 -m comment --comment not-node2",
        "-A FORWARD -m cluster --cluster-total-nodes 4 --cluster-local-nodemask 0xc --cluster-hash-seed 4 "
        "-m comment --comment node3or4")
    matched = []
    for src in ("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"):
        before = counts(target)
        forward(target, h0, h1, UDP(sport=1000, dport=53), src=src)
        matched.append(sorted(name for name, packets in counts(target).items() if packets != before[name]))
    assert matched == [["node2"], ["node2", "node3or4"], ["node1", "node3or4", "not-node2"],
                       ["node1", "node3or4", "not-node2"], ["node2", "node3or4"]]


def test_cluster_makes_a_unicast_packet_sent_to_a_multicast_mac_a_host_one(target, router):
    """A frame to a multicast MAC is PACKET_MULTICAST (eth_type_trans()) and
    ip_forward() drops it; xt_cluster_mt() makes one whose IP destination is
    unicast PACKET_HOST first, whether or not this node is the one, so it is
    forwarded."""
    h0, h1 = router[0], router[1]
    sent = Ether(src=h0.mac, dst="01:00:5e:00:00:01") / IP(src=h0.ip, dst=h1.ip, id=3) / UDP(sport=1, dport=2)
    target.send(h0.port, sent)
    target.expect_nothing()
    add(target, "-t mangle -A PREROUTING -m cluster --cluster-total-nodes 2 --cluster-local-node 1 "
                "--cluster-hash-seed 0xfeedcafe")
    target.send(h0.port, sent)
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=3, ttl=63) / UDP(sport=1, dport=2))


def test_tee_sends_a_copy_to_its_gateway_and_the_original_goes_on(target, router):
    """tee_tg4() over nf_dup_ipv4(): the copy keeps its addresses, has DF set
    and leaves to --gateway (h2, out of p2); in PREROUTING its TTL is
    lowered by one there, in FORWARD it already was (by ip_forward()); the
    original is forwarded to h1 (XT_CONTINUE)."""
    h0, h1, h2 = router
    add(target, f"-t mangle -A PREROUTING -p udp --dport 5050 -j TEE --gateway {h2.ip}",
        f"-t mangle -A FORWARD -p udp --dport 5051 -j TEE --gateway {h2.ip}")
    for ident, dport in ((501, 5050), (502, 5051)):
        l4 = UDP(sport=44000, dport=dport) / b"tee me"
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=ident) / l4)
        target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=ident, ttl=63) / l4)
        target.expect(h2.port, h2.from_dut(src=h0.ip, dst=h1.ip, id=ident, ttl=63, flags="DF") / l4)
    target.expect_nothing()


def test_tee_does_not_copy_a_copy_it_is_sending(target, router):
    """nf_dup_ipv4() skips a packet while a copy is being sent: the copy
    PREROUTING's TEE makes crosses mangle POSTROUTING, whose TEE copies only
    the original there. Two copies reach h2 (both DF, the TTL forwarding left)."""
    h0, h1, h2 = router
    add(target, f"-t mangle -A PREROUTING -p udp --dport 5052 -j TEE --gateway {h2.ip}",
        f"-t mangle -A POSTROUTING -p udp --dport 5052 -j TEE --gateway {h2.ip}")
    l4 = UDP(sport=44000, dport=5052) / b"tee twice"
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=503) / l4)
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=503, ttl=63) / l4)
    for _ in range(2):
        target.expect(h2.port, h2.from_dut(src=h0.ip, dst=h1.ip, id=503, ttl=63, flags="DF") / l4)
    target.expect_nothing()


def test_tproxy_without_a_transparent_socket_drops_the_packet(target, router):
    """tproxy_tg4(): no socket established for the packet and no transparent
    listener on --on-port: NF_DROP (nft's tproxy breaks the rule instead);
    the -p udp the target needs (tproxy_tg4_check()) lets TCP by."""
    h0, h1 = router[0], router[1]
    add(target, "-t mangle -A PREROUTING -p udp --dport 5060 -j TPROXY --on-port 12345 --tproxy-mark 0x1/0x1")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=601) / UDP(sport=44000, dport=5060))
    target.expect_nothing()
    forward(target, h0, h1, TCP(sport=44000, dport=5060, flags="S", seq=1))


@pytest.mark.requires("conntrack")
@pytest.mark.parametrize("mode", ["save", "restore"])
def test_connsecmark_turns_conntrack_on_and_copies_no_mark_without_an_lsm(target, router, mode):
    """connsecmark_tg_check() takes a conntrack reference: the flow gets an
    entry with no other rule tracking; secmark_save()/secmark_restore()
    find secmark 0 on packet and connection (no LSM labels them) and the
    packet goes on unchanged, its mark untouched."""
    h0, h1 = router[0], router[1]
    add(target, f"-t mangle -A PREROUTING -j CONNSECMARK --{mode}",
        "-A FORWARD -m mark --mark 0 -m comment --comment unmarked")
    forward(target, h0, h1, UDP(sport=44000, dport=5070))
    assert [(e.original, e.mark) for e in target.conntrack() if e.proto == "udp"] == [
        ((h0.ip, h1.ip, 44000, 5070), 0)]
    assert counts(target) == {"unmarked": 1}


def forward6(target, src, dst, l4) -> None:
    """`l4` from src's wire to dst through the DUT, hop limit lowered by one."""
    target.send(src.port, src.to_dut6(dst=dst.ip6) / l4)
    target.expect(dst.port, dst.from_dut6(src=src.ip6, dst=dst.ip6, hlim=63) / l4)


def test_hmark_in_ip6tables_folds_each_address_and_reads_past_extension_headers(target, router6):
    """hmark_pkt_set_htuple_ipv6(): each address's masked words XOR-ed
    (hmark_addr6_mask()), the upper-layer header ipv6_find_hdr() finds;
    an ICMPv6 error hashed as the packet it quotes; no ports behind a
    fragment header, none for ICMPv6."""
    h0, h1 = router6[0], router6[1]
    add(target, "-A FORWARD -j HMARK --hmark-tuple src,dst,sport,dport,proto --hmark-rnd 0xcafe "
                "--hmark-mod 0xffffffff", prog="ip6tables")
    add(target, "-A FORWARD -j HMARK --hmark-src-prefix 48 --hmark-dst-prefix 64 --hmark-sport-mask 0xff "
                "--hmark-rnd 0x7 --hmark-mod 1000 -p esp", prog="ip6tables")
    add_mark_bits(target, prog="ip6tables")
    quoting = ICMPv6DestUnreach(code=4) / IPv6(src=h1.ip6, dst=h0.ip6, hlim=63) / UDP(sport=53, dport=1000)
    flows = [(h0, h1, UDP(sport=1000, dport=53)), (h1, h0, UDP(sport=53, dport=1000)),
             (h0, h1, TCP(sport=40000, dport=80, flags="S", seq=1)), (h0, h1, ICMPv6EchoRequest(id=7, seq=1)),
             (h0, h1, quoting), (h0, h1, IPv6ExtHdrFragment(m=1, id=9) / UDP(sport=1000, dport=53)),
             (h0, h1, ESP(spi=0x12345678, seq=1))]
    assert marks_of(target, lambda flow: forward6(target, *flow), flows, prog="ip6tables") == [
        814155915, 814155915, 1034815267, 1147871365, 814155915, 1147871404, 116]


def test_cluster_in_ip6tables_hashes_only_the_first_32_bits_of_the_source(target, router6):
    """xt_cluster_hash_ipv6(): jhash2() of NF_CT_TUPLE_L3SIZE / sizeof(__u32)
    words of the original source, and NF_CT_TUPLE_L3SIZE (4) already counts
    words: one word, the first 32 bits. Sources alike there share a node."""
    h0, h1 = router6[0], router6[1]
    seed = "--cluster-total-nodes 4 --cluster-hash-seed 0x3"
    add(target, *(f"-A FORWARD -m cluster {seed} --cluster-local-node {node} -m comment --comment node{node}"
                  for node in (1, 2, 3, 4)), prog="ip6tables")
    matched = []
    for source in ("2001:db8::3", "2001:db8:ffff::7", "2002::2", "3000::1", "fd00::1", "2001:db9::1"):
        before = counts(target, prog="ip6tables")
        target.send(h0.port, h0.to_dut6(src=source, dst=h1.ip6) / UDP(sport=1000, dport=53))
        target.expect(h1.port, h1.from_dut6(src=source, dst=h1.ip6, hlim=63) / UDP(sport=1000, dport=53))
        matched += [name for name, packets in counts(target, prog="ip6tables").items() if packets != before[name]]
    assert matched == ["node1", "node1", "node3", "node2", "node3", "node4"]
