"""IPv4 options (net/ipv4/ip_options.c): what ip_rcv_options() refuses, what a
router writes into the options it forwards, and what an answer echoes back.

    h0 10.0.0.2 -- p0 10.0.0.1 | DUT (router) | p1 10.0.1.1 -- h1 10.0.1.2

The differential runner (python -m harness.diff) found each of these on the mock:
its IPv4 receive path used to ignore options but for source routes.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, UDP, IPOption, IPOption_LSRR, IPOption_RR
from scapy.layers.l2 import Ether

from harness.testing import icmp_socket_mask, quoted


def _udp(host, dst: str, options, ident: int = 1) -> Ether:
    return host.to_dut(dst=dst, id=ident, options=options) / UDP(sport=53, dport=9) / b"opt"


def _rr(pointer: int, *routers: str) -> IPOption_RR:
    return IPOption_RR(pointer=pointer, routers=list(routers))


def test_an_option_of_length_0_is_a_parameter_problem_pointing_at_it(target, router):
    """ip_options_compile(): optlen < 2 is an error at the option's first
    byte (offset 20 of the header): ICMP parameter problem, pointer 20, and
    nothing forwarded."""
    h0, h1 = router[0], router[1]
    sent = _udp(h0, h1.ip, [IPOption(b"\x08\x00\x00\x00")])
    target.send(h0.port, sent)
    error = h0.from_dut(src=h0.dut_ip, dst=h0.ip, tos=0xC0, ttl=64, flags=0) / ICMP(type=12, code=0, ptr=20) / \
        quoted(sent)
    target.expect(h0.port, icmp_socket_mask(error))
    target.expect_nothing()


@pytest.mark.requires("drop_reasons")
def test_a_malformed_option_is_dropped_as_a_bad_header_after_routing(target, router):
    h0, h1 = router[0], router[1]
    target.send(h0.port, _udp(h0, h1.ip, [IPOption(b"\x99\x05\x00\x00")]))  # 5 bytes long in 4
    target.collect(h0.port)
    assert [(d.reason, d.stage, d.location) for d in target.drops()] == [
        ("IP_INHDR", "ROUTING", "ip_rcv_finish_core")]


def test_a_forwarded_record_route_gets_the_outgoing_address(target, router):
    """Compile writes the receiving side's address into the first free slot
    (spec_dst) and moves the pointer on; ip_forward_options() overwrites that
    slot with the outgoing address (ip_rt_get_source()) and refreshes the checksum."""
    h0, h1 = router[0], router[1]
    target.send(h0.port, _udp(h0, h1.ip, [_rr(4, "0.0.0.0", "0.0.0.0")]))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=1, ttl=63, options=[
        _rr(8, h1.dut_ip, "0.0.0.0")]) / UDP(sport=53, dport=9) / b"opt")


def test_a_full_record_route_is_forwarded_as_it_came(target, router):
    h0, h1 = router[0], router[1]
    target.send(h0.port, _udp(h0, h1.ip, [_rr(8, "192.0.2.1")]))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=1, ttl=63, options=[
        _rr(8, "192.0.2.1")]) / UDP(sport=53, dport=9) / b"opt")


def test_what_follows_an_end_of_list_is_zeroed_on_the_way_through(target, router):
    h0, h1 = router[0], router[1]
    target.send(h0.port, _udp(h0, h1.ip, [IPOption(b"\x00\x01\x02\x03")]))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=1, ttl=63, options=[
        IPOption(b"\x00\x00\x00\x00")]) / UDP(sport=53, dport=9) / b"opt")


@pytest.mark.requires("drop_reasons")
def test_a_source_routed_packet_is_dropped_without_accept_source_route(target, router):
    h0, h1 = router[0], router[1]
    target.send(h0.port, _udp(h0, h1.ip, [IPOption_LSRR(routers=[h1.ip])]))
    target.expect_nothing()
    assert [(d.reason, d.stage, d.location) for d in target.drops()] == [
        ("NOT_SPECIFIED", "ROUTING", "ip_rcv_finish_core")]


def test_an_echo_reply_returns_the_record_route_with_this_hosts_address_twice(target, router):
    """The request gets the receiving address on the way in; the reply echoes
    the option (ip_options_echo()) with a slot more, filled with its own
    source (ip_options_build())."""
    h0 = router[0]
    target.send(h0.port, h0.to_dut(id=5, options=[_rr(4, "0.0.0.0", "0.0.0.0")]) / ICMP(id=7, seq=1))
    reply = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags=0, options=[
        _rr(12, h0.dut_ip, h0.dut_ip)]) / ICMP(type=0, id=7, seq=1)
    target.expect(h0.port, icmp_socket_mask(reply))


def test_a_port_unreachable_echoes_the_record_route_and_quotes_the_option_as_received(target, router):
    """The error's header carries the echoed option; the quoted header is the
    packet as ip_options_compile() left it (its address written, the pointer
    moved on, the checksum as sent)."""
    h0 = router[0]
    sent = bytearray(bytes(_udp(h0, h0.dut_ip, [_rr(4, "0.0.0.0", "0.0.0.0")])))
    as_received = bytearray(sent)
    as_received[14 + 22] = 8  # the option's pointer
    as_received[14 + 23:14 + 27] = bytes(map(int, h0.dut_ip.split(".")))  # the first slot
    target.send(h0.port, bytes(sent))
    error = h0.from_dut(src=h0.dut_ip, dst=h0.ip, tos=0xC0, ttl=64, flags=0, options=[
        _rr(12, h0.dut_ip, h0.dut_ip)]) / ICMP(type=3, code=3) / bytes(as_received[14:])
    target.expect(h0.port, icmp_socket_mask(error))


def test_a_forwarded_timestamp_gets_a_time_in_its_first_free_slot(target, router):
    """Timestamp only: four bytes of milliseconds since midnight UTC at the
    pointer, the pointer 4 further; the time itself is the host's clock."""
    h0, h1 = router[0], router[1]
    target.send(h0.port, _udp(h0, h1.ip, [IPOption(bytes([68, 12, 5, 0]) + bytes(8))]))  # two free slots
    [frame] = target.collect(h1.port)
    option = frame[14 + 20:14 + 32]
    assert (option[:4], option[8:]) == (bytes([68, 12, 9, 0]), b"\0\0\0\0")
    assert int.from_bytes(option[4:8], "big") < 86_400_000
