"""iptables matches that look where a packet came from or read its raw bytes,
on real frames: -m physdev (the bridge ports br_netfilter records), -m u32
and -m bpf (words and classic BPF programs over the bytes from the IP
header), -m rpfilter (a FIB lookup towards the source) and -m osf (passive
OS fingerprints). iptables-nft puts each in the kernel as an xt match
(nft_compat) run by its module.

Each case adds rules with iptables, every counting rule named by a comment
(`-m comment --comment NAME`, no target: it counts and goes on), sends
frames through the DUT and asserts which rules counted them (iptables-save
-c). The expectations are the kernel's (net/netfilter/xt_physdev.c,
xt_u32.c, xt_bpf.c with net/core/filter.c, net/ipv4/netfilter/
ipt_rpfilter.c, xt_osf.c with nfnetlink_osf.c), written by hand.

    container a 172.17.0.2 --- p1 ┐
                                  ├ br0  DUT (physdev cases: the DUT bridges)
    container b 172.17.0.3 --- p2 ┘
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.target import PORTS
from harness.testing import bridge_up, forward
from harness.testing import counted_by_iptables_comment as counts

pytestmark = pytest.mark.requires("nftables")

PORT_A, PORT_B = PORTS[1], PORTS[2]
IP_A, IP_B = "172.17.0.2", "172.17.0.3"



def add(target, *rules: str) -> None:
    for rule in rules:
        target.sh(f"iptables {rule}")


def bridged(src_port, dst_port, src_ip: str, dst_ip: str, ident: int) -> Ether:
    return Ether(src=src_port.peer_mac, dst=dst_port.peer_mac) / IP(src=src_ip, dst=dst_ip, id=ident) / \
        UDP(sport=7, dport=9) / b"bridged"


def test_physdev_sees_the_bridge_ports_a_bridged_frame_crosses(target):
    """physdev_mt(): in FORWARD a bridged frame has its input port and (from
    br_nf_forward_ip()) its output port; --physdev-is-bridged needs the
    output port; inversions turn each test round. POSTROUTING (mangle) sees
    the output port too."""
    bridge_up(target, ports=(PORT_A.name, PORT_B.name))
    add(target, f"-A FORWARD -m physdev --physdev-in {PORT_A.name} -m comment --comment in-a",
        f"-A FORWARD -m physdev ! --physdev-in {PORT_A.name} -m comment --comment not-in-a",
        "-A FORWARD -m physdev --physdev-in p+ -m comment --comment in-p-prefix",
        f"-A FORWARD -m physdev --physdev-out {PORT_B.name} --physdev-is-bridged -m comment --comment out-b",
        "-A FORWARD -m physdev --physdev-is-in --physdev-is-out -m comment --comment is-in-out",
        "-A FORWARD -m physdev ! --physdev-is-bridged -m comment --comment not-bridged",
        f"-t mangle -A POSTROUTING -m physdev --physdev-out {PORT_B.name} --physdev-is-bridged "
        "-m comment --comment post-out-b")
    for frame, port in ((bridged(PORT_A, PORT_B, IP_A, IP_B, 1), PORT_B),
                        (bridged(PORT_B, PORT_A, IP_B, IP_A, 2), PORT_A)):
        target.send(PORT_A if port is PORT_B else PORT_B, frame)
        target.expect(port, frame)
    assert counts(target) == {"in-a": 1, "not-in-a": 1, "in-p-prefix": 2, "out-b": 1, "is-in-out": 2,
                              "not-bridged": 0}
    assert counts(target, "mangle") == {"post-out-b": 1}


def test_physdev_on_a_routed_packet_matches_only_inverted_options(target, router):
    """No nf_bridge_info on a packet that never crossed a bridge: physdev_mt()
    matches when every option given is inverted, and not otherwise."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -m physdev ! --physdev-is-bridged -m comment --comment not-bridged",
        "-A FORWARD -m physdev ! --physdev-in p0 ! --physdev-is-in -m comment --comment all-inverted",
        "-A FORWARD -m physdev --physdev-is-in -m comment --comment is-in",
        "-A FORWARD -m physdev ! --physdev-is-in --physdev-out p1 -m comment --comment mixed")
    forward(target, h0, h1, UDP(sport=1, dport=2))
    assert counts(target) == {"not-bridged": 1, "all-inverted": 1, "is-in": 0, "mixed": 0}


