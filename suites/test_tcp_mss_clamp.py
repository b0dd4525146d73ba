"""MSS clamping of forwarded SYNs with nft's `tcp option maxseg size set`.

`rt mtu` is nft_rt's NFT_RT_TCPMSS (net/netfilter/nft_rt.c get_tcpmss()): the
MTU of the packet's route, lowered to that of the route back to its source,
minus 40 (IPv4 and TCP headers). nft_exthdr_tcp_set_eval() writes the MSS only
when that lowers it, and updates the TCP checksum incrementally
(inet_proto_csum_replace2()). Expected frames are written out from the plan:
the SYN as sent, TTL 63, the MSS Linux must leave in it.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP

pytestmark = pytest.mark.requires("nftables")

CLAMP_TO_ROUTE = """
table ip mangle {
    chain forward {
        type filter hook forward priority mangle; policy accept;
        tcp flags syn tcp option maxseg size set rt mtu
    }
}
"""

CLAMP_TO_1200 = """
table ip mangle {
    chain forward {
        type filter hook forward priority mangle; policy accept;
        tcp flags syn tcp option maxseg size set 1200
    }
}
"""

CLAMP_EVERY_SEGMENT_TO_1200 = CLAMP_TO_1200.replace("tcp flags syn ", "")

# every option a Linux SYN carries, MSS first as tcp_options_write() puts it
LINUX_SYN_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (11, 0)), ("NOP", None), ("WScale", 7)]


def _syn(options, flags="S"):
    return TCP(sport=40000, dport=80, flags=flags, seq=1000, window=64240, options=options)


def _left_as(target, router, segment, ident: int) -> None:
    """`segment` is what leaves p1 for h1: forwarded from h0, TTL 63, nothing else."""
    h0, h1 = router[0], router[1]
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=ident, ttl=63) / segment)
    target.expect_nothing()


@pytest.mark.parametrize("options, clamped", [
    ([("MSS", 1460)], [("MSS", 1360)]),
    (LINUX_SYN_OPTIONS, [("MSS", 1360)] + LINUX_SYN_OPTIONS[1:]),
], ids=["mss-alone", "linux-syn-options"])
def test_forwarded_syn_is_clamped_to_the_egress_device_mtu_minus_40(target, router, options, clamped):
    h0, h1 = router[0], router[1]
    target.sh(f"ip link set dev {h1.port.name} mtu 1400")
    target.sh("nft -f -", stdin=CLAMP_TO_ROUTE)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=11) / _syn(options))
    _left_as(target, router, _syn(clamped), 11)


def test_a_route_mtu_lower_than_the_device_mtu_is_the_one_clamped_to(target, router):
    h0, h1 = router[0], router[1]
    target.sh(f"ip route add {h1.ip}/32 dev {h1.port.name} mtu 1300")
    target.sh("nft -f -", stdin=CLAMP_TO_ROUTE)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=12) / _syn([("MSS", 1460)]))
    _left_as(target, router, _syn([("MSS", 1260)]), 12)


def test_the_route_back_to_the_sender_lowers_the_mss_too(target, router):
    """get_tcpmss() takes the lower of the forward route's MTU and that of the
    route back to the packet's source (here out of the ingress port)."""
    h0, h1 = router[0], router[1]
    target.sh(f"ip link set dev {h0.port.name} mtu 1280")
    target.sh("nft -f -", stdin=CLAMP_TO_ROUTE)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=13) / _syn([("MSS", 1460)]))
    _left_as(target, router, _syn([("MSS", 1240)]), 13)


def test_a_syn_whose_mss_is_already_lower_is_left_alone(target, router):
    h0, h1 = router[0], router[1]
    target.sh(f"ip link set dev {h1.port.name} mtu 1400")
    target.sh("nft -f -", stdin=CLAMP_TO_ROUTE)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=14) / _syn([("MSS", 536)]))
    _left_as(target, router, _syn([("MSS", 536)]), 14)


