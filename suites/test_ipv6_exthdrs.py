"""IPv6 extension headers (net/ipv6/exthdrs.c, reassembly.c): options by their
type's action bits, routing headers, unknown next headers, the parameter
problems they draw, and fragment reassembly with its timeout."""
from __future__ import annotations

from scapy.layers.inet import UDP
from scapy.layers.inet6 import (HBHOptUnknown, ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                                ICMPv6ParamProblem, ICMPv6TimeExceeded, IPv6, IPv6ExtHdrDestOpt,
                                IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, PadN)

from harness.testing import auto_flowlabel_mask, drops

PAYLOAD = b"packet-journey"




def destopt(otype: int):
    """A destination options header with one 2-byte option of type `otype` and PadN to 8."""
    return IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=otype, optdata=b"\0\0"), PadN(optdata=b"")])


def test_an_unknown_destination_option_of_action_00_is_skipped(target, hosts6):
    h0 = hosts6[0]
    sent = h0.to_dut6() / destopt(0x1E) / UDP(sport=1111, dport=9) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6DestUnreach(code=4), sent))
    assert drops(target) == [("NO_SOCKET", "L4", "__udp6_lib_rcv")]


def test_an_unknown_destination_option_of_action_01_drops_silently(target, hosts6):
    h0 = hosts6[0]
    target.send(h0.port, h0.to_dut6() / destopt(0x5E) / UDP(sport=1111, dport=9) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == [("UNHANDLED_PROTO", "L4", "ip6_tlvopt_unknown")]


def test_an_unknown_destination_option_of_action_10_draws_a_parameter_problem_at_it(target, hosts6):
    """ip6_tlvopt_unknown(): code 2 (unrecognized option), pointer at the option (40 + 2)."""
    h0 = hosts6[0]
    sent = h0.to_dut6() / destopt(0x9E) / UDP(sport=1111, dport=9) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6ParamProblem(code=2, ptr=42), sent))
    target.expect_nothing()
    assert drops(target) == [("UNHANDLED_PROTO", "L4", "ip6_tlvopt_unknown")]


def test_a_forwarded_packet_with_an_unknown_hop_by_hop_option_is_refused_by_the_router(target, router6):
    """Every node on the path processes hop-by-hop options (ipv6_rcv, before PREROUTING)."""
    h0, h1 = router6[0], router6[1]
    sent = h0.to_dut6(dst=h1.ip6) / IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x9E, optdata=b"\0\0"),
                                                                 PadN(optdata=b"")]) / UDP(sport=1, dport=2)
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6ParamProblem(code=2, ptr=42), sent))
    target.expect_nothing()
    assert drops(target) == [("UNHANDLED_PROTO", "L4", "ip6_tlvopt_unknown")]


def test_padn_with_non_zero_bytes_is_a_bad_header(target, hosts6):
    """RFC 4942 2.1.9.5, ip6_parse_tlv(): PadN must hold zeroes."""
    h0 = hosts6[0]
    target.send(h0.port, h0.to_dut6() / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x01\x02\x03\x04")]) /
                UDP(sport=1111, dport=9) / PAYLOAD)
    target.expect_nothing()
    assert drops(target) == [("IP_INHDR", "L4", "ip6_parse_tlv")]


def test_a_type_0_routing_header_with_segments_left_draws_a_parameter_problem_at_its_type(target, hosts6):
    """RFC 5095: type 0 is not processed; ipv6_rthdr_rcv() points at the type field (40 + 2)."""
    h0 = hosts6[0]
    sent = h0.to_dut6() / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8:7::1"]) / \
        UDP(sport=1111, dport=9) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6ParamProblem(code=0, ptr=42), sent))
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", "L4", "ipv6_rthdr_rcv")]


def test_a_routing_header_with_no_segments_left_is_skipped(target, hosts6):
    h0 = hosts6[0]
    sent = h0.to_dut6() / IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8:7::1"]) / \
        UDP(sport=1111, dport=9) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6DestUnreach(code=4), sent))
    assert drops(target) == [("NO_SOCKET", "L4", "__udp6_lib_rcv")]


def test_an_unknown_next_header_draws_a_parameter_problem_pointing_at_the_field(target, hosts6):
    """ip6_protocol_deliver_rcu(): code 1 (unrecognized next header), pointer at nexthdr (6)."""
    h0 = hosts6[0]
    sent = h0.to_dut6(nh=253) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6ParamProblem(code=1, ptr=6), sent))
    target.expect_nothing()
    assert drops(target) == [("IP_NOPROTO", "L4", "ip6_input_finish")]


def _fragments(host, datagram, ident: int, split: int):
    """The upper-layer part of `datagram` (an IPv6 packet without extension headers)
    in two fragments: the first `split` bytes (a multiple of 8) and the rest."""
    ip6 = datagram[IPv6]
    upper = bytes(ip6.payload)
    head = host.to_dut6(src=ip6.src, dst=ip6.dst) / IPv6ExtHdrFragment(nh=ip6.nh, offset=0, m=1, id=ident)
    tail = host.to_dut6(src=ip6.src, dst=ip6.dst) / IPv6ExtHdrFragment(nh=ip6.nh, offset=split // 8, m=0, id=ident)
    return head / upper[:split], tail / upper[split:]


def test_fragments_of_an_echo_request_are_reassembled_and_answered(target, hosts6):
    h0 = hosts6[0]
    request = h0.to_dut6() / ICMPv6EchoRequest(id=9, seq=1, data=b"z" * 200)
    first, second = _fragments(h0, request, 0x1234, 104)
    target.send(h0.port, [second, first])
    target.expect(h0.port, auto_flowlabel_mask(h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=64) /
                                          ICMPv6EchoReply(id=9, seq=1, data=b"z" * 200)))
    target.expect_nothing()
    assert drops(target) == []


def test_an_incomplete_datagram_expires_with_time_exceeded_quoting_its_first_fragment(target, hosts6):
    """ip6frag_expire_frag_queue(): after ip6frag_time, time exceeded (code 1) when the
    first fragment came; every fragment is freed FRAG_REASM_TIMEOUT."""
    h0 = hosts6[0]
    target.sh("sysctl -w net.ipv6.ip6frag_time=1")
    first, _ = _fragments(h0, h0.to_dut6() / ICMPv6EchoRequest(id=9, seq=1, data=b"z" * 200), 0x4321, 104)
    target.send(h0.port, first)
    target.expect_nothing()
    target.wait(1.5)
    target.expect(h0.port, h0.icmp6_error(ICMPv6TimeExceeded(code=1), first))
    assert drops(target) == [("FRAG_REASM_TIMEOUT", "IP_DEFRAG", "ip6_frag_expire")]


def test_a_first_fragment_without_its_upper_layer_header_draws_parameter_problem_code_3(target, hosts6):
    """RFC 8200 4.5: ipv6frag_thdr_truncated() -> ICMPV6_HDR_INCOMP, pointer 0."""
    h0 = hosts6[0]
    sent = h0.to_dut6() / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=77) / b"abcd"
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6ParamProblem(code=3, ptr=0), sent))
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", "IP_DEFRAG", "ipv6_frag_rcv")]


def test_a_non_last_fragment_not_a_multiple_of_8_points_at_payload_len(target, hosts6):
    h0 = hosts6[0]
    sent = h0.to_dut6() / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=78) / UDP(sport=1, dport=2) / b"abcde"
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp6_error(ICMPv6ParamProblem(code=0, ptr=4), sent))
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", "IP_DEFRAG", "ipv6_frag_rcv")]