def test_u32_reads_words_from_the_ip_header_and_past_it_with_at(target, router):
    """u32_match_it(): `6&0xFF=17` the protocol byte (word at 6, masked);
    `0>>22&0x3C@0>>16=...` the IHL times 4 then the word there, the source
    port; `&&` joins tests (TCP, and only SYN of the flags at offset 13 of
    its header); a read past the packet's end fails the match, so its
    inversion matches."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -m u32 --u32 '6&0xFF=17' -m comment --comment udp",
        "-A FORWARD -m u32 --u32 '0>>22&0x3C@0>>16=1000:1999,3000' -m comment --comment sport",
        "-A FORWARD -m u32 --u32 '6&0xFF=6&&0>>22&0x3C@12>>16&0x3F=0x2' -m comment --comment tcp-syn-only",
        "-A FORWARD -m u32 --u32 '1000=0:0xFFFFFFFF' -m comment --comment past-the-end",
        "-A FORWARD -m u32 ! --u32 '1000=0:0xFFFFFFFF' -m comment --comment not-past-the-end")
    forward(target, h0, h1, UDP(sport=1500, dport=2))
    forward(target, h0, h1, UDP(sport=3000, dport=2))
    forward(target, h0, h1, TCP(sport=2000, dport=80, flags="S"))
    forward(target, h0, h1, TCP(sport=1001, dport=80, flags="SA"))
    assert counts(target) == {"udp": 2, "sport": 3, "tcp-syn-only": 1, "past-the-end": 0, "not-past-the-end": 4}


# classic BPF (struct sock_filter, decimal fields as nfbpf_compile prints them)
BPF_TCP = "4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0"  # ldb [9]; jeq #6; ret #1; ret #0 (libxt_bpf.t's)
BPF_DPORT_9 = "5,177 0 0 0,72 0 0 2,21 0 1 9,6 0 0 1,6 0 0 0"  # ldxb 4*([0]&0xf); ldh [x+2]; jeq #9
BPF_IPV4 = "4,40 0 0 4294963200,21 0 1 2048,6 0 0 1,6 0 0 0"  # ldh [SKF_AD_OFF+SKF_AD_PROTOCOL]; jeq #0x800
BPF_MARK_7 = "4,32 0 0 4294963220,21 0 1 7,6 0 0 1,6 0 0 0"  # ld [SKF_AD_OFF+SKF_AD_MARK]; jeq #7
BPF_LOAD_PAST_END = "2,32 0 0 1000,6 0 0 1"  # ld [1000] fails: the program returns 0
BPF_DIVIDE_BY_X_0 = "3,1 0 0 0,60 0 0 0,6 0 0 1"  # ldx #0; div x: the program returns 0
BPF_NET_OFF_TTL = "4,48 0 0 4293918728,21 0 1 63,6 0 0 1,6 0 0 0"  # ldb [SKF_NET_OFF+8]: the TTL; jeq #63


def test_bpf_runs_classic_programs_over_the_packet_from_its_ip_header(target, router):
    """bpf_mt_v1(): the program's return value, non-zero a match: loads from
    skb->data (the IP header), `ldx 4*([k]&0xf)` and `ld [x+k]` past a header
    of any length, ancillary loads of skb->protocol and skb->mark, a load
    outside the packet or a division by X = 0 returning 0."""
    h0, h1 = router[0], router[1]
    add(target, "-t mangle -A PREROUTING -p udp -j MARK --set-mark 7")
    for name, program in (("tcp", BPF_TCP), ("dport-9", BPF_DPORT_9), ("ipv4", BPF_IPV4),
                          ("mark-7", BPF_MARK_7), ("past-end", BPF_LOAD_PAST_END), ("div-0", BPF_DIVIDE_BY_X_0),
                          ("ttl-63", BPF_NET_OFF_TTL)):
        add(target, f"-A FORWARD -m bpf --bytecode '{program}' -m comment --comment {name}")
    forward(target, h0, h1, UDP(sport=1, dport=9))
    forward(target, h0, h1, UDP(sport=1, dport=10), ttl=10)
    forward(target, h0, h1, TCP(sport=1, dport=9, flags="S"))
    assert counts(target) == {"tcp": 1, "dport-9": 2, "ipv4": 3, "mark-7": 2, "past-end": 0, "div-0": 0,
                              "ttl-63": 2}


def test_rpfilter_looks_up_the_route_back_to_the_source(target, router):
    """rpfilter_mt() at mangle PREROUTING: strict, the route back to the
    source must leave by the receiving port; --loose, any route; --invert
    matches what fails. The kernel's own rp_filter is off, so every packet
    is forwarded."""
    h0, h1, h2 = router[0], router[1], router[2]
    target.sh(["sysctl", "-w", "net.ipv4.conf.all.rp_filter=0", f"net.ipv4.conf.{h0.port.name}.rp_filter=0"])
    add(target, "-t mangle -A PREROUTING -m rpfilter -m comment --comment strict",
        "-t mangle -A PREROUTING -m rpfilter --loose -m comment --comment loose",
        "-t mangle -A PREROUTING -m rpfilter --invert -m comment --comment strict-fails")
    forward(target, h0, h2, UDP(sport=1, dport=2))  # h0's own address: its route is p0's
    forward(target, h0, h2, UDP(sport=1, dport=2), src=h1.ip)  # h1's address on p0: routed back by p1
    forward(target, h0, h2, UDP(sport=1, dport=2), src="198.51.100.7")  # no route back at all
    assert counts(target, "mangle") == {"strict": 1, "loose": 2, "strict-fails": 2}


@pytest.mark.ipv6
def test_ip6tables_rpfilter_looks_up_the_route_back_out_of_the_receiving_port(target, router6):
    """ip6t_rpfilter.c rpfilter_lookup_reverse6(): the lookup towards the
    source prefers a route out of the receiving port; strict, the route found
    must use it; --loose, any route. IPv6 forwards whatever the route back."""
    h0, h1, h2 = router6[0], router6[1], router6[2]
    for rule in ("-m rpfilter -m comment --comment strict", "-m rpfilter --loose -m comment --comment loose",
                 "-m rpfilter --invert -m comment --comment strict-fails"):
        target.sh(f"ip6tables -t mangle -A PREROUTING {rule}")
    for source in (h0.ip6, h1.ip6, "2001:db8:99::7"):
        sent = h0.to_dut6(src=source, dst=h2.ip6, fl=0) / UDP(sport=1, dport=2)
        target.send(h0.port, sent)
        target.expect(h2.port, h2.from_dut6(src=source, dst=h2.ip6, hlim=63, fl=0) / UDP(sport=1, dport=2))
    assert counts(target, "mangle", prog="ip6tables") == {"strict": 1, "loose": 2, "strict-fails": 2}


def test_osf_finds_no_fingerprint_where_none_was_loaded(target, router):
    """nf_osf_match(): the SYN is looked at, but with no fingerprint loaded
    (nfnl_osf loads them; nobody did) no genre matches, and the kernel reads
    no inversion: `! --genre` matches nothing either."""
    h0, h1 = router[0], router[1]
    add(target, "-A FORWARD -p tcp --syn -m comment --comment syn",
        "-A FORWARD -p tcp -m osf --genre Linux -m comment --comment linux",
        "-A FORWARD -p tcp -m osf ! --genre Linux --ttl 2 -m comment --comment not-linux")
    forward(target, h0, h1, TCP(sport=1, dport=80, flags="S", options=[("MSS", 1460)]))
    assert counts(target) == {"syn": 1, "linux": 0, "not-linux": 0}
