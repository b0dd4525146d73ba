"""`ss -t` on the DUT: its sockets as iproute2's ss lists them (misc/ss.c over
sock_diag, net/ipv4/inet_diag.c), the same text on every target. The DUT's
application listens on p0's address; h0's segments are written out literally."""
from __future__ import annotations

import re

from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether


def _handshake(target, h0, sport: int, data: bytes) -> None:
    """h0 opens a connection to the DUT's port 8080 (MSS 1400, no other option),
    sends `data` with the ACK that completes it, and sees it acknowledged."""
    target.send(h0.port, h0.to_dut() / TCP(sport=sport, dport=8080, flags="S", seq=1000, window=65535,
                                           options=[("MSS", 1400)]))
    synack = _next_segment(target, h0)
    assert synack.flags == "SA"
    target.send(h0.port, h0.to_dut() / TCP(sport=sport, dport=8080, flags="A", seq=1001, ack=synack.seq + 1,
                                           window=65535) / data, flush=False)
    ack = _next_segment(target, h0)
    assert (ack.flags, ack.ack) == ("A", 1001 + len(data))


def _next_segment(target, h0) -> TCP:
    left = target.next_frame(h0.port, target.now() + 1)
    assert left is not None, "the DUT answers within a second"
    return Ether(left[0])[TCP]


def test_a_listener_shows_its_backlog_as_send_q(target, hosts):
    h0 = hosts[0]
    target.socket("tcp", (h0.dut_ip, 8080)).listen(5)
    assert target.sh("ss -tln") == (
        "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
        "LISTEN 0      5           10.0.0.1:8080      0.0.0.0:*          \n")


def test_a_connection_waiting_in_the_accept_queue_counts_in_the_listeners_recv_q(target, hosts):
    h0 = hosts[0]
    target.socket("tcp", (h0.dut_ip, 8080)).listen(5)
    _handshake(target, h0, 40000, b"x" * 300)
    assert target.sh("ss -tan") == (
        "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        "LISTEN 1      5           10.0.0.1:8080      0.0.0.0:*           \n"
        "ESTAB  300    0           10.0.0.1:8080     10.0.0.2:40000       \n")


def test_info_shows_the_segment_sizes_and_what_was_received(target, hosts):
    h0 = hosts[0]
    target.socket("tcp", (h0.dut_ip, 8080)).listen(5)
    _handshake(target, h0, 40001, b"x" * 300)
    details = target.sh("ss -tinH state established").splitlines()[1]
    fields = dict(re.findall(r" (\w+):(\S+)", details))
    # the peer's MSS without timestamps is the send MSS; the advertised one is the route's 1500 - 40
    assert {name: fields.get(name) for name in ("mss", "advmss", "pmtu", "cwnd", "bytes_received",
                                                "data_segs_in")} == {
        "mss": "1400", "advmss": "1460", "pmtu": "1500", "cwnd": "10", "bytes_received": "300",
        "data_segs_in": "1"}


def test_a_request_sock_shows_as_syn_recv_with_no_details(target, hosts):
    """inet_req_diag_fill(): a SYN answered but not yet ACKed is listed from the
    established table with empty queues, and carries no tcp_info."""
    h0 = hosts[0]
    target.socket("tcp", (h0.dut_ip, 8080)).listen(5)
    target.send(h0.port, h0.to_dut() / TCP(sport=40000, dport=8080, flags="S", seq=1000, window=65535,
                                           options=[("MSS", 1400)]))
    assert _next_segment(target, h0).flags == "SA"
    assert target.sh("ss -tan") == (
        "State    Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        "LISTEN   0      5           10.0.0.1:8080      0.0.0.0:*           \n"
        "SYN-RECV 0      0           10.0.0.1:8080     10.0.0.2:40000       \n")
    assert target.sh("ss -tani state syn-recv") == (
        "Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        "0      0           10.0.0.1:8080     10.0.0.2:40000\n\t     \n")
