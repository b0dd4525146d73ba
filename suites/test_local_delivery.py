"""Local delivery: sockets, echo, ICMP answers for what nobody listens to."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, TCP, UDP

from harness.testing import icmp_socket_mask, socket_datagram_mask


def test_udp_datagram_reaches_the_bound_socket_with_its_source(target, hosts):
    h0 = hosts[0]
    sock = target.socket("udp", (h0.dut_ip, 5000))
    target.send(h0.port, h0.to_dut() / UDP(sport=40000, dport=5000) / b"hello")
    assert sock.recv() == (b"hello", (h0.ip, 40000))
    target.expect_nothing()
    assert target.drops() == []


def test_udp_echo_reply_leaves_from_the_bound_port_with_df(target, hosts):
    """An unconnected UDP socket's datagram that fits the MTU is sent with DF
    (IP_PMTUDISC_WANT), from the address of the route back to the sender."""
    h1 = hosts[1]
    sock = target.socket("udp", ("0.0.0.0", 7))
    target.send(h1.port, h1.to_dut() / UDP(sport=33000, dport=7) / b"echo me")
    data, source = sock.recv()
    sock.sendto(data, source)
    expected = h1.from_dut(src=h1.dut_ip, dst=h1.ip, ttl=64, flags="DF") / \
        UDP(sport=7, dport=33000) / b"echo me"
    target.expect(h1.port, socket_datagram_mask(expected))
    target.expect_nothing()


def test_icmp_echo_request_is_answered_from_the_address_it_was_sent_to(target, hosts):
    h2 = hosts[2]
    request = h2.to_dut(tos=0x10) / ICMP(type=8, id=0x1234, seq=7) / b"ping payload"
    target.send(h2.port, request)
    reply = h2.from_dut(src=h2.dut_ip, dst=h2.ip, tos=0x10, ttl=64, flags=0) / \
        ICMP(type=0, id=0x1234, seq=7) / b"ping payload"
    target.expect(h2.port, icmp_socket_mask(reply))
    target.expect_nothing()
    assert target.drops() == []


def test_echo_reply_that_sums_to_zero_carries_checksum_0000(target, hosts):
    """An echo request of id 0, seq 0 and no data is answered with a reply whose
    words are all zero; x86's csum_partial_copy_nocheck() starts from ~0, so the
    folded sum is 0xFFFF and the field 0x0000 (RFC 1071's arithmetic gives 0xFFFF)."""
    h0 = hosts[0]
    target.send(h0.port, h0.to_dut() / ICMP(type=8, id=0, seq=0))
    reply = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags=0) / ICMP(type=0, id=0, seq=0, chksum=0x0000)
    target.expect(h0.port, icmp_socket_mask(reply))
    target.expect_nothing()


def test_udp_to_a_closed_port_gets_port_unreachable_and_no_socket(target, hosts):
    h0 = hosts[0]
    sent = h0.to_dut(id=555) / UDP(sport=1234, dport=9999) / b"anyone?"
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp_error(3, 3, sent))
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NO_SOCKET", "L4")]


def test_udp_with_bad_checksum_to_a_closed_port_is_dropped_silently(target, hosts):
    h0 = hosts[0]
    target.send(h0.port, h0.to_dut() / UDP(sport=1234, dport=9999, chksum=0xBAD) / b"x")
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("UDP_CSUM", "L4")]


@pytest.mark.parametrize("length", [100, 4], ids=["past the datagram", "under the header"])
def test_udp_length_field_past_the_datagram_or_under_the_header_is_pkt_too_small(target, hosts, length):
    h0 = hosts[0]
    target.send(h0.port, h0.to_dut() / UDP(sport=1, dport=9999, len=length) / b"short")
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("PKT_TOO_SMALL", "L4")]


def test_tcp_data_offset_under_5_is_pkt_too_small_and_past_the_segment_not_specified(target, hosts):
    """tcp_v4_rcv(): doff < 5 goes to bad_packet with PKT_TOO_SMALL; a doff
    whose bytes are not there fails pskb_may_pull() (discard_it, NOT_SPECIFIED)."""
    h0 = hosts[0]
    target.send(h0.port, [h0.to_dut(id=21) / TCP(sport=40004, dport=81, flags="S", dataofs=4),
                          h0.to_dut(id=22) / TCP(sport=40005, dport=81, flags="S", dataofs=15)])
    target.expect_nothing()
    assert [(d.reason, d.stage, d.location) for d in target.drops()] == [
        ("PKT_TOO_SMALL", "L4", "tcp_v4_rcv"), ("NOT_SPECIFIED", "L4", "tcp_v4_rcv")]