@pytest.mark.parametrize("mss, left", [(1460, 1200), (1200, 1200), (1000, 1000)])
def test_a_fixed_size_only_ever_lowers_the_mss(target, router, mss, left):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=CLAMP_TO_1200)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=15) / _syn([("MSS", mss), ("NOP", None), ("WScale", 7)]))
    _left_as(target, router, _syn([("MSS", left), ("NOP", None), ("WScale", 7)]), 15)


def test_a_syn_without_the_option_passes_unchanged(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=CLAMP_TO_1200)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=16) / _syn([("SAckOK", b""), ("NOP", None), ("WScale", 7)]))
    _left_as(target, router, _syn([("SAckOK", b""), ("NOP", None), ("WScale", 7)]), 16)


def test_a_non_syn_segment_is_not_touched_by_a_syn_rule(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=CLAMP_TO_1200)
    ack = _syn([("MSS", 1460)], flags="A") / b"data"
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=17) / ack)
    _left_as(target, router, ack, 17)


def test_the_option_is_rewritten_in_any_segment_carrying_it_when_the_rule_does_not_ask_for_syn(target, router):
    """nft_exthdr_tcp_set_eval() has no SYN test of its own (xt_TCPMSS has)."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=CLAMP_EVERY_SEGMENT_TO_1200)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=18) / _syn([("MSS", 1460)], flags="A") / b"data")
    _left_as(target, router, _syn([("MSS", 1200)], flags="A") / b"data", 18)


def test_segments_without_the_option_pass_a_rule_for_every_segment_unchanged(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=CLAMP_EVERY_SEGMENT_TO_1200)
    data = _syn([("NOP", None), ("NOP", None), ("Timestamp", (5, 6))], flags="PA") / b"data"
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=19) / data)
    _left_as(target, router, data, 19)


def test_an_mss_at_an_odd_offset_gets_the_kernels_unaligned_checksum_update(target, router):
    """inet_proto_csum_replace2() adds the old and new 16 bits as if they were
    one aligned word of the segment: after a single NOP they straddle two, and
    the segment leaves with a checksum its receiver refuses."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=CLAMP_TO_1200)
    options = [("NOP", None), ("MSS", 1460), ("NOP", None)]
    sent = h0.to_dut(dst=h1.ip, id=20) / _syn(options)
    assert IP(bytes(sent[IP]))[TCP].chksum == 0x2665, "the SYN's checksum as sent"
    target.send(h0.port, sent)
    # 0x2665 + 1460 (0x05B4) - 1200 (0x04B0) in ones' complement; a full sum would give 0x2A66
    left = _syn([("NOP", None), ("MSS", 1200), ("NOP", None)])
    left.chksum = 0x2769
    _left_as(target, router, left, 20)


CLAMP_OUTPUT_TO_1000 = """
table ip mangle {
    chain output {
        type route hook output priority mangle; policy accept;
        tcp flags syn tcp option maxseg size set 1000
    }
}
"""


def test_the_dut_s_own_syn_is_clamped_at_output_with_a_valid_checksum(target, router):
    """A SYN the DUT sends carries the route's MSS (1460) first of its options;
    the output chain lowers it, and the segment leaves with a checksum that
    covers the new value (the MSS sits at an even offset)."""
    h1 = router[1]
    target.sh("nft -f -", stdin=CLAMP_OUTPUT_TO_1000)
    sock = target.socket("tcp")
    try:
        sock.connect((h1.ip, 80))
    except BlockingIOError:
        pass
    left = target.next_frame(h1.port, target.now() + 1)
    assert left is not None, "the SYN leaves p1"
    syn = IP(left[0][14:])
    assert syn[TCP].flags == "S" and syn[TCP].options[0] == ("MSS", 1000)
    resummed = IP(bytes(syn))
    del resummed[TCP].chksum
    assert syn[TCP].chksum == IP(bytes(resummed))[TCP].chksum