def test_unknown_protocol_gets_protocol_unreachable_and_ip_noproto(target, hosts):
    h0 = hosts[0]
    sent = h0.to_dut(proto=253, id=9) / b"experimental"
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp_error(3, 2, sent))
    target.expect_nothing()
    assert [d.reason for d in target.drops()] == ["IP_NOPROTO"]


def test_ping_socket_sends_echo_with_its_id_and_receives_the_reply(target, hosts):
    h1 = hosts[1]
    sock = target.socket("icmp", (h1.dut_ip, 0x77))
    sock.sendto(bytes(ICMP(type=8, id=0, seq=1) / b"from dut"), (h1.ip, 0))
    # ping_v4_sendmsg() puts the socket's identifier in; DF as for UDP
    request = h1.from_dut(src=h1.dut_ip, dst=h1.ip, ttl=64, flags="DF") / \
        ICMP(type=8, id=0x77, seq=1) / b"from dut"
    target.expect(h1.port, socket_datagram_mask(request))
    target.send(h1.port, h1.to_dut() / ICMP(type=0, id=0x77, seq=1) / b"from dut")
    data, source = sock.recv()
    assert source[0] == h1.ip
    assert ICMP(data).type == 0 and ICMP(data).seq == 1 and bytes(ICMP(data).payload) == b"from dut"


def test_echo_reply_for_no_ping_socket_is_no_socket(target, hosts):
    h1 = hosts[1]
    target.send(h1.port, h1.to_dut() / ICMP(type=0, id=0x99, seq=1))
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NO_SOCKET", "L4")]


def test_receive_buffer_overflow_drops_with_socket_rcvbuff_and_counts_on_the_socket(target, hosts):
    """__udp_enqueue_schedule_skb() refuses a datagram whose truesize would take
    sk_rmem_alloc past sk_rcvbuf, unless the queue is empty (6.18). Each 1042-byte
    frame's truesize is 2304 (a kmalloc-2048 head, as packet_snd() on the tester's
    veth allocates it, plus the sk_buff), so SO_RCVBUF 4096 (sk_rcvbuf 8192) takes three."""
    h0 = hosts[0]
    sock = target.socket("udp", (h0.dut_ip, 6000), rcvbuf=4096)
    burst = [h0.to_dut(id=i) / UDP(sport=100, dport=6000) / (b"%04d" % i + b"." * 996) for i in range(40)]
    target.send(h0.port, burst)
    received = sock.recv_all()
    drops = target.drops()
    assert len(received) == 3
    assert len(received) + len(drops) == 40
    assert {(d.reason, d.stage) for d in drops} == {("SOCKET_RCVBUFF", "SOCKET")}
    assert sock.drops() == len(drops)
    assert [data[:4] for data, _ in received] == [b"%04d" % i for i in range(len(received))]
    target.send(h0.port, h0.to_dut(id=99) / UDP(sport=100, dport=6000) / b"after draining")
    assert sock.recv() == (b"after draining", (h0.ip, 100))


def test_tcp_syn_to_a_closed_port_gets_rst_ack_and_no_socket(target, hosts):
    """tcp_v4_send_reset(): acknowledge the SYN (seq + 1), from the control
    socket: DF, IP ID 0, the segment's TOS."""
    h0 = hosts[0]
    target.send(h0.port, h0.to_dut(id=11, tos=0x10) / TCP(sport=40000, dport=81, flags="S", seq=1000))
    rst = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags="DF", id=0, tos=0x10) / \
        TCP(sport=81, dport=40000, flags="RA", seq=0, ack=1001, window=0)
    target.expect(h0.port, rst)
    target.expect_nothing()
    assert [(d.reason, d.stage, d.location) for d in target.drops()] == [("NO_SOCKET", "L4", "tcp_v4_rcv")]


def test_tcp_ack_to_a_closed_port_gets_a_rst_carrying_its_ack_number(target, hosts):
    h0 = hosts[0]
    target.send(h0.port, h0.to_dut(id=12) / TCP(sport=40001, dport=81, flags="A", seq=5, ack=777) / b"data")
    rst = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags="DF", id=0) / \
        TCP(sport=81, dport=40001, flags="R", seq=777, ack=0, window=0)
    target.expect(h0.port, rst)


def test_tcp_with_a_bad_checksum_or_a_rst_is_not_answered(target, hosts):
    h0 = hosts[0]
    target.send(h0.port, [h0.to_dut(id=13) / TCP(sport=40002, dport=81, flags="S", chksum=0xBAD),
                          h0.to_dut(id=14) / TCP(sport=40003, dport=81, flags="R", seq=9)])
    target.expect_nothing()
    assert [d.reason for d in target.drops()] == ["TCP_CSUM", "NO_SOCKET"]
